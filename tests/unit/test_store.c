/*
 * Unit tests of the LMDB store: record round trips, ownership across transactions, corrupt
 * records, schema checks and migrations, map-full recovery, limits and online backup. Raw
 * LMDB is used only to damage stores the way a disk or a bug would.
 */
#include "store/store.h"
#include "store/store_internal.h"

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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- helpers -------------------------------------------------------------------------------- */

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

static void rm_rf(const char *dir) {
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-test-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    if (rsre_store_open(f->dir, NULL, &f->store) != 0) {
        rm_rf(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    rsre_store_close(f->store);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f) {
    rsre_store_close(f->store);
    f->store = NULL;
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
}

/* Writes `val` under `key` in database `db` of the LMDB environment in `dir`, bypassing the
 * store (which must be closed). `val` NULL deletes the key. */
static void raw_put(const char *dir, const char *db, const void *key, size_t klen, const void *val,
                    size_t vlen) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    if (val != NULL) {
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    } else {
        assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Reads the raw value under `key` into a malloc'd buffer. */
static void *raw_get(const char *dir, const char *db, const void *key, size_t klen, size_t *vlen) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    MDB_val k = {klen, (void *)key}, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    void *copy = malloc(v.mv_size ? v.mv_size : 1);
    memcpy(copy, v.mv_data, v.mv_size);
    *vlen = v.mv_size;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return copy;
}

static rsre_store_txn *begin(rsre_store *s, int rdonly) {
    rsre_store_txn *txn = NULL;
    assert_int_equal(rsre_store_txn_begin(s, rdonly, &txn), 0);
    assert_non_null(txn);
    return txn;
}

/* A fully populated incident; strings point into static storage. */
static void fill_incident(rsre_store_incident *inc, RobotSre__Store__ResourceRef *refs,
                          RobotSre__Store__ResourceRef **ref_ptrs, const char *id) {
    static char *signals[] = {"node_condition.DiskPressure", "kube_event.EvictionThresholdMet"};
    static char *evidence[] = {"ev-1", "ev-2", "ev-3"};
    static char *recommended[] = {"delete_completed_pods", "cordon_node"};
    static char *executed[] = {"act-1"};
    rsre_store_incident init = ROBOT_SRE__STORE__INCIDENT__INIT;
    *inc = init;
    inc->id = (char *)id;
    inc->fingerprint = "node_disk_pressure/node=10.0.10.202";
    inc->domain = "infrastructure";
    inc->incident_type = "node_disk_pressure";
    inc->severity = ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL;
    inc->confidence = ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_HIGH;
    inc->confidence_score = 0.93;
    inc->lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_CONTAINED;
    inc->n_signal_sources = 2;
    inc->signal_sources = signals;
    for (int i = 0; i < 2; i++) {
        RobotSre__Store__ResourceRef r = ROBOT_SRE__STORE__RESOURCE_REF__INIT;
        refs[i] = r;
        ref_ptrs[i] = &refs[i];
    }
    refs[0].kind = "Node";
    refs[0].name = "10.0.10.202";
    refs[1].kind = "Pod";
    refs[1].k8s_namespace = "tekton-pipelines";
    refs[1].name = "build-7";
    refs[1].node = "10.0.10.202";
    inc->n_resource_scope = 2;
    inc->resource_scope = ref_ptrs;
    inc->environment = ROBOT_SRE__STORE__ENVIRONMENT__ENVIRONMENT_STAGING;
    inc->evidence_summary = "DiskPressure=True for 17m; nodefs 91% used";
    inc->n_raw_evidence_refs = 3;
    inc->raw_evidence_refs = evidence;
    inc->n_recommended_actions = 2;
    inc->recommended_actions = recommended;
    inc->n_executed_actions = 1;
    inc->executed_actions = executed;
    inc->approval_state = ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING;
    inc->opened_at_ms = 1700000000000;
    inc->updated_at_ms = 1700000060000;
    inc->resolved_at_ms = 0;
    inc->rule_id = "builtin.node_disk_pressure";
    inc->rule_version = 3;
    inc->cluster = "oke-demo";
}

/* Compares two messages by their encodings (protobuf-c packs deterministically). */
static void assert_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b) {
    size_t na = protobuf_c_message_get_packed_size(a);
    size_t nb = protobuf_c_message_get_packed_size(b);
    assert_int_equal(na, nb);
    uint8_t *ba = malloc(na + 1), *bb = malloc(nb + 1);
    protobuf_c_message_pack(a, ba);
    protobuf_c_message_pack(b, bb);
    assert_memory_equal(ba, bb, na);
    free(ba);
    free(bb);
}

/* --- open / schema -------------------------------------------------------------------------- */

static void test_open_fresh_info(void **state) {
    struct fixture *f = *state;
    struct rsre_store_info info;
    assert_int_equal(rsre_store_info(f->store, &info), 0);
    assert_int_equal(info.schema_version, RSRE_STORE_SCHEMA_VERSION);
    assert_true(info.map_size >= RSRE_STORE_MAP_SIZE_DEFAULT);
    assert_true(info.map_used > 0 && info.map_used < info.map_size);
    assert_int_equal(info.incidents, 0);
    assert_int_equal(info.audit, 0);
    reopen(f);
    assert_int_equal(rsre_store_info(f->store, &info), 0);
    assert_int_equal(info.schema_version, RSRE_STORE_SCHEMA_VERSION);
    rsre_store_close(NULL);
    rsre_store_txn_abort(NULL);
}

static void put_meta_version(const char *dir, uint32_t version) {
    RobotSre__Store__Meta meta = ROBOT_SRE__STORE__META__INIT;
    meta.schema_version = version;
    meta.created_by = "a future binary";
    uint8_t buf[256];
    size_t n = robot_sre__store__meta__pack(&meta, buf);
    raw_put(dir, "meta", "schema", 6, buf, n);
}

static void test_schema_newer_refused(void **state) {
    struct fixture *f = *state;
    rsre_store_close(f->store);
    f->store = NULL;
    put_meta_version(f->dir, RSRE_STORE_SCHEMA_VERSION + 1);
    rsre_store *s = NULL;
    assert_int_equal(rsre_store_open(f->dir, NULL, &s), RSRE_ESCHEMA);
    assert_null(s);
    struct rsre_store_options ro = {.read_only = 1};
    assert_int_equal(rsre_store_open(f->dir, &ro, &s), RSRE_ESCHEMA);
    /* Version 0 predates every migration hook: refused too. */
    put_meta_version(f->dir, 0);
    assert_int_equal(rsre_store_open(f->dir, NULL, &s), RSRE_ESCHEMA);
    /* Garbage schema record. */
    raw_put(f->dir, "meta", "schema", 6, "\xff\xff\xff", 3);
    assert_int_equal(rsre_store_open(f->dir, NULL, &s), RSRE_ECORRUPT);
    /* Missing schema record in an existing store. */
    raw_put(f->dir, "meta", "schema", 6, NULL, 0);
    assert_int_equal(rsre_store_open(f->dir, NULL, &s), RSRE_ESCHEMA);
    /* Back to the right version: opens again. */
    put_meta_version(f->dir, RSRE_STORE_SCHEMA_VERSION);
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
}

static void test_schema_foreign_lmdb(void **state) {
    (void)state;
    char dir[] = "/tmp/rsre-test-foreign-XXXXXX";
    assert_non_null(mkdtemp(dir));
    raw_put(dir, NULL, "somebody-else", 13, "x", 1);
    rsre_store *s = NULL;
    assert_int_equal(rsre_store_open(dir, NULL, &s), RSRE_ESCHEMA);
    rm_rf(dir);
    /* Read-only open of a directory with no store. */
    char empty[] = "/tmp/rsre-test-empty-XXXXXX";
    assert_non_null(mkdtemp(empty));
    struct rsre_store_options ro = {.read_only = 1};
    assert_int_not_equal(rsre_store_open(empty, &ro, &s), 0);
    assert_null(s);
    rm_rf(empty);
}

static int hook_calls[4];
static int hook_n;

static int hook_1(rsre_store_txn *txn) {
    hook_calls[hook_n++] = 1;
    return rsre_store_cooldown_set(txn, "migrated-1", 1, "migration", 0);
}

static int hook_2(rsre_store_txn *txn) {
    (void)txn;
    hook_calls[hook_n++] = 2;
    return 0;
}

static void test_migration_hooks(void **state) {
    struct fixture *f = *state;
    static const struct rsre__store_migration table[] = {
        {2, "second step", hook_2},
        {1, "first step", hook_1},
    };
    rsre_store_txn *txn = begin(f->store, 0);
    hook_n = 0;
    assert_int_equal(rsre__store_migrate(txn, 1, 3, table, 2), 0);
    assert_int_equal(hook_n, 2);
    assert_int_equal(hook_calls[0], 1);
    assert_int_equal(hook_calls[1], 2);
    rsre_store_cooldown *c;
    assert_int_equal(rsre_store_cooldown_get(txn, "migrated-1", &c), 0);
    rsre_store_cooldown_free(c);
    /* A missing step refuses the whole migration. */
    hook_n = 0;
    assert_int_equal(rsre__store_migrate(txn, 1, 4, table, 2), RSRE_ESCHEMA);
    rsre_store_txn_abort(txn);
}

/* --- round trips ---------------------------------------------------------------------------- */

static int count_incident(const rsre_store_incident *rec, void *ud) {
    (void)rec;
    (*(int *)ud)++;
    return 0;
}

static int stop_after_one(const rsre_store_incident *rec, void *ud) {
    (void)rec;
    (*(int *)ud)++;
    return 1;
}

static int fail_incident(const rsre_store_incident *rec, void *ud) {
    (void)rec;
    (void)ud;
    return -ECANCELED;
}

static void test_incident_roundtrip(void **state) {
    struct fixture *f = *state;
    rsre_store_incident inc;
    RobotSre__Store__ResourceRef refs[2], *ref_ptrs[2];
    fill_incident(&inc, refs, ref_ptrs, "inc-1");

    rsre_store_txn *txn = begin(f->store, 0);
    assert_int_equal(rsre_store_incident_put(txn, &inc, RSRE_STORE_NOOVERWRITE), 0);
    assert_int_equal(rsre_store_incident_put(txn, &inc, RSRE_STORE_NOOVERWRITE), RSRE_EEXIST);
    inc.id = "inc-2";
    inc.lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_OBSERVED;
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), 0);
    /* EEXIST did not poison the transaction. */
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    inc.id = "inc-1";
    inc.lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_CONTAINED;

    reopen(f);
    txn = begin(f->store, 1);
    rsre_store_incident *got = NULL;
    assert_int_equal(rsre_store_incident_get(txn, "inc-1", &got), 0);
    rsre_store_incident *missing = (void *)1;
    assert_int_equal(rsre_store_incident_get(txn, "inc-404", &missing), RSRE_ENOTFOUND);
    assert_null(missing);
    int n = 0;
    assert_int_equal(rsre_store_incident_foreach(txn, count_incident, &n), 0);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(rsre_store_incident_foreach(txn, stop_after_one, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rsre_store_incident_foreach(txn, fail_incident, NULL), -ECANCELED);
    rsre_store_txn_abort(txn);

    /* The decoded copy is the caller's and outlives the transaction. */
    assert_msg_equal(&got->base, &inc.base);
    assert_string_equal(got->resource_scope[1]->k8s_namespace, "tekton-pipelines");
    assert_int_equal(got->n_raw_evidence_refs, 3);
    assert_true(got->confidence_score > 0.92 && got->confidence_score < 0.94);
    rsre_store_incident_free(got);
    rsre_store_incident_free(NULL);

    /* Replace in place. */
    txn = begin(f->store, 0);
    inc.lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED;
    inc.resolved_at_ms = 1700000900000;
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    txn = begin(f->store, 1);
    assert_int_equal(rsre_store_incident_get(txn, "inc-1", &got), 0);
    rsre_store_txn_abort(txn);
    assert_int_equal(got->lifecycle, ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED);
    assert_msg_equal(&got->base, &inc.base);
    rsre_store_incident_free(got);
}

struct ev_seen {
    int n;
    char ids[8][32];
};

static int collect_evidence(const rsre_store_evidence *rec, void *ud) {
    struct ev_seen *s = ud;
    snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s/%s", rec->incident_id, rec->id);
    return 0;
}

static void test_evidence_roundtrip(void **state) {
    struct fixture *f = *state;
    static const uint8_t raw[] = {0x00, 0x01, 0xff, 'k', 'm', 's', 'g', 0x00};
    const char *pairs[][2] = {
        {"inc-1", "ev-b"}, {"inc-1", "ev-a"}, {"inc-10", "ev-a"}, {"inc-2", "ev-z"}};
    rsre_store_txn *txn = begin(f->store, 0);
    for (size_t i = 0; i < 4; i++) {
        rsre_store_evidence ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
        ev.incident_id = (char *)pairs[i][0];
        ev.id = (char *)pairs[i][1];
        ev.source = "agent/kmsg";
        ev.kind = "kmsg.oom_kill";
        ev.observed_at_ms = 1700000000000 + (int64_t)i;
        ev.summary = "oom-kill in build-7";
        ev.raw.data = (uint8_t *)raw;
        ev.raw.len = sizeof(raw);
        assert_int_equal(rsre_store_evidence_put(txn, &ev, RSRE_STORE_NOOVERWRITE), 0);
    }
    rsre_store_evidence bad = ROBOT_SRE__STORE__EVIDENCE__INIT;
    bad.id = "ev-x";
    assert_int_equal(rsre_store_evidence_put(txn, &bad, 0), RSRE_EINVALID);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    txn = begin(f->store, 1);
    struct ev_seen seen = {0};
    assert_int_equal(rsre_store_evidence_foreach(txn, "inc-1", collect_evidence, &seen), 0);
    assert_int_equal(seen.n, 2); /* not inc-10's */
    assert_string_equal(seen.ids[0], "inc-1/ev-a");
    assert_string_equal(seen.ids[1], "inc-1/ev-b");
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(rsre_store_evidence_foreach(txn, "inc-3", collect_evidence, &seen), 0);
    assert_int_equal(seen.n, 0);
    rsre_store_evidence *ev;
    assert_int_equal(rsre_store_evidence_get(txn, "inc-1", "ev-c", &ev), RSRE_ENOTFOUND);
    assert_int_equal(rsre_store_evidence_get(txn, "inc-10", "ev-a", &ev), 0);
    rsre_store_txn_abort(txn);
    assert_int_equal(ev->raw.len, sizeof(raw));
    assert_memory_equal(ev->raw.data, raw, sizeof(raw));
    assert_string_equal(ev->kind, "kmsg.oom_kill");
    assert_int_equal(ev->observed_at_ms, 1700000000002);
    rsre_store_evidence_free(ev);
}

static int collect_action(const rsre_store_action *rec, void *ud) {
    struct ev_seen *s = ud;
    snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s", rec->id);
    return 0;
}

static void test_action_roundtrip(void **state) {
    struct fixture *f = *state;
    static char *reasons[] = {"auto-allowed: contain on allowlisted target",
                              "confidence high (0.93)"};
    rsre_store_action a = ROBOT_SRE__STORE__ACTION_RECORD__INIT;
    a.id = "act-1";
    a.incident_id = "inc-1";
    a.action_id = "delete_completed_pods";
    a.action_class = "contain";
    a.target = "namespace/tekton-pipelines";
    a.decision = ROBOT_SRE__STORE__DECISION__DECISION_AUTO;
    a.n_reasons = 2;
    a.reasons = reasons;
    a.state = ROBOT_SRE__STORE__ACTION_STATE__ACTION_STATE_SUCCEEDED;
    a.requested_by = "robot";
    a.dry_run = 1;
    a.result = "deleted 42 pods";
    a.bytes_freed = 12345678901ull;
    a.objects_removed = 42;
    a.created_at_ms = 1;
    a.started_at_ms = 2;
    a.finished_at_ms = 3;
    rsre_store_txn *txn = begin(f->store, 0);
    assert_int_equal(rsre_store_action_put(txn, &a, 0), 0);
    a.id = "act-2";
    a.incident_id = "inc-2";
    assert_int_equal(rsre_store_action_put(txn, &a, 0), 0);
    a.id = "act-3";
    a.incident_id = "inc-1";
    assert_int_equal(rsre_store_action_put(txn, &a, 0), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    txn = begin(f->store, 1);
    struct ev_seen seen = {0};
    assert_int_equal(rsre_store_action_foreach(txn, "inc-1", collect_action, &seen), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.ids[0], "act-1");
    assert_string_equal(seen.ids[1], "act-3");
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(rsre_store_action_foreach(txn, NULL, collect_action, &seen), 0);
    assert_int_equal(seen.n, 3);
    rsre_store_action *got;
    assert_int_equal(rsre_store_action_get(txn, "act-3", &got), 0);
    rsre_store_txn_abort(txn);
    assert_msg_equal(&got->base, &a.base);
    assert_int_equal(got->bytes_freed, 12345678901ull);
    rsre_store_action_free(got);
}

static int count_approval(const rsre_store_approval *rec, void *ud) {
    (void)rec;
    (*(int *)ud)++;
    return 0;
}

static void test_approval_votes(void **state) {
    struct fixture *f = *state;
    rsre_store_approval ap = ROBOT_SRE__STORE__APPROVAL__INIT;
    ap.id = "apr-1";
    ap.action_id = "act-9";
    ap.incident_id = "inc-1";
    ap.requester = "robot";
    ap.prompt = "Robot SRE requests approval: reboot worker 10.0.10.202. ...";
    ap.action = "reboot_worker";
    ap.target = "10.0.10.202";
    ap.why_now = "disk pressure persists after cleanup for 17m";
    ap.expected_impact = "pods on that node will reschedule";
    ap.rollback = "replace worker from node pool if reboot does not clear pressure";
    ap.quorum = 1;
    ap.requested_at_ms = 1000;
    ap.expires_at_ms = 601000;
    ap.state = ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING;
    rsre_store_txn *txn = begin(f->store, 0);
    assert_int_equal(rsre_store_approval_put(txn, &ap, RSRE_STORE_NOOVERWRITE), 0);

    rsre_store_vote v = ROBOT_SRE__STORE__VOTE__INIT;
    v.operator_ = "alice";
    v.vote = ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE;
    v.channel = "telegram";
    v.at_ms = 2000;
    assert_int_equal(rsre_store_approval_vote_add(txn, "apr-1", &v), 0);
    assert_int_equal(rsre_store_approval_vote_add(txn, "apr-1", &v), RSRE_EEXIST);
    v.operator_ = "bob";
    v.vote = ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_DENY;
    v.channel = "ui";
    v.comment = "not during business hours";
    assert_int_equal(rsre_store_approval_vote_add(txn, "apr-1", &v), 0);
    assert_int_equal(rsre_store_approval_vote_add(txn, "apr-404", &v), RSRE_ENOTFOUND);
    v.operator_ = "";
    assert_int_equal(rsre_store_approval_vote_add(txn, "apr-1", &v), RSRE_EINVALID);
    v.operator_ = "carol";
    v.vote = ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_UNSPECIFIED;
    assert_int_equal(rsre_store_approval_vote_add(txn, "apr-1", &v), RSRE_EINVALID);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    reopen(f);
    txn = begin(f->store, 1);
    rsre_store_approval *got;
    assert_int_equal(rsre_store_approval_get(txn, "apr-1", &got), 0);
    int n = 0;
    assert_int_equal(rsre_store_approval_foreach(txn, count_approval, &n), 0);
    assert_int_equal(n, 1);
    rsre_store_txn_abort(txn);
    assert_int_equal(got->n_votes, 2);
    assert_string_equal(got->votes[0]->operator_, "alice");
    assert_int_equal(got->votes[0]->vote, ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE);
    assert_string_equal(got->votes[0]->channel, "telegram");
    assert_int_equal(got->votes[0]->at_ms, 2000);
    assert_string_equal(got->votes[1]->operator_, "bob");
    assert_string_equal(got->votes[1]->comment, "not during business hours");
    assert_string_equal(got->rollback, ap.rollback);
    assert_int_equal(got->expires_at_ms, 601000);
    got->n_votes = 0; /* compare the rest with the original */
    rsre_store_vote **votes = got->votes;
    got->votes = NULL;
    assert_msg_equal(&got->base, &ap.base);
    got->votes = votes;
    got->n_votes = 2;
    rsre_store_approval_free(got);
}

struct rule_seen {
    int n;
    uint32_t versions[8];
    char ids[8][32];
};

static int collect_rule(const rsre_store_rule *rec, void *ud) {
    struct rule_seen *s = ud;
    s->versions[s->n] = rec->version;
    snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s", rec->rule_id);
    return 0;
}

static void put_rule(rsre_store_txn *txn, const char *id, uint32_t version, int expect) {
    rsre_store_rule r = ROBOT_SRE__STORE__RULE_VERSION__INIT;
    char yaml[64];
    snprintf(yaml, sizeof(yaml), "id: %s\nversion: %u\n", id, version);
    r.rule_id = (char *)id;
    r.version = version;
    r.yaml = yaml;
    r.author = "alice";
    r.created_at_ms = version * 1000;
    r.enabled_demo = 1;
    r.enabled_staging = version % 2;
    r.comment = "raise threshold";
    assert_int_equal(rsre_store_rule_put(txn, &r), expect);
}

static void test_rule_versions(void **state) {
    struct fixture *f = *state;
    rsre_store_txn *txn = begin(f->store, 0);
    put_rule(txn, "disk", 1, 0);
    put_rule(txn, "disk", 2, 0);
    put_rule(txn, "disk", 256, 0);
    put_rule(txn, "disk", 2, RSRE_EEXIST); /* versions are immutable */
    put_rule(txn, "disk", 0, RSRE_EINVALID);
    put_rule(txn, "disk_x", 7, 0); /* shares a prefix with "disk" */
    put_rule(txn, "dis", 9, 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    txn = begin(f->store, 1);
    rsre_store_rule *r;
    assert_int_equal(rsre_store_rule_get(txn, "disk", 0, &r), 0);
    assert_int_equal(r->version, 256);
    assert_string_equal(r->yaml, "id: disk\nversion: 256\n");
    rsre_store_rule_free(r);
    assert_int_equal(rsre_store_rule_get(txn, "disk", 2, &r), 0);
    assert_int_equal(r->version, 2);
    assert_false(r->enabled_staging);
    assert_true(r->enabled_demo);
    rsre_store_rule_free(r);
    assert_int_equal(rsre_store_rule_get(txn, "disk", 3, &r), RSRE_ENOTFOUND);
    assert_int_equal(rsre_store_rule_get(txn, "disk_x", 0, &r), 0);
    assert_int_equal(r->version, 7);
    rsre_store_rule_free(r);
    assert_int_equal(rsre_store_rule_get(txn, "dis", 0, &r), 0);
    assert_int_equal(r->version, 9);
    rsre_store_rule_free(r);
    assert_int_equal(rsre_store_rule_get(txn, "di", 0, &r), RSRE_ENOTFOUND);
    assert_int_equal(rsre_store_rule_get(txn, "zzz", 0, &r), RSRE_ENOTFOUND);

    struct rule_seen seen = {0};
    assert_int_equal(rsre_store_rule_foreach(txn, "disk", collect_rule, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.versions[0], 1);
    assert_int_equal(seen.versions[1], 2);
    assert_int_equal(seen.versions[2], 256);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(rsre_store_rule_foreach(txn, NULL, collect_rule, &seen), 0);
    assert_int_equal(seen.n, 5);
    assert_string_equal(seen.ids[0], "dis");
    assert_string_equal(seen.ids[4], "disk_x");
    rsre_store_txn_abort(txn);
}

static int count_cooldown(const rsre_store_cooldown *rec, void *ud) {
    (void)rec;
    (*(int *)ud)++;
    return 0;
}

static void test_cooldowns(void **state) {
    struct fixture *f = *state;
    rsre_store_txn *txn = begin(f->store, 0);
    /* Enough keys to span several pages, so expiry deletes across page boundaries. */
    for (int i = 0; i < 600; i++) {
        char key[64];
        snprintf(key, sizeof(key), "node_disk_pressure/reboot_worker/node=%04d", i);
        assert_int_equal(rsre_store_cooldown_set(txn, key, i % 3 == 0 ? 5000 : 1000, "robot", 1),
                         0);
    }
    assert_int_equal(rsre_store_cooldown_set(txn, "", 1, "robot", 1), RSRE_EINVALID);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    txn = begin(f->store, 0);
    int64_t until = 0;
    assert_int_equal(
        rsre_store_cooldown_active(txn, "node_disk_pressure/reboot_worker/node=0003", 999, &until),
        0);
    assert_int_equal(until, 5000);
    assert_int_equal(
        rsre_store_cooldown_active(txn, "node_disk_pressure/reboot_worker/node=0001", 1000, NULL),
        RSRE_ENOTFOUND);
    assert_int_equal(rsre_store_cooldown_active(txn, "nope", 0, NULL), RSRE_ENOTFOUND);
    rsre_store_cooldown *c;
    assert_int_equal(rsre_store_cooldown_get(txn, "node_disk_pressure/reboot_worker/node=0001", &c),
                     0);
    assert_int_equal(c->until_ms, 1000);
    assert_string_equal(c->set_by, "robot");
    rsre_store_cooldown_free(c);
    size_t removed = 0;
    assert_int_equal(rsre_store_cooldown_expire(txn, 1000, &removed), 0);
    assert_int_equal(removed, 400);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    txn = begin(f->store, 1);
    int n = 0;
    assert_int_equal(rsre_store_cooldown_foreach(txn, count_cooldown, &n), 0);
    assert_int_equal(n, 200);
    assert_int_equal(rsre_store_cooldown_expire(txn, 1000, &removed), -EROFS);
    rsre_store_txn_abort(txn);

    txn = begin(f->store, 0);
    assert_int_equal(rsre_store_cooldown_expire(txn, 6000, &removed), 0);
    assert_int_equal(removed, 200);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    struct rsre_store_info info;
    assert_int_equal(rsre_store_info(f->store, &info), 0);
    assert_int_equal(info.cooldowns, 0);
}

static void test_seq_next(void **state) {
    struct fixture *f = *state;
    uint64_t v = 0;
    rsre_store_txn *txn = begin(f->store, 0);
    assert_int_equal(rsre_store_seq_next(txn, "incident", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(rsre_store_seq_next(txn, "incident", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(rsre_store_seq_next(txn, "approval", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    txn = begin(f->store, 0);
    assert_int_equal(rsre_store_seq_next(txn, "incident", &v), 0);
    assert_int_equal(v, 3);
    rsre_store_txn_abort(txn); /* gives 3 back */
    txn = begin(f->store, 0);
    assert_int_equal(rsre_store_seq_next(txn, "incident", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
}

/* --- limits and misuse ---------------------------------------------------------------------- */

static void test_limits_and_misuse(void **state) {
    struct fixture *f = *state;
    char long_id[RSRE_STORE_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';

    rsre_store_txn *txn = begin(f->store, 0);
    rsre_store_txn *second = (void *)1;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &second), -EDEADLK);
    assert_null(second);

    rsre_store_incident inc = ROBOT_SRE__STORE__INCIDENT__INIT;
    inc.id = long_id;
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), RSRE_ELIMIT);
    long_id[RSRE_STORE_ID_MAX] = '\0'; /* exactly the limit is fine */
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), 0);
    inc.id = "";
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), RSRE_EINVALID);
    assert_int_equal(rsre_store_incident_put(txn, NULL, 0), -EINVAL);
    assert_int_equal(rsre_store_incident_put(NULL, &inc, 0), -EINVAL);
    rsre_store_incident *got;
    assert_int_equal(rsre_store_incident_get(txn, NULL, &got), RSRE_EINVALID);

    /* A record over the size limit is refused and does not poison the transaction. */
    size_t big = RSRE_STORE_RECORD_MAX + 1;
    uint8_t *raw = calloc(1, big);
    rsre_store_evidence ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
    ev.id = "ev-big";
    ev.incident_id = "inc-1";
    ev.raw.data = raw;
    ev.raw.len = big;
    assert_int_equal(rsre_store_evidence_put(txn, &ev, 0), RSRE_ELIMIT);
    ev.raw.len = RSRE_STORE_RECORD_MAX - 64; /* just under, with the other fields */
    assert_int_equal(rsre_store_evidence_put(txn, &ev, 0), 0);
    free(raw);

    /* A malformed message (NULL in a repeated string) is refused, not packed. */
    char *sigs[] = {"a", NULL};
    inc.id = "inc-bad";
    inc.n_signal_sources = 2;
    inc.signal_sources = sigs;
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), -EINVAL);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    /* Read-only transactions refuse writes; several may be open at once on one thread. */
    rsre_store_txn *r1 = begin(f->store, 1), *r2 = begin(f->store, 1);
    inc = (rsre_store_incident)ROBOT_SRE__STORE__INCIDENT__INIT;
    inc.id = "inc-ro";
    assert_int_equal(rsre_store_incident_put(r1, &inc, 0), -EROFS);
    assert_int_equal(rsre_store_evidence_get(r2, "inc-1", "ev-big", NULL), -EINVAL);
    rsre_store_evidence *gev;
    assert_int_equal(rsre_store_evidence_get(r2, "inc-1", "ev-big", &gev), 0);
    assert_int_equal(gev->raw.len, RSRE_STORE_RECORD_MAX - 64);
    rsre_store_evidence_free(gev);
    /* map_resize refuses while transactions are open. */
    assert_int_equal(rsre_store_map_resize(f->store, 64u << 20), -EBUSY);
    assert_int_equal(rsre_store_txn_commit(r1), 0);
    rsre_store_txn_abort(r2);

    /* A read-only store refuses write transactions. */
    rsre_store_close(f->store);
    struct rsre_store_options ro = {.read_only = 1};
    assert_int_equal(rsre_store_open(f->dir, &ro, &f->store), 0);
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), -EROFS);
    txn = begin(f->store, 1);
    assert_int_equal(rsre_store_incident_get(txn, "inc-1", &got), RSRE_ENOTFOUND);
    rsre_store_txn_abort(txn);
}

/* --- corruption ----------------------------------------------------------------------------- */

static void put_two_incidents(struct fixture *f) {
    rsre_store_incident inc;
    RobotSre__Store__ResourceRef refs[2], *ref_ptrs[2];
    fill_incident(&inc, refs, ref_ptrs, "inc-1");
    rsre_store_txn *txn = begin(f->store, 0);
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), 0);
    inc.id = "inc-2";
    assert_int_equal(rsre_store_incident_put(txn, &inc, 0), 0);
    assert_int_equal(rsre_store_audit_append(txn, "robot", "open", "inc-1", NULL, NULL, 1, NULL),
                     0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
}

static void expect_incident_corrupt(struct fixture *f, const void *val, size_t vlen) {
    rsre_store_close(f->store);
    f->store = NULL;
    raw_put(f->dir, "incidents", "inc-1", 5, val, vlen);
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
    rsre_store_txn *txn = begin(f->store, 1);
    rsre_store_incident *got = (void *)1;
    assert_int_equal(rsre_store_incident_get(txn, "inc-1", &got), RSRE_ECORRUPT);
    assert_null(got);
    /* The transaction is still usable, the neighbour still reads, iteration reports it. */
    assert_int_equal(rsre_store_incident_get(txn, "inc-2", &got), 0);
    rsre_store_incident_free(got);
    int n = 0;
    assert_int_equal(rsre_store_incident_foreach(txn, count_incident, &n), RSRE_ECORRUPT);
    assert_int_equal(n, 0);
    rsre_store_txn_abort(txn);
}

static void test_corrupt_records(void **state) {
    struct fixture *f = *state;
    put_two_incidents(f);
    rsre_store_close(f->store); /* never the same LMDB file twice in one process */
    f->store = NULL;
    size_t vlen;
    uint8_t *good = raw_get(f->dir, "incidents", "inc-2", 5, &vlen);

    /* Random garbage. */
    uint8_t garbage[300];
    srand(7);
    for (size_t i = 0; i < sizeof(garbage); i++) {
        garbage[i] = (uint8_t)rand();
    }
    garbage[0] = 0xff; /* not a valid first tag */
    expect_incident_corrupt(f, garbage, sizeof(garbage));
    /* Truncated record. */
    expect_incident_corrupt(f, good, vlen / 2);
    /* A length prefix that runs past the end: field 2 (string) claiming 2^31 bytes. */
    static const uint8_t overlong[] = {0x12, 0x80, 0x80, 0x80, 0x80, 0x08, 'a', 'b', 'c'};
    expect_incident_corrupt(f, overlong, sizeof(overlong));
    /* A well-formed record under the wrong key (inc-2's record stored as inc-1). */
    expect_incident_corrupt(f, good, vlen);
    /* Wrong wire type for field 1. */
    expect_incident_corrupt(f, "\x0d\x01\x02\x03\x04", 5);
    /* Empty value: decodes to an incident without an id. */
    expect_incident_corrupt(f, "", 0);
    free(good);

    /* A garbage audit record and a garbage cooldown. */
    rsre_store_close(f->store);
    f->store = NULL;
    uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    raw_put(f->dir, "audit", key, 8, garbage, 40);
    raw_put(f->dir, "cooldowns", "k", 1, garbage, 40);
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
    rsre_store_txn *txn = begin(f->store, 0);
    rsre_store_audit *a;
    assert_int_equal(rsre_store_audit_get(txn, 1, &a), RSRE_ECORRUPT);
    rsre_store_cooldown *c;
    assert_int_equal(rsre_store_cooldown_get(txn, "k", &c), RSRE_ECORRUPT);
    assert_int_equal(rsre_store_cooldown_active(txn, "k", 0, NULL), RSRE_ECORRUPT);
    assert_int_equal(rsre_store_cooldown_expire(txn, 0, NULL), RSRE_ECORRUPT);
    rsre_store_txn_abort(txn);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), RSRE_ECHAIN);
    assert_int_equal(rep.broken_seq, 1);
}

/* --- map full ------------------------------------------------------------------------------- */

static int fill_until_full(rsre_store *s, int *committed, const char *prefix) {
    static uint8_t blob[16 * 1024];
    memset(blob, 0xab, sizeof(blob));
    for (int i = 0; i < 10000; i++) {
        rsre_store_txn *txn = begin(s, 0);
        int rc = 0;
        for (int j = 0; j < 4 && rc == 0; j++) {
            char id[32];
            snprintf(id, sizeof(id), "%s-%05d-%d", prefix, i, j);
            rsre_store_evidence ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
            ev.incident_id = "inc-full";
            ev.id = id;
            ev.raw.data = blob;
            ev.raw.len = sizeof(blob);
            rc = rsre_store_evidence_put(txn, &ev, 0);
        }
        if (rc == 0) {
            rc = rsre_store_audit_append(txn, "robot", "evidence", prefix, NULL, NULL, i, NULL);
        }
        if (rc != 0) {
            /* The failed operation poisoned the transaction: everything else fails alike. */
            assert_int_equal(rc, RSRE_EMAPFULL);
            rsre_store_evidence ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
            ev.incident_id = "inc-full";
            ev.id = "after";
            assert_int_equal(rsre_store_evidence_put(txn, &ev, 0), RSRE_EMAPFULL);
            rsre_store_incident *inc;
            assert_int_equal(rsre_store_incident_get(txn, "x", &inc), RSRE_EMAPFULL);
            assert_int_equal(rsre_store_txn_commit(txn), RSRE_EMAPFULL);
            return rc;
        }
        rc = rsre_store_txn_commit(txn);
        if (rc != 0) {
            assert_int_equal(rc, RSRE_EMAPFULL);
            return rc;
        }
        (*committed)++;
    }
    return 0;
}

static int count_evidence(const rsre_store_evidence *rec, void *ud) {
    (void)rec;
    (*(int *)ud)++;
    return 0;
}

static void test_map_full_recovery(void **state) {
    struct fixture *f = *state;
    rsre_store_close(f->store);
    rm_rf(f->dir);
    struct rsre_store_options o = {.map_size = 512 * 1024};
    assert_int_equal(rsre_store_open(f->dir, &o, &f->store), 0);

    int committed = 0;
    assert_int_equal(fill_until_full(f->store, &committed, "a"), RSRE_EMAPFULL);
    assert_true(committed > 0);

    /* Still usable: everything committed reads back, and the chain holds. */
    rsre_store_txn *txn = begin(f->store, 1);
    int n = 0;
    assert_int_equal(rsre_store_evidence_foreach(txn, "inc-full", count_evidence, &n), 0);
    assert_int_equal(n, committed * 4);
    rsre_store_txn_abort(txn);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_int_equal(rep.count, committed);

    /* Recovery: grow the map and keep writing. */
    assert_int_equal(rsre_store_map_resize(f->store, 4u << 20), 0);
    int more = 0;
    txn = begin(f->store, 0);
    rsre_store_evidence ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
    ev.incident_id = "inc-full";
    ev.id = "after-resize";
    assert_int_equal(rsre_store_evidence_put(txn, &ev, 0), 0);
    assert_int_equal(
        rsre_store_audit_append(txn, "robot", "evidence", "after", NULL, NULL, 1, NULL), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    more++;

    /* The new size persists: reopening with a smaller size keeps the file's larger one. */
    rsre_store_close(f->store);
    assert_int_equal(rsre_store_open(f->dir, &o, &f->store), 0);
    struct rsre_store_info info;
    assert_int_equal(rsre_store_info(f->store, &info), 0);
    assert_true(info.map_size >= (4u << 20));
    assert_int_equal(info.evidence, (size_t)committed * 4 + (size_t)more);
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_int_equal(rep.count, committed + more);
}

/* --- backup --------------------------------------------------------------------------------- */

static void test_backup(void **state) {
    struct fixture *f = *state;
    put_two_incidents(f);
    rsre_store_txn *txn = begin(f->store, 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(
            rsre_store_audit_append(txn, "alice", "rule.edit", "disk", "tune", "{}", i, NULL), 0);
    }
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    /* Free pages in the source (expired cooldowns) are compacted away in the copy. */
    txn = begin(f->store, 0);
    for (int i = 0; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "cd-%05d", i);
        assert_int_equal(rsre_store_cooldown_set(txn, key, i % 2 ? 10 : 99999, "robot", 0), 0);
    }
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    txn = begin(f->store, 0);
    size_t removed;
    assert_int_equal(rsre_store_cooldown_expire(txn, 10, &removed), 0);
    assert_int_equal(removed, 1000);
    assert_int_equal(rsre_store_txn_commit(txn), 0);

    char dest[300];
    snprintf(dest, sizeof(dest), "%s/backup", f->dir);
    /* A reader open during the backup is fine (the copy is online). */
    rsre_store_txn *reader = begin(f->store, 1);
    assert_int_equal(rsre_store_backup(f->store, dest), 0);
    rsre_store_txn_abort(reader);
    assert_int_equal(rsre_store_backup(f->store, dest), -EEXIST);

    /* Refused while this thread holds a write transaction (mdb_env_copy would deadlock). */
    char dest2[300];
    snprintf(dest2, sizeof(dest2), "%s/backup2", f->dir);
    txn = begin(f->store, 0);
    assert_int_equal(rsre_store_backup(f->store, dest2), -EDEADLK);
    rsre_store_txn_abort(txn);

    rsre_store *copy;
    assert_int_equal(rsre_store_open(dest, NULL, &copy), 0);
    struct rsre_store_audit_report rep, orig;
    assert_int_equal(rsre_store_audit_verify(copy, &rep), 0);
    assert_int_equal(rsre_store_audit_verify(f->store, &orig), 0);
    assert_int_equal(rep.count, 51);
    assert_memory_equal(rep.head_hash, orig.head_hash, RSRE_STORE_HASH_LEN);
    txn = begin(copy, 1);
    rsre_store_incident *inc;
    assert_int_equal(rsre_store_incident_get(txn, "inc-2", &inc), 0);
    assert_string_equal(inc->incident_type, "node_disk_pressure");
    rsre_store_incident_free(inc);
    rsre_store_txn_abort(txn);
    struct rsre_store_info a, b;
    assert_int_equal(rsre_store_info(f->store, &a), 0);
    assert_int_equal(rsre_store_info(copy, &b), 0);
    assert_int_equal(b.incidents, a.incidents);
    assert_int_equal(b.cooldowns, 1000);
    assert_int_equal(b.audit, a.audit);
    assert_true(b.map_used <= a.map_used);
    /* The copy is a full store: it accepts writes and keeps chaining. */
    txn = begin(copy, 0);
    assert_int_equal(
        rsre_store_audit_append(txn, "ops", "restore.check", "backup", NULL, NULL, 9, NULL), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    assert_int_equal(rsre_store_audit_verify(copy, &rep), 0);
    assert_int_equal(rep.count, 52);
    rsre_store_close(copy);
}

int main(void) {
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "off");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_fresh_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_newer_refused, setup, teardown),
        cmocka_unit_test(test_schema_foreign_lmdb),
        cmocka_unit_test_setup_teardown(test_migration_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incident_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evidence_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_votes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cooldowns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
