/*
 * The policy engine against an oracle written independently from the spec's text ("Approval
 * Policy", "Environment Modes", "Cooldown Policy", "Evidence Confidence Bands", "Allowlist
 * Proposal For V1", "Never Auto-Contain"): every incident class x every action x every
 * environment x every confidence band x a set of targets x cooldown states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "engine/policy.h"
#include "engine/rules.h"

static const char *const targets[] = {
    NULL,
    "trivy-db-warmup",
    "jobs/trivy-db-warmup",
    "headlamp/headlamp",
    "tekton-pipelines/tekton-pipelines-controller",
    "tekton-pipelines-resolvers/tekton-pipelines-remote-resolvers",
    "image-factory-demo/backend",
    "image-factory/backend",
    "default/random-app",
    "kube-system/coredns",
    "ingress-nginx/ingress-nginx-controller",
    "cert-manager/cert-manager",
    "supabase/supabase-db",
    "platform/supabase-config",
    "worker-10-0-10-202",
};

/* ---- the oracle: the spec, transcribed ---- */

/* Spec "Never Auto-Contain": Supabase config, ingress controller, cert-manager (targets). */
static int oracle_never(const char *target) {
    return target && (strstr(target, "supabase") || strstr(target, "ingress-nginx") ||
                      strstr(target, "ingress-controller") || strstr(target, "cert-manager"));
}

static const char *name_part(const char *target) {
    const char *s = strchr(target, '/');
    return s ? s + 1 : target;
}

/* Spec "Allowlist Proposal For V1", per contain action. */
static int oracle_allowlisted(const char *action, const char *target) {
    if (!target) {
        return 0;
    }
    if (!strcmp(action, "delete_finished_pods")) {
        return 1; /* "delete Succeeded and Failed pods cluster-wide" */
    }
    if (!strcmp(action, "suspend_cronjob")) {
        return !strcmp(name_part(target), "trivy-db-warmup"); /* "suspend trivy-db-warmup" */
    }
    if (!strcmp(action, "scale_workload_to_zero")) {
        return !strcmp(name_part(target), "headlamp") ||
               !strncmp(target, "tekton-pipelines/", 17) ||
               !strncmp(target, "tekton-pipelines-resolvers/", 27) ||
               !strncmp(target, "image-factory-demo/", 19) ||
               !strcmp(name_part(target), "trivy-db-warmup");
    }
    if (!strcmp(action, "restart_noncritical_dependency")) {
        return !strcmp(name_part(target), "headlamp") ||
               !strcmp(name_part(target), "trivy-db-warmup");
    }
    return 0;
}

/* Environments in which a contain action may run alone (spec "Environment Modes" + matrix). */
static int oracle_contain_env_ok(const char *action, enum rsre_env env) {
    if (!strcmp(action, "failover_channel") || !strcmp(action, "suppress_incident")) {
        return 1; /* touches only the robot's own channels: clearly safe and idempotent */
    }
    if (env == RSRE_ENV_PRODUCTION) {
        return 0; /* "notify and recommend first" */
    }
    if (!strcmp(action, "scale_workload_to_zero")) {
        return env == RSRE_ENV_DEMO; /* "scale image-factory app workloads to zero in demo mode" */
    }
    return 1;
}

static int oracle_needs_allowlist(const char *action) {
    return strcmp(action, "failover_channel") && strcmp(action, "suppress_incident");
}

static long long oracle_cooldown(const struct rsre_incident_def *inc,
                                 const struct rsre_action_def *a) {
    if (a->cls <= RSRE_CLASS_NOTIFY) {
        return 0;
    }
    if (a->cls == RSRE_CLASS_DISRUPTIVE) {
        return 3600; /* disruptive retry 60m; reboot/replace once per 60m per node */
    }
    (void)inc;
    return 900; /* same remediation retry 15m; containment set once per 15m */
}

struct expect {
    enum rsre_verdict v;
    unsigned quorum;
};

static struct expect oracle(const struct rsre_incident_def *inc, const struct rsre_action_def *a,
                            enum rsre_env env, enum rsre_confidence conf, const char *target,
                            int in_cooldown) {
    struct expect e = {RSRE_VERDICT_DENIED, 0};
    enum rsre_binding b = (enum rsre_binding)inc->binding[a->index];
    if (b == RSRE_BIND_NONE) {
        return e; /* not in the class's plan */
    }
    if (a->human_only) {
        e.v = RSRE_VERDICT_HUMAN_ONLY;
        return e;
    }
    if (a->cls == RSRE_CLASS_OBSERVE || a->cls == RSRE_CLASS_NOTIFY) {
        e.v = RSRE_VERDICT_AUTO; /* "all observe", "all notify" */
        return e;
    }
    int can_auto = a->cls == RSRE_CLASS_CONTAIN && !a->mutates_config && !a->helm && !a->oci &&
                   conf == RSRE_CONF_HIGH && oracle_contain_env_ok(a->id, env) &&
                   !oracle_never(target) &&
                   (!oracle_needs_allowlist(a->id) || oracle_allowlisted(a->id, target));
    e.v = can_auto ? RSRE_VERDICT_AUTO : RSRE_VERDICT_APPROVAL;
    if (in_cooldown) {
        e.v = RSRE_VERDICT_DENIED;
    }
    if (e.v == RSRE_VERDICT_APPROVAL) {
        e.quorum = a->cls == RSRE_CLASS_DISRUPTIVE && env == RSRE_ENV_PRODUCTION ? 2 : 1;
    }
    return e;
}

static void test_exhaustive_against_oracle(void **state) {
    (void)state;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    long checked = 0, autos = 0;
    for (size_t i = 0; i < t->nincidents; i++) {
        const struct rsre_incident_def *inc = &t->incidents[i];
        for (size_t k = 0; k < t->nactions; k++) {
            const struct rsre_action_def *a = &t->actions[k];
            long long cd = oracle_cooldown(inc, a);
            for (unsigned env = 0; env < RSRE_ENV_COUNT; env++) {
                for (unsigned conf = 0; conf < RSRE_CONF_COUNT; conf++) {
                    for (size_t ti = 0; ti < sizeof(targets) / sizeof(*targets); ti++) {
                        for (int cds = 0; cds < 3; cds++) {
                            long long now = 1000000;
                            long long last = cds == 0 ? 0 : cds == 1 ? now - 1 : now - cd - 1;
                            int in_cd = cds == 1 && cd > 0;
                            struct rsre_policy_request req = {
                                .incident = inc, .action = a, .env = (enum rsre_env)env,
                                .confidence = (enum rsre_confidence)conf, .target = targets[ti],
                                .now = now, .last_run = last};
                            struct rsre_decision d;
                            rsre_policy_decide(&req, &d);
                            struct expect e = oracle(inc, a, (enum rsre_env)env,
                                                     (enum rsre_confidence)conf, targets[ti],
                                                     in_cd);
                            if (d.verdict != e.v || d.quorum != e.quorum) {
                                char why[256];
                                fail_msg("%s/%s env=%s conf=%u target=%s cooldown=%d: engine %s "
                                         "q%u, spec %s q%u (first reason: %s)",
                                         inc->id, a->id, rsre_env_name((enum rsre_env)env), conf,
                                         targets[ti] ? targets[ti] : "-", cds,
                                         rsre_verdict_name(d.verdict), d.quorum,
                                         rsre_verdict_name(e.v), e.quorum,
                                         d.nreasons ? rsre_policy_reason_text(&d.reasons[0], why,
                                                                              sizeof(why))
                                                    : "none");
                            }
                            assert_true(d.nreasons > 0);
                            if (a->cls >= RSRE_CLASS_CONTAIN && inc->binding[a->index]) {
                                assert_int_equal(d.cooldown_seconds, cd);
                            }
                            autos += d.verdict == RSRE_VERDICT_AUTO;
                            checked++;
                        }
                    }
                }
            }
        }
    }
    print_message("checked %ld decisions, %ld auto\n", checked, autos);
    assert_true(autos > 0);
}

/* The reasons follow the spec's resolution order: layers never go backwards. */
static void test_reason_order(void **state) {
    (void)state;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    for (size_t i = 0; i < t->nincidents; i++) {
        for (size_t k = 0; k < t->nactions; k++) {
            for (unsigned env = 0; env < RSRE_ENV_COUNT; env++) {
                struct rsre_policy_request req = {.incident = &t->incidents[i],
                                                  .action = &t->actions[k],
                                                  .env = (enum rsre_env)env,
                                                  .confidence = RSRE_CONF_MEDIUM,
                                                  .target = "default/x"};
                struct rsre_decision d;
                rsre_policy_decide(&req, &d);
                for (unsigned r = 1; r < d.nreasons; r++) {
                    assert_true(d.reasons[r].layer >= d.reasons[r - 1].layer);
                }
            }
        }
    }
}

static void test_named_cases(void **state) {
    (void)state;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    struct rsre_decision d;
    char buf[256];
    struct rsre_policy_request req = {
        .incident = rsre_taxonomy_incident(t, "node_disk_pressure"),
        .action = rsre_taxonomy_action(t, "reboot_worker"),
        .env = RSRE_ENV_PRODUCTION,
        .confidence = RSRE_CONF_HIGH,
        .target = "10.0.10.202"};
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_APPROVAL);
    assert_int_equal(d.quorum, 2);
    int saw_oci = 0;
    for (unsigned i = 0; i < d.nreasons; i++) {
        saw_oci |= strstr(rsre_policy_reason_text(&d.reasons[i], buf, sizeof(buf)), "OCI") != NULL;
    }
    assert_true(saw_oci);

    req.action = rsre_taxonomy_action(t, "delete_finished_pods");
    req.env = RSRE_ENV_DEMO;
    req.target = "ci";
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_AUTO);
    assert_string_equal(rsre_policy_reason_text(&d.reasons[d.nreasons - 1], buf, sizeof(buf)),
                        "high confidence, auto-allowed family, allowlisted target, outside "
                        "cooldown");
    req.now = 5000;
    req.last_run = 4500;
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_DENIED);
    assert_int_equal(d.retry_at, 4500 + 900);
    assert_non_null(strstr(rsre_policy_reason_text(&d.reasons[d.nreasons - 1], buf, sizeof(buf)),
                           "retry in 400s"));

    /* Unknown incident or action: denied, with a reason, never a crash. */
    req.incident = NULL;
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_DENIED);
    assert_true(d.nreasons == 1);
}

/* Operator rules change the outcome only inside the boundaries. */
static void test_operator_rules(void **state) {
    (void)state;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    struct rsre_ruleset *rs;
    assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
    static const char yaml[] =
        "rules:\n"
        "  - id: demo-disk\n    name: demo disk\n    domain: infrastructure\n"
        "    incident_type: node_disk_pressure\n    environment_scope: [demo]\n"
        "    threshold_expression: nodefs.used_ratio > 80%\n    severity: warning\n"
        "    owner: ops\n    version: 1\n    cooldown_seconds: 1800\n"
        "    allowed_action_profile:\n"
        "      - {action: suspend_cronjob, mode: auto, targets: [ci/nightly-scan]}\n"
        "      - {action: cordon_node, mode: approval, quorum: 3}\n"
        "      - {action: scale_workload_to_zero, mode: deny}\n";
    struct rsre_rule_error err;
    assert_int_equal(rsre_ruleset_add_yaml(rs, "t.yaml", yaml, sizeof(yaml) - 1, &err), 0);
    struct rsre_policy_request req = {.incident = rsre_taxonomy_incident(t, "node_disk_pressure"),
                                      .action = rsre_taxonomy_action(t, "suspend_cronjob"),
                                      .env = RSRE_ENV_DEMO,
                                      .confidence = RSRE_CONF_HIGH,
                                      .target = "ci/nightly-scan",
                                      .rules = rs};
    struct rsre_decision d;
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_AUTO);
    assert_int_equal(d.cooldown_seconds, 1800);
    req.env = RSRE_ENV_STAGING; /* rule not in scope */
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_APPROVAL);
    req.env = RSRE_ENV_DEMO;
    req.confidence = RSRE_CONF_MEDIUM; /* never the hard constraints */
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_APPROVAL);
    req.confidence = RSRE_CONF_HIGH;
    req.target = "ci/other";
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_APPROVAL);
    req.action = rsre_taxonomy_action(t, "cordon_node");
    req.target = "worker-1";
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_APPROVAL);
    assert_int_equal(d.quorum, 3);
    /* Auto in production is refused at load time... */
    static const char prod[] =
        "id: prod-auto\nname: p\ndomain: infrastructure\nincident_type: node_disk_pressure\n"
        "environment_scope: [production]\nthreshold_expression: nodefs.used_ratio > 80%\n"
        "severity: warning\nowner: ops\nversion: 1\n"
        "allowed_action_profile:\n  - {action: delete_finished_pods, mode: auto}\n";
    assert_int_equal(rsre_ruleset_add_yaml(rs, "p.yaml", prod, sizeof(prod) - 1, &err),
                     RSRE_EBOUNDARY);
    assert_non_null(strstr(err.msg, "production"));
    req.action = rsre_taxonomy_action(t, "scale_workload_to_zero");
    req.env = RSRE_ENV_DEMO;
    req.target = "headlamp/headlamp";
    rsre_policy_decide(&req, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_DENIED);
    rsre_ruleset_destroy(rs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exhaustive_against_oracle),
        cmocka_unit_test(test_reason_order),
        cmocka_unit_test(test_named_cases),
        cmocka_unit_test(test_operator_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
