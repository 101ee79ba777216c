#include "engine/severity.h"

/* Keeps the highest severity; among equals, the first condition that named it. */
static void consider(struct rsre_severity_why *best, enum rsre_severity s, const char *text,
                     const char *rule) {
    if (s > best->severity || (s == best->severity && !best->text)) {
        best->severity = s;
        best->text = text;
        best->rule = rule;
    }
}

enum rsre_severity rsre_severity_eval(const struct rsre_incident_def *inc,
                                      const struct rsre_ruleset *rules, enum rsre_env envmode,
                                      const struct rsre_expr_env *env,
                                      struct rsre_severity_why *why) {
    struct rsre_severity_why best = {inc->default_severity, NULL, "builtin"};
    for (size_t i = 0; i < inc->nseverity_rules; i++) {
        const struct rsre_severity_rule *r = &inc->severity_rules[i];
        if (r->expr && rsre_expr_true(r->expr, env, NULL)) {
            consider(&best, r->severity, r->text, "builtin");
        }
    }
    const struct rsre_rule *const *applicable = NULL;
    size_t n = 0;
    if (rules) {
        rsre_ruleset_applicable(rules, inc, envmode, &applicable, &n);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < applicable[i]->nescalations; k++) {
            const struct rsre_severity_rule *r = &applicable[i]->escalations[k];
            if (r->expr && rsre_expr_true(r->expr, env, NULL)) {
                consider(&best, r->severity, r->text, applicable[i]->id);
            }
        }
    }
    if (why) {
        *why = best;
    }
    return best.severity;
}
