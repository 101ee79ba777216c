#ifndef RSRE_FS_PREDICT_H
#define RSRE_FS_PREDICT_H

/*
 * Filesystem usage arithmetic for the filesystem collector (col_fs.c), all pure functions with
 * explicit time input so tests can feed synthetic or real statvfs readings:
 *
 *   - rsre_fs_usage_from_statvfs: statvfs -> bytes/inodes as kubelet counts them;
 *   - a sliding-window fill-rate estimator: a ring of (t, used bytes, used inodes) samples
 *     covering the last window_s seconds, least-squares slope over the ring;
 *   - rsre_fs_evaluate: thresholds (agent/kubelet_config.h) + usage + rate -> the predicted
 *     seconds until available bytes cross the eviction threshold, until image GC triggers, and
 *     until free inodes cross theirs;
 *   - rsre_fs_build_signal: the FilesystemUsage Signal, filled as agent.proto documents it;
 *   - rsre_fs_mountinfo_find: mount point and backing device of a path from mountinfo text.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

#include "agent/kubelet_config.h"
#include "robot_sre/agent.pb-c.h"

/* ---- usage ---------------------------------------------------------------------------------- */

struct rsre_fs_usage {
    uint64_t bytes_total;  /* f_blocks * f_frsize */
    uint64_t bytes_free;   /* f_bfree * f_frsize */
    uint64_t bytes_avail;  /* f_bavail * f_frsize: kubelet's "available" */
    uint64_t inodes_total; /* f_files */
    uint64_t inodes_free;  /* f_ffree: kubelet's "inodesFree" */
};

/* Converts a statvfs result (saturating multiplications; keeps avail <= free <= total). */
void rsre_fs_usage_from_statvfs(const struct statvfs *st, struct rsre_fs_usage *out);

/* ---- fill-rate estimator -------------------------------------------------------------------- */

#define RSRE_FS_MAX_SAMPLES 512

/* ETAs beyond this are reported as "not filling" (-1): a year out is noise, not a forecast. */
#define RSRE_FS_MAX_ETA_S (366 * 24 * 3600)

struct rsre_fs_sample {
    int64_t t_ms;         /* caller's clock, milliseconds (monotonic in the collector) */
    uint64_t used_bytes;  /* bytes_total - bytes_free */
    uint64_t used_inodes; /* inodes_total - inodes_free */
};

/*
 * Embeddable; fields starting with '_' are private. The ring keeps at most
 * RSRE_FS_MAX_SAMPLES samples; when full the oldest is dropped, which only shortens the span.
 */
struct rsre_fs_predict {
    uint32_t window_s;
    uint64_t _bytes_total, _inodes_total; /* capacity the samples were taken against */
    size_t _head, _n;                     /* oldest sample index, sample count */
    struct rsre_fs_sample _ring[RSRE_FS_MAX_SAMPLES];
};

/* Empties the estimator and sets its window (seconds, at least 1). */
void rsre_fs_predict_init(struct rsre_fs_predict *p, uint32_t window_s);

/*
 * Adds one reading taken at t_ms. Samples older than t_ms - window_s*1000 are dropped. A
 * reading whose time is before the newest sample (clock stepped back) or whose capacity
 * differs from the previous samples' (resized or remounted filesystem) restarts the window;
 * a reading at the same time as the newest sample replaces it.
 */
void rsre_fs_predict_add(struct rsre_fs_predict *p, int64_t t_ms, const struct rsre_fs_usage *u);

/* Number of samples held. */
size_t rsre_fs_predict_count(const struct rsre_fs_predict *p);

/*
 * Least-squares slopes over the samples held: used bytes per second and used inodes per
 * second (positive = filling) and the span they cover in whole seconds (rounded down). Returns
 * 0, or RSRE_ENOTFOUND (rates and span 0) with fewer than two samples or a zero span.
 */
int rsre_fs_predict_rates(const struct rsre_fs_predict *p, double *bytes_per_s,
                          double *inodes_per_s, uint32_t *span_s);

/*
 * Seconds until `value`, falling at `rate_down` units per second, is at or below `floor`:
 * 0 when it already is, -1 when rate_down <= 0 or the result would exceed RSRE_FS_MAX_ETA_S,
 * otherwise ceil((value - floor) / rate_down) (exact values are not pushed up by rounding
 * noise).
 */
int64_t rsre_fs_seconds_to(uint64_t value, uint64_t floor, double rate_down);

/* ---- evaluation ----------------------------------------------------------------------------- */

/* Values of RobotSre__Agent__V1__FilesystemRole. */
enum rsre_fs_role { RSRE_FS_NODEFS = 1, RSRE_FS_IMAGEFS = 2 };

struct rsre_fs_eval {
    enum rsre_fs_role role;
    struct rsre_fs_usage usage;
    struct rsre_kubelet_threshold evict_avail;  /* <fs>.available */
    struct rsre_kubelet_threshold evict_inodes; /* <fs>.inodesFree */
    uint64_t evict_avail_effective;             /* bytes; 0 = none */
    uint64_t evict_inodes_effective;            /* inodes; 0 = none */
    int gc_applies;                             /* image GC acts on this filesystem */
    int gc_high_percent, gc_low_percent;        /* 0/0 when !gc_applies */
    uint64_t gc_trigger_avail;                  /* GC runs when avail < this; 0 = never */
    enum rsre_kubelet_source source;
    double fill_rate_bytes_per_sec; /* 0 without a rate */
    double inode_rate_per_sec;
    uint32_t fill_window_sec; /* 0 = not enough samples */
    int64_t seconds_to_eviction, seconds_to_gc_high, seconds_to_inode_eviction;
};

/*
 * Computes everything a FilesystemUsage reports for `role`. The nodefs role uses the
 * nodefs.* thresholds, imagefs the imagefs.* ones. `gc_applies`: image GC acts on this
 * filesystem (always for imagefs; for nodefs only when it is also the imagefs). `p` may be
 * NULL (no rate: every ETA is -1 unless already past, then 0). The source is t->source, or
 * RSRE_KSRC_OVERRIDE when an aggregator override touched one of the thresholds reported.
 */
void rsre_fs_evaluate(enum rsre_fs_role role, const struct rsre_fs_usage *u,
                      const struct rsre_kubelet_thresholds *t, int gc_applies,
                      const struct rsre_fs_predict *p, struct rsre_fs_eval *out);

/* Storage for one FilesystemUsage Signal; the Signal points into it. */
struct rsre_fs_signal {
    RobotSre__Agent__V1__Signal sig;
    RobotSre__Agent__V1__FilesystemUsage fs;
    RobotSre__Agent__V1__EvictionThreshold avail, inodes;
    char path[4096];
    char device[1024];
};

/*
 * Fills *out from *e: `path` is the mount point (empty: "/"), `device` the backing device
 * (may be NULL or ""); both are copied (truncated to the proto bounds, control characters
 * replaced by '?'). observed_unix_ms 0 lets rsre_agent_emit stamp the time. Returns &out->sig.
 */
RobotSre__Agent__V1__Signal *rsre_fs_build_signal(const struct rsre_fs_eval *e, const char *path,
                                                  const char *device, int64_t observed_unix_ms,
                                                  struct rsre_fs_signal *out);

/* ---- mountinfo ------------------------------------------------------------------------------ */

/*
 * Finds, in /proc/<pid>/mountinfo text, the mount of device major:minor that contains `path`
 * (longest mount point that is a path prefix of `path`; if none is, the first mount of that
 * device). Copies the unescaped mount point and the mount source (only when it is an absolute
 * path such as /dev/sda1; otherwise "") into the buffers (truncated, NUL-terminated). Returns
 * 0, or RSRE_ENOTFOUND (buffers set to "").
 */
int rsre_fs_mountinfo_find(const char *text, size_t len, unsigned major, unsigned minor,
                           const char *path, char *mnt, size_t mnt_len, char *dev, size_t dev_len);

/* ---- the filesystem collector (col_fs.c) ----------------------------------------------------
 *
 * One row, rsre_collector_filesystem (interval filesystem_ms, capability FILESYSTEM): statvfs
 * of kubelet_root (nodefs) and runtime_root (imagefs) each run, the kubelet config re-read when
 * its identity (inode, size, mtime, ctime) changes, one FilesystemUsage per filesystem. When
 * both are on the same device both signals are still sent (same path/device, as agent.proto
 * says) and image GC thresholds apply to the nodefs signal too.
 *
 * The collector's state lives in a static pointer set by its init and cleared by its destroy:
 * one filesystem collector per process. The accessors below take the agent for a future
 * per-agent lookup; today they read that pointer and must be called on the loop thread.
 */
struct rsre_agent;
struct rsre_collector_desc;
extern const struct rsre_collector_desc rsre_collector_filesystem;

/* Current imagefs image-GC high/low percents (kubelet config, defaults, or an override); the
 * kubelet defaults 85/80 when the collector is not running. */
void rsre_fs_gc_thresholds(struct rsre_agent *a, double *high, double *low);

/* The last imagefs reading and what applies to it, for the image GC collector. */
struct rsre_fs_view {
    int valid;              /* 0 until the first successful statvfs of imagefs */
    int shared_with_nodefs; /* imagefs and nodefs are the same device */
    struct rsre_fs_usage usage;
    int gc_high_percent, gc_low_percent;
    uint32_t gc_min_age_s;     /* imageMinimumGCAge */
    uint64_t gc_trigger_avail; /* GC runs when avail < this; 0 = GC disabled */
    enum rsre_kubelet_source source;
    int64_t observed_unix_ms;
};

/* Copies the view into *out; returns 0, or RSRE_ENOTFOUND when no reading exists yet (out is
 * then filled with valid = 0 and the current thresholds). */
int rsre_fs_imagefs(struct rsre_agent *a, struct rsre_fs_view *out);

/*
 * Replaces the aggregator's threshold overrides (ConfigUpdate.threshold_overrides is a full
 * snapshot; n = 0 clears them). They apply on top of the kubelet thresholds from the next
 * collection on, and the signals they touch report THRESHOLD_SOURCE_OVERRIDE. Invalid entries
 * (unknown kind, quantity for a GC kind, both or neither form) are skipped and logged. Returns
 * the number applied, or RSRE_ENOTFOUND when the collector is not running (nothing kept).
 */
int rsre_fs_set_overrides(struct rsre_agent *a, RobotSre__Agent__V1__ThresholdOverride *const *ov,
                          size_t n);

#endif
