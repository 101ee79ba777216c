#ifndef RSRE_WHATSAPP_H
#define RSRE_WHATSAPP_H

/*
 * WhatsApp Cloud API transport (notify/channel.h).
 *
 * Sending: POST <base_url>/<api_version>/<phone_number_id>/messages with the access token as a
 * Bearer token. A message with reply buttons (≤ 3; ids ≤ 256 bytes, titles clipped to 20
 * characters) is an interactive "button" message (body ≤ 1024 characters); a message without
 * them is a text message (≤ 4096). URL buttons have no interactive form next to reply buttons:
 * they become "label: url" lines of the body. WhatsApp cannot edit a message: a message with
 * edit_ref is sent as a new message replying to it (context.message_id), and its own id comes
 * back in the result.
 *
 * Reply mapping: messages[0].id -> RSRE_SEND_OK; error.code 131047 (re-engagement window),
 * 131026 (undeliverable), 131030, 131049, 131050, 130472 -> RSRE_SEND_CHAT_FAILED; 130429,
 * 131056, 131048, 80007, 4 (and a bare 429) -> RSRE_SEND_RETRY with the documented wait, or a
 * Retry-After header's when that is longer (at least 1 s, at most an hour); 5xx, 131000, 131016, 1,
 * 2, timeouts and malformed replies -> RSRE_SEND_TRANSIENT; 190 and other 4xx ->
 * RSRE_SEND_REJECTED.
 *
 * Receiving: Meta calls a webhook, which the admin API routes here (GET and POST on
 * /webhooks/whatsapp): rsre_whatsapp_webhook_verify answers the subscription handshake,
 * rsre_whatsapp_webhook_post checks X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the
 * app secret, compared in constant time) before parsing anything, then hands reply-button
 * presses to the action callback (ops->start) and "failed" statuses (delivery failures learnt
 * after the send succeeded: 131047, 131026, ...) to the delivery callback (ops->on_delivery).
 * Message ids already handled are ignored (Meta re-delivers when our answer was late).
 *
 * Secrets (access token, app secret, verify token) come from files or environment variables
 * and are never logged. Everything runs on the loop of the rsre_http client; not thread-safe.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/curl_uv.h"
#include "notify/channel.h"
#include "notify/chat_config.h"

struct rsre_whatsapp_config {
    char base_url[256];          /* default "https://graph.facebook.com" */
    char api_version[16];        /* default "v19.0" */
    char phone_number_id[32];    /* the sending number's id (digits), required */
    char token_file[512];        /* access token (a System User token) */
    char token_env[64];          /* default "ROBOT_SRE_WHATSAPP_TOKEN" */
    char app_secret_file[512];   /* the app's secret, for X-Hub-Signature-256 */
    char app_secret_env[64];     /* default "ROBOT_SRE_WHATSAPP_APP_SECRET" */
    char verify_token_file[512]; /* the verify token typed into the webhook settings */
    char verify_token_env[64];   /* default "ROBOT_SRE_WHATSAPP_VERIFY_TOKEN" */
    uint32_t timeout_ms;         /* per request; 10000 */
    uint32_t max_body;           /* largest reply or webhook body accepted; 256 KiB */
};

extern const struct rsre_chat_config_key rsre_whatsapp_config_keys[];
extern const size_t rsre_whatsapp_config_nkeys;

void rsre_whatsapp_config_defaults(struct rsre_whatsapp_config *cfg);
int rsre_whatsapp_config_set(struct rsre_whatsapp_config *cfg, const char *key, const char *value,
                             char *err, size_t errlen);

/*
 * Creates the channel: checks cfg and reads the three secrets (the app secret and verify token
 * are required: without them no reply could ever be trusted). `http` is borrowed and must
 * outlive the channel. Returns 0 with *out (free through ops->destroy: in-flight sends' callbacks
 * run now with RSRE_SEND_TRANSIENT; memory freed at once), or RSRE_EINVALID / RSRE_ENOTFOUND /
 * -errno with err saying why (never a secret).
 */
int rsre_whatsapp_create(struct rsre_http *http, const struct rsre_whatsapp_config *cfg,
                         struct rsre_channel **out, char *err, size_t errlen);

/*
 * GET verification handshake: the query's hub.mode, hub.verify_token and hub.challenge (NULL
 * when absent, already URL-decoded). When the mode is "subscribe" and the token matches
 * (constant time), copies the challenge into out[cap] (the body to answer, text/plain) and
 * returns 200; otherwise returns 403 (400 when the challenge is missing, longer than 128 bytes
 * or not printable).
 */
int rsre_whatsapp_webhook_verify(struct rsre_channel *ch, const char *mode, const char *token,
                                 const char *challenge, char *out, size_t cap);

/*
 * POST notification: `signature` is the X-Hub-Signature-256 header value (NULL when absent),
 * `body` the raw body exactly as received. Returns the HTTP status to answer: 200 (accepted,
 * including content we ignore and repeats), 401 (signature missing, malformed or wrong), 413
 * (above max_body), 400 (signed but not a WhatsApp notification), 503 (not started). Callbacks
 * run before it returns.
 */
int rsre_whatsapp_webhook_post(struct rsre_channel *ch, const char *signature, const char *body,
                               size_t len);

/* Counters, for tests and metrics. */
struct rsre_whatsapp_stats {
    uint64_t webhooks;       /* POSTs accepted */
    uint64_t bad_signatures; /* POSTs refused for their signature */
    uint64_t actions;        /* delivered to the action callback */
    uint64_t failures;       /* delivery failures delivered to the delivery callback */
    uint64_t repeats;        /* events ignored as already handled */
};
void rsre_whatsapp_stats(const struct rsre_channel *ch, struct rsre_whatsapp_stats *out);

#endif
