/*
 * libFuzzer target for the operator rule loader (aggregator/engine/rules.h) and the safety
 * boundaries it feeds into the policy decision (aggregator/engine/policy.h).
 *
 * Each input is added with rsre_ruleset_add_yaml to a fresh rule set (one per input, so a
 * crash reproduces from its input alone). Checked:
 *   - a failure returns one of the documented codes, fills a terminated, non-empty message
 *     and leaves the set unchanged;
 *   - a success adds rules that respect every limit and boundary of the schema (env mask,
 *     cooldown floor, quorum, windows, escalation order, profile modes, concrete targets off
 *     the never-auto-contain list);
 *   - adding the same input again changes nothing (duplicate ids, or the set limit);
 *   - the hard safety constraints hold under the new rules: for each added rule's incident
 *     class x every action x every environment, at high confidence and for every target the
 *     rules name (plus a few fixed ones), the decision is never AUTO for a human-only,
 *     recover or disruptive action, for an action outside the class's plan, or for a target
 *     on the never-auto-contain list; and no contain action is AUTO below high confidence.
 * A violated invariant calls abort(). ASan/UBSan catch the rest.
 */
#include "common/error.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) {
        abort();
    }
}

static int terminated(const char *s, size_t cap) {
    return memchr(s, '\0', cap) != NULL;
}

/* An upper bound of the lines libyaml sees: it breaks lines at LF, CR, CR LF, NEL (C2 85),
 * LS and PS (E2 80 A8/A9); counting every CR, LF and 0x85/0xA8/0xA9 byte over-counts. */
static int line_count(const uint8_t *data, size_t size) {
    int n = 1;
    for (size_t i = 0; i < size; i++) {
        n += data[i] == '\n' || data[i] == '\r' || data[i] == 0x85 || data[i] == 0xa8 ||
             data[i] == 0xa9;
    }
    return n;
}

static void check_error(int rc, const struct rsre_rule_error *e, const uint8_t *data, size_t size) {
    check(rc == RSRE_EPARSE || rc == RSRE_EINVALID || rc == RSRE_EBOUNDARY || rc == RSRE_ELIMIT ||
          rc == RSRE_EEXIST || rc == -ENOMEM);
    check(terminated(e->origin, sizeof(e->origin)) && terminated(e->field, sizeof(e->field)) &&
          terminated(e->msg, sizeof(e->msg)));
    check(e->msg[0] != '\0');
    check(e->line >= 0 && e->col >= 0);
    check(e->line == 0 || e->col >= 1);
    if (size <= RSRE_RULE_MAX_FILE) {
        check(e->line <= line_count(data, size) + 1);
    }
    char small[24], big[700];
    rsre_rule_error_format(e, small, sizeof(small));
    rsre_rule_error_format(e, big, sizeof(big));
    check(terminated(small, sizeof(small)) && terminated(big, sizeof(big)));
}

/* The schema's limits and boundaries, on one loaded operator rule. */
static void check_rule(const struct rsre_taxonomy *t, const struct rsre_rule *r) {
    check(!r->builtin && r->id && r->id[0] && strncmp(r->id, "builtin.", 8) != 0);
    check(strlen(r->id) <= 63);
    check(r->name && r->name[0] && r->owner && r->owner[0] && r->origin);
    check(r->incident != NULL && r->incident->index < t->nincidents);
    check(r->domain && strcmp(r->domain, r->incident->domain->id) == 0);
    check(r->env_mask != 0 && (r->env_mask & ~7u) == 0);
    check(r->threshold != NULL && r->threshold_expression != NULL);
    check(r->severity < RSRE_SEV_COUNT);
    check(r->version >= 1 && r->version <= 1000000000);
    check(r->cooldown_seconds == -1 ||
          (r->cooldown_seconds >= RSRE_COOLDOWN_FLOOR && r->cooldown_seconds <= 7 * 86400));
    check(r->notification.channels.n <= 3);
    check(r->notification.dedupe_seconds >= 60 && r->notification.dedupe_seconds <= 86400);
    check(r->nescalations <= RSRE_RULE_MAX_ESCALATIONS);
    for (size_t i = 0; i < r->nescalations; i++) {
        check(r->escalations[i].expr != NULL && r->escalations[i].severity >= r->severity &&
              r->escalations[i].severity < RSRE_SEV_COUNT);
    }
    check(r->nsuppress <= RSRE_RULE_MAX_WINDOWS);
    for (size_t i = 0; i < r->nsuppress; i++) {
        const struct rsre_window *w = &r->suppress[i];
        check(w->days >= 1 && w->days <= 0x7f);
        check(w->from_min >= 0 && w->from_min <= 1440 && w->to_min >= 0 && w->to_min <= 1440);
        check(w->from_min != w->to_min);
    }
    check(r->nprofile <= RSRE_RULE_MAX_PROFILE);
    for (size_t i = 0; i < r->nprofile; i++) {
        const struct rsre_action_profile *p = &r->profile[i];
        const struct rsre_action_def *a = p->action;
        check(a != NULL);
        enum rsre_binding bind = (enum rsre_binding)r->incident->binding[a->index];
        check(bind != RSRE_BIND_NONE);
        for (size_t k = 0; k < i; k++) {
            check(r->profile[k].action != a);
        }
        check(p->mode != RSRE_MODE_UNSET || p->targets.n || p->quorum);
        check(p->quorum <= RSRE_QUORUM_MAX);
        if (p->mode == RSRE_MODE_AUTO) {
            check(!a->human_only && bind != RSRE_BIND_HUMAN && bind != RSRE_BIND_APPROVAL);
            check(a->cls <= RSRE_CLASS_CONTAIN && !a->mutates_config && !a->helm && !a->oci);
        }
        if (a->human_only) {
            check(p->mode == RSRE_MODE_UNSET || p->mode == RSRE_MODE_HUMAN ||
                  p->mode == RSRE_MODE_DENY);
        }
        check(p->targets.n <= RSRE_RULE_MAX_TARGETS);
        check(p->targets.n == 0 || a->family != NULL);
        for (size_t k = 0; k < p->targets.n; k++) {
            const char *tg = p->targets.items[k];
            check(tg && tg[0] && strlen(tg) <= RSRE_RULE_MAX_TARGET_LEN);
            check(!strpbrk(tg, "*?[]\\ "));
            check(rsre_policy_never_match(t, a, tg) == NULL);
        }
    }
    static const long long times[] = {0, -1, 1704067200, 1704067200 + 86399, -86400 * 365LL};
    for (size_t i = 0; i < sizeof(times) / sizeof(*times); i++) {
        int s = rsre_rule_suppressed_at(r, times[i]);
        check(s == 0 || s == 1);
        check(r->nsuppress || !s);
    }
}

/* Targets the decisions are tried on: fixed ones plus every target the new rules name. */
#define MAX_TARGETS 32
static size_t collect_targets(const struct rsre_ruleset *rs, size_t first, const char **out) {
    static const char *const fixed[] = {NULL,
                                        "trivy-db-warmup",
                                        "image-factory-demo/app",
                                        "ingress-nginx/ingress-nginx-controller",
                                        "cert-manager/cert-manager",
                                        "supabase/db",
                                        "worker-1"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++) {
        out[n++] = fixed[i];
    }
    for (size_t i = first; i < rsre_ruleset_count(rs) && n < MAX_TARGETS; i++) {
        const struct rsre_rule *r = rsre_ruleset_get(rs, i);
        for (size_t k = 0; k < r->nprofile && n < MAX_TARGETS; k++) {
            for (size_t j = 0; j < r->profile[k].targets.n && n < MAX_TARGETS; j++) {
                out[n++] = r->profile[k].targets.items[j];
            }
        }
    }
    return n;
}

static void check_decisions(const struct rsre_taxonomy *t, const struct rsre_ruleset *rs,
                            size_t first) {
    const char *targets[MAX_TARGETS];
    size_t ntargets = collect_targets(rs, first, targets);
    uint8_t seen[RSRE_MAX_INCIDENTS] = {0};
    for (size_t i = first; i < rsre_ruleset_count(rs); i++) {
        const struct rsre_incident_def *inc = rsre_ruleset_get(rs, i)->incident;
        if (seen[inc->index]) {
            continue;
        }
        seen[inc->index] = 1;
        for (size_t k = 0; k < t->nactions; k++) {
            const struct rsre_action_def *a = &t->actions[k];
            enum rsre_binding bind = (enum rsre_binding)inc->binding[a->index];
            for (unsigned env = 0; env < RSRE_ENV_COUNT; env++) {
                for (size_t g = 0; g < ntargets; g++) {
                    for (unsigned c = RSRE_CONF_MEDIUM; c <= RSRE_CONF_HIGH; c++) {
                        struct rsre_policy_request req = {
                            .incident = inc,
                            .action = a,
                            .env = (enum rsre_env)env,
                            .confidence = (enum rsre_confidence)c,
                            .target = targets[g],
                            .rules = rs,
                            .now = 1704067200,
                        };
                        struct rsre_decision d;
                        rsre_policy_decide(&req, &d);
                        check(d.verdict < RSRE_VERDICT_COUNT);
                        check(d.nreasons <= RSRE_POLICY_MAX_REASONS);
                        check(d.quorum <= RSRE_QUORUM_MAX);
                        check(d.cooldown_seconds == 0 || d.cooldown_seconds >= RSRE_COOLDOWN_FLOOR);
                        if (d.verdict != RSRE_VERDICT_AUTO) {
                            continue;
                        }
                        /* The hard constraints. */
                        check(!a->human_only && bind != RSRE_BIND_HUMAN);
                        check(a->cls != RSRE_CLASS_RECOVER && a->cls != RSRE_CLASS_DISRUPTIVE);
                        check(!a->mutates_config && !a->helm && !a->oci);
                        check(bind != RSRE_BIND_NONE && bind != RSRE_BIND_APPROVAL);
                        if (a->cls == RSRE_CLASS_CONTAIN) {
                            check(c == RSRE_CONF_HIGH);
                            check(rsre_policy_never_match(t, a, targets[g]) == NULL);
                            check(!a->requires_allowlist || targets[g] != NULL);
                        }
                    }
                }
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    struct rsre_ruleset *rs = NULL;
    if (rsre_ruleset_create(NULL, &rs)) {
        return 0;
    }
    size_t before = rsre_ruleset_count(rs);
    struct rsre_rule_error err;
    memset(&err, 0x7f, sizeof(err));
    int rc = rsre_ruleset_add_yaml(rs, "fuzz.yaml", (const char *)data, size, &err);
    if (rc) {
        check_error(rc, &err, data, size);
        check(rsre_ruleset_count(rs) == before);
        rsre_ruleset_destroy(rs);
        return 0;
    }
    size_t after = rsre_ruleset_count(rs);
    check(after > before && after <= RSRE_RULES_MAX);
    check(size <= RSRE_RULE_MAX_FILE);
    for (size_t i = before; i < after; i++) {
        const struct rsre_rule *r = rsre_ruleset_get(rs, i);
        check_rule(t, r);
        check(rsre_ruleset_find(rs, r->id) == r);
    }
    /* The applicable index holds exactly the enabled rules in scope, in load order. */
    for (size_t i = 0; i < t->nincidents; i++) {
        for (unsigned e = 0; e < RSRE_ENV_COUNT; e++) {
            const struct rsre_rule *const *arr;
            size_t n, want = 0;
            rsre_ruleset_applicable(rs, &t->incidents[i], (enum rsre_env)e, &arr, &n);
            for (size_t k = before; k < after; k++) {
                const struct rsre_rule *r = rsre_ruleset_get(rs, k);
                if (r->enabled && r->incident == &t->incidents[i] && (r->env_mask & (1u << e))) {
                    check(want < n && arr[want] == r);
                    want++;
                }
            }
            check(n == want);
        }
    }
    check_decisions(t, rs, before);
    /* The same input again adds nothing. */
    memset(&err, 0x7f, sizeof(err));
    rc = rsre_ruleset_add_yaml(rs, NULL, (const char *)data, size, &err);
    check(rc == RSRE_EEXIST || rc == RSRE_ELIMIT || rc == -ENOMEM);
    check_error(rc, &err, data, size);
    check(rsre_ruleset_count(rs) == after);
    rsre_ruleset_destroy(rs);
    return 0;
}
