/* HTTP-based kinds (minio, registry, http, http5xx): libcurl easy requests, run in the thread
 * pool, each bounded by the probe's timeout (connect and whole transfer) and a body bound. */
#include "probes/probes_internal.h"

#include "common/error.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX (1u << 20)     /* minio, registry, http bodies kept */
#define METRICS_MAX (32u << 20) /* http5xx exposition */
#define SERIES_MAX 100000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct body {
    char *buf;
    size_t len, cap, max;
    int over;
};

struct reply {
    long status;
    struct body body;
    char www_auth[256];
    char curl_err[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
    struct body *b = arg;
    size_t len = sz * n;
    if (b->len + len > b->max) {
        b->over = 1;
        return 0;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            return 0;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg) {
    struct reply *r = arg;
    size_t len = sz * n;
    if (len > 17 && strncasecmp(p, "WWW-Authenticate:", 17) == 0) {
        size_t k = 17;
        while (k < len && p[k] == ' ') {
            k++;
        }
        size_t m = len - k;
        while (m > 0 && (p[k + m - 1] == '\r' || p[k + m - 1] == '\n')) {
            m--;
        }
        if (m >= sizeof r->www_auth) {
            m = sizeof r->www_auth - 1;
        }
        memcpy(r->www_auth, p + k, m);
        r->www_auth[m] = '\0';
    }
    return len;
}

/* Performs one request. Returns 0 when a response arrived (any status) or fills res with the
 * transport failure and returns -1. The body is freed by the caller (free(r->body.buf)). */
static int request(const struct rsre_probe_def *def, const char *method, const char *url,
                   const char *const *headers, int basic_auth, size_t max_body, struct reply *r,
                   struct rsre_probe_result *res) {
    pthread_once(&curl_once, curl_init);
    memset(r, 0, sizeof *r);
    r->body.max = max_body;
    CURL *h = curl_easy_init();
    if (!h) {
        rsre__probe_fail(res, "ENOMEM", "%s %s: cannot create a request", method, url);
        return -1;
    }
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++) {
        struct curl_slist *t = curl_slist_append(hl, headers[i]);
        if (t) {
            hl = t;
        }
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)def->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)def->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "robot-sre-probe/1");
    if (hl) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    }
    if (def->ca_file[0]) {
        curl_easy_setopt(h, CURLOPT_CAINFO, def->ca_file);
    }
    if (basic_auth && def->user[0]) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, def->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, def->password);
    }
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    if (cc == CURLE_OK) {
        return 0;
    }
    const char *code = "EIO";
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        code = "ECONNREFUSED";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        code = "ETIMEDOUT";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        code = "EHOSTUNREACH";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        code = "TLS_VERIFY";
        break;
    case CURLE_SSL_CONNECT_ERROR:
        code = "TLS";
        break;
    case CURLE_WRITE_ERROR:
        code = r->body.over ? "BODY_LIMIT" : "EIO";
        break;
    default:
        break;
    }
    rsre__probe_fail(res, code, "%s %s: %s", method, url,
                     r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc));
    free(r->body.buf);
    r->body.buf = NULL;
    return -1;
}

/* Joins base (without a trailing slash) and path into out; -1 when it does not fit. */
static int join(char *out, size_t cap, const char *base, const char *path) {
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') {
        bl--;
    }
    int n = snprintf(out, cap, "%.*s%s", (int)bl, base, path);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- minio -------------------------------------------------------------------------- */

void rsre__probe_minio(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    static const char *const paths[] = {"/minio/health/live", "/minio/health/cluster"};
    for (size_t i = 0; i < 2; i++) {
        char url[640];
        struct reply r;
        if (join(url, sizeof url, def->url, paths[i]) != 0) {
            rsre__probe_fail(res, "EINVAL", "minio: url too long");
            return;
        }
        if (request(def, "GET", url, NULL, 1, BODY_MAX, &r, res) != 0) {
            return;
        }
        free(r.body.buf);
        if (r.status != 200) {
            char code[24];
            snprintf(code, sizeof code, "HTTP_%ld", r.status);
            rsre__probe_fail(res, code, "minio GET %s: status %ld%s", paths[i], r.status,
                             r.status == 503 && i == 1 ? " (no write quorum)" : "");
            return;
        }
    }
    res->ok = 1;
}

/* ---- registry ----------------------------------------------------------------------- */

static const char *const MANIFEST_ACCEPT =
    "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

/* First errors[].code and message of a registry error body, if any. */
static void registry_error(const struct body *b, char *code, size_t ccap, char *msg, size_t mcap) {
    code[0] = msg[0] = '\0';
    if (!b->buf) {
        return;
    }
    json_error_t je;
    json_t *j = json_loadb(b->buf, b->len, 0, &je);
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    const char *c = json_string_value(json_object_get(e0, "code"));
    const char *m = json_string_value(json_object_get(e0, "message"));
    if (c) {
        snprintf(code, ccap, "%s", c);
    }
    if (m) {
        snprintf(msg, mcap, "%s", m);
    }
    json_decref(j);
}

static int valid_ref_part(const char *s, size_t n, const char *extra) {
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i])) {
            return 0;
        }
    }
    return 1;
}

void rsre__probe_registry(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    char url[1024];
    struct reply r;
    int auth = 0;
    if (join(url, sizeof url, def->url, "/v2/") != 0) {
        rsre__probe_fail(res, "EINVAL", "registry: url too long");
        return;
    }
    if (request(def, "GET", url, NULL, 0, BODY_MAX, &r, res) != 0) {
        return;
    }
    if (r.status == 401) {
        free(r.body.buf);
        if (strncasecmp(r.www_auth, "Basic", 5) != 0) {
            rsre__probe_fail(res, "UNAUTHORIZED",
                             "registry GET /v2/: 401, WWW-Authenticate \"%s\" (only Basic "
                             "credentials are supported)",
                             r.www_auth);
            return;
        }
        if (!def->user[0]) {
            rsre__probe_fail(res, "UNAUTHORIZED",
                             "registry GET /v2/: 401 and no credentials configured");
            return;
        }
        auth = 1;
        if (request(def, "GET", url, NULL, 1, BODY_MAX, &r, res) != 0) {
            return;
        }
    }
    if (r.status != 200) {
        char ec[64], em[200];
        registry_error(&r.body, ec, sizeof ec, em, sizeof em);
        free(r.body.buf);
        rsre__probe_fail(res, ec[0] ? ec : "HTTP_ERROR", "registry GET /v2/: status %ld %s%s%s",
                         r.status, ec, em[0] ? ": " : "", em);
        return;
    }
    free(r.body.buf);
    char evidence[RSRE_PROBE_ERR_LEN] = "";
    char first_code[40] = "";
    for (size_t i = 0; i < def->nimages; i++) {
        const char *img = def->images[i];
        const char *at = strchr(img, '@');
        const char *slash = strrchr(img, '/');
        const char *colon = strrchr(img, ':');
        size_t repo_len;
        const char *ref;
        if (at) {
            repo_len = (size_t)(at - img);
            ref = at + 1;
        } else if (colon && (!slash || colon > slash)) {
            repo_len = (size_t)(colon - img);
            ref = colon + 1;
        } else {
            repo_len = strlen(img);
            ref = "latest";
        }
        if (!valid_ref_part(img, repo_len, "._/-") || !valid_ref_part(ref, strlen(ref), "._-:")) {
            rsre__probe_fail(res, "EINVAL", "registry: invalid image reference %s", img);
            return;
        }
        char path[700];
        snprintf(path, sizeof path, "/v2/%.*s/manifests/%s", (int)repo_len, img, ref);
        if (join(url, sizeof url, def->url, path) != 0) {
            rsre__probe_fail(res, "EINVAL", "registry: url too long");
            return;
        }
        const char *hdrs[] = {MANIFEST_ACCEPT, NULL};
        if (request(def, "HEAD", url, hdrs, auth, BODY_MAX, &r, res) != 0) {
            return;
        }
        free(r.body.buf);
        if (r.status == 200) {
            continue;
        }
        /* HEAD has no body: GET the same manifest for the registry's error code. */
        long head_status = r.status;
        char ec[64] = "", em[200] = "";
        if (request(def, "GET", url, hdrs, auth, BODY_MAX, &r, res) != 0) {
            return;
        }
        if (r.status != 200) {
            registry_error(&r.body, ec, sizeof ec, em, sizeof em);
        }
        free(r.body.buf);
        if (!ec[0]) {
            snprintf(ec, sizeof ec, "%s",
                     head_status == 404   ? "MANIFEST_UNKNOWN"
                     : head_status == 401 ? "UNAUTHORIZED"
                                          : "HTTP_ERROR");
        }
        if (strcmp(ec, "UNAUTHORIZED") == 0 || strcmp(ec, "DENIED") == 0) {
            res->image_unauthorized++;
        } else {
            res->image_unknown++;
        }
        if (!first_code[0]) {
            rsre__probe_append(first_code, sizeof first_code, "%s", ec);
        }
        rsre__probe_append(evidence, sizeof evidence, "%s%s: %ld %s%s%s", evidence[0] ? "; " : "",
                           img, head_status, ec, em[0] ? " " : "", em);
    }
    if (first_code[0]) {
        rsre__probe_fail(res, first_code, "registry manifests: %s", evidence);
        return;
    }
    res->ok = 1;
}

/* ---- http --------------------------------------------------------------------------- */

void rsre__probe_http(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    struct reply r;
    if (request(def, "GET", def->url, NULL, 1, BODY_MAX, &r, res) != 0) {
        return;
    }
    if (r.status != def->expect_status) {
        char code[24];
        snprintf(code, sizeof code, "HTTP_%ld", r.status);
        rsre__probe_fail(res, code, "GET %s: status %ld, expected %d", def->url, r.status,
                         def->expect_status);
    } else if (def->body_contains[0] && (!r.body.buf || !strstr(r.body.buf, def->body_contains))) {
        rsre__probe_fail(res, "BODY_MISMATCH", "GET %s: body lacks the expected text", def->url);
    } else {
        res->ok = 1;
    }
    free(r.body.buf);
}

/* ---- http5xx ------------------------------------------------------------------------ */

struct collect {
    const struct rsre_probe_def *def;
    struct rsre_err_series *s;
    size_t n, cap;
    char total_name[160];
};

static int on_sample(void *arg, const struct rsre_prom_sample *s) {
    struct collect *c = arg;
    if (strcmp(s->name, c->def->metric) != 0 && strcmp(s->name, c->total_name) != 0) {
        return 0;
    }
    const char *status = NULL;
    int match = !c->def->match_label[0];
    for (size_t i = 0; i < s->nlabels; i++) {
        if (strcmp(s->labels[i].name, c->def->status_label) == 0) {
            status = s->labels[i].value;
        }
        if (c->def->match_label[0] && strcmp(s->labels[i].name, c->def->match_label) == 0 &&
            strcmp(s->labels[i].value, c->def->match_value) == 0) {
            match = 1;
        }
    }
    if (!match || !status || !isfinite(s->value) || s->value < 0) {
        return 0;
    }
    if (c->n == SERIES_MAX) {
        return RSRE_ELIMIT;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        struct rsre_err_series *ns = realloc(c->s, cap * sizeof *ns);
        if (!ns) {
            return -ENOMEM;
        }
        c->s = ns;
        c->cap = cap;
    }
    c->s[c->n++] = (struct rsre_err_series){rsre_prom_series_key(s), s->value, status[0] == '5'};
    return 0;
}

void rsre__probe_http5xx(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    struct reply r;
    if (request(def, "GET", def->url, NULL, 1, METRICS_MAX, &r, res) != 0) {
        return;
    }
    if (r.status != 200) {
        free(r.body.buf);
        char code[24];
        snprintf(code, sizeof code, "HTTP_%ld", r.status);
        rsre__probe_fail(res, code, "GET %s: status %ld", def->url, r.status);
        return;
    }
    struct collect c = {.def = def};
    snprintf(c.total_name, sizeof c.total_name, "%s_total", def->metric);
    struct rsre_promtext_error pe;
    int rc =
        rsre_promtext_parse(r.body.buf ? r.body.buf : "", r.body.len, NULL, on_sample, &c, &pe);
    free(r.body.buf);
    if (rc) {
        free(c.s);
        if (pe.line) {
            rsre__probe_fail(res, "PROMTEXT", "%s: line %zu: %s", def->url, pe.line, pe.msg);
        } else {
            rsre__probe_fail(res, "PROMTEXT", "%s: %s", def->url, rsre_strerror(rc));
        }
        return;
    }
    if (c.n == 0) {
        free(c.s);
        rsre__probe_fail(res, "NO_SERIES", "%s: no %s series with a %s label", def->url,
                         def->metric, def->status_label);
        return;
    }
    res->series = c.s;
    res->nseries = c.n;
    res->ok = 1;
}
