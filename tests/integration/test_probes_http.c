/*
 * Integration: the HTTP-family probes (http, tls, dns, minio, http5xx) against
 * tests/support/probe_http_server.py, which serves the real wire formats where no packaged
 * server exists: routes with their statuses, MinIO's health endpoints, an ingress-nginx style
 * Prometheus exposition whose counters the test moves, and two TLS listeners (a leaf valid 30
 * days and one expired 2 days ago, both from a test CA). Each probe passes, then breaks, and
 * the matching incident opens (ingress_configuration_drift, runtime_dependency_outage,
 * http_error_rate_spike) and resolves after the exit window once healthy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <math.h>

#include "../support/probe_env.h"

#define PY "/usr/bin/python3"

static char dir[128];
static pid_t pid;
static int http_port, tls_port, expired_port;

static size_t sink(char *p, size_t sz, size_t n, void *arg) {
    (void)p;
    (void)arg;
    return sz * n;
}

static void control(const char *json) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/control", http_port);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    assert_int_equal(st, 200);
    curl_easy_cleanup(h);
}

static void counters(long ok, long err) {
    char j[96];
    snprintf(j, sizeof j, "{\"ok\": %ld, \"err\": %ld}", ok, err);
    control(j);
}

static void start_server(void) {
    char script[512], log[256], ports[256];
    snprintf(script, sizeof script, "%s/tests/support/probe_http_server.py", RSRE_SOURCE_DIR);
    snprintf(log, sizeof log, "%s/server.log", dir);
    snprintf(ports, sizeof ports, "%s/ports", dir);
    char *argv[] = {PY, script, dir, NULL};
    pid = pe_spawn(argv, log, NULL);
    assert_true(pid > 0);
    for (int i = 0; i < 300 && access(ports, R_OK) != 0; i++) {
        usleep(50000);
    }
    FILE *f = fopen(ports, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d %d %d", &http_port, &tls_port, &expired_port), 3);
    fclose(f);
    assert_int_equal(pe_wait_port(pid, http_port, 10000), 0);
}

static rsre_store_incident *open_incident(struct pe *e, const char *cls, const char *scope) {
    rsre_store_incident *inc = pe_incident(e, cls, scope);
    if (!inc) {
        fail_msg("no %s incident at %s", cls, scope);
    }
    return inc;
}

static void test_http_family(void **state) {
    (void)state;
    if (access(PY, X_OK) != 0) {
        fail_msg("python3 not installed (deploy/local/install-deps.sh --test)");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(dir, sizeof dir, "/tmp/rsre-probe-http-XXXXXX");
    assert_non_null(mkdtemp(dir));
    start_server();

    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "probes:\n"
             "  - {kind: http, name: home, url: \"http://127.0.0.1:%d/healthz\", body_contains: ok,"
             " core: true, threshold: 1, timeout: 3s}\n"
             "  - {kind: http, name: checkout, url: \"http://127.0.0.1:%d/broken\", threshold: 2,"
             " timeout: 3s}\n"
             "  - {kind: http, name: gone, url: \"http://127.0.0.1:%d/nope\", expect_status: 404,"
             " threshold: 1, timeout: 3s}\n"
             "  - {kind: tls, name: cert, host: 127.0.0.1, port: %d, server_name: localhost,"
             " ca_file: ca.pem, threshold: 1, timeout: 3s}\n"
             "  - {kind: tls, name: cert-expired, host: 127.0.0.1, port: %d,"
             " server_name: localhost, ca_file: ca.pem, threshold: 1, timeout: 3s}\n"
             "  - {kind: tls, name: cert-untrusted, host: 127.0.0.1, port: %d,"
             " server_name: localhost, threshold: 1, timeout: 3s}\n"
             "  - {kind: tls, name: cert-name, host: 127.0.0.1, port: %d,"
             " server_name: app.example.com, ca_file: ca.pem, threshold: 1, timeout: 3s}\n"
             "  - {kind: tls, name: cert-ip, host: 127.0.0.1, port: %d, ca_file: ca.pem,"
             " threshold: 1, timeout: 3s}\n"
             "  - {kind: dns, name: lo, host: 127.0.0.1, expect: [127.0.0.1], threshold: 1}\n"
             "  - {kind: dns, name: lo-drift, host: 127.0.0.1, expect: [127.0.0.2], threshold: 1}\n"
             "  - {kind: minio, name: minio, url: \"http://127.0.0.1:%d\", core: true,"
             " threshold: 1, timeout: 3s}\n"
             "  - {kind: http5xx, name: ingress, url: \"http://127.0.0.1:%d/metrics\","
             " window: 5m, match_label: ingress, match_value: api, timeout: 3s}\n",
             http_port, http_port, http_port, tls_port, expired_port, tls_port, tls_port, tls_port,
             http_port, http_port);
    struct pe e;
    assert_int_equal(pe_open(&e, yaml, dir), 0);

    /* http */
    const struct pe_seen *s = pe_run(&e, "home", 0);
    assert_int_equal(s->ok, 1);
    s = pe_run(&e, "gone", 0);
    assert_int_equal(s->ok, 1); /* 404 expected for this route */
    s = pe_run(&e, "checkout", 1000);
    assert_string_equal(s->code, "HTTP_503");
    assert_int_equal(s->failing, 0);
    s = pe_run(&e, "checkout", 30000);
    assert_int_equal(s->failing, 1);
    rsre_store_incident *inc = open_incident(&e, "ingress_configuration_drift", "route/checkout");
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    rsre_store_incident_free(inc);

    /* tls */
    s = pe_run(&e, "cert", 1000);
    if (!s->ok) {
        print_error("tls: %s %s\n", s->code, s->error);
    }
    assert_int_equal(s->ok, 1);
    assert_int_equal(s->has_days, 1);
    assert_true(s->days > 28 && s->days <= 30.01);
    s = pe_run(&e, "cert-expired", 1000);
    assert_string_equal(s->code, "EXPIRED");
    assert_true(s->has_days && s->days < -1.9 && s->days > -2.1);
    inc = open_incident(&e, "ingress_configuration_drift", "tls/cert-expired");
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    rsre_store_incident_free(inc);
    s = pe_run(&e, "cert-untrusted", 1000);
    assert_string_equal(s->code, "UNTRUSTED");
    s = pe_run(&e, "cert-name", 1000);
    assert_string_equal(s->code, "HOSTNAME_MISMATCH");
    s = pe_run(&e, "cert-ip", 1000); /* server_name defaults to the host: an IP SAN */
    if (!s->ok) {
        print_error("tls by IP: %s %s\n", s->code, s->error);
    }
    assert_int_equal(s->ok, 1);

    /* dns */
    s = pe_run(&e, "lo", 1000);
    assert_int_equal(s->ok, 1);
    s = pe_run(&e, "lo-drift", 1000);
    assert_string_equal(s->code, "MISMATCH");
    assert_non_null(strstr(s->error, "missing 127.0.0.2"));
    assert_non_null(strstr(s->error, "unexpected 127.0.0.1"));
    inc = open_incident(&e, "ingress_configuration_drift", "dns/lo-drift");
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    rsre_store_incident_free(inc);

    /* minio: a cluster without write quorum */
    s = pe_run(&e, "minio", 1000);
    assert_int_equal(s->ok, 1);
    control("{\"cluster\": 503}");
    s = pe_run(&e, "minio", 30000);
    assert_string_equal(s->code, "HTTP_503");
    inc = open_incident(&e, "runtime_dependency_outage", "dependency/minio");
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    rsre_store_incident_free(inc);

    /* http5xx: baseline, then 10% errors over the interval, a controller restart (counter
     * reset), then clean traffic until the window holds no errors. */
    counters(100000, 500);
    s = pe_run(&e, "ingress", 1000);
    assert_int_equal(s->ok, 1);
    assert_null(pe_incident(&e, "http_error_rate_spike", "http/ingress"));
    counters(100900, 600);
    s = pe_run(&e, "ingress", 60000);
    assert_int_equal(s->ok, 1);
    inc = open_incident(&e, "http_error_rate_spike", "http/ingress");
    print_message("5xx incident: severity=%d confidence=%d summary=%s\n", inc->severity,
                  inc->confidence, inc->evidence_summary);
    /* ratio 0.1 > 5%, and rising from nothing: critical */
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    assert_int_equal(inc->resolved_at_ms, 0);
    rsre_store_incident_free(inc);
    counters(450, 50); /* restarted: both counters from zero; 50 of 500 are errors */
    s = pe_run(&e, "ingress", 60000);
    assert_int_equal(s->ok, 1);
    long ok = 450;
    for (int i = 0; i < 17; i++) { /* 17 minutes of clean traffic: window, then exit window */
        ok += 1000;
        counters(ok, 50);
        s = pe_run(&e, "ingress", 60000);
        assert_int_equal(s->ok, 1);
        assert_int_equal(pe_tick(&e, 0), 0);
    }
    inc = open_incident(&e, "http_error_rate_spike", "http/ingress");
    assert_true(inc->resolved_at_ms > 0);
    rsre_store_incident_free(inc);

    pe_close(&e);
    pe_finish();
    curl_global_cleanup();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_http_family)};
    pe_own(&pid, SIGTERM, dir); /* stopped and removed whatever happens */
    return cmocka_run_group_tests(tests, NULL, pe_teardown);
}
