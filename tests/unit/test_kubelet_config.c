/*
 * Tests of the kubelet threshold reader (agent/kubelet_config.h): kubelet's defaults, the
 * good files in tests/data/kubelet (including "setting any evictionHard threshold zeroes the
 * others"), every bad file with its exact error position and message (and the defaults kept
 * with source UNKNOWN), quantities, percentages with kubelet's float32 arithmetic, durations,
 * the image-GC trigger compared with kubelet's integer formula, and overrides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/kubelet_config.h"
#include "common/error.h"

#define DATA RSRE_TEST_DATA "/kubelet/"

static int load(const char *name, struct rsre_kubelet_thresholds *t, struct rsre_yerr *err) {
    char path[1024];
    snprintf(path, sizeof(path), DATA "%s", name);
    return rsre_kubelet_load(path, t, err);
}

static void assert_defaults_values(const struct rsre_kubelet_thresholds *t) {
    const struct rsre_kubelet_threshold *h = t->hard;
    assert_true(h[RSRE_KSIG_MEMORY_AVAILABLE].set);
    assert_int_equal(h[RSRE_KSIG_MEMORY_AVAILABLE].quantity, 100u << 20);
    assert_true(h[RSRE_KSIG_NODEFS_AVAILABLE].set);
    assert_true(h[RSRE_KSIG_NODEFS_AVAILABLE].percent == 10.0);
    assert_int_equal(h[RSRE_KSIG_NODEFS_AVAILABLE].quantity, 0);
    assert_true(h[RSRE_KSIG_NODEFS_INODES_FREE].set);
    assert_true(h[RSRE_KSIG_NODEFS_INODES_FREE].percent == 5.0);
    assert_true(h[RSRE_KSIG_IMAGEFS_AVAILABLE].set);
    assert_true(h[RSRE_KSIG_IMAGEFS_AVAILABLE].percent == 15.0);
    assert_false(h[RSRE_KSIG_IMAGEFS_INODES_FREE].set);
    assert_false(h[RSRE_KSIG_PID_AVAILABLE].set);
    for (int i = 0; i < RSRE_KSIG_COUNT; i++) {
        assert_false(t->soft[i].set);
    }
    assert_int_equal(t->gc_high_percent, 85);
    assert_int_equal(t->gc_low_percent, 80);
    assert_int_equal(t->gc_min_age_s, 120);
    assert_int_equal(t->pressure_transition_s, 300);
}

static void test_defaults(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    assert_defaults_values(&t);
    assert_int_equal(t.source, RSRE_KSRC_DEFAULTS);
    assert_false(t.hard_from_config);
    assert_string_equal(rsre_kubelet_signal_name(RSRE_KSIG_NODEFS_INODES_FREE),
                        "nodefs.inodesFree");
    assert_null(rsre_kubelet_signal_name(RSRE_KSIG_COUNT));
}

static void test_missing_file(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(load("does-not-exist.yaml", &t, &err), -ENOENT);
    assert_int_equal(t.source, RSRE_KSRC_DEFAULTS);
    assert_defaults_values(&t);
    /* A directory is not a config file: defaults, but the source is unknown. */
    assert_true(rsre_kubelet_load(RSRE_TEST_DATA "/kubelet", &t, &err) < 0);
    assert_int_equal(t.source, RSRE_KSRC_UNKNOWN);
    assert_defaults_values(&t);
}

static void test_good_kubeadm(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(load("good-kubeadm-defaults.yaml", &t, &err), 0);
    assert_int_equal(t.source, RSRE_KSRC_CONFIG);
    assert_false(t.hard_from_config);
    assert_defaults_values(&t); /* "0s" durations mean the defaults, as in kubelet */
}

static void test_good_custom(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(load("good-oke-custom.yaml", &t, &err), 0);
    assert_int_equal(t.source, RSRE_KSRC_CONFIG);
    assert_true(t.hard_from_config);
    assert_int_equal(t.hard[RSRE_KSIG_MEMORY_AVAILABLE].quantity, 500ull << 20);
    assert_true(t.hard[RSRE_KSIG_NODEFS_AVAILABLE].percent == 15.0);
    assert_true(t.hard[RSRE_KSIG_IMAGEFS_AVAILABLE].percent == 20.0);
    /* evictionHard was set, so the default nodefs.inodesFree<5% is gone. */
    assert_false(t.hard[RSRE_KSIG_NODEFS_INODES_FREE].set);
    assert_int_equal(t.gc_high_percent, 90);
    assert_int_equal(t.gc_low_percent, 75);
    assert_int_equal(t.gc_min_age_s, 300);
    assert_int_equal(t.pressure_transition_s, 150);
}

static void test_any_hard_zeroes_others(void **state) {
    (void)state;
    static const char *const one[] = {"memory.available: 200Mi", "nodefs.available: 5%",
                                      "imagefs.inodesFree: 1000", "pid.available: 100"};
    for (size_t k = 0; k < sizeof(one) / sizeof(one[0]); k++) {
        char buf[512];
        int n = snprintf(buf, sizeof(buf),
                         "apiVersion: kubelet.config.k8s.io/v1beta1\n"
                         "kind: KubeletConfiguration\nevictionHard:\n  %s\n",
                         one[k]);
        struct rsre_kubelet_thresholds t;
        struct rsre_yerr err;
        assert_int_equal(rsre_kubelet_parse(buf, (size_t)n, &t, &err), 0);
        int set = 0;
        for (int i = 0; i < RSRE_KSIG_COUNT; i++) {
            if (t.hard[i].set) {
                set++;
                assert_non_null(strstr(one[k], rsre_kubelet_signal_name(i)));
            }
        }
        assert_int_equal(set, 1);
        /* Image GC keeps its defaults: it is not part of evictionHard. */
        assert_int_equal(t.gc_high_percent, 85);
        assert_int_equal(t.gc_low_percent, 80);
    }
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(load("good-eviction-empty-map.yaml", &t, &err), 0);
    for (int i = 0; i < RSRE_KSIG_COUNT; i++) {
        assert_false(t.hard[i].set);
    }
    assert_true(t.hard_from_config);
    /* Null (evictionHard: with nothing after it) is "not set": the defaults stay. */
    assert_int_equal(load("good-eviction-null.yaml", &t, &err), 0);
    assert_false(t.hard_from_config);
    assert_defaults_values(&t);
}

static void test_good_soft(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(load("good-soft.yaml", &t, &err), 0);
    assert_true(t.soft[RSRE_KSIG_NODEFS_AVAILABLE].set);
    assert_true(t.soft[RSRE_KSIG_NODEFS_AVAILABLE].percent == 20.0);
    assert_int_equal(t.soft[RSRE_KSIG_NODEFS_AVAILABLE].grace_s, 90);
    assert_int_equal(t.soft[RSRE_KSIG_MEMORY_AVAILABLE].quantity, 1ull << 30);
    assert_int_equal(t.soft[RSRE_KSIG_MEMORY_AVAILABLE].grace_s, 90);
    assert_true(t.hard[RSRE_KSIG_NODEFS_AVAILABLE].set); /* hard untouched */
}

static void test_good_quantities(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(load("good-quantities.yaml", &t, &err), 0);
    assert_int_equal(t.hard[RSRE_KSIG_MEMORY_AVAILABLE].quantity, 512ull << 20);
    assert_int_equal(t.hard[RSRE_KSIG_NODEFS_AVAILABLE].quantity, 1000000000ull);
    assert_int_equal(t.hard[RSRE_KSIG_NODEFS_INODES_FREE].quantity, 100000);
    assert_false(t.hard[RSRE_KSIG_IMAGEFS_AVAILABLE].set); /* "100%" is ignored by kubelet */
    assert_int_equal(t.hard[RSRE_KSIG_IMAGEFS_INODES_FREE].quantity, 100000);
    assert_false(t.hard[RSRE_KSIG_PID_AVAILABLE].set); /* "0%" too */
    assert_true(t.hard[RSRE_KSIG_CONTAINERFS_AVAILABLE].percent == 2.5);
    assert_int_equal(t.gc_high_percent, 100);
    assert_int_equal(t.gc_low_percent, 0);
}

/* Every bad file: code (RSRE_EPARSE/RSRE_EINVALID/...), 1-based line and column of the node
 * at fault (0/0: no node), and a fragment of the message. */
static const struct bad_case {
    const char *file;
    int code, line, col;
    const char *msg;
} bad_cases[] = {
    {"bad-anchor-alias.yaml", RSRE_EPARSE, 3, 15, "anchors and aliases"},
    {"bad-apiversion-missing.yaml", RSRE_EPARSE, 1, 1, "apiVersion is missing"},
    {"bad-apiversion-wrong.yaml", RSRE_EPARSE, 1, 13, "found 'kubelet.config.k8s.io/v1alpha1'"},
    {"bad-comment-only.yaml", RSRE_EPARSE, 0, 0, "empty document"},
    {"bad-empty.yaml", RSRE_EPARSE, 0, 0, "empty document"},
    {"bad-gc-high-below-default-low.yaml", RSRE_EINVALID, 3, 30,
     "imageGCLowThresholdPercent (80) must be less than imageGCHighThresholdPercent (70)"},
    {"bad-gc-high-float.yaml", RSRE_EINVALID, 3, 30, "expected an integer 0..100, found '85.5'"},
    {"bad-gc-high-list.yaml", RSRE_EINVALID, 3, 30, "found a list"},
    {"bad-gc-high-over.yaml", RSRE_EINVALID, 3, 30, "101 must be between 0 and 100"},
    {"bad-gc-high-quoted.yaml", RSRE_EINVALID, 3, 30, "found a quoted string"},
    {"bad-gc-low-equal-high.yaml", RSRE_EINVALID, 4, 29, "(80) must be less than"},
    {"bad-gc-low-negative.yaml", RSRE_EINVALID, 3, 29, "-1 must be between 0 and 100"},
    {"bad-grace-garbage.yaml", RSRE_EINVALID, 6, 21,
     "evictionSoftGracePeriod.nodefs.available: 'soon' is not a duration"},
    {"bad-hard-flag-syntax.yaml", RSRE_EINVALID, 3, 15, "evictionHard: expected a mapping"},
    {"bad-hard-list.yaml", RSRE_EINVALID, 4, 1, "found a list"},
    {"bad-kind-missing.yaml", RSRE_EPARSE, 1, 1, "kind is missing"},
    {"bad-kind-not-scalar.yaml", RSRE_EPARSE, 2, 7, "kind: expected 'KubeletConfiguration'"},
    {"bad-kind-wrong.yaml", RSRE_EPARSE, 2, 7, "found 'KubeProxyConfiguration'"},
    {"bad-min-age-mapping.yaml", RSRE_EINVALID, 4, 3, "imageMinimumGCAge: expected a duration"},
    {"bad-min-age-negative.yaml", RSRE_EINVALID, 3, 20, "(negative)"},
    {"bad-min-age-no-unit.yaml", RSRE_EINVALID, 3, 20, "'120' is not a duration"},
    {"bad-min-age-words.yaml", RSRE_EINVALID, 3, 20, "'2 minutes' is not a duration"},
    {"bad-nul-byte.yaml", RSRE_EPARSE, 0, 0, "NUL byte"},
    {"bad-percent-alone.yaml", RSRE_EPARSE, 4, 21, "'%' is not a percentage"},
    {"bad-percent-nan.yaml", RSRE_EPARSE, 4, 21, "'nan%' is not a percentage"},
    {"bad-percent-negative.yaml", RSRE_EINVALID, 4, 21, "must be >= 0%"},
    {"bad-percent-over-100.yaml", RSRE_EINVALID, 4, 21, "must be <= 100%"},
    {"bad-percent-space.yaml", RSRE_EPARSE, 4, 21, "'10 %' is not a percentage"},
    {"bad-percent-words.yaml", RSRE_EPARSE, 4, 21, "'ten%' is not a percentage"},
    {"bad-quantity-negative.yaml", RSRE_EINVALID, 4, 21, "must be positive: -1Gi"},
    {"bad-quantity-overflow.yaml", RSRE_EINVALID, 4, 21, "out of range"},
    {"bad-quantity-space.yaml", RSRE_EPARSE, 4, 21, "'100 Mi' is neither a quantity"},
    {"bad-quantity-two-dots.yaml", RSRE_EPARSE, 4, 21, "'1.2.3Gi' is neither"},
    {"bad-quantity-unit-mb.yaml", RSRE_EPARSE, 4, 21, "'100MB' is neither"},
    {"bad-quantity-zero.yaml", RSRE_EINVALID, 4, 21, "must be positive: 0"},
    {"bad-root-list.yaml", RSRE_EPARSE, 1, 1, "found a list"},
    {"bad-root-scalar.yaml", RSRE_EPARSE, 1, 1, "found a scalar"},
    {"bad-signal-case.yaml", RSRE_EINVALID, 4, 3, "unsupported eviction signal 'Nodefs.Available'"},
    {"bad-signal-duplicate.yaml", RSRE_EINVALID, 5, 3, "nodefs.available: duplicate signal"},
    {"bad-signal-key-not-scalar.yaml", RSRE_EINVALID, 4, 5, "keys must be signal names"},
    {"bad-signal-unknown.yaml", RSRE_EINVALID, 4, 3,
     "unsupported eviction signal 'disk.available'"},
    {"bad-soft-grace-other-signal.yaml", RSRE_EINVALID, 4, 21, "no grace period"},
    {"bad-soft-without-grace.yaml", RSRE_EINVALID, 4, 21,
     "evictionSoft.nodefs.available: no grace"},
    {"bad-syntax-bad-indent.yaml", RSRE_EPARSE, 5, 3, "did not find expected key"},
    {"bad-syntax-tab-indent.yaml", RSRE_EPARSE, 4, 1, "cannot start any token"},
    {"bad-syntax-unclosed-quote.yaml", RSRE_EPARSE, 5, 1, "quoted scalar"},
    {"bad-top-key-duplicate.yaml", RSRE_EINVALID, 5, 1, "evictionHard: duplicate key"},
    {"bad-transition-garbage.yaml", RSRE_EINVALID, 3, 35, "'5mins' is not a duration"},
    {"bad-two-documents.yaml", RSRE_EPARSE, 3, 1, "only one YAML document"},
    {"bad-value-empty-string.yaml", RSRE_EPARSE, 4, 21, "empty threshold"},
    {"bad-value-mapping.yaml", RSRE_EINVALID, 5, 5, "found a mapping"},
    {"bad-value-null.yaml", RSRE_EINVALID, 4, 20, "found nothing"},
};

static void test_bad_files(void **state) {
    (void)state;
    size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]);
    for (size_t i = 0; i < n; i++) {
        const struct bad_case *c = &bad_cases[i];
        struct rsre_kubelet_thresholds t;
        struct rsre_yerr err;
        int rc = load(c->file, &t, &err);
        if (rc != c->code || err.line != c->line || err.col != c->col || !strstr(err.msg, c->msg)) {
            fail_msg("%s: got rc=%d %d:%d '%s', want rc=%d %d:%d '%s'", c->file, rc, err.line,
                     err.col, err.msg, c->code, c->line, c->col, c->msg);
        }
        assert_int_equal(t.source, RSRE_KSRC_UNKNOWN);
        assert_defaults_values(&t);
        assert_false(t.hard_from_config);
    }
    /* Every bad-*.yaml in the data directory has an expectation here. */
    DIR *d = opendir(DATA);
    assert_non_null(d);
    size_t seen = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "bad-", 4) != 0) {
            continue;
        }
        seen++;
        size_t k = 0;
        while (k < n && strcmp(bad_cases[k].file, e->d_name) != 0) {
            k++;
        }
        if (k == n) {
            fail_msg("%s has no expectation in bad_cases", e->d_name);
        }
    }
    closedir(d);
    assert_int_equal(seen, n);
}

static void test_limits(void **state) {
    (void)state;
    /* Larger than the bound: refused before parsing, defaults kept. */
    size_t big = RSRE_KUBELET_MAX_FILE + 1;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, '#', big);
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(rsre_kubelet_parse(buf, big, &t, &err), RSRE_ELIMIT);
    assert_int_equal(t.source, RSRE_KSRC_UNKNOWN);
    assert_defaults_values(&t);

    char path[] = "/tmp/rsre-kcfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, big), (ssize_t)big);
    close(fd);
    assert_int_equal(rsre_kubelet_load(path, &t, &err), RSRE_ELIMIT);
    assert_int_equal(t.source, RSRE_KSRC_UNKNOWN);
    unlink(path);
    free(buf);
    /* NULL error pointer is allowed. */
    assert_int_equal(rsre_kubelet_parse("x: [", 4, &t, NULL), RSRE_EPARSE);
}

static void test_quantities(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int rc;
        uint64_t v;
    } q[] = {
        {"100Mi", 0, 104857600ull},
        {"1Gi", 0, 1073741824ull},
        {"500M", 0, 500000000ull},
        {"1.5Gi", 0, 1610612736ull},
        {"0.5Ki", 0, 512},
        {"1", 0, 1},
        {"+7", 0, 7},
        {"1k", 0, 1000},
        {"1e3", 0, 1000},
        {"1E3", 0, 1000},
        {"2E", 0, 2000000000000000000ull},
        {"1Ei", 0, 1ull << 60},
        {"15Ei", 0, 15ull << 60},
        {"1500m", 0, 2}, /* 1.5 rounds up, as Quantity.Value() does */
        {"1n", 0, 1},    /* tiny positive rounds up to 1 */
        {"0.1", 0, 1},
        {"1e-3", 0, 1},
        {"0", 0, 0},
        {"0.000", 0, 0},
        {".5Ki", 0, 512},
        {"18446744073709551615", 0, UINT64_MAX},
        {"16Ei", RSRE_ELIMIT, 0},
        {"18446744073709551616", RSRE_ELIMIT, 0},
        {"1e20", RSRE_ELIMIT, 0},
        {"12345678901234567890123", RSRE_ELIMIT, 0},
        {"-1", RSRE_EINVALID, 0},
        {"", RSRE_EPARSE, 0},
        {"Mi", RSRE_EPARSE, 0},
        {"1MB", RSRE_EPARSE, 0},
        {"1 Mi", RSRE_EPARSE, 0},
        {"1e", RSRE_EPARSE, 0},
        {"1e+", RSRE_EPARSE, 0},
        {"1x", RSRE_EPARSE, 0},
        {"1..2", RSRE_EPARSE, 0},
        {"--1", RSRE_EPARSE, 0},
        {"1Gi ", RSRE_EPARSE, 0},
    };
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        uint64_t v = 12345;
        int rc = rsre_kubelet_parse_quantity(q[i].in, &v);
        if (rc != q[i].rc || (rc == 0 && v != q[i].v)) {
            fail_msg("quantity '%s': rc=%d v=%llu, want rc=%d v=%llu", q[i].in, rc,
                     (unsigned long long)v, q[i].rc, (unsigned long long)q[i].v);
        }
    }
}

static void test_percent_effective(void **state) {
    (void)state;
    /* Expected values computed as kubelet does: int64(float64(cap) * float64(float32(p)/100)). */
    static const struct {
        uint64_t cap;
        const char *pct;
        uint64_t want;
    } c[] = {
        {107374182400ull, "10%", 10737418400ull}, /* 100 GiB: float32(0.1) is not 0.1 */
        {107374182400ull, "15%", 16106128000ull},
        {8388608, "25%", 2097152},
        {1000000, "5%", 50000},
        {64, "25%", 16},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct rsre_kubelet_threshold t;
        char why[128];
        assert_int_equal(rsre_kubelet_parse_threshold(c[i].pct, &t, why, sizeof(why)), 0);
        assert_int_equal(rsre_kubelet_effective(&t, c[i].cap), c[i].want);
    }
    struct rsre_kubelet_threshold t;
    char why[128];
    assert_int_equal(rsre_kubelet_parse_threshold("2Gi", &t, why, sizeof(why)), 0);
    assert_int_equal(rsre_kubelet_effective(&t, 12345), 2ull << 30); /* absolute: as given */
    assert_int_equal(rsre_kubelet_parse_threshold("0%", &t, why, sizeof(why)), 0);
    assert_false(t.set);
    assert_int_equal(rsre_kubelet_effective(&t, 1000), 0);
    assert_int_equal(rsre_kubelet_parse_threshold("10%%", &t, why, sizeof(why)), 0);
    assert_true(t.percent == 10.0); /* strings.TrimRight strips every trailing '%' */
    assert_int_equal(rsre_kubelet_parse_threshold("inf%", &t, why, sizeof(why)), RSRE_EPARSE);
    assert_int_equal(rsre_kubelet_parse_threshold("1e39%", &t, why, sizeof(why)), RSRE_EINVALID);
}

static void test_durations(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int rc;
        uint32_t s;
    } d[] = {
        {"2m", 0, 120},
        {"1h30m", 0, 5400},
        {"90s", 0, 90},
        {"1.5h", 0, 5400},
        {"0", 0, 0},
        {"0s", 0, 0},
        {"1500ms", 0, 1},
        {"2m30s", 0, 150},
        {"1h0m0s", 0, 3600},
        {"+5s", 0, 5},
        {"-0s", 0, 0},
        {".5m", 0, 30},
        {"10\xc2\xb5s", 0, 0},
        {"100ns", 0, 0},
        {"120", RSRE_EPARSE, 0},
        {"", RSRE_EPARSE, 0},
        {"m", RSRE_EPARSE, 0},
        {"2 m", RSRE_EPARSE, 0},
        {"2d", RSRE_EPARSE, 0},
        {"-2m", RSRE_EINVALID, 0},
        {"2m-", RSRE_EPARSE, 0},
        {"99999999999h", RSRE_ELIMIT, 0},
    };
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        uint32_t v = 777;
        int rc = rsre_kubelet_parse_duration(d[i].in, &v);
        if (rc != d[i].rc || (rc == 0 && v != d[i].s)) {
            fail_msg("duration '%s': rc=%d v=%u, want rc=%d v=%u", d[i].in, rc, v, d[i].rc, d[i].s);
        }
    }
}

/* kubelet: usagePercent := 100 - int(available*100/capacity); GC when >= high. */
static int kubelet_gc_runs(uint64_t cap, uint64_t avail, int high) {
    int usage = 100 - (int)((avail * 100) / cap);
    return usage >= high;
}

static void test_gc_trigger(void **state) {
    (void)state;
    static const uint64_t caps[] = {1, 7, 99, 100, 101, 1000, 4095, 8388608, 1000003};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        uint64_t cap = caps[c];
        for (int high = 0; high < 100; high += 1) {
            uint64_t trig = rsre_kubelet_gc_trigger_avail(cap, high);
            /* GC runs exactly when avail < trig: check the boundary and its neighbours. */
            for (int64_t d = -2; d <= 2; d++) {
                int64_t a = (int64_t)trig + d;
                if (a < 0 || (uint64_t)a > cap) {
                    continue;
                }
                if (kubelet_gc_runs(cap, (uint64_t)a, high) != ((uint64_t)a < trig)) {
                    fail_msg("cap=%llu high=%d avail=%lld trig=%llu", (unsigned long long)cap, high,
                             (long long)a, (unsigned long long)trig);
                }
            }
        }
    }
    assert_int_equal(rsre_kubelet_gc_trigger_avail(1000, 100), 0); /* disabled */
    assert_int_equal(rsre_kubelet_gc_trigger_avail(0, 85), 0);
    /* amountToFree := capacity*int64(100-low)/100 - available */
    assert_int_equal(rsre_kubelet_gc_bytes_to_low(1000, 100, 80), 100);
    assert_int_equal(rsre_kubelet_gc_bytes_to_low(1000, 300, 80), 0);
    assert_int_equal(rsre_kubelet_gc_bytes_to_low(1003, 100, 80), 1003 * 20 / 100 - 100);
    assert_int_equal(rsre_kubelet_gc_bytes_to_low(UINT64_MAX, 0, 0), UINT64_MAX); /* no overflow */
}

static void test_overrides(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_NODEFS_AVAILABLE, 5ull << 30, 0), 0);
    assert_int_equal(t.hard[RSRE_KSIG_NODEFS_AVAILABLE].quantity, 5ull << 30);
    assert_true(t.overridden & (1u << RSRE_KSIG_NODEFS_AVAILABLE));
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_IMAGEFS_INODES_FREE, 0, 7.5), 0);
    assert_true(t.hard[RSRE_KSIG_IMAGEFS_INODES_FREE].percent == 7.5);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_IMAGE_GC_HIGH, 0, 95), 0);
    assert_int_equal(t.gc_high_percent, 95);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_IMAGE_GC_LOW, 0, 90), 0);
    assert_int_equal(t.gc_low_percent, 90);
    /* Invalid: both forms, neither, quantity for GC, low >= high, unknown kind, NaN. */
    struct rsre_kubelet_thresholds before;
    memcpy(&before, &t, sizeof(t));
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_NODEFS_AVAILABLE, 1, 10),
                     RSRE_EINVALID);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_NODEFS_AVAILABLE, 0, 0),
                     RSRE_EINVALID);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_IMAGE_GC_HIGH, 90, 0),
                     RSRE_EINVALID);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_IMAGE_GC_LOW, 0, 96), RSRE_EINVALID);
    assert_int_equal(rsre_kubelet_apply_override(&t, 99, 0, 10), RSRE_EINVALID);
    assert_int_equal(rsre_kubelet_apply_override(&t, 0, 0, 10), RSRE_EINVALID);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_NODEFS_AVAILABLE, 0, 0.0 / 0.0),
                     RSRE_EINVALID);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_NODEFS_AVAILABLE, 0, 101),
                     RSRE_EINVALID);
    assert_memory_equal(&t, &before, sizeof(t));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_good_kubeadm),
        cmocka_unit_test(test_good_custom),
        cmocka_unit_test(test_any_hard_zeroes_others),
        cmocka_unit_test(test_good_soft),
        cmocka_unit_test(test_good_quantities),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_percent_effective),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_gc_trigger),
        cmocka_unit_test(test_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
