#ifndef RSRE_APPROVALS_H
#define RSRE_APPROVALS_H

/*
 * Approvals: the only way an approval-required action gets to run. A request renders the
 * spec's prompt (action, target, why now, expected impact, rollback or next fallback, expiry)
 * and stores a pending Approval; operators vote on it through the admin API, robotctl, the
 * in-app inbox, Telegram or WhatsApp; quorum makes it approved, a deny or the expiry closes it;
 * right before the action runs, rsre_approvals_recheck re-runs the policy and cancels the
 * approval if anything changed. docs/approvals.md describes the rules, states and audit records.
 *
 * What this module guarantees (design.md safety invariant 1): an approval says "execute" only
 * when it holds at least `quorum` approve votes of distinct, configured, enabled operators with
 * the approver role (rsre_operators), none of them the requester, every vote cast before the
 * expiry, and no deny vote; and rsre_approvals_recheck says "execute" only when that still holds
 * at execution time, the approval has not expired, the incident is open, the action is not
 * human-only, the policy still allows it with at most that many votes, and no cooldown is
 * running. Nothing a caller passes can waive one of these conditions.
 *
 * Transactions: every function works inside the caller's write transaction and appends its
 * audit records there (rsre_store_audit_append), so a state change and its audit record commit
 * or vanish together. Vote refusals are results, not errors: the function returns 0 with the
 * refusal in the outcome and its audit record in `txn` — commit it, so the refusal is kept.
 * A nonzero return (negative errno, RSRE_E* store error, RSRE_EINVALID / RSRE_EBOUNDARY for a
 * bad request) means the caller aborts the transaction.
 *
 * Ownership: the module borrows the operator registry, taxonomy and rule sets it is given; they
 * must outlive the calls that use them. Records returned through out-params are caller-owned
 * copies (rsre_store_approval_free). One thread (the aggregator's loop) uses a handle.
 */

#include <stddef.h>
#include <stdint.h>

#include "approvals/operators.h"
#include "engine/confidence.h"
#include "engine/lifecycle.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"
#include "store/store.h"

#define RSRE_APPROVAL_EXPIRY_DEFAULT_MS (10 * 60 * 1000LL) /* the spec's 10m */
#define RSRE_APPROVAL_EXPIRY_MIN_MS (60 * 1000LL)
#define RSRE_APPROVAL_EXPIRY_MAX_MS (24 * 3600 * 1000LL)
#define RSRE_APPROVAL_TEXT_MAX 1024   /* bytes of a target, why-now, impact or rollback text */
#define RSRE_APPROVAL_COMMENT_MAX 512 /* bytes of a vote comment */
#define RSRE_APPROVAL_PROMPT_MAX 4608 /* bytes of a rendered prompt, NUL included */

/* Vote kinds; the values are the store's VoteKind. */
enum rsre_vote {
    RSRE_VOTE_APPROVE = 1,
    RSRE_VOTE_DENY = 2,
};

/* Where a vote came from; recorded with the vote and in its audit record. */
enum rsre_channel {
    RSRE_CHANNEL_API,      /* admin API or robotctl, bearer-token authenticated */
    RSRE_CHANNEL_TELEGRAM, /* Telegram callback of a mapped user */
    RSRE_CHANNEL_WHATSAPP, /* WhatsApp reply of a mapped number */
    RSRE_CHANNEL_INAPP,    /* the admin UI's inbox */
    RSRE_CHANNEL_COUNT
};

struct rsre_approvals_config {
    const struct rsre_operators *operators; /* borrowed; NULL = nobody may vote */
    const struct rsre_taxonomy *taxonomy;   /* borrowed; NULL = the built-in taxonomy */
    int64_t default_expiry_ms;              /* 0 = RSRE_APPROVAL_EXPIRY_DEFAULT_MS */
};

struct rsre_approvals;

/* Creates a handle. `cfg` is copied (its pointers are borrowed); -EINVAL for an expiry out of
 * RSRE_APPROVAL_EXPIRY_MIN_MS..MAX_MS. */
int rsre_approvals_create(const struct rsre_approvals_config *cfg, struct rsre_approvals **out);
void rsre_approvals_destroy(struct rsre_approvals *ap); /* NULL is a no-op */
/* Swaps in a reloaded operator registry (borrowed). Votes already counted are re-validated
 * against it: an operator who lost the approver role no longer counts toward quorum. */
void rsre_approvals_set_operators(struct rsre_approvals *ap, const struct rsre_operators *ops);

/* --- requests -------------------------------------------------------------------------------- */

struct rsre_approval_request {
    const char *incident_id;              /* required */
    const char *action_record_id;         /* the ActionRecord to run, or NULL */
    const struct rsre_action_def *action; /* required */
    const char *target;                   /* required */
    const struct rsre_decision *decision; /* the policy's decision: verdict APPROVAL; quorum */
    const char *why_now;                  /* required: "disk pressure persists ... for 17m" */
    const char *expected_impact;          /* required */
    const char *rollback;                 /* required: rollback or next fallback */
    const char *requester; /* RSRE_OPERATOR_ROBOT, or an operator with the operator role */
    int64_t now_ms;
    int64_t expiry_ms; /* time to live; 0 = the handle's default (10m) */
};

/*
 * Requests approval: stores a PENDING Approval (id "apr-<n>") with the rendered prompt
 *   "Robot SRE requests approval: <action> <target>. Reason: <why now>. Expected impact:
 *    <impact>. Rollback/fallback: <rollback>. Approval expires in <ttl>."
 * and audits it ("approval.request", actor = requester). Idempotent: while an unexpired PENDING
 * approval exists for the same incident, action, target and requester, that one is returned
 * (*created = 0) instead of a new one; its quorum is raised (audited) if the new decision needs
 * more votes. On success *out (may be NULL) gets a caller-owned copy and *created (may be NULL)
 * says whether it is new.
 *
 * Refuses, storing nothing: RSRE_EBOUNDARY when the action is human-only or the decision is not
 * APPROVAL (auto actions need no approval; human-only and denied ones can never get one);
 * RSRE_EINVALID for a missing part, a part with control characters or invalid UTF-8, an expiry
 * out of range, or a requester that is neither the robot nor an enabled operator with the
 * operator role; RSRE_ELIMIT for a part over RSRE_APPROVAL_TEXT_MAX bytes or an id over
 * RSRE_STORE_ID_MAX; store errors as they come.
 */
int rsre_approvals_request(struct rsre_approvals *ap, rsre_store_txn *txn,
                           const struct rsre_approval_request *req, rsre_store_approval **out,
                           int *created);

/*
 * Renders the prompt into `buf` (always NUL-terminated, truncated to fit). The parts lose
 * trailing spaces and periods so that the sentences end with exactly one period. Returns the
 * length it needed (like snprintf). For channels that re-render stored approvals.
 */
size_t rsre_approvals_render_prompt(const struct rsre_action_def *action, const char *target,
                                    const char *why_now, const char *expected_impact,
                                    const char *rollback, int64_t expiry_ms, char *buf, size_t cap);

/* The action as a verb phrase for prompts: "reboot worker", "cordon node"; else its label. */
const char *rsre_approvals_action_words(const struct rsre_action_def *action);

/* --- votes ----------------------------------------------------------------------------------- */

/* Why a vote was refused. */
enum rsre_vote_refusal {
    RSRE_REFUSE_NONE = 0,         /* the vote counted */
    RSRE_REFUSE_INVALID,          /* malformed input: vote kind, channel, id or comment */
    RSRE_REFUSE_UNKNOWN_APPROVAL, /* no such approval */
    RSRE_REFUSE_UNKNOWN_OPERATOR, /* not in the registry (or an unmapped chat user) */
    RSRE_REFUSE_DISABLED,         /* the operator is disabled */
    RSRE_REFUSE_NOT_APPROVER,     /* the operator lacks the approver role */
    RSRE_REFUSE_CHANNEL,          /* a chat channel the operator is not mapped on */
    RSRE_REFUSE_SELF_APPROVAL,    /* the operator requested this approval */
    RSRE_REFUSE_EXPIRED,          /* the approval expired */
    RSRE_REFUSE_DECIDED,          /* already approved or denied */
    RSRE_REFUSE_CANCELLED,        /* cancelled (incident resolved, policy changed, ...) */
    RSRE_REFUSE_DUPLICATE,        /* this operator already voted on it */
    RSRE_REFUSE_COUNT
};

struct rsre_vote_outcome {
    enum rsre_vote_refusal refusal; /* RSRE_REFUSE_NONE when the vote was recorded */
    int err;            /* 0, or the error code matching the refusal (rsre_strerror): RSRE_EINVALID,
                           RSRE_ENOTFOUND (approval, operator), RSRE_EBOUNDARY (role, channel,
                           self-approval), RSRE_ETRANSITION (expired, decided, cancelled),
                           RSRE_EEXIST (duplicate) */
    char reason[320];   /* one sentence: why it was refused, or what the vote did */
    int state;          /* the approval's ApprovalState after the call; 0 if there is none */
    unsigned approvals; /* approve votes that count toward quorum after the call */
    unsigned quorum;
    int execute;  /* this vote completed the quorum: APPROVED. Re-check, then run the action. */
    int escalate; /* this call found the approval expired and closed it: escalate the incident */
    char incident_id[RSRE_STORE_ID_MAX + 1]; /* the approval's incident ("" if unknown) */
    uint64_t audit_seq;                      /* the audit record of the vote or of its refusal */
};

/*
 * Casts `operator_id`'s vote on `approval_id`, at `now_ms`, through `channel`. The vote counts
 * only if every check passes, in this order: well-formed input; the approval exists; the
 * operator is configured, enabled and an approver; for Telegram and WhatsApp, the operator has
 * an identity on that channel; the operator is not the requester; the approval is PENDING and
 * now_ms < expires_at_ms (a PENDING approval found expired becomes EXPIRED, its ActionRecord
 * expired, audited "approval.expire", and outcome.escalate set); the operator has not voted.
 * Otherwise outcome.refusal/err/reason say why, and "approval.vote.refused" is audited with the
 * claimed actor, the reason and the channel.
 *
 * A counted vote is audited ("approval.vote", actor = operator, detail with vote and channel).
 * A deny decides at once (DENIED, "approval.denied"). An approve that brings the valid approve
 * votes to the quorum decides APPROVED ("approval.approved") and sets outcome.execute. The
 * ActionRecord of a decided approval is left to the caller (the incident engine's
 * rsre_incident_engine_approval_decided), which must still call rsre_approvals_recheck before
 * running anything.
 *
 * Returns 0 (vote counted or refused: commit), -EINVAL for NULL ap/txn/out, or a store error
 * (abort). `comment` may be NULL.
 */
int rsre_approvals_vote(struct rsre_approvals *ap, rsre_store_txn *txn, const char *approval_id,
                        const char *operator_id, enum rsre_vote vote, enum rsre_channel channel,
                        const char *comment, int64_t now_ms, struct rsre_vote_outcome *out);

/*
 * A vote from a chat user: `user` (a Telegram user id or WhatsApp number) is mapped to its
 * operator through the registry, then the vote proceeds as rsre_approvals_vote on that
 * channel. An unmapped user is refused (RSRE_REFUSE_UNKNOWN_OPERATOR) and audited with actor
 * "<chat>:<user>". The caller has already verified the message (signed button payload or
 * webhook signature).
 */
int rsre_approvals_vote_chat(struct rsre_approvals *ap, rsre_store_txn *txn,
                             const char *approval_id, enum rsre_chat chat, const char *user,
                             enum rsre_vote vote, const char *comment, int64_t now_ms,
                             struct rsre_vote_outcome *out);

/*
 * The approve votes of `rec` that count right now: distinct operators who are configured,
 * enabled and approvers, not the requester, voting before the expiry. *denied (may be NULL)
 * gets whether any deny vote is present.
 */
unsigned rsre_approvals_valid_votes(const struct rsre_approvals *ap, const rsre_store_approval *rec,
                                    int *denied);

/* --- re-check at execution time ------------------------------------------------------------- */

struct rsre_recheck_input {
    const struct rsre_incident_def *incident; /* the incident's class (required) */
    enum rsre_state incident_state;           /* the incident's lifecycle state now */
    enum rsre_env env;
    enum rsre_confidence confidence;  /* the incident's confidence now */
    const struct rsre_ruleset *rules; /* operator rules now; NULL = none */
    long long last_run;               /* seconds: when the action last ran on its cooldown key */
    const char *cooldown_key;         /* optional: also refuse while this stored cooldown runs */
    int64_t now_ms;
};

/* What the re-check found. */
enum rsre_recheck_why {
    RSRE_RECHECK_OK = 0,          /* execute */
    RSRE_RECHECK_PENDING,         /* not approved yet: nothing changed */
    RSRE_RECHECK_CLOSED,          /* already denied, expired or cancelled: nothing changed */
    RSRE_RECHECK_ALREADY_RAN,     /* its ActionRecord already ran or closed: nothing changed */
    RSRE_RECHECK_INCIDENT_CLOSED, /* the incident resolved meanwhile: cancelled */
    RSRE_RECHECK_EXPIRED,         /* approved, but execution comes after the expiry: cancelled */
    RSRE_RECHECK_UNKNOWN_ACTION,  /* the action is not in the taxonomy: cancelled */
    RSRE_RECHECK_HUMAN_ONLY,      /* the policy now says human-only: cancelled */
    RSRE_RECHECK_DENIED,          /* the policy now denies it: cancelled */
    RSRE_RECHECK_COOLDOWN,        /* a cooldown began meanwhile: cancelled */
    RSRE_RECHECK_CONFIDENCE,      /* confidence fell below medium: cancelled */
    RSRE_RECHECK_QUORUM,          /* fewer valid votes than the approval or the policy needs,
                                     or a deny vote: cancelled */
    RSRE_RECHECK_COUNT
};

struct rsre_recheck_outcome {
    int execute; /* 1: run the action now, in this transaction's aftermath */
    enum rsre_recheck_why why;
    int state;                     /* the approval's ApprovalState after the call */
    char reason[1024];             /* one sentence, with the policy's reasons when it decided */
    struct rsre_decision decision; /* the policy decision made now (zero if none was made) */
    unsigned approvals, quorum;    /* valid approve votes; max(approval, policy) quorum */
    uint64_t audit_seq;
};

/*
 * Right before an approved action runs: re-runs rsre_policy_decide for (incident class, the
 * approval's action and target, env, confidence, rules, last_run, now) and re-counts the
 * votes. execute = 1 only for an APPROVED approval whose ActionRecord (if any) has not run or
 * closed, with now_ms < expires_at_ms, the incident open, confidence at least medium, the
 * verdict still APPROVAL or AUTO, no cooldown (the policy's, and `cooldown_key`'s record), no
 * deny vote, and valid approve votes >= max(the approval's quorum, the policy's quorum, 1).
 * Any other APPROVED approval is CANCELLED with the reason (and its ActionRecord cancelled); a
 * PENDING one whose incident resolved is cancelled too. Every call is audited:
 * "approval.recheck" (execute or nothing changed) or "approval.cancel". Returns 0 with *out
 * filled (commit), RSRE_ENOTFOUND for an unknown approval, -EINVAL for missing arguments, or a
 * store error.
 */
int rsre_approvals_recheck(struct rsre_approvals *ap, rsre_store_txn *txn, const char *approval_id,
                           const struct rsre_recheck_input *in, struct rsre_recheck_outcome *out);

/* --- expiry ---------------------------------------------------------------------------------- */

struct rsre_approval_list {
    rsre_store_approval **v; /* caller-owned copies */
    size_t n;
};
void rsre_approval_list_free(struct rsre_approval_list *l); /* frees the records, zeroes l */

/*
 * Every PENDING approval with expires_at_ms <= now_ms becomes EXPIRED (its ActionRecord
 * expired), audited "approval.expire". `escalated` (may be NULL) gets copies of the approvals
 * that expired in this call: the caller moves each one's incident to escalated.
 */
int rsre_approvals_expire(struct rsre_approvals *ap, rsre_store_txn *txn, int64_t now_ms,
                          struct rsre_approval_list *escalated);

/* --- names ----------------------------------------------------------------------------------- */

const char *rsre_channel_name(enum rsre_channel c); /* "api", "telegram", "whatsapp", "inapp" */
int rsre_channel_parse(const char *s, enum rsre_channel *out); /* 0 or RSRE_ENOTFOUND */
const char *rsre_vote_name(enum rsre_vote v);                  /* "approve", "deny" */
const char *rsre_vote_refusal_name(enum rsre_vote_refusal r);  /* "self_approval", ... */
const char *rsre_recheck_why_name(enum rsre_recheck_why w);    /* "cooldown", ... */
const char *rsre_approval_state_name(int state);               /* "pending", "approved", ... */

#endif
