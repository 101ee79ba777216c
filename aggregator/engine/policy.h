#ifndef RSRE_POLICY_H
#define RSRE_POLICY_H

/*
 * The policy decision: for (incident class, action, environment, confidence, target, operator
 * rules, cooldown state) -> auto / approval-required / human-only / denied, always with the
 * reasons. Pure function, no I/O, no allocation; safe to call from any thread.
 *
 * Resolution order (spec "Policy Resolution Order"), each layer adding reasons:
 *   1. built-in taxonomy    the class's auto / approval / human-only lists (not listed: denied)
 *   2. built-in defaults    the spec's approval policy by action class: observe and notify auto;
 *                           contain auto on allowlisted targets; recover, disruptive, config
 *                           mutation, Helm and OCI operations need approval; human-only stays
 *   3. environment overlay  contain actions auto only in the environments their catalogue
 *                           entry names; quorum 2 for disruptive actions in production
 *   4. operator override    rule set: tighten any action, allowlist targets inside a family,
 *                           auto for a contain action of the class, cooldown, quorum (raise)
 *   5. hard constraints     always win: human-only is never executable; auto needs high
 *                           confidence, an auto-allowed family (observe/notify/contain, no
 *                           config/Helm/OCI), an allowlisted target, a target outside the
 *                           never-auto-contain list, and no active cooldown; in production
 *                           only actions the catalogue marks safe there (auto_envs) run alone
 */

#include <stdint.h>

#include "engine/confidence.h"
#include "engine/taxonomy.h"

struct rsre_ruleset; /* engine/rules.h; NULL means no operator rules */

enum rsre_verdict {
    RSRE_VERDICT_AUTO,
    RSRE_VERDICT_APPROVAL,
    RSRE_VERDICT_HUMAN_ONLY,
    RSRE_VERDICT_DENIED,
    RSRE_VERDICT_COUNT
};

enum rsre_policy_layer {
    RSRE_LAYER_TAXONOMY = 1,
    RSRE_LAYER_DEFAULTS,
    RSRE_LAYER_ENVIRONMENT,
    RSRE_LAYER_OPERATOR,
    RSRE_LAYER_HARD,
};

/* Reason codes; rsre_policy_reason_text renders them with their arguments. */
enum rsre_reason_code {
    RSRE_WHY_NOT_IN_PLAN,          /* action not listed for the class */
    RSRE_WHY_CLASS_AUTO,           /* listed as auto-allowed */
    RSRE_WHY_CLASS_ENV_AUTO,       /* listed as auto where the environment allows ("limited") */
    RSRE_WHY_CLASS_APPROVAL,       /* listed as approval-required */
    RSRE_WHY_CLASS_HUMAN,          /* listed as human-only */
    RSRE_WHY_DEFAULT_READONLY,     /* observe/notify are auto */
    RSRE_WHY_DEFAULT_CONTAIN,      /* contain: auto on allowlisted targets */
    RSRE_WHY_DEFAULT_APPROVAL,     /* recover/disruptive need approval */
    RSRE_WHY_DEFAULT_MUTATES,      /* config mutation needs approval */
    RSRE_WHY_DEFAULT_HELM,         /* Helm reconciliation needs approval */
    RSRE_WHY_DEFAULT_OCI,          /* OCI operation needs approval */
    RSRE_WHY_ENV_ALLOWS,           /* environment allows auto for this contain action */
    RSRE_WHY_ENV_FORBIDS,          /* environment requires approval for this contain action */
    RSRE_WHY_ENV_QUORUM,           /* production disruptive: quorum 2 */
    RSRE_WHY_OP_TIGHTEN,           /* operator rule made it stricter */
    RSRE_WHY_OP_AUTO,              /* operator rule allowed auto */
    RSRE_WHY_OP_ALLOWLIST,         /* operator rule allowlisted the target */
    RSRE_WHY_OP_COOLDOWN,          /* operator rule set the cooldown */
    RSRE_WHY_OP_QUORUM,            /* operator rule raised the quorum */
    RSRE_WHY_HARD_HUMAN_ONLY,      /* human-only is never executable by the robot */
    RSRE_WHY_HARD_CONFIDENCE,      /* auto needs high confidence */
    RSRE_WHY_HARD_FAMILY,          /* auto only in auto-allowed families */
    RSRE_WHY_HARD_ALLOWLIST,       /* auto needs an allowlisted target */
    RSRE_WHY_HARD_NEVER,           /* target on the never-auto-contain list */
    RSRE_WHY_HARD_COOLDOWN,        /* cooldown active */
    RSRE_WHY_HARD_COOLDOWN_FLOOR,  /* operator cooldown below the floor was raised */
    RSRE_WHY_OK_AUTO,              /* every auto condition holds */
    RSRE_WHY_HARD_PRODUCTION,      /* production: auto only for the catalogue's safe actions */
    RSRE_WHY_COUNT
};

struct rsre_reason {
    uint8_t layer; /* enum rsre_policy_layer */
    uint8_t code;  /* enum rsre_reason_code */
    const char *arg; /* a name the text refers to (owned by taxonomy/rules/request), or NULL */
    long long num;   /* a number the text refers to */
};

#define RSRE_POLICY_MAX_REASONS 16
#define RSRE_POLICY_HARD_SLOTS 4 /* reasons reserved for the hard-constraint layer */

struct rsre_decision {
    enum rsre_verdict verdict;
    unsigned quorum;             /* approvals needed when verdict is APPROVAL, else 0 */
    long long cooldown_seconds;  /* the action's effective cooldown (0 for observe/notify) */
    long long retry_at;          /* when denied by cooldown: the earliest retry time */
    unsigned nreasons;
    struct rsre_reason reasons[RSRE_POLICY_MAX_REASONS];
};

struct rsre_policy_request {
    const struct rsre_taxonomy *taxonomy;   /* NULL: the built-in taxonomy */
    const struct rsre_incident_def *incident;
    const struct rsre_action_def *action;
    enum rsre_env env;
    enum rsre_confidence confidence;
    const char *target;          /* "namespace/name", "name", a node name...; NULL = none */
    const struct rsre_ruleset *rules; /* operator rules, NULL for none */
    long long now;               /* seconds */
    long long last_run;          /* when this action last ran on this cooldown key; 0 = never */
};

/* Decides. Never fails: unknown or NULL incident/action yields DENIED with a reason. */
void rsre_policy_decide(const struct rsre_policy_request *req, struct rsre_decision *out);

/* Renders one reason as a sentence into buf (always NUL-terminated); returns buf. */
char *rsre_policy_reason_text(const struct rsre_reason *r, char *buf, size_t cap);

const char *rsre_verdict_name(enum rsre_verdict v);  /* "auto", "approval_required", ... */
const char *rsre_layer_name(enum rsre_policy_layer l); /* "taxonomy", "defaults", ... */

/*
 * The effective cooldown in seconds of `action` for `incident` in `env` under `rules`
 * (class override, else defaults by action class, operator override, floors).
 */
long long rsre_policy_cooldown(const struct rsre_taxonomy *t, const struct rsre_incident_def *inc,
                               const struct rsre_action_def *action, enum rsre_env env,
                               const struct rsre_ruleset *rules);

/* Whether `target` (with action kind) is on the never-auto-contain list; returns the entry. */
const struct rsre_never_def *rsre_policy_never_match(const struct rsre_taxonomy *t,
                                                     const struct rsre_action_def *action,
                                                     const char *target);

/* Hard floors of operator-set cooldowns: any remediation, and disruptive actions. */
#define RSRE_COOLDOWN_FLOOR 60
#define RSRE_COOLDOWN_FLOOR_DISRUPTIVE 3600
#define RSRE_QUORUM_MAX 5

#endif
