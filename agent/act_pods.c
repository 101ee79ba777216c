/*
 * Node-local action "delete_finished_pods": deletes the pods bound to this node whose phase
 * is Succeeded or Failed (Evicted pods are Failed pods), the ones kubelet leaves behind and
 * that keep their logs and emptyDir volumes on the node's disk until someone deletes them.
 *
 * Safety:
 *   - Only pods with spec.nodeName equal to this agent's node, and only phases Succeeded and
 *     Failed; Running, Pending and Unknown pods are never touched. Pods already being deleted
 *     and mirror pods of static pods (kubelet owns those) are skipped.
 *   - Every candidate is read again right before its deletion, and deleted with preconditions
 *     on the uid and resourceVersion just read: a pod that was replaced (same name, new uid) or
 *     changed in between makes the API server refuse (409) and is skipped, not deleted.
 *   - Dry run lists and re-reads exactly as a real run and reports what would be deleted, but
 *     never sends a DELETE.
 *   - The request's deadline is checked before every deletion (TIMEOUT with what was done).
 *
 * Target: empty or this node's name. Parameter: "namespace" (optional) limits the action to
 * one namespace. Anything else is refused. Removed ids are "namespace/name".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/error.h"
#include "common/kube.h"
#include "common/kube_json.h"
#include "common/log.h"

#define MOD "act_pods"
#define MAX_CANDIDATES 4096
#define E(x) ROBOT_SRE__AGENT__V1__##x

struct cand {
    char ns[RSRE_KUBE_NS_LEN];
    char name[RSRE_KUBE_NAME_LEN];
    char uid[RSRE_KUBE_UID_LEN];
};

struct job {
    struct rsre_action_ctx *ctx;
    struct rsre_kube *k;
    char node[RSRE_KUBE_NAME_LEN];
    char ns[RSRE_KUBE_NS_LEN]; /* "" = all namespaces */
    int dry_run;
    int64_t deadline_ms;
    struct cand *c;
    size_t n, i;
    size_t removed, skipped, failed;
    int timed_out;
    char last_error[300];
};

static void next_pod(struct job *j);

static void note_error(struct job *j, const struct cand *c, const char *msg) {
    snprintf(j->last_error, sizeof(j->last_error), "%.63s/%.80s: %.120s", c->ns, c->name, msg);
}

static void finish(struct job *j, RobotSre__Agent__V1__ActionStatus status,
                   const char *fmt_reason) {
    struct rsre_action_ctx *ctx = j->ctx;
    ctx->result.objects_removed = (uint32_t)j->removed;
    ctx->result.finished_unix_ms = rsre_now_unix_ms();
    if (fmt_reason) {
        rsre_action_set(ctx, status, "%s", fmt_reason);
    } else {
        rsre_action_set(ctx, status,
                        "%s%zu finished pod(s) on node %s: %zu %s, %zu skipped (changed or "
                        "gone), %zu failed%s%s",
                        j->dry_run ? "dry run: " : "", j->n, j->node, j->removed,
                        j->dry_run ? "would be deleted" : "deleted", j->skipped, j->failed,
                        j->last_error[0] ? "; last error: " : "", j->last_error);
    }
    RSRE_LOG(RSRE_LOG_INFO, MOD,
             "delete_finished_pods done node=%s dry_run=%d candidates=%zu removed=%zu "
             "skipped=%zu failed=%zu",
             j->node, j->dry_run, j->n, j->removed, j->skipped, j->failed);
    free(j->c);
    free(j);
    rsre_action_done(ctx);
}

static void done_all(struct job *j) {
    RobotSre__Agent__V1__ActionStatus st;
    if (j->timed_out) {
        st = E(ACTION_STATUS__ACTION_STATUS_TIMEOUT);
    } else if (j->dry_run) {
        st = E(ACTION_STATUS__ACTION_STATUS_DRY_RUN);
    } else if (j->failed > 0 && j->removed == 0) {
        st = E(ACTION_STATUS__ACTION_STATUS_FAILED);
    } else {
        st = E(ACTION_STATUS__ACTION_STATUS_OK);
    }
    finish(j, st, NULL);
}

static void record_removed(struct job *j, const struct cand *c) {
    char id[RSRE_KUBE_NS_LEN + RSRE_KUBE_NAME_LEN + 2];
    snprintf(id, sizeof(id), "%s/%s", c->ns, c->name);
    rsre_action_add_removed(j->ctx, id);
    j->removed++;
}

static void deleted_cb(void *arg, const struct rsre_kube_result *res) {
    struct job *j = arg;
    const struct cand *c = &j->c[j->i];
    if (res->rc == -ECANCELED) {
        finish(j, E(ACTION_STATUS__ACTION_STATUS_FAILED), "cancelled: the agent is stopping");
        return;
    }
    if (res->rc == 0) {
        RSRE_LOG(RSRE_LOG_INFO, MOD, "deleted pod ns=%s name=%s uid=%s", c->ns, c->name, c->uid);
        record_removed(j, c);
    } else if (res->rc == RSRE_ENOTFOUND || res->rc == -ESTALE) {
        /* Gone already, or replaced/changed since we read it: the precondition held. */
        j->skipped++;
    } else {
        j->failed++;
        note_error(j, c, res->error);
        RSRE_LOG(RSRE_LOG_WARN, MOD, "delete failed ns=%s name=%s err=\"%s\"", c->ns, c->name,
                 res->error);
    }
    j->i++;
    next_pod(j);
}

/* The fresh copy of candidate j->c[j->i]: delete it only if it is still the same, finished
 * pod on this node. */
static void reread_cb(void *arg, const struct rsre_kube_result *res) {
    struct job *j = arg;
    const struct cand *c = &j->c[j->i];
    if (res->rc == -ECANCELED) {
        finish(j, E(ACTION_STATUS__ACTION_STATUS_FAILED), "cancelled: the agent is stopping");
        return;
    }
    if (res->rc != 0 || !res->body) {
        if (res->rc == RSRE_ENOTFOUND) {
            j->skipped++;
        } else {
            j->failed++;
            note_error(j, c, res->error);
        }
        j->i++;
        next_pod(j);
        return;
    }
    struct rsre_kube_pod *p = NULL;
    char err[RSRE_KUBE_ERR_LEN];
    int rc = rsre_kube_pod_decode(res->body, &p, err, sizeof(err));
    int same = rc == 0 && strcmp(p->meta.uid, c->uid) == 0 && strcmp(p->meta.ns, c->ns) == 0 &&
               strcmp(p->meta.name, c->name) == 0 && strcmp(p->node_name, j->node) == 0 &&
               rsre_kube_pod_finished(p) && p->meta.deleted_ms == 0 && !p->meta.mirror;
    if (!same) {
        if (rc != 0) {
            RSRE_LOG(RSRE_LOG_WARN, MOD, "re-read pod does not decode ns=%s name=%s err=\"%s\"",
                     c->ns, c->name, err);
        }
        rsre_kube_pod_free(p);
        j->skipped++;
        j->i++;
        next_pod(j);
        return;
    }
    if (j->dry_run) {
        rsre_kube_pod_free(p);
        record_removed(j, c);
        j->i++;
        next_pod(j);
        return;
    }
    char ens[RSRE_KUBE_NS_LEN * 3], ename[RSRE_KUBE_NAME_LEN * 3], path[1024];
    rsre_kube_escape(c->ns, ens, sizeof(ens));
    rsre_kube_escape(c->name, ename, sizeof(ename));
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ens, ename);
    rc = rsre_kube_delete(j->k, path, p->meta.uid, p->meta.rv, "Background", deleted_cb, j, NULL);
    rsre_kube_pod_free(p);
    if (rc != 0) {
        j->failed++;
        note_error(j, c, rsre_strerror(rc));
        j->i++;
        next_pod(j);
    }
}

static void next_pod(struct job *j) {
    while (j->i < j->n) {
        if (rsre_now_unix_ms() >= j->deadline_ms) {
            j->timed_out = 1;
            break;
        }
        const struct cand *c = &j->c[j->i];
        char ens[RSRE_KUBE_NS_LEN * 3], ename[RSRE_KUBE_NAME_LEN * 3], path[1024];
        rsre_kube_escape(c->ns, ens, sizeof(ens));
        rsre_kube_escape(c->name, ename, sizeof(ename));
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ens, ename);
        int rc = rsre_kube_get(j->k, path, reread_cb, j, NULL);
        if (rc == 0) {
            return; /* continues in reread_cb */
        }
        j->failed++;
        note_error(j, c, rsre_strerror(rc));
        j->i++;
    }
    done_all(j);
}

static void list_cb(void *arg, const struct rsre_kube_result *res) {
    struct job *j = arg;
    char msg[320];
    if (res->rc != 0 || !res->body) {
        snprintf(msg, sizeof(msg), "cannot list the pods of node %s: %s", j->node,
                 res->rc ? res->error : "empty answer");
        finish(j, E(ACTION_STATUS__ACTION_STATUS_FAILED), msg);
        return;
    }
    const json_t *items = json_object_get(res->body, "items");
    if (items && !json_is_array(items) && !json_is_null(items)) {
        finish(j, E(ACTION_STATUS__ACTION_STATUS_FAILED), "pod list: items is not an array");
        return;
    }
    size_t n = json_is_array(items) ? json_array_size(items) : 0;
    if (n > MAX_CANDIDATES) {
        n = MAX_CANDIDATES;
    }
    j->c = calloc(n ? n : 1, sizeof(*j->c));
    if (!j->c) {
        finish(j, E(ACTION_STATUS__ACTION_STATUS_FAILED), "out of memory");
        return;
    }
    size_t undecodable = 0;
    for (size_t i = 0; i < n; i++) {
        struct rsre_kube_pod *p;
        char err[RSRE_KUBE_ERR_LEN];
        if (rsre_kube_pod_decode(json_array_get(items, i), &p, err, sizeof(err)) != 0) {
            undecodable++;
            continue;
        }
        /* The field selector already asked for this node; check it again here. */
        if (strcmp(p->node_name, j->node) == 0 && rsre_kube_pod_finished(p) &&
            p->meta.deleted_ms == 0 && !p->meta.mirror && p->meta.uid[0] && p->meta.ns[0] &&
            (!j->ns[0] || strcmp(p->meta.ns, j->ns) == 0)) {
            struct cand *c = &j->c[j->n++];
            memcpy(c->ns, p->meta.ns, sizeof(c->ns));
            memcpy(c->name, p->meta.name, sizeof(c->name));
            memcpy(c->uid, p->meta.uid, sizeof(c->uid));
        }
        rsre_kube_pod_free(p);
    }
    if (undecodable) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "pods skipped because they do not decode count=%zu",
                 undecodable);
    }
    next_pod(j);
}

static void refuse(struct rsre_action_ctx *ctx, const char *why) {
    ctx->result.finished_unix_ms = rsre_now_unix_ms();
    rsre_action_set(ctx, E(ACTION_STATUS__ACTION_STATUS_REFUSED), "%s", why);
    rsre_action_done(ctx);
}

static void run(struct rsre_action_ctx *ctx) {
    const rsre_action_request *req = ctx->req;
    const struct rsre_agent_config *cfg = rsre_agent_config(ctx->agent);
    struct rsre_kube *k = rsre_agent_kube(ctx->agent);
    if (!k) {
        refuse(ctx, "no Kubernetes API configured on this agent");
        return;
    }
    if (!cfg->node_name[0]) {
        refuse(ctx, "the agent does not know its node name");
        return;
    }
    if (req->target && req->target[0] && strcmp(req->target, cfg->node_name) != 0) {
        refuse(ctx, "target is not this node");
        return;
    }
    const char *ns = "";
    for (size_t i = 0; i < req->n_parameters; i++) {
        if (strcmp(req->parameters[i]->key, "namespace") == 0) {
            ns = req->parameters[i]->value;
        } else {
            char msg[200];
            snprintf(msg, sizeof(msg), "unknown parameter \"%.100s\"", req->parameters[i]->key);
            refuse(ctx, msg);
            return;
        }
    }
    if (strlen(ns) >= RSRE_KUBE_NS_LEN || strchr(ns, '/')) {
        refuse(ctx, "parameter namespace is not a namespace name");
        return;
    }
    int64_t now = rsre_now_unix_ms();
    if (req->deadline_unix_ms > 0 && now >= req->deadline_unix_ms) {
        ctx->result.finished_unix_ms = now;
        rsre_action_set(ctx, E(ACTION_STATUS__ACTION_STATUS_TIMEOUT),
                        "deadline passed before the action started");
        rsre_action_done(ctx);
        return;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        ctx->result.finished_unix_ms = now;
        rsre_action_set(ctx, E(ACTION_STATUS__ACTION_STATUS_FAILED), "out of memory");
        rsre_action_done(ctx);
        return;
    }
    j->ctx = ctx;
    j->k = k;
    j->dry_run = req->dry_run ? 1 : 0;
    j->deadline_ms = req->deadline_unix_ms > 0 ? req->deadline_unix_ms : INT64_MAX;
    snprintf(j->node, sizeof(j->node), "%s", cfg->node_name);
    snprintf(j->ns, sizeof(j->ns), "%s", ns);
    ctx->result.started_unix_ms = now;

    char sel[RSRE_KUBE_NAME_LEN + 32], esel[sizeof(sel) * 3], ens[RSRE_KUBE_NS_LEN * 3];
    char path[2048];
    snprintf(sel, sizeof(sel), "spec.nodeName=%s", j->node);
    rsre_kube_escape(sel, esel, sizeof(esel));
    if (j->ns[0]) {
        rsre_kube_escape(j->ns, ens, sizeof(ens));
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?fieldSelector=%s", ens, esel);
    } else {
        snprintf(path, sizeof(path), "/api/v1/pods?fieldSelector=%s", esel);
    }
    struct rsre_kube_request r = {.method = "GET", .path = path, .max_body = 64u << 20};
    int rc = rsre_kube_call(k, &r, list_cb, j, NULL);
    if (rc != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "cannot list pods: %s", rsre_strerror(rc));
        finish(j, E(ACTION_STATUS__ACTION_STATUS_FAILED), msg);
    }
}

const struct rsre_action_desc rsre_action_delete_finished_pods = {
    .id = "delete_finished_pods",
    .run = run,
};
