/*
 * Notification routing rules and channel settings: the notifications file (notify.h describes
 * its format). Parsed strictly: unknown keys, channels, severities and environments are
 * errors with line:col, and secrets may only be named (secret_file / secret_env), never
 * written inline.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "notify/notify.h"

enum match_key { M_ENV, M_DOMAIN, M_TYPE, M_SEVERITY, M_COUNT };
static const char *const match_names[M_COUNT] = {"environment", "domain", "incident_type",
                                                 "severity"};
/* Closed vocabularies (NULL: any name). */
static const char *const env_values[] = {"demo", "staging", "production", NULL};
static const char *const sev_values[] = {"info", "warning", "critical", NULL};
static const char *const *const match_vocab[M_COUNT] = {env_values, NULL, NULL, sev_values};

struct route {
    char values[M_COUNT][RSRE_NOTIFY_MATCH_MAX][RSRE_NOTIFY_NAME_MAX];
    size_t nvalues[M_COUNT]; /* 0: any */
    struct rsre_notify_target to[RSRE_NOTIFY_CHANNELS_MAX];
    size_t nto;
    int cont;
};

struct rsre_notify_routes {
    char admin_url[512];
    char secret_file[512];
    char secret_env[128];
    int64_t suppress_ms;
    struct rsre_notify_channel_conf channels[RSRE_NOTIFY_CHANNELS_MAX];
    size_t nchannels;
    struct route *routes;
    size_t nroutes;
    struct rsre_notify_target deflt[RSRE_NOTIFY_CHANNELS_MAX];
    size_t ndeflt;
    char approval_channels[RSRE_NOTIFY_CHANNELS_MAX][RSRE_NOTIFY_NAME_MAX];
    const char *approval_ptrs[RSRE_NOTIFY_CHANNELS_MAX];
    size_t napproval;
};

static int only_keys(yaml_document_t *doc, yaml_node_t *m, const char *what,
                     const char *const *keys, size_t nkeys, struct rsre_yerr *err) {
    if (!m || m->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(err, m, RSRE_EINVALID, "%s: expected a mapping, found %s", what,
                              m ? rsre_yaml_kind(m) : "nothing");
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        const char *ks = rsre_yaml_str(k);
        size_t i = 0;
        while (ks && i < nkeys && strcmp(keys[i], ks) != 0) {
            i++;
        }
        if (!ks || i == nkeys) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s: unknown key '%s'", what,
                                  ks ? ks : "?");
        }
    }
    return 0;
}

/* A printable name of 1..RSRE_NOTIFY_NAME_MAX-1 bytes without spaces or control characters. */
static int copy_name(yaml_node_t *n, const char *what, char *dst, struct rsre_yerr *err) {
    const char *s = rsre_yaml_str(n);
    if (!s || !*s) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected a non-empty string", what);
    }
    size_t len = strlen(s);
    if (len >= RSRE_NOTIFY_NAME_MAX) {
        return rsre_yaml_fail(err, n, RSRE_ELIMIT, "%s: longer than %d bytes", what,
                              RSRE_NOTIFY_NAME_MAX - 1);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || c == '/') {
            return rsre_yaml_fail(err, n, RSRE_EINVALID,
                                  "%s: '%s' has a space, '/' or a control "
                                  "character",
                                  what, s);
        }
    }
    memcpy(dst, s, len + 1);
    return 0;
}

static int find_channel(const struct rsre_notify_routes *r, const char *name) {
    for (size_t i = 0; i < r->nchannels; i++) {
        if (!strcmp(r->channels[i].name, name)) {
            return (int)i;
        }
    }
    return -1;
}

static int parse_chats(yaml_document_t *doc, yaml_node_t *seq, const char *what,
                       char chats[][RSRE_NOTIFY_NAME_MAX], size_t *n, struct rsre_yerr *err) {
    if (!seq || seq->type != YAML_SEQUENCE_NODE) {
        return rsre_yaml_fail(err, seq, RSRE_EINVALID, "%s: expected a list of chats", what);
    }
    if (rsre_yaml_len(seq) > RSRE_NOTIFY_CHATS_MAX) {
        return rsre_yaml_fail(err, seq, RSRE_ELIMIT, "%s: more than %d chats", what,
                              RSRE_NOTIFY_CHATS_MAX);
    }
    *n = 0;
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        int rc = copy_name(rsre_yaml_item(doc, seq, i), what, chats[*n], err);
        if (rc) {
            return rc;
        }
        (*n)++;
    }
    return 0;
}

/* `to:` / `default:` — a list of {channel, chats}. */
static int parse_targets(yaml_document_t *doc, const struct rsre_notify_routes *r, yaml_node_t *seq,
                         const char *what, struct rsre_notify_target *out, size_t *n,
                         struct rsre_yerr *err) {
    static const char *const keys[] = {"channel", "chats"};
    if (!seq || seq->type != YAML_SEQUENCE_NODE || rsre_yaml_len(seq) == 0) {
        return rsre_yaml_fail(err, seq, RSRE_EINVALID, "%s: expected a non-empty list", what);
    }
    if (rsre_yaml_len(seq) > RSRE_NOTIFY_CHANNELS_MAX) {
        return rsre_yaml_fail(err, seq, RSRE_ELIMIT, "%s: more than %d targets", what,
                              RSRE_NOTIFY_CHANNELS_MAX);
    }
    *n = 0;
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *t = rsre_yaml_item(doc, seq, i);
        int rc = only_keys(doc, t, what, keys, 2, err);
        if (rc) {
            return rc;
        }
        struct rsre_notify_target *dst = &out[*n];
        memset(dst, 0, sizeof(*dst));
        yaml_node_t *cn = rsre_yaml_get(doc, t, "channel");
        if ((rc = copy_name(cn ? cn : t, "channel", dst->channel, err))) {
            return rc;
        }
        if (find_channel(r, dst->channel) < 0) {
            return rsre_yaml_fail(err, cn, RSRE_EINVALID, "channel: '%s' is not in `channels`",
                                  dst->channel);
        }
        yaml_node_t *chats = rsre_yaml_get(doc, t, "chats");
        if ((rc = parse_chats(doc, chats ? chats : t, "chats", dst->chats, &dst->nchats, err))) {
            return rc;
        }
        if (dst->nchats == 0) {
            return rsre_yaml_fail(err, chats, RSRE_EINVALID, "chats: empty");
        }
        (*n)++;
    }
    return 0;
}

static int get_i64(yaml_document_t *doc, yaml_node_t *m, const char *key, long long lo,
                   long long hi, long long *v, struct rsre_yerr *err) {
    int rc = rsre_yaml_get_i64(doc, m, key, lo, hi, v, err);
    return rc == RSRE_ENOTFOUND ? 0 : rc;
}

static int parse_channel(yaml_document_t *doc, yaml_node_t *m, struct rsre_notify_channel_conf *c,
                         struct rsre_yerr *err) {
    static const char *const keys[] = {
        "name",         "alternate",  "chats",          "rate_per_minute", "burst",
        "max_attempts", "backoff_ms", "backoff_max_ms", "settings",        "recheck_seconds"};
    int rc = only_keys(doc, m, "channel", keys, sizeof(keys) / sizeof(keys[0]), err);
    if (rc) {
        return rc;
    }
    memset(c, 0, sizeof(*c));
    yaml_node_t *nn = rsre_yaml_get(doc, m, "name");
    if ((rc = copy_name(nn ? nn : m, "name", c->name, err))) {
        return rc;
    }
    yaml_node_t *an = rsre_yaml_get(doc, m, "alternate");
    if (an && (rc = copy_name(an, "alternate", c->alternate, err))) {
        return rc;
    }
    yaml_node_t *chats = rsre_yaml_get(doc, m, "chats");
    if (chats && (rc = parse_chats(doc, chats, "chats", c->chats, &c->nchats, err))) {
        return rc;
    }
    yaml_node_t *set = rsre_yaml_get(doc, m, "settings");
    if (set) {
        if (set->type != YAML_MAPPING_NODE) {
            return rsre_yaml_fail(err, set, RSRE_EINVALID, "settings: expected a mapping");
        }
        for (yaml_node_pair_t *p = set->data.mapping.pairs.start; p < set->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            yaml_node_t *v = yaml_document_get_node(doc, p->value);
            const char *ks = rsre_yaml_str(k), *vs = rsre_yaml_str(v);
            if (!ks || !vs) {
                return rsre_yaml_fail(err, k, RSRE_EINVALID, "settings: expected text values");
            }
            if (c->nsettings == RSRE_NOTIFY_SETTINGS_MAX) {
                return rsre_yaml_fail(err, k, RSRE_ELIMIT, "settings: more than %d",
                                      RSRE_NOTIFY_SETTINGS_MAX);
            }
            if (strlen(ks) >= sizeof(c->settings[0][0]) ||
                strlen(vs) >= sizeof(c->settings[0][1])) {
                return rsre_yaml_fail(err, k, RSRE_ELIMIT, "settings: '%.40s' too long", ks);
            }
            static const char *const secrets[] = {"token",      "secret",       "password",
                                                  "app_secret", "access_token", "verify_token"};
            for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
                if (!strcmp(ks, secrets[i])) {
                    return rsre_yaml_fail(err, k, RSRE_EINVALID,
                                          "settings: '%s' would put a secret in this file; use "
                                          "%s_file or %s_env",
                                          ks, ks, ks);
                }
            }
            snprintf(c->settings[c->nsettings][0], sizeof(c->settings[0][0]), "%s", ks);
            snprintf(c->settings[c->nsettings][1], sizeof(c->settings[0][1]), "%s", vs);
            c->nsettings++;
        }
    }
    long long rate = 20, burst = 5, attempts = 4, base = 1000, max = 60000, recheck = 300;
    if ((rc = get_i64(doc, m, "rate_per_minute", 1, 6000, &rate, err)) ||
        (rc = get_i64(doc, m, "burst", 1, 1000, &burst, err)) ||
        (rc = get_i64(doc, m, "max_attempts", 1, 20, &attempts, err)) ||
        (rc = get_i64(doc, m, "backoff_ms", 1, 600000, &base, err)) ||
        (rc = get_i64(doc, m, "backoff_max_ms", 1, 3600000, &max, err)) ||
        (rc = get_i64(doc, m, "recheck_seconds", 1, 86400, &recheck, err))) {
        return rc;
    }
    c->rate_per_minute = (double)rate;
    c->burst = (unsigned)burst;
    c->max_attempts = (unsigned)attempts;
    c->backoff_base_ms = base;
    c->backoff_max_ms = max < base ? base : max;
    c->recheck_ms = recheck * 1000;
    return 0;
}

static int parse_route(yaml_document_t *doc, const struct rsre_notify_routes *r, yaml_node_t *m,
                       struct route *rt, struct rsre_yerr *err) {
    static const char *const keys[] = {"match", "to", "continue"};
    int rc = only_keys(doc, m, "route", keys, 3, err);
    if (rc) {
        return rc;
    }
    memset(rt, 0, sizeof(*rt));
    yaml_node_t *match = rsre_yaml_get(doc, m, "match");
    if (match) {
        if ((rc = only_keys(doc, match, "match", match_names, M_COUNT, err))) {
            return rc;
        }
        for (int k = 0; k < M_COUNT; k++) {
            yaml_node_t *v = rsre_yaml_get(doc, match, match_names[k]);
            if (!v) {
                continue;
            }
            if (v->type != YAML_SEQUENCE_NODE || rsre_yaml_len(v) == 0) {
                return rsre_yaml_fail(err, v, RSRE_EINVALID, "%s: expected a non-empty list",
                                      match_names[k]);
            }
            if (rsre_yaml_len(v) > RSRE_NOTIFY_MATCH_MAX) {
                return rsre_yaml_fail(err, v, RSRE_ELIMIT, "%s: more than %d values",
                                      match_names[k], RSRE_NOTIFY_MATCH_MAX);
            }
            for (size_t i = 0; i < rsre_yaml_len(v); i++) {
                yaml_node_t *it = rsre_yaml_item(doc, v, i);
                char *dst = rt->values[k][rt->nvalues[k]];
                if ((rc = copy_name(it, match_names[k], dst, err))) {
                    return rc;
                }
                if (match_vocab[k]) {
                    size_t j = 0;
                    while (match_vocab[k][j] && strcmp(match_vocab[k][j], dst)) {
                        j++;
                    }
                    if (!match_vocab[k][j]) {
                        return rsre_yaml_fail(err, it, RSRE_EINVALID, "%s: unknown value '%s'",
                                              match_names[k], dst);
                    }
                }
                rt->nvalues[k]++;
            }
        }
    }
    yaml_node_t *to = rsre_yaml_get(doc, m, "to");
    if ((rc = parse_targets(doc, r, to ? to : m, "to", rt->to, &rt->nto, err))) {
        return rc;
    }
    rc = rsre_yaml_get_bool(doc, m, "continue", &rt->cont, err);
    return rc == RSRE_ENOTFOUND ? 0 : rc;
}

/* Refuses a secret written into the file: only *_file / *_env may name one. */
static int parse_secret(yaml_document_t *doc, yaml_node_t *root, struct rsre_notify_routes *r,
                        struct rsre_yerr *err) {
    const char *s = NULL;
    int rc = rsre_yaml_get_str(doc, root, "secret_file", &s, err);
    if (rc == 0) {
        if (!*s || s[0] != '/' || strlen(s) >= sizeof(r->secret_file)) {
            return rsre_yaml_fail(err, rsre_yaml_get(doc, root, "secret_file"), RSRE_EINVALID,
                                  "secret_file: expected an absolute path");
        }
        snprintf(r->secret_file, sizeof(r->secret_file), "%s", s);
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    rc = rsre_yaml_get_str(doc, root, "secret_env", &s, err);
    if (rc == 0) {
        size_t len = strlen(s);
        int ok = len > 0 && len < sizeof(r->secret_env);
        for (size_t i = 0; ok && i < len; i++) {
            ok = (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
        }
        if (!ok) {
            return rsre_yaml_fail(err, rsre_yaml_get(doc, root, "secret_env"), RSRE_EINVALID,
                                  "secret_env: expected an environment variable name");
        }
        snprintf(r->secret_env, sizeof(r->secret_env), "%s", s);
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    return 0;
}

static int parse(yaml_document_t *doc, struct rsre_notify_routes *r, struct rsre_yerr *err) {
    static const char *const keys[] = {"admin_url", "secret_file", "secret_env", "suppress_minutes",
                                       "channels",  "routes",      "default",    "approvals"};
    yaml_node_t *root = rsre_yaml_root(doc);
    int rc = only_keys(doc, root, "notifications", keys, sizeof(keys) / sizeof(keys[0]), err);
    if (rc) {
        return rc;
    }
    const char *url = NULL;
    rc = rsre_yaml_get_str(doc, root, "admin_url", &url, err);
    if (rc == 0) {
        if ((strncmp(url, "https://", 8) && strncmp(url, "http://", 7)) ||
            strlen(url) >= sizeof(r->admin_url) || strpbrk(url, " \t\r\n")) {
            return rsre_yaml_fail(err, rsre_yaml_get(doc, root, "admin_url"), RSRE_EINVALID,
                                  "admin_url: expected an http(s) URL");
        }
        snprintf(r->admin_url, sizeof(r->admin_url), "%s", url);
        size_t l = strlen(r->admin_url);
        while (l > 0 && r->admin_url[l - 1] == '/') {
            r->admin_url[--l] = '\0';
        }
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    if ((rc = parse_secret(doc, root, r, err))) {
        return rc;
    }
    long long minutes = 15;
    if ((rc = get_i64(doc, root, "suppress_minutes", 0, 24 * 60, &minutes, err))) {
        return rc;
    }
    r->suppress_ms = minutes * 60 * 1000LL;

    yaml_node_t *chs = rsre_yaml_get(doc, root, "channels");
    if (chs) {
        if (chs->type != YAML_SEQUENCE_NODE) {
            return rsre_yaml_fail(err, chs, RSRE_EINVALID, "channels: expected a list");
        }
        if (rsre_yaml_len(chs) > RSRE_NOTIFY_CHANNELS_MAX) {
            return rsre_yaml_fail(err, chs, RSRE_ELIMIT, "channels: more than %d",
                                  RSRE_NOTIFY_CHANNELS_MAX);
        }
        for (size_t i = 0; i < rsre_yaml_len(chs); i++) {
            yaml_node_t *m = rsre_yaml_item(doc, chs, i);
            if ((rc = parse_channel(doc, m, &r->channels[r->nchannels], err))) {
                return rc;
            }
            if (find_channel(r, r->channels[r->nchannels].name) >= 0) {
                return rsre_yaml_fail(err, m, RSRE_EEXIST, "channel '%s' listed twice",
                                      r->channels[r->nchannels].name);
            }
            r->nchannels++;
        }
        for (size_t i = 0; i < r->nchannels; i++) {
            const char *alt = r->channels[i].alternate;
            if (*alt && (find_channel(r, alt) < 0 || !strcmp(alt, r->channels[i].name))) {
                return rsre_yaml_fail(err, rsre_yaml_item(doc, chs, i), RSRE_EINVALID,
                                      "alternate: '%s' is not another configured channel", alt);
            }
            if (*alt && r->channels[find_channel(r, alt)].nchats == 0) {
                return rsre_yaml_fail(err, rsre_yaml_item(doc, chs, i), RSRE_EINVALID,
                                      "alternate: channel '%s' has no `chats` to fail over to",
                                      alt);
            }
        }
    }
    yaml_node_t *routes = rsre_yaml_get(doc, root, "routes");
    if (routes) {
        if (routes->type != YAML_SEQUENCE_NODE) {
            return rsre_yaml_fail(err, routes, RSRE_EINVALID, "routes: expected a list");
        }
        if (rsre_yaml_len(routes) > RSRE_NOTIFY_ROUTES_MAX) {
            return rsre_yaml_fail(err, routes, RSRE_ELIMIT, "routes: more than %d",
                                  RSRE_NOTIFY_ROUTES_MAX);
        }
        r->routes = calloc(rsre_yaml_len(routes) + 1, sizeof(*r->routes));
        if (!r->routes) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < rsre_yaml_len(routes); i++) {
            if ((rc = parse_route(doc, r, rsre_yaml_item(doc, routes, i), &r->routes[i], err))) {
                return rc;
            }
            r->nroutes++;
        }
    }
    yaml_node_t *d = rsre_yaml_get(doc, root, "default");
    if (d && (rc = parse_targets(doc, r, d, "default", r->deflt, &r->ndeflt, err))) {
        return rc;
    }
    yaml_node_t *ap = rsre_yaml_get(doc, root, "approvals");
    if (ap) {
        static const char *const akeys[] = {"channels"};
        if ((rc = only_keys(doc, ap, "approvals", akeys, 1, err))) {
            return rc;
        }
        yaml_node_t *ac = rsre_yaml_get(doc, ap, "channels");
        if (!ac || ac->type != YAML_SEQUENCE_NODE || rsre_yaml_len(ac) > RSRE_NOTIFY_CHANNELS_MAX) {
            return rsre_yaml_fail(err, ac ? ac : ap, RSRE_EINVALID,
                                  "approvals.channels: expected a list of channels");
        }
        for (size_t i = 0; i < rsre_yaml_len(ac); i++) {
            yaml_node_t *it = rsre_yaml_item(doc, ac, i);
            char *dst = r->approval_channels[r->napproval];
            if ((rc = copy_name(it, "approvals.channels", dst, err))) {
                return rc;
            }
            if (find_channel(r, dst) < 0) {
                return rsre_yaml_fail(err, it, RSRE_EINVALID,
                                      "approvals.channels: '%s' is not in `channels`", dst);
            }
            r->approval_ptrs[r->napproval] = dst;
            r->napproval++;
        }
    }
    return 0;
}

int rsre_notify_routes_load(const char *yaml, size_t len, struct rsre_notify_routes **out,
                            struct rsre_yerr *err) {
    struct rsre_yerr dummy;
    if (!err) {
        err = &dummy;
    }
    memset(err, 0, sizeof(*err));
    *out = NULL;
    if (len > RSRE_NOTIFY_FILE_MAX) {
        return rsre_yaml_fail(err, NULL, RSRE_ELIMIT, "notifications file is %zu bytes, limit %u",
                              len, RSRE_NOTIFY_FILE_MAX);
    }
    yaml_document_t doc;
    int rc = rsre_yaml_load(yaml, len, &doc, err);
    if (rc) {
        return rc;
    }
    struct rsre_notify_routes *r = calloc(1, sizeof(*r));
    if (!r) {
        yaml_document_delete(&doc);
        return -ENOMEM;
    }
    rc = parse(&doc, r, err);
    yaml_document_delete(&doc);
    if (rc) {
        rsre_notify_routes_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Reads at most `max` bytes of `path` into a NUL-terminated malloc'd buffer. */
static int read_file(const char *path, size_t max, char **buf, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if ((size_t)st.st_size > max) {
        close(fd);
        return RSRE_ELIMIT;
    }
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
        if (n <= 0) {
            int e = n < 0 ? -errno : -EIO;
            free(b);
            close(fd);
            return e;
        }
        got += (size_t)n;
    }
    close(fd);
    b[got] = '\0';
    *buf = b;
    *len = got;
    return 0;
}

int rsre_notify_routes_load_file(const char *path, struct rsre_notify_routes **out,
                                 struct rsre_yerr *err) {
    char *buf;
    size_t len;
    int rc = read_file(path, RSRE_NOTIFY_FILE_MAX, &buf, &len);
    if (rc) {
        if (err) {
            memset(err, 0, sizeof(*err));
            snprintf(err->msg, sizeof(err->msg), "%s: %s", path, rsre_strerror(rc));
        }
        *out = NULL;
        return rc;
    }
    rc = rsre_notify_routes_load(buf, len, out, err);
    free(buf);
    return rc;
}

void rsre_notify_routes_destroy(struct rsre_notify_routes *r) {
    if (r) {
        free(r->routes);
        free(r);
    }
}

static int value_in(const struct route *rt, int k, const char *v) {
    if (rt->nvalues[k] == 0) {
        return 1;
    }
    for (size_t i = 0; v && i < rt->nvalues[k]; i++) {
        if (!strcmp(rt->values[k][i], v)) {
            return 1;
        }
    }
    return 0;
}

/* Merges target `t` into out[0..*n): chats of the same channel are unioned. */
static void merge(struct rsre_notify_target *out, size_t cap, size_t *n,
                  const struct rsre_notify_target *t) {
    size_t i = 0;
    while (i < *n && strcmp(out[i].channel, t->channel)) {
        i++;
    }
    if (i == *n) {
        if (*n == cap) {
            return;
        }
        memset(&out[i], 0, sizeof(out[i]));
        snprintf(out[i].channel, sizeof(out[i].channel), "%s", t->channel);
        (*n)++;
    }
    for (size_t c = 0; c < t->nchats; c++) {
        size_t j = 0;
        while (j < out[i].nchats && strcmp(out[i].chats[j], t->chats[c])) {
            j++;
        }
        if (j == out[i].nchats && j < RSRE_NOTIFY_CHATS_MAX) {
            snprintf(out[i].chats[j], sizeof(out[i].chats[j]), "%s", t->chats[c]);
            out[i].nchats++;
        }
    }
}

size_t rsre_notify_route(const struct rsre_notify_routes *r, const struct rsre_notify_subject *s,
                         struct rsre_notify_target *out, size_t cap) {
    size_t n = 0;
    int matched = 0;
    const char *vals[M_COUNT] = {s->environment, s->domain, s->incident_type, s->severity};
    for (size_t i = 0; i < r->nroutes; i++) {
        const struct route *rt = &r->routes[i];
        int ok = 1;
        for (int k = 0; ok && k < M_COUNT; k++) {
            ok = value_in(rt, k, vals[k]);
        }
        if (!ok) {
            continue;
        }
        matched = 1;
        for (size_t t = 0; t < rt->nto; t++) {
            merge(out, cap, &n, &rt->to[t]);
        }
        if (!rt->cont) {
            break;
        }
    }
    if (!matched) {
        for (size_t t = 0; t < r->ndeflt; t++) {
            merge(out, cap, &n, &r->deflt[t]);
        }
    }
    return n;
}

size_t rsre_notify_routes_channels(const struct rsre_notify_routes *r) {
    return r->nchannels;
}

const struct rsre_notify_channel_conf *
rsre_notify_routes_channel(const struct rsre_notify_routes *r, size_t i) {
    return i < r->nchannels ? &r->channels[i] : NULL;
}

size_t rsre_notify_routes_approval_channels(const struct rsre_notify_routes *r,
                                            const char *const **names) {
    *names = r->approval_ptrs;
    return r->napproval;
}

const char *rsre_notify_routes_admin_url(const struct rsre_notify_routes *r) {
    return r->admin_url;
}

int64_t rsre_notify_routes_suppress_ms(const struct rsre_notify_routes *r) {
    return r->suppress_ms;
}

int rsre_notify_routes_secret(const struct rsre_notify_routes *r, uint8_t *buf, size_t cap) {
    size_t len;
    if (r->secret_file[0]) {
        char *b;
        int rc = read_file(r->secret_file, 4096, &b, &len);
        if (rc) {
            return rc;
        }
        while (len > 0 && (b[len - 1] == '\n' || b[len - 1] == '\r')) {
            len--;
        }
        if (len > cap) {
            len = cap;
        }
        memcpy(buf, b, len);
        memset(b, 0, len);
        free(b);
    } else if (r->secret_env[0]) {
        const char *v = getenv(r->secret_env);
        if (!v) {
            return -ENOENT;
        }
        len = strlen(v) < cap ? strlen(v) : cap;
        memcpy(buf, v, len);
    } else {
        return -ENOENT;
    }
    return len < RSRE_NOTIFY_SECRET_MIN ? RSRE_EINVALID : (int)len;
}
