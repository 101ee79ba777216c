#ifndef RSRE_DAEMON_H
#define RSRE_DAEMON_H

/*
 * robot-sre-aggregator: wires ingest (agent streams) → incident engine (signals, incidents,
 * plans) → executors (node-local actions through the agent stream; Kubernetes and OCI
 * executors where configured), on one libuv loop that owns all state. Every state change is
 * committed to LMDB before it is acknowledged or acted on.
 */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rsre_aggregator_config {
    char listen[128];                     /* gRPC listen address for agents */
    char tls_ca[512], tls_cert[512], tls_key[512];
    char data_dir[512];                   /* LMDB store directory */
    char env[16];                         /* demo | staging | production */
    char cluster[64];
    char rules_dir[512];                  /* operator rules (*.yaml), optional */
    char log_level[16];
    int log_json;
    int dry_run;                          /* every action is a dry run */
    uint32_t tick_ms, agent_silence_ms, action_deadline_ms, approval_ttl_ms;
    uint32_t rate_per_sec, rate_burst, max_connections;
    uint32_t group_commit_ms, group_commit_max; /* ingest group commit */
    char node_actions[8][48];             /* node-local actions agents may run (ConfigUpdate) */
    char kube_api[512];                   /* Kubernetes API base URL (empty: in-cluster) */
    char api_listen[128];                 /* admin API address */
    char api_tokens_file[512];            /* admin API bearer tokens (hashed); empty: API off */
    char api_tls_cert[512], api_tls_key[512];
    char operators_file[512];             /* operator identities and roles (approvals) */
    char notify_file[512];                /* notification routing and chat channels */
    char probes_file[512];                /* dependency probes (docs/probes.md); "" = none */
    char kubeconfig[512];                 /* kubeconfig for running outside a cluster */
    int observe;                          /* Kubernetes observers (docs/observers.md) */
    int observe_nodes;                    /* node conditions from the API server -> engine */
    char observe_core_namespaces[512];    /* comma-separated namespaces of core workloads */
    char observe_core_label[384];         /* "key=value" marking core workloads */
    size_t nnode_actions;
    /* OCI executor (reboot_worker, replace_worker; docs/oci.md); empty oci_tenancy: off */
    char oci_tenancy[128], oci_user[128], oci_fingerprint[64], oci_key_file[256];
    char oci_region[64], oci_compute_url[256], oci_containerengine_url[256];
    char oci_node_pool_id[128], oci_ca_file[256];
    char oci_options[8][64]; /* further OCI keys as key=value (timeouts, polling) */
    size_t noci_options;
    uint32_t reboot_verify_ms; /* a reboot_worker must show the node's new boot id within */
};

struct rsre_aggregator;

void rsre_aggregator_config_defaults(struct rsre_aggregator_config *cfg);
/* 0, 1 (help/version/print-config handled), or an error with err filled. */
int rsre_aggregator_config_load(struct rsre_aggregator_config *cfg, int argc, char **argv,
                                char *err, size_t errlen);

int rsre_aggregator_create(uv_loop_t *loop, const struct rsre_aggregator_config *cfg,
                           struct rsre_aggregator **out);
/* The gRPC port actually bound (after create). */
int rsre_aggregator_port(const struct rsre_aggregator *ag);
/* Stops everything; `closed(arg)` runs when all handles are closed and memory released. */
void rsre_aggregator_close(struct rsre_aggregator *ag, void (*closed)(void *), void *arg);

#endif
