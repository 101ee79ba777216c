/*
 * The admin API server: listener, TLS, connections, and the request pipeline (public route →
 * authentication → path and query checks → route and method → role → body → handler →
 * response, metrics and the login-failure audit). The routes themselves are the table in
 * routes.c.
 */
#define H2O_USE_LIBUV 1

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http2.h>

#include "common/error.h"
#include "common/log.h"
#include "http/api_internal.h"

#define PATH_MAX_LEN 2048
#define PATH_MAX_SEGMENTS 8
#define QUERY_MAX_LEN 1024
#define DEFAULT_MAX_CONNS 256
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_LOGIN_AUDIT 600

struct conn {
    uv_tcp_t tcp; /* first: h2o's close callback gets this handle */
    struct rsre_api *api;
    struct conn *next, **pprev;
};

struct api_handler {
    h2o_handler_t super;
    struct rsre_api *api;
};

struct rsre_api {
    uv_loop_t *loop;
    rsre_store *store;
    struct rsre_metrics *metrics, *own_metrics;
    const struct rsre_taxonomy *tax;
    struct rsre_api_callbacks cbs;
    char *tokens_file;
    int metrics_need_token;
    unsigned max_conns, login_per_min;
    struct api_tokens tokens;

    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl;
    int ctx_inited;

    uv_tcp_t listener;
    int port;
    struct conn *conns;
    size_t nconns;

    double bucket; /* login-failure audit records available */
    uint64_t bucket_at_ms;
    uint64_t suppressed; /* login failures not audited since the last record */

    int closing, listener_closed, disposed;
    uv_idle_t fin1, fin2;
    rsre_api_close_cb close_cb;
    void *close_ud;
};

int64_t rsre__api_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

rsre_store *rsre__api_store(struct rsre_api *api) {
    return api->store;
}

const struct rsre_taxonomy *rsre__api_taxonomy(struct rsre_api *api) {
    return api->tax;
}

const struct rsre_api_callbacks *rsre__api_callbacks(struct rsre_api *api) {
    return &api->cbs;
}

int rsre__api_metrics_need_token(struct rsre_api *api) {
    return api->metrics_need_token;
}

struct rsre_metrics *rsre_api_metrics(rsre_api *api) {
    return api->metrics;
}

int rsre_api_port(const rsre_api *api) {
    return api->port;
}

void rsre_api_set_callbacks(rsre_api *api, const struct rsre_api_callbacks *cbs) {
    if (cbs) {
        api->cbs = *cbs;
    } else {
        memset(&api->cbs, 0, sizeof(api->cbs));
    }
}

/* ---- responses ------------------------------------------------------------------------------- */

int rsre__api_reply(struct api_call *c, int status, json_t *doc) {
    json_decref(c->out);
    c->out = doc;
    c->status = doc ? status : 500;
    return c->status;
}

int rsre__api_fail(struct api_call *c, int status, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *doc = json_object();
    if (doc) {
        json_object_set_new(doc, "error", json_string(msg));
        json_object_set_new(doc, "field", field ? json_string(field) : json_null());
    }
    return rsre__api_reply(c, status, doc);
}

int rsre__api_store_fail(struct api_call *c, int rc, const char *what) {
    if (rc == RSRE_ENOTFOUND) {
        return rsre__api_fail(c, 404, NULL, "%s not found", what);
    }
    RSRE_LOG(RSRE_LOG_ERROR, "api", "store error what=\"%s\" err=\"%s\"", what, rsre_strerror(rc));
    if (rc == -EDEADLK || rc == -EBUSY) {
        return rsre__api_fail(c, 503, NULL, "the store is busy; retry");
    }
    return rsre__api_fail(c, 500, NULL, "store error reading %s: %s", what, rsre_strerror(rc));
}

long rsre__api_header(const struct api_call *c, const char *lname, char *out, size_t cap) {
    h2o_req_t *req = c->h2o_req;
    ssize_t at = req ? h2o_find_header_by_str(&req->headers, lname, strlen(lname), -1) : -1;
    if (at < 0 || cap == 0) {
        return -1;
    }
    const h2o_iovec_t *v = &req->headers.entries[at].value;
    if (v->len >= cap || memchr(v->base, '\0', v->len)) {
        return -1;
    }
    memcpy(out, v->base, v->len);
    out[v->len] = '\0';
    return (long)v->len;
}

const char *rsre__api_query(const struct api_call *c, const char *key) {
    for (size_t i = 0; i < c->nquery; i++) {
        if (!strcmp(c->query[i].key, key)) {
            return c->query[i].value;
        }
    }
    return NULL;
}

int rsre__api_query_u64(struct api_call *c, const char *key, uint64_t min, uint64_t max,
                        uint64_t def, uint64_t *out) {
    const char *v = rsre__api_query(c, key);
    if (!v) {
        *out = def;
        return 0;
    }
    uint64_t n = 0;
    if (!*v || strlen(v) > 19) {
        return rsre__api_fail(c, 400, key, "%s must be a number from %llu to %llu", key,
                              (unsigned long long)min, (unsigned long long)max);
    }
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9') {
            return rsre__api_fail(c, 400, key, "%s must be a number from %llu to %llu", key,
                                  (unsigned long long)min, (unsigned long long)max);
        }
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n < min || n > max) {
        return rsre__api_fail(c, 400, key, "%s must be a number from %llu to %llu", key,
                              (unsigned long long)min, (unsigned long long)max);
    }
    *out = n;
    return 0;
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {413, "Payload Too Large"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
};

static const char *reason_phrase(int status) {
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    return "Error";
}

/* Adds a response header; h2o keeps pointers, so the value is copied into the request's pool
 * (names are literals). */
static void add_header(h2o_req_t *req, const char *name, const char *value) {
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base,
                          v.len);
}

/* Sends the call's response (JSON or text) with the common headers. */
static void send_call(h2o_req_t *req, struct api_call *c, const char *allow) {
    char *body = NULL;
    size_t len = 0;
    const char *ctype = "application/json";
    if (c->text) {
        body = c->text;
        len = c->text_len;
        c->text = NULL;
        ctype = c->content_type ? c->content_type : "text/plain; charset=utf-8";
    } else if (c->out && (body = json_dumps(c->out, JSON_COMPACT))) {
        len = strlen(body);
    }
    if (!body) {
        c->status = 500;
        static const char oom[] = "{\"error\":\"out of memory\",\"field\":null}";
        body = strdup(oom);
        len = body ? strlen(body) : 0;
    }
    req->res.status = c->status;
    req->res.reason = reason_phrase(c->status);
    add_header(req, "content-type", ctype);
    add_header(req, "cache-control", "no-store");
    add_header(req, "x-content-type-options", "nosniff");
    if (c->status == 401) {
        add_header(req, "www-authenticate", "Bearer realm=\"robot-sre\"");
    }
    if (allow) {
        add_header(req, "allow", allow);
    }
    if (c->status == 401 || c->status == 400 || c->status == 413) {
        req->http1_is_persistent = 0;
    }
    /* A newline after JSON, for people reading it with curl. */
    if (!c->content_type || !strncmp(ctype, "application/json", 16)) {
        char *b2 = body ? realloc(body, len + 2) : NULL;
        if (b2) {
            body = b2;
            body[len++] = '\n';
            body[len] = '\0';
        }
    }
    req->res.content_length = len;
    h2o_send_inline(req, body ? body : "", len);
    free(body);
}

/* ---- request checks -------------------------------------------------------------------------- */

static int path_char_ok(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == ':' || ch == '-' || ch == '/';
}

struct seg {
    const char *p;
    size_t n;
};

/*
 * Splits and checks a raw path: 0 with the segments, or an HTTP status with the response set.
 * Nothing is decoded: `%` (so `%2e`), NUL and every byte outside the id alphabet are refused.
 */
static int split_path(struct api_call *c, const char *p, size_t n, struct seg *segs,
                      size_t *nsegs) {
    if (!n || p[0] != '/') {
        return rsre__api_fail(c, 400, NULL, "the path must start with '/'");
    }
    if (n > PATH_MAX_LEN) {
        return rsre__api_fail(c, 400, NULL, "the path is longer than %d bytes", PATH_MAX_LEN);
    }
    for (size_t i = 0; i < n; i++) {
        if (!path_char_ok((unsigned char)p[i])) {
            return rsre__api_fail(c, 400, NULL,
                                  "invalid character 0x%02x in the path (ids are "
                                  "[A-Za-z0-9._:-]; nothing is percent-decoded)",
                                  (unsigned char)p[i]);
        }
    }
    size_t k = 0;
    int too_many = 0;
    for (size_t i = 1; i <= n;) {
        size_t j = i;
        while (j < n && p[j] != '/') {
            j++;
        }
        size_t len = j - i;
        if ((len == 1 && p[i] == '.') || (len == 2 && p[i] == '.' && p[i + 1] == '.')) {
            return rsre__api_fail(c, 400, NULL, "'.' and '..' are not allowed in the path");
        }
        if (len > RSRE_STORE_ID_MAX) {
            return rsre__api_fail(c, 400, NULL, "a path segment is longer than %d bytes",
                                  RSRE_STORE_ID_MAX);
        }
        if (k < PATH_MAX_SEGMENTS) {
            segs[k++] = (struct seg){p + i, len};
        } else {
            too_many = 1;
        }
        i = j + 1;
    }
    *nsegs = too_many ? PATH_MAX_SEGMENTS + 1 : k;
    return 0;
}

/* Whether `segs` match route pattern `pat`; fills c->params when `fill`. */
static int match_route(const char *pat, const struct seg *segs, size_t nsegs, struct api_call *c,
                       int fill) {
    size_t k = 0, np = 0;
    const char *s = pat + 1;
    while (1) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (k >= nsegs) {
            return 0;
        }
        if (len >= 2 && s[0] == '{') {
            if (!segs[k].n || np >= API_MAX_PARAMS) {
                return 0;
            }
            if (fill) {
                memcpy(c->params[np], segs[k].p, segs[k].n);
                c->params[np][segs[k].n] = '\0';
            }
            np++;
        } else if (segs[k].n != len || memcmp(segs[k].p, s, len)) {
            return 0;
        }
        k++;
        if (!e) {
            break;
        }
        s = e + 1;
    }
    return k == nsegs;
}

static int query_char_ok(unsigned char ch) {
    return path_char_ok(ch) && ch != '/';
}

/* Parses "k=v&k2=v2" into c->query. */
static int parse_query(struct api_call *c, const char *q, size_t n) {
    if (n > QUERY_MAX_LEN) {
        return rsre__api_fail(c, 400, NULL, "the query string is longer than %d bytes",
                              QUERY_MAX_LEN);
    }
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&') {
            j++;
        }
        if (j > i) {
            const char *eq = memchr(q + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (q + i)) : j - i;
            size_t vlen = eq ? (size_t)(q + j - eq - 1) : 0;
            const char *v = eq ? eq + 1 : "";
            if (!klen || klen >= sizeof(c->query[0].key)) {
                return rsre__api_fail(c, 400, NULL, "malformed query parameter");
            }
            char key[sizeof(c->query[0].key)];
            for (size_t x = 0; x < klen; x++) {
                unsigned char ch = (unsigned char)q[i + x];
                if (!((ch >= 'a' && ch <= 'z') || ch == '_' || ch == '.')) {
                    return rsre__api_fail(c, 400, NULL, "malformed query parameter name");
                }
                key[x] = (char)ch;
            }
            key[klen] = '\0';
            if (vlen > API_QUERY_VALUE_MAX) {
                return rsre__api_fail(c, 400, key, "%s is longer than %d bytes", key,
                                      API_QUERY_VALUE_MAX);
            }
            for (size_t x = 0; x < vlen; x++) {
                if (!query_char_ok((unsigned char)v[x])) {
                    return rsre__api_fail(c, 400, key,
                                          "invalid character in %s (values are "
                                          "[A-Za-z0-9._:-]; nothing is percent-decoded)",
                                          key);
                }
            }
            if (rsre__api_query(c, key)) {
                return rsre__api_fail(c, 400, key, "%s is given twice", key);
            }
            if (c->nquery == API_MAX_QUERY) {
                return rsre__api_fail(c, 400, NULL, "too many query parameters");
            }
            struct api_query *qq = &c->query[c->nquery++];
            memcpy(qq->key, key, klen + 1);
            memcpy(qq->value, v, vlen);
            qq->value[vlen] = '\0';
        }
        i = j + 1;
    }
    return 0;
}

static size_t json_depth(json_t *j) {
    size_t d = 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            size_t x = json_depth(v);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            size_t x = json_depth(v);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    return 0;
}

static int parse_body(struct api_call *c) {
    const struct api_route *r = c->route;
    if (c->body_len > RSRE_API_BODY_MAX) {
        return rsre__api_fail(c, 413, NULL, "the body is larger than %u bytes", RSRE_API_BODY_MAX);
    }
    if (r->body == BODY_NONE) {
        if (c->body_len) {
            return rsre__api_fail(c, 400, NULL, "this endpoint takes no body");
        }
        return 0;
    }
    if (r->body == BODY_TEXT) {
        if (!c->body_len) {
            return rsre__api_fail(c, 400, NULL, "the body is empty");
        }
        if (memchr(c->body, '\0', c->body_len)) {
            return rsre__api_fail(c, 400, NULL, "the body contains a NUL byte");
        }
        return 0;
    }
    if (!c->body_len) {
        c->json = json_object();
        return c->json ? 0 : rsre__api_fail(c, 500, NULL, "out of memory");
    }
    json_error_t err;
    c->json = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!c->json) {
        return rsre__api_fail(c, 400, NULL, "invalid JSON: %s (line %d, column %d)", err.text,
                              err.line, err.column);
    }
    if (!json_is_object(c->json)) {
        return rsre__api_fail(c, 400, NULL, "the body must be a JSON object");
    }
    if (json_depth(c->json) > RSRE_API_JSON_DEPTH) {
        return rsre__api_fail(c, 400, NULL, "the JSON body is nested deeper than %d levels",
                              RSRE_API_JSON_DEPTH);
    }
    const char *k;
    json_t *v;
    json_object_foreach(c->json, k, v) {
        int known = 0;
        for (const char *const *f = r->fields; f && *f; f++) {
            known |= !strcmp(*f, k);
        }
        if (!known) {
            char field[64];
            snprintf(field, sizeof(field), "%s", k);
            return rsre__api_fail(c, 400, field, "unknown field '%s'", field);
        }
    }
    return 0;
}

/* ---- login failures -------------------------------------------------------------------------- */

static void peer_name(h2o_req_t *req, char *out, size_t cap) {
    struct sockaddr_storage ss;
    snprintf(out, cap, "unknown");
    if (!req->conn->callbacks->get_peername) {
        return;
    }
    socklen_t l = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (!l) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&ss, out, cap);
    } else if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap);
    }
}

/* Copies at most cap-1 bytes of `s`, replacing bytes that are not printable ASCII. */
static void sanitize(const char *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[k++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') ? (char)ch : '?';
    }
    out[k] = '\0';
}

/*
 * Appends "login failure" to the audit log in its own transaction, within the per-minute
 * budget; failures over the budget are counted and reported by the next record.
 */
static void audit_login_failure(struct rsre_api *api, h2o_req_t *req, enum api_auth_result why) {
    static const char *const short_reason[] = {[API_AUTH_OK] = "ok",
                                               [API_AUTH_MISSING] = "missing",
                                               [API_AUTH_MALFORMED] = "malformed",
                                               [API_AUTH_UNKNOWN] = "unknown"};
    const char *lv[] = {short_reason[why]};
    rsre_metrics_add(api->metrics, RSRE_M_HTTP_LOGIN_FAILURES_TOTAL, lv, 1);
    char peer[64], path[200], method[16];
    peer_name(req, peer, sizeof(peer));
    sanitize(req->input.path.base, req->input.path.len, path, sizeof(path));
    sanitize(req->input.method.base, req->input.method.len, method, sizeof(method));
    RSRE_LOG(RSRE_LOG_WARN, "api", "login failure reason=\"%s\" peer=%s method=%s path=\"%s\"",
             rsre__api_auth_reason(why), peer, method, path);
    uint64_t now = mono_ms();
    double cap = api->login_per_min;
    api->bucket += (double)(now - api->bucket_at_ms) * cap / 60000.0;
    api->bucket = api->bucket > cap ? cap : api->bucket;
    api->bucket_at_ms = now;
    if (api->bucket < 1 || !api->store) {
        api->suppressed++;
        return;
    }
    api->bucket -= 1;
    char object[256], detail[512];
    snprintf(object, sizeof(object), "api:%s %s", method, path);
    snprintf(detail, sizeof(detail),
             "{\"peer\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"unaudited_before\":%llu}", peer,
             method, path, (unsigned long long)api->suppressed);
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(api->store, 0, &txn);
    if (!rc) {
        rc = rsre_store_audit_append(txn, "anonymous", "login failure", object,
                                     rsre__api_auth_reason(why), detail, rsre__api_now_ms(), NULL);
        if (rc) {
            rsre_store_txn_abort(txn);
        } else {
            rc = rsre_store_txn_commit(txn);
        }
    }
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "api", "cannot audit a login failure err=\"%s\"",
                 rsre_strerror(rc));
        api->suppressed++;
    } else {
        api->suppressed = 0;
    }
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static int method_is(const h2o_req_t *req, const char *m) {
    size_t n = strlen(m);
    return req->input.method.len == n && !memcmp(req->input.method.base, m, n);
}

static int route_public(struct rsre_api *api, const struct api_route *r) {
    return r->min_role == RSRE_API_ROLE_NONE && !(r->metrics_route && api->metrics_need_token);
}

/* Runs the checks and the handler; the response is left in *c. *allow gets the Allow header
 * of a 405. */
static void handle(struct rsre_api *api, h2o_req_t *req, struct api_call *c, char *allow,
                   size_t allow_cap) {
    const char *raw = req->input.path.base;
    size_t plen = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len;

    /* Public routes are literal paths: an exact match needs no token. */
    int public = 0;
    for (size_t i = 0; i < rsre__api_nroutes; i++) {
        const struct api_route *r = &rsre__api_routes[i];
        if (route_public(api, r) && strlen(r->pattern) == plen && !memcmp(r->pattern, raw, plen)) {
            public = 1;
        }
    }
    if (!public) {
        size_t count = 0;
        ssize_t at = -1, first = -1;
        while ((at = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, at)) != -1) {
            first = first == -1 ? at : first;
            count++;
        }
        const char *v = first >= 0 ? req->headers.entries[first].value.base : NULL;
        size_t vlen = first >= 0 ? req->headers.entries[first].value.len : 0;
        enum api_auth_result ar = rsre__api_authenticate(&api->tokens, v, vlen, count, &c->who);
        if (ar != API_AUTH_OK) {
            audit_login_failure(api, req, ar);
            rsre__api_fail(c, 401, NULL, "%s: send 'Authorization: Bearer <token>'",
                           rsre__api_auth_reason(ar));
            return;
        }
    }

    struct seg segs[PATH_MAX_SEGMENTS];
    size_t nsegs = 0;
    if (split_path(c, raw, plen, segs, &nsegs)) {
        return;
    }
    if (req->input.query_at != SIZE_MAX &&
        parse_query(c, raw + plen + 1, req->input.path.len - plen - 1)) {
        return;
    }
    const struct api_route *found = NULL;
    size_t alen = 0;
    allow[0] = '\0';
    for (size_t i = 0; i < rsre__api_nroutes && nsegs <= PATH_MAX_SEGMENTS; i++) {
        const struct api_route *r = &rsre__api_routes[i];
        if (!match_route(r->pattern, segs, nsegs, c, 0)) {
            continue;
        }
        if (method_is(req, r->method)) {
            found = r;
            break;
        }
        if (!strstr(allow, r->method) && alen + strlen(r->method) + 3 < allow_cap) {
            alen += (size_t)snprintf(allow + alen, allow_cap - alen, "%s%s", alen ? ", " : "",
                                     r->method);
        }
    }
    if (!found) {
        if (alen) {
            rsre__api_fail(c, 405, NULL, "method not allowed here; allowed: %s", allow);
        } else {
            rsre__api_fail(c, 404, NULL, "no such endpoint");
        }
        return;
    }
    allow[0] = '\0';
    c->route = found;
    match_route(found->pattern, segs, nsegs, c, 1);
    for (size_t i = 0; i < c->nquery; i++) {
        int known = 0;
        for (const char *const *q = found->query; q && *q; q++) {
            known |= !strcmp(*q, c->query[i].key);
        }
        if (!known) {
            rsre__api_fail(c, 400, c->query[i].key, "unknown query parameter '%s'",
                           c->query[i].key);
            return;
        }
    }
    enum rsre_api_role need = found->min_role;
    if (found->metrics_route && api->metrics_need_token) {
        need = RSRE_API_ROLE_VIEWER;
    }
    if (need != RSRE_API_ROLE_NONE && (!c->who || c->who->role < need)) {
        RSRE_LOG(RSRE_LOG_WARN, "api", "forbidden operator=%s role=%s route=\"%s %s\"",
                 c->who ? c->who->operator_id : "-",
                 rsre_api_role_name(c->who ? c->who->role : RSRE_API_ROLE_NONE), found->method,
                 found->pattern);
        rsre__api_fail(c, 403, NULL, "this needs the %s role; %s has the %s role",
                       rsre_api_role_name(need), c->who ? c->who->operator_id : "anonymous",
                       rsre_api_role_name(c->who ? c->who->role : RSRE_API_ROLE_NONE));
        return;
    }
    c->body = req->entity.base;
    c->body_len = req->entity.base ? req->entity.len : 0;
    c->h2o_req = req;
    if (parse_body(c)) {
        return;
    }
    c->status = 0;
    found->fn(c);
    if (!c->status) {
        rsre__api_fail(c, 500, NULL, "the handler produced no response");
    }
}

static const char *const metric_methods[] = {"GET",   "POST", "PUT",     "DELETE",
                                             "PATCH", "HEAD", "OPTIONS", NULL};

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
    struct rsre_api *api = ((struct api_handler *)self)->api;
    uint64_t t0 = uv_hrtime();
    struct api_call c = {.api = api, .status = 0};
    char allow[64];
    allow[0] = '\0';
    handle(api, req, &c, allow, sizeof(allow));
    int status = c.status;
    send_call(req, &c, allow[0] ? allow : NULL);
    const char *method = "other";
    for (const char *const *m = metric_methods; *m; m++) {
        if (method_is(req, *m)) {
            method = *m;
        }
    }
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    const char *route = c.route ? c.route->pattern : "unmatched";
    const char *lv[] = {method, route, code};
    rsre_metrics_add(api->metrics, RSRE_M_HTTP_REQUESTS_TOTAL, lv, 1);
    const char *lr[] = {route};
    rsre_metrics_observe(api->metrics, RSRE_M_HTTP_REQUEST_DURATION_SECONDS, lr,
                         (double)(uv_hrtime() - t0) / 1e9);
    RSRE_LOG(RSRE_LOG_DEBUG, "api", "request method=%s route=\"%s\" status=%d operator=%s", method,
             route, status, c.who ? c.who->operator_id : "-");
    json_decref(c.out);
    json_decref(c.json);
    free(c.text);
    return 0;
}

void rsre__api_refresh_gauges(struct rsre_api *api) {
    rsre_metrics_set(api->metrics, RSRE_M_HTTP_CONNECTIONS, NULL, (double)api->nconns);
}

/* ---- connections ----------------------------------------------------------------------------- */

static void free_raw_conn(uv_handle_t *h) {
    free(h);
}

static void maybe_finish_close(struct rsre_api *api);

static void on_conn_closed(uv_handle_t *h) {
    struct conn *c = (struct conn *)h;
    struct rsre_api *api = c->api;
    *c->pprev = c->next;
    if (c->next) {
        c->next->pprev = c->pprev;
    }
    api->nconns--;
    free(c);
    rsre__api_refresh_gauges(api);
    maybe_finish_close(api);
}

static void on_accept(uv_stream_t *l, int status) {
    struct rsre_api *api = (struct rsre_api *)((char *)l - offsetof(struct rsre_api, listener));
    if (status) {
        RSRE_LOG(RSRE_LOG_WARN, "api", "accept failed err=\"%s\"", uv_strerror(status));
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        RSRE_LOG(RSRE_LOG_ERROR, "api", "out of memory accepting a connection");
        return;
    }
    uv_tcp_init(api->loop, &c->tcp);
    if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, free_raw_conn);
        return;
    }
    if (api->closing || api->nconns >= api->max_conns) {
        RSRE_LOG(RSRE_LOG_WARN, "api", "connection refused open=%zu max=%u", api->nconns,
                 api->max_conns);
        uv_close((uv_handle_t *)&c->tcp, free_raw_conn);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->api = api;
    c->next = api->conns;
    if (c->next) {
        c->next->pprev = &c->next;
    }
    c->pprev = &api->conns;
    api->conns = c;
    api->nconns++;
    rsre__api_refresh_gauges(api);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&api->accept_ctx, sock);
}

/* ---- create / close -------------------------------------------------------------------------- */

static int parse_listen(const char *s, struct sockaddr_storage *ss) {
    const char *colon = strrchr(s, ':');
    if (!colon) {
        return RSRE_EINVALID;
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535) {
        return RSRE_EINVALID;
    }
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host)) {
        return RSRE_EINVALID;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) ? RSRE_EINVALID : 0;
    }
    if (!hl) {
        snprintf(host, sizeof(host), "0.0.0.0");
    } else if (!strcmp(host, "localhost")) {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) ? RSRE_EINVALID : 0;
}

/* A bound, listening, non-blocking socket, or a negative errno. */
static int open_listener(const struct sockaddr_storage *ss, int *port) {
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    socklen_t sl =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)ss, sl) || listen(fd, 128)) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    if (getsockname(fd, (struct sockaddr *)&got, &gl)) {
        int e = -errno;
        close(fd);
        return e;
    }
    *port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                            : ((struct sockaddr_in *)&got)->sin_port);
    return fd;
}

static void log_ssl_errors(const char *what) {
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error())) {
        ERR_error_string_n(e, buf, sizeof(buf));
        RSRE_LOG(RSRE_LOG_ERROR, "api", "%s ssl=\"%s\"", what, buf);
    }
}

static int setup_tls(struct rsre_api *api, const char *cert, const char *key) {
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (!ssl) {
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ssl) != 1) {
        RSRE_LOG(RSRE_LOG_ERROR, "api",
                 "cannot use the TLS certificate or key "
                 "cert=\"%s\" key=\"%s\"",
                 cert, key);
        log_ssl_errors("tls");
        SSL_CTX_free(ssl);
        return -EINVAL;
    }
    h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);
    api->ssl = ssl;
    return 0;
}

static void api_free(struct rsre_api *api) {
    if (api->ctx_inited) {
        h2o_config_dispose(&api->config);
    }
    SSL_CTX_free(api->ssl);
    rsre__api_tokens_free(&api->tokens);
    rsre_metrics_destroy(api->own_metrics);
    free(api->tokens_file);
    free(api);
}

static void on_failed_listener_closed(uv_handle_t *h) {
    api_free((struct rsre_api *)((char *)h - offsetof(struct rsre_api, listener)));
}

int rsre_api_create(uv_loop_t *loop, rsre_store *store, struct rsre_metrics *metrics,
                    const struct rsre_api_options *opts, rsre_api **out) {
    static const struct rsre_api_options none;
    opts = opts ? opts : &none;
    if (!loop || !opts->tokens_file || !!opts->tls_cert_file != !!opts->tls_key_file) {
        RSRE_LOG(RSRE_LOG_ERROR, "api",
                 "the admin API needs a loop and a token file; "
                 "TLS needs both a certificate and a key");
        return RSRE_EINVALID;
    }
    struct sockaddr_storage ss;
    const char *listen_at = opts->listen ? opts->listen : RSRE_API_LISTEN_DEFAULT;
    if (parse_listen(listen_at, &ss)) {
        RSRE_LOG(RSRE_LOG_ERROR, "api",
                 "bad listen address (host:port, [v6]:port, "
                 ":port) listen=\"%s\"",
                 listen_at);
        return RSRE_EINVALID;
    }
    struct rsre_api *api = calloc(1, sizeof(*api));
    if (!api || !(api->tokens_file = strdup(opts->tokens_file))) {
        free(api);
        return -ENOMEM;
    }
    api->loop = loop;
    api->store = store;
    api->tax = opts->taxonomy ? opts->taxonomy : rsre_taxonomy_builtin();
    api->metrics_need_token = opts->metrics_need_token;
    api->max_conns = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNS;
    api->login_per_min =
        opts->login_audit_per_minute ? opts->login_audit_per_minute : DEFAULT_LOGIN_AUDIT;
    api->bucket = api->login_per_min;
    api->bucket_at_ms = mono_ms();
    int rc = 0;
    if (!metrics) {
        if ((rc = rsre_metrics_create(&api->own_metrics))) {
            api_free(api);
            return rc;
        }
        metrics = api->own_metrics;
    }
    api->metrics = metrics;
    char why[512];
    if ((rc = rsre__api_tokens_load(api->tokens_file, &api->tokens, why, sizeof(why)))) {
        RSRE_LOG(RSRE_LOG_ERROR, "api", "cannot load the token file err=\"%s\"", why);
        api_free(api);
        return rc;
    }
    if (opts->tls_cert_file && (rc = setup_tls(api, opts->tls_cert_file, opts->tls_key_file))) {
        api_free(api);
        return rc;
    }
    int fd = open_listener(&ss, &api->port);
    if (fd < 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "api", "cannot listen listen=\"%s\" err=\"%s\"", listen_at,
                 strerror(-fd));
        api_free(api);
        return fd;
    }
    if ((rc = uv_tcp_init(loop, &api->listener))) {
        close(fd);
        api_free(api);
        return rc;
    }
    int opened = !(rc = uv_tcp_open(&api->listener, fd));
    if (!opened || (rc = uv_listen((uv_stream_t *)&api->listener, 128, on_accept))) {
        /* Rare: the handle is on the loop now, so the rest is released in its close callback
         * once the loop runs. */
        RSRE_LOG(RSRE_LOG_ERROR, "api", "cannot listen err=\"%s\"", uv_strerror(rc));
        if (!opened) {
            close(fd);
        }
        uv_close((uv_handle_t *)&api->listener, on_failed_listener_closed);
        return rc;
    }

    h2o_config_init(&api->config);
    api->config.server_name = h2o_iovec_init(H2O_STRLIT("robot-sre"));
    api->config.max_request_entity_size = RSRE_API_BODY_MAX;
    api->config.http1.req_timeout =
        opts->request_timeout_ms ? opts->request_timeout_ms : DEFAULT_TIMEOUT_MS;
    api->config.http1.upgrade_to_http2 = 0;
    api->config.http2.idle_timeout = api->config.http1.req_timeout;
    h2o_hostconf_t *host =
        h2o_config_register_host(&api->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct api_handler *h = (struct api_handler *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->api = api;
    h2o_context_init(&api->ctx, loop, &api->config);
    api->ctx_inited = 1;
    api->accept_ctx.ctx = &api->ctx;
    api->accept_ctx.hosts = api->config.hosts;
    api->accept_ctx.ssl_ctx = api->ssl;
    RSRE_LOG(RSRE_LOG_INFO, "api",
             "admin API listening listen=\"%s\" port=%d tls=%s "
             "tokens=%zu",
             listen_at, api->port, api->ssl ? "on" : "off", api->tokens.n);
    *out = api;
    return 0;
}

int rsre_api_reload_tokens(rsre_api *api) {
    struct api_tokens t;
    char why[512];
    int rc = rsre__api_tokens_load(api->tokens_file, &t, why, sizeof(why));
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "api", "token file not reloaded err=\"%s\"", why);
        return rc;
    }
    rsre__api_tokens_free(&api->tokens);
    api->tokens = t;
    RSRE_LOG(RSRE_LOG_INFO, "api", "tokens reloaded tokens=%zu", t.n);
    return 0;
}

static void on_fin2(uv_handle_t *h) {
    struct rsre_api *api = h->data;
    rsre_api_close_cb cb = api->close_cb;
    void *ud = api->close_ud;
    api_free(api);
    if (cb) {
        cb(ud);
    }
}

/* h2o's context closes handles embedded in it: free it two close rounds later, when every
 * handle closed in the same round as fin1 has finished closing. */
static void on_fin1(uv_handle_t *h) {
    struct rsre_api *api = h->data;
    uv_idle_init(api->loop, &api->fin2);
    api->fin2.data = api;
    uv_close((uv_handle_t *)&api->fin2, on_fin2);
}

static void maybe_finish_close(struct rsre_api *api) {
    if (!api->closing || !api->listener_closed || api->nconns || api->disposed) {
        return;
    }
    api->disposed = 1;
    h2o_context_dispose(&api->ctx);
    uv_idle_init(api->loop, &api->fin1);
    api->fin1.data = api;
    uv_close((uv_handle_t *)&api->fin1, on_fin1);
}

static void on_listener_closed(uv_handle_t *h) {
    struct rsre_api *api = (struct rsre_api *)((char *)h - offsetof(struct rsre_api, listener));
    api->listener_closed = 1;
    maybe_finish_close(api);
}

void rsre_api_close(rsre_api *api, rsre_api_close_cb cb, void *ud) {
    if (!api || api->closing) {
        return;
    }
    api->closing = 1;
    api->close_cb = cb;
    api->close_ud = ud;
    uv_close((uv_handle_t *)&api->listener, on_listener_closed);
    /* Shutting both directions makes every connection read EOF: h2o then closes it the normal
     * way (an answer being written fails), and on_conn_closed counts it down. */
    for (struct conn *c = api->conns; c; c = c->next) {
        uv_os_fd_t fd;
        if (!uv_fileno((uv_handle_t *)&c->tcp, &fd)) {
            shutdown(fd, SHUT_RDWR);
        }
    }
    RSRE_LOG(RSRE_LOG_INFO, "api", "admin API closing connections=%zu", api->nconns);
}
