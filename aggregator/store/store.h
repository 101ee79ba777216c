#ifndef RSRE_STORE_H
#define RSRE_STORE_H

/*
 * The aggregator's store: one LMDB environment in a directory, with named databases
 *
 *   incidents  key = incident id                        value = Incident
 *   evidence   key = incident id "\0" evidence id       value = Evidence
 *   actions    key = action record id                   value = ActionRecord
 *   approvals  key = approval id                        value = Approval
 *   rules      key = rule id "\0" u32 big-endian version value = RuleVersion (every version kept)
 *   audit      key = u64 big-endian seq                 value = AuditRecord (hash-chained)
 *   cooldowns  key = cooldown key                       value = Cooldown
 *   meta       "schema", "audit_head", "seq/<name>"     value = Meta, AuditHead, Counter
 *   agents     key = node name                          value = AgentState (schema 2)
 *   notify     key = printable string                   value = notify module's bytes (schema 3)
 *
 * Values are protobuf-c messages from proto/robot_sre/store.proto. docs/store.md describes the
 * formats, durability and the audit chain.
 *
 * Errors: every fallible function returns 0, a negative errno value, or an RSRE_E* code from
 * common/error.h. LMDB codes never escape this module; the original is logged. In particular:
 *   RSRE_ENOTFOUND  no such record
 *   RSRE_EEXIST     RSRE_STORE_NOOVERWRITE and the key exists; a rule version that exists
 *   RSRE_ECORRUPT   a stored value failed to decode or does not match its key (never a crash)
 *   RSRE_EINVALID   a required id or field is NULL or empty
 *   RSRE_ELIMIT     an id is longer than RSRE_STORE_ID_MAX bytes, or a record would encode to
 *                   more than RSRE_STORE_RECORD_MAX bytes
 *   RSRE_EMAPFULL   the map is full; the transaction has been aborted (see below)
 *   RSRE_ESCHEMA    the directory holds a store of another (newer or unknown) schema version
 *   RSRE_ECHAIN     the audit hash chain does not verify
 *
 * Ownership: records passed to put functions are borrowed for the call. Records returned by
 * get functions are decoded copies owned by the caller, valid after the transaction ends, and
 * released with the matching rsre_store_<type>_free(). Records handed to iteration callbacks
 * are borrowed and valid only until the callback returns.
 *
 * Threads and processes: a store handle belongs to one thread (the aggregator's loop) for
 * write transactions; read-only transactions may be begun and used on any thread. Several
 * processes may open the same directory (LMDB serialises writers). Never use a handle across
 * fork(): open the store again in the child.
 */

#include "robot_sre/store.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define RSRE_STORE_SCHEMA_VERSION 3u          /* the schema this binary reads and writes */
#define RSRE_STORE_ID_MAX 128                 /* max bytes of an id or cooldown key */
#define RSRE_STORE_RECORD_MAX (1024u * 1024u) /* max encoded size of one record */
#define RSRE_STORE_MAP_SIZE_DEFAULT (1024u * 1024u * 1024u) /* 1 GiB */
#define RSRE_STORE_HASH_LEN 32                              /* SHA-256 */

/* Short names for the generated record types. */
typedef RobotSre__Store__Incident rsre_store_incident;
typedef RobotSre__Store__Evidence rsre_store_evidence;
typedef RobotSre__Store__ActionRecord rsre_store_action;
typedef RobotSre__Store__Approval rsre_store_approval;
typedef RobotSre__Store__Vote rsre_store_vote;
typedef RobotSre__Store__RuleVersion rsre_store_rule;
typedef RobotSre__Store__AuditRecord rsre_store_audit;
typedef RobotSre__Store__Cooldown rsre_store_cooldown;

typedef struct rsre_store rsre_store;
typedef struct rsre_store_txn rsre_store_txn;

struct rsre_store_options {
    size_t map_size;      /* bytes; 0 = RSRE_STORE_MAP_SIZE_DEFAULT. A minimum: an existing
                             store keeps a larger size recorded in its file. */
    unsigned max_readers; /* concurrent read transactions; 0 = LMDB default (126) */
    int read_only;        /* open MDB_RDONLY: no initialisation, no migration, no writes */
};

/* Flags for put functions. */
enum {
    RSRE_STORE_NOOVERWRITE = 1, /* fail with RSRE_EEXIST instead of replacing */
};

/*
 * Opens (creating `dir` and an empty store if needed) the store in `dir`. `opts` may be NULL.
 * An empty directory is initialised with schema RSRE_STORE_SCHEMA_VERSION. A store of an older
 * schema is migrated in one transaction by the migration hooks; a store written by a newer or
 * unknown schema, or a directory holding some other LMDB database, fails with RSRE_ESCHEMA and
 * an error log naming both versions. Stale reader slots of dead processes are cleared.
 * On success *out is a handle the caller closes with rsre_store_close().
 */
int rsre_store_open(const char *dir, const struct rsre_store_options *opts, rsre_store **out);

/* Closes the store. Every transaction must have ended. NULL is a no-op. */
void rsre_store_close(rsre_store *store);

/*
 * Changes the map size (e.g. after RSRE_EMAPFULL). No transaction of this handle may be
 * active. The new size persists in the file only once a write transaction commits.
 */
int rsre_store_map_resize(rsre_store *store, size_t map_size);

struct rsre_store_info {
    size_t map_size; /* bytes mapped */
    size_t map_used; /* bytes of the map in use (last page + 1) */
    unsigned page_size;
    uint32_t schema_version;
    size_t incidents, evidence, actions, approvals, rules, audit, cooldowns; /* entries */
};

/* Fills *info from a fresh read transaction. */
int rsre_store_info(rsre_store *store, struct rsre_store_info *info);

/*
 * Online backup: writes a compacted copy (mdb_env_copy2 with MDB_CP_COMPACT) of the store to
 * `dest_dir` (created if missing; must not already contain data.mdb, else -EEXIST) while
 * writers continue, fsyncs it, then opens the copy read-only and verifies its schema and audit
 * chain. Returns 0 only if the copy opened and verified.
 */
int rsre_store_backup(rsre_store *store, const char *dest_dir);

/*
 * Transactions. rsre_store_txn_begin() starts a read-only (`rdonly` != 0) or write
 * transaction; a write transaction blocks while another process or thread writes, and
 * returns -EDEADLK if this thread already has one open on this store. Every operation of the
 * store takes a transaction. A transaction ends with exactly one of commit or abort, which
 * free the handle.
 *
 * If an operation fails in a way that poisons the LMDB transaction (RSRE_EMAPFULL, I/O error,
 * -ENOMEM, ...), its changes are discarded at once and every later operation on the handle,
 * including commit, returns the same error; the caller still ends it with commit or abort.
 * RSRE_ENOTFOUND, RSRE_EEXIST, RSRE_ELIMIT and RSRE_ECORRUPT do not poison the transaction.
 */
int rsre_store_txn_begin(rsre_store *store, int rdonly, rsre_store_txn **out);

/* Commits (durably: the data is synced before this returns) and frees the handle. */
int rsre_store_txn_commit(rsre_store_txn *txn);

/* Discards the transaction's changes and frees the handle. NULL is a no-op. */
void rsre_store_txn_abort(rsre_store_txn *txn);

/*
 * Iteration callbacks get a borrowed record, valid until they return. Return 0 to continue,
 * a positive value to stop (the iteration then returns 0), or a negative error code to stop
 * and make the iteration return it. An iteration that meets a record that fails to decode
 * stops with RSRE_ECORRUPT (the key is logged).
 */
typedef int (*rsre_store_incident_cb)(const rsre_store_incident *rec, void *ud);
typedef int (*rsre_store_evidence_cb)(const rsre_store_evidence *rec, void *ud);
typedef int (*rsre_store_action_cb)(const rsre_store_action *rec, void *ud);
typedef int (*rsre_store_approval_cb)(const rsre_store_approval *rec, void *ud);
typedef int (*rsre_store_rule_cb)(const rsre_store_rule *rec, void *ud);
typedef int (*rsre_store_audit_cb)(const rsre_store_audit *rec, void *ud);
typedef int (*rsre_store_cooldown_cb)(const rsre_store_cooldown *rec, void *ud);

/* --- incidents ---------------------------------------------------------------------------- */

/* Stores `rec` under rec->id (replacing an existing one unless RSRE_STORE_NOOVERWRITE). */
int rsre_store_incident_put(rsre_store_txn *txn, const rsre_store_incident *rec, unsigned flags);
/* Reads incident `id` into a caller-owned *out (free with rsre_store_incident_free). */
int rsre_store_incident_get(rsre_store_txn *txn, const char *id, rsre_store_incident **out);
/* Calls `cb` for every incident in id order. */
int rsre_store_incident_foreach(rsre_store_txn *txn, rsre_store_incident_cb cb, void *ud);
void rsre_store_incident_free(rsre_store_incident *rec);

/* --- evidence ----------------------------------------------------------------------------- */

/* Stores `rec` under (rec->incident_id, rec->id). Both ids are required. */
int rsre_store_evidence_put(rsre_store_txn *txn, const rsre_store_evidence *rec, unsigned flags);
int rsre_store_evidence_get(rsre_store_txn *txn, const char *incident_id, const char *id,
                            rsre_store_evidence **out);
/* Calls `cb` for every evidence record of `incident_id`, in evidence id order. */
int rsre_store_evidence_foreach(rsre_store_txn *txn, const char *incident_id,
                                rsre_store_evidence_cb cb, void *ud);
void rsre_store_evidence_free(rsre_store_evidence *rec);

/* --- actions ------------------------------------------------------------------------------ */

int rsre_store_action_put(rsre_store_txn *txn, const rsre_store_action *rec, unsigned flags);
int rsre_store_action_get(rsre_store_txn *txn, const char *id, rsre_store_action **out);
/* Calls `cb` for every action record (of `incident_id` only, unless it is NULL), id order. */
int rsre_store_action_foreach(rsre_store_txn *txn, const char *incident_id, rsre_store_action_cb cb,
                              void *ud);
void rsre_store_action_free(rsre_store_action *rec);

/* --- approvals ---------------------------------------------------------------------------- */

int rsre_store_approval_put(rsre_store_txn *txn, const rsre_store_approval *rec, unsigned flags);
int rsre_store_approval_get(rsre_store_txn *txn, const char *id, rsre_store_approval **out);
int rsre_store_approval_foreach(rsre_store_txn *txn, rsre_store_approval_cb cb, void *ud);
/*
 * Appends `vote` to approval `approval_id` (read-modify-write in `txn`). RSRE_ENOTFOUND if
 * there is no such approval, RSRE_EEXIST if vote->operator_ already voted on it, RSRE_EINVALID
 * if the operator is empty. Records the vote only: deciding the approval's state (quorum,
 * requester may not approve, expiry) is the approvals module's job.
 */
int rsre_store_approval_vote_add(rsre_store_txn *txn, const char *approval_id,
                                 const rsre_store_vote *vote);
void rsre_store_approval_free(rsre_store_approval *rec);

/* --- rules (every version kept, immutable) ------------------------------------------------ */

/* Stores a new version; rec->version >= 1. RSRE_EEXIST if that version exists. */
int rsre_store_rule_put(rsre_store_txn *txn, const rsre_store_rule *rec);
/* Reads one version of `rule_id`; `version` 0 means the latest. */
int rsre_store_rule_get(rsre_store_txn *txn, const char *rule_id, uint32_t version,
                        rsre_store_rule **out);
/* Calls `cb` for every version of `rule_id` in ascending order, or for every version of every
 * rule (rule id order, then version) if `rule_id` is NULL. */
int rsre_store_rule_foreach(rsre_store_txn *txn, const char *rule_id, rsre_store_rule_cb cb,
                            void *ud);
void rsre_store_rule_free(rsre_store_rule *rec);

/* --- cooldowns ---------------------------------------------------------------------------- */

/* Sets (or replaces) cooldown `key` until `until_ms`; `set_at_ms` is recorded with it. */
int rsre_store_cooldown_set(rsre_store_txn *txn, const char *key, int64_t until_ms,
                            const char *set_by, int64_t set_at_ms);
int rsre_store_cooldown_get(rsre_store_txn *txn, const char *key, rsre_store_cooldown **out);
/* 0 and *until_ms (may be NULL) if `key` is cooling down at `now_ms` (until_ms > now_ms);
 * RSRE_ENOTFOUND if there is no cooldown or it has passed. */
int rsre_store_cooldown_active(rsre_store_txn *txn, const char *key, int64_t now_ms,
                               int64_t *until_ms);
/* Deletes every cooldown with until_ms <= now_ms; *removed (may be NULL) gets the count. */
int rsre_store_cooldown_expire(rsre_store_txn *txn, int64_t now_ms, size_t *removed);
int rsre_store_cooldown_foreach(rsre_store_txn *txn, rsre_store_cooldown_cb cb, void *ud);
void rsre_store_cooldown_free(rsre_store_cooldown *rec);

/* --- counters ----------------------------------------------------------------------------- */

/* Increments the named counter (first value 1) in `txn` and returns it in *out; an aborted
 * transaction gives its numbers back. For generating ids ("inc-42"). */
int rsre_store_seq_next(rsre_store_txn *txn, const char *name, uint64_t *out);

/* --- agents (schema 2): the ingest's per-node state ----------------------------------------- */

/*
 * One record per node, keyed by node name: the highest committed sequence number per boot id
 * (written by aggregator/ingest in the transaction that applies the batches), the node's last
 * Hello and its recently committed action results. docs/ingest.md describes the fields.
 */
typedef RobotSre__Store__AgentState rsre_store_agent;
typedef RobotSre__Store__AgentState__Boot rsre_store_agent_boot;
typedef int (*rsre_store_agent_cb)(const rsre_store_agent *rec, void *ud);

#define RSRE_STORE_NODE_MAX 253         /* max bytes of a node name (DNS-1123 subdomain) */
#define RSRE_STORE_AGENT_MAX_BOOTS 16   /* boots kept per node (least recently active dropped) */
#define RSRE_STORE_AGENT_MAX_RESULTS 64 /* result ids kept per node (oldest dropped) */

/* Stores `rec` under rec->node: 1..RSRE_STORE_NODE_MAX bytes (RSRE_EINVALID / RSRE_ELIMIT);
 * at most RSRE_STORE_AGENT_MAX_BOOTS boots with non-empty boot ids of at most 36 bytes and
 * RSRE_STORE_AGENT_MAX_RESULTS results with ids of 1..RSRE_STORE_ID_MAX bytes (RSRE_ELIMIT /
 * RSRE_EINVALID otherwise). */
int rsre_store_agent_put(rsre_store_txn *txn, const rsre_store_agent *rec, unsigned flags);
/* Reads the record of `node` into a caller-owned *out (free with rsre_store_agent_free). */
int rsre_store_agent_get(rsre_store_txn *txn, const char *node, rsre_store_agent **out);
/* Deletes the record of `node`; RSRE_ENOTFOUND if there is none. */
int rsre_store_agent_delete(rsre_store_txn *txn, const char *node);
/* Calls `cb` for every agent record in node name order. */
int rsre_store_agent_foreach(rsre_store_txn *txn, rsre_store_agent_cb cb, void *ud);
void rsre_store_agent_free(rsre_store_agent *rec);
/* The entry of `boot_id` in rec->boots, or NULL. Borrowed from `rec`. */
const rsre_store_agent_boot *rsre_store_agent_boot_find(const rsre_store_agent *rec,
                                                        const char *boot_id);

/* --- notify (schema 3): the notification core's state --------------------------------------- */

/*
 * Opaque values under printable keys, for aggregator/notify (in-app notifications, incident
 * thread references, used button nonces; notify.h documents the formats). Keys are 1..
 * RSRE_STORE_NOTIFY_KEY_MAX bytes (RSRE_EINVALID / RSRE_ELIMIT), values at most
 * RSRE_STORE_NOTIFY_VALUE_MAX bytes (RSRE_ELIMIT). get returns a caller-owned, NUL-terminated
 * copy (free()); foreach visits keys starting with `prefix` in byte order from `start` (NULL
 * or "": from the prefix), callback values as for the other iterations (borrowed bytes).
 */
#define RSRE_STORE_NOTIFY_KEY_MAX 400
#define RSRE_STORE_NOTIFY_VALUE_MAX (64u * 1024u)
typedef int (*rsre_store_notify_cb)(const char *key, const void *val, size_t len, void *ud);
int rsre_store_notify_put(rsre_store_txn *txn, const char *key, const void *val, size_t len,
                          unsigned flags);
int rsre_store_notify_get(rsre_store_txn *txn, const char *key, char **val, size_t *len);
int rsre_store_notify_delete(rsre_store_txn *txn, const char *key);
int rsre_store_notify_foreach(rsre_store_txn *txn, const char *prefix, const char *start,
                              rsre_store_notify_cb cb, void *ud);

/* --- audit log (append-only, hash-chained; there is no update or delete) ------------------ */

/*
 * Appends an audit record in the caller's write transaction, so it commits or aborts with the
 * state change it describes. seq = previous seq + 1 (1 for the first record), prev_hash = the
 * previous record's hash (32 zero bytes for the first), hash = SHA-256(prev_hash ||
 * canonical encoding) as docs/store.md defines. `actor`, `verb` and `object` are required
 * (RSRE_EINVALID); `reason` and `detail` may be NULL. actor, verb, object and reason are at
 * most 1024 bytes, detail at most 64 KiB (RSRE_ELIMIT). RSRE_ECHAIN if the stored chain head
 * and the log disagree (nothing is appended then). *seq (may be NULL) gets the new number.
 */
int rsre_store_audit_append(rsre_store_txn *txn, const char *actor, const char *verb,
                            const char *object, const char *reason, const char *detail,
                            int64_t ts_ms, uint64_t *seq);
int rsre_store_audit_get(rsre_store_txn *txn, uint64_t seq, rsre_store_audit **out);
/* Calls `cb` for records with seq >= from_seq, in order. */
int rsre_store_audit_foreach(rsre_store_txn *txn, uint64_t from_seq, rsre_store_audit_cb cb,
                             void *ud);
void rsre_store_audit_free(rsre_store_audit *rec);

/*
 * Computes the chain hash of `rec` from its seq, ts, strings and prev_hash (its `hash` field is
 * ignored) into `out`. -EINVAL if prev_hash is not 32 bytes. For offline verifiers.
 */
int rsre_store_audit_hash(const rsre_store_audit *rec, uint8_t out[RSRE_STORE_HASH_LEN]);

struct rsre_store_audit_report {
    uint64_t count;                         /* records that verified */
    uint64_t head_seq;                      /* last verified record (0: none) */
    uint8_t head_hash[RSRE_STORE_HASH_LEN]; /* its hash (zeros: none) */
    uint64_t broken_seq;                    /* first record that failed, 0 if none */
    char reason[128];                       /* why it failed, "" if it did not */
};

/*
 * Walks the whole audit log in one read transaction: every key matches its record's seq,
 * seqs run 1, 2, ... without gaps, each record decodes, links to its predecessor's hash and
 * hashes to its stored hash, and the last record is the recorded head. Returns 0 with count
 * and head filled, or RSRE_ECHAIN with broken_seq the first record that fails (for a missing
 * tail, the head seq the store recorded) and a reason.
 */
int rsre_store_audit_verify(rsre_store *store, struct rsre_store_audit_report *report);

#endif
