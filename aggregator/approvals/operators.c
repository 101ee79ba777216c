/*
 * The operator registry: a YAML file of identities, validated strictly and held immutable.
 * docs/approvals.md "Operators".
 */
#include "approvals/operators.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/error.h"

struct rsre_operators {
    struct rsre_arena *arena;
    struct rsre_operator *v;
    size_t n;
};

static const struct {
    const char *name;
    enum rsre_role role;
} roles[] = {
    {"viewer", RSRE_ROLE_VIEWER},
    {"operator", RSRE_ROLE_OPERATOR},
    {"approver", RSRE_ROLE_APPROVER},
    {"admin", RSRE_ROLE_ADMIN},
};

static const char *const chat_names[RSRE_CHAT_COUNT] = {"telegram", "whatsapp"};

/* Ids that can never be operators: the robot's own audit identities. */
static const char *const reserved_ids[] = {RSRE_OPERATOR_ROBOT, "robot"};

/* The keys an operator entry may have. */
static const char *const entry_keys[] = {
    "id", "name", "roles", "telegram_user_id", "whatsapp_number", "enabled"};

const char *rsre_role_name(enum rsre_role r) {
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (roles[i].role == r) {
            return roles[i].name;
        }
    }
    return "?";
}

int rsre_role_parse(const char *s, enum rsre_role *out) {
    for (size_t i = 0; s && i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(roles[i].name, s) == 0) {
            *out = roles[i].role;
            return 0;
        }
    }
    return RSRE_ENOTFOUND;
}

const char *rsre_chat_name(enum rsre_chat c) {
    return (unsigned)c < RSRE_CHAT_COUNT ? chat_names[c] : "?";
}

int rsre_operator_has_role(const struct rsre_operator *op, enum rsre_role role) {
    if (!op || !op->enabled) {
        return 0;
    }
    return (op->roles & RSRE_ROLE_ADMIN) || (op->roles & (unsigned)role);
}

int rsre_operator_may_approve(const struct rsre_operator *op) {
    return rsre_operator_has_role(op, RSRE_ROLE_APPROVER);
}

const char *rsre_operator_chat_id(const struct rsre_operator *op, enum rsre_chat chat) {
    if (!op) {
        return NULL;
    }
    switch (chat) {
    case RSRE_CHAT_TELEGRAM:
        return op->telegram;
    case RSRE_CHAT_WHATSAPP:
        return op->whatsapp;
    default:
        return NULL;
    }
}

/* --- identity syntax ------------------------------------------------------------------------ */

static int is_alnum(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int valid_id(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > RSRE_OPERATOR_ID_MAX || !is_alnum((unsigned char)s[0])) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (!is_alnum(c) && c != '.' && c != '_' && c != '@' && c != '-') {
            return 0;
        }
    }
    return 1;
}

static int all_digits(const char *s, size_t min, size_t max) {
    size_t n = strlen(s);
    if (n < min || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* Telegram user ids are positive integers (up to 52 bits today): 1..20 digits, no leading 0. */
static int valid_telegram(const char *s) {
    return all_digits(s, 1, 20) && s[0] != '0';
}

/* E.164: an optional '+', then 7..15 digits, the first not 0. Returns the digits, or NULL. */
static const char *whatsapp_digits(const char *s) {
    if (s[0] == '+') {
        s++;
    }
    return all_digits(s, 7, 15) && s[0] != '0' ? s : NULL;
}

static int printable(const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* --- registry ------------------------------------------------------------------------------- */

int rsre_operators_create(struct rsre_operators **out) {
    if (!out) {
        return -EINVAL;
    }
    struct rsre_operators *ops = calloc(1, sizeof(*ops));
    if (!ops || !(ops->arena = rsre_arena_create())) {
        free(ops);
        return -ENOMEM;
    }
    *out = ops;
    return 0;
}

void rsre_operators_destroy(struct rsre_operators *ops) {
    if (ops) {
        rsre_arena_destroy(ops->arena);
        free(ops);
    }
}

size_t rsre_operators_count(const struct rsre_operators *ops) {
    return ops ? ops->n : 0;
}

const struct rsre_operator *rsre_operators_get(const struct rsre_operators *ops, size_t i) {
    return ops && i < ops->n ? &ops->v[i] : NULL;
}

const struct rsre_operator *rsre_operators_find(const struct rsre_operators *ops, const char *id) {
    for (size_t i = 0; ops && id && i < ops->n; i++) {
        if (strcmp(ops->v[i].id, id) == 0) {
            return &ops->v[i];
        }
    }
    return NULL;
}

const struct rsre_operator *rsre_operators_find_chat(const struct rsre_operators *ops,
                                                     enum rsre_chat chat, const char *user) {
    if (!ops || !user) {
        return NULL;
    }
    const char *key = NULL;
    if (chat == RSRE_CHAT_TELEGRAM && valid_telegram(user)) {
        key = user;
    } else if (chat == RSRE_CHAT_WHATSAPP) {
        key = whatsapp_digits(user);
    }
    for (size_t i = 0; key && i < ops->n; i++) {
        const char *have = rsre_operator_chat_id(&ops->v[i], chat);
        if (have && strcmp(have, key) == 0) {
            return &ops->v[i];
        }
    }
    return NULL;
}

static char *copy_str(struct rsre_operators *ops, const char *s) {
    return rsre_arena_strndup(ops->arena, s, strlen(s));
}

/* Reads an optional string field into *out (unchanged when absent). */
static int opt_str(yaml_document_t *doc, yaml_node_t *m, const char *key, const char **out,
                   struct rsre_yerr *err) {
    int rc = rsre_yaml_get_str(doc, m, key, out, err);
    return rc == RSRE_ENOTFOUND ? 0 : rc;
}

/* Parses one entry of `operators:` into ops->v[ops->n]. */
static int parse_entry(struct rsre_operators *ops, yaml_document_t *doc, yaml_node_t *m,
                       struct rsre_yerr *err) {
    if (m->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(err, m, RSRE_EINVALID, "operator: expected a mapping, found %s",
                              rsre_yaml_kind(m));
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        const char *ks = rsre_yaml_str(k);
        int known = 0;
        for (size_t i = 0; ks && i < sizeof(entry_keys) / sizeof(entry_keys[0]); i++) {
            known |= strcmp(ks, entry_keys[i]) == 0;
        }
        if (!known) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID,
                                  "unknown key '%.64s' (known: id, name, "
                                  "roles, telegram_user_id, whatsapp_number, enabled)",
                                  ks ? ks : "?");
        }
    }
    const char *id = NULL, *name = NULL, *tg = NULL, *wa = NULL;
    int enabled = 1, rc;
    yaml_node_t *idn = rsre_yaml_get(doc, m, "id");
    if ((rc = rsre_yaml_get_str(doc, m, "id", &id, err)) == RSRE_ENOTFOUND) {
        return rsre_yaml_fail(err, m, RSRE_EINVALID, "operator: missing 'id'");
    }
    if (rc) {
        return rc;
    }
    if (!valid_id(id)) {
        return rsre_yaml_fail(err, idn, RSRE_EINVALID,
                              "id: '%.80s' is not 1..%d of [A-Za-z0-9._@-] starting with a letter "
                              "or digit",
                              id, RSRE_OPERATOR_ID_MAX);
    }
    for (size_t i = 0; i < sizeof(reserved_ids) / sizeof(reserved_ids[0]); i++) {
        if (strcmp(id, reserved_ids[i]) == 0) {
            return rsre_yaml_fail(err, idn, RSRE_EINVALID,
                                  "id: '%s' is reserved for the robot itself", id);
        }
    }
    if (rsre_operators_find(ops, id)) {
        return rsre_yaml_fail(err, idn, RSRE_EEXIST, "id: duplicate operator '%s'", id);
    }
    if ((rc = opt_str(doc, m, "name", &name, err)) ||
        (rc = opt_str(doc, m, "telegram_user_id", &tg, err)) ||
        (rc = opt_str(doc, m, "whatsapp_number", &wa, err))) {
        return rc;
    }
    rc = rsre_yaml_get_bool(doc, m, "enabled", &enabled, err);
    if (rc && rc != RSRE_ENOTFOUND) {
        return rc;
    }
    if (name && (strlen(name) > RSRE_OPERATOR_NAME_MAX || !printable(name))) {
        return rsre_yaml_fail(err, rsre_yaml_get(doc, m, "name"), RSRE_EINVALID,
                              "name: at most %d printable bytes", RSRE_OPERATOR_NAME_MAX);
    }
    if (tg && tg[0] == '\0') {
        tg = NULL;
    }
    if (tg && !valid_telegram(tg)) {
        return rsre_yaml_fail(err, rsre_yaml_get(doc, m, "telegram_user_id"), RSRE_EINVALID,
                              "telegram_user_id: expected Telegram's numeric user id");
    }
    const char *wad = NULL;
    if (wa && wa[0] && !(wad = whatsapp_digits(wa))) {
        return rsre_yaml_fail(err, rsre_yaml_get(doc, m, "whatsapp_number"), RSRE_EINVALID,
                              "whatsapp_number: expected an E.164 number such as +15551234567");
    }
    if ((tg && rsre_operators_find_chat(ops, RSRE_CHAT_TELEGRAM, tg)) ||
        (wad && rsre_operators_find_chat(ops, RSRE_CHAT_WHATSAPP, wad))) {
        return rsre_yaml_fail(
            err, rsre_yaml_get(doc, m, tg ? "telegram_user_id" : "whatsapp_number"), RSRE_EEXIST,
            "%s: already mapped to another operator",
            tg && rsre_operators_find_chat(ops, RSRE_CHAT_TELEGRAM, tg) ? "telegram_user_id"
                                                                        : "whatsapp_number");
    }
    yaml_node_t *rn = rsre_yaml_get(doc, m, "roles");
    if (!rn || rn->type != YAML_SEQUENCE_NODE || rsre_yaml_len(rn) == 0) {
        return rsre_yaml_fail(err, rn ? rn : m, RSRE_EINVALID,
                              "roles: expected a non-empty list of viewer, operator, approver, "
                              "admin");
    }
    unsigned mask = 0;
    for (size_t i = 0; i < rsre_yaml_len(rn); i++) {
        yaml_node_t *r = rsre_yaml_item(doc, rn, i);
        enum rsre_role role;
        if (rsre_role_parse(rsre_yaml_str(r), &role) != 0) {
            return rsre_yaml_fail(err, r, RSRE_EINVALID,
                                  "roles: unknown role '%.32s' (viewer, operator, approver, admin)",
                                  rsre_yaml_str(r) ? rsre_yaml_str(r) : "?");
        }
        mask |= (unsigned)role;
    }
    struct rsre_operator *op = &ops->v[ops->n];
    op->id = copy_str(ops, id);
    op->name = copy_str(ops, name && name[0] ? name : id);
    op->telegram = tg ? copy_str(ops, tg) : NULL;
    op->whatsapp = wad ? copy_str(ops, wad) : NULL;
    if (!op->id || !op->name || (tg && !op->telegram) || (wad && !op->whatsapp)) {
        return -ENOMEM;
    }
    op->roles = mask;
    op->enabled = enabled;
    op->line = (int)m->start_mark.line + 1;
    ops->n++;
    return 0;
}

int rsre_operators_load(const char *yaml, size_t len, struct rsre_operators **out,
                        struct rsre_yerr *err) {
    if (!yaml || !out) {
        return -EINVAL;
    }
    if (err) {
        memset(err, 0, sizeof(*err));
    }
    if (len > RSRE_OPERATORS_FILE_MAX) {
        return rsre_yaml_fail(err, NULL, RSRE_ELIMIT, "operators file is %zu bytes, limit %u", len,
                              RSRE_OPERATORS_FILE_MAX);
    }
    yaml_document_t doc;
    int rc = rsre_yaml_load(yaml, len, &doc, err);
    if (rc) {
        return rc;
    }
    struct rsre_operators *ops = NULL;
    yaml_node_t *root = rsre_yaml_root(&doc);
    yaml_node_t *list = rsre_yaml_get(&doc, root, "operators");
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = rsre_yaml_fail(err, root, RSRE_EINVALID, "expected a mapping with 'operators:'");
        goto out;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        const char *ks = rsre_yaml_str(k);
        if (!ks || strcmp(ks, "operators") != 0) {
            rc = rsre_yaml_fail(err, k, RSRE_EINVALID, "unknown key '%.64s' (known: operators)",
                                ks ? ks : "?");
            goto out;
        }
    }
    if (!list || (list->type != YAML_SEQUENCE_NODE &&
                  !(list->type == YAML_SCALAR_NODE && !strcmp(rsre_yaml_str(list), "")))) {
        rc = rsre_yaml_fail(err, list ? list : root, RSRE_EINVALID,
                            "operators: expected a list of operators");
        goto out;
    }
    size_t n = rsre_yaml_len(list);
    if (n > RSRE_OPERATORS_MAX) {
        rc = rsre_yaml_fail(err, list, RSRE_ELIMIT, "operators: %zu entries, limit %d", n,
                            RSRE_OPERATORS_MAX);
        goto out;
    }
    if ((rc = rsre_operators_create(&ops))) {
        goto out;
    }
    ops->v = rsre_arena_alloc(ops->arena, (n ? n : 1) * sizeof(*ops->v));
    if (!ops->v) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = parse_entry(ops, &doc, rsre_yaml_item(&doc, list, i), err);
    }
out:
    yaml_document_delete(&doc);
    if (rc) {
        rsre_operators_destroy(ops);
        return rc;
    }
    *out = ops;
    return 0;
}

int rsre_operators_load_file(const char *path, struct rsre_operators **out, struct rsre_yerr *err) {
    if (!path || !out) {
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        rsre_yaml_fail(err, NULL, -e, "%.200s: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(RSRE_OPERATORS_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, RSRE_OPERATORS_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = -errno;
            rsre_yaml_fail(err, NULL, rc, "%.200s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
        if (len > RSRE_OPERATORS_FILE_MAX) {
            rc = rsre_yaml_fail(err, NULL, RSRE_ELIMIT, "%.200s: larger than %u bytes", path,
                                RSRE_OPERATORS_FILE_MAX);
            break;
        }
    }
    close(fd);
    if (rc == 0) {
        rc = rsre_operators_load(buf, len, out, err);
    }
    free(buf);
    return rc;
}
