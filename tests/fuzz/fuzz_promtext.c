/*
 * libFuzzer target for the Prometheus text parser and the error-ratio window
 * (aggregator/probes/promtext.h).
 *
 * Parses arbitrary bytes with small limits. A failure must be RSRE_EPARSE or RSRE_ELIMIT with
 * a line inside the input and a message; every sample delivered must respect the limits and
 * carry NUL-terminated names. The finite, non-negative samples then go through the ratio
 * window twice (the second scrape halved, a counter reset for every series) and the ratio
 * must stay within [0, 1]. ASan/UBSan catch the rest.
 */
#include "common/error.h"
#include "probes/promtext.h"

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

struct acc {
    struct rsre_err_series s[64];
    size_t n;
    size_t samples;
};

static int on_sample(void *arg, const struct rsre_prom_sample *s) {
    struct acc *a = arg;
    check(s->name && s->name[0] && s->nlabels <= 8 && s->type);
    for (size_t i = 0; i < s->nlabels; i++) {
        check(s->labels[i].name && s->labels[i].name[0] && s->labels[i].value);
        (void)strlen(s->labels[i].value);
    }
    a->samples++;
    if (a->n < 64 && isfinite(s->value) && s->value >= 0) {
        a->s[a->n++] = (struct rsre_err_series){rsre_prom_series_key(s), s->value,
                                                (s->nlabels > 0 && s->labels[0].value[0] == '5')};
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct rsre_promtext_limits lim = {.max_line = 512, .max_series = 1000, .max_labels = 8};
    struct rsre_promtext_error e;
    struct acc a = {0};
    int rc = rsre_promtext_parse((const char *)data, size, &lim, on_sample, &a, &e);
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) {
        lines += data[i] == '\n';
    }
    if (rc != 0) {
        check(rc == RSRE_EPARSE || rc == RSRE_ELIMIT);
        check(e.line >= 1 && e.line <= lines && e.msg[0] && strlen(e.msg) < sizeof e.msg);
    }
    check(a.samples <= lim.max_series);
    struct rsre_err_ratio *r;
    check(rsre_err_ratio_create(60000, 64, &r) == 0);
    struct rsre_err_ratio_result o;
    check(rsre_err_ratio_add(r, 1000, a.s, a.n, &o) == 0);
    for (size_t i = 0; i < a.n; i++) {
        a.s[i].value /= 2;
    }
    check(rsre_err_ratio_add(r, 2000, a.s, a.n, &o) == 0);
    check(o.ratio >= 0 && o.ratio <= 1 && isfinite(o.slope_per_min));
    rsre_err_ratio_destroy(r);
    return 0;
}
