#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "robotctl.h"

struct rctl_table {
    int ncols;
    size_t nrows;
    char **cells; /* nrows * ncols, row 0 = headers */
};

struct rctl_table *rctl_table_new(int ncols, const char *const *headers) {
    struct rctl_table *t = calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t->ncols = ncols;
    rctl_table_row(t, headers);
    return t;
}

void rctl_table_row(struct rctl_table *t, const char *const *cells) {
    if (!t) {
        return;
    }
    char **c = realloc(t->cells, (t->nrows + 1) * (size_t)t->ncols * sizeof(char *));
    if (!c) {
        return;
    }
    t->cells = c;
    for (int i = 0; i < t->ncols; i++) {
        c[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(cells[i] ? cells[i] : "");
    }
    t->nrows++;
}

void rctl_table_print(struct rctl_table *t, FILE *f) {
    if (!t) {
        return;
    }
    size_t w[32] = {0};
    for (size_t r = 0; r < t->nrows; r++) {
        for (int i = 0; i < t->ncols && i < 32; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            size_t l = s ? strlen(s) : 0;
            w[i] = l > w[i] ? l : w[i];
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            if (i == t->ncols - 1) {
                fprintf(f, "%s\n", s ? s : "");
            } else {
                fprintf(f, "%-*s  ", (int)w[i], s ? s : "");
            }
        }
    }
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    free(t);
}

int rctl_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("robotctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return RCTL_USAGE;
}
