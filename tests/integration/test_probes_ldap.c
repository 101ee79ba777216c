/*
 * Integration: the ldap probe against a real slapd (OpenLDAP 2.5, Debian's) on 127.0.0.1 with
 * a temp slapd.conf (mdb backend, suffix dc=test,dc=example) and a service-account entry
 * loaded with slapadd, listening on ldap:// and ldaps:// (a self-signed certificate). The right
 * password binds and reads the rootDSE, also over ldaps:// with the certificate as ca_file
 * (without it the TLS handshake fails: -1); a wrong one is result
 * 49 (invalid credentials); a hung (SIGSTOPped) one times out; a killed one is -1 (can't
 * contact). Failures open
 * identity_provider_unreachable at dependency/<name> (warning, critical once failing for more
 * than 5 minutes) and it resolves after the exit window once the bind works again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netdb.h>

#include "../support/probe_env.h"

#define SLAPD "/usr/sbin/slapd"
#define SLAPADD "/usr/sbin/slapadd"

static char dir[128], conf[192];
static int port, tls_port;
static pid_t pid;

static void start_slapd(void) {
    char url[128], log[256];
    snprintf(url, sizeof url, "ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", port, tls_port);
    snprintf(log, sizeof log, "%s/slapd.log", dir);
    char *argv[] = {SLAPD, "-f", conf, "-h", url, "-d", "0", NULL};
    pid = pe_spawn(argv, log, NULL);
    assert_true(pid > 0);
    assert_int_equal(pe_wait_port(pid, port, 15000), 0);
    assert_int_equal(pe_wait_port(pid, tls_port, 15000), 0);
}

static int run_wait(char *const argv[], const char *log) {
    pid_t p = pe_spawn(argv, log, NULL);
    int st;
    if (p <= 0 || waitpid(p, &st, 0) != p) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_ldap_probe(void **state) {
    (void)state;
    if (access(SLAPD, X_OK) != 0) {
        fail_msg("slapd not installed (deploy/local/install-deps.sh --test)");
    }
    snprintf(dir, sizeof dir, "/tmp/rsre-probe-ldap-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char p[256], text[2048];
    snprintf(p, sizeof p, "%s/db", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    /* A self-signed certificate for the ldaps:// listener; it is its own CA. libldap checks a
     * loopback peer against the local host's canonical name (not the URL's host), so the
     * certificate names that too. */
    char crt[192], key[192], log0[256], host[256] = "localhost", canon[256] = "localhost";
    gethostname(host, sizeof host);
    struct addrinfo hints = {.ai_flags = AI_CANONNAME}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname) {
        snprintf(canon, sizeof canon, "%s", ai->ai_canonname);
    }
    freeaddrinfo(ai);
    char san[700];
    snprintf(san, sizeof san, "subjectAltName=DNS:localhost,DNS:%s,DNS:%s,IP:127.0.0.1", host,
             canon);
    snprintf(crt, sizeof crt, "%s/ldap.crt", dir);
    snprintf(key, sizeof key, "%s/ldap.key", dir);
    snprintf(log0, sizeof log0, "%s/openssl.log", dir);
    char *req[] = {"/usr/bin/openssl",
                   "req",
                   "-x509",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:prime256v1",
                   "-nodes",
                   "-keyout",
                   key,
                   "-out",
                   crt,
                   "-days",
                   "2",
                   "-subj",
                   "/CN=localhost",
                   "-addext",
                   san,
                   NULL};
    assert_int_equal(run_wait(req, log0), 0);
    snprintf(conf, sizeof conf, "%s/slapd.conf", dir);
    snprintf(text, sizeof text,
             "include /etc/ldap/schema/core.schema\n"
             "include /etc/ldap/schema/cosine.schema\n"
             "include /etc/ldap/schema/inetorgperson.schema\n"
             "pidfile %s/slapd.pid\n"
             "TLSCertificateFile %s\n"
             "TLSCertificateKeyFile %s\n"
             "modulepath /usr/lib/ldap\n"
             "moduleload back_mdb\n"
             "database mdb\n"
             "suffix \"dc=test,dc=example\"\n"
             "rootdn \"cn=admin,dc=test,dc=example\"\n"
             "directory %s/db\n"
             "maxsize 10485760\n",
             dir, crt, key, dir);
    pe_write(conf, text);
    snprintf(p, sizeof p, "%s/data.ldif", dir);
    pe_write(p, "dn: dc=test,dc=example\n"
                "objectClass: dcObject\n"
                "objectClass: organization\n"
                "dc: test\n"
                "o: Test\n"
                "\n"
                "dn: cn=robot-sre,dc=test,dc=example\n"
                "objectClass: person\n"
                "cn: robot-sre\n"
                "sn: probe\n"
                "userPassword: svc-pw\n");
    char log[256];
    snprintf(log, sizeof log, "%s/slapadd.log", dir);
    char *add[] = {SLAPADD, "-f", conf, "-l", p, NULL};
    pid_t a = pe_spawn(add, log, NULL);
    int st;
    assert_int_equal(waitpid(a, &st, 0), a);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(p, sizeof p, "%s/right.pass", dir);
    pe_write(p, "svc-pw\n");
    snprintf(p, sizeof p, "%s/wrong.pass", dir);
    pe_write(p, "not-svc-pw\n");
    port = pe_free_port();
    tls_port = pe_free_port();
    start_slapd();

    char yaml[1536];
    snprintf(yaml, sizeof yaml,
             "probes:\n"
             "  - {kind: ldap, name: ldap, url: \"ldap://127.0.0.1:%d/\","
             " bind_dn: \"cn=robot-sre,dc=test,dc=example\", password_file: right.pass,"
             " threshold: 2, timeout: 2s}\n"
             "  - {kind: ldap, name: ldap-wrong, url: \"ldap://127.0.0.1:%d/\","
             " bind_dn: \"cn=robot-sre,dc=test,dc=example\", password_file: wrong.pass,"
             " threshold: 1, timeout: 2s}\n"
             "  - {kind: ldap, name: ldap-fast, url: \"ldap://127.0.0.1:%d/\","
             " bind_dn: \"cn=robot-sre,dc=test,dc=example\", password_file: right.pass,"
             " threshold: 5, timeout: 1s}\n"
             "  - {kind: ldap, name: ldaps, url: \"ldaps://localhost:%d/\", ca_file: ldap.crt,"
             " bind_dn: \"cn=robot-sre,dc=test,dc=example\", password_file: right.pass,"
             " threshold: 1, timeout: 2s}\n"
             "  - {kind: ldap, name: ldaps-untrusted, url: \"ldaps://localhost:%d/\","
             " bind_dn: \"cn=robot-sre,dc=test,dc=example\", password_file: right.pass,"
             " threshold: 1, timeout: 2s}\n",
             port, port, port, tls_port, tls_port);
    struct pe e;
    assert_int_equal(pe_open(&e, yaml, dir), 0);

    const struct pe_seen *s = pe_run(&e, "ldap", 0);
    if (!s->ok) {
        print_error("ldap probe: %s %s\n", s->code, s->error);
    }
    assert_int_equal(s->ok, 1);

    /* ldaps:// with the server's certificate as the trust anchor; without it: refused. */
    s = pe_run(&e, "ldaps", 1000);
    if (!s->ok) {
        print_error("ldaps probe: %s %s\n", s->code, s->error);
    }
    assert_int_equal(s->ok, 1);
    s = pe_run(&e, "ldaps-untrusted", 1000);
    assert_int_equal(s->ok, 0);
    print_message("ldaps without the CA: %s (%s)\n", s->code, s->error);
    assert_string_equal(s->code, "LDAP_-1");

    s = pe_run(&e, "ldap-wrong", 1000);
    assert_string_equal(s->code, "LDAP_49");
    assert_non_null(strstr(s->error, "Invalid credentials"));
    assert_null(strstr(s->error, "not-svc-pw"));
    rsre_store_incident *inc =
        pe_incident(&e, "identity_provider_unreachable", "dependency/ldap-wrong");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    rsre_store_incident_free(inc);

    /* A hung server (SIGSTOP): the bind ends at the 1 s operation timeout. */
    pe_sigstop(pid);
    uint64_t t0 = uv_hrtime();
    s = pe_run(&e, "ldap-fast", 1000);
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
    kill(pid, SIGCONT);
    assert_int_equal(s->ok, 0);
    print_message("hung slapd: %s (%s) after %llu ms\n", s->code, s->error,
                  (unsigned long long)took_ms);
    assert_true(strcmp(s->code, "LDAP_-5") == 0 || strcmp(s->code, "LDAP_-1") == 0);
    assert_true(took_ms < 5000);

    pe_stop(pid, SIGKILL);
    pid = 0;
    s = pe_run(&e, "ldap", 30000);
    assert_string_equal(s->code, "LDAP_-1");
    assert_int_equal(s->failing, 0);
    assert_null(pe_incident(&e, "identity_provider_unreachable", "dependency/ldap"));
    s = pe_run(&e, "ldap", 30000);
    assert_int_equal(s->failing, 1);
    inc = pe_incident(&e, "identity_provider_unreachable", "dependency/ldap");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    print_message("ldap incident: confidence=%d score=%.2f\n", inc->confidence,
                  inc->confidence_score);
    assert_int_equal(inc->confidence, ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_MEDIUM);
    rsre_store_incident_free(inc);
    /* Still failing 6 minutes later: sustained, critical. */
    for (int i = 0; i < 6; i++) {
        s = pe_run(&e, "ldap", 60000);
        assert_int_equal(s->failing, 1);
    }
    assert_int_equal(pe_tick(&e, 0), 0);
    inc = pe_incident(&e, "identity_provider_unreachable", "dependency/ldap");
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    assert_int_equal(inc->resolved_at_ms, 0);
    rsre_store_incident_free(inc);

    start_slapd();
    for (int i = 0; i < 6; i++) {
        s = pe_run(&e, "ldap", 30000);
        assert_int_equal(s->ok, 1);
        assert_int_equal(pe_tick(&e, 30000), 0);
    }
    inc = pe_incident(&e, "identity_provider_unreachable", "dependency/ldap");
    assert_true(inc->resolved_at_ms > 0);
    rsre_store_incident_free(inc);

    pe_close(&e);
    pe_finish();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ldap_probe)};
    pe_own(&pid, SIGTERM, dir); /* stopped and removed whatever happens */
    return cmocka_run_group_tests(tests, NULL, pe_teardown);
}
