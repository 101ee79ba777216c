/*
 * Transactions of the incident engine: the undo log that rolls in-memory state back when the
 * caller's store transaction aborts, and the effects (actions to execute, notifications) that
 * are released only after it committed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "incidents/incidents_internal.h"

/* --- undo log ------------------------------------------------------------------------------ */

int rsre__inc_undo_push(struct rsre_incident_engine *e, int kind, void *obj, void *copy) {
    if (e->nundo == e->capundo) {
        size_t cap = e->capundo ? e->capundo * 2 : 64;
        struct rsre__undo *u = realloc(e->undo, cap * sizeof(*u));
        if (!u) {
            return -ENOMEM;
        }
        e->undo = u;
        e->capundo = cap;
    }
    e->undo[e->nundo++] = (struct rsre__undo){kind, obj, copy};
    return 0;
}

static void save_copy(struct rsre_incident_engine *e, int kind, void *obj, const void *state,
                      size_t size) {
    void *copy = malloc(size);
    if (!copy || rsre__inc_undo_push(e, kind, obj, copy)) {
        free(copy);
        e->undo_failed = 1;
        RSRE_LOG(RSRE_LOG_ERROR, RSRE__INC_MOD, "cannot record undo state: out of memory");
        return;
    }
    memcpy(copy, state, size);
}

void rsre__inc_save_node(struct rsre_incident_engine *e, struct rsre__node *n) {
    if (n->undo_gen != e->gen + 1) {
        n->undo_gen = e->gen + 1;
        save_copy(e, RSRE__U_NODE, n, &n->s, sizeof(n->s));
    }
}

void rsre__inc_save_inc(struct rsre_incident_engine *e, struct rsre__inc *inc) {
    if (inc->undo_gen != e->gen + 1) {
        inc->undo_gen = e->gen + 1;
        save_copy(e, RSRE__U_INC, inc, inc, sizeof(*inc));
    }
}

/* --- effects ------------------------------------------------------------------------------- */

static struct rsre__effect *fx_new(struct rsre_incident_engine *e) {
    if (e->nfx == e->capfx) {
        size_t cap = e->capfx ? e->capfx * 2 : 16;
        struct rsre__effect *f = realloc(e->fx, cap * sizeof(*f));
        if (!f) {
            return NULL;
        }
        e->fx = f;
        e->capfx = cap;
    }
    struct rsre__effect *f = &e->fx[e->nfx];
    memset(f, 0, sizeof(*f));
    return f;
}

static char *blob_put(char **p, const char *s) {
    if (!s) {
        return NULL;
    }
    char *d = *p;
    size_t n = strlen(s) + 1;
    memcpy(d, s, n);
    *p += n;
    return d;
}

int rsre__inc_queue_execute(struct rsre_incident_engine *e, const struct rsre_planned_action *pa) {
    struct rsre__effect *f = fx_new(e);
    if (!f) {
        return -ENOMEM;
    }
    const char *strs[] = {pa->action_record_id, pa->incident_id, pa->approval_id, pa->node,
                          pa->target};
    size_t need = 0;
    for (size_t i = 0; i < 5; i++) {
        need += strs[i] ? strlen(strs[i]) + 1 : 0;
    }
    char *blob = malloc(need ? need : 1), *p = blob;
    if (!blob) {
        return -ENOMEM;
    }
    f->kind = 0;
    f->strs = blob;
    f->pa = *pa;
    f->pa.action_record_id = blob_put(&p, pa->action_record_id);
    f->pa.incident_id = blob_put(&p, pa->incident_id);
    f->pa.approval_id = blob_put(&p, pa->approval_id);
    f->pa.node = blob_put(&p, pa->node);
    f->pa.target = blob_put(&p, pa->target);
    e->nfx++;
    return 0;
}

/* Coalesced per incident and transaction; the most significant `what` wins. */
static int what_rank(const char *w) {
    static const char *const order[] = {"state", "severity", "resolved", "reopened", "opened"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(order[i], w) == 0) {
            return i;
        }
    }
    return -1;
}

int rsre__inc_queue_notify(struct rsre_incident_engine *e, rsre_store_txn *txn,
                           const struct rsre__inc *inc, const char *what) {
    (void)txn;
    for (size_t i = 0; i < e->nfx; i++) {
        struct rsre__effect *f = &e->fx[i];
        if (f->kind == 1 && strcmp(f->strs, inc->id) == 0) {
            if (what_rank(what) > what_rank(f->what)) {
                f->what = what;
            }
            return 0;
        }
    }
    struct rsre__effect *f = fx_new(e);
    if (!f || !(f->strs = strdup(inc->id))) {
        return -ENOMEM;
    }
    f->kind = 1;
    f->what = what;
    e->nfx++;
    return 0;
}

static void fx_clear(struct rsre_incident_engine *e) {
    for (size_t i = 0; i < e->nfx; i++) {
        free(e->fx[i].strs);
        free(e->fx[i].packed);
    }
    e->nfx = 0;
}

void rsre__inc_txn_free(struct rsre_incident_engine *e) {
    if (e->nundo) {
        rsre_incident_engine_aborted(e); /* a transaction was left open: forget its effects */
    }
    fx_clear(e);
    free(e->fx);
    free(e->undo);
    e->fx = NULL;
    e->undo = NULL;
}

/* --- commit / abort ------------------------------------------------------------------------ */

void rsre_incident_engine_committed(struct rsre_incident_engine *e) {
    if (!e) {
        return;
    }
    for (size_t i = 0; i < e->nundo; i++) {
        struct rsre__undo *u = &e->undo[i];
        free(u->copy);
        if (u->kind == RSRE__U_RETIRE_INC) {
            free(u->obj);
        }
    }
    e->nundo = 0;
    e->undo_failed = 0;
    e->gen++;
    /* Release after the bookkeeping: hooks may start the next transaction. The incident
     * records for notify are read first, in one read transaction closed before any hook. */
    size_t n = e->nfx;
    struct rsre__effect *fx = e->fx;
    e->fx = NULL;
    e->nfx = e->capfx = 0;
    rsre_store_incident **recs = n ? calloc(n, sizeof(*recs)) : NULL;
    rsre_store_txn *rtxn = NULL;
    for (size_t i = 0; recs && i < n; i++) {
        if (fx[i].kind == 1 && e->hooks.notify) {
            if (!rtxn && rsre_store_txn_begin(e->store, 1, &rtxn)) {
                break;
            }
            if (rsre_store_incident_get(rtxn, fx[i].strs, &recs[i])) {
                recs[i] = NULL;
            }
        }
    }
    rsre_store_txn_abort(rtxn);
    for (size_t i = 0; i < n; i++) {
        struct rsre__effect *f = &fx[i];
        if (f->kind == 0 && e->hooks.execute) {
            e->hooks.execute(e->hooks.arg, &f->pa);
        } else if (f->kind == 1 && recs && recs[i]) {
            e->hooks.notify(e->hooks.arg, recs[i], f->what);
            rsre_store_incident_free(recs[i]);
        }
        free(f->strs);
        free(f->packed);
    }
    free(recs);
    free(fx);
}

void rsre_incident_engine_aborted(struct rsre_incident_engine *e) {
    if (!e) {
        return;
    }
    for (size_t i = e->nundo; i-- > 0;) {
        struct rsre__undo *u = &e->undo[i];
        switch (u->kind) {
        case RSRE__U_NODE: {
            struct rsre__node *n = u->obj;
            memcpy(&n->s, u->copy, sizeof(n->s));
            break;
        }
        case RSRE__U_INC:
            memcpy(u->obj, u->copy, sizeof(struct rsre__inc));
            break;
        case RSRE__U_NEW_INC:
            free(u->obj);
            break;
        case RSRE__U_OBS: {
            struct rsre__node *h = u->obj;
            memcpy(h->obs, u->copy, e->obs_size);
            break;
        }
        default:
            break;
        }
        free(u->copy);
    }
    e->nundo = 0;
    e->gen++;
    fx_clear(e);
    if (e->undo_failed) {
        /* The rollback is incomplete: start over from the store. */
        e->undo_failed = 0;
        rsre__inc_free_incidents(e);
        int rc = rsre__inc_load(e);
        if (rc) {
            RSRE_LOG(RSRE_LOG_ERROR, RSRE__INC_MOD, "cannot reload incidents: %s",
                     rsre_strerror(rc));
        }
    }
    rsre__inc_cluster_refresh(e, e->last_now_ms);
    for (size_t i = 0; i < e->nnodes; i++) {
        rsre__inc_node_refresh(e, e->nodes[i], e->last_now_ms);
    }
    for (size_t i = 0; i < e->nscopes; i++) {
        rsre__inc_obs_refresh(e, e->scopes[i], e->last_now_ms);
    }
}
