/*
 * The aggregator's OCI executor end to end (docs/executors.md "OCI"): an approved
 * reboot_worker runs against tests/support/oci_api_server.py, which verifies every request's
 * signature with the public key; without OCI configuration the same approval fails with "OCI
 * executor not configured" and nothing reaches OCI.
 *
 * Processes on 127.0.0.1, port 0, in a temp dir: tests/support/kube_api_server.py with seven
 * Nodes whose spec.providerID names OCI instances (oci://ocid1.instance...), whose node-pool
 * label names the pool and whose status.nodeInfo.bootID is set (but node f's);
 * tests/support/oci_api_server.py with that pool and its instances RUNNING (public key of a key
 * made here with openssl genrsa); the real robot-sre-aggregator in demo mode with --kube_api and
 * the oci_* rows (key file, fingerprint, tenancy, user, region, both base URLs at the test server,
 * shorter polling through oci_options). The scripted agent (tests/support/aggregator_harness.c)
 * streams disk pressure for every node: two or more nodes in pressure make the incidents critical,
 * so the engine asks for reboot_worker and replace_worker.
 *
 *   configured      alice and bob (approvers) approve node a's reboot_worker; once the OCI
 *                   server shows the SOFTRESET, node a's Node object gets a new bootID (as the
 *                   kubelet reports after a boot). The record succeeds naming the instance and
 *                   both boot ids; the OCI server performed exactly one SOFTRESET
 *                   on node a's instance, every API request it got verified (keyId, signed
 *                   headers, body digest, RSA-SHA256), and the instance is RUNNING again; the
 *                   incident moved on from where it was (recovering) and its audit shows the
 *                   result.
 *                   Then node b's replace_worker: exactly one signed DELETE of its node from
 *                   the pool with isDecrementSize=false, the record succeeds (instance
 *                   TERMINATING, the pool keeps its size).
 *   not rebooted    restarted with reboot_verify_ms=1500: node d's approved reboot_worker gets
 *                   its SOFTRESET and the instance is RUNNING again, but node d keeps its
 *                   bootID: the record fails with "kept boot id ...: the reboot is not
 *                   confirmed" and the incident escalates, as for any other failed OCI run.
 *   unverifiable    restarted with the default reboot_verify_ms: node f reported no bootID, so
 *                   its reboot succeeds saying "boot id not reported by the node: not verified".
 *   read errors     node g's reads are forbidden (403) once its SOFTRESET is seen; the failed
 *                   read is logged, then node g is readable again with a new bootID and the
 *                   record succeeds naming both ids (a read after the 5 s poll interval).
 *   shutdown        still with the default reboot_verify_ms: node e's approved reboot is
 *                   waiting for a new boot id when the aggregator gets SIGTERM; it exits with
 *                   status 0 at once (the node read and the timer are abandoned; under ASan
 *                   nothing leaks).
 *   not configured  the aggregator restarts on the same store without oci_* rows: approving
 *                   node c's reboot_worker fails the record with "OCI executor not configured"
 *                   and the incident escalates; the OCI server got no request at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <poll.h>
#include <sys/stat.h>

#include "common/error.h"
#include "exec/oci_sign.h"
#include "store/store.h"

#define AGGREGATOR RSRE_BINARY_DIR "/aggregator/daemon/robot-sre-aggregator"
#define KUBE_SERVER RSRE_SOURCE_DIR "/tests/support/kube_api_server.py"
#define OCI_SERVER RSRE_SOURCE_DIR "/tests/support/oci_api_server.py"
#define WAIT_MS 30000
#define MAX_STREAMS 7

#include "../support/aggregator_harness.c"

#define TENANCY "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq"
#define USER "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq"
#define INST_A "ocid1.instance.oc1.iad.anuwcljt3b7zqwqc3y4f5sroxbfbcu4mhscgldm3dq4mv6xkkqquqnthmxqa"
#define INST_B "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcpgyk4m3f4tfo5flzstnxvbu4bb5obj3uhxz4rcpxk6wq"
#define INST_C "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcgbgbfwuq2odbkqcqsujfe3ilaakpnpmkqn2yvylcd2ha"
#define INST_D "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcx2rdlgm5ui4ws7ajbtyw3oqjtpk7nf6fxpzzjdq6sa3q"
#define INST_E "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcm4pqvk2ytw6hdo5rlbnixa7scfu3e2qjg6zkwt5bvh7a"
#define INST_F "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcq7vd2nwmzka5ejxgh4ryo6ltbcsp3iuf4n2mdw7xyeqa"
#define INST_G "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcz5ubh3xeqrk7nwtm2gfoy4vjdsla6pcri3wk5hne7tqa"
#define POOL "ocid1.nodepool.oc1.iad.aaaaaaaaxa4tkmbvgjstsyzzg4ytanzrmqzdsmzqgrqtgzbtgbqtgmbsguyt"
#define NODE_A "10.0.20.11"
#define NODE_B "10.0.20.12"
#define NODE_C "10.0.20.13"
#define NODE_D "10.0.20.14"
#define NODE_E "10.0.20.15"
#define NODE_F "10.0.20.16"
#define NODE_G "10.0.20.17"
#define BOOT_G_NEW "6b2e90f4-0c7d-4a85-9e3b-5d1f8a2c7b17"
#define BOOT_A_NEW "9d41c7e0-52a8-4f6e-8b1d-2f7a0c5e1a11" /* node a after its reboot */
#define TOKEN_ALICE "oci-token-alice-approver"
#define TOKEN_BOB "oci-token-bob-approver"

static struct {
    char dir[64], store[128], tokens[128], operators[128], log[160], key[128], pub[128];
    char fp[RSRE_OCI_FINGERPRINT_LEN];
    struct harness_daemon agg;
    pid_t kube_pid, oci_pid;
    int kube_port, oci_port, runs;
    struct node_log nodes[7];
} F;

/* A request to a test server (no token); the decoded answer. */
static json_t *srv(int port, const char *method, const char *path, const char *body) {
    long st = 0;
    json_t *j = api(port, method, path, body, NULL, &st);
    if (st < 200 || st > 299) {
        fail_msg("%s %s on the test server: status %ld", method, path, st);
    }
    return j;
}

/* Without OCI (0), with it (1), with it and reboot_verify_ms=1500 (2). */
static void start_aggregator(int with_oci) {
    char a[24][600];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--listen=127.0.0.1:0");
    ARG("--env=demo");
    ARG("--data_dir=%s", F.store);
    ARG("--tick_ms=1000");
    ARG("--api_listen=127.0.0.1:0");
    ARG("--api_tokens_file=%s", F.tokens);
    ARG("--operators_file=%s", F.operators);
    ARG("--kube_api=http://127.0.0.1:%d", F.kube_port);
    if (with_oci) {
        ARG("--oci_tenancy=%s", TENANCY);
        ARG("--oci_user=%s", USER);
        ARG("--oci_fingerprint=%s", F.fp);
        ARG("--oci_key_file=%s", F.key);
        ARG("--oci_region=us-ashburn-1");
        ARG("--oci_compute_url=http://127.0.0.1:%d", F.oci_port);
        ARG("--oci_containerengine_url=http://127.0.0.1:%d", F.oci_port);
        ARG("--oci_options=poll_interval_ms=50,soft_reset_timeout_ms=10000,timeout_ms=5000");
    }
    if (with_oci == 2) {
        ARG("--reboot_verify_ms=1500");
    }
#undef ARG
    char *argv[26] = {AGGREGATOR};
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    F.runs++;
    snprintf(F.log, sizeof(F.log), "%s/aggregator-%d.log", F.dir, F.runs);
    harness_agg_start(&F.agg, argv, F.log);
}

static json_t *get(const char *path) {
    long st = 0;
    json_t *j = api(F.agg.api_port, "GET", path, NULL, TOKEN_ALICE, &st);
    if (st != 200) {
        fail_msg("GET %s: %ld", path, st);
    }
    return j;
}

/* The incident id of `node` (static buffer; "" when none yet). */
static const char *incident_of(const char *node) {
    static char id[RSRE_STORE_ID_MAX + 1];
    id[0] = '\0';
    json_t *inc = get("/api/v1/incidents");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(inc, "incidents"), i, x) {
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(x, "resource_scope"), k, r) {
            const char *nm = json_string_value(json_object_get(r, "name"));
            if (nm && !strcmp(nm, node)) {
                snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(x, "id")));
            }
        }
    }
    json_decref(inc);
    return id;
}

/* The pending approval of `action` for `node`'s incident (static; "" when none). */
static const char *pending_approval(const char *node, const char *action) {
    static char id[RSRE_STORE_ID_MAX + 1];
    id[0] = '\0';
    const char *inc = incident_of(node);
    if (!inc[0]) {
        return id;
    }
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/approvals?state=pending&incident=%s", inc);
    json_t *ap = get(path);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(ap, "approvals"), i, x) {
        const char *act = json_string_value(json_object_get(x, "action"));
        if (act && strstr(act, action)) {
            snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(x, "id")));
        }
    }
    json_decref(ap);
    return id;
}

/* Streams pressure for every node until `node`'s `action` approval is pending. */
static void stream_until_requested(const char *node, const char *action, char *approval,
                                   size_t cap) {
    struct node_log *nodes[7];
    for (size_t i = 0; i < 7; i++) {
        nodes[i] = &F.nodes[i];
    }
    client_open_nodes(F.agg.grpc_port, nodes, 7);
    int64_t end = mono_ms() + WAIT_MS;
    while (!pending_approval(node, action)[0]) {
        if (mono_ms() > end) {
            log_tail(F.log, 30);
            fail_msg("no %s approval for %s (see %s)", action, node, F.log);
        }
        pump(200);
    }
    snprintf(approval, cap, "%s", pending_approval(node, action));
    client_close();
}

/* Votes until the approval is decided; returns its final state. */
static void approve_all(const char *approval) {
    const char *tokens[] = {TOKEN_ALICE, TOKEN_BOB};
    for (size_t i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/approvals/%s/approve", approval);
        long st = 0;
        json_t *j =
            api(F.agg.api_port, "POST", path, "{\"comment\":\"reboot it\"}", tokens[i], &st);
        const char *state = json_string_value(json_object_get(j, "state"));
        if (st != 200) {
            fail_msg("vote on %s: %ld", approval, st);
        }
        int decided = state && strcmp(state, "pending");
        json_decref(j);
        if (decided) {
            return;
        }
    }
}

/* Waits until the approved `action` record of `node`'s incident is finished; returns it. */
static json_t *action_record(const char *node, const char *action) {
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/actions?incident=%s", incident_of(node));
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        json_t *a = get(path);
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(a, "actions"), i, x) {
            const char *state = json_string_value(json_object_get(x, "state"));
            if (!strcmp(json_string_value(json_object_get(x, "action_id")), action) &&
                json_string_value(json_object_get(x, "approval_id"))[0] &&
                (!strcmp(state, "succeeded") || !strcmp(state, "failed"))) {
                json_t *rec = json_incref(x);
                json_decref(a);
                return rec;
            }
        }
        json_decref(a);
        if (mono_ms() > end) {
            log_tail(F.log, 30);
            fail_msg("the %s record of %s did not finish (see %s)", action, node, F.log);
        }
        sleep_ms(100);
    }
}

static const char *lifecycle_of(const char *node) {
    static char state[32];
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/incidents/%s", incident_of(node));
    json_t *j = get(path);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(j, "state")));
    json_decref(j);
    return state;
}

/* A Node object of the pool: providerID, pool label and status.nodeInfo.bootID (boot NULL: no
 * status at all). */
static void node_json(char *out, size_t cap, const char *name, const char *inst, const char *boot) {
    snprintf(out, cap,
             "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":{\"oci.oraclecloud.com/node-pool-id\":\"%s\"}},"
             "\"spec\":{\"providerID\":\"oci://%s\"}%s%s%s}",
             name, POOL, inst, boot ? ",\"status\":{\"nodeInfo\":{\"bootID\":\"" : "",
             boot ? boot : "", boot ? "\"}}" : "");
}

/* Waits until the OCI test server has performed `action` on `inst`. */
static void wait_oci_action(const char *inst, const char *action) {
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        json_t *acts = srv(F.oci_port, "GET", "/_test/actions", NULL);
        json_t *list = json_is_array(acts) ? acts : json_object_get(acts, "actions");
        int seen = 0;
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) {
            char *d = json_dumps(x, JSON_COMPACT);
            seen |= strstr(d, action) && strstr(d, inst);
            free(d);
        }
        json_decref(acts);
        if (seen) {
            return;
        }
        if (mono_ms() > end) {
            log_tail(F.log, 30);
            fail_msg("OCI never got %s on %s (see %s)", action, inst, F.log);
        }
        sleep_ms(20);
    }
}

/* Waits until the aggregator's log has a line containing `needle`. */
static void wait_log(const char *needle) {
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        FILE *f = fopen(F.log, "r");
        char line[2048];
        int seen = 0;
        while (f && !seen && fgets(line, sizeof(line), f)) {
            seen = strstr(line, needle) != NULL;
        }
        if (f) {
            fclose(f);
        }
        if (seen) {
            return;
        }
        if (mono_ms() > end) {
            log_tail(F.log, 30);
            fail_msg("the aggregator never logged '%s' (see %s)", needle, F.log);
        }
        sleep_ms(20);
    }
}

static void test_reboot_worker(void **state) {
    (void)state;
    /* Configured: an approved reboot runs against the OCI test server, signed. */
    start_aggregator(1);
    char approval[RSRE_STORE_ID_MAX + 1];
    stream_until_requested(NODE_A, "reboot_worker", approval, sizeof(approval));
    json_decref(srv(F.oci_port, "DELETE", "/_test/requests", NULL));
    approve_all(approval);
    /* The machine rebooted: the kubelet reports the new kernel's boot id. */
    wait_oci_action(INST_A, "SOFTRESET");
    char body[1024];
    node_json(body, sizeof(body), NODE_A, INST_A, BOOT_A_NEW);
    json_decref(srv(F.kube_port, "POST", "/_test/objects", body));
    json_t *rec = action_record(NODE_A, "reboot_worker");
    const char *result = json_string_value(json_object_get(rec, "result"));
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded")) {
        log_tail(F.log, 30);
        fail_msg("reboot_worker on %s: %s", NODE_A, result);
    }
    assert_non_null(strstr(result, INST_A));
    assert_non_null(strstr(result, "SOFTRESET"));
    char ids[160];
    snprintf(ids, sizeof(ids), "boot id %s -> %s", F.nodes[0].boot, BOOT_A_NEW);
    if (!strstr(result, ids)) {
        fail_msg("the result does not name both boot ids (%s): %s", ids, result);
    }
    json_decref(rec);
    json_t *acts = srv(F.oci_port, "GET", "/_test/actions", NULL);
    json_t *list = json_is_array(acts) ? acts : json_object_get(acts, "actions");
    size_t n_soft = 0, i;
    json_t *x;
    json_array_foreach(list, i, x) {
        char *d = json_dumps(x, JSON_COMPACT);
        n_soft += strstr(d, "SOFTRESET") && strstr(d, INST_A);
        assert_null(strstr(d, INST_B)); /* the other nodes were left alone */
        assert_null(strstr(d, INST_C));
        assert_null(strstr(d, INST_D));
        assert_null(strstr(d, INST_E));
        assert_null(strstr(d, INST_F));
        assert_null(strstr(d, INST_G));
        free(d);
    }
    assert_int_equal(n_soft, 1);
    json_decref(acts);
    json_t *reqs = srv(F.oci_port, "GET", "/_test/requests", NULL);
    list = json_is_array(reqs) ? reqs : json_object_get(reqs, "requests");
    assert_true(json_array_size(list) >= 2); /* GET, POST SOFTRESET, GETs until RUNNING */
    int posts = 0;
    json_array_foreach(list, i, x) {
        if (!json_is_true(json_object_get(x, "verified"))) {
            fail_msg("OCI request %s %s not verified: %s",
                     json_string_value(json_object_get(x, "method")),
                     json_string_value(json_object_get(x, "path")),
                     json_string_value(json_object_get(x, "reason")));
        }
        posts += !strcmp(json_string_value(json_object_get(x, "method")), "POST");
    }
    assert_int_equal(posts, 1);
    json_decref(reqs);
    json_t *inst = srv(F.oci_port, "GET", "/_test/instances/" INST_A, NULL);
    assert_string_equal(json_string_value(json_object_get(inst, "lifecycleState")), "RUNNING");
    json_decref(inst);
    const char *lc = lifecycle_of(NODE_A);
    if (strcmp(lc, "recovering") && strcmp(lc, "contained") && strcmp(lc, "resolved")) {
        fail_msg("after the reboot the incident of %s is %s", NODE_A, lc);
    }

    /* replace_worker on node b: its instance leaves the pool, which keeps its size. */
    stream_until_requested(NODE_B, "replace_worker", approval, sizeof(approval));
    json_decref(srv(F.oci_port, "DELETE", "/_test/requests", NULL));
    approve_all(approval);
    rec = action_record(NODE_B, "replace_worker");
    result = json_string_value(json_object_get(rec, "result"));
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded")) {
        log_tail(F.log, 30);
        fail_msg("replace_worker on %s: %s", NODE_B, result);
    }
    assert_non_null(strstr(result, INST_B));
    assert_non_null(strstr(result, "keeps its size"));
    json_decref(rec);
    reqs = srv(F.oci_port, "GET", "/_test/requests", NULL);
    list = json_is_array(reqs) ? reqs : json_object_get(reqs, "requests");
    int deletes = 0;
    json_array_foreach(list, i, x) {
        assert_true(json_is_true(json_object_get(x, "verified")));
        const char *path = json_string_value(json_object_get(x, "path"));
        if (!strcmp(json_string_value(json_object_get(x, "method")), "DELETE")) {
            deletes++;
            assert_non_null(strstr(path, "/20180222/nodePools/" POOL "/node/" INST_B));
            assert_non_null(strstr(path, "isDecrementSize=false"));
        }
    }
    assert_int_equal(deletes, 1);
    json_decref(reqs);
    harness_agg_stop(&F.agg);

    /* Not rebooted: the instance is RUNNING again but node d keeps its boot id. */
    json_decref(srv(F.oci_port, "DELETE", "/_test/requests", NULL));
    start_aggregator(2);
    stream_until_requested(NODE_D, "reboot_worker", approval, sizeof(approval));
    approve_all(approval);
    rec = action_record(NODE_D, "reboot_worker");
    result = json_string_value(json_object_get(rec, "result"));
    if (strcmp(json_string_value(json_object_get(rec, "state")), "failed") ||
        !strstr(result, "the reboot is not confirmed")) {
        log_tail(F.log, 30);
        fail_msg("reboot_worker on %s with an unchanged boot id: %s", NODE_D, result);
    }
    snprintf(ids, sizeof(ids), "node %s kept boot id %s", NODE_D, F.nodes[3].boot);
    if (!strstr(result, ids)) {
        fail_msg("the result does not say '%s': %s", ids, result);
    }
    json_decref(rec);
    wait_oci_action(INST_D, "SOFTRESET"); /* it was sent, and only once */
    acts = srv(F.oci_port, "GET", "/_test/actions", NULL);
    list = json_is_array(acts) ? acts : json_object_get(acts, "actions");
    n_soft = 0;
    json_array_foreach(list, i, x) {
        char *d = json_dumps(x, JSON_COMPACT);
        n_soft += strstr(d, "SOFTRESET") && strstr(d, INST_D);
        free(d);
    }
    assert_int_equal(n_soft, 1);
    json_decref(acts);
    inst = srv(F.oci_port, "GET", "/_test/instances/" INST_D, NULL);
    assert_string_equal(json_string_value(json_object_get(inst, "lifecycleState")), "RUNNING");
    json_decref(inst);
    assert_string_equal(lifecycle_of(NODE_D), "escalated");
    harness_agg_stop(&F.agg);

    /* A node without a bootID: the reboot succeeds, said to be unverified. */
    start_aggregator(1);
    stream_until_requested(NODE_F, "reboot_worker", approval, sizeof(approval));
    approve_all(approval);
    rec = action_record(NODE_F, "reboot_worker");
    result = json_string_value(json_object_get(rec, "result"));
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") ||
        !strstr(result, "boot id not reported by the node: not verified") ||
        !strstr(result, INST_F)) {
        log_tail(F.log, 30);
        fail_msg("reboot_worker on %s without a bootID: %s", NODE_F, result);
    }
    json_decref(rec);

    /* Node reads fail while waiting: logged and retried, then the new boot id confirms. */
    stream_until_requested(NODE_G, "reboot_worker", approval, sizeof(approval));
    approve_all(approval);
    wait_oci_action(INST_G, "SOFTRESET");
    json_decref(srv(F.kube_port, "POST", "/_test/config",
                    "{\"forbidden\":[{\"verb\":\"get\",\"resource\":\"nodes\",\"name\":\"" NODE_G
                    "\"}]}"));
    char seen[160];
    snprintf(seen, sizeof(seen), "node=%s: cannot read the node for its boot id", NODE_G);
    wait_log(seen);
    node_json(body, sizeof(body), NODE_G, INST_G, BOOT_G_NEW);
    json_decref(srv(F.kube_port, "POST", "/_test/objects", body));
    json_decref(srv(F.kube_port, "POST", "/_test/config", "{\"forbidden\":[]}"));
    rec = action_record(NODE_G, "reboot_worker");
    result = json_string_value(json_object_get(rec, "result"));
    snprintf(ids, sizeof(ids), "boot id %s -> %s", F.nodes[6].boot, BOOT_G_NEW);
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") ||
        !strstr(result, ids)) {
        log_tail(F.log, 30);
        fail_msg("reboot_worker on %s after failed reads: %s (expected '%s')", NODE_G, result, ids);
    }
    json_decref(rec);

    /* Shutdown while a reboot waits for its new boot id: nothing is left behind. */
    stream_until_requested(NODE_E, "reboot_worker", approval, sizeof(approval));
    approve_all(approval);
    wait_oci_action(INST_E, "SOFTRESET");
    char waiting[160];
    snprintf(waiting, sizeof(waiting), "waiting up to 600000 ms for a boot id other than %s",
             F.nodes[4].boot);
    wait_log(waiting);
    harness_agg_stop(&F.agg); /* status 0: under ASan, no leak and no use after free */

    /* Not configured: the approval fails clearly, nothing reaches OCI. */
    json_decref(srv(F.oci_port, "DELETE", "/_test/requests", NULL));
    start_aggregator(0);
    stream_until_requested(NODE_C, "reboot_worker", approval, sizeof(approval));
    approve_all(approval);
    rec = action_record(NODE_C, "reboot_worker");
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "failed");
    assert_non_null(
        strstr(json_string_value(json_object_get(rec, "result")), "OCI executor not configured"));
    json_decref(rec);
    reqs = srv(F.oci_port, "GET", "/_test/requests", NULL);
    list = json_is_array(reqs) ? reqs : json_object_get(reqs, "requests");
    assert_int_equal(json_array_size(list), 0);
    json_decref(reqs);
    assert_string_equal(lifecycle_of(NODE_C), "escalated");
    harness_agg_stop(&F.agg);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static int run_cmd(char *const argv[]) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The seven Nodes (each with its agent's boot id as bootID) and their pool. */
static void put_nodes(void) {
    static const char *const inst[7] = {INST_A, INST_B, INST_C, INST_D, INST_E, INST_F, INST_G};
    char body[8192] = "[", one[1024];
    for (size_t i = 0; i < 7; i++) {
        node_json(one, sizeof(one), F.nodes[i].name, inst[i],
                  strcmp(F.nodes[i].name, NODE_F) ? F.nodes[i].boot : NULL);
        size_t len = strlen(body);
        snprintf(body + len, sizeof(body) - len, "%s%s", i ? "," : "", one);
    }
    size_t len = strlen(body);
    snprintf(body + len, sizeof(body) - len, "]");
    json_decref(srv(F.kube_port, "POST", "/_test/objects", body));
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"name\":\"workers\",\"size\":7,"
             "\"nodes\":[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"]}",
             POOL, INST_A, INST_B, INST_C, INST_D, INST_E, INST_F, INST_G);
    json_decref(srv(F.oci_port, "POST", "/_test/nodepools", body));
}

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/rsre-aggoci-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.store, sizeof(F.store), "%s/store", F.dir);
    snprintf(F.tokens, sizeof(F.tokens), "%s/tokens.yaml", F.dir);
    snprintf(F.operators, sizeof(F.operators), "%s/operators.yaml", F.dir);
    snprintf(F.key, sizeof(F.key), "%s/oci_api_key.pem", F.dir);
    snprintf(F.pub, sizeof(F.pub), "%s/oci_api_key_public.pem", F.dir);
    char *g[] = {"openssl", "genrsa", "-out", F.key, "2048", NULL};
    char *p[] = {"openssl", "rsa", "-in", F.key, "-pubout", "-out", F.pub, NULL};
    assert_int_equal(run_cmd(g), 0);
    assert_int_equal(run_cmd(p), 0);
    struct rsre_oci_key *k = NULL;
    char err[256];
    assert_int_equal(rsre_oci_key_load_file(F.key, NULL, &k, err, sizeof(err)), 0);
    snprintf(F.fp, sizeof(F.fp), "%s", rsre_oci_key_fingerprint(k));
    rsre_oci_key_free(k);
    static const struct harness_token toks[] = {{"alice", "approver", TOKEN_ALICE},
                                                {"bob", "approver", TOKEN_BOB}};
    harness_write_tokens(F.tokens, toks, 2);
    write_file(F.operators, "operators:\n  - id: alice\n    roles: [approver]\n"
                            "  - id: bob\n    roles: [approver]\n");
    snprintf(F.nodes[0].name, sizeof(F.nodes[0].name), NODE_A);
    snprintf(F.nodes[0].boot, sizeof(F.nodes[0].boot), "3c6ad1d2-1f0b-4c36-9a57-000000000011");
    snprintf(F.nodes[1].name, sizeof(F.nodes[1].name), NODE_B);
    snprintf(F.nodes[1].boot, sizeof(F.nodes[1].boot), "3c6ad1d2-1f0b-4c36-9a57-000000000012");
    snprintf(F.nodes[2].name, sizeof(F.nodes[2].name), NODE_C);
    snprintf(F.nodes[2].boot, sizeof(F.nodes[2].boot), "3c6ad1d2-1f0b-4c36-9a57-000000000013");
    snprintf(F.nodes[3].name, sizeof(F.nodes[3].name), NODE_D);
    snprintf(F.nodes[3].boot, sizeof(F.nodes[3].boot), "3c6ad1d2-1f0b-4c36-9a57-000000000014");
    snprintf(F.nodes[4].name, sizeof(F.nodes[4].name), NODE_E);
    snprintf(F.nodes[4].boot, sizeof(F.nodes[4].boot), "3c6ad1d2-1f0b-4c36-9a57-000000000015");
    snprintf(F.nodes[5].name, sizeof(F.nodes[5].name), NODE_F);
    snprintf(F.nodes[5].boot, sizeof(F.nodes[5].boot), "3c6ad1d2-1f0b-4c36-9a57-000000000016");
    snprintf(F.nodes[6].name, sizeof(F.nodes[6].name), NODE_G);
    snprintf(F.nodes[6].boot, sizeof(F.nodes[6].boot), "3c6ad1d2-1f0b-4c36-9a57-000000000017");
    grpc_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char klog[160], olog[160];
    snprintf(klog, sizeof(klog), "%s/kube-api.log", F.dir);
    snprintf(olog, sizeof(olog), "%s/oci-api.log", F.dir);
    char *kargv[] = {"/usr/bin/python3", KUBE_SERVER, "--port", "0", NULL};
    F.kube_pid = harness_start_py(kargv, klog, &F.kube_port);
    char *oargv[] = {"/usr/bin/python3",
                     OCI_SERVER,
                     "--port",
                     "0",
                     "--public-key",
                     F.pub,
                     "--tenancy",
                     TENANCY,
                     "--user",
                     USER,
                     "--transition",
                     "0.1",
                     NULL};
    F.oci_pid = harness_start_py(oargv, olog, &F.oci_port);
    put_nodes();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    harness_agg_kill(&F.agg);
    pid_t *pids[] = {&F.kube_pid, &F.oci_pid};
    for (size_t i = 0; i < 2; i++) {
        if (*pids[i] > 0) {
            kill(*pids[i], SIGKILL);
            waitpid(*pids[i], NULL, 0);
        }
    }
    harness_remove_dir(F.dir);
    curl_global_cleanup();
    grpc_shutdown();
    return 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reboot_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
