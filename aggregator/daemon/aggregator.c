/*
 * The aggregator's wiring. Ingest hands each committed group of agent messages to the incident
 * engine inside the ingest's own transaction; the engine's queued effects are released after
 * that commit. Execution: node-local actions go to the node's agent over its stream; actions
 * whose executor is not configured in this process fail at once and the incident escalates
 * (never silently). Failures found while releasing are recorded on the next loop turn, in
 * their own transaction, so the engine is never re-entered from its own hooks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/curl_uv.h"
#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/kube.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "approvals/approvals.h"
#include "approvals/operators.h"
#include "common/yamldoc.h"
#include "daemon/open_latency.h"
#include "daemon/wire_notify.h"
#include "daemon/wire_observe.h"
#include "daemon/wire_probes.h"
#include "daemon/wire_oci.h"
#include "daemon/wire_rules.h"
#include "exec/kube_exec.h"
#include "http/api.h"
#include "http/metrics.h"
#include "incidents/engine.h"
#include "ingest/ingest.h"
#include "store/store.h"

#define MAX_DEFERRED 256

/* An executor's outcome, recorded on the next loop turn in its own transaction. */
struct deferred_result {
    char record_id[RSRE_STORE_ID_MAX + 1];
    int ok;
    uint32_t objects;
    char message[256];
};

struct rsre_aggregator {
    uv_loop_t *loop;
    struct rsre_aggregator_config cfg;
    rsre_store *store;
    struct rsre_ruleset *rules;
    struct rsre_grpc_loop *grpc;
    struct rsre_ingest *ingest;
    struct rsre_incident_engine *engine;
    struct rsre_http *http;
    struct rsre_kube *kube;
    struct rsre_kube_exec *kexec;
    struct rsre__wire_oci *oci; /* NULL: not configured (reboot/replace fail, said so) */
    struct rsre__wire_observe *observe; /* Kubernetes observers -> engine */
    struct rsre_operators *operators;
    struct rsre_approvals *approvals;
    struct rsre_metrics *metrics;
    struct rsre__wire_notify *notify; /* chat channels and in-app (wire_notify.h) */
    struct rsre__wire_probes *probes; /* dependency probes -> engine (wire_probes.h) */
    struct rsre_open_latency open_latency; /* receipt-to-incident-open histogram */
    rsre_api *api;
    uv_timer_t tick, deferred_timer;
    struct deferred_result deferred[MAX_DEFERRED];
    size_t ndeferred;
    int closing, pending;
    void (*closed)(void *);
    void *closed_arg;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- running work in its own transaction ---- */

typedef int (*txn_fn)(struct rsre_aggregator *ag, rsre_store_txn *txn, void *arg);

/* Runs fn in a write transaction; commits and releases the engine's effects, or aborts and
 * rolls them back. */
static int in_txn(struct rsre_aggregator *ag, txn_fn fn, void *arg) {
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(ag->store, 0, &txn);
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "cannot begin a transaction: %s",
                 rsre_strerror(rc));
        return rc;
    }
    rc = fn(ag, txn, arg);
    if (rc == 0) {
        rc = rsre_store_txn_commit(txn);
    } else {
        rsre_store_txn_abort(txn);
    }
    if (rc == 0) {
        rsre_incident_engine_committed(ag->engine);
    } else {
        rsre_incident_engine_aborted(ag->engine);
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "transaction failed: %s", rsre_strerror(rc));
    }
    return rc;
}

/* ---- executors: a row per action ---- */

/* Node-scoped actions with a node go to that node's agent (it re-checks its own allowlist);
 * everything else the Kubernetes executor knows goes there (it re-reads before writing and
 * verifies after). OCI operations (reboot/replace) go to the OCI executor (wire_oci.h), which
 * reads the node's providerID from the Kubernetes API; without OCI configuration they fail
 * with "OCI executor not configured" and the incident escalates to a human. */
enum executor { EXEC_AGENT, EXEC_KUBE, EXEC_OCI };

static const struct {
    const char *action;
    enum executor exec;
} executors[] = {
    {"delete_finished_pods", EXEC_AGENT}, /* the node's agent deletes its own finished pods */
    {"prune_unused_images", EXEC_AGENT},
    {"remove_exited_containers", EXEC_AGENT},
    {"cordon_node", EXEC_KUBE},
    {"uncordon_node", EXEC_KUBE},
    {"drain_node", EXEC_KUBE},
    {"rollout_restart", EXEC_KUBE},
    {"restart_backend", EXEC_KUBE},
    {"restart_shared_dependency", EXEC_KUBE},
    {"scale_workload_to_zero", EXEC_KUBE},
    {"scale_shared_controllers_down", EXEC_KUBE},
    {"suspend_cronjob", EXEC_KUBE},
    {"reboot_worker", EXEC_OCI},
    {"replace_worker", EXEC_OCI},
};

static int record_failures(struct rsre_aggregator *ag, rsre_store_txn *txn, void *arg) {
    (void)arg;
    for (size_t i = 0; i < ag->ndeferred; i++) {
        int rc = rsre_incident_engine_action_result(
            ag->engine, txn, ag->deferred[i].record_id, ag->deferred[i].ok,
            ag->deferred[i].message, 0, ag->deferred[i].objects, now_ms());
        if (rc && rc != RSRE_ENOTFOUND) {
            return rc;
        }
    }
    return 0;
}

static void on_deferred(uv_timer_t *t) {
    struct rsre_aggregator *ag = t->data;
    if (ag->ndeferred == 0 || ag->closing) {
        return;
    }
    in_txn(ag, record_failures, NULL);
    ag->ndeferred = 0;
}

static void defer_result(struct rsre_aggregator *ag, const char *record, int ok, uint32_t objects,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void defer_result(struct rsre_aggregator *ag, const char *record, int ok, uint32_t objects,
                         const char *fmt, ...) {
    if (ag->ndeferred >= MAX_DEFERRED) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "dropping the result of action record %s: queue "
                                               "full",
                 record);
        return;
    }
    struct deferred_result *d = &ag->deferred[ag->ndeferred++];
    snprintf(d->record_id, sizeof(d->record_id), "%s", record);
    d->ok = ok;
    d->objects = objects;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof(d->message), fmt, ap);
    va_end(ap);
    RSRE_LOG(ok ? RSRE_LOG_INFO : RSRE_LOG_WARN, "aggregator", "action record %s %s: %s", record,
             ok ? "done" : "failed", d->message);
    uv_timer_start(&ag->deferred_timer, on_deferred, 0, 0);
}

#define defer_failure(ag, record, ...) defer_result((ag), (record), 0, 0, __VA_ARGS__)

struct kube_run {
    struct rsre_aggregator *ag;
    char record_id[RSRE_STORE_ID_MAX + 1];
};

static void on_kube_done(void *arg, const struct rsre_kube_exec_result *res) {
    struct kube_run *kr = arg;
    if (!kr->ag->closing || res->rc != -ECANCELED) {
        defer_result(kr->ag, kr->record_id, res->ok, res->changed, "%s %s: %s", res->action,
                     res->target, res->message ? res->message : "");
    }
    free(kr);
}

static void run_kube(struct rsre_aggregator *ag, const struct rsre_planned_action *pa) {
    if (!ag->kexec) {
        defer_failure(ag, pa->action_record_id,
                      "%s needs the Kubernetes API, which this aggregator could not reach",
                      pa->action->id);
        return;
    }
    struct kube_run *kr = calloc(1, sizeof(*kr));
    if (!kr) {
        defer_failure(ag, pa->action_record_id, "out of memory");
        return;
    }
    kr->ag = ag;
    snprintf(kr->record_id, sizeof(kr->record_id), "%s", pa->action_record_id);
    int64_t left = pa->deadline_unix_ms ? pa->deadline_unix_ms - now_ms() : 0;
    struct rsre_kube_exec_request req = {
        .action = pa->action->id,
        .target = pa->target && strcmp(pa->target, "*") ? pa->target : pa->node,
        .dry_run = pa->dry_run ? RSRE_KUBE_EXEC_DRY_SERVER : RSRE_KUBE_EXEC_REAL,
        .timeout_ms = left > 0 ? (uint32_t)left : 0};
    char err[256] = "";
    struct rsre_kube_exec_op *op;
    int rc = rsre_kube_exec_run(ag->kexec, &req, on_kube_done, kr, &op, err, sizeof(err));
    if (rc) {
        free(kr);
        defer_failure(ag, pa->action_record_id, "%s refused: %s (%s)", pa->action->id, err,
                      rsre_strerror(rc));
    }
}

static void on_oci_done(void *arg, const char *record_id, int ok, const char *message) {
    struct rsre_aggregator *ag = arg;
    defer_result(ag, record_id, ok, 0, "%s", message);
}

static void run_oci(struct rsre_aggregator *ag, const struct rsre_planned_action *pa) {
    if (!ag->oci) {
        defer_failure(ag, pa->action_record_id,
                      "OCI executor not configured: %s on node %s was not run (set oci_tenancy, "
                      "oci_user, oci_fingerprint, oci_key_file and oci_region; docs/oci.md)",
                      pa->action->id, pa->node && pa->node[0] ? pa->node : "-");
        return;
    }
    if (!ag->kube) {
        defer_failure(ag, pa->action_record_id,
                      "%s needs the node's providerID from the Kubernetes API, which this "
                      "aggregator could not reach",
                      pa->action->id);
        return;
    }
    char err[256] = "";
    int rc = rsre__wire_oci_run(ag->oci, ag->kube, pa->action->id, pa->node,
                                pa->action_record_id, pa->dry_run, on_oci_done, ag, err,
                                sizeof(err));
    if (rc) {
        defer_failure(ag, pa->action_record_id, "%s refused: %s", pa->action->id, err);
    }
}

static void hook_execute(void *arg, const struct rsre_planned_action *pa) {
    struct rsre_aggregator *ag = arg;
    /* Observe and notify run in-process: the engine already keeps the evidence from the
     * agents' signals, and every incident and approval is in the store and the admin API (the
     * in-app channel). Chat messages are sent by the notification core from the engine's
     * notify hook (wire_notify.c), whatever the plan says, so the action only records that. */
    if (pa->action->cls == RSRE_CLASS_OBSERVE) {
        defer_result(ag, pa->action_record_id, 1, 0,
                     "evidence is kept from the agents' signals (incident evidence timeline)");
        return;
    }
    if (pa->action->cls == RSRE_CLASS_NOTIFY) {
        defer_result(ag, pa->action_record_id, 1, 0,
                     "%s: recorded in-app; chat messages follow the notifications file "
                     "(docs/chatops.md)",
                     pa->action->id);
        return;
    }
    if (!pa->approval_id) {
        rsre_metrics_inc(ag->metrics, RSRE_M_AUTO_REMEDIATIONS_TOTAL);
    }
    size_t i = 0;
    while (i < sizeof(executors) / sizeof(executors[0]) &&
           strcmp(executors[i].action, pa->action->id)) {
        i++;
    }
    if (i == sizeof(executors) / sizeof(executors[0])) {
        defer_failure(ag, pa->action_record_id,
                      "no executor for %s is configured in this aggregator", pa->action->id);
        return;
    }
    if (executors[i].exec == EXEC_OCI) {
        run_oci(ag, pa);
        return;
    }
    if (executors[i].exec == EXEC_KUBE || !pa->node || !pa->node[0]) {
        run_kube(ag, pa); /* cluster-scope actions (and node actions on no node) */
        return;
    }
    RobotSre__Agent__V1__ActionRequest req = ROBOT_SRE__AGENT__V1__ACTION_REQUEST__INIT;
    req.request_id = (char *)pa->action_record_id;
    req.action_id = (char *)pa->action->id;
    /* A node-local action's target is the agent's own node ("*" means all its namespaces). */
    req.target = (char *)(pa->target && strcmp(pa->target, "*") ? pa->target : pa->node);
    req.dry_run = pa->dry_run;
    req.deadline_unix_ms = pa->deadline_unix_ms;
    req.incident_id = (char *)(pa->incident_id ? pa->incident_id : "");
    req.issued_unix_ms = now_ms();
    int rc = rsre_ingest_send_action(ag->ingest, pa->node, &req);
    if (rc) {
        defer_failure(ag, pa->action_record_id, "cannot reach the agent of %s: %s", pa->node,
                      rsre_strerror(rc));
        return;
    }
    RSRE_LOG(RSRE_LOG_INFO, "aggregator", "action=%s record=%s node=%s target=%s dry_run=%d sent",
             pa->action->id, pa->action_record_id, pa->node, req.target, pa->dry_run);
}

static void hook_notify(void *arg, const rsre_store_incident *inc, const char *what) {
    struct rsre_aggregator *ag = arg;
    if (!strcmp(what, "opened")) {
        rsre_metrics_inc(ag->metrics, RSRE_M_INCIDENTS_OPEN_TOTAL);
        if (inc->n_resource_scope && inc->resource_scope[0]->name) {
            rsre_open_latency_opened(&ag->open_latency, inc->resource_scope[0]->name,
                                     uv_hrtime());
        }
    } else if (!strcmp(what, "resolved")) {
        rsre_metrics_inc(ag->metrics, RSRE_M_INCIDENTS_RESOLVED_TOTAL);
    }
    const char *scope = inc->n_resource_scope && inc->resource_scope[0]->name
                            ? inc->resource_scope[0]->name
                            : "";
    RSRE_LOG(RSRE_LOG_INFO, "aggregator",
             "incident=%s type=%s scope=%s severity=%d confidence=%d lifecycle=%d event=%s "
             "summary=\"%s\"",
             inc->id, inc->incident_type, scope, (int)inc->severity, (int)inc->confidence,
             (int)inc->lifecycle, what, inc->evidence_summary);
    rsre__wire_notify_incident(ag->notify, inc, what);
}

/* ---- ingest consumer ---- */

static int c_hello(void *arg, rsre_store_txn *txn, const char *node,
                   const RobotSre__Agent__V1__Hello *h, int64_t t) {
    struct rsre_aggregator *ag = arg;
    return rsre_incident_engine_agent_seen(ag->engine, txn, node, h->boot_id, t);
}

static int c_batch(void *arg, rsre_store_txn *txn, const char *node,
                   const RobotSre__Agent__V1__SignalBatch *b, int64_t t) {
    struct rsre_aggregator *ag = arg;
    rsre_open_latency_note(&ag->open_latency, node, rsre_ingest_applying_recv_ns(ag->ingest));
    return rsre_incident_engine_apply(ag->engine, txn, node, b, t);
}

static int c_result(void *arg, rsre_store_txn *txn, const char *node,
                    const RobotSre__Agent__V1__ActionResult *r, int64_t t) {
    struct rsre_aggregator *ag = arg;
    int ok = r->status == ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_OK ||
             r->status == ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_DRY_RUN;
    int rc = rsre_incident_engine_action_result(ag->engine, txn, r->request_id, ok, r->message,
                                                r->bytes_freed, r->objects_removed, t);
    if (rc == RSRE_ENOTFOUND) {
        RSRE_LOG(RSRE_LOG_WARN, "aggregator", "result for unknown action record %s from node %s",
                 r->request_id, node);
        return 0; /* acknowledge it: resending would not make it known */
    }
    return rc;
}

static void c_committed(void *arg) {
    struct rsre_aggregator *ag = arg;
    rsre_incident_engine_committed(ag->engine);
    rsre_open_latency_reset(&ag->open_latency);
}

static void c_aborted(void *arg) {
    struct rsre_aggregator *ag = arg;
    rsre_incident_engine_aborted(ag->engine);
    rsre_open_latency_reset(&ag->open_latency);
}

/* ---- tick ---- */

/* Change-only reporters (observers, channel health) re-assert their state at every tick, for
 * three ticks (at least three minutes); then the engine's tick judges staleness. */
static int tick_fn(struct rsre_aggregator *ag, rsre_store_txn *txn, void *arg) {
    (void)arg;
    int64_t now = now_ms();
    int64_t fresh = 3 * (int64_t)ag->cfg.tick_ms;
    fresh = fresh < 180000 ? 180000 : fresh;
    int rc = rsre__wire_observe_heartbeat(ag->observe, txn, fresh, now);
    rc = rc > 0 ? 0 : rc; /* the number of observer sources re-asserted */
    if (rc == 0) {
        rc = rsre__wire_notify_heartbeat(ag->notify, txn, fresh, now);
    }
    return rc ? rc : rsre_incident_engine_tick(ag->engine, txn, now);
}

static void on_tick(uv_timer_t *t) {
    struct rsre_aggregator *ag = t->data;
    if (!ag->closing) {
        in_txn(ag, tick_fn, NULL);
    }
}

/* ---- admin API: votes go through the approvals module, then the engine re-checks ---- */

struct vote_ctx {
    const char *approval_id, *operator_id, *comment;
    int approve;
    struct rsre_vote_outcome outcome;
};

static int vote_fn(struct rsre_aggregator *ag, rsre_store_txn *txn, void *arg) {
    struct vote_ctx *v = arg;
    int64_t t = now_ms();
    int rc = rsre_approvals_vote(ag->approvals, txn, v->approval_id, v->operator_id,
                                 v->approve ? RSRE_VOTE_APPROVE : RSRE_VOTE_DENY,
                                 RSRE_CHANNEL_API, v->comment, t, &v->outcome);
    if (rc) {
        return rc;
    }
    /* A decided approval (granted, denied, found expired) goes to the engine, which re-checks
     * policy, cooldown and the incident before it releases anything. Refusals only commit their
     * audit record. */
    int decided = v->outcome.execute || v->outcome.escalate ||
                  (v->outcome.refusal == RSRE_REFUSE_NONE &&
                   v->outcome.state == ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_DENIED);
    if (decided) {
        rc = rsre_incident_engine_approval_decided(ag->engine, txn, v->approval_id, t);
    }
    return rc;
}

static int api_decide(void *ud, const char *approval_id, const char *operator_id, int approve,
                      const char *channel, const char *comment,
                      struct rsre_api_vote_result *out) {
    (void)channel;
    struct rsre_aggregator *ag = ud;
    struct vote_ctx v = {.approval_id = approval_id,
                         .operator_id = operator_id,
                         .comment = comment,
                         .approve = approve};
    int rc = in_txn(ag, vote_fn, &v);
    if (rc) {
        snprintf(out->message, sizeof(out->message), "vote not recorded: %s", rsre_strerror(rc));
        return rc;
    }
    rsre__wire_notify_kick(ag->notify); /* edit the approval's chat messages */
    snprintf(out->state, sizeof(out->state), "%s", rsre_approval_state_name(v.outcome.state));
    snprintf(out->message, sizeof(out->message), "%.250s", v.outcome.reason);
    if (v.outcome.refusal == RSRE_REFUSE_NONE) {
        if (v.outcome.execute) {
            rsre_metrics_inc(ag->metrics, RSRE_M_APPROVALS_GRANTED_TOTAL);
        } else if (v.outcome.state == ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_DENIED) {
            rsre_metrics_inc(ag->metrics, RSRE_M_APPROVALS_DENIED_TOTAL);
        }
    }
    return v.outcome.err;
}

/* One agent: last seen, its current boot (Hello.boot_id) with the committed seq and counts. */
static int agent_json(const rsre_store_agent *rec, void *ud) {
    json_t *arr = ud;
    const rsre_store_agent_boot *b =
        rec->boot_id && rec->boot_id[0] ? rsre_store_agent_boot_find(rec, rec->boot_id) : NULL;
    json_array_append_new(
        arr, json_pack("{s:s, s:I, s:i, s:s, s:I, s:I, s:I, s:I, s:s}", "node", rec->node,
                       "last_seen_ms", (json_int_t)rec->last_seen_ms, "boots", (int)rec->n_boots,
                       "boot_id", rec->boot_id ? rec->boot_id : "", "seq",
                       (json_int_t)(b ? b->committed_seq : 0), "batches",
                       (json_int_t)(b ? b->batches : 0), "lost_batches",
                       (json_int_t)(b ? b->lost_batches : 0), "last_batch_ms",
                       (json_int_t)(b ? b->last_batch_ms : 0), "agent_version",
                       rec->agent_version ? rec->agent_version : ""));
    return 0;
}

static json_t *api_agents(void *ud) {
    struct rsre_aggregator *ag = ud;
    rsre_store_txn *txn;
    if (rsre_store_txn_begin(ag->store, 1, &txn)) {
        return NULL;
    }
    json_t *arr = json_array();
    int rc = rsre_store_agent_foreach(txn, agent_json, arr);
    rsre_store_txn_abort(txn);
    if (rc) {
        json_decref(arr);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        json_object_set_new(o, "connected",
                            json_boolean(rsre_ingest_connected(
                                ag->ingest, json_string_value(json_object_get(o, "node")))));
    }
    return arr;
}

static int api_ready(void *ud, char *why, size_t cap) {
    struct rsre_aggregator *ag = ud;
    if (!ag->ingest || ag->closing) {
        snprintf(why, cap, "agent ingest is not serving");
        return 1;
    }
    return 0;
}

/* Chat platform webhooks (admin API, no token: the channel checks the platform's signature). */
static int api_webhook(void *ud, const struct rsre_api_webhook *w, char *out, size_t cap) {
    struct rsre_aggregator *ag = ud;
    return rsre__wire_notify_webhook(ag->notify, w, out, cap);
}

/* A committed rule change (admin API): the engine gets the rebuilt set (wire_rules.h). */
static void api_rules_changed(void *ud, const char *rule_id, uint32_t version) {
    struct rsre_aggregator *ag = ud;
    rsre__wire_rules_reload(ag->store, ag->cfg.rules_dir, ag->engine, &ag->rules, rule_id,
                            version);
}

static int start_admin(struct rsre_aggregator *ag) {
    struct rsre_approvals_config apc = {.default_expiry_ms = ag->cfg.approval_ttl_ms};
    if (ag->cfg.operators_file[0]) {
        struct rsre_yerr ye = {0};
        int rc = rsre_operators_load_file(ag->cfg.operators_file, &ag->operators, &ye);
        if (rc) {
            RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "operators file %s:%d:%d: %s",
                     ag->cfg.operators_file, ye.line, ye.col, ye.msg);
            return rc;
        }
    }
    apc.operators = ag->operators;
    int rc = rsre_approvals_create(&apc, &ag->approvals);
    if (rc) {
        return rc;
    }
    if (rsre_metrics_create(&ag->metrics)) {
        return -ENOMEM;
    }
    if ((rc = rsre_open_latency_init(&ag->open_latency, ag->metrics))) {
        return rc;
    }
    if (!ag->cfg.api_tokens_file[0]) {
        RSRE_LOG(RSRE_LOG_WARN, "aggregator", "no api_tokens_file: the admin API is off");
        return 0;
    }
    struct rsre_api_options o = {.listen = ag->cfg.api_listen,
                                 .tokens_file = ag->cfg.api_tokens_file,
                                 .tls_cert_file = ag->cfg.api_tls_cert[0] ? ag->cfg.api_tls_cert
                                                                          : NULL,
                                 .tls_key_file = ag->cfg.api_tls_key[0] ? ag->cfg.api_tls_key
                                                                        : NULL};
    if ((rc = rsre_api_create(ag->loop, ag->store, ag->metrics, &o, &ag->api))) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "admin API on %s: %s", ag->cfg.api_listen,
                 rsre_strerror(rc));
        ag->api = NULL;
        return rc;
    }
    struct rsre_api_callbacks cb = {.decide = api_decide,
                                    .agents = api_agents,
                                    .ready = api_ready,
                                    .rules_changed = api_rules_changed,
                                    .webhook = api_webhook,
                                    .ud = ag};
    rsre_api_set_callbacks(ag->api, &cb);
    RSRE_LOG(RSRE_LOG_INFO, "aggregator", "admin API on %s (port %d)", ag->cfg.api_listen,
             rsre_api_port(ag->api));
    return 0;
}

/* ---- lifecycle ---- */

/* The Kubernetes client and executor; without them Kubernetes actions fail (and escalate). */
static void start_kube(struct rsre_aggregator *ag) {
    struct rsre_kube_config kc = {0};
    char err[256] = "";
    int rc = rsre_kube_config_auto(&kc, ag->cfg.kube_api, ag->cfg.kubeconfig, NULL, err,
                                   sizeof(err));
    if (rc) {
        RSRE_LOG(RSRE_LOG_WARN, "aggregator", "Kubernetes API not configured (%s): %s",
                 rsre_strerror(rc), err);
        rsre_kube_config_clear(&kc);
        return;
    }
    struct rsre_kube_exec_config xc;
    rsre_kube_exec_config_defaults(&xc);
    if ((rc = rsre_http_create(ag->loop, &ag->http)) ||
        (rc = rsre_kube_create(ag->http, &kc, &ag->kube)) ||
        (rc = rsre_kube_exec_create(ag->kube, &xc, &ag->kexec, err, sizeof(err)))) {
        RSRE_LOG(RSRE_LOG_WARN, "aggregator", "Kubernetes executor not started: %s %s",
                 rsre_strerror(rc), err);
    }
    rsre_kube_config_clear(&kc);
    if (ag->kube && ag->cfg.observe) {
        rsre__wire_observe_start(ag->kube, ag->store, ag->engine, ag->cfg.observe_core_namespaces,
                                 ag->cfg.observe_core_label, ag->cfg.observe_nodes,
                                 &ag->observe);
    }
}

static void stop_kube(struct rsre_aggregator *ag) {
    rsre__wire_observe_stop(ag->observe); /* informers stop before their client */
    ag->observe = NULL;
    rsre_kube_exec_destroy(ag->kexec);
    ag->kexec = NULL;
    rsre_kube_destroy(ag->kube);
    ag->kube = NULL;
    rsre_http_destroy(ag->http);
    ag->http = NULL;
}

int rsre_aggregator_create(uv_loop_t *loop, const struct rsre_aggregator_config *cfg,
                           struct rsre_aggregator **out) {
    *out = NULL;
    struct rsre_aggregator *ag = calloc(1, sizeof(*ag));
    if (!ag) {
        return -ENOMEM;
    }
    ag->loop = loop;
    ag->cfg = *cfg;
    enum rsre_env env = RSRE_ENV_STAGING;
    rsre_env_parse(cfg->env, &env);
    int rc = rsre_store_open(cfg->data_dir, NULL, &ag->store);
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "cannot open the store in %s: %s", cfg->data_dir,
                 rsre_strerror(rc));
        free(ag);
        return rc;
    }
    char rules_err[700];
    if ((rc = rsre__wire_rules_build(ag->store, cfg->rules_dir, &ag->rules, rules_err,
                                     sizeof(rules_err)))) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "rules: %s", rules_err);
        goto fail;
    }
    struct rsre_incident_engine_config ecfg = {.env = env,
                                               .rules = ag->rules,
                                               .agent_silence_ms = cfg->agent_silence_ms,
                                               .action_deadline_ms = cfg->action_deadline_ms,
                                               .approval_ttl_ms = cfg->approval_ttl_ms,
                                               .cluster = cfg->cluster,
                                               .dry_run = cfg->dry_run};
    struct rsre_incident_engine_hooks hooks = {
        .execute = hook_execute, .notify = hook_notify, .arg = ag};
    if ((rc = rsre_incident_engine_create(ag->store, &ecfg, &hooks, &ag->engine))) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "incident engine: %s", rsre_strerror(rc));
        goto fail;
    }
    if ((rc = start_admin(ag))) {
        goto fail;
    }
    struct rsre__wire_notify_deps nd = {loop,          ag->store,       ag->engine,
                                        ag->approvals, ag->operators,   ag->metrics,
                                        cfg->notify_file};
    if ((rc = rsre__wire_notify_create(&nd, &ag->notify))) {
        goto fail;
    }
    char oci_err[300] = "";
    if ((rc = rsre__wire_oci_create(loop, cfg, &ag->oci, oci_err, sizeof(oci_err)))) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "OCI executor: %s", oci_err);
        goto fail;
    }
    if (!ag->oci) {
        RSRE_LOG(RSRE_LOG_WARN, "aggregator",
                 "OCI executor not configured: reboot_worker and replace_worker fail if approved");
    }
    if ((rc = rsre_grpc_loop_create(loop, &ag->grpc))) {
        goto fail;
    }
    start_kube(ag);
    const char *allow[8];
    for (size_t i = 0; i < cfg->nnode_actions; i++) {
        allow[i] = cfg->node_actions[i];
    }
    struct rsre_ingest_config icfg = {.listen_addr = cfg->listen,
                                      .tls_ca = cfg->tls_ca,
                                      .tls_cert = cfg->tls_cert,
                                      .tls_key = cfg->tls_key,
                                      .rate_per_sec = cfg->rate_per_sec,
                                      .rate_burst = cfg->rate_burst,
                                      .max_connections = cfg->max_connections,
                                      .group_ms = cfg->group_commit_ms,
                                      .group_max = cfg->group_commit_max,
                                      .config_generation = (uint64_t)now_ms(),
                                      .action_allowlist = allow,
                                      .n_action_allowlist = cfg->nnode_actions};
    struct rsre_ingest_consumer consumer = {.hello = c_hello,
                                            .batch = c_batch,
                                            .result = c_result,
                                            .committed = c_committed,
                                            .aborted = c_aborted,
                                            .arg = ag};
    if ((rc = rsre_ingest_create(loop, ag->grpc, ag->store, &icfg, &consumer, &ag->ingest))) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator", "cannot listen on %s: %s", cfg->listen,
                 rsre_strerror(rc));
        ag->ingest = NULL;
        *out = ag;
        return rc; /* partly started: the caller closes it */
    }
    uv_timer_init(loop, &ag->tick);
    uv_timer_init(loop, &ag->deferred_timer);
    ag->tick.data = ag->deferred_timer.data = ag;
    uv_timer_start(&ag->tick, on_tick, cfg->tick_ms, cfg->tick_ms);
    if ((rc = rsre__wire_probes_start(loop, cfg->probes_file, ag->store, ag->engine,
                                      &ag->probes))) {
        *out = ag;
        return rc; /* partly started: the caller closes it */
    }
    RSRE_LOG(RSRE_LOG_INFO, "aggregator", "started env=%s listen=%s port=%d store=%s rules=%zu",
             cfg->env, cfg->listen, rsre_ingest_port(ag->ingest), cfg->data_dir,
             rsre_ruleset_count(ag->rules));
    *out = ag;
    return 0;
fail:
    rsre__wire_oci_destroy(ag->oci);
    if (ag->api) {
        rsre_api_close(ag->api, NULL, NULL); /* nothing served yet: closes at the next turn */
    }
    rsre_open_latency_free(&ag->open_latency);
    rsre__wire_notify_close(ag->notify, NULL, NULL); /* its handles close on the loop */
    rsre_metrics_destroy(ag->metrics);
    rsre_approvals_destroy(ag->approvals);
    rsre_operators_destroy(ag->operators);
    rsre_incident_engine_destroy(ag->engine);
    rsre_ruleset_destroy(ag->rules);
    rsre_store_close(ag->store);
    free(ag);
    return rc ? rc : -EINVAL;
}

int rsre_aggregator_port(const struct rsre_aggregator *ag) {
    return ag->ingest ? rsre_ingest_port(ag->ingest) : -1;
}

static void finish(struct rsre_aggregator *ag) {
    if (--ag->pending > 0) {
        return;
    }
    void (*cb)(void *) = ag->closed;
    void *arg = ag->closed_arg;
    rsre_incident_engine_destroy(ag->engine);
    rsre_approvals_destroy(ag->approvals);
    rsre_operators_destroy(ag->operators);
    rsre_open_latency_free(&ag->open_latency);
    rsre_metrics_destroy(ag->metrics);
    rsre_ruleset_destroy(ag->rules);
    rsre_store_close(ag->store);
    free(ag);
    if (cb) {
        cb(arg);
    }
}

static void on_api_closed(void *ud) {
    struct rsre_aggregator *ag = ud;
    ag->api = NULL;
    finish(ag);
}

static void on_handle_closed(uv_handle_t *h) {
    finish(h->data);
}

static void on_grpc_closed(void *arg) {
    finish(arg);
}

static void on_notify_closed(void *arg) {
    finish(arg);
}

static void on_ingest_closed(void *arg) {
    struct rsre_aggregator *ag = arg;
    ag->ingest = NULL;
    ag->pending = 1; /* the gRPC bridge */
    if (ag->probes) {
        ag->pending++;
        rsre__wire_probes_close(ag->probes, on_notify_closed, ag); /* finish(ag) when done */
        ag->probes = NULL;
    }
    if (ag->notify) {
        ag->pending++;
        rsre__wire_notify_close(ag->notify, on_notify_closed, ag);
        ag->notify = NULL;
    }
    if (ag->api) {
        ag->pending++;
        rsre_api_close(ag->api, on_api_closed, ag);
    }
    if (ag->tick.loop) {
        ag->pending += 2;
        uv_close((uv_handle_t *)&ag->tick, on_handle_closed);
        uv_close((uv_handle_t *)&ag->deferred_timer, on_handle_closed);
    }
    rsre_grpc_loop_destroy(ag->grpc, on_grpc_closed, ag);
}

void rsre_aggregator_close(struct rsre_aggregator *ag, void (*closed)(void *), void *arg) {
    if (ag->closing) {
        return;
    }
    ag->closing = 1;
    ag->closed = closed;
    ag->closed_arg = arg;
    rsre__wire_oci_destroy(ag->oci); /* in-flight OCI runs are abandoned (record stays running) */
    ag->oci = NULL;
    stop_kube(ag); /* in-flight Kubernetes actions end now with -ECANCELED */
    if (ag->tick.loop) {
        uv_timer_stop(&ag->tick);
        uv_timer_stop(&ag->deferred_timer);
        if (ag->ndeferred) {
            in_txn(ag, record_failures, NULL);
            ag->ndeferred = 0;
        }
    }
    rsre_ingest_destroy(ag->ingest, on_ingest_closed, ag);
}
