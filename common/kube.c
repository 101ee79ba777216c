#include "common/kube.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/yamldoc.h"

#define MOD "kube"
#define TOKEN_REFRESH_MS 60000u

/* ---- small helpers ------------------------------------------------------------------------ */

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

static int copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        return RSRE_ELIMIT;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

static void wipe_free(char *p, size_t len) {
    if (p) {
        volatile char *v = p;
        for (size_t i = 0; i < len; i++) {
            v[i] = 0;
        }
        free(p);
    }
}

/* Reads a whole regular file of at most `max` bytes into a NUL-terminated buffer. */
static int read_file(const char *path, size_t max, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return RSRE_ELIMIT;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

static void trim_right(char *s, size_t *len) {
    size_t n = len ? *len : strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
    if (len) {
        *len = n;
    }
}

/* Standard base64 (RFC 4648), padding optional, whitespace ignored. */
static int b64_decode(const char *in, char **out, size_t *out_len) {
    size_t inlen = strlen(in);
    char *buf = malloc(inlen / 4 * 3 + 4);
    if (!buf) {
        return -ENOMEM;
    }
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t n = 0;
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '+') {
            v = 62;
        } else if (c == '/') {
            v = 63;
        } else if (c == '=') {
            pad++;
            continue;
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        } else {
            free(buf);
            return RSRE_EINVALID;
        }
        if (pad) {
            free(buf);
            return RSRE_EINVALID; /* data after padding */
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (char)((acc >> bits) & 0xFF);
        }
    }
    if (bits >= 6 || pad > 2) {
        free(buf);
        return RSRE_EINVALID;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

int rsre_kube_escape(const char *s, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        size_t need = plain ? 1 : 3;
        if (n + need >= cap) {
            return RSRE_ELIMIT;
        }
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (n >= cap) {
        return RSRE_ELIMIT;
    }
    out[n] = '\0';
    return 0;
}

/* ---- configuration ------------------------------------------------------------------------ */

void rsre_kube_config_clear(struct rsre_kube_config *c) {
    if (!c) {
        return;
    }
    wipe_free(c->token, c->token ? strlen(c->token) : 0);
    wipe_free(c->ca_pem, c->ca_pem_len);
    wipe_free(c->cert_pem, c->cert_pem_len);
    wipe_free(c->key_pem, c->key_pem_len);
    memset(c, 0, sizeof(*c));
}

static int set_server(struct rsre_kube_config *c, const char *url) {
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        return -EINVAL;
    }
    if (strpbrk(url, " \t\r\n?#")) {
        return -EINVAL;
    }
    if (copy_str(c->server, sizeof(c->server), url) != 0) {
        return -EINVAL;
    }
    size_t n = strlen(c->server);
    while (n > 0 && c->server[n - 1] == '/') {
        c->server[--n] = '\0';
    }
    return 0;
}

int rsre_kube_config_url(struct rsre_kube_config *c, const char *url) {
    memset(c, 0, sizeof(*c));
    return url ? set_server(c, url) : -EINVAL;
}

int rsre_kube_config_in_cluster(struct rsre_kube_config *c, const char *sa_dir, char *err,
                                size_t err_len) {
    memset(c, 0, sizeof(*c));
    const char *dir = sa_dir && *sa_dir ? sa_dir : RSRE_KUBE_SA_DIR;
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port) {
        return errf(err, err_len, RSRE_ENOTFOUND,
                    "not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
    }
    if (strlen(host) > 255 || strpbrk(host, "/ \t\r\n@?#[]")) {
        return errf(err, err_len, RSRE_EINVALID, "KUBERNETES_SERVICE_HOST is not a host");
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p < 1 || p > 65535) {
        return errf(err, err_len, RSRE_EINVALID, "KUBERNETES_SERVICE_PORT is not a port");
    }
    char url[RSRE_KUBE_PATH_LEN];
    if (strchr(host, ':')) {
        snprintf(url, sizeof(url), "https://[%s]:%ld", host, p);
    } else {
        snprintf(url, sizeof(url), "https://%s:%ld", host, p);
    }
    set_server(c, url);
    if (snprintf(c->token_file, sizeof(c->token_file), "%s/token", dir) >=
        (int)sizeof(c->token_file)) {
        return errf(err, err_len, RSRE_EINVALID, "service account directory path too long");
    }
    if (access(c->token_file, R_OK) != 0) {
        int e = errno;
        rsre_kube_config_clear(c);
        return errf(err, err_len, RSRE_ENOTFOUND, "service account token %s/token: %s", dir,
                    strerror(e));
    }
    char ca[RSRE_KUBE_PATH_LEN];
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    if (access(ca, R_OK) == 0) {
        copy_str(c->ca_file, sizeof(c->ca_file), ca);
    }
    char nsf[RSRE_KUBE_PATH_LEN];
    snprintf(nsf, sizeof(nsf), "%s/namespace", dir);
    char *ns;
    size_t len;
    if (read_file(nsf, 1024, &ns, &len) == 0) {
        trim_right(ns, &len);
        if (len < sizeof(c->ns) && !strpbrk(ns, "/ \t\r\n")) {
            memcpy(c->ns, ns, len + 1);
        }
        free(ns);
    }
    return 0;
}

/* kubeconfig ------------------------------------------------------------------------------- */

struct kcfg {
    yaml_document_t *doc;
    const char *path;
    char dir[RSRE_KUBE_PATH_LEN];
    char *err;
    size_t err_len;
};

static int kfail(struct kcfg *k, yaml_node_t *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int kfail(struct kcfg *k, yaml_node_t *n, int code, const char *fmt, ...) {
    if (!k->err || !k->err_len) {
        return code;
    }
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n) {
        snprintf(k->err, k->err_len, "%s:%d:%d: %s", k->path, (int)n->start_mark.line + 1,
                 (int)n->start_mark.column + 1, msg);
    } else {
        snprintf(k->err, k->err_len, "%s: %s", k->path, msg);
    }
    return code;
}

/* Finds the entry `name` of a kubeconfig list ("clusters", "users", "contexts") and returns
 * its `inner` mapping ("cluster", "user", "context"). */
static int find_named(struct kcfg *k, const char *list, const char *inner, const char *name,
                      yaml_node_t **out) {
    yaml_node_t *root = rsre_yaml_root(k->doc);
    yaml_node_t *seq = rsre_yaml_get(k->doc, root, list);
    *out = NULL;
    if (seq && seq->type != YAML_SEQUENCE_NODE) {
        return kfail(k, seq, RSRE_EINVALID, "%s: expected a list", list);
    }
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *it = rsre_yaml_item(k->doc, seq, i);
        const char *n = rsre_yaml_str(rsre_yaml_get(k->doc, it, "name"));
        if (n && strcmp(n, name) == 0) {
            yaml_node_t *m = rsre_yaml_get(k->doc, it, inner);
            if (!m || m->type != YAML_MAPPING_NODE) {
                return kfail(k, m ? m : it, RSRE_EINVALID, "%s \"%s\": %s is not a mapping", list,
                             name, inner);
            }
            *out = m;
            return 0;
        }
    }
    return kfail(k, seq, RSRE_ENOTFOUND, "no %s entry named \"%s\"", list, name);
}

/* Optional string field: *out NULL when absent. */
static int kstr(struct kcfg *k, yaml_node_t *map, const char *key, const char **out) {
    struct rsre_yerr ye;
    *out = NULL;
    int rc = rsre_yaml_get_str(k->doc, map, key, out, &ye);
    if (rc == RSRE_ENOTFOUND) {
        *out = NULL;
        return 0;
    }
    if (rc != 0) {
        return kfail(k, rsre_yaml_get(k->doc, map, key), RSRE_EINVALID, "%s: %s", key, ye.msg);
    }
    return 0;
}

/* Resolves a path relative to the kubeconfig's directory into dst. */
static int kpath(struct kcfg *k, yaml_node_t *map, const char *key, const char *val, char *dst,
                 size_t cap) {
    int n;
    if (val[0] == '/') {
        n = snprintf(dst, cap, "%s", val);
    } else {
        n = snprintf(dst, cap, "%s/%s", k->dir, val);
    }
    if (n < 0 || (size_t)n >= cap) {
        return kfail(k, rsre_yaml_get(k->doc, map, key), RSRE_ELIMIT, "%s: path too long", key);
    }
    return 0;
}

static int kdata(struct kcfg *k, yaml_node_t *map, const char *key, const char *val, char **out,
                 size_t *len) {
    if (strlen(val) > RSRE_KUBE_MAX_CREDENTIAL * 2) {
        return kfail(k, rsre_yaml_get(k->doc, map, key), RSRE_ELIMIT, "%s: too long", key);
    }
    int rc = b64_decode(val, out, len);
    if (rc == RSRE_EINVALID) {
        return kfail(k, rsre_yaml_get(k->doc, map, key), RSRE_EINVALID, "%s: not base64", key);
    }
    return rc;
}

static int load_kubeconfig(struct kcfg *k, struct rsre_kube_config *c, const char *context) {
    yaml_node_t *root = rsre_yaml_root(k->doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        return kfail(k, root, RSRE_EINVALID, "expected a mapping at the top");
    }
    const char *ctxname = context;
    int rc;
    if (!ctxname || !*ctxname) {
        if ((rc = kstr(k, root, "current-context", &ctxname))) {
            return rc;
        }
        if (!ctxname || !*ctxname) {
            return kfail(k, root, RSRE_ENOTFOUND, "no current-context and no context given");
        }
    }
    yaml_node_t *ctx, *cluster, *user = NULL;
    if ((rc = find_named(k, "contexts", "context", ctxname, &ctx))) {
        return rc;
    }
    const char *cname, *uname, *ns;
    if ((rc = kstr(k, ctx, "cluster", &cname)) || (rc = kstr(k, ctx, "user", &uname)) ||
        (rc = kstr(k, ctx, "namespace", &ns))) {
        return rc;
    }
    if (!cname) {
        return kfail(k, ctx, RSRE_EINVALID, "context \"%s\" names no cluster", ctxname);
    }
    if ((rc = find_named(k, "clusters", "cluster", cname, &cluster))) {
        return rc;
    }
    if (uname && *uname && (rc = find_named(k, "users", "user", uname, &user))) {
        return rc;
    }
    if (ns && (strlen(ns) >= sizeof(c->ns) || strchr(ns, '/'))) {
        return kfail(k, ctx, RSRE_EINVALID, "namespace: not a namespace name");
    }
    if (ns) {
        copy_str(c->ns, sizeof(c->ns), ns);
    }
    /* cluster */
    const char *server, *ca, *cadata;
    if ((rc = kstr(k, cluster, "server", &server)) ||
        (rc = kstr(k, cluster, "certificate-authority", &ca)) ||
        (rc = kstr(k, cluster, "certificate-authority-data", &cadata))) {
        return rc;
    }
    if (!server || set_server(c, server) != 0) {
        return kfail(k, cluster, RSRE_EINVALID, "cluster \"%s\": server is not an http(s) URL",
                     cname);
    }
    struct rsre_yerr ye;
    rc = rsre_yaml_get_bool(k->doc, cluster, "insecure-skip-tls-verify", &c->insecure, &ye);
    if (rc != 0 && rc != RSRE_ENOTFOUND) {
        return kfail(k, cluster, RSRE_EINVALID, "insecure-skip-tls-verify: %s", ye.msg);
    }
    if (cadata && *cadata) {
        if ((rc = kdata(k, cluster, "certificate-authority-data", cadata, &c->ca_pem,
                        &c->ca_pem_len))) {
            return rc;
        }
    } else if (ca && *ca &&
               (rc = kpath(k, cluster, "certificate-authority", ca, c->ca_file,
                           sizeof(c->ca_file)))) {
        return rc;
    }
    if (!user) {
        return 0;
    }
    /* user */
    if (rsre_yaml_get(k->doc, user, "exec") || rsre_yaml_get(k->doc, user, "auth-provider")) {
        return kfail(k, user, RSRE_EINVALID,
                     "user \"%s\": exec and auth-provider credentials are not supported; use a "
                     "token or a client certificate",
                     uname);
    }
    const char *token, *tokenfile, *cert, *certdata, *key, *keydata;
    if ((rc = kstr(k, user, "token", &token)) || (rc = kstr(k, user, "tokenFile", &tokenfile)) ||
        (rc = kstr(k, user, "client-certificate", &cert)) ||
        (rc = kstr(k, user, "client-certificate-data", &certdata)) ||
        (rc = kstr(k, user, "client-key", &key)) ||
        (rc = kstr(k, user, "client-key-data", &keydata))) {
        return rc;
    }
    if (token && *token) {
        if (strpbrk(token, "\r\n") || strlen(token) > RSRE_KUBE_MAX_CREDENTIAL) {
            return kfail(k, user, RSRE_EINVALID, "token: not a bearer token");
        }
        c->token = strdup(token);
        if (!c->token) {
            return -ENOMEM;
        }
    } else if (tokenfile && *tokenfile &&
               (rc =
                    kpath(k, user, "tokenFile", tokenfile, c->token_file, sizeof(c->token_file)))) {
        return rc;
    }
    if (certdata && *certdata) {
        if ((rc = kdata(k, user, "client-certificate-data", certdata, &c->cert_pem,
                        &c->cert_pem_len))) {
            return rc;
        }
    } else if (cert && *cert &&
               (rc = kpath(k, user, "client-certificate", cert, c->cert_file,
                           sizeof(c->cert_file)))) {
        return rc;
    }
    if (keydata && *keydata) {
        if ((rc = kdata(k, user, "client-key-data", keydata, &c->key_pem, &c->key_pem_len))) {
            return rc;
        }
    } else if (key && *key &&
               (rc = kpath(k, user, "client-key", key, c->key_file, sizeof(c->key_file)))) {
        return rc;
    }
    int has_cert = c->cert_pem || c->cert_file[0];
    int has_key = c->key_pem || c->key_file[0];
    if (has_cert != has_key) {
        return kfail(k, user, RSRE_EINVALID,
                     "user \"%s\": a client certificate needs its key and the other way round",
                     uname);
    }
    return 0;
}

int rsre_kube_config_kubeconfig(struct rsre_kube_config *c, const char *path, const char *context,
                                char *err, size_t err_len) {
    memset(c, 0, sizeof(*c));
    char *buf;
    size_t len;
    int rc = read_file(path, RSRE_YAML_MAX_INPUT, &buf, &len);
    if (rc != 0) {
        return errf(err, err_len, rc == -ENOENT ? RSRE_ENOTFOUND : rc, "%s: %s", path,
                    rsre_strerror(rc));
    }
    yaml_document_t doc;
    struct rsre_yerr ye;
    rc = rsre_yaml_load(buf, len, &doc, &ye);
    wipe_free(buf, len); /* it may hold credentials */
    if (rc != 0) {
        return errf(err, err_len, rc, "%s:%d:%d: %s", path, ye.line, ye.col, ye.msg);
    }
    struct kcfg k = {.doc = &doc, .path = path, .err = err, .err_len = err_len};
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t dl = (size_t)(slash - path);
        if (dl == 0) {
            dl = 1;
        }
        if (dl >= sizeof(k.dir)) {
            yaml_document_delete(&doc);
            return errf(err, err_len, RSRE_ELIMIT, "%s: path too long", path);
        }
        memcpy(k.dir, path, dl);
        k.dir[dl] = '\0';
    } else {
        strcpy(k.dir, ".");
    }
    rc = load_kubeconfig(&k, c, context);
    yaml_document_delete(&doc);
    if (rc != 0) {
        rsre_kube_config_clear(c);
    }
    return rc;
}

int rsre_kube_config_auto(struct rsre_kube_config *c, const char *base_url, const char *kubeconfig,
                          const char *sa_dir, char *err, size_t err_len) {
    if (base_url && *base_url) {
        int rc = rsre_kube_config_url(c, base_url);
        return rc ? errf(err, err_len, rc, "kube API URL \"%s\" is not an http(s) URL", base_url)
                  : 0;
    }
    if (kubeconfig && *kubeconfig) {
        return rsre_kube_config_kubeconfig(c, kubeconfig, NULL, err, err_len);
    }
    return rsre_kube_config_in_cluster(c, sa_dir, err, err_len);
}

/* ---- client ------------------------------------------------------------------------------- */

struct rsre_kube_informer;

struct rsre_kube_call {
    struct rsre_kube *k;
    struct rsre_http_req *req;
    rsre_kube_cb cb;
    void *arg;
    struct rsre_kube_call *prev, *next;
};

struct rsre_kube {
    struct rsre_http *http;
    struct rsre_kube_config cfg;
    struct rsre_http_tls tls;
    char *token; /* current bearer token (static, or read from token_file) */
    uint64_t token_loaded_ms;
    int token_loaded;
    struct rsre_kube_call *calls;
    struct rsre_kube_informer *informers;
    int closing;
};

static char *dup_mem(const char *p, size_t n) {
    if (!p) {
        return NULL;
    }
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

int rsre_kube_create(struct rsre_http *http, const struct rsre_kube_config *cfg,
                     struct rsre_kube **out) {
    *out = NULL;
    if (!http || !cfg || !cfg->server[0]) {
        return -EINVAL;
    }
    struct rsre_kube *k = calloc(1, sizeof(*k));
    if (!k) {
        return -ENOMEM;
    }
    k->http = http;
    k->cfg = *cfg;
    k->cfg.token = cfg->token ? strdup(cfg->token) : NULL;
    k->cfg.ca_pem = dup_mem(cfg->ca_pem, cfg->ca_pem_len);
    k->cfg.cert_pem = dup_mem(cfg->cert_pem, cfg->cert_pem_len);
    k->cfg.key_pem = dup_mem(cfg->key_pem, cfg->key_pem_len);
    if ((cfg->token && !k->cfg.token) || (cfg->ca_pem && !k->cfg.ca_pem) ||
        (cfg->cert_pem && !k->cfg.cert_pem) || (cfg->key_pem && !k->cfg.key_pem)) {
        rsre_kube_config_clear(&k->cfg);
        free(k);
        return -ENOMEM;
    }
    k->tls = (struct rsre_http_tls){
        .ca_file = k->cfg.ca_file,
        .ca_pem = k->cfg.ca_pem,
        .ca_pem_len = k->cfg.ca_pem_len,
        .cert_file = k->cfg.cert_file,
        .cert_pem = k->cfg.cert_pem,
        .cert_pem_len = k->cfg.cert_pem_len,
        .key_file = k->cfg.key_file,
        .key_pem = k->cfg.key_pem,
        .key_pem_len = k->cfg.key_pem_len,
        .insecure = k->cfg.insecure,
    };
    *out = k;
    return 0;
}

const struct rsre_kube_config *rsre_kube_get_config(const struct rsre_kube *k) {
    return &k->cfg;
}

uv_loop_t *rsre_kube_loop(const struct rsre_kube *k) {
    return rsre_http_loop(k->http);
}

/* The bearer token to send now: the static one, or the token file's content, re-read at most
 * once a minute (kubelet rotates projected service account tokens). */
static const char *current_token(struct rsre_kube *k) {
    if (k->cfg.token) {
        return k->cfg.token;
    }
    if (!k->cfg.token_file[0]) {
        return NULL;
    }
    uint64_t now = uv_now(rsre_http_loop(k->http));
    if (k->token_loaded && now - k->token_loaded_ms < TOKEN_REFRESH_MS) {
        return k->token;
    }
    char *buf;
    size_t len;
    int rc = read_file(k->cfg.token_file, RSRE_KUBE_MAX_CREDENTIAL, &buf, &len);
    k->token_loaded = 1;
    k->token_loaded_ms = now;
    if (rc != 0) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "cannot read token file path=%s err=\"%s\"", k->cfg.token_file,
                 rsre_strerror(rc));
        return k->token; /* keep the previous one */
    }
    trim_right(buf, &len);
    if (strpbrk(buf, "\r\n") || len == 0) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "token file holds no usable token path=%s", k->cfg.token_file);
        wipe_free(buf, len);
        return k->token;
    }
    wipe_free(k->token, k->token ? strlen(k->token) : 0);
    k->token = buf;
    return k->token;
}

/* Starts an HTTP request to the API server with this client's credentials. */
static int kube_http(struct rsre_kube *k, const char *method, const char *path, const char *body,
                     size_t body_len, const char *ctype, size_t max_body, size_t max_line,
                     uint32_t timeout_ms, rsre_http_line_cb on_line, rsre_http_done_cb done,
                     void *arg, struct rsre_http_req **out) {
    if (k->closing) {
        return -ESHUTDOWN;
    }
    if (!path || path[0] != '/') {
        return -EINVAL;
    }
    size_t ul = strlen(k->cfg.server) + strlen(path) + 1;
    char *url = malloc(ul);
    if (!url) {
        return -ENOMEM;
    }
    snprintf(url, ul, "%s%s", k->cfg.server, path);
    char ct[128];
    struct rsre_http_opts o = {
        .method = method,
        .url = url,
        .bearer_token = current_token(k),
        .body = body,
        .body_len = body_len,
        .timeout_ms = timeout_ms,
        .max_body = max_body,
        .max_line = max_line,
        .tls = &k->tls,
        .on_line = on_line,
        .done = done,
        .arg = arg,
    };
    o.headers[o.nheaders++] = "Accept: application/json";
    if (body) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
        o.headers[o.nheaders++] = ct;
    }
    int rc = rsre_http_request(k->http, &o, out);
    free(url);
    return rc;
}

static int status_rc(long status, const struct rsre_kube_status *st) {
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
        return (st && strcmp(st->reason, "AlreadyExists") == 0) ? RSRE_EEXIST : -ESTALE;
    case 410:
        return -ESTALE;
    case 429:
        return -EAGAIN;
    default:
        break;
    }
    if (status >= 500) {
        return -EIO;
    }
    if (status == 0) {
        return -EIO;
    }
    return RSRE_EINVALID;
}

static void unlink_call(struct rsre_kube *k, struct rsre_kube_call *c) {
    if (c->prev) {
        c->prev->next = c->next;
    } else if (k->calls == c) {
        k->calls = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

static void call_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct rsre_kube_call *c = arg;
    struct rsre_kube *k = c->k;
    unlink_call(k, c);
    struct rsre_kube_status st;
    struct rsre_kube_result res = {.rc = rc, .http_status = resp->status, .error = ""};
    json_t *body = NULL;
    char err[RSRE_KUBE_ERR_LEN] = "";
    if (rc == 0 && resp->body_len > 0) {
        int prc = rsre_kube_json_load(resp->body, resp->body_len, &body, err, sizeof(err));
        if (prc != 0 && resp->status >= 200 && resp->status < 300) {
            res.rc = prc;
            res.error = err;
        }
    }
    if (rc == 0 && (resp->status < 200 || resp->status >= 300)) {
        if (body && rsre_kube_status_decode(body, &st, NULL, 0) == 0) {
            res.status = &st;
        }
        res.rc = status_rc(resp->status, res.status);
        if (res.status && st.message[0]) {
            res.error = st.message;
        } else {
            snprintf(err, sizeof(err), "HTTP %ld", resp->status);
            res.error = err;
        }
    } else if (rc != 0) {
        snprintf(err, sizeof(err), "%s", rsre_strerror(rc));
        res.error = err;
    }
    res.body = body;
    c->cb(c->arg, &res);
    json_decref(body);
    free(c);
}

int rsre_kube_call(struct rsre_kube *k, const struct rsre_kube_request *req, rsre_kube_cb cb,
                   void *arg, struct rsre_kube_call **out) {
    if (out) {
        *out = NULL;
    }
    if (!req || !cb) {
        return -EINVAL;
    }
    struct rsre_kube_call *c = calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    c->k = k;
    c->cb = cb;
    c->arg = arg;
    int rc =
        kube_http(k, req->method, req->path, req->body, req->body ? req->body_len : 0,
                  req->content_type, req->max_body ? req->max_body : RSRE_KUBE_DEFAULT_MAX_BODY, 0,
                  req->timeout_ms ? req->timeout_ms : RSRE_KUBE_DEFAULT_TIMEOUT_MS, NULL, call_done,
                  c, &c->req);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->next = k->calls;
    if (k->calls) {
        k->calls->prev = c;
    }
    k->calls = c;
    if (out) {
        *out = c;
    }
    return 0;
}

int rsre_kube_get(struct rsre_kube *k, const char *path, rsre_kube_cb cb, void *arg,
                  struct rsre_kube_call **out) {
    struct rsre_kube_request r = {.method = "GET", .path = path};
    return rsre_kube_call(k, &r, cb, arg, out);
}

int rsre_kube_delete(struct rsre_kube *k, const char *path, const char *uid, const char *rv,
                     const char *propagation, rsre_kube_cb cb, void *arg,
                     struct rsre_kube_call **out) {
    json_t *opts = json_pack("{s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1");
    if (!opts) {
        return -ENOMEM;
    }
    int bad = 0;
    if ((uid && *uid) || (rv && *rv)) {
        json_t *pre = json_object();
        bad |= !pre || json_object_set_new(opts, "preconditions", pre) != 0;
        if (!bad && uid && *uid) {
            bad |= json_object_set_new(pre, "uid", json_string(uid)) != 0;
        }
        if (!bad && rv && *rv) {
            bad |= json_object_set_new(pre, "resourceVersion", json_string(rv)) != 0;
        }
    }
    if (!bad && propagation && *propagation) {
        bad |= json_object_set_new(opts, "propagationPolicy", json_string(propagation)) != 0;
    }
    char *body = bad ? NULL : json_dumps(opts, JSON_COMPACT);
    json_decref(opts);
    if (!body) {
        return bad ? -EINVAL : -ENOMEM;
    }
    struct rsre_kube_request r = {
        .method = "DELETE", .path = path, .body = body, .body_len = strlen(body)};
    int rc = rsre_kube_call(k, &r, cb, arg, out);
    free(body);
    return rc;
}

int rsre_kube_patch(struct rsre_kube *k, const char *path, enum rsre_kube_patch_type type,
                    const char *json, rsre_kube_cb cb, void *arg, struct rsre_kube_call **out) {
    static const char *const ctypes[] = {
        [RSRE_KUBE_PATCH_MERGE] = "application/merge-patch+json",
        [RSRE_KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
        [RSRE_KUBE_PATCH_JSON] = "application/json-patch+json",
    };
    if ((unsigned)type > RSRE_KUBE_PATCH_JSON || !json) {
        return -EINVAL;
    }
    struct rsre_kube_request r = {.method = "PATCH",
                                  .path = path,
                                  .body = json,
                                  .body_len = strlen(json),
                                  .content_type = ctypes[type]};
    return rsre_kube_call(k, &r, cb, arg, out);
}

int rsre_kube_post(struct rsre_kube *k, const char *path, const char *json, rsre_kube_cb cb,
                   void *arg, struct rsre_kube_call **out) {
    if (!json) {
        return -EINVAL;
    }
    struct rsre_kube_request r = {
        .method = "POST", .path = path, .body = json, .body_len = strlen(json)};
    return rsre_kube_call(k, &r, cb, arg, out);
}

void rsre_kube_call_abandon(struct rsre_kube_call *c) {
    unlink_call(c->k, c);
    rsre_http_abandon(c->req);
    free(c);
}

/* ---- informer: cache ---------------------------------------------------------------------- */

struct entry {
    struct entry *next;
    uint32_t hash;
    char *ns;   /* "ns\0name\0" in one allocation */
    char *name; /* points into ns */
    char uid[RSRE_KUBE_UID_LEN];
    char rv[RSRE_KUBE_RV_LEN];
    void *obj;
};

struct map {
    struct entry **b;
    size_t nb, n;
};

static uint32_t hash_key(const char *ns, const char *name) {
    uint32_t h = 2166136261u;
    for (const char *p = ns; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    h = (h ^ '/') * 16777619u;
    for (const char *p = name; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    return h;
}

static struct entry *map_find(const struct map *m, const char *ns, const char *name) {
    if (!m->nb) {
        return NULL;
    }
    uint32_t h = hash_key(ns, name);
    for (struct entry *e = m->b[h & (m->nb - 1)]; e; e = e->next) {
        if (e->hash == h && strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

static int map_grow(struct map *m) {
    size_t nb = m->nb ? m->nb * 2 : 16;
    struct entry **b = calloc(nb, sizeof(*b));
    if (!b) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->nb; i++) {
        struct entry *e = m->b[i];
        while (e) {
            struct entry *nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = nx;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

/* Inserts e (its key must not be present). */
static int map_insert(struct map *m, struct entry *e) {
    if (m->n + 1 > m->nb && map_grow(m) != 0) {
        return -ENOMEM;
    }
    struct entry **slot = &m->b[e->hash & (m->nb - 1)];
    e->next = *slot;
    *slot = e;
    m->n++;
    return 0;
}

static void map_remove(struct map *m, struct entry *e) {
    struct entry **p = &m->b[e->hash & (m->nb - 1)];
    while (*p && *p != e) {
        p = &(*p)->next;
    }
    if (*p) {
        *p = e->next;
        e->next = NULL;
        m->n--;
    }
}

static struct entry *entry_new(const struct rsre_kube_meta *meta, void *obj) {
    struct entry *e = calloc(1, sizeof(*e));
    size_t nl = strlen(meta->ns), ml = strlen(meta->name);
    char *key = malloc(nl + ml + 2);
    if (!e || !key) {
        free(e);
        free(key);
        return NULL;
    }
    memcpy(key, meta->ns, nl + 1);
    memcpy(key + nl + 1, meta->name, ml + 1);
    e->ns = key;
    e->name = key + nl + 1;
    e->hash = hash_key(e->ns, e->name);
    memcpy(e->uid, meta->uid, sizeof(e->uid));
    memcpy(e->rv, meta->rv, sizeof(e->rv));
    e->obj = obj;
    return e;
}

/* ---- informer: state ---------------------------------------------------------------------- */

enum next_step { STEP_NONE = 0, STEP_LIST, STEP_WATCH };

struct rsre_kube_informer {
    struct rsre_kube *k;
    struct rsre_kube_informer_opts o;
    char *path, *kind, *fsel, *lsel; /* owned copies; selectors escaped */
    struct map cache;
    struct map next; /* objects of the list in progress */
    char rv[RSRE_KUBE_RV_LEN];
    char cont[RSRE_KUBE_CONTINUE_LEN];
    int consistent; /* next list reads the latest state (no resourceVersion=0) */
    struct rsre_http_req *req;
    uv_timer_t timer;
    enum next_step step;
    uint32_t failures; /* consecutive failures, for the backoff */
    uint32_t gone_in_row;
    uint64_t watch_started;
    int watch_lines;
    int synced, stopped;
    uint64_t rng;
    struct rsre_kube_informer_stats st;
    struct rsre_kube_informer *prev, *next_inf;
};

static void start_list(struct rsre_kube_informer *inf);
static void start_watch(struct rsre_kube_informer *inf);

static uint32_t rnd(struct rsre_kube_informer *inf) {
    inf->rng ^= inf->rng << 13;
    inf->rng ^= inf->rng >> 7;
    inf->rng ^= inf->rng << 17;
    return (uint32_t)(inf->rng >> 11);
}

static void free_entry(struct rsre_kube_informer *inf, struct entry *e) {
    if (e->obj && inf->o.free_obj) {
        inf->o.free_obj(e->obj);
    }
    free(e->ns);
    free(e);
}

static void map_clear(struct rsre_kube_informer *inf, struct map *m) {
    for (size_t i = 0; i < m->nb; i++) {
        struct entry *e = m->b[i];
        while (e) {
            struct entry *nx = e->next;
            free_entry(inf, e);
            e = nx;
        }
    }
    free(m->b);
    memset(m, 0, sizeof(*m));
}

static void identity(const struct entry *e, struct rsre_kube_meta *m) {
    memset(m, 0, sizeof(*m));
    snprintf(m->ns, sizeof(m->ns), "%s", e->ns);
    snprintf(m->name, sizeof(m->name), "%s", e->name);
    memcpy(m->uid, e->uid, sizeof(m->uid));
    memcpy(m->rv, e->rv, sizeof(m->rv));
}

/* Emits a change; returns 1 when the informer was stopped by the callback. */
static int emit(struct rsre_kube_informer *inf, enum rsre_kube_change ch, const struct entry *e,
                void *old) {
    inf->st.events++;
    if (inf->o.on_change) {
        struct rsre_kube_meta m;
        identity(e, &m);
        inf->o.on_change(inf->o.arg, ch, &m, e->obj, old);
    }
    return inf->stopped;
}

static void schedule(struct rsre_kube_informer *inf, enum next_step step, uint64_t delay_ms);

static void timer_cb(uv_timer_t *t) {
    struct rsre_kube_informer *inf = t->data;
    enum next_step s = inf->step;
    inf->step = STEP_NONE;
    if (s == STEP_LIST) {
        start_list(inf);
    } else if (s == STEP_WATCH) {
        start_watch(inf);
    }
}

static void schedule(struct rsre_kube_informer *inf, enum next_step step, uint64_t delay_ms) {
    if (inf->stopped) {
        return;
    }
    inf->step = step;
    uv_timer_start(&inf->timer, timer_cb, delay_ms, 0);
}

/* Delay before the next attempt after a failure: exponential, with jitter in [d/2, d]. */
static uint64_t backoff(struct rsre_kube_informer *inf) {
    uint64_t d = inf->o.backoff_min_ms;
    for (uint32_t i = 0; i < inf->failures && d < inf->o.backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > inf->o.backoff_max_ms) {
        d = inf->o.backoff_max_ms;
    }
    if (inf->failures < 64) {
        inf->failures++;
    }
    uint64_t half = d / 2;
    return half + (half ? rnd(inf) % (half + 1) : 0);
}

static void report_error(struct rsre_kube_informer *inf, int rc, const char *what,
                         const char *msg) {
    inf->st.errors++;
    inf->st.last_rc = rc;
    RSRE_LOG(RSRE_LOG_WARN, MOD, "%s failed path=%s rc=%d err=\"%s\" detail=\"%s\"", what,
             inf->path, rc, rsre_strerror(rc), msg ? msg : "");
    if (inf->o.on_error) {
        inf->o.on_error(inf->o.arg, rc, msg ? msg : rsre_strerror(rc));
    }
}

/* Appends "&key=value" (value escaped) to buf. */
static int add_param(char *buf, size_t cap, const char *key, const char *value, int escape) {
    size_t n = strlen(buf);
    char esc[RSRE_KUBE_CONTINUE_LEN * 3];
    if (escape) {
        if (rsre_kube_escape(value, esc, sizeof(esc)) != 0) {
            return RSRE_ELIMIT;
        }
        value = esc;
    }
    int w = snprintf(buf + n, cap - n, "%s%s=%s", strchr(buf, '?') ? "&" : "?", key, value);
    return (w < 0 || (size_t)w >= cap - n) ? RSRE_ELIMIT : 0;
}

static int add_selectors(struct rsre_kube_informer *inf, char *url, size_t cap) {
    int rc = 0;
    if (inf->fsel) {
        rc = add_param(url, cap, "fieldSelector", inf->fsel, 0);
    }
    if (rc == 0 && inf->lsel) {
        rc = add_param(url, cap, "labelSelector", inf->lsel, 0);
    }
    return rc;
}

/* ---- informer: list ----------------------------------------------------------------------- */

static void fail_list(struct rsre_kube_informer *inf, int rc, const char *msg) {
    map_clear(inf, &inf->next);
    inf->cont[0] = '\0';
    report_error(inf, rc, "list", msg);
    if (!inf->stopped) {
        schedule(inf, STEP_LIST, backoff(inf));
    }
}

/* Applies the completed list in inf->next to the cache, emitting the differences. Returns 1
 * when a callback stopped the informer. */
static int apply_list(struct rsre_kube_informer *inf) {
    /* Objects that vanished while we were not watching. */
    for (size_t i = 0; i < inf->cache.nb; i++) {
        struct entry *e = inf->cache.b[i];
        while (e) {
            struct entry *nx = e->next;
            if (!map_find(&inf->next, e->ns, e->name)) {
                map_remove(&inf->cache, e);
                int stop = emit(inf, RSRE_KUBE_DELETED, e, NULL);
                free_entry(inf, e);
                if (stop) {
                    return 1;
                }
            }
            e = nx;
        }
    }
    /* New, replaced and changed objects. */
    for (size_t i = 0; i < inf->next.nb; i++) {
        struct entry *e;
        while ((e = inf->next.b[i])) {
            map_remove(&inf->next, e);
            struct entry *old = map_find(&inf->cache, e->ns, e->name);
            int stop = 0;
            if (!old) {
                if (map_insert(&inf->cache, e) != 0) {
                    free_entry(inf, e); /* out of memory: the next re-list retries */
                    continue;
                }
                stop = emit(inf, RSRE_KUBE_ADDED, e, NULL);
            } else if (strcmp(old->uid, e->uid) != 0) {
                map_remove(&inf->cache, old);
                stop = emit(inf, RSRE_KUBE_DELETED, old, NULL);
                free_entry(inf, old);
                /* A slot was just freed, so this insert does not grow the table. */
                map_insert(&inf->cache, e);
                if (!stop) {
                    stop = emit(inf, RSRE_KUBE_ADDED, e, NULL);
                }
            } else if (strcmp(old->rv, e->rv) != 0) {
                map_remove(&inf->cache, old);
                map_insert(&inf->cache, e); /* no growth, as above */
                stop = emit(inf, RSRE_KUBE_MODIFIED, e, old->obj);
                free_entry(inf, old);
            } else {
                /* Unchanged: keep the object consumers have already seen. */
                free_entry(inf, e);
            }
            if (stop) {
                return 1;
            }
        }
    }
    return 0;
}

/* Decodes one list item into inf->next. Returns 0 or an error that fails the list. */
static int list_item(struct rsre_kube_informer *inf, const json_t *item) {
    char err[RSRE_KUBE_ERR_LEN];
    struct rsre_kube_meta m;
    int rc = rsre_kube_meta_decode(item, &m, err, sizeof(err));
    if (rc == 0 && !m.name[0]) {
        rc = RSRE_EINVALID;
        snprintf(err, sizeof(err), "metadata.name: required");
    }
    void *obj = NULL;
    if (rc == 0) {
        rc = inf->o.decode(item, &obj, err, sizeof(err));
    }
    if (rc != 0) {
        if (rc == -ENOMEM) {
            return rc;
        }
        /* An object this build cannot decode is left out (and counted), not fatal. */
        inf->st.decode_errors++;
        RSRE_LOG(RSRE_LOG_WARN, MOD, "list item skipped path=%s name=%s/%s err=\"%s\"", inf->path,
                 m.ns, m.name, err);
        return 0;
    }
    struct entry *old = map_find(&inf->next, m.ns, m.name);
    if (old) {
        map_remove(&inf->next, old);
        free_entry(inf, old);
    }
    if (inf->next.n >= inf->o.max_objects) {
        if (obj && inf->o.free_obj) {
            inf->o.free_obj(obj);
        }
        return RSRE_ELIMIT;
    }
    struct entry *e = entry_new(&m, obj);
    if (!e || map_insert(&inf->next, e) != 0) {
        if (e) {
            free_entry(inf, e);
        } else if (obj && inf->o.free_obj) {
            inf->o.free_obj(obj);
        }
        return -ENOMEM;
    }
    return 0;
}

static void list_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct rsre_kube_informer *inf = arg;
    inf->req = NULL;
    char err[RSRE_KUBE_ERR_LEN] = "";
    if (rc != 0) {
        fail_list(inf, rc, rsre_strerror(rc));
        return;
    }
    if (resp->status == 410) {
        /* Expired continue token or resourceVersion: start over from the latest state. */
        inf->st.relists_gone++;
        map_clear(inf, &inf->next);
        inf->cont[0] = '\0';
        inf->consistent = 1;
        if (++inf->gone_in_row > 3) {
            report_error(inf, -ESTALE, "list", "repeated 410 Gone");
            schedule(inf, STEP_LIST, backoff(inf));
        } else {
            schedule(inf, STEP_LIST, 0);
        }
        return;
    }
    if (resp->status < 200 || resp->status >= 300) {
        json_t *body = NULL;
        struct rsre_kube_status st;
        const struct rsre_kube_status *stp = NULL;
        snprintf(err, sizeof(err), "HTTP %ld", resp->status);
        if (rsre_kube_json_load(resp->body, resp->body_len, &body, NULL, 0) == 0 &&
            rsre_kube_status_decode(body, &st, NULL, 0) == 0) {
            stp = &st;
            snprintf(err, sizeof(err), "HTTP %ld: %.200s", resp->status, st.message);
        }
        json_decref(body);
        fail_list(inf, status_rc(resp->status, stp), err);
        return;
    }
    inf->gone_in_row = 0;
    struct rsre_kube_list l;
    rc = rsre_kube_list_parse(resp->body, resp->body_len, inf->kind, &l, err, sizeof(err));
    if (rc != 0) {
        inf->st.decode_errors++;
        fail_list(inf, rc, err);
        return;
    }
    for (size_t i = 0; i < json_array_size(l.items); i++) {
        rc = list_item(inf, json_array_get(l.items, i));
        if (rc != 0) {
            rsre_kube_list_clear(&l);
            snprintf(err, sizeof(err), "%s",
                     rc == RSRE_ELIMIT ? "more objects than max_objects" : rsre_strerror(rc));
            fail_list(inf, rc, err);
            return;
        }
    }
    inf->st.lists++;
    if (l.cont[0]) {
        memcpy(inf->cont, l.cont, sizeof(inf->cont));
        rsre_kube_list_clear(&l);
        start_list(inf);
        return;
    }
    if (!l.rv[0]) {
        rsre_kube_list_clear(&l);
        fail_list(inf, RSRE_EINVALID, "list has no metadata.resourceVersion");
        return;
    }
    memcpy(inf->rv, l.rv, sizeof(inf->rv));
    rsre_kube_list_clear(&l);
    inf->cont[0] = '\0';
    inf->failures = 0;
    inf->st.last_rc = 0;
    if (apply_list(inf)) {
        return;
    }
    inf->synced = 1;
    if (inf->o.on_synced) {
        inf->o.on_synced(inf->o.arg);
        if (inf->stopped) {
            return;
        }
    }
    start_watch(inf);
}

static void start_list(struct rsre_kube_informer *inf) {
    if (inf->stopped) {
        return;
    }
    char url[RSRE_KUBE_PATH_LEN + RSRE_KUBE_CONTINUE_LEN * 3 + 1024];
    char limit[16];
    snprintf(url, sizeof(url), "%s", inf->path);
    snprintf(limit, sizeof(limit), "%u", inf->o.page_size);
    int rc = add_param(url, sizeof(url), "limit", limit, 0);
    if (rc == 0 && inf->cont[0]) {
        rc = add_param(url, sizeof(url), "continue", inf->cont, 1);
    } else if (rc == 0 && !inf->consistent) {
        /* First list: any recent state will do, which the API server serves from its watch
         * cache instead of etcd (what client-go does; kind to the API server when every
         * node's agent lists at once). */
        rc = add_param(url, sizeof(url), "resourceVersion", "0", 0);
    }
    if (rc == 0) {
        rc = add_selectors(inf, url, sizeof(url));
    }
    if (rc == 0) {
        rc = kube_http(inf->k, "GET", url, NULL, 0, NULL, inf->o.max_list_bytes, 0, 120000, NULL,
                       list_done, inf, &inf->req);
    }
    if (rc != 0) {
        fail_list(inf, rc, "cannot start the list request");
    }
}

/* ---- informer: watch ---------------------------------------------------------------------- */

/* Applies one ADDED/MODIFIED/DELETED watch event. Returns 1 when the informer was stopped. */
static int apply_event(struct rsre_kube_informer *inf, enum rsre_kube_watch_type type,
                       const json_t *obj) {
    char err[RSRE_KUBE_ERR_LEN];
    struct rsre_kube_meta m;
    if (rsre_kube_meta_decode(obj, &m, err, sizeof(err)) != 0 || !m.name[0]) {
        inf->st.decode_errors++;
        RSRE_LOG(RSRE_LOG_WARN, MOD, "watch event skipped path=%s err=\"%s\"", inf->path,
                 m.name[0] ? err : "metadata.name: required");
        return 0;
    }
    struct entry *old = map_find(&inf->cache, m.ns, m.name);
    if (type == RSRE_KUBE_WATCH_DELETED) {
        if (!old || (m.uid[0] && strcmp(m.uid, old->uid) != 0)) {
            inf->st.duplicates++;
            return 0;
        }
        map_remove(&inf->cache, old);
        int stop = emit(inf, RSRE_KUBE_DELETED, old, NULL);
        free_entry(inf, old);
        return stop;
    }
    if (old && strcmp(old->uid, m.uid) == 0 && strcmp(old->rv, m.rv) == 0) {
        inf->st.duplicates++;
        return 0;
    }
    void *o = NULL;
    int rc = inf->o.decode(obj, &o, err, sizeof(err));
    if (rc != 0) {
        inf->st.decode_errors++;
        RSRE_LOG(RSRE_LOG_WARN, MOD, "watch object skipped path=%s name=%s/%s err=\"%s\"",
                 inf->path, m.ns, m.name, err);
        return 0;
    }
    if (!old && inf->cache.n >= inf->o.max_objects) {
        if (o && inf->o.free_obj) {
            inf->o.free_obj(o);
        }
        report_error(inf, RSRE_ELIMIT, "watch", "more objects than max_objects");
        return inf->stopped;
    }
    struct entry *e = entry_new(&m, o);
    if (!e) {
        if (o && inf->o.free_obj) {
            inf->o.free_obj(o);
        }
        return 0;
    }
    int stop = 0;
    if (old && strcmp(old->uid, e->uid) != 0) {
        map_remove(&inf->cache, old);
        stop = emit(inf, RSRE_KUBE_DELETED, old, NULL);
        free_entry(inf, old);
        if (map_insert(&inf->cache, e) != 0) {
            free_entry(inf, e);
            return stop;
        }
        if (!stop) {
            stop = emit(inf, RSRE_KUBE_ADDED, e, NULL);
        }
    } else if (old) {
        map_remove(&inf->cache, old);
        map_insert(&inf->cache, e); /* a slot was just freed: cannot need to grow */
        stop = emit(inf, RSRE_KUBE_MODIFIED, e, old->obj);
        free_entry(inf, old);
    } else {
        if (map_insert(&inf->cache, e) != 0) {
            free_entry(inf, e);
            return 0;
        }
        stop = emit(inf, RSRE_KUBE_ADDED, e, NULL);
    }
    return stop;
}

/* Stream codes: a 410 ERROR event asks for a re-list. */
#define WATCH_GONE (-ESTALE)

static int watch_line(void *arg, long status, const char *line, size_t len) {
    (void)status;
    struct rsre_kube_informer *inf = arg;
    if (inf->stopped) {
        return -ECANCELED;
    }
    if (inf->watch_lines++ == 0) {
        inf->st.watches++;
    }
    char err[RSRE_KUBE_ERR_LEN];
    struct rsre_kube_watch_event ev;
    int rc = rsre_kube_watch_parse(line, len, &ev, err, sizeof(err));
    if (rc != 0) {
        inf->st.decode_errors++;
        RSRE_LOG(RSRE_LOG_WARN, MOD, "bad watch line path=%s err=\"%s\"", inf->path, err);
        return rc; /* restart the watch from the last good resourceVersion */
    }
    int ret = 0;
    switch (ev.type) {
    case RSRE_KUBE_WATCH_BOOKMARK:
        inf->st.bookmarks++;
        if (ev.rv[0]) {
            memcpy(inf->rv, ev.rv, sizeof(inf->rv));
        }
        break;
    case RSRE_KUBE_WATCH_ERROR:
        if (ev.status.code == 410) {
            ret = WATCH_GONE;
        } else {
            snprintf(err, sizeof(err), "watch ERROR %ld %.40s: %.160s", ev.status.code,
                     ev.status.reason, ev.status.message);
            report_error(inf, -EIO, "watch", err);
            ret = -EPROTO;
        }
        break;
    default:
        if (apply_event(inf, ev.type, ev.object)) {
            ret = -ECANCELED;
        } else if (ev.rv[0]) {
            memcpy(inf->rv, ev.rv, sizeof(inf->rv));
        }
        break;
    }
    rsre_kube_watch_event_clear(&ev);
    if (ret == 0 && inf->stopped) {
        ret = -ECANCELED;
    }
    return ret;
}

static void relist_gone(struct rsre_kube_informer *inf) {
    inf->st.relists_gone++;
    inf->consistent = 1;
    inf->rv[0] = '\0';
    if (++inf->gone_in_row > 3) {
        schedule(inf, STEP_LIST, backoff(inf));
    } else {
        start_list(inf);
    }
}

static void watch_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct rsre_kube_informer *inf = arg;
    inf->req = NULL;
    if (inf->stopped) {
        return;
    }
    uint64_t lasted = uv_now(rsre_kube_loop(inf->k)) - inf->watch_started;
    if (rc == WATCH_GONE || (rc == 0 && resp->status == 410)) {
        relist_gone(inf);
        return;
    }
    if (inf->watch_lines > 0) {
        inf->failures = 0; /* the stream worked for a while */
        inf->gone_in_row = 0;
    }
    if (rc == 0 && resp->status >= 200 && resp->status < 300) {
        /* The server ended the watch (timeoutSeconds): resume at once, unless it ends them
         * immediately, which would spin. */
        if (inf->watch_lines == 0 && lasted < 1000) {
            schedule(inf, STEP_WATCH, backoff(inf));
        } else {
            start_watch(inf);
        }
        return;
    }
    char err[RSRE_KUBE_ERR_LEN];
    int code = rc;
    if (rc == 0) {
        snprintf(err, sizeof(err), "HTTP %ld", resp->status);
        code = status_rc(resp->status, NULL);
    } else {
        snprintf(err, sizeof(err), "%s", rsre_strerror(rc));
    }
    inf->st.reconnects++;
    report_error(inf, code, "watch", err);
    if (!inf->stopped) {
        schedule(inf, inf->rv[0] ? STEP_WATCH : STEP_LIST, backoff(inf));
    }
}

static void start_watch(struct rsre_kube_informer *inf) {
    if (inf->stopped) {
        return;
    }
    if (!inf->rv[0]) {
        start_list(inf);
        return;
    }
    char url[RSRE_KUBE_PATH_LEN + 1024];
    char tmo[16];
    uint32_t t = inf->o.watch_timeout_s ? inf->o.watch_timeout_s : 300 + rnd(inf) % 301;
    snprintf(url, sizeof(url), "%s", inf->path);
    snprintf(tmo, sizeof(tmo), "%u", t);
    int rc = add_param(url, sizeof(url), "watch", "1", 0);
    if (rc == 0) {
        rc = add_param(url, sizeof(url), "resourceVersion", inf->rv, 1);
    }
    if (rc == 0) {
        rc = add_param(url, sizeof(url), "allowWatchBookmarks", "true", 0);
    }
    if (rc == 0) {
        rc = add_param(url, sizeof(url), "timeoutSeconds", tmo, 0);
    }
    if (rc == 0) {
        rc = add_selectors(inf, url, sizeof(url));
    }
    inf->watch_lines = 0;
    inf->watch_started = uv_now(rsre_kube_loop(inf->k));
    if (rc == 0) {
        rc = kube_http(inf->k, "GET", url, NULL, 0, NULL, 64u << 10, inf->o.max_event_bytes,
                       (t + 30) * 1000u, watch_line, watch_done, inf, &inf->req);
    }
    if (rc != 0) {
        report_error(inf, rc, "watch", "cannot start the watch request");
        schedule(inf, STEP_WATCH, backoff(inf));
    }
}

/* ---- informer: public --------------------------------------------------------------------- */

static char *escaped_dup(const char *s) {
    if (!s || !*s) {
        return NULL;
    }
    size_t cap = strlen(s) * 3 + 1;
    char *d = malloc(cap);
    if (d && rsre_kube_escape(s, d, cap) != 0) {
        free(d);
        d = NULL;
    }
    return d;
}

static void informer_closed(uv_handle_t *h) {
    struct rsre_kube_informer *inf = h->data;
    map_clear(inf, &inf->cache);
    map_clear(inf, &inf->next);
    free(inf->path);
    free(inf->kind);
    free(inf->fsel);
    free(inf->lsel);
    free(inf);
}

int rsre_kube_informer_start(struct rsre_kube *k, const struct rsre_kube_informer_opts *o,
                             struct rsre_kube_informer **out) {
    *out = NULL;
    if (!k || !o || !o->path || o->path[0] != '/' || strchr(o->path, '?') || !o->decode ||
        strlen(o->path) >= RSRE_KUBE_PATH_LEN) {
        return -EINVAL;
    }
    if (k->closing) {
        return -ESHUTDOWN;
    }
    struct rsre_kube_informer *inf = calloc(1, sizeof(*inf));
    if (!inf) {
        return -ENOMEM;
    }
    inf->k = k;
    inf->o = *o;
    inf->path = strdup(o->path);
    inf->kind = o->list_kind ? strdup(o->list_kind) : NULL;
    inf->fsel = escaped_dup(o->field_selector);
    inf->lsel = escaped_dup(o->label_selector);
    if (!inf->path || (o->list_kind && !inf->kind) ||
        (o->field_selector && *o->field_selector && !inf->fsel) ||
        (o->label_selector && *o->label_selector && !inf->lsel)) {
        free(inf->path);
        free(inf->kind);
        free(inf->fsel);
        free(inf->lsel);
        free(inf);
        return -ENOMEM;
    }
    inf->o.path = inf->path;
    inf->o.list_kind = inf->kind;
    inf->o.field_selector = inf->o.label_selector = NULL;
    if (!inf->o.page_size) {
        inf->o.page_size = 500;
    }
    if (!inf->o.backoff_min_ms) {
        inf->o.backoff_min_ms = 500;
    }
    if (!inf->o.backoff_max_ms) {
        inf->o.backoff_max_ms = 30000;
    }
    if (inf->o.backoff_max_ms < inf->o.backoff_min_ms) {
        inf->o.backoff_max_ms = inf->o.backoff_min_ms;
    }
    if (!inf->o.max_objects) {
        inf->o.max_objects = 10000;
    }
    if (!inf->o.max_list_bytes) {
        inf->o.max_list_bytes = 32u << 20;
    }
    if (!inf->o.max_event_bytes) {
        inf->o.max_event_bytes = 4u << 20;
    }
    inf->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)inf;
    if (!inf->rng) {
        inf->rng = 88172645463325252ull;
    }
    uv_timer_init(rsre_kube_loop(k), &inf->timer);
    inf->timer.data = inf;
    inf->next_inf = k->informers;
    if (k->informers) {
        k->informers->prev = inf;
    }
    k->informers = inf;
    *out = inf;
    start_list(inf);
    return 0;
}

void rsre_kube_informer_stop(struct rsre_kube_informer *inf) {
    if (!inf || inf->stopped) {
        return;
    }
    inf->stopped = 1;
    struct rsre_kube *k = inf->k;
    if (inf->prev) {
        inf->prev->next_inf = inf->next_inf;
    } else if (k->informers == inf) {
        k->informers = inf->next_inf;
    }
    if (inf->next_inf) {
        inf->next_inf->prev = inf->prev;
    }
    if (inf->req) {
        rsre_http_abandon(inf->req);
        inf->req = NULL;
    }
    uv_timer_stop(&inf->timer);
    uv_close((uv_handle_t *)&inf->timer, informer_closed);
}

int rsre_kube_informer_synced(const struct rsre_kube_informer *inf) {
    return inf->synced;
}

size_t rsre_kube_informer_size(const struct rsre_kube_informer *inf) {
    return inf->cache.n;
}

void *rsre_kube_informer_get(const struct rsre_kube_informer *inf, const char *ns, const char *name,
                             const char **uid) {
    struct entry *e = map_find(&inf->cache, ns ? ns : "", name);
    if (uid) {
        *uid = e ? e->uid : NULL;
    }
    return e ? e->obj : NULL;
}

int rsre_kube_informer_foreach(const struct rsre_kube_informer *inf,
                               int (*fn)(void *arg, const char *ns, const char *name,
                                         const char *uid, void *obj),
                               void *arg) {
    for (size_t i = 0; i < inf->cache.nb; i++) {
        for (struct entry *e = inf->cache.b[i]; e; e = e->next) {
            int rc = fn(arg, e->ns, e->name, e->uid, e->obj);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

void rsre_kube_informer_stats(const struct rsre_kube_informer *inf,
                              struct rsre_kube_informer_stats *out) {
    *out = inf->st;
    memcpy(out->rv, inf->rv, sizeof(out->rv));
}

/* ---- client teardown ---------------------------------------------------------------------- */

void rsre_kube_destroy(struct rsre_kube *k) {
    if (!k) {
        return;
    }
    k->closing = 1;
    while (k->informers) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "informer still running at destroy path=%s",
                 k->informers->path);
        rsre_kube_informer_stop(k->informers);
    }
    struct rsre_kube_call *c;
    while ((c = k->calls)) {
        unlink_call(k, c);
        rsre_http_abandon(c->req);
        struct rsre_kube_result res = {.rc = -ECANCELED, .error = rsre_strerror(-ECANCELED)};
        c->cb(c->arg, &res);
        free(c);
    }
    wipe_free(k->token, k->token ? strlen(k->token) : 0);
    rsre_kube_config_clear(&k->cfg);
    free(k);
}
