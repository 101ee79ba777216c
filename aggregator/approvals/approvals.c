/*
 * Approvals: requests, votes, expiry and the execution-time re-check. Every path that can make
 * an approval say "execute" goes through count_votes() and the checks in vote_impl() or
 * rsre_approvals_recheck(); docs/approvals.md lists the rules in the same order.
 */
#include "approvals/approvals.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "approvals/approvals_internal.h"
#include "common/error.h"
#include "common/log.h"

#define APS(x) ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_##x
#define AST(x) ROBOT_SRE__STORE__ACTION_STATE__ACTION_STATE_##x
#define VK(x) ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_##x

#define ROBOT RSRE_OPERATOR_ROBOT

/* --- names ----------------------------------------------------------------------------------- */

static const char *const channel_names[RSRE_CHANNEL_COUNT] = {"api", "telegram", "whatsapp",
                                                              "inapp"};

/* The chat identity a channel carries, or -1 for channels authenticated otherwise. */
static const int channel_chat[RSRE_CHANNEL_COUNT] = {-1, RSRE_CHAT_TELEGRAM, RSRE_CHAT_WHATSAPP,
                                                     -1};

static const struct {
    const char *name;
    int err;
} refusals[RSRE_REFUSE_COUNT] = {
    [RSRE_REFUSE_NONE] = {"none", 0},
    [RSRE_REFUSE_INVALID] = {"invalid", RSRE_EINVALID},
    [RSRE_REFUSE_UNKNOWN_APPROVAL] = {"unknown_approval", RSRE_ENOTFOUND},
    [RSRE_REFUSE_UNKNOWN_OPERATOR] = {"unknown_operator", RSRE_ENOTFOUND},
    [RSRE_REFUSE_DISABLED] = {"operator_disabled", RSRE_EBOUNDARY},
    [RSRE_REFUSE_NOT_APPROVER] = {"not_approver", RSRE_EBOUNDARY},
    [RSRE_REFUSE_CHANNEL] = {"channel_identity", RSRE_EBOUNDARY},
    [RSRE_REFUSE_SELF_APPROVAL] = {"self_approval", RSRE_EBOUNDARY},
    [RSRE_REFUSE_EXPIRED] = {"expired", RSRE_ETRANSITION},
    [RSRE_REFUSE_DECIDED] = {"already_decided", RSRE_ETRANSITION},
    [RSRE_REFUSE_CANCELLED] = {"cancelled", RSRE_ETRANSITION},
    [RSRE_REFUSE_DUPLICATE] = {"duplicate_vote", RSRE_EEXIST},
};

static const char *const recheck_names[RSRE_RECHECK_COUNT] = {
    [RSRE_RECHECK_OK] = "execute",
    [RSRE_RECHECK_PENDING] = "pending",
    [RSRE_RECHECK_CLOSED] = "closed",
    [RSRE_RECHECK_ALREADY_RAN] = "already_ran",
    [RSRE_RECHECK_INCIDENT_CLOSED] = "incident_resolved",
    [RSRE_RECHECK_EXPIRED] = "expired",
    [RSRE_RECHECK_UNKNOWN_ACTION] = "unknown_action",
    [RSRE_RECHECK_HUMAN_ONLY] = "human_only",
    [RSRE_RECHECK_DENIED] = "policy_denied",
    [RSRE_RECHECK_COOLDOWN] = "cooldown",
    [RSRE_RECHECK_CONFIDENCE] = "confidence",
    [RSRE_RECHECK_QUORUM] = "quorum",
};

static const char *const state_names[] = {
    [APS(UNSPECIFIED)] = "unspecified", [APS(NOT_REQUIRED)] = "not_required",
    [APS(PENDING)] = "pending",         [APS(APPROVED)] = "approved",
    [APS(DENIED)] = "denied",           [APS(EXPIRED)] = "expired",
    [APS(CANCELLED)] = "cancelled",
};

const char *rsre_channel_name(enum rsre_channel c) {
    return (unsigned)c < RSRE_CHANNEL_COUNT ? channel_names[c] : "?";
}

int rsre_channel_parse(const char *s, enum rsre_channel *out) {
    for (unsigned i = 0; s && i < RSRE_CHANNEL_COUNT; i++) {
        if (strcmp(channel_names[i], s) == 0) {
            *out = (enum rsre_channel)i;
            return 0;
        }
    }
    return RSRE_ENOTFOUND;
}

const char *rsre_vote_name(enum rsre_vote v) {
    return v == RSRE_VOTE_APPROVE ? "approve" : v == RSRE_VOTE_DENY ? "deny" : "?";
}

const char *rsre_vote_refusal_name(enum rsre_vote_refusal r) {
    return (unsigned)r < RSRE_REFUSE_COUNT ? refusals[r].name : "?";
}

const char *rsre_recheck_why_name(enum rsre_recheck_why w) {
    return (unsigned)w < RSRE_RECHECK_COUNT ? recheck_names[w] : "?";
}

const char *rsre_approval_state_name(int state) {
    return state >= 0 && (size_t)state < sizeof(state_names) / sizeof(state_names[0])
               ? state_names[state]
               : "?";
}

/* --- handle ---------------------------------------------------------------------------------- */

int rsre_approvals_create(const struct rsre_approvals_config *cfg, struct rsre_approvals **out) {
    if (!out) {
        return -EINVAL;
    }
    int64_t expiry =
        cfg && cfg->default_expiry_ms ? cfg->default_expiry_ms : RSRE_APPROVAL_EXPIRY_DEFAULT_MS;
    if (expiry < RSRE_APPROVAL_EXPIRY_MIN_MS || expiry > RSRE_APPROVAL_EXPIRY_MAX_MS) {
        return -EINVAL;
    }
    struct rsre_approvals *ap = calloc(1, sizeof(*ap));
    if (!ap) {
        return -ENOMEM;
    }
    ap->ops = cfg ? cfg->operators : NULL;
    ap->t = cfg && cfg->taxonomy ? cfg->taxonomy : rsre_taxonomy_builtin();
    ap->default_expiry_ms = expiry;
    *out = ap;
    return 0;
}

void rsre_approvals_destroy(struct rsre_approvals *ap) {
    free(ap);
}

void rsre_approvals_set_operators(struct rsre_approvals *ap, const struct rsre_operators *ops) {
    if (ap) {
        ap->ops = ops;
    }
}

/* --- shared helpers -------------------------------------------------------------------------- */

static const char *str(const char *s) {
    return s ? s : "";
}

/* Appends an audit record, truncating the reason to the store's limit. */
static int audit(rsre_store_txn *txn, const char *actor, const char *verb, const char *object,
                 const char *reason, const char *detail, int64_t now_ms, uint64_t *seq) {
    char r[1024];
    rsre__apr_copy(r, sizeof(r), reason);
    return rsre_store_audit_append(txn, actor, verb, object, r, detail, now_ms, seq);
}

unsigned rsre_approvals_valid_votes(const struct rsre_approvals *ap, const rsre_store_approval *rec,
                                    int *denied) {
    unsigned n = 0;
    int deny = 0;
    for (size_t i = 0; rec && i < rec->n_votes; i++) {
        const rsre_store_vote *v = rec->votes[i];
        if (!v || !v->operator_ || !v->operator_[0]) {
            continue;
        }
        if (v->vote == VK(DENY)) {
            deny = 1;
            continue;
        }
        if (v->vote != VK(APPROVE) || (rec->requester && !strcmp(v->operator_, rec->requester)) ||
            v->at_ms >= rec->expires_at_ms ||
            !rsre_operator_may_approve(rsre_operators_find(ap ? ap->ops : NULL, v->operator_))) {
            continue;
        }
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++) {
            const rsre_store_vote *w = rec->votes[k];
            seen =
                w && w->vote == VK(APPROVE) && w->operator_ && !strcmp(w->operator_, v->operator_);
        }
        n += !seen;
    }
    if (denied) {
        *denied = deny;
    }
    return n;
}

static unsigned quorum_of(const rsre_store_approval *rec) {
    return rec->quorum ? rec->quorum : 1;
}

/* The ActionRecord states from which an approval's closing moves it. */
static int action_open(int state) {
    return state == AST(PLANNED) || state == AST(AWAITING_APPROVAL) || state == AST(APPROVED);
}

/* Moves the approval's ActionRecord (if any, and still open) to `state` with `result`. */
static int close_action(rsre_store_txn *txn, const rsre_store_approval *rec, int state,
                        const char *result, int64_t now_ms) {
    if (!rec->action_id || !rec->action_id[0]) {
        return 0;
    }
    rsre_store_action *a = NULL;
    int rc = rsre_store_action_get(txn, rec->action_id, &a);
    if (rc == RSRE_ENOTFOUND) {
        return 0;
    }
    if (rc) {
        return rc;
    }
    if (action_open((int)a->state)) {
        char *old = a->result;
        char res[1024];
        rsre__apr_copy(res, sizeof(res), result);
        a->state = state;
        a->result = res;
        a->finished_at_ms = now_ms;
        rc = rsre_store_action_put(txn, a, 0);
        a->result = old;
    }
    rsre_store_action_free(a);
    return rc;
}

static void detail_of(const rsre_store_approval *rec, char *buf, size_t cap) {
    snprintf(buf, cap, "incident=%s action=%s target=%s quorum=%u", str(rec->incident_id),
             str(rec->action), str(rec->target), quorum_of(rec));
}

/* Closes `rec` (in memory and in the store) into `state`, with its ActionRecord and an audit
 * record by the robot. */
static int close_approval(rsre_store_txn *txn, rsre_store_approval *rec, int state,
                          int action_state, const char *verb, const char *reason,
                          const char *detail, int64_t now_ms, uint64_t *seq) {
    rec->state = state;
    rec->decided_at_ms = now_ms;
    int rc = rsre_store_approval_put(txn, rec, 0);
    if (rc == 0 && action_state) {
        rc = close_action(txn, rec, action_state, reason, now_ms);
    }
    if (rc == 0) {
        char own[768];
        if (!detail) {
            detail_of(rec, own, sizeof(own));
            detail = own;
        }
        rc = audit(txn, ROBOT, verb, rec->id, reason, detail, now_ms, seq);
    }
    if (rc == 0) {
        RSRE_LOG(RSRE_LOG_INFO, RSRE__APR_MOD, "approval %s id=%s incident=%s reason=\"%s\"",
                 rsre_approval_state_name(state), rec->id, str(rec->incident_id), reason);
    }
    return rc;
}

static int expire_one(rsre_store_txn *txn, rsre_store_approval *rec, int64_t now_ms) {
    char reason[512];
    snprintf(reason, sizeof(reason), "approval %s for %s %s expired without a decision; escalate",
             rec->id, str(rec->action), str(rec->target));
    return close_approval(txn, rec, APS(EXPIRED), AST(EXPIRED), "approval.expire", reason, NULL,
                          now_ms, NULL);
}

/* --- requests -------------------------------------------------------------------------------- */

struct find_pending {
    const char *incident, *action, *target, *requester;
    int64_t now_ms;
    char id[RSRE_STORE_ID_MAX + 1];
};

static int find_pending_cb(const rsre_store_approval *rec, void *ud) {
    struct find_pending *f = ud;
    if (rec->state == APS(PENDING) && rec->expires_at_ms > f->now_ms &&
        !strcmp(str(rec->incident_id), f->incident) && !strcmp(str(rec->action), f->action) &&
        !strcmp(str(rec->target), f->target) && !strcmp(str(rec->requester), f->requester)) {
        snprintf(f->id, sizeof(f->id), "%s", rec->id);
        return 1;
    }
    return 0;
}

/* Validates the request; fills the trimmed parts. */
static int check_request(const struct rsre_approvals *ap, const struct rsre_approval_request *req,
                         char parts[3][RSRE_APPROVAL_TEXT_MAX + 1], int64_t *expiry) {
    const struct rsre_action_def *a = req->action;
    if (!a || !req->decision) {
        return RSRE_EINVALID;
    }
    if (a->human_only || req->decision->verdict == RSRE_VERDICT_HUMAN_ONLY) {
        RSRE_LOG(RSRE_LOG_WARN, RSRE__APR_MOD,
                 "approval request refused action=%s: human-only actions are never executable",
                 a->id);
        return RSRE_EBOUNDARY;
    }
    if (req->decision->verdict != RSRE_VERDICT_APPROVAL) {
        RSRE_LOG(RSRE_LOG_WARN, RSRE__APR_MOD,
                 "approval request refused action=%s: the policy decided %s, not approval", a->id,
                 rsre_verdict_name(req->decision->verdict));
        return RSRE_EBOUNDARY;
    }
    if (req->incident_id && strlen(req->incident_id) > RSRE_STORE_ID_MAX) {
        return RSRE_ELIMIT;
    }
    if (!rsre__apr_token(req->incident_id, RSRE_STORE_ID_MAX) ||
        (req->action_record_id && req->action_record_id[0] &&
         !rsre__apr_token(req->action_record_id, RSRE_STORE_ID_MAX))) {
        return RSRE_EINVALID;
    }
    if (req->target && strlen(req->target) > RSRE_RULE_MAX_TARGET_LEN) {
        return RSRE_ELIMIT;
    }
    if (!rsre__apr_token(req->target, RSRE_RULE_MAX_TARGET_LEN)) {
        return RSRE_EINVALID;
    }
    if (!req->requester || (strcmp(req->requester, ROBOT) != 0 &&
                            !rsre_operator_has_role(rsre_operators_find(ap->ops, req->requester),
                                                    RSRE_ROLE_OPERATOR))) {
        return RSRE_EINVALID;
    }
    const char *in[3] = {req->why_now, req->expected_impact, req->rollback};
    for (size_t i = 0; i < 3; i++) {
        int rc =
            rsre__apr_text(in[i], RSRE_APPROVAL_TEXT_MAX, parts[i], RSRE_APPROVAL_TEXT_MAX + 1);
        if (rc) {
            return rc;
        }
    }
    *expiry = req->expiry_ms ? req->expiry_ms : ap->default_expiry_ms;
    if (*expiry < RSRE_APPROVAL_EXPIRY_MIN_MS || *expiry > RSRE_APPROVAL_EXPIRY_MAX_MS) {
        return RSRE_EINVALID;
    }
    return 0;
}

int rsre_approvals_request(struct rsre_approvals *ap, rsre_store_txn *txn,
                           const struct rsre_approval_request *req, rsre_store_approval **out,
                           int *created) {
    if (out) {
        *out = NULL;
    }
    if (created) {
        *created = 0;
    }
    if (!ap || !txn || !req) {
        return -EINVAL;
    }
    char parts[3][RSRE_APPROVAL_TEXT_MAX + 1];
    int64_t expiry = 0;
    int rc = check_request(ap, req, parts, &expiry);
    if (rc) {
        return rc;
    }
    const struct rsre_action_def *a = req->action;
    unsigned quorum = req->decision->quorum < 1 ? 1 : req->decision->quorum;
    quorum = quorum > RSRE_QUORUM_MAX ? RSRE_QUORUM_MAX : quorum;

    /* Idempotent: the same pending request returns the existing approval. */
    struct find_pending f = {req->incident_id, a->id, req->target, req->requester, req->now_ms, ""};
    if ((rc = rsre_store_approval_foreach(txn, find_pending_cb, &f))) {
        return rc;
    }
    rsre_store_approval *rec = NULL;
    if (f.id[0]) {
        if ((rc = rsre_store_approval_get(txn, f.id, &rec))) {
            return rc;
        }
        if (quorum > quorum_of(rec)) {
            char reason[128], detail[768];
            snprintf(reason, sizeof(reason), "quorum raised from %u to %u by a new policy decision",
                     quorum_of(rec), quorum);
            rec->quorum = quorum;
            detail_of(rec, detail, sizeof(detail));
            if ((rc = rsre_store_approval_put(txn, rec, 0)) == 0) {
                rc = audit(txn, req->requester, "approval.quorum", rec->id, reason, detail,
                           req->now_ms, NULL);
            }
        }
        goto done;
    }

    char id[RSRE_STORE_ID_MAX + 1];
    uint64_t seq;
    if ((rc = rsre_store_seq_next(txn, "approval", &seq))) {
        return rc;
    }
    snprintf(id, sizeof(id), "apr-%" PRIu64, seq);
    char *prompt = malloc(RSRE_APPROVAL_PROMPT_MAX);
    if (!prompt) {
        return -ENOMEM;
    }
    rsre_approvals_render_prompt(a, req->target, parts[0], parts[1], parts[2], expiry, prompt,
                                 RSRE_APPROVAL_PROMPT_MAX);
    rsre_store_approval ar = ROBOT_SRE__STORE__APPROVAL__INIT;
    ar.id = id;
    ar.action_id = (char *)str(req->action_record_id);
    ar.incident_id = (char *)req->incident_id;
    ar.requester = (char *)req->requester;
    ar.prompt = prompt;
    ar.action = (char *)a->id;
    ar.target = (char *)req->target;
    ar.why_now = parts[0];
    ar.expected_impact = parts[1];
    ar.rollback = parts[2];
    ar.quorum = quorum;
    ar.requested_at_ms = req->now_ms;
    ar.expires_at_ms = req->now_ms + expiry;
    ar.state = APS(PENDING);
    rc = rsre_store_approval_put(txn, &ar, RSRE_STORE_NOOVERWRITE);
    if (rc == 0) {
        char detail[1024];
        snprintf(detail, sizeof(detail),
                 "incident=%s action=%s target=%s quorum=%u expires_at_ms=%lld record=%s",
                 req->incident_id, a->id, req->target, quorum, (long long)ar.expires_at_ms,
                 str(req->action_record_id));
        rc = audit(txn, req->requester, "approval.request", id, prompt, detail, req->now_ms, NULL);
    }
    free(prompt);
    if (rc) {
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, RSRE__APR_MOD,
             "approval requested id=%s incident=%s action=%s target=%s quorum=%u requester=%s", id,
             req->incident_id, a->id, req->target, quorum, req->requester);
    if (created) {
        *created = 1;
    }
    if (!out) {
        return 0;
    }
    if ((rc = rsre_store_approval_get(txn, id, &rec))) {
        return rc;
    }
done:
    if (rc == 0 && out) {
        *out = rec;
        rec = NULL;
    }
    rsre_store_approval_free(rec);
    return rc;
}

/* --- votes ----------------------------------------------------------------------------------- */

struct vote_ctx {
    struct rsre_approvals *ap;
    rsre_store_txn *txn;
    const char *approval_id;
    const char *actor;     /* the claimed identity, for audit records (cleaned) */
    const char *chat_user; /* the chat identity it came from, or NULL */
    enum rsre_vote vote;
    enum rsre_channel channel;
    int64_t now_ms;
    struct rsre_vote_outcome *out;
};

/* Records a refusal in the outcome and the audit log. */
static int refuse(struct vote_ctx *c, const rsre_store_approval *rec, enum rsre_vote_refusal why,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int refuse(struct vote_ctx *c, const rsre_store_approval *rec, enum rsre_vote_refusal why,
                  const char *fmt, ...) {
    struct rsre_vote_outcome *o = c->out;
    va_list va;
    va_start(va, fmt);
    vsnprintf(o->reason, sizeof(o->reason), fmt, va);
    va_end(va);
    o->refusal = why;
    o->err = refusals[why].err;
    o->execute = 0;
    char object[160], user[160], detail[1024];
    rsre__apr_clean(c->approval_id, object, sizeof(object));
    rsre__apr_clean(c->chat_user, user, sizeof(user));
    int n = snprintf(detail, sizeof(detail), "refusal=%s vote=%s channel=%s",
                     rsre_vote_refusal_name(why), rsre_vote_name(c->vote),
                     rsre_channel_name(c->channel));
    if (c->chat_user && n > 0 && (size_t)n < sizeof(detail)) {
        n += snprintf(detail + n, sizeof(detail) - (size_t)n, " chat_user=%s", user);
    }
    if (rec && n > 0 && (size_t)n < sizeof(detail)) {
        snprintf(detail + n, sizeof(detail) - (size_t)n,
                 " incident=%s action=%s target=%s state=%s", str(rec->incident_id),
                 str(rec->action), str(rec->target), rsre_approval_state_name((int)rec->state));
    }
    RSRE_LOG(RSRE_LOG_WARN, RSRE__APR_MOD, "vote refused approval=%s actor=%s channel=%s why=%s",
             object, c->actor, rsre_channel_name(c->channel), rsre_vote_refusal_name(why));
    return audit(c->txn, c->actor, "approval.vote.refused", object, o->reason, detail, c->now_ms,
                 &o->audit_seq);
}

/* The operator's earlier vote on `rec`, or NULL. */
static const rsre_store_vote *prior_vote(const rsre_store_approval *rec, const char *id) {
    for (size_t i = 0; i < rec->n_votes; i++) {
        if (rec->votes[i] && rec->votes[i]->operator_ && !strcmp(rec->votes[i]->operator_, id)) {
            return rec->votes[i];
        }
    }
    return NULL;
}

/* Stores a vote that passed every check, audits it, and decides the approval if the vote
 * denies or completes the quorum. *recp is replaced by the updated record. */
static int record_vote(struct vote_ctx *c, const struct rsre_operator *op,
                       rsre_store_approval **recp, const char *comment_buf) {
    struct rsre_vote_outcome *o = c->out;
    rsre_store_approval *rec = *recp;
    rsre_store_vote v = ROBOT_SRE__STORE__VOTE__INIT;
    int rc;

    v.operator_ = (char *)op->id;
    v.vote = c->vote == RSRE_VOTE_DENY ? VK(DENY) : VK(APPROVE);
    v.channel = (char *)rsre_channel_name(c->channel);
    v.at_ms = c->now_ms;
    v.comment = (char *)comment_buf;
    rc = rsre_store_approval_vote_add(c->txn, rec->id, &v);
    if (rc == RSRE_EEXIST) {
        return refuse(c, rec, RSRE_REFUSE_DUPLICATE, "%s already voted on %s", op->id, rec->id);
    }
    if (rc) {
        return rc;
    }
    rsre_store_approval_free(rec);
    *recp = rec = NULL;
    if ((rc = rsre_store_approval_get(c->txn, c->approval_id, recp))) {
        return rc;
    }
    rec = *recp;
    int denied = 0;
    o->approvals = rsre_approvals_valid_votes(c->ap, rec, &denied);
    o->refusal = RSRE_REFUSE_NONE;
    o->err = 0;
    if (c->vote == RSRE_VOTE_DENY) {
        snprintf(o->reason, sizeof(o->reason), "%s denied %s; a deny decides at once", op->id,
                 rec->id);
    } else if (o->approvals >= o->quorum) {
        snprintf(o->reason, sizeof(o->reason),
                 "%s approved %s: %u of %u approvals, quorum met; re-check before execution",
                 op->id, rec->id, o->approvals, o->quorum);
    } else {
        snprintf(o->reason, sizeof(o->reason), "%s approved %s: %u of %u approvals", op->id,
                 rec->id, o->approvals, o->quorum);
    }
    char detail[1024], user[160];
    snprintf(detail, sizeof(detail),
             "vote=%s channel=%s%s%s incident=%s action=%s target=%s approvals=%u quorum=%u%s%s",
             rsre_vote_name(c->vote), rsre_channel_name(c->channel),
             c->chat_user ? " chat_user=" : "",
             c->chat_user ? rsre__apr_clean(c->chat_user, user, sizeof(user)) : "",
             str(rec->incident_id), str(rec->action), str(rec->target), o->approvals, o->quorum,
             comment_buf[0] ? " comment=" : "", comment_buf);
    if ((rc = audit(c->txn, op->id, "approval.vote", rec->id, o->reason, detail, c->now_ms,
                    &o->audit_seq))) {
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, RSRE__APR_MOD,
             "vote approval=%s operator=%s vote=%s channel=%s approvals=%u quorum=%u", rec->id,
             op->id, rsre_vote_name(c->vote), rsre_channel_name(c->channel), o->approvals,
             o->quorum);
    if (denied) {
        char reason[256];
        snprintf(reason, sizeof(reason), "denied by %s via %s", op->id,
                 rsre_channel_name(c->channel));
        rc = close_approval(c->txn, rec, APS(DENIED), 0, "approval.denied", reason, NULL, c->now_ms,
                            NULL);
    } else if (o->approvals >= o->quorum) {
        char reason[256];
        snprintf(reason, sizeof(reason),
                 "quorum met: %u of %u approvals by approvers other than the requester",
                 o->approvals, o->quorum);
        rc = close_approval(c->txn, rec, APS(APPROVED), 0, "approval.approved", reason, NULL,
                            c->now_ms, NULL);
        o->execute = rc == 0;
    }
    o->state = (int)rec->state;
    return rc;
}

static int vote_impl(struct vote_ctx *c, const struct rsre_operator *op, const char *comment) {
    struct rsre_vote_outcome *o = c->out;
    struct rsre_approvals *ap = c->ap;
    rsre_store_approval *rec = NULL;
    const rsre_store_vote *prior;
    int rc = 0;

    /* Well-formed input first: nothing hostile reaches the store's keys. */
    if ((unsigned)c->channel >= RSRE_CHANNEL_COUNT) {
        return refuse(c, NULL, RSRE_REFUSE_INVALID, "unknown channel"); /* audited "channel=?" */
    }
    if (c->vote != RSRE_VOTE_APPROVE && c->vote != RSRE_VOTE_DENY) {
        return refuse(c, NULL, RSRE_REFUSE_INVALID, "a vote is approve or deny");
    }
    if (!rsre__apr_token(c->approval_id, RSRE_STORE_ID_MAX)) {
        return refuse(c, NULL, RSRE_REFUSE_INVALID, "malformed approval id");
    }
    char comment_buf[RSRE_APPROVAL_COMMENT_MAX + 1] = "";
    if (comment && comment[0] &&
        rsre__apr_text(comment, RSRE_APPROVAL_COMMENT_MAX, comment_buf, sizeof(comment_buf))) {
        return refuse(c, NULL, RSRE_REFUSE_INVALID,
                      "comment must be at most %d bytes of printable UTF-8",
                      RSRE_APPROVAL_COMMENT_MAX);
    }
    rc = rsre_store_approval_get(c->txn, c->approval_id, &rec);
    if (rc == RSRE_ENOTFOUND) {
        return refuse(c, NULL, RSRE_REFUSE_UNKNOWN_APPROVAL, "no approval %s", c->approval_id);
    }
    if (rc) {
        return rc;
    }
    snprintf(o->incident_id, sizeof(o->incident_id), "%s", str(rec->incident_id));
    o->state = (int)rec->state;
    o->quorum = quorum_of(rec);
    o->approvals = rsre_approvals_valid_votes(ap, rec, NULL);

    /* Who is voting. */
    if (!op) {
        rc = refuse(c, rec, RSRE_REFUSE_UNKNOWN_OPERATOR, "%s is not a configured operator",
                    c->actor);
    } else if (!op->enabled) {
        rc = refuse(c, rec, RSRE_REFUSE_DISABLED, "operator %s is disabled", op->id);
    } else if (!rsre_operator_may_approve(op)) {
        rc = refuse(c, rec, RSRE_REFUSE_NOT_APPROVER,
                    "operator %s lacks the approver role needed to vote", op->id);
    } else if (channel_chat[c->channel] >= 0 &&
               !rsre_operator_chat_id(op, (enum rsre_chat)channel_chat[c->channel])) {
        rc = refuse(c, rec, RSRE_REFUSE_CHANNEL, "operator %s has no %s identity configured",
                    op->id, rsre_channel_name(c->channel));
    } else if (rec->requester && strcmp(op->id, rec->requester) == 0) {
        rc = refuse(c, rec, RSRE_REFUSE_SELF_APPROVAL,
                    "%s requested this approval and may not vote on it (no self-approval)", op->id);
    } else if (rec->state == APS(CANCELLED)) {
        rc = refuse(c, rec, RSRE_REFUSE_CANCELLED, "approval %s was cancelled", rec->id);
    } else if (rec->state == APS(APPROVED) || rec->state == APS(DENIED)) {
        rc = refuse(c, rec, RSRE_REFUSE_DECIDED, "approval %s is already %s", rec->id,
                    rsre_approval_state_name((int)rec->state));
    } else if (rec->state == APS(EXPIRED)) {
        rc = refuse(c, rec, RSRE_REFUSE_EXPIRED, "approval %s expired", rec->id);
    } else if (rec->state != APS(PENDING)) {
        rc = refuse(c, rec, RSRE_REFUSE_DECIDED, "approval %s is not pending (%s)", rec->id,
                    rsre_approval_state_name((int)rec->state));
    } else if (c->now_ms >= rec->expires_at_ms) {
        /* Found expired: close it now, so the caller escalates exactly once. */
        if ((rc = expire_one(c->txn, rec, c->now_ms)) == 0) {
            o->escalate = 1;
            o->state = (int)rec->state;
            rc = refuse(c, rec, RSRE_REFUSE_EXPIRED, "approval %s expired %lld s ago", rec->id,
                        (long long)((c->now_ms - rec->expires_at_ms) / 1000));
        }
    } else if ((prior = prior_vote(rec, op->id)) != NULL) {
        rc = refuse(c, rec, RSRE_REFUSE_DUPLICATE, "%s already voted %s on %s", op->id,
                    prior->vote == VK(DENY) ? "deny" : "approve", rec->id);
    } else {
        rc = record_vote(c, op, &rec, comment_buf);
    }
    rsre_store_approval_free(rec);
    return rc;
}

int rsre_approvals_vote(struct rsre_approvals *ap, rsre_store_txn *txn, const char *approval_id,
                        const char *operator_id, enum rsre_vote vote, enum rsre_channel channel,
                        const char *comment, int64_t now_ms, struct rsre_vote_outcome *out) {
    if (!ap || !txn || !out) {
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    char actor[160];
    rsre__apr_clean(operator_id, actor, sizeof(actor));
    struct vote_ctx c = {ap, txn, approval_id, actor, NULL, vote, channel, now_ms, out};
    const struct rsre_operator *op = rsre__apr_token(operator_id, RSRE_OPERATOR_ID_MAX)
                                         ? rsre_operators_find(ap->ops, operator_id)
                                         : NULL;
    return vote_impl(&c, op, comment);
}

int rsre_approvals_vote_chat(struct rsre_approvals *ap, rsre_store_txn *txn,
                             const char *approval_id, enum rsre_chat chat, const char *user,
                             enum rsre_vote vote, const char *comment, int64_t now_ms,
                             struct rsre_vote_outcome *out) {
    if (!ap || !txn || !out) {
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    enum rsre_channel channel = chat == RSRE_CHAT_TELEGRAM   ? RSRE_CHANNEL_TELEGRAM
                                : chat == RSRE_CHAT_WHATSAPP ? RSRE_CHANNEL_WHATSAPP
                                                             : RSRE_CHANNEL_COUNT;
    const struct rsre_operator *op = rsre_operators_find_chat(ap->ops, chat, user);
    char actor[200], clean[160];
    if (op) {
        snprintf(actor, sizeof(actor), "%s", op->id);
    } else {
        snprintf(actor, sizeof(actor), "%s:%s", rsre_chat_name(chat),
                 rsre__apr_clean(user, clean, sizeof(clean)));
    }
    struct vote_ctx c = {ap, txn, approval_id, actor, user ? user : "", vote, channel, now_ms, out};
    return vote_impl(&c, op, comment);
}

/* --- expiry ---------------------------------------------------------------------------------- */

void rsre_approval_list_free(struct rsre_approval_list *l) {
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        rsre_store_approval_free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

struct id_list {
    char (*v)[RSRE_STORE_ID_MAX + 1];
    size_t n, cap;
    int64_t now_ms;
};

static int due_cb(const rsre_store_approval *rec, void *ud) {
    struct id_list *l = ud;
    if (rec->state != APS(PENDING) || rec->expires_at_ms > l->now_ms) {
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *v = realloc(l->v, cap * sizeof(*l->v));
        if (!v) {
            return -ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->n++], sizeof(l->v[0]), "%s", rec->id);
    return 0;
}

int rsre_approvals_expire(struct rsre_approvals *ap, rsre_store_txn *txn, int64_t now_ms,
                          struct rsre_approval_list *escalated) {
    if (escalated) {
        escalated->v = NULL;
        escalated->n = 0;
    }
    if (!ap || !txn) {
        return -EINVAL;
    }
    struct id_list due = {NULL, 0, 0, now_ms};
    int rc = rsre_store_approval_foreach(txn, due_cb, &due);
    if (rc == 0 && escalated && due.n) {
        escalated->v = calloc(due.n, sizeof(*escalated->v));
        rc = escalated->v ? 0 : -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < due.n; i++) {
        rsre_store_approval *rec = NULL;
        if ((rc = rsre_store_approval_get(txn, due.v[i], &rec))) {
            break;
        }
        rc = expire_one(txn, rec, now_ms);
        if (rc == 0 && escalated) {
            escalated->v[escalated->n++] = rec;
        } else {
            rsre_store_approval_free(rec);
        }
    }
    free(due.v);
    if (rc && escalated) {
        rsre_approval_list_free(escalated);
    }
    return rc;
}

/* --- re-check -------------------------------------------------------------------------------- */

/* Joins the decision's reasons as "layer: sentence; ..." into buf. */
static void reasons_text(const struct rsre_decision *d, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < d->nreasons && o + 1 < cap; i++) {
        char one[320];
        rsre_policy_reason_text(&d->reasons[i], one, sizeof(one));
        int n = snprintf(buf + o, cap - o, "%s%s: %s", i ? "; " : "",
                         rsre_layer_name((enum rsre_policy_layer)d->reasons[i].layer), one);
        if (n < 0) {
            break;
        }
        o += (size_t)n;
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

int rsre_approvals_recheck(struct rsre_approvals *ap, rsre_store_txn *txn, const char *approval_id,
                           const struct rsre_recheck_input *in, struct rsre_recheck_outcome *out) {
    if (!ap || !txn || !in || !out || !in->incident || !approval_id) {
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (!rsre__apr_token(approval_id, RSRE_STORE_ID_MAX)) {
        return RSRE_ENOTFOUND;
    }
    rsre_store_approval *rec = NULL;
    int rc = rsre_store_approval_get(txn, approval_id, &rec);
    if (rc) {
        return rc;
    }
    int64_t now = in->now_ms;
    int denied = 0;
    out->approvals = rsre_approvals_valid_votes(ap, rec, &denied);
    out->quorum = quorum_of(rec);
    out->state = (int)rec->state;
    enum rsre_recheck_why why = RSRE_RECHECK_OK;
    char *reason = out->reason;
    size_t cap = sizeof(out->reason);
    int incident_open = rsre_lifecycle_is_open(in->incident_state);

    if (rec->state == APS(PENDING)) {
        if (!incident_open) {
            why = RSRE_RECHECK_INCIDENT_CLOSED;
            snprintf(reason, cap, "the incident is %s; the pending approval is no longer needed",
                     rsre_state_name(in->incident_state));
        } else {
            why = RSRE_RECHECK_PENDING;
            snprintf(reason, cap, "not approved yet: %u of %u approvals", out->approvals,
                     out->quorum);
        }
    } else if (rec->state != APS(APPROVED)) {
        why = RSRE_RECHECK_CLOSED;
        snprintf(reason, cap, "the approval is %s; nothing to execute",
                 rsre_approval_state_name((int)rec->state));
    } else {
        rsre_store_action *act = NULL;
        if (rec->action_id && rec->action_id[0]) {
            rc = rsre_store_action_get(txn, rec->action_id, &act);
            if (rc && rc != RSRE_ENOTFOUND) {
                goto out;
            }
            rc = 0;
        }
        if (act && !action_open((int)act->state)) {
            why = RSRE_RECHECK_ALREADY_RAN;
            snprintf(reason, cap, "action record %s is already past approval; not run again",
                     act->id);
        }
        rsre_store_action_free(act);
    }

    const struct rsre_action_def *a = NULL;
    if (why == RSRE_RECHECK_OK) {
        a = rsre_taxonomy_action(ap->t, str(rec->action));
        unsigned need = out->quorum;
        if (!incident_open) {
            why = RSRE_RECHECK_INCIDENT_CLOSED;
            snprintf(reason, cap, "the incident is %s; the action is no longer needed",
                     rsre_state_name(in->incident_state));
        } else if (now >= rec->expires_at_ms) {
            why = RSRE_RECHECK_EXPIRED;
            snprintf(reason, cap, "the approval expired %lld s before execution",
                     (long long)((now - rec->expires_at_ms) / 1000));
        } else if (!a) {
            why = RSRE_RECHECK_UNKNOWN_ACTION;
            snprintf(reason, cap, "unknown action %s", str(rec->action));
        } else if (a->human_only) {
            why = RSRE_RECHECK_HUMAN_ONLY;
            snprintf(reason, cap, "%s is human-only and never executable by the robot", a->id);
        } else {
            struct rsre_policy_request req = {ap->t,     in->incident,   a,
                                              in->env,   in->confidence, rec->target,
                                              in->rules, now / 1000,     in->last_run};
            rsre_policy_decide(&req, &out->decision);
            const struct rsre_decision *d = &out->decision;
            char why_text[900];
            reasons_text(d, why_text, sizeof(why_text));
            need = d->quorum > need ? d->quorum : need;
            if (d->verdict == RSRE_VERDICT_HUMAN_ONLY) {
                why = RSRE_RECHECK_HUMAN_ONLY;
            } else if (d->verdict == RSRE_VERDICT_DENIED) {
                why = has_reason(d, RSRE_WHY_HARD_COOLDOWN) ? RSRE_RECHECK_COOLDOWN
                                                            : RSRE_RECHECK_DENIED;
            } else if (d->verdict != RSRE_VERDICT_APPROVAL && d->verdict != RSRE_VERDICT_AUTO) {
                why = RSRE_RECHECK_DENIED;
            }
            if (why != RSRE_RECHECK_OK) {
                snprintf(reason, cap, "policy now says %s: %s", rsre_verdict_name(d->verdict),
                         why_text);
            } else if (in->confidence < RSRE_CONF_MEDIUM) {
                why = RSRE_RECHECK_CONFIDENCE;
                snprintf(reason, cap,
                         "confidence fell to %s; approved actions run on at least medium",
                         rsre_confidence_name(in->confidence));
            } else if (denied) {
                why = RSRE_RECHECK_QUORUM;
                snprintf(reason, cap, "a deny vote is recorded");
            } else if (out->approvals < need) {
                why = RSRE_RECHECK_QUORUM;
                snprintf(reason, cap,
                         "%u valid approve vote(s) by approvers other than the requester; %u "
                         "needed now",
                         out->approvals, need);
            } else if (in->cooldown_key && in->cooldown_key[0]) {
                int64_t until = 0;
                int crc = rsre_store_cooldown_active(txn, in->cooldown_key, now, &until);
                if (crc == 0) {
                    why = RSRE_RECHECK_COOLDOWN;
                    snprintf(reason, cap, "cooldown %.200s runs for another %lld s",
                             in->cooldown_key, (long long)((until - now + 999) / 1000));
                } else if (crc != RSRE_ENOTFOUND) {
                    rc = crc;
                    goto out;
                }
            }
        }
        out->quorum = need;
    }

    char detail[1024];
    detail_of(rec, detail, sizeof(detail));
    size_t dl = strlen(detail);
    snprintf(detail + dl, sizeof(detail) - dl,
             " approvals=%u needed=%u confidence=%s env=%s "
             "incident_state=%s outcome=%s",
             out->approvals, out->quorum, rsre_confidence_name(in->confidence),
             rsre_env_name(in->env), rsre_state_name(in->incident_state),
             rsre_recheck_why_name(why));
    out->why = why;
    switch (why) {
    case RSRE_RECHECK_OK:
        out->execute = 1;
        snprintf(reason, cap,
                 "re-checked at execution: policy %s, %u of %u approvals, "
                 "incident %s, no cooldown; execute",
                 rsre_verdict_name(out->decision.verdict), out->approvals, out->quorum,
                 rsre_state_name(in->incident_state));
        rc = audit(txn, ROBOT, "approval.recheck", rec->id, reason, detail, now, &out->audit_seq);
        break;
    case RSRE_RECHECK_PENDING:
    case RSRE_RECHECK_CLOSED:
    case RSRE_RECHECK_ALREADY_RAN:
        rc = audit(txn, ROBOT, "approval.recheck", rec->id, reason, detail, now, &out->audit_seq);
        break;
    default:
        rc = close_approval(txn, rec, APS(CANCELLED), AST(CANCELLED), "approval.cancel", reason,
                            detail, now, &out->audit_seq);
        break;
    }
    out->state = (int)rec->state;
out:
    rsre_store_approval_free(rec);
    return rc;
}
