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

/* A value of the holder's own row (derived held durations), also for per-source rows. */
static double H(const struct rsre__eval *ev, int slot) {
    return slot >= 0 ? ev->n->row[slot] : NAN;
}

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
    {"node_condition.DiskPressure", "kubelet", RSRE_EVIDENCE_STRONG, 1, 0, dp_cond, dp_cond_d, 0,
     0},
    {"node_taint.disk-pressure", "node-lifecycle-controller", RSRE_EVIDENCE_STRONG, 1, 0, dp_taint,
     dp_taint_d, 0, 0},
    {"filesystem.eviction_threshold", "agent/filesystem", RSRE_EVIDENCE_STRONG, 1, 0, fs_evict,
     fs_evict_d, 0, 0},
    {"pods.evicted_recently", "agent/pods", RSRE_EVIDENCE_STRONG, 1, 0, evicted, evicted_d, 0, 0},
    {"filesystem.filling", "agent/filesystem", RSRE_EVIDENCE_WEAK, 0, 0, fs_filling, fs_filling_d,
     0, 0},
    {"kernel.no_space", "agent/kmsg", RSRE_EVIDENCE_WEAK, 0, 0, no_space, no_space_d, 0, 0},
    {"pods.finished_backlog", "agent/pods", RSRE_EVIDENCE_WEAK, 0, 0, backlog, backlog_d, 0, 0},
    {"imagefs.gc_cannot_recover", "agent/image-gc", RSRE_EVIDENCE_WEAK, 0, 0, gc_stuck, gc_stuck_d,
     0, 0},
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
    {"node_condition.Ready", "kubelet", RSRE_EVIDENCE_STRONG, 1, 0, notready, notready_d, 0, 0},
    {"node_taint.unreachable", "node-lifecycle-controller", RSRE_EVIDENCE_STRONG, 1, 0, unreachable,
     unreachable_d, 0, 0},
    {"agent.silent", "aggregator/agent-stream", RSRE_EVIDENCE_WEAK, 0, 0, silent, silent_d, 0, 0},
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

/* Observed at scope "cluster" by a Kubernetes observer (every namespace, not only what the
 * agents see on their nodes) and the control-plane churn attributed to job objects. */
static int jobs_obs(const struct rsre__eval *ev) {
    return V(ev, SL->jobs_finished) > 200;
}

static void jobs_obs_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f finished (Succeeded/Failed) pods cluster-wide",
             V(ev, SL->jobs_finished));
}

static int jobs_churn(const struct rsre__eval *ev) {
    return V(ev, SL->jobs_churn) > 0;
}

static void jobs_churn_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "control-plane churn from job objects: %.0f", V(ev, SL->jobs_churn));
}

#define OBS_PROBE RSRE__K_PROBE
#define OBS_OBSERVER RSRE__K_OBSERVER
#define OBS_NOTIFY RSRE__K_NOTIFY
#define OBS_OTHER RSRE__K_OTHER
#define OBS_ANY RSRE__K_ANY
#define OBS_CHECKS (RSRE__K_PROBE | RSRE__K_OBSERVER)

static const struct rsre__ev_row jobs_ev[] = {
    {"pods.finished", "agent/pods", RSRE_EVIDENCE_STRONG, 1, 1, node_backlog, node_backlog_d, 0, 0},
    {"nodes.disk_pressure", "kubelet", RSRE_EVIDENCE_WEAK, 0, 0, nodes_in_pressure,
     nodes_in_pressure_d, 0, 0},
    {"jobs.finished_pods", NULL, RSRE_EVIDENCE_STRONG, 1, 0, jobs_obs, jobs_obs_d, OBS_CHECKS, 0},
    {"jobs.finished_pods_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, jobs_obs, jobs_obs_d,
     OBS_NOTIFY | OBS_OTHER, 0},
    {"jobs.apiserver_churn", NULL, RSRE_EVIDENCE_WEAK, 0, 0, jobs_churn, jobs_churn_d, OBS_ANY, 0},
};

/* --- observation-fed classes --------------------------------------------------------------
 * One table per class. Rows name the kinds of source they accept: a probe's failed check is a
 * DIRECT error from the failing component, a Kubernetes observer's reading a STRONG primary
 * signal, anything else (or a secondary signal) WEAK. A single source never corroborates itself
 * (engine/confidence.h), so one WEAK source stays low and one STRONG source medium until a
 * second source or repeated checks back it. */

static void count_d(char *b, size_t cap, double v, const char *what, double core,
                    const char *core_what) {
    if (isfinite(core) && core > 0) {
        snprintf(b, cap, "%.0f %s (%.0f %s)", v, what, core, core_what);
    } else {
        snprintf(b, cap, "%.0f %s", v, what);
    }
}

/* registry_pull_failure */
static int pull_failing(const struct rsre__eval *ev) {
    return V(ev, SL->pull_failing) >= 1 || V(ev, SL->pull_core) >= 1;
}

static void pull_failing_d(const struct rsre__eval *ev, char *b, size_t cap) {
    double n = V(ev, SL->pull_failing), c = V(ev, SL->pull_core);
    count_d(b, cap, isfinite(n) ? n : c, "workload(s) in ErrImagePull/ImagePullBackOff", c, "core");
}

static const struct rsre__ev_row pull_ev[] = {
    {"registry.pull_probe_failed", NULL, RSRE_EVIDENCE_DIRECT, 1, 0, pull_failing, pull_failing_d,
     OBS_PROBE, 0},
    {"pods.image_pull_failing", NULL, RSRE_EVIDENCE_STRONG, 1, 0, pull_failing, pull_failing_d,
     OBS_OBSERVER, 0},
    {"pull.failing_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, pull_failing, pull_failing_d,
     OBS_NOTIFY | OBS_OTHER, 0},
};

/* runtime_dependency_outage */
static int dep_failing(const struct rsre__eval *ev) {
    return V(ev, SL->dep_failing) >= 1 || V(ev, SL->dep_core) >= 1;
}

static void dep_failing_d(const struct rsre__eval *ev, char *b, size_t cap) {
    double n = V(ev, SL->dep_failing), c = V(ev, SL->dep_core), k = V(ev, SL->dep_consec);
    char w[160];
    count_d(w, sizeof(w), isfinite(n) ? n : c, "dependency check(s) failing", c, "core");
    if (isfinite(k) && k > 1) {
        snprintf(b, cap, "%s, %.0f consecutive failures", w, k);
    } else {
        snprintf(b, cap, "%s", w);
    }
}

static int dep_cascading(const struct rsre__eval *ev) {
    return V(ev, SL->dep_cascading) > 0;
}

static void dep_cascading_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f dependent workload(s) failing", V(ev, SL->dep_cascading));
}

static const struct rsre__ev_row dep_ev[] = {
    {"dependency.probe_failed", NULL, RSRE_EVIDENCE_DIRECT, 1, 0, dep_failing, dep_failing_d,
     OBS_PROBE, 1},
    {"dependency.pods_down", NULL, RSRE_EVIDENCE_STRONG, 1, 0, dep_failing, dep_failing_d,
     OBS_OBSERVER, 0},
    {"dependency.failing_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, dep_failing, dep_failing_d,
     OBS_NOTIFY | OBS_OTHER, 0},
    {"dependency.cascading", NULL, RSRE_EVIDENCE_WEAK, 0, 0, dep_cascading, dep_cascading_d,
     OBS_ANY, 0},
};

/* ingress_configuration_drift */
static int routes_failing(const struct rsre__eval *ev) {
    return V(ev, SL->ingress_failing) >= 1 || V(ev, SL->ingress_core) >= 1;
}

static void routes_failing_d(const struct rsre__eval *ev, char *b, size_t cap) {
    double n = V(ev, SL->ingress_failing), c = V(ev, SL->ingress_core);
    count_d(b, cap, isfinite(n) ? n : c, "expected route(s) not answering as expected", c, "core");
}

static int tls_failing(const struct rsre__eval *ev) {
    return V(ev, SL->tls_failures) >= 1;
}

static void tls_failing_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f TLS handshake/certificate failure(s)", V(ev, SL->tls_failures));
}

static int dns_mismatch(const struct rsre__eval *ev) {
    return V(ev, SL->dns_mismatches) >= 1;
}

static void dns_mismatch_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f DNS answer(s) differ from expected", V(ev, SL->dns_mismatches));
}

static int tls_expiring(const struct rsre__eval *ev) {
    return V(ev, SL->tls_days) < 14;
}

static void tls_expiring_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "certificate expires in %.0f day(s)", V(ev, SL->tls_days));
}

static int ingress_any(const struct rsre__eval *ev) {
    return routes_failing(ev) || tls_failing(ev) || dns_mismatch(ev);
}

static void ingress_any_d(const struct rsre__eval *ev, char *b, size_t cap) {
    routes_failing_d(ev, b, cap);
}

static const struct rsre__ev_row ingress_ev[] = {
    {"route.probe_failed", NULL, RSRE_EVIDENCE_DIRECT, 1, 0, routes_failing, routes_failing_d,
     OBS_PROBE, 0},
    {"tls.probe_failed", NULL, RSRE_EVIDENCE_DIRECT, 1, 0, tls_failing, tls_failing_d, OBS_PROBE,
     0},
    {"dns.mismatch", NULL, RSRE_EVIDENCE_STRONG, 1, 0, dns_mismatch, dns_mismatch_d, OBS_PROBE, 0},
    {"ingress.observed_broken", NULL, RSRE_EVIDENCE_STRONG, 1, 0, ingress_any, ingress_any_d,
     OBS_OBSERVER, 0},
    {"ingress.failing_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, ingress_any, ingress_any_d,
     OBS_NOTIFY | OBS_OTHER, 0},
    {"tls.expiring_soon", NULL, RSRE_EVIDENCE_WEAK, 0, 0, tls_expiring, tls_expiring_d, OBS_ANY, 0},
};

/* identity_provider_unreachable */
static int ldap_failing(const struct rsre__eval *ev) {
    return V(ev, SL->ldap_failing) == 1.0;
}

static void ldap_failing_d(const struct rsre__eval *ev, char *b, size_t cap) {
    char d[32];
    fmt_secs(H(ev, SL->ldap_held), d, sizeof(d));
    snprintf(b, cap, "LDAP bind/search failing (for %s)", d);
}

static const struct rsre__ev_row ldap_ev[] = {
    {"ldap.probe_failed", NULL, RSRE_EVIDENCE_DIRECT, 1, 0, ldap_failing, ldap_failing_d, OBS_PROBE,
     0},
    {"identity.auth_errors", NULL, RSRE_EVIDENCE_STRONG, 1, 0, ldap_failing, ldap_failing_d,
     OBS_OBSERVER, 0},
    {"identity.failing_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, ldap_failing, ldap_failing_d,
     OBS_NOTIFY | OBS_OTHER, 0},
};

/* http_error_rate_spike */
static int http_high(const struct rsre__eval *ev) {
    return V(ev, SL->http_ratio) > 0.05;
}

static void http_high_d(const struct rsre__eval *ev, char *b, size_t cap) {
    double slope = V(ev, SL->http_slope);
    char d[32];
    fmt_secs(H(ev, SL->http_held), d, sizeof(d));
    if (isfinite(slope) && slope > 0) {
        snprintf(b, cap, "5xx ratio %.1f%% (above 5%% for %s, rising %.2f%%/min)",
                 V(ev, SL->http_ratio) * 100, d, slope * 100);
    } else {
        snprintf(b, cap, "5xx ratio %.1f%% (above 5%% for %s)", V(ev, SL->http_ratio) * 100, d);
    }
}

static const struct rsre__ev_row http_ev[] = {
    {"http.5xx_ratio", NULL, RSRE_EVIDENCE_STRONG, 1, 0, http_high, http_high_d, OBS_CHECKS, 0},
    {"http.5xx_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, http_high, http_high_d,
     OBS_NOTIFY | OBS_OTHER, 0},
};

/* database_connectivity_degraded */
static int db_failing(const struct rsre__eval *ev) {
    return V(ev, SL->db_failing) == 1.0;
}

static void db_failing_d(const struct rsre__eval *ev, char *b, size_t cap) {
    (void)ev;
    snprintf(b, cap, "database ping/connect failing");
}

static const struct rsre__ev_row db_ev[] = {
    {"db.probe_failed", NULL, RSRE_EVIDENCE_DIRECT, 1, 0, db_failing, db_failing_d, OBS_PROBE, 0},
    {"db.app_connect_errors", NULL, RSRE_EVIDENCE_STRONG, 1, 0, db_failing, db_failing_d,
     OBS_OBSERVER, 0},
    {"db.failing_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, db_failing, db_failing_d,
     OBS_NOTIFY | OBS_OTHER, 0},
};

/* release_drift_or_partial_apply */
static int rel_drifted(const struct rsre__eval *ev) {
    return V(ev, SL->rel_drifted) == 1.0;
}

static void rel_drifted_d(const struct rsre__eval *ev, char *b, size_t cap) {
    (void)ev;
    snprintf(b, cap, "release failed/pending or live state differs from desired");
}

static int rel_blocked(const struct rsre__eval *ev) {
    return V(ev, SL->rel_blocked) == 1.0;
}

static void rel_blocked_d(const struct rsre__eval *ev, char *b, size_t cap) {
    (void)ev;
    snprintf(b, cap, "rollout not progressing");
}

static int rel_unhealthy(const struct rsre__eval *ev) {
    return V(ev, SL->rel_unhealthy) > 0;
}

static void rel_unhealthy_d(const struct rsre__eval *ev, char *b, size_t cap) {
    snprintf(b, cap, "%.0f unhealthy workload(s)", V(ev, SL->rel_unhealthy));
}

static const struct rsre__ev_row release_ev[] = {
    {"release.drift", NULL, RSRE_EVIDENCE_STRONG, 1, 0, rel_drifted, rel_drifted_d, OBS_CHECKS, 0},
    {"release.drift_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, rel_drifted, rel_drifted_d,
     OBS_NOTIFY | OBS_OTHER, 0},
    {"release.rollout_blocked", NULL, RSRE_EVIDENCE_WEAK, 0, 0, rel_blocked, rel_blocked_d, OBS_ANY,
     0},
    {"release.unhealthy_workloads", NULL, RSRE_EVIDENCE_WEAK, 0, 0, rel_unhealthy, rel_unhealthy_d,
     OBS_ANY, 0},
};

/* chatops_delivery_failure */
static int chat_down(const struct rsre__eval *ev) {
    return V(ev, SL->chat_down) >= 1;
}

static void chat_down_d(const struct rsre__eval *ev, char *b, size_t cap) {
    double total = V(ev, SL->chat_total);
    if (isfinite(total)) {
        snprintf(b, cap, "%.0f of %.0f operator channel(s) failing", V(ev, SL->chat_down), total);
    } else {
        snprintf(b, cap, "%.0f operator channel(s) failing", V(ev, SL->chat_down));
    }
}

static const struct rsre__ev_row chat_ev[] = {
    {"channel.send_failed", NULL, RSRE_EVIDENCE_DIRECT, 1, 0, chat_down, chat_down_d, OBS_NOTIFY,
     0},
    {"channel.probe_failed", NULL, RSRE_EVIDENCE_STRONG, 1, 0, chat_down, chat_down_d, OBS_PROBE,
     0},
    {"channel.failing_reported", NULL, RSRE_EVIDENCE_WEAK, 0, 0, chat_down, chat_down_d,
     OBS_OBSERVER | OBS_OTHER, 0},
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
    {"registry_pull_failure", RSRE__SCOPE_OBS, ROWS(pull_ev), "image pull failures", NULL},
    {"runtime_dependency_outage", RSRE__SCOPE_OBS, ROWS(dep_ev), "runtime dependency outage", NULL},
    {"ingress_configuration_drift", RSRE__SCOPE_OBS, ROWS(ingress_ev), "ingress/TLS/DNS failure",
     NULL},
    {"identity_provider_unreachable", RSRE__SCOPE_OBS, ROWS(ldap_ev), "identity provider failure",
     NULL},
    {"http_error_rate_spike", RSRE__SCOPE_OBS, ROWS(http_ev), "HTTP 5xx error rate", NULL},
    {"database_connectivity_degraded", RSRE__SCOPE_OBS, ROWS(db_ev), "database connectivity", NULL},
    {"release_drift_or_partial_apply", RSRE__SCOPE_OBS, ROWS(release_ev), "release drift", NULL},
    {"chatops_delivery_failure", RSRE__SCOPE_OBS, ROWS(chat_ev), "operator channel failure", NULL},
};
const size_t rsre__inc_nbindings = sizeof(rsre__inc_bindings) / sizeof(rsre__inc_bindings[0]);

/* --- items and summaries ------------------------------------------------------------------- */

/* The evaluation of source i's own values at the holder, when the row accepts its kind and the
 * source's values are fresh (a stale source supports nothing: its values are unknown). */
static int src_sub(const struct rsre__ev_row *row, const struct rsre__eval *ev, size_t i,
                   struct rsre__eval *sub) {
    const struct rsre__obs *o = ev->n->obs;
    if (!o || i >= o->nsrc || !(o->src[i].kind & row->src_kinds) ||
        !rsre__inc_obs_fresh(o, i, ev->now_ms)) {
        return 0;
    }
    *sub =
        (struct rsre__eval){ev->e, ev->n, rsre__inc_obs_vals(ev->e, o, i), ev->now_ms, (int)i + 1};
    return 1;
}

int rsre__inc_ev_src(const struct rsre__ev_row *row, const struct rsre__eval *ev, size_t i,
                     struct rsre__eval *sub) {
    return src_sub(row, ev, i, sub) && row->holds(sub);
}

static size_t nsrc(const struct rsre__eval *ev) {
    return ev->n->obs ? ev->n->obs->nsrc : 0;
}

int rsre__inc_ev_holds(const struct rsre__ev_row *row, const struct rsre__eval *ev) {
    if (row->src_kinds) {
        struct rsre__eval sub;
        for (size_t i = 0; i < nsrc(ev); i++) {
            if (src_sub(row, ev, i, &sub) && row->holds(&sub)) {
                return 1;
            }
        }
        return 0;
    }
    if (!row->per_node) {
        return row->holds(ev);
    }
    for (size_t i = 0; i < ev->e->nnodes; i++) {
        struct rsre__eval sub = {ev->e, ev->e->nodes[i], ev->e->rows[i], ev->now_ms, 0};
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

/* "<words> [<source>: <detail>]" for one source. */
void rsre__inc_ev_describe_src(const struct rsre__ev_row *row, const struct rsre__eval *sub,
                               char *buf, size_t cap) {
    const struct rsre__obs_src *s = &sub->n->obs->src[sub->src1 - 1];
    char words[300];
    row->describe(sub, words, sizeof(words));
    if (s->detail[0]) {
        snprintf(buf, cap, "%s [%s: %s]", words, s->name, s->detail);
    } else {
        snprintf(buf, cap, "%s [%s]", words, s->name);
    }
}

void rsre__inc_ev_describe(const struct rsre__ev_row *row, const struct rsre__eval *ev, char *buf,
                           size_t cap) {
    buf[0] = '\0';
    if (row->src_kinds) {
        size_t len = 0;
        char item[900];
        struct rsre__eval sub;
        for (size_t i = 0; i < nsrc(ev); i++) {
            if (src_sub(row, ev, i, &sub) && row->holds(&sub)) {
                rsre__inc_ev_describe_src(row, &sub, item, sizeof(item));
                append(buf, cap, &len, ", ", item);
            }
        }
        return;
    }
    if (!row->per_node) {
        row->describe(ev, buf, cap);
        return;
    }
    size_t len = 0, shown = 0;
    char item[300];
    for (size_t i = 0; i < ev->e->nnodes && shown < 8; i++) {
        struct rsre__eval sub = {ev->e, ev->e->nodes[i], ev->e->rows[i], ev->now_ms, 0};
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
        if (row->src_kinds) {
            /* One item per source: each observer is a separate reporter, with its own streak. */
            size_t b_idx = (size_t)(b - rsre__inc_bindings);
            struct rsre__eval sub;
            for (size_t i = 0; i < nsrc(ev) && n < cap; i++) {
                if (!src_sub(row, ev, i, &sub) || !row->holds(&sub)) {
                    continue;
                }
                const struct rsre__obs_src *s = &ev->n->obs->src[i];
                unsigned c = b_idx < RSRE__MAX_BIND && r < RSRE__MAX_EV ? s->streak[b_idx][r] : 1;
                double k = row->probe_streak ? V(&sub, SL->dep_consec) : NAN;
                if (isfinite(k) && k > c) {
                    c = k < 1000 ? (unsigned)k : 1000;
                }
                snprintf(srcbuf[n], sizeof(srcbuf[0]), "%s", s->name);
                items[n] =
                    (struct rsre_evidence_item){srcbuf[n], row->strength, c ? c : 1, row->primary};
                n++;
            }
            continue;
        }
        if (!row->per_node) {
            items[n++] =
                (struct rsre_evidence_item){row->source, row->strength, checks[r], row->primary};
            continue;
        }
        /* One item per node: each node's agent is a separate reporter. */
        for (size_t i = 0; i < ev->e->nnodes && n < cap; i++) {
            struct rsre__eval sub = {ev->e, ev->e->nodes[i], ev->e->rows[i], ev->now_ms, 0};
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
    int w = snprintf(buf, cap, "%s: ", rsre__inc_holder_label(ev->n));
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
