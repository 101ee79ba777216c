/*
 * The probes file (probes.h, docs/probes.md): a YAML mapping with one key, `probes`, holding a
 * sequence of probe mappings. Fields are rows of FIELDS (key, type, where it goes, which kinds
 * take it, bounds); a key no row names, or one the probe's kind does not take, is an error
 * with its line:col. Secrets (*_file) are read here; their text is never put in a message.
 * Relative paths (secrets, ca_file) are resolved against the probes file's directory.
 */
#include "probes/probes_internal.h"

#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define K(x) (1u << RSRE_PROBE_##x)
#define ALL ((1u << RSRE_PROBE_NKINDS) - 1)
#define HTTPISH (K(MINIO) | K(REGISTRY) | K(HTTP) | K(HTTP5XX))

enum ftype { F_STR, F_PATH, F_INT, F_BOOL, F_DURATION, F_SECRET, F_LIST };

struct field {
    const char *key;
    enum ftype type;
    size_t off, size; /* size: buffer bytes (F_STR/F_SECRET), row bytes (F_LIST) */
    size_t count_off; /* F_LIST: where the count goes */
    unsigned kinds;
    long long min, max; /* F_INT / F_DURATION (ms) bounds */
    const char *help;
};

#define D(f) offsetof(struct rsre_probe_def, f), sizeof(((struct rsre_probe_def *)0)->f)
#define L(f, n)                                                                                    \
    offsetof(struct rsre_probe_def, f), sizeof(((struct rsre_probe_def *)0)->f[0]),                \
        offsetof(struct rsre_probe_def, n)

static const struct field FIELDS[] = {
    {"name", F_STR, D(name), 0, ALL, 0, 0, "probe name (scope of its incidents)"},
    {"interval", F_DURATION, D(interval_ms), 0, ALL, 1000, 86400000, "time between runs"},
    {"timeout", F_DURATION, D(timeout_ms), 0, ALL, 100, 120000, "deadline of each network step"},
    {"threshold", F_INT, D(threshold), 0, ALL, 1, 100, "consecutive failures before failing"},
    {"core", F_BOOL, D(core), 0, ALL, 0, 0, "core dependency or route (critical)"},
    {"host", F_STR, D(host), 0, K(REDIS) | K(NATS) | K(LDAP) | K(POSTGRES) | K(TLS) | K(DNS), 0, 0,
     "server host (dns: the name to resolve)"},
    {"port", F_INT, D(port), 0, K(REDIS) | K(NATS) | K(LDAP) | K(POSTGRES) | K(TLS), 1, 65535,
     "server port"},
    {"url", F_STR, D(url), 0, HTTPISH | K(LDAP), 0, 0,
     "base URL (minio, registry), route (http), metrics URL (http5xx), ldap:// or ldaps://"},
    {"user", F_STR, D(user), 0,
     K(REDIS) | K(NATS) | K(REGISTRY) | K(POSTGRES) | K(HTTP) | K(MINIO) | K(HTTP5XX), 0, 0,
     "user name"},
    {"password_file", F_SECRET, D(password), 0,
     K(REDIS) | K(NATS) | K(REGISTRY) | K(LDAP) | K(POSTGRES) | K(HTTP) | K(MINIO) | K(HTTP5XX), 0,
     0, "file holding the password"},
    {"token_file", F_SECRET, D(token), 0, K(NATS), 0, 0, "file holding the NATS token"},
    {"database", F_STR, D(database), 0, K(POSTGRES), 0, 0, "database name"},
    {"bind_dn", F_STR, D(bind_dn), 0, K(LDAP), 0, 0, "service account DN for the simple bind"},
    {"ca_file", F_PATH, D(ca_file), 0, HTTPISH | K(LDAP) | K(TLS) | K(REDIS), 0, 0,
     "PEM CA bundle to verify against (default: system store)"},
    {"server_name", F_STR, D(server_name), 0, K(TLS), 0, 0, "SNI and verified name"},
    {"tls", F_BOOL, D(tls), 0, K(REDIS) | K(POSTGRES), 0, 0, "postgres: sslmode=require"},
    {"expect_status", F_INT, D(expect_status), 0, K(HTTP), 100, 599, "expected HTTP status"},
    {"body_contains", F_STR, D(body_contains), 0, K(HTTP), 0, 0, "substring the body must hold"},
    {"images", F_LIST, L(images, nimages), K(REGISTRY), 0, 0, "repo:tag to check"},
    {"expect", F_LIST, L(expect, nexpect), K(DNS), 0, 0, "expected addresses"},
    {"metric", F_STR, D(metric), 0, K(HTTP5XX), 0, 0, "request counter name"},
    {"status_label", F_STR, D(status_label), 0, K(HTTP5XX), 0, 0, "label holding the status"},
    {"match_label", F_STR, D(match_label), 0, K(HTTP5XX), 0, 0, "only series with this label"},
    {"match_value", F_STR, D(match_value), 0, K(HTTP5XX), 0, 0, "... equal to this value"},
    {"window", F_DURATION, D(window_ms), 0, K(HTTP5XX), 10000, 86400000, "ratio window"},
};

/* What each kind needs. */
struct need {
    enum rsre_probe_kind kind;
    const char *fields[3];
};
static const struct need NEEDS[] = {
    {RSRE_PROBE_REDIS, {"host", "port"}}, {RSRE_PROBE_NATS, {"host", "port"}},
    {RSRE_PROBE_MINIO, {"url"}},          {RSRE_PROBE_REGISTRY, {"url"}},
    {RSRE_PROBE_LDAP, {"url"}},           {RSRE_PROBE_POSTGRES, {"host", "port"}},
    {RSRE_PROBE_HTTP, {"url"}},           {RSRE_PROBE_TLS, {"host", "port"}},
    {RSRE_PROBE_DNS, {"host", "expect"}}, {RSRE_PROBE_HTTP5XX, {"url"}},
};

static const char *const KIND_NAMES[RSRE_PROBE_NKINDS] = {
    "redis", "nats", "minio", "registry", "ldap", "postgres", "http", "tls", "dns", "http5xx"};

const char *rsre_probe_kind_name(enum rsre_probe_kind kind) {
    return (unsigned)kind < RSRE_PROBE_NKINDS ? KIND_NAMES[kind] : "?";
}

static int parse_duration(const char *s, long long *ms) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0 || v > 100000000) {
        return -1;
    }
    long long mul;
    if (strcmp(end, "ms") == 0) {
        mul = 1;
    } else if (strcmp(end, "s") == 0 || *end == '\0') {
        mul = 1000;
    } else if (strcmp(end, "m") == 0) {
        mul = 60000;
    } else if (strcmp(end, "h") == 0) {
        mul = 3600000;
    } else {
        return -1;
    }
    *ms = v * mul;
    return 0;
}

static int read_secret(const char *base_dir, const char *path, char *dst, size_t cap) {
    char full[1024];
    if (path[0] != '/' && base_dir && base_dir[0]) {
        if ((size_t)snprintf(full, sizeof full, "%s/%s", base_dir, path) >= sizeof full) {
            return -ENAMETOOLONG;
        }
    } else if ((size_t)snprintf(full, sizeof full, "%s", path) >= sizeof full) {
        return -ENAMETOOLONG;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = read(fd, dst, cap);
    int e = errno;
    close(fd);
    if (n < 0) {
        return -e;
    }
    if ((size_t)n >= cap) {
        memset(dst, 0, cap);
        return RSRE_ELIMIT;
    }
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '\r')) {
        n--;
    }
    dst[n] = '\0';
    if (n == 0 || memchr(dst, '\0', (size_t)n)) {
        memset(dst, 0, cap);
        return RSRE_EINVALID;
    }
    return 0;
}

static int set_str(char *dst, size_t cap, const char *v) {
    size_t n = strlen(v);
    if (n >= cap) {
        return -1;
    }
    memcpy(dst, v, n + 1);
    return 0;
}

static int apply_field(yaml_document_t *doc, yaml_node_t *vn, const struct field *f,
                       struct rsre_probe_def *d, const char *base_dir, struct rsre_yerr *err) {
    char *base = (char *)d;
    const char *s = rsre_yaml_str(vn);
    if (f->type == F_LIST) {
        if (vn->type != YAML_SEQUENCE_NODE) {
            return rsre_yaml_fail(err, vn, RSRE_EINVALID, "%s: expected a sequence", f->key);
        }
        size_t n = rsre_yaml_len(vn);
        if (n > RSRE_PROBE_MAX_LIST) {
            return rsre_yaml_fail(err, vn, RSRE_ELIMIT, "%s: at most %d items", f->key,
                                  RSRE_PROBE_MAX_LIST);
        }
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *it = rsre_yaml_item(doc, vn, i);
            const char *is = rsre_yaml_str(it);
            if (!is || !is[0] || set_str(base + f->off + i * f->size, f->size, is) != 0) {
                return rsre_yaml_fail(err, it, RSRE_EINVALID,
                                      "%s: expected a non-empty string of < %zu bytes", f->key,
                                      f->size);
            }
        }
        *(size_t *)(base + f->count_off) = n;
        return 0;
    }
    if (!s) {
        return rsre_yaml_fail(err, vn, RSRE_EINVALID, "%s: expected a scalar, got a %s", f->key,
                              rsre_yaml_kind(vn));
    }
    switch (f->type) {
    case F_STR:
        if (!s[0] || set_str(base + f->off, f->size, s) != 0) {
            return rsre_yaml_fail(err, vn, RSRE_EINVALID,
                                  "%s: expected a non-empty string of < %zu bytes", f->key,
                                  f->size);
        }
        return 0;
    case F_PATH: {
        int n = s[0] != '/' && base_dir && base_dir[0]
                    ? snprintf(base + f->off, f->size, "%s/%s", base_dir, s)
                    : snprintf(base + f->off, f->size, "%s", s);
        if (!s[0] || n < 0 || (size_t)n >= f->size) {
            return rsre_yaml_fail(err, vn, RSRE_EINVALID, "%s: expected a path of < %zu bytes",
                                  f->key, f->size);
        }
        return 0;
    }
    case F_SECRET: {
        int rc = read_secret(base_dir, s, base + f->off, f->size);
        if (rc) {
            return rsre_yaml_fail(err, vn, rc == RSRE_ELIMIT ? RSRE_ELIMIT : RSRE_EINVALID,
                                  "%s: cannot use %s: %s", f->key, s,
                                  rc == RSRE_EINVALID ? "empty" : rsre_strerror(rc));
        }
        return 0;
    }
    case F_INT:
    case F_DURATION: {
        long long v;
        char *end;
        int bad;
        if (f->type == F_INT) {
            errno = 0;
            v = strtoll(s, &end, 10);
            bad = end == s || *end || errno;
        } else {
            bad = parse_duration(s, &v) != 0;
        }
        if (bad || v < f->min || v > f->max) {
            return rsre_yaml_fail(err, vn, RSRE_EINVALID, "%s: expected %s in [%lld, %lld]%s",
                                  f->key, f->type == F_INT ? "an integer" : "a duration", f->min,
                                  f->max, f->type == F_INT ? "" : " ms (e.g. 30s, 500ms)");
        }
        if (f->type == F_INT) {
            *(int *)(base + f->off) = (int)v;
        } else {
            *(int64_t *)(base + f->off) = v;
        }
        return 0;
    }
    case F_BOOL:
        if (strcmp(s, "true") == 0) {
            *(int *)(base + f->off) = 1;
        } else if (strcmp(s, "false") == 0) {
            *(int *)(base + f->off) = 0;
        } else {
            return rsre_yaml_fail(err, vn, RSRE_EINVALID, "%s: expected true or false", f->key);
        }
        return 0;
    case F_LIST:
        break;
    }
    return RSRE_EINVALID;
}

static int field_set(const struct rsre_probe_def *d, const char *key) {
    if (strcmp(key, "host") == 0) {
        return d->host[0] != 0;
    }
    if (strcmp(key, "port") == 0) {
        return d->port != 0;
    }
    if (strcmp(key, "url") == 0) {
        return d->url[0] != 0;
    }
    if (strcmp(key, "expect") == 0) {
        return d->nexpect != 0;
    }
    return 1;
}

static void defaults(struct rsre_probe_def *d) {
    d->interval_ms = 30000;
    d->timeout_ms = 5000;
    d->threshold = 3;
    d->expect_status = 200;
    d->window_ms = 300000;
    strcpy(d->metric, "nginx_ingress_controller_requests");
    strcpy(d->status_label, "status");
}

static int valid_name(const char *s) {
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
              *s == '.')) {
            return 0;
        }
    }
    return 1;
}

static int load_probe(yaml_document_t *doc, yaml_node_t *pn, const char *base_dir,
                      struct rsre_probe_def *d, struct rsre_yerr *err) {
    if (pn->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID, "probe: expected a mapping, got a %s",
                              rsre_yaml_kind(pn));
    }
    defaults(d);
    yaml_node_t *kn = rsre_yaml_get(doc, pn, "kind");
    const char *ks = kn ? rsre_yaml_str(kn) : NULL;
    if (!ks) {
        return rsre_yaml_fail(err, kn ? kn : pn, RSRE_EINVALID, "probe: kind is required");
    }
    int kind = -1;
    for (int i = 0; i < RSRE_PROBE_NKINDS; i++) {
        if (strcmp(KIND_NAMES[i], ks) == 0) {
            kind = i;
        }
    }
    if (kind < 0) {
        return rsre_yaml_fail(err, kn, RSRE_EINVALID,
                              "kind: unknown probe kind %.64s (redis, nats, minio, registry, "
                              "ldap, postgres, http, tls, dns, http5xx)",
                              ks);
    }
    d->kind = (enum rsre_probe_kind)kind;
    for (yaml_node_pair_t *pr = pn->data.mapping.pairs.start; pr < pn->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        const char *key = rsre_yaml_str(k);
        if (!key) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "probe keys must be scalars");
        }
        if (strcmp(key, "kind") == 0) {
            continue;
        }
        const struct field *f = NULL;
        for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
            if (strcmp(FIELDS[i].key, key) == 0) {
                f = &FIELDS[i];
            }
        }
        if (!f) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "unknown field %.64s", key);
        }
        if (!(f->kinds & (1u << kind))) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s: not a field of kind %s", key, ks);
        }
        int rc = apply_field(doc, v, f, d, base_dir, err);
        if (rc) {
            return rc;
        }
    }
    if (!d->name[0] || !valid_name(d->name)) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID,
                              "probe: name is required ([a-z0-9._-], < 64 bytes)");
    }
    for (size_t i = 0; i < sizeof NEEDS / sizeof NEEDS[0]; i++) {
        if ((int)NEEDS[i].kind != kind) {
            continue;
        }
        for (size_t j = 0; j < 3 && NEEDS[i].fields[j]; j++) {
            if (!field_set(d, NEEDS[i].fields[j])) {
                return rsre_yaml_fail(err, pn, RSRE_EINVALID, "probe %s: kind %s needs %s", d->name,
                                      ks, NEEDS[i].fields[j]);
            }
        }
    }
    if (d->timeout_ms >= d->interval_ms) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID, "probe %s: timeout must be < interval",
                              d->name);
    }
    if (d->kind == RSRE_PROBE_LDAP && strncmp(d->url, "ldap://", 7) != 0 &&
        strncmp(d->url, "ldaps://", 8) != 0) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID, "probe %s: url must be ldap:// or ldaps://",
                              d->name);
    }
    if (d->kind != RSRE_PROBE_LDAP && d->url[0] && strncmp(d->url, "http://", 7) != 0 &&
        strncmp(d->url, "https://", 8) != 0) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID, "probe %s: url must be http:// or https://",
                              d->name);
    }
    if ((d->match_label[0] != 0) != (d->match_value[0] != 0)) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID,
                              "probe %s: match_label and match_value go together", d->name);
    }
    if (d->kind == RSRE_PROBE_LDAP && d->bind_dn[0] && !d->password[0]) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID, "probe %s: bind_dn needs password_file",
                              d->name);
    }
    if (!d->server_name[0]) {
        memcpy(d->server_name, d->host, sizeof d->server_name);
    }
    return 0;
}

int rsre_probe_set_load(const char *buf, size_t len, const char *base_dir,
                        struct rsre_probe_set **out, struct rsre_yerr *err) {
    if (!buf || !out || !err) {
        return -EINVAL;
    }
    *out = NULL;
    yaml_document_t doc;
    int rc = rsre_yaml_load(buf, len, &doc, err);
    if (rc) {
        return rc;
    }
    struct rsre_probe_set *set = calloc(1, sizeof *set);
    if (!set) {
        yaml_document_delete(&doc);
        return -ENOMEM;
    }
    yaml_node_t *root = rsre_yaml_root(&doc);
    yaml_node_t *seq = rsre_yaml_get(&doc, root, "probes");
    if (!root || root->type != YAML_MAPPING_NODE || !seq) {
        rc = rsre_yaml_fail(err, root, RSRE_EINVALID, "expected a mapping with a `probes` list");
        goto fail;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        const char *ks = rsre_yaml_str(k);
        if (!ks || strcmp(ks, "probes") != 0) {
            rc = rsre_yaml_fail(err, k, RSRE_EINVALID, "unknown top-level key (only `probes`)");
            goto fail;
        }
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        rc = rsre_yaml_fail(err, seq, RSRE_EINVALID, "probes: expected a sequence");
        goto fail;
    }
    size_t n = rsre_yaml_len(seq);
    if (n > RSRE_PROBES_MAX) {
        rc = rsre_yaml_fail(err, seq, RSRE_ELIMIT, "probes: at most %d", RSRE_PROBES_MAX);
        goto fail;
    }
    set->defs = calloc(n ? n : 1, sizeof *set->defs);
    if (!set->defs) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *pn = rsre_yaml_item(&doc, seq, i);
        rc = load_probe(&doc, pn, base_dir, &set->defs[i], err);
        set->n = i + 1;
        if (rc) {
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(set->defs[j].name, set->defs[i].name) == 0) {
                rc = rsre_yaml_fail(err, pn, RSRE_EINVALID, "probe %s: duplicate name",
                                    set->defs[i].name);
                goto fail;
            }
        }
    }
    yaml_document_delete(&doc);
    *out = set;
    return 0;
fail:
    yaml_document_delete(&doc);
    rsre_probe_set_destroy(set);
    return rc;
}

int rsre_probe_set_load_file(const char *path, struct rsre_probe_set **out, char *err,
                             size_t errlen) {
    if (!path || !out || !err || errlen == 0) {
        return -EINVAL;
    }
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "%s: %s", path, rsre_strerror(e));
        return e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > (off_t)RSRE_YAML_MAX_INPUT) {
        close(fd);
        snprintf(err, errlen, "%s: unreadable or larger than %u bytes", path, RSRE_YAML_MAX_INPUT);
        return RSRE_ELIMIT;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
    } else {
        strcpy(dir, ".");
    }
    struct rsre_yerr yerr = {0};
    int rc = rsre_probe_set_load(buf, got, dir, out, &yerr);
    free(buf);
    if (rc) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, yerr.line, yerr.col, yerr.msg);
    }
    return rc;
}

void rsre_probe_set_destroy(struct rsre_probe_set *set) {
    if (!set) {
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        /* Wipe secrets (volatile so the stores are not elided before free). */
        volatile char *p = set->defs[i].password;
        for (size_t k = 0; k < sizeof set->defs[i].password; k++) {
            p[k] = 0;
        }
        p = set->defs[i].token;
        for (size_t k = 0; k < sizeof set->defs[i].token; k++) {
            p[k] = 0;
        }
    }
    free(set->defs);
    free(set);
}

size_t rsre_probe_set_count(const struct rsre_probe_set *set) {
    return set ? set->n : 0;
}

const struct rsre_probe_def *rsre_probe_set_get(const struct rsre_probe_set *set, size_t i) {
    return set && i < set->n ? &set->defs[i] : NULL;
}
