/*
 * Typed record functions: incidents, evidence, actions, approvals, rule versions, cooldowns
 * and named counters, each a thin layer over the generic put / get / iterate of codec.c.
 */
#include "store/store_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned mdb_put_flags(unsigned flags) {
    return (flags & RSRE_STORE_NOOVERWRITE) ? MDB_NOOVERWRITE : 0;
}

/* Puts record `m` of `kind` into `db` under the key derived from the record itself. */
static int put_keyed(rsre_store_txn *txn, int db, int kind, const ProtobufCMessage *m,
                     unsigned mdb_flags) {
    uint8_t key[RSRE__STORE_KEY_MAX];
    size_t klen;
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    if (m == NULL) {
        return -EINVAL;
    }
    rc = rsre__store_key_of(kind, m, key, &klen);
    if (rc != 0) {
        return rc;
    }
    return rsre__store_put(txn, db, key, klen, kind, m, mdb_flags);
}

/* Gets the record of `kind` stored under id `id` in `db`. */
static int get_by_id(rsre_store_txn *txn, int db, int kind, const char *id,
                     ProtobufCMessage **out) {
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    int rc = rsre__store_id_check(id);
    if (rc != 0) {
        return rc;
    }
    return rsre__store_get(txn, db, id, strlen(id), kind, out);
}

/*
 * Typed iteration: each public callback type gets a trampoline that calls it with the right
 * record type, so no function is ever called through a pointer of the wrong type.
 */
#define RSRE_STORE_TRAMPOLINE(type, cbtype)                                                        \
    struct type##_iter {                                                                           \
        cbtype cb;                                                                                 \
        void *ud;                                                                                  \
        const char *incident_id; /* filter, where the type has one */                              \
    };                                                                                             \
    static int type##_tramp(const ProtobufCMessage *m, void *p) {                                  \
        struct type##_iter *it = p;                                                                \
        return it->cb((const rsre_store_##type *)m, it->ud);                                       \
    }

RSRE_STORE_TRAMPOLINE(incident, rsre_store_incident_cb)
RSRE_STORE_TRAMPOLINE(evidence, rsre_store_evidence_cb)
RSRE_STORE_TRAMPOLINE(action, rsre_store_action_cb)
RSRE_STORE_TRAMPOLINE(approval, rsre_store_approval_cb)
RSRE_STORE_TRAMPOLINE(rule, rsre_store_rule_cb)
RSRE_STORE_TRAMPOLINE(cooldown, rsre_store_cooldown_cb)

/* --- incidents ------------------------------------------------------------------------------ */

int rsre_store_incident_put(rsre_store_txn *txn, const rsre_store_incident *rec, unsigned flags) {
    return put_keyed(txn, RSRE__DB_INCIDENTS, RSRE__K_INCIDENT, rec ? &rec->base : NULL,
                     mdb_put_flags(flags));
}

int rsre_store_incident_get(rsre_store_txn *txn, const char *id, rsre_store_incident **out) {
    return get_by_id(txn, RSRE__DB_INCIDENTS, RSRE__K_INCIDENT, id, (ProtobufCMessage **)out);
}

int rsre_store_incident_foreach(rsre_store_txn *txn, rsre_store_incident_cb cb, void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    struct incident_iter it = {cb, ud, NULL};
    return rsre__store_iterate(txn, RSRE__DB_INCIDENTS, NULL, 0, NULL, 0, RSRE__K_INCIDENT,
                               incident_tramp, &it);
}

void rsre_store_incident_free(rsre_store_incident *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

/* --- evidence ------------------------------------------------------------------------------- */

int rsre_store_evidence_put(rsre_store_txn *txn, const rsre_store_evidence *rec, unsigned flags) {
    return put_keyed(txn, RSRE__DB_EVIDENCE, RSRE__K_EVIDENCE, rec ? &rec->base : NULL,
                     mdb_put_flags(flags));
}

int rsre_store_evidence_get(rsre_store_txn *txn, const char *incident_id, const char *id,
                            rsre_store_evidence **out) {
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    uint8_t key[RSRE__STORE_KEY_MAX];
    size_t klen;
    int rc = rsre__store_key_pair(incident_id, id, key, &klen);
    if (rc != 0) {
        return rc;
    }
    return rsre__store_get(txn, RSRE__DB_EVIDENCE, key, klen, RSRE__K_EVIDENCE,
                           (ProtobufCMessage **)out);
}

int rsre_store_evidence_foreach(rsre_store_txn *txn, const char *incident_id,
                                rsre_store_evidence_cb cb, void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    uint8_t prefix[RSRE__STORE_KEY_MAX];
    size_t plen;
    int rc = rsre__store_key_pair(incident_id, NULL, prefix, &plen);
    if (rc != 0) {
        return rc;
    }
    struct evidence_iter it = {cb, ud, NULL};
    return rsre__store_iterate(txn, RSRE__DB_EVIDENCE, prefix, plen, NULL, 0, RSRE__K_EVIDENCE,
                               evidence_tramp, &it);
}

void rsre_store_evidence_free(rsre_store_evidence *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

/* --- actions -------------------------------------------------------------------------------- */

int rsre_store_action_put(rsre_store_txn *txn, const rsre_store_action *rec, unsigned flags) {
    return put_keyed(txn, RSRE__DB_ACTIONS, RSRE__K_ACTION, rec ? &rec->base : NULL,
                     mdb_put_flags(flags));
}

int rsre_store_action_get(rsre_store_txn *txn, const char *id, rsre_store_action **out) {
    return get_by_id(txn, RSRE__DB_ACTIONS, RSRE__K_ACTION, id, (ProtobufCMessage **)out);
}

static int action_filter(const ProtobufCMessage *m, void *p) {
    struct action_iter *it = p;
    const rsre_store_action *a = (const rsre_store_action *)m;
    if (it->incident_id != NULL && strcmp(a->incident_id, it->incident_id) != 0) {
        return 0;
    }
    return action_tramp(m, p);
}

int rsre_store_action_foreach(rsre_store_txn *txn, const char *incident_id, rsre_store_action_cb cb,
                              void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    struct action_iter it = {cb, ud, incident_id};
    return rsre__store_iterate(txn, RSRE__DB_ACTIONS, NULL, 0, NULL, 0, RSRE__K_ACTION,
                               action_filter, &it);
}

void rsre_store_action_free(rsre_store_action *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

/* --- approvals ------------------------------------------------------------------------------ */

int rsre_store_approval_put(rsre_store_txn *txn, const rsre_store_approval *rec, unsigned flags) {
    return put_keyed(txn, RSRE__DB_APPROVALS, RSRE__K_APPROVAL, rec ? &rec->base : NULL,
                     mdb_put_flags(flags));
}

int rsre_store_approval_get(rsre_store_txn *txn, const char *id, rsre_store_approval **out) {
    return get_by_id(txn, RSRE__DB_APPROVALS, RSRE__K_APPROVAL, id, (ProtobufCMessage **)out);
}

int rsre_store_approval_foreach(rsre_store_txn *txn, rsre_store_approval_cb cb, void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    struct approval_iter it = {cb, ud, NULL};
    return rsre__store_iterate(txn, RSRE__DB_APPROVALS, NULL, 0, NULL, 0, RSRE__K_APPROVAL,
                               approval_tramp, &it);
}

int rsre_store_approval_vote_add(rsre_store_txn *txn, const char *approval_id,
                                 const rsre_store_vote *vote) {
    if (vote == NULL) {
        return -EINVAL;
    }
    if (vote->operator_ == NULL || vote->operator_[0] == '\0' ||
        (vote->vote != ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE &&
         vote->vote != ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_DENY)) {
        return RSRE_EINVALID;
    }
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    rsre_store_approval *a;
    rc = rsre_store_approval_get(txn, approval_id, &a);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < a->n_votes; i++) {
        if (strcmp(a->votes[i]->operator_, vote->operator_) == 0) {
            rsre_store_approval_free(a);
            return RSRE_EEXIST;
        }
    }
    /* Append the caller's (borrowed) vote for the put, then restore the decoded array so
     * freeing the record frees only what decoding allocated. */
    rsre_store_vote **votes = malloc((a->n_votes + 1) * sizeof(*votes));
    if (votes == NULL) {
        rsre_store_approval_free(a);
        return -ENOMEM;
    }
    if (a->n_votes > 0) {
        memcpy(votes, a->votes, a->n_votes * sizeof(*votes));
    }
    votes[a->n_votes] = (rsre_store_vote *)vote;
    rsre_store_vote **old = a->votes;
    size_t n_old = a->n_votes;
    a->votes = votes;
    a->n_votes = n_old + 1;
    rc = rsre_store_approval_put(txn, a, 0);
    a->votes = old;
    a->n_votes = n_old;
    free(votes);
    rsre_store_approval_free(a);
    return rc;
}

void rsre_store_approval_free(rsre_store_approval *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

/* --- rules ---------------------------------------------------------------------------------- */

int rsre_store_rule_put(rsre_store_txn *txn, const rsre_store_rule *rec) {
    return put_keyed(txn, RSRE__DB_RULES, RSRE__K_RULE, rec ? &rec->base : NULL, MDB_NOOVERWRITE);
}

/* Finds the key of the latest version of the rule whose key prefix is `prefix` ("id\0"). */
static int rule_latest_key(rsre_store_txn *txn, const uint8_t *prefix, size_t plen, uint8_t *key,
                           size_t *klen) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn->mdb, txn->store->dbi[RSRE__DB_RULES], &cur);
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "cursor_open");
    }
    /* Seek just past the highest possible version, then step back. */
    uint8_t seek[RSRE__STORE_KEY_MAX];
    memcpy(seek, prefix, plen);
    rsre__be32_put(seek + plen, UINT32_MAX);
    MDB_val k = {.mv_size = plen + 4, .mv_data = seek}, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0 && k.mv_size == plen + 4 && memcmp(k.mv_data, seek, plen + 4) == 0) {
        /* version UINT32_MAX itself exists */
    } else if (mrc == 0) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    } else if (mrc == MDB_NOTFOUND) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    }
    int rc = 0;
    if (mrc == 0 && k.mv_size == plen + 4 && memcmp(k.mv_data, prefix, plen) == 0) {
        memcpy(key, k.mv_data, k.mv_size);
        *klen = k.mv_size;
    } else if (mrc == 0 || mrc == MDB_NOTFOUND) {
        rc = RSRE_ENOTFOUND;
    }
    mdb_cursor_close(cur);
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = rsre__store_txn_fail(txn, mrc, "cursor_get");
    }
    return rc;
}

int rsre_store_rule_get(rsre_store_txn *txn, const char *rule_id, uint32_t version,
                        rsre_store_rule **out) {
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    int rc = rsre__store_txn_check(txn, 0);
    if (rc != 0) {
        return rc;
    }
    uint8_t key[RSRE__STORE_KEY_MAX];
    size_t klen;
    rc = rsre__store_key_pair(rule_id, NULL, key, &klen);
    if (rc != 0) {
        return rc;
    }
    if (version == 0) {
        rc = rule_latest_key(txn, key, klen, key, &klen);
        if (rc != 0) {
            return rc;
        }
    } else {
        rsre__be32_put(key + klen, version);
        klen += 4;
    }
    return rsre__store_get(txn, RSRE__DB_RULES, key, klen, RSRE__K_RULE, (ProtobufCMessage **)out);
}

int rsre_store_rule_foreach(rsre_store_txn *txn, const char *rule_id, rsre_store_rule_cb cb,
                            void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    uint8_t prefix[RSRE__STORE_KEY_MAX];
    size_t plen = 0;
    if (rule_id != NULL) {
        int rc = rsre__store_key_pair(rule_id, NULL, prefix, &plen);
        if (rc != 0) {
            return rc;
        }
    }
    struct rule_iter it = {cb, ud, NULL};
    return rsre__store_iterate(txn, RSRE__DB_RULES, prefix, plen, NULL, 0, RSRE__K_RULE, rule_tramp,
                               &it);
}

void rsre_store_rule_free(rsre_store_rule *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

/* --- cooldowns ------------------------------------------------------------------------------ */

int rsre_store_cooldown_set(rsre_store_txn *txn, const char *key, int64_t until_ms,
                            const char *set_by, int64_t set_at_ms) {
    rsre_store_cooldown c = ROBOT_SRE__STORE__COOLDOWN__INIT;
    c.key = (char *)key;
    c.until_ms = until_ms;
    c.set_by = set_by ? (char *)set_by : "";
    c.set_at_ms = set_at_ms;
    return put_keyed(txn, RSRE__DB_COOLDOWNS, RSRE__K_COOLDOWN, &c.base, 0);
}

int rsre_store_cooldown_get(rsre_store_txn *txn, const char *key, rsre_store_cooldown **out) {
    return get_by_id(txn, RSRE__DB_COOLDOWNS, RSRE__K_COOLDOWN, key, (ProtobufCMessage **)out);
}

int rsre_store_cooldown_active(rsre_store_txn *txn, const char *key, int64_t now_ms,
                               int64_t *until_ms) {
    rsre_store_cooldown *c;
    int rc = rsre_store_cooldown_get(txn, key, &c);
    if (rc != 0) {
        return rc;
    }
    rc = c->until_ms > now_ms ? 0 : RSRE_ENOTFOUND;
    if (rc == 0 && until_ms != NULL) {
        *until_ms = c->until_ms;
    }
    rsre_store_cooldown_free(c);
    return rc;
}

int rsre_store_cooldown_expire(rsre_store_txn *txn, int64_t now_ms, size_t *removed) {
    if (removed != NULL) {
        *removed = 0;
    }
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn->mdb, txn->store->dbi[RSRE__DB_COOLDOWNS], &cur);
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "cursor_open");
    }
    MDB_val k, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        ProtobufCMessage *m;
        rc = rsre__store_decode(RSRE__K_COOLDOWN, v.mv_data, v.mv_size, &m);
        if (rc != 0) {
            char repr[2 * RSRE__STORE_KEY_MAX];
            RSRE_LOG(RSRE_LOG_ERROR, "store", "corrupt record: db=cooldowns key=\"%s\"",
                     rsre__store_key_repr(repr, sizeof(repr), k.mv_data, k.mv_size));
            break;
        }
        int expired = ((rsre_store_cooldown *)m)->until_ms <= now_ms;
        protobuf_c_message_free_unpacked(m, NULL);
        if (expired) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != 0) {
                break;
            }
            if (removed != NULL) {
                (*removed)++;
            }
        }
        /* After a delete, MDB_NEXT yields the record that followed the deleted one. */
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        /* Write transaction: aborting it closes the cursor. */
        return rsre__store_txn_fail(txn, mrc, "cooldown_expire");
    }
    mdb_cursor_close(cur);
    return rc;
}

int rsre_store_cooldown_foreach(rsre_store_txn *txn, rsre_store_cooldown_cb cb, void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    struct cooldown_iter it = {cb, ud, NULL};
    return rsre__store_iterate(txn, RSRE__DB_COOLDOWNS, NULL, 0, NULL, 0, RSRE__K_COOLDOWN,
                               cooldown_tramp, &it);
}

void rsre_store_cooldown_free(rsre_store_cooldown *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

/* --- counters ------------------------------------------------------------------------------- */

int rsre_store_seq_next(rsre_store_txn *txn, const char *name, uint64_t *out) {
    if (out == NULL) {
        return -EINVAL;
    }
    int rc = rsre__store_txn_check(txn, 1);
    if (rc == 0) {
        rc = rsre__store_id_check(name);
    }
    if (rc != 0) {
        return rc;
    }
    char key[sizeof(RSRE__META_SEQ_PREFIX) + RSRE_STORE_ID_MAX];
    size_t klen = (size_t)snprintf(key, sizeof(key), RSRE__META_SEQ_PREFIX "%s", name);
    ProtobufCMessage *m = NULL;
    uint64_t value = 0;
    rc = rsre__store_get(txn, RSRE__DB_META, key, klen, RSRE__K_COUNTER, &m);
    if (rc == 0) {
        value = ((RobotSre__Store__Counter *)m)->value;
        protobuf_c_message_free_unpacked(m, NULL);
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    if (value == UINT64_MAX) {
        return RSRE_ELIMIT;
    }
    RobotSre__Store__Counter c = ROBOT_SRE__STORE__COUNTER__INIT;
    c.value = value + 1;
    rc = rsre__store_put(txn, RSRE__DB_META, key, klen, RSRE__K_COUNTER, &c.base, 0);
    if (rc == 0) {
        *out = c.value;
    }
    return rc;
}
