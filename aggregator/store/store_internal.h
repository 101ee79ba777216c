#ifndef RSRE_STORE_INTERNAL_H
#define RSRE_STORE_INTERNAL_H

/* Private to aggregator/store (and its tests and fuzz target). */

#include "store/store.h"

#include <lmdb.h>
#include <pthread.h>

/* Named databases, in the order of the table in store.c. */
enum rsre__store_db {
    RSRE__DB_INCIDENTS,
    RSRE__DB_EVIDENCE,
    RSRE__DB_ACTIONS,
    RSRE__DB_APPROVALS,
    RSRE__DB_RULES,
    RSRE__DB_AUDIT,
    RSRE__DB_COOLDOWNS,
    RSRE__DB_META,
    RSRE__DB_AGENTS, /* schema 2 */
    RSRE__DB_NOTIFY, /* schema 3: notifications.c */
    RSRE__DB_COUNT
};

/* Record kinds, in the order of the table in codec.c. */
enum rsre__store_kind {
    RSRE__K_INCIDENT,
    RSRE__K_EVIDENCE,
    RSRE__K_ACTION,
    RSRE__K_APPROVAL,
    RSRE__K_RULE,
    RSRE__K_AUDIT,
    RSRE__K_COOLDOWN,
    RSRE__K_META,
    RSRE__K_AUDIT_HEAD,
    RSRE__K_COUNTER,
    RSRE__K_AGENT,
    RSRE__K_COUNT
};

/* Longest key: incident id "\0" evidence id, or rule id "\0" version. */
#define RSRE__STORE_KEY_MAX (2 * RSRE_STORE_ID_MAX + 1 + 8)

/* Meta keys. */
#define RSRE__META_SCHEMA "schema"
#define RSRE__META_AUDIT_HEAD "audit_head"
#define RSRE__META_SEQ_PREFIX "seq/"

struct rsre_store {
    MDB_env *env;
    MDB_dbi dbi[RSRE__DB_COUNT];
    char *dir;
    size_t map_size;
    int read_only;
    uint32_t schema_version;
    pthread_mutex_t lock; /* guards the fields below */
    int writing;          /* a write transaction of this handle is open ... */
    pthread_t writer;     /* ... on this thread */
    unsigned active;      /* open transactions of this handle */
};

struct rsre_store_txn {
    struct rsre_store *store;
    MDB_txn *mdb; /* NULL once a failure poisoned and aborted the LMDB transaction */
    int rdonly;
    int err; /* the error that poisoned it */
};

/* Returns the name of database `db` ("incidents", ...). */
const char *rsre__store_db_name(int db);

/*
 * Translates an LMDB return code into a store error and logs the original (MDB_NOTFOUND and
 * MDB_KEYEXIST are expected outcomes and are not logged). `what` names the operation.
 */
int rsre__store_mdb_err(const struct rsre_store *store, int rc, const char *what);

/*
 * Like rsre__store_mdb_err(), and if `rc` poisons the LMDB transaction (anything but
 * MDB_NOTFOUND / MDB_KEYEXIST), aborts it and remembers the error in `txn`. Cursors of a
 * read-only transaction must be closed before calling this.
 */
int rsre__store_txn_fail(rsre_store_txn *txn, int rc, const char *what);

/* 0 if `txn` can be used (for writing if `write`), else the error to return. */
int rsre__store_txn_check(const rsre_store_txn *txn, int write);

/* Formats `len` bytes of a key for logs (printable bytes as is, others as \xNN). */
const char *rsre__store_key_repr(char *buf, size_t cap, const void *key, size_t len);

/*
 * Decodes `len` bytes as a record of `kind` with the size limit and a bounded, failing
 * allocator, then checks the record's invariants (ids valid, hashes 32 bytes). Returns 0 and a
 * caller-owned message (free with protobuf_c_message_free_unpacked(m, NULL)), RSRE_ECORRUPT
 * for anything that is not a valid record, or -EINVAL for a bad `kind`. Never crashes.
 */
int rsre__store_decode(int kind, const void *data, size_t len, ProtobufCMessage **out);

/*
 * Derives the database key of record `m` of `kind` into `key` (RSRE__STORE_KEY_MAX bytes).
 * RSRE_EINVALID / RSRE_ELIMIT for a missing or oversized id; -EINVAL for a kind without keys.
 */
int rsre__store_key_of(int kind, const ProtobufCMessage *m, uint8_t *key, size_t *klen);

/* Builds the key "a" "\0" "b" (b may be NULL: just "a" "\0", the prefix of a's records). */
int rsre__store_key_pair(const char *a, const char *b, uint8_t *key, size_t *klen);

/* Validates an id: RSRE_EINVALID if NULL or empty, RSRE_ELIMIT if too long. */
int rsre__store_id_check(const char *id);

/*
 * Encodes `m` straight into a value reserved under `key` in `db` (`mdb_flags`: MDB_NOOVERWRITE,
 * MDB_APPEND). RSRE_ELIMIT if it would exceed RSRE_STORE_RECORD_MAX, -EINVAL if the message
 * does not pass protobuf_c_message_check().
 */
int rsre__store_put(rsre_store_txn *txn, int db, const void *key, size_t klen, int kind,
                    const ProtobufCMessage *m, unsigned mdb_flags);

/*
 * Reads and decodes the record under `key`: 0 and a caller-owned *out, RSRE_ENOTFOUND, or
 * RSRE_ECORRUPT (logged) if it does not decode or does not belong under `key`.
 */
int rsre__store_get(rsre_store_txn *txn, int db, const void *key, size_t klen, int kind,
                    ProtobufCMessage **out);

typedef int (*rsre__store_each_cb)(const ProtobufCMessage *m, void *ud);

/*
 * Calls `cb` with each decoded record of `kind` in `db` whose key starts with `prefix`
 * (`plen` 0: all), beginning at the first key >= `start` (`slen` 0: at the prefix). Callback
 * return values as for the public iteration functions.
 */
int rsre__store_iterate(rsre_store_txn *txn, int db, const void *prefix, size_t plen,
                        const void *start, size_t slen, int kind, rsre__store_each_cb cb, void *ud);

/*
 * Schema migration hooks: `run` upgrades a store from schema `from` to `from + 1` inside the
 * write transaction that also records the new version, so a migration applies entirely or not
 * at all. store.c holds the table; rsre__store_migrate() is split out so tests can drive it
 * with their own table.
 */
struct rsre__store_migration {
    uint32_t from;
    const char *what;
    int (*run)(rsre_store_txn *txn);
};

/* Runs the hooks from `from` up to `to` in order. RSRE_ESCHEMA if a step has no hook. */
int rsre__store_migrate(rsre_store_txn *txn, uint32_t from, uint32_t to,
                        const struct rsre__store_migration *table, size_t n);

/* agents.c: key and invariants of AgentState records (for codec.c's kind table), and the
 * schema 1 -> 2 migration (creates the `agents` database). */
int rsre__store_agent_key(const ProtobufCMessage *m, uint8_t *key, size_t *klen);
int rsre__store_agent_check(const ProtobufCMessage *m);
int rsre__store_migrate_1_to_2(rsre_store_txn *txn);
/* notifications.c: the schema 2 -> 3 migration (creates the `notify` database). */
int rsre__store_migrate_2_to_3(rsre_store_txn *txn);

/* Big-endian helpers for keys. */
static inline void rsre__be64_put(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t rsre__be64_get(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline void rsre__be32_put(uint8_t *p, uint32_t v) {
    for (int i = 3; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint32_t rsre__be32_get(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#endif
