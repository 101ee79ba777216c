/*
 * Bearer tokens: the token file (YAML: operator id, role, SHA-256 of the token in hex) and the
 * check of an Authorization header against it. Only hashes are kept in memory and on disk.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/log.h"
#include "common/yamldoc.h"
#include "http/api_internal.h"

#define TOKEN_FILE_MAX (1u << 20)

static const char *const role_names[] = {
    [RSRE_API_ROLE_NONE] = "none",         [RSRE_API_ROLE_VIEWER] = "viewer",
    [RSRE_API_ROLE_OPERATOR] = "operator", [RSRE_API_ROLE_APPROVER] = "approver",
    [RSRE_API_ROLE_ADMIN] = "admin",
};

const char *rsre_api_role_name(enum rsre_api_role r) {
    return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "none";
}

static int role_parse(const char *s, enum rsre_api_role *out) {
    for (unsigned i = RSRE_API_ROLE_VIEWER; i < sizeof(role_names) / sizeof(role_names[0]); i++) {
        if (!strcmp(s, role_names[i])) {
            *out = (enum rsre_api_role)i;
            return 0;
        }
    }
    return RSRE_ENOTFOUND;
}

static int valid_operator(const char *s) {
    size_t n = strlen(s);
    if (!n || n > API_OPERATOR_MAX || strchr("._@-", s[0])) {
        return 0;
    }
    for (; *s; s++) {
        int ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                 strchr("._@-", *s);
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int read_file(const char *path, char **buf, size_t *len, char *why, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(why, cap, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    char *p = malloc(TOKEN_FILE_MAX + 1);
    if (!p) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(p, 1, TOKEN_FILE_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(p);
        snprintf(why, cap, "%s: read error", path);
        return -EIO;
    }
    if (n > TOKEN_FILE_MAX) {
        free(p);
        snprintf(why, cap, "%s: larger than %u bytes", path, TOKEN_FILE_MAX);
        return RSRE_ELIMIT;
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    return 0;
}

/* Parses one `tokens:` entry into *t. */
static int parse_entry(yaml_document_t *doc, yaml_node_t *e, struct api_token *t,
                       struct rsre_yerr *err) {
    if (!e || e->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(err, e, RSRE_EINVALID, "a token entry must be a mapping");
    }
    for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top; p++) {
        const char *k = rsre_yaml_str(yaml_document_get_node(doc, p->key));
        if (!k || (strcmp(k, "operator") && strcmp(k, "role") && strcmp(k, "sha256") &&
                   strcmp(k, "comment"))) {
            return rsre_yaml_fail(err, yaml_document_get_node(doc, p->key), RSRE_EINVALID,
                                  "unknown key '%s' (operator, role, sha256, comment)",
                                  k ? k : "?");
        }
    }
    const char *op = NULL, *role = NULL, *hash = NULL;
    int rc;
    if ((rc = rsre_yaml_get_str(doc, e, "operator", &op, err)) ||
        (rc = rsre_yaml_get_str(doc, e, "role", &role, err)) ||
        (rc = rsre_yaml_get_str(doc, e, "sha256", &hash, err))) {
        if (rc == RSRE_ENOTFOUND) {
            return rsre_yaml_fail(err, e, RSRE_EINVALID,
                                  "a token entry needs operator, role and sha256");
        }
        return rc;
    }
    if (!valid_operator(op)) {
        return rsre_yaml_fail(err, rsre_yaml_get(doc, e, "operator"), RSRE_EINVALID,
                              "operator must be 1..%d characters of [A-Za-z0-9._@-], "
                              "starting with a letter or digit",
                              API_OPERATOR_MAX);
    }
    if (role_parse(role, &t->role)) {
        return rsre_yaml_fail(err, rsre_yaml_get(doc, e, "role"), RSRE_EINVALID,
                              "unknown role '%s' (viewer, operator, approver, admin)", role);
    }
    if (strlen(hash) != 64) {
        return rsre_yaml_fail(err, rsre_yaml_get(doc, e, "sha256"), RSRE_EINVALID,
                              "sha256 must be 64 hex digits (printf %%s TOKEN | sha256sum)");
    }
    for (int i = 0; i < 32; i++) {
        int hi = hexval(hash[2 * i]), lo = hexval(hash[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return rsre_yaml_fail(err, rsre_yaml_get(doc, e, "sha256"), RSRE_EINVALID,
                                  "sha256 must be 64 hex digits");
        }
        t->sha256[i] = (unsigned char)(hi << 4 | lo);
    }
    snprintf(t->operator_id, sizeof(t->operator_id), "%s", op);
    return 0;
}

int rsre__api_tokens_load(const char *path, struct api_tokens *out, char *why, size_t cap) {
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, why, cap);
    if (rc) {
        return rc;
    }
    struct stat st;
    if (!stat(path, &st) && (st.st_mode & S_IWOTH)) {
        RSRE_LOG(RSRE_LOG_WARN, "api", "token file is world-writable path=\"%s\"", path);
    }
    yaml_document_t doc;
    struct rsre_yerr err = {0};
    rc = rsre_yaml_load(buf, len, &doc, &err);
    free(buf);
    if (rc) {
        snprintf(why, cap, "%s:%d:%d: %s", path, err.line, err.col, err.msg);
        return rc;
    }
    struct api_tokens t = {0};
    yaml_node_t *root = rsre_yaml_root(&doc);
    yaml_node_t *list = rsre_yaml_get(&doc, root, "tokens");
    if (!list || list->type != YAML_SEQUENCE_NODE) {
        rc = rsre_yaml_fail(&err, list ? list : root, RSRE_EINVALID,
                            "expected a mapping with a `tokens:` list");
        goto out;
    }
    size_t n = rsre_yaml_len(list);
    if (n > API_TOKENS_MAX) {
        rc = rsre_yaml_fail(&err, list, RSRE_ELIMIT, "more than %d tokens", API_TOKENS_MAX);
        goto out;
    }
    if (n && !(t.v = calloc(n, sizeof(*t.v)))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *e = rsre_yaml_item(&doc, list, i);
        if ((rc = parse_entry(&doc, e, &t.v[i], &err))) {
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (!memcmp(t.v[j].sha256, t.v[i].sha256, 32)) {
                rc = rsre_yaml_fail(&err, e, RSRE_EINVALID,
                                    "the same token hash is listed twice (operators %s and %s)",
                                    t.v[j].operator_id, t.v[i].operator_id);
                goto out;
            }
        }
        t.n++;
    }
out:
    yaml_document_delete(&doc);
    if (rc) {
        if (rc != -ENOMEM) {
            snprintf(why, cap, "%s:%d:%d: %s", path, err.line, err.col, err.msg);
        } else {
            snprintf(why, cap, "%s: out of memory", path);
        }
        free(t.v);
        return rc;
    }
    *out = t;
    return 0;
}

void rsre__api_tokens_free(struct api_tokens *t) {
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

enum api_auth_result rsre__api_authenticate(const struct api_tokens *t, const char *value,
                                            size_t len, size_t count,
                                            const struct api_token **who) {
    *who = NULL;
    if (!count || !value) {
        return API_AUTH_MISSING;
    }
    if (count > 1 || len < 8 || strncasecmp(value, "Bearer ", 7)) {
        return API_AUTH_MALFORMED;
    }
    const char *tok = value + 7;
    size_t n = len - 7;
    while (n && *tok == ' ') {
        tok++;
        n--;
    }
    while (n && tok[n - 1] == ' ') {
        n--;
    }
    if (!n || n > API_TOKEN_MAX) {
        return API_AUTH_MALFORMED;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f) {
            return API_AUTH_MALFORMED;
        }
    }
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, n, h);
    const struct api_token *match = NULL;
    for (size_t i = 0; i < t->n; i++) {
        int eq = CRYPTO_memcmp(t->v[i].sha256, h, sizeof(h)) == 0;
        match = eq ? &t->v[i] : match;
    }
    OPENSSL_cleanse(h, sizeof(h));
    if (!match) {
        return API_AUTH_UNKNOWN;
    }
    *who = match;
    return API_AUTH_OK;
}

const char *rsre__api_auth_reason(enum api_auth_result r) {
    switch (r) {
    case API_AUTH_OK:
        return "ok";
    case API_AUTH_MISSING:
        return "missing bearer token";
    case API_AUTH_MALFORMED:
        return "malformed Authorization header";
    case API_AUTH_UNKNOWN:
        return "unknown token";
    }
    return "?";
}
