#include "agent/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/yamldoc.h"

#ifndef RSRE_VERSION
#define RSRE_VERSION "0.1.0"
#endif

enum ctype { C_STR, C_U32, C_BOOL, C_LIST };

struct centry {
    const char *name;
    enum ctype type;
    size_t offset, size; /* size: buffer size for strings */
    const char *def;
    unsigned long long min, max;
    const char *desc;
};

#define STR(f, d, desc)                                                                         \
    { #f, C_STR, offsetof(struct rsre_agent_config, f),                                         \
      sizeof(((struct rsre_agent_config *)0)->f), d, 0, 0, desc }
#define U32(f, d, lo, hi, desc)                                                                 \
    { #f, C_U32, offsetof(struct rsre_agent_config, f), 0, d, lo, hi, desc }
#define BOOL(f, d, desc) { #f, C_BOOL, offsetof(struct rsre_agent_config, f), 0, d, 0, 1, desc }

static const struct centry table[] = {
    STR(node_name, "", "this node's name (env NODE_NAME from the downward API; default: hostname)"),
    STR(aggregator, "robot-sre-aggregator:7443", "aggregator gRPC target (host:port or unix:PATH)"),
    STR(tls_ca, "", "CA bundle for mTLS to the aggregator (empty: insecure channel)"),
    STR(tls_cert, "", "client certificate for mTLS (names this node)"),
    STR(tls_key, "", "client key for mTLS"),
    STR(kubelet_root, "/var/lib/kubelet", "nodefs: kubelet root directory"),
    STR(runtime_root, "/var/lib/containerd", "imagefs: container runtime root directory"),
    STR(kubelet_config, "/var/lib/kubelet/config.yaml", "kubelet configuration file (thresholds)"),
    STR(pod_log_dir, "/var/log/pods", "pod log directory (top consumers)"),
    STR(cri_socket, "unix:///run/containerd/containerd.sock", "CRI endpoint of the runtime"),
    STR(kmsg_path, "/dev/kmsg", "kernel log device"),
    STR(proc_root, "/proc", "procfs root (pressure stall information)"),
    STR(kube_api, "", "Kubernetes API base URL (empty: in-cluster service account)"),
    STR(kubeconfig, "", "kubeconfig file for running outside a cluster"),
    STR(spool_dir, "", "directory of the on-disk spool (empty: memory only)"),
    STR(health_addr, "127.0.0.1:10258", "liveness endpoint host:port, GET /healthz (empty: off)"),
    STR(log_level, "info", "debug, info, warn or error"),
    BOOL(log_json, "false", "log JSON lines instead of logfmt"),
    U32(filesystem_ms, "10000", 1000, 3600000, "filesystem collector interval (ms)"),
    U32(image_gc_ms, "60000", 5000, 3600000, "CRI image/container collector interval (ms)"),
    U32(kube_resync_ms, "300000", 10000, 3600000, "node/pod resync interval; watches run between (ms)"),
    U32(psi_ms, "10000", 1000, 3600000, "pressure stall collector interval (ms)"),
    U32(kmsg_ms, "5000", 1000, 3600000, "longest time a kernel event waits before batching (ms)"),
    U32(du_ms, "300000", 10000, 86400000, "top disk consumer scan interval (ms)"),
    U32(batch_flush_ms, "5000", 1000, 600000, "longest time a signal waits before a batch is cut (ms)"),
    U32(fill_window_s, "600", 60, 86400, "sliding window of the fill-rate estimate (s)"),
    U32(du_budget_ms, "50", 1, 10000, "wall-time budget of one top-consumer scan step (ms)"),
    U32(du_max_entries, "2000", 10, 1000000, "directory entries one scan step may visit"),
    U32(spool_memory_bytes, "1048576", 4096, 268435456, "memory spool bound (bytes)"),
    U32(spool_disk_bytes, "4194304", 0, 1073741824, "on-disk spool bound (bytes)"),
    U32(kmsg_rate_per_min, "10", 1, 10000, "kernel events per kind per minute before suppression"),
    U32(exited_container_min_age_s, "3600", 60, 2592000, "remove_exited_containers: minimum age (s)"),
    U32(image_min_age_s, "120", 0, 2592000, "prune_unused_images: minimum image age (s), kubelet's 2m"),
    U32(reconnect_min_ms, "500", 10, 600000, "reconnect backoff start (ms)"),
    U32(reconnect_max_ms, "30000", 100, 3600000, "reconnect backoff cap (ms)"),
    U32(keepalive_ms, "30000", 1000, 3600000, "HTTP/2 keepalive ping interval (ms)"),
    {"actions_allowed", C_LIST, offsetof(struct rsre_agent_config, actions_allowed), 0,
     "delete_finished_pods,prune_unused_images,remove_exited_containers", 0, 0,
     "node-local actions this agent will run (comma-separated; re-checked on every request)"},
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static int set_value(struct rsre_agent_config *cfg, const struct centry *e, const char *v,
                     struct rsre_config_error *err, const char *source) {
    char *field = (char *)cfg + e->offset;
    switch (e->type) {
    case C_STR:
        if (strlen(v) >= e->size) {
            snprintf(err->msg, sizeof(err->msg), "%s (%s): value longer than %zu bytes", e->name,
                     source, e->size - 1);
            return RSRE_EINVALID;
        }
        strcpy(field, v);
        return 0;
    case C_U32: {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-' || n < e->min || n > e->max) {
            snprintf(err->msg, sizeof(err->msg), "%s (%s): '%.40s' is not an integer in %llu..%llu",
                     e->name, source, v, e->min, e->max);
            return RSRE_EINVALID;
        }
        *(uint32_t *)field = (uint32_t)n;
        return 0;
    }
    case C_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
            *(int *)field = 1;
        } else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
            *(int *)field = 0;
        } else {
            snprintf(err->msg, sizeof(err->msg), "%s (%s): '%.40s' is not true or false", e->name,
                     source, v);
            return RSRE_EINVALID;
        }
        return 0;
    case C_LIST: {
        size_t n = 0;
        const char *p = v;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t l = c ? (size_t)(c - p) : strlen(p);
            while (l && isspace((unsigned char)*p)) {
                p++;
                l--;
            }
            while (l && isspace((unsigned char)p[l - 1])) {
                l--;
            }
            if (l) {
                if (n >= RSRE_AGENT_MAX_LIST || l >= sizeof(cfg->actions_allowed[0])) {
                    snprintf(err->msg, sizeof(err->msg), "%s (%s): too many or too long entries",
                             e->name, source);
                    return RSRE_EINVALID;
                }
                memcpy(cfg->actions_allowed[n], p, l);
                cfg->actions_allowed[n][l] = '\0';
                n++;
            }
            if (!c) {
                break;
            }
            p = c + 1;
        }
        cfg->nactions_allowed = n;
        return 0;
    }
    }
    return RSRE_EINVALID;
}

static const struct centry *find(const char *name, size_t len) {
    for (size_t i = 0; i < NTABLE; i++) {
        if (strlen(table[i].name) == len && !strncmp(table[i].name, name, len)) {
            return &table[i];
        }
    }
    return NULL;
}

void rsre_agent_config_defaults(struct rsre_agent_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    struct rsre_config_error err;
    for (size_t i = 0; i < NTABLE; i++) {
        set_value(cfg, &table[i], table[i].def, &err, "default");
    }
    const char *nn = getenv("NODE_NAME");
    if (nn && *nn && strlen(nn) < sizeof(cfg->node_name)) {
        strcpy(cfg->node_name, nn);
    } else if (gethostname(cfg->node_name, sizeof(cfg->node_name) - 1) != 0) {
        strcpy(cfg->node_name, "localhost");
    }
}

static int load_file(struct rsre_agent_config *cfg, const char *path,
                     struct rsre_config_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err->msg, sizeof(err->msg), "config file %s: %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(65536);
    ssize_t n = buf ? read(fd, buf, 65535) : -1;
    close(fd);
    if (n < 0) {
        free(buf);
        snprintf(err->msg, sizeof(err->msg), "config file %s: cannot read", path);
        return -EIO;
    }
    yaml_document_t doc;
    struct rsre_yerr ye;
    int rc = rsre_yaml_load(buf, (size_t)n, &doc, &ye);
    free(buf);
    if (rc) {
        snprintf(err->msg, sizeof(err->msg), "config file %s:%d:%d: %s", path, ye.line, ye.col,
                 ye.msg);
        return rc;
    }
    yaml_node_t *root = rsre_yaml_root(&doc);
    if (root->type != YAML_MAPPING_NODE) {
        yaml_document_delete(&doc);
        snprintf(err->msg, sizeof(err->msg), "config file %s: expected a mapping of key: value",
                 path);
        return RSRE_EINVALID;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        const char *key = rsre_yaml_str(k);
        const struct centry *e = key ? find(key, strlen(key)) : NULL;
        char src[200];
        snprintf(src, sizeof(src), "%.180s:%d", path, k ? (int)k->start_mark.line + 1 : 0);
        if (!e) {
            snprintf(err->msg, sizeof(err->msg), "%s: unknown key '%.64s' (see --help)", src,
                     key ? key : "?");
            yaml_document_delete(&doc);
            return RSRE_EINVALID;
        }
        char joined[RSRE_AGENT_MAX_LIST * 48 + 64] = "";
        const char *val = rsre_yaml_str(v);
        if (!val && v && v->type == YAML_SEQUENCE_NODE && e->type == C_LIST) {
            for (size_t i = 0; i < rsre_yaml_len(v); i++) {
                const char *it = rsre_yaml_str(rsre_yaml_item(&doc, v, i));
                size_t l = strlen(joined);
                snprintf(joined + l, sizeof(joined) - l, "%s%s", l ? "," : "", it ? it : "");
            }
            val = joined;
        }
        if (!val) {
            snprintf(err->msg, sizeof(err->msg), "%s: %s: expected a scalar value", src, e->name);
            yaml_document_delete(&doc);
            return RSRE_EINVALID;
        }
        if ((rc = set_value(cfg, e, val, err, src))) {
            yaml_document_delete(&doc);
            return rc;
        }
    }
    yaml_document_delete(&doc);
    return 0;
}

void rsre_agent_config_help(FILE *out) {
    fprintf(out,
            "usage: robot-sre-agent [--config FILE] [--KEY=VALUE ...]\n\n"
            "Robot SRE node agent: watches this node's disk, kernel, container runtime and pods,\n"
            "streams signals to the aggregator, and runs the node-local cleanups it asks for.\n\n"
            "Every key can be set in the YAML config file (key: value), in the environment as\n"
            "ROBOT_SRE_<KEY> (upper case), or as a flag; flags win over the environment, which\n"
            "wins over the file. NODE_NAME (downward API) sets node_name.\n\nkeys:\n");
    for (size_t i = 0; i < NTABLE; i++) {
        const struct centry *e = &table[i];
        char range[64] = "";
        if (e->type == C_U32) {
            snprintf(range, sizeof(range), " [%llu..%llu]", e->min, e->max);
        }
        fprintf(out, "  --%-28s %s\n  %-30s default: %s%s\n", e->name, e->desc, "",
                e->def[0] ? e->def : "(empty)", range);
    }
    fprintf(out, "\n  --config FILE                  YAML file of the keys above\n"
                 "  --print-config                 print the effective configuration and exit\n"
                 "  --help, --version\n");
}

void rsre_agent_config_dump(const struct rsre_agent_config *cfg, FILE *out) {
    for (size_t i = 0; i < NTABLE; i++) {
        const struct centry *e = &table[i];
        const char *field = (const char *)cfg + e->offset;
        switch (e->type) {
        case C_STR:
            fprintf(out, "%s: \"%s\"\n", e->name, field);
            break;
        case C_U32:
            fprintf(out, "%s: %u\n", e->name, *(const uint32_t *)field);
            break;
        case C_BOOL:
            fprintf(out, "%s: %s\n", e->name, *(const int *)field ? "true" : "false");
            break;
        case C_LIST:
            fprintf(out, "%s: [", e->name);
            for (size_t k = 0; k < cfg->nactions_allowed; k++) {
                fprintf(out, "%s%s", k ? ", " : "", cfg->actions_allowed[k]);
            }
            fprintf(out, "]\n");
            break;
        }
    }
}

int rsre_agent_config_load(struct rsre_agent_config *cfg, int argc, char **argv,
                           char *const *envp, FILE *out, struct rsre_config_error *err) {
    extern char **environ;
    int rc;
    err->msg[0] = '\0';
    /* 1. the file */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            path = argv[i + 1];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        }
        if (path && (rc = load_file(cfg, path, err))) {
            return rc;
        }
    }
    /* 2. the environment */
    for (char *const *ep = envp ? envp : environ; ep && *ep; ep++) {
        if (!strncmp(*ep, "NODE_NAME=", 10) && (*ep)[10]) {
            if ((rc = set_value(cfg, find("node_name", 9), *ep + 10, err, "NODE_NAME"))) {
                return rc;
            }
            continue;
        }
        if (strncmp(*ep, "ROBOT_SRE_", 10) != 0) {
            continue;
        }
        const char *eq = strchr(*ep, '=');
        if (!eq) {
            continue;
        }
        char key[64];
        size_t l = (size_t)(eq - (*ep + 10));
        if (l >= sizeof(key)) {
            continue;
        }
        for (size_t k = 0; k < l; k++) {
            key[k] = (char)tolower((unsigned char)(*ep)[10 + k]);
        }
        key[l] = '\0';
        const struct centry *e = find(key, l);
        if (!e) {
            snprintf(err->msg, sizeof(err->msg), "environment: unknown variable ROBOT_SRE_%.40s",
                     *ep + 10);
            return RSRE_EINVALID;
        }
        if ((rc = set_value(cfg, e, eq + 1, err, "environment"))) {
            return rc;
        }
    }
    /* 3. flags */
    int print_config = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            rsre_agent_config_help(out);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            fprintf(out, "robot-sre-agent %s\n", RSRE_VERSION);
            return 1;
        }
        if (!strcmp(a, "--print-config")) {
            print_config = 1;
            continue;
        }
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9)) {
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err->msg, sizeof(err->msg), "unexpected argument '%.64s' (see --help)", a);
            return RSRE_EINVALID;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t l = eq ? (size_t)(eq - name) : strlen(name);
        char norm[64];
        if (l >= sizeof(norm)) {
            snprintf(err->msg, sizeof(err->msg), "unknown flag '%.64s'", a);
            return RSRE_EINVALID;
        }
        for (size_t k = 0; k < l; k++) {
            norm[k] = name[k] == '-' ? '_' : name[k];
        }
        const struct centry *e = find(norm, l);
        if (!e) {
            snprintf(err->msg, sizeof(err->msg), "unknown flag '%.64s' (see --help)", a);
            return RSRE_EINVALID;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (e->type == C_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
                val = "true";
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                snprintf(err->msg, sizeof(err->msg), "flag --%s needs a value", e->name);
                return RSRE_EINVALID;
            }
        }
        if ((rc = set_value(cfg, e, val, err, "flag"))) {
            return rc;
        }
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
    if (print_config) {
        rsre_agent_config_dump(cfg, out);
        return 1;
    }
    return 0;
}
