/*
 * libFuzzer target over rsre_incident_engine_observe: what the aggregator's probes, observers
 * and channels hand the incident engine (scope, source, detail text, signal values), on one
 * engine and one store (tmpfs) that live across inputs, so sequences of observations, ticks,
 * aborted transactions and rules reloads build real incident state.
 *
 * Input: byte 0 = flags (bit 0: abort the transaction instead of committing; bit 1: tick after;
 * bit 2: reload the built-in rules first; bits 3-7: seconds to advance the clock), then
 * scope '\n' source '\n' detail '\n' (a detail of exactly "-" means NULL), then up to 40 values
 * of 9 bytes each: a signal pick (index into the table below, which holds valid, engine-derived,
 * agent-only and unknown names; 255 = NULL) and a raw IEEE-754 double.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak": only the documented results
 * (0, RSRE_EINVALID, RSRE_ELIMIT; RSRE_EMAPFULL once the store fills); an observation the
 * engine refused with RSRE_EINVALID writes nothing (the audit sequence does not move even
 * though the transaction is committed); the audit chain verifies before every reset (every
 * 400 inputs the engine and store start afresh, so state and tick cost stay bounded).
 *
 *   CC=clang cmake -S . -B build-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_incident_observe
 *   ./build-fuzz/tests/fuzz_incident_observe -max_total_time=20 -max_len=2048
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "incidents/engine.h"
#include "store/store.h"

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static const char *const SIGNALS[] = {
    "pull.failing_workloads", "pull.failing_core_workloads", "dep.failing", "dep.core_failing",
    "dep.cascading", "dep.consecutive_failures", "ingress.failing_routes",
    "ingress.failing_core_routes", "tls.failures", "tls.days_to_expiry", "dns.mismatches",
    "ldap.failing", "http.error_ratio", "http.error_ratio_slope", "db.failing", "release.drifted",
    "release.rollout_blocked", "release.unhealthy_workloads", "chat.channels_down",
    "chat.channels_total", "jobs.finished_pods", "jobs.apiserver_churn",
    /* refused: engine-derived, agent-only, unknown */
    "ldap.failing_held", "http.error_ratio_held", "incidents.active", "node.ready",
    "nodefs.used_ratio", "dep", "", "dep.failing ", "DEP.FAILING"};
#define NSIG (sizeof(SIGNALS) / sizeof(SIGNALS[0]))

static char dir[256];
static rsre_store *store;
static struct rsre_incident_engine *eng;
static int64_t clock_ms = 1700000000000LL;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void verify_audit(void) {
    struct rsre_store_audit_report rep;
    check(rsre_store_audit_verify(store, &rep) == 0);
}

/* Closes the engine and the store and removes the store (at exit, and every RESET_EVERY
 * inputs so that state, and the cost of each tick, stay bounded). */
static void teardown(void) {
    rsre_incident_engine_destroy(eng);
    eng = NULL;
    rsre_store_close(store);
    store = NULL;
    if (dir[0]) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        dir[0] = '\0';
    }
}

#define RESET_EVERY 400

static uint64_t audit_seq;

static void setup(void) {
    static int once;
    if (!once) {
        once = 1;
        rsre_log_threshold = RSRE_LOG_ERROR + 1;
        atexit(teardown);
    }
    snprintf(dir, sizeof(dir), "%s/rsre-fuzz-observe-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    check(mkdtemp(dir) != NULL);
    check(rsre_store_open(dir, NULL, &store) == 0);
    struct rsre_incident_engine_config cfg = {.env = RSRE_ENV_DEMO, .cluster = "fuzz"};
    check(rsre_incident_engine_create(store, &cfg, NULL, &eng) == 0);
    audit_seq = 0;
}

static const char *take_line(const uint8_t **p, const uint8_t *end, char *buf, size_t cap) {
    size_t n = 0;
    while (*p < end && **p != '\n') {
        if (n + 1 < cap) {
            buf[n++] = (char)**p;
        }
        (*p)++;
    }
    if (*p < end) {
        (*p)++;
    }
    buf[n] = '\0';
    return buf;
}

/* The audit sequence the store has reached (every engine decision is audited). */
static uint64_t audit_advance(void) {
    rsre_store_txn *txn;
    check(rsre_store_txn_begin(store, 1, &txn) == 0);
    rsre_store_audit *rec = NULL;
    while (rsre_store_audit_get(txn, audit_seq + 1, &rec) == 0) {
        rsre_store_audit_free(rec);
        rec = NULL;
        audit_seq++;
    }
    rsre_store_txn_abort(txn);
    return audit_seq;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static unsigned inputs;
    if (eng && ++inputs % RESET_EVERY == 0) {
        verify_audit();
        teardown();
    }
    if (!eng) {
        setup();
    }
    if (size < 1 || size > 4096) {
        return 0;
    }
    const uint8_t *p = data + 1, *end = data + size;
    unsigned flags = data[0];
    static char scope[1024], source[256], detail[2048];
    take_line(&p, end, scope, sizeof(scope));
    take_line(&p, end, source, sizeof(source));
    take_line(&p, end, detail, sizeof(detail));
    struct rsre_observation_value v[40];
    size_t n = 0;
    while (n < 40 && end - p >= 9) {
        uint8_t pick = p[0];
        double d;
        memcpy(&d, p + 1, sizeof(d));
        v[n].signal = pick == 255 ? NULL : SIGNALS[pick % NSIG];
        v[n].value = d;
        n++;
        p += 9;
    }
    clock_ms += (int64_t)(flags >> 3) * 1000;
    if (flags & 4) {
        check(rsre_incident_engine_set_rules(eng, NULL) == 0);
    }
    struct rsre_observation o = {scope, source, strcmp(detail, "-") == 0 ? NULL : detail, v, n, 0};

    uint64_t seq0 = audit_advance();
    rsre_store_txn *txn;
    check(rsre_store_txn_begin(store, 0, &txn) == 0);
    int rc = rsre_incident_engine_observe(eng, txn, &o, clock_ms);
    check(rc == 0 || rc == RSRE_EINVALID || rc == RSRE_ELIMIT || rc == RSRE_EMAPFULL);
    if (rc == RSRE_EINVALID) {
        /* refused: nothing was written, so committing changes nothing */
        check(rsre_store_txn_commit(txn) == 0);
        rsre_incident_engine_committed(eng);
        check(audit_advance() == seq0);
    } else if (rc == 0 && !(flags & 1)) {
        int crc = rsre_store_txn_commit(txn);
        check(crc == 0 || crc == RSRE_EMAPFULL);
        if (crc == 0) {
            rsre_incident_engine_committed(eng);
        } else {
            rsre_incident_engine_aborted(eng);
        }
    } else {
        rsre_store_txn_abort(txn);
        rsre_incident_engine_aborted(eng);
    }
    if (flags & 2) {
        check(rsre_store_txn_begin(store, 0, &txn) == 0);
        rc = rsre_incident_engine_tick(eng, txn, clock_ms);
        check(rc == 0 || rc == RSRE_EMAPFULL);
        if (rc == 0 && rsre_store_txn_commit(txn) == 0) {
            rsre_incident_engine_committed(eng);
        } else {
            if (rc) {
                rsre_store_txn_abort(txn);
            }
            rsre_incident_engine_aborted(eng);
        }
    }
    return 0;
}
