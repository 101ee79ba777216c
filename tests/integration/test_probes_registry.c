/*
 * Integration: the registry probe against a real CNCF distribution registry (Debian's
 * docker-registry 2.8) on 127.0.0.1 with htpasswd (bcrypt) auth and deletes enabled. The test
 * pushes a small OCI image (a layer blob, a config blob, a manifest tagged team/api:1.0)
 * through the Registry HTTP API v2 itself, then:
 *  - the probe with the right credentials passes (/v2/ 401 -> Basic -> 200, manifest HEAD 200);
 *  - wrong credentials: UNAUTHORIZED at /v2/ -> runtime_dependency_outage at
 *    dependency/<name>;
 *  - the manifest deleted: MANIFEST_UNKNOWN for the wanted image -> registry_pull_failure at
 *    registry/<name> (critical for a core image), no dependency outage; pushed again, it
 *    resolves after the exit window;
 *  - the registry killed: refused -> runtime_dependency_outage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "../support/probe_env.h"

#define REGISTRY "/usr/bin/docker-registry"
#define HTPASSWD "/usr/bin/htpasswd"

static char dir[128];
static int port;
static pid_t pid;

static void start_registry(void) {
    char conf[256], log[256];
    snprintf(conf, sizeof conf, "%s/config.yml", dir);
    snprintf(log, sizeof log, "%s/registry.log", dir);
    char *argv[] = {REGISTRY, "serve", conf, NULL};
    pid = pe_spawn(argv, log, NULL);
    assert_true(pid > 0);
    assert_int_equal(pe_wait_port(pid, port, 15000), 0);
}

struct resp {
    long status;
    char location[512];
    char digest[128];
};

static size_t hdr(char *p, size_t sz, size_t n, void *arg) {
    struct resp *r = arg;
    size_t len = sz * n;
    char line[600];
    size_t m = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, m);
    line[m] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "Location: ", 10) == 0) {
        snprintf(r->location, sizeof r->location, "%.500s", line + 10);
    } else if (strncasecmp(line, "Docker-Content-Digest: ", 23) == 0) {
        snprintf(r->digest, sizeof r->digest, "%.120s", line + 23);
    }
    return len;
}

static size_t sink(char *p, size_t sz, size_t n, void *arg) {
    (void)p;
    (void)arg;
    return sz * n;
}

static struct resp call(const char *method, const char *url, const char *ctype, const void *body,
                        size_t len) {
    struct resp r = {0};
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    char ct[160];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, ct);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_USERPWD, "robot:right-pw");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, hdr);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return r;
}

static void sha256_hex(const void *data, size_t len, char out[72]) {
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    strcpy(out, "sha256:");
    for (unsigned i = 0; i < 32; i++) {
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
    }
}

/* Monolithic blob upload: POST an upload session, PUT the bytes with their digest. */
static void push_blob(const char *base, const char *repo, const void *data, size_t len,
                      char digest[72]) {
    sha256_hex(data, len, digest);
    char url[512];
    snprintf(url, sizeof url, "%s/v2/%s/blobs/uploads/", base, repo);
    struct resp r = call("POST", url, NULL, "", 0);
    assert_int_equal(r.status, 202);
    assert_true(r.location[0]);
    char put[1024];
    snprintf(put, sizeof put, "%s%s%sdigest=%s", r.location[0] == '/' ? base : "", r.location,
             strchr(r.location, '?') ? "&" : "?", digest);
    r = call("PUT", put, "application/octet-stream", data, len);
    assert_int_equal(r.status, 201);
}

/* Pushes team/api:1.0; returns the manifest digest. */
static void push_image(const char *base, char mdigest[128]) {
    static const char layer[] = "not really a tarball, the registry does not look inside";
    static const char config[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]}}";
    char ld[72], cd[72];
    push_blob(base, "team/api", layer, sizeof layer - 1, ld);
    push_blob(base, "team/api", config, sizeof config - 1, cd);
    char manifest[1024];
    int n = snprintf(
        manifest, sizeof manifest,
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        "\"digest\":\"%s\",\"size\":%zu},"
        "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
        "\"digest\":\"%s\",\"size\":%zu}]}",
        cd, sizeof config - 1, ld, sizeof layer - 1);
    char url[512];
    snprintf(url, sizeof url, "%s/v2/team/api/manifests/1.0", base);
    struct resp r =
        call("PUT", url, "application/vnd.oci.image.manifest.v1+json", manifest, (size_t)n);
    assert_int_equal(r.status, 201);
    assert_true(r.digest[0]);
    snprintf(mdigest, 128, "%s", r.digest);
}

static void test_registry_probe(void **state) {
    (void)state;
    if (access(REGISTRY, X_OK) != 0 || access(HTPASSWD, X_OK) != 0) {
        fail_msg("docker-registry / apache2-utils not installed (install-deps.sh --test)");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(dir, sizeof dir, "/tmp/rsre-probe-registry-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char p[256], text[1024], log[256];
    port = pe_free_port();
    snprintf(p, sizeof p, "%s/htpasswd", dir);
    snprintf(log, sizeof log, "%s/htpasswd.out", dir);
    char *hp[] = {HTPASSWD, "-Bbc", p, "robot", "right-pw", NULL};
    pid_t h = pe_spawn(hp, log, NULL);
    int st;
    assert_int_equal(waitpid(h, &st, 0), h);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(text, sizeof text,
             "version: 0.1\n"
             "log:\n  level: warn\n"
             "storage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\n"
             "http:\n  addr: 127.0.0.1:%d\n"
             "auth:\n  htpasswd:\n    realm: test-registry\n    path: %s/htpasswd\n",
             dir, port, dir);
    snprintf(p, sizeof p, "%s/config.yml", dir);
    pe_write(p, text);
    snprintf(p, sizeof p, "%s/right.pass", dir);
    pe_write(p, "right-pw\n");
    snprintf(p, sizeof p, "%s/wrong.pass", dir);
    pe_write(p, "wrong-pw\n");
    start_registry();
    char base[64], mdigest[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    push_image(base, mdigest);

    char yaml[1536];
    snprintf(yaml, sizeof yaml,
             "probes:\n"
             "  - {kind: registry, name: registry, url: \"%s\", user: robot,"
             " password_file: right.pass, images: [team/api:1.0], core: true, threshold: 1,"
             " timeout: 3s}\n"
             "  - {kind: registry, name: registry-wrong, url: \"%s\", user: robot,"
             " password_file: wrong.pass, threshold: 1, timeout: 3s}\n",
             base, base);
    struct pe e;
    assert_int_equal(pe_open(&e, yaml, dir), 0);

    const struct pe_seen *s = pe_run(&e, "registry", 0);
    if (!s->ok) {
        print_error("registry probe: %s %s\n", s->code, s->error);
    }
    assert_int_equal(s->ok, 1);

    s = pe_run(&e, "registry-wrong", 1000);
    assert_string_equal(s->code, "UNAUTHORIZED");
    assert_null(strstr(s->error, "wrong-pw"));
    rsre_store_incident *inc =
        pe_incident(&e, "runtime_dependency_outage", "dependency/registry-wrong");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    rsre_store_incident_free(inc);

    /* The tag's manifest deleted: MANIFEST_UNKNOWN, a pull failure for a core image. */
    char url[512];
    snprintf(url, sizeof url, "%s/v2/team/api/manifests/%s", base, mdigest);
    assert_int_equal(call("DELETE", url, NULL, NULL, 0).status, 202);
    s = pe_run(&e, "registry", 30000);
    assert_int_equal(s->ok, 0);
    assert_string_equal(s->code, "MANIFEST_UNKNOWN");
    assert_non_null(strstr(s->error, "team/api:1.0: 404 MANIFEST_UNKNOWN"));
    inc = pe_incident(&e, "registry_pull_failure", "registry/registry");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    print_message("registry pull incident: confidence=%d score=%.2f\n", inc->confidence,
                  inc->confidence_score);
    assert_true(inc->confidence >= ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_MEDIUM);
    rsre_store_incident_free(inc);
    assert_null(pe_incident(&e, "runtime_dependency_outage", "dependency/registry"));

    /* Pushed again: healthy; the pull incident resolves after its 600 s exit window. */
    push_image(base, mdigest);
    for (int i = 0; i < 11; i++) {
        s = pe_run(&e, "registry", 30000);
        assert_int_equal(s->ok, 1);
        assert_int_equal(pe_tick(&e, 30000), 0);
    }
    inc = pe_incident(&e, "registry_pull_failure", "registry/registry");
    assert_true(inc->resolved_at_ms > 0);
    rsre_store_incident_free(inc);

    /* Killed: a dependency outage (core: critical). */
    pe_stop(pid, SIGKILL);
    pid = 0;
    s = pe_run(&e, "registry", 30000);
    assert_string_equal(s->code, "ECONNREFUSED");
    inc = pe_incident(&e, "runtime_dependency_outage", "dependency/registry");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    rsre_store_incident_free(inc);

    pe_close(&e);
    pe_finish();
    curl_global_cleanup();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_registry_probe)};
    pe_own(&pid, SIGTERM, dir); /* stopped and removed whatever happens */
    return cmocka_run_group_tests(tests, NULL, pe_teardown);
}
