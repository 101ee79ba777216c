#ifndef RSRE_NOTIFY_H
#define RSRE_NOTIFY_H

/*
 * The notification core: who hears about what, once, through which channel, and what happens
 * when a channel fails. docs/chatops.md is the operator's guide.
 *
 *   routing     operator rules (YAML, rsre_notify_routes_load) match an incident's environment,
 *               domain, type and severity to channels and chats; approval requests go to every
 *               approver mapped on the approval route's channels (operators file), one private
 *               message each, with Approve / Deny buttons bound to that approver.
 *   threads     one message per (subject, channel, chat): later changes of the same incident or
 *               approval edit it (Telegram) or reply to it (WhatsApp): the transport gets the
 *               first message's id as edit_ref. Never a new thread per signal.
 *   suppression an update whose text equals what that chat already got for the subject within
 *               the suppression window (the spec's 15m) is not sent again.
 *   rate limits a token bucket per channel; a message waits for a token, it is never dropped.
 *   retries     RETRY waits max(retry_after, backoff); TRANSIENT backs off exponentially with
 *               jitter; after max_attempts, or at once on CHAT_FAILED / REJECTED, the message
 *               fails over to the channel's alternate (its chats); when nothing is left the
 *               failure is recorded in-app and counted (ops_chat_delivery_failures_total).
 *   in-app      every incident event and approval request is written to the store first
 *               (rsre_notify_inapp_*), whatever the chat channels do; if even that write fails
 *               it is logged at error level and counted (inapp_failures).
 *   health      a channel is down after a delivery on it failed for good (also when a transport
 *               reports it later: ops->on_delivery) and up again after a success; a failing
 *               chat gets its last message again every recheck_ms (never suppressed as a
 *               duplicate); every change is reported through hooks.channels with the down and
 *               total counts (the daemon feeds chat.channels_down / chat.channels_total to the
 *               incident engine: chatops_delivery_failure).
 *   approvals   button payloads are signed (chat_sign.c): HMAC-SHA256 over channel, chat user,
 *               approval id, decision and expiry with a server secret. A pressed button is
 *               verified against the user who pressed it, its expiry and the used-nonce record
 *               in the store, then voted through rsre_approvals_vote_chat (same rules as the
 *               API); every refusal is audited and answered in the chat.
 *
 * Time: every entry point takes now_ms; rsre_notify_poll(now_ms) sends what is due. The daemon
 * calls poll from a libuv timer (rsre_notify_next_due says when); tests drive it with their own
 * clock. One thread (the aggregator's loop) owns a handle.
 *
 * Stored state (the store's `notify` database, keys → JSON values):
 *   n/<16 hex seq>          in-app notification {"id","ts","kind","subject","severity","title",
 *                           "text","link","acked_by","acked_at"}
 *   t/<subject>/<ch>/<chat> thread: {"ref": the first message's id, "hash", "sent_at", "text",
 *                           "last": the latest message's id (a WhatsApp reply has its own)}
 *   u/<mac>                 a used button: {"at", "user", "approval"}
 *   a/<approval id>         approval announced: {"state": last state announced}
 */

#include <stddef.h>
#include <stdint.h>

#include "approvals/operators.h"
#include "common/yamldoc.h"
#include "notify/channel.h"
#include "store/store.h"

/* approvals/approvals.h is not included: its `enum rsre_channel` (vote channels) and
 * channel.h's `struct rsre_channel` (transports) cannot meet in one translation unit. */
struct rsre_approvals;

#define RSRE_NOTIFY_CHANNELS_MAX 8
#define RSRE_NOTIFY_CHATS_MAX 16 /* chats per target list */
#define RSRE_NOTIFY_ROUTES_MAX 128
#define RSRE_NOTIFY_MATCH_MAX 32 /* values per match key */
#define RSRE_NOTIFY_NAME_MAX 64  /* channel names, chat ids, match values */
#define RSRE_NOTIFY_FILE_MAX (256u << 10)
#define RSRE_NOTIFY_QUEUE_MAX 1024  /* messages waiting or in flight */
#define RSRE_NOTIFY_TEXT_MAX 4096   /* bytes of a rendered message */
#define RSRE_NOTIFY_SECRET_MIN 32   /* bytes of the button-signing secret */
#define RSRE_NOTIFY_SETTINGS_MAX 16 /* transport settings per channel */
#define RSRE_NOTIFY_SUPPRESS_DEFAULT_MS (15 * 60 * 1000LL)

/* ---- routing rules ------------------------------------------------------------------------- */

struct rsre_notify_target {
    char channel[RSRE_NOTIFY_NAME_MAX];
    char chats[RSRE_NOTIFY_CHATS_MAX][RSRE_NOTIFY_NAME_MAX];
    size_t nchats;
};

struct rsre_notify_channel_conf {
    char name[RSRE_NOTIFY_NAME_MAX];      /* "telegram", "whatsapp" (the transport's ops->name) */
    char alternate[RSRE_NOTIFY_NAME_MAX]; /* fail over here ("" = in-app only) */
    char chats[RSRE_NOTIFY_CHATS_MAX][RSRE_NOTIFY_NAME_MAX]; /* failover destinations */
    size_t nchats;
    double rate_per_minute; /* token bucket refill */
    unsigned burst;
    unsigned max_attempts;   /* attempts before failover (1..20) */
    int64_t backoff_base_ms; /* first retry delay */
    int64_t backoff_max_ms;
    int64_t recheck_ms; /* a failing chat gets its last message again after this (recovery) */
    /* Transport settings (`settings:` map), passed as text to the transport's config_set by the
     * daemon: base_url, token_file, ... (docs/chatops.md). Never a secret's value: keys named
     * token, secret, password or app_secret are refused at load. */
    char settings[RSRE_NOTIFY_SETTINGS_MAX][2][512];
    size_t nsettings;
};

struct rsre_notify_routes; /* immutable once loaded */

/*
 * Parses a notifications file:
 *
 *   admin_url: https://robot.example/ui      # links in messages: <admin_url>/incidents/<id>
 *   secret_file: /etc/robot-sre/notify.key   # button-signing secret (>= 32 bytes); or
 *   secret_env: ROBOT_SRE_NOTIFY_SECRET      #   from the environment. Never inline.
 *   suppress_minutes: 15
 *   channels:
 *     - {name: telegram, alternate: whatsapp, chats: ["-1001"], rate_per_minute: 20, burst: 5,
 *        max_attempts: 4, backoff_ms: 1000, backoff_max_ms: 60000, recheck_seconds: 300,
 *        settings: {base_url: "https://api.telegram.org", token_file: /etc/robot-sre/tg.token}}
 *   routes:                                  # first match wins unless `continue: true`
 *     - match: {environment: [production], domain: [...], incident_type: [...],
 *               severity: [critical, high]}
 *       to: [{channel: telegram, chats: ["-1001"]}]
 *   default: [{channel: telegram, chats: ["-1001"]}]   # when no route matches
 *   approvals: {channels: [telegram, whatsapp]}         # approvers' private chats
 *
 * Unknown keys, unknown channels in routes, unknown severities/environments and inline
 * secrets are errors with *err naming line and column. RSRE_EPARSE, RSRE_EINVALID,
 * RSRE_ELIMIT, -ENOMEM. The secret itself is read by rsre_notify_routes_secret.
 */
int rsre_notify_routes_load(const char *yaml, size_t len, struct rsre_notify_routes **out,
                            struct rsre_yerr *err);
int rsre_notify_routes_load_file(const char *path, struct rsre_notify_routes **out,
                                 struct rsre_yerr *err);
void rsre_notify_routes_destroy(struct rsre_notify_routes *r);

/* What an incident looks like to the router. */
struct rsre_notify_subject {
    const char *environment; /* "demo" | "staging" | "production" */
    const char *domain;
    const char *incident_type;
    const char *severity; /* "info" | "warning" | "high" | "critical" */
};

/* Fills `out` (cap entries) with the targets for `s`; returns how many (0: nobody; the in-app
 * channel still gets it). Targets of several matching routes are merged per channel. */
size_t rsre_notify_route(const struct rsre_notify_routes *r, const struct rsre_notify_subject *s,
                         struct rsre_notify_target *out, size_t cap);

size_t rsre_notify_routes_channels(const struct rsre_notify_routes *r);
const struct rsre_notify_channel_conf *
rsre_notify_routes_channel(const struct rsre_notify_routes *r, size_t i);
/* The channels approval requests go to (names), and how many. */
size_t rsre_notify_routes_approval_channels(const struct rsre_notify_routes *r,
                                            const char *const **names);
const char *rsre_notify_routes_admin_url(const struct rsre_notify_routes *r);
int64_t rsre_notify_routes_suppress_ms(const struct rsre_notify_routes *r);
/* Reads the signing secret named by secret_file / secret_env into buf (cap bytes); returns its
 * length, -ENOENT when the file names none, RSRE_EINVALID when shorter than
 * RSRE_NOTIFY_SECRET_MIN, or a negative errno from reading the file. Never logs the value. */
int rsre_notify_routes_secret(const struct rsre_notify_routes *r, uint8_t *buf, size_t cap);

/* ---- signed button payloads (chat_sign.c) ---------------------------------------------------- */

#define RSRE_NOTIFY_PAYLOAD_MAX 64 /* Telegram's callback_data limit, NUL excluded */

/* Builds "<approval id>.<a|d>.<expiry base36 s>.<mac>" (≤ 64 bytes) bound to channel and user.
 * Returns 0, RSRE_ELIMIT when the approval id leaves less than 16 characters of MAC. */
int rsre_notify_sign(const uint8_t *key, size_t keylen, const char *channel, const char *user,
                     const char *approval_id, int approve, int64_t expires_ms,
                     char out[RSRE_NOTIFY_PAYLOAD_MAX + 1]);

enum rsre_sign_verdict {
    RSRE_SIGN_OK = 0,
    RSRE_SIGN_MALFORMED, /* not one of our payloads */
    RSRE_SIGN_BAD_MAC,   /* tampered, or pressed by another user / on another channel */
    RSRE_SIGN_EXPIRED,
};

struct rsre_notify_button {
    char approval_id[RSRE_NOTIFY_PAYLOAD_MAX + 1];
    int approve;
    int64_t expires_ms;
    char mac[RSRE_NOTIFY_PAYLOAD_MAX + 1]; /* the nonce recorded when used */
};

/* Verifies `payload` as pressed by `user` on `channel` at now_ms (constant-time MAC compare). */
enum rsre_sign_verdict rsre_notify_verify(const uint8_t *key, size_t keylen, const char *channel,
                                          const char *user, const char *payload, int64_t now_ms,
                                          struct rsre_notify_button *out);
const char *rsre_sign_verdict_name(enum rsre_sign_verdict v);

/* ---- the core ------------------------------------------------------------------------------- */

struct rsre_notify_hooks {
    /* Runs fn in a write transaction of the daemon's store (committing when fn returns 0,
     * releasing the engine's effects); returns fn's or the commit's result. Required. */
    int (*in_txn)(void *arg, int (*fn)(rsre_store_txn *txn, void *fa), void *fa);
    /* The approval was decided by a chat vote inside `txn`: hand it to the incident engine
     * (rsre_incident_engine_approval_decided), which re-checks before anything runs. */
    int (*decided)(void *arg, rsre_store_txn *txn, const char *approval_id, int64_t now_ms);
    /* Channel health changed: `down` of `total` configured channels are down; `detail` names
     * them and the last error. */
    void (*channels)(void *arg, unsigned down, unsigned total, const char *detail);
    /* A delivery failed for good on one channel (count ops_chat_delivery_failures_total). */
    void (*delivery_failed)(void *arg, const char *channel);
    /* A chat vote counted: granted (1) / denied (0), for metrics. May be NULL. */
    void (*voted)(void *arg, int approve, int decided);
    /* A message was rescheduled from a transport callback (retry): call rsre_notify_poll by
     * rsre_notify_next_due. May be NULL (the caller polls on its own schedule). */
    void (*wake)(void *arg);
    /* The clock (unix ms) for transport callbacks; NULL: CLOCK_REALTIME. */
    int64_t (*now)(void *arg);
    void *arg;
};

struct rsre_notify_config {
    const struct rsre_notify_routes *routes; /* borrowed; required */
    rsre_store *store;                       /* borrowed; required */
    struct rsre_approvals *approvals;        /* borrowed; NULL: chat votes are refused */
    const struct rsre_operators *operators;  /* borrowed; who gets approval requests */
    struct rsre_channel *channels[RSRE_NOTIFY_CHANNELS_MAX]; /* owned after create */
    size_t nchannels;
    const uint8_t *secret; /* copied; ≥ RSRE_NOTIFY_SECRET_MIN bytes, or NULL: no buttons */
    size_t secret_len;
    uint64_t jitter_seed; /* 0: from the clock */
};

struct rsre_notify;

/* Creates the core; takes ownership of cfg->channels (destroyed with the core, also on
 * failure). Channels named in the routes but not given are errors (RSRE_EINVALID). */
int rsre_notify_create(const struct rsre_notify_config *cfg, const struct rsre_notify_hooks *hooks,
                       struct rsre_notify **out);
/* Starts the transports' receivers (actions come back through rsre_notify_action). */
int rsre_notify_start(struct rsre_notify *n);
/* The transport named `name` ("telegram", "whatsapp"), borrowed, or NULL (for webhooks). */
struct rsre_channel *rsre_notify_channel(struct rsre_notify *n, const char *name);
/* Cancels everything in flight (transports destroyed: their callbacks run and are ignored). */
void rsre_notify_destroy(struct rsre_notify *n);

/* An incident changed (the engine's notify hook; `what` as there). Writes the in-app record,
 * queues the thread updates to the routed chats. */
void rsre_notify_incident(struct rsre_notify *n, const rsre_store_incident *inc, const char *what,
                          int64_t now_ms);
/* Announces new pending approvals and edits decided ones (reads the store). */
void rsre_notify_scan_approvals(struct rsre_notify *n, int64_t now_ms);
/* Sends what is due at now_ms. */
void rsre_notify_poll(struct rsre_notify *n, int64_t now_ms);
/* When the next queued message is due (INT64_MAX: nothing queued, or all in flight). */
int64_t rsre_notify_next_due(const struct rsre_notify *n);
/* A button press or reply (a transport's action callback, or the WhatsApp webhook). */
void rsre_notify_action(struct rsre_notify *n, const struct rsre_chat_action *a, int64_t now_ms);

struct rsre_notify_stats {
    uint64_t sent, edits, suppressed, retries, failovers, failed, inapp_written, inapp_failures;
    uint64_t votes, refusals, rechecks;
    unsigned channels_down, channels_total;
    size_t queued;
};
void rsre_notify_stats(const struct rsre_notify *n, struct rsre_notify_stats *out);

/* ---- in-app notifications (inapp.c) -------------------------------------------------------- */

/* Appends an in-app notification in `txn`; *id (may be NULL, ≥ 32 bytes) gets "ntf-<n>". */
int rsre_notify_inapp_add(rsre_store_txn *txn, const char *kind, const char *subject,
                          const char *severity, const char *title, const char *text,
                          const char *link, int64_t now_ms, char *id);
/* Lists notifications, newest first, at most `limit`, only unacknowledged if `unacked`; each as
 * a JSON object string to `cb`. Returns 0 or a store error. */
int rsre_notify_inapp_list(rsre_store_txn *txn, int unacked, size_t limit,
                           int (*cb)(const char *json, void *ud), void *ud);
/* Acknowledges notification `id` by `who` (audited "notification.ack"). RSRE_ENOTFOUND,
 * RSRE_EEXIST when already acknowledged. */
int rsre_notify_inapp_ack(rsre_store_txn *txn, const char *id, const char *who, int64_t now_ms);

#endif
