#include "engine/policy.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "engine/rules.h"

static const char *const verdict_names[RSRE_VERDICT_COUNT] = {"auto", "approval_required",
                                                              "human_only", "denied"};
static const char *const layer_names[] = {"?", "taxonomy", "defaults", "environment", "operator",
                                          "hard_constraint"};

const char *rsre_verdict_name(enum rsre_verdict v) {
    return (unsigned)v < RSRE_VERDICT_COUNT ? verdict_names[v] : "?";
}

const char *rsre_layer_name(enum rsre_policy_layer l) {
    return (unsigned)l <= RSRE_LAYER_HARD ? layer_names[l] : "?";
}

/* Reason templates: %s is the reason's arg, %lld its number (in that order when both). */
static const struct {
    const char *fmt;
    int has_arg, has_num;
} reason_fmt[RSRE_WHY_COUNT] = {
    [RSRE_WHY_NOT_IN_PLAN] = {"action is not in the plan of incident class %s", 1, 0},
    [RSRE_WHY_CLASS_AUTO] = {"listed as auto-allowed for %s", 1, 0},
    [RSRE_WHY_CLASS_ENV_AUTO] = {"listed for %s as auto only where the environment allows it", 1,
                                 0},
    [RSRE_WHY_CLASS_APPROVAL] = {"listed as approval-required for %s", 1, 0},
    [RSRE_WHY_CLASS_HUMAN] = {"listed as human-only for %s", 1, 0},
    [RSRE_WHY_DEFAULT_READONLY] = {"all %s actions are auto-allowed", 1, 0},
    [RSRE_WHY_DEFAULT_CONTAIN] = {"contain actions are auto-allowed only on allowlisted "
                                  "resources (family %s)",
                                  1, 0},
    [RSRE_WHY_DEFAULT_APPROVAL] = {"any %s action requires approval", 1, 0},
    [RSRE_WHY_DEFAULT_MUTATES] = {"any config mutation requires approval", 0, 0},
    [RSRE_WHY_DEFAULT_HELM] = {"any Helm reconciliation requires approval", 0, 0},
    [RSRE_WHY_DEFAULT_OCI] = {"any OCI instance or node-pool operation requires approval", 0, 0},
    [RSRE_WHY_ENV_ALLOWS] = {"the %s overlay allows this contain action without approval", 1, 0},
    [RSRE_WHY_ENV_FORBIDS] = {"the %s overlay requires approval for this contain action", 1, 0},
    [RSRE_WHY_ENV_QUORUM] = {"the %s overlay requires %lld approvers for disruptive actions", 1,
                             1},
    [RSRE_WHY_OP_TIGHTEN] = {"operator rule %s requires it to be %s", 1, 0},
    [RSRE_WHY_OP_AUTO] = {"operator rule %s allows it without approval", 1, 0},
    [RSRE_WHY_OP_ALLOWLIST] = {"operator rule %s allowlists the target", 1, 0},
    [RSRE_WHY_OP_COOLDOWN] = {"operator rule %s sets the cooldown to %llds", 1, 1},
    [RSRE_WHY_OP_QUORUM] = {"operator rule %s requires %lld approvers", 1, 1},
    [RSRE_WHY_HARD_HUMAN_ONLY] = {"human-only actions are never executed by the robot%s", 1, 0},
    [RSRE_WHY_HARD_CONFIDENCE] = {"auto needs high confidence, evidence is %s", 1, 0},
    [RSRE_WHY_HARD_FAMILY] = {"auto only in auto-allowed families; %s is not one", 1, 0},
    [RSRE_WHY_HARD_ALLOWLIST] = {"target %s is not allowlisted for this action", 1, 0},
    [RSRE_WHY_HARD_NEVER] = {"target is on the never-auto-contain list (%s)", 1, 0},
    [RSRE_WHY_HARD_COOLDOWN] = {"cooldown active: %s ran recently, retry in %llds", 1, 1},
    [RSRE_WHY_HARD_COOLDOWN_FLOOR] = {"cooldown raised to the %s floor of %llds", 1, 1},
    [RSRE_WHY_HARD_PRODUCTION] = {"production runs alone only clearly safe idempotent actions; "
                                  "%s is not one",
                                  1, 0},
    [RSRE_WHY_OK_AUTO] = {"high confidence, auto-allowed family, allowlisted target, outside "
                          "cooldown%s",
                          1, 0},
};

char *rsre_policy_reason_text(const struct rsre_reason *r, char *buf, size_t cap) {
    if (r->code >= RSRE_WHY_COUNT) {
        snprintf(buf, cap, "unknown reason");
        return buf;
    }
    const char *arg = r->arg ? r->arg : "";
    if (r->code == RSRE_WHY_OP_TIGHTEN) {
        /* arg is the rule id, num the mode it imposes. */
        snprintf(buf, cap, reason_fmt[r->code].fmt, arg, rsre_mode_name((enum rsre_rule_mode)r->num));
    } else if (reason_fmt[r->code].has_num) {
        snprintf(buf, cap, reason_fmt[r->code].fmt, arg, r->num);
    } else if (reason_fmt[r->code].has_arg) {
        snprintf(buf, cap, reason_fmt[r->code].fmt, arg);
    } else {
        snprintf(buf, cap, "%s", reason_fmt[r->code].fmt);
    }
    return buf;
}

/* Appends a reason. The last RSRE_POLICY_HARD_SLOTS slots are kept for the hard constraints,
 * so however many operator rules apply, the reason that decided is never lost. */
static void add(struct rsre_decision *d, enum rsre_policy_layer layer, enum rsre_reason_code code,
                const char *arg, long long num) {
    unsigned cap = layer == RSRE_LAYER_HARD ? RSRE_POLICY_MAX_REASONS
                                            : RSRE_POLICY_MAX_REASONS - RSRE_POLICY_HARD_SLOTS;
    if (d->nreasons < cap) {
        d->reasons[d->nreasons++] = (struct rsre_reason){
            .layer = (uint8_t)layer, .code = (uint8_t)code, .arg = arg, .num = num};
    }
}

/* Strictness order: AUTO < APPROVAL < HUMAN_ONLY < DENIED. */
static enum rsre_verdict stricter(enum rsre_verdict a, enum rsre_verdict b) {
    return a > b ? a : b;
}

const struct rsre_never_def *rsre_policy_never_match(const struct rsre_taxonomy *t,
                                                     const struct rsre_action_def *action,
                                                     const char *target) {
    for (size_t i = 0; i < t->nnever; i++) {
        const struct rsre_never_def *n = &t->never[i];
        if (action && n->actions[action->index]) {
            return n;
        }
        for (size_t k = 0; action && k < n->target_kinds.n; k++) {
            if (strcmp(n->target_kinds.items[k], action->target_kind) == 0) {
                return n;
            }
        }
        if (target && n->match.n) {
            if (rsre_target_matches(&n->match, target)) {
                return n;
            }
            /* Also the namespace part of "namespace/name". */
            const char *slash = strchr(target, '/');
            if (slash) {
                char ns[RSRE_RULE_MAX_TARGET_LEN + 1];
                size_t len = (size_t)(slash - target);
                if (len < sizeof(ns)) {
                    memcpy(ns, target, len);
                    ns[len] = '\0';
                    for (size_t k = 0; k < n->match.n; k++) {
                        if (fnmatch(n->match.items[k], ns, 0) == 0) {
                            return n;
                        }
                    }
                }
            }
        }
    }
    return NULL;
}

static long long class_cooldown(const struct rsre_taxonomy *t, const struct rsre_incident_def *inc,
                                const struct rsre_action_def *a) {
    long long best = -1;
    for (size_t i = 0; inc && i < inc->ncooldowns; i++) {
        const struct rsre_cooldown_def *c = &inc->cooldowns[i];
        if ((c->class_mask & (1u << a->cls)) || c->actions[a->index]) {
            best = c->seconds > best ? c->seconds : best;
        }
    }
    if (best >= 0) {
        return best;
    }
    switch (a->cls) {
    case RSRE_CLASS_DISRUPTIVE:
        return t->cooldown.disruptive_retry;
    case RSRE_CLASS_CONTAIN:
    case RSRE_CLASS_RECOVER:
        return t->cooldown.same_action_retry;
    default:
        return 0;
    }
}

static long long floor_for(const struct rsre_action_def *a) {
    return a->cls == RSRE_CLASS_DISRUPTIVE ? RSRE_COOLDOWN_FLOOR_DISRUPTIVE : RSRE_COOLDOWN_FLOOR;
}

long long rsre_policy_cooldown(const struct rsre_taxonomy *t, const struct rsre_incident_def *inc,
                               const struct rsre_action_def *a, enum rsre_env env,
                               const struct rsre_ruleset *rules) {
    if (!t) {
        t = rsre_taxonomy_builtin();
    }
    if (a->cls <= RSRE_CLASS_NOTIFY) {
        return 0;
    }
    long long cd = class_cooldown(t, inc, a);
    const struct rsre_rule *const *rs = NULL;
    size_t n = 0;
    if (rules && inc) {
        rsre_ruleset_applicable(rules, inc, env, &rs, &n);
    }
    /* Several rules: the longest cooldown wins (a later rule cannot shorten an earlier one). */
    long long op = -1;
    for (size_t i = 0; i < n; i++) {
        op = rs[i]->cooldown_seconds > op ? rs[i]->cooldown_seconds : op;
    }
    if (op >= 0) {
        cd = op;
    }
    return cd < floor_for(a) ? floor_for(a) : cd;
}

static int family_allowlisted(const struct rsre_taxonomy *t, const struct rsre_action_def *a,
                              const char *target) {
    const struct rsre_allow_family *f = rsre_taxonomy_family(t, a->family);
    return f && rsre_target_matches(&f->patterns, target);
}

static int exact_in(const struct rsre_strlist *l, const char *target) {
    for (size_t i = 0; target && i < l->n; i++) {
        if (strcmp(l->items[i], target) == 0) {
            return 1;
        }
    }
    return 0;
}

void rsre_policy_decide(const struct rsre_policy_request *req, struct rsre_decision *d) {
    memset(d, 0, sizeof(*d));
    const struct rsre_taxonomy *t = req->taxonomy ? req->taxonomy : rsre_taxonomy_builtin();
    const struct rsre_incident_def *inc = req->incident;
    const struct rsre_action_def *a = req->action;
    if (!inc || !a || (unsigned)req->env >= RSRE_ENV_COUNT) {
        d->verdict = RSRE_VERDICT_DENIED;
        add(d, RSRE_LAYER_TAXONOMY, RSRE_WHY_NOT_IN_PLAN, inc ? inc->id : "(unknown)", 0);
        return;
    }
    const char *target = req->target && *req->target ? req->target : NULL;

    /* 1. Built-in taxonomy: the class's lists. */
    enum rsre_binding bind = (enum rsre_binding)inc->binding[a->index];
    enum rsre_verdict v;
    int env_auto_only = 0;
    switch (bind) {
    case RSRE_BIND_AUTO:
        v = RSRE_VERDICT_AUTO;
        add(d, RSRE_LAYER_TAXONOMY, RSRE_WHY_CLASS_AUTO, inc->id, 0);
        break;
    case RSRE_BIND_ENV_AUTO:
        v = RSRE_VERDICT_APPROVAL;
        env_auto_only = 1;
        add(d, RSRE_LAYER_TAXONOMY, RSRE_WHY_CLASS_ENV_AUTO, inc->id, 0);
        break;
    case RSRE_BIND_APPROVAL:
        v = RSRE_VERDICT_APPROVAL;
        add(d, RSRE_LAYER_TAXONOMY, RSRE_WHY_CLASS_APPROVAL, inc->id, 0);
        break;
    case RSRE_BIND_HUMAN:
        v = RSRE_VERDICT_HUMAN_ONLY;
        add(d, RSRE_LAYER_TAXONOMY, RSRE_WHY_CLASS_HUMAN, inc->id, 0);
        break;
    default:
        v = RSRE_VERDICT_DENIED;
        add(d, RSRE_LAYER_TAXONOMY, RSRE_WHY_NOT_IN_PLAN, inc->id, 0);
        break;
    }

    /* 2. Built-in defaults: the spec's approval policy by action class. */
    if (a->cls <= RSRE_CLASS_NOTIFY && !a->human_only) {
        add(d, RSRE_LAYER_DEFAULTS, RSRE_WHY_DEFAULT_READONLY, rsre_class_name(a->cls), 0);
    } else if (a->cls == RSRE_CLASS_CONTAIN && !a->human_only) {
        if (a->requires_allowlist) {
            add(d, RSRE_LAYER_DEFAULTS, RSRE_WHY_DEFAULT_CONTAIN, a->family, 0);
        }
    } else {
        v = stricter(v, a->human_only ? RSRE_VERDICT_HUMAN_ONLY : RSRE_VERDICT_APPROVAL);
        add(d, RSRE_LAYER_DEFAULTS, RSRE_WHY_DEFAULT_APPROVAL, rsre_class_name(a->cls), 0);
    }
    if (a->mutates_config) {
        v = stricter(v, RSRE_VERDICT_APPROVAL);
        add(d, RSRE_LAYER_DEFAULTS, RSRE_WHY_DEFAULT_MUTATES, NULL, 0);
    }
    if (a->helm) {
        v = stricter(v, RSRE_VERDICT_APPROVAL);
        add(d, RSRE_LAYER_DEFAULTS, RSRE_WHY_DEFAULT_HELM, NULL, 0);
    }
    if (a->oci) {
        v = stricter(v, RSRE_VERDICT_APPROVAL);
        add(d, RSRE_LAYER_DEFAULTS, RSRE_WHY_DEFAULT_OCI, NULL, 0);
    }

    /* 3. Environment overlay. */
    unsigned quorum = 1;
    if (a->cls == RSRE_CLASS_CONTAIN && (bind == RSRE_BIND_AUTO || bind == RSRE_BIND_ENV_AUTO)) {
        if (a->auto_envs & (1u << req->env)) {
            if (env_auto_only) {
                v = RSRE_VERDICT_AUTO;
            }
            add(d, RSRE_LAYER_ENVIRONMENT, RSRE_WHY_ENV_ALLOWS, rsre_env_name(req->env), 0);
        } else {
            v = stricter(v, RSRE_VERDICT_APPROVAL);
            add(d, RSRE_LAYER_ENVIRONMENT, RSRE_WHY_ENV_FORBIDS, rsre_env_name(req->env), 0);
        }
    }
    if (a->cls == RSRE_CLASS_DISRUPTIVE && req->env == RSRE_ENV_PRODUCTION) {
        quorum = 2;
        add(d, RSRE_LAYER_ENVIRONMENT, RSRE_WHY_ENV_QUORUM, rsre_env_name(req->env), 2);
    }

    /* 4. Operator overrides. */
    const struct rsre_rule *const *rules = NULL;
    size_t nrules = 0;
    if (req->rules) {
        rsre_ruleset_applicable(req->rules, inc, req->env, &rules, &nrules);
    }
    /* Tightening wins over loosening whatever the order of the rules: first the strictest
     * mode any rule imposes, then auto only when no rule tightened the action. Each kind of
     * operator reason is given once (the deciding rule), so the reasons stay bounded however
     * many rules apply. */
    int op_allowlisted = 0;
    enum rsre_rule_mode strictest = RSRE_MODE_UNSET;
    const struct rsre_rule *auto_rule = NULL, *cooldown_rule = NULL, *tighten_rule = NULL,
                           *allow_rule = NULL, *quorum_rule = NULL;
    for (size_t i = 0; i < nrules; i++) {
        const struct rsre_rule *r = rules[i];
        for (size_t k = 0; k < r->nprofile; k++) {
            const struct rsre_action_profile *p = &r->profile[k];
            if (p->action != a) {
                continue;
            }
            if (p->mode == RSRE_MODE_AUTO) {
                auto_rule = auto_rule ? auto_rule : r;
            } else if (p->mode > strictest) {
                strictest = p->mode;
                tighten_rule = r;
            }
            if (target && !allow_rule && exact_in(&p->targets, target)) {
                op_allowlisted = 1;
                allow_rule = r;
            }
            if (p->quorum > quorum) {
                quorum = p->quorum > RSRE_QUORUM_MAX ? RSRE_QUORUM_MAX : p->quorum;
                quorum_rule = r;
            }
        }
        if (r->cooldown_seconds >= 0 && a->cls >= RSRE_CLASS_CONTAIN &&
            (!cooldown_rule || r->cooldown_seconds > cooldown_rule->cooldown_seconds)) {
            cooldown_rule = r;
        }
    }
    if (tighten_rule) {
        static const enum rsre_verdict mode_verdict[] = {
            [RSRE_MODE_APPROVAL] = RSRE_VERDICT_APPROVAL,
            [RSRE_MODE_HUMAN] = RSRE_VERDICT_HUMAN_ONLY,
            [RSRE_MODE_DENY] = RSRE_VERDICT_DENIED};
        v = stricter(v, mode_verdict[strictest]);
        add(d, RSRE_LAYER_OPERATOR, RSRE_WHY_OP_TIGHTEN, tighten_rule->id, strictest);
    }
    if (allow_rule) {
        add(d, RSRE_LAYER_OPERATOR, RSRE_WHY_OP_ALLOWLIST, allow_rule->id, 0);
    }
    if (quorum_rule) {
        add(d, RSRE_LAYER_OPERATOR, RSRE_WHY_OP_QUORUM, quorum_rule->id, quorum);
    }
    if (cooldown_rule) {
        add(d, RSRE_LAYER_OPERATOR, RSRE_WHY_OP_COOLDOWN, cooldown_rule->id,
            cooldown_rule->cooldown_seconds);
    }
    if (auto_rule && strictest == RSRE_MODE_UNSET && v == RSRE_VERDICT_APPROVAL &&
        bind != RSRE_BIND_NONE) {
        v = RSRE_VERDICT_AUTO; /* the hard layer re-checks everything */
        add(d, RSRE_LAYER_OPERATOR, RSRE_WHY_OP_AUTO, auto_rule->id, 0);
    }

    /* 5. Hard safety constraints: always win. */
    d->cooldown_seconds = rsre_policy_cooldown(t, inc, a, req->env, req->rules);
    for (size_t i = 0; i < nrules && a->cls >= RSRE_CLASS_CONTAIN; i++) {
        if (rules[i]->cooldown_seconds >= 0 && rules[i]->cooldown_seconds < d->cooldown_seconds &&
            d->cooldown_seconds == floor_for(a)) {
            add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_COOLDOWN_FLOOR, rsre_class_name(a->cls),
                d->cooldown_seconds);
            break;
        }
    }
    if (a->human_only || bind == RSRE_BIND_HUMAN) {
        v = stricter(v, RSRE_VERDICT_HUMAN_ONLY);
        add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_HUMAN_ONLY, "", 0);
    }
    if (bind == RSRE_BIND_NONE) {
        v = RSRE_VERDICT_DENIED;
    }
    if (v == RSRE_VERDICT_AUTO && a->cls >= RSRE_CLASS_CONTAIN) {
        const struct rsre_never_def *never = rsre_policy_never_match(t, a, target);
        if (a->cls != RSRE_CLASS_CONTAIN || a->mutates_config || a->helm || a->oci) {
            v = RSRE_VERDICT_APPROVAL;
            add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_FAMILY, rsre_class_name(a->cls), 0);
        } else if (req->env == RSRE_ENV_PRODUCTION && !(a->auto_envs & (1u << req->env))) {
            v = RSRE_VERDICT_APPROVAL;
            add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_PRODUCTION, a->id, 0);
        } else if (req->confidence != RSRE_CONF_HIGH) {
            v = RSRE_VERDICT_APPROVAL;
            add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_CONFIDENCE,
                req->confidence == RSRE_CONF_MEDIUM ? "medium" : "low", 0);
        } else if (never) {
            v = RSRE_VERDICT_APPROVAL;
            add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_NEVER, never->description, 0);
        } else if (a->requires_allowlist &&
                   !(target && (family_allowlisted(t, a, target) || op_allowlisted))) {
            v = RSRE_VERDICT_APPROVAL;
            add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_ALLOWLIST, target ? target : "(none)", 0);
        }
    }
    /* Inside the cooldown nothing runs. An action only an operator rule made human-only is
     * denied too, so a tightening rule never yields a less strict verdict. */
    int operator_human = v == RSRE_VERDICT_HUMAN_ONLY && !a->human_only && bind != RSRE_BIND_HUMAN;
    if ((v == RSRE_VERDICT_AUTO || v == RSRE_VERDICT_APPROVAL || operator_human) &&
        a->cls >= RSRE_CLASS_CONTAIN && req->last_run > 0 &&
        req->now < req->last_run + d->cooldown_seconds) {
        d->retry_at = req->last_run + d->cooldown_seconds;
        v = RSRE_VERDICT_DENIED;
        add(d, RSRE_LAYER_HARD, RSRE_WHY_HARD_COOLDOWN, a->id, d->retry_at - req->now);
    }
    if (v == RSRE_VERDICT_AUTO && a->cls >= RSRE_CLASS_CONTAIN) {
        add(d, RSRE_LAYER_HARD, RSRE_WHY_OK_AUTO, "", 0);
    }
    d->verdict = v;
    d->quorum = v == RSRE_VERDICT_APPROVAL ? quorum : 0;
}
