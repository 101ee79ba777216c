/*
 * Integration tests of the Kubernetes observers (aggregator/observe/observe.h) against
 * tests/support/kube_api_server.py (real v1 JSON lists and watch streams) with Helm release
 * Secrets built the way Helm 3 stores them (tests/support/helm_release.py).
 *
 * What is shown:
 *   - after the first lists, the aggregates: a Deployment whose pod waits in ErrImagePull
 *     (ReplicaSet -> Deployment through ownerReferences; kubelet's message and the missing pull
 *     secret in the detail; core by namespace), a release whose latest revision is
 *     pending-upgrade with an image the live Deployment does not run, finished pods, an ingress
 *     backend naming a missing Service, eviction events on a node;
 *   - faults injected mid-watch — a dropped connection, an ERROR 410 Gone on one resource's
 *     watch, an HTTP 410 for the resumed watch, and all watches at once — with objects added,
 *     modified, deleted and a name reused while the watch was down: after each, every
 *     informer's count from the change stream (ADDED +1, DELETED -1) equals its cache and the
 *     server's truth, and the aggregates equal what the server's objects imply;
 *   - nothing is emitted while nothing changes (bookmarks, watch restarts);
 *   - release drift: a deployed revision with matching images clears it, `kubectl set image`
 *     sets it again naming both images, ProgressDeadlineExceeded blocks the rollout, and so
 *     does a rollout lagging longer than rollout_stuck_ms; a failed
 *     revision; an undecodable release and a gzip bomb are kept as evidence; a fixed pod
 *     clears the pull failure (emitted once with zeros); a service account's pull secret
 *     deleted is named in the evidence;
 *   - emissions the consumer refuses are sent again later, a scope's zeroing included;
 *   - bounds: a collection above max_objects is refused (RSRE_ELIMIT, nothing cached, retried)
 *     and the other aggregates are computed after the sync grace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/curl_uv.h"
#include "common/error.h"
#include "common/kube.h"
#include "common/log.h"
#include "../support/port_server.c"
#include "../support/server_http.c"
#include "observe/observe.h"

#define WAIT_MS 20000

/* ---- emitted aggregates ------------------------------------------------------------------- */

struct emitted {
    char scope[RSRE_OBSERVE_SCOPE_LEN];
    char detail[RSRE_OBSERVE_DETAIL_LEN];
    struct {
        char signal[64];
        double value;
    } v[RSRE_OBSERVE_MAX_VALUES];
    size_t nv;
    unsigned times;
};

struct fx {
    pid_t pid;
    int port;
    char base[64];
    uv_loop_t loop;
    struct rsre_http *http;
    struct rsre_kube *kube;
    struct rsre_observe *obs;
    struct emitted em[256];
    size_t nem;
    unsigned emit_calls;
    unsigned refuse; /* refuse this many emissions (a consumer whose transaction failed) */
};

static struct fx *F;

static int on_emit(void *arg, const struct rsre_observe_aggregate *aggs, size_t n) {
    struct fx *f = arg;
    f->emit_calls++;
    if (f->refuse) {
        f->refuse--;
        return -EIO;
    }
    for (size_t i = 0; i < n; i++) {
        struct emitted *e = NULL;
        for (size_t k = 0; k < f->nem; k++) {
            if (strcmp(f->em[k].scope, aggs[i].scope) == 0) {
                e = &f->em[k];
            }
        }
        if (!e) {
            assert_true(f->nem < sizeof(f->em) / sizeof(f->em[0]));
            e = &f->em[f->nem++];
            snprintf(e->scope, sizeof(e->scope), "%s", aggs[i].scope);
        }
        e->times++;
        snprintf(e->detail, sizeof(e->detail), "%s", aggs[i].detail);
        e->nv = aggs[i].nvalues;
        for (size_t k = 0; k < aggs[i].nvalues; k++) {
            snprintf(e->v[k].signal, sizeof(e->v[k].signal), "%s", aggs[i].values[k].signal);
            e->v[k].value = aggs[i].values[k].value;
        }
    }
    return 0;
}

static const struct emitted *emitted(const char *scope) {
    for (size_t k = 0; k < F->nem; k++) {
        if (strcmp(F->em[k].scope, scope) == 0) {
            return &F->em[k];
        }
    }
    return NULL;
}

static double emitted_value(const char *scope, const char *signal) {
    const struct emitted *e = emitted(scope);
    for (size_t k = 0; e && k < e->nv; k++) {
        if (strcmp(e->v[k].signal, signal) == 0) {
            return e->v[k].value;
        }
    }
    return -1;
}

/* ---- server and loop ---------------------------------------------------------------------- */

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int spawn_server(struct fx *f) {
    char *argv[] = {"/usr/bin/python3",
                    RSRE_SOURCE_DIR "/tests/support/kube_api_server.py",
                    "--port",
                    "0",
                    "--bookmark-interval",
                    "0.2",
                    NULL};
    struct port_server_opts o = {.pdeathsig = 1};
    if ((f->port = port_server_start(argv, &o, &f->pid)) < 0) {
        return -1;
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
    return 0;
}

/* A blocking control request to the test server (the loop does not run meanwhile). */
static json_t *ctl(const char *method, const char *path, const char *body) {
    long status;
    char *b;
    CURLcode cc = server_http(F->base, method, path, body, NULL, &status, &b);
    if (cc != CURLE_OK || status != 200) {
        fail_msg("control %s %s: curl %d status %ld: %s", method, path, (int)cc, status,
                 b ? b : "");
    }
    json_t *j = json_loads(b ? b : "null", JSON_DECODE_ANY, NULL);
    free(b);
    return j;
}

static void ctl0(const char *method, const char *path, const char *body) {
    json_decref(ctl(method, path, body));
}

static void put(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put(const char *fmt, ...) {
    char body[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    ctl0("POST", "/_test/objects", body);
}

static void helm(const char *name, int revision, const char *status, const char *image) {
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"name\": \"%s\", \"namespace\": \"prod\", \"revision\": %d, \"status\": \"%s\", "
             "\"images\": {\"web\": \"%s\"}, \"chart\": \"%s\", \"chart_version\": \"1.%d.0\"}",
             name, revision, status, image, name, revision);
    ctl0("POST", "/_test/helm_release", body);
}

static void rfc3339_now(char *out, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int run_until(int (*pred)(void *), void *arg, uint64_t ms) {
    uint64_t end = mono_ms() + ms;
    while (!pred(arg)) {
        if (mono_ms() > end) {
            return 0;
        }
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    return 1;
}

static int never(void *arg) {
    (void)arg;
    return 0;
}

static void run_for(uint64_t ms) {
    run_until(never, NULL, ms);
}

/* Runs the loop until `scope` was emitted with `signal` == v, or with a detail containing
 * `text`; fails the test after WAIT_MS (robust on a loaded machine, no fixed sleeps). */
struct want {
    const char *scope, *signal, *text;
    double v;
};

static int want_met(void *arg) {
    const struct want *w = arg;
    if (w->text) {
        const struct emitted *e = emitted(w->scope);
        return e && strstr(e->detail, w->text) != NULL;
    }
    return emitted_value(w->scope, w->signal) == w->v;
}

static void wait_value(const char *scope, const char *signal, double v) {
    struct want w = {scope, signal, NULL, v};
    if (!run_until(want_met, &w, WAIT_MS)) {
        fail_msg("%s %s: %g, want %g", scope, signal, emitted_value(scope, signal), v);
    }
}

static void wait_detail(const char *scope, const char *text) {
    struct want w = {scope, NULL, text, 0};
    if (!run_until(want_met, &w, WAIT_MS)) {
        const struct emitted *e = emitted(scope);
        fail_msg("%s: detail '%s' lacks '%s'", scope, e ? e->detail : "(none)", text);
    }
}

static int synced(void *arg) {
    (void)arg;
    return rsre_observe_synced(F->obs);
}

/* ---- the cluster ------------------------------------------------------------------------ */

static const char *PULL_MSG = "rpc error: code = NotFound desc = failed to pull and unpack image "
                              "\\\"registry.local/api:1.3\\\": failed to resolve reference "
                              "\\\"registry.local/api:1.3\\\": registry.local/api:1.3: not found";

static void pod(const char *name, const char *owner_kind, const char *owner, const char *phase,
                const char *waiting_reason, const char *image) {
    char owner_ref[512] = "";
    if (owner_kind) {
        snprintf(owner_ref, sizeof(owner_ref),
                 ",\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"%s\",\"name\":"
                 "\"%s\",\"uid\":\"u-%s\",\"controller\":true}]",
                 owner_kind, owner, owner);
    }
    char status[1024];
    if (waiting_reason) {
        snprintf(status, sizeof(status),
                 "\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"web\",\"image\":"
                 "\"%s\",\"ready\":false,\"restartCount\":0,\"state\":{\"waiting\":{\"reason\":"
                 "\"%s\",\"message\":\"%s\"}}}]",
                 image, waiting_reason, PULL_MSG);
    } else {
        snprintf(status, sizeof(status), "\"phase\":\"%s\"", phase);
    }
    put("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\",\"namespace\":"
        "\"prod\"%s},\"spec\":{\"nodeName\":\"n1\",\"imagePullSecrets\":[{\"name\":\"regcred\"}],"
        "\"containers\":[{\"name\":\"web\",\"image\":\"%s\"}]},\"status\":{%s}}",
        name, owner_ref, image, status);
}

static void deployment(const char *image, int deadline_exceeded) {
    put("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"api\",\"namespace\":\"prod\","
        "\"generation\":2,\"annotations\":{\"meta.helm.sh/release-name\":\"api\"}},\"spec\":{"
        "\"replicas\":2,\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":"
        "\"%s\"}]}}},\"status\":{\"observedGeneration\":2,\"replicas\":2,\"updatedReplicas\":%d,"
        "\"readyReplicas\":%d,\"availableReplicas\":%d,\"conditions\":[{\"type\":\"Progressing\","
        "\"status\":\"%s\",\"reason\":\"%s\",\"message\":\"ReplicaSet \\\"api-5d8f\\\" %s\"}]}}",
        image, deadline_exceeded ? 1 : 2, deadline_exceeded ? 1 : 2, deadline_exceeded ? 1 : 2,
        deadline_exceeded ? "False" : "True",
        deadline_exceeded ? "ProgressDeadlineExceeded" : "NewReplicaSetAvailable",
        deadline_exceeded ? "has timed out progressing." : "has successfully progressed.");
}

static void load_cluster(void) {
    char now[32];
    rfc3339_now(now, sizeof(now));
    put("[{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"}},"
        "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n2\"}},"
        "{\"kind\":\"Service\",\"metadata\":{\"name\":\"api\",\"namespace\":\"prod\"}},"
        "{\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"default\",\"namespace\":\"prod\"},"
        "\"imagePullSecrets\":[{\"name\":\"regcred-sa\"}]},"
        "{\"kind\":\"Secret\",\"type\":\"kubernetes.io/dockerconfigjson\",\"metadata\":{\"name\":"
        "\"regcred-sa\",\"namespace\":\"prod\"},\"data\":{\".dockerconfigjson\":\"e30=\"}},"
        "{\"kind\":\"Secret\",\"type\":\"Opaque\",\"metadata\":{\"name\":\"regcred\","
        "\"namespace\":\"prod\"},\"data\":{\"x\":\"e30=\"}},"
        "{\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"api-5d8f\",\"namespace\":\"prod\","
        "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"name\":\"api\","
        "\"uid\":\"u-api\",\"controller\":true}]}},"
        "{\"kind\":\"CronJob\",\"apiVersion\":\"batch/v1\",\"metadata\":{\"name\":\"cleanup\","
        "\"namespace\":\"prod\"}},"
        "{\"kind\":\"Job\",\"apiVersion\":\"batch/v1\",\"metadata\":{\"name\":\"cleanup-1\","
        "\"namespace\":\"prod\",\"ownerReferences\":[{\"apiVersion\":\"batch/v1\",\"kind\":"
        "\"CronJob\",\"name\":\"cleanup\",\"uid\":\"u-c\",\"controller\":true}]}},"
        "{\"kind\":\"Ingress\",\"apiVersion\":\"networking.k8s.io/v1\",\"metadata\":{\"name\":"
        "\"web\",\"namespace\":\"prod\"},\"spec\":{\"rules\":[{\"host\":\"app.example\",\"http\":"
        "{\"paths\":[{\"path\":\"/api\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{"
        "\"name\":\"api\",\"port\":{\"number\":80}}}},{\"path\":\"/admin\",\"pathType\":"
        "\"Prefix\",\"backend\":{\"service\":{\"name\":\"admin\",\"port\":{\"number\":80}}}}]}}]}},"
        "{\"kind\":\"Event\",\"metadata\":{\"name\":\"n1.evict\",\"namespace\":\"default\"},"
        "\"involvedObject\":{\"kind\":\"Node\",\"name\":\"n1\"},\"reason\":"
        "\"EvictionThresholdMet\",\"message\":\"Attempting to reclaim ephemeral-storage\","
        "\"type\":\"Warning\",\"count\":3,\"firstTimestamp\":\"%s\",\"lastTimestamp\":\"%s\","
        "\"source\":{\"component\":\"kubelet\",\"host\":\"n1\"}},"
        "{\"kind\":\"Event\",\"metadata\":{\"name\":\"old.evict\",\"namespace\":\"default\"},"
        "\"involvedObject\":{\"kind\":\"Node\",\"name\":\"n2\"},\"reason\":"
        "\"EvictionThresholdMet\",\"type\":\"Warning\",\"count\":1,"
        "\"lastTimestamp\":\"2020-01-01T00:00:00Z\",\"source\":{\"host\":\"n2\"}}]",
        now, now);
    deployment("registry.local/api:1.2", 0);
    pod("api-5d8f-a", "ReplicaSet", "api-5d8f", "Running", NULL, "registry.local/api:1.2");
    pod("api-5d8f-b", "ReplicaSet", "api-5d8f", NULL, "ErrImagePull", "registry.local/api:1.3");
    for (int i = 0; i < 3; i++) {
        char n[32];
        snprintf(n, sizeof(n), "cleanup-1-s%d", i);
        pod(n, "Job", "cleanup-1", "Succeeded", NULL, "registry.local/tools:1");
    }
    pod("cleanup-1-f0", "Job", "cleanup-1", "Failed", NULL, "registry.local/tools:1");
    helm("api", 1, "deployed", "registry.local/api:1.2");
    helm("api", 2, "pending-upgrade", "registry.local/api:1.3");
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    F = f;
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "error");
    assert_int_equal(spawn_server(f), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(rsre_http_create(&f->loop, &f->http), 0);
    struct rsre_kube_config cfg;
    assert_int_equal(rsre_kube_config_url(&cfg, f->base), 0);
    assert_int_equal(rsre_kube_create(f->http, &cfg, &f->kube), 0);
    rsre_kube_config_clear(&cfg);
    *state = f;
    return 0;
}

static uint32_t stuck_ms = 3600000; /* rollout_stuck_ms of the next observers */

static void start_observers_with(size_t max_objects, uint32_t sync_grace_ms) {
    struct rsre_observe_config oc = {.retry_ms = 150,
                                     .max_objects = max_objects,
                                     .sync_grace_ms = sync_grace_ms,
                                     .core_namespaces = "kube-system, prod",
                                     .settle_ms = 50,
                                     .tick_ms = 1000,
                                     .backoff_min_ms = 100,
                                     .backoff_max_ms = 400,
                                     .rollout_stuck_ms = stuck_ms,
                                     .churn_allowance = 3};
    assert_int_equal(rsre_observe_create(F->kube, &oc, on_emit, F, &F->obs), 0);
}

static void start_observers(void) {
    start_observers_with(0, 0);
    assert_true(run_until(synced, NULL, WAIT_MS));
}

static int teardown(void **state) {
    struct fx *f = *state;
    rsre_observe_destroy(f->obs);
    rsre_kube_destroy(f->kube);
    rsre_http_destroy(f->http);
    for (int i = 0; i < 1000 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    port_server_stop(&f->pid);
    free(f);
    F = NULL;
    return 0;
}

/* ---- truth -------------------------------------------------------------------------------- */

static const struct {
    enum rsre_observe_kind kind;
    const char *key; /* /_test/counts key */
} truth_rows[] = {
    {RSRE_OBS_NODES, "nodes"},
    {RSRE_OBS_PODS, "pods"},
    {RSRE_OBS_EVENTS, "events"},
    {RSRE_OBS_DEPLOYMENTS, "deployments"},
    {RSRE_OBS_STATEFULSETS, "statefulsets"},
    {RSRE_OBS_DAEMONSETS, "daemonsets"},
    {RSRE_OBS_REPLICASETS, "replicasets"},
    {RSRE_OBS_JOBS, "jobs"},
    {RSRE_OBS_CRONJOBS, "cronjobs"},
    {RSRE_OBS_INGRESSES, "ingresses"},
    {RSRE_OBS_SERVICES, "services"},
    {RSRE_OBS_SERVICEACCOUNTS, "serviceaccounts"},
};

static json_int_t truth_count(const char *query, const char *key) {
    char path[256];
    snprintf(path, sizeof(path), "/_test/counts%s", query);
    json_t *j = ctl("GET", path, NULL);
    json_int_t v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

struct truth {
    json_int_t n[RSRE_OBS_NKINDS];
    json_int_t finished;
};

static void read_truth(struct truth *t) {
    json_t *j = ctl("GET", "/_test/counts", NULL);
    for (size_t i = 0; i < sizeof(truth_rows) / sizeof(truth_rows[0]); i++) {
        t->n[truth_rows[i].kind] = json_integer_value(json_object_get(j, truth_rows[i].key));
    }
    json_decref(j);
    t->n[RSRE_OBS_HELM_RELEASES] =
        truth_count("?field=type&value=helm.sh/release.v1", "secrets?type=helm.sh/release.v1");
    t->n[RSRE_OBS_PULL_SECRETS] = truth_count("?field=type&value=kubernetes.io/dockerconfigjson",
                                              "secrets?type=kubernetes.io/dockerconfigjson");
    t->n[RSRE_OBS_PULL_SECRETS_OLD] = 0;
    t->finished =
        truth_count("?field=status.phase&value=Succeeded", "pods?status.phase=Succeeded") +
        truth_count("?field=status.phase&value=Failed", "pods?status.phase=Failed");
}

static int matches_truth(void *arg) {
    const struct truth *t = arg;
    for (size_t k = 0; k < RSRE_OBS_NKINDS; k++) {
        struct rsre_observe_counts c;
        rsre_observe_counts(F->obs, (enum rsre_observe_kind)k, &c);
        if (c.live != t->n[k] || (json_int_t)c.cached != t->n[k]) {
            return 0;
        }
    }
    double fin = -1;
    return rsre_observe_get(F->obs, "cluster", "jobs.finished_pods", &fin) == 0 &&
           fin == (double)t->finished && emitted_value("cluster", "jobs.finished_pods") == fin;
}

/* Waits until every informer's count equals the server's, then checks they stay equal (a
 * double count would show up as the late duplicate arrives). */
static void expect_truth(const char *after) {
    struct truth t;
    read_truth(&t);
    if (!run_until(matches_truth, &t, WAIT_MS)) {
        for (size_t k = 0; k < RSRE_OBS_NKINDS; k++) {
            struct rsre_observe_counts c;
            rsre_observe_counts(F->obs, (enum rsre_observe_kind)k, &c);
            fprintf(stderr, "%s: live %lld cached %zu truth %lld\n",
                    rsre_observe_kind_name((enum rsre_observe_kind)k), (long long)c.live, c.cached,
                    (long long)t.n[k]);
        }
        fail_msg("after %s: the observers do not match the server", after);
    }
    run_for(600);
    assert_true(matches_truth(&t));
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_aggregates(void **state) {
    (void)state;
    load_cluster();
    start_observers();
    expect_truth("the first list");
    wait_value("workload/prod/api", "pull.failing_workloads", 1);
    /* Pull failure, grouped by Deployment; core by namespace; evidence kept. */
    assert_true(emitted_value("workload/prod/api", "pull.failing_workloads") == 1);
    assert_true(emitted_value("workload/prod/api", "pull.failing_core_workloads") == 1);
    const char *d = emitted("workload/prod/api")->detail;
    assert_non_null(strstr(d, "ErrImagePull"));
    assert_non_null(strstr(d, "registry.local/api:1.3: not found"));
    assert_non_null(strstr(d, "pull secret regcred missing (pod)")); /* an Opaque one exists */
    assert_null(strstr(d, "regcred-sa"));
    assert_null(emitted("workload/prod/api-5d8f"));
    /* Release: latest revision pending-upgrade, wants 1.3, live runs 1.2. */
    assert_true(emitted_value("release/prod/api", "release.drifted") == 1);
    assert_true(emitted_value("release/prod/api", "release.rollout_blocked") == 0);
    d = emitted("release/prod/api")->detail;
    assert_non_null(strstr(d, "revision 2 status pending-upgrade"));
    assert_non_null(strstr(d, "desired registry.local/api:1.3 live registry.local/api:1.2"));
    /* Jobs, ingress, events (the 2020 event is outside the window). */
    assert_true(emitted_value("cluster", "jobs.finished_pods") == 4);
    assert_true(emitted_value("cluster", "jobs.apiserver_churn") == 0);
    assert_true(emitted_value("ingress/prod/web", "ingress.failing_routes") == 1);
    assert_non_null(strstr(emitted("ingress/prod/web")->detail, "prod/admin missing"));
    assert_true(emitted_value("node/n1", "events.eviction_threshold_met") == 1);
    assert_null(emitted("node/n2"));

    /* The service account's pull secret disappears: named in the evidence. */
    ctl0("DELETE", "/_test/objects/secrets/prod/regcred-sa", NULL);
    wait_detail("workload/prod/api", "pull secret regcred-sa missing (service account)");

    /* Nothing changes: bookmarks and quiet watches emit nothing. */
    unsigned calls = F->emit_calls;
    run_for(1500);
    assert_int_equal(F->emit_calls, calls);

    /* The pod pulls its image: the workload scope is emitted once with zeros, then gone. */
    pod("api-5d8f-b", "ReplicaSet", "api-5d8f", "Running", NULL, "registry.local/api:1.3");
    wait_value("workload/prod/api", "pull.failing_workloads", 0);
    assert_true(emitted_value("workload/prod/api", "pull.failing_workloads") == 0);
    double v;
    assert_int_equal(rsre_observe_get(F->obs, "workload/prod/api", "pull.failing_workloads", &v),
                     RSRE_ENOTFOUND);
    /* The Service appears: the ingress is fine. */
    put("{\"kind\":\"Service\",\"metadata\":{\"name\":\"admin\",\"namespace\":\"prod\"}}");
    wait_value("ingress/prod/web", "ingress.failing_routes", 0);
    assert_true(emitted_value("ingress/prod/web", "ingress.failing_routes") == 0);
}

static void test_release_drift(void **state) {
    (void)state;
    load_cluster();
    start_observers();
    wait_value("release/prod/api", "release.drifted", 1);
    /* The upgrade completes (revision 3 deployed, same image as live): no drift. */
    helm("api", 3, "deployed", "registry.local/api:1.2");
    wait_detail("release/prod/api", "revision 3 status deployed");
    assert_true(emitted_value("release/prod/api", "release.drifted") == 0);
    /* Revision 1 (deployed before) is superseded, as helm upgrade leaves it. */
    json_t *r1 = ctl("GET", "/api/v1/namespaces/prod/secrets/sh.helm.release.v1.api.v1", NULL);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(r1, "metadata"), "labels"), "status")),
                        "superseded");
    json_decref(r1);
    assert_non_null(strstr(emitted("release/prod/api")->detail, "revision 3 status deployed"));
    /* Someone runs kubectl set image: live differs from desired. */
    deployment("registry.local/api:hotfix", 0);
    wait_detail("release/prod/api", "live registry.local/api:hotfix");
    assert_true(emitted_value("release/prod/api", "release.drifted") == 1);
    assert_non_null(strstr(emitted("release/prod/api")->detail,
                           "desired registry.local/api:1.2 live registry.local/api:hotfix"));
    /* And its rollout stalls. */
    deployment("registry.local/api:1.2", 1);
    wait_detail("release/prod/api", "has timed out progressing");
    assert_true(emitted_value("release/prod/api", "release.drifted") == 0);
    assert_true(emitted_value("release/prod/api", "release.rollout_blocked") == 1);
    assert_true(emitted_value("release/prod/api", "release.unhealthy_workloads") == 1);
    assert_non_null(strstr(emitted("release/prod/api")->detail, "has timed out progressing"));
    /* A failed upgrade (revision 4) with the rollout fine again. */
    deployment("registry.local/api:1.2", 0);
    helm("api", 4, "failed", "registry.local/api:1.2");
    wait_detail("release/prod/api", "revision 4 status failed");
    assert_true(emitted_value("release/prod/api", "release.drifted") == 1);
    assert_true(emitted_value("release/prod/api", "release.rollout_blocked") == 0);
    assert_non_null(strstr(emitted("release/prod/api")->detail, "status failed"));
    /* A release Secret whose payload is garbage: kept with its labels' status, error noted. */
    ctl0("POST", "/_test/helm_release",
         "{\"name\": \"web\", \"namespace\": \"prod\", \"revision\": 1, \"status\": "
         "\"pending-install\", \"payload_b64\": \"H4sIAAAA\"}");
    wait_detail("release/prod/web", "release not decoded");
    /* A gzip bomb: 16 MiB of spaces in ~16 KiB, above the 8 MiB bound: refused, kept. */
    ctl0("POST", "/_test/helm_release",
         "{\"name\": \"bomb\", \"namespace\": \"prod\", \"revision\": 1, \"status\": "
         "\"deployed\", \"bomb_mib\": 16}");
    wait_detail("release/prod/bomb", "release not decoded: gzip: limit exceeded");
    assert_true(emitted_value("release/prod/bomb", "release.drifted") == 0);
    assert_true(emitted_value("release/prod/web", "release.drifted") == 1);
    assert_non_null(strstr(emitted("release/prod/web")->detail, "release not decoded"));
    /* The release's workload goes away: missing. */
    ctl0("DELETE", "/_test/objects/deployments/prod/api", NULL);
    helm("api", 5, "deployed", "registry.local/api:1.2");
    wait_detail("release/prod/api", "Deployment/api missing");
    assert_true(emitted_value("release/prod/api", "release.drifted") == 1);
    assert_non_null(strstr(emitted("release/prod/api")->detail, "Deployment/api missing"));
}

/* A rollout that stays below its desired counts without the controller giving up (no
 * ProgressDeadlineExceeded) is blocked once it has lagged for rollout_stuck_ms; it clears when
 * the rollout completes. */
static void test_rollout_lagging(void **state) {
    (void)state;
    load_cluster();
    helm("api", 3, "deployed", "registry.local/api:1.2");
    stuck_ms = 1500;
    start_observers();
    stuck_ms = 3600000;
    wait_detail("release/prod/api", "revision 3 status deployed");
    assert_true(emitted_value("release/prod/api", "release.rollout_blocked") == 0);
    put("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"api\",\"namespace\":\"prod\","
        "\"generation\":3},\"spec\":{\"replicas\":3,\"template\":{\"spec\":{\"containers\":[{"
        "\"name\":\"web\",\"image\":\"registry.local/api:1.2\"}]}}},\"status\":{"
        "\"observedGeneration\":3,\"replicas\":3,\"updatedReplicas\":1,\"readyReplicas\":2,"
        "\"availableReplicas\":2}}");
    uint64_t t0 = mono_ms();
    wait_value("release/prod/api", "release.rollout_blocked", 1);
    assert_true(mono_ms() - t0 >= 1000); /* not before it lagged for a while */
    assert_true(emitted_value("release/prod/api", "release.unhealthy_workloads") == 1);
    assert_non_null(strstr(emitted("release/prod/api")->detail, "(1/3 updated, 2 ready)"));
    deployment("registry.local/api:1.2", 0);
    wait_value("release/prod/api", "release.rollout_blocked", 0);
    assert_true(emitted_value("release/prod/api", "release.unhealthy_workloads") == 0);
}

/* Changes made while a watch is down or about to be cut: adds, finished pods, deletions, a
 * modification, a name reused by a new object, a new Helm revision. */
static int round_no;
static void churn(void) {
    char n[64];
    round_no++;
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof(n), "batch-%d-%d", round_no, i);
        pod(n, "Job", "cleanup-1", i == 2 ? "Failed" : "Succeeded", NULL, "registry.local/t:1");
    }
    snprintf(n, sizeof(n), "/_test/objects/pods/prod/batch-%d-0", round_no - 1);
    if (round_no > 1) {
        ctl0("DELETE", n, NULL);
    }
    /* The same name, a new object (uid) in a different phase. */
    put("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"cleanup-1-s0\",\"namespace\":\"prod\","
        "\"uid\":\"reuse-%d\"},\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"%s\"}}",
        round_no, round_no % 2 ? "Running" : "Succeeded");
    put("{\"kind\":\"Node\",\"metadata\":{\"name\":\"n%d\"}}", 10 + round_no);
    put("{\"kind\":\"Job\",\"apiVersion\":\"batch/v1\",\"metadata\":{\"name\":\"cleanup-r%d\","
        "\"namespace\":\"prod\"}}",
        round_no);
    helm("api", 2 + round_no, round_no % 2 ? "pending-upgrade" : "deployed",
         "registry.local/api:1.2");
}

static void test_faults(void **state) {
    (void)state;
    load_cluster();
    start_observers();
    expect_truth("the first list");

    /* 1. A dropped connection mid-watch (pods only); changes made while it is down. */
    json_t *j = ctl("POST", "/_test/drop", "{\"resource\": \"pods\"}");
    assert_true(json_integer_value(json_object_get(j, "dropped")) >= 1);
    json_decref(j);
    churn();
    expect_truth("a dropped pods watch");
    struct rsre_observe_counts c;
    rsre_observe_counts(F->obs, RSRE_OBS_PODS, &c);
    assert_true(c.stats.reconnects >= 1);
    assert_int_equal(c.stats.relists_gone, 0);

    /* 2. 410 Gone mid-watch as an ERROR event (pods), the history compacted meanwhile. */
    churn();
    ctl0("POST", "/_test/expire", "{\"kill_watches\": true, \"resource\": \"pods\"}");
    churn();
    expect_truth("ERROR 410 on the pods watch");
    rsre_observe_counts(F->obs, RSRE_OBS_PODS, &c);
    assert_true(c.stats.relists_gone >= 1);
    uint64_t gone_before = c.stats.relists_gone;

    /* 3. A dropped connection whose resumed watch gets an HTTP 410 (history compacted while
     * the client was away). */
    ctl0("POST", "/_test/config", "{\"gone_http\": true}");
    ctl0("POST", "/_test/drop", "{\"resource\": \"pods\"}");
    churn();
    ctl0("POST", "/_test/expire", "{}");
    churn();
    expect_truth("HTTP 410 for the resumed pods watch");
    rsre_observe_counts(F->obs, RSRE_OBS_PODS, &c);
    assert_true(c.stats.relists_gone > gone_before);
    ctl0("POST", "/_test/config", "{\"gone_http\": false}");

    /* 4. Every watch at once: 410 for all, then all connections cut. */
    ctl0("POST", "/_test/expire", "{\"kill_watches\": true}");
    churn();
    ctl0("POST", "/_test/drop", "{}");
    churn();
    expect_truth("410 and drops on every watch");
    rsre_observe_counts(F->obs, RSRE_OBS_NODES, &c);
    assert_true(c.stats.relists_gone >= 1);
    rsre_observe_counts(F->obs, RSRE_OBS_HELM_RELEASES, &c);
    assert_true(c.stats.relists_gone >= 1);
    /* The latest Helm revision wins after all of it (round 7: revision 9, pending-upgrade). */
    wait_detail("release/prod/api", "revision 9 status pending-upgrade");
    assert_true(emitted_value("release/prod/api", "release.drifted") == 1);
    /* Seven Job creations after the first list, each counted once across every fault; the
     * allowance is 3. */
    wait_value("cluster", "jobs.apiserver_churn", 4);

    struct rsre_observe_stats st;
    rsre_observe_stats(F->obs, &st);
    assert_int_equal(st.scopes_dropped, 0);
}

/* A collection above the object bound (a hostile or huge cluster): its list is refused and
 * retried with backoff, nothing of it is cached; after the sync grace the other collections'
 * aggregates are computed anyway. */
static int pods_refused(void *arg) {
    (void)arg;
    struct rsre_observe_counts c;
    rsre_observe_counts(F->obs, RSRE_OBS_PODS, &c);
    return c.stats.errors >= 2 && c.stats.last_rc == RSRE_ELIMIT;
}

static void test_bounds(void **state) {
    (void)state;
    load_cluster(); /* 6 pods, 2 nodes, ... */
    for (int i = 0; i < 30; i++) {
        char n[32];
        snprintf(n, sizeof(n), "extra-%d", i);
        pod(n, NULL, NULL, "Succeeded", NULL, "registry.local/t:1");
    }
    start_observers_with(20, 1500);
    assert_true(run_until(pods_refused, NULL, WAIT_MS));
    struct rsre_observe_counts c;
    rsre_observe_counts(F->obs, RSRE_OBS_PODS, &c);
    assert_int_equal(c.cached, 0);
    assert_int_equal(c.live, 0);
    assert_false(c.synced);
    rsre_observe_counts(F->obs, RSRE_OBS_NODES, &c);
    assert_true(c.synced);
    assert_false(rsre_observe_synced(F->obs));
    /* After the grace: the aggregates of what is known (no pods: no finished pods, no pull
     * failure; the release and the ingress are there). */
    wait_detail("release/prod/api", "revision 2 status pending-upgrade");
    wait_value("ingress/prod/web", "ingress.failing_routes", 1);
    assert_true(emitted_value("cluster", "jobs.finished_pods") == 0);
    assert_null(emitted("workload/prod/api"));
}

/* The consumer refuses emissions (its store transaction failed): nothing is lost, the zeroing
 * of a scope that recovered included. */
static void test_emit_retry(void **state) {
    (void)state;
    load_cluster();
    F->refuse = 2;
    start_observers();
    wait_value("workload/prod/api", "pull.failing_workloads", 1);
    struct rsre_observe_stats st;
    rsre_observe_stats(F->obs, &st);
    assert_int_equal(st.emit_refused, 2);
    assert_true(emitted_value("release/prod/api", "release.drifted") == 1);
    F->refuse = 3;
    pod("api-5d8f-b", "ReplicaSet", "api-5d8f", "Running", NULL, "registry.local/api:1.3");
    wait_value("workload/prod/api", "pull.failing_workloads", 0);
    rsre_observe_stats(F->obs, &st);
    assert_int_equal(st.emit_refused, 5);
    assert_int_equal(F->refuse, 0);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aggregates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_drift, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollout_lagging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emit_retry, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
