/*
 * Integration: the redis probe against a real redis-server (Debian's) on 127.0.0.1 in a temp
 * dir, through the probe scheduler on a libuv loop, feeding an incident engine on a temp store.
 * The server runs with requirepass: the right password answers PONG, a wrong one WRONGPASS, none
 * NOAUTH, a server still loading its dataset LOADING; a stopped (SIGSTOP) server times out within
 * the probe's timeout; a killed one refuses. A core probe failing twice opens
 * runtime_dependency_outage at dependency/<name> (critical), a non-core one a warning; a success
 * starts the exit window and the tick after it resolves. Last, the scheduler is closed while its
 * runs hang on the stopped server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "../support/probe_env.h"

#define REDIS "/usr/bin/redis-server"

static char dir[128];
static int port;
static pid_t pid;

/* slow_load: load the saved dataset one key per millisecond, answering LOADING meanwhile. */
static void start_redis_with(int slow_load) {
    char portstr[16], log[256];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    char *argv[] = {REDIS,       "--port",
                    portstr,     "--bind",
                    "127.0.0.1", "--save",
                    "",          "--appendonly",
                    "no",        "--dir",
                    dir,         "--requirepass",
                    "right-pw",  "--enable-debug-command",
                    "yes",       NULL,
                    NULL,        NULL,
                    NULL,        NULL};
    if (slow_load) {
        char **a = &argv[15];
        a[0] = "--key-load-delay";
        a[1] = "1000";
        a[2] = "--loading-process-events-interval-bytes";
        a[3] = "1024";
    }
    pid = pe_spawn(argv, log, NULL);
    assert_true(pid > 0);
    assert_int_equal(pe_wait_port(pid, port, 10000), 0);
}

static void start_redis(void) {
    start_redis_with(0);
}

/* Writes a dataset of `keys` keys to dump.rdb through the running server. */
static void save_dataset(int keys) {
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_true(c && !c->err);
    redisReply *r = redisCommand(c, "AUTH right-pw");
    assert_true(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "DEBUG POPULATE %d", keys);
    assert_true(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "SAVE");
    assert_true(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
}

static void test_redis_probe(void **state) {
    (void)state;
    if (access(REDIS, X_OK) != 0) {
        fail_msg("redis-server not installed (deploy/local/install-deps.sh --test)");
    }
    snprintf(dir, sizeof dir, "/tmp/rsre-probe-redis-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof p, "%s/right.pass", dir);
    pe_write(p, "right-pw\n");
    snprintf(p, sizeof p, "%s/wrong.pass", dir);
    pe_write(p, "wrong-pw\n");
    port = pe_free_port();
    start_redis();

    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "probes:\n"
             "  - {kind: redis, name: cache, host: 127.0.0.1, port: %d, password_file: right.pass,"
             " core: true, threshold: 2, timeout: 1s, interval: 30s}\n"
             "  - {kind: redis, name: cache-wrong, host: 127.0.0.1, port: %d,"
             " password_file: wrong.pass, threshold: 1, timeout: 1s}\n"
             "  - {kind: redis, name: cache-noauth, host: 127.0.0.1, port: %d, threshold: 1,"
             " timeout: 1s}\n",
             port, port, port);
    struct pe e;
    assert_int_equal(pe_open(&e, yaml, dir), 0);

    const struct pe_seen *s = pe_run(&e, "cache", 0);
    assert_non_null(s);
    assert_int_equal(s->ok, 1);
    assert_int_equal(e.feed_rc, 0);
    assert_null(pe_incident(&e, "runtime_dependency_outage", "dependency/cache"));

    /* Wrong password: WRONGPASS, failing at once (threshold 1), warning (not core). */
    s = pe_run(&e, "cache-wrong", 1000);
    assert_int_equal(s->ok, 0);
    assert_string_equal(s->code, "WRONGPASS");
    assert_non_null(strstr(s->error, "WRONGPASS"));
    assert_null(strstr(s->error, "wrong-pw"));
    assert_int_equal(s->failing, 1);
    assert_int_equal(e.feed_rc, 0);
    rsre_store_incident *inc =
        pe_incident(&e, "runtime_dependency_outage", "dependency/cache-wrong");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING);
    assert_int_equal(inc->confidence, ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_MEDIUM);
    assert_int_equal(inc->resolved_at_ms, 0);
    rsre_store_incident_free(inc);

    /* No password: NOAUTH. */
    s = pe_run(&e, "cache-noauth", 1000);
    assert_string_equal(s->code, "NOAUTH");

    /* A hung server (stopped): the probe times out within its timeout, the loop stays free. */
    pe_sigstop(pid);
    uint64_t t0 = uv_hrtime();
    s = pe_run(&e, "cache", 1000);
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
    kill(pid, SIGCONT);
    assert_int_equal(s->ok, 0);
    assert_string_equal(s->code, "ETIMEDOUT");
    assert_true(took_ms < 5000);     /* 1 s timeout per step, generous for a loaded machine */
    assert_int_equal(s->failing, 0); /* one failure, threshold 2 */
    assert_null(pe_incident(&e, "runtime_dependency_outage", "dependency/cache"));

    /* Killed: refused; the second consecutive failure opens a critical incident (core). */
    pe_stop(pid, SIGKILL);
    pid = 0;
    s = pe_run(&e, "cache", 30000);
    assert_string_equal(s->code, "ECONNREFUSED");
    assert_int_equal(s->failing, 1);
    assert_int_equal(s->consecutive, 2);
    inc = pe_incident(&e, "runtime_dependency_outage", "dependency/cache");
    assert_non_null(inc);
    assert_int_equal(inc->severity, ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL);
    print_message("redis incident: severity=%d confidence=%d score=%.2f lifecycle=%d\n",
                  inc->severity, inc->confidence, inc->confidence_score, inc->lifecycle);
    /* two consecutive direct failures: high confidence */
    assert_int_equal(inc->confidence, ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_HIGH);
    assert_int_equal(inc->resolved_at_ms, 0);
    rsre_store_incident_free(inc);

    /* Back: the first success recovers the probe; the incident resolves after the exit window
     * (300 s for this class) and not before. */
    start_redis();
    s = pe_run(&e, "cache", 30000);
    assert_int_equal(s->ok, 1);
    assert_int_equal(s->changed, 1);
    assert_int_equal(s->failing, 0);
    assert_int_equal(pe_tick(&e, 60000), 0);
    inc = pe_incident(&e, "runtime_dependency_outage", "dependency/cache");
    assert_int_equal(inc->resolved_at_ms, 0);
    rsre_store_incident_free(inc);
    for (int i = 0; i < 5; i++) {
        s = pe_run(&e, "cache", 30000);
        assert_int_equal(s->ok, 1);
        assert_int_equal(pe_tick(&e, 30000), 0);
    }
    inc = pe_incident(&e, "runtime_dependency_outage", "dependency/cache");
    assert_true(inc->resolved_at_ms > 0);
    assert_int_equal(inc->lifecycle, ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED);
    rsre_store_incident_free(inc);

    /* Restarted on a dataset that takes seconds to load: LOADING, a failure of its own. */
    save_dataset(4000);
    pe_stop(pid, SIGTERM);
    pid = 0;
    start_redis_with(1);
    s = pe_run(&e, "cache", 30000);
    assert_int_equal(s->ok, 0);
    assert_string_equal(s->code, "LOADING");
    assert_non_null(strstr(s->error, "LOADING Redis is loading the dataset in memory"));
    assert_int_equal(s->consecutive, 1);

    /* The scheduler's timers start every probe at once. Closing it while runs are stuck on a
     * hung server waits for them (each bounded by its timeout) and delivers nothing after the
     * close: no worker is leaked and the engine is not fed after shutdown began. */
    pe_sigstop(pid);
    assert_int_equal(rsre_probes_start(e.probes), 0);
    while (rsre_probes_in_flight(e.probes) < 3) {
        uv_run(&e.loop, UV_RUN_NOWAIT); /* the timers are due at once */
    }
    assert_int_equal(rsre_probes_run_now(e.probes, "cache"), -EBUSY);
    assert_int_equal(rsre_probes_run_now(e.probes, "nosuch"), RSRE_ENOTFOUND);
    int before = e.got;
    pe_close(&e);
    assert_int_equal(e.got, before);
    kill(pid, SIGCONT);
    pe_finish();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_redis_probe)};
    pe_own(&pid, SIGTERM, dir); /* stopped and removed whatever happens */
    return cmocka_run_group_tests(tests, NULL, pe_teardown);
}
