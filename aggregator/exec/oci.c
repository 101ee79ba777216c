/*
 * OCI executor client (see oci.h): signed calls with retries on a libuv loop, and the reboot /
 * replace worker operations built from them.
 */
#include "exec/oci.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/error.h"
#include "common/log.h"

#define MOD "oci"
#define ID_LEN 40 /* request ids and retry tokens: 32 hex characters */
#define OPC_ID_MAX 160
#define CODE_MAX 64
#define MSG_MAX 512
#define MAX_PASSPHRASE 1024

static int errf(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t len, int code, const char *fmt, ...) {
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copies at most cap-1 bytes of a peer-controlled string, replacing control characters and
 * quotes so it can go into logs and messages as is. */
static void copy_clean(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    if (!cap) {
        return;
    }
    for (; src && src[i] && i < cap - 1; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

/* ---- provider ids and node pools -------------------------------------------------------- */

int rsre_oci_parse_provider_id(const char *pid, struct rsre_oci_instance_ref *out) {
    memset(out, 0, sizeof(*out));
    static const char prefix[] = RSRE_OCI_PROVIDER_PREFIX;
    if (!pid || strncmp(pid, prefix, sizeof(prefix) - 1) != 0) {
        return RSRE_EINVALID;
    }
    const char *ocid = pid + sizeof(prefix) - 1;
    if (rsre_oci_ocid_check(ocid, "instance") != 0) {
        return RSRE_EINVALID;
    }
    /* ocid1 . instance . realm . region ... : the checker allows an empty region, an instance
     * never has one. */
    const char *realm = ocid + strlen("ocid1.instance.");
    const char *dot = strchr(realm, '.');
    const char *region = dot + 1;
    const char *rend = strchr(region, '.');
    size_t rl = (size_t)(dot - realm), gl = (size_t)(rend - region);
    if (gl == 0 || rl >= sizeof(out->realm) || gl >= sizeof(out->region)) {
        return RSRE_EINVALID;
    }
    snprintf(out->ocid, sizeof(out->ocid), "%s", ocid);
    memcpy(out->realm, realm, rl);
    memcpy(out->region, region, gl);
    return 0;
}

int rsre_oci_pick_node_pool(const char *label, const char *configured, const char **out) {
    *out = NULL;
    const char *pick = (label && *label) ? label : (configured && *configured) ? configured : NULL;
    if (!pick) {
        return RSRE_ENOTFOUND;
    }
    if (rsre_oci_ocid_check(pick, "nodepool") != 0) {
        return RSRE_EINVALID;
    }
    *out = pick;
    return 0;
}

/* ---- configuration ---------------------------------------------------------------------- */

#define S(f)                                                                                       \
    RSRE_OCI_CFG_STR, offsetof(struct rsre_oci_config, f),                                         \
        sizeof(((struct rsre_oci_config *)0)->f), 0, 0
#define U(f, lo, hi) RSRE_OCI_CFG_U32, offsetof(struct rsre_oci_config, f), sizeof(uint32_t), lo, hi

const struct rsre_oci_config_key rsre_oci_config_keys[] = {
    {"tenancy", S(tenancy), "", "tenancy OCID (ocid1.tenancy.oc1..)"},
    {"user", S(user), "", "OCID of the API user whose key signs requests (ocid1.user.oc1..)"},
    {"fingerprint", S(fingerprint), "", "fingerprint of the API key, as the console shows it"},
    {"key_file", S(key_file), "", "PEM private key (PKCS#1 or PKCS#8)"},
    {"passphrase_file", S(passphrase_file), "", "file holding the key's passphrase; empty = none"},
    {"region", S(region), "", "region name, e.g. us-ashburn-1"},
    {"realm_domain", S(realm_domain), "oraclecloud.com", "second-level domain of the realm"},
    {"compute_url", S(compute_url), "",
     "Core Services base URL; empty = https://iaas.<region>.<realm_domain>"},
    {"containerengine_url", S(containerengine_url), "",
     "Container Engine base URL; empty = https://containerengine.<region>.<realm_domain>"},
    {"node_pool_id", S(node_pool_id), "",
     "node pool used when a node has no " RSRE_OCI_NODE_POOL_LABEL " label"},
    {"ca_file", S(ca_file), "", "CA bundle for the OCI endpoints; empty = system bundle"},
    {"timeout_ms", U(timeout_ms, 1000, 600000), "30000", "one HTTP attempt"},
    {"max_attempts", U(max_attempts, 1, 20), "5", "attempts per call, the first included"},
    {"backoff_min_ms", U(backoff_min_ms, 1, 600000), "1000", "first retry delay"},
    {"backoff_max_ms", U(backoff_max_ms, 1, 3600000), "30000", "longest retry delay"},
    {"max_retry_after_ms", U(max_retry_after_ms, 0, 3600000), "120000",
     "cap on a server's Retry-After"},
    {"max_body", U(max_body, 4096, 64u << 20), "1048576", "largest response body accepted"},
    {"poll_interval_ms", U(poll_interval_ms, 10, 600000), "10000", "verification polling"},
    {"soft_reset_timeout_ms", U(soft_reset_timeout_ms, 100, 7200000), "1200000",
     "SOFTRESET must be RUNNING again within this (OCI forces power-off after 15 min)"},
    {"reset_timeout_ms", U(reset_timeout_ms, 100, 7200000), "600000",
     "RESET must be RUNNING again within this"},
    {"replace_timeout_ms", U(replace_timeout_ms, 100, 7200000), "1800000",
     "the old instance must be terminating within this (OKE drains it first)"},
};
const size_t rsre_oci_config_nkeys = sizeof(rsre_oci_config_keys) / sizeof(rsre_oci_config_keys[0]);

#undef S
#undef U

static int set_key(struct rsre_oci_config *cfg, const struct rsre_oci_config_key *k,
                   const char *value, char *err, size_t err_len) {
    char *base = (char *)cfg + k->offset;
    if (!value) {
        value = "";
    }
    if (k->type == RSRE_OCI_CFG_STR) {
        if (strlen(value) >= k->size) {
            return errf(err, err_len, RSRE_EINVALID, "%s: longer than %zu characters", k->name,
                        k->size - 1);
        }
        for (const char *p = value; *p; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                return errf(err, err_len, RSRE_EINVALID, "%s: control character", k->name);
            }
        }
        memcpy(base, value, strlen(value) + 1);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-' || v < k->min || v > k->max) {
        return errf(err, err_len, RSRE_EINVALID, "%s: \"%.40s\" is not a number in %u..%u", k->name,
                    value, k->min, k->max);
    }
    uint32_t u = (uint32_t)v;
    memcpy(base, &u, sizeof(u));
    return 0;
}

void rsre_oci_config_defaults(struct rsre_oci_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < rsre_oci_config_nkeys; i++) {
        set_key(cfg, &rsre_oci_config_keys[i], rsre_oci_config_keys[i].def, NULL, 0);
    }
}

int rsre_oci_config_set(struct rsre_oci_config *cfg, const char *key, const char *value, char *err,
                        size_t err_len) {
    for (size_t i = 0; i < rsre_oci_config_nkeys; i++) {
        if (key && strcmp(key, rsre_oci_config_keys[i].name) == 0) {
            return set_key(cfg, &rsre_oci_config_keys[i], value, err, err_len);
        }
    }
    return errf(err, err_len, RSRE_ENOTFOUND, "unknown OCI setting \"%.40s\"", key ? key : "");
}

/* "us-ashburn-1", "us-gov-ashburn-1", "me-dcc-muscat-1": lower-case words, the first letters
 * only, the last digits only. */
static int region_ok(const char *r) {
    size_t n = strlen(r);
    if (n < 3 || n > 48) {
        return 0;
    }
    int words = 0;
    const char *p = r;
    for (;;) {
        const char *dash = strchr(p, '-');
        size_t len = dash ? (size_t)(dash - p) : strlen(p);
        if (len == 0) {
            return 0;
        }
        int letters = 1, digits = 1;
        for (size_t i = 0; i < len; i++) {
            letters &= p[i] >= 'a' && p[i] <= 'z';
            digits &= p[i] >= '0' && p[i] <= '9';
            if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9'))) {
                return 0;
            }
        }
        if ((words == 0 && !letters) || (!dash && !digits)) {
            return 0;
        }
        words++;
        if (!dash) {
            break;
        }
        p = dash + 1;
    }
    return words >= 2;
}

static int domain_ok(const char *d) {
    size_t n = strlen(d);
    if (n < 3 || !strchr(d, '.') || d[0] == '.' || d[n - 1] == '.' || strstr(d, "..")) {
        return 0;
    }
    for (; *d; d++) {
        if (!((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') || *d == '-' || *d == '.')) {
            return 0;
        }
    }
    return 1;
}

/* A base URL: http(s)://authority with nothing after it but an optional '/'. Writes the
 * normalised URL (no trailing '/') and, optionally, the authority (the Host header). */
static int base_url_ok(const char *url, char out[RSRE_OCI_URL_MAX], char *host, size_t host_cap) {
    const char *a;
    if (strncmp(url, "https://", 8) == 0) {
        a = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        a = url + 7;
    } else {
        return 0;
    }
    size_t alen = 0;
    while (a[alen] && a[alen] != '/') {
        unsigned char ch = (unsigned char)a[alen];
        if (ch <= 0x20 || ch >= 0x7f || ch == '@' || ch == '?' || ch == '#' || ch == '\\') {
            return 0;
        }
        alen++;
    }
    if (alen == 0 || alen >= RSRE_OCI_MAX_HOST || (a[alen] == '/' && a[alen + 1] != '\0')) {
        return 0;
    }
    size_t total = (size_t)(a - url) + alen;
    if (total >= RSRE_OCI_URL_MAX) {
        return 0;
    }
    memcpy(out, url, total);
    out[total] = '\0';
    if (host) {
        if (alen >= host_cap) {
            return 0;
        }
        memcpy(host, a, alen);
        host[alen] = '\0';
    }
    return 1;
}

int rsre_oci_config_check(const struct rsre_oci_config *cfg, char compute[RSRE_OCI_URL_MAX],
                          char containerengine[RSRE_OCI_URL_MAX], char *err, size_t err_len) {
    if (rsre_oci_ocid_check(cfg->tenancy, "tenancy") != 0) {
        return errf(err, err_len, RSRE_EINVALID, "tenancy: not a tenancy OCID");
    }
    if (rsre_oci_ocid_check(cfg->user, "user") != 0) {
        return errf(err, err_len, RSRE_EINVALID, "user: not a user OCID");
    }
    if (!cfg->fingerprint[0]) {
        return errf(err, err_len, RSRE_EINVALID, "fingerprint: required");
    }
    if (!cfg->key_file[0]) {
        return errf(err, err_len, RSRE_EINVALID, "key_file: required");
    }
    if (cfg->region[0] && !region_ok(cfg->region)) {
        return errf(err, err_len, RSRE_EINVALID, "region: \"%s\" is not a region name",
                    cfg->region);
    }
    if (!domain_ok(cfg->realm_domain)) {
        return errf(err, err_len, RSRE_EINVALID, "realm_domain: \"%s\" is not a domain",
                    cfg->realm_domain);
    }
    if (cfg->node_pool_id[0] && rsre_oci_ocid_check(cfg->node_pool_id, "nodepool") != 0) {
        return errf(err, err_len, RSRE_EINVALID, "node_pool_id: not a node pool OCID");
    }
    if (cfg->backoff_min_ms > cfg->backoff_max_ms) {
        return errf(err, err_len, RSRE_EINVALID, "backoff_min_ms is above backoff_max_ms");
    }
    static const char *const names[2] = {"compute_url", "containerengine_url"};
    static const char *const svc[2] = {"iaas", "containerengine"};
    const char *given[2] = {cfg->compute_url, cfg->containerengine_url};
    char *outs[2] = {compute, containerengine};
    for (int i = 0; i < 2; i++) {
        char def[RSRE_OCI_URL_MAX];
        const char *u = given[i];
        if (!u[0]) {
            if (!cfg->region[0]) {
                return errf(err, err_len, RSRE_EINVALID, "region: required (%s is not set)",
                            names[i]);
            }
            snprintf(def, sizeof(def), "https://%s.%s.%s", svc[i], cfg->region, cfg->realm_domain);
            u = def;
        }
        if (!base_url_ok(u, outs[i], NULL, 0)) {
            return errf(err, err_len, RSRE_EINVALID,
                        "%s: \"%.80s\" is not an http(s)://host[:port] URL", names[i], u);
        }
    }
    return 0;
}

/* ---- the curl_uv transport -------------------------------------------------------------- */

struct curl_xfer {
    rsre_oci_http_done_cb done;
    void *arg;
    struct rsre_http_req *req;
};

static void curl_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct curl_xfer *x = arg;
    struct rsre_oci_http_response r = {0};
    if (resp) {
        r.status = resp->status;
        r.body = resp->body;
        r.body_len = resp->body_len;
    }
    rsre_oci_http_done_cb done = x->done;
    void *darg = x->arg;
    free(x);
    done(darg, rc, &r);
}

static int curl_send(void *ctx, const struct rsre_oci_http_request *req, rsre_oci_http_done_cb done,
                     void *arg, void **handle) {
    struct curl_xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        return -ENOMEM;
    }
    x->done = done;
    x->arg = arg;
    struct rsre_http_tls tls = {.ca_file = req->ca_file};
    struct rsre_http_opts o = {
        .method = req->method,
        .url = req->url,
        .body = req->body,
        .body_len = req->body_len,
        .timeout_ms = req->timeout_ms,
        .max_body = req->max_body,
        .tls = req->ca_file ? &tls : NULL,
        .done = curl_done,
        .arg = x,
    };
    for (size_t i = 0; i < req->nheaders && i < RSRE_HTTP_MAX_HEADERS; i++) {
        o.headers[o.nheaders++] = req->headers[i];
    }
    int rc = rsre_http_request(ctx, &o, &x->req);
    if (rc != 0) {
        free(x);
        return rc;
    }
    *handle = x;
    return 0;
}

static void curl_abandon(void *ctx, void *handle) {
    (void)ctx;
    struct curl_xfer *x = handle;
    rsre_http_abandon(x->req);
    free(x);
}

void rsre_oci_transport_curl(struct rsre_http *http, struct rsre_oci_transport *out) {
    out->send = curl_send;
    out->abandon = curl_abandon;
    out->ctx = http;
}

/* ---- client ----------------------------------------------------------------------------- */

enum service { SVC_COMPUTE = 0, SVC_CE };

struct rsre_oci {
    uv_loop_t *loop;
    struct rsre_oci_transport tr;
    struct rsre_oci_config cfg;
    struct rsre_oci_signer *signer;
    char base[2][RSRE_OCI_URL_MAX];
    char host[2][RSRE_OCI_MAX_HOST];
    struct rsre_oci_call *calls;
    struct rsre_oci_op *ops;
    uint64_t rnd;
    int closing;
};

struct rsre_oci_call {
    struct rsre_oci *c;
    struct rsre_oci_call *prev, *next;
    const char *method;
    enum service svc;
    char path[RSRE_OCI_PATH_MAX];
    int with_body;
    int retry_token;
    char request_id[ID_LEN];
    char token[ID_LEN];
    char opc_request_id[OPC_ID_MAX];
    char work_request_id[OPC_ID_MAX];
    unsigned attempt;
    int finishing; /* its callback has started: abandon is a no-op */
    void *xfer;
    uv_timer_t timer;
    rsre_oci_cb cb;
    void *arg;
};

static void random_id(struct rsre_oci *c, char out[ID_LEN]) {
    unsigned char b[16];
    if (uv_random(NULL, NULL, b, sizeof(b), 0, NULL) != 0) {
        for (size_t i = 0; i < sizeof(b); i++) {
            c->rnd ^= c->rnd << 13;
            c->rnd ^= c->rnd >> 7;
            c->rnd ^= c->rnd << 17;
            b[i] = (unsigned char)c->rnd;
        }
    }
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < sizeof(b); i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = '\0';
}

static uint64_t rand_below(struct rsre_oci *c, uint64_t n) {
    c->rnd ^= c->rnd << 13;
    c->rnd ^= c->rnd >> 7;
    c->rnd ^= c->rnd << 17;
    return n ? c->rnd % n : 0;
}

static int read_passphrase(const char *path, char *out, size_t cap, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return errf(err, err_len, -e, "passphrase_file %s: %s", path, strerror(e));
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, out + got, cap - 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        if (got == cap - 1) {
            char extra;
            if (read(fd, &extra, 1) > 0) {
                close(fd);
                OPENSSL_cleanse(out, cap);
                return errf(err, err_len, RSRE_ELIMIT, "passphrase_file %s: too long", path);
            }
            break;
        }
    }
    close(fd);
    out[got] = '\0';
    while (got && (out[got - 1] == '\n' || out[got - 1] == '\r')) {
        out[--got] = '\0';
    }
    return 0;
}

int rsre_oci_create(uv_loop_t *loop, const struct rsre_oci_transport *transport,
                    const struct rsre_oci_config *cfg, struct rsre_oci **out, char *err,
                    size_t err_len) {
    *out = NULL;
    if (!loop || !transport || !transport->send || !transport->abandon || !cfg) {
        return errf(err, err_len, -EINVAL, "missing loop, transport or configuration");
    }
    struct rsre_oci *c = calloc(1, sizeof(*c));
    if (!c) {
        return errf(err, err_len, -ENOMEM, "out of memory");
    }
    int rc = rsre_oci_config_check(cfg, c->base[SVC_COMPUTE], c->base[SVC_CE], err, err_len);
    if (rc != 0) {
        free(c);
        return rc;
    }
    for (int i = 0; i < 2; i++) {
        char tmp[RSRE_OCI_URL_MAX];
        base_url_ok(c->base[i], tmp, c->host[i], sizeof(c->host[i]));
    }
    c->loop = loop;
    c->tr = *transport;
    c->cfg = *cfg;
    c->rnd = uv_hrtime() ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ull;
    char pass[MAX_PASSPHRASE] = "";
    if (cfg->passphrase_file[0]) {
        rc = read_passphrase(cfg->passphrase_file, pass, sizeof(pass), err, err_len);
        if (rc != 0) {
            free(c);
            return rc;
        }
    }
    struct rsre_oci_credentials cred = {
        .tenancy = cfg->tenancy,
        .user = cfg->user,
        .fingerprint = cfg->fingerprint,
        .key_file = cfg->key_file,
        .passphrase = pass[0] ? pass : NULL,
    };
    rc = rsre_oci_signer_create(&cred, &c->signer, err, err_len);
    OPENSSL_cleanse(pass, sizeof(pass));
    if (rc != 0) {
        free(c);
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, MOD, "OCI client ready compute=%s containerengine=%s key_id=%s",
             c->base[SVC_COMPUTE], c->base[SVC_CE], rsre_oci_signer_key_id(c->signer));
    *out = c;
    return 0;
}

const char *rsre_oci_compute_url(const struct rsre_oci *c) {
    return c->base[SVC_COMPUTE];
}

const char *rsre_oci_containerengine_url(const struct rsre_oci *c) {
    return c->base[SVC_CE];
}

/* ---- calls ------------------------------------------------------------------------------ */

static void call_link(struct rsre_oci *c, struct rsre_oci_call *k) {
    k->next = c->calls;
    if (c->calls) {
        c->calls->prev = k;
    }
    c->calls = k;
}

static void call_unlink(struct rsre_oci_call *k) {
    struct rsre_oci *c = k->c;
    if (k->prev) {
        k->prev->next = k->next;
    } else if (c->calls == k) {
        c->calls = k->next;
    }
    if (k->next) {
        k->next->prev = k->prev;
    }
    k->prev = k->next = NULL;
}

static void call_free_cb(uv_handle_t *h) {
    free(h->data);
}

/* Releases a call already unlinked; memory goes with the timer's close callback. */
static void call_release(struct rsre_oci_call *k) {
    uv_timer_stop(&k->timer);
    k->timer.data = k;
    uv_close((uv_handle_t *)&k->timer, call_free_cb);
}

/* Finishes a call: unlinks it, runs its callback once, releases it. */
static void call_finish(struct rsre_oci_call *k, int rc, long status, const char *code,
                        const char *message, json_t *body) {
    call_unlink(k);
    k->finishing = 1;
    struct rsre_oci_result res = {
        .rc = rc,
        .http_status = status,
        .code = code ? code : "",
        .message = message ? message : (rc ? rsre_strerror(rc) : ""),
        .request_id = k->request_id,
        .opc_request_id = k->opc_request_id,
        .opc_work_request_id = k->work_request_id,
        .body = body,
        .attempts = k->attempt,
    };
    k->cb(k->arg, &res);
    call_release(k);
}

static int status_rc(long status) {
    if (status >= 200 && status < 300) {
        return 0;
    }
    switch (status) {
    case 401:
        return -EACCES;
    case 403:
        return -EPERM;
    case 404:
        return RSRE_ENOTFOUND;
    case 409:
    case 412:
        return -ESTALE;
    case 429:
        return -EAGAIN;
    default:
        return status >= 500 ? -EIO : RSRE_EINVALID;
    }
}

static int retryable(int rc, long status) {
    if (rc != 0) {
        return rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -ETIMEDOUT ||
               rc == -EHOSTUNREACH || rc == -EIO;
    }
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* Retry-After: delta-seconds or an HTTP-date. Returns milliseconds, or -1. */
static int64_t parse_retry_after(const char *v) {
    if (!v || !*v) {
        return -1;
    }
    while (*v == ' ') {
        v++;
    }
    if (*v >= '0' && *v <= '9') {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ') {
            end++;
        }
        if (*end || s > 86400) {
            return -1;
        }
        return (int64_t)s * 1000;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) {
        return -1;
    }
    int64_t when = (int64_t)timegm(&tm);
    int64_t now = (int64_t)time(NULL);
    return when > now ? (when - now) * 1000 : 0;
}

static uint64_t backoff_ms(struct rsre_oci_call *k, const char *retry_after) {
    const struct rsre_oci_config *cfg = &k->c->cfg;
    uint64_t base = cfg->backoff_min_ms;
    for (unsigned i = 1; i < k->attempt && base < cfg->backoff_max_ms; i++) {
        base *= 2;
    }
    if (base > cfg->backoff_max_ms) {
        base = cfg->backoff_max_ms;
    }
    uint64_t delay = base / 2 + rand_below(k->c, base / 2 + 1); /* equal jitter */
    int64_t ra = parse_retry_after(retry_after);
    if (ra >= 0) {
        uint64_t want =
            (uint64_t)ra > cfg->max_retry_after_ms ? cfg->max_retry_after_ms : (uint64_t)ra;
        if (want > delay) {
            delay = want;
        }
    }
    return delay;
}

static void on_http(void *arg, int rc, const struct rsre_oci_http_response *r);
static int call_attempt(struct rsre_oci_call *k);

static void retry_timer_cb(uv_timer_t *t) {
    struct rsre_oci_call *k = t->data;
    int rc = call_attempt(k);
    if (rc != 0) {
        call_finish(k, rc, 0, NULL, NULL, NULL);
    }
}

/* Signs and sends one attempt. Returns 0 or the code of a failure to start. */
static int call_attempt(struct rsre_oci_call *k) {
    struct rsre_oci *c = k->c;
    k->attempt++;
    k->opc_request_id[0] = k->work_request_id[0] = '\0';
    char url[RSRE_OCI_URL_MAX + RSRE_OCI_PATH_MAX];
    snprintf(url, sizeof(url), "%s%s", c->base[k->svc], k->path);
    struct rsre_oci_sign_input in = {
        .method = k->method,
        .target = k->path,
        .host = c->host[k->svc],
        .body = k->with_body ? "" : NULL,
        .body_len = 0,
    };
    struct rsre_oci_signed *sig = malloc(sizeof(*sig));
    if (!sig) {
        return -ENOMEM;
    }
    int rc = rsre_oci_signer_sign(c->signer, &in, sig);
    if (rc != 0) {
        free(sig);
        RSRE_LOG(RSRE_LOG_ERROR, MOD, "signing failed method=%s path=%s rc=%s", k->method, k->path,
                 rsre_strerror(rc));
        return rc;
    }
    char rid[64], tok[64];
    snprintf(rid, sizeof(rid), "opc-request-id: %s", k->request_id);
    snprintf(tok, sizeof(tok), "opc-retry-token: %s", k->token);
    struct rsre_oci_http_request req = {
        .method = k->method,
        .url = url,
        .body = k->with_body ? "" : NULL,
        .body_len = 0,
        .timeout_ms = c->cfg.timeout_ms,
        .max_body = c->cfg.max_body,
        .ca_file = c->cfg.ca_file[0] ? c->cfg.ca_file : NULL,
    };
    for (size_t i = 0; i < sig->nlines; i++) {
        req.headers[req.nheaders++] = sig->lines[i];
    }
    req.headers[req.nheaders++] = "accept: application/json";
    req.headers[req.nheaders++] = rid;
    if (k->retry_token) {
        req.headers[req.nheaders++] = tok;
    }
    RSRE_LOG(RSRE_LOG_DEBUG, MOD, "request method=%s url=%s attempt=%u request_id=%s", k->method,
             url, k->attempt, k->request_id);
    rc = c->tr.send(c->tr.ctx, &req, on_http, k, &k->xfer);
    free(sig); /* transports copy what they keep */
    if (rc != 0) {
        k->xfer = NULL;
        RSRE_LOG(RSRE_LOG_ERROR, MOD, "cannot send method=%s url=%s rc=%s", k->method, url,
                 rsre_strerror(rc));
    }
    return rc;
}

static void on_http(void *arg, int rc, const struct rsre_oci_http_response *r) {
    struct rsre_oci_call *k = arg;
    struct rsre_oci *c = k->c;
    k->xfer = NULL;
    long status = r ? r->status : 0;
    if (r && r->opc_request_id) {
        copy_clean(k->opc_request_id, sizeof(k->opc_request_id), r->opc_request_id);
    }
    if (r && r->opc_work_request_id) {
        copy_clean(k->work_request_id, sizeof(k->work_request_id), r->opc_work_request_id);
    }
    json_t *body = NULL;
    if (rc == 0 && r && r->body_len > 0) {
        json_error_t je;
        body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    }
    int out = rc != 0 ? rc : status_rc(status);
    if (rc == 0 && out == 0 && r && r->body_len > 0 && !body) {
        out = RSRE_EPARSE;
    }
    char code[CODE_MAX] = "", msg[MSG_MAX] = "";
    if (out != 0 && body && json_is_object(body)) {
        copy_clean(code, sizeof(code), json_string_value(json_object_get(body, "code")));
        copy_clean(msg, sizeof(msg), json_string_value(json_object_get(body, "message")));
    }
    if (out == RSRE_EPARSE) {
        snprintf(msg, sizeof(msg), "HTTP %ld with a body that is not JSON", status);
    }
    const char *opc = k->opc_request_id[0] ? k->opc_request_id : "-";
    if (out != 0 && !c->closing && rc != -ECANCELED && retryable(rc, status) &&
        k->attempt < c->cfg.max_attempts) {
        uint64_t delay = backoff_ms(k, r ? r->retry_after : NULL);
        RSRE_LOG(RSRE_LOG_WARN, MOD,
                 "retrying method=%s path=%s status=%ld code=%s rc=%s attempt=%u delay_ms=%llu "
                 "request_id=%s opc_request_id=%s",
                 k->method, k->path, status, code[0] ? code : "-", rsre_strerror(out), k->attempt,
                 (unsigned long long)delay, k->request_id, opc);
        json_decref(body);
        k->timer.data = k;
        uv_timer_start(&k->timer, retry_timer_cb, delay, 0);
        return;
    }
    if (out != 0) {
        RSRE_LOG(RSRE_LOG_WARN, MOD,
                 "call failed method=%s path=%s status=%ld code=%s message=\"%s\" rc=%s "
                 "attempts=%u request_id=%s opc_request_id=%s",
                 k->method, k->path, status, code[0] ? code : "-", msg, rsre_strerror(out),
                 k->attempt, k->request_id, opc);
        if (!msg[0] && status) {
            snprintf(msg, sizeof(msg), "HTTP %ld: %s", status, rsre_strerror(out));
        } else if (!msg[0]) {
            snprintf(msg, sizeof(msg), "%s", rsre_strerror(out));
        }
    } else {
        RSRE_LOG(strcmp(k->method, "GET") == 0 ? RSRE_LOG_DEBUG : RSRE_LOG_INFO, MOD,
                 "call done method=%s path=%s status=%ld attempts=%u request_id=%s "
                 "opc_request_id=%s%s%s",
                 k->method, k->path, status, k->attempt, k->request_id, opc,
                 k->work_request_id[0] ? " opc_work_request_id=" : "", k->work_request_id);
    }
    call_finish(k, out, status, code, out ? msg : "", out == 0 ? body : NULL);
    json_decref(body);
}

static int call_start(struct rsre_oci *c, const char *method, enum service svc, const char *path,
                      int with_body, int retry_token, rsre_oci_cb cb, void *arg,
                      struct rsre_oci_call **out) {
    if (out) {
        *out = NULL;
    }
    if (c->closing) {
        return -ESHUTDOWN;
    }
    if (!cb || strlen(path) >= RSRE_OCI_PATH_MAX) {
        return -EINVAL;
    }
    struct rsre_oci_call *k = calloc(1, sizeof(*k));
    if (!k) {
        return -ENOMEM;
    }
    k->c = c;
    k->method = method;
    k->svc = svc;
    memcpy(k->path, path, strlen(path) + 1);
    k->with_body = with_body;
    k->retry_token = retry_token;
    k->cb = cb;
    k->arg = arg;
    random_id(c, k->request_id);
    random_id(c, k->token);
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    int rc = call_attempt(k);
    if (rc != 0) {
        call_release(k);
        return rc;
    }
    call_link(c, k);
    if (out) {
        *out = k;
    }
    return 0;
}

void rsre_oci_call_abandon(struct rsre_oci_call *k) {
    if (!k || k->finishing) {
        return;
    }
    if (k->xfer) {
        k->c->tr.abandon(k->c->tr.ctx, k->xfer);
        k->xfer = NULL;
    }
    call_unlink(k);
    call_release(k);
}

int rsre_oci_get_instance(struct rsre_oci *c, const char *instance_id, rsre_oci_cb cb, void *arg,
                          struct rsre_oci_call **out) {
    if (rsre_oci_ocid_check(instance_id, "instance") != 0) {
        return RSRE_EINVALID;
    }
    char path[RSRE_OCI_PATH_MAX];
    int plen = snprintf(path, sizeof(path), "/20160918/instances/%s", instance_id);
    if (plen < 0 || (size_t)plen >= sizeof(path)) {
        return RSRE_ELIMIT;
    }
    return call_start(c, "GET", SVC_COMPUTE, path, 0, 0, cb, arg, out);
}

static const char *const action_names[] = {"SOFTRESET", "RESET"};

int rsre_oci_instance_action(struct rsre_oci *c, const char *instance_id,
                             enum rsre_oci_instance_action action, rsre_oci_cb cb, void *arg,
                             struct rsre_oci_call **out) {
    if (rsre_oci_ocid_check(instance_id, "instance") != 0 ||
        (action != RSRE_OCI_SOFTRESET && action != RSRE_OCI_RESET)) {
        return RSRE_EINVALID;
    }
    char path[RSRE_OCI_PATH_MAX];
    int plen = snprintf(path, sizeof(path), "/20160918/instances/%s?action=%s", instance_id,
             action_names[action]);
    if (plen < 0 || (size_t)plen >= sizeof(path)) {
        return RSRE_ELIMIT;
    }
    return call_start(c, "POST", SVC_COMPUTE, path, 1, 1, cb, arg, out);
}

int rsre_oci_get_node_pool(struct rsre_oci *c, const char *node_pool_id, rsre_oci_cb cb, void *arg,
                           struct rsre_oci_call **out) {
    if (rsre_oci_ocid_check(node_pool_id, "nodepool") != 0) {
        return RSRE_EINVALID;
    }
    char path[RSRE_OCI_PATH_MAX];
    int plen = snprintf(path, sizeof(path), "/20180222/nodePools/%s", node_pool_id);
    if (plen < 0 || (size_t)plen >= sizeof(path)) {
        return RSRE_ELIMIT;
    }
    return call_start(c, "GET", SVC_CE, path, 0, 0, cb, arg, out);
}

int rsre_oci_delete_node(struct rsre_oci *c, const char *node_pool_id, const char *node_id,
                         rsre_oci_cb cb, void *arg, struct rsre_oci_call **out) {
    if (rsre_oci_ocid_check(node_pool_id, "nodepool") != 0 ||
        rsre_oci_ocid_check(node_id, "instance") != 0) {
        return RSRE_EINVALID;
    }
    char path[RSRE_OCI_PATH_MAX];
    int plen = snprintf(path, sizeof(path), "/20180222/nodePools/%s/node/%s?isDecrementSize=false",
             node_pool_id, node_id);
    if (plen < 0 || (size_t)plen >= sizeof(path)) {
        return RSRE_ELIMIT;
    }
    return call_start(c, "DELETE", SVC_CE, path, 0, 0, cb, arg, out);
}

/* ---- worker operations ------------------------------------------------------------------ */

enum op_kind { OP_REBOOT, OP_REPLACE };

struct rsre_oci_op {
    struct rsre_oci *c;
    struct rsre_oci_op *prev, *next;
    enum op_kind kind;
    enum rsre_oci_reboot_mode mode;
    struct rsre_oci_instance_ref inst;
    char pool[RSRE_OCI_OCID_MAX + 1];
    struct rsre_oci_call *call; /* in flight, or NULL */
    uv_timer_t timer;           /* polling */
    uint64_t started, deadline;
    enum rsre_oci_instance_action action;
    int action_sent;
    char action_name[16];
    char state[RSRE_OCI_STATE_LEN];
    char request_id[ID_LEN];
    char opc_request_id[OPC_ID_MAX];
    char work_request_id[OPC_ID_MAX];
    char replacement[RSRE_OCI_OCID_MAX + 1];
    long http_status;
    int fell_back, transition_seen, running_polls;
    int finishing;       /* its callback has started: abandon is a no-op */
    long long pool_size; /* -1 = unknown */
    char **nodes;        /* node ids of the pool before the delete */
    size_t nnodes;
    rsre_oci_outcome_cb cb;
    void *arg;
};

static void op_link(struct rsre_oci *c, struct rsre_oci_op *op) {
    op->next = c->ops;
    if (c->ops) {
        c->ops->prev = op;
    }
    c->ops = op;
}

static void op_unlink(struct rsre_oci_op *op) {
    struct rsre_oci *c = op->c;
    if (op->prev) {
        op->prev->next = op->next;
    } else if (c->ops == op) {
        c->ops = op->next;
    }
    if (op->next) {
        op->next->prev = op->prev;
    }
    op->prev = op->next = NULL;
}

static void op_free_cb(uv_handle_t *h) {
    struct rsre_oci_op *op = h->data;
    for (size_t i = 0; i < op->nnodes; i++) {
        free(op->nodes[i]);
    }
    free(op->nodes);
    free(op);
}

static void op_release(struct rsre_oci_op *op) {
    uv_timer_stop(&op->timer);
    op->timer.data = op;
    uv_close((uv_handle_t *)&op->timer, op_free_cb);
}

static void op_finish(struct rsre_oci_op *op, int rc, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void op_finish(struct rsre_oci_op *op, int rc, const char *step, const char *fmt, ...) {
    char msg[MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    op_unlink(op);
    op->finishing = 1;
    struct rsre_oci_outcome o = {
        .rc = rc,
        .step = step,
        .message = msg,
        .instance_id = op->inst.ocid,
        .node_pool_id = op->pool,
        .action = op->action_sent ? op->action_name : "",
        .final_state = op->state,
        .request_id = op->action_sent ? op->request_id : "",
        .opc_request_id = op->opc_request_id,
        .opc_work_request_id = op->work_request_id,
        .replacement_node = op->replacement,
        .http_status = op->http_status,
        .fell_back_to_reset = op->fell_back,
        .transition_seen = op->transition_seen,
        .elapsed_ms = uv_now(op->c->loop) - op->started,
    };
    RSRE_LOG(rc == 0 ? RSRE_LOG_INFO : RSRE_LOG_WARN, MOD,
             "%s %s instance=%s%s%s action=%s state=%s rc=%s step=%s msg=\"%s\" request_id=%s "
             "opc_request_id=%s elapsed_ms=%llu",
             op->kind == OP_REBOOT ? "reboot" : "replace", rc == 0 ? "verified" : "failed",
             op->inst.ocid, op->pool[0] ? " node_pool=" : "", op->pool,
             o.action[0] ? o.action : "-", op->state[0] ? op->state : "-",
             rc ? rsre_strerror(rc) : "ok", step, msg, o.request_id[0] ? o.request_id : "-",
             op->opc_request_id[0] ? op->opc_request_id : "-", (unsigned long long)o.elapsed_ms);
    op->cb(op->arg, &o);
    op_release(op);
}

/* Reads lifecycleState (and checks the id) of an Instance. Returns 0 or RSRE_EINVALID. */
static int instance_state(struct rsre_oci_op *op, json_t *body) {
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *st = json_string_value(json_object_get(body, "lifecycleState"));
    if (!id || strcmp(id, op->inst.ocid) != 0 || !st) {
        return RSRE_EINVALID;
    }
    copy_clean(op->state, sizeof(op->state), st);
    return 0;
}

/* An error that polling should ride out: the call's own retries are exhausted, but the next
 * poll may succeed. */
static int transient(int rc) {
    return rc == -EAGAIN || rc == -EIO || rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
           rc == -ECONNRESET || rc == -EHOSTUNREACH || rc == RSRE_EPARSE;
}

static void op_poll_timer(uv_timer_t *t);

/* "code: message" of a failed call, for outcome messages. */
static const char *why(const struct rsre_oci_result *res, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s", res->code[0] ? res->code : "", res->code[0] ? ": " : "",
             res->message);
    return buf;
}

static void op_schedule_poll(struct rsre_oci_op *op) {
    op->timer.data = op;
    uv_timer_start(&op->timer, op_poll_timer, op->c->cfg.poll_interval_ms, 0);
}

static void reboot_on_action(void *arg, const struct rsre_oci_result *res);
static void reboot_on_poll(void *arg, const struct rsre_oci_result *res);
static void replace_on_poll(void *arg, const struct rsre_oci_result *res);
static void replace_on_pool_after(void *arg, const struct rsre_oci_result *res);

static void copy_ids(struct rsre_oci_op *op, const struct rsre_oci_result *res) {
    snprintf(op->request_id, sizeof(op->request_id), "%s", res->request_id);
    snprintf(op->opc_request_id, sizeof(op->opc_request_id), "%s", res->opc_request_id);
    snprintf(op->work_request_id, sizeof(op->work_request_id), "%s", res->opc_work_request_id);
    op->http_status = res->http_status;
}

static void reboot_send(struct rsre_oci_op *op, enum rsre_oci_instance_action action) {
    op->action = action;
    op->action_sent = 1;
    snprintf(op->action_name, sizeof(op->action_name), "%s", action_names[action]);
    const struct rsre_oci_config *cfg = &op->c->cfg;
    op->deadline = uv_now(op->c->loop) +
                   (action == RSRE_OCI_RESET ? cfg->reset_timeout_ms : cfg->soft_reset_timeout_ms);
    op->running_polls = 0;
    int rc =
        rsre_oci_instance_action(op->c, op->inst.ocid, action, reboot_on_action, op, &op->call);
    if (rc != 0) {
        op->call = NULL;
        op_finish(op, rc, "action", "cannot send %s: %s", op->action_name, rsre_strerror(rc));
    }
}

static void reboot_on_pre(void *arg, const struct rsre_oci_result *res) {
    struct rsre_oci_op *op = arg;
    op->call = NULL;
    if (res->rc != 0) {
        char b[MSG_MAX + CODE_MAX];
        op_finish(op, res->rc, "precheck", "GET instance: %s", why(res, b, sizeof(b)));
        return;
    }
    if (instance_state(op, res->body) != 0) {
        op_finish(op, RSRE_EINVALID, "precheck", "GET instance: answer is not this Instance");
        return;
    }
    if (strcmp(op->state, "RUNNING") != 0) {
        op_finish(op, -ESTALE, "precheck", "instance is %s, not RUNNING: not rebooting", op->state);
        return;
    }
    reboot_send(op, op->mode == RSRE_OCI_REBOOT_HARD ? RSRE_OCI_RESET : RSRE_OCI_SOFTRESET);
}

static void reboot_on_action(void *arg, const struct rsre_oci_result *res) {
    struct rsre_oci_op *op = arg;
    op->call = NULL;
    copy_ids(op, res);
    if (res->rc != 0) {
        char b[MSG_MAX + CODE_MAX];
        op_finish(op, res->rc, "action", "%s: %s", op->action_name, why(res, b, sizeof(b)));
        return;
    }
    if (res->body && instance_state(op, res->body) == 0 && strcmp(op->state, "RUNNING") != 0) {
        op->transition_seen = 1;
    }
    op_schedule_poll(op);
}

/* The deadline passed without RUNNING: fall back to RESET once, or give up. */
static void reboot_deadline(struct rsre_oci_op *op) {
    if (op->mode == RSRE_OCI_REBOOT_SOFT_THEN_HARD && op->action == RSRE_OCI_SOFTRESET &&
        !op->fell_back && strcmp(op->state, "STOPPING") == 0) {
        RSRE_LOG(RSRE_LOG_WARN, MOD,
                 "SOFTRESET did not complete instance=%s state=%s: falling back to RESET",
                 op->inst.ocid, op->state);
        op->fell_back = 1;
        reboot_send(op, RSRE_OCI_RESET);
        return;
    }
    op_finish(op, -ETIMEDOUT, "verify", "%s: instance still %s after the timeout", op->action_name,
              op->state[0] ? op->state : "unknown");
}

static void reboot_on_poll(void *arg, const struct rsre_oci_result *res) {
    struct rsre_oci_op *op = arg;
    op->call = NULL;
    uint64_t now = uv_now(op->c->loop);
    if (res->rc == -ECANCELED || op->c->closing) {
        op_finish(op, -ECANCELED, "verify", "cancelled");
        return;
    }
    if (res->rc != 0) {
        if (!transient(res->rc)) {
            char b[MSG_MAX + CODE_MAX];
            op_finish(op, res->rc, "verify", "GET instance: %s", why(res, b, sizeof(b)));
            return;
        }
    } else if (instance_state(op, res->body) != 0) {
        op_finish(op, RSRE_EINVALID, "verify", "GET instance: answer is not this Instance");
        return;
    } else if (strcmp(op->state, "RUNNING") != 0) {
        op->transition_seen = 1;
        op->running_polls = 0;
    } else if (op->transition_seen) {
        op_finish(op, 0, "done", "%s done: RUNNING again", op->action_name);
        return;
    } else if (++op->running_polls >= 3) {
        op_finish(op, 0, "done",
                  "%s accepted and RUNNING; no stop was observed (check the node's boot id)",
                  op->action_name);
        return;
    }
    if (now >= op->deadline) {
        reboot_deadline(op);
        return;
    }
    op_schedule_poll(op);
}

static void op_poll_timer(uv_timer_t *t) {
    struct rsre_oci_op *op = t->data;
    int rc;
    rc = rsre_oci_get_instance(op->c, op->inst.ocid,
                               op->kind == OP_REBOOT ? reboot_on_poll : replace_on_poll, op,
                               &op->call);
    if (rc != 0) {
        op->call = NULL;
        op_finish(op, rc, "verify", "cannot poll: %s", rsre_strerror(rc));
    }
}

static int op_new(struct rsre_oci *c, enum op_kind kind, const char *provider_id,
                  rsre_oci_outcome_cb cb, void *arg, struct rsre_oci_op **out) {
    *out = NULL;
    if (c->closing) {
        return -ESHUTDOWN;
    }
    if (!cb) {
        return -EINVAL;
    }
    struct rsre_oci_op *op = calloc(1, sizeof(*op));
    if (!op) {
        return -ENOMEM;
    }
    if (rsre_oci_parse_provider_id(provider_id, &op->inst) != 0) {
        free(op);
        return RSRE_EINVALID;
    }
    op->c = c;
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    op->pool_size = -1;
    op->started = uv_now(c->loop);
    uv_timer_init(c->loop, &op->timer);
    op->timer.data = op;
    *out = op;
    return 0;
}

int rsre_oci_reboot_worker(struct rsre_oci *c, const char *provider_id,
                           enum rsre_oci_reboot_mode mode, rsre_oci_outcome_cb cb, void *arg,
                           struct rsre_oci_op **out) {
    if (out) {
        *out = NULL;
    }
    if (mode != RSRE_OCI_REBOOT_SOFT && mode != RSRE_OCI_REBOOT_SOFT_THEN_HARD &&
        mode != RSRE_OCI_REBOOT_HARD) {
        return -EINVAL;
    }
    struct rsre_oci_op *op;
    int rc = op_new(c, OP_REBOOT, provider_id, cb, arg, &op);
    if (rc != 0) {
        return rc;
    }
    op->mode = mode;
    rc = rsre_oci_get_instance(c, op->inst.ocid, reboot_on_pre, op, &op->call);
    if (rc != 0) {
        op_release(op);
        return rc;
    }
    op_link(c, op);
    RSRE_LOG(RSRE_LOG_INFO, MOD, "reboot started instance=%s mode=%s", op->inst.ocid,
             mode == RSRE_OCI_REBOOT_HARD   ? "RESET"
             : mode == RSRE_OCI_REBOOT_SOFT ? "SOFTRESET"
                                            : "SOFTRESET,RESET");
    if (out) {
        *out = op;
    }
    return 0;
}

/* Node pool answers: the node list and the configured size. */
static json_t *pool_node(json_t *pool, const char *id) {
    json_t *nodes = json_object_get(pool, "nodes");
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        const char *nid = json_string_value(json_object_get(n, "id"));
        if (nid && strcmp(nid, id) == 0) {
            return n;
        }
    }
    return NULL;
}

static long long pool_size(json_t *pool) {
    json_t *s = json_object_get(json_object_get(pool, "nodeConfigDetails"), "size");
    return json_is_integer(s) ? (long long)json_integer_value(s) : -1;
}

static void replace_on_delete(void *arg, const struct rsre_oci_result *res) {
    struct rsre_oci_op *op = arg;
    op->call = NULL;
    copy_ids(op, res);
    if (res->rc != 0) {
        /* A retried DELETE whose first attempt went through answers 404/409: let the
         * verification decide. */
        int ambiguous = res->attempts > 1 && (res->rc == RSRE_ENOTFOUND || res->rc == -ESTALE);
        if (!ambiguous) {
            char b[MSG_MAX + CODE_MAX];
            op_finish(op, res->rc, "action", "DELETE node: %s", why(res, b, sizeof(b)));
            return;
        }
        RSRE_LOG(RSRE_LOG_WARN, MOD,
                 "DELETE node answered %ld after a retry instance=%s: verifying its effect",
                 res->http_status, op->inst.ocid);
    }
    op->deadline = uv_now(op->c->loop) + op->c->cfg.replace_timeout_ms;
    op_schedule_poll(op);
}

static void replace_on_pool_before(void *arg, const struct rsre_oci_result *res) {
    struct rsre_oci_op *op = arg;
    op->call = NULL;
    if (res->rc != 0) {
        char b[MSG_MAX + CODE_MAX];
        op_finish(op, res->rc, "precheck", "GET node pool: %s", why(res, b, sizeof(b)));
        return;
    }
    const char *pid = json_string_value(json_object_get(res->body, "id"));
    if (!pid || strcmp(pid, op->pool) != 0) {
        op_finish(op, RSRE_EINVALID, "precheck", "GET node pool: answer is not this NodePool");
        return;
    }
    json_t *node = pool_node(res->body, op->inst.ocid);
    if (!node) {
        op_finish(op, RSRE_ENOTFOUND, "precheck",
                  "instance is not a node of node pool %s: not deleting", op->pool);
        return;
    }
    const char *ns = json_string_value(json_object_get(node, "lifecycleState"));
    if (ns && (strcmp(ns, "DELETING") == 0 || strcmp(ns, "DELETED") == 0)) {
        copy_clean(op->state, sizeof(op->state), ns);
        op_finish(op, -EALREADY, "precheck", "node is already %s", op->state);
        return;
    }
    op->pool_size = pool_size(res->body);
    json_t *nodes = json_object_get(res->body, "nodes");
    size_t n = json_array_size(nodes);
    op->nodes = calloc(n ? n : 1, sizeof(char *));
    if (!op->nodes) {
        op_finish(op, -ENOMEM, "precheck", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *nid = json_string_value(json_object_get(json_array_get(nodes, i), "id"));
        if (nid && (op->nodes[op->nnodes] = strdup(nid)) != NULL) {
            op->nnodes++;
        }
    }
    op->action_sent = 1;
    snprintf(op->action_name, sizeof(op->action_name), "DELETE_NODE");
    int rc = rsre_oci_delete_node(op->c, op->pool, op->inst.ocid, replace_on_delete, op, &op->call);
    if (rc != 0) {
        op->call = NULL;
        op_finish(op, rc, "action", "cannot send DELETE node: %s", rsre_strerror(rc));
    }
}

static void replace_on_poll(void *arg, const struct rsre_oci_result *res) {
    struct rsre_oci_op *op = arg;
    op->call = NULL;
    if (res->rc == -ECANCELED || op->c->closing) {
        op_finish(op, -ECANCELED, "verify", "cancelled");
        return;
    }
    int gone = 0;
    if (res->rc == RSRE_ENOTFOUND) {
        gone = 1;
        snprintf(op->state, sizeof(op->state), "TERMINATED");
    } else if (res->rc != 0) {
        if (!transient(res->rc)) {
            char b[MSG_MAX + CODE_MAX];
            op_finish(op, res->rc, "verify", "GET instance: %s", why(res, b, sizeof(b)));
            return;
        }
    } else if (instance_state(op, res->body) != 0) {
        op_finish(op, RSRE_EINVALID, "verify", "GET instance: answer is not this Instance");
        return;
    } else {
        gone = strcmp(op->state, "TERMINATING") == 0 || strcmp(op->state, "TERMINATED") == 0;
    }
    if (gone) {
        op->transition_seen = 1;
        int rc = rsre_oci_get_node_pool(op->c, op->pool, replace_on_pool_after, op, &op->call);
        if (rc != 0) {
            op->call = NULL;
            op_finish(op, rc, "verify", "cannot GET node pool: %s", rsre_strerror(rc));
        }
        return;
    }
    if (uv_now(op->c->loop) >= op->deadline) {
        op_finish(op, -ETIMEDOUT, "verify", "instance still %s after the timeout",
                  op->state[0] ? op->state : "unknown");
        return;
    }
    op_schedule_poll(op);
}

static void replace_on_pool_after(void *arg, const struct rsre_oci_result *res) {
    struct rsre_oci_op *op = arg;
    op->call = NULL;
    if (res->rc != 0) {
        char b[MSG_MAX + CODE_MAX];
        op_finish(op, res->rc, "verify", "GET node pool: %s", why(res, b, sizeof(b)));
        return;
    }
    long long before = op->pool_size; /* -1 = the pool did not report its size */
    long long after = pool_size(res->body);
    json_t *nodes = json_object_get(res->body, "nodes");
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        const char *nid = json_string_value(json_object_get(n, "id"));
        int known = 0;
        for (size_t j = 0; nid && j < op->nnodes; j++) {
            known |= strcmp(op->nodes[j], nid) == 0;
        }
        if (nid && !known && !op->replacement[0]) {
            copy_clean(op->replacement, sizeof(op->replacement), nid);
        }
    }
    if (before >= 0 && after != before) {
        op_finish(op, -ESTALE, "verify", "node pool size changed from %lld to %lld", before, after);
        return;
    }
    if (before >= 0) {
        op_finish(op, 0, "done", "node %s; pool keeps %lld nodes%s%s", op->state, after,
                  op->replacement[0] ? "; replacement " : "; replacement not listed yet",
                  op->replacement);
    } else {
        op_finish(op, 0, "done", "node %s; pool size not reported%s%s", op->state,
                  op->replacement[0] ? "; replacement " : "", op->replacement);
    }
}

int rsre_oci_replace_worker(struct rsre_oci *c, const char *provider_id, const char *node_pool_id,
                            rsre_oci_outcome_cb cb, void *arg, struct rsre_oci_op **out) {
    if (out) {
        *out = NULL;
    }
    const char *pool = NULL;
    int rc = rsre_oci_pick_node_pool(node_pool_id, c->cfg.node_pool_id, &pool);
    if (rc != 0) {
        return rc;
    }
    struct rsre_oci_op *op;
    rc = op_new(c, OP_REPLACE, provider_id, cb, arg, &op);
    if (rc != 0) {
        return rc;
    }
    snprintf(op->pool, sizeof(op->pool), "%s", pool);
    rc = rsre_oci_get_node_pool(c, op->pool, replace_on_pool_before, op, &op->call);
    if (rc != 0) {
        op_release(op);
        return rc;
    }
    op_link(c, op);
    RSRE_LOG(RSRE_LOG_INFO, MOD, "replace started instance=%s node_pool=%s", op->inst.ocid,
             op->pool);
    if (out) {
        *out = op;
    }
    return 0;
}

void rsre_oci_op_abandon(struct rsre_oci_op *op) {
    if (!op || op->finishing) {
        return;
    }
    if (op->call) {
        rsre_oci_call_abandon(op->call);
        op->call = NULL;
    }
    op_unlink(op);
    op_release(op);
}

void rsre_oci_destroy(struct rsre_oci *c) {
    if (!c) {
        return;
    }
    c->closing = 1;
    /* Calls first: an operation waiting on one finishes through it. */
    while (c->calls) {
        struct rsre_oci_call *k = c->calls;
        if (k->xfer) {
            c->tr.abandon(c->tr.ctx, k->xfer);
            k->xfer = NULL;
        }
        uv_timer_stop(&k->timer);
        call_finish(k, -ECANCELED, 0, NULL, "cancelled", NULL);
    }
    while (c->ops) {
        struct rsre_oci_op *op = c->ops;
        op->call = NULL;
        op_finish(op, -ECANCELED, "cancelled", "client destroyed");
    }
    rsre_oci_signer_destroy(c->signer);
    free(c);
}
