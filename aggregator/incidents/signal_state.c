/*
 * Node signal state: what each node's agent reported, mapped onto the taxonomy's signal
 * catalogue, with staleness and the derived signals (held durations, agent silence, windowed
 * counts). The map from agent signals to catalogue slots is one table (`map` below); adding a
 * signal is adding a row. docs/incidents.md "Signal map" lists it for operators.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "incidents/incidents_internal.h"

#define A(x) ROBOT_SRE__AGENT__V1__##x
typedef RobotSre__Agent__V1__FilesystemUsage fs_t;
typedef RobotSre__Agent__V1__NodeConditions cond_t;
typedef RobotSre__Agent__V1__NodeCondition cond1_t;
typedef RobotSre__Agent__V1__ImageGcState gc_t;
typedef RobotSre__Agent__V1__PodChurn pods_t;
typedef RobotSre__Agent__V1__PressureStall psi_t;

/* --- extractors: one agent message -> one value (NaN when absent or implausible) ---------- */

static double fs_used_ratio(const void *m) {
    const fs_t *f = m;
    if (f->bytes_total == 0 || f->bytes_free > f->bytes_total || f->bytes_avail > f->bytes_free) {
        return NAN;
    }
    /* As df computes Use%: used / (used + available to unprivileged users). */
    double used = (double)(f->bytes_total - f->bytes_free);
    double denom = used + (double)f->bytes_avail;
    return denom > 0 ? used / denom : 0.0;
}

static double fs_inodes_used_ratio(const void *m) {
    const fs_t *f = m;
    if (f->inodes_total == 0 || f->inodes_free > f->inodes_total) {
        return NAN;
    }
    return (double)(f->inodes_total - f->inodes_free) / (double)f->inodes_total;
}

static double fs_avail(const void *m) {
    const fs_t *f = m;
    return f->bytes_total == 0 || f->bytes_avail > f->bytes_total ? NAN : (double)f->bytes_avail;
}

static double fs_total(const void *m) {
    const fs_t *f = m;
    return f->bytes_total == 0 ? NAN : (double)f->bytes_total;
}

static double fs_tte(const void *m) {
    const fs_t *f = m;
    /* -1: not filling or no threshold; 0: already past the eviction threshold. */
    return f->seconds_to_eviction < -1 ? NAN : (double)f->seconds_to_eviction;
}

/* Ready=Unknown means the control plane lost the kubelet: not ready. */
static double cond_ready(const void *m) {
    const cond1_t *c = ((const cond_t *)m)->ready;
    if (!c || c->status == A(CONDITION_STATUS__CONDITION_STATUS_UNSPECIFIED)) {
        return NAN;
    }
    return c->status == A(CONDITION_STATUS__CONDITION_STATUS_TRUE) ? 1.0 : 0.0;
}

/* A pressure condition in Unknown (or an unknown enum value) is not known either way. */
static double cond_status(const cond1_t *c) {
    if (!c) {
        return NAN;
    }
    switch (c->status) {
    case A(CONDITION_STATUS__CONDITION_STATUS_TRUE):
        return 1.0;
    case A(CONDITION_STATUS__CONDITION_STATUS_FALSE):
        return 0.0;
    default:
        return NAN;
    }
}

static double cond_disk_pressure(const void *m) {
    return cond_status(((const cond_t *)m)->disk_pressure);
}

static double cond_memory_pressure(const void *m) {
    return cond_status(((const cond_t *)m)->memory_pressure);
}

static double cond_pid_pressure(const void *m) {
    return cond_status(((const cond_t *)m)->pid_pressure);
}

static double has_taint(const cond_t *c, const char *key) {
    for (size_t i = 0; i < c->n_taints; i++) {
        if (c->taints[i] && c->taints[i]->key && strcmp(c->taints[i]->key, key) == 0) {
            return 1.0;
        }
    }
    return 0.0;
}

static double taint_disk_pressure(const void *m) {
    return has_taint(m, "node.kubernetes.io/disk-pressure");
}

static double taint_unreachable(const void *m) {
    return has_taint(m, "node.kubernetes.io/unreachable");
}

static double gc_reclaimable(const void *m) {
    return (double)((const gc_t *)m)->reclaimable_bytes;
}

static double gc_can_recover(const void *m) {
    return ((const gc_t *)m)->gc_can_recover ? 1.0 : 0.0;
}

static double pods_succeeded(const void *m) {
    return (double)((const pods_t *)m)->succeeded;
}

static double pods_failed(const void *m) {
    return (double)((const pods_t *)m)->failed;
}

static double pods_evicted(const void *m) {
    const pods_t *p = m;
    return p->evicted > p->failed ? NAN : (double)p->evicted;
}

static double psi_some_avg10(const void *m) {
    const psi_t *p = m;
    if (!p->some || !isfinite(p->some->avg10) || p->some->avg10 < 0 || p->some->avg10 > 100) {
        return NAN;
    }
    return p->some->avg10 / 100.0; /* the catalogue's ratios are 0..1 */
}

/* --- the signal map ------------------------------------------------------------------------ */

struct map_row {
    enum rsre__raw raw;
    const char *name; /* catalogue signal, or NULL when the value is internal only */
    int internal;     /* RSRE__I_* slot for internal values, else -1 */
    enum rsre__src src;
    double (*get)(const void *msg);
};

/* Row i describes raw value i. */
static const struct map_row map[RSRE__R_COUNT] = {
    {RSRE__R_NODEFS_USED, "nodefs.used_ratio", -1, RSRE__SRC_NODEFS, fs_used_ratio},
    {RSRE__R_NODEFS_INODES_USED, "nodefs.inodes_used_ratio", -1, RSRE__SRC_NODEFS,
     fs_inodes_used_ratio},
    {RSRE__R_NODEFS_AVAIL, "nodefs.available_bytes", -1, RSRE__SRC_NODEFS, fs_avail},
    {RSRE__R_NODEFS_TTE, "nodefs.seconds_to_eviction", -1, RSRE__SRC_NODEFS, fs_tte},
    {RSRE__R_NODEFS_TOTAL, NULL, RSRE__I_NODEFS_TOTAL, RSRE__SRC_NODEFS, fs_total},
    {RSRE__R_IMAGEFS_USED, "imagefs.used_ratio", -1, RSRE__SRC_IMAGEFS, fs_used_ratio},
    {RSRE__R_IMAGEFS_AVAIL, "imagefs.available_bytes", -1, RSRE__SRC_IMAGEFS, fs_avail},
    {RSRE__R_IMAGEFS_TTE, NULL, RSRE__I_IMAGEFS_TTE, RSRE__SRC_IMAGEFS, fs_tte},
    {RSRE__R_GC_RECLAIMABLE, "imagefs.reclaimable_bytes", -1, RSRE__SRC_IMAGE_GC, gc_reclaimable},
    {RSRE__R_GC_CAN_RECOVER, "imagefs.gc_can_recover", -1, RSRE__SRC_IMAGE_GC, gc_can_recover},
    {RSRE__R_READY, "node.ready", -1, RSRE__SRC_COND, cond_ready},
    {RSRE__R_DISK_PRESSURE, "node.disk_pressure", -1, RSRE__SRC_COND, cond_disk_pressure},
    {RSRE__R_MEMORY_PRESSURE, "node.memory_pressure", -1, RSRE__SRC_COND, cond_memory_pressure},
    {RSRE__R_PID_PRESSURE, "node.pid_pressure", -1, RSRE__SRC_COND, cond_pid_pressure},
    {RSRE__R_DP_TAINT, "node.disk_pressure_taint", -1, RSRE__SRC_COND, taint_disk_pressure},
    {RSRE__R_UNREACHABLE_TAINT, "node.unreachable_taint", -1, RSRE__SRC_COND, taint_unreachable},
    {RSRE__R_PODS_SUCCEEDED, "pods.succeeded", -1, RSRE__SRC_PODS, pods_succeeded},
    {RSRE__R_PODS_FAILED, "pods.failed", -1, RSRE__SRC_PODS, pods_failed},
    {RSRE__R_PODS_EVICTED, "pods.evicted", -1, RSRE__SRC_PODS, pods_evicted},
    {RSRE__R_PSI_MEMORY, "psi.memory_some_avg10", -1, RSRE__SRC_PSI_MEMORY, psi_some_avg10},
    {RSRE__R_PSI_IO, "psi.io_some_avg10", -1, RSRE__SRC_PSI_IO, psi_some_avg10},
};

static int slot_of(const struct rsre_taxonomy *t, const char *name) {
    return rsre_taxonomy_signal_slot((void *)t, name, strlen(name));
}

int rsre__inc_signals_init(struct rsre_incident_engine *e) {
    const struct rsre_taxonomy *t = e->t;
    e->nslots = t->nsignals + RSRE__I_COUNT;
    for (int i = 0; i < RSRE__I_COUNT; i++) {
        e->sl.internal[i] = (int)t->nsignals + i;
    }
    for (size_t r = 0; r < RSRE__R_COUNT; r++) {
        if (map[r].raw != (enum rsre__raw)r) {
            return -EINVAL; /* the table is out of order: a build defect */
        }
        e->map_slot[r] = map[r].name ? slot_of(t, map[r].name) : e->sl.internal[map[r].internal];
    }
    struct {
        int *slot;
        const char *name;
    } named[] = {
        {&e->sl.ready, "node.ready"},
        {&e->sl.notready_held, "node.notready_held"},
        {&e->sl.unreachable_taint, "node.unreachable_taint"},
        {&e->sl.disk_pressure, "node.disk_pressure"},
        {&e->sl.disk_pressure_held, "node.disk_pressure_held"},
        {&e->sl.disk_pressure_taint, "node.disk_pressure_taint"},
        {&e->sl.memory_pressure, "node.memory_pressure"},
        {&e->sl.pid_pressure, "node.pid_pressure"},
        {&e->sl.agent_silent, "node.agent_silent"},
        {&e->sl.nodefs_used, "nodefs.used_ratio"},
        {&e->sl.nodefs_inodes_used, "nodefs.inodes_used_ratio"},
        {&e->sl.nodefs_avail, "nodefs.available_bytes"},
        {&e->sl.nodefs_tte, "nodefs.seconds_to_eviction"},
        {&e->sl.imagefs_used, "imagefs.used_ratio"},
        {&e->sl.imagefs_avail, "imagefs.available_bytes"},
        {&e->sl.imagefs_reclaimable, "imagefs.reclaimable_bytes"},
        {&e->sl.gc_can_recover, "imagefs.gc_can_recover"},
        {&e->sl.psi_memory, "psi.memory_some_avg10"},
        {&e->sl.psi_io, "psi.io_some_avg10"},
        {&e->sl.oom_kills, "kernel.oom_kills"},
        {&e->sl.no_space_errors, "kernel.no_space_errors"},
        {&e->sl.evictions_10m, "events.evictions_last_10m"},
        {&e->sl.eviction_threshold_met, "events.eviction_threshold_met"},
        {&e->sl.free_disk_space_failed, "events.free_disk_space_failed"},
        {&e->sl.pods_succeeded, "pods.succeeded"},
        {&e->sl.pods_failed, "pods.failed"},
        {&e->sl.pods_evicted, "pods.evicted"},
        {&e->sl.customer_facing_failing, "pods.customer_facing_failing"},
        {&e->sl.jobs_finished, "jobs.finished_pods"},
        {&e->sl.incidents_active, "incidents.active"},
        {&e->sl.pull_failing, "pull.failing_workloads"},
        {&e->sl.pull_core, "pull.failing_core_workloads"},
        {&e->sl.dep_failing, "dep.failing"},
        {&e->sl.dep_core, "dep.core_failing"},
        {&e->sl.dep_cascading, "dep.cascading"},
        {&e->sl.dep_consec, "dep.consecutive_failures"},
        {&e->sl.ingress_failing, "ingress.failing_routes"},
        {&e->sl.ingress_core, "ingress.failing_core_routes"},
        {&e->sl.tls_failures, "tls.failures"},
        {&e->sl.tls_days, "tls.days_to_expiry"},
        {&e->sl.dns_mismatches, "dns.mismatches"},
        {&e->sl.ldap_failing, "ldap.failing"},
        {&e->sl.ldap_held, "ldap.failing_held"},
        {&e->sl.http_ratio, "http.error_ratio"},
        {&e->sl.http_held, "http.error_ratio_held"},
        {&e->sl.http_slope, "http.error_ratio_slope"},
        {&e->sl.db_failing, "db.failing"},
        {&e->sl.rel_drifted, "release.drifted"},
        {&e->sl.rel_blocked, "release.rollout_blocked"},
        {&e->sl.rel_unhealthy, "release.unhealthy_workloads"},
        {&e->sl.jobs_churn, "jobs.apiserver_churn"},
        {&e->sl.chat_down, "chat.channels_down"},
        {&e->sl.chat_total, "chat.channels_total"},
    };
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        *named[i].slot = slot_of(t, named[i].name);
    }
    return 0;
}

/* --- node table ---------------------------------------------------------------------------- */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static int rehash(struct rsre_incident_engine *e, size_t cap) {
    struct rsre__node **t = calloc(cap, sizeof(*t));
    if (!t) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < e->nnodes; i++) {
        struct rsre__node *n = e->nodes[i];
        size_t h = hash_name(n->name) & (cap - 1);
        n->hnext = t[h];
        t[h] = n;
    }
    free(e->htab);
    e->htab = t;
    e->hcap = cap;
    return 0;
}

static void row_clear(double *row, size_t n) {
    for (size_t i = 0; i < n; i++) {
        row[i] = NAN;
    }
}

int rsre__inc_node_get(struct rsre_incident_engine *e, const char *name, int create,
                       struct rsre__node **out) {
    *out = NULL;
    if (e->hcap) {
        for (struct rsre__node *n = e->htab[hash_name(name) & (e->hcap - 1)]; n; n = n->hnext) {
            if (strcmp(n->name, name) == 0) {
                *out = n;
                return 0;
            }
        }
    }
    if (!create) {
        return RSRE_ENOTFOUND;
    }
    if (e->nnodes >= RSRE__MAX_NODES) {
        return RSRE_ELIMIT;
    }
    if (e->nnodes == e->capnodes) {
        size_t cap = e->capnodes ? e->capnodes * 2 : 64;
        struct rsre__node **nn = realloc(e->nodes, cap * sizeof(*nn));
        if (!nn) {
            return -ENOMEM;
        }
        e->nodes = nn;
        const double **nr = realloc(e->rows, cap * sizeof(*nr));
        if (!nr) {
            return -ENOMEM;
        }
        e->rows = nr;
        e->capnodes = cap;
    }
    if (e->nnodes + 1 > e->hcap) {
        int rc = rehash(e, e->hcap ? e->hcap * 2 : 64);
        if (rc) {
            return rc;
        }
    }
    struct rsre__node *n = calloc(1, sizeof(*n));
    if (!n || !(n->row = malloc(e->nslots * sizeof(double)))) {
        free(n);
        return -ENOMEM;
    }
    if (e->rstate_cells && !(n->rstate = calloc(e->rstate_cells, sizeof(int64_t)))) {
        free(n->row);
        free(n);
        return -ENOMEM;
    }
    size_t len = strlen(name);
    memcpy(n->name, name, len < RSRE__NODE_NAME_MAX ? len : RSRE__NODE_NAME_MAX);
    row_clear(n->row, e->nslots);
    for (size_t r = 0; r < RSRE__R_COUNT; r++) {
        n->s.raw[r] = NAN;
    }
    n->index = e->nnodes;
    e->nodes[e->nnodes] = n;
    e->rows[e->nnodes] = n->row;
    e->nnodes++;
    size_t h = hash_name(n->name) & (e->hcap - 1);
    n->hnext = e->htab[h];
    e->htab[h] = n;
    *out = n;
    return 0;
}

void rsre__inc_nodes_free(struct rsre_incident_engine *e) {
    for (size_t i = 0; i < e->nnodes; i++) {
        free(e->nodes[i]->row);
        free(e->nodes[i]->rstate);
        free(e->nodes[i]);
    }
    free(e->nodes);
    free(e->rows);
    free(e->htab);
    free(e->cluster.row);
    free(e->cluster.rstate);
}

/* --- applying signals ---------------------------------------------------------------------- */

static void ring_push(struct rsre__ring *r, int64_t t, uint32_t n) {
    r->t[r->next] = t;
    r->n[r->next] = n;
    r->next = (r->next + 1) % RSRE__RING;
}

static double ring_sum(const struct rsre__ring *r, int64_t now_ms) {
    double s = 0;
    for (unsigned i = 0; i < RSRE__RING; i++) {
        if (r->t[i] > 0 && r->t[i] > now_ms - RSRE__WINDOW_MS) {
            s += r->n[i];
        }
    }
    return s;
}

static double ring_max(const struct rsre__ring *r, int64_t now_ms) {
    double m = 0;
    for (unsigned i = 0; i < RSRE__RING; i++) {
        if (r->t[i] > 0 && r->t[i] > now_ms - RSRE__WINDOW_MS && r->n[i] > m) {
            m = r->n[i];
        }
    }
    return m;
}

/* Keeps `*since` while the condition holds: lastTransitionTime when reported, else the first
 * time this engine saw it hold; 0 when it does not hold. */
static void held_since(int64_t *since, int holds, const cond1_t *c, int64_t obs) {
    if (!holds) {
        *since = 0;
        return;
    }
    int64_t lt = c ? c->last_transition_unix_ms : 0;
    if (lt > 0) {
        *since = lt < obs ? lt : obs;
    } else if (*since == 0) {
        *since = obs;
    }
}

unsigned rsre__inc_node_apply_signal(struct rsre_incident_engine *e, struct rsre__node *n,
                                     const RobotSre__Agent__V1__Signal *sig, int64_t now_ms,
                                     int external) {
    if (!sig || sig->observed_unix_ms <= 0) {
        return 0;
    }
    int64_t obs = sig->observed_unix_ms;
    if (obs > now_ms + RSRE__FUTURE_SKEW_MS) {
        obs = now_ms;
    }
    const void *msg = NULL;
    enum rsre__src src;
    unsigned ch = RSRE__CH_ANY;
    switch (sig->kind_case) {
    case A(SIGNAL__KIND_FILESYSTEM):
        if (!(msg = sig->filesystem)) {
            return 0;
        }
        if (sig->filesystem->which == A(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS)) {
            src = RSRE__SRC_NODEFS;
        } else if (sig->filesystem->which == A(FILESYSTEM_ROLE__FILESYSTEM_ROLE_IMAGEFS)) {
            src = RSRE__SRC_IMAGEFS;
        } else {
            return 0; /* OTHER, unspecified or unknown roles are not in the catalogue */
        }
        break;
    case A(SIGNAL__KIND_NODE_CONDITIONS):
        if (!(msg = sig->node_conditions)) {
            return 0;
        }
        src = RSRE__SRC_COND;
        ch |= RSRE__CH_COND;
        break;
    case A(SIGNAL__KIND_IMAGE_GC):
        if (!(msg = sig->image_gc)) {
            return 0;
        }
        src = RSRE__SRC_IMAGE_GC;
        break;
    case A(SIGNAL__KIND_POD_CHURN):
        if (!(msg = sig->pod_churn)) {
            return 0;
        }
        src = RSRE__SRC_PODS;
        ch |= RSRE__CH_PODS;
        break;
    case A(SIGNAL__KIND_PRESSURE_STALL):
        if (!(msg = sig->pressure_stall)) {
            return 0;
        }
        if (sig->pressure_stall->resource == A(PSI_RESOURCE__PSI_RESOURCE_MEMORY)) {
            src = RSRE__SRC_PSI_MEMORY;
        } else if (sig->pressure_stall->resource == A(PSI_RESOURCE__PSI_RESOURCE_IO)) {
            src = RSRE__SRC_PSI_IO;
        } else {
            return 0;
        }
        break;
    case A(SIGNAL__KIND_KERNEL_EVENT): {
        const RobotSre__Agent__V1__KernelEvent *k = sig->kernel_event;
        if (!k) {
            return 0;
        }
        uint32_t count = 1 + (k->suppressed < 1000000 ? k->suppressed : 1000000);
        rsre__inc_save_node(e, n);
        if (k->kind == A(KERNEL_EVENT_KIND__KERNEL_EVENT_KIND_OOM_KILL)) {
            ring_push(&n->s.oom, obs, count);
        } else if (k->kind == A(KERNEL_EVENT_KIND__KERNEL_EVENT_KIND_NO_SPACE)) {
            ring_push(&n->s.no_space, obs, count);
        } else {
            return 0;
        }
        return ch;
    }
    default:
        return 0; /* pull errors are not mapped; unknown kinds from newer agents are skipped */
    }

    rsre__inc_save_node(e, n);
    int newer = 0, changed = 0;
    for (size_t r = 0; r < RSRE__R_COUNT; r++) {
        if (map[r].src != src || obs < n->s.raw_at[r]) {
            continue; /* other signal, or older than what we hold (a late resend) */
        }
        newer = 1;
        double v = map[r].get(msg);
        uint32_t ext = external ? n->s.raw_external | (1u << r) : n->s.raw_external & ~(1u << r);
        if (n->s.raw_at[r] == 0 || ext != n->s.raw_external ||
            !(v == n->s.raw[r] || (isnan(v) && isnan(n->s.raw[r])))) {
            changed = 1;
        }
        n->s.raw[r] = v;
        n->s.raw_at[r] = obs;
        n->s.raw_external = ext;
    }
    if (!newer) {
        return 0;
    }
    /* Other nodes' incidents depend on this node's conditions only through their values
     * (aggregates such as count(node.disk_pressure == 1) >= 2): a conditions report that
     * repeats them does not re-assess every node with an open incident (the engine's
     * after_change), which cost O(open incidents) per batch (docs/performance.md). */
    if (!changed) {
        ch &= ~(unsigned)RSRE__CH_COND;
    }
    if (src == RSRE__SRC_COND) {
        const cond_t *c = msg;
        held_since(&n->s.dp_since_ms, n->s.raw[RSRE__R_DISK_PRESSURE] == 1.0, c->disk_pressure,
                   obs);
        held_since(&n->s.notready_since_ms, n->s.raw[RSRE__R_READY] == 0.0, c->ready, obs);
    } else if (src == RSRE__SRC_PODS) {
        const pods_t *p = msg;
        n->s.have_pods = 1;
        if (p->evicted_in_window > 0) {
            ring_push(&n->s.evictions, obs, p->evicted_in_window);
        }
    }
    return ch;
}

/* --- evaluation rows ----------------------------------------------------------------------- */

int rsre__inc_node_silent(const struct rsre_incident_engine *e, const struct rsre__node *n,
                          int64_t now_ms) {
    int64_t ref = n->s.last_seen_ms ? n->s.last_seen_ms : n->s.baseline_ms;
    return ref > 0 && now_ms - ref > e->cfg.agent_silence_ms;
}

static void put(double *row, int slot, double v) {
    if (slot >= 0) {
        row[slot] = v;
    }
}

static double held_s(int64_t since, int64_t now_ms) {
    return since > 0 && now_ms > since ? (double)(now_ms - since) / 1000.0 : 0.0;
}

void rsre__inc_node_refresh(struct rsre_incident_engine *e, struct rsre__node *n, int64_t now_ms) {
    const struct rsre__slots *sl = &e->sl;
    double *row = n->row;
    int silent = rsre__inc_node_silent(e, n, now_ms);
    int alive = n->s.last_seen_ms > 0 && !silent;
    for (size_t r = 0; r < RSRE__R_COUNT; r++) {
        double v = n->s.raw[r];
        if (n->s.raw_at[r] == 0 || (silent && !(n->s.raw_external & (1u << r)))) {
            v = NAN; /* never reported, or its agent went silent: unknown */
        }
        put(row, e->map_slot[r], v);
    }
    double ready_reported = sl->ready >= 0 ? row[sl->ready] : NAN;
    put(row, sl->internal[RSRE__I_READY_REPORTED], ready_reported);

    /* A silent agent reads as Ready=Unknown, as the node controller itself concludes when the
     * kubelet stops posting, unless an external source reports the condition. */
    double ready = ready_reported;
    int64_t ref = n->s.last_seen_ms ? n->s.last_seen_ms : n->s.baseline_ms;
    int64_t notready_since = ready_reported == 0.0 ? n->s.notready_since_ms : 0;
    if (silent && !(n->s.raw_external & (1u << RSRE__R_READY))) {
        ready = 0.0;
        notready_since = notready_since && notready_since < ref ? notready_since : ref;
    }
    put(row, sl->ready, ready);
    put(row, sl->notready_held,
        ready == 0.0   ? held_s(notready_since, now_ms)
        : ready == 1.0 ? 0.0
                       : NAN);
    double dp = sl->disk_pressure >= 0 ? row[sl->disk_pressure] : NAN;
    put(row, sl->disk_pressure_held,
        dp == 1.0   ? held_s(n->s.dp_since_ms, now_ms)
        : dp == 0.0 ? 0.0
                    : NAN);
    put(row, sl->agent_silent, ref > 0 ? (double)(now_ms - ref) / 1000.0 : NAN);
    put(row, sl->evictions_10m, n->s.have_pods && alive ? ring_max(&n->s.evictions, now_ms) : NAN);
    put(row, sl->oom_kills, alive ? ring_sum(&n->s.oom, now_ms) : NAN);
    put(row, sl->no_space_errors, alive ? ring_sum(&n->s.no_space, now_ms) : NAN);
    put(row, sl->jobs_finished, e->cluster_jobs_finished);
    put(row, sl->incidents_active, e->incidents_active);
}

void rsre__inc_cluster_refresh(struct rsre_incident_engine *e, int64_t now_ms) {
    double jobs = 0;
    int known = 0;
    size_t open = 0;
    for (size_t i = 0; i < e->nnodes; i++) {
        const struct rsre__node *n = e->nodes[i];
        double s = n->s.raw[RSRE__R_PODS_SUCCEEDED], f = n->s.raw[RSRE__R_PODS_FAILED];
        if (n->s.have_pods && !rsre__inc_node_silent(e, n, now_ms) && isfinite(s) && isfinite(f)) {
            jobs += s + f;
            known = 1;
        }
        for (size_t b = 0; b < rsre__inc_nbindings; b++) {
            open += n->s.inc[b] && rsre_lifecycle_is_open(n->s.inc[b]->state);
        }
    }
    for (size_t i = 0; i <= e->nscopes; i++) {
        const struct rsre__node *h = i < e->nscopes ? e->scopes[i] : &e->cluster;
        for (size_t b = 0; b < rsre__inc_nbindings; b++) {
            open += h->s.inc[b] && rsre_lifecycle_is_open(h->s.inc[b]->state);
        }
    }
    e->cluster_jobs_finished = known ? jobs : NAN;
    e->incidents_active = (double)open;
    row_clear(e->cluster.row, e->nslots);
    put(e->cluster.row, e->sl.jobs_finished, e->cluster_jobs_finished);
    put(e->cluster.row, e->sl.incidents_active, e->incidents_active);
    if (e->cluster.obs) {
        rsre__inc_obs_refresh(e, &e->cluster, now_ms);
    }
}
