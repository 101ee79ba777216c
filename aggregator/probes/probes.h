#ifndef RSRE_PROBES_H
#define RSRE_PROBES_H

/*
 * Dependency probes: the aggregator's own checks of the services the cluster's workloads
 * depend on (Redis, NATS, MinIO, the internal registry, LDAP, PostgreSQL, HTTP routes, TLS
 * certificates, DNS answers, the ingress controller's 5xx ratio). docs/probes.md is the
 * operator's reference: the probes file, every kind and field, and what each probe feeds the
 * incident engine.
 *
 * A probe set is loaded from a YAML probes file; each probe has a kind (a row in the kinds
 * table: run function and the fields it takes), a name, an interval, a timeout, a
 * consecutive-failure threshold and a core flag. Secrets come from *_file fields, are read at
 * load time and never logged or copied into evidence.
 *
 * rsre_probe_run() runs one probe once and blocks for at most about its timeout (each network
 * step has its own deadline), so it must run off the loop: the scheduler (rsre_probes) runs it
 * in libuv's thread pool with uv_queue_work and handles the result on the loop thread, where it
 * updates the probe's state (consecutive failures; failing only once they reach the threshold;
 * recovered on the first success) and calls the outcome callback. One run per probe is in
 * flight at a time; a probe whose run is still going when its timer fires skips that turn.
 */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/yamldoc.h"
#include "probes/promtext.h"

#define RSRE_PROBES_MAX 256    /* probes per file */
#define RSRE_PROBE_MAX_LIST 16 /* images / expected addresses per probe */
#define RSRE_PROBE_ERR_LEN 512 /* evidence text */

enum rsre_probe_kind {
    RSRE_PROBE_REDIS,
    RSRE_PROBE_NATS,
    RSRE_PROBE_MINIO,
    RSRE_PROBE_REGISTRY,
    RSRE_PROBE_LDAP,
    RSRE_PROBE_POSTGRES,
    RSRE_PROBE_HTTP,
    RSRE_PROBE_TLS,
    RSRE_PROBE_DNS,
    RSRE_PROBE_HTTP5XX,
    RSRE_PROBE_NKINDS
};

/* One probe as configured. Strings are NUL-terminated; "" = not set. */
struct rsre_probe_def {
    enum rsre_probe_kind kind;
    char name[64];
    int64_t interval_ms, timeout_ms;
    int threshold; /* consecutive failures before the probe reports failing */
    int core;      /* a core dependency / route: failures are critical */
    char host[256];
    int port;
    char url[512]; /* minio, registry, http, http5xx: base URL or route */
    char user[128];
    char password[256]; /* from password_file; never logged */
    char token[256];    /* from token_file; never logged */
    char database[64];
    char bind_dn[256];
    char ca_file[512];     /* TLS trust (ldaps, https, tls kind); "" = system store */
    char server_name[256]; /* tls: SNI and the name to verify; default host */
    int tls;               /* redis/postgres: use TLS (postgres sslmode=require) */
    int expect_status;     /* http: expected status (default 200) */
    char body_contains[256];
    char images[RSRE_PROBE_MAX_LIST][256]; /* registry: repo:tag to HEAD */
    size_t nimages;
    char expect[RSRE_PROBE_MAX_LIST][64]; /* dns: expected addresses */
    size_t nexpect;
    char metric[128];      /* http5xx: counter name (nginx_ingress_controller_requests) */
    char status_label[64]; /* http5xx: label holding the status (status) */
    char match_label[64];  /* http5xx: optional filter label name ... */
    char match_value[256]; /* ... and value (e.g. ingress=api) */
    int64_t window_ms;     /* http5xx: ratio window (default 5 min) */
};

/* The outcome of one run. */
struct rsre_probe_result {
    int ok;
    char error[RSRE_PROBE_ERR_LEN]; /* evidence text; "" when ok (or a note) */
    char code[40];                  /* short class: ECONNREFUSED, ETIMEDOUT, LOADING, NOAUTH,
                                       WRONGPASS, 53300, 57P03, 28P01, LDAP_49, LDAP_-1,
                                       MANIFEST_UNKNOWN, UNAUTHORIZED, HTTP_503, EXPIRED, ... */
    int64_t duration_ms;
    int has_days;
    double days_to_expiry; /* tls */
    int dns_mismatches;    /* dns */
    int tls_failed;        /* tls: handshake/verification failure (vs. connect failure) */
    int image_unknown, image_unauthorized; /* registry: counts over the configured images */
    struct rsre_err_series *series;        /* http5xx scrape (malloc'd, freed by the owner) */
    size_t nseries;
};

struct rsre_probe_set; /* loaded probes file; immutable once loaded */

/*
 * Loads a probes file from memory. `base_dir` resolves relative *_file paths (NULL = cwd).
 * Returns 0, or RSRE_EPARSE / RSRE_EINVALID / RSRE_ELIMIT with *err naming line:col and the
 * field, or -ENOMEM / a negative errno for an unreadable secret file (err names the field).
 */
int rsre_probe_set_load(const char *buf, size_t len, const char *base_dir,
                        struct rsre_probe_set **out, struct rsre_yerr *err);
/* Same from a file; errors as "PATH:LINE:COL: message" in err (errlen bytes). */
int rsre_probe_set_load_file(const char *path, struct rsre_probe_set **out, char *err,
                             size_t errlen);
/* Frees the set and wipes its secrets. NULL is a no-op. */
void rsre_probe_set_destroy(struct rsre_probe_set *set);
size_t rsre_probe_set_count(const struct rsre_probe_set *set);
/* Borrowed, valid while the set lives. NULL when out of range. */
const struct rsre_probe_def *rsre_probe_set_get(const struct rsre_probe_set *set, size_t i);

const char *rsre_probe_kind_name(enum rsre_probe_kind kind);

/*
 * Runs `def` once, blocking (any thread; never the loop thread) for about def->timeout_ms at
 * most per network step. Fills *res (zeroed first). Returns 0 whenever a result was produced
 * (res->ok tells success); -ENOMEM only when nothing could be tried.
 */
int rsre_probe_run(const struct rsre_probe_def *def, struct rsre_probe_result *res);
/* Frees what a result owns (the scrape series). */
void rsre_probe_result_clear(struct rsre_probe_result *res);

/* What a probe reports after each run (everything borrowed for the callback). */
struct rsre_probe_status {
    const struct rsre_probe_def *def;
    const struct rsre_probe_result *result;
    int consecutive_failures;
    int failing;              /* consecutive_failures >= threshold */
    int changed;              /* failing flipped with this run */
    int64_t failing_since_ms; /* when failing began (0 when not failing) */
    int64_t at_ms;
    /* http5xx (when has_ratio): the window's ratio and its slope per minute */
    int has_ratio;
    struct rsre_err_ratio_result ratio;
};

/* Per-probe state kept between runs (embedded by the scheduler; exposed for tests). */
struct rsre_probe_state {
    int consecutive_failures;
    int failing;
    int64_t failing_since_ms;
    struct rsre_err_ratio *ratio; /* http5xx */
};

/*
 * Folds one result into `st` at now_ms and fills *out (pointers into def/res/st). A failure
 * counts towards the threshold; the probe reports failing from the threshold-th consecutive
 * failure on and recovers on the first success. For http5xx a successful scrape goes through
 * the ratio window. Returns 0 or an error from the ratio window (the result then counts as a
 * failure with that text). rsre_probe_state_clear frees what the state holds.
 */
int rsre_probe_state_update(struct rsre_probe_state *st, const struct rsre_probe_def *def,
                            struct rsre_probe_result *res, int64_t now_ms,
                            struct rsre_probe_status *out);
void rsre_probe_state_clear(struct rsre_probe_state *st);

/*
 * The incident-engine observations for a status (docs/probes.md "Signals"): each names a scope
 * ("dependency/<name>", "registry/<name>", "route/<name>", "tls/<name>", "dns/<name>",
 * "http/<name>"), a source ("probe:<name>"), the detail (the error text or "ok"; borrowed from
 * the status' result) and catalogue values. Most kinds give one; the registry gives two (the
 * registry as a dependency, and its wanted images as pull failures). The fields map one to one
 * onto the engine's struct rsre_observation; declared here so that this module does not
 * depend on the engine. Returns the number filled (0 when the run says nothing, e.g. a failed
 * http5xx scrape), or -EINVAL.
 */
#define RSRE_PROBE_OBS_MAX 2
#define RSRE_PROBE_OBS_VALUES 8
struct rsre_probe_obs_value {
    const char *signal;
    double value;
};
struct rsre_probe_obs {
    char scope[96];
    char source[80];
    const char *detail;
    struct rsre_probe_obs_value values[RSRE_PROBE_OBS_VALUES];
    size_t nvalues;
};
int rsre_probe_observations(const struct rsre_probe_status *st,
                            struct rsre_probe_obs out[RSRE_PROBE_OBS_MAX]);

/* ---- scheduler on a libuv loop ------------------------------------------------------ */

struct rsre_probes;
typedef void (*rsre_probes_cb)(void *arg, const struct rsre_probe_status *st);

/*
 * Creates a scheduler for `set` (ownership passes to the scheduler, also on error) on `loop`.
 * `now_ms` (NULL = uv_now) stamps results so tests and the daemon share one clock; `cb` gets
 * every run's status on the loop thread. Timers start with rsre_probes_start.
 */
int rsre_probes_create(uv_loop_t *loop, struct rsre_probe_set *set, int64_t (*now_ms)(void *),
                       void *clock_arg, rsre_probes_cb cb, void *arg, struct rsre_probes **out);
/* Starts every probe's timer; the first run of each follows right away. */
int rsre_probes_start(struct rsre_probes *p);
/* Queues one run of probe `name` now (unless one is in flight: -EBUSY). RSRE_ENOTFOUND. */
int rsre_probes_run_now(struct rsre_probes *p, const char *name);
/* Number of runs in flight. */
size_t rsre_probes_in_flight(const struct rsre_probes *p);
const struct rsre_probe_set *rsre_probes_set(const struct rsre_probes *p);
/*
 * Stops the timers; runs in flight finish in the pool (bounded by their timeouts) and their
 * results are dropped; `closed(arg)` runs on the loop after everything is released. The
 * outcome callback never runs after this call.
 */
void rsre_probes_close(struct rsre_probes *p, void (*closed)(void *), void *arg);

#endif
