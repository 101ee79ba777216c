/*
 * Liveness and metrics over HTTP/1.0 on a small TCP listener of the agent's own loop:
 *   GET /healthz   200 {"status":"ok",...} while the loop runs and at least one collector has
 *                  succeeded within 5 of its intervals (or none has had time yet); 503 otherwise
 *   GET /metrics   Prometheus text: per-collector runs/errors/overruns/duration, spool, stream
 * Requests are bounded (2 KiB); anything else is answered 404/400 and closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "common/error.h"
#include "common/log.h"

#define REQ_MAX 2048
#define RESP_MAX 16384

#define CONN_TIMEOUT_MS 5000 /* a client has this long to send its request and read the answer */
#define MAX_CONNS 16

struct hconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int open_handles;
    struct hconn *next, **pprev; /* the agent's list of open connections */
    struct rsre_agent *a;
    char req[REQ_MAX];
    size_t len;
    uv_write_t wr;
    char *resp;
};

static struct hconn *conns; /* open connections (one agent per process) */
static size_t nconns;

static void on_conn_closed(uv_handle_t *h) {
    struct hconn *c = h->data;
    if (--c->open_handles > 0) {
        return;
    }
    free(c->resp);
    free(c);
}

/* Closes both handles of a connection once; idempotent. */
static void conn_close(struct hconn *c) {
    if (!c->pprev) {
        return;
    }
    *c->pprev = c->next;
    if (c->next) {
        c->next->pprev = c->pprev;
    }
    c->pprev = NULL;
    nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_conn_timeout(uv_timer_t *t) {
    conn_close(t->data);
}

static void on_written(uv_write_t *w, int status) {
    (void)status;
    conn_close(w->data);
}

int rsre__health_report(struct rsre_agent *a, char *buf, size_t cap, size_t *len) {
    int64_t now = rsre_now_unix_ms();
    int healthy = 1, any_ok = 0, any_enabled = 0;
    for (size_t i = 0; i < a->ncollectors; i++) {
        struct collector_slot *c = &a->collectors[i];
        if (!c->stats.enabled) {
            continue;
        }
        any_enabled = 1;
        if (c->stats.last_ok_unix_ms &&
            now - c->stats.last_ok_unix_ms <= 5 * (int64_t)c->interval_ms + 1000) {
            any_ok = 1;
        }
    }
    /* Before the slowest first run can have happened, the agent is healthy by definition. */
    if (any_enabled && !any_ok && now - a->started_ms > 5 * 60000) {
        healthy = 0;
    }
    struct rsre_spool_stats sp;
    rsre_spool_stats(a->spool, a->boot_id, &sp);
    struct rsre_stream_stats st = {0};
    if (a->stream) {
        rsre_stream_stats(a->stream, &st);
    }
    size_t n = (size_t)snprintf(
        buf, cap,
        "{\"status\":\"%s\",\"node\":\"%s\",\"boot_id\":\"%s\",\"aggregator_connected\":%s,"
        "\"spool_batches\":%u,\"spool_dropped_batches\":%llu,\"collectors\":[",
        healthy ? "ok" : "unhealthy", a->cfg.node_name, a->boot_id,
        st.connected ? "true" : "false", sp.batches, (unsigned long long)sp.dropped_batches);
    for (size_t i = 0; i < a->ncollectors && n < cap; i++) {
        struct collector_slot *c = &a->collectors[i];
        n += (size_t)snprintf(buf + n, cap - n,
                              "%s{\"name\":\"%s\",\"enabled\":%s,\"runs\":%llu,\"errors\":%llu,"
                              "\"last_rc\":%d}",
                              i ? "," : "", c->desc->name, c->stats.enabled ? "true" : "false",
                              (unsigned long long)c->stats.runs,
                              (unsigned long long)c->stats.errors, c->stats.last_rc);
    }
    if (n < cap) {
        n += (size_t)snprintf(buf + n, cap - n, "]}\n");
    }
    *len = n < cap ? n : cap - 1;
    return healthy;
}

static size_t metrics(struct rsre_agent *a, char *buf, size_t cap) {
    struct rsre_spool_stats sp;
    rsre_spool_stats(a->spool, a->boot_id, &sp);
    struct rsre_stream_stats st = {0};
    if (a->stream) {
        rsre_stream_stats(a->stream, &st);
    }
    size_t n = (size_t)snprintf(
        buf, cap,
        "# TYPE rsre_agent_signals_total counter\nrsre_agent_signals_total %llu\n"
        "# TYPE rsre_agent_batches_total counter\nrsre_agent_batches_total %llu\n"
        "# TYPE rsre_agent_spool_batches gauge\nrsre_agent_spool_batches %u\n"
        "# TYPE rsre_agent_spool_bytes gauge\nrsre_agent_spool_bytes %llu\n"
        "# TYPE rsre_agent_spool_dropped_batches_total counter\n"
        "rsre_agent_spool_dropped_batches_total %llu\n"
        "# TYPE rsre_agent_spool_dropped_signals_total counter\n"
        "rsre_agent_spool_dropped_signals_total %llu\n"
        "# TYPE rsre_agent_stream_connected gauge\nrsre_agent_stream_connected %d\n"
        "# TYPE rsre_agent_stream_connects_total counter\nrsre_agent_stream_connects_total %llu\n"
        "# TYPE rsre_agent_actions_total counter\nrsre_agent_actions_total %llu\n"
        "# TYPE rsre_agent_actions_refused_total counter\nrsre_agent_actions_refused_total %llu\n"
        "# TYPE rsre_agent_collector_runs_total counter\n",
        (unsigned long long)a->signals_emitted, (unsigned long long)a->batches_cut, sp.batches,
        (unsigned long long)sp.bytes, (unsigned long long)sp.dropped_batches,
        (unsigned long long)sp.dropped_signals, st.connected, (unsigned long long)st.connects,
        (unsigned long long)a->actions_run, (unsigned long long)a->actions_refused);
    static const char *const fams[] = {"runs", "errors", "overruns"};
    for (size_t f = 0; f < 3 && n < cap; f++) {
        if (f) {
            n += (size_t)snprintf(buf + n, cap - n, "# TYPE rsre_agent_collector_%s_total counter\n",
                                  fams[f]);
        }
        for (size_t i = 0; i < a->ncollectors && n < cap; i++) {
            const struct rsre_collector_stats *s = &a->collectors[i].stats;
            unsigned long long v = f == 0 ? s->runs : f == 1 ? s->errors : s->overruns;
            n += (size_t)snprintf(buf + n, cap - n,
                                  "rsre_agent_collector_%s_total{collector=\"%s\"} %llu\n", fams[f],
                                  s->name, v);
        }
    }
    for (size_t i = 0; i < a->ncollectors && n < cap; i++) {
        const struct rsre_collector_stats *s = &a->collectors[i].stats;
        n += (size_t)snprintf(buf + n, cap - n,
                              "rsre_agent_collector_last_duration_seconds{collector=\"%s\"} %.6f\n",
                              s->name, (double)s->last_duration_us / 1e6);
    }
    return n < cap ? n : cap - 1;
}

static void respond(struct hconn *c) {
    char *body = malloc(RESP_MAX);
    c->resp = malloc(RESP_MAX + 256);
    if (!body || !c->resp) {
        free(body);
        conn_close(c);
        return;
    }
    int code = 200;
    const char *ctype = "application/json";
    size_t blen = 0;
    if (!strncmp(c->req, "GET /healthz ", 13) || !strncmp(c->req, "GET /livez ", 11)) {
        code = rsre__health_report(c->a, body, RESP_MAX, &blen) ? 200 : 503;
    } else if (!strncmp(c->req, "GET /metrics ", 13)) {
        ctype = "text/plain; version=0.0.4";
        blen = metrics(c->a, body, RESP_MAX);
    } else if (!strncmp(c->req, "GET ", 4)) {
        code = 404;
        blen = (size_t)snprintf(body, RESP_MAX, "{\"error\":\"not found\"}\n");
    } else {
        code = 400;
        blen = (size_t)snprintf(body, RESP_MAX, "{\"error\":\"bad request\"}\n");
    }
    int h = snprintf(c->resp, 256, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                   "Connection: close\r\n\r\n",
                     code, code == 200 ? "OK" : code == 503 ? "Service Unavailable"
                                                : code == 404 ? "Not Found" : "Bad Request",
                     ctype, blen);
    memcpy(c->resp + h, body, blen);
    free(body);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)(h + (int)blen));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    struct hconn *c = h->data;
    buf->base = c->req + c->len;
    buf->len = REQ_MAX - 1 - c->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    struct hconn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") || c->len >= REQ_MAX - 1) {
        uv_read_stop(s);
        respond(c);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    struct rsre_agent *a = server->data;
    if (status < 0) {
        return;
    }
    struct hconn *c = calloc(1, sizeof(*c));
    if (!c) {
        return;
    }
    c->a = a;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = conns;
    if (conns) {
        conns->pprev = &c->next;
    }
    conns = c;
    c->pprev = &conns;
    nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) || nconns > MAX_CONNS ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_conn_timeout, CONN_TIMEOUT_MS, 0);
}

int rsre__health_start(struct rsre_agent *a) {
    char host[64];
    snprintf(host, sizeof(host), "%s", a->cfg.health_addr);
    char *colon = strrchr(host, ':');
    if (!colon) {
        return RSRE_EINVALID;
    }
    *colon = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)) {
        return RSRE_EINVALID;
    }
    uv_tcp_init(a->loop, &a->health);
    a->health.data = a;
    a->health_open = 1;
    int rc = uv_tcp_bind(&a->health, (struct sockaddr *)&ss, 0);
    if (!rc) {
        rc = uv_listen((uv_stream_t *)&a->health, 16, on_connection);
    }
    if (rc) {
        return rc; /* the handle is closed with the agent */
    }
    RSRE_LOG(RSRE_LOG_INFO, "agent", "health endpoint http://%s/healthz", a->cfg.health_addr);
    return 0;
}

void rsre__health_stop(struct rsre_agent *a) {
    (void)a; /* the listener is closed with the agent's other handles */
    while (conns) {
        conn_close(conns);
    }
}
