#ifndef RSRE_KUBELET_CONFIG_H
#define RSRE_KUBELET_CONFIG_H

/*
 * kubelet's eviction and image-GC thresholds, read from a KubeletConfiguration file
 * (kubelet.config.k8s.io/v1beta1, usually /var/lib/kubelet/config.yaml) or, when there is no
 * file, kubelet's built-in defaults. Pure functions plus one file reader; no global state.
 *
 * Semantics follow kubelet (see docs/agent-collectors.md for the sources):
 *   - Defaults (Linux): hard eviction memory.available<100Mi, nodefs.available<10%,
 *     nodefs.inodesFree<5%, imagefs.available<15%; image GC high 85%, low 80%, minimum image
 *     age 2m; eviction pressure transition period 5m. No soft thresholds.
 *   - evictionHard present and not null (even `{}`): it REPLACES the defaults, so every signal
 *     it does not name has no hard threshold (kubernetes/kubernetes#112057). `evictionHard:`
 *     with a null value is the same as absent.
 *   - A value ending in '%' is a percentage of capacity; "0%" and "100%" mean "no threshold";
 *     anything else is a Kubernetes quantity ("100Mi", "1Gi", "500M", "1e9") that must be > 0.
 *   - Percent thresholds become absolute with kubelet's float32 arithmetic
 *     (rsre_kubelet_effective), so the byte value matches kubelet's to the byte.
 *   - Every soft threshold needs an evictionSoftGracePeriod entry.
 *   - imageGCHighThresholdPercent / imageGCLowThresholdPercent are integers in 0..100 with
 *     low < high. 100 for high disables image GC.
 *   - imageMinimumGCAge / evictionPressureTransitionPeriod: Go durations; a zero duration
 *     ("0s", which kubeadm writes) means "use the default", as kubelet's defaulting does.
 * Anything kubelet would refuse to start with is an error here, with the line and column.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/yamldoc.h"

/* Largest kubelet config file read (real ones are 2-10 KiB). */
#define RSRE_KUBELET_MAX_FILE (256u * 1024u)

/* Eviction signals kubelet knows. The order is the table order in kubelet_config.c. */
enum rsre_kubelet_signal {
    RSRE_KSIG_MEMORY_AVAILABLE = 0,
    RSRE_KSIG_ALLOCATABLE_MEMORY_AVAILABLE,
    RSRE_KSIG_NODEFS_AVAILABLE,
    RSRE_KSIG_NODEFS_INODES_FREE,
    RSRE_KSIG_IMAGEFS_AVAILABLE,
    RSRE_KSIG_IMAGEFS_INODES_FREE,
    RSRE_KSIG_CONTAINERFS_AVAILABLE,
    RSRE_KSIG_CONTAINERFS_INODES_FREE,
    RSRE_KSIG_PID_AVAILABLE,
    RSRE_KSIG_COUNT
};

/* One threshold: absent (set == 0), an absolute quantity, or a percentage of capacity. */
struct rsre_kubelet_threshold {
    int set;
    uint64_t quantity; /* bytes / inodes / pids; 0 when percent is used */
    double percent;    /* 0 < percent < 100 as written; 0 when quantity is used */
    float fraction;    /* kubelet's float32 percent/100, used for the effective value */
    uint32_t grace_s;  /* soft thresholds: evictionSoftGracePeriod, seconds */
};

/* Values of RobotSre__Agent__V1__ThresholdSource (kept numeric so this header stays small). */
enum rsre_kubelet_source {
    RSRE_KSRC_DEFAULTS = 1, /* THRESHOLD_SOURCE_KUBELET_DEFAULTS */
    RSRE_KSRC_CONFIG = 2,   /* THRESHOLD_SOURCE_KUBELET_CONFIG */
    RSRE_KSRC_OVERRIDE = 3, /* THRESHOLD_SOURCE_OVERRIDE */
    RSRE_KSRC_UNKNOWN = 4,  /* THRESHOLD_SOURCE_UNKNOWN: file unreadable or malformed */
};

struct rsre_kubelet_thresholds {
    struct rsre_kubelet_threshold hard[RSRE_KSIG_COUNT];
    struct rsre_kubelet_threshold soft[RSRE_KSIG_COUNT];
    int gc_high_percent;            /* imageGCHighThresholdPercent */
    int gc_low_percent;             /* imageGCLowThresholdPercent */
    uint32_t gc_min_age_s;          /* imageMinimumGCAge, seconds (rounded down) */
    uint32_t pressure_transition_s; /* evictionPressureTransitionPeriod, seconds */
    int hard_from_config;           /* evictionHard came from the file (defaults replaced) */
    enum rsre_kubelet_source source;
    /* Per-signal override marks set by rsre_kubelet_apply_override (bit = signal) and for
     * the GC percents (bit RSRE_KSIG_COUNT). */
    uint32_t overridden;
};

/* Signal name as kubelet spells it ("nodefs.available"), or NULL when out of range. */
const char *rsre_kubelet_signal_name(enum rsre_kubelet_signal s);

/* Fills *t with kubelet's built-in defaults and source RSRE_KSRC_DEFAULTS. */
void rsre_kubelet_defaults(struct rsre_kubelet_thresholds *t);

/*
 * Parses KubeletConfiguration YAML text (at most RSRE_KUBELET_MAX_FILE bytes). On success
 * returns 0 and fills *out (source RSRE_KSRC_CONFIG). On failure returns RSRE_EPARSE (not
 * YAML / not a KubeletConfiguration), RSRE_EINVALID (a field kubelet would refuse),
 * RSRE_ELIMIT (too large) or -ENOMEM, fills *err with the 1-based line/column of the
 * offending node (0/0 when there is none) and a message naming the field, and sets *out to
 * the defaults with source RSRE_KSRC_UNKNOWN. `buf` need not be NUL-terminated.
 */
int rsre_kubelet_parse(const char *buf, size_t len, struct rsre_kubelet_thresholds *out,
                       struct rsre_yerr *err);

/*
 * Reads and parses the file at `path`. A missing file (-ENOENT) gives the defaults with source
 * RSRE_KSRC_DEFAULTS and returns -ENOENT; other read errors give the defaults with source
 * RSRE_KSRC_UNKNOWN and the negative errno; parse errors as rsre_kubelet_parse.
 */
int rsre_kubelet_load(const char *path, struct rsre_kubelet_thresholds *out, struct rsre_yerr *err);

/*
 * Parses a Kubernetes quantity (resource.Quantity syntax: [+-]digits[.digits] followed by
 * nothing, a binary suffix Ki Mi Gi Ti Pi Ei, a decimal suffix n u m k M G T P E, or an
 * exponent e<int>/E<int>) and rounds it up to an integer as Quantity.Value() does. Returns 0,
 * RSRE_EPARSE (syntax) or RSRE_ELIMIT (negative results and values above UINT64_MAX are not
 * representable: RSRE_EINVALID for negative).
 */
int rsre_kubelet_parse_quantity(const char *s, uint64_t *out);

/*
 * Parses one eviction threshold value ("10%", "100Mi"). Returns 0 and fills *out (set = 0 for
 * "0%" / "100%", which kubelet ignores), RSRE_EPARSE or RSRE_EINVALID with a reason in
 * `why` (at least 96 bytes).
 */
int rsre_kubelet_parse_threshold(const char *s, struct rsre_kubelet_threshold *out, char *why,
                                 size_t why_len);

/*
 * Parses a Go duration ("2m", "1h30m", "90s", "1.5h", "0"). Returns 0 with whole seconds
 * (rounded down) in *out, RSRE_EPARSE or RSRE_ELIMIT (over ~136 years) otherwise. Negative
 * durations are RSRE_EINVALID.
 */
int rsre_kubelet_parse_duration(const char *s, uint32_t *out);

/*
 * The absolute threshold for a filesystem or resource of `capacity` units: the quantity, or
 * kubelet's int64(float64(capacity) * float64(float32 fraction)). 0 when the threshold is not
 * set. Eviction happens when the observed value is strictly below this.
 */
uint64_t rsre_kubelet_effective(const struct rsre_kubelet_threshold *t, uint64_t capacity);

/*
 * Image GC trigger as kubelet computes it (pkg/kubelet/images/image_gc_manager.go):
 * usagePercent = 100 - int(avail*100/capacity), GC when usagePercent >= high. Returns the
 * smallest available-bytes value that does NOT trigger GC, i.e. GC runs exactly when
 * avail < the result. 0 when capacity is 0 or image GC is disabled: high == 100 is the
 * documented way to disable it.
 */
uint64_t rsre_kubelet_gc_trigger_avail(uint64_t capacity, int high_percent);

/* Bytes kubelet image GC tries to free at `avail`: capacity*(100-low)/100 - avail, or 0. */
uint64_t rsre_kubelet_gc_bytes_to_low(uint64_t capacity, uint64_t avail, int low_percent);

/* Override kinds, values of RobotSre__Agent__V1__ThresholdKind. */
enum rsre_kubelet_override_kind {
    RSRE_KOVR_NODEFS_AVAILABLE = 1,
    RSRE_KOVR_NODEFS_INODES_FREE = 2,
    RSRE_KOVR_IMAGEFS_AVAILABLE = 3,
    RSRE_KOVR_IMAGEFS_INODES_FREE = 4,
    RSRE_KOVR_IMAGE_GC_HIGH = 5,
    RSRE_KOVR_IMAGE_GC_LOW = 6,
};

/*
 * Applies one aggregator ThresholdOverride (ConfigUpdate.threshold_overrides) to *t: exactly
 * one of quantity and percent is non-zero (GC kinds: percent only, 0 < percent <= 100 and
 * rounded down to an integer). Marks the signal in t->overridden. Returns 0, or RSRE_EINVALID
 * and leaves *t unchanged (unknown kinds included: the proto says they are ignored).
 */
int rsre_kubelet_apply_override(struct rsre_kubelet_thresholds *t, int kind, uint64_t quantity,
                                double percent);

#endif
