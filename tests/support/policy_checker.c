/*
 * The policy decision invariants I1-I8 (design.md "Safety invariants"; spec "Approval Policy",
 * "Operator-Defined Rule Boundaries", "Never Auto-Contain"), checked on one decision by
 * independent oracles. Shared by tests/unit/test_policy_invariants.c (exhaustive sweep) and
 * tests/unit/test_rules_random.c (random operator rule sets), which #include this file.
 *
 * A test declares its violation codes as an enum that starts at PC_COUNT (PC_* below are the
 * shared decision invariants) and its name table starting with PC_NAMES; it points the
 * checker at both (`viol`, `names`) and may set `context` to print what it needs (rule files,
 * seed) after the first example of each violation.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/confidence.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"

enum pc_viol {
    PC_I1_FAMILY,
    PC_I2_CONTAIN,
    PC_I2_ALLOWLIST,
    PC_I2_SPEC_NEVER,
    PC_I2_BINDING,
    PC_I3_HUMAN,
    PC_I4_UNBOUND,
    PC_I5_QUORUM,
    PC_I6_FLOOR,
    PC_I6_COOLDOWN,
    PC_I7_REASONS,
    PC_I8_TIGHTEN,
    PC_COUNT
};

#define PC_NAMES                                                                                   \
    "I1 auto outside observe/notify/contain or on human-only/config/Helm/OCI",                     \
        "I2 contain auto without high confidence / on a never-auto-contain target / NULL target",  \
        "I2 contain auto on a target neither family- nor operator-allowlisted",                    \
        "I2 contain auto on a target the spec's never list names (independent oracle)",            \
        "I2 auto for an action the class does not bind as auto/env-auto",                          \
        "I3 human-only action neither human_only nor denied",                                      \
        "I4 action not bound to the class but not denied",                                         \
        "I5 approval quorum < 1, disruptive-in-production quorum < 2, or quorum on non-approval",  \
        "I6 effective cooldown below its floor (60 s / 3600 s disruptive), or one on "             \
        "observe/notify",                                                                          \
        "I6 contain/recover/disruptive not denied (or human-only) inside its cooldown, or a "      \
        "wrong retry_at",                                                                          \
        "I7 reasons empty or the last hard-constraint reason inconsistent with the verdict",       \
        "I8 an applicable operator tightening (approval/human_only/deny) did not hold"

struct pc_counts {
    unsigned long decisions, auto_contain, auto_contain_op, auto_contain_oplist, auto_outside_env,
        auto_readonly, approvals, human, denied, cooldown_denied;
};

struct policy_checker {
    const struct rsre_taxonomy *t;
    long long now;
    unsigned long *viol;        /* per code, PC_* first then the test's own */
    const char *const *names;   /* same indexing */
    void (*context)(void *arg); /* prints the test's context after a first example; may be NULL */
    void *arg;
    struct pc_counts cnt;
};

static void pc_describe(const struct rsre_policy_request *q, const struct rsre_decision *d) {
    fprintf(stderr,
            "  decision: incident=%s action=%s (class %s%s) env=%s confidence=%s target=%s "
            "now=%lld last_run=%lld\n  -> verdict=%s quorum=%u cooldown=%lld retry_at=%lld\n",
            q->incident->id, q->action->id, rsre_class_name(q->action->cls),
            q->action->human_only ? ", human-only" : "", rsre_env_name(q->env),
            rsre_confidence_name(q->confidence), q->target ? q->target : "(null)", q->now,
            q->last_run, rsre_verdict_name(d->verdict), d->quorum, d->cooldown_seconds,
            d->retry_at);
    for (unsigned i = 0; i < d->nreasons && i < RSRE_POLICY_MAX_REASONS; i++) {
        char text[256];
        fprintf(stderr, "     [%s] %s\n",
                rsre_layer_name((enum rsre_policy_layer)d->reasons[i].layer),
                rsre_policy_reason_text(&d->reasons[i], text, sizeof(text)));
    }
}

/* Counts violation `v`; prints the first example of each code (with the decision, if any). */
static void pc_violation(struct policy_checker *c, int v, const struct rsre_policy_request *q,
                         const struct rsre_decision *d, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void pc_violation(struct policy_checker *c, int v, const struct rsre_policy_request *q,
                         const struct rsre_decision *d, const char *fmt, ...) {
    if (c->viol[v]++ > 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nVIOLATION %s: ", c->names[v]);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (q && d) {
        pc_describe(q, d);
    }
    if (c->context) {
        c->context(c->arg);
    }
}

/* ---- independent oracles ---- */

/* Hard reasons that turn a would-be auto verdict into approval (confidence, family,
 * allowlist, never list, and any such demotion the engine adds later, e.g. production). */
static int pc_demotes_to_approval(unsigned code) {
    return code < RSRE_WHY_COUNT && code != RSRE_WHY_HARD_HUMAN_ONLY &&
           code != RSRE_WHY_HARD_COOLDOWN && code != RSRE_WHY_HARD_COOLDOWN_FLOOR &&
           code != RSRE_WHY_OK_AUTO;
}

static int pc_strictness(enum rsre_verdict v) {
    return v == RSRE_VERDICT_AUTO         ? 0
           : v == RSRE_VERDICT_APPROVAL   ? 1
           : v == RSRE_VERDICT_HUMAN_ONLY ? 2
                                          : 3;
}

/* The spec's never-auto-contain names, matched on the lowercased target. */
static int pc_spec_never(const char *target) {
    static const char *const never[] = {"cert-manager", "supabase", "ingress-nginx",
                                        "ingress-controller"};
    if (!target) {
        return 0;
    }
    char low[512];
    size_t i = 0;
    for (; target[i] && i < sizeof(low) - 1; i++) {
        low[i] = (char)tolower((unsigned char)target[i]);
    }
    low[i] = '\0';
    for (size_t k = 0; k < sizeof(never) / sizeof(never[0]); k++) {
        if (strstr(low, never[k])) {
            return 1;
        }
    }
    return 0;
}

/* Whether an applicable operator rule allowlists `target` for `a` (exact entry). */
static int pc_op_allowlists(const struct rsre_rule *const *rules, size_t n,
                            const struct rsre_action_def *a, const char *target) {
    for (size_t i = 0; target && i < n; i++) {
        for (size_t k = 0; k < rules[i]->nprofile; k++) {
            const struct rsre_action_profile *p = &rules[i]->profile[k];
            for (size_t j = 0; p->action == a && j < p->targets.n; j++) {
                if (!strcmp(p->targets.items[j], target)) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

static void pc_count(struct policy_checker *c, const struct rsre_action_def *a, enum rsre_env env,
                     const struct rsre_decision *d) {
    switch (d->verdict) {
    case RSRE_VERDICT_AUTO:
        if (a->cls == RSRE_CLASS_CONTAIN) {
            c->cnt.auto_contain++;
            for (unsigned i = 0; i < d->nreasons && i < RSRE_POLICY_MAX_REASONS; i++) {
                if (d->reasons[i].code == RSRE_WHY_OP_AUTO) {
                    c->cnt.auto_contain_op++;
                    break;
                }
            }
            if (!(a->auto_envs & (1u << env))) {
                c->cnt.auto_outside_env++;
            }
        } else {
            c->cnt.auto_readonly++;
        }
        break;
    case RSRE_VERDICT_APPROVAL:
        c->cnt.approvals++;
        break;
    case RSRE_VERDICT_HUMAN_ONLY:
        c->cnt.human++;
        break;
    default:
        c->cnt.denied++;
        break;
    }
}

/* I7: reasons in range with text, and the last hard-constraint reason agrees with the verdict. */
static void pc_check_reasons(struct policy_checker *c, const struct rsre_policy_request *q,
                             const struct rsre_decision *d, int human, int remediation,
                             int in_cooldown) {
    if (d->nreasons == 0 || d->nreasons > RSRE_POLICY_MAX_REASONS) {
        pc_violation(c, PC_I7_REASONS, q, d, "%u reasons", d->nreasons);
        return;
    }
    const struct rsre_reason *h = NULL;
    int has_denial = 0, has_human = 0, has_approval = 0, ok = 1;
    for (unsigned i = 0; i < d->nreasons; i++) {
        const struct rsre_reason *r = &d->reasons[i];
        char text[256];
        if (r->layer < RSRE_LAYER_TAXONOMY || r->layer > RSRE_LAYER_HARD ||
            r->code >= RSRE_WHY_COUNT || !*rsre_policy_reason_text(r, text, sizeof(text))) {
            ok = 0;
        }
        /* The cooldown-floor note explains the cooldown, not the verdict. */
        if (r->layer == RSRE_LAYER_HARD && r->code != RSRE_WHY_HARD_COOLDOWN_FLOOR) {
            h = r;
        }
        has_denial |= r->code == RSRE_WHY_NOT_IN_PLAN || r->code == RSRE_WHY_HARD_COOLDOWN ||
                      (r->code == RSRE_WHY_OP_TIGHTEN && r->num == RSRE_MODE_DENY);
        has_human |= r->code == RSRE_WHY_CLASS_HUMAN || r->code == RSRE_WHY_HARD_HUMAN_ONLY ||
                     (r->code == RSRE_WHY_OP_TIGHTEN && r->num == RSRE_MODE_HUMAN);
        has_approval |= r->code == RSRE_WHY_CLASS_APPROVAL || r->code == RSRE_WHY_CLASS_ENV_AUTO ||
                        (r->code >= RSRE_WHY_DEFAULT_APPROVAL && r->code <= RSRE_WHY_DEFAULT_OCI) ||
                        r->code == RSRE_WHY_ENV_FORBIDS ||
                        (r->code == RSRE_WHY_OP_TIGHTEN && r->num == RSRE_MODE_APPROVAL) ||
                        (r->layer == RSRE_LAYER_HARD && pc_demotes_to_approval(r->code));
    }
    if (h) {
        switch (h->code) {
        case RSRE_WHY_OK_AUTO:
            ok &= d->verdict == RSRE_VERDICT_AUTO;
            break;
        case RSRE_WHY_HARD_COOLDOWN:
            ok &= d->verdict == RSRE_VERDICT_DENIED && d->retry_at > c->now &&
                  h->num == d->retry_at - c->now;
            break;
        case RSRE_WHY_HARD_HUMAN_ONLY:
            ok &= d->verdict == RSRE_VERDICT_HUMAN_ONLY || d->verdict == RSRE_VERDICT_DENIED;
            break;
        case RSRE_WHY_HARD_COOLDOWN_FLOOR:
            break;
        default: /* every other hard reason demotes an auto verdict to approval */
            ok &= d->verdict == RSRE_VERDICT_APPROVAL;
            break;
        }
    }
    if (d->verdict == RSRE_VERDICT_AUTO && remediation && !(h && h->code == RSRE_WHY_OK_AUTO)) {
        ok = 0; /* an auto remediation must say why every condition holds */
    }
    if (human && d->verdict == RSRE_VERDICT_HUMAN_ONLY &&
        !(h && h->code == RSRE_WHY_HARD_HUMAN_ONLY)) {
        ok = 0;
    }
    if (in_cooldown && d->verdict == RSRE_VERDICT_DENIED && !has_denial) {
        ok = 0;
    }
    if ((d->verdict == RSRE_VERDICT_DENIED && !has_denial) ||
        (d->verdict == RSRE_VERDICT_HUMAN_ONLY && !has_human) ||
        (d->verdict == RSRE_VERDICT_APPROVAL && !has_approval)) {
        ok = 0;
    }
    if (!ok) {
        pc_violation(c, PC_I7_REASONS, q, d, "last hard reason %d vs verdict %s (%u reasons)",
                     h ? (int)h->code : -1, rsre_verdict_name(d->verdict), d->nreasons);
    }
}

/* Decides one request at c->now and checks I1-I8 on the decision; returns the verdict and
 * copies the decision to `out` when not NULL. `rs` may be NULL (no operator rules). */
static enum rsre_verdict pc_check(struct policy_checker *c, const struct rsre_ruleset *rs,
                                  const struct rsre_incident_def *inc,
                                  const struct rsre_action_def *a, enum rsre_env env,
                                  enum rsre_confidence conf, const char *target, long long last_run,
                                  struct rsre_decision *out) {
    struct rsre_policy_request q = {.taxonomy = NULL,
                                    .incident = inc,
                                    .action = a,
                                    .env = env,
                                    .confidence = conf,
                                    .target = target,
                                    .rules = rs,
                                    .now = c->now,
                                    .last_run = last_run};
    struct rsre_decision d;
    memset(&d, 0xa5, sizeof(d)); /* every field must be written by the decision */
    rsre_policy_decide(&q, &d);
    c->cnt.decisions++;
    const char *tg = target && *target ? target : NULL;
    enum rsre_binding bind = (enum rsre_binding)inc->binding[a->index];
    int human = a->human_only || bind == RSRE_BIND_HUMAN;
    int remediation = a->cls >= RSRE_CLASS_CONTAIN;
    const struct rsre_rule *const *rules = NULL;
    size_t nrules = 0;
    if (rs) {
        rsre_ruleset_applicable(rs, inc, env, &rules, &nrules);
    }
    int in_cooldown = remediation && last_run > 0 && c->now < last_run + d.cooldown_seconds;
    pc_count(c, a, env, &d);
    if (in_cooldown && d.verdict == RSRE_VERDICT_DENIED) {
        c->cnt.cooldown_denied++;
    }

    /* I1: auto only in auto-allowed families. */
    if (d.verdict == RSRE_VERDICT_AUTO &&
        (a->cls > RSRE_CLASS_CONTAIN || a->human_only || a->mutates_config || a->helm || a->oci)) {
        pc_violation(c, PC_I1_FAMILY, &q, &d, "auto for %s", a->id);
    }
    /* I2: contain auto needs high confidence, a target off the never list, an allowlist. */
    if (d.verdict == RSRE_VERDICT_AUTO && a->cls == RSRE_CLASS_CONTAIN) {
        if (conf != RSRE_CONF_HIGH || rsre_policy_never_match(c->t, a, tg) ||
            (a->requires_allowlist && !tg)) {
            pc_violation(c, PC_I2_CONTAIN, &q, &d, "contain auto");
        }
        if (a->requires_allowlist) {
            const struct rsre_allow_family *f = rsre_taxonomy_family(c->t, a->family);
            int family = f && rsre_target_matches(&f->patterns, tg);
            if (!(family || pc_op_allowlists(rules, nrules, a, tg))) {
                pc_violation(c, PC_I2_ALLOWLIST, &q, &d, "target not allowlisted");
            } else if (!family) {
                c->cnt.auto_contain_oplist++; /* auto only because an operator allowlisted it */
            }
        }
        if (pc_spec_never(tg)) {
            pc_violation(c, PC_I2_SPEC_NEVER, &q, &d, "never-auto-contain target");
        }
    }
    if (d.verdict == RSRE_VERDICT_AUTO && bind != RSRE_BIND_AUTO && bind != RSRE_BIND_ENV_AUTO) {
        pc_violation(c, PC_I2_BINDING, &q, &d, "auto although the class binds it as %d", (int)bind);
    }
    /* I3 */
    if (human && d.verdict != RSRE_VERDICT_HUMAN_ONLY && d.verdict != RSRE_VERDICT_DENIED) {
        pc_violation(c, PC_I3_HUMAN, &q, &d, "human-only action");
    }
    /* I4 */
    if (bind == RSRE_BIND_NONE && d.verdict != RSRE_VERDICT_DENIED) {
        pc_violation(c, PC_I4_UNBOUND, &q, &d, "unbound action");
    }
    /* I5 */
    if (d.verdict == RSRE_VERDICT_APPROVAL) {
        if (d.quorum < 1 || d.quorum > RSRE_QUORUM_MAX ||
            (a->cls == RSRE_CLASS_DISRUPTIVE && env == RSRE_ENV_PRODUCTION && d.quorum < 2)) {
            pc_violation(c, PC_I5_QUORUM, &q, &d, "quorum %u", d.quorum);
        }
    } else if (d.quorum != 0) {
        pc_violation(c, PC_I5_QUORUM, &q, &d, "quorum %u on a %s verdict", d.quorum,
                     rsre_verdict_name(d.verdict));
    }
    /* I6 */
    if (remediation) {
        long long floor =
            a->cls == RSRE_CLASS_DISRUPTIVE ? RSRE_COOLDOWN_FLOOR_DISRUPTIVE : RSRE_COOLDOWN_FLOOR;
        if (d.cooldown_seconds < floor ||
            d.cooldown_seconds != rsre_policy_cooldown(c->t, inc, a, env, rs)) {
            pc_violation(c, PC_I6_FLOOR, &q, &d, "cooldown %lld (floor %lld)", d.cooldown_seconds,
                         floor);
        }
        if (in_cooldown && d.verdict != RSRE_VERDICT_DENIED &&
            d.verdict != RSRE_VERDICT_HUMAN_ONLY) {
            pc_violation(c, PC_I6_COOLDOWN, &q, &d, "inside cooldown");
        }
        if (in_cooldown && d.verdict == RSRE_VERDICT_DENIED && d.retry_at != 0 &&
            d.retry_at != last_run + d.cooldown_seconds) {
            pc_violation(c, PC_I6_COOLDOWN, &q, &d, "retry_at %lld", d.retry_at);
        }
    } else if (d.cooldown_seconds != 0) {
        pc_violation(c, PC_I6_FLOOR, &q, &d, "observe/notify cooldown %lld", d.cooldown_seconds);
    }
    pc_check_reasons(c, &q, &d, human, remediation, in_cooldown);
    /* I8: an applicable operator tightening holds whatever other rules say. */
    int need = 0;
    for (size_t i = 0; i < nrules; i++) {
        for (size_t k = 0; k < rules[i]->nprofile; k++) {
            const struct rsre_action_profile *p = &rules[i]->profile[k];
            if (p->action == a) {
                int s = p->mode == RSRE_MODE_APPROVAL ? 1
                        : p->mode == RSRE_MODE_HUMAN  ? 2
                        : p->mode == RSRE_MODE_DENY   ? 3
                                                      : 0;
                need = s > need ? s : need;
            }
        }
    }
    if (pc_strictness(d.verdict) < need) {
        pc_violation(c, PC_I8_TIGHTEN, &q, &d, "an applicable rule requires at least %s",
                     need == 1   ? "approval"
                     : need == 2 ? "human_only"
                                 : "deny");
    }
    if (out) {
        *out = d;
    }
    return d.verdict;
}

/* Prints the counted violations (one line per violated code); returns their total. */
static unsigned long pc_report(const struct policy_checker *c, size_t ncodes, const char *test) {
    unsigned long bad = 0;
    for (size_t v = 0; v < ncodes; v++) {
        if (c->viol[v]) {
            printf("  %s: VIOLATED %lux: %s\n", test, c->viol[v], c->names[v]);
            bad += c->viol[v];
        }
    }
    return bad;
}
