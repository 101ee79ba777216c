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
 *                  "G <boot> <from> <to>" (gap), "A <request_id> <status>" (result committed)
 *
 * Options: --listen ADDR (required), --dir DIR (required), --port-file PATH (the bound port,
 * written atomically once listening), --commit-ms N, --no-commit (never commit or ack batches),
 * --hold-result-acks, --preset BOOT:SEQ (pretend SEQ of BOOT is committed), --action ID:ACTION,
 * --action-before-config, --tls-ca/--tls-cert/--tls-key PEM files, --log-level LEVEL.
 * SIGTERM/SIGINT: graceful shutdown, exit 0.
 *
 * This file has a main() unless RSRE_FAKE_AGGREGATOR_NO_MAIN is defined: tests include it and
 * call fake_aggregator_main() from their own main when started with --serve.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
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
    uv_signal_t sigterm, sigint;
    int stopping;
    /* options */
    const char *listen, *dir, *port_file, *tls_ca, *tls_cert, *tls_key;
    unsigned commit_ms;
    int no_commit, hold_result_acks, action_before_config;
    char action_request_id[129], action_id[129];
    /* files */
    int recv_fd, commit_fd, events_fd;
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
    char *allow[1] = {fc->fa->action_id};
    if (fc->fa->action_id[0]) {
        cu.n_action_allowlist = 1;
        cu.action_allowlist = allow;
    }
    FA_M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = FA_E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE);
    m.config_update = &cu;
    rsre_grpc_server_send_msg(fc->c, &m.base);
}

static void fa_send_action(struct fa_call *fc) {
    struct fa *fa = fc->fa;
    FA_M(ActionRequest) req = ROBOT_SRE__AGENT__V1__ACTION_REQUEST__INIT;
    req.request_id = fa->action_request_id;
    req.action_id = fa->action_id;
    req.dry_run = 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    req.issued_unix_ms = now;
    req.deadline_unix_ms = now + 60000;
    FA_M(AggregatorMessage) m = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    m.body_case = FA_E(AGGREGATOR_MESSAGE__BODY_ACTION_REQUEST);
    m.action_request = &req;
    rsre_grpc_server_send_msg(fc->c, &m.base);
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
    rsre_grpc_server_shutdown(fa->srv, fa_on_server_closed, fa);
}

static void fa_on_signal(uv_signal_t *s, int signum) {
    (void)signum;
    fa_stop(s->data);
}

static int fa_usage(void) {
    fprintf(stderr, "usage: fake_aggregator --listen ADDR --dir DIR [--port-file F] "
                    "[--commit-ms N] [--no-commit] [--hold-result-acks] [--preset BOOT:SEQ] "
                    "[--action ID:ACTION] [--action-before-config] [--tls-ca F --tls-cert F "
                    "--tls-key F] [--log-level L]\n");
    return 64;
}

/* argv[0] is the program name; options follow. Returns the exit status. */
static int fake_aggregator_main(int argc, char **argv) {
    static struct fa fa_storage;
    struct fa *fa = &fa_storage;
    memset(fa, 0, sizeof(*fa));
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
        } else {
            return fa_usage();
        }
    }
    if (!fa->listen || !fa->dir) {
        return fa_usage();
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
    uv_run(&fa->loop, UV_RUN_DEFAULT);
    uv_loop_close(&fa->loop);
    free(fa->pending);
    close(fa->recv_fd);
    close(fa->commit_fd);
    close(fa->events_fd);
    return 0;
}

#ifndef RSRE_FAKE_AGGREGATOR_NO_MAIN
int main(int argc, char **argv) {
    return fake_aggregator_main(argc, argv);
}
#endif
