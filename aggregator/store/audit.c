/*
 * The audit log: append-only and hash-chained. Record n carries prev_hash = hash of record
 * n-1 (32 zero bytes for record 1) and hash = SHA-256(prev_hash || canonical(record)), where
 * canonical() is the byte string below, independent of protobuf's encoding so that any
 * verifier can recompute it from the fields:
 *
 *   "rsre.audit.v1"                    13 bytes, no terminator
 *   seq                                u64 big-endian
 *   ts_ms                              i64 big-endian (two's complement)
 *   actor, verb, object, reason, detail  each u32 big-endian length, then the bytes
 *   prev_hash                          u32 big-endian length (32), then the 32 bytes
 *
 * The meta key "audit_head" holds the last record's seq and hash, written in the same
 * transaction, so a verifier also notices records cut off the end. Nothing here updates or
 * deletes a record.
 */
#include "store/store_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define AUDIT_DOMAIN "rsre.audit.v1"
#define AUDIT_FIELD_MAX 1024         /* actor, verb, object, reason */
#define AUDIT_DETAIL_MAX (64 * 1024) /* detail */

static const uint8_t zero_hash[RSRE_STORE_HASH_LEN];

static int digest_field(EVP_MD_CTX *ctx, const void *p, size_t len) {
    uint8_t l[4];
    rsre__be32_put(l, (uint32_t)len);
    return EVP_DigestUpdate(ctx, l, 4) && (len == 0 || EVP_DigestUpdate(ctx, p, len));
}

static const char *str_or_empty(const char *s) {
    return s ? s : "";
}

int rsre_store_audit_hash(const rsre_store_audit *rec, uint8_t out[RSRE_STORE_HASH_LEN]) {
    if (rec == NULL || out == NULL || rec->prev_hash.len != RSRE_STORE_HASH_LEN ||
        rec->prev_hash.data == NULL) {
        return -EINVAL;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -ENOMEM;
    }
    uint8_t num[16];
    rsre__be64_put(num, rec->seq);
    rsre__be64_put(num + 8, (uint64_t)rec->ts_ms);
    const char *strs[] = {rec->actor, rec->verb, rec->object, rec->reason, rec->detail};
    unsigned int n = 0;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, rec->prev_hash.data, RSRE_STORE_HASH_LEN) &&
             EVP_DigestUpdate(ctx, AUDIT_DOMAIN, strlen(AUDIT_DOMAIN)) &&
             EVP_DigestUpdate(ctx, num, sizeof(num));
    for (size_t i = 0; ok && i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *s = str_or_empty(strs[i]);
        ok = digest_field(ctx, s, strlen(s));
    }
    ok = ok && digest_field(ctx, rec->prev_hash.data, RSRE_STORE_HASH_LEN) &&
         EVP_DigestFinal_ex(ctx, out, &n) && n == RSRE_STORE_HASH_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "audit: SHA-256 failed");
        return RSRE_ESTORE;
    }
    return 0;
}

/* The seq of the last record in the log (0 if it is empty). */
static int last_logged_seq(rsre_store_txn *txn, uint64_t *seq) {
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn->mdb, txn->store->dbi[RSRE__DB_AUDIT], &cur);
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "cursor_open");
    }
    MDB_val k, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    *seq = 0;
    if (mrc == MDB_NOTFOUND) {
        return 0;
    }
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "cursor_get");
    }
    if (k.mv_size != 8) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "audit: malformed key in the log: dir=%s",
                 txn->store->dir);
        return RSRE_ECHAIN;
    }
    *seq = rsre__be64_get(k.mv_data);
    return 0;
}

static int field_check(const char *s, size_t max, int required) {
    if (s == NULL || *s == '\0') {
        return required ? RSRE_EINVALID : 0;
    }
    return strnlen(s, max + 1) > max ? RSRE_ELIMIT : 0;
}

int rsre_store_audit_append(rsre_store_txn *txn, const char *actor, const char *verb,
                            const char *object, const char *reason, const char *detail,
                            int64_t ts_ms, uint64_t *seq) {
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    if ((rc = field_check(actor, AUDIT_FIELD_MAX, 1)) != 0 ||
        (rc = field_check(verb, AUDIT_FIELD_MAX, 1)) != 0 ||
        (rc = field_check(object, AUDIT_FIELD_MAX, 1)) != 0 ||
        (rc = field_check(reason, AUDIT_FIELD_MAX, 0)) != 0 ||
        (rc = field_check(detail, AUDIT_DETAIL_MAX, 0)) != 0) {
        return rc;
    }

    /* The head (last seq and hash) lives in meta and changes in this same transaction; it
     * must agree with the last record actually in the log. */
    uint64_t last_seq = 0;
    rc = last_logged_seq(txn, &last_seq);
    if (rc != 0) {
        return rc;
    }
    uint64_t prev_seq = 0;
    uint8_t prev_hash[RSRE_STORE_HASH_LEN];
    memcpy(prev_hash, zero_hash, sizeof(prev_hash));
    ProtobufCMessage *m = NULL;
    rc = rsre__store_get(txn, RSRE__DB_META, RSRE__META_AUDIT_HEAD, strlen(RSRE__META_AUDIT_HEAD),
                         RSRE__K_AUDIT_HEAD, &m);
    if (rc == 0) {
        RobotSre__Store__AuditHead *h = (RobotSre__Store__AuditHead *)m;
        prev_seq = h->seq;
        memcpy(prev_hash, h->hash.data, RSRE_STORE_HASH_LEN);
        protobuf_c_message_free_unpacked(m, NULL);
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    if (prev_seq != last_seq) {
        RSRE_LOG(RSRE_LOG_ERROR, "store",
                 "audit: chain head seq=%llu disagrees with the last record seq=%llu; refusing "
                 "to append (run audit verify): dir=%s",
                 (unsigned long long)prev_seq, (unsigned long long)last_seq, txn->store->dir);
        return RSRE_ECHAIN;
    }
    if (prev_seq == UINT64_MAX) {
        return RSRE_ELIMIT;
    }

    rsre_store_audit rec = ROBOT_SRE__STORE__AUDIT_RECORD__INIT;
    uint8_t hash[RSRE_STORE_HASH_LEN];
    rec.seq = prev_seq + 1;
    rec.ts_ms = ts_ms;
    rec.actor = (char *)actor;
    rec.verb = (char *)verb;
    rec.object = (char *)object;
    rec.reason = (char *)str_or_empty(reason);
    rec.detail = (char *)str_or_empty(detail);
    rec.prev_hash.data = prev_hash;
    rec.prev_hash.len = RSRE_STORE_HASH_LEN;
    rc = rsre_store_audit_hash(&rec, hash);
    if (rc != 0) {
        return rc;
    }
    rec.hash.data = hash;
    rec.hash.len = RSRE_STORE_HASH_LEN;

    uint8_t key[8];
    rsre__be64_put(key, rec.seq);
    /* MDB_APPEND refuses a key that is not past the last one: the log can only grow. */
    rc = rsre__store_put(txn, RSRE__DB_AUDIT, key, sizeof(key), RSRE__K_AUDIT, &rec.base,
                         MDB_NOOVERWRITE | MDB_APPEND);
    if (rc == RSRE_EEXIST) {
        RSRE_LOG(RSRE_LOG_ERROR, "store",
                 "audit: chain head seq=%llu is behind the log; refusing to append: dir=%s",
                 (unsigned long long)prev_seq, txn->store->dir);
        return RSRE_ECHAIN;
    }
    if (rc != 0) {
        return rc;
    }
    RobotSre__Store__AuditHead head = ROBOT_SRE__STORE__AUDIT_HEAD__INIT;
    head.seq = rec.seq;
    head.hash.data = hash;
    head.hash.len = RSRE_STORE_HASH_LEN;
    rc = rsre__store_put(txn, RSRE__DB_META, RSRE__META_AUDIT_HEAD, strlen(RSRE__META_AUDIT_HEAD),
                         RSRE__K_AUDIT_HEAD, &head.base, 0);
    if (rc == 0 && seq != NULL) {
        *seq = rec.seq;
    }
    return rc;
}

int rsre_store_audit_get(rsre_store_txn *txn, uint64_t seq, rsre_store_audit **out) {
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    if (seq == 0) {
        return RSRE_ENOTFOUND;
    }
    uint8_t key[8];
    rsre__be64_put(key, seq);
    return rsre__store_get(txn, RSRE__DB_AUDIT, key, sizeof(key), RSRE__K_AUDIT,
                           (ProtobufCMessage **)out);
}

struct audit_iter {
    rsre_store_audit_cb cb;
    void *ud;
};

static int audit_tramp(const ProtobufCMessage *m, void *p) {
    struct audit_iter *it = p;
    return it->cb((const rsre_store_audit *)m, it->ud);
}

int rsre_store_audit_foreach(rsre_store_txn *txn, uint64_t from_seq, rsre_store_audit_cb cb,
                             void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    uint8_t start[8];
    rsre__be64_put(start, from_seq);
    struct audit_iter it = {cb, ud};
    return rsre__store_iterate(txn, RSRE__DB_AUDIT, NULL, 0, start, sizeof(start), RSRE__K_AUDIT,
                               audit_tramp, &it);
}

void rsre_store_audit_free(rsre_store_audit *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

/* Records the first failure in `r` and returns RSRE_ECHAIN. */
static int broken(struct rsre_store_audit_report *r, uint64_t seq, const char *fmt,
                  unsigned long long a) {
    r->broken_seq = seq;
    snprintf(r->reason, sizeof(r->reason), fmt, a);
    return RSRE_ECHAIN;
}

/* True if `v` is exactly protobuf-c's packing of the decoded record `m`. */
static int canonical_bytes(const ProtobufCMessage *m, const MDB_val *v) {
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n != v->mv_size) {
        return 0;
    }
    uint8_t stack[1024];
    uint8_t *buf = n <= sizeof(stack) ? stack : malloc(n);
    if (buf == NULL) {
        return 0;
    }
    protobuf_c_message_pack(m, buf);
    int same = memcmp(buf, v->mv_data, n) == 0;
    if (buf != stack) {
        free(buf);
    }
    return same;
}

/* Checks one record (key `k`, value `v`) against the expected seq and the previous hash. */
static int verify_one(const MDB_val *k, const MDB_val *v, uint64_t expect, const uint8_t *prev,
                      uint8_t *hash_out, struct rsre_store_audit_report *r) {
    if (k->mv_size != 8) {
        return broken(r, expect, "malformed key in audit database (expected seq %llu)", expect);
    }
    uint64_t kseq = rsre__be64_get(k->mv_data);
    if (kseq != expect) {
        return broken(r, expect, "record %llu is missing", expect);
    }
    ProtobufCMessage *m;
    if (rsre__store_decode(RSRE__K_AUDIT, v->mv_data, v->mv_size, &m) != 0) {
        return broken(r, kseq, "record %llu does not decode", kseq);
    }
    rsre_store_audit *a = (rsre_store_audit *)m;
    uint8_t hash[RSRE_STORE_HASH_LEN];
    int rc = 0;
    if (!canonical_bytes(m, v)) {
        /* Every byte counts, not just the hashed fields: the store writes each record with
         * protobuf-c's deterministic packing, so a stored value must be exactly that. */
        rc = broken(r, kseq, "record %llu is not in canonical encoding", kseq);
    } else if (a->seq != kseq) {
        rc = broken(r, kseq, "record under key %llu carries another seq", kseq);
    } else if (memcmp(a->prev_hash.data, prev, RSRE_STORE_HASH_LEN) != 0) {
        rc = broken(r, kseq, "record %llu does not link to its predecessor's hash", kseq);
    } else if (rsre_store_audit_hash(a, hash) != 0) {
        rc = broken(r, kseq, "record %llu could not be hashed", kseq);
    } else if (memcmp(hash, a->hash.data, RSRE_STORE_HASH_LEN) != 0) {
        rc = broken(r, kseq, "record %llu does not match its hash", kseq);
    } else {
        memcpy(hash_out, hash, RSRE_STORE_HASH_LEN);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* Compares the recorded head with the last record that verified. */
static int verify_head(rsre_store_txn *txn, struct rsre_store_audit_report *r) {
    ProtobufCMessage *m = NULL;
    MDB_val k = {strlen(RSRE__META_AUDIT_HEAD), RSRE__META_AUDIT_HEAD}, v;
    int mrc = mdb_get(txn->mdb, txn->store->dbi[RSRE__DB_META], &k, &v);
    if (mrc == MDB_NOTFOUND) {
        return r->count == 0 ? 0
                             : broken(r, r->head_seq, "chain head record is missing (log has %llu)",
                                      r->head_seq);
    }
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "get");
    }
    if (rsre__store_decode(RSRE__K_AUDIT_HEAD, v.mv_data, v.mv_size, &m) != 0) {
        return broken(r, r->head_seq + 1, "chain head record does not decode (log ends at %llu)",
                      r->head_seq);
    }
    RobotSre__Store__AuditHead *h = (RobotSre__Store__AuditHead *)m;
    int rc = 0;
    if (h->seq > r->head_seq) {
        rc = broken(r, r->head_seq + 1, "records after %llu are missing", r->head_seq);
        snprintf(r->reason + strlen(r->reason), sizeof(r->reason) - strlen(r->reason),
                 " (recorded head is %llu)", (unsigned long long)h->seq);
    } else if (h->seq < r->head_seq) {
        rc = broken(r, h->seq + 1, "record %llu is past the recorded head",
                    (unsigned long long)h->seq + 1);
    } else if (memcmp(h->hash.data, r->head_hash, RSRE_STORE_HASH_LEN) != 0) {
        rc = broken(r, h->seq, "record %llu does not match the recorded head hash",
                    (unsigned long long)h->seq);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int rsre_store_audit_verify(rsre_store *store, struct rsre_store_audit_report *report) {
    if (store == NULL || report == NULL) {
        return -EINVAL;
    }
    memset(report, 0, sizeof(*report));
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(store, 1, &txn);
    if (rc != 0) {
        return rc;
    }
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn->mdb, store->dbi[RSRE__DB_AUDIT], &cur);
    if (mrc != 0) {
        rc = rsre__store_txn_fail(txn, mrc, "cursor_open");
        rsre_store_txn_abort(txn);
        return rc;
    }
    uint8_t prev[RSRE_STORE_HASH_LEN];
    memcpy(prev, zero_hash, sizeof(prev));
    MDB_val k, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        uint8_t hash[RSRE_STORE_HASH_LEN];
        rc = verify_one(&k, &v, report->count + 1, prev, hash, report);
        if (rc != 0) {
            break;
        }
        report->count++;
        report->head_seq = report->count;
        memcpy(report->head_hash, hash, RSRE_STORE_HASH_LEN);
        memcpy(prev, hash, RSRE_STORE_HASH_LEN);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND) {
        rc = rsre__store_txn_fail(txn, mrc, "cursor_get");
    }
    if (rc == 0) {
        rc = verify_head(txn, report);
    }
    rsre_store_txn_abort(txn);
    if (rc == RSRE_ECHAIN) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "audit chain does not verify: dir=%s broken_seq=%llu %s",
                 store->dir, (unsigned long long)report->broken_seq, report->reason);
    }
    return rc;
}
