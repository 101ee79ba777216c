/*
 * The policy matrix computed by the engine agrees with the spec's "Policy Matrix" table row by
 * row. The spec text (a verbatim copy in tests/data/spec/) is parsed here; each of its rows
 * must equal the row robotctl prints, rebuilt with single spaces the way the spec joins cells.
 *
 * Where the spec's own sections disagree, the taxonomy section (which lists every action) is
 * followed and the difference is written down below with its reason; any other difference
 * fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/matrix.h"

struct known_difference {
    const char *incident, *column, *engine, *spec, *why;
};

static const struct known_difference differences[] = {
    {"runtime_dependency_outage", "approval",
     "shared dependency restart, config patch, release reconcile, dependency scale",
     "shared dependency restart, config patch, release reconcile",
     "the class's Approval-Required list also has 'scale dependency'"},
    {"runtime_dependency_outage", "human", "none", "none by default",
     "same meaning: operators may still tighten actions to human-only"},
    {"release_drift_or_partial_apply", "approval",
     "release reconcile, force conflict ownership, restart workloads",
     "Helm reconcile, restart workloads",
     "helm_reconcile is labelled 'release reconcile' as in the other rows; the class's "
     "Approval-Required list also has 'force conflict ownership'"},
};

static const char *apply_difference(const char *incident, const char *column, const char *cell) {
    for (size_t i = 0; i < sizeof(differences) / sizeof(differences[0]); i++) {
        if (!strcmp(differences[i].incident, incident) && !strcmp(differences[i].column, column)) {
            assert_string_equal(cell, differences[i].engine); /* stale entries fail too */
            return differences[i].spec;
        }
    }
    return cell;
}

static char *read_spec(void) {
    FILE *f = fopen(RSRE_TEST_DATA "/spec/robot-sre-taxonomy-and-policy.txt", "rb");
    assert_non_null(f);
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_matrix_matches_spec(void **state) {
    (void)state;
    char *spec = read_spec();
    char *p = strstr(spec, "\nPolicy Matrix\n");
    assert_non_null(p);
    p = strstr(p, "Incident Class Auto Observe Auto Notify Auto Contain Approval Required Human "
                  "Only\n");
    assert_non_null(p);
    p = strchr(p, '\n') + 1;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    int rows = 0;
    for (;;) {
        char *eol = strchr(p, '\n');
        if (!eol || eol == p) {
            break;
        }
        *eol = '\0';
        char id[64];
        assert_int_equal(sscanf(p, "%63s", id), 1);
        const struct rsre_incident_def *inc = rsre_taxonomy_incident(t, id);
        assert_non_null(inc);
        struct rsre_matrix_row r;
        rsre_matrix_row(t, inc, 0, NULL, &r);
        char line[2048];
        snprintf(line, sizeof(line), "%s %s %s %s %s %s", id, r.auto_observe, r.auto_notify,
                 apply_difference(id, "contain", r.auto_contain),
                 apply_difference(id, "approval", r.approval),
                 apply_difference(id, "human", r.human_only));
        if (strcmp(line, p) != 0) {
            fail_msg("row differs\n spec:   %s\n engine: %s", p, line);
        }
        rows++;
        p = eol + 1;
    }
    assert_int_equal(rows, 9); /* the spec's table has nine rows */
}

/* The classes the spec's table leaves out still get a row, and it follows the same policy. */
static void test_rows_outside_spec_table(void **state) {
    (void)state;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    struct rsre_matrix_row r;
    rsre_matrix_row(t, rsre_taxonomy_incident(t, "node_unreachable_or_notready"), 0, NULL, &r);
    assert_string_equal(r.auto_contain, "no");
    assert_string_equal(r.approval, "cordon, reboot, replace");
    rsre_matrix_row(t, rsre_taxonomy_incident(t, "http_error_rate_spike"), 0, NULL, &r);
    assert_string_equal(r.approval, "backend restart, release rollback");
    assert_string_equal(r.human_only, "none");
}

/* Per environment: production auto-contains nothing that touches the cluster. */
static void test_production_matrix(void **state) {
    (void)state;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    for (size_t i = 0; i < t->nincidents; i++) {
        struct rsre_matrix_row r;
        rsre_matrix_row(t, &t->incidents[i], 1u << RSRE_ENV_PRODUCTION, NULL, &r);
        for (unsigned k = 0; k < r.nauto_contain; k++) {
            assert_string_equal(r.auto_contain_actions[k]->target_kind, "channel");
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_matches_spec),
        cmocka_unit_test(test_rows_outside_spec_table),
        cmocka_unit_test(test_production_matrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
