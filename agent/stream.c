/*
 * The agent's AgentStream.Connect client (agent/stream.h). One `struct call` per attempt: its
 * own channel (local subchannel pool, so a new attempt really dials again) and its own gRPC
 * call with at most three ops outstanding — RECV_STATUS_ON_CLIENT for the whole call, one
 * RECV_MESSAGE, one SEND_MESSAGE (the first carries the initial metadata and Hello). The call
 * struct is freed when the last of its ops has completed; only then is the next attempt
 * scheduled, so at most one call exists at a time and closing waits for exactly one.
 */
#include "agent/stream.h"

#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/log.h"
#include "common/pbuf.h"

#define M(x) RobotSre__Agent__V1__##x
#define E(x) ROBOT_SRE__AGENT__V1__##x

#define TLS_FILE_MAX (1024 * 1024)

_Static_assert(RSRE_SPOOL_MAX_MESSAGE <= RSRE_PBUF_MAX_MESSAGE_BYTES,
               "every spooled batch must be sendable");

#define CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

enum timer_mode { TIMER_IDLE, TIMER_BACKOFF, TIMER_HELLO, TIMER_ACK };

struct result {
    struct result *next;
    char request_id[RSRE_PBUF_MAX_ID_LEN + 1];
    uint8_t *msg;
    size_t len;
    uint64_t sent_call; /* number of the call it was last sent on; 0 = not on any */
};

struct call {
    struct rsre_stream *st;
    uint64_t num;
    grpc_channel *channel;
    grpc_call *call;
    struct rsre_grpc_op op_send, op_recv, op_status;
    int pending; /* ops started whose callback has not run */
    int sending, dead, up;
    grpc_byte_buffer *send_buf, *recv_buf;
    grpc_metadata_array md_initial, md_trailing;
    grpc_status_code status;
    grpc_slice details;
    int have_status;
    uint64_t last_sent_id; /* spool entries with id <= this were sent on this call */
    int config_seen;
    uint64_t config_generation;
    const char *fail_reason; /* why we cancelled, for the log */
};

struct rsre_stream {
    uv_loop_t *loop;
    struct rsre_grpc_loop *gl;
    const struct rsre_agent_config *cfg;
    struct rsre_spool *spool;
    char boot[RSRE_SPOOL_BOOT_ID_MAX + 1];
    uint8_t *hello;
    size_t hello_len;
    char runtime[RSRE_STREAM_RUNTIME_MAX + 1]; /* Hello.container_runtime when set; "" = the stored one */
    struct rsre_stream_callbacks cb;
    uint32_t min_ms, max_ms, keepalive_ms;

    uv_timer_t timer;
    enum timer_mode timer_mode;
    struct call *call;
    uint64_t calls;
    unsigned attempt;
    uint64_t rng;

    struct result *rhead, *rtail;
    size_t nresults;
    uint64_t max_sent_id;

    int closing, timer_closed;
    void (*closed)(void *);
    void *closed_arg;
    struct rsre_stream_stats stats;
};

static void start_call(struct rsre_stream *st);
static void pump(struct rsre_stream *st);

/* ---- helpers -------------------------------------------------------------------------------- */

static int64_t now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_rand(struct rsre_stream *st) {
    st->rng ^= st->rng >> 12;
    st->rng ^= st->rng << 25;
    st->rng ^= st->rng >> 27;
    return st->rng * 2685821657736338717ull;
}

/* Reads a whole PEM file (at most TLS_FILE_MAX bytes) into a NUL-terminated string. */
static int read_file(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return -errno;
    }
    char *buf = malloc(TLS_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return -EIO;
    }
    if (n > TLS_FILE_MAX) {
        free(buf);
        return RSRE_ELIMIT;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int valid_request_id(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > RSRE_PBUF_MAX_ID_LEN) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static int valid_action_id(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > RSRE_PBUF_MAX_ID_LEN) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !(c == '.' || c == '_' || c == '-'))) {
            return 0;
        }
    }
    return 1;
}

/* ---- timer ---------------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void timer_set(struct rsre_stream *st, enum timer_mode mode, uint64_t ms) {
    st->timer_mode = mode;
    uv_timer_start(&st->timer, on_timer, ms, 0);
}

static void timer_clear(struct rsre_stream *st) {
    st->timer_mode = TIMER_IDLE;
    uv_timer_stop(&st->timer);
}

/* ---- call lifecycle ------------------------------------------------------------------------- */

/* Cancels the call (once); its ops complete and call_done() runs after the last one. */
static void call_fail(struct call *c, grpc_status_code code, const char *why) {
    if (c->dead) {
        return;
    }
    c->dead = 1;
    c->fail_reason = why;
    if (code == GRPC_STATUS_CANCELLED) {
        grpc_call_cancel(c->call, NULL);
    } else {
        grpc_call_cancel_with_status(c->call, code, why, NULL);
    }
}

static uint32_t backoff_delay(struct rsre_stream *st) {
    uint64_t cap = st->min_ms;
    for (unsigned i = 0; i < st->attempt && cap < st->max_ms; i++) {
        cap *= 2;
    }
    if (cap > st->max_ms) {
        cap = st->max_ms;
    }
    if (st->attempt < 64) {
        st->attempt++;
    }
    return (uint32_t)(st->min_ms + next_rand(st) % (cap - st->min_ms + 1));
}

static void maybe_finish_close(struct rsre_stream *st) {
    if (!st->closing || st->call || !st->timer_closed) {
        return;
    }
    struct result *r = st->rhead;
    while (r) {
        struct result *next = r->next;
        free(r->msg);
        free(r);
        r = next;
    }
    void (*closed)(void *) = st->closed;
    void *arg = st->closed_arg;
    free(st->hello);
    free(st);
    if (closed) {
        closed(arg);
    }
}

/* The last op of the call completed: release it, then reconnect (or finish closing). */
static void call_done(struct call *c) {
    struct rsre_stream *st = c->st;
    char details[256] = "";
    if (c->have_status) {
        size_t n = GRPC_SLICE_LENGTH(c->details);
        if (n >= sizeof(details)) {
            n = sizeof(details) - 1;
        }
        memcpy(details, GRPC_SLICE_START_PTR(c->details), n);
        details[n] = '\0';
        st->stats.last_status = (int)c->status;
    }
    int level = st->closing ? RSRE_LOG_DEBUG : RSRE_LOG_WARN;
    RSRE_LOG(level, "stream",
             "aggregator stream ended target=%s call=%llu status=%s details=\"%s\" reason=\"%s\" "
             "was_up=%d",
             st->cfg->aggregator, (unsigned long long)c->num,
             c->have_status ? rsre_grpc_status_name(c->status) : "none", details,
             c->fail_reason ? c->fail_reason : "", c->up);
    grpc_metadata_array_destroy(&c->md_initial);
    grpc_metadata_array_destroy(&c->md_trailing);
    grpc_slice_unref(c->details);
    if (c->call) {
        grpc_call_unref(c->call);
    }
    if (c->channel) {
        grpc_channel_destroy(c->channel);
    }
    int was_up = c->up;
    free(c);
    st->call = NULL;
    st->stats.in_flight = 0;
    if (was_up) {
        st->stats.connected = 0;
        st->stats.disconnects++;
    }
    if (st->timer_mode == TIMER_HELLO || st->timer_mode == TIMER_ACK) {
        timer_clear(st);
    }
    if (was_up && st->cb.on_state) {
        st->cb.on_state(st->cb.arg, 0);
    }
    if (st->closing) {
        maybe_finish_close(st);
        return;
    }
    uint32_t delay = backoff_delay(st);
    st->stats.next_delay_ms = delay;
    RSRE_LOG(RSRE_LOG_DEBUG, "stream", "reconnecting in %ums attempt=%u", delay, st->attempt);
    timer_set(st, TIMER_BACKOFF, delay);
}

static void op_finished(struct call *c) {
    if (--c->pending == 0) {
        call_done(c);
    }
}

/* Starts a batch on the call; on failure the call is cancelled. Returns 0 or -1. */
static int start_batch(struct call *c, const grpc_op *ops, size_t n, struct rsre_grpc_op *tag) {
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        RSRE_LOG(RSRE_LOG_ERROR, "stream", "grpc_call_start_batch failed code=%d", (int)e);
        call_fail(c, GRPC_STATUS_INTERNAL, "start_batch failed");
        return -1;
    }
    c->pending++;
    rsre_grpc_loop_started(c->st->gl);
    return 0;
}

/* ---- sending -------------------------------------------------------------------------------- */

static void on_send(struct rsre_grpc_op *op, int ok) {
    struct call *c = CONTAINER_OF(op, struct call, op_send);
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
    c->sending = 0;
    if (!ok) {
        call_fail(c, GRPC_STATUS_CANCELLED, "send failed");
    } else if (!c->dead) {
        pump(c->st);
    }
    op_finished(c);
}

static int send_bytes(struct call *c, grpc_byte_buffer *bb, int with_metadata) {
    if (!bb) {
        call_fail(c, GRPC_STATUS_INTERNAL, "out of memory");
        return -1;
    }
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (with_metadata) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    c->send_buf = bb;
    c->op_send.cb = on_send;
    if (start_batch(c, ops, n, &c->op_send) != 0) {
        grpc_byte_buffer_destroy(bb);
        c->send_buf = NULL;
        return -1;
    }
    c->sending = 1;
    c->st->stats.bytes_sent += grpc_byte_buffer_length(bb);
    return 0;
}

static uint32_t in_flight(const struct rsre_stream *st, const struct call *c) {
    return (uint32_t)rsre_spool_index_after(st->spool, c->last_sent_id);
}

/* Sends the next message if the call is up and nothing is being sent: queued results first,
 * then the oldest unsent spooled batch while the window allows. */
static void pump(struct rsre_stream *st) {
    struct call *c = st->call;
    if (!c || c->dead || !c->up || c->sending || st->closing) {
        return;
    }
    for (struct result *r = st->rhead; r; r = r->next) {
        if (r->sent_call != c->num) {
            r->sent_call = c->num;
            if (send_bytes(c, rsre_grpc_bytes(r->msg, r->len), 0) == 0) {
                st->stats.results_sent++;
            }
            return;
        }
    }
    size_t idx = rsre_spool_index_after(st->spool, c->last_sent_id);
    if (idx >= rsre_spool_count(st->spool) || idx >= RSRE_STREAM_WINDOW) {
        st->stats.in_flight = (uint32_t)idx;
        return;
    }
    struct rsre_spool_entry e;
    if (rsre_spool_entry(st->spool, idx, &e) != 0) {
        return;
    }
    c->last_sent_id = e.id;
    if (send_bytes(c, rsre_grpc_bytes(e.msg, e.len), 0) != 0) {
        return;
    }
    st->stats.batches_sent++;
    if (e.id <= st->max_sent_id) {
        st->stats.batches_resent++;
    } else {
        st->max_sent_id = e.id;
    }
    st->stats.in_flight = (uint32_t)idx + 1;
    if (st->timer_mode != TIMER_ACK) {
        timer_set(st, TIMER_ACK, RSRE_STREAM_ACK_TIMEOUT_MS);
    }
}

/* ---- results -------------------------------------------------------------------------------- */

static void result_remove(struct rsre_stream *st, const char *request_id) {
    struct result **pp = &st->rhead, *prev = NULL;
    while (*pp) {
        struct result *r = *pp;
        if (strcmp(r->request_id, request_id) == 0) {
            *pp = r->next;
            if (st->rtail == r) {
                st->rtail = prev;
            }
            free(r->msg);
            free(r);
            st->nresults--;
            return;
        }
        prev = r;
        pp = &r->next;
    }
}

static int queue_result(struct rsre_stream *st, const rsre_action_result *r) {
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_ACTION_RESULT);
    m.action_result = (rsre_action_result *)r;
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate_agent_message(&m, err, sizeof(err)) != 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "stream", "action result refused request_id=%s error=\"%s\"",
                 r->request_id ? r->request_id : "", err);
        return RSRE_EINVALID;
    }
    uint8_t *buf;
    size_t len;
    int rc = rsre_pbuf_pack(&m.base, 0, &buf, &len);
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "stream", "action result not packed request_id=%s error=\"%s\"",
                 r->request_id, rsre_strerror(rc));
        return rc;
    }
    for (struct result *q = st->rhead; q; q = q->next) {
        if (strcmp(q->request_id, r->request_id) == 0) {
            free(q->msg);
            q->msg = buf;
            q->len = len;
            q->sent_call = 0;
            pump(st);
            return 0;
        }
    }
    struct result *q = calloc(1, sizeof(*q));
    if (!q) {
        free(buf);
        return -ENOMEM;
    }
    snprintf(q->request_id, sizeof(q->request_id), "%s", r->request_id);
    q->msg = buf;
    q->len = len;
    if (st->rtail) {
        st->rtail->next = q;
    } else {
        st->rhead = q;
    }
    st->rtail = q;
    st->nresults++;
    if (st->nresults > RSRE_STREAM_MAX_RESULTS) {
        RSRE_LOG(RSRE_LOG_WARN, "stream", "result queue full, dropping oldest request_id=%s",
                 st->rhead->request_id);
        st->stats.results_dropped++;
        result_remove(st, st->rhead->request_id);
    }
    pump(st);
    return 0;
}

/* Queues a REFUSED result the stream decided on its own. */
static void refuse(struct rsre_stream *st, const char *request_id, const char *action_id,
                   const char *why) {
    rsre_action_result r = ROBOT_SRE__AGENT__V1__ACTION_RESULT__INIT;
    r.request_id = (char *)request_id;
    r.action_id = (char *)(valid_action_id(action_id) ? action_id : "invalid");
    r.status = E(ACTION_STATUS__ACTION_STATUS_REFUSED);
    char msg[RSRE_PBUF_ERR_LEN + 64];
    snprintf(msg, sizeof(msg), "%s", why);
    r.message = msg;
    r.finished_unix_ms = now_unix_ms();
    RSRE_LOG(RSRE_LOG_WARN, "stream", "action request refused request_id=%s reason=\"%s\"",
             request_id, why);
    queue_result(st, &r);
}

/* ---- receiving ------------------------------------------------------------------------------ */

static void handle_ack(struct call *c, const M(Ack) * ack) {
    struct rsre_stream *st = c->st;
    st->stats.acks++;
    st->stats.last_ack_unix_ms = now_unix_ms();
    if (strcmp(ack->boot_id, st->boot) == 0) {
        struct rsre_spool_stats ss;
        rsre_spool_stats(st->spool, st->boot, &ss);
        st->stats.last_acked_seq = ack->committed_seq;
        if (ack->committed_seq > ss.last_seq) {
            RSRE_LOG(RSRE_LOG_ERROR, "stream",
                     "aggregator committed more than the spool holds: boot_id=%s "
                     "committed_seq=%llu last_seq=%llu; a new boot id is needed",
                     st->boot, (unsigned long long)ack->committed_seq,
                     (unsigned long long)ss.last_seq);
            if (st->cb.on_boot_conflict) {
                st->cb.on_boot_conflict(st->cb.arg, ack->boot_id, ack->committed_seq, ss.last_seq);
            }
        }
    }
    if (ack->committed_seq) {
        rsre_spool_ack(st->spool, ack->boot_id, ack->committed_seq);
    }
    for (size_t i = 0; i < ack->n_result_request_ids; i++) {
        result_remove(st, ack->result_request_ids[i]);
    }
    if (c->dead) {
        return; /* a callback above closed the call */
    }
    if (!c->up) {
        c->up = 1;
        st->attempt = 0;
        st->stats.connected = 1;
        st->stats.connects++;
        timer_clear(st);
        RSRE_LOG(RSRE_LOG_INFO, "stream",
                 "aggregator stream up target=%s boot_id=%s "
                 "committed_seq=%llu spooled=%zu",
                 st->cfg->aggregator, st->boot, (unsigned long long)ack->committed_seq,
                 rsre_spool_count(st->spool));
        if (st->cb.on_state) {
            st->cb.on_state(st->cb.arg, 1);
        }
        if (c->dead || st->closing) {
            return;
        }
    }
    uint32_t n = in_flight(st, c);
    st->stats.in_flight = n;
    if (n > 0) {
        timer_set(st, TIMER_ACK, RSRE_STREAM_ACK_TIMEOUT_MS);
    } else if (st->timer_mode == TIMER_ACK) {
        timer_clear(st);
    }
    pump(st);
}

static void handle_message(struct call *c, const uint8_t *buf, size_t len) {
    struct rsre_stream *st = c->st;
    M(AggregatorMessage) *m = NULL;
    int rc = rsre_pbuf_unpack_aggregator_message(buf, len, 0, &m);
    if (rc) {
        st->stats.protocol_errors++;
        RSRE_LOG(RSRE_LOG_ERROR, "stream",
                 "undecodable message from the aggregator len=%zu "
                 "error=\"%s\"",
                 len, rsre_strerror(rc));
        call_fail(c,
                  rc == RSRE_ELIMIT ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INVALID_ARGUMENT,
                  "undecodable message");
        return;
    }
    char err[RSRE_PBUF_ERR_LEN] = "";
    int invalid = rsre_pbuf_validate_aggregator_message(m, err, sizeof(err)) != 0;
    if (invalid) {
        st->stats.protocol_errors++;
    }
    switch (m->body_case) {
    case E(AGGREGATOR_MESSAGE__BODY_ACK):
        if (invalid) {
            RSRE_LOG(RSRE_LOG_WARN, "stream", "invalid Ack ignored error=\"%s\"", err);
        } else {
            handle_ack(c, m->ack);
        }
        break;
    case E(AGGREGATOR_MESSAGE__BODY_ACTION_REQUEST): {
        const rsre_action_request *req = m->action_request;
        if (invalid) {
            if (valid_request_id(req->request_id)) {
                refuse(st, req->request_id, req->action_id, err);
            } else {
                RSRE_LOG(RSRE_LOG_WARN, "stream", "invalid ActionRequest dropped error=\"%s\"",
                         err);
            }
        } else if (!c->config_seen) {
            refuse(st, req->request_id, req->action_id,
                   "action request before the first ConfigUpdate on this stream");
        } else if (!st->cb.on_action) {
            refuse(st, req->request_id, req->action_id, "this agent runs no actions");
        } else {
            st->cb.on_action(st->cb.arg, req);
        }
        break;
    }
    case E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE):
        if (invalid) {
            RSRE_LOG(RSRE_LOG_WARN, "stream", "invalid ConfigUpdate ignored error=\"%s\"", err);
        } else if (m->config_update->generation <= c->config_generation) {
            RSRE_LOG(RSRE_LOG_DEBUG, "stream", "stale ConfigUpdate ignored generation=%llu",
                     (unsigned long long)m->config_update->generation);
        } else {
            c->config_generation = m->config_update->generation;
            c->config_seen = 1;
            if (st->cb.on_config) {
                st->cb.on_config(st->cb.arg, m->config_update);
            }
        }
        break;
    default:
        if (invalid) {
            RSRE_LOG(RSRE_LOG_WARN, "stream", "invalid message ignored error=\"%s\"", err);
        } /* else: a message kind from a newer aggregator, skipped */
        break;
    }
    rsre_pbuf_free_aggregator_message(m);
}

static void start_recv(struct call *c, int first);

static void on_recv(struct rsre_grpc_op *op, int ok) {
    struct call *c = CONTAINER_OF(op, struct call, op_recv);
    grpc_byte_buffer *bb = c->recv_buf;
    c->recv_buf = NULL;
    if (!ok || !bb) {
        call_fail(c, GRPC_STATUS_CANCELLED, ok ? "aggregator closed the stream" : "recv failed");
    } else if (!c->dead && !c->st->closing) {
        uint8_t *buf;
        size_t len;
        int rc = rsre_grpc_flatten(bb, RSRE_PBUF_MAX_MESSAGE_BYTES, &buf, &len);
        if (rc) {
            call_fail(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "message too large");
        } else {
            handle_message(c, buf, len);
            free(buf);
        }
        if (!c->dead && !c->st->closing) {
            start_recv(c, 0);
        }
    }
    if (bb) {
        grpc_byte_buffer_destroy(bb);
    }
    op_finished(c);
}

static void start_recv(struct call *c, int first) {
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (first) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &c->md_initial;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &c->recv_buf;
    n++;
    c->op_recv.cb = on_recv;
    start_batch(c, ops, n, &c->op_recv);
}

static void on_status(struct rsre_grpc_op *op, int ok) {
    struct call *c = CONTAINER_OF(op, struct call, op_status);
    (void)ok;
    c->have_status = 1;
    c->dead = 1;
    op_finished(c);
}

/* ---- connecting ----------------------------------------------------------------------------- */

static grpc_channel_credentials *make_creds(struct rsre_stream *st) {
    const struct rsre_agent_config *cfg = st->cfg;
    if (!cfg->tls_ca[0] && !cfg->tls_cert[0] && !cfg->tls_key[0]) {
        return grpc_insecure_credentials_create();
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        RSRE_LOG(RSRE_LOG_ERROR, "stream", "tls_cert and tls_key must be set together");
        return NULL;
    }
    char *ca = NULL, *cert = NULL, *key = NULL;
    int rc = 0;
    const char *bad = NULL;
    if (cfg->tls_ca[0] && (rc = read_file(cfg->tls_ca, &ca))) {
        bad = cfg->tls_ca;
    } else if (cfg->tls_cert[0] && (rc = read_file(cfg->tls_cert, &cert))) {
        bad = cfg->tls_cert;
    } else if (cfg->tls_key[0] && (rc = read_file(cfg->tls_key, &key))) {
        bad = cfg->tls_key;
    }
    grpc_channel_credentials *creds = NULL;
    if (bad) {
        RSRE_LOG(RSRE_LOG_ERROR, "stream", "cannot read TLS file path=%s err=\"%s\"", bad,
                 rsre_strerror(rc));
    } else {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
    }
    free(ca);
    free(cert);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    return creds;
}

/* Hello for this call: the stored Hello with the stream's boot id and the spool's state. */
static grpc_byte_buffer *hello_message(struct rsre_stream *st) {
    M(Hello) *h = robot_sre__agent__v1__hello__unpack(NULL, st->hello_len, st->hello);
    if (!h) {
        return NULL;
    }
    struct rsre_spool_stats ss;
    rsre_spool_stats(st->spool, st->boot, &ss);
    M(SpoolState) sp = ROBOT_SRE__AGENT__V1__SPOOL_STATE__INIT;
    sp.first_unacked_seq = ss.first_unacked_seq;
    sp.last_seq = ss.last_seq;
    sp.batches = ss.batches;
    sp.bytes = ss.bytes;
    sp.capacity_bytes = ss.capacity_bytes;
    sp.dropped_batches = ss.dropped_batches;
    sp.dropped_signals = ss.dropped_signals;
    sp.restored = ss.restored;
    char *old_boot = h->boot_id, *old_runtime = h->container_runtime;
    M(SpoolState) *old_spool = h->spool;
    h->boot_id = st->boot;
    h->spool = &sp;
    if (st->runtime[0]) {
        h->container_runtime = st->runtime;
    }
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_HELLO);
    m.hello = h;
    grpc_byte_buffer *bb = rsre_grpc_pack(&m.base);
    h->boot_id = old_boot;
    h->spool = old_spool;
    h->container_runtime = old_runtime;
    robot_sre__agent__v1__hello__free_unpacked(h, NULL);
    return bb;
}

static void start_call(struct rsre_stream *st) {
    st->stats.attempts++;
    struct call *c = calloc(1, sizeof(*c));
    grpc_channel_credentials *creds = c ? make_creds(st) : NULL;
    if (!creds) {
        free(c);
        uint32_t delay = backoff_delay(st);
        st->stats.next_delay_ms = delay;
        timer_set(st, TIMER_BACKOFF, delay);
        return;
    }
    c->st = st;
    c->num = ++st->calls;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md_initial);
    grpc_metadata_array_init(&c->md_trailing);
    st->call = c;

    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = (int)st->keepalive_ms}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
         {.integer = (int)(st->keepalive_ms < 20000 ? st->keepalive_ms : 20000)}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = (int)RSRE_PBUF_MAX_MESSAGE_BYTES}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         {.integer = (int)RSRE_PBUF_MAX_MESSAGE_BYTES}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_RETRIES, {.integer = 0}},
        /* The aggregator's messages (acks, requests) are small: BDP probing would only send a
         * PING after each of them, and wake both sides for its ack. */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, {.integer = (int)st->min_ms}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = (int)st->max_ms}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         {.integer = (int)st->min_ms}},
        {GRPC_ARG_STRING,
         (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING,
         {.string = (char *)"robot-sre-agent"}},
    };
    grpc_channel_args cargs = {sizeof(args) / sizeof(args[0]), args};
    c->channel = grpc_channel_create(st->cfg->aggregator, creds, &cargs);
    grpc_channel_credentials_release(creds);
    grpc_slice method = grpc_slice_from_static_string(RSRE_STREAM_METHOD);
    c->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
                                       rsre_grpc_loop_cq(st->gl), method, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!c->call) {
        c->dead = 1;
        c->fail_reason = "cannot create call";
        call_done(c);
        return;
    }
    RSRE_LOG(RSRE_LOG_DEBUG, "stream", "connecting target=%s call=%llu", st->cfg->aggregator,
             (unsigned long long)c->num);

    /* Hello with the initial metadata, the status op, the first receive. */
    if (send_bytes(c, hello_message(st), 1) == 0) {
        grpc_op sop;
        memset(&sop, 0, sizeof(sop));
        sop.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        sop.data.recv_status_on_client.trailing_metadata = &c->md_trailing;
        sop.data.recv_status_on_client.status = &c->status;
        sop.data.recv_status_on_client.status_details = &c->details;
        c->op_status.cb = on_status;
        if (start_batch(c, &sop, 1, &c->op_status) == 0) {
            start_recv(c, 1);
        }
    }
    if (c->pending == 0) {
        call_done(c);
        return;
    }
    timer_set(st, TIMER_HELLO, RSRE_STREAM_HELLO_TIMEOUT_MS);
}

static void on_timer(uv_timer_t *t) {
    struct rsre_stream *st = t->data;
    enum timer_mode mode = st->timer_mode;
    st->timer_mode = TIMER_IDLE;
    if (st->closing) {
        return;
    }
    switch (mode) {
    case TIMER_BACKOFF:
        if (!st->call) {
            start_call(st);
        }
        break;
    case TIMER_HELLO:
        if (st->call && !st->call->up) {
            RSRE_LOG(RSRE_LOG_WARN, "stream", "no Ack for Hello within %ums",
                     RSRE_STREAM_HELLO_TIMEOUT_MS);
            call_fail(st->call, GRPC_STATUS_DEADLINE_EXCEEDED, "no Ack for Hello");
        }
        break;
    case TIMER_ACK:
        if (st->call && in_flight(st, st->call) > 0) {
            RSRE_LOG(RSRE_LOG_WARN, "stream", "no Ack within %ums with %u batches in flight",
                     RSRE_STREAM_ACK_TIMEOUT_MS, in_flight(st, st->call));
            call_fail(st->call, GRPC_STATUS_DEADLINE_EXCEEDED, "no Ack for batches in flight");
        }
        break;
    case TIMER_IDLE:
        break;
    }
}

/* ---- public API ----------------------------------------------------------------------------- */

int rsre_stream_create(uv_loop_t *loop, struct rsre_grpc_loop *gl,
                       const struct rsre_agent_config *cfg, struct rsre_spool *spool,
                       const char *boot_id, const RobotSre__Agent__V1__Hello *hello,
                       const struct rsre_stream_callbacks *cb, struct rsre_stream **out) {
    return rsre_stream_create_held(loop, gl, cfg, spool, boot_id, hello, cb, 0, out);
}

int rsre_stream_create_held(uv_loop_t *loop, struct rsre_grpc_loop *gl,
                            const struct rsre_agent_config *cfg, struct rsre_spool *spool,
                            const char *boot_id, const RobotSre__Agent__V1__Hello *hello,
                            const struct rsre_stream_callbacks *cb, uint32_t hold_ms,
                            struct rsre_stream **out) {
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (!loop || !gl || !cfg || !spool || !hello || !boot_id || !cfg->aggregator[0] ||
        strlen(boot_id) == 0 || strlen(boot_id) > RSRE_SPOOL_BOOT_ID_MAX) {
        return -EINVAL;
    }
    /* The Hello as it will be sent (boot id filled in) must be valid. */
    M(Hello) copy = *hello;
    copy.boot_id = (char *)boot_id;
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&copy.base, err, sizeof(err)) != 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "stream", "invalid Hello: %s", err);
        return RSRE_EINVALID;
    }
    struct rsre_stream *st = calloc(1, sizeof(*st));
    if (!st) {
        return -ENOMEM;
    }
    int rc = rsre_pbuf_pack(&copy.base, 0, &st->hello, &st->hello_len);
    if (rc) {
        free(st);
        return rc;
    }
    st->loop = loop;
    st->gl = gl;
    st->cfg = cfg;
    st->spool = spool;
    snprintf(st->boot, sizeof(st->boot), "%s", boot_id);
    if (cb) {
        st->cb = *cb;
    }
    st->min_ms =
        cfg->reconnect_min_ms ? cfg->reconnect_min_ms : RSRE_STREAM_DEFAULT_RECONNECT_MIN_MS;
    st->max_ms =
        cfg->reconnect_max_ms ? cfg->reconnect_max_ms : RSRE_STREAM_DEFAULT_RECONNECT_MAX_MS;
    if (st->max_ms < st->min_ms) {
        st->max_ms = st->min_ms;
    }
    st->keepalive_ms = cfg->keepalive_ms ? cfg->keepalive_ms : RSRE_STREAM_DEFAULT_KEEPALIVE_MS;
    st->rng = (uint64_t)now_unix_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)st;
    if (!st->rng) {
        st->rng = 0x9E3779B97F4A7C15ull;
    }
    st->stats.last_status = -1;
    uv_timer_init(loop, &st->timer);
    st->timer.data = st;
    if (hold_ms) {
        timer_set(st, TIMER_BACKOFF, hold_ms); /* the first call, unless released earlier */
    } else {
        start_call(st);
    }
    *out = st;
    return 0;
}

int rsre_stream_set_runtime(struct rsre_stream *st, const char *runtime) {
    if (!st || !runtime || strlen(runtime) > RSRE_STREAM_RUNTIME_MAX) {
        return -EINVAL;
    }
    /* The Hello it goes into must still validate (UTF-8, length bounds). */
    M(Hello) *h = robot_sre__agent__v1__hello__unpack(NULL, st->hello_len, st->hello);
    if (!h) {
        return -ENOMEM;
    }
    char *old_boot = h->boot_id, *old_runtime = h->container_runtime;
    h->boot_id = st->boot;
    h->container_runtime = (char *)runtime;
    char err[RSRE_PBUF_ERR_LEN];
    int rc = rsre_pbuf_validate(&h->base, err, sizeof(err));
    h->boot_id = old_boot;
    h->container_runtime = old_runtime;
    robot_sre__agent__v1__hello__free_unpacked(h, NULL);
    if (rc) {
        RSRE_LOG(RSRE_LOG_WARN, "stream", "container runtime name not used: %s", err);
        return RSRE_EINVALID;
    }
    snprintf(st->runtime, sizeof(st->runtime), "%s", runtime);
    if (!st->closing && !st->stats.attempts && st->timer_mode == TIMER_BACKOFF) {
        timer_set(st, TIMER_BACKOFF, 0); /* held for this: connect now */
    }
    return 0;
}

void rsre_stream_kick(struct rsre_stream *st) {
    if (st) {
        pump(st);
    }
}

int rsre_stream_send_result(struct rsre_stream *st, const rsre_action_result *r) {
    if (!st || !r) {
        return -EINVAL;
    }
    return queue_result(st, r);
}

int rsre_stream_set_boot_id(struct rsre_stream *st, const char *boot_id) {
    if (!st || !boot_id || strlen(boot_id) == 0 || strlen(boot_id) > RSRE_SPOOL_BOOT_ID_MAX) {
        return -EINVAL;
    }
    RSRE_LOG(RSRE_LOG_INFO, "stream", "boot id changes from %s to %s", st->boot, boot_id);
    snprintf(st->boot, sizeof(st->boot), "%s", boot_id);
    st->attempt = 0;
    if (st->call) {
        call_fail(st->call, GRPC_STATUS_CANCELLED, "boot id changed");
    }
    return 0;
}

void rsre_stream_stats(const struct rsre_stream *st, struct rsre_stream_stats *out) {
    memset(out, 0, sizeof(*out));
    if (!st) {
        out->last_status = -1;
        return;
    }
    *out = st->stats;
    out->results_queued = st->nresults;
    out->in_flight = st->call && st->call->up ? in_flight(st, st->call) : 0;
}

static void on_timer_closed(uv_handle_t *h) {
    struct rsre_stream *st = h->data;
    st->timer_closed = 1;
    maybe_finish_close(st);
}

void rsre_stream_close(struct rsre_stream *st, void (*closed)(void *), void *arg) {
    if (!st || st->closing) {
        return;
    }
    st->closing = 1;
    st->closed = closed;
    st->closed_arg = arg;
    st->timer_mode = TIMER_IDLE;
    uv_timer_stop(&st->timer);
    uv_close((uv_handle_t *)&st->timer, on_timer_closed);
    if (st->call) {
        call_fail(st->call, GRPC_STATUS_CANCELLED, "stream closed");
    }
}
