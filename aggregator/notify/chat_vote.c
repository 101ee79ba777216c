/* The notify core's only use of approvals/approvals.h (see chat_vote.h). */
#include <stdio.h>
#include <string.h>

#include "approvals/approvals.h"
#include "notify/chat_vote.h"

int rsre__notify_vote(struct rsre_approvals *ap, rsre_store_txn *txn, const char *approval_id,
                      enum rsre_chat chat, const char *user, int approve, int64_t now_ms,
                      struct rsre__chat_vote *out) {
    memset(out, 0, sizeof(*out));
    struct rsre_vote_outcome o;
    int rc =
        rsre_approvals_vote_chat(ap, txn, approval_id, chat, user,
                                 approve ? RSRE_VOTE_APPROVE : RSRE_VOTE_DENY, NULL, now_ms, &o);
    if (rc) {
        return rc;
    }
    out->refused = o.refusal != RSRE_REFUSE_NONE;
    out->decided = o.execute || o.escalate ||
                   (o.refusal == RSRE_REFUSE_NONE &&
                    o.state == ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_DENIED);
    snprintf(out->reason, sizeof(out->reason), "%s", o.reason);
    return 0;
}

const char *rsre__notify_state_name(int state) {
    return rsre_approval_state_name(state);
}
