#ifndef RSRE_AGENT_H
#define RSRE_AGENT_H

/*
 * robot-sre-agent core: one libuv loop owns everything. Collectors (rows of the table in
 * collectors.c) emit typed signals; the agent cuts them into SignalBatches with a sequence
 * number per boot, puts each batch in the spool, and the stream sends the spool to the
 * aggregator. Action requests from the aggregator are re-checked against the agent's own
 * allowlist and dispatched to the node-local action table (actions.c).
 *
 * Threading: every function here must be called on the loop thread.
 */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "robot_sre/agent.pb-c.h"

typedef RobotSre__Agent__V1__Signal rsre_signal;
typedef RobotSre__Agent__V1__ActionRequest rsre_action_request;
typedef RobotSre__Agent__V1__ActionResult rsre_action_result;

struct rsre_agent;
struct rsre_grpc_loop;

/* ---------------------------------------------------------------------------------------
 * Configuration (agent/config.c: one table, file then environment then flags; --help).
 * Paths default to the node's real locations; tests point them into temp dirs.
 */
#define RSRE_AGENT_MAX_PATH 512
#define RSRE_AGENT_MAX_LIST 16

struct rsre_agent_config {
    char node_name[254];             /* NODE_NAME (downward API); default: hostname */
    char aggregator[RSRE_AGENT_MAX_PATH]; /* gRPC target, e.g. "robot-sre-aggregator:7443" or "unix:/path" */
    char tls_ca[RSRE_AGENT_MAX_PATH];     /* mTLS: CA bundle; empty = insecure channel */
    char tls_cert[RSRE_AGENT_MAX_PATH];   /* mTLS: client certificate (its CN/SAN names the node) */
    char tls_key[RSRE_AGENT_MAX_PATH];    /* mTLS: client key */
    char kubelet_root[RSRE_AGENT_MAX_PATH];   /* nodefs: kubelet root dir, /var/lib/kubelet */
    char runtime_root[RSRE_AGENT_MAX_PATH];   /* imagefs: runtime root, /var/lib/containerd */
    char kubelet_config[RSRE_AGENT_MAX_PATH]; /* /var/lib/kubelet/config.yaml */
    char pod_log_dir[RSRE_AGENT_MAX_PATH];    /* /var/log/pods */
    char cri_socket[RSRE_AGENT_MAX_PATH];     /* unix:///run/containerd/containerd.sock */
    char kmsg_path[RSRE_AGENT_MAX_PATH];      /* /dev/kmsg */
    char proc_root[RSRE_AGENT_MAX_PATH];      /* /proc (PSI under proc_root/pressure) */
    char kube_api[RSRE_AGENT_MAX_PATH];       /* base URL; empty = in-cluster service account */
    char kubeconfig[RSRE_AGENT_MAX_PATH];     /* kubeconfig path for running outside a cluster */
    char spool_dir[RSRE_AGENT_MAX_PATH];      /* on-disk spool; empty = memory only */
    char health_addr[64];                     /* liveness HTTP, "127.0.0.1:10258"; empty = off */
    char log_level[16];
    int log_json;
    int footprint_trim;            /* agent/footprint.h: keep resident memory small */
    uint32_t filesystem_ms, image_gc_ms, kube_resync_ms, psi_ms, kmsg_ms, du_ms, batch_flush_ms;
    uint32_t fill_window_s;        /* sliding window for fill rate */
    uint32_t du_budget_ms;         /* time budget of one top-consumer scan */
    uint32_t du_max_entries;       /* directory entries one scan may visit */
    uint32_t du_cache_reuse;       /* scans a cached content-store directory sum is used (du.h) */
    uint32_t spool_memory_bytes;   /* memory spool bound */
    uint32_t spool_disk_bytes;     /* on-disk spool bound */
    uint32_t kmsg_rate_per_min;    /* kernel events per kind per minute before suppression */
    uint32_t exited_container_min_age_s; /* remove_exited_containers: never younger than this */
    uint32_t image_min_age_s;      /* prune_unused_images: never images younger than this */
    uint32_t reconnect_min_ms, reconnect_max_ms, keepalive_ms;
    char actions_allowed[RSRE_AGENT_MAX_LIST][48]; /* node-local actions this agent will run */
    size_t nactions_allowed;
};

/* ---------------------------------------------------------------------------------------
 * Signals. A collector builds a Signal (on its stack; pointers may point at its own memory)
 * and calls rsre_agent_emit: the signal is packed immediately, so nothing is retained.
 * observed_unix_ms is filled with "now" when left 0. Returns 0, or RSRE_ELIMIT when the
 * signal alone is larger than a batch may be (it is dropped and counted).
 */
int rsre_agent_emit(struct rsre_agent *a, const rsre_signal *s);

/* Cuts the pending signals into a batch now (also done on batch_flush_ms and size). */
void rsre_agent_flush(struct rsre_agent *a);

/* ---------------------------------------------------------------------------------------
 * Collectors: one row each. `collect` starts one collection and must call
 * rsre_collect_done(run, rc) exactly once, now or later (async I/O); the scheduler never
 * starts a collector again while its previous run is in flight (counted as an overrun).
 * A failing collector (rc < 0, or init failing) never stops the others.
 */
struct rsre_collect_run;

struct rsre_collector_desc {
    const char *name;
    /* offset of this collector's interval in struct rsre_agent_config (uint32_t ms) */
    size_t interval_offset;
    /* Returns 0 and sets *state, or a negative code: the collector is disabled and logged. */
    int (*init)(struct rsre_agent *a, void **state);
    void (*collect)(struct rsre_agent *a, void *state, struct rsre_collect_run *run);
    void (*destroy)(void *state); /* may be NULL */
    uint32_t capability;          /* RobotSre__Agent__V1__Capability announced in Hello */
};

void rsre_collect_done(struct rsre_collect_run *run, int rc);

/* Per-collector statistics (for the health endpoint and logs). */
struct rsre_collector_stats {
    const char *name;
    int enabled;
    uint64_t runs, errors, overruns;
    uint64_t last_duration_us, max_duration_us;
    int last_rc;
    int64_t last_ok_unix_ms;
};

/* ---------------------------------------------------------------------------------------
 * Node-local actions: one row each. `run` must call rsre_action_done(ctx) exactly once; it
 * fills ctx->result (status, message, bytes_freed, objects_removed, removed ids via
 * rsre_action_add_removed). Dry-run requests must not change anything: report what would be
 * removed. No shell command is ever run.
 */
struct rsre_action_ctx {
    struct rsre_agent *agent;
    const rsre_action_request *req; /* valid until rsre_action_done */
    rsre_action_result result;      /* filled by the action */
    char message[512];
    char **removed;                 /* managed by rsre_action_add_removed */
    size_t nremoved;
    void *_priv;
};

struct rsre_action_desc {
    const char *id; /* the catalogue's action id, e.g. "prune_unused_images" */
    void (*run)(struct rsre_action_ctx *ctx);
};

/* Records one removed object id (copied); at most 1024 are kept, then `truncated` is set. */
void rsre_action_add_removed(struct rsre_action_ctx *ctx, const char *id);
/* Sets status and a formatted message. */
void rsre_action_set(struct rsre_action_ctx *ctx, RobotSre__Agent__V1__ActionStatus status,
                     const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rsre_action_done(struct rsre_action_ctx *ctx);

/* ---------------------------------------------------------------------------------------
 * Shared services an agent offers its modules (NULL when not configured).
 */
uv_loop_t *rsre_agent_loop(struct rsre_agent *a);
const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a);
struct rsre_grpc_loop *rsre_agent_grpc(struct rsre_agent *a);
struct rsre_cri *rsre_agent_cri(struct rsre_agent *a);   /* agent/cri.h */
struct rsre_kube *rsre_agent_kube(struct rsre_agent *a); /* common/kube.h */
const char *rsre_agent_boot_id(struct rsre_agent *a);
int64_t rsre_now_unix_ms(void);

#endif
