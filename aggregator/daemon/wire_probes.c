/* Dependency probes in the daemon: see wire_probes.h. */
#include "daemon/wire_probes.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "probes/probes.h"

struct rsre__wire_probes {
    struct rsre_probes *probes;
    rsre_store *store;
    struct rsre_incident_engine *engine;
    void (*closed)(void *);
    void *closed_arg;
};

static int64_t wall_ms(void *arg) {
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long a probe's observation counts: three missed runs (interval + timeout each, the
 * longest a run can take to report), so one slow or lost run never makes its values stale, and a
 * probe removed from the probes file (or stuck) goes stale within about three of its intervals. */
int64_t rsre__wire_probe_fresh_ms(const struct rsre_probe_def *def) {
    int64_t f = 3 * (def->interval_ms + def->timeout_ms);
    return f < 60000 ? 60000 : f > 7LL * 24 * 3600 * 1000 ? 7LL * 24 * 3600 * 1000 : f;
}

/* One observation in its own transaction; the engine's effects follow the commit. */
static void observe_one(struct rsre__wire_probes *w, const struct rsre_probe_obs *o,
                        int64_t fresh_ms, int64_t now) {
    struct rsre_observation_value v[RSRE_PROBE_OBS_VALUES];
    for (size_t i = 0; i < o->nvalues; i++) {
        v[i].signal = o->values[i].signal;
        v[i].value = o->values[i].value;
    }
    struct rsre_observation obs = {o->scope, o->source, o->detail, v, o->nvalues, fresh_ms};
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(w->store, 0, &txn);
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "probes", "scope=%s store: %s", o->scope, rsre_strerror(rc));
        return;
    }
    rc = rsre_incident_engine_observe(w->engine, txn, &obs, now);
    if (rc == 0) {
        rc = rsre_store_txn_commit(txn);
    } else {
        rsre_store_txn_abort(txn);
    }
    if (rc == 0) {
        rsre_incident_engine_committed(w->engine);
    } else {
        rsre_incident_engine_aborted(w->engine);
        RSRE_LOG(RSRE_LOG_WARN, "probes", "scope=%s observation not applied: %s", o->scope,
                 rsre_strerror(rc));
    }
}

static void on_status(void *arg, const struct rsre_probe_status *st) {
    struct rsre__wire_probes *w = arg;
    struct rsre_probe_obs o[RSRE_PROBE_OBS_MAX];
    int n = rsre_probe_observations(st, o);
    for (int i = 0; i < n; i++) {
        observe_one(w, &o[i], rsre__wire_probe_fresh_ms(st->def), st->at_ms);
    }
}

int rsre__wire_probes_start(uv_loop_t *loop, const char *probes_file, rsre_store *store,
                            struct rsre_incident_engine *engine, struct rsre__wire_probes **out) {
    *out = NULL;
    if (!probes_file || !probes_file[0]) {
        return 0;
    }
    char err[768];
    struct rsre_probe_set *set;
    int rc = rsre_probe_set_load_file(probes_file, &set, err, sizeof err);
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "probes", "%s", err);
        return rc;
    }
    struct rsre__wire_probes *w = calloc(1, sizeof *w);
    if (!w) {
        rsre_probe_set_destroy(set);
        return -ENOMEM;
    }
    w->store = store;
    w->engine = engine;
    size_t n = rsre_probe_set_count(set);
    if ((rc = rsre_probes_create(loop, set, wall_ms, NULL, on_status, w, &w->probes)) ||
        (rc = rsre_probes_start(w->probes))) {
        RSRE_LOG(RSRE_LOG_ERROR, "probes", "cannot start the probes: %s", rsre_strerror(rc));
        rsre__wire_probes_close(w, NULL, NULL);
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, "probes", "started probes=%zu file=%s", n, probes_file);
    *out = w;
    return 0;
}

static void on_closed(void *arg) {
    struct rsre__wire_probes *w = arg;
    void (*closed)(void *) = w->closed;
    void *carg = w->closed_arg;
    free(w);
    if (closed) {
        closed(carg);
    }
}

void rsre__wire_probes_close(struct rsre__wire_probes *w, void (*closed)(void *), void *arg) {
    if (!w) {
        return;
    }
    w->closed = closed;
    w->closed_arg = arg;
    if (!w->probes) {
        on_closed(w);
        return;
    }
    rsre_probes_close(w->probes, on_closed, w);
}
