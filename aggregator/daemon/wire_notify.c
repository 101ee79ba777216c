/*
 * Notifications in the daemon: see wire_notify.h. Nothing here re-enters the incident engine
 * from one of its own hooks: channel-health observations are recorded on the next loop turn,
 * in their own transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/curl_uv.h"
#include "common/error.h"
#include "common/log.h"
#include "daemon/wire_notify.h"
#include "http/api.h"
#include "notify/notify.h"
#include "notify/telegram.h"
#include "notify/whatsapp.h"

#define SCAN_EVERY_MS 2000
/* Channel health is reported on change only; the daemon re-asserts it at every observation
 * tick (rsre__wire_notify_heartbeat) with a bound of three ticks, at least three minutes. */
#define HEALTH_FRESH_DEFAULT_MS 180000

struct rsre__wire_notify {
    struct rsre__wire_notify_deps d;
    struct rsre_notify_routes *routes;
    struct rsre_http *http;
    struct rsre_notify *core;
    uv_timer_t timer, health_timer;
    uint64_t last_scan; /* uv_now of the last approval scan */
    int scan_now;       /* kicked: scan on the next turn */
    int health_dirty;
    int64_t health_fresh_ms; /* bound of channel health observations (the last heartbeat's) */
    unsigned down, total;
    char detail[512];
    int closing, handles;
    void (*closed)(void *);
    void *closed_arg;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- hooks ---- */

static void on_health(uv_timer_t *t);

static int h_in_txn(void *arg, int (*fn)(rsre_store_txn *, void *), void *fa) {
    struct rsre__wire_notify *w = arg;
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(w->d.store, 0, &txn);
    if (rc) {
        return rc;
    }
    rc = fn(txn, fa);
    if (rc == 0) {
        rc = rsre_store_txn_commit(txn);
    } else {
        rsre_store_txn_abort(txn);
    }
    if (rc == 0) {
        rsre_incident_engine_committed(w->d.engine);
    } else {
        rsre_incident_engine_aborted(w->d.engine);
    }
    return rc;
}

static int h_decided(void *arg, rsre_store_txn *txn, const char *approval_id, int64_t t) {
    struct rsre__wire_notify *w = arg;
    return rsre_incident_engine_approval_decided(w->d.engine, txn, approval_id, t);
}

static void h_channels(void *arg, unsigned down, unsigned total, const char *detail) {
    struct rsre__wire_notify *w = arg;
    w->down = down;
    w->total = total;
    snprintf(w->detail, sizeof(w->detail), "%s", detail ? detail : "");
    w->health_dirty = 1;
    if (!w->closing && w->health_timer.loop) {
        uv_timer_start(&w->health_timer, on_health, 0, 0);
    }
}

static void h_failed(void *arg, const char *channel) {
    (void)channel;
    struct rsre__wire_notify *w = arg;
    rsre_metrics_inc(w->d.metrics, RSRE_M_CHAT_DELIVERY_FAILURES_TOTAL);
}

static void h_voted(void *arg, int approve, int decided) {
    struct rsre__wire_notify *w = arg;
    if (decided) {
        rsre_metrics_inc(w->d.metrics,
                         approve ? RSRE_M_APPROVALS_GRANTED_TOTAL : RSRE_M_APPROVALS_DENIED_TOTAL);
    }
}

/* ---- channel health -> the incident engine ---- */

/* One observation at scope "channels": the engine adds incidents.active (open incidents
 * elsewhere) itself, so chatops_delivery_failure is warning with one channel down and critical
 * with every channel down during another incident (taxonomy.yaml). */
static int observe_fn(struct rsre__wire_notify *w, rsre_store_txn *txn) {
    struct rsre_observation_value v[] = {
        {"chat.channels_down", (double)w->down},
        {"chat.channels_total", (double)w->total},
    };
    struct rsre_observation o = {.scope = "channels",
                                 .source = "notify:channels",
                                 .detail = w->detail[0] ? w->detail : "every channel delivers",
                                 .values = v,
                                 .nvalues = sizeof(v) / sizeof(v[0]),
                                 .fresh_ms = w->health_fresh_ms};
    return rsre_incident_engine_observe(w->d.engine, txn, &o, now_ms());
}

int rsre__wire_notify_heartbeat(struct rsre__wire_notify *w, rsre_store_txn *txn, int64_t fresh_ms,
                                int64_t now) {
    if (!w) {
        return 0;
    }
    w->health_fresh_ms = fresh_ms;
    if (w->closing || w->total == 0 || w->health_dirty) {
        return 0; /* nothing reported yet, or a change on its way (on_health) */
    }
    /* a heartbeat, not a new check: the channels' streaks do not grow on it */
    return rsre_incident_engine_observe_refresh(w->d.engine, txn, "notify:channels", fresh_ms, now);
}

static void on_health(uv_timer_t *t) {
    struct rsre__wire_notify *w = t->data;
    if (!w->health_dirty || w->closing || w->total == 0) {
        return;
    }
    w->health_dirty = 0;
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(w->d.store, 0, &txn);
    if (rc == 0) {
        rc = observe_fn(w, txn);
        rc = rc ? (rsre_store_txn_abort(txn), rc) : rsre_store_txn_commit(txn);
    }
    if (rc == 0) {
        rsre_incident_engine_committed(w->d.engine);
    } else {
        w->health_dirty = 1; /* observed at the next change, or retried by the heartbeat */
        rsre_incident_engine_aborted(w->d.engine);
        RSRE_LOG(RSRE_LOG_ERROR, "notify", "channel health not recorded: %s", rsre_strerror(rc));
    }
}

/* ---- the timer ---- */

static void arm(struct rsre__wire_notify *w);

static void on_timer(uv_timer_t *t) {
    struct rsre__wire_notify *w = t->data;
    if (w->closing) {
        return;
    }
    int64_t now = now_ms();
    uint64_t mono = uv_now(w->d.loop);
    if (w->scan_now || mono - w->last_scan >= SCAN_EVERY_MS) {
        w->scan_now = 0;
        w->last_scan = mono;
        rsre_notify_scan_approvals(w->core, now);
    }
    rsre_notify_poll(w->core, now);
    arm(w);
}

/* Next wake-up: the next due message, or the next approval scan, whichever comes first. */
static void arm(struct rsre__wire_notify *w) {
    int64_t due = rsre_notify_next_due(w->core), now = now_ms();
    uint64_t since = uv_now(w->d.loop) - w->last_scan;
    int64_t wait = since >= SCAN_EVERY_MS ? 0 : (int64_t)(SCAN_EVERY_MS - since);
    if (due != INT64_MAX && due - now < wait) {
        wait = due - now;
    }
    /* At least 1 ms: a 0 ms timer restarted from its own callback would run again in the same
     * libuv timer pass, before any I/O completes — a busy loop. */
    if (wait < 1) {
        wait = 1;
    }
    uv_timer_start(&w->timer, on_timer, (uint64_t)wait, 0);
}

static void h_wake(void *arg) {
    struct rsre__wire_notify *w = arg;
    if (!w->closing && w->timer.loop) {
        arm(w);
    }
}

/* ---- transports ---- */

static int make_transport(struct rsre__wire_notify *w, const struct rsre_notify_channel_conf *c,
                          struct rsre_channel **out) {
    char err[256] = "";
    int rc;
    if (!strcmp(c->name, "telegram")) {
        struct rsre_telegram_config tc;
        rsre_telegram_config_defaults(&tc);
        for (size_t i = 0; i < c->nsettings; i++) {
            if ((rc = rsre_telegram_config_set(&tc, c->settings[i][0], c->settings[i][1], err,
                                               sizeof(err)))) {
                goto fail;
            }
        }
        rc = rsre_telegram_create(w->http, &tc, out, err, sizeof(err));
    } else if (!strcmp(c->name, "whatsapp")) {
        struct rsre_whatsapp_config wc;
        rsre_whatsapp_config_defaults(&wc);
        for (size_t i = 0; i < c->nsettings; i++) {
            if ((rc = rsre_whatsapp_config_set(&wc, c->settings[i][0], c->settings[i][1], err,
                                               sizeof(err)))) {
                goto fail;
            }
        }
        rc = rsre_whatsapp_create(w->http, &wc, out, err, sizeof(err));
    } else {
        snprintf(err, sizeof(err), "no transport named '%s' (telegram, whatsapp)", c->name);
        rc = RSRE_EINVALID;
    }
    if (rc == 0) {
        return 0;
    }
fail:
    RSRE_LOG(RSRE_LOG_ERROR, "notify", "channel %s: %s (%s)", c->name, err, rsre_strerror(rc));
    return rc;
}

int rsre__wire_notify_create(const struct rsre__wire_notify_deps *d,
                             struct rsre__wire_notify **out) {
    *out = NULL;
    struct rsre__wire_notify *w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    w->d = *d;
    w->health_fresh_ms = HEALTH_FRESH_DEFAULT_MS;
    int rc;
    struct rsre_yerr ye = {0};
    if (d->file && d->file[0]) {
        rc = rsre_notify_routes_load_file(d->file, &w->routes, &ye);
    } else {
        rc = rsre_notify_routes_load("{}", 2, &w->routes, &ye);
    }
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "notify", "notifications file %s:%d:%d: %s",
                 d->file ? d->file : "", ye.line, ye.col, ye.msg);
        free(w);
        return rc;
    }
    struct rsre_notify_config cfg = {.routes = w->routes,
                                     .store = d->store,
                                     .approvals = d->approvals,
                                     .operators = d->operators};
    uint8_t secret[256];
    int slen = rsre_notify_routes_secret(w->routes, secret, sizeof(secret));
    if (slen > 0) {
        cfg.secret = secret;
        cfg.secret_len = (size_t)slen;
    } else if (slen != -ENOENT) {
        RSRE_LOG(RSRE_LOG_ERROR, "notify",
                 "button-signing secret unusable (%s; at least %d bytes "
                 "from secret_file or secret_env)",
                 rsre_strerror(slen), RSRE_NOTIFY_SECRET_MIN);
        rc = slen;
        goto fail;
    } else if (rsre_notify_routes_channels(w->routes)) {
        RSRE_LOG(RSRE_LOG_WARN, "notify",
                 "no secret_file/secret_env: approval messages carry no "
                 "buttons (vote in the admin UI)");
    }
    if (rsre_notify_routes_channels(w->routes) && (rc = rsre_http_create(d->loop, &w->http))) {
        goto fail;
    }
    for (size_t i = 0; i < rsre_notify_routes_channels(w->routes); i++) {
        if ((rc = make_transport(w, rsre_notify_routes_channel(w->routes, i),
                                 &cfg.channels[cfg.nchannels]))) {
            goto fail_channels;
        }
        cfg.nchannels++;
    }
    struct rsre_notify_hooks hooks = {.in_txn = h_in_txn,
                                      .decided = h_decided,
                                      .channels = h_channels,
                                      .delivery_failed = h_failed,
                                      .voted = h_voted,
                                      .wake = h_wake,
                                      .arg = w};
    rc = rsre_notify_create(&cfg, &hooks, &w->core); /* owns the channels now, also on failure */
    memset(secret, 0, sizeof(secret));
    if (rc) {
        goto fail;
    }
    uv_timer_init(d->loop, &w->timer);
    uv_timer_init(d->loop, &w->health_timer);
    w->timer.data = w->health_timer.data = w;
    if ((rc = rsre_notify_start(w->core))) {
        rsre__wire_notify_close(w, NULL, NULL);
        return rc;
    }
    arm(w);
    RSRE_LOG(RSRE_LOG_INFO, "notify", "notifications on: %zu chat channel(s), file=%s",
             rsre_notify_routes_channels(w->routes), d->file && d->file[0] ? d->file : "(none)");
    *out = w;
    return 0;
fail_channels:
    for (size_t i = 0; i < cfg.nchannels; i++) {
        cfg.channels[i]->ops->destroy(cfg.channels[i]);
    }
fail:
    memset(secret, 0, sizeof(secret));
    rsre_http_destroy(w->http); /* its handles close on the loop's next turn */
    rsre_notify_routes_destroy(w->routes);
    free(w);
    return rc;
}

void rsre__wire_notify_incident(struct rsre__wire_notify *w, const rsre_store_incident *inc,
                                const char *what) {
    if (!w || w->closing) {
        return;
    }
    rsre_notify_incident(w->core, inc, what, now_ms());
    rsre__wire_notify_kick(w);
}

int rsre__wire_notify_webhook(struct rsre__wire_notify *w, const struct rsre_api_webhook *req,
                              char *out, size_t cap) {
    struct rsre_channel *ch = w && !w->closing ? rsre_notify_channel(w->core, req->channel) : NULL;
    if (!ch) {
        snprintf(out, cap, "no such channel");
        return 404;
    }
    int status;
    if (!strcmp(req->channel, "whatsapp") && !strcmp(req->method, "GET")) {
        status = rsre_whatsapp_webhook_verify(ch, req->hub_mode, req->hub_verify_token,
                                              req->hub_challenge, out, cap);
    } else if (!strcmp(req->channel, "whatsapp")) {
        status = rsre_whatsapp_webhook_post(ch, req->hub_signature, req->body, req->body_len);
    } else if (!strcmp(req->channel, "telegram") && !strcmp(req->method, "POST")) {
        status = rsre_telegram_webhook(ch, req->telegram_secret, req->body, req->body_len);
    } else {
        status = 405;
    }
    if (status != 200) {
        RSRE_LOG(RSRE_LOG_WARN, "notify", "webhook %s %s answered %d", req->method, req->channel,
                 status);
    }
    rsre__wire_notify_kick(w); /* a vote may have decided an approval: edit its messages */
    return status;
}

void rsre__wire_notify_kick(struct rsre__wire_notify *w) {
    if (w && !w->closing) {
        w->scan_now = 1;
        uv_timer_start(&w->timer, on_timer, 0, 0);
    }
}

static void on_closed(uv_handle_t *h) {
    struct rsre__wire_notify *w = h->data;
    if (--w->handles > 0) {
        return;
    }
    void (*cb)(void *) = w->closed;
    void *arg = w->closed_arg;
    rsre_notify_routes_destroy(w->routes);
    free(w);
    if (cb) {
        cb(arg);
    }
}

void rsre__wire_notify_close(struct rsre__wire_notify *w, void (*closed)(void *), void *arg) {
    if (!w) {
        if (closed) {
            closed(arg);
        }
        return;
    }
    w->closing = 1;
    w->closed = closed;
    w->closed_arg = arg;
    rsre_notify_destroy(w->core); /* destroys the transports: in-flight sends end now */
    w->core = NULL;
    rsre_http_destroy(w->http); /* its handles close on the loop */
    w->http = NULL;
    w->handles = 2;
    uv_close((uv_handle_t *)&w->timer, on_closed);
    uv_close((uv_handle_t *)&w->health_timer, on_closed);
}
