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
#include "common/yamldoc.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"
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

/* The freshness bound of the fixtures' observations (engine config observation_fresh_ms). Most
 * tests drive time far ahead between reports, as if every reporter declared a day-long bound;
 * the staleness tests and the randomized test use the engine's default (0: 180 s). */
#define FRESH_LONG (24 * 60 * 60 * 1000LL)

static struct fx *fx_new_fresh(enum rsre_env env, int64_t fresh_ms) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    /* tmpfs when there is one: thousands of commits without waiting for a disk */
    snprintf(f->dir, sizeof(f->dir), "%s/rsre-test-observe-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(rsre_store_open(f->dir, NULL, &f->store), 0);
    f->cfg.env = env;
    f->cfg.cluster = "test-cluster";
    f->cfg.observation_fresh_ms = fresh_ms;
    engine_start(f);
    return f;
}

static struct fx *fx_new(enum rsre_env env) {
    return fx_new_fresh(env, FRESH_LONG);
}

static void fx_free(struct fx *f) {
    rsre_incident_engine_destroy(f->eng);
    rsre_store_close(f->store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

/* --- driving the engine ---------------------------------------------------------------------- */

typedef struct rsre_observation_value ov;

/* Commits (and tells the engine) or aborts (and tells the engine). */
static void end_txn(struct fx *f, rsre_store_txn *txn, int commit) {
    if (commit) {
        assert_int_equal(rsre_store_txn_commit(txn), 0);
        rsre_incident_engine_committed(f->eng);
    } else {
        rsre_store_txn_abort(txn);
        rsre_incident_engine_aborted(f->eng);
    }
}

static int observe_fresh(struct fx *f, const char *scope, const char *source, const char *detail,
                         const ov *v, size_t n, int64_t fresh_ms, int64_t now) {
    struct rsre_observation o = {scope, source, detail, v, n, fresh_ms};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    int rc = rsre_incident_engine_observe(f->eng, txn, &o, now);
    end_txn(f, txn, rc == 0);
    return rc;
}

/* With the engine's default freshness bound (observation_fresh_ms). */
static int observe_n(struct fx *f, const char *scope, const char *source, const char *detail,
                     const ov *v, size_t n, int64_t now) {
    return observe_fresh(f, scope, source, detail, v, n, 0, now);
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

struct apr_find {
    const char *action, *target;
    rsre_store_approval *found;
};

static int apr_cb(const rsre_store_approval *rec, void *ud) {
    struct apr_find *a = ud;
    if (!a->found && strcmp(rec->action, a->action) == 0 && strcmp(rec->target, a->target) == 0) {
        size_t len = robot_sre__store__approval__get_packed_size(rec);
        uint8_t *buf = malloc(len ? len : 1);
        robot_sre__store__approval__pack(rec, buf);
        a->found = robot_sre__store__approval__unpack(NULL, len, buf);
        free(buf);
    }
    return 0;
}

/* The first approval for action+target, or NULL; caller frees. */
static rsre_store_approval *approval_for(struct fx *f, const char *action, const char *target) {
    struct apr_find a = {action, target, NULL};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_approval_foreach(txn, apr_cb, &a), 0);
    rsre_store_txn_abort(txn);
    return a.found;
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
    if (x->needle && ev->raw.len &&
        memmem(ev->raw.data, ev->raw.len, x->needle, strlen(x->needle))) {
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

static size_t count_exec(const struct fx *f, const char *action) {
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
    OBS(f, "dependency/redis", "probe:redis", NULL, T0, {"dep.failing", 0}, {"dep.core_failing", 0},
        {"dep.consecutive_failures", 0});
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
    assert_true(
        has_str(inc->recommended_actions, inc->n_recommended_actions, "restart_shared_dependency"));
    rsre_store_incident_free(inc);
    for (size_t i = 0; i < f->nexec; i++) {
        assert_true(f->exec[i].cls <= 1); /* observe/notify only: redis is not allowlisted */
    }
    /* the approval request: action, target, why now, impact, rollback/fallback, expiry */
    rsre_store_approval *ap = approval_for(f, "restart_shared_dependency", "redis");
    assert_non_null(ap);
    assert_non_null(strstr(ap->prompt, "Robot SRE requests approval: rollout-restart shared "
                                       "dependency redis. Reason: runtime dependency outage on "
                                       "dependency/redis"));
    assert_non_null(strstr(ap->prompt, "connection refused"));
    assert_non_null(strstr(ap->prompt, "Expected impact: the dependency's pods are replaced"));
    assert_non_null(strstr(ap->prompt, "next fallback: change the replica count of dependency "
                                       "redis"));
    assert_non_null(strstr(ap->prompt, "Approval expires in 10m."));
    rsre_store_approval_free(ap);

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
    struct rsre_observation o = {"dependency/redis", "probe:redis", NULL, fail, 1, 0};
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

/* --- every observation-fed class ------------------------------------------------------------ */

#define MAXV 4

struct vals {
    ov v[MAXV];
    size_t n;
};

/* One class: a scope, two independent sources (the first alone, then corroborated), the
 * values that open it, the values (or the held time) that escalate it, the healthy values and
 * the exit window. */
struct class_case {
    const char *cls, *scope, *src1, *src2;
    int src1_direct; /* src1's evidence is a direct error: two checks alone reach high */
    int open_sev;    /* severity at opening */
    struct vals open, crit, healthy;
    int64_t crit_after_ms; /* > 0: escalation by a held duration (tick this long after open) */
    int crit_needs_other;  /* escalation needs another active incident (chatops) */
    int64_t exit_window_ms;
    const char *detail;
};

#define VALS(...)                                                                                  \
    { {__VA_ARGS__}, sizeof((ov[]){__VA_ARGS__}) / sizeof(ov) }

static const struct class_case CASES[] = {
    {"registry_pull_failure", "workload/prod/api", "observer:pods", "probe:registry", 0,
     SEV_WARNING, VALS({"pull.failing_workloads", 1}),
     VALS({"pull.failing_workloads", 1}, {"pull.failing_core_workloads", 1}),
     VALS({"pull.failing_workloads", 0}, {"pull.failing_core_workloads", 0}), 0, 0, 10 * MIN,
     "toomanyrequests: rate limit exceeded"},
    {"runtime_dependency_outage", "dependency/nats", "probe:nats", "observer:pods", 1, SEV_WARNING,
     VALS({"dep.failing", 1}), VALS({"dep.failing", 1}, {"dep.cascading", 2}),
     VALS({"dep.failing", 0}, {"dep.cascading", 0}), 0, 0, 5 * MIN, "nats: no servers available"},
    {"ingress_configuration_drift", "route/app.example/healthz", "probe:routes", "observer:ingress",
     1, SEV_WARNING, VALS({"ingress.failing_routes", 1}),
     VALS({"ingress.failing_routes", 1}, {"tls.failures", 1}),
     VALS({"ingress.failing_routes", 0}, {"tls.failures", 0}, {"dns.mismatches", 0}), 0, 0, 5 * MIN,
     "GET https://app.example/healthz: 404"},
    {"identity_provider_unreachable", "identity/ldap", "probe:ldap", "observer:backend-logs", 1,
     SEV_WARNING, VALS({"ldap.failing", 1}), VALS({"ldap.failing", 1}), VALS({"ldap.failing", 0}),
     6 * MIN, 0, 5 * MIN, "ldap_sasl_bind: Can't contact LDAP server"},
    {"http_error_rate_spike", "service/prod/api", "probe:metrics", "observer:ingress-logs", 0,
     SEV_WARNING, VALS({"http.error_ratio", 0.08}), VALS({"http.error_ratio", 0.08}),
     VALS({"http.error_ratio", 0.01}), 11 * MIN, 0, 10 * MIN, "5xx 80 of 1000 requests"},
    {"database_connectivity_degraded", "database/main", "probe:postgres", "observer:api-logs", 1,
     SEV_CRITICAL, VALS({"db.failing", 1}), VALS({"db.failing", 1}), VALS({"db.failing", 0}), 0, 0,
     5 * MIN, "connection to server at 10.0.0.9 port 5432 failed"},
    {"release_drift_or_partial_apply", "release/prod/api", "observer:helm", "probe:release", 0,
     SEV_WARNING, VALS({"release.drifted", 1}),
     VALS({"release.drifted", 1}, {"release.rollout_blocked", 1},
          {"release.unhealthy_workloads", 2}),
     VALS({"release.drifted", 0}, {"release.rollout_blocked", 0},
          {"release.unhealthy_workloads", 0}),
     0, 0, 5 * MIN, "helm status: pending-upgrade"},
    {"chatops_delivery_failure", "channels", "notify:telegram", "probe:telegram", 1, SEV_WARNING,
     VALS({"chat.channels_down", 1}, {"chat.channels_total", 2}),
     VALS({"chat.channels_down", 2}, {"chat.channels_total", 2}),
     VALS({"chat.channels_down", 0}, {"chat.channels_total", 2}), 0, 1, 5 * MIN,
     "sendMessage: 403 Forbidden: bot was blocked by the user"},
    {"background_job_buildup", "cluster", "observer:pods", "probe:apiserver", 0, SEV_WARNING,
     VALS({"jobs.finished_pods", 500}),
     VALS({"jobs.finished_pods", 500}, {"jobs.apiserver_churn", 3}),
     VALS({"jobs.finished_pods", 20}, {"jobs.apiserver_churn", 0}), 0, 0, 5 * MIN,
     "500 Succeeded pods in ci"},
};
#define NCASES (sizeof(CASES) / sizeof(CASES[0]))

static void put_vals(struct fx *f, const struct class_case *c, const char *src,
                     const struct vals *v, const char *detail, int64_t now) {
    int rc = observe_n(f, c->scope, src, detail, v->v, v->n, now);
    if (rc) {
        fail_msg("%s: observe from %s: rc %d", c->cls, src, rc);
    }
}

static void class_fp(const struct class_case *c, char *fp, size_t cap) {
    snprintf(fp, cap, "%s/%s", c->cls, c->scope);
}

static void run_case(const struct class_case *c, enum rsre_env env) {
    struct fx *f = fx_new(env);
    char fp[400];
    class_fp(c, fp, sizeof(fp));
    int64_t t = T0;
    if (c->crit_needs_other) {
        /* another active incident: a dependency down */
        OBS(f, "dependency/redis", "probe:redis", "refused", t, {"dep.failing", 1});
    }
    /* healthy first: nothing opens */
    put_vals(f, c, c->src1, &c->healthy, NULL, t);
    tick(f, t + SEC);
    assert_int_equal(count_fp(f, fp), 0);

    /* one source, once: medium */
    t += 10 * SEC;
    put_vals(f, c, c->src1, &c->open, c->detail, t);
    rsre_store_incident *inc = expect(f, fp, c->open_sev, CONF_MEDIUM);
    expect_schema(f, inc, c->cls, c->src1, c->detail);
    char id[64];
    snprintf(id, sizeof(id), "%s", inc->id);
    rsre_store_incident_free(inc);
    /* ticks are not checks */
    tick(f, t + 20 * SEC);
    rsre_store_incident_free(expect(f, fp, c->open_sev, CONF_MEDIUM));

    /* the same source again: a repeated direct error is high, a strong signal stays medium */
    t += 30 * SEC;
    put_vals(f, c, c->src1, &c->open, c->detail, t);
    rsre_store_incident_free(expect(f, fp, c->open_sev, c->src1_direct ? CONF_HIGH : CONF_MEDIUM));

    /* a second, independent source: high */
    t += 10 * SEC;
    put_vals(f, c, c->src2, &c->open, "seen as well", t);
    inc = expect(f, fp, c->open_sev, CONF_HIGH);
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, c->src2));
    rsre_store_incident_free(inc);

    /* escalation */
    if (c->crit_after_ms) {
        tick(f, T0 + c->crit_after_ms - MIN);
        rsre_store_incident_free(expect(f, fp, c->open_sev, CONF_HIGH));
        tick(f, T0 + c->crit_after_ms + 20 * SEC);
        t = T0 + c->crit_after_ms + 20 * SEC;
    } else {
        t += 10 * SEC;
        put_vals(f, c, c->src1, &c->crit, c->detail, t);
    }
    rsre_store_incident_free(expect(f, fp, SEV_CRITICAL, CONF_HIGH));
    assert_int_equal(count_fp(f, fp), 1);

    /* recovery: both sources healthy; resolved only after the exit window */
    t += 30 * SEC;
    put_vals(f, c, c->src1, &c->healthy, NULL, t);
    tick(f, t + 10 * SEC);
    expect_state(f, fp, 0); /* the second source still reports the failure */
    t += 20 * SEC;
    put_vals(f, c, c->src2, &c->healthy, NULL, t);
    tick(f, t + c->exit_window_ms - MIN);
    expect_state(f, fp, 0);
    /* a relapse inside the window restarts it */
    put_vals(f, c, c->src2, &c->open, "again", t + c->exit_window_ms - MIN + SEC);
    put_vals(f, c, c->src2, &c->healthy, NULL, t + c->exit_window_ms - MIN + 2 * SEC);
    tick(f, t + c->exit_window_ms + SEC);
    expect_state(f, fp, 0);
    t += c->exit_window_ms - MIN + 2 * SEC;
    tick(f, t + c->exit_window_ms - SEC);
    expect_state(f, fp, 0);
    tick(f, t + c->exit_window_ms + SEC);
    expect_state(f, fp, 1);

    /* back within the duplicate window: the same incident, reopened */
    put_vals(f, c, c->src1, &c->open, c->detail, t + c->exit_window_ms + 2 * MIN);
    inc = incident(f, fp);
    assert_string_equal(inc->id, id);
    assert_int_not_equal(inc->lifecycle, LC_RESOLVED);
    rsre_store_incident_free(inc);
    assert_int_equal(count_fp(f, fp), 1);

    /* nothing recover/disruptive ran without an approval */
    for (size_t i = 0; i < f->nexec; i++) {
        assert_true(f->exec[i].cls <= RSRE_CLASS_CONTAIN);
    }
    fx_free(f);
}

static void test_every_class(void **state) {
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        run_case(&CASES[i], RSRE_ENV_DEMO);
        run_case(&CASES[i], RSRE_ENV_PRODUCTION);
    }
}

/* A single weak source (not a probe, observer or channel) stays low however often it repeats,
 * and never makes anything run beyond observe/notify; a second weak source does not help. */
static void test_weak_sources(void **state) {
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const struct class_case *c = &CASES[i];
        struct fx *f = fx_new(RSRE_ENV_DEMO);
        char fp[400];
        class_fp(c, fp, sizeof(fp));
        for (int k = 0; k < 20; k++) {
            put_vals(f, c, "webhook:alertmanager", &c->open, "alert firing", T0 + k * 30 * SEC);
            put_vals(f, c, "probe:", &c->open, "empty name", T0 + k * 30 * SEC + SEC);
            tick(f, T0 + k * 30 * SEC + 2 * SEC);
        }
        rsre_store_incident *inc = incident(f, fp);
        assert_non_null(inc);
        if ((int)inc->confidence != CONF_LOW) {
            fail_msg("%s: weak sources reached confidence %d", c->cls, inc->confidence);
        }
        rsre_store_incident_free(inc);
        for (size_t k = 0; k < f->nexec; k++) {
            assert_true(f->exec[k].cls <= RSRE_CLASS_NOTIFY);
        }
        fx_free(f);
    }
}

/* Rising 5xx ratio while above the threshold is critical at once; a steady spike is not; the
 * engine derives the slope from the source's samples (a caller-given slope wins). */
static void test_http_rising(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_STAGING);
    const char *fp = "http_error_rate_spike/service/prod/api";
    OBS(f, "service/prod/api", "probe:metrics", NULL, T0, {"http.error_ratio", 0.01});
    OBS(f, "service/prod/api", "probe:metrics", NULL, T0 + 30 * SEC, {"http.error_ratio", 0.20});
    rsre_store_incident_free(expect(f, fp, SEV_WARNING, CONF_MEDIUM));
    OBS(f, "service/prod/api", "probe:metrics", NULL, T0 + 60 * SEC, {"http.error_ratio", 0.20});
    rsre_store_incident_free(expect(f, fp, SEV_WARNING, CONF_MEDIUM));
    OBS(f, "service/prod/api", "probe:metrics", NULL, T0 + 90 * SEC, {"http.error_ratio", 0.30});
    rsre_store_incident_free(expect(f, fp, SEV_CRITICAL, CONF_MEDIUM));

    /* another scope: the caller's slope wins over the derived one */
    const char *fp2 = "http_error_rate_spike/service/prod/web";
    OBS(f, "service/prod/web", "probe:metrics", NULL, T0, {"http.error_ratio", 0.10});
    OBS(f, "service/prod/web", "probe:metrics", NULL, T0 + 30 * SEC, {"http.error_ratio", 0.30},
        {"http.error_ratio_slope", -0.1});
    rsre_store_incident_free(expect(f, fp2, SEV_WARNING, CONF_MEDIUM));
    fx_free(f);
}

/* All channels down is critical only while another incident is active. */
static void test_chatops_alone(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_PRODUCTION);
    const char *fp = "chatops_delivery_failure/channels";
    OBS(f, "channels", "notify:telegram", "403", T0, {"chat.channels_down", 2},
        {"chat.channels_total", 2});
    rsre_store_incident_free(expect(f, fp, SEV_WARNING, CONF_MEDIUM));
    OBS(f, "channels", "notify:telegram", "403", T0 + 30 * SEC, {"chat.channels_down", 2});
    /* repeated direct errors: high, and the alternate channel is tried at once, even in
     * production (the spec's auto contain for this class) */
    rsre_store_incident_free(expect(f, fp, SEV_WARNING, CONF_HIGH));
    assert_int_equal(count_exec(f, "failover_channel"), 1);
    OBS(f, "database/main", "probe:postgres", "refused", T0 + 40 * SEC, {"db.failing", 1});
    tick(f, T0 + MIN);
    rsre_store_incident_free(expect(f, fp, SEV_CRITICAL, CONF_HIGH));
    assert_int_equal(count_exec(f, "failover_channel"), 1); /* not again inside its cooldown */
    fx_free(f);
}

/* --- staleness ------------------------------------------------------------------------------- */

#define OBSF(f, scope, source, detail, fresh, now, ...)                                            \
    do {                                                                                           \
        const ov v_[] = {__VA_ARGS__};                                                             \
        assert_int_equal(                                                                          \
            observe_fresh(f, scope, source, detail, v_, sizeof(v_) / sizeof(v_[0]), fresh, now),   \
            0);                                                                                    \
    } while (0)

/* A heartbeat; `commit` 0 aborts the transaction instead. */
static int refresh(struct fx *f, const char *source, int64_t fresh_ms, int64_t now, int commit) {
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    int rc = rsre_incident_engine_observe_refresh(f->eng, txn, source, fresh_ms, now);
    end_txn(f, txn, rc == 0 && commit);
    return rc;
}

static void expect_summary(struct fx *f, const char *fp, const char *needle, int present) {
    rsre_store_incident *inc = incident(f, fp);
    assert_non_null(inc);
    if (!!strstr(inc->evidence_summary, needle) != present) {
        fail_msg("%s: summary \"%s\" %s \"%s\"", fp, inc->evidence_summary,
                 present ? "lacks" : "has", needle);
    }
    rsre_store_incident_free(inc);
}

#define PROBE_FRESH (3 * (30 * SEC + 5 * SEC)) /* what wire_probes gives a 30 s probe */

/* A probe that stops reporting: its values go stale after its bound. The incident stays open
 * (staleness is no recovery), drops to low confidence (nothing may act on it), says whose
 * silence in its summary, keeps its Evidence records, and nothing new is planned. The probe
 * reporting again counts from scratch: a new Evidence record, confidence from the new checks. */
static void test_stale_probe(void **state) {
    (void)state;
    struct fx *f = fx_new_fresh(RSRE_ENV_STAGING, 0);
    const char *err = "dial tcp 10.0.0.7:6379: connect: connection refused";
    for (int k = 0; k < 3; k++) {
        OBSF(f, "dependency/redis", "probe:redis", err, PROBE_FRESH, T0 + k * 30 * SEC,
             {"dep.failing", 1}, {"dep.consecutive_failures", 1 + k});
    }
    rsre_store_incident *inc = expect(f, DEP_FP, SEV_WARNING, CONF_HIGH);
    char id[64];
    snprintf(id, sizeof(id), "%s", inc->id);
    size_t refs = inc->n_raw_evidence_refs;
    rsre_store_incident_free(inc);
    size_t nexec = f->nexec;

    /* last report at T0+60s, bound 105 s: fresh at T0+165s, stale after */
    tick(f, T0 + 165 * SEC);
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_HIGH));
    expect_summary(f, DEP_FP, "stale", 0);
    tick(f, T0 + 166 * SEC);
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_LOW));
    expect_summary(f, DEP_FP, "evidence stale: no fresh observation from probe:redis", 1);
    /* ticks far past the exit window: still open, still low, nothing runs */
    for (int k = 1; k <= 30; k++) {
        tick(f, T0 + 166 * SEC + k * MIN);
    }
    inc = expect(f, DEP_FP, SEV_WARNING, CONF_LOW);
    assert_string_equal(inc->id, id);
    assert_int_equal(inc->n_raw_evidence_refs, refs); /* the record of what was seen stays */
    assert_true(has_str(inc->signal_sources, inc->n_signal_sources, "probe:redis"));
    assert_non_null(strstr(inc->evidence_summary, "last heard 31m"));
    rsre_store_incident_free(inc);
    assert_int_equal(f->nexec, nexec);

    /* The probe is back and still failing: one fresh check (medium), a new Evidence record */
    int64_t t = T0 + 40 * MIN;
    OBSF(f, "dependency/redis", "probe:redis", err, PROBE_FRESH, t, {"dep.failing", 1},
         {"dep.consecutive_failures", 1});
    inc = expect(f, DEP_FP, SEV_WARNING, CONF_MEDIUM);
    assert_int_equal(inc->n_raw_evidence_refs, refs + 1);
    assert_null(strstr(inc->evidence_summary, "stale"));
    rsre_store_incident_free(inc);
    OBSF(f, "dependency/redis", "probe:redis", err, PROBE_FRESH, t + 30 * SEC, {"dep.failing", 1},
         {"dep.consecutive_failures", 2});
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_HIGH));

    /* Recovery reported once, then silence: the exit window never completes on a stale 0. */
    OBSF(f, "dependency/redis", "probe:redis", NULL, PROBE_FRESH, t + MIN, {"dep.failing", 0},
         {"dep.consecutive_failures", 0});
    for (int k = 1; k <= 20; k++) {
        tick(f, t + MIN + k * MIN);
    }
    expect_state(f, DEP_FP, 0);
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_LOW));

    /* A probe that keeps reporting recovery resolves it after the exit window (5m). */
    t += 30 * MIN;
    for (int k = 0; k <= 12; k++) {
        OBSF(f, "dependency/redis", "probe:redis", NULL, PROBE_FRESH, t + k * 30 * SEC,
             {"dep.failing", 0}, {"dep.consecutive_failures", 0});
        tick(f, t + k * 30 * SEC + SEC);
    }
    expect_state(f, DEP_FP, 1);
    fx_free(f);
}

/* A change-only reporter (an observer) that re-asserts every minute never goes stale, however
 * long its state lasts; when it stops (its watch is down) its values go stale after the bound;
 * a heartbeat brings them back. Heartbeats are not new checks. */
static void test_stale_heartbeat(void **state) {
    (void)state;
    struct fx *f = fx_new_fresh(RSRE_ENV_STAGING, 0);
    const char *fp = "registry_pull_failure/workload/prod/api";
    OBSF(f, "workload/prod/api", "observer:pods", "ErrImagePull ghcr.io/x/api:1.2", 3 * MIN, T0,
         {"pull.failing_workloads", 1}, {"pull.failing_core_workloads", 0});
    rsre_store_incident *inc = incident(f, fp);
    assert_non_null(inc);
    int conf = (int)inc->confidence;
    size_t refs = inc->n_raw_evidence_refs;
    assert_true(conf != CONF_LOW);
    rsre_store_incident_free(inc);
    int64_t t = T0;
    for (int k = 1; k <= 120; k++) { /* two hours of heartbeats and ticks */
        t = T0 + k * MIN;
        assert_int_equal(refresh(f, "observer:pods", 3 * MIN, t - 500, 1), 0);
        tick(f, t);
    }
    inc = incident(f, fp);
    assert_int_equal((int)inc->confidence, conf); /* no staleness, and no extra checks */
    assert_int_equal(inc->n_raw_evidence_refs, refs);
    assert_null(strstr(inc->evidence_summary, "stale"));
    assert_int_not_equal(inc->lifecycle, LC_RESOLVED);
    rsre_store_incident_free(inc);

    /* The watch is down: no more heartbeats. A heartbeat in an aborted transaction counts for
     * nothing either. Stale once the last bound passed. */
    tick(f, t + 2 * MIN);
    assert_int_equal(refresh(f, "observer:pods", 3 * MIN, t + 2 * MIN + SEC, 0), 0);
    tick(f, t + 3 * MIN - 500);
    inc = incident(f, fp);
    assert_int_equal((int)inc->confidence, conf);
    rsre_store_incident_free(inc);
    tick(f, t + 3 * MIN);
    inc = incident(f, fp);
    assert_int_equal((int)inc->confidence, CONF_LOW);
    assert_non_null(strstr(inc->evidence_summary, "observer:pods"));
    rsre_store_incident_free(inc);

    /* The watch is back: the heartbeat re-asserts the value; the evidence is recorded anew. */
    assert_int_equal(refresh(f, "observer:pods", 3 * MIN, t + 10 * MIN, 1), 0);
    inc = incident(f, fp);
    assert_int_equal((int)inc->confidence, conf);
    assert_int_equal(inc->n_raw_evidence_refs, refs + 1);
    assert_null(strstr(inc->evidence_summary, "stale"));
    rsre_store_incident_free(inc);

    /* A source the engine does not know, or a scope it never reported at: nothing changes. */
    assert_int_equal(refresh(f, "observer:helm", 0, t + 11 * MIN, 1), 0);
    /* Bad arguments. */
    assert_int_equal(refresh(f, "observer pods", 0, t, 1), RSRE_EINVALID);
    assert_int_equal(refresh(f, "", 0, t, 1), RSRE_EINVALID);
    assert_int_equal(refresh(f, "observer:pods", -1, t, 1), RSRE_EINVALID);
    assert_int_equal(refresh(f, "observer:pods", 999, t, 1), RSRE_EINVALID);
    assert_int_equal(refresh(f, "observer:pods", 8 * 24 * 60 * MIN, t, 1), RSRE_EINVALID);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_observe_refresh(NULL, txn, "a", 0, t), -EINVAL);
    assert_int_equal(rsre_incident_engine_observe_refresh(f->eng, NULL, "a", 0, t), -EINVAL);
    assert_int_equal(rsre_incident_engine_observe_refresh(f->eng, txn, NULL, 0, t), -EINVAL);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);
    const ov v[] = {{"pull.failing_workloads", 1}};
    assert_int_equal(observe_fresh(f, "workload/prod/api", "observer:pods", NULL, v, 1, -5, t),
                     RSRE_EINVALID);
    assert_int_equal(observe_fresh(f, "workload/prod/api", "observer:pods", NULL, v, 1, 999, t),
                     RSRE_EINVALID);
    assert_int_equal(
        observe_fresh(f, "workload/prod/api", "observer:pods", NULL, v, 1, 8 * 24 * 60 * MIN, t),
        RSRE_EINVALID);
    fx_free(f);
}

/* A stale source neither supports nor refutes: a fresh healthy source alone decides the exit,
 * and a stale failing source does not hold the incident open against it. A stale healthy
 * source next to a fresh failing one does not lower the scope's value either. */
static void test_stale_mixed_sources(void **state) {
    (void)state;
    struct fx *f = fx_new_fresh(RSRE_ENV_STAGING, 0);
    OBSF(f, "dependency/redis", "observer:pods", "redis-0 CrashLoopBackOff", 3 * MIN, T0,
         {"dep.failing", 1});
    OBSF(f, "dependency/redis", "probe:redis", "refused", PROBE_FRESH, T0 + SEC, {"dep.failing", 1},
         {"dep.consecutive_failures", 3});
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_HIGH));
    /* the observer goes silent (its values stay "failing" but stale); the probe recovers */
    int64_t t = T0 + 5 * MIN;
    for (int k = 0; k <= 12; k++) {
        OBSF(f, "dependency/redis", "probe:redis", NULL, PROBE_FRESH, t + k * 30 * SEC,
             {"dep.failing", 0}, {"dep.consecutive_failures", 0});
        tick(f, t + k * 30 * SEC + SEC);
    }
    expect_state(f, DEP_FP, 1);

    /* fresh failing + stale healthy: failing, on the fresh source's evidence */
    t += 30 * MIN;
    OBSF(f, "dependency/redis", "probe:redis", NULL, PROBE_FRESH, t, {"dep.failing", 0});
    OBSF(f, "dependency/redis", "observer:pods", "redis-0 CrashLoopBackOff", 3 * MIN, t + 10 * MIN,
         {"dep.failing", 1});
    rsre_store_incident *inc = incident(f, DEP_FP);
    assert_int_not_equal(inc->lifecycle, LC_RESOLVED);
    assert_int_not_equal((int)inc->confidence, CONF_LOW);
    rsre_store_incident_free(inc);
    fx_free(f);
}

/* After a restart the engine has the open incident from the store and no observed values; when
 * no reporter comes back within the bound, the incident says so and drops to low confidence. */
static void test_stale_after_restart(void **state) {
    (void)state;
    struct fx *f = fx_new_fresh(RSRE_ENV_STAGING, 0);
    for (int k = 0; k < 2; k++) {
        OBSF(f, "dependency/redis", "probe:redis", "refused", PROBE_FRESH, T0 + k * 30 * SEC,
             {"dep.failing", 1}, {"dep.consecutive_failures", 1 + k});
    }
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_HIGH));
    rsre_incident_engine_destroy(f->eng);
    engine_start(f);
    tick(f, T0 + 2 * MIN);
    tick(f, T0 + 5 * MIN);
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_HIGH)); /* within the bound */
    tick(f, T0 + 5 * MIN + 1);
    rsre_store_incident_free(expect(f, DEP_FP, SEV_WARNING, CONF_LOW));
    expect_summary(f, DEP_FP, "since the aggregator started 3m", 1);
    tick(f, T0 + 30 * MIN);
    expect_state(f, DEP_FP, 0);
    fx_free(f);
}

/* --- randomized: weak evidence never acts ---------------------------------------------------- */

static uint64_t rng_state;
static unsigned long stale_checked; /* incidents the randomized test saw with stale values */

static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

struct rscope {
    const char *scope;
    ov bad[3], good[3];
    size_t n;
};

/* Allowlisted dependencies (the robot may restart them alone in demo/staging), the channels
 * (fail-over is auto everywhere) and the cluster (finished-pod cleanup) are where something
 * could run without a human. */
static const struct rscope RSCOPES[] = {
    {"dependency/headlamp",
     {{"dep.failing", 1}, {"dep.consecutive_failures", 3}},
     {{"dep.failing", 0}, {"dep.consecutive_failures", 0}},
     2},
    {"dependency/trivy-db-warmup",
     {{"dep.failing", 1}, {"dep.core_failing", 1}},
     {{"dep.failing", 0}, {"dep.core_failing", 0}},
     2},
    {"dependency/redis",
     {{"dep.failing", 1}, {"dep.cascading", 4}},
     {{"dep.failing", 0}, {"dep.cascading", 0}},
     2},
    {"channels",
     {{"chat.channels_down", 2}, {"chat.channels_total", 2}},
     {{"chat.channels_down", 0}, {"chat.channels_total", 2}},
     2},
    {"cluster",
     {{"jobs.finished_pods", 900}, {"jobs.apiserver_churn", 5}},
     {{"jobs.finished_pods", 3}, {"jobs.apiserver_churn", 0}},
     2},
    {"workload/prod/api",
     {{"pull.failing_workloads", 2}, {"pull.failing_core_workloads", 1}},
     {{"pull.failing_workloads", 0}, {"pull.failing_core_workloads", 0}},
     2},
    {"release/prod/api",
     {{"release.drifted", 1}, {"release.rollout_blocked", 1}, {"release.unhealthy_workloads", 3}},
     {{"release.drifted", 0}, {"release.rollout_blocked", 0}, {"release.unhealthy_workloads", 0}},
     3},
    {"identity/ldap", {{"ldap.failing", 1}}, {{"ldap.failing", 0}}, 1},
    {"service/prod/api", {{"http.error_ratio", 0.4}}, {{"http.error_ratio", 0.0}}, 1},
    {"database/main", {{"db.failing", 1}}, {{"db.failing", 0}}, 1},
    {"route/app.example/login",
     {{"ingress.failing_routes", 1}, {"tls.failures", 1}, {"dns.mismatches", 1}},
     {{"ingress.failing_routes", 0}, {"tls.failures", 0}, {"dns.mismatches", 0}},
     3},
};
#define NRSCOPES (sizeof(RSCOPES) / sizeof(RSCOPES[0]))

static const char *const STRONG_SRC[] = {"probe:a", "observer:b", "notify:c"};
static const char *const WEAK_SRC[] = {"webhook:x", "probe:", "PROBE:a",    "observer",
                                       "cli",       "notify", "observer-b", "x:probe:a"};

static int incident_conf(struct fx *f, const char *id) {
    rsre_store_txn *txn;
    rsre_store_incident *inc = NULL;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_incident_get(txn, id, &inc), 0);
    rsre_store_txn_abort(txn);
    int c = (int)inc->confidence;
    rsre_store_incident_free(inc);
    return c;
}

/* The scope of RSCOPES an incident fingerprint ("<class>/<scope>") is about, or -1. */
static int rscope_of(const char *fp) {
    const char *slash = strchr(fp, '/');
    for (size_t i = 0; slash && i < NRSCOPES; i++) {
        if (strcmp(slash + 1, RSCOPES[i].scope) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* A tick, checking staleness: an incident whose scope's sources (the ones the test knows the
 * engine holds) were all silent past the default bound (180 s) has low confidence after the
 * tick, and one open before the tick is still open (stale values never meet exit criteria). */
static void stale_tick(struct fx *f, int64_t t, uint64_t seed, int run, const size_t *nused,
                       int64_t (*seen)[8]) {
    struct inc_list before;
    incidents(f, &before);
    tick(f, t);
    struct inc_list l;
    incidents(f, &l);
    for (size_t i = 0; i < l.n; i++) {
        int si = rscope_of(l.v[i]->fingerprint);
        if (si < 0 || nused[si] == 0) {
            continue;
        }
        int stale = 1;
        for (size_t j = 0; j < nused[si]; j++) {
            stale &= t - seen[si][j] > 180 * SEC;
        }
        if (!stale) {
            continue;
        }
        int was_open = 0;
        for (size_t k = 0; k < before.n; k++) {
            was_open |=
                strcmp(before.v[k]->id, l.v[i]->id) == 0 && before.v[k]->lifecycle != LC_RESOLVED;
        }
        if (was_open && l.v[i]->lifecycle == LC_RESOLVED) {
            fail_msg("seed %llu run %d: %s resolved on stale values only", (unsigned long long)seed,
                     run, l.v[i]->fingerprint);
        }
        if (l.v[i]->lifecycle != LC_RESOLVED && (int)l.v[i]->confidence != CONF_LOW) {
            fail_msg("seed %llu run %d: %s at confidence %d on stale values (%s)",
                     (unsigned long long)seed, run, l.v[i]->fingerprint, l.v[i]->confidence,
                     l.v[i]->evidence_summary);
        }
        stale_checked++;
    }
    inc_list_free(&l);
    inc_list_free(&before);
}

static void test_random_weak_never_acts(void **state) {
    (void)state;
    const char *seed_env = getenv("RSRE_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : 20261127;
    unsigned long runs = 0, steps = 0, contained = 0, weak_runs = 0, refused = 0;
    for (int run = 0; run < 60; run++) {
        rng_state = seed + (uint64_t)run * 7919;
        enum rsre_env env = (enum rsre_env)(run % RSRE_ENV_COUNT);
        int weak_only = run % 2 == 1; /* odd runs: nothing but weak sources */
        weak_runs += weak_only;
        struct fx *f = fx_new_fresh(env, 0);
        int64_t t = T0;
        const char *used[NRSCOPES][8];
        int64_t seen[NRSCOPES][8];
        size_t nused[NRSCOPES] = {0};
        for (int k = 0; k < 150; k++) {
            int rc;
            const struct rscope *sc = &RSCOPES[rnd(NRSCOPES)];
            int strong = !weak_only && rnd(3) == 0;
            const char *src = strong ? STRONG_SRC[rnd(3)] : WEAK_SRC[rnd(8)];
            int bad = rnd(4) != 0;
            size_t n = 1 + rnd((uint32_t)sc->n);
            t += (int64_t)(1 + rnd(90)) * SEC;
            size_t before = f->nexec;
            rc = observe_n(f, sc->scope, src, bad ? "failing" : NULL, bad ? sc->bad : sc->good, n,
                           t);
            /* at most 8 sources per scope: the 9th is refused (none idles for an hour here) */
            /* at most 8 sources per scope: a 9th replaces one silent for an hour, else it is
             * refused */
            size_t si = (size_t)(sc - RSCOPES), j = 0, old = 0;
            while (j < nused[si] && strcmp(used[si][j], src) != 0) {
                j++;
            }
            for (size_t q = 1; q < nused[si]; q++) {
                old = seen[si][q] < seen[si][old] ? q : old;
            }
            int full = j == nused[si] && nused[si] == 8;
            if (full && t - seen[si][old] < 60 * MIN) {
                if (rc != RSRE_ELIMIT) {
                    fail_msg("seed %llu run %d step %d: 9th source: rc %d",
                             (unsigned long long)seed, run, k, rc);
                }
                refused++;
            } else if (rc) {
                fail_msg("seed %llu run %d step %d: observe rc %d", (unsigned long long)seed, run,
                         k, rc);
            } else {
                j = full ? old : j;
                nused[si] += j == nused[si];
                used[si][j] = src;
                seen[si][j] = t;
            }
            if (rnd(4) == 0) {
                t += SEC;
                stale_tick(f, t, seed, run, nused, seen);
            }
            if (rnd(60) == 0) { /* restart on the same store */
                rsre_incident_engine_destroy(f->eng);
                engine_start(f);
                memset(nused, 0, sizeof(nused)); /* observed values live in memory only */
            }
            for (size_t i = before; i < f->nexec; i++) {
                const struct exec_rec *x = &f->exec[i];
                if (x->cls >= RSRE_CLASS_RECOVER || x->approval[0]) {
                    fail_msg("seed %llu run %d: %s ran (class %d) with nobody approving",
                             (unsigned long long)seed, run, x->action, x->cls);
                }
                if (x->cls == RSRE_CLASS_CONTAIN) {
                    contained++;
                    if (weak_only) {
                        fail_msg("seed %llu run %d: %s on %s ran on weak evidence only",
                                 (unsigned long long)seed, run, x->action, x->target);
                    }
                    if (incident_conf(f, x->incident) != CONF_HIGH) {
                        fail_msg("seed %llu run %d: %s ran below high confidence",
                                 (unsigned long long)seed, run, x->action);
                    }
                }
            }
            steps++;
        }
        /* weak-only runs: no incident above low confidence */
        if (weak_only) {
            struct inc_list l;
            incidents(f, &l);
            for (size_t i = 0; i < l.n; i++) {
                if ((int)l.v[i]->confidence != CONF_LOW) {
                    fail_msg("seed %llu run %d: %s at confidence %d from weak sources",
                             (unsigned long long)seed, run, l.v[i]->fingerprint,
                             l.v[i]->confidence);
                }
            }
            inc_list_free(&l);
        }
        fx_free(f);
        runs++;
    }
    /* the strong runs did reach the point where something ran alone (the test can see it),
     * and incidents on stale values were there to check */
    assert_true(contained > 0);
    assert_true(stale_checked > 0);
    printf("  random observations: seed %llu, %lu runs (%lu weak-only), %lu steps, %lu auto "
           "contain actions on strong evidence, %lu observations refused (9th source), %lu "
           "incident checks on stale values\n",
           (unsigned long long)seed, runs, weak_runs, steps, contained, refused, stale_checked);
}

/* --- rules reload ------------------------------------------------------------------------------
 */

static struct rsre_ruleset *ruleset(const char *yaml) {
    struct rsre_ruleset *rs = NULL;
    struct rsre_rule_error err;
    assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
    if (yaml) {
        assert_int_equal(rsre_ruleset_add_yaml(rs, "test", yaml, strlen(yaml), &err), 0);
    }
    return rs;
}

static const char CERT_RULE[] = "id: cert-expiry\n"
                                "name: certificate expires within a week\n"
                                "enabled: true\n"
                                "domain: network_ingress\n"
                                "incident_type: ingress_configuration_drift\n"
                                "environment_scope: [demo, staging, production]\n"
                                "threshold_expression: \"tls.days_to_expiry < 7\"\n"
                                "severity: warning\n"
                                "owner: platform-team\n"
                                "version: 3\n";

/* A rule change takes effect at the next evaluation; the previous set can be destroyed at once
 * (ASan would see a dangling pointer); a set of another taxonomy and a call inside a
 * transaction are refused and change nothing. */
static void test_set_rules(void **state) {
    (void)state;
    struct rsre_ruleset *first = ruleset(NULL);
    struct fx *f = fx_new(RSRE_ENV_STAGING);
    rsre_incident_engine_destroy(f->eng);
    f->cfg.rules = first;
    engine_start(f);
    const char *fp = "ingress_configuration_drift/route/app.example";
    OBS(f, "route/app.example", "probe:tls", "certificate expires 2023-11-19", T0,
        {"tls.days_to_expiry", 5}, {"ingress.failing_routes", 0}, {"tls.failures", 0},
        {"dns.mismatches", 0});
    tick(f, T0 + MIN);
    assert_int_equal(count_fp(f, fp), 0); /* the built-in rule needs failing routes */

    struct rsre_ruleset *second = ruleset(CERT_RULE);
    assert_int_equal(rsre_incident_engine_set_rules(f->eng, second), 0);
    rsre_ruleset_destroy(first);
    tick(f, T0 + 2 * MIN);
    rsre_store_incident *inc = incident(f, fp);
    assert_non_null(inc);
    assert_string_equal(inc->rule_id, "cert-expiry");
    assert_int_equal(inc->rule_version, 3);
    assert_int_equal(inc->severity, SEV_WARNING);
    assert_int_equal(inc->confidence, CONF_LOW); /* an expiry date is a weak signal */
    rsre_store_incident_free(inc);

    /* refused: another taxonomy's rules; inside a transaction */
    char path[512];
    snprintf(path, sizeof(path), "%s/aggregator/engine/taxonomy.yaml", RSRE_SOURCE_DIR);
    FILE *fp_y = fopen(path, "rb");
    assert_non_null(fp_y);
    static char ybuf[1 << 17];
    size_t ylen = fread(ybuf, 1, sizeof(ybuf), fp_y);
    fclose(fp_y);
    struct rsre_taxonomy *t2 = NULL;
    struct rsre_yerr terr;
    assert_int_equal(rsre_taxonomy_load(ybuf, ylen, &t2, &terr), 0);
    struct rsre_ruleset *other = NULL;
    assert_int_equal(rsre_ruleset_create(t2, &other), 0);
    assert_int_equal(rsre_incident_engine_set_rules(f->eng, other), RSRE_EINVALID);
    rsre_ruleset_destroy(other);
    rsre_taxonomy_destroy(t2);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    const ov v[] = {{"tls.days_to_expiry", 4}};
    struct rsre_observation o = {"route/app.example", "probe:tls", NULL, v, 1, 0};
    assert_int_equal(rsre_incident_engine_observe(f->eng, txn, &o, T0 + 3 * MIN), 0);
    assert_int_equal(rsre_incident_engine_set_rules(f->eng, NULL), -EBUSY);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);
    assert_int_equal(rsre_incident_engine_set_rules(NULL, NULL), -EINVAL);

    /* back to the built-ins: the threshold no longer fires, the exit criteria hold -> resolved
     * after the exit window */
    assert_int_equal(rsre_incident_engine_set_rules(f->eng, NULL), 0);
    rsre_ruleset_destroy(second);
    tick(f, T0 + 4 * MIN);
    expect_state(f, fp, 0);
    tick(f, T0 + 9 * MIN + SEC);
    expect_state(f, fp, 1);
    fx_free(f);
}

/* --- transactions and restarts ------------------------------------------------------------ */

/* An aborted observation leaves nothing behind: the next one is the first check again. */
static void test_abort(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    const ov v[] = {{"db.failing", 1}};
    struct rsre_observation o = {"database/main", "probe:postgres", "refused", v, 1, 0};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_incident_engine_observe(f->eng, txn, &o, T0), 0);
    rsre_store_txn_abort(txn);
    rsre_incident_engine_aborted(f->eng);
    assert_int_equal(count_fp(f, "database_connectivity_degraded/database/main"), 0);
    OBS(f, "database/main", "probe:postgres", "refused", T0 + 30 * SEC, {"db.failing", 1});
    /* one check (medium), not two */
    rsre_store_incident_free(
        expect(f, "database_connectivity_degraded/database/main", SEV_CRITICAL, CONF_MEDIUM));
    fx_free(f);
}

/* A restarted engine picks the scope incidents up from the store: the same incident continues,
 * "sustained" LDAP failure counts from when it opened, and it resolves normally. */
static void test_restart(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_STAGING);
    const char *fp = "identity_provider_unreachable/identity/ldap";
    OBS(f, "identity/ldap", "probe:ldap", "Can't contact LDAP server", T0, {"ldap.failing", 1});
    rsre_store_incident *inc = expect(f, fp, SEV_WARNING, CONF_MEDIUM);
    char id[64];
    snprintf(id, sizeof(id), "%s", inc->id);
    rsre_store_incident_free(inc);

    rsre_incident_engine_destroy(f->eng);
    engine_start(f);
    /* observed values live in memory: the first check after a restart is one check */
    OBS(f, "identity/ldap", "probe:ldap", "Can't contact LDAP server", T0 + 3 * MIN,
        {"ldap.failing", 1});
    inc = expect(f, fp, SEV_WARNING, CONF_MEDIUM);
    assert_string_equal(inc->id, id);
    assert_non_null(strstr(inc->evidence_summary, "failing (for 3m)"));
    rsre_store_incident_free(inc);
    OBS(f, "identity/ldap", "probe:ldap", "Can't contact LDAP server", T0 + 4 * MIN,
        {"ldap.failing", 1});
    rsre_store_incident_free(expect(f, fp, SEV_WARNING, CONF_HIGH));
    tick(f, T0 + 5 * MIN + 30 * SEC); /* > 5m since it opened */
    rsre_store_incident_free(expect(f, fp, SEV_CRITICAL, CONF_HIGH));
    assert_int_equal(count_fp(f, fp), 1);
    OBS(f, "identity/ldap", "probe:ldap", NULL, T0 + 6 * MIN, {"ldap.failing", 0});
    tick(f, T0 + 11 * MIN + SEC);
    expect_state(f, fp, 1);
    fx_free(f);
}

/* Each source's detail is kept and shown with its own evidence; long text is truncated,
 * control characters flattened. */
static void test_detail(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    char longd[2000];
    memset(longd, 'e', sizeof(longd) - 1);
    longd[sizeof(longd) - 1] = '\0';
    memcpy(longd, "line1\nline2\t", 12);
    OBS(f, "registry/ghcr.io", "probe:ghcr", longd, T0, {"pull.failing_workloads", 1});
    OBS(f, "registry/ghcr.io", "observer:pods", "manifest unknown", T0 + SEC,
        {"pull.failing_workloads", 3});
    rsre_store_incident *inc =
        expect(f, "registry_pull_failure/registry/ghcr.io", SEV_WARNING, CONF_HIGH);
    assert_string_equal(inc->resource_scope[0]->kind, "registry");
    assert_string_equal(inc->resource_scope[0]->name, "ghcr.io");
    assert_true(evidence_with(f, inc->id, "line1 line2 eee", NULL) == 1);
    assert_true(evidence_with(f, inc->id, "manifest unknown", NULL) == 1);
    char tail[600];
    memset(tail, 'e', 520);
    tail[520] = '\0';
    assert_int_equal(evidence_with(f, inc->id, tail, NULL), 0); /* cut at 512 bytes */
    assert_non_null(strstr(inc->evidence_summary, "[observer:pods: manifest unknown]"));
    assert_int_equal(inc->n_raw_evidence_refs, 2);
    rsre_store_incident_free(inc);

    /* invalid UTF-8 becomes '?', valid characters stay whole */
    OBS(f, "registry/quay.io", "probe:quay", "bad \xff\xc0\xaf byte, caf\xc3\xa9 \xed\xa0\x80 ok",
        T0 + 2 * SEC, {"pull.failing_workloads", 1});
    inc = expect(f, "registry_pull_failure/registry/quay.io", SEV_WARNING, CONF_MEDIUM);
    assert_true(evidence_with(f, inc->id, "bad ??? byte, caf\xc3\xa9 ??? ok", NULL) == 1);
    rsre_store_incident_free(inc);
    /* a multi-byte character across the 512-byte limit is dropped whole */
    char edge[600];
    memset(edge, 'a', 511);
    memcpy(edge + 511, "\xc3\xa9tail", 7);
    OBS(f, "registry/edge", "probe:edge", edge, T0 + 3 * SEC, {"pull.failing_workloads", 1});
    inc = expect(f, "registry_pull_failure/registry/edge", SEV_WARNING, CONF_MEDIUM);
    char want[600];
    snprintf(want, sizeof(want), "%.511s\"", edge); /* ends right after the 511 'a's */
    assert_true(evidence_with(f, inc->id, want, NULL) == 1);
    rsre_store_incident_free(inc);
    fx_free(f);
}

/* An observer that checks routes but not TLS or DNS: the class still resolves on what is
 * observed (signals nobody reports at the scope read as healthy in the exit expression). */
static void test_partial_signals_resolve(void **state) {
    (void)state;
    struct fx *f = fx_new(RSRE_ENV_DEMO);
    const char *fp = "ingress_configuration_drift/ingress/prod/web";
    OBS(f, "ingress/prod/web", "observer:ingress", "backend service web-svc missing", T0,
        {"ingress.failing_routes", 1});
    rsre_store_incident_free(expect(f, fp, SEV_WARNING, CONF_MEDIUM));
    OBS(f, "ingress/prod/web", "observer:ingress", NULL, T0 + MIN, {"ingress.failing_routes", 0});
    tick(f, T0 + 5 * MIN + 30 * SEC);
    expect_state(f, fp, 0);
    tick(f, T0 + 6 * MIN + SEC);
    expect_state(f, fp, 1);
    fx_free(f);
}

int main(void) {
    rsre_log_threshold = RSRE_LOG_WARN;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dependency_outage),
        cmocka_unit_test(test_bad_observations),
        cmocka_unit_test(test_every_class),
        cmocka_unit_test(test_weak_sources),
        cmocka_unit_test(test_http_rising),
        cmocka_unit_test(test_chatops_alone),
        cmocka_unit_test(test_stale_probe),
        cmocka_unit_test(test_stale_heartbeat),
        cmocka_unit_test(test_stale_mixed_sources),
        cmocka_unit_test(test_stale_after_restart),
        cmocka_unit_test(test_random_weak_never_acts),
        cmocka_unit_test(test_set_rules),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_detail),
        cmocka_unit_test(test_partial_signals_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
