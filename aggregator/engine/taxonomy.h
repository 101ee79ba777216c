#ifndef RSRE_TAXONOMY_H
#define RSRE_TAXONOMY_H

/*
 * The built-in taxonomy: domains, incident classes, the action catalogue, allowlists, the
 * never-auto-contain list, cooldown defaults and the signal catalogue — the spec's safety
 * contract as data (engine/taxonomy.yaml, embedded at build time, validated at load).
 *
 * A loaded taxonomy is immutable; every pointer into it is valid until rsre_taxonomy_destroy.
 * rsre_taxonomy_builtin() loads the embedded copy once and keeps it for the process.
 */

#include <stddef.h>
#include <stdint.h>

#include "engine/expr.h"

#define RSRE_MAX_ACTIONS 128
#define RSRE_MAX_INCIDENTS 64
#define RSRE_MAX_DOMAINS 32
#define RSRE_MAX_SIGNALS 256
#define RSRE_MAX_LIST 32 /* entries of any list field (signals, hypotheses, patterns...) */

enum rsre_action_class {
    RSRE_CLASS_OBSERVE,
    RSRE_CLASS_NOTIFY,
    RSRE_CLASS_CONTAIN,
    RSRE_CLASS_RECOVER,
    RSRE_CLASS_DISRUPTIVE,
    RSRE_CLASS_COUNT
};

enum rsre_env { RSRE_ENV_DEMO, RSRE_ENV_STAGING, RSRE_ENV_PRODUCTION, RSRE_ENV_COUNT };

enum rsre_severity { RSRE_SEV_INFO, RSRE_SEV_WARNING, RSRE_SEV_CRITICAL, RSRE_SEV_COUNT };

/* How an incident class binds an action (the class's three lists, plus overlay grants). */
enum rsre_binding {
    RSRE_BIND_NONE = 0,  /* not in the class's plan */
    RSRE_BIND_AUTO,      /* "Auto-Allowed Actions" */
    RSRE_BIND_ENV_AUTO,  /* auto only where the environment overlay grants it ("limited") */
    RSRE_BIND_APPROVAL,  /* "Approval-Required Actions" */
    RSRE_BIND_HUMAN,     /* "Human-Only Actions" */
};

struct rsre_strlist {
    const char *const *items;
    size_t n;
};

struct rsre_domain_def {
    const char *id, *display_name, *description;
    struct rsre_strlist covers;
};

struct rsre_action_def {
    unsigned index;       /* position in the catalogue */
    const char *id, *label, *description, *target_kind;
    const char *family;   /* allowlist family, or NULL when targets cannot be allowlisted */
    enum rsre_action_class cls;
    unsigned mutates_config : 1, helm : 1, oci : 1, human_only : 1, requires_allowlist : 1;
    unsigned auto_envs;   /* bit (1u << env): environments where a contain action may be auto */
};

enum rsre_cooldown_scope { RSRE_CD_INCIDENT, RSRE_CD_NODE, RSRE_CD_TARGET };

struct rsre_cooldown_def {
    unsigned class_mask;                     /* bit (1u << class) */
    uint8_t actions[RSRE_MAX_ACTIONS];       /* 1 where the action is named */
    long long seconds;
    enum rsre_cooldown_scope scope;
    const char *text;
};

struct rsre_severity_rule {
    enum rsre_severity severity;
    const char *text;           /* the spec's words */
    const char *when;           /* expression source */
    struct rsre_expr *expr;     /* compiled against the signal catalogue */
};

struct rsre_incident_def {
    unsigned index;
    const char *id, *display_name, *description;
    const struct rsre_domain_def *domain;
    enum rsre_severity default_severity;
    struct rsre_strlist primary_signals, secondary_signals, hypotheses, exit_criteria;
    struct rsre_severity_rule severity_rules[RSRE_MAX_LIST];
    size_t nseverity_rules;
    uint8_t binding[RSRE_MAX_ACTIONS]; /* enum rsre_binding per action index */
    uint8_t plan[RSRE_MAX_ACTIONS];    /* bound action indexes in the order the class lists them */
    size_t nplan;
    struct rsre_cooldown_def cooldowns[RSRE_MAX_LIST];
    size_t ncooldowns;
    const char *exit_expression;
    struct rsre_expr *exit_expr;
    long long exit_window; /* seconds the exit expression must hold */
};

struct rsre_allow_family {
    const char *family;
    struct rsre_strlist patterns; /* fnmatch patterns over the target */
};

struct rsre_never_def {
    const char *id, *description;
    struct rsre_strlist match;        /* target patterns */
    struct rsre_strlist target_kinds; /* target kinds */
    uint8_t actions[RSRE_MAX_ACTIONS];
};

struct rsre_signal_def {
    const char *name, *unit, *description;
};

struct rsre_cooldown_defaults {
    long long observation_polling, duplicate_suppression, same_action_retry, disruptive_retry;
};

struct rsre_taxonomy {
    long long version;
    struct rsre_cooldown_defaults cooldown;
    const char *env_description[RSRE_ENV_COUNT];
    struct rsre_domain_def domains[RSRE_MAX_DOMAINS];
    size_t ndomains;
    struct rsre_action_def actions[RSRE_MAX_ACTIONS];
    size_t nactions;
    struct rsre_incident_def incidents[RSRE_MAX_INCIDENTS];
    size_t nincidents;
    struct rsre_allow_family allow[RSRE_MAX_LIST];
    size_t nallow;
    struct rsre_never_def never[RSRE_MAX_LIST];
    size_t nnever;
    struct rsre_signal_def signals[RSRE_MAX_SIGNALS];
    size_t nsignals;
    void *_arena; /* owns every string and list above */
    void *_doc;   /* the parsed YAML document the strings point into */
};

struct rsre_yerr;

/*
 * Loads and validates a taxonomy from YAML text. Validation covers: unique ids; every
 * reference (domain, action, family, env) resolves; exactly the spec's 5 action classes and
 * 3 environments; human-only actions bound only as human-only; auto bindings only to observe,
 * notify or contain actions; contain actions that require an allowlist name a family; every
 * expression compiles against the signal catalogue. On error returns RSRE_EPARSE /
 * RSRE_EINVALID / RSRE_ELIMIT and fills *err (line, column, message).
 */
int rsre_taxonomy_load(const char *yaml, size_t len, struct rsre_taxonomy **out,
                       struct rsre_yerr *err);
void rsre_taxonomy_destroy(struct rsre_taxonomy *t);

/* The embedded built-in taxonomy, loaded on first use; aborts the process if the embedded
 * copy fails validation (a build defect, caught by the unit tests). Never NULL. */
const struct rsre_taxonomy *rsre_taxonomy_builtin(void);

/* Look-ups by id; NULL when unknown. */
const struct rsre_action_def *rsre_taxonomy_action(const struct rsre_taxonomy *t, const char *id);
const struct rsre_incident_def *rsre_taxonomy_incident(const struct rsre_taxonomy *t,
                                                       const char *id);
const struct rsre_domain_def *rsre_taxonomy_domain(const struct rsre_taxonomy *t, const char *id);
/* Signal slot for the expression language (rsre_expr_resolve_cb), -1 when unknown. */
int rsre_taxonomy_signal_slot(void *taxonomy, const char *name, size_t len);
/* Allowlist family by name, NULL when unknown. */
const struct rsre_allow_family *rsre_taxonomy_family(const struct rsre_taxonomy *t,
                                                     const char *family);

/* Names <-> enums. Parsers return 0 or RSRE_ENOTFOUND. */
const char *rsre_class_name(enum rsre_action_class c);
int rsre_class_parse(const char *s, enum rsre_action_class *out);
const char *rsre_env_name(enum rsre_env e);
int rsre_env_parse(const char *s, enum rsre_env *out);
const char *rsre_severity_name(enum rsre_severity s);
int rsre_severity_parse(const char *s, enum rsre_severity *out);

/* Whether `target` matches an fnmatch pattern list: the whole target, or for "ns/name"
 * targets the name part, is matched against each pattern. */
int rsre_target_matches(const struct rsre_strlist *patterns, const char *target);

#endif
