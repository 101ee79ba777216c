/*
 * Tests of pressure stall information (agent/kmsg.h rsre_psi_*, agent/col_psi.c): the kernel's
 * format (Documentation/accounting/psi.rst) with and without the "full" line, this machine's
 * real /proc/pressure files when it has them, garbage of every kind, the PressureStall signal
 * (validated by the protocol validator), and the collector row against a fake proc_root in a
 * temp dir: all three files, some missing, none (disabled with one log line), and a file that
 * turns into garbage.
 *
 * The collector test replaces the agent core with a link-time double (the functions
 * col_psi.c calls are defined here, so agent.o is never pulled from the static library).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/kmsg.h"
#include "common/error.h"
#include "common/pbuf.h"

/* ---- the agent double ------------------------------------------------------------------------ */

static struct rsre_agent_config g_cfg;
static int g_resources[8];
static size_t g_nsignals;
static int g_has_full[8];
static double g_some_avg10[8];
static int g_done_rc, g_done_calls;

const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a) {
    (void)a;
    return &g_cfg;
}

int64_t rsre_now_unix_ms(void) {
    return 1700000000000;
}

int rsre_agent_emit(struct rsre_agent *a, const rsre_signal *s) {
    (void)a;
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&s->base, err, sizeof(err)) != 0) {
        fail_msg("emitted an invalid signal: %s", err);
    }
    assert_int_equal(s->kind_case, ROBOT_SRE__AGENT__V1__SIGNAL__KIND_PRESSURE_STALL);
    if (g_nsignals < 8) {
        g_resources[g_nsignals] = s->pressure_stall->resource;
        g_has_full[g_nsignals] = s->pressure_stall->full != NULL;
        g_some_avg10[g_nsignals] = s->pressure_stall->some->avg10;
    }
    g_nsignals++;
    return 0;
}

void rsre_collect_done(struct rsre_collect_run *run, int rc) {
    (void)run;
    g_done_calls++;
    g_done_rc = rc;
}

/* ---- parser --------------------------------------------------------------------------------- */

static void test_parse_real_format(void **state) {
    (void)state;
    struct rsre_psi p;
    const char *mem = "some avg10=1.53 avg60=0.87 avg300=0.21 total=7354120\n"
                      "full avg10=0.40 avg60=0.12 avg300=0.03 total=2013344\n";
    assert_int_equal(rsre_psi_parse(mem, strlen(mem), &p), 0);
    assert_true(p.has_some && p.has_full);
    assert_true(p.some.avg10 == 1.53 && p.some.avg60 == 0.87 && p.some.avg300 == 0.21);
    assert_int_equal(p.some.total_usec, 7354120);
    assert_true(p.full.avg10 == 0.40);
    assert_int_equal(p.full.total_usec, 2013344);
    /* cpu before 5.13: only "some". */
    const char *cpu = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    assert_int_equal(rsre_psi_parse(cpu, strlen(cpu), &p), 0);
    assert_true(p.has_some && !p.has_full);
    /* Full stall, no trailing newline, the largest total, an unknown extra field, any order. */
    const char *odd = "full total=18446744073709551615 avg300=100.00 avg60=100 avg10=99.99 x=1\n"
                      "some avg10=100.00 avg60=100.00 avg300=100.00 total=1";
    assert_int_equal(rsre_psi_parse(odd, strlen(odd), &p), 0);
    assert_int_equal(p.full.total_usec, UINT64_MAX);
    assert_true(p.some.avg10 == 100.0);

    struct rsre_psi_signal sig;
    RobotSre__Agent__V1__Signal *s = rsre_psi_build_signal(RSRE_PSI_MEMORY, &p, 1, &sig);
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&s->base, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(s->pressure_stall->resource,
                     ROBOT_SRE__AGENT__V1__PSI_RESOURCE__PSI_RESOURCE_MEMORY);
    assert_non_null(s->pressure_stall->full);
    assert_int_equal(s->pressure_stall->full->total_usec, UINT64_MAX);
    assert_int_equal(rsre_psi_parse(cpu, strlen(cpu), &p), 0);
    s = rsre_psi_build_signal(RSRE_PSI_CPU, &p, 1, &sig);
    assert_null(s->pressure_stall->full);
    assert_int_equal(rsre_pbuf_validate(&s->base, err, sizeof(err)), 0);
}

static void test_parse_this_machine(void **state) {
    (void)state;
    static const char *const files[] = {"/proc/pressure/cpu", "/proc/pressure/memory",
                                        "/proc/pressure/io"};
    int seen = 0;
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) {
            continue;
        }
        char buf[4096];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (n == 0) {
            continue; /* EOPNOTSUPP: PSI disabled at boot */
        }
        struct rsre_psi p;
        if (rsre_psi_parse(buf, n, &p) != 0) {
            fail_msg("%s does not parse: '%.*s'", files[i], (int)n, buf);
        }
        seen++;
    }
    if (!seen) {
        skip(); /* kernel without PSI */
    }
}

static void test_parse_garbage(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        "\n",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", /* no "some" */
        "some avg10=0.00 avg60=0.00 avg300=0.00\n",         /* no total */
        "some avg10=0.00 avg60=0.00 total=0\n",             /* no avg300 */
        "some avg10=0.00 avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
         "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
        "some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=nan avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=inf avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=1e1 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10= avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0x10\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0 junk\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 =5 total=0\n",
        "some\n",
        "some \n",
        "half avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "Some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull garbage\n",
        "\x01\x02\x03",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rsre_psi p;
        if (rsre_psi_parse(bad[i], strlen(bad[i]), &p) != RSRE_EPARSE) {
            fail_msg("accepted '%s'", bad[i]);
        }
        assert_false(p.has_some || p.has_full);
    }
    char nul[] = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\0";
    struct rsre_psi p;
    assert_int_equal(rsre_psi_parse(nul, sizeof(nul) - 1, &p), RSRE_EPARSE);
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, ' ', 5000);
    memcpy(big, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0", 47);
    assert_int_equal(rsre_psi_parse(big, 5000, &p), RSRE_EPARSE);
    free(big);
    assert_int_equal(rsre_psi_parse(NULL, 0, &p), RSRE_EPARSE);
}

/* ---- the collector -------------------------------------------------------------------------- */

static char g_root[64];

static void put(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof(path), "%s/pressure/%s", g_root, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rm(const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "%s/pressure/%s", g_root, name);
    unlink(path);
}

static int setup_root(void **state) {
    (void)state;
    snprintf(g_root, sizeof(g_root), "/tmp/rsre-psi-XXXXXX");
    if (!mkdtemp(g_root)) {
        return -1;
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/pressure", g_root);
    mkdir(path, 0755);
    memset(&g_cfg, 0, sizeof(g_cfg));
    snprintf(g_cfg.proc_root, sizeof(g_cfg.proc_root), "%s", g_root);
    return 0;
}

static int teardown_root(void **state) {
    (void)state;
    rm("cpu");
    rm("memory");
    rm("io");
    char path[256];
    snprintf(path, sizeof(path), "%s/pressure", g_root);
    rmdir(path);
    rmdir(g_root);
    return 0;
}

static const char SOME_ONLY[] = "some avg10=2.50 avg60=1.00 avg300=0.50 total=123\n";
static const char SOME_FULL[] = "some avg10=7.00 avg60=1.00 avg300=0.50 total=123\n"
                                "full avg10=3.00 avg60=0.50 avg300=0.10 total=45\n";

static void test_collector_all(void **state) {
    (void)state;
    put("cpu", SOME_ONLY);
    put("memory", SOME_FULL);
    put("io", SOME_FULL);
    void *st = NULL;
    assert_int_equal(rsre_collector_psi.init((struct rsre_agent *)&g_cfg, &st), 0);
    g_nsignals = 0;
    g_done_calls = 0;
    rsre_collector_psi.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_done_calls, 1);
    assert_int_equal(g_done_rc, 0);
    assert_int_equal(g_nsignals, 3);
    assert_int_equal(g_resources[0], RSRE_PSI_CPU);
    assert_false(g_has_full[0]);
    assert_true(g_some_avg10[0] == 2.5);
    assert_int_equal(g_resources[1], RSRE_PSI_MEMORY);
    assert_true(g_has_full[1]);
    assert_int_equal(g_resources[2], RSRE_PSI_IO);

    /* A file turning into garbage fails this run (logged once) but not the other resources. */
    put("memory", "garbage\n");
    g_nsignals = 0;
    rsre_collector_psi.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_done_rc, RSRE_EPARSE);
    assert_int_equal(g_nsignals, 2);
    rsre_collector_psi.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_nsignals, 4);
    /* Vanishing after start: an error, the others still report. */
    rm("io");
    put("memory", SOME_FULL);
    g_nsignals = 0;
    rsre_collector_psi.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_done_rc, -ENOENT);
    assert_int_equal(g_nsignals, 2);
    /* Larger than any real pressure file. */
    char *big = malloc(6000);
    assert_non_null(big);
    memset(big, 'x', 5999);
    big[5999] = '\0';
    put("cpu", big);
    free(big);
    g_nsignals = 0;
    rsre_collector_psi.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_nsignals, 1);
    rsre_collector_psi.destroy(st);
}

static void test_collector_partial_and_none(void **state) {
    (void)state;
    rm("cpu");
    rm("io");
    put("memory", SOME_FULL);
    void *st = NULL;
    assert_int_equal(rsre_collector_psi.init((struct rsre_agent *)&g_cfg, &st), 0);
    g_nsignals = 0;
    rsre_collector_psi.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_done_rc, 0);
    assert_int_equal(g_nsignals, 1);
    assert_int_equal(g_resources[0], RSRE_PSI_MEMORY);
    /* A file appearing later is not picked up until restart (the set is fixed at init). */
    put("cpu", SOME_ONLY);
    g_nsignals = 0;
    rsre_collector_psi.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_nsignals, 1);
    rsre_collector_psi.destroy(st);

    /* No pressure directory at all: disabled, init fails with the errno. */
    rm("cpu");
    rm("memory");
    st = NULL;
    assert_int_equal(rsre_collector_psi.init((struct rsre_agent *)&g_cfg, &st), -ENOENT);
    assert_null(st);
    /* An empty proc_root means /proc. */
    struct rsre_agent_config saved = g_cfg;
    g_cfg.proc_root[0] = '\0';
    int rc = rsre_collector_psi.init((struct rsre_agent *)&g_cfg, &st);
    if (rc == 0) {
        rsre_collector_psi.destroy(st);
    }
    g_cfg = saved;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_real_format),
        cmocka_unit_test(test_parse_this_machine),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test_setup_teardown(test_collector_all, setup_root, teardown_root),
        cmocka_unit_test_setup_teardown(test_collector_partial_and_none, setup_root, teardown_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
