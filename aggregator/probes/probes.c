/* Probe kinds table, one run, per-probe state, the engine observation, and the scheduler on
 * the libuv loop (probes.h). */
#include "probes/probes_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The kinds: run function, and the family of catalogue signals its outcome feeds. */
enum family { FAM_DEP, FAM_LDAP, FAM_DB, FAM_ROUTE, FAM_TLS, FAM_DNS, FAM_RATIO };

static const struct kind_row {
    enum rsre_probe_kind kind;
    rsre__probe_run_fn run;
    enum family family;
    const char *scope_prefix;
} KINDS[RSRE_PROBE_NKINDS] = {
    {RSRE_PROBE_REDIS, rsre__probe_redis, FAM_DEP, "dependency"},
    {RSRE_PROBE_NATS, rsre__probe_nats, FAM_DEP, "dependency"},
    {RSRE_PROBE_MINIO, rsre__probe_minio, FAM_DEP, "dependency"},
    {RSRE_PROBE_REGISTRY, rsre__probe_registry, FAM_DEP, "dependency"},
    {RSRE_PROBE_LDAP, rsre__probe_ldap, FAM_LDAP, "dependency"},
    {RSRE_PROBE_POSTGRES, rsre__probe_postgres, FAM_DB, "dependency"},
    {RSRE_PROBE_HTTP, rsre__probe_http, FAM_ROUTE, "route"},
    {RSRE_PROBE_TLS, rsre__probe_tls, FAM_TLS, "tls"},
    {RSRE_PROBE_DNS, rsre__probe_dns, FAM_DNS, "dns"},
    {RSRE_PROBE_HTTP5XX, rsre__probe_http5xx, FAM_RATIO, "http"},
};

void rsre__probe_fail(struct rsre_probe_result *res, const char *code, const char *fmt, ...) {
    res->ok = 0;
    if (code != res->code) {
        snprintf(res->code, sizeof res->code, "%s", code);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

void rsre__probe_append(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strnlen(buf, cap);
    if (n + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rsre_probe_run(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    if (!def || !res || (unsigned)def->kind >= RSRE_PROBE_NKINDS) {
        return -EINVAL;
    }
    memset(res, 0, sizeof *res);
    int64_t t0 = mono_ms();
    KINDS[def->kind].run(def, res);
    res->duration_ms = mono_ms() - t0;
    if (!res->ok && !res->error[0]) {
        rsre__probe_fail(res, res->code[0] ? res->code : "EIO", "%s probe failed",
                         rsre_probe_kind_name(def->kind));
    }
    if (res->ok) {
        res->code[0] = '\0';
        res->error[0] = '\0';
    }
    return 0;
}

void rsre_probe_result_clear(struct rsre_probe_result *res) {
    if (res) {
        free(res->series);
        res->series = NULL;
        res->nseries = 0;
    }
}

/* ---- state -------------------------------------------------------------------------- */

int rsre_probe_state_update(struct rsre_probe_state *st, const struct rsre_probe_def *def,
                            struct rsre_probe_result *res, int64_t now_ms,
                            struct rsre_probe_status *out) {
    if (!st || !def || !res || !out) {
        return -EINVAL;
    }
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (res->ok && def->kind == RSRE_PROBE_HTTP5XX) {
        if (!st->ratio) {
            rc = rsre_err_ratio_create(def->window_ms, 100000, &st->ratio);
        }
        if (rc == 0) {
            rc = rsre_err_ratio_add(st->ratio, now_ms, res->series, res->nseries, &out->ratio);
        }
        if (rc == 0) {
            out->has_ratio = 1;
        } else {
            rsre__probe_fail(res, "RATIO", "error ratio: %s", rsre_strerror(rc));
        }
    }
    int was = st->failing;
    if (res->ok) {
        st->consecutive_failures = 0;
        st->failing = 0;
        st->failing_since_ms = 0;
    } else {
        if (st->consecutive_failures < 1000000) {
            st->consecutive_failures++;
        }
        if (st->consecutive_failures >= def->threshold && !st->failing) {
            st->failing = 1;
            st->failing_since_ms = now_ms;
        }
    }
    out->def = def;
    out->result = res;
    out->consecutive_failures = st->consecutive_failures;
    out->failing = st->failing;
    out->changed = was != st->failing;
    out->failing_since_ms = st->failing_since_ms;
    out->at_ms = now_ms;
    return rc;
}

void rsre_probe_state_clear(struct rsre_probe_state *st) {
    if (st) {
        rsre_err_ratio_destroy(st->ratio);
        memset(st, 0, sizeof *st);
    }
}

/* ---- observation -------------------------------------------------------------------- */

static void put(struct rsre_probe_obs *o, const char *sig, double val) {
    if (o->nvalues < RSRE_PROBE_OBS_VALUES) {
        o->values[o->nvalues].signal = sig;
        o->values[o->nvalues].value = val;
        o->nvalues++;
    }
}

static void obs_init(struct rsre_probe_obs *o, const struct rsre_probe_status *st,
                     const char *prefix) {
    memset(o, 0, sizeof *o);
    snprintf(o->scope, sizeof o->scope, "%s/%s", prefix, st->def->name);
    snprintf(o->source, sizeof o->source, "probe:%s", st->def->name);
    o->detail = st->result->ok ? "ok" : st->result->error;
}

static double clamp(double v, double lo, double hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

int rsre_probe_observations(const struct rsre_probe_status *st,
                            struct rsre_probe_obs out[RSRE_PROBE_OBS_MAX]) {
    if (!st || !st->def || !st->result || !out || (unsigned)st->def->kind >= RSRE_PROBE_NKINDS) {
        return -EINVAL;
    }
    const struct rsre_probe_def *d = st->def;
    const struct rsre_probe_result *r = st->result;
    const struct kind_row *k = &KINDS[d->kind];
    struct rsre_probe_obs *o = &out[0];
    double f = st->failing ? 1 : 0;
    obs_init(o, st, k->scope_prefix);
    switch (k->family) {
    case FAM_DEP: {
        /* A registry that answers /v2/ but lacks (or refuses) a wanted image is up: that is a
         * pull failure for the workloads wanting the image, not a dependency outage. */
        int images = r->image_unknown + r->image_unauthorized;
        double dep = images > 0 ? 0 : f;
        put(o, "dep.failing", dep);
        put(o, "dep.core_failing", d->core ? dep : 0);
        put(o, "dep.consecutive_failures", images > 0 ? 0 : st->consecutive_failures);
        if (d->kind == RSRE_PROBE_REGISTRY && (r->ok || images > 0)) {
            struct rsre_probe_obs *p = &out[1];
            obs_init(p, st, "registry");
            double pull = st->failing ? images : 0;
            put(p, "pull.failing_workloads", pull);
            put(p, "pull.failing_core_workloads", d->core ? pull : 0);
            return 2;
        }
        return 1;
    }
    case FAM_LDAP:
        put(o, "ldap.failing", f); /* the engine derives ldap.failing_held */
        return 1;
    case FAM_DB:
        put(o, "db.failing", f);
        return 1;
    case FAM_ROUTE:
    case FAM_TLS:
    case FAM_DNS: {
        /* All three of the class's exit signals for this scope, so its exit expression holds
         * once this probe is healthy. A failing TLS or DNS probe also counts as a failing
         * route: clients of that host fail (or go elsewhere), and the class opens on failing
         * routes (its entry rule is ingress.failing_routes >= 1); tls.failures then makes it
         * critical. */
        int route = st->failing;
        put(o, "ingress.failing_routes", route);
        put(o, "ingress.failing_core_routes", d->core ? route : 0);
        put(o, "tls.failures", k->family == FAM_TLS && st->failing && r->tls_failed ? 1 : 0);
        put(o, "dns.mismatches", k->family == FAM_DNS && st->failing ? r->dns_mismatches : 0);
        if (k->family == FAM_TLS && r->has_days) {
            put(o, "tls.days_to_expiry", clamp(r->days_to_expiry, -36500, 36500));
        }
        return 1;
    }
    case FAM_RATIO:
        if (!st->has_ratio) {
            return 0; /* a failed scrape says nothing about the ratio */
        }
        /* The engine derives http.error_ratio_held; the slope is clamped to the catalogue's
         * plausible range [-1, 1] per minute. */
        put(o, "http.error_ratio", clamp(st->ratio.ratio, 0, 1));
        put(o, "http.error_ratio_slope", clamp(st->ratio.slope_per_min, -1, 1));
        return 1;
    }
    return -EINVAL;
}

/* ---- scheduler ---------------------------------------------------------------------- */

struct probe_slot {
    struct rsre_probes *p;
    const struct rsre_probe_def *def;
    uv_timer_t timer;
    uv_work_t work;
    struct rsre_probe_result res;
    struct rsre_probe_state state;
    int in_flight;
};

struct rsre_probes {
    uv_loop_t *loop;
    struct rsre_probe_set *set;
    struct probe_slot *slots;
    size_t n;
    int64_t (*now_ms)(void *);
    void *clock_arg;
    rsre_probes_cb cb;
    void *arg;
    int closing;
    size_t pending_close; /* timers not yet closed + works in flight */
    void (*closed)(void *);
    void *closed_arg;
};

static void maybe_finish(struct rsre_probes *p) {
    if (!p->closing || p->pending_close > 0) {
        return;
    }
    void (*closed)(void *) = p->closed;
    void *arg = p->closed_arg;
    for (size_t i = 0; i < p->n; i++) {
        rsre_probe_state_clear(&p->slots[i].state);
        rsre_probe_result_clear(&p->slots[i].res);
    }
    free(p->slots);
    rsre_probe_set_destroy(p->set);
    free(p);
    if (closed) {
        closed(arg);
    }
}

static void work_cb(uv_work_t *w) {
    struct probe_slot *s = w->data;
    rsre_probe_run(s->def, &s->res);
}

static void after_work_cb(uv_work_t *w, int status) {
    struct probe_slot *s = w->data;
    struct rsre_probes *p = s->p;
    s->in_flight = 0;
    if (p->closing) {
        rsre_probe_result_clear(&s->res);
        p->pending_close--;
        maybe_finish(p);
        return;
    }
    if (status == UV_ECANCELED) {
        rsre_probe_result_clear(&s->res);
        return;
    }
    int64_t now = p->now_ms ? p->now_ms(p->clock_arg) : (int64_t)uv_now(p->loop);
    struct rsre_probe_status st;
    int rc = rsre_probe_state_update(&s->state, s->def, &s->res, now, &st);
    if (rc) {
        RSRE_LOG(RSRE_LOG_WARN, "probes", "probe=%s ratio window: %s", s->def->name,
                 rsre_strerror(rc));
    }
    if (st.changed) {
        if (st.failing) {
            RSRE_LOG(RSRE_LOG_WARN, "probes",
                     "probe=%s kind=%s failing after %d failures code=%s error=\"%s\"",
                     s->def->name, rsre_probe_kind_name(s->def->kind), st.consecutive_failures,
                     s->res.code, s->res.error);
        } else {
            RSRE_LOG(RSRE_LOG_INFO, "probes", "probe=%s kind=%s recovered", s->def->name,
                     rsre_probe_kind_name(s->def->kind));
        }
    }
    if (p->cb) {
        p->cb(p->arg, &st);
    }
    rsre_probe_result_clear(&s->res);
}

static int queue_run(struct probe_slot *s) {
    if (s->in_flight) {
        return -EBUSY;
    }
    s->work.data = s;
    int rc = uv_queue_work(s->p->loop, &s->work, work_cb, after_work_cb);
    if (rc == 0) {
        s->in_flight = 1;
    }
    return rc;
}

static void timer_cb(uv_timer_t *t) {
    struct probe_slot *s = t->data;
    if (queue_run(s) == -EBUSY) {
        RSRE_LOG(RSRE_LOG_DEBUG, "probes", "probe=%s still running, turn skipped", s->def->name);
    }
}

int rsre_probes_create(uv_loop_t *loop, struct rsre_probe_set *set, int64_t (*now_ms)(void *),
                       void *clock_arg, rsre_probes_cb cb, void *arg, struct rsre_probes **out) {
    if (!loop || !set || !out) {
        rsre_probe_set_destroy(set);
        return -EINVAL;
    }
    struct rsre_probes *p = calloc(1, sizeof *p);
    struct probe_slot *slots = calloc(set->n ? set->n : 1, sizeof *slots);
    if (!p || !slots) {
        free(p);
        free(slots);
        rsre_probe_set_destroy(set);
        return -ENOMEM;
    }
    *p = (struct rsre_probes){.loop = loop,
                              .set = set,
                              .slots = slots,
                              .n = set->n,
                              .now_ms = now_ms,
                              .clock_arg = clock_arg,
                              .cb = cb,
                              .arg = arg};
    for (size_t i = 0; i < p->n; i++) {
        slots[i].p = p;
        slots[i].def = &set->defs[i];
        uv_timer_init(loop, &slots[i].timer);
        slots[i].timer.data = &slots[i];
    }
    *out = p;
    return 0;
}

int rsre_probes_start(struct rsre_probes *p) {
    if (!p || p->closing) {
        return -EINVAL;
    }
    for (size_t i = 0; i < p->n; i++) {
        int rc =
            uv_timer_start(&p->slots[i].timer, timer_cb, 0, (uint64_t)p->slots[i].def->interval_ms);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

int rsre_probes_run_now(struct rsre_probes *p, const char *name) {
    if (!p || !name || p->closing) {
        return -EINVAL;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->slots[i].def->name, name) == 0) {
            return queue_run(&p->slots[i]);
        }
    }
    return RSRE_ENOTFOUND;
}

size_t rsre_probes_in_flight(const struct rsre_probes *p) {
    size_t n = 0;
    for (size_t i = 0; p && i < p->n; i++) {
        n += (size_t)p->slots[i].in_flight;
    }
    return n;
}

const struct rsre_probe_set *rsre_probes_set(const struct rsre_probes *p) {
    return p ? p->set : NULL;
}

static void timer_closed(uv_handle_t *h) {
    struct probe_slot *s = h->data;
    s->p->pending_close--;
    maybe_finish(s->p);
}

void rsre_probes_close(struct rsre_probes *p, void (*closed)(void *), void *arg) {
    if (!p || p->closing) {
        return;
    }
    p->closing = 1;
    p->closed = closed;
    p->closed_arg = arg;
    p->pending_close = p->n; /* timers */
    for (size_t i = 0; i < p->n; i++) {
        struct probe_slot *s = &p->slots[i];
        if (s->in_flight) {
            /* A queued run that has not started is cancelled (after_work gets UV_ECANCELED);
             * a running one finishes within its timeout. Either way after_work runs once. */
            uv_cancel((uv_req_t *)&s->work);
            p->pending_close++;
        }
        uv_close((uv_handle_t *)&s->timer, timer_closed);
    }
    if (p->n == 0) {
        p->pending_close = 0;
        maybe_finish(p);
    }
}
