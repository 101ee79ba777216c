#include "common/grpc_loop.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

struct rsre_grpc_loop {
    uv_loop_t *loop;
    uv_async_t async;
    grpc_completion_queue *cq;
    pthread_t thread;
    pthread_mutex_t mu;
    struct rsre_grpc_op *head, *tail; /* completed, not yet run on the loop */
    size_t pending;
    int shut;
    void (*closed)(void *);
    void *closed_arg;
};

/* Runs completed ops on the loop thread, in completion order. */
static void drain(uv_async_t *a) {
    struct rsre_grpc_loop *gl = a->data;
    pthread_mutex_lock(&gl->mu);
    struct rsre_grpc_op *op = gl->head;
    gl->head = gl->tail = NULL;
    pthread_mutex_unlock(&gl->mu);
    while (op) {
        struct rsre_grpc_op *next = op->_next;
        if (gl->pending > 0) {
            gl->pending--;
        }
        op->cb(op, op->_ok);
        op = next;
    }
}

static void *pump(void *arg) {
    struct rsre_grpc_loop *gl = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(gl->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE || !ev.tag) {
            continue;
        }
        struct rsre_grpc_op *op = ev.tag;
        op->_ok = ev.success;
        op->_next = NULL;
        pthread_mutex_lock(&gl->mu);
        if (gl->tail) {
            gl->tail->_next = op;
        } else {
            gl->head = op;
        }
        gl->tail = op;
        pthread_mutex_unlock(&gl->mu);
        uv_async_send(&gl->async);
    }
    return NULL;
}

int rsre_grpc_loop_create(uv_loop_t *loop, struct rsre_grpc_loop **out) {
    *out = NULL;
    struct rsre_grpc_loop *gl = calloc(1, sizeof(*gl));
    if (!gl) {
        return -ENOMEM;
    }
    grpc_init();
    gl->loop = loop;
    gl->cq = grpc_completion_queue_create_for_next(NULL);
    pthread_mutex_init(&gl->mu, NULL);
    int rc = uv_async_init(loop, &gl->async, drain);
    if (rc) {
        grpc_completion_queue_shutdown(gl->cq);
        grpc_completion_queue_destroy(gl->cq);
        pthread_mutex_destroy(&gl->mu);
        free(gl);
        grpc_shutdown();
        return rc;
    }
    gl->async.data = gl;
    if ((rc = pthread_create(&gl->thread, NULL, pump, gl)) != 0) {
        uv_close((uv_handle_t *)&gl->async, NULL);
        grpc_completion_queue_shutdown(gl->cq);
        grpc_completion_queue_destroy(gl->cq);
        return -rc; /* gl leaks until the loop closes the handle: creation failure is fatal */
    }
    *out = gl;
    return 0;
}

grpc_completion_queue *rsre_grpc_loop_cq(struct rsre_grpc_loop *gl) {
    return gl->cq;
}

size_t rsre_grpc_loop_pending(const struct rsre_grpc_loop *gl) {
    return gl->pending;
}

void rsre_grpc_loop_started(struct rsre_grpc_loop *gl) {
    gl->pending++;
}

static void on_async_closed(uv_handle_t *h) {
    struct rsre_grpc_loop *gl = h->data;
    void (*closed)(void *) = gl->closed;
    void *arg = gl->closed_arg;
    pthread_mutex_destroy(&gl->mu);
    free(gl);
    grpc_shutdown();
    if (closed) {
        closed(arg);
    }
}

void rsre_grpc_loop_destroy(struct rsre_grpc_loop *gl, void (*closed)(void *), void *arg) {
    if (!gl) {
        if (closed) {
            closed(arg);
        }
        return;
    }
    gl->closed = closed;
    gl->closed_arg = arg;
    grpc_completion_queue_shutdown(gl->cq);
    pthread_join(gl->thread, NULL);
    drain(&gl->async); /* run whatever completed before the shutdown */
    grpc_completion_queue_destroy(gl->cq);
    uv_close((uv_handle_t *)&gl->async, on_async_closed);
}

grpc_byte_buffer *rsre_grpc_bytes(const uint8_t *data, size_t len) {
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

grpc_byte_buffer *rsre_grpc_pack(const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

int rsre_grpc_flatten(grpc_byte_buffer *bb, size_t max, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!bb) {
        return RSRE_EPARSE;
    }
    size_t total = grpc_byte_buffer_length(bb);
    if (total > max) {
        return RSRE_ELIMIT;
    }
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf) {
        return -ENOMEM;
    }
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        free(buf);
        return RSRE_EPARSE;
    }
    grpc_slice s;
    size_t off = 0;
    while (grpc_byte_buffer_reader_next(&r, &s)) {
        size_t n = GRPC_SLICE_LENGTH(s);
        if (off + n > total) {
            n = total - off;
        }
        memcpy(buf + off, GRPC_SLICE_START_PTR(s), n);
        off += n;
        grpc_slice_unref(s);
    }
    grpc_byte_buffer_reader_destroy(&r);
    *out = buf;
    *len = off;
    return 0;
}

gpr_timespec rsre_grpc_deadline_ms(int64_t ms) {
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

const char *rsre_grpc_status_name(grpc_status_code code) {
    static const char *const names[] = {
        "OK",        "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",   "UNIMPLEMENTED",      "INTERNAL",
        "UNAVAILABLE", "DATA_LOSS",       "UNAUTHENTICATED"};
    return (unsigned)code < sizeof(names) / sizeof(names[0]) ? names[code] : "?";
}
