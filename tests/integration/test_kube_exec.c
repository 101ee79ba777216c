/*
 * Integration tests of the Kubernetes executor (aggregator/exec/kube_exec.h) against
 * tests/support/kube_api_server.py, a stand-in API server speaking real v1 / apps/v1 /
 * batch/v1 JSON, started per test on 127.0.0.1 with a free port. Requests go through
 * common/kube.h and common/curl_uv.h on a libuv loop; every effect is checked by reading the
 * server's state directly (blocking curl), not through the executor.
 *
 * What is shown:
 *   - cordon / uncordon: spec.unschedulable written with a strategic merge patch, previous
 *     value reported, a second cordon writes nothing;
 *   - drain: cordons, evicts through policy/v1 Eviction every pod but DaemonSet, mirror,
 *     finished, kube-system, emptyDir and unmanaged ones (the last two on request); a
 *     PodDisruptionBudget-blocked pod is retried with backoff until the deadline, never
 *     forced, and ends still running and reported as blocked with the budget's words while
 *     the others are evicted and verified; a budget that relents is retried into success;
 *   - rollout restart of a Deployment, StatefulSet, DaemonSet: restartedAt annotation (RFC
 *     3339), generation moved, previous value reported; a paused Deployment is refused;
 *   - scale through the scale subresource: to zero with the previous count reported, resume
 *     back to it, scale_dependency, a scale-down that would scale up refused;
 *   - suspend / resume CronJob;
 *   - delete_finished_pods in a namespace, across namespaces (kube-system skipped), in
 *     kube-system when named; uid preconditions in every DELETE;
 *   - dry runs: server-side (?dryRun=All / DeleteOptions.dryRun / deleteOptions.dryRun) and
 *     client-side (no write sent) change nothing;
 *   - malformed targets, unknown actions, wrong kinds and replica counts refused before
 *     anything is sent; 404 and 403 surfaced with the server's Status; a write the server
 *     does not keep fails verification; deadline; destroy and abandon with work in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
#include "exec/kube_exec.h"

#define NODE "10.0.10.21"
#define OTHER_NODE "10.0.10.22"
#define WAIT_MS 15000

/* ---- fixture ------------------------------------------------------------------------------ */

struct fx {
    pid_t pid;
    int port;
    char base[64];
    uv_loop_t loop;
    struct rsre_http *http;
    struct rsre_kube *kube;
    struct rsre_kube_exec *x;
};

static struct fx *F;

static int spawn_server(pid_t *pid_out, int *port) {
    char *argv[] = {"/usr/bin/python3", RSRE_SOURCE_DIR "/tests/support/kube_api_server.py",
                    "--port", "0", NULL};
    *port = port_server_start(argv, NULL, pid_out);
    return *port > 0 ? 0 : -1;
}

static void test_config(struct rsre_kube_exec_config *c) {
    rsre_kube_exec_config_defaults(c);
    c->timeout_ms = 10000;
    c->call_timeout_ms = 5000;
    c->evict_backoff_min_ms = 50;
    c->evict_backoff_max_ms = 200;
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    F = f;
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "error");
    assert_int_equal(spawn_server(&f->pid, &f->port), 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(rsre_http_create(&f->loop, &f->http), 0);
    struct rsre_kube_config cfg;
    assert_int_equal(rsre_kube_config_url(&cfg, f->base), 0);
    assert_int_equal(rsre_kube_create(f->http, &cfg, &f->kube), 0);
    rsre_kube_config_clear(&cfg);
    struct rsre_kube_exec_config xc;
    test_config(&xc);
    char err[256];
    assert_int_equal(rsre_kube_exec_create(f->kube, &xc, &f->x, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    rsre_kube_exec_destroy(f->x);
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

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- blocking requests to the test server ------------------------------------------------- */

/* Sends a request; returns the decoded answer (NULL for 404) and the status. */
static json_t *http(const char *method, const char *path, const char *body, long *status_out) {
    long status;
    char *b;
    CURLcode cc = server_http(F->base, method, path, body, NULL, &status, &b);
    if (cc != CURLE_OK) {
        fail_msg("%s %s: curl %d", method, path, (int)cc);
    }
    if (status_out) {
        *status_out = status;
    }
    json_t *j = status == 404 ? NULL : json_loads(b ? b : "null", JSON_DECODE_ANY, NULL);
    free(b);
    return j;
}

static json_t *ctl(const char *method, const char *path, const char *body) {
    long st = 0;
    json_t *j = http(method, path, body, &st);
    if (st != 200) {
        fail_msg("control %s %s: status %ld", method, path, st);
    }
    return j;
}

static void ctl0(const char *method, const char *path, const char *body) {
    json_decref(ctl(method, path, body));
}

/* An object as the server holds it, or NULL when it does not exist. */
static json_t *api_get(const char *path) {
    long st = 0;
    json_t *j = http("GET", path, NULL, &st);
    assert_true(st == 200 || st == 404);
    return j;
}

static void put(const char *json_text) {
    ctl0("POST", "/_test/objects", json_text);
}

static void config(const char *json_text) {
    ctl0("POST", "/_test/config", json_text);
}

static void clear_requests(void) {
    ctl0("DELETE", "/_test/requests", NULL);
}

/* Requests the API part of the server received: method (NULL = any) and a path substring. */
static size_t count_requests(const char *method, const char *path_part, int with_dry_query) {
    json_t *reqs = ctl("GET", "/_test/requests", NULL);
    size_t i, n = 0;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        int dry = json_object_get(json_object_get(r, "query"), "dryRun") != NULL;
        if ((!method || strcmp(m, method) == 0) && (!path_part || strstr(p, path_part)) &&
            (with_dry_query < 0 || dry == with_dry_query)) {
            n++;
        }
    }
    json_decref(reqs);
    return n;
}

/* The body of the n-th request (0-based) matching method and path part; caller frees. */
static char *request_body(const char *method, const char *path_part, size_t nth) {
    json_t *reqs = ctl("GET", "/_test/requests", NULL);
    size_t i, n = 0;
    json_t *r;
    char *out = NULL;
    json_array_foreach(reqs, i, r) {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        if (strcmp(m, method) == 0 && strstr(p, path_part) && n++ == nth) {
            out = strdup(json_string_value(json_object_get(r, "body")));
            break;
        }
    }
    json_decref(reqs);
    assert_non_null(out);
    return out;
}

static const char *jstr(json_t *obj, const char *a, const char *b, const char *c) {
    json_t *v = json_object_get(obj, a);
    if (b) {
        v = json_object_get(v, b);
    }
    if (c) {
        v = json_object_get(v, c);
    }
    return json_string_value(v);
}

static int node_unschedulable(void) {
    json_t *n = api_get("/api/v1/nodes/" NODE);
    assert_non_null(n);
    int u = json_is_true(json_object_get(json_object_get(n, "spec"), "unschedulable"));
    json_decref(n);
    return u;
}

static int pod_exists(const char *ns, const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, name);
    json_t *p = api_get(path);
    json_decref(p);
    return p != NULL;
}

static json_int_t replicas_of(const char *res, const char *ns, const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/%s/%s", ns, res, name);
    json_t *o = api_get(path);
    assert_non_null(o);
    json_int_t r = json_integer_value(json_object_get(json_object_get(o, "spec"), "replicas"));
    json_decref(o);
    return r;
}

/* ---- objects ------------------------------------------------------------------------------ */

static void put_node(const char *name) {
    char b[1024];
    snprintf(b, sizeof(b),
             "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{\"kubernetes.io/hostname\":\"%s\"}},\"spec\":{\"providerID\":"
             "\"oci://ocid1.instance.oc1.iad.anuwcljt3b7zqwqc\"},\"status\":{\"conditions\":"
             "[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\"}]}}",
             name, name);
    put(b);
}

/* A pod. owner: "ReplicaSet:web-7d4b" style (controller), "" = none. extra: more spec
 * members (e.g. volumes) or "". */
static void put_pod(const char *ns, const char *name, const char *node, const char *phase,
                    const char *owner, const char *extra_spec, const char *extra_meta) {
    char owners[512] = "";
    if (owner && owner[0]) {
        char kind[64], oname[128];
        assert_int_equal(sscanf(owner, "%63[^:]:%127s", kind, oname), 2);
        snprintf(owners, sizeof(owners),
                 ",\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"%s\",\"name\":"
                 "\"%s\",\"uid\":\"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\",\"controller\":true,"
                 "\"blockOwnerDeletion\":true}]",
                 kind, oname);
    }
    char b[4096];
    snprintf(b, sizeof(b),
             "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\"%s%s},\"spec\":{\"nodeName\":\"%s\",\"containers\":[{\"name\":"
             "\"app\",\"image\":\"docker.io/library/nginx:1.25.4\"}]%s},\"status\":{\"phase\":"
             "\"%s\"}}",
             name, ns, owners, extra_meta ? extra_meta : "", node, extra_spec ? extra_spec : "",
             phase);
    put(b);
}

/* The pods of a node: evictable ones, and every kind a drain must leave alone. */
static void put_node_pods(void) {
    put_node(NODE);
    put_node(OTHER_NODE);
    put_pod("shop", "web-7d4b9c8f6d-x2kqp", NODE, "Running", "ReplicaSet:web-7d4b9c8f6d", NULL,
            NULL);
    put_pod("shop", "web-7d4b9c8f6d-q8zl4", NODE, "Running", "ReplicaSet:web-7d4b9c8f6d", NULL,
            NULL);
    put_pod("shop", "api-5f6c7d8e9f-m3n4p", NODE, "Pending", "ReplicaSet:api-5f6c7d8e9f", NULL,
            NULL);
    put_pod("shop", "redis-0", NODE, "Running", "StatefulSet:redis", NULL, NULL);
    put_pod("monitoring", "node-exporter-8k2xv", NODE, "Running", "DaemonSet:node-exporter", NULL,
            NULL);
    put_pod("kube-system", "coredns-5d78c9869d-7wq9t", NODE, "Running",
            "ReplicaSet:coredns-5d78c9869d", NULL, NULL);
    put_pod("kube-system", "kube-apiserver-" NODE, NODE, "Running", "", NULL,
            ",\"annotations\":{\"kubernetes.io/config.mirror\":\"8c2b9e5f\","
            "\"kubernetes.io/config.source\":\"file\"}");
    put_pod("shop", "cache-6b8d9c7f5-wx2lm", NODE, "Running", "ReplicaSet:cache-6b8d9c7f5",
            ",\"volumes\":[{\"name\":\"scratch\",\"emptyDir\":{\"sizeLimit\":\"1Gi\"}}]", NULL);
    put_pod("shop", "debug-shell", NODE, "Running", "", NULL, NULL);
    put_pod("batch", "nightly-report-28573920-7kq2m", NODE, "Succeeded",
            "Job:nightly-report-28573920", NULL, NULL);
    put_pod("shop", "web-7d4b9c8f6d-other", OTHER_NODE, "Running", "ReplicaSet:web-7d4b9c8f6d",
            NULL, NULL);
}

static void put_deployment(const char *ns, const char *name, int replicas, int paused) {
    char b[1024];
    snprintf(b, sizeof(b),
             "{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\",\"generation\":4},\"spec\":{\"replicas\":%d,%s\"selector\":"
             "{\"matchLabels\":{\"app\":\"%s\"}},\"template\":{\"metadata\":{\"labels\":"
             "{\"app\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":"
             "\"registry.example.com/%s:1.4.2\"}]}}},\"status\":{\"replicas\":%d,"
             "\"observedGeneration\":4}}",
             name, ns, replicas, paused ? "\"paused\":true," : "", name, name, name, replicas);
    put(b);
}

/* A StatefulSet or DaemonSet without spec.replicas (the API defaults it to 1). */
static void put_workload(const char *kind, const char *ns, const char *name) {
    char b[1024];
    snprintf(b, sizeof(b),
             "{\"kind\":\"%s\",\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\"},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},"
             "\"template\":{\"metadata\":{\"labels\":{\"app\":\"%s\"},\"annotations\":"
             "{\"prometheus.io/scrape\":\"true\"}},\"spec\":{\"containers\":[{\"name\":\"app\","
             "\"image\":\"registry.example.com/%s:2\"}]}}}}",
             kind, name, ns, name, name, name);
    put(b);
}

/* spec.template.metadata.annotations[key] of a workload, or NULL. */
static const char *template_annotation(json_t *obj, const char *key) {
    json_t *ann = json_object_get(
        json_object_get(json_object_get(json_object_get(obj, "spec"), "template"), "metadata"),
        "annotations");
    return json_string_value(json_object_get(ann, key));
}

static void put_cronjob(const char *ns, const char *name, int suspended) {
    char b[1024];
    snprintf(b, sizeof(b),
             "{\"kind\":\"CronJob\",\"apiVersion\":\"batch/v1\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\"},\"spec\":{\"schedule\":\"*/5 * * * *\",%s"
             "\"concurrencyPolicy\":\"Forbid\",\"jobTemplate\":{\"spec\":{\"template\":{\"spec\":"
             "{\"restartPolicy\":\"OnFailure\",\"containers\":[{\"name\":\"job\",\"image\":"
             "\"registry.example.com/report:3\"}]}}}}}}",
             name, ns, suspended ? "\"suspend\":true," : "");
    put(b);
}

/* ---- running actions ---------------------------------------------------------------------- */

struct outcome {
    int done;
    int rc, ok, verified;
    unsigned changed, rounds;
    int dry;
    char step[32], message[1024], kind[32];
    char prev_field[128], prev_value[400], reason[64];
    int64_t prev_replicas;
    long http_status;
    char ids[4096], blocked[4096], skipped[4096], failed[4096]; /* "\n"-joined */
    size_t nids, nblocked, nskipped, nfailed;
};

static void join(char *out, size_t cap, const char *const *v, size_t n) {
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s\n", v[i]);
    }
}

static void on_result(void *arg, const struct rsre_kube_exec_result *r) {
    struct outcome *o = arg;
    o->done++;
    o->rc = r->rc;
    o->ok = r->ok;
    o->verified = r->verified;
    o->changed = r->changed;
    o->rounds = r->evict_rounds;
    o->dry = r->dry_run;
    snprintf(o->step, sizeof(o->step), "%s", r->step);
    snprintf(o->message, sizeof(o->message), "%s", r->message);
    snprintf(o->kind, sizeof(o->kind), "%s", r->kind);
    snprintf(o->prev_field, sizeof(o->prev_field), "%s", r->previous_field);
    snprintf(o->prev_value, sizeof(o->prev_value), "%s", r->previous_value);
    snprintf(o->reason, sizeof(o->reason), "%s", r->reason);
    o->prev_replicas = r->previous_replicas;
    o->http_status = r->http_status;
    join(o->ids, sizeof(o->ids), r->ids, r->nids);
    join(o->blocked, sizeof(o->blocked), r->blocked, r->nblocked);
    join(o->skipped, sizeof(o->skipped), r->skipped, r->nskipped);
    join(o->failed, sizeof(o->failed), r->failed, r->nfailed);
    o->nids = r->nids;
    o->nblocked = r->nblocked;
    o->nskipped = r->nskipped;
    o->nfailed = r->nfailed;
    assert_int_equal(r->changed, r->nids);
    assert_int_equal(r->ok, r->rc == 0);
}

static int wait_done(struct outcome *o, uint64_t ms) {
    uint64_t end = now_ms() + ms;
    while (!o->done) {
        if (now_ms() > end) {
            return 0;
        }
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    return 1;
}

/* Runs one request to completion; returns run's code (the outcome is filled when 0). */
static int run_req(struct rsre_kube_exec *x, const struct rsre_kube_exec_request *req,
                   struct outcome *o) {
    memset(o, 0, sizeof(*o));
    char err[256] = "";
    int rc = rsre_kube_exec_run(x, req, on_result, o, NULL, err, sizeof(err));
    if (rc != 0) {
        snprintf(o->message, sizeof(o->message), "%s", err);
        return rc;
    }
    assert_int_equal(o->done, 0); /* never from inside run */
    assert_true(wait_done(o, WAIT_MS));
    assert_int_equal(o->done, 1);
    return 0;
}

static void act(const char *action, const char *target, const char *kind,
                enum rsre_kube_exec_dry_run dry, struct outcome *o) {
    struct rsre_kube_exec_request req = {
        .action = action, .target = target, .kind = kind, .dry_run = dry};
    assert_int_equal(run_req(F->x, &req, o), 0);
}

static void act_n(const char *action, const char *target, const char *kind, int32_t replicas,
                  enum rsre_kube_exec_dry_run dry, struct outcome *o) {
    struct rsre_kube_exec_request req = {.action = action,
                                         .target = target,
                                         .kind = kind,
                                         .replicas = replicas,
                                         .replicas_set = 1,
                                         .dry_run = dry};
    assert_int_equal(run_req(F->x, &req, o), 0);
}

/* ---- tests: the table --------------------------------------------------------------------- */

static void test_table(void **state) {
    (void)state;
    static const char *const ids[] = {"cordon_node",
                                      "uncordon_node",
                                      "drain_node",
                                      "rollout_restart",
                                      "restart_backend",
                                      "restart_shared_dependency",
                                      "scale_workload_to_zero",
                                      "scale_dependency",
                                      "scale_shared_controllers_down",
                                      "suspend_cronjob",
                                      "resume_workload",
                                      "delete_finished_pods"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const struct rsre_kube_exec_action *a = rsre_kube_exec_find(ids[i]);
        assert_non_null(a);
        assert_string_equal(a->id, ids[i]);
        assert_true(a->summary[0]);
    }
    size_t n = 0;
    while (rsre_kube_exec_action_at(n)) {
        n++;
    }
    assert_int_equal(n, sizeof(ids) / sizeof(ids[0]));
    assert_null(rsre_kube_exec_find("reboot_worker"));
    assert_int_equal(rsre_kube_exec_find("drain_node")->target, RSRE_KUBE_EXEC_TARGET_NODE);
    assert_int_equal(rsre_kube_exec_find("suspend_cronjob")->target, RSRE_KUBE_EXEC_TARGET_OBJECT);
    assert_int_equal(rsre_kube_exec_find("delete_finished_pods")->target,
                     RSRE_KUBE_EXEC_TARGET_NAMESPACE);

    /* Configuration table: defaults, bounds, unknown keys. */
    struct rsre_kube_exec_config c;
    char err[256];
    rsre_kube_exec_config_defaults(&c);
    assert_int_equal(c.timeout_ms, 300000);
    assert_int_equal(c.drain_delete_emptydir, 0);
    assert_int_equal(rsre_kube_exec_config_set(&c, "evict_backoff_min_ms", "250", err, sizeof(err)),
                     0);
    assert_int_equal(c.evict_backoff_min_ms, 250);
    assert_int_equal(rsre_kube_exec_config_set(&c, "max_pods", "0", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_kube_exec_config_set(&c, "drain_unmanaged", "2", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_kube_exec_config_set(&c, "nope", "1", err, sizeof(err)), RSRE_ENOTFOUND);
    c.evict_backoff_min_ms = 5000;
    c.evict_backoff_max_ms = 100;
    struct rsre_kube_exec *x = NULL;
    assert_int_equal(rsre_kube_exec_create(F->kube, &c, &x, err, sizeof(err)), RSRE_EINVALID);
    assert_null(x);
    assert_int_equal(rsre_kube_exec_create(F->kube, NULL, &x, err, sizeof(err)), 0);
    rsre_kube_exec_destroy(x);
    rsre_kube_exec_destroy(NULL);
}

/* ---- tests: targets and requests refused before anything is sent -------------------------- */

static void test_refused_requests(void **state) {
    (void)state;
    put_node(NODE);
    clear_requests();
    static const char *const bad_nodes[] = {"",      "Node-1",   "node_1",    "-node",  "node-",
                                            "a..b",  "n/1",      "../etc",    "node 1", "node\n1",
                                            "n%2F1", "node?x=1", "node#frag", ".node",  NULL};
    struct outcome o;
    for (size_t i = 0; bad_nodes[i]; i++) {
        struct rsre_kube_exec_request req = {.action = "cordon_node", .target = bad_nodes[i]};
        assert_int_equal(run_req(F->x, &req, &o), RSRE_EINVALID);
        assert_non_null(strstr(o.message, "not a node name"));
    }
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    struct rsre_kube_exec_request lreq = {.action = "drain_node", .target = longname};
    assert_int_equal(run_req(F->x, &lreq, &o), RSRE_EINVALID);
    struct rsre_kube_exec_request nreq = {.action = "drain_node", .target = NULL};
    assert_int_equal(run_req(F->x, &nreq, &o), RSRE_EINVALID);

    static const char *const bad_objects[] = {
        "web",
        "shop/",
        "/web",
        "shop/web/extra",
        "Shop/web",
        "shop/Web",
        "shop//web",
        "sh op/web",
        "shop/web?dryRun=All",
        "shop/../web",
        "shop/%2e%2e",
        "-shop/web",
        "shop/web.",
        "a-namespace-name-that-is-far-too-long-for-a-dns-1123-label-xxxxx/web",
        NULL};
    for (size_t i = 0; bad_objects[i]; i++) {
        struct rsre_kube_exec_request req = {.action = "rollout_restart", .target = bad_objects[i]};
        assert_int_equal(run_req(F->x, &req, &o), RSRE_EINVALID);
        struct rsre_kube_exec_request req2 = {.action = "suspend_cronjob",
                                              .target = bad_objects[i]};
        assert_int_equal(run_req(F->x, &req2, &o), RSRE_EINVALID);
    }
    static const char *const bad_ns[] = {"", "shop/x", "Shop", "**", "-ns", "ns-", NULL};
    for (size_t i = 0; bad_ns[i]; i++) {
        struct rsre_kube_exec_request req = {.action = "delete_finished_pods", .target = bad_ns[i]};
        assert_int_equal(run_req(F->x, &req, &o), RSRE_EINVALID);
    }

    /* Unknown action, kinds a row does not take, replica counts. */
    struct rsre_kube_exec_request r = {.action = "reboot_worker", .target = NODE};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_ENOTFOUND);
    r = (struct rsre_kube_exec_request){.action = NULL, .target = NODE};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_ENOTFOUND);
    r = (struct rsre_kube_exec_request){
        .action = "suspend_cronjob", .target = "shop/web", .kind = "deployment"};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){
        .action = "scale_workload_to_zero", .target = "shop/agent", .kind = "daemonset"};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){
        .action = "rollout_restart", .target = "shop/web", .kind = "pod"};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){.action = "cordon_node", .target = NODE, .kind = "pod"};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){.action = "scale_dependency", .target = "shop/redis"};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    assert_non_null(strstr(o.message, "needs a replica count"));
    r = (struct rsre_kube_exec_request){
        .action = "scale_dependency", .target = "shop/redis", .replicas = -1, .replicas_set = 1};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){.action = "scale_dependency",
                                        .target = "shop/redis",
                                        .replicas = RSRE_KUBE_EXEC_MAX_REPLICAS + 1,
                                        .replicas_set = 1};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){
        .action = "scale_workload_to_zero", .target = "shop/web", .replicas = 2, .replicas_set = 1};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){
        .action = "resume_workload", .target = "shop/web", .kind = "deployment"};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){.action = "resume_workload",
                                        .target = "shop/web",
                                        .kind = "Deployment",
                                        .replicas = 0,
                                        .replicas_set = 1};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){
        .action = "resume_workload", .target = "batch/report", .replicas = 2, .replicas_set = 1};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID); /* a CronJob takes no count */
    r = (struct rsre_kube_exec_request){.action = "drain_node", .target = NODE, .flags = 0x80};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);
    r = (struct rsre_kube_exec_request){
        .action = "drain_node", .target = NODE, .dry_run = (enum rsre_kube_exec_dry_run)7};
    assert_int_equal(run_req(F->x, &r, &o), RSRE_EINVALID);

    /* Nothing reached the API server. */
    assert_int_equal(count_requests(NULL, NULL, -1), 0);
    assert_int_equal(rsre_kube_exec_active(F->x), 0);

    /* The check functions on their own. */
    char ns[RSRE_KUBE_NS_LEN], name[RSRE_KUBE_NAME_LEN];
    assert_int_equal(rsre_kube_exec_check_object("kube-system/coredns", ns, name), 0);
    assert_string_equal(ns, "kube-system");
    assert_string_equal(name, "coredns");
    assert_int_equal(rsre_kube_exec_check_node("ip-10-0-10-21.eu-frankfurt-1.compute.internal"), 0);
    assert_int_equal(rsre_kube_exec_check_namespace("*"), 0);
    assert_int_equal(rsre_kube_exec_check_namespace(NULL), RSRE_EINVALID);
}

/* ---- tests: cordon / uncordon ------------------------------------------------------------- */

static void test_cordon_uncordon(void **state) {
    (void)state;
    put_node(NODE);
    struct outcome o;

    /* Dry runs first: nothing changes. */
    clear_requests();
    act("cordon_node", NODE, NULL, RSRE_KUBE_EXEC_DRY_SERVER, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified); /* the dry-run answer showed the change */
    assert_string_equal(o.ids, NODE "\n");
    assert_non_null(strstr(o.message, "dry run (server)"));
    assert_int_equal(count_requests("PATCH", "/api/v1/nodes/" NODE, 1), 1);
    assert_false(node_unschedulable());
    clear_requests();
    act("cordon_node", NODE, NULL, RSRE_KUBE_EXEC_DRY_CLIENT, &o);
    assert_int_equal(o.rc, 0);
    assert_false(o.verified);
    assert_int_equal(o.changed, 1);
    assert_non_null(strstr(o.message, "would PATCH"));
    assert_int_equal(count_requests("PATCH", NULL, -1), 0);
    assert_false(node_unschedulable());

    /* Cordon: strategic merge patch, verified by a GET, previous value reported. */
    clear_requests();
    act("cordon_node", NODE, NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_string_equal(o.step, "done");
    assert_string_equal(o.kind, "node");
    assert_int_equal(o.changed, 1);
    assert_string_equal(o.ids, NODE "\n");
    assert_string_equal(o.prev_field, "spec.unschedulable");
    assert_string_equal(o.prev_value, "false");
    assert_int_equal(o.prev_replicas, -1);
    json_t *reqs = ctl("GET", "/_test/requests", NULL);
    assert_int_equal(json_array_size(reqs), 3); /* GET, PATCH, GET */
    json_t *patch = json_array_get(reqs, 1);
    assert_string_equal(json_string_value(json_object_get(patch, "method")), "PATCH");
    assert_string_equal(json_string_value(json_object_get(patch, "content_type")),
                        "application/strategic-merge-patch+json");
    assert_string_equal(json_string_value(json_object_get(patch, "body")),
                        "{\"spec\":{\"unschedulable\":true}}");
    json_decref(reqs);
    assert_true(node_unschedulable());

    /* Again: already cordoned, nothing written, still verified. */
    clear_requests();
    act("cordon_node", NODE, NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_int_equal(o.changed, 0);
    assert_string_equal(o.prev_value, "true");
    assert_non_null(strstr(o.message, "already"));
    assert_int_equal(count_requests("PATCH", NULL, -1), 0);

    /* Uncordon. */
    act("uncordon_node", NODE, NULL, RSRE_KUBE_EXEC_DRY_SERVER, &o);
    assert_int_equal(o.rc, 0);
    assert_true(node_unschedulable());
    act("uncordon_node", NODE, "node", RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_string_equal(o.prev_value, "true");
    assert_false(node_unschedulable());
}

/* ---- tests: drain ------------------------------------------------------------------------- */

static int has_line(const char *list, const char *prefix) {
    const char *p = list;
    size_t n = strlen(prefix);
    while (*p) {
        if (strncmp(p, prefix, n) == 0) {
            return 1;
        }
        p = strchr(p, '\n');
        if (!p) {
            break;
        }
        p++;
    }
    return 0;
}

static void test_drain_pdb_blocks(void **state) {
    (void)state;
    put_node_pods();
    config("{\"pdb_block\":{\"shop/web-7d4b9c8f6d-x2kqp\":{\"pdb\":\"web-pdb\",\"needs\":2,"
           "\"has\":2}}}");
    clear_requests();
    struct rsre_kube_exec_request req = {
        .action = "drain_node", .target = NODE, .timeout_ms = 1500};
    struct outcome o;
    uint64_t t0 = now_ms();
    assert_int_equal(run_req(F->x, &req, &o), 0);
    uint64_t took = now_ms() - t0;

    /* Ends with the blocked pod still running and reported, the others evicted. */
    assert_int_equal(o.rc, -EAGAIN);
    assert_false(o.ok);
    assert_true(o.verified); /* the evictions that happened were verified */
    assert_int_equal(o.nblocked, 1);
    assert_true(has_line(o.blocked, "shop/web-7d4b9c8f6d-x2kqp The disruption budget web-pdb "
                                    "needs 2 healthy pods and has 2 currently"));
    assert_int_equal(o.nids, 3);
    assert_true(has_line(o.ids, "shop/web-7d4b9c8f6d-q8zl4\n"));
    assert_true(has_line(o.ids, "shop/api-5f6c7d8e9f-m3n4p\n"));
    assert_true(has_line(o.ids, "shop/redis-0\n"));
    assert_int_equal(o.nfailed, 0);
    assert_true(pod_exists("shop", "web-7d4b9c8f6d-x2kqp"));
    assert_false(pod_exists("shop", "web-7d4b9c8f6d-q8zl4"));
    assert_false(pod_exists("shop", "api-5f6c7d8e9f-m3n4p"));
    assert_false(pod_exists("shop", "redis-0"));
    assert_string_equal(o.prev_field, "spec.unschedulable");
    assert_string_equal(o.prev_value, "false");
    assert_true(node_unschedulable());

    /* Left alone, with reasons. */
    assert_true(has_line(o.skipped, "monitoring/node-exporter-8k2xv DaemonSet"));
    assert_true(has_line(o.skipped, "kube-system/coredns-5d78c9869d-7wq9t kube-system"));
    assert_true(has_line(o.skipped, "kube-system/kube-apiserver-" NODE " mirror"));
    assert_true(has_line(o.skipped, "shop/cache-6b8d9c7f5-wx2lm emptyDir"));
    assert_true(has_line(o.skipped, "shop/debug-shell unmanaged"));
    assert_true(has_line(o.skipped, "batch/nightly-report-28573920-7kq2m finished"));
    assert_int_equal(o.nskipped, 6);
    assert_true(pod_exists("monitoring", "node-exporter-8k2xv"));
    assert_true(pod_exists("kube-system", "coredns-5d78c9869d-7wq9t"));
    assert_true(pod_exists("shop", "cache-6b8d9c7f5-wx2lm"));
    assert_true(pod_exists("shop", "debug-shell"));
    assert_true(pod_exists("shop", "web-7d4b9c8f6d-other")); /* another node's */

    /* Retried with backoff (50, 100, 200, 200 ... ms) until shortly before the deadline, never
     * forced: every request for the blocked pod was an eviction, none a DELETE. */
    size_t attempts = count_requests("POST", "web-7d4b9c8f6d-x2kqp/eviction", 0);
    assert_true(o.rounds >= 4);
    assert_int_equal(attempts, o.rounds);
    assert_int_equal(count_requests("POST", "web-7d4b9c8f6d-q8zl4/eviction", 0), 1);
    assert_int_equal(count_requests("DELETE", NULL, -1), 0);
    assert_true(took < 1500 + 500);
    assert_true(took >= 500);
    char *body = request_body("POST", "api-5f6c7d8e9f-m3n4p/eviction", 0);
    json_t *ev = json_loads(body, 0, NULL);
    free(body);
    assert_string_equal(jstr(ev, "apiVersion", NULL, NULL), "policy/v1");
    assert_string_equal(jstr(ev, "kind", NULL, NULL), "Eviction");
    assert_string_equal(jstr(ev, "metadata", "name", NULL), "api-5f6c7d8e9f-m3n4p");
    assert_string_equal(jstr(ev, "metadata", "namespace", NULL), "shop");
    assert_null(json_object_get(ev, "deleteOptions"));
    json_decref(ev);
}

static void test_drain_pdb_relents(void **state) {
    (void)state;
    put_node_pods();
    /* The budget refuses twice, then allows (a replacement became ready elsewhere). */
    config("{\"pdb_block\":{\"shop/web-7d4b9c8f6d-x2kqp\":{\"pdb\":\"web-pdb\",\"times\":2}}}");
    clear_requests();
    struct outcome o;
    struct rsre_kube_exec_request req = {.action = "drain_node",
                                         .target = NODE,
                                         .timeout_ms = 5000,
                                         .flags = RSRE_KUBE_EXEC_F_EMPTYDIR |
                                                  RSRE_KUBE_EXEC_F_UNMANAGED};
    assert_int_equal(run_req(F->x, &req, &o), 0);
    assert_int_equal(o.rc, 0);
    assert_true(o.ok);
    assert_true(o.verified);
    assert_int_equal(o.rounds, 3);
    assert_int_equal(count_requests("POST", "web-7d4b9c8f6d-x2kqp/eviction", 0), 3);
    assert_int_equal(o.nblocked, 0);
    /* With the flags, emptyDir and unmanaged pods go too. */
    assert_int_equal(o.nids, 6);
    assert_true(has_line(o.ids, "shop/cache-6b8d9c7f5-wx2lm\n"));
    assert_true(has_line(o.ids, "shop/debug-shell\n"));
    assert_false(pod_exists("shop", "web-7d4b9c8f6d-x2kqp"));
    assert_false(pod_exists("shop", "cache-6b8d9c7f5-wx2lm"));
    assert_true(pod_exists("monitoring", "node-exporter-8k2xv"));
    assert_true(pod_exists("kube-system", "coredns-5d78c9869d-7wq9t"));
    assert_true(node_unschedulable());

    /* A drain of an already drained, cordoned node: nothing to write, verified. */
    clear_requests();
    act("drain_node", NODE, NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.changed, 0);
    assert_string_equal(o.prev_value, "true");
    assert_non_null(strstr(o.message, "already cordoned"));
    assert_int_equal(count_requests("PATCH", NULL, -1), 0);
    assert_int_equal(count_requests("POST", NULL, -1), 0);
}

static void test_drain_dry_runs(void **state) {
    (void)state;
    put_node_pods();
    config("{\"pdb_block\":{\"shop/web-7d4b9c8f6d-x2kqp\":{\"pdb\":\"web-pdb\"}}}");

    /* Server-side: the cordon PATCH and every eviction carry dryRun; the budget is still
     * consulted (reported, not retried); nothing changes. */
    clear_requests();
    struct outcome o;
    act("drain_node", NODE, NULL, RSRE_KUBE_EXEC_DRY_SERVER, &o);
    assert_int_equal(o.rc, -EAGAIN);
    assert_int_equal(o.dry, RSRE_KUBE_EXEC_DRY_SERVER);
    assert_int_equal(o.nids, 3);
    assert_int_equal(o.nblocked, 1);
    assert_int_equal(o.rounds, 1);
    assert_non_null(strstr(o.message, "would be evicted"));
    assert_int_equal(count_requests("PATCH", "/api/v1/nodes/" NODE, 1), 1);
    assert_int_equal(count_requests("PATCH", NULL, 0), 0);
    assert_int_equal(count_requests("POST", "/eviction", 1), 4);
    assert_int_equal(count_requests("POST", "/eviction", 0), 0);
    char *body = request_body("POST", "redis-0/eviction", 0);
    assert_non_null(strstr(body, "\"deleteOptions\":{\"dryRun\":[\"All\"]}"));
    free(body);
    assert_false(node_unschedulable());
    assert_true(pod_exists("shop", "web-7d4b9c8f6d-q8zl4"));
    assert_true(pod_exists("shop", "redis-0"));

    /* Client-side: reads only. */
    clear_requests();
    act("drain_node", NODE, NULL, RSRE_KUBE_EXEC_DRY_CLIENT, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.nids, 4); /* the budget is not known without asking */
    assert_false(o.verified);
    assert_non_null(strstr(o.message, "would be cordoned"));
    assert_int_equal(count_requests("GET", NULL, -1), count_requests(NULL, NULL, -1));
    assert_false(node_unschedulable());
    assert_true(pod_exists("shop", "redis-0"));
}

static void test_drain_errors(void **state) {
    (void)state;
    put_node_pods();
    struct outcome o;

    /* 404: no such node. */
    act("drain_node", "10.0.10.99", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, RSRE_ENOTFOUND);
    assert_int_equal(o.http_status, 404);
    assert_string_equal(o.reason, "NotFound");
    assert_string_equal(o.step, "read");

    /* 403 on evictions: each pod failed with the RBAC text; nothing evicted. */
    config("{\"forbidden\":[{\"verb\":\"create\",\"resource\":\"pods/eviction\"}]}");
    act("drain_node", NODE, NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_int_equal(o.http_status, 403);
    assert_string_equal(o.reason, "Forbidden");
    assert_int_equal(o.nfailed, 4);
    assert_non_null(strstr(o.failed, "cannot create resource \"pods/eviction\""));
    assert_int_equal(o.nids, 0);
    assert_true(pod_exists("shop", "redis-0"));

    /* 403 on the cordon: stops before any eviction. */
    ctl0("POST", "/_test/objects",
         "{\"kind\":\"Node\",\"metadata\":{\"name\":\"" NODE "\"},"
         "\"spec\":{}}");
    config("{\"forbidden\":[{\"verb\":\"patch\",\"resource\":\"nodes\"}]}");
    clear_requests();
    act("drain_node", NODE, NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_string_equal(o.step, "write");
    assert_non_null(strstr(o.message, "forbidden"));
    assert_int_equal(count_requests("POST", NULL, -1), 0);

    /* Evictions the server answers 201 but does not carry out fail verification. */
    config("{\"forbidden\":[],\"ignore_writes\":true}");
    act("drain_node", NODE, NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -ESTALE);
    assert_string_equal(o.step, "verify");
    assert_false(o.verified);
}

/* ---- tests: rollout restart --------------------------------------------------------------- */

static void test_rollout_restart(void **state) {
    (void)state;
    put_deployment("shop", "web", 3, 0);
    put_deployment("shop", "paused", 1, 1);
    put_workload("StatefulSet", "data", "redis");
    put_workload("DaemonSet", "monitoring", "node-exporter");
    put_deployment("kube-system", "coredns", 2, 0);
    struct outcome o;

    /* Dry runs change nothing. */
    act("rollout_restart", "shop/web", NULL, RSRE_KUBE_EXEC_DRY_SERVER, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    act("rollout_restart", "shop/web", NULL, RSRE_KUBE_EXEC_DRY_CLIENT, &o);
    assert_int_equal(o.rc, 0);
    json_t *d = api_get("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_null(template_annotation(d, RSRE_KUBE_EXEC_RESTARTED_AT));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(d, "metadata"), "generation")), 4);
    json_decref(d);

    clear_requests();
    act("rollout_restart", "shop/web", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_string_equal(o.kind, "deployment");
    assert_string_equal(o.ids, "shop/web\n");
    assert_string_equal(o.prev_field,
                        "spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt");
    assert_string_equal(o.prev_value, "null");
    d = api_get("/apis/apps/v1/namespaces/shop/deployments/web");
    const char *at = template_annotation(d, RSRE_KUBE_EXEC_RESTARTED_AT);
    assert_non_null(at);
    int64_t at_ms = 0;
    assert_int_equal(rsre_kube_time_parse(at, &at_ms), 0);
    assert_int_equal(strlen(at), 20); /* 2024-05-01T10:00:00Z */
    assert_true(llabs((long long)(at_ms / 1000 - (int64_t)time(NULL))) < 5);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(d, "metadata"), "generation")), 5);
    char first_at[32];
    snprintf(first_at, sizeof(first_at), "%s", at);
    json_decref(d);
    char *body = request_body("PATCH", "/deployments/web", 0);
    assert_non_null(strstr(body, "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":"
                                 "{\"kubectl.kubernetes.io/restartedAt\":\""));
    free(body);
    assert_int_equal(count_requests("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web", 0),
                     1);

    /* A second restart within the same second still changes the template. */
    act("restart_backend", "shop/web", "Deployment", RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    char want_prev[48];
    snprintf(want_prev, sizeof(want_prev), "\"%s\"", first_at);
    assert_string_equal(o.prev_value, want_prev);
    d = api_get("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(d, "metadata"), "generation")), 6);
    json_decref(d);

    /* StatefulSet and DaemonSet; other template annotations are kept. */
    act("restart_shared_dependency", "data/redis", "statefulset", RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_string_equal(o.kind, "statefulset");
    d = api_get("/apis/apps/v1/namespaces/data/statefulsets/redis");
    assert_non_null(template_annotation(d, RSRE_KUBE_EXEC_RESTARTED_AT));
    assert_string_equal(template_annotation(d, "prometheus.io/scrape"), "true");
    json_decref(d);
    act("rollout_restart", "monitoring/node-exporter", "daemonset", RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);

    /* kube-system, named explicitly. */
    act("rollout_restart", "kube-system/coredns", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);

    /* Paused: refused, nothing written. */
    clear_requests();
    act("rollout_restart", "shop/paused", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, RSRE_EINVALID);
    assert_non_null(strstr(o.message, "paused"));
    assert_int_equal(count_requests("PATCH", NULL, -1), 0);

    /* 404 and 403. */
    act("rollout_restart", "shop/missing", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, RSRE_ENOTFOUND);
    assert_int_equal(o.http_status, 404);
    assert_non_null(strstr(o.message, "not found"));
    act("rollout_restart", "data/redis", NULL, RSRE_KUBE_EXEC_REAL, &o); /* not a Deployment */
    assert_int_equal(o.rc, RSRE_ENOTFOUND);
    config("{\"forbidden\":[{\"verb\":\"patch\",\"resource\":\"deployments\","
           "\"namespace\":\"shop\"}]}");
    act("rollout_restart", "shop/web", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_int_equal(o.http_status, 403);
    assert_string_equal(o.reason, "Forbidden");
    assert_non_null(strstr(o.message, "deployments.apps \"web\" is forbidden"));
    assert_string_equal(o.step, "write");

    /* A write the server does not keep fails verification. */
    config("{\"forbidden\":[],\"ignore_writes\":true}");
    act("rollout_restart", "shop/web", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -ESTALE);
    assert_string_equal(o.step, "verify");
    assert_false(o.verified);
}

/* ---- tests: scale ------------------------------------------------------------------------- */

static void test_scale(void **state) {
    (void)state;
    put_deployment("demo", "image-factory", 3, 0);
    put_deployment("tekton-pipelines", "tekton-pipelines-controller", 1, 0);
    put_workload("StatefulSet", "data", "nats");
    struct outcome o;

    /* Dry runs: the scale PATCH carries dryRun, the count stays. */
    clear_requests();
    act("scale_workload_to_zero", "demo/image-factory", NULL, RSRE_KUBE_EXEC_DRY_SERVER, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_int_equal(o.prev_replicas, 3);
    assert_int_equal(count_requests("PATCH", "/deployments/image-factory/scale", 1), 1);
    assert_int_equal(replicas_of("deployments", "demo", "image-factory"), 3);
    act("scale_workload_to_zero", "demo/image-factory", NULL, RSRE_KUBE_EXEC_DRY_CLIENT, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.prev_replicas, 3);
    assert_int_equal(replicas_of("deployments", "demo", "image-factory"), 3);

    /* To zero through the scale subresource, previous count recorded. */
    clear_requests();
    act("scale_workload_to_zero", "demo/image-factory", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_int_equal(o.prev_replicas, 3);
    assert_string_equal(o.prev_field, "spec.replicas");
    assert_string_equal(o.prev_value, "3");
    assert_string_equal(o.ids, "demo/image-factory\n");
    json_t *reqs = ctl("GET", "/_test/requests", NULL);
    assert_int_equal(json_array_size(reqs), 3);
    json_t *p = json_array_get(reqs, 1);
    assert_string_equal(json_string_value(json_object_get(p, "path")),
                        "/apis/apps/v1/namespaces/demo/deployments/image-factory/scale");
    assert_string_equal(json_string_value(json_object_get(p, "content_type")),
                        "application/merge-patch+json");
    assert_string_equal(json_string_value(json_object_get(p, "body")),
                        "{\"spec\":{\"replicas\":0}}");
    json_decref(reqs);
    assert_int_equal(replicas_of("deployments", "demo", "image-factory"), 0);

    /* Again: already 0 (the Scale omits spec.replicas then), nothing written. */
    clear_requests();
    act("scale_workload_to_zero", "demo/image-factory", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.changed, 0);
    assert_int_equal(o.prev_replicas, 0);
    assert_int_equal(count_requests("PATCH", NULL, -1), 0);

    /* Resume to the recorded count; a "resume" that would scale down is refused. */
    act_n("resume_workload", "demo/image-factory", "deployment", 3, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.prev_replicas, 0);
    assert_int_equal(replicas_of("deployments", "demo", "image-factory"), 3);
    act_n("resume_workload", "demo/image-factory", "deployment", 1, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, RSRE_EBOUNDARY);
    assert_int_equal(replicas_of("deployments", "demo", "image-factory"), 3);

    /* scale_dependency: any count, StatefulSet (no spec.replicas: defaults to 1). */
    act_n("scale_dependency", "data/nats", "statefulset", 3, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.prev_replicas, 1);
    assert_int_equal(replicas_of("statefulsets", "data", "nats"), 3);

    /* Down only: up is refused before writing; default 0. */
    clear_requests();
    act_n("scale_shared_controllers_down", "tekton-pipelines/tekton-pipelines-controller", NULL, 2,
          RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, RSRE_EBOUNDARY);
    assert_int_equal(o.prev_replicas, 1);
    assert_int_equal(count_requests("PATCH", NULL, -1), 0);
    act("scale_shared_controllers_down", "tekton-pipelines/tekton-pipelines-controller", NULL,
        RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(replicas_of("deployments", "tekton-pipelines", "tekton-pipelines-controller"),
                     0);

    /* 404 and 403 on the scale subresource. */
    act("scale_workload_to_zero", "demo/nope", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, RSRE_ENOTFOUND);
    assert_string_equal(o.step, "read");
    config("{\"forbidden\":[{\"verb\":\"patch\",\"resource\":\"deployments/scale\"}]}");
    act_n("scale_dependency", "demo/image-factory", NULL, 1, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_non_null(strstr(o.message, "cannot patch resource \"deployments/scale\""));
    assert_int_equal(replicas_of("deployments", "demo", "image-factory"), 3);
    config("{\"forbidden\":[{\"verb\":\"get\",\"resource\":\"deployments/scale\"}]}");
    act_n("scale_dependency", "demo/image-factory", NULL, 1, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_string_equal(o.step, "read");
}

/* ---- tests: CronJobs ---------------------------------------------------------------------- */

static void test_cronjob(void **state) {
    (void)state;
    put_cronjob("batch", "nightly-report", 0);
    struct outcome o;
    act("suspend_cronjob", "batch/nightly-report", NULL, RSRE_KUBE_EXEC_DRY_SERVER, &o);
    assert_int_equal(o.rc, 0);
    act("suspend_cronjob", "batch/nightly-report", NULL, RSRE_KUBE_EXEC_DRY_CLIENT, &o);
    assert_int_equal(o.rc, 0);
    json_t *c = api_get("/apis/batch/v1/namespaces/batch/cronjobs/nightly-report");
    assert_null(json_object_get(json_object_get(c, "spec"), "suspend"));
    json_decref(c);

    clear_requests();
    act("suspend_cronjob", "batch/nightly-report", "CronJob", RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_string_equal(o.kind, "cronjob");
    assert_string_equal(o.prev_field, "spec.suspend");
    assert_string_equal(o.prev_value, "false");
    assert_int_equal(
        count_requests("PATCH", "/apis/batch/v1/namespaces/batch/cronjobs/nightly-report", 0), 1);
    c = api_get("/apis/batch/v1/namespaces/batch/cronjobs/nightly-report");
    assert_true(json_is_true(json_object_get(json_object_get(c, "spec"), "suspend")));
    assert_string_equal(jstr(c, "spec", "schedule", NULL), "*/5 * * * *");
    json_decref(c);

    act("suspend_cronjob", "batch/nightly-report", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.changed, 0);

    act("resume_workload", "batch/nightly-report", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    assert_string_equal(o.prev_value, "true");
    c = api_get("/apis/batch/v1/namespaces/batch/cronjobs/nightly-report");
    assert_false(json_is_true(json_object_get(json_object_get(c, "spec"), "suspend")));
    json_decref(c);

    act("suspend_cronjob", "batch/missing", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, RSRE_ENOTFOUND);
    config("{\"forbidden\":[{\"verb\":\"patch\",\"resource\":\"cronjobs\"}]}");
    act("suspend_cronjob", "batch/nightly-report", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_non_null(strstr(o.message, "cronjobs.batch \"nightly-report\" is forbidden"));
}

/* ---- tests: finished pods ----------------------------------------------------------------- */

static void put_finished_pods(void) {
    put_pod("shop", "migrate-28573920-a1", NODE, "Succeeded", "Job:migrate-28573920", NULL, NULL);
    put_pod("shop", "web-7d4b9c8f6d-evicted", NODE, "Failed", "ReplicaSet:web-7d4b9c8f6d", NULL,
            NULL);
    put_pod("shop", "web-7d4b9c8f6d-x2kqp", NODE, "Running", "ReplicaSet:web-7d4b9c8f6d", NULL,
            NULL);
    put_pod("shop", "api-pending", NODE, "Pending", "ReplicaSet:api", NULL, NULL);
    put_pod("batch", "nightly-report-28573920-7kq2m", OTHER_NODE, "Succeeded",
            "Job:nightly-report-28573920", NULL, NULL);
    put_pod("kube-system", "kube-proxy-upgrade-x7", NODE, "Succeeded", "Job:kube-proxy-upgrade",
            NULL, NULL);
}

static void test_delete_finished_pods(void **state) {
    (void)state;
    put_finished_pods();
    struct outcome o;

    /* Dry runs: DeleteOptions.dryRun in the body (the server reads the body's), nothing goes. */
    clear_requests();
    act("delete_finished_pods", "shop", NULL, RSRE_KUBE_EXEC_DRY_SERVER, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.nids, 2);
    assert_int_equal(count_requests("DELETE", NULL, -1), 2);
    char *body = request_body("DELETE", "/pods/migrate-28573920-a1", 0);
    assert_non_null(strstr(body, "\"dryRun\":[\"All\"]"));
    free(body);
    assert_true(pod_exists("shop", "migrate-28573920-a1"));
    clear_requests();
    act("delete_finished_pods", "*", NULL, RSRE_KUBE_EXEC_DRY_CLIENT, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.nids, 3);
    assert_int_equal(count_requests("DELETE", NULL, -1), 0);
    assert_true(pod_exists("batch", "nightly-report-28573920-7kq2m"));

    /* One namespace: Succeeded and Failed, with uid preconditions; Running/Pending stay. */
    clear_requests();
    act("delete_finished_pods", "shop", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_true(o.verified);
    /* Two lists (Succeeded, Failed), two DELETEs, two lists to verify. */
    assert_int_equal(count_requests("GET", "/api/v1/namespaces/shop/pods", -1), 4);
    assert_int_equal(count_requests("DELETE", NULL, -1), 2);
    assert_string_equal(o.kind, "pods");
    assert_int_equal(o.nids, 2);
    assert_true(has_line(o.ids, "shop/migrate-28573920-a1\n"));
    assert_true(has_line(o.ids, "shop/web-7d4b9c8f6d-evicted\n"));
    assert_string_equal(o.prev_field, "");
    assert_false(pod_exists("shop", "migrate-28573920-a1"));
    assert_false(pod_exists("shop", "web-7d4b9c8f6d-evicted"));
    assert_true(pod_exists("shop", "web-7d4b9c8f6d-x2kqp"));
    assert_true(pod_exists("shop", "api-pending"));
    assert_true(pod_exists("batch", "nightly-report-28573920-7kq2m"));
    body = request_body("DELETE", "/pods/web-7d4b9c8f6d-evicted", 0);
    json_t *opts = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(jstr(opts, "preconditions", "uid", NULL));
    assert_int_equal(strlen(jstr(opts, "preconditions", "uid", NULL)), 36);
    assert_null(json_object_get(opts, "dryRun"));
    json_decref(opts);

    /* Every namespace: kube-system is skipped unless named. */
    act("delete_finished_pods", "*", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_string_equal(o.ids, "batch/nightly-report-28573920-7kq2m\n");
    assert_true(has_line(o.skipped, "kube-system/kube-proxy-upgrade-x7 kube-system"));
    assert_true(pod_exists("kube-system", "kube-proxy-upgrade-x7"));
    act("delete_finished_pods", "kube-system", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_string_equal(o.ids, "kube-system/kube-proxy-upgrade-x7\n");
    assert_false(pod_exists("kube-system", "kube-proxy-upgrade-x7"));

    /* Nothing left: a clean no-op. */
    act("delete_finished_pods", "*", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.changed, 0);

    /* 403 on list, 403 on delete. */
    put_finished_pods();
    config("{\"forbidden\":[{\"verb\":\"list\",\"resource\":\"pods\"}]}");
    act("delete_finished_pods", "*", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_string_equal(o.step, "list");
    assert_non_null(strstr(o.message, "pods is forbidden"));
    config("{\"forbidden\":[{\"verb\":\"delete\",\"resource\":\"pods\"}]}");
    act("delete_finished_pods", "shop", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -EPERM);
    assert_int_equal(o.nfailed, 2);
    assert_int_equal(o.nids, 0);
    assert_true(pod_exists("shop", "migrate-28573920-a1"));

    /* Deletions the server does not carry out fail verification. */
    config("{\"forbidden\":[],\"ignore_writes\":true}");
    act("delete_finished_pods", "shop", NULL, RSRE_KUBE_EXEC_REAL, &o);
    assert_int_equal(o.rc, -ESTALE);
    assert_string_equal(o.step, "verify");
}

/* ---- tests: deadline, destroy, abandon ---------------------------------------------------- */

static void test_deadline(void **state) {
    (void)state;
    /* A server that accepts connections and never answers. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 16), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct rsre_kube_config cfg;
    struct rsre_kube *k;
    assert_int_equal(rsre_kube_config_url(&cfg, url), 0);
    assert_int_equal(rsre_kube_create(F->http, &cfg, &k), 0);
    rsre_kube_config_clear(&cfg);
    struct rsre_kube_exec *x;
    struct rsre_kube_exec_config xc;
    test_config(&xc);
    char err[256];
    assert_int_equal(rsre_kube_exec_create(k, &xc, &x, err, sizeof(err)), 0);

    struct outcome o;
    struct rsre_kube_exec_request req = {
        .action = "cordon_node", .target = NODE, .timeout_ms = 300};
    uint64_t t0 = now_ms();
    assert_int_equal(run_req(x, &req, &o), 0);
    uint64_t took = now_ms() - t0;
    assert_int_equal(o.rc, -ETIMEDOUT);
    assert_string_equal(o.step, "read");
    assert_true(took >= 250 && took < 3000);

    /* Destroy with an operation in flight: its callback runs with -ECANCELED, at once. */
    memset(&o, 0, sizeof(o));
    req.timeout_ms = 0;
    assert_int_equal(rsre_kube_exec_run(x, &req, on_result, &o, NULL, err, sizeof(err)), 0);
    assert_int_equal(rsre_kube_exec_active(x), 1);
    rsre_kube_exec_destroy(x);
    assert_int_equal(o.done, 1);
    assert_int_equal(o.rc, -ECANCELED);

    /* The kube client closing first completes the operation with -ECANCELED too. */
    assert_int_equal(rsre_kube_exec_create(k, &xc, &x, err, sizeof(err)), 0);
    memset(&o, 0, sizeof(o));
    assert_int_equal(rsre_kube_exec_run(x, &req, on_result, &o, NULL, err, sizeof(err)), 0);
    rsre_kube_destroy(k);
    assert_true(wait_done(&o, WAIT_MS));
    assert_int_equal(o.rc, -ECANCELED);
    assert_int_equal(rsre_kube_exec_active(x), 0);
    rsre_kube_exec_destroy(x);
    close(s);
}

static void test_abandon_and_shutdown(void **state) {
    (void)state;
    put_node_pods();
    config("{\"pdb_block\":{\"shop/web-7d4b9c8f6d-x2kqp\":{\"pdb\":\"web-pdb\"}}}");
    struct outcome o = {0};
    struct rsre_kube_exec_op *op = NULL;
    char err[256];
    struct rsre_kube_exec_request req = {.action = "drain_node", .target = NODE};
    assert_int_equal(rsre_kube_exec_run(F->x, &req, on_result, &o, &op, err, sizeof(err)), 0);
    assert_non_null(op);
    /* Let it get into its eviction rounds, then abandon it: no callback, ever. */
    uint64_t end = now_ms() + 400;
    while (now_ms() < end) {
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    assert_int_equal(o.done, 0);
    rsre_kube_exec_abandon(op);
    assert_int_equal(rsre_kube_exec_active(F->x), 0);
    end = now_ms() + 300;
    while (now_ms() < end) {
        uv_run(&F->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(o.done, 0);
    assert_true(pod_exists("shop", "web-7d4b9c8f6d-x2kqp"));
    rsre_kube_exec_abandon(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cordon_uncordon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_pdb_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_pdb_relents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_dry_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollout_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cronjob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_finished_pods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandon_and_shutdown, setup, teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
