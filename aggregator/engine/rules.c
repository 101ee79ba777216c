#include "engine/rules.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/error.h"
#include "common/yamldoc.h"
#include "engine/policy.h"

struct rsre_ruleset {
    const struct rsre_taxonomy *t;
    struct rsre_arena *arena;
    yaml_document_t **docs; /* operator rule strings point into these */
    size_t ndocs;
    struct rsre_rule **rules;
    size_t nrules, nbuiltin;
    /* applicable[incident][env]: enabled operator rules in load order. */
    const struct rsre_rule **applicable[RSRE_MAX_INCIDENTS][RSRE_ENV_COUNT];
    size_t napplicable[RSRE_MAX_INCIDENTS][RSRE_ENV_COUNT];
};

static const char *const mode_names[] = {"unset", "auto", "approval", "human_only", "deny"};

const char *rsre_mode_name(enum rsre_rule_mode m) {
    return (unsigned)m <= RSRE_MODE_DENY ? mode_names[m] : "?";
}

void rsre_rule_error_format(const struct rsre_rule_error *e, char *buf, size_t cap) {
    if (e->line > 0) {
        snprintf(buf, cap, "%s:%d:%d: %s%s%s", e->origin, e->line, e->col, e->field,
                 e->field[0] ? ": " : "", e->msg);
    } else {
        snprintf(buf, cap, "%s: %s%s%s", e->origin, e->field, e->field[0] ? ": " : "", e->msg);
    }
}

size_t rsre_ruleset_count(const struct rsre_ruleset *rs) {
    return rs->nrules;
}
const struct rsre_rule *rsre_ruleset_get(const struct rsre_ruleset *rs, size_t i) {
    return i < rs->nrules ? rs->rules[i] : NULL;
}
const struct rsre_rule *rsre_ruleset_find(const struct rsre_ruleset *rs, const char *id) {
    for (size_t i = 0; id && i < rs->nrules; i++) {
        if (strcmp(rs->rules[i]->id, id) == 0) {
            return rs->rules[i];
        }
    }
    return NULL;
}
const struct rsre_taxonomy *rsre_ruleset_taxonomy(const struct rsre_ruleset *rs) {
    return rs->t;
}

void rsre_ruleset_applicable(const struct rsre_ruleset *rs, const struct rsre_incident_def *inc,
                             enum rsre_env env, const struct rsre_rule *const **out, size_t *n) {
    if (!rs || !inc || inc->index >= RSRE_MAX_INCIDENTS || (unsigned)env >= RSRE_ENV_COUNT) {
        *out = NULL;
        *n = 0;
        return;
    }
    *out = rs->applicable[inc->index][env];
    *n = rs->napplicable[inc->index][env];
}

int rsre_rule_suppressed_at(const struct rsre_rule *r, long long t) {
    const long long limit = 4102444800LL * 1000; /* far beyond any real clock */
    t = t < -limit ? -limit : t > limit ? limit : t;
    long long days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int minute = (int)((t - days * 86400) / 60);
    int wday = (int)(((days % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday (Mon = 0) */
    for (size_t i = 0; i < r->nsuppress; i++) {
        const struct rsre_window *w = &r->suppress[i];
        if (w->from_min <= w->to_min) {
            if ((w->days & (1u << wday)) && minute >= w->from_min && minute < w->to_min) {
                return 1;
            }
        } else { /* wraps midnight: the part before midnight belongs to the listed day */
            int prev = (wday + 6) % 7;
            if (((w->days & (1u << wday)) && minute >= w->from_min) ||
                ((w->days & (1u << prev)) && minute < w->to_min)) {
                return 1;
            }
        }
    }
    return 0;
}

static void free_rule_exprs(struct rsre_rule *r) {
    if (r->builtin) {
        return; /* built-in rules borrow the taxonomy's compiled expressions */
    }
    rsre_expr_destroy(r->threshold);
    for (size_t i = 0; i < r->nescalations; i++) {
        rsre_expr_destroy(r->escalations[i].expr);
    }
}

void rsre_ruleset_destroy(struct rsre_ruleset *rs) {
    if (!rs) {
        return;
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        free_rule_exprs(rs->rules[i]);
    }
    for (size_t i = 0; i < rs->ndocs; i++) {
        yaml_document_delete(rs->docs[i]);
        free(rs->docs[i]);
    }
    for (size_t i = 0; i < RSRE_MAX_INCIDENTS; i++) {
        for (size_t e = 0; e < RSRE_ENV_COUNT; e++) {
            free(rs->applicable[i][e]);
        }
    }
    free(rs->docs);
    free(rs->rules);
    rsre_arena_destroy(rs->arena);
    free(rs);
}

static int rebuild_index(struct rsre_ruleset *rs) {
    for (size_t i = 0; i < rs->t->nincidents; i++) {
        for (unsigned e = 0; e < RSRE_ENV_COUNT; e++) {
            size_t n = 0;
            for (size_t k = rs->nbuiltin; k < rs->nrules; k++) {
                const struct rsre_rule *r = rs->rules[k];
                n += r->enabled && r->incident->index == i && (r->env_mask & (1u << e));
            }
            const struct rsre_rule **arr = NULL;
            if (n) {
                arr = malloc(n * sizeof(*arr));
                if (!arr) {
                    return -ENOMEM;
                }
                n = 0;
                for (size_t k = rs->nbuiltin; k < rs->nrules; k++) {
                    const struct rsre_rule *r = rs->rules[k];
                    if (r->enabled && r->incident->index == i && (r->env_mask & (1u << e))) {
                        arr[n++] = r;
                    }
                }
            }
            free(rs->applicable[i][e]);
            rs->applicable[i][e] = arr;
            rs->napplicable[i][e] = n;
        }
    }
    return 0;
}

static int push_rule(struct rsre_ruleset *rs, struct rsre_rule *r) {
    if (rs->nrules >= RSRE_RULES_MAX) {
        return RSRE_ELIMIT;
    }
    struct rsre_rule **nr = realloc(rs->rules, (rs->nrules + 1) * sizeof(*nr));
    if (!nr) {
        return -ENOMEM;
    }
    rs->rules = nr;
    rs->rules[rs->nrules++] = r;
    return 0;
}

int rsre_ruleset_create(const struct rsre_taxonomy *t, struct rsre_ruleset **out) {
    *out = NULL;
    struct rsre_ruleset *rs = calloc(1, sizeof(*rs));
    if (!rs || !(rs->arena = rsre_arena_create())) {
        free(rs);
        return -ENOMEM;
    }
    rs->t = t ? t : rsre_taxonomy_builtin();
    for (size_t i = 0; i < rs->t->nincidents; i++) {
        const struct rsre_incident_def *inc = &rs->t->incidents[i];
        struct rsre_rule *r = rsre_arena_alloc(rs->arena, sizeof(*r));
        size_t idlen = strlen(inc->id) + sizeof("builtin.");
        char *id = rsre_arena_alloc(rs->arena, idlen);
        if (!r || !id || push_rule(rs, r)) {
            rsre_ruleset_destroy(rs);
            return -ENOMEM;
        }
        snprintf(id, idlen, "builtin.%s", inc->id);
        r->id = id;
        r->name = inc->display_name;
        r->domain = inc->domain->id;
        r->owner = "engineering";
        r->origin = "built-in taxonomy";
        r->enabled = 1;
        r->builtin = 1;
        r->incident = inc;
        r->env_mask = (1u << RSRE_ENV_COUNT) - 1;
        r->signal_selector = "*";
        /* The entry condition is the first rule at the default severity; the rest escalate. */
        size_t entry = 0;
        for (size_t k = 0; k < inc->nseverity_rules; k++) {
            if (inc->severity_rules[k].severity == inc->default_severity) {
                entry = k;
                break;
            }
        }
        r->threshold_expression = inc->severity_rules[entry].when;
        r->threshold = inc->severity_rules[entry].expr;
        r->severity = inc->default_severity;
        for (size_t k = 0; k < inc->nseverity_rules && r->nescalations < RSRE_RULE_MAX_ESCALATIONS;
             k++) {
            if (k != entry) {
                r->escalations[r->nescalations++] = inc->severity_rules[k];
            }
        }
        static const char *const all_channels[] = {"telegram", "whatsapp", "inapp"};
        r->notification.channels = (struct rsre_strlist){all_channels, 3};
        r->notification.dedupe_seconds = rs->t->cooldown.duplicate_suppression;
        r->cooldown_seconds = -1;
        r->version = rs->t->version;
    }
    rs->nbuiltin = rs->nrules;
    *out = rs;
    return 0;
}

/* ---- operator rule loader ---- */

struct rl {
    struct rsre_ruleset *rs;
    yaml_document_t *doc;
    struct rsre_rule_error *err;
    char path[64]; /* field path prefix of the rule being read, e.g. "rules[2]." */
};

static int fail(struct rl *L, const yaml_node_t *at, int code, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));
static int fail(struct rl *L, const yaml_node_t *at, int code, const char *field, const char *fmt,
                ...) {
    if (L->err) {
        L->err->line = at ? (int)at->start_mark.line + 1 : 0;
        L->err->col = at ? (int)at->start_mark.column + 1 : 0;
        snprintf(L->err->field, sizeof(L->err->field), "%s%s", L->path, field);
        size_t fl = strlen(L->err->field);
        if (fl && L->err->field[fl - 1] == '.') {
            L->err->field[fl - 1] = '\0'; /* the error is about the whole entry */
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->err->msg, sizeof(L->err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Spec boundaries that hold for every key and value of a rule document. */
static const char *const secret_keys[] = {"password", "passwd", "secret", "token", "api_key",
                                          "apikey", "private_key", "privatekey", "credential",
                                          "bearer"};
static const char *const shell_keys[] = {"command", "commands", "cmd", "exec", "shell",
                                         "script", "entrypoint", "run", "args"};

static int looks_like_secret(const char *v) {
    if (strstr(v, "-----BEGIN") || strncmp(v, "ghp_", 4) == 0 || strncmp(v, "xoxb-", 5) == 0 ||
        strncmp(v, "xoxp-", 5) == 0 || strncasecmp(v, "bearer ", 7) == 0 ||
        strncmp(v, "EAAG", 4) == 0) {
        return 1;
    }
    if (strncmp(v, "AKIA", 4) == 0 && strlen(v) == 20) {
        return 1;
    }
    /* Telegram bot token: digits ':' 30+ url-safe characters. */
    const char *p = v;
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    if (p - v >= 6 && *p == ':') {
        size_t n = 0;
        for (p++; isalnum((unsigned char)*p) || *p == '_' || *p == '-'; p++) {
            n++;
        }
        if (n >= 30 && !*p) {
            return 1;
        }
    }
    return 0;
}

static int scan_boundaries(struct rl *L, yaml_node_t *n, int depth, const char *key_of) {
    if (!n) {
        return 0;
    }
    if (depth > 16) {
        return fail(L, n, RSRE_ELIMIT, "", "nesting deeper than 16 levels");
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        if (looks_like_secret(v)) {
            return fail(L, n, RSRE_EBOUNDARY, key_of,
                        "value looks like a secret; secret values cannot be put directly in "
                        "incident rules (reference channel credentials by file or environment)");
        }
        if (strstr(v, "$(") || strchr(v, '`')) {
            return fail(L, n, RSRE_EBOUNDARY, key_of,
                        "value looks like shell substitution; unrestricted shell command "
                        "definitions are not allowed in rules");
        }
        return 0;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        for (size_t i = 0; i < rsre_yaml_len(n); i++) {
            int rc = scan_boundaries(L, rsre_yaml_item(L->doc, n, i), depth + 1, key_of);
            if (rc) {
                return rc;
            }
        }
        return 0;
    }
    if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
            const char *key = rsre_yaml_str(k);
            if (!key) {
                return fail(L, k, RSRE_EINVALID, "", "mapping keys must be plain strings");
            }
            for (size_t i = 0; i < sizeof(secret_keys) / sizeof(*secret_keys); i++) {
                if (strcasestr(key, secret_keys[i])) {
                    return fail(L, k, RSRE_EBOUNDARY, key,
                                "secret values cannot be put directly in incident rules");
                }
            }
            for (size_t i = 0; i < sizeof(shell_keys) / sizeof(*shell_keys); i++) {
                if (strcasecmp(key, shell_keys[i]) == 0) {
                    return fail(L, k, RSRE_EBOUNDARY, key,
                                "unrestricted shell command definitions are not allowed in rules");
                }
            }
            int rc = scan_boundaries(L, yaml_document_get_node(L->doc, p->value), depth + 1, key);
            if (rc) {
                return rc;
            }
        }
    }
    return 0;
}

static int check_keys(struct rl *L, yaml_node_t *map, const char *const *allowed, size_t n) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
        const char *key = rsre_yaml_str(k);
        size_t i = 0;
        while (i < n && strcmp(allowed[i], key) != 0) {
            i++;
        }
        if (i == n) {
            return fail(L, k, RSRE_EINVALID, key, "unknown field");
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            if (!strcmp(rsre_yaml_str(yaml_document_get_node(L->doc, q->key)), key)) {
                return fail(L, k, RSRE_EINVALID, key, "field given twice");
            }
        }
    }
    return 0;
}

/* Converts a yamldoc error into a rule error for `field`. */
static int from_yerr(struct rl *L, int rc, const struct rsre_yerr *ye, const char *field) {
    if (L->err) {
        L->err->line = ye->line;
        L->err->col = ye->col;
        snprintf(L->err->field, sizeof(L->err->field), "%s%s", L->path, field);
        const char *m = ye->msg;
        size_t fl = strlen(field);
        if (!strncmp(m, field, fl) && !strncmp(m + fl, ": ", 2)) {
            m += fl + 2; /* the field is already named */
        }
        snprintf(L->err->msg, sizeof(L->err->msg), "%s", m);
    }
    return rc;
}

static int get_str(struct rl *L, yaml_node_t *m, const char *key, int required, size_t maxlen,
                   const char **out) {
    struct rsre_yerr ye;
    int rc = rsre_yaml_get_str(L->doc, m, key, out, &ye);
    if (rc == RSRE_ENOTFOUND) {
        return required ? fail(L, m, RSRE_EINVALID, key, "required field is missing") : 0;
    }
    if (rc) {
        return from_yerr(L, rc, &ye, key);
    }
    if (required && !**out) {
        return fail(L, rsre_yaml_get(L->doc, m, key), RSRE_EINVALID, key, "must not be empty");
    }
    if (strlen(*out) > maxlen) {
        return fail(L, rsre_yaml_get(L->doc, m, key), RSRE_ELIMIT, key, "longer than %zu bytes",
                    maxlen);
    }
    return 0;
}

static int check_rule_id(struct rl *L, yaml_node_t *at, const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 63 || !(islower((unsigned char)id[0]) || isdigit((unsigned char)id[0]))) {
        return fail(L, at, RSRE_EINVALID, "id",
                    "'%.64s' must be 1-63 characters of a-z 0-9 . _ - starting with a letter or "
                    "digit",
                    id);
    }
    for (const char *p = id; *p; p++) {
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '.' ||
              *p == '_' || *p == '-')) {
            return fail(L, at, RSRE_EINVALID, "id", "'%.64s' has a character outside a-z 0-9 . _ -",
                        id);
        }
    }
    if (!strncmp(id, "builtin.", 8)) {
        return fail(L, at, RSRE_EBOUNDARY, "id",
                    "ids starting with 'builtin.' are reserved for built-in rules; clone it under "
                    "a new id");
    }
    return 0;
}

static int compile_expr(struct rl *L, yaml_node_t *at, const char *field, const char *src,
                        struct rsre_expr **out) {
    struct rsre_expr_error e;
    int rc = rsre_expr_compile(src, strlen(src), rsre_taxonomy_signal_slot, (void *)L->rs->t, out,
                               &e);
    if (rc) {
        /* Point at the expression's own position inside the YAML scalar when it is on one
         * line; otherwise report the scalar's start and the expression's line/col. */
        yaml_node_t pos = *at;
        if (e.line == 1 && at->start_mark.line == at->end_mark.line) {
            int quoted = at->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                         at->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
            pos.start_mark.column += (size_t)(e.col - 1 + quoted);
            return fail(L, &pos, rc, field, "%s", e.msg);
        }
        return fail(L, at, rc, field, "expression line %d, col %d: %s", e.line, e.col, e.msg);
    }
    return 0;
}

static int env_scope(struct rl *L, yaml_node_t *m, unsigned *mask) {
    yaml_node_t *n = rsre_yaml_get(L->doc, m, "environment_scope");
    *mask = 0;
    if (!n) {
        return fail(L, m, RSRE_EINVALID, "environment_scope",
                    "required field is missing (a list of demo, staging, production)");
    }
    if (rsre_yaml_str(n) && !strcmp(rsre_yaml_str(n), "all")) {
        *mask = (1u << RSRE_ENV_COUNT) - 1;
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE || rsre_yaml_len(n) == 0) {
        return fail(L, n, RSRE_EINVALID, "environment_scope",
                    "expected a non-empty list of demo, staging, production (or 'all')");
    }
    for (size_t i = 0; i < rsre_yaml_len(n); i++) {
        yaml_node_t *it = rsre_yaml_item(L->doc, n, i);
        enum rsre_env e;
        if (rsre_env_parse(rsre_yaml_str(it), &e)) {
            return fail(L, it, RSRE_EINVALID, "environment_scope",
                        "unknown environment '%.40s' (demo, staging, production)",
                        rsre_yaml_str(it) ? rsre_yaml_str(it) : "?");
        }
        *mask |= 1u << e;
    }
    return 0;
}

static int str_list(struct rl *L, yaml_node_t *n, const char *field, size_t max, size_t maxlen,
                    struct rsre_strlist *out) {
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail(L, n, RSRE_EINVALID, field, "expected a list");
    }
    size_t len = rsre_yaml_len(n);
    if (len > max) {
        return fail(L, n, RSRE_ELIMIT, field, "more than %zu entries", max);
    }
    const char **items = rsre_arena_alloc(L->rs->arena, (len ? len : 1) * sizeof(char *));
    if (!items) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rsre_yaml_item(L->doc, n, i);
        items[i] = rsre_yaml_str(it);
        if (!items[i] || !*items[i]) {
            return fail(L, it, RSRE_EINVALID, field, "entry %zu must be a non-empty string", i);
        }
        if (strlen(items[i]) > maxlen) {
            return fail(L, it, RSRE_ELIMIT, field, "entry %zu is longer than %zu bytes", i,
                        maxlen);
        }
    }
    out->items = items;
    out->n = len;
    return 0;
}

static int load_notification(struct rl *L, yaml_node_t *m, struct rsre_rule *r) {
    static const char *const keys[] = {"channels", "route", "dedupe_seconds"};
    static const char *const channels[] = {"telegram", "whatsapp", "inapp"};
    r->notification.dedupe_seconds = L->rs->t->cooldown.duplicate_suppression;
    yaml_node_t *n = rsre_yaml_get(L->doc, m, "notification_policy");
    if (!n) {
        r->notification.channels = (struct rsre_strlist){channels, 3};
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        return fail(L, n, RSRE_EINVALID, "notification_policy", "expected a mapping");
    }
    int rc;
    snprintf(L->path + strlen(L->path), sizeof(L->path) - strlen(L->path), "notification_policy.");
    if ((rc = check_keys(L, n, keys, 3))) {
        return rc;
    }
    yaml_node_t *ch = rsre_yaml_get(L->doc, n, "channels");
    if (!ch) {
        return fail(L, n, RSRE_EINVALID, "channels", "required field is missing");
    }
    if ((rc = str_list(L, ch, "channels", 3, 16, &r->notification.channels))) {
        return rc;
    }
    if (r->notification.channels.n == 0) {
        return fail(L, ch, RSRE_EINVALID, "channels",
                    "must name at least one channel (telegram, whatsapp, inapp)");
    }
    for (size_t i = 0; i < r->notification.channels.n; i++) {
        const char *c = r->notification.channels.items[i];
        if (strcmp(c, "telegram") && strcmp(c, "whatsapp") && strcmp(c, "inapp")) {
            return fail(L, rsre_yaml_item(L->doc, ch, i), RSRE_EINVALID, "channels",
                        "unknown channel '%.32s' (telegram, whatsapp, inapp)", c);
        }
    }
    if ((rc = get_str(L, n, "route", 0, 128, &r->notification.route))) {
        return rc;
    }
    struct rsre_yerr ye;
    rc = rsre_yaml_get_i64(L->doc, n, "dedupe_seconds", 60, 86400, &r->notification.dedupe_seconds,
                           &ye);
    if (rc && rc != RSRE_ENOTFOUND) {
        return from_yerr(L, rc, &ye, "dedupe_seconds");
    }
    *strstr(L->path, "notification_policy.") = '\0';
    return 0;
}

static int valid_target(const char *s) {
    for (const char *p = s; *p; p++) {
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' ||
              *p == '.' || *p == '/' || *p == '_')) {
            return 0;
        }
    }
    const char *slash = strchr(s, '/');
    return *s && *s != '/' && (!slash || (slash[1] && !strchr(slash + 1, '/')));
}

static int load_profile(struct rl *L, yaml_node_t *m, struct rsre_rule *r) {
    static const char *const keys[] = {"action", "mode", "targets", "quorum"};
    yaml_node_t *seq = rsre_yaml_get(L->doc, m, "allowed_action_profile");
    if (!seq) {
        return 0;
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        return fail(L, seq, RSRE_EINVALID, "allowed_action_profile", "expected a list");
    }
    if (rsre_yaml_len(seq) > RSRE_RULE_MAX_PROFILE) {
        return fail(L, seq, RSRE_ELIMIT, "allowed_action_profile", "more than %d entries",
                    RSRE_RULE_MAX_PROFILE);
    }
    const struct rsre_incident_def *inc = r->incident;
    size_t base = strlen(L->path);
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *e = rsre_yaml_item(L->doc, seq, i);
        struct rsre_action_profile *p = &r->profile[r->nprofile];
        snprintf(L->path + base, sizeof(L->path) - base, "allowed_action_profile[%zu].", i);
        if (e->type != YAML_MAPPING_NODE) {
            return fail(L, e, RSRE_EINVALID, "", "expected a mapping with action and mode");
        }
        int rc;
        const char *action, *mode = NULL;
        if ((rc = check_keys(L, e, keys, 4)) || (rc = get_str(L, e, "action", 1, 64, &action)) ||
            (rc = get_str(L, e, "mode", 0, 16, &mode))) {
            return rc;
        }
        yaml_node_t *an = rsre_yaml_get(L->doc, e, "action");
        if (!(p->action = rsre_taxonomy_action(L->rs->t, action))) {
            return fail(L, an, RSRE_EINVALID, "action", "unknown action '%.64s'", action);
        }
        const struct rsre_action_def *a = p->action;
        enum rsre_binding bind = (enum rsre_binding)inc->binding[a->index];
        if (bind == RSRE_BIND_NONE) {
            return fail(L, an, RSRE_EBOUNDARY, "action",
                        "'%s' is not in the plan of incident class %s; operators cannot add "
                        "actions to a class, only tune the ones it has",
                        a->id, inc->id);
        }
        for (size_t k = 0; k < r->nprofile; k++) {
            if (r->profile[k].action == a) {
                return fail(L, an, RSRE_EINVALID, "action", "'%s' is listed twice", a->id);
            }
        }
        yaml_node_t *mn = rsre_yaml_get(L->doc, e, "mode");
        if (mode) {
            if (!strcmp(mode, "auto")) {
                p->mode = RSRE_MODE_AUTO;
            } else if (!strcmp(mode, "approval")) {
                p->mode = RSRE_MODE_APPROVAL;
            } else if (!strcmp(mode, "human_only")) {
                p->mode = RSRE_MODE_HUMAN;
            } else if (!strcmp(mode, "deny")) {
                p->mode = RSRE_MODE_DENY;
            } else {
                return fail(L, mn, RSRE_EINVALID, "mode",
                            "unknown mode '%.16s' (auto, approval, human_only, deny)", mode);
            }
        }
        if (p->mode == RSRE_MODE_AUTO) {
            if (a->human_only || bind == RSRE_BIND_HUMAN) {
                return fail(L, mn, RSRE_EBOUNDARY, "mode",
                            "human-only action class cannot be made auto ('%s')", a->id);
            }
            if (a->cls == RSRE_CLASS_DISRUPTIVE || a->cls == RSRE_CLASS_RECOVER) {
                return fail(L, mn, RSRE_EBOUNDARY, "mode",
                            "%s action '%s' cannot be made auto-allowed (destructive and "
                            "recovery actions always need approval)",
                            rsre_class_name(a->cls), a->id);
            }
            if (a->mutates_config || a->helm || a->oci) {
                return fail(L, mn, RSRE_EBOUNDARY, "mode",
                            "'%s' changes configuration, Helm or OCI state and cannot be made auto",
                            a->id);
            }
            if (bind == RSRE_BIND_APPROVAL) {
                return fail(L, mn, RSRE_EBOUNDARY, "mode",
                            "'%s' is approval-required for %s and cannot be made auto", a->id,
                            inc->id);
            }
            if (a->cls == RSRE_CLASS_CONTAIN && (r->env_mask & (1u << RSRE_ENV_PRODUCTION)) &&
                !(a->auto_envs & (1u << RSRE_ENV_PRODUCTION))) {
                return fail(L, mn, RSRE_EBOUNDARY, "mode",
                            "'%s' cannot be made auto in production: production runs alone only "
                            "clearly safe idempotent actions (limit environment_scope to demo "
                            "and staging)",
                            a->id);
            }
        }
        if (a->human_only && p->mode != RSRE_MODE_UNSET && p->mode != RSRE_MODE_HUMAN &&
            p->mode != RSRE_MODE_DENY) {
            return fail(L, mn, RSRE_EBOUNDARY, "mode",
                        "human-only action '%s' can only stay human_only or be denied", a->id);
        }
        yaml_node_t *tn = rsre_yaml_get(L->doc, e, "targets");
        if (tn) {
            if (!a->family) {
                return fail(L, tn, RSRE_EBOUNDARY, "targets",
                            "'%s' is not in a pre-approved action family; its targets cannot "
                            "be allowlisted",
                            a->id);
            }
            if ((rc = str_list(L, tn, "targets", RSRE_RULE_MAX_TARGETS, RSRE_RULE_MAX_TARGET_LEN,
                               &p->targets))) {
                return rc;
            }
            for (size_t k = 0; k < p->targets.n; k++) {
                const char *tg = p->targets.items[k];
                yaml_node_t *at = rsre_yaml_item(L->doc, tn, k);
                if (!valid_target(tg)) {
                    return fail(L, at, RSRE_EINVALID, "targets",
                                "'%.64s' must be a concrete resource 'namespace/name' or 'name' "
                                "(lowercase, no wildcards)",
                                tg);
                }
                const struct rsre_never_def *nv = rsre_policy_never_match(L->rs->t, a, tg);
                if (nv) {
                    return fail(L, at, RSRE_EBOUNDARY, "targets",
                                "'%.64s' is on the never-auto-contain list (%s)", tg,
                                nv->description);
                }
            }
        }
        long long q = 0;
        struct rsre_yerr ye;
        rc = rsre_yaml_get_i64(L->doc, e, "quorum", 1, RSRE_QUORUM_MAX, &q, &ye);
        if (rc && rc != RSRE_ENOTFOUND) {
            return from_yerr(L, rc, &ye, "quorum");
        }
        p->quorum = (unsigned)q;
        if (p->mode == RSRE_MODE_UNSET && !tn && !q) {
            return fail(L, e, RSRE_EINVALID, "", "entry changes nothing (give mode, targets or "
                                                 "quorum)");
        }
        r->nprofile++;
    }
    L->path[base] = '\0';
    return 0;
}

static int parse_hhmm(const char *s, int *out) {
    if (!s || strlen(s) != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
        s[2] != ':' || !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4])) {
        return -1;
    }
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0)) {
        return -1;
    }
    *out = h * 60 + m;
    return 0;
}

static int load_schedule(struct rl *L, yaml_node_t *m, struct rsre_rule *r) {
    static const char *const keys[] = {"days", "from", "to"};
    static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    yaml_node_t *seq = rsre_yaml_get(L->doc, m, "suppression_schedule");
    if (!seq) {
        return 0;
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        return fail(L, seq, RSRE_EINVALID, "suppression_schedule",
                    "expected a list of {days, from, to} windows");
    }
    if (rsre_yaml_len(seq) > RSRE_RULE_MAX_WINDOWS) {
        return fail(L, seq, RSRE_ELIMIT, "suppression_schedule", "more than %d windows",
                    RSRE_RULE_MAX_WINDOWS);
    }
    size_t base = strlen(L->path);
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *w = rsre_yaml_item(L->doc, seq, i);
        struct rsre_window *win = &r->suppress[r->nsuppress];
        snprintf(L->path + base, sizeof(L->path) - base, "suppression_schedule[%zu].", i);
        if (w->type != YAML_MAPPING_NODE) {
            return fail(L, w, RSRE_EINVALID, "", "expected a mapping {days, from, to}");
        }
        int rc;
        const char *from, *to;
        if ((rc = check_keys(L, w, keys, 3)) || (rc = get_str(L, w, "from", 1, 8, &from)) ||
            (rc = get_str(L, w, "to", 1, 8, &to))) {
            return rc;
        }
        if (parse_hhmm(from, &win->from_min)) {
            return fail(L, rsre_yaml_get(L->doc, w, "from"), RSRE_EINVALID, "from",
                        "'%.8s' is not HH:MM", from);
        }
        if (parse_hhmm(to, &win->to_min) || win->to_min == win->from_min) {
            return fail(L, rsre_yaml_get(L->doc, w, "to"), RSRE_EINVALID, "to",
                        "'%.8s' is not HH:MM different from 'from'", to);
        }
        yaml_node_t *dn = rsre_yaml_get(L->doc, w, "days");
        if (!dn) {
            win->days = 0x7f;
        } else if (dn->type != YAML_SEQUENCE_NODE || !rsre_yaml_len(dn) || rsre_yaml_len(dn) > 7) {
            return fail(L, dn, RSRE_EINVALID, "days", "expected a list of mon..sun");
        } else {
            for (size_t k = 0; k < rsre_yaml_len(dn); k++) {
                const char *d = rsre_yaml_str(rsre_yaml_item(L->doc, dn, k));
                size_t j = 0;
                while (j < 7 && !(d && !strcmp(d, days[j]))) {
                    j++;
                }
                if (j == 7) {
                    return fail(L, rsre_yaml_item(L->doc, dn, k), RSRE_EINVALID, "days",
                                "unknown day '%.8s' (mon..sun)", d ? d : "?");
                }
                win->days |= 1u << j;
            }
        }
        r->nsuppress++;
    }
    L->path[base] = '\0';
    return 0;
}

static int load_escalations(struct rl *L, yaml_node_t *m, struct rsre_rule *r) {
    static const char *const keys[] = {"severity", "when", "text"};
    yaml_node_t *seq = rsre_yaml_get(L->doc, m, "severity_escalations");
    if (!seq) {
        return 0;
    }
    if (seq->type != YAML_SEQUENCE_NODE || rsre_yaml_len(seq) > RSRE_RULE_MAX_ESCALATIONS) {
        return fail(L, seq, RSRE_EINVALID, "severity_escalations",
                    "expected a list of at most %d {severity, when}", RSRE_RULE_MAX_ESCALATIONS);
    }
    size_t base = strlen(L->path);
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *e = rsre_yaml_item(L->doc, seq, i);
        struct rsre_severity_rule *sr = &r->escalations[r->nescalations];
        snprintf(L->path + base, sizeof(L->path) - base, "severity_escalations[%zu].", i);
        if (e->type != YAML_MAPPING_NODE) {
            return fail(L, e, RSRE_EINVALID, "", "expected a mapping {severity, when}");
        }
        int rc;
        const char *sev;
        sr->text = NULL;
        if ((rc = check_keys(L, e, keys, 3)) || (rc = get_str(L, e, "severity", 1, 16, &sev)) ||
            (rc = get_str(L, e, "when", 1, RSRE_EXPR_MAX_SOURCE, &sr->when)) ||
            (rc = get_str(L, e, "text", 0, 256, &sr->text))) {
            return rc;
        }
        if (rsre_severity_parse(sev, &sr->severity) || sr->severity < r->severity) {
            return fail(L, rsre_yaml_get(L->doc, e, "severity"), RSRE_EINVALID, "severity",
                        "'%.16s' must be a severity at or above the rule's (%s)", sev,
                        rsre_severity_name(r->severity));
        }
        if (!sr->text) {
            sr->text = sr->when;
        }
        if ((rc = compile_expr(L, rsre_yaml_get(L->doc, e, "when"), "when", sr->when, &sr->expr))) {
            return rc;
        }
        r->nescalations++;
    }
    L->path[base] = '\0';
    return 0;
}

static const char *const rule_keys[] = {
    "id",          "name",           "enabled",       "domain",
    "incident_type", "environment_scope", "signal_selector", "threshold_expression",
    "severity",    "severity_escalations", "notification_policy", "allowed_action_profile",
    "cooldown_seconds", "suppression_schedule", "owner", "version"};

static int load_rule(struct rl *L, yaml_node_t *m, struct rsre_rule *r) {
    int rc;
    struct rsre_yerr ye;
    const char *inc_id, *sev;
    r->cooldown_seconds = -1;
    r->enabled = 1;
    if (m->type != YAML_MAPPING_NODE) {
        return fail(L, m, RSRE_EINVALID, "", "a rule must be a mapping");
    }
    r->line = (int)m->start_mark.line + 1;
    if ((rc = scan_boundaries(L, m, 0, "")) ||
        (rc = check_keys(L, m, rule_keys, sizeof(rule_keys) / sizeof(*rule_keys))) ||
        (rc = get_str(L, m, "id", 1, 63, &r->id)) ||
        (rc = check_rule_id(L, rsre_yaml_get(L->doc, m, "id"), r->id)) ||
        (rc = get_str(L, m, "name", 1, 128, &r->name)) ||
        (rc = get_str(L, m, "domain", 1, 64, &r->domain)) ||
        (rc = get_str(L, m, "incident_type", 1, 64, &inc_id)) ||
        (rc = get_str(L, m, "owner", 1, 128, &r->owner)) ||
        (rc = get_str(L, m, "severity", 1, 16, &sev)) ||
        (rc = get_str(L, m, "threshold_expression", 1, RSRE_EXPR_MAX_SOURCE,
                      &r->threshold_expression))) {
        return rc;
    }
    rc = rsre_yaml_get_bool(L->doc, m, "enabled", &r->enabled, &ye);
    if (rc && rc != RSRE_ENOTFOUND) {
        return from_yerr(L, rc, &ye, "enabled");
    }
    if (!(r->incident = rsre_taxonomy_incident(L->rs->t, inc_id))) {
        return fail(L, rsre_yaml_get(L->doc, m, "incident_type"), RSRE_EINVALID, "incident_type",
                    "unknown incident type '%.64s'", inc_id);
    }
    if (!rsre_taxonomy_domain(L->rs->t, r->domain)) {
        return fail(L, rsre_yaml_get(L->doc, m, "domain"), RSRE_EINVALID, "domain",
                    "unknown domain '%.64s'", r->domain);
    }
    if (strcmp(r->domain, r->incident->domain->id) != 0) {
        return fail(L, rsre_yaml_get(L->doc, m, "domain"), RSRE_EINVALID, "domain",
                    "'%s' does not match incident type %s, which is in domain %s", r->domain,
                    r->incident->id, r->incident->domain->id);
    }
    if (rsre_severity_parse(sev, &r->severity)) {
        return fail(L, rsre_yaml_get(L->doc, m, "severity"), RSRE_EINVALID, "severity",
                    "unknown severity '%.16s' (info, warning, critical)", sev);
    }
    rc = rsre_yaml_get_i64(L->doc, m, "version", 1, 1000000000, &r->version, &ye);
    if (rc == RSRE_ENOTFOUND) {
        return fail(L, m, RSRE_EINVALID, "version", "required field is missing");
    }
    if (rc) {
        return from_yerr(L, rc, &ye, "version");
    }
    r->signal_selector = "*";
    if ((rc = get_str(L, m, "signal_selector", 0, 256, &r->signal_selector))) {
        return rc;
    }
    rc = rsre_yaml_get_i64(L->doc, m, "cooldown_seconds", 0, 7LL * 86400, &r->cooldown_seconds,
                           &ye);
    if (rc && rc != RSRE_ENOTFOUND) {
        return from_yerr(L, rc, &ye, "cooldown_seconds");
    }
    if (rc == 0 && r->cooldown_seconds < RSRE_COOLDOWN_FLOOR) {
        return fail(L, rsre_yaml_get(L->doc, m, "cooldown_seconds"), RSRE_EBOUNDARY,
                    "cooldown_seconds",
                    "%lld is below the floor of %ds (the observation polling interval)",
                    r->cooldown_seconds, RSRE_COOLDOWN_FLOOR);
    }
    if ((rc = env_scope(L, m, &r->env_mask)) || (rc = load_notification(L, m, r)) ||
        (rc = load_profile(L, m, r)) || (rc = load_schedule(L, m, r))) {
        return rc;
    }
    if ((rc = compile_expr(L, rsre_yaml_get(L->doc, m, "threshold_expression"),
                           "threshold_expression", r->threshold_expression, &r->threshold))) {
        return rc;
    }
    return load_escalations(L, m, r);
}

int rsre_ruleset_add_yaml(struct rsre_ruleset *rs, const char *origin, const char *yaml,
                          size_t len, struct rsre_rule_error *err) {
    struct rsre_rule_error dummy;
    if (!err) {
        err = &dummy;
    }
    memset(err, 0, sizeof(*err));
    snprintf(err->origin, sizeof(err->origin), "%s", origin ? origin : "<input>");
    if (len > RSRE_RULE_MAX_FILE) {
        snprintf(err->msg, sizeof(err->msg), "rule file is %zu bytes, limit is %u", len,
                 RSRE_RULE_MAX_FILE);
        return RSRE_ELIMIT;
    }
    yaml_document_t *doc = calloc(1, sizeof(*doc));
    if (!doc) {
        return -ENOMEM;
    }
    struct rsre_yerr ye = {0};
    int rc = rsre_yaml_load(yaml, len, doc, &ye);
    if (rc) {
        free(doc);
        err->line = ye.line;
        err->col = ye.col;
        snprintf(err->msg, sizeof(err->msg), "%s", ye.msg);
        return rc;
    }
    struct rl L = {.rs = rs, .doc = doc, .err = err};
    yaml_node_t *root = rsre_yaml_root(doc);
    yaml_node_t *list = NULL;
    size_t count = 1;
    if (root->type == YAML_MAPPING_NODE && (list = rsre_yaml_get(doc, root, "rules"))) {
        if (root->data.mapping.pairs.top - root->data.mapping.pairs.start != 1) {
            rc = fail(&L, root, RSRE_EINVALID, "", "a file with 'rules:' may hold nothing else");
        } else if (list->type != YAML_SEQUENCE_NODE || rsre_yaml_len(list) == 0) {
            rc = fail(&L, list, RSRE_EINVALID, "rules", "expected a non-empty list of rules");
        }
        count = rsre_yaml_len(list);
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = fail(&L, root, RSRE_EINVALID, "", "expected a rule mapping or 'rules:' list");
    }
    if (!rc && rs->nrules + count > RSRE_RULES_MAX) {
        rc = fail(&L, root, RSRE_ELIMIT, "", "more than %d rules", RSRE_RULES_MAX);
    }
    size_t first = rs->nrules;
    for (size_t i = 0; !rc && i < count; i++) {
        yaml_node_t *m = list ? rsre_yaml_item(doc, list, i) : root;
        struct rsre_rule *r = rsre_arena_alloc(rs->arena, sizeof(*r));
        if (!r) {
            rc = -ENOMEM;
            break;
        }
        r->origin = err->origin[0] ? rsre_arena_strndup(rs->arena, err->origin,
                                                        strlen(err->origin))
                                   : "<input>";
        if (list) {
            snprintf(L.path, sizeof(L.path), "rules[%zu].", i);
        }
        rc = load_rule(&L, m, r);
        if (!rc && rsre_ruleset_find(rs, r->id)) {
            rc = fail(&L, rsre_yaml_get(doc, m, "id"), RSRE_EEXIST, "id",
                      "a rule with id '%s' already exists", r->id);
        }
        if (!rc) {
            rc = push_rule(rs, r);
        }
        if (rc) {
            free_rule_exprs(r);
        }
    }
    if (!rc) {
        yaml_document_t **nd = realloc(rs->docs, (rs->ndocs + 1) * sizeof(*nd));
        if (!nd) {
            rc = -ENOMEM;
        } else {
            rs->docs = nd;
            rs->docs[rs->ndocs++] = doc;
            rc = rebuild_index(rs);
            if (rc) {
                rs->ndocs--;
            }
        }
    }
    if (rc) {
        for (size_t i = first; i < rs->nrules; i++) {
            free_rule_exprs(rs->rules[i]);
        }
        rs->nrules = first;
        rebuild_index(rs);
        yaml_document_delete(doc);
        free(doc);
        if (rc == -ENOMEM && !err->msg[0]) {
            snprintf(err->msg, sizeof(err->msg), "out of memory");
        }
    }
    return rc;
}

int rsre_ruleset_add_file(struct rsre_ruleset *rs, const char *path, struct rsre_rule_error *err) {
    struct rsre_rule_error dummy;
    if (!err) {
        err = &dummy;
    }
    memset(err, 0, sizeof(*err));
    snprintf(err->origin, sizeof(err->origin), "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err->msg, sizeof(err->msg), "cannot open: %s", strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err->msg, sizeof(err->msg), "not a regular file");
        return -EINVAL;
    }
    if (st.st_size > (off_t)RSRE_RULE_MAX_FILE) {
        close(fd);
        snprintf(err->msg, sizeof(err->msg), "file is %lld bytes, limit is %u",
                 (long long)st.st_size, RSRE_RULE_MAX_FILE);
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
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    int rc = rsre_ruleset_add_yaml(rs, path, buf, got, err);
    free(buf);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rsre_ruleset_add_dir(struct rsre_ruleset *rs, const char *dir, struct rsre_rule_error *err) {
    struct rsre_rule_error dummy;
    if (!err) {
        err = &dummy;
    }
    memset(err, 0, sizeof(*err));
    snprintf(err->origin, sizeof(err->origin), "%s", dir);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err->msg, sizeof(err->msg), "cannot open directory: %s", strerror(e));
        return -e;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' ||
            !((l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) ||
              (l > 4 && !strcmp(de->d_name + l - 4, ".yml")))) {
            continue;
        }
        char **nn = realloc(names, (n + 1) * sizeof(*nn));
        if (!nn || !(nn[n] = strdup(de->d_name))) {
            names = nn ? nn : names;
            rc = -ENOMEM;
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (!rc && n) { /* names is NULL for an empty directory; qsort(NULL, ...) is undefined */
        qsort(names, n, sizeof(*names), cmp_str);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        rc = rsre_ruleset_add_file(rs, path, err);
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}
