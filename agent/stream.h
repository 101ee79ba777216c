#ifndef RSRE_STREAM_H
#define RSRE_STREAM_H

/*
 * The agent's side of AgentStream.Connect (proto/robot_sre/agent.proto, docs/protocol.md):
 * a gRPC core bidirectional stream on the agent's libuv loop (completion events arrive through
 * common/grpc_loop.h). On connect it sends Hello, then every spooled batch in order (a bounded
 * in-flight window), then new batches as they are spooled; an Ack removes batches up to its
 * committed_seq from the spool and results listed in result_request_ids from the result queue.
 * On any failure it reconnects with exponential backoff and full jitter between
 * reconnect_min_ms and reconnect_max_ms, with HTTP/2 keepalive pings every keepalive_ms. mTLS
 * when tls_ca/tls_cert/tls_key are configured.
 */

#include <stdint.h>
#include <uv.h>

#include "agent/agent.h"
#include "agent/spool.h"

struct rsre_stream;

struct rsre_stream_callbacks {
    /* An ActionRequest arrived (valid during the call; copy what you keep). */
    void (*on_action)(void *arg, const rsre_action_request *req);
    /* A ConfigUpdate arrived (valid during the call). */
    void (*on_config)(void *arg, const RobotSre__Agent__V1__ConfigUpdate *cu);
    /* The stream went up (1) or down (0). May be NULL. */
    void (*on_state)(void *arg, int up);
    void *arg;
};

struct rsre_stream_stats {
    int connected;
    uint64_t connects, disconnects, batches_sent, acks, results_sent, bytes_sent;
    uint64_t last_acked_seq;
    int64_t last_ack_unix_ms;
};

/*
 * Creates the stream and starts connecting. `hello` is copied (its spool field is filled at
 * each connect). The spool and config must outlive the stream.
 */
int rsre_stream_create(uv_loop_t *loop, struct rsre_grpc_loop *gl,
                       const struct rsre_agent_config *cfg, struct rsre_spool *spool,
                       const char *boot_id, const RobotSre__Agent__V1__Hello *hello,
                       const struct rsre_stream_callbacks *cb, struct rsre_stream **out);

/* New batches were pushed to the spool: send them if connected. */
void rsre_stream_kick(struct rsre_stream *st);

/* Queues an ActionResult (copied) to send now and resend after reconnects until acked. */
int rsre_stream_send_result(struct rsre_stream *st, const rsre_action_result *r);

void rsre_stream_stats(const struct rsre_stream *st, struct rsre_stream_stats *out);

/* Cancels the call and stops reconnecting; `closed(arg)` runs on the loop when every gRPC op
 * has completed and all memory is released. */
void rsre_stream_close(struct rsre_stream *st, void (*closed)(void *), void *arg);

#endif
