/*
 * Tests for engine/lifecycle: names, the full (state x event) table against an expected table
 * written here independently of lifecycle.c (as a list of transitions, not a matrix), the
 * structural rules the docs promise, and long random walks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/error.h"
#include "engine/lifecycle.h"

#define NS RSRE_STATE_COUNT
#define NE RSRE_LC_EVENT_COUNT

/* The expected lifecycle, one row per allowed (from, event) -> to. */
struct step {
    enum rsre_state from;
    enum rsre_lc_event ev;
    enum rsre_state to;
};

static const struct step expected_steps[] = {
    {RSRE_STATE_OBSERVED, RSRE_LC_TRIAGE, RSRE_STATE_TRIAGED},
    {RSRE_STATE_OBSERVED, RSRE_LC_OPERATOR_RESOLVE, RSRE_STATE_RESOLVED},

    {RSRE_STATE_TRIAGED, RSRE_LC_CONTAIN_ACTION_SUCCEEDED, RSRE_STATE_CONTAINED},
    {RSRE_STATE_TRIAGED, RSRE_LC_RECOVERY_ACTION_STARTED, RSRE_STATE_RECOVERING},
    {RSRE_STATE_TRIAGED, RSRE_LC_EXIT_CRITERIA_MET, RSRE_STATE_RESOLVED},
    {RSRE_STATE_TRIAGED, RSRE_LC_OPERATOR_RESOLVE, RSRE_STATE_RESOLVED},
    {RSRE_STATE_TRIAGED, RSRE_LC_SUPPRESS, RSRE_STATE_SUPPRESSED},
    {RSRE_STATE_TRIAGED, RSRE_LC_ESCALATE, RSRE_STATE_ESCALATED},

    {RSRE_STATE_CONTAINED, RSRE_LC_RECOVERY_ACTION_STARTED, RSRE_STATE_RECOVERING},
    {RSRE_STATE_CONTAINED, RSRE_LC_EXIT_CRITERIA_MET, RSRE_STATE_RESOLVED},
    {RSRE_STATE_CONTAINED, RSRE_LC_OPERATOR_RESOLVE, RSRE_STATE_RESOLVED},
    {RSRE_STATE_CONTAINED, RSRE_LC_SUPPRESS, RSRE_STATE_SUPPRESSED},
    {RSRE_STATE_CONTAINED, RSRE_LC_ESCALATE, RSRE_STATE_ESCALATED},

    {RSRE_STATE_RECOVERING, RSRE_LC_CONTAIN_ACTION_SUCCEEDED, RSRE_STATE_CONTAINED},
    {RSRE_STATE_RECOVERING, RSRE_LC_EXIT_CRITERIA_MET, RSRE_STATE_RESOLVED},
    {RSRE_STATE_RECOVERING, RSRE_LC_OPERATOR_RESOLVE, RSRE_STATE_RESOLVED},
    {RSRE_STATE_RECOVERING, RSRE_LC_ESCALATE, RSRE_STATE_ESCALATED},

    {RSRE_STATE_RESOLVED, RSRE_LC_REOPEN, RSRE_STATE_OBSERVED},

    {RSRE_STATE_SUPPRESSED, RSRE_LC_UNSUPPRESS, RSRE_STATE_OBSERVED},
    {RSRE_STATE_SUPPRESSED, RSRE_LC_EXIT_CRITERIA_MET, RSRE_STATE_RESOLVED},
    {RSRE_STATE_SUPPRESSED, RSRE_LC_OPERATOR_RESOLVE, RSRE_STATE_RESOLVED},
    {RSRE_STATE_SUPPRESSED, RSRE_LC_ESCALATE, RSRE_STATE_ESCALATED},

    {RSRE_STATE_ESCALATED, RSRE_LC_CONTAIN_ACTION_SUCCEEDED, RSRE_STATE_CONTAINED},
    {RSRE_STATE_ESCALATED, RSRE_LC_RECOVERY_ACTION_STARTED, RSRE_STATE_RECOVERING},
    {RSRE_STATE_ESCALATED, RSRE_LC_EXIT_CRITERIA_MET, RSRE_STATE_RESOLVED},
    {RSRE_STATE_ESCALATED, RSRE_LC_OPERATOR_RESOLVE, RSRE_STATE_RESOLVED},
};

#define NSTEPS (sizeof(expected_steps) / sizeof(expected_steps[0]))

/* Looks up the expected successor; returns 1 and sets *to when (from, ev) is allowed. */
static int expected(enum rsre_state from, enum rsre_lc_event ev, enum rsre_state *to) {
    for (size_t i = 0; i < NSTEPS; i++) {
        if (expected_steps[i].from == from && expected_steps[i].ev == ev) {
            *to = expected_steps[i].to;
            return 1;
        }
    }
    return 0;
}

static void test_state_names(void **unused) {
    static const char *const names[NS] = {"observed", "triaged",    "contained", "recovering",
                                          "resolved", "suppressed", "escalated"};
    for (int s = 0; s < NS; s++) {
        assert_string_equal(rsre_state_name((enum rsre_state)s), names[s]);
        enum rsre_state out = (enum rsre_state) - 1;
        assert_int_equal(rsre_state_parse(names[s], &out), 0);
        assert_int_equal(out, s);
    }
    enum rsre_state out = RSRE_STATE_ESCALATED;
    assert_int_equal(rsre_state_parse("Observed", &out), RSRE_EINVALID);
    assert_int_equal(rsre_state_parse("", &out), RSRE_EINVALID);
    assert_int_equal(rsre_state_parse("resolvedx", &out), RSRE_EINVALID);
    assert_int_equal(out, RSRE_STATE_ESCALATED);
    assert_int_equal(rsre_state_parse(NULL, &out), -EINVAL);
    assert_int_equal(rsre_state_parse("observed", NULL), -EINVAL);
    assert_string_equal(rsre_state_name((enum rsre_state)NS), "unknown");
    assert_string_equal(rsre_state_name((enum rsre_state) - 1), "unknown");
}

static void test_event_names(void **unused) {
    static const char *const names[NE] = {"triage",
                                          "contain_action_succeeded",
                                          "recovery_action_started",
                                          "exit_criteria_met",
                                          "suppress",
                                          "unsuppress",
                                          "escalate",
                                          "reopen",
                                          "operator_resolve"};
    for (int e = 0; e < NE; e++) {
        assert_string_equal(rsre_lc_event_name((enum rsre_lc_event)e), names[e]);
        enum rsre_lc_event out = (enum rsre_lc_event) - 1;
        assert_int_equal(rsre_lc_event_parse(names[e], &out), 0);
        assert_int_equal(out, e);
    }
    enum rsre_lc_event out = RSRE_LC_REOPEN;
    assert_int_equal(rsre_lc_event_parse("resolve", &out), RSRE_EINVALID);
    assert_int_equal(out, RSRE_LC_REOPEN);
    assert_int_equal(rsre_lc_event_parse(NULL, &out), -EINVAL);
    assert_int_equal(rsre_lc_event_parse("reopen", NULL), -EINVAL);
    assert_string_equal(rsre_lc_event_name((enum rsre_lc_event)NE), "unknown");
}

/* Every (state, event) pair behaves exactly as the expected list says. */
static void test_exhaustive_table(void **unused) {
    size_t allowed = 0;
    for (int s = 0; s < NS; s++) {
        for (int e = 0; e < NE; e++) {
            enum rsre_state want;
            const enum rsre_state sentinel = (enum rsre_state)0x5a5a;
            enum rsre_state got = sentinel;
            int rc = rsre_lifecycle_transition((enum rsre_state)s, (enum rsre_lc_event)e, &got);
            if (expected((enum rsre_state)s, (enum rsre_lc_event)e, &want)) {
                allowed++;
                if (rc != 0 || got != want) {
                    fail_msg("%s --%s--> expected %s, got rc=%d to=%s",
                             rsre_state_name((enum rsre_state)s),
                             rsre_lc_event_name((enum rsre_lc_event)e), rsre_state_name(want), rc,
                             rsre_state_name(got));
                }
                assert_true(rsre_lifecycle_events((enum rsre_state)s, want) & RSRE_LC_EVENT_BIT(e));
            } else {
                if (rc != RSRE_ETRANSITION || got != sentinel) {
                    fail_msg("%s --%s--> expected rejection, got rc=%d",
                             rsre_state_name((enum rsre_state)s),
                             rsre_lc_event_name((enum rsre_lc_event)e), rc);
                }
            }
        }
    }
    assert_int_equal(allowed, NSTEPS);
}

/* can() and events() agree with the expected list for all 7x7 pairs. */
static void test_can_matrix(void **unused) {
    for (int f = 0; f < NS; f++) {
        for (int t = 0; t < NS; t++) {
            unsigned mask = 0;
            for (size_t i = 0; i < NSTEPS; i++) {
                if ((int)expected_steps[i].from == f && (int)expected_steps[i].to == t) {
                    mask |= RSRE_LC_EVENT_BIT(expected_steps[i].ev);
                }
            }
            assert_int_equal(rsre_lifecycle_events((enum rsre_state)f, (enum rsre_state)t), mask);
            assert_int_equal(rsre_lifecycle_can((enum rsre_state)f, (enum rsre_state)t), mask != 0);
        }
    }
    assert_false(rsre_lifecycle_can(RSRE_STATE_OBSERVED, (enum rsre_state)NS));
    assert_false(rsre_lifecycle_can((enum rsre_state) - 1, RSRE_STATE_OBSERVED));
    assert_int_equal(rsre_lifecycle_events((enum rsre_state)NS, RSRE_STATE_OBSERVED), 0);
}

/* The rules the docs state, checked on the real table rather than the expected list. */
static void test_structural_rules(void **unused) {
    for (int s = 0; s < NS; s++) {
        /* No self-loops. */
        assert_false(rsre_lifecycle_can((enum rsre_state)s, (enum rsre_state)s));
        /* Only reopen (from resolved) and unsuppress (from suppressed) reach observed. */
        unsigned to_obs = rsre_lifecycle_events((enum rsre_state)s, RSRE_STATE_OBSERVED);
        if (s == RSRE_STATE_RESOLVED) {
            assert_int_equal(to_obs, RSRE_LC_EVENT_BIT(RSRE_LC_REOPEN));
        } else if (s == RSRE_STATE_SUPPRESSED) {
            assert_int_equal(to_obs, RSRE_LC_EVENT_BIT(RSRE_LC_UNSUPPRESS));
        } else {
            assert_int_equal(to_obs, 0);
        }
        /* A human can close every open incident. */
        enum rsre_state to;
        if (s != RSRE_STATE_RESOLVED) {
            assert_int_equal(
                rsre_lifecycle_transition((enum rsre_state)s, RSRE_LC_OPERATOR_RESOLVE, &to), 0);
            assert_int_equal(to, RSRE_STATE_RESOLVED);
            assert_true(rsre_lifecycle_is_open((enum rsre_state)s));
        } else {
            assert_false(rsre_lifecycle_is_open((enum rsre_state)s));
        }
        /* reopen and unsuppress are only meaningful in one state each. */
        int rc = rsre_lifecycle_transition((enum rsre_state)s, RSRE_LC_REOPEN, &to);
        assert_int_equal(rc, s == RSRE_STATE_RESOLVED ? 0 : RSRE_ETRANSITION);
        rc = rsre_lifecycle_transition((enum rsre_state)s, RSRE_LC_UNSUPPRESS, &to);
        assert_int_equal(rc, s == RSRE_STATE_SUPPRESSED ? 0 : RSRE_ETRANSITION);
    }
    /* Resolved is left only by reopen; it cannot be contained, recovered or escalated. */
    for (int t = 0; t < NS; t++) {
        unsigned m = rsre_lifecycle_events(RSRE_STATE_RESOLVED, (enum rsre_state)t);
        assert_int_equal(m, t == RSRE_STATE_OBSERVED ? RSRE_LC_EVENT_BIT(RSRE_LC_REOPEN) : 0u);
    }
    /* Observed must be triaged before anything but an operator close. */
    for (int t = 0; t < NS; t++) {
        unsigned m = rsre_lifecycle_events(RSRE_STATE_OBSERVED, (enum rsre_state)t);
        unsigned want = t == RSRE_STATE_TRIAGED    ? RSRE_LC_EVENT_BIT(RSRE_LC_TRIAGE)
                        : t == RSRE_STATE_RESOLVED ? RSRE_LC_EVENT_BIT(RSRE_LC_OPERATOR_RESOLVE)
                                                   : 0u;
        assert_int_equal(m, want);
    }
    /* The robot cannot silence an escalated incident. */
    enum rsre_state to;
    assert_int_equal(rsre_lifecycle_transition(RSRE_STATE_ESCALATED, RSRE_LC_SUPPRESS, &to),
                     RSRE_ETRANSITION);
    /* Recovery in progress is not suppressed either (it awaits verification). */
    assert_int_equal(rsre_lifecycle_transition(RSRE_STATE_RECOVERING, RSRE_LC_SUPPRESS, &to),
                     RSRE_ETRANSITION);
}

/* Every state is reachable from observed and every state can reach resolved. */
static void test_reachability(void **unused) {
    int reach[NS][NS];
    for (int f = 0; f < NS; f++) {
        for (int t = 0; t < NS; t++) {
            reach[f][t] = f == t || rsre_lifecycle_can((enum rsre_state)f, (enum rsre_state)t);
        }
    }
    for (int k = 0; k < NS; k++) {
        for (int f = 0; f < NS; f++) {
            for (int t = 0; t < NS; t++) {
                reach[f][t] = reach[f][t] || (reach[f][k] && reach[k][t]);
            }
        }
    }
    for (int s = 0; s < NS; s++) {
        assert_true(reach[RSRE_STATE_OBSERVED][s]);
        assert_true(reach[s][RSRE_STATE_RESOLVED]);
    }
}

static void test_bad_arguments(void **unused) {
    enum rsre_state to = RSRE_STATE_CONTAINED;
    assert_int_equal(rsre_lifecycle_transition(RSRE_STATE_OBSERVED, RSRE_LC_TRIAGE, NULL), -EINVAL);
    assert_int_equal(rsre_lifecycle_transition((enum rsre_state)NS, RSRE_LC_TRIAGE, &to), -EINVAL);
    assert_int_equal(rsre_lifecycle_transition((enum rsre_state) - 1, RSRE_LC_TRIAGE, &to),
                     -EINVAL);
    assert_int_equal(rsre_lifecycle_transition(RSRE_STATE_OBSERVED, (enum rsre_lc_event)NE, &to),
                     -EINVAL);
    assert_int_equal(to, RSRE_STATE_CONTAINED);
    assert_false(rsre_lifecycle_is_open((enum rsre_state)NS));
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/*
 * 100k random events from observed: each accepted step must be in the expected list; each
 * rejected step must leave the state (and the out-parameter) unchanged. Also checks that the
 * walk visits every state and exercises every allowed step.
 */
static void test_random_walk(void **unused) {
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    enum rsre_state cur = RSRE_STATE_OBSERVED;
    unsigned long visits[NS] = {0};
    unsigned long used[NSTEPS] = {0};
    unsigned long accepted = 0;
    for (int i = 0; i < 100000; i++) {
        enum rsre_lc_event ev = (enum rsre_lc_event)(rng_next(&seed) % NE);
        enum rsre_state want;
        int ok = expected(cur, ev, &want);
        enum rsre_state next = cur;
        int rc = rsre_lifecycle_transition(cur, ev, &next);
        if (rc == 0) {
            if (!ok || next != want) {
                fail_msg("step %d: %s --%s--> %s accepted but not allowed", i, rsre_state_name(cur),
                         rsre_lc_event_name(ev), rsre_state_name(next));
            }
            assert_true(rsre_lifecycle_can(cur, next));
            for (size_t k = 0; k < NSTEPS; k++) {
                if (expected_steps[k].from == cur && expected_steps[k].ev == ev) {
                    used[k]++;
                }
            }
            accepted++;
            cur = next;
        } else {
            assert_int_equal(rc, RSRE_ETRANSITION);
            if (ok) {
                fail_msg("step %d: %s --%s--> rejected but allowed", i, rsre_state_name(cur),
                         rsre_lc_event_name(ev));
            }
            assert_int_equal(next, cur);
        }
        visits[cur]++;
    }
    assert_true(accepted > 10000);
    for (int s = 0; s < NS; s++) {
        assert_true(visits[s] > 0);
    }
    for (size_t k = 0; k < NSTEPS; k++) {
        assert_true(used[k] > 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),      cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_exhaustive_table), cmocka_unit_test(test_can_matrix),
        cmocka_unit_test(test_structural_rules), cmocka_unit_test(test_reachability),
        cmocka_unit_test(test_bad_arguments),    cmocka_unit_test(test_random_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
