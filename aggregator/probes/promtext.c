/* Prometheus text exposition parser and error-ratio window (promtext.h). */
#include "probes/promtext.h"

#include "common/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEF_MAX_LINE 16384
#define DEF_MAX_SERIES 200000
#define DEF_MAX_LABELS 64
#define MAX_TYPE_NAME 256

struct parser {
    const char *p, *end; /* current line */
    char *scratch;       /* unescaped strings of the line */
    size_t used, cap;
    struct rsre_prom_label *labels;
    size_t max_labels;
    struct rsre_promtext_error *err;
    size_t line;
    char type_name[MAX_TYPE_NAME];
    char type[16];
};

static int fail(struct parser *ps, int code, const char *fmt, const char *what) {
    if (ps->err) {
        ps->err->line = ps->line;
        snprintf(ps->err->msg, sizeof ps->err->msg, fmt, what);
    }
    return code;
}

static int is_name_start(int c, int colon) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static int is_name_char(int c, int colon) {
    return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

static void skip_ws(struct parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t')) {
        ps->p++;
    }
}

/* Copies a name into scratch; returns it or NULL when no name starts here. */
static const char *take_name(struct parser *ps, int colon) {
    const char *s = ps->p;
    if (ps->p >= ps->end || !is_name_start((unsigned char)*ps->p, colon)) {
        return NULL;
    }
    while (ps->p < ps->end && is_name_char((unsigned char)*ps->p, colon)) {
        ps->p++;
    }
    size_t n = (size_t)(ps->p - s);
    if (ps->used + n + 1 > ps->cap) {
        return NULL; /* cannot happen: scratch is as long as the line */
    }
    char *d = ps->scratch + ps->used;
    memcpy(d, s, n);
    d[n] = '\0';
    ps->used += n + 1;
    return d;
}

/* Reads a quoted label value at p (after the opening quote was checked). */
static int take_quoted(struct parser *ps, const char **out) {
    char *d = ps->scratch + ps->used;
    char *start = d;
    ps->p++; /* opening quote */
    for (;;) {
        if (ps->p >= ps->end) {
            return fail(ps, RSRE_EPARSE, "%s", "unterminated label value");
        }
        char c = *ps->p++;
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            if (ps->p >= ps->end) {
                return fail(ps, RSRE_EPARSE, "%s", "unterminated escape in label value");
            }
            char e = *ps->p++;
            if (e == 'n') {
                c = '\n';
            } else if (e == '\\' || e == '"') {
                c = e;
            } else {
                return fail(ps, RSRE_EPARSE, "%s", "invalid escape in label value");
            }
        }
        *d++ = c;
    }
    *d++ = '\0';
    ps->used += (size_t)(d - start);
    *out = start;
    return 0;
}

/* Parses a float token: decimal, or NaN/Inf with an optional sign. */
static int parse_float(const char *s, size_t n, double *out) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) {
        return -1;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    const char *t = tmp;
    int neg = 0;
    if (*t == '+' || *t == '-') {
        neg = *t == '-';
        t++;
    }
    if (strcasecmp(t, "nan") == 0) {
        *out = NAN;
        return 0;
    }
    if (strcasecmp(t, "inf") == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    for (const char *q = t; *q; q++) {
        if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' ||
              *q == '-')) {
            return -1;
        }
    }
    char *endp;
    errno = 0;
    double v = strtod(tmp, &endp);
    if (*endp != '\0' || endp == tmp || (errno == ERANGE && isinf(v))) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_i64(const char *s, size_t n, int64_t *out) {
    char tmp[32];
    if (n == 0 || n >= sizeof tmp) {
        return -1;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!((tmp[i] >= '0' && tmp[i] <= '9') || (i == 0 && tmp[i] == '-'))) {
            return -1;
        }
    }
    char *endp;
    errno = 0;
    long long v = strtoll(tmp, &endp, 10);
    if (*endp != '\0' || errno == ERANGE) {
        return -1;
    }
    *out = v;
    return 0;
}

static const char *token_end(struct parser *ps) {
    const char *q = ps->p;
    while (q < ps->end && *q != ' ' && *q != '\t') {
        q++;
    }
    return q;
}

static const char *const TYPES[] = {"counter", "gauge", "histogram", "summary", "untyped"};

static int comment_line(struct parser *ps) {
    ps->p++; /* '#' */
    skip_ws(ps);
    const char *kw = ps->p;
    const char *ke = token_end(ps);
    int help = (size_t)(ke - kw) == 4 && memcmp(kw, "HELP", 4) == 0;
    int type = (size_t)(ke - kw) == 4 && memcmp(kw, "TYPE", 4) == 0;
    if (!help && !type) {
        return 0; /* plain comment */
    }
    ps->p = ke;
    skip_ws(ps);
    const char *name = take_name(ps, 1);
    if (!name) {
        return fail(ps, RSRE_EPARSE, "%s without a metric name", help ? "HELP" : "TYPE");
    }
    if (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t') {
        return fail(ps, RSRE_EPARSE, "%s", "invalid metric name in comment");
    }
    if (help) {
        return 0; /* docstring: any text */
    }
    skip_ws(ps);
    const char *t = ps->p;
    const char *te = token_end(ps);
    ps->p = te;
    skip_ws(ps);
    if (ps->p != ps->end) {
        return fail(ps, RSRE_EPARSE, "%s", "trailing text after TYPE");
    }
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        if (strlen(TYPES[i]) == (size_t)(te - t) && memcmp(TYPES[i], t, (size_t)(te - t)) == 0) {
            if (strlen(name) >= sizeof ps->type_name) {
                return fail(ps, RSRE_ELIMIT, "%s", "TYPE metric name too long");
            }
            strcpy(ps->type_name, name);
            strcpy(ps->type, TYPES[i]);
            return 0;
        }
    }
    return fail(ps, RSRE_EPARSE, "%s", "unknown metric type in TYPE");
}

static int sample_line(struct parser *ps, rsre_promtext_cb cb, void *arg) {
    struct rsre_prom_sample s = {0};
    s.name = take_name(ps, 1);
    if (!s.name) {
        return fail(ps, RSRE_EPARSE, "%s", "expected a metric name");
    }
    size_t nl = 0;
    if (ps->p < ps->end && *ps->p == '{') {
        ps->p++;
        for (;;) {
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                break;
            }
            const char *ln = take_name(ps, 0);
            if (!ln) {
                return fail(ps, RSRE_EPARSE, "%s", "expected a label name or '}'");
            }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '=') {
                return fail(ps, RSRE_EPARSE, "%s", "expected '=' after a label name");
            }
            ps->p++;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') {
                return fail(ps, RSRE_EPARSE, "%s", "expected a quoted label value");
            }
            const char *lv;
            int rc = take_quoted(ps, &lv);
            if (rc) {
                return rc;
            }
            for (size_t i = 0; i < nl; i++) {
                if (strcmp(ps->labels[i].name, ln) == 0) {
                    return fail(ps, RSRE_EPARSE, "duplicate label %s", ln);
                }
            }
            if (nl == ps->max_labels) {
                return fail(ps, RSRE_ELIMIT, "%s", "too many labels");
            }
            ps->labels[nl].name = ln;
            ps->labels[nl].value = lv;
            nl++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                break;
            }
            return fail(ps, RSRE_EPARSE, "%s", "expected ',' or '}' in the label set");
        }
    }
    if (ps->p >= ps->end || (*ps->p != ' ' && *ps->p != '\t')) {
        return fail(ps, RSRE_EPARSE, "%s", "expected whitespace before the value");
    }
    skip_ws(ps);
    const char *v = ps->p;
    const char *ve = token_end(ps);
    if (parse_float(v, (size_t)(ve - v), &s.value) != 0) {
        return fail(ps, RSRE_EPARSE, "%s", "invalid sample value");
    }
    ps->p = ve;
    skip_ws(ps);
    if (ps->p < ps->end) {
        const char *t = ps->p;
        const char *te = token_end(ps);
        if (parse_i64(t, (size_t)(te - t), &s.timestamp_ms) != 0) {
            return fail(ps, RSRE_EPARSE, "%s", "invalid timestamp");
        }
        s.has_timestamp = 1;
        ps->p = te;
        skip_ws(ps);
        if (ps->p != ps->end) {
            return fail(ps, RSRE_EPARSE, "%s", "trailing text after the timestamp");
        }
    }
    s.labels = ps->labels;
    s.nlabels = nl;
    s.type = "untyped";
    size_t tl = strlen(ps->type_name);
    if (tl && strncmp(s.name, ps->type_name, tl) == 0) {
        s.type = ps->type;
    }
    return cb(arg, &s);
}

int rsre_promtext_parse(const char *buf, size_t len, const struct rsre_promtext_limits *lim,
                        rsre_promtext_cb cb, void *arg, struct rsre_promtext_error *err) {
    if ((!buf && len) || !cb) {
        return -EINVAL;
    }
    size_t max_line = lim && lim->max_line ? lim->max_line : DEF_MAX_LINE;
    size_t max_series = lim && lim->max_series ? lim->max_series : DEF_MAX_SERIES;
    size_t max_labels = lim && lim->max_labels ? lim->max_labels : DEF_MAX_LABELS;
    if (max_labels > 4096 || max_line > (64u << 20)) {
        return -EINVAL;
    }
    if (err) {
        err->line = 0;
        err->msg[0] = '\0';
    }
    struct parser ps = {.err = err, .max_labels = max_labels, .cap = max_line + 1};
    ps.scratch = malloc(ps.cap);
    ps.labels = malloc(max_labels * sizeof *ps.labels);
    int rc = 0;
    if (!ps.scratch || !ps.labels) {
        rc = -ENOMEM;
        goto out;
    }
    size_t nseries = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nlp = memchr(p, '\n', (size_t)(end - p));
        const char *le = nlp ? nlp : end;
        ps.line++;
        if (le > p && le[-1] == '\r') {
            le--;
        }
        if ((size_t)(le - p) > max_line) {
            rc = fail(&ps, RSRE_ELIMIT, "%s", "line too long");
            goto out;
        }
        if (memchr(p, '\0', (size_t)(le - p))) {
            rc = fail(&ps, RSRE_EPARSE, "%s", "NUL byte in line");
            goto out;
        }
        ps.p = p;
        ps.end = le;
        ps.used = 0;
        skip_ws(&ps);
        if (ps.p < ps.end) {
            if (*ps.p == '#') {
                rc = comment_line(&ps);
            } else {
                if (++nseries > max_series) {
                    rc = fail(&ps, RSRE_ELIMIT, "%s", "too many samples");
                    goto out;
                }
                rc = sample_line(&ps, cb, arg);
            }
            if (rc) {
                goto out;
            }
        }
        p = nlp ? nlp + 1 : end;
    }
out:
    free(ps.scratch);
    free(ps.labels);
    return rc;
}

/* ---- series keys -------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= 0xff; /* separator: "a","bc" differs from "ab","c" */
    h *= 0x100000001b3ULL;
    return h;
}

uint64_t rsre_prom_series_key(const struct rsre_prom_sample *s) {
    uint64_t h = fnv(0xcbf29ce484222325ULL, s->name);
    /* Labels in name order without sorting in place: repeatedly take the next larger name. */
    const char *last = NULL;
    for (size_t k = 0; k < s->nlabels; k++) {
        const struct rsre_prom_label *next = NULL;
        for (size_t i = 0; i < s->nlabels; i++) {
            const struct rsre_prom_label *l = &s->labels[i];
            if ((!last || strcmp(l->name, last) > 0) &&
                (!next || strcmp(l->name, next->name) < 0)) {
                next = l;
            }
        }
        if (!next) {
            break;
        }
        h = fnv(fnv(h, next->name), next->value);
        last = next->name;
    }
    return h;
}

/* ---- error ratio window ------------------------------------------------------------- */

struct point {
    int64_t t;
    double total, errors;
};

struct rsre_err_ratio {
    int64_t window_ms;
    size_t max_series;
    struct rsre_err_series *prev; /* sorted by key */
    size_t nprev;
    int have_prev;
    int64_t last_t;
    double last_ratio;
    struct point *pts; /* ring */
    size_t npts, head, cap;
};

int rsre_err_ratio_create(int64_t window_ms, size_t max_series, struct rsre_err_ratio **out) {
    if (!out || window_ms <= 0 || max_series == 0 || max_series > 10000000) {
        return -EINVAL;
    }
    struct rsre_err_ratio *r = calloc(1, sizeof *r);
    if (!r) {
        return -ENOMEM;
    }
    r->window_ms = window_ms;
    r->max_series = max_series;
    r->cap = 4096; /* scrapes kept; older ones fall out of any sane window */
    r->pts = calloc(r->cap, sizeof *r->pts);
    if (!r->pts) {
        free(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void rsre_err_ratio_destroy(struct rsre_err_ratio *r) {
    if (!r) {
        return;
    }
    free(r->prev);
    free(r->pts);
    free(r);
}

static int cmp_series(const void *a, const void *b) {
    uint64_t x = ((const struct rsre_err_series *)a)->key;
    uint64_t y = ((const struct rsre_err_series *)b)->key;
    return x < y ? -1 : x > y;
}

int rsre_err_ratio_add(struct rsre_err_ratio *r, int64_t now_ms, struct rsre_err_series *series,
                       size_t n, struct rsre_err_ratio_result *out) {
    if (!r || (!series && n) || !out) {
        return -EINVAL;
    }
    if (r->have_prev && now_ms <= r->last_t) {
        return -EINVAL;
    }
    if (n > r->max_series) {
        return RSRE_ELIMIT;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(series[i].value) || series[i].value < 0) {
            return RSRE_EINVALID;
        }
    }
    struct rsre_err_series *copy = malloc((n ? n : 1) * sizeof *copy);
    if (!copy) {
        return -ENOMEM;
    }
    if (n) {
        memcpy(copy, series, n * sizeof *copy);
    }
    qsort(copy, n, sizeof *copy, cmp_series);
    double dt = 0, de = 0;
    int resets = 0;
    if (r->have_prev) {
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && copy[i].key == copy[i - 1].key) {
                continue; /* duplicate series in one scrape: count once */
            }
            while (j < r->nprev && r->prev[j].key < copy[i].key) {
                j++;
            }
            double inc;
            if (j < r->nprev && r->prev[j].key == copy[i].key) {
                if (copy[i].value >= r->prev[j].value) {
                    inc = copy[i].value - r->prev[j].value;
                } else {
                    inc = copy[i].value;
                    resets++;
                }
            } else {
                inc = copy[i].value; /* new series: started from zero since the last scrape */
            }
            dt += inc;
            if (copy[i].is_error) {
                de += inc;
            }
        }
    }
    free(r->prev);
    r->prev = copy;
    r->nprev = n;
    /* Append the point; drop what fell out of the window (and the oldest if the ring is full). */
    if (r->npts == r->cap) {
        r->head = (r->head + 1) % r->cap;
        r->npts--;
    }
    r->pts[(r->head + r->npts) % r->cap] = (struct point){now_ms, dt, de};
    r->npts++;
    while (r->npts > 0 && r->pts[r->head].t <= now_ms - r->window_ms) {
        r->head = (r->head + 1) % r->cap;
        r->npts--;
    }
    double total = 0, errors = 0;
    for (size_t k = 0; k < r->npts; k++) {
        const struct point *pt = &r->pts[(r->head + k) % r->cap];
        total += pt->total;
        errors += pt->errors;
    }
    double ratio = total > 0 ? errors / total : 0.0;
    if (ratio > 1) {
        ratio = 1; /* error series growing while the total does not: clamp */
    }
    out->ratio = ratio;
    out->slope_per_min =
        r->have_prev ? (ratio - r->last_ratio) / ((double)(now_ms - r->last_t) / 60000.0) : 0.0;
    out->total = total;
    out->errors = errors;
    out->resets = resets;
    out->scrapes = (int)r->npts;
    r->have_prev = 1;
    r->last_t = now_ms;
    r->last_ratio = ratio;
    return 0;
}
