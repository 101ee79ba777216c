/*
 * The built-in taxonomy holds the spec's contract, and the loader refuses taxonomies that
 * break it (each case mutates the embedded YAML in one place).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/yamldoc.h"
#include "engine/taxonomy.h"

extern const unsigned char rsre_taxonomy_yaml[];
extern const size_t rsre_taxonomy_yaml_len;

static void test_builtin_contract(void **state) {
    (void)state;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    static const char *const domains[] = {"infrastructure",    "runtime_services",
                                          "application_services", "network_ingress",
                                          "golden_signals",    "identity_security",
                                          "release_configuration", "operator_channels"};
    static const char *const classes[] = {
        "node_disk_pressure",          "node_unreachable_or_notready",
        "registry_pull_failure",       "runtime_dependency_outage",
        "ingress_configuration_drift", "identity_provider_unreachable",
        "http_error_rate_spike",       "database_connectivity_degraded",
        "release_drift_or_partial_apply", "background_job_buildup",
        "chatops_delivery_failure"};
    assert_int_equal(t->ndomains, 8);
    for (size_t i = 0; i < 8; i++) {
        assert_non_null(rsre_taxonomy_domain(t, domains[i]));
    }
    assert_int_equal(t->nincidents, 11);
    for (size_t i = 0; i < 11; i++) {
        const struct rsre_incident_def *inc = rsre_taxonomy_incident(t, classes[i]);
        assert_non_null(inc);
        assert_true(strlen(inc->display_name) > 0 && strlen(inc->description) > 0);
        assert_true(inc->primary_signals.n > 0 && inc->hypotheses.n > 0);
        assert_true(inc->exit_criteria.n > 0 && inc->exit_expr != NULL);
        assert_true(inc->nseverity_rules > 0);
        int has_notify = 0;
        for (size_t a = 0; a < t->nactions; a++) {
            has_notify |= inc->binding[a] && t->actions[a].cls == RSRE_CLASS_NOTIFY;
            /* human-only actions are bound only as human-only, and vice versa */
            if (inc->binding[a]) {
                assert_int_equal(t->actions[a].human_only, inc->binding[a] == RSRE_BIND_HUMAN);
            }
        }
        assert_true(has_notify);
    }
    /* Spec domains of the classes. */
    assert_string_equal(rsre_taxonomy_incident(t, "registry_pull_failure")->domain->id,
                        "release_configuration");
    assert_string_equal(rsre_taxonomy_incident(t, "database_connectivity_degraded")->domain->id,
                        "golden_signals");
    assert_int_equal(rsre_taxonomy_incident(t, "database_connectivity_degraded")->default_severity,
                     RSRE_SEV_CRITICAL);
    /* Cooldown policy defaults. */
    assert_int_equal(t->cooldown.observation_polling, 60);
    assert_int_equal(t->cooldown.duplicate_suppression, 900);
    assert_int_equal(t->cooldown.same_action_retry, 900);
    assert_int_equal(t->cooldown.disruptive_retry, 3600);
    /* Every action class exists; the spec's human-only list is human-only. */
    unsigned classes_seen = 0;
    for (size_t a = 0; a < t->nactions; a++) {
        classes_seen |= 1u << t->actions[a].cls;
    }
    assert_int_equal(classes_seen, (1u << RSRE_CLASS_COUNT) - 1);
    static const char *const human[] = {"delete_persistent_data", "rotate_secrets",
                                        "delete_namespace", "disable_auth"};
    for (size_t i = 0; i < 4; i++) {
        assert_true(rsre_taxonomy_action(t, human[i])->human_only);
    }
    static const char *const oci[] = {"reboot_worker", "replace_worker"};
    for (size_t i = 0; i < 2; i++) {
        assert_true(rsre_taxonomy_action(t, oci[i])->oci);
        assert_int_equal(rsre_taxonomy_action(t, oci[i])->cls, RSRE_CLASS_DISRUPTIVE);
    }
    /* Never auto-contain: the spec's six entries. */
    static const char *const never[] = {"supabase_config", "ingress_controller", "cert_manager",
                                        "namespace_deletion", "pvc_deletion", "database_reset"};
    assert_int_equal(t->nnever, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(t->never[i].id, never[i]);
    }
    /* Allowlist proposal. */
    const struct rsre_allow_family *f = rsre_taxonomy_family(t, "cronjob_suspend");
    assert_non_null(f);
    assert_true(rsre_target_matches(&f->patterns, "jobs/trivy-db-warmup"));
    assert_false(rsre_target_matches(&f->patterns, "jobs/other"));
    f = rsre_taxonomy_family(t, "noncritical_scale_down");
    assert_true(rsre_target_matches(&f->patterns, "tekton-pipelines/tekton-pipelines-webhook"));
    assert_true(rsre_target_matches(&f->patterns, "headlamp/headlamp"));
    assert_false(rsre_target_matches(&f->patterns, "image-factory/backend"));
    assert_false(rsre_target_matches(&f->patterns, NULL));
}

/* Replaces the first occurrence of `from` in the embedded YAML by `to`. */
static char *mutate(const char *from, const char *to) {
    const char *src = (const char *)rsre_taxonomy_yaml;
    const char *p = strstr(src, from);
    assert_non_null(p);
    size_t n = rsre_taxonomy_yaml_len - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    size_t pre = (size_t)(p - src);
    memcpy(out, src, pre);
    strcpy(out + pre, to);
    strcat(out, p + strlen(from));
    return out;
}

static void test_rejects_broken_taxonomies(void **state) {
    (void)state;
    static const struct {
        const char *from, *to;
        int rc;
        const char *msg;
    } cases[] = {
        {"    auto: [send_chat_alert, send_inapp_notification, collect_node_evidence",
         "    auto: [delete_persistent_data, send_chat_alert, send_inapp_notification, "
         "collect_node_evidence",
         RSRE_EINVALID, "human-only"},
        {"    auto: [send_chat_alert, send_inapp_notification, collect_node_evidence",
         "    auto: [reboot_worker, send_chat_alert, send_inapp_notification, collect_node_evidence",
         RSRE_EINVALID, "cannot be auto-allowed"},
        {"    approval: [cordon_node, reboot_worker", "    approval: [cordon_nodes, reboot_worker",
         RSRE_EINVALID, "unknown action 'cordon_nodes'"},
        {"    domain: infrastructure\n    display_name: Node Disk Pressure",
         "    domain: infra\n    display_name: Node Disk Pressure", RSRE_EINVALID,
         "unknown domain"},
        {"  - id: production\n", "  - id: prod\n", RSRE_EINVALID, "unknown or duplicate"},
        {"when: \"count(node.disk_pressure == 1) >= 2\"", "when: \"count(node.disk_pressure == ) >= 2\"",
         RSRE_EINVALID, "expression line 1"},
        {"exit_expression: \"dep.failing == 0\"", "exit_expression: \"dep.failingg == 0\"",
         RSRE_EINVALID, "dep.failingg"},
        {"{id: cordon_node, class: recover, target_kind: node,",
         "{id: cordon_node, class: recover, auto_envs: [demo], target_kind: node,", RSRE_EINVALID,
         "auto_envs"},
        {"version: 1\n", "\n", RSRE_EINVALID, "version"},
        {"family: cronjob_suspend,", "family: cronjob_suspendd,", RSRE_EINVALID, "family"},
        {"{id: suspend_cronjob, class: contain,", "{id: suspend_cronjob, class: contain, "
                                                  "mutates_config: true,",
         RSRE_EINVALID, "recover or disruptive"},
        {"{id: delete_pvc, class: disruptive, target_kind: volume, human_only: true,",
         "{id: delete_pvc, class: disruptive, target_kind: volume, human_only: true, family: "
         "finished_pod_cleanup,",
         RSRE_EINVALID, "human-only action cannot be auto"},
        {"  - id: node_unreachable_or_notready\n", "  - id: node_disk_pressure\n", RSRE_EINVALID,
         "duplicate incident"},
        {"class: observe, target_kind: cluster", "class: observer, target_kind: cluster",
         RSRE_EINVALID, "unknown class"},
        {"environments:\n", "environments: [\n", RSRE_EPARSE, ""},
        {"severity: warning, text: one node in pressure", "severity: fatal, text: one node in pressure",
         RSRE_EINVALID, "unknown severity"},
        {"never_auto_contain:\n", "never_auto_contain: &a\n", RSRE_EPARSE, "anchors"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *y = mutate(cases[i].from, cases[i].to);
        struct rsre_taxonomy *t = NULL;
        struct rsre_yerr e = {0};
        int rc = rsre_taxonomy_load(y, strlen(y), &t, &e);
        if (rc != cases[i].rc || !strstr(e.msg, cases[i].msg)) {
            fail_msg("case %zu: rc=%d (%s) msg='%s' line %d; want rc=%d msg~'%s'", i, rc,
                     rsre_strerror(rc), e.msg, e.line, cases[i].rc, cases[i].msg);
        }
        assert_null(t);
        assert_true(e.line > 0);
        free(y);
    }
    struct rsre_taxonomy *t = NULL;
    struct rsre_yerr e = {0};
    assert_int_equal(rsre_taxonomy_load("", 0, &t, &e), RSRE_EPARSE);
    assert_int_equal(rsre_taxonomy_load("[1, 2]", 6, &t, &e), RSRE_EINVALID);
    /* The unmodified text loads into an equal copy. */
    assert_int_equal(rsre_taxonomy_load((const char *)rsre_taxonomy_yaml, rsre_taxonomy_yaml_len,
                                        &t, &e),
                     0);
    assert_int_equal(t->nactions, rsre_taxonomy_builtin()->nactions);
    rsre_taxonomy_destroy(t);
    rsre_taxonomy_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_contract),
        cmocka_unit_test(test_rejects_broken_taxonomies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
