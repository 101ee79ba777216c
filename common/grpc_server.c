/*
 * Bidirectional streaming server helper over gRPC core (common/grpc_server.h).
 *
 * Ops per accepted call, each with its own tag embedded in the call struct:
 *   op_close  RECV_CLOSE_ON_SERVER, started at accept, completes when the call is over;
 *   op_recv   one RECV_MESSAGE at a time (none while paused or after the client half-closed);
 *   op_send   one SEND_MESSAGE or, last, SEND_STATUS_FROM_SERVER at a time (the first send
 *             also carries SEND_INITIAL_METADATA).
 * The call is released when op_close has completed and no op is pending. The server is
 * destroyed when its shutdown tag, every request slot and every call have completed.
 */
#include "common/grpc_server.h"

#include <errno.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/pbuf.h"

#define NSLOTS 4
#define TLS_FILE_MAX (1024 * 1024)
#define CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

struct sq_item {
    struct sq_item *next;
    grpc_byte_buffer *bb;
    size_t len;
};

struct rsre_grpc_server_call {
    struct rsre_grpc_server *srv;
    struct rsre_grpc_server_call *prev, *next;
    uint64_t id;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_auth_context *auth;
    struct rsre_grpc_op op_close, op_send, op_recv;
    int pending;
    int close_cancelled; /* RECV_CLOSE_ON_SERVER result */
    int accepted, close_done, initial_md_sent, sending, receiving, paused, half_closed;
    int finishing, status_sent;
    grpc_status_code fin_code;
    char *fin_details;
    grpc_slice fin_slice;
    int have_fin_slice;
    struct sq_item *qhead, *qtail;
    size_t queued;
    grpc_byte_buffer *send_buf, *recv_buf;
    char *peer, *identity;
    int authenticated;
    void *data;
};

struct req_slot {
    struct rsre_grpc_server *srv;
    struct rsre_grpc_op op;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    int active;
};

struct rsre_grpc_server {
    struct rsre_grpc_loop *gl;
    grpc_server *server;
    char *method;
    size_t max_message, max_queued;
    uint32_t max_calls;
    struct rsre_grpc_server_callbacks cb;
    struct req_slot slots[NSLOTS];
    int port;
    struct rsre_grpc_server_call *calls; /* every call struct alive, accepted or not */
    size_t naccepted;
    uint64_t next_id;
    int shutting, shutdown_done;
    struct rsre_grpc_op op_shutdown;
    void (*closed)(void *);
    void *closed_arg;
};

static void request_new(struct req_slot *slot);
static void kick_send(struct rsre_grpc_server_call *c);
static void start_recv(struct rsre_grpc_server_call *c);

/* ---- helpers -------------------------------------------------------------------------------- */

static int read_file(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return -errno;
    }
    char *buf = malloc(TLS_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > TLS_FILE_MAX) {
        free(buf);
        return err ? -EIO : RSRE_ELIMIT;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int set(const char *s) {
    return s && s[0];
}

static void maybe_destroy(struct rsre_grpc_server *srv) {
    if (!srv->shutting || !srv->shutdown_done || srv->calls) {
        return;
    }
    for (int i = 0; i < NSLOTS; i++) {
        if (srv->slots[i].active) {
            return;
        }
    }
    grpc_server_destroy(srv->server);
    void (*closed)(void *) = srv->closed;
    void *arg = srv->closed_arg;
    free(srv->method);
    free(srv);
    if (closed) {
        closed(arg);
    }
}

/* ---- calls ---------------------------------------------------------------------------------- */

static void queue_clear(struct rsre_grpc_server_call *c) {
    struct sq_item *it = c->qhead;
    while (it) {
        struct sq_item *next = it->next;
        grpc_byte_buffer_destroy(it->bb);
        free(it);
        it = next;
    }
    c->qhead = c->qtail = NULL;
    c->queued = 0;
}

static void call_free(struct rsre_grpc_server_call *c) {
    struct rsre_grpc_server *srv = c->srv;
    if (c->accepted) {
        srv->naccepted--;
        if (srv->cb.on_done) {
            srv->cb.on_done(srv->cb.arg, c, c->close_cancelled || !c->status_sent);
        }
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        srv->calls = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    queue_clear(c);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->auth) {
        grpc_auth_context_release(c->auth);
    }
    if (c->have_fin_slice) {
        grpc_slice_unref(c->fin_slice);
    }
    if (c->call) {
        grpc_call_unref(c->call);
    }
    free(c->fin_details);
    free(c->peer);
    free(c->identity);
    free(c);
    maybe_destroy(srv);
}

static void op_finished(struct rsre_grpc_server_call *c) {
    if (--c->pending == 0 && c->close_done) {
        call_free(c);
    }
}

static int start_batch(struct rsre_grpc_server_call *c, const grpc_op *ops, size_t n,
                       struct rsre_grpc_op *tag) {
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        RSRE_LOG(RSRE_LOG_ERROR, "grpc_server", "grpc_call_start_batch failed call=%llu code=%d",
                 (unsigned long long)c->id, (int)e);
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_INTERNAL, "start_batch failed", NULL);
        return -1;
    }
    c->pending++;
    rsre_grpc_loop_started(c->srv->gl);
    return 0;
}

static void on_close(struct rsre_grpc_op *op, int ok) {
    struct rsre_grpc_server_call *c = CONTAINER_OF(op, struct rsre_grpc_server_call, op_close);
    (void)ok;
    c->close_done = 1;
    queue_clear(c);
    op_finished(c);
}

static void on_send(struct rsre_grpc_op *op, int ok) {
    struct rsre_grpc_server_call *c = CONTAINER_OF(op, struct rsre_grpc_server_call, op_send);
    if (c->send_buf) {
        grpc_byte_buffer_destroy(c->send_buf);
        c->send_buf = NULL;
    }
    c->sending = 0;
    if (ok && !c->close_done) {
        kick_send(c);
    } else {
        queue_clear(c);
    }
    op_finished(c);
}

/* Starts the next send: a queued message, else the status when finishing. */
static void kick_send(struct rsre_grpc_server_call *c) {
    if (c->sending || c->close_done || c->status_sent) {
        return;
    }
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!c->initial_md_sent && (c->qhead || c->finishing)) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
    }
    if (c->qhead) {
        struct sq_item *it = c->qhead;
        c->qhead = it->next;
        if (!c->qhead) {
            c->qtail = NULL;
        }
        c->queued -= it->len;
        c->send_buf = it->bb;
        free(it);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->send_buf;
        n++;
    } else if (c->finishing) {
        c->fin_slice = grpc_slice_from_copied_string(c->fin_details ? c->fin_details : "");
        c->have_fin_slice = 1;
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.trailing_metadata_count = 0;
        ops[n].data.send_status_from_server.status = c->fin_code;
        ops[n].data.send_status_from_server.status_details = &c->fin_slice;
        n++;
        c->status_sent = 1;
    } else {
        return;
    }
    c->op_send.cb = on_send;
    if (start_batch(c, ops, n, &c->op_send) != 0) {
        if (c->send_buf) {
            grpc_byte_buffer_destroy(c->send_buf);
            c->send_buf = NULL;
        }
        return;
    }
    c->initial_md_sent = 1;
    c->sending = 1;
}

static void on_recv(struct rsre_grpc_op *op, int ok) {
    struct rsre_grpc_server_call *c = CONTAINER_OF(op, struct rsre_grpc_server_call, op_recv);
    struct rsre_grpc_server *srv = c->srv;
    grpc_byte_buffer *bb = c->recv_buf;
    c->recv_buf = NULL;
    c->receiving = 0;
    if (ok && !bb) {
        c->half_closed = 1;
        if (srv->cb.on_half_close) {
            srv->cb.on_half_close(srv->cb.arg, c);
        } else {
            rsre_grpc_server_finish(c, GRPC_STATUS_OK, NULL);
        }
    } else if (ok && !c->close_done) {
        uint8_t *buf;
        size_t len;
        int rc = rsre_grpc_flatten(bb, srv->max_message, &buf, &len);
        if (rc) {
            rsre_grpc_server_cancel(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "message too large");
        } else {
            if (srv->cb.on_message) {
                srv->cb.on_message(srv->cb.arg, c, buf, len);
            }
            free(buf);
            start_recv(c);
        }
    }
    if (bb) {
        grpc_byte_buffer_destroy(bb);
    }
    op_finished(c);
}

static void start_recv(struct rsre_grpc_server_call *c) {
    if (c->receiving || c->paused || c->half_closed || c->close_done || !c->accepted) {
        return;
    }
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    c->op_recv.cb = on_recv;
    if (start_batch(c, &op, 1, &c->op_recv) == 0) {
        c->receiving = 1;
    }
}

/* Reads the peer's address and TLS identity. */
static void read_peer(struct rsre_grpc_server_call *c) {
    char *peer = grpc_call_get_peer(c->call);
    c->peer = strdup(peer ? peer : "");
    gpr_free(peer);
    c->auth = grpc_call_auth_context(c->call);
    if (!c->auth) {
        return;
    }
    c->authenticated = grpc_auth_context_peer_is_authenticated(c->auth);
    if (!c->authenticated) {
        return;
    }
    grpc_auth_property_iterator it =
        grpc_auth_context_find_properties_by_name(c->auth, GRPC_X509_CN_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (p && p->value) {
        c->identity = strndup(p->value, p->value_length);
    }
}

/* Takes a new call from a request slot. */
static void on_request(struct rsre_grpc_op *op, int ok) {
    struct req_slot *slot = CONTAINER_OF(op, struct req_slot, op);
    struct rsre_grpc_server *srv = slot->srv;
    slot->active = 0;
    if (!ok || !slot->call) {
        grpc_call_details_destroy(&slot->details);
        grpc_metadata_array_destroy(&slot->md);
        if (slot->call) {
            grpc_call_unref(slot->call);
            slot->call = NULL;
        }
        if (!srv->shutting) {
            request_new(slot);
        }
        maybe_destroy(srv);
        return;
    }
    struct rsre_grpc_server_call *c = calloc(1, sizeof(*c));
    if (!c) {
        grpc_call_cancel_with_status(slot->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                                     NULL);
        grpc_call_unref(slot->call);
        slot->call = NULL;
        grpc_call_details_destroy(&slot->details);
        grpc_metadata_array_destroy(&slot->md);
        if (!srv->shutting) {
            request_new(slot);
        }
        return;
    }
    c->srv = srv;
    c->id = ++srv->next_id;
    c->call = slot->call;
    c->details = slot->details;
    c->md = slot->md;
    slot->call = NULL;
    c->next = srv->calls;
    if (srv->calls) {
        srv->calls->prev = c;
    }
    srv->calls = c;
    if (!srv->shutting) {
        request_new(slot);
    }
    read_peer(c);

    c->op_close.cb = on_close;
    grpc_op cop;
    memset(&cop, 0, sizeof(cop));
    cop.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    cop.data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (start_batch(c, &cop, 1, &c->op_close) != 0) {
        c->close_done = 1;
        call_free(c);
        return;
    }
    int refuse = 0;
    const char *why = NULL;
    if (grpc_slice_str_cmp(c->details.method, srv->method) != 0) {
        refuse = GRPC_STATUS_UNIMPLEMENTED;
        why = "unknown method";
    } else if (srv->shutting) {
        refuse = GRPC_STATUS_UNAVAILABLE;
        why = "server shutting down";
    } else if (srv->naccepted >= srv->max_calls) {
        refuse = GRPC_STATUS_RESOURCE_EXHAUSTED;
        why = "too many calls";
    } else if (srv->cb.on_call) {
        refuse = srv->cb.on_call(srv->cb.arg, c);
        why = "refused";
    }
    if (refuse > 0) {
        RSRE_LOG(RSRE_LOG_INFO, "grpc_server", "call refused peer=%s status=%s reason=\"%s\"",
                 c->peer, rsre_grpc_status_name((grpc_status_code)refuse), why);
        rsre_grpc_server_finish(c, (grpc_status_code)refuse, why);
        return;
    }
    c->accepted = 1;
    srv->naccepted++;
    start_recv(c);
}

static void request_new(struct req_slot *slot) {
    struct rsre_grpc_server *srv = slot->srv;
    grpc_call_details_init(&slot->details);
    grpc_metadata_array_init(&slot->md);
    slot->call = NULL;
    slot->op.cb = on_request;
    grpc_completion_queue *cq = rsre_grpc_loop_cq(srv->gl);
    grpc_call_error e = grpc_server_request_call(srv->server, &slot->call, &slot->details,
                                                 &slot->md, cq, cq, &slot->op);
    if (e != GRPC_CALL_OK) {
        RSRE_LOG(RSRE_LOG_ERROR, "grpc_server", "grpc_server_request_call failed code=%d", (int)e);
        grpc_call_details_destroy(&slot->details);
        grpc_metadata_array_destroy(&slot->md);
        return;
    }
    slot->active = 1;
    rsre_grpc_loop_started(srv->gl);
}

/* ---- server --------------------------------------------------------------------------------- */

static grpc_server_credentials *server_creds(const struct rsre_grpc_server_config *cfg, int *err) {
    *err = 0;
    if (!set(cfg->tls_cert) && !set(cfg->tls_key) && !set(cfg->tls_ca)) {
        return grpc_insecure_server_credentials_create();
    }
    if (!set(cfg->tls_cert) || !set(cfg->tls_key)) {
        RSRE_LOG(RSRE_LOG_ERROR, "grpc_server", "TLS needs both tls_cert and tls_key");
        *err = -EINVAL;
        return NULL;
    }
    char *ca = NULL, *cert = NULL, *key = NULL;
    const char *bad = NULL;
    int rc = 0;
    if (set(cfg->tls_ca) && (rc = read_file(cfg->tls_ca, &ca))) {
        bad = cfg->tls_ca;
    } else if ((rc = read_file(cfg->tls_cert, &cert))) {
        bad = cfg->tls_cert;
    } else if ((rc = read_file(cfg->tls_key, &key))) {
        bad = cfg->tls_key;
    }
    grpc_server_credentials *creds = NULL;
    if (bad) {
        RSRE_LOG(RSRE_LOG_ERROR, "grpc_server", "cannot read TLS file path=%s err=\"%s\"", bad,
                 rsre_strerror(rc));
        *err = rc;
    } else {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        creds = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (!creds) {
            *err = -EINVAL;
        }
    }
    free(ca);
    free(cert);
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    return creds;
}

int rsre_grpc_server_create(struct rsre_grpc_loop *gl, const struct rsre_grpc_server_config *cfg,
                            const struct rsre_grpc_server_callbacks *cb,
                            struct rsre_grpc_server **out) {
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (!gl || !cfg || !set(cfg->addr)) {
        return -EINVAL;
    }
    int err;
    grpc_server_credentials *creds = server_creds(cfg, &err);
    if (!creds) {
        return err ? err : -EINVAL;
    }
    struct rsre_grpc_server *srv = calloc(1, sizeof(*srv));
    if (!srv ||
        !(srv->method = strdup(cfg->method ? cfg->method : RSRE_GRPC_AGENT_CONNECT_METHOD))) {
        free(srv);
        grpc_server_credentials_release(creds);
        return -ENOMEM;
    }
    srv->gl = gl;
    if (cb) {
        srv->cb = *cb;
    }
    srv->max_message =
        cfg->max_message_bytes ? cfg->max_message_bytes : RSRE_PBUF_MAX_MESSAGE_BYTES;
    srv->max_queued = cfg->max_queued_bytes ? cfg->max_queued_bytes : 8u * 1024u * 1024u;
    srv->max_calls = cfg->max_calls ? cfg->max_calls : 100000u;
    uint32_t keepalive = cfg->keepalive_ms ? cfg->keepalive_ms : 30000u;
    uint32_t min_ping = cfg->min_client_ping_ms ? cfg->min_client_ping_ms : 5000u;
    int maxmsg = srv->max_message > (size_t)INT32_MAX ? INT32_MAX : (int)srv->max_message;
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = maxmsg}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = maxmsg}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = (int)keepalive}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
         {.integer = (int)(keepalive < 20000 ? keepalive : 20000)}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER,
         (char *)GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         {.integer = (int)min_ping}},
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        /* No BDP probing: a PING on every read burst, its ack and a timer per connection cost
         * more than the batches of a few kB need (docs/performance.md, change 6). Flow control
         * still opens the window for the message in progress, so 1 MiB messages pass. */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_BDP_PROBE, {.integer = 0}},
        /* A second server on the same port must fail, not share it silently. */
        {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
    };
    grpc_channel_args cargs = {sizeof(args) / sizeof(args[0]), args};
    srv->server = grpc_server_create(&cargs, NULL);
    grpc_server_register_completion_queue(srv->server, rsre_grpc_loop_cq(gl), NULL);
    srv->port = grpc_server_add_http2_port(srv->server, cfg->addr, creds);
    grpc_server_credentials_release(creds);
    if (srv->port == 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "grpc_server", "cannot listen on %s", cfg->addr);
        grpc_server_destroy(srv->server); /* never started, no listener: no shutdown needed */
        free(srv->method);
        free(srv);
        return -EADDRINUSE;
    }
    grpc_server_start(srv->server);
    for (int i = 0; i < NSLOTS; i++) {
        srv->slots[i].srv = srv;
        request_new(&srv->slots[i]);
    }
    RSRE_LOG(RSRE_LOG_INFO, "grpc_server", "listening addr=%s port=%d tls=%s method=%s", cfg->addr,
             srv->port,
             set(cfg->tls_ca)     ? "mtls"
             : set(cfg->tls_cert) ? "tls"
                                  : "off",
             srv->method);
    *out = srv;
    return 0;
}

int rsre_grpc_server_port(const struct rsre_grpc_server *srv) {
    return srv ? srv->port : 0;
}

size_t rsre_grpc_server_calls(const struct rsre_grpc_server *srv) {
    return srv ? srv->naccepted : 0;
}

static void on_shutdown(struct rsre_grpc_op *op, int ok) {
    struct rsre_grpc_server *srv = CONTAINER_OF(op, struct rsre_grpc_server, op_shutdown);
    (void)ok;
    srv->shutdown_done = 1;
    maybe_destroy(srv);
}

void rsre_grpc_server_shutdown(struct rsre_grpc_server *srv, void (*closed)(void *), void *arg) {
    if (!srv) {
        if (closed) {
            closed(arg);
        }
        return;
    }
    if (srv->shutting) {
        return;
    }
    srv->shutting = 1;
    srv->closed = closed;
    srv->closed_arg = arg;
    srv->op_shutdown.cb = on_shutdown;
    grpc_server_shutdown_and_notify(srv->server, rsre_grpc_loop_cq(srv->gl), &srv->op_shutdown);
    rsre_grpc_loop_started(srv->gl);
    grpc_server_cancel_all_calls(srv->server);
}

/* ---- per call ------------------------------------------------------------------------------- */

static int enqueue(struct rsre_grpc_server_call *c, grpc_byte_buffer *bb, size_t len) {
    struct sq_item *it = malloc(sizeof(*it));
    if (!it) {
        grpc_byte_buffer_destroy(bb);
        return -ENOMEM;
    }
    it->next = NULL;
    it->bb = bb;
    it->len = len;
    if (c->qtail) {
        c->qtail->next = it;
    } else {
        c->qhead = it;
    }
    c->qtail = it;
    c->queued += len;
    kick_send(c);
    return 0;
}

int rsre_grpc_server_send(struct rsre_grpc_server_call *c, const uint8_t *buf, size_t len) {
    if (!c || (len && !buf)) {
        return -EINVAL;
    }
    if (c->finishing || c->close_done || c->status_sent) {
        return -EPIPE;
    }
    if (len > c->srv->max_message || c->queued + len > c->srv->max_queued) {
        return RSRE_ELIMIT;
    }
    grpc_byte_buffer *bb = rsre_grpc_bytes(buf, len);
    if (!bb) {
        return -ENOMEM;
    }
    return enqueue(c, bb, len);
}

int rsre_grpc_server_send_msg(struct rsre_grpc_server_call *c, const ProtobufCMessage *m) {
    if (!c || !m) {
        return -EINVAL;
    }
    if (c->finishing || c->close_done || c->status_sent) {
        return -EPIPE;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    if (len > c->srv->max_message || c->queued + len > c->srv->max_queued) {
        return RSRE_ELIMIT;
    }
    grpc_byte_buffer *bb = rsre_grpc_pack(m);
    if (!bb) {
        return -ENOMEM;
    }
    return enqueue(c, bb, len);
}

void rsre_grpc_server_finish(struct rsre_grpc_server_call *c, grpc_status_code code,
                             const char *details) {
    if (!c || c->finishing || c->close_done) {
        return;
    }
    c->finishing = 1;
    c->fin_code = code;
    c->fin_details = details ? strdup(details) : NULL;
    kick_send(c);
}

void rsre_grpc_server_cancel(struct rsre_grpc_server_call *c, grpc_status_code code,
                             const char *details) {
    if (!c || c->close_done) {
        return;
    }
    queue_clear(c);
    grpc_call_cancel_with_status(c->call, code, details ? details : "", NULL);
}

void rsre_grpc_server_pause(struct rsre_grpc_server_call *c, int paused) {
    if (!c) {
        return;
    }
    c->paused = paused ? 1 : 0;
    if (!c->paused) {
        start_recv(c);
    }
}

uint64_t rsre_grpc_server_call_id(const struct rsre_grpc_server_call *c) {
    return c ? c->id : 0;
}

const char *rsre_grpc_server_call_peer(const struct rsre_grpc_server_call *c) {
    return c && c->peer ? c->peer : "";
}

int rsre_grpc_server_call_authenticated(const struct rsre_grpc_server_call *c) {
    return c ? c->authenticated : 0;
}

const char *rsre_grpc_server_call_identity(const struct rsre_grpc_server_call *c) {
    return c ? c->identity : NULL;
}

int rsre_grpc_server_call_peer_is(const struct rsre_grpc_server_call *c, const char *name) {
    if (!c || !c->auth || !c->authenticated || !name) {
        return 0;
    }
    size_t n = strlen(name);
    const char *props[] = {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME};
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        grpc_auth_property_iterator it =
            grpc_auth_context_find_properties_by_name(c->auth, props[i]);
        const grpc_auth_property *p;
        while ((p = grpc_auth_property_iterator_next(&it))) {
            if (p->value && p->value_length == n && memcmp(p->value, name, n) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

size_t rsre_grpc_server_call_queued(const struct rsre_grpc_server_call *c) {
    return c ? c->queued : 0;
}

void rsre_grpc_server_call_set_data(struct rsre_grpc_server_call *c, void *data) {
    if (c) {
        c->data = data;
    }
}

void *rsre_grpc_server_call_data(const struct rsre_grpc_server_call *c) {
    return c ? c->data : NULL;
}
