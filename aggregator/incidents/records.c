/*
 * The incident engine's store side: ids, audit records, the working copy of an Incident record
 * (lists the engine appends to) and its write-back with every field of the spec's evidence
 * schema, and lifecycle transitions (always through rsre_lifecycle_transition, always audited).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "incidents/incidents_internal.h"

#define S(x) ROBOT_SRE__STORE__##x

/* --- small helpers ----------------------------------------------------------------------- */

int rsre__inc_store_state(enum rsre_state s) {
    return (int)s + 1; /* OBSERVED..ESCALATED -> LIFECYCLE_OBSERVED..LIFECYCLE_ESCALATED */
}

int rsre__inc_store_severity(enum rsre_severity s) {
    return (int)s + 1;
}

int rsre__inc_store_confidence(enum rsre_confidence c) {
    return (int)c + 1;
}

static double confidence_score(enum rsre_confidence c) {
    static const double score[RSRE_CONF_COUNT] = {0.3, 0.6, 0.9};
    return (unsigned)c < RSRE_CONF_COUNT ? score[c] : 0;
}

int rsre__inc_fmt(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

int rsre__inc_new_id(rsre_store_txn *txn, const char *seq, const char *prefix, char *buf,
                     size_t cap) {
    uint64_t v;
    int rc = rsre_store_seq_next(txn, seq, &v);
    if (rc == 0) {
        snprintf(buf, cap, "%s-%llu", prefix, (unsigned long long)v);
    }
    return rc;
}

int rsre__inc_audit(rsre_store_txn *txn, const char *verb, const char *object, const char *reason,
                    const char *detail, int64_t now_ms) {
    char r[1024];
    snprintf(r, sizeof(r), "%s", reason ? reason : "");
    return rsre_store_audit_append(txn, RSRE__ACTOR, verb, object, r, detail, now_ms, NULL);
}

/* --- string lists ------------------------------------------------------------------------ */

int rsre__inc_strlist_has(const struct rsre__strlist *l, const char *s) {
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

int rsre__inc_strlist_add(struct rsre__strlist *l, const char *s, int unique) {
    if ((unique && rsre__inc_strlist_has(l, s)) || l->n >= RSRE__MAX_LIST_ITEMS) {
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            return -ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) {
        return -ENOMEM;
    }
    l->n++;
    return 1;
}

void rsre__inc_strlist_clear(struct rsre__strlist *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int strlist_copy(struct rsre__strlist *l, char **v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = rsre__inc_strlist_add(l, v[i] ? v[i] : "", 0);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* --- incident records ------------------------------------------------------------------------ */

void rsre__inc_rec_free(struct rsre__rec *rec) {
    rsre__inc_strlist_clear(&rec->sources);
    rsre__inc_strlist_clear(&rec->refs);
    rsre__inc_strlist_clear(&rec->recommended);
    rsre__inc_strlist_clear(&rec->executed);
    rec->loaded = 0;
}

int rsre__inc_rec_load(rsre_store_txn *txn, const struct rsre__inc *inc, struct rsre__rec *rec) {
    if (rec->loaded) {
        return 0;
    }
    rsre_store_incident *r = NULL;
    int rc = rsre_store_incident_get(txn, inc->id, &r);
    rec->loaded = 1;
    if (rc == RSRE_ENOTFOUND) {
        rec->exists = 0;
        rec->approval_state = S(APPROVAL_STATE__APPROVAL_STATE_NOT_REQUIRED);
        return 0;
    }
    if (rc) {
        rec->loaded = 0;
        return rc;
    }
    rec->exists = 1;
    if ((rc = strlist_copy(&rec->sources, r->signal_sources, r->n_signal_sources)) ||
        (rc = strlist_copy(&rec->refs, r->raw_evidence_refs, r->n_raw_evidence_refs)) ||
        (rc = strlist_copy(&rec->recommended, r->recommended_actions, r->n_recommended_actions)) ||
        (rc = strlist_copy(&rec->executed, r->executed_actions, r->n_executed_actions))) {
        rsre_store_incident_free(r);
        return rc;
    }
    snprintf(rec->summary, sizeof(rec->summary), "%s",
             r->evidence_summary ? r->evidence_summary : "");
    rec->approval_state = r->approval_state;
    rsre_store_incident_free(r);
    return 0;
}

void rsre__inc_fingerprint(const struct rsre__inc *inc, char *buf, size_t cap) {
    const char *cls = rsre__inc_bindings[inc->b].class_id;
    if (inc->holder->name[0]) {
        snprintf(buf, cap, "%s/node=%s", cls, inc->holder->name);
    } else if (inc->holder->scope[0]) {
        snprintf(buf, cap, "%s/%s", cls, inc->holder->scope);
    } else {
        snprintf(buf, cap, "%s/cluster", cls);
    }
}

int rsre__inc_rec_save(struct rsre_incident_engine *e, rsre_store_txn *txn,
                       const struct rsre__inc *inc, struct rsre__rec *rec, int64_t now_ms) {
    int rc = rsre__inc_rec_load(txn, inc, rec);
    if (rc) {
        return rc;
    }
    const struct rsre_incident_def *def = e->defs[inc->b];
    char fp[RSRE__SCOPE_MAX + 80];
    rsre__inc_fingerprint(inc, fp, sizeof(fp));
    char kind[RSRE__SCOPE_MAX + 1];
    RobotSre__Store__ResourceRef ref = ROBOT_SRE__STORE__RESOURCE_REF__INIT;
    RobotSre__Store__ResourceRef *refs[1] = {&ref};
    if (inc->holder->name[0]) {
        ref.kind = "Node";
        ref.name = (char *)inc->holder->name;
        ref.node = (char *)inc->holder->name;
    } else if (inc->holder->scope[0]) {
        /* "dependency/redis": kind "dependency", name "redis"; a scope without '/' is its own
         * kind and name. */
        const char *sc = inc->holder->scope, *slash = strchr(sc, '/');
        size_t kl = slash ? (size_t)(slash - sc) : strlen(sc);
        memcpy(kind, sc, kl);
        kind[kl] = '\0';
        ref.kind = kind;
        ref.name = (char *)(slash && slash[1] ? slash + 1 : sc);
    } else {
        ref.kind = "Cluster";
        ref.name = (char *)(e->cfg.cluster ? e->cfg.cluster : "");
    }
    rsre_store_incident r = ROBOT_SRE__STORE__INCIDENT__INIT;
    r.id = (char *)inc->id;
    r.fingerprint = fp;
    r.domain = (char *)def->domain->id;
    r.incident_type = (char *)def->id;
    r.severity = rsre__inc_store_severity(inc->severity);
    r.confidence = rsre__inc_store_confidence(inc->confidence);
    r.confidence_score = confidence_score(inc->confidence);
    r.lifecycle = rsre__inc_store_state(inc->state);
    r.n_signal_sources = rec->sources.n;
    r.signal_sources = rec->sources.v;
    r.n_resource_scope = 1;
    r.resource_scope = refs;
    r.environment = (int)e->cfg.env + 1;
    r.evidence_summary = rec->summary;
    r.n_raw_evidence_refs = rec->refs.n;
    r.raw_evidence_refs = rec->refs.v;
    r.n_recommended_actions = rec->recommended.n;
    r.recommended_actions = rec->recommended.v;
    r.n_executed_actions = rec->executed.n;
    r.executed_actions = rec->executed.v;
    r.approval_state = rec->approval_state;
    r.opened_at_ms = inc->opened_ms;
    r.updated_at_ms = now_ms;
    r.resolved_at_ms = inc->state == RSRE_STATE_RESOLVED ? inc->resolved_ms : 0;
    r.rule_id = (char *)inc->rule_id;
    r.rule_version = inc->rule_version;
    r.cluster = (char *)(e->cfg.cluster ? e->cfg.cluster : "");
    rc = rsre_store_incident_put(txn, &r, 0);
    if (rc == 0) {
        rec->exists = 1;
        rec->dirty = 0;
    }
    return rc;
}

/* --- lifecycle ------------------------------------------------------------------------------ */

int rsre__inc_transition(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__inc *inc,
                         enum rsre_lc_event ev, const char *reason, int64_t now_ms) {
    enum rsre_state to;
    int rc = rsre_lifecycle_transition(inc->state, ev, &to);
    if (rc == RSRE_ETRANSITION) {
        return 0;
    }
    if (rc) {
        return rc;
    }
    rsre__inc_save_inc(e, inc);
    char detail[160];
    snprintf(detail, sizeof(detail), "from=%s to=%s event=%s", rsre_state_name(inc->state),
             rsre_state_name(to), rsre_lc_event_name(ev));
    if ((rc = rsre__inc_audit(txn, "incident.transition", inc->id, reason, detail, now_ms))) {
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, RSRE__INC_MOD, "incident transition id=%s %s reason=\"%s\"", inc->id,
             detail, reason ? reason : "");
    inc->state = to;
    inc->dirty = 1;
    if (to == RSRE_STATE_RESOLVED) {
        inc->resolved_ms = now_ms;
    }
    rc = rsre__inc_queue_notify(e, txn, inc, to == RSRE_STATE_RESOLVED ? "resolved" : "state");
    return rc ? rc : 1;
}
