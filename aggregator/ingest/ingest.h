#ifndef RSRE_INGEST_H
#define RSRE_INGEST_H

/*
 * The aggregator's side of AgentStream.Connect (docs/protocol.md, docs/ingest.md): a gRPC
 * server (common/grpc_server.h on the common/grpc_loop.h bridge) that accepts one stream per
 * node agent, checks who is talking, deduplicates what the agent (re)sends by (node, boot id,
 * seq), hands new messages to a consumer inside an LMDB write transaction together with the
 * per-node dedupe state (the store's `agents` database), and acknowledges only after that
 * transaction has committed.
 *
 *   - The first message must be a Hello (else FAILED_PRECONDITION; a second Hello too). The
 *     node a stream speaks for is bound at Hello and never changes: batches and results carry
 *     no node name, so an agent cannot report for another node. With mTLS (tls_ca set) the
 *     client certificate must name the Hello's node (CN or SAN), else PERMISSION_DENIED and an
 *     audit record. Without client certificates the Hello's name is taken as claimed (see
 *     docs/ingest.md, "Trust model"). A newer stream for a node replaces (ABORTED) the older.
 *   - The Hello is committed (consumer `hello`, agents record) and answered with
 *     Ack(boot_id, committed seq of that boot) and then ConfigUpdate(generation, allowlist).
 *   - SignalBatch: seq <= committed is a duplicate (acknowledged again, consumer not called);
 *     otherwise the consumer's `batch` runs in the write transaction that also raises the
 *     boot's committed seq; seq > committed + 1 is a gap (logged, counted, audited). A batch
 *     that decodes but fails validation is recorded (audit) and its seq passed, unapplied.
 *   - ActionResult: deduplicated by request_id (per node), consumer `result`, then listed in
 *     an Ack.
 *   - Group commit: messages of all streams are applied in arrival order in one transaction
 *     of up to group_max messages or group_ms milliseconds; each is acknowledged after that
 *     transaction's commit returned. A consumer error aborts the transaction; it is retried
 *     without the failing message, whose stream is ended with UNAVAILABLE (the agent resends).
 *   - Limits: max_message_bytes (RESOURCE_EXHAUSTED), max_connections (RESOURCE_EXHAUSTED), a
 *     token bucket per node: a node over its rate is slowed down (its stream stops being read
 *     until the bucket refills), not refused.
 *
 * Threading: everything runs on the loop thread, including the consumer hooks. The store must
 * not have another write transaction open on that thread while the ingest commits.
 */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/grpc_loop.h"
#include "robot_sre/agent.pb-c.h"
#include "store/store.h"

struct rsre_ingest;

/* Defaults for config fields left 0. */
#define RSRE_INGEST_DEFAULT_RATE 50.0  /* messages per second per node */
#define RSRE_INGEST_DEFAULT_BURST 200u /* token bucket depth per node */
#define RSRE_INGEST_DEFAULT_MAX_CONNS 10000u
#define RSRE_INGEST_DEFAULT_GROUP_MAX 64u
#define RSRE_INGEST_DEFAULT_GROUP_MS 20u
#define RSRE_INGEST_MAX_GROUP 4096u /* upper bound of group_max */

struct rsre_ingest_config {
    /* Listen address, e.g. "0.0.0.0:7443", "127.0.0.1:0" (port chosen by the kernel). */
    const char *listen_addr;
    /* PEM files: tls_cert + tls_key = TLS; with tls_ca, client certificates are required and
     * must name the node (mTLS). All NULL/"" = insecure. */
    const char *tls_ca, *tls_cert, *tls_key;
    /* Largest message accepted (and sent); 0 = RSRE_PBUF_MAX_MESSAGE_BYTES. */
    size_t max_message_bytes;
    /* Per-node token bucket over every message after Hello (and Hellos themselves):
     * rate_per_sec tokens per second, at most rate_burst. 0 = the defaults above. */
    double rate_per_sec;
    uint32_t rate_burst;
    /* Concurrent streams; more are refused with RESOURCE_EXHAUSTED. 0 = default. */
    uint32_t max_connections;
    /* Group commit: at most group_max messages (1..RSRE_INGEST_MAX_GROUP) per transaction,
     * committed at the latest group_ms after the first one arrived. 0 = defaults. */
    uint32_t group_max, group_ms;
    /* ConfigUpdate sent after every Hello: generation (0 = 1) and the node-local actions the
     * aggregator allows (copied; each a valid action id, at most 64). */
    uint64_t config_generation;
    const char *const *action_allowlist;
    size_t n_action_allowlist;
    /* HTTP/2 keepalive (see common/grpc_server.h); 0 = its defaults. */
    uint32_t keepalive_ms, min_client_ping_ms;
};

/*
 * What the ingest hands over. `hello`, `batch` and `result` run inside the write transaction
 * `txn` that will commit the message (with the node's dedupe state); they may write to the
 * store through `txn` and must not commit or abort it. Return 0, or an error: the transaction
 * is then aborted (`aborted` runs), the message is not acknowledged and its stream ends with
 * UNAVAILABLE; the other messages of the group are applied again in a new transaction. The
 * message and `node` are borrowed for the call. `now_ms` is the wall clock (Unix ms) the
 * ingest records for the message. `committed` runs after a transaction committed, before any
 * of its acknowledgements are sent; `aborted` after one was discarded (undo any in-memory
 * effect of the hooks since the last committed/aborted). Any hook may be NULL.
 */
struct rsre_ingest_consumer {
    int (*hello)(void *arg, rsre_store_txn *txn, const char *node,
                 const RobotSre__Agent__V1__Hello *h, int64_t now_ms);
    int (*batch)(void *arg, rsre_store_txn *txn, const char *node,
                 const RobotSre__Agent__V1__SignalBatch *b, int64_t now_ms);
    int (*result)(void *arg, rsre_store_txn *txn, const char *node,
                  const RobotSre__Agent__V1__ActionResult *r, int64_t now_ms);
    void (*committed)(void *arg);
    void (*aborted)(void *arg);
    void *arg;
};

/* Commit-latency histogram: upper bounds in microseconds (the last bucket is +Inf). */
#define RSRE_INGEST_LATENCY_BUCKETS 12
extern const uint32_t rsre_ingest_latency_bounds_us[RSRE_INGEST_LATENCY_BUCKETS - 1];

struct rsre_ingest_stats {
    uint64_t connected; /* nodes with a live stream that sent a Hello */
    uint64_t streams;   /* accepted streams open now */
    uint64_t hellos, batches, signals, duplicates, gaps, lost_batches, rejected_batches;
    uint64_t results, result_duplicates;
    uint64_t refused_identity, refused_protocol, malformed, oversized, replaced, throttled;
    uint64_t commits, commit_failures, consumer_errors, messages_committed;
    uint64_t actions_sent, acks_sent;
    /* Transaction time (begin .. commit returned), microseconds. */
    uint64_t commit_us_sum, commit_us_max;
    uint64_t commit_us_bucket[RSRE_INGEST_LATENCY_BUCKETS]; /* per bucket, not cumulative */
    /* Receipt of a message .. its Ack handed to gRPC, microseconds. */
    uint64_t ack_us_sum, ack_us_max, acked_messages;
};

/*
 * Creates the ingest and starts serving on `gl` (which, with `loop` and `store`, must outlive
 * it). `cfg` and `consumer` are copied. Returns 0 and the ingest in *out; -EINVAL (bad config:
 * no address, group_max too large, invalid allowlist entry), -ENOMEM, or what
 * rsre_grpc_server_create returns (-EADDRINUSE, unreadable TLS files).
 */
int rsre_ingest_create(uv_loop_t *loop, struct rsre_grpc_loop *gl, rsre_store *store,
                       const struct rsre_ingest_config *cfg,
                       const struct rsre_ingest_consumer *consumer, struct rsre_ingest **out);

/* The bound TCP port. */
int rsre_ingest_port(const struct rsre_ingest *ing);

/*
 * Sends `req` on the live stream of `node`, after validating it. Returns 0 (queued: not a
 * promise of delivery; the result comes back through the consumer's `result`), RSRE_ENOTFOUND
 * when the node has no live stream or that stream has not yet got its ConfigUpdate,
 * RSRE_EINVALID when the request does not validate, RSRE_ELIMIT when it is too large or the
 * stream's send queue is full, -ENOMEM. `req` is borrowed for the call.
 */
int rsre_ingest_send_action(struct rsre_ingest *ing, const char *node,
                            const RobotSre__Agent__V1__ActionRequest *req);

/*
 * Replaces the configuration pushed to agents and sends the new ConfigUpdate to every live,
 * configured stream. `generation` must be greater than the current one (-EINVAL otherwise);
 * the allowlist is copied (RSRE_EINVALID for an invalid action id, RSRE_ELIMIT for more than
 * 64).
 */
int rsre_ingest_set_config(struct rsre_ingest *ing, uint64_t generation,
                           const char *const *action_allowlist, size_t n);

/* 1 when `node` has a live stream that has sent its Hello. */
int rsre_ingest_connected(const struct rsre_ingest *ing, const char *node);

/*
 * While a consumer hook runs: the uv_hrtime() at which the message it is applying was received
 * (taken off the gRPC queue on the loop thread); 0 outside a hook. Lets the consumer measure
 * receipt-to-effect latencies (the aggregator's receipt-to-incident-open histogram).
 */
uint64_t rsre_ingest_applying_recv_ns(const struct rsre_ingest *ing);

/* Commits what is waiting for the group timer now (and acknowledges it). */
void rsre_ingest_flush(struct rsre_ingest *ing);

void rsre_ingest_stats(const struct rsre_ingest *ing, struct rsre_ingest_stats *out);

/*
 * Writes the stats in Prometheus text format (metric names rsre_ingest_*) into `buf` of `cap`
 * bytes, NUL-terminated and cut if needed. Returns the length it needed (like snprintf).
 */
size_t rsre_ingest_metrics(const struct rsre_ingest *ing, char *buf, size_t cap);

/*
 * Commits what is waiting, stops accepting, ends every stream (UNAVAILABLE) and frees the
 * ingest; `closed(arg)` runs on the loop once every gRPC op and libuv handle is released (the
 * loop and the grpc loop must keep running until then). NULL is a no-op (closed still runs).
 */
void rsre_ingest_destroy(struct rsre_ingest *ing, void (*closed)(void *), void *arg);

#endif
