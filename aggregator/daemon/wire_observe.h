#ifndef RSRE_WIRE_OBSERVE_H
#define RSRE_WIRE_OBSERVE_H

/*
 * The Kubernetes observers (observe/observe.h) wired to the incident engine: every changed
 * aggregate becomes one rsre_incident_engine_observe() call (scope, source "observer:...",
 * values, detail as evidence), all of one recomputation in one store transaction whose effects
 * are released after the commit. An observation the engine refuses (RSRE_EINVALID: e.g. a
 * scope longer than the engine's bound; RSRE_ELIMIT: the engine holds as many scopes as it
 * can) is logged and skipped, the others still apply. When the transaction fails (a store
 * error), the emission is refused: the observers keep what they had sent before and send the
 * difference again after their retry delay.
 *
 * Nodes (when enabled): each change of a Node's conditions, taints or unschedulable flag (and
 * its first list) is applied as an external NodeConditions signal
 * (rsre_incident_engine_apply_external), in its own transaction: the control plane's view,
 * which the engine keeps while the node's agent is silent. A failed transaction is logged; the
 * node's next change sends it again. Off by default: the engine then plans node-local actions
 * from the control plane's view even before the node's agent connected, and those fail (and
 * escalate) until it does.
 *
 * Freshness: the observers send on change only, so the daemon calls
 * rsre__wire_observe_heartbeat at every observation tick, which re-asserts each observer source
 * (rsre_incident_engine_observe_refresh) whose informers are synced with a working watch, and
 * only while the last emission was recorded. A source whose watch is down is not re-asserted
 * and its values go stale (unknown) in the engine (docs/incidents.md "Staleness of
 * observations").
 *
 * Aggregates the engine has no observation slot for (node/<name> event counts) stay in the
 * observers and are not sent.
 */

#include <stdint.h>

#include "common/kube.h"
#include "incidents/engine.h"
#include "observe/observe.h"
#include "store/store.h"

struct rsre__wire_observe;

/* Starts the observers on `kube` (borrowed, like store and engine). core_namespaces and
 * core_label as in rsre_observe_config ("" = none); `nodes` non-zero sends node conditions
 * (see above). Returns 0 or an error (logged). */
int rsre__wire_observe_start(struct rsre_kube *kube, rsre_store *store,
                             struct rsre_incident_engine *engine, const char *core_namespaces,
                             const char *core_label, int nodes, struct rsre__wire_observe **out);

/* The observers (tests, the admin API), or NULL. */
struct rsre_observe *rsre__wire_observe_observers(struct rsre__wire_observe *w);

/*
 * The heartbeat, inside the caller's transaction (the daemon's tick, before the engine's tick):
 * re-asserts for `fresh_ms` every observer source whose informers (observer:pods: pods;
 * observer:helm: Helm release Secrets, deployments, statefulsets, daemonsets; observer:jobs:
 * jobs, pods; observer:ingresses: ingresses, services) have listed and whose watch works (the
 * last request succeeded, or the watch delivered an event or bookmark since the previous
 * heartbeat), unless the last emission was refused. Later observations carry `fresh_ms` too.
 * Returns the number of sources re-asserted, or an engine error (abort the transaction).
 * NULL w: 0.
 */
int rsre__wire_observe_heartbeat(struct rsre__wire_observe *w, rsre_store_txn *txn,
                                 int64_t fresh_ms, int64_t now_ms);

/* Stops the observers; memory is released as the loop closes their handles. NULL: no-op. */
void rsre__wire_observe_stop(struct rsre__wire_observe *w);

#endif
