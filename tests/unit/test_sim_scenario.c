/*
 * robot-sre-sim scenarios (aggregator/sim/scenario.h): node name patterns, strict parsing with
 * line:col errors, the timeline (steps, ramps and their slopes) and load mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "sim/scenario.h"

struct names {
    char got[8][64];
    size_t n;
};

static int collect(void *arg, const char *name) {
    struct names *nm = arg;
    if (nm->n < 8) {
        snprintf(nm->got[nm->n], sizeof(nm->got[0]), "%s", name);
    }
    nm->n++;
    return 0;
}

static void test_expand(void **state) {
    (void)state;
    struct names nm = {0};
    const char *why = NULL;
    assert_int_equal(rsre_sim_expand("w-{08..10}.lab", 0, collect, &nm, &why), 3);
    assert_string_equal(nm.got[0], "w-08.lab");
    assert_string_equal(nm.got[2], "w-10.lab");
    memset(&nm, 0, sizeof(nm));
    assert_int_equal(rsre_sim_expand("n{1..3}", 0, collect, &nm, &why), 3);
    assert_string_equal(nm.got[0], "n1");
    memset(&nm, 0, sizeof(nm));
    assert_int_equal(rsre_sim_expand("single", 0, collect, &nm, &why), 1);
    static const char *const bad[] = {"Upper",  "a{3..1}",  "a{1..x}", "a{1..2}{3..4}",
                                      "a{..2}", "-a{1..2}", "a{1-2}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&nm, 0, sizeof(nm));
        assert_true(rsre_sim_expand(bad[i], 0, collect, &nm, &why) < 0);
        assert_int_equal(nm.n, 0);
    }
    assert_int_equal(rsre_sim_expand("a{1..100000}", 0, collect, &nm, &why), RSRE_ELIMIT);
    assert_int_equal(rsre_sim_expand("a{1..10}", 5, collect, &nm, &why), RSRE_ELIMIT);
}

static void test_durations(void **state) {
    (void)state;
    int64_t ms = 0;
    assert_int_equal(rsre_sim_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(rsre_sim_parse_duration("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(rsre_sim_parse_duration("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(rsre_sim_parse_duration("3", &ms), 0);
    assert_int_equal(ms, 3000);
    static const char *const bad[] = {"", "s", "-1s", "1d", "1 s", "nan", "1e9h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(rsre_sim_parse_duration(bad[i], &ms), 0);
    }
}

static const char good[] = "duration: 20s\n"
                           "action_result: failed\n"
                           "groups:\n"
                           "  - name: fill\n"
                           "    nodes: w-{1..2}\n"
                           "    start: {nodefs_used_percent: 50, interval: 500ms}\n"
                           "    steps:\n"
                           "      - {at: 2s, ramp: 10s, nodefs_used_percent: 90}\n"
                           "      - {at: 6s, disk_pressure: true, pods_evicted: 2}\n"
                           "      - {at: 15s, silent: true}\n"
                           "  - nodes: other\n";

static void test_parse_and_timeline(void **state) {
    (void)state;
    struct rsre_sim_scenario sc;
    struct rsre_yerr err;
    assert_int_equal(rsre_sim_scenario_parse(good, strlen(good), &sc, &err), 0);
    assert_int_equal(sc.duration_ms, 20000);
    assert_int_equal(sc.result, SR_FAILED);
    assert_int_equal(sc.nnodes, 3);
    assert_int_equal(sc.ngroups, 2);
    assert_string_equal(sc.nodes[1], "w-2");
    assert_int_equal(sc.node_group[2], 1);
    const struct rsre_sim_group *g = &sc.groups[0];
    double v[SF_COUNT], slope[SF_COUNT];
    rsre_sim_state_at(g, 1000, v, slope);
    assert_true(fabs(v[SF_NODEFS_USED] - 50) < 1e-9);
    assert_true(slope[SF_NODEFS_USED] == 0);
    assert_true(v[SF_INTERVAL_MS] == 500);
    rsre_sim_state_at(g, 7000, v, slope); /* half way through the ramp */
    assert_true(fabs(v[SF_NODEFS_USED] - 70) < 1e-9);
    assert_true(fabs(slope[SF_NODEFS_USED] - 4.0) < 1e-9); /* 40 points over 10 s */
    assert_true(v[SF_DISK_PRESSURE] == 1 && v[SF_PODS_EVICTED] == 2);
    assert_true(v[SF_SILENT] == 0);
    rsre_sim_state_at(g, 16000, v, slope);
    assert_true(fabs(v[SF_NODEFS_USED] - 90) < 1e-9);
    assert_true(slope[SF_NODEFS_USED] == 0);
    assert_true(v[SF_SILENT] == 1);
    /* The second group has every default. */
    rsre_sim_state_at(&sc.groups[1], 5000, v, NULL);
    for (int f = 0; f < SF_COUNT; f++) {
        assert_true(v[f] == rsre_sim_fields[f].def);
    }
    rsre_sim_scenario_free(&sc);
}

struct bad_case {
    const char *yaml, *msg;
    int line, col;
};

static void test_errors(void **state) {
    (void)state;
    static const struct bad_case cases[] = {
        {"groups: []\n", "groups: expected a non-empty sequence", 1, 9},
        {"groups:\n  - name: x\n", "'nodes' is required", 2, 5},
        {"groups:\n  - nodes: a\n    steps:\n      - {at: 1s}\n", "sets no field", 4, 9},
        {"groups:\n  - nodes: a\n    start: {ready: maybe}\n", "ready", 3, 20},
        {"groups:\n  - nodes: a\n    start: {pods_failed: 1.5}\n", "whole number", 3, 26},
        {"groups:\n  - nodes: a\n    steps:\n      - {at: soon, psi_io: 3}\n",
         "at: expected a duration", 4, 14},
        {"duration: 10ms\ngroups:\n  - nodes: a\n", "duration: at least 1s", 1, 11},
        {"action_result: maybe\ngroups:\n  - nodes: a\n", "not ok, failed", 1, 16},
        {"speed: 3\ngroups:\n  - nodes: a\n", "unknown key 'speed'", 1, 1},
        {"groups:\n  - nodes: a\n    start: {interval: 1ms}\n", "interval: 1 is outside", 3, 23},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rsre_sim_scenario sc;
        struct rsre_yerr err;
        int rc = rsre_sim_scenario_parse(cases[i].yaml, strlen(cases[i].yaml), &sc, &err);
        if (rc == 0 || !strstr(err.msg, cases[i].msg) || err.line != cases[i].line ||
            err.col != cases[i].col) {
            print_error("case %zu: rc=%d %d:%d %s\n", i, rc, err.line, err.col, err.msg);
            fail();
        }
        assert_null(sc.nodes);
    }
}

static void test_load_mode(void **state) {
    (void)state;
    struct rsre_sim_scenario sc;
    struct rsre_yerr err;
    assert_int_equal(rsre_sim_scenario_load_mode(&sc, "n-{001..200}", 200, 10000, 250, 5, &err), 0);
    assert_int_equal(sc.nnodes, 200);
    assert_int_equal(sc.ngroups, 2);
    assert_int_equal(sc.groups[0].count, 10);
    assert_int_equal(sc.groups[1].count, 190);
    double v[SF_COUNT];
    rsre_sim_state_at(&sc.groups[0], 4999, v, NULL);
    assert_true(v[SF_DISK_PRESSURE] == 0 && v[SF_INTERVAL_MS] == 250);
    rsre_sim_state_at(&sc.groups[0], 5000, v, NULL);
    assert_true(v[SF_DISK_PRESSURE] == 1);
    rsre_sim_state_at(&sc.groups[1], 9000, v, NULL);
    assert_true(v[SF_DISK_PRESSURE] == 0);
    rsre_sim_scenario_free(&sc);
    assert_int_equal(rsre_sim_scenario_load_mode(&sc, "n-{1..3}", 4, 10000, 250, 0, &err),
                     RSRE_EINVALID);
    assert_non_null(strstr(err.msg, "different number"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_parse_and_timeline),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
