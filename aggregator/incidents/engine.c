/*
 * The incident engine's core: thresholds, incidents (one per fingerprint), evidence checks,
 * confidence and severity, suppression windows, exit windows, duplicate suppression (reopen),
 * apply/tick, loading incidents from the store, create/destroy. Signal state is signal_state.c,
 * evidence tables evidence.c, records and transitions records.c, undo and effects txn.c, plans
 * plan.c, approvals and results approvals.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "engine/severity.h"
#include "incidents/incidents_internal.h"

#define S(x) ROBOT_SRE__STORE__##x

static int valid_node_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > RSRE__NODE_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            return 0;
        }
    }
    return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

/* --- thresholds ----------------------------------------------------------------------------- */

struct fired {
    const struct rsre_rule *active; /* first rule that fired and is not in a quiet window */
    const struct rsre_rule *any;    /* first rule that fired at all */
    enum rsre_severity severity;    /* highest severity among the rules that fired */
};

/* Evaluates every rule of the binding (each one, always: `for` clauses need every sample). */
static void thresholds(struct rsre_incident_engine *e, struct rsre__node *h, size_t b,
                       const struct rsre_expr_env *env, int64_t now_ms, struct fired *f) {
    memset(f, 0, sizeof(*f));
    const struct rsre__app *app = &e->app[b];
    for (size_t i = 0; i < app->n; i++) {
        const struct rsre_rule *r = app->rules[i];
        int64_t *st =
            app->state_off[i] != (size_t)-1 && h->rstate ? h->rstate + app->state_off[i] : NULL;
        if (!r->threshold || !rsre_expr_true(r->threshold, env, st)) {
            continue;
        }
        if (!f->any || r->severity > f->severity) {
            f->severity = r->severity;
        }
        f->any = f->any ? f->any : r;
        if (!f->active && !(!r->builtin && rsre_rule_suppressed_at(r, now_ms / 1000))) {
            f->active = r;
        }
    }
}

static long long dedupe_seconds(const struct rsre_incident_engine *e, const struct rsre__inc *inc) {
    const struct rsre_rule *r = rsre_ruleset_find(e->rules, inc->rule_id);
    return r && r->notification.dedupe_seconds > 0 ? r->notification.dedupe_seconds
                                                   : e->t->cooldown.duplicate_suppression;
}

/* --- incidents ------------------------------------------------------------------------------ */

static struct rsre__inc *inc_alloc(size_t b, struct rsre__node *h) {
    struct rsre__inc *inc = calloc(1, sizeof(*inc));
    if (inc) {
        inc->b = b;
        inc->holder = h;
    }
    return inc;
}

/* Opens a new incident for (binding, holder), or reopens the resolved one when the evidence
 * came back inside its duplicate-suppression window. The incident is left in `observed`; the
 * caller assesses it and triages it. */
static int open_incident(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__node *h,
                         size_t b, const struct rsre_rule *rule, int64_t now_ms,
                         struct rsre__inc **out, struct rsre__rec *rec) {
    struct rsre__inc *old = h->s.inc[b];
    char reason[1024];
    int rc;
    if (old && old->state == RSRE_STATE_RESOLVED && old->resolved_ms > 0 &&
        now_ms - old->resolved_ms < dedupe_seconds(e, old) * 1000) {
        char ago[32];
        rsre__inc_fmt_duration(now_ms - old->resolved_ms, ago, sizeof(ago));
        snprintf(reason, sizeof(reason),
                 "rule %s fired again %s after resolution, inside the %llds duplicate window: %s",
                 rule->id, ago, dedupe_seconds(e, old), rule->threshold_expression);
        rsre__inc_save_inc(e, old);
        if ((rc = rsre__inc_transition(e, txn, old, RSRE_LC_REOPEN, reason, now_ms)) < 0) {
            return rc;
        }
        old->resolved_ms = 0;
        old->exit_since_ms = 0;
        memset(old->checks, 0, sizeof(old->checks));
        old->ev_recorded = 0; /* a new episode records its evidence again */
        rsre__inc_save_obs(e, h);
        rsre__inc_obs_episode(h, b);
        snprintf(old->rule_id, sizeof(old->rule_id), "%s", rule->id);
        old->rule_version = (uint32_t)rule->version;
        *out = old;
        return rsre__inc_queue_notify(e, txn, old, "reopened");
    }
    struct rsre__inc *inc = inc_alloc(b, h);
    if (!inc) {
        return -ENOMEM;
    }
    if ((rc = rsre__inc_new_id(txn, "incident", "inc", inc->id, sizeof(inc->id)))) {
        free(inc);
        return rc;
    }
    if (rsre__inc_undo_push(e, RSRE__U_NEW_INC, inc, NULL)) {
        free(inc);
        return -ENOMEM;
    }
    inc->undo_gen = e->gen + 1; /* new in this transaction: no saved copy needed */
    inc->state = RSRE_STATE_OBSERVED;
    inc->severity = e->defs[b]->default_severity;
    inc->confidence = RSRE_CONF_LOW;
    inc->opened_ms = now_ms;
    inc->dirty = 1;
    snprintf(inc->rule_id, sizeof(inc->rule_id), "%s", rule->id);
    inc->rule_version = (uint32_t)rule->version;
    rsre__inc_save_node(e, h);
    if (old && rsre__inc_undo_push(e, RSRE__U_RETIRE_INC, old, NULL)) {
        return -ENOMEM;
    }
    h->s.inc[b] = inc;
    rsre__inc_save_obs(e, h);
    rsre__inc_obs_episode(h, b);
    rec->loaded = 1;
    rec->exists = 0;
    rec->dirty = 1;
    rec->approval_state = S(APPROVAL_STATE__APPROVAL_STATE_NOT_REQUIRED);
    char fp[RSRE__SCOPE_MAX + 80];
    rsre__inc_fingerprint(inc, fp, sizeof(fp));
    snprintf(reason, sizeof(reason), "rule %s fired: %s", rule->id, rule->threshold_expression);
    char detail[RSRE__SCOPE_MAX + 200];
    snprintf(detail, sizeof(detail), "fingerprint=%s environment=%s", fp,
             rsre_env_name(e->cfg.env));
    if ((rc = rsre__inc_audit(txn, "incident.open", inc->id, reason, detail, now_ms))) {
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, RSRE__INC_MOD, "incident opened id=%s fingerprint=%s rule=%s", inc->id,
             fp, rule->id);
    *out = inc;
    return rsre__inc_queue_notify(e, txn, inc, "opened");
}

static int write_evidence(struct rsre_incident_engine *e, rsre_store_txn *txn,
                          struct rsre__inc *inc, struct rsre__rec *rec, size_t r,
                          const struct rsre__eval *ev, int64_t now_ms) {
    const struct rsre__ev_row *row = &rsre__inc_bindings[inc->b].ev[r];
    int rc = rsre__inc_rec_load(txn, inc, rec);
    if (rc) {
        return rc;
    }
    if ((rc = rsre__inc_strlist_add(&rec->sources, row->source, 1)) < 0) {
        return rc;
    }
    rec->dirty |= rc;
    if (rec->refs.n >= RSRE__MAX_EV_REFS) {
        return 0;
    }
    char id[RSRE_STORE_ID_MAX + 1], summary[600], raw[4096];
    if ((rc = rsre__inc_new_id(txn, "evidence", "ev", id, sizeof(id)))) {
        return rc;
    }
    rsre__inc_ev_describe(row, ev, summary, sizeof(summary));
    rsre__inc_evidence_raw(ev, raw, sizeof(raw));
    rsre_store_evidence rec_ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
    rec_ev.id = id;
    rec_ev.incident_id = inc->id;
    rec_ev.source = (char *)row->source;
    rec_ev.kind = (char *)row->kind;
    rec_ev.observed_at_ms = now_ms;
    rec_ev.summary = summary;
    rec_ev.raw.data = (uint8_t *)raw;
    rec_ev.raw.len = strlen(raw);
    if ((rc = rsre_store_evidence_put(txn, &rec_ev, RSRE_STORE_NOOVERWRITE))) {
        return rc;
    }
    if ((rc = rsre__inc_strlist_add(&rec->refs, id, 1)) < 0) {
        return rc;
    }
    rec->dirty = 1;
    inc->ev_recorded |= 1u << r;
    return 0;
}

/* Observation rows: one Evidence record per (row, source) and episode, with the source's detail
 * text; every source that supports the row is named in signal_sources. */
static int write_src_evidence(struct rsre_incident_engine *e, rsre_store_txn *txn,
                              struct rsre__inc *inc, struct rsre__rec *rec, size_t r,
                              const struct rsre__eval *ev, int64_t now_ms) {
    const struct rsre__ev_row *row = &rsre__inc_bindings[inc->b].ev[r];
    struct rsre__node *h = inc->holder;
    struct rsre__obs *o = h->obs;
    int rc;
    for (size_t i = 0; o && i < o->nsrc; i++) {
        struct rsre__eval sub;
        if ((o->src[i].recorded[inc->b] & (1u << r)) || !rsre__inc_ev_src(row, ev, i, &sub)) {
            continue;
        }
        if ((rc = rsre__inc_rec_load(txn, inc, rec))) {
            return rc;
        }
        if ((rc = rsre__inc_strlist_add(&rec->sources, o->src[i].name, 1)) < 0) {
            return rc;
        }
        rec->dirty |= rc;
        rsre__inc_save_obs(e, h);
        o->src[i].recorded[inc->b] |= 1u << r;
        inc->ev_recorded |= 1u << r;
        if (rec->refs.n >= RSRE__MAX_EV_REFS) {
            continue;
        }
        char id[RSRE_STORE_ID_MAX + 1], summary[1024], raw[4096];
        if ((rc = rsre__inc_new_id(txn, "evidence", "ev", id, sizeof(id)))) {
            return rc;
        }
        rsre__inc_ev_describe_src(row, &sub, summary, sizeof(summary));
        int w = rsre__inc_fmt(raw, sizeof(raw), "scope=%s source=%s detail=\"%s\" ",
                              rsre__inc_holder_label(h), o->src[i].name, o->src[i].detail);
        size_t len = w > 0 && (size_t)w < sizeof(raw) ? (size_t)w : sizeof(raw) - 1;
        rsre__inc_evidence_raw(&sub, raw + len, sizeof(raw) - len);
        rsre_store_evidence rec_ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
        rec_ev.id = id;
        rec_ev.incident_id = inc->id;
        rec_ev.source = o->src[i].name;
        rec_ev.kind = (char *)row->kind;
        rec_ev.observed_at_ms = o->src[i].seen_ms ? o->src[i].seen_ms : now_ms;
        rec_ev.summary = summary;
        rec_ev.raw.data = (uint8_t *)raw;
        rec_ev.raw.len = strlen(raw);
        if ((rc = rsre_store_evidence_put(txn, &rec_ev, RSRE_STORE_NOOVERWRITE))) {
            return rc;
        }
        if ((rc = rsre__inc_strlist_add(&rec->refs, id, 1)) < 0) {
            return rc;
        }
        rec->dirty = 1;
    }
    return 0;
}

/*
 * Evaluates binding `b` at holder `h`: thresholds, open/reopen, evidence and checks,
 * confidence, severity, suppression windows, exit window, plan, record. `tick`: this is an
 * observation round (repeated evidence counts one more check).
 */
static int evaluate_one(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__node *h,
                        size_t b, int64_t now_ms, int tick) {
    const struct rsre__binding *bd = &rsre__inc_bindings[b];
    const struct rsre_incident_def *def = e->defs[b];
    struct rsre_expr_env env = {h->row, e->nslots, e->rows, e->nnodes, now_ms / 1000};
    struct rsre__eval ev = {e, h, h->row, now_ms, 0};
    struct fired f;
    thresholds(e, h, b, &env, now_ms, &f);
    if (bd->scope == RSRE__SCOPE_OBS && !rsre__inc_obs_gate(e, b, &ev)) {
        /* An observation class needs evidence besides its threshold ("always critical" is
         * the severity of a database failure, not a reason to open one at every scope). */
        memset(&f, 0, sizeof(f));
    }
    struct rsre__inc *inc = h->s.inc[b];
    int open = inc && rsre_lifecycle_is_open(inc->state);
    if (!open && !f.active) {
        return 0;
    }
    struct rsre__rec rec = {0};
    int rc = 0, opened = 0, changed = 0;
    char reason[1024];
    if (!open) {
        if ((rc = open_incident(e, txn, h, b, f.active, now_ms, &inc, &rec))) {
            goto out;
        }
        opened = 1;
    }
    rsre__inc_save_inc(e, inc);

    /* Evidence: consecutive checks per row; a row that appears gets its Evidence record. */
    for (size_t r = 0; r < bd->nev && r < RSRE__MAX_EV; r++) {
        unsigned c = inc->checks[r];
        int holds = rsre__inc_ev_holds(&bd->ev[r], &ev);
        unsigned nc = !holds ? 0 : tick ? (c < 1000 ? c + 1 : c) : (c ? c : 1);
        if (nc && !bd->ev[r].src_kinds && !c && !(inc->ev_recorded & (1u << r)) &&
            (rc = write_evidence(e, txn, inc, &rec, r, &ev, now_ms))) {
            goto out;
        }
        if (nc && bd->ev[r].src_kinds &&
            (rc = write_src_evidence(e, txn, inc, &rec, r, &ev, now_ms))) {
            goto out;
        }
        changed |= (nc != 0) != (c != 0);
        inc->checks[r] = nc;
    }
    struct rsre_evidence_item items[32];
    char srcbuf[32][300];
    size_t nitems = rsre__inc_evidence_items(bd, &ev, inc->checks, items, 32, srcbuf);
    struct rsre_confidence_why cwhy;
    /* Exit criteria read this row; at an observation scope, signals nobody observes there read
     * as healthy, unless nobody fresh reports there at all. */
    struct rsre_expr_env xenv = env;
    if (bd->scope == RSRE__SCOPE_OBS) {
        xenv.scalars = rsre__inc_obs_exit_row(e, h, now_ms);
    }
    /* Nothing supports the incident and whether it recovered is unknown because no source at
     * the holder is fresh: confidence falls to low (no corroborating data; nothing may act on it)
     * and the summary says whose silence. */
    int unknown = !nitems && !f.any && h->obs && !rsre__inc_obs_any_fresh(e, h, now_ms);
    char stale[600] = "";
    size_t nstale = unknown ? rsre__inc_obs_stale(e, h, now_ms, stale, sizeof(stale)) : 0;
    if (unknown && !nstale && bd->scope == RSRE__SCOPE_OBS && !h->obs->nsrc &&
        now_ms - e->first_now_ms > e->cfg.observation_fresh_ms) {
        /* Loaded from the store and nobody reported on the scope since this engine started. */
        char up[32];
        rsre__inc_fmt_duration(now_ms - e->first_now_ms, up, sizeof(up));
        rsre__inc_fmt(stale, sizeof(stale), "any source since the aggregator started %s ago", up);
        nstale = 1;
    }
    if (nstale && inc->confidence != RSRE_CONF_LOW) {
        snprintf(reason, sizeof(reason), "evidence stale: no fresh observation from %s", stale);
        if ((rc = rsre__inc_audit(txn, "incident.confidence", inc->id, reason,
                                  rsre_confidence_name(RSRE_CONF_LOW), now_ms))) {
            goto out;
        }
        inc->confidence = RSRE_CONF_LOW;
        inc->dirty = changed = 1;
    }
    if (nitems) {
        enum rsre_confidence conf = rsre_confidence_band(items, nitems, &cwhy);
        if (conf != inc->confidence) {
            if (!opened && (rc = rsre__inc_audit(txn, "incident.confidence", inc->id, cwhy.text,
                                                 rsre_confidence_name(conf), now_ms))) {
                goto out;
            }
            inc->confidence = conf;
            inc->dirty = changed = 1;
        }
    }
    inc->firing = f.any != NULL;
    if (f.any) {
        struct rsre_severity_why swhy;
        enum rsre_severity sev = rsre_severity_eval(def, e->rules, e->cfg.env, &env, &swhy);
        if (f.severity > sev) {
            sev = f.severity;
            swhy.text = "the severity of the rule that fired";
        }
        if (sev != inc->severity) {
            snprintf(reason, sizeof(reason), "%s (%s)", swhy.text ? swhy.text : "class default",
                     swhy.rule ? swhy.rule : "builtin");
            if (!opened && ((rc = rsre__inc_audit(txn, "incident.severity", inc->id, reason,
                                                  rsre_severity_name(sev), now_ms)) ||
                            (rc = rsre__inc_queue_notify(e, txn, inc, "severity")))) {
                goto out;
            }
            inc->severity = sev;
            inc->dirty = changed = 1;
        }
    }

    /* Suppression windows: only rules in their quiet window fire -> parked; a rule outside its
     * window fires again -> back to observed for a new triage. */
    if (f.any && !f.active &&
        (inc->state == RSRE_STATE_TRIAGED || inc->state == RSRE_STATE_CONTAINED)) {
        snprintf(reason, sizeof(reason), "rule %s is inside its suppression window", f.any->id);
        if ((rc = rsre__inc_transition(e, txn, inc, RSRE_LC_SUPPRESS, reason, now_ms)) < 0) {
            goto out;
        }
    } else if (f.active && inc->state == RSRE_STATE_SUPPRESSED) {
        snprintf(reason, sizeof(reason), "rule %s fires outside a suppression window",
                 f.active->id);
        if ((rc = rsre__inc_transition(e, txn, inc, RSRE_LC_UNSUPPRESS, reason, now_ms)) < 0) {
            goto out;
        }
    }
    if (inc->state == RSRE_STATE_OBSERVED) {
        snprintf(reason, sizeof(reason), "classified as %s; severity %s; confidence %s", def->id,
                 rsre_severity_name(inc->severity),
                 nitems ? cwhy.text : rsre_confidence_name(inc->confidence));
        if ((rc = rsre__inc_transition(e, txn, inc, RSRE_LC_TRIAGE, reason, now_ms)) < 0) {
            goto out;
        }
    }

    /* Exit criteria: the class's exit expression, with no threshold firing, for exit_window. */
    if (!f.any && def->exit_expr && rsre_expr_true(def->exit_expr, &xenv, NULL)) {
        if (!inc->exit_since_ms) {
            inc->exit_since_ms = now_ms;
        }
        if (now_ms - inc->exit_since_ms >= def->exit_window * 1000) {
            char held[32];
            rsre__inc_fmt_duration(now_ms - inc->exit_since_ms, held, sizeof(held));
            snprintf(reason, sizeof(reason), "exit criteria held for %s (window %llds): %s", held,
                     def->exit_window, def->exit_expression);
            if ((rc = rsre__inc_transition(e, txn, inc, RSRE_LC_EXIT_CRITERIA_MET, reason,
                                           now_ms)) < 0) {
                goto out;
            }
            if (rc == 1 && (rc = rsre__inc_plan_cancel_pending(e, txn, inc, &rec, now_ms))) {
                goto out;
            }
            changed = 1;
        }
    } else {
        inc->exit_since_ms = 0;
    }

    int is_open = rsre_lifecycle_is_open(inc->state);
    if (is_open && (nitems || f.any || nstale) && (opened || changed || tick || inc->dirty)) {
        char summary[1024];
        if (nitems) {
            rsre__inc_evidence_summary(bd, &ev, summary, sizeof(summary));
        } else if (!f.any) {
            rsre__inc_fmt(summary, sizeof(summary),
                          "%s: state unknown, evidence stale: no fresh observation from %s",
                          rsre__inc_holder_label(h), stale);
        } else {
            /* Only an operator threshold holds (no evidence row of the class): say so. */
            rsre__inc_fmt(summary, sizeof(summary), "%s: rule %s fired: %s",
                          rsre__inc_holder_label(h), f.any->id, f.any->threshold_expression);
        }
        if ((rc = rsre__inc_rec_load(txn, inc, &rec))) {
            goto out;
        }
        if (strcmp(summary, rec.summary) != 0) {
            snprintf(rec.summary, sizeof(rec.summary), "%s", summary);
            rec.dirty = 1;
        }
    }
    if (is_open && f.active && inc->state != RSRE_STATE_SUPPRESSED &&
        (opened || changed || tick || inc->dirty)) {
        if ((rc = rsre__inc_plan(e, txn, inc, &rec, now_ms))) {
            goto out;
        }
    }
    if (inc->dirty || rec.dirty) {
        if ((rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms))) {
            goto out;
        }
        inc->dirty = 0;
    }
out:
    rsre__inc_rec_free(&rec);
    return rc < 0 ? rc : 0;
}

static int evaluate_holder(struct rsre_incident_engine *e, rsre_store_txn *txn,
                           struct rsre__node *h, int64_t now_ms, int tick) {
    enum rsre__scope scope = h == &e->cluster ? RSRE__SCOPE_CLUSTER
                             : h->scope[0]    ? RSRE__SCOPE_OBS
                                              : RSRE__SCOPE_NODE;
    for (size_t b = 0; b < rsre__inc_nbindings; b++) {
        if (e->defs[b] && rsre__inc_bindings[b].scope == scope) {
            int rc = evaluate_one(e, txn, h, b, now_ms, tick);
            if (rc) {
                return rc;
            }
        }
    }
    return 0;
}

static int has_open(const struct rsre__node *n) {
    for (size_t b = 0; b < rsre__inc_nbindings; b++) {
        if (n->s.inc[b] && rsre_lifecycle_is_open(n->s.inc[b]->state)) {
            return 1;
        }
    }
    return 0;
}

/* The first time the engine sees a clock: nodes known only from the store start their silence
 * from here. Not undone on abort (a baseline is not state an aborted batch produced). */
static void first_now(struct rsre_incident_engine *e, int64_t now_ms) {
    if (now_ms > e->last_now_ms) {
        e->last_now_ms = now_ms;
    }
    if (e->first_now_ms) {
        return;
    }
    e->first_now_ms = now_ms;
    for (size_t i = 0; i < e->nnodes; i++) {
        struct rsre__node *n = e->nodes[i];
        if (!n->s.last_seen_ms && !n->s.baseline_ms && has_open(n)) {
            n->s.baseline_ms = now_ms;
        }
    }
}

static int after_change(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__node *n,
                        unsigned ch, int64_t now_ms) {
    if (ch & RSRE__CH_PODS) {
        rsre__inc_cluster_refresh(e, now_ms);
    }
    rsre__inc_node_refresh(e, n, now_ms);
    int rc = evaluate_holder(e, txn, n, now_ms, 0);
    /* Aggregates (count(node.disk_pressure == 1) >= 2) make other nodes' incidents depend on
     * this node's conditions: re-assess the nodes that have open incidents. */
    for (size_t i = 0; rc == 0 && (ch & RSRE__CH_COND) && i < e->nnodes; i++) {
        struct rsre__node *o = e->nodes[i];
        if (o != n && has_open(o)) {
            rsre__inc_node_refresh(e, o, now_ms);
            rc = evaluate_holder(e, txn, o, now_ms, 0);
        }
    }
    if (rc == 0 && (ch & (RSRE__CH_PODS | RSRE__CH_COND))) {
        rc = evaluate_holder(e, txn, &e->cluster, now_ms, 0);
    }
    return rc;
}

static int apply_batch(struct rsre_incident_engine *e, rsre_store_txn *txn, const char *node,
                       const RobotSre__Agent__V1__SignalBatch *batch, int64_t now_ms,
                       int external) {
    if (!e || !txn || !node || !batch) {
        return -EINVAL;
    }
    if (!valid_node_name(node)) {
        return RSRE_EINVALID;
    }
    first_now(e, now_ms);
    struct rsre__node *n;
    int rc = rsre__inc_node_get(e, node, 1, &n);
    if (rc) {
        return rc;
    }
    rsre__inc_save_node(e, n);
    /* A node back from silence has known values again: other nodes' aggregates may change. */
    unsigned ch = rsre__inc_node_silent(e, n, now_ms) ? RSRE__CH_COND : 0;
    if (!external) {
        n->s.last_seen_ms = now_ms > n->s.last_seen_ms ? now_ms : n->s.last_seen_ms;
    } else if (!n->s.last_seen_ms && !n->s.baseline_ms) {
        n->s.baseline_ms = now_ms;
    }
    for (size_t i = 0; i < batch->n_signals && batch->signals; i++) {
        ch |= rsre__inc_node_apply_signal(e, n, batch->signals[i], now_ms, external);
    }
    return after_change(e, txn, n, ch, now_ms);
}

int rsre_incident_engine_apply(struct rsre_incident_engine *e, rsre_store_txn *txn,
                               const char *node, const RobotSre__Agent__V1__SignalBatch *batch,
                               int64_t now_ms) {
    return apply_batch(e, txn, node, batch, now_ms, 0);
}

int rsre_incident_engine_apply_external(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                        const char *node,
                                        const RobotSre__Agent__V1__SignalBatch *batch,
                                        int64_t now_ms) {
    return apply_batch(e, txn, node, batch, now_ms, 1);
}

int rsre_incident_engine_observe(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                 const struct rsre_observation *obs, int64_t now_ms) {
    if (!e || !txn || !obs) {
        return -EINVAL;
    }
    int slots[RSRE__OBS_VALUES];
    int rc = rsre__inc_obs_validate(e, obs, slots);
    if (rc) {
        return rc;
    }
    struct rsre__node *h;
    if ((rc = rsre__inc_scope_get(e, obs->scope, 1, &h))) {
        return rc;
    }
    first_now(e, now_ms);
    if ((rc = rsre__inc_obs_apply(e, h, obs, slots, now_ms))) {
        return rc;
    }
    rsre__inc_cluster_refresh(e, now_ms);
    if (h == &e->cluster) {
        /* jobs.*: the cluster-scope class, and node classes reading the aggregate. */
        for (size_t i = 0; i < e->nnodes; i++) {
            rsre__inc_node_refresh(e, e->nodes[i], now_ms);
        }
        return evaluate_holder(e, txn, &e->cluster, now_ms, 0);
    }
    rsre__inc_obs_refresh(e, h, now_ms);
    return evaluate_holder(e, txn, h, now_ms, 0);
}

struct renew_ctx {
    struct rsre_incident_engine *e;
    rsre_store_txn *txn;
    int64_t now_ms;
};

/* A source came back at holder h: its row and incidents are evaluated again. */
static int renewed(void *arg, struct rsre__node *h) {
    struct renew_ctx *c = arg;
    if (h == &c->e->cluster) {
        rsre__inc_cluster_refresh(c->e, c->now_ms);
        for (size_t i = 0; i < c->e->nnodes; i++) {
            rsre__inc_node_refresh(c->e, c->e->nodes[i], c->now_ms);
        }
    } else {
        rsre__inc_obs_refresh(c->e, h, c->now_ms);
    }
    return evaluate_holder(c->e, c->txn, h, c->now_ms, 0);
}

int rsre_incident_engine_observe_refresh(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                         const char *source, int64_t fresh_ms, int64_t now_ms) {
    if (!e || !txn || !source) {
        return -EINVAL;
    }
    if (!rsre__inc_source_valid(source) || (fresh_ms != 0 && (fresh_ms < RSRE__OBS_FRESH_MIN_MS ||
                                                              fresh_ms > RSRE__OBS_FRESH_MAX_MS))) {
        return RSRE_EINVALID;
    }
    first_now(e, now_ms);
    struct renew_ctx c = {e, txn, now_ms};
    return rsre__inc_obs_renew(e, source, fresh_ms, now_ms, renewed, &c);
}

int rsre_incident_engine_agent_seen(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                    const char *node, const char *boot_id, int64_t now_ms) {
    if (!e || !txn || !node) {
        return -EINVAL;
    }
    if (!valid_node_name(node)) {
        return RSRE_EINVALID;
    }
    first_now(e, now_ms);
    struct rsre__node *n;
    int rc = rsre__inc_node_get(e, node, 1, &n);
    if (rc) {
        return rc;
    }
    rsre__inc_save_node(e, n);
    n->s.last_seen_ms = now_ms > n->s.last_seen_ms ? now_ms : n->s.last_seen_ms;
    if (boot_id) {
        snprintf(n->s.boot_id, sizeof(n->s.boot_id), "%s", boot_id);
    }
    return after_change(e, txn, n, 0, now_ms);
}

int rsre_incident_engine_tick(struct rsre_incident_engine *e, rsre_store_txn *txn, int64_t now_ms) {
    if (!e || !txn) {
        return -EINVAL;
    }
    first_now(e, now_ms);
    rsre__inc_cluster_refresh(e, now_ms);
    for (size_t i = 0; i < e->nnodes; i++) {
        rsre__inc_node_refresh(e, e->nodes[i], now_ms);
    }
    for (size_t i = 0; i < e->nscopes; i++) {
        rsre__inc_obs_refresh(e, e->scopes[i], now_ms);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < e->nnodes; i++) {
        rc = evaluate_holder(e, txn, e->nodes[i], now_ms, 1);
    }
    for (size_t i = 0; rc == 0 && i < e->nscopes; i++) {
        rc = evaluate_holder(e, txn, e->scopes[i], now_ms, 1);
    }
    if (rc == 0) {
        rc = evaluate_holder(e, txn, &e->cluster, now_ms, 1);
    }
    if (rc == 0) {
        rc = rsre__inc_plan_expire(e, txn, now_ms);
    }
    if (rc == 0) {
        rc = rsre_store_cooldown_expire(txn, now_ms, NULL);
    }
    return rc;
}

/* --- loading from the store --------------------------------------------------------------- */

/* Holder i of every holder: nodes, scope holders, then the cluster holder. */
static struct rsre__node *holder_at(struct rsre_incident_engine *e, size_t i) {
    return i < e->nnodes                ? e->nodes[i]
           : i < e->nnodes + e->nscopes ? e->scopes[i - e->nnodes]
                                        : &e->cluster;
}

struct rsre__inc *rsre__inc_by_id(struct rsre_incident_engine *e, const char *id) {
    for (size_t i = 0; i <= e->nnodes + e->nscopes; i++) {
        struct rsre__node *n = holder_at(e, i);
        for (size_t b = 0; b < rsre__inc_nbindings; b++) {
            if (n->s.inc[b] && strcmp(n->s.inc[b]->id, id) == 0) {
                return n->s.inc[b];
            }
        }
    }
    return NULL;
}

static int binding_of(const char *cls) {
    for (size_t b = 0; b < rsre__inc_nbindings; b++) {
        if (strcmp(rsre__inc_bindings[b].class_id, cls) == 0) {
            return (int)b;
        }
    }
    return -1;
}

struct load_ctx {
    struct rsre_incident_engine *e;
    int rc;
};

static int load_evidence_cb(const rsre_store_evidence *ev, void *ud) {
    struct rsre__inc *inc = ud;
    const struct rsre__binding *bd = &rsre__inc_bindings[inc->b];
    for (size_t r = 0; r < bd->nev && r < RSRE__MAX_EV; r++) {
        if (ev->kind && strcmp(ev->kind, bd->ev[r].kind) == 0) {
            inc->ev_recorded |= 1u << r;
        }
    }
    return 0;
}

static int load_incident_cb(const rsre_store_incident *r, void *ud) {
    struct load_ctx *L = ud;
    struct rsre_incident_engine *e = L->e;
    int b = r->incident_type ? binding_of(r->incident_type) : -1;
    if (b < 0 || !e->defs[b] || !r->fingerprint || !r->id || strlen(r->id) > RSRE_STORE_ID_MAX) {
        return 0; /* a class this engine does not evaluate */
    }
    const char *cls = rsre__inc_bindings[b].class_id;
    size_t clen = strlen(cls);
    if (strncmp(r->fingerprint, cls, clen) != 0 || r->fingerprint[clen] != '/') {
        return 0;
    }
    const char *scope = r->fingerprint + clen + 1;
    struct rsre__node *h;
    if (strcmp(scope, "cluster") == 0 && rsre__inc_bindings[b].scope == RSRE__SCOPE_CLUSTER) {
        h = &e->cluster;
    } else if (strncmp(scope, "node=", 5) == 0 && valid_node_name(scope + 5) &&
               rsre__inc_bindings[b].scope == RSRE__SCOPE_NODE) {
        if ((L->rc = rsre__inc_node_get(e, scope + 5, 1, &h))) {
            return L->rc;
        }
    } else if (rsre__inc_bindings[b].scope == RSRE__SCOPE_OBS && rsre__inc_scope_valid(scope)) {
        if ((L->rc = rsre__inc_scope_get(e, scope, 1, &h))) {
            return L->rc;
        }
    } else {
        return 0;
    }
    if ((int)r->lifecycle < 1 || (int)r->lifecycle > RSRE_STATE_COUNT) {
        return 0;
    }
    enum rsre_state st = (enum rsre_state)(r->lifecycle - 1);
    struct rsre__inc *old = h->s.inc[b];
    if (old) {
        int old_open = rsre_lifecycle_is_open(old->state), new_open = rsre_lifecycle_is_open(st);
        /* Keep the open one; between two resolved ones, the later. */
        if (old_open || (!new_open && old->resolved_ms >= r->resolved_at_ms)) {
            return 0;
        }
    }
    struct rsre__inc *inc = inc_alloc((size_t)b, h);
    if (!inc) {
        return L->rc = -ENOMEM;
    }
    snprintf(inc->id, sizeof(inc->id), "%s", r->id);
    inc->state = st;
    inc->severity = (int)r->severity >= 1 && (int)r->severity <= (int)RSRE_SEV_COUNT
                        ? (enum rsre_severity)(r->severity - 1)
                        : e->defs[b]->default_severity;
    inc->confidence = (int)r->confidence >= 1 && (int)r->confidence <= RSRE_CONF_COUNT
                          ? (enum rsre_confidence)(r->confidence - 1)
                          : RSRE_CONF_LOW;
    inc->opened_ms = r->opened_at_ms;
    inc->resolved_ms = r->resolved_at_ms;
    snprintf(inc->rule_id, sizeof(inc->rule_id), "%s", r->rule_id ? r->rule_id : "");
    inc->rule_version = r->rule_version;
    free(old);
    h->s.inc[b] = inc;
    if (rsre__inc_bindings[b].held_since && rsre_lifecycle_is_open(st) && inc->opened_ms > 0) {
        *rsre__inc_bindings[b].held_since(&h->s) = inc->opened_ms;
    }
    if (rsre_lifecycle_is_open(st)) {
        rsre__inc_obs_seed(e, h, (size_t)b, inc->opened_ms);
    }
    return 0;
}

int rsre__inc_load(struct rsre_incident_engine *e) {
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(e->store, 1, &txn);
    if (rc) {
        return rc;
    }
    struct load_ctx L = {e, 0};
    rc = rsre_store_incident_foreach(txn, load_incident_cb, &L);
    if (!rc) {
        rc = L.rc;
    }
    for (size_t i = 0; rc == 0 && i <= e->nnodes + e->nscopes; i++) {
        struct rsre__node *n = holder_at(e, i);
        for (size_t b = 0; rc == 0 && b < rsre__inc_nbindings; b++) {
            struct rsre__inc *inc = n->s.inc[b];
            if (inc && rsre_lifecycle_is_open(inc->state)) {
                rc = rsre_store_evidence_foreach(txn, inc->id, load_evidence_cb, inc);
            }
        }
    }
    rsre_store_txn_abort(txn);
    return rc;
}

void rsre__inc_free_incidents(struct rsre_incident_engine *e) {
    for (size_t i = 0; i <= e->nnodes + e->nscopes; i++) {
        struct rsre__node *n = holder_at(e, i);
        for (size_t b = 0; b < rsre__inc_nbindings; b++) {
            free(n->s.inc[b]);
            n->s.inc[b] = NULL;
        }
    }
}

/* --- create / destroy ---------------------------------------------------------------------- */

/* The rules of every binding under `rules`, into app/builtin/cells (all or nothing: on error
 * nothing is left allocated). Sets e->defs. */
static int build_apps(struct rsre_incident_engine *e, const struct rsre_ruleset *rules,
                      struct rsre__app *apps, const struct rsre_rule **builtin, size_t *cells) {
    if (rsre__inc_nbindings > RSRE__MAX_BIND) {
        return -EINVAL;
    }
    *cells = 0;
    for (size_t b = 0; b < rsre__inc_nbindings; b++) {
        const struct rsre_incident_def *def =
            rsre_taxonomy_incident(e->t, rsre__inc_bindings[b].class_id);
        if (!def || rsre__inc_bindings[b].nev > RSRE__MAX_EV) {
            continue; /* not in this taxonomy: not evaluated */
        }
        char id[128];
        snprintf(id, sizeof(id), "builtin.%s", def->id);
        const struct rsre_rule *bi = rsre_ruleset_find(rules, id);
        const struct rsre_rule *const *ops = NULL;
        size_t nops = 0;
        rsre_ruleset_applicable(rules, def, e->cfg.env, &ops, &nops);
        struct rsre__app *app = &apps[b];
        const struct rsre_rule **list = calloc(nops + 1, sizeof(*list));
        app->state_off = calloc(nops + 1, sizeof(size_t));
        if (!list || !app->state_off) {
            free(list);
            for (size_t k = 0; k <= b; k++) {
                free((void *)apps[k].rules);
                free(apps[k].state_off);
                apps[k] = (struct rsre__app){0};
            }
            return -ENOMEM;
        }
        size_t n = 0;
        if (bi && bi->enabled) {
            list[n++] = bi;
        }
        for (size_t i = 0; i < nops; i++) {
            list[n++] = ops[i];
        }
        for (size_t i = 0; i < n; i++) {
            size_t c = list[i]->threshold ? rsre_expr_state_size(list[i]->threshold) : 0;
            app->state_off[i] = c ? *cells : (size_t)-1;
            *cells += c;
        }
        app->rules = list;
        app->n = n;
        e->defs[b] = def;
        builtin[b] = bi;
    }
    return 0;
}

static int init_bindings(struct rsre_incident_engine *e) {
    return build_apps(e, e->rules, e->app, e->builtin, &e->rstate_cells);
}

/*
 * Rules reload. Everything the new rules need is allocated first (the per-binding rule lists
 * and every holder's `for` state, which restarts from zero: a `for D` clause of a changed rule
 * counts its duration again), then swapped in; the engine keeps no pointer into the previous
 * ruleset after this returns (incidents keep rule ids as copies), so the caller may destroy it
 * then. The caller owns both rulesets; the new one must outlive the engine or the next call.
 */
int rsre_incident_engine_set_rules(struct rsre_incident_engine *e,
                                   const struct rsre_ruleset *rules) {
    if (!e) {
        return -EINVAL;
    }
    if (e->nundo) {
        return -EBUSY; /* inside a transaction: call it between transactions */
    }
    int rc;
    if (!rules) {
        if (!e->own_rules && (rc = rsre_ruleset_create(e->t, &e->own_rules))) {
            return rc;
        }
        rules = e->own_rules;
    }
    if (rsre_ruleset_taxonomy(rules) != e->t) {
        return RSRE_EINVALID; /* signal slots and classes are bound to the engine's taxonomy */
    }
    struct rsre__app apps[RSRE__MAX_BIND] = {{0}};
    const struct rsre_rule *builtin[RSRE__MAX_BIND] = {0};
    size_t cells = 0;
    if ((rc = build_apps(e, rules, apps, builtin, &cells))) {
        return rc;
    }
    size_t nh = e->nnodes + e->nscopes + 1;
    int64_t **st = calloc(nh, sizeof(*st));
    rc = st ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && cells && i < nh; i++) {
        if (!(st[i] = calloc(cells, sizeof(int64_t)))) {
            rc = -ENOMEM;
        }
    }
    if (rc) {
        for (size_t i = 0; st && i < nh; i++) {
            free(st[i]);
        }
        free(st);
        for (size_t b = 0; b < RSRE__MAX_BIND; b++) {
            free((void *)apps[b].rules);
            free(apps[b].state_off);
        }
        return rc;
    }
    for (size_t i = 0; i < nh; i++) {
        struct rsre__node *h = holder_at(e, i);
        free(h->rstate);
        h->rstate = st[i];
    }
    free(st);
    for (size_t b = 0; b < RSRE__MAX_BIND; b++) {
        free((void *)e->app[b].rules);
        free(e->app[b].state_off);
        e->app[b] = apps[b];
        e->builtin[b] = builtin[b];
    }
    e->rstate_cells = cells;
    e->rules = rules;
    e->cfg.rules = rules == e->own_rules ? NULL : rules;
    RSRE_LOG(RSRE_LOG_INFO, RSRE__INC_MOD, "rules replaced: %zu rules", rsre_ruleset_count(rules));
    return 0;
}

int rsre_incident_engine_create(rsre_store *store, const struct rsre_incident_engine_config *cfg,
                                const struct rsre_incident_engine_hooks *hooks,
                                struct rsre_incident_engine **out) {
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (!store || !cfg || (unsigned)cfg->env >= RSRE_ENV_COUNT) {
        return -EINVAL;
    }
    struct rsre_incident_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        return -ENOMEM;
    }
    e->store = store;
    e->cfg = *cfg;
    e->cfg.cluster = NULL;
    if (cfg->cluster && !(e->cfg.cluster = strdup(cfg->cluster))) {
        free(e);
        return -ENOMEM;
    }
    if (e->cfg.agent_silence_ms <= 0) {
        e->cfg.agent_silence_ms = 180000;
    }
    if (e->cfg.observation_fresh_ms <= 0) {
        e->cfg.observation_fresh_ms = 180000;
    }
    if (e->cfg.observation_fresh_ms < RSRE__OBS_FRESH_MIN_MS) {
        e->cfg.observation_fresh_ms = RSRE__OBS_FRESH_MIN_MS;
    } else if (e->cfg.observation_fresh_ms > RSRE__OBS_FRESH_MAX_MS) {
        e->cfg.observation_fresh_ms = RSRE__OBS_FRESH_MAX_MS;
    }
    if (e->cfg.action_deadline_ms <= 0) {
        e->cfg.action_deadline_ms = 120000;
    }
    if (e->cfg.approval_ttl_ms <= 0) {
        e->cfg.approval_ttl_ms = 600000;
    }
    if (hooks) {
        e->hooks = *hooks;
    }
    int rc = 0;
    if (!cfg->rules) {
        rc = rsre_ruleset_create(NULL, &e->own_rules);
        e->rules = e->own_rules;
    } else {
        e->rules = cfg->rules;
    }
    if (rc == 0) {
        e->t = rsre_ruleset_taxonomy(e->rules);
        e->cluster_jobs_finished = NAN;
        rc = rsre__inc_signals_init(e);
        if (rc == 0) {
            rc = rsre__inc_obs_init(e);
        }
    }
    if (rc == 0) {
        rc = init_bindings(e);
    }
    if (rc == 0) {
        e->cluster.row = malloc(e->nslots * sizeof(double));
        if (!e->cluster.row ||
            (e->rstate_cells && !(e->cluster.rstate = calloc(e->rstate_cells, sizeof(int64_t))))) {
            rc = -ENOMEM;
        } else {
            rsre__inc_cluster_refresh(e, 0);
        }
    }
    if (rc == 0) {
        rc = rsre__inc_load(e);
    }
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, RSRE__INC_MOD, "cannot create incident engine: %s",
                 rsre_strerror(rc));
        rsre_incident_engine_destroy(e);
        return rc;
    }
    *out = e;
    return 0;
}

void rsre_incident_engine_destroy(struct rsre_incident_engine *e) {
    if (!e) {
        return;
    }
    rsre__inc_txn_free(e);
    rsre__inc_free_incidents(e);
    rsre__inc_scopes_free(e);
    rsre__inc_nodes_free(e);
    free(e->exit_row);
    for (size_t b = 0; b < RSRE__MAX_BIND; b++) {
        free((void *)e->app[b].rules);
        free(e->app[b].state_off);
    }
    rsre_ruleset_destroy(e->own_rules);
    free((char *)e->cfg.cluster);
    free(e);
}
