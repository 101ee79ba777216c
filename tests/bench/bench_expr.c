/*
 * Benchmark for the expression machine (aggregator/engine/expr.h). Measures evaluations per
 * second on one core for a simple threshold, a medium expression and a count() over 100 rows,
 * plus compilations per second. Usage: bench_expr [seconds-per-case, default 1].
 *
 * Output, one line per case:
 *   expr_eval simple: N evals/s
 *   expr_eval medium: N evals/s
 *   expr_eval count100: N evals/s
 *   expr_compile medium: N compiles/s
 * The target is >= 10 million simple evaluations per second (build with
 * -DCMAKE_BUILD_TYPE=Release).
 */
#include "engine/expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const slot_names[] = {
    "nodefs.used_ratio", "imagefs.used_ratio", "node.condition.disk_pressure",
    "pods.failed",       "pods.succeeded",     "node.ready",
};
#define NSLOTS (sizeof(slot_names) / sizeof(slot_names[0]))
#define NROWS 100

static int resolve(void *ctx, const char *name, size_t len) {
    (void)ctx;
    for (size_t i = 0; i < NSLOTS; i++) {
        if (strlen(slot_names[i]) == len && memcmp(slot_names[i], name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct rsre_expr *compile_or_die(const char *src) {
    struct rsre_expr *e = NULL;
    struct rsre_expr_error err;
    if (rsre_expr_compile(src, strlen(src), resolve, NULL, &e, &err) != 0) {
        fprintf(stderr, "bench_expr: line %d, col %d: %s\n", err.line, err.col, err.msg);
        exit(1);
    }
    return e;
}

static volatile double sink;

/* Evaluates `src` repeatedly for about `secs` seconds; returns evaluations per second. The
 * first scalar alternates so the result isn't constant. */
static double bench_eval(const char *src, double *scalars, const double *const *rows, size_t nrows,
                         double secs) {
    struct rsre_expr *e = compile_or_die(src);
    int64_t state[16] = {0};
    if (rsre_expr_state_size(e) > 16) {
        fprintf(stderr, "bench_expr: too many `for` clauses\n");
        exit(1);
    }
    struct rsre_expr_env env = {
        .scalars = scalars, .nscalars = NSLOTS, .rows = rows, .nrows = nrows, .now_s = 1000};
    size_t batch = nrows > 0 ? 10000 : 1000000;
    size_t total = 0;
    double acc = 0;
    double t0 = now_s(), t1;
    do {
        for (size_t i = 0; i < batch; i++) {
            scalars[0] = (i & 1) ? 0.9 : 0.8;
            acc += rsre_expr_eval(e, &env, state);
        }
        total += batch;
        env.now_s++;
        t1 = now_s();
    } while (t1 - t0 < secs);
    sink = acc;
    rsre_expr_destroy(e);
    return (double)total / (t1 - t0);
}

static double bench_compile(const char *src, double secs) {
    size_t total = 0;
    double t0 = now_s(), t1;
    do {
        for (int i = 0; i < 1000; i++) {
            struct rsre_expr *e = compile_or_die(src);
            sink = (double)rsre_expr_op_count(e);
            rsre_expr_destroy(e);
        }
        total += 1000;
        t1 = now_s();
    } while (t1 - t0 < secs);
    return (double)total / (t1 - t0);
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0) {
        secs = 1.0;
    }
    static const char simple[] = "nodefs.used_ratio > 85%";
    static const char medium[] =
        "(nodefs.used_ratio > 85% and imagefs.used_ratio > 80%)\n"
        "  or (pods.failed + pods.succeeded) / 2 > 200 and not node.ready\n"
        "  or node.condition.disk_pressure == 1 for 10m";
    static const char count100[] = "count(node.condition.disk_pressure == 1) >= 2";

    double scalars[NSLOTS] = {0.9, 0.7, 1, 150, 60, 1};
    static double rowdata[NROWS][NSLOTS];
    const double *rows[NROWS];
    for (size_t r = 0; r < NROWS; r++) {
        for (size_t s = 0; s < NSLOTS; s++) {
            rowdata[r][s] = (double)((r * 7 + s * 3) % 10) / 10.0;
        }
        rowdata[r][2] = (r % 17 == 0) ? 1 : 0;
        rows[r] = rowdata[r];
    }

    printf("expr_eval simple: %.0f evals/s\n", bench_eval(simple, scalars, NULL, 0, secs));
    printf("expr_eval medium: %.0f evals/s\n", bench_eval(medium, scalars, NULL, 0, secs));
    printf("expr_eval count100: %.0f evals/s\n", bench_eval(count100, scalars, rows, NROWS, secs));
    printf("expr_compile medium: %.0f compiles/s\n", bench_compile(medium, secs));
    return 0;
}
