/*
 * End-to-end test of the aggregator daemon with the real node agent, over real gRPC: the
 * issue's disk-pressure scenario, once in demo mode and once in production mode.
 *
 * Processes, each started per scenario in a temp dir on 127.0.0.1:
 *   - tests/support/kube_api_server.py: the Kubernetes API. It serves Node 10.0.10.21 with
 *     DiskPressure=True (lastTransitionTime a minute ago) and the taint
 *     node.kubernetes.io/disk-pressure:NoSchedule, and pods: on that node a Succeeded Job pod,
 *     an Evicted (Failed) pod, a Failed Job pod and a Running pod; on node 10.0.10.22 a
 *     Succeeded pod. Its request log shows every DELETE and PATCH it got.
 *   - BUILD/aggregator/daemon/robot-sre-aggregator: --listen and --api_listen 127.0.0.1:0 (the
 *     ports read from its log), --tick_ms 1000, the store in the temp dir, --kube_api to the
 *     Python server (its Kubernetes executor), a token file (alice and bob approvers, victor a
 *     viewer, and a token naming robot-sre, the requester) and an operators file;
 *   - BUILD/agent/robot-sre-agent (--node_name 10.0.10.21, --kube_api to the Python server, a
 *     CRI socket that does not exist, temp kubelet/runtime roots, --batch_flush_ms 1000).
 * The store is read (read-only, in its own read transactions) while the aggregator runs, and
 * after it stopped. Votes go through the admin API over HTTP.
 *
 * demo:
 *   open      one incident node_disk_pressure/node=10.0.10.21: severity warning, confidence high
 *             (condition + taint: two corroborating sources at the first check, docs/incidents.md),
 *             every field of the evidence schema filled (incident_type, severity, confidence,
 *             signal_sources, resource_scope, environment, evidence_summary, raw_evidence_refs
 *             that resolve to Evidence records, recommended_actions, executed_actions,
 *             approval_state), audited incident.open.
 *   cleanup   delete_finished_pods is decided auto and run by the agent exactly once: its
 *             ActionRecord succeeds with 3 objects removed; the API server got exactly 3 DELETEs
 *             (the Succeeded, Evicted and Failed pods of the node), the Running pod and the other
 *             node's Succeeded pod are still there; the incident is contained.
 *   cooldown  over 5 more observation ticks (and signal batches) no second execution: still one
 *             auto delete_finished_pods record, 3 DELETEs, one result on the agent's record in
 *             the store; the plan's standing record is REFUSED naming the cooldown and its end;
 *             the cooldown record runs ~900 s from the run.
 *   approval  cordon_node has a pending Approval by robot-sre with the six prompt parts (action,
 *             target, why now, expected impact, rollback/next fallback, expiry) and an
 *             AWAITING_APPROVAL ActionRecord, and no PATCH reached the API server; disruptive
 *             actions are not requested (the incident is not critical) and
 *             delete_persistent_data is human-only (recommended, never run).
 *   votes     the requester's identity (a token naming robot-sre) and a viewer are refused (403)
 *             and the approval stays pending without votes; alice (an approver, not the
 *             requester) approves: the engine re-checks and the Kubernetes executor cordons the
 *             node (exactly one PATCH, spec.unschedulable true on the API server), the record
 *             succeeds with the approval id, the incident is recovering; bob's later vote on the
 *             decided approval is refused (409).
 *   clear     the Node's DiskPressure goes False and the taint goes away: for the next 4 ticks
 *             the incident stays open (the 600 s exit window is not cut short).
 *   resolve   the exit window itself: the aggregator is stopped (SIGTERM, exit 0) and started
 *             again on the same store and port with its wall clock running SPEEDUP times faster
 *             (libfaketime preloaded; CLOCK_MONOTONIC untouched, so its 1 s tick stays 1 s of
 *             real time and is 40 s of its time; --agent_silence_ms raised to match). The
 *             restarted engine picks the incident up from the store, the agent reconnects, and
 *             the incident resolves through exit_criteria_met only after the exit criteria held
 *             for the 600 s window (audit reason); nothing was deleted or patched again.
 *             Skipped, with a message, when libfaketime is not installed (Debian package
 *             faketime).
 *   end       SIGTERM agent and aggregator: both exit 0; the audit chain verifies.
 *
 * production (with libfaketime the aggregator's clock runs SPEEDUP times faster from the start):
 *   the same pressure on a fresh store: the incident opens (warning, high, environment
 *   production); delete_finished_pods and cordon_node get pending Approvals; nobody answers:
 *   they expire after 10 min, the incident escalates, and alice's late approval is refused
 *   (409); the pressure outlasts 10 min: severity critical, and reboot_worker is requested with
 *   a quorum of 2. Throughout, only observe/notify actions were decided auto, no DELETE or
 *   PATCH reached the API server, and the agent never ran an action; both daemons exit 0 and
 *   the audit chain verifies. Without libfaketime: five ticks in real time, no expiry.
 *
 * Not reachable through the daemon: an operator approving their own request (the engine is
 * the only requester; the approvals module's unit test covers it) and an approved OCI reboot
 * (no OCI executor in the daemon yet).
 *
 * RSRE_TEST_KEEP=1 keeps the temp dir (logs, store); RSRE_TEST_LOG=debug runs the daemons at
 * debug level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/error.h"
#include "store/store.h"

#include "../support/proc.c"
#include "../support/server_http.c"

#define NODE "10.0.10.21"
#define AGGREGATOR RSRE_BINARY_DIR "/aggregator/daemon/robot-sre-aggregator"
#define AGENT RSRE_BINARY_DIR "/agent/robot-sre-agent"
#define KUBE_SERVER RSRE_SOURCE_DIR "/tests/support/kube_api_server.py"
#define PYTHON "/usr/bin/python3"
#define SPEEDUP 40        /* the restarted aggregator's clock runs this much faster */
#define WAIT_MS 30000     /* longest wait for anything the daemons should do promptly */
#define STOP_MS 20000     /* a daemon must exit this soon after SIGTERM (ASan is slow) */
#define EXIT_WINDOW_S 600 /* node_disk_pressure's exit window (taxonomy.yaml) */
#define CONTAIN_COOLDOWN_S 900

#define S(x) ROBOT_SRE__STORE__##x
#define DEC(x) ROBOT_SRE__STORE__DECISION__DECISION_##x
#define AST(x) ROBOT_SRE__STORE__ACTION_STATE__ACTION_STATE_##x
#define APS(x) ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_##x
#define LC(x) ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_##x

/* The finished pods of NODE (deleted by the cleanup) and the pods that must stay. */
static const char *const finished_pods[] = {
    "batch/nightly-report-28573920-7kq2m", /* Succeeded */
    "shop/web-7d4b9c8f6d-9fzlw",           /* Failed, reason Evicted */
    "batch/nightly-report-28573920-f41lq", /* Failed */
};
static const char *const kept_pods[] = {
    "shop/web-7d4b9c8f6d-x2kqp",           /* Running on NODE */
    "batch/nightly-report-28573920-2xcvb", /* Succeeded on the other node */
};
#define NFINISHED (sizeof(finished_pods) / sizeof(finished_pods[0]))

/* Admin API identities: tokens (their SHA-256 in tokens.yaml) and the operators registry. */
#define TOKEN_ALICE "e2e-token-alice-approver"
#define TOKEN_BOB "e2e-token-bob-approver"
#define TOKEN_ROBOT "e2e-token-robot-sre" /* a token naming the requester, robot-sre */
#define TOKEN_VICTOR "e2e-token-victor-viewer"

static struct fx {
    char dir[64], store[128], kubelet[128], runtime[128], podlogs[128];
    char kube_log[128], agent_log[128], agg_log[128], tokens[128], operators[128];
    pid_t kube_pid, agg_pid, agent_pid;
    int kube_port, agg_port, api_port, agg_runs;
    char kube_base[64], api_base[64];
} F;

/* ---- small helpers ------------------------------------------------------------------------ */

static void rfc3339(int64_t ms, char *buf, size_t cap) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *faketime_lib(void) {
    static const char *const paths[] = {
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], R_OK) == 0) {
            return paths[i];
        }
    }
    return NULL;
}

/* ---- processes ---------------------------------------------------------------------------- */

/* SIGTERM; the process must exit 0 within STOP_MS. */
static void stop(pid_t *pid, const char *what, const char *log) {
    assert_true(*pid > 0);
    int st = 0;
    kill(*pid, SIGTERM);
    if (!wait_exit(*pid, STOP_MS, &st)) {
        kill_wait(pid);
        fail_msg("%s did not exit within %d ms of SIGTERM (see %s)", what, STOP_MS, log);
    }
    *pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("%s: exit status %d signal %d after SIGTERM (see %s)", what,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0, log);
    }
}

/* Copies the last lines of a log to stderr (the temp dir is removed after the test). */
static void log_tail(const char *log, size_t lines) {
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
    lines = lines > 32 ? 32 : lines;
    fprintf(stderr, "--- last lines of %s\n", log);
    for (size_t i = n > lines ? n - lines : 0; i < n; i++) {
        fputs(ring[i % 32], stderr);
    }
}

/* Fails the test when a daemon died on its own. */
static void check_alive(void) {
    int st;
    if (F.agg_pid > 0 && waitpid(F.agg_pid, &st, WNOHANG) == F.agg_pid) {
        F.agg_pid = 0;
        log_tail(F.agg_log, 20);
        fail_msg("the aggregator exited (status 0x%x, see %s)", st, F.agg_log);
    }
    if (F.agent_pid > 0 && waitpid(F.agent_pid, &st, WNOHANG) == F.agent_pid) {
        F.agent_pid = 0;
        log_tail(F.agent_log, 20);
        fail_msg("the agent exited (status 0x%x, see %s)", st, F.agent_log);
    }
}

static void start_kube(void) {
    snprintf(F.kube_base, sizeof(F.kube_base), "-");
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    char *argv[] = {PYTHON, KUBE_SERVER, "--port", "0", "--bookmark-interval", "1", NULL};
    F.kube_pid = spawn(argv, F.kube_log, p[1], NULL);
    close(p[1]);
    if ((F.kube_port = port_line_read(p[0], 10000)) < 0) {
        fail_msg("the Kubernetes API test server did not start (see %s)", F.kube_log);
    }
    snprintf(F.kube_base, sizeof(F.kube_base), "http://127.0.0.1:%d", F.kube_port);
}

/* The ports of the aggregator's "admin API on ... (port N)" and "started ... port=N" lines;
 * 0 until it logged them. */
static void agg_log_ports(const char *log, int *grpc, int *api) {
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

/*
 * Starts the aggregator in `env` on `port` (0: any) with its own log file per run. With
 * `speedup` > 1 its wall clock runs that many times faster (libfaketime must exist).
 */
static void start_aggregator(const char *env, int port, int speedup, const char *const *more) {
    char a[24][600];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--listen=127.0.0.1:%d", port);
    ARG("--env=%s", env);
    ARG("--data_dir=%s", F.store);
    ARG("--cluster=e2e");
    ARG("--tick_ms=1000");
    ARG("--kube_api=%s", F.kube_base); /* the Kubernetes executor (cordon, once approved) */
    ARG("--api_listen=127.0.0.1:0");
    ARG("--api_tokens_file=%s", F.tokens);
    ARG("--operators_file=%s", F.operators);
    ARG("--log_level=%s", getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "info");
    for (size_t i = 0; more && more[i]; i++) {
        ARG("%s", more[i]);
    }
#undef ARG
    char *argv[26] = {AGGREGATOR};
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    F.agg_runs++;
    snprintf(F.agg_log, sizeof(F.agg_log), "%s/aggregator-%d.log", F.dir, F.agg_runs);
    static char preload[256], faketime[64];
    const char *fake_env[] = {preload, faketime, "FAKETIME_DONT_FAKE_MONOTONIC=1",
                              /* libfaketime comes before the sanitizer runtime */
                              "ASAN_OPTIONS=verify_asan_link_order=0", NULL};
    if (speedup > 1) {
        const char *lib = faketime_lib();
        assert_non_null(lib);
        snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib);
        snprintf(faketime, sizeof(faketime), "FAKETIME=+0 x%d", speedup);
    }
    F.agg_pid = spawn(argv, F.agg_log, -1, speedup > 1 ? fake_env : NULL);
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        agg_log_ports(F.agg_log, &F.agg_port, &F.api_port);
        if (F.agg_port > 0 && F.api_port > 0) {
            break;
        }
        check_alive();
        if (mono_ms() > end) {
            fail_msg("the aggregator did not start (see %s)", F.agg_log);
        }
        sleep_ms(20);
    }
    snprintf(F.api_base, sizeof(F.api_base), "http://127.0.0.1:%d", F.api_port);
}

static void start_agent(void) {
    char a[32][600];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--node_name=%s", NODE);
    ARG("--aggregator=127.0.0.1:%d", F.agg_port);
    ARG("--kube_api=%s", F.kube_base);
    ARG("--cri_socket=unix://%s/no-such-containerd.sock", F.dir);
    ARG("--kubelet_root=%s", F.kubelet);
    ARG("--runtime_root=%s", F.runtime);
    ARG("--kubelet_config=%s/no-such-kubelet-config.yaml", F.dir);
    ARG("--pod_log_dir=%s", F.podlogs);
    ARG("--kmsg_path=");   /* the host's kernel log is not part of this scenario */
    ARG("--health_addr="); /* off: no fixed port */
    ARG("--log_level=%s", getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "info");
    ARG("--filesystem_ms=1000");
    ARG("--psi_ms=2000");
    ARG("--kube_resync_ms=10000");
    ARG("--batch_flush_ms=1000");
    ARG("--reconnect_min_ms=100");
    ARG("--reconnect_max_ms=1000");
#undef ARG
    char *argv[34] = {AGENT};
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    F.agent_pid = spawn(argv, F.agent_log, -1, NULL);
}

/* ---- the Kubernetes API test server ------------------------------------------------------- */

/* One HTTP request to base+path (with a bearer token when `token` is set); returns the decoded
 * answer (caller json_decref's it) and the HTTP status in *status. */
static json_t *http(const char *base, const char *method, const char *path, const char *body,
                    const char *token, long *status) {
    char *b;
    CURLcode cc = server_http(base, method, path, body, token, status, &b);
    if (cc != CURLE_OK) {
        free(b);
        fail_msg("%s %s%s: curl error %d", method, base, path, (int)cc);
    }
    json_t *j = json_loads(b ? b : "null", JSON_DECODE_ANY, NULL);
    free(b);
    return j;
}

static json_t *kube(const char *method, const char *path, const char *body, long *status) {
    return http(F.kube_base, method, path, body, NULL, status);
}

/* A vote through the admin API; returns the answer's "state" (static) and the status. */
static const char *vote(const char *token, const char *approval, int approve, long *status) {
    static char state[32];
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/approvals/%s/%s", approval, approve ? "approve" : "deny");
    json_t *j = http(F.api_base, "POST", path, "{\"comment\": \"e2e\"}", token, status);
    const char *st = json_string_value(json_object_get(j, "state"));
    snprintf(state, sizeof(state), "%s", st ? st : "");
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    fprintf(stderr, "vote %s on %s: %ld %s\n", approve ? "approve" : "deny", approval, *status,
            text ? text : "(no JSON)");
    free(text);
    json_decref(j);
    return state;
}

static void kube_ok(const char *method, const char *path, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    long status;
    json_decref(kube(method, path, text, &status));
    free(text);
    if (status != 200) {
        fail_msg("%s %s: status %ld", method, path, status);
    }
}

static json_t *fixture(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), "%s/kube/%s", RSRE_TEST_DATA, name);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) {
        fail_msg("%s: %s", path, err.text);
    }
    return j;
}

/* Stores Node NODE: in disk pressure (the condition since a minute ago, and the taint) or not.
 * Starts from the server's current Node, so what others wrote (spec.unschedulable) stays. */
static void put_node(int pressure) {
    long status;
    json_t *n = kube("GET", "/api/v1/nodes/" NODE, NULL, &status);
    if (status != 200) {
        json_decref(n);
        n = fixture("node-disk-pressure.json");
    }
    char now[32], before[32];
    int64_t t = wall_ms();
    rfc3339(t, now, sizeof(now));
    rfc3339(t - 60000, before, sizeof(before));
    json_t *conds = json_object_get(json_object_get(n, "status"), "conditions");
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) {
        json_object_set_new(c, "lastHeartbeatTime", json_string(now));
        if (strcmp(json_string_value(json_object_get(c, "type")), "DiskPressure") == 0) {
            json_object_set_new(c, "status", json_string(pressure ? "True" : "False"));
            json_object_set_new(
                c, "reason",
                json_string(pressure ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure"));
            json_object_set_new(c, "message",
                                json_string(pressure ? "kubelet has disk pressure"
                                                     : "kubelet has no disk pressure"));
            json_object_set_new(c, "lastTransitionTime", json_string(pressure ? before : now));
        }
    }
    json_t *spec = json_object_get(n, "spec");
    json_t *taints = json_array();
    if (pressure) {
        json_array_append_new(taints, json_pack("{s:s, s:s, s:s}", "key",
                                                "node.kubernetes.io/disk-pressure", "effect",
                                                "NoSchedule", "timeAdded", before));
    }
    json_object_set_new(spec, "taints", taints);
    kube_ok("POST", "/_test/objects", n);
    json_decref(n);
}

static void put_pods(void) {
    json_t *list = json_array();
    json_array_append_new(list, fixture("pod-succeeded.json"));
    json_array_append_new(list, fixture("pod-evicted.json"));
    json_array_append_new(list, fixture("pod-running.json"));
    json_array_append_new(list, fixture("pod-other-node-succeeded.json"));
    /* A Job pod whose container failed: Failed, not evicted. */
    json_t *failed = fixture("pod-succeeded.json");
    json_t *md = json_object_get(failed, "metadata");
    json_object_set_new(md, "name", json_string("nightly-report-28573920-f41lq"));
    json_object_del(md, "uid");
    json_object_set_new(json_object_get(failed, "status"), "phase", json_string("Failed"));
    json_array_append_new(list, failed);
    kube_ok("POST", "/_test/objects", list);
    json_decref(list);
}

/* 1 when pod "ns/name" exists on the server. */
static int pod_exists(const char *nsname) {
    char ns[64], path[256];
    const char *slash = strchr(nsname, '/');
    assert_non_null(slash);
    snprintf(ns, sizeof(ns), "%.*s", (int)(slash - nsname), nsname);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, slash + 1);
    long status;
    json_decref(kube("GET", path, NULL, &status));
    if (status != 200 && status != 404) {
        fail_msg("GET %s: status %ld", path, status);
    }
    return status == 200;
}

/* Requests the server recorded with this method whose path starts with `prefix`. */
static size_t count_requests(const char *method, const char *prefix) {
    long status;
    json_t *r = kube("GET", "/_test/requests", NULL, &status);
    assert_int_equal(status, 200);
    size_t n = 0, i;
    json_t *it;
    json_array_foreach(r, i, it) {
        const char *m = json_string_value(json_object_get(it, "method"));
        const char *p = json_string_value(json_object_get(it, "path"));
        if (m && p && strcmp(m, method) == 0 && strncmp(p, prefix, strlen(prefix)) == 0) {
            n++;
        }
    }
    json_decref(r);
    return n;
}

/* ---- the store, read while the aggregator runs -------------------------------------------- */

struct act {
    char id[RSRE_STORE_ID_MAX + 1], action[64], cls[32], target[256],
        approval[RSRE_STORE_ID_MAX + 1];
    char result[512];
    char cooldown_reason[512]; /* the first reason that mentions a cooldown, or "" */
    int decision, state;
    uint64_t objects_removed;
};

#define MAX_ACTS 64
#define MAX_APRS 16

struct snap {
    size_t nincidents;
    rsre_store_incident *inc; /* the disk-pressure incident of NODE, or NULL */
    struct act acts[MAX_ACTS];
    size_t nacts;
    rsre_store_approval *apr[MAX_APRS];
    size_t napr;
    size_t agent_results; /* action results the ingest committed for NODE */
    char agent_result_ids[8][RSRE_STORE_ID_MAX + 1];
};

static void snap_free(struct snap *s) {
    rsre_store_incident_free(s->inc);
    for (size_t i = 0; i < s->napr; i++) {
        rsre_store_approval_free(s->apr[i]);
    }
    memset(s, 0, sizeof(*s));
}

struct inc_scan {
    size_t n;
    char id[RSRE_STORE_ID_MAX + 1];
};

static int inc_cb(const rsre_store_incident *rec, void *ud) {
    struct inc_scan *sc = ud;
    sc->n++;
    if (strcmp(rec->fingerprint, "node_disk_pressure/node=" NODE) == 0) {
        snprintf(sc->id, sizeof(sc->id), "%s", rec->id); /* the last one (ids grow) */
    }
    return 0;
}

static int act_cb(const rsre_store_action *rec, void *ud) {
    struct snap *s = ud;
    if (s->nacts >= MAX_ACTS) {
        return -ENOSPC;
    }
    struct act *a = &s->acts[s->nacts++];
    snprintf(a->id, sizeof(a->id), "%s", rec->id);
    snprintf(a->action, sizeof(a->action), "%s", rec->action_id);
    snprintf(a->cls, sizeof(a->cls), "%s", rec->action_class);
    snprintf(a->target, sizeof(a->target), "%s", rec->target);
    snprintf(a->approval, sizeof(a->approval), "%s", rec->approval_id);
    snprintf(a->result, sizeof(a->result), "%s", rec->result);
    a->decision = (int)rec->decision;
    a->state = (int)rec->state;
    a->objects_removed = rec->objects_removed;
    for (size_t i = 0; i < rec->n_reasons; i++) {
        if (strstr(rec->reasons[i], "cooldown")) {
            snprintf(a->cooldown_reason, sizeof(a->cooldown_reason), "%s", rec->reasons[i]);
            break;
        }
    }
    return 0;
}

struct apr_scan {
    size_t n;
    char ids[MAX_APRS][RSRE_STORE_ID_MAX + 1];
};

static int apr_cb(const rsre_store_approval *rec, void *ud) {
    struct apr_scan *sc = ud;
    if (sc->n >= MAX_APRS) {
        return -ENOSPC;
    }
    snprintf(sc->ids[sc->n++], sizeof(sc->ids[0]), "%s", rec->id);
    return 0;
}

static rsre_store *store_open_ro(void) {
    struct rsre_store_options o = {.read_only = 1};
    rsre_store *st = NULL;
    return rsre_store_open(F.store, &o, &st) == 0 ? st : NULL;
}

/* Reads what the store holds now into *s (one read transaction). 0, or an error. */
static int snap_take(struct snap *s) {
    memset(s, 0, sizeof(*s));
    rsre_store *st = store_open_ro();
    if (!st) {
        return RSRE_ENOTFOUND;
    }
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(st, 1, &txn);
    if (rc) {
        rsre_store_close(st);
        return rc;
    }
    struct inc_scan isc = {0};
    struct apr_scan asc = {0};
    rsre_store_agent *ag = NULL;
    if ((rc = rsre_store_incident_foreach(txn, inc_cb, &isc)) ||
        (rc = rsre_store_action_foreach(txn, NULL, act_cb, s)) ||
        (rc = rsre_store_approval_foreach(txn, apr_cb, &asc))) {
        goto out;
    }
    s->nincidents = isc.n;
    if (isc.id[0] && (rc = rsre_store_incident_get(txn, isc.id, &s->inc))) {
        goto out;
    }
    for (size_t i = 0; i < asc.n; i++) {
        if ((rc = rsre_store_approval_get(txn, asc.ids[i], &s->apr[s->napr]))) {
            goto out;
        }
        s->napr++;
    }
    rc = rsre_store_agent_get(txn, NODE, &ag);
    if (rc == 0) {
        s->agent_results = ag->n_results;
        for (size_t i = 0; i < ag->n_results && i < 8; i++) {
            snprintf(s->agent_result_ids[i], sizeof(s->agent_result_ids[0]), "%s",
                     ag->results[i]->request_id);
        }
        rsre_store_agent_free(ag);
    } else if (rc == RSRE_ENOTFOUND) {
        rc = 0;
    }
out:
    rsre_store_txn_abort(txn);
    rsre_store_close(st);
    if (rc) {
        snap_free(s);
    }
    return rc;
}

/* Polls the store until pred holds (*s then holds the snapshot that satisfied it). */
static void wait_snap(int (*pred)(const struct snap *), const char *what, int64_t timeout_ms,
                      struct snap *s) {
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        check_alive();
        if (snap_take(s) == 0) {
            if (pred(s)) {
                return;
            }
            snap_free(s);
        }
        if (mono_ms() > end) {
            log_tail(F.agg_log, 10);
            log_tail(F.agent_log, 10);
            fail_msg("timed out waiting for: %s (logs: %s, %s)", what, F.agg_log, F.agent_log);
        }
        sleep_ms(200);
    }
}

static const struct act *find_act(const struct snap *s, const char *action, int state) {
    for (size_t i = 0; i < s->nacts; i++) {
        if (strcmp(s->acts[i].action, action) == 0 && (state < 0 || s->acts[i].state == state)) {
            return &s->acts[i];
        }
    }
    return NULL;
}

/* Records of `action` that the engine decided to run (auto, not a standing record). */
static size_t count_runs(const struct snap *s, const char *action) {
    size_t n = 0;
    for (size_t i = 0; i < s->nacts; i++) {
        n += strcmp(s->acts[i].action, action) == 0 && s->acts[i].decision == DEC(AUTO) &&
             s->acts[i].state != AST(SKIPPED);
    }
    return n;
}

static const rsre_store_approval *find_apr(const struct snap *s, const char *action) {
    for (size_t i = 0; i < s->napr; i++) {
        if (strcmp(s->apr[i]->action, action) == 0) {
            return s->apr[i];
        }
    }
    return NULL;
}

static int has_str(char **v, size_t n, const char *want) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], want) == 0) {
            return 1;
        }
    }
    return 0;
}

static void dump_snap(const struct snap *s) {
    fprintf(stderr, "store: %zu incidents, %zu action records, %zu approvals\n", s->nincidents,
            s->nacts, s->napr);
    if (s->inc) {
        fprintf(stderr, "  %s %s severity=%d confidence=%d lifecycle=%d approval_state=%d\n",
                s->inc->id, s->inc->fingerprint, (int)s->inc->severity, (int)s->inc->confidence,
                (int)s->inc->lifecycle, (int)s->inc->approval_state);
        fprintf(stderr, "  summary: %s\n", s->inc->evidence_summary);
    }
    for (size_t i = 0; i < s->nacts; i++) {
        const struct act *a = &s->acts[i];
        fprintf(stderr, "  %-36s %-28s %-10s target=%s decision=%d state=%d result=%.120s\n", a->id,
                a->action, a->cls, a->target, a->decision, a->state, a->result);
    }
    for (size_t i = 0; i < s->napr; i++) {
        fprintf(stderr, "  %s %s target=%s state=%d quorum=%u\n", s->apr[i]->id, s->apr[i]->action,
                s->apr[i]->target, (int)s->apr[i]->state, s->apr[i]->quorum);
    }
}

/* Audit records with `verb` whose reason or detail contains `needle` (NULL: any). */
struct audit_q {
    const char *verb, *needle;
    size_t n;
};

static int audit_cb(const rsre_store_audit *rec, void *ud) {
    struct audit_q *q = ud;
    if (strcmp(rec->verb, q->verb) == 0 &&
        (!q->needle || strstr(rec->reason, q->needle) || strstr(rec->detail, q->needle))) {
        q->n++;
    }
    return 0;
}

static size_t audit_count(const char *verb, const char *needle) {
    rsre_store *st = store_open_ro();
    assert_non_null(st);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(st, 1, &txn), 0);
    struct audit_q q = {verb, needle, 0};
    assert_int_equal(rsre_store_audit_foreach(txn, 1, audit_cb, &q), 0);
    rsre_store_txn_abort(txn);
    rsre_store_close(st);
    return q.n;
}

static void verify_audit(void) {
    rsre_store *st = store_open_ro();
    assert_non_null(st);
    struct rsre_store_audit_report rep;
    int rc = rsre_store_audit_verify(st, &rep);
    rsre_store_close(st);
    if (rc) {
        fail_msg("audit chain: %s at seq %llu: %s", rsre_strerror(rc),
                 (unsigned long long)rep.broken_seq, rep.reason);
    }
    assert_true(rep.count > 0);
    fprintf(stderr, "audit chain verified: %llu records\n", (unsigned long long)rep.count);
}

/* Every raw_evidence_refs id names an Evidence record of the incident with source and kind. */
static void check_evidence_refs(const rsre_store_incident *inc) {
    rsre_store *st = store_open_ro();
    assert_non_null(st);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(st, 1, &txn), 0);
    for (size_t i = 0; i < inc->n_raw_evidence_refs; i++) {
        rsre_store_evidence *ev = NULL;
        int rc = rsre_store_evidence_get(txn, inc->id, inc->raw_evidence_refs[i], &ev);
        if (rc) {
            fail_msg("evidence %s of %s: %s", inc->raw_evidence_refs[i], inc->id,
                     rsre_strerror(rc));
        }
        assert_true(ev->source[0] && ev->kind[0] && ev->summary[0]);
        assert_true(ev->observed_at_ms > 0);
        rsre_store_evidence_free(ev);
    }
    rsre_store_txn_abort(txn);
    rsre_store_close(st);
}

/* ---- predicates --------------------------------------------------------------------------- */

static int p_incident_open(const struct snap *s) {
    return s->inc && s->inc->lifecycle != LC(OBSERVED) && s->inc->confidence != 0;
}

static int p_cleanup_done(const struct snap *s) {
    const struct act *a = find_act(s, "delete_finished_pods", AST(SUCCEEDED));
    return a && s->inc && has_str(s->inc->executed_actions, s->inc->n_executed_actions, a->id);
}

static int p_cleanup_finished(const struct snap *s) {
    return find_act(s, "delete_finished_pods", AST(SUCCEEDED)) ||
           find_act(s, "delete_finished_pods", AST(FAILED));
}

static int p_cordon_requested(const struct snap *s) {
    const rsre_store_approval *a = find_apr(s, "cordon_node");
    return a && a->state == APS(PENDING);
}

static int p_resolved(const struct snap *s) {
    return s->inc && s->inc->lifecycle == LC(RESOLVED);
}

static int p_prod_requested(const struct snap *s) {
    return p_cordon_requested(s) && find_apr(s, "delete_finished_pods");
}

/* ---- checks shared by both scenarios ------------------------------------------------------ */

static void check_incident(const rsre_store_incident *inc, int env) {
    assert_string_equal(inc->incident_type, "node_disk_pressure");
    assert_string_equal(inc->fingerprint, "node_disk_pressure/node=" NODE);
    assert_string_equal(inc->domain, "infrastructure");
    assert_int_equal(inc->severity, S(SEVERITY__SEVERITY_WARNING));
    assert_int_equal(inc->confidence, S(CONFIDENCE__CONFIDENCE_HIGH));
    assert_true(inc->confidence_score > 0.85 && inc->confidence_score < 0.95);
    assert_int_equal(inc->environment, env);
    assert_string_equal(inc->cluster, "e2e");
    assert_string_equal(inc->rule_id, "builtin.node_disk_pressure");
    assert_true(inc->opened_at_ms > 0 && inc->updated_at_ms >= inc->opened_at_ms);
    assert_int_equal(inc->resolved_at_ms, 0);
    /* signal_sources: the condition (kubelet) and the taint (node lifecycle controller). */
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "kubelet"));
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "node-lifecycle-controller"));
    /* resource_scope: the node. */
    assert_true(inc->n_resource_scope >= 1);
    assert_string_equal(inc->resource_scope[0]->name, NODE);
    assert_true(inc->resource_scope[0]->kind[0] != '\0');
    /* evidence_summary: one line of what holds now. */
    assert_non_null(strstr(inc->evidence_summary, NODE));
    assert_non_null(strstr(inc->evidence_summary, "DiskPressure=True"));
    assert_non_null(strstr(inc->evidence_summary, "node.kubernetes.io/disk-pressure"));
    /* raw_evidence_refs: at least the condition and the taint, each a stored Evidence. */
    assert_true(inc->n_raw_evidence_refs >= 2);
    check_evidence_refs(inc);
    /* recommended_actions: what needs a human (approval-required and human-only ones). */
    assert_true(has_str(inc->recommended_actions, inc->n_recommended_actions, "cordon_node"));
    assert_true(
        has_str(inc->recommended_actions, inc->n_recommended_actions, "delete_persistent_data"));
    assert_false(has_str(inc->recommended_actions, inc->n_recommended_actions, "send_chat_alert"));
    /* executed_actions: records whose results came back (at least the notifications, which
     * fail for want of an executor) */
    assert_true(inc->n_executed_actions >= 1);
    assert_int_equal(inc->approval_state, APS(PENDING));
}

/* The cordon approval carries the six parts of the spec's prompt. */
static void check_cordon_approval(const struct snap *s, int64_t ttl_ms) {
    const rsre_store_approval *a = find_apr(s, "cordon_node");
    assert_non_null(a);
    assert_int_equal(a->state, APS(PENDING));
    assert_string_equal(a->incident_id, s->inc->id);
    assert_string_equal(a->requester, "robot-sre");
    assert_string_equal(a->target, NODE);                 /* action and target */
    assert_non_null(strstr(a->why_now, "disk pressure")); /* why now */
    assert_non_null(strstr(a->why_now, "confidence high"));
    assert_true(a->expected_impact[0] != '\0');                      /* expected impact */
    assert_non_null(strstr(a->rollback, "uncordon"));                /* rollback / next fallback */
    assert_int_equal(a->expires_at_ms - a->requested_at_ms, ttl_ms); /* expiry */
    assert_true(a->quorum >= 1);
    assert_non_null(strstr(a->prompt, "Robot SRE requests approval: cordon node " NODE "."));
    assert_non_null(strstr(a->prompt, "Reason: "));
    assert_non_null(strstr(a->prompt, "Expected impact: "));
    assert_non_null(strstr(a->prompt, "Rollback/fallback: "));
    assert_non_null(strstr(a->prompt, "Approval expires in "));
    /* its ActionRecord waits for the decision */
    const struct act *rec = NULL;
    for (size_t i = 0; i < s->nacts; i++) {
        if (strcmp(s->acts[i].id, a->action_id) == 0) {
            rec = &s->acts[i];
        }
    }
    assert_non_null(rec);
    assert_string_equal(rec->action, "cordon_node");
    assert_int_equal(rec->state, AST(AWAITING_APPROVAL));
    assert_int_equal(rec->decision, DEC(APPROVAL_REQUIRED));
}

static int is_observe_or_notify(const char *cls) {
    return strcmp(cls, "observe") == 0 || strcmp(cls, "notify") == 0;
}

/* ---- fixture ------------------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void sha256_hex(const char *s, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < n && i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

/* The admin API's token file and the approvals module's operator registry: alice and bob are
 * approvers; victor only views; one token names robot-sre, the requester of every request the
 * engine makes (and never an operator). */
static void write_identities(void) {
    static const struct {
        const char *op, *role, *token;
    } toks[] = {{"alice", "approver", TOKEN_ALICE},
                {"bob", "approver", TOKEN_BOB},
                {"robot-sre", "approver", TOKEN_ROBOT},
                {"victor", "viewer", TOKEN_VICTOR}};
    char text[2048] = "tokens:\n", hex[65];
    for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
        sha256_hex(toks[i].token, hex);
        size_t len = strlen(text);
        snprintf(text + len, sizeof(text) - len, "  - operator: %s\n    role: %s\n    sha256: %s\n",
                 toks[i].op, toks[i].role, hex);
    }
    write_file(F.tokens, text);
    write_file(F.operators, "operators:\n"
                            "  - id: alice\n    roles: [approver]\n"
                            "  - id: bob\n    roles: [operator, approver]\n"
                            "  - id: victor\n    roles: [viewer]\n");
}

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/rsre-agge2e-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.store, sizeof(F.store), "%s/store", F.dir);
    snprintf(F.kubelet, sizeof(F.kubelet), "%s/kubelet", F.dir);
    snprintf(F.runtime, sizeof(F.runtime), "%s/containerd", F.dir);
    snprintf(F.podlogs, sizeof(F.podlogs), "%s/pods", F.dir);
    snprintf(F.kube_log, sizeof(F.kube_log), "%s/kube-api.log", F.dir);
    snprintf(F.agent_log, sizeof(F.agent_log), "%s/agent.log", F.dir);
    snprintf(F.agg_log, sizeof(F.agg_log), "%s/aggregator-0.log", F.dir);
    snprintf(F.tokens, sizeof(F.tokens), "%s/tokens.yaml", F.dir);
    snprintf(F.operators, sizeof(F.operators), "%s/operators.yaml", F.dir);
    assert_int_equal(mkdir(F.kubelet, 0755), 0);
    assert_int_equal(mkdir(F.runtime, 0755), 0);
    assert_int_equal(mkdir(F.podlogs, 0755), 0);
    write_identities();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    kill_wait(&F.agent_pid);
    kill_wait(&F.agg_pid);
    kill_wait(&F.kube_pid);
    if (getenv("RSRE_TEST_KEEP")) {
        fprintf(stderr, "kept %s\n", F.dir);
    } else {
        nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}

/* ---- the scenarios ------------------------------------------------------------------------ */

static int node_unschedulable(void) {
    long status;
    json_t *n = kube("GET", "/api/v1/nodes/" NODE, NULL, &status);
    assert_int_equal(status, 200);
    int u = json_is_true(json_object_get(json_object_get(n, "spec"), "unschedulable"));
    json_decref(n);
    return u;
}

static int p_cordon_done(const struct snap *s) {
    return find_act(s, "cordon_node", AST(SUCCEEDED)) || find_act(s, "cordon_node", AST(FAILED)) ||
           find_act(s, "cordon_node", AST(CANCELLED));
}

static void test_demo(void **state) {
    (void)state;
    int64_t t0 = mono_ms();
    start_kube();
    put_node(1);
    put_pods();
    kube_ok("DELETE", "/_test/requests", NULL);
    start_aggregator("demo", 0, 1, NULL);
    start_agent();

    /* The incident opens, triaged at once: warning, high, every evidence-schema field. */
    struct snap s;
    wait_snap(p_incident_open, "the disk-pressure incident", WAIT_MS, &s);
    int64_t opened_ms = mono_ms() - t0;
    assert_int_equal(s.nincidents, 1);
    snap_free(&s);
    /* The cleanup: auto, run by the agent once. */
    wait_snap(p_cleanup_finished, "delete_finished_pods to finish", WAIT_MS, &s);
    if (!p_cleanup_done(&s)) {
        dump_snap(&s);
        const struct act *a = find_act(&s, "delete_finished_pods", -1);
        /* The agent's delete_finished_pods takes its node (or nothing) as the target; the
         * plan's "*" means every namespace on that node (docs/incidents.md, Targets). */
        fail_msg("delete_finished_pods did not succeed: %s", a ? a->result : "(no record)");
    }
    snap_free(&s);
    wait_snap(p_cordon_requested, "the cordon approval request", WAIT_MS, &s);
    int64_t acted_ms = mono_ms() - t0;
    dump_snap(&s);
    check_incident(s.inc, S(ENVIRONMENT__ENVIRONMENT_DEMO));
    assert_int_equal(s.inc->lifecycle, LC(CONTAINED));
    assert_true(audit_count("incident.open", NULL) == 1);

    const struct act *del = find_act(&s, "delete_finished_pods", AST(SUCCEEDED));
    assert_non_null(del);
    char del_id[RSRE_STORE_ID_MAX + 1];
    snprintf(del_id, sizeof(del_id), "%s", del ? del->id : "");
    assert_int_equal(del->decision, DEC(AUTO));
    assert_string_equal(del->cls, "contain");
    assert_int_equal(del->objects_removed, NFINISHED);
    assert_int_equal(count_runs(&s, "delete_finished_pods"), 1);
    assert_int_equal(s.agent_results, 1);
    assert_string_equal(s.agent_result_ids[0], del_id);
    for (size_t i = 0; i < NFINISHED; i++) {
        if (pod_exists(finished_pods[i])) {
            fail_msg("finished pod %s was not deleted", finished_pods[i]);
        }
    }
    for (size_t i = 0; i < sizeof(kept_pods) / sizeof(kept_pods[0]); i++) {
        if (!pod_exists(kept_pods[i])) {
            fail_msg("pod %s was deleted", kept_pods[i]);
        }
    }
    assert_int_equal(count_requests("DELETE", "/api/"), NFINISHED);

    /* Approval-required: cordon requested with the six parts; disruptive ones not requested
     * (not critical); human-only recorded, never run. */
    check_cordon_approval(&s, 600000);
    char apr_id[RSRE_STORE_ID_MAX + 1];
    snprintf(apr_id, sizeof(apr_id), "%s", find_apr(&s, "cordon_node")->id);
    assert_null(find_apr(&s, "reboot_worker"));
    assert_null(find_apr(&s, "replace_worker"));
    assert_null(find_apr(&s, "delete_finished_pods"));
    const struct act *human = find_act(&s, "delete_persistent_data", -1);
    assert_non_null(human);
    assert_int_equal(human->decision, DEC(HUMAN_ONLY));
    assert_int_equal(human->state, AST(SKIPPED));
    /* Nothing but observe/notify/contain ran alone. */
    for (size_t i = 0; i < s.nacts; i++) {
        if (s.acts[i].decision == DEC(AUTO) && s.acts[i].state != AST(SKIPPED)) {
            assert_true(is_observe_or_notify(s.acts[i].cls) ||
                        strcmp(s.acts[i].cls, "contain") == 0);
        }
    }
    snap_free(&s);

    /* Inside the cooldown: five more ticks, no second run. */
    sleep_ms(5000);
    assert_int_equal(snap_take(&s), 0);
    assert_int_equal(count_runs(&s, "delete_finished_pods"), 1);
    assert_int_equal(s.agent_results, 1);
    assert_int_equal(s.inc->lifecycle, LC(CONTAINED));
    /* the plan was decided again at the ticks: refused inside the cooldown, with its end */
    const struct act *refused = find_act(&s, "delete_finished_pods", AST(SKIPPED));
    assert_non_null(refused);
    assert_int_equal(refused->decision, DEC(REFUSED));
    if (!refused->cooldown_reason[0]) {
        fail_msg("the refusal of %s does not name the cooldown", refused->id);
    }
    fprintf(stderr, "inside the cooldown: %s\n", refused->cooldown_reason);
    snap_free(&s);
    assert_int_equal(count_requests("DELETE", "/api/"), NFINISHED);
    /* cordon waits for its approval: the aggregator's Kubernetes executor changed nothing */
    assert_int_equal(count_requests("PATCH", "/"), 0);
    assert_false(node_unschedulable());
    {
        rsre_store *st = store_open_ro();
        assert_non_null(st);
        rsre_store_txn *txn;
        assert_int_equal(rsre_store_txn_begin(st, 1, &txn), 0);
        rsre_store_action *rec = NULL;
        rsre_store_cooldown *cd = NULL;
        char key[RSRE_STORE_ID_MAX + 1];
        assert_int_equal(rsre_store_action_get(txn, del_id, &rec), 0);
        snprintf(key, sizeof(key), "contain/incident=%s", rec->incident_id);
        rsre_store_action_free(rec);
        assert_int_equal(rsre_store_cooldown_get(txn, key, &cd), 0);
        int64_t len = cd->until_ms - cd->set_at_ms;
        assert_true(len >= (int64_t)CONTAIN_COOLDOWN_S * 1000 - 1000 &&
                    len <= (int64_t)CONTAIN_COOLDOWN_S * 1000 + 1000);
        assert_true(cd->until_ms > wall_ms() + 800 * 1000);
        rsre_store_cooldown_free(cd);
        rsre_store_txn_abort(txn);
        rsre_store_close(st);
    }
    int64_t cooldown_ms = mono_ms() - t0;

    /* Votes through the admin API. The requester's own identity (robot-sre) cannot approve its
     * request, a viewer cannot vote at all: both refused, nothing runs. */
    long status;
    vote(TOKEN_ROBOT, apr_id, 1, &status);
    assert_int_equal(status, 403);
    vote(TOKEN_VICTOR, apr_id, 1, &status);
    assert_int_equal(status, 403);
    assert_true(audit_count("approval.vote.refused", NULL) >= 1);
    assert_int_equal(snap_take(&s), 0);
    assert_int_equal(find_apr(&s, "cordon_node")->state, APS(PENDING));
    assert_int_equal(find_apr(&s, "cordon_node")->n_votes, 0);
    snap_free(&s);
    assert_int_equal(count_requests("PATCH", "/"), 0);
    /* Another operator, an approver, approves: the engine re-checks and the Kubernetes
     * executor cordons the node on the API server. */
    assert_string_equal(vote(TOKEN_ALICE, apr_id, 1, &status), "approved");
    assert_int_equal(status, 200);
    wait_snap(p_cordon_done, "the approved cordon to run", WAIT_MS, &s);
    const struct act *cordon = find_act(&s, "cordon_node", AST(SUCCEEDED));
    if (!cordon) {
        dump_snap(&s);
        fail_msg("cordon_node did not succeed: %s", find_act(&s, "cordon_node", -1)->result);
    }
    assert_string_equal(cordon->approval, apr_id);
    assert_int_equal(cordon->decision, DEC(APPROVAL_REQUIRED));
    assert_int_equal(find_apr(&s, "cordon_node")->state, APS(APPROVED));
    assert_int_equal(s.inc->approval_state, APS(APPROVED));
    assert_int_equal(s.inc->lifecycle, LC(RECOVERING));
    assert_true(has_str(s.inc->executed_actions, s.inc->n_executed_actions, cordon->id));
    snap_free(&s);
    assert_true(node_unschedulable());
    assert_int_equal(count_requests("PATCH", "/api/v1/nodes/" NODE), 1);
    assert_int_equal(count_requests("PATCH", "/"), 1);
    assert_int_equal(audit_count("action.approved", NULL), 1);
    /* A second approval on a decided request is refused and changes nothing. */
    vote(TOKEN_BOB, apr_id, 1, &status);
    assert_int_equal(status, 409);
    int64_t approved_ms = mono_ms() - t0;

    /* Pressure clears. The incident stays open: the exit window is 600 s. */
    put_node(0);
    assert_true(node_unschedulable()); /* the kubelet's update keeps the cordon */
    sleep_ms(4000);
    assert_int_equal(snap_take(&s), 0);
    assert_int_equal(s.inc->lifecycle, LC(RECOVERING));
    assert_int_equal(s.inc->resolved_at_ms, 0);
    char inc_id[RSRE_STORE_ID_MAX + 1];
    snprintf(inc_id, sizeof(inc_id), "%s", s.inc->id);
    snap_free(&s);
    assert_int_equal(audit_count("incident.transition", "exit criteria held"), 0);

    int64_t resolved_ms = -1;
    if (!faketime_lib()) {
        fprintf(stderr, "SKIP (resolution after the exit window): libfaketime is not installed "
                        "(apt-get install faketime); the 600 s window was not waited for\n");
    } else {
        /* The same store and port, the aggregator's clock SPEEDUP times faster. */
        int port = F.agg_port;
        stop(&F.agg_pid, "aggregator", F.agg_log);
        /* one real second between batches is SPEEDUP seconds of the aggregator's time */
        const char *fast_flags[] = {"--agent_silence_ms=3600000", NULL};
        int64_t restarted = wall_ms(); /* the faster clock starts here, at the real time */
        start_aggregator("demo", port, SPEEDUP, fast_flags);
        assert_int_equal(F.agg_port, port);
        wait_snap(p_resolved, "the incident to resolve after its exit window",
                  (EXIT_WINDOW_S * 1000 / SPEEDUP) + 30000, &s);
        resolved_ms = mono_ms() - t0;
        dump_snap(&s);
        assert_string_equal(s.inc->id, inc_id);
        assert_int_equal(s.nincidents, 1);
        /* resolved_at is in the restarted aggregator's (faster) time: at least the window
         * after the restart */
        assert_true(s.inc->resolved_at_ms >= restarted + (int64_t)EXIT_WINDOW_S * 1000);
        assert_int_equal(audit_count("incident.transition", "exit criteria held"), 1);
        assert_int_equal(audit_count("incident.transition", "(window 600s)"), 1);
        assert_int_equal(count_runs(&s, "delete_finished_pods"), 1);
        assert_int_equal(s.agent_results, 1);
        assert_int_equal(find_apr(&s, "cordon_node")->state, APS(APPROVED));
        snap_free(&s);
        assert_int_equal(count_requests("DELETE", "/api/"), NFINISHED);
        assert_int_equal(count_requests("PATCH", "/"), 1);
    }

    stop(&F.agent_pid, "agent", F.agent_log);
    stop(&F.agg_pid, "aggregator", F.agg_log);
    verify_audit();
    char resolved[32] = "not waited for";
    if (resolved_ms >= 0) {
        snprintf(resolved, sizeof(resolved), "%.1fs", resolved_ms / 1000.0);
    }
    fprintf(stderr,
            "demo: incident open %.1fs, cleanup + approval request %.1fs, cooldown checked %.1fs, "
            "cordon approved and run %.1fs, resolved %s, total %.1fs\n",
            opened_ms / 1000.0, acted_ms / 1000.0, cooldown_ms / 1000.0, approved_ms / 1000.0,
            resolved, (mono_ms() - t0) / 1000.0);
}

static int p_prod_expired(const struct snap *s) {
    const rsre_store_approval *a = find_apr(s, "cordon_node");
    return a && a->state == APS(EXPIRED) && s->inc && s->inc->lifecycle == LC(ESCALATED);
}

static int p_prod_critical(const struct snap *s) {
    return s->inc && s->inc->severity == S(SEVERITY__SEVERITY_CRITICAL) &&
           find_apr(s, "reboot_worker");
}

/*
 * Production. With libfaketime the aggregator's clock runs SPEEDUP times faster from the start,
 * so the 10 min approval expiry and the 10 min severity escalation happen within the test.
 */
static void test_production(void **state) {
    (void)state;
    int64_t t0 = mono_ms();
    int fast = faketime_lib() != NULL;
    start_kube();
    put_node(1);
    put_pods();
    kube_ok("DELETE", "/_test/requests", NULL);
    const char *fast_flags[] = {"--agent_silence_ms=3600000", NULL};
    start_aggregator("production", 0, fast ? SPEEDUP : 1, fast ? fast_flags : NULL);
    start_agent();

    struct snap s;
    wait_snap(p_prod_requested, "approval requests for cleanup and cordon", WAIT_MS, &s);
    dump_snap(&s);
    check_incident(s.inc, S(ENVIRONMENT__ENVIRONMENT_PRODUCTION));
    assert_int_equal(s.inc->lifecycle, LC(TRIAGED));
    check_cordon_approval(&s, 600000);
    const rsre_store_approval *cleanup = find_apr(&s, "delete_finished_pods");
    assert_int_equal(cleanup->state, APS(PENDING));
    assert_non_null(strstr(cleanup->prompt, "Robot SRE requests approval: "));
    char apr_id[RSRE_STORE_ID_MAX + 1];
    snprintf(apr_id, sizeof(apr_id), "%s", find_apr(&s, "cordon_node")->id);
    snap_free(&s);

    if (!fast) {
        fprintf(stderr, "SKIP (approval expiry, escalation to critical): libfaketime is not "
                        "installed (apt-get install faketime); five ticks in real time instead\n");
        sleep_ms(5000);
    } else {
        /* Nobody answers: the requests expire after 10 min and the incident escalates; a late
         * approval is refused. The pressure persists past 10 min: critical, and the disruptive
         * reboot is requested from two approvers. */
        wait_snap(p_prod_expired, "the cordon approval to expire and the incident to escalate",
                  600 * 1000 / SPEEDUP + 30000, &s);
        snap_free(&s);
        assert_true(audit_count("approval.expire", NULL) >= 2);
        long status;
        assert_string_equal(vote(TOKEN_ALICE, apr_id, 1, &status), "");
        assert_int_equal(status, 409);
        assert_true(audit_count("approval.vote.refused", "expired") >= 1);
        wait_snap(p_prod_critical, "severity critical and a reboot request", WAIT_MS, &s);
        const rsre_store_approval *reboot = find_apr(&s, "reboot_worker");
        assert_int_equal(reboot->quorum, 2);
        assert_string_equal(reboot->target, NODE);
        snap_free(&s);
    }
    assert_int_equal(snap_take(&s), 0);
    dump_snap(&s);
    assert_int_equal(count_runs(&s, "delete_finished_pods"), 0);
    size_t auto_runs = 0;
    for (size_t i = 0; i < s.nacts; i++) {
        const struct act *a = &s.acts[i];
        if (a->decision == DEC(AUTO) && a->state != AST(SKIPPED)) {
            auto_runs++;
            if (!is_observe_or_notify(a->cls)) {
                fail_msg("production ran %s (%s) alone", a->action, a->cls);
            }
        }
        if (!is_observe_or_notify(a->cls)) {
            assert_true(a->state == AST(AWAITING_APPROVAL) || a->state == AST(SKIPPED) ||
                        a->state == AST(EXPIRED));
        }
    }
    assert_true(auto_runs >= 1); /* observation and notification did run */
    assert_int_equal(s.agent_results, 0);
    snap_free(&s);
    assert_int_equal(count_requests("DELETE", "/"), 0);
    assert_int_equal(count_requests("PATCH", "/"), 0);
    for (size_t i = 0; i < NFINISHED; i++) {
        assert_true(pod_exists(finished_pods[i]));
    }
    assert_false(node_unschedulable());

    stop(&F.agent_pid, "agent", F.agent_log);
    stop(&F.agg_pid, "aggregator", F.agg_log);
    verify_audit();
    fprintf(stderr, "production: total %.1fs\n", (mono_ms() - t0) / 1000.0);
}

int main(void) {
    if (access(AGGREGATOR, X_OK) != 0 || access(AGENT, X_OK) != 0) {
        fprintf(stderr, "SKIP: build robot-sre-aggregator and robot-sre-agent first\n");
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_demo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_production, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
