/*
 * Rules over the admin API of the real robot-sre-aggregator (docs/api.md "Rules"): clone a
 * built-in, PATCH thresholds and routing, enable/disable per environment, preview, test
 * against stored evidence, the engine reload after a change, and the refusals.
 *
 * The daemon runs in demo mode on a store in a temp dir (gRPC and admin API on 127.0.0.1 port
 * 0) with tokens for adam (admin), olga (operator), victor (viewer) and alice (approver). The
 * scripted agent (tests/support/aggregator_harness.c) streams disk pressure for a node so
 * that a node_disk_pressure incident with evidence exists.
 *
 *   refusals   every rule-changing endpoint without a token (401), as viewer and operator
 *              (403), with broken JSON, an unknown field, an oversized body (413), path tricks
 *              (../, %2e%2e, %2f, a NUL, an over-long id); a PATCH on a built-in (409); a
 *              PATCH that crosses a boundary (cooldown under its floor: 400 naming
 *              cooldown_seconds; a human-only action made approval-able through a created
 *              rule: 400 naming the field). Afterwards the rule list and the audit log's
 *              "rule change" records are exactly as before.
 *   edits      clone builtin.node_disk_pressure (disabled, version 1, cloned_from), PATCH the
 *              threshold and the routing (version 2), enable in demo then staging (3, 4),
 *              disable staging (5); every version is stored with its comment and has an audit
 *              record naming adam, the change, its fields and the comment; the daemon logs the
 *              reload of its engine.
 *   test       the clone's threshold "nodefs.used_ratio > 99%" matches none of the incident's
 *              evidence (the node is at 97 %); after a PATCH to "> 90%" it matches.
 *   reload     a rule that denies cordon_node in demo is created; a second node under pressure
 *              then gets no cordon approval (the first one did): the engine uses the new rule
 *              without a restart.
 *   preview    cordon_node in production for the clone: approval_required with reasons.
 *   broken     a stored rule version the loader refuses (seeded before the start) does not
 *              stop the daemon: it is left out with an error log and replaced over the API.
 *   agents     GET /api/v1/agents shows the node with its boot id and a committed seq at least
 *              the highest one its agent was acknowledged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>

#include "common/error.h"
#include "store/store.h"

#define AGGREGATOR RSRE_BINARY_DIR "/aggregator/daemon/robot-sre-aggregator"
#define WAIT_MS 30000
#define MAX_STREAMS 2

#include "../support/aggregator_harness.c"

#define TOKEN_ADAM "rules-token-adam-admin"
#define TOKEN_OLGA "rules-token-olga-operator"
#define TOKEN_VICTOR "rules-token-victor-viewer"
#define TOKEN_ALICE "rules-token-alice-approver"

static struct {
    char dir[64], store[128], tokens[128], operators[128], log[160];
    struct harness_daemon agg;
    struct node_log nodes[2];
} F;

static void start_aggregator(void) {
    char a[12][600];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--listen=127.0.0.1:0");
    ARG("--env=demo");
    ARG("--data_dir=%s", F.store);
    ARG("--tick_ms=1000");
    ARG("--api_listen=127.0.0.1:0");
    ARG("--api_tokens_file=%s", F.tokens);
    ARG("--operators_file=%s", F.operators);
    ARG("--kube_api=http://127.0.0.1:1");
#undef ARG
    char *argv[14] = {AGGREGATOR};
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    snprintf(F.log, sizeof(F.log), "%s/aggregator.log", F.dir);
    harness_agg_start(&F.agg, argv, F.log);
}

static json_t *call(const char *method, const char *path, const char *body, const char *token,
                    long want) {
    long st = 0;
    json_t *j = api(F.agg.api_port, method, path, body, token, &st);
    if (st != want) {
        char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
        fail_msg("%s %s: status %ld, want %ld: %s", method, path, st, want, d ? d : "(no JSON)");
    }
    return j;
}

static void expect(const char *method, const char *path, const char *body, const char *token,
                   long want) {
    json_decref(call(method, path, body, token, want));
}

/* The error's "field" of a refusal. */
static void expect_field(const char *method, const char *path, const char *body, long want,
                         const char *field) {
    json_t *j = call(method, path, body, TOKEN_ADAM, want);
    const char *f = json_string_value(json_object_get(j, "field"));
    if (!f || strcmp(f, field)) {
        fail_msg("%s %s: field %s, want %s (%s)", method, path, f ? f : "null", field,
                 json_string_value(json_object_get(j, "error")));
    }
    json_decref(j);
}

/* The rules list and the "rule change" audit records, as text (for "nothing changed"). */
static char *snapshot(void) {
    json_t *r = call("GET", "/api/v1/rules", NULL, TOKEN_VICTOR, 200);
    json_t *a = call("GET", "/api/v1/audit?limit=1000", NULL, TOKEN_VICTOR, 200);
    json_t *changes = json_array();
    json_t *recs = json_object_get(a, "records");
    for (size_t i = 0; i < json_array_size(recs); i++) {
        json_t *x = json_array_get(recs, i);
        if (!strcmp(json_string_value(json_object_get(x, "verb")), "rule change")) {
            json_array_append(changes, x);
        }
    }
    json_t *doc = json_pack("{s:O, s:o}", "rules", json_object_get(r, "rules"), "changes", changes);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    json_decref(r);
    json_decref(a);
    return s;
}

/* Pending approvals of cordon_node for the incident of `node` (count). */
static int cordon_approvals(const char *node) {
    json_t *inc = call("GET", "/api/v1/incidents", NULL, TOKEN_VICTOR, 200);
    json_t *list = json_object_get(inc, "incidents");
    const char *id = NULL;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *x = json_array_get(list, i);
        json_t *scope = json_object_get(x, "resource_scope");
        for (size_t k = 0; k < json_array_size(scope); k++) {
            const char *nm = json_string_value(json_object_get(json_array_get(scope, k), "name"));
            if (nm && !strcmp(nm, node)) {
                id = json_string_value(json_object_get(x, "id"));
            }
        }
    }
    int n = -1;
    if (id) {
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/approvals?incident=%s", id);
        json_t *ap = call("GET", path, NULL, TOKEN_VICTOR, 200);
        json_t *al = json_object_get(ap, "approvals");
        n = 0;
        for (size_t i = 0; i < json_array_size(al); i++) {
            const char *act = json_string_value(json_object_get(json_array_get(al, i), "action"));
            n += act && strstr(act, "cordon_node") != NULL;
        }
        json_decref(ap);
    }
    json_decref(inc);
    return n; /* -1: no incident yet */
}

/* Streams pressure for `node` until its incident exists and its plan was made. */
static int stream_until_incident(struct node_log *node) {
    struct node_log *nodes[1] = {node};
    client_open_nodes(F.agg.grpc_port, nodes, 1);
    int64_t end = mono_ms() + WAIT_MS;
    int n = -1;
    while ((n = cordon_approvals(node->name)) < 0 && mono_ms() < end) {
        pump(100);
    }
    pump(300); /* the plan is made with the incident; give the API a moment to show it */
    n = cordon_approvals(node->name);
    client_close();
    if (n < 0) {
        log_tail(F.log, 20);
        fail_msg("no incident for %s (see %s)", node->name, F.log);
    }
    return n;
}

static json_t *rule_versions(const char *id) {
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/rules/%s", id);
    json_t *j = call("GET", path, NULL, TOKEN_VICTOR, 200);
    json_t *v = json_incref(json_object_get(j, "versions"));
    json_decref(j);
    return v;
}

static json_t *rule_test(const char *id) {
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/rules/%s/test", id);
    return call("POST", path, "{}", TOKEN_VICTOR, 200);
}

static void test_refusals(void) {
    char *before = snapshot();
    static const struct {
        const char *method, *path, *body;
    } writes[] = {
        {"PATCH", "/api/v1/rules/r1", "{\"severity\":\"critical\",\"comment\":\"x\"}"},
        {"POST", "/api/v1/rules/r1/enable", "{\"env\":\"demo\",\"comment\":\"x\"}"},
        {"POST", "/api/v1/rules/r1/disable", "{\"env\":\"demo\",\"comment\":\"x\"}"},
        {"POST", "/api/v1/rules/builtin.node_disk_pressure/clone",
         "{\"new_id\":\"c1\",\"comment\":\"x\"}"},
        {"POST", "/api/v1/rules", "id: r1\n"},
    };
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        expect(writes[i].method, writes[i].path, writes[i].body, NULL, 401);
        expect(writes[i].method, writes[i].path, writes[i].body, "not-a-token", 401);
        expect(writes[i].method, writes[i].path, writes[i].body, TOKEN_VICTOR, 403);
        expect(writes[i].method, writes[i].path, writes[i].body, TOKEN_OLGA, 403);
        expect(writes[i].method, writes[i].path, writes[i].body, TOKEN_ALICE, 403);
    }
    /* Reads need a token too. */
    expect("POST", "/api/v1/rules/builtin.node_disk_pressure/test", "{}", NULL, 401);
    expect("POST", "/api/v1/rules/builtin.node_disk_pressure/preview",
           "{\"action\":\"cordon_node\",\"env\":\"demo\"}", NULL, 401);
    /* Hostile bodies. */
    const char *clone = "/api/v1/rules/builtin.node_disk_pressure/clone";
    expect("POST", clone, "{\"new_id\":\"c1\",", TOKEN_ADAM, 400);
    expect("POST", clone, "[1,2]", TOKEN_ADAM, 400);
    expect_field("POST", clone, "{\"new_id\":\"c1\",\"comment\":\"x\",\"yaml\":\"id: x\"}", 400,
                 "yaml");
    expect_field("POST", clone, "{\"new_id\":\"c1\"}", 400, "comment");
    expect_field("POST", clone, "{\"new_id\":\"builtin.x\",\"comment\":\"x\"}", 400, "new_id");
    expect_field("POST", clone, "{\"new_id\":\"../x\",\"comment\":\"x\"}", 400, "new_id");
    expect_field("POST", clone, "{\"new_id\":\"C1\",\"comment\":\"x\"}", 400, "new_id");
    expect_field("POST", clone, "{\"new_id\":\"c1\",\"comment\":\"\"}", 400, "comment");
    size_t big = 70 * 1024;
    char *huge = malloc(big + 64);
    assert_non_null(huge);
    int k = snprintf(huge, 64, "{\"new_id\":\"c1\",\"comment\":\"");
    memset(huge + k, 'a', big);
    strcpy(huge + k + big, "\"}");
    expect("POST", clone, huge, TOKEN_ADAM, 413);
    free(huge);
    char deep[400] = "";
    for (int i = 0; i < 100; i++) {
        strcat(deep, "[");
    }
    char deep_body[500];
    snprintf(deep_body, sizeof(deep_body), "{\"comment\":\"x\",\"env\":%s}", deep);
    expect("POST", "/api/v1/rules/r1/enable", deep_body, TOKEN_ADAM, 400);
    expect_field("POST", "/api/v1/rules/r1/enable", "{\"env\":\"mars\",\"comment\":\"x\"}", 400,
                 "env");
    expect("POST", "/api/v1/rules/r1/enable", "{\"env\":\"demo\\u0000x\",\"comment\":\"x\"}",
           TOKEN_ADAM, 400);
    expect("POST", "/api/v1/rules/no-such-rule/enable", "{\"env\":\"demo\",\"comment\":\"x\"}",
           TOKEN_ADAM, 404);
    expect("PATCH", "/api/v1/rules/builtin.node_disk_pressure",
           "{\"severity\":\"critical\",\"comment\":\"x\"}", TOKEN_ADAM, 409);
    expect_field("PATCH", "/api/v1/rules/no-such-rule",
                 "{\"incident_type\":\"x\",\"comment\":\"x\"}", 400, "incident_type");
    expect("PATCH", "/api/v1/rules/no-such-rule", "{\"comment\":\"x\"}", TOKEN_ADAM, 400);
    expect("POST", "/api/v1/rules/no-such-rule/test", "{}", TOKEN_VICTOR, 404);
    expect_field("POST", "/api/v1/rules/builtin.node_disk_pressure/test", "{\"limit\":0}", 400,
                 "limit");
    /* Path tricks: never a different resource. */
    static const char *const tricks[] = {
        "/api/v1/rules/../audit/enable", "/api/v1/rules/%2e%2e/enable",
        "/api/v1/rules/a%2fb/enable",    "/api/v1/rules/./enable",
        "/api/v1/rules//enable",         "/api/v1/rules/r1/enable/",
        "/api/v1/rules/r1%00/enable",    "/api/v1/rules/r1;x/enable",
    };
    for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        long st = 0;
        json_t *j = api(F.agg.api_port, "POST", tricks[i], "{\"env\":\"demo\",\"comment\":\"x\"}",
                        TOKEN_ADAM, &st);
        json_decref(j);
        if (st != 400 && st != 404) {
            fail_msg("POST %s: status %ld, want 400 or 404", tricks[i], st);
        }
    }
    char longid[400] = "/api/v1/rules/";
    memset(longid + strlen(longid), 'a', 200);
    strcat(longid, "/enable");
    long st = 0;
    json_decref(api(F.agg.api_port, "POST", longid, "{\"env\":\"demo\",\"comment\":\"x\"}",
                    TOKEN_ADAM, &st));
    assert_true(st == 400 || st == 404 || st == 414);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* The audit record of a rule's version `v`: adam, the change, the comment. */
static void expect_audit(const char *id, int v, const char *change, const char *comment) {
    json_t *a = call("GET", "/api/v1/audit?limit=1000", NULL, TOKEN_VICTOR, 200);
    json_t *recs = json_object_get(a, "records");
    char object[160];
    snprintf(object, sizeof(object), "rule/%s", id);
    int found = 0;
    for (size_t i = 0; i < json_array_size(recs); i++) {
        json_t *x = json_array_get(recs, i);
        if (strcmp(json_string_value(json_object_get(x, "verb")), "rule change") ||
            strcmp(json_string_value(json_object_get(x, "object")), object)) {
            continue;
        }
        json_t *d = json_loads(json_string_value(json_object_get(x, "detail")), 0, NULL);
        if (d && json_integer_value(json_object_get(d, "version")) == v) {
            found = 1;
            assert_string_equal(json_string_value(json_object_get(x, "actor")), "adam");
            assert_string_equal(json_string_value(json_object_get(x, "reason")), comment);
            assert_string_equal(json_string_value(json_object_get(d, "change")), change);
        }
        json_decref(d);
    }
    json_decref(a);
    if (!found) {
        fail_msg("no audit record for %s version %d", id, v);
    }
}

/* A rule version in the store that the loader refuses (as if the taxonomy had changed under
 * it): the daemon must still start, leave it out, and let it be replaced over the API. */
static void seed_broken_rule(void) {
    rsre_store *st;
    assert_int_equal(rsre_store_open(F.store, NULL, &st), 0);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(st, 0, &txn), 0);
    rsre_store_rule rec = ROBOT_SRE__STORE__RULE_VERSION__INIT;
    rec.rule_id = "broken-rule";
    rec.version = 1;
    rec.yaml = "id: broken-rule\nname: Broken\ndomain: infrastructure\n"
               "incident_type: no_such_class\nenvironment_scope: all\n"
               "threshold_expression: \"node.disk_pressure == 1\"\nseverity: warning\n"
               "owner: x\nversion: 1\n";
    rec.author = "seed";
    rec.comment = "seeded";
    assert_int_equal(rsre_store_rule_put(txn, &rec), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_store_close(st);
}

static int log_has(const char *needle) {
    FILE *f = fopen(F.log, "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        n += strstr(line, needle) != NULL;
    }
    fclose(f);
    return n;
}

static void test_rules_api(void **state) {
    (void)state;
    seed_broken_rule();
    start_aggregator();
    assert_int_equal(log_has("stored rule broken-rule v1 does not load and is skipped"), 1);
    /* An incident with evidence, and its cordon approval (the built-in plan in demo). */
    int cordon_a = stream_until_incident(&F.nodes[0]);
    assert_int_equal(cordon_a, 1);

    /* The agent as the API shows it: its boot and the seq it was acknowledged up to. */
    json_t *ag = call("GET", "/api/v1/agents", NULL, TOKEN_VICTOR, 200);
    json_t *a0 = json_array_get(json_object_get(ag, "agents"), 0);
    assert_string_equal(json_string_value(json_object_get(a0, "node")), F.nodes[0].name);
    assert_string_equal(json_string_value(json_object_get(a0, "boot_id")), F.nodes[0].boot);
    assert_true(F.nodes[0].acked > 0);
    assert_true((uint64_t)json_integer_value(json_object_get(a0, "seq")) >= F.nodes[0].acked);
    assert_true(json_integer_value(json_object_get(a0, "last_seen_ms")) > 0);
    json_decref(ag);

    test_refusals();

    /* Clone: disabled, version 1, cloned_from. */
    json_t *j = call("POST", "/api/v1/rules/builtin.node_disk_pressure/clone",
                     "{\"new_id\":\"ndp-tuned\",\"comment\":\"tune disk pressure for demo\"}",
                     TOKEN_ADAM, 201);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    assert_true(json_is_false(json_object_get(json_object_get(j, "enabled"), "demo")));
    json_decref(j);
    expect_audit("ndp-tuned", 1, "clone", "tune disk pressure for demo");
    expect("POST", "/api/v1/rules/builtin.node_disk_pressure/clone",
           "{\"new_id\":\"ndp-tuned\",\"comment\":\"again\"}", TOKEN_ADAM, 409);

    /* Edits that cross a boundary: refused, naming the field, nothing stored. */
    expect_field("PATCH", "/api/v1/rules/ndp-tuned", "{\"cooldown_seconds\":30,\"comment\":\"x\"}",
                 400, "cooldown_seconds");
    expect_field("PATCH", "/api/v1/rules/ndp-tuned",
                 "{\"threshold_expression\":\"no.such.signal > 1\",\"comment\":\"x\"}", 400,
                 "threshold_expression");
    expect_field("PATCH", "/api/v1/rules/ndp-tuned",
                 "{\"notification_policy\":{\"channels\":[\"inapp\"],\"route\":\"-----BEGIN RSA "
                 "PRIVATE KEY-----\"},\"comment\":\"x\"}",
                 400, "route");
    expect_field("PATCH", "/api/v1/rules/ndp-tuned", "{\"severity\":null,\"comment\":\"x\"}", 400,
                 "severity");
    json_t *v = rule_versions("ndp-tuned");
    assert_int_equal(json_array_size(v), 1);
    json_decref(v);

    /* Thresholds and routing. */
    j = call("PATCH", "/api/v1/rules/ndp-tuned",
             "{\"threshold_expression\":\"nodefs.used_ratio > 99%\",\"notification_policy\":"
             "{\"channels\":[\"inapp\"],\"route\":\"ops-demo\",\"dedupe_seconds\":600},"
             "\"cooldown_seconds\":120,\"comment\":\"only when almost full\"}",
             TOKEN_ADAM, 201);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    json_decref(j);
    expect_audit("ndp-tuned", 2, "patch", "only when almost full");

    /* Test against the stored evidence: 97 % is not > 99 %. */
    j = rule_test("ndp-tuned");
    assert_true(json_integer_value(json_object_get(j, "incidents_tested")) >= 1);
    assert_true(json_integer_value(json_object_get(j, "evidence_evaluated")) >= 1);
    assert_int_equal(json_integer_value(json_object_get(j, "incidents_matched")), 0);
    json_decref(j);
    expect("PATCH", "/api/v1/rules/ndp-tuned",
           "{\"threshold_expression\":\"nodefs.used_ratio > 90%\",\"comment\":\"earlier\"}",
           TOKEN_ADAM, 201);
    j = rule_test("ndp-tuned");
    assert_true(json_integer_value(json_object_get(j, "incidents_matched")) >= 1);
    assert_true(json_array_size(json_object_get(j, "matches")) >= 1);
    json_decref(j);
    j = rule_test("builtin.node_disk_pressure"); /* node.disk_pressure == 1 */
    assert_true(json_integer_value(json_object_get(j, "incidents_matched")) >= 1);
    /* Its escalations are evaluated too: the 2-node count sees one node per incident, and the
     * pressure has not been held for 10 minutes. */
    json_t *esc =
        json_object_get(json_array_get(json_object_get(j, "incidents"), 0), "escalations");
    assert_int_equal(json_array_size(esc), 3);
    assert_int_equal(json_array_size(json_object_get(j, "escalations")), 3);
    size_t ei;
    json_t *ex;
    json_array_foreach(esc, ei, ex) {
        assert_string_equal(json_string_value(json_object_get(ex, "severity")), "critical");
        assert_true(json_string_length(json_object_get(ex, "when")) > 0);
        if (strstr(json_string_value(json_object_get(ex, "when")), "count(") ||
            strstr(json_string_value(json_object_get(ex, "when")), "held")) {
            assert_int_equal(json_integer_value(json_object_get(ex, "matched")), 0);
        }
    }
    json_decref(j);

    /* Enable / disable per environment. */
    expect("POST", "/api/v1/rules/ndp-tuned/enable", "{\"env\":\"demo\",\"comment\":\"try it\"}",
           TOKEN_ADAM, 201);
    expect("POST", "/api/v1/rules/ndp-tuned/enable", "{\"env\":\"demo\",\"comment\":\"again\"}",
           TOKEN_ADAM, 409);
    expect("POST", "/api/v1/rules/ndp-tuned/enable",
           "{\"env\":\"staging\",\"comment\":\"staging too\"}", TOKEN_ADAM, 201);
    j = call("POST", "/api/v1/rules/ndp-tuned/disable",
             "{\"env\":\"staging\",\"comment\":\"not yet\"}", TOKEN_ADAM, 201);
    assert_true(json_is_true(json_object_get(json_object_get(j, "enabled"), "demo")));
    assert_true(json_is_false(json_object_get(json_object_get(j, "enabled"), "staging")));
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 6);
    json_decref(j);
    expect_audit("ndp-tuned", 6, "disable staging", "not yet");
    v = rule_versions("ndp-tuned");
    assert_int_equal(json_array_size(v), 6);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 5), "comment")),
                        "not yet");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "cloned_from")),
                        "builtin.node_disk_pressure");
    json_decref(v);

    /* Preview. */
    j = call("POST", "/api/v1/rules/ndp-tuned/preview",
             "{\"action\":\"cordon_node\",\"env\":\"production\",\"confidence\":\"high\"}",
             TOKEN_VICTOR, 200);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "approval_required");
    assert_true(json_array_size(json_object_get(j, "reasons")) >= 1);
    json_decref(j);

    /* Reload: a created rule denying cordon_node in demo applies to the next incident. */
    expect("POST", "/api/v1/rules",
           "id: demo-no-cordon\nname: No cordon in demo\ndomain: infrastructure\n"
           "incident_type: node_disk_pressure\nenvironment_scope: [demo]\n"
           "threshold_expression: \"node.disk_pressure == 1\"\nseverity: warning\n"
           "allowed_action_profile:\n  - {action: cordon_node, mode: deny}\n"
           "owner: platform\nversion: 1\n",
           TOKEN_ADAM, 201);
    int cordon_b = stream_until_incident(&F.nodes[1]);
    assert_int_equal(cordon_b, 0);

    /* The broken stored rule is replaced by a valid version; the reload then loads it (every
     * reload before this one skipped it again). */
    int skipped = log_has("does not load and is skipped");
    assert_true(skipped >= 2);
    j = call("POST", "/api/v1/rules",
             "id: broken-rule\nname: Fixed\ndomain: infrastructure\n"
             "incident_type: node_disk_pressure\nenvironment_scope: [staging]\n"
             "threshold_expression: \"node.disk_pressure == 1\"\nseverity: warning\n"
             "owner: platform\nversion: 2\n",
             TOKEN_ADAM, 201);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    json_decref(j);
    assert_int_equal(log_has("does not load and is skipped"), skipped);
    /* clone, 2 patches, 2 enables, a disable, 2 creates */
    assert_int_equal(log_has("rules reloaded after rule="), 8);

    harness_agg_stop(&F.agg);
}

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/rsre-rulesapi-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.store, sizeof(F.store), "%s/store", F.dir);
    snprintf(F.tokens, sizeof(F.tokens), "%s/tokens.yaml", F.dir);
    snprintf(F.operators, sizeof(F.operators), "%s/operators.yaml", F.dir);
    static const struct harness_token toks[] = {{"adam", "admin", TOKEN_ADAM},
                                                {"olga", "operator", TOKEN_OLGA},
                                                {"victor", "viewer", TOKEN_VICTOR},
                                                {"alice", "approver", TOKEN_ALICE}};
    harness_write_tokens(F.tokens, toks, sizeof(toks) / sizeof(toks[0]));
    write_file(F.operators, "operators:\n  - id: alice\n    roles: [approver]\n");
    snprintf(F.nodes[0].name, sizeof(F.nodes[0].name), "rules-node-a");
    snprintf(F.nodes[0].boot, sizeof(F.nodes[0].boot), "5d1c7b3a-2e4f-4a6b-9c8d-000000000001");
    snprintf(F.nodes[1].name, sizeof(F.nodes[1].name), "rules-node-b");
    snprintf(F.nodes[1].boot, sizeof(F.nodes[1].boot), "5d1c7b3a-2e4f-4a6b-9c8d-000000000002");
    grpc_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    harness_agg_kill(&F.agg);
    harness_remove_dir(F.dir);
    curl_global_cleanup();
    grpc_shutdown();
    return 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
