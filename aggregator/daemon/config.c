/* The aggregator's configuration table (common/cfgtable.h). */
#include <stdio.h>
#include <string.h>

#include "common/cfgtable.h"
#include "common/error.h"
#include "daemon/daemon.h"
#include "engine/taxonomy.h"

#ifndef RSRE_VERSION
#define RSRE_VERSION "0.1.0"
#endif

#define T struct rsre_aggregator_config
static const struct rsre_cfg_entry entries[] = {
    RSRE_CFG_STR_ENTRY(T, listen, "0.0.0.0:7443", "gRPC listen address for agents"),
    RSRE_CFG_STR_ENTRY(T, tls_ca, "", "CA of agent client certificates (mTLS: each names its node)"),
    RSRE_CFG_STR_ENTRY(T, tls_cert, "", "server certificate (empty: insecure)"),
    RSRE_CFG_STR_ENTRY(T, tls_key, "", "server key"),
    RSRE_CFG_STR_ENTRY(T, data_dir, "/var/lib/robot-sre", "LMDB store directory"),
    RSRE_CFG_STR_ENTRY(T, env, "staging", "environment mode: demo, staging or production"),
    RSRE_CFG_STR_ENTRY(T, cluster, "", "cluster name recorded on incidents"),
    RSRE_CFG_STR_ENTRY(T, rules_dir, "", "directory of operator rule files (*.yaml)"),
    RSRE_CFG_STR_ENTRY(T, log_level, "info", "debug, info, warn or error"),
    RSRE_CFG_BOOL_ENTRY(T, log_json, "false", "log JSON lines instead of logfmt"),
    RSRE_CFG_BOOL_ENTRY(T, dry_run, "false", "run every action as a dry run"),
    RSRE_CFG_U32_ENTRY(T, tick_ms, "60000", 1000, 3600000, "observation tick (ms)"),
    RSRE_CFG_U32_ENTRY(T, agent_silence_ms, "180000", 10000, 86400000,
                       "an agent silent this long is evidence of an unreachable node (ms)"),
    RSRE_CFG_U32_ENTRY(T, action_deadline_ms, "120000", 1000, 3600000,
                       "deadline of a node-local action (ms)"),
    RSRE_CFG_U32_ENTRY(T, approval_ttl_ms, "600000", 60000, 86400000,
                       "approval requests expire after this (ms)"),
    RSRE_CFG_U32_ENTRY(T, rate_per_sec, "50", 1, 100000, "messages per second per agent"),
    RSRE_CFG_U32_ENTRY(T, rate_burst, "200", 1, 1000000, "burst of messages per agent"),
    RSRE_CFG_U32_ENTRY(T, max_connections, "4096", 1, 100000, "concurrent agent streams"),
    RSRE_CFG_U32_ENTRY(T, group_commit_ms, "20", 1, 1000,
                       "agent messages are committed (then acknowledged) together within this "
                       "many ms of the first"),
    RSRE_CFG_U32_ENTRY(T, group_commit_max, "64", 1, 4096,
                       "commit a group as soon as this many agent messages are waiting"),
    RSRE_CFG_STR_ENTRY(T, kube_api, "", "Kubernetes API base URL (empty: in-cluster service account)"),
    RSRE_CFG_STR_ENTRY(T, kubeconfig, "", "kubeconfig for running outside a cluster"),
    RSRE_CFG_BOOL_ENTRY(T, observe, "true",
                        "watch the cluster (pods, workloads, Helm releases, jobs, ingresses, "
                        "events) and feed the aggregates to the incident engine"),
    RSRE_CFG_STR_ENTRY(T, observe_core_namespaces, "kube-system",
                       "comma-separated namespaces whose workloads are core (critical pull "
                       "failures)"),
    RSRE_CFG_STR_ENTRY(T, observe_core_label, "robot-sre.io/core=true",
                       "label key=value marking a workload or pod as core"),
    RSRE_CFG_BOOL_ENTRY(T, observe_nodes, "false",
                        "send the API server's node conditions to the engine (also for nodes "
                        "whose agent is not connected; their node-local actions then fail and "
                        "escalate)"),
    RSRE_CFG_STR_ENTRY(T, api_listen, "127.0.0.1:8080", "admin API (HTTP) listen address"),
    RSRE_CFG_STR_ENTRY(T, api_tokens_file, "", "admin API token file (docs/api.md); empty: no API"),
    RSRE_CFG_STR_ENTRY(T, api_tls_cert, "", "admin API TLS certificate (empty: plain HTTP)"),
    RSRE_CFG_STR_ENTRY(T, api_tls_key, "", "admin API TLS key"),
    RSRE_CFG_STR_ENTRY(T, notify_file, "", "notification routing and chat channels "
                                           "(docs/chatops.md); empty: in-app only"),
    RSRE_CFG_STR_ENTRY(T, probes_file, "", "dependency probes: Redis, NATS, MinIO, registry, LDAP, "
                                           "PostgreSQL, HTTP, TLS, DNS, 5xx ratio "
                                           "(docs/probes.md); empty: none"),
    RSRE_CFG_STR_ENTRY(T, operators_file, "", "operators and their roles (docs/approvals.md); "
                                              "empty: nobody can approve"),
    RSRE_CFG_STR_ENTRY(T, oci_tenancy, "", "OCI tenancy OCID (empty: no OCI executor; docs/oci.md)"),
    RSRE_CFG_STR_ENTRY(T, oci_user, "", "OCI user OCID of the API signing key"),
    RSRE_CFG_STR_ENTRY(T, oci_fingerprint, "", "fingerprint of the OCI API signing key"),
    RSRE_CFG_STR_ENTRY(T, oci_key_file, "", "PEM file of the OCI API signing key (private)"),
    RSRE_CFG_STR_ENTRY(T, oci_region, "", "OCI region, e.g. us-ashburn-1"),
    RSRE_CFG_STR_ENTRY(T, oci_compute_url, "", "OCI compute API base URL (empty: from region)"),
    RSRE_CFG_STR_ENTRY(T, oci_containerengine_url, "",
                       "OCI Container Engine API base URL (empty: from region)"),
    RSRE_CFG_STR_ENTRY(T, oci_node_pool_id, "", "OKE node pool of nodes without the pool label"),
    RSRE_CFG_STR_ENTRY(T, oci_ca_file, "", "CA bundle for the OCI APIs (empty: system bundle)"),
    RSRE_CFG_LIST_ENTRY(T, oci_options, noci_options, "",
                        "further OCI executor settings as key=value (docs/oci.md keys)"),
    RSRE_CFG_U32_ENTRY(T, reboot_verify_ms, "600000", 1000, 3600000,
                       "after reboot_worker's instance is RUNNING again, the node must report a "
                       "new boot id (status.nodeInfo.bootID) within this, else the record "
                       "fails (ms)"),
    RSRE_CFG_LIST_ENTRY(T, node_actions, nnode_actions,
                        "delete_finished_pods,prune_unused_images,remove_exited_containers",
                        "node-local actions agents are allowed to run (sent in ConfigUpdate)"),
};
#undef T

static const struct rsre_cfg_table table = {
    .program = "robot-sre-aggregator",
    .version = RSRE_VERSION,
    .summary = "Robot SRE aggregator: receives the node agents' signals, turns them into\n"
               "incidents, decides by policy what runs alone, what needs approval and what only\n"
               "a human may do, and executes approved node-local actions; state in LMDB.",
    .env_prefix = "ROBOT_SRE_",
    .entries = entries,
    .n = sizeof(entries) / sizeof(entries[0]),
};

void rsre_aggregator_config_defaults(struct rsre_aggregator_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    rsre_cfg_defaults(&table, cfg);
}

int rsre_aggregator_config_load(struct rsre_aggregator_config *cfg, int argc, char **argv,
                                char *err, size_t errlen) {
    int rc = rsre_cfg_load(&table, cfg, argc, argv, NULL, stdout, err, errlen);
    if (rc) {
        return rc;
    }
    enum rsre_env e;
    if (rsre_env_parse(cfg->env, &e)) {
        snprintf(err, errlen, "env: '%s' is not demo, staging or production", cfg->env);
        return RSRE_EINVALID;
    }
    return 0;
}
