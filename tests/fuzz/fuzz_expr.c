/*
 * libFuzzer target for the expression compiler and machine (aggregator/engine/expr.h).
 *
 * Compiles arbitrary bytes with resolve=NULL. A failure must be RSRE_EPARSE or RSRE_ELIMIT
 * with a 1-based position inside the input and a non-empty, NUL-terminated message. A success
 * must respect the compile-time bounds, and is then evaluated against a small environment
 * (a few scalars, fewer than the slots it may reference, a few rows including a NULL one) and
 * a state block over a short sequence of times. ASan/UBSan catch the rest.
 */
#include "common/error.h"
#include "engine/expr.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok) {
        abort();
    }
}

/* Counts lines in data[0..size) (1 + newlines): an error's line can't exceed it. */
static int line_count(const uint8_t *data, size_t size) {
    int n = 1;
    for (size_t i = 0; i < size; i++) {
        n += data[i] == '\n';
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct rsre_expr *e = NULL;
    struct rsre_expr_error err;
    memset(&err, 0x7f, sizeof(err));
    int rc = rsre_expr_compile((const char *)data, size, NULL, NULL, &e, &err);
    if (rc != 0) {
        check(rc == RSRE_EPARSE || rc == RSRE_ELIMIT);
        check(e == NULL);
        check(err.line >= 1 && err.col >= 1);
        check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL && err.msg[0] != '\0');
        if (size <= RSRE_EXPR_MAX_SOURCE) {
            check(err.line <= line_count(data, size));
            check((size_t)err.col <= size + 1);
        }
        return 0;
    }
    check(e != NULL);
    check(size <= RSRE_EXPR_MAX_SOURCE);
    check(rsre_expr_op_count(e) >= 1 && rsre_expr_op_count(e) <= RSRE_EXPR_MAX_OPS);
    check(rsre_expr_stack_depth(e) >= 1 && rsre_expr_stack_depth(e) <= RSRE_EXPR_MAX_OPS);
    check(rsre_expr_slot_count(e) == rsre_expr_slot_span(e)); /* resolve == NULL */
    for (size_t i = 0; i < rsre_expr_slot_count(e); i++) {
        const char *name = NULL;
        check(rsre_expr_slot(e, i, &name) == (int)i);
        check(name != NULL && strlen(name) >= 1 && strlen(name) <= RSRE_EXPR_MAX_NAME);
    }

    double scalars[4] = {0.9, 0.0, NAN, 3.0};
    double r0[4] = {1, 0.5, 2, NAN};
    double r1[4] = {0, -1, 1e300, 7};
    double r2[4] = {NAN, 100, 0, -0.0};
    const double *rows[] = {r0, NULL, r1, r2};
    size_t nstate = rsre_expr_state_size(e);
    int64_t *state = calloc(nstate + 1, sizeof(int64_t));
    check(state != NULL);
    static const int64_t times[] = {1000, 1001, 1060, 1600, 2000, 1500, 90000};
    for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
        struct rsre_expr_env env = {
            .scalars = scalars, .nscalars = 4, .rows = rows, .nrows = 4, .now_s = times[t]};
        scalars[1] = (double)(t & 1); /* let `for` conditions flip */
        double v = rsre_expr_eval(e, &env, state);
        int truth = rsre_expr_true(e, &env, state);
        check(truth == (!isnan(v) && v != 0));
        for (size_t i = 0; i < nstate; i++) {
            check(state[i] >= 0 && state[i] <= times[t]);
        }
    }
    /* Degenerate environments must not crash either. */
    (void)rsre_expr_eval(e, NULL, NULL);
    struct rsre_expr_env empty = {0};
    (void)rsre_expr_eval(e, &empty, state);
    free(state);
    rsre_expr_destroy(e);
    return 0;
}
