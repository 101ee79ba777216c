#ifndef RSRE_NOTIFY_INTERNAL_H
#define RSRE_NOTIFY_INTERNAL_H

/* Private to aggregator/notify: the delivery queue (notify.c) shared with the approval flow
 * (chat_approve.c). */

#include "notify/notify.h"

enum job_kind { JOB_INCIDENT, JOB_APPROVAL };

struct notify_job;

struct notify_chan {
    struct rsre_channel *ch; /* owned */
    const struct rsre_notify_channel_conf *conf;
    double tokens;
    int64_t refilled_at;
    /* Chats whose last delivery on this channel failed for good and has not succeeded since;
     * the channel is down while there is one (health: chatops_delivery_failure). */
    char failing[RSRE_NOTIFY_CHATS_MAX][RSRE_NOTIFY_NAME_MAX];
    struct notify_job *probe[RSRE_NOTIFY_CHATS_MAX]; /* the message that failed, re-sent ... */
    int64_t recheck_at[RSRE_NOTIFY_CHATS_MAX];       /* ... at this time to see it recover */
    size_t nfailing;
    int down;
    int down_hard; /* ... because the channel itself failed (retries exhausted): one attempt per
                      message until a send succeeds, so fail-over is not delayed */
    char last_error[200];
};

struct notify_job {
    struct rsre_notify *n;
    enum job_kind kind;
    char subject[RSRE_STORE_ID_MAX + 1]; /* incident or approval id: the thread */
    char severity[16];
    int ch; /* channel index */
    char chat[RSRE_NOTIFY_NAME_MAX];
    char op[RSRE_OPERATOR_ID_MAX + 1]; /* approval: the approver the buttons are bound to */
    char text[RSRE_NOTIFY_TEXT_MAX];
    char link[600];
    int buttons;        /* approval: Approve / Deny (+ Details) */
    int64_t expires_ms; /* approval expiry, for the buttons */
    unsigned attempts, hops;
    int64_t due;
    int inflight;
    int probe; /* re-send to a failing chat: no fail-over, no new failure record */
};

/* A late failure (WhatsApp status webhook) of a message no stored thread names: its status may
 * arrive before the reply to the send that produced the id; that send then fails. */
#define RSRE_NOTIFY_EARLY_MAX 16
struct notify_early {
    int ch;
    int counted; /* counted when it arrived (no send to that chat was in flight) */
    char message_id[128];
    char why[320];
};

/* A recheck (probe) the platform accepted: a late failure naming its id is the recheck's own
 * (the chat still fails), not a new failure to count, fail over and record. */
#define RSRE_NOTIFY_RECHECKS_MAX 16
struct notify_recheck {
    int ch;
    char message_id[128];
};

struct rsre_notify {
    const struct rsre_notify_routes *routes;
    rsre_store *store;
    struct rsre_approvals *approvals;
    const struct rsre_operators *operators;
    struct rsre_notify_hooks hooks;
    struct notify_chan chans[RSRE_NOTIFY_CHANNELS_MAX];
    size_t nchans;
    uint8_t secret[256];
    size_t secret_len;
    uint64_t rng;
    struct notify_job *jobs[RSRE_NOTIFY_QUEUE_MAX];
    size_t njobs;
    int closing;
    struct notify_early early[RSRE_NOTIFY_EARLY_MAX]; /* ring; message_id "" is a free slot */
    size_t early_pos;
    struct notify_recheck rechecked[RSRE_NOTIFY_RECHECKS_MAX]; /* ring; "" is a free slot */
    size_t rechecked_pos;
    struct rsre_notify_stats st;
};

int rsre__notify_chan_find(const struct rsre_notify *n, const char *name);
/* Queues a message for (subject, channel, chat); replaces the text of a queued, not yet sent
 * message of the same thread (a queued recheck is replaced whole by a real message; a recheck
 * never replaces anything); drops it when the thread already shows this text within the
 * suppression window (never a recheck). Returns 0, 1 (suppressed or coalesced), or
 * RSRE_ELIMIT (queue full). */
int rsre__notify_enqueue(struct rsre_notify *n, const struct notify_job *tmpl, int64_t now_ms);
/* Writes an in-app record in its own transaction; logs and counts a failure. */
void rsre__notify_inapp(struct rsre_notify *n, const char *kind, const char *subject,
                        const char *severity, const char *title, const char *text, const char *link,
                        int64_t now_ms);
/* The thread key "t/<subject>/<channel>/<chat>". */
void rsre__notify_thread_key(const char *subject, const char *channel, const char *chat, char *key,
                             size_t cap);

#endif
