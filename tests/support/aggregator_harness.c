/*
 * Test support: a scripted node agent on gRPC core (blocking completion queue, the agent
 * proto) and the small process/HTTP helpers of the tests that drive the real
 * robot-sre-aggregator binary (test_aggregator_durability.c, test_rules_api.c). Included by
 * those tests (#include "../support/aggregator_harness.c"), not a library.
 *
 * The client opens one stream per node (struct node_log: name, boot id, the highest seq the
 * aggregator acknowledged), says Hello, checks that the Hello's Ack covers every seq
 * acknowledged before (a restart lost nothing), and then streams disk-pressure SignalBatches
 * (DiskPressure=True with its taint, nodefs 97 %, evictions) while pump() runs, at most
 * INFLIGHT unacknowledged per stream. Define MAX_STREAMS before including.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/grpc_loop.h"
#include "common/grpc_server.h"
#include "common/pbuf.h"

#include "port_server.c"
#include "server_http.c"

/* Every helper may go unused in one of the tests that include this file. */
#define HARNESS_FN static __attribute__((unused))
#define A(x) ROBOT_SRE__AGENT__V1__##x
#define M(x) RobotSre__Agent__V1__##x
#define INFLIGHT 16 /* batches sent and not yet acknowledged, per stream */
#define GiB (1024.0 * 1024.0 * 1024.0)

/* What the client was told, per node. */
static struct {
    unsigned long hello_checks, batches_acked;
    uint64_t seed; /* printed in failures */
} SA;

struct node_log {
    char name[64], boot[40];
    uint64_t acked; /* highest committed_seq the aggregator acknowledged */
};

HARNESS_FN int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

HARNESS_FN int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

HARNESS_FN void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

HARNESS_FN void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

HARNESS_FN void sha256_hex(const char *s, char out[65]) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

HARNESS_FN void hex(const uint8_t *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    }
}

HARNESS_FN void log_tail(const char *log, size_t lines) {
    FILE *f = fopen(log, "r");
    if (!f) {
        return;
    }
    static char ring[32][1024];
    size_t n = 0;
    while (fgets(ring[n % 32], sizeof(ring[0]), f)) {
        n++;
    }
    fclose(f);
    fprintf(stderr, "--- last lines of %s\n", log);
    for (size_t i = n > lines ? n - lines : 0; i < n; i++) {
        fputs(ring[i % 32], stderr);
    }
}

HARNESS_FN void agg_log_ports(const char *log, int *grpc, int *api) {
    *grpc = *api = 0;
    FILE *f = fopen(log, "r");
    if (!f) {
        return;
    }
    char line[2048];
    while (fgets(line, sizeof(line), f)) {
        const char *s = strstr(line, "msg=\"started env=");
        const char *p = s ? strstr(s, " port=") : NULL;
        if (p) {
            *grpc = atoi(p + 6);
        }
        if ((s = strstr(line, "msg=\"admin API on ")) && (p = strstr(s, "(port "))) {
            *api = atoi(p + 6);
        }
    }
    fclose(f);
}

/* Starts argv with stdout and stderr appended to `log`; `token` (may be NULL) becomes
 * ROBOT_SRE_TOKEN in the child only. */
HARNESS_FN pid_t spawn_logged(char *const argv[], const char *log, const char *token) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0 && null >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (token) {
            setenv("ROBOT_SRE_TOKEN", token, 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    close(null);
    return pid;
}

/* ---- the scripted agent client (gRPC core, blocking completion queue) ---------------------- */

enum op_kind { OP_INIT, OP_SEND, OP_RECV, OP_STATUS };

struct stream;
struct op {
    struct stream *s;
    enum op_kind kind;
};

struct stream {
    struct node_log *node;
    grpc_call *call;
    struct op o_init, o_send, o_recv, o_status;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    int first_recv, sending, done, pending, hello_acked, pressure;
    uint64_t next_seq;
};

static struct {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    struct stream s[MAX_STREAMS];
    size_t n;
} C;

HARNESS_FN void start_ops(struct stream *s, const grpc_op *ops, size_t n, struct op *tag) {
    assert_int_equal(grpc_call_start_batch(s->call, ops, n, tag, NULL), GRPC_CALL_OK);
    s->pending++;
}

HARNESS_FN void post_recv(struct stream *s) {
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (s->first_recv) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->md_init;
        n++;
        s->first_recv = 0;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &s->recv_bb;
    n++;
    start_ops(s, ops, n, &s->o_recv);
}

HARNESS_FN void send_msg(struct stream *s, const M(AgentMessage) * m) {
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    protobuf_c_message_pack(&m->base, buf);
    s->send_bb = rsre_grpc_bytes(buf, n);
    free(buf);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->send_bb;
    s->sending = 1;
    start_ops(s, &op, 1, &s->o_send);
}

HARNESS_FN void send_hello(struct stream *s) {
    M(Hello) h = ROBOT_SRE__AGENT__V1__HELLO__INIT;
    h.protocol_revision = 1;
    h.node_name = s->node->name;
    h.boot_id = s->node->boot;
    h.agent_version = "durability-0.1";
    h.started_unix_ms = wall_ms();
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = A(AGENT_MESSAGE__BODY_HELLO);
    m.hello = &h;
    send_msg(s, &m);
}

/* A batch as the agent cuts it on a node under disk pressure: nodefs at 97 %, DiskPressure=True
 * with the disk-pressure taint, evictions in the pod-churn window. */
HARNESS_FN void send_batch(struct stream *s) {
    int64_t now = wall_ms();
    M(FilesystemUsage) fs = ROBOT_SRE__AGENT__V1__FILESYSTEM_USAGE__INIT;
    M(EvictionThreshold) thr = ROBOT_SRE__AGENT__V1__EVICTION_THRESHOLD__INIT;
    fs.which = A(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS);
    fs.path = "/var/lib/kubelet";
    fs.bytes_total = (uint64_t)(100 * GiB);
    fs.bytes_avail = (uint64_t)(0.03 * 100 * GiB);
    fs.bytes_free = fs.bytes_avail;
    fs.inodes_total = 1000000;
    fs.inodes_free = 500000;
    thr.percent = 10;
    thr.effective = (uint64_t)(10 * GiB);
    fs.eviction_available = &thr;
    fs.seconds_to_eviction = 0;
    M(NodeCondition) ready = ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT;
    M(NodeCondition) dp = ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT;
    ready.status = A(CONDITION_STATUS__CONDITION_STATUS_TRUE);
    ready.reason = "KubeletReady";
    dp.status = A(CONDITION_STATUS__CONDITION_STATUS_TRUE);
    dp.reason = "KubeletHasDiskPressure";
    M(Taint) taint = ROBOT_SRE__AGENT__V1__TAINT__INIT;
    taint.key = "node.kubernetes.io/disk-pressure";
    taint.effect = A(TAINT_EFFECT__TAINT_EFFECT_NO_SCHEDULE);
    M(Taint) * taints[1] = {&taint};
    M(NodeConditions) cond = ROBOT_SRE__AGENT__V1__NODE_CONDITIONS__INIT;
    cond.ready = &ready;
    cond.disk_pressure = &dp;
    cond.n_taints = 1;
    cond.taints = taints;
    M(PodChurn) pods = ROBOT_SRE__AGENT__V1__POD_CHURN__INIT;
    pods.window_sec = 60;
    pods.running = 20;
    pods.succeeded = 60;
    pods.failed = pods.evicted = pods.evicted_in_window = 2;
    M(Signal) sig[3];
    M(Signal) * sp[3];
    for (int i = 0; i < 3; i++) {
        sig[i] = (M(Signal))ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        sig[i].observed_unix_ms = now - 100;
        sp[i] = &sig[i];
    }
    sig[0].kind_case = A(SIGNAL__KIND_FILESYSTEM);
    sig[0].filesystem = &fs;
    sig[1].kind_case = A(SIGNAL__KIND_NODE_CONDITIONS);
    sig[1].node_conditions = &cond;
    sig[2].kind_case = A(SIGNAL__KIND_POD_CHURN);
    sig[2].pod_churn = &pods;
    M(SignalBatch) b = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    b.boot_id = s->node->boot;
    b.seq = s->next_seq++;
    b.created_unix_ms = now;
    b.n_signals = 3;
    b.signals = sp;
    M(AgentMessage) m = ROBOT_SRE__AGENT__V1__AGENT_MESSAGE__INIT;
    m.body_case = A(AGENT_MESSAGE__BODY_SIGNAL_BATCH);
    m.signal_batch = &b;
    send_msg(s, &m);
}

HARNESS_FN void stream_open(struct stream *s, struct node_log *node) {
    memset(s, 0, sizeof(*s));
    s->node = node;
    s->o_init = (struct op){s, OP_INIT};
    s->o_send = (struct op){s, OP_SEND};
    s->o_recv = (struct op){s, OP_RECV};
    s->o_status = (struct op){s, OP_STATUS};
    grpc_metadata_array_init(&s->md_init);
    grpc_metadata_array_init(&s->md_trail);
    s->details = grpc_empty_slice();
    s->call =
        grpc_channel_create_call(C.ch, NULL, GRPC_PROPAGATE_DEFAULTS, C.cq,
                                 grpc_slice_from_static_string(RSRE_GRPC_AGENT_CONNECT_METHOD),
                                 NULL, rsre_grpc_deadline_ms(120000), NULL);
    assert_non_null(s->call);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    start_ops(s, &op, 1, &s->o_init);
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->md_trail;
    op.data.recv_status_on_client.status = &s->status;
    op.data.recv_status_on_client.status_details = &s->details;
    start_ops(s, &op, 1, &s->o_status);
    s->first_recv = 1;
    post_recv(s);
    send_hello(s);
}

/* An Ack: the Hello's first one must cover every seq acknowledged before (a kill lost none). */
HARNESS_FN void on_message(struct stream *s, const M(AggregatorMessage) * m) {
    if (m->body_case != A(AGGREGATOR_MESSAGE__BODY_ACK) || strcmp(m->ack->boot_id, s->node->boot)) {
        return;
    }
    uint64_t c = m->ack->committed_seq;
    if (!s->hello_acked) {
        s->hello_acked = 1;
        SA.hello_checks++;
        if (c < s->node->acked) {
            fail_msg("node %s: after the restart the aggregator acknowledges seq %" PRIu64
                     " but had acknowledged %" PRIu64 " before the kill (seed %" PRIu64 ")",
                     s->node->name, c, s->node->acked, SA.seed);
        }
        s->next_seq = c + 1;
    }
    if (c > s->node->acked) {
        SA.batches_acked += c - s->node->acked;
        s->node->acked = c;
    }
}

HARNESS_FN void on_event(struct op *o, int ok) {
    struct stream *s = o->s;
    s->pending--;
    switch (o->kind) {
    case OP_INIT:
        break;
    case OP_SEND:
        s->sending = 0;
        grpc_byte_buffer_destroy(s->send_bb);
        s->send_bb = NULL;
        break;
    case OP_RECV:
        if (ok && s->recv_bb) {
            uint8_t *buf;
            size_t len;
            assert_int_equal(rsre_grpc_flatten(s->recv_bb, 4u << 20, &buf, &len), 0);
            grpc_byte_buffer_destroy(s->recv_bb);
            s->recv_bb = NULL;
            M(AggregatorMessage) *m = NULL;
            char err[RSRE_PBUF_ERR_LEN];
            assert_int_equal(rsre_pbuf_decode_aggregator_message(buf, len, 0, &m, err, sizeof(err)),
                             0);
            free(buf);
            on_message(s, m);
            rsre_pbuf_free_aggregator_message(m);
            post_recv(s);
        } else if (s->recv_bb) {
            grpc_byte_buffer_destroy(s->recv_bb);
            s->recv_bb = NULL;
        }
        break;
    case OP_STATUS:
        s->done = 1;
        break;
    }
}

/* Runs the completion queue for up to `ms`, keeping every stream's pipe full. */
HARNESS_FN void pump(int64_t ms) {
    int64_t end = mono_ms() + ms;
    do {
        for (size_t i = 0; i < C.n; i++) {
            struct stream *s = &C.s[i];
            if (s->hello_acked && !s->sending && !s->done &&
                s->next_seq <= s->node->acked + INFLIGHT) {
                send_batch(s);
            }
        }
        grpc_event ev = grpc_completion_queue_next(C.cq, rsre_grpc_deadline_ms(5), NULL);
        while (ev.type == GRPC_OP_COMPLETE) {
            on_event(ev.tag, ev.success);
            ev = grpc_completion_queue_next(C.cq, gpr_time_0(GPR_CLOCK_MONOTONIC), NULL);
        }
    } while (mono_ms() < end);
}

HARNESS_FN int all_hello_acked(void) {
    for (size_t i = 0; i < C.n; i++) {
        if (!C.s[i].hello_acked) {
            return 0;
        }
    }
    return 1;
}

/* Opens one stream per node to 127.0.0.1:port (each says Hello; batches follow once the
 * Hello is acknowledged, see pump). */
HARNESS_FN void client_open_nodes(int port, struct node_log *const *nodes, size_t n) {
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_RETRIES, {.integer = 0}},
    };
    grpc_channel_args cargs = {sizeof(args) / sizeof(args[0]), args};
    C.ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    C.cq = grpc_completion_queue_create_for_next(NULL);
    assert_true(n <= MAX_STREAMS);
    for (size_t i = 0; i < n; i++) {
        stream_open(&C.s[i], nodes[i]);
    }
    C.n = n;
}

/* Cancels every stream and releases the client. */
HARNESS_FN void client_close(void) {
    for (size_t i = 0; i < C.n; i++) {
        grpc_call_cancel(C.s[i].call, NULL);
    }
    int64_t end = mono_ms() + 10000;
    for (;;) {
        int pending = 0;
        for (size_t i = 0; i < C.n; i++) {
            pending += C.s[i].pending;
        }
        if (!pending) {
            break;
        }
        assert_true(mono_ms() < end);
        grpc_event ev = grpc_completion_queue_next(C.cq, rsre_grpc_deadline_ms(50), NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            on_event(ev.tag, ev.success);
        }
    }
    for (size_t i = 0; i < C.n; i++) {
        struct stream *s = &C.s[i];
        grpc_call_unref(s->call);
        grpc_slice_unref(s->details);
        grpc_metadata_array_destroy(&s->md_init);
        grpc_metadata_array_destroy(&s->md_trail);
    }
    C.n = 0;
    grpc_channel_destroy(C.ch);
    grpc_completion_queue_shutdown(C.cq);
    while (grpc_completion_queue_next(C.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(C.cq);
}

/* One request to the admin API on 127.0.0.1:port (token NULL: no Authorization header); the
 * decoded answer (NULL on a transport error or a body that is not JSON) and the status. */
HARNESS_FN json_t *api(int port, const char *method, const char *path, const char *body,
                       const char *token, long *status) {
    CURL *e = curl_easy_init();
    if (!e) {
        return NULL;
    }
    char url[512], auth[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    struct server_http_buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (token) {
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, server_http_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* path tricks reach the server as written */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    CURLcode cc = curl_easy_perform(e);
    *status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    json_t *j = cc == CURLE_OK && b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
    free(b.p);
    return j;
}

/* Starts a test server of tests/support (port_server.c) with stderr appended to `log`; fails
 * the test when it does not print its port within 15 s. Returns its pid, *port set. */
HARNESS_FN pid_t harness_start_py(char *const argv[], const char *log, int *port) {
    struct port_server_opts o = {.log = log, .timeout_ms = 15000};
    pid_t pid;
    if ((*port = port_server_start(argv, &o, &pid)) < 0) {
        fail_msg("%s did not start (see %s)", argv[1], log);
    }
    return pid;
}

/* ---- the daemon under test ------------------------------------------------------------------ */

/* A robot-sre-aggregator started by a test: pid (0 when not running), ports, log file. */
struct harness_daemon {
    pid_t pid;
    int grpc_port, api_port;
    char log[192];
};

/*
 * Starts `argv` (argv[0] the aggregator binary; it must listen on port 0 or a fixed port and
 * log both ports) with its output appended to `log`, and waits up to 30 s until both ports are
 * logged. Fails the test, with the log's tail, when it exits or does not start.
 */
HARNESS_FN void harness_agg_start(struct harness_daemon *d, char *const argv[], const char *log) {
    snprintf(d->log, sizeof(d->log), "%s", log);
    d->grpc_port = d->api_port = 0;
    d->pid = spawn_logged(argv, d->log, NULL);
    int64_t end = mono_ms() + 30000;
    while (agg_log_ports(d->log, &d->grpc_port, &d->api_port), !d->grpc_port || !d->api_port) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            log_tail(d->log, 20);
            fail_msg("the aggregator exited at start (status 0x%x, see %s)", st, d->log);
        }
        if (mono_ms() > end) {
            log_tail(d->log, 20);
            fail_msg("the aggregator did not start (see %s)", d->log);
        }
        sleep_ms(10);
    }
}

/* SIGTERM: the daemon must exit with status 0 within 20 s (ASan's leak check included). */
HARNESS_FN void harness_agg_stop(struct harness_daemon *d) {
    assert_true(d->pid > 0);
    kill(d->pid, SIGTERM);
    int st = 0;
    int64_t end = mono_ms() + 20000;
    while (waitpid(d->pid, &st, WNOHANG) != d->pid) {
        if (mono_ms() > end) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            d->pid = 0;
            fail_msg("the aggregator did not stop on SIGTERM (see %s)", d->log);
        }
        sleep_ms(10);
    }
    d->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        log_tail(d->log, 20);
        fail_msg("the aggregator exited with status 0x%x after SIGTERM (see %s)", st, d->log);
    }
}

/* SIGKILL (no-op when not running). */
HARNESS_FN void harness_agg_kill(struct harness_daemon *d) {
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
}

/* An admin API identity: the token's SHA-256 goes to the token file. */
struct harness_token {
    const char *op, *role, *token;
};

/* Writes the admin API token file (docs/api.md) for `n` identities. */
HARNESS_FN void harness_write_tokens(const char *path, const struct harness_token *t, size_t n) {
    char text[4096] = "tokens:\n", hexs[65];
    for (size_t i = 0; i < n; i++) {
        sha256_hex(t[i].token, hexs);
        size_t len = strlen(text);
        snprintf(text + len, sizeof(text) - len, "  - operator: %s\n    role: %s\n    sha256: %s\n",
                 t[i].op, t[i].role, hexs);
    }
    write_file(path, text);
}

HARNESS_FN int harness_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a test's temp dir, or keeps it (and says where) when RSRE_TEST_KEEP is set. */
HARNESS_FN void harness_remove_dir(const char *dir) {
    if (getenv("RSRE_TEST_KEEP")) {
        fprintf(stderr, "kept %s\n", dir);
    } else {
        nftw(dir, harness_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}
