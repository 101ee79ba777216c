/*
 * Rules over the admin API: list (built-in and the latest stored version of each operator
 * rule), show (every stored version), create (validate against the current set, store as a new
 * version with an audit record "rule change"), and the policy preview under the current set.
 *
 * "The current set" is built fresh for each request that needs it: the built-in rules of the
 * taxonomy plus the latest stored version of every operator rule (rsre_ruleset has no copy).
 */
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "http/api_internal.h"

struct latest {
    rsre_store_rule **v; /* copies of the latest version of each rule, rule id order */
    size_t n, cap;
};

static void latest_free(struct latest *l) {
    for (size_t i = 0; i < l->n; i++) {
        rsre_store_rule_free(l->v[i]);
    }
    free(l->v);
}

/* Keeps the last version seen per rule id (versions arrive in ascending order per id). */
static int latest_cb(const rsre_store_rule *r, void *ud) {
    struct latest *l = ud;
    if (l->n && !strcmp(l->v[l->n - 1]->rule_id, r->rule_id)) {
        l->n--;
        rsre_store_rule_free(l->v[l->n]);
    } else if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        rsre_store_rule **n = realloc(l->v, cap * sizeof(*n));
        if (!n) {
            return -ENOMEM;
        }
        l->v = n;
        l->cap = cap;
    }
    /* Copy: the callback's record is borrowed. */
    size_t sz = robot_sre__store__rule_version__get_packed_size(r);
    uint8_t *buf = malloc(sz ? sz : 1);
    if (!buf) {
        return -ENOMEM;
    }
    robot_sre__store__rule_version__pack(r, buf);
    rsre_store_rule *copy = robot_sre__store__rule_version__unpack(NULL, sz, buf);
    free(buf);
    if (!copy) {
        return -ENOMEM;
    }
    l->v[l->n++] = copy;
    return 0;
}

static int load_latest(struct api_call *c, struct latest *l) {
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_fail(c, 503, NULL, "the store is not open");
    }
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(st, 1, &txn);
    if (!rc) {
        rc = rsre_store_rule_foreach(txn, NULL, latest_cb, l);
        rsre_store_txn_abort(txn);
    }
    if (rc) {
        latest_free(l);
        memset(l, 0, sizeof(*l));
        return rsre__api_store_fail(c, rc, "rules");
    }
    return 0;
}

/*
 * Builds the current set (built-ins + every latest stored rule except `skip_id`) into *out.
 * A stored rule that no longer loads is left out with a warning, as the daemon does.
 */
static int build_set(struct api_call *c, const struct latest *l, const char *skip_id,
                     struct rsre_ruleset **out) {
    struct rsre_ruleset *rs;
    int rc = rsre_ruleset_create(rsre__api_taxonomy(c->api), &rs);
    if (rc) {
        return rsre__api_fail(c, 500, NULL, "cannot create a rule set: %s", rsre_strerror(rc));
    }
    for (size_t i = 0; i < l->n; i++) {
        const rsre_store_rule *r = l->v[i];
        if (skip_id && !strcmp(r->rule_id, skip_id)) {
            continue;
        }
        char origin[RSRE_STORE_ID_MAX + 32];
        snprintf(origin, sizeof(origin), "rule/%s@v%u", r->rule_id, r->version);
        struct rsre_rule_error err;
        const char *y = r->yaml ? r->yaml : "";
        if ((rc = rsre_ruleset_add_yaml(rs, origin, y, strlen(y), &err))) {
            /* As the daemon does (daemon/wire_rules.h): a stored rule that no longer loads is
             * left out, so the set here is the engine's and the rule can still be replaced. */
            char msg[700];
            rsre_rule_error_format(&err, msg, sizeof(msg));
            RSRE_LOG(RSRE_LOG_WARN, "api", "stored rule %s v%u does not load, left out: %s",
                     r->rule_id, r->version, msg);
        }
    }
    *out = rs;
    return 0;
}

static json_t *env_mask_json(const struct rsre_rule *r) {
    return json_pack("{s:b, s:b, s:b}", "demo", r->enabled && (r->env_mask & (1u << RSRE_ENV_DEMO)),
                     "staging", r->enabled && (r->env_mask & (1u << RSRE_ENV_STAGING)),
                     "production", r->enabled && (r->env_mask & (1u << RSRE_ENV_PRODUCTION)));
}

static json_t *builtin_json(const struct rsre_rule *r) {
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(r->id));
    json_object_set_new(j, "builtin", json_true());
    json_object_set_new(j, "name", json_string(r->name ? r->name : ""));
    json_object_set_new(j, "incident_type", json_string(r->incident ? r->incident->id : ""));
    json_object_set_new(j, "domain", json_string(r->domain ? r->domain : ""));
    json_object_set_new(j, "severity", json_string(rsre_severity_name(r->severity)));
    json_object_set_new(j, "enabled", env_mask_json(r));
    json_object_set_new(j, "version", json_integer(0));
    return j;
}

int rsre__h_rules(struct api_call *c) {
    struct latest l = {0};
    if (load_latest(c, &l)) {
        return c->status;
    }
    struct rsre_ruleset *builtins;
    int rc = rsre_ruleset_create(rsre__api_taxonomy(c->api), &builtins);
    if (rc) {
        latest_free(&l);
        return rsre__api_fail(c, 500, NULL, "cannot create a rule set: %s", rsre_strerror(rc));
    }
    json_t *rules = json_array();
    for (size_t i = 0; i < rsre_ruleset_count(builtins); i++) {
        json_array_append_new(rules, builtin_json(rsre_ruleset_get(builtins, i)));
    }
    for (size_t i = 0; i < l.n; i++) {
        json_t *j = rsre__json_rule_version(l.v[i], 0);
        json_object_set_new(j, "builtin", json_false());
        json_array_append_new(rules, j);
    }
    rsre_ruleset_destroy(builtins);
    latest_free(&l);
    return rsre__api_reply(
        c, 200,
        json_pack("{s:o, s:I}", "rules", rules, "count", (json_int_t)json_array_size(rules)));
}

static int version_cb(const rsre_store_rule *r, void *ud) {
    return json_array_append_new(ud, rsre__json_rule_version(r, 1)) ? -ENOMEM : 0;
}

int rsre__h_rule(struct api_call *c) {
    const char *id = c->params[0];
    struct rsre_ruleset *builtins;
    int rc = rsre_ruleset_create(rsre__api_taxonomy(c->api), &builtins);
    if (rc) {
        return rsre__api_fail(c, 500, NULL, "cannot create a rule set: %s", rsre_strerror(rc));
    }
    const struct rsre_rule *b = rsre_ruleset_find(builtins, id);
    if (b && b->builtin) {
        json_t *doc = builtin_json(b);
        json_object_set_new(doc, "versions", json_array());
        rsre_ruleset_destroy(builtins);
        return rsre__api_reply(c, 200, doc);
    }
    rsre_ruleset_destroy(builtins);
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_fail(c, 503, NULL, "the store is not open");
    }
    rsre_store_txn *txn;
    if ((rc = rsre_store_txn_begin(st, 1, &txn))) {
        return rsre__api_store_fail(c, rc, "rules");
    }
    json_t *versions = json_array();
    rc = rsre_store_rule_foreach(txn, id, version_cb, versions);
    rsre_store_txn_abort(txn);
    if (rc) {
        json_decref(versions);
        return rsre__api_store_fail(c, rc, "rule");
    }
    if (!json_array_size(versions)) {
        json_decref(versions);
        return rsre__api_fail(c, 404, NULL, "rule %s not found", id);
    }
    json_t *last = json_array_get(versions, json_array_size(versions) - 1);
    return rsre__api_reply(c, 200,
                           json_pack("{s:s, s:b, s:O, s:o}", "id", id, "builtin", 0, "latest", last,
                                     "versions", versions));
}

/* Answers a rule validation error: 409 for a duplicate id, 400 otherwise. */
static int rule_error(struct api_call *c, int rc, const struct rsre_rule_error *err) {
    char msg[700];
    rsre_rule_error_format(err, msg, sizeof(msg));
    json_t *doc = json_object();
    json_object_set_new(doc, "error", json_string(msg));
    json_object_set_new(doc, "field", err->field[0] ? json_string(err->field) : json_null());
    json_object_set_new(doc, "line", json_integer(err->line));
    json_object_set_new(doc, "column", json_integer(err->col));
    json_object_set_new(doc, "kind", json_string(rsre_strerror(rc)));
    return rsre__api_reply(c, rc == RSRE_EEXIST ? 409 : 400, doc);
}

/*
 * Validates `text` (one rule, YAML or JSON) alone and against every other current rule, and
 * stores it as the next version of its id with an audit record "rule change" (who: the
 * caller; what: ch->change and ch->fields; why: ch->comment), in one transaction. With
 * ch->expect_id the rule must carry that id. Answers the request (201 with the new version,
 * 400 with the loader's message and field, 409 for a race or a duplicate) and returns its
 * status. After the commit the daemon is told (rules_changed).
 */
int rsre__rule_commit(struct api_call *c, const char *text, size_t len,
                      const struct rsre__rule_change *ch) {
    /* 1. The rule on its own, against the built-ins: schema, boundaries, exactly one rule. */
    struct rsre_ruleset *one;
    int rc = rsre_ruleset_create(rsre__api_taxonomy(c->api), &one);
    if (rc) {
        return rsre__api_fail(c, 500, NULL, "cannot create a rule set: %s", rsre_strerror(rc));
    }
    size_t n0 = rsre_ruleset_count(one);
    struct rsre_rule_error err;
    memset(&err, 0, sizeof(err));
    if ((rc = rsre_ruleset_add_yaml(one, "<request>", text, len, &err))) {
        rsre_ruleset_destroy(one);
        return rule_error(c, rc, &err);
    }
    if (rsre_ruleset_count(one) - n0 != 1) {
        rsre_ruleset_destroy(one);
        return rsre__api_fail(c, 400, "rules", "send exactly one rule per request (got %zu)",
                              rsre_ruleset_count(one) - n0);
    }
    const struct rsre_rule *r = rsre_ruleset_get(one, n0);
    char id[RSRE_STORE_ID_MAX + 1];
    if (strlen(r->id) > RSRE_STORE_ID_MAX) {
        rsre_ruleset_destroy(one);
        return rsre__api_fail(c, 400, "id", "the rule id is too long");
    }
    snprintf(id, sizeof(id), "%s", r->id);
    int en_demo = r->enabled && (r->env_mask & (1u << RSRE_ENV_DEMO));
    int en_staging = r->enabled && (r->env_mask & (1u << RSRE_ENV_STAGING));
    int en_prod = r->enabled && (r->env_mask & (1u << RSRE_ENV_PRODUCTION));
    rsre_ruleset_destroy(one);
    if (ch->expect_id && strcmp(ch->expect_id, id)) {
        return rsre__api_fail(c, 400, "id", "the rule's id '%s' is not '%s'", id, ch->expect_id);
    }

    /* 2. With every other current rule: the set the engine would load. */
    struct latest l = {0};
    if (load_latest(c, &l)) {
        return c->status;
    }
    uint32_t prev = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (!strcmp(l.v[i]->rule_id, id)) {
            prev = l.v[i]->version;
        }
    }
    if (ch->cloned_from && prev) {
        latest_free(&l);
        return rsre__api_fail(c, 409, "new_id", "rule %s already exists", id);
    }
    struct rsre_ruleset *all;
    if (build_set(c, &l, id, &all)) {
        latest_free(&l);
        return c->status;
    }
    latest_free(&l);
    memset(&err, 0, sizeof(err));
    rc = rsre_ruleset_add_yaml(all, "<request>", text, len, &err);
    rsre_ruleset_destroy(all);
    if (rc) {
        return rule_error(c, rc, &err);
    }

    /* 3. Store it as the next version with its audit record, in one transaction. */
    char *yaml = malloc(len + 1);
    if (!yaml) {
        return rsre__api_fail(c, 500, NULL, "out of memory");
    }
    memcpy(yaml, text, len);
    yaml[len] = '\0';
    unsigned char h[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    SHA256((const unsigned char *)yaml, len, h);
    rsre__hex(h, sizeof(h), hex);
    int64_t now = rsre__api_now_ms();
    rsre_store_rule rec = ROBOT_SRE__STORE__RULE_VERSION__INIT;
    rec.rule_id = id;
    rec.version = prev + 1;
    rec.yaml = yaml;
    rec.author = (char *)c->who->operator_id;
    rec.created_at_ms = now;
    rec.enabled_demo = en_demo;
    rec.enabled_staging = en_staging;
    rec.enabled_production = en_prod;
    rec.comment = (char *)(ch->comment ? ch->comment : "api");
    rec.cloned_from = (char *)(ch->cloned_from ? ch->cloned_from : "");
    char object[RSRE_STORE_ID_MAX + 16], reason[320];
    snprintf(object, sizeof(object), "rule/%s", id);
    snprintf(reason, sizeof(reason), "%s", ch->comment ? ch->comment : "created via the admin API");
    json_t *det = json_pack("{s:s, s:i, s:i, s:s, s:I, s:{s:b, s:b, s:b}}", "change",
                            ch->change ? ch->change : "create", "version", (int)rec.version,
                            "previous_version", (int)prev, "yaml_sha256", hex, "bytes",
                            (json_int_t)len, "enabled", "demo", en_demo, "staging", en_staging,
                            "production", en_prod);
    if (det && ch->fields) {
        json_object_set(det, "fields", ch->fields);
    }
    if (det && ch->cloned_from) {
        json_object_set_new(det, "cloned_from", json_string(ch->cloned_from));
    }
    char *detail = det ? json_dumps(det, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(det);
    if (!detail) {
        free(yaml);
        return rsre__api_fail(c, 500, NULL, "out of memory");
    }
    rsre_store_txn *txn;
    rc = rsre_store_txn_begin(rsre__api_store(c->api), 0, &txn);
    if (!rc) {
        rc = rsre_store_rule_put(txn, &rec);
        if (!rc) {
            rc = rsre_store_audit_append(txn, c->who->operator_id, "rule change", object, reason,
                                         detail, now, NULL);
        }
        if (rc) {
            rsre_store_txn_abort(txn);
        } else {
            rc = rsre_store_txn_commit(txn);
        }
    }
    free(yaml);
    free(detail);
    if (rc == RSRE_EEXIST) {
        return rsre__api_fail(c, 409, "id", "rule %s changed meanwhile; retry", id);
    }
    if (rc) {
        return rsre__api_store_fail(c, rc, "rule");
    }
    RSRE_LOG(RSRE_LOG_INFO, "api", "rule change rule=%s version=%u change=\"%s\" operator=%s", id,
             rec.version, ch->change ? ch->change : "create", c->who->operator_id);
    const struct rsre_api_callbacks *cb = rsre__api_callbacks(c->api);
    if (cb->rules_changed) {
        cb->rules_changed(cb->ud, id, rec.version);
    }
    return rsre__api_reply(c, 201,
                           json_pack("{s:s, s:i, s:i, s:{s:b, s:b, s:b}, s:s, s:s}", "id", id,
                                     "version", (int)rec.version, "previous_version", (int)prev,
                                     "enabled", "demo", en_demo, "staging", en_staging,
                                     "production", en_prod, "yaml_sha256", hex, "change",
                                     ch->change ? ch->change : "create"));
}

int rsre__h_rule_create(struct api_call *c) {
    struct rsre__rule_change ch = {.change = "create"};
    return rsre__rule_commit(c, c->body, c->body_len, &ch);
}

int rsre__rule_latest(struct api_call *c, const char *id, rsre_store_rule **out) {
    *out = NULL;
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_fail(c, 503, NULL, "the store is not open");
    }
    struct latest l = {0};
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(st, 1, &txn);
    if (!rc) {
        rc = rsre_store_rule_foreach(txn, id, latest_cb, &l);
        rsre_store_txn_abort(txn);
    }
    if (rc) {
        latest_free(&l);
        return rsre__api_store_fail(c, rc, "rule");
    }
    if (!l.n) {
        latest_free(&l);
        return rsre__api_fail(c, 404, NULL, "rule %s not found", id);
    }
    *out = l.v[l.n - 1];
    l.n--;
    latest_free(&l);
    return 0;
}

int rsre__rule_current_set(struct api_call *c, struct rsre_ruleset **out) {
    struct latest l = {0};
    if (load_latest(c, &l)) {
        return c->status;
    }
    int rc = build_set(c, &l, NULL, out);
    latest_free(&l);
    return rc ? c->status : 0;
}

/* A string field of the preview body: NULL when absent, 400 when not a short string. */
static int body_str(struct api_call *c, const char *field, size_t max, const char **out) {
    json_t *v = json_object_get(c->json, field);
    *out = NULL;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return rsre__api_fail(c, 400, field, "%s must be a string of at most %zu bytes", field,
                              max);
    }
    *out = json_string_value(v);
    return 0;
}

int rsre__h_rule_preview(struct api_call *c) {
    const struct rsre_taxonomy *t = rsre__api_taxonomy(c->api);
    const char *inc_s, *act_s, *env_s, *conf_s, *target;
    if (body_str(c, "incident", 64, &inc_s) || body_str(c, "action", 64, &act_s) ||
        body_str(c, "env", 16, &env_s) || body_str(c, "confidence", 16, &conf_s) ||
        body_str(c, "target", RSRE_RULE_MAX_TARGET_LEN, &target)) {
        return c->status;
    }
    long long ago = -1;
    json_t *agov = json_object_get(c->json, "last_run_ago_seconds");
    if (agov && !json_is_null(agov)) {
        if (!json_is_integer(agov) || json_integer_value(agov) < 0 ||
            json_integer_value(agov) > 10LL * 365 * 86400) {
            return rsre__api_fail(c, 400, "last_run_ago_seconds",
                                  "last_run_ago_seconds must be a number of seconds >= 0");
        }
        ago = json_integer_value(agov);
    }
    if (!act_s) {
        return rsre__api_fail(c, 400, "action", "action is required");
    }
    if (!env_s) {
        return rsre__api_fail(c, 400, "env", "env is required (demo, staging, production)");
    }
    struct rsre_policy_request req = {
        .taxonomy = t, .confidence = RSRE_CONF_HIGH, .target = target};
    if (!(req.action = rsre_taxonomy_action(t, act_s))) {
        return rsre__api_fail(c, 400, "action", "unknown action '%s'", act_s);
    }
    if (rsre_env_parse(env_s, &req.env)) {
        return rsre__api_fail(c, 400, "env",
                              "unknown environment '%s' (demo, staging, "
                              "production)",
                              env_s);
    }
    if (conf_s && rsre_confidence_parse(conf_s, &req.confidence)) {
        return rsre__api_fail(c, 400, "confidence", "unknown confidence '%s' (low, medium, high)",
                              conf_s);
    }
    struct latest l = {0};
    if (load_latest(c, &l)) {
        return c->status;
    }
    struct rsre_ruleset *rs;
    int rc = build_set(c, &l, NULL, &rs);
    latest_free(&l);
    if (rc) {
        return c->status;
    }
    const struct rsre_rule *rule = rsre_ruleset_find(rs, c->params[0]);
    if (!rule) {
        rsre_ruleset_destroy(rs);
        return rsre__api_fail(c, 404, NULL, "rule %s not found", c->params[0]);
    }
    if (inc_s) {
        req.incident = rsre_taxonomy_incident(t, inc_s);
        if (!req.incident) {
            rsre_ruleset_destroy(rs);
            return rsre__api_fail(c, 400, "incident", "unknown incident class '%s'", inc_s);
        }
    } else {
        req.incident = rule->incident;
    }
    if (!req.incident) {
        rsre_ruleset_destroy(rs);
        return rsre__api_fail(c, 400, "incident", "incident is required for this rule");
    }
    req.rules = rs;
    req.now = rsre__api_now_ms() / 1000;
    req.last_run = ago >= 0 ? req.now - ago : 0;
    struct rsre_decision d;
    rsre_policy_decide(&req, &d);
    const struct rsre_rule *const *app;
    size_t napp;
    rsre_ruleset_applicable(rs, req.incident, req.env, &app, &napp);
    int applies = 0;
    for (size_t i = 0; i < napp; i++) {
        applies |= app[i] == rule;
    }
    json_t *reasons = json_array();
    char buf[512];
    for (unsigned i = 0; i < d.nreasons; i++) {
        json_array_append_new(
            reasons, json_pack("{s:s, s:s}", "layer",
                               rsre_layer_name((enum rsre_policy_layer)d.reasons[i].layer),
                               "reason", rsre_policy_reason_text(&d.reasons[i], buf, sizeof(buf))));
    }
    json_t *doc = json_pack(
        "{s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:o}", "rule", rule->id,
        "rule_applies", applies, "incident", req.incident->id, "action", req.action->id,
        "action_class", rsre_class_name(req.action->cls), "environment", rsre_env_name(req.env),
        "confidence", rsre_confidence_name(req.confidence), "target", target ? target : "",
        "decision", rsre_verdict_name(d.verdict), "quorum", (int)d.quorum, "cooldown_seconds",
        (json_int_t)d.cooldown_seconds, "retry_at", (json_int_t)d.retry_at, "reasons", reasons);
    rsre_ruleset_destroy(rs);
    return rsre__api_reply(c, 200, doc);
}
