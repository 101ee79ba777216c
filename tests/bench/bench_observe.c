/*
 * Benchmark of the Kubernetes observers (aggregator/observe/observe.h) against
 * tests/support/kube_api_server.py: a cluster of N pods (1 in 50 waiting in ErrImagePull, 1 in
 * 5 finished) owned through ReplicaSets by N/10 Deployments, N/20 Helm releases (two
 * revisions each, the latest pending-upgrade for 1 in 4), N/100 nodes. Prints the time to the
 * first complete list, the cost of one recomputation, the process's resident memory before
 * and after, and the number of scopes.
 *
 *   bench_observe [PODS]     (default 5000)
 */
#include <curl/curl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/curl_uv.h"
#include "common/kube.h"
#include "common/log.h"
#include "observe/observe.h"

static char base[64];

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld", &v) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return v;
}

static size_t sink(char *p, size_t s, size_t n, void *u) {
    (void)p;
    (void)u;
    return s * n;
}

static int post(const char *path, const char *body) {
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 120000L);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    long status = 0;
    CURLcode cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return cc == CURLE_OK && status == 200 ? 0 : -1;
}

struct sb {
    char *p;
    size_t n, cap;
};

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if ((size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        b->cap = b->cap * 2 + 4096;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            abort();
        }
    }
}

static unsigned emits;
static int on_emit(void *arg, const struct rsre_observe_aggregate *a, size_t n) {
    (void)arg;
    (void)a;
    emits += (unsigned)n;
    return 0;
}

int main(int argc, char **argv) {
    int pods = argc > 1 ? atoi(argv[1]) : 5000;
    if (pods < 100) {
        pods = 100;
    }
    rsre_log_set_level_name("error");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int p[2];
    if (pipe(p)) {
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(p[1], 1);
        close(p[0]);
        execl("/usr/bin/python3", "python3", RSRE_SOURCE_DIR "/tests/support/kube_api_server.py",
              "--port", "0", "--bookmark-interval", "5", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[64] = "";
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    int port = 0;
    if (poll(&pfd, 1, 10000) <= 0 || read(p[0], buf, sizeof(buf) - 1) <= 0 ||
        sscanf(buf, "PORT %d", &port) != 1) {
        fprintf(stderr, "no server\n");
        return 1;
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);

    double t0 = mono_s();
    struct sb b = {0};
    int deps = pods / 10, rels = pods / 20, nodes = pods / 100;
    sb_add(&b, "[");
    for (int i = 0; i < nodes; i++) {
        sb_add(&b, "%s{\"kind\":\"Node\",\"metadata\":{\"name\":\"node-%d\"}}", i ? "," : "", i);
    }
    for (int d = 0; d < deps; d++) {
        sb_add(
            &b,
            ",{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"app-%d\",\"namespace\":\"ns-%d\"},"
            "\"spec\":{\"replicas\":10,\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\","
            "\"image\":\"registry.local/app-%d:1.0\"}]}}},\"status\":{\"replicas\":10,"
            "\"updatedReplicas\":10,\"readyReplicas\":10,\"availableReplicas\":10}}"
            ",{\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"app-%d-rs\",\"namespace\":\"ns-%"
            "d\","
            "\"ownerReferences\":[{\"kind\":\"Deployment\",\"name\":\"app-%d\",\"uid\":\"u\","
            "\"controller\":true}]}}",
            d, d % 20, d, d, d % 20, d);
    }
    for (int i = 0; i < pods; i++) {
        int d = i % deps;
        const char *status = i % 50 == 0
                                 ? "\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"web\","
                                   "\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\","
                                   "\"message\":\"Back-off pulling image\"}}}]"
                             : i % 5 == 0 ? "\"phase\":\"Succeeded\""
                                          : "\"phase\":\"Running\"";
        sb_add(
            &b,
            ",{\"kind\":\"Pod\",\"metadata\":{\"name\":\"app-%d-rs-%d\",\"namespace\":\"ns-%d\","
            "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"app-%d-rs\",\"uid\":\"u\","
            "\"controller\":true}]},\"spec\":{\"nodeName\":\"node-%d\",\"containers\":[{\"name\":"
            "\"web\",\"image\":\"registry.local/app-%d:1.0\"}]},\"status\":{%s}}",
            d, i, d % 20, d, i % (nodes ? nodes : 1), d, status);
    }
    sb_add(&b, "]");
    if (post("/_test/objects", b.p)) {
        fprintf(stderr, "load failed\n");
        return 1;
    }
    for (int r = 0; r < rels; r++) {
        for (int rev = 1; rev <= 2; rev++) {
            char body[512];
            snprintf(
                body, sizeof(body),
                "{\"name\":\"app-%d\",\"namespace\":\"ns-%d\",\"revision\":%d,\"status\":\"%s\","
                "\"images\":{\"web\":\"registry.local/app-%d:1.%d\"}}",
                r, r % 20, rev, rev == 2 && r % 4 == 0 ? "pending-upgrade" : "deployed", r,
                rev == 2 && r % 4 == 0 ? 1 : 0);
            post("/_test/helm_release", body);
        }
    }
    free(b.p);
    double t_load = mono_s() - t0;

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct rsre_http *http;
    struct rsre_kube *kube;
    struct rsre_kube_config cfg;
    rsre_http_create(&loop, &http);
    rsre_kube_config_url(&cfg, base);
    rsre_kube_create(http, &cfg, &kube);
    rsre_kube_config_clear(&cfg);
    long rss0 = rss_kib();
    struct rsre_observe *o;
    struct rsre_observe_config oc = {.core_namespaces = "ns-0", .max_objects = 100000};
    double t1 = mono_s();
    rsre_observe_create(kube, &oc, on_emit, NULL, &o);
    while (!rsre_observe_synced(o) && mono_s() - t1 < 300) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    double t_sync = mono_s() - t1;
    int rounds = 20;
    double t2 = mono_s();
    for (int i = 0; i < rounds; i++) {
        rsre_observe_recompute(o);
    }
    double t_rec = (mono_s() - t2) / rounds;
    long rss1 = rss_kib();
    struct rsre_observe_stats st;
    rsre_observe_stats(o, &st);
    struct rsre_observe_counts pc;
    rsre_observe_counts(o, RSRE_OBS_PODS, &pc);
    double v = 0;
    rsre_observe_get(o, "cluster", "jobs.finished_pods", &v);
    printf("pods=%d deployments=%d releases=%d (x2 revisions) nodes=%d\n", pods, deps, rels, nodes);
    printf("server load %.2f s; first full list of 15 collections %.2f s\n", t_load, t_sync);
    printf("recompute %.2f ms (mean of %d); scopes %zu; emitted %u; finished_pods %.0f; "
           "pods cached %zu\n",
           t_rec * 1e3, rounds, st.scopes, emits, v, pc.cached);
    printf("VmRSS before observers %ld KiB, after %ld KiB (+%ld KiB, %.2f KiB per pod)\n", rss0,
           rss1, rss1 - rss0, (double)(rss1 - rss0) / pods);
    rsre_observe_destroy(o);
    rsre_kube_destroy(kube);
    rsre_http_destroy(http);
    for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_NOWAIT); i++) {
    }
    uv_loop_close(&loop);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    curl_global_cleanup();
    return 0;
}
