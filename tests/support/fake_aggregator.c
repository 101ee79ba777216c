/*
 * fake_aggregator: a test stand-in for the aggregator's side of AgentStream.Connect, over real
 * gRPC (common/grpc_server.h), speaking the protocol of docs/protocol.md:
 *
 *   - Hello first (anything else: FAILED_PRECONDITION); answered with Ack(boot_id, H) where H is
 *     the highest committed seq of that boot (0 if unknown), then ConfigUpdate(generation 1),
 *     then, with --action, one ActionRequest (before the ConfigUpdate with
 *     --action-before-config).
 *   - SignalBatch: deduplicated by (boot, seq): seq <= H or already pending is a duplicate;
 *     otherwise it is pending, and a gap (seq > top + 1) is recorded. Pending batches are
 *     "committed" — appended to committed.log and fdatasync'ed — every --commit-ms (0: at once),
 *     and only then acknowledged with Ack(boot, H) on every live call that sent one.
 *   - ActionResult: committed to events.log (fdatasync) and acknowledged by request id (unless
 *     --hold-result-acks).
 *
 * Everything it sees goes to files in --dir, written with write(2) before anything is answered,
 * so a SIGKILL loses only what was pending (which the agent resends):
 *   received.log   "R <boot> <seq> <nsignals> <conn> <dup 0|1>" per SignalBatch received (conn:
 *                  pid * 10^6 + call number, unique across restarts; dup: known to this process)
 *   committed.log  "C <boot> <seq> <nsignals>" per batch committed (read back at start)
 *   events.log     "H <node> <boot> <cn or -> <certificate names node 0|1> <conn> <spool batches>
 *                  <dropped> <restored>",
 *                  "G <boot> <from> <to>" (gap), "A <request_id> <status>" (result committed),
 *                  "S <request_id> <action_id> <conn>" (ActionRequest sent)
 *
 * Options: --listen ADDR (required), --dir DIR (required), --port-file PATH (the bound port,
 * written atomically once listening), --commit-ms N, --no-commit (never commit or ack batches),
 * --hold-result-acks, --preset BOOT:SEQ (pretend SEQ of BOOT is committed), --action ID:ACTION,
 * --action-before-config, --tls-ca/--tls-cert/--tls-key PEM files, --log-level LEVEL.
 * SIGTERM/SIGINT: graceful shutdown, exit 0.
 *
 * End-to-end options (tests/integration/test_agent_e2e.c):
 *   --action-dry-run 0|1      dry_run of the --action request (default 1)
 *   --action-target T         its target
 *   --action-param K=V        one of its parameters (repeatable, at most 32)
 *   --action-deadline-ms N    its deadline, N ms after it is sent (default 60000; may be
 *                             negative: already passed)
 *   --allow ACTION            ConfigUpdate.action_allowlist entry (repeatable, at most 16);
 *                             without any, the allowlist is the --action's id (or empty)
 *   --actions-file F          on SIGUSR1, F is read and each line becomes one ActionRequest sent
 *                             on every call that has said Hello (queued for the next Hello when
 *                             there is none): "REQUEST_ID ACTION_ID [dry_run=0|1] [target=T]
 *                             [deadline_ms=N] [param=K=V]..." (defaults: dry_run 1, 60000 ms)
 *   --dump-signals F          one line per received signal (batches not seen before only), per
 *                             Hello and per new ActionResult: the kind, then key=value fields
 *                             (see fa_dump_*); a result line ends with message=<free text>
 *
 * This file has a main() unless RSRE_FAKE_AGGREGATOR_NO_MAIN is defined: tests include it and
 * call fake_aggregator_main() from their own main when started with --serve.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/grpc_server.h"
#include "common/log.h"
#include "common/pbuf.h"

#define FA_M(x) RobotSre__Agent__V1__##x
#define FA_E(x) ROBOT_SRE__AGENT__V1__##x
#define FA_MAX_BOOTS 64
#define FA_MAX_RESULTS 1024
#define FA_MAX_PARAMS 32
#define FA_MAX_ALLOW 16
#define FA_MAX_QUEUED 32

/* One ActionRequest to send; the deadline is relative to the moment it is sent. */
struct fa_action {
    char request_id[129], action_id[129], target[1025];
    int dry_run;
    int64_t deadline_ms;
    size_t nparams;
    char keys[FA_MAX_PARAMS][129], vals[FA_MAX_PARAMS][257];
};

struct fa_boot {
    char boot[37];
    uint64_t committed, pending_max;
};

struct fa_pending {
    int boot; /* index into boots */
    uint64_t seq;
    uint32_t nsignals;
    uint64_t conn;
};

struct fa_call;

struct fa {
    uv_loop_t loop;
    struct rsre_grpc_loop *gl;
    struct rsre_grpc_server *srv;
    uv_timer_t commit_timer;
    uv_signal_t sigterm, sigint, sigusr1;
    int stopping;
    /* options */
    const char *listen, *dir, *port_file, *tls_ca, *tls_cert, *tls_key, *actions_file, *dump_file;
    unsigned commit_ms;
    int no_commit, hold_result_acks, action_before_config;
    char action_request_id[129], action_id[129];
    struct fa_action action; /* the --action request (action_id[0] != 0 when set) */
    char allow[FA_MAX_ALLOW][129];
    size_t nallow;
    struct fa_action queued[FA_MAX_QUEUED]; /* from --actions-file, waiting for a Hello */
    size_t nqueued;
    /* files */
    int recv_fd, commit_fd, events_fd, dump_fd;
    /* state */
    struct fa_boot boots[FA_MAX_BOOTS];
    size_t nboots;
    struct fa_pending *pending;
    size_t npending, cap_pending;
    char results[FA_MAX_RESULTS][129];
    size_t nresults;
    struct fa_call *calls;
    uint64_t conns;
};

struct fa_call {
    struct fa *fa;
    struct rsre_grpc_server_call *c;
    struct fa_call *next;
    uint64_t conn;
    int hello;
    char boot[37];
};

/* ---- files ---------------------------------------------------------------------------------- */

static void fa_write(int fd, const char *line) {
    size_t n = strlen(line);
    while (n > 0) {
        ssize_t w = write(fd, line, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            fprintf(stderr, "fake_aggregator: write failed: %s\n", strerror(errno));
            exit(3);
        }
        line += w;
        n -= (size_t)w;
    }
}

static int fa_open(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "fake_aggregator: cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

static int fa_boot_index(struct fa *fa, const char *boot) {
    for (size_t i = 0; i < fa->nboots; i++) {
        if (strcmp(fa->boots[i].boot, boot) == 0) {
            return (int)i;
        }
    }
    if (fa->nboots == FA_MAX_BOOTS) {
        fprintf(stderr, "fake_aggregator: too many boot ids\n");
        exit(4);
    }
    struct fa_boot *b = &fa->boots[fa->nboots];
    memset(b, 0, sizeof(*b));
    snprintf(b->boot, sizeof(b->boot), "%s", boot);
    return (int)fa->nboots++;
}

/* Reads committed.log and events.log back (a torn last line is ignored). */
static void fa_load(struct fa *fa) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/committed.log", fa->dir);
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        char boot[64];
        uint64_t seq;
        if (strchr(line, '\n') && sscanf(line, "C %63s %" SCNu64, boot, &seq) == 2) {
            struct fa_boot *b = &fa->boots[fa_boot_index(fa, boot)];
            if (seq > b->committed) {
                b->committed = seq;
            }
        }
    }
    if (f) {
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/events.log", fa->dir);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        char id[129];
        if (strchr(line, '\n') && sscanf(line, "A %128s", id) == 1 &&
            fa->nresults < FA_MAX_RESULTS) {
            snprintf(fa->results[fa->nresults++], sizeof(fa->results[0]), "%s", id);
        }
    }
    if (f) {
        fclose(f);
    }
}

static int fa_result_committed(struct fa *fa, const char *id) {
    for (size_t i = 0; i < fa->nresults; i++) {
        if (strcmp(fa->results[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- sending -------------------------------------------------------------------------------- */

static void fa_send_ack(struct fa_call *fc, const char *boot, uint64_t committed,
                        const char *result_id) {
    FA_M(Ack) ack = ROBOT_SRE__AGENT__V1__ACK__INIT;
    ack.boot_id = (char *)boot;
    ack.committed_seq = committed;
    char *ids[1] = {(char *)result_id};
    if (result_id) {
        ack.n_result_request_ids = 1;
        ack.result_request_ids = ids;
    }
    FA_M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = FA_E(AGGREGATOR_MESSAGE__BODY_ACK);
    m.ack = &ack;
    rsre_grpc_server_send_msg(fc->c, &m.base);
}

static void fa_send_config(struct fa_call *fc) {
    FA_M(ConfigUpdate) cu = ROBOT_SRE__AGENT__V1__CONFIG_UPDATE__INIT;
    cu.generation = 1;
    cu.protocol_revision = RSRE_PBUF_PROTOCOL_REVISION;
    struct fa *fa = fc->fa;
    char *allow[FA_MAX_ALLOW];
    if (fa->nallow) {
        for (size_t i = 0; i < fa->nallow; i++) {
            allow[i] = fa->allow[i];
        }
        cu.n_action_allowlist = fa->nallow;
        cu.action_allowlist = allow;
    } else if (fa->action_id[0]) {
        allow[0] = fa->action_id;
        cu.n_action_allowlist = 1;
        cu.action_allowlist = allow;
    }
    FA_M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = FA_E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE);
    m.config_update = &cu;
    rsre_grpc_server_send_msg(fc->c, &m.base);
}

static void fa_send_request(struct fa_call *fc, const struct fa_action *a) {
    struct fa *fa = fc->fa;
    FA_M(ActionRequest) req = ROBOT_SRE__AGENT__V1__ACTION_REQUEST__INIT;
    req.request_id = (char *)a->request_id;
    req.action_id = (char *)a->action_id;
    req.target = (char *)a->target;
    req.dry_run = a->dry_run;
    FA_M(ActionRequest__ParametersEntry) entries[FA_MAX_PARAMS];
    FA_M(ActionRequest__ParametersEntry) * params[FA_MAX_PARAMS];
    for (size_t i = 0; i < a->nparams; i++) {
        robot_sre__agent__v1__action_request__parameters_entry__init(&entries[i]);
        entries[i].key = (char *)a->keys[i];
        entries[i].value = (char *)a->vals[i];
        params[i] = &entries[i];
    }
    req.n_parameters = a->nparams;
    req.parameters = params;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    req.issued_unix_ms = now;
    req.deadline_unix_ms = now + a->deadline_ms > 0 ? now + a->deadline_ms : 1;
    FA_M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = FA_E(AGGREGATOR_MESSAGE__BODY_ACTION_REQUEST);
    m.action_request = &req;
    char line[512];
    snprintf(line, sizeof(line), "S %s %s %" PRIu64 "\n", a->request_id, a->action_id, fc->conn);
    fa_write(fa->events_fd, line);
    rsre_grpc_server_send_msg(fc->c, &m.base);
}

static void fa_send_action(struct fa_call *fc) {
    fa_send_request(fc, &fc->fa->action);
}

static struct fa_call *fa_call_by_conn(struct fa *fa, uint64_t conn) {
    for (struct fa_call *fc = fa->calls; fc; fc = fc->next) {
        if (fc->conn == conn) {
            return fc;
        }
    }
    return NULL;
}

/* Commits every pending batch (one write + fdatasync), then acknowledges them. */
static void fa_commit(struct fa *fa) {
    if (fa->npending == 0 || fa->no_commit) {
        return;
    }
    size_t cap = fa->npending * 80 + 1;
    char *buf = malloc(cap);
    if (!buf) {
        exit(5);
    }
    size_t off = 0;
    for (size_t i = 0; i < fa->npending; i++) {
        const struct fa_pending *p = &fa->pending[i];
        off += (size_t)snprintf(buf + off, cap - off, "C %s %" PRIu64 " %u\n",
                                fa->boots[p->boot].boot, p->seq, p->nsignals);
    }
    fa_write(fa->commit_fd, buf);
    free(buf);
    if (fdatasync(fa->commit_fd) != 0) {
        fprintf(stderr, "fake_aggregator: fdatasync: %s\n", strerror(errno));
        exit(3);
    }
    for (size_t i = 0; i < fa->npending; i++) {
        struct fa_boot *b = &fa->boots[fa->pending[i].boot];
        if (fa->pending[i].seq > b->committed) {
            b->committed = fa->pending[i].seq;
        }
    }
    /* One Ack per (live call, boot) among the committed batches. */
    for (size_t i = 0; i < fa->npending; i++) {
        const struct fa_pending *p = &fa->pending[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = fa->pending[j].conn == p->conn && fa->pending[j].boot == p->boot;
        }
        struct fa_call *fc = seen ? NULL : fa_call_by_conn(fa, p->conn);
        if (fc) {
            fa_send_ack(fc, fa->boots[p->boot].boot, fa->boots[p->boot].committed, NULL);
        }
    }
    fa->npending = 0;
}

static void fa_on_commit_timer(uv_timer_t *t) {
    fa_commit(t->data);
}

/* ---- --dump-signals ------------------------------------------------------------------------ */

/* A growing line; out of memory ends the process (it is a test helper). */
struct fa_line {
    char *p;
    size_t len, cap;
};

static void fa_addf(struct fa_line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fa_addf(struct fa_line *l, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(l->p ? l->p + l->len : NULL, l->p ? l->cap - l->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            exit(5);
        }
        if (l->p && l->len + (size_t)n < l->cap) {
            l->len += (size_t)n;
            return;
        }
        size_t cap = l->cap ? l->cap : 256;
        while (cap <= l->len + (size_t)n) {
            cap *= 2;
        }
        char *np = realloc(l->p, cap);
        if (!np) {
            exit(5);
        }
        l->p = np;
        l->cap = cap;
    }
}

/* A value without spaces or control bytes ('_' instead), "-" when empty or NULL. */
static void fa_add_word(struct fa_line *l, const char *key, const char *v) {
    fa_addf(l, " %s=", key);
    if (!v || !*v) {
        fa_addf(l, "-");
        return;
    }
    for (; *v; v++) {
        fa_addf(l, "%c", (unsigned char)*v <= 0x20 || *v == 0x7f ? '_' : *v);
    }
}

/* The enum value's proto name without `prefix` (e.g. "OK" for ACTION_STATUS_OK), or the number. */
static void fa_add_enum(struct fa_line *l, const char *key, const ProtobufCEnumDescriptor *d, int v,
                        const char *prefix) {
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (!ev) {
        fa_addf(l, " %s=%d", key, v);
        return;
    }
    const char *name = ev->name;
    if (!strncmp(name, prefix, strlen(prefix))) {
        name += strlen(prefix);
    }
    fa_addf(l, " %s=%s", key, name);
}

static void fa_line_write(struct fa *fa, struct fa_line *l) {
    fa_addf(l, "\n");
    fa_write(fa->dump_fd, l->p);
    l->len = 0;
}

static void fa_dump_filesystem(struct fa_line *l, const FA_M(FilesystemUsage) * f) {
    fa_add_enum(l, "which", &robot_sre__agent__v1__filesystem_role__descriptor, (int)f->which,
                "FILESYSTEM_ROLE_");
    fa_add_word(l, "path", f->path);
    fa_add_word(l, "device", f->device);
    fa_addf(l,
            " bytes_total=%" PRIu64 " bytes_free=%" PRIu64 " bytes_avail=%" PRIu64
            " inodes_total=%" PRIu64 " inodes_free=%" PRIu64,
            f->bytes_total, f->bytes_free, f->bytes_avail, f->inodes_total, f->inodes_free);
    fa_addf(l, " eviction_available=%" PRIu64 " eviction_inodes_free=%" PRIu64,
            f->eviction_available ? f->eviction_available->effective : 0,
            f->eviction_inodes_free ? f->eviction_inodes_free->effective : 0);
    fa_add_enum(l, "threshold_source", &robot_sre__agent__v1__threshold_source__descriptor,
                (int)f->threshold_source, "THRESHOLD_SOURCE_");
    fa_addf(l,
            " image_gc_high_percent=%g image_gc_low_percent=%g fill_rate_bytes_per_sec=%g"
            " fill_window_sec=%u seconds_to_eviction=%" PRId64 " seconds_to_gc_high=%" PRId64
            " seconds_to_inode_eviction=%" PRId64,
            f->image_gc_high_percent, f->image_gc_low_percent, f->fill_rate_bytes_per_sec,
            f->fill_window_sec, f->seconds_to_eviction, f->seconds_to_gc_high,
            f->seconds_to_inode_eviction);
}

static void fa_dump_image_gc(struct fa_line *l, const FA_M(ImageGcState) * g) {
    fa_addf(l,
            " image_count=%u total_bytes=%" PRIu64 " unused_count=%u unused_bytes=%" PRIu64
            " pinned_count=%u pinned_bytes=%" PRIu64 " reclaimable_bytes=%" PRIu64
            " bytes_to_gc_low=%" PRIu64 " gc_can_recover=%d min_image_age_sec=%u",
            g->image_count, g->total_bytes, g->unused_count, g->unused_bytes, g->pinned_count,
            g->pinned_bytes, g->reclaimable_bytes, g->bytes_to_gc_low, (int)g->gc_can_recover,
            g->min_image_age_sec);
    if (g->imagefs) {
        fa_add_word(l, "imagefs_mountpoint", g->imagefs->mountpoint);
        fa_addf(l,
                " imagefs_used_bytes=%" PRIu64 " imagefs_inodes_used=%" PRIu64
                " imagefs_capacity_bytes=%" PRIu64,
                g->imagefs->used_bytes, g->imagefs->inodes_used, g->imagefs->capacity_bytes);
    }
}

static void fa_dump_condition(struct fa_line *l, const char *key, const FA_M(NodeCondition) * c) {
    if (!c) {
        fa_addf(l, " %s=-", key);
        return;
    }
    fa_add_enum(l, key, &robot_sre__agent__v1__condition_status__descriptor, (int)c->status,
                "CONDITION_STATUS_");
}

/* One line per signal of a batch seen for the first time. */
static void fa_dump_batch(struct fa *fa, const FA_M(SignalBatch) * sb) {
    struct fa_line l = {0};
    for (size_t i = 0; i < sb->n_signals; i++) {
        const FA_M(Signal) *s = sb->signals[i];
        static const char *const kinds[] = {
            [FA_E(SIGNAL__KIND_FILESYSTEM)] = "filesystem",
            [FA_E(SIGNAL__KIND_NODE_CONDITIONS)] = "node_conditions",
            [FA_E(SIGNAL__KIND_IMAGE_GC)] = "image_gc",
            [FA_E(SIGNAL__KIND_POD_CHURN)] = "pod_churn",
            [FA_E(SIGNAL__KIND_PRESSURE_STALL)] = "pressure_stall",
            [FA_E(SIGNAL__KIND_KERNEL_EVENT)] = "kernel_event",
            [FA_E(SIGNAL__KIND_PULL_ERROR)] = "pull_error",
        };
        size_t k = (size_t)s->kind_case;
        const char *kind = k < sizeof(kinds) / sizeof(kinds[0]) && kinds[k] ? kinds[k] : "unknown";
        fa_addf(&l, "%s boot=%s seq=%" PRIu64 " observed_ms=%" PRId64, kind, sb->boot_id, sb->seq,
                s->observed_unix_ms);
        switch (s->kind_case) {
        case FA_E(SIGNAL__KIND_FILESYSTEM):
            fa_dump_filesystem(&l, s->filesystem);
            break;
        case FA_E(SIGNAL__KIND_IMAGE_GC):
            fa_dump_image_gc(&l, s->image_gc);
            break;
        case FA_E(SIGNAL__KIND_NODE_CONDITIONS):
            fa_dump_condition(&l, "ready", s->node_conditions->ready);
            fa_dump_condition(&l, "disk_pressure", s->node_conditions->disk_pressure);
            fa_dump_condition(&l, "memory_pressure", s->node_conditions->memory_pressure);
            fa_dump_condition(&l, "pid_pressure", s->node_conditions->pid_pressure);
            fa_addf(&l, " taints=%zu unschedulable=%d", s->node_conditions->n_taints,
                    (int)s->node_conditions->unschedulable);
            break;
        case FA_E(SIGNAL__KIND_POD_CHURN): {
            const FA_M(PodChurn) *p = s->pod_churn;
            fa_addf(&l,
                    " window_sec=%u running=%u pending=%u succeeded=%u failed=%u evicted=%u"
                    " restarts_total=%" PRIu64 " containers_created_in_window=%u"
                    " containers_exited_in_window=%u sandboxes_not_ready=%u exited_containers=%u",
                    p->window_sec, p->running, p->pending, p->succeeded, p->failed, p->evicted,
                    p->restarts_total, p->containers_created_in_window,
                    p->containers_exited_in_window, p->sandboxes_not_ready, p->exited_containers);
            break;
        }
        case FA_E(SIGNAL__KIND_PRESSURE_STALL):
            fa_add_enum(&l, "resource", &robot_sre__agent__v1__psi_resource__descriptor,
                        (int)s->pressure_stall->resource, "PSI_RESOURCE_");
            if (s->pressure_stall->some) {
                fa_addf(&l, " some_avg10=%g some_total_usec=%" PRIu64,
                        s->pressure_stall->some->avg10, s->pressure_stall->some->total_usec);
            }
            break;
        case FA_E(SIGNAL__KIND_KERNEL_EVENT):
            fa_add_enum(&l, "event", &robot_sre__agent__v1__kernel_event_kind__descriptor,
                        (int)s->kernel_event->kind, "KERNEL_EVENT_KIND_");
            fa_addf(&l, " priority=%u suppressed=%u", s->kernel_event->priority,
                    s->kernel_event->suppressed);
            fa_add_word(&l, "subject", s->kernel_event->subject);
            break;
        case FA_E(SIGNAL__KIND_PULL_ERROR):
            fa_add_word(&l, "namespace", s->pull_error->pod_namespace);
            fa_add_word(&l, "pod", s->pull_error->pod_name);
            fa_add_word(&l, "container", s->pull_error->container);
            fa_add_word(&l, "image", s->pull_error->image);
            fa_add_enum(&l, "reason", &robot_sre__agent__v1__pull_error_reason__descriptor,
                        (int)s->pull_error->reason, "PULL_ERROR_REASON_");
            break;
        default:
            break;
        }
        fa_line_write(fa, &l);
    }
    free(l.p);
}

static void fa_dump_hello(struct fa *fa, const FA_M(Hello) * h) {
    struct fa_line l = {0};
    fa_addf(&l, "hello");
    fa_add_word(&l, "node", h->node_name);
    fa_add_word(&l, "boot", h->boot_id);
    fa_add_word(&l, "version", h->agent_version);
    fa_add_word(&l, "runtime", h->container_runtime);
    fa_addf(&l, " capabilities=");
    for (size_t i = 0; i < h->n_capabilities; i++) {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            &robot_sre__agent__v1__capability__descriptor, (int)h->capabilities[i]);
        fa_addf(&l, "%s%s", i ? "," : "", ev ? ev->name + strlen("CAPABILITY_") : "?");
    }
    fa_addf(&l, " actions=");
    for (size_t i = 0; i < h->n_actions; i++) {
        fa_addf(&l, "%s%s", i ? "," : "", h->actions[i]);
    }
    if (!h->n_actions) {
        fa_addf(&l, "-");
    }
    fa_line_write(fa, &l);
    free(l.p);
}

static void fa_dump_result(struct fa *fa, const FA_M(ActionResult) * r) {
    struct fa_line l = {0};
    fa_addf(&l, "result");
    fa_add_word(&l, "request_id", r->request_id);
    fa_add_word(&l, "action_id", r->action_id);
    fa_add_enum(&l, "status", &robot_sre__agent__v1__action_status__descriptor, (int)r->status,
                "ACTION_STATUS_");
    fa_addf(&l,
            " objects_removed=%u bytes_freed=%" PRIu64 " truncated=%d started_ms=%" PRId64
            " finished_ms=%" PRId64 " removed_ids=",
            r->objects_removed, r->bytes_freed, (int)r->removed_ids_truncated, r->started_unix_ms,
            r->finished_unix_ms);
    for (size_t i = 0; i < r->n_removed_object_ids; i++) {
        fa_addf(&l, "%s%s", i ? "," : "", r->removed_object_ids[i]);
    }
    if (!r->n_removed_object_ids) {
        fa_addf(&l, "-");
    }
    fa_addf(&l, " message=");
    for (const char *m = r->message; m && *m; m++) {
        fa_addf(&l, "%c", (unsigned char)*m < 0x20 || *m == 0x7f ? ' ' : *m);
    }
    fa_line_write(fa, &l);
    free(l.p);
}

/* ---- receiving ------------------------------------------------------------------------------ */

static void fa_hello(struct fa_call *fc, const FA_M(Hello) * h) {
    struct fa *fa = fc->fa;
    fc->hello = 1;
    snprintf(fc->boot, sizeof(fc->boot), "%s", h->boot_id);
    const char *cn = rsre_grpc_server_call_identity(fc->c);
    char line[1024];
    snprintf(line, sizeof(line), "H %s %s %s %d %" PRIu64 " %u %" PRIu64 " %d\n", h->node_name,
             h->boot_id, cn ? cn : "-", rsre_grpc_server_call_peer_is(fc->c, h->node_name),
             fc->conn, h->spool ? h->spool->batches : 0, h->spool ? h->spool->dropped_batches : 0,
             h->spool ? (int)h->spool->restored : 0);
    fa_write(fa->events_fd, line);
    if (fa->dump_fd >= 0) {
        fa_dump_hello(fa, h);
    }
    struct fa_boot *b = &fa->boots[fa_boot_index(fa, h->boot_id)];
    fa_send_ack(fc, b->boot, b->committed, NULL);
    int send_action = fa->action_id[0] && !fa_result_committed(fa, fa->action_request_id);
    if (send_action && fa->action_before_config) {
        fa_send_action(fc);
    }
    fa_send_config(fc);
    if (send_action && !fa->action_before_config) {
        fa_send_action(fc);
    }
    for (size_t i = 0; i < fa->nqueued; i++) {
        fa_send_request(fc, &fa->queued[i]);
    }
    fa->nqueued = 0;
}

static void fa_batch(struct fa_call *fc, const FA_M(SignalBatch) * sb) {
    struct fa *fa = fc->fa;
    int bi = fa_boot_index(fa, sb->boot_id);
    struct fa_boot *b = &fa->boots[bi];
    uint64_t top = b->committed > b->pending_max ? b->committed : b->pending_max;
    int dup = sb->seq <= top;
    char line[256];
    snprintf(line, sizeof(line), "R %s %" PRIu64 " %zu %" PRIu64 " %d\n", sb->boot_id, sb->seq,
             sb->n_signals, fc->conn, dup);
    fa_write(fa->recv_fd, line);
    if (dup) {
        if (b->pending_max <= b->committed && !fa->no_commit) {
            fa_send_ack(fc, b->boot, b->committed, NULL); /* nothing pending: ack H now */
        }
        return;
    }
    if (fa->dump_fd >= 0) {
        fa_dump_batch(fa, sb);
    }
    if (sb->seq > top + 1) {
        snprintf(line, sizeof(line), "G %s %" PRIu64 " %" PRIu64 "\n", sb->boot_id, top + 1,
                 sb->seq - 1);
        fa_write(fa->events_fd, line);
    }
    if (fa->npending == fa->cap_pending) {
        fa->cap_pending = fa->cap_pending ? fa->cap_pending * 2 : 256;
        fa->pending = realloc(fa->pending, fa->cap_pending * sizeof(*fa->pending));
        if (!fa->pending) {
            exit(5);
        }
    }
    fa->pending[fa->npending++] =
        (struct fa_pending){bi, sb->seq, (uint32_t)sb->n_signals, fc->conn};
    b->pending_max = sb->seq;
    if (fa->commit_ms == 0) {
        fa_commit(fa);
    }
}

static void fa_result(struct fa_call *fc, const FA_M(ActionResult) * r) {
    struct fa *fa = fc->fa;
    if (!fa_result_committed(fa, r->request_id)) {
        char line[512];
        snprintf(line, sizeof(line), "A %s %d\n", r->request_id, (int)r->status);
        fa_write(fa->events_fd, line);
        if (fdatasync(fa->events_fd) != 0) {
            exit(3);
        }
        if (fa->dump_fd >= 0) {
            fa_dump_result(fa, r);
        }
        if (fa->nresults < FA_MAX_RESULTS) {
            snprintf(fa->results[fa->nresults++], sizeof(fa->results[0]), "%s", r->request_id);
        }
    }
    if (!fa->hold_result_acks) {
        struct fa_boot *b = &fa->boots[fa_boot_index(fa, fc->boot)];
        fa_send_ack(fc, b->boot, b->committed, r->request_id);
    }
}

static void fa_on_message(void *arg, struct rsre_grpc_server_call *c, const uint8_t *buf,
                          size_t len) {
    (void)arg;
    struct fa_call *fc = rsre_grpc_server_call_data(c);
    FA_M(AgentMessage) *m = NULL;
    char err[RSRE_PBUF_ERR_LEN];
    int rc = rsre_pbuf_decode_agent_message(buf, len, 0, &m, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "fake_aggregator: bad message: %s\n", err);
        rsre_grpc_server_cancel(c, GRPC_STATUS_INVALID_ARGUMENT, err);
        return;
    }
    if (!fc->hello && m->body_case != FA_E(AGENT_MESSAGE__BODY_HELLO)) {
        rsre_grpc_server_cancel(c, GRPC_STATUS_FAILED_PRECONDITION, "Hello must come first");
    } else if (m->body_case == FA_E(AGENT_MESSAGE__BODY_HELLO)) {
        if (fc->hello) {
            rsre_grpc_server_cancel(c, GRPC_STATUS_FAILED_PRECONDITION, "second Hello");
        } else {
            fa_hello(fc, m->hello);
        }
    } else if (m->body_case == FA_E(AGENT_MESSAGE__BODY_SIGNAL_BATCH)) {
        fa_batch(fc, m->signal_batch);
    } else if (m->body_case == FA_E(AGENT_MESSAGE__BODY_ACTION_RESULT)) {
        fa_result(fc, m->action_result);
    }
    rsre_pbuf_free_agent_message(m);
}

static int fa_on_call(void *arg, struct rsre_grpc_server_call *c) {
    struct fa *fa = arg;
    struct fa_call *fc = calloc(1, sizeof(*fc));
    if (!fc) {
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    fc->fa = fa;
    fc->c = c;
    fc->conn = (uint64_t)getpid() * 1000000u + ++fa->conns; /* unique across restarts */
    fc->next = fa->calls;
    fa->calls = fc;
    rsre_grpc_server_call_set_data(c, fc);
    return 0;
}

static void fa_on_done(void *arg, struct rsre_grpc_server_call *c, int cancelled) {
    struct fa *fa = arg;
    (void)cancelled;
    struct fa_call *fc = rsre_grpc_server_call_data(c);
    for (struct fa_call **pp = &fa->calls; *pp; pp = &(*pp)->next) {
        if (*pp == fc) {
            *pp = fc->next;
            break;
        }
    }
    free(fc);
}

/* ---- --actions-file ------------------------------------------------------------------------ */

/* Adds "K=V" to a's parameters; returns 0 or -1 (malformed or too many). */
static int fa_add_param(struct fa_action *a, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || a->nparams == FA_MAX_PARAMS || eq - kv > 128 || strlen(eq + 1) > 256) {
        return -1;
    }
    snprintf(a->keys[a->nparams], sizeof(a->keys[0]), "%.*s", (int)(eq - kv), kv);
    snprintf(a->vals[a->nparams], sizeof(a->vals[0]), "%s", eq + 1);
    a->nparams++;
    return 0;
}

static void fa_action_defaults(struct fa_action *a) {
    memset(a, 0, sizeof(*a));
    a->dry_run = 1;
    a->deadline_ms = 60000;
}

/* Parses "REQUEST_ID ACTION_ID [dry_run=0|1] [target=T] [deadline_ms=N] [param=K=V]...". */
static int fa_parse_action_line(char *line, struct fa_action *a) {
    fa_action_defaults(a);
    char *save = NULL;
    char *id = strtok_r(line, " \t\r\n", &save);
    char *action = id ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    if (!action || strlen(id) > 128 || strlen(action) > 128) {
        return -1;
    }
    snprintf(a->request_id, sizeof(a->request_id), "%s", id);
    snprintf(a->action_id, sizeof(a->action_id), "%s", action);
    for (char *t; (t = strtok_r(NULL, " \t\r\n", &save));) {
        if (!strncmp(t, "dry_run=", 8)) {
            a->dry_run = atoi(t + 8) != 0;
        } else if (!strncmp(t, "target=", 7) && strlen(t + 7) < sizeof(a->target)) {
            snprintf(a->target, sizeof(a->target), "%s", t + 7);
        } else if (!strncmp(t, "deadline_ms=", 12)) {
            a->deadline_ms = strtoll(t + 12, NULL, 10);
        } else if (!strncmp(t, "param=", 6) && fa_add_param(a, t + 6) == 0) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

/* SIGUSR1: sends every request of --actions-file on every call that has said Hello. */
static void fa_on_usr1(uv_signal_t *sig, int signum) {
    (void)signum;
    struct fa *fa = sig->data;
    FILE *f = fa->actions_file ? fopen(fa->actions_file, "r") : NULL;
    if (!f) {
        fprintf(stderr, "fake_aggregator: SIGUSR1 without a readable --actions-file\n");
        return;
    }
    static struct fa_action batch[FA_MAX_QUEUED];
    size_t n = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        if (line[strspn(line, " \t\r\n")] == '\0' || line[0] == '#') {
            continue;
        }
        if (n == FA_MAX_QUEUED || fa_parse_action_line(line, &batch[n]) != 0) {
            fprintf(stderr, "fake_aggregator: bad or too many lines in %s\n", fa->actions_file);
            break;
        }
        n++;
    }
    fclose(f);
    int sent = 0;
    for (struct fa_call *fc = fa->calls; fc; fc = fc->next) {
        if (!fc->hello) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            fa_send_request(fc, &batch[i]);
        }
        sent = 1;
    }
    for (size_t i = 0; !sent && i < n && fa->nqueued < FA_MAX_QUEUED; i++) {
        fa->queued[fa->nqueued++] = batch[i];
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void fa_on_gl_closed(void *arg) {
    (void)arg;
}

static void fa_on_server_closed(void *arg) {
    struct fa *fa = arg;
    fa->srv = NULL;
    rsre_grpc_loop_destroy(fa->gl, fa_on_gl_closed, fa);
    fa->gl = NULL;
}

static void fa_stop(struct fa *fa) {
    if (fa->stopping) {
        return;
    }
    fa->stopping = 1;
    fa_commit(fa);
    uv_close((uv_handle_t *)&fa->commit_timer, NULL);
    uv_close((uv_handle_t *)&fa->sigterm, NULL);
    uv_close((uv_handle_t *)&fa->sigint, NULL);
    uv_close((uv_handle_t *)&fa->sigusr1, NULL);
    rsre_grpc_server_shutdown(fa->srv, fa_on_server_closed, fa);
}

static void fa_on_signal(uv_signal_t *s, int signum) {
    (void)signum;
    fa_stop(s->data);
}

static int fa_usage(void) {
    fprintf(stderr, "usage: fake_aggregator --listen ADDR --dir DIR [--port-file F] "
                    "[--commit-ms N] [--no-commit] [--hold-result-acks] [--preset BOOT:SEQ] "
                    "[--action ID:ACTION] [--action-before-config] [--action-dry-run 0|1] "
                    "[--action-target T] [--action-param K=V]... [--action-deadline-ms N] "
                    "[--allow ACTION]... [--actions-file F] [--dump-signals F] [--tls-ca F "
                    "--tls-cert F --tls-key F] [--log-level L]\n");
    return 64;
}

/* argv[0] is the program name; options follow. Returns the exit status. */
static int fake_aggregator_main(int argc, char **argv) {
    static struct fa fa_storage;
    struct fa *fa = &fa_storage;
    memset(fa, 0, sizeof(*fa));
    fa_action_defaults(&fa->action);
    fa->dump_fd = -1;
    const char *presets[16];
    size_t npresets = 0;
    rsre_log_set_level_name("warn");
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--no-commit")) {
            fa->no_commit = 1;
        } else if (!strcmp(o, "--hold-result-acks")) {
            fa->hold_result_acks = 1;
        } else if (!strcmp(o, "--action-before-config")) {
            fa->action_before_config = 1;
        } else if (!v) {
            return fa_usage();
        } else if (!strcmp(o, "--listen")) {
            fa->listen = v, i++;
        } else if (!strcmp(o, "--dir")) {
            fa->dir = v, i++;
        } else if (!strcmp(o, "--port-file")) {
            fa->port_file = v, i++;
        } else if (!strcmp(o, "--commit-ms")) {
            fa->commit_ms = (unsigned)strtoul(v, NULL, 10), i++;
        } else if (!strcmp(o, "--tls-ca")) {
            fa->tls_ca = v, i++;
        } else if (!strcmp(o, "--tls-cert")) {
            fa->tls_cert = v, i++;
        } else if (!strcmp(o, "--tls-key")) {
            fa->tls_key = v, i++;
        } else if (!strcmp(o, "--log-level")) {
            rsre_log_set_level_name(v), i++;
        } else if (!strcmp(o, "--preset") && npresets < 16) {
            presets[npresets++] = v, i++;
        } else if (!strcmp(o, "--action")) {
            const char *colon = strchr(v, ':');
            if (!colon || colon - v > 128 || strlen(colon + 1) > 128) {
                return fa_usage();
            }
            snprintf(fa->action_request_id, sizeof(fa->action_request_id), "%.*s", (int)(colon - v),
                     v);
            snprintf(fa->action_id, sizeof(fa->action_id), "%s", colon + 1);
            i++;
        } else if (!strcmp(o, "--action-dry-run")) {
            fa->action.dry_run = atoi(v) != 0, i++;
        } else if (!strcmp(o, "--action-target") && strlen(v) < sizeof(fa->action.target)) {
            snprintf(fa->action.target, sizeof(fa->action.target), "%s", v), i++;
        } else if (!strcmp(o, "--action-param")) {
            if (fa_add_param(&fa->action, v) != 0) {
                return fa_usage();
            }
            i++;
        } else if (!strcmp(o, "--action-deadline-ms")) {
            fa->action.deadline_ms = strtoll(v, NULL, 10), i++;
        } else if (!strcmp(o, "--allow") && fa->nallow < FA_MAX_ALLOW && strlen(v) <= 128) {
            snprintf(fa->allow[fa->nallow++], sizeof(fa->allow[0]), "%s", v), i++;
        } else if (!strcmp(o, "--actions-file")) {
            fa->actions_file = v, i++;
        } else if (!strcmp(o, "--dump-signals")) {
            fa->dump_file = v, i++;
        } else {
            return fa_usage();
        }
    }
    if (!fa->listen || !fa->dir) {
        return fa_usage();
    }
    memcpy(fa->action.request_id, fa->action_request_id, sizeof(fa->action.request_id));
    memcpy(fa->action.action_id, fa->action_id, sizeof(fa->action.action_id));
    if (fa->dump_file) {
        fa->dump_fd = open(fa->dump_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fa->dump_fd < 0) {
            fprintf(stderr, "fake_aggregator: cannot open %s: %s\n", fa->dump_file,
                    strerror(errno));
            return 2;
        }
    }
    fa->recv_fd = fa_open(fa->dir, "received.log");
    fa->commit_fd = fa_open(fa->dir, "committed.log");
    fa->events_fd = fa_open(fa->dir, "events.log");
    fa_load(fa);
    for (size_t i = 0; i < npresets; i++) {
        char boot[64];
        uint64_t seq;
        if (sscanf(presets[i], "%63[^:]:%" SCNu64, boot, &seq) != 2) {
            return fa_usage();
        }
        struct fa_boot *b = &fa->boots[fa_boot_index(fa, boot)];
        if (seq > b->committed) {
            b->committed = seq;
        }
    }

    uv_loop_init(&fa->loop);
    if (rsre_grpc_loop_create(&fa->loop, &fa->gl) != 0) {
        return 1;
    }
    struct rsre_grpc_server_config cfg = {
        .addr = fa->listen,
        .tls_ca = fa->tls_ca,
        .tls_cert = fa->tls_cert,
        .tls_key = fa->tls_key,
        .min_client_ping_ms = 1000,
    };
    struct rsre_grpc_server_callbacks cb = {
        .on_call = fa_on_call, .on_message = fa_on_message, .on_done = fa_on_done, .arg = fa};
    int rc = rsre_grpc_server_create(fa->gl, &cfg, &cb, &fa->srv);
    if (rc) {
        fprintf(stderr, "fake_aggregator: cannot serve on %s: %s\n", fa->listen, rsre_strerror(rc));
        rsre_grpc_loop_destroy(fa->gl, NULL, NULL);
        uv_run(&fa->loop, UV_RUN_DEFAULT);
        uv_loop_close(&fa->loop);
        return 1;
    }
    if (fa->port_file) {
        char tmp[1100], text[32];
        snprintf(tmp, sizeof(tmp), "%s.tmp", fa->port_file);
        snprintf(text, sizeof(text), "%d\n", rsre_grpc_server_port(fa->srv));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            return 2;
        }
        fa_write(fd, text);
        close(fd);
        rename(tmp, fa->port_file);
    }
    uv_timer_init(&fa->loop, &fa->commit_timer);
    fa->commit_timer.data = fa;
    if (fa->commit_ms) {
        uv_timer_start(&fa->commit_timer, fa_on_commit_timer, fa->commit_ms, fa->commit_ms);
    }
    uv_signal_init(&fa->loop, &fa->sigterm);
    uv_signal_init(&fa->loop, &fa->sigint);
    fa->sigterm.data = fa->sigint.data = fa;
    uv_signal_start(&fa->sigterm, fa_on_signal, SIGTERM);
    uv_signal_start(&fa->sigint, fa_on_signal, SIGINT);
    uv_signal_init(&fa->loop, &fa->sigusr1);
    fa->sigusr1.data = fa;
    uv_signal_start(&fa->sigusr1, fa_on_usr1, SIGUSR1);
    uv_run(&fa->loop, UV_RUN_DEFAULT);
    uv_loop_close(&fa->loop);
    free(fa->pending);
    close(fa->recv_fd);
    close(fa->commit_fd);
    close(fa->events_fd);
    if (fa->dump_fd >= 0) {
        close(fa->dump_fd);
    }
    return 0;
}

#ifndef RSRE_FAKE_AGGREGATOR_NO_MAIN
int main(int argc, char **argv) {
    return fake_aggregator_main(argc, argv);
}
#endif
