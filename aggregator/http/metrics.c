/*
 * The metrics registry (metrics.h): families from static tables, series found by a linear scan
 * of their label values (families have few series), one mutex, Prometheus text rendering.
 */
#include "http/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static const double http_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};

/* Rows in the order of enum rsre_metric_id. */
static const struct rsre_metric_def builtin_defs[RSRE_M_BUILTIN_COUNT] = {
    [RSRE_M_INCIDENTS_OPEN_TOTAL] =
        {"ops_incidents_open_total", "Incidents opened.", RSRE_METRIC_COUNTER, {NULL}, NULL, 0},
    [RSRE_M_INCIDENTS_RESOLVED_TOTAL] = {"ops_incidents_resolved_total",
                                         "Incidents resolved.",
                                         RSRE_METRIC_COUNTER,
                                         {NULL},
                                         NULL,
                                         0},
    [RSRE_M_INCIDENTS_BY_TYPE] = {"ops_incidents_by_type",
                                  "Unresolved incidents by incident class (from the store).",
                                  RSRE_METRIC_GAUGE,
                                  {"type"},
                                  NULL,
                                  0},
    [RSRE_M_AUTO_REMEDIATIONS_TOTAL] = {"ops_auto_remediations_total",
                                        "Actions the robot ran without approval.",
                                        RSRE_METRIC_COUNTER,
                                        {NULL},
                                        NULL,
                                        0},
    [RSRE_M_AUTO_REMEDIATIONS_FAILED_TOTAL] = {"ops_auto_remediations_failed_total",
                                               "Actions run without approval that failed.",
                                               RSRE_METRIC_COUNTER,
                                               {NULL},
                                               NULL,
                                               0},
    [RSRE_M_APPROVALS_REQUESTED_TOTAL] = {"ops_approvals_requested_total",
                                          "Approval requests created.",
                                          RSRE_METRIC_COUNTER,
                                          {NULL},
                                          NULL,
                                          0},
    [RSRE_M_APPROVALS_GRANTED_TOTAL] = {"ops_approvals_granted_total",
                                        "Approval requests granted.",
                                        RSRE_METRIC_COUNTER,
                                        {NULL},
                                        NULL,
                                        0},
    [RSRE_M_APPROVALS_DENIED_TOTAL] = {"ops_approvals_denied_total",
                                       "Approval requests denied.",
                                       RSRE_METRIC_COUNTER,
                                       {NULL},
                                       NULL,
                                       0},
    [RSRE_M_POLICY_SUPPRESSIONS_TOTAL] = {"ops_policy_suppressions_total",
                                          "Actions or notifications suppressed by policy "
                                          "(cooldowns, suppression windows, duplicates).",
                                          RSRE_METRIC_COUNTER,
                                          {NULL},
                                          NULL,
                                          0},
    [RSRE_M_CHAT_DELIVERY_FAILURES_TOTAL] = {"ops_chat_delivery_failures_total",
                                             "Chat notifications that failed to deliver.",
                                             RSRE_METRIC_COUNTER,
                                             {NULL},
                                             NULL,
                                             0},
    [RSRE_M_HTTP_REQUESTS_TOTAL] = {"ops_http_requests_total",
                                    "Admin API requests by method, route and status code.",
                                    RSRE_METRIC_COUNTER,
                                    {"method", "route", "code"},
                                    NULL,
                                    0},
    [RSRE_M_HTTP_REQUEST_DURATION_SECONDS] = {"ops_http_request_duration_seconds",
                                              "Time the admin API took to produce a response.",
                                              RSRE_METRIC_HISTOGRAM,
                                              {"route"},
                                              http_buckets,
                                              sizeof(http_buckets) / sizeof(http_buckets[0])},
    [RSRE_M_HTTP_LOGIN_FAILURES_TOTAL] = {"ops_http_login_failures_total",
                                          "Admin API requests refused for a missing or unknown "
                                          "token.",
                                          RSRE_METRIC_COUNTER,
                                          {"reason"},
                                          NULL,
                                          0},
    [RSRE_M_HTTP_CONNECTIONS] =
        {"ops_http_connections", "Open admin API connections.", RSRE_METRIC_GAUGE, {NULL}, NULL, 0},
};

struct series {
    char *labels[RSRE_METRIC_MAX_LABELS];
    double value;      /* counters, gauges; histograms: the sum */
    uint64_t count;    /* histograms */
    uint64_t *buckets; /* histograms: non-cumulative counts per bucket */
};

struct family {
    const struct rsre_metric_def *def;
    unsigned nlabels;
    struct series *series;
    size_t nseries, cap;
};

struct rsre_metrics {
    pthread_mutex_t mu;
    struct family fam[RSRE_METRIC_MAX_FAMILIES];
    size_t nfam;
};

static int valid_name(const char *s, int allow_colon) {
    if (!s || !*s || (*s >= '0' && *s <= '9')) {
        return 0;
    }
    for (; *s; s++) {
        int ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                 *s == '_' || (allow_colon && *s == ':');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int register_locked(struct rsre_metrics *m, const struct rsre_metric_def *def, int *id) {
    for (size_t i = 0; i < m->nfam; i++) {
        if (!strcmp(m->fam[i].def->name, def->name)) {
            if (m->fam[i].def != def) {
                return RSRE_EEXIST;
            }
            *id = (int)i;
            return 0;
        }
    }
    if (!valid_name(def->name, 1) || !def->help ||
        (def->type == RSRE_METRIC_HISTOGRAM &&
         (!def->buckets || !def->nbuckets || def->nbuckets > RSRE_METRIC_MAX_BUCKETS))) {
        return -EINVAL;
    }
    unsigned n = 0;
    while (n < RSRE_METRIC_MAX_LABELS && def->labels[n]) {
        if (!valid_name(def->labels[n], 0) || !strcmp(def->labels[n], "le")) {
            return -EINVAL;
        }
        n++;
    }
    if (m->nfam == RSRE_METRIC_MAX_FAMILIES) {
        return RSRE_ELIMIT;
    }
    m->fam[m->nfam] = (struct family){.def = def, .nlabels = n};
    *id = (int)m->nfam++;
    return 0;
}

int rsre_metrics_create(struct rsre_metrics **out) {
    struct rsre_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        return -ENOMEM;
    }
    pthread_mutex_init(&m->mu, NULL);
    for (int i = 0; i < RSRE_M_BUILTIN_COUNT; i++) {
        int id;
        int rc = register_locked(m, &builtin_defs[i], &id);
        if (rc || id != i) {
            rsre_metrics_destroy(m);
            return rc ? rc : -EINVAL;
        }
    }
    *out = m;
    return 0;
}

static void series_free(struct series *s) {
    for (int i = 0; i < RSRE_METRIC_MAX_LABELS; i++) {
        free(s->labels[i]);
    }
    free(s->buckets);
}

void rsre_metrics_destroy(struct rsre_metrics *m) {
    if (!m) {
        return;
    }
    for (size_t f = 0; f < m->nfam; f++) {
        for (size_t i = 0; i < m->fam[f].nseries; i++) {
            series_free(&m->fam[f].series[i]);
        }
        free(m->fam[f].series);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int rsre_metrics_register(struct rsre_metrics *m, const struct rsre_metric_def *def, int *id) {
    if (!m) {
        *id = -1;
        return 0;
    }
    if (!def) {
        return -EINVAL;
    }
    pthread_mutex_lock(&m->mu);
    int rc = register_locked(m, def, id);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Finds (or, with `create`, adds) the series of `lv` in family `f`; NULL with *rc set. */
static struct series *series_find(struct family *f, const char *const *lv, int create, int *rc) {
    for (unsigned i = 0; i < f->nlabels; i++) {
        if (!lv || !lv[i]) {
            *rc = -EINVAL;
            return NULL;
        }
        if (strlen(lv[i]) > RSRE_METRIC_LABEL_MAX) {
            *rc = RSRE_ELIMIT;
            return NULL;
        }
    }
    for (size_t s = 0; s < f->nseries; s++) {
        unsigned i = 0;
        while (i < f->nlabels && !strcmp(f->series[s].labels[i], lv[i])) {
            i++;
        }
        if (i == f->nlabels) {
            return &f->series[s];
        }
    }
    *rc = 0;
    if (!create) {
        return NULL;
    }
    if (f->nseries == RSRE_METRIC_MAX_SERIES) {
        *rc = RSRE_ELIMIT;
        return NULL;
    }
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct series *n = realloc(f->series, cap * sizeof(*n));
        if (!n) {
            *rc = -ENOMEM;
            return NULL;
        }
        f->series = n;
        f->cap = cap;
    }
    struct series s = {0};
    for (unsigned i = 0; i < f->nlabels; i++) {
        if (!(s.labels[i] = strdup(lv[i]))) {
            series_free(&s);
            *rc = -ENOMEM;
            return NULL;
        }
    }
    if (f->def->type == RSRE_METRIC_HISTOGRAM &&
        !(s.buckets = calloc(f->def->nbuckets, sizeof(uint64_t)))) {
        series_free(&s);
        *rc = -ENOMEM;
        return NULL;
    }
    f->series[f->nseries] = s;
    return &f->series[f->nseries++];
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static int update(struct rsre_metrics *m, int id, const char *const *lv, double v, enum op op) {
    if (!m) {
        return 0;
    }
    if (isnan(v)) {
        return -EINVAL;
    }
    pthread_mutex_lock(&m->mu);
    int rc = -EINVAL;
    if (id < 0 || (size_t)id >= m->nfam) {
        goto out;
    }
    struct family *f = &m->fam[id];
    enum rsre_metric_type t = f->def->type;
    if ((op == OP_ADD && (t == RSRE_METRIC_HISTOGRAM || (t == RSRE_METRIC_COUNTER && v < 0))) ||
        (op == OP_SET && t != RSRE_METRIC_GAUGE) ||
        (op == OP_OBSERVE && t != RSRE_METRIC_HISTOGRAM)) {
        goto out;
    }
    struct series *s = series_find(f, lv, 1, &rc);
    if (!s) {
        goto out;
    }
    rc = 0;
    if (op == OP_ADD) {
        s->value += v;
    } else if (op == OP_SET) {
        s->value = v;
    } else {
        s->value += v;
        s->count++;
        for (size_t b = 0; b < f->def->nbuckets; b++) {
            if (v <= f->def->buckets[b]) {
                s->buckets[b]++;
                break;
            }
        }
    }
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int rsre_metrics_add(struct rsre_metrics *m, int id, const char *const *lv, double delta) {
    return update(m, id, lv, delta, OP_ADD);
}

int rsre_metrics_set(struct rsre_metrics *m, int id, const char *const *lv, double value) {
    return update(m, id, lv, value, OP_SET);
}

int rsre_metrics_observe(struct rsre_metrics *m, int id, const char *const *lv, double value) {
    return update(m, id, lv, value, OP_OBSERVE);
}

int rsre_metrics_zero(struct rsre_metrics *m, int id) {
    if (!m) {
        return 0;
    }
    pthread_mutex_lock(&m->mu);
    int rc = -EINVAL;
    if (id >= 0 && (size_t)id < m->nfam) {
        struct family *f = &m->fam[id];
        for (size_t s = 0; s < f->nseries; s++) {
            f->series[s].value = 0;
            f->series[s].count = 0;
            if (f->series[s].buckets) {
                memset(f->series[s].buckets, 0, f->def->nbuckets * sizeof(uint64_t));
            }
        }
        rc = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int rsre_metrics_get(struct rsre_metrics *m, int id, const char *const *lv, double *out) {
    *out = 0;
    if (!m) {
        return 0;
    }
    pthread_mutex_lock(&m->mu);
    int rc = -EINVAL;
    if (id >= 0 && (size_t)id < m->nfam) {
        struct family *f = &m->fam[id];
        struct series *s = series_find(f, lv, 0, &rc);
        if (s) {
            rc = 0;
            *out = f->def->type == RSRE_METRIC_HISTOGRAM ? (double)s->count : s->value;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- rendering ------------------------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
    int err;
};

static void sb_grow(struct sbuf *b, size_t need) {
    if (b->err || b->len + need + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need + 1) {
        cap *= 2;
    }
    char *n = realloc(b->p, cap);
    if (!n) {
        b->err = -ENOMEM;
        return;
    }
    b->p = n;
    b->cap = cap;
}

static void sb_put(struct sbuf *b, const char *s, size_t n) {
    sb_grow(b, n);
    if (!b->err) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

static void sb_puts(struct sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

/* Escapes for HELP text (backslash, newline) or label values (also the double quote). */
static void sb_escaped(struct sbuf *b, const char *s, int label) {
    for (; *s; s++) {
        if (*s == '\\') {
            sb_puts(b, "\\\\");
        } else if (*s == '\n') {
            sb_puts(b, "\\n");
        } else if (label && *s == '"') {
            sb_puts(b, "\\\"");
        } else {
            sb_put(b, s, 1);
        }
    }
}

static void sb_value(struct sbuf *b, double v) {
    if (isinf(v)) {
        sb_puts(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        sb_printf(b, "%.0f", v);
    } else {
        /* The shortest of %.15g..%.17g that reads back as the same double. */
        char tmp[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) {
                break;
            }
        }
        sb_puts(b, tmp);
    }
}

/* Writes `{a="x",b="y"` plus an optional extra label, and the closing brace. */
static void sb_labels(struct sbuf *b, const struct family *f, const struct series *s,
                      const char *extra_name, const char *extra_value) {
    if (!f->nlabels && !extra_name) {
        return;
    }
    sb_puts(b, "{");
    for (unsigned i = 0; i < f->nlabels; i++) {
        sb_printf(b, "%s%s=\"", i ? "," : "", f->def->labels[i]);
        sb_escaped(b, s->labels[i], 1);
        sb_puts(b, "\"");
    }
    if (extra_name) {
        sb_printf(b, "%s%s=\"%s\"", f->nlabels ? "," : "", extra_name, extra_value);
    }
    sb_puts(b, "}");
}

static const char *const type_names[] = {"counter", "gauge", "histogram"};

static void render_family(struct sbuf *b, const struct family *f) {
    const struct rsre_metric_def *d = f->def;
    sb_printf(b, "# HELP %s ", d->name);
    sb_escaped(b, d->help, 0);
    sb_printf(b, "\n# TYPE %s %s\n", d->name, type_names[d->type]);
    static const struct series zero;
    size_t n = f->nseries;
    if (!n && f->nlabels) {
        return;
    }
    for (size_t i = 0; i < (n ? n : 1); i++) {
        const struct series *s = n ? &f->series[i] : &zero;
        if (d->type != RSRE_METRIC_HISTOGRAM) {
            sb_puts(b, d->name);
            sb_labels(b, f, s, NULL, NULL);
            sb_puts(b, " ");
            sb_value(b, s->value);
            sb_puts(b, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= d->nbuckets; k++) {
            char le[32];
            if (k < d->nbuckets) {
                cum += s->buckets ? s->buckets[k] : 0;
                snprintf(le, sizeof(le), "%g", d->buckets[k]);
            } else {
                cum = s->count;
                snprintf(le, sizeof(le), "+Inf");
            }
            sb_printf(b, "%s_bucket", d->name);
            sb_labels(b, f, s, "le", le);
            sb_printf(b, " %llu\n", (unsigned long long)cum);
        }
        sb_printf(b, "%s_sum", d->name);
        sb_labels(b, f, s, NULL, NULL);
        sb_puts(b, " ");
        sb_value(b, s->value);
        sb_printf(b, "\n%s_count", d->name);
        sb_labels(b, f, s, NULL, NULL);
        sb_printf(b, " %llu\n", (unsigned long long)s->count);
    }
}

int rsre_metrics_render(struct rsre_metrics *m, char **out, size_t *len) {
    struct sbuf b = {0};
    sb_puts(&b, "");
    if (m) {
        pthread_mutex_lock(&m->mu);
        for (size_t f = 0; f < m->nfam; f++) {
            render_family(&b, &m->fam[f]);
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (b.err) {
        free(b.p);
        return b.err;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
