#ifndef RSRE_WIRE_PROBES_H
#define RSRE_WIRE_PROBES_H

/*
 * The dependency probes (probes/probes.h) wired to the incident engine: the probes file named
 * by the daemon's `probes_file` is loaded at start (a broken file stops the daemon with its
 * line:col error, like a broken rules file), the scheduler runs each probe on the loop's
 * thread pool, and every status becomes rsre_incident_engine_observe() calls (scope, source
 * "probe:<name>", values, the error text as evidence), each in its own store transaction whose
 * effects are released after the commit. An observation the engine refuses is logged and
 * skipped. docs/probes.md is the operator's reference.
 */

#include <stdint.h>
#include <uv.h>

#include "incidents/engine.h"
#include "store/store.h"

struct rsre__wire_probes;
struct rsre_probe_def;

/* The freshness bound each observation of probe `def` carries (rsre_observation.fresh_ms):
 * 3 x (interval + timeout), at least 60 s. */
int64_t rsre__wire_probe_fresh_ms(const struct rsre_probe_def *def);

/* Loads `probes_file` and starts its probes (store and engine borrowed; they must outlive the
 * wiring). An empty path: no probes, *out = NULL, returns 0. Errors are logged. */
int rsre__wire_probes_start(uv_loop_t *loop, const char *probes_file, rsre_store *store,
                            struct rsre_incident_engine *engine, struct rsre__wire_probes **out);

/* Stops the probes; no observation reaches the engine after this call. `closed(arg)` runs on
 * the loop once runs in flight have finished (bounded by their timeouts) and memory is
 * released. NULL: `closed` is not called. */
void rsre__wire_probes_close(struct rsre__wire_probes *w, void (*closed)(void *), void *arg);

#endif
