#ifndef RSRE_INCIDENT_ENGINE_H
#define RSRE_INCIDENT_ENGINE_H

/*
 * The incident engine: signals to incidents to plans. It keeps the recent signal state per node
 * (mapped onto the taxonomy's signal catalogue), evaluates the rules on every change and on the
 * 60 s observation tick, opens one incident per (incident type, scope) fingerprint, recomputes
 * confidence and severity as evidence changes, moves incidents through the lifecycle, resolves
 * them when their exit criteria hold for the exit window, and passes every recommended action
 * through the policy engine: auto actions are queued for execution, approval-required ones get
 * an approval request, human-only ones are recorded as recommendations with their reason.
 *
 * Every state change is written in the caller's store transaction (with its audit record);
 * effects that leave the process (executing an action, notifying) are queued and released only
 * by rsre_incident_engine_committed() after that transaction committed, and dropped by
 * rsre_incident_engine_aborted(). One loop thread owns the engine.
 */

#include <stdint.h>

#include "engine/confidence.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "robot_sre/agent.pb-c.h"
#include "store/store.h"

struct rsre_incident_engine;

/* An action the engine decided to run now (verdict auto, or an approval that completed). */
struct rsre_planned_action {
    const char *action_record_id; /* store ActionRecord id */
    const char *incident_id;
    const struct rsre_action_def *action;
    const char *node;   /* node the action concerns ("" for cluster-scope) */
    const char *target; /* the action's target */
    int dry_run;
    int64_t deadline_unix_ms;
};

struct rsre_incident_engine_hooks {
    /* Called after commit for each queued action; the executor reports back with
     * rsre_incident_engine_action_result(). May be NULL (actions stay queued in the store). */
    void (*execute)(void *arg, const struct rsre_planned_action *pa);
    /* Called after commit when an incident opened, changed severity/state, or resolved. */
    void (*notify)(void *arg, const rsre_store_incident *inc, const char *what);
    void *arg;
};

struct rsre_incident_engine_config {
    enum rsre_env env;
    const struct rsre_ruleset *rules;     /* built-ins + operator rules; borrowed */
    int64_t agent_silence_ms;             /* an agent silent this long is evidence (default 180 s) */
    int64_t action_deadline_ms;           /* node-local action deadline (default 120 s) */
};

int rsre_incident_engine_create(rsre_store *store, const struct rsre_incident_engine_config *cfg,
                                const struct rsre_incident_engine_hooks *hooks,
                                struct rsre_incident_engine **out);
void rsre_incident_engine_destroy(struct rsre_incident_engine *e);

/* Applies one validated SignalBatch of `node` inside `txn`. */
int rsre_incident_engine_apply(struct rsre_incident_engine *e, rsre_store_txn *txn,
                               const char *node, const RobotSre__Agent__V1__SignalBatch *batch,
                               int64_t now_ms);
/* Records that `node`'s agent said Hello (boot id) — and, in tick, notices silence. */
int rsre_incident_engine_agent_seen(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                    const char *node, const char *boot_id, int64_t now_ms);
/* The observation tick: staleness, held durations, exit windows, expiries. */
int rsre_incident_engine_tick(struct rsre_incident_engine *e, rsre_store_txn *txn, int64_t now_ms);
/* An action finished (ActionResult from an agent, or a Kubernetes/OCI executor). */
int rsre_incident_engine_action_result(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                       const char *action_record_id, int ok, const char *message,
                                       uint64_t bytes_freed, uint32_t objects_removed,
                                       int64_t now_ms);

/* Releases (committed) or drops (aborted) the effects queued since the last call. */
void rsre_incident_engine_committed(struct rsre_incident_engine *e);
void rsre_incident_engine_aborted(struct rsre_incident_engine *e);

#endif
