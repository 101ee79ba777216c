/*
 * The notification core's delivery side: incident messages routed to chats, one thread per
 * (subject, channel, chat), duplicate suppression, a token bucket per channel, retries with
 * exponential backoff and jitter (honouring retry_after), fail-over to the alternate channel,
 * the in-app record that is always written, and channel health. notify.h states the rules.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "engine/taxonomy.h"
#include "notify/notify_internal.h"

/* ---- small helpers ---- */

static int64_t clock_now(const struct rsre_notify *n) {
    if (n->hooks.now) {
        return n->hooks.now(n->hooks.arg);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_rand(struct rsre_notify *n) {
    /* xorshift64*: jitter only, not security. */
    uint64_t x = n->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    n->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t text_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

int rsre__notify_chan_find(const struct rsre_notify *n, const char *name) {
    for (size_t i = 0; i < n->nchans; i++) {
        if (!strcmp(n->chans[i].conf->name, name)) {
            return (int)i;
        }
    }
    return -1;
}

void rsre__notify_thread_key(const char *subject, const char *channel, const char *chat, char *key,
                             size_t cap) {
    snprintf(key, cap, "t/%s/%s/%s", subject, channel, chat);
}

/* ---- stored threads ---- */

struct thread {
    char ref[128];
    uint64_t hash;
    int64_t sent_at;
    const char *text; /* thread_write only: the text last delivered (for a late fail-over) */
    const char *last; /* thread_write only: the id of that message (a WhatsApp reply has its
                         own; a late failure may name it) */
};

/* 0 and *t, RSRE_ENOTFOUND, or an error. */
static int thread_get(struct rsre_notify *n, const char *key, struct thread *t) {
    memset(t, 0, sizeof(*t));
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(n->store, 1, &txn);
    if (rc) {
        return rc;
    }
    char *val = NULL;
    size_t len;
    rc = rsre_store_notify_get(txn, key, &val, &len);
    rsre_store_txn_abort(txn);
    if (rc) {
        return rc;
    }
    json_error_t je;
    json_t *o = json_loadb(val, len, 0, &je);
    free(val);
    const char *ref = json_string_value(json_object_get(o, "ref"));
    const char *h = json_string_value(json_object_get(o, "hash"));
    if (!ref || !h) {
        json_decref(o);
        return RSRE_ECORRUPT;
    }
    snprintf(t->ref, sizeof(t->ref), "%s", ref);
    t->hash = strtoull(h, NULL, 16);
    t->sent_at = json_integer_value(json_object_get(o, "sent_at"));
    json_decref(o);
    return 0;
}

static int thread_write(struct rsre_notify *n, const char *key, const struct thread *t) {
    char hash[24];
    snprintf(hash, sizeof(hash), "%016" PRIx64, t->hash);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "ref", t->ref, "hash", hash, "sent_at",
                          (json_int_t)t->sent_at, "text", t->text ? t->text : "", "last",
                          t->last ? t->last : t->ref);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        return -ENOMEM;
    }
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(n->store, 0, &txn);
    if (rc == 0) {
        rc = rsre_store_notify_put(txn, key, s, strlen(s), 0);
        rc = rc ? (rsre_store_txn_abort(txn), rc) : rsre_store_txn_commit(txn);
    }
    free(s);
    return rc;
}

static void thread_forget(struct rsre_notify *n, const char *key) {
    rsre_store_txn *txn;
    if (rsre_store_txn_begin(n->store, 0, &txn) == 0) {
        int rc = rsre_store_notify_delete(txn, key);
        if (rc == 0) {
            rsre_store_txn_commit(txn);
        } else {
            rsre_store_txn_abort(txn);
        }
    }
}

/* ---- in-app ---- */

struct inapp_args {
    const char *kind, *subject, *severity, *title, *text, *link;
    int64_t now;
};

void rsre__notify_inapp(struct rsre_notify *n, const char *kind, const char *subject,
                        const char *severity, const char *title, const char *text, const char *link,
                        int64_t now_ms) {
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(n->store, 0, &txn);
    if (rc == 0) {
        rc = rsre_notify_inapp_add(txn, kind, subject, severity, title, text, link, now_ms, NULL);
        rc = rc ? (rsre_store_txn_abort(txn), rc) : rsre_store_txn_commit(txn);
    }
    if (rc) {
        /* The last resort failed: never silently. */
        n->st.inapp_failures++;
        RSRE_LOG(RSRE_LOG_ERROR, "notify",
                 "in-app notification not stored: subject=%s kind=%s err=\"%s\" title=\"%s\"",
                 subject ? subject : "", kind, rsre_strerror(rc), title ? title : "");
        if (n->hooks.delivery_failed) {
            n->hooks.delivery_failed(n->hooks.arg, "inapp");
        }
        return;
    }
    n->st.inapp_written++;
}

/* ---- channel health ---- */

static void report_health(struct rsre_notify *n) {
    unsigned down = 0;
    char detail[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < n->nchans; i++) {
        if (n->chans[i].down) {
            down++;
            int w = snprintf(detail + off, sizeof(detail) - off, "%s%s down: %s", off ? "; " : "",
                             n->chans[i].conf->name, n->chans[i].last_error);
            if (w > 0) {
                off += (size_t)w < sizeof(detail) - off ? (size_t)w : sizeof(detail) - off - 1;
            }
        }
    }
    n->st.channels_down = down;
    n->st.channels_total = (unsigned)n->nchans;
    RSRE_LOG(down ? RSRE_LOG_WARN : RSRE_LOG_INFO, "notify", "channels down=%u total=%zu %s", down,
             n->nchans, detail);
    if (n->hooks.channels) {
        n->hooks.channels(n->hooks.arg, down, (unsigned)n->nchans, detail);
    }
}

/* Records the outcome of a delivery to `chat` on channel `ch`: a failure adds the chat to the
 * failing set (keeping a copy of `j` to re-send after recheck_ms, so a chat that works again is
 * noticed), a success removes it; the channel is down while the set is not empty (a full set
 * keeps the channel down until one of its chats succeeds). */
static void set_chat_state(struct rsre_notify *n, int ch, const char *chat, int failed,
                           const char *why, const struct notify_job *j, int64_t now) {
    struct notify_chan *c = &n->chans[ch];
    size_t i = 0;
    while (i < c->nfailing && strcmp(c->failing[i], chat)) {
        i++;
    }
    if (failed) {
        snprintf(c->last_error, sizeof(c->last_error), "%.199s", why ? why : "");
        if (i == c->nfailing && c->nfailing < RSRE_NOTIFY_CHATS_MAX) {
            snprintf(c->failing[c->nfailing], sizeof(c->failing[0]), "%s", chat);
            c->probe[c->nfailing++] = NULL;
        }
        if (i < c->nfailing && j && j->text[0]) {
            struct notify_job *copy = malloc(sizeof(*copy));
            if (copy) {
                *copy = *j;
                copy->inflight = 0;
                free(c->probe[i]);
                c->probe[i] = copy;
            }
            c->recheck_at[i] = now + c->conf->recheck_ms;
        }
    } else if (i < c->nfailing) {
        free(c->probe[i]);
        memmove(c->failing[i], c->failing[i + 1], (c->nfailing - i - 1) * sizeof(c->failing[0]));
        memmove(&c->probe[i], &c->probe[i + 1], (c->nfailing - i - 1) * sizeof(c->probe[0]));
        memmove(&c->recheck_at[i], &c->recheck_at[i + 1],
                (c->nfailing - i - 1) * sizeof(c->recheck_at[0]));
        c->nfailing--;
    }
    int down = failed || c->nfailing > 0;
    if (c->down != down) {
        c->down = down;
        report_health(n);
    }
}

/* ---- queue ---- */

static void job_remove(struct rsre_notify *n, struct notify_job *j) {
    for (size_t i = 0; i < n->njobs; i++) {
        if (n->jobs[i] == j) {
            n->jobs[i] = n->jobs[--n->njobs];
            break;
        }
    }
    free(j);
    n->st.queued = n->njobs;
}

static int same_thread(const struct notify_job *a, const struct notify_job *b) {
    return a->ch == b->ch && !strcmp(a->subject, b->subject) && !strcmp(a->chat, b->chat);
}

/* A message of the same thread as `j` is in flight: `j` waits for its message id. */
static int thread_busy(const struct rsre_notify *n, const struct notify_job *j) {
    for (size_t k = 0; k < n->njobs; k++) {
        if (n->jobs[k] != j && n->jobs[k]->inflight && same_thread(n->jobs[k], j)) {
            return 1;
        }
    }
    return 0;
}

int rsre__notify_enqueue(struct rsre_notify *n, const struct notify_job *tmpl, int64_t now_ms) {
    const struct notify_chan *c = &n->chans[tmpl->ch];
    uint64_t h = text_hash(tmpl->text);
    /* A queued message of the same thread that has not gone out yet takes the new text; a
     * re-send to a failing chat leaves it as it is (that message tests the chat as well). A
     * real message replaces a queued re-send: it is a real message (full retries, fail-over,
     * failure record), sent when the re-send would have been (a retry_after still holds). */
    for (size_t i = 0; i < n->njobs; i++) {
        struct notify_job *j = n->jobs[i];
        if (!j->inflight && same_thread(j, tmpl)) {
            if (tmpl->probe) {
                return 1;
            }
            if (j->probe) {
                int64_t due = j->due;
                *j = *tmpl;
                j->n = n;
                j->inflight = 0;
                j->attempts = 0;
                j->due = due;
                n->st.suppressed++;
                return 1;
            }
            memcpy(j->text, tmpl->text, sizeof(j->text));
            j->buttons = tmpl->buttons;
            j->expires_ms = tmpl->expires_ms;
            n->st.suppressed++;
            return 1;
        }
    }
    char key[RSRE_STORE_NOTIFY_KEY_MAX + 1];
    rsre__notify_thread_key(tmpl->subject, c->conf->name, tmpl->chat, key, sizeof(key));
    struct thread t;
    int64_t window = rsre_notify_routes_suppress_ms(n->routes);
    /* A re-send to a failing chat is never a duplicate: what the thread records as sent may be
     * exactly what the platform later reported undeliverable. */
    if (!tmpl->probe && thread_get(n, key, &t) == 0 && t.hash == h && now_ms - t.sent_at < window) {
        n->st.suppressed++;
        RSRE_LOG(RSRE_LOG_DEBUG, "notify", "suppressed duplicate subject=%s channel=%s chat=%s",
                 tmpl->subject, c->conf->name, tmpl->chat);
        return 1;
    }
    if (n->njobs >= RSRE_NOTIFY_QUEUE_MAX) {
        RSRE_LOG(RSRE_LOG_ERROR, "notify", "queue full: subject=%s channel=%s not queued",
                 tmpl->subject, c->conf->name);
        return RSRE_ELIMIT;
    }
    struct notify_job *j = malloc(sizeof(*j));
    if (!j) {
        return -ENOMEM;
    }
    *j = *tmpl;
    j->n = n;
    j->inflight = 0;
    j->attempts = 0;
    j->due = now_ms;
    n->jobs[n->njobs++] = j;
    n->st.queued = n->njobs;
    return 0;
}

/* Backoff before attempt `attempts + 1`: base * 2^(attempts-1), capped, times 0.5..1.0. */
static int64_t backoff(struct rsre_notify *n, const struct rsre_notify_channel_conf *c,
                       unsigned attempts) {
    int64_t d = c->backoff_base_ms;
    for (unsigned i = 1; i < attempts && d < c->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > c->backoff_max_ms) {
        d = c->backoff_max_ms;
    }
    return d / 2 + (int64_t)(next_rand(n) % (uint64_t)(d / 2 + 1));
}

/* `j` failed for good: counted (unless `counted`: a late failure reported before its send
 * completed was counted then), sent to the alternate channel once, logged, recorded in-app. */
static void fail_over(struct rsre_notify *n, struct notify_job *j, const char *why, int64_t now_ms,
                      int counted) {
    const struct notify_chan *c = &n->chans[j->ch];
    if (!counted) {
        n->st.failed++;
        if (n->hooks.delivery_failed) {
            n->hooks.delivery_failed(n->hooks.arg, c->conf->name);
        }
    }
    int alt = c->conf->alternate[0] ? rsre__notify_chan_find(n, c->conf->alternate) : -1;
    size_t queued = 0;
    if (alt >= 0 && j->hops == 0) {
        struct notify_job t = *j;
        t.ch = alt;
        t.hops = j->hops + 1;
        if (j->kind == JOB_APPROVAL) {
            /* The same approver on the alternate channel, buttons bound to that identity. */
            const struct rsre_operator *op = rsre_operators_find(n->operators, j->op);
            enum rsre_chat chat = !strcmp(n->chans[alt].conf->name, "whatsapp")
                                      ? RSRE_CHAT_WHATSAPP
                                      : RSRE_CHAT_TELEGRAM;
            const char *id = op ? rsre_operator_chat_id(op, chat) : NULL;
            if (id) {
                snprintf(t.chat, sizeof(t.chat), "%s", id);
                queued += rsre__notify_enqueue(n, &t, now_ms) >= 0;
            }
        } else {
            const struct rsre_notify_channel_conf *ac = n->chans[alt].conf;
            for (size_t i = 0; i < ac->nchats; i++) {
                snprintf(t.chat, sizeof(t.chat), "%s", ac->chats[i]);
                queued += rsre__notify_enqueue(n, &t, now_ms) >= 0;
            }
        }
    }
    if (queued) {
        n->st.failovers++;
    }
    RSRE_LOG(RSRE_LOG_WARN, "notify",
             "delivery failed subject=%s channel=%s chat=%s attempts=%u err=\"%s\" failover=%s",
             j->subject, c->conf->name, j->chat, j->attempts, why,
             queued ? n->chans[alt].conf->name : "in-app only");
    char title[256], text[1024];
    snprintf(title, sizeof(title), "Delivery of %s to %s failed", j->subject, c->conf->name);
    snprintf(text, sizeof(text), "%s chat %s: %s after %u attempt(s); %s", c->conf->name, j->chat,
             why, j->attempts,
             queued ? "sent through the alternate channel instead"
                    : "no alternate channel left: shown here only");
    rsre__notify_inapp(n, "delivery_failure", j->subject, "warning", title, text, j->link, now_ms);
}

static void on_sent(void *arg, const struct rsre_send_result *r);

/* Remembers a late failure of `message_id` on channel `ch` that no thread names (yet);
 * `counted`: it was counted on arrival. */
static void early_put(struct rsre_notify *n, int ch, const char *message_id, const char *why,
                      int counted) {
    struct notify_early *e = &n->early[n->early_pos];
    n->early_pos = (n->early_pos + 1) % RSRE_NOTIFY_EARLY_MAX;
    e->ch = ch;
    e->counted = counted;
    snprintf(e->message_id, sizeof(e->message_id), "%s", message_id);
    snprintf(e->why, sizeof(e->why), "%s", why);
}

/* 1, its reason in `why` and whether it was counted in *counted (forgotten then) when a late
 * failure of `message_id` on `ch` came before the send that produced that id completed; else
 * 0. */
static int early_take(struct rsre_notify *n, int ch, const char *message_id, char *why, size_t cap,
                      int *counted) {
    for (size_t i = 0; message_id[0] && i < RSRE_NOTIFY_EARLY_MAX; i++) {
        struct notify_early *e = &n->early[i];
        if (e->ch == ch && !strcmp(e->message_id, message_id)) {
            snprintf(why, cap, "%s", e->why);
            *counted = e->counted;
            e->message_id[0] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Remembers that the recheck sent on `ch` as `message_id` was accepted. */
static void recheck_put(struct rsre_notify *n, int ch, const char *message_id) {
    struct notify_recheck *e = &n->rechecked[n->rechecked_pos];
    n->rechecked_pos = (n->rechecked_pos + 1) % RSRE_NOTIFY_RECHECKS_MAX;
    e->ch = ch;
    snprintf(e->message_id, sizeof(e->message_id), "%s", message_id);
}

/* 1 when `message_id` on `ch` is a recheck accepted recently (one of the last 16). */
static int recheck_known(const struct rsre_notify *n, int ch, const char *message_id) {
    for (size_t i = 0; message_id[0] && i < RSRE_NOTIFY_RECHECKS_MAX; i++) {
        const struct notify_recheck *e = &n->rechecked[i];
        if (e->ch == ch && !strcmp(e->message_id, message_id)) {
            return 1;
        }
    }
    return 0;
}

/* 1 when a send to `chat` on `ch` is in flight (its reply, and so its id, still to come). */
static int chat_inflight(const struct rsre_notify *n, int ch, const char *chat) {
    for (size_t i = 0; i < n->njobs; i++) {
        if (n->jobs[i]->inflight && n->jobs[i]->ch == ch && !strcmp(n->jobs[i]->chat, chat)) {
            return 1;
        }
    }
    return 0;
}

/* Starts sending `j` now. */
static void send_job(struct rsre_notify *n, struct notify_job *j, int64_t now_ms) {
    struct notify_chan *c = &n->chans[j->ch];
    char key[RSRE_STORE_NOTIFY_KEY_MAX + 1];
    rsre__notify_thread_key(j->subject, c->conf->name, j->chat, key, sizeof(key));
    struct thread t;
    int have = thread_get(n, key, &t) == 0;
    char pa[RSRE_NOTIFY_PAYLOAD_MAX + 1] = "", pd[RSRE_NOTIFY_PAYLOAD_MAX + 1] = "";
    struct rsre_chat_button b[3];
    size_t nb = 0;
    if (j->buttons && n->secret_len) {
        if (rsre_notify_sign(n->secret, n->secret_len, c->conf->name, j->chat, j->subject, 1,
                             j->expires_ms, pa) == 0 &&
            rsre_notify_sign(n->secret, n->secret_len, c->conf->name, j->chat, j->subject, 0,
                             j->expires_ms, pd) == 0) {
            b[nb++] = (struct rsre_chat_button){.label = "Approve", .payload = pa};
            b[nb++] = (struct rsre_chat_button){.label = "Deny", .payload = pd};
        }
    }
    if (j->link[0] && (j->buttons || j->kind == JOB_INCIDENT)) {
        b[nb++] = (struct rsre_chat_button){.label = "Details", .url = j->link};
    }
    struct rsre_chat_message m = {.chat = j->chat,
                                  .text = j->text,
                                  .edit_ref = have ? t.ref : NULL,
                                  .buttons = nb ? b : NULL,
                                  .nbuttons = nb};
    j->inflight = 1;
    j->attempts++;
    int rc = c->ch->ops->send(c->ch, &m, on_sent, j);
    if (rc) {
        struct rsre_send_result r = {.status = RSRE_SEND_TRANSIENT};
        snprintf(r.error, sizeof(r.error), "send not started: %s", rsre_strerror(rc));
        on_sent(j, &r);
    }
}

static void on_sent(void *arg, const struct rsre_send_result *r) {
    struct notify_job *j = arg;
    struct rsre_notify *n = j->n;
    j->inflight = 0;
    if (n->closing) {
        return; /* destroy frees the jobs */
    }
    int64_t now = clock_now(n);
    struct notify_chan *c = &n->chans[j->ch];
    const struct rsre_notify_channel_conf *conf = c->conf;
    char key[RSRE_STORE_NOTIFY_KEY_MAX + 1];
    rsre__notify_thread_key(j->subject, conf->name, j->chat, key, sizeof(key));
    struct thread t;
    int edit = thread_get(n, key, &t) == 0;
    switch (r->status) {
    case RSRE_SEND_OK: {
        struct thread nt = {
            .hash = text_hash(j->text), .sent_at = now, .text = j->text, .last = r->message_id};
        /* Telegram edits keep the first message's id; WhatsApp "edits" are replies with
         * their own id, but the thread stays anchored on the first message. */
        memcpy(nt.ref, edit && t.ref[0] ? t.ref : r->message_id, sizeof(nt.ref));
        nt.ref[sizeof(nt.ref) - 1] = '\0';
        int rc = thread_write(n, key, &nt);
        if (rc) {
            RSRE_LOG(RSRE_LOG_ERROR, "notify", "thread %s not stored: %s", key, rsre_strerror(rc));
        }
        if (edit) {
            n->st.edits++;
        } else {
            n->st.sent++;
        }
        char early_why[320];
        int counted = 0;
        if (early_take(n, j->ch, r->message_id, early_why, sizeof(early_why), &counted)) {
            /* Its failed status came first: the chat is failing, the message fails over (a
             * recheck only keeps the chat failing: no count, fail-over or record). */
            set_chat_state(n, j->ch, j->chat, 1, early_why, j, now);
            if (!j->probe) {
                fail_over(n, j, early_why, now, counted);
            }
            job_remove(n, j);
            rsre_notify_poll(n, now);
            if (n->njobs && n->hooks.wake) {
                n->hooks.wake(n->hooks.arg);
            }
            return;
        }
        if (j->probe) {
            recheck_put(n, j->ch, r->message_id);
        }
        c->down_hard = 0;
        set_chat_state(n, j->ch, j->chat, 0, NULL, NULL, now);
        job_remove(n, j);
        if (n->njobs && n->hooks.wake) {
            n->hooks.wake(n->hooks.arg); /* a message waiting for this thread may go now */
        }
        return;
    }
    case RSRE_SEND_REJECTED:
        if (edit && j->attempts == 1) {
            /* The message to edit is gone or cannot be edited: start the thread again. */
            thread_forget(n, key);
            j->due = now;
            if (n->hooks.wake) {
                n->hooks.wake(n->hooks.arg);
            }
            return;
        }
        break;
    case RSRE_SEND_CHAT_FAILED:
        break;
    case RSRE_SEND_RETRY:
    case RSRE_SEND_TRANSIENT:
        if (j->attempts < (c->down_hard ? 1u : conf->max_attempts)) {
            int64_t d = backoff(n, conf, j->attempts);
            if (r->status == RSRE_SEND_RETRY && r->retry_after_ms > d) {
                d = r->retry_after_ms;
            }
            j->due = now + d;
            n->st.retries++;
            if (n->hooks.wake) {
                n->hooks.wake(n->hooks.arg);
            }
            RSRE_LOG(RSRE_LOG_INFO, "notify",
                     "retry subject=%s channel=%s attempt=%u in_ms=%" PRId64 " http=%d err=\"%s\"",
                     j->subject, conf->name, j->attempts, d, r->http_status, r->error);
            return;
        }
        break;
    }
    char why[320];
    snprintf(why, sizeof(why), "%s (http %d, code %ld): %.200s",
             r->status == RSRE_SEND_CHAT_FAILED ? "chat unreachable"
             : r->status == RSRE_SEND_REJECTED  ? "request rejected"
                                                : "retries exhausted",
             r->http_status, r->api_code, r->error);
    /* A chat that cannot be reached (blocked, not found) is that chat's failure: the message
     * fails over and the channel counts as down for health, but other chats keep their full
     * retries. Exhausted retries mean the channel itself is failing. */
    if (r->status == RSRE_SEND_RETRY || r->status == RSRE_SEND_TRANSIENT) {
        c->down_hard = 1;
    }
    set_chat_state(n, j->ch, j->chat, 1, why, j, now);
    if (j->probe) {
        /* Still failing: already failed over and recorded when it first failed. */
        RSRE_LOG(RSRE_LOG_INFO, "notify", "recheck subject=%s channel=%s chat=%s still failing: %s",
                 j->subject, conf->name, j->chat, why);
        job_remove(n, j);
        if (n->njobs && n->hooks.wake) {
            n->hooks.wake(n->hooks.arg);
        }
        return;
    }
    fail_over(n, j, why, now, 0);
    job_remove(n, j);
    rsre_notify_poll(n, now); /* the fail-over copies go out now */
    if (n->njobs && n->hooks.wake) {
        n->hooks.wake(n->hooks.arg);
    }
}

/* ---- public ---- */

int rsre_notify_create(const struct rsre_notify_config *cfg, const struct rsre_notify_hooks *hooks,
                       struct rsre_notify **out) {
    *out = NULL;
    int rc = 0;
    struct rsre_notify *n = NULL;
    if (!cfg || !cfg->routes || !cfg->store || !hooks ||
        cfg->nchannels > RSRE_NOTIFY_CHANNELS_MAX ||
        (cfg->secret && (cfg->secret_len < RSRE_NOTIFY_SECRET_MIN || cfg->secret_len > 256))) {
        rc = -EINVAL;
        goto fail;
    }
    n = calloc(1, sizeof(*n));
    if (!n) {
        rc = -ENOMEM;
        goto fail;
    }
    n->routes = cfg->routes;
    n->store = cfg->store;
    n->approvals = cfg->approvals;
    n->operators = cfg->operators;
    n->hooks = *hooks;
    if (cfg->secret) {
        memcpy(n->secret, cfg->secret, cfg->secret_len);
        n->secret_len = cfg->secret_len;
    }
    n->rng = cfg->jitter_seed ? cfg->jitter_seed : (uint64_t)clock_now(n) | 1;
    for (size_t i = 0; i < rsre_notify_routes_channels(cfg->routes); i++) {
        const struct rsre_notify_channel_conf *conf = rsre_notify_routes_channel(cfg->routes, i);
        struct rsre_channel *found = NULL;
        for (size_t k = 0; k < cfg->nchannels; k++) {
            if (cfg->channels[k] && !strcmp(cfg->channels[k]->ops->name, conf->name)) {
                found = cfg->channels[k];
            }
        }
        if (!found) {
            RSRE_LOG(RSRE_LOG_ERROR, "notify", "channel %s is routed to but not configured",
                     conf->name);
            rc = RSRE_EINVALID;
            goto fail;
        }
        n->chans[n->nchans++] = (struct notify_chan){
            .ch = found, .conf = conf, .tokens = conf->burst, .refilled_at = clock_now(n)};
    }
    for (size_t k = 0; k < cfg->nchannels; k++) {
        if (cfg->channels[k] && rsre__notify_chan_find(n, cfg->channels[k]->ops->name) < 0) {
            RSRE_LOG(RSRE_LOG_ERROR, "notify",
                     "transport %s is configured but not in the notifications file's channels",
                     cfg->channels[k]->ops->name);
            rc = RSRE_EINVALID;
            goto fail;
        }
    }
    n->st.channels_total = (unsigned)n->nchans;
    *out = n;
    return 0;
fail:
    for (size_t k = 0; cfg && k < cfg->nchannels && k < RSRE_NOTIFY_CHANNELS_MAX; k++) {
        if (cfg->channels[k]) {
            cfg->channels[k]->ops->destroy(cfg->channels[k]);
        }
    }
    free(n);
    return rc;
}

/* ---- failures learnt after a successful send (WhatsApp status webhooks) ---- */

/* The thread a late failure belongs to: the one whose first or latest message has the failed
 * message's id; failing that, the thread that chat was sent to most recently, whose text is
 * what the chat gets again while it is failing (so it is rechecked like any failing chat). */
struct late_find {
    const char *suffix; /* "/<channel>/<chat>" */
    const char *message_id;
    char subject[RSRE_STORE_ID_MAX + 1];
    char text[RSRE_NOTIFY_TEXT_MAX];
    int found;
    char latest_subject[RSRE_STORE_ID_MAX + 1];
    char latest_text[RSRE_NOTIFY_TEXT_MAX];
    int64_t latest_at;
    int have_latest;
};

static int late_cb(const char *key, const void *val, size_t len, void *ud) {
    struct late_find *f = ud;
    size_t kl = strlen(key), sl = strlen(f->suffix);
    if (kl <= sl + 2 || strcmp(key + kl - sl, f->suffix)) {
        return 0;
    }
    json_error_t je;
    json_t *o = json_loadb(val, len, 0, &je);
    const char *ref = json_string_value(json_object_get(o, "ref"));
    const char *last = json_string_value(json_object_get(o, "last"));
    const char *text = json_string_value(json_object_get(o, "text"));
    int64_t at = json_integer_value(json_object_get(o, "sent_at"));
    if (ref && text && (!strcmp(ref, f->message_id) || (last && !strcmp(last, f->message_id)))) {
        snprintf(f->subject, sizeof(f->subject), "%.*s", (int)(kl - sl - 2), key + 2);
        snprintf(f->text, sizeof(f->text), "%s", text);
        f->found = 1;
    } else if (text && text[0] && (!f->have_latest || at > f->latest_at)) {
        snprintf(f->latest_subject, sizeof(f->latest_subject), "%.*s", (int)(kl - sl - 2), key + 2);
        snprintf(f->latest_text, sizeof(f->latest_text), "%s", text);
        f->latest_at = at;
        f->have_latest = 1;
    }
    json_decref(o);
    return f->found ? 1 : 0;
}

/* A message the platform accepted was not delivered (a WhatsApp `failed` status): the chat is
 * failing from now on, the message of a known thread fails over like a send that failed, and
 * the chat gets a thread's latest text again every recheck_ms until a send to it succeeds. */
static void on_delivery(void *arg, const struct rsre_chat_delivery *d) {
    struct rsre_notify *n = arg;
    if (n->closing || !d || !d->channel || !d->chat || !d->message_id || !d->result) {
        return;
    }
    int ch = rsre__notify_chan_find(n, d->channel);
    if (ch < 0) {
        return;
    }
    int64_t now = clock_now(n);
    struct late_find *f = calloc(1, sizeof(*f));
    if (!f) {
        return;
    }
    char suffix[RSRE_NOTIFY_NAME_MAX * 2 + 4];
    snprintf(suffix, sizeof(suffix), "/%s/%s", d->channel, d->chat);
    f->suffix = suffix;
    f->message_id = d->message_id;
    rsre_store_txn *txn;
    if (rsre_store_txn_begin(n->store, 1, &txn) == 0) {
        rsre_store_notify_foreach(txn, "t/", NULL, late_cb, f);
        rsre_store_txn_abort(txn);
    }
    const char *subject = f->found ? f->subject : f->have_latest ? f->latest_subject : NULL;
    struct notify_job j;
    memset(&j, 0, sizeof(j));
    j.n = n;
    j.ch = ch;
    j.attempts = 1;
    snprintf(j.chat, sizeof(j.chat), "%s", d->chat);
    snprintf(j.subject, sizeof(j.subject), "%s", subject ? subject : d->message_id);
    snprintf(j.text, sizeof(j.text), "%s",
             f->found         ? f->text
             : f->have_latest ? f->latest_text
                              : "");
    if (subject && !strncmp(subject, "apr-", 4)) {
        enum rsre_chat c =
            !strcmp(d->channel, "whatsapp") ? RSRE_CHAT_WHATSAPP : RSRE_CHAT_TELEGRAM;
        const struct rsre_operator *op = rsre_operators_find_chat(n->operators, c, d->chat);
        j.kind = JOB_APPROVAL;
        snprintf(j.op, sizeof(j.op), "%s", op ? op->id : "");
    }
    char why[320];
    snprintf(why, sizeof(why), "delivery failed after acceptance (code %ld): %.200s",
             d->result->api_code, d->result->error);
    set_chat_state(n, ch, d->chat, 1, why, subject ? &j : NULL, now);
    if (recheck_known(n, ch, d->message_id)) {
        /* A recheck's own failure: the chat still fails (it was failed over and recorded when
         * it first failed), so no count, no fail-over, no record; it is rechecked again. */
        RSRE_LOG(RSRE_LOG_INFO, "notify",
                 "recheck channel=%s chat=%s message=%s still failing (reported later): %s",
                 d->channel, d->chat, d->message_id, why);
    } else if (f->found) {
        /* The copy carries no buttons (the expiry is not known here): the text and its link. */
        fail_over(n, &j, why, now, 0);
    } else {
        /* While a send to that chat is in flight this may be its status come early: that send
         * counts it when its reply names the id (a recheck does not). */
        int counted = !chat_inflight(n, ch, d->chat);
        if (counted) {
            n->st.failed++;
            if (n->hooks.delivery_failed) {
                n->hooks.delivery_failed(n->hooks.arg, d->channel);
            }
        }
        early_put(n, ch, d->message_id, why, counted);
        RSRE_LOG(RSRE_LOG_WARN, "notify",
                 "late delivery failure channel=%s chat=%s message=%s "
                 "(not a thread we know; rechecked with %s): %s",
                 d->channel, d->chat, d->message_id, subject ? subject : "nothing to re-send", why);
    }
    free(f);
    rsre_notify_poll(n, now);
}

static void on_action(void *arg, const struct rsre_chat_action *a) {
    struct rsre_notify *n = arg;
    rsre_notify_action(n, a, clock_now(n));
}

int rsre_notify_start(struct rsre_notify *n) {
    for (size_t i = 0; i < n->nchans; i++) {
        if (n->chans[i].ch->ops->start) {
            if (n->chans[i].ch->ops->on_delivery) {
                n->chans[i].ch->ops->on_delivery(n->chans[i].ch, on_delivery, n);
            }
            int rc = n->chans[i].ch->ops->start(n->chans[i].ch, on_action, n);
            if (rc) {
                RSRE_LOG(RSRE_LOG_ERROR, "notify", "channel %s did not start: %s",
                         n->chans[i].conf->name, rsre_strerror(rc));
                return rc;
            }
        }
    }
    report_health(n);
    return 0;
}

struct rsre_channel *rsre_notify_channel(struct rsre_notify *n, const char *name) {
    int i = n && name ? rsre__notify_chan_find(n, name) : -1;
    return i >= 0 ? n->chans[i].ch : NULL;
}

void rsre_notify_destroy(struct rsre_notify *n) {
    if (!n) {
        return;
    }
    n->closing = 1;
    for (size_t i = 0; i < n->nchans; i++) {
        n->chans[i].ch->ops->destroy(n->chans[i].ch);
    }
    for (size_t i = 0; i < n->njobs; i++) {
        free(n->jobs[i]);
    }
    for (size_t i = 0; i < n->nchans; i++) {
        for (size_t k = 0; k < n->chans[i].nfailing; k++) {
            free(n->chans[i].probe[k]);
        }
    }
    memset(n->secret, 0, sizeof(n->secret));
    free(n);
}

static const char *severity_name(int s) {
    switch (s) {
    case ROBOT_SRE__STORE__SEVERITY__SEVERITY_INFO:
        return "info";
    case ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING:
        return "warning";
    case ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL:
        return "critical";
    default:
        return "unknown";
    }
}

static const char *confidence_name(int c) {
    static const char *const names[] = {"unknown", "low", "medium", "high"};
    return c >= 0 && c < 4 ? names[c] : "unknown";
}

static const char *lifecycle_name(int l) {
    static const char *const names[] = {"unknown",    "observed", "triaged",    "contained",
                                        "recovering", "resolved", "suppressed", "escalated"};
    return l >= 0 && l < 8 ? names[l] : "unknown";
}

static const char *env_name(int e) {
    static const char *const names[] = {"", "demo", "staging", "production"};
    return e >= 0 && e < 4 ? names[e] : "";
}

/* The incident message: type, severity, confidence, scope, evidence summary, link. */
static void render_incident(const struct rsre_notify *n, const rsre_store_incident *inc, char *buf,
                            size_t cap, char *link, size_t lcap) {
    const char *base = rsre_notify_routes_admin_url(n->routes);
    if (base[0]) {
        snprintf(link, lcap, "%s/incidents/%s", base, inc->id);
    } else {
        link[0] = '\0';
    }
    char scope[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < inc->n_resource_scope && off < sizeof(scope) - 1; i++) {
        const RobotSre__Store__ResourceRef *r = inc->resource_scope[i];
        int w = snprintf(scope + off, sizeof(scope) - off, "%s%s/%s%s%s", i ? ", " : "",
                         r->kind && *r->kind ? r->kind : "resource",
                         r->k8s_namespace && *r->k8s_namespace ? r->k8s_namespace : "",
                         r->k8s_namespace && *r->k8s_namespace ? "/" : "", r->name ? r->name : "");
        if (w < 0) {
            break;
        }
        off += (size_t)w;
    }
    if (off >= sizeof(scope)) {
        scope[sizeof(scope) - 1] = '\0';
    }
    const char *sev = severity_name(inc->severity);
    snprintf(buf, cap,
             "[%s] %s (%s)\n"
             "Severity: %s\n"
             "Confidence: %s (%.2f)\n"
             "State: %s\n"
             "Scope: %s\n"
             "Evidence: %.1500s\n"
             "Incident: %s%s%s",
             sev, inc->incident_type, inc->domain && *inc->domain ? inc->domain : "-", sev,
             confidence_name(inc->confidence), inc->confidence_score,
             lifecycle_name(inc->lifecycle), scope[0] ? scope : "cluster",
             inc->evidence_summary && *inc->evidence_summary ? inc->evidence_summary : "-", inc->id,
             link[0] ? "\nDetails: " : "", link);
    /* Upper-case the leading severity tag. */
    for (char *p = buf + 1; *p && *p != ']'; p++) {
        if (*p >= 'a' && *p <= 'z') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
}

void rsre_notify_incident(struct rsre_notify *n, const rsre_store_incident *inc, const char *what,
                          int64_t now_ms) {
    if (!n || !inc || !inc->id || n->closing) {
        return;
    }
    struct notify_job t;
    memset(&t, 0, sizeof(t));
    t.kind = JOB_INCIDENT;
    snprintf(t.subject, sizeof(t.subject), "%s", inc->id);
    snprintf(t.severity, sizeof(t.severity), "%s", severity_name(inc->severity));
    render_incident(n, inc, t.text, sizeof(t.text), t.link, sizeof(t.link));
    char title[256];
    snprintf(title, sizeof(title), "%s %s: %s", inc->incident_type, what, inc->id);
    rsre__notify_inapp(n, "incident", inc->id, t.severity, title, t.text, t.link, now_ms);

    struct rsre_notify_subject s = {.environment = env_name(inc->environment),
                                    .domain = inc->domain,
                                    .incident_type = inc->incident_type,
                                    .severity = t.severity};
    struct rsre_notify_target to[RSRE_NOTIFY_CHANNELS_MAX];
    size_t nto = rsre_notify_route(n->routes, &s, to, RSRE_NOTIFY_CHANNELS_MAX);
    for (size_t i = 0; i < nto; i++) {
        int ch = rsre__notify_chan_find(n, to[i].channel);
        if (ch < 0) {
            continue;
        }
        t.ch = ch;
        for (size_t k = 0; k < to[i].nchats; k++) {
            snprintf(t.chat, sizeof(t.chat), "%s", to[i].chats[k]);
            rsre__notify_enqueue(n, &t, now_ms);
        }
    }
    rsre_notify_poll(n, now_ms);
}

void rsre_notify_poll(struct rsre_notify *n, int64_t now_ms) {
    if (!n || n->closing) {
        return;
    }
    for (size_t i = 0; i < n->nchans; i++) {
        struct notify_chan *c = &n->chans[i];
        if (now_ms > c->refilled_at) {
            c->tokens += (double)(now_ms - c->refilled_at) * c->conf->rate_per_minute / 60000.0;
            if (c->tokens > c->conf->burst) {
                c->tokens = c->conf->burst;
            }
        }
        c->refilled_at = now_ms;
    }
    /* Failing chats get their last message again once in a while: a success brings them back. */
    for (size_t i = 0; i < n->nchans; i++) {
        struct notify_chan *c = &n->chans[i];
        for (size_t k = 0; k < c->nfailing; k++) {
            struct notify_job *p = c->probe[k];
            if (!p || now_ms < c->recheck_at[k]) {
                continue;
            }
            c->recheck_at[k] = now_ms + c->conf->recheck_ms;
            struct notify_job t = *p;
            t.probe = 1;
            t.hops = 1;
            t.buttons = p->buttons && p->expires_ms > now_ms;
            if (rsre__notify_enqueue(n, &t, now_ms) == 0) {
                n->st.rechecks++;
            }
        }
    }
    /* Oldest first: jobs are appended, removal swaps, so walk a snapshot by due time. */
    for (int progress = 1; progress;) {
        progress = 0;
        struct notify_job *best = NULL;
        for (size_t i = 0; i < n->njobs; i++) {
            struct notify_job *j = n->jobs[i];
            if (j->inflight || j->due > now_ms || n->chans[j->ch].tokens < 1.0) {
                continue;
            }
            /* A message of the same thread is in flight: wait for its message id. */
            if (!thread_busy(n, j) && (!best || j->due < best->due)) {
                best = j;
            }
        }
        if (best) {
            n->chans[best->ch].tokens -= 1.0;
            send_job(n, best, now_ms);
            progress = 1;
        }
    }
    /* Jobs held back only by the bucket wait for their token. */
    for (size_t i = 0; i < n->njobs; i++) {
        struct notify_job *j = n->jobs[i];
        struct notify_chan *c = &n->chans[j->ch];
        if (!j->inflight && j->due <= now_ms && c->tokens < 1.0) {
            int64_t wait = (int64_t)((1.0 - c->tokens) * 60000.0 / c->conf->rate_per_minute) + 1;
            j->due = now_ms + wait;
        }
    }
}

int64_t rsre_notify_next_due(const struct rsre_notify *n) {
    int64_t due = INT64_MAX;
    for (size_t i = 0; n && i < n->njobs; i++) {
        /* A message waiting for its thread is woken when that send completes (hooks.wake). */
        if (!n->jobs[i]->inflight && n->jobs[i]->due < due && !thread_busy(n, n->jobs[i])) {
            due = n->jobs[i]->due;
        }
    }
    return due;
}

void rsre_notify_stats(const struct rsre_notify *n, struct rsre_notify_stats *out) {
    *out = n->st;
    out->queued = n->njobs;
}
