/*
 * Unit tests of the observers' decoders (aggregator/observe/helm_release.h, kube_objects.h):
 * Helm release records encoded here the way Helm's storage driver does (JSON -> gzip ->
 * base64, then base64 again as the API server returns Secret data), and malformed inputs at
 * every layer: bad base64, truncated and corrupted gzip, a gzip bomb beyond the bound, broken
 * JSON, a JSON document that is not a release, broken manifest YAML; workload, ingress, pod
 * and Helm Secret objects with fields of the wrong type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/error.h"
#include "observe/helm_release.h"
#include "observe/kube_objects.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64(const unsigned char *in, size_t n) {
    char *o = malloc(n / 3 * 4 + 8);
    assert_non_null(o);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        o[k++] = b64chars[w >> 18 & 63];
        o[k++] = b64chars[w >> 12 & 63];
        o[k++] = i + 1 < n ? b64chars[w >> 6 & 63] : '=';
        o[k++] = i + 2 < n ? b64chars[w & 63] : '=';
    }
    o[k] = '\0';
    return o;
}

static unsigned char *gz(const void *in, size_t n, size_t *out_n) {
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, n) + 64;
    unsigned char *o = malloc(cap);
    assert_non_null(o);
    zs.next_in = (unsigned char *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = o;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_n = cap - zs.avail_out;
    deflateEnd(&zs);
    return o;
}

/* Secret data text for `payload` bytes (gzip when `zip`): base64(base64(gzip(payload))). */
static char *secret_data(const void *payload, size_t n, int zip) {
    size_t zn = n;
    unsigned char *z = zip ? gz(payload, n, &zn) : (unsigned char *)payload;
    char *inner = b64(z, zn);
    char *outer = b64((unsigned char *)inner, strlen(inner));
    if (zip) {
        free(z);
    }
    free(inner);
    return outer;
}

static const char *MANIFEST =
    "---\n# Source: api/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n"
    "  name: api\nspec:\n  ports:\n    - port: 80\n"
    "---\n# Source: api/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n"
    "metadata:\n  name: api\nspec:\n  template:\n    spec:\n      initContainers:\n"
    "        - name: migrate\n          image: \"registry.local/api-migrate:1.3\"\n"
    "      containers:\n        - name: web\n          image: registry.local/api:1.3\n"
    "        - name: sidecar\n          image: 'registry.local/envoy:1.29'\n"
    "---\n# Source: api/templates/cron.yaml\napiVersion: batch/v1\nkind: CronJob\n"
    "metadata:\n  name: api-cleanup\nspec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n"
    "    spec:\n      template:\n        spec:\n          containers:\n"
    "            - name: cleanup\n              image: registry.local/api-tools:1.3\n"
    "---\n# empty document from a disabled template\n";

static char *release_text(const char *status, const char *manifest) {
    json_t *r =
        json_pack("{s:s, s:{s:s, s:s, s:s}, s:{s:{s:s, s:s}}, s:{}, s:s, s:i, s:s}", "name", "api",
                  "info", "status", status, "description", "Preparing upgrade", "first_deployed",
                  "2026-11-27T10:00:00Z", "chart", "metadata", "name", "api", "version", "1.3.0",
                  "config", "manifest", manifest, "version", 3, "namespace", "prod");
    assert_non_null(r);
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return s;
}

static void test_release_roundtrip(void **state) {
    (void)state;
    char *json = release_text("pending-upgrade", MANIFEST);
    char *data = secret_data(json, strlen(json), 1);
    struct rsre_helm_release *r = NULL;
    char err[256] = "";
    assert_int_equal(rsre_helm_release_decode(data, strlen(data), 0, &r, err, sizeof(err)), 0);
    assert_string_equal(r->name, "api");
    assert_string_equal(r->ns, "prod");
    assert_int_equal(r->version, 3);
    assert_string_equal(r->status, "pending-upgrade");
    assert_string_equal(r->chart, "api");
    assert_string_equal(r->chart_version, "1.3.0");
    assert_true(rsre_helm_status_unhealthy(r->status));
    assert_int_equal(r->nimages, 4);
    assert_string_equal(r->images[0].kind, "Deployment");
    assert_string_equal(r->images[0].workload, "api");
    assert_string_equal(r->images[0].container, "migrate");
    assert_string_equal(r->images[0].image, "registry.local/api-migrate:1.3");
    assert_string_equal(r->images[2].container, "sidecar");
    assert_string_equal(r->images[2].image, "registry.local/envoy:1.29");
    assert_string_equal(r->images[3].kind, "CronJob");
    assert_string_equal(r->images[3].workload, "api-cleanup");
    assert_string_equal(r->images[3].image, "registry.local/api-tools:1.3");
    rsre_helm_release_free(r);
    free(data);
    /* Without gzip (how early Helm 3 builds stored it): accepted. */
    data = secret_data(json, strlen(json), 0);
    assert_int_equal(rsre_helm_release_decode(data, strlen(data), 0, &r, err, sizeof(err)), 0);
    assert_int_equal(r->nimages, 4);
    rsre_helm_release_free(r);
    free(data);
    free(json);
    assert_false(rsre_helm_status_unhealthy("deployed"));
    assert_false(rsre_helm_status_unhealthy("superseded"));
    assert_true(rsre_helm_status_unhealthy("failed"));
    assert_true(rsre_helm_status_unhealthy("pending-install"));
    assert_true(rsre_helm_status_unhealthy("pending-rollback"));
}

static void expect_fail(const char *data, int code, const char *err_part) {
    struct rsre_helm_release *r = (void *)1;
    char err[256] = "";
    assert_int_equal(rsre_helm_release_decode(data, strlen(data), 1u << 20, &r, err, sizeof(err)),
                     code);
    assert_null(r);
    if (!strstr(err, err_part)) {
        fail_msg("error '%s' does not mention '%s'", err, err_part);
    }
}

static void test_bad_base64(void **state) {
    (void)state;
    expect_fail("", RSRE_EPARSE, ""); /* empty: no JSON */
    expect_fail("abc", RSRE_EPARSE, "base64 (Secret data)");
    expect_fail("ab!d", RSRE_EPARSE, "base64 (Secret data)");
    expect_fail("ab=d", RSRE_EPARSE, "base64 (Secret data)");
    expect_fail("ab==abcd", RSRE_EPARSE, "base64 (Secret data)");
    expect_fail("ab c", RSRE_EPARSE, "base64 (Secret data)");
    /* The outer layer decodes; Helm's inner text is not base64. */
    char *outer = b64((const unsigned char *)"H4sI*not-base64", 15);
    expect_fail(outer, RSRE_EPARSE, "base64 (Helm's encoding)");
    free(outer);
    unsigned char *o = NULL;
    size_t n = 0;
    assert_int_equal(rsre_helm_base64_decode("aGVsbG8=", 8, 16, &o, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(o, "hello", 5);
    free(o);
    assert_int_equal(rsre_helm_base64_decode("aGVsbG8=", 8, 4, &o, &n), RSRE_ELIMIT);
    assert_null(o);
}

static void test_bad_gzip(void **state) {
    (void)state;
    char *json = release_text("deployed", MANIFEST);
    size_t zn;
    unsigned char *z = gz(json, strlen(json), &zn);
    /* Truncated: the last 12 bytes (end of the deflate stream and the trailer) missing. */
    char *inner = b64(z, zn - 12);
    char *outer = b64((unsigned char *)inner, strlen(inner));
    expect_fail(outer, RSRE_EPARSE, "gzip");
    free(inner);
    free(outer);
    /* Only the header. */
    inner = b64(z, 10);
    outer = b64((unsigned char *)inner, strlen(inner));
    expect_fail(outer, RSRE_EPARSE, "gzip");
    free(inner);
    free(outer);
    /* A corrupted CRC in the trailer. */
    z[zn - 6] ^= 0x55;
    inner = b64(z, zn);
    outer = b64((unsigned char *)inner, strlen(inner));
    expect_fail(outer, RSRE_EPARSE, "gzip");
    free(inner);
    free(outer);
    /* Corrupted deflate data. */
    z[zn - 6] ^= 0x55;
    for (size_t i = 12; i < 40 && i < zn - 8; i++) {
        z[i] = 0xff;
    }
    inner = b64(z, zn);
    outer = b64((unsigned char *)inner, strlen(inner));
    expect_fail(outer, RSRE_EPARSE, "gzip");
    free(inner);
    free(outer);
    free(z);
    free(json);
}

static void test_gzip_bomb(void **state) {
    (void)state;
    /* 32 MiB of spaces compress to ~32 KiB; the bound is 1 MiB. */
    size_t n = 32u << 20;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    char *data = secret_data(big, n, 1);
    free(big);
    assert_true(strlen(data) < (1u << 20));
    expect_fail(data, RSRE_ELIMIT, "gzip");
    free(data);
    /* The bound is exact: max bytes pass, max + 1 do not. */
    size_t zn;
    unsigned char *z = gz("0123456789", 10, &zn);
    unsigned char *out = NULL;
    size_t out_n = 0;
    assert_int_equal(rsre_helm_gunzip(z, zn, 10, &out, &out_n), 0);
    assert_int_equal(out_n, 10);
    free(out);
    assert_int_equal(rsre_helm_gunzip(z, zn, 9, &out, &out_n), RSRE_ELIMIT);
    assert_null(out);
    free(z);
    /* Not gzip at all. */
    assert_int_equal(
        rsre_helm_gunzip((const unsigned char *)"{\"name\":\"x\"}xxxxxxxx", 20, 100, &out, &out_n),
        RSRE_EPARSE);
}

static void test_bad_json(void **state) {
    (void)state;
    const char *cases[][3] = {
        {"{\"name\": \"api\", \"version\": 3", "", ""},
        {"[1,2,3]", "", ""},
        {"{\"name\": \"api\", \"version\": \"3\"}", "", "version"},
        {"{\"version\": 3}", "", "name"},
        {"{\"name\": \"api\", \"version\": 3, \"info\": {\"status\": 7}}", "", "info.status"},
        {"{\"name\": \"api\", \"version\": 3, \"manifest\": 12}", "", "manifest"},
        {"{\"name\": \"a/b\", \"version\": 3}", "", "name"},
        {"{\"name\": \"api\", \"name\": \"api\", \"version\": 3}", "", ""},
        {"{\"name\": \"api\", \"version\": 3, \"manifest\": \"kind: Deployment\\n  bad: [\"}", "",
         "manifest"},
    };
    const int codes[] = {RSRE_EPARSE,   RSRE_EINVALID, RSRE_EINVALID, RSRE_EINVALID, RSRE_EINVALID,
                         RSRE_EINVALID, RSRE_EINVALID, RSRE_EPARSE,   RSRE_EPARSE};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *data = secret_data(cases[i][0], strlen(cases[i][0]), 1);
        struct rsre_helm_release *r = (void *)1;
        char err[256] = "";
        int rc = rsre_helm_release_decode(data, strlen(data), 0, &r, err, sizeof(err));
        if (rc != codes[i]) {
            fail_msg("case %zu: rc %d (%s), want %d", i, rc, err, codes[i]);
        }
        assert_null(r);
        assert_non_null(strstr(err, cases[i][2]));
        free(data);
    }
}

static json_t *load(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fail_msg("fixture: %s", e.text);
    }
    return j;
}

static void test_workload_decode(void **state) {
    (void)state;
    json_t *d = load(
        "{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"api\",\"namespace\":\"prod\","
        "\"uid\":\"u1\",\"generation\":4,\"labels\":{\"tier\":\"core\",\"app\":\"api\"},"
        "\"annotations\":{\"meta.helm.sh/release-name\":\"api\","
        "\"meta.helm.sh/release-namespace\":\"prod\"}},"
        "\"spec\":{\"replicas\":3,\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\","
        "\"image\":\"registry.local/api:1.2\"}]}}},"
        "\"status\":{\"observedGeneration\":4,\"replicas\":3,\"updatedReplicas\":1,"
        "\"readyReplicas\":2,\"availableReplicas\":2,\"conditions\":[{\"type\":\"Progressing\","
        "\"status\":\"False\",\"reason\":\"ProgressDeadlineExceeded\",\"message\":"
        "\"ReplicaSet \\\"api-5d8f\\\" has timed out progressing.\"}]}}");
    struct rsre_obs_workload *w = NULL;
    char err[256] = "";
    assert_int_equal(rsre_obs_deployment_decode(d, &w, err, sizeof(err)), 0);
    assert_int_equal(w->replicas, 3);
    assert_int_equal(w->updated, 1);
    assert_int_equal(w->ready, 2);
    assert_true(w->deadline_exceeded);
    assert_non_null(strstr(w->progress_message, "timed out"));
    assert_string_equal(w->release, "api");
    assert_int_equal(w->ncontainers, 1);
    assert_string_equal(w->containers[0].image, "registry.local/api:1.2");
    assert_true(rsre_obs_labels_have(w->labels, "tier=core"));
    assert_false(rsre_obs_labels_have(w->labels, "tier=cor"));
    assert_false(rsre_obs_labels_have(w->labels, "ier=core"));
    assert_true(rsre_obs_workload_lagging(w));
    rsre_obs_workload_free(w);
    /* Wrong types anywhere: an error naming the field, nothing returned. */
    const char *bad[] = {
        "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"replicas\":\"3\"}}",
        "{\"metadata\":{\"name\":\"a\"},\"status\":{\"conditions\":{}}}",
        "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"template\":{\"spec\":{\"containers\":[7]}}}}",
        "{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":1}}}",
        "{\"metadata\":{\"name\":\"a\"},\"spec\":[]}",
        "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"replicas\":-1}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = load(bad[i]);
        w = (void *)1;
        assert_int_equal(rsre_obs_deployment_decode(j, &w, err, sizeof(err)), RSRE_EINVALID);
        assert_null(w);
        json_decref(j);
    }
    json_decref(d);
}

static void test_ingress_pod_secret_decode(void **state) {
    (void)state;
    char err[256] = "";
    json_t *in = load("{\"metadata\":{\"name\":\"web\",\"namespace\":\"prod\"},\"spec\":{"
                      "\"defaultBackend\":{\"service\":{\"name\":\"fallback\"}},\"rules\":[{"
                      "\"host\":\"app.example\",\"http\":{\"paths\":[{\"path\":\"/api\","
                      "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"api\","
                      "\"port\":{\"number\":80}}}},{\"path\":\"/static\",\"backend\":{"
                      "\"resource\":{\"kind\":\"StorageBucket\",\"name\":\"s\"}}}]}}]}}");
    struct rsre_obs_ingress *ing = NULL;
    assert_int_equal(rsre_obs_ingress_decode(in, &ing, err, sizeof(err)), 0);
    assert_int_equal(ing->nbackends, 2);
    assert_string_equal(ing->backends[0].service, "fallback");
    assert_string_equal(ing->backends[1].service, "api");
    assert_string_equal(ing->backends[1].host, "app.example");
    rsre_obs_ingress_free(ing);
    json_decref(in);
    in = load("{\"spec\":{\"rules\":[{\"http\":{\"paths\":[{\"backend\":{\"service\":7}}]}}]}}");
    ing = (void *)1;
    assert_int_equal(rsre_obs_ingress_decode(in, &ing, err, sizeof(err)), RSRE_EINVALID);
    assert_null(ing);
    json_decref(in);

    json_t *pod = load("{\"metadata\":{\"name\":\"p\",\"namespace\":\"prod\"},\"spec\":{"
                       "\"serviceAccountName\":\"api\",\"imagePullSecrets\":[{\"name\":\"regcred\"}"
                       "],\"containers\":[{\"name\":\"web\",\"image\":\"r/a:1\"}]}}");
    struct rsre_obs_pod *p = NULL;
    assert_int_equal(rsre_obs_pod_decode(pod, &p, err, sizeof(err)), 0);
    assert_string_equal(p->service_account, "api");
    assert_int_equal(p->npull_secrets, 1);
    assert_string_equal(p->pull_secrets[0], "regcred");
    rsre_obs_pod_free(p);
    json_decref(pod);
    pod = load("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"imagePullSecrets\":[\"regcred\"]}}");
    p = (void *)1;
    assert_int_equal(rsre_obs_pod_decode(pod, &p, err, sizeof(err)), RSRE_EINVALID);
    assert_null(p);
    json_decref(pod);

    /* A Helm Secret whose release does not decode is kept, with the labels' status. */
    json_t *sec = load("{\"type\":\"helm.sh/release.v1\",\"metadata\":{\"name\":"
                       "\"sh.helm.release.v1.api.v2\",\"namespace\":\"prod\",\"labels\":{"
                       "\"name\":\"api\",\"owner\":\"helm\",\"status\":\"failed\","
                       "\"version\":\"2\"}},\"data\":{\"release\":\"bm90LWd6aXA=\"}}");
    struct rsre_obs_helm_secret *hs = NULL;
    assert_int_equal(rsre_obs_helm_secret_decode(sec, &hs, err, sizeof(err)), 0);
    assert_null(hs->release);
    assert_int_equal(hs->version, 2);
    assert_string_equal(hs->status, "failed");
    assert_true(hs->error[0] != '\0');
    rsre_obs_helm_secret_free(hs);
    json_decref(sec);
    /* A superseded revision is kept by its labels only (never decoded). */
    sec = load("{\"type\":\"helm.sh/release.v1\",\"metadata\":{\"namespace\":\"prod\","
               "\"labels\":{\"name\":\"api\",\"status\":\"superseded\",\"version\":\"1\"}},"
               "\"data\":{\"release\":\"bm90LWd6aXA=\"}}");
    assert_int_equal(rsre_obs_helm_secret_decode(sec, &hs, err, sizeof(err)), 0);
    assert_null(hs->release);
    assert_non_null(strstr(hs->error, "superseded"));
    rsre_obs_helm_secret_free(hs);
    json_decref(sec);
    const char *bad[] = {
        "{\"type\":\"Opaque\",\"metadata\":{\"labels\":{\"name\":\"a\",\"version\":\"1\"}}}",
        "{\"type\":\"helm.sh/release.v1\",\"metadata\":{\"labels\":{\"name\":\"a\"}}}",
        "{\"type\":\"helm.sh/release.v1\",\"metadata\":{\"labels\":{\"name\":\"a\","
        "\"version\":\"x1\"}}}",
        "{\"type\":\"helm.sh/release.v1\",\"metadata\":{\"labels\":{\"name\":\"a\","
        "\"version\":\"0\"}}}",
        "{\"type\":\"helm.sh/release.v1\",\"metadata\":{\"labels\":[]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = load(bad[i]);
        hs = (void *)1;
        assert_int_equal(rsre_obs_helm_secret_decode(j, &hs, err, sizeof(err)), RSRE_EINVALID);
        assert_null(hs);
        json_decref(j);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_roundtrip),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_bad_gzip),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_workload_decode),
        cmocka_unit_test(test_ingress_pod_secret_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
