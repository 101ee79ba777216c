#ifndef RSRE_METRICS_H
#define RSRE_METRICS_H

/*
 * A small Prometheus metrics registry: families of counters, gauges and histograms, each a row
 * of a static definition table (name, help, type, label names, buckets), with up to
 * RSRE_METRIC_MAX_LABELS labels and RSRE_METRIC_MAX_SERIES label combinations per family.
 * The admin API (http/api.h) serves it as /metrics in the text exposition format 0.0.4.
 *
 * rsre_metrics_create registers the built-in families below, so every module can count with
 * the fixed ids (RSRE_M_*) without registering anything; other families are added with
 * rsre_metrics_register from a module's own static table.
 *
 * Threads: every function may be called from any thread (one mutex per registry). Every
 * function accepts a NULL registry and then does nothing and returns 0, so modules may run
 * without one (unit tests).
 *
 * Errors: 0, -EINVAL (unknown id, wrong type for the call, negative counter delta, missing
 * label value), RSRE_ELIMIT (label value over RSRE_METRIC_LABEL_MAX bytes, family full),
 * -ENOMEM. A failed increment changes nothing.
 */

#include <stddef.h>

#define RSRE_METRIC_MAX_LABELS 3
#define RSRE_METRIC_MAX_SERIES 1000 /* label combinations per family */
#define RSRE_METRIC_MAX_FAMILIES 256
#define RSRE_METRIC_LABEL_MAX 128 /* bytes of one label value */
#define RSRE_METRIC_MAX_BUCKETS 16

enum rsre_metric_type { RSRE_METRIC_COUNTER, RSRE_METRIC_GAUGE, RSRE_METRIC_HISTOGRAM };

/*
 * One family. Borrowed by the registry for its whole life: keep definitions in static tables.
 * `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; label names [a-zA-Z_][a-zA-Z0-9_]*, unused slots
 * NULL; histogram buckets are ascending upper bounds (+Inf is implied).
 */
struct rsre_metric_def {
    const char *name, *help;
    enum rsre_metric_type type;
    const char *labels[RSRE_METRIC_MAX_LABELS];
    const double *buckets;
    size_t nbuckets;
};

/*
 * Built-in families, registered by rsre_metrics_create with these ids. The first ten are the
 * spec's "Metrics To Add"; who increments which is listed in docs/api.md.
 */
enum rsre_metric_id {
    RSRE_M_INCIDENTS_OPEN_TOTAL,           /* counter: incidents opened */
    RSRE_M_INCIDENTS_RESOLVED_TOTAL,       /* counter: incidents resolved */
    RSRE_M_INCIDENTS_BY_TYPE,              /* gauge{type}: unresolved incidents (set at scrape) */
    RSRE_M_AUTO_REMEDIATIONS_TOTAL,        /* counter: auto actions started */
    RSRE_M_AUTO_REMEDIATIONS_FAILED_TOTAL, /* counter: auto actions that failed */
    RSRE_M_APPROVALS_REQUESTED_TOTAL,      /* counter: approval requests created */
    RSRE_M_APPROVALS_GRANTED_TOTAL,        /* counter: approvals granted */
    RSRE_M_APPROVALS_DENIED_TOTAL,         /* counter: approvals denied */
    RSRE_M_POLICY_SUPPRESSIONS_TOTAL,      /* counter: actions/notifications suppressed */
    RSRE_M_CHAT_DELIVERY_FAILURES_TOTAL,   /* counter: chat messages that failed to deliver */
    RSRE_M_HTTP_REQUESTS_TOTAL,            /* counter{method,route,code}: admin API requests */
    RSRE_M_HTTP_REQUEST_DURATION_SECONDS,  /* histogram{route}: time to produce a response */
    RSRE_M_HTTP_LOGIN_FAILURES_TOTAL,      /* counter{reason}: requests refused with 401 */
    RSRE_M_HTTP_CONNECTIONS,               /* gauge: open admin API connections */
    RSRE_M_BUILTIN_COUNT
};

struct rsre_metrics;

/* Creates a registry holding the built-in families; *out is freed with rsre_metrics_destroy. */
int rsre_metrics_create(struct rsre_metrics **out);
void rsre_metrics_destroy(struct rsre_metrics *m); /* NULL is a no-op */

/*
 * Registers a family; *id gets its handle for the calls below. Registering the same name
 * again with the same definition pointer returns the existing id; another definition with a
 * taken name fails with RSRE_EEXIST.
 */
int rsre_metrics_register(struct rsre_metrics *m, const struct rsre_metric_def *def, int *id);

/*
 * Counter or gauge: adds `delta` (counters: >= 0) to the series named by `label_values`
 * (one string per label of the family, in order; NULL for a family without labels).
 */
int rsre_metrics_add(struct rsre_metrics *m, int id, const char *const *label_values, double delta);
/* Gauge: sets the series to `value`. */
int rsre_metrics_set(struct rsre_metrics *m, int id, const char *const *label_values, double value);
/* Histogram: records one observation. */
int rsre_metrics_observe(struct rsre_metrics *m, int id, const char *const *label_values,
                         double value);
/* Sets every series of a family to zero (gauges recomputed from state before a scrape). */
int rsre_metrics_zero(struct rsre_metrics *m, int id);

/* Counter shorthand for a family without labels. */
static inline int rsre_metrics_inc(struct rsre_metrics *m, int id) {
    return rsre_metrics_add(m, id, NULL, 1);
}

/*
 * The current value of a series (histograms: the observation count) into *out; 0 with *out = 0
 * when the series does not exist yet. For tests and health checks.
 */
int rsre_metrics_get(struct rsre_metrics *m, int id, const char *const *label_values, double *out);

/*
 * Renders every family in registration order as Prometheus text into a caller-owned,
 * NUL-terminated *out of *len bytes (free()). Families without labels always have a sample
 * (0 before the first increment).
 */
int rsre_metrics_render(struct rsre_metrics *m, char **out, size_t *len);

#endif
