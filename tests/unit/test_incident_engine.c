/*
 * Unit tests of the incident engine (aggregator/incidents) on a real LMDB store in a temp dir,
 * fed with SignalBatch messages built from the protobuf-c structs as an agent builds them:
 * disk pressure on one and two nodes, severity escalation, exit windows, duplicate suppression,
 * auto actions exactly once across engine restarts, approval requests and their prompt,
 * production posture, approvals decided, expired and cancelled, aborted transactions, agent
 * silence, cluster-scope job buildup, hostile input, and the audit chain.
 */
#include "incidents/engine.h"

#include "common/error.h"
#include "common/log.h"
#include "store/store.h"

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define A(x) ROBOT_SRE__AGENT__V1__##x
#define ST(x) ROBOT_SRE__STORE__##x
#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */
#define MIN (60 * 1000LL)
#define GiB (1024.0 * 1024.0 * 1024.0)

/* --- fixture --------------------------------------------------------------------------------- */

#define MAX_EXEC 256

struct exec_rec {
    char record[64], incident[64], action[64], node[64], target[64], approval[64];
};

struct fx {
    char dir[256];
    rsre_store *store;
    struct rsre_incident_engine *eng;
    struct rsre_incident_engine_config cfg;
    struct exec_rec exec[MAX_EXEC];
    size_t nexec;
    char notes[64][96];
    size_t nnotes;
    uint64_t seq;
};

static void on_execute(void *arg, const struct rsre_planned_action *pa) {
    struct fx *f = arg;
    assert_true(f->nexec < MAX_EXEC);
    struct exec_rec *x = &f->exec[f->nexec++];
    snprintf(x->record, sizeof(x->record), "%s", pa->action_record_id);
    snprintf(x->incident, sizeof(x->incident), "%s", pa->incident_id);
    snprintf(x->action, sizeof(x->action), "%s", pa->action->id);
    snprintf(x->node, sizeof(x->node), "%s", pa->node);
    snprintf(x->target, sizeof(x->target), "%s", pa->target);
    snprintf(x->approval, sizeof(x->approval), "%s", pa->approval_id ? pa->approval_id : "");
    assert_true(pa->deadline_unix_ms > 0);
}

static void on_notify(void *arg, const rsre_store_incident *inc, const char *what) {
    struct fx *f = arg;
    if (f->nnotes < 64) {
        snprintf(f->notes[f->nnotes++], sizeof(f->notes[0]), "%s:%s", inc->id, what);
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void engine_start(struct fx *f) {
    struct rsre_incident_engine_hooks hooks = {on_execute, on_notify, f};
    assert_int_equal(rsre_incident_engine_create(f->store, &f->cfg, &hooks, &f->eng), 0);
}

static struct fx *fx_new(enum rsre_env env) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-test-incidents-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
    f->cfg.env = env;
    f->cfg.cluster = "test-cluster";
    engine_start(f);
    return f;
}

static void fx_free(struct fx *f) {
    rsre_incident_engine_destroy(f->eng);
    rsre_store_close(f->store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

/* --- building batches as an agent does ------------------------------------------------------ */

struct view {
    int pressure;       /* DiskPressure=True + disk-pressure taint */
    int taint;          /* -1: follow `pressure` */
    int not_ready;      /* Ready=False */
    double used;        /* nodefs used ratio */
    int64_t tte;        /* seconds to eviction (-1 not filling) */
    unsigned evicted;   /* evicted in the pod-churn window */
    unsigned finished;  /* Succeeded pods */
    int64_t transition; /* lastTransitionTime of DiskPressure (0 unknown) */
};

static const struct view PRESSURE = {1, -1, 0, 0.97, 0, 2, 60, 0};
static const struct view CLEAR = {0, -1, 0, 0.50, -1, 0, 0, 0};

struct batch {
    RobotSre__Agent__V1__SignalBatch b;
    RobotSre__Agent__V1__Signal sig[3], *sigp[3];
    RobotSre__Agent__V1__FilesystemUsage fs;
    RobotSre__Agent__V1__EvictionThreshold thr;
    RobotSre__Agent__V1__NodeConditions cond;
    RobotSre__Agent__V1__NodeCondition ready, dp;
    RobotSre__Agent__V1__Taint taint, *taintp[1];
    RobotSre__Agent__V1__PodChurn pods;
};

static void build(struct batch *x, const struct view *v, int64_t now, uint64_t seq) {
    memset(x, 0, sizeof(*x));
    x->b = (RobotSre__Agent__V1__SignalBatch)ROBOT_SRE__AGENT__V1__SIGNAL_BATCH__INIT;
    x->b.boot_id = "6f1c2a7e-9a54-4a8e-8d8e-2b7f3f0c9d11";
    x->b.seq = seq;
    x->b.created_unix_ms = now;
    for (int i = 0; i < 3; i++) {
        x->sig[i] = (RobotSre__Agent__V1__Signal)ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        x->sig[i].observed_unix_ms = now - 1000;
        x->sigp[i] = &x->sig[i];
    }
    x->fs = (RobotSre__Agent__V1__FilesystemUsage)ROBOT_SRE__AGENT__V1__FILESYSTEM_USAGE__INIT;
    x->thr = (RobotSre__Agent__V1__EvictionThreshold)ROBOT_SRE__AGENT__V1__EVICTION_THRESHOLD__INIT;
    x->fs.which = A(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS);
    x->fs.path = "/var/lib/kubelet";
    x->fs.bytes_total = (uint64_t)(100 * GiB);
    x->fs.bytes_avail = (uint64_t)((1.0 - v->used) * 100 * GiB);
    x->fs.bytes_free = x->fs.bytes_avail;
    x->fs.inodes_total = 1000000;
    x->fs.inodes_free = 500000;
    x->thr.percent = 10;
    x->thr.effective = (uint64_t)(10 * GiB);
    x->fs.eviction_available = &x->thr;
    x->fs.seconds_to_eviction = v->tte;
    x->sig[0].kind_case = A(SIGNAL__KIND_FILESYSTEM);
    x->sig[0].filesystem = &x->fs;

    x->cond = (RobotSre__Agent__V1__NodeConditions)ROBOT_SRE__AGENT__V1__NODE_CONDITIONS__INIT;
    x->ready = (RobotSre__Agent__V1__NodeCondition)ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT;
    x->dp = (RobotSre__Agent__V1__NodeCondition)ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT;
    x->ready.status = v->not_ready ? A(CONDITION_STATUS__CONDITION_STATUS_FALSE)
                                   : A(CONDITION_STATUS__CONDITION_STATUS_TRUE);
    x->ready.reason = "KubeletReady";
    x->dp.status = v->pressure ? A(CONDITION_STATUS__CONDITION_STATUS_TRUE)
                               : A(CONDITION_STATUS__CONDITION_STATUS_FALSE);
    x->dp.reason = v->pressure ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure";
    x->dp.last_transition_unix_ms = v->transition;
    x->cond.ready = &x->ready;
    x->cond.disk_pressure = &x->dp;
    x->taint = (RobotSre__Agent__V1__Taint)ROBOT_SRE__AGENT__V1__TAINT__INIT;
    x->taint.key = "node.kubernetes.io/disk-pressure";
    x->taint.effect = A(TAINT_EFFECT__TAINT_EFFECT_NO_SCHEDULE);
    x->taintp[0] = &x->taint;
    if (v->taint == 1 || (v->taint == -1 && v->pressure)) {
        x->cond.n_taints = 1;
        x->cond.taints = x->taintp;
    }
    x->sig[1].kind_case = A(SIGNAL__KIND_NODE_CONDITIONS);
    x->sig[1].node_conditions = &x->cond;

    x->pods = (RobotSre__Agent__V1__PodChurn)ROBOT_SRE__AGENT__V1__POD_CHURN__INIT;
    x->pods.window_sec = 60;
    x->pods.running = 20;
    x->pods.succeeded = v->finished;
    x->pods.failed = v->evicted;
    x->pods.evicted = v->evicted;
    x->pods.evicted_in_window = v->evicted;
    x->sig[2].kind_case = A(SIGNAL__KIND_POD_CHURN);
    x->sig[2].pod_churn = &x->pods;

    x->b.n_signals = 3;
    x->b.signals = x->sigp;
}

static int apply_raw(struct fx *f, const char *node, const RobotSre__Agent__V1__SignalBatch *b,
                     int64_t now) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    int rc = rsre_incident_engine_apply(f->eng, txn, node, b, now);
    if (rc == 0) {
        assert_int_equal(rsre_store_txn_commit(txn), 0);
        rsre_incident_engine_committed(f->eng);
    } else {
        rsre_store_txn_abort(txn);
        rsre_incident_engine_aborted(f->eng);
    }
    return rc;
}

static void send(struct fx *f, const char *node, const struct view *v, int64_t now) {
    struct batch x;
    build(&x, v, now, ++f->seq);
    assert_int_equal(apply_raw(f, node, &x.b, now), 0);
}

static void tick(struct fx *f, int64_t now) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_tick(f->eng, txn, now), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(f->eng);
}

/* Agents report every minute and the observation tick runs every minute, from..to. */
static void run(struct fx *f, const char *const *nodes, const struct view *v, int64_t from,
                int64_t to) {
    for (int64_t t = from; t <= to; t += MIN) {
        for (size_t i = 0; nodes[i]; i++) {
            send(f, nodes[i], v, t);
        }
        tick(f, t + 500);
    }
}

/* --- reading the store -------------------------------------------------------------------- */

struct inc_list {
    rsre_store_incident *v[32];
    size_t n;
};

static int inc_copy_cb(const rsre_store_incident *rec, void *ud) {
    struct inc_list *l = ud;
    size_t len = robot_sre__store__incident__get_packed_size(rec);
    uint8_t *buf = malloc(len ? len : 1);
    robot_sre__store__incident__pack(rec, buf);
    assert_true(l->n < 32);
    l->v[l->n++] = robot_sre__store__incident__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

static void incidents(struct fx *f, struct inc_list *l) {
    memset(l, 0, sizeof(*l));
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_incident_foreach(txn, inc_copy_cb, l), 0);
    rsre_store_txn_abort(txn);
}

static void inc_list_free(struct inc_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        rsre_store_incident_free(l->v[i]);
    }
    l->n = 0;
}

/* The incident with this fingerprint (the latest opened), or NULL; caller frees. */
static rsre_store_incident *incident(struct fx *f, const char *fp) {
    struct inc_list l;
    incidents(f, &l);
    rsre_store_incident *found = NULL;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.v[i]->fingerprint, fp) == 0 &&
            (!found || l.v[i]->opened_at_ms >= found->opened_at_ms)) {
            found = l.v[i];
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i] != found) {
            rsre_store_incident_free(l.v[i]);
        }
    }
    return found;
}

static int has_str(char **v, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

struct apr_list {
    rsre_store_approval *v[64];
    size_t n;
};

static int apr_copy_cb(const rsre_store_approval *rec, void *ud) {
    struct apr_list *l = ud;
    size_t len = robot_sre__store__approval__get_packed_size(rec);
    uint8_t *buf = malloc(len ? len : 1);
    robot_sre__store__approval__pack(rec, buf);
    assert_true(l->n < 64);
    l->v[l->n++] = robot_sre__store__approval__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

static void approvals(struct fx *f, struct apr_list *l) {
    memset(l, 0, sizeof(*l));
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_approval_foreach(txn, apr_copy_cb, l), 0);
    rsre_store_txn_abort(txn);
}

static void apr_list_free(struct apr_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        rsre_store_approval_free(l->v[i]);
    }
    l->n = 0;
}

static size_t count_approvals(struct fx *f, const char *action, const char *target) {
    struct apr_list l;
    approvals(f, &l);
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        n += strcmp(l.v[i]->action, action) == 0 && strcmp(l.v[i]->target, target) == 0;
    }
    apr_list_free(&l);
    return n;
}

/* The (only) approval for action+target; caller frees. */
static rsre_store_approval *approval_for(struct fx *f, const char *action, const char *target) {
    struct apr_list l;
    approvals(f, &l);
    rsre_store_approval *found = NULL;
    for (size_t i = 0; i < l.n; i++) {
        if (!found && strcmp(l.v[i]->action, action) == 0 && strcmp(l.v[i]->target, target) == 0) {
            found = l.v[i];
        } else {
            rsre_store_approval_free(l.v[i]);
        }
    }
    return found;
}

static size_t count_exec(const struct fx *f, const char *action, const char *node) {
    size_t n = 0;
    for (size_t i = 0; i < f->nexec; i++) {
        n +=
            strcmp(f->exec[i].action, action) == 0 && (!node || strcmp(f->exec[i].node, node) == 0);
    }
    return n;
}

static const struct exec_rec *find_exec(const struct fx *f, const char *action) {
    for (size_t i = 0; i < f->nexec; i++) {
        if (strcmp(f->exec[i].action, action) == 0) {
            return &f->exec[i];
        }
    }
    return NULL;
}

static void verify_audit(struct fx *f) {
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_true(rep.count > 0);
}

struct audit_find {
    const char *verb, *object;
    size_t n;
};

static int audit_cb(const rsre_store_audit *rec, void *ud) {
    struct audit_find *a = ud;
    a->n += strcmp(rec->verb, a->verb) == 0 && (!a->object || strcmp(rec->object, a->object) == 0);
    return 0;
}

static size_t count_audit(struct fx *f, const char *verb, const char *object) {
    struct audit_find a = {verb, object, 0};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, 1, audit_cb, &a), 0);
    rsre_store_txn_abort(txn);
    return a.n;
}

static void result(struct fx *f, const char *record, int ok, int64_t now) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_action_result(f->eng, txn, record, ok,
                                                        ok ? "removed 61 pods" : "API error 500",
                                                        ok ? 5368709120ull : 0, ok ? 61 : 0, now),
                     0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(f->eng);
}

static const char *const NODE_A[] = {"node-a", NULL};
static const char *const NODES_AB[] = {"node-a", "node-b", NULL};

/* --- tests ------------------------------------------------------------------------------------ */

/* Disk pressure on one node in demo: the incident, its evidence, the auto cleanup exactly once
 * (also across an engine restart), the cordon approval and its prompt, a second node making both
 * critical, the exit window resolving both, cancelled approvals, the audit chain. */
static void test_disk_pressure_demo(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    /* approvals live for an hour here, so some are still pending when the incident resolves */
    rsre_incident_engine_destroy(f->eng);
    f->cfg.approval_ttl_ms = 60 * MIN;
    engine_start(f);
    send(f, "node-a", &PRESSURE, T0);

    rsre_store_incident *inc = incident(f, "node_disk_pressure/node=node-a");
    assert_non_null(inc);
    assert_string_equal(inc->incident_type, "node_disk_pressure");
    assert_string_equal(inc->domain, "infrastructure");
    assert_int_equal(inc->severity, ST(SEVERITY__SEVERITY_WARNING));
    /* condition (kubelet) + taint (node lifecycle controller) + statvfs past the eviction
     * threshold (agent/filesystem): independent strong sources -> high (a) */
    assert_int_equal(inc->confidence, ST(CONFIDENCE__CONFIDENCE_HIGH));
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_TRIAGED));
    assert_int_equal(inc->environment, ST(ENVIRONMENT__ENVIRONMENT_DEMO));
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "kubelet"));
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "node-lifecycle-controller"));
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "agent/filesystem"));
    assert_int_equal(inc->n_resource_scope, 1);
    assert_string_equal(inc->resource_scope[0]->kind, "Node");
    assert_string_equal(inc->resource_scope[0]->name, "node-a");
    assert_non_null(strstr(inc->evidence_summary, "DiskPressure=True"));
    assert_non_null(strstr(inc->evidence_summary, "nodefs 97% used"));
    assert_true(inc->n_raw_evidence_refs >= 4);
    assert_string_equal(inc->rule_id, "builtin.node_disk_pressure");
    assert_string_equal(inc->cluster, "test-cluster");
    assert_true(has_str(inc->recommended_actions, inc->n_recommended_actions, "cordon_node"));
    assert_true(has_str(inc->recommended_actions, inc->n_recommended_actions, "reboot_worker"));
    assert_true(
        has_str(inc->recommended_actions, inc->n_recommended_actions, "delete_persistent_data"));
    assert_false(
        has_str(inc->recommended_actions, inc->n_recommended_actions, "delete_finished_pods"));
    assert_int_equal(inc->approval_state, ST(APPROVAL_STATE__APPROVAL_STATE_PENDING));
    assert_int_equal(inc->n_executed_actions, 0);
    char inc_id[64];
    snprintf(inc_id, sizeof(inc_id), "%s", inc->id);

    /* every evidence ref is a stored Evidence record of this incident */
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    for (size_t i = 0; i < inc->n_raw_evidence_refs; i++) {
        rsre_store_evidence *ev = NULL;
        assert_int_equal(rsre_store_evidence_get(txn, inc_id, inc->raw_evidence_refs[i], &ev), 0);
        assert_true(strlen(ev->summary) > 0 && ev->raw.len > 0);
        rsre_store_evidence_free(ev);
    }
    rsre_store_txn_abort(txn);
    rsre_store_incident_free(inc);

    /* the auto cleanup: once, on the node, every namespace */
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 1);
    const struct exec_rec *cleanup = find_exec(f, "delete_finished_pods");
    assert_string_equal(cleanup->node, "node-a");
    assert_string_equal(cleanup->target, "*");
    assert_string_equal(cleanup->incident, inc_id);
    assert_string_equal(cleanup->approval, "");
    char cleanup_id[64];
    snprintf(cleanup_id, sizeof(cleanup_id), "%s", cleanup->record);
    /* observe/notify ran too; nothing that needs approval ran */
    assert_int_equal(count_exec(f, "send_chat_alert", "node-a"), 1);
    assert_int_equal(count_exec(f, "collect_node_evidence", "node-a"), 1);
    assert_int_equal(count_exec(f, "cordon_node", NULL), 0);
    assert_int_equal(count_exec(f, "reboot_worker", NULL), 0);
    assert_true(f->nnotes >= 1);
    char note[96];
    snprintf(note, sizeof(note), "%s:opened", inc_id);
    assert_string_equal(f->notes[0], note);

    /* the cordon approval, with the spec's six parts */
    rsre_store_approval *ap = approval_for(f, "cordon_node", "node-a");
    assert_non_null(ap);
    assert_string_equal(ap->requester, "robot-sre");
    assert_string_equal(ap->incident_id, inc_id);
    assert_int_equal(ap->quorum, 1);
    assert_int_equal(ap->state, ST(APPROVAL_STATE__APPROVAL_STATE_PENDING));
    assert_int_equal(ap->expires_at_ms, T0 + 60 * MIN);
    assert_non_null(strstr(ap->prompt, "Robot SRE requests approval: cordon node node-a."));
    assert_non_null(strstr(ap->prompt, "Reason: disk pressure on node-a for"));
    assert_non_null(strstr(ap->prompt, "DiskPressure=True"));
    assert_non_null(strstr(ap->prompt, "Expected impact: no new pods are scheduled"));
    assert_non_null(strstr(ap->prompt, "Rollback/fallback: uncordon the node; next fallback: "
                                       "reboot worker node-a"));
    assert_non_null(strstr(ap->prompt, "Approval expires in 1h."));
    assert_true(strlen(ap->why_now) > 0 && strlen(ap->expected_impact) > 0 &&
                strlen(ap->rollback) > 0);
    rsre_store_approval_free(ap);
    /* disruptive actions wait for critical */
    assert_int_equal(count_approvals(f, "reboot_worker", "node-a"), 0);

    /* the next minutes: no second cleanup, no second cordon request */
    run(f, NODE_A, &PRESSURE, T0 + MIN, T0 + 3 * MIN);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 1);
    assert_int_equal(count_approvals(f, "cordon_node", "node-a"), 1);

    /* the cleanup reports: contained, executed_actions */
    result(f, cleanup_id, 1, T0 + 3 * MIN + 10000);
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_CONTAINED));
    assert_true(has_str(inc->executed_actions, inc->n_executed_actions, cleanup_id));
    rsre_store_incident_free(inc);
    result(f, cleanup_id, 1, T0 + 3 * MIN + 20000); /* duplicate result: no change */
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->n_executed_actions, 1);
    rsre_store_incident_free(inc);

    /* restart: the store is the truth */
    rsre_incident_engine_destroy(f->eng);
    engine_start(f);
    run(f, NODE_A, &PRESSURE, T0 + 4 * MIN, T0 + 5 * MIN);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 1);
    assert_int_equal(count_approvals(f, "cordon_node", "node-a"), 1);
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_string_equal(inc->id, inc_id);
    assert_int_equal(inc->severity, ST(SEVERITY__SEVERITY_WARNING));
    rsre_store_incident_free(inc);

    /* a second node in pressure: both critical */
    run(f, NODES_AB, &PRESSURE, T0 + 6 * MIN, T0 + 6 * MIN);
    rsre_store_incident *a = incident(f, "node_disk_pressure/node=node-a");
    rsre_store_incident *b = incident(f, "node_disk_pressure/node=node-b");
    assert_non_null(b);
    assert_string_not_equal(a->id, b->id);
    assert_int_equal(a->severity, ST(SEVERITY__SEVERITY_CRITICAL));
    assert_int_equal(b->severity, ST(SEVERITY__SEVERITY_CRITICAL));
    char b_id[64];
    snprintf(b_id, sizeof(b_id), "%s", b->id);
    rsre_store_incident_free(a);
    rsre_store_incident_free(b);
    assert_int_equal(count_exec(f, "delete_finished_pods", "node-b"), 1);
    /* critical: now the reboot is asked for, with the replacement as next fallback */
    ap = approval_for(f, "reboot_worker", "node-a");
    assert_non_null(ap);
    assert_int_equal(ap->quorum, 1);
    assert_non_null(strstr(ap->prompt, "next fallback: replace worker node-a"));
    rsre_store_approval_free(ap);

    /* pressure clears; it must stay clear for the exit window (10m, and no evictions in 10m) */
    int64_t clear = T0 + 7 * MIN;
    run(f, NODES_AB, &CLEAR, clear, clear + 9 * MIN);
    a = incident(f, "node_disk_pressure/node=node-a");
    assert_int_not_equal(a->lifecycle, ST(LIFECYCLE__LIFECYCLE_RESOLVED));
    rsre_store_incident_free(a);
    run(f, NODES_AB, &CLEAR, clear + 10 * MIN, clear + 20 * MIN);
    a = incident(f, "node_disk_pressure/node=node-a");
    b = incident(f, "node_disk_pressure/node=node-b");
    assert_int_equal(a->lifecycle, ST(LIFECYCLE__LIFECYCLE_RESOLVED));
    assert_int_equal(b->lifecycle, ST(LIFECYCLE__LIFECYCLE_RESOLVED));
    assert_true(a->resolved_at_ms >= clear + 10 * MIN);
    /* pending approvals were cancelled */
    assert_int_equal(a->approval_state, ST(APPROVAL_STATE__APPROVAL_STATE_CANCELLED));
    rsre_store_incident_free(a);
    rsre_store_incident_free(b);
    ap = approval_for(f, "cordon_node", "node-a");
    assert_int_equal(ap->state, ST(APPROVAL_STATE__APPROVAL_STATE_CANCELLED));
    rsre_store_approval_free(ap);
    snprintf(note, sizeof(note), "%s:resolved", inc_id);
    int seen = 0;
    for (size_t i = 0; i < f->nnotes; i++) {
        seen |= strcmp(f->notes[i], note) == 0;
    }
    assert_true(seen);
    assert_true(count_audit(f, "incident.open", NULL) == 2);
    assert_true(count_audit(f, "incident.transition", inc_id) >= 3);
    assert_true(count_audit(f, "action.auto", cleanup_id) == 1);
    assert_true(count_audit(f, "approval.request", NULL) >= 2);

    /* pressure returns inside the 15m duplicate window: the same incident reopens */
    int64_t back = clear + 22 * MIN;
    send(f, "node-a", &PRESSURE, back);
    a = incident(f, "node_disk_pressure/node=node-a");
    assert_string_equal(a->id, inc_id);
    assert_int_equal(a->lifecycle, ST(LIFECYCLE__LIFECYCLE_TRIAGED));
    assert_int_equal(a->resolved_at_ms, 0);
    rsre_store_incident_free(a);
    verify_audit(f);
    fx_free(f);
}

/* Pressure that persists past 10m is critical; the reboot request follows. A reopen after the
 * duplicate window opens a new incident. */
static void test_pressure_held_critical(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    run(f, NODE_A, &PRESSURE, T0, T0 + 9 * MIN);
    rsre_store_incident *inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->severity, ST(SEVERITY__SEVERITY_WARNING));
    char id1[64];
    snprintf(id1, sizeof(id1), "%s", inc->id);
    rsre_store_incident_free(inc);
    assert_int_equal(count_approvals(f, "reboot_worker", "node-a"), 0);
    /* a restart does not restart the clock (the node reports no lastTransitionTime) */
    rsre_incident_engine_destroy(f->eng);
    engine_start(f);
    run(f, NODE_A, &PRESSURE, T0 + 10 * MIN, T0 + 11 * MIN);
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->severity, ST(SEVERITY__SEVERITY_CRITICAL));
    rsre_store_incident_free(inc);
    assert_int_equal(count_approvals(f, "reboot_worker", "node-a"), 1);
    assert_true(count_audit(f, "incident.severity", id1) >= 1);
    /* the cordon request expired unanswered at T0+10m: escalated */
    rsre_store_approval *ap = approval_for(f, "cordon_node", "node-a");
    assert_int_equal(ap->state, ST(APPROVAL_STATE__APPROVAL_STATE_EXPIRED));
    rsre_store_approval_free(ap);
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_ESCALATED));
    rsre_store_incident_free(inc);
    /* escalated: automation stops (the cleanup cooldown of 15m ended, it does not run again) */
    run(f, NODE_A, &PRESSURE, T0 + 12 * MIN, T0 + 16 * MIN);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 1);

    /* A lastTransitionTime 15 minutes ago on a node seen for the first time: critical at once */
    struct view old = PRESSURE;
    old.transition = T0 + 2 * MIN;
    send(f, "node-c", &old, T0 + 17 * MIN);
    inc = incident(f, "node_disk_pressure/node=node-c");
    assert_int_equal(inc->severity, ST(SEVERITY__SEVERITY_CRITICAL));
    rsre_store_incident_free(inc);

    /* clear, resolve, and come back after the duplicate window: a new incident */
    run(f, NODE_A, &CLEAR, T0 + 18 * MIN, T0 + 40 * MIN);
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_RESOLVED));
    rsre_store_incident_free(inc);
    send(f, "node-a", &PRESSURE, T0 + 60 * MIN);
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_string_not_equal(inc->id, id1);
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_TRIAGED));
    rsre_store_incident_free(inc);
    verify_audit(f);
    fx_free(f);
}

/* Production: nothing but observe/notify runs alone; cleanup and cordon need approval; reboot
 * and replace need two approvers. */
static void test_production(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_PRODUCTION);
    run(f, NODE_A, &PRESSURE, T0, T0 + 11 * MIN);
    for (size_t i = 0; i < f->nexec; i++) {
        const struct rsre_action_def *a =
            rsre_taxonomy_action(rsre_taxonomy_builtin(), f->exec[i].action);
        assert_non_null(a);
        assert_true(a->cls == RSRE_CLASS_OBSERVE || a->cls == RSRE_CLASS_NOTIFY);
    }
    assert_true(f->nexec >= 3);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 0);
    rsre_store_approval *ap = approval_for(f, "delete_finished_pods", "*");
    assert_non_null(ap);
    assert_non_null(strstr(ap->prompt, "delete Succeeded and Failed pods in every namespace on "
                                       "node-a"));
    rsre_store_approval_free(ap);
    ap = approval_for(f, "reboot_worker", "node-a");
    assert_non_null(ap);
    assert_int_equal(ap->quorum, 2);
    rsre_store_approval_free(ap);
    ap = approval_for(f, "replace_worker", "node-a");
    assert_non_null(ap);
    assert_int_equal(ap->quorum, 2);
    rsre_store_approval_free(ap);
    ap = approval_for(f, "cordon_node", "node-a");
    assert_int_equal(ap->quorum, 1);
    assert_int_equal(ap->expires_at_ms, T0 + 10 * MIN);
    assert_non_null(strstr(ap->prompt, "Approval expires in 10m."));
    rsre_store_approval_free(ap);
    rsre_store_incident *inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->environment, ST(ENVIRONMENT__ENVIRONMENT_PRODUCTION));
    assert_true(
        has_str(inc->recommended_actions, inc->n_recommended_actions, "delete_finished_pods"));
    rsre_store_incident_free(inc);
    verify_audit(f);
    fx_free(f);
}

/* Writes a vote and the approval's state, as the approvals module would, then tells the engine. */
static int decide(struct fx *f, const char *approval_id, const char *const *voters, int state,
                  int64_t now) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    for (size_t i = 0; voters[i]; i++) {
        rsre_store_vote v = ROBOT_SRE__STORE__VOTE__INIT;
        v.operator_ = (char *)voters[i];
        v.vote = ST(VOTE_KIND__VOTE_KIND_APPROVE);
        v.channel = "robotctl";
        v.at_ms = now;
        assert_int_equal(rsre_store_approval_vote_add(txn, approval_id, &v), 0);
    }
    rsre_store_approval *ap = NULL;
    assert_int_equal(rsre_store_approval_get(txn, approval_id, &ap), 0);
    ap->state = state;
    ap->decided_at_ms = now;
    assert_int_equal(rsre_store_approval_put(txn, ap, 0), 0);
    rsre_store_approval_free(ap);
    int rc = rsre_incident_engine_approval_decided(f->eng, txn, approval_id, now);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(f->eng);
    return rc;
}

/* Approvals decided: self-approval is refused, a real approval releases the action once and
 * moves the incident to recovering, a denial closes the record. */
static void test_approval_decided(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_STAGING);
    send(f, "node-a", &PRESSURE, T0);
    send(f, "node-b", &PRESSURE, T0 + 1000); /* critical: reboot/replace requested too */
    rsre_store_approval *cordon = approval_for(f, "cordon_node", "node-a");
    rsre_store_approval *reboot = approval_for(f, "reboot_worker", "node-a");
    rsre_store_approval *cordon_b = approval_for(f, "cordon_node", "node-b");
    assert_non_null(cordon);
    assert_non_null(reboot);
    assert_non_null(cordon_b);

    /* only the requester "voted": cancelled, nothing runs */
    static const char *const self[] = {"robot-sre", NULL};
    assert_int_equal(
        decide(f, reboot->id, self, ST(APPROVAL_STATE__APPROVAL_STATE_APPROVED), T0 + MIN), 0);
    assert_int_equal(count_exec(f, "reboot_worker", NULL), 0);
    rsre_store_approval *r2 = approval_for(f, "reboot_worker", "node-a");
    assert_int_equal(r2->state, ST(APPROVAL_STATE__APPROVAL_STATE_CANCELLED));
    rsre_store_approval_free(r2);

    /* alice approves the cordon: it runs once, the incident is recovering */
    static const char *const alice[] = {"alice", NULL};
    assert_int_equal(
        decide(f, cordon->id, alice, ST(APPROVAL_STATE__APPROVAL_STATE_APPROVED), T0 + 2 * MIN), 0);
    assert_int_equal(count_exec(f, "cordon_node", "node-a"), 1);
    const struct exec_rec *x = find_exec(f, "cordon_node");
    assert_string_equal(x->approval, cordon->id);
    assert_string_equal(x->target, "node-a");
    rsre_store_incident *inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_RECOVERING));
    assert_int_equal(inc->approval_state, ST(APPROVAL_STATE__APPROVAL_STATE_PENDING));
    rsre_store_incident_free(inc);
    /* told twice: nothing more */
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_approval_decided(f->eng, txn, cordon->id, T0 + 3 * MIN),
                     0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(f->eng);
    assert_int_equal(count_exec(f, "cordon_node", "node-a"), 1);
    /* the cordon is cooling down: no new request for it */
    run(f, NODE_A, &PRESSURE, T0 + 3 * MIN, T0 + 4 * MIN);
    assert_int_equal(count_approvals(f, "cordon_node", "node-a"), 1);
    result(f, x->record, 1, T0 + 4 * MIN + 1000);

    /* node-b's cordon denied */
    static const char *const none[] = {NULL};
    assert_int_equal(
        decide(f, cordon_b->id, none, ST(APPROVAL_STATE__APPROVAL_STATE_DENIED), T0 + 5 * MIN), 0);
    assert_int_equal(count_exec(f, "cordon_node", "node-b"), 0);
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    rsre_store_action *act = NULL;
    assert_int_equal(rsre_store_action_get(txn, cordon_b->action_id, &act), 0);
    assert_int_equal(act->state, ST(ACTION_STATE__ACTION_STATE_DENIED));
    rsre_store_action_free(act);
    rsre_store_txn_abort(txn);
    /* a denied request is not asked again inside the duplicate window */
    run(f, NODES_AB, &PRESSURE, T0 + 6 * MIN, T0 + 7 * MIN);
    assert_int_equal(count_approvals(f, "cordon_node", "node-b"), 1);

    /* a failed action escalates */
    rsre_store_approval *replace = approval_for(f, "replace_worker", "node-b");
    assert_non_null(replace);
    static const char *const two[] = {"alice", "bob", NULL};
    assert_int_equal(
        decide(f, replace->id, two, ST(APPROVAL_STATE__APPROVAL_STATE_APPROVED), T0 + 8 * MIN), 0);
    x = find_exec(f, "replace_worker");
    assert_non_null(x);
    result(f, x->record, 0, T0 + 9 * MIN);
    inc = incident(f, "node_disk_pressure/node=node-b");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_ESCALATED));
    rsre_store_incident_free(inc);

    /* an approval the approvals module expired: the record expires, the incident escalates */
    rsre_store_approval *replace_a = approval_for(f, "replace_worker", "node-a");
    assert_non_null(replace_a);
    assert_int_equal(decide(f, replace_a->id, none, ST(APPROVAL_STATE__APPROVAL_STATE_EXPIRED),
                            T0 + 9 * MIN + 1000),
                     0);
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_ESCALATED));
    rsre_store_incident_free(inc);
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_action_get(txn, replace_a->action_id, &act), 0);
    assert_int_equal(act->state, ST(ACTION_STATE__ACTION_STATE_EXPIRED));
    rsre_store_action_free(act);
    rsre_store_txn_abort(txn);
    rsre_store_approval_free(replace_a);

    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_approval_decided(f->eng, txn, "apr-nope", T0),
                     RSRE_ENOTFOUND);
    assert_int_equal(rsre_incident_engine_action_result(f->eng, txn, "act-nope", 1, "", 0, 0, T0),
                     RSRE_ENOTFOUND);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);

    rsre_store_approval_free(cordon);
    rsre_store_approval_free(reboot);
    rsre_store_approval_free(cordon_b);
    rsre_store_approval_free(replace);
    verify_audit(f);
    fx_free(f);
}

/* An aborted transaction releases nothing and changes nothing, in the store or in the engine. */
static void test_abort(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    struct batch x;
    build(&x, &PRESSURE, T0, 1);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_apply(f->eng, txn, "node-a", &x.b, T0), 0);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);
    assert_int_equal(f->nexec, 0);
    assert_int_equal(f->nnotes, 0);
    struct rsre_store_info info;
    assert_int_equal(rsre_store_info(f->store, &info), 0);
    assert_int_equal(info.incidents, 0);
    assert_int_equal(info.evidence, 0);
    assert_int_equal(info.actions, 0);
    assert_int_equal(info.approvals, 0);
    assert_int_equal(info.cooldowns, 0);
    assert_int_equal(info.audit, 0);

    /* the same batch again, committed: exactly one incident, one cleanup */
    assert_int_equal(apply_raw(f, "node-a", &x.b, T0 + 1000), 0);
    struct inc_list l;
    incidents(f, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0]->id, "inc-1");
    inc_list_free(&l);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 1);

    /* an aborted tick that would resolve/escalate also rolls back */
    size_t nexec = f->nexec;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_tick(f->eng, txn, T0 + 30 * MIN), 0);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);
    assert_int_equal(f->nexec, nexec);
    rsre_store_approval *ap = approval_for(f, "cordon_node", "node-a");
    assert_int_equal(ap->state, ST(APPROVAL_STATE__APPROVAL_STATE_PENDING));
    rsre_store_approval_free(ap);
    /* and the engine still knows the incident as it was */
    send(f, "node-a", &PRESSURE, T0 + MIN);
    incidents(f, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0]->lifecycle, ST(LIFECYCLE__LIFECYCLE_TRIAGED));
    inc_list_free(&l);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 1);
    verify_audit(f);
    fx_free(f);
}

/* An agent that goes silent is evidence: node_unreachable_or_notready opens at low confidence
 * (nothing asked of humans), corroborated Ready=False makes it high; the agent's return and the
 * exit window resolve it. */
static void test_agent_silence(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    send(f, "node-a", &CLEAR, T0);
    tick(f, T0 + 2 * MIN);
    assert_null(incident(f, "node_unreachable_or_notready/node=node-a"));
    tick(f, T0 + 4 * MIN); /* silent for 4m > 3m */
    rsre_store_incident *inc = incident(f, "node_unreachable_or_notready/node=node-a");
    assert_non_null(inc);
    assert_int_equal(inc->confidence, ST(CONFIDENCE__CONFIDENCE_LOW));
    assert_int_equal(inc->severity, ST(SEVERITY__SEVERITY_WARNING));
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "aggregator/agent-stream"));
    assert_non_null(strstr(inc->evidence_summary, "agent silent for 4m"));
    rsre_store_incident_free(inc);
    assert_int_equal(count_approvals(f, "cordon_node", "node-a"), 0);
    assert_int_equal(count_exec(f, "query_oci", "node-a"), 1);
    /* silence keeps the disk-pressure view unknown: no disk incident from stale data */
    assert_null(incident(f, "node_disk_pressure/node=node-a"));

    /* the control plane (external watch) reports Ready=False: corroborated */
    struct view nr = CLEAR;
    nr.not_ready = 1;
    struct batch x;
    build(&x, &nr, T0 + 5 * MIN, 99);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_apply_external(f->eng, txn, "node-a", &x.b, T0 + 5 * MIN),
                     0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(f->eng);
    tick(f, T0 + 6 * MIN);
    inc = incident(f, "node_unreachable_or_notready/node=node-a");
    assert_int_equal(inc->confidence, ST(CONFIDENCE__CONFIDENCE_HIGH));
    rsre_store_incident_free(inc);
    assert_int_equal(count_approvals(f, "cordon_node", "node-a"), 1);

    /* the agent is back and the node ready: resolved after 5m */
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_agent_seen(f->eng, txn, "node-a",
                                                     "6f1c2a7e-9a54-4a8e-8d8e-2b7f3f0c9d11",
                                                     T0 + 7 * MIN),
                     0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(f->eng);
    run(f, NODE_A, &CLEAR, T0 + 7 * MIN, T0 + 13 * MIN);
    inc = incident(f, "node_unreachable_or_notready/node=node-a");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_RESOLVED));
    rsre_store_incident_free(inc);
    verify_audit(f);
    fx_free(f);
}

/* Cluster scope: finished pods on two nodes add up past 200 -> background_job_buildup with one
 * cluster-wide cleanup. */
static void test_background_jobs(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    struct view v = CLEAR;
    v.finished = 120;
    send(f, "node-a", &v, T0);
    assert_null(incident(f, "background_job_buildup/cluster"));
    send(f, "node-b", &v, T0 + 1000);
    rsre_store_incident *inc = incident(f, "background_job_buildup/cluster");
    assert_non_null(inc);
    assert_int_equal(inc->confidence, ST(CONFIDENCE__CONFIDENCE_HIGH));
    assert_string_equal(inc->resource_scope[0]->kind, "Cluster");
    assert_non_null(strstr(inc->evidence_summary, "node-a: 120 finished pods"));
    rsre_store_incident_free(inc);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 1);
    const struct exec_rec *x = find_exec(f, "delete_finished_pods");
    assert_string_equal(x->node, "");
    assert_string_equal(x->target, "*");
    /* the backlog is gone: resolved after the 5m window */
    run(f, NODES_AB, &CLEAR, T0 + MIN, T0 + 7 * MIN);
    inc = incident(f, "background_job_buildup/cluster");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_RESOLVED));
    rsre_store_incident_free(inc);
    verify_audit(f);
    fx_free(f);
}

/* Hostile and broken input changes nothing harmful. */
static void test_garbage(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    struct batch x;
    build(&x, &PRESSURE, T0, 1);
    /* unknown kind, NULL member, zero time, unknown enums, NaN, impossible byte counts */
    x.sig[0].kind_case = (RobotSre__Agent__V1__Signal__KindCase)77;
    x.sig[1].observed_unix_ms = 0;
    x.sig[2].kind_case = A(SIGNAL__KIND_PRESSURE_STALL);
    x.sig[2].pressure_stall = NULL;
    assert_int_equal(apply_raw(f, "node-a", &x.b, T0), 0);

    build(&x, &PRESSURE, T0, 2);
    x.fs.bytes_avail = x.fs.bytes_total * 2;
    x.fs.which = (RobotSre__Agent__V1__FilesystemRole)42;
    x.dp.status = (RobotSre__Agent__V1__ConditionStatus)99;
    x.cond.n_taints = 0;
    x.pods.evicted = 100000; /* more evicted than failed */
    x.pods.evicted_in_window = 0;
    RobotSre__Agent__V1__PressureStall psi = ROBOT_SRE__AGENT__V1__PRESSURE_STALL__INIT;
    RobotSre__Agent__V1__PsiLine some = ROBOT_SRE__AGENT__V1__PSI_LINE__INIT;
    some.avg10 = NAN;
    psi.resource = A(PSI_RESOURCE__PSI_RESOURCE_MEMORY);
    psi.some = &some;
    RobotSre__Agent__V1__KernelEvent k = ROBOT_SRE__AGENT__V1__KERNEL_EVENT__INIT;
    k.kind = (RobotSre__Agent__V1__KernelEventKind)1234;
    k.suppressed = 4000000000u;
    RobotSre__Agent__V1__Signal extra[2] = {ROBOT_SRE__AGENT__V1__SIGNAL__INIT,
                                            ROBOT_SRE__AGENT__V1__SIGNAL__INIT};
    extra[0].observed_unix_ms = T0 + 365LL * 24 * 3600 * 1000; /* a year ahead */
    extra[0].kind_case = A(SIGNAL__KIND_PRESSURE_STALL);
    extra[0].pressure_stall = &psi;
    extra[1].observed_unix_ms = -5;
    extra[1].kind_case = A(SIGNAL__KIND_KERNEL_EVENT);
    extra[1].kernel_event = &k;
    RobotSre__Agent__V1__Signal *sigs[6] = {&x.sig[0], &x.sig[1], &x.sig[2],
                                            &extra[0], &extra[1], NULL};
    x.b.signals = sigs;
    x.b.n_signals = 6;
    assert_int_equal(apply_raw(f, "node-a", &x.b, T0 + 1000), 0);

    /* no signals at all */
    x.b.n_signals = 0;
    x.b.signals = NULL;
    assert_int_equal(apply_raw(f, "node-a", &x.b, T0 + 2000), 0);

    /* hostile node names */
    build(&x, &PRESSURE, T0, 3);
    assert_int_equal(apply_raw(f, "", &x.b, T0), RSRE_EINVALID);
    assert_int_equal(apply_raw(f, "Node_A", &x.b, T0), RSRE_EINVALID);
    assert_int_equal(apply_raw(f, "a/../../b", &x.b, T0), RSRE_EINVALID);
    assert_int_equal(apply_raw(f, "-a", &x.b, T0), RSRE_EINVALID);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(apply_raw(f, longname, &x.b, T0), RSRE_EINVALID);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_apply(f->eng, txn, "node-a", NULL, T0), -EINVAL);
    assert_int_equal(rsre_incident_engine_apply(NULL, txn, "node-a", &x.b, T0), -EINVAL);
    assert_int_equal(rsre_incident_engine_agent_seen(f->eng, txn, "NODE", NULL, T0), RSRE_EINVALID);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);

    /* none of it opened anything */
    struct inc_list l;
    incidents(f, &l);
    assert_int_equal(l.n, 0);
    inc_list_free(&l);
    assert_int_equal(f->nexec, 0);

    /* the engine still works after all that */
    send(f, "node-a", &PRESSURE, T0 + 3000);
    rsre_store_incident *inc = incident(f, "node_disk_pressure/node=node-a");
    assert_non_null(inc);
    rsre_store_incident_free(inc);
    verify_audit(f);

    struct rsre_incident_engine *e = NULL;
    struct rsre_incident_engine_config bad = {.env = (enum rsre_env)7};
    assert_int_equal(rsre_incident_engine_create(f->store, &bad, NULL, &e), -EINVAL);
    assert_null(e);
    rsre_incident_engine_destroy(NULL);
    fx_free(f);
}

/* Operator rules: an extra threshold, its suppression window (nothing opens inside it; an open
 * incident is parked and comes back), an allowlisted CronJob the robot may suspend on its own,
 * and the standing records of actions it did not run. T0 is a Tuesday, 22:13 UTC. */
static void test_operator_rules(void **state) {
    (void)state;
    static const char yaml[] = "id: demo-early-disk\n"
                               "name: early disk warning\n"
                               "enabled: true\n"
                               "domain: infrastructure\n"
                               "incident_type: node_disk_pressure\n"
                               "environment_scope: [demo]\n"
                               "threshold_expression: \"nodefs.used_ratio > 80%\"\n"
                               "severity: warning\n"
                               "allowed_action_profile:\n"
                               "  - action: suspend_cronjob\n"
                               "    targets: [image-factory-demo/nightly-report]\n"
                               "suppression_schedule:\n"
                               "  - {days: [tue], from: \"22:00\", to: \"23:00\"}\n"
                               "owner: platform-team\n"
                               "version: 2\n";
    struct rsre_ruleset *rs = NULL;
    struct rsre_rule_error err;
    assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
    assert_int_equal(rsre_ruleset_add_yaml(rs, "test", yaml, strlen(yaml), &err), 0);
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    rsre_incident_engine_destroy(f->eng);
    f->cfg.rules = rs;
    engine_start(f);

    struct view early = CLEAR;
    early.used = 0.82;
    send(f, "node-a", &early, T0); /* 22:13, inside the window */
    assert_null(incident(f, "node_disk_pressure/node=node-a"));
    send(f, "node-a", &early, T0 + 50 * MIN); /* 23:03 */
    rsre_store_incident *inc = incident(f, "node_disk_pressure/node=node-a");
    assert_non_null(inc);
    assert_string_equal(inc->rule_id, "demo-early-disk");
    assert_int_equal(inc->rule_version, 2);
    assert_int_equal(inc->confidence, ST(CONFIDENCE__CONFIDENCE_LOW));
    assert_string_equal(inc->evidence_summary,
                        "node-a: rule demo-early-disk fired: nodefs.used_ratio > 80%");
    char id[64];
    snprintf(id, sizeof(id), "%s", inc->id);
    rsre_store_incident_free(inc);
    assert_int_equal(count_exec(f, "delete_finished_pods", NULL), 0);
    assert_int_equal(count_exec(f, "suspend_cronjob", NULL), 0);
    assert_int_equal(count_approvals(f, "cordon_node", "node-a"), 0);

    /* a week later, inside the window again: parked, then back after it */
    int64_t week = 7 * 24 * 60 * MIN;
    send(f, "node-a", &early, T0 + week - 10 * MIN); /* Tue 22:03 */
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_string_equal(inc->id, id);
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_SUPPRESSED));
    rsre_store_incident_free(inc);
    send(f, "node-a", &early, T0 + week + 50 * MIN); /* Tue 23:03 */
    inc = incident(f, "node_disk_pressure/node=node-a");
    assert_int_equal(inc->lifecycle, ST(LIFECYCLE__LIFECYCLE_TRIAGED));
    rsre_store_incident_free(inc);

    /* real pressure: high confidence; the containment set runs together, the CronJob the
     * operator allowlisted included */
    send(f, "node-a", &PRESSURE, T0 + week + 51 * MIN);
    assert_int_equal(count_exec(f, "delete_finished_pods", "node-a"), 1);
    assert_int_equal(count_exec(f, "suspend_cronjob", "node-a"), 1);
    assert_string_equal(find_exec(f, "suspend_cronjob")->target,
                        "image-factory-demo/nightly-report");
    tick(f, T0 + week + 52 * MIN);
    assert_int_equal(count_exec(f, "delete_finished_pods", "node-a"), 1);
    assert_int_equal(count_exec(f, "suspend_cronjob", "node-a"), 1);

    /* the standing records say why the robot did not run the rest */
    rsre_store_txn *txn;
    char rid[128];
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    rsre_store_action *act = NULL;
    snprintf(rid, sizeof(rid), "%s.delete_persistent_data", id);
    assert_int_equal(rsre_store_action_get(txn, rid, &act), 0);
    assert_int_equal(act->decision, ST(DECISION__DECISION_HUMAN_ONLY));
    assert_int_equal(act->state, ST(ACTION_STATE__ACTION_STATE_SKIPPED));
    int found = 0;
    for (size_t i = 0; i < act->n_reasons; i++) {
        found |= strstr(act->reasons[i], "never executed by the robot") != NULL;
    }
    assert_true(found);
    rsre_store_action_free(act);
    snprintf(rid, sizeof(rid), "%s.delete_finished_pods", id);
    assert_int_equal(rsre_store_action_get(txn, rid, &act), 0);
    assert_int_equal(act->decision, ST(DECISION__DECISION_REFUSED));
    found = 0;
    for (size_t i = 0; i < act->n_reasons; i++) {
        found |= strstr(act->reasons[i], "cooldown active: delete_finished_pods ran recently, "
                                         "retry at ") != NULL;
    }
    assert_true(found);
    rsre_store_action_free(act);
    rsre_store_txn_abort(txn);
    assert_true(count_audit(f, "action.decide", NULL) >= 2);
    verify_audit(f);
    fx_free(f);
    rsre_ruleset_destroy(rs);
}

/* A late resend (older observation) does not overwrite newer state. */
static void test_late_resend(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    send(f, "node-a", &CLEAR, T0 + MIN);
    struct batch x;
    build(&x, &PRESSURE, T0, 1); /* observed a minute earlier, arriving later */
    assert_int_equal(apply_raw(f, "node-a", &x.b, T0 + MIN + 1000), 0);
    assert_null(incident(f, "node_disk_pressure/node=node-a"));
    fx_free(f);
}

int main(void) {
    rsre_log_threshold = RSRE_LOG_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_pressure_demo),
        cmocka_unit_test(test_pressure_held_critical),
        cmocka_unit_test(test_production),
        cmocka_unit_test(test_approval_decided),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_agent_silence),
        cmocka_unit_test(test_background_jobs),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_operator_rules),
        cmocka_unit_test(test_late_resend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
