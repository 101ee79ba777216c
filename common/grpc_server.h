#ifndef RSRE_GRPC_SERVER_H
#define RSRE_GRPC_SERVER_H

/*
 * Server side of one bidirectional streaming method (by default AgentStream.Connect) with gRPC
 * core, on the common/grpc_loop.h bridge: every callback below runs on the loop thread.
 *
 * The server listens on one address (insecure, TLS, or mTLS with client certificates required
 * and verified against tls_ca), keeps a few grpc_server_request_call requests outstanding and
 * answers calls for any other method with UNIMPLEMENTED. For each accepted call it keeps one
 * RECV_MESSAGE outstanding (unless paused) and sends from a bounded queue, one SEND_MESSAGE at
 * a time (the first carries the initial metadata); finishing sends the status after the
 * queue has drained. The peer's address and, with TLS client certificates, its identity
 * (x509 common name, subject alternative names) are available from the call.
 *
 * Lifetime: a call handle is valid from on_call until on_done returns (for accepted calls) —
 * on_done always comes, exactly once, after the call ended for whatever reason (status sent,
 * client cancel, network failure, shutdown). Functions on a call after it ended return an
 * error or do nothing.
 *
 * Threading: every function must be called on the loop thread.
 */

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "common/grpc_loop.h"

struct rsre_grpc_server;
struct rsre_grpc_server_call;

/* AgentStream.Connect, the default method. */
#define RSRE_GRPC_AGENT_CONNECT_METHOD "/robot_sre.agent.v1.AgentStream/Connect"

struct rsre_grpc_server_config {
    /* Listen address: "127.0.0.1:7443", "[::]:0" (port chosen by the kernel), "unix:/path". */
    const char *addr;
    /* Full method path served; NULL = RSRE_GRPC_AGENT_CONNECT_METHOD. */
    const char *method;
    /* PEM files. tls_cert + tls_key = TLS; with tls_ca too, clients must present a certificate
     * signed by tls_ca (mTLS). All NULL/"" = insecure. */
    const char *tls_ca, *tls_cert, *tls_key;
    /* Largest message either way; 0 = RSRE_PBUF_MAX_MESSAGE_BYTES (common/pbuf.h). */
    size_t max_message_bytes;
    /* The server pings idle connections every keepalive_ms (0 = 30000) and drops peers that do
     * not answer. Clients may ping as often as min_client_ping_ms (0 = 5000) without being
     * sent GOAWAY (agents' keepalive_ms must not be below it). */
    uint32_t keepalive_ms, min_client_ping_ms;
    /* Concurrent accepted calls; more are refused with RESOURCE_EXHAUSTED. 0 = 100000. */
    uint32_t max_calls;
    /* Bytes one call may have queued for sending; 0 = 8 MiB. */
    size_t max_queued_bytes;
};

struct rsre_grpc_server_callbacks {
    /* A call for the method arrived. Return 0 to accept it (receiving starts after return), or
     * a grpc_status_code (> 0) to refuse it with that status (no further callbacks for it). */
    int (*on_call)(void *arg, struct rsre_grpc_server_call *c);
    /* One message (`buf` valid during the callback). */
    void (*on_message)(void *arg, struct rsre_grpc_server_call *c, const uint8_t *buf, size_t len);
    /* The client half-closed: no more messages will come, sending still works. NULL = finish
     * the call with OK once the send queue has drained. */
    void (*on_half_close)(void *arg, struct rsre_grpc_server_call *c);
    /* The call is over; `cancelled` is 1 unless the status was delivered normally. The last
     * callback for `c`, which is freed after it returns. */
    void (*on_done)(void *arg, struct rsre_grpc_server_call *c, int cancelled);
    void *arg;
};

/*
 * Creates the server, binds the address and starts serving on `gl`. Returns 0 and the server,
 * -EINVAL (bad config), a negative errno for unreadable TLS files, or -EADDRINUSE when the
 * address cannot be bound (gRPC does not say why; the log has its own message).
 */
int rsre_grpc_server_create(struct rsre_grpc_loop *gl, const struct rsre_grpc_server_config *cfg,
                            const struct rsre_grpc_server_callbacks *cb,
                            struct rsre_grpc_server **out);

/* The bound TCP port (useful with port 0), or 1 for a unix socket. */
int rsre_grpc_server_port(const struct rsre_grpc_server *srv);
/* Accepted calls not yet done. */
size_t rsre_grpc_server_calls(const struct rsre_grpc_server *srv);

/*
 * Stops accepting, cancels every call (each gets on_done) and destroys the server; `closed(arg)`
 * runs on the loop when everything is released. The grpc loop must stay alive until then.
 */
void rsre_grpc_server_shutdown(struct rsre_grpc_server *srv, void (*closed)(void *), void *arg);

/* Queues a copy of `len` bytes for sending. Returns 0, RSRE_ELIMIT when the queue would exceed
 * max_queued_bytes or the message max_message_bytes, -EPIPE when the call is finishing or
 * over, -ENOMEM. */
int rsre_grpc_server_send(struct rsre_grpc_server_call *c, const uint8_t *buf, size_t len);
/* Packs and queues a protobuf-c message (same results). */
int rsre_grpc_server_send_msg(struct rsre_grpc_server_call *c, const ProtobufCMessage *m);
/* Ends the call with `code`/`details` (copied) after everything queued has been sent. */
void rsre_grpc_server_finish(struct rsre_grpc_server_call *c, grpc_status_code code,
                             const char *details);
/* Ends the call now with `code`/`details`; queued messages are discarded. */
void rsre_grpc_server_cancel(struct rsre_grpc_server_call *c, grpc_status_code code,
                             const char *details);
/* Stops (1) or resumes (0) receiving: flow control for a slow consumer. */
void rsre_grpc_server_pause(struct rsre_grpc_server_call *c, int paused);

/* Server-assigned call number, unique within the server. */
uint64_t rsre_grpc_server_call_id(const struct rsre_grpc_server_call *c);
/* Peer address as gRPC names it, e.g. "ipv4:127.0.0.1:53312". Valid until on_done returns. */
const char *rsre_grpc_server_call_peer(const struct rsre_grpc_server_call *c);
/* 1 when TLS authenticated the client (a verified client certificate). */
int rsre_grpc_server_call_authenticated(const struct rsre_grpc_server_call *c);
/* The verified client certificate's common name, or NULL. Valid until on_done returns. */
const char *rsre_grpc_server_call_identity(const struct rsre_grpc_server_call *c);
/* 1 when the verified client certificate names `name` (its CN or a SAN), else 0. */
int rsre_grpc_server_call_peer_is(const struct rsre_grpc_server_call *c, const char *name);
/* Bytes queued for sending and not yet handed to gRPC. */
size_t rsre_grpc_server_call_queued(const struct rsre_grpc_server_call *c);
/* One pointer of caller data per call. */
void rsre_grpc_server_call_set_data(struct rsre_grpc_server_call *c, void *data);
void *rsre_grpc_server_call_data(const struct rsre_grpc_server_call *c);

#endif
