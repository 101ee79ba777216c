/* Unit tests: probes file loading, failure threshold/recovery state, and the engine
 * observation each kind produces (aggregator/probes/probes.h). Network runs are in
 * tests/integration/test_probes_*.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "probes/probes.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/rsre-probes-unit-XXXXXX");
    if (!mkdtemp(dir)) {
        return -1;
    }
    char p[128];
    snprintf(p, sizeof p, "%s/redis.pass", dir);
    FILE *f = fopen(p, "w");
    fputs("s3cret-pw\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/empty.pass", dir);
    f = fopen(p, "w");
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/redis.pass", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/empty.pass", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

static const char *GOOD = "probes:\n"
                          "  - kind: redis\n"
                          "    name: redis-main\n"
                          "    host: 127.0.0.1\n"
                          "    port: 6379\n"
                          "    password_file: redis.pass\n"
                          "    interval: 30s\n"
                          "    timeout: 2500ms\n"
                          "    threshold: 2\n"
                          "    core: true\n"
                          "  - kind: registry\n"
                          "    name: registry\n"
                          "    url: http://127.0.0.1:5000\n"
                          "    images: [team/api:1.2.3, team/web@sha256:0123, base]\n"
                          "  - kind: dns\n"
                          "    name: app-dns\n"
                          "    host: app.example.com\n"
                          "    expect: [10.0.0.1, \"2001:db8::1\"]\n"
                          "  - kind: http5xx\n"
                          "    name: ingress\n"
                          "    url: http://127.0.0.1:10254/metrics\n"
                          "    window: 5m\n"
                          "    match_label: ingress\n"
                          "    match_value: api\n";

static void test_load_good(void **state) {
    (void)state;
    struct rsre_probe_set *set;
    struct rsre_yerr err;
    assert_int_equal(rsre_probe_set_load(GOOD, strlen(GOOD), dir, &set, &err), 0);
    assert_int_equal(rsre_probe_set_count(set), 4);
    const struct rsre_probe_def *r = rsre_probe_set_get(set, 0);
    assert_int_equal(r->kind, RSRE_PROBE_REDIS);
    assert_string_equal(r->password, "s3cret-pw");
    assert_int_equal(r->interval_ms, 30000);
    assert_int_equal(r->timeout_ms, 2500);
    assert_int_equal(r->threshold, 2);
    assert_int_equal(r->core, 1);
    const struct rsre_probe_def *g = rsre_probe_set_get(set, 1);
    assert_int_equal(g->nimages, 3);
    assert_string_equal(g->images[1], "team/web@sha256:0123");
    assert_int_equal(g->threshold, 3); /* default */
    const struct rsre_probe_def *d = rsre_probe_set_get(set, 2);
    assert_int_equal(d->nexpect, 2);
    const struct rsre_probe_def *h = rsre_probe_set_get(set, 3);
    assert_int_equal(h->window_ms, 300000);
    assert_string_equal(h->metric, "nginx_ingress_controller_requests");
    assert_null(rsre_probe_set_get(set, 4));
    rsre_probe_set_destroy(set);
}

static void test_load_errors(void **state) {
    (void)state;
    static const struct {
        const char *yaml;
        int line, col;
        const char *needle;
    } cases[] = {
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n    port: 99999\n", 5, 11, "port"},
        {"probes:\n  - kind: mongo\n    name: m\n", 2, 11, "unknown probe kind"},
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n    port: 1\n    bogus: 1\n", 6, 5,
         "unknown field bogus"},
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n    port: 1\n    images: [a]\n", 6, 5,
         "not a field of kind redis"},
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n", 2, 5, "needs port"},
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n    port: 1\n"
         "    password_file: missing.pass\n",
         6, 20, "password_file"},
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n    port: 1\n"
         "    password_file: empty.pass\n",
         6, 20, "empty"},
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n    port: 1\n    interval: 1s\n"
         "    timeout: 2s\n",
         2, 5, "timeout must be < interval"},
        {"probes:\n  - kind: http\n    name: r\n    url: ftp://x/\n", 2, 5, "http://"},
        {"probes:\n  - kind: ldap\n    name: l\n    url: http://x/\n", 2, 5, "ldap://"},
        {"probes:\n  - {kind: dns, name: a, host: x, expect: [1.1.1.1]}\n"
         "  - {kind: dns, name: a, host: y, expect: [1.1.1.1]}\n",
         3, 5, "duplicate name"},
        {"probes:\n  - kind: redis\n    name: Bad Name\n    host: h\n    port: 1\n", 2, 5, "name"},
        {"probes:\n  - kind: redis\n    name: r\n    host: h\n    port: 1\n    interval: 5x\n", 6,
         15, "duration"},
        {"probes: {}\n", 1, 9, "sequence"},
        {"other: 1\nprobes: []\n", 1, 1, "top-level"},
        {"probes:\n  - kind: ldap\n    name: l\n    url: ldap://x/\n    bind_dn: cn=a\n", 2, 5,
         "password_file"},
        {"probes: [\n", 2, 1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rsre_probe_set *set = (void *)1;
        struct rsre_yerr err = {0};
        int rc = rsre_probe_set_load(cases[i].yaml, strlen(cases[i].yaml), dir, &set, &err);
        if (rc == 0 || set != NULL || err.line != cases[i].line || err.col != cases[i].col ||
            !strstr(err.msg, cases[i].needle)) {
            print_error("case %zu: rc=%d %d:%d %s\n", i, rc, err.line, err.col, err.msg);
            fail();
        }
        assert_null(strstr(err.msg, "s3cret"));
    }
}

static void test_load_file_error_format(void **state) {
    (void)state;
    char path[128], msg[512];
    snprintf(path, sizeof path, "%s/probes.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("probes:\n  - kind: redis\n    name: r\n    host: h\n    port: x\n", f);
    fclose(f);
    struct rsre_probe_set *set;
    assert_int_equal(rsre_probe_set_load_file(path, &set, msg, sizeof msg), RSRE_EINVALID);
    char want[256];
    snprintf(want, sizeof want, "%s:5:11: port", path);
    assert_non_null(strstr(msg, want));
    unlink(path);
    assert_int_equal(rsre_probe_set_load_file(path, &set, msg, sizeof msg), -ENOENT);
}

static struct rsre_probe_def def_of(enum rsre_probe_kind k, const char *name, int threshold,
                                    int core) {
    struct rsre_probe_def d;
    memset(&d, 0, sizeof d);
    d.kind = k;
    snprintf(d.name, sizeof d.name, "%s", name);
    d.threshold = threshold;
    d.core = core;
    d.window_ms = 300000;
    return d;
}

/* The first observation of a status, flattened for the checks below. */
static int observe(const struct rsre_probe_status *s, char *scope, size_t sl, char *source,
                   size_t srcl, const char **detail, struct rsre_probe_obs_value *v, size_t nv) {
    struct rsre_probe_obs o[RSRE_PROBE_OBS_MAX];
    int n = rsre_probe_observations(s, o);
    if (n <= 0) {
        return n;
    }
    snprintf(scope, sl, "%s", o[0].scope);
    snprintf(source, srcl, "%s", o[0].source);
    *detail = o[0].detail;
    assert_true(o[0].nvalues <= nv);
    memcpy(v, o[0].values, o[0].nvalues * sizeof *v);
    return (int)o[0].nvalues;
}

static double value_of(const struct rsre_probe_obs_value *v, int n, const char *sig) {
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i].signal, sig) == 0) {
            return v[i].value;
        }
    }
    return -12345;
}

static void test_threshold_and_recovery(void **state) {
    (void)state;
    struct rsre_probe_def d = def_of(RSRE_PROBE_REDIS, "redis", 3, 1);
    struct rsre_probe_state st = {0};
    struct rsre_probe_result res = {0};
    struct rsre_probe_status s;
    char scope[128], source[128];
    const char *detail;
    struct rsre_probe_obs_value v[8];
    for (int i = 1; i <= 4; i++) {
        memset(&res, 0, sizeof res);
        snprintf(res.error, sizeof res.error, "redis connect: Connection refused");
        snprintf(res.code, sizeof res.code, "ECONNREFUSED");
        assert_int_equal(rsre_probe_state_update(&st, &d, &res, i * 1000, &s), 0);
        assert_int_equal(s.consecutive_failures, i);
        assert_int_equal(s.failing, i >= 3);
        assert_int_equal(s.changed, i == 3);
        int n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
        assert_int_equal(n, 3);
        assert_string_equal(scope, "dependency/redis");
        assert_string_equal(source, "probe:redis");
        assert_string_equal(detail, "redis connect: Connection refused");
        assert_true(value_of(v, n, "dep.failing") == (i >= 3));
        assert_true(value_of(v, n, "dep.core_failing") == (i >= 3));
        assert_true(value_of(v, n, "dep.consecutive_failures") == i);
    }
    memset(&res, 0, sizeof res);
    res.ok = 1;
    assert_int_equal(rsre_probe_state_update(&st, &d, &res, 5000, &s), 0);
    assert_int_equal(s.failing, 0);
    assert_int_equal(s.changed, 1);
    assert_int_equal(s.consecutive_failures, 0);
    int n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
    assert_string_equal(detail, "ok");
    assert_true(value_of(v, n, "dep.failing") == 0);
    /* A single failure after recovery does not report failing again. */
    memset(&res, 0, sizeof res);
    snprintf(res.error, sizeof res.error, "x");
    assert_int_equal(rsre_probe_state_update(&st, &d, &res, 6000, &s), 0);
    assert_int_equal(s.failing, 0);
    rsre_probe_state_clear(&st);
}

static void test_observation_families(void **state) {
    (void)state;
    char scope[128], source[128];
    const char *detail;
    struct rsre_probe_obs_value v[8];
    struct rsre_probe_result res = {0};
    struct rsre_probe_status s;
    /* ldap: failing and held seconds. */
    struct rsre_probe_def d = def_of(RSRE_PROBE_LDAP, "corp-ldap", 1, 0);
    struct rsre_probe_state st = {0};
    snprintf(res.error, sizeof res.error, "ldap bind: Invalid credentials (49)");
    rsre_probe_state_update(&st, &d, &res, 10000, &s);
    rsre_probe_state_update(&st, &d, &res, 70000, &s);
    int n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
    assert_string_equal(scope, "dependency/corp-ldap");
    assert_true(value_of(v, n, "ldap.failing") == 1);
    assert_int_equal(n, 1); /* ldap.failing_held is the engine's own */
    /* postgres */
    d = def_of(RSRE_PROBE_POSTGRES, "pg", 1, 1);
    memset(&st, 0, sizeof st);
    rsre_probe_state_update(&st, &d, &res, 1000, &s);
    n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
    assert_int_equal(n, 1);
    assert_true(value_of(v, n, "db.failing") == 1);
    /* http route (core) */
    d = def_of(RSRE_PROBE_HTTP, "app-home", 1, 1);
    memset(&st, 0, sizeof st);
    rsre_probe_state_update(&st, &d, &res, 1000, &s);
    n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
    assert_string_equal(scope, "route/app-home");
    assert_true(value_of(v, n, "ingress.failing_routes") == 1);
    assert_true(value_of(v, n, "ingress.failing_core_routes") == 1);
    assert_true(value_of(v, n, "tls.failures") == 0);
    assert_true(value_of(v, n, "dns.mismatches") == 0);
    /* tls: a verification failure, days known */
    d = def_of(RSRE_PROBE_TLS, "app-cert", 1, 0);
    memset(&st, 0, sizeof st);
    res.tls_failed = 1;
    res.has_days = 1;
    res.days_to_expiry = -2.5;
    rsre_probe_state_update(&st, &d, &res, 1000, &s);
    n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
    assert_string_equal(scope, "tls/app-cert");
    assert_true(value_of(v, n, "tls.failures") == 1);
    assert_true(value_of(v, n, "tls.days_to_expiry") == -2.5);
    assert_true(value_of(v, n, "ingress.failing_routes") == 1); /* the route fails for clients */
    assert_true(value_of(v, n, "ingress.failing_core_routes") == 0);
    /* dns: mismatches counted once failing */
    d = def_of(RSRE_PROBE_DNS, "app-dns", 2, 0);
    memset(&st, 0, sizeof st);
    memset(&res, 0, sizeof res);
    res.dns_mismatches = 2;
    snprintf(res.error, sizeof res.error, "dns: missing 10.0.0.1, unexpected 10.0.0.9");
    rsre_probe_state_update(&st, &d, &res, 1000, &s);
    n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
    assert_true(value_of(v, n, "dns.mismatches") == 0);
    rsre_probe_state_update(&st, &d, &res, 2000, &s);
    n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
    assert_true(value_of(v, n, "dns.mismatches") == 2);
    assert_true(value_of(v, n, "ingress.failing_routes") == 1);
    assert_true(value_of(v, n, "tls.failures") == 0);
}

static void test_registry_two_scopes(void **state) {
    (void)state;
    struct rsre_probe_def d = def_of(RSRE_PROBE_REGISTRY, "registry", 1, 1);
    struct rsre_probe_state st = {0};
    struct rsre_probe_result res = {0};
    struct rsre_probe_status s;
    struct rsre_probe_obs o[RSRE_PROBE_OBS_MAX];
    /* /v2/ answers, one wanted image unknown: a pull failure, not a dependency outage. */
    res.image_unknown = 1;
    snprintf(res.error, sizeof res.error, "registry manifests: team/api:1.0: 404 MANIFEST_UNKNOWN");
    rsre_probe_state_update(&st, &d, &res, 1000, &s);
    assert_int_equal(rsre_probe_observations(&s, o), 2);
    assert_string_equal(o[0].scope, "dependency/registry");
    assert_true(value_of(o[0].values, (int)o[0].nvalues, "dep.failing") == 0);
    assert_string_equal(o[1].scope, "registry/registry");
    assert_true(value_of(o[1].values, (int)o[1].nvalues, "pull.failing_workloads") == 1);
    assert_true(value_of(o[1].values, (int)o[1].nvalues, "pull.failing_core_workloads") == 1);
    assert_non_null(strstr(o[1].detail, "MANIFEST_UNKNOWN"));
    /* /v2/ does not answer: a dependency failure; nothing known about the images. */
    memset(&res, 0, sizeof res);
    snprintf(res.error, sizeof res.error, "refused");
    rsre_probe_state_update(&st, &d, &res, 2000, &s);
    assert_int_equal(rsre_probe_observations(&s, o), 1);
    assert_true(value_of(o[0].values, (int)o[0].nvalues, "dep.failing") == 1);
    assert_true(value_of(o[0].values, (int)o[0].nvalues, "dep.core_failing") == 1);
    /* Healthy: both scopes clear. */
    memset(&res, 0, sizeof res);
    res.ok = 1;
    rsre_probe_state_update(&st, &d, &res, 3000, &s);
    assert_int_equal(rsre_probe_observations(&s, o), 2);
    assert_true(value_of(o[0].values, (int)o[0].nvalues, "dep.failing") == 0);
    assert_true(value_of(o[1].values, (int)o[1].nvalues, "pull.failing_workloads") == 0);
    assert_string_equal(o[1].detail, "ok");
}

static void test_http5xx_ratio_state(void **state) {
    (void)state;
    struct rsre_probe_def d = def_of(RSRE_PROBE_HTTP5XX, "ingress", 3, 0);
    struct rsre_probe_state st = {0};
    struct rsre_probe_status s;
    char scope[128], source[128];
    const char *detail;
    struct rsre_probe_obs_value v[8];
    double ok[] = {1000, 1090, 1180, 1280};
    double er[] = {0, 10, 20, 20};
    for (int i = 0; i < 4; i++) {
        struct rsre_probe_result res = {0};
        res.ok = 1;
        res.series = malloc(2 * sizeof *res.series);
        res.series[0] = (struct rsre_err_series){1, ok[i], 0};
        res.series[1] = (struct rsre_err_series){2, er[i], 1};
        res.nseries = 2;
        assert_int_equal(rsre_probe_state_update(&st, &d, &res, i * 60000, &s), 0);
        int n = observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8);
        assert_int_equal(n, 2);
        assert_string_equal(scope, "http/ingress");
        if (i == 2) {
            assert_true(value_of(v, n, "http.error_ratio") > 0.099);
        }
        if (i == 3) {
            assert_true(value_of(v, n, "http.error_ratio_slope") < 0);
        }
        rsre_probe_result_clear(&res);
    }
    /* A failed scrape reports nothing about the ratio. */
    struct rsre_probe_result bad = {0};
    snprintf(bad.error, sizeof bad.error, "connect refused");
    rsre_probe_state_update(&st, &d, &bad, 300000, &s);
    assert_int_equal(observe(&s, scope, sizeof scope, source, sizeof source, &detail, v, 8), 0);
    rsre_probe_state_clear(&st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_good),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_file_error_format),
        cmocka_unit_test(test_threshold_and_recovery),
        cmocka_unit_test(test_observation_families),
        cmocka_unit_test(test_registry_two_scopes),
        cmocka_unit_test(test_http5xx_ratio_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
