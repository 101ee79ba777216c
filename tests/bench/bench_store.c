/*
 * Store throughput, with durable (synced) commits as in production:
 *
 *   store commit 1 incident+audit per txn (sync): N/s      committed transactions per second
 *   store batched 100 incident+audit per txn (sync): N/s   records (incident+audit pairs) per s
 *   store incident get (read txn each): N/s
 *   store audit verify: N/s                                  audit records verified per second
 *
 * Usage: bench_store [seconds per phase, default 2]. RSRE_BENCH_DIR picks the filesystem
 * (default /tmp); results depend on its fsync latency far more than on the CPU.
 */
#include "store/store.h"

#include "common/error.h"
#include "common/log.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_store: %s: %s\n", what, rsre_strerror(rc));
    exit(1);
}

static uint64_t next_id;

/* Writes one incident and its audit record into `txn`. */
static void put_pair(rsre_store_txn *txn) {
    static char *signals[] = {"node_condition.DiskPressure", "kube_event.EvictionThresholdMet"};
    char id[32];
    snprintf(id, sizeof(id), "inc-%010llu", (unsigned long long)++next_id);
    rsre_store_incident inc = ROBOT_SRE__STORE__INCIDENT__INIT;
    inc.id = id;
    inc.fingerprint = "node_disk_pressure/node=10.0.10.202";
    inc.domain = "infrastructure";
    inc.incident_type = "node_disk_pressure";
    inc.severity = ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING;
    inc.confidence = ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_HIGH;
    inc.lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_OBSERVED;
    inc.n_signal_sources = 2;
    inc.signal_sources = signals;
    inc.evidence_summary = "DiskPressure=True for 3m; nodefs 91% used, 6m to eviction threshold";
    inc.opened_at_ms = (int64_t)next_id;
    int rc = rsre_store_incident_put(txn, &inc, 0);
    if (rc == 0) {
        rc = rsre_store_audit_append(txn, "robot", "incident.open", id, "rule fired",
                                     "{\"rule\":\"builtin.node_disk_pressure\",\"version\":3}",
                                     (int64_t)next_id, NULL);
    }
    if (rc != 0) {
        die("put", rc);
    }
}

/* Runs transactions of `per_txn` pairs for `secs`; returns pairs per second. */
static double run_writes(rsre_store *s, int per_txn, double secs, double *txn_rate) {
    double t0 = now_s(), t;
    long txns = 0;
    do {
        rsre_store_txn *txn;
        int rc = rsre_store_txn_begin(s, 0, &txn);
        if (rc != 0) {
            die("begin", rc);
        }
        for (int i = 0; i < per_txn; i++) {
            put_pair(txn);
        }
        rc = rsre_store_txn_commit(txn);
        if (rc != 0) {
            die("commit", rc);
        }
        txns++;
        t = now_s() - t0;
    } while (t < secs);
    *txn_rate = txns / t;
    return txns * per_txn / t;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    if (secs <= 0) {
        secs = 2.0;
    }
    rsre_log_set_level_name("warn");
    const char *base = getenv("RSRE_BENCH_DIR") ? getenv("RSRE_BENCH_DIR") : "/tmp";
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/rsre-bench-store-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    rsre_store *s;
    int rc = rsre_store_open(dir, NULL, &s);
    if (rc != 0) {
        die("open", rc);
    }

    double txn_rate;
    run_writes(s, 1, secs, &txn_rate);
    printf("store commit 1 incident+audit per txn (sync): %.0f/s\n", txn_rate);
    double pairs = run_writes(s, 100, secs, &txn_rate);
    printf("store batched 100 incident+audit per txn (sync): %.0f/s (%.0f txn/s)\n", pairs,
           txn_rate);

    /* Point reads, one read transaction each (what an API request does). */
    uint64_t state = 88172645463325252ull;
    long reads = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 1000; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char id[32];
            snprintf(id, sizeof(id), "inc-%010llu", (unsigned long long)(state % next_id + 1));
            rsre_store_txn *txn;
            rsre_store_incident *inc;
            if ((rc = rsre_store_txn_begin(s, 1, &txn)) != 0 ||
                (rc = rsre_store_incident_get(txn, id, &inc)) != 0) {
                die("get", rc);
            }
            rsre_store_txn_abort(txn);
            rsre_store_incident_free(inc);
        }
        reads += 1000;
        t = now_s() - t0;
    } while (t < secs);
    printf("store incident get (read txn each): %.0f/s\n", reads / t);

    struct rsre_store_audit_report rep;
    t0 = now_s();
    rc = rsre_store_audit_verify(s, &rep);
    t = now_s() - t0;
    if (rc != 0) {
        die("verify", rc);
    }
    printf("store audit verify: %.0f/s (%llu records)\n", rep.count / t,
           (unsigned long long)rep.count);

    struct rsre_store_info info;
    if (rsre_store_info(s, &info) == 0) {
        printf("store size: %zu incidents, %zu audit records, %.1f MiB used\n", info.incidents,
               info.audit, info.map_used / 1048576.0);
    }
    rsre_store_close(s);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
