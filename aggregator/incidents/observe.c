/*
 * Observations: what the aggregator's own probes (aggregator/probes), Kubernetes observers
 * (aggregator/observe) and operator channels (aggregator/notify) tell the engine about one
 * resource scope ("dependency/redis", "release/prod/api", "channels", "cluster").
 *
 * Each scope is a holder like a node, with an observation block: up to RSRE__OBS_SOURCES
 * sources, each with its own values (one row of catalogue slots), detail text and, per evidence
 * row of every class, the number of consecutive observations in which the row held on that
 * source's values (the "repeated across checks" of the confidence model). The holder's
 * evaluation row aggregates the sources (the worst value: the largest, the smallest for
 * tls.days_to_expiry) and adds what the engine derives: ldap.failing_held and
 * http.error_ratio_held from when the aggregate started failing, http.error_ratio_slope from
 * consecutive samples of a source when the source does not give it, and incidents.active
 * (open incidents elsewhere). The table `observable` lists what a caller may set, where and in
 * which range; docs/incidents.md "Feeding the engine" is its operator-facing copy.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "incidents/incidents_internal.h"

#define HTTP_ERROR_THRESHOLD 0.05 /* http_error_rate_spike's "http.error_ratio > 5%" */
#define DETAIL_HARD_MAX 8192      /* longer detail text is refused, shorter is truncated */

enum vkind { V_COUNT, V_BOOL, V_RATIO, V_SLOPE, V_DAYS };

/* Signals an observation may set: where (cluster: only at scope "cluster"; otherwise only at a
 * resource scope) and what values are plausible. Held durations and incidents.active are the
 * engine's own; node.* and the rest come from agents. */
static const struct {
    const char *name;
    int cluster;
    enum vkind kind;
} observable[] = {
    {"pull.failing_workloads", 0, V_COUNT},
    {"pull.failing_core_workloads", 0, V_COUNT},
    {"dep.failing", 0, V_COUNT},
    {"dep.core_failing", 0, V_COUNT},
    {"dep.cascading", 0, V_COUNT},
    {"dep.consecutive_failures", 0, V_COUNT},
    {"ingress.failing_routes", 0, V_COUNT},
    {"ingress.failing_core_routes", 0, V_COUNT},
    {"tls.failures", 0, V_COUNT},
    {"tls.days_to_expiry", 0, V_DAYS},
    {"dns.mismatches", 0, V_COUNT},
    {"ldap.failing", 0, V_BOOL},
    {"http.error_ratio", 0, V_RATIO},
    {"http.error_ratio_slope", 0, V_SLOPE},
    {"db.failing", 0, V_BOOL},
    {"release.drifted", 0, V_BOOL},
    {"release.rollout_blocked", 0, V_BOOL},
    {"release.unhealthy_workloads", 0, V_COUNT},
    {"chat.channels_down", 0, V_COUNT},
    {"chat.channels_total", 0, V_COUNT},
    {"jobs.finished_pods", 1, V_COUNT},
    {"jobs.apiserver_churn", 1, V_COUNT},
};
#define NOBSERVABLE (sizeof(observable) / sizeof(observable[0]))

static int plausible(enum vkind k, double v) {
    if (!isfinite(v)) {
        return 0;
    }
    switch (k) {
    case V_COUNT:
        return v >= 0 && v <= 1e9 && v == floor(v);
    case V_BOOL:
        return v == 0.0 || v == 1.0;
    case V_RATIO:
        return v >= 0 && v <= 1;
    case V_SLOPE:
        return v >= -1 && v <= 1;
    case V_DAYS:
        return v >= -36500 && v <= 36500;
    }
    return 0;
}

static int printable_token(const char *s, size_t max) {
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

int rsre__inc_source_valid(const char *source) {
    return printable_token(source, RSRE__OBS_SOURCE_MAX);
}

int rsre__inc_scope_valid(const char *scope) {
    return printable_token(scope, RSRE__SCOPE_MAX) && strncmp(scope, "node=", 5) != 0;
}

static unsigned source_kind(const char *s) {
    static const struct {
        const char *prefix;
        unsigned kind;
    } kinds[] = {
        {"probe:", RSRE__K_PROBE}, {"observer:", RSRE__K_OBSERVER}, {"notify:", RSRE__K_NOTIFY}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(s, kinds[i].prefix, n) == 0 && s[n]) {
            return kinds[i].kind;
        }
    }
    return RSRE__K_OTHER;
}

/* --- blocks and holders -------------------------------------------------------------------- */

double *rsre__inc_obs_vals(const struct rsre_incident_engine *e, const struct rsre__obs *o,
                           size_t i) {
    return (double *)o->vals + i * e->nslots;
}

static void src_clear(const struct rsre_incident_engine *e, struct rsre__obs *o, size_t i) {
    memset(&o->src[i], 0, sizeof(o->src[i]));
    double *v = rsre__inc_obs_vals(e, o, i);
    for (size_t k = 0; k < e->nslots; k++) {
        v[k] = NAN;
    }
}

int rsre__inc_obs_attach(struct rsre_incident_engine *e, struct rsre__node *h) {
    if (h->obs) {
        return 0;
    }
    struct rsre__obs *o = calloc(1, e->obs_size);
    if (!o) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < RSRE__OBS_SOURCES; i++) {
        src_clear(e, o, i);
    }
    h->obs = o;
    return 0;
}

const char *rsre__inc_holder_label(const struct rsre__node *h) {
    return h->name[0] ? h->name : h->scope[0] ? h->scope : "cluster";
}

int rsre__inc_scope_get(struct rsre_incident_engine *e, const char *scope, int create,
                        struct rsre__node **out) {
    *out = NULL;
    if (strcmp(scope, "cluster") == 0) {
        int rc = create ? rsre__inc_obs_attach(e, &e->cluster) : 0;
        *out = rc ? NULL : &e->cluster;
        return rc;
    }
    for (size_t i = 0; i < e->nscopes; i++) {
        if (strcmp(e->scopes[i]->scope, scope) == 0) {
            *out = e->scopes[i];
            return 0;
        }
    }
    if (!create) {
        return RSRE_ENOTFOUND;
    }
    if (e->nscopes >= RSRE__MAX_SCOPES) {
        return RSRE_ELIMIT;
    }
    if (e->nscopes == e->capscopes) {
        size_t cap = e->capscopes ? e->capscopes * 2 : 16;
        struct rsre__node **v = realloc(e->scopes, cap * sizeof(*v));
        if (!v) {
            return -ENOMEM;
        }
        e->scopes = v;
        e->capscopes = cap;
    }
    struct rsre__node *h = calloc(1, sizeof(*h));
    if (!h || !(h->row = malloc(e->nslots * sizeof(double))) ||
        (e->rstate_cells && !(h->rstate = calloc(e->rstate_cells, sizeof(int64_t))))) {
        if (h) {
            free(h->row);
        }
        free(h);
        return -ENOMEM;
    }
    int rc = rsre__inc_obs_attach(e, h);
    if (rc) {
        free(h->rstate);
        free(h->row);
        free(h);
        return rc;
    }
    snprintf(h->scope, sizeof(h->scope), "%s", scope);
    for (size_t k = 0; k < e->nslots; k++) {
        h->row[k] = NAN;
    }
    for (size_t r = 0; r < RSRE__R_COUNT; r++) {
        h->s.raw[r] = NAN;
    }
    h->index = e->nscopes;
    e->scopes[e->nscopes++] = h;
    *out = h;
    return 0;
}

void rsre__inc_scopes_free(struct rsre_incident_engine *e) {
    for (size_t i = 0; i < e->nscopes; i++) {
        free(e->scopes[i]->obs);
        free(e->scopes[i]->row);
        free(e->scopes[i]->rstate);
        free(e->scopes[i]);
    }
    free(e->scopes);
    e->scopes = NULL;
    e->nscopes = e->capscopes = 0;
    free(e->cluster.obs);
    e->cluster.obs = NULL;
}

/* --- undo ---------------------------------------------------------------------------------- */

void rsre__inc_save_obs(struct rsre_incident_engine *e, struct rsre__node *h) {
    if (!h->obs || h->obs_undo_gen == e->gen + 1) {
        return;
    }
    h->obs_undo_gen = e->gen + 1;
    void *copy = malloc(e->obs_size);
    if (!copy || rsre__inc_undo_push(e, RSRE__U_OBS, h, copy)) {
        free(copy);
        e->undo_failed = 1;
        return;
    }
    memcpy(copy, h->obs, e->obs_size);
}

void rsre__inc_obs_episode(struct rsre__node *h, size_t b) {
    if (!h->obs) {
        return;
    }
    for (size_t i = 0; i < RSRE__OBS_SOURCES; i++) {
        h->obs->src[i].recorded[b] = 0;
    }
}

/* --- aggregation and derived signals ------------------------------------------------------- */

int rsre__inc_obs_fresh(const struct rsre__obs *o, size_t i, int64_t now_ms) {
    return i < o->nsrc && now_ms <= o->src[i].fresh_until_ms;
}

static int has_values(const struct rsre_incident_engine *e, const struct rsre__obs *o, size_t i) {
    const double *v = rsre__inc_obs_vals(e, o, i);
    for (size_t k = 0; k < e->t->nsignals; k++) {
        if (isfinite(v[k])) {
            return 1;
        }
    }
    return 0;
}

int rsre__inc_obs_any_fresh(const struct rsre_incident_engine *e, const struct rsre__node *h,
                            int64_t now_ms) {
    const struct rsre__obs *o = h->obs;
    for (size_t i = 0; o && i < o->nsrc; i++) {
        if (rsre__inc_obs_fresh(o, i, now_ms) && has_values(e, o, i)) {
            return 1;
        }
    }
    return 0;
}

size_t rsre__inc_obs_stale(const struct rsre_incident_engine *e, const struct rsre__node *h,
                           int64_t now_ms, char *buf, size_t cap) {
    const struct rsre__obs *o = h->obs;
    size_t n = 0, len = 0;
    if (buf && cap) {
        buf[0] = '\0';
    }
    for (size_t i = 0; o && i < o->nsrc; i++) {
        if (!o->src[i].name[0] || rsre__inc_obs_fresh(o, i, now_ms) || !has_values(e, o, i)) {
            continue;
        }
        n++;
        if (buf && len < cap) {
            char ago[32];
            rsre__inc_fmt_duration(now_ms - o->src[i].asserted_ms, ago, sizeof(ago));
            int w = rsre__inc_fmt(buf + len, cap - len, "%s%s (last heard %s ago)", len ? ", " : "",
                                  o->src[i].name, ago);
            len += w > 0 ? (size_t)w : 0;
        }
    }
    return n;
}

/* The worst value of `slot` over the sources whose values are fresh at now_ms (NaN when none). */
static double agg_slot(const struct rsre_incident_engine *e, const struct rsre__obs *o, int slot,
                       int64_t now_ms) {
    double agg = NAN;
    if (slot < 0) {
        return agg;
    }
    for (size_t i = 0; i < o->nsrc; i++) {
        if (!rsre__inc_obs_fresh(o, i, now_ms)) {
            continue; /* stale: unknown, like a silent agent's values */
        }
        double v = rsre__inc_obs_vals(e, o, i)[slot];
        if (!isfinite(v)) {
            continue;
        }
        if (!isfinite(agg)) {
            agg = v;
        } else {
            agg = slot == e->sl.tls_days ? fmin(agg, v) : fmax(agg, v);
        }
    }
    return agg;
}

static double held_s(int64_t since, int64_t now_ms) {
    return since > 0 && now_ms > since ? (double)(now_ms - since) / 1000.0 : 0.0;
}

static void put(double *row, int slot, double v) {
    if (slot >= 0) {
        row[slot] = v;
    }
}

void rsre__inc_obs_refresh(struct rsre_incident_engine *e, struct rsre__node *h, int64_t now_ms) {
    const struct rsre__obs *o = h->obs;
    double *row = h->row;
    int scope_holder = h != &e->cluster;
    if (scope_holder) {
        for (size_t k = 0; k < e->nslots; k++) {
            row[k] = NAN;
        }
    }
    if (!o) {
        return;
    }
    for (size_t k = 0; k < e->t->nsignals; k++) {
        double v = agg_slot(e, o, (int)k, now_ms);
        if (isfinite(v)) {
            row[k] = !isfinite(row[k])          ? v
                     : (int)k == e->sl.tls_days ? fmin(row[k], v)
                                                : fmax(row[k], v);
        }
    }
    const struct rsre__slots *sl = &e->sl;
    double ldap = sl->ldap_failing >= 0 ? row[sl->ldap_failing] : NAN;
    put(row, sl->ldap_held,
        ldap == 1.0   ? held_s(o->ldap_since_ms, now_ms)
        : ldap == 0.0 ? 0.0
                      : NAN);
    double ratio = sl->http_ratio >= 0 ? row[sl->http_ratio] : NAN;
    put(row, sl->http_held,
        !isfinite(ratio)               ? NAN
        : ratio > HTTP_ERROR_THRESHOLD ? held_s(o->http_since_ms, now_ms)
                                       : 0.0);
    if (scope_holder) {
        size_t own = 0;
        for (size_t b = 0; b < rsre__inc_nbindings; b++) {
            own += h->s.inc[b] && rsre_lifecycle_is_open(h->s.inc[b]->state);
        }
        double active = e->incidents_active - (double)own;
        put(row, sl->incidents_active, active > 0 ? active : 0);
    }
}

int rsre__inc_obs_init(struct rsre_incident_engine *e) {
    e->obs_size = sizeof(struct rsre__obs) + RSRE__OBS_SOURCES * e->nslots * sizeof(double);
    if (!(e->exit_row = malloc(e->nslots * sizeof(double)))) {
        return -ENOMEM;
    }
    e->nobs_zero = 0;
    for (size_t i = 0; i < NOBSERVABLE && e->nobs_zero < RSRE__OBS_VALUES; i++) {
        int slot =
            rsre_taxonomy_signal_slot((void *)e->t, observable[i].name, strlen(observable[i].name));
        if (slot >= 0 && (observable[i].kind == V_COUNT || observable[i].kind == V_BOOL)) {
            e->obs_zero[e->nobs_zero++] = slot;
        }
    }
    return 0;
}

const double *rsre__inc_obs_exit_row(struct rsre_incident_engine *e, const struct rsre__node *h,
                                     int64_t now_ms) {
    memcpy(e->exit_row, h->row, e->nslots * sizeof(double));
    const struct rsre__obs *o = h->obs;
    /* Nobody reporting now (a restart, every source stale): nothing reads as healthy. */
    int any_fresh = rsre__inc_obs_any_fresh(e, h, now_ms);
    for (size_t i = 0; any_fresh && i < e->nobs_zero; i++) {
        int slot = e->obs_zero[i];
        if (isfinite(e->exit_row[slot])) {
            continue;
        }
        int reported = 0; /* by a source that is stale now (fresh ones are in the row) */
        for (size_t k = 0; o && k < o->nsrc && !reported; k++) {
            reported = isfinite(rsre__inc_obs_vals(e, o, k)[slot]);
        }
        if (!reported) {
            e->exit_row[slot] = 0.0;
        }
    }
    return e->exit_row;
}

/* The held-since clocks follow the aggregate at observation time. */
static void update_since(struct rsre_incident_engine *e, struct rsre__obs *o, int64_t now_ms) {
    double ldap = agg_slot(e, o, e->sl.ldap_failing, now_ms);
    if (ldap == 1.0) {
        o->ldap_since_ms = o->ldap_since_ms ? o->ldap_since_ms : now_ms;
    } else {
        o->ldap_since_ms = 0;
    }
    double ratio = agg_slot(e, o, e->sl.http_ratio, now_ms);
    if (isfinite(ratio) && ratio > HTTP_ERROR_THRESHOLD) {
        o->http_since_ms = o->http_since_ms ? o->http_since_ms : now_ms;
    } else {
        o->http_since_ms = 0;
    }
}

void rsre__inc_obs_seed(struct rsre_incident_engine *e, struct rsre__node *h, size_t b,
                        int64_t opened_ms) {
    if (!h->obs || opened_ms <= 0) {
        return;
    }
    const char *cls = rsre__inc_bindings[b].class_id;
    if (strcmp(cls, "identity_provider_unreachable") == 0 && !h->obs->ldap_since_ms) {
        h->obs->ldap_since_ms = opened_ms;
    } else if (strcmp(cls, "http_error_rate_spike") == 0 && !h->obs->http_since_ms) {
        h->obs->http_since_ms = opened_ms;
    }
    (void)e;
}

/* --- evidence streaks ---------------------------------------------------------------------- */

/* A stale source that reports (or re-asserts) again: its values were unknown in between, so its
 * "repeated across checks" starts over, and what it supports is new evidence of this episode
 * (a fresh Evidence record with the new observation time). */
static void stale_restart(struct rsre__obs_src *s) {
    memset(s->streak, 0, sizeof(s->streak));
    memset(s->recorded, 0, sizeof(s->recorded));
}

int rsre__inc_obs_renew(struct rsre_incident_engine *e, const char *source, int64_t fresh_ms,
                        int64_t now_ms, int (*back)(void *arg, struct rsre__node *h), void *arg) {
    int64_t bound = fresh_ms ? fresh_ms : e->cfg.observation_fresh_ms;
    for (size_t j = 0; j <= e->nscopes; j++) {
        struct rsre__node *h = j < e->nscopes ? e->scopes[j] : &e->cluster;
        struct rsre__obs *o = h->obs;
        for (size_t i = 0; o && i < o->nsrc; i++) {
            struct rsre__obs_src *s = &o->src[i];
            if (strcmp(s->name, source) != 0 || s->fresh_until_ms >= now_ms + bound) {
                continue;
            }
            rsre__inc_save_obs(e, h);
            if (e->undo_failed) {
                return -ENOMEM;
            }
            int was_stale = !rsre__inc_obs_fresh(o, i, now_ms);
            if (was_stale) {
                stale_restart(s);
            }
            s->asserted_ms = now_ms > s->asserted_ms ? now_ms : s->asserted_ms;
            s->fresh_until_ms = now_ms + bound;
            int rc = was_stale && back ? back(arg, h) : 0;
            if (rc) {
                return rc;
            }
            break; /* one entry per source and scope */
        }
    }
    return 0;
}

static void update_streaks(struct rsre_incident_engine *e, struct rsre__node *h, size_t i,
                           int64_t now_ms) {
    struct rsre__obs *o = h->obs;
    enum rsre__scope want = h == &e->cluster ? RSRE__SCOPE_CLUSTER : RSRE__SCOPE_OBS;
    for (size_t b = 0; b < rsre__inc_nbindings && b < RSRE__MAX_BIND; b++) {
        const struct rsre__binding *bd = &rsre__inc_bindings[b];
        if (bd->scope != want) {
            continue;
        }
        for (size_t r = 0; r < bd->nev && r < RSRE__MAX_EV; r++) {
            const struct rsre__ev_row *row = &bd->ev[r];
            if (!row->src_kinds) {
                continue;
            }
            struct rsre__eval sub = {e, h, rsre__inc_obs_vals(e, o, i), now_ms, (int)i + 1};
            uint16_t *st = &o->src[i].streak[b][r];
            if ((row->src_kinds & o->src[i].kind) && row->holds(&sub)) {
                *st = *st < 1000 ? *st + 1 : *st;
            } else {
                *st = 0;
            }
        }
    }
}

int rsre__inc_obs_gate(const struct rsre_incident_engine *e, size_t b,
                       const struct rsre__eval *ev) {
    const struct rsre__binding *bd = &rsre__inc_bindings[b];
    (void)e;
    for (size_t r = 0; r < bd->nev; r++) {
        if (bd->ev[r].src_kinds && rsre__inc_ev_holds(&bd->ev[r], ev)) {
            return 1;
        }
    }
    return 0;
}

/* --- validation and applying --------------------------------------------------------------- */

static int observable_index(const char *name) {
    for (size_t i = 0; i < NOBSERVABLE; i++) {
        if (strcmp(observable[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int rsre__inc_obs_validate(const struct rsre_incident_engine *e, const struct rsre_observation *obs,
                           int *slots) {
    if (!obs->scope || !rsre__inc_scope_valid(obs->scope) || !obs->source ||
        !printable_token(obs->source, RSRE__OBS_SOURCE_MAX) || !obs->values || obs->nvalues == 0 ||
        obs->nvalues > RSRE__OBS_VALUES) {
        return RSRE_EINVALID;
    }
    if (obs->fresh_ms != 0 &&
        (obs->fresh_ms < RSRE__OBS_FRESH_MIN_MS || obs->fresh_ms > RSRE__OBS_FRESH_MAX_MS)) {
        return RSRE_EINVALID;
    }
    if (obs->detail && strnlen(obs->detail, DETAIL_HARD_MAX + 1) > DETAIL_HARD_MAX) {
        return RSRE_EINVALID;
    }
    int cluster = strcmp(obs->scope, "cluster") == 0;
    for (size_t i = 0; i < obs->nvalues; i++) {
        const struct rsre_observation_value *v = &obs->values[i];
        int k = v->signal ? observable_index(v->signal) : -1;
        if (k < 0 || observable[k].cluster != cluster || !plausible(observable[k].kind, v->value)) {
            return RSRE_EINVALID;
        }
        int slot = rsre_taxonomy_signal_slot((void *)e->t, v->signal, strlen(v->signal));
        if (slot < 0) {
            return RSRE_EINVALID; /* not in this taxonomy's catalogue */
        }
        for (size_t j = 0; j < i; j++) {
            if (slots[j] == slot) {
                return RSRE_EINVALID; /* the same signal twice */
            }
        }
        slots[i] = slot;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most `avail` bytes), 0 when invalid or cut. */
static size_t utf8_len(const unsigned char *s, size_t avail) {
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || n > avail) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90)) {
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    }
    return n;
}

/* Copies detail text into dst (RSRE__OBS_DETAIL_MAX + 1 bytes): at most RSRE__OBS_DETAIL_MAX
 * bytes, never cutting a character; control characters become spaces and bytes that are not
 * valid UTF-8 '?', so the text is safe in JSON, chat messages and logs. */
static void copy_detail(char *dst, const char *src) {
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)(src ? src : "");
    while (*p && n < RSRE__OBS_DETAIL_MAX) {
        if (*p < 0x80) {
            dst[n++] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
            p++;
            continue;
        }
        size_t len = utf8_len(p, strnlen((const char *)p, 4));
        if (len == 0) {
            dst[n++] = '?';
            p++;
            continue;
        }
        if (n + len > RSRE__OBS_DETAIL_MAX) {
            break; /* the character does not fit whole */
        }
        memcpy(dst + n, p, len);
        n += len;
        p += len;
    }
    dst[n] = '\0';
}

int rsre__inc_obs_apply(struct rsre_incident_engine *e, struct rsre__node *h,
                        const struct rsre_observation *obs, const int *slots, int64_t now_ms) {
    struct rsre__obs *o = h->obs;
    size_t i = 0;
    while (i < o->nsrc && strcmp(o->src[i].name, obs->source) != 0) {
        i++;
    }
    if (i == o->nsrc && o->nsrc == RSRE__OBS_SOURCES) {
        /* Full: take over the longest-silent source if it has been idle long enough. */
        size_t old = 0;
        for (size_t k = 1; k < o->nsrc; k++) {
            old = o->src[k].asserted_ms < o->src[old].asserted_ms ? k : old;
        }
        if (rsre__inc_obs_fresh(o, old, now_ms) ||
            now_ms - o->src[old].asserted_ms < RSRE__OBS_SOURCE_IDLE_MS) {
            return RSRE_ELIMIT;
        }
        rsre__inc_save_obs(e, h);
        src_clear(e, o, old);
        i = old;
    } else {
        rsre__inc_save_obs(e, h);
    }
    if (e->undo_failed) {
        return -ENOMEM;
    }
    struct rsre__obs_src *s = &o->src[i];
    if (i == o->nsrc || !s->name[0]) {
        snprintf(s->name, sizeof(s->name), "%s", obs->source);
        s->kind = source_kind(obs->source);
        o->nsrc = i == o->nsrc ? o->nsrc + 1 : o->nsrc;
    } else if (!rsre__inc_obs_fresh(o, i, now_ms)) {
        stale_restart(s);
    }
    double *vals = rsre__inc_obs_vals(e, o, i);
    int slope_given = 0;
    for (size_t k = 0; k < obs->nvalues; k++) {
        vals[slots[k]] = obs->values[k].value;
        slope_given |= slots[k] == e->sl.http_slope;
    }
    /* The slope of the 5xx ratio per minute, from this source's consecutive samples. */
    int ratio_slot = e->sl.http_ratio;
    if (ratio_slot >= 0 && isfinite(vals[ratio_slot])) {
        double r = vals[ratio_slot];
        int given = 0;
        for (size_t k = 0; k < obs->nvalues; k++) {
            given |= slots[k] == ratio_slot;
        }
        /* Only while the ratio stays above the threshold: the jump into a spike is the
         * "brief spike" (warning); a spike that keeps climbing is "rising" (critical). */
        if (given && !slope_given && e->sl.http_slope >= 0) {
            if (r > HTTP_ERROR_THRESHOLD && s->http_prev > HTTP_ERROR_THRESHOLD &&
                s->http_prev_ms > 0 && now_ms - s->http_prev_ms >= 1000) {
                double slope = (r - s->http_prev) / ((double)(now_ms - s->http_prev_ms) / 60000.0);
                vals[e->sl.http_slope] = fmax(-1.0, fmin(1.0, slope));
            } else if (!(r > HTTP_ERROR_THRESHOLD && s->http_prev > HTTP_ERROR_THRESHOLD &&
                         now_ms - s->http_prev_ms < 1000)) {
                vals[e->sl.http_slope] = 0.0;
            }
        }
        if (given) {
            s->http_prev = r;
            s->http_prev_ms = now_ms;
        }
    }
    copy_detail(s->detail, obs->detail); /* no detail: the previous text no longer applies */
    s->seen_ms = s->asserted_ms = now_ms;
    s->fresh_until_ms = now_ms + (obs->fresh_ms ? obs->fresh_ms : e->cfg.observation_fresh_ms);
    update_since(e, o, now_ms);
    update_streaks(e, h, i, now_ms);
    return 0;
}
