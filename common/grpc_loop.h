#ifndef RSRE_GRPC_LOOP_H
#define RSRE_GRPC_LOOP_H

/*
 * Bridges gRPC core's completion queue to a libuv loop. One thread blocks in
 * grpc_completion_queue_next and hands every completed tag to the loop through a locked queue
 * plus uv_async_send; the tag's callback then runs on the loop thread, which owns all state.
 *
 * A tag is a `struct rsre_grpc_op` embedded in the caller's own struct: pass `&op` as the tag of
 * grpc_call_start_batch (or grpc_server_request_call, grpc_channel_watch_connectivity_state...).
 * Its `cb` runs exactly once on the loop with gRPC's `ok` flag.
 */

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rsre_grpc_op;
typedef void (*rsre_grpc_op_cb)(struct rsre_grpc_op *op, int ok);

struct rsre_grpc_op {
    rsre_grpc_op_cb cb;
    struct rsre_grpc_op *_next; /* private: queue link */
    int _ok;                    /* private */
};

struct rsre_grpc_loop;

/* Creates the bridge (and its completion queue and thread) on `loop`. Calls grpc_init(). */
int rsre_grpc_loop_create(uv_loop_t *loop, struct rsre_grpc_loop **out);
/* The completion queue to pass to gRPC calls. Valid until destroy. */
grpc_completion_queue *rsre_grpc_loop_cq(struct rsre_grpc_loop *gl);
/* Number of ops started (rsre_grpc_loop_started) whose callback has not yet run. */
size_t rsre_grpc_loop_pending(const struct rsre_grpc_loop *gl);
/* Call after every successful grpc_call_start_batch (or other tagged call) for accounting. */
void rsre_grpc_loop_started(struct rsre_grpc_loop *gl);

/*
 * Shuts the queue down. Every pending op must already have been cancelled (cancel calls,
 * destroy servers/channels) — their callbacks still run. The thread is joined and the async
 * handle closed; `closed(arg)` runs on the loop when everything is released (the loop must keep
 * running until then). Calls grpc_shutdown().
 */
void rsre_grpc_loop_destroy(struct rsre_grpc_loop *gl, void (*closed)(void *), void *arg);

/* Packs a protobuf-c message into a new byte buffer (caller unrefs with
 * grpc_byte_buffer_destroy); NULL on allocation failure. */
grpc_byte_buffer *rsre_grpc_pack(const ProtobufCMessage *m);
/* New byte buffer holding a copy of `len` bytes. */
grpc_byte_buffer *rsre_grpc_bytes(const uint8_t *data, size_t len);

/*
 * Copies a received byte buffer into one contiguous malloc'd block (*out, *len; free with
 * free()). Returns RSRE_ELIMIT when it is longer than `max`, -ENOMEM, or 0.
 */
int rsre_grpc_flatten(grpc_byte_buffer *bb, size_t max, uint8_t **out, size_t *len);

/* Milliseconds from now as a gRPC deadline (realtime clock). */
gpr_timespec rsre_grpc_deadline_ms(int64_t ms);

/* Maps a grpc_status_code to a short name for logs ("UNAVAILABLE"). */
const char *rsre_grpc_status_name(grpc_status_code code);

#endif
