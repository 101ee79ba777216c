#include "engine/matrix.h"

#include <stdio.h>
#include <string.h>

const char *rsre_matrix_sample_target(const struct rsre_taxonomy *t,
                                      const struct rsre_action_def *a) {
    const struct rsre_allow_family *f = a->family ? rsre_taxonomy_family(t, a->family) : NULL;
    if (!f) {
        return NULL;
    }
    for (size_t i = 0; i < f->patterns.n; i++) {
        if (!strpbrk(f->patterns.items[i], "*?[")) {
            return f->patterns.items[i];
        }
    }
    return f->patterns.n ? "default/any-resource" : NULL; /* a wildcard family matches it */
}

static enum rsre_verdict decide(const struct rsre_taxonomy *t, const struct rsre_incident_def *inc,
                                const struct rsre_action_def *a, enum rsre_env env,
                                const char *target, const struct rsre_ruleset *rules) {
    struct rsre_policy_request req = {.taxonomy = t,
                                      .incident = inc,
                                      .action = a,
                                      .env = env,
                                      .confidence = RSRE_CONF_HIGH,
                                      .target = target,
                                      .rules = rules,
                                      .now = 1000000,
                                      .last_run = 0};
    struct rsre_decision d;
    rsre_policy_decide(&req, &d);
    return d.verdict;
}

/* Appends `label` to a ", "-separated cell unless it is already there. */
static void append_label(char *cell, const char *label) {
    size_t n = strlen(cell), l = strlen(label);
    for (const char *p = cell; (p = strstr(p, label)); p += l) {
        if ((p == cell || p[-1] == ' ') && (p[l] == ',' || p[l] == '\0')) {
            return;
        }
    }
    if (n + l + 3 < RSRE_MATRIX_CELL) {
        snprintf(cell + n, RSRE_MATRIX_CELL - n, "%s%s", n ? ", " : "", label);
    }
}

void rsre_matrix_row(const struct rsre_taxonomy *t, const struct rsre_incident_def *inc,
                     unsigned env_mask, const struct rsre_ruleset *rules,
                     struct rsre_matrix_row *out) {
    memset(out, 0, sizeof(*out));
    out->incident = inc;
    if (!t) {
        t = rsre_taxonomy_builtin();
    }
    if (!env_mask) {
        env_mask = (1u << RSRE_ENV_COUNT) - 1;
    }
    int observe_all = 1, notify_all = 1, nobserve = 0, nnotify = 0;
    int contain_all_bound_auto = 1, contain_all_env_only = 1, contain_all_allowlist = 1;
    for (size_t p = 0; p < inc->nplan; p++) {
        size_t i = inc->plan[p];
        const struct rsre_action_def *a = &t->actions[i];
        enum rsre_binding b = (enum rsre_binding)inc->binding[i];
        const char *sample = rsre_matrix_sample_target(t, a);
        const char *target = sample ? sample : "default/target";
        unsigned auto_envs = 0, approval_envs = 0, human_envs = 0, auto_outside = 0;
        for (unsigned e = 0; e < RSRE_ENV_COUNT; e++) {
            if (!(env_mask & (1u << e))) {
                continue;
            }
            enum rsre_verdict v = decide(t, inc, a, (enum rsre_env)e, target, rules);
            auto_envs |= (v == RSRE_VERDICT_AUTO) << e;
            approval_envs |= (v == RSRE_VERDICT_APPROVAL) << e;
            human_envs |= (v == RSRE_VERDICT_HUMAN_ONLY) << e;
            /* "allowlist only": without a target the allowlist cannot match, so an action
             * that is still auto without one does not depend on the allowlist. */
            if (v == RSRE_VERDICT_AUTO &&
                decide(t, inc, a, (enum rsre_env)e, NULL, rules) == RSRE_VERDICT_AUTO) {
                auto_outside = 1;
            }
        }
        if (a->cls == RSRE_CLASS_OBSERVE) {
            nobserve++;
            observe_all &= auto_envs == env_mask;
        } else if (a->cls == RSRE_CLASS_NOTIFY) {
            nnotify++;
            notify_all &= auto_envs == env_mask;
        } else if (a->cls == RSRE_CLASS_CONTAIN && auto_envs) {
            out->auto_contain_actions[out->nauto_contain++] = a;
            out->auto_contain_envs |= auto_envs;
            contain_all_bound_auto &= b == RSRE_BIND_AUTO;
            contain_all_env_only &= b == RSRE_BIND_ENV_AUTO;
            contain_all_allowlist &= !auto_outside;
        }
        if (approval_envs == env_mask) {
            out->approval_actions[out->napproval++] = a;
            append_label(out->approval, a->label);
        }
        if (human_envs == env_mask) {
            out->human_actions[out->nhuman++] = a;
            append_label(out->human_only, a->label);
        }
    }
    snprintf(out->auto_observe, sizeof(out->auto_observe), "%s",
             nobserve && observe_all ? "yes" : "no");
    snprintf(out->auto_notify, sizeof(out->auto_notify), "%s",
             nnotify && notify_all ? "yes" : "no");
    if (!out->nauto_contain) {
        snprintf(out->auto_contain, sizeof(out->auto_contain), "no");
    } else if (contain_all_bound_auto && contain_all_allowlist) {
        snprintf(out->auto_contain, sizeof(out->auto_contain), "yes, allowlist only");
    } else if (contain_all_env_only) {
        char labels[RSRE_MATRIX_CELL] = "", envs[64] = "";
        size_t room = sizeof(out->auto_contain) - sizeof("limited  in ") - sizeof(envs);
        for (unsigned i = 0; i < out->nauto_contain; i++) {
            append_label(labels, out->auto_contain_actions[i]->label);
        }
        for (unsigned e = 0; e < RSRE_ENV_COUNT; e++) {
            if (out->auto_contain_envs & (1u << e)) {
                size_t n = strlen(envs);
                snprintf(envs + n, sizeof(envs) - n, "%s%s", n ? "/" : "",
                         rsre_env_name((enum rsre_env)e));
            }
        }
        snprintf(out->auto_contain, sizeof(out->auto_contain), "limited %.*s in %s", (int)room,
                 labels, envs);
    } else {
        for (unsigned i = 0; i < out->nauto_contain; i++) {
            append_label(out->auto_contain, out->auto_contain_actions[i]->label);
        }
    }
    if (!out->approval[0]) {
        snprintf(out->approval, sizeof(out->approval), "none");
    }
    if (!out->human_only[0]) {
        snprintf(out->human_only, sizeof(out->human_only), "none");
    }
}
