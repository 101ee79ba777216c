/*
 * Which incident classes the engine evaluates, at which scope, and the evidence each class
 * can have: one table per class (`*_ev` below), one row per kind of evidence with its source,
 * strength and the predicate over the evaluation row. Confidence is rsre_confidence_band over
 * the rows that hold (docs/incidents.md "Evidence and confidence" explains every row).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "incidents/incidents_internal.h"

static double V(const struct rsre__eval *ev, int slot) {
    return slot >= 0 ? ev->row[slot] : NAN;
}

#define SL (&ev->e->sl)

void rsre__inc_fmt_bytes(double v, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (!isfinite(v) || v < 0) {
        snprintf(buf, cap, "?");
        return;
    }
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void rsre__inc_fmt_duration(int64_t ms, char *buf, size_t cap) {
    int64_t s = ms > 0 ? ms / 1000 : 0;
    if (s < 60) {
        snprintf(buf, cap, "%llds", (long long)s);
    } else if (s < 3600) {
        snprintf(buf, cap, "%lldm", (long long)(s / 60));
    } else if (s / 60 % 60 == 0) {
        snprintf(buf, cap, "%lldh", (long long)(s / 3600));
    } else {
        snprintf(buf, cap, "%lldh%lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
    }
}

static void fmt_secs(double s, char *buf, size_t cap) {
    rsre__inc_fmt_duration(isfinite(s) ? (int64_t)(s * 1000) : 0, buf, cap);
}

/* --- node_disk_pressure ---------------------------------------------------------------------- */

static int dp_cond(const struct rsre__eval *ev) {
    return V(ev, SL->disk_pressure) == 1.0;
}

static void dp_cond_d(const struct rsre__eval *ev, char *b, size_t cap) {
    char d[32];
    fmt_secs(V(ev, SL->disk_pressure_held), d, sizeof(d));
    snprintf(b, cap, "DiskPressure=True for %s", d);
}

static int dp_taint(const struct rsre__eval *ev) {
    return V(ev, SL->disk_pressure_taint) == 1.0;
}

static void dp_taint_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "taint node.kubernetes.io/disk-pressure");
}

static int fs_evict(const struct rsre__eval *ev) {
    return V(ev, SL->nodefs_tte) == 0.0 || V(ev, SL->internal[RSRE__I_IMAGEFS_TTE]) == 0.0;
}

/* "nodefs 96% used (1.2 GiB available)" for whichever filesystems are known. */
static size_t fs_words(const struct rsre__eval *ev, char *b, size_t cap) {
    size_t len = 0;
    struct {
        const char *name;
        int used, avail;
    } fs[] = {{"nodefs", SL->nodefs_used, SL->nodefs_avail},
              {"imagefs", SL->imagefs_used, SL->imagefs_avail}};
    for (size_t i = 0; i < 2 && len < cap; i++) {
        double u = V(ev, fs[i].used);
        if (!isfinite(u)) {
            continue;
        }
        char a[32];
        rsre__inc_fmt_bytes(V(ev, fs[i].avail), a, sizeof(a));
        int w = snprintf(b + len, cap - len, "%s%s %.0f%% used (%s available)", len ? ", " : "",
                         fs[i].name, u * 100, a);
        len += w > 0 ? (size_t)w : 0;
    }
    return len < cap ? len : cap - 1;
}

static void fs_evict_d(const struct rsre__eval *ev, char *b, size_t cap) {
    size_t len = fs_words(ev, b, cap);
    snprintf(b + len, cap - len, "%spast the kubelet eviction threshold", len ? ", " : "");
}

/* Filling, but not yet past the threshold (that is the strong row, same source). */
static int fs_filling(const struct rsre__eval *ev) {
    double tte = V(ev, SL->nodefs_tte);
    return !fs_evict(ev) && (V(ev, SL->nodefs_used) > 0.85 || V(ev, SL->imagefs_used) > 0.85 ||
                             (tte > 0 && tte < 1800));
}

static void fs_filling_d(const struct rsre__eval *ev, char *b, size_t cap) {
    size_t len = fs_words(ev, b, cap);
    double tte = V(ev, SL->nodefs_tte);
    if (tte > 0 && len < cap) {
        char d[32];
        fmt_secs(tte, d, sizeof(d));
        snprintf(b + len, cap - len, "%snodefs eviction threshold in %s", len ? ", " : "", d);
    }
}

static int evicted(const struct rsre__eval *ev) {
    return V(ev, SL->evictions_10m) > 0;
}

static void evicted_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f pods evicted in the last 10m", V(ev, SL->evictions_10m));
}

static int no_space(const struct rsre__eval *ev) {
    return V(ev, SL->no_space_errors) > 0;
}

static void no_space_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f 'No space left on device' kernel errors in the last 10m",
             V(ev, SL->no_space_errors));
}

static double finished(const struct rsre__eval *ev) {
    return V(ev, SL->pods_succeeded) + V(ev, SL->pods_failed);
}

static int backlog(const struct rsre__eval *ev) {
    return finished(ev) >= 50;
}

static void backlog_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f finished (Succeeded/Failed) pods on the node", finished(ev));
}

static int gc_stuck(const struct rsre__eval *ev) {
    return V(ev, SL->gc_can_recover) == 0.0;
}

static void gc_stuck_d(const struct rsre__eval *ev, char *b, size_t cap) {
    char r[32];
    rsre__inc_fmt_bytes(V(ev, SL->imagefs_reclaimable), r, sizeof(r));
    snprintf(b, cap, "image GC cannot bring imagefs under its low threshold (%s reclaimable)", r);
}

static const struct rsre__ev_row disk_pressure_ev[] = {
    {"node_condition.DiskPressure", "kubelet", RSRE_EVIDENCE_STRONG, 1, 0, dp_cond, dp_cond_d},
    {"node_taint.disk-pressure", "node-lifecycle-controller", RSRE_EVIDENCE_STRONG, 1, 0, dp_taint,
     dp_taint_d},
    {"filesystem.eviction_threshold", "agent/filesystem", RSRE_EVIDENCE_STRONG, 1, 0, fs_evict,
     fs_evict_d},
    {"pods.evicted_recently", "agent/pods", RSRE_EVIDENCE_STRONG, 1, 0, evicted, evicted_d},
    {"filesystem.filling", "agent/filesystem", RSRE_EVIDENCE_WEAK, 0, 0, fs_filling, fs_filling_d},
    {"kernel.no_space", "agent/kmsg", RSRE_EVIDENCE_WEAK, 0, 0, no_space, no_space_d},
    {"pods.finished_backlog", "agent/pods", RSRE_EVIDENCE_WEAK, 0, 0, backlog, backlog_d},
    {"imagefs.gc_cannot_recover", "agent/image-gc", RSRE_EVIDENCE_WEAK, 0, 0, gc_stuck, gc_stuck_d},
};

/* --- node_unreachable_or_notready ------------------------------------------------------------ */

static int notready(const struct rsre__eval *ev) {
    return V(ev, SL->internal[RSRE__I_READY_REPORTED]) == 0.0;
}

static void notready_d(const struct rsre__eval *ev, char *b, size_t cap) {
    char d[32];
    fmt_secs(V(ev, SL->notready_held), d, sizeof(d));
    snprintf(b, cap, "Ready=False/Unknown for %s", d);
}

static int unreachable(const struct rsre__eval *ev) {
    return V(ev, SL->unreachable_taint) == 1.0;
}

static void unreachable_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "taint node.kubernetes.io/unreachable");
}

static int silent(const struct rsre__eval *ev) {
    return rsre__inc_node_silent(ev->e, ev->n, ev->now_ms);
}

static void silent_d(const struct rsre__eval *ev, char *b, size_t cap) {
    char d[32];
    fmt_secs(V(ev, SL->agent_silent), d, sizeof(d));
    snprintf(b, cap, "agent silent for %s", d);
}

static const struct rsre__ev_row unreachable_ev[] = {
    {"node_condition.Ready", "kubelet", RSRE_EVIDENCE_STRONG, 1, 0, notready, notready_d},
    {"node_taint.unreachable", "node-lifecycle-controller", RSRE_EVIDENCE_STRONG, 1, 0, unreachable,
     unreachable_d},
    {"agent.silent", "aggregator/agent-stream", RSRE_EVIDENCE_WEAK, 0, 0, silent, silent_d},
};

/* --- background_job_buildup (cluster) ----------------------------------------------------------
 */

static int node_backlog(const struct rsre__eval *ev) {
    return finished(ev) >= 20;
}

static void node_backlog_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%s: %.0f finished pods", ev->n->name, finished(ev));
}

static int nodes_in_pressure(const struct rsre__eval *ev) {
    for (size_t i = 0; i < ev->e->nnodes; i++) {
        if (SL->disk_pressure >= 0 && ev->e->rows[i][SL->disk_pressure] == 1.0) {
            return 1;
        }
    }
    return 0;
}

static void nodes_in_pressure_d(const struct rsre__eval *ev, char *b, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < ev->e->nnodes; i++) {
        k += SL->disk_pressure >= 0 && ev->e->rows[i][SL->disk_pressure] == 1.0;
    }
    snprintf(b, cap, "%zu node(s) in disk pressure", k);
}

static const struct rsre__ev_row jobs_ev[] = {
    {"pods.finished", "agent/pods", RSRE_EVIDENCE_STRONG, 1, 1, node_backlog, node_backlog_d},
    {"nodes.disk_pressure", "kubelet", RSRE_EVIDENCE_WEAK, 0, 0, nodes_in_pressure,
     nodes_in_pressure_d},
};

static int64_t *dp_since(struct rsre__node_state *s) {
    return &s->dp_since_ms;
}

static int64_t *notready_since(struct rsre__node_state *s) {
    return &s->notready_since_ms;
}

#define ROWS(a) a, sizeof(a) / sizeof(a[0])

const struct rsre__binding rsre__inc_bindings[] = {
    {"node_disk_pressure", RSRE__SCOPE_NODE, ROWS(disk_pressure_ev), "disk pressure", dp_since},
    {"node_unreachable_or_notready", RSRE__SCOPE_NODE, ROWS(unreachable_ev),
     "node unreachable / NotReady", notready_since},
    {"background_job_buildup", RSRE__SCOPE_CLUSTER, ROWS(jobs_ev), "background job buildup", NULL},
};
const size_t rsre__inc_nbindings = sizeof(rsre__inc_bindings) / sizeof(rsre__inc_bindings[0]);

/* --- items and summaries ------------------------------------------------------------------- */

int rsre__inc_ev_holds(const struct rsre__ev_row *row, const struct rsre__eval *ev) {
    if (!row->per_node) {
        return row->holds(ev);
    }
    for (size_t i = 0; i < ev->e->nnodes; i++) {
        struct rsre__eval sub = {ev->e, ev->e->nodes[i], ev->e->rows[i], ev->now_ms};
        if (row->holds(&sub)) {
            return 1;
        }
    }
    return 0;
}

static void append(char *buf, size_t cap, size_t *len, const char *sep, const char *s) {
    if (*len + 1 >= cap) {
        return;
    }
    int w = snprintf(buf + *len, cap - *len, "%s%s", *len ? sep : "", s);
    *len += w > 0 ? (size_t)w : 0;
    if (*len >= cap) {
        *len = cap - 1;
    }
}

void rsre__inc_ev_describe(const struct rsre__ev_row *row, const struct rsre__eval *ev, char *buf,
                           size_t cap) {
    buf[0] = '\0';
    if (!row->per_node) {
        row->describe(ev, buf, cap);
        return;
    }
    size_t len = 0, shown = 0;
    char item[300];
    for (size_t i = 0; i < ev->e->nnodes && shown < 8; i++) {
        struct rsre__eval sub = {ev->e, ev->e->nodes[i], ev->e->rows[i], ev->now_ms};
        if (row->holds(&sub)) {
            row->describe(&sub, item, sizeof(item));
            append(buf, cap, &len, ", ", item);
            shown++;
        }
    }
}

size_t rsre__inc_evidence_items(const struct rsre__binding *b, const struct rsre__eval *ev,
                                const unsigned *checks, struct rsre_evidence_item *items,
                                size_t cap, char (*srcbuf)[300]) {
    size_t n = 0;
    for (size_t r = 0; r < b->nev && n < cap; r++) {
        const struct rsre__ev_row *row = &b->ev[r];
        if (checks[r] == 0) {
            continue;
        }
        if (!row->per_node) {
            items[n++] =
                (struct rsre_evidence_item){row->source, row->strength, checks[r], row->primary};
            continue;
        }
        /* One item per node: each node's agent is a separate reporter. */
        for (size_t i = 0; i < ev->e->nnodes && n < cap; i++) {
            struct rsre__eval sub = {ev->e, ev->e->nodes[i], ev->e->rows[i], ev->now_ms};
            if (row->holds(&sub)) {
                snprintf(srcbuf[n], sizeof(srcbuf[0]), "%s@%s", row->source, sub.n->name);
                items[n] =
                    (struct rsre_evidence_item){srcbuf[n], row->strength, checks[r], row->primary};
                n++;
            }
        }
    }
    return n;
}

void rsre__inc_evidence_summary(const struct rsre__binding *b, const struct rsre__eval *ev,
                                char *buf, size_t cap) {
    int w = snprintf(buf, cap, "%s: ", ev->n->name[0] ? ev->n->name : "cluster");
    size_t start = w > 0 && (size_t)w < cap ? (size_t)w : 0;
    size_t len = 0;
    char item[600];
    for (size_t r = 0; r < b->nev; r++) {
        if (rsre__inc_ev_holds(&b->ev[r], ev)) {
            rsre__inc_ev_describe(&b->ev[r], ev, item, sizeof(item));
            char *body = buf + start;
            append(body, cap - start, &len, "; ", item);
        }
    }
    if (len == 0) {
        snprintf(buf + start, cap - start, "no evidence holds now");
    }
}

void rsre__inc_evidence_raw(const struct rsre__eval *ev, char *buf, size_t cap) {
    const struct rsre_taxonomy *t = ev->e->t;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->nsignals; i++) {
        double v = ev->row[i];
        if (!isfinite(v)) {
            continue;
        }
        char item[128];
        snprintf(item, sizeof(item), "%s=%.6g", t->signals[i].name, v);
        append(buf, cap, &len, " ", item);
    }
}
