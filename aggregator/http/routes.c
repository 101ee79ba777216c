/*
 * The admin API's routes: the table (adding an endpoint is adding a row) and the handlers for
 * health, metrics, incidents, approvals, actions, agents and audit. Rules are in rules_api.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "http/api_internal.h"

static const char *const q_incidents[] = {"state", "type", "limit", NULL};
static const char *const q_approvals[] = {"state", "incident", "limit", NULL};
static const char *const q_actions[] = {"state", "incident", "limit", NULL};
static const char *const q_audit[] = {"from_seq", "limit", NULL};
static const char *const q_notifications[] = {"unacked", "limit", NULL};
static const char *const f_vote[] = {"comment", NULL};
static const char *const f_preview[] = {
    "incident", "action", "env", "confidence", "target", "last_run_ago_seconds", NULL};

/* Rule edits: the PATCH's fields are checked again in rules_edit.c (what it may change). */
static const char *const f_rule_patch[] = {"comment",
                                           "threshold_expression",
                                           "severity",
                                           "severity_escalations",
                                           "notification_policy",
                                           "cooldown_seconds",
                                           "suppression_schedule",
                                           "signal_selector",
                                           "name",
                                           "owner",
                                           NULL};
static const char *const f_rule_env[] = {"env", "comment", NULL};
static const char *const f_rule_clone[] = {"new_id", "owner", "comment", NULL};
static const char *const f_rule_test[] = {"limit", NULL};

static const char *const q_webhook[] = {"hub.mode", "hub.verify_token", "hub.challenge", NULL};

#define V RSRE_API_ROLE_VIEWER
#define A RSRE_API_ROLE_APPROVER
#define ADM RSRE_API_ROLE_ADMIN
#define NONE RSRE_API_ROLE_NONE

const struct api_route rsre__api_routes[] = {
    /* method, pattern (also the route label of the request metrics), role, body, query keys,
     * body fields, handler, metrics_route */
    {"GET", "/healthz", NONE, BODY_NONE, NULL, NULL, rsre__h_healthz, 0},
    {"GET", "/readyz", NONE, BODY_NONE, NULL, NULL, rsre__h_readyz, 0},
    {"GET", "/metrics", NONE, BODY_NONE, NULL, NULL, rsre__h_metrics, 1},
    {"GET", "/api/v1/incidents", V, BODY_NONE, q_incidents, NULL, rsre__h_incidents, 0},
    {"GET", "/api/v1/incidents/{id}", V, BODY_NONE, NULL, NULL, rsre__h_incident, 0},
    {"GET", "/api/v1/approvals", V, BODY_NONE, q_approvals, NULL, rsre__h_approvals, 0},
    {"GET", "/api/v1/approvals/{id}", V, BODY_NONE, NULL, NULL, rsre__h_approval, 0},
    {"POST", "/api/v1/approvals/{id}/approve", A, BODY_JSON, NULL, f_vote, rsre__h_approve, 0},
    {"POST", "/api/v1/approvals/{id}/deny", A, BODY_JSON, NULL, f_vote, rsre__h_deny, 0},
    {"GET", "/api/v1/actions", V, BODY_NONE, q_actions, NULL, rsre__h_actions, 0},
    {"GET", "/api/v1/agents", V, BODY_NONE, NULL, NULL, rsre__h_agents, 0},
    {"GET", "/api/v1/rules", V, BODY_NONE, NULL, NULL, rsre__h_rules, 0},
    {"POST", "/api/v1/rules", ADM, BODY_TEXT, NULL, NULL, rsre__h_rule_create, 0},
    {"GET", "/api/v1/rules/{id}", V, BODY_NONE, NULL, NULL, rsre__h_rule, 0},
    {"POST", "/api/v1/rules/{id}/preview", V, BODY_JSON, NULL, f_preview, rsre__h_rule_preview, 0},
    {"PATCH", "/api/v1/rules/{id}", ADM, BODY_JSON, NULL, f_rule_patch, rsre__h_rule_patch, 0},
    {"POST", "/api/v1/rules/{id}/enable", ADM, BODY_JSON, NULL, f_rule_env, rsre__h_rule_enable, 0},
    {"POST", "/api/v1/rules/{id}/disable", ADM, BODY_JSON, NULL, f_rule_env, rsre__h_rule_disable,
     0},
    {"POST", "/api/v1/rules/{id}/clone", ADM, BODY_JSON, NULL, f_rule_clone, rsre__h_rule_clone, 0},
    {"POST", "/api/v1/rules/{id}/test", V, BODY_JSON, NULL, f_rule_test, rsre__h_rule_test, 0},
    {"GET", "/api/v1/audit", V, BODY_NONE, q_audit, NULL, rsre__h_audit, 0},
    {"POST", "/api/v1/audit/verify", V, BODY_NONE, NULL, NULL, rsre__h_audit_verify, 0},
    {"GET", "/api/v1/notifications", V, BODY_NONE, q_notifications, NULL, rsre__h_notifications,
     0},
    {"POST", "/api/v1/notifications/{id}/ack", RSRE_API_ROLE_OPERATOR, BODY_NONE, NULL, NULL,
     rsre__h_notification_ack, 0},
    /* Chat platforms (no token: the platform's signature or secret is checked; webhook_api.c) */
    {"GET", "/webhooks/whatsapp", NONE, BODY_NONE, q_webhook, NULL, rsre__h_webhook, 0},
    {"POST", "/webhooks/whatsapp", NONE, BODY_TEXT, NULL, NULL, rsre__h_webhook, 0},
    {"POST", "/webhooks/telegram", NONE, BODY_TEXT, NULL, NULL, rsre__h_webhook, 0},
};
const size_t rsre__api_nroutes = sizeof(rsre__api_routes) / sizeof(rsre__api_routes[0]);

/* ---- health and metrics ---------------------------------------------------------------------- */

int rsre__h_healthz(struct api_call *c) {
    return rsre__api_reply(c, 200, json_pack("{s:s}", "status", "ok"));
}

int rsre__h_readyz(struct api_call *c) {
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_reply(
            c, 503, json_pack("{s:s, s:s}", "status", "not ready", "reason", "no store"));
    }
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(st, 1, &txn);
    if (rc) {
        return rsre__api_reply(
            c, 503, json_pack("{s:s, s:s}", "status", "not ready", "reason", rsre_strerror(rc)));
    }
    rsre_store_txn_abort(txn);
    const struct rsre_api_callbacks *cb = rsre__api_callbacks(c->api);
    char why[256] = "";
    if (cb->ready && cb->ready(cb->ud, why, sizeof(why))) {
        return rsre__api_reply(
            c, 503,
            json_pack("{s:s, s:s}", "status", "not ready", "reason", why[0] ? why : "not ready"));
    }
    return rsre__api_reply(c, 200, json_pack("{s:s}", "status", "ready"));
}

struct by_type {
    const struct rsre_taxonomy *t;
    unsigned counts[RSRE_MAX_INCIDENTS];
    size_t other;
};

static int count_open(const rsre_store_incident *r, void *ud) {
    struct by_type *b = ud;
    if (r->lifecycle == ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED) {
        return 0;
    }
    const struct rsre_incident_def *d = rsre_taxonomy_incident(b->t, r->incident_type);
    if (d && d->index < RSRE_MAX_INCIDENTS) {
        b->counts[d->index]++;
    } else {
        b->other++;
    }
    return 0;
}

/* Sets ops_incidents_by_type from the store: one series per incident class, "other" for
 * incidents of a type the taxonomy does not know. */
static void refresh_incidents_by_type(struct rsre_api *api) {
    rsre_store *st = rsre__api_store(api);
    struct rsre_metrics *m = rsre_api_metrics(api);
    if (!st || !m) {
        return;
    }
    struct by_type b = {.t = rsre__api_taxonomy(api)};
    rsre_store_txn *txn;
    if (rsre_store_txn_begin(st, 1, &txn)) {
        return;
    }
    int rc = rsre_store_incident_foreach(txn, count_open, &b);
    rsre_store_txn_abort(txn);
    if (rc) {
        RSRE_LOG(RSRE_LOG_WARN, "api", "cannot count incidents for /metrics err=\"%s\"",
                 rsre_strerror(rc));
        return;
    }
    for (size_t i = 0; i < b.t->nincidents; i++) {
        const char *lv[] = {b.t->incidents[i].id};
        rsre_metrics_set(m, RSRE_M_INCIDENTS_BY_TYPE, lv, b.counts[i]);
    }
    if (b.other) {
        const char *lv[] = {"other"};
        rsre_metrics_set(m, RSRE_M_INCIDENTS_BY_TYPE, lv, (double)b.other);
    }
}

int rsre__h_metrics(struct api_call *c) {
    refresh_incidents_by_type(c->api);
    rsre__api_refresh_gauges(c->api);
    int rc = rsre_metrics_render(rsre_api_metrics(c->api), &c->text, &c->text_len);
    if (rc) {
        return rsre__api_fail(c, 500, NULL, "cannot render metrics: %s", rsre_strerror(rc));
    }
    c->content_type = "text/plain; version=0.0.4; charset=utf-8";
    c->status = 200;
    return 200;
}

/* ---- lists ----------------------------------------------------------------------------------- */

struct list {
    struct api_call *c;
    json_t *items;
    size_t limit;
    int truncated;
    int state;            /* filter: enum value, -1 none, -2 "open" (incidents) */
    const char *type;     /* incidents: incident_type */
    const char *incident; /* approvals/actions: incident id */
};

static int list_add(struct list *l, json_t *item) {
    if (json_array_size(l->items) >= l->limit) {
        json_decref(item);
        l->truncated = 1;
        return 1;
    }
    return json_array_append_new(l->items, item) ? -ENOMEM : 0;
}

static int list_reply(struct api_call *c, struct list *l, const char *key, int rc) {
    if (rc) {
        json_decref(l->items);
        return rsre__api_store_fail(c, rc, key);
    }
    size_t n = json_array_size(l->items);
    return rsre__api_reply(c, 200,
                           json_pack("{s:o, s:I, s:b}", key, l->items, "count", (json_int_t)n,
                                     "truncated", l->truncated));
}

/* Begins a read transaction, or answers 503 when there is no store. */
static int read_txn(struct api_call *c, rsre_store_txn **txn) {
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_fail(c, 503, NULL, "the store is not open");
    }
    int rc = rsre_store_txn_begin(st, 1, txn);
    return rc ? rsre__api_store_fail(c, rc, "store") : 0;
}

static int list_limit(struct api_call *c, struct list *l) {
    uint64_t limit;
    if (rsre__api_query_u64(c, "limit", 1, API_LIST_MAX, API_LIST_DEFAULT, &limit)) {
        return c->status;
    }
    l->limit = (size_t)limit;
    l->items = json_array();
    l->c = c;
    return l->items ? 0 : rsre__api_fail(c, 500, NULL, "out of memory");
}

static int incident_cb(const rsre_store_incident *r, void *ud) {
    struct list *l = ud;
    if ((l->state == -2 && r->lifecycle == ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED) ||
        (l->state >= 0 && (int)r->lifecycle != l->state) ||
        (l->type && strcmp(l->type, r->incident_type))) {
        return 0;
    }
    return list_add(l, rsre__json_incident(r));
}

int rsre__h_incidents(struct api_call *c) {
    struct list l = {.state = -1};
    const char *state = rsre__api_query(c, "state");
    if (state) {
        l.state = !strcmp(state, "open") ? -2 : rsre__lifecycle_parse(state);
        if (l.state == -1) {
            return rsre__api_fail(c, 400, "state",
                                  "unknown state '%s' (open, observed, triaged, contained, "
                                  "recovering, resolved, suppressed, escalated)",
                                  state);
        }
    }
    if ((l.type = rsre__api_query(c, "type")) &&
        !rsre_taxonomy_incident(rsre__api_taxonomy(c->api), l.type)) {
        return rsre__api_fail(c, 400, "type", "unknown incident type '%s'", l.type);
    }
    if (list_limit(c, &l)) {
        return c->status;
    }
    rsre_store_txn *txn;
    if (read_txn(c, &txn)) {
        json_decref(l.items);
        return c->status;
    }
    int rc = rsre_store_incident_foreach(txn, incident_cb, &l);
    rsre_store_txn_abort(txn);
    return list_reply(c, &l, "incidents", rc);
}

struct timeline {
    json_t *items;
    int64_t *ts;
    size_t n, cap;
};

static int evidence_cb(const rsre_store_evidence *r, void *ud) {
    struct timeline *t = ud;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        int64_t *n = realloc(t->ts, cap * sizeof(*n));
        if (!n) {
            return -ENOMEM;
        }
        t->ts = n;
        t->cap = cap;
    }
    json_t *j = rsre__json_evidence(r);
    if (!j || json_array_append_new(t->items, j)) {
        return -ENOMEM;
    }
    t->ts[t->n++] = r->observed_at_ms;
    return 0;
}

static int action_of_incident_cb(const rsre_store_action *r, void *ud) {
    return json_array_append_new(ud, rsre__json_action(r)) ? -ENOMEM : 0;
}

int rsre__h_incident(struct api_call *c) {
    rsre_store_txn *txn;
    if (read_txn(c, &txn)) {
        return c->status;
    }
    rsre_store_incident *inc = NULL;
    struct timeline t = {.items = json_array()};
    json_t *actions = json_array();
    int rc = rsre_store_incident_get(txn, c->params[0], &inc);
    if (!rc) {
        rc = rsre_store_evidence_foreach(txn, c->params[0], evidence_cb, &t);
    }
    if (!rc) {
        rc = rsre_store_action_foreach(txn, c->params[0], action_of_incident_cb, actions);
    }
    rsre_store_txn_abort(txn);
    if (rc) {
        rsre_store_incident_free(inc);
        json_decref(t.items);
        json_decref(actions);
        free(t.ts);
        return rsre__api_store_fail(c, rc, "incident");
    }
    /* The evidence timeline, oldest first (insertion sort: evidence lists are short and
     * mostly in order already). */
    json_t *sorted = json_array();
    size_t *idx = t.n ? malloc(t.n * sizeof(*idx)) : NULL;
    if (t.n && !idx) {
        rc = -ENOMEM;
    }
    for (size_t i = 0; !rc && i < t.n; i++) {
        size_t k = i;
        while (k > 0 && t.ts[idx[k - 1]] > t.ts[i]) {
            idx[k] = idx[k - 1];
            k--;
        }
        idx[k] = i;
    }
    for (size_t i = 0; !rc && i < t.n; i++) {
        json_array_append(sorted, json_array_get(t.items, idx[i]));
    }
    free(idx);
    free(t.ts);
    json_decref(t.items);
    json_t *doc = rsre__json_incident(inc);
    rsre_store_incident_free(inc);
    if (rc || !doc) {
        json_decref(sorted);
        json_decref(actions);
        json_decref(doc);
        return rsre__api_fail(c, 500, NULL, "out of memory");
    }
    json_object_set_new(doc, "evidence", sorted);
    json_object_set_new(doc, "actions", actions);
    return rsre__api_reply(c, 200, doc);
}

static int approval_cb(const rsre_store_approval *r, void *ud) {
    struct list *l = ud;
    if ((l->state >= 0 && (int)r->state != l->state) ||
        (l->incident && strcmp(l->incident, r->incident_id))) {
        return 0;
    }
    return list_add(l, rsre__json_approval(r));
}

int rsre__h_approvals(struct api_call *c) {
    struct list l = {.state = -1, .incident = rsre__api_query(c, "incident")};
    const char *state = rsre__api_query(c, "state");
    if (state && (l.state = rsre__approval_state_parse(state)) < 0) {
        return rsre__api_fail(c, 400, "state",
                              "unknown state '%s' (pending, approved, denied, expired, "
                              "cancelled, not_required)",
                              state);
    }
    if (list_limit(c, &l)) {
        return c->status;
    }
    rsre_store_txn *txn;
    if (read_txn(c, &txn)) {
        json_decref(l.items);
        return c->status;
    }
    int rc = rsre_store_approval_foreach(txn, approval_cb, &l);
    rsre_store_txn_abort(txn);
    return list_reply(c, &l, "approvals", rc);
}

int rsre__h_approval(struct api_call *c) {
    rsre_store_txn *txn;
    if (read_txn(c, &txn)) {
        return c->status;
    }
    rsre_store_approval *a = NULL;
    int rc = rsre_store_approval_get(txn, c->params[0], &a);
    rsre_store_txn_abort(txn);
    if (rc) {
        return rsre__api_store_fail(c, rc, "approval");
    }
    json_t *doc = rsre__json_approval(a);
    rsre_store_approval_free(a);
    return rsre__api_reply(c, 200, doc);
}

/* POST approvals/{id}/approve|deny: checks the body, the approval's existence, then hands the
 * vote to the decide callback and maps its result. */
static int vote(struct api_call *c, int approve) {
    json_t *cm = json_object_get(c->json, "comment");
    const char *comment = NULL;
    if (cm && !json_is_null(cm)) {
        if (!json_is_string(cm)) {
            return rsre__api_fail(c, 400, "comment", "comment must be a string");
        }
        comment = json_string_value(cm);
        if (json_string_length(cm) > RSRE_API_COMMENT_MAX ||
            strlen(comment) != json_string_length(cm)) {
            return rsre__api_fail(c, 400, "comment", "comment must be at most %d bytes without NUL",
                                  RSRE_API_COMMENT_MAX);
        }
    }
    const struct rsre_api_callbacks *cb = rsre__api_callbacks(c->api);
    if (!cb->decide) {
        return rsre__api_fail(c, 503, NULL, "approvals are not available (no approvals module)");
    }
    rsre_store_txn *txn;
    if (read_txn(c, &txn)) {
        return c->status;
    }
    rsre_store_approval *a = NULL;
    int rc = rsre_store_approval_get(txn, c->params[0], &a);
    rsre_store_txn_abort(txn);
    rsre_store_approval_free(a);
    if (rc) {
        return rsre__api_store_fail(c, rc, "approval");
    }
    struct rsre_api_vote_result res = {{0}, {0}};
    rc = cb->decide(cb->ud, c->params[0], c->who->operator_id, approve, "api", comment, &res);
    res.state[sizeof(res.state) - 1] = '\0';
    res.message[sizeof(res.message) - 1] = '\0';
    int status;
    switch (rc) {
    case 0:
        status = 200;
        break;
    case RSRE_ENOTFOUND: /* the approval exists (checked above): the operator is unknown */
    case RSRE_EBOUNDARY:
        status = 403;
        break;
    case RSRE_EEXIST:
    case RSRE_ETRANSITION:
        status = 409;
        break;
    case RSRE_EINVALID:
        status = 400;
        break;
    default:
        status = 500;
        RSRE_LOG(RSRE_LOG_ERROR, "api", "vote failed approval=%s err=\"%s\"", c->params[0],
                 rsre_strerror(rc));
    }
    RSRE_LOG(RSRE_LOG_INFO, "api", "vote approval=%s operator=%s vote=%s status=%d state=%s",
             c->params[0], c->who->operator_id, approve ? "approve" : "deny", status,
             res.state[0] ? res.state : "-");
    if (status != 200) {
        return rsre__api_fail(c, status, NULL, "%s",
                              res.message[0] ? res.message : rsre_strerror(rc));
    }
    return rsre__api_reply(c, 200,
                           json_pack("{s:s, s:s, s:s, s:s, s:s}", "approval_id", c->params[0],
                                     "operator", c->who->operator_id, "vote",
                                     approve ? "approve" : "deny", "state",
                                     res.state[0] ? res.state : "unknown", "message", res.message));
}

int rsre__h_approve(struct api_call *c) {
    return vote(c, 1);
}

int rsre__h_deny(struct api_call *c) {
    return vote(c, 0);
}

static int action_cb(const rsre_store_action *r, void *ud) {
    struct list *l = ud;
    if (l->state >= 0 && (int)r->state != l->state) {
        return 0;
    }
    return list_add(l, rsre__json_action(r));
}

int rsre__h_actions(struct api_call *c) {
    struct list l = {.state = -1, .incident = rsre__api_query(c, "incident")};
    const char *state = rsre__api_query(c, "state");
    if (state && (l.state = rsre__action_state_parse(state)) < 0) {
        return rsre__api_fail(c, 400, "state", "unknown action state '%s'", state);
    }
    if (list_limit(c, &l)) {
        return c->status;
    }
    rsre_store_txn *txn;
    if (read_txn(c, &txn)) {
        json_decref(l.items);
        return c->status;
    }
    int rc = rsre_store_action_foreach(txn, l.incident, action_cb, &l);
    rsre_store_txn_abort(txn);
    return list_reply(c, &l, "actions", rc);
}

int rsre__h_agents(struct api_call *c) {
    const struct rsre_api_callbacks *cb = rsre__api_callbacks(c->api);
    if (!cb->agents) {
        return rsre__api_fail(c, 503, NULL, "agent information is not available");
    }
    json_t *a = cb->agents(cb->ud);
    if (!a) {
        return rsre__api_fail(c, 500, NULL, "cannot list the agents");
    }
    return rsre__api_reply(c, 200, json_pack("{s:o}", "agents", a));
}

/* ---- audit ----------------------------------------------------------------------------------- */

struct audit_page {
    json_t *items;
    size_t limit;
    uint64_t next;
};

static int audit_cb(const rsre_store_audit *r, void *ud) {
    struct audit_page *p = ud;
    if (json_array_size(p->items) >= p->limit) {
        p->next = r->seq;
        return 1;
    }
    return json_array_append_new(p->items, rsre__json_audit(r)) ? -ENOMEM : 0;
}

int rsre__h_audit(struct api_call *c) {
    uint64_t from, limit;
    if (rsre__api_query_u64(c, "from_seq", 1, UINT64_MAX >> 1, 1, &from) ||
        rsre__api_query_u64(c, "limit", 1, API_AUDIT_MAX, API_AUDIT_DEFAULT, &limit)) {
        return c->status;
    }
    rsre_store_txn *txn;
    if (read_txn(c, &txn)) {
        return c->status;
    }
    struct audit_page p = {.items = json_array(), .limit = (size_t)limit};
    int rc = p.items ? rsre_store_audit_foreach(txn, from, audit_cb, &p) : -ENOMEM;
    rsre_store_txn_abort(txn);
    if (rc) {
        json_decref(p.items);
        return rsre__api_store_fail(c, rc, "audit log");
    }
    return rsre__api_reply(c, 200,
                           json_pack("{s:o, s:I, s:o}", "records", p.items, "count",
                                     (json_int_t)json_array_size(p.items), "next_seq",
                                     p.next ? json_integer((json_int_t)p.next) : json_null()));
}

int rsre__h_audit_verify(struct api_call *c) {
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_fail(c, 503, NULL, "the store is not open");
    }
    struct rsre_store_audit_report rep;
    memset(&rep, 0, sizeof(rep));
    int rc = rsre_store_audit_verify(st, &rep);
    if (rc && rc != RSRE_ECHAIN) {
        return rsre__api_store_fail(c, rc, "audit log");
    }
    char head[2 * RSRE_STORE_HASH_LEN + 1];
    rsre__hex(rep.head_hash, RSRE_STORE_HASH_LEN, head);
    RSRE_LOG(rc ? RSRE_LOG_ERROR : RSRE_LOG_INFO, "api",
             "audit verify operator=%s ok=%s count=%llu broken_seq=%llu",
             c->who ? c->who->operator_id : "-", rc ? "false" : "true",
             (unsigned long long)rep.count, (unsigned long long)rep.broken_seq);
    return rsre__api_reply(c, 200,
                           json_pack("{s:b, s:I, s:I, s:s, s:I, s:s}", "ok", !rc, "count",
                                     (json_int_t)rep.count, "head_seq", (json_int_t)rep.head_seq,
                                     "head_hash", head, "broken_seq", (json_int_t)rep.broken_seq,
                                     "reason", rep.reason));
}
