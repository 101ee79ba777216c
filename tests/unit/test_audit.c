/*
 * Unit tests of the store's audit log: chaining, the documented hash format (recomputed here
 * independently), atomicity with the caller's transaction, and verification that pins the
 * first broken record after tampering, deletion and truncation done with raw LMDB.
 */
#include "store/store.h"

#include "common/error.h"
#include "common/log.h"

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_RECORDS 20

struct fixture {
    char dir[256];
    rsre_store *store;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-test-audit-XXXXXX");
    if (mkdtemp(f->dir) == NULL || rsre_store_open(f->dir, NULL, &f->store) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    rsre_store_close(f->store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static rsre_store_txn *begin(rsre_store *s, int rdonly) {
    rsre_store_txn *txn = NULL;
    assert_int_equal(rsre_store_txn_begin(s, rdonly, &txn), 0);
    return txn;
}

/* Appends N_RECORDS records over several transactions. */
static void append_records(struct fixture *f) {
    for (int t = 0; t < 4; t++) {
        rsre_store_txn *txn = begin(f->store, 0);
        for (int i = 0; i < N_RECORDS / 4; i++) {
            int n = t * (N_RECORDS / 4) + i + 1;
            char object[32], detail[64];
            snprintf(object, sizeof(object), "incident/inc-%d", n);
            snprintf(detail, sizeof(detail), "{\"n\":%d}", n);
            uint64_t seq = 0;
            assert_int_equal(rsre_store_audit_append(txn, n % 2 ? "robot" : "operator:alice",
                                                     "incident.transition", object,
                                                     n % 3 ? "confidence high" : NULL, detail,
                                                     1700000000000 + n, &seq),
                             0);
            assert_int_equal(seq, (uint64_t)n);
        }
        assert_int_equal(rsre_store_txn_commit(txn), 0);
    }
}

/* The documented format, recomputed without the store's code. */
static void be(uint8_t *p, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void expected_hash(const rsre_store_audit *a, uint8_t out[32]) {
    uint8_t buf[4096];
    size_t o = 0;
    memcpy(buf + o, a->prev_hash.data, 32);
    o += 32;
    memcpy(buf + o, "rsre.audit.v1", 13);
    o += 13;
    be(buf + o, a->seq, 8);
    o += 8;
    be(buf + o, (uint64_t)a->ts_ms, 8);
    o += 8;
    const char *fields[] = {a->actor, a->verb, a->object, a->reason, a->detail};
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(fields[i]);
        be(buf + o, n, 4);
        o += 4;
        memcpy(buf + o, fields[i], n);
        o += n;
    }
    be(buf + o, 32, 4);
    o += 4;
    memcpy(buf + o, a->prev_hash.data, 32);
    o += 32;
    unsigned int len = 0;
    assert_true(EVP_Digest(buf, o, out, &len, EVP_sha256(), NULL));
    assert_int_equal(len, 32);
}

static void test_chain_links_and_format(void **state) {
    struct fixture *f = *state;
    append_records(f);
    static const uint8_t zeros[32];
    uint8_t prev[32];
    memcpy(prev, zeros, 32);
    rsre_store_txn *txn = begin(f->store, 1);
    for (uint64_t seq = 1; seq <= N_RECORDS; seq++) {
        rsre_store_audit *a;
        assert_int_equal(rsre_store_audit_get(txn, seq, &a), 0);
        assert_int_equal(a->seq, seq);
        assert_int_equal(a->prev_hash.len, 32);
        assert_memory_equal(a->prev_hash.data, prev, 32);
        uint8_t want[32], got[32];
        expected_hash(a, want);
        assert_memory_equal(a->hash.data, want, 32);
        assert_int_equal(rsre_store_audit_hash(a, got), 0);
        assert_memory_equal(got, want, 32);
        memcpy(prev, a->hash.data, 32);
        if (seq == 3) {
            assert_string_equal(a->reason, ""); /* NULL reason stored as empty */
            assert_string_equal(a->actor, "robot");
            assert_string_equal(a->object, "incident/inc-3");
            assert_int_equal(a->ts_ms, 1700000000003);
        }
        rsre_store_audit_free(a);
    }
    rsre_store_audit *a;
    assert_int_equal(rsre_store_audit_get(txn, N_RECORDS + 1, &a), RSRE_ENOTFOUND);
    assert_int_equal(rsre_store_audit_get(txn, 0, &a), RSRE_ENOTFOUND);
    rsre_store_txn_abort(txn);

    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_int_equal(rep.count, N_RECORDS);
    assert_int_equal(rep.head_seq, N_RECORDS);
    assert_int_equal(rep.broken_seq, 0);
    assert_memory_equal(rep.head_hash, prev, 32);
    assert_string_equal(rep.reason, "");
}

static void test_empty_log_verifies(void **state) {
    struct fixture *f = *state;
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_int_equal(rep.count, 0);
    assert_int_equal(rep.head_seq, 0);
}

static int collect_seq(const rsre_store_audit *a, void *ud) {
    uint64_t *seqs = ud;
    seqs[++seqs[0]] = a->seq;
    return 0;
}

static void test_atomic_with_caller_txn(void **state) {
    struct fixture *f = *state;
    append_records(f);
    /* An aborted transaction takes its audit record and the state change with it. */
    rsre_store_txn *txn = begin(f->store, 0);
    rsre_store_incident inc = ROBOT_SRE__STORE__INCIDENT__INIT;
    inc.id = "inc-aborted";
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), 0);
    uint64_t seq;
    assert_int_equal(
        rsre_store_audit_append(txn, "robot", "incident.open", "inc-aborted", NULL, NULL, 5, &seq),
        0);
    assert_int_equal(seq, N_RECORDS + 1);
    rsre_store_txn_abort(txn);

    txn = begin(f->store, 0);
    rsre_store_incident *got;
    assert_int_equal(rsre_store_incident_get(txn, "inc-aborted", &got), RSRE_ENOTFOUND);
    assert_int_equal(
        rsre_store_audit_append(txn, "robot", "incident.open", "inc-kept", NULL, NULL, 6, &seq), 0);
    assert_int_equal(seq, N_RECORDS + 1); /* the aborted number is reused */
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    txn = begin(f->store, 1);
    uint64_t seqs[64] = {0};
    assert_int_equal(rsre_store_audit_foreach(txn, N_RECORDS - 1, collect_seq, seqs), 0);
    assert_int_equal(seqs[0], 3);
    assert_int_equal(seqs[1], N_RECORDS - 1);
    assert_int_equal(seqs[3], N_RECORDS + 1);
    rsre_store_audit *a;
    assert_int_equal(rsre_store_audit_get(txn, N_RECORDS + 1, &a), 0);
    assert_string_equal(a->object, "inc-kept");
    rsre_store_audit_free(a);
    rsre_store_txn_abort(txn);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_int_equal(rep.count, N_RECORDS + 1);
}

static void test_append_validation(void **state) {
    struct fixture *f = *state;
    rsre_store_txn *txn = begin(f->store, 1);
    assert_int_equal(rsre_store_audit_append(txn, "a", "b", "c", NULL, NULL, 0, NULL), -EROFS);
    rsre_store_txn_abort(txn);
    txn = begin(f->store, 0);
    assert_int_equal(rsre_store_audit_append(txn, "", "b", "c", NULL, NULL, 0, NULL),
                     RSRE_EINVALID);
    assert_int_equal(rsre_store_audit_append(txn, "a", NULL, "c", NULL, NULL, 0, NULL),
                     RSRE_EINVALID);
    assert_int_equal(rsre_store_audit_append(txn, "a", "b", NULL, NULL, NULL, 0, NULL),
                     RSRE_EINVALID);
    char *big = malloc(64 * 1024 + 2);
    memset(big, 'x', 64 * 1024 + 1);
    big[64 * 1024 + 1] = '\0';
    assert_int_equal(rsre_store_audit_append(txn, "a", "b", "c", NULL, big, 0, NULL), RSRE_ELIMIT);
    big[64 * 1024] = '\0';
    assert_int_equal(rsre_store_audit_append(txn, "a", "b", "c", NULL, big, 0, NULL), 0);
    big[1025] = '\0';
    assert_int_equal(rsre_store_audit_append(txn, big, "b", "c", NULL, NULL, 0, NULL), RSRE_ELIMIT);
    free(big);
    /* Negative timestamps are hashed as two's complement and round-trip. */
    uint64_t seq;
    assert_int_equal(rsre_store_audit_append(txn, "a", "b", "c", "r", "d", -5, &seq), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_int_equal(rep.count, 2);
}

/* --- tampering with raw LMDB ---------------------------------------------------------------- */

struct raw {
    struct fixture *f;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi audit, meta;
};

/* Closes the store and opens its environment with raw LMDB (one process must never have the
 * same LMDB file open twice); raw_close() commits and reopens the store. */
static void raw_open(struct raw *r, struct fixture *f) {
    rsre_store_close(f->store);
    f->store = NULL;
    r->f = f;
    const char *dir = f->dir;
    assert_int_equal(mdb_env_create(&r->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(r->env, 16), 0);
    assert_int_equal(mdb_env_open(r->env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
    assert_int_equal(mdb_dbi_open(r->txn, "audit", 0, &r->audit), 0);
    assert_int_equal(mdb_dbi_open(r->txn, "meta", 0, &r->meta), 0);
}

static void raw_close(struct raw *r) {
    assert_int_equal(mdb_txn_commit(r->txn), 0);
    mdb_env_close(r->env);
    assert_int_equal(rsre_store_open(r->f->dir, NULL, &r->f->store), 0);
}

static MDB_val seq_key(uint8_t *buf, uint64_t seq) {
    be(buf, seq, 8);
    MDB_val k = {8, buf};
    return k;
}

/* Returns a malloc'd copy of record `seq`'s stored bytes. */
static uint8_t *raw_record(struct raw *r, uint64_t seq, size_t *len) {
    uint8_t kb[8];
    MDB_val k = seq_key(kb, seq), v;
    assert_int_equal(mdb_get(r->txn, r->audit, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    *len = v.mv_size;
    return copy;
}

static void raw_set(struct raw *r, uint64_t seq, const uint8_t *val, size_t len) {
    uint8_t kb[8];
    MDB_val k = seq_key(kb, seq), v = {len, (void *)val};
    assert_int_equal(mdb_put(r->txn, r->audit, &k, &v, 0), 0);
}

static void expect_broken_at(struct fixture *f, uint64_t seq) {
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), RSRE_ECHAIN);
    if (rep.broken_seq != seq) {
        print_error("broken_seq=%llu want %llu reason=%s\n", (unsigned long long)rep.broken_seq,
                    (unsigned long long)seq, rep.reason);
    }
    assert_int_equal(rep.broken_seq, seq);
    assert_int_equal(rep.count, seq - 1);
    assert_true(rep.reason[0] != '\0');
}

static void test_tamper_every_byte(void **state) {
    struct fixture *f = *state;
    append_records(f);
    const uint64_t victim = 7;
    struct raw r;
    raw_open(&r, f);
    size_t len;
    uint8_t *orig = raw_record(&r, victim, &len);
    raw_close(&r);

    /* Flip each byte of record 7 in turn (three different ways); every change must be
     * pinned to exactly record 7, whether it breaks decoding, a field, or a hash. */
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    uint8_t *bad = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            memcpy(bad, orig, len);
            bad[i] ^= masks[m];
            raw_open(&r, f);
            raw_set(&r, victim, bad, len);
            raw_close(&r);
            expect_broken_at(f, victim);
        }
    }
    /* Restored: verifies again. */
    raw_open(&r, f);
    raw_set(&r, victim, orig, len);
    raw_close(&r);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_int_equal(rep.count, N_RECORDS);
    /* Appending a byte, or replacing record 7 by record 8's bytes, also pins 7. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, orig, len);
    longer[len] = 0;
    raw_open(&r, f);
    raw_set(&r, victim, longer, len + 1);
    raw_close(&r);
    expect_broken_at(f, victim);
    raw_open(&r, f);
    size_t len8;
    uint8_t *rec8 = raw_record(&r, victim + 1, &len8);
    raw_set(&r, victim, rec8, len8);
    raw_close(&r);
    expect_broken_at(f, victim);
    free(rec8);
    free(longer);
    free(bad);
    free(orig);
}

static void test_rewritten_record_with_valid_hash(void **state) {
    struct fixture *f = *state;
    append_records(f);
    /* An attacker rewrites record 5 and recomputes its own hash correctly: record 6 no longer
     * links to it, and that is where the chain breaks. */
    struct raw r;
    raw_open(&r, f);
    size_t len;
    uint8_t *orig = raw_record(&r, 5, &len);
    rsre_store_audit *a = robot_sre__store__audit_record__unpack(NULL, len, orig);
    assert_non_null(a);
    char *actor = a->actor;
    a->actor = "someone-else";
    uint8_t h[32];
    assert_int_equal(rsre_store_audit_hash(a, h), 0);
    memcpy(a->hash.data, h, 32);
    uint8_t buf[4096];
    size_t n = robot_sre__store__audit_record__pack(a, buf);
    a->actor = actor;
    raw_set(&r, 5, buf, n);
    raw_close(&r);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), RSRE_ECHAIN);
    assert_int_equal(rep.broken_seq, 6);
    robot_sre__store__audit_record__free_unpacked(a, NULL);
    free(orig);
}

static void test_deleted_and_truncated(void **state) {
    struct fixture *f = *state;
    append_records(f);
    struct raw r;
    uint8_t kb[8];

    /* The last record removed: the recorded head exposes it. */
    raw_open(&r, f);
    size_t len;
    uint8_t *last = raw_record(&r, N_RECORDS, &len);
    MDB_val k = seq_key(kb, N_RECORDS);
    assert_int_equal(mdb_del(r.txn, r.audit, &k, NULL), 0);
    raw_close(&r);
    expect_broken_at(f, N_RECORDS);

    /* And appends refuse to paper over it. */
    rsre_store_txn *txn = begin(f->store, 0);
    assert_int_equal(rsre_store_audit_append(txn, "a", "b", "c", NULL, NULL, 0, NULL), RSRE_ECHAIN);
    rsre_store_txn_abort(txn);
    raw_open(&r, f);
    raw_set(&r, N_RECORDS, last, len);
    raw_close(&r);
    free(last);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);

    /* A record in the middle removed. */
    raw_open(&r, f);
    k = seq_key(kb, 4);
    assert_int_equal(mdb_del(r.txn, r.audit, &k, NULL), 0);
    raw_close(&r);
    expect_broken_at(f, 4);
}

static void test_head_tampered_or_missing(void **state) {
    struct fixture *f = *state;
    append_records(f);
    struct raw r;
    raw_open(&r, f);
    MDB_val k = {10, "audit_head"}, v;
    assert_int_equal(mdb_get(r.txn, r.meta, &k, &v), 0);
    uint8_t head[128];
    size_t hlen = v.mv_size;
    memcpy(head, v.mv_data, hlen);
    uint8_t bad[128];
    memcpy(bad, head, hlen);
    bad[hlen - 1] ^= 1; /* last byte of the head hash */
    MDB_val nv = {hlen, bad};
    assert_int_equal(mdb_put(r.txn, r.meta, &k, &nv, 0), 0);
    raw_close(&r);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), RSRE_ECHAIN);
    assert_int_equal(rep.broken_seq, N_RECORDS);
    assert_int_equal(rep.count, N_RECORDS); /* the records are fine; the head is not */

    raw_open(&r, f);
    assert_int_equal(mdb_del(r.txn, r.meta, &k, NULL), 0);
    raw_close(&r);
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), RSRE_ECHAIN);
    assert_int_equal(rep.broken_seq, N_RECORDS);
    rsre_store_txn *txn = begin(f->store, 0);
    assert_int_equal(rsre_store_audit_append(txn, "a", "b", "c", NULL, NULL, 0, NULL), RSRE_ECHAIN);
    rsre_store_txn_abort(txn);
}

int main(void) {
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "off");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_links_and_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_log_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_with_caller_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_record_with_valid_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_and_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_tampered_or_missing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
