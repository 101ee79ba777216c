/* The daemon's OCI executor (wire_oci.h). */
#include "daemon/wire_oci.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/curl_uv.h"
#include "common/error.h"
#include "common/log.h"
#include "exec/oci.h"
#include "store/store.h"

#define MSG_MAX 240

struct run {
    struct rsre__wire_oci *w;
    struct run *next;
    char record_id[RSRE_STORE_ID_MAX + 1];
    char node[RSRE_STORE_NODE_MAX + 1];
    int replace, dry_run;
    struct rsre_kube_call *kcall;
    struct rsre_oci_call *ocall;
    struct rsre_oci_op *op;
    rsre__wire_oci_done_cb done;
    void *arg;
};

struct rsre__wire_oci {
    struct rsre_http *http;
    struct rsre_oci *oci;
    struct run *runs;
};

/* ---- configuration ---- */

static int set_key(struct rsre_oci_config *c, const char *key, const char *value, char *err,
                   size_t cap) {
    if (!value[0]) {
        return 0;
    }
    char why[200] = "";
    int rc = rsre_oci_config_set(c, key, value, why, sizeof(why));
    if (rc) {
        snprintf(err, cap, "oci_%s: %s", key, why);
    }
    return rc;
}

int rsre__wire_oci_create(uv_loop_t *loop, const struct rsre_aggregator_config *cfg,
                          struct rsre__wire_oci **out, char *err, size_t cap) {
    *out = NULL;
    const struct {
        const char *key, *value;
    } rows[] = {
        {"tenancy", cfg->oci_tenancy},
        {"user", cfg->oci_user},
        {"fingerprint", cfg->oci_fingerprint},
        {"key_file", cfg->oci_key_file},
        {"region", cfg->oci_region},
        {"compute_url", cfg->oci_compute_url},
        {"containerengine_url", cfg->oci_containerengine_url},
        {"node_pool_id", cfg->oci_node_pool_id},
        {"ca_file", cfg->oci_ca_file},
    };
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    int any = cfg->noci_options > 0;
    for (size_t i = 0; i < nrows; i++) {
        any |= rows[i].value[0] != '\0';
    }
    if (!any) {
        return 0; /* not configured */
    }
    if (!cfg->oci_tenancy[0]) {
        snprintf(err, cap, "oci_tenancy is required once any oci_* setting is given");
        return RSRE_EINVALID;
    }
    struct rsre_oci_config oc;
    rsre_oci_config_defaults(&oc);
    int rc = 0;
    for (size_t i = 0; i < nrows && !rc; i++) {
        rc = set_key(&oc, rows[i].key, rows[i].value, err, cap);
    }
    for (size_t i = 0; i < cfg->noci_options && !rc; i++) {
        char kv[sizeof(cfg->oci_options[0])];
        snprintf(kv, sizeof(kv), "%s", cfg->oci_options[i]);
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            snprintf(err, cap, "oci_options: '%s' is not key=value", kv);
            return RSRE_EINVALID;
        }
        *eq = '\0';
        static const char *const reserved[] = {"tenancy", "user", "fingerprint", "key_file",
                                               "passphrase_file"};
        for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++) {
            if (!strcmp(kv, reserved[k])) {
                snprintf(err, cap, "oci_options: set %s with its own oci_%s setting", kv, kv);
                return RSRE_EINVALID;
            }
        }
        rc = set_key(&oc, kv, eq + 1, err, cap);
    }
    if (rc) {
        return rc;
    }
    struct rsre__wire_oci *w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    if ((rc = rsre_http_create(loop, &w->http))) {
        snprintf(err, cap, "cannot create the HTTP client: %s", rsre_strerror(rc));
        free(w);
        return rc;
    }
    struct rsre_oci_transport t;
    rsre_oci_transport_curl(w->http, &t);
    if ((rc = rsre_oci_create(loop, &t, &oc, &w->oci, err, cap))) {
        rsre_http_destroy(w->http);
        free(w);
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, "aggregator", "OCI executor: compute %s, container engine %s",
             rsre_oci_compute_url(w->oci), rsre_oci_containerengine_url(w->oci));
    *out = w;
    return 0;
}

static void run_unlink(struct run *r) {
    for (struct run **p = &r->w->runs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

void rsre__wire_oci_destroy(struct rsre__wire_oci *w) {
    if (!w) {
        return;
    }
    while (w->runs) {
        struct run *r = w->runs;
        w->runs = r->next;
        if (r->kcall) {
            rsre_kube_call_abandon(r->kcall);
        }
        if (r->ocall) {
            rsre_oci_call_abandon(r->ocall);
        }
        if (r->op) {
            rsre_oci_op_abandon(r->op);
        }
        free(r);
    }
    rsre_oci_destroy(w->oci);
    rsre_http_destroy(w->http);
    free(w);
}

/* ---- a run: node → providerID → OCI ---- */

static void finish(struct run *r, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(struct run *r, int ok, const char *fmt, ...) {
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    run_unlink(r);
    rsre__wire_oci_done_cb done = r->done;
    void *arg = r->arg;
    char id[sizeof(r->record_id)];
    snprintf(id, sizeof(id), "%s", r->record_id);
    free(r);
    done(arg, id, ok, msg);
}

static void on_outcome(void *arg, const struct rsre_oci_outcome *o) {
    struct run *r = arg;
    r->op = NULL;
    if (o->rc == 0) {
        if (r->replace) {
            finish(r, 1,
                   "replace_worker %s: instance %s %s; the node pool keeps its size%s%s "
                   "(%llu ms)",
                   r->node, o->instance_id, o->final_state,
                   o->replacement_node[0] ? ", replacement " : "", o->replacement_node,
                   (unsigned long long)o->elapsed_ms);
        } else {
            finish(r, 1, "reboot_worker %s: instance %s %s%s, RUNNING again (%llu ms)", r->node,
                   o->instance_id, o->action, o->fell_back_to_reset ? " then RESET" : "",
                   (unsigned long long)o->elapsed_ms);
        }
        return;
    }
    finish(r, 0, "%s %s: OCI %s failed at %s: %s (%s)",
           r->replace ? "replace_worker" : "reboot_worker", r->node,
           o->action[0] ? o->action : "call", o->step, o->message, rsre_strerror(o->rc));
}

static void on_dry_instance(void *arg, const struct rsre_oci_result *res) {
    struct run *r = arg;
    r->ocall = NULL;
    const char *state = json_string_value(json_object_get(res->body, "lifecycleState"));
    if (res->rc == 0 && state && !strcmp(state, "RUNNING")) {
        finish(r, 1, "dry run: %s would %s instance %s of node %s (RUNNING); nothing sent",
               r->replace ? "replace_worker" : "reboot_worker",
               r->replace ? "delete from its node pool" : "SOFTRESET",
               json_string_value(json_object_get(res->body, "id")), r->node);
    } else {
        finish(r, 0, "dry run: instance of node %s is %s: %s", r->node,
               state ? state : "unreadable", res->rc ? rsre_strerror(res->rc) : "not RUNNING");
    }
}

static void on_node(void *arg, const struct rsre_kube_result *res) {
    struct run *r = arg;
    r->kcall = NULL;
    if (res->rc) {
        finish(r, 0, "cannot read node %s from the Kubernetes API: %s", r->node,
               res->error && res->error[0] ? res->error : rsre_strerror(res->rc));
        return;
    }
    json_t *spec = json_object_get(res->body, "spec");
    const char *pid = json_string_value(json_object_get(spec, "providerID"));
    struct rsre_oci_instance_ref ref;
    if (!pid || rsre_oci_parse_provider_id(pid, &ref)) {
        finish(r, 0,
               "node %s has no OCI providerID (spec.providerID %s%.80s%s): not an OCI "
               "instance, nothing done",
               r->node, pid ? "'" : "", pid ? pid : "absent", pid ? "'" : "");
        return;
    }
    json_t *labels = json_object_get(json_object_get(res->body, "metadata"), "labels");
    const char *pool_label = json_string_value(json_object_get(labels, RSRE_OCI_NODE_POOL_LABEL));
    int rc;
    char what[64];
    if (r->dry_run) {
        snprintf(what, sizeof(what), "read instance");
        rc = rsre_oci_get_instance(r->w->oci, ref.ocid, on_dry_instance, r, &r->ocall);
    } else if (r->replace) {
        snprintf(what, sizeof(what), "replace");
        rc = rsre_oci_replace_worker(r->w->oci, pid, pool_label, on_outcome, r, &r->op);
    } else {
        snprintf(what, sizeof(what), "reboot");
        rc = rsre_oci_reboot_worker(r->w->oci, pid, RSRE_OCI_REBOOT_SOFT_THEN_HARD, on_outcome, r,
                                    &r->op);
    }
    if (rc) {
        finish(r, 0, "OCI %s of node %s (instance %s) not started: %s%s", what, r->node, ref.ocid,
               rsre_strerror(rc),
               rc == RSRE_ENOTFOUND ? " (no node pool: label the node or set oci_node_pool_id)"
                                    : "");
        return;
    }
    RSRE_LOG(RSRE_LOG_INFO, "aggregator", "OCI %s started record=%s node=%s instance=%s", what,
             r->record_id, r->node, ref.ocid);
}

int rsre__wire_oci_run(struct rsre__wire_oci *w, struct rsre_kube *kube, const char *action,
                       const char *node, const char *record_id, int dry_run,
                       rsre__wire_oci_done_cb done, void *arg, char *err, size_t cap) {
    int replace = !strcmp(action, "replace_worker");
    if ((!replace && strcmp(action, "reboot_worker")) || !node || !node[0] ||
        strlen(node) > RSRE_STORE_NODE_MAX) {
        snprintf(err, cap, "%s is not an OCI worker action on a node", action);
        return RSRE_EINVALID;
    }
    char esc[3 * RSRE_STORE_NODE_MAX + 1], path[3 * RSRE_STORE_NODE_MAX + 32];
    if (rsre_kube_escape(node, esc, sizeof(esc))) {
        snprintf(err, cap, "node name too long");
        return RSRE_EINVALID;
    }
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", esc);
    struct run *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    r->w = w;
    r->replace = replace;
    r->dry_run = dry_run;
    r->done = done;
    r->arg = arg;
    snprintf(r->record_id, sizeof(r->record_id), "%s", record_id);
    snprintf(r->node, sizeof(r->node), "%s", node);
    int rc = rsre_kube_get(kube, path, on_node, r, &r->kcall);
    if (rc) {
        snprintf(err, cap, "cannot ask the Kubernetes API for node %s: %s", node,
                 rsre_strerror(rc));
        free(r);
        return rc;
    }
    r->next = w->runs;
    w->runs = r;
    return 0;
}
