/*
 * Unit tests for the expression language (aggregator/engine/expr.h): values, units,
 * precedence, NaN and three-valued logic, division by zero, `for` over a sequence of
 * evaluation times, aggregates over rows, limits, error positions and messages, and a
 * randomized differential test against a small recursive reference evaluator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/error.h"
#include "engine/expr.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */

/* Fixed name -> slot table used by most tests. "missing" resolves past any env we build. */
static const struct {
    const char *name;
    int slot;
} names[] = {
    {"a", 0},
    {"b", 1},
    {"c", 2},
    {"d", 3},
    {"x", 4},
    {"y", 5},
    {"nodefs.used_ratio", 6},
    {"imagefs.used_ratio", 7},
    {"node.condition.disk_pressure", 8},
    {"pods.failed", 9},
    {"pods.succeeded", 10},
    {"node.ready", 11},
    {"alias_of_a", 0},
    {"missing", 50},
};
#define NSCALARS 12

static int resolve(void *ctx, const char *name, size_t len) {
    (void)ctx;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0) {
            return names[i].slot;
        }
    }
    return -1;
}

static struct rsre_expr *compile_ok(const char *src) {
    struct rsre_expr *e = NULL;
    struct rsre_expr_error err;
    int rc = rsre_expr_compile(src, strlen(src), resolve, NULL, &e, &err);
    if (rc != 0) {
        print_error("compile failed for \"%s\": rc=%d line %d, col %d: %s\n", src, rc, err.line,
                    err.col, err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(e);
    return e;
}

/* Evaluates src against scalars[0..n) with no rows and no state. */
static double eval_scalars(const char *src, const double *scalars, size_t n) {
    struct rsre_expr *e = compile_ok(src);
    struct rsre_expr_env env = {.scalars = scalars, .nscalars = n, .now_s = 1000};
    assert_int_equal(rsre_expr_state_size(e), 0);
    double v = rsre_expr_eval(e, &env, NULL);
    rsre_expr_destroy(e);
    return v;
}

/* Default scalars: a=1 b=2 c=3 d=0 x=0.5 y=-4, the rest as given in the table comments. */
static const double defaults[NSCALARS] = {
    1, 2, 3, 0, 0.5, -4, 0.9, 0.7, 1, 150, 60, 1,
};

static double ev(const char *src) {
    return eval_scalars(src, defaults, NSCALARS);
}

static void assert_value(const char *src, double got, double want) {
    int same = (isnan(got) && isnan(want)) || got == want ||
               (isfinite(want) && fabs(got - want) <= 1e-12 * fmax(1.0, fabs(want)));
    if (!same) {
        print_error("\"%s\": got %.17g, want %.17g\n", src, got, want);
    }
    assert_true(same);
}

struct value_case {
    const char *src;
    double want;
};

static void check_values(const struct value_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        assert_value(cases[i].src, ev(cases[i].src), cases[i].want);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                    */

static void test_numbers_and_units(void **state) {
    (void)state;
    static const struct value_case cases[] = {
        {"0", 0},
        {"42", 42},
        {"3.25", 3.25},
        {"1e3", 1000},
        {"1E3", 1000},
        {"2.5e-2", 0.025},
        {"1e+2", 100},
        {"007", 7},
        {"85%", 0.85},
        {"100%", 1},
        {"0.5%", 0.005},
        {"250ms", 0.25},
        {"1s", 1},
        {"10m", 600},
        {"1.5h", 5400},
        {"2d", 172800},
        {"1Ki", 1024},
        {"2Mi", 2097152},
        {"1Gi", 1073741824.0},
        {"1Ti", 1099511627776.0},
        {"1.5Gi", 1610612736.0},
        {"1K", 1000},
        {"5M", 5e6},
        {"2G", 2e9},
        {"3T", 3e12},
        {"1e1Ki", 10240},
        {"true", 1},
        {"false", 0},
        {"-5", -5},
        {"- -5", 5},
        {"--5", 5},
        {"-85%", -0.85},
        {"10m == 600", 1},
        {"1Gi == 1024 * 1Mi", 1},
        {"1K == 1000", 1},
        {"85% == 0.85", 1},
    };
    check_values(cases, sizeof(cases) / sizeof(cases[0]));
    assert_true(85.0 / 100 == ev("85%")); /* `%` divides, bit for bit */
}

static void test_signals(void **state) {
    (void)state;
    static const struct value_case cases[] = {
        {"a", 1},
        {"nodefs.used_ratio", 0.9},
        {"nodefs.used_ratio > 85%", 1},
        {"nodefs.used_ratio > 95%", 0},
        {"nodefs.used_ratio > 85% and imagefs.used_ratio > 80%", 0},
        {"nodefs.used_ratio > 85% and imagefs.used_ratio > 60%", 1},
        {"node.condition.disk_pressure == 1", 1},
        {"(pods.failed + pods.succeeded) > 200 or not node.ready", 1},
        {"(pods.failed + pods.succeeded) > 300 or not node.ready", 0},
        {"alias_of_a + a", 2},
    };
    check_values(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_precedence(void **state) {
    (void)state;
    /* a=1 b=2 c=3 d=0 x=0.5 y=-4 */
    static const struct value_case cases[] = {
        {"1 + 2 * 3", 7},
        {"(1 + 2) * 3", 9},
        {"10 - 4 - 3", 3},
        {"64 / 4 / 2", 8},
        {"2 * 3 / 4", 1.5},
        {"-2 * 3", -6},
        {"-(2 + 3)", -5},
        {"- a * b", -2},
        {"b - -a", 3},
        {"a + b > c - 1", 1},
        {"a + b * c == 7", 1},
        {"a or b and d", 1},
        {"d and b or a", 1},
        {"d and (b or a)", 0},
        {"not d and a", 1},
        {"not (d and a)", 1},
        {"not a > 2", 1},
        {"!a", 0},
        {"!d", 1},
        {"not not a", 1},
        {"a > 0 && b > 1 || d", 1},
        {"d || d && a", 0},
        {"(a > 0) == 1", 1},
        {"(a > 0) + (b > 0) + (c > 5)", 2},
        {"a < b and b < c", 1},
        {"y * -1 >= 4", 1},
        {"x * 100 == 50", 1},
    };
    check_values(cases, sizeof(cases) / sizeof(cases[0])); /* chains: see test_errors */
}

static void test_nan_semantics(void **state) {
    (void)state;
    /* "missing" resolves to slot 50, beyond the 12 scalars: it reads NaN. */
    static const struct value_case cases[] = {
        {"missing", NAN},
        {"missing > 0", 0},
        {"missing < 0", 0},
        {"missing >= 0", 0},
        {"missing <= 0", 0},
        {"missing == missing", 0},
        {"missing != 1", 0},
        {"missing != missing", 0},
        {"missing + 1", NAN},
        {"missing * 0", NAN},
        {"-missing", NAN},
        {"not missing", NAN},
        {"not (missing > 0)", 1},
        {"missing and false", 0},
        {"false and missing", 0},
        {"missing and true", NAN},
        {"true and missing", NAN},
        {"missing or true", 1},
        {"true or missing", 1},
        {"missing or false", NAN},
        {"missing and missing", NAN},
        {"missing or missing", NAN},
        {"a != 2", 1},
        {"a != 1", 0},
        {"d and missing", 0},
        {"(pods.failed + missing) > 200 or not missing", NAN},
    };
    check_values(cases, sizeof(cases) / sizeof(cases[0]));

    /* A slot past nscalars reads NaN, so a threshold on it never fires. */
    double one[1] = {0.99};
    assert_value("nodefs.used_ratio > 85%", eval_scalars("nodefs.used_ratio > 85%", one, 1), 0);
    assert_value("a > 85%", eval_scalars("a > 85%", one, 1), 1);
    assert_value("a > 85% (no scalars)", eval_scalars("a > 85%", NULL, 0), 0);
    double nan1[1] = {NAN};
    assert_value("a == a (NaN)", eval_scalars("a == a", nan1, 1), 0);

    /* rsre_expr_true: NaN is not true, nonzero numbers are. */
    struct rsre_expr *e = compile_ok("missing or false");
    struct rsre_expr_env env = {.scalars = defaults, .nscalars = NSCALARS, .now_s = 1};
    assert_int_equal(rsre_expr_true(e, &env, NULL), 0);
    rsre_expr_destroy(e);
    e = compile_ok("y");
    assert_int_equal(rsre_expr_true(e, &env, NULL), 1);
    rsre_expr_destroy(e);
    e = compile_ok("d");
    assert_int_equal(rsre_expr_true(e, &env, NULL), 0);
    rsre_expr_destroy(e);
}

static void test_division_by_zero(void **state) {
    (void)state;
    static const struct value_case cases[] = {
        {"1 / 0", NAN},       {"0 / 0", NAN},   {"a / d", NAN},   {"-a / d", NAN},
        {"a / (b - 2)", NAN}, {"a / d > 0", 0}, {"a / d < 0", 0}, {"a / d == a / d", 0},
        {"1 / 0 or true", 1}, {"b / 4", 0.5},   {"1 / -0", NAN},
    };
    check_values(cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---------------------------------------------------------------------------------------- */
/* `for`                                                                                     */

struct for_step {
    int64_t now;
    double x;
    double want;
    int64_t cell; /* expected state[0] after the step */
};

static void run_for_steps(const char *src, const struct for_step *steps, size_t n) {
    struct rsre_expr *e = compile_ok(src);
    assert_int_equal(rsre_expr_state_size(e), 1);
    int64_t st[1] = {0};
    double sc[NSCALARS];
    memcpy(sc, defaults, sizeof(sc));
    for (size_t i = 0; i < n; i++) {
        sc[4] = steps[i].x;
        struct rsre_expr_env env = {.scalars = sc, .nscalars = NSCALARS, .now_s = steps[i].now};
        double v = rsre_expr_eval(e, &env, st);
        if (v != steps[i].want || st[0] != steps[i].cell) {
            print_error("\"%s\" step %zu (now=%lld x=%g): got %g cell %lld, want %g cell %lld\n",
                        src, i, (long long)steps[i].now, steps[i].x, v, (long long)st[0],
                        steps[i].want, (long long)steps[i].cell);
        }
        assert_true(v == steps[i].want);
        assert_true(st[0] == steps[i].cell);
    }
    rsre_expr_destroy(e);
}

static void test_for_sequence(void **state) {
    (void)state;
    static const struct for_step steps[] = {
        {1000, 0.5, 0, 0},  /* condition false */
        {1010, 2, 0, 1010}, /* becomes true: start recorded */
        {1300, 2, 0, 1010},
        {1609, 2, 0, 1010}, /* one second short */
        {1610, 2, 1, 1010}, /* exactly 10m: true at the boundary */
        {1700, 3, 1, 1010},
        {1750, 0, 0, 0},    /* condition goes false: resets */
        {1760, 2, 0, 1760}, /* true again: the hold starts over */
        {2359, 2, 0, 1760},
        {2360, 2, 1, 1760},
        {2361, NAN, 0, 0}, /* missing signal: not held, resets */
        {2400, 2, 0, 2400},
        {2300, 2, 0, 2300}, /* clock went backwards: the hold restarts at the new time */
        {2900, 2, 1, 2300},
        {0, 2, 0, 0}, /* now_s <= 0 never holds */
    };
    run_for_steps("x > 1 for 10m", steps, sizeof(steps) / sizeof(steps[0]));

    /* A bare number is seconds; sub-second durations round up to a whole second. */
    static const struct for_step secs[] = {
        {100, 1, 0, 100},
        {129, 1, 0, 100},
        {130, 1, 1, 100},
        {131, 0, 0, 0},
    };
    run_for_steps("x for 30", secs, sizeof(secs) / sizeof(secs[0]));
    static const struct for_step half[] = {
        {100, 1, 0, 100},
        {101, 1, 1, 100},
        {102, 0, 0, 0},
    };
    run_for_steps("x == 1 for 500ms", half, sizeof(half) / sizeof(half[0]));
    static const struct for_step zero[] = {
        {100, 1, 1, 100},
        {101, 0, 0, 0},
        {102, 1, 1, 102},
    };
    run_for_steps("x for 0s", zero, sizeof(zero) / sizeof(zero[0]));
    /* `not` binds tighter than `for`: (not x) for 1m. */
    static const struct for_step notx[] = {
        {100, 0, 0, 100},
        {160, 0, 1, 100},
        {161, 1, 0, 0},
    };
    run_for_steps("not x for 1m", notx, sizeof(notx) / sizeof(notx[0]));
}

static void test_for_binding_and_state(void **state) {
    (void)state;
    /* `x > 0.9 for 10m and y > 1` == `(x > 0.9 for 10m) and (y > 1)`; both clauses get cells
     * and both are evaluated every time (no short-circuit). */
    struct rsre_expr *e = compile_ok("x > 0.9 for 10m and y > 1 or a > 0 for 1m");
    assert_int_equal(rsre_expr_state_size(e), 2);
    int64_t st[2] = {0, 0};
    double sc[NSCALARS];
    memcpy(sc, defaults, sizeof(sc));
    sc[4] = 1; /* x */
    sc[5] = 2; /* y */
    sc[0] = 1; /* a */
    struct rsre_expr_env env = {.scalars = sc, .nscalars = NSCALARS, .now_s = 100};
    assert_value("t=100", rsre_expr_eval(e, &env, st), 0);
    assert_true(st[0] == 100 && st[1] == 100);
    env.now_s = 160;
    assert_value("t=160", rsre_expr_eval(e, &env, st), 1); /* the `a` clause holds */
    env.now_s = 700;
    sc[0] = 0;
    assert_value("t=700", rsre_expr_eval(e, &env, st), 1); /* the `x` clause holds */
    assert_true(st[0] == 100 && st[1] == 0);
    sc[5] = 0; /* y false: the conjunction fails but the x clause keeps its start */
    env.now_s = 710;
    assert_value("t=710", rsre_expr_eval(e, &env, st), 0);
    assert_true(st[0] == 100);
    rsre_expr_destroy(e);

    /* Parenthesised `for` of a `for` is allowed, each with its own cell. */
    e = compile_ok("(x for 1m) for 1m");
    assert_int_equal(rsre_expr_state_size(e), 2);
    int64_t st2[2] = {0, 0};
    sc[4] = 1;
    struct rsre_expr_env env2 = {.scalars = sc, .nscalars = NSCALARS};
    int64_t times[] = {100, 159, 160, 219, 220};
    double want[] = {0, 0, 0, 0, 1};
    for (size_t i = 0; i < 5; i++) {
        env2.now_s = times[i];
        assert_value("(x for 1m) for 1m", rsre_expr_eval(e, &env2, st2), want[i]);
    }
    /* state NULL with `for` clauses: never held, never crashes. */
    assert_value("state NULL", rsre_expr_eval(e, &env2, NULL), 0);
    rsre_expr_destroy(e);

    /* `for` on a constant is not folded away: it still needs time. */
    e = compile_ok("true for 1m");
    assert_int_equal(rsre_expr_state_size(e), 1);
    int64_t st3[1] = {0};
    env2.now_s = 10;
    assert_value("true for 1m @10", rsre_expr_eval(e, &env2, st3), 0);
    env2.now_s = 70;
    assert_value("true for 1m @70", rsre_expr_eval(e, &env2, st3), 1);
    rsre_expr_destroy(e);
}

/* ---------------------------------------------------------------------------------------- */
/* Aggregates                                                                                */

static double eval_rows(const char *src, const double *scalars, const double *const *rows,
                        size_t nrows) {
    struct rsre_expr *e = compile_ok(src);
    struct rsre_expr_env env = {
        .scalars = scalars, .nscalars = NSCALARS, .rows = rows, .nrows = nrows, .now_s = 1};
    double v = rsre_expr_eval(e, &env, NULL);
    rsre_expr_destroy(e);
    return v;
}

static void test_aggregates(void **state) {
    (void)state;
    /* Row slots: a=0 b=1 x=4 node.condition.disk_pressure=8. */
    double r0[NSCALARS] = {1, 10, 0, 0, 0.95, 0, 0, 0, 1};
    double r1[NSCALARS] = {2, 20, 0, 0, 0.50, 0, 0, 0, 0};
    double r2[NSCALARS] = {3, NAN, 0, 0, 0.91, 0, 0, 0, 1};
    double r3[NSCALARS] = {4, 40, 0, 0, NAN, 0, 0, 0, NAN};
    const double *rows[] = {r0, r1, r2, r3};
    const double *with_null[] = {r0, NULL, r1};
    static const struct value_case cases[] = {
        {"count(node.condition.disk_pressure == 1)", 2},
        {"count(node.condition.disk_pressure == 1) >= 2", 1},
        {"count(x > 90%)", 2},
        {"count(1)", 4},
        {"count(b)", 3},
        {"any(x > 90%)", 1},
        {"any(x > 99%)", 0},
        {"any(b > 100)", 0},
        {"any(x)", 1},
        {"all(a > 0)", 1},
        {"all(a > 1)", 0},
        {"all(b)", NAN},    /* one row unknown, none false */
        {"all(b > 0)", 0},  /* a comparison with NaN is false, not unknown */
        {"all(b > 15)", 0}, /* a false row decides */
        {"all(b > 0 or true)", 1},
        {"sum(a)", 10},
        {"sum(b)", 70}, /* NaN rows are skipped */
        {"sum(a * 2) / count(1)", 5},
        {"min(b)", 10},
        {"max(b)", 40},
        {"max(x) - min(x)", 0.45},
        {"max(a) > 3 and count(a > 2) == 2", 1},
        {"sum(missing)", NAN},
        {"min(missing)", NAN},
        {"max(missing)", NAN},
        {"any(missing)", NAN},
        {"count(missing)", 0},
        /* names outside an aggregate read the scalars (a=1), inside read the row */
        {"a + sum(a)", 11},
        {"count(a > c)", 4}, /* rows have c = 0 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_value(cases[i].src, eval_rows(cases[i].src, defaults, rows, 4), cases[i].want);
    }

    /* Zero rows. */
    static const struct value_case empty[] = {
        {"count(a)", 0}, {"any(a)", 0},   {"all(a)", NAN},   {"sum(a)", NAN},
        {"min(a)", NAN}, {"max(a)", NAN}, {"not any(a)", 1}, {"not all(a)", NAN},
    };
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_value(empty[i].src, eval_rows(empty[i].src, defaults, NULL, 0), empty[i].want);
        assert_value(empty[i].src, eval_rows(empty[i].src, defaults, rows, 0), empty[i].want);
    }
    /* rows == NULL with nrows > 0 reads as no rows; a NULL row reads as all-NaN. */
    assert_value("count(1) rows NULL", eval_rows("count(1)", defaults, NULL, 3), 0);
    assert_value("count(1) null row", eval_rows("count(1)", defaults, with_null, 3), 3);
    assert_value("count(a) null row", eval_rows("count(a)", defaults, with_null, 3), 2);
    assert_value("sum(a) null row", eval_rows("sum(a)", defaults, with_null, 3), 3);
    assert_value("all(a) null row", eval_rows("all(a)", defaults, with_null, 3), NAN);
}

static void test_aggregate_many_rows(void **state) {
    (void)state;
    enum { N = 1000 };
    double *data = calloc(N, NSCALARS * sizeof(double));
    const double **rows = calloc(N, sizeof(*rows));
    assert_non_null(data);
    assert_non_null(rows);
    for (size_t r = 0; r < N; r++) {
        data[r * NSCALARS + 0] = (double)r;
        rows[r] = &data[r * NSCALARS];
    }
    assert_value("sum", eval_rows("sum(a)", defaults, rows, N), N * (N - 1) / 2.0);
    assert_value("count", eval_rows("count(a >= 500)", defaults, rows, N), 500);
    assert_value("max", eval_rows("max(a)", defaults, rows, N), N - 1);
    assert_value("min", eval_rows("min(a) + 1", defaults, rows, N), 1);
    free(rows);
    free(data);
}

/* ---------------------------------------------------------------------------------------- */
/* Compilation details                                                                       */

static void test_slots(void **state) {
    (void)state;
    struct rsre_expr *e = NULL;
    struct rsre_expr_error err;
    const char *src = "zeta > 1 and alpha.b < zeta + count(gamma_2 > alpha.b)";
    assert_int_equal(rsre_expr_compile(src, strlen(src), NULL, NULL, &e, &err), 0);
    assert_int_equal(rsre_expr_slot_count(e), 3);
    assert_int_equal(rsre_expr_slot_span(e), 3);
    const char *nm = NULL;
    assert_int_equal(rsre_expr_slot(e, 0, &nm), 0);
    assert_string_equal(nm, "zeta");
    assert_int_equal(rsre_expr_slot(e, 1, &nm), 1);
    assert_string_equal(nm, "alpha.b");
    assert_int_equal(rsre_expr_slot(e, 2, &nm), 2);
    assert_string_equal(nm, "gamma_2");
    assert_int_equal(rsre_expr_slot(e, 3, &nm), -EINVAL);
    assert_int_equal(rsre_expr_slot(e, 0, NULL), 0);
    double sc[3] = {5, 1, 0};
    double row[3] = {0, 0, 2};
    const double *rows[] = {row};
    struct rsre_expr_env env = {.scalars = sc, .nscalars = 3, .rows = rows, .nrows = 1};
    assert_value(src, rsre_expr_eval(e, &env, NULL), 1);
    rsre_expr_destroy(e);

    /* With a resolver: slots are the resolver's, aliases count once, span is max + 1. */
    src = "alias_of_a + node.ready + a + missing";
    e = compile_ok(src);
    assert_int_equal(rsre_expr_slot_count(e), 3);
    assert_int_equal(rsre_expr_slot_span(e), 51);
    assert_int_equal(rsre_expr_slot(e, 0, &nm), 0);
    assert_string_equal(nm, "alias_of_a");
    assert_int_equal(rsre_expr_slot(e, 1, &nm), 11);
    assert_string_equal(nm, "node.ready");
    assert_int_equal(rsre_expr_slot(e, 2, &nm), 50);
    assert_string_equal(nm, "missing");
    rsre_expr_destroy(e);

    e = compile_ok("1 + 2");
    assert_int_equal(rsre_expr_slot_count(e), 0);
    assert_int_equal(rsre_expr_slot_span(e), 0);
    assert_int_equal(rsre_expr_slot(e, 0, &nm), -EINVAL);
    rsre_expr_destroy(e);
}

static void test_folding_and_fusion(void **state) {
    (void)state;
    struct rsre_expr *e = compile_ok("nodefs.used_ratio > 85%");
    assert_int_equal(rsre_expr_op_count(e), 2); /* fused load-compare, return */
    assert_int_equal(rsre_expr_stack_depth(e), 1);
    rsre_expr_destroy(e);
    e = compile_ok("(1 + 2) * 3 - 10m / 60 > 0 and not false");
    assert_int_equal(rsre_expr_op_count(e), 2); /* one constant, return */
    rsre_expr_destroy(e);
    /* A constant aggregate argument must not be folded with what follows the aggregate. */
    double row[NSCALARS] = {0};
    const double *rows[] = {row, row};
    assert_value("count(1) + 2", eval_rows("count(1) + 2", defaults, rows, 2), 4);
    assert_value("2 + count(1)", eval_rows("2 + count(1)", defaults, rows, 2), 4);
    assert_value("count(1) * count(2)", eval_rows("count(1) * count(2)", defaults, rows, 2), 4);
    /* The stack depth is computed at compile time and matches the nesting. */
    e = compile_ok("a + (b + (c + (d + x)))");
    assert_int_equal(rsre_expr_stack_depth(e), 5);
    rsre_expr_destroy(e);
    e = compile_ok("a + b + c + d + x");
    assert_int_equal(rsre_expr_stack_depth(e), 2);
    rsre_expr_destroy(e);
    e = compile_ok("a + count(b + (c * x))");
    assert_int_equal(rsre_expr_stack_depth(e), 4);
    rsre_expr_destroy(e);
}

static void test_multiline_and_comments(void **state) {
    (void)state;
    const char *src = "# disk pressure on several nodes\n"
                      "count(node.condition.disk_pressure == 1) >= 2   # two or more\n"
                      "  or (nodefs.used_ratio > 85%\r\n"
                      "      and imagefs.used_ratio > 60%)\n";
    assert_value(src, ev(src), 1);
}

static void test_api_misuse(void **state) {
    (void)state;
    struct rsre_expr *e = (struct rsre_expr *)&e; /* must be reset to NULL on failure */
    struct rsre_expr_error err;
    assert_int_equal(rsre_expr_compile("a", 1, NULL, NULL, NULL, &err), -EINVAL);
    assert_int_equal(rsre_expr_compile(NULL, 3, NULL, NULL, &e, &err), -EINVAL);
    assert_int_equal(rsre_expr_compile(NULL, 0, NULL, NULL, &e, &err), RSRE_EPARSE);
    assert_null(e);
    assert_string_equal(err.msg, "empty expression");
    /* err may be NULL */
    assert_int_equal(rsre_expr_compile("a >", 3, NULL, NULL, &e, NULL), RSRE_EPARSE);
    assert_null(e);
    /* the source need not be NUL-terminated: only len bytes are read */
    char buf[8] = {'a', ' ', '>', ' ', '1', '!', '!', '!'};
    assert_int_equal(rsre_expr_compile(buf, 5, NULL, NULL, &e, &err), 0);
    rsre_expr_destroy(e);
    rsre_expr_destroy(NULL);
    assert_true(isnan(rsre_expr_eval(NULL, NULL, NULL)));
    assert_int_equal(rsre_expr_true(NULL, NULL, NULL), 0);
    assert_int_equal(rsre_expr_state_size(NULL), 0);
    assert_int_equal(rsre_expr_slot_count(NULL), 0);
    assert_int_equal(rsre_expr_slot(NULL, 0, NULL), -EINVAL);
    /* env NULL reads all-NaN, no rows */
    e = compile_ok("a > 0 or count(1) > 0");
    assert_value("env NULL", rsre_expr_eval(e, NULL, NULL), 0);
    rsre_expr_destroy(e);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */

struct error_case {
    const char *src;
    size_t len; /* 0: strlen(src) */
    int rc;
    int line;
    int col;
    const char *msg; /* substring of the message */
};

#define P RSRE_EPARSE
#define L RSRE_ELIMIT

static const struct error_case error_cases[] = {
    {"", 0, P, 1, 1, "empty expression"},
    {"   ", 0, P, 1, 4, "empty expression"},
    {"\n\n  ", 0, P, 3, 3, "empty expression"},
    {"# only a comment\n", 0, P, 2, 1, "empty expression"},
    {"a >", 0, P, 1, 4, "expected a number or signal after '>'"},
    {"nodefs.used_ratio > ", 0, P, 1, 21, "expected a number or signal after '>'"},
    {"a > )", 0, P, 1, 5, "after '>', found ')'"},
    {"a >> 1", 0, P, 1, 4, "after '>', found '>'"},
    {"(a > 1", 0, P, 1, 1, "unterminated parenthesis"},
    {"((a > 1)", 0, P, 1, 1, "unterminated parenthesis"},
    {"a > 1\n  and (b", 0, P, 2, 7, "unterminated parenthesis"},
    {"(a b)", 0, P, 1, 4, "expected ')' or an operator, found signal 'b'"},
    {"a > 5Zi", 0, P, 1, 6, "unknown unit 'Zi'"},
    {"a > 10mb", 0, P, 1, 7, "unknown unit 'mb'"},
    {"a > 1ex", 0, P, 1, 6, "unknown unit 'ex'"},
    {"count(count(a))", 0, P, 1, 7, "aggregate cannot be nested"},
    {"sum(a + max(b))", 0, P, 1, 9, "aggregate cannot be nested"},
    {"a for", 0, P, 1, 6, "'for' needs a duration"},
    {"a for b", 0, P, 1, 7, "'for' needs a duration"},
    {"a for -5m", 0, P, 1, 7, "'for' needs a duration"},
    {"a for 5%", 0, P, 1, 7, "needs a duration in ms, s, m, h or d"},
    {"a for 5Gi", 0, P, 1, 7, "needs a duration in ms, s, m, h or d"},
    {"a for 10m for 5m", 0, P, 1, 11, "'for' cannot be chained"},
    {"count(a for 1m)", 0, P, 1, 9, "'for' cannot be used inside an aggregate"},
    {"a > 1 b", 0, P, 1, 7, "expected an operator or end of input, found signal 'b'"},
    {"true false", 0, P, 1, 6, "found 'false'"},
    {"a\0b", 3, P, 1, 2, "embedded NUL byte"},
    {"foo > 1", 0, P, 1, 1, "unknown signal 'foo'"},
    {"a > 1 and\n bar.baz", 0, P, 2, 2, "unknown signal 'bar.baz'"},
    {"a = 1", 0, P, 1, 3, "use '=='"},
    {"a & b", 0, P, 1, 3, "use 'and' or '&&'"},
    {"a | b", 0, P, 1, 3, "use 'or' or '||'"},
    {"a $ b", 0, P, 1, 3, "unexpected character '$'"},
    {"a > 1.", 0, P, 1, 7, "expected digits after '.'"},
    {"a > 1e", 0, P, 1, 6, "expected digits in the exponent"},
    {"a > 1e+", 0, P, 1, 6, "expected digits in the exponent"},
    {"a > 1e999", 0, P, 1, 5, "out of range"},
    {"a > 1e308T", 0, P, 1, 5, "out of range"},
    {"a.", 0, P, 1, 2, "malformed signal name 'a.'"},
    {"a..b > 1", 0, P, 1, 2, "malformed signal name"},
    {"a < b < c", 0, P, 1, 7, "comparisons cannot be chained"},
    {"1 < 2 == 1", 0, P, 1, 7, "comparisons cannot be chained"},
    {"count a", 0, P, 1, 7, "expected '(' after 'count'"},
    {"count", 0, P, 1, 6, "expected '(' after 'count'"},
    {"count()", 0, P, 1, 7, "'count' needs an argument"},
    {"max(a, b)", 0, P, 1, 6, "'max' takes one argument"},
    {")", 0, P, 1, 1, "expected a number or signal, found ')'"},
    {"a )", 0, P, 1, 3, "unmatched ')'"},
    {"a and", 0, P, 1, 6, "after 'and'"},
    {"not", 0, P, 1, 4, "after 'not'"},
    {"-", 0, P, 1, 2, "after '-'"},
    {"a * / b", 0, P, 1, 5, "after '*', found '/'"},
    {"a > 5 %", 0, P, 1, 7, "a unit must follow its number directly"},
    {"10 m", 0, P, 1, 4, "found signal 'm'"},
    {"\xc3\xa9t\xc3\xa9", 0, P, 1, 1, "unexpected byte 0xC3"},
    {"a > 1 for 10m and", 0, P, 1, 18, "after 'and'"},
    {"for 10m", 0, P, 1, 1, "expected a number or signal, found 'for'"},
    {"()", 0, P, 1, 2, "after '(', found ')'"},
    {"a ! b", 0, P, 1, 3, "found '!'"},
    {"a !== b", 0, P, 1, 5, "use '=='"},
    {"a > 1 && || b", 0, P, 1, 10, "after '&&', found '||'"},
    {"a > .5", 0, P, 1, 5, "unexpected '.'"},
    {"a > 1.5.3", 0, P, 1, 8, "unexpected '.' after number '1.5'"},
    {"a > 1 +", 0, P, 1, 8, "after '+'"},
    {"min(a", 0, P, 1, 4, "unterminated parenthesis"},
    {"sum(a b)", 0, P, 1, 7, "expected ')' to close 'sum('"},
    {"a\n> \n", 0, P, 3, 1, "after '>'"},
    {"a > 1 and\n  b >", 0, P, 2, 6, "after '>'"},
    {"a >\t@", 0, P, 1, 5, "unexpected character '@'"},
    {"a > 1 for 10m 5", 0, P, 1, 15, "found number '5'"},
    {"10m5", 0, P, 1, 4, "unexpected '5' after number '10m'"},
    {"count(a)(b)", 0, P, 1, 9, "found '('"},
    {"a AND b", 0, P, 1, 3, "found signal 'AND'"},
    {"a ,b", 0, P, 1, 3, "found ','"},
    {"a > 1 and not", 0, P, 1, 14, "after 'not'"},
    {"+a", 0, P, 1, 1, "expected a number or signal, found '+'"},
    {"a for 3651d", 0, L, 1, 7, "longer than 3650d"},
    {"a for 1e300d", 0, L, 1, 7, "longer than 3650d"},
    {"a for 1e304d", 0, P, 1, 7, "out of range"},
    {"a > 12345678901234567890123456789012345678901234567890123456789012345", 0, L, 1, 5,
     "number longer than 64"},
    {"a > 0 or\n   b > 0 and\n      (c > 0\n       or )", 0, P, 4, 11, "after 'or', found ')'"},
};

static void test_errors(void **state) {
    (void)state;
    size_t n = sizeof(error_cases) / sizeof(error_cases[0]);
    assert_true(n >= 40);
    for (size_t i = 0; i < n; i++) {
        const struct error_case *tc = &error_cases[i];
        size_t len = tc->len ? tc->len : strlen(tc->src);
        struct rsre_expr *e = NULL;
        struct rsre_expr_error err;
        memset(&err, 0x55, sizeof(err));
        int rc = rsre_expr_compile(tc->src, len, resolve, NULL, &e, &err);
        int ok = rc == tc->rc && err.line == tc->line && err.col == tc->col &&
                 strstr(err.msg, tc->msg) != NULL && e == NULL;
        if (!ok) {
            print_error("case %zu \"%s\": rc=%d line %d, col %d: %s\n  want rc=%d line %d, "
                        "col %d: ...%s...\n",
                        i, tc->src, rc, err.line, err.col, err.msg, tc->rc, tc->line, tc->col,
                        tc->msg);
        }
        assert_true(ok);
        assert_true(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Limits                                                                                    */

static int compile_buf(const char *src, size_t len, struct rsre_expr_error *err) {
    struct rsre_expr *e = NULL;
    int rc = rsre_expr_compile(src, len, NULL, NULL, &e, err);
    if (rc == 0) {
        assert_non_null(e);
    } else {
        assert_null(e);
    }
    rsre_expr_destroy(e);
    return rc;
}

static void test_limit_ops(void **state) {
    (void)state;
    char buf[RSRE_EXPR_MAX_SOURCE];
    struct rsre_expr_error err;
    /* n terms "a+a+...+a" compile to n loads, n-1 adds and a return: 2n instructions. */
    for (int n = 127; n <= 129; n++) {
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, i ? "+a" : "a");
        }
        int rc = compile_buf(buf, len, &err);
        if (2 * n <= RSRE_EXPR_MAX_OPS) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, RSRE_ELIMIT);
            assert_int_equal(err.line, 1);
            assert_int_equal(err.col, (int)len - 1); /* the last '+' */
            assert_non_null(strstr(err.msg, "too complex"));
        }
    }
    struct rsre_expr *e = NULL;
    size_t len = 0;
    for (int i = 0; i < 128; i++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, i ? "+a" : "a");
    }
    assert_int_equal(rsre_expr_compile(buf, len, NULL, NULL, &e, &err), 0);
    assert_int_equal(rsre_expr_op_count(e), RSRE_EXPR_MAX_OPS);
    double one = 1;
    struct rsre_expr_env env = {.scalars = &one, .nscalars = 1};
    assert_value("128 a", rsre_expr_eval(e, &env, NULL), 128);
    rsre_expr_destroy(e);

    /* Constant folding keeps long constant expressions small. */
    len = 0;
    for (int i = 0; i < 600; i++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, i ? "+1" : "1");
    }
    assert_int_equal(rsre_expr_compile(buf, len, NULL, NULL, &e, &err), 0);
    assert_int_equal(rsre_expr_op_count(e), 2);
    assert_value("600 ones", rsre_expr_eval(e, NULL, NULL), 600);
    rsre_expr_destroy(e);

    /* Error in the middle of a line: the too-complex instruction's position. */
    len = 0;
    for (int i = 0; i < 200; i++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, i ? "\n+ a%d" : "a%d", i);
    }
    assert_int_equal(compile_buf(buf, len, &err), RSRE_ELIMIT);
    assert_int_equal(err.line, 129);
    assert_int_equal(err.col, 1);
}

static void test_limit_depth(void **state) {
    (void)state;
    char buf[256];
    struct rsre_expr_error err;
    for (int n = RSRE_EXPR_MAX_DEPTH; n <= RSRE_EXPR_MAX_DEPTH + 1; n++) {
        /* parentheses */
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            buf[len++] = '(';
        }
        buf[len++] = 'a';
        for (int i = 0; i < n; i++) {
            buf[len++] = ')';
        }
        int rc = compile_buf(buf, len, &err);
        if (n <= RSRE_EXPR_MAX_DEPTH) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, RSRE_ELIMIT);
            assert_int_equal(err.line, 1);
            assert_int_equal(err.col, n);
            assert_non_null(strstr(err.msg, "nested too deeply"));
        }
        /* `not` */
        len = 0;
        for (int i = 0; i < n; i++) {
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "! ");
        }
        buf[len++] = 'a';
        rc = compile_buf(buf, len, &err);
        assert_int_equal(rc, n <= RSRE_EXPR_MAX_DEPTH ? 0 : RSRE_ELIMIT);
        if (rc) {
            assert_int_equal(err.col, 2 * n - 1);
        }
        /* unary minus */
        len = 0;
        for (int i = 0; i < n; i++) {
            buf[len++] = '-';
        }
        buf[len++] = 'a';
        rc = compile_buf(buf, len, &err);
        assert_int_equal(rc, n <= RSRE_EXPR_MAX_DEPTH ? 0 : RSRE_ELIMIT);
        if (rc) {
            assert_int_equal(err.col, n);
        }
    }
    /* The aggregate counts as one level and its own '(' as none. */
    for (int n = RSRE_EXPR_MAX_DEPTH; n <= RSRE_EXPR_MAX_DEPTH + 1; n++) {
        size_t len = (size_t)snprintf(buf, sizeof(buf), "count");
        for (int i = 0; i < n; i++) {
            buf[len++] = '(';
        }
        buf[len++] = 'a';
        for (int i = 0; i < n; i++) {
            buf[len++] = ')';
        }
        int rc = compile_buf(buf, len, &err);
        assert_int_equal(rc, n <= RSRE_EXPR_MAX_DEPTH ? 0 : RSRE_ELIMIT);
        if (rc) {
            assert_int_equal(err.col, 5 + n); /* the last '(' */
        }
    }
}

static void test_limit_name_and_source(void **state) {
    (void)state;
    char buf[RSRE_EXPR_MAX_SOURCE + 2];
    struct rsre_expr_error err;
    memset(buf, 'n', RSRE_EXPR_MAX_NAME + 1);
    assert_int_equal(compile_buf(buf, RSRE_EXPR_MAX_NAME, &err), 0);
    assert_int_equal(compile_buf(buf, RSRE_EXPR_MAX_NAME + 1, &err), RSRE_ELIMIT);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.col, 1);
    assert_non_null(strstr(err.msg, "longer than 64 bytes"));
    /* With dots, still counted in bytes. */
    memcpy(buf, "x > 1 and ", 10);
    memset(buf + 10, 'q', 70);
    for (int i = 12; i < 80; i += 5) {
        buf[i] = '.';
    }
    assert_int_equal(compile_buf(buf, 10 + RSRE_EXPR_MAX_NAME, &err), 0);
    assert_int_equal(compile_buf(buf, 10 + RSRE_EXPR_MAX_NAME + 1, &err), RSRE_ELIMIT);
    assert_int_equal(err.col, 11);

    /* Source: exactly the limit compiles; one byte more fails, pointing past the limit. */
    memset(buf, ' ', sizeof(buf));
    buf[0] = 'a';
    assert_int_equal(compile_buf(buf, RSRE_EXPR_MAX_SOURCE, &err), 0);
    assert_int_equal(compile_buf(buf, RSRE_EXPR_MAX_SOURCE + 1, &err), RSRE_ELIMIT);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.col, RSRE_EXPR_MAX_SOURCE + 1);
    assert_non_null(strstr(err.msg, "expression too long"));
    buf[100] = '\n';
    assert_int_equal(compile_buf(buf, RSRE_EXPR_MAX_SOURCE + 1, &err), RSRE_ELIMIT);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, RSRE_EXPR_MAX_SOURCE - 100);
}

static int count_calls(void *ctx, const char *name, size_t len) {
    (void)name;
    (void)len;
    int *n = ctx;
    return (*n)++ % 2 == 0 ? 7 : 3;
}

static void test_resolver_contract(void **state) {
    (void)state;
    /* The resolver is called once per reference, and its slots are used as given. */
    int calls = 0;
    struct rsre_expr *e = NULL;
    struct rsre_expr_error err;
    const char *src = "p + q + p";
    assert_int_equal(rsre_expr_compile(src, strlen(src), count_calls, &calls, &e, &err), 0);
    assert_int_equal(calls, 3);
    assert_int_equal(rsre_expr_slot_count(e), 2);
    assert_int_equal(rsre_expr_slot_span(e), 8);
    double sc[8] = {0, 0, 0, 10, 0, 0, 0, 1};
    struct rsre_expr_env env = {.scalars = sc, .nscalars = 8};
    assert_value(src, rsre_expr_eval(e, &env, NULL), 12); /* p=7 q=3 p=7 */
    rsre_expr_destroy(e);
}

/* ---------------------------------------------------------------------------------------- */
/* Randomized differential test                                                              */

enum node_kind { N_NUM, N_VAR, N_BIN, N_NEG, N_NOT, N_FOR, N_AGG };
enum bin_op { B_ADD, B_SUB, B_MUL, B_DIV, B_LT, B_LE, B_GT, B_GE, B_EQ, B_NE, B_AND, B_OR };
enum agg_op { A_COUNT, A_ANY, A_ALL, A_SUM, A_MIN, A_MAX };

struct node {
    int kind;
    int op; /* bin_op, agg_op */
    double num;
    char text[32]; /* N_NUM literal, N_VAR name */
    int slot;
    int64_t dur;
    int64_t since; /* N_FOR reference state */
    struct node *l, *r;
};

#define MAX_NODES 256
struct tree {
    struct node pool[MAX_NODES];
    int used;
};

static uint64_t rng_state;

static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 11) % n);
}

static struct node *new_node(struct tree *t, int kind) {
    assert_true(t->used < MAX_NODES);
    struct node *n = &t->pool[t->used++];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    return n;
}

static const char *const mantissas[] = {"0",   "1",    "2",   "3",      "5", "10",
                                        "0.5", "2.25", "1e2", "1.5e-1", "7", "100"};
static const struct {
    const char *text;
    double factor;
    int divide;
} test_units[] = {
    {"", 1, 0},         {"%", 100, 1},  {"ms", 1000, 1}, {"s", 1, 0},
    {"m", 60, 0},       {"h", 3600, 0}, {"d", 86400, 0}, {"Ki", 1024, 0},
    {"Mi", 1048576, 0}, {"K", 1000, 0}, {"M", 1e6, 0},   {"G", 1e9, 0},
};
static const char *const var_names[] = {"s0", "s1", "s2", "s3", "s4", "s5"};
static const struct {
    const char *text;
    int64_t secs;
} durations[] = {{"0s", 0},  {"1s", 1},   {"5", 5},     {"10s", 10},
                 {"1m", 60}, {"90s", 90}, {"1500ms", 2}};

static int diff_resolve(void *ctx, const char *name, size_t len) {
    (void)ctx;
    if (len == 2 && name[0] == 's' && name[1] >= '0' && name[1] <= '5') {
        return name[1] - '0';
    }
    return -1;
}

static struct node *gen(struct tree *t, int depth, int in_agg) {
    uint32_t pick = depth <= 0 ? rnd(3) : rnd(16);
    struct node *n;
    if (pick == 0) {
        n = new_node(t, N_NUM);
        int u = (int)rnd(sizeof(test_units) / sizeof(test_units[0]));
        if (rnd(3) != 0) {
            u = 0;
        }
        const char *m = mantissas[rnd(sizeof(mantissas) / sizeof(mantissas[0]))];
        snprintf(n->text, sizeof(n->text), "%s%s", m, test_units[u].text);
        double v = strtod(m, NULL);
        n->num = test_units[u].divide ? v / test_units[u].factor : v * test_units[u].factor;
        if (rnd(8) == 0) {
            int b = (int)rnd(2);
            snprintf(n->text, sizeof(n->text), "%s", b ? "true" : "false");
            n->num = b;
        }
        return n;
    }
    if (pick <= 2) {
        n = new_node(t, N_VAR);
        n->slot = (int)rnd(6);
        snprintf(n->text, sizeof(n->text), "%s", var_names[n->slot]);
        return n;
    }
    if (pick <= 9) {
        n = new_node(t, N_BIN);
        n->op = (int)rnd(12);
        n->l = gen(t, depth - 1, in_agg);
        n->r = gen(t, depth - 1, in_agg);
        return n;
    }
    if (pick == 10) {
        n = new_node(t, N_NEG);
        n->l = gen(t, depth - 1, in_agg);
        return n;
    }
    if (pick == 11 || pick == 12) {
        n = new_node(t, N_NOT);
        n->l = gen(t, depth - 1, in_agg);
        return n;
    }
    if ((pick == 13 || pick == 14) && !in_agg) {
        n = new_node(t, N_FOR);
        int d = (int)rnd(sizeof(durations) / sizeof(durations[0]));
        snprintf(n->text, sizeof(n->text), "%s", durations[d].text);
        n->dur = durations[d].secs;
        n->l = gen(t, depth - 1, in_agg);
        return n;
    }
    if (!in_agg) {
        n = new_node(t, N_AGG);
        n->op = (int)rnd(6);
        n->l = gen(t, depth - 1, 1);
        return n;
    }
    return gen(t, 0, in_agg);
}

/* Precedence levels as documented: or 1, and 2, for 3, not 4, comparison 5, + - 6, * / 7,
 * unary minus 8, primary 9. */
static int prec(const struct node *n) {
    switch (n->kind) {
    case N_BIN:
        switch (n->op) {
        case B_OR:
            return 1;
        case B_AND:
            return 2;
        case B_ADD:
        case B_SUB:
            return 6;
        case B_MUL:
        case B_DIV:
            return 7;
        default:
            return 5;
        }
    case N_FOR:
        return 3;
    case N_NOT:
        return 4;
    case N_NEG:
        return 8;
    default:
        return 9;
    }
}

struct out {
    char buf[RSRE_EXPR_MAX_SOURCE];
    size_t len;
};

static void put(struct out *o, const char *s) {
    size_t n = strlen(s);
    assert_true(o->len + n < sizeof(o->buf));
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void space(struct out *o) {
    put(o, rnd(12) == 0 ? "\n" : " ");
}

static void print_node(struct out *o, const struct node *n, int min_prec);

/* Prints n, parenthesised when its precedence is below min_prec (and sometimes anyway). */
static void print_child(struct out *o, const struct node *n, int min_prec) {
    if (prec(n) < min_prec || rnd(10) == 0) {
        put(o, "(");
        print_node(o, n, 0);
        put(o, ")");
    } else {
        print_node(o, n, min_prec);
    }
}

static void print_node(struct out *o, const struct node *n, int min_prec) {
    static const char *const bin_text[][2] = {
        [B_ADD] = {"+", "+"},  [B_SUB] = {"-", "-"},    [B_MUL] = {"*", "*"},
        [B_DIV] = {"/", "/"},  [B_LT] = {"<", "<"},     [B_LE] = {"<=", "<="},
        [B_GT] = {">", ">"},   [B_GE] = {">=", ">="},   [B_EQ] = {"==", "=="},
        [B_NE] = {"!=", "!="}, [B_AND] = {"and", "&&"}, [B_OR] = {"or", "||"},
    };
    static const char *const agg_text[] = {"count", "any", "all", "sum", "min", "max"};
    (void)min_prec;
    switch (n->kind) {
    case N_NUM:
    case N_VAR:
        put(o, n->text);
        break;
    case N_BIN: {
        int p = prec(n);
        if (p == 5) { /* comparisons don't chain: both sides above */
            print_child(o, n->l, 6);
        } else {
            print_child(o, n->l, p);
        }
        space(o);
        put(o, bin_text[n->op][rnd(2)]);
        space(o);
        print_child(o, n->r, p + 1);
        break;
    }
    case N_NEG:
        put(o, "-");
        print_child(o, n->l, 8);
        break;
    case N_NOT:
        put(o, rnd(2) ? "not " : "!");
        print_child(o, n->l, 4);
        break;
    case N_FOR:
        print_child(o, n->l, 4);
        put(o, " for ");
        put(o, n->text);
        break;
    case N_AGG:
        put(o, agg_text[n->op]);
        put(o, "(");
        print_node(o, n->l, 0);
        put(o, ")");
        break;
    }
}

/* The reference semantics, written independently of the compiler: plain recursion, every
 * operand evaluated, NaN as unknown. */
static int ref_truthy(double v) {
    return !isnan(v) && v != 0;
}

struct ref_env {
    const double *scalars;
    size_t nscalars;
    const double *const *rows;
    size_t nrows;
    int64_t now;
};

static double ref_eval(struct node *n, const struct ref_env *env, const double *src, size_t nsrc) {
    switch (n->kind) {
    case N_NUM:
        return n->num;
    case N_VAR:
        return (size_t)n->slot < nsrc && src != NULL ? src[n->slot] : NAN;
    case N_NEG:
        return -ref_eval(n->l, env, src, nsrc);
    case N_NOT: {
        double v = ref_eval(n->l, env, src, nsrc);
        return isnan(v) ? NAN : (v == 0 ? 1 : 0);
    }
    case N_FOR: {
        int c = ref_truthy(ref_eval(n->l, env, src, nsrc));
        if (!c) {
            n->since = -1;
            return 0;
        }
        if (n->since < 0) {
            n->since = env->now;
        }
        return env->now - n->since >= n->dur ? 1 : 0;
    }
    case N_AGG: {
        size_t cnt = 0, def = 0;
        int any_true = 0, any_false = 0, any_nan = 0;
        double acc = 0;
        for (size_t r = 0; r < env->nrows; r++) {
            const double *row = env->rows[r];
            double v = ref_eval(n->l, env, row, row ? env->nscalars : 0);
            if (ref_truthy(v)) {
                cnt++;
                any_true = 1;
            } else if (isnan(v)) {
                any_nan = 1;
            } else {
                any_false = 1;
            }
            if (!isnan(v)) {
                if (n->op == A_SUM) {
                    acc += v;
                } else if (n->op == A_MIN) {
                    acc = def == 0 ? v : fmin(acc, v);
                } else if (n->op == A_MAX) {
                    acc = def == 0 ? v : fmax(acc, v);
                }
                def++;
            }
        }
        switch (n->op) {
        case A_COUNT:
            return (double)cnt;
        case A_ANY:
            return any_true ? 1 : any_nan ? NAN : 0;
        case A_ALL:
            if (env->nrows == 0) {
                return NAN;
            }
            return any_false ? 0 : any_nan ? NAN : 1;
        default:
            return def ? acc : NAN;
        }
    }
    default:
        break;
    }
    double a = ref_eval(n->l, env, src, nsrc);
    double b = ref_eval(n->r, env, src, nsrc);
    int an = isnan(a), bn = isnan(b);
    switch (n->op) {
    case B_ADD:
        return a + b;
    case B_SUB:
        return a - b;
    case B_MUL:
        return a * b;
    case B_DIV:
        return b == 0 ? NAN : a / b;
    case B_LT:
        return !an && !bn && a < b;
    case B_LE:
        return !an && !bn && a <= b;
    case B_GT:
        return !an && !bn && a > b;
    case B_GE:
        return !an && !bn && a >= b;
    case B_EQ:
        return !an && !bn && a == b;
    case B_NE:
        return !an && !bn && a != b;
    case B_AND:
        if ((!an && a == 0) || (!bn && b == 0)) {
            return 0;
        }
        return an || bn ? NAN : 1;
    default: /* B_OR */
        if (ref_truthy(a) || ref_truthy(b)) {
            return 1;
        }
        return an || bn ? NAN : 0;
    }
}

static void reset_for_state(struct tree *t) {
    for (int i = 0; i < t->used; i++) {
        t->pool[i].since = -1;
    }
}

static double random_value(void) {
    static const double pool[] = {0, 1, 2, 3, -1, 0.5, 100, 60, 1024, NAN, NAN, -0.0};
    return pool[rnd(sizeof(pool) / sizeof(pool[0]))];
}

static void test_differential(void **state) {
    (void)state;
    const char *env_seed = getenv("RSRE_EXPR_SEED");
    uint64_t seed = env_seed ? strtoull(env_seed, NULL, 0) : 0x5eed1234abcdULL;
    rng_state = seed;
    int compiled = 0, with_for = 0, with_agg = 0;
    for (int iter = 0; iter < 5000; iter++) {
        struct tree *t = malloc(sizeof(*t));
        assert_non_null(t);
        t->used = 0;
        struct node *root = gen(t, 1 + (int)rnd(5), 0);
        struct out *o = malloc(sizeof(*o));
        assert_non_null(o);
        o->len = 0;
        o->buf[0] = '\0';
        print_node(o, root, 0);

        struct rsre_expr *e = NULL;
        struct rsre_expr_error err;
        int rc = rsre_expr_compile(o->buf, o->len, diff_resolve, NULL, &e, &err);
        if (rc != 0) {
            print_error("iter %d seed %#llx: \"%s\" failed: line %d, col %d: %s\n", iter,
                        (unsigned long long)seed, o->buf, err.line, err.col, err.msg);
        }
        assert_int_equal(rc, 0);
        compiled++;
        int nfor = 0, nagg = 0;
        for (int i = 0; i < t->used; i++) {
            nfor += t->pool[i].kind == N_FOR;
            nagg += t->pool[i].kind == N_AGG;
        }
        with_for += nfor > 0;
        with_agg += nagg > 0;
        assert_int_equal(rsre_expr_state_size(e), (size_t)nfor);
        assert_true(rsre_expr_op_count(e) <= RSRE_EXPR_MAX_OPS);

        int64_t *cells = calloc((size_t)nfor + 1, sizeof(int64_t));
        assert_non_null(cells);
        reset_for_state(t);
        int64_t now = 1000;
        size_t nsteps = nfor > 0 ? 12 : 3;
        for (size_t step = 0; step < nsteps; step++) {
            double sc[6], rowdata[5][6];
            const double *rows[5];
            for (int i = 0; i < 6; i++) {
                sc[i] = random_value();
            }
            size_t nrows = rnd(6);
            for (size_t r = 0; r < nrows; r++) {
                for (int i = 0; i < 6; i++) {
                    rowdata[r][i] = random_value();
                }
                rows[r] = rnd(10) == 0 ? NULL : rowdata[r];
            }
            size_t nsc = 3 + rnd(4); /* some slots fall off the end: NaN */
            struct rsre_expr_env env = {
                .scalars = sc, .nscalars = nsc, .rows = rows, .nrows = nrows, .now_s = now};
            struct ref_env renv = {sc, nsc, rows, nrows, now};
            double got = rsre_expr_eval(e, &env, cells);
            double want = ref_eval(root, &renv, sc, nsc);
            int same = (isnan(got) && isnan(want)) || got == want;
            if (!same) {
                print_error("iter %d step %zu seed %#llx: \"%s\": got %.17g want %.17g\n", iter,
                            step, (unsigned long long)seed, o->buf, got, want);
            }
            assert_true(same);
            assert_int_equal(rsre_expr_true(e, &env, cells) != 0, ref_truthy(want));
            /* (rsre_expr_true evaluated again at the same now_s: `for` state is idempotent) */
            now += 1 + (int64_t)rnd(45);
        }
        free(cells);
        rsre_expr_destroy(e);
        free(o);
        free(t);
    }
    assert_int_equal(compiled, 5000);
    assert_true(with_for > 200);
    assert_true(with_agg > 200);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_and_units),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_nan_semantics),
        cmocka_unit_test(test_division_by_zero),
        cmocka_unit_test(test_for_sequence),
        cmocka_unit_test(test_for_binding_and_state),
        cmocka_unit_test(test_aggregates),
        cmocka_unit_test(test_aggregate_many_rows),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_folding_and_fusion),
        cmocka_unit_test(test_multiline_and_comments),
        cmocka_unit_test(test_api_misuse),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limit_ops),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_name_and_source),
        cmocka_unit_test(test_resolver_contract),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
