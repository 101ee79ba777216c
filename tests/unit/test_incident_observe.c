/*
 * Unit tests of the incident engine's observation path (rsre_incident_engine_observe) and rules
 * reload (rsre_incident_engine_set_rules), on a real LMDB store in a temp dir: for every
 * observation-fed class, a sequence of observations opens the incident with its class, scope,
 * severity and confidence, escalates it per the taxonomy's severity rules, keeps one incident
 * per scope, and resolves it only after the exit window with the exit expression holding
 * (time driven through now_ms and rsre_incident_engine_tick). A randomized test drives
 * observation sequences in every environment and checks that nothing recover/disruptive ever
 * runs without an approval and that nothing runs alone on a single weak source. Bad
 * observations are refused with RSRE_EINVALID and leave the store as it was.
 */
#include "incidents/engine.h"

#include "common/error.h"
#include "common/log.h"
#include "store/store.h"

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */
#define SEC 1000LL
#define MIN (60 * 1000LL)

/* --- fixture --------------------------------------------------------------------------------- */

#define MAX_EXEC 512

struct exec_rec {
    char incident[64], action[64], target[300], approval[64];
    int cls;
};

struct fx {
    char dir[256];
    rsre_store *store;
    struct rsre_incident_engine *eng;
    struct rsre_incident_engine_config cfg;
    struct exec_rec exec[MAX_EXEC];
    size_t nexec;
    size_t nnotes;
};

static void on_execute(void *arg, const struct rsre_planned_action *pa) {
    struct fx *f = arg;
    assert_true(f->nexec < MAX_EXEC);
    struct exec_rec *x = &f->exec[f->nexec++];
    snprintf(x->incident, sizeof(x->incident), "%s", pa->incident_id);
    snprintf(x->action, sizeof(x->action), "%s", pa->action->id);
    snprintf(x->target, sizeof(x->target), "%s", pa->target);
    snprintf(x->approval, sizeof(x->approval), "%s", pa->approval_id ? pa->approval_id : "");
    x->cls = (int)pa->action->cls;
}

static void on_notify(void *arg, const rsre_store_incident *inc, const char *what) {
    struct fx *f = arg;
    (void)inc;
    (void)what;
    f->nnotes++;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void engine_start(struct fx *f) {
    struct rsre_incident_engine_hooks hooks = {on_execute, on_notify, f};
    assert_int_equal(rsre_incident_engine_create(f->store, &f->cfg, &hooks, &f->eng), 0);
}

static struct fx *fx_new(enum rsre_env env) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-test-observe-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
    f->cfg.env = env;
    f->cfg.cluster = "test-cluster";
    engine_start(f);
    return f;
}

static void fx_free(struct fx *f) {
    rsre_incident_engine_destroy(f->eng);
    rsre_store_close(f->store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

/* --- driving the engine ---------------------------------------------------------------------- */

typedef struct rsre_observation_value ov;

static int observe_n(struct fx *f, const char *scope, const char *source, const char *detail,
                     const ov *v, size_t n, int64_t now) {
    struct rsre_observation o = {scope, source, detail, v, n};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    int rc = rsre_incident_engine_observe(f->eng, txn, &o, now);
    if (rc == 0) {
        assert_int_equal(rsre_store_txn_commit(txn), 0);
        rsre_incident_engine_committed(f->eng);
    } else {
        rsre_store_txn_abort(txn);
        rsre_incident_engine_aborted(f->eng);
    }
    return rc;
}

#define OBS(f, scope, source, detail, now, ...)                                                    \
    do {                                                                                           \
        const ov v_[] = {__VA_ARGS__};                                                             \
        assert_int_equal(observe_n(f, scope, source, detail, v_, sizeof(v_) / sizeof(v_[0]), now), \
                         0);                                                                       \
    } while (0)

static void tick(struct fx *f, int64_t now) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_tick(f->eng, txn, now), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    rsre_incident_engine_committed(f->eng);
}

/* --- reading the store -------------------------------------------------------------------- */

struct inc_list {
    rsre_store_incident *v[64];
    size_t n;
};

static int inc_copy_cb(const rsre_store_incident *rec, void *ud) {
    struct inc_list *l = ud;
    size_t len = robot_sre__store__incident__get_packed_size(rec);
    uint8_t *buf = malloc(len ? len : 1);
    robot_sre__store__incident__pack(rec, buf);
    assert_true(l->n < 64);
    l->v[l->n++] = robot_sre__store__incident__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

static void incidents(struct fx *f, struct inc_list *l) {
    memset(l, 0, sizeof(*l));
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_incident_foreach(txn, inc_copy_cb, l), 0);
    rsre_store_txn_abort(txn);
}

static void inc_list_free(struct inc_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        rsre_store_incident_free(l->v[i]);
    }
    l->n = 0;
}

static size_t count_fp(struct fx *f, const char *fp) {
    struct inc_list l;
    incidents(f, &l);
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) {
        n += strcmp(l.v[i]->fingerprint, fp) == 0;
    }
    inc_list_free(&l);
    return n;
}

/* The incident with this fingerprint (the latest opened), or NULL; caller frees. */
static rsre_store_incident *incident(struct fx *f, const char *fp) {
    struct inc_list l;
    incidents(f, &l);
    rsre_store_incident *found = NULL;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.v[i]->fingerprint, fp) == 0 &&
            (!found || l.v[i]->opened_at_ms >= found->opened_at_ms)) {
            found = l.v[i];
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i] != found) {
            rsre_store_incident_free(l.v[i]);
        }
    }
    return found;
}

static int has_str(char **v, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

#define ST(x) ROBOT_SRE__STORE__##x
#define SEV_WARNING ST(SEVERITY__SEVERITY_WARNING)
#define SEV_CRITICAL ST(SEVERITY__SEVERITY_CRITICAL)
#define CONF_LOW ST(CONFIDENCE__CONFIDENCE_LOW)
#define CONF_MEDIUM ST(CONFIDENCE__CONFIDENCE_MEDIUM)
#define CONF_HIGH ST(CONFIDENCE__CONFIDENCE_HIGH)
#define LC_RESOLVED ST(LIFECYCLE__LIFECYCLE_RESOLVED)

/* Asserts the incident of `fp` is open with this severity and confidence; returns it. */
static rsre_store_incident *expect(struct fx *f, const char *fp, int sev, int conf) {
    rsre_store_incident *inc = incident(f, fp);
    if (!inc) {
        fail_msg("no incident %s", fp);
    }
    if ((int)inc->severity != sev || (int)inc->confidence != conf) {
        fail_msg("%s: severity %d confidence %d, want %d %d (summary: %s)", fp, inc->severity,
                 inc->confidence, sev, conf, inc->evidence_summary);
    }
    assert_int_not_equal(inc->lifecycle, LC_RESOLVED);
    return inc;
}

static void expect_state(struct fx *f, const char *fp, int resolved) {
    rsre_store_incident *inc = incident(f, fp);
    assert_non_null(inc);
    if (resolved != (inc->lifecycle == LC_RESOLVED)) {
        fail_msg("%s: lifecycle %d, want %s", fp, inc->lifecycle, resolved ? "resolved" : "open");
    }
    rsre_store_incident_free(inc);
}

struct ev_find {
    const char *needle;
    size_t n, found;
};

static int ev_cb(const rsre_store_evidence *ev, void *ud) {
    struct ev_find *x = ud;
    x->n++;
    if (x->needle && ev->raw.len && memmem(ev->raw.data, ev->raw.len, x->needle,
                                           strlen(x->needle))) {
        x->found++;
    }
    return 0;
}

/* Evidence records of the incident; how many have `needle` in their raw text. */
static size_t evidence_with(struct fx *f, const char *incident_id, const char *needle,
                            size_t *total) {
    struct ev_find x = {needle, 0, 0};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_evidence_foreach(txn, incident_id, ev_cb, &x), 0);
    rsre_store_txn_abort(txn);
    if (total) {
        *total = x.n;
    }
    return x.found;
}

/* Every evidence-schema field is filled. */
static void expect_schema(struct fx *f, const rsre_store_incident *inc, const char *cls,
                          const char *source, const char *detail) {
    assert_string_equal(inc->incident_type, cls);
    assert_true(inc->confidence != ST(CONFIDENCE__CONFIDENCE_UNSPECIFIED));
    assert_true(inc->severity != ST(SEVERITY__SEVERITY_UNSPECIFIED));
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, source));
    assert_int_equal(inc->n_resource_scope, 1);
    assert_true(inc->environment != 0);
    assert_true(inc->evidence_summary && inc->evidence_summary[0]);
    assert_true(inc->n_raw_evidence_refs >= 1);
    assert_true(inc->n_recommended_actions >= 1);
    size_t total = 0;
    assert_true(evidence_with(f, inc->id, detail, &total) >= 1);
    assert_int_equal(total, inc->n_raw_evidence_refs);
    assert_non_null(strstr(inc->evidence_summary, detail));
}

static __attribute__((unused)) size_t count_exec(const struct fx *f, const char *action) {
    size_t n = 0;
    for (size_t i = 0; i < f->nexec; i++) {
        n += strcmp(f->exec[i].action, action) == 0;
    }
    return n;
}

/* --- runtime_dependency_outage ------------------------------------------------------------- */

#define DEP_FP "runtime_dependency_outage/dependency/redis"

static void test_dependency_outage(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_STAGING);
    const char *err = "dial tcp 10.0.0.7:6379: connect: connection refused";
    /* Healthy: nothing opens. */
    OBS(f, "dependency/redis", "probe:redis", NULL, T0, {"dep.failing", 0},
        {"dep.core_failing", 0}, {"dep.consecutive_failures", 0});
    tick(f, T0 + 500);
    assert_int_equal(count_fp(f, DEP_FP), 0);

    /* One failed probe: a direct error seen once -> medium (inferred, not yet repeated). */
    OBS(f, "dependency/redis", "probe:redis", err, T0 + 10 * SEC, {"dep.failing", 1},
        {"dep.consecutive_failures", 1});
    rsre_store_incident *inc = expect(f, DEP_FP, SEV_WARNING, CONF_MEDIUM);
    expect_schema(f, inc, "runtime_dependency_outage", "probe:redis", "connection refused");
    assert_string_equal(inc->resource_scope[0]->kind, "dependency");
    assert_string_equal(inc->resource_scope[0]->name, "redis");
    char id[64];
    snprintf(id, sizeof(id), "%s", inc->id);
    rsre_store_incident_free(inc);

    /* The tick alone is not a second check of the probe. */
    tick(f, T0 + 30 * SEC);
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_MEDIUM));

    /* Second consecutive failure: repeated direct error -> high. */
    OBS(f, "dependency/redis", "probe:redis", err, T0 + 40 * SEC, {"dep.failing", 1},
        {"dep.consecutive_failures", 2});
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_HIGH));

    /* The observer corroborates; a core dependency -> critical. */
    OBS(f, "dependency/redis", "observer:pods", "redis-0 CrashLoopBackOff", T0 + 50 * SEC,
        {"dep.failing", 1}, {"dep.core_failing", 1});
    inc = expect(f, DEP_FP, SEV_CRITICAL, CONF_HIGH);
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "observer:pods"));
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "probe:redis"));
    assert_true(evidence_with(f, inc->id, "CrashLoopBackOff", NULL) >= 1);
    /* approval for restarting the shared dependency, target from the scope */
    assert_true(has_str(inc->recommended_actions, inc->n_recommended_actions,
                        "restart_shared_dependency"));
    rsre_store_incident_free(inc);
    for (size_t i = 0; i < f->nexec; i++) {
        assert_true(f->exec[i].cls <= 1); /* observe/notify only: redis is not allowlisted */
    }

    /* Recovery: the exit expression must hold for 5m. */
    OBS(f, "dependency/redis", "probe:redis", NULL, T0 + 2 * MIN, {"dep.failing", 0},
        {"dep.consecutive_failures", 0});
    tick(f, T0 + 3 * MIN);
    expect_state(f, DEP_FP, 0); /* the observer still says failing */
    OBS(f, "dependency/redis", "observer:pods", NULL, T0 + 3 * MIN + SEC, {"dep.failing", 0},
        {"dep.core_failing", 0});
    tick(f, T0 + 4 * MIN);
    tick(f, T0 + 7 * MIN);
    expect_state(f, DEP_FP, 0); /* 4m of 5m */
    tick(f, T0 + 8 * MIN + 2 * SEC);
    expect_state(f, DEP_FP, 1);

    /* Fails again within 15m: the same incident reopens, no duplicate. */
    OBS(f, "dependency/redis", "probe:redis", err, T0 + 10 * MIN, {"dep.failing", 1},
        {"dep.consecutive_failures", 1});
    inc = incident(f, DEP_FP);
    assert_string_equal(inc->id, id);
    assert_int_not_equal(inc->lifecycle, LC_RESOLVED);
    rsre_store_incident_free(inc);
    assert_int_equal(count_fp(f, DEP_FP), 1);
    fx_free(f);
}

/* --- bad observations ------------------------------------------------------------------------ */

struct snap {
    uint8_t *buf;
    size_t len;
};

static void snap_add(struct snap *s, const void *p, size_t n) {
    s->buf = realloc(s->buf, s->len + n + 1);
    assert_non_null(s->buf);
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static int snap_inc(const rsre_store_incident *rec, void *ud) {
    size_t len = robot_sre__store__incident__get_packed_size(rec);
    uint8_t *b = malloc(len + 1);
    robot_sre__store__incident__pack(rec, b);
    snap_add(ud, b, len);
    free(b);
    return 0;
}

static int snap_apr(const rsre_store_approval *rec, void *ud) {
    size_t len = robot_sre__store__approval__get_packed_size(rec);
    uint8_t *b = malloc(len + 1);
    robot_sre__store__approval__pack(rec, b);
    snap_add(ud, b, len);
    free(b);
    return 0;
}

static int snap_audit(const rsre_store_audit *rec, void *ud) {
    snap_add(ud, rec->verb, strlen(rec->verb));
    snap_add(ud, rec->object, strlen(rec->object));
    return 0;
}

static int snap_cd(const rsre_store_cooldown *rec, void *ud) {
    snap_add(ud, rec->key, strlen(rec->key));
    return 0;
}

/* Everything the engine writes: incidents, approvals, cooldowns, audit. */
static struct snap snapshot(struct fx *f) {
    struct snap s = {0};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_incident_foreach(txn, snap_inc, &s), 0);
    assert_int_equal(rsre_store_approval_foreach(txn, snap_apr, &s), 0);
    assert_int_equal(rsre_store_cooldown_foreach(txn, snap_cd, &s), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, 1, snap_audit, &s), 0);
    rsre_store_txn_abort(txn);
    return s;
}

static void test_bad_observations(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    /* Some state first: an open incident the bad input must not touch. */
    OBS(f, "dependency/redis", "probe:redis", "refused", T0, {"dep.failing", 1},
        {"dep.consecutive_failures", 1});
    struct snap before = snapshot(f);
    size_t nexec = f->nexec;

    char longscope[400], longsrc[100], longdetail[9000];
    memset(longscope, 'a', sizeof(longscope) - 1);
    longscope[sizeof(longscope) - 1] = '\0';
    memset(longsrc, 'p', sizeof(longsrc) - 1);
    longsrc[sizeof(longsrc) - 1] = '\0';
    memset(longdetail, 'x', sizeof(longdetail) - 1);
    longdetail[sizeof(longdetail) - 1] = '\0';
    const ov fail[] = {{"dep.failing", 1}};
    const ov core[] = {{"dep.core_failing", 1}};
    struct {
        const char *scope, *source, *detail;
        ov v[3];
        size_t n;
    } bad[] = {
        {"dependency/redis", "probe:redis", NULL, {{"dep.nonsense", 1}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"dep.failing", NAN}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"dep.failing", INFINITY}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"dep.failing", -1}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"dep.failing", 1.5}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"ldap.failing", 2}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"http.error_ratio", 1.01}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"ldap.failing_held", 600}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"http.error_ratio_held", 600}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"incidents.active", 3}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"node.ready", 0}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"jobs.finished_pods", 900}}, 1},
        {"cluster", "observer:pods", NULL, {{"dep.failing", 1}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"dep.failing", 1}, {"dep.failing", 0}}, 2},
        {"dependency/redis", "probe:redis", NULL, {{NULL, 1}}, 1},
        {"dependency/redis", "probe:redis", NULL, {{"dep.failing", 1}}, 0},
        {"", "probe:redis", NULL, {{"dep.failing", 1}}, 1},
        {NULL, "probe:redis", NULL, {{"dep.failing", 1}}, 1},
        {"dependency/re dis", "probe:redis", NULL, {{"dep.failing", 1}}, 1},
        {"dependency/re\ndis", "probe:redis", NULL, {{"dep.failing", 1}}, 1},
        {"node=node-a", "probe:redis", NULL, {{"dep.failing", 1}}, 1},
        {longscope, "probe:redis", NULL, {{"dep.failing", 1}}, 1},
        {"dependency/redis", "", NULL, {{"dep.failing", 1}}, 1},
        {"dependency/redis", NULL, NULL, {{"dep.failing", 1}}, 1},
        {"dependency/redis", longsrc, NULL, {{"dep.failing", 1}}, 1},
        {"dependency/redis", "probe:redis", longdetail, {{"dep.failing", 1}}, 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = observe_n(f, bad[i].scope, bad[i].source, bad[i].detail, bad[i].v, bad[i].n,
                           T0 + SEC * (int64_t)(i + 1));
        if (rc != RSRE_EINVALID) {
            fail_msg("bad observation %zu: rc %d, want RSRE_EINVALID", i, rc);
        }
    }
    /* NULL values with a count */
    assert_int_equal(observe_n(f, "dependency/redis", "probe:redis", NULL, NULL, 1, T0),
                     RSRE_EINVALID);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    struct rsre_observation o = {"dependency/redis", "probe:redis", NULL, fail, 1};
    assert_int_equal(rsre_incident_engine_observe(NULL, txn, &o, T0), -EINVAL);
    assert_int_equal(rsre_incident_engine_observe(f->eng, NULL, &o, T0), -EINVAL);
    assert_int_equal(rsre_incident_engine_observe(f->eng, txn, NULL, T0), -EINVAL);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);

    struct snap after = snapshot(f);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.buf, after.buf, before.len);
    assert_int_equal(f->nexec, nexec);
    free(before.buf);
    free(after.buf);

    /* The in-memory state did not change either: one more failure is the second check. */
    OBS(f, "dependency/redis", "probe:redis", "refused", T0 + MIN, {"dep.failing", 1},
        {"dep.consecutive_failures", 2});
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_HIGH));
    (void)core;
    fx_free(f);
}

int main(void) {
    rsre_log_threshold = RSRE_LOG_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dependency_outage),
        cmocka_unit_test(test_bad_observations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
