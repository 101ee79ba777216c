/*
 * Tests of the Kubernetes v1 JSON decoders (common/kube_json.h): the fixtures under
 * tests/data/kube (real object shapes), RFC 3339 times, missing fields, wrong types, huge and
 * hostile strings, lists and watch lines, and randomly mutated input (errors, never crashes).
 *
 * RSRE_TEST_SEED=<n> changes the seed of the random-input test (the seed is printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/kube_json.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *slurp(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/kube/%s", RSRE_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len) {
        *len = (size_t)n;
    }
    return buf;
}

static json_t *load_fixture(const char *name) {
    size_t len;
    char *buf = slurp(name, &len);
    json_t *j = NULL;
    char err[RSRE_KUBE_ERR_LEN];
    assert_int_equal(rsre_kube_json_load(buf, len, &j, err, sizeof(err)), 0);
    free(buf);
    return j;
}

static json_t *parse(const char *text) {
    json_t *j = NULL;
    char err[RSRE_KUBE_ERR_LEN];
    int rc = rsre_kube_json_load(text, strlen(text), &j, err, sizeof(err));
    if (rc != 0) {
        fail_msg("test JSON does not parse: %s: %s", err, text);
    }
    return j;
}

static struct rsre_kube_node *node_fixture(const char *name) {
    json_t *j = load_fixture(name);
    struct rsre_kube_node *n = NULL;
    char err[RSRE_KUBE_ERR_LEN] = "";
    int rc = rsre_kube_node_decode(j, &n, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s: %s", name, err);
    }
    json_decref(j);
    return n;
}

static struct rsre_kube_pod *pod_fixture(const char *name) {
    json_t *j = load_fixture(name);
    struct rsre_kube_pod *p = NULL;
    char err[RSRE_KUBE_ERR_LEN] = "";
    int rc = rsre_kube_pod_decode(j, &p, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s: %s", name, err);
    }
    json_decref(j);
    return p;
}

/* Decodes `text` as the given kind and returns the code; err receives the message. */
static int decode_text(char kind, const char *text, char *err, size_t err_len) {
    json_t *j = parse(text);
    int rc;
    err[0] = '\0';
    if (kind == 'n') {
        struct rsre_kube_node *n = (void *)1;
        rc = rsre_kube_node_decode(j, &n, err, err_len);
        assert_true(rc == 0 ? n != NULL : n == NULL);
        rsre_kube_node_free(n);
    } else if (kind == 'p') {
        struct rsre_kube_pod *p = (void *)1;
        rc = rsre_kube_pod_decode(j, &p, err, err_len);
        assert_true(rc == 0 ? p != NULL : p == NULL);
        rsre_kube_pod_free(p);
    } else {
        struct rsre_kube_event *e = (void *)1;
        rc = rsre_kube_event_decode(j, &e, err, err_len);
        assert_true(rc == 0 ? e != NULL : e == NULL);
        rsre_kube_event_free(e);
    }
    json_decref(j);
    return rc;
}

/* ---- times -------------------------------------------------------------------------------- */

static void test_time_parse(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2024-05-02T07:58:12Z", INT64_C(1714636692000)},
        {"2024-05-02T09:58:12+02:00", INT64_C(1714636692000)},
        {"2024-05-02T02:28:12-05:30", INT64_C(1714636692000)},
        {"2024-05-02t07:58:12z", INT64_C(1714636692000)},
        {"2024-02-29T23:59:59.999Z", INT64_C(1709251199999)},
        {"2024-02-29T23:59:59.999999999Z", INT64_C(1709251199999)},
        {"2024-02-29T23:59:59.9Z", INT64_C(1709251199900)},
        {"0001-01-01T00:00:00Z", INT64_C(-62135596800000)},
        {"9999-12-31T23:59:59Z", INT64_C(253402300799000)},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t ms = -1;
        if (rsre_kube_time_parse(good[i].s, &ms) != 0 || ms != good[i].ms) {
            fail_msg("%s: got %" PRId64 ", want %" PRId64, good[i].s, ms, good[i].ms);
        }
    }
    static const char *const bad[] = {
        "",
        "2024-05-02",
        "2024-05-02T07:58:12",  /* no zone */
        "2024-05-02 07:58:12Z", /* space */
        "2024-13-02T07:58:12Z", /* month */
        "2024-00-02T07:58:12Z",
        "2023-02-29T07:58:12Z", /* not a leap year */
        "2024-04-31T07:58:12Z",
        "2024-05-02T24:00:00Z",
        "2024-05-02T07:60:12Z",
        "2024-05-02T07:58:61Z",
        "2024-05-02T07:58:12.Z",           /* empty fraction */
        "2024-05-02T07:58:12.1234567890Z", /* 10 digits */
        "2024-05-02T07:58:12Zjunk",
        "2024-05-02T07:58:12+0200",
        "2024-05-02T07:58:12+24:00",
        "0000-01-01T00:00:00Z",
        "Thu, 02 May 2024 07:58:12 GMT",
        "２０２４-05-02T07:58:12Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 0;
        if (rsre_kube_time_parse(bad[i], &ms) != RSRE_EINVALID) {
            fail_msg("accepted bad time \"%s\"", bad[i]);
        }
    }
    assert_int_equal(rsre_kube_time_parse(NULL, &(int64_t){0}), RSRE_EINVALID);
}

/* ---- nodes -------------------------------------------------------------------------------- */

static void test_node_ready(void **state) {
    (void)state;
    struct rsre_kube_node *n = node_fixture("node-ready.json");
    assert_string_equal(n->meta.name, "10.0.10.21");
    assert_string_equal(n->meta.ns, "");
    assert_string_equal(n->meta.uid, "2f6d3e4a-7b1c-4c55-9a8e-0d3b6f1e2a41");
    assert_string_equal(n->meta.rv, "48213377");
    assert_int_equal(n->meta.created_ms, INT64_C(1710148492000));
    const struct rsre_kube_condition *r = &n->cond[RSRE_KUBE_NODE_READY];
    assert_int_equal(r->status, RSRE_KUBE_COND_TRUE);
    assert_string_equal(r->reason, "KubeletReady");
    assert_string_equal(r->message, "kubelet is posting ready status");
    assert_int_equal(r->last_heartbeat_ms, INT64_C(1714635663000));
    const struct rsre_kube_condition *d = &n->cond[RSRE_KUBE_NODE_DISK_PRESSURE];
    assert_int_equal(d->status, RSRE_KUBE_COND_FALSE);
    assert_string_equal(d->reason, "KubeletHasNoDiskPressure");
    assert_int_equal(n->cond[RSRE_KUBE_NODE_MEMORY_PRESSURE].status, RSRE_KUBE_COND_FALSE);
    assert_int_equal(n->cond[RSRE_KUBE_NODE_PID_PRESSURE].status, RSRE_KUBE_COND_FALSE);
    /* Not reported by this node (no CNI that sets it). */
    assert_int_equal(n->cond[RSRE_KUBE_NODE_NETWORK_UNAVAILABLE].status, RSRE_KUBE_COND_UNSET);
    assert_null(n->cond[RSRE_KUBE_NODE_NETWORK_UNAVAILABLE].message);
    assert_int_equal(n->ntaints, 0);
    assert_false(n->unschedulable);
    assert_string_equal(
        n->provider_id,
        "ocid1.instance.oc1.iad.anuwcljtexampleexampleexampleexampleexampleexamplec4q");
    assert_int_equal(n->naddresses, 2);
    assert_string_equal(n->addresses[0].type, "InternalIP");
    assert_string_equal(n->addresses[0].address, "10.0.10.21");
    assert_string_equal(rsre_kube_node_cond_name(RSRE_KUBE_NODE_PID_PRESSURE), "PIDPressure");
    rsre_kube_node_free(n);
}

static void test_node_pressure_and_same_state(void **state) {
    (void)state;
    struct rsre_kube_node *ok = node_fixture("node-ready.json");
    struct rsre_kube_node *dp = node_fixture("node-disk-pressure.json");
    const struct rsre_kube_condition *d = &dp->cond[RSRE_KUBE_NODE_DISK_PRESSURE];
    assert_int_equal(d->status, RSRE_KUBE_COND_TRUE);
    assert_string_equal(d->reason, "KubeletHasDiskPressure");
    assert_int_equal(d->last_transition_ms, INT64_C(1714636692000));
    assert_int_equal(dp->ntaints, 1);
    assert_string_equal(dp->taints[0].key, "node.kubernetes.io/disk-pressure");
    assert_string_equal(dp->taints[0].value, "");
    assert_int_equal(dp->taints[0].effect, RSRE_KUBE_TAINT_NO_SCHEDULE);
    assert_int_equal(dp->taints[0].time_added_ms, INT64_C(1714636693000));
    assert_false(rsre_kube_node_same_state(ok, dp));
    assert_true(rsre_kube_node_same_state(dp, dp));

    /* Heartbeat-only updates (every status report) are not changes. */
    json_t *j = load_fixture("node-disk-pressure.json");
    json_t *conds = json_object_get(json_object_get(j, "status"), "conditions");
    for (size_t i = 0; i < json_array_size(conds); i++) {
        json_object_set_new(json_array_get(conds, i), "lastHeartbeatTime",
                            json_string("2024-05-02T08:12:00Z"));
    }
    json_object_set_new(json_object_get(j, "metadata"), "resourceVersion", json_string("48230000"));
    struct rsre_kube_node *hb;
    assert_int_equal(rsre_kube_node_decode(j, &hb, NULL, 0), 0);
    assert_true(rsre_kube_node_same_state(dp, hb));
    /* ... but a message change is. */
    json_object_set_new(json_array_get(conds, 1), "message", json_string("changed"));
    struct rsre_kube_node *msg;
    assert_int_equal(rsre_kube_node_decode(j, &msg, NULL, 0), 0);
    assert_false(rsre_kube_node_same_state(dp, msg));
    json_decref(j);
    rsre_kube_node_free(hb);
    rsre_kube_node_free(msg);
    rsre_kube_node_free(ok);
    rsre_kube_node_free(dp);
}

static void test_node_notready_cordoned(void **state) {
    (void)state;
    struct rsre_kube_node *n = node_fixture("node-notready-cordoned.json");
    assert_true(n->unschedulable);
    assert_int_equal(n->cond[RSRE_KUBE_NODE_READY].status, RSRE_KUBE_COND_UNKNOWN);
    assert_string_equal(n->cond[RSRE_KUBE_NODE_READY].reason, "NodeStatusUnknown");
    assert_int_equal(n->cond[RSRE_KUBE_NODE_NETWORK_UNAVAILABLE].status, RSRE_KUBE_COND_FALSE);
    assert_string_equal(n->cond[RSRE_KUBE_NODE_NETWORK_UNAVAILABLE].reason, "CalicoIsUp");
    assert_int_equal(n->ntaints, 3);
    assert_int_equal(n->taints[1].effect, RSRE_KUBE_TAINT_NO_EXECUTE);
    assert_string_equal(n->taints[2].key, "node.kubernetes.io/unschedulable");
    rsre_kube_node_free(n);
}

/* ---- pods --------------------------------------------------------------------------------- */

static void test_pod_fixtures(void **state) {
    (void)state;
    struct rsre_kube_pod *run = pod_fixture("pod-running.json");
    assert_string_equal(run->meta.ns, "shop");
    assert_string_equal(run->meta.name, "web-7d4b9c8f6d-x2kqp");
    assert_string_equal(run->meta.owner_kind, "ReplicaSet");
    assert_string_equal(run->meta.owner_name, "web-7d4b9c8f6d");
    assert_string_equal(run->node_name, "10.0.10.21");
    assert_int_equal(run->phase, RSRE_KUBE_PHASE_RUNNING);
    assert_int_equal(run->ncontainers, 1);
    assert_string_equal(run->containers[0].name, "nginx");
    assert_int_equal(run->containers[0].restart_count, 3);
    assert_int_equal(run->containers[0].state, RSRE_KUBE_CSTATE_RUNNING);
    assert_true(run->containers[0].ready);
    assert_string_equal(run->containers[0].image, "docker.io/library/nginx:1.25.4");
    assert_false(rsre_kube_pod_finished(run));

    struct rsre_kube_pod *done = pod_fixture("pod-succeeded.json");
    assert_int_equal(done->phase, RSRE_KUBE_PHASE_SUCCEEDED);
    assert_true(rsre_kube_pod_finished(done));
    assert_false(rsre_kube_pod_evicted(done));
    assert_string_equal(done->meta.owner_kind, "Job");
    assert_int_equal(done->containers[0].state, RSRE_KUBE_CSTATE_TERMINATED);
    assert_string_equal(done->containers[0].reason, "Completed");
    assert_int_equal(done->containers[0].exit_code, 0);

    struct rsre_kube_pod *ev = pod_fixture("pod-evicted.json");
    assert_int_equal(ev->phase, RSRE_KUBE_PHASE_FAILED);
    assert_true(rsre_kube_pod_evicted(ev));
    assert_string_equal(ev->reason, "Evicted");
    assert_non_null(strstr(ev->message, "low on resource: ephemeral-storage"));
    assert_int_equal(ev->containers[0].exit_code, 137);

    struct rsre_kube_pod *pull = pod_fixture("pod-errimagepull.json");
    assert_int_equal(pull->phase, RSRE_KUBE_PHASE_PENDING);
    assert_int_equal(pull->containers[0].state, RSRE_KUBE_CSTATE_WAITING);
    assert_int_equal(rsre_kube_pull_reason(pull->containers[0].reason),
                     RSRE_KUBE_PULL_ERR_IMAGE_PULL);
    assert_non_null(strstr(pull->containers[0].message, "failed to resolve reference"));
    assert_string_equal(pull->containers[0].image, "registry.example.com/shop/api:1.9.0-rc1");

    struct rsre_kube_pod *bo = pod_fixture("pod-imagepullbackoff.json");
    assert_int_equal(bo->ncontainers, 2);
    assert_true(bo->containers[0].init); /* init containers first */
    assert_string_equal(bo->containers[0].name, "migrate");
    assert_string_equal(bo->containers[0].image, "registry.example.com/shop/migrate:1.9.0");
    assert_int_equal(rsre_kube_pull_reason(bo->containers[0].reason), RSRE_KUBE_PULL_BACKOFF);
    assert_false(bo->containers[1].init);
    assert_int_equal(rsre_kube_pull_reason(bo->containers[1].reason), RSRE_KUBE_PULL_NONE);

    struct rsre_kube_pod_counts c = {0};
    struct rsre_kube_pod *all[] = {run, done, ev, pull, bo};
    for (size_t i = 0; i < 5; i++) {
        rsre_kube_pod_count(all[i], &c);
    }
    assert_int_equal(c.running, 1);
    assert_int_equal(c.pending, 2);
    assert_int_equal(c.succeeded, 1);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.evicted, 1);
    assert_int_equal(c.unknown, 0);
    assert_int_equal(c.restarts_total, 4);
    for (size_t i = 0; i < 5; i++) {
        rsre_kube_pod_free(all[i]);
    }
}

static void test_pull_reasons(void **state) {
    (void)state;
    assert_int_equal(rsre_kube_pull_reason("ErrImagePull"), RSRE_KUBE_PULL_ERR_IMAGE_PULL);
    assert_int_equal(rsre_kube_pull_reason("ImagePullBackOff"), RSRE_KUBE_PULL_BACKOFF);
    assert_int_equal(rsre_kube_pull_reason("InvalidImageName"), RSRE_KUBE_PULL_INVALID_IMAGE_NAME);
    assert_int_equal(rsre_kube_pull_reason("ErrImageNeverPull"), RSRE_KUBE_PULL_OTHER);
    assert_int_equal(rsre_kube_pull_reason("CrashLoopBackOff"), RSRE_KUBE_PULL_NONE);
    assert_int_equal(rsre_kube_pull_reason("ContainerCreating"), RSRE_KUBE_PULL_NONE);
    assert_int_equal(rsre_kube_pull_reason(""), RSRE_KUBE_PULL_NONE);
    assert_int_equal(rsre_kube_pull_reason(NULL), RSRE_KUBE_PULL_NONE);
}

static void test_pod_phases_and_mirror(void **state) {
    (void)state;
    char err[RSRE_KUBE_ERR_LEN];
    json_t *j = parse("{\"metadata\":{\"name\":\"kube-proxy-n1\",\"namespace\":\"kube-system\","
                      "\"annotations\":{\"kubernetes.io/config.mirror\":\"abc\"},"
                      "\"ownerReferences\":[{\"kind\":\"Node\",\"name\":\"n1\"},"
                      "{\"kind\":\"Other\",\"name\":\"x\",\"controller\":false}]},"
                      "\"status\":{\"phase\":\"Weird\"}}");
    struct rsre_kube_pod *p;
    assert_int_equal(rsre_kube_pod_decode(j, &p, err, sizeof(err)), 0);
    assert_true(p->meta.mirror);
    assert_string_equal(p->meta.owner_kind, "Node"); /* no controller: the first one */
    assert_int_equal(p->phase, RSRE_KUBE_PHASE_UNKNOWN);
    rsre_kube_pod_free(p);
    json_decref(j);
    j = parse("{\"metadata\":{\"name\":\"p\"},\"status\":{}}");
    assert_int_equal(rsre_kube_pod_decode(j, &p, err, sizeof(err)), 0);
    assert_int_equal(p->phase, RSRE_KUBE_PHASE_UNSET);
    struct rsre_kube_pod_counts c = {0};
    rsre_kube_pod_count(p, &c);
    assert_int_equal(c.pending, 1);
    rsre_kube_pod_free(p);
    json_decref(j);
}

/* ---- events ------------------------------------------------------------------------------- */

static void test_events(void **state) {
    (void)state;
    json_t *j = load_fixture("event-evicted.json");
    struct rsre_kube_event *e;
    char err[RSRE_KUBE_ERR_LEN] = "";
    assert_int_equal(rsre_kube_event_decode(j, &e, err, sizeof(err)), 0);
    assert_string_equal(e->reason, "Evicted");
    assert_string_equal(e->type, "Warning");
    assert_string_equal(e->involved_kind, "Pod");
    assert_string_equal(e->involved_ns, "shop");
    assert_string_equal(e->involved_name, "web-7d4b9c8f6d-9fzlw");
    assert_string_equal(e->source_component, "kubelet");
    assert_string_equal(e->source_host, "10.0.10.21");
    assert_int_equal(e->count, 1);
    assert_int_equal(e->event_ms, 0); /* eventTime null */
    rsre_kube_event_free(e);
    json_decref(j);
    j = load_fixture("event-failed-pull.json");
    assert_int_equal(rsre_kube_event_decode(j, &e, err, sizeof(err)), 0);
    assert_int_equal(e->count, 4);
    assert_non_null(strstr(e->message, "Failed to pull image"));
    assert_true(e->last_ms > e->first_ms);
    rsre_kube_event_free(e);
    json_decref(j);
}

/* ---- tolerance and strictness ------------------------------------------------------------- */

static void test_missing_fields(void **state) {
    (void)state;
    char err[RSRE_KUBE_ERR_LEN];
    static const char *const ok[] = {
        "{}",
        "{\"metadata\":null,\"spec\":null,\"status\":null}",
        "{\"metadata\":{\"name\":\"n\"}}",
        "{\"metadata\":{\"name\":\"n\"},\"status\":{\"conditions\":[]}}",
        "{\"metadata\":{\"name\":\"n\"},\"status\":{\"conditions\":[{\"type\":\"Ready\"}]}}",
        "{\"status\":{\"conditions\":[{\"type\":\"SomethingNew\",\"status\":\"True\"}]}}",
        "{\"spec\":{\"taints\":null}}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (decode_text('n', ok[i], err, sizeof(err)) != 0) {
            fail_msg("node %s: %s", ok[i], err);
        }
        if (decode_text('p', ok[i], err, sizeof(err)) != 0) {
            fail_msg("pod %s: %s", ok[i], err);
        }
        if (decode_text('e', ok[i], err, sizeof(err)) != 0) {
            fail_msg("event %s: %s", ok[i], err);
        }
    }
    /* A condition without a status is reported as Unknown, never as True/False. */
    json_t *j = parse("{\"status\":{\"conditions\":[{\"type\":\"DiskPressure\"}]}}");
    struct rsre_kube_node *n;
    assert_int_equal(rsre_kube_node_decode(j, &n, err, sizeof(err)), 0);
    assert_int_equal(n->cond[RSRE_KUBE_NODE_DISK_PRESSURE].status, RSRE_KUBE_COND_UNKNOWN);
    rsre_kube_node_free(n);
    json_decref(j);
}

static void test_wrong_types(void **state) {
    (void)state;
    static const struct {
        char kind;
        const char *json;
        int rc;
        const char *path; /* expected at the start of the error */
    } cases[] = {
        {'n', "[]", RSRE_EINVALID, "object"},
        {'n', "{\"metadata\":[]}", RSRE_EINVALID, "metadata"},
        {'n', "{\"metadata\":{\"name\":5}}", RSRE_EINVALID, "metadata.name"},
        {'n', "{\"metadata\":{\"uid\":true}}", RSRE_EINVALID, "metadata.uid"},
        {'n', "{\"metadata\":{\"creationTimestamp\":12}}", RSRE_EINVALID,
         "metadata.creationTimestamp"},
        {'n', "{\"metadata\":{\"creationTimestamp\":\"yesterday\"}}", RSRE_EINVALID,
         "metadata.creationTimestamp"},
        {'n', "{\"metadata\":{\"annotations\":[]}}", RSRE_EINVALID, "metadata.annotations"},
        {'n', "{\"metadata\":{\"ownerReferences\":{}}}", RSRE_EINVALID, "metadata.ownerReferences"},
        {'n', "{\"metadata\":{\"ownerReferences\":[1]}}", RSRE_EINVALID,
         "metadata.ownerReferences[0]"},
        {'n', "{\"metadata\":{\"ownerReferences\":[{\"controller\":\"yes\"}]}}", RSRE_EINVALID,
         "metadata.ownerReferences[0].controller"},
        {'n', "{\"spec\":\"x\"}", RSRE_EINVALID, "spec"},
        {'n', "{\"spec\":{\"unschedulable\":\"true\"}}", RSRE_EINVALID, "spec.unschedulable"},
        {'n', "{\"spec\":{\"taints\":{}}}", RSRE_EINVALID, "spec.taints"},
        {'n', "{\"spec\":{\"taints\":[\"a\"]}}", RSRE_EINVALID, "spec.taints[0]"},
        {'n', "{\"spec\":{\"taints\":[{\"key\":\"k\"}]}}", RSRE_EINVALID, "spec.taints[0].effect"},
        {'n', "{\"spec\":{\"taints\":[{\"effect\":\"NoSchedule\"}]}}", RSRE_EINVALID,
         "spec.taints[0].key"},
        {'n',
         "{\"spec\":{\"taints\":[{\"key\":\"k\",\"effect\":\"NoSchedule\",\"timeAdded\":\"x\"}]}}",
         RSRE_EINVALID, "spec.taints[0].timeAdded"},
        {'n', "{\"status\":{\"conditions\":{}}}", RSRE_EINVALID, "status.conditions"},
        {'n', "{\"status\":{\"conditions\":[null]}}", RSRE_EINVALID, "status.conditions[0]"},
        {'n', "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":true}]}}", RSRE_EINVALID,
         "status.conditions[0].status"},
        {'n', "{\"status\":{\"conditions\":[{\"type\":7}]}}", RSRE_EINVALID,
         "status.conditions[0].type"},
        {'n',
         "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"lastHeartbeatTime\":\"2024-13-01T00:"
         "00:00Z\"}]}}",
         RSRE_EINVALID, "status.conditions[0].lastHeartbeatTime"},
        {'n', "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"message\":[]}]}}", RSRE_EINVALID,
         "status.conditions[0].message"},
        {'n', "{\"status\":{\"addresses\":[{\"type\":1}]}}", RSRE_EINVALID,
         "status.addresses[0].type"},
        {'p', "{\"spec\":{\"nodeName\":1}}", RSRE_EINVALID, "spec.nodeName"},
        {'p', "{\"status\":{\"phase\":1}}", RSRE_EINVALID, "status.phase"},
        {'p', "{\"status\":{\"startTime\":\"2024-05-02\"}}", RSRE_EINVALID, "status.startTime"},
        {'p', "{\"status\":{\"containerStatuses\":{}}}", RSRE_EINVALID, "status.containerStatuses"},
        {'p', "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"restartCount\":\"3\"}]}}",
         RSRE_EINVALID, "status.containerStatuses[0].restartCount"},
        {'p', "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"restartCount\":1.5}]}}",
         RSRE_EINVALID, "status.containerStatuses[0].restartCount"},
        {'p', "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"restartCount\":-1}]}}",
         RSRE_EINVALID, "status.containerStatuses[0].restartCount"},
        {'p', "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"restartCount\":4294967296}]}}",
         RSRE_EINVALID, "status.containerStatuses[0].restartCount"},
        {'p', "{\"status\":{\"initContainerStatuses\":[{\"name\":\"c\",\"state\":[]}]}}",
         RSRE_EINVALID, "status.initContainerStatuses[0].state"},
        {'p',
         "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"state\":{\"waiting\":{\"reason\":5}"
         "}}]}}",
         RSRE_EINVALID, "status.containerStatuses[0].state.waiting.reason"},
        {'p',
         "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"state\":{\"terminated\":{"
         "\"exitCode\":\"1\"}}}]}}",
         RSRE_EINVALID, "status.containerStatuses[0].state.terminated.exitCode"},
        {'p', "{\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"ready\":1}]}}", RSRE_EINVALID,
         "status.containerStatuses[0].ready"},
        {'p', "{\"status\":{\"containerStatuses\":[7]}}", RSRE_EINVALID,
         "status.containerStatuses[0]"},
        {'e', "{\"involvedObject\":\"pod\"}", RSRE_EINVALID, "involvedObject"},
        {'e', "{\"count\":\"4\"}", RSRE_EINVALID, "count"},
        {'e', "{\"source\":{\"host\":1}}", RSRE_EINVALID, "source.host"},
        {'e', "{\"lastTimestamp\":\"now\"}", RSRE_EINVALID, "lastTimestamp"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[RSRE_KUBE_ERR_LEN];
        int rc = decode_text(cases[i].kind, cases[i].json, err, sizeof(err));
        if (rc != cases[i].rc) {
            fail_msg("case %zu %s: rc %d (%s), want %d", i, cases[i].json, rc, err, cases[i].rc);
        }
        size_t pl = strlen(cases[i].path);
        if (strncmp(err, cases[i].path, pl) != 0 || err[pl] != ':') {
            fail_msg("case %zu %s: error \"%s\" does not name %s", i, cases[i].json, err,
                     cases[i].path);
        }
    }
}

static char *repeat(const char *unit, size_t n) {
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        memcpy(s + i * ul, unit, ul);
    }
    s[ul * n] = '\0';
    return s;
}

static int utf8_valid(const char *s) {
    json_t *j = json_string(s); /* jansson refuses invalid UTF-8 */
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

static void test_huge_and_hostile_strings(void **state) {
    (void)state;
    char err[RSRE_KUBE_ERR_LEN];
    /* A 1 MB message of two-byte characters is truncated at a character boundary. */
    char *big = repeat("\xc3\xa9", 512 * 1024);
    json_t *j = json_pack("{s:{s:[{s:s, s:s, s:s, s:s}]}}", "status", "conditions", "type", "Ready",
                          "status", "True", "message", big, "reason", big);
    assert_non_null(j);
    struct rsre_kube_node *n;
    assert_int_equal(rsre_kube_node_decode(j, &n, err, sizeof(err)), 0);
    const struct rsre_kube_condition *c = &n->cond[RSRE_KUBE_NODE_READY];
    assert_true(strlen(c->message) <= RSRE_KUBE_MESSAGE_MAX);
    assert_true(strlen(c->message) >= RSRE_KUBE_MESSAGE_MAX - 1);
    assert_true(utf8_valid(c->message));
    assert_true(strlen(c->reason) < RSRE_KUBE_REASON_LEN);
    assert_true(utf8_valid(c->reason));
    rsre_kube_node_free(n);
    json_decref(j);

    /* Identifiers beyond Kubernetes' own limits are refused, not cut. */
    char *longname = repeat("a", 254);
    j = json_pack("{s:{s:s}}", "metadata", "name", longname);
    assert_int_equal(rsre_kube_node_decode(j, &n, err, sizeof(err)), RSRE_EINVALID);
    assert_non_null(strstr(err, "metadata.name: longer than 253"));
    json_decref(j);
    j = json_pack("{s:{s:s}}", "metadata", "namespace", "a/b");
    struct rsre_kube_pod *p;
    assert_int_equal(rsre_kube_pod_decode(j, &p, err, sizeof(err)), RSRE_EINVALID);
    json_decref(j);
    j = json_pack("{s:{s:s}}", "metadata", "uid", "abc\ndef");
    assert_int_equal(rsre_kube_pod_decode(j, &p, err, sizeof(err)), RSRE_EINVALID);
    assert_non_null(strstr(err, "control character"));
    json_decref(j);
    j = json_pack("{s:{s:[{s:s, s:s}]}}", "spec", "taints", "key", longname, "effect",
                  "NoSchedule");
    assert_int_equal(rsre_kube_node_decode(j, &n, err, sizeof(err)), 0); /* 254 < 317 */
    rsre_kube_node_free(n);
    json_decref(j);
    char *longkey = repeat("k", 400);
    j = json_pack("{s:{s:[{s:s, s:s}]}}", "spec", "taints", "key", longkey, "effect", "NoSchedule");
    assert_int_equal(rsre_kube_node_decode(j, &n, err, sizeof(err)), RSRE_EINVALID);
    json_decref(j);
    /* An unknown taint effect is treated as the most restrictive one. */
    j = json_pack("{s:{s:[{s:s, s:s}]}}", "spec", "taints", "key", "k", "effect", "Evict");
    assert_int_equal(rsre_kube_node_decode(j, &n, err, sizeof(err)), 0);
    assert_int_equal(n->taints[0].effect, RSRE_KUBE_TAINT_NO_EXECUTE);
    rsre_kube_node_free(n);
    json_decref(j);
    /* Image references are cut at their bound. */
    char *img = repeat("r", 5000);
    j = json_pack("{s:{s:[{s:s, s:s}]}}", "status", "containerStatuses", "name", "c", "image", img);
    assert_int_equal(rsre_kube_pod_decode(j, &p, err, sizeof(err)), 0);
    assert_int_equal(strlen(p->containers[0].image), RSRE_KUBE_IMAGE_MAX);
    rsre_kube_pod_free(p);
    json_decref(j);
    free(img);
    free(longkey);
    free(longname);
    free(big);
}

static void test_count_limits(void **state) {
    (void)state;
    char err[RSRE_KUBE_ERR_LEN];
    json_t *taints = json_array();
    for (int i = 0; i <= RSRE_KUBE_MAX_TAINTS; i++) {
        json_array_append_new(taints, json_pack("{s:s, s:s}", "key", "k", "effect", "NoSchedule"));
    }
    json_t *j = json_pack("{s:{s:o}}", "spec", "taints", taints);
    struct rsre_kube_node *n;
    assert_int_equal(rsre_kube_node_decode(j, &n, err, sizeof(err)), RSRE_ELIMIT);
    assert_null(n);
    json_decref(j);
    json_t *cs = json_array();
    for (int i = 0; i <= RSRE_KUBE_MAX_CONTAINERS / 2; i++) {
        json_array_append_new(cs, json_pack("{s:s}", "name", "c"));
    }
    j = json_pack("{s:{s:O, s:O}}", "status", "containerStatuses", cs, "initContainerStatuses", cs);
    json_decref(cs);
    struct rsre_kube_pod *p;
    assert_int_equal(rsre_kube_pod_decode(j, &p, err, sizeof(err)), RSRE_ELIMIT);
    json_decref(j);
    /* Failure half-way through the containers leaves nothing allocated (ASan checks). */
    j = parse(
        "{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"i\"}]},\"status\":"
        "{\"containerStatuses\":[{\"name\":\"a\",\"state\":{\"waiting\":{\"message\":\"m\"}}},"
        "{\"name\":\"b\",\"restartCount\":\"x\"}]}}");
    assert_int_equal(rsre_kube_pod_decode(j, &p, err, sizeof(err)), RSRE_EINVALID);
    json_decref(j);
}

/* ---- lists, watch lines, JSON text -------------------------------------------------------- */

static void test_list_parse(void **state) {
    (void)state;
    size_t len;
    char *buf = slurp("pod-list.json", &len);
    struct rsre_kube_list l;
    char err[RSRE_KUBE_ERR_LEN];
    assert_int_equal(rsre_kube_list_parse(buf, len, "PodList", &l, err, sizeof(err)), 0);
    assert_string_equal(l.rv, "48221000");
    assert_true(strlen(l.cont) > 10);
    assert_int_equal(json_array_size(l.items), 2);
    rsre_kube_list_clear(&l);
    assert_int_equal(rsre_kube_list_parse(buf, len, "NodeList", &l, err, sizeof(err)),
                     RSRE_EINVALID);
    assert_non_null(strstr(err, "NodeList"));
    assert_null(l.root);
    free(buf);
    static const struct {
        const char *json;
        int rc;
    } cases[] = {
        {"{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"5\"}}", 0},
        {"{\"kind\":\"PodList\",\"items\":null}", 0},
        {"{\"kind\":\"PodList\",\"items\":{}}", RSRE_EINVALID},
        {"{\"kind\":\"PodList\",\"items\":[1]}", RSRE_EINVALID},
        {"{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":5}}", RSRE_EINVALID},
        {"{\"kind\":\"PodList\",\"metadata\":[]}", RSRE_EINVALID},
        {"[]", RSRE_EINVALID},
        {"{\"kind\":\"PodList\"", RSRE_EPARSE},
        {"", RSRE_EPARSE},
        {"{\"kind\":\"PodList\",\"kind\":\"PodList\"}", RSRE_EPARSE}, /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = rsre_kube_list_parse(cases[i].json, strlen(cases[i].json), "PodList", &l, err,
                                      sizeof(err));
        if (rc != cases[i].rc) {
            fail_msg("%s: rc %d (%s), want %d", cases[i].json, rc, err, cases[i].rc);
        }
        if (rc == 0) {
            assert_true(json_is_array(l.items));
        }
        rsre_kube_list_clear(&l);
    }
}

static void test_watch_lines(void **state) {
    (void)state;
    json_t *events = load_fixture("watch-events.json");
    static const enum rsre_kube_watch_type want[] = {
        RSRE_KUBE_WATCH_ADDED, RSRE_KUBE_WATCH_MODIFIED, RSRE_KUBE_WATCH_BOOKMARK,
        RSRE_KUBE_WATCH_DELETED, RSRE_KUBE_WATCH_ERROR};
    assert_int_equal(json_array_size(events), 5);
    for (size_t i = 0; i < 5; i++) {
        char *line = json_dumps(json_array_get(events, i), JSON_COMPACT);
        struct rsre_kube_watch_event ev;
        char err[RSRE_KUBE_ERR_LEN] = "";
        int rc = rsre_kube_watch_parse(line, strlen(line), &ev, err, sizeof(err));
        if (rc != 0) {
            fail_msg("event %zu: %s", i, err);
        }
        assert_int_equal(ev.type, want[i]);
        assert_non_null(ev.object);
        if (want[i] == RSRE_KUBE_WATCH_ERROR) {
            assert_int_equal(ev.status.code, 410);
            assert_string_equal(ev.status.reason, "Expired");
            assert_non_null(strstr(ev.status.message, "too old resource version"));
        } else if (want[i] == RSRE_KUBE_WATCH_BOOKMARK) {
            assert_string_equal(ev.rv, "48221377");
        } else {
            assert_true(ev.rv[0] != '\0');
        }
        rsre_kube_watch_event_clear(&ev);
        free(line);
    }
    json_decref(events);
    static const struct {
        const char *line;
        int rc;
    } bad[] = {
        {"{\"type\":\"ADDED\"}", RSRE_EINVALID},
        {"{\"type\":\"ADDED\",\"object\":[]}", RSRE_EINVALID},
        {"{\"type\":\"UPSERTED\",\"object\":{}}", RSRE_EINVALID},
        {"{\"type\":1,\"object\":{}}", RSRE_EINVALID},
        {"{\"object\":{}}", RSRE_EINVALID},
        {"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Pod\"}}", RSRE_EINVALID},
        {"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":\"410\"}}", RSRE_EINVALID},
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":7}}}", RSRE_EINVALID},
        {"{\"type\":\"ADDED\",\"object\":{}} trailing", RSRE_EPARSE},
        {"not json", RSRE_EPARSE},
        {"[\"ADDED\"]", RSRE_EINVALID},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rsre_kube_watch_event ev;
        char err[RSRE_KUBE_ERR_LEN] = "";
        int rc = rsre_kube_watch_parse(bad[i].line, strlen(bad[i].line), &ev, err, sizeof(err));
        if (rc != bad[i].rc) {
            fail_msg("%s: rc %d (%s), want %d", bad[i].line, rc, err, bad[i].rc);
        }
        assert_null(ev.object);
        assert_true(err[0] != '\0');
    }
    assert_string_equal(rsre_kube_watch_type_name(RSRE_KUBE_WATCH_BOOKMARK), "BOOKMARK");
}

static void test_json_limits(void **state) {
    (void)state;
    json_t *j = NULL;
    char err[RSRE_KUBE_ERR_LEN];
    /* The length is checked before the text is read. */
    assert_int_equal(
        rsre_kube_json_load("{}", (size_t)RSRE_KUBE_MAX_JSON + 1, &j, err, sizeof(err)),
        RSRE_ELIMIT);
    assert_null(j);
    /* Deep nesting is a parse error (jansson's depth limit), not a stack overflow. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = '\0';
    assert_int_equal(rsre_kube_json_load(deep, depth * 2, &j, err, sizeof(err)), RSRE_EPARSE);
    free(deep);
    /* Embedded NUL bytes in strings are refused by jansson's default flags. */
    const char nul[] = "{\"a\":\"x\\u0000y\"}";
    assert_int_equal(rsre_kube_json_load(nul, sizeof(nul) - 1, &j, err, sizeof(err)), RSRE_EPARSE);
}

/* Random byte mutations of every fixture through every decoder: errors are fine, crashes and
 * leaks are not (ASan/UBSan build). */
static void test_mutations(void **state) {
    (void)state;
    static const char *const files[] = {
        "node-ready.json",  "node-disk-pressure.json",   "pod-running.json",
        "pod-evicted.json", "pod-imagepullbackoff.json", "event-evicted.json",
        "pod-list.json",    "watch-events.json",
    };
    uint64_t seed = 0x5eed;
    const char *env = getenv("RSRE_TEST_SEED");
    if (env) {
        seed = strtoull(env, NULL, 0);
    }
    print_message("mutation seed %" PRIu64 "\n", seed);
    uint64_t x = seed ? seed : 1;
    static const char tokens[] = "{}[]\":,0-9.eEtrufalsn\\u00 \n";
    size_t accepted = 0, rejected = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        size_t len;
        char *orig = slurp(files[f], &len);
        char *buf = malloc(len + 1);
        for (int round = 0; round < 300; round++) {
            memcpy(buf, orig, len + 1);
            int muts = 1 + (int)(x % 8);
            for (int m = 0; m < muts; m++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                size_t pos = (size_t)(x % len);
                buf[pos] =
                    (x >> 32) & 1 ? (char)(x >> 40) : tokens[(x >> 24) % (sizeof(tokens) - 1)];
            }
            size_t blen = strnlen(buf, len);
            json_t *j = NULL;
            char err[RSRE_KUBE_ERR_LEN];
            if (rsre_kube_json_load(buf, blen, &j, err, sizeof(err)) != 0) {
                rejected++;
                continue;
            }
            struct rsre_kube_node *n;
            struct rsre_kube_pod *p;
            struct rsre_kube_event *e;
            struct rsre_kube_meta m;
            int ok = rsre_kube_node_decode(j, &n, err, sizeof(err)) == 0;
            rsre_kube_node_free(n);
            ok |= rsre_kube_pod_decode(j, &p, err, sizeof(err)) == 0;
            rsre_kube_pod_free(p);
            ok |= rsre_kube_event_decode(j, &e, err, sizeof(err)) == 0;
            rsre_kube_event_free(e);
            rsre_kube_meta_decode(j, &m, err, sizeof(err));
            json_decref(j);
            struct rsre_kube_list l;
            if (rsre_kube_list_parse(buf, blen, NULL, &l, err, sizeof(err)) == 0) {
                rsre_kube_list_clear(&l);
            }
            struct rsre_kube_watch_event ev;
            if (rsre_kube_watch_parse(buf, blen, &ev, err, sizeof(err)) == 0) {
                rsre_kube_watch_event_clear(&ev);
            }
            if (ok) {
                accepted++;
            } else {
                rejected++;
            }
        }
        free(buf);
        free(orig);
    }
    print_message("mutations: %zu decoded, %zu rejected\n", accepted, rejected);
    assert_true(accepted > 0 && rejected > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_node_ready),
        cmocka_unit_test(test_node_pressure_and_same_state),
        cmocka_unit_test(test_node_notready_cordoned),
        cmocka_unit_test(test_pod_fixtures),
        cmocka_unit_test(test_pull_reasons),
        cmocka_unit_test(test_pod_phases_and_mirror),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_huge_and_hostile_strings),
        cmocka_unit_test(test_count_limits),
        cmocka_unit_test(test_list_parse),
        cmocka_unit_test(test_watch_lines),
        cmocka_unit_test(test_json_limits),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
