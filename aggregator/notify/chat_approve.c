/*
 * Approvals in chat: pending approvals are announced to every approver mapped on the approval
 * channels (one private message each, buttons signed for that approver), decided ones are
 * edited to say who decided, and button presses become votes through the approvals module.
 *
 * A press counts only when its payload verifies for the user who pressed it on that channel
 * (chat_sign.c), has not expired, and has not been used before: the MAC is recorded under
 * "u/<mac>" in the same transaction as the vote, so a replay — even after a restart — is
 * refused. Every refusal is audited ("approval.vote.refused", actor "<channel>:<user>") and
 * answered in the chat; counted votes are audited by the approvals module with their channel.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "notify/chat_vote.h"
#include "notify/notify_internal.h"

#define SCAN_MAX 64 /* approvals handled per scan */

#define ST_PENDING ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING

struct scan_item {
    rsre_store_approval *rec;
    int announce; /* 1: new pending; 0: decided since announced */
};

struct scan_ctx {
    rsre_store_txn *txn;
    struct scan_item items[SCAN_MAX];
    size_t n;
    int64_t now;
};

static void announced_key(const char *id, char *key, size_t cap) {
    snprintf(key, cap, "a/%s", id);
}

static int scan_cb(const rsre_store_approval *rec, void *ud) {
    struct scan_ctx *c = ud;
    char key[RSRE_STORE_NOTIFY_KEY_MAX + 1];
    announced_key(rec->id, key, sizeof(key));
    char *val = NULL;
    int rc = rsre_store_notify_get(c->txn, key, &val, NULL);
    int announce;
    if (rc == RSRE_ENOTFOUND) {
        if ((int)rec->state != ST_PENDING || rec->expires_at_ms <= c->now) {
            return 0;
        }
        announce = 1;
    } else if (rc == 0) {
        int done = strstr(val, "\"pending\"") == NULL;
        free(val);
        if (done || (int)rec->state == ST_PENDING) {
            return 0;
        }
        announce = 0;
    } else {
        return rc;
    }
    /* Copy: the record is borrowed. */
    size_t len = protobuf_c_message_get_packed_size(&rec->base);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        return -ENOMEM;
    }
    protobuf_c_message_pack(&rec->base, buf);
    rsre_store_approval *copy = robot_sre__store__approval__unpack(NULL, len, buf);
    free(buf);
    if (!copy) {
        return -ENOMEM;
    }
    c->items[c->n].rec = copy;
    c->items[c->n].announce = announce;
    c->n++;
    return c->n >= SCAN_MAX ? 1 : 0;
}

static void mark(struct rsre_notify *n, const char *id, const char *state) {
    char key[RSRE_STORE_NOTIFY_KEY_MAX + 1], val[64];
    announced_key(id, key, sizeof(key));
    snprintf(val, sizeof(val), "{\"state\":\"%s\"}", state);
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(n->store, 0, &txn);
    if (rc == 0) {
        rc = rsre_store_notify_put(txn, key, val, strlen(val), 0);
        rc = rc ? (rsre_store_txn_abort(txn), rc) : rsre_store_txn_commit(txn);
    }
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "notify", "approval %s: state not recorded: %s", id,
                 rsre_strerror(rc));
    }
}

static void approval_link(const struct rsre_notify *n, const char *id, char *link, size_t cap) {
    const char *base = rsre_notify_routes_admin_url(n->routes);
    if (base[0]) {
        snprintf(link, cap, "%s/approvals/%s", base, id);
    } else {
        link[0] = '\0';
    }
}

static enum rsre_chat chat_of(const char *channel, int *ok) {
    *ok = 1;
    if (!strcmp(channel, "telegram")) {
        return RSRE_CHAT_TELEGRAM;
    }
    if (!strcmp(channel, "whatsapp")) {
        return RSRE_CHAT_WHATSAPP;
    }
    *ok = 0;
    return RSRE_CHAT_TELEGRAM;
}

static void announce(struct rsre_notify *n, const rsre_store_approval *a, int64_t now) {
    struct notify_job t;
    memset(&t, 0, sizeof(t));
    t.kind = JOB_APPROVAL;
    snprintf(t.subject, sizeof(t.subject), "%s", a->id);
    snprintf(t.severity, sizeof(t.severity), "warning");
    approval_link(n, a->id, t.link, sizeof(t.link));
    snprintf(t.text, sizeof(t.text),
             "%.3000s\nApproval %.128s for incident %.128s: %u approval(s) needed.%s%.500s",
             a->prompt, a->id, a->incident_id, a->quorum ? a->quorum : 1,
             t.link[0] ? "\nDetails: " : "", t.link);
    t.buttons = 1;
    t.expires_ms = a->expires_at_ms;
    char title[256];
    snprintf(title, sizeof(title), "Approval requested: %s %s", a->action, a->target);
    rsre__notify_inapp(n, "approval", a->id, "warning", title, t.text, t.link, now);
    const char *const *names;
    size_t nnames = rsre_notify_routes_approval_channels(n->routes, &names);
    size_t queued = 0;
    for (size_t c = 0; c < nnames; c++) {
        int ch = rsre__notify_chan_find(n, names[c]);
        int ok;
        enum rsre_chat chat = chat_of(names[c], &ok);
        if (ch < 0 || !ok) {
            continue;
        }
        t.ch = ch;
        for (size_t i = 0; i < rsre_operators_count(n->operators); i++) {
            const struct rsre_operator *op = rsre_operators_get(n->operators, i);
            const char *id = rsre_operator_chat_id(op, chat);
            if (!id || !rsre_operator_may_approve(op) || !strcmp(op->id, a->requester)) {
                continue;
            }
            snprintf(t.chat, sizeof(t.chat), "%s", id);
            snprintf(t.op, sizeof(t.op), "%s", op->id);
            queued += rsre__notify_enqueue(n, &t, now) == 0;
        }
    }
    RSRE_LOG(RSRE_LOG_INFO, "notify", "approval %s announced to %zu approver chat(s)", a->id,
             queued);
}

/* Edits every message of the approval's thread: no buttons, the decision and who made it. */
struct thread_list {
    char keys[64][RSRE_STORE_NOTIFY_KEY_MAX + 1];
    size_t n;
};

static int thread_cb(const char *key, const void *val, size_t len, void *ud) {
    (void)val;
    (void)len;
    struct thread_list *l = ud;
    snprintf(l->keys[l->n++], sizeof(l->keys[0]), "%s", key);
    return l->n >= 64 ? 1 : 0;
}

static void decided(struct rsre_notify *n, const rsre_store_approval *a, int64_t now) {
    const char *state = rsre__notify_state_name((int)a->state);
    char who[256] = "";
    if (a->n_votes) {
        const rsre_store_vote *v = a->votes[a->n_votes - 1];
        snprintf(who, sizeof(who), " by %s via %s", v->operator_, v->channel);
    }
    struct notify_job t;
    memset(&t, 0, sizeof(t));
    t.kind = JOB_APPROVAL;
    snprintf(t.subject, sizeof(t.subject), "%s", a->id);
    approval_link(n, a->id, t.link, sizeof(t.link));
    snprintf(t.text, sizeof(t.text), "%.3000s\nDecision: %.32s%s.%s%.500s", a->prompt, state,
             (int)a->state == ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_APPROVED ||
                     (int)a->state == ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_DENIED
                 ? who
                 : "",
             t.link[0] ? "\nDetails: " : "", t.link);
    struct thread_list *l = calloc(1, sizeof(*l));
    rsre_store_txn *txn;
    if (l && rsre_store_txn_begin(n->store, 1, &txn) == 0) {
        char prefix[RSRE_STORE_NOTIFY_KEY_MAX + 1];
        snprintf(prefix, sizeof(prefix), "t/%s/", a->id);
        rsre_store_notify_foreach(txn, prefix, NULL, thread_cb, l);
        rsre_store_txn_abort(txn);
        for (size_t i = 0; i < l->n; i++) {
            /* t/<id>/<channel>/<chat> */
            const char *p = l->keys[i] + strlen(prefix);
            const char *slash = strchr(p, '/');
            if (!slash) {
                continue;
            }
            char chname[RSRE_NOTIFY_NAME_MAX];
            snprintf(chname, sizeof(chname), "%.*s", (int)(slash - p), p);
            int ch = rsre__notify_chan_find(n, chname);
            if (ch < 0) {
                continue;
            }
            t.ch = ch;
            snprintf(t.chat, sizeof(t.chat), "%s", slash + 1);
            rsre__notify_enqueue(n, &t, now);
        }
    }
    /* Messages still queued (never sent) lose their buttons too; one in flight gets the
     * decision as an edit once it has its message id (the edit waits for it). */
    size_t njobs = n->njobs;
    for (size_t i = 0; i < njobs && i < n->njobs; i++) {
        struct notify_job *j = n->jobs[i];
        if (j->kind != JOB_APPROVAL || strcmp(j->subject, a->id)) {
            continue;
        }
        if (!j->inflight) {
            memcpy(j->text, t.text, sizeof(j->text));
            j->buttons = 0;
        } else {
            t.ch = j->ch;
            snprintf(t.chat, sizeof(t.chat), "%s", j->chat);
            rsre__notify_enqueue(n, &t, now);
        }
    }
    free(l);
    char title[256];
    snprintf(title, sizeof(title), "Approval %.64s %.32s%.140s", a->id, state, who);
    rsre__notify_inapp(n, "approval", a->id, "info", title, t.text, t.link, now);
}

void rsre_notify_scan_approvals(struct rsre_notify *n, int64_t now_ms) {
    if (!n || n->closing) {
        return;
    }
    struct scan_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        return;
    }
    c->now = now_ms;
    int rc = rsre_store_txn_begin(n->store, 1, &c->txn);
    if (rc == 0) {
        rc = rsre_store_approval_foreach(c->txn, scan_cb, c);
        rsre_store_txn_abort(c->txn);
    }
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "notify", "approval scan failed: %s", rsre_strerror(rc));
    }
    for (size_t i = 0; i < c->n; i++) {
        rsre_store_approval *a = c->items[i].rec;
        if (c->items[i].announce) {
            announce(n, a, now_ms);
            mark(n, a->id, "pending");
        } else {
            decided(n, a, now_ms);
            mark(n, a->id, rsre__notify_state_name((int)a->state));
        }
        rsre_store_approval_free(a);
    }
    free(c);
    rsre_notify_poll(n, now_ms);
}

/* ---- button presses ---- */

struct press {
    struct rsre_notify *n;
    const struct rsre_chat_action *a;
    enum rsre_sign_verdict verdict;
    struct rsre_notify_button b;
    int64_t now;
    char answer[320];
    int counted, decided, approve;
};

static int refuse(rsre_store_txn *txn, struct press *p, const char *object, const char *why) {
    char actor[160], detail[256];
    snprintf(actor, sizeof(actor), "%s:%.100s", p->a->channel, p->a->user);
    json_t *d = json_pack("{s:s, s:s}", "channel", p->a->channel, "refusal", why);
    char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(detail, sizeof(detail), "%s", ds ? ds : "{}");
    free(ds);
    snprintf(p->answer, sizeof(p->answer), "Refused: %s.", why);
    return rsre_store_audit_append(txn, actor, "approval.vote.refused", object, p->answer, detail,
                                   p->now, NULL);
}

static int press_fn(rsre_store_txn *txn, void *arg) {
    struct press *p = arg;
    struct rsre_notify *n = p->n;
    const char *object =
        p->verdict != RSRE_SIGN_MALFORMED && p->b.approval_id[0] ? p->b.approval_id : "unknown";
    switch (p->verdict) {
    case RSRE_SIGN_OK:
        break;
    case RSRE_SIGN_EXPIRED:
        return refuse(txn, p, object, "this approval request has expired");
    case RSRE_SIGN_BAD_MAC:
        return refuse(txn, p, object,
                      "this button was not issued to you (forwarded, altered or another user)");
    default:
        return refuse(txn, p, object, "not a valid approval button");
    }
    char key[RSRE_STORE_NOTIFY_KEY_MAX + 1];
    snprintf(key, sizeof(key), "u/%s", p->b.mac);
    char *val = NULL;
    int rc = rsre_store_notify_get(txn, key, &val, NULL);
    free(val);
    if (rc == 0) {
        return refuse(txn, p, object, "this button was already used (replay)");
    }
    if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    json_t *u = json_pack("{s:I, s:s, s:s, s:s}", "at", (json_int_t)p->now, "user", p->a->user,
                          "channel", p->a->channel, "approval", p->b.approval_id);
    char *us = u ? json_dumps(u, JSON_COMPACT) : NULL;
    json_decref(u);
    if (!us) {
        return -ENOMEM;
    }
    rc = rsre_store_notify_put(txn, key, us, strlen(us), RSRE_STORE_NOOVERWRITE);
    free(us);
    if (rc) {
        return rc;
    }
    if (!n->approvals) {
        return refuse(txn, p, object, "approvals are not enabled on this aggregator");
    }
    int ok;
    enum rsre_chat chat = chat_of(p->a->channel, &ok);
    if (!ok) {
        return refuse(txn, p, object, "votes are not accepted on this channel");
    }
    struct rsre__chat_vote out;
    rc = rsre__notify_vote(n->approvals, txn, p->b.approval_id, chat, p->a->user, p->b.approve,
                           p->now, &out);
    if (rc) {
        return rc;
    }
    if (out.refused) {
        snprintf(p->answer, sizeof(p->answer), "Refused: %.300s", out.reason);
    } else {
        p->counted = 1;
        p->approve = p->b.approve;
        snprintf(p->answer, sizeof(p->answer), "%.300s", out.reason);
    }
    if (out.decided && n->hooks.decided) {
        p->decided = 1;
        rc = n->hooks.decided(n->hooks.arg, txn, p->b.approval_id, p->now);
    }
    return rc;
}

void rsre_notify_action(struct rsre_notify *n, const struct rsre_chat_action *a, int64_t now_ms) {
    if (!n || n->closing || !a || !a->channel || !a->user) {
        return;
    }
    int ch = rsre__notify_chan_find(n, a->channel);
    if (ch < 0) {
        RSRE_LOG(RSRE_LOG_WARN, "notify", "action from unconfigured channel %s ignored",
                 a->channel);
        return;
    }
    struct press p = {.n = n, .a = a, .now = now_ms};
    p.verdict = n->secret_len ? rsre_notify_verify(n->secret, n->secret_len, a->channel, a->user,
                                                   a->payload, now_ms, &p.b)
                              : RSRE_SIGN_MALFORMED;
    int rc = n->hooks.in_txn(n->hooks.arg, press_fn, &p);
    if (rc) {
        snprintf(p.answer, sizeof(p.answer), "Not recorded: %s. Please use the admin UI.",
                 rsre_strerror(rc));
        RSRE_LOG(RSRE_LOG_ERROR, "notify", "chat vote from %s:%s not recorded: %s", a->channel,
                 a->user, rsre_strerror(rc));
    }
    if (p.counted) {
        n->st.votes++;
        if (n->hooks.voted) {
            n->hooks.voted(n->hooks.arg, p.approve, p.decided);
        }
    } else {
        n->st.refusals++;
    }
    RSRE_LOG(RSRE_LOG_INFO, "notify",
             "chat action channel=%s user=%s approval=%s verdict=%s "
             "counted=%d answer=\"%s\"",
             a->channel, a->user, p.b.approval_id, rsre_sign_verdict_name(p.verdict), p.counted,
             p.answer);
    struct rsre_channel *c = n->chans[ch].ch;
    if (c->ops->ack) {
        c->ops->ack(c, a, p.answer);
    }
    rsre_notify_scan_approvals(n, now_ms);
}
