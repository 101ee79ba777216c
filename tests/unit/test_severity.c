/* Severity from the spec's severity rules and operator escalations. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "engine/severity.h"

static const struct rsre_taxonomy *T;

static int slot(const char *name) {
    int s = rsre_taxonomy_signal_slot((void *)T, name, strlen(name));
    assert_true(s >= 0);
    return s;
}

/* A scalar vector with every signal missing (NaN). */
static void blank(double *v) {
    for (size_t i = 0; i < RSRE_MAX_SIGNALS; i++) {
        v[i] = NAN;
    }
}

static enum rsre_severity eval(const char *cls, const struct rsre_ruleset *rs, double *scalars,
                               const double *const *rows, size_t nrows,
                               struct rsre_severity_why *why) {
    struct rsre_expr_env env = {.scalars = scalars, .nscalars = T->nsignals, .rows = rows,
                                .nrows = nrows, .now_s = 1000};
    return rsre_severity_eval(rsre_taxonomy_incident(T, cls), rs, RSRE_ENV_DEMO, &env, why);
}

static void test_disk_pressure(void **state) {
    (void)state;
    T = rsre_taxonomy_builtin();
    double v[RSRE_MAX_SIGNALS], n1[RSRE_MAX_SIGNALS], n2[RSRE_MAX_SIGNALS];
    blank(v);
    blank(n1);
    blank(n2);
    struct rsre_severity_why why;
    /* one node in pressure for 2 minutes: warning */
    v[slot("node.disk_pressure")] = 1;
    v[slot("node.disk_pressure_held")] = 120;
    n1[slot("node.disk_pressure")] = 1;
    n2[slot("node.disk_pressure")] = 0;
    const double *rows[] = {n1, n2};
    assert_int_equal(eval("node_disk_pressure", NULL, v, rows, 2, &why), RSRE_SEV_WARNING);
    /* spreads to a second node: critical, "multiple nodes in pressure" */
    n2[slot("node.disk_pressure")] = 1;
    assert_int_equal(eval("node_disk_pressure", NULL, v, rows, 2, &why), RSRE_SEV_CRITICAL);
    assert_string_equal(why.text, "multiple nodes in pressure");
    /* one node again, but held past 10 minutes: critical */
    n2[slot("node.disk_pressure")] = 0;
    v[slot("node.disk_pressure_held")] = 601;
    assert_int_equal(eval("node_disk_pressure", NULL, v, rows, 2, &why), RSRE_SEV_CRITICAL);
    assert_string_equal(why.text, "pressure persists >10m");
    /* exactly 10 minutes is not past 10 minutes */
    v[slot("node.disk_pressure_held")] = 600;
    assert_int_equal(eval("node_disk_pressure", NULL, v, rows, 2, &why), RSRE_SEV_WARNING);
    /* customer-facing pod failures: critical */
    v[slot("pods.customer_facing_failing")] = 3;
    assert_int_equal(eval("node_disk_pressure", NULL, v, rows, 2, &why), RSRE_SEV_CRITICAL);
}

static void test_other_classes(void **state) {
    (void)state;
    T = rsre_taxonomy_builtin();
    double v[RSRE_MAX_SIGNALS];
    struct rsre_severity_why why;
    blank(v);
    /* database_connectivity_degraded: always critical, even with no signal at all */
    assert_int_equal(eval("database_connectivity_degraded", NULL, v, NULL, 0, &why),
                     RSRE_SEV_CRITICAL);
    /* chatops: one channel down is a warning; every channel down during an incident, critical */
    v[slot("chat.channels_down")] = 1;
    v[slot("chat.channels_total")] = 2;
    v[slot("incidents.active")] = 1;
    assert_int_equal(eval("chatops_delivery_failure", NULL, v, NULL, 0, &why), RSRE_SEV_WARNING);
    v[slot("chat.channels_down")] = 2;
    assert_int_equal(eval("chatops_delivery_failure", NULL, v, NULL, 0, &why), RSRE_SEV_CRITICAL);
    v[slot("incidents.active")] = 0; /* no active incident: stays a warning */
    assert_int_equal(eval("chatops_delivery_failure", NULL, v, NULL, 0, &why), RSRE_SEV_WARNING);
    /* missing signals never escalate */
    blank(v);
    assert_int_equal(eval("runtime_dependency_outage", NULL, v, NULL, 0, &why), RSRE_SEV_WARNING);
    assert_null(why.text);
}

static void test_operator_escalation(void **state) {
    (void)state;
    T = rsre_taxonomy_builtin();
    struct rsre_ruleset *rs;
    assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
    static const char y[] =
        "id: dep-fast\nname: fast\ndomain: runtime_services\n"
        "incident_type: runtime_dependency_outage\nenvironment_scope: [demo]\n"
        "threshold_expression: dep.failing >= 1\nseverity: warning\nowner: o\nversion: 1\n"
        "severity_escalations:\n"
        "  - {severity: critical, when: \"dep.consecutive_failures >= 5\", text: five in a row}\n";
    struct rsre_rule_error e;
    assert_int_equal(rsre_ruleset_add_yaml(rs, "t", y, sizeof(y) - 1, &e), 0);
    double v[RSRE_MAX_SIGNALS];
    blank(v);
    v[slot("dep.failing")] = 1;
    v[slot("dep.consecutive_failures")] = 4;
    struct rsre_severity_why why;
    assert_int_equal(eval("runtime_dependency_outage", rs, v, NULL, 0, &why), RSRE_SEV_WARNING);
    v[slot("dep.consecutive_failures")] = 5;
    assert_int_equal(eval("runtime_dependency_outage", rs, v, NULL, 0, &why), RSRE_SEV_CRITICAL);
    assert_string_equal(why.rule, "dep-fast");
    assert_string_equal(why.text, "five in a row");
    rsre_ruleset_destroy(rs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_pressure),
        cmocka_unit_test(test_other_classes),
        cmocka_unit_test(test_operator_escalation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
