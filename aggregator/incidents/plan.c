/*
 * Plans: every action of an incident class's plan, in the class's order, through the policy
 * engine, and what the engine does with each verdict — auto actions become queued ActionRecords
 * with a cooldown record, approval-required ones an Approval with the spec's prompt, human-only
 * and denied ones a standing record with the reasons. The other half of the loop (approval
 * decisions, expiry, cancellation, action results) is approvals.c. docs/incidents.md "Plans".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "incidents/incidents_internal.h"

#define S(x) ROBOT_SRE__STORE__##x
#define DEC(x) ROBOT_SRE__STORE__DECISION__DECISION_##x
#define AST(x) ROBOT_SRE__STORE__ACTION_STATE__ACTION_STATE_##x
#define APS(x) ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_##x

/* --- targets -------------------------------------------------------------------------------- */

enum how { T_NODE, T_SCOPE, T_INCIDENT, T_CHANNEL, T_ALL_NAMESPACES };

/* How an action's target is formed from the incident, by the action's target kind. Kinds not
 * listed (deployment, cronjob, config, ...) need a target an operator chooses. */
static const struct {
    const char *kind;
    enum how how;
} target_rules[] = {
    {"node", T_NODE},                /* the incident's node */
    {"oci_instance", T_NODE},        /* the node; the OCI executor resolves its providerID */
    {"cluster", T_SCOPE},            /* what to look at: the node, or "cluster" */
    {"incident", T_INCIDENT},        /* the incident id */
    {"channel", T_CHANNEL},          /* the firing rule's notification route, or "default" */
    {"namespace", T_ALL_NAMESPACES}, /* "*": every namespace (on the node for node scope) */
};

static int target_how(const struct rsre_action_def *a, enum how *out) {
    for (size_t i = 0; i < sizeof(target_rules) / sizeof(target_rules[0]); i++) {
        if (strcmp(target_rules[i].kind, a->target_kind) == 0) {
            *out = target_rules[i].how;
            return 1;
        }
    }
    return 0;
}

/* Observation scopes name the resource some actions act on: the action's target is the rest of
 * the scope after the prefix ("dependency/redis" -> restart_shared_dependency on "redis"). */
static const struct {
    const char *prefix;
    const char *actions[6];
} scope_targets[] = {
    {"dependency/",
     {"restart_noncritical_dependency", "restart_shared_dependency", "scale_dependency", NULL}},
    {"workload/", {"patch_image_refs", "rollout_restart", NULL}},
    {"release/",
     {"helm_reconcile", "helm_rollback", "force_field_ownership", "query_release_state", NULL}},
    {"ingress/", {"patch_ingress", NULL}},
};

static int scope_target(const char *scope, const struct rsre_action_def *a, char *buf, size_t cap) {
    for (size_t i = 0; i < sizeof(scope_targets) / sizeof(scope_targets[0]); i++) {
        size_t n = strlen(scope_targets[i].prefix);
        if (strncmp(scope, scope_targets[i].prefix, n) != 0 || !scope[n]) {
            continue;
        }
        for (size_t k = 0; scope_targets[i].actions[k]; k++) {
            if (strcmp(scope_targets[i].actions[k], a->id) == 0) {
                snprintf(buf, cap, "%s", scope + n);
                return 1;
            }
        }
    }
    return 0;
}

/* Fills buf with the action's target; 0 when the engine cannot form one. */
static int form_target(const struct rsre_incident_engine *e, const struct rsre__inc *inc,
                       const struct rsre_action_def *a, char *buf, size_t cap) {
    enum how how;
    const char *node = inc->holder->name;
    buf[0] = '\0';
    if (inc->holder->scope[0] && scope_target(inc->holder->scope, a, buf, cap)) {
        return 1;
    }
    if (!target_how(a, &how)) {
        return 0;
    }
    switch (how) {
    case T_NODE:
        if (!node[0]) {
            return 0;
        }
        snprintf(buf, cap, "%s", node);
        return 1;
    case T_SCOPE:
        snprintf(buf, cap, "%s", rsre__inc_holder_label(inc->holder));
        return 1;
    case T_INCIDENT:
        snprintf(buf, cap, "%s", inc->id);
        return 1;
    case T_CHANNEL: {
        const struct rsre_rule *r = rsre_ruleset_find(e->rules, inc->rule_id);
        snprintf(buf, cap, "%s", r && r->notification.route ? r->notification.route : "default");
        return 1;
    }
    case T_ALL_NAMESPACES:
        snprintf(buf, cap, "*");
        return 1;
    }
    return 0;
}

/* The target in words for prompts: "node-a", "every namespace on node-a". */
static void target_words(const struct rsre__inc *inc, const struct rsre_action_def *a,
                         const char *target, char *buf, size_t cap) {
    enum how how;
    if (target_how(a, &how) && how == T_ALL_NAMESPACES && strcmp(target, "*") == 0) {
        if (inc->holder->name[0]) {
            snprintf(buf, cap, "every namespace on %s", inc->holder->name);
        } else {
            snprintf(buf, cap, "every namespace");
        }
    } else {
        snprintf(buf, cap, "%s", target);
    }
}

/* --- words for approval prompts ------------------------------------------------------------ */

static const struct {
    const char *id, *verb, *impact, *rollback;
} words[] = {
    {"cordon_node", "cordon node",
     "no new pods are scheduled on the node; running pods keep running", "uncordon the node"},
    {"uncordon_node", "uncordon node", "pods may be scheduled on the node again",
     "cordon the node again"},
    {"drain_node", "drain node",
     "pods on the node are evicted through the Eviction API (PodDisruptionBudgets hold) and "
     "reschedule elsewhere",
     "uncordon the node; evicted pods do not come back by themselves"},
    {"reboot_worker", "reboot worker",
     "pods on that node will reschedule; the node is NotReady for a few minutes",
     "none (a reboot cannot be undone)"},
    {"replace_worker", "replace worker",
     "the node is removed from its node pool and a new one created (pool size kept); its pods "
     "reschedule and its local data is lost",
     "none (the old instance is terminated)"},
    {"delete_finished_pods", "delete Succeeded and Failed pods in",
     "finished pods and their logs and emptyDir volumes are removed; running pods are untouched",
     "none needed (finished pods are not restarted)"},
    {"suspend_cronjob", "suspend CronJob", "no new Jobs start from it until it is resumed",
     "resume the CronJob"},
    {"scale_workload_to_zero", "scale to zero", "the workload stops serving",
     "scale it back to its previous replica count"},
    {"scale_shared_controllers_down", "scale shared controllers down",
     "the controllers stop reconciling until scaled up", "scale them back up"},
    {"pause_shared_controllers", "pause shared controllers",
     "the controllers stop reconciling until resumed", "resume them"},
    {"bulk_cleanup_outside_allowlist", "bulk-clean finished workloads in",
     "finished workloads outside the allowlist are deleted", "none (deleted objects are gone)"},
    /* observation classes (targets from the scope or an operator rule) */
    {"restart_noncritical_dependency", "restart one failing pod of",
     "one pod of the dependency is recreated by its controller; its clients reconnect",
     "none needed (the controller keeps the replica count)"},
    {"restart_shared_dependency", "rollout-restart shared dependency",
     "the dependency's pods are replaced one by one; its clients see reconnects meanwhile",
     "none needed (a restart keeps the spec); roll back the release if it does not come up"},
    {"scale_dependency", "change the replica count of dependency",
     "the dependency runs with a different number of replicas",
     "scale it back to its previous replica count"},
    {"rollout_restart", "rollout-restart",
     "the workload's pods are replaced one by one (its rollout strategy holds)",
     "none needed (a restart keeps the spec)"},
    {"restart_backend", "rollout-restart the backend API",
     "backend pods are replaced one by one; requests in flight on a replaced pod may fail",
     "none needed (a restart keeps the spec)"},
    {"helm_reconcile", "reconcile Helm release",
     "the release's objects are brought back to its intended values; workloads may restart",
     "roll the release back to its previous revision"},
    {"helm_rollback", "roll back Helm release",
     "the release returns to its previous revision; workloads restart with the old images",
     "upgrade to the rolled-back revision again"},
    {"force_field_ownership", "force field ownership of release",
     "server-side apply takes over fields another manager owns",
     "re-apply the other manager's values"},
    {"patch_image_refs", "patch image references of",
     "the workload rolls out with the patched image references",
     "restore the previous image references"},
    {"patch_ingress", "patch ingress", "the ingress routes change as patched",
     "restore the previous ingress spec"},
};

static void action_words(const struct rsre_action_def *a, const char **verb, const char **impact,
                         const char **rollback) {
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcmp(words[i].id, a->id) == 0) {
            *verb = words[i].verb;
            *impact = words[i].impact;
            *rollback = words[i].rollback;
            return;
        }
    }
    *verb = a->label;
    *impact = a->description;
    *rollback = "revert by hand";
}

/* --- cooldown keys ------------------------------------------------------------------------- */

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

/* The class's cooldown entry for the action (the longest, as the policy engine picks). */
static const struct rsre_cooldown_def *cooldown_def(const struct rsre_incident_def *inc,
                                                    const struct rsre_action_def *a) {
    const struct rsre_cooldown_def *best = NULL;
    for (size_t i = 0; i < inc->ncooldowns; i++) {
        const struct rsre_cooldown_def *c = &inc->cooldowns[i];
        if (((c->class_mask & (1u << a->cls)) || c->actions[a->index]) &&
            (!best || c->seconds > best->seconds)) {
            best = c;
        }
    }
    return best;
}

/*
 * The cooldown key of an action: "<set>/<scope>=<value>". The set is what shares one cooldown:
 * the class's cooldown entry (its action classes and actions, e.g. "contain" or
 * "reboot_worker+replace_worker"), else the action itself. The scope is the entry's (incident
 * id, node, or target); without an entry, the target. Node and target keys do not name the
 * class, so two classes on one node share "reboot/replace once per 60m per node".
 */
void rsre__inc_cooldown_key(const struct rsre_incident_engine *e, const struct rsre__inc *inc,
                            const struct rsre_action_def *a, const char *target, char *buf,
                            size_t cap) {
    const struct rsre_cooldown_def *c = cooldown_def(e->defs[inc->b], a);
    char set[RSRE_STORE_ID_MAX * 2] = "";
    size_t len = 0;
    enum rsre_cooldown_scope scope = RSRE_CD_TARGET;
    if (c) {
        scope = c->scope;
        for (unsigned k = 0; k < RSRE_CLASS_COUNT; k++) {
            if (c->class_mask & (1u << k)) {
                len += (size_t)snprintf(set + len, sizeof(set) - len, "%s%s", len ? "+" : "",
                                        rsre_class_name((enum rsre_action_class)k));
            }
        }
        for (size_t k = 0; k < e->t->nactions && len < sizeof(set); k++) {
            if (c->actions[k]) {
                len += (size_t)snprintf(set + len, sizeof(set) - len, "%s%s", len ? "+" : "",
                                        e->t->actions[k].id);
            }
        }
    }
    if (!len) {
        snprintf(set, sizeof(set), "%s", a->id);
    }
    const char *what, *value;
    switch (scope) {
    case RSRE_CD_INCIDENT:
        what = "incident", value = inc->id;
        break;
    case RSRE_CD_NODE:
        what = "node", value = rsre__inc_holder_label(inc->holder);
        break;
    default:
        what = "target", value = target;
        break;
    }
    int n = snprintf(buf, cap, "%s/%s=%s", set, what, value);
    if (n < 0 || (size_t)n > RSRE_STORE_ID_MAX || (size_t)n >= cap) {
        /* Long names: keep the key within the store's id limit. */
        snprintf(buf, cap, "%.60s/%s=h:%016llx", set, what,
                 (unsigned long long)fnv(value) ^ fnv(set));
    }
}

long long rsre__inc_last_run(rsre_store_txn *txn, const char *key) {
    rsre_store_cooldown *c = NULL;
    if (rsre_store_cooldown_get(txn, key, &c) != 0) {
        return 0;
    }
    long long v = c->set_at_ms > 0 ? c->set_at_ms / 1000 : 0;
    rsre_store_cooldown_free(c);
    return v;
}

/* --- reasons -------------------------------------------------------------------------------- */

static void fmt_time(int64_t ms, char *buf, size_t cap) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The decision's reasons as sentences, with the cooldown rendered as an absolute retry time
 * (so an unchanged decision renders the same at every evaluation), then `extra`. */
int rsre__inc_reasons(const struct rsre_decision *d, const char *extra, struct rsre__strlist *out) {
    char buf[512];
    for (unsigned i = 0; i < d->nreasons; i++) {
        const struct rsre_reason *r = &d->reasons[i];
        if (r->code == RSRE_WHY_HARD_COOLDOWN) {
            char at[32];
            fmt_time(d->retry_at * 1000, at, sizeof(at));
            snprintf(buf, sizeof(buf), "cooldown active: %s ran recently, retry at %s",
                     r->arg ? r->arg : "", at);
        } else {
            rsre_policy_reason_text(r, buf, sizeof(buf));
        }
        char line[540];
        snprintf(line, sizeof(line), "%s: %s", rsre_layer_name((enum rsre_policy_layer)r->layer),
                 buf);
        if (rsre__inc_strlist_add(out, line, 0) < 0) {
            return -ENOMEM;
        }
    }
    if (extra && rsre__inc_strlist_add(out, extra, 0) < 0) {
        return -ENOMEM;
    }
    return 0;
}

void rsre__inc_join(const struct rsre__strlist *l, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->n && len + 1 < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? "; " : "", l->v[i]);
        len += w > 0 ? (size_t)w : 0;
    }
}

static int has_reason(const struct rsre_decision *d, enum rsre_reason_code code) {
    for (unsigned i = 0; i < d->nreasons; i++) {
        if (d->reasons[i].code == code) {
            return 1;
        }
    }
    return 0;
}

/* --- action records ----------------------------------------------------------------------- */

struct act {
    const char *id, *approval_id, *target, *result;
    const struct rsre_action_def *a;
    int decision, state;
    const struct rsre__strlist *reasons;
};

static int put_action(struct rsre_incident_engine *e, rsre_store_txn *txn,
                      const struct rsre__inc *inc, const struct act *x, int64_t now_ms) {
    rsre_store_action r = ROBOT_SRE__STORE__ACTION_RECORD__INIT;
    r.id = (char *)x->id;
    r.incident_id = (char *)inc->id;
    r.action_id = (char *)x->a->id;
    r.action_class = (char *)rsre_class_name(x->a->cls);
    r.target = (char *)(x->target ? x->target : "");
    r.decision = x->decision;
    r.n_reasons = x->reasons ? x->reasons->n : 0;
    r.reasons = x->reasons ? x->reasons->v : NULL;
    r.state = x->state;
    r.requested_by = RSRE__ACTOR;
    r.dry_run = e->cfg.dry_run != 0;
    r.result = (char *)(x->result ? x->result : "");
    r.approval_id = (char *)(x->approval_id ? x->approval_id : "");
    r.created_at_ms = now_ms;
    return rsre_store_action_put(txn, &r, 0);
}

/*
 * The standing record of an action the engine did not run (deferred, no target, human-only,
 * denied), id "<incident>.<action>" (".<hash>" appended for operator-given targets):
 * rewritten and audited only when the decision changes.
 */
static int record_plan(struct rsre_incident_engine *e, rsre_store_txn *txn,
                       const struct rsre__inc *inc, const struct rsre_action_def *a,
                       const char *target, int per_target, int decision,
                       const struct rsre__strlist *reasons, int64_t now_ms) {
    char id[RSRE_STORE_ID_MAX + 1];
    if (per_target) {
        rsre__inc_fmt(id, sizeof(id), "%s.%s.%08llx", inc->id, a->id,
                      (unsigned long long)(fnv(target) & 0xffffffffu));
    } else {
        rsre__inc_fmt(id, sizeof(id), "%s.%s", inc->id, a->id);
    }
    rsre_store_action *old = NULL;
    int rc = rsre_store_action_get(txn, id, &old);
    if (rc == 0) {
        int same = (int)old->decision == decision && old->n_reasons == reasons->n &&
                   strcmp(old->target ? old->target : "", target) == 0;
        for (size_t i = 0; same && i < reasons->n; i++) {
            same = strcmp(old->reasons[i], reasons->v[i]) == 0;
        }
        rsre_store_action_free(old);
        if (same) {
            return 0;
        }
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    struct act x = {id, NULL, target, NULL, a, decision, AST(SKIPPED), reasons};
    if ((rc = put_action(e, txn, inc, &x, now_ms))) {
        return rc;
    }
    char why[1024], detail[256];
    rsre__inc_join(reasons, why, sizeof(why));
    snprintf(detail, sizeof(detail), "incident=%s action=%s target=%s decision=%s", inc->id, a->id,
             target, robot_sre__store__decision__descriptor.values[decision].name);
    return rsre__inc_audit(txn, "action.decide", id, why, detail, now_ms);
}

/* --- the prompt ---------------------------------------------------------------------------- */

struct prompt {
    char why[1024], impact[512], rollback[512], text[3072], target_words[300];
};

/* The next approval-bound action after plan position `pos` that has a target. */
static const struct rsre_action_def *next_fallback(const struct rsre_incident_engine *e,
                                                   const struct rsre__inc *inc, size_t pos,
                                                   char *target, size_t cap) {
    const struct rsre_incident_def *def = e->defs[inc->b];
    for (size_t i = pos + 1; i < def->nplan; i++) {
        const struct rsre_action_def *a = &e->t->actions[def->plan[i]];
        if (def->binding[a->index] == RSRE_BIND_APPROVAL && form_target(e, inc, a, target, cap)) {
            return a;
        }
    }
    return NULL;
}

/* Renders the spec's prompt: action, target, why now, expected impact, rollback or next
 * fallback, expiry. */
static void render_prompt(const struct rsre_incident_engine *e, const struct rsre__inc *inc,
                          const struct rsre__rec *rec, size_t pos, const struct rsre_action_def *a,
                          const char *target, int64_t now_ms, struct prompt *p) {
    const struct rsre__binding *bd = &rsre__inc_bindings[inc->b];
    const char *verb, *impact, *rollback;
    action_words(a, &verb, &impact, &rollback);
    target_words(inc, a, target, p->target_words, sizeof(p->target_words));
    /* How long: since the class's condition started when the node says, else since opening. */
    int64_t since = inc->opened_ms;
    if (bd->held_since) {
        int64_t s = *bd->held_since(&inc->holder->s);
        since = s > 0 && s < since ? s : since;
    }
    char held[32];
    rsre__inc_fmt_duration(now_ms - since, held, sizeof(held));
    const char *body = strstr(rec->summary, ": ");
    body = body ? body + 2 : rec->summary;
    snprintf(p->why, sizeof(p->why), "%s on %s for %s (%.700s); severity %s, confidence %s",
             bd->problem,
             inc->holder->name[0] || inc->holder->scope[0] ? rsre__inc_holder_label(inc->holder)
                                                           : "the cluster",
             held, body, rsre_severity_name(inc->severity), rsre_confidence_name(inc->confidence));
    snprintf(p->impact, sizeof(p->impact), "%s", impact);
    char nt[RSRE__NODE_NAME_MAX + 1], ntw[300];
    const struct rsre_action_def *next = next_fallback(e, inc, pos, nt, sizeof(nt));
    if (next) {
        const char *nverb, *ni, *nr;
        action_words(next, &nverb, &ni, &nr);
        target_words(inc, next, nt, ntw, sizeof(ntw));
        snprintf(p->rollback, sizeof(p->rollback),
                 "%s; next fallback: %s %s if this does not "
                 "clear the %s",
                 rollback, nverb, ntw, bd->problem);
    } else {
        snprintf(p->rollback, sizeof(p->rollback), "%s; next fallback: escalate to an operator",
                 rollback);
    }
    char ttl[32];
    rsre__inc_fmt_duration(e->cfg.approval_ttl_ms, ttl, sizeof(ttl));
    snprintf(p->text, sizeof(p->text),
             "Robot SRE requests approval: %s %s. Reason: %s. Expected impact: %s. "
             "Rollback/fallback: %s. Approval expires in %s.",
             verb, p->target_words, p->why, p->impact, p->rollback, ttl);
}

/* --- plan ----------------------------------------------------------------------------------- */

static int run_auto(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__inc *inc,
                    const struct rsre_action_def *a, const char *target,
                    const struct rsre_decision *d, const char *key, int64_t until_ms,
                    int64_t now_ms) {
    char id[RSRE_STORE_ID_MAX + 1], why[2048], detail[512], setby[RSRE_STORE_ID_MAX + 16];
    struct rsre__strlist reasons = {0};
    int rc = rsre__inc_new_id(txn, "action", "act", id, sizeof(id));
    if (rc == 0) {
        rc = rsre__inc_reasons(d, NULL, &reasons);
    }
    struct act x = {id, NULL, target, NULL, a, DEC(AUTO), AST(PLANNED), &reasons};
    if (rc == 0) {
        rc = put_action(e, txn, inc, &x, now_ms);
    }
    snprintf(setby, sizeof(setby), "%s:%s", RSRE__ACTOR, id);
    if (rc == 0) {
        rc = rsre_store_cooldown_set(txn, key, until_ms, setby, now_ms);
    }
    if (rc == 0) {
        rsre__inc_join(&reasons, why, sizeof(why));
        snprintf(detail, sizeof(detail), "incident=%s action=%s target=%s cooldown=%s until=%lld",
                 inc->id, a->id, target, key, (long long)until_ms);
        rc = rsre__inc_audit(txn, "action.auto", id, why, detail, now_ms);
    }
    if (rc == 0) {
        struct rsre_planned_action pa = {id,
                                         inc->id,
                                         NULL,
                                         a,
                                         inc->holder->name,
                                         target,
                                         e->cfg.dry_run,
                                         now_ms + e->cfg.action_deadline_ms};
        rc = rsre__inc_queue_execute(e, &pa);
        RSRE_LOG(RSRE_LOG_INFO, RSRE__INC_MOD,
                 "action queued id=%s incident=%s action=%s target=%s", id, inc->id, a->id, target);
    }
    rsre__inc_strlist_clear(&reasons);
    return rc;
}

static int request_approval(struct rsre_incident_engine *e, rsre_store_txn *txn,
                            struct rsre__inc *inc, struct rsre__rec *rec, size_t pos,
                            const struct rsre_action_def *a, const char *target,
                            const struct rsre_decision *d, int64_t now_ms) {
    char act_id[RSRE_STORE_ID_MAX + 1], apr_id[RSRE_STORE_ID_MAX + 1];
    struct rsre__strlist reasons = {0};
    struct prompt *p = calloc(1, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    int rc = rsre__inc_new_id(txn, "action", "act", act_id, sizeof(act_id));
    if (rc == 0) {
        rc = rsre__inc_new_id(txn, "approval", "apr", apr_id, sizeof(apr_id));
    }
    if (rc == 0) {
        rc = rsre__inc_reasons(d, NULL, &reasons);
    }
    struct act x = {
        act_id, apr_id, target, NULL, a, DEC(APPROVAL_REQUIRED), AST(AWAITING_APPROVAL), &reasons};
    if (rc == 0) {
        rc = put_action(e, txn, inc, &x, now_ms);
    }
    if (rc == 0) {
        render_prompt(e, inc, rec, pos, a, target, now_ms, p);
        rsre_store_approval ap = ROBOT_SRE__STORE__APPROVAL__INIT;
        ap.id = apr_id;
        ap.action_id = act_id;
        ap.incident_id = inc->id;
        ap.requester = RSRE__ACTOR;
        ap.prompt = p->text;
        ap.action = (char *)a->id;
        ap.target = (char *)target;
        ap.why_now = p->why;
        ap.expected_impact = p->impact;
        ap.rollback = p->rollback;
        ap.quorum = d->quorum ? d->quorum : 1;
        ap.requested_at_ms = now_ms;
        ap.expires_at_ms = now_ms + e->cfg.approval_ttl_ms;
        ap.state = APS(PENDING);
        rc = rsre_store_approval_put(txn, &ap, RSRE_STORE_NOOVERWRITE);
    }
    if (rc == 0) {
        char detail[256];
        rsre__inc_fmt(detail, sizeof(detail), "incident=%s action=%s target=%s quorum=%u record=%s",
                      inc->id, a->id, target, d->quorum ? d->quorum : 1, act_id);
        rc = rsre__inc_audit(txn, "approval.request", apr_id, p->text, detail, now_ms);
        RSRE_LOG(RSRE_LOG_INFO, RSRE__INC_MOD,
                 "approval requested id=%s incident=%s action=%s target=%s quorum=%u", apr_id,
                 inc->id, a->id, target, d->quorum ? d->quorum : 1);
    }
    rsre__inc_strlist_clear(&reasons);
    free(p);
    return rc;
}

/* One (action, target) of a plan. */
struct item {
    const struct rsre_action_def *a;
    size_t pos; /* position in the class plan */
    int has_target, from_rule;
    char target[RSRE_RULE_MAX_TARGET_LEN + 1];
    char key[RSRE_STORE_ID_MAX + 1];
    long long last_run;
};

#define MAX_ITEMS (RSRE_MAX_ACTIONS + 64)

static int concrete(const char *t) {
    return t[0] && !strpbrk(t, "*?[");
}

/*
 * The plan's items in class order: each action with the target formed from the incident, or,
 * when none can be formed, one item per concrete target the applicable operator rules
 * allowlisted for it (e.g. suspend_cronjob on "image-factory-demo/nightly-report"), or one
 * item without a target (an operator has to choose it).
 */
static size_t plan_items(const struct rsre_incident_engine *e, const struct rsre__inc *inc,
                         struct item *items) {
    const struct rsre_incident_def *def = e->defs[inc->b];
    const struct rsre__app *app = &e->app[inc->b];
    size_t n = 0;
    for (size_t pos = 0; pos < def->nplan && n < MAX_ITEMS; pos++) {
        const struct rsre_action_def *a = &e->t->actions[def->plan[pos]];
        struct item *it = &items[n];
        memset(it, 0, sizeof(*it));
        it->a = a;
        it->pos = pos;
        if ((it->has_target = form_target(e, inc, a, it->target, sizeof(it->target)))) {
            n++;
            continue;
        }
        size_t first = n;
        for (size_t r = 0; r < app->n; r++) {
            for (size_t k = 0; k < app->rules[r]->nprofile; k++) {
                const struct rsre_action_profile *p = &app->rules[r]->profile[k];
                for (size_t t = 0; p->action == a && t < p->targets.n && n < MAX_ITEMS; t++) {
                    const char *tg = p->targets.items[t];
                    int dup = !concrete(tg);
                    for (size_t j = first; j < n && !dup; j++) {
                        dup = strcmp(items[j].target, tg) == 0;
                    }
                    if (!dup) {
                        items[n] =
                            (struct item){.a = a, .pos = pos, .has_target = 1, .from_rule = 1};
                        snprintf(items[n].target, sizeof(items[n].target), "%s", tg);
                        n++;
                    }
                }
            }
        }
        if (n == first) {
            n++; /* the item without a target */
        }
    }
    return n;
}

int rsre__inc_plan(struct rsre_incident_engine *e, rsre_store_txn *txn, struct rsre__inc *inc,
                   struct rsre__rec *rec, int64_t now_ms) {
    const struct rsre_incident_def *def = e->defs[inc->b];
    int rc = rsre__inc_rec_load(txn, inc, rec);
    if (rc) {
        return rc;
    }
    struct rsre__apr_list apr;
    if ((rc = rsre__inc_approvals_of(txn, inc->id, &apr))) {
        free(apr.v);
        return rc;
    }
    int64_t window_ms = e->t->cooldown.duplicate_suppression * 1000;
    struct rsre__strlist recommended = {0};
    struct item *items = calloc(MAX_ITEMS, sizeof(*items));
    if (!items) {
        rc = -ENOMEM;
        goto out;
    }
    size_t n = plan_items(e, inc, items);
    /* Last runs are read before anything runs, so a cooldown set shared by several actions
     * (the class's "containment set") lets the whole set run together once. */
    for (size_t i = 0; i < n; i++) {
        rsre__inc_cooldown_key(e, inc, items[i].a, items[i].target, items[i].key,
                               sizeof(items[i].key));
        items[i].last_run =
            items[i].a->cls >= RSRE_CLASS_CONTAIN ? rsre__inc_last_run(txn, items[i].key) : 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct item *it = &items[i];
        const struct rsre_action_def *a = it->a;
        const char *target = it->target;
        struct rsre_policy_request req = {e->t,
                                          def,
                                          a,
                                          e->cfg.env,
                                          inc->confidence,
                                          it->has_target ? target : NULL,
                                          e->rules,
                                          now_ms / 1000,
                                          it->last_run};
        struct rsre_decision d;
        rsre_policy_decide(&req, &d);
        struct rsre__strlist reasons = {0};
        const char *why = NULL;
        int decision = 0, recommend = 0;
        switch (d.verdict) {
        case RSRE_VERDICT_AUTO:
            if (!it->has_target) {
                why = "engine: no target can be formed from the incident; an operator chooses one";
                decision = DEC(RECOMMEND_ONLY);
                recommend = 1;
            } else if (a->cls <= RSRE_CLASS_NOTIFY) {
                /* Observe and notify: once per incident per duplicate window (15m). */
                char key[RSRE_STORE_ID_MAX + 1];
                rsre__inc_fmt(key, sizeof(key), "%s/incident=%s", a->id, inc->id);
                rc = rsre_store_cooldown_active(txn, key, now_ms, NULL);
                if (rc == RSRE_ENOTFOUND) {
                    rc = run_auto(e, txn, inc, a, target, &d, key, now_ms + window_ms, now_ms);
                }
                continue;
            } else if (inc->state == RSRE_STATE_ESCALATED) {
                why = "engine: the incident is escalated; automation stops and an operator decides";
                decision = DEC(RECOMMEND_ONLY);
                recommend = 1;
            } else {
                rc = run_auto(e, txn, inc, a, target, &d, it->key,
                              now_ms + d.cooldown_seconds * 1000, now_ms);
                continue;
            }
            break;
        case RSRE_VERDICT_APPROVAL:
            recommend = 1;
            decision = DEC(APPROVAL_REQUIRED);
            if (!it->has_target) {
                why = "engine: no target can be formed from the incident; an operator chooses one";
                decision = DEC(RECOMMEND_ONLY);
            } else if (inc->confidence == RSRE_CONF_LOW) {
                why = "engine: approval requests need at least medium confidence";
            } else if (has_reason(&d, RSRE_WHY_HARD_CONFIDENCE)) {
                why = "engine: runs automatically once confidence is high";
            } else if (a->cls == RSRE_CLASS_DISRUPTIVE && inc->severity < RSRE_SEV_CRITICAL) {
                why = "engine: disruptive actions are requested only when the incident is critical";
            } else {
                if (!rsre__inc_approval_blocks(&apr, a->id, target, now_ms, window_ms)) {
                    rc = request_approval(e, txn, inc, rec, it->pos, a, target, &d, now_ms);
                    if (rc == 0) {
                        rsre_store_approval added = ROBOT_SRE__STORE__APPROVAL__INIT;
                        added.incident_id = inc->id;
                        added.action = (char *)a->id;
                        added.target = (char *)target;
                        added.state = APS(PENDING);
                        rc = rsre__inc_apr_add(&added, &apr);
                    }
                }
                if (rc == 0) {
                    rc = rsre__inc_strlist_add(&recommended, a->id, 1) < 0 ? -ENOMEM : 0;
                }
                continue;
            }
            break;
        case RSRE_VERDICT_HUMAN_ONLY:
            decision = DEC(HUMAN_ONLY);
            recommend = 1;
            break;
        default:
            decision = DEC(REFUSED);
            break;
        }
        if ((rc = rsre__inc_reasons(&d, why, &reasons)) == 0) {
            rc = record_plan(e, txn, inc, a, it->has_target ? target : "", it->from_rule, decision,
                             &reasons, now_ms);
        }
        rsre__inc_strlist_clear(&reasons);
        if (rc == 0 && recommend && rsre__inc_strlist_add(&recommended, a->id, 1) < 0) {
            rc = -ENOMEM;
        }
    }
    if (rc == 0) {
        int same = recommended.n == rec->recommended.n;
        for (size_t i = 0; same && i < recommended.n; i++) {
            same = strcmp(recommended.v[i], rec->recommended.v[i]) == 0;
        }
        if (!same) {
            rsre__inc_strlist_clear(&rec->recommended);
            rec->recommended = recommended;
            memset(&recommended, 0, sizeof(recommended));
            rec->dirty = 1;
        }
        int st = rsre__inc_approvals_overall(&apr);
        if (st != rec->approval_state) {
            rec->approval_state = st;
            rec->dirty = 1;
        }
    }
out:
    rsre__inc_strlist_clear(&recommended);
    free(items);
    free(apr.v);
    return rc;
}
