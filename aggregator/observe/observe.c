/* The Kubernetes observers: informer table, change bookkeeping, aggregate computation and
 * change-only emission (contract in observe.h). */
#include "observe/observe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "observe/kube_objects.h"

#define CHURN_RING 8192

/* ---- the informer table ------------------------------------------------------------------- */

typedef int (*decode_fn)(const json_t *, void **, char *, size_t);
typedef void (*free_fn)(void *);

static const struct kind_row {
    const char *name, *path, *list_kind, *field_selector;
    decode_fn decode;
    free_fn free_obj;
} kinds[RSRE_OBS_NKINDS] = {
    [RSRE_OBS_NODES] = {"nodes", "/api/v1/nodes", "NodeList", NULL,
                        (decode_fn)rsre_kube_node_decode, (free_fn)rsre_kube_node_free},
    [RSRE_OBS_PODS] = {"pods", "/api/v1/pods", "PodList", NULL, (decode_fn)rsre_obs_pod_decode,
                       (free_fn)rsre_obs_pod_free},
    [RSRE_OBS_EVENTS] = {"events", "/api/v1/events", "EventList", NULL,
                         (decode_fn)rsre_kube_event_decode, (free_fn)rsre_kube_event_free},
    [RSRE_OBS_DEPLOYMENTS] = {"deployments", "/apis/apps/v1/deployments", "DeploymentList", NULL,
                              (decode_fn)rsre_obs_deployment_decode,
                              (free_fn)rsre_obs_workload_free},
    [RSRE_OBS_STATEFULSETS] = {"statefulsets", "/apis/apps/v1/statefulsets", "StatefulSetList",
                               NULL, (decode_fn)rsre_obs_statefulset_decode,
                               (free_fn)rsre_obs_workload_free},
    [RSRE_OBS_DAEMONSETS] = {"daemonsets", "/apis/apps/v1/daemonsets", "DaemonSetList", NULL,
                             (decode_fn)rsre_obs_daemonset_decode, (free_fn)rsre_obs_workload_free},
    [RSRE_OBS_REPLICASETS] = {"replicasets", "/apis/apps/v1/replicasets", "ReplicaSetList", NULL,
                              (decode_fn)rsre_obs_owned_decode, (free_fn)rsre_obs_owned_free},
    [RSRE_OBS_JOBS] = {"jobs", "/apis/batch/v1/jobs", "JobList", NULL,
                       (decode_fn)rsre_obs_owned_decode, (free_fn)rsre_obs_owned_free},
    [RSRE_OBS_CRONJOBS] = {"cronjobs", "/apis/batch/v1/cronjobs", "CronJobList", NULL,
                           (decode_fn)rsre_obs_owned_decode, (free_fn)rsre_obs_owned_free},
    [RSRE_OBS_INGRESSES] = {"ingresses", "/apis/networking.k8s.io/v1/ingresses", "IngressList",
                            NULL, (decode_fn)rsre_obs_ingress_decode,
                            (free_fn)rsre_obs_ingress_free},
    [RSRE_OBS_SERVICES] = {"services", "/api/v1/services", "ServiceList", NULL,
                           (decode_fn)rsre_obs_owned_decode, (free_fn)rsre_obs_owned_free},
    [RSRE_OBS_SERVICEACCOUNTS] = {"serviceaccounts", "/api/v1/serviceaccounts",
                                  "ServiceAccountList", NULL,
                                  (decode_fn)rsre_obs_service_account_decode,
                                  (free_fn)rsre_obs_service_account_free},
    [RSRE_OBS_PULL_SECRETS] = {"pull_secrets", "/api/v1/secrets", "SecretList",
                               "type=kubernetes.io/dockerconfigjson",
                               (decode_fn)rsre_obs_owned_decode, (free_fn)rsre_obs_owned_free},
    [RSRE_OBS_PULL_SECRETS_OLD] = {"pull_secrets_dockercfg", "/api/v1/secrets", "SecretList",
                                   "type=kubernetes.io/dockercfg", (decode_fn)rsre_obs_owned_decode,
                                   (free_fn)rsre_obs_owned_free},
    [RSRE_OBS_HELM_RELEASES] = {"helm_releases", "/api/v1/secrets", "SecretList",
                                "type=helm.sh/release.v1", (decode_fn)rsre_obs_helm_secret_decode,
                                (free_fn)rsre_obs_helm_secret_free},
};

const char *rsre_observe_kind_name(enum rsre_observe_kind k) {
    return (unsigned)k < RSRE_OBS_NKINDS ? kinds[k].name : "?";
}

/* ---- aggregates --------------------------------------------------------------------------- */

struct agg {
    char scope[RSRE_OBSERVE_SCOPE_LEN];
    const char *source;
    char detail[RSRE_OBSERVE_DETAIL_LEN];
    struct rsre_observe_value values[RSRE_OBSERVE_MAX_VALUES];
    size_t nvalues;
    uint32_t aux[2]; /* merge helpers (pods merged, FailedMount / ImageGCFailed counts) */
};

struct aggvec {
    struct agg *v;
    size_t n, cap, max;
    uint64_t dropped;
};

struct slot {
    struct rsre_observe *o;
    enum rsre_observe_kind kind;
    struct rsre_kube_informer *inf;
    int64_t live;
    uint64_t added, modified, deleted;
};

struct rsre_observe {
    struct rsre_kube *kube;
    uv_loop_t *loop;
    struct rsre_observe_config cfg;
    char *core_namespaces, *core_label;
    rsre_observe_emit_fn emit;
    void *arg;
    struct slot slots[RSRE_OBS_NKINDS];
    uv_timer_t settle, tick;
    int settle_armed, closing, closed_handles;
    struct aggvec cur; /* last computed, sorted by scope */
    int64_t churn[CHURN_RING];
    size_t churn_n, churn_head;
    struct rsre_observe_stats stats;
    uint64_t started_ms; /* loop time at create */
    rsre_observe_node_fn node_fn;
    void *node_arg;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void appendf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    if (n + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* snprintf for text that may be truncated on purpose. */
#define setf(buf, cap, ...) ((buf)[0] = '\0', appendf((buf), (cap), __VA_ARGS__))

static struct agg *agg_add(struct aggvec *av, const char *source) {
    if (av->n >= av->max) {
        av->dropped++;
        return NULL;
    }
    if (av->n == av->cap) {
        size_t ncap = av->cap ? av->cap * 2 : 64;
        if (ncap > av->max) {
            ncap = av->max;
        }
        struct agg *nv = realloc(av->v, ncap * sizeof(*nv));
        if (!nv) {
            av->dropped++;
            return NULL;
        }
        av->v = nv;
        av->cap = ncap;
    }
    struct agg *a = &av->v[av->n++];
    memset(a, 0, sizeof(*a));
    a->source = source;
    return a;
}

static void agg_set(struct agg *a, const char *signal, double v) {
    for (size_t i = 0; i < a->nvalues; i++) {
        if (strcmp(a->values[i].signal, signal) == 0) {
            a->values[i].value = v;
            return;
        }
    }
    if (a->nvalues < RSRE_OBSERVE_MAX_VALUES) {
        a->values[a->nvalues].signal = signal;
        a->values[a->nvalues++].value = v;
    }
}

static int agg_cmp(const void *x, const void *y) {
    return strcmp(((const struct agg *)x)->scope, ((const struct agg *)y)->scope);
}

static struct agg *agg_find(const struct aggvec *av, const char *scope) {
    struct agg key;
    snprintf(key.scope, sizeof(key.scope), "%s", scope);
    return av->n ? bsearch(&key, av->v, av->n, sizeof(*av->v), agg_cmp) : NULL;
}

/* Sorts and folds hits of the same scope: values max (pull) or sum (events), aux summed,
 * the first detail kept. */
static void agg_fold(struct aggvec *av, size_t from, int sum) {
    if (av->n - from < 2) {
        return; /* nothing to sort or fold (and av->v may still be NULL) */
    }
    qsort(av->v + from, av->n - from, sizeof(*av->v), agg_cmp);
    size_t w = from;
    for (size_t r = from; r < av->n; r++) {
        if (w > from && strcmp(av->v[w - 1].scope, av->v[r].scope) == 0) {
            struct agg *d = &av->v[w - 1], *s = &av->v[r];
            for (size_t i = 0; i < s->nvalues; i++) {
                double cur = 0;
                for (size_t j = 0; j < d->nvalues; j++) {
                    if (strcmp(d->values[j].signal, s->values[i].signal) == 0) {
                        cur = d->values[j].value;
                    }
                }
                double v = s->values[i].value;
                agg_set(d, s->values[i].signal, sum ? cur + v : (v > cur ? v : cur));
            }
            d->aux[0] += s->aux[0];
            d->aux[1] += s->aux[1];
            continue;
        }
        if (w != r) {
            av->v[w] = av->v[r];
        }
        w++;
    }
    av->n = w;
}

/* ---- lookups ------------------------------------------------------------------------------ */

static void *get(const struct rsre_observe *o, enum rsre_observe_kind k, const char *ns,
                 const char *name) {
    return o->slots[k].inf ? rsre_kube_informer_get(o->slots[k].inf, ns, name, NULL) : NULL;
}

static int exists(const struct rsre_observe *o, enum rsre_observe_kind k, const char *ns,
                  const char *name) {
    const char *uid = NULL;
    if (o->slots[k].inf) {
        rsre_kube_informer_get(o->slots[k].inf, ns, name, &uid);
    }
    return uid != NULL;
}

static int ns_is_core(const struct rsre_observe *o, const char *ns) {
    if (!o->core_namespaces || !o->core_namespaces[0]) {
        return 0;
    }
    size_t n = strlen(ns);
    for (const char *p = o->core_namespaces; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ') {
            len--;
        }
        if (len == n && memcmp(p, ns, n) == 0) {
            return 1;
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
    return 0;
}

/* The workload owning a pod: scope "workload/<ns>/<name>" and, when it is a Deployment,
 * StatefulSet or DaemonSet we watch, the object. */
static const struct rsre_obs_workload *
owner_of(const struct rsre_observe *o, const struct rsre_kube_meta *m, char *scope, size_t cap) {
    const char *name = m->name;
    const struct rsre_obs_workload *w = NULL;
    if (strcmp(m->owner_kind, "ReplicaSet") == 0) {
        const struct rsre_obs_owned *rs = get(o, RSRE_OBS_REPLICASETS, m->ns, m->owner_name);
        name = m->owner_name;
        if (rs && strcmp(rs->meta.owner_kind, "Deployment") == 0) {
            name = rs->meta.owner_name;
            w = get(o, RSRE_OBS_DEPLOYMENTS, m->ns, name);
        }
    } else if (strcmp(m->owner_kind, "Job") == 0) {
        const struct rsre_obs_owned *job = get(o, RSRE_OBS_JOBS, m->ns, m->owner_name);
        name = m->owner_name;
        if (job && strcmp(job->meta.owner_kind, "CronJob") == 0) {
            name = job->meta.owner_name;
        }
    } else if (strcmp(m->owner_kind, "StatefulSet") == 0) {
        name = m->owner_name;
        w = get(o, RSRE_OBS_STATEFULSETS, m->ns, name);
    } else if (strcmp(m->owner_kind, "DaemonSet") == 0) {
        name = m->owner_name;
        w = get(o, RSRE_OBS_DAEMONSETS, m->ns, name);
    } else if (m->owner_kind[0] && m->owner_name[0]) {
        name = m->owner_name;
    }
    setf(scope, cap, "workload/%s/%s", m->ns, name);
    return w;
}

static int pull_secret_exists(const struct rsre_observe *o, const char *ns, const char *name) {
    return exists(o, RSRE_OBS_PULL_SECRETS, ns, name) ||
           exists(o, RSRE_OBS_PULL_SECRETS_OLD, ns, name);
}

/* ---- pods: pull failures and finished pods ------------------------------------------------ */

struct pod_pass {
    struct rsre_observe *o;
    struct aggvec *av;
    uint64_t finished;
};

static int pod_visit(void *arg, const char *ns, const char *name, const char *uid, void *obj) {
    (void)ns;
    (void)name;
    (void)uid;
    struct pod_pass *pp = arg;
    const struct rsre_obs_pod *op = obj;
    if (!op || !op->pod) {
        return 0;
    }
    const struct rsre_kube_pod *p = op->pod;
    if (rsre_kube_pod_finished(p)) {
        pp->finished++;
        return 0;
    }
    const struct rsre_kube_container *bad = NULL;
    for (size_t i = 0; i < p->ncontainers; i++) {
        const struct rsre_kube_container *c = &p->containers[i];
        enum rsre_kube_pull_reason r = c->state == RSRE_KUBE_CSTATE_WAITING
                                           ? rsre_kube_pull_reason(c->reason)
                                           : RSRE_KUBE_PULL_NONE;
        if (r == RSRE_KUBE_PULL_ERR_IMAGE_PULL || r == RSRE_KUBE_PULL_BACKOFF ||
            r == RSRE_KUBE_PULL_INVALID_IMAGE_NAME) {
            bad = c;
            break;
        }
    }
    if (!bad) {
        return 0;
    }
    struct rsre_observe *o = pp->o;
    struct agg *a = agg_add(pp->av, "observer:pods");
    if (!a) {
        return 0;
    }
    const struct rsre_obs_workload *w = owner_of(o, &p->meta, a->scope, sizeof(a->scope));
    int core = ns_is_core(o, p->meta.ns) || rsre_obs_labels_have(op->labels, o->core_label) ||
               (w && rsre_obs_labels_have(w->labels, o->core_label));
    agg_set(a, "pull.failing_workloads", 1);
    agg_set(a, "pull.failing_core_workloads", core ? 1 : 0);
    a->aux[0] = 1;
    setf(a->detail, sizeof(a->detail), "pod %s/%s container %s image %s: %s: %s", p->meta.ns,
         p->meta.name, bad->name, bad->image ? bad->image : "?", bad->reason,
         bad->message ? bad->message : "");
    /* Pull secrets the pod and its service account name, that do not exist. */
    const struct rsre_obs_service_account *sa =
        get(o, RSRE_OBS_SERVICEACCOUNTS, p->meta.ns,
            op->service_account[0] ? op->service_account : "default");
    for (int pass = 0; pass < 2; pass++) {
        char(*names)[RSRE_KUBE_NAME_LEN] = pass ? (sa ? sa->pull_secrets : NULL) : op->pull_secrets;
        size_t n = pass ? (sa ? sa->npull_secrets : 0) : op->npull_secrets;
        for (size_t i = 0; i < n; i++) {
            if (!pull_secret_exists(o, p->meta.ns, names[i])) {
                appendf(a->detail, sizeof(a->detail), "; pull secret %s missing (%s)", names[i],
                        pass ? "service account" : "pod");
            }
        }
    }
    return 0;
}

/* ---- Helm releases ------------------------------------------------------------------------ */

struct helm_pass {
    const struct rsre_obs_helm_secret **v;
    size_t n, cap;
};

static int helm_collect(void *arg, const char *ns, const char *name, const char *uid, void *obj) {
    (void)ns;
    (void)name;
    (void)uid;
    struct helm_pass *hp = arg;
    if (obj && hp->n < hp->cap) {
        hp->v[hp->n++] = obj;
    }
    return 0;
}

static int helm_cmp(const void *x, const void *y) {
    const struct rsre_obs_helm_secret *a = *(const struct rsre_obs_helm_secret *const *)x;
    const struct rsre_obs_helm_secret *b = *(const struct rsre_obs_helm_secret *const *)y;
    int c = strcmp(a->ns, b->ns);
    if (!c) {
        c = strcmp(a->name, b->name);
    }
    if (!c) {
        c = a->version > b->version ? -1 : a->version < b->version ? 1 : 0; /* newest first */
    }
    return c;
}

static enum rsre_observe_kind informer_of_kind(const char *kind) {
    if (strcmp(kind, "Deployment") == 0) {
        return RSRE_OBS_DEPLOYMENTS;
    }
    if (strcmp(kind, "StatefulSet") == 0) {
        return RSRE_OBS_STATEFULSETS;
    }
    if (strcmp(kind, "DaemonSet") == 0) {
        return RSRE_OBS_DAEMONSETS;
    }
    return RSRE_OBS_NKINDS;
}

static void release_agg(struct rsre_observe *o, const struct rsre_obs_helm_secret *s, int64_t now,
                        struct aggvec *av) {
    struct agg *a = agg_add(av, "observer:helm");
    if (!a) {
        return;
    }
    setf(a->scope, sizeof(a->scope), "release/%s/%s", s->ns, s->name);
    const struct rsre_helm_release *r = s->release;
    const char *status = r && r->status[0] ? r->status : s->status;
    int drifted = rsre_helm_status_unhealthy(status);
    int blocked = 0, unhealthy = 0;
    setf(a->detail, sizeof(a->detail), "revision %lld status %s", (long long)s->version, status);
    if (r && r->chart[0]) {
        appendf(a->detail, sizeof(a->detail), " chart %s-%s", r->chart, r->chart_version);
    }
    if (!r) {
        appendf(a->detail, sizeof(a->detail), "; release not decoded: %s", s->error);
    }
    /* Desired images versus the live workloads (one check per workload). */
    const char *last_kind = "", *last_wl = "";
    for (size_t i = 0; r && i < r->nimages; i++) {
        const struct rsre_helm_image *im = &r->images[i];
        enum rsre_observe_kind k = informer_of_kind(im->kind);
        if (k == RSRE_OBS_NKINDS) {
            continue;
        }
        const struct rsre_obs_workload *w = get(o, k, s->ns, im->workload);
        int first = strcmp(last_kind, im->kind) != 0 || strcmp(last_wl, im->workload) != 0;
        last_kind = im->kind;
        last_wl = im->workload;
        if (!w) {
            if (first && o->slots[k].inf && rsre_kube_informer_synced(o->slots[k].inf)) {
                drifted = 1;
                unhealthy++;
                appendf(a->detail, sizeof(a->detail), "; %s/%s missing", im->kind, im->workload);
            }
            continue;
        }
        const char *live = NULL;
        for (size_t c = 0; c < w->ncontainers; c++) {
            if (strcmp(w->containers[c].name, im->container) == 0) {
                live = w->containers[c].image;
            }
        }
        if (!live || strcmp(live, im->image) != 0) {
            drifted = 1;
            appendf(a->detail, sizeof(a->detail), "; %s/%s container %s image desired %s live %s",
                    im->kind, im->workload, im->container, im->image, live ? live : "(none)");
        }
        if (!first) {
            continue;
        }
        int stuck =
            w->deadline_exceeded || (w->lagging_since_ms > 0 &&
                                     now - w->lagging_since_ms >= (int64_t)o->cfg.rollout_stuck_ms);
        if (stuck) {
            blocked = 1;
            appendf(a->detail, sizeof(a->detail),
                    "; %s/%s rollout not progressing (%d/%d updated, "
                    "%d ready)%s%s",
                    im->kind, im->workload, w->updated, w->replicas, w->ready,
                    w->deadline_exceeded ? ": " : "", w->progress_message);
        }
        if (stuck || w->ready < w->replicas || w->available < w->replicas) {
            unhealthy++;
        }
    }
    if (r && r->images_truncated) {
        appendf(a->detail, sizeof(a->detail), "; more than %d images, rest not compared",
                RSRE_HELM_MAX_IMAGES);
    }
    agg_set(a, "release.drifted", drifted);
    agg_set(a, "release.rollout_blocked", blocked);
    agg_set(a, "release.unhealthy_workloads", unhealthy);
}

static void helm_pass(struct rsre_observe *o, int64_t now, struct aggvec *av) {
    struct rsre_kube_informer *inf = o->slots[RSRE_OBS_HELM_RELEASES].inf;
    size_t n = inf ? rsre_kube_informer_size(inf) : 0;
    if (!n) {
        return;
    }
    struct helm_pass hp = {.v = calloc(n, sizeof(*hp.v)), .cap = n};
    if (!hp.v) {
        return;
    }
    rsre_kube_informer_foreach(inf, helm_collect, &hp);
    qsort(hp.v, hp.n, sizeof(*hp.v), helm_cmp);
    for (size_t i = 0; i < hp.n; i++) {
        if (i > 0 && strcmp(hp.v[i]->ns, hp.v[i - 1]->ns) == 0 &&
            strcmp(hp.v[i]->name, hp.v[i - 1]->name) == 0) {
            continue; /* an older revision */
        }
        release_agg(o, hp.v[i], now, av);
    }
    free(hp.v);
}

/* ---- ingresses ---------------------------------------------------------------------------- */

struct simple_pass {
    struct rsre_observe *o;
    struct aggvec *av;
    int64_t now;
};

static int ingress_visit(void *arg, const char *ns, const char *name, const char *uid, void *obj) {
    (void)uid;
    struct simple_pass *sp = arg;
    const struct rsre_obs_ingress *in = obj;
    if (!in) {
        return 0;
    }
    struct rsre_kube_informer *svc = sp->o->slots[RSRE_OBS_SERVICES].inf;
    if (!svc || !rsre_kube_informer_synced(svc)) {
        return 0;
    }
    uint32_t missing = 0;
    char detail[RSRE_OBSERVE_DETAIL_LEN] = "";
    for (size_t i = 0; i < in->nbackends; i++) {
        if (!exists(sp->o, RSRE_OBS_SERVICES, ns, in->backends[i].service)) {
            missing++;
            appendf(detail, sizeof(detail), "%sbackend service %s/%s missing (host %s path %s)",
                    detail[0] ? "; " : "", ns, in->backends[i].service,
                    in->backends[i].host[0] ? in->backends[i].host : "*",
                    in->backends[i].path[0] ? in->backends[i].path : "/");
        }
    }
    if (!missing) {
        return 0;
    }
    struct agg *a = agg_add(sp->av, "observer:ingresses");
    if (a) {
        setf(a->scope, sizeof(a->scope), "ingress/%s/%s", ns, name);
        setf(a->detail, sizeof(a->detail), "%s", detail);
        agg_set(a, "ingress.failing_routes", missing);
    }
    return 0;
}

/* ---- events ------------------------------------------------------------------------------- */

static const struct {
    const char *reason;
    const char *signal; /* NULL: counted in the detail only */
    int aux;
} event_rows[] = {
    {"Evicted", "events.evictions_last_10m", -1},
    {"EvictionThresholdMet", "events.eviction_threshold_met", -1},
    {"FreeDiskSpaceFailed", "events.free_disk_space_failed", -1},
    {"FailedMount", NULL, 0},
    {"ImageGCFailed", NULL, 1},
};

static int event_visit(void *arg, const char *ns, const char *name, const char *uid, void *obj) {
    (void)ns;
    (void)name;
    (void)uid;
    struct simple_pass *sp = arg;
    const struct rsre_kube_event *ev = obj;
    if (!ev) {
        return 0;
    }
    size_t row = sizeof(event_rows) / sizeof(event_rows[0]);
    for (size_t i = 0; i < sizeof(event_rows) / sizeof(event_rows[0]); i++) {
        if (strcmp(ev->reason, event_rows[i].reason) == 0) {
            row = i;
        }
    }
    if (row == sizeof(event_rows) / sizeof(event_rows[0])) {
        return 0;
    }
    int64_t t = ev->last_ms    ? ev->last_ms
                : ev->event_ms ? ev->event_ms
                : ev->first_ms ? ev->first_ms
                               : ev->meta.created_ms;
    if (t <= 0 || sp->now - t > (int64_t)sp->o->cfg.event_window_ms) {
        return 0;
    }
    const char *node = strcmp(ev->involved_kind, "Node") == 0 ? ev->involved_name : ev->source_host;
    if (!node[0]) {
        return 0;
    }
    struct agg *a = agg_add(sp->av, "observer:events");
    if (!a) {
        return 0;
    }
    setf(a->scope, sizeof(a->scope), "node/%s", node);
    for (size_t i = 0; i < sizeof(event_rows) / sizeof(event_rows[0]); i++) {
        if (event_rows[i].signal) {
            agg_set(a, event_rows[i].signal, i == row ? 1 : 0);
        }
    }
    if (event_rows[row].aux >= 0) {
        a->aux[event_rows[row].aux] = 1;
    }
    return 0;
}

/* ---- recomputation ------------------------------------------------------------------------ */

static int64_t churn_in_window(struct rsre_observe *o, int64_t now) {
    int64_t n = 0;
    for (size_t i = 0; i < o->churn_n; i++) {
        size_t idx = (o->churn_head + CHURN_RING - 1 - i) % CHURN_RING;
        if (now - o->churn[idx] > (int64_t)o->cfg.churn_window_ms) {
            break;
        }
        n++;
    }
    return n;
}

static void compute(struct rsre_observe *o, int64_t now, struct aggvec *av) {
    struct pod_pass pp = {.o = o, .av = av};
    size_t from = av->n;
    if (o->slots[RSRE_OBS_PODS].inf) {
        rsre_kube_informer_foreach(o->slots[RSRE_OBS_PODS].inf, pod_visit, &pp);
    }
    agg_fold(av, from, 0);
    for (size_t i = from; i < av->n; i++) {
        if (av->v[i].aux[0] > 1) {
            appendf(av->v[i].detail, sizeof(av->v[i].detail), " (%u pods failing)",
                    av->v[i].aux[0]);
        }
    }
    helm_pass(o, now, av);
    struct simple_pass sp = {.o = o, .av = av, .now = now};
    if (o->slots[RSRE_OBS_INGRESSES].inf) {
        rsre_kube_informer_foreach(o->slots[RSRE_OBS_INGRESSES].inf, ingress_visit, &sp);
    }
    from = av->n;
    if (o->slots[RSRE_OBS_EVENTS].inf) {
        rsre_kube_informer_foreach(o->slots[RSRE_OBS_EVENTS].inf, event_visit, &sp);
    }
    agg_fold(av, from, 1);
    for (size_t i = from; i < av->n; i++) {
        struct agg *a = &av->v[i];
        setf(a->detail, sizeof(a->detail),
             "events in the last %us: Evicted %.0f, EvictionThresholdMet %.0f, "
             "FreeDiskSpaceFailed %.0f, FailedMount %u, ImageGCFailed %u",
             o->cfg.event_window_ms / 1000, a->values[0].value, a->values[1].value,
             a->values[2].value, a->aux[0], a->aux[1]);
    }
    struct agg *c = agg_add(av, "observer:jobs");
    if (c) {
        snprintf(c->scope, sizeof(c->scope), "cluster");
        int64_t churn = churn_in_window(o, now) - (int64_t)o->cfg.churn_allowance;
        agg_set(c, "jobs.finished_pods", (double)pp.finished);
        agg_set(c, "jobs.apiserver_churn", churn > 0 ? (double)churn : 0);
        setf(c->detail, sizeof(c->detail),
             "%llu Succeeded/Failed pods; %lld job creations+deletions in the last %us "
             "(allowance %u)",
             (unsigned long long)pp.finished, (long long)churn_in_window(o, now),
             o->cfg.churn_window_ms / 1000, o->cfg.churn_allowance);
    }
    if (av->n > 1) {
        qsort(av->v, av->n, sizeof(*av->v), agg_cmp);
    }
}

static int agg_same(const struct agg *a, const struct agg *b) {
    if (a->nvalues != b->nvalues || strcmp(a->detail, b->detail) != 0) {
        return 0;
    }
    for (size_t i = 0; i < a->nvalues; i++) {
        if (strcmp(a->values[i].signal, b->values[i].signal) != 0 ||
            a->values[i].value != b->values[i].value) {
            return 0;
        }
    }
    return 1;
}

static void on_settle(uv_timer_t *t);

void rsre_observe_recompute(struct rsre_observe *o) {
    if (o->closing) {
        return;
    }
    if (!rsre_observe_synced(o) && uv_now(o->loop) - o->started_ms < o->cfg.sync_grace_ms) {
        /* Until every collection is listed, owners and references may be missing: a pod whose
         * ReplicaSet is not listed yet would be counted under the wrong workload. The last
         * informer's first list (or the tick, after the grace) recomputes. */
        return;
    }
    int64_t now = wall_ms();
    struct aggvec next = {.max = o->cfg.max_scopes};
    compute(o, now, &next);
    o->stats.recomputes++;
    o->stats.scopes_dropped += next.dropped;
    /* Changes: new or different scopes, and vanished ones (emitted once with zeros). */
    size_t cap = next.n + o->cur.n;
    struct rsre_observe_aggregate *out = cap ? calloc(cap, sizeof(*out)) : NULL;
    struct agg *gone = o->cur.n ? calloc(o->cur.n, sizeof(*gone)) : NULL;
    size_t nout = 0, ngone = 0;
    if (cap && (!out || (o->cur.n && !gone))) {
        free(out);
        free(gone);
        free(next.v);
        return; /* out of memory: keep the old state, try at the next change */
    }
    size_t i = 0, j = 0;
    while (i < next.n || j < o->cur.n) {
        int c = i >= next.n ? 1 : j >= o->cur.n ? -1 : strcmp(next.v[i].scope, o->cur.v[j].scope);
        const struct agg *a = NULL;
        if (c < 0 || (c == 0 && !agg_same(&next.v[i], &o->cur.v[j]))) {
            a = &next.v[i];
        } else if (c > 0) {
            struct agg *z = &gone[ngone++];
            *z = o->cur.v[j];
            z->detail[0] = '\0';
            for (size_t k = 0; k < z->nvalues; k++) {
                z->values[k].value = 0;
            }
            a = z;
        }
        if (a) {
            out[nout++] = (struct rsre_observe_aggregate){.scope = a->scope,
                                                          .source = a->source,
                                                          .detail = a->detail,
                                                          .values = a->values,
                                                          .nvalues = a->nvalues};
        }
        if (c <= 0) {
            i++;
        }
        if (c >= 0) {
            j++;
        }
    }
    int refused = 0;
    if (nout && o->emit) {
        refused = o->emit(o->arg, out, nout) != 0;
    }
    free(out);
    free(gone);
    if (refused) {
        /* Keep what the consumer has; recompute (and send the difference) later. */
        o->stats.emit_refused++;
        free(next.v);
        if (!o->settle_armed) {
            o->settle_armed = 1;
            uv_timer_start(&o->settle, on_settle, o->cfg.retry_ms, 0);
        }
        return;
    }
    o->stats.emitted += nout;
    struct aggvec old = o->cur;
    o->cur = next;
    o->stats.scopes = next.n;
    free(old.v);
}

/* ---- informer callbacks ------------------------------------------------------------------- */

static void on_settle(uv_timer_t *t) {
    struct rsre_observe *o = t->data;
    o->settle_armed = 0;
    rsre_observe_recompute(o);
}

static void mark_dirty(struct rsre_observe *o) {
    if (!o->settle_armed && !o->closing) {
        o->settle_armed = 1;
        uv_timer_start(&o->settle, on_settle, o->cfg.settle_ms, 0);
    }
}

static void on_tick(uv_timer_t *t) {
    rsre_observe_recompute(t->data);
}

static void on_change(void *arg, enum rsre_kube_change change, const struct rsre_kube_meta *meta,
                      void *obj, void *old) {
    (void)meta;
    struct slot *s = arg;
    struct rsre_observe *o = s->o;
    int synced = s->inf && rsre_kube_informer_synced(s->inf);
    if (change == RSRE_KUBE_ADDED) {
        s->live++;
        s->added++;
    } else if (change == RSRE_KUBE_DELETED) {
        s->live--;
        s->deleted++;
    } else {
        s->modified++;
    }
    if (s->kind == RSRE_OBS_DEPLOYMENTS || s->kind == RSRE_OBS_STATEFULSETS ||
        s->kind == RSRE_OBS_DAEMONSETS) {
        struct rsre_obs_workload *w = obj;
        const struct rsre_obs_workload *prev = old;
        if (w && change != RSRE_KUBE_DELETED) {
            w->lagging_since_ms = !rsre_obs_workload_lagging(w)    ? 0
                                  : prev && prev->lagging_since_ms ? prev->lagging_since_ms
                                                                   : wall_ms();
        }
    }
    if (s->kind == RSRE_OBS_NODES && o->node_fn && obj && change != RSRE_KUBE_DELETED &&
        (change == RSRE_KUBE_ADDED || !old || !rsre_kube_node_same_state(obj, old))) {
        o->node_fn(o->node_arg, obj);
    }
    if (s->kind == RSRE_OBS_JOBS && synced && change != RSRE_KUBE_MODIFIED) {
        o->churn[o->churn_head] = wall_ms();
        o->churn_head = (o->churn_head + 1) % CHURN_RING;
        if (o->churn_n < CHURN_RING) {
            o->churn_n++;
        }
    }
    mark_dirty(o);
}

static void on_synced(void *arg) {
    struct slot *s = arg;
    mark_dirty(s->o);
}

static void on_error(void *arg, int rc, const char *msg) {
    struct slot *s = arg;
    RSRE_LOG(RSRE_LOG_DEBUG, "observe", "informer=%s rc=%s msg=\"%s\"", kinds[s->kind].name,
             rsre_strerror(rc), msg ? msg : "");
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h) {
    struct rsre_observe *o = h->data;
    if (++o->closed_handles == 2) {
        free(o->cur.v);
        free(o->core_namespaces);
        free(o->core_label);
        free(o);
    }
}

void rsre_observe_destroy(struct rsre_observe *o) {
    if (!o || o->closing) {
        return;
    }
    o->closing = 1;
    for (size_t k = 0; k < RSRE_OBS_NKINDS; k++) {
        rsre_kube_informer_stop(o->slots[k].inf);
        o->slots[k].inf = NULL;
    }
    uv_close((uv_handle_t *)&o->settle, on_closed);
    uv_close((uv_handle_t *)&o->tick, on_closed);
}

int rsre_observe_create(struct rsre_kube *kube, const struct rsre_observe_config *cfg,
                        rsre_observe_emit_fn emit, void *arg, struct rsre_observe **out) {
    *out = NULL;
    if (!kube) {
        return -EINVAL;
    }
    struct rsre_observe *o = calloc(1, sizeof(*o));
    if (!o) {
        return -ENOMEM;
    }
    if (cfg) {
        o->cfg = *cfg;
    }
    struct rsre_observe_config *c = &o->cfg;
    c->settle_ms = c->settle_ms ? c->settle_ms : 200;
    c->retry_ms = c->retry_ms ? c->retry_ms : 5000;
    c->sync_grace_ms = c->sync_grace_ms ? c->sync_grace_ms : 30000;
    c->tick_ms = c->tick_ms ? c->tick_ms : 30000;
    c->rollout_stuck_ms = c->rollout_stuck_ms ? c->rollout_stuck_ms : 600000;
    c->event_window_ms = c->event_window_ms ? c->event_window_ms : 600000;
    c->churn_window_ms = c->churn_window_ms ? c->churn_window_ms : 600000;
    c->churn_allowance = c->churn_allowance ? c->churn_allowance : 200;
    c->max_objects = c->max_objects ? c->max_objects : 10000;
    c->max_helm_secrets = c->max_helm_secrets ? c->max_helm_secrets : 2000;
    c->max_scopes = c->max_scopes ? c->max_scopes : 4096;
    o->core_namespaces = strdup(cfg && cfg->core_namespaces ? cfg->core_namespaces : "");
    o->core_label = strdup(cfg && cfg->core_label ? cfg->core_label : "");
    c->core_namespaces = c->core_label = NULL;
    if (!o->core_namespaces || !o->core_label) {
        free(o->core_namespaces);
        free(o->core_label);
        free(o);
        return -ENOMEM;
    }
    o->kube = kube;
    o->loop = rsre_kube_loop(kube);
    o->emit = emit;
    o->arg = arg;
    uv_timer_init(o->loop, &o->settle);
    uv_timer_init(o->loop, &o->tick);
    o->settle.data = o->tick.data = o;
    o->started_ms = uv_now(o->loop);
    for (size_t k = 0; k < RSRE_OBS_NKINDS; k++) {
        struct slot *s = &o->slots[k];
        s->o = o;
        s->kind = (enum rsre_observe_kind)k;
        struct rsre_kube_informer_opts io = {
            .path = kinds[k].path,
            .list_kind = kinds[k].list_kind,
            .field_selector = kinds[k].field_selector,
            .decode = kinds[k].decode,
            .free_obj = kinds[k].free_obj,
            .on_change = on_change,
            .on_synced = on_synced,
            .on_error = on_error,
            .arg = s,
            .watch_timeout_s = c->watch_timeout_s,
            .backoff_min_ms = c->backoff_min_ms,
            .backoff_max_ms = c->backoff_max_ms,
            .max_objects = k == RSRE_OBS_HELM_RELEASES ? c->max_helm_secrets : c->max_objects,
        };
        int rc = rsre_kube_informer_start(kube, &io, &s->inf);
        if (rc) {
            RSRE_LOG(RSRE_LOG_ERROR, "observe", "informer %s: %s", kinds[k].name,
                     rsre_strerror(rc));
            rsre_observe_destroy(o);
            return rc;
        }
    }
    uv_timer_start(&o->tick, on_tick, c->tick_ms, c->tick_ms);
    *out = o;
    return 0;
}

void rsre_observe_set_node_hook(struct rsre_observe *o, rsre_observe_node_fn fn, void *arg) {
    o->node_fn = fn;
    o->node_arg = arg;
}

/* ---- queries ------------------------------------------------------------------------------ */

void rsre_observe_counts(const struct rsre_observe *o, enum rsre_observe_kind k,
                         struct rsre_observe_counts *out) {
    memset(out, 0, sizeof(*out));
    if ((unsigned)k >= RSRE_OBS_NKINDS) {
        return;
    }
    const struct slot *s = &o->slots[k];
    out->live = s->live;
    out->added = s->added;
    out->modified = s->modified;
    out->deleted = s->deleted;
    if (s->inf) {
        out->cached = rsre_kube_informer_size(s->inf);
        out->synced = rsre_kube_informer_synced(s->inf);
        rsre_kube_informer_stats(s->inf, &out->stats);
    }
}

int rsre_observe_synced(const struct rsre_observe *o) {
    for (size_t k = 0; k < RSRE_OBS_NKINDS; k++) {
        if (!o->slots[k].inf || !rsre_kube_informer_synced(o->slots[k].inf)) {
            return 0;
        }
    }
    return 1;
}

int rsre_observe_get(const struct rsre_observe *o, const char *scope, const char *signal,
                     double *value) {
    const struct agg *a = agg_find(&o->cur, scope);
    for (size_t i = 0; a && i < a->nvalues; i++) {
        if (strcmp(a->values[i].signal, signal) == 0) {
            *value = a->values[i].value;
            return 0;
        }
    }
    return RSRE_ENOTFOUND;
}

const char *rsre_observe_detail(const struct rsre_observe *o, const char *scope) {
    const struct agg *a = agg_find(&o->cur, scope);
    return a ? a->detail : NULL;
}

void rsre_observe_stats(const struct rsre_observe *o, struct rsre_observe_stats *out) {
    *out = o->stats;
}
