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

#define MSG_MAX 256          /* the daemon keeps 255 bytes of a result */
#define BOOT_ID_MAX 64       /* status.nodeInfo.bootID is a UUID (36 characters) */
#define VERIFY_POLL_MS 5000u /* node reads while waiting for the new boot id */
#define VERIFY_READ_MAX_MS 30000u

struct run {
    struct rsre__wire_oci *w;
    struct run *next;
    char record_id[RSRE_STORE_ID_MAX + 1];
    char node[RSRE_STORE_NODE_MAX + 1];
    char path[3 * RSRE_STORE_NODE_MAX + 32]; /* /api/v1/nodes/NAME */
    int replace, dry_run;
    struct rsre_kube *kube; /* borrowed (wire_oci.h) */
    struct rsre_kube_call *kcall;
    struct rsre_oci_call *ocall;
    struct rsre_oci_op *op;
    rsre__wire_oci_done_cb done;
    void *arg;
    /* reboot verification: the node's boot id before the reboot must change after it */
    char boot_before[BOOT_ID_MAX + 1]; /* "" when the node did not report one */
    char boot_seen[BOOT_ID_MAX + 1];   /* last one read while verifying ("" : none yet) */
    char instance[128];                /* what OCI did, for the result text */
    char action[32];                   /* "SOFTRESET" or "SOFTRESET then RESET" */
    uint64_t reboot_ms;                /* OCI's time from the action to RUNNING */
    int reads;                         /* node reads that succeeded while verifying */
    uint64_t verify_start;             /* uv_now when RUNNING was reported */
    char last_error[96];               /* last failed node read while verifying */
    uv_timer_t *timer;                 /* allocated when verification starts */
};

struct rsre__wire_oci {
    uv_loop_t *loop;
    struct rsre_http *http;
    struct rsre_oci *oci;
    struct run *runs;
    uint32_t verify_ms; /* reboot_verify_ms */
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
    w->loop = loop;
    w->verify_ms = cfg->reboot_verify_ms;
    RSRE_LOG(RSRE_LOG_INFO, "aggregator",
             "OCI executor: compute %s, container engine %s, reboot boot id verified within %u ms",
             rsre_oci_compute_url(w->oci), rsre_oci_containerengine_url(w->oci), w->verify_ms);
    *out = w;
    return 0;
}

static void on_timer_closed(uv_handle_t *h) {
    free(h);
}

/* Stops everything the run has in flight (no callback of it runs afterwards); the timer
 * closes on the loop and frees itself. The run itself is the caller's to free. */
static void run_abandon(struct run *r) {
    if (r->kcall) {
        rsre_kube_call_abandon(r->kcall);
        r->kcall = NULL;
    }
    if (r->ocall) {
        rsre_oci_call_abandon(r->ocall);
        r->ocall = NULL;
    }
    if (r->op) {
        rsre_oci_op_abandon(r->op);
        r->op = NULL;
    }
    if (r->timer) {
        uv_close((uv_handle_t *)r->timer, on_timer_closed);
        r->timer = NULL;
    }
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
        run_abandon(r);
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
    run_abandon(r); /* only the verification timer can be left here */
    rsre__wire_oci_done_cb done = r->done;
    void *arg = r->arg;
    char id[sizeof(r->record_id)];
    snprintf(id, sizeof(id), "%s", r->record_id);
    free(r);
    done(arg, id, ok, msg);
}

/* ---- reboot verification: the node's boot id must change ---- */

static void verify_read(struct run *r);

static void on_verify_timer(uv_timer_t *t) {
    verify_read(t->data);
}

/* Milliseconds left of reboot_verify_ms since the instance was RUNNING again. */
static uint64_t verify_left(const struct run *r) {
    uint64_t waited = uv_now(r->w->loop) - r->verify_start;
    return waited < r->w->verify_ms ? r->w->verify_ms - waited : 0;
}

/* After a read that confirmed nothing: fails the run at the deadline, else reads again in
 * VERIFY_POLL_MS (the last read falls on the deadline itself). */
static void verify_again(struct run *r) {
    uint64_t left = verify_left(r);
    if (left > 0) {
        uv_timer_start(r->timer, on_verify_timer, left < VERIFY_POLL_MS ? left : VERIFY_POLL_MS, 0);
        return;
    }
    unsigned ms = r->w->verify_ms;
    if (r->reads == 0) {
        finish(r, 0,
               "reboot_worker %s: instance RUNNING again but node %s could not be read for %u ms "
               "(%s): the reboot is not confirmed (%s)",
               r->node, r->node, ms, r->last_error, r->action);
    } else if (!r->boot_seen[0]) {
        finish(r, 0,
               "reboot_worker %s: instance RUNNING again but node %s reported no boot id for %u "
               "ms (was %s): the reboot is not confirmed (%s)",
               r->node, r->node, ms, r->boot_before, r->action);
    } else {
        finish(r, 0,
               "reboot_worker %s: instance RUNNING again but node %s kept boot id %s for %u ms: "
               "the reboot is not confirmed (%s)",
               r->node, r->node, r->boot_before, ms, r->action);
    }
}

static void on_verify_node(void *arg, const struct rsre_kube_result *res) {
    struct run *r = arg;
    r->kcall = NULL;
    if (res->rc) {
        snprintf(r->last_error, sizeof(r->last_error), "%s",
                 res->error && res->error[0] ? res->error : rsre_strerror(res->rc));
        RSRE_LOG(RSRE_LOG_WARN, "aggregator",
                 "reboot_worker record=%s node=%s: cannot read the node for its boot id, "
                 "retrying for %llu ms: %s",
                 r->record_id, r->node, (unsigned long long)verify_left(r), r->last_error);
        verify_again(r);
        return;
    }
    json_t *info = json_object_get(json_object_get(res->body, "status"), "nodeInfo");
    const char *boot = json_string_value(json_object_get(info, "bootID"));
    r->reads++;
    snprintf(r->boot_seen, sizeof(r->boot_seen), "%s", boot ? boot : "");
    if (r->boot_seen[0] && strcmp(r->boot_seen, r->boot_before)) {
        uint64_t waited = uv_now(r->w->loop) - r->verify_start;
        finish(r, 1,
               "reboot_worker %s: boot id %s -> %s in %llu ms; instance %s %s, RUNNING at %llu ms",
               r->node, r->boot_before, r->boot_seen, (unsigned long long)(r->reboot_ms + waited),
               r->instance, r->action, (unsigned long long)r->reboot_ms);
        return;
    }
    verify_again(r);
}

/* Reads the node (bounded by what is left of the deadline, at least 1 s). */
static void verify_read(struct run *r) {
    uint64_t left = verify_left(r);
    struct rsre_kube_request req = {
        .method = "GET",
        .path = r->path,
        .timeout_ms = left < 1000                 ? 1000
                      : left > VERIFY_READ_MAX_MS ? VERIFY_READ_MAX_MS
                                                  : (uint32_t)left,
    };
    int rc = rsre_kube_call(r->kube, &req, on_verify_node, r, &r->kcall);
    if (rc) {
        r->kcall = NULL;
        snprintf(r->last_error, sizeof(r->last_error), "%s", rsre_strerror(rc));
        RSRE_LOG(RSRE_LOG_WARN, "aggregator",
                 "reboot_worker record=%s node=%s: cannot ask for the node's boot id: %s",
                 r->record_id, r->node, r->last_error);
        verify_again(r);
    }
}

/* The instance is RUNNING again: confirms the reboot by the node's boot id, or says that it
 * cannot (the node reported none before). */
static void verify_start(struct run *r, const struct rsre_oci_outcome *o) {
    snprintf(r->instance, sizeof(r->instance), "%s", o->instance_id);
    snprintf(r->action, sizeof(r->action), "%s%s", o->action,
             o->fell_back_to_reset ? " then RESET" : "");
    r->reboot_ms = o->elapsed_ms;
    if (!r->boot_before[0]) {
        finish(r, 1,
               "reboot_worker %s: instance %s %s, RUNNING again (%llu ms); boot id not reported "
               "by the node: not verified",
               r->node, r->instance, r->action, (unsigned long long)r->reboot_ms);
        return;
    }
    if (!(r->timer = malloc(sizeof(*r->timer)))) {
        finish(r, 0,
               "reboot_worker %s: instance %s %s, RUNNING again, but its boot id cannot be "
               "verified: out of memory",
               r->node, r->instance, r->action);
        return;
    }
    uv_timer_init(r->w->loop, r->timer);
    r->timer->data = r;
    r->verify_start = uv_now(r->w->loop);
    RSRE_LOG(RSRE_LOG_INFO, "aggregator",
             "reboot_worker record=%s node=%s: instance RUNNING again after %llu ms; waiting up "
             "to %u ms for a boot id other than %s",
             r->record_id, r->node, (unsigned long long)r->reboot_ms, r->w->verify_ms,
             r->boot_before);
    verify_read(r);
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
            verify_start(r, o);
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
    json_t *info = json_object_get(json_object_get(res->body, "status"), "nodeInfo");
    const char *boot = json_string_value(json_object_get(info, "bootID"));
    snprintf(r->boot_before, sizeof(r->boot_before), "%s", boot ? boot : "");
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
    if (r) {
        snprintf(r->path, sizeof(r->path), "%s", path);
        r->kube = kube;
    }
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
