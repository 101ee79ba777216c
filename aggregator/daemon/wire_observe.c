/* The Kubernetes observers wired to the incident engine (contract in wire_observe.h). */
#include "daemon/wire_observe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/kube_proto.h"
#include "common/log.h"

/* The observers report on change only. At every observation tick the daemon calls
 * rsre__wire_observe_heartbeat, which re-asserts what each observer source sent
 * (rsre_incident_engine_observe_refresh) while the informers its values come from are synced
 * and their watches work; observations and heartbeats carry the bound the daemon gives (three
 * ticks, at least three minutes). An observer whose watch is down (or whose last emission is
 * not recorded) is not re-asserted, and its values go stale (unknown) in the engine. */
#define FRESH_DEFAULT_MS 180000

/* Which informers each observer source's values are computed from (observe/observe.h). */
static const struct {
    const char *source;
    enum rsre_observe_kind kinds[4];
    size_t nkinds;
} sources[] = {
    {"observer:pods", {RSRE_OBS_PODS}, 1},
    {"observer:helm",
     {RSRE_OBS_HELM_RELEASES, RSRE_OBS_DEPLOYMENTS, RSRE_OBS_STATEFULSETS, RSRE_OBS_DAEMONSETS},
     4},
    {"observer:jobs", {RSRE_OBS_JOBS, RSRE_OBS_PODS}, 2},
    {"observer:ingresses", {RSRE_OBS_INGRESSES, RSRE_OBS_SERVICES}, 2},
};
#define NSOURCES (sizeof(sources) / sizeof(sources[0]))

struct rsre__wire_observe {
    rsre_store *store;
    struct rsre_incident_engine *engine;
    struct rsre_observe *obs;
    int64_t fresh_ms;                   /* bound of observations (the last heartbeat's) */
    uint64_t progress[RSRE_OBS_NKINDS]; /* informer counters at the previous heartbeat */
    int emit_failed;                    /* the last emission was refused (retried) */
    uint64_t applied, skipped, failed_txns, heartbeats;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Scopes the engine has observation slots for (observe/observe.h lists what each carries). */
static int engine_scope(const char *scope) {
    static const char *const prefixes[] = {"workload/", "release/", "ingress/", "cluster"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(scope, prefixes[i], strlen(prefixes[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Applies aggs[from..] in one transaction; *bad receives the index of an observation the engine
 * refused (RSRE_EINVALID), which is then retried without it. */
static int apply_all(struct rsre__wire_observe *w, const struct rsre_observe_aggregate *aggs,
                     size_t n, const unsigned char *skip, size_t *bad) {
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(w->store, 0, &txn);
    if (rc) {
        return rc;
    }
    int64_t now = wall_ms();
    size_t applied = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (skip[i]) {
            continue;
        }
        struct rsre_observation_value vals[RSRE_OBSERVE_MAX_VALUES];
        size_t nv =
            aggs[i].nvalues < RSRE_OBSERVE_MAX_VALUES ? aggs[i].nvalues : RSRE_OBSERVE_MAX_VALUES;
        for (size_t k = 0; k < nv; k++) {
            vals[k].signal = aggs[i].values[k].signal;
            vals[k].value = aggs[i].values[k].value;
        }
        struct rsre_observation ob = {.scope = aggs[i].scope,
                                      .source = aggs[i].source,
                                      .detail = aggs[i].detail[0] ? aggs[i].detail : NULL,
                                      .values = vals,
                                      .nvalues = nv,
                                      .fresh_ms = w->fresh_ms};
        rc = rsre_incident_engine_observe(w->engine, txn, &ob, now);
        if (rc == RSRE_EINVALID || rc == RSRE_ELIMIT) {
            *bad = i; /* this observation can never apply: skipped, the rest retried */
        }
        applied++;
    }
    if (rc == 0) {
        rc = rsre_store_txn_commit(txn);
    } else {
        rsre_store_txn_abort(txn);
    }
    if (rc == 0) {
        rsre_incident_engine_committed(w->engine);
        w->applied += applied;
    } else {
        rsre_incident_engine_aborted(w->engine);
    }
    return rc;
}

static int on_emit(void *arg, const struct rsre_observe_aggregate *aggs, size_t n) {
    struct rsre__wire_observe *w = arg;
    unsigned char *skip = calloc(n, 1);
    if (!skip) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        skip[i] = !engine_scope(aggs[i].scope);
    }
    int rc;
    for (;;) {
        size_t bad = n;
        rc = apply_all(w, aggs, n, skip, &bad);
        if ((rc == RSRE_EINVALID || rc == RSRE_ELIMIT) && bad < n) {
            RSRE_LOG(RSRE_LOG_WARN, "observe", "engine refused observation scope=%s source=%s: %s",
                     aggs[bad].scope, aggs[bad].source, rsre_strerror(rc));
            skip[bad] = 1;
            w->skipped++;
            continue;
        }
        break;
    }
    free(skip);
    w->emit_failed = rc != 0;
    if (rc) {
        w->failed_txns++;
        RSRE_LOG(RSRE_LOG_ERROR, "observe", "observations not recorded (retried): %s",
                 rsre_strerror(rc));
    }
    return rc;
}

/* ---- heartbeat: change-only sources re-assert their values ---- */

/* Whether informer k's data is current: it listed, and either its last request succeeded or its
 * watch delivered something (an event or a bookmark) since the previous heartbeat (a watch that
 * resumed after an error reports no success until it does). Updates w->progress. */
static int informer_current(struct rsre__wire_observe *w, enum rsre_observe_kind k) {
    struct rsre_observe_counts c;
    rsre_observe_counts(w->obs, k, &c);
    uint64_t p =
        c.stats.lists + c.stats.watches + c.stats.events + c.stats.duplicates + c.stats.bookmarks;
    int moved = p != w->progress[k];
    w->progress[k] = p;
    return c.synced && (c.stats.last_rc == 0 || moved);
}

int rsre__wire_observe_heartbeat(struct rsre__wire_observe *w, rsre_store_txn *txn,
                                 int64_t fresh_ms, int64_t now_ms) {
    if (!w) {
        return 0;
    }
    w->fresh_ms = fresh_ms;
    int current[RSRE_OBS_NKINDS];
    for (int k = 0; k < RSRE_OBS_NKINDS; k++) {
        current[k] = informer_current(w, (enum rsre_observe_kind)k);
    }
    if (w->emit_failed) {
        return 0; /* the engine holds older values than the observers: do not vouch for them */
    }
    int n = 0;
    for (size_t i = 0; i < NSOURCES; i++) {
        int ok = 1;
        for (size_t k = 0; k < sources[i].nkinds; k++) {
            ok &= current[sources[i].kinds[k]];
        }
        if (!ok) {
            continue;
        }
        int rc = rsre_incident_engine_observe_refresh(w->engine, txn, sources[i].source, fresh_ms,
                                                      now_ms);
        if (rc) {
            return rc;
        }
        n++;
    }
    w->heartbeats++;
    return n;
}

/* ---- nodes: the control plane's view of each node, as an external NodeConditions signal ---- */

#define M(x) RobotSre__Agent__V1__##x

static void on_node(void *arg, const struct rsre_kube_node *n) {
    struct rsre__wire_observe *w = arg;
    M(NodeCondition) cond[RSRE_KUBE_NODE_NCOND];
    M(Taint) taints[RSRE_KUBE_MAX_TAINTS];
    M(Taint) * taint_ptrs[RSRE_KUBE_MAX_TAINTS];
    M(NodeConditions) nc;
    rsre_kube_node_conditions_pb(n, &nc, cond, taints, taint_ptrs);
    int64_t now = wall_ms();
    M(Signal) sig = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
    sig.observed_unix_ms = now;
    sig.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_NODE_CONDITIONS;
    sig.node_conditions = &nc;
    M(Signal) * sigs[1] = {&sig};
    M(SignalBatch) batch = ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    batch.created_unix_ms = now;
    batch.n_signals = 1;
    batch.signals = sigs;
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(w->store, 0, &txn);
    if (rc == 0) {
        rc = rsre_incident_engine_apply_external(w->engine, txn, n->meta.name, &batch, now);
        if (rc == 0) {
            rc = rsre_store_txn_commit(txn);
        } else {
            rsre_store_txn_abort(txn);
        }
        if (rc == 0) {
            rsre_incident_engine_committed(w->engine);
        } else {
            rsre_incident_engine_aborted(w->engine);
        }
    }
    if (rc) {
        w->failed_txns++;
        RSRE_LOG(RSRE_LOG_WARN, "observe", "node=%s conditions not recorded: %s", n->meta.name,
                 rsre_strerror(rc));
    }
}

int rsre__wire_observe_start(struct rsre_kube *kube, rsre_store *store,
                             struct rsre_incident_engine *engine, const char *core_namespaces,
                             const char *core_label, int nodes, struct rsre__wire_observe **out) {
    *out = NULL;
    if (!kube || !store || !engine) {
        return -EINVAL;
    }
    struct rsre__wire_observe *w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    w->store = store;
    w->engine = engine;
    struct rsre_observe_config oc = {.core_namespaces = core_namespaces,
                                     .core_label = core_label && core_label[0] ? core_label : NULL};
    int rc = rsre_observe_create(kube, &oc, on_emit, w, &w->obs);
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "observe", "Kubernetes observers not started: %s",
                 rsre_strerror(rc));
        free(w);
        return rc;
    }
    if (nodes) {
        rsre_observe_set_node_hook(w->obs, on_node, w);
    }
    w->fresh_ms = FRESH_DEFAULT_MS;
    RSRE_LOG(RSRE_LOG_INFO, "observe",
             "Kubernetes observers started core_namespaces=\"%s\" node_conditions=%s",
             core_namespaces ? core_namespaces : "", nodes ? "on" : "off");
    *out = w;
    return 0;
}

struct rsre_observe *rsre__wire_observe_observers(struct rsre__wire_observe *w) {
    return w ? w->obs : NULL;
}

void rsre__wire_observe_stop(struct rsre__wire_observe *w) {
    if (w) {
        rsre_observe_destroy(w->obs);
        free(w);
    }
}
