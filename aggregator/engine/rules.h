#ifndef RSRE_RULES_H
#define RSRE_RULES_H

/*
 * Rules in the spec's schema (docs/rules.md): id, name, enabled, domain, incident_type,
 * environment_scope, signal_selector, threshold_expression, severity, notification_policy,
 * allowed_action_profile, cooldown_seconds, suppression_schedule, owner, version.
 *
 * Built-in rules come from the taxonomy (one per incident class, id "builtin.<class>");
 * operator rules come from YAML and may change only what the spec's "Operator-Defined Rule
 * Boundaries" allow: thresholds, severity escalation, channel routing, cooldowns (down to the
 * floors in policy.h), enable/disable per environment, allowlisted resources inside
 * pre-approved action families, and stricter approval requirements. Anything else is
 * rejected with an error naming the field and the boundary.
 *
 * A rule set is immutable once built, except by adding files; every pointer into it is valid
 * until rsre_ruleset_destroy.
 */

#include <stddef.h>

#include "engine/expr.h"
#include "engine/taxonomy.h"

#define RSRE_RULES_MAX 1024            /* rules in one set */
#define RSRE_RULE_MAX_PROFILE 32       /* entries in allowed_action_profile */
#define RSRE_RULE_MAX_ESCALATIONS 8    /* severity escalation conditions */
#define RSRE_RULE_MAX_WINDOWS 8        /* suppression windows */
#define RSRE_RULE_MAX_TARGETS 32       /* allowlisted targets per profile entry */
#define RSRE_RULE_MAX_TARGET_LEN 253   /* bytes in one target ("namespace/name") */
#define RSRE_RULE_MAX_FILE (256u << 10) /* bytes in one rule file */

enum rsre_rule_mode {
    RSRE_MODE_UNSET = 0,
    RSRE_MODE_AUTO,     /* may run without approval (contain actions of the class only) */
    RSRE_MODE_APPROVAL, /* needs approval */
    RSRE_MODE_HUMAN,    /* only a human may do it */
    RSRE_MODE_DENY,     /* never, not even with approval */
};

struct rsre_action_profile {
    const struct rsre_action_def *action;
    enum rsre_rule_mode mode;
    struct rsre_strlist targets; /* allowlist additions inside the action's family */
    unsigned quorum;             /* approvals required (0 = unchanged) */
};

/* A weekly window, UTC: days bit 0 = Monday; minutes since midnight; to < from wraps. */
struct rsre_window {
    unsigned days;
    int from_min, to_min;
};

struct rsre_notification_policy {
    struct rsre_strlist channels; /* telegram, whatsapp, inapp */
    const char *route;            /* routing key / chat group, may be NULL */
    long long dedupe_seconds;     /* duplicate suppression (default 900) */
};

struct rsre_rule {
    const char *id, *name, *domain, *owner, *origin; /* origin: file it came from */
    int enabled, builtin, line;
    const struct rsre_incident_def *incident;
    unsigned env_mask; /* bit (1u << env) */
    const char *signal_selector;
    const char *threshold_expression;
    struct rsre_expr *threshold;
    enum rsre_severity severity;
    struct rsre_severity_rule escalations[RSRE_RULE_MAX_ESCALATIONS];
    size_t nescalations;
    struct rsre_notification_policy notification;
    struct rsre_action_profile profile[RSRE_RULE_MAX_PROFILE];
    size_t nprofile;
    long long cooldown_seconds; /* -1 = not set */
    struct rsre_window suppress[RSRE_RULE_MAX_WINDOWS];
    size_t nsuppress;
    long long version;
};

struct rsre_rule_error {
    char origin[128]; /* file name or "<input>" */
    int line, col;    /* 1-based; 0 when not tied to a position */
    char field[64];   /* the offending field, e.g. "allowed_action_profile[0].mode" */
    char msg[320];
};

struct rsre_ruleset;

/* Creates a set holding the built-in rules of `t` (NULL = built-in taxonomy). */
int rsre_ruleset_create(const struct rsre_taxonomy *t, struct rsre_ruleset **out);
void rsre_ruleset_destroy(struct rsre_ruleset *rs); /* NULL is a no-op */

/*
 * Parses operator rules from YAML (a single rule mapping, or a mapping with `rules:` list) and
 * adds them, all or none. Returns 0, or RSRE_EPARSE (YAML or expression syntax),
 * RSRE_EINVALID (schema), RSRE_EBOUNDARY (crosses a safety boundary), RSRE_ELIMIT, RSRE_EEXIST
 * (duplicate id) with *err filled. On failure the set is unchanged.
 */
int rsre_ruleset_add_yaml(struct rsre_ruleset *rs, const char *origin, const char *yaml,
                          size_t len, struct rsre_rule_error *err);
/* Reads one file (bounded by RSRE_RULE_MAX_FILE) and adds it as above. */
int rsre_ruleset_add_file(struct rsre_ruleset *rs, const char *path, struct rsre_rule_error *err);
/* Adds every *.yaml / *.yml file of a directory in name order; stops at the first error. */
int rsre_ruleset_add_dir(struct rsre_ruleset *rs, const char *dir, struct rsre_rule_error *err);

size_t rsre_ruleset_count(const struct rsre_ruleset *rs);
const struct rsre_rule *rsre_ruleset_get(const struct rsre_ruleset *rs, size_t i);
const struct rsre_rule *rsre_ruleset_find(const struct rsre_ruleset *rs, const char *id);
const struct rsre_taxonomy *rsre_ruleset_taxonomy(const struct rsre_ruleset *rs);

/*
 * The enabled operator rules that apply to (incident, env), in load order: *out points to an
 * internal array of *n rule pointers valid until the set changes. Used by the policy engine.
 */
void rsre_ruleset_applicable(const struct rsre_ruleset *rs, const struct rsre_incident_def *inc,
                             enum rsre_env env, const struct rsre_rule *const **out, size_t *n);

/* Whether a rule's suppression schedule covers the UTC time `t` (seconds since the epoch). */
int rsre_rule_suppressed_at(const struct rsre_rule *r, long long t);

const char *rsre_mode_name(enum rsre_rule_mode m);

/* Formats an error as "origin:line:col: field: message". */
void rsre_rule_error_format(const struct rsre_rule_error *e, char *buf, size_t cap);

#endif
