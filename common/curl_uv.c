#include "common/curl_uv.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

#define MOD "http"

enum req_state {
    REQ_ACTIVE = 0, /* in flight, callbacks live */
    REQ_CANCELLED,  /* done runs with -ECANCELED at the next safe point */
    REQ_ABANDONED,  /* no callback runs again; freed at the next safe point */
};

enum req_mode { MODE_UNKNOWN = 0, MODE_BODY, MODE_LINES };

/* One socket curl asked us to watch. Freed in its close callback. */
struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct rsre_http *h;
    struct sock *prev, *next;
};

struct rsre_http_req {
    struct rsre_http *h;
    CURL *easy;
    struct curl_slist *hdrs;
    char *req_body;
    rsre_http_done_cb done;
    rsre_http_line_cb on_line;
    void *arg;
    size_t max_body, max_line;
    char *buf; /* body (MODE_BODY) or the partial line (MODE_LINES) */
    size_t len, cap;
    uint64_t received;
    long status;
    enum req_mode mode;
    enum req_state state;
    int added; /* in the multi handle */
    int err;   /* first error raised from inside a callback */
    int url_secret;
    struct rsre_http_req *prev, *next;
};

struct rsre_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's own timeout */
    uv_timer_t kick;  /* runs deferred work (adds, cancels) from the loop */
    struct rsre_http_req *reqs;
    size_t nreqs;
    struct sock *socks;
    int in_curl; /* > 0 while curl_multi_socket_action runs (callbacks may fire) */
    int closing;
    int open_handles; /* uv handles not yet closed; the struct is freed when it drops to 0 */
};

static int curl_ready;

/* ---- helpers ------------------------------------------------------------------------------ */

static int has_crlf(const char *s) {
    return s && strpbrk(s, "\r\n") != NULL;
}

/* Maps a CURLcode to our codes; the original is logged by the caller. */
static int map_curl(CURLcode cc) {
    switch (cc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return -ECONNRESET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
        return -EACCES;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        return -EPROTO;
    case CURLE_FILESIZE_EXCEEDED:
        return RSRE_ELIMIT;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static void link_req(struct rsre_http *h, struct rsre_http_req *r) {
    r->prev = NULL;
    r->next = h->reqs;
    if (h->reqs) {
        h->reqs->prev = r;
    }
    h->reqs = r;
    h->nreqs++;
}

static void unlink_req(struct rsre_http *h, struct rsre_http_req *r) {
    if (r->prev) {
        r->prev->next = r->next;
    } else if (h->reqs == r) {
        h->reqs = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
    h->nreqs--;
}

static void free_req(struct rsre_http_req *r) {
    if (r->easy) {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdrs);
    free(r->req_body);
    free(r->buf);
    free(r);
}

static void handle_closed(uv_handle_t *hd) {
    struct rsre_http *h = hd->data;
    if (--h->open_handles == 0) {
        free(h);
    }
}

static void sock_closed(uv_handle_t *hd) {
    struct sock *sk = (struct sock *)hd;
    struct rsre_http *h = sk->h;
    free(sk);
    if (--h->open_handles == 0) {
        free(h);
    }
}

static void close_sock(struct rsre_http *h, struct sock *sk) {
    if (sk->prev) {
        sk->prev->next = sk->next;
    } else {
        h->socks = sk->next;
    }
    if (sk->next) {
        sk->next->prev = sk->prev;
    }
    uv_poll_stop(&sk->poll);
    uv_close((uv_handle_t *)&sk->poll, sock_closed);
}

/* Grows r->buf to hold `need` bytes plus a NUL. */
static int reserve(struct rsre_http_req *r, size_t need) {
    if (need + 1 <= r->cap) {
        return 0;
    }
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < need + 1) {
        cap *= 2;
    }
    char *nb = realloc(r->buf, cap);
    if (!nb) {
        return -ENOMEM;
    }
    r->buf = nb;
    r->cap = cap;
    return 0;
}

static void kick_cb(uv_timer_t *t);

static void schedule_kick(struct rsre_http *h) {
    if (!h->closing) {
        uv_timer_start(&h->kick, kick_cb, 0, 0);
    }
}

/* ---- completion --------------------------------------------------------------------------- */

/*
 * Finishes `r`: takes it out of the multi handle and the list, runs its done (unless
 * abandoned) and frees it. Must not run inside a curl callback.
 */
static void finish(struct rsre_http *h, struct rsre_http_req *r, CURLcode cc) {
    if (r->added) {
        curl_multi_remove_handle(h->multi, r->easy);
        r->added = 0;
    }
    unlink_req(h, r);
    if (r->state == REQ_ABANDONED) {
        free_req(r);
        return;
    }
    int rc;
    if (r->state == REQ_CANCELLED) {
        rc = -ECANCELED;
    } else if (r->err) {
        rc = r->err;
    } else {
        rc = map_curl(cc);
        if (rc != 0) {
            const char *url = NULL;
            curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
            RSRE_LOG(RSRE_LOG_DEBUG, MOD, "request failed url=\"%s\" curl=%d err=\"%s\"",
                     r->url_secret ? "<redacted>" : url ? url : "", (int)cc,
                     curl_easy_strerror(cc));
        }
    }
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    /* A clean end of a line stream may leave a last line without its newline. */
    if (rc == 0 && r->mode == MODE_LINES && r->len > 0) {
        r->buf[r->len] = '\0';
        int lrc = r->on_line(r->arg, status, r->buf, r->len);
        r->len = 0;
        if (r->state == REQ_ABANDONED) {
            free_req(r);
            return;
        }
        if (lrc < 0) {
            rc = lrc;
        } else if (r->state == REQ_CANCELLED) {
            rc = -ECANCELED;
        }
    }
    const char *ctype = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK ||
        retry_after < 0) {
        retry_after = 0;
    }
    struct rsre_http_response resp = {
        .status = status,
        .body = "",
        .body_len = 0,
        .content_type = ctype ? ctype : "",
        .bytes_received = r->received,
        .retry_after_s = (int64_t)retry_after,
    };
    if (r->mode == MODE_BODY && r->buf && rc == 0) {
        r->buf[r->len] = '\0';
        resp.body = r->buf;
        resp.body_len = r->len;
    }
    r->done(r->arg, rc, &resp);
    free_req(r);
}

static void check_multi_info(struct rsre_http *h) {
    CURLMsg *msg;
    int left;
    while (h->multi && (msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        char *priv = NULL;
        CURLcode cc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv) {
            finish(h, (struct rsre_http_req *)(void *)priv, cc);
        }
    }
}

/* Deferred work, run outside curl: adds requests started from inside a curl callback, and
 * finishes cancelled and abandoned ones. Restarts the scan after each callback, since a
 * callback may change the list. */
static void process_deferred(struct rsre_http *h) {
    if (h->in_curl || h->closing) {
        return;
    }
    int again = 1;
    while (again) {
        again = 0;
        for (struct rsre_http_req *r = h->reqs; r; r = r->next) {
            if (r->state != REQ_ACTIVE) {
                finish(h, r, CURLE_OK);
                again = 1;
                break;
            }
            if (!r->added) {
                CURLMcode mc = curl_multi_add_handle(h->multi, r->easy);
                if (mc != CURLM_OK) {
                    RSRE_LOG(RSRE_LOG_ERROR, MOD, "curl_multi_add_handle failed code=%d", (int)mc);
                    r->err = -ENOMEM;
                    finish(h, r, CURLE_OK);
                    again = 1;
                    break;
                }
                r->added = 1;
            }
        }
    }
}

static void drive(struct rsre_http *h, curl_socket_t s, int flags) {
    int running = 0;
    h->in_curl++;
    curl_multi_socket_action(h->multi, s, flags, &running);
    h->in_curl--;
    check_multi_info(h);
    process_deferred(h);
}

static void kick_cb(uv_timer_t *t) {
    struct rsre_http *h = t->data;
    process_deferred(h);
}

/* ---- curl -> libuv ------------------------------------------------------------------------ */

static void timer_cb(uv_timer_t *t) {
    struct rsre_http *h = t->data;
    drive(h, CURL_SOCKET_TIMEOUT, 0);
}

static int curl_timer_fn(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    struct rsre_http *h = userp;
    if (h->closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&h->timer);
    } else {
        /* Never call back into curl from here: a 0 timeout runs on the next loop turn. */
        uv_timer_start(&h->timer, timer_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

static void poll_cb(uv_poll_t *p, int status, int events) {
    struct sock *sk = (struct sock *)p;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE) {
            flags |= CURL_CSELECT_IN;
        }
        if (events & UV_WRITABLE) {
            flags |= CURL_CSELECT_OUT;
        }
    }
    drive(sk->h, sk->fd, flags);
}

static int curl_socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)easy;
    struct rsre_http *h = userp;
    struct sock *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            if (h->multi) {
                curl_multi_assign(h->multi, s, NULL);
            }
            close_sock(h, sk);
        }
        return 0;
    }
    if (!sk) {
        sk = calloc(1, sizeof(*sk));
        if (!sk) {
            return -1;
        }
        int rc = uv_poll_init_socket(h->loop, &sk->poll, s);
        if (rc != 0) {
            RSRE_LOG(RSRE_LOG_ERROR, MOD, "uv_poll_init_socket failed fd=%d err=\"%s\"", (int)s,
                     uv_strerror(rc));
            free(sk);
            return -1;
        }
        sk->fd = s;
        sk->h = h;
        sk->next = h->socks;
        if (h->socks) {
            h->socks->prev = sk;
        }
        h->socks = sk;
        h->open_handles++;
        curl_multi_assign(h->multi, s, sk);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) {
        ev |= UV_READABLE;
    }
    if (what & CURL_POLL_OUT) {
        ev |= UV_WRITABLE;
    }
    uv_poll_start(&sk->poll, ev, poll_cb);
    return 0;
}

/* ---- data callbacks ----------------------------------------------------------------------- */

/* Delivers complete lines from `data`, keeping a partial line in r->buf. Returns 0, or the
 * error that stops the transfer. */
static int feed_lines(struct rsre_http_req *r, const char *data, size_t n) {
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t seg = nl ? (size_t)(nl - data) : n;
        if (r->len + seg > r->max_line) {
            RSRE_LOG(RSRE_LOG_WARN, MOD, "stream line longer than %zu bytes", r->max_line);
            return RSRE_ELIMIT;
        }
        if (reserve(r, r->len + seg) != 0) {
            return -ENOMEM;
        }
        memcpy(r->buf + r->len, data, seg);
        r->len += seg;
        if (!nl) {
            return 0;
        }
        data += seg + 1;
        n -= seg + 1;
        size_t len = r->len;
        if (len > 0 && r->buf[len - 1] == '\r') {
            len--;
        }
        r->buf[len] = '\0';
        r->len = 0;
        if (len == 0) {
            continue;
        }
        int rc = r->on_line(r->arg, r->status, r->buf, len);
        if (rc < 0) {
            return rc;
        }
        if (r->state != REQ_ACTIVE) {
            return -ECANCELED;
        }
    }
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct rsre_http_req *r = ud;
    size_t n = size * nmemb;
    if (r->state != REQ_ACTIVE || r->err) {
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    r->received += n;
    if (r->mode == MODE_UNKNOWN) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        r->status = status;
        r->mode = (r->on_line && status >= 200 && status < 300) ? MODE_LINES : MODE_BODY;
    }
    if (r->mode == MODE_BODY) {
        if (r->len + n > r->max_body) {
            r->err = RSRE_ELIMIT;
            return 0;
        }
        if (reserve(r, r->len + n) != 0) {
            r->err = -ENOMEM;
            return 0;
        }
        memcpy(r->buf + r->len, ptr, n);
        r->len += n;
        return n;
    }
    int rc = feed_lines(r, ptr, n);
    if (rc != 0) {
        if (r->state == REQ_ACTIVE) {
            r->err = rc;
        }
        return 0;
    }
    return n;
}

/* ---- public API --------------------------------------------------------------------------- */

int rsre_http_create(uv_loop_t *loop, struct rsre_http **out) {
    *out = NULL;
    if (!curl_ready) {
        CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (cc != CURLE_OK) {
            RSRE_LOG(RSRE_LOG_ERROR, MOD, "curl_global_init failed code=%d", (int)cc);
            return -ENOMEM;
        }
        curl_ready = 1;
    }
    struct rsre_http *h = calloc(1, sizeof(*h));
    if (!h) {
        return -ENOMEM;
    }
    h->loop = loop;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return -ENOMEM;
    }
    uv_timer_init(loop, &h->timer);
    uv_timer_init(loop, &h->kick);
    h->timer.data = h;
    h->kick.data = h;
    h->open_handles = 2;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_fn);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, curl_timer_fn);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    *out = h;
    return 0;
}

void rsre_http_destroy(struct rsre_http *h) {
    if (!h || h->closing) {
        return;
    }
    h->closing = 1;
    struct rsre_http_response resp = {.status = 0, .body = "", .content_type = ""};
    struct rsre_http_req *r;
    while ((r = h->reqs)) {
        if (r->added) {
            curl_multi_remove_handle(h->multi, r->easy);
            r->added = 0;
        }
        unlink_req(h, r);
        if (r->state != REQ_ABANDONED) {
            r->done(r->arg, -ECANCELED, &resp);
        }
        free_req(r);
    }
    CURLM *m = h->multi;
    curl_multi_cleanup(m); /* may call curl_socket_fn(REMOVE) for cached connections */
    h->multi = NULL;
    while (h->socks) {
        close_sock(h, h->socks);
    }
    uv_timer_stop(&h->timer);
    uv_timer_stop(&h->kick);
    uv_close((uv_handle_t *)&h->timer, handle_closed);
    uv_close((uv_handle_t *)&h->kick, handle_closed);
}

size_t rsre_http_active(const struct rsre_http *h) {
    size_t n = 0;
    for (const struct rsre_http_req *r = h->reqs; r; r = r->next) {
        if (r->state != REQ_ABANDONED) {
            n++;
        }
    }
    return n;
}

uv_loop_t *rsre_http_loop(const struct rsre_http *h) {
    return h->loop;
}

#define SETOPT(e, opt, val)                                                                        \
    do {                                                                                           \
        if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) {                                     \
            RSRE_LOG(RSRE_LOG_ERROR, MOD, "curl_easy_setopt(%s) failed", #opt);                    \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static int set_blob(CURL *e, CURLoption opt, const void *data, size_t len) {
    struct curl_blob b = {.data = (void *)data, .len = len, .flags = CURL_BLOB_COPY};
    return curl_easy_setopt(e, opt, &b) == CURLE_OK ? 0 : -EINVAL;
}

static int apply_tls(CURL *e, const struct rsre_http_tls *t) {
    if (!t) {
        return 0;
    }
    if (t->ca_pem && t->ca_pem_len) {
        if (set_blob(e, CURLOPT_CAINFO_BLOB, t->ca_pem, t->ca_pem_len) != 0) {
            return -EINVAL;
        }
    } else if (t->ca_file && *t->ca_file) {
        if (curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file) != CURLE_OK) {
            return -EINVAL;
        }
    }
    if (t->cert_pem && t->cert_pem_len) {
        if (set_blob(e, CURLOPT_SSLCERT_BLOB, t->cert_pem, t->cert_pem_len) != 0) {
            return -EINVAL;
        }
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (t->cert_file && *t->cert_file) {
        if (curl_easy_setopt(e, CURLOPT_SSLCERT, t->cert_file) != CURLE_OK) {
            return -EINVAL;
        }
    }
    if (t->key_pem && t->key_pem_len) {
        if (set_blob(e, CURLOPT_SSLKEY_BLOB, t->key_pem, t->key_pem_len) != 0) {
            return -EINVAL;
        }
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (t->key_file && *t->key_file) {
        if (curl_easy_setopt(e, CURLOPT_SSLKEY, t->key_file) != CURLE_OK) {
            return -EINVAL;
        }
    }
    if (t->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return 0;
}

int rsre_http_request(struct rsre_http *h, const struct rsre_http_opts *o,
                      struct rsre_http_req **out) {
    if (out) {
        *out = NULL;
    }
    if (h->closing) {
        return -ESHUTDOWN;
    }
    if (!o || !o->url || !o->done || o->nheaders > RSRE_HTTP_MAX_HEADERS) {
        return -EINVAL;
    }
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
        return -EINVAL;
    }
    const char *method = o->method ? o->method : "GET";
    if (has_crlf(o->url) || has_crlf(method) || has_crlf(o->bearer_token)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < o->nheaders; i++) {
        if (!o->headers[i] || has_crlf(o->headers[i])) {
            return -EINVAL;
        }
    }
    struct rsre_http_req *r = calloc(1, sizeof(*r));
    if (!r) {
        return -ENOMEM;
    }
    r->h = h;
    r->done = o->done;
    r->on_line = o->on_line;
    r->url_secret = o->url_secret;
    r->arg = o->arg;
    r->max_body = o->max_body ? o->max_body : RSRE_HTTP_DEFAULT_MAX_BODY;
    r->max_line = o->max_line ? o->max_line : RSRE_HTTP_DEFAULT_MAX_LINE;
    r->easy = curl_easy_init();
    if (!r->easy) {
        free(r);
        return -ENOMEM;
    }
    CURL *e = r->easy;
    int rc = -ENOMEM;
    SETOPT(e, CURLOPT_URL, o->url);
    SETOPT(e, CURLOPT_PRIVATE, (char *)r);
    SETOPT(e, CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(e, CURLOPT_WRITEDATA, r);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(e, CURLOPT_USERAGENT, "robot-sre/0.1");
    SETOPT(e, CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(e, CURLOPT_TCP_KEEPIDLE, 30L);
    SETOPT(e, CURLOPT_TCP_KEEPINTVL, 10L);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS,
           (long)(o->connect_timeout_ms ? o->connect_timeout_ms : 10000));
    if (o->timeout_ms) {
        SETOPT(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    }
    if (o->idle_timeout_s) {
        SETOPT(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(e, CURLOPT_LOW_SPEED_TIME, (long)o->idle_timeout_s);
    }
    if (!o->on_line) {
        SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
    }
    if (strcmp(method, "GET") != 0) {
        SETOPT(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (o->body) {
        r->req_body = malloc(o->body_len ? o->body_len : 1);
        if (!r->req_body) {
            goto fail;
        }
        memcpy(r->req_body, o->body, o->body_len);
        SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        SETOPT(e, CURLOPT_POSTFIELDS, r->req_body);
    }
    for (size_t i = 0; i < o->nheaders; i++) {
        struct curl_slist *n = curl_slist_append(r->hdrs, o->headers[i]);
        if (!n) {
            goto fail;
        }
        r->hdrs = n;
    }
    if (o->bearer_token && *o->bearer_token) {
        size_t len = strlen(o->bearer_token) + 32;
        char *hv = malloc(len);
        if (!hv) {
            goto fail;
        }
        snprintf(hv, len, "Authorization: Bearer %s", o->bearer_token);
        struct curl_slist *n = curl_slist_append(r->hdrs, hv);
        /* The header holds a credential: wipe the temporary copy. */
        memset(hv, 0, len);
        free(hv);
        if (!n) {
            goto fail;
        }
        r->hdrs = n;
    }
    struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:");
    if (!n) {
        goto fail;
    }
    r->hdrs = n;
    SETOPT(e, CURLOPT_HTTPHEADER, r->hdrs);
    if (apply_tls(e, o->tls) != 0) {
        rc = -EINVAL;
        goto fail;
    }
    link_req(h, r);
    if (h->in_curl) {
        schedule_kick(h); /* curl forbids adding handles from inside its callbacks */
    } else {
        CURLMcode mc = curl_multi_add_handle(h->multi, e);
        if (mc != CURLM_OK) {
            RSRE_LOG(RSRE_LOG_ERROR, MOD, "curl_multi_add_handle failed code=%d", (int)mc);
            unlink_req(h, r);
            rc = -ENOMEM;
            goto fail;
        }
        r->added = 1;
    }
    if (out) {
        *out = r;
    }
    return 0;
fail:
    free_req(r);
    return rc;
}

void rsre_http_cancel(struct rsre_http_req *r) {
    if (r->state == REQ_ACTIVE) {
        r->state = REQ_CANCELLED;
        schedule_kick(r->h);
    }
}

void rsre_http_abandon(struct rsre_http_req *r) {
    r->state = REQ_ABANDONED;
    schedule_kick(r->h);
}
