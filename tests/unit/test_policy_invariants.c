/*
 * Exhaustive policy invariants over the built-in taxonomy (spec "Approval Policy",
 * "Operator-Defined Rule Boundaries", "Policy Resolution Order", "Never Auto-Contain"; design
 * "Safety invariants" 1-3).
 *
 * Every incident class x every action x every environment x every confidence x a target set
 * {NULL, "", allowlisted samples, operator-allowlisted samples, never-auto-contain samples,
 * random names} x last_run {0, now - 1, now - cooldown - 1} is decided
 *   - with no operator rules (NULL and an empty rule set, which must agree), and
 *   - with "strong" operator rules: the most permissive rules the loader accepts (auto for
 *     every auto-bound action, allowlisted targets, the cooldown floor, no-op quorums),
 * and each decision is checked against I1-I8 (see check_decision). Then monotonicity:
 *   - lowering confidence never makes a verdict less strict (in particular never turns a
 *     non-auto verdict into auto);
 *   - adding a tightening rule (approval / human_only / deny) for an action, loaded before or
 *     after the strong rules, in every environment scope, never makes any verdict less strict,
 *     leaves the class's other actions untouched, and the tightening itself holds (the verdict
 *     is at least what the rule asks for, whatever other rules say) — or the loader rejects
 *     the rule with RSRE_EBOUNDARY when the tightening is not allowed (unbound action,
 *     approval for a human-only action) and leaves the set unchanged.
 * Violations are counted per invariant and the first example of each is printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "engine/confidence.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"

#include "../support/policy_checker.c"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define NOW 1700000000LL
#define NLR 3 /* last_run variants */

static const struct rsre_taxonomy *T;

/* ---- targets ---- */

static char random_targets[3][40];
static const char *targets[] = {
    NULL,
    "",
    /* built-in allowlist families */
    "trivy-db-warmup",
    "headlamp",
    "tekton-pipelines/tekton-pipelines-controller",
    "image-factory-demo/web",
    "default",
    "telegram",
    /* allowlisted by the strong operator rules */
    "demo/app-1",
    "image-factory-demo/worker",
    "whatsapp",
    /* never auto-contain */
    "cert-manager/cert-manager",
    "ingress-nginx/ingress-nginx-controller",
    "supabase/supabase-db",
    "kube-system/nginx-ingress-controller",
    "cert-manager",
    "supabase",
    /* random names, filled in by init_targets */
    random_targets[0],
    random_targets[1],
    random_targets[2],
};
#define NT COUNT(targets)

static void init_targets(void) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 3; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        snprintf(random_targets[i], sizeof(random_targets[i]), "ns-%04x/w-%06x",
                 (unsigned)(x & 0xffff), (unsigned)((x >> 16) & 0xffffff));
    }
}

static long long last_run_for(int lr, long long cooldown) {
    return lr == 0 ? 0 : lr == 1 ? NOW - 1 : NOW - cooldown - 1;
}

/* ---- violations: the shared decision invariants (tests/support/policy_checker.c) + ours ---- */

enum viol {
    V_I6_EXPIRED = PC_COUNT,
    V_NULL_VS_EMPTY,
    V_STRONG_LOOSENS,
    V_MONO_CONF,
    V_MONO_TIGHTEN,
    V_MONO_TIGHTEN_COOLDOWN,
    V_TIGHTEN_SIDE_EFFECT,
    V_LOADER,
    V_COUNT
};
static const char *const viol_names[V_COUNT] = {
    PC_NAMES,
    "I6 verdict after the cooldown expired differs from never-run",
    "no rules: NULL rule set and empty rule set disagree",
    "strong rules loosened a recover/disruptive/human-only/unbound action",
    "monotonicity: lower confidence gave a less strict verdict",
    "monotonicity: adding a tightening rule made a verdict less strict",
    "monotonicity: adding a human_only tightening turned a cooldown denial into human_only",
    "a tightening rule changed another action's verdict, or one outside its scope",
    "loader: tightening rule accepted/rejected against the boundaries, or set changed",
};
static unsigned long viol[V_COUNT];
static const char *context = "";
static const char *context_yaml[2];

static void print_context(void *arg) {
    (void)arg;
    fprintf(stderr, "  context: %s\n", context);
    for (int i = 0; i < 2; i++) {
        if (context_yaml[i]) {
            fprintf(stderr, "  --- rules loaded %s ---\n%s\n", i ? "second" : "first",
                    context_yaml[i]);
        }
    }
}

static struct policy_checker chk = {
    .now = NOW, .viol = viol, .names = viol_names, .context = print_context};

static void reset_violations(void) {
    memset(viol, 0, sizeof(viol));
    chk.t = T;
    context = "";
    context_yaml[0] = context_yaml[1] = NULL;
}

static unsigned long report_violations(const char *test) {
    return pc_report(&chk, V_COUNT, test);
}

/* Decides and checks I1-I8; returns the verdict. */
static enum rsre_verdict check_decision(const struct rsre_ruleset *rs,
                                        const struct rsre_incident_def *inc,
                                        const struct rsre_action_def *a, enum rsre_env env,
                                        enum rsre_confidence conf, const char *target,
                                        long long last_run, struct rsre_decision *out) {
    return pc_check(&chk, rs, inc, a, env, conf, target, last_run, out);
}

/* ---- verdict tables ---- */

#define IDX(i, a, e, c, t, l)                                                                      \
    ((((((size_t)(i)*T->nactions + (a)) * RSRE_ENV_COUNT + (e)) * RSRE_CONF_COUNT + (c)) * NT +    \
      (t)) *                                                                                       \
         NLR +                                                                                     \
     (l))

static size_t table_size(void) {
    return T->nincidents * T->nactions * RSRE_ENV_COUNT * RSRE_CONF_COUNT * NT * NLR;
}

/* Decides (incident, action) over env x confidence x target x last_run into tab. */
static void sweep_pair(const struct rsre_ruleset *rs, size_t i, size_t a, uint8_t *tab) {
    const struct rsre_incident_def *inc = &T->incidents[i];
    const struct rsre_action_def *act = &T->actions[a];
    for (int e = 0; e < RSRE_ENV_COUNT; e++) {
        long long cd = rsre_policy_cooldown(T, inc, act, (enum rsre_env)e, rs);
        for (int c = 0; c < RSRE_CONF_COUNT; c++) {
            for (size_t t = 0; t < NT; t++) {
                for (int l = 0; l < NLR; l++) {
                    enum rsre_verdict v =
                        check_decision(rs, inc, act, (enum rsre_env)e, (enum rsre_confidence)c,
                                       targets[t], last_run_for(l, cd), NULL);
                    tab[IDX(i, a, e, c, t, l)] = (uint8_t)v;
                }
                /* I6: once the cooldown has passed, it is as if the action never ran. */
                if (tab[IDX(i, a, e, c, t, 2)] != tab[IDX(i, a, e, c, t, 0)]) {
                    struct rsre_decision d;
                    check_decision(rs, inc, act, (enum rsre_env)e, (enum rsre_confidence)c,
                                   targets[t], last_run_for(2, cd), &d);
                    struct rsre_policy_request q = {.incident = inc,
                                                    .action = act,
                                                    .env = (enum rsre_env)e,
                                                    .confidence = (enum rsre_confidence)c,
                                                    .target = targets[t],
                                                    .rules = rs,
                                                    .now = NOW,
                                                    .last_run = last_run_for(2, cd)};
                    pc_violation(&chk, V_I6_EXPIRED, &q, &d, "never run: %s",
                                 rsre_verdict_name((enum rsre_verdict)tab[IDX(i, a, e, c, t, 0)]));
                }
            }
        }
    }
}

static uint8_t *sweep_all(const struct rsre_ruleset *rs) {
    uint8_t *tab = calloc(table_size(), 1);
    assert_non_null(tab);
    for (size_t i = 0; i < T->nincidents; i++) {
        for (size_t a = 0; a < T->nactions; a++) {
            sweep_pair(rs, i, a, tab);
        }
    }
    return tab;
}

/* Lower confidence is never less strict; in particular non-auto never becomes auto. */
static void check_confidence_monotone(const uint8_t *tab) {
    for (size_t i = 0; i < T->nincidents; i++) {
        for (size_t a = 0; a < T->nactions; a++) {
            for (int e = 0; e < RSRE_ENV_COUNT; e++) {
                for (size_t t = 0; t < NT; t++) {
                    for (int l = 0; l < NLR; l++) {
                        for (int c = 1; c < RSRE_CONF_COUNT; c++) {
                            enum rsre_verdict lo =
                                (enum rsre_verdict)tab[IDX(i, a, e, c - 1, t, l)];
                            enum rsre_verdict hi = (enum rsre_verdict)tab[IDX(i, a, e, c, t, l)];
                            if (pc_strictness(lo) < pc_strictness(hi)) {
                                fprintf(
                                    stderr, "  %s/%s env=%s target=%s lr=%d: %s at %s, %s at %s\n",
                                    T->incidents[i].id, T->actions[a].id,
                                    rsre_env_name((enum rsre_env)e),
                                    targets[t] ? targets[t] : "(null)", l, rsre_verdict_name(lo),
                                    rsre_confidence_name((enum rsre_confidence)(c - 1)),
                                    rsre_verdict_name(hi),
                                    rsre_confidence_name((enum rsre_confidence)c));
                                pc_violation(&chk, V_MONO_CONF, NULL, NULL, "see above");
                            }
                        }
                    }
                }
            }
        }
    }
}

/* ---- rule text ---- */

struct sb {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + (size_t)n + 1) {
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        assert_non_null(np);
        b->p = np;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The most permissive rules the boundaries allow, per incident class and copy, as two rules:
 * one scoped to every environment (auto only where the catalogue lets the action run alone in
 * production, quorum 1 on approval actions, human_only kept on human-only ones) and one scoped
 * to demo and staging (auto for every auto-bound action). Auto entries allowlist targets where
 * the action has a family. Cooldowns are at the floor; later copies set longer ones. */
static void strong_entry(struct sb *b, const struct rsre_incident_def *inc,
                         const struct rsre_action_def *a, int production) {
    enum rsre_binding bind = (enum rsre_binding)inc->binding[a->index];
    int may_auto = !production || (a->auto_envs & (1u << RSRE_ENV_PRODUCTION));
    if (bind == RSRE_BIND_NONE) {
        return;
    }
    if (a->human_only || bind == RSRE_BIND_HUMAN) {
        if (production) {
            sb_printf(b, "      - {action: %s, mode: human_only}\n", a->id);
        }
    } else if (bind == RSRE_BIND_APPROVAL) {
        if (production) {
            sb_printf(b, "      - {action: %s, quorum: 1}\n", a->id);
        }
    } else if (!may_auto) {
        return;
    } else if (a->family && !strcmp(a->family, "operator_channels")) {
        sb_printf(b, "      - {action: %s, mode: auto, targets: [telegram, whatsapp]}\n", a->id);
    } else if (a->family) {
        sb_printf(b,
                  "      - {action: %s, mode: auto, targets: [demo/app-1, "
                  "image-factory-demo/worker]}\n",
                  a->id);
    } else {
        sb_printf(b, "      - {action: %s, mode: auto}\n", a->id);
    }
}

static char *strong_rules_yaml(unsigned copies) {
    struct sb b = {0};
    sb_printf(&b, "rules:\n");
    for (size_t n = 0; n < copies * T->nincidents; n++) {
        const struct rsre_incident_def *inc = &T->incidents[n % T->nincidents];
        for (int production = 1; production >= 0; production--) {
            sb_printf(&b,
                      "  - id: strong-%s%s-%zu\n    name: Strong %s\n    domain: %s\n"
                      "    incident_type: %s\n    environment_scope: %s\n"
                      "    threshold_expression: \"true\"\n    severity: warning\n"
                      "    owner: sre\n    version: 1\n    cooldown_seconds: %d\n"
                      "    allowed_action_profile:\n",
                      production ? "" : "ds-", inc->id, n / T->nincidents, inc->id, inc->domain->id,
                      inc->id, production ? "all" : "[demo, staging]",
                      RSRE_COOLDOWN_FLOOR + (int)(n / T->nincidents));
            for (size_t k = 0; k < T->nactions; k++) {
                strong_entry(&b, inc, &T->actions[k], production);
            }
        }
    }
    return b.p;
}

static struct rsre_ruleset *load(const char *first, const char *second) {
    struct rsre_ruleset *rs = NULL;
    struct rsre_rule_error err;
    char msg[600];
    assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
    const char *files[2] = {first, second};
    for (int f = 0; f < 2; f++) {
        if (files[f]) {
            int rc = rsre_ruleset_add_yaml(rs, f ? "second.yaml" : "first.yaml", files[f],
                                           strlen(files[f]), &err);
            if (rc) {
                rsre_rule_error_format(&err, msg, sizeof(msg));
                fprintf(stderr, "rule load failed (%d): %s\n%s\n", rc, msg, files[f]);
            }
            assert_int_equal(rc, 0);
        }
    }
    return rs;
}

/* ---- tests ---- */

static void test_no_rules(void **state) {
    (void)state;
    T = rsre_taxonomy_builtin();
    init_targets();
    reset_violations();
    memset(&chk.cnt, 0, sizeof(chk.cnt));
    context = "no operator rules (NULL)";
    uint8_t *tab_null = sweep_all(NULL);
    struct rsre_ruleset *empty = NULL;
    assert_int_equal(rsre_ruleset_create(NULL, &empty), 0);
    context = "no operator rules (empty rule set)";
    uint8_t *tab_empty = sweep_all(empty);
    if (memcmp(tab_null, tab_empty, table_size()) != 0) {
        pc_violation(&chk, V_NULL_VS_EMPTY, NULL, NULL, "tables differ");
    }
    check_confidence_monotone(tab_null);
    printf("  no rules: %lu decisions (auto contain %lu, auto observe/notify %lu, denied by "
           "cooldown %lu)\n",
           chk.cnt.decisions, chk.cnt.auto_contain, chk.cnt.auto_readonly, chk.cnt.cooldown_denied);
    /* Not vacuous: the built-in allowlist does reach auto, and cooldowns do deny. */
    assert_true(chk.cnt.auto_contain > 0 && chk.cnt.auto_readonly > 0 &&
                chk.cnt.cooldown_denied > 0);
    rsre_ruleset_destroy(empty);
    free(tab_null);
    free(tab_empty);
    assert_int_equal(report_violations("no rules"), 0);
}

static void test_strong_rules(void **state) {
    (void)state;
    T = rsre_taxonomy_builtin();
    init_targets();
    reset_violations();
    memset(&chk.cnt, 0, sizeof(chk.cnt));
    char *yaml = strong_rules_yaml(1);
    struct rsre_ruleset *rs = load(yaml, NULL);
    context = "strong operator rules";
    context_yaml[0] = yaml;
    uint8_t *tab = sweep_all(rs);
    uint8_t *base = sweep_all(NULL);
    check_confidence_monotone(tab);
    /* Strong rules may only loosen what operators may loosen (contain and read-only). For
     * everything else the verdict, away from the cooldown-expiry probe (whose time depends
     * on the cooldown the rules set), is at least as strict as without rules. */
    for (size_t i = 0; i < T->nincidents; i++) {
        for (size_t a = 0; a < T->nactions; a++) {
            const struct rsre_action_def *act = &T->actions[a];
            enum rsre_binding bind = (enum rsre_binding)T->incidents[i].binding[a];
            if (!(act->cls >= RSRE_CLASS_RECOVER || act->human_only || bind == RSRE_BIND_NONE ||
                  bind == RSRE_BIND_HUMAN || bind == RSRE_BIND_APPROVAL)) {
                continue;
            }
            for (int e = 0; e < RSRE_ENV_COUNT; e++) {
                for (int c = 0; c < RSRE_CONF_COUNT; c++) {
                    for (size_t t = 0; t < NT; t++) {
                        for (int l = 0; l < 2; l++) {
                            size_t x = IDX(i, a, e, c, t, l);
                            if (pc_strictness((enum rsre_verdict)tab[x]) <
                                pc_strictness((enum rsre_verdict)base[x])) {
                                struct rsre_decision d;
                                struct rsre_policy_request q = {.incident = &T->incidents[i],
                                                                .action = act,
                                                                .env = (enum rsre_env)e,
                                                                .confidence =
                                                                    (enum rsre_confidence)c,
                                                                .target = targets[t],
                                                                .rules = rs,
                                                                .now = NOW,
                                                                .last_run = last_run_for(l, 0)};
                                rsre_policy_decide(&q, &d);
                                pc_violation(&chk, V_STRONG_LOOSENS, &q, &d, "without rules: %s",
                                             rsre_verdict_name((enum rsre_verdict)base[x]));
                            }
                        }
                    }
                }
            }
        }
    }
    printf("  strong rules: %lu decisions, incl. %lu without rules (auto contain %lu, with an "
           "operator auto reason %lu, on operator-only-allowlisted targets %lu; auto "
           "observe/notify %lu; denied by cooldown %lu)\n",
           chk.cnt.decisions, chk.cnt.decisions / 2, chk.cnt.auto_contain, chk.cnt.auto_contain_op,
           chk.cnt.auto_contain_oplist, chk.cnt.auto_readonly, chk.cnt.cooldown_denied);
    /* Not vacuous: operator rules do make contain actions auto on their own targets. */
    assert_true(chk.cnt.auto_contain_oplist > 0);
    free(tab);
    free(base);
    rsre_ruleset_destroy(rs);
    free(yaml);
    assert_int_equal(report_violations("strong rules"), 0);
}

/* The same strong rules split over many rules per class (an operator who cloned a rule a
 * dozen times): decisions must still carry the hard-constraint reason that decided them. */
static void test_strong_rules_many(void **state) {
    (void)state;
    T = rsre_taxonomy_builtin();
    init_targets();
    reset_violations();
    memset(&chk.cnt, 0, sizeof(chk.cnt));
    char *yaml = strong_rules_yaml(12);
    struct rsre_ruleset *rs = load(yaml, NULL);
    context = "strong operator rules, 12 rules per incident class";
    context_yaml[0] = "(strong rules x 12)";
    uint8_t *tab = sweep_all(rs);
    check_confidence_monotone(tab);
    printf("  strong rules x12: %lu decisions (auto contain %lu, on operator-only-allowlisted "
           "targets %lu)\n",
           chk.cnt.decisions, chk.cnt.auto_contain, chk.cnt.auto_contain_oplist);
    assert_true(chk.cnt.auto_contain_oplist > 0);
    free(tab);
    rsre_ruleset_destroy(rs);
    free(yaml);
    assert_int_equal(report_violations("strong rules x12"), 0);
}

/* A rule that only tightens `a` for `inc` in `scope`. */
static char *tighten_yaml(const struct rsre_incident_def *inc, const struct rsre_action_def *a,
                          const char *mode, const char *scope) {
    struct sb b = {0};
    sb_printf(&b,
              "id: tighten-%s-%s\nname: Tighten %s\ndomain: %s\nincident_type: %s\n"
              "environment_scope: %s\nthreshold_expression: \"true\"\nseverity: warning\n"
              "owner: sre\nversion: 2\nallowed_action_profile:\n  - action: %s\n    mode: %s\n",
              a->id, mode, a->id, inc->domain->id, inc->id, scope, a->id, mode);
    return b.p;
}

static void test_tightening_monotone(void **state) {
    (void)state;
    T = rsre_taxonomy_builtin();
    init_targets();
    reset_violations();
    memset(&chk.cnt, 0, sizeof(chk.cnt));
    static const char *const modes[] = {"approval", "human_only", "deny"};
    static const struct {
        const char *yaml;
        unsigned mask;
    } scopes[] = {{"all", 7u},
                  {"[production]", 1u << RSRE_ENV_PRODUCTION},
                  {"[demo, staging]", (1u << RSRE_ENV_DEMO) | (1u << RSRE_ENV_STAGING)}};
    enum { BASE_NONE, BASE_STRONG_AFTER, BASE_STRONG_BEFORE, NBASE };
    static const char *const base_names[NBASE] = {"tightening rule alone",
                                                  "strong rules, then the tightening rule",
                                                  "the tightening rule, then strong rules"};

    char *strong = strong_rules_yaml(1);
    struct rsre_ruleset *strong_rs = load(strong, NULL);
    uint8_t *tab_none = sweep_all(NULL);
    uint8_t *tab_strong = sweep_all(strong_rs);
    uint8_t *tab = calloc(table_size(), 1);
    assert_non_null(tab);
    struct rsre_ruleset *empty = NULL;
    assert_int_equal(rsre_ruleset_create(NULL, &empty), 0);
    size_t nbuiltin = rsre_ruleset_count(empty);
    rsre_ruleset_destroy(empty);
    unsigned long sets = 0, rejected = 0;
    char ctx[256];

    for (size_t i = 0; i < T->nincidents; i++) {
        const struct rsre_incident_def *inc = &T->incidents[i];
        for (size_t a = 0; a < T->nactions; a++) {
            const struct rsre_action_def *act = &T->actions[a];
            enum rsre_binding bind = (enum rsre_binding)inc->binding[a];
            for (size_t m = 0; m < COUNT(modes); m++) {
                int allowed = bind != RSRE_BIND_NONE && !(act->human_only && m == 0);
                for (size_t s = 0; s < COUNT(scopes); s++) {
                    char *ty = tighten_yaml(inc, act, modes[m], scopes[s].yaml);
                    for (int base = 0; base < NBASE; base++) {
                        /* Load base + tightening rule in the order named. */
                        struct rsre_ruleset *rs = NULL;
                        struct rsre_rule_error err;
                        assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
                        const char *first = base == BASE_STRONG_BEFORE  ? ty
                                            : base == BASE_STRONG_AFTER ? strong
                                                                        : ty;
                        const char *second = base == BASE_STRONG_BEFORE  ? strong
                                             : base == BASE_STRONG_AFTER ? ty
                                                                         : NULL;
                        snprintf(ctx, sizeof(ctx), "%s; %s %s for %s in %s", base_names[base],
                                 modes[m], act->id, inc->id, scopes[s].yaml);
                        context = ctx;
                        context_yaml[0] = first == strong ? "(strong rules)" : first;
                        context_yaml[1] = second == strong ? "(strong rules)" : second;
                        int rc_ty = 0;
                        for (int f = 0; f < 2; f++) {
                            const char *text = f ? second : first;
                            if (!text) {
                                continue;
                            }
                            int rc = rsre_ruleset_add_yaml(rs, f ? "second.yaml" : "first.yaml",
                                                           text, strlen(text), &err);
                            if (text == ty) {
                                rc_ty = rc;
                            } else {
                                assert_int_equal(rc, 0);
                            }
                        }
                        sets++;
                        const uint8_t *ref = base == BASE_NONE ? tab_none : tab_strong;
                        size_t base_count =
                            base == BASE_NONE ? nbuiltin : rsre_ruleset_count(strong_rs);
                        if (!allowed) {
                            /* Refused as a boundary crossing, and the set is unchanged. */
                            if (rc_ty != RSRE_EBOUNDARY) {
                                pc_violation(&chk, V_LOADER, NULL, NULL,
                                             "tightening rule returned %d, expected "
                                             "RSRE_EBOUNDARY (%d)",
                                             rc_ty, RSRE_EBOUNDARY);
                            }
                            if (rsre_ruleset_count(rs) != base_count) {
                                pc_violation(&chk, V_LOADER, NULL, NULL,
                                             "set has %zu rules, expected %zu",
                                             rsre_ruleset_count(rs), base_count);
                            }
                            sweep_pair(rs, i, a, tab);
                            for (int e = 0; e < RSRE_ENV_COUNT; e++) {
                                for (int c = 0; c < RSRE_CONF_COUNT; c++) {
                                    for (size_t t = 0; t < NT; t++) {
                                        for (int l = 0; l < NLR; l++) {
                                            size_t x = IDX(i, a, e, c, t, l);
                                            if (tab[x] != ref[x]) {
                                                pc_violation(&chk, V_LOADER, NULL, NULL,
                                                             "rejected rule changed a verdict");
                                            }
                                        }
                                    }
                                }
                            }
                            rejected++;
                            rsre_ruleset_destroy(rs);
                            continue;
                        }
                        if (rc_ty != 0 || rsre_ruleset_count(rs) != base_count + 1) {
                            char msg[600];
                            rsre_rule_error_format(&err, msg, sizeof(msg));
                            pc_violation(&chk, V_LOADER, NULL, NULL,
                                         "valid tightening rejected (%d): %s", rc_ty, msg);
                            rsre_ruleset_destroy(rs);
                            continue;
                        }
                        /* The tightened action: every combination. */
                        sweep_pair(rs, i, a, tab);
                        /* Three other actions of the class: unchanged. */
                        size_t others[3] = {(a + 1) % T->nactions, (a + 7) % T->nactions,
                                            (a + 23) % T->nactions};
                        for (int o = 0; o < 3; o++) {
                            sweep_pair(rs, i, others[o], tab);
                        }
                        for (int e = 0; e < RSRE_ENV_COUNT; e++) {
                            for (int c = 0; c < RSRE_CONF_COUNT; c++) {
                                for (size_t t = 0; t < NT; t++) {
                                    for (int l = 0; l < NLR; l++) {
                                        size_t x = IDX(i, a, e, c, t, l);
                                        int sw = pc_strictness((enum rsre_verdict)tab[x]);
                                        int so = pc_strictness((enum rsre_verdict)ref[x]);
                                        int in_scope = (scopes[s].mask >> e) & 1u;
                                        if (sw < so || (in_scope && sw < (int)m + 1) ||
                                            (!in_scope && tab[x] != ref[x])) {
                                            struct rsre_decision d;
                                            long long cd = rsre_policy_cooldown(
                                                T, inc, act, (enum rsre_env)e, rs);
                                            struct rsre_policy_request q = {
                                                .incident = inc,
                                                .action = act,
                                                .env = (enum rsre_env)e,
                                                .confidence = (enum rsre_confidence)c,
                                                .target = targets[t],
                                                .rules = rs,
                                                .now = NOW,
                                                .last_run = last_run_for(l, cd)};
                                            rsre_policy_decide(&q, &d);
                                            int kind =
                                                sw >= so ? (in_scope ? (int)PC_I8_TIGHTEN
                                                                     : (int)V_TIGHTEN_SIDE_EFFECT)
                                                : ref[x] == RSRE_VERDICT_DENIED &&
                                                        tab[x] == RSRE_VERDICT_HUMAN_ONLY &&
                                                        l == 1 && act->cls >= RSRE_CLASS_CONTAIN &&
                                                        tab[IDX(i, a, e, c, t, 0)] ==
                                                            RSRE_VERDICT_HUMAN_ONLY
                                                    ? V_MONO_TIGHTEN_COOLDOWN
                                                    : V_MONO_TIGHTEN;
                                            pc_violation(
                                                &chk, kind, &q, &d,
                                                "without the tightening rule: %s; the "
                                                "rule asks for %s in %s",
                                                rsre_verdict_name((enum rsre_verdict)ref[x]),
                                                modes[m], scopes[s].yaml);
                                        }
                                        for (int o = 0; o < 3; o++) {
                                            size_t y = IDX(i, others[o], e, c, t, l);
                                            if (others[o] != a && tab[y] != ref[y]) {
                                                pc_violation(
                                                    &chk, V_TIGHTEN_SIDE_EFFECT, NULL, NULL,
                                                    "%s: %s -> %s", T->actions[others[o]].id,
                                                    rsre_verdict_name((enum rsre_verdict)ref[y]),
                                                    rsre_verdict_name((enum rsre_verdict)tab[y]));
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        rsre_ruleset_destroy(rs);
                    }
                    free(ty);
                }
            }
        }
    }
    printf("  tightening: %lu rule sets (%lu tightening rules rejected at the boundary), %lu "
           "decisions\n",
           sets, rejected, chk.cnt.decisions);
    free(tab);
    free(tab_none);
    free(tab_strong);
    rsre_ruleset_destroy(strong_rs);
    free(strong);
    assert_true(rejected > 0);
    assert_int_equal(report_violations("tightening"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_rules),
        cmocka_unit_test(test_strong_rules),
        cmocka_unit_test(test_strong_rules_many),
        cmocka_unit_test(test_tightening_monotone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
