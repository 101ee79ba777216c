#ifndef RSRE_CURL_UV_H
#define RSRE_CURL_UV_H

/*
 * HTTP client on a libuv loop: libcurl's multi-socket API driven by the loop that owns all
 * state (CURLMOPT_SOCKETFUNCTION -> one uv_poll per socket, CURLMOPT_TIMERFUNCTION -> one
 * uv_timer, completion through curl_multi_info_read). Nothing here blocks and nothing runs on
 * another thread; every function must be called on the loop thread.
 *
 * A request either collects the whole response body (bounded by max_body) or, in streaming
 * mode, hands complete lines of a 2xx response to a line callback as they arrive (bounded by
 * max_line), which is what Kubernetes watch streams need. Non-2xx responses in streaming mode
 * are collected whole, like any other body, so the error Status can be read.
 *
 * Callback rules (libuv's): when rsre_http_request fails, no callback of that request ever
 * runs; when it succeeds, `done` runs exactly once, always from the loop and never from inside
 * rsre_http_request, rsre_http_cancel or rsre_http_abandon. rsre_http_destroy is the one
 * exception: it runs the `done` of every request still in flight, before it returns, with
 * -ECANCELED.
 */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rsre_http;     /* one curl multi handle on one loop */
struct rsre_http_req; /* one request in flight */

/* Response as seen by `done`. Everything is owned by the request and valid only during the
 * callback. */
struct rsre_http_response {
    long status;      /* HTTP status; 0 when no response header arrived */
    const char *body; /* NUL-terminated (NUL not counted); "" when none (or in streaming mode
                         for a 2xx response: the lines went to on_line) */
    size_t body_len;
    const char *content_type; /* Content-Type of the response, or "" */
    uint64_t bytes_received;  /* body bytes received (before bounds applied) */
    int64_t retry_after_s;    /* the Retry-After header in seconds (an HTTP date as seconds from
                                 now), 0 when absent or not valid */
};

/*
 * rc: 0 when a complete HTTP response arrived (whatever its status: callers judge status), or
 * a negative code: -ECANCELED (rsre_http_cancel / rsre_http_destroy), -ETIMEDOUT,
 * -ECONNREFUSED, -EHOSTUNREACH (DNS or routing), -ECONNRESET (the peer closed or the
 * transfer was cut short), -EPROTO (TLS or protocol error), -EACCES (TLS certificate or key
 * rejected), RSRE_ELIMIT (body or line longer than its bound), -ENOMEM, -EIO (anything else;
 * the CURLcode is logged), or the negative value an on_line callback returned to stop.
 */
typedef void (*rsre_http_done_cb)(void *arg, int rc, const struct rsre_http_response *resp);

/*
 * Streaming mode: one complete line (without its "\n" or "\r\n"; NUL-terminated; empty lines
 * are skipped) of a 2xx response. `line` is valid only during the call. Return 0 to continue,
 * or a negative code to stop the transfer: `done` then runs with that code. The callback may
 * start, cancel or abandon requests (including its own).
 */
typedef int (*rsre_http_line_cb)(void *arg, long status, const char *line, size_t len);

/* TLS material. File paths and in-memory PEM blobs are alternatives (a blob wins when both
 * are set); blobs are copied by rsre_http_request. */
struct rsre_http_tls {
    const char *ca_file;
    const void *ca_pem;
    size_t ca_pem_len;
    const char *cert_file;
    const void *cert_pem;
    size_t cert_pem_len;
    const char *key_file;
    const void *key_pem;
    size_t key_pem_len;
    int insecure; /* skip peer and host verification (tests and explicit operator choice) */
};

#define RSRE_HTTP_DEFAULT_MAX_BODY (8u << 20)
#define RSRE_HTTP_DEFAULT_MAX_LINE (1u << 20)
#define RSRE_HTTP_MAX_HEADERS 16

struct rsre_http_opts {
    const char *method; /* "GET" when NULL */
    const char *url;    /* http:// or https:// only */
    /* Extra request headers, "Name: value", each without CR/LF. */
    const char *headers[RSRE_HTTP_MAX_HEADERS];
    size_t nheaders;
    const char *bearer_token; /* sent as "Authorization: Bearer ..."; NULL or "" = none */
    const void *body;         /* request body (copied); NULL = none */
    size_t body_len;
    uint32_t timeout_ms;             /* whole transfer; 0 = no limit (watches) */
    uint32_t connect_timeout_ms;     /* 0 = 10 s */
    uint32_t idle_timeout_s;         /* abort when nothing arrives for this long; 0 = never */
    size_t max_body;                 /* 0 = RSRE_HTTP_DEFAULT_MAX_BODY */
    size_t max_line;                 /* streaming: 0 = RSRE_HTTP_DEFAULT_MAX_LINE */
    const struct rsre_http_tls *tls; /* NULL = system CA bundle, no client certificate */
    rsre_http_line_cb on_line;       /* non-NULL selects streaming mode */
    int url_secret;                  /* the URL holds a secret (a bot token): never logged */
    rsre_http_done_cb done;          /* required */
    void *arg;
};

/* Creates a client on `loop`. Calls curl_global_init once per process. */
int rsre_http_create(uv_loop_t *loop, struct rsre_http **out);

/*
 * Cancels every request in flight (each `done` runs now, with -ECANCELED; requests they try
 * to start fail with -ESHUTDOWN) and closes the loop handles. The memory is released in the
 * handles' close callbacks, so the loop must run once more; uv_run(loop, UV_RUN_DEFAULT)
 * then returns once nothing else is active. Must not be called from inside one of this
 * client's callbacks. NULL is a no-op.
 */
void rsre_http_destroy(struct rsre_http *h);

/*
 * Starts a request. Everything in `o` is copied; `o` may be freed on return. On success
 * *out (when out is non-NULL) is a handle valid until `done` has started to run. Returns 0,
 * -EINVAL (missing url/done, a header or token with CR/LF, a scheme other than http/https),
 * -ESHUTDOWN (client being destroyed), -ENOMEM.
 */
int rsre_http_request(struct rsre_http *h, const struct rsre_http_opts *o,
                      struct rsre_http_req **out);

/* Stops a request; its `done` runs later from the loop with -ECANCELED. `r` must still be
 * valid (its done not yet run). */
void rsre_http_cancel(struct rsre_http_req *r);

/* Stops a request whose owner goes away: no callback of it runs again. `r` is invalid
 * afterwards. Safe inside any callback, including r's own on_line. */
void rsre_http_abandon(struct rsre_http_req *r);

/* Requests in flight (not yet completed or abandoned). */
size_t rsre_http_active(const struct rsre_http *h);

/* The loop the client runs on. */
uv_loop_t *rsre_http_loop(const struct rsre_http *h);

#endif
