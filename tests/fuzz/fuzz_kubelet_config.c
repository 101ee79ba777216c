/*
 * libFuzzer target for the kubelet config reader (agent/kubelet_config.h): every input is a
 * KubeletConfiguration file as an attacker or a broken node image could write it.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - the result is one of the documented codes;
 *   - on failure the thresholds are kubelet's defaults with source UNKNOWN, and the error has a
 *     terminated, non-empty message and a position that is 0/0 or within the input;
 *   - on success the source is KUBELET_CONFIG, image GC low < high within 0..100, every set
 *     threshold is either a positive quantity or a percentage in (0, 100], soft thresholds
 *     carry grace periods, and the effective values computed for capacities taken from the
 *     input never exceed what a quantity/percentage allows;
 *   - parsing the same input again gives the same result (no hidden state).
 * The quantity, duration and threshold parsers also get the raw input as a string.
 *
 *   CC=clang cmake -S . -B build-fs-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fs-fuzz --target fuzz_kubelet_config
 *   ./build-fs-fuzz/tests/fuzz_kubelet_config -max_total_time=60 tests/data/kubelet
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/kubelet_config.h"
#include "common/error.h"

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static void check_defaults(const struct rsre_kubelet_thresholds *t) {
    struct rsre_kubelet_thresholds d;
    rsre_kubelet_defaults(&d);
    check(t->gc_high_percent == d.gc_high_percent && t->gc_low_percent == d.gc_low_percent);
    check(t->gc_min_age_s == d.gc_min_age_s);
    for (int i = 0; i < RSRE_KSIG_COUNT; i++) {
        check(t->hard[i].set == d.hard[i].set && t->hard[i].quantity == d.hard[i].quantity);
        check(t->hard[i].percent == d.hard[i].percent && !t->soft[i].set);
    }
}

static void check_threshold(const struct rsre_kubelet_threshold *th, uint64_t cap) {
    if (!th->set) {
        check(rsre_kubelet_effective(th, cap) == 0);
        return;
    }
    if (th->quantity) {
        check(th->percent == 0.0);
        check(rsre_kubelet_effective(th, cap) == th->quantity);
    } else {
        check(th->percent > 0.0 && th->percent <= 100.0 && isfinite(th->percent));
        check(th->fraction > 0.0f && th->fraction <= 1.0f);
        check(rsre_kubelet_effective(th, cap) <= cap);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    struct rsre_kubelet_thresholds t, t2;
    struct rsre_yerr err, err2;
    int rc = rsre_kubelet_parse(buf, size, &t, &err);
    check(rc == 0 || rc == RSRE_EPARSE || rc == RSRE_EINVALID || rc == RSRE_ELIMIT ||
          rc == -ENOMEM);
    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
    uint64_t cap = 0;
    memcpy(&cap, data, size < sizeof(cap) ? size : sizeof(cap));
    if (rc) {
        check(err.msg[0] != '\0');
        check(err.line >= 0 && err.col >= 0);
        check(t.source == RSRE_KSRC_UNKNOWN);
        check_defaults(&t);
    } else {
        check(t.source == RSRE_KSRC_CONFIG);
        check(t.gc_low_percent >= 0 && t.gc_high_percent <= 100);
        check(t.gc_low_percent < t.gc_high_percent);
        for (int i = 0; i < RSRE_KSIG_COUNT; i++) {
            check_threshold(&t.hard[i], cap);
            check_threshold(&t.soft[i], cap);
        }
        (void)rsre_kubelet_gc_trigger_avail(cap, t.gc_high_percent);
        (void)rsre_kubelet_gc_bytes_to_low(cap, cap / 3, t.gc_low_percent);
    }
    int rc2 = rsre_kubelet_parse(buf, size, &t2, &err2);
    check(rc2 == rc && err2.line == err.line && err2.col == err.col);
    check(strcmp(err.msg, err2.msg) == 0);

    /* The scalar parsers on the raw bytes as one string. */
    if (size < 256) {
        char s[256];
        memcpy(s, data, size);
        s[size] = '\0';
        uint64_t q;
        int qrc = rsre_kubelet_parse_quantity(s, &q);
        check(qrc == 0 || qrc == RSRE_EPARSE || qrc == RSRE_ELIMIT || qrc == RSRE_EINVALID);
        uint32_t d;
        int drc = rsre_kubelet_parse_duration(s, &d);
        check(drc == 0 || drc == RSRE_EPARSE || drc == RSRE_ELIMIT || drc == RSRE_EINVALID);
        struct rsre_kubelet_threshold th;
        char why[128];
        int trc = rsre_kubelet_parse_threshold(s, &th, why, sizeof(why));
        check(trc == 0 || trc == RSRE_EPARSE || trc == RSRE_EINVALID);
        if (trc == 0) {
            check_threshold(&th, cap);
        } else {
            check(why[0] != '\0' && memchr(why, '\0', sizeof(why)) != NULL);
        }
    }
    return 0;
}
