#include "agent/agent_internal.h"
#include "agent/cri.h"
#include "agent/footprint.h"
#include "agent/fs_predict.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/log.h"
#include "common/pbuf.h"

#ifndef RSRE_VERSION
#define RSRE_VERSION "0.1.0"
#endif

int64_t rsre_now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uv_loop_t *rsre_agent_loop(struct rsre_agent *a) {
    return a->loop;
}
const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a) {
    return &a->cfg;
}
struct rsre_grpc_loop *rsre_agent_grpc(struct rsre_agent *a) {
    return a->grpc;
}
struct rsre_cri *rsre_agent_cri(struct rsre_agent *a) {
    return a->cri;
}
struct rsre_kube *rsre_agent_kube(struct rsre_agent *a) {
    return a->kube;
}
const char *rsre_agent_boot_id(struct rsre_agent *a) {
    return a->boot_id;
}

/* ---- protobuf wire helpers for building a batch without re-packing signals ---- */

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static int batch_reserve(struct rsre_agent *a, size_t more) {
    if (a->batch_len + more <= a->batch_cap) {
        return 0;
    }
    size_t cap = a->batch_cap ? a->batch_cap : 4096;
    while (cap < a->batch_len + more) {
        cap *= 2;
    }
    uint8_t *nb = realloc(a->batch, cap);
    if (!nb) {
        return -ENOMEM;
    }
    a->batch = nb;
    a->batch_cap = cap;
    return 0;
}

int rsre_agent_emit(struct rsre_agent *a, const rsre_signal *s) {
    RobotSre__Agent__V1__Signal copy = *s;
    if (!copy.observed_unix_ms) {
        copy.observed_unix_ms = rsre_now_unix_ms();
    }
    size_t n = protobuf_c_message_get_packed_size(&copy.base);
    if (n + 16 > RSRE_BATCH_MAX_BYTES) {
        a->signals_dropped_oversize++;
        RSRE_LOG(RSRE_LOG_WARN, "agent", "signal of %zu bytes dropped: larger than a batch", n);
        return RSRE_ELIMIT;
    }
    if (a->batch_len + n + 16 > RSRE_BATCH_MAX_BYTES ||
        a->batch_signals >= RSRE_BATCH_MAX_SIGNALS) {
        rsre_agent_flush(a);
    }
    if (batch_reserve(a, n + 16)) {
        return -ENOMEM;
    }
    /* SignalBatch.signals = 4, wire type 2 */
    a->batch[a->batch_len++] = (4 << 3) | 2;
    a->batch_len += put_varint(a->batch + a->batch_len, n);
    protobuf_c_message_pack(&copy.base, a->batch + a->batch_len);
    a->batch_len += n;
    a->batch_signals++;
    a->signals_emitted++;
    return 0;
}

void rsre_agent_flush(struct rsre_agent *a) {
    if (!a->batch_signals) {
        return;
    }
    RobotSre__Agent__V1__SignalBatch hdr = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    hdr.boot_id = a->boot_id;
    hdr.seq = ++a->seq;
    hdr.created_unix_ms = rsre_now_unix_ms();
    size_t hn = protobuf_c_message_get_packed_size(&hdr.base);
    size_t body = hn + a->batch_len;
    uint8_t *msg = malloc(body + 16);
    if (!msg) {
        RSRE_LOG(RSRE_LOG_ERROR, "agent", "out of memory cutting batch seq=%llu",
                 (unsigned long long)hdr.seq);
        return;
    }
    size_t off = 0;
    msg[off++] = (2 << 3) | 2; /* AgentMessage.signal_batch = 2 */
    off += put_varint(msg + off, body);
    protobuf_c_message_pack(&hdr.base, msg + off);
    off += hn;
    memcpy(msg + off, a->batch, a->batch_len);
    off += a->batch_len;
    int rc = rsre_spool_push(a->spool, a->boot_id, hdr.seq, a->batch_signals, msg, off);
    if (rc) {
        RSRE_LOG(RSRE_LOG_WARN, "agent", "spool refused batch seq=%llu: %s",
                 (unsigned long long)hdr.seq, rsre_strerror(rc));
    }
    free(msg);
    a->batches_cut++;
    a->batch_len = 0;
    a->batch_signals = 0;
    if (a->stream) {
        rsre_stream_kick(a->stream);
    }
}

static void on_flush_timer(uv_timer_t *t) {
    rsre_agent_flush(t->data);
}

/* ---- collectors ---- */

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

#define FOOTPRINT_TRIM_MS 10000    /* malloc_trim at most this often */
#define FOOTPRINT_REDROP_MS 300000 /* clean file pages dropped again this long after the last */

/* Clean file pages are dropped when every enabled collector has finished this many runs: once
 * settled after the first runs, and once more after the paths that run only early (initial
 * lists and watches, the stream's first connection, the first scans) are behind. Then every
 * FOOTPRINT_REDROP_MS, for pages that rare paths (a watch event, a compaction, an action)
 * touched since: what stays resident is what steady operation uses. */
static const uint64_t footprint_drop_after_runs[] = {1, 3};

static void footprint_drop(struct rsre_agent *a) {
    const size_t ndrops = sizeof(footprint_drop_after_runs) / sizeof(footprint_drop_after_runs[0]);
    rsre_footprint_trim();
    a->footprint_last_trim_ms = a->footprint_last_drop_ms = uv_now(a->loop);
    a->footprint_drops++;
    struct rsre_footprint_drop st;
    int rc = rsre_footprint_drop_file_pages(&st);
    RSRE_LOG(rc ? RSRE_LOG_WARN : a->footprint_drops <= ndrops ? RSRE_LOG_INFO : RSRE_LOG_DEBUG,
             "agent",
             "released clean file pages drop=%zu mappings=%zu resident_kib=%zu skipped=%zu "
             "elapsed_us=%llu rc=%d",
             a->footprint_drops, st.mappings, st.resident_kib, st.skipped,
             (unsigned long long)st.elapsed_us, rc);
}

/* After a collector run: drops clean file pages at the points above, and returns free heap
 * pages at most every FOOTPRINT_TRIM_MS. Runs inside work the loop was doing anyway: no timer
 * of its own. */
static void footprint_after_run(struct rsre_agent *a) {
    if (!a->cfg.footprint_trim || a->closing) {
        return;
    }
    const size_t ndrops = sizeof(footprint_drop_after_runs) / sizeof(footprint_drop_after_runs[0]);
    if (a->footprint_drops < ndrops) {
        int settled = 1;
        for (size_t i = 0; i < a->ncollectors && settled; i++) {
            const struct collector_slot *c = &a->collectors[i];
            settled = !c->stats.enabled ||
                      (c->stats.runs >= footprint_drop_after_runs[a->footprint_drops] &&
                       !c->run.in_flight);
        }
        if (settled) {
            footprint_drop(a);
            return;
        }
    }
    uint64_t now = uv_now(a->loop);
    if (a->footprint_drops && now - a->footprint_last_drop_ms >= FOOTPRINT_REDROP_MS) {
        footprint_drop(a);
        return;
    }
    if (now - a->footprint_last_trim_ms >= FOOTPRINT_TRIM_MS) {
        a->footprint_last_trim_ms = now;
        rsre_footprint_trim();
    }
}

void rsre_collect_done(struct rsre_collect_run *run, int rc) {
    struct rsre_agent *a = run->agent;
    struct collector_slot *c = &a->collectors[run->index];
    uint64_t d = now_us() - run->started_us;
    run->in_flight = 0;
    c->stats.last_duration_us = d;
    c->stats.max_duration_us = d > c->stats.max_duration_us ? d : c->stats.max_duration_us;
    c->stats.last_rc = rc;
    if (rc < 0) {
        c->stats.errors++;
        /* Log the first error and then every 10th, so a broken source does not flood. */
        if (c->stats.errors == 1 || c->stats.errors % 10 == 0) {
            RSRE_LOG(RSRE_LOG_WARN, "agent", "collector=%s failed rc=%d (%s) errors=%llu",
                     c->desc->name, rc, rsre_strerror(rc), (unsigned long long)c->stats.errors);
        }
    } else {
        c->stats.last_ok_unix_ms = rsre_now_unix_ms();
        if (!a->closing) {
            rsre__agent_after_collect(a, c->desc);
        }
    }
    footprint_after_run(a);
}

/* Starts one run of collector `c` unless the agent is closing or its last run is in flight. */
static void run_collector(struct rsre_agent *a, struct collector_slot *c) {
    if (a->closing) {
        return;
    }
    if (c->run.in_flight) {
        c->stats.overruns++;
        return;
    }
    c->run.in_flight = 1;
    c->run.started_us = now_us();
    c->stats.runs++;
    c->desc->collect(a, c->state, &c->run);
}

/* Collectors that share an interval fire from one timer, the first such collector's (the
 * group's leader): one wake-up of the loop per interval instead of one per collector. The
 * members run in table order. */
static void on_collect_timer(uv_timer_t *t) {
    struct collector_slot *lead = t->data;
    struct rsre_agent *a = lead->run.agent;
    for (size_t i = lead->run.index; i < a->ncollectors && !a->closing; i++) {
        struct collector_slot *c = &a->collectors[i];
        if (c->stats.enabled && c->leader == lead->run.index) {
            run_collector(a, c);
        }
    }
}

/* (Re)computes the groups and starts the leaders' timers. `initial`: the first runs come soon
 * (spread a little). Later calls (an interval changed) keep the phase of every leader whose
 * interval is unchanged; a new or changed leader first fires one interval from now. */
static void schedule_collectors(struct rsre_agent *a, int initial) {
    for (size_t i = 0; i < a->ncollectors; i++) {
        struct collector_slot *c = &a->collectors[i];
        c->leader = i;
        for (size_t j = 0; j < i && c->stats.enabled; j++) {
            const struct collector_slot *o = &a->collectors[j];
            if (o->stats.enabled && o->leader == j && o->interval_ms == c->interval_ms) {
                c->leader = j;
                break;
            }
        }
        if (!c->stats.enabled) {
            continue;
        }
        if (c->leader != i) {
            uv_timer_stop(&c->timer);
        } else if (initial) {
            uv_timer_start(&c->timer, on_collect_timer, 10 + 37 * i, c->interval_ms);
        } else if (!uv_is_active((uv_handle_t *)&c->timer) ||
                   uv_timer_get_repeat(&c->timer) != c->interval_ms) {
            uv_timer_start(&c->timer, on_collect_timer, c->interval_ms, c->interval_ms);
        }
    }
}

static void start_collectors(struct rsre_agent *a) {
    for (size_t i = 0; i < rsre__ncollectors && a->ncollectors < RSRE_AGENT_MAX_COLLECTORS; i++) {
        const struct rsre_collector_desc *d = rsre__collectors[i];
        struct collector_slot *c = &a->collectors[a->ncollectors];
        c->desc = d;
        c->stats.name = d->name;
        c->run.agent = a;
        c->run.index = a->ncollectors;
        c->interval_ms = *(const uint32_t *)((const char *)&a->cfg + d->interval_offset);
        int rc = d->init(a, &c->state);
        uv_timer_init(a->loop, &c->timer);
        c->timer.data = c;
        a->ncollectors++;
        if (rc) {
            RSRE_LOG(RSRE_LOG_WARN, "agent", "collector=%s disabled: %s", d->name,
                     rsre_strerror(rc));
            c->stats.enabled = 0;
            c->stats.last_rc = rc;
            continue;
        }
        c->stats.enabled = 1;
        RSRE_LOG(RSRE_LOG_INFO, "agent", "collector=%s interval_ms=%u", d->name, c->interval_ms);
    }
    schedule_collectors(a, 1);
}

/* ---- actions ---- */

/* Returns NULL when `id` may run, else which allowlist refuses it. */
static const char *refused_by(struct rsre_agent *a, const char *id) {
    int local = 0, remote = !a->have_remote_allowlist;
    for (size_t i = 0; i < a->cfg.nactions_allowed; i++) {
        local |= !strcmp(a->cfg.actions_allowed[i], id);
    }
    for (size_t i = 0; a->have_remote_allowlist && i < a->nremote_allowlist; i++) {
        remote |= !strcmp(a->remote_allowlist[i], id);
    }
    return !local ? "this agent's allowlist (actions_allowed)"
                  : !remote ? "the aggregator's allowlist (ConfigUpdate)" : NULL;
}

void rsre_action_add_removed(struct rsre_action_ctx *ctx, const char *id) {
    if (ctx->nremoved >= 1024) {
        ctx->result.removed_ids_truncated = 1;
        return;
    }
    char **n = realloc(ctx->removed, (ctx->nremoved + 1) * sizeof(*n));
    if (!n) {
        ctx->result.removed_ids_truncated = 1;
        return;
    }
    ctx->removed = n;
    if (!(ctx->removed[ctx->nremoved] = strdup(id))) {
        ctx->result.removed_ids_truncated = 1;
        return;
    }
    ctx->nremoved++;
}

void rsre_action_set(struct rsre_action_ctx *ctx, RobotSre__Agent__V1__ActionStatus status,
                     const char *fmt, ...) {
    ctx->result.status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
    va_end(ap);
}

struct action_run {
    struct rsre_action_ctx ctx;
    RobotSre__Agent__V1__ActionRequest *req; /* owned copy */
};

void rsre_action_done(struct rsre_action_ctx *ctx) {
    struct action_run *r = (struct action_run *)ctx; /* ctx is the first member */
    struct rsre_agent *a = ctx->agent;
    ctx->result.finished_unix_ms = rsre_now_unix_ms();
    ctx->result.message = ctx->message;
    ctx->result.removed_object_ids = ctx->removed;
    ctx->result.n_removed_object_ids = ctx->nremoved;
    if (ctx->result.status == ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_UNSPECIFIED) {
        ctx->result.status = ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_FAILED;
    }
    RSRE_LOG(RSRE_LOG_INFO, "agent",
             "action=%s request=%s target=%s dry_run=%d status=%d objects_removed=%u "
             "bytes_freed=%llu msg=%s",
             ctx->result.action_id, ctx->result.request_id, r->req->target, r->req->dry_run,
             ctx->result.status, ctx->result.objects_removed,
             (unsigned long long)ctx->result.bytes_freed, ctx->message);
    if (a->stream) {
        rsre_stream_send_result(a->stream, &ctx->result);
    }
    for (size_t i = 0; i < ctx->nremoved; i++) {
        free(ctx->removed[i]);
    }
    free(ctx->removed);
    protobuf_c_message_free_unpacked(&r->req->base, NULL);
    free(r);
    if (a->actions_running) {
        a->actions_running--;
    }
}

/* Handles one ActionRequest from the aggregator: re-check, then run or refuse. */
static void on_action(void *arg, const rsre_action_request *req) {
    struct rsre_agent *a = arg;
    for (size_t i = 0; i < RSRE_RESULT_CACHE; i++) {
        if (a->recent[i].request_id[0] && !strcmp(a->recent[i].request_id, req->request_id)) {
            RSRE_LOG(RSRE_LOG_INFO, "agent", "action request=%s already ran; ignoring the repeat",
                     req->request_id);
            return;
        }
    }
    struct action_run *r = calloc(1, sizeof(*r));
    if (!r) {
        return;
    }
    /* Own a copy of the request: actions may be asynchronous. */
    size_t n = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf) {
        protobuf_c_message_pack(&req->base, buf);
        r->req = robot_sre__agent__v1__action_request__unpack(NULL, n, buf);
        free(buf);
    }
    if (!r->req) {
        free(r);
        return;
    }
    /* Remember the id now, not when it finishes: a repeat that arrives while the first run is
     * still going must not start a second one. */
    struct cached_result *cr = &a->recent[a->recent_next++ % RSRE_RESULT_CACHE];
    snprintf(cr->request_id, sizeof(cr->request_id), "%s", r->req->request_id);
    cr->finished_ms = rsre_now_unix_ms();
    struct rsre_action_ctx *ctx = &r->ctx;
    robot_sre__agent__v1__action_result__init(&ctx->result);
    ctx->agent = a;
    ctx->req = r->req;
    ctx->result.request_id = r->req->request_id;
    ctx->result.action_id = r->req->action_id;
    ctx->result.started_unix_ms = rsre_now_unix_ms();
    a->actions_running++;
    const struct rsre_action_desc *desc = NULL;
    for (size_t i = 0; i < rsre__nactions; i++) {
        if (!strcmp(rsre__actions[i]->id, r->req->action_id)) {
            desc = rsre__actions[i];
        }
    }
    if (!desc) {
        a->actions_refused++;
        rsre_action_set(ctx, ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_REFUSED,
                        "unknown node-local action '%s'", r->req->action_id);
        rsre_action_done(ctx);
        return;
    }
    const char *refuser = refused_by(a, desc->id);
    if (refuser) {
        a->actions_refused++;
        rsre_action_set(ctx, ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_REFUSED,
                        "action '%s' is not on %s", desc->id, refuser);
        rsre_action_done(ctx);
        return;
    }
    if (r->req->deadline_unix_ms && r->req->deadline_unix_ms <= rsre_now_unix_ms()) {
        rsre_action_set(ctx, ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_TIMEOUT,
                        "deadline passed before the action started");
        rsre_action_done(ctx);
        return;
    }
    a->actions_run++;
    desc->run(ctx);
}

/* Applies an interval from a ConfigUpdate (0 = keep) to the collectors that use that field. */
static void apply_interval(struct rsre_agent *a, size_t offset, uint32_t ms) {
    if (!ms) {
        return;
    }
    *(uint32_t *)((char *)&a->cfg + offset) = ms;
    int changed = 0;
    for (size_t i = 0; i < a->ncollectors; i++) {
        struct collector_slot *c = &a->collectors[i];
        if (c->desc->interval_offset == offset && c->stats.enabled && c->interval_ms != ms) {
            c->interval_ms = ms;
            changed = 1;
        }
    }
    if (changed) {
        schedule_collectors(a, 0);
    }
    if (offset == offsetof(struct rsre_agent_config, batch_flush_ms)) {
        uv_timer_start(&a->flush_timer, on_flush_timer, ms, ms);
    }
}

static void on_config(void *arg, const RobotSre__Agent__V1__ConfigUpdate *cu) {
    struct rsre_agent *a = arg;
    const RobotSre__Agent__V1__CollectorIntervals *iv = cu->intervals;
    if (iv) {
        apply_interval(a, offsetof(struct rsre_agent_config, filesystem_ms), iv->filesystem_ms);
        apply_interval(a, offsetof(struct rsre_agent_config, image_gc_ms), iv->image_gc_ms);
        apply_interval(a, offsetof(struct rsre_agent_config, psi_ms), iv->pressure_stall_ms);
        apply_interval(a, offsetof(struct rsre_agent_config, kmsg_ms), iv->kernel_events_ms);
        apply_interval(a, offsetof(struct rsre_agent_config, kube_resync_ms),
                       iv->node_conditions_ms);
        apply_interval(a, offsetof(struct rsre_agent_config, batch_flush_ms), iv->batch_flush_ms);
    }
    int rc = rsre_fs_set_overrides(a, cu->threshold_overrides, cu->n_threshold_overrides);
    if (rc) {
        RSRE_LOG(RSRE_LOG_WARN, "agent", "threshold overrides not applied: %s",
                 rsre_strerror(rc));
    }
    static const char *const levels[] = {NULL, "debug", "info", "warn", "error"};
    if ((unsigned)cu->log_level < sizeof(levels) / sizeof(levels[0]) && levels[cu->log_level]) {
        rsre_log_set_level_name(levels[cu->log_level]);
    }
    a->have_remote_allowlist = 1;
    a->nremote_allowlist = 0;
    for (size_t i = 0; i < cu->n_action_allowlist && i < RSRE_AGENT_MAX_LIST; i++) {
        snprintf(a->remote_allowlist[a->nremote_allowlist++], sizeof(a->remote_allowlist[0]), "%s",
                 cu->action_allowlist[i]);
    }
    RSRE_LOG(RSRE_LOG_INFO, "agent", "config update generation=%llu actions_allowed=%zu",
             (unsigned long long)cu->generation, a->nremote_allowlist);
}

/* The aggregator has batches of this boot that the spool lost (power loss before a sync):
 * continue under a new boot id so no sequence number is ever reused. */
static void random_uuid(char out[37]);
static void on_boot_conflict(void *arg, const char *boot_id, uint64_t committed_seq,
                             uint64_t last_seq) {
    struct rsre_agent *a = arg;
    rsre_agent_flush(a);
    random_uuid(a->boot_id);
    a->seq = 0;
    RSRE_LOG(RSRE_LOG_WARN, "agent",
             "aggregator committed seq=%llu of boot=%s but the spool ends at %llu: new boot_id=%s",
             (unsigned long long)committed_seq, boot_id, (unsigned long long)last_seq, a->boot_id);
    rsre_stream_set_boot_id(a->stream, a->boot_id);
}

static void on_state(void *arg, int up) {
    struct rsre_agent *a = arg;
    RSRE_LOG(RSRE_LOG_INFO, "agent", "aggregator stream %s node=%s", up ? "up" : "down",
             a->cfg.node_name);
}

/* ---- lifecycle ---- */

static void random_uuid(char out[37]) {
    uint8_t b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
        uint64_t x = (uint64_t)rsre_now_unix_ms() ^ ((uint64_t)getpid() << 32);
        for (int i = 0; i < 16; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            b[i] = (uint8_t)(x >> 56);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

static void read_line(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(out, (int)cap, f)) {
            out[strcspn(out, "\n")] = '\0';
        }
        fclose(f);
    }
}

#define RUNTIME_HOLD_MS 2000 /* longest wait for CRI Version before the first Hello */

static int start_stream(struct rsre_agent *a) {
    RobotSre__Agent__V1__Hello hello = ROBOT_SRE__AGENT__V1__HELLO__INIT;
    RobotSre__Agent__V1__CollectorIntervals iv = ROBOT_SRE__AGENT__V1__COLLECTOR_INTERVALS__INIT;
    char kboot[64], krel[65] = "";
    struct utsname u;
    read_line("/proc/sys/kernel/random/boot_id", kboot, sizeof(kboot));
    if (uname(&u) == 0) {
        snprintf(krel, sizeof(krel), "%s", u.release);
    }
    RobotSre__Agent__V1__Capability caps[RSRE_AGENT_MAX_COLLECTORS + 3];
    size_t ncaps = 0;
    for (size_t i = 0; i < a->ncollectors; i++) {
        if (a->collectors[i].stats.enabled && a->collectors[i].desc->capability) {
            caps[ncaps++] = (RobotSre__Agent__V1__Capability)a->collectors[i].desc->capability;
        }
    }
    caps[ncaps++] = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_ACTIONS;
    caps[ncaps++] = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_DRY_RUN;
    caps[ncaps++] = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_SPOOL;
    char *actions[RSRE_AGENT_MAX_LIST];
    size_t nactions = 0;
    for (size_t i = 0; i < rsre__nactions && nactions < RSRE_AGENT_MAX_LIST; i++) {
        actions[nactions++] = (char *)rsre__actions[i]->id; /* implemented by this build */
    }
    iv.filesystem_ms = a->cfg.filesystem_ms;
    iv.node_conditions_ms = a->cfg.kube_resync_ms;
    iv.image_gc_ms = a->cfg.image_gc_ms;
    iv.pod_churn_ms = a->cfg.kube_resync_ms;
    iv.pressure_stall_ms = a->cfg.psi_ms;
    iv.kernel_events_ms = a->cfg.kmsg_ms;
    iv.pull_errors_ms = a->cfg.kube_resync_ms;
    iv.batch_flush_ms = a->cfg.batch_flush_ms;
    hello.protocol_revision = ROBOT_SRE__AGENT__V1__PROTOCOL_REVISION__PROTOCOL_REVISION_1;
    hello.node_name = a->cfg.node_name;
    hello.boot_id = a->boot_id;
    hello.agent_version = RSRE_VERSION;
    hello.capabilities = caps;
    hello.n_capabilities = ncaps;
    hello.intervals = &iv;
    hello.started_unix_ms = a->started_ms;
    hello.kernel_boot_id = kboot;
    hello.container_runtime = ""; /* filled from CRI Version (runtime_version_to_hello) */
    hello.actions = actions;
    hello.n_actions = nactions;
    hello.kernel_release = krel;
    struct rsre_stream_callbacks cb = {.on_action = on_action,
                                       .on_config = on_config,
                                       .on_state = on_state,
                                       .on_boot_conflict = on_boot_conflict,
                                       .arg = a};
    /* With a runtime client the first Hello waits (briefly) for its CRI Version. */
    return rsre_stream_create_held(a->loop, a->grpc, &a->cfg, a->spool, a->boot_id, &hello, &cb,
                                   a->cri ? RUNTIME_HOLD_MS : 0, &a->stream);
}


/* CRI Version answered: Hello.container_runtime becomes "<runtime_name>://<runtime_version>"
 * (the form of a Node's status.nodeInfo.containerRuntimeVersion), and the held first connection
 * starts. On an error the first Hello goes without it. */
static void on_runtime_version(void *arg, int rc, ProtobufCMessage *reply) {
    struct rsre_agent *a = arg;
    char runtime[RSRE_STREAM_RUNTIME_MAX + 1] = "";
    if (!rc) {
        const Runtime__V1__VersionResponse *v = (const Runtime__V1__VersionResponse *)reply;
        if (v->runtime_name && v->runtime_name[0]) {
            snprintf(runtime, sizeof(runtime), "%.60s://%.60s", v->runtime_name,
                     v->runtime_version ? v->runtime_version : "");
        }
        rsre_cri_free(reply);
    } else {
        RSRE_LOG(RSRE_LOG_WARN, "agent", "CRI Version failed: %s; Hello without the runtime",
                 rsre_strerror(rc));
    }
    if (a->stream && !a->closing && rsre_stream_set_runtime(a->stream, runtime) == 0 &&
        runtime[0]) {
        RSRE_LOG(RSRE_LOG_INFO, "agent", "container runtime %s", runtime);
    }
}

int rsre_agent_create(uv_loop_t *loop, const struct rsre_agent_config *cfg,
                      struct rsre_agent **out) {
    *out = NULL;
    struct rsre_agent *a = calloc(1, sizeof(*a));
    if (!a) {
        return -ENOMEM;
    }
    a->loop = loop;
    a->cfg = *cfg;
    a->started_ms = rsre_now_unix_ms();
    random_uuid(a->boot_id);
    if (cfg->footprint_trim) {
        rsre_footprint_early(); /* before grpc_init (rsre_grpc_loop_create) */
    }
    int rc = rsre_spool_open(cfg->spool_dir[0] ? cfg->spool_dir : NULL, cfg->spool_memory_bytes,
                             cfg->spool_disk_bytes, &a->spool);
    if (rc == RSRE_ECORRUPT && a->spool) {
        RSRE_LOG(RSRE_LOG_WARN, "agent", "on-disk spool was corrupt; set aside, starting empty");
    } else if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "agent", "cannot open spool: %s", rsre_strerror(rc));
        free(a);
        return rc;
    }
    if ((rc = rsre_grpc_loop_create(loop, &a->grpc))) {
        rsre_spool_close(a->spool);
        free(a);
        return rc;
    }
    uv_timer_init(loop, &a->flush_timer);
    a->flush_timer.data = a;
    uv_timer_start(&a->flush_timer, on_flush_timer, cfg->batch_flush_ms, cfg->batch_flush_ms);
    rsre__agent_services_start(a);
    start_collectors(a);
    if ((rc = start_stream(a))) {
        RSRE_LOG(RSRE_LOG_ERROR, "agent", "cannot start the aggregator stream: %s",
                 rsre_strerror(rc));
        *out = a;
        return rc; /* the caller closes the agent (rsre_agent_close) and exits */
    }
    if (a->cri && rsre_cri_version(a->cri, on_runtime_version, a) != 0) {
        rsre_stream_set_runtime(a->stream, ""); /* no answer will come: connect now */
    }
    if (cfg->health_addr[0] && (rc = rsre__health_start(a))) {
        RSRE_LOG(RSRE_LOG_ERROR, "agent", "cannot start health endpoint on %s: %s",
                 cfg->health_addr, rsre_strerror(rc));
    }
    RSRE_LOG(RSRE_LOG_INFO, "agent", "started node=%s boot_id=%s aggregator=%s collectors=%zu",
             cfg->node_name, a->boot_id, cfg->aggregator, a->ncollectors);
    *out = a;
    return 0;
}

static void finish_close(struct rsre_agent *a) {
    if (--a->pending_closes > 0) {
        return;
    }
    void (*cb)(void *) = a->closed_cb;
    void *arg = a->closed_arg;
    rsre_spool_close(a->spool);
    free(a->batch);
    free(a);
    if (cb) {
        cb(arg);
    }
}

static void on_handle_closed(uv_handle_t *h) {
    finish_close(h->data);
}

static void on_grpc_closed(void *arg) {
    finish_close(arg);
}

/* Step 3: every client is gone; close the handles and the gRPC bridge. */
static void on_services_stopped(struct rsre_agent *a) {
    a->pending_closes = 1; /* the gRPC bridge */
    for (size_t i = 0; i < a->ncollectors; i++) {
        a->pending_closes++;
        a->collectors[i].timer.data = a;
        uv_close((uv_handle_t *)&a->collectors[i].timer, on_handle_closed);
    }
    a->pending_closes++;
    uv_close((uv_handle_t *)&a->flush_timer, on_handle_closed);
    if (a->health_open) {
        a->pending_closes++;
        a->health.data = a;
        uv_close((uv_handle_t *)&a->health, on_handle_closed);
    }
    rsre_grpc_loop_destroy(a->grpc, on_grpc_closed, a);
}

/* Step 2: the stream is closed; stop the collectors (informers, pending runs), then the
 * runtime and Kubernetes clients (in-flight calls are cancelled; their callbacks still run). */
static void on_stream_closed(void *arg) {
    struct rsre_agent *a = arg;
    a->stream = NULL;
    for (size_t i = 0; i < a->ncollectors; i++) {
        struct collector_slot *c = &a->collectors[i];
        if (c->stats.enabled && c->desc->destroy) {
            c->desc->destroy(c->state);
        }
    }
    rsre__agent_services_stop(a, on_services_stopped);
}

void rsre_agent_close(struct rsre_agent *a, void (*closed)(void *), void *arg) {
    if (a->closing) {
        return;
    }
    a->closing = 1;
    a->closed_cb = closed;
    a->closed_arg = arg;
    for (size_t i = 0; i < a->ncollectors; i++) {
        uv_timer_stop(&a->collectors[i].timer);
    }
    uv_timer_stop(&a->flush_timer);
    rsre_agent_flush(a); /* the last signals go to the spool (and the disk spool) */
    rsre_spool_sync(a->spool);
    rsre__health_stop(a);
    RSRE_LOG(RSRE_LOG_INFO, "agent", "stopping node=%s batches=%llu signals=%llu",
             a->cfg.node_name, (unsigned long long)a->batches_cut,
             (unsigned long long)a->signals_emitted);
    if (a->stream) {
        rsre_stream_close(a->stream, on_stream_closed, a);
    } else {
        on_stream_closed(a);
    }
}
