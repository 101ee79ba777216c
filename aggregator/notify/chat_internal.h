#ifndef RSRE_CHAT_INTERNAL_H
#define RSRE_CHAT_INTERNAL_H

/*
 * Private to the chat transports (telegram.c, whatsapp.c) and their fuzz targets: the wire
 * formats as pure functions (chat_json.c: request bodies built, replies classified, updates and
 * webhooks parsed) and the helpers they share (chat_util.c). Nothing here does I/O except
 * rsre__chat_read_secret.
 *
 * Every parser takes a body of bounded length (the caller bounds it), never trusts a field's
 * type or size, skips elements it cannot use and reports only complete, bounded values.
 */

#include <stddef.h>
#include <stdint.h>

#include "notify/channel.h"

#define RSRE_TG_DATA_MAX 64     /* callback_data bytes (Bot API limit) */
#define RSRE_TG_ID_MAX 32       /* a decimal int64 */
#define RSRE_TG_QUERY_ID_MAX 64 /* callback_query.id */
#define RSRE_TG_TEXT_UNITS 4096 /* message text limit, UTF-16 code units */
#define RSRE_TG_ANSWER_MAX 200  /* answerCallbackQuery text */
#define RSRE_WA_PAYLOAD_MAX 256 /* reply button id */
#define RSRE_WA_TITLE_MAX 20    /* reply button title, characters */
#define RSRE_WA_BODY_MAX 1024   /* interactive body text, characters */
#define RSRE_WA_TEXT_MAX 4096   /* text message body, characters */
#define RSRE_WA_WAMID_MAX 127   /* message ids we accept (bytes) */
#define RSRE_WA_NUMBER_MAX 20   /* digits of a phone number / wa_id */

/* ---- shared helpers (chat_util.c) ------------------------------------------------------------ */

struct rsre_http_req;

/*
 * A transport's API call in flight, embedded FIRST in its op (telegram.c's tg_op, whatsapp.c's
 * wa_op, allocated with calloc) so one list serves both: the HTTP request, the caller's send
 * callback (NULL for a call of the transport's own, e.g. getUpdates) and the links of the
 * channel's list of calls in flight (head: the channel's pointer to the first).
 */
struct rsre__chat_op {
    struct rsre_http_req *req;
    rsre_send_cb cb;
    void *arg;
    struct rsre__chat_op *prev, *next;
};

void rsre__chat_op_link(struct rsre__chat_op **head, struct rsre__chat_op *o);
void rsre__chat_op_unlink(struct rsre__chat_op **head, struct rsre__chat_op *o);

/* A send answered (r classified by the caller): o unlinked and freed, then its callback
 * called with r. */
void rsre__chat_op_complete(struct rsre__chat_op **head, struct rsre__chat_op *o,
                            const struct rsre_send_result *r);

/* On close: every call in flight unlinked, its request abandoned (no completion follows), its
 * callback (if any) told "channel closed" (RSRE_SEND_TRANSIENT), and freed. */
void rsre__chat_ops_abandon(struct rsre__chat_op **head);

/*
 * Reads a secret: from `file` when non-empty (the whole file, trailing whitespace removed),
 * else from environment variable `env` when non-empty. The secret must be 1..cap-1 bytes of
 * printable ASCII without spaces. Returns 0, RSRE_ENOTFOUND (neither source set or the
 * variable is unset), RSRE_EINVALID / RSRE_ELIMIT (bad content or too long), -errno (file);
 * err says which source and why, never the secret.
 */
int rsre__chat_read_secret(const char *file, const char *env, char *out, size_t cap, char *err,
                           size_t errlen);

/* Constant-time equality of two NUL-terminated secrets (time depends only on len(want)). */
int rsre__chat_secret_eq(const char *want, const char *got, size_t got_len);

/*
 * Copies `s` as valid UTF-8 (invalid bytes become U+FFFD) keeping at most `max` units, where a
 * unit is a code point, or a UTF-16 code unit when `utf16` is set (Telegram counts those).
 * When cut, the copy ends with "…" within the limit. Returns a malloc'd string or NULL.
 */
char *rsre__chat_clip(const char *s, size_t max, int utf16);

/* Copies printable ASCII of src (other bytes as '?') into dst[cap], cutting at cap-1. */
void rsre__chat_safe_copy(char *dst, size_t cap, const char *src);

/* Longest wait a rate-limit hint can impose (a hint beyond it is taken as this). */
#define RSRE_CHAT_RETRY_AFTER_MAX_MS (3600 * 1000)

/* A rate-limited result (RSRE_SEND_RETRY) waits at least the reply's Retry-After header when
 * there is one (`header_s` > 0, curl_uv's retry_after_s), at least 1 s in any case and at most
 * RSRE_CHAT_RETRY_AFTER_MAX_MS. Any other result is left as it is. */
void rsre__chat_retry_after(struct rsre_send_result *r, int64_t header_s);

/* ---- Telegram Bot API (chat_json.c) ---------------------------------------------------------- */

/* One Update, as far as we use it. */
struct rsre__tg_update {
    int64_t update_id;
    int kind; /* RSRE_TG_CALLBACK, RSRE_TG_MESSAGE, or 0 (anything else) */
    char user[RSRE_TG_ID_MAX];
    char chat[RSRE_TG_ID_MAX];
    char payload[RSRE_TG_DATA_MAX + 1];
    char query_id[RSRE_TG_QUERY_ID_MAX + 1];
    char message_id[RSRE_TG_ID_MAX];
};
enum { RSRE_TG_CALLBACK = 1, RSRE_TG_MESSAGE = 2 };

typedef void (*rsre__tg_update_fn)(void *arg, const struct rsre__tg_update *u);

/* Parses a getUpdates reply ({"ok":true,"result":[Update...]}): fn runs for every element that
 * carries a non-negative update_id (kind 0 for those we do not use), in order; others are
 * skipped. Returns the number of updates handed to fn, or RSRE_EPARSE (not JSON, ok not
 * true, result not an array). */
int rsre__tg_parse_updates(const char *body, size_t len, rsre__tg_update_fn fn, void *arg);

/* Parses one Update object (a webhook body). Returns 1, or RSRE_EPARSE. */
int rsre__tg_parse_update(const char *body, size_t len, rsre__tg_update_fn fn, void *arg);

/* Builds the JSON body of sendMessage (m->edit_ref NULL) or editMessageText. Returns 0 with a
 * malloc'd body, or -EINVAL (chat / edit_ref / button not valid for the Bot API), -ENOMEM. */
int rsre__tg_build_message(const struct rsre_chat_message *m, char **out);

/* Classifies a Bot API reply. rc is curl_uv's result; edit_ref the message being edited (NULL
 * for a send). Fills every field of *r. */
void rsre__tg_classify(int rc, long status, const char *body, size_t len, const char *edit_ref,
                       struct rsre_send_result *r);

/* ---- WhatsApp Cloud API (chat_json.c) -------------------------------------------------------- */

enum rsre__wa_kind { RSRE_WA_ACTION = 1, RSRE_WA_FAILED };

struct rsre__wa_event {
    enum rsre__wa_kind kind;
    /* RSRE_WA_ACTION: a reply button pressed (interactive button_reply, or a template's quick
     * reply "button") */
    char from[RSRE_WA_NUMBER_MAX + 1];
    char payload[RSRE_WA_PAYLOAD_MAX + 1];
    char message_id[RSRE_WA_WAMID_MAX + 1]; /* the reply's id, or the failed message's */
    char context_id[RSRE_WA_WAMID_MAX + 1]; /* the message the button was on */
    /* RSRE_WA_FAILED: a status "failed", classified */
    char recipient[RSRE_WA_NUMBER_MAX + 1];
    struct rsre_send_result result;
};

typedef void (*rsre__wa_event_fn)(void *arg, const struct rsre__wa_event *e);

/* Parses a webhook POST body (object "whatsapp_business_account", entry[].changes[] with field
 * "messages"). Changes whose metadata.phone_number_id differs from `phone_number_id` (when
 * non-empty) are skipped. Returns the number of events, or RSRE_EPARSE. */
int rsre__wa_parse_webhook(const char *body, size_t len, const char *phone_number_id,
                           rsre__wa_event_fn fn, void *arg);

/* Builds a /messages body: an interactive "button" message when m has reply buttons (URL
 * buttons become a "label: url" line of the body), a text message otherwise; m->edit_ref, when
 * set, becomes context.message_id (WhatsApp cannot edit). Returns 0, -EINVAL, -ENOMEM. */
int rsre__wa_build_message(const struct rsre_chat_message *m, char **out);

/* Classifies a /messages reply (as rsre__tg_classify). */
void rsre__wa_classify(int rc, long status, const char *body, size_t len,
                       struct rsre_send_result *r);

/* The status an error code maps to (retry_after_ms filled for RSRE_SEND_RETRY), or -1 when the
 * code is not in the table. */
int rsre__wa_code_status(long code, int64_t *retry_after_ms);

#endif
