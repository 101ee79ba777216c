/*
 * Integration: the postgres probe against a real PostgreSQL 15 (Debian's), initdb'd in a temp
 * dir and run as `nobody` (postgres refuses root) on 127.0.0.1 with max_connections=3 and one
 * slot reserved for superusers. The probe keeps the server's SQLSTATE: 28P01 for a wrong
 * password, 3D000 for a missing database, 53300 once the two ordinary slots are held, 57P03
 * while it starts up; a hung (SIGSTOPped) server times out at the deadline; a stopped server
 * refuses. Failures open database_connectivity_degraded (always critical) at
 * dependency/<name>; the incident resolves after the exit window once SELECT 1 works again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "../support/probe_env.h"

#define PGBIN "/usr/lib/postgresql/15/bin"

static char dir[128], data[192];
static int port;
static pid_t pid;

static int run_wait(char *const argv[], const char *log, const char *user) {
    pid_t p = pe_spawn(argv, log, user);
    int st;
    if (p <= 0 || waitpid(p, &st, 0) != p) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void start_pg(void) {
    char portstr[16], log[256];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/postgres.log", dir);
    char *argv[] = {PGBIN "/postgres",
                    "-D",
                    data,
                    "-k",
                    dir,
                    "-p",
                    portstr,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=3",
                    "-c",
                    "superuser_reserved_connections=1",
                    "-c",
                    "fsync=off",
                    NULL};
    pid = pe_spawn(argv, log, "nobody");
    assert_true(pid > 0);
    assert_int_equal(pe_wait_port(pid, port, 30000), 0);
}

static PGconn *connect_app(void) {
    char ci[256];
    snprintf(ci, sizeof ci,
             "host=127.0.0.1 port=%d user=app password=app-pw dbname=postgres connect_timeout=5",
             port);
    PGconn *c = PQconnectdb(ci);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void test_postgres_probe(void **state) {
    (void)state;
    if (access(PGBIN "/initdb", X_OK) != 0) {
        fail_msg("postgresql not installed (deploy/local/install-deps.sh --test)");
    }
    struct passwd *nobody = getpwnam("nobody");
    assert_non_null(nobody);
    snprintf(dir, sizeof dir, "/tmp/rsre-probe-pg-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chown(dir, nobody->pw_uid, nobody->pw_gid), 0);
    snprintf(data, sizeof data, "%s/data", dir);
    char p[256], log[256];
    snprintf(log, sizeof log, "%s/initdb.log", dir);
    char *initdb[] = {PGBIN "/initdb",
                      "-D",
                      data,
                      "-U",
                      "postgres",
                      "--auth-local=trust",
                      "--auth-host=scram-sha-256",
                      "-E",
                      "UTF8",
                      "--no-sync",
                      NULL};
    assert_int_equal(run_wait(initdb, log, "nobody"), 0);
    snprintf(p, sizeof p, "%s/right.pass", dir);
    pe_write(p, "app-pw\n");
    snprintf(p, sizeof p, "%s/wrong.pass", dir);
    pe_write(p, "not-the-pw\n");
    port = pe_free_port();
    start_pg();

    /* The application role, over the unix socket as the superuser (trust). */
    char ci[256];
    snprintf(ci, sizeof ci, "host=%s port=%d user=postgres dbname=postgres", dir, port);
    PGconn *su = PQconnectdb(ci);
    for (int i = 0; i < 100 && PQstatus(su) != CONNECTION_OK; i++) { /* still starting up */
        PQfinish(su);
        usleep(100000);
        su = PQconnectdb(ci);
    }
    assert_int_equal(PQstatus(su), CONNECTION_OK);
    PGresult *r = PQexec(su, "CREATE ROLE app LOGIN PASSWORD 'app-pw'");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(su);

    char yaml[1536];
    snprintf(yaml, sizeof yaml,
             "probes:\n"
             "  - {kind: postgres, name: db, host: 127.0.0.1, port: %d, user: app,"
             " password_file: right.pass, database: postgres, core: true, threshold: 2,"
             " timeout: 3s}\n"
             "  - {kind: postgres, name: db-wrong, host: 127.0.0.1, port: %d, user: app,"
             " password_file: wrong.pass, threshold: 1, timeout: 3s}\n"
             "  - {kind: postgres, name: db-missing, host: 127.0.0.1, port: %d, user: app,"
             " password_file: right.pass, database: nosuchdb, threshold: 1, timeout: 3s}\n"
             "  - {kind: postgres, name: db-fast, host: 127.0.0.1, port: %d, user: app,"
             " password_file: right.pass, threshold: 5, timeout: 1s}\n",
             port, port, port, port);
    struct pe e;
    assert_int_equal(pe_open(&e, yaml, dir), 0);

    const struct pe_seen *s = pe_run(&e, "db", 0);
    assert_int_equal(s->ok, 1);

    s = pe_run(&e, "db-wrong", 1000);
    assert_string_equal(s->code, "28P01");
    assert_non_null(strstr(s->error, "password authentication failed"));
    assert_null(strstr(s->error, "not-the-pw"));
    rsre_store_incident *inc =
        pe_incident(&e, "database_connectivity_degraded", "dependency/db-wrong");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    rsre_store_incident_free(inc);

    s = pe_run(&e, "db-missing", 1000);
    assert_string_equal(s->code, "3D000");

    /* Hold the two ordinary slots: the next ordinary connection gets 53300. */
    PGconn *h1 = connect_app(), *h2 = connect_app();
    s = pe_run(&e, "db", 30000);
    assert_string_equal(s->code, "53300");
    assert_int_equal(s->failing, 0);
    assert_null(pe_incident(&e, "database_connectivity_degraded", "dependency/db"));
    s = pe_run(&e, "db", 30000);
    assert_string_equal(s->code, "53300");
    assert_int_equal(s->failing, 1);
    inc = pe_incident(&e, "database_connectivity_degraded", "dependency/db");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    print_message("postgres incident: confidence=%d score=%.2f\n", inc->confidence,
                  inc->confidence_score);
    /* db.failing is one direct signal (the catalogue has no consecutive count for the
     * database): medium confidence. */
    assert_int_equal(inc->confidence, ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_MEDIUM);
    assert_int_equal(inc->resolved_at_ms, 0);
    rsre_store_incident_free(inc);
    PQfinish(h1);
    PQfinish(h2);

    /* Slots free again: ok. Then a stopped server refuses. */
    s = pe_run(&e, "db", 30000);
    for (int i = 0; i < 20 && !s->ok; i++) { /* the backends may take a moment to exit */
        usleep(100000);
        s = pe_run(&e, "db", 0);
    }
    assert_int_equal(s->ok, 1);

    /* A hung server (postmaster stopped: the kernel accepts, nobody answers): the run ends at
     * its 1 s deadline instead of holding the worker. */
    pe_sigstop(pid);
    uint64_t t0 = uv_hrtime();
    s = pe_run(&e, "db-fast", 1000);
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
    kill(pid, SIGCONT);
    assert_string_equal(s->code, "ETIMEDOUT");
    assert_true(took_ms < 5000);

    pe_stop(pid, SIGINT);
    pid = 0;
    s = pe_run(&e, "db", 30000);
    assert_string_equal(s->code, "ECONNREFUSED");
    s = pe_run(&e, "db", 30000);
    assert_int_equal(s->failing, 1);
    inc = pe_incident(&e, "database_connectivity_degraded", "dependency/db");
    assert_int_equal(inc->resolved_at_ms, 0);
    rsre_store_incident_free(inc);

    /* Restarted: while it starts up the server answers 57P03 cannot_connect_now. */
    start_pg();
    int starting = 0;
    s = pe_run(&e, "db", 1000);
    for (int i = 0; i < 100 && !s->ok; i++) {
        assert_string_equal(s->code, "57P03");
        starting++;
        usleep(100000);
        s = pe_run(&e, "db", 0);
    }
    assert_int_equal(s->ok, 1);
    print_message("57P03 answers while starting up: %d\n", starting);
    for (int i = 0; i < 6; i++) {
        s = pe_run(&e, "db", 30000);
        assert_int_equal(s->ok, 1);
        assert_int_equal(pe_tick(&e, 30000), 0);
    }
    inc = pe_incident(&e, "database_connectivity_degraded", "dependency/db");
    assert_true(inc->resolved_at_ms > 0);
    rsre_store_incident_free(inc);

    pe_close(&e);
    pe_finish();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_postgres_probe)};
    pe_own(&pid, SIGINT, dir); /* stopped and removed whatever happens */
    return cmocka_run_group_tests(tests, NULL, pe_teardown);
}
