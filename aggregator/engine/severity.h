#ifndef RSRE_SEVERITY_H
#define RSRE_SEVERITY_H

/*
 * Severity of an incident from its class's severity rules (spec "Severity Rules"), plus the
 * escalation conditions of operator rules: the highest severity whose condition holds. When no
 * condition holds the class's default severity applies (the incident exists because its entry
 * threshold fired). Pure; the expressions were compiled against the signal catalogue, so
 * `env->scalars` is indexed by catalogue slot (rsre_taxonomy_signal_slot).
 */

#include "engine/expr.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"

struct rsre_severity_why {
    enum rsre_severity severity;
    const char *text;  /* the rule's words (spec text or escalation text); NULL for the default */
    const char *rule;  /* "builtin" or the operator rule id */
};

/*
 * Evaluates the class's severity rules and the escalations of every enabled operator rule for
 * (incident, env) in `rules` (may be NULL). Expressions with `for` clauses are evaluated without
 * state (the clause never holds); severity conditions use held-duration signals instead
 * (e.g. node.disk_pressure_held > 10m).
 */
enum rsre_severity rsre_severity_eval(const struct rsre_incident_def *inc,
                                      const struct rsre_ruleset *rules, enum rsre_env envmode,
                                      const struct rsre_expr_env *env,
                                      struct rsre_severity_why *why);

#endif
