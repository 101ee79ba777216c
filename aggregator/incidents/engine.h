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
 * docs/incidents.md describes the signal map, evidence and confidence, fingerprints, lifecycle
 * use, exit windows, duplicate suppression, plans and the approval prompt.
 *
 * Every state change is written in the caller's store transaction (with its audit record);
 * effects that leave the process (executing an action, notifying) are queued and released only
 * by rsre_incident_engine_committed() after that transaction committed, and dropped by
 * rsre_incident_engine_aborted(), which also rolls the engine's in-memory state back to where
 * it was before the transaction. After every transaction in which the engine was used the
 * caller calls exactly one of the two. One loop thread owns the engine.
 *
 * The store is the truth: incidents, evidence, action records, approvals, cooldowns and the
 * audit log live there, and an engine created on an existing store picks its incidents up
 * again; an action that ran (its cooldown record exists) is not run again inside its cooldown
 * by this or any later engine. Signal state is in memory only and rebuilt from what the agents
 * send next.
 *
 * Errors: 0, a negative errno (-EINVAL for NULL arguments, -ENOMEM), RSRE_EINVALID (a node name
 * that is not a DNS-1123 subdomain), RSRE_ELIMIT (too many nodes), RSRE_ENOTFOUND (unknown
 * action record or approval), or a store error; after an error the caller aborts the
 * transaction (and calls rsre_incident_engine_aborted()).
 */

#include <stdint.h>

#include "engine/confidence.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "robot_sre/agent.pb-c.h"
#include "store/store.h"

struct rsre_incident_engine;

/* An action the engine decided to run now (verdict auto, or an approval that completed).
 * Every pointer is valid only during the execute callback. */
struct rsre_planned_action {
    const char *action_record_id; /* store ActionRecord id; use it as the request id */
    const char *incident_id;
    const char *approval_id; /* the approval that allowed it, NULL for auto actions */
    const struct rsre_action_def *action;
    const char *node;   /* node the action concerns ("" for cluster-scope incidents) */
    const char *target; /* the policy target (docs/incidents.md "Targets"); for
                           delete_finished_pods "*" = every namespace (on `node` if set) */
    int dry_run;
    int64_t deadline_unix_ms;
};

struct rsre_incident_engine_hooks {
    /* Called after commit for each queued action; the executor reports back with
     * rsre_incident_engine_action_result(). May be NULL (actions stay queued in the store). */
    void (*execute)(void *arg, const struct rsre_planned_action *pa);
    /* Called after commit when an incident opened, reopened, changed severity/state, or
     * resolved (`what`: "opened", "reopened", "severity", "state", "resolved"); at most once
     * per incident per transaction. `inc` is borrowed for the call. May be NULL. */
    void (*notify)(void *arg, const rsre_store_incident *inc, const char *what);
    void *arg;
};

struct rsre_incident_engine_config {
    enum rsre_env env;
    const struct rsre_ruleset *rules; /* built-ins + operator rules; borrowed, must not change
                                         until replaced by rsre_incident_engine_set_rules;
                                         NULL = built-in rules only */
    int64_t agent_silence_ms;         /* an agent silent this long is evidence (default 180 s) */
    int64_t observation_fresh_ms;     /* how long an observation's values count when it gives no
                                         fresh_ms (default 180 s: three missed 60 s ticks) */
    int64_t action_deadline_ms;       /* action deadline after release (default 120 s) */
    int64_t approval_ttl_ms;          /* approval requests expire after this (default 10 min) */
    const char *cluster;              /* Incident.cluster (copied); NULL = "" */
    int dry_run;                      /* every planned action is a dry run */
};

/* Creates an engine on `store` (borrowed; must outlive the engine) and loads the incidents the
 * store holds for the classes the engine evaluates. `hooks` may be NULL. */
int rsre_incident_engine_create(rsre_store *store, const struct rsre_incident_engine_config *cfg,
                                const struct rsre_incident_engine_hooks *hooks,
                                struct rsre_incident_engine **out);
/* Drops queued effects and frees the engine. NULL is a no-op. */
void rsre_incident_engine_destroy(struct rsre_incident_engine *e);

/*
 * Applies one validated SignalBatch that `node`'s agent sent, inside `txn`, and evaluates the
 * rules it may affect. Counts as the agent being alive at now_ms. Signals of unknown kinds,
 * roles or statuses, and implausible values, are skipped; a signal older than the value held
 * for its slot (a late resend) changes nothing.
 */
int rsre_incident_engine_apply(struct rsre_incident_engine *e, rsre_store_txn *txn,
                               const char *node, const RobotSre__Agent__V1__SignalBatch *batch,
                               int64_t now_ms);
/*
 * Like rsre_incident_engine_apply, for signals about `node` observed by someone other than its
 * agent (the aggregator's own Kubernetes watch): they do not count as the agent being alive,
 * and their slots stay valid while the agent is silent (so a silent agent's node shows the
 * Ready condition the control plane reports rather than the inferred Unknown).
 */
int rsre_incident_engine_apply_external(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                        const char *node,
                                        const RobotSre__Agent__V1__SignalBatch *batch,
                                        int64_t now_ms);
/* Records that `node`'s agent said Hello (boot id, may be NULL) — liveness without signals. */
int rsre_incident_engine_agent_seen(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                    const char *node, const char *boot_id, int64_t now_ms);
/* The observation tick (every 60 s): staleness (silent agents, observation sources past their
 * freshness bound), held durations, repeated checks, exit windows, plans of open incidents
 * (cooldowns that ended), approval expiries, expired cooldowns. */
int rsre_incident_engine_tick(struct rsre_incident_engine *e, rsre_store_txn *txn, int64_t now_ms);
/*
 * An action finished (ActionResult from an agent, or a Kubernetes/OCI executor): the
 * ActionRecord gets its outcome, the incident's executed_actions the record id, and the
 * lifecycle moves (contain ok -> contained, recover/disruptive ok -> recovering, a failed
 * contain/recover/disruptive action -> escalated). A result for a record that already has one
 * changes nothing and returns 0. RSRE_ENOTFOUND for an unknown record.
 */
int rsre_incident_engine_action_result(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                       const char *action_record_id, int ok, const char *message,
                                       uint64_t bytes_freed, uint32_t objects_removed,
                                       int64_t now_ms);
/*
 * The approvals module decided approval `approval_id` (its state in the store is APPROVED,
 * DENIED, EXPIRED or CANCELLED). For APPROVED the engine re-checks everything before releasing the
 * action: the incident is still open, the approval has not expired, it carries `quorum` distinct
 * approve votes of operators other than the requester, and the policy (current confidence, rules,
 * cooldown) still allows the action with approval; then it queues the action, sets its cooldown
 * and moves the incident to recovering for recover/disruptive actions. Anything else cancels
 * the approval and its ActionRecord with the reason. DENIED marks the ActionRecord denied,
 * CANCELLED cancelled. EXPIRED (the approvals module's expiry, or the engine's own at the tick)
 * expires the ActionRecord and escalates the incident; call it once per expired approval.
 * PENDING changes nothing. RSRE_ENOTFOUND for an unknown approval or ActionRecord.
 */
int rsre_incident_engine_approval_decided(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                          const char *approval_id, int64_t now_ms);

/*
 * A cluster-level observation made by the aggregator itself — a dependency probe result
 * (aggregator/probes), a Kubernetes observer aggregate (aggregator/observe), an operator
 * channel's delivery state (aggregator/notify). It sets catalogue signals (taxonomy.yaml
 * `signals`, e.g. "dep.failing", "pull.failing_workloads", "release.drifted", "chat.channels_down")
 * of one resource scope, as seen by one source, and evaluates the incident classes that read
 * them. docs/incidents.md "Feeding the engine" lists the signals, scopes and sources.
 *
 * scope   names the resource; one incident per (class, scope): "dependency/redis",
 *         "workload/prod/api", "registry/ghcr.io", "release/prod/api", "route/app.example/healthz",
 *         "identity/ldap", "database/main", "service/prod/api", "channels". "cluster" is the
 *         cluster itself and takes only jobs.* signals (background_job_buildup); jobs.* are
 *         refused elsewhere. 1..253 printable ASCII bytes, no spaces, not "node=...".
 * source  names the observer, 1..63 printable ASCII bytes: "probe:<name>" (the aggregator's
 *         own check: a failure is a direct error from the component), "observer:<name>" (a
 *         Kubernetes observer: a strong signal), "notify:<channel>" (delivery results), anything
 *         else counts as a weak report. Each source keeps its own values for the scope (at most
 *         8 sources per scope; a source silent for an hour may be replaced, else RSRE_ELIMIT);
 *         the scope's value of a signal is the worst over its sources. Several sources
 *         corroborate each other; one source's repeated observations count as repeated checks.
 * detail  the evidence text kept with this source's values (an error message), may be NULL
 *         (clears the previous text); longer than 512 bytes is truncated, longer than 8 KiB is
 *         RSRE_EINVALID; control characters become spaces, invalid UTF-8 bytes '?'.
 * values  1..32 (signal, value) pairs; a signal not given keeps this source's last value. Report
 *         recovery explicitly (e.g. dep.failing 0): a value is never dropped, it only goes stale.
 * fresh_ms how long this source's values (all of them, at this scope) count after this
 *         observation: 0 = the config's observation_fresh_ms, else 1 s..7 days (RSRE_EINVALID
 *         outside). A periodic reporter gives a few of its intervals (probes: 3 x interval +
 *         timeout); a change-only reporter re-asserts with rsre_incident_engine_observe_refresh
 *         or declares a long bound. Once the bound passes without another observation or
 *         refresh the source's values are stale: unknown, exactly like a silent agent's
 *         (docs/incidents.md "Staleness of observations"). They neither support nor refute
 *         anything: no evidence item, no confidence, no threshold, and no exit criteria (a
 *         stale value is not read as the healthy 0 a never-reported signal is). An open
 *         incident whose evidence is all stale drops to low confidence and says so in its
 *         summary; it stays open until a fresh observation shows the exit criteria.
 *
 * Held durations (ldap.failing_held, http.error_ratio_held) and incidents.active are derived by
 * the engine and refused from callers; http.error_ratio_slope is derived from the source's
 * consecutive http.error_ratio samples unless given. Unknown or engine-derived signal, the same
 * signal twice, a value outside its unit's range (counts: non-negative integers; bools: 0/1;
 * ratios: 0..1; slopes: -1..1), NaN/inf, bad scope/source, oversized detail: RSRE_EINVALID and
 * nothing changes. -EINVAL for NULL e/txn/obs.
 */
struct rsre_observation_value {
    const char *signal;
    double value;
};
struct rsre_observation {
    const char *scope;
    const char *source;
    const char *detail;
    const struct rsre_observation_value *values;
    size_t nvalues;
    int64_t fresh_ms;
};
int rsre_incident_engine_observe(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                 const struct rsre_observation *obs, int64_t now_ms);

/*
 * A change-only reporter's heartbeat: `source` still stands by every value it last gave, at
 * every scope, for fresh_ms from now_ms (0 = the config's observation_fresh_ms; same range as
 * rsre_observation.fresh_ms). Call it only while the reporter really knows its state is current
 * (an observer whose watch is up and synced), typically every 60 s with a bound of a few
 * minutes. A source that had gone stale counts again (its repeated-check streak restarts from
 * its next observation). Scopes where the source never reported are not touched; a source the
 * engine does not know is not an error. RSRE_EINVALID for a bad source or bound, -EINVAL for
 * NULL e/txn/source. Evaluates the scopes whose values came back.
 */
int rsre_incident_engine_observe_refresh(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                         const char *source, int64_t fresh_ms, int64_t now_ms);

/*
 * Replaces the operator rules (built-ins + operator rules) after a rule change; open incidents
 * are re-evaluated under the new rules at the next evaluation (observation, batch or tick).
 * Call it between transactions (-EBUSY inside one). `rules` is borrowed like the config's and
 * must come from the same taxonomy (RSRE_EINVALID otherwise); NULL = built-in rules only.
 * All or nothing: on error the engine keeps the previous rules. On success the engine holds no
 * pointer into the previous ruleset, so the caller (who owns every ruleset it passes) may
 * destroy the previous one right after this returns, and must keep `rules` alive until the
 * engine is destroyed or the next successful call. `for D` clauses of threshold rules restart
 * counting their durations.
 */
int rsre_incident_engine_set_rules(struct rsre_incident_engine *e,
                                   const struct rsre_ruleset *rules);

/* Releases (committed) or drops and rolls back (aborted) what happened since the last call. */
void rsre_incident_engine_committed(struct rsre_incident_engine *e);
void rsre_incident_engine_aborted(struct rsre_incident_engine *e);

#endif
