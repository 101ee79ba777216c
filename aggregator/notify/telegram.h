#ifndef RSRE_TELEGRAM_H
#define RSRE_TELEGRAM_H

/*
 * Telegram Bot API transport (notify/channel.h): sendMessage with an inline keyboard (callback
 * buttons on one row, URL buttons on the next), editMessageText for incident-thread updates and
 * the post-decision edit (an edit without buttons removes the keyboard), answerCallbackQuery,
 * and button presses received by getUpdates long polling or by a webhook.
 * Texts are sent as plain text (no parse_mode), so nothing in them needs escaping; they are
 * cut to 4096 UTF-16 units, ending with "…".
 *
 * Requests go to <base_url>/bot<token>/<method> with a JSON body. The token is read from a file
 * or an environment variable at create time, is never logged, and the request URL (which holds
 * it) is never logged either; errors name the method only.
 *
 * Reply mapping (rsre_send_result): ok:true -> RSRE_SEND_OK with result.message_id; 429 ->
 * RSRE_SEND_RETRY with parameters.retry_after; every 403 ("bot was blocked by the user", "bot
 * was kicked", "user is deactivated", ...) and 400 "chat not found" / "group chat was upgraded"
 * (migrate_to_chat_id in the error text) -> RSRE_SEND_CHAT_FAILED; 5xx, timeouts, connection
 * failures and malformed replies -> RSRE_SEND_TRANSIENT; other 4xx -> RSRE_SEND_REJECTED. An
 * edit answered "message is not modified" is RSRE_SEND_OK (the message already reads so).
 * A 429's wait is the longer of parameters.retry_after and a Retry-After header, at least 1 s
 * and at most an hour (a bare 429 waits 1 s). The core retries sends and edits after it;
 * answerCallbackQuery retries itself after it (up to 3 attempts, only while the wait is at
 * most 30 s: a later answer is of no use), every other failed answer is logged and dropped.
 *
 * Long polling: getUpdates with offset = last update_id + 1, `poll_timeout_s`, allowed_updates
 * ["callback_query","message"]. Every update is confirmed by the next request's offset whether
 * or not it was used, so none is delivered twice; after a failed poll the next one waits
 * poll_retry_ms, doubled per failure up to 30 s (or the 429's retry_after). Plain messages are
 * not actions: their chat and sender ids are logged (that is how operators learn chat ids).
 *
 * Everything runs on the loop of the rsre_http client passed to create; none of it is
 * thread-safe.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/curl_uv.h"
#include "notify/channel.h"
#include "notify/chat_config.h"

struct rsre_telegram_config {
    char base_url[256];            /* default "https://api.telegram.org" */
    char token_file[512];          /* file holding the bot token (wins over token_env) */
    char token_env[64];            /* default "ROBOT_SRE_TELEGRAM_TOKEN" */
    char mode[16];                 /* "poll" (getUpdates, default) or "webhook" */
    char webhook_secret_file[512]; /* secret_token given to setWebhook (webhook mode) */
    char webhook_secret_env[64];   /* default "ROBOT_SRE_TELEGRAM_WEBHOOK_SECRET" */
    uint32_t timeout_ms;           /* per sendMessage / editMessageText / answer; 10000 */
    uint32_t poll_timeout_s;       /* getUpdates long-poll timeout; 25 */
    uint32_t poll_retry_ms;        /* first wait after a failed getUpdates; 1000 */
    uint32_t max_body;             /* largest reply or webhook body accepted; 1 MiB */
};

/* The configuration keys as rows (notify/chat_config.h), for the daemon's table and --help. */
extern const struct rsre_chat_config_key rsre_telegram_config_keys[];
extern const size_t rsre_telegram_config_nkeys;

void rsre_telegram_config_defaults(struct rsre_telegram_config *cfg);
/* Sets one key from text. Returns 0, RSRE_ENOTFOUND (unknown key), RSRE_EINVALID (bad value;
 * err says why). */
int rsre_telegram_config_set(struct rsre_telegram_config *cfg, const char *key, const char *value,
                             char *err, size_t errlen);

/*
 * Creates the channel: checks cfg, reads the token (and the webhook secret in webhook mode).
 * `http` is borrowed and must outlive the channel. Returns 0 with *out (free through
 * ops->destroy), or RSRE_EINVALID / RSRE_ENOTFOUND / -errno with err saying why (never the
 * secret).
 *
 * ops->destroy: cancels what is in flight (pending send callbacks run now with
 * RSRE_SEND_TRANSIENT), drops answers waiting out a rate limit and closes the timers; the
 * memory is released in their close callbacks, so the loop must run once more. Must not be called from inside the channel's own callbacks.
 */
int rsre_telegram_create(struct rsre_http *http, const struct rsre_telegram_config *cfg,
                         struct rsre_channel **out, char *err, size_t errlen);

/*
 * Webhook mode: handles one POST from Telegram (setWebhook's secret_token comes back in the
 * X-Telegram-Bot-Api-Secret-Token header; pass its value, or NULL when absent). Button presses
 * go to the callback given to ops->start, each update_id at most once. Returns the HTTP status
 * to answer: 200 (accepted, including updates we ignore and repeats), 401 (secret missing or
 * wrong, compared in constant time), 404 (channel not in webhook mode), 413 (body above
 * max_body), 400 (not an Update), 503 (not started).
 */
int rsre_telegram_webhook(struct rsre_channel *ch, const char *secret_header, const char *body,
                          size_t len);

/* Counters, for tests and metrics. */
struct rsre_telegram_stats {
    uint64_t polls;         /* getUpdates completed */
    uint64_t poll_failures; /* of which failed */
    uint64_t updates;       /* updates seen (poll + webhook) */
    uint64_t actions;       /* delivered to the action callback */
    int64_t next_offset;    /* offset of the next getUpdates */
};
void rsre_telegram_stats(const struct rsre_channel *ch, struct rsre_telegram_stats *out);

#endif
