/*
 * Record encoding: the table of record kinds (descriptor, key derivation, invariants), the
 * bounded decoder every read goes through, and the generic put / get / iterate the typed
 * functions are built on.
 */
#include "store/store_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Decoding allocates at most this much per record. protobuf-c's in-memory form of a message
 * is at most a few dozen times its encoded size (an empty sub-message is 2 bytes on the wire
 * and a struct of ~64 bytes plus a pointer in memory), so this never refuses a real record
 * and stops a hostile one from amplifying a small value into a huge allocation.
 */
#define DECODE_BUDGET(len) ((len)*64 + 64 * 1024)

int rsre__store_id_check(const char *id) {
    if (id == NULL || *id == '\0') {
        return RSRE_EINVALID;
    }
    if (strnlen(id, RSRE_STORE_ID_MAX + 1) > RSRE_STORE_ID_MAX) {
        return RSRE_ELIMIT;
    }
    return 0;
}

/* Copies a checked id into `key`. */
static int key_id(const char *id, uint8_t *key, size_t *klen) {
    int rc = rsre__store_id_check(id);
    if (rc != 0) {
        return rc;
    }
    *klen = strlen(id);
    memcpy(key, id, *klen);
    return 0;
}

int rsre__store_key_pair(const char *a, const char *b, uint8_t *key, size_t *klen) {
    size_t n;
    int rc = key_id(a, key, &n);
    if (rc != 0) {
        return rc;
    }
    key[n++] = '\0';
    if (b != NULL) {
        size_t m;
        rc = key_id(b, key + n, &m);
        if (rc != 0) {
            return rc;
        }
        n += m;
    }
    *klen = n;
    return 0;
}

static int key_incident(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    return key_id(((const RobotSre__Store__Incident *)m)->id, key, klen);
}

static int key_evidence(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    const RobotSre__Store__Evidence *e = (const RobotSre__Store__Evidence *)m;
    return rsre__store_key_pair(e->incident_id, e->id, key, klen);
}

static int key_action(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    return key_id(((const RobotSre__Store__ActionRecord *)m)->id, key, klen);
}

static int key_approval(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    return key_id(((const RobotSre__Store__Approval *)m)->id, key, klen);
}

static int key_rule(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    const RobotSre__Store__RuleVersion *r = (const RobotSre__Store__RuleVersion *)m;
    if (r->version == 0) {
        return RSRE_EINVALID;
    }
    size_t n;
    int rc = rsre__store_key_pair(r->rule_id, NULL, key, &n);
    if (rc != 0) {
        return rc;
    }
    rsre__be32_put(key + n, r->version);
    *klen = n + 4;
    return 0;
}

static int key_audit(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    const RobotSre__Store__AuditRecord *a = (const RobotSre__Store__AuditRecord *)m;
    if (a->seq == 0) {
        return RSRE_EINVALID;
    }
    rsre__be64_put(key, a->seq);
    *klen = 8;
    return 0;
}

static int key_cooldown(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    return key_id(((const RobotSre__Store__Cooldown *)m)->key, key, klen);
}

static int check_audit(const ProtobufCMessage *m) {
    const RobotSre__Store__AuditRecord *a = (const RobotSre__Store__AuditRecord *)m;
    return a->prev_hash.len == RSRE_STORE_HASH_LEN && a->hash.len == RSRE_STORE_HASH_LEN ? 0 : -1;
}

static int check_audit_head(const ProtobufCMessage *m) {
    const RobotSre__Store__AuditHead *h = (const RobotSre__Store__AuditHead *)m;
    return h->seq != 0 && h->hash.len == RSRE_STORE_HASH_LEN ? 0 : -1;
}

static const struct kind {
    const char *name;
    const ProtobufCMessageDescriptor *desc;
    /* Derives the record's key; NULL for meta records, whose keys are fixed names. */
    int (*key_of)(const ProtobufCMessage *m, uint8_t *key, size_t *klen);
    /* Invariants beyond the wire format; NULL if none. Returns 0 if they hold. */
    int (*check)(const ProtobufCMessage *m);
} kinds[RSRE__K_COUNT] = {
    [RSRE__K_INCIDENT] = {"incident", &robot_sre__store__incident__descriptor, key_incident, NULL},
    [RSRE__K_EVIDENCE] = {"evidence", &robot_sre__store__evidence__descriptor, key_evidence, NULL},
    [RSRE__K_ACTION] = {"action", &robot_sre__store__action_record__descriptor, key_action, NULL},
    [RSRE__K_APPROVAL] = {"approval", &robot_sre__store__approval__descriptor, key_approval, NULL},
    [RSRE__K_RULE] = {"rule", &robot_sre__store__rule_version__descriptor, key_rule, NULL},
    [RSRE__K_AUDIT] = {"audit", &robot_sre__store__audit_record__descriptor, key_audit,
                       check_audit},
    [RSRE__K_COOLDOWN] = {"cooldown", &robot_sre__store__cooldown__descriptor, key_cooldown, NULL},
    [RSRE__K_META] = {"meta", &robot_sre__store__meta__descriptor, NULL, NULL},
    [RSRE__K_AUDIT_HEAD] = {"audit_head", &robot_sre__store__audit_head__descriptor, NULL,
                            check_audit_head},
    [RSRE__K_COUNTER] = {"counter", &robot_sre__store__counter__descriptor, NULL, NULL},
    [RSRE__K_AGENT] = {"agent", &robot_sre__store__agent_state__descriptor, rsre__store_agent_key,
                       rsre__store_agent_check},
};

int rsre__store_key_of(int kind, const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    if (kind < 0 || kind >= RSRE__K_COUNT || kinds[kind].key_of == NULL || m == NULL) {
        return -EINVAL;
    }
    return kinds[kind].key_of(m, key, klen);
}

/* A failing allocator with a budget: decoding a record can never allocate without bound. */
struct budget {
    size_t left;
};

static void *budget_alloc(void *data, size_t size) {
    struct budget *b = data;
    if (size > b->left) {
        return NULL;
    }
    b->left -= size;
    return malloc(size);
}

static void budget_free(void *data, void *p) {
    (void)data;
    free(p); /* the same free() protobuf-c's default allocator uses, so messages decoded with
                the budget are later freed with protobuf_c_message_free_unpacked(m, NULL) */
}

/*
 * protobuf-c accepts a field number 0 written as a multi-byte varint and keeps it as an
 * unknown field, which it then re-encodes in a form it rejects. Field 0 is invalid on the
 * wire, so a record carrying one (at any depth) is corrupt.
 */
static int unknown_fields_ok(const ProtobufCMessage *m) {
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        if (m->unknown_fields[i].tag == 0) {
            return 0;
        }
    }
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *subs = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t j = 0; j < n; j++) {
                if (subs[j] != NULL && !unknown_fields_ok(subs[j])) {
                    return 0;
                }
            }
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
            if (sub != NULL && !unknown_fields_ok(sub)) {
                return 0;
            }
        }
    }
    return 1;
}

int rsre__store_decode(int kind, const void *data, size_t len, ProtobufCMessage **out) {
    static const uint8_t empty[1];
    if (out == NULL || kind < 0 || kind >= RSRE__K_COUNT) {
        return -EINVAL;
    }
    *out = NULL;
    if (len > RSRE_STORE_RECORD_MAX) {
        return RSRE_ECORRUPT;
    }
    if (data == NULL) {
        if (len != 0) {
            return -EINVAL;
        }
        data = empty;
    }
    const struct kind *k = &kinds[kind];
    struct budget b = {.left = DECODE_BUDGET(len)};
    ProtobufCAllocator alloc = {.alloc = budget_alloc, .free = budget_free, .allocator_data = &b};
    ProtobufCMessage *m = protobuf_c_message_unpack(k->desc, &alloc, len, data);
    if (m == NULL) {
        return RSRE_ECORRUPT;
    }
    uint8_t key[RSRE__STORE_KEY_MAX];
    size_t klen;
    if (!protobuf_c_message_check(m) || !unknown_fields_ok(m) ||
        (k->check != NULL && k->check(m) != 0) ||
        (k->key_of != NULL && k->key_of(m, key, &klen) != 0)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return RSRE_ECORRUPT;
    }
    *out = m;
    return 0;
}

int rsre__store_put(rsre_store_txn *txn, int db, const void *key, size_t klen, int kind,
                    const ProtobufCMessage *m, unsigned mdb_flags) {
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    if (m == NULL || kind < 0 || kind >= RSRE__K_COUNT || m->descriptor != kinds[kind].desc) {
        return -EINVAL;
    }
    if (!protobuf_c_message_check(m)) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "refusing to store malformed %s record (NULL field)",
                 kinds[kind].name);
        return -EINVAL;
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > RSRE_STORE_RECORD_MAX) {
        RSRE_LOG(RSRE_LOG_WARN, "store", "%s record too large: size=%zu limit=%u", kinds[kind].name,
                 n, RSRE_STORE_RECORD_MAX);
        return RSRE_ELIMIT;
    }
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
    MDB_val v = {.mv_size = n, .mv_data = NULL};
    int mrc = mdb_put(txn->mdb, txn->store->dbi[db], &k, &v, mdb_flags | MDB_RESERVE);
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "put");
    }
    /* MDB_RESERVE: encode in place, straight into the page LMDB will write. */
    protobuf_c_message_pack(m, v.mv_data);
    return 0;
}

/* Decodes value `v` found under key `k` and checks it belongs there; logs corruption. */
static int decode_at(rsre_store_txn *txn, int db, const MDB_val *k, const MDB_val *v, int kind,
                     ProtobufCMessage **out) {
    char repr[2 * RSRE__STORE_KEY_MAX];
    ProtobufCMessage *m = NULL;
    int rc = rsre__store_decode(kind, v->mv_data, v->mv_size, &m);
    if (rc == RSRE_ECORRUPT) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "corrupt record: db=%s key=\"%s\" size=%zu",
                 rsre__store_db_name(db),
                 rsre__store_key_repr(repr, sizeof(repr), k->mv_data, k->mv_size), v->mv_size);
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    if (kinds[kind].key_of != NULL) {
        uint8_t key[RSRE__STORE_KEY_MAX];
        size_t klen = 0;
        kinds[kind].key_of(m, key, &klen); /* cannot fail: decode checked it */
        if (klen != k->mv_size || memcmp(key, k->mv_data, klen) != 0) {
            RSRE_LOG(RSRE_LOG_ERROR, "store",
                     "corrupt record: db=%s key=\"%s\" holds a record of another key",
                     rsre__store_db_name(db),
                     rsre__store_key_repr(repr, sizeof(repr), k->mv_data, k->mv_size));
            protobuf_c_message_free_unpacked(m, NULL);
            return RSRE_ECORRUPT;
        }
    }
    (void)txn;
    *out = m;
    return 0;
}

int rsre__store_get(rsre_store_txn *txn, int db, const void *key, size_t klen, int kind,
                    ProtobufCMessage **out) {
    int rc = rsre__store_txn_check(txn, 0);
    if (rc != 0) {
        return rc;
    }
    *out = NULL;
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v;
    int mrc = mdb_get(txn->mdb, txn->store->dbi[db], &k, &v);
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "get");
    }
    /* Decoding copies everything out of the map, so *out outlives the transaction. */
    return decode_at(txn, db, &k, &v, kind, out);
}

int rsre__store_iterate(rsre_store_txn *txn, int db, const void *prefix, size_t plen,
                        const void *start, size_t slen, int kind, rsre__store_each_cb cb,
                        void *ud) {
    int rc = rsre__store_txn_check(txn, 0);
    if (rc != 0) {
        return rc;
    }
    if (cb == NULL) {
        return -EINVAL;
    }
    if (slen == 0) {
        start = prefix;
        slen = plen;
    }
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn->mdb, txn->store->dbi[db], &cur);
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "cursor_open");
    }
    MDB_val k = {.mv_size = slen, .mv_data = (void *)start}, v;
    mrc = mdb_cursor_get(cur, &k, &v, slen ? MDB_SET_RANGE : MDB_FIRST);
    while (mrc == 0) {
        if (plen != 0 && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)) {
            break;
        }
        ProtobufCMessage *m;
        rc = decode_at(txn, db, &k, &v, kind, &m);
        if (rc != 0) {
            break;
        }
        rc = cb(m, ud);
        protobuf_c_message_free_unpacked(m, NULL);
        if (rc != 0) {
            rc = rc > 0 ? 0 : rc;
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    /* If the callback's own operation poisoned a write transaction, aborting it already freed
     * the cursor; read-only cursors always need closing. */
    if (txn->mdb != NULL || txn->rdonly) {
        mdb_cursor_close(cur);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = rsre__store_txn_fail(txn, mrc, "cursor_get");
    }
    return rc;
}
