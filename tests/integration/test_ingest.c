/*
 * Integration tests of the aggregator's agent ingest (aggregator/ingest/ingest.h) over real
 * gRPC, with the real agent binary (RSRE_BINARY_DIR/agent/robot-sre-agent) and with a scripted
 * client written here on gRPC core (for what a well-behaved agent never sends).
 *
 *   real_agent     a real agent streams; every batch is applied once (the consumer's records
 *                  and the agents database agree, seq 1..H without holes); an ActionRequest
 *                  reaches it and its result is committed once and acknowledged.
 *   dedupe         scripted: resends on the same and on a new stream do not reach the
 *                  consumer again; gaps and invalid batches are recorded (audit) and passed; a
 *                  result is deduplicated by request id; a consumer error ends only its own
 *                  stream and the rest of the group commits; a second stream for a node
 *                  replaces the first; a boot id of another node stays that node's.
 *   hostile        scripted: batch before Hello, second Hello, invalid Hello, malformed
 *                  bytes, an oversized message and a decode-budget bomb end the stream with
 *                  the documented status and change nothing in the store; the connection
 *                  limit; the per-node rate limit slows a node down without losing anything.
 *   mtls           openssl-made CA and certificates: a certificate naming node-a with a Hello
 *                  for node-b is refused (PERMISSION_DENIED, audited), by a scripted client and
 *                  by the real agent; node-a with its own name streams.
 *   migration      a schema 1 store is migrated to the current schema (agents, notify databases) on
 * open. durability     the ingest runs in a child process (this binary, --serve-ingest) that is
 *                  SIGKILLed at random moments (RSRE_INGEST_KILLS, default 25) while three real
 *                  agents stream, and restarted on the same store. The child logs every batch
 *                  of a transaction after the commit returned and before the Acks go out; at
 *                  the end every logged batch and every batch the agents cut is applied
 *                  exactly once and the audit chain verifies.
 *
 * RSRE_TEST_SEED=<n> replays the kill schedule (the seed is printed). Figures are printed.
 */
#include "ingest/ingest.h"

#include "agent/config.h"
#include "agent/spool.h"
#include "agent/stream.h"

#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/grpc_server.h"
#include "common/log.h"
#include "common/pbuf.h"
#include "store/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define M(x) RobotSre__Agent__V1__##x
#define E(x) ROBOT_SRE__AGENT__V1__##x
#define CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))
#define AGENT_BIN RSRE_BINARY_DIR "/agent/robot-sre-agent"
#define BOOT_A "0b8f3c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c"
#define BOOT_B "7c2d4e6f-1a3b-4c5d-9e8f-0a1b2c3d4e5f"
#define MAX_PEND 8192

extern char **environ;

static uint64_t rng_state;

static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir) {
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- harness: loop, store, ingest, recording consumer ---------------------------------------- */

struct pend {
    char node[64];
    char boot[37];
    uint64_t seq;
};

struct T {
    uv_loop_t loop;
    struct rsre_grpc_loop *gl;
    rsre_store *store;
    struct rsre_ingest *ing;
    uv_timer_t tick;
    char tmp[128], store_dir[192];
    int ing_closed, gl_closed, have_loop;
    /* consumer */
    uint64_t hellos, batches, results, commits, aborts;
    uint64_t p_hellos, p_batches, p_results;
    uint64_t fail_seq; /* the consumer refuses this seq once (0 = never) */
    char last_hello_node[64];
    struct pend pend[MAX_PEND];
    size_t npend;
    int acks_fd, stats_fd; /* durability child: committed-batch log, stats */
};

static struct T T;

/* Applies one "effect" in the store: an Evidence record counting how often it was applied. */
static int apply_effect(rsre_store_txn *txn, const char *node, const char *id) {
    rsre_store_evidence *old = NULL;
    long count = 0;
    int rc = rsre_store_evidence_get(txn, node, id, &old);
    if (rc == 0) {
        count = strtol(old->summary, NULL, 10);
        rsre_store_evidence_free(old);
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    char summary[32];
    snprintf(summary, sizeof(summary), "%ld", count + 1);
    RobotSre__Store__Evidence ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
    ev.id = (char *)id;
    ev.incident_id = (char *)node;
    ev.source = "test/ingest";
    ev.kind = "applied";
    ev.summary = summary;
    ev.observed_at_ms = wall_ms();
    return rsre_store_evidence_put(txn, &ev, 0);
}

static void batch_id(char *buf, size_t cap, const char *boot, uint64_t seq) {
    snprintf(buf, cap, "b:%.40s:%010" PRIu64, boot, seq);
}

static int c_hello(void *arg, rsre_store_txn *txn, const char *node, const M(Hello) * h,
                   int64_t now) {
    (void)arg;
    (void)txn;
    (void)h;
    (void)now;
    T.p_hellos++;
    snprintf(T.last_hello_node, sizeof(T.last_hello_node), "%s", node);
    return 0;
}

static int c_batch(void *arg, rsre_store_txn *txn, const char *node, const M(SignalBatch) * b,
                   int64_t now) {
    (void)arg;
    (void)now;
    if (T.fail_seq != 0 && b->seq == T.fail_seq) {
        T.fail_seq = 0;
        return RSRE_ESTORE;
    }
    char id[128];
    batch_id(id, sizeof(id), b->boot_id, b->seq);
    int rc = apply_effect(txn, node, id);
    if (rc == 0) {
        T.p_batches++;
        if (T.npend < MAX_PEND) {
            struct pend *p = &T.pend[T.npend++];
            snprintf(p->node, sizeof(p->node), "%s", node);
            snprintf(p->boot, sizeof(p->boot), "%s", b->boot_id);
            p->seq = b->seq;
        }
    }
    return rc;
}

static int c_result(void *arg, rsre_store_txn *txn, const char *node, const M(ActionResult) * r,
                    int64_t now) {
    (void)arg;
    (void)now;
    char id[160];
    snprintf(id, sizeof(id), "r:%s", r->request_id);
    int rc = apply_effect(txn, node, id);
    if (rc == 0) {
        T.p_results++;
    }
    return rc;
}

static void write_all(int fd, const char *buf, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            _exit(3);
        }
        buf += w;
        n -= (size_t)w;
    }
}

static void write_stats(void) {
    if (T.stats_fd < 0 || T.ing == NULL) {
        return;
    }
    struct rsre_ingest_stats s;
    rsre_ingest_stats(T.ing, &s);
    char line[256];
    int n = snprintf(line, sizeof(line),
                     "batches=%" PRIu64 " duplicates=%" PRIu64 " gaps=%" PRIu64 " hellos=%" PRIu64
                     " commits=%" PRIu64 " messages=%" PRIu64 "                    \n",
                     s.batches, s.duplicates, s.gaps, s.hellos, s.commits, s.messages_committed);
    if (pwrite(T.stats_fd, line, (size_t)n, 0) < 0) {
        _exit(3);
    }
}

static void c_committed(void *arg) {
    (void)arg;
    T.commits++;
    T.hellos += T.p_hellos;
    T.batches += T.p_batches;
    T.results += T.p_results;
    T.p_hellos = T.p_batches = T.p_results = 0;
    if (T.acks_fd >= 0 && T.npend > 0) {
        /* Committed (the transaction's commit returned); the Acks have not been sent yet. */
        size_t cap = T.npend * 128 + 1, off = 0;
        char *buf = malloc(cap);
        if (buf == NULL) {
            _exit(5);
        }
        for (size_t i = 0; i < T.npend; i++) {
            off += (size_t)snprintf(buf + off, cap - off, "C %s %s %" PRIu64 "\n", T.pend[i].node,
                                    T.pend[i].boot, T.pend[i].seq);
        }
        write_all(T.acks_fd, buf, off);
        free(buf);
    }
    T.npend = 0;
    write_stats();
}

static void c_aborted(void *arg) {
    (void)arg;
    T.aborts++;
    T.p_hellos = T.p_batches = T.p_results = 0;
    T.npend = 0;
}

static const struct rsre_ingest_consumer consumer = {
    .hello = c_hello,
    .batch = c_batch,
    .result = c_result,
    .committed = c_committed,
    .aborted = c_aborted,
};

static void on_tick(uv_timer_t *t) {
    (void)t;
}

static void t_init(void) {
    memset(&T, 0, sizeof(T));
    T.acks_fd = T.stats_fd = -1;
    snprintf(T.tmp, sizeof(T.tmp), "/tmp/rsre-ingest-XXXXXX");
    assert_non_null(mkdtemp(T.tmp));
    snprintf(T.store_dir, sizeof(T.store_dir), "%s/store", T.tmp);
    assert_int_equal(rsre_store_open(T.store_dir, NULL, &T.store), 0);
    assert_int_equal(uv_loop_init(&T.loop), 0);
    assert_int_equal(rsre_grpc_loop_create(&T.loop, &T.gl), 0);
    uv_timer_init(&T.loop, &T.tick);
    uv_timer_start(&T.tick, on_tick, 5, 5);
    T.have_loop = 1;
}

typedef int (*pred_fn)(void *arg);

/* Runs the loop until pred(arg) holds or timeout_ms passes; returns pred(arg). */
static int run_until(pred_fn pred, void *arg, uint64_t timeout_ms) {
    uint64_t end = mono_ms() + timeout_ms;
    while (!pred(arg) && mono_ms() < end) {
        uv_run(&T.loop, UV_RUN_ONCE);
    }
    return pred(arg);
}

static int never(void *arg) {
    (void)arg;
    return 0;
}

static void run_for(uint64_t ms) {
    run_until(never, NULL, ms);
}

static int flag_set(void *arg) {
    return *(int *)arg;
}

static void srv_start(struct rsre_ingest_config *cfg) {
    cfg->listen_addr = "127.0.0.1:0";
    if (cfg->min_client_ping_ms == 0) {
        cfg->min_client_ping_ms = 1000;
    }
    assert_int_equal(rsre_ingest_create(&T.loop, T.gl, T.store, cfg, &consumer, &T.ing), 0);
    assert_true(rsre_ingest_port(T.ing) > 0);
}

static void on_ing_closed(void *arg) {
    (void)arg;
    T.ing_closed = 1;
}

static void srv_stop(void) {
    T.ing_closed = 0;
    rsre_ingest_destroy(T.ing, on_ing_closed, NULL);
    T.ing = NULL;
    assert_true(run_until(flag_set, &T.ing_closed, 10000));
}

static void on_gl_closed(void *arg) {
    (void)arg;
    T.gl_closed = 1;
}

static void on_tick_closed(uv_handle_t *h) {
    (void)h;
}

static void t_cleanup(void) {
    if (T.ing) {
        srv_stop();
    }
    uv_close((uv_handle_t *)&T.tick, on_tick_closed);
    rsre_grpc_loop_destroy(T.gl, on_gl_closed, NULL);
    while (!T.gl_closed) {
        uv_run(&T.loop, UV_RUN_ONCE);
    }
    uv_run(&T.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&T.loop), 0);
    T.have_loop = 0;
    rsre_store_close(T.store);
    T.store = NULL;
    rm_rf(T.tmp);
}

static struct rsre_ingest_stats stats(void) {
    struct rsre_ingest_stats s;
    rsre_ingest_stats(T.ing, &s);
    return s;
}

/* How often the effect `id` of `node` was applied (0 = never). */
static long effect_count(rsre_store *store, const char *node, const char *id) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(store, 1, &txn), 0);
    rsre_store_evidence *ev = NULL;
    long n = 0;
    int rc = rsre_store_evidence_get(txn, node, id, &ev);
    if (rc == 0) {
        n = strtol(ev->summary, NULL, 10);
        rsre_store_evidence_free(ev);
    } else {
        assert_int_equal(rc, RSRE_ENOTFOUND);
    }
    rsre_store_txn_abort(txn);
    return n;
}

static long batch_count(rsre_store *store, const char *node, const char *boot, uint64_t seq) {
    char id[128];
    batch_id(id, sizeof(id), boot, seq);
    return effect_count(store, node, id);
}

/* The committed seq of (node, boot) in the agents database, or 0. */
static uint64_t committed_seq(rsre_store *store, const char *node, const char *boot,
                              rsre_store_agent_boot *copy) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(store, 1, &txn), 0);
    rsre_store_agent *a = NULL;
    uint64_t h = 0;
    if (rsre_store_agent_get(txn, node, &a) == 0) {
        const rsre_store_agent_boot *b = rsre_store_agent_boot_find(a, boot);
        if (b) {
            h = b->committed_seq;
            if (copy) {
                *copy = *b;
                copy->boot_id = NULL;
            }
        }
        rsre_store_agent_free(a);
    }
    rsre_store_txn_abort(txn);
    return h;
}

struct audit_find {
    const char *verb, *object;
    int n;
    char detail[512];
};

static int audit_cb(const rsre_store_audit *rec, void *ud) {
    struct audit_find *f = ud;
    if (strcmp(rec->verb, f->verb) == 0 &&
        (f->object == NULL || strcmp(rec->object, f->object) == 0)) {
        f->n++;
        snprintf(f->detail, sizeof(f->detail), "%s", rec->detail);
    }
    return 0;
}

static int audit_count(rsre_store *store, const char *verb, const char *object, char *detail,
                       size_t cap) {
    struct audit_find f = {verb, object, 0, ""};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, 1, audit_cb, &f), 0);
    rsre_store_txn_abort(txn);
    if (detail) {
        snprintf(detail, cap, "%s", f.detail);
    }
    return f.n;
}

/* A fingerprint of everything the ingest writes: evidence and audit counts, agent records. */
struct snap {
    size_t evidence, audit, agents;
    uint64_t hash;
};

static int snap_agent(const rsre_store_agent *a, void *ud) {
    struct snap *s = ud;
    size_t n = protobuf_c_message_get_packed_size(&a->base);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(&a->base, buf);
    for (size_t i = 0; i < n; i++) {
        s->hash = (s->hash ^ buf[i]) * 1099511628211ull;
    }
    free(buf);
    s->agents++;
    return 0;
}

static struct snap snapshot(void) {
    struct snap s = {0, 0, 0, 1469598103934665603ull};
    struct rsre_store_info info;
    assert_int_equal(rsre_store_info(T.store, &info), 0);
    s.evidence = info.evidence;
    s.audit = info.audit;
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(T.store, 1, &txn), 0);
    assert_int_equal(rsre_store_agent_foreach(txn, snap_agent, &s), 0);
    rsre_store_txn_abort(txn);
    return s;
}

static void assert_snap_equal(struct snap a, struct snap b) {
    assert_int_equal(a.evidence, b.evidence);
    assert_int_equal(a.audit, b.audit);
    assert_int_equal(a.agents, b.agents);
    assert_true(a.hash == b.hash);
}

/* ---- scripted client on gRPC core (same loop, same completion queue) ------------------------ */

#define CLI_MAX_MSGS 1024

struct cli {
    grpc_channel *ch;
    grpc_call *call;
    struct rsre_grpc_op op_init, op_send, op_recv, op_status;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *send_bb, *recv_bb;
    int sending, done, recv_end, pending, first_recv;
    char details_str[256];
    M(AggregatorMessage) * msgs[CLI_MAX_MSGS];
    size_t nmsgs;
};

static void cli_start(struct cli *cl, const grpc_op *ops, size_t n, struct rsre_grpc_op *tag) {
    assert_int_equal(grpc_call_start_batch(cl->call, ops, n, tag, NULL), GRPC_CALL_OK);
    cl->pending++;
    rsre_grpc_loop_started(T.gl);
}

static void cli_on_init(struct rsre_grpc_op *op, int ok) {
    struct cli *cl = CONTAINER_OF(op, struct cli, op_init);
    (void)ok;
    cl->pending--;
}

static void cli_on_send(struct rsre_grpc_op *op, int ok) {
    struct cli *cl = CONTAINER_OF(op, struct cli, op_send);
    (void)ok;
    cl->pending--;
    cl->sending = 0;
    grpc_byte_buffer_destroy(cl->send_bb);
    cl->send_bb = NULL;
}

static void cli_recv(struct cli *cl);

static void cli_on_recv(struct rsre_grpc_op *op, int ok) {
    struct cli *cl = CONTAINER_OF(op, struct cli, op_recv);
    cl->pending--;
    if (ok && cl->recv_bb) {
        uint8_t *buf;
        size_t len;
        assert_int_equal(rsre_grpc_flatten(cl->recv_bb, 4u << 20, &buf, &len), 0);
        grpc_byte_buffer_destroy(cl->recv_bb);
        cl->recv_bb = NULL;
        M(AggregatorMessage) *m = NULL;
        char err[RSRE_PBUF_ERR_LEN];
        assert_int_equal(rsre_pbuf_decode_aggregator_message(buf, len, 0, &m, err, sizeof(err)), 0);
        free(buf);
        assert_true(cl->nmsgs < CLI_MAX_MSGS);
        cl->msgs[cl->nmsgs++] = m;
        cli_recv(cl);
    } else {
        if (cl->recv_bb) {
            grpc_byte_buffer_destroy(cl->recv_bb);
            cl->recv_bb = NULL;
        }
        cl->recv_end = 1;
    }
}

static void cli_on_status(struct rsre_grpc_op *op, int ok) {
    struct cli *cl = CONTAINER_OF(op, struct cli, op_status);
    (void)ok;
    cl->pending--;
    cl->done = 1;
    char *d = grpc_slice_to_c_string(cl->details);
    snprintf(cl->details_str, sizeof(cl->details_str), "%s", d ? d : "");
    gpr_free(d);
}

static void cli_recv(struct cli *cl) {
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (cl->first_recv) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &cl->md_init;
        n++;
        cl->first_recv = 0;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &cl->recv_bb;
    n++;
    cl->op_recv.cb = cli_on_recv;
    cli_start(cl, ops, n, &cl->op_recv);
}

/* Opens a stream to the test server; `creds` NULL = insecure (consumed). */
static void cli_open(struct cli *cl, grpc_channel_credentials *creds) {
    memset(cl, 0, sizeof(*cl));
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", rsre_ingest_port(T.ing));
    if (creds == NULL) {
        creds = grpc_insecure_credentials_create();
    }
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_RETRIES, {.integer = 0}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = -1}},
    };
    grpc_channel_args cargs = {sizeof(args) / sizeof(args[0]), args};
    cl->ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    grpc_metadata_array_init(&cl->md_init);
    grpc_metadata_array_init(&cl->md_trail);
    cl->details = grpc_empty_slice();
    cl->call =
        grpc_channel_create_call(cl->ch, NULL, GRPC_PROPAGATE_DEFAULTS, rsre_grpc_loop_cq(T.gl),
                                 grpc_slice_from_static_string(RSRE_GRPC_AGENT_CONNECT_METHOD),
                                 NULL, rsre_grpc_deadline_ms(60000), NULL);
    assert_non_null(cl->call);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    cl->op_init.cb = cli_on_init;
    cli_start(cl, &op, 1, &cl->op_init);
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &cl->md_trail;
    op.data.recv_status_on_client.status = &cl->status;
    op.data.recv_status_on_client.status_details = &cl->details;
    cl->op_status.cb = cli_on_status;
    cli_start(cl, &op, 1, &cl->op_status);
    cl->first_recv = 1;
    cli_recv(cl);
}

static int cli_can_send(void *arg) {
    struct cli *cl = arg;
    return !cl->sending || cl->done;
}

static void cli_send_raw(struct cli *cl, const uint8_t *buf, size_t len) {
    assert_true(run_until(cli_can_send, cl, 10000));
    if (cl->done) {
        return;
    }
    cl->send_bb = rsre_grpc_bytes(buf, len);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = cl->send_bb;
    cl->op_send.cb = cli_on_send;
    cl->sending = 1;
    cli_start(cl, &op, 1, &cl->op_send);
}

static void cli_send(struct cli *cl, const M(AgentMessage) * m) {
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(&m->base, buf);
    cli_send_raw(cl, buf, n);
    free(buf);
}

static int cli_done(void *arg) {
    return ((struct cli *)arg)->done;
}

struct cli_wait {
    struct cli *cl;
    size_t n;
};

static int cli_has(void *arg) {
    struct cli_wait *w = arg;
    return w->cl->nmsgs >= w->n || w->cl->done;
}

/* Waits until the client has `n` messages (or the stream ended). */
static int cli_wait_msgs(struct cli *cl, size_t n, uint64_t timeout_ms) {
    struct cli_wait w = {cl, n};
    run_until(cli_has, &w, timeout_ms);
    return cl->nmsgs >= n;
}

static int cli_pending_zero(void *arg) {
    return ((struct cli *)arg)->pending == 0;
}

static void cli_close(struct cli *cl) {
    if (!cl->done) {
        grpc_call_cancel(cl->call, NULL);
    }
    assert_true(run_until(cli_pending_zero, cl, 10000));
    for (size_t i = 0; i < cl->nmsgs; i++) {
        rsre_pbuf_free_aggregator_message(cl->msgs[i]);
    }
    grpc_call_unref(cl->call);
    grpc_channel_destroy(cl->ch);
    grpc_slice_unref(cl->details);
    grpc_metadata_array_destroy(&cl->md_init);
    grpc_metadata_array_destroy(&cl->md_trail);
    memset(cl, 0, sizeof(*cl));
}

/* Waits for the end of the stream and returns its status. */
static grpc_status_code cli_status(struct cli *cl) {
    assert_true(run_until(cli_done, cl, 10000));
    return cl->status;
}

/* Index of the i-th message of `kind` (body case), or -1. */
static int cli_find(const struct cli *cl, int kind, int nth) {
    for (size_t i = 0; i < cl->nmsgs; i++) {
        if ((int)cl->msgs[i]->body_case == kind && nth-- == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The highest committed_seq acknowledged for `boot` so far (0 if none). */
static uint64_t cli_acked(const struct cli *cl, const char *boot) {
    uint64_t h = 0;
    for (size_t i = 0; i < cl->nmsgs; i++) {
        const M(AggregatorMessage) *m = cl->msgs[i];
        if (m->body_case == E(AGGREGATOR_MESSAGE__BODY_ACK) && strcmp(m->ack->boot_id, boot) == 0 &&
            m->ack->committed_seq > h) {
            h = m->ack->committed_seq;
        }
    }
    return h;
}

struct ack_wait {
    struct cli *cl;
    const char *boot;
    uint64_t seq;
};

static int cli_acked_pred(void *arg) {
    struct ack_wait *w = arg;
    return cli_acked(w->cl, w->boot) >= w->seq || w->cl->done;
}

static int cli_wait_ack(struct cli *cl, const char *boot, uint64_t seq) {
    struct ack_wait w = {cl, boot, seq};
    run_until(cli_acked_pred, &w, 10000);
    return cli_acked(cl, boot) >= seq;
}

/* Counts Acks listing `request_id`. */
static int cli_result_acks(const struct cli *cl, const char *request_id) {
    int n = 0;
    for (size_t i = 0; i < cl->nmsgs; i++) {
        const M(AggregatorMessage) *m = cl->msgs[i];
        if (m->body_case != E(AGGREGATOR_MESSAGE__BODY_ACK)) {
            continue;
        }
        for (size_t k = 0; k < m->ack->n_result_request_ids; k++) {
            n += strcmp(m->ack->result_request_ids[k], request_id) == 0;
        }
    }
    return n;
}

struct res_wait {
    struct cli *cl;
    const char *id;
    int n;
};

static int cli_res_pred(void *arg) {
    struct res_wait *w = arg;
    return cli_result_acks(w->cl, w->id) >= w->n || w->cl->done;
}

static void send_hello(struct cli *cl, const char *node, const char *boot) {
    M(Hello) h = ROBOT_SRE__AGENT__V1__HELLO__INIT;
    h.protocol_revision = 1;
    h.node_name = (char *)node;
    h.boot_id = (char *)boot;
    h.agent_version = "scripted-0.1";
    h.started_unix_ms = wall_ms();
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_HELLO);
    m.hello = &h;
    cli_send(cl, &m);
}

/* A batch of `n` PSI signals; `invalid` makes its one filesystem signal break a rule. */
static void send_batch(struct cli *cl, const char *boot, uint64_t seq, size_t n, int invalid) {
    M(PsiLine) line = ROBOT_SRE__AGENT__V1__PSI_LINE__INIT;
    line.avg10 = 1.5;
    M(PressureStall) ps = ROBOT_SRE__AGENT__V1__PRESSURE_STALL__INIT;
    ps.resource = E(PSI_RESOURCE__PSI_RESOURCE_CPU);
    ps.some = &line;
    M(FilesystemUsage) fs = ROBOT_SRE__AGENT__V1__FILESYSTEM_USAGE__INIT;
    fs.which = E(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS);
    fs.path = "/";
    fs.bytes_total = 10;
    fs.bytes_free = 20; /* > bytes_total */
    M(Signal) sig[16];
    M(Signal) * sp[16];
    assert_true(n >= 1 && n <= 16);
    for (size_t i = 0; i < n; i++) {
        M(Signal) init = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        sig[i] = init;
        sig[i].observed_unix_ms = wall_ms();
        if (invalid && i == 0) {
            sig[i].kind_case = E(SIGNAL__KIND_FILESYSTEM);
            sig[i].filesystem = &fs;
        } else {
            sig[i].kind_case = E(SIGNAL__KIND_PRESSURE_STALL);
            sig[i].pressure_stall = &ps;
        }
        sp[i] = &sig[i];
    }
    M(SignalBatch) b = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    b.boot_id = (char *)boot;
    b.seq = seq;
    b.created_unix_ms = wall_ms();
    b.n_signals = n;
    b.signals = sp;
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_SIGNAL_BATCH);
    m.signal_batch = &b;
    cli_send(cl, &m);
}

static void send_result(struct cli *cl, const char *request_id) {
    M(ActionResult) r = ROBOT_SRE__AGENT__V1__ACTION_RESULT__INIT;
    r.request_id = (char *)request_id;
    r.status = E(ACTION_STATUS__ACTION_STATUS_OK);
    r.finished_unix_ms = wall_ms();
    r.action_id = "delete_finished_pods";
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_ACTION_RESULT);
    m.action_result = &r;
    cli_send(cl, &m);
}

/* Opens a stream, says Hello and waits for the Ack and the ConfigUpdate. */
static void cli_hello(struct cli *cl, const char *node, const char *boot, uint64_t expect_acked) {
    cli_open(cl, NULL);
    send_hello(cl, node, boot);
    assert_true(cli_wait_msgs(cl, 2, 10000));
    int a = cli_find(cl, E(AGGREGATOR_MESSAGE__BODY_ACK), 0);
    int c = cli_find(cl, E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE), 0);
    assert_int_equal(a, 0); /* the Ack comes first, then the ConfigUpdate */
    assert_int_equal(c, 1);
    assert_string_equal(cl->msgs[a]->ack->boot_id, boot);
    assert_int_equal(cl->msgs[a]->ack->committed_seq, expect_acked);
}

/* ---- real agent ------------------------------------------------------------------------------ */

struct agent_opts {
    const char *node;
    int port;
    const char *dir; /* its private directory (created) */
    int health_port; /* 0 = no health endpoint */
    const char *tls_ca, *tls_cert, *tls_key;
};

static pid_t agent_spawn(const struct agent_opts *o) {
    char sub[6][300];
    const char *names[6] = {"kubelet", "runtime", "pods", "spool", "agent.log", "none.sock"};
    for (int i = 0; i < 6; i++) {
        snprintf(sub[i], sizeof(sub[i]), "%s/%s", o->dir, names[i]);
    }
    mkdir(o->dir, 0700);
    for (int i = 0; i < 4; i++) {
        mkdir(sub[i], 0700);
    }
    char a[24][400];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--node_name=%s", o->node);
    ARG("--aggregator=127.0.0.1:%d", o->port);
    ARG("--kube_api=http://127.0.0.1:1");
    ARG("--cri_socket=unix://%s", sub[5]);
    ARG("--kubelet_root=%s", sub[0]);
    ARG("--runtime_root=%s", sub[1]);
    ARG("--kubelet_config=%s/config.yaml", sub[0]);
    ARG("--pod_log_dir=%s", sub[2]);
    ARG("--spool_dir=%s", sub[3]);
    ARG("--kmsg_path=");
    ARG("--proc_root=/proc");
    ARG("--log_level=warn");
    ARG("--filesystem_ms=1000");
    ARG("--psi_ms=1000");
    ARG("--batch_flush_ms=1000");
    ARG("--image_gc_ms=5000");
    ARG("--reconnect_min_ms=20");
    ARG("--reconnect_max_ms=200");
    ARG("--keepalive_ms=5000");
    if (o->health_port) {
        ARG("--health_addr=127.0.0.1:%d", o->health_port);
    } else {
        ARG("--health_addr=");
    }
    if (o->tls_ca) {
        ARG("--tls_ca=%s", o->tls_ca);
        ARG("--tls_cert=%s", o->tls_cert);
        ARG("--tls_key=%s", o->tls_key);
    }
#undef ARG
    char *argv[32];
    argv[0] = (char *)AGENT_BIN;
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, sub[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, AGENT_BIN, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    return pid;
}

/* Stops a child with `sig` and reaps it (SIGKILL after 10 s). Returns its wait status. */
static int child_stop(pid_t pid, int sig) {
    kill(pid, sig);
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            return st;
        }
        if (T.have_loop) {
            run_for(10);
        } else {
            sleep_ms(10);
        }
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

struct node_wait {
    const char *node;
    uint64_t batches;
};

static int node_batches(void *arg) {
    struct node_wait *w = arg;
    return T.batches >= w->batches;
}

static int node_connected(void *arg) {
    return rsre_ingest_connected(T.ing, (const char *)arg);
}

/* Every seq 1..H of every boot of `node` applied at most once, exactly `batches` of them (all
 * of them when nothing was lost or rejected), nothing beyond H. Returns the applied count. */
static uint64_t check_node(rsre_store *store, const char *node, uint64_t *lost) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(store, 1, &txn), 0);
    rsre_store_agent *a = NULL;
    assert_int_equal(rsre_store_agent_get(txn, node, &a), 0);
    rsre_store_txn_abort(txn);
    uint64_t total = 0;
    *lost = 0;
    for (size_t i = 0; i < a->n_boots; i++) {
        const rsre_store_agent_boot *b = a->boots[i];
        *lost += b->lost_batches;
        int holes = b->lost_batches != 0 || b->rejected_batches != 0;
        uint64_t applied = 0;
        for (uint64_t s = 1; s <= b->committed_seq; s++) {
            long c = batch_count(store, node, b->boot_id, s);
            if (c != 1 && !(holes && c == 0)) {
                fprintf(stderr, "node=%s boot=%s seq=%" PRIu64 " applied %ld times\n", node,
                        b->boot_id, s, c);
                fail();
            }
            applied += (uint64_t)c;
        }
        assert_int_equal(batch_count(store, node, b->boot_id, b->committed_seq + 1), 0);
        assert_int_equal(applied, b->batches);
        assert_int_equal(b->batches, b->committed_seq - b->lost_batches - b->rejected_batches);
        total += applied;
    }
    rsre_store_agent_free(a);
    return total;
}

static void test_real_agent(void **state) {
    (void)state;
    t_init();
    const char *allow[] = {"delete_finished_pods"};
    struct rsre_ingest_config cfg = {.action_allowlist = allow, .n_action_allowlist = 1};
    srv_start(&cfg);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/agent-a", T.tmp);
    struct agent_opts o = {.node = "node-a", .port = rsre_ingest_port(T.ing), .dir = dir};
    pid_t pid = agent_spawn(&o);
    assert_true(run_until(node_connected, (void *)"node-a", 20000));
    struct node_wait w = {"node-a", 6};
    assert_true(run_until(node_batches, &w, 30000));
    assert_true(T.hellos >= 1);
    assert_string_equal(T.last_hello_node, "node-a");

    /* An ActionRequest goes to the agent on its stream; its result is committed once. */
    M(ActionRequest) req = ROBOT_SRE__AGENT__V1__ACTION_REQUEST__INIT;
    req.request_id = "req-real-1";
    req.action_id = "delete_finished_pods";
    req.dry_run = 1;
    req.issued_unix_ms = wall_ms();
    req.deadline_unix_ms = wall_ms() + 20000;
    assert_int_equal(rsre_ingest_send_action(T.ing, "node-b", &req), RSRE_ENOTFOUND);
    M(ActionRequest) bad = req;
    bad.request_id = "bad id with spaces";
    assert_int_equal(rsre_ingest_send_action(T.ing, "node-a", &bad), RSRE_EINVALID);
    assert_int_equal(rsre_ingest_send_action(T.ing, "node-a", &req), 0);
    uint64_t results_before = T.results;
    struct node_wait rw = {"node-a", 0};
    (void)rw;
    uint64_t end = mono_ms() + 30000;
    while (T.results == results_before && mono_ms() < end) {
        run_for(20);
    }
    assert_int_equal(T.results, results_before + 1);
    assert_int_equal(effect_count(T.store, "node-a", "r:req-real-1"), 1);
    run_for(300);
    int st = child_stop(pid, SIGTERM);
    (void)st;
    run_for(200);
    rsre_ingest_flush(T.ing);
    struct rsre_ingest_stats s = stats();
    uint64_t lost = 0;
    uint64_t total = check_node(T.store, "node-a", &lost);
    assert_int_equal(lost, 0);
    assert_true(total >= 6);
    assert_int_equal(total, s.batches);
    assert_int_equal(T.batches, s.batches);
    assert_int_equal(s.gaps, 0);
    assert_int_equal(s.results, 1);
    /* the agents record carries the Hello summary */
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(T.store, 1, &txn), 0);
    rsre_store_agent *a = NULL;
    assert_int_equal(rsre_store_agent_get(txn, "node-a", &a), 0);
    rsre_store_txn_abort(txn);
    assert_true(a->hellos >= 1);
    assert_true(a->agent_version[0] != '\0');
    assert_int_equal(a->n_results, 1);
    assert_string_equal(a->results[0]->request_id, "req-real-1");
    assert_int_equal(a->identity[0], '\0');
    rsre_store_agent_free(a);
    char metrics[8192];
    size_t mlen = rsre_ingest_metrics(T.ing, metrics, sizeof(metrics));
    assert_true(mlen > 0 && mlen < sizeof(metrics));
    assert_non_null(strstr(metrics, "rsre_ingest_batches_total "));
    assert_non_null(strstr(metrics, "rsre_ingest_commit_seconds_bucket{le=\"+Inf\"}"));
    srv_stop();
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(T.store, &rep), 0);
    fprintf(stderr,
            "[ figures ] real_agent: batches=%" PRIu64 " signals=%" PRIu64 " duplicates=%" PRIu64
            " commits=%" PRIu64 " commit_us_avg=%" PRIu64 " action result committed once\n",
            s.batches, s.signals, s.duplicates, s.commits,
            s.commits ? s.commit_us_sum / s.commits : 0);
    t_cleanup();
}

/* ---- dedupe -----------------------------------------------------------------------------------
 */

static void test_dedupe(void **state) {
    (void)state;
    t_init();
    struct rsre_ingest_config cfg = {0};
    srv_start(&cfg);
    struct cli c1, c2;
    cli_hello(&c1, "node-s", BOOT_A, 0);
    send_batch(&c1, BOOT_A, 1, 3, 0);
    send_batch(&c1, BOOT_A, 2, 1, 0);
    assert_true(cli_wait_ack(&c1, BOOT_A, 2));
    assert_int_equal(T.batches, 2);
    /* The same seq again on the same stream: acknowledged, not applied. */
    size_t before = c1.nmsgs;
    send_batch(&c1, BOOT_A, 1, 3, 0);
    assert_true(cli_wait_msgs(&c1, before + 1, 10000));
    assert_int_equal(c1.msgs[before]->ack->committed_seq, 2);
    assert_int_equal(T.batches, 2);
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 1), 1);

    /* A second stream for the node replaces the first (ABORTED); the Hello Ack says 2. */
    cli_hello(&c2, "node-s", BOOT_A, 2);
    assert_int_equal(cli_status(&c1), GRPC_STATUS_ABORTED);
    cli_close(&c1);
    send_batch(&c2, BOOT_A, 2, 1, 0); /* resend after reconnect */
    send_batch(&c2, BOOT_A, 3, 1, 0);
    assert_true(cli_wait_ack(&c2, BOOT_A, 3));
    assert_int_equal(T.batches, 3);
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 2), 1);

    /* A gap: 4 and 5 never come. */
    send_batch(&c2, BOOT_A, 6, 1, 0);
    assert_true(cli_wait_ack(&c2, BOOT_A, 6));
    rsre_store_agent_boot b;
    assert_int_equal(committed_seq(T.store, "node-s", BOOT_A, &b), 6);
    assert_int_equal(b.lost_batches, 2);
    assert_int_equal(b.gaps, 1);
    char detail[512];
    assert_int_equal(audit_count(T.store, "agent.gap", "node/node-s", detail, sizeof(detail)), 1);
    assert_non_null(strstr(detail, "from_seq=4 to_seq=5"));

    /* A batch that fails validation is recorded and passed, not applied. */
    send_batch(&c2, BOOT_A, 7, 2, 1);
    assert_true(cli_wait_ack(&c2, BOOT_A, 7));
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 7), 0);
    assert_int_equal(
        audit_count(T.store, "agent.batch_rejected", "node/node-s", detail, sizeof(detail)), 1);
    assert_non_null(strstr(detail, "bytes_free"));
    assert_false(c2.done); /* the stream goes on */

    /* Results: deduplicated by request id, acknowledged each time. */
    send_result(&c2, "req-1");
    struct res_wait rw = {&c2, "req-1", 1};
    assert_true(run_until(cli_res_pred, &rw, 10000));
    send_result(&c2, "req-1");
    rw.n = 2;
    assert_true(run_until(cli_res_pred, &rw, 10000));
    assert_int_equal(T.results, 1);
    assert_int_equal(effect_count(T.store, "node-s", "r:req-1"), 1);

    /* A new configuration reaches the live stream. */
    const char *allow[] = {"prune_unused_images", "delete_finished_pods"};
    assert_int_equal(rsre_ingest_set_config(T.ing, 1, allow, 2), -EINVAL); /* not newer */
    const char *bad_allow[] = {"Not An Action"};
    assert_int_equal(rsre_ingest_set_config(T.ing, 2, bad_allow, 1), RSRE_EINVALID);
    before = c2.nmsgs;
    assert_int_equal(rsre_ingest_set_config(T.ing, 2, allow, 2), 0);
    assert_true(cli_wait_msgs(&c2, before + 1, 10000));
    assert_int_equal(c2.msgs[before]->body_case, E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE));
    assert_int_equal(c2.msgs[before]->config_update->generation, 2);
    assert_int_equal(c2.msgs[before]->config_update->n_action_allowlist, 2);

    /* A consumer error: the failing message's stream ends with UNAVAILABLE, nothing of it is
     * kept; a message of another stream in the same group still commits. */
    struct cli c3;
    cli_hello(&c3, "node-t", BOOT_B, 0);
    T.fail_seq = 8;
    send_batch(&c3, BOOT_B, 1, 1, 0);
    send_batch(&c2, BOOT_A, 8, 1, 0);
    assert_int_equal(cli_status(&c2), GRPC_STATUS_UNAVAILABLE);
    assert_true(cli_wait_ack(&c3, BOOT_B, 1));
    assert_int_equal(committed_seq(T.store, "node-s", BOOT_A, NULL), 7);
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 8), 0);
    assert_true(T.aborts >= 1);
    cli_close(&c2);
    /* After a reconnect the resend applies. */
    cli_hello(&c2, "node-s", BOOT_A, 7);
    send_batch(&c2, BOOT_A, 8, 1, 0);
    assert_true(cli_wait_ack(&c2, BOOT_A, 8));
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 8), 1);

    /* node-t reuses node-s's boot id: it stays node-t's, node-s's state does not move. */
    send_batch(&c3, BOOT_A, 1, 1, 0);
    assert_true(cli_wait_ack(&c3, BOOT_A, 1));
    assert_int_equal(committed_seq(T.store, "node-t", BOOT_A, NULL), 1);
    assert_int_equal(committed_seq(T.store, "node-s", BOOT_A, NULL), 8);
    assert_int_equal(batch_count(T.store, "node-t", BOOT_A, 1), 1);
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 1), 1);

    /* A fresh ingest on the same store (restart) knows what was committed. */
    cli_close(&c2);
    cli_close(&c3);
    struct rsre_ingest_stats s = stats();
    srv_stop();
    srv_start(&cfg);
    cli_hello(&c1, "node-s", BOOT_A, 8);
    send_batch(&c1, BOOT_A, 8, 1, 0);
    send_batch(&c1, BOOT_A, 9, 1, 0);
    assert_true(cli_wait_ack(&c1, BOOT_A, 9));
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 8), 1);
    assert_int_equal(batch_count(T.store, "node-s", BOOT_A, 9), 1);
    /* Half-close: the stream finishes with OK after its Acks. */
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    c1.op_send.cb = cli_on_send;
    c1.sending = 1;
    cli_start(&c1, &op, 1, &c1.op_send);
    assert_int_equal(cli_status(&c1), GRPC_STATUS_OK);
    cli_close(&c1);
    uint64_t lost;
    check_node(T.store, "node-s", &lost);
    assert_int_equal(lost, 2);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(T.store, &rep), 0);
    fprintf(stderr,
            "[ figures ] dedupe: applied=%" PRIu64 " duplicates=%" PRIu64 " gaps=%" PRIu64
            " lost=%" PRIu64 " rejected=%" PRIu64 " result_duplicates=%" PRIu64
            " consumer_errors=%" PRIu64 " replaced=%" PRIu64 " audit_records=%" PRIu64 "\n",
            T.batches, s.duplicates, s.gaps, s.lost_batches, s.rejected_batches,
            s.result_duplicates, s.consumer_errors, s.replaced, rep.count);
    t_cleanup();
}

/* ---- hostile input ----------------------------------------------------------------------------
 */

static void expect_refused(const uint8_t *first, size_t flen, int hello_first,
                           grpc_status_code want, const char *what) {
    struct cli c;
    if (hello_first) {
        cli_hello(&c, "node-h", BOOT_A, committed_seq(T.store, "node-h", BOOT_A, NULL));
    } else {
        cli_open(&c, NULL);
    }
    struct snap before = snapshot();
    cli_send_raw(&c, first, flen);
    grpc_status_code got = cli_status(&c);
    if (got != want) {
        fprintf(stderr, "%s: status %s (%s), expected %s\n", what, rsre_grpc_status_name(got),
                c.details_str, rsre_grpc_status_name(want));
    }
    assert_int_equal(got, want);
    rsre_ingest_flush(T.ing);
    assert_snap_equal(before, snapshot());
    cli_close(&c);
}

static uint8_t *pack(const M(AgentMessage) * m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(&m->base);
    uint8_t *buf = malloc(*len + 1);
    protobuf_c_message_pack(&m->base, buf);
    return buf;
}

static int streams_at(void *arg) {
    return stats().streams == (uint64_t)(uintptr_t)arg;
}

static void test_hostile(void **state) {
    (void)state;
    t_init();
    struct rsre_ingest_config cfg = {.max_message_bytes = 64 * 1024, .max_connections = 3};
    srv_start(&cfg);
    /* a first Hello so the node exists (its record must not change below) */
    struct cli c;
    cli_hello(&c, "node-h", BOOT_A, 0);
    send_batch(&c, BOOT_A, 1, 1, 0);
    assert_true(cli_wait_ack(&c, BOOT_A, 1));
    cli_close(&c);
    rsre_ingest_flush(T.ing);

    /* A batch before Hello. */
    M(PsiLine) line = ROBOT_SRE__AGENT__V1__PSI_LINE__INIT;
    M(PressureStall) ps = ROBOT_SRE__AGENT__V1__PRESSURE_STALL__INIT;
    ps.resource = E(PSI_RESOURCE__PSI_RESOURCE_IO);
    ps.some = &line;
    M(Signal) sig = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
    sig.observed_unix_ms = wall_ms();
    sig.kind_case = E(SIGNAL__KIND_PRESSURE_STALL);
    sig.pressure_stall = &ps;
    M(Signal) *sigp = &sig;
    M(SignalBatch) b = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    b.boot_id = BOOT_A;
    b.seq = 2;
    b.created_unix_ms = wall_ms();
    b.n_signals = 1;
    b.signals = &sigp;
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_SIGNAL_BATCH);
    m.signal_batch = &b;
    size_t len;
    uint8_t *buf = pack(&m, &len);
    expect_refused(buf, len, 0, GRPC_STATUS_FAILED_PRECONDITION, "batch before Hello");
    free(buf);

    /* A second Hello. */
    M(Hello) h = ROBOT_SRE__AGENT__V1__HELLO__INIT;
    h.protocol_revision = 1;
    h.node_name = "node-h";
    h.boot_id = BOOT_A;
    h.agent_version = "x";
    h.started_unix_ms = wall_ms();
    M(AgentMessage) hm = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    hm.body_case = E(AGENT_MESSAGE__BODY_HELLO);
    hm.hello = &h;
    buf = pack(&hm, &len);
    expect_refused(buf, len, 1, GRPC_STATUS_FAILED_PRECONDITION, "second Hello");
    free(buf);

    /* Invalid Hellos: a node name that is not a DNS-1123 subdomain, a boot id that is not a
     * UUID. */
    h.node_name = "Node_H!";
    buf = pack(&hm, &len);
    expect_refused(buf, len, 0, GRPC_STATUS_INVALID_ARGUMENT, "bad node name");
    free(buf);
    h.node_name = "node-h";
    h.boot_id = "not-a-uuid";
    buf = pack(&hm, &len);
    expect_refused(buf, len, 0, GRPC_STATUS_INVALID_ARGUMENT, "bad boot id");
    free(buf);

    /* Malformed protobuf, first and after Hello. */
    static const uint8_t junk[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    expect_refused(junk, sizeof(junk), 0, GRPC_STATUS_INVALID_ARGUMENT, "malformed first");
    expect_refused(junk, sizeof(junk), 1, GRPC_STATUS_INVALID_ARGUMENT, "malformed");
    /* A batch with an invalid boot id cannot even be recorded: the stream ends. */
    b.boot_id = "NOT-A-UUID";
    buf = pack(&m, &len);
    expect_refused(buf, len, 1, GRPC_STATUS_INVALID_ARGUMENT, "batch with a bad boot id");
    free(buf);
    b.boot_id = BOOT_A;

    /* Over the size limit (gRPC refuses it before the ingest sees it). */
    size_t big = 80 * 1024;
    uint8_t *huge = calloc(1, big);
    huge[0] = 0x12; /* field 2, length-delimited */
    huge[1] = 0xfa;
    huge[2] = 0xff;
    huge[3] = 0x04; /* 81914 */
    expect_refused(huge, big, 1, GRPC_STATUS_RESOURCE_EXHAUSTED, "oversized");
    free(huge);

    /* A decode-budget bomb below the size limit: tens of thousands of empty signals. */
    size_t nsig = 30000, blen = nsig * 2;
    uint8_t *bomb = malloc(blen + 16);
    size_t o = 0;
    bomb[o++] = 0x12; /* AgentMessage.signal_batch */
    size_t v = blen;
    while (v >= 0x80) {
        bomb[o++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    bomb[o++] = (uint8_t)v;
    for (size_t i = 0; i < nsig; i++) {
        bomb[o++] = 0x22; /* SignalBatch.signals, empty */
        bomb[o++] = 0x00;
    }
    expect_refused(bomb, o, 1, GRPC_STATUS_RESOURCE_EXHAUSTED, "decode bomb");
    free(bomb);

    struct rsre_ingest_stats s = stats();
    assert_true(s.refused_protocol >= 2);
    assert_true(s.malformed >= 4);
    assert_true(s.oversized >= 1);

    /* The connection limit: a fourth concurrent stream is refused. */
    struct cli cs[4];
    for (int i = 0; i < 3; i++) {
        char node[16];
        snprintf(node, sizeof(node), "node-l%d", i);
        cli_hello(&cs[i], node, BOOT_B, 0);
    }
    assert_true(run_until(streams_at, (void *)(uintptr_t)3, 5000));
    cli_open(&cs[3], NULL);
    send_hello(&cs[3], "node-l3", BOOT_B);
    assert_int_equal(cli_status(&cs[3]), GRPC_STATUS_RESOURCE_EXHAUSTED);
    for (int i = 0; i < 4; i++) {
        cli_close(&cs[i]);
    }
    assert_true(run_until(streams_at, (void *)(uintptr_t)0, 5000));
    srv_stop();

    /* The rate limit slows a node down and loses nothing. */
    struct rsre_ingest_config rcfg = {.rate_per_sec = 40, .rate_burst = 5};
    srv_start(&rcfg);
    cli_hello(&c, "node-r", BOOT_B, 0);
    uint64_t t0 = mono_ms();
    const uint64_t nb = 45;
    for (uint64_t seq = 1; seq <= nb; seq++) {
        send_batch(&c, BOOT_B, seq, 1, 0);
    }
    assert_true(cli_wait_ack(&c, BOOT_B, nb));
    uint64_t took = mono_ms() - t0;
    s = stats();
    assert_true(s.throttled >= 1);
    assert_true(took >= 800); /* (45 + 1 - 5 tokens) / 40 per second ~= 1 s */
    for (uint64_t seq = 1; seq <= nb; seq++) {
        assert_int_equal(batch_count(T.store, "node-r", BOOT_B, seq), 1);
    }
    cli_close(&c);
    srv_stop();
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(T.store, &rep), 0);
    fprintf(stderr,
            "[ figures ] hostile: every refusal with its status and the store unchanged; rate "
            "40/s burst 5: %" PRIu64 " batches took %" PRIu64 " ms, throttled %" PRIu64 " times\n",
            nb, took, s.throttled);
    t_cleanup();
}

/* ---- mTLS -------------------------------------------------------------------------------------
 */

static int run_cmd(const char *const *argv) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        return -1;
    }
    int st = 0;
    if (waitpid(pid, &st, 0) < 0) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* CA, a server certificate for 127.0.0.1 and a client certificate for node-a (CN and SAN). */
static int make_certs(const char *d) {
    char p[12][300];
    const char *names[12] = {"ca.key",     "ca.crt",     "server.key", "server.csr",
                             "server.crt", "client.key", "client.csr", "client.crt",
                             "server.ext", "client.ext", "ca.srl",     ""};
    for (int i = 0; i < 11; i++) {
        snprintf(p[i], sizeof(p[i]), "%s/%s", d, names[i]);
    }
    write_text(p[8], "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    write_text(p[9], "subjectAltName=DNS:node-a\nextendedKeyUsage=clientAuth\n");
    const char *ca[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        p[0],
                        "-out",
                        p[1],
                        "-days",
                        "2",
                        "-subj",
                        "/CN=rsre-ingest-test-ca",
                        NULL};
    const char *sreq[] = {
        "openssl",       "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",        "-keyout", p[2],      "-out", p[3],       "-subj",
        "/CN=localhost", NULL};
    const char *ssign[] = {"openssl",   "x509",     "-req",   "-in", p[3],
                           "-CA",       p[1],       "-CAkey", p[0],  "-CAcreateserial",
                           "-CAserial", p[10],      "-out",   p[4],  "-days",
                           "2",         "-extfile", p[8],     NULL};
    const char *creq[] = {
        "openssl",    "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",     "-keyout", p[5],      "-out", p[6],       "-subj",
        "/CN=node-a", NULL};
    const char *csign[] = {"openssl",   "x509",     "-req",   "-in", p[6],
                           "-CA",       p[1],       "-CAkey", p[0],  "-CAcreateserial",
                           "-CAserial", p[10],      "-out",   p[7],  "-days",
                           "2",         "-extfile", p[9],     NULL};
    const char *const *cmds[] = {ca, sreq, ssign, creq, csign};
    for (size_t i = 0; i < 5; i++) {
        if (run_cmd(cmds[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static grpc_channel_credentials *client_creds(const char *certs) {
    char p[3][300];
    snprintf(p[0], sizeof(p[0]), "%s/ca.crt", certs);
    snprintf(p[1], sizeof(p[1]), "%s/client.crt", certs);
    snprintf(p[2], sizeof(p[2]), "%s/client.key", certs);
    char *ca = slurp(p[0]), *crt = slurp(p[1]), *key = slurp(p[2]);
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = crt};
    grpc_channel_credentials *creds = grpc_ssl_credentials_create(ca, &pair, NULL, NULL);
    free(ca);
    free(crt);
    free(key);
    return creds;
}

static int refused_twice(void *arg) {
    (void)arg;
    return stats().refused_identity >= 3;
}

static void test_mtls(void **state) {
    (void)state;
    t_init();
    char certs[256];
    snprintf(certs, sizeof(certs), "%s/certs", T.tmp);
    assert_int_equal(mkdir(certs, 0700), 0);
    if (make_certs(certs) != 0) {
        t_cleanup();
        skip(); /* no openssl binary */
    }
    char ca[300], scrt[300], skey[300], ccrt[300], ckey[300];
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    snprintf(scrt, sizeof(scrt), "%s/server.crt", certs);
    snprintf(skey, sizeof(skey), "%s/server.key", certs);
    snprintf(ccrt, sizeof(ccrt), "%s/client.crt", certs);
    snprintf(ckey, sizeof(ckey), "%s/client.key", certs);
    struct rsre_ingest_config cfg = {.tls_ca = ca, .tls_cert = scrt, .tls_key = skey};
    srv_start(&cfg);
    struct snap before = snapshot();

    /* Certificate node-a, Hello node-b: refused and audited; nothing else changes. */
    struct cli c;
    cli_open(&c, client_creds(certs));
    send_hello(&c, "node-b", BOOT_A);
    assert_int_equal(cli_status(&c), GRPC_STATUS_PERMISSION_DENIED);
    cli_close(&c);
    rsre_ingest_flush(T.ing);
    char detail[512];
    assert_int_equal(
        audit_count(T.store, "agent.identity_refused", "node/node-b", detail, sizeof(detail)), 1);
    assert_non_null(strstr(detail, "certificate_cn=node-a"));
    struct snap after = snapshot();
    assert_int_equal(after.agents, before.agents);
    assert_int_equal(after.evidence, before.evidence);
    assert_int_equal(T.hellos, 0);

    /* The real agent with node-a's certificate claiming node-b: refused on every attempt. */
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/agent-b", T.tmp);
    struct agent_opts o = {.node = "node-b",
                           .port = rsre_ingest_port(T.ing),
                           .dir = dir,
                           .tls_ca = ca,
                           .tls_cert = ccrt,
                           .tls_key = ckey};
    pid_t pid = agent_spawn(&o);
    assert_true(run_until(refused_twice, NULL, 20000));
    child_stop(pid, SIGTERM);
    assert_int_equal(T.hellos, 0);
    assert_int_equal(T.batches, 0);
    rsre_ingest_flush(T.ing);
    /* one audit record per (claimed node, certificate) a minute, however often it retries */
    assert_int_equal(audit_count(T.store, "agent.identity_refused", "node/node-b", NULL, 0), 1);
    assert_int_equal(snapshot().agents, before.agents);

    /* node-a with its own certificate streams (scripted and real). */
    cli_open(&c, client_creds(certs));
    send_hello(&c, "node-a", BOOT_B);
    assert_true(cli_wait_msgs(&c, 2, 10000));
    send_batch(&c, BOOT_B, 1, 1, 0);
    assert_true(cli_wait_ack(&c, BOOT_B, 1));
    cli_close(&c);
    snprintf(dir, sizeof(dir), "%s/agent-a", T.tmp);
    o.node = "node-a";
    o.dir = dir;
    pid = agent_spawn(&o);
    struct node_wait w = {"node-a", 4};
    assert_true(run_until(node_batches, &w, 30000));
    child_stop(pid, SIGTERM);
    rsre_ingest_flush(T.ing);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(T.store, 1, &txn), 0);
    rsre_store_agent *a = NULL;
    assert_int_equal(rsre_store_agent_get(txn, "node-a", &a), 0);
    assert_int_equal(rsre_store_agent_get(txn, "node-b", &(rsre_store_agent *){NULL}),
                     RSRE_ENOTFOUND);
    rsre_store_txn_abort(txn);
    assert_string_equal(a->identity, "node-a");
    rsre_store_agent_free(a);
    struct rsre_ingest_stats s = stats();
    srv_stop();
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(T.store, &rep), 0);
    fprintf(stderr,
            "[ figures ] mtls: certificate node-a claiming node-b refused %" PRIu64
            " times (scripted + real agent), audited; node-a streamed %" PRIu64 " batches\n",
            s.refused_identity, s.batches);
    t_cleanup();
}

/* ---- schema migration -------------------------------------------------------------------------
 */

static void test_migration(void **state) {
    (void)state;
    char dir[] = "/tmp/rsre-ingest-mig-XXXXXX";
    assert_non_null(mkdtemp(dir));
    rsre_store *s = NULL;
    assert_int_equal(rsre_store_open(dir, NULL, &s), 0);
    rsre_store_close(s);
    /* Turn it into a schema 1 store: no agents database, meta says 1. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "agents", 0, &dbi), 0);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    RobotSre__Store__Meta meta = ROBOT_SRE__STORE__META__INIT;
    meta.schema_version = 1;
    meta.created_by = "schema 1 binary";
    uint8_t buf[256];
    MDB_val k = {6, "schema"}, v = {robot_sre__store__meta__pack(&meta, buf), buf};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    /* Read-only: needs the migration, refused. */
    struct rsre_store_options ro = {.read_only = 1};
    assert_int_equal(rsre_store_open(dir, &ro, &s), RSRE_ESCHEMA);
    /* Read-write: migrated. */
    assert_int_equal(rsre_store_open(dir, NULL, &s), 0);
    struct rsre_store_info info;
    assert_int_equal(rsre_store_info(s, &info), 0);
    assert_int_equal(info.schema_version,
                     RSRE_STORE_SCHEMA_VERSION); /* migrated to the current schema */
    rsre_store_txn *t;
    assert_int_equal(rsre_store_txn_begin(s, 0, &t), 0);
    RobotSre__Store__AgentState a = ROBOT_SRE__STORE__AGENT_STATE__INIT;
    a.node = "node-m";
    assert_int_equal(rsre_store_agent_put(t, &a, 0), 0);
    /* bounds */
    RobotSre__Store__AgentState__Boot boots[RSRE_STORE_AGENT_MAX_BOOTS + 1],
        *bp[RSRE_STORE_AGENT_MAX_BOOTS + 1];
    for (int i = 0; i <= RSRE_STORE_AGENT_MAX_BOOTS; i++) {
        RobotSre__Store__AgentState__Boot init = ROBOT_SRE__STORE__AGENT_STATE__BOOT__INIT;
        boots[i] = init;
        boots[i].boot_id = BOOT_A;
        bp[i] = &boots[i];
    }
    a.n_boots = RSRE_STORE_AGENT_MAX_BOOTS + 1;
    a.boots = bp;
    assert_int_equal(rsre_store_agent_put(t, &a, 0), RSRE_ELIMIT);
    a.n_boots = 1;
    boots[0].boot_id = "";
    assert_int_equal(rsre_store_agent_put(t, &a, 0), RSRE_EINVALID);
    a.n_boots = 0;
    a.node = "";
    assert_int_equal(rsre_store_agent_put(t, &a, 0), RSRE_EINVALID);
    char longname[300];
    memset(longname, 'a', 254);
    longname[254] = '\0';
    a.node = longname;
    assert_int_equal(rsre_store_agent_put(t, &a, 0), RSRE_ELIMIT);
    longname[253] = '\0'; /* a 253-byte node name is fine (longer than other ids) */
    assert_int_equal(rsre_store_agent_put(t, &a, 0), 0);
    assert_int_equal(rsre_store_txn_commit(t), 0);
    assert_int_equal(rsre_store_txn_begin(s, 1, &t), 0);
    rsre_store_agent *got = NULL;
    assert_int_equal(rsre_store_agent_get(t, longname, &got), 0);
    rsre_store_agent_free(got);
    assert_int_equal(rsre_store_agent_get(t, "node-m", &got), 0);
    assert_null(rsre_store_agent_boot_find(got, BOOT_A));
    rsre_store_agent_free(got);
    rsre_store_txn_abort(t);
    rsre_store_close(s);
    rm_rf(dir);
}

/* ---- durability: SIGKILL the ingest while real agents stream -------------------------------- */

static uv_signal_t child_sigterm;

static void child_gl_closed(void *arg) {
    (void)arg;
}

static void child_ing_closed(void *arg) {
    (void)arg;
    rsre_grpc_loop_destroy(T.gl, child_gl_closed, NULL);
}

static void child_on_sigterm(uv_signal_t *s, int signum) {
    (void)signum;
    write_stats();
    struct rsre_ingest *ing = T.ing;
    T.ing = NULL;
    rsre_ingest_destroy(ing, child_ing_closed, NULL);
    uv_close((uv_handle_t *)s, NULL);
}

/* The child: argv = --serve-ingest STORE_DIR PORT ACKS_FILE STATS_FILE READY_FILE. Serves until
 * SIGTERM (graceful: exit 0 with everything released) or SIGKILL. Every batch of a committed
 * transaction is appended to ACKS_FILE before its Ack is queued. */
static int serve_ingest(int argc, char **argv) {
    if (argc < 6) {
        return 64;
    }
    const char *store_dir = argv[1], *acks = argv[3], *stats_path = argv[4], *ready = argv[5];
    int port = atoi(argv[2]);
    memset(&T, 0, sizeof(T));
    T.acks_fd = open(acks, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    T.stats_fd = open(stats_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (T.acks_fd < 0 || T.stats_fd < 0 || rsre_store_open(store_dir, NULL, &T.store) != 0) {
        return 2;
    }
    uv_loop_init(&T.loop);
    if (rsre_grpc_loop_create(&T.loop, &T.gl) != 0) {
        return 2;
    }
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct rsre_ingest_config cfg = {.listen_addr = addr, .min_client_ping_ms = 1000};
    int rc = rsre_ingest_create(&T.loop, T.gl, T.store, &cfg, &consumer, &T.ing);
    if (rc != 0) {
        fprintf(stderr, "serve-ingest: cannot serve on %s: %s\n", addr, rsre_strerror(rc));
        return 1;
    }
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write_all(fd, "ready\n", 6);
    close(fd);
    rename(tmp, ready);
    uv_signal_init(&T.loop, &child_sigterm);
    uv_signal_start(&child_sigterm, child_on_sigterm, SIGTERM);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    uv_loop_close(&T.loop);
    rsre_store_close(T.store);
    close(T.acks_fd);
    close(T.stats_fd);
    return 0;
}

/* ---- load generator: the agent's own stream client and spool, cutting batches fast ---------- */

#define LOAD_BOOT "5d1c7b3a-2e4f-4a6b-9c8d-7e6f5a4b3c2d"

static struct {
    uv_loop_t loop;
    struct rsre_grpc_loop *gl;
    struct rsre_spool *spool;
    struct rsre_stream *st;
    struct rsre_agent_config cfg;
    uv_timer_t prod, report;
    uv_signal_t sigusr1, sigterm;
    uint64_t seq;
    int producing, status_fd;
} L;

static void load_report(uv_timer_t *t) {
    (void)t;
    struct rsre_spool_stats ss;
    rsre_spool_stats(L.spool, LOAD_BOOT, &ss);
    char line[128];
    int n = snprintf(line, sizeof(line),
                     "seq=%" PRIu64 " spool=%u producing=%d dropped=%" PRIu64 "          \n", L.seq,
                     ss.batches, L.producing, ss.dropped_batches);
    if (pwrite(L.status_fd, line, (size_t)n, 0) < 0) {
        _exit(3);
    }
}

static void load_produce(uv_timer_t *t) {
    (void)t;
    if (!L.producing) {
        return;
    }
    uint64_t seq = ++L.seq;
    uint32_t n = 1 + (uint32_t)(seq % 5);
    M(PsiLine) some = ROBOT_SRE__AGENT__V1__PSI_LINE__INIT;
    some.avg10 = 1.5;
    some.total_usec = seq;
    M(PressureStall) ps = ROBOT_SRE__AGENT__V1__PRESSURE_STALL__INIT;
    ps.resource = E(PSI_RESOURCE__PSI_RESOURCE_MEMORY);
    ps.some = &some;
    M(Signal) sig[5], *sp[5];
    int64_t now = wall_ms();
    for (uint32_t i = 0; i < n; i++) {
        M(Signal) init = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        sig[i] = init;
        sig[i].observed_unix_ms = now;
        sig[i].kind_case = E(SIGNAL__KIND_PRESSURE_STALL);
        sig[i].pressure_stall = &ps;
        sp[i] = &sig[i];
    }
    M(SignalBatch) sb = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    sb.boot_id = LOAD_BOOT;
    sb.seq = seq;
    sb.created_unix_ms = now;
    sb.n_signals = n;
    sb.signals = sp;
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = E(AGENT_MESSAGE__BODY_SIGNAL_BATCH);
    m.signal_batch = &sb;
    uint8_t *buf;
    size_t len;
    if (rsre_pbuf_pack(&m.base, 0, &buf, &len) != 0 ||
        rsre_spool_push(L.spool, LOAD_BOOT, seq, n, buf, len) != 0) {
        _exit(4);
    }
    free(buf);
    rsre_stream_kick(L.st);
}

static void load_on_usr1(uv_signal_t *s, int signum) {
    (void)s;
    (void)signum;
    L.producing = 0;
    load_report(NULL);
}

static void load_gl_closed(void *arg) {
    (void)arg;
}

static void load_stream_closed(void *arg) {
    (void)arg;
    rsre_grpc_loop_destroy(L.gl, load_gl_closed, NULL);
}

static void load_on_term(uv_signal_t *s, int signum) {
    (void)s;
    (void)signum;
    load_report(NULL);
    uv_close((uv_handle_t *)&L.prod, NULL);
    uv_close((uv_handle_t *)&L.report, NULL);
    uv_close((uv_handle_t *)&L.sigusr1, NULL);
    uv_close((uv_handle_t *)&L.sigterm, NULL);
    rsre_stream_close(L.st, load_stream_closed, NULL);
}

/* argv = --load PORT NODE STATUS_FILE EVERY_MS: streams batches of LOAD_BOOT through the agent's
 * stream client and memory spool every EVERY_MS ms until SIGUSR1; reports "seq=N spool=M" into
 * STATUS_FILE; SIGTERM ends it. */
static int load_main(int argc, char **argv) {
    if (argc < 5) {
        return 64;
    }
    memset(&L, 0, sizeof(L));
    L.status_fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    rsre_agent_config_defaults(&L.cfg);
    snprintf(L.cfg.node_name, sizeof(L.cfg.node_name), "%s", argv[2]);
    snprintf(L.cfg.aggregator, sizeof(L.cfg.aggregator), "127.0.0.1:%s", argv[1]);
    L.cfg.reconnect_min_ms = 20;
    L.cfg.reconnect_max_ms = 200;
    L.cfg.keepalive_ms = 5000;
    unsigned every = (unsigned)atoi(argv[4]);
    uv_loop_init(&L.loop);
    if (L.status_fd < 0 || rsre_grpc_loop_create(&L.loop, &L.gl) != 0 ||
        rsre_spool_open(NULL, 64u << 20, 0, &L.spool) != 0) {
        return 2;
    }
    M(Hello) hello = ROBOT_SRE__AGENT__V1__HELLO__INIT;
    hello.protocol_revision = RSRE_PBUF_PROTOCOL_REVISION;
    hello.node_name = L.cfg.node_name;
    hello.boot_id = LOAD_BOOT;
    hello.agent_version = "load-0.1";
    hello.started_unix_ms = wall_ms();
    struct rsre_stream_callbacks cb = {0};
    if (rsre_stream_create(&L.loop, L.gl, &L.cfg, L.spool, LOAD_BOOT, &hello, &cb, &L.st) != 0) {
        return 2;
    }
    L.producing = 1;
    uv_timer_init(&L.loop, &L.prod);
    uv_timer_start(&L.prod, load_produce, every, every);
    uv_timer_init(&L.loop, &L.report);
    uv_timer_start(&L.report, load_report, 20, 20);
    uv_signal_init(&L.loop, &L.sigusr1);
    uv_signal_start(&L.sigusr1, load_on_usr1, SIGUSR1);
    uv_signal_init(&L.loop, &L.sigterm);
    uv_signal_start(&L.sigterm, load_on_term, SIGTERM);
    uv_run(&L.loop, UV_RUN_DEFAULT);
    uv_loop_close(&L.loop);
    rsre_spool_close(L.spool);
    close(L.status_fd);
    return 0;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

/* GET `path` from 127.0.0.1:port into buf; returns the body length or -1. */
static int http_get(int port, const char *path, char *buf, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, buf + got, cap - 1 - got)) > 0) {
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    return (int)got;
}

static int metric(const char *text, const char *name, uint64_t *out) {
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    if (p == NULL) {
        return -1;
    }
    *out = strtoull(p + strlen(key), NULL, 10);
    return 0;
}

struct dur {
    char dir[160], store[200], acks[200], ready[200], stats[200];
    int port;
    pid_t child;
    int runs;
    uint64_t duplicates, commits, hellos, messages;
};

static void dur_read_stats(struct dur *d) {
    FILE *f = fopen(d->stats, "r");
    if (f == NULL) {
        return;
    }
    uint64_t b = 0, dup = 0, gaps = 0, hel = 0, com = 0, msgs = 0;
    if (fscanf(f,
               "batches=%" SCNu64 " duplicates=%" SCNu64 " gaps=%" SCNu64 " hellos=%" SCNu64
               " commits=%" SCNu64 " messages=%" SCNu64,
               &b, &dup, &gaps, &hel, &com, &msgs) == 6) {
        d->duplicates += dup;
        d->commits += com;
        d->hellos += hel;
        d->messages += msgs;
    }
    fclose(f);
    unlink(d->stats);
}

static void dur_start(struct dur *d) {
    static char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    char port[16];
    snprintf(port, sizeof(port), "%d", d->port);
    unlink(d->ready);
    char *argv[] = {exe, "--serve-ingest", d->store, port, d->acks, d->stats, d->ready, NULL};
    char logpath[220];
    snprintf(logpath, sizeof(logpath), "%s/ingest.log", d->dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_int_equal(posix_spawn(&d->child, exe, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    d->runs++;
    for (int i = 0; i < 2000 && access(d->ready, F_OK) != 0; i++) {
        int st;
        if (waitpid(d->child, &st, WNOHANG) == d->child) {
            fail_msg("the ingest child exited at start (status %d); see %s", st, logpath);
        }
        sleep_ms(5);
    }
    assert_int_equal(access(d->ready, F_OK), 0);
}

#define DUR_AGENTS 3

static void test_durability(void **state) {
    (void)state;
    memset(&T, 0, sizeof(T));
    struct dur d;
    memset(&d, 0, sizeof(d));
    snprintf(d.dir, sizeof(d.dir), "/tmp/rsre-ingest-dur-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    snprintf(d.store, sizeof(d.store), "%s/store", d.dir);
    snprintf(d.acks, sizeof(d.acks), "%s/acks.log", d.dir);
    snprintf(d.ready, sizeof(d.ready), "%s/ready", d.dir);
    snprintf(d.stats, sizeof(d.stats), "%s/stats", d.dir);
    d.port = free_port();
    int kills = getenv("RSRE_INGEST_KILLS") ? atoi(getenv("RSRE_INGEST_KILLS")) : 25;
    dur_start(&d);

    pid_t agents[DUR_AGENTS];
    int health[DUR_AGENTS];
    char nodes[DUR_AGENTS][16], adirs[DUR_AGENTS][220];
    for (int i = 0; i < DUR_AGENTS; i++) {
        snprintf(nodes[i], sizeof(nodes[i]), "node-d%d", i);
        snprintf(adirs[i], sizeof(adirs[i]), "%s/agent-%d", d.dir, i);
        health[i] = free_port();
        struct agent_opts o = {
            .node = nodes[i], .port = d.port, .dir = adirs[i], .health_port = health[i]};
        agents[i] = agent_spawn(&o);
    }
    static char exe[PATH_MAX];
    ssize_t xn = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(xn > 0);
    exe[xn] = '\0';
    char load_status[220], load_log[220], portstr[16];
    snprintf(load_status, sizeof(load_status), "%s/load.status", d.dir);
    snprintf(load_log, sizeof(load_log), "%s/load.log", d.dir);
    snprintf(portstr, sizeof(portstr), "%d", d.port);
    char *largv[] = {exe, "--load", portstr, "node-load", load_status, "10", NULL};
    posix_spawn_file_actions_t lfa;
    posix_spawn_file_actions_init(&lfa);
    posix_spawn_file_actions_addopen(&lfa, 2, load_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t load;
    assert_int_equal(posix_spawn(&load, exe, &lfa, NULL, largv, environ), 0);
    posix_spawn_file_actions_destroy(&lfa);
    sleep_ms(1500);
    uint64_t t0 = mono_ms();
    for (int k = 0; k < kills; k++) {
        unsigned wait = 50 + (unsigned)(rng() % 1200);
        sleep_ms(wait);
        kill(d.child, SIGKILL);
        int st;
        assert_int_equal(waitpid(d.child, &st, 0), d.child);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        dur_read_stats(&d);
        dur_start(&d);
    }
    uint64_t kill_ms = mono_ms() - t0;

    /* Let every agent catch up: its spool empties (everything acknowledged). */
    uint64_t cut[DUR_AGENTS];
    char boots[DUR_AGENTS][40];
    for (int i = 0; i < DUR_AGENTS; i++) {
        char text[16384];
        uint64_t spool = 1, end = mono_ms() + 30000;
        cut[i] = 0;
        while (mono_ms() < end) {
            if (http_get(health[i], "/metrics", text, sizeof(text)) > 0 &&
                metric(text, "rsre_agent_spool_batches", &spool) == 0 &&
                metric(text, "rsre_agent_batches_total", &cut[i]) == 0 && spool == 0) {
                break;
            }
            sleep_ms(20);
        }
        assert_int_equal(spool, 0);
        assert_true(http_get(health[i], "/healthz", text, sizeof(text)) > 0);
        const char *b = strstr(text, "\"boot_id\":\"");
        assert_non_null(b);
        snprintf(boots[i], sizeof(boots[i]), "%.36s", b + 11);
    }
    /* The load generator stops producing; everything it cut gets acknowledged. */
    kill(load, SIGUSR1);
    uint64_t load_seq = 0, load_spool = 1, load_dropped = 1;
    for (uint64_t end = mono_ms() + 30000; mono_ms() < end; sleep_ms(20)) {
        char text[256] = "";
        FILE *lf = fopen(load_status, "r");
        int producing = 1;
        if (lf && fgets(text, sizeof(text), lf) &&
            sscanf(text, "seq=%" SCNu64 " spool=%" SCNu64 " producing=%d dropped=%" SCNu64,
                   &load_seq, &load_spool, &producing, &load_dropped) == 4 &&
            !producing && load_spool == 0) {
            fclose(lf);
            break;
        }
        if (lf) {
            fclose(lf);
        }
    }
    assert_int_equal(load_spool, 0);
    assert_int_equal(load_dropped, 0);
    assert_true(load_seq > 0);
    /* Graceful stop of the last ingest: exit 0 (its sanitizers are quiet). */
    kill(d.child, SIGTERM);
    int st;
    assert_int_equal(waitpid(d.child, &st, 0), d.child);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    dur_read_stats(&d);
    for (int i = 0; i < DUR_AGENTS; i++) {
        child_stop(agents[i], SIGTERM);
    }
    st = child_stop(load, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* Verify on the store the child left behind. */
    rsre_store *store = NULL;
    assert_int_equal(rsre_store_open(d.store, NULL, &store), 0);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(store, &rep), 0);
    uint64_t applied = 0;
    for (int i = 0; i < DUR_AGENTS; i++) {
        uint64_t lost = 0;
        applied += check_node(store, nodes[i], &lost);
        assert_int_equal(lost, 0);
        /* every batch the agent cut was acknowledged, hence committed, exactly once */
        uint64_t h = committed_seq(store, nodes[i], boots[i], NULL);
        assert_true(cut[i] > 0);
        assert_true(h >= cut[i]);
        for (uint64_t s = 1; s <= cut[i]; s++) {
            assert_int_equal(batch_count(store, nodes[i], boots[i], s), 1);
        }
    }
    uint64_t lost = 0;
    uint64_t load_applied = check_node(store, "node-load", &lost);
    assert_int_equal(lost, 0);
    assert_int_equal(load_applied, load_seq);
    assert_int_equal(committed_seq(store, "node-load", LOAD_BOOT, NULL), load_seq);
    applied += load_applied;
    /* every batch the ingest logged after a commit is there exactly once */
    FILE *f = fopen(d.acks, "r");
    assert_non_null(f);
    char line[256];
    uint64_t logged = 0, torn = 0;
    while (fgets(line, sizeof(line), f)) {
        char node[64], boot[64];
        uint64_t seq;
        if (!strchr(line, '\n') || sscanf(line, "C %63s %63s %" SCNu64, node, boot, &seq) != 3) {
            torn++; /* a line cut by SIGKILL: its transaction committed anyway */
            continue;
        }
        assert_int_equal(batch_count(store, node, boot, seq), 1);
        logged++;
    }
    fclose(f);
    assert_true(torn <= 1);
    /* A SIGKILL between a commit and the log lines of its group leaves committed batches that
     * were never acknowledged (their agents resend them and they dedupe): never the reverse. */
    assert_true(logged <= applied);
    assert_true(applied - logged <= 64u * 25u); /* at most one default group per kill */
    rsre_store_close(store);
    fprintf(stderr,
            "[ figures ] durability: kills=%d (SIGKILL at 50..1250 ms, %" PRIu64
            " ms), ingest runs=%d, agents=%d, batches applied=%" PRIu64
            " (each exactly once, all the agents cut: %" PRIu64 "+%" PRIu64 "+%" PRIu64
            ", load generator %" PRIu64 "), logged after commit=%" PRIu64
            ", duplicates seen=%" PRIu64 " (killed runs: as of their last commit), commits=%" PRIu64
            ", hellos=%" PRIu64 ", audit records=%" PRIu64 " verified\n",
            kills, kill_ms, d.runs, DUR_AGENTS, applied, cut[0], cut[1], cut[2], load_seq, logged,
            d.duplicates, d.commits, d.hellos, rep.count);
    rm_rf(d.dir);
}

static void seed_from_env(void) {
    const char *s = getenv("RSRE_TEST_SEED");
    rng_state = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    if (rng_state == 0) {
        rng_state = 1;
    }
    fprintf(stderr, "[ seed    ] RSRE_TEST_SEED=%" PRIu64 "\n", rng_state);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    setenv("GRPC_VERBOSITY", "NONE", 0); /* expected refusals and TLS failures */
    rsre_log_set_level_name(getenv("RSRE_LOG_LEVEL") ? getenv("RSRE_LOG_LEVEL") : "error");
    if (argc > 1 && strcmp(argv[1], "--serve-ingest") == 0) {
        return serve_ingest(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "--load") == 0) {
        return load_main(argc - 1, argv + 1);
    }
    seed_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migration), cmocka_unit_test(test_dedupe),
        cmocka_unit_test(test_hostile),   cmocka_unit_test(test_real_agent),
        cmocka_unit_test(test_mtls),      cmocka_unit_test(test_durability),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
