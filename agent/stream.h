#ifndef RSRE_STREAM_H
#define RSRE_STREAM_H

/*
 * The agent's side of AgentStream.Connect (proto/robot_sre/agent.proto, docs/protocol.md,
 * docs/agent-stream.md): a gRPC core bidirectional stream on the agent's libuv loop (completion
 * events arrive through common/grpc_loop.h).
 *
 * On connect it sends Hello (with the spool's state) and waits for the aggregator's first Ack,
 * which removes what is already committed from the spool. Then it sends every spooled batch
 * in order, oldest first, with at most RSRE_STREAM_WINDOW unacknowledged batches in flight
 * (gRPC allows one SEND_MESSAGE at a time, so the rest wait in the spool), then new batches as
 * they are spooled (rsre_stream_kick). Queued action results go before batches. One
 * RECV_MESSAGE is always outstanding; every received message is decoded and validated with
 * common/pbuf.h:
 *   - Ack: rsre_spool_ack(boot_id, committed_seq) for whatever boot it names, and removal of
 *     the results listed in result_request_ids. An Ack for the stream's own boot above the
 *     spool's last_seq means the spool lost batches the aggregator has: on_boot_conflict.
 *   - ActionRequest: on_action, unless it arrives before the call's first ConfigUpdate or has
 *     an invalid field: then the stream itself queues a REFUSED result (when the request_id is
 *     usable; otherwise it is logged and dropped).
 *   - ConfigUpdate: on_config when valid and its generation is greater than the last one
 *     applied on this call; otherwise ignored.
 *   - undecodable or oversized: the call is cancelled (INVALID_ARGUMENT / RESOURCE_EXHAUSTED)
 *     and the stream reconnects.
 * On any failure (status, failed op, no first Ack within RSRE_STREAM_HELLO_TIMEOUT_MS, batches
 * in flight with no Ack for RSRE_STREAM_ACK_TIMEOUT_MS) it waits a delay drawn uniformly from
 * [reconnect_min_ms, min(reconnect_max_ms, reconnect_min_ms * 2^attempt)] (exponential backoff
 * with full jitter; the attempt counter resets when a call gets its first Ack), opens a new
 * channel and call, and resends everything unacknowledged. HTTP/2 keepalive pings every
 * keepalive_ms. mTLS when tls_ca/tls_cert/tls_key are configured (files re-read at each
 * connect, so rotated certificates are picked up).
 *
 * Threading: every function must be called on the loop thread.
 */

#include <stdint.h>
#include <uv.h>

#include "agent/agent.h"
#include "agent/spool.h"

struct rsre_stream;

/* Full method name of AgentStream.Connect. */
#define RSRE_STREAM_METHOD "/robot_sre.agent.v1.AgentStream/Connect"
/* Unacknowledged batches in flight on one call (docs/protocol.md). */
#define RSRE_STREAM_WINDOW 32u
/* Results kept until acknowledged; beyond, the oldest is dropped (logged, counted). */
#define RSRE_STREAM_MAX_RESULTS 1024u
/* The aggregator must answer Hello with an Ack within this time. */
#define RSRE_STREAM_HELLO_TIMEOUT_MS 30000u
/* Batches in flight and no Ack for this long: the call is abandoned and reopened. */
#define RSRE_STREAM_ACK_TIMEOUT_MS 60000u
/* Defaults for config fields left 0. */
#define RSRE_STREAM_DEFAULT_RECONNECT_MIN_MS 500u
#define RSRE_STREAM_DEFAULT_RECONNECT_MAX_MS 30000u
#define RSRE_STREAM_DEFAULT_KEEPALIVE_MS 30000u

struct rsre_stream_callbacks {
    /* An ActionRequest arrived (valid during the call; copy what you keep). The agent answers
     * with rsre_stream_send_result, now or later. May be NULL: every request is refused. */
    void (*on_action)(void *arg, const rsre_action_request *req);
    /* A ConfigUpdate arrived (valid during the call). May be NULL. */
    void (*on_config)(void *arg, const RobotSre__Agent__V1__ConfigUpdate *cu);
    /* The stream went up (1: the first Ack of a call arrived) or down (0). May be NULL. */
    void (*on_state)(void *arg, int up);
    /* The aggregator acknowledged `committed_seq` for the stream's boot, above the spool's
     * `last_seq`: batches it committed were lost from the spool (e.g. a power loss before the
     * spool file was synced). The agent must start a new boot id (rsre_stream_set_boot_id) and
     * number its next batch 1 before it spools another one. May be NULL (only logged). */
    void (*on_boot_conflict)(void *arg, const char *boot_id, uint64_t committed_seq,
                             uint64_t last_seq);
    void *arg;
};

struct rsre_stream_stats {
    int connected;
    uint64_t connects, disconnects, batches_sent, acks, results_sent, bytes_sent;
    uint64_t last_acked_seq; /* of the stream's current boot */
    int64_t last_ack_unix_ms;
    uint64_t attempts;        /* calls started (successful or not) */
    uint64_t batches_resent;  /* batches sent again after a reconnect (unacknowledged) */
    uint64_t results_queued;  /* results waiting for their Ack now */
    uint64_t results_dropped; /* results dropped from a full result queue */
    uint64_t protocol_errors; /* undecodable or invalid messages from the aggregator */
    uint32_t in_flight;       /* batches sent on the current call and not yet acknowledged */
    int last_status;          /* grpc_status_code of the last call that ended; -1 = none */
    uint32_t next_delay_ms;   /* reconnect delay chosen last */
};

/*
 * Creates the stream and starts connecting. `hello` is copied (its boot_id is replaced by
 * `boot_id` and its spool field filled at each connect); it must validate (RSRE_EINVALID
 * otherwise). The loop, grpc loop, spool and config must outlive the stream. Returns 0,
 * -EINVAL, RSRE_EINVALID or -ENOMEM. A failure to reach the aggregator is not an error here:
 * it is retried.
 */
int rsre_stream_create(uv_loop_t *loop, struct rsre_grpc_loop *gl,
                       const struct rsre_agent_config *cfg, struct rsre_spool *spool,
                       const char *boot_id, const RobotSre__Agent__V1__Hello *hello,
                       const struct rsre_stream_callbacks *cb, struct rsre_stream **out);

/* As rsre_stream_create, but the first connection waits until rsre_stream_set_runtime is called
 * or `hold_ms` pass, so that facts learnt asynchronously at start are in the first Hello. */
int rsre_stream_create_held(uv_loop_t *loop, struct rsre_grpc_loop *gl,
                            const struct rsre_agent_config *cfg, struct rsre_spool *spool,
                            const char *boot_id, const RobotSre__Agent__V1__Hello *hello,
                            const struct rsre_stream_callbacks *cb, uint32_t hold_ms,
                            struct rsre_stream **out);

/* New batches were pushed to the spool: send them if connected. */
void rsre_stream_kick(struct rsre_stream *st);

/* Queues an ActionResult (validated, then copied) to send now and resend after reconnects until
 * an Ack lists its request_id. A result for a request_id already queued replaces it. Returns 0,
 * RSRE_EINVALID (logged) or RSRE_ELIMIT (larger than a message may be) or -ENOMEM. */
int rsre_stream_send_result(struct rsre_stream *st, const rsre_action_result *r);

/* Switches the stream to a new boot id (1..36 bytes): the current call is closed and a new one
 * opened at once with a Hello for the new boot. Spooled batches keep their own boot ids. */
int rsre_stream_set_boot_id(struct rsre_stream *st, const char *boot_id);

/* Sets Hello.container_runtime (e.g. "containerd://1.6.20") for every later Hello; when the
 * first connection is held (rsre_stream_create_held) it starts now. Returns 0, -EINVAL (longer than
 * RSRE_STREAM_RUNTIME_MAX) or RSRE_EINVALID (the Hello would not validate; logged). */
#define RSRE_STREAM_RUNTIME_MAX 128
int rsre_stream_set_runtime(struct rsre_stream *st, const char *runtime);

void rsre_stream_stats(const struct rsre_stream *st, struct rsre_stream_stats *out);

/* Cancels the call and stops reconnecting; `closed(arg)` runs on the loop (never before this
 * returns) when every gRPC op has completed and all memory is released. The spool is left as
 * it is: unacknowledged batches stay in it. */
void rsre_stream_close(struct rsre_stream *st, void (*closed)(void *), void *arg);

#endif
