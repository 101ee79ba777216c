/*
 * The Kubernetes observers wired to the incident engine (aggregator/daemon/wire_observe.c) on a
 * real LMDB store, against tests/support/kube_api_server.py with Helm 3 release Secrets:
 *
 *   - a core Deployment whose new pod waits in ErrImagePull opens registry_pull_failure at
 *     scope workload/prod/api, critical (core namespace), with kubelet's message as evidence;
 *   - a release whose latest revision is pending-upgrade with an image the live Deployment does
 *     not run opens release_drift_or_partial_apply at scope release/prod/api, warning;
 *   - the pod pulls its image and revision 3 is deployed with the live image: both resolve once
 *     their exit windows have passed (the engine's clock driven through its tick);
 *   - a Node the control plane reports Ready=Unknown with the unreachable taint (no agent)
 *     opens node_unreachable_or_notready through the external NodeConditions signal; Ready
 *     again resolves it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/curl_uv.h"
#include "common/error.h"
#include "common/kube.h"
#include "common/log.h"
#include "../support/port_server.c"
#include "daemon/wire_observe.h"
#include "incidents/engine.h"
#include "store/store.h"

#define WAIT_MS 20000
#define MINUTE_MS (60 * 1000LL)

struct fx {
    pid_t pid;
    char base[64];
    char dir[256];
    uv_loop_t loop;
    struct rsre_http *http;
    struct rsre_kube *kube;
    rsre_store *store;
    struct rsre_incident_engine *eng;
    struct rsre__wire_observe *wire;
};

static struct fx *F;

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int spawn_server(struct fx *f) {
    char *argv[] = {"/usr/bin/python3", RSRE_SOURCE_DIR "/tests/support/kube_api_server.py",
                    "--port", "0", NULL};
    struct port_server_opts o = {.pdeathsig = 1};
    int port = port_server_start(argv, &o, &f->pid);
    if (port < 0) {
        return -1;
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", port);
    return 0;
}

static size_t sink(char *ptr, size_t size, size_t nmemb, void *ud) {
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static void post(const char *path, const char *body) {
    CURL *e = curl_easy_init();
    assert_non_null(e);
    char url[256];
    snprintf(url, sizeof(url), "%s%s", F->base, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (cc != CURLE_OK || status != 200) {
        fail_msg("POST %s: curl %d status %ld", path, (int)cc, status);
    }
}

static void run_for(uint64_t ms) {
    uint64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        uv_run(&F->loop, UV_RUN_ONCE);
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A timer keeps UV_RUN_ONCE from blocking forever while nothing else is due. */
static uv_timer_t pacer;
static void pace(uv_timer_t *t) {
    (void)t;
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    F = f;
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "error");
    assert_int_equal(spawn_server(f), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-obs-engine-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
    struct rsre_incident_engine_config ec = {.env = RSRE_ENV_STAGING, .cluster = "test"};
    assert_int_equal(rsre_incident_engine_create(f->store, &ec, NULL, &f->eng), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &pacer);
    uv_timer_start(&pacer, pace, 20, 20);
    assert_int_equal(rsre_http_create(&f->loop, &f->http), 0);
    struct rsre_kube_config cfg;
    assert_int_equal(rsre_kube_config_url(&cfg, f->base), 0);
    assert_int_equal(rsre_kube_create(f->http, &cfg, &f->kube), 0);
    rsre_kube_config_clear(&cfg);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    rsre__wire_observe_stop(f->wire);
    rsre_kube_destroy(f->kube);
    rsre_http_destroy(f->http);
    uv_close((uv_handle_t *)&pacer, NULL);
    for (int i = 0; i < 1000 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rsre_incident_engine_destroy(f->eng);
    rsre_store_close(f->store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    port_server_stop(&f->pid);
    free(f);
    F = NULL;
    return 0;
}

/* ---- incidents in the store --------------------------------------------------------------- */

struct found {
    const char *type, *scope;
    int n;
    int severity, lifecycle;
    int64_t resolved_at;
    char summary[1024];
};

static int find_cb(const rsre_store_incident *rec, void *ud) {
    struct found *fd = ud;
    if (strcmp(rec->incident_type, fd->type) != 0 || !strstr(rec->fingerprint, fd->scope)) {
        return 0;
    }
    fd->n++;
    fd->severity = (int)rec->severity;
    fd->lifecycle = (int)rec->lifecycle;
    fd->resolved_at = rec->resolved_at_ms;
    snprintf(fd->summary, sizeof(fd->summary), "%s", rec->evidence_summary);
    return 0;
}

static struct found find(const char *type, const char *scope) {
    struct found fd = {.type = type, .scope = scope};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(F->store, 1, &txn), 0);
    assert_int_equal(rsre_store_incident_foreach(txn, find_cb, &fd), 0);
    rsre_store_txn_abort(txn);
    return fd;
}

static int evidence_has(const char *text);

struct ev_find {
    const char *text;
    int hit;
};

static int ev_cb(const RobotSre__Store__Evidence *ev, void *ud) {
    struct ev_find *e = ud;
    if ((ev->summary && strstr(ev->summary, e->text)) ||
        (ev->raw.len && memmem(ev->raw.data, ev->raw.len, e->text, strlen(e->text)))) {
        e->hit = 1;
    }
    return 0;
}

struct inc_ids {
    char ids[16][64];
    size_t n;
};

static int ids_cb(const rsre_store_incident *rec, void *ud) {
    struct inc_ids *l = ud;
    if (l->n < 16) {
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", rec->id);
    }
    return 0;
}

static int evidence_has(const char *text) {
    struct inc_ids l = {.n = 0};
    struct ev_find e = {.text = text};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(F->store, 1, &txn), 0);
    assert_int_equal(rsre_store_incident_foreach(txn, ids_cb, &l), 0);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(rsre_store_evidence_foreach(txn, l.ids[i], ev_cb, &e), 0);
    }
    rsre_store_txn_abort(txn);
    return e.hit;
}

/* The daemon's tick: the observers re-assert their values (they report on change only), then
 * the engine judges staleness and exit windows. Returns the observer sources re-asserted. */
static int tick(int64_t now) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(F->store, 0, &txn), 0);
    int n = rsre__wire_observe_heartbeat(F->wire, txn, 3 * MINUTE_MS, now);
    assert_true(n >= 0);
    assert_int_equal(rsre_incident_engine_tick(F->eng, txn, now), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(F->eng);
    return n;
}

/* ---- the test ----------------------------------------------------------------------------- */

#define DEPLOY                                                                                     \
    "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"api\",\"namespace\":\"prod\"},\"spec\":{"   \
    "\"replicas\":1,\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":"          \
    "\"registry.local/api:1.2\"}]}}},\"status\":{\"replicas\":1,\"updatedReplicas\":1,"            \
    "\"readyReplicas\":1,\"availableReplicas\":1}}"
#define RS                                                                                         \
    "{\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"api-7c9\",\"namespace\":\"prod\","          \
    "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"name\":\"api\","   \
    "\"uid\":\"u1\",\"controller\":true}]}}"
#define POD(state)                                                                                 \
    "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"api-7c9-x\",\"namespace\":\"prod\","               \
    "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":"           \
    "\"api-7c9\",\"uid\":\"u2\",\"controller\":true}]},\"spec\":{\"nodeName\":\"n1\","             \
    "\"containers\":[{\"name\":\"web\",\"image\":\"registry.local/api:1.3\"}]},\"status\":{" state \
    "}}"
#define PULLING                                                                                    \
    "\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"web\",\"image\":"                    \
    "\"registry.local/api:1.3\",\"ready\":false,\"restartCount\":0,\"state\":{\"waiting\":{"       \
    "\"reason\":\"ImagePullBackOff\",\"message\":\"Back-off pulling image "                        \
    "\\\"registry.local/api:1.3\\\": 401 Unauthorized\"}}}]"

static void test_incidents_open_and_resolve(void **state) {
    (void)state;
    post("/_test/objects", "[" DEPLOY "," RS "," POD(PULLING) "]");
    post("/_test/helm_release", "{\"name\":\"api\",\"namespace\":\"prod\",\"revision\":1,"
                                "\"status\":\"deployed\",\"images\":{\"web\":"
                                "\"registry.local/api:1.2\"}}");
    post("/_test/helm_release", "{\"name\":\"api\",\"namespace\":\"prod\",\"revision\":2,"
                                "\"status\":\"pending-upgrade\",\"images\":{\"web\":"
                                "\"registry.local/api:1.3\"}}");
    assert_int_equal(rsre__wire_observe_start(F->kube, F->store, F->eng, "prod", NULL, 0, &F->wire),
                     0);
    struct found pull = {0}, drift = {0};
    uint64_t end = mono_ms() + WAIT_MS;
    while (mono_ms() < end && (pull.n == 0 || drift.n == 0)) {
        run_for(200);
        pull = find("registry_pull_failure", "workload/prod/api");
        drift = find("release_drift_or_partial_apply", "release/prod/api");
    }
    assert_int_equal(pull.n, 1);
    assert_int_equal(drift.n, 1);
    assert_int_equal(pull.severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL); /* core */
    assert_int_equal(drift.severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    assert_int_equal(pull.resolved_at, 0);
    assert_int_equal(drift.resolved_at, 0);
    assert_true(evidence_has("401 Unauthorized"));
    assert_true(evidence_has("status pending-upgrade"));

    /* Fixed: the pod runs, revision 3 is deployed with the image that runs. */
    post("/_test/objects", POD("\"phase\":\"Running\""));
    post("/_test/helm_release", "{\"name\":\"api\",\"namespace\":\"prod\",\"revision\":3,"
                                "\"status\":\"deployed\",\"images\":{\"web\":"
                                "\"registry.local/api:1.2\"}}");
    run_for(1000);
    int64_t t = wall_ms();
    for (int i = 1; i <= 12; i++) {
        /* without the heartbeat the healthy values would be stale (unknown) long before the
         * exit windows end, and nothing would resolve */
        assert_true(tick(t + i * 2 * MINUTE_MS) >= 2); /* observer:pods, observer:helm */
    }
    pull = find("registry_pull_failure", "workload/prod/api");
    drift = find("release_drift_or_partial_apply", "release/prod/api");
    assert_int_equal(pull.n, 1);
    assert_int_equal(drift.n, 1);
    if (!pull.resolved_at || !drift.resolved_at) {
        fail_msg("not resolved: pull lifecycle %d, drift lifecycle %d", pull.lifecycle,
                 drift.lifecycle);
    }
    assert_int_equal(pull.lifecycle, ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED);
    assert_int_equal(drift.lifecycle, ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED);
}

#define NODE(status, taint)                                                                        \
    "{\"kind\":\"Node\",\"metadata\":{\"name\":\"worker-7\"},\"spec\":{\"taints\":[" taint         \
    "]},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"" status "\","                \
    "\"reason\":\"NodeStatusUnknown\",\"message\":\"Kubelet stopped posting node status.\","       \
    "\"lastHeartbeatTime\":\"2026-11-27T10:00:00Z\",\"lastTransitionTime\":"                       \
    "\"2026-11-27T10:00:00Z\"}]}}"
#define UNREACHABLE "{\"key\":\"node.kubernetes.io/unreachable\",\"effect\":\"NoExecute\"}"

/* The control plane reports a node NotReady (no agent runs there): the engine sees it through
 * the observers' external NodeConditions signal; Ready again resolves it. */
static void test_node_conditions(void **state) {
    (void)state;
    post("/_test/objects", NODE("Unknown", UNREACHABLE));
    assert_int_equal(rsre__wire_observe_start(F->kube, F->store, F->eng, "", NULL, 1, &F->wire), 0);
    struct found nr = {0};
    uint64_t end = mono_ms() + WAIT_MS;
    while (mono_ms() < end && nr.n == 0) {
        run_for(200);
        nr = find("node_unreachable_or_notready", "worker-7");
    }
    assert_int_equal(nr.n, 1);
    assert_int_equal(nr.resolved_at, 0);
    assert_true(nr.severity >= ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    post("/_test/objects", NODE("True", ""));
    run_for(1000);
    int64_t t = wall_ms();
    for (int i = 1; i <= 12; i++) {
        tick(t + i * 2 * MINUTE_MS);
    }
    nr = find("node_unreachable_or_notready", "worker-7");
    assert_int_equal(nr.n, 1);
    if (!nr.resolved_at) {
        fail_msg("node incident not resolved: lifecycle %d", nr.lifecycle);
    }
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_incidents_open_and_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_conditions, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
