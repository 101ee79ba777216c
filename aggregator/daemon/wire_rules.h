#ifndef RSRE_WIRE_RULES_H
#define RSRE_WIRE_RULES_H

/*
 * The daemon's rule set: the built-in rules of the taxonomy, then the latest stored version of
 * every operator rule (created or edited over the admin API, docs/api.md "Rules"), then the
 * files of rules_dir. Rule ids are one namespace: a file rule with the id of a stored rule is
 * refused (edit the stored one over the API, or remove the file). A stored rule that does not
 * load any more is skipped with an error log (the daemon still starts, so it can be fixed over
 * the API); a rules_dir file that does not load is an error.
 */

#include <stddef.h>
#include <stdint.h>

#include "engine/rules.h"
#include "incidents/engine.h"
#include "store/store.h"

/* Builds the set into *out (caller destroys). Returns 0 or an error with `err` filled (the
 * failing rule and the loader's message). */
int rsre__wire_rules_build(rsre_store *store, const char *rules_dir, struct rsre_ruleset **out,
                           char *err, size_t cap);

/*
 * After a committed rule change: rebuilds the set and hands it to the engine
 * (rsre_incident_engine_set_rules). On success *current (the set the engine had) is destroyed
 * and replaced; on failure the engine keeps its rules, the failure is logged and audited
 * ("rules reload failed"), and the error is returned. Call between transactions.
 */
int rsre__wire_rules_reload(rsre_store *store, const char *rules_dir,
                            struct rsre_incident_engine *engine, struct rsre_ruleset **current,
                            const char *rule_id, uint32_t version);

#endif
