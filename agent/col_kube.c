/*
 * Collector "kube": the Kubernetes API's view of this node (common/kube.h informers).
 *
 * Two informers, both filtered by the API server: the node itself
 * (fieldSelector metadata.name=NODE) and the pods bound to it (spec.nodeName=NODE). From them:
 *
 *   - NodeConditions: Ready, DiskPressure, MemoryPressure, PIDPressure, NetworkUnavailable,
 *     taints and unschedulable. Emitted when any of them changes (heartbeat-only updates are
 *     not changes) and at every resync (kube_resync_ms, the row's interval).
 *   - PodChurn: pods by phase (Evicted = Failed with reason Evicted), restarts in total, and
 *     restarts / evictions seen since the previous PodChurn signal (window_sec covers that
 *     span). Emitted when the counts change (after the first list) and at every resync. The
 *     CRI-derived fields (containers created/exited, sandboxes, exited containers) are left 0:
 *     they belong to the CRI collector.
 *   - PullError: one per container waiting in ErrImagePull / ImagePullBackOff /
 *     InvalidImageName (and the other image errors), with the waiting message. Emitted when a
 *     container enters that state or its reason or message changes, and at every resync while
 *     it lasts. `attempts` counts the times the container entered ErrImagePull.
 *
 * Every signal is validated (common/pbuf.h) before it is emitted; an object that would make
 * an invalid signal is logged and skipped, never sent.
 *
 * The computations are pure functions (rsre__col_kube_*) that tests call directly.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/error.h"
#include "common/kube.h"
#include "common/kube_json.h"
#include "common/kube_proto.h"
#include "common/log.h"
#include "common/pbuf.h"

#define MOD "col_kube"
#define M(x) RobotSre__Agent__V1__##x
#define E(x) ROBOT_SRE__AGENT__V1__##x

/* ---- pure computations (exported for tests) ----------------------------------------------- */

/* Fills *pc from counts and the window counters. window_sec is raised to at least 1. */
void rsre__col_kube_pod_churn(const struct rsre_kube_pod_counts *c, uint32_t window_sec,
                              uint32_t restarts_in_window, uint32_t evicted_in_window,
                              M(PodChurn) * pc);

/*
 * When container c of pod p is waiting on an image problem, fills *pe (strings point into p
 * and c) and returns 1; returns 0 otherwise.
 */
int rsre__col_kube_pull_error(const struct rsre_kube_pod *p, const struct rsre_kube_container *c,
                              M(PullError) * pe);

void rsre__col_kube_pod_churn(const struct rsre_kube_pod_counts *c, uint32_t window_sec,
                              uint32_t restarts_in_window, uint32_t evicted_in_window,
                              M(PodChurn) * pc) {
    static const M(PodChurn) init = ROBOT_SRE__AGENT__V1__POD_CHURN__INIT;
    *pc = init;
    pc->window_sec = window_sec ? window_sec : 1;
    pc->running = c->running;
    pc->pending = c->pending;
    pc->succeeded = c->succeeded;
    pc->failed = c->failed;
    pc->evicted = c->evicted;
    pc->unknown = c->unknown;
    pc->restarts_total = c->restarts_total;
    pc->restarts_in_window = restarts_in_window;
    pc->evicted_in_window = evicted_in_window;
}

int rsre__col_kube_pull_error(const struct rsre_kube_pod *p, const struct rsre_kube_container *c,
                              M(PullError) * pe) {
    static const M(PullError) init = ROBOT_SRE__AGENT__V1__PULL_ERROR__INIT;
    if (c->state != RSRE_KUBE_CSTATE_WAITING) {
        return 0;
    }
    enum rsre_kube_pull_reason r = rsre_kube_pull_reason(c->reason);
    if (r == RSRE_KUBE_PULL_NONE) {
        return 0;
    }
    *pe = init;
    pe->pod_namespace = (char *)p->meta.ns;
    pe->pod_name = (char *)p->meta.name;
    pe->container = (char *)c->name;
    pe->image = c->image ? c->image : (char *)"";
    pe->reason = (M(PullErrorReason))r; /* same values (kube_json.h) */
    pe->message = c->message ? c->message : (char *)"";
    return 1;
}

/* ---- collector state ---------------------------------------------------------------------- */

/* One container stuck on its image. */
struct pull_track {
    struct pull_track *next;
    char pod_uid[RSRE_KUBE_UID_LEN];
    char ns[RSRE_KUBE_NS_LEN];
    char pod[RSRE_KUBE_NAME_LEN];
    char container[RSRE_KUBE_NS_LEN];
    int reason;
    char *message;
    uint32_t attempts;
    int64_t first_seen_ms;
    int seen; /* mark for the sweep over one pod's containers */
};

struct col_kube {
    struct rsre_agent *a;
    struct rsre_kube_informer *node_inf, *pod_inf;
    char node[RSRE_KUBE_NAME_LEN];
    int pods_synced;
    struct rsre_kube_pod_counts last; /* counts in the last PodChurn sent */
    int churn_sent;
    int64_t window_start_ms;
    uint32_t restarts_in_window, evicted_in_window;
    struct pull_track *pulls;
    uint64_t invalid_signals;
};

/* Validates and emits one signal. */
static void send_signal(struct col_kube *st, rsre_signal *s, const char *what) {
    char err[256];
    s->observed_unix_ms = rsre_now_unix_ms();
    if (rsre_pbuf_validate(&s->base, err, sizeof(err)) != 0) {
        st->invalid_signals++;
        RSRE_LOG(RSRE_LOG_WARN, MOD, "signal not sent kind=%s err=\"%s\"", what, err);
        return;
    }
    int rc = rsre_agent_emit(st->a, s);
    if (rc != 0) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "emit failed kind=%s err=\"%s\"", what, rsre_strerror(rc));
    }
}

static void emit_node(struct col_kube *st, const struct rsre_kube_node *n) {
    M(NodeConditions) nc;
    M(NodeCondition) cond[RSRE_KUBE_NODE_NCOND];
    M(Taint) taints[RSRE_KUBE_MAX_TAINTS];
    M(Taint) * ptrs[RSRE_KUBE_MAX_TAINTS];
    rsre_kube_node_conditions_pb(n, &nc, cond, taints, ptrs);
    rsre_signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
    s.kind_case = E(SIGNAL__KIND_NODE_CONDITIONS);
    s.node_conditions = &nc;
    send_signal(st, &s, "node_conditions");
}

static int count_one(void *arg, const char *ns, const char *name, const char *uid, void *obj) {
    (void)ns;
    (void)name;
    (void)uid;
    if (obj) {
        rsre_kube_pod_count(obj, arg);
    }
    return 0;
}

static void emit_churn(struct col_kube *st, int force) {
    struct rsre_kube_pod_counts c = {0};
    rsre_kube_informer_foreach(st->pod_inf, count_one, &c);
    if (!force && st->churn_sent && memcmp(&c, &st->last, sizeof(c)) == 0 &&
        st->restarts_in_window == 0 && st->evicted_in_window == 0) {
        return;
    }
    int64_t now = rsre_now_unix_ms();
    int64_t span = (now - st->window_start_ms) / 1000;
    M(PodChurn) pc;
    rsre__col_kube_pod_churn(&c, span > 0 ? (uint32_t)(span > UINT32_MAX ? UINT32_MAX : span) : 1,
                             st->restarts_in_window, st->evicted_in_window, &pc);
    rsre_signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
    s.kind_case = E(SIGNAL__KIND_POD_CHURN);
    s.pod_churn = &pc;
    send_signal(st, &s, "pod_churn");
    st->last = c;
    st->churn_sent = 1;
    st->window_start_ms = now;
    st->restarts_in_window = st->evicted_in_window = 0;
}

static void emit_pull(struct col_kube *st, const struct pull_track *t, const char *image) {
    M(PullError) pe = ROBOT_SRE__AGENT__V1__PULL_ERROR__INIT;
    pe.pod_namespace = (char *)t->ns;
    pe.pod_name = (char *)t->pod;
    pe.container = (char *)t->container;
    pe.image = (char *)(image ? image : "");
    pe.reason = (M(PullErrorReason))t->reason;
    pe.message = t->message ? t->message : (char *)"";
    pe.attempts = t->attempts;
    pe.first_seen_unix_ms = t->first_seen_ms;
    rsre_signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
    s.kind_case = E(SIGNAL__KIND_PULL_ERROR);
    s.pull_error = &pe;
    send_signal(st, &s, "pull_error");
}

static void free_track(struct pull_track *t) {
    free(t->message);
    free(t);
}

/* Drops the trackers of pod `uid` (all of them when keep_seen is 0, else the unmarked ones). */
static void sweep_pulls(struct col_kube *st, const char *uid, int keep_seen) {
    struct pull_track **pp = &st->pulls;
    while (*pp) {
        struct pull_track *t = *pp;
        if (strcmp(t->pod_uid, uid) == 0 && !(keep_seen && t->seen)) {
            *pp = t->next;
            free_track(t);
        } else {
            pp = &t->next;
        }
    }
}

static const char *image_of(const struct rsre_kube_pod *p, const char *container) {
    for (size_t i = 0; p && i < p->ncontainers; i++) {
        if (strcmp(p->containers[i].name, container) == 0) {
            return p->containers[i].image;
        }
    }
    return NULL;
}

/* Updates the pull-error trackers of one pod, emitting new and changed ones. */
static void update_pulls(struct col_kube *st, const struct rsre_kube_pod *p) {
    for (struct pull_track *t = st->pulls; t; t = t->next) {
        if (strcmp(t->pod_uid, p->meta.uid) == 0) {
            t->seen = 0;
        }
    }
    for (size_t i = 0; i < p->ncontainers; i++) {
        const struct rsre_kube_container *c = &p->containers[i];
        M(PullError) pe;
        if (!rsre__col_kube_pull_error(p, c, &pe)) {
            continue;
        }
        struct pull_track *t = st->pulls;
        while (t && !(strcmp(t->pod_uid, p->meta.uid) == 0 && strcmp(t->container, c->name) == 0)) {
            t = t->next;
        }
        int changed = 0;
        if (!t) {
            t = calloc(1, sizeof(*t));
            if (!t) {
                continue;
            }
            snprintf(t->pod_uid, sizeof(t->pod_uid), "%s", p->meta.uid);
            snprintf(t->ns, sizeof(t->ns), "%s", p->meta.ns);
            snprintf(t->pod, sizeof(t->pod), "%s", p->meta.name);
            snprintf(t->container, sizeof(t->container), "%s", c->name);
            t->first_seen_ms = rsre_now_unix_ms();
            t->next = st->pulls;
            st->pulls = t;
            changed = 1;
        }
        if (t->reason != (int)pe.reason) {
            if (pe.reason == E(PULL_ERROR_REASON__PULL_ERROR_REASON_ERR_IMAGE_PULL) ||
                t->attempts == 0) {
                t->attempts++;
            }
            t->reason = (int)pe.reason;
            changed = 1;
        }
        if (strcmp(t->message ? t->message : "", pe.message) != 0) {
            free(t->message);
            t->message = strdup(pe.message);
            changed = 1;
        }
        t->seen = 1;
        if (changed) {
            emit_pull(st, t, c->image);
        }
    }
    sweep_pulls(st, p->meta.uid, 1);
}

/* Counts restarts and evictions that happened between two versions of a pod. */
static void count_window(struct col_kube *st, const struct rsre_kube_pod *p,
                         const struct rsre_kube_pod *old) {
    if (!old) {
        return;
    }
    for (size_t i = 0; i < p->ncontainers; i++) {
        const struct rsre_kube_container *c = &p->containers[i];
        for (size_t j = 0; j < old->ncontainers; j++) {
            const struct rsre_kube_container *o = &old->containers[j];
            if (o->init == c->init && strcmp(o->name, c->name) == 0) {
                if (c->restart_count > o->restart_count) {
                    st->restarts_in_window += (uint32_t)(c->restart_count - o->restart_count);
                }
                break;
            }
        }
    }
    if (rsre_kube_pod_evicted(p) && !rsre_kube_pod_evicted(old)) {
        st->evicted_in_window++;
    }
}

/* ---- informer callbacks ------------------------------------------------------------------- */

static int decode_node(const json_t *obj, void **out, char *err, size_t err_len) {
    return rsre_kube_node_decode(obj, (struct rsre_kube_node **)out, err, err_len);
}

static int decode_pod(const json_t *obj, void **out, char *err, size_t err_len) {
    return rsre_kube_pod_decode(obj, (struct rsre_kube_pod **)out, err, err_len);
}

static void free_node(void *p) {
    rsre_kube_node_free(p);
}

static void free_pod(void *p) {
    rsre_kube_pod_free(p);
}

static void node_changed(void *arg, enum rsre_kube_change ch, const struct rsre_kube_meta *m,
                         void *obj, void *old) {
    struct col_kube *st = arg;
    if (strcmp(m->name, st->node) != 0) {
        return; /* the field selector should make this impossible */
    }
    if (ch == RSRE_KUBE_DELETED) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "own node object deleted node=%s", st->node);
        return;
    }
    if (ch == RSRE_KUBE_MODIFIED && old && rsre_kube_node_same_state(obj, old)) {
        return;
    }
    emit_node(st, obj);
}

static void pod_changed(void *arg, enum rsre_kube_change ch, const struct rsre_kube_meta *m,
                        void *obj, void *old) {
    struct col_kube *st = arg;
    const struct rsre_kube_pod *p = obj;
    if (ch == RSRE_KUBE_DELETED) {
        sweep_pulls(st, m->uid, 0);
    } else if (p) {
        if (ch == RSRE_KUBE_MODIFIED) {
            count_window(st, p, old);
        }
        update_pulls(st, p);
    }
    if (st->pods_synced) {
        emit_churn(st, 0);
    }
}

static void pods_synced(void *arg) {
    struct col_kube *st = arg;
    st->pods_synced = 1;
    emit_churn(st, 0);
}

/* ---- the row ------------------------------------------------------------------------------ */

static void kube_destroy(void *state) {
    struct col_kube *st = state;
    if (!st) {
        return;
    }
    rsre_kube_informer_stop(st->node_inf);
    rsre_kube_informer_stop(st->pod_inf);
    while (st->pulls) {
        struct pull_track *t = st->pulls;
        st->pulls = t->next;
        free_track(t);
    }
    free(st);
}

static int kube_init(struct rsre_agent *a, void **state) {
    *state = NULL;
    struct rsre_kube *k = rsre_agent_kube(a);
    const struct rsre_agent_config *cfg = rsre_agent_config(a);
    if (!k) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "no Kubernetes API configured: collector disabled");
        return RSRE_ENOTFOUND;
    }
    if (!cfg->node_name[0] || strlen(cfg->node_name) >= RSRE_KUBE_NAME_LEN) {
        return RSRE_EINVALID;
    }
    struct col_kube *st = calloc(1, sizeof(*st));
    if (!st) {
        return -ENOMEM;
    }
    st->a = a;
    snprintf(st->node, sizeof(st->node), "%s", cfg->node_name);
    st->window_start_ms = rsre_now_unix_ms();
    char sel[RSRE_KUBE_NAME_LEN + 32];
    snprintf(sel, sizeof(sel), "metadata.name=%s", st->node);
    struct rsre_kube_informer_opts no = {
        .path = "/api/v1/nodes",
        .list_kind = "NodeList",
        .field_selector = sel,
        .decode = decode_node,
        .free_obj = free_node,
        .on_change = node_changed,
        .arg = st,
        .max_objects = 4,
        .max_list_bytes = 4u << 20,
    };
    int rc = rsre_kube_informer_start(k, &no, &st->node_inf);
    if (rc != 0) {
        free(st);
        return rc;
    }
    snprintf(sel, sizeof(sel), "spec.nodeName=%s", st->node);
    struct rsre_kube_informer_opts po = {
        .path = "/api/v1/pods",
        .list_kind = "PodList",
        .field_selector = sel,
        .decode = decode_pod,
        .free_obj = free_pod,
        .on_change = pod_changed,
        .on_synced = pods_synced,
        .arg = st,
        .max_objects = 2048, /* kubelet's maxPods is 110 by default, 250 at most on most clouds */
    };
    rc = rsre_kube_informer_start(k, &po, &st->pod_inf);
    if (rc != 0) {
        kube_destroy(st);
        return rc;
    }
    *state = st;
    return 0;
}

static int resend_pull(void *arg, const char *ns, const char *name, const char *uid, void *obj) {
    (void)ns;
    (void)name;
    struct col_kube *st = arg;
    for (struct pull_track *t = st->pulls; t; t = t->next) {
        if (strcmp(t->pod_uid, uid) == 0) {
            emit_pull(st, t, image_of(obj, t->container));
        }
    }
    return 0;
}

/* Resync: re-sends the current state (the informers keep it current between resyncs). */
static void kube_collect(struct rsre_agent *a, void *state, struct rsre_collect_run *run) {
    (void)a;
    struct col_kube *st = state;
    struct rsre_kube_informer_stats ns, ps;
    rsre_kube_informer_stats(st->node_inf, &ns);
    rsre_kube_informer_stats(st->pod_inf, &ps);
    int missing = 0;
    if (rsre_kube_informer_synced(st->node_inf)) {
        const struct rsre_kube_node *n = rsre_kube_informer_get(st->node_inf, "", st->node, NULL);
        if (n) {
            emit_node(st, n);
        } else {
            /* Most likely NODE_NAME is not this node's Kubernetes name. */
            RSRE_LOG(RSRE_LOG_WARN, MOD, "node not found in the API node=%s", st->node);
            missing = 1;
        }
    }
    if (st->pods_synced) {
        emit_churn(st, 1);
        rsre_kube_informer_foreach(st->pod_inf, resend_pull, st);
    }
    /* Report the informers' health: a list or watch that keeps failing is this collector
     * failing, even though the last known state was re-sent. */
    int rc = ns.last_rc ? ns.last_rc : ps.last_rc;
    if (rc == 0 && missing) {
        rc = RSRE_ENOTFOUND;
    }
    rsre_collect_done(run, rc);
}

const struct rsre_collector_desc rsre_collector_kube = {
    .name = "kube",
    .interval_offset = offsetof(struct rsre_agent_config, kube_resync_ms),
    .init = kube_init,
    .collect = kube_collect,
    .destroy = kube_destroy,
    .capability = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_NODE_CONDITIONS,
};
