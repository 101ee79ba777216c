/*
 * libFuzzer target for the store's record decoders. Input: one selector byte, then the bytes
 * of a stored value. Every decode must return 0 or RSRE_ECORRUPT and never crash, leak or read
 * out of bounds. Two paths are exercised:
 *
 *   - rsre__store_decode() for every record kind; a value that decodes must re-encode and
 *     decode again, and an audit record must hash;
 *   - the public typed getters and iterators, with the bytes planted under a key in a real
 *     (never committed) LMDB transaction, which adds the key/record consistency checks.
 *
 * Build: CC=clang cmake -S . -B build-store-fuzz -DRSRE_FUZZ=ON
 *        cmake --build build-store-fuzz --target fuzz_store_records
 * Run:   ./build-store-fuzz/tests/fuzz_store_records -max_total_time=30 -max_len=4096
 */
#include "store/store.h"
#include "store/store_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static rsre_store *store;
static char dir[] = "/tmp/rsre-fuzz-store-XXXXXX";

static void cleanup(void) {
    char path[256];
    rsre_store_close(store);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    rsre_log_set_level_name("off");
    if (mkdtemp(dir) == NULL || rsre_store_open(dir, NULL, &store) != 0) {
        abort();
    }
    atexit(cleanup);
    return 0;
}

static void expect_ok_or_corrupt(int rc, const char *what) {
    if (rc != 0 && rc != RSRE_ECORRUPT && rc != RSRE_ENOTFOUND) {
        fprintf(stderr, "%s returned %d (%s)\n", what, rc, rsre_strerror(rc));
        abort();
    }
}

static void decode_path(int kind, const uint8_t *data, size_t size) {
    ProtobufCMessage *m = NULL;
    int rc = rsre__store_decode(kind, data, size, &m);
    if (rc != 0 && rc != RSRE_ECORRUPT) {
        fprintf(stderr, "decode kind=%d returned %d\n", kind, rc);
        abort();
    }
    if (rc != 0) {
        if (m != NULL) {
            abort();
        }
        return;
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        abort();
    }
    protobuf_c_message_pack(m, buf);
    /* A valid record must survive a round trip, and the re-encoding must be a fixed point
     * (the first encoding may differ: non-minimal varints, strings cut at an embedded NUL). */
    ProtobufCMessage *again = NULL;
    if (rsre__store_decode(kind, buf, n, &again) != 0) {
        abort();
    }
    size_t n2 = protobuf_c_message_get_packed_size(again);
    uint8_t *buf2 = malloc(n2 ? n2 : 1);
    if (buf2 == NULL) {
        abort();
    }
    protobuf_c_message_pack(again, buf2);
    if (n2 != n || memcmp(buf, buf2, n) != 0) {
        abort();
    }
    free(buf2);
    if (kind == RSRE__K_AUDIT) {
        uint8_t h[RSRE_STORE_HASH_LEN];
        if (rsre_store_audit_hash((rsre_store_audit *)m, h) != 0) {
            abort();
        }
    }
    protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    free(buf);
}

static int any_incident(const rsre_store_incident *r, void *ud) {
    (void)r;
    (void)ud;
    return 0;
}

static int any_evidence(const rsre_store_evidence *r, void *ud) {
    (void)r;
    (void)ud;
    return 0;
}

static int any_rule(const rsre_store_rule *r, void *ud) {
    (void)r;
    (void)ud;
    return 0;
}

static int any_audit(const rsre_store_audit *r, void *ud) {
    (void)r;
    (void)ud;
    return 0;
}

/* Plants `data` under a key of database `db` and reads it back through the public API. */
static void store_path(int sel, const uint8_t *data, size_t size) {
    static const uint8_t audit_key[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t rule_key[] = {'r', 0, 0, 0, 0, 1};
    static const struct {
        int db;
        const void *key;
        size_t klen;
    } plant[] = {
        {RSRE__DB_INCIDENTS, "inc-1", 5}, {RSRE__DB_EVIDENCE, "inc-1\0ev-1", 10},
        {RSRE__DB_ACTIONS, "act-1", 5},   {RSRE__DB_APPROVALS, "apr-1", 5},
        {RSRE__DB_RULES, rule_key, 6},    {RSRE__DB_AUDIT, audit_key, 8},
        {RSRE__DB_COOLDOWNS, "cd-1", 4},
    };
    int which = sel % (int)(sizeof(plant) / sizeof(plant[0]));
    rsre_store_txn *txn;
    if (rsre_store_txn_begin(store, 0, &txn) != 0) {
        abort();
    }
    MDB_val k = {plant[which].klen, (void *)plant[which].key};
    MDB_val v = {size, (void *)data};
    if (mdb_put(txn->mdb, store->dbi[plant[which].db], &k, &v, 0) != 0) {
        abort();
    }
    int rc;
    switch (plant[which].db) {
    case RSRE__DB_INCIDENTS: {
        rsre_store_incident *r;
        rc = rsre_store_incident_get(txn, "inc-1", &r);
        expect_ok_or_corrupt(rc, "incident_get");
        rsre_store_incident_free(r);
        expect_ok_or_corrupt(rsre_store_incident_foreach(txn, any_incident, NULL), "foreach");
        break;
    }
    case RSRE__DB_EVIDENCE: {
        rsre_store_evidence *r;
        rc = rsre_store_evidence_get(txn, "inc-1", "ev-1", &r);
        expect_ok_or_corrupt(rc, "evidence_get");
        rsre_store_evidence_free(r);
        expect_ok_or_corrupt(rsre_store_evidence_foreach(txn, "inc-1", any_evidence, NULL),
                             "foreach");
        break;
    }
    case RSRE__DB_ACTIONS: {
        rsre_store_action *r;
        rc = rsre_store_action_get(txn, "act-1", &r);
        expect_ok_or_corrupt(rc, "action_get");
        rsre_store_action_free(r);
        break;
    }
    case RSRE__DB_APPROVALS: {
        rsre_store_approval *r;
        rc = rsre_store_approval_get(txn, "apr-1", &r);
        expect_ok_or_corrupt(rc, "approval_get");
        rsre_store_approval_free(r);
        rsre_store_vote vote = ROBOT_SRE__STORE__VOTE__INIT;
        vote.operator_ = "fuzz";
        vote.vote = ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE;
        rc = rsre_store_approval_vote_add(txn, "apr-1", &vote);
        if (rc != RSRE_EEXIST && rc != RSRE_ELIMIT) {
            expect_ok_or_corrupt(rc, "vote_add");
        }
        break;
    }
    case RSRE__DB_RULES: {
        rsre_store_rule *r;
        rc = rsre_store_rule_get(txn, "r", 0, &r);
        expect_ok_or_corrupt(rc, "rule_get");
        rsre_store_rule_free(r);
        expect_ok_or_corrupt(rsre_store_rule_foreach(txn, NULL, any_rule, NULL), "foreach");
        break;
    }
    case RSRE__DB_AUDIT: {
        rsre_store_audit *r;
        rc = rsre_store_audit_get(txn, 1, &r);
        expect_ok_or_corrupt(rc, "audit_get");
        rsre_store_audit_free(r);
        expect_ok_or_corrupt(rsre_store_audit_foreach(txn, 0, any_audit, NULL), "foreach");
        break;
    }
    default: {
        rsre_store_cooldown *r;
        rc = rsre_store_cooldown_get(txn, "cd-1", &r);
        expect_ok_or_corrupt(rc, "cooldown_get");
        rsre_store_cooldown_free(r);
        expect_ok_or_corrupt(rsre_store_cooldown_active(txn, "cd-1", 0, NULL), "active");
        size_t removed;
        expect_ok_or_corrupt(rsre_store_cooldown_expire(txn, 0, &removed), "expire");
        break;
    }
    }
    rsre_store_txn_abort(txn); /* never committed: each input starts from the same store */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    int sel = data[0];
    data++;
    size--;
    decode_path(sel % RSRE__K_COUNT, data, size);
    if (size <= 64 * 1024) {
        store_path(sel / RSRE__K_COUNT, data, size);
    }
    return 0;
}
