/*
 * Adversarial random operator rule sets against the spec's safety contract.
 *
 * At least 100,000 rule sets (1-5 files each) are generated from a seeded PRNG (RSRE_SEED, or
 * a fixed default; printed). Generation is biased toward attacks on the boundaries of
 * "Operator-Defined Rule Boundaries" and "Never Auto-Contain": mode auto on human-only,
 * disruptive, recover, approval-bound and unbound actions; never-auto-contain targets in many
 * spellings; cooldowns and quorums at and past their bounds; environment_scope variants;
 * conflicting modes for one (incident, action) across rules and files; duplicate keys;
 * unknown fields; file-level tricks; random byte mutations of rule text — plus a share of
 * valid rules so that acceptance is exercised (and asserted to be common).
 *
 * For each file the loader either rejects it (rc != 0, and then the set is unchanged) or
 * accepts it, and the accepted rules must themselves respect the boundaries (L*). For each
 * rule set with accepted operator rules, rsre_policy_decide is swept over the incidents and
 * actions the rules mention (plus a random sample of other actions), every environment and
 * confidence, and targets {the rules' targets, a never-auto-contain target, NULL, an
 * allowlisted target}, each with no cooldown and with last_run = now - 1, and every decision
 * is checked against I1-I8 (see check_decision). Violations are counted per invariant; the
 * first example of each is printed with the rule text that produced it, and the test fails at
 * the end if any invariant was violated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "engine/confidence.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"

#include "../support/policy_checker.c"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define RULESETS 100000
#define MAX_FILES 5
#define NOW 1700000000LL
#define DEFAULT_SEED 0x52535245u /* "RSRE" */

/* ---- PRNG (splitmix64) ---- */

static uint64_t rng_state;

static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static unsigned rn(unsigned n) {
    return n ? (unsigned)(rnd() % n) : 0;
}
static int chance(unsigned pct) {
    return rn(100) < pct;
}
#define PICK(arr) ((arr)[rn((unsigned)COUNT(arr))])

/* ---- string builder ---- */

struct sb {
    char *p;
    size_t len, cap;
};

static void sb_reserve(struct sb *b, size_t extra) {
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + extra + 1) {
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        assert_non_null(np);
        b->p = np;
        b->cap = cap;
    }
}

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_clear(struct sb *b) {
    b->len = 0;
    if (b->p) {
        b->p[0] = '\0';
    }
}

/* ---- the taxonomy, sorted into the categories the generator attacks with ---- */

static const struct rsre_taxonomy *T;

struct alist {
    const struct rsre_action_def *a[RSRE_MAX_ACTIONS];
    size_t n;
};

static struct alist g_human, g_disruptive, g_recover, g_contain, g_mutating, g_all;
static struct {
    struct alist human, disruptive, recover, approval, unbound, contain_auto, readonly, bound;
} by_inc[RSRE_MAX_INCIDENTS];
static struct {
    const struct rsre_incident_def *i[RSRE_MAX_INCIDENTS];
    size_t n;
} incs_with_contain;

static void push(struct alist *l, const struct rsre_action_def *a) {
    l->a[l->n++] = a;
}

static const struct rsre_action_def *pick(const struct alist *l) {
    return l->n ? l->a[rn((unsigned)l->n)] : NULL;
}

static void classify_taxonomy(void) {
    T = rsre_taxonomy_builtin();
    T = rsre_taxonomy_builtin();
    memset(&g_disruptive, 0, sizeof(g_disruptive));
    memset(&g_recover, 0, sizeof(g_recover));
    memset(&g_contain, 0, sizeof(g_contain));
    memset(&g_mutating, 0, sizeof(g_mutating));
    memset(&g_all, 0, sizeof(g_all));
    memset(by_inc, 0, sizeof(by_inc));
    memset(&incs_with_contain, 0, sizeof(incs_with_contain));
    for (size_t k = 0; k < T->nactions; k++) {
        const struct rsre_action_def *a = &T->actions[k];
        push(&g_all, a);
        if (a->human_only) {
            push(&g_human, a);
        } else if (a->cls == RSRE_CLASS_DISRUPTIVE) {
            push(&g_disruptive, a);
        } else if (a->cls == RSRE_CLASS_RECOVER) {
            push(&g_recover, a);
        } else if (a->cls == RSRE_CLASS_CONTAIN) {
            push(&g_contain, a);
        }
        if (a->mutates_config || a->helm || a->oci) {
            push(&g_mutating, a);
        }
    }
    for (size_t i = 0; i < T->nincidents; i++) {
        const struct rsre_incident_def *inc = &T->incidents[i];
        int has_contain = 0;
        for (size_t k = 0; k < T->nactions; k++) {
            const struct rsre_action_def *a = &T->actions[k];
            enum rsre_binding b = (enum rsre_binding)inc->binding[a->index];
            if (b == RSRE_BIND_NONE) {
                push(&by_inc[i].unbound, a);
                continue;
            }
            push(&by_inc[i].bound, a);
            if (a->human_only || b == RSRE_BIND_HUMAN) {
                push(&by_inc[i].human, a);
            } else if (b == RSRE_BIND_APPROVAL) {
                push(&by_inc[i].approval, a);
                if (a->cls == RSRE_CLASS_DISRUPTIVE) {
                    push(&by_inc[i].disruptive, a);
                } else if (a->cls == RSRE_CLASS_RECOVER) {
                    push(&by_inc[i].recover, a);
                }
            } else if (a->cls == RSRE_CLASS_CONTAIN) {
                push(&by_inc[i].contain_auto, a);
                has_contain = 1;
            } else if (a->cls <= RSRE_CLASS_NOTIFY) {
                push(&by_inc[i].readonly, a);
            }
        }
        if (has_contain) {
            incs_with_contain.i[incs_with_contain.n++] = inc;
        }
    }
    assert_true(g_human.n > 0 && g_disruptive.n > 0 && g_recover.n > 0 && g_contain.n > 0);
    assert_true(incs_with_contain.n > 0);
}

/* ---- spellings ---- */

/* Never-auto-contain targets as an operator might try to allowlist them. */
static const char *const never_spellings[] = {
    "ingress-nginx",
    "ingress-nginx/ingress-nginx-controller",
    "kube-system/ingress-nginx-controller",
    "kube-system/nginx-ingress-controller",
    "ingress-nginx/",
    "ingress-nginx/*",
    "Ingress-Nginx/ingress-nginx-controller",
    "INGRESS-NGINX",
    "ingress-?ginx/ingress-nginx-controller",
    "ingress\xe2\x80\x90nginx/ingress-nginx-controller", /* U+2010 hyphen */
    "\xd1\x96ngress-nginx/controller",                   /* Cyrillic i */
    "ingress-nginx\xe2\x80\x8b",                         /* zero-width space */
    "cert-manager",
    "cert-manager/cert-manager",
    "cert-manager/cert-manager-webhook",
    "cert-manager/cert-manager-cainjector",
    "kube-system/cert-manager",
    "CERT-MANAGER/cert-manager",
    "Cert-Manager",
    "cert-manager/",
    "cert-manager/cert-manager/",
    "/cert-manager",
    " cert-manager",
    "cert-manager ",
    "cert\xe2\x80\x93manager", /* en dash */
    "\321\201ert-manager",     /* Cyrillic es */
    "cert-manager.io/certificate",
    "supabase",
    "supabase/supabase-db",
    "supabase/kong",
    "supabase/supabase-auth",
    "default/supabase-auth",
    "platform/supabase-studio",
    "Supabase/db",
    "supa*",
    "supabase/*",
    "kube-system",
    "kube-system/coredns",
    "Kube-System/kube-proxy",
    "KUBE-SYSTEM/*",
    "kube-system/",
    "*",
    "?",
    "*/*",
    "**",
    "[a-z]*",
    "a/b/c",
    ".",
    "..",
    "../cert-manager",
    "cert-manager\\x",
};

/* Realistic never-auto-contain targets a decision may be asked about. */
static const char *const never_request_targets[] = {
    "cert-manager",
    "cert-manager/cert-manager",
    "cert-manager/cert-manager-webhook",
    "ingress-nginx",
    "ingress-nginx/ingress-nginx-controller",
    "kube-system/ingress-nginx-controller",
    "kube-system/nginx-ingress-controller",
    "supabase",
    "supabase/supabase-db",
    "supabase/kong",
    "default/supabase-auth",
};

/* Targets covered by the built-in allowlist families. */
static const char *const allowlisted_targets[] = {
    "trivy-db-warmup",
    "headlamp",
    "tekton-pipelines/tekton-pipelines-controller",
    "tekton-pipelines-resolvers/tekton-pipelines-remote-resolvers",
    "image-factory-demo/web",
    "default",
    "image-factory",
    "telegram",
};

/* Valid operator targets: lowercase, concrete, not on the never list. */
static const char *const valid_targets[] = {
    "demo/app-1",
    "image-factory-demo/worker",
    "batch/nightly-report",
    "trivy-db-warmup",
    "monitoring/grafana-backup",
    "tekton-pipelines/tekton-dashboard",
    "ci/runner-7",
    "headlamp",
    "jobs",
    "image-factory",
};
static const char *const channel_targets[] = {"telegram", "whatsapp", "inapp"};

static const char *const weird_modes[] = {
    "Auto",
    "AUTO",
    "\"auto\"",
    "'auto'",
    "auto ",
    "\"auto \"",
    "yes",
    "true",
    "on",
    "~",
    "\"\"",
    "[auto]",
    "{auto: true}",
    "automatic",
    "\"auto\xe2\x80\x8b\"",
    "\"\xd0\xb0uto\"",
    "null",
    "manual",
    "\"approval\\u0000auto\"",
    "!!str auto",
    "auto # approval",
    "'deny'",
};

static const char *const valid_exprs[] = {
    "node.disk_pressure == 1",
    "dep.failing >= 1",
    "jobs.finished_pods > 200",
    "chat.channels_down >= 1",
    "true",
    "node.disk_pressure_held > 10m",
    "count(node.ready == 0) >= 2",
    "nodefs.used_ratio > 90% and node.disk_pressure == 1",
    "http.error_ratio > 5%",
    "ldap.failing == 1",
};
static const char *const bad_exprs[] = {
    "node.disk_pressure ==",      "rm -rf /", "$(reboot)", "`id`",
    "no.such.signal > 1",         "((((",     "",          "1 +",
    "node.disk_pressure == 1 or",
};

static const char *const cooldowns_any[] = {
    "0",
    "-1",
    "1",
    "59",
    "60",
    "61",
    "900",
    "3600",
    "604800",
    "604801",
    "9223372036854775807",
    "99999999999999999999",
    "60s",
    "1e3",
    "0x3c",
    "\"120\"",
    "~",
    "[60]",
    "-0",
    "+60",
    "60.0",
    "3599",
    "\"60\"",
};
static const char *const valid_cooldowns[] = {"60", "61", "300", "900", "3600", "86400", "604800"};

static const char *const quorums_any[] = {"0",   "1", "2",   "5",   "6",     "-1", "two",
                                          "1.5", "3", "100", "0x2", "\"2\"", "~"};

static const char *const env_valid[] = {
    "all",
    "[demo]",
    "[staging]",
    "[production]",
    "[demo, staging]",
    "[staging, production]",
    "[demo, staging, production]",
    "[production, demo]",
};
static const char *const env_any[] = {
    "all",          "[demo]",
    "[production]", "[demo, staging, production]",
    "[Production]", "[]",
    "prod",         "[demo, demo]",
    "[all]",        "\"*\"",
    "[demo, prod]", "ALL",
    "{demo: true}", "[\"production\"]",
    "production",   "[demo, staging, production, moon]",
};

static const char *const unknown_fields[] = {
    "class: observe",
    "human_only: false",
    "force: true",
    "override_hard_constraints: true",
    "bypass: yes",
    "priority: 999",
    "auto_envs: [production]",
    "family: finished_pod_cleanup",
    "requires_allowlist: false",
    "never_auto_contain: []",
    "allowlist: [\"cert-manager\"]",
    "mode: auto",
    "confidence: low",
    "command: reboot",
    "token: abc",
    "api_key: \"AKIAABCDEFGHIJKLMNOP\"",
    "script: \"/bin/sh -c reboot\"",
};
static const char *const profile_unknown[] = {
    "force: true",       "class: contain",
    "human_only: false", "requires_allowlist: false",
    "confidence: low",   "family: operator_channels",
    "env: production",   "cmd: reboot",
};

static const char *const severities[] = {"info", "warning", "critical"};

/* ---- the generator ---- */

struct gen {
    unsigned long serial; /* rule set number */
    unsigned nid;         /* ids issued in this rule set */
    char prev_id[96];     /* an id already used in this rule set (for EEXIST) */
    const struct rsre_incident_def *focus_inc;
    const struct rsre_action_def *focus_action;
    int pileup; /* many rules on the focus (incident, action), each with a cooldown */
};

/* Rule line writer: keys of a rule are at `ind`; the first key of a list item gets "  - ". */
struct emit {
    struct sb *b;
    const char *ind;
    int in_list, first;
};

static void key_line(struct emit *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void key_line(struct emit *e, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sb_printf(e->b, "%s%s\n", e->in_list && e->first ? "  - " : e->ind, line);
    e->first = 0;
}

static void yaml_quote(char *out, size_t cap, const char *s) {
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 4 < cap; s++) {
        if (*s == '"' || *s == '\\') {
            out[o++] = '\\';
        }
        out[o++] = *s;
    }
    out[o++] = '"';
    out[o] = '\0';
}

static const char *rand_target(int polite, const struct rsre_action_def *a) {
    static char longbuf[2][400];
    static unsigned which;
    if (polite) {
        return a && a->family && !strcmp(a->family, "operator_channels") ? PICK(channel_targets)
                                                                         : PICK(valid_targets);
    }
    unsigned r = rn(100);
    if (r < 60) {
        return PICK(never_spellings);
    }
    if (r < 85) {
        return PICK(valid_targets);
    }
    char *lb = longbuf[which++ & 1];
    switch (rn(5)) {
    case 0: /* very long, never-list prefix */
        snprintf(lb, sizeof(longbuf[0]), "cert-manager/");
        for (size_t n = strlen(lb); n < 300; n++) {
            lb[n] = 'a';
            lb[n + 1] = '\0';
        }
        return lb;
    case 1: /* exactly at the length limit, harmless */
        memset(lb, 'x', RSRE_RULE_MAX_TARGET_LEN);
        lb[RSRE_RULE_MAX_TARGET_LEN] = '\0';
        lb[10] = '/';
        return lb;
    case 2: /* at the limit, ending in a never name */
        memset(lb, 'y', RSRE_RULE_MAX_TARGET_LEN);
        lb[RSRE_RULE_MAX_TARGET_LEN] = '\0';
        memcpy(lb + RSRE_RULE_MAX_TARGET_LEN - 13, "/cert-manager", 13);
        return lb;
    case 3: /* one byte over the length limit, harmless */
        memset(lb, 'z', RSRE_RULE_MAX_TARGET_LEN + 1);
        lb[RSRE_RULE_MAX_TARGET_LEN + 1] = '\0';
        return lb;
    default:
        return PICK(valid_targets);
    }
}

/* Never-auto-contain names spelled with YAML escapes and styles, emitted verbatim. */
static const char *const raw_never_spellings[] = {
    "\"\\u0063ert-manager\"",
    "\"\\x63ert-manager/cert-manager\"",
    "\"supa\\x62ase/supabase-db\"",
    "\"cert-manager\\0\"",
    "\"demo/app-1\\0cert-manager\"",
    "\"ingress-nginx/ingress-nginx-controller\\t\"",
    "\"ingress-nginx\\/ingress-nginx-controller\"",
    "'cert-manager'",
    "cert-manager",
    "!!str supabase",
    "\"\\U00000063ert-manager\"",
    "\"cert-\\\n  manager\"",
};

static void emit_targets(struct sb *b, int polite, const struct rsre_action_def *a, unsigned n) {
    sb_printf(b, "[");
    for (unsigned k = 0; k < n; k++) {
        char q[520];
        if (!polite && chance(8)) {
            snprintf(q, sizeof(q), "%s", PICK(raw_never_spellings));
        } else {
            yaml_quote(q, sizeof(q), rand_target(polite, a));
        }
        sb_printf(b, "%s%s", k ? ", " : "", q);
    }
    sb_printf(b, "]");
}

/* A mode word valid for (incident, action) — the modes a careful operator can set. */
/* A mode word valid for (incident, action) — the modes a careful operator can set. Auto is
 * kept out of rules whose scope includes production unless the catalogue allows the action
 * to run alone there (spec "Environment Modes": production auto-remediation is restricted to
 * clearly safe idempotent actions). */
static const char *polite_mode(const struct rsre_incident_def *inc, const struct rsre_action_def *a,
                               int scope_has_production) {
    enum rsre_binding b = (enum rsre_binding)inc->binding[a->index];
    if (a->human_only || b == RSRE_BIND_HUMAN) {
        return chance(50) ? "human_only" : "deny";
    }
    if (b == RSRE_BIND_APPROVAL ||
        (scope_has_production && !(a->auto_envs & (1u << RSRE_ENV_PRODUCTION)))) {
        static const char *const m[] = {"approval", "human_only", "deny"};
        return PICK(m);
    }
    static const char *const m[] = {"auto", "auto", "auto", "approval", "human_only", "deny"};
    return PICK(m);
}

static const struct rsre_action_def *attack_action(const struct rsre_incident_def *inc) {
    const struct rsre_action_def *a = NULL;
    unsigned r = rn(100);
    size_t i = inc->index;
    if (r < 18) {
        a = chance(60) ? pick(&by_inc[i].human) : NULL;
        a = a ? a : pick(&g_human);
    } else if (r < 32) {
        a = chance(60) ? pick(&by_inc[i].disruptive) : NULL;
        a = a ? a : pick(&g_disruptive);
    } else if (r < 45) {
        a = chance(60) ? pick(&by_inc[i].recover) : NULL;
        a = a ? a : pick(&g_recover);
    } else if (r < 52) {
        a = pick(&g_mutating);
    } else if (r < 60) {
        a = pick(&by_inc[i].approval);
    } else if (r < 70) {
        a = pick(&by_inc[i].unbound);
    } else if (r < 90) {
        a = pick(&by_inc[i].contain_auto);
        a = a ? a : pick(&g_contain);
    } else {
        a = pick(&by_inc[i].readonly);
    }
    return a ? a : pick(&g_all);
}

static void emit_profile(struct emit *e, struct gen *g, const struct rsre_incident_def *inc,
                         int polite, int scope_has_production) {
    const struct rsre_action_def *used[8];
    unsigned n = 1 + rn(4), nused = 0;
    key_line(e, "allowed_action_profile:");
    for (unsigned k = 0; k < n; k++) {
        const struct rsre_action_def *a;
        if (k == 0 && inc == g->focus_inc && (g->pileup || chance(65))) {
            a = g->focus_action;
        } else if (polite) {
            a = pick(&by_inc[inc->index].bound);
        } else {
            a = attack_action(inc);
        }
        int dup = 0;
        for (unsigned u = 0; u < nused; u++) {
            dup |= used[u] == a;
        }
        if (dup && (polite || chance(80))) {
            continue; /* an action listed twice is a (rarely wanted) schema error */
        }
        used[nused++] = a;

        /* Fields of the entry. */
        char mode[64] = "", targets[2048] = "", quorum[32] = "";
        if (polite) {
            int bound_auto = a->cls == RSRE_CLASS_CONTAIN || a->cls <= RSRE_CLASS_NOTIFY;
            if (!bound_auto || chance(85)) {
                snprintf(mode, sizeof(mode), "%s", polite_mode(inc, a, scope_has_production));
            }
            if (a->family && chance(70)) {
                struct sb tb = {0};
                emit_targets(&tb, 1, a, 1 + rn(3));
                snprintf(targets, sizeof(targets), "%s", tb.p);
                free(tb.p);
            }
            if (chance(20) || (!mode[0] && !targets[0])) {
                snprintf(quorum, sizeof(quorum), "%u", 1 + rn(RSRE_QUORUM_MAX));
            }
        } else {
            unsigned r = rn(100);
            if (r < 50) {
                snprintf(mode, sizeof(mode), "auto");
            } else if (r < 58) {
                snprintf(mode, sizeof(mode), "approval");
            } else if (r < 66) {
                snprintf(mode, sizeof(mode), "human_only");
            } else if (r < 74) {
                snprintf(mode, sizeof(mode), "deny");
            } else if (r < 82) {
                mode[0] = '\0';
            } else {
                snprintf(mode, sizeof(mode), "%s", PICK(weird_modes));
            }
            if (chance(45)) {
                struct sb tb = {0};
                emit_targets(&tb, chance(25), a, 1 + rn(3));
                snprintf(targets, sizeof(targets), "%s", tb.p);
                free(tb.p);
            }
            if (chance(30)) {
                snprintf(quorum, sizeof(quorum), "%s", PICK(quorums_any));
            }
        }

        if (chance(polite ? 30 : 25)) {
            /* Flow style. */
            sb_printf(e->b, "%s  - {action: %s", e->ind, a->id);
            if (mode[0]) {
                sb_printf(e->b, ", mode: %s", mode);
            }
            if (targets[0]) {
                sb_printf(e->b, ", targets: %s", targets);
            }
            if (quorum[0]) {
                sb_printf(e->b, ", quorum: %s", quorum);
            }
            if (!polite && chance(10)) {
                sb_printf(e->b, ", %s", PICK(profile_unknown));
            }
            if (!polite && chance(8)) {
                sb_printf(e->b, ", mode: %s", chance(50) ? "auto" : "approval");
            }
            sb_printf(e->b, "}\n");
        } else {
            /* Block style, fields in random order. */
            const char *lines[8];
            char buf[8][2200];
            unsigned nl = 0;
            snprintf(buf[nl], sizeof(buf[nl]), "action: %s", a->id);
            lines[nl] = buf[nl], nl++;
            if (mode[0]) {
                snprintf(buf[nl], sizeof(buf[nl]), "mode: %s", mode);
                lines[nl] = buf[nl], nl++;
            }
            if (targets[0]) {
                snprintf(buf[nl], sizeof(buf[nl]), "targets: %s", targets);
                lines[nl] = buf[nl], nl++;
            }
            if (quorum[0]) {
                snprintf(buf[nl], sizeof(buf[nl]), "quorum: %s", quorum);
                lines[nl] = buf[nl], nl++;
            }
            if (!polite && chance(10)) {
                lines[nl++] = PICK(profile_unknown);
            }
            if (!polite && chance(8)) {
                /* Duplicate key: tighten first, then auto (or the reverse). */
                lines[nl++] = chance(50) ? "mode: auto" : "mode: approval";
            }
            for (unsigned x = nl; x > 1; x--) {
                unsigned y = rn(x);
                const char *tmp = lines[x - 1];
                lines[x - 1] = lines[y];
                lines[y] = tmp;
            }
            for (unsigned x = 0; x < nl; x++) {
                sb_printf(e->b, "%s  %s%s\n", e->ind, x == 0 ? "- " : "  ", lines[x]);
            }
        }
    }
}

/* Emits one rule. polite: every field valid (the rule must be accepted). */
static void emit_rule(struct sb *b, struct gen *g, int in_list, int polite) {
    struct emit e = {.b = b, .ind = in_list ? "    " : "", .in_list = in_list, .first = 1};
    const struct rsre_incident_def *inc =
        g->pileup || chance(70) ? g->focus_inc : &T->incidents[rn((unsigned)T->nincidents)];
    enum {
        F_ID,
        F_NAME,
        F_ENABLED,
        F_DOMAIN,
        F_INC,
        F_ENV,
        F_SEL,
        F_THR,
        F_SEV,
        F_ESC,
        F_NOTIF,
        F_PROFILE,
        F_COOL,
        F_SUPP,
        F_OWNER,
        F_VERSION,
        F_UNKNOWN,
        F_DUP,
        F_N
    };
    int order[F_N];
    for (int i = 0; i < F_N; i++) {
        order[i] = i;
    }
    for (int i = F_N - 1; i > 0; i--) {
        int j = (int)rn((unsigned)i + 1);
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    char id[96];
    snprintf(id, sizeof(id), "op-%lu-%u", g->serial, g->nid++);
    int sev = (int)rn(3);
    const char *env_scope = PICK(env_valid);
    int scope_has_production = !!strstr(env_scope, "production") || !strcmp(env_scope, "all");
    /* Attack rules pick a few kinds of trouble; each may happen to be harmless. */
    int bad_id = !polite && chance(6), bad_cool = !polite && chance(35),
        bad_env = !polite && chance(15), unknown = !polite && chance(12),
        dupkey = !polite && chance(8), bad_dom = !polite && chance(4),
        bad_inc = !polite && chance(4), bad_expr = !polite && chance(5),
        no_profile = chance(polite ? 10 : 5);
    for (int oi = 0; oi < F_N; oi++) {
        switch (order[oi]) {
        case F_ID:
            if (bad_id) {
                static const char *const bad[] = {
                    "Bad_ID",
                    "builtin.node_disk_pressure",
                    "\"\"",
                    "x y",
                    "-lead",
                    "op-with-a-very-long-identifier-that-exceeds-sixty-three-characters-xx",
                    "builtin.background_job_buildup",
                    "~",
                    "[a]"};
                if (chance(50) && g->prev_id[0]) {
                    key_line(&e, "id: %s", g->prev_id); /* duplicate id: EEXIST */
                } else {
                    key_line(&e, "id: %s", PICK(bad));
                }
            } else {
                key_line(&e, "id: %s", id);
                snprintf(g->prev_id, sizeof(g->prev_id), "%s", id);
            }
            break;
        case F_NAME:
            key_line(&e, "name: \"Rule %s\"", id);
            break;
        case F_ENABLED:
            if (chance(30)) {
                key_line(&e, "enabled: %s",
                         polite ? (chance(30) ? "false" : "true")
                                : (chance(50)   ? "maybe"
                                   : chance(50) ? "false"
                                                : "yes"));
            }
            break;
        case F_DOMAIN:
            key_line(&e, "domain: %s",
                     bad_dom ? T->domains[rn((unsigned)T->ndomains)].id : inc->domain->id);
            break;
        case F_INC:
            if (bad_inc) {
                static const char *const bad[] = {
                    "Node_Disk_Pressure", "node_disk_pressure ", "all", "*", "nodes", "\"\""};
                key_line(&e, "incident_type: %s", PICK(bad));
            } else {
                key_line(&e, "incident_type: %s", inc->id);
            }
            break;
        case F_ENV:
            if (!bad_env || chance(85)) {
                key_line(&e, "environment_scope: %s", bad_env ? PICK(env_any) : env_scope);
            }
            break;
        case F_SEL:
            if (chance(30)) {
                key_line(&e, "signal_selector: \"%s\"", chance(50) ? "node=*" : "*");
            }
            break;
        case F_THR:
            key_line(&e, "threshold_expression: \"%s\"",
                     bad_expr ? PICK(bad_exprs) : PICK(valid_exprs));
            break;
        case F_SEV:
            key_line(&e, "severity: %s", polite || chance(95) ? severities[sev] : "fatal");
            break;
        case F_ESC:
            if (chance(15)) {
                key_line(&e, "severity_escalations:");
                sb_printf(b, "%s  - {severity: critical, when: \"%s\"}\n", e.ind,
                          PICK(valid_exprs));
            }
            break;
        case F_NOTIF:
            if (chance(20)) {
                key_line(&e,
                         "notification_policy: {channels: [telegram, inapp], route: ops, "
                         "dedupe_seconds: %s}",
                         polite || chance(80) ? "600" : "5");
            }
            break;
        case F_PROFILE:
            if (!no_profile) {
                emit_profile(&e, g, inc, polite, scope_has_production);
            }
            break;
        case F_COOL:
            if (bad_cool) {
                key_line(&e, "cooldown_seconds: %s", PICK(cooldowns_any));
            } else if (g->pileup || chance(35)) {
                key_line(&e, "cooldown_seconds: %s", PICK(valid_cooldowns));
            }
            break;
        case F_SUPP:
            if (chance(10)) {
                key_line(&e,
                         "suppression_schedule: [{days: [sat, sun], from: \"22:00\", to: "
                         "\"%s\"}]",
                         polite || chance(80) ? "06:00" : "25:00");
            }
            break;
        case F_OWNER:
            key_line(&e, "owner: sre-team");
            break;
        case F_VERSION:
            key_line(&e, "version: %s", polite || chance(95) ? "3" : "0");
            break;
        case F_UNKNOWN:
            if (unknown) {
                key_line(&e, "%s", PICK(unknown_fields));
            }
            break;
        case F_DUP:
            if (dupkey) {
                static const char *const d[] = {"incident_type: node_disk_pressure",
                                                "cooldown_seconds: 60",
                                                "environment_scope: all",
                                                "allowed_action_profile: []",
                                                "id: op-duplicate",
                                                "enabled: true"};
                key_line(&e, "%s", PICK(d));
            }
            break;
        default:
            break;
        }
    }
}

/* Mutations of valid-looking text: flips, deletions, insertions, truncation, line copies. */
static void mutate(struct sb *b) {
    static const char noise[] = ":-[]{}#&*!|>'\"%@` \n\t,?";
    unsigned ops = 1 + rn(4);
    for (unsigned o = 0; o < ops && b->len > 0; o++) {
        size_t at = rn((unsigned)b->len);
        switch (rn(6)) {
        case 0:
            b->p[at] = (char)rnd();
            break;
        case 1:
            b->p[at] ^= (char)(1u << rn(8));
            break;
        case 2:
            memmove(b->p + at, b->p + at + 1, b->len - at);
            b->len--;
            break;
        case 3:
            sb_reserve(b, 1);
            memmove(b->p + at + 1, b->p + at, b->len - at + 1);
            b->p[at] = noise[rn(sizeof(noise) - 1)];
            b->len++;
            break;
        case 4:
            b->len = at;
            b->p[at] = '\0';
            break;
        default: { /* duplicate the line around `at` */
            size_t s = at, t = at;
            while (s > 0 && b->p[s - 1] != '\n') {
                s--;
            }
            while (t < b->len && b->p[t] != '\n') {
                t++;
            }
            size_t n = t - s + (t < b->len);
            sb_reserve(b, n);
            memmove(b->p + s + n, b->p + s, b->len - s + 1);
            b->len += n;
            break;
        }
        }
    }
}

enum file_kind { FK_POLITE, FK_ATTACK, FK_MUTATED, FK_TRICK };

/* One rule file: a single mapping or a `rules:` list, polite, attacking, mutated or a trick. */
static enum file_kind gen_file(struct sb *b, struct gen *g, unsigned *nrules_out) {
    sb_clear(b);
    unsigned r = rn(100);
    *nrules_out = 0;
    if (r < 3) { /* file-level tricks */
        switch (rn(12)) {
        case 0:
            sb_printf(b, "rules: []\n");
            break;
        case 1:
            sb_printf(b, "rules: {}\n");
            break;
        case 2:
            g->nid++;
            emit_rule(b, g, 0, 1);
            sb_printf(b, "---\n");
            emit_rule(b, g, 0, 1);
            break;
        case 3:
            sb_printf(b, "rules:\n");
            emit_rule(b, g, 1, 1);
            sb_printf(b, "extra: true\n");
            break;
        case 4:
            sb_printf(b, "- just\n- a list\n");
            break;
        case 5:
            break; /* empty */
        case 6:
            sb_printf(b, "\xef\xbb\xbf"); /* BOM, then a valid rule */
            emit_rule(b, g, 0, 1);
            break;
        case 7: {
            sb_printf(b, "rules:\n  - &r\n    id: anchored\n  - *r\n");
            break;
        }
        case 8:
            sb_printf(b, "x: ");
            for (int i = 0; i < 40; i++) {
                sb_printf(b, "[");
            }
            for (int i = 0; i < 40; i++) {
                sb_printf(b, "]");
            }
            sb_printf(b, "\n");
            break;
        case 9: /* larger than RSRE_RULE_MAX_FILE */
            if (chance(20)) {
                sb_reserve(b, RSRE_RULE_MAX_FILE + 16);
                memset(b->p, '#', RSRE_RULE_MAX_FILE + 8);
                b->len = RSRE_RULE_MAX_FILE + 8;
                b->p[b->len] = '\0';
            } else {
                sb_printf(b, "rules: ~\n");
            }
            break;
        case 10: /* an embedded NUL inside a valid rule */
            emit_rule(b, g, 0, 1);
            if (b->len > 4) {
                b->p[rn((unsigned)b->len)] = '\0';
            }
            break;
        default:
            sb_printf(b, "rules:\n");
            emit_rule(b, g, 1, 1);
            sb_printf(b, "rules:\n");
            emit_rule(b, g, 1, 1);
            break;
        }
        return FK_TRICK;
    }
    int polite = r < 35;
    int list = g->pileup || chance(55);
    unsigned n = list ? (g->pileup ? 3 + rn(4) : 1 + rn(4)) : 1;
    if (list) {
        sb_printf(b, "rules:\n");
    }
    for (unsigned k = 0; k < n; k++) {
        emit_rule(b, g, list, polite || chance(20));
    }
    *nrules_out = n;
    if (!polite && chance(30)) {
        mutate(b);
        return FK_MUTATED;
    }
    return polite ? FK_POLITE : FK_ATTACK;
}

/* ---- counters and violations: the shared decision invariants (tests/support/policy_checker.c)
 * + the loader's ---- */

enum viol { V_L_BOUNDARY = PC_COUNT, V_L_UNCHANGED, V_L_COUNT, V_POLITE_REJECTED, V_COUNT };
static const char *const viol_names[V_COUNT] = {
    PC_NAMES,
    "L  accepted rule crosses a boundary (auto mode, target, cooldown, quorum, id, scope)",
    "L  rejected load changed the rule set",
    "L  accepted file added a different number of rules than it holds",
    "L  a valid (polite) rule file was rejected",
};
static unsigned long viol[V_COUNT];

static struct {
    unsigned long rulesets, files, files_by_kind[4], accepted_files, accepted_by_kind[4],
        rejected_by_code[8], rejected_other, rulesets_accepted, op_rules;
} cnt;

static const char *code_names[] = {"EPARSE", "EINVALID", "EBOUNDARY", "ENOTFOUND",
                                   "ELIMIT", "EEXIST",   "other",     "-errno"};
static int code_slot(int rc) {
    switch (rc) {
    case RSRE_EPARSE:
        return 0;
    case RSRE_EINVALID:
        return 1;
    case RSRE_EBOUNDARY:
        return 2;
    case RSRE_ENOTFOUND:
        return 3;
    case RSRE_ELIMIT:
        return 4;
    case RSRE_EEXIST:
        return 5;
    default:
        return rc < 0 && rc > -4096 ? 7 : 6;
    }
}

/* The current rule set's files, for violation reports. */
static struct sb files[MAX_FILES];
static int file_rc[MAX_FILES];
static unsigned nfiles;
static uint64_t seed;

static void dump_files(void) {
    for (unsigned f = 0; f < nfiles; f++) {
        fprintf(stderr, "  --- file %u (rc %d%s) ---\n", f, file_rc[f],
                file_rc[f] ? ", rejected" : ", accepted");
        size_t shown = files[f].len < 4000 ? files[f].len : 4000;
        for (size_t i = 0; i < shown; i++) {
            unsigned char c = (unsigned char)files[f].p[i];
            if (c == '\n' || (c >= 0x20 && c < 0x7f)) {
                fputc(c, stderr);
            } else {
                fprintf(stderr, "\\x%02x", c);
            }
        }
        if (shown < files[f].len) {
            fprintf(stderr, "\n  ... (%zu bytes)", files[f].len);
        }
        fputc('\n', stderr);
    }
}

static void print_context(void *arg) {
    (void)arg;
    fprintf(stderr, "  seed %llu, rule set %lu\n", (unsigned long long)seed, cnt.rulesets);
    dump_files();
}

static struct policy_checker chk = {
    .now = NOW, .viol = viol, .names = viol_names, .context = print_context};

static int concrete_target(const char *s) {
    size_t slashes = 0;
    if (!s || !*s || *s == '/' || strlen(s) > RSRE_RULE_MAX_TARGET_LEN) {
        return 0;
    }
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
              *p == '_' || *p == '/')) {
            return 0;
        }
        slashes += *p == '/';
    }
    return slashes <= 1 && s[strlen(s) - 1] != '/';
}

/* ---- the decision invariants ---- */

static void check_decision(const struct rsre_ruleset *rs, const struct rsre_incident_def *inc,
                           const struct rsre_action_def *a, enum rsre_env env,
                           enum rsre_confidence conf, const char *target, long long last_run) {
    chk.t = T;
    pc_check(&chk, rs, inc, a, env, conf, target, last_run, NULL);
}

/* Loader invariants on every accepted operator rule. */
static void check_loaded_rule(const struct rsre_rule *r) {
    if (r->builtin || !r->incident || !strncmp(r->id, "builtin.", 8) || r->env_mask == 0 ||
        r->env_mask > 7u ||
        (r->cooldown_seconds != -1 &&
         (r->cooldown_seconds < RSRE_COOLDOWN_FLOOR || r->cooldown_seconds > 7LL * 86400)) ||
        r->nprofile > RSRE_RULE_MAX_PROFILE || strcmp(r->domain, r->incident->domain->id)) {
        pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: id/scope/cooldown/domain", r->id);
    }
    for (size_t k = 0; k < r->nprofile; k++) {
        const struct rsre_action_profile *p = &r->profile[k];
        const struct rsre_action_def *a = p->action;
        if (!a) {
            pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: profile %zu has no action",
                         r->id, k);
            continue;
        }
        enum rsre_binding b = (enum rsre_binding)r->incident->binding[a->index];
        if (b == RSRE_BIND_NONE) {
            pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: unbound action %s accepted",
                         r->id, a->id);
        }
        if (p->mode == RSRE_MODE_AUTO &&
            (a->human_only || b == RSRE_BIND_HUMAN || b == RSRE_BIND_APPROVAL ||
             a->cls > RSRE_CLASS_CONTAIN || a->mutates_config || a->helm || a->oci)) {
            pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: mode auto accepted for %s",
                         r->id, a->id);
        }
        if (a->human_only && p->mode != RSRE_MODE_UNSET && p->mode != RSRE_MODE_HUMAN &&
            p->mode != RSRE_MODE_DENY) {
            pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: human-only %s loosened", r->id,
                         a->id);
        }
        if (p->quorum > RSRE_QUORUM_MAX) {
            pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: quorum %u", r->id, p->quorum);
        }
        if (p->targets.n && !a->family) {
            pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: targets for %s (no family)",
                         r->id, a->id);
        }
        for (size_t j = 0; j < p->targets.n; j++) {
            const char *tg = p->targets.items[j];
            if (!concrete_target(tg) || rsre_policy_never_match(T, a, tg) || pc_spec_never(tg)) {
                pc_violation(&chk, V_L_BOUNDARY, NULL, NULL, "rule %s: target '%s' accepted for %s",
                             r->id, tg, a->id);
            }
        }
    }
}

/* Fingerprint of the set as the policy engine sees it. */
static uint64_t fingerprint(const struct rsre_ruleset *rs) {
    uint64_t h = 1469598103934665603ull;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ull)
    size_t n = rsre_ruleset_count(rs);
    MIX(n);
    for (size_t i = 0; i < n; i++) {
        MIX((uintptr_t)rsre_ruleset_get(rs, i));
    }
    for (size_t i = 0; i < T->nincidents; i++) {
        for (int e = 0; e < RSRE_ENV_COUNT; e++) {
            const struct rsre_rule *const *rr;
            size_t m;
            rsre_ruleset_applicable(rs, &T->incidents[i], (enum rsre_env)e, &rr, &m);
            MIX(m);
            for (size_t k = 0; k < m; k++) {
                MIX((uintptr_t)rr[k]);
            }
        }
    }
#undef MIX
    return h;
}

/* Sweeps the decisions of one accepted rule set. */
static void sweep(const struct rsre_ruleset *rs, size_t nbuiltin) {
    const struct rsre_incident_def *incs[8];
    size_t ninc = 0;
    const char *targets[12];
    size_t ntg = 0;
    size_t nrules = rsre_ruleset_count(rs);
    /* Incidents the rules mention (up to 5, chosen at random when more). */
    for (size_t i = nbuiltin; i < nrules; i++) {
        const struct rsre_incident_def *inc = rsre_ruleset_get(rs, i)->incident;
        int seen = 0;
        for (size_t k = 0; k < ninc; k++) {
            seen |= incs[k] == inc;
        }
        if (!seen) {
            if (ninc < 5) {
                incs[ninc++] = inc;
            } else if (chance(30)) {
                incs[rn(5)] = inc;
            }
        }
    }
    /* Targets: the rules' own (up to 5), a never target, NULL, an allowlisted target. */
    for (size_t i = nbuiltin; i < nrules; i++) {
        const struct rsre_rule *r = rsre_ruleset_get(rs, i);
        for (size_t k = 0; k < r->nprofile; k++) {
            for (size_t j = 0; j < r->profile[k].targets.n; j++) {
                if (ntg < 5) {
                    targets[ntg++] = r->profile[k].targets.items[j];
                } else if (chance(25)) {
                    targets[rn(5)] = r->profile[k].targets.items[j];
                }
            }
        }
    }
    targets[ntg++] = PICK(never_request_targets);
    targets[ntg++] = NULL;
    targets[ntg++] = PICK(allowlisted_targets);

    for (size_t ii = 0; ii < ninc; ii++) {
        const struct rsre_incident_def *inc = incs[ii];
        const struct rsre_action_def *acts[RSRE_RULE_MAX_PROFILE + 8];
        size_t nact = 0;
        for (size_t i = nbuiltin; i < nrules; i++) {
            const struct rsre_rule *r = rsre_ruleset_get(rs, i);
            if (r->incident != inc) {
                continue;
            }
            for (size_t k = 0; k < r->nprofile && nact < RSRE_RULE_MAX_PROFILE; k++) {
                int seen = 0;
                for (size_t j = 0; j < nact; j++) {
                    seen |= acts[j] == r->profile[k].action;
                }
                if (!seen) {
                    acts[nact++] = r->profile[k].action;
                }
            }
        }
        acts[nact++] = pick(&g_all);
        acts[nact++] = pick(&g_all);
        acts[nact++] = pick(&by_inc[inc->index].bound);
        for (size_t ai = 0; ai < nact; ai++) {
            const struct rsre_action_def *a = acts[ai];
            for (int e = 0; e < RSRE_ENV_COUNT; e++) {
                for (int c = 0; c < RSRE_CONF_COUNT; c++) {
                    for (size_t ti = 0; ti < ntg; ti++) {
                        check_decision(rs, inc, a, (enum rsre_env)e, (enum rsre_confidence)c,
                                       targets[ti], 0);
                        if (a->cls >= RSRE_CLASS_CONTAIN) {
                            check_decision(rs, inc, a, (enum rsre_env)e, (enum rsre_confidence)c,
                                           targets[ti], NOW - 1);
                        }
                    }
                }
            }
        }
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_random_rule_sets(void **state) {
    (void)state;
    classify_taxonomy();
    const char *env_seed = getenv("RSRE_SEED");
    seed = env_seed && *env_seed ? strtoull(env_seed, NULL, 0) : DEFAULT_SEED;
    rng_state = seed;
    unsigned long total = RULESETS;
    const char *env_n = getenv("RSRE_RULESETS"); /* may only raise the count */
    if (env_n && strtoul(env_n, NULL, 0) > total) {
        total = strtoul(env_n, NULL, 0);
    }
    printf("test_rules_random: seed %llu (set RSRE_SEED to reproduce), %lu rule sets\n",
           (unsigned long long)seed, total);
    memset(&cnt, 0, sizeof(cnt));
    memset(viol, 0, sizeof(viol));
    double t0 = now_s(), t_load = 0, t_check = 0;

    for (unsigned long s = 0; s < total; s++) {
        struct gen g = {.serial = s};
        cnt.rulesets = s;
        g.focus_inc = chance(60) ? incs_with_contain.i[rn((unsigned)incs_with_contain.n)]
                                 : &T->incidents[rn((unsigned)T->nincidents)];
        const struct alist *ca = &by_inc[g.focus_inc->index].contain_auto;
        g.focus_action = ca->n && chance(55) ? pick(ca) : pick(&by_inc[g.focus_inc->index].bound);
        g.pileup = chance(8);

        struct rsre_ruleset *rs = NULL;
        assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
        size_t nbuiltin = rsre_ruleset_count(rs);
        double t1 = now_s();
        nfiles = g.pileup ? 3 + rn(MAX_FILES - 2) : 1 + rn(MAX_FILES);
        for (unsigned f = 0; f < nfiles; f++) {
            unsigned nrules_in = 0;
            enum file_kind kind = gen_file(&files[f], &g, &nrules_in);
            cnt.files++;
            cnt.files_by_kind[kind]++;
            size_t before = rsre_ruleset_count(rs);
            uint64_t fp = fingerprint(rs);
            struct rsre_rule_error err;
            char origin[64];
            snprintf(origin, sizeof(origin), "set%lu-file%u.yaml", s, f);
            int rc =
                rsre_ruleset_add_yaml(rs, origin, files[f].p ? files[f].p : "", files[f].len, &err);
            file_rc[f] = rc;
            if (rc) {
                int slot = code_slot(rc);
                cnt.rejected_by_code[slot]++;
                if (rsre_ruleset_count(rs) != before || fingerprint(rs) != fp) {
                    pc_violation(&chk, V_L_UNCHANGED, NULL, NULL,
                                 "file %u rejected with %d but the set "
                                 "changed (%zu -> %zu rules)",
                                 f, rc, before, rsre_ruleset_count(rs));
                }
                if (kind == FK_POLITE) {
                    char msg[600];
                    rsre_rule_error_format(&err, msg, sizeof(msg));
                    pc_violation(&chk, V_POLITE_REJECTED, NULL, NULL, "file %u: %s", f, msg);
                }
            } else {
                cnt.accepted_files++;
                cnt.accepted_by_kind[kind]++;
                size_t added = rsre_ruleset_count(rs) - before;
                if ((kind == FK_POLITE || kind == FK_ATTACK) && added != nrules_in) {
                    pc_violation(&chk, V_L_COUNT, NULL, NULL, "file %u holds %u rules, %zu added",
                                 f, nrules_in, added);
                }
                for (size_t i = before; i < rsre_ruleset_count(rs); i++) {
                    check_loaded_rule(rsre_ruleset_get(rs, i));
                }
            }
        }
        double t2 = now_s();
        t_load += t2 - t1;
        size_t nrules = rsre_ruleset_count(rs);
        if (nrules > nbuiltin) {
            cnt.rulesets_accepted++;
            cnt.op_rules += nrules - nbuiltin;
            sweep(rs, nbuiltin);
        }
        t_check += now_s() - t2;
        rsre_ruleset_destroy(rs);
    }
    cnt.rulesets = total;
    double elapsed = now_s() - t0;

    static const char *const kind_names[] = {"valid", "attack", "mutated", "file-trick"};
    printf("  generated: %lu rule sets, %lu files", cnt.rulesets, cnt.files);
    for (int k = 0; k < 4; k++) {
        printf("%s %s %lu", k ? "," : " (", kind_names[k], cnt.files_by_kind[k]);
    }
    printf(")\n  rejected by loader: %lu files:", cnt.files - cnt.accepted_files);
    for (int k = 0; k < 8; k++) {
        if (cnt.rejected_by_code[k]) {
            printf(" %s %lu", code_names[k], cnt.rejected_by_code[k]);
        }
    }
    printf("\n  accepted: %lu files", cnt.accepted_files);
    for (int k = 0; k < 4; k++) {
        printf("%s %s %lu", k ? "," : " (", kind_names[k], cnt.accepted_by_kind[k]);
    }
    printf("); %lu rule sets with operator rules (%.1f%%), %lu operator rules\n",
           cnt.rulesets_accepted, 100.0 * (double)cnt.rulesets_accepted / (double)cnt.rulesets,
           cnt.op_rules);
    printf("  decisions checked: %lu (auto contain %lu, of which with an operator auto reason "
           "%lu, on operator-only-allowlisted targets %lu, outside the catalogue's auto_envs %lu; "
           "auto observe/notify %lu; approval %lu; human-only %lu; denied %lu, by cooldown %lu)\n",
           chk.cnt.decisions, chk.cnt.auto_contain, chk.cnt.auto_contain_op,
           chk.cnt.auto_contain_oplist, chk.cnt.auto_outside_env, chk.cnt.auto_readonly,
           chk.cnt.approvals, chk.cnt.human, chk.cnt.denied, chk.cnt.cooldown_denied);
    printf("  time: %.2f s total (loading %.2f s, decisions %.2f s)\n", elapsed, t_load, t_check);
    unsigned long bad = pc_report(&chk, V_COUNT, "random rules");
    for (int f = 0; f < MAX_FILES; f++) {
        free(files[f].p);
        files[f] = (struct sb){0};
    }

    /* Not vacuous: a real share of rule sets is accepted and auto is actually reached. */
    assert_true(cnt.rulesets >= RULESETS);
    assert_true(cnt.rulesets_accepted * 10 > cnt.rulesets);
    assert_true(cnt.accepted_by_kind[FK_ATTACK] + cnt.accepted_by_kind[FK_MUTATED] > 0);
    assert_true(cnt.rejected_by_code[code_slot(RSRE_EBOUNDARY)] > 0);
    assert_true(chk.cnt.auto_contain_oplist > 0);
    assert_true(chk.cnt.cooldown_denied > 0);
    assert_int_equal(bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_rule_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
