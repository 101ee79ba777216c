#ifndef RSRE_KUBE_EXEC_H
#define RSRE_KUBE_EXEC_H

/*
 * Kubernetes executor: the taxonomy's Kubernetes actions, run asynchronously on the caller's
 * libuv loop through the API client of common/kube.h. Every action is a row of one static
 * table {action id, target kind, function}; adding an action is adding a row.
 *
 *   cordon_node / uncordon_node        PATCH  /api/v1/nodes/N                   spec.unschedulable
 *   drain_node                         cordon, GET /api/v1/pods?fieldSelector=spec.nodeName=N,
 *                                      POST   /api/v1/namespaces/NS/pods/P/eviction (policy/v1)
 *   rollout_restart, restart_backend,  PATCH  /apis/apps/v1/namespaces/NS/{deployments,
 *   restart_shared_dependency                 statefulsets,daemonsets}/W
 *                                      spec.template.metadata.annotations
 *                                      ["kubectl.kubernetes.io/restartedAt"] = now (RFC 3339)
 *   scale_workload_to_zero (0),        PATCH  /apis/apps/v1/namespaces/NS/{deployments,
 *   scale_dependency (N),                     statefulsets}/W/scale   {"spec":{"replicas":N}}
 *   scale_shared_controllers_down (N, never up)
 *   suspend_cronjob                    PATCH  /apis/batch/v1/namespaces/NS/cronjobs/C spec.suspend
 *   resume_workload                    a CronJob: spec.suspend=false; a Deployment or
 *                                      StatefulSet: scale back up to N (the previous count a
 *                                      scale-down reported)
 *   delete_finished_pods               GET pods?fieldSelector=status.phase=Succeeded / =Failed,
 *                                      DELETE each with a uid precondition
 *
 * Every action: reads first (the previous value goes into the result), writes once, then
 * verifies by reading again (GET and check); a deadline bounds the whole action; a dry run
 * either sends the writes with ?dryRun=All (the API server validates, admits and answers with
 * the object it would store, and stores nothing) or sends no write at all and reports what it
 * would write. An object already in the wanted state is not written (changed = 0) but is still
 * verified.
 *
 * Targets: a node name for node actions, "namespace/name" for workloads and CronJobs, a
 * namespace or "*" (every namespace) for delete_finished_pods. Names are checked as
 * Kubernetes checks them (DNS-1123 labels and subdomains) before anything is sent; anything
 * else is refused. Objects in kube-system are touched only when the target names them
 * (a "kube-system/name" workload, delete_finished_pods in "kube-system"); a drain and a
 * cluster-wide cleanup skip kube-system pods unless RSRE_KUBE_EXEC_F_SYSTEM is set.
 *
 * Drain never forces: an eviction refused with 429 (a PodDisruptionBudget would be violated)
 * is retried with exponential backoff until shortly before the deadline and the pod is then
 * reported as blocked; DaemonSet-owned pods, mirror pods, finished pods and pods already
 * terminating are skipped, and so (unless the request or configuration says otherwise) are
 * pods with emptyDir volumes (their data would be lost) and pods no controller owns (nothing
 * would recreate them), as `kubectl drain` does without its --delete-emptydir-data / --force.
 *
 * Callback rules (libuv's, as curl_uv.h): when rsre_kube_exec_run fails, its callback never
 * runs; otherwise it runs exactly once, from the loop (never from inside run), unless the
 * operation is abandoned. rsre_kube_exec_destroy runs the callback of every operation still
 * in flight with -ECANCELED before it returns.
 *
 * Threading: loop thread only.
 */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/kube.h"

#define RSRE_KUBE_EXEC_SYSTEM_NS "kube-system"
#define RSRE_KUBE_EXEC_RESTARTED_AT "kubectl.kubernetes.io/restartedAt"
#define RSRE_KUBE_EXEC_MAX_REPLICAS 100000
#define RSRE_KUBE_EXEC_TARGET_MAX (RSRE_KUBE_NS_LEN + RSRE_KUBE_NAME_LEN) /* "ns/name" + NUL */

/* ---- the action table ------------------------------------------------------------------- */

enum rsre_kube_exec_target {
    RSRE_KUBE_EXEC_TARGET_NODE = 1,  /* a node name */
    RSRE_KUBE_EXEC_TARGET_OBJECT,    /* "namespace/name" of a workload or CronJob */
    RSRE_KUBE_EXEC_TARGET_NAMESPACE, /* a namespace, or "*" for all of them */
};

/* What callers may know of a row (the function it runs stays inside kube_exec.c). */
struct rsre_kube_exec_action {
    const char *id; /* taxonomy action id */
    enum rsre_kube_exec_target target;
    const char *kinds;   /* object kinds accepted, the default first ("deployment,..."); "" */
    const char *summary; /* one line: what it writes */
};

/* The rows, in table order: i from 0 until NULL. Static storage. */
const struct rsre_kube_exec_action *rsre_kube_exec_action_at(size_t i);

/* The row of an action id, or NULL when this executor does not run it. */
const struct rsre_kube_exec_action *rsre_kube_exec_find(const char *id);

/* ---- configuration ---------------------------------------------------------------------- */

/* Request flags; the configuration's defaults are OR-ed in. */
#define RSRE_KUBE_EXEC_F_EMPTYDIR 0x1u  /* drain: also evict pods with emptyDir volumes */
#define RSRE_KUBE_EXEC_F_UNMANAGED 0x2u /* drain: also evict pods no controller owns */
#define RSRE_KUBE_EXEC_F_SYSTEM 0x4u    /* drain, cleanup of "*": include kube-system pods */

struct rsre_kube_exec_config {
    uint32_t timeout_ms;            /* an action's deadline when the request gives none */
    uint32_t call_timeout_ms;       /* one API call (never past the deadline) */
    uint32_t evict_backoff_min_ms;  /* first wait before retrying PDB-blocked evictions */
    uint32_t evict_backoff_max_ms;  /* longest wait */
    uint32_t verify_reserve_ms;     /* drain: retrying stops this long before the deadline */
    uint32_t max_pods;              /* pods one drain or cleanup handles; more are left */
    uint32_t max_list_bytes;        /* a pod list response */
    uint32_t drain_delete_emptydir; /* 1 = RSRE_KUBE_EXEC_F_EMPTYDIR by default */
    uint32_t drain_unmanaged;       /* 1 = RSRE_KUBE_EXEC_F_UNMANAGED by default */
};

/* One row per key: defaults, setting by name, bounds and --help come from it. */
struct rsre_kube_exec_config_key {
    const char *name;
    size_t offset; /* of a uint32_t in struct rsre_kube_exec_config */
    uint32_t min, max;
    const char *def;
    const char *description;
};

extern const struct rsre_kube_exec_config_key rsre_kube_exec_config_keys[];
extern const size_t rsre_kube_exec_config_nkeys;

/* Fills every key with its default. */
void rsre_kube_exec_config_defaults(struct rsre_kube_exec_config *cfg);

/* Sets one key from text. Returns 0, RSRE_ENOTFOUND (no such key), RSRE_EINVALID (not a
 * number or out of bounds), with err filled. */
int rsre_kube_exec_config_set(struct rsre_kube_exec_config *cfg, const char *key, const char *value,
                              char *err, size_t err_len);

/* ---- executor --------------------------------------------------------------------------- */

struct rsre_kube_exec;
struct rsre_kube_exec_op;

/*
 * Creates an executor that calls the API through `kube` (borrowed: it must outlive the
 * executor, or be destroyed first, which completes every call with -ECANCELED). cfg NULL =
 * defaults; it is copied and checked (RSRE_EINVALID with err filled when a value is out of
 * bounds or backoff_min > backoff_max). Returns 0, RSRE_EINVALID, -EINVAL, -ENOMEM.
 */
int rsre_kube_exec_create(struct rsre_kube *kube, const struct rsre_kube_exec_config *cfg,
                          struct rsre_kube_exec **out, char *err, size_t err_len);

/*
 * Finishes every operation in flight now (callbacks run with -ECANCELED; operations they try
 * to start fail with -ESHUTDOWN) and releases the executor. Timers are released in their
 * close callbacks, so the loop must run once more. Not from inside one of this executor's
 * callbacks. NULL is a no-op.
 */
void rsre_kube_exec_destroy(struct rsre_kube_exec *x);

enum rsre_kube_exec_dry_run {
    RSRE_KUBE_EXEC_REAL = 0,
    RSRE_KUBE_EXEC_DRY_SERVER, /* writes carry ?dryRun=All: admitted and answered, not stored */
    RSRE_KUBE_EXEC_DRY_CLIENT, /* reads only: no write is sent; reports what it would write */
};

/* One action. Strings are copied by rsre_kube_exec_run. */
struct rsre_kube_exec_request {
    const char *action; /* a row's id */
    const char *target; /* as the row's target kind says */
    /* Object kind for OBJECT targets, one of the row's kinds ("deployment", "statefulset",
     * "daemonset", "cronjob"; Kubernetes' spelling "StatefulSet" is accepted too). NULL or ""
     * = the row's default. */
    const char *kind;
    /* Replica count: required by scale_dependency and by resume_workload of a Deployment or
     * StatefulSet; optional for scale_shared_controllers_down (default 0); refused elsewhere.
     * Only read when replicas_set is non-zero (a zeroed request never means "scale to 0"). */
    int32_t replicas;
    int replicas_set;
    enum rsre_kube_exec_dry_run dry_run;
    uint32_t timeout_ms; /* the whole action; 0 = the configured timeout_ms */
    unsigned flags;      /* RSRE_KUBE_EXEC_F_* */
};

/*
 * Outcome, valid only during the callback.
 *
 * rc 0: the action's effect was written (or, in a dry run, would be: the API server's dry-run
 * answer showed it, or the reads showed what to write) and verified by reading it back.
 * Otherwise: a call's code for the step that failed (common/kube.h: RSRE_ENOTFOUND for 404,
 * -EPERM for 403, -EACCES for 401, RSRE_EINVALID for 400/422, -EIO for 5xx, transport codes),
 * or: RSRE_EINVALID (the object cannot take the action, e.g. a paused Deployment, a scale
 * subresource without spec), RSRE_EBOUNDARY (a scale-down that would scale up, a resume that
 * would scale down), -EAGAIN (drain: pods still blocked by PodDisruptionBudgets at the
 * deadline; the others were evicted and verified), -ESTALE (verification found another state
 * than the one written: someone else changed the object, or a pod still runs after its
 * eviction), -ETIMEDOUT (deadline), -ECANCELED.
 *
 * Pod lists are "namespace/name"; skipped and failed entries carry the reason after a space
 * ("ns/name DaemonSet", "ns/name: <API message>").
 */
struct rsre_kube_exec_result {
    int rc;
    int ok; /* rc == 0 */
    const char *action;
    const char *target;
    const char *kind; /* the object kind acted on: "node", "deployment", "cronjob", "pods" */
    enum rsre_kube_exec_dry_run dry_run;
    const char *step;       /* where it ended: "read", "write", "list", "evict", "delete",
                               "verify", "done" */
    const char *message;    /* readable summary */
    int verified;           /* the read-back matched: 0 in a client dry run and when it did
                               not; a drain ending -EAGAIN keeps it for what it evicted */
    uint32_t changed;       /* objects written (would be, in a dry run) == nids */
    const char *const *ids; /* objects changed: node name, "ns/name" or pods */
    size_t nids;
    const char *const *blocked; /* drain: pods PodDisruptionBudgets kept, with the PDB text */
    size_t nblocked;
    const char *const *skipped; /* drain / cleanup: pods left alone and why */
    size_t nskipped;
    const char *const *failed; /* pods whose eviction or deletion failed, with the error */
    size_t nfailed;
    /* The value the action replaced, so it can be undone: field path and JSON value
     * ("spec.replicas" "3", "spec.unschedulable" "false", "spec.suspend" "false",
     * "spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt" "null"); ""
     * when the action has none (cleanup) or the read failed. */
    const char *previous_field;
    const char *previous_value;
    int64_t previous_replicas; /* scale actions: spec.replicas before; -1 otherwise */
    long http_status;          /* of the call that failed; 0 when none */
    const char *reason;        /* its Status reason ("NotFound", "Forbidden", ...) or "" */
    unsigned evict_rounds;     /* drain: eviction passes made (1 + retries) */
    uint64_t elapsed_ms;
};

typedef void (*rsre_kube_exec_cb)(void *arg, const struct rsre_kube_exec_result *res);

/*
 * Starts an action. Validation happens here, before anything is sent: unknown action
 * (RSRE_ENOTFOUND), malformed target, kind the row does not take, replicas missing, out of
 * 0..RSRE_KUBE_EXEC_MAX_REPLICAS or given where none is taken, flags unknown (RSRE_EINVALID,
 * err says which). Also -ESHUTDOWN, -ENOMEM, or the code of the first call that could not be
 * started. On failure cb never runs. *out (optional) is valid until cb starts.
 */
int rsre_kube_exec_run(struct rsre_kube_exec *x, const struct rsre_kube_exec_request *req,
                       rsre_kube_exec_cb cb, void *arg, struct rsre_kube_exec_op **out, char *err,
                       size_t err_len);

/*
 * Stops an operation: its callback never runs (a write already sent may still take effect).
 * Safe from any callback; a no-op once the operation's own callback has started.
 */
void rsre_kube_exec_abandon(struct rsre_kube_exec_op *op);

/* Operations in flight. */
size_t rsre_kube_exec_active(const struct rsre_kube_exec *x);

/*
 * Target checks, as run uses them: a node name (DNS-1123 subdomain), "namespace/name"
 * (label / subdomain, exactly one '/'), a namespace (label) or "*". Return 0 or
 * RSRE_EINVALID; ns and name (optional, RSRE_KUBE_NS_LEN / RSRE_KUBE_NAME_LEN bytes) receive
 * the parts.
 */
int rsre_kube_exec_check_node(const char *target);
int rsre_kube_exec_check_object(const char *target, char *ns, char *name);
int rsre_kube_exec_check_namespace(const char *target);

#endif
