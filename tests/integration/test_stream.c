/*
 * Integration tests of the agent's aggregator stream (agent/stream.h) and spool (agent/spool.h)
 * against a real gRPC peer: tests/support/fake_aggregator.c, run as a separate process (this
 * same binary started with --serve), which commits what it receives to files (append +
 * fdatasync) before acknowledging, and can be SIGKILLed and restarted on the same TCP port.
 *
 *   kill_restart     batches flow at a steady rate while the aggregator is SIGKILLed (0..700 ms
 *                    after each reconnect) and restarted many times: every seq is received at
 *                    least once and committed exactly once; duplicates per connection stay
 *                    within the in-flight window.
 *   spool_overflow   the aggregator stays down past the spool bound: the drop counter equals
 *                    exactly the batches never received, and the received ones are the newest.
 *   agent_restart    stream and disk spool closed mid-flight; reopened from disk with a new
 *                    client (new boot): the old boot's unacknowledged batches are resent with
 *                    their old boot id and committed exactly once.
 *   boot_conflict    an Ack above the spool's last_seq makes the stream ask for a new boot id.
 *   mtls_results     mTLS with a client certificate (the aggregator sees the node's CN), a
 *                    client without a certificate is refused, action results are resent after
 *                    a restart until acknowledged, an ActionRequest before the ConfigUpdate is
 *                    refused by the stream.
 *
 * RSRE_TEST_SEED=<n> replays the kill schedule (the seed is printed). Figures are printed.
 */
#define RSRE_FAKE_AGGREGATOR_NO_MAIN
#include "../support/fake_aggregator.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent/spool.h"
#include "agent/stream.h"

#include "../support/proc.c"

#define BOOT_A "0b8f3c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c"
#define BOOT_B "7c2d4e6f-1a3b-4c5d-9e8f-0a1b2c3d4e5f"
#define NODE "node-1"
#define MAX_SEQ 100000

static uint64_t rng_state;

static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint64_t mono_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- harness -------------------------------------------------------------------------------- */

struct h {
    uv_loop_t loop;
    struct rsre_grpc_loop *gl;
    struct rsre_spool *spool;
    struct rsre_stream *st;
    struct rsre_agent_config cfg;
    char tmp[128], fake_dir[192], port_file[192], spool_dir[192];
    int port;
    /* fake aggregator process */
    uv_process_t proc;
    int proc_alive, proc_open;
    int64_t exit_status;
    int term_signal;
    const char *extra[16];
    int nextra;
    int starts;
    /* producer */
    uv_timer_t prod, tick;
    int producing;
    uint64_t produce_until; /* stop at this seq (0 = no limit) */
    char boot[37];
    uint64_t seq;
    uint32_t nsig[MAX_SEQ + 1]; /* signals per seq of the current boot */
    int stream_closed, gl_closed;
    int ups, downs;
    /* callbacks */
    int conflicts;
    char conflict_boot[37];
    int actions;
    char last_action[129];
    int configs;
};

static struct h H;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void on_tick(uv_timer_t *t) {
    (void)t;
}

static void h_init(struct h *h) {
    memset(h, 0, sizeof(*h));
    snprintf(h->tmp, sizeof(h->tmp), "/tmp/rsre-stream-XXXXXX");
    assert_non_null(mkdtemp(h->tmp));
    snprintf(h->fake_dir, sizeof(h->fake_dir), "%s/agg", h->tmp);
    snprintf(h->port_file, sizeof(h->port_file), "%s/port", h->tmp);
    snprintf(h->spool_dir, sizeof(h->spool_dir), "%s/spool", h->tmp);
    assert_int_equal(mkdir(h->fake_dir, 0700), 0);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(rsre_grpc_loop_create(&h->loop, &h->gl), 0);
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_start(&h->tick, on_tick, 5, 5);
    uv_timer_init(&h->loop, &h->prod);
    h->prod.data = h;
    snprintf(h->cfg.node_name, sizeof(h->cfg.node_name), "%s", NODE);
    h->cfg.reconnect_min_ms = 20;
    h->cfg.reconnect_max_ms = 250;
    h->cfg.keepalive_ms = 10000;
}

typedef int (*pred_fn)(struct h *h);

/* Runs the loop until pred(h) holds or timeout_ms passes; returns pred(h). */
static int run_until(struct h *h, pred_fn pred, uint64_t timeout_ms) {
    uint64_t end = mono_now_ms() + timeout_ms;
    while (!pred(h) && mono_now_ms() < end) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    return pred(h);
}

static int never(struct h *h) {
    (void)h;
    return 0;
}

static void run_for(struct h *h, uint64_t ms) {
    run_until(h, never, ms);
}

/* ---- fake aggregator process ---------------------------------------------------------------- */

static void on_proc_exit(uv_process_t *p, int64_t status, int sig) {
    struct h *h = p->data;
    h->proc_alive = 0;
    h->exit_status = status;
    h->term_signal = sig;
}

static void on_proc_closed(uv_handle_t *hd) {
    struct h *h = hd->data;
    h->proc_open = 0;
}

static int port_ready(struct h *h) {
    return access(h->port_file, F_OK) == 0 || !h->proc_alive;
}

static int proc_gone(struct h *h) {
    return !h->proc_alive;
}

static int proc_closed(struct h *h) {
    return !h->proc_open;
}

/* Starts the fake aggregator (on the same port as before after the first start). */
static void fake_start(struct h *h) {
    static char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", h->port);
    const char *args[40];
    int a = 0;
    args[a++] = exe;
    args[a++] = "--serve";
    args[a++] = "--listen";
    args[a++] = listen;
    args[a++] = "--dir";
    args[a++] = h->fake_dir;
    args[a++] = "--port-file";
    args[a++] = h->port_file;
    for (int i = 0; i < h->nextra; i++) {
        args[a++] = h->extra[i];
    }
    args[a] = NULL;
    unlink(h->port_file);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opt = {.exit_cb = on_proc_exit,
                                .file = exe,
                                .args = (char **)args,
                                .stdio_count = 3,
                                .stdio = stdio};
    h->proc.data = h;
    int rc = uv_spawn(&h->loop, &h->proc, &opt);
    assert_int_equal(rc, 0);
    h->proc_alive = 1;
    h->proc_open = 1;
    h->starts++;
    assert_true(run_until(h, port_ready, 20000));
    assert_true(h->proc_alive);
    FILE *f = fopen(h->port_file, "r");
    assert_non_null(f);
    int port = 0;
    assert_int_equal(fscanf(f, "%d", &port), 1);
    fclose(f);
    assert_true(port > 0);
    if (h->port) {
        assert_int_equal(port, h->port);
    }
    h->port = port;
    snprintf(h->cfg.aggregator, sizeof(h->cfg.aggregator), "127.0.0.1:%d", port);
}

/* Sends `sig` and waits for the process to be gone and its handle closed. */
static void fake_stop(struct h *h, int sig) {
    if (!h->proc_open) {
        return;
    }
    if (h->proc_alive) {
        uv_process_kill(&h->proc, sig);
        assert_true(run_until(h, proc_gone, 30000));
    }
    uv_close((uv_handle_t *)&h->proc, on_proc_closed);
    assert_true(run_until(h, proc_closed, 5000));
}

/* ---- batches -------------------------------------------------------------------------------- */

/* Packs AgentMessage{signal_batch} with `n` PressureStall signals into *out (free()). */
static size_t build_batch(const char *boot, uint64_t seq, uint32_t n, uint8_t **out) {
    RobotSre__Agent__V1__PsiLine some = ROBOT_SRE__AGENT__V1__PSI_LINE__INIT;
    some.avg10 = 1.5;
    some.avg60 = 2.5;
    some.avg300 = 3.5;
    some.total_usec = seq * 1000;
    RobotSre__Agent__V1__PressureStall ps = ROBOT_SRE__AGENT__V1__PRESSURE_STALL__INIT;
    ps.resource = ROBOT_SRE__AGENT__V1__PSI_RESOURCE__PSI_RESOURCE_CPU;
    ps.some = &some;
    RobotSre__Agent__V1__Signal sig[8];
    RobotSre__Agent__V1__Signal *sigs[8];
    int64_t now = wall_ms();
    for (uint32_t i = 0; i < n; i++) {
        RobotSre__Agent__V1__Signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        s.observed_unix_ms = now;
        s.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_PRESSURE_STALL;
        s.pressure_stall = &ps;
        sig[i] = s;
        sigs[i] = &sig[i];
    }
    RobotSre__Agent__V1__SignalBatch sb = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    sb.boot_id = (char *)boot;
    sb.seq = seq;
    sb.created_unix_ms = now;
    sb.n_signals = n;
    sb.signals = sigs;
    RobotSre__Agent__V1__AgentMessage m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_SIGNAL_BATCH;
    m.signal_batch = &sb;
    size_t len = 0;
    assert_int_equal(rsre_pbuf_pack(&m.base, 0, out, &len), 0);
    return len;
}

/* Cuts the next batch of the current boot (1..5 signals) into the spool and kicks the stream. */
static void produce_one(struct h *h) {
    assert_true(h->seq < MAX_SEQ);
    uint64_t seq = ++h->seq;
    uint32_t n = 1 + (uint32_t)(rng() % 5);
    uint8_t *msg;
    size_t len = build_batch(h->boot, seq, n, &msg);
    int rc = rsre_spool_push(h->spool, h->boot, seq, n, msg, len);
    assert_true(rc == 0 || rc == RSRE_ELIMIT);
    free(msg);
    h->nsig[seq] = n;
    if (h->st) {
        rsre_stream_kick(h->st);
    }
}

static void on_prod(uv_timer_t *t) {
    struct h *h = t->data;
    if (h->producing && (!h->produce_until || h->seq < h->produce_until)) {
        produce_one(h);
    }
}

static void produce_start(struct h *h, unsigned every_ms) {
    h->producing = 1;
    uv_timer_start(&h->prod, on_prod, every_ms, every_ms);
}

static void produce_stop(struct h *h) {
    h->producing = 0;
    uv_timer_stop(&h->prod);
}

/* ---- stream --------------------------------------------------------------------------------- */

static void cb_state(void *arg, int up) {
    struct h *h = arg;
    if (up) {
        h->ups++;
    } else {
        h->downs++;
    }
}

static void cb_conflict(void *arg, const char *boot, uint64_t committed, uint64_t last) {
    struct h *h = arg;
    (void)committed;
    (void)last;
    h->conflicts++;
    snprintf(h->conflict_boot, sizeof(h->conflict_boot), "%s", boot);
    /* What the agent does: a new boot, numbering from 1. */
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_B);
    h->seq = 0;
    assert_int_equal(rsre_stream_set_boot_id(h->st, BOOT_B), 0);
}

static void cb_action(void *arg, const rsre_action_request *req) {
    struct h *h = arg;
    h->actions++;
    snprintf(h->last_action, sizeof(h->last_action), "%s", req->request_id);
    rsre_action_result r = ROBOT_SRE__AGENT__V1__ACTION_RESULT__INIT;
    r.request_id = req->request_id;
    r.action_id = req->action_id;
    r.status = ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_DRY_RUN;
    r.message = (char *)"would remove 2 images";
    r.bytes_freed = 12345;
    r.objects_removed = 2;
    r.started_unix_ms = wall_ms();
    r.finished_unix_ms = r.started_unix_ms;
    assert_int_equal(rsre_stream_send_result(h->st, &r), 0);
}

static void cb_config(void *arg, const RobotSre__Agent__V1__ConfigUpdate *cu) {
    struct h *h = arg;
    (void)cu;
    h->configs++;
}

static void stream_open(struct h *h, const char *boot) {
    RobotSre__Agent__V1__Hello hello = ROBOT_SRE__AGENT__V1__HELLO__INIT;
    hello.protocol_revision = RSRE_PBUF_PROTOCOL_REVISION;
    hello.node_name = (char *)NODE;
    hello.boot_id = (char *)boot;
    hello.agent_version = (char *)"0.1.0-test";
    hello.started_unix_ms = wall_ms();
    struct rsre_stream_callbacks cb = {.on_action = cb_action,
                                       .on_config = cb_config,
                                       .on_state = cb_state,
                                       .on_boot_conflict = cb_conflict,
                                       .arg = h};
    h->stream_closed = 0;
    assert_int_equal(
        rsre_stream_create(&h->loop, h->gl, &h->cfg, h->spool, boot, &hello, &cb, &h->st), 0);
}

static void on_stream_closed(void *arg) {
    struct h *h = arg;
    h->stream_closed = 1;
}

static int stream_is_closed(struct h *h) {
    return h->stream_closed;
}

static void stream_close(struct h *h) {
    if (!h->st) {
        return;
    }
    rsre_stream_close(h->st, on_stream_closed, h);
    assert_true(run_until(h, stream_is_closed, 10000));
    h->st = NULL;
}

static void on_gl_closed(void *arg) {
    struct h *h = arg;
    h->gl_closed = 1;
}

static int gl_is_closed(struct h *h) {
    return h->gl_closed;
}

/* Closes everything; the loop must end with no handle left (uv_loop_close succeeds). */
static void h_finish(struct h *h) {
    produce_stop(h);
    stream_close(h);
    if (h->proc_open) {
        /* A graceful stop must be clean: exit 0 (under ASan, also no leak in the server). */
        fake_stop(h, SIGTERM);
        assert_int_equal(h->term_signal, 0);
        assert_int_equal(h->exit_status, 0);
    }
    rsre_spool_close(h->spool);
    h->spool = NULL;
    assert_int_equal(rsre_grpc_loop_pending(h->gl), 0); /* every op of the stream completed */
    rsre_grpc_loop_destroy(h->gl, on_gl_closed, h);
    assert_true(run_until(h, gl_is_closed, 10000));
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_close((uv_handle_t *)&h->prod, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

/* Removes the test's files (after the checks have read them). */
static void h_cleanup(struct h *h) {
    nftw(h->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int spool_empty(struct h *h) {
    struct rsre_stream_stats ss;
    rsre_stream_stats(h->st, &ss);
    return rsre_spool_count(h->spool) == 0 && ss.connected;
}

/* ---- reading the fake's files --------------------------------------------------------------- */

struct rec {
    char boot[37];
    uint64_t seq, conn;
    uint32_t nsig;
    int dup;
};

/* Reads "R boot seq nsig conn dup" (kind 'R') or "C boot seq nsig" (kind 'C') lines. */
static size_t read_recs(struct h *h, const char *file, char kind, struct rec **out) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", h->fake_dir, file);
    FILE *f = fopen(path, "r");
    size_t n = 0, cap = 0;
    *out = NULL;
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        struct rec r;
        memset(&r, 0, sizeof(r));
        int ok = kind == 'R' ? sscanf(line, "R %36s %" SCNu64 " %u %" SCNu64 " %d", r.boot, &r.seq,
                                      &r.nsig, &r.conn, &r.dup) == 5
                             : sscanf(line, "C %36s %" SCNu64 " %u", r.boot, &r.seq, &r.nsig) == 3;
        if (!ok) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            *out = realloc(*out, cap * sizeof(**out));
            assert_non_null(*out);
        }
        (*out)[n++] = r;
    }
    if (f) {
        fclose(f);
    }
    return n;
}

/* Counts lines of events.log starting with `prefix`; copies the last one into last. */
static size_t count_events(struct h *h, const char *prefix, char *last, size_t last_len) {
    char path[256];
    snprintf(path, sizeof(path), "%s/events.log", h->fake_dir);
    FILE *f = fopen(path, "r");
    size_t n = 0;
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            n++;
            if (last) {
                snprintf(last, last_len, "%s", line);
            }
        }
    }
    if (f) {
        fclose(f);
    }
    return n;
}

static size_t received_count(struct h *h) {
    struct rec *r;
    size_t n = read_recs(h, "received.log", 'R', &r);
    free(r);
    return n;
}

/* Per-seq counts of `boot` in recs. */
static void tally(const struct rec *r, size_t n, const char *boot, uint32_t *count, uint64_t max) {
    memset(count, 0, (max + 1) * sizeof(*count));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].boot, boot) == 0) {
            assert_true(r[i].seq >= 1 && r[i].seq <= max);
            count[r[i].seq]++;
        }
    }
}

static uint32_t cnt_recv[MAX_SEQ + 1], cnt_commit[MAX_SEQ + 1];

/* ---- tests ---------------------------------------------------------------------------------- */

static int seed_from_env(void) {
    const char *s = getenv("RSRE_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    rng_state = seed ? seed : 1;
    fprintf(stderr, "[ seed ] RSRE_TEST_SEED=%" PRIu64 "\n", seed);
    return 0;
}

static void test_kill_restart(void **state) {
    (void)state;
    struct h *h = &H;
    h_init(h);
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_A);
    h->extra[h->nextra++] = "--commit-ms";
    h->extra[h->nextra++] = "20";
    fake_start(h);
    assert_int_equal(rsre_spool_open(NULL, 8u << 20, 0, &h->spool), 0);
    stream_open(h, h->boot);
    produce_start(h, 4);
    run_for(h, 600);

    const int kills = 20;
    uint64_t t0 = mono_now_ms();
    for (int k = 0; k < kills; k++) {
        fake_stop(h, SIGKILL);
        /* down for 0..400 ms; every third restart is immediate */
        run_for(h, k % 3 == 0 ? 0 : rng() % 400);
        fake_start(h);
        /* Kill again 0..700 ms after the stream is back up, batches flowing. */
        int want = h->ups + 1;
        while (h->ups < want && mono_now_ms() - t0 < 50000) {
            uv_run(&h->loop, UV_RUN_ONCE);
        }
        assert_true(h->ups >= want);
        run_for(h, rng() % 700);
    }
    produce_stop(h);
    assert_true(run_until(h, spool_empty, 20000));
    uint64_t elapsed = mono_now_ms() - t0;
    struct rsre_stream_stats ss;
    rsre_stream_stats(h->st, &ss);
    struct rsre_spool_stats sp;
    rsre_spool_stats(h->spool, NULL, &sp);
    h_finish(h);

    uint64_t n = h->seq;
    struct rec *recv, *comm;
    size_t nrecv = read_recs(h, "received.log", 'R', &recv);
    size_t ncomm = read_recs(h, "committed.log", 'C', &comm);
    tally(recv, nrecv, BOOT_A, cnt_recv, n);
    tally(comm, ncomm, BOOT_A, cnt_commit, n);
    for (uint64_t s = 1; s <= n; s++) {
        if (cnt_recv[s] < 1 || cnt_commit[s] != 1) {
            fail_msg("seq %" PRIu64 ": received %u, committed %u", s, cnt_recv[s], cnt_commit[s]);
        }
    }
    assert_int_equal(ncomm, n);
    /* Duplicates: receptions of a seq already received before (by this or an earlier
     * aggregator process), i.e. resends of batches in flight when a connection died. Counted
     * per connection (conn ids are unique across restarts). */
    static uint8_t seen[MAX_SEQ + 1];
    memset(seen, 0, sizeof(seen));
    size_t dups = 0, max_conn_dups = 0, cur = 0, flagged = 0;
    uint64_t conn = 0;
    for (size_t i = 0; i < nrecv; i++) {
        if (recv[i].conn != conn) {
            conn = recv[i].conn;
            cur = 0;
        }
        flagged += recv[i].dup;
        if (seen[recv[i].seq]) {
            dups++;
            if (++cur > max_conn_dups) {
                max_conn_dups = cur;
            }
        }
        seen[recv[i].seq] = 1;
    }
    size_t hellos = count_events(h, "H ", NULL, 0);
    assert_int_equal(dups, nrecv - n);
    assert_true(max_conn_dups <= RSRE_STREAM_WINDOW);
    assert_true(dups <= RSRE_STREAM_WINDOW * (hellos - 1));
    assert_int_equal(sp.dropped_batches, 0);
    assert_true(ss.connects >= (uint64_t)kills + 1);
    assert_int_equal((uint64_t)h->ups, ss.connects);
    fprintf(stderr,
            "[ figures ] kill_restart: kills=%d batches=%" PRIu64 " in %.1fs received=%zu "
            "duplicates=%zu (max %zu per connection, window %u; %zu known to the receiving "
            "process) connections=%zu "
            "stream: attempts=%" PRIu64 " connects=%" PRIu64 " sent=%" PRIu64 " resent=%" PRIu64
            " acks=%" PRIu64 "\n",
            kills, n, (double)elapsed / 1000.0, nrecv, dups, max_conn_dups, RSRE_STREAM_WINDOW,
            flagged, hellos, ss.attempts, ss.connects, ss.batches_sent, ss.batches_resent, ss.acks);
    free(recv);
    free(comm);
    h_cleanup(h);
}

static void test_spool_overflow(void **state) {
    (void)state;
    struct h *h = &H;
    h_init(h);
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_A);
    fake_start(h);
    /* Room for about 40 batches of 3 signals. */
    uint8_t *probe;
    size_t plen = build_batch(BOOT_A, 1, 3, &probe);
    free(probe);
    size_t cap = 40 * (plen + RSRE_SPOOL_RECORD_OVERHEAD);
    assert_int_equal(rsre_spool_open(NULL, cap, 0, &h->spool), 0);
    stream_open(h, h->boot);
    for (int i = 0; i < 20; i++) {
        produce_one(h);
    }
    assert_true(run_until(h, spool_empty, 10000));
    uint64_t before = h->seq;

    fake_stop(h, SIGKILL);
    h->produce_until = before + 300;
    produce_start(h, 2);
    uint64_t t0 = mono_now_ms();
    while (h->seq < h->produce_until && mono_now_ms() - t0 < 20000) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    produce_stop(h);
    struct rsre_spool_stats sp;
    rsre_spool_stats(h->spool, NULL, &sp);
    assert_true(sp.dropped_batches > 0);
    assert_true(sp.bytes <= cap);
    uint64_t held = sp.batches;

    fake_start(h);
    assert_true(run_until(h, spool_empty, 15000));
    for (int i = 0; i < 10; i++) {
        produce_one(h);
    }
    assert_true(run_until(h, spool_empty, 10000));
    rsre_spool_stats(h->spool, NULL, &sp);
    char hello_line[1024] = "";
    h_finish(h);

    uint64_t n = h->seq;
    struct rec *recv;
    size_t nrecv = read_recs(h, "received.log", 'R', &recv);
    tally(recv, nrecv, BOOT_A, cnt_recv, n);
    uint64_t missing = 0, missing_signals = 0, first_missing = 0, last_missing = 0;
    for (uint64_t s = 1; s <= n; s++) {
        if (cnt_recv[s] == 0) {
            missing++;
            missing_signals += h->nsig[s];
            if (!first_missing) {
                first_missing = s;
            }
            last_missing = s;
        }
    }
    /* Exactly the dropped batches are missing, and they are the oldest of the outage: one
     * contiguous range right after what was acknowledged before it. */
    assert_int_equal(missing, sp.dropped_batches);
    assert_int_equal(missing_signals, sp.dropped_signals);
    assert_int_equal(first_missing, before + 1);
    assert_int_equal(last_missing - first_missing + 1, missing);
    /* The aggregator recorded the gap, and the Hello after the restart carried the count. */
    char gap[256];
    snprintf(gap, sizeof(gap), "G %s %" PRIu64 " %" PRIu64, BOOT_A, first_missing, last_missing);
    char last_gap[256] = "";
    assert_int_equal(count_events(h, "G ", last_gap, sizeof(last_gap)), 1);
    assert_memory_equal(last_gap, gap, strlen(gap));
    count_events(h, "H ", hello_line, sizeof(hello_line));
    char dropped_field[64];
    snprintf(dropped_field, sizeof(dropped_field), " %" PRIu64 " 0\n", sp.dropped_batches);
    assert_non_null(strstr(hello_line, dropped_field));
    fprintf(
        stderr,
        "[ figures ] spool_overflow: capacity=%zu bytes (~40 batches), produced during outage=300, "
        "held=%" PRIu64 ", dropped_batches=%" PRIu64 " dropped_signals=%" PRIu64
        " = never received (seqs %" PRIu64 "..%" PRIu64 ")\n",
        cap, held, sp.dropped_batches, sp.dropped_signals, first_missing, last_missing);
    free(recv);
    h_cleanup(h);
}

static int window_received(struct h *h) {
    return received_count(h) >= RSRE_STREAM_WINDOW;
}

static void test_agent_restart(void **state) {
    (void)state;
    struct h *h = &H;
    h_init(h);
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_A);
    h->extra[h->nextra++] = "--no-commit";
    fake_start(h);
    assert_int_equal(rsre_spool_open(h->spool_dir, 1u << 20, 1u << 20, &h->spool), 0);
    for (int i = 0; i < 50; i++) {
        produce_one(h);
    }
    uint32_t nsig_a[51];
    memcpy(nsig_a, h->nsig, sizeof(nsig_a));
    stream_open(h, h->boot);
    assert_true(run_until(h, window_received, 10000));
    run_for(h, 200);
    assert_int_equal(received_count(h), RSRE_STREAM_WINDOW); /* the window holds */
    struct rsre_stream_stats ss;
    rsre_stream_stats(h->st, &ss);
    assert_int_equal(ss.in_flight, RSRE_STREAM_WINDOW);

    /* The agent goes away mid-flight: 32 sent and unacknowledged, 18 never sent. */
    stream_close(h);
    rsre_spool_close(h->spool);
    h->spool = NULL;
    fake_stop(h, SIGKILL);
    h->nextra = 0;
    fake_start(h);

    /* A new agent process: the spool comes back from disk with its boot. */
    assert_int_equal(rsre_spool_open(h->spool_dir, 1u << 20, 1u << 20, &h->spool), 0);
    uint64_t last = 0;
    const char *restored_boot = rsre_spool_boot_id(h->spool, &last);
    assert_non_null(restored_boot);
    assert_string_equal(restored_boot, BOOT_A);
    assert_int_equal(last, 50);
    struct rsre_spool_stats sp;
    rsre_spool_stats(h->spool, BOOT_A, &sp);
    assert_int_equal(sp.batches, 50);
    assert_int_equal(sp.first_unacked_seq, 1);
    assert_true(sp.restored);
    /* It starts a new boot (as an agent that lost its boot id would): old batches keep A. */
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_B);
    h->seq = 0;
    stream_open(h, h->boot);
    for (int i = 0; i < 10; i++) {
        produce_one(h);
    }
    assert_true(run_until(h, spool_empty, 15000));
    rsre_spool_stats(h->spool, NULL, &sp);
    uint64_t file_bytes = sp.file_bytes;
    h_finish(h);

    struct rec *recv, *comm;
    size_t nrecv = read_recs(h, "received.log", 'R', &recv);
    size_t ncomm = read_recs(h, "committed.log", 'C', &comm);
    tally(comm, ncomm, BOOT_A, cnt_commit, 50);
    tally(recv, nrecv, BOOT_A, cnt_recv, 50);
    for (uint64_t s = 1; s <= 50; s++) {
        assert_int_equal(cnt_commit[s], 1);
        assert_int_equal(cnt_recv[s], s <= RSRE_STREAM_WINDOW ? 2 : 1);
    }
    for (size_t i = 0; i < ncomm; i++) {
        if (strcmp(comm[i].boot, BOOT_A) == 0) {
            assert_int_equal(comm[i].nsig, nsig_a[comm[i].seq]);
        }
    }
    tally(comm, ncomm, BOOT_B, cnt_commit, 10);
    for (uint64_t s = 1; s <= 10; s++) {
        assert_int_equal(cnt_commit[s], 1);
    }
    assert_int_equal(ncomm, 60);
    char hello[1024];
    assert_int_equal(count_events(h, "H ", hello, sizeof(hello)), 2);
    assert_non_null(strstr(hello, BOOT_B));
    assert_non_null(strstr(hello, " 50 0 1\n")); /* spool: 50 batches, 0 dropped, restored */
    fprintf(stderr,
            "[ figures ] agent_restart: 50 batches of boot A (32 in flight, 18 unsent) resent "
            "after restart with boot A: received twice=%u, committed once=50; 10 new of boot B; "
            "spool file at end=%" PRIu64 " bytes\n",
            RSRE_STREAM_WINDOW, file_bytes);
    free(recv);
    free(comm);
    h_cleanup(h);
}

static int conflict_resolved(struct h *h) {
    return h->conflicts > 0 && spool_empty(h);
}

static void test_boot_conflict(void **state) {
    (void)state;
    struct h *h = &H;
    h_init(h);
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_A);
    h->extra[h->nextra++] = "--preset";
    h->extra[h->nextra++] = BOOT_A ":1000";
    fake_start(h);
    assert_int_equal(rsre_spool_open(NULL, 1u << 20, 0, &h->spool), 0);
    for (int i = 0; i < 5; i++) {
        produce_one(h);
    }
    stream_open(h, h->boot);
    assert_true(run_until(h, conflict_resolved, 10000));
    assert_int_equal(h->conflicts, 1);
    assert_string_equal(h->conflict_boot, BOOT_A);
    for (int i = 0; i < 5; i++) {
        produce_one(h); /* boot B now, seq 1.. */
    }
    assert_true(run_until(h, spool_empty, 10000));
    h_finish(h);
    struct rec *comm;
    size_t ncomm = read_recs(h, "committed.log", 'C', &comm);
    assert_int_equal(ncomm, 5);
    for (size_t i = 0; i < ncomm; i++) {
        assert_string_equal(comm[i].boot, BOOT_B);
        assert_int_equal(comm[i].seq, i + 1);
    }
    assert_int_equal(count_events(h, "H ", NULL, 0), 2);
    free(comm);
    h_cleanup(h);
}

static int went_down(struct h *h) {
    return h->downs > 0;
}

/* A frozen aggregator (SIGSTOP: the TCP connection stays, nothing answers) is detected by the
 * HTTP/2 keepalive, and the stream comes back once it runs again. */
static void test_keepalive_frozen_peer(void **state) {
    (void)state;
    struct h *h = &H;
    h_init(h);
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_A);
    h->cfg.keepalive_ms = 1000;
    fake_start(h);
    assert_int_equal(rsre_spool_open(NULL, 1u << 20, 0, &h->spool), 0);
    stream_open(h, h->boot);
    produce_one(h);
    assert_true(run_until(h, spool_empty, 10000));
    /* Idle for a few keepalive periods: pings are answered, the stream stays up. */
    run_for(h, 3500);
    assert_int_equal(h->downs, 0);
    uv_process_kill(&h->proc, SIGSTOP);
    uint64_t t0 = mono_now_ms();
    produce_one(h);
    assert_true(run_until(h, went_down, 15000));
    uint64_t detect = mono_now_ms() - t0;
    uv_process_kill(&h->proc, SIGCONT);
    produce_one(h);
    assert_true(run_until(h, spool_empty, 30000));
    uint64_t recover = mono_now_ms() - t0;
    struct rsre_stream_stats ss;
    rsre_stream_stats(h->st, &ss);
    h_finish(h);
    struct rec *comm;
    size_t ncomm = read_recs(h, "committed.log", 'C', &comm);
    assert_int_equal(ncomm, 3);
    free(comm);
    h_cleanup(h);
    fprintf(stderr,
            "[ figures ] keepalive: keepalive_ms=1000, frozen aggregator detected after "
            "%.1fs, stream back and drained %.1fs after the freeze (attempts=%" PRIu64 ")\n",
            (double)detect / 1000.0, (double)recover / 1000.0, ss.attempts);
}

/* ---- the server helper itself (common/grpc_server.h), in process ---------------------------- */

struct srv_state {
    int calls, done, cancelled_done, messages, closed;
    char peer[128];
    int authenticated;
    const char *identity;
};

static int srv_on_call(void *arg, struct rsre_grpc_server_call *c) {
    struct srv_state *ss = arg;
    ss->calls++;
    snprintf(ss->peer, sizeof(ss->peer), "%s", rsre_grpc_server_call_peer(c));
    ss->authenticated = rsre_grpc_server_call_authenticated(c);
    ss->identity = rsre_grpc_server_call_identity(c);
    return 0;
}

/* A minimal aggregator: Ack(boot, 0) for Hello, Ack(boot, seq) for every batch. */
static void srv_on_message(void *arg, struct rsre_grpc_server_call *c, const uint8_t *buf,
                           size_t len) {
    struct srv_state *ss = arg;
    ss->messages++;
    RobotSre__Agent__V1__AgentMessage *m;
    char err[RSRE_PBUF_ERR_LEN];
    assert_int_equal(rsre_pbuf_decode_agent_message(buf, len, 0, &m, err, sizeof(err)), 0);
    RobotSre__Agent__V1__Ack ack = ROBOT_SRE__AGENT__V1__ACK__INIT;
    if (m->body_case == ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_HELLO) {
        ack.boot_id = m->hello->boot_id;
    } else if (m->body_case == ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__BODY_SIGNAL_BATCH) {
        ack.boot_id = m->signal_batch->boot_id;
        ack.committed_seq = m->signal_batch->seq;
    }
    RobotSre__Agent__V1__AggregatorMessage am = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__INIT;
    am.body_case = ROBOT_SRE__AGENT__V1__AGGREGATOR_MESSAGE__BODY_ACK;
    am.ack = &ack;
    if (ack.boot_id) {
        assert_int_equal(rsre_grpc_server_send_msg(c, &am.base), 0);
    }
    rsre_pbuf_free_agent_message(m);
}

static void srv_on_done(void *arg, struct rsre_grpc_server_call *c, int cancelled) {
    struct srv_state *ss = arg;
    (void)c;
    ss->done++;
    ss->cancelled_done += cancelled;
}

static void srv_closed(void *arg) {
    ((struct srv_state *)arg)->closed = 1;
}

struct raw_call {
    struct rsre_grpc_op op;
    int finished;
    grpc_status_code status;
};

static void raw_done(struct rsre_grpc_op *op, int ok) {
    struct raw_call *rc = (struct raw_call *)op;
    (void)ok;
    rc->finished = 1;
}

static struct raw_call *raw_pending;

static int raw_finished(struct h *h) {
    (void)h;
    return raw_pending->finished;
}

static struct srv_state *srv_pending;

static int srv_one_done(struct h *h) {
    return srv_pending->done == 1 && h->downs >= 1;
}

static int srv_is_closed(struct h *h) {
    (void)h;
    return srv_pending->closed;
}

static void test_server_helper(void **state) {
    (void)state;
    struct h *h = &H;
    h_init(h);
    struct srv_state ss;
    memset(&ss, 0, sizeof(ss));
    srv_pending = &ss;
    struct rsre_grpc_server_config cfg = {.addr = "127.0.0.1:0"};
    struct rsre_grpc_server_callbacks cb = {
        .on_call = srv_on_call, .on_message = srv_on_message, .on_done = srv_on_done, .arg = &ss};
    struct rsre_grpc_server *srv;
    assert_int_equal(rsre_grpc_server_create(h->gl, &cfg, &cb, &srv), 0);
    int port = rsre_grpc_server_port(srv);
    assert_true(port > 0);
    /* The port is taken: a second server fails instead of sharing it. */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct rsre_grpc_server_config cfg2 = {.addr = addr};
    struct rsre_grpc_server *srv2 = (void *)1;
    assert_int_equal(rsre_grpc_server_create(h->gl, &cfg2, &cb, &srv2), -EADDRINUSE);
    assert_null(srv2);

    /* Another method: UNIMPLEMENTED, and no callback. */
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, rsre_grpc_loop_cq(h->gl),
                                 grpc_slice_from_static_string("/robot_sre.agent.v1.Other/Method"),
                                 NULL, rsre_grpc_deadline_ms(10000), NULL);
    grpc_metadata_array md_in, md_trail;
    grpc_metadata_array_init(&md_in);
    grpc_metadata_array_init(&md_trail);
    grpc_slice details;
    struct raw_call rc = {.op = {.cb = raw_done}};
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[2].data.recv_initial_metadata.recv_initial_metadata = &md_in;
    ops[3].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[3].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[3].data.recv_status_on_client.status = &rc.status;
    ops[3].data.recv_status_on_client.status_details = &details;
    assert_int_equal(grpc_call_start_batch(call, ops, 4, &rc.op, NULL), GRPC_CALL_OK);
    rsre_grpc_loop_started(h->gl);
    raw_pending = &rc;
    assert_true(run_until(h, raw_finished, 10000));
    assert_int_equal(rc.status, GRPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(ss.calls, 0);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_in);
    grpc_metadata_array_destroy(&md_trail);
    grpc_call_unref(call);
    grpc_channel_destroy(ch);

    /* The agent's stream against it: peer address known, no TLS identity. */
    snprintf(h->cfg.aggregator, sizeof(h->cfg.aggregator), "%s", addr);
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_A);
    assert_int_equal(rsre_spool_open(NULL, 1u << 20, 0, &h->spool), 0);
    stream_open(h, h->boot);
    for (int i = 0; i < 3; i++) {
        produce_one(h);
    }
    assert_true(run_until(h, spool_empty, 10000));
    assert_int_equal(ss.calls, 1);
    assert_int_equal(ss.messages, 4);
    assert_int_equal(strncmp(ss.peer, "ipv4:127.0.0.1:", 15), 0);
    assert_int_equal(ss.authenticated, 0);
    assert_null(ss.identity);
    assert_int_equal(rsre_grpc_server_calls(srv), 1);

    /* Shutdown with the call live: on_done(cancelled), then closed; the stream goes down. */
    rsre_grpc_server_shutdown(srv, srv_closed, &ss);
    assert_true(run_until(h, srv_one_done, 10000));
    assert_int_equal(ss.cancelled_done, 1);
    assert_true(run_until(h, srv_is_closed, 10000));
    h_finish(h);
    h_cleanup(h);
}

/* ---- mTLS ----------------------------------------------------------------------------------- */

static int run_quiet(const char *const *argv) {
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) {
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

/* CA, server certificate for 127.0.0.1, client certificate CN=node-1 (EC P-256). */
static int make_certs(const char *d) {
    char p[24][256];
#define P(i, name) snprintf(p[i], sizeof(p[i]), "%s/%s", d, name)
    P(0, "ca.key"), P(1, "ca.crt"), P(2, "server.key"), P(3, "server.csr"), P(4, "server.crt");
    P(5, "client.key"), P(6, "client.csr"), P(7, "client.crt"), P(8, "server.ext");
    P(9, "client.ext"), P(10, "ca.srl");
#undef P
    write_text(p[8], "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    write_text(p[9], "subjectAltName=DNS:" NODE "\nextendedKeyUsage=clientAuth\n");
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
                        "/CN=rsre-test-ca",
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
        "openssl",   "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",    "-keyout", p[5],      "-out", p[6],       "-subj",
        "/CN=" NODE, NULL};
    const char *csign[] = {"openssl",   "x509",     "-req",   "-in", p[6],
                           "-CA",       p[1],       "-CAkey", p[0],  "-CAcreateserial",
                           "-CAserial", p[10],      "-out",   p[7],  "-days",
                           "2",         "-extfile", p[9],     NULL};
    const char *const *cmds[] = {ca, sreq, ssign, creq, csign};
    for (size_t i = 0; i < 5; i++) {
        if (run_quiet(cmds[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

static int result_committed(struct h *h) {
    return count_events(h, "A req-1 ", NULL, 0) >= 1;
}

static int results_acked(struct h *h) {
    struct rsre_stream_stats ss;
    rsre_stream_stats(h->st, &ss);
    return ss.connected && ss.results_queued == 0;
}

static int refused_committed(struct h *h) {
    return count_events(h, "A req-2 3", NULL, 0) >= 1 && results_acked(h);
}

static void test_mtls_results(void **state) {
    (void)state;
    struct h *h = &H;
    h_init(h);
    char certs[192];
    snprintf(certs, sizeof(certs), "%.127s/certs", H.tmp);
    assert_int_equal(mkdir(certs, 0700), 0);
    if (make_certs(certs) != 0) {
        h_finish(h);
        h_cleanup(h);
        skip(); /* no openssl binary */
    }
    static char ca[256], scrt[256], skey[256];
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    snprintf(scrt, sizeof(scrt), "%s/server.crt", certs);
    snprintf(skey, sizeof(skey), "%s/server.key", certs);
    const char *tls[] = {"--tls-ca", ca, "--tls-cert", scrt, "--tls-key", skey};
    for (int i = 0; i < 6; i++) {
        h->extra[h->nextra++] = tls[i];
    }
    h->extra[h->nextra++] = "--action";
    h->extra[h->nextra++] = "req-1:image.prune_unused";
    h->extra[h->nextra++] = "--hold-result-acks";
    fake_start(h);
    snprintf(h->cfg.tls_ca, sizeof(h->cfg.tls_ca), "%s", ca);

    /* Without a client certificate the handshake is refused: never up. */
    assert_int_equal(rsre_spool_open(NULL, 1u << 20, 0, &h->spool), 0);
    snprintf(h->boot, sizeof(h->boot), "%s", BOOT_A);
    stream_open(h, h->boot);
    run_for(h, 800);
    struct rsre_stream_stats ss;
    rsre_stream_stats(h->st, &ss);
    assert_int_equal(ss.connects, 0);
    assert_true(ss.attempts >= 2);
    assert_int_equal(count_events(h, "H ", NULL, 0), 0);
    stream_close(h);

    /* With it: up, the aggregator sees CN=node-1, the action runs, its result is committed but
     * (held) not acknowledged. */
    snprintf(h->cfg.tls_cert, sizeof(h->cfg.tls_cert), "%s/client.crt", certs);
    snprintf(h->cfg.tls_key, sizeof(h->cfg.tls_key), "%s/client.key", certs);
    stream_open(h, h->boot);
    for (int i = 0; i < 5; i++) {
        produce_one(h);
    }
    assert_true(run_until(h, result_committed, 10000));
    assert_true(run_until(h, spool_empty, 10000));
    assert_int_equal(h->actions, 1);
    assert_string_equal(h->last_action, "req-1");
    assert_true(h->configs >= 1);
    char hello[1024];
    assert_int_equal(count_events(h, "H ", hello, sizeof(hello)), 1);
    assert_non_null(strstr(hello, "H " NODE " " BOOT_A " " NODE " 1 ")); /* CN, peer_is */
    rsre_stream_stats(h->st, &ss);
    assert_int_equal(ss.results_queued, 1);
    uint64_t sent_before = ss.results_sent;

    /* The aggregator restarts (now acknowledging results, and asking for req-2 before its
     * ConfigUpdate): req-1's result is resent and acknowledged; req-2 is refused by the
     * stream itself, without reaching the agent. */
    fake_stop(h, SIGKILL);
    h->nextra = 6;
    h->extra[h->nextra++] = "--action";
    h->extra[h->nextra++] = "req-2:image.prune_unused";
    h->extra[h->nextra++] = "--action-before-config";
    fake_start(h);
    assert_true(run_until(h, refused_committed, 10000));
    rsre_stream_stats(h->st, &ss);
    assert_true(ss.results_sent >= sent_before + 2);
    assert_int_equal(h->actions, 1);
    assert_int_equal(count_events(h, "A req-1 ", NULL, 0), 1); /* deduplicated by request id */
    h_finish(h);
    h_cleanup(h);
    fprintf(stderr,
            "[ figures ] mtls_results: client CN seen by the aggregator=%s, result resent "
            "after restart and acknowledged, early ActionRequest refused\n",
            NODE);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--serve") == 0) {
        return fake_aggregator_main(argc - 1, argv + 1);
    }
    signal(SIGPIPE, SIG_IGN);
    setenv("GRPC_VERBOSITY", "NONE", 0); /* expected TLS handshake failures; override to see */
    rsre_log_set_level_name(getenv("RSRE_LOG_LEVEL") ? getenv("RSRE_LOG_LEVEL") : "error");
    seed_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_restart),          cmocka_unit_test(test_spool_overflow),
        cmocka_unit_test(test_agent_restart),         cmocka_unit_test(test_boot_conflict),
        cmocka_unit_test(test_keepalive_frozen_peer), cmocka_unit_test(test_server_helper),
        cmocka_unit_test(test_mtls_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
