#ifndef RSRE_NOTIFY_CHAT_VOTE_H
#define RSRE_NOTIFY_CHAT_VOTE_H

/* Private to aggregator/notify: the bridge to the approvals module (chat_vote.c), kept apart
 * because approvals.h's `enum rsre_channel` and channel.h's `struct rsre_channel` clash. */

#include <stdint.h>

#include "approvals/operators.h"
#include "store/store.h"

struct rsre_approvals;

struct rsre__chat_vote {
    int refused; /* the approvals module refused the vote (and audited the refusal) */
    int decided; /* approved, denied, or found expired: hand it to the engine */
    char reason[320];
};

/* rsre_approvals_vote_chat for `chat`/`user`; 0 (commit) or an error (abort). */
int rsre__notify_vote(struct rsre_approvals *ap, rsre_store_txn *txn, const char *approval_id,
                      enum rsre_chat chat, const char *user, int approve, int64_t now_ms,
                      struct rsre__chat_vote *out);
/* rsre_approval_state_name. */
const char *rsre__notify_state_name(int state);

#endif
