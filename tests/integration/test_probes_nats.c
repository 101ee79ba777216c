/*
 * Integration: the nats probe against a real nats-server (Debian's) on 127.0.0.1 with token
 * auth: the right token connects and completes a flush round trip; a wrong token is an
 * authorization failure; a killed server refuses. A core probe opens runtime_dependency_outage
 * at dependency/<name> after its threshold; it resolves after the exit window once healthy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../support/probe_env.h"

#define NATS "/usr/sbin/nats-server"

static char dir[128];
static int port;
static pid_t pid;

static void start_nats(void) {
    char portstr[16], log[256];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/nats.log", dir);
    char *argv[] = {NATS, "-a", "127.0.0.1", "-p", portstr, "--auth", "right-token", NULL};
    pid = pe_spawn(argv, log, NULL);
    assert_true(pid > 0);
    assert_int_equal(pe_wait_port(pid, port, 10000), 0);
}

static void test_nats_probe(void **state) {
    (void)state;
    if (access(NATS, X_OK) != 0) {
        fail_msg("nats-server not installed (deploy/local/install-deps.sh --test)");
    }
    snprintf(dir, sizeof dir, "/tmp/rsre-probe-nats-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof p, "%s/right.token", dir);
    pe_write(p, "right-token\n");
    snprintf(p, sizeof p, "%s/wrong.token", dir);
    pe_write(p, "wrong-token\n");
    port = pe_free_port();
    start_nats();

    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "probes:\n"
             "  - {kind: nats, name: bus, host: 127.0.0.1, port: %d, token_file: right.token,"
             " core: true, threshold: 2, timeout: 2s}\n"
             "  - {kind: nats, name: bus-wrong, host: 127.0.0.1, port: %d,"
             " token_file: wrong.token, threshold: 1, timeout: 2s}\n",
             port, port);
    struct pe e;
    assert_int_equal(pe_open(&e, yaml, dir), 0);

    const struct pe_seen *s = pe_run(&e, "bus", 0);
    assert_int_equal(s->ok, 1);
    assert_null(pe_incident(&e, "runtime_dependency_outage", "dependency/bus"));

    s = pe_run(&e, "bus-wrong", 1000);
    assert_int_equal(s->ok, 0);
    assert_string_equal(s->code, "AUTHORIZATION");
    assert_null(strstr(s->error, "wrong-token"));
    rsre_store_incident *inc = pe_incident(&e, "runtime_dependency_outage", "dependency/bus-wrong");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    assert_int_equal(inc->confidence, ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_MEDIUM);
    rsre_store_incident_free(inc);

    pe_stop(pid, SIGKILL);
    pid = 0;
    s = pe_run(&e, "bus", 30000);
    assert_string_equal(s->code, "ECONNREFUSED");
    assert_int_equal(s->failing, 0);
    assert_null(pe_incident(&e, "runtime_dependency_outage", "dependency/bus"));
    s = pe_run(&e, "bus", 30000);
    assert_int_equal(s->failing, 1);
    inc = pe_incident(&e, "runtime_dependency_outage", "dependency/bus");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    assert_int_equal(inc->confidence, ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_HIGH);
    rsre_store_incident_free(inc);

    start_nats();
    for (int i = 0; i < 6; i++) {
        s = pe_run(&e, "bus", 30000);
        assert_int_equal(s->ok, 1);
        assert_int_equal(pe_tick(&e, 30000), 0);
        inc = pe_incident(&e, "runtime_dependency_outage", "dependency/bus");
        /* resolved only once the 300 s exit window has passed */
        assert_true(i < 4 ? inc->resolved_at_ms == 0 : 1);
        rsre_store_incident_free(inc);
    }
    inc = pe_incident(&e, "runtime_dependency_outage", "dependency/bus");
    assert_true(inc->resolved_at_ms > 0);
    rsre_store_incident_free(inc);

    pe_close(&e);
    pe_finish();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nats_probe)};
    pe_own(&pid, SIGTERM, dir); /* stopped and removed whatever happens */
    return cmocka_run_group_tests(tests, NULL, pe_teardown);
}
