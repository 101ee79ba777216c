#ifndef RSRE_PROMTEXT_H
#define RSRE_PROMTEXT_H

/*
 * Prometheus text exposition format (version 0.0.4) parser and the 5xx error-ratio math the
 * http5xx probe computes from it.
 *
 * Parser: one pass over a buffer, no allocation beyond one line's scratch space, every sample
 * handed to a callback. Accepted: `# HELP name text`, `# TYPE name type` (counter, gauge,
 * histogram, summary, untyped), other `#` comments, empty lines, and samples
 * `name{label="value",...} value [timestamp_ms]` with the escapes \\ \" \n in label values,
 * values as decimal floats or NaN / +Inf / -Inf (case-insensitive), an optional trailing comma
 * in the label set, spaces or tabs between tokens and "\r\n" line ends. Rejected with the
 * 1-based line number: anything else, a line longer than max_line, more than max_labels labels
 * on a sample, a duplicate label name, more than max_series samples.
 */

#include <stddef.h>
#include <stdint.h>

struct rsre_prom_label {
    const char *name;
    const char *value; /* unescaped */
};

/* One sample; every pointer is valid only during the callback. */
struct rsre_prom_sample {
    const char *name;
    const struct rsre_prom_label *labels;
    size_t nlabels;
    double value;
    int has_timestamp;
    int64_t timestamp_ms;
    const char *type; /* TYPE of the family the name belongs to, or "untyped" */
};

struct rsre_promtext_limits {
    size_t max_line;   /* bytes per line (default 16384) */
    size_t max_series; /* samples per exposition (default 200000) */
    size_t max_labels; /* labels per sample (default 64) */
};

struct rsre_promtext_error {
    size_t line; /* 1-based; 0 when not tied to a line */
    char msg[160];
};

/* Returns 0 to continue or a negative code to stop; the parser returns that code. */
typedef int (*rsre_promtext_cb)(void *arg, const struct rsre_prom_sample *s);

/*
 * Parses `buf[0..len)` (not necessarily NUL-terminated) and calls `cb` for every sample in
 * order. `lim` may be NULL (defaults above; a zero field also takes its default). Returns 0,
 * RSRE_EPARSE or RSRE_ELIMIT with *err filled (err may be NULL), -ENOMEM, or the callback's
 * negative code. Samples already delivered before an error stay delivered: callers that need
 * all-or-nothing collect first and commit after a 0 return.
 */
int rsre_promtext_parse(const char *buf, size_t len, const struct rsre_promtext_limits *lim,
                        rsre_promtext_cb cb, void *arg, struct rsre_promtext_error *err);

/*
 * Error ratio over a sliding window from counter samples.
 *
 * Each scrape gives the current value of every counter series (identified by a 64-bit hash of
 * its name and labels) and whether it counts errors (e.g. status="5xx"). Per series the
 * increase since the previous scrape is the difference, or — when the value went down, a
 * counter reset (the process restarted) — the new value itself. A series first seen after
 * the first scrape started from zero within the interval, so its whole value counts; on the
 * very first scrape nothing counts (there is no interval yet). The window keeps the per-scrape
 * increases (total, errors) newer than window_ms and the ratio is errors / total over them;
 * with no requests in the window the ratio is 0. The slope is the change of the ratio per
 * minute between the last two scrapes.
 */
struct rsre_err_ratio;

struct rsre_err_series {
    uint64_t key; /* hash of name and labels (rsre_prom_series_key) */
    double value;
    int is_error;
};

struct rsre_err_ratio_result {
    double ratio;         /* errors / total over the window, 0 without traffic */
    double slope_per_min; /* change of ratio per minute since the previous scrape, 0 at first */
    double total, errors; /* increases over the window */
    int resets;           /* series that reset in the last scrape */
    int scrapes;          /* scrapes in the window (including the current one) */
};

/* window_ms > 0; max_series bounds the series kept between scrapes. */
int rsre_err_ratio_create(int64_t window_ms, size_t max_series, struct rsre_err_ratio **out);
void rsre_err_ratio_destroy(struct rsre_err_ratio *r);
/*
 * Adds one scrape taken at now_ms (later than the previous one, else -EINVAL and nothing
 * changes). `series` may be reordered. Non-finite or negative values: RSRE_EINVALID, nothing
 * changes. More than max_series: RSRE_ELIMIT, nothing changes.
 */
int rsre_err_ratio_add(struct rsre_err_ratio *r, int64_t now_ms, struct rsre_err_series *series,
                       size_t n, struct rsre_err_ratio_result *out);

/* FNV-1a 64 over the name and the labels, sorted by name so label order does not matter. */
uint64_t rsre_prom_series_key(const struct rsre_prom_sample *s);

#endif
