#ifndef RSRE_DU_H
#define RSRE_DU_H

/*
 * Top disk consumers under a strict time and I/O budget: an incremental walker that measures
 *
 *   - pod logs:       <pod_log_dir>/<namespace>_<pod>_<uid>/           one consumer per pod
 *   - emptyDir:       <kubelet_root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<volume>/
 *                                                                      one per volume
 *   - content store:  <runtime_root>/io.containerd.content.v1.content/ one consumer
 *
 * like `du -x`: allocated blocks (st_blocks * 512) of every non-directory entry, symlinks not
 * followed, other filesystems not entered (a tmpfs emptyDir counts nothing: it is memory, not
 * disk), directories themselves included.
 *
 * The walk keeps an explicit queue of directories (no recursion, bounded depth and length) and
 * one open directory between steps. A step visits at most `max_entries` directory entries
 * (and finishes at most `max_entries` directories) and stops once `budget_ms` of wall time is
 * spent (checked after every entry and every finished directory, so every step makes progress
 * even with budget 0); the next step resumes exactly where it stopped.
 * When the queue empties the scan is complete: its consumers, sorted by bytes, become the
 * result that rsre_du_results returns until the next scan completes, and the next step starts
 * a new scan. Consumers found in an unfinished scan are never reported.
 *
 * Cache (off unless rsre_du_set_cache is called; the collector turns it on): the containerd
 * content store holds one file per blob, named by its digest, in blobs/<algorithm>/; containerd
 * writes a blob under ingest/ and renames it there, and never rewrites it in place. Such a
 * directory is read once and the sum of its entries (bytes, files) is kept, keyed by its device
 * and inode, mtime and ctime (nanoseconds): any blob added, removed or renamed changes mtime and
 * ctime, and the directory is read again. The sums are stored only when the directory did not
 * change while being read and its timestamps are at least RSRE_DU_CACHE_RACY_S older than the
 * time it was opened (a change within the same timestamp tick could otherwise go unseen), and are
 * used for at most `max_reuse` scans in a row: a blob changed in place (which containerd never
 * does) is seen within max_reuse + 1 scans. Nothing else is cached: pod logs and emptyDir files
 * grow in place, so they are stat'ed every scan.
 *
 * Not thread-safe; one walker per owner. Uses openat/fdopendir/fstatat only.
 */

#include <stddef.h>
#include <stdint.h>

#define RSRE_DU_MAX_PATH 4096
#define RSRE_DU_MAX_DEPTH 64        /* directories deeper than this are not entered */
#define RSRE_DU_MAX_QUEUE 65536     /* pending directories; beyond, subtrees are skipped */
#define RSRE_DU_MAX_CONSUMERS 16384 /* consumers per scan; beyond, they are not tracked */
#define RSRE_DU_MAX_CACHED 64       /* cached directories (blob directories: one per algorithm) */
#define RSRE_DU_CACHE_RACY_S 2      /* a directory changed this recently is not cached */

enum rsre_du_kind { RSRE_DU_POD_LOGS = 1, RSRE_DU_EMPTY_DIR = 2, RSRE_DU_CONTENT_STORE = 3 };

/* Name of a kind: "pod_logs", "empty_dir", "content_store". */
const char *rsre_du_kind_name(enum rsre_du_kind k);

struct rsre_du_consumer {
    enum rsre_du_kind kind;
    char path[RSRE_DU_MAX_PATH]; /* the consumer's directory */
    uint64_t bytes;              /* allocated bytes under it */
    uint64_t files;              /* non-directory entries under it */
};

struct rsre_du_step_stats {
    uint32_t entries; /* directory entries visited in this step */
    uint32_t elapsed_ms;
    int scan_complete; /* this step finished a scan */
};

/* Totals of the last completed scan (and of the one in progress). */
struct rsre_du_scan_stats {
    uint64_t scans_completed;
    uint64_t entries;           /* entries visited by the last completed scan */
    uint64_t steps;             /* steps it took */
    uint64_t errors;            /* entries or directories that could not be read */
    uint64_t skipped;           /* subtrees skipped: depth, queue, other filesystem, path length */
    uint64_t consumers;         /* consumers it found */
    uint64_t dropped_consumers; /* consumers beyond RSRE_DU_MAX_CONSUMERS */
    int64_t completed_unix_ms;  /* wall time the last scan completed; 0 = none yet */
    uint64_t cached_dirs;       /* directories whose cached sums were used (not read) */
    uint64_t cached_entries;    /* entries those sums stand for (not in `entries`) */
};

struct rsre_du;

/*
 * Creates a walker over the three roots (each may be NULL or "" to skip it; a root that does
 * not exist is skipped at scan time). `top_n` (>= 1) bounds the results kept per completed
 * scan. The paths are copied. Returns 0, -EINVAL or -ENOMEM.
 */
int rsre_du_create(const char *pod_log_dir, const char *kubelet_root, const char *runtime_root,
                   size_t top_n, struct rsre_du **out);
/* Closes the open directory and frees everything. NULL is a no-op. */
void rsre_du_destroy(struct rsre_du *du);

/* Turns the cache of immutable directories on (max_reuse >= 1: scans a cached sum may be used
 * in a row before the directory is read again) or off and empty (0). */
void rsre_du_set_cache(struct rsre_du *du, uint32_t max_reuse);

/*
 * Runs one bounded step (see above). Returns 1 when the step completed a scan, 0 when work
 * remains, a negative errno only for -ENOMEM (unreadable entries are counted, not errors).
 */
int rsre_du_step(struct rsre_du *du, uint32_t max_entries, uint32_t budget_ms,
                 struct rsre_du_step_stats *st);

/*
 * Copies up to `max` consumers of the last completed scan, largest first (ties by path), into
 * out[] and returns how many were copied (0 before the first scan completes). `stats` may be
 * NULL. The data is a copy: valid after later steps.
 */
size_t rsre_du_results(const struct rsre_du *du, struct rsre_du_consumer *out, size_t max,
                       struct rsre_du_scan_stats *stats);

/* ---- the collector (col_du.c) ----------------------------------------------------------------
 *
 * rsre_collector_du: every du_ms one step (du_max_entries, du_budget_ms) over pod_log_dir,
 * kubelet_root and runtime_root, with the cache on (du_cache_reuse scans; 0 = off); when a scan completes the top consumers are logged. The proto
 * has no top-consumers signal yet, so nothing is emitted: the results are read through
 * rsre_du_top (for the health endpoint). Its state is a static pointer set by init (one per
 * process); call on the loop thread.
 */
struct rsre_agent;
struct rsre_collector_desc;
extern const struct rsre_collector_desc rsre_collector_du;

/* Top consumers of the last completed scan, as rsre_du_results; 0 when the collector is not
 * running or no scan has completed. */
size_t rsre_du_top(struct rsre_agent *a, struct rsre_du_consumer *out, size_t max,
                   struct rsre_du_scan_stats *stats);

/* How many consumers the collector keeps and logs per scan. */
#define RSRE_DU_TOP_N 20

#endif
