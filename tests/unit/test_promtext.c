/* Unit tests: Prometheus text parser and the error-ratio window (aggregator/probes/promtext.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "probes/promtext.h"

struct got {
    int n;
    char names[16][64];
    char labels[16][256]; /* "k=v;k=v" */
    double values[16];
    int has_ts[16];
    int64_t ts[16];
    char types[16][16];
    uint64_t keys[16];
};

static int collect(void *arg, const struct rsre_prom_sample *s) {
    struct got *g = arg;
    if (g->n == 16) {
        return -1;
    }
    int i = g->n++;
    snprintf(g->names[i], sizeof g->names[i], "%s", s->name);
    g->labels[i][0] = '\0';
    for (size_t k = 0; k < s->nlabels; k++) {
        size_t l = strlen(g->labels[i]);
        snprintf(g->labels[i] + l, sizeof g->labels[i] - l, "%s%s=%s", k ? ";" : "",
                 s->labels[k].name, s->labels[k].value);
    }
    g->values[i] = s->value;
    g->has_ts[i] = s->has_timestamp;
    g->ts[i] = s->timestamp_ms;
    snprintf(g->types[i], sizeof g->types[i], "%s", s->type);
    g->keys[i] = rsre_prom_series_key(s);
    return 0;
}

static int parse(const char *text, struct got *g, struct rsre_promtext_error *e) {
    memset(g, 0, sizeof *g);
    return rsre_promtext_parse(text, strlen(text), NULL, collect, g, e);
}

static void test_ingress_nginx_exposition(void **state) {
    (void)state;
    /* The shape ingress-nginx's controller serves on :10254/metrics. */
    const char *text =
        "# HELP nginx_ingress_controller_requests The total number of client requests\n"
        "# TYPE nginx_ingress_controller_requests counter\n"
        "nginx_ingress_controller_requests{canary=\"\",controller_class=\"k8s.io/ingress-nginx\","
        "controller_namespace=\"ingress-nginx\",controller_pod=\"ingress-nginx-controller-7d\","
        "host=\"app.example.com\",ingress=\"api\",method=\"GET\",namespace=\"prod\",path=\"/\","
        "service=\"api\",status=\"200\"} 1523\n"
        "nginx_ingress_controller_requests{ingress=\"api\",status=\"503\"} 17\r\n"
        "\n"
        "# a plain comment\n"
        "  go_gc_duration_seconds{quantile=\"0.5\"}\t NaN\n"
        "x_total{a=\"q\\\"uote\\\\back\\nnl\",} +Inf 1700000000000\n"
        "y -Inf\n"
        "z 1.5e3 -5\n";
    struct got g;
    struct rsre_promtext_error e;
    assert_int_equal(parse(text, &g, &e), 0);
    assert_int_equal(g.n, 6);
    assert_string_equal(g.names[0], "nginx_ingress_controller_requests");
    assert_true(strstr(g.labels[0], "status=200") != NULL);
    assert_string_equal(g.types[0], "counter");
    assert_true(g.values[0] == 1523);
    assert_string_equal(g.labels[1], "ingress=api;status=503");
    assert_true(isnan(g.values[2]));
    assert_string_equal(g.types[2], "untyped");
    assert_string_equal(g.labels[3], "a=q\"uote\\back\nnl");
    assert_true(isinf(g.values[3]) && g.values[3] > 0);
    assert_int_equal(g.has_ts[3], 1);
    assert_int_equal(g.ts[3], 1700000000000LL);
    assert_true(isinf(g.values[4]) && g.values[4] < 0);
    assert_true(g.values[5] == 1500);
    assert_int_equal(g.ts[5], -5);
    assert_int_equal(g.has_ts[0], 0);
}

static void test_series_key_ignores_label_order(void **state) {
    (void)state;
    struct got g;
    assert_int_equal(parse("m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 1\nm{a=\"12\"} 1\n"
                           "m{a=\"1\",b=\"2x\"} 1\nm{a=\"1\"} 1\n",
                           &g, NULL),
                     0);
    assert_true(g.keys[0] == g.keys[1]);
    assert_true(g.keys[0] != g.keys[2]);
    assert_true(g.keys[0] != g.keys[3]);
    assert_true(g.keys[2] != g.keys[4]);
}

static void test_errors_with_line(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t line;
        int rc;
    } cases[] = {
        {"ok 1\n9bad 1\n", 2, RSRE_EPARSE},
        {"m{a=\"x} 1\n", 1, RSRE_EPARSE},
        {"m{a=\"\\t\"} 1\n", 1, RSRE_EPARSE},
        {"m{a=\"1\",a=\"2\"} 1\n", 1, RSRE_EPARSE},
        {"m 1 2 3\n", 1, RSRE_EPARSE},
        {"m one\n", 1, RSRE_EPARSE},
        {"m 0x10\n", 1, RSRE_EPARSE},
        {"m\n", 1, RSRE_EPARSE},
        {"m{a=1} 1\n", 1, RSRE_EPARSE},
        {"m 1 1.5\n", 1, RSRE_EPARSE},
        {"# TYPE m bogus\n", 1, RSRE_EPARSE},
        {"# TYPE\n", 1, RSRE_EPARSE},
        {"a 1\nb 2\n\n# HELP x\nm{1=\"a\"} 1\n", 5, RSRE_EPARSE},
        {"m 1e999\n", 1, RSRE_EPARSE},
        {"m{a=\"1\"}1\n", 1, RSRE_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct got g;
        struct rsre_promtext_error e;
        int rc = parse(cases[i].text, &g, &e);
        if (rc != cases[i].rc || e.line != cases[i].line || !e.msg[0]) {
            print_error("case %zu (%s): rc=%d line=%zu msg=%s\n", i, cases[i].text, rc, e.line,
                        e.msg);
            fail();
        }
    }
}

static void test_limits(void **state) {
    (void)state;
    struct got g;
    struct rsre_promtext_error e;
    struct rsre_promtext_limits lim = {.max_line = 20, .max_series = 2, .max_labels = 2};
    const char *longline = "m{a=\"0123456789012345\"} 1\n";
    memset(&g, 0, sizeof g);
    assert_int_equal(rsre_promtext_parse(longline, strlen(longline), &lim, collect, &g, &e),
                     RSRE_ELIMIT);
    assert_int_equal(e.line, 1);
    const char *three = "a 1\nb 1\nc 1\n";
    memset(&g, 0, sizeof g);
    assert_int_equal(rsre_promtext_parse(three, strlen(three), &lim, collect, &g, &e), RSRE_ELIMIT);
    assert_int_equal(e.line, 3);
    const char *labels = "m{a=\"1\",b=\"\",c=\"\"} 1\n";
    lim.max_line = 100;
    memset(&g, 0, sizeof g);
    assert_int_equal(rsre_promtext_parse(labels, strlen(labels), &lim, collect, &g, &e),
                     RSRE_ELIMIT);
    /* A NUL inside a line is refused; the buffer need not be NUL-terminated. */
    const char nul[] = {'m', ' ', '1', '\0', '2', '\n'};
    memset(&g, 0, sizeof g);
    assert_int_equal(rsre_promtext_parse(nul, sizeof nul, NULL, collect, &g, &e), RSRE_EPARSE);
    memset(&g, 0, sizeof g);
    assert_int_equal(rsre_promtext_parse("m 12345", 3, NULL, collect, &g, &e), 0);
    assert_true(g.values[0] == 1);
    /* The callback's code stops the parse. */
    memset(&g, 0, sizeof g);
    g.n = 16;
    assert_int_equal(rsre_promtext_parse("a 1\n", 4, NULL, collect, &g, &e), -1);
}

/* ---- ratio window ---- */

static struct rsre_err_ratio_result add(struct rsre_err_ratio *r, int64_t t, double ok,
                                        double err) {
    struct rsre_err_series s[2] = {{1, ok, 0}, {2, err, 1}};
    struct rsre_err_ratio_result out;
    assert_int_equal(rsre_err_ratio_add(r, t, s, 2, &out), 0);
    return out;
}

static void test_ratio_window(void **state) {
    (void)state;
    struct rsre_err_ratio *r;
    assert_int_equal(rsre_err_ratio_create(300000, 100, &r), 0);
    struct rsre_err_ratio_result o = add(r, 0, 1000, 10);
    assert_true(o.ratio == 0 && o.total == 0); /* first scrape: no interval yet */
    o = add(r, 60000, 1090, 20);               /* +90 ok, +10 err */
    assert_true(fabs(o.ratio - 0.1) < 1e-12);
    assert_true(fabs(o.slope_per_min - 0.1) < 1e-12);
    o = add(r, 120000, 1180, 30); /* another +90/+10: window 180/20 */
    assert_true(fabs(o.ratio - 0.1) < 1e-12);
    assert_true(fabs(o.slope_per_min) < 1e-12);
    o = add(r, 180000, 1280, 30); /* +100 ok, 0 err: 280 ok, 20 err */
    assert_true(fabs(o.ratio - 20.0 / 300.0) < 1e-12);
    assert_true(o.slope_per_min < 0);
    /* Slide: at 420 s the points at 60 s and 120 s fell out (t <= now - window). */
    o = add(r, 420000, 1380, 30);
    assert_int_equal(o.scrapes, 2); /* the 180 s and 420 s points */
    assert_true(fabs(o.ratio - 0.0) < 1e-12);
    assert_true(fabs(o.total - 200) < 1e-9);
    rsre_err_ratio_destroy(r);
}

static void test_ratio_counter_reset(void **state) {
    (void)state;
    struct rsre_err_ratio *r;
    assert_int_equal(rsre_err_ratio_create(600000, 100, &r), 0);
    add(r, 0, 5000, 100);
    struct rsre_err_ratio_result o = add(r, 60000, 5090, 110); /* +90/+10 */
    assert_true(fabs(o.ratio - 0.1) < 1e-12);
    /* The controller restarted: both counters went down; their new values are the increase. */
    o = add(r, 120000, 40, 60);
    assert_int_equal(o.resets, 2);
    assert_true(fabs(o.total - 200) < 1e-9);
    assert_true(fabs(o.errors - 70) < 1e-9);
    assert_true(fabs(o.ratio - 0.35) < 1e-12);
    /* A series appearing after the first scrape counts from zero. */
    struct rsre_err_series s[3] = {{1, 140, 0}, {2, 60, 1}, {3, 25, 1}};
    assert_int_equal(rsre_err_ratio_add(r, 180000, s, 3, &o), 0);
    assert_true(fabs(o.total - (200 + 125)) < 1e-9);
    assert_true(fabs(o.errors - (70 + 25)) < 1e-9);
    assert_int_equal(o.resets, 0);
    rsre_err_ratio_destroy(r);
}

static void test_ratio_refusals(void **state) {
    (void)state;
    struct rsre_err_ratio *r;
    struct rsre_err_ratio_result o;
    assert_int_equal(rsre_err_ratio_create(0, 10, &r), -EINVAL);
    assert_int_equal(rsre_err_ratio_create(60000, 2, &r), 0);
    struct rsre_err_series s[3] = {{1, 1, 0}, {2, 1, 1}, {3, 1, 0}};
    assert_int_equal(rsre_err_ratio_add(r, 1000, s, 3, &o), RSRE_ELIMIT);
    struct rsre_err_series bad[1] = {{1, NAN, 0}};
    assert_int_equal(rsre_err_ratio_add(r, 1000, bad, 1, &o), RSRE_EINVALID);
    bad[0].value = -1;
    assert_int_equal(rsre_err_ratio_add(r, 1000, bad, 1, &o), RSRE_EINVALID);
    assert_int_equal(rsre_err_ratio_add(r, 1000, s, 2, &o), 0);
    assert_int_equal(rsre_err_ratio_add(r, 1000, s, 2, &o), -EINVAL); /* not later */
    /* No traffic in the window: ratio 0. */
    assert_int_equal(rsre_err_ratio_add(r, 2000, s, 2, &o), 0);
    assert_true(o.ratio == 0 && o.total == 0);
    rsre_err_ratio_destroy(r);
    rsre_err_ratio_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingress_nginx_exposition),
        cmocka_unit_test(test_series_key_ignores_label_order),
        cmocka_unit_test(test_errors_with_line),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_ratio_window),
        cmocka_unit_test(test_ratio_counter_reset),
        cmocka_unit_test(test_ratio_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
