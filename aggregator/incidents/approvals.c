/*
 * Approvals and results: the approvals of an incident, cancellation when it resolves, expiry,
 * the decision of the approvals module (re-checked before anything runs), and action results
 * moving the incident through its lifecycle. docs/incidents.md "Approvals" and "Results".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "incidents/incidents_internal.h"

#define AST(x) ROBOT_SRE__STORE__ACTION_STATE__ACTION_STATE_##x
#define APS(x) ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_##x

/* --- approvals of an incident ---------------------------------------------------------------- */

int rsre__inc_apr_add(const rsre_store_approval *ap, void *ud) {
    struct rsre__apr_list *l = ud;
    if (l->incident_id && (!ap->incident_id || strcmp(ap->incident_id, l->incident_id) != 0)) {
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct rsre__apr *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            return l->rc = -ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    struct rsre__apr *x = &l->v[l->n++];
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%s", ap->id ? ap->id : "");
    snprintf(x->action, sizeof(x->action), "%s", ap->action ? ap->action : "");
    snprintf(x->target, sizeof(x->target), "%s", ap->target ? ap->target : "");
    x->state = ap->state;
    x->decided_ms = ap->decided_at_ms;
    x->expires_ms = ap->expires_at_ms;
    return 0;
}

int rsre__inc_approvals_of(rsre_store_txn *txn, const char *incident_id, struct rsre__apr_list *l) {
    memset(l, 0, sizeof(*l));
    l->incident_id = incident_id;
    int rc = rsre_store_approval_foreach(txn, rsre__inc_apr_add, l);
    return rc ? rc : l->rc;
}

/* The incident's overall approval_state: pending > approved > denied > expired > cancelled. */
int rsre__inc_approvals_overall(const struct rsre__apr_list *l) {
    static const int order[] = {APS(PENDING), APS(APPROVED), APS(DENIED), APS(EXPIRED),
                                APS(CANCELLED)};
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].state == order[k]) {
                return order[k];
            }
        }
    }
    return APS(NOT_REQUIRED);
}

int rsre__inc_approval_state_refresh(rsre_store_txn *txn, const struct rsre__inc *inc,
                                     struct rsre__rec *rec) {
    struct rsre__apr_list l;
    int rc = rsre__inc_approvals_of(txn, inc->id, &l);
    if (rc == 0 && (rc = rsre__inc_rec_load(txn, inc, rec)) == 0) {
        int st = rsre__inc_approvals_overall(&l);
        if (st != rec->approval_state) {
            rec->approval_state = st;
            rec->dirty = 1;
        }
    }
    free(l.v);
    return rc;
}

/* Whether an existing approval for (action, target) makes a new request pointless: one is
 * pending or approved, or one was denied or expired inside the duplicate window. */
int rsre__inc_approval_blocks(const struct rsre__apr_list *l, const char *action,
                              const char *target, int64_t now_ms, int64_t window_ms) {
    for (size_t i = 0; i < l->n; i++) {
        const struct rsre__apr *x = &l->v[i];
        if (strcmp(x->action, action) != 0 || strcmp(x->target, target) != 0) {
            continue;
        }
        if (x->state == APS(PENDING) || x->state == APS(APPROVED)) {
            return 1;
        }
        int64_t at = x->decided_ms ? x->decided_ms : x->expires_ms;
        if ((x->state == APS(DENIED) || x->state == APS(EXPIRED)) && now_ms - at < window_ms) {
            return 1;
        }
    }
    return 0;
}

/* --- approvals: cancel, expire, decide ----------------------------------------------------- */

static int close_action(rsre_store_txn *txn, const char *act_id, int state, const char *result,
                        int64_t now_ms) {
    rsre_store_action *r = NULL;
    int rc = rsre_store_action_get(txn, act_id, &r);
    if (rc == RSRE_ENOTFOUND) {
        return 0;
    }
    if (rc) {
        return rc;
    }
    char *old_result = r->result;
    r->state = state;
    r->result = (char *)result;
    r->finished_at_ms = now_ms;
    rc = rsre_store_action_put(txn, r, 0);
    r->result = old_result;
    rsre_store_action_free(r);
    return rc;
}

/* Moves approval `id` (currently `from`) to `state` with its ActionRecord, audited. */
static int close_approval(rsre_store_txn *txn, const char *id, int from, int state,
                          int action_state, const char *verb, const char *reason, int64_t now_ms) {
    rsre_store_approval *ap = NULL;
    int rc = rsre_store_approval_get(txn, id, &ap);
    if (rc) {
        return rc == RSRE_ENOTFOUND ? 0 : rc;
    }
    if ((int)ap->state != from) {
        rsre_store_approval_free(ap);
        return 0;
    }
    ap->state = state;
    ap->decided_at_ms = now_ms;
    rc = rsre_store_approval_put(txn, ap, 0);
    if (rc == 0) {
        rc = close_action(txn, ap->action_id, action_state, reason, now_ms);
    }
    if (rc == 0) {
        char detail[256];
        snprintf(detail, sizeof(detail), "incident=%s action=%s target=%s",
                 ap->incident_id ? ap->incident_id : "", ap->action ? ap->action : "",
                 ap->target ? ap->target : "");
        rc = rsre__inc_audit(txn, verb, id, reason, detail, now_ms);
    }
    rsre_store_approval_free(ap);
    return rc;
}

int rsre__inc_plan_cancel_pending(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                  struct rsre__inc *inc, struct rsre__rec *rec, int64_t now_ms) {
    (void)e;
    struct rsre__apr_list l;
    int rc = rsre__inc_approvals_of(txn, inc->id, &l);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (l.v[i].state == APS(PENDING)) {
            rc = close_approval(txn, l.v[i].id, APS(PENDING), APS(CANCELLED), AST(CANCELLED),
                                "approval.cancel", "the incident resolved before a decision",
                                now_ms);
        }
    }
    free(l.v);
    return rc ? rc : rsre__inc_approval_state_refresh(txn, inc, rec);
}

int rsre__inc_plan_expire(struct rsre_incident_engine *e, rsre_store_txn *txn, int64_t now_ms) {
    struct rsre__apr_list l;
    int rc = rsre__inc_approvals_of(txn, NULL, &l);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (l.v[i].state != APS(PENDING) || l.v[i].expires_ms <= 0 || l.v[i].expires_ms > now_ms) {
            continue;
        }
        rsre_store_approval *ap = NULL;
        if ((rc = rsre_store_approval_get(txn, l.v[i].id, &ap))) {
            break;
        }
        struct rsre__inc *inc = ap->incident_id ? rsre__inc_by_id(e, ap->incident_id) : NULL;
        int ours = ap->requester && strcmp(ap->requester, RSRE__ACTOR) == 0;
        rsre_store_approval_free(ap);
        if (!ours || !inc) {
            continue; /* not an approval this engine requested */
        }
        char reason[256];
        rsre__inc_fmt(reason, sizeof(reason), "approval %s for %s %s expired without a decision",
                      l.v[i].id, l.v[i].action, l.v[i].target);
        rc = close_approval(txn, l.v[i].id, APS(PENDING), APS(EXPIRED), AST(EXPIRED),
                            "approval.expire", reason, now_ms);
        struct rsre__rec rec = {0};
        if (rc == 0 && rsre_lifecycle_is_open(inc->state)) {
            rc = rsre__inc_transition(e, txn, inc, RSRE_LC_ESCALATE, reason, now_ms);
            rc = rc < 0 ? rc : 0;
        }
        if (rc == 0) {
            rc = rsre__inc_approval_state_refresh(txn, inc, &rec);
        }
        if (rc == 0 && (rec.dirty || inc->dirty)) {
            rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms);
            inc->dirty = 0;
        }
        rsre__inc_rec_free(&rec);
    }
    free(l.v);
    return rc;
}

/* Distinct approve votes by operators other than the requester. */
static unsigned valid_approvals(const rsre_store_approval *ap) {
    unsigned n = 0;
    for (size_t i = 0; i < ap->n_votes; i++) {
        const rsre_store_vote *v = ap->votes[i];
        if (!v || v->vote != ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE || !v->operator_ ||
            !v->operator_[0] || (ap->requester && strcmp(v->operator_, ap->requester) == 0)) {
            continue;
        }
        int dup = 0;
        for (size_t k = 0; k < i && !dup; k++) {
            const rsre_store_vote *w = ap->votes[k];
            dup =
                w && w->vote == v->vote && w->operator_ && strcmp(w->operator_, v->operator_) == 0;
        }
        n += !dup;
    }
    return n;
}

int rsre_incident_engine_approval_decided(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                          const char *approval_id, int64_t now_ms) {
    if (!e || !txn || !approval_id) {
        return -EINVAL;
    }
    rsre_store_approval *ap = NULL;
    rsre_store_action *act = NULL;
    struct rsre__rec rec = {0};
    int rc = rsre_store_approval_get(txn, approval_id, &ap);
    if (rc) {
        return rc;
    }
    if ((rc = rsre_store_action_get(txn, ap->action_id, &act))) {
        goto out;
    }
    struct rsre__inc *inc = rsre__inc_by_id(e, ap->incident_id);
    if (ap->state == APS(EXPIRED)) {
        /* Expired by whoever ran the expiry (this engine's tick or the approvals module): the
         * record expires and the incident escalates (a no-op when already escalated). */
        char reason[300];
        rsre__inc_fmt(reason, sizeof(reason), "approval %s for %s %s expired without a decision",
                      approval_id, ap->action ? ap->action : "", ap->target ? ap->target : "");
        if (act->state == AST(AWAITING_APPROVAL)) {
            rc = close_action(txn, act->id, AST(EXPIRED), reason, now_ms);
        }
        if (rc == 0 && inc && rsre_lifecycle_is_open(inc->state)) {
            rc = rsre__inc_transition(e, txn, inc, RSRE_LC_ESCALATE, reason, now_ms);
            rc = rc < 0 ? rc : 0;
        }
        if (rc == 0 && inc && (rc = rsre__inc_approval_state_refresh(txn, inc, &rec)) == 0 &&
            (rec.dirty || inc->dirty)) {
            rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms);
            inc->dirty = 0;
        }
        goto out;
    }
    if (act->state != AST(AWAITING_APPROVAL)) {
        goto out; /* already released, cancelled or closed */
    }
    if (ap->state == APS(CANCELLED)) {
        rc = close_action(txn, act->id, AST(CANCELLED), "approval cancelled", now_ms);
        if (rc == 0 && inc && (rc = rsre__inc_approval_state_refresh(txn, inc, &rec)) == 0 &&
            rec.dirty) {
            rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms);
        }
        goto out;
    }
    if (ap->state == APS(DENIED)) {
        rc = close_action(txn, act->id, AST(DENIED), "denied by operators", now_ms);
        if (rc == 0) {
            rc = rsre__inc_audit(txn, "approval.denied", approval_id, "denied by operators",
                                 act->action_id, now_ms);
        }
        if (rc == 0 && inc && (rc = rsre__inc_approval_state_refresh(txn, inc, &rec)) == 0 &&
            rec.dirty) {
            rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms);
        }
        goto out;
    }
    if (ap->state != APS(APPROVED)) {
        goto out;
    }
    /* Re-check everything at execution time. */
    const struct rsre_action_def *a = rsre_taxonomy_action(e->t, act->action_id);
    char why[1024] = "";
    unsigned votes = valid_approvals(ap);
    struct rsre_decision d = {0};
    char key[RSRE_STORE_ID_MAX + 1] = "";
    if (!inc || !rsre_lifecycle_is_open(inc->state)) {
        snprintf(why, sizeof(why), "the incident is no longer open");
    } else if (!a) {
        snprintf(why, sizeof(why), "unknown action %s", act->action_id);
    } else if (now_ms >= ap->expires_at_ms) {
        snprintf(why, sizeof(why), "the approval expired before it was decided");
    } else if (votes < 1 || votes < ap->quorum) {
        snprintf(why, sizeof(why),
                 "%u valid approve vote(s) by operators other than the requester, quorum %u", votes,
                 ap->quorum);
    } else {
        rsre__inc_cooldown_key(e, inc, a, act->target, key, sizeof(key));
        struct rsre_policy_request req = {
            e->t,
            e->defs[inc->b],
            a,
            e->cfg.env,
            inc->confidence,
            act->target,
            e->rules,
            now_ms / 1000,
            a->cls >= RSRE_CLASS_CONTAIN ? rsre__inc_last_run(txn, key) : 0};
        rsre_policy_decide(&req, &d);
        if (d.verdict != RSRE_VERDICT_APPROVAL && d.verdict != RSRE_VERDICT_AUTO) {
            struct rsre__strlist reasons = {0};
            if ((rc = rsre__inc_reasons(&d, NULL, &reasons)) == 0) {
                char r[900];
                rsre__inc_join(&reasons, r, sizeof(r));
                snprintf(why, sizeof(why), "policy now says %s: %s", rsre_verdict_name(d.verdict),
                         r);
            }
            rsre__inc_strlist_clear(&reasons);
            if (rc) {
                goto out;
            }
        } else if (votes < d.quorum) {
            snprintf(why, sizeof(why), "%u valid approve vote(s), the policy now needs %u", votes,
                     d.quorum);
        }
    }
    if (why[0]) {
        rc = close_approval(txn, approval_id, APS(APPROVED), APS(CANCELLED), AST(CANCELLED),
                            "approval.cancel", why, now_ms);
        if (rc == 0 && inc && (rc = rsre__inc_approval_state_refresh(txn, inc, &rec)) == 0 &&
            rec.dirty) {
            rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms);
        }
        goto out;
    }
    /* Release: the record is approved, its cooldown starts, the executor gets it. */
    act->state = AST(APPROVED);
    act->started_at_ms = now_ms;
    if ((rc = rsre_store_action_put(txn, act, 0))) {
        goto out;
    }
    char setby[RSRE_STORE_ID_MAX + 16], detail[512];
    snprintf(setby, sizeof(setby), "%s:%s", RSRE__ACTOR, act->id);
    if (a->cls >= RSRE_CLASS_CONTAIN &&
        (rc = rsre_store_cooldown_set(txn, key, now_ms + d.cooldown_seconds * 1000, setby,
                                      now_ms))) {
        goto out;
    }
    snprintf(detail, sizeof(detail),
             "incident=%s action=%s target=%s votes=%u quorum=%u cooldown=%s", inc->id, a->id,
             act->target, votes, ap->quorum, key);
    if ((rc = rsre__inc_audit(txn, "action.approved", act->id,
                              "approved by operators; policy, "
                              "cooldown and expiry re-checked",
                              detail, now_ms))) {
        goto out;
    }
    struct rsre_planned_action pa = {
        act->id,           inc->id,     approval_id,    a,
        inc->holder->name, act->target, e->cfg.dry_run, now_ms + e->cfg.action_deadline_ms};
    if ((rc = rsre__inc_queue_execute(e, &pa))) {
        goto out;
    }
    if (a->cls >= RSRE_CLASS_RECOVER) {
        char reason[256];
        snprintf(reason, sizeof(reason), "approved %s on %s started", a->id, act->target);
        if ((rc = rsre__inc_transition(e, txn, inc, RSRE_LC_RECOVERY_ACTION_STARTED, reason,
                                       now_ms)) < 0) {
            goto out;
        }
        rc = 0;
    }
    if ((rc = rsre__inc_approval_state_refresh(txn, inc, &rec)) == 0 && (rec.dirty || inc->dirty)) {
        rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms);
        inc->dirty = 0;
    }
out:
    rsre__inc_rec_free(&rec);
    rsre_store_action_free(act);
    rsre_store_approval_free(ap);
    return rc;
}

/* --- action results --------------------------------------------------------------------------- */

int rsre_incident_engine_action_result(struct rsre_incident_engine *e, rsre_store_txn *txn,
                                       const char *action_record_id, int ok, const char *message,
                                       uint64_t bytes_freed, uint32_t objects_removed,
                                       int64_t now_ms) {
    if (!e || !txn || !action_record_id) {
        return -EINVAL;
    }
    rsre_store_action *act = NULL;
    int rc = rsre_store_action_get(txn, action_record_id, &act);
    if (rc) {
        return rc;
    }
    struct rsre__rec rec = {0};
    if (act->state != AST(PLANNED) && act->state != AST(APPROVED) && act->state != AST(RUNNING)) {
        goto out; /* a duplicate or late result, or a record that was never released */
    }
    char result[4096];
    snprintf(result, sizeof(result), "%s", message ? message : "");
    char *old_result = act->result;
    act->state = ok ? AST(SUCCEEDED) : AST(FAILED);
    act->result = result;
    act->bytes_freed = bytes_freed;
    act->objects_removed = objects_removed;
    act->finished_at_ms = now_ms;
    rc = rsre_store_action_put(txn, act, 0);
    act->result = old_result;
    if (rc) {
        goto out;
    }
    char detail[256], freed[32];
    rsre__inc_fmt_bytes((double)bytes_freed, freed, sizeof(freed));
    snprintf(detail, sizeof(detail),
             "incident=%s action=%s target=%s ok=%d bytes_freed=%llu "
             "objects_removed=%u",
             act->incident_id, act->action_id, act->target, ok != 0,
             (unsigned long long)bytes_freed, objects_removed);
    if ((rc = rsre__inc_audit(txn, "action.result", act->id, result, detail, now_ms))) {
        goto out;
    }
    struct rsre__inc *inc = rsre__inc_by_id(e, act->incident_id);
    const struct rsre_action_def *a = rsre_taxonomy_action(e->t, act->action_id);
    if (!inc) {
        goto out;
    }
    rsre__inc_save_inc(e, inc);
    if ((rc = rsre__inc_rec_load(txn, inc, &rec))) {
        goto out;
    }
    if ((rc = rsre__inc_strlist_add(&rec.executed, act->id, 1)) < 0) {
        goto out;
    }
    rec.dirty |= rc;
    rc = 0;
    if (a && !act->dry_run && rsre_lifecycle_is_open(inc->state)) {
        char reason[600];
        if (ok && a->cls == RSRE_CLASS_CONTAIN) {
            snprintf(reason, sizeof(reason), "%s on %s succeeded: %u object(s) removed, %s freed",
                     a->id, act->target, objects_removed, freed);
            rc =
                rsre__inc_transition(e, txn, inc, RSRE_LC_CONTAIN_ACTION_SUCCEEDED, reason, now_ms);
        } else if (ok && a->cls >= RSRE_CLASS_RECOVER && inc->state != RSRE_STATE_RECOVERING) {
            snprintf(reason, sizeof(reason), "%s on %s succeeded", a->id, act->target);
            rc = rsre__inc_transition(e, txn, inc, RSRE_LC_RECOVERY_ACTION_STARTED, reason, now_ms);
        } else if (!ok && a->cls >= RSRE_CLASS_CONTAIN) {
            snprintf(reason, sizeof(reason), "%s on %s failed: %.400s", a->id, act->target, result);
            rc = rsre__inc_transition(e, txn, inc, RSRE_LC_ESCALATE, reason, now_ms);
        }
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0 && (rec.dirty || inc->dirty)) {
        rc = rsre__inc_rec_save(e, txn, inc, &rec, now_ms);
        inc->dirty = 0;
    }
out:
    rsre__inc_rec_free(&rec);
    rsre_store_action_free(act);
    return rc;
}
