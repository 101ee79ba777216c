/*
 * Benchmark for the Prometheus text parser and the 5xx ratio window
 * (aggregator/probes/promtext.h), on an ingress-nginx shaped exposition: N request-counter
 * series with the controller's 11 labels plus status (6 statuses, two of them 5xx).
 * Usage: bench_promtext [series, default 20000] [seconds per case, default 1].
 *
 * Output, one line per case:
 *   promtext_parse: N series, B bytes: X expositions/s, Y MB/s, Z series/s
 *   err_ratio_add: N series: X scrapes/s
 * What it tells an operator: the cost of one http5xx scrape on the aggregator's thread pool
 * (parse) and on its loop (ratio window).
 */
#include "probes/promtext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct acc {
    struct rsre_err_series *s;
    size_t n, cap;
};

static int on_sample(void *arg, const struct rsre_prom_sample *smp) {
    struct acc *a = arg;
    if (strcmp(smp->name, "nginx_ingress_controller_requests") != 0) {
        return 0;
    }
    const char *status = "";
    for (size_t i = 0; i < smp->nlabels; i++) {
        if (strcmp(smp->labels[i].name, "status") == 0) {
            status = smp->labels[i].value;
        }
    }
    if (a->n < a->cap) {
        a->s[a->n++] =
            (struct rsre_err_series){rsre_prom_series_key(smp), smp->value, status[0] == '5'};
    }
    return 0;
}

int main(int argc, char **argv) {
    size_t series = argc > 1 ? (size_t)atol(argv[1]) : 20000;
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    if (series == 0 || series > 1000000 || secs <= 0) {
        fprintf(stderr, "usage: bench_promtext [series 1..1000000] [seconds]\n");
        return 2;
    }
    size_t cap = series * 400 + 4096;
    char *buf = malloc(cap);
    if (!buf) {
        return 1;
    }
    size_t len = (size_t)snprintf(buf, cap,
                                  "# HELP nginx_ingress_controller_requests The total number of "
                                  "client requests\n"
                                  "# TYPE nginx_ingress_controller_requests counter\n");
    static const char *const codes[] = {"200", "201", "304", "404", "500", "503"};
    for (size_t i = 0; i < series; i++) {
        len += (size_t)snprintf(
            buf + len, cap - len,
            "nginx_ingress_controller_requests{canary=\"\",controller_class=\"k8s.io/"
            "ingress-nginx\",controller_namespace=\"ingress-nginx\",controller_pod=\"ingress-"
            "nginx-controller-6b7c9\",host=\"app%zu.example.com\",ingress=\"api%zu\",method="
            "\"GET\",namespace=\"prod\",path=\"/\",service=\"api\",status=\"%s\"} %zu\n",
            i / 6, i / 6, codes[i % 6], i * 7);
    }
    struct acc a = {calloc(series, sizeof *a.s), 0, series};
    if (!a.s) {
        return 1;
    }
    struct rsre_promtext_limits lim = {.max_series = series + 10};
    size_t n = 0;
    double t0 = now_s(), t;
    do {
        a.n = 0;
        if (rsre_promtext_parse(buf, len, &lim, on_sample, &a, NULL) != 0 || a.n != series) {
            fprintf(stderr, "bench_promtext: parse failed\n");
            return 1;
        }
        n++;
        t = now_s() - t0;
    } while (t < secs);
    printf("promtext_parse: %zu series, %zu bytes: %.1f expositions/s, %.1f MB/s, %.0f series/s\n",
           series, len, n / t, (double)len * n / t / 1e6, (double)series * n / t);

    struct rsre_err_ratio *r;
    if (rsre_err_ratio_create(300000, series, &r) != 0) {
        return 1;
    }
    struct rsre_err_ratio_result out;
    int64_t now = 0;
    n = 0;
    t0 = now_s();
    do {
        for (size_t i = 0; i < series; i++) {
            a.s[i].value += (double)(i % 13);
        }
        now += 15000;
        if (rsre_err_ratio_add(r, now, a.s, series, &out) != 0) {
            fprintf(stderr, "bench_promtext: ratio failed\n");
            return 1;
        }
        n++;
        t = now_s() - t0;
    } while (t < secs);
    printf("err_ratio_add: %zu series: %.1f scrapes/s (ratio %.4f)\n", series, n / t, out.ratio);
    rsre_err_ratio_destroy(r);
    free(a.s);
    free(buf);
    return 0;
}
