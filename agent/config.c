#include "agent/config.h"

#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "common/cfgtable.h"
#include "common/error.h"

#ifndef RSRE_VERSION
#define RSRE_VERSION "0.1.0"
#endif

#define S(f, d, desc) RSRE_CFG_STR_ENTRY(struct rsre_agent_config, f, d, desc)
#define U(f, d, lo, hi, desc) RSRE_CFG_U32_ENTRY(struct rsre_agent_config, f, d, lo, hi, desc)
#define B(f, d, desc) RSRE_CFG_BOOL_ENTRY(struct rsre_agent_config, f, d, desc)

static const struct rsre_cfg_entry entries[] = {
    S(node_name, "", "this node's name (env NODE_NAME from the downward API; default: hostname)"),
    S(aggregator, "robot-sre-aggregator:7443", "aggregator gRPC target (host:port or unix:PATH)"),
    S(tls_ca, "", "CA bundle for mTLS to the aggregator (empty: insecure channel)"),
    S(tls_cert, "", "client certificate for mTLS (names this node)"),
    S(tls_key, "", "client key for mTLS"),
    S(kubelet_root, "/var/lib/kubelet", "nodefs: kubelet root directory"),
    S(runtime_root, "/var/lib/containerd", "imagefs: container runtime root directory"),
    S(kubelet_config, "/var/lib/kubelet/config.yaml", "kubelet configuration file (thresholds)"),
    S(pod_log_dir, "/var/log/pods", "pod log directory (top consumers)"),
    S(cri_socket, "unix:///run/containerd/containerd.sock", "CRI endpoint of the runtime"),
    S(kmsg_path, "/dev/kmsg", "kernel log device"),
    S(proc_root, "/proc", "procfs root (pressure stall information)"),
    S(kube_api, "", "Kubernetes API base URL (empty: in-cluster service account)"),
    S(kubeconfig, "", "kubeconfig file for running outside a cluster"),
    S(spool_dir, "", "directory of the on-disk spool (empty: memory only)"),
    S(health_addr, "127.0.0.1:10258", "liveness endpoint host:port, GET /healthz (empty: off)"),
    S(log_level, "info", "debug, info, warn or error"),
    B(log_json, "false", "log JSON lines instead of logfmt"),
    B(footprint_trim, "true",
      "keep resident memory small: abseil deadlock detection and gRPC's backup poller off, "
      "start-up-only code pages released once settled, malloc_trim after collection"),
    U(filesystem_ms, "10000", 1000, 3600000, "filesystem collector interval (ms)"),
    U(image_gc_ms, "60000", 5000, 3600000, "CRI image/container collector interval (ms)"),
    U(kube_resync_ms, "300000", 10000, 3600000, "node/pod resync interval; watches run between (ms)"),
    U(psi_ms, "10000", 1000, 3600000, "pressure stall collector interval (ms)"),
    U(kmsg_ms, "5000", 1000, 3600000, "longest time a kernel event waits before batching (ms)"),
    U(du_ms, "300000", 10000, 86400000, "top disk consumer scan interval (ms)"),
    U(batch_flush_ms, "5000", 1000, 600000, "longest time a signal waits before a batch is cut (ms)"),
    U(fill_window_s, "600", 60, 86400, "sliding window of the fill-rate estimate (s)"),
    U(du_budget_ms, "50", 1, 10000, "wall-time budget of one top-consumer scan step (ms)"),
    U(du_max_entries, "2000", 10, 1000000, "directory entries one scan step may visit"),
    U(du_cache_reuse, "11", 0, 1000,
      "scans in a row an unchanged content-store blob directory is not re-read (0: always read)"),
    U(spool_memory_bytes, "1048576", 4096, 268435456, "memory spool bound (bytes)"),
    U(spool_disk_bytes, "4194304", 0, 1073741824, "on-disk spool bound (bytes)"),
    U(kmsg_rate_per_min, "10", 1, 10000, "kernel events per kind per minute before suppression"),
    U(exited_container_min_age_s, "3600", 60, 2592000, "remove_exited_containers: minimum age (s)"),
    U(image_min_age_s, "120", 0, 2592000, "prune_unused_images: minimum image age (s), kubelet's 2m"),
    U(reconnect_min_ms, "500", 10, 600000, "reconnect backoff start (ms)"),
    U(reconnect_max_ms, "30000", 100, 3600000, "reconnect backoff cap (ms)"),
    U(keepalive_ms, "30000", 1000, 3600000, "HTTP/2 keepalive ping interval (ms)"),
    RSRE_CFG_LIST_ENTRY(struct rsre_agent_config, actions_allowed, nactions_allowed,
                        "delete_finished_pods,prune_unused_images,remove_exited_containers",
                        "node-local actions this agent will run (comma-separated; re-checked on "
                        "every request)"),
};

static const struct rsre_cfg_alias aliases[] = {{"NODE_NAME", "node_name"}};

static const struct rsre_cfg_table agent_table = {
    .program = "robot-sre-agent",
    .version = RSRE_VERSION,
    .summary = "Robot SRE node agent: watches this node's disk, kernel, container runtime and pods,\n"
               "streams signals to the aggregator, and runs the node-local cleanups it asks for.",
    .env_prefix = "ROBOT_SRE_",
    .entries = entries,
    .n = sizeof(entries) / sizeof(entries[0]),
    .aliases = aliases,
    .naliases = 1,
};

void rsre_agent_config_defaults(struct rsre_agent_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    rsre_cfg_defaults(&agent_table, cfg);
    if (gethostname(cfg->node_name, sizeof(cfg->node_name) - 1) != 0 || !cfg->node_name[0]) {
        strcpy(cfg->node_name, "localhost");
    }
}

void rsre_agent_config_help(FILE *out) {
    rsre_cfg_help(&agent_table, out);
}

void rsre_agent_config_dump(const struct rsre_agent_config *cfg, FILE *out) {
    rsre_cfg_dump(&agent_table, cfg, out);
}

int rsre_agent_config_load(struct rsre_agent_config *cfg, int argc, char **argv,
                           char *const *envp, FILE *out, struct rsre_config_error *err) {
    int rc = rsre_cfg_load(&agent_table, cfg, argc, argv, envp, out, err->msg, sizeof(err->msg));
    if (rc) {
        return rc;
    }
    if (cfg->reconnect_min_ms > cfg->reconnect_max_ms) {
        snprintf(err->msg, sizeof(err->msg), "reconnect_min_ms (%u) exceeds reconnect_max_ms (%u)",
                 cfg->reconnect_min_ms, cfg->reconnect_max_ms);
        return RSRE_EINVALID;
    }
    if (!cfg->node_name[0]) {
        snprintf(err->msg, sizeof(err->msg), "node_name is empty (set NODE_NAME)");
        return RSRE_EINVALID;
    }
    return 0;
}
