#ifndef RSRE_OBSERVE_H
#define RSRE_OBSERVE_H

/*
 * The aggregator's Kubernetes observers: informers (common/kube.h: list + watch with
 * resourceVersion, bookmarks, re-list on 410 Gone, backoff) over nodes, pods, events,
 * deployments, statefulsets, daemonsets, replicasets, jobs, cronjobs, ingresses, services,
 * serviceaccounts, image pull secrets and Helm release Secrets (type helm.sh/release.v1), and
 * the aggregates computed from them, named after the taxonomy's signal catalogue
 * (aggregator/engine/taxonomy.yaml `signals:`), one set per scope:
 *
 *   workload/<ns>/<name>  pull.failing_workloads, pull.failing_core_workloads   (observer:pods)
 *       1 when a pod of the workload (ReplicaSet -> Deployment, Job -> CronJob through
 *       ownerReferences) has a container waiting in ErrImagePull / ImagePullBackOff /
 *       InvalidImageName; detail: reason, image, kubelet's message, missing pull secrets.
 *   release/<ns>/<name>   release.drifted, release.rollout_blocked, release.unhealthy_workloads
 *       (observer:helm) from the latest revision's Secret: status failed / pending-*, images
 *       the manifest asks for versus the live workloads' templates, workloads missing,
 *       rollouts not progressing (ProgressDeadlineExceeded, or lagging longer than
 *       rollout_stuck_ms); detail names the status and each differing image.
 *   cluster               jobs.finished_pods, jobs.apiserver_churn                (observer:jobs)
 *   ingress/<ns>/<name>   ingress.failing_routes: backends naming a Service that does not
 *                         exist                                              (observer:ingresses)
 *   node/<name>           events.evictions_last_10m, events.eviction_threshold_met,
 *                         events.free_disk_space_failed (Event series seen within
 *                         event_window_ms); detail also counts FailedMount, ImageGCFailed
 *                                                                               (observer:events)
 *
 * Nothing is computed before every informer has applied its first list (or sync_grace_ms
 * passed), so no aggregate is built from half the cluster. Aggregates are recomputed only
 * after a change (debounced by settle_ms) and on a slow tick
 * for the time windows; `emit` receives only the scopes whose values or detail changed, and a
 * scope that no longer has anything to report is emitted once more with zero values, then
 * forgotten.
 *
 * Bounds: every informer caches at most max_objects objects (a larger list fails and is
 * retried with backoff), Helm releases decompress to at most max_release_json bytes each and
 * at most max_helm_secrets are cached, at most max_scopes aggregates exist (more are dropped
 * and counted), details are at most RSRE_OBSERVE_DETAIL_LEN bytes.
 *
 * Threading: everything runs on the loop of the rsre_kube client.
 */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/kube.h"

#define RSRE_OBSERVE_DETAIL_LEN 512
#define RSRE_OBSERVE_SCOPE_LEN 384
#define RSRE_OBSERVE_MAX_VALUES 4

struct rsre_observe;

struct rsre_observe_config {
    const char *core_namespaces; /* comma-separated namespaces whose workloads are core */
    const char *core_label;      /* "key=value" on a workload or pod marking it core; NULL */
    uint32_t settle_ms;          /* debounce after a change; 0 = 200 */
    uint32_t tick_ms;            /* recompute time windows; 0 = 30000 */
    uint32_t rollout_stuck_ms;   /* a rollout lagging this long is blocked; 0 = 600000 */
    uint32_t event_window_ms;    /* events counted within; 0 = 600000 */
    uint32_t churn_window_ms;    /* job creations + deletions counted within; 0 = 600000 */
    uint32_t churn_allowance;    /* job creations + deletions per window that are normal; 0 = 200 */
    size_t max_objects;          /* per informer; 0 = 10000 */
    size_t max_helm_secrets;     /* 0 = 2000 */
    size_t max_scopes;           /* 0 = 4096 */
    uint32_t backoff_min_ms, backoff_max_ms; /* informer backoff; 0 = kube.h defaults */
    uint32_t watch_timeout_s;                /* 0 = kube.h default */
    uint32_t retry_ms;                       /* after a refused emission; 0 = 5000 */
    uint32_t sync_grace_ms; /* nothing is computed until every informer has listed once, or
                               this long after create (a forbidden collection); 0 = 30000 */
};

struct rsre_observe_value {
    const char *signal;
    double value;
};

/* One scope's aggregate; borrowed for the duration of the emit callback. */
struct rsre_observe_aggregate {
    const char *scope;  /* "workload/prod/api", "release/prod/api", "cluster", ... */
    const char *source; /* "observer:pods", "observer:helm", ... */
    const char *detail; /* evidence text ("" when none) */
    const struct rsre_observe_value *values;
    size_t nvalues;
};

/* Changed aggregates after one recomputation (n >= 1). Returns 0 when they were taken; non-zero
 * (e.g. a failed store transaction) makes the observers keep what they had emitted before and
 * try again after retry_ms, so the consumer never misses a change (or a scope's zeroing). */
typedef int (*rsre_observe_emit_fn)(void *arg, const struct rsre_observe_aggregate *aggs, size_t n);

/* The informers, one row each (rsre_observe_counts). */
enum rsre_observe_kind {
    RSRE_OBS_NODES = 0,
    RSRE_OBS_PODS,
    RSRE_OBS_EVENTS,
    RSRE_OBS_DEPLOYMENTS,
    RSRE_OBS_STATEFULSETS,
    RSRE_OBS_DAEMONSETS,
    RSRE_OBS_REPLICASETS,
    RSRE_OBS_JOBS,
    RSRE_OBS_CRONJOBS,
    RSRE_OBS_INGRESSES,
    RSRE_OBS_SERVICES,
    RSRE_OBS_SERVICEACCOUNTS,
    RSRE_OBS_PULL_SECRETS,     /* type kubernetes.io/dockerconfigjson */
    RSRE_OBS_PULL_SECRETS_OLD, /* type kubernetes.io/dockercfg */
    RSRE_OBS_HELM_RELEASES,    /* type helm.sh/release.v1 */
    RSRE_OBS_NKINDS
};

const char *rsre_observe_kind_name(enum rsre_observe_kind k); /* "pods", "helm_releases", ... */

/*
 * Starts every informer on `kube` (borrowed; must outlive the observers). `cfg` may be NULL
 * (defaults); strings are copied. Returns 0, -EINVAL, -ENOMEM (nothing started then).
 */
int rsre_observe_create(struct rsre_kube *kube, const struct rsre_observe_config *cfg,
                        rsre_observe_emit_fn emit, void *arg, struct rsre_observe **out);

/*
 * Called on the loop when a node's conditions, taints or unschedulable flag changed (heartbeats
 * and resourceVersion-only updates are not changes), and when it is first listed. `n` is
 * borrowed for the call. The daemon turns it into the engine's external NodeConditions signal
 * (rsre_incident_engine_apply_external). NULL fn: none.
 */
typedef void (*rsre_observe_node_fn)(void *arg, const struct rsre_kube_node *n);
void rsre_observe_set_node_hook(struct rsre_observe *o, rsre_observe_node_fn fn, void *arg);

/* Stops the informers and timers; no callback runs afterwards; memory is released once the
 * loop has closed the handles (run the loop). NULL is a no-op. */
void rsre_observe_destroy(struct rsre_observe *o);

/* Per informer: objects the observer counts from the change stream (ADDED +1, DELETED -1),
 * the informer's cache size, and totals. `live` equals `cached` unless a change was missed or
 * double-counted. */
struct rsre_observe_counts {
    int64_t live;
    size_t cached;
    uint64_t added, modified, deleted;
    int synced;
    struct rsre_kube_informer_stats stats;
};
void rsre_observe_counts(const struct rsre_observe *o, enum rsre_observe_kind k,
                         struct rsre_observe_counts *out);

/* 1 when every informer has applied its first list. */
int rsre_observe_synced(const struct rsre_observe *o);

/* The current value of `signal` at `scope`; RSRE_ENOTFOUND when that scope has none. */
int rsre_observe_get(const struct rsre_observe *o, const char *scope, const char *signal,
                     double *value);
/* The current detail of `scope` (borrowed until the next recomputation), or NULL. */
const char *rsre_observe_detail(const struct rsre_observe *o, const char *scope);

/* Recomputes now (what the settle timer does); emits the changes. */
void rsre_observe_recompute(struct rsre_observe *o);

struct rsre_observe_stats {
    uint64_t recomputes, emitted, emit_refused, scopes_dropped;
    size_t scopes;
};
void rsre_observe_stats(const struct rsre_observe *o, struct rsre_observe_stats *out);

#endif
