#ifndef RSRE_EXPR_H
#define RSRE_EXPR_H

/*
 * The threshold / severity expression language (grammar in docs/expressions.md).
 *
 * Side-effect free and bounded: a compiled expression holds at most RSRE_EXPR_MAX_OPS
 * instructions and nests at most RSRE_EXPR_MAX_DEPTH levels; evaluating it reads only the
 * environment handed in and the caller-owned state block, and costs
 * O(ops * (1 + rows)) with rows <= RSRE_EXPR_MAX_ROWS.
 *
 *   nodefs.used_ratio > 85% and imagefs.used_ratio > 80%
 *   node.condition.disk_pressure == 1 for 10m
 *   count(node.condition.disk_pressure == 1) >= 2
 *   (pods.failed + pods.succeeded) > 200 or not node.ready
 *
 * Values are doubles. Units scale literals: `%` divides by 100 (ratios are 0..1), `ms`/`s`/
 * `m`/`h`/`d` give seconds, `Ki`/`Mi`/`Gi`/`Ti` give bytes (powers of 1024), `K`/`M`/`G`/`T`
 * powers of 1000. Booleans are 1 and 0. A signal with no value is NaN; every comparison with
 * NaN is false (`!=` included), so a missing signal never fires a threshold. `and`/`or`/`not`
 * treat NaN as "unknown" (three-valued logic: `false and NaN` is false, `true or NaN` is true,
 * `not NaN` is NaN) and a NaN result is not true. Division by zero gives NaN.
 */

#include <stddef.h>
#include <stdint.h>

#define RSRE_EXPR_MAX_SOURCE 4096 /* bytes of source text */
#define RSRE_EXPR_MAX_OPS 256     /* compiled instructions */
#define RSRE_EXPR_MAX_DEPTH 32    /* parser nesting */
#define RSRE_EXPR_MAX_ROWS 100000 /* rows (nodes) an aggregate may visit */
#define RSRE_EXPR_MAX_NAME 64     /* bytes in one signal reference */

struct rsre_expr; /* compiled expression, immutable, safe to share between evaluations */

/* Parse/compile error: 1-based line and column of the offending token and a message. */
struct rsre_expr_error {
    int line;
    int col;
    char msg[160];
};

/*
 * Resolves a signal reference (e.g. "nodefs.used_ratio") to a slot index >= 0, or returns -1
 * when the name is unknown (which makes compilation fail with "unknown signal" at its
 * position). `name` is not NUL-terminated; `len` bytes are valid for the duration of the call.
 */
typedef int (*rsre_expr_resolve_cb)(void *ctx, const char *name, size_t len);

/*
 * Compiles `src` (`len` bytes, need not be NUL-terminated). On success stores a new expression
 * in *out (free with rsre_expr_destroy) and returns 0. On failure returns RSRE_EPARSE (syntax,
 * unknown signal, misuse such as `for` inside an aggregate) or RSRE_ELIMIT (too long, too many
 * instructions, too deep) and fills *err; *out is left NULL. `resolve` may be NULL, in which
 * case every name is accepted and numbered in order of first appearance (slot 0, 1, ...).
 */
int rsre_expr_compile(const char *src, size_t len, rsre_expr_resolve_cb resolve, void *ctx,
                      struct rsre_expr **out, struct rsre_expr_error *err);

void rsre_expr_destroy(struct rsre_expr *e); /* NULL is a no-op */

/* Number of int64 state cells the expression needs (one per `for` clause); may be 0. */
size_t rsre_expr_state_size(const struct rsre_expr *e);
/*
 * Number of distinct slots referenced (entries reachable through rsre_expr_slot). When the
 * resolver maps two names to one slot, the slot counts once, under the first name seen.
 */
size_t rsre_expr_slot_count(const struct rsre_expr *e);
/* The highest slot index referenced plus one (0 when none): how long `scalars` and each row
 * must be for no reference to read NaN by falling off the end. */
size_t rsre_expr_slot_span(const struct rsre_expr *e);
/*
 * Returns the slot index of the i-th distinct referenced slot (in order of first appearance,
 * i < rsre_expr_slot_count) and stores its name, NUL-terminated and owned by `e`, in *name
 * (valid until rsre_expr_destroy; `name` may be NULL). Returns -EINVAL when i is out of range.
 */
int rsre_expr_slot(const struct rsre_expr *e, size_t i, const char **name);
/* Compiled size in instructions (<= RSRE_EXPR_MAX_OPS, after constant folding), and the value
 * stack depth the evaluation needs; both fixed at compile time. For tests and diagnostics. */
size_t rsre_expr_op_count(const struct rsre_expr *e);
size_t rsre_expr_stack_depth(const struct rsre_expr *e);

/*
 * Evaluation environment. `scalars[slot]` is the value of each signal for the scope being
 * evaluated (nscalars entries; a slot >= nscalars reads NaN). Aggregates (count/any/all/sum/
 * min/max) evaluate their argument once per row: `rows[r][slot]` (each row `nscalars` long).
 * `now_s` is the evaluation time in seconds (monotonic or wall, but consistent per state).
 */
struct rsre_expr_env {
    const double *scalars;
    size_t nscalars;
    const double *const *rows;
    size_t nrows;
    int64_t now_s;
};

/*
 * Evaluates `e`. `state` points to rsre_expr_state_size(e) cells owned by the caller, zeroed
 * before the first evaluation of a given (expression, scope); a `for D` clause is true when its
 * condition has been true at every evaluation since a time at least D seconds before now_s.
 * Each cell holds the now_s at which its condition became continuously true, 0 while it is
 * not. now_s must be positive (a `for` clause never holds at now_s <= 0), and a now_s earlier
 * than the recorded start restarts the hold. Every operand is evaluated (no short-circuit), so
 * every `for` clause sees its condition at every evaluation. `state` may be NULL only when the
 * state size is 0 (otherwise every `for` clause is false). `env` NULL reads as all-NaN with no
 * rows; a NULL row reads as all-NaN; rows beyond RSRE_EXPR_MAX_ROWS are ignored.
 * Returns the value (booleans as 1.0/0.0; NaN when undefined). Never fails, never allocates.
 */
double rsre_expr_eval(const struct rsre_expr *e, const struct rsre_expr_env *env, int64_t *state);

/* Convenience: rsre_expr_eval(...) is a number other than 0 and not NaN. */
int rsre_expr_true(const struct rsre_expr *e, const struct rsre_expr_env *env, int64_t *state);

#endif
