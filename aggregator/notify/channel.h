#ifndef RSRE_NOTIFY_CHANNEL_H
#define RSRE_NOTIFY_CHANNEL_H

/*
 * The contract between the notification core (routing, suppression, incident threads, retries,
 * fail-over, chat approvals: aggregator/notify/notify.c) and the chat transports (Telegram Bot
 * API: telegram.c, WhatsApp Cloud API: whatsapp.c). A transport only speaks its wire format on
 * the aggregator's libuv loop (libcurl multi, common/curl_uv.h): it never decides whether to
 * retry, fail over or suppress; it reports what happened precisely enough for the core to.
 * Secrets (bot token, access token, app secret) are read from files or environment by the
 * transport's config and never logged.
 */

#include <stddef.h>
#include <stdint.h>

struct rsre_chat_button {
    const char *label;   /* "Approve", "Deny", "Details" */
    const char *payload; /* opaque signed payload (≤ 64 bytes for Telegram callback_data);
                            for a "Details" URL button: NULL payload and `url` set */
    const char *url;
};

struct rsre_chat_message {
    const char *chat;        /* Telegram chat id, or WhatsApp recipient number (E.164 digits) */
    const char *text;        /* rendered plain text (the transport escapes what it must) */
    const char *edit_ref;    /* transport message id to edit (incident thread update), or NULL */
    const struct rsre_chat_button *buttons;
    size_t nbuttons;         /* ≤ 3 */
};

enum rsre_send_status {
    RSRE_SEND_OK = 0,
    RSRE_SEND_RETRY,        /* rate limited (429 / 130429): retry after retry_after_ms */
    RSRE_SEND_TRANSIENT,    /* 5xx, timeout, connection refused, malformed reply: retry with
                               backoff, then fail over */
    RSRE_SEND_CHAT_FAILED,  /* this chat cannot be reached (403 bot blocked, 400 chat not found,
                               131047 outside the re-engagement window, 131026 undeliverable) */
    RSRE_SEND_REJECTED,     /* our request was wrong (other 4xx): do not retry */
};

struct rsre_send_result {
    enum rsre_send_status status;
    int http_status;         /* 0 when no HTTP reply */
    long api_code;           /* Telegram error_code / WhatsApp error.code, 0 if none */
    int64_t retry_after_ms;  /* for RSRE_SEND_RETRY */
    char message_id[128];    /* transport message id on success (for later edits; WhatsApp wamids
                                can pass 64 bytes) */
    char error[256];         /* the API's description / error text, for evidence */
};

typedef void (*rsre_send_cb)(void *arg, const struct rsre_send_result *r);

/* A button press or reply coming back from a chat. Pointers valid during the callback. */
struct rsre_chat_action {
    const char *channel;     /* "telegram" | "whatsapp" */
    const char *user;        /* Telegram from.id / WhatsApp from (sender number) */
    const char *chat;        /* chat the action came from */
    const char *payload;     /* the button's payload as sent back by the platform */
    const char *ack_ref;     /* Telegram callback_query id (to answer), WhatsApp message id */
    const char *message_ref; /* the message the button was on, for the post-decision edit */
};

typedef void (*rsre_chat_action_cb)(void *arg, const struct rsre_chat_action *a);

/* A delivery failure learnt after send's callback reported RSRE_SEND_OK (WhatsApp delivers
 * "failed" statuses later, through its webhook: 131047 outside the re-engagement window,
 * 131026 undeliverable, ...). Pointers valid during the callback. */
struct rsre_chat_delivery {
    const char *channel;                   /* "whatsapp" */
    const char *chat;                      /* recipient */
    const char *message_id;                /* the id send's callback reported (or is about to:
                                              the status may come before the send's reply) */
    const struct rsre_send_result *result; /* classified as send would have (never OK) */
};

typedef void (*rsre_chat_delivery_cb)(void *arg, const struct rsre_chat_delivery *d);

struct rsre_channel;

struct rsre_channel_ops {
    const char *name; /* "telegram", "whatsapp" */
    /* Sends or edits (m->edit_ref) one message; cb runs exactly once, later on the loop (never
     * inside send). Returns 0, or an error when nothing was started (cb not called). */
    int (*send)(struct rsre_channel *ch, const struct rsre_chat_message *m, rsre_send_cb cb,
                void *arg);
    /* Acknowledges an action (Telegram answerCallbackQuery with `text`; WhatsApp: no-op). */
    int (*ack)(struct rsre_channel *ch, const struct rsre_chat_action *a, const char *text);
    /* Starts receiving actions (Telegram getUpdates long polling; WhatsApp: actions arrive via
     * the webhook handled by the admin API, which calls the channel's receive function). */
    int (*start)(struct rsre_channel *ch, rsre_chat_action_cb cb, void *arg);
    /* Stops, cancels in-flight requests (their callbacks run with RSRE_SEND_TRANSIENT), frees. */
    void (*destroy)(struct rsre_channel *ch);
    /* Optional (NULL when every outcome reaches send's callback, as with Telegram): registers
     * the callback for failures reported after a send succeeded (WhatsApp status webhooks). */
    void (*on_delivery)(struct rsre_channel *ch, rsre_chat_delivery_cb cb, void *arg);
};

struct rsre_channel {
    const struct rsre_channel_ops *ops;
};

#endif
