/*
 * Rule edits over the admin API (docs/api.md "Rules"): clone, enable/disable per environment,
 * PATCH of thresholds and routing, and a test of a rule's expressions against the evidence
 * stored in LMDB.
 *
 * An edit never writes YAML by hand: the latest stored version is read into a JSON tree
 * (yaml_to_json), the edit changes that tree, and the result is serialised as JSON — which is
 * YAML (flow style) — and handed to the very same path as a created rule (rsre__rule_commit in
 * rules_api.c): the rules loader validates it alone and against every other current rule, so
 * an edit that crosses an operator boundary (a cooldown under its floor, auto for a disruptive
 * action, a secret in a route, ...) is refused with the loader's message and the field it
 * names; nothing is stored then. A committed edit is the next version of the rule with an
 * audit record "rule change" naming who, what (the change and its fields) and why (the
 * request's mandatory comment); the daemon is told (rules_changed) and reloads the engine.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/yamldoc.h"
#include "engine/expr.h"
#include "engine/rules.h"
#include "http/api_internal.h"

#define COMMENT_MAX 256
#define TEST_INCIDENTS_DEFAULT 20
#define TEST_INCIDENTS_MAX 200
#define TEST_EVIDENCE_MAX 5000 /* evidence records evaluated per request */
#define TEST_MATCHES_MAX 200   /* matches listed in the answer */

/* ---- YAML (the stored text) to a JSON tree ------------------------------------------------- */

static int plain_integer(const char *s) {
    const char *p = s + (*s == '-');
    if (!*p || strlen(p) > 18) {
        return 0;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
    }
    return 1;
}

/* A scalar keeps its text, except plain integers and plain true/false (so that the JSON a
 * person reads looks like the YAML they wrote); the loader reads either form the same way. */
static json_t *node_json(yaml_document_t *doc, yaml_node_t *n, int depth) {
    if (!n || depth > 32) {
        return NULL;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = rsre_yaml_str(n);
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            if (plain_integer(s)) {
                return json_integer(strtoll(s, NULL, 10));
            }
            if (!strcmp(s, "true") || !strcmp(s, "false")) {
                return json_boolean(s[0] == 't');
            }
        }
        return json_string(s);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < rsre_yaml_len(n); i++) {
            json_t *v = node_json(doc, rsre_yaml_item(doc, n, i), depth + 1);
            if (!v || json_array_append_new(a, v)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    if (n->type == YAML_MAPPING_NODE) {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top;
             p++) {
            const char *k = rsre_yaml_str(yaml_document_get_node(doc, p->key));
            json_t *v = node_json(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (!k || !v || json_object_set_new(o, k, v)) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    return NULL;
}

/* The one rule of a stored version as a JSON object (NULL when it cannot be read). */
static json_t *yaml_to_json(const char *text) {
    yaml_document_t doc;
    struct rsre_yerr ye;
    if (rsre_yaml_load(text, strlen(text), &doc, &ye)) {
        return NULL;
    }
    yaml_node_t *root = rsre_yaml_root(&doc);
    yaml_node_t *list = rsre_yaml_get(&doc, root, "rules");
    if (list && rsre_yaml_len(list) == 1) {
        root = rsre_yaml_item(&doc, list, 0);
    } else if (list) {
        root = NULL;
    }
    json_t *j = node_json(&doc, root, 0);
    yaml_document_delete(&doc);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* ---- request pieces ------------------------------------------------------------------------ */

/* The mandatory "comment" (why): 1..COMMENT_MAX bytes, no NUL. */
static int need_comment(struct api_call *c, const char **out) {
    json_t *v = json_object_get(c->json, "comment");
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > COMMENT_MAX ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return rsre__api_fail(c, 400, "comment",
                              "comment is required: why this change (1..%d bytes)", COMMENT_MAX);
    }
    *out = json_string_value(v);
    return 0;
}

static int is_builtin_id(const char *id) {
    return !strncmp(id, "builtin.", 8);
}

/* The latest stored version of `id` as JSON (404 when there is none, 409 for a built-in). */
static int load_rule_json(struct api_call *c, const char *id, json_t **out, uint32_t *version) {
    if (is_builtin_id(id)) {
        return rsre__api_fail(c, 409, NULL,
                              "%s is a built-in rule and cannot be edited; clone it under a new "
                              "id (POST /api/v1/rules/%s/clone) and edit the clone",
                              id, id);
    }
    rsre_store_rule *r = NULL;
    int rc = rsre__rule_latest(c, id, &r);
    if (rc) {
        return c->status;
    }
    *version = r->version;
    *out = yaml_to_json(r->yaml ? r->yaml : "");
    rsre_store_rule_free(r);
    if (!*out) {
        return rsre__api_fail(c, 500, NULL, "stored rule %s v%u cannot be read", id, *version);
    }
    return 0;
}

/* Serialises `rule` (the next version of it) and commits it through the create path. */
static int commit_json(struct api_call *c, const char *id, json_t *rule, uint32_t prev,
                       const char *change, json_t *fields, const char *comment,
                       const char *cloned_from) {
    json_object_set_new(rule, "version", json_integer((json_int_t)prev + 1));
    char *text = json_dumps(rule, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) {
        json_decref(fields);
        return rsre__api_fail(c, 500, NULL, "out of memory");
    }
    struct rsre__rule_change ch = {.expect_id = id,
                                   .change = change,
                                   .fields = fields,
                                   .comment = comment,
                                   .cloned_from = cloned_from};
    int rc = rsre__rule_commit(c, text, strlen(text), &ch);
    free(text);
    json_decref(fields);
    return rc;
}

/* ---- PATCH /api/v1/rules/{id} -------------------------------------------------------------- */

/* The fields a PATCH may set (null removes an optional one); everything else is refused here,
 * and every value is then checked by the loader with the rest of the rule. */
static const struct {
    const char *field;
    int removable;
} patchable[] = {
    {"threshold_expression", 0},
    {"severity", 0},
    {"severity_escalations", 1},
    {"notification_policy", 1},
    {"cooldown_seconds", 1},
    {"suppression_schedule", 1},
    {"signal_selector", 1},
    {"name", 0},
    {"owner", 0},
};

/* RFC 7386 JSON merge patch of one member: null removes it, an object merges into an object
 * member key by key (so {"notification_policy": {"route": "x"}} keeps the channels), anything
 * else replaces it. */
static void merge_patch(json_t *target, const char *key, json_t *v) {
    json_t *cur = json_object_get(target, key);
    if (json_is_null(v)) {
        json_object_del(target, key);
    } else if (json_is_object(v) && json_is_object(cur)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            merge_patch(cur, k, x);
        }
    } else if (json_is_object(v)) {
        json_t *fresh = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            merge_patch(fresh, k, x);
        }
        json_object_set_new(target, key, fresh);
    } else {
        json_object_set(target, key, v);
    }
}

int rsre__h_rule_patch(struct api_call *c) {
    const char *id = c->params[0], *comment;
    if (need_comment(c, &comment)) {
        return c->status;
    }
    json_t *fields = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(c->json, k, v) {
        if (!strcmp(k, "comment")) {
            continue;
        }
        size_t i = 0;
        while (i < sizeof(patchable) / sizeof(patchable[0]) && strcmp(patchable[i].field, k)) {
            i++;
        }
        if (i == sizeof(patchable) / sizeof(patchable[0])) {
            json_decref(fields);
            return rsre__api_fail(c, 400, k,
                                  "%s cannot be changed by PATCH (thresholds, severity, "
                                  "escalations, routing, cooldown, suppression, selector, name, "
                                  "owner); enable/disable per environment have their own "
                                  "endpoints, anything else is a new rule",
                                  k);
        }
        if (json_is_null(v) && !patchable[i].removable) {
            json_decref(fields);
            return rsre__api_fail(c, 400, k, "%s is required and cannot be removed", k);
        }
        json_array_append_new(fields, json_string(k));
    }
    if (!json_array_size(fields)) {
        json_decref(fields);
        return rsre__api_fail(c, 400, NULL,
                              "the PATCH changes nothing (give at least one field "
                              "besides comment)");
    }
    json_t *rule;
    uint32_t prev;
    if (load_rule_json(c, id, &rule, &prev)) {
        json_decref(fields);
        return c->status;
    }
    json_object_foreach(c->json, k, v) {
        if (!strcmp(k, "comment")) {
            continue;
        }
        merge_patch(rule, k, v);
    }
    int rc = commit_json(c, id, rule, prev, "patch", fields, comment, NULL);
    json_decref(rule);
    return rc;
}

/* ---- enable / disable per environment ------------------------------------------------------ */

/* The environments a rule is effectively enabled in (bit per env) from its JSON. */
static unsigned effective_envs(json_t *rule) {
    json_t *en = json_object_get(rule, "enabled");
    if (en &&
        (json_is_false(en) || (json_is_string(en) && (!strcmp(json_string_value(en), "false") ||
                                                      !strcmp(json_string_value(en), "False") ||
                                                      !strcmp(json_string_value(en), "no"))))) {
        return 0;
    }
    json_t *scope = json_object_get(rule, "environment_scope");
    if (json_is_string(scope) && !strcmp(json_string_value(scope), "all")) {
        return (1u << RSRE_ENV_COUNT) - 1;
    }
    unsigned m = 0;
    for (size_t i = 0; json_is_array(scope) && i < json_array_size(scope); i++) {
        enum rsre_env e;
        const char *s = json_string_value(json_array_get(scope, i));
        if (s && !rsre_env_parse(s, &e)) {
            m |= 1u << e;
        }
    }
    return m;
}

static int toggle(struct api_call *c, int enable) {
    const char *id = c->params[0], *comment, *env_s;
    if (need_comment(c, &comment)) {
        return c->status;
    }
    json_t *ev = json_object_get(c->json, "env");
    env_s = json_string_value(ev);
    unsigned bits;
    enum rsre_env e;
    if (env_s && !strcmp(env_s, "all")) {
        bits = (1u << RSRE_ENV_COUNT) - 1;
    } else if (env_s && strlen(env_s) == json_string_length(ev) && !rsre_env_parse(env_s, &e)) {
        bits = 1u << e;
    } else {
        return rsre__api_fail(c, 400, "env", "env is required: demo, staging, production or all");
    }
    json_t *rule;
    uint32_t prev;
    if (load_rule_json(c, id, &rule, &prev)) {
        return c->status;
    }
    unsigned was = effective_envs(rule);
    unsigned now = enable ? (was | bits) : (was & ~bits);
    if (now == was) {
        json_decref(rule);
        return rsre__api_fail(c, 409, "env", "rule %s is already %s in %s", id,
                              enable ? "enabled" : "disabled", env_s);
    }
    if (now) {
        json_object_set_new(rule, "enabled", json_true());
        if (now == (1u << RSRE_ENV_COUNT) - 1) {
            json_object_set_new(rule, "environment_scope", json_string("all"));
        } else {
            json_t *scope = json_array();
            for (int i = 0; i < RSRE_ENV_COUNT; i++) {
                if (now & (1u << i)) {
                    json_array_append_new(scope, json_string(rsre_env_name((enum rsre_env)i)));
                }
            }
            json_object_set_new(rule, "environment_scope", scope);
        }
    } else {
        /* Off everywhere: the scope stays (it must not be empty), the rule is disabled. */
        json_object_set_new(rule, "enabled", json_false());
    }
    json_t *fields = json_pack("[s, s]", "enabled", "environment_scope");
    char change[48];
    snprintf(change, sizeof(change), "%s %s", enable ? "enable" : "disable", env_s);
    int rc = commit_json(c, id, rule, prev, change, fields, comment, NULL);
    json_decref(rule);
    return rc;
}

int rsre__h_rule_enable(struct api_call *c) {
    return toggle(c, 1);
}

int rsre__h_rule_disable(struct api_call *c) {
    return toggle(c, 0);
}

/* ---- clone --------------------------------------------------------------------------------- */

/* A built-in rule as an operator rule (disabled; the clone is switched on per environment). */
static json_t *builtin_as_json(const struct rsre_rule *r) {
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(r->name ? r->name : r->id));
    json_object_set_new(j, "enabled", json_false());
    json_object_set_new(j, "domain", json_string(r->domain ? r->domain : ""));
    json_object_set_new(j, "incident_type", json_string(r->incident ? r->incident->id : ""));
    json_object_set_new(j, "environment_scope", json_string("all"));
    json_object_set_new(j, "signal_selector",
                        json_string(r->signal_selector ? r->signal_selector : "*"));
    json_object_set_new(j, "threshold_expression",
                        json_string(r->threshold_expression ? r->threshold_expression : ""));
    json_object_set_new(j, "severity", json_string(rsre_severity_name(r->severity)));
    if (r->nescalations) {
        json_t *esc = json_array();
        for (size_t i = 0; i < r->nescalations; i++) {
            const struct rsre_severity_rule *s = &r->escalations[i];
            json_t *o = json_pack("{s:s, s:s}", "severity", rsre_severity_name(s->severity), "when",
                                  s->when ? s->when : "");
            if (s->text && strlen(s->text) <= 256) {
                json_object_set_new(o, "text", json_string(s->text));
            }
            json_array_append_new(esc, o);
        }
        json_object_set_new(j, "severity_escalations", esc);
    }
    return j;
}

static int valid_new_id(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 63 || is_builtin_id(s)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 (i > 0 && (ch == '.' || ch == '_' || ch == '-'));
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

int rsre__h_rule_clone(struct api_call *c) {
    const char *src = c->params[0], *comment;
    if (need_comment(c, &comment)) {
        return c->status;
    }
    json_t *nv = json_object_get(c->json, "new_id");
    const char *new_id = json_string_value(nv);
    if (!new_id || strlen(new_id) != json_string_length(nv) || !valid_new_id(new_id)) {
        return rsre__api_fail(c, 400, "new_id",
                              "new_id is required: 1..63 bytes of a-z 0-9 . _ -, starting with a "
                              "letter or digit, not builtin.*");
    }
    json_t *ov = json_object_get(c->json, "owner");
    if (ov && (!json_is_string(ov) || !json_string_length(ov) || json_string_length(ov) > 128)) {
        return rsre__api_fail(c, 400, "owner", "owner must be a string of 1..128 bytes");
    }
    json_t *rule = NULL;
    if (is_builtin_id(src)) {
        struct rsre_ruleset *b;
        int rc = rsre_ruleset_create(rsre__api_taxonomy(c->api), &b);
        if (rc) {
            return rsre__api_fail(c, 500, NULL, "cannot create a rule set: %s", rsre_strerror(rc));
        }
        const struct rsre_rule *r = rsre_ruleset_find(b, src);
        if (r && r->builtin) {
            rule = builtin_as_json(r);
        }
        rsre_ruleset_destroy(b);
        if (!rule) {
            return rsre__api_fail(c, 404, NULL, "rule %s not found", src);
        }
    } else {
        uint32_t v;
        if (load_rule_json(c, src, &rule, &v)) {
            return c->status;
        }
        json_object_set_new(rule, "enabled", json_false());
    }
    /* id first, as people write it */
    json_t *out = json_pack("{s:s}", "id", new_id);
    const char *k;
    json_t *v;
    json_object_foreach(rule, k, v) {
        if (strcmp(k, "id")) {
            json_object_set(out, k, v);
        }
    }
    json_decref(rule);
    json_object_set_new(out, "owner", ov ? json_incref(ov) : json_string(c->who->operator_id));
    int rc = commit_json(c, new_id, out, 0, "clone", json_pack("[s]", "*"), comment, src);
    json_decref(out);
    return rc;
}

/* ---- test against stored evidence ---------------------------------------------------------- */

struct test_ctx {
    struct api_call *c;
    const char *type;  /* incident class to look at */
    json_t *incidents; /* candidate incident ids, in store order */
};

static int test_inc_cb(const rsre_store_incident *r, void *ud) {
    struct test_ctx *t = ud;
    if (r->incident_type && !strcmp(r->incident_type, t->type)) {
        const char *scope =
            r->n_resource_scope && r->resource_scope[0]->name ? r->resource_scope[0]->name : "";
        json_array_append_new(t->incidents,
                              json_pack("{s:s, s:s, s:I}", "id", r->id, "scope", scope,
                                        "opened_at_ms", (json_int_t)r->opened_at_ms));
    }
    return 0;
}

/* The values of one evidence record's raw "name=value ..." excerpt, by the expression's slots. */
static void fill_slots(const struct rsre_expr *e, const uint8_t *raw, size_t len, double *vals,
                       size_t span) {
    for (size_t i = 0; i < span; i++) {
        vals[i] = NAN;
    }
    size_t nslots = rsre_expr_slot_count(e);
    for (size_t i = 0; i < nslots; i++) {
        const char *name;
        int slot = rsre_expr_slot(e, i, &name);
        if (slot < 0 || (size_t)slot >= span) {
            continue;
        }
        size_t nl = strlen(name);
        for (size_t p = 0; p + nl + 1 < len; p++) {
            if ((p == 0 || raw[p - 1] == ' ') && !memcmp(raw + p, name, nl) && raw[p + nl] == '=') {
                char num[48];
                size_t q = p + nl + 1, k = 0;
                while (q < len && raw[q] != ' ' && k < sizeof(num) - 1) {
                    num[k++] = (char)raw[q++];
                }
                num[k] = '\0';
                char *end;
                double d = strtod(num, &end);
                if (end != num && !*end) {
                    vals[slot] = d;
                }
                break;
            }
        }
    }
}

/* One evidence record, copied out of the read transaction for evaluation in time order. */
struct ev_item {
    int64_t at;
    char *id, *kind;
    uint8_t *raw;
    size_t len;
};

struct ev_list {
    struct ev_item *v;
    size_t n, cap, budget;
    int oom;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s ? s : "");
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s ? s : "", n + 1);
    }
    return d;
}

static int collect_ev_cb(const rsre_store_evidence *r, void *ud) {
    struct ev_list *l = ud;
    if (!l->budget) {
        return 1;
    }
    l->budget--;
    if (!r->raw.len) {
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        struct ev_item *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv) {
            l->oom = 1;
            return 1;
        }
        l->v = nv;
        l->cap = cap;
    }
    struct ev_item *it = &l->v[l->n];
    it->at = r->observed_at_ms;
    it->id = dup_str(r->id);
    it->kind = dup_str(r->kind);
    it->raw = malloc(r->raw.len);
    it->len = r->raw.len;
    if (!it->id || !it->kind || !it->raw) {
        free(it->id);
        free(it->kind);
        free(it->raw);
        l->oom = 1;
        return 1;
    }
    memcpy(it->raw, r->raw.data, r->raw.len);
    l->n++;
    return 0;
}

static void ev_list_clear(struct ev_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].id);
        free(l->v[i].kind);
        free(l->v[i].raw);
    }
    l->n = 0;
}

static int ev_cmp(const void *a, const void *b) {
    const struct ev_item *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

static int inc_cmp(const void *a, const void *b) {
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "opened_at_ms"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "opened_at_ms"));
    return x < y ? -1 : x > y;
}

/*
 * Evaluates `e` over the (time-sorted) evidence of one incident, `for` state carried from
 * record to record as the engine does per scope. Returns the number of records it holds at,
 * the first such time in *first, and appends those records to `matches` (NULL: not listed,
 * bounded by TEST_MATCHES_MAX). `vals` holds at least `span` >= rsre_expr_slot_span(e) cells,
 * `state` rsre_expr_state_size(e).
 */
static size_t eval_expr(const struct rsre_expr *e, json_t *inc, const struct ev_list *l,
                        double *vals, size_t span, int64_t *state, size_t nstate, int64_t *first,
                        json_t *matches) {
    memset(state, 0, (nstate ? nstate : 1) * sizeof(*state));
    size_t matched = 0;
    *first = 0;
    for (size_t i = 0; i < l->n; i++) {
        fill_slots(e, l->v[i].raw, l->v[i].len, vals, span);
        const double *row = vals;
        struct rsre_expr_env env = {.scalars = vals,
                                    .nscalars = span,
                                    .rows = &row,
                                    .nrows = 1,
                                    .now_s = l->v[i].at / 1000};
        double v = rsre_expr_eval(e, &env, state);
        if (isnan(v) || v == 0) {
            continue;
        }
        matched++;
        *first = *first ? *first : l->v[i].at;
        if (matches && json_array_size(matches) < TEST_MATCHES_MAX) {
            json_array_append_new(matches, json_pack("{s:O, s:s, s:s, s:I}", "incident_id",
                                                     json_object_get(inc, "id"), "evidence_id",
                                                     l->v[i].id, "kind", l->v[i].kind,
                                                     "observed_at_ms", (json_int_t)l->v[i].at));
        }
    }
    return matched;
}

/* The per-incident summary: the threshold (matches listed) and each severity escalation. */
static json_t *eval_incident(const struct rsre_rule *rule, json_t *inc, struct ev_list *l,
                             double *vals, size_t span, int64_t *state, json_t *matches) {
    qsort(l->v, l->n, sizeof(*l->v), ev_cmp);
    int64_t first;
    size_t matched = eval_expr(rule->threshold, inc, l, vals, span, state,
                               rsre_expr_state_size(rule->threshold), &first, matches);
    json_t *o = json_pack("{s:O, s:O, s:I, s:I, s:b}", "incident_id", json_object_get(inc, "id"),
                          "scope", json_object_get(inc, "scope"), "evaluated", (json_int_t)l->n,
                          "matched", (json_int_t)matched, "would_match", matched != 0);
    json_object_set_new(o, "first_match_at_ms", first ? json_integer(first) : json_null());
    json_t *esc = json_array();
    for (size_t k = 0; k < rule->nescalations; k++) {
        const struct rsre_severity_rule *sr = &rule->escalations[k];
        if (!sr->expr) {
            continue;
        }
        int64_t efirst;
        size_t n = eval_expr(sr->expr, inc, l, vals, span, state, rsre_expr_state_size(sr->expr),
                             &efirst, NULL);
        json_t *x = json_pack("{s:s, s:s, s:I}", "severity", rsre_severity_name(sr->severity),
                              "when", sr->when ? sr->when : "", "matched", (json_int_t)n);
        json_object_set_new(x, "first_match_at_ms", efirst ? json_integer(efirst) : json_null());
        json_array_append_new(esc, x);
    }
    json_object_set_new(o, "escalations", esc);
    return o;
}

int rsre__h_rule_test(struct api_call *c) {
    const char *id = c->params[0];
    uint64_t limit = TEST_INCIDENTS_DEFAULT;
    json_t *lv = json_object_get(c->json, "limit");
    if (lv) {
        if (!json_is_integer(lv) || json_integer_value(lv) < 1 ||
            json_integer_value(lv) > TEST_INCIDENTS_MAX) {
            return rsre__api_fail(c, 400, "limit", "limit must be 1..%d incidents",
                                  TEST_INCIDENTS_MAX);
        }
        limit = (uint64_t)json_integer_value(lv);
    }
    /* The rule as the engine has it: the current set (so a stored rule is tested exactly as
     * it loads). */
    struct rsre_ruleset *rs;
    if (rsre__rule_current_set(c, &rs)) {
        return c->status;
    }
    const struct rsre_rule *rule = rsre_ruleset_find(rs, id);
    if (!rule) {
        rsre_ruleset_destroy(rs);
        return rsre__api_fail(c, 404, NULL, "rule %s not found", id);
    }
    if (!rule->threshold || !rule->incident) {
        rsre_ruleset_destroy(rs);
        return rsre__api_fail(c, 400, NULL, "rule %s has no threshold expression to test", id);
    }
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(rsre__api_store(c->api), 1, &txn);
    if (rc) {
        rsre_ruleset_destroy(rs);
        return rsre__api_store_fail(c, rc, "incidents");
    }
    struct test_ctx t = {.c = c, .type = rule->incident->id, .incidents = json_array()};
    rc = rsre_store_incident_foreach(txn, test_inc_cb, &t);
    /* One value array and one state block large enough for the threshold and every
     * escalation (each expression is evaluated on its own, with its own fresh state). */
    size_t span = rsre_expr_slot_span(rule->threshold);
    size_t nstate = rsre_expr_state_size(rule->threshold);
    for (size_t k = 0; k < rule->nescalations; k++) {
        const struct rsre_expr *x = rule->escalations[k].expr;
        if (x && rsre_expr_slot_span(x) > span) {
            span = rsre_expr_slot_span(x);
        }
        if (x && rsre_expr_state_size(x) > nstate) {
            nstate = rsre_expr_state_size(x);
        }
    }
    double *vals = calloc(span ? span : 1, sizeof(*vals));
    int64_t *state = calloc(nstate ? nstate : 1, sizeof(*state));
    json_t *per = json_array(), *matches = json_array();
    size_t budget = TEST_EVIDENCE_MAX, total = 0, hit = 0;
    if (!vals || !state) {
        rc = -ENOMEM;
    }
    /* The most recent `limit` incidents of the class, by opening time. */
    size_t n = json_array_size(t.incidents);
    json_t **sorted = calloc(n ? n : 1, sizeof(*sorted));
    if (!sorted) {
        rc = -ENOMEM;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        sorted[i] = json_array_get(t.incidents, i);
    }
    if (!rc) {
        qsort(sorted, n, sizeof(*sorted), inc_cmp);
    }
    struct ev_list l = {.budget = budget};
    for (size_t i = n > limit ? n - limit : 0; !rc && i < n; i++) {
        rc = rsre_store_evidence_foreach(txn, json_string_value(json_object_get(sorted[i], "id")),
                                         collect_ev_cb, &l);
        if (!rc && l.oom) {
            rc = -ENOMEM;
        }
        if (!rc) {
            total += l.n;
            json_t *o = eval_incident(rule, sorted[i], &l, vals, span, state, matches);
            hit += json_is_true(json_object_get(o, "would_match"));
            json_array_append_new(per, o);
        }
        ev_list_clear(&l);
    }
    budget = l.budget;
    free(l.v);
    free(sorted);
    rsre_store_txn_abort(txn);
    free(vals);
    free(state);
    json_decref(t.incidents);
    if (rc) {
        json_decref(per);
        json_decref(matches);
        rsre_ruleset_destroy(rs);
        return rsre__api_store_fail(c, rc, "evidence");
    }
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:o, s:o}", "rule", rule->id,
                  "incident_type", rule->incident->id, "threshold_expression",
                  rule->threshold_expression ? rule->threshold_expression : "", "incidents_tested",
                  (json_int_t)json_array_size(per), "evidence_evaluated", (json_int_t)total,
                  "incidents_matched", (json_int_t)hit, "evidence_budget_exhausted", budget == 0,
                  "incidents", per, "matches", matches);
    /* Each escalation over all tested incidents: in how many it would have held. */
    json_t *esc = json_array();
    for (size_t k = 0; k < rule->nescalations; k++) {
        const struct rsre_severity_rule *sr = &rule->escalations[k];
        if (!sr->expr) {
            continue;
        }
        json_int_t held = 0;
        size_t ii;
        json_t *it;
        json_array_foreach(per, ii, it) {
            json_t *x = json_array_get(json_object_get(it, "escalations"), json_array_size(esc));
            held += json_integer_value(json_object_get(x, "matched")) > 0;
        }
        json_array_append_new(esc, json_pack("{s:s, s:s, s:I}", "severity",
                                             rsre_severity_name(sr->severity), "when",
                                             sr->when ? sr->when : "", "incidents_matched", held));
    }
    json_object_set_new(doc, "escalations", esc);
    rsre_ruleset_destroy(rs);
    return rsre__api_reply(c, 200, doc);
}
