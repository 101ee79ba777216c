/*
 * The incident engine's observation path on one core: observations per second (each in its own
 * store transaction, committed, as the daemon does) and the cost of the 60 s tick, with
 * 100 / 1000 / 4000 observation scopes of which 10% are failing (open incidents).
 *
 *   bench_incident_observe [rounds]   (default 5)
 *
 * The store lives in /dev/shm when writable (no disk wait), else /tmp.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "incidents/engine.h"
#include "store/store.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int one(rsre_store *store, struct rsre_incident_engine *e, const struct rsre_observation *o,
               int64_t now, int tick) {
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(store, 0, &txn);
    if (rc) {
        return rc;
    }
    rc = tick ? rsre_incident_engine_tick(e, txn, now)
              : rsre_incident_engine_observe(e, txn, o, now);
    if (rc == 0 && (rc = rsre_store_txn_commit(txn)) == 0) {
        rsre_incident_engine_committed(e);
    } else {
        if (rc) {
            rsre_store_txn_abort(txn);
        }
        rsre_incident_engine_aborted(e);
    }
    return rc;
}

static int run(size_t nscopes, int rounds) {
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/rsre-bench-observe-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    rsre_store *store = NULL;
    struct rsre_incident_engine *e = NULL;
    struct rsre_incident_engine_config cfg = {.env = RSRE_ENV_STAGING, .cluster = "bench"};
    int rc = rsre_store_open(dir, NULL, &store);
    if (rc == 0) {
        rc = rsre_incident_engine_create(store, &cfg, NULL, &e);
    }
    int64_t t = 1700000000000LL;
    double obs_time = 0, tick_time = 0;
    unsigned long nobs = 0, nticks = 0;
    for (int r = 0; rc == 0 && r < rounds; r++) {
        double t0 = now_s();
        for (size_t i = 0; rc == 0 && i < nscopes; i++) {
            char scope[64], detail[96];
            snprintf(scope, sizeof(scope), "dependency/dep-%zu", i);
            int failing = i % 10 == 0;
            snprintf(detail, sizeof(detail), "dial tcp 10.0.%zu.%zu:6379: connection refused",
                     i / 256, i % 256);
            struct rsre_observation_value v[] = {{"dep.failing", failing},
                                                 {"dep.consecutive_failures", failing ? r + 1 : 0}};
            struct rsre_observation o = {scope, "probe:bench", failing ? detail : NULL, v, 2, 0};
            rc = one(store, e, &o, t + (int64_t)i, 0);
            nobs++;
        }
        double t1 = now_s();
        t += 60000;
        if (rc == 0) {
            rc = one(store, e, NULL, t, 1);
            nticks++;
        }
        obs_time += t1 - t0;
        tick_time += now_s() - t1;
    }
    if (rc == 0) {
        printf(
            "observe %5zu scopes: %9.0f observations/s (%.1f us each, committed), tick %.2f ms\n",
            nscopes, (double)nobs / obs_time, obs_time * 1e6 / (double)nobs,
            tick_time * 1e3 / (double)nticks);
    } else {
        fprintf(stderr, "bench failed: %d\n", rc);
    }
    rsre_incident_engine_destroy(e);
    rsre_store_close(store);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc != 0;
}

int main(int argc, char **argv) {
    rsre_log_threshold = RSRE_LOG_WARN;
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1) {
        rounds = 1;
    }
    static const size_t sizes[] = {100, 1000, 4000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        if (run(sizes[i], rounds)) {
            return 1;
        }
    }
    return 0;
}
