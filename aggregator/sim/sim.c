/*
 * Simulated agents over real gRPC (sim.h). One `struct conn` per stream attempt, with at most
 * three ops outstanding (RECV_STATUS_ON_CLIENT, one RECV_MESSAGE, one SEND_MESSAGE); it is
 * freed when its last op completed, as in agent/stream.c. A 10 ms tick drives every agent's
 * timeline; batches are built from the group state at the tick's time.
 */
#include "sim/sim.h"

#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uv.h>

#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/log.h"
#include "common/pbuf.h"

#define M(x) RobotSre__Agent__V1__##x
#define E(x) ROBOT_SRE__AGENT__V1__##x
#define CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))
#define METHOD "/robot_sre.agent.v1.AgentStream/Connect"
#define TICK_MS 10
#define MAX_RESULTS 16
#define RECONNECT_MS 1000

enum phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_CLOSE, PH_DONE };

struct pend {
    uint64_t seq; /* 0: empty */
    uint8_t *msg;
    size_t len;
    uint32_t nsig;
    uint64_t sent_ns; /* first send */
};

struct result {
    char id[RSRE_PBUF_MAX_ID_LEN + 1];
    uint8_t *msg;
    size_t len;
    int64_t due_ms;
    uint64_t sent_call; /* call it was last sent on; 0: none */
};

struct agent;

struct conn {
    struct agent *a;
    uint64_t num;
    grpc_channel *channel;
    grpc_call *call;
    struct rsre_grpc_op op_send, op_recv, op_status;
    int pending, sending, dead, up, configured;
    uint64_t sent_seq; /* highest batch seq sent on this call */
    grpc_byte_buffer *send_buf, *recv_buf;
    grpc_metadata_array md_initial, md_trailing;
    grpc_status_code status;
    grpc_slice details;
};

struct agent {
    struct sim *sim;
    size_t idx, group;
    const char *name;
    char boot[37];
    uint64_t last_seq, acked_seq, calls;
    int64_t next_send_ms, reconnect_at_ms;
    double sig_carry; /* load mode: fractional signals owed */
    struct conn *c;
    struct pend ring[RSRE_SIM_WINDOW];
    struct result results[MAX_RESULTS];
    size_t nresults;
    int ever_up;
};

struct sim {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    struct rsre_grpc_loop *gl;
    const struct rsre_sim_scenario *sc;
    const struct rsre_sim_options *opt;
    enum rsre_sim_result result;
    struct agent *agents;
    size_t n, live_conns, up_now;
    enum phase phase;
    int64_t t0_ms, phase_ms, last_report_ms, last_ack_ms;
    uint64_t connect_start_ns;
    uint64_t report_signals;
    uint64_t *lat; /* RSRE_SIM_LAT_BUCKETS */
    struct rsre_sim_stats st;
    uint64_t rng;
    int handles_open;
};

static uint64_t rnd(struct sim *s) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void make_uuid(struct sim *s, char out[37]) {
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        for (size_t i = 0; i < sizeof(b); i++) {
            b[i] = (uint8_t)rnd(s);
        }
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* ---- call lifecycle ------------------------------------------------------------------------ */

static void pump(struct agent *a);

static void conn_fail(struct conn *c) {
    if (!c->dead) {
        c->dead = 1;
        grpc_call_cancel(c->call, NULL);
    }
}

static void conn_done(struct conn *c) {
    struct agent *a = c->a;
    struct sim *s = a->sim;
    if (c->up) {
        s->up_now--;
    }
    if (s->phase <= PH_DRAIN) {
        char details[200] = "";
        size_t n = GRPC_SLICE_LENGTH(c->details);
        n = n < sizeof(details) - 1 ? n : sizeof(details) - 1;
        memcpy(details, GRPC_SLICE_START_PTR(c->details), n);
        details[n] = '\0';
        RSRE_LOG(RSRE_LOG_DEBUG, "sim", "stream ended node=%s status=%s details=\"%s\"", a->name,
                 rsre_grpc_status_name(c->status), details);
        s->st.stream_ends++;
    }
    grpc_metadata_array_destroy(&c->md_initial);
    grpc_metadata_array_destroy(&c->md_trailing);
    grpc_slice_unref(c->details);
    if (c->call) {
        grpc_call_unref(c->call);
    }
    if (c->channel) {
        grpc_channel_destroy(c->channel);
    }
    free(c);
    a->c = NULL;
    s->live_conns--;
    a->reconnect_at_ms = (int64_t)uv_now(&s->loop) + RECONNECT_MS + (int64_t)(rnd(s) % 500);
}

static void op_finished(struct conn *c) {
    if (--c->pending == 0) {
        conn_done(c);
    }
}

static int start_batch(struct conn *c, const grpc_op *ops, size_t n, struct rsre_grpc_op *tag) {
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        RSRE_LOG(RSRE_LOG_ERROR, "sim", "grpc_call_start_batch failed code=%d", (int)e);
        conn_fail(c);
        return -1;
    }
    c->pending++;
    rsre_grpc_loop_started(c->a->sim->gl);
    return 0;
}

static void on_send(struct rsre_grpc_op *op, int ok) {
    struct conn *c = CONTAINER_OF(op, struct conn, op_send);
    grpc_byte_buffer_destroy(c->send_buf);
    c->send_buf = NULL;
    c->sending = 0;
    if (!ok) {
        conn_fail(c);
    } else if (!c->dead) {
        pump(c->a);
    }
    op_finished(c);
}

static int send_bytes(struct conn *c, grpc_byte_buffer *bb, int with_metadata) {
    if (!bb) {
        conn_fail(c);
        return -1;
    }
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (with_metadata) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
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
    return 0;
}

/* Sends the next thing if the stream is up and idle: due results first, then batches. */
static void pump(struct agent *a) {
    struct conn *c = a->c;
    struct sim *s = a->sim;
    if (!c || c->dead || !c->up || c->sending || s->phase >= PH_CLOSE) {
        return;
    }
    int64_t now = (int64_t)uv_now(&s->loop);
    for (size_t i = 0; i < a->nresults; i++) {
        struct result *r = &a->results[i];
        if (r->sent_call != c->num && r->due_ms <= now) {
            r->sent_call = c->num;
            if (send_bytes(c, rsre_grpc_bytes(r->msg, r->len), 0) == 0) {
                s->st.results_sent++;
            }
            return;
        }
    }
    uint64_t next = (c->sent_seq > a->acked_seq ? c->sent_seq : a->acked_seq) + 1;
    if (next > a->last_seq) {
        return;
    }
    struct pend *p = &a->ring[next % RSRE_SIM_WINDOW];
    if (p->seq != next) {
        return; /* cannot happen: every unacked batch is in the ring */
    }
    c->sent_seq = next;
    if (send_bytes(c, rsre_grpc_bytes(p->msg, p->len), 0) == 0) {
        s->st.batches_sent++;
        if (p->sent_ns) {
            s->st.batches_resent++;
        } else {
            p->sent_ns = uv_hrtime();
        }
    }
}

/* ---- receiving ----------------------------------------------------------------------------- */

static void lat_add(struct sim *s, uint64_t ns) {
    uint64_t b = ns / 100000;
    s->lat[b < RSRE_SIM_LAT_BUCKETS - 1 ? b : RSRE_SIM_LAT_BUCKETS - 1]++;
}

static void on_ack(struct agent *a, struct conn *c, const M(Ack) * ack) {
    struct sim *s = a->sim;
    if (strcmp(ack->boot_id, a->boot) != 0) {
        return; /* another boot: ignored, as the agent does */
    }
    uint64_t h = ack->committed_seq;
    if (h > a->last_seq) {
        RSRE_LOG(RSRE_LOG_WARN, "sim",
                 "node=%s Ack committed_seq=%" PRIu64 " above last_seq=%" PRIu64, a->name, h,
                 a->last_seq);
        h = a->last_seq;
    }
    if (!c->up) {
        c->up = 1;
        a->ever_up = 1;
        s->up_now++;
        s->st.hellos_acked++;
        if (s->up_now > s->st.connected_peak) {
            s->st.connected_peak = s->up_now;
        }
        c->sent_seq = h;
    }
    uint64_t now_ns = uv_hrtime();
    for (uint64_t q = a->acked_seq + 1; q <= h; q++) {
        struct pend *p = &a->ring[q % RSRE_SIM_WINDOW];
        if (p->seq != q) {
            continue;
        }
        s->st.batches_acked++;
        s->st.signals_acked += p->nsig;
        if (p->sent_ns) {
            lat_add(s, now_ns - p->sent_ns);
        }
        free(p->msg);
        memset(p, 0, sizeof(*p));
        s->last_ack_ms = (int64_t)uv_now(&s->loop);
    }
    if (h > a->acked_seq) {
        a->acked_seq = h;
    }
    for (size_t i = 0; i < ack->n_result_request_ids; i++) {
        for (size_t j = 0; j < a->nresults; j++) {
            if (strcmp(a->results[j].id, ack->result_request_ids[i]) == 0) {
                free(a->results[j].msg);
                a->results[j] = a->results[--a->nresults];
                s->st.results_acked++;
                break;
            }
        }
    }
    pump(a);
}

static const M(ActionStatus) status_of[] = {
    [SR_OK] = E(ACTION_STATUS__ACTION_STATUS_OK),
    [SR_FAILED] = E(ACTION_STATUS__ACTION_STATUS_FAILED),
    [SR_REFUSED] = E(ACTION_STATUS__ACTION_STATUS_REFUSED),
    [SR_TIMEOUT] = E(ACTION_STATUS__ACTION_STATUS_TIMEOUT),
    [SR_NONE] = E(ACTION_STATUS__ACTION_STATUS_UNSPECIFIED),
};

static void on_action(struct agent *a, struct conn *c, const M(ActionRequest) * rq) {
    struct sim *s = a->sim;
    s->st.actions_received++;
    for (size_t j = 0; j < a->nresults; j++) {
        if (strcmp(a->results[j].id, rq->request_id) == 0) {
            a->results[j].sent_call = 0; /* seen: resend the stored result */
            pump(a);
            return;
        }
    }
    enum rsre_sim_result res = c->configured ? s->result : SR_REFUSED;
    if (!c->configured) {
        s->st.refused_unconfigured++;
    }
    if (res == SR_NONE || a->nresults == MAX_RESULTS) {
        return;
    }
    int64_t now = wall_ms();
    int64_t delay = res == SR_OK || res == SR_FAILED ? s->sc->action_delay_ms : 0;
    M(ActionResult) r = ROBOT_SRE__AGENT__V1__ACTION_RESULT__INIT;
    r.request_id = rq->request_id;
    r.action_id = rq->action_id;
    r.status = status_of[res];
    r.started_unix_ms = res == SR_OK || res == SR_FAILED ? now : 0;
    r.finished_unix_ms = now + delay;
    char msg[160];
    snprintf(msg, sizeof(msg), "robot-sre-sim: simulated %s%s", rq->dry_run ? "dry run, " : "",
             res == SR_OK        ? "completed"
             : res == SR_FAILED  ? "failure"
             : res == SR_TIMEOUT ? "timeout"
             : c->configured     ? "refusal"
                                 : "refusal: no ConfigUpdate yet on this stream");
    r.message = msg;
    if (res == SR_OK) {
        r.status = rq->dry_run ? E(ACTION_STATUS__ACTION_STATUS_DRY_RUN) : r.status;
        r.bytes_freed = 512ull << 20;
        r.objects_removed = 2;
    }
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_ACTION_RESULT);
    m.action_result = &r;
    struct result *slot = &a->results[a->nresults];
    memset(slot, 0, sizeof(*slot));
    if (rsre_pbuf_pack(&m.base, 0, &slot->msg, &slot->len) != 0) {
        return;
    }
    snprintf(slot->id, sizeof(slot->id), "%s", rq->request_id);
    slot->due_ms = (int64_t)uv_now(&s->loop) + delay;
    a->nresults++;
    pump(a);
}

static void handle_message(struct conn *c, const uint8_t *buf, size_t len) {
    struct agent *a = c->a;
    struct sim *s = a->sim;
    M(AggregatorMessage) *m = NULL;
    char err[256];
    int rc = rsre_pbuf_decode_aggregator_message(buf, len, 0, &m, err, sizeof(err));
    if (rc) {
        s->st.invalid_messages++;
        RSRE_LOG(RSRE_LOG_WARN, "sim", "node=%s invalid message from the aggregator: %s", a->name,
                 err);
        return;
    }
    switch (m->body_case) {
    case E(AGGREGATOR_MESSAGE__BODY_ACK):
        on_ack(a, c, m->ack);
        break;
    case E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE):
        c->configured = 1;
        s->st.config_updates++;
        break;
    case E(AGGREGATOR_MESSAGE__BODY_ACTION_REQUEST):
        on_action(a, c, m->action_request);
        break;
    default:
        break;
    }
    rsre_pbuf_free_aggregator_message(m);
}

static void start_recv(struct conn *c, int first);

static void on_recv(struct rsre_grpc_op *op, int ok) {
    struct conn *c = CONTAINER_OF(op, struct conn, op_recv);
    grpc_byte_buffer *bb = c->recv_buf;
    c->recv_buf = NULL;
    if (!ok || !bb) {
        conn_fail(c);
    } else if (!c->dead) {
        uint8_t *buf;
        size_t len;
        if (rsre_grpc_flatten(bb, RSRE_PBUF_MAX_MESSAGE_BYTES, &buf, &len) != 0) {
            conn_fail(c);
        } else {
            handle_message(c, buf, len);
            free(buf);
            if (!c->dead) {
                start_recv(c, 0);
            }
        }
    }
    if (bb) {
        grpc_byte_buffer_destroy(bb);
    }
    op_finished(c);
}

static void start_recv(struct conn *c, int first) {
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
    struct conn *c = CONTAINER_OF(op, struct conn, op_status);
    (void)ok;
    c->dead = 1;
    op_finished(c);
}

/* ---- connecting ---------------------------------------------------------------------------- */

static const M(Capability) caps[] = {
    E(CAPABILITY__CAPABILITY_FILESYSTEM),     E(CAPABILITY__CAPABILITY_NODE_CONDITIONS),
    E(CAPABILITY__CAPABILITY_IMAGE_GC),       E(CAPABILITY__CAPABILITY_POD_CHURN),
    E(CAPABILITY__CAPABILITY_PRESSURE_STALL), E(CAPABILITY__CAPABILITY_ACTIONS),
    E(CAPABILITY__CAPABILITY_DRY_RUN),        E(CAPABILITY__CAPABILITY_SPOOL),
};
static char *actions[] = {"delete_finished_pods", "prune_unused_images",
                          "remove_exited_containers"};

static grpc_byte_buffer *hello_message(struct agent *a) {
    M(Hello) h = ROBOT_SRE__AGENT__V1__HELLO__INIT;
    h.protocol_revision = 1;
    h.node_name = (char *)a->name;
    h.boot_id = a->boot;
    h.agent_version = "robot-sre-sim/0.1";
    h.n_capabilities = sizeof(caps) / sizeof(caps[0]);
    h.capabilities = (M(Capability) *)caps;
    h.n_actions = sizeof(actions) / sizeof(actions[0]);
    h.actions = actions;
    h.started_unix_ms = wall_ms();
    h.container_runtime = "containerd://simulated";
    M(SpoolState) sp = ROBOT_SRE__AGENT__V1__SPOOL_STATE__INIT;
    sp.last_seq = a->last_seq;
    sp.first_unacked_seq = a->last_seq > a->acked_seq ? a->acked_seq + 1 : 0;
    sp.batches = (uint32_t)(a->last_seq - a->acked_seq);
    h.spool = &sp;
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_HELLO);
    m.hello = &h;
    return rsre_grpc_pack(&m.base);
}

static void start_call(struct agent *a) {
    struct sim *s = a->sim;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        return;
    }
    c->a = a;
    c->num = ++a->calls;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md_initial);
    grpc_metadata_array_init(&c->md_trailing);
    a->c = c;
    s->live_conns++;
    if (a->ever_up) {
        s->st.reconnects++;
    }
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         {.integer = (int)RSRE_PBUF_MAX_MESSAGE_BYTES}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
         {.integer = (int)RSRE_PBUF_MAX_MESSAGE_BYTES}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
         {.integer = s->opt->shared_connection ? 0 : 1}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_RETRIES, {.integer = 0}},
        /* As the agent: acks are small, BDP probing would only add PINGs. */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}},
        {GRPC_ARG_STRING,
         (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING,
         {.string = (char *)"robot-sre-sim"}},
    };
    grpc_channel_args cargs = {sizeof(args) / sizeof(args[0]), args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    c->channel = grpc_channel_create(s->opt->target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    grpc_slice method = grpc_slice_from_static_string(METHOD);
    c->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
                                       rsre_grpc_loop_cq(s->gl), method, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!c->call) {
        conn_done(c);
        return;
    }
    if (send_bytes(c, hello_message(a), 1) == 0) {
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
        conn_done(c);
    }
}

/* ---- batches ------------------------------------------------------------------------------- */

static M(Signal) sigs[RSRE_SIM_MAX_BATCH];
static M(Signal) * sigp[RSRE_SIM_MAX_BATCH];
static M(FilesystemUsage) fss[RSRE_SIM_MAX_BATCH];

static void fill_fs(M(FilesystemUsage) * f, int nodefs, uint64_t total, double used_pct,
                    double inodes_pct, double slope_pct, uint64_t jitter) {
    f->which = nodefs ? E(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS)
                      : E(FILESYSTEM_ROLE__FILESYSTEM_ROLE_IMAGEFS);
    f->path = nodefs ? "/var/lib/kubelet" : "/var/lib/containerd";
    f->device = "/dev/sim0";
    f->bytes_total = total;
    /* Reserved blocks: free - avail = 5% of total, as ext4's default. */
    uint64_t reserve = total / 20;
    double usable = (double)(total - reserve);
    uint64_t avail = (uint64_t)(usable * (1.0 - used_pct / 100.0));
    avail = avail > jitter ? avail - jitter : avail;
    f->bytes_avail = avail;
    f->bytes_free = avail + reserve;
    f->inodes_total = 6553600;
    f->inodes_free = (uint64_t)(6553600.0 * (1.0 - inodes_pct / 100.0));
    f->threshold_source = E(THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_DEFAULTS);
    f->image_gc_high_percent = 85;
    f->image_gc_low_percent = 80;
    double rate = slope_pct / 100.0 * usable;
    f->fill_rate_bytes_per_sec = rate > 0 ? rate : 0;
    f->fill_window_sec = rate > 0 ? 60 : 0;
    double evict_at = (double)total * (nodefs ? 0.10 : 0.15);
    if ((double)avail <= evict_at) {
        f->seconds_to_eviction = 0;
    } else {
        f->seconds_to_eviction = rate > 0 ? (int64_t)(((double)avail - evict_at) / rate) : -1;
    }
    f->seconds_to_gc_high = -1;
    f->seconds_to_inode_eviction = -1;
}

/* Builds the next batch of `a` into its ring; returns its signal count (0: nothing built). */
static uint32_t build_batch(struct agent *a, const double *v, const double *slope,
                            uint32_t nsig_load) {
    struct sim *s = a->sim;
    const struct rsre_sim_scenario *sc = s->sc;
    int64_t now = wall_ms();
    M(NodeCondition)
    ready = ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT,
    dp = ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT,
    mp = ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT,
    pp = ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT;
    M(NodeConditions) nc = ROBOT_SRE__AGENT__V1__NODE_CONDITIONS__INIT;
    M(Taint) taint = ROBOT_SRE__AGENT__V1__TAINT__INIT;
    M(Taint) * taints[1] = {&taint};
    ready.status = v[SF_READY] >= 0.5 ? E(CONDITION_STATUS__CONDITION_STATUS_TRUE)
                                      : E(CONDITION_STATUS__CONDITION_STATUS_FALSE);
    ready.reason = v[SF_READY] >= 0.5 ? "KubeletReady" : "KubeletNotReady";
    dp.status = v[SF_DISK_PRESSURE] >= 0.5 ? E(CONDITION_STATUS__CONDITION_STATUS_TRUE)
                                           : E(CONDITION_STATUS__CONDITION_STATUS_FALSE);
    dp.reason = v[SF_DISK_PRESSURE] >= 0.5 ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure";
    mp.status = v[SF_MEM_PRESSURE] >= 0.5 ? E(CONDITION_STATUS__CONDITION_STATUS_TRUE)
                                          : E(CONDITION_STATUS__CONDITION_STATUS_FALSE);
    pp.status = E(CONDITION_STATUS__CONDITION_STATUS_FALSE);
    nc.ready = &ready;
    nc.disk_pressure = &dp;
    nc.memory_pressure = &mp;
    nc.pid_pressure = &pp;
    if (v[SF_DISK_PRESSURE] >= 0.5) {
        taint.key = "node.kubernetes.io/disk-pressure";
        taint.effect = E(TAINT_EFFECT__TAINT_EFFECT_NO_SCHEDULE);
        nc.n_taints = 1;
        nc.taints = taints;
    }
    uint32_t n = 0;
    M(ImageGcState) gc = ROBOT_SRE__AGENT__V1__IMAGE_GC_STATE__INIT;
    M(PodChurn) pods = ROBOT_SRE__AGENT__V1__POD_CHURN__INIT;
    M(PressureStall) psi[3];
    M(PsiLine) psl[3], psf[3];
    if (s->opt->rate > 0) {
        /* Load mode: conditions first, then nodefs samples, each a distinct value. */
        for (uint32_t i = 0; i < nsig_load && n < RSRE_SIM_MAX_BATCH; i++) {
            M(Signal) *sg = &sigs[n];
            robot_sre__agent__v1__signal__init(sg);
            sg->observed_unix_ms = now;
            if (i == 0) {
                sg->kind_case = E(SIGNAL__KIND_NODE_CONDITIONS);
                sg->node_conditions = &nc;
            } else {
                robot_sre__agent__v1__filesystem_usage__init(&fss[n]);
                fill_fs(&fss[n], 1, sc->nodefs_bytes, v[SF_NODEFS_USED], v[SF_INODES_USED],
                        slope[SF_NODEFS_USED], (uint64_t)i * 4096 + (a->last_seq & 0xff) * 64);
                sg->kind_case = E(SIGNAL__KIND_FILESYSTEM);
                sg->filesystem = &fss[n];
            }
            sigp[n] = sg;
            n++;
        }
    } else {
        robot_sre__agent__v1__filesystem_usage__init(&fss[0]);
        robot_sre__agent__v1__filesystem_usage__init(&fss[1]);
        fill_fs(&fss[0], 1, sc->nodefs_bytes, v[SF_NODEFS_USED], v[SF_INODES_USED],
                slope[SF_NODEFS_USED], 0);
        fill_fs(&fss[1], 0, sc->imagefs_bytes, v[SF_IMAGEFS_USED], v[SF_INODES_USED],
                slope[SF_IMAGEFS_USED], 0);
        uint64_t used = (uint64_t)((double)sc->imagefs_bytes * v[SF_IMAGEFS_USED] / 100.0);
        gc.image_count = 40;
        gc.total_bytes = used;
        gc.unused_count = 12;
        gc.unused_bytes = (uint64_t)((double)sc->imagefs_bytes * v[SF_RECLAIMABLE] / 100.0);
        gc.unused_bytes = gc.unused_bytes > used ? used : gc.unused_bytes;
        gc.reclaimable_bytes = gc.unused_bytes;
        gc.gc_can_recover = v[SF_IMAGEFS_USED] - v[SF_RECLAIMABLE] < 80;
        gc.min_image_age_sec = 120;
        pods.window_sec = 300;
        pods.running = (uint32_t)v[SF_PODS_RUNNING];
        pods.pending = (uint32_t)v[SF_PODS_PENDING];
        pods.succeeded = (uint32_t)v[SF_PODS_SUCCEEDED];
        pods.failed = (uint32_t)(v[SF_PODS_FAILED] > v[SF_PODS_EVICTED] ? v[SF_PODS_FAILED]
                                                                        : v[SF_PODS_EVICTED]);
        pods.evicted = (uint32_t)v[SF_PODS_EVICTED];
        static const int res[3] = {SF_PSI_CPU, SF_PSI_MEMORY, SF_PSI_IO};
        for (int i = 0; i < 3; i++) {
            robot_sre__agent__v1__pressure_stall__init(&psi[i]);
            robot_sre__agent__v1__psi_line__init(&psl[i]);
            robot_sre__agent__v1__psi_line__init(&psf[i]);
            psi[i].resource = (M(PsiResource))(E(PSI_RESOURCE__PSI_RESOURCE_CPU) + i);
            psl[i].avg10 = psl[i].avg60 = psl[i].avg300 = v[res[i]];
            psf[i].avg10 = psf[i].avg60 = psf[i].avg300 = v[res[i]] / 2;
            psi[i].some = &psl[i];
            psi[i].full = &psf[i];
        }
        for (int i = 0; i < 8; i++) {
            M(Signal) *sg = &sigs[n];
            robot_sre__agent__v1__signal__init(sg);
            sg->observed_unix_ms = now;
            switch (i) {
            case 0:
            case 1:
                sg->kind_case = E(SIGNAL__KIND_FILESYSTEM);
                sg->filesystem = &fss[i];
                break;
            case 2:
                sg->kind_case = E(SIGNAL__KIND_NODE_CONDITIONS);
                sg->node_conditions = &nc;
                break;
            case 3:
                sg->kind_case = E(SIGNAL__KIND_IMAGE_GC);
                sg->image_gc = &gc;
                break;
            case 4:
                sg->kind_case = E(SIGNAL__KIND_POD_CHURN);
                sg->pod_churn = &pods;
                break;
            default:
                sg->kind_case = E(SIGNAL__KIND_PRESSURE_STALL);
                sg->pressure_stall = &psi[i - 5];
                break;
            }
            sigp[n++] = sg;
        }
    }
    if (n == 0) {
        return 0;
    }
    M(SignalBatch) b = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    b.boot_id = a->boot;
    b.seq = a->last_seq + 1;
    b.created_unix_ms = now;
    b.n_signals = n;
    b.signals = sigp;
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_SIGNAL_BATCH);
    m.signal_batch = &b;
    struct pend *p = &a->ring[b.seq % RSRE_SIM_WINDOW];
    if (p->seq) {
        return 0; /* the window check in the caller prevents this */
    }
    if (rsre_pbuf_pack(&m.base, 0, &p->msg, &p->len) != 0) {
        return 0;
    }
    p->seq = b.seq;
    p->nsig = n;
    p->sent_ns = 0;
    a->last_seq = b.seq;
    s->st.signals_sent += n;
    return n;
}

/* ---- the tick ------------------------------------------------------------------------------ */

static double pctile(const struct sim *s, double q) {
    uint64_t total = 0;
    for (size_t i = 0; i < RSRE_SIM_LAT_BUCKETS; i++) {
        total += s->lat[i];
    }
    if (total == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
    for (size_t i = 0; i < RSRE_SIM_LAT_BUCKETS; i++) {
        acc += s->lat[i];
        if (acc >= want) {
            return (double)(i + 1) * 0.1; /* bucket upper bound, ms */
        }
    }
    return 0;
}

static void agent_tick(struct agent *a, int64_t now, int64_t t) {
    struct sim *s = a->sim;
    double v[SF_COUNT], slope[SF_COUNT];
    rsre_sim_state_at(&s->sc->groups[a->group], t, v, slope);
    int silent = v[SF_SILENT] >= 0.5;
    if (silent) {
        if (a->c) {
            conn_fail(a->c);
        }
        a->next_send_ms = now;
        return;
    }
    if (!a->c && now >= a->reconnect_at_ms) {
        start_call(a);
    }
    if (a->c && a->nresults) {
        pump(a);
    }
    if (s->phase != PH_RUN || now < a->next_send_ms) {
        return;
    }
    int64_t interval = (int64_t)v[SF_INTERVAL_MS];
    a->next_send_ms += interval;
    if (a->next_send_ms < now) {
        a->next_send_ms = now + interval;
    }
    uint32_t nsig = 0;
    if (s->opt->rate > 0) {
        a->sig_carry += s->opt->rate * (double)interval / 1000.0 / (double)s->n;
        nsig = (uint32_t)a->sig_carry;
        if (nsig > RSRE_SIM_MAX_BATCH) {
            nsig = RSRE_SIM_MAX_BATCH;
        }
        if (nsig == 0) {
            return;
        }
    }
    if (!a->c || !a->c->up) {
        s->st.not_connected_ticks++;
        return;
    }
    if (a->last_seq - a->acked_seq >= RSRE_SIM_WINDOW) {
        s->st.window_full++;
        return;
    }
    uint32_t built = build_batch(a, v, slope, nsig);
    if (s->opt->rate > 0) {
        a->sig_carry -= built;
    }
    pump(a);
}

static void begin_close(struct sim *s);

static void on_tick(uv_timer_t *t) {
    struct sim *s = t->data;
    int64_t now = (int64_t)uv_now(&s->loop);
    if (s->phase == PH_CONNECT) {
        for (size_t i = 0; i < s->n; i++) {
            struct agent *a = &s->agents[i];
            if (!a->c && now >= a->reconnect_at_ms) {
                start_call(a);
            }
        }
        if (s->up_now == s->n || now - s->phase_ms >= s->opt->connect_timeout_ms) {
            s->st.all_connected = s->up_now == s->n;
            s->st.connect_seconds = (double)(uv_hrtime() - s->connect_start_ns) / 1e9;
            if (s->up_now == 0) {
                RSRE_LOG(RSRE_LOG_ERROR, "sim", "no agent connected to %s within %" PRId64 " ms",
                         s->opt->target, s->opt->connect_timeout_ms);
                begin_close(s);
                return;
            }
            if (!s->st.all_connected) {
                RSRE_LOG(RSRE_LOG_WARN, "sim", "only %zu of %zu agents connected; running anyway",
                         s->up_now, s->n);
            }
            RSRE_LOG(RSRE_LOG_INFO, "sim", "%zu agents connected in %.2f s; timeline starts",
                     s->up_now, s->st.connect_seconds);
            s->phase = PH_RUN;
            s->t0_ms = s->phase_ms = s->last_report_ms = now;
            for (size_t i = 0; i < s->n; i++) {
                /* Spread the agents over the first interval. */
                int64_t iv = (int64_t)s->sc->groups[s->agents[i].group].start[SF_INTERVAL_MS];
                s->agents[i].next_send_ms = now + (int64_t)(rnd(s) % (uint64_t)(iv > 0 ? iv : 1));
            }
        }
        return;
    }
    if (s->phase == PH_RUN || s->phase == PH_DRAIN) {
        int64_t tl = now - s->t0_ms;
        for (size_t i = 0; i < s->n; i++) {
            agent_tick(&s->agents[i], now, tl < s->sc->duration_ms ? tl : s->sc->duration_ms);
        }
        if (s->opt->report_ms && now - s->last_report_ms >= s->opt->report_ms) {
            double secs = (double)(now - s->last_report_ms) / 1000.0;
            fprintf(stderr,
                    "sim: t=%.0fs connected=%zu acked_signals=%" PRIu64 " rate=%.0f/s "
                    "ack_p99=%.1fms window_full=%" PRIu64 "\n",
                    (double)tl / 1000.0, s->up_now, s->st.signals_acked,
                    (double)(s->st.signals_acked - s->report_signals) / secs, pctile(s, 0.99),
                    s->st.window_full);
            s->report_signals = s->st.signals_acked;
            s->last_report_ms = now;
        }
        if (s->phase == PH_RUN && tl >= s->sc->duration_ms) {
            s->phase = PH_DRAIN;
            s->phase_ms = now;
        }
        if (s->phase == PH_DRAIN) {
            int outstanding = 0;
            for (size_t i = 0; i < s->n && !outstanding; i++) {
                struct agent *a = &s->agents[i];
                outstanding = a->c && a->c->up && a->last_seq > a->acked_seq;
            }
            if (!outstanding || now - s->phase_ms >= s->opt->drain_ms) {
                begin_close(s);
            }
        }
        return;
    }
    if (s->phase == PH_CLOSE && s->live_conns == 0) {
        s->phase = PH_DONE;
        uv_timer_stop(&s->tick);
        uv_close((uv_handle_t *)&s->tick, NULL);
        uv_close((uv_handle_t *)&s->sigint, NULL);
        uv_close((uv_handle_t *)&s->sigterm, NULL);
        rsre_grpc_loop_destroy(s->gl, NULL, NULL);
        s->gl = NULL;
    }
}

static void begin_close(struct sim *s) {
    if (s->phase >= PH_CLOSE) {
        return;
    }
    if (s->phase >= PH_RUN) {
        int64_t end = s->last_ack_ms > s->t0_ms ? s->last_ack_ms : (int64_t)uv_now(&s->loop);
        s->st.run_seconds = (double)(end - s->t0_ms) / 1000.0;
    }
    s->phase = PH_CLOSE;
    for (size_t i = 0; i < s->n; i++) {
        if (s->agents[i].c) {
            conn_fail(s->agents[i].c);
        }
    }
}

static void on_signal(uv_signal_t *h, int signum) {
    struct sim *s = h->data;
    RSRE_LOG(RSRE_LOG_INFO, "sim", "signal %d: stopping", signum);
    if (s->phase == PH_RUN) {
        s->phase = PH_DRAIN;
        s->phase_ms = (int64_t)uv_now(&s->loop);
    } else {
        begin_close(s);
    }
}

int rsre_sim_run(const struct rsre_sim_scenario *sc, const struct rsre_sim_options *opt,
                 struct rsre_sim_stats *st) {
    struct sim *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->sc = sc;
    s->opt = opt;
    s->n = sc->nnodes;
    s->result = sc->result;
    s->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)wall_ms();
    s->agents = calloc(s->n ? s->n : 1, sizeof(*s->agents));
    s->lat = calloc(RSRE_SIM_LAT_BUCKETS, sizeof(*s->lat));
    if (!s->agents || !s->lat) {
        free(s->agents);
        free(s->lat);
        free(s);
        return -ENOMEM;
    }
    int rc = uv_loop_init(&s->loop);
    if (rc == 0 && (rc = rsre_grpc_loop_create(&s->loop, &s->gl)) != 0) {
        uv_loop_close(&s->loop);
    }
    if (rc) {
        free(s->agents);
        free(s->lat);
        free(s);
        return rc;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct agent *a = &s->agents[i];
        a->sim = s;
        a->idx = i;
        a->name = sc->nodes[i];
        a->group = sc->node_group[i];
        make_uuid(s, a->boot);
    }
    s->st.agents = s->n;
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    s->phase = PH_CONNECT;
    s->phase_ms = (int64_t)uv_now(&s->loop);
    s->connect_start_ns = uv_hrtime();
    uv_timer_start(&s->tick, on_tick, 0, TICK_MS);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);

    s->st.ack_p50_ms = pctile(s, 0.50);
    s->st.ack_p99_ms = pctile(s, 0.99);
    s->st.ack_max_ms = 0;
    for (size_t i = RSRE_SIM_LAT_BUCKETS; i-- > 0;) {
        if (s->lat[i]) {
            s->st.ack_max_ms = (double)(i + 1) * 0.1;
            break;
        }
    }
    int ever = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct agent *a = &s->agents[i];
        ever |= a->ever_up;
        for (size_t j = 0; j < RSRE_SIM_WINDOW; j++) {
            free(a->ring[j].msg);
        }
        for (size_t j = 0; j < a->nresults; j++) {
            free(a->results[j].msg);
        }
    }
    *st = s->st;
    free(s->agents);
    free(s->lat);
    free(s);
    return ever ? 0 : -ECONNREFUSED;
}
