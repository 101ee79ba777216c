#ifndef RSRE_INCIDENTS_INTERNAL_H
#define RSRE_INCIDENTS_INTERNAL_H

/*
 * Private declarations of the incident engine, shared by its modules:
 *
 *   signal_state.c  agent signals -> per-node raw values (the signal map table), staleness,
 *                   derived signals, the evaluation rows the expressions read
 *   evidence.c      which classes the engine evaluates and at which scope (the binding table),
 *                   evidence items per class (table), confidence, summaries
 *   engine.c        create/destroy, apply/tick, thresholds, incidents, exit windows, loading
 *   records.c       ids, audit, Incident records (every evidence-schema field), transitions
 *   txn.c           the undo log (abort rolls memory back) and effects released after commit
 *   plan.c          targets, policy decisions, cooldown keys, auto actions, approval requests
 *                   and their prompt, standing records of what did not run
 *   approvals.c     approvals of an incident, cancel, expire, decided, action results
 *   observe.c       observations from the aggregator's own probes/observers/channels: scope
 *                   holders, per-source values, streaks, held durations; rules reload
 *
 * Everything here is owned by the engine and touched only from the loop thread that owns it.
 */

#include <stddef.h>
#include <stdint.h>

#include "engine/confidence.h"
#include "engine/expr.h"
#include "engine/lifecycle.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"
#include "incidents/engine.h"
#include "store/store.h"

#define RSRE__INC_MOD "incidents"
#define RSRE__ACTOR "robot-sre"
#define RSRE__NODE_NAME_MAX 253
#define RSRE__MAX_NODES 100000
#define RSRE__MAX_BIND 16         /* classes the engine evaluates (binding table rows) */
#define RSRE__MAX_EV 12           /* evidence rows per class */
#define RSRE__MAX_EV_REFS 64      /* Evidence records one incident keeps (raw_evidence_refs) */
#define RSRE__MAX_LIST_ITEMS 1024 /* bound on any repeated string field the engine writes */
#define RSRE__RING 16             /* windowed event counters */
#define RSRE__WINDOW_MS (10 * 60 * 1000)     /* "in the last window" of kernel.* and events.* */
#define RSRE__FUTURE_SKEW_MS (5 * 60 * 1000) /* observations further ahead are clamped to now */
#define RSRE__SCOPE_MAX 253                  /* observation scope length ("dependency/redis") */
#define RSRE__MAX_SCOPES 4096                /* observation scopes held at once */
#define RSRE__OBS_SOURCES 8                  /* independent sources per scope */
#define RSRE__OBS_SOURCE_MAX 63              /* source name length ("probe:redis") */
#define RSRE__OBS_DETAIL_MAX 512 /* detail text kept per source (longer: RSRE_EINVALID) */
#define RSRE__OBS_VALUES 32      /* (signal, value) pairs in one observation */
#define RSRE__OBS_SOURCE_IDLE_MS (60 * 60 * 1000) /* a source silent this long may be replaced */
#define RSRE__OBS_FRESH_MIN_MS 1000               /* bounds of an observation's fresh_ms */
#define RSRE__OBS_FRESH_MAX_MS (7LL * 24 * 60 * 60 * 1000)

/* --- raw per-node values (signal_state.c's map table writes them) ----------------------- */

/* Where a raw value comes from: one agent signal kind (and sub-kind). */
enum rsre__src {
    RSRE__SRC_NODEFS,
    RSRE__SRC_IMAGEFS,
    RSRE__SRC_COND,
    RSRE__SRC_IMAGE_GC,
    RSRE__SRC_PODS,
    RSRE__SRC_PSI_MEMORY,
    RSRE__SRC_PSI_IO,
};

/* Raw values kept per node. Order = rows of the map table in signal_state.c. */
enum rsre__raw {
    RSRE__R_NODEFS_USED,
    RSRE__R_NODEFS_INODES_USED,
    RSRE__R_NODEFS_AVAIL,
    RSRE__R_NODEFS_TTE,
    RSRE__R_NODEFS_TOTAL,
    RSRE__R_IMAGEFS_USED,
    RSRE__R_IMAGEFS_AVAIL,
    RSRE__R_IMAGEFS_TTE,
    RSRE__R_GC_RECLAIMABLE,
    RSRE__R_GC_CAN_RECOVER,
    RSRE__R_READY,
    RSRE__R_DISK_PRESSURE,
    RSRE__R_MEMORY_PRESSURE,
    RSRE__R_PID_PRESSURE,
    RSRE__R_DP_TAINT,
    RSRE__R_UNREACHABLE_TAINT,
    RSRE__R_PODS_SUCCEEDED,
    RSRE__R_PODS_FAILED,
    RSRE__R_PODS_EVICTED,
    RSRE__R_PSI_MEMORY,
    RSRE__R_PSI_IO,
    RSRE__R_COUNT
};

/* Internal evaluation slots after the catalogue's (expressions cannot name them). */
enum rsre__internal {
    RSRE__I_READY_REPORTED, /* node.ready as reported (NaN when stale), before inference */
    RSRE__I_NODEFS_TOTAL,
    RSRE__I_IMAGEFS_TTE,
    RSRE__I_COUNT
};

/* Catalogue slots the engine reads by name; -1 when the taxonomy lacks the signal. */
struct rsre__slots {
    int ready, notready_held, unreachable_taint, disk_pressure, disk_pressure_held,
        disk_pressure_taint, memory_pressure, pid_pressure, agent_silent, nodefs_used,
        nodefs_inodes_used, nodefs_avail, nodefs_tte, imagefs_used, imagefs_avail,
        imagefs_reclaimable, gc_can_recover, psi_memory, psi_io, oom_kills, no_space_errors,
        evictions_10m, eviction_threshold_met, free_disk_space_failed, pods_succeeded, pods_failed,
        pods_evicted, customer_facing_failing, jobs_finished, incidents_active;
    /* observation signals */
    int pull_failing, pull_core, dep_failing, dep_core, dep_cascading, dep_consec, ingress_failing,
        ingress_core, tls_failures, tls_days, dns_mismatches, ldap_failing, ldap_held, http_ratio,
        http_held, http_slope, db_failing, rel_drifted, rel_blocked, rel_unhealthy, jobs_churn,
        chat_down, chat_total;
    int internal[RSRE__I_COUNT]; /* nsignals + i */
};

/* Events counted over a sliding window (kernel events, evictions). */
struct rsre__ring {
    int64_t t[RSRE__RING];
    uint32_t n[RSRE__RING];
    unsigned next;
};

struct rsre__inc;
struct rsre__obs;

/* The part of a node that a transaction may change (saved whole for undo). */
struct rsre__node_state {
    int64_t last_seen_ms; /* last batch or Hello from the node's agent (aggregator clock) */
    int64_t baseline_ms;  /* silence counts from here when the agent was never seen */
    char boot_id[40];
    double raw[RSRE__R_COUNT];
    int64_t raw_at[RSRE__R_COUNT]; /* observation time of each raw value (0 = never) */
    uint32_t raw_external;         /* bit r: raw[r] came from an external (non-agent) source */
    int64_t dp_since_ms;           /* DiskPressure=True since (0: not in pressure) */
    int64_t notready_since_ms;     /* Ready!=True since (0: ready or unknown) */
    int have_pods;                 /* a PodChurn arrived: eviction counts are known */
    struct rsre__ring evictions, oom, no_space;
    struct rsre__inc *inc[RSRE__MAX_BIND]; /* by binding index */
};

/* A node, the cluster holder, or an observation scope holder. */
struct rsre__node {
    char name[RSRE__NODE_NAME_MAX + 1]; /* "" for the cluster holder and scope holders */
    char scope[RSRE__SCOPE_MAX + 1];    /* observation scope ("dependency/redis"); "" otherwise */
    struct rsre__obs *obs; /* observed values (scope holders, the cluster holder), or NULL */
    uint64_t obs_undo_gen;
    size_t index; /* position in e->nodes (rows) */
    struct rsre__node *hnext;
    struct rsre__node_state s;
    uint64_t undo_gen;
    double *row;     /* evaluation row, e->nslots values */
    int64_t *rstate; /* `for` state cells of operator thresholds (e->rstate_cells), or NULL */
};

/* --- evidence and class bindings (evidence.c) -------------------------------------------- */

/* NODE: one incident per node; CLUSTER: the cluster holder; OBS: one per observation scope. */
enum rsre__scope { RSRE__SCOPE_NODE, RSRE__SCOPE_CLUSTER, RSRE__SCOPE_OBS };

struct rsre__eval {
    const struct rsre_incident_engine *e;
    const struct rsre__node *n; /* node, the cluster holder or a scope holder */
    const double *row;
    int64_t now_ms;
    int src1; /* per-source rows: 1 + the holder's source index whose values `row` is; 0 none */
};

/* Kinds of observation source, by the prefix of its name (docs/incidents.md "Feeding the
 * engine"): "probe:" the aggregator's own checks, "observer:" Kubernetes observers, "notify:"
 * operator channels' delivery results; anything else is OTHER. */
enum {
    RSRE__K_PROBE = 1,
    RSRE__K_OBSERVER = 2,
    RSRE__K_NOTIFY = 4,
    RSRE__K_OTHER = 8,
    RSRE__K_ANY = 15,
};

/* One kind of evidence a class may have. `per_node` rows (cluster scope) yield one item per
 * node for which `holds` is true on that node's row, with source "<source>@<node>".
 * `src_kinds` rows (observations) yield one item per observation source of the holder whose
 * kind is in the mask and whose own values make `holds` true; the item's source is the
 * observation's `source` and its checks the consecutive observations of that source in which
 * the row held (for rows with `probe_streak`, at least the probe's reported
 * dep.consecutive_failures). */
struct rsre__ev_row {
    const char *kind;   /* Evidence.kind */
    const char *source; /* Evidence.source and confidence source (not for src_kinds rows) */
    enum rsre_evidence_strength strength;
    int primary;
    int per_node;
    int (*holds)(const struct rsre__eval *ev);
    void (*describe)(const struct rsre__eval *ev, char *buf, size_t cap);
    unsigned src_kinds;
    int probe_streak;
};

/* An incident class the engine evaluates, with its scope and evidence. */
struct rsre__binding {
    const char *class_id;
    enum rsre__scope scope;
    const struct rsre__ev_row *ev;
    size_t nev;
    const char *problem; /* words for prompts: "disk pressure" */
    /* The node's held-since clock an open incident of this class seeds when the engine starts
     * on a store (so "pressure persists >10m" survives a restart when the node reports no
     * lastTransitionTime); NULL for none. */
    int64_t *(*held_since)(struct rsre__node_state *s);
};

/* --- observations (observe.c) --------------------------------------------------------------- */

/* One source's view of a scope. */
struct rsre__obs_src {
    char name[RSRE__OBS_SOURCE_MAX + 1];
    char detail[RSRE__OBS_DETAIL_MAX + 1];
    unsigned kind;          /* RSRE__K_* */
    int64_t seen_ms;        /* its last observation */
    int64_t asserted_ms;    /* its last observation or refresh */
    int64_t fresh_until_ms; /* its values count up to here; after it they are stale (unknown) */
    double http_prev;       /* http.error_ratio at http_prev_ms, for the derived slope */
    int64_t http_prev_ms;
    uint16_t streak[RSRE__MAX_BIND][RSRE__MAX_EV]; /* consecutive observations the row held */
    uint32_t recorded[RSRE__MAX_BIND];             /* rows with an Evidence record this episode */
};

/* The observed state of one scope: sources and their values (one block, copied whole for
 * undo). vals: nsrc rows of e->nslots doubles (NaN = never given), after the struct. */
struct rsre__obs {
    size_t nsrc;
    int64_t ldap_since_ms; /* aggregate ldap.failing == 1 since (0: not failing) */
    int64_t http_since_ms; /* aggregate http.error_ratio above the threshold since */
    struct rsre__obs_src src[RSRE__OBS_SOURCES];
    double vals[];
};

/* Whether source i's values count at now_ms (not past its freshness bound). */
int rsre__inc_obs_fresh(const struct rsre__obs *o, size_t i, int64_t now_ms);
/* Whether some source of the holder has values that are fresh at now_ms. */
int rsre__inc_obs_any_fresh(const struct rsre_incident_engine *e, const struct rsre__node *h,
                            int64_t now_ms);
/* Stale sources of the holder that have values, at now_ms; with `buf`, "probe:redis (last
 * observed 4m ago), ..." for summaries. */
size_t rsre__inc_obs_stale(const struct rsre_incident_engine *e, const struct rsre__node *h,
                           int64_t now_ms, char *buf, size_t cap);
/* Renews `source` at every holder (rsre_incident_engine_observe_refresh); calls back for each
 * holder where a stale source came back so the caller evaluates it. */
int rsre__inc_obs_renew(struct rsre_incident_engine *e, const char *source, int64_t fresh_ms,
                        int64_t now_ms, int (*back)(void *arg, struct rsre__node *h), void *arg);
/* The values row of source i. */
double *rsre__inc_obs_vals(const struct rsre_incident_engine *e, const struct rsre__obs *o,
                           size_t i);
/* Allocates the holder's observation block (all NaN). */
int rsre__inc_obs_attach(struct rsre_incident_engine *e, struct rsre__node *h);
/* Finds (or creates) the scope holder of `scope` ("cluster" is the cluster holder). */
int rsre__inc_scope_get(struct rsre_incident_engine *e, const char *scope, int create,
                        struct rsre__node **out);
/* Overlays the holder's observed values (aggregated over sources) and the derived held
 * durations onto its evaluation row. */
void rsre__inc_obs_refresh(struct rsre_incident_engine *e, struct rsre__node *h, int64_t now_ms);
/* Whether any observation-fed evidence row of binding b holds at the holder (the gate an
 * observation class needs besides its threshold). */
int rsre__inc_obs_gate(const struct rsre_incident_engine *e, size_t b, const struct rsre__eval *ev);
/* The row exit expressions read at an observation scope: the holder's row with the count and
 * bool signals no source ever reported read as 0 (healthy), so a class resolves on what is
 * observed ("ingress/..." from an observer that checks routes but not TLS). A signal that only
 * stale sources have stays unknown, and with no fresh source at all (every one stale, or none
 * since a restart) nothing reads as healthy: staleness never meets exit criteria. Returns
 * e->exit_row. */
const double *rsre__inc_obs_exit_row(struct rsre_incident_engine *e, const struct rsre__node *h,
                                     int64_t now_ms);
/* Sizes and slot lists of the observation path (after the signal slots are known). */
int rsre__inc_obs_init(struct rsre_incident_engine *e);
/* The holder's label: node name, scope, or "cluster". */
const char *rsre__inc_holder_label(const struct rsre__node *h);
/* Saves the holder's observation block for undo once per transaction. */
void rsre__inc_save_obs(struct rsre_incident_engine *e, struct rsre__node *h);
/* A new episode of an incident of binding b at h: its per-source evidence is recorded again. */
void rsre__inc_obs_episode(struct rsre__node *h, size_t b);
/* Seeds the held-since clocks of an open incident loaded from the store. */
void rsre__inc_obs_seed(struct rsre_incident_engine *e, struct rsre__node *h, size_t b,
                        int64_t opened_ms);
void rsre__inc_scopes_free(struct rsre_incident_engine *e);
/* A scope an observation may name: 1..RSRE__SCOPE_MAX printable ASCII bytes without spaces,
 * not "node=..." (fingerprints of node incidents). "cluster" is the cluster holder. */
int rsre__inc_scope_valid(const char *scope);
/* A source name an observation may give (1..RSRE__OBS_SOURCE_MAX printable bytes). */
int rsre__inc_source_valid(const char *source);
/* Checks an observation (RSRE_EINVALID: docs/incidents.md "Feeding the engine") and fills
 * slots[i] with the catalogue slot of values[i]. Changes nothing. */
int rsre__inc_obs_validate(const struct rsre_incident_engine *e, const struct rsre_observation *obs,
                           int *slots);
/* Stores a validated observation at holder h (which has an observation block): the source's
 * values, detail, derived slope, held-since clocks and evidence streaks. RSRE_ELIMIT when the
 * scope has RSRE__OBS_SOURCES sources and none idle long enough to be replaced. */
int rsre__inc_obs_apply(struct rsre_incident_engine *e, struct rsre__node *h,
                        const struct rsre_observation *obs, const int *slots, int64_t now_ms);

extern const struct rsre__binding rsre__inc_bindings[];
extern const size_t rsre__inc_nbindings;

/* Whether a row holds at `ev` (per-node rows: on any node) and its words. */
int rsre__inc_ev_holds(const struct rsre__ev_row *row, const struct rsre__eval *ev);
void rsre__inc_ev_describe(const struct rsre__ev_row *row, const struct rsre__eval *ev, char *buf,
                           size_t cap);
/* Whether source i of the holder is of a kind the src_kinds row accepts and its own values make
 * the row hold; fills *sub with the evaluation on that source's values. */
int rsre__inc_ev_src(const struct rsre__ev_row *row, const struct rsre__eval *ev, size_t i,
                     struct rsre__eval *sub);
/* The words of a src_kinds row for one source (`sub` from that source), with its detail. */
void rsre__inc_ev_describe_src(const struct rsre__ev_row *row, const struct rsre__eval *sub,
                               char *buf, size_t cap);
/* Evidence items of binding `b` at `ev`, with checks from `checks` (rows with checks 0 do not
 * hold). Fills at most `cap` items; `srcbuf` (cap entries) holds per-node source strings. */
size_t rsre__inc_evidence_items(const struct rsre__binding *b, const struct rsre__eval *ev,
                                const unsigned *checks, struct rsre_evidence_item *items,
                                size_t cap, char (*srcbuf)[300]);
/* The one-line summary of what holds now: "node-a: DiskPressure=True for 4m; ...". */
void rsre__inc_evidence_summary(const struct rsre__binding *b, const struct rsre__eval *ev,
                                char *buf, size_t cap);
/* "name=value ..." of every known catalogue signal of the row (Evidence.raw). */
void rsre__inc_evidence_raw(const struct rsre__eval *ev, char *buf, size_t cap);
/* "1.2 GiB", "3m", "96%": small formatting helpers. */
void rsre__inc_fmt_bytes(double v, char *buf, size_t cap);
void rsre__inc_fmt_duration(int64_t ms, char *buf, size_t cap);

/* --- incidents (engine.c) ----------------------------------------------------------------- */

struct rsre__inc {
    char id[RSRE_STORE_ID_MAX + 1];
    size_t b; /* binding index */
    struct rsre__node *holder;
    enum rsre_state state;
    enum rsre_severity severity;
    enum rsre_confidence confidence;
    int64_t opened_ms, resolved_ms, exit_since_ms;
    unsigned checks[RSRE__MAX_EV];
    uint32_t ev_recorded;                /* evidence rows with an Evidence record */
    char rule_id[RSRE_STORE_ID_MAX + 1]; /* the rule whose threshold opened it */
    uint32_t rule_version;
    int firing; /* a threshold held at the last evaluation */
    int dirty;  /* the store record needs rewriting */
    uint64_t undo_gen;
};

/* A working copy of an Incident record's lists (what the engine appends to). */
struct rsre__strlist {
    char **v;
    size_t n, cap;
};

struct rsre__rec {
    int loaded, exists, dirty;
    struct rsre__strlist sources, refs, recommended, executed;
    char summary[1024];
    int approval_state; /* RobotSre__Store__ApprovalState */
    double confidence_score;
};

int rsre__inc_strlist_add(struct rsre__strlist *l, const char *s, int unique);
void rsre__inc_strlist_clear(struct rsre__strlist *l);
int rsre__inc_strlist_has(const struct rsre__strlist *l, const char *s);

/* Effects released after commit. */
struct rsre__effect {
    int kind; /* 0 execute, 1 notify */
    struct rsre_planned_action pa;
    char *strs;      /* owns the planned action's strings */
    uint8_t *packed; /* notify: packed Incident */
    size_t packed_len;
    const char *what; /* static */
};

struct rsre__undo {
    int kind; /* RSRE__U_* */
    void *obj;
    void *copy;
};

enum { RSRE__U_NODE, RSRE__U_INC, RSRE__U_NEW_INC, RSRE__U_RETIRE_INC, RSRE__U_OBS };

/* Operator rules applicable to one binding (with their `for` state offsets). */
struct rsre__app {
    const struct rsre_rule *const *rules;
    size_t n;
    size_t *state_off; /* per rule: offset into a node's rstate, (size_t)-1 when stateless */
};

struct rsre_incident_engine {
    rsre_store *store;
    struct rsre_incident_engine_config cfg;
    struct rsre_incident_engine_hooks hooks;
    struct rsre_ruleset *own_rules; /* when cfg.rules was NULL */
    const struct rsre_ruleset *rules;
    const struct rsre_taxonomy *t;
    const struct rsre_incident_def *defs[RSRE__MAX_BIND]; /* by binding; NULL = unknown */
    const struct rsre_rule *builtin[RSRE__MAX_BIND];      /* builtin.<class> by binding */
    struct rsre__app app[RSRE__MAX_BIND];
    size_t rstate_cells;
    struct rsre__slots sl;
    int map_slot[RSRE__R_COUNT];
    size_t nslots; /* catalogue signals + internal slots */

    struct rsre__node **nodes; /* rows; index = node->index */
    const double **rows;
    size_t nnodes, capnodes;
    struct rsre__node **htab;
    size_t hcap;
    struct rsre__node cluster;
    struct rsre__node **scopes; /* observation scope holders */
    size_t nscopes, capscopes;
    size_t obs_size;                /* bytes of one struct rsre__obs with its values */
    double *exit_row;               /* scratch row for exit expressions at observation scopes */
    int obs_zero[RSRE__OBS_VALUES]; /* count/bool observation slots (healthy = 0) */
    size_t nobs_zero;
    double cluster_jobs_finished; /* cached aggregate, NaN when unknown */
    double incidents_active;
    int64_t first_now_ms, last_now_ms;
    int undo_failed; /* an undo entry could not be recorded: abort reloads from the store */

    struct rsre__effect *fx;
    size_t nfx, capfx;
    struct rsre__undo *undo;
    size_t nundo, capundo;
    uint64_t gen;
};

/* --- signal_state.c ------------------------------------------------------------------------ */

int rsre__inc_signals_init(struct rsre_incident_engine *e);
/* Finds the node by name, creating it when `create` (RSRE_ELIMIT past RSRE__MAX_NODES). */
int rsre__inc_node_get(struct rsre_incident_engine *e, const char *name, int create,
                       struct rsre__node **out);
/* Applies one signal to the node's raw state. Returns a mask of RSRE__CH_* (0: nothing). */
unsigned rsre__inc_node_apply_signal(struct rsre_incident_engine *e, struct rsre__node *n,
                                     const RobotSre__Agent__V1__Signal *sig, int64_t now_ms,
                                     int external);
enum { RSRE__CH_ANY = 1, RSRE__CH_COND = 2, RSRE__CH_PODS = 4 };
/* Whether the node's agent counts as silent at now_ms. */
int rsre__inc_node_silent(const struct rsre_incident_engine *e, const struct rsre__node *n,
                          int64_t now_ms);
/* Recomputes the node's evaluation row (staleness, inference, derived signals). */
void rsre__inc_node_refresh(struct rsre_incident_engine *e, struct rsre__node *n, int64_t now_ms);
/* Recomputes the cluster aggregates and the cluster holder's row. */
void rsre__inc_cluster_refresh(struct rsre_incident_engine *e, int64_t now_ms);
void rsre__inc_nodes_free(struct rsre_incident_engine *e);

/* --- engine.c helpers used by plan.c ------------------------------------------------------ */

/* Undo: saves the object's state once per transaction before its first change (txn.c). */
int rsre__inc_undo_push(struct rsre_incident_engine *e, int kind, void *obj, void *copy);
/* Drops the undo log (rolling back) and queued effects, and frees them (destroy). */
void rsre__inc_txn_free(struct rsre_incident_engine *e);
void rsre__inc_save_node(struct rsre_incident_engine *e, struct rsre__node *n);
void rsre__inc_save_inc(struct rsre_incident_engine *e, struct rsre__inc *inc);
int rsre__inc_audit(rsre_store_txn *txn, const char *verb, const char *object, const char *reason,
                    const char *detail, int64_t now_ms);
/* Moves `inc` by `ev`: 1 moved (audited, notify queued), 0 not allowed here, <0 error. */
int rsre__inc_transition(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__inc *inc,
                         enum rsre_lc_event ev, const char *reason, int64_t now_ms);
void rsre__inc_fingerprint(const struct rsre__inc *inc, char *buf, size_t cap);
/* Loads the store's incidents into the engine / frees them (engine.c). */
int rsre__inc_load(struct rsre_incident_engine *e);
void rsre__inc_free_incidents(struct rsre_incident_engine *e);
int rsre__inc_rec_load(rsre_store_txn *txn, const struct rsre__inc *inc, struct rsre__rec *rec);
int rsre__inc_rec_save(struct rsre_incident_engine *e, rsre_store_txn *txn,
                       const struct rsre__inc *inc, struct rsre__rec *rec, int64_t now_ms);
void rsre__inc_rec_free(struct rsre__rec *rec);
int rsre__inc_queue_execute(struct rsre_incident_engine *e, const struct rsre_planned_action *pa);
int rsre__inc_queue_notify(struct rsre_incident_engine *e, rsre_store_txn *txn,
                           const struct rsre__inc *inc, const char *what);
struct rsre__inc *rsre__inc_by_id(struct rsre_incident_engine *e, const char *id);
/* snprintf whose truncation is intended (bounded texts); returns the untruncated length. */
int rsre__inc_fmt(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rsre__inc_new_id(rsre_store_txn *txn, const char *seq, const char *prefix, char *buf,
                     size_t cap);

/* Store enum mappings. */
int rsre__inc_store_state(enum rsre_state s);
int rsre__inc_store_severity(enum rsre_severity s);
int rsre__inc_store_confidence(enum rsre_confidence c);

/* --- plan.c -------------------------------------------------------------------------------- */

/* Passes every action of the incident's class plan through the policy engine and acts on the
 * verdicts (see docs/incidents.md "Plans"). Updates rec (recommended_actions, approval_state).
 * `first`: the incident opened or reopened in this evaluation. */
int rsre__inc_plan(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__inc *inc,
                   struct rsre__rec *rec, int64_t now_ms);
/* The pieces of a plan the approvals side shares (plan.c). */
void rsre__inc_cooldown_key(const struct rsre_incident_engine *e, const struct rsre__inc *inc,
                            const struct rsre_action_def *a, const char *target, char *buf,
                            size_t cap);
long long rsre__inc_last_run(rsre_store_txn *txn, const char *key); /* seconds, 0 = never */
int rsre__inc_reasons(const struct rsre_decision *d, const char *extra, struct rsre__strlist *out);
void rsre__inc_join(const struct rsre__strlist *l, char *buf, size_t cap);

/* --- approvals.c --------------------------------------------------------------------------- */

/* A summary of one Approval record. */
struct rsre__apr {
    char id[RSRE_STORE_ID_MAX + 1];
    char action[64];
    char target[RSRE__NODE_NAME_MAX + 1];
    int state;
    int64_t decided_ms, expires_ms;
};

struct rsre__apr_list {
    const char *incident_id; /* NULL: every approval */
    struct rsre__apr *v;
    size_t n, cap;
    int rc;
};

/* Collects the approvals of `incident_id` (every approval when NULL); free l->v. rsre__inc_apr_add
 * is its store callback, also used to add one the plan just requested. */
int rsre__inc_approvals_of(rsre_store_txn *txn, const char *incident_id, struct rsre__apr_list *l);
int rsre__inc_apr_add(const rsre_store_approval *ap, void *ud);
/* The incident's overall approval_state: pending > approved > denied > expired > cancelled. */
int rsre__inc_approvals_overall(const struct rsre__apr_list *l);
int rsre__inc_approval_state_refresh(rsre_store_txn *txn, const struct rsre__inc *inc,
                                     struct rsre__rec *rec);
/* Whether an existing approval for (action, target) makes a new request pointless. */
int rsre__inc_approval_blocks(const struct rsre__apr_list *l, const char *action,
                              const char *target, int64_t now_ms, int64_t window_ms);
/* Cancels the incident's pending approvals (it resolved). */
int rsre__inc_plan_cancel_pending(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                  struct rsre__inc *inc, struct rsre__rec *rec, int64_t now_ms);
/* Expires pending approvals past their expiry (tick). */
int rsre__inc_plan_expire(struct rsre_incident_engine *e, rsre_store_txn *txn, int64_t now_ms);

#endif
