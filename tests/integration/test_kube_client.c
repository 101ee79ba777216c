/*
 * Integration tests of the HTTP layer (common/curl_uv.h), the Kubernetes client and informers
 * (common/kube.h), the "kube" collector (agent/col_kube.c) and the "delete_finished_pods"
 * action (agent/act_pods.c), against tests/support/kube_api_server.py: a stand-in API server
 * speaking real v1 JSON, list responses and watch streams, started per test on 127.0.0.1
 * with a free port.
 *
 * What is shown:
 *   - list + watch: objects added, modified and deleted appear exactly once; bookmarks move
 *     the resourceVersion; objects on other nodes are filtered by the API server;
 *   - changes made while the watch was down, followed by a 410 Gone (as an ERROR event, or as
 *     an HTTP 410), are recovered by a re-list without double counting and without misses,
 *     including a name reused by a new object (DELETED + ADDED);
 *   - a dropped connection reconnects and resumes from the last resourceVersion;
 *   - a required bearer token: 401 is an error (-EACCES), a static or file token works;
 *   - delete_finished_pods removes only Succeeded/Failed pods of its node, with uid
 *     preconditions, and its dry run deletes nothing; a failed precondition deletes nothing;
 *   - the collector emits NodeConditions / PodChurn / PullError on change (not on heartbeats)
 *     and at resync;
 *   - kubeconfig and in-cluster configuration; oversized bodies and lines -> RSRE_ELIMIT;
 *     cancel, abandon and destroy with requests in flight.
 *
 * The agent core is not linked here: the few agent functions the collector and the action
 * call are provided below as weak definitions backed by a fake agent (a real agent core,
 * when linked, would override them; these tests then still drive the same rows).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "agent/agent.h"
#include "common/curl_uv.h"
#include "common/error.h"
#include "common/kube.h"
#include "common/kube_json.h"
#include "common/log.h"
#include "../support/port_server.c"
#include "../support/server_http.c"

#define NODE "10.0.10.21"
#define OTHER_NODE "10.0.10.22"
#define WAIT_MS 10000

/* ---- the fake agent ----------------------------------------------------------------------- */

struct sig_rec {
    int kind;
    /* node conditions */
    int ready, disk, ntaints, unschedulable;
    /* pod churn */
    uint32_t running, pending, succeeded, failed, evicted, unknown, window;
    uint64_t restarts_total;
    uint32_t restarts_in_window, evicted_in_window;
    /* pull error */
    char pod[128], container[64], image[160], message[512];
    int reason;
    uint32_t attempts;
};

struct rsre_agent {
    struct rsre_agent_config cfg;
    struct rsre_kube *kube;
    struct sig_rec sigs[512];
    size_t nsigs;
};

struct rsre_collect_run {
    int done, rc;
};

static int action_done_calls;

__attribute__((weak)) int64_t rsre_now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((weak)) const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a) {
    return &a->cfg;
}

__attribute__((weak)) struct rsre_kube *rsre_agent_kube(struct rsre_agent *a) {
    return a->kube;
}

__attribute__((weak)) int rsre_agent_emit(struct rsre_agent *a, const rsre_signal *s) {
    if (a->nsigs >= sizeof(a->sigs) / sizeof(a->sigs[0])) {
        return RSRE_ELIMIT;
    }
    struct sig_rec *r = &a->sigs[a->nsigs++];
    memset(r, 0, sizeof(*r));
    r->kind = (int)s->kind_case;
    switch (s->kind_case) {
    case ROBOT_SRE__AGENT__V1__SIGNAL__KIND_NODE_CONDITIONS: {
        const RobotSre__Agent__V1__NodeConditions *nc = s->node_conditions;
        r->ready = nc->ready ? (int)nc->ready->status : 0;
        r->disk = nc->disk_pressure ? (int)nc->disk_pressure->status : 0;
        r->ntaints = (int)nc->n_taints;
        r->unschedulable = nc->unschedulable;
        break;
    }
    case ROBOT_SRE__AGENT__V1__SIGNAL__KIND_POD_CHURN: {
        const RobotSre__Agent__V1__PodChurn *c = s->pod_churn;
        r->running = c->running;
        r->pending = c->pending;
        r->succeeded = c->succeeded;
        r->failed = c->failed;
        r->evicted = c->evicted;
        r->unknown = c->unknown;
        r->window = c->window_sec;
        r->restarts_total = c->restarts_total;
        r->restarts_in_window = c->restarts_in_window;
        r->evicted_in_window = c->evicted_in_window;
        break;
    }
    case ROBOT_SRE__AGENT__V1__SIGNAL__KIND_PULL_ERROR: {
        const RobotSre__Agent__V1__PullError *p = s->pull_error;
        snprintf(r->pod, sizeof(r->pod), "%s/%s", p->pod_namespace, p->pod_name);
        snprintf(r->container, sizeof(r->container), "%s", p->container);
        snprintf(r->image, sizeof(r->image), "%s", p->image);
        snprintf(r->message, sizeof(r->message), "%s", p->message);
        r->reason = (int)p->reason;
        r->attempts = p->attempts;
        break;
    }
    default:
        break;
    }
    return 0;
}

__attribute__((weak)) void rsre_collect_done(struct rsre_collect_run *run, int rc) {
    run->done++;
    run->rc = rc;
}

__attribute__((weak)) void rsre_action_add_removed(struct rsre_action_ctx *ctx, const char *id) {
    char **n = realloc(ctx->removed, (ctx->nremoved + 1) * sizeof(*n));
    assert_non_null(n);
    ctx->removed = n;
    ctx->removed[ctx->nremoved++] = strdup(id);
}

__attribute__((weak)) void rsre_action_set(struct rsre_action_ctx *ctx,
                                           RobotSre__Agent__V1__ActionStatus status,
                                           const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
    va_end(ap);
    ctx->result.status = status;
    ctx->result.message = ctx->message;
}

__attribute__((weak)) void rsre_action_done(struct rsre_action_ctx *ctx) {
    (void)ctx;
    action_done_calls++;
}

extern const struct rsre_collector_desc rsre_collector_kube;
extern const struct rsre_action_desc rsre_action_delete_finished_pods;

/* ---- fixture: the API server, a loop, an HTTP client and a kube client -------------------- */

struct fx {
    pid_t pid;
    int port;
    char base[64];
    char dir[64];
    uv_loop_t loop;
    uv_timer_t tick;
    struct rsre_http *http;
    struct rsre_kube *kube;
};

static struct fx *F;

static void tick_cb(uv_timer_t *t) {
    (void)t;
}

/* Starts kube_api_server.py with extra arguments; fills *pid and *port. */
static int spawn_server(const char *const *extra, pid_t *pid_out, int *port) {
    const char *argv[24] = {"/usr/bin/python3",
                            RSRE_SOURCE_DIR "/tests/support/kube_api_server.py",
                            "--port",
                            "0",
                            "--bookmark-interval",
                            "0.2"};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n < 23; i++) {
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    *port = port_server_start((char *const *)argv, NULL, pid_out);
    return *port > 0 ? 0 : -1;
}

static int start_server(struct fx *f) {
    if (spawn_server(NULL, &f->pid, &f->port) != 0) {
        return -1;
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
    return 0;
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    F = f;
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "error");
    assert_int_equal(start_server(f), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-kube-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, tick_cb, 10, 10);
    assert_int_equal(rsre_http_create(&f->loop, &f->http), 0);
    struct rsre_kube_config cfg;
    assert_int_equal(rsre_kube_config_url(&cfg, f->base), 0);
    assert_int_equal(rsre_kube_create(f->http, &cfg, &f->kube), 0);
    rsre_kube_config_clear(&cfg);
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    struct fx *f = *state;
    rsre_kube_destroy(f->kube);
    rsre_http_destroy(f->http);
    uv_timer_stop(&f->tick);
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 1000 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    port_server_stop(&f->pid);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    F = NULL;
    return 0;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until pred(arg) holds or ms pass; returns the predicate's last value. */
static int run_until(int (*pred)(void *), void *arg, uint64_t ms) {
    uint64_t end = now_ms() + ms;
    while (!pred(arg)) {
        if (now_ms() > end) {
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

/* ---- blocking control requests to the test server ----------------------------------------- */

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

/* Loads a fixture, applies `edit` (a JSON merge patch given as text, may be NULL) and stores
 * it on the server. Returns the stored object's uid (static buffer). */
static const char *put_fixture(const char *name, const char *edit) {
    static char uid[64];
    char path[1024];
    snprintf(path, sizeof(path), "%s/kube/%s", RSRE_TEST_DATA, name);
    json_t *j = json_load_file(path, 0, NULL);
    assert_non_null(j);
    if (edit) {
        json_t *patch = json_loads(edit, 0, NULL);
        assert_non_null(patch);
        /* A shallow-recursive merge is enough for the edits these tests make. */
        const char *k;
        json_t *v;
        json_object_foreach(patch, k, v) {
            json_t *cur = json_object_get(j, k);
            if (json_is_object(cur) && json_is_object(v)) {
                json_object_update(cur, v);
            } else {
                json_object_set(j, k, v);
            }
        }
        json_decref(patch);
    }
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    json_t *stored = ctl("POST", "/_test/objects", body);
    free(body);
    snprintf(uid, sizeof(uid), "%s",
             json_string_value(json_object_get(json_object_get(stored, "metadata"), "uid")));
    json_decref(stored);
    return uid;
}

static json_int_t server_state(const char *key) {
    json_t *st = ctl("GET", "/_test/state", NULL);
    json_int_t v = json_integer_value(json_object_get(st, key));
    json_decref(st);
    return v;
}

/* Number of recorded API requests with this method (and path prefix, when given). */
static size_t count_requests(const char *method, const char *prefix) {
    json_t *r = ctl("GET", "/_test/requests", NULL);
    size_t n = 0, i;
    json_t *it;
    json_array_foreach(r, i, it) {
        const char *m = json_string_value(json_object_get(it, "method"));
        const char *p = json_string_value(json_object_get(it, "path"));
        if (strcmp(m, method) == 0 && (!prefix || strncmp(p, prefix, strlen(prefix)) == 0)) {
            n++;
        }
    }
    json_decref(r);
    return n;
}

/* ---- HTTP layer --------------------------------------------------------------------------- */

struct hres {
    int calls, rc;
    long status;
    size_t body_len, lines;
    char first[64];
};

static void hdone(void *arg, int rc, const struct rsre_http_response *resp) {
    struct hres *r = arg;
    r->calls++;
    r->rc = rc;
    r->status = resp->status;
    r->body_len = resp->body_len;
    snprintf(r->first, sizeof(r->first), "%.40s", resp->body);
}

static int hline(void *arg, long status, const char *line, size_t len) {
    (void)status;
    (void)line;
    (void)len;
    ((struct hres *)arg)->lines++;
    return 0;
}

static int hres_done(void *arg) {
    return ((struct hres *)arg)->calls > 0;
}

static void http_get(const char *path, size_t max_body, rsre_http_line_cb on_line, size_t max_line,
                     struct hres *r) {
    char url[256];
    snprintf(url, sizeof(url), "%s%s", F->base, path);
    memset(r, 0, sizeof(*r));
    struct rsre_http_opts o = {.url = url,
                               .max_body = max_body,
                               .on_line = on_line,
                               .max_line = max_line,
                               .timeout_ms = 20000,
                               .done = hdone,
                               .arg = r};
    assert_int_equal(rsre_http_request(F->http, &o, NULL), 0);
    assert_true(run_until(hres_done, r, 20000));
    assert_int_equal(r->calls, 1);
}

static void test_http_bodies_and_limits(void **state) {
    (void)state;
    struct hres r;
    http_get("/_test/blob?bytes=1000", 0, NULL, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 1000);
    assert_memory_equal(r.first, "{\"kind\":\"Blob\"", 14);
    /* Content-Length above the bound: refused before the body is read. */
    http_get("/_test/blob?bytes=200000", 100000, NULL, 0, &r);
    assert_int_equal(r.rc, RSRE_ELIMIT);
    /* Chunked (no length): refused while it arrives. */
    http_get("/_test/blob?bytes=3000000&chunked=1", 1000000, NULL, 0, &r);
    assert_int_equal(r.rc, RSRE_ELIMIT);
    /* Streaming: a line longer than its bound. */
    http_get("/_test/longline?bytes=300000", 0, hline, 100000, &r);
    assert_int_equal(r.rc, RSRE_ELIMIT);
    assert_int_equal(r.lines, 0);
    /* Streaming, non-2xx: the Status body is collected whole. */
    http_get("/api/v1/namespaces/x/pods/nope", 0, hline, 0, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 404);
    assert_true(r.body_len > 0);
    assert_int_equal(r.lines, 0);
    /* A port nobody listens on. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sl), 0);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    memset(&r, 0, sizeof(r));
    struct rsre_http_opts o = {.url = url, .done = hdone, .arg = &r};
    assert_int_equal(rsre_http_request(F->http, &o, NULL), 0);
    assert_true(run_until(hres_done, &r, 5000));
    assert_int_equal(r.rc, -ECONNREFUSED);
    /* Requests refused up front never call back. */
    struct rsre_http_opts bad = {.url = "ftp://x/", .done = hdone, .arg = &r};
    assert_int_equal(rsre_http_request(F->http, &bad, NULL), -EINVAL);
    struct rsre_http_opts crlf = {
        .url = F->base, .bearer_token = "a\r\nX: y", .done = hdone, .arg = &r};
    assert_int_equal(rsre_http_request(F->http, &crlf, NULL), -EINVAL);
    assert_int_equal(rsre_http_active(F->http), 0);
}

struct streamer {
    struct hres r;
    struct rsre_http_req *self;
    int abandon_at;
};

static int abandon_line(void *arg, long status, const char *line, size_t len) {
    (void)status;
    (void)line;
    (void)len;
    struct streamer *s = arg;
    if (++s->r.lines == (size_t)s->abandon_at) {
        rsre_http_abandon(s->self);
    }
    return 0;
}

static void test_http_cancel_abandon_destroy(void **state) {
    (void)state;
    /* A watch stream that stays open; cancel it: done runs later with -ECANCELED. */
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/pods?watch=1&resourceVersion=0&allowWatchBookmarks=true",
             F->base);
    struct hres r1 = {0};
    struct rsre_http_req *req;
    struct rsre_http_opts o = {.url = url, .on_line = hline, .done = hdone, .arg = &r1};
    assert_int_equal(rsre_http_request(F->http, &o, &req), 0);
    run_for(700); /* bookmarks arrive every 200 ms */
    assert_true(r1.lines >= 2);
    rsre_http_cancel(req);
    assert_int_equal(r1.calls, 0); /* never from inside cancel */
    assert_true(run_until(hres_done, &r1, 2000));
    assert_int_equal(r1.rc, -ECANCELED);

    /* Abandoned from inside its own line callback: no callback afterwards. */
    struct streamer s = {.abandon_at = 2};
    struct rsre_http_opts o2 = {.url = url, .on_line = abandon_line, .done = hdone, .arg = &s.r};
    assert_int_equal(rsre_http_request(F->http, &o2, &s.self), 0);
    run_for(1000);
    assert_int_equal(s.r.lines, 2);
    assert_int_equal(s.r.calls, 0);
    assert_int_equal(rsre_http_active(F->http), 0);

    /* Destroy with two requests in flight: both complete now with -ECANCELED. Destroy the
     * kube client first (it borrows this HTTP client); teardown tolerates NULLs. */
    struct hres r3 = {0}, r4 = {0};
    struct rsre_http_opts o3 = {.url = url, .on_line = hline, .done = hdone, .arg = &r3};
    struct rsre_http_opts o4 = {.url = url, .done = hdone, .arg = &r4};
    assert_int_equal(rsre_http_request(F->http, &o3, NULL), 0);
    assert_int_equal(rsre_http_request(F->http, &o4, NULL), 0);
    run_for(300);
    rsre_kube_destroy(F->kube);
    F->kube = NULL;
    rsre_http_destroy(F->http);
    F->http = NULL;
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.rc, -ECANCELED);
    assert_int_equal(r4.calls, 1);
    assert_int_equal(r4.rc, -ECANCELED);
}

/* ---- kube calls --------------------------------------------------------------------------- */

struct kres {
    int calls, rc;
    long status;
    char reason[RSRE_KUBE_REASON_LEN], error[256], name[256];
};

static void kdone(void *arg, const struct rsre_kube_result *res) {
    struct kres *r = arg;
    r->calls++;
    r->rc = res->rc;
    r->status = res->http_status;
    snprintf(r->error, sizeof(r->error), "%s", res->error);
    snprintf(r->reason, sizeof(r->reason), "%s", res->status ? res->status->reason : "");
    const char *n =
        json_string_value(json_object_get(json_object_get(res->body, "metadata"), "name"));
    snprintf(r->name, sizeof(r->name), "%s", n ? n : "");
}

static int kres_done(void *arg) {
    return ((struct kres *)arg)->calls > 0;
}

static void kget(struct rsre_kube *k, const char *path, struct kres *r) {
    memset(r, 0, sizeof(*r));
    assert_int_equal(rsre_kube_get(k, path, kdone, r, NULL), 0);
    assert_true(run_until(kres_done, r, WAIT_MS));
}

static void test_kube_calls(void **state) {
    (void)state;
    put_fixture("node-ready.json", NULL);
    const char *uid = put_fixture("pod-succeeded.json", NULL);
    char puid[64];
    snprintf(puid, sizeof(puid), "%s", uid);
    struct kres r;
    kget(F->kube, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.name, NODE);
    kget(F->kube, "/api/v1/namespaces/shop/pods/nope", &r);
    assert_int_equal(r.rc, RSRE_ENOTFOUND);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.reason, "NotFound");
    assert_non_null(strstr(r.error, "not found"));

    /* DELETE with a wrong uid precondition: 409, nothing deleted. */
    const char *pod = "/api/v1/namespaces/batch/pods/nightly-report-28573920-7kq2m";
    memset(&r, 0, sizeof(r));
    assert_int_equal(rsre_kube_delete(F->kube, pod, "00000000-0000-4000-8000-000000000000", NULL,
                                      "Background", kdone, &r, NULL),
                     0);
    assert_true(run_until(kres_done, &r, WAIT_MS));
    assert_int_equal(r.rc, -ESTALE);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.error, "Precondition failed"));
    kget(F->kube, pod, &r);
    assert_int_equal(r.rc, 0);

    /* PATCH (merge): cordon the node. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(rsre_kube_patch(F->kube, "/api/v1/nodes/" NODE, RSRE_KUBE_PATCH_MERGE,
                                     "{\"spec\":{\"unschedulable\":true}}", kdone, &r, NULL),
                     0);
    assert_true(run_until(kres_done, &r, WAIT_MS));
    assert_int_equal(r.rc, 0);
    json_t *reqs = ctl("GET", "/_test/requests", NULL);
    json_t *last = json_array_get(reqs, json_array_size(reqs) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "content_type")),
                        "application/merge-patch+json");
    json_decref(reqs);

    /* POST to the eviction subresource. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(
        rsre_kube_post(F->kube,
                       "/api/v1/namespaces/batch/pods/nightly-report-28573920-7kq2m/eviction",
                       "{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":"
                       "{\"name\":\"nightly-report-28573920-7kq2m\",\"namespace\":\"batch\"}}",
                       kdone, &r, NULL),
        0);
    assert_true(run_until(kres_done, &r, WAIT_MS));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 201);
    kget(F->kube, pod, &r);
    assert_int_equal(r.rc, RSRE_ENOTFOUND);

    /* Lists at a resourceVersion the server no longer has: 410 Gone -> -ESTALE. */
    kget(F->kube, "/api/v1/pods?limit=1", &r);
    assert_int_equal(r.rc, 0);
    ctl0("POST", "/_test/expire", NULL);
    kget(F->kube, "/api/v1/pods?resourceVersion=1001&resourceVersionMatch=Exact", &r);
    assert_int_equal(r.rc, -ESTALE);
    assert_int_equal(r.status, 410);
    assert_string_equal(r.reason, "Expired");
    put_fixture("pod-running.json", NULL);
    put_fixture("pod-evicted.json", NULL);
    struct rsre_kube_call *lc;
    struct kres page = {0};
    /* A continue token from before an expiry is gone too. */
    json_t *first = NULL;
    {
        CURL *e = curl_easy_init();
        char url[256];
        struct server_http_buf b = {0};
        snprintf(url, sizeof(url), "%s/api/v1/pods?limit=1", F->base);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, server_http_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        assert_int_equal(curl_easy_perform(e), CURLE_OK);
        curl_easy_cleanup(e);
        first = json_loads(b.p, 0, NULL);
        free(b.p);
    }
    const char *tok =
        json_string_value(json_object_get(json_object_get(first, "metadata"), "continue"));
    assert_non_null(tok);
    char etok[1024], cpath[1200];
    assert_int_equal(rsre_kube_escape(tok, etok, sizeof(etok)), 0);
    snprintf(cpath, sizeof(cpath), "/api/v1/pods?limit=1&continue=%s", etok);
    json_decref(first);
    put_fixture("pod-succeeded.json", "{\"metadata\":{\"name\":\"later\",\"uid\":"
                                      "\"abababab-abab-4bab-8bab-abababababab\"}}");
    ctl0("POST", "/_test/expire", NULL);
    assert_int_equal(rsre_kube_get(F->kube, cpath, kdone, &page, &lc), 0);
    assert_true(run_until(kres_done, &page, WAIT_MS));
    assert_int_equal(page.rc, -ESTALE);
    assert_int_equal(page.status, 410);

    /* Oversized answer: RSRE_ELIMIT. */
    struct rsre_kube_request big = {.path = "/_test/blob?bytes=2000000", .max_body = 1u << 20};
    memset(&r, 0, sizeof(r));
    assert_int_equal(rsre_kube_call(F->kube, &big, kdone, &r, NULL), 0);
    assert_true(run_until(kres_done, &r, WAIT_MS));
    assert_int_equal(r.rc, RSRE_ELIMIT);

    /* Abandoned calls never call back; calls alive at destroy complete with -ECANCELED. */
    struct kres a = {0}, b = {0};
    struct rsre_kube_call *c;
    assert_int_equal(rsre_kube_get(F->kube, "/api/v1/nodes", kdone, &a, &c), 0);
    rsre_kube_call_abandon(c);
    assert_int_equal(rsre_kube_get(F->kube, "/api/v1/nodes", kdone, &b, NULL), 0);
    rsre_kube_destroy(F->kube);
    F->kube = NULL;
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.rc, -ECANCELED);
    run_for(200);
    assert_int_equal(a.calls, 0);
    (void)puid;
}

/* ---- informers ---------------------------------------------------------------------------- */

struct ev_rec {
    enum rsre_kube_change ch;
    char key[320];
    char uid[64];
    char rv[64];
};

struct watcher {
    struct rsre_kube_informer *inf;
    struct ev_rec ev[1024];
    size_t nev;
    int synced_calls;
    int errors, last_error;
};

static void on_change(void *arg, enum rsre_kube_change ch, const struct rsre_kube_meta *m,
                      void *obj, void *old) {
    struct watcher *w = arg;
    assert_true(w->nev < 1024);
    struct ev_rec *e = &w->ev[w->nev++];
    e->ch = ch;
    snprintf(e->key, sizeof(e->key), "%s/%s", m->ns, m->name);
    snprintf(e->uid, sizeof(e->uid), "%s", m->uid);
    snprintf(e->rv, sizeof(e->rv), "%s", m->rv);
    const struct rsre_kube_pod *p = obj;
    assert_non_null(p);
    assert_string_equal(p->meta.name, m->name); /* obj is the decoded object */
    if (ch == RSRE_KUBE_MODIFIED) {
        assert_non_null(old);
    } else {
        assert_null(old);
    }
}

static void on_synced(void *arg) {
    ((struct watcher *)arg)->synced_calls++;
}

static void on_error(void *arg, int rc, const char *msg) {
    (void)msg;
    struct watcher *w = arg;
    w->errors++;
    w->last_error = rc;
}

static int decode_pod(const json_t *obj, void **out, char *err, size_t err_len) {
    return rsre_kube_pod_decode(obj, (struct rsre_kube_pod **)out, err, err_len);
}

static void free_pod(void *p) {
    rsre_kube_pod_free(p);
}

static void watch_pods(struct rsre_kube *k, struct watcher *w) {
    memset(w, 0, sizeof(*w));
    struct rsre_kube_informer_opts o = {
        .path = "/api/v1/pods",
        .list_kind = "PodList",
        .field_selector = "spec.nodeName=" NODE,
        .decode = decode_pod,
        .free_obj = free_pod,
        .on_change = on_change,
        .on_synced = on_synced,
        .on_error = on_error,
        .arg = w,
        .page_size = 2, /* exercise continue tokens */
        .watch_timeout_s = 30,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
    };
    assert_int_equal(rsre_kube_informer_start(k, &o, &w->inf), 0);
}

static size_t count_ev(const struct watcher *w, enum rsre_kube_change ch, const char *key) {
    size_t n = 0;
    for (size_t i = 0; i < w->nev; i++) {
        if (w->ev[i].ch == ch && strcmp(w->ev[i].key, key) == 0) {
            n++;
        }
    }
    return n;
}

static int synced(void *arg) {
    struct watcher *w = arg;
    return w->synced_calls > 0;
}

struct want_n {
    struct watcher *w;
    size_t n;
};

static int has_events(void *arg) {
    struct want_n *x = arg;
    return x->w->nev >= x->n;
}

static void wait_events(struct watcher *w, size_t n) {
    struct want_n x = {w, n};
    if (!run_until(has_events, &x, WAIT_MS)) {
        fail_msg("waited for %zu events, have %zu", n, w->nev);
    }
}

static int watching(void *arg) {
    (void)arg;
    return server_state("watchers") > 0;
}

static void wait_watching(void) {
    /* The control request blocks briefly; poll it between loop turns. */
    uint64_t end = now_ms() + WAIT_MS;
    while (now_ms() < end) {
        run_for(50);
        if (watching(NULL)) {
            return;
        }
    }
    fail_msg("the informer never opened a watch");
}

/* The cache must equal the server's pods on NODE, uid and resourceVersion included. */
static void check_cache(struct watcher *w) {
    json_t *list = NULL;
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/pods?fieldSelector=spec.nodeName%%3D%s", F->base, NODE);
    struct server_http_buf b = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, server_http_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    list = json_loads(b.p, 0, NULL);
    free(b.p);
    json_t *items = json_object_get(list, "items");
    assert_int_equal(rsre_kube_informer_size(w->inf), json_array_size(items));
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        json_t *md = json_object_get(it, "metadata");
        const char *uid = NULL;
        const struct rsre_kube_pod *p =
            rsre_kube_informer_get(w->inf, json_string_value(json_object_get(md, "namespace")),
                                   json_string_value(json_object_get(md, "name")), &uid);
        assert_non_null(p);
        assert_string_equal(uid, json_string_value(json_object_get(md, "uid")));
        assert_string_equal(p->meta.rv, json_string_value(json_object_get(md, "resourceVersion")));
    }
    json_decref(list);
}

static void stop_watch(struct watcher *w) {
    rsre_kube_informer_stop(w->inf);
    run_for(20);
}

static void load_pods(void) {
    put_fixture("pod-running.json", NULL);
    put_fixture("pod-succeeded.json", NULL);
    put_fixture("pod-evicted.json", NULL);
    put_fixture("pod-errimagepull.json", NULL);
    put_fixture("pod-other-node-succeeded.json", NULL);
}

#define RUNNING "shop/web-7d4b9c8f6d-x2kqp"
#define SUCCEEDED "batch/nightly-report-28573920-7kq2m"
#define EVICTED "shop/web-7d4b9c8f6d-9fzlw"
#define PULLING "shop/api-6f8d7c5b4-kw7rt"

static void test_informer_list_watch(void **state) {
    (void)state;
    load_pods();
    struct watcher *w = calloc(1, sizeof(*w));
    watch_pods(F->kube, w);
    assert_true(run_until(synced, w, WAIT_MS));
    /* Four pods on NODE over two pages; the other node's pod is filtered by the server. */
    assert_int_equal(w->nev, 4);
    assert_int_equal(rsre_kube_informer_size(w->inf), 4);
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, RUNNING), 1);
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, SUCCEEDED), 1);
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, EVICTED), 1);
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, PULLING), 1);
    assert_true(rsre_kube_informer_synced(w->inf));
    struct rsre_kube_informer_stats st;
    rsre_kube_informer_stats(w->inf, &st);
    assert_int_equal(st.lists, 2); /* page size 2 */
    check_cache(w);
    wait_watching();

    /* Added, modified, deleted: each seen once. */
    put_fixture("pod-imagepullbackoff.json", "{\"metadata\":{\"name\":\"api-6f8d7c5b4-zz9qd\","
                                             "\"uid\":\"9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a\"}}");
    wait_events(w, 5);
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, "shop/api-6f8d7c5b4-zz9qd"), 1);
    put_fixture("pod-running.json", "{\"status\":{\"phase\":\"Running\",\"startTime\":"
                                    "\"2024-05-02T09:00:00Z\"}}");
    wait_events(w, 6);
    assert_int_equal(count_ev(w, RSRE_KUBE_MODIFIED, RUNNING), 1);
    ctl0("DELETE", "/_test/objects/pods/shop/web-7d4b9c8f6d-9fzlw", NULL);
    wait_events(w, 7);
    assert_int_equal(count_ev(w, RSRE_KUBE_DELETED, EVICTED), 1);
    /* A pod on another node changes: no event. Bookmarks keep arriving. */
    put_fixture("pod-other-node-succeeded.json", "{\"metadata\":{\"labels\":{\"x\":\"y\"}}}");
    char srv[32];
    snprintf(srv, sizeof(srv), "%lld", (long long)server_state("rv"));
    uint64_t end = now_ms() + WAIT_MS;
    do { /* a bookmark brings the resume point to the server's latest resourceVersion */
        run_for(50);
        rsre_kube_informer_stats(w->inf, &st);
    } while (strcmp(st.rv, srv) != 0 && now_ms() < end);
    assert_string_equal(st.rv, srv);
    assert_int_equal(w->nev, 7);
    assert_true(st.bookmarks >= 1);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(st.relists_gone, 0);
    check_cache(w);
    stop_watch(w);
    free(w);
}

/* Changes while the watch is down, then 410 Gone: the re-list recovers exactly. */
static void gone_scenario(int gone_http) {
    load_pods();
    put_fixture("pod-imagepullbackoff.json", "{\"metadata\":{\"name\":\"api-6f8d7c5b4-zz9qd\","
                                             "\"uid\":\"9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a\"}}");
    struct watcher *w = calloc(1, sizeof(*w));
    watch_pods(F->kube, w);
    assert_true(run_until(synced, w, WAIT_MS));
    assert_int_equal(w->nev, 5);
    wait_watching();
    if (gone_http) {
        ctl0("POST", "/_test/config", "{\"gone_http\": true}");
    }
    /* The API server goes away: the watch drops, reconnects fail (503). */
    ctl0("POST", "/_test/config", "{\"unavailable\": true}");
    ctl0("POST", "/_test/drop", NULL);
    run_for(300);
    assert_int_equal(w->nev, 5);
    /* While it is away: one pod added, one modified, one deleted, one name reused by a new
     * pod (new uid), one pod that comes and goes again (never seen), one on another node. */
    put_fixture("pod-succeeded.json", "{\"metadata\":{\"name\":\"nightly-report-28574000-abcde\","
                                      "\"uid\":\"11111111-2222-4333-8444-555555555555\"}}");
    put_fixture("pod-running.json", "{\"status\":{\"phase\":\"Running\",\"startTime\":"
                                    "\"2024-05-02T09:00:00Z\"}}");
    ctl0("DELETE", "/_test/objects/pods/shop/web-7d4b9c8f6d-9fzlw", NULL);
    put_fixture("pod-errimagepull.json", "{\"metadata\":{\"uid\":"
                                         "\"66666666-7777-4888-8999-000000000000\"}}");
    put_fixture("pod-running.json", "{\"metadata\":{\"name\":\"ephemeral-1\",\"uid\":"
                                    "\"77777777-7777-4777-8777-777777777777\"}}");
    ctl0("DELETE", "/_test/objects/pods/shop/ephemeral-1", NULL);
    put_fixture("pod-other-node-succeeded.json", "{\"metadata\":{\"name\":\"other-2\",\"uid\":"
                                                 "\"88888888-8888-4888-8888-888888888888\"}}");
    /* ... and its watch cache forgets the old resourceVersions. */
    ctl0("POST", "/_test/expire", NULL);
    ctl0("POST", "/_test/config", "{\"unavailable\": false}");
    struct want_n x = {w, 5 + 5};
    assert_true(run_until(has_events, &x, WAIT_MS));
    run_for(500); /* nothing more may come */
    assert_int_equal(w->nev, 10);
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, "batch/nightly-report-28574000-abcde"), 1);
    assert_int_equal(count_ev(w, RSRE_KUBE_MODIFIED, RUNNING), 1);
    assert_int_equal(count_ev(w, RSRE_KUBE_DELETED, EVICTED), 1); /* synthetic */
    assert_int_equal(count_ev(w, RSRE_KUBE_DELETED, PULLING), 1); /* old uid ... */
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, PULLING), 2);   /* ... and the new one */
    size_t del_at = 0, add_at = 0;
    for (size_t i = 5; i < w->nev; i++) {
        if (strcmp(w->ev[i].key, PULLING) == 0) {
            *(w->ev[i].ch == RSRE_KUBE_DELETED ? &del_at : &add_at) = i;
        }
    }
    assert_true(del_at > 0 && add_at > del_at); /* the old object goes before the new comes */
    assert_string_equal(w->ev[add_at].uid, "66666666-7777-4888-8999-000000000000");
    assert_int_equal(count_ev(w, RSRE_KUBE_ADDED, "shop/ephemeral-1"), 0);
    assert_int_equal(count_ev(w, RSRE_KUBE_MODIFIED, SUCCEEDED), 0);
    assert_int_equal(count_ev(w, RSRE_KUBE_MODIFIED, "shop/api-6f8d7c5b4-zz9qd"), 0);
    struct rsre_kube_informer_stats st;
    rsre_kube_informer_stats(w->inf, &st);
    assert_int_equal(st.relists_gone, 1);
    assert_true(st.reconnects >= 1);
    assert_true(w->errors >= 1);
    check_cache(w);
    /* The informer watches again, and later changes still arrive once. */
    wait_watching();
    ctl0("DELETE", "/_test/objects/pods/batch/nightly-report-28574000-abcde", NULL);
    wait_events(w, 11);
    assert_int_equal(count_ev(w, RSRE_KUBE_DELETED, "batch/nightly-report-28574000-abcde"), 1);
    check_cache(w);
    stop_watch(w);
    free(w);
}

static void test_informer_gone_event(void **state) {
    (void)state;
    gone_scenario(0);
}

static void test_informer_gone_http(void **state) {
    (void)state;
    gone_scenario(1);
}

static int synced_twice(void *arg) {
    return ((struct watcher *)arg)->synced_calls >= 2;
}

/* 410 on an open watch with nothing changed: a re-list that emits nothing. */
static void test_informer_gone_mid_watch(void **state) {
    (void)state;
    load_pods();
    struct watcher *w = calloc(1, sizeof(*w));
    watch_pods(F->kube, w);
    assert_true(run_until(synced, w, WAIT_MS));
    wait_watching();
    size_t before = w->nev;
    ctl0("POST", "/_test/expire", "{\"kill_watches\": true}");
    assert_true(run_until(synced_twice, w, WAIT_MS));
    run_for(200);
    struct rsre_kube_informer_stats st;
    rsre_kube_informer_stats(w->inf, &st);
    assert_int_equal(st.relists_gone, 1);
    assert_int_equal(w->synced_calls, 2);
    assert_int_equal(w->nev, before); /* no double counting */
    put_fixture("pod-running.json", "{\"metadata\":{\"labels\":{\"v\":\"2\"}}}");
    wait_events(w, before + 1);
    assert_int_equal(count_ev(w, RSRE_KUBE_MODIFIED, RUNNING), 1);
    check_cache(w);
    stop_watch(w);
    free(w);
}

/* A dropped connection: reconnect and resume from the last resourceVersion (no re-list). */
static void test_informer_reconnect(void **state) {
    (void)state;
    load_pods();
    struct watcher *w = calloc(1, sizeof(*w));
    watch_pods(F->kube, w);
    assert_true(run_until(synced, w, WAIT_MS));
    wait_watching();
    ctl0("POST", "/_test/config", "{\"unavailable\": true}");
    ctl0("POST", "/_test/drop", NULL);
    put_fixture("pod-running.json", "{\"metadata\":{\"labels\":{\"v\":\"3\"}}}");
    ctl0("DELETE", "/_test/objects/pods/batch/nightly-report-28573920-7kq2m", NULL);
    run_for(300);
    assert_int_equal(w->nev, 4);
    ctl0("POST", "/_test/config", "{\"unavailable\": false}");
    wait_events(w, 6);
    run_for(400);
    assert_int_equal(w->nev, 6);
    assert_int_equal(count_ev(w, RSRE_KUBE_MODIFIED, RUNNING), 1);
    assert_int_equal(count_ev(w, RSRE_KUBE_DELETED, SUCCEEDED), 1);
    struct rsre_kube_informer_stats st;
    rsre_kube_informer_stats(w->inf, &st);
    assert_int_equal(st.relists_gone, 0);
    assert_int_equal(st.lists, 2); /* the initial two pages only */
    assert_true(st.reconnects >= 1);
    check_cache(w);
    /* A drop with nothing changed: nothing emitted. */
    wait_watching();
    ctl0("POST", "/_test/drop", NULL);
    run_for(500);
    wait_watching();
    assert_int_equal(w->nev, 6);
    stop_watch(w);
    free(w);
}

/* Stopping an informer from inside its own callback. */
static void stop_in_cb(void *arg, enum rsre_kube_change ch, const struct rsre_kube_meta *m,
                       void *obj, void *old) {
    (void)ch;
    (void)m;
    (void)obj;
    (void)old;
    struct watcher *w = arg;
    w->nev++;
    rsre_kube_informer_stop(w->inf);
}

static void test_informer_stop_in_callback(void **state) {
    (void)state;
    load_pods();
    struct watcher *w = calloc(1, sizeof(*w));
    struct rsre_kube_informer_opts o = {.path = "/api/v1/pods",
                                        .decode = decode_pod,
                                        .free_obj = free_pod,
                                        .on_change = stop_in_cb,
                                        .on_synced = on_synced,
                                        .arg = w};
    assert_int_equal(rsre_kube_informer_start(F->kube, &o, &w->inf), 0);
    run_for(800);
    assert_int_equal(w->nev, 1);
    assert_int_equal(w->synced_calls, 0);
    free(w);
}

/* ---- authentication ----------------------------------------------------------------------- */

static int two_errors(void *arg) {
    return ((struct watcher *)arg)->errors >= 2;
}

static void test_token_required(void **state) {
    (void)state;
    put_fixture("node-ready.json", NULL);
    ctl0("POST", "/_test/config", "{\"token\": \"s3cret-token\"}");
    struct kres r;
    kget(F->kube, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, -EACCES);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.reason, "Unauthorized");
    /* An informer without the token reports the error and keeps retrying. */
    struct watcher *w = calloc(1, sizeof(*w));
    watch_pods(F->kube, w);
    assert_true(run_until(two_errors, w, WAIT_MS));
    assert_int_equal(w->synced_calls, 0);
    assert_int_equal(w->last_error, -EACCES);
    stop_watch(w);
    free(w);

    /* A static token. */
    struct rsre_kube_config cfg;
    assert_int_equal(rsre_kube_config_url(&cfg, F->base), 0);
    cfg.token = strdup("s3cret-token");
    struct rsre_kube *k;
    assert_int_equal(rsre_kube_create(F->http, &cfg, &k), 0);
    rsre_kube_config_clear(&cfg);
    kget(k, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, 0);
    rsre_kube_destroy(k);
    /* A token file (how service account tokens arrive), with a trailing newline. */
    char tf[128];
    snprintf(tf, sizeof(tf), "%s/token", F->dir);
    FILE *f = fopen(tf, "w");
    fputs("s3cret-token\n", f);
    fclose(f);
    assert_int_equal(rsre_kube_config_url(&cfg, F->base), 0);
    snprintf(cfg.token_file, sizeof(cfg.token_file), "%s", tf);
    assert_int_equal(rsre_kube_create(F->http, &cfg, &k), 0);
    kget(k, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, 0);
    rsre_kube_destroy(k);
    json_t *reqs = ctl("GET", "/_test/requests", NULL);
    json_t *last = json_array_get(reqs, json_array_size(reqs) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "authorization")),
                        "Bearer s3cret-token");
    json_decref(reqs);
}

/* ---- configuration ------------------------------------------------------------------------ */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_kubeconfig(void **state) {
    (void)state;
    put_fixture("node-ready.json", NULL);
    ctl0("POST", "/_test/config", "{\"token\": \"kc-token\"}");
    char path[128], ca[128], text[2048];
    snprintf(path, sizeof(path), "%s/kubeconfig", F->dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", F->dir);
    write_file(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    snprintf(text, sizeof(text),
             "apiVersion: v1\n"
             "kind: Config\n"
             "clusters:\n"
             "- name: test\n"
             "  cluster:\n"
             "    server: %s/\n"
             "    certificate-authority: ca.pem\n"
             "- name: prod\n"
             "  cluster:\n"
             "    server: https://10.0.0.1:6443\n"
             "    certificate-authority-data: "
             "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=\n"
             "    insecure-skip-tls-verify: true\n"
             "contexts:\n"
             "- name: local\n"
             "  context: {cluster: test, user: robot, namespace: shop}\n"
             "- name: prod\n"
             "  context: {cluster: prod, user: admin}\n"
             "- name: oke\n"
             "  context: {cluster: prod, user: oci}\n"
             "current-context: local\n"
             "users:\n"
             "- name: robot\n"
             "  user:\n"
             "    token: kc-token\n"
             "- name: admin\n"
             "  user:\n"
             "    client-certificate-data: Q0VSVA==\n"
             "    client-key-data: S0VZ\n"
             "- name: oci\n"
             "  user:\n"
             "    exec:\n"
             "      apiVersion: client.authentication.k8s.io/v1beta1\n"
             "      command: oci\n"
             "      args: [ce, cluster, generate-token]\n",
             F->base);
    write_file(path, text);
    struct rsre_kube_config cfg;
    char err[256] = "";
    int rc = rsre_kube_config_kubeconfig(&cfg, path, NULL, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s", err);
    }
    assert_string_equal(cfg.server, F->base); /* trailing '/' dropped */
    assert_string_equal(cfg.token, "kc-token");
    assert_string_equal(cfg.ca_file, ca); /* relative to the kubeconfig's directory */
    assert_string_equal(cfg.ns, "shop");
    struct rsre_kube *k;
    assert_int_equal(rsre_kube_create(F->http, &cfg, &k), 0);
    rsre_kube_config_clear(&cfg);
    struct kres r;
    kget(k, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(rsre_kube_get_config(k)->ns, "shop");
    rsre_kube_destroy(k);

    assert_int_equal(rsre_kube_config_kubeconfig(&cfg, path, "prod", err, sizeof(err)), 0);
    assert_true(cfg.insecure);
    assert_int_equal(cfg.ca_pem_len, 59);
    assert_memory_equal(cfg.ca_pem, "-----BEGIN CERTIFICATE-----\nMIIB\n", 33);
    assert_int_equal(cfg.cert_pem_len, 4);
    assert_memory_equal(cfg.cert_pem, "CERT", 4);
    assert_int_equal(cfg.key_pem_len, 3);
    assert_null(cfg.token);
    rsre_kube_config_clear(&cfg);

    rc = rsre_kube_config_kubeconfig(&cfg, path, "oke", err, sizeof(err));
    assert_int_equal(rc, RSRE_EINVALID);
    assert_non_null(strstr(err, "exec"));
    rc = rsre_kube_config_kubeconfig(&cfg, path, "missing", err, sizeof(err));
    assert_int_equal(rc, RSRE_ENOTFOUND);
    char nofile[160];
    snprintf(nofile, sizeof(nofile), "%s/nope", F->dir);
    assert_int_equal(rsre_kube_config_kubeconfig(&cfg, nofile, NULL, err, sizeof(err)),
                     RSRE_ENOTFOUND);
    static const char *const bad[] = {
        "clusters: [\n",  /* YAML syntax */
        "- a\n- b\n",     /* not a mapping */
        "contexts: []\n", /* no current-context */
        "current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n", /* no cluster */
        "current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n"
        "clusters: [{name: x, cluster: {server: 'ftp://x'}}]\n",
        "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\n"
        "clusters: [{name: x, cluster: {server: 'https://x'}}]\n"
        "users: [{name: u, user: {client-certificate-data: '!!notbase64'}}]\n",
        "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\n"
        "clusters: [{name: x, cluster: {server: 'https://x'}}]\n"
        "users: [{name: u, user: {client-certificate-data: Q0VSVA==}}]\n", /* no key */
        "current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n"
        "clusters: [{name: x, cluster: {server: 'https://x', insecure-skip-tls-verify: maybe}}]\n",
        "current-context: c\ncontexts: [{name: c, context: {cluster: x}}]\n"
        "clusters: [{name: x, cluster: {server: [1]}}]\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(path, bad[i]);
        err[0] = '\0';
        rc = rsre_kube_config_kubeconfig(&cfg, path, NULL, err, sizeof(err));
        if (rc == 0) {
            fail_msg("kubeconfig %zu accepted:\n%s", i, bad[i]);
        }
        assert_true(err[0] != '\0');
        assert_null(cfg.token);
    }

    /* rsre_kube_config_auto prefers an explicit URL, then a kubeconfig. */
    assert_int_equal(rsre_kube_config_auto(&cfg, F->base, path, NULL, err, sizeof(err)), 0);
    assert_string_equal(cfg.server, F->base);
    rsre_kube_config_clear(&cfg);
    assert_int_equal(rsre_kube_config_auto(&cfg, "gopher://x", NULL, NULL, err, sizeof(err)),
                     -EINVAL);
}

static void test_in_cluster(void **state) {
    (void)state;
    char sa[128], p[192];
    snprintf(sa, sizeof(sa), "%s/sa", F->dir);
    mkdir(sa, 0700);
    struct rsre_kube_config cfg;
    char err[256];
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_int_equal(rsre_kube_config_in_cluster(&cfg, sa, err, sizeof(err)), RSRE_ENOTFOUND);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(rsre_kube_config_in_cluster(&cfg, sa, err, sizeof(err)), RSRE_ENOTFOUND);
    assert_non_null(strstr(err, "token"));
    snprintf(p, sizeof(p), "%s/token", sa);
    write_file(p, "eyJhbGciOiJSUzI1NiJ9.e30.sig\n");
    snprintf(p, sizeof(p), "%s/ca.crt", sa);
    write_file(p, "-----BEGIN CERTIFICATE-----\n");
    snprintf(p, sizeof(p), "%s/namespace", sa);
    write_file(p, "robot-sre\n");
    assert_int_equal(rsre_kube_config_in_cluster(&cfg, sa, err, sizeof(err)), 0);
    assert_string_equal(cfg.server, "https://10.96.0.1:443");
    snprintf(p, sizeof(p), "%s/token", sa);
    assert_string_equal(cfg.token_file, p);
    snprintf(p, sizeof(p), "%s/ca.crt", sa);
    assert_string_equal(cfg.ca_file, p);
    assert_string_equal(cfg.ns, "robot-sre");
    rsre_kube_config_clear(&cfg);
    setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
    assert_int_equal(rsre_kube_config_in_cluster(&cfg, sa, err, sizeof(err)), 0);
    assert_string_equal(cfg.server, "https://[fd00:10:96::1]:443");
    rsre_kube_config_clear(&cfg);
    setenv("KUBERNETES_SERVICE_PORT", "http", 1);
    assert_int_equal(rsre_kube_config_in_cluster(&cfg, sa, err, sizeof(err)), RSRE_EINVALID);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    setenv("KUBERNETES_SERVICE_HOST", "evil/host", 1);
    assert_int_equal(rsre_kube_config_in_cluster(&cfg, sa, err, sizeof(err)), RSRE_EINVALID);
    /* auto falls back to in-cluster. */
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    assert_int_equal(rsre_kube_config_auto(&cfg, "", "", sa, err, sizeof(err)), 0);
    assert_string_equal(cfg.server, "https://10.96.0.1:443");
    rsre_kube_config_clear(&cfg);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

/* ---- TLS ---------------------------------------------------------------------------------- */

/* Runs a program (no shell) with output discarded; fails the test unless it exits 0. */
static void run_cmd(const char *const *argv) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("%s %s failed", argv[0], argv[1]);
    }
}

static char *b64_file(const char *path) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char in[16384];
    size_t n = fread(in, 1, sizeof(in), f);
    fclose(f);
    char *out = malloc(n / 3 * 4 + 8);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* A CA, a server certificate for 127.0.0.1 and a node client certificate, made with the
 * openssl command (ECDSA P-256, valid for two days). */
static void make_certs(const char *d) {
    char ca_key[160], ca[160], srv_key[160], srv_csr[160], srv[160], cli_key[160], cli_csr[160],
        cli[160], serial[160];
    snprintf(ca_key, sizeof(ca_key), "%s/ca.key", d);
    snprintf(ca, sizeof(ca), "%s/ca.crt", d);
    snprintf(srv_key, sizeof(srv_key), "%s/srv.key", d);
    snprintf(srv_csr, sizeof(srv_csr), "%s/srv.csr", d);
    snprintf(srv, sizeof(srv), "%s/srv.crt", d);
    snprintf(cli_key, sizeof(cli_key), "%s/cli.key", d);
    snprintf(cli_csr, sizeof(cli_csr), "%s/cli.csr", d);
    snprintf(cli, sizeof(cli), "%s/cli.crt", d);
    snprintf(serial, sizeof(serial), "%s/ca.srl", d);
    const char *c1[] = {
        "openssl", "req",     "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",  "-keyout", ca_key,  "-out",    ca,   "-subj",    "/CN=kubernetes-test-ca",
        "-days",   "2",       NULL};
    run_cmd(c1);
    const char *c2[] = {"openssl",
                        "req",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        srv_key,
                        "-out",
                        srv_csr,
                        "-subj",
                        "/CN=kube-apiserver",
                        "-addext",
                        "subjectAltName=IP:127.0.0.1",
                        NULL};
    run_cmd(c2);
    const char *c3[] = {"openssl",
                        "x509",
                        "-req",
                        "-in",
                        srv_csr,
                        "-CA",
                        ca,
                        "-CAkey",
                        ca_key,
                        "-CAserial",
                        serial,
                        "-CAcreateserial",
                        "-out",
                        srv,
                        "-days",
                        "2",
                        "-copy_extensions",
                        "copy",
                        NULL};
    run_cmd(c3);
    const char *c4[] = {"openssl",
                        "req",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        cli_key,
                        "-out",
                        cli_csr,
                        "-subj",
                        "/O=system:nodes/CN=system:node:" NODE,
                        NULL};
    run_cmd(c4);
    const char *c5[] = {"openssl", "x509",      "-req", "-in",  cli_csr, "-CA",   ca,  "-CAkey",
                        ca_key,    "-CAserial", serial, "-out", cli,     "-days", "2", NULL};
    run_cmd(c5);
}

static void test_tls(void **state) {
    (void)state;
    const char *d = F->dir;
    make_certs(d);
    char srv[160], srv_key[160], ca[160], cli[160], cli_key[160], node[256];
    snprintf(srv, sizeof(srv), "%s/srv.crt", d);
    snprintf(srv_key, sizeof(srv_key), "%s/srv.key", d);
    snprintf(ca, sizeof(ca), "%s/ca.crt", d);
    snprintf(cli, sizeof(cli), "%s/cli.crt", d);
    snprintf(cli_key, sizeof(cli_key), "%s/cli.key", d);
    snprintf(node, sizeof(node), "%s/kube/node-ready.json", RSRE_TEST_DATA);
    const char *extra[] = {"--tls-cert", srv,      "--tls-key", srv_key, "--client-ca",
                           ca,           "--load", node,        NULL};
    pid_t pid;
    int port;
    assert_int_equal(spawn_server(extra, &pid, &port), 0);

    /* kubeconfig with everything inline (-data fields): mutual TLS from memory. */
    char *ca64 = b64_file(ca), *cli64 = b64_file(cli), *key64 = b64_file(cli_key);
    size_t tl = strlen(ca64) + strlen(cli64) + strlen(key64) + 1024;
    char *text = malloc(tl);
    snprintf(text, tl,
             "apiVersion: v1\nkind: Config\ncurrent-context: tls\n"
             "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:%d\n"
             "    certificate-authority-data: %s\n"
             "contexts:\n- name: tls\n  context: {cluster: c, user: node}\n"
             "users:\n- name: node\n  user:\n    client-certificate-data: %s\n"
             "    client-key-data: %s\n",
             port, ca64, cli64, key64);
    char path[160];
    snprintf(path, sizeof(path), "%s/kubeconfig-tls", d);
    write_file(path, text);
    free(text);
    free(ca64);
    free(cli64);
    free(key64);
    struct rsre_kube_config cfg;
    char err[256] = "";
    if (rsre_kube_config_kubeconfig(&cfg, path, NULL, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_non_null(cfg.ca_pem);
    assert_non_null(cfg.cert_pem);
    assert_non_null(cfg.key_pem);
    struct rsre_kube *k;
    assert_int_equal(rsre_kube_create(F->http, &cfg, &k), 0);
    struct kres r;
    kget(k, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.name, NODE);
    rsre_kube_destroy(k);

    /* Without the client certificate the server refuses the handshake. */
    struct rsre_kube_config nocert = cfg;
    nocert.cert_pem = nocert.key_pem = NULL;
    nocert.cert_pem_len = nocert.key_pem_len = 0;
    assert_int_equal(rsre_kube_create(F->http, &nocert, &k), 0);
    kget(k, "/api/v1/nodes/" NODE, &r);
    assert_true(r.rc < 0);
    assert_int_equal(r.status, 0);
    rsre_kube_destroy(k);

    /* Without our CA the server's certificate is not trusted. */
    struct rsre_kube_config noca = cfg;
    noca.ca_pem = NULL;
    noca.ca_pem_len = 0;
    assert_int_equal(rsre_kube_create(F->http, &noca, &k), 0);
    kget(k, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, -EACCES);
    rsre_kube_destroy(k);
    rsre_kube_config_clear(&cfg);

    /* The same with files (in-cluster style CA path, client certificate files). */
    assert_int_equal(rsre_kube_config_url(&cfg, "https://127.0.0.1:1"), 0);
    snprintf(cfg.server, sizeof(cfg.server), "https://127.0.0.1:%d", port);
    snprintf(cfg.ca_file, sizeof(cfg.ca_file), "%s", ca);
    snprintf(cfg.cert_file, sizeof(cfg.cert_file), "%s", cli);
    snprintf(cfg.key_file, sizeof(cfg.key_file), "%s", cli_key);
    assert_int_equal(rsre_kube_create(F->http, &cfg, &k), 0);
    kget(k, "/api/v1/nodes/" NODE, &r);
    assert_int_equal(r.rc, 0);
    /* ... and an informer over TLS. */
    struct watcher *w = calloc(1, sizeof(*w));
    watch_pods(k, w);
    assert_true(run_until(synced, w, WAIT_MS));
    stop_watch(w);
    free(w);
    rsre_kube_destroy(k);
    port_server_stop(&pid);
}

/* ---- the collector ------------------------------------------------------------------------ */

static size_t count_sig(const struct rsre_agent *a, int kind, size_t from) {
    size_t n = 0;
    for (size_t i = from; i < a->nsigs; i++) {
        n += a->sigs[i].kind == kind;
    }
    return n;
}

static const struct sig_rec *last_sig(const struct rsre_agent *a, int kind) {
    for (size_t i = a->nsigs; i > 0; i--) {
        if (a->sigs[i - 1].kind == kind) {
            return &a->sigs[i - 1];
        }
    }
    return NULL;
}

struct sig_wait {
    struct rsre_agent *a;
    int kind;
    size_t from, n;
};

static int has_sigs(void *arg) {
    struct sig_wait *s = arg;
    return count_sig(s->a, s->kind, s->from) >= s->n;
}

static void wait_sig(struct rsre_agent *a, int kind, size_t from, size_t n) {
    struct sig_wait s = {a, kind, from, n};
    if (!run_until(has_sigs, &s, WAIT_MS)) {
        fail_msg("waited for %zu signals of kind %d", n, kind);
    }
}

#define K_NODE ROBOT_SRE__AGENT__V1__SIGNAL__KIND_NODE_CONDITIONS
#define K_CHURN ROBOT_SRE__AGENT__V1__SIGNAL__KIND_POD_CHURN
#define K_PULL ROBOT_SRE__AGENT__V1__SIGNAL__KIND_PULL_ERROR

static void test_collector(void **state) {
    (void)state;
    put_fixture("node-ready.json", NULL);
    put_fixture("node-notready-cordoned.json", NULL);
    load_pods();
    struct rsre_agent *a = calloc(1, sizeof(*a));
    snprintf(a->cfg.node_name, sizeof(a->cfg.node_name), "%s", NODE);
    a->kube = F->kube;
    void *st = NULL;
    assert_int_equal(rsre_collector_kube.init(a, &st), 0);
    assert_non_null(st);
    assert_int_equal(rsre_collector_kube.interval_offset,
                     offsetof(struct rsre_agent_config, kube_resync_ms));
    wait_sig(a, K_NODE, 0, 1);
    wait_sig(a, K_CHURN, 0, 1);
    wait_sig(a, K_PULL, 0, 1);
    run_for(300);
    assert_int_equal(count_sig(a, K_NODE, 0), 1); /* only our node */
    const struct sig_rec *n = last_sig(a, K_NODE);
    assert_int_equal(n->ready, ROBOT_SRE__AGENT__V1__CONDITION_STATUS__CONDITION_STATUS_TRUE);
    assert_int_equal(n->disk, ROBOT_SRE__AGENT__V1__CONDITION_STATUS__CONDITION_STATUS_FALSE);
    assert_int_equal(n->ntaints, 0);
    assert_int_equal(count_sig(a, K_CHURN, 0), 1); /* once after the list, not per pod */
    const struct sig_rec *c = last_sig(a, K_CHURN);
    assert_int_equal(c->running, 1);
    assert_int_equal(c->pending, 1);
    assert_int_equal(c->succeeded, 1);
    assert_int_equal(c->failed, 1);
    assert_int_equal(c->evicted, 1);
    assert_int_equal(c->restarts_total, 4);
    assert_true(c->window >= 1);
    assert_int_equal(count_sig(a, K_PULL, 0), 1);
    const struct sig_rec *p = last_sig(a, K_PULL);
    assert_string_equal(p->pod, PULLING);
    assert_string_equal(p->container, "api");
    assert_string_equal(p->image, "registry.example.com/shop/api:1.9.0-rc1");
    assert_int_equal(p->reason,
                     ROBOT_SRE__AGENT__V1__PULL_ERROR_REASON__PULL_ERROR_REASON_ERR_IMAGE_PULL);
    assert_non_null(strstr(p->message, "not found"));
    assert_int_equal(p->attempts, 1);

    /* Heartbeat-only node update: nothing. Disk pressure: a new NodeConditions. */
    size_t mark = a->nsigs;
    put_fixture("node-ready.json", "{\"metadata\":{\"annotations\":{\"hb\":\"1\"}}}");
    run_for(500);
    assert_int_equal(count_sig(a, K_NODE, mark), 0);
    put_fixture("node-disk-pressure.json", NULL);
    wait_sig(a, K_NODE, mark, 1);
    n = last_sig(a, K_NODE);
    assert_int_equal(n->disk, ROBOT_SRE__AGENT__V1__CONDITION_STATUS__CONDITION_STATUS_TRUE);
    assert_int_equal(n->ntaints, 1);

    /* The pull error moves to back-off, then to ErrImagePull again: two changes, attempts 2. */
    mark = a->nsigs;
    put_fixture("pod-errimagepull.json",
                "{\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"api\","
                "\"restartCount\":0,\"image\":\"registry.example.com/shop/api:1.9.0-rc1\","
                "\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\",\"message\":"
                "\"Back-off pulling image \\\"registry.example.com/shop/api:1.9.0-rc1\\\"\"}}}]}}");
    wait_sig(a, K_PULL, mark, 1);
    assert_int_equal(last_sig(a, K_PULL)->reason,
                     ROBOT_SRE__AGENT__V1__PULL_ERROR_REASON__PULL_ERROR_REASON_IMAGE_PULL_BACKOFF);
    assert_int_equal(last_sig(a, K_PULL)->attempts, 1);
    put_fixture("pod-errimagepull.json", NULL);
    wait_sig(a, K_PULL, mark, 2);
    assert_int_equal(last_sig(a, K_PULL)->attempts, 2);
    assert_int_equal(count_sig(a, K_CHURN, mark), 0); /* counts did not change */

    /* A restart and an eviction show in the window counters of the next PodChurn. */
    mark = a->nsigs;
    put_fixture("pod-running.json",
                "{\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"nginx\","
                "\"restartCount\":5,\"ready\":true,\"image\":\"docker.io/library/nginx:1.25.4\","
                "\"state\":{\"running\":{\"startedAt\":\"2024-05-02T09:00:00Z\"}}}]}}");
    wait_sig(a, K_CHURN, mark, 1);
    c = last_sig(a, K_CHURN);
    assert_int_equal(c->restarts_total, 6);
    assert_int_equal(c->restarts_in_window, 2);

    /* Resync: everything current is sent again; the run reports success. */
    mark = a->nsigs;
    struct rsre_collect_run run = {0};
    rsre_collector_kube.collect(a, st, &run);
    assert_int_equal(run.done, 1);
    assert_int_equal(run.rc, 0);
    assert_int_equal(count_sig(a, K_NODE, mark), 1);
    assert_int_equal(count_sig(a, K_CHURN, mark), 1);
    assert_int_equal(count_sig(a, K_PULL, mark), 1);
    assert_int_equal(last_sig(a, K_CHURN)->restarts_in_window, 0);

    /* The pulling pod is deleted: no more PullError at resync. */
    ctl0("DELETE", "/_test/objects/pods/shop/api-6f8d7c5b4-kw7rt", NULL);
    mark = a->nsigs;
    wait_sig(a, K_CHURN, mark, 1);
    mark = a->nsigs;
    rsre_collector_kube.collect(a, st, &run);
    assert_int_equal(count_sig(a, K_PULL, mark), 0);

    rsre_collector_kube.destroy(st);
    run_for(50);

    /* A node name the API does not know: the collector reports RSRE_ENOTFOUND at resync. */
    a->nsigs = 0;
    snprintf(a->cfg.node_name, sizeof(a->cfg.node_name), "not-a-node");
    assert_int_equal(rsre_collector_kube.init(a, &st), 0);
    wait_sig(a, K_CHURN, 0, 1); /* pods listed (none) */
    run_for(200);
    memset(&run, 0, sizeof(run));
    rsre_collector_kube.collect(a, st, &run);
    assert_int_equal(run.rc, RSRE_ENOTFOUND);
    assert_int_equal(count_sig(a, K_NODE, 0), 0);
    rsre_collector_kube.destroy(st);
    run_for(50);
    free(a);
}

static void test_collector_without_api(void **state) {
    (void)state;
    struct rsre_agent *a = calloc(1, sizeof(*a));
    snprintf(a->cfg.node_name, sizeof(a->cfg.node_name), "%s", NODE);
    void *st = (void *)1;
    assert_int_equal(rsre_collector_kube.init(a, &st), RSRE_ENOTFOUND);
    assert_null(st);
    free(a);
}

/* ---- the action --------------------------------------------------------------------------- */

struct action_run {
    struct rsre_action_ctx ctx;
    RobotSre__Agent__V1__ActionRequest req;
    RobotSre__Agent__V1__ActionRequest__ParametersEntry param;
    RobotSre__Agent__V1__ActionRequest__ParametersEntry *params[1];
};

static int action_finished(void *arg) {
    return action_done_calls > *(int *)arg;
}

static void run_action(struct rsre_agent *a, struct action_run *ar, int dry_run, const char *target,
                       const char *pkey, const char *pval) {
    static const RobotSre__Agent__V1__ActionRequest rinit =
        ROBOT_SRE__AGENT__V1__ACTION_REQUEST__INIT;
    static const RobotSre__Agent__V1__ActionRequest__ParametersEntry pinit =
        ROBOT_SRE__AGENT__V1__ACTION_REQUEST__PARAMETERS_ENTRY__INIT;
    static const RobotSre__Agent__V1__ActionResult res_init =
        ROBOT_SRE__AGENT__V1__ACTION_RESULT__INIT;
    memset(ar, 0, sizeof(*ar));
    ar->req = rinit;
    ar->req.request_id = "req-1";
    ar->req.action_id = "delete_finished_pods";
    ar->req.target = (char *)(target ? target : "");
    ar->req.dry_run = dry_run;
    ar->req.deadline_unix_ms = rsre_now_unix_ms() + 30000;
    if (pkey) {
        ar->param = pinit;
        ar->param.key = (char *)pkey;
        ar->param.value = (char *)pval;
        ar->params[0] = &ar->param;
        ar->req.parameters = ar->params;
        ar->req.n_parameters = 1;
    }
    ar->ctx.agent = a;
    ar->ctx.req = &ar->req;
    ar->ctx.result = res_init;
    int before = action_done_calls;
    rsre_action_delete_finished_pods.run(&ar->ctx);
    assert_true(run_until(action_finished, &before, WAIT_MS));
    assert_int_equal(action_done_calls, before + 1);
}

static int has_removed(const struct action_run *ar, const char *id) {
    for (size_t i = 0; i < ar->ctx.nremoved; i++) {
        if (strcmp(ar->ctx.removed[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

static void free_removed(struct action_run *ar) {
    for (size_t i = 0; i < ar->ctx.nremoved; i++) {
        free(ar->ctx.removed[i]);
    }
    free(ar->ctx.removed);
    ar->ctx.removed = NULL;
    ar->ctx.nremoved = 0;
}

static int pod_exists(const char *ns, const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, name);
    struct kres r;
    kget(F->kube, path, &r);
    return r.rc == 0;
}

static void test_delete_finished_pods(void **state) {
    (void)state;
    load_pods();
    put_fixture("pod-imagepullbackoff.json", "{\"metadata\":{\"name\":\"api-6f8d7c5b4-zz9qd\","
                                             "\"uid\":\"9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a\"}}");
    /* A finished pod already being deleted is left to its finalizers. */
    put_fixture("pod-succeeded.json", "{\"metadata\":{\"name\":\"terminating-1\",\"uid\":"
                                      "\"12121212-3434-4545-8656-787878787878\","
                                      "\"deletionTimestamp\":\"2024-05-02T09:00:00Z\"}}");
    struct rsre_agent *a = calloc(1, sizeof(*a));
    snprintf(a->cfg.node_name, sizeof(a->cfg.node_name), "%s", NODE);
    a->kube = F->kube;
    struct action_run *ar = calloc(1, sizeof(*ar));
    ctl0("DELETE", "/_test/requests", NULL);

    /* Dry run: reports the two finished pods of this node, deletes nothing. */
    run_action(a, ar, 1, "", NULL, NULL);
    assert_int_equal(ar->ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_DRY_RUN);
    assert_int_equal(ar->ctx.result.objects_removed, 2);
    assert_int_equal(ar->ctx.nremoved, 2);
    assert_true(has_removed(ar, SUCCEEDED));
    assert_true(has_removed(ar, EVICTED));
    assert_true(ar->ctx.result.started_unix_ms > 0);
    assert_true(ar->ctx.result.finished_unix_ms >= ar->ctx.result.started_unix_ms);
    assert_non_null(strstr(ar->ctx.message, "dry run"));
    assert_int_equal(count_requests("DELETE", NULL), 0);
    assert_int_equal(server_state("objects"), 7);
    free_removed(ar);

    /* Refusals. */
    run_action(a, ar, 0, OTHER_NODE, NULL, NULL);
    assert_int_equal(ar->ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_REFUSED);
    run_action(a, ar, 0, "", "selector", "x");
    assert_int_equal(ar->ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_REFUSED);
    assert_int_equal(count_requests("DELETE", NULL), 0);

    /* One namespace only. */
    run_action(a, ar, 0, NODE, "namespace", "batch");
    assert_int_equal(ar->ctx.result.status, ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_OK);
    assert_int_equal(ar->ctx.result.objects_removed, 1);
    assert_true(has_removed(ar, SUCCEEDED));
    assert_false(pod_exists("batch", "nightly-report-28573920-7kq2m"));
    assert_true(pod_exists("shop", "web-7d4b9c8f6d-9fzlw"));
    free_removed(ar);

    /* The real thing: only the evicted pod is left to delete. */
    run_action(a, ar, 0, "", NULL, NULL);
    assert_int_equal(ar->ctx.result.status, ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_OK);
    assert_int_equal(ar->ctx.result.objects_removed, 1);
    assert_true(has_removed(ar, EVICTED));
    free_removed(ar);
    assert_false(pod_exists("shop", "web-7d4b9c8f6d-9fzlw"));
    assert_true(pod_exists("shop", "web-7d4b9c8f6d-x2kqp"));           /* Running */
    assert_true(pod_exists("shop", "api-6f8d7c5b4-kw7rt"));            /* Pending */
    assert_true(pod_exists("shop", "api-6f8d7c5b4-zz9qd"));            /* Pending */
    assert_true(pod_exists("batch", "nightly-report-28573920-2xcvb")); /* other node */
    assert_true(pod_exists("batch", "terminating-1"));                 /* being deleted */
    /* Every DELETE carried the uid (and resourceVersion) precondition of a fresh read. */
    json_t *reqs = ctl("GET", "/_test/requests", NULL);
    size_t i, deletes = 0;
    json_t *it;
    json_array_foreach(reqs, i, it) {
        if (strcmp(json_string_value(json_object_get(it, "method")), "DELETE") != 0) {
            continue;
        }
        deletes++;
        json_t *body = json_loads(json_string_value(json_object_get(it, "body")), 0, NULL);
        json_t *pre = json_object_get(body, "preconditions");
        assert_non_null(json_string_value(json_object_get(pre, "uid")));
        assert_non_null(json_string_value(json_object_get(pre, "resourceVersion")));
        assert_string_equal(json_string_value(json_object_get(body, "propagationPolicy")),
                            "Background");
        /* The GET of the same pod came right before it. */
        json_t *prev = json_array_get(reqs, i - 1);
        assert_string_equal(json_string_value(json_object_get(prev, "method")), "GET");
        assert_string_equal(json_string_value(json_object_get(prev, "path")),
                            json_string_value(json_object_get(it, "path")));
        json_decref(body);
    }
    json_decref(reqs);
    assert_int_equal(deletes, 2);

    /* Nothing left: OK with zero removed. */
    run_action(a, ar, 0, "", NULL, NULL);
    assert_int_equal(ar->ctx.result.status, ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_OK);
    assert_int_equal(ar->ctx.result.objects_removed, 0);

    /* No API configured: refused. The API failing: FAILED. */
    a->kube = NULL;
    run_action(a, ar, 0, "", NULL, NULL);
    assert_int_equal(ar->ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_REFUSED);
    a->kube = F->kube;
    ctl0("POST", "/_test/config", "{\"unavailable\": true}");
    run_action(a, ar, 0, "", NULL, NULL);
    assert_int_equal(ar->ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_FAILED);
    free(ar);
    free(a);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_bodies_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_cancel_abandon_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kube_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_list_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_gone_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_gone_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_gone_mid_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_informer_stop_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collector_without_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_finished_pods, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
