/* Telegram Bot API transport: see telegram.h for the contract. */

#include "notify/telegram.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "common/error.h"
#include "common/log.h"
#include "notify/chat_internal.h"

#define MOD "telegram"
#define TOKEN_MAX 160
#define SECRET_MAX 257 /* setWebhook secret_token: 1-256 characters */
#define POLL_BACKOFF_MAX_MS 30000
#define SEEN_MAX 128      /* webhook update ids remembered */
#define ANSWER_ATTEMPTS 3 /* answerCallbackQuery tries when rate limited */
/* A press answered later than this is of no use (the client gives up on the query): a longer
 * rate-limit wait drops the answer instead. */
#define ANSWER_WAIT_MAX_MS 30000

#define T(f) offsetof(struct rsre_telegram_config, f), sizeof(((struct rsre_telegram_config *)0)->f)
#define U(f) offsetof(struct rsre_telegram_config, f), 0
const struct rsre_chat_config_key rsre_telegram_config_keys[] = {
    {"base_url", 0, T(base_url), "https://api.telegram.org", 0, 0, "Bot API base URL"},
    {"token_file", 0, T(token_file), "", 0, 0, "file holding the bot token from @BotFather"},
    {"token_env", 0, T(token_env), "ROBOT_SRE_TELEGRAM_TOKEN", 0, 0,
     "environment variable holding the bot token when token_file is empty"},
    {"mode", 0, T(mode), "poll", 0, 0, "how button presses arrive: poll (getUpdates) or webhook"},
    {"webhook_secret_file", 0, T(webhook_secret_file), "", 0, 0,
     "file holding setWebhook's secret_token (webhook mode)"},
    {"webhook_secret_env", 0, T(webhook_secret_env), "ROBOT_SRE_TELEGRAM_WEBHOOK_SECRET", 0, 0,
     "environment variable holding the webhook secret when webhook_secret_file is empty"},
    {"timeout_ms", 1, U(timeout_ms), "10000", 100, 120000, "timeout of one API call"},
    {"poll_timeout_s", 1, U(poll_timeout_s), "25", 0, 50, "getUpdates long-poll timeout"},
    {"poll_retry_ms", 1, U(poll_retry_ms), "1000", 10, 30000,
     "first wait after a failed getUpdates (doubles up to 30 s)"},
    {"max_body", 1, U(max_body), "1048576", 4096, 16777216, "largest reply or webhook body"},
};
const size_t rsre_telegram_config_nkeys =
    sizeof(rsre_telegram_config_keys) / sizeof(rsre_telegram_config_keys[0]);
#undef T
#undef U

void rsre_telegram_config_defaults(struct rsre_telegram_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    rsre_chat_config_defaults(rsre_telegram_config_keys, rsre_telegram_config_nkeys, cfg);
}

int rsre_telegram_config_set(struct rsre_telegram_config *cfg, const char *key, const char *value,
                             char *err, size_t errlen) {
    return rsre_chat_config_set(rsre_telegram_config_keys, rsre_telegram_config_nkeys, cfg, key,
                                value, err, errlen);
}

/* ---- state ----------------------------------------------------------------------------------- */

enum op_kind { OP_SEND, OP_EDIT, OP_ANSWER, OP_POLL };

static const char *const op_method[] = {
    [OP_SEND] = "sendMessage",
    [OP_EDIT] = "editMessageText",
    [OP_ANSWER] = "answerCallbackQuery",
    [OP_POLL] = "getUpdates",
};

struct tg;

struct tg_op {
    struct rsre__chat_op op; /* first: request, callback, list links */
    struct tg *t;
    enum op_kind kind;
    char edit_ref[RSRE_TG_ID_MAX];
};

/* What an answerCallbackQuery says, kept to try it again after a rate limit. */
struct tg_answer {
    unsigned attempts; /* made so far */
    char query[RSRE_TG_QUERY_ID_MAX + 1];
    char text[RSRE_TG_ANSWER_MAX * 4 + 4]; /* clipped (UTF-8), "" for none */
};

/* An answerCallbackQuery in flight (freed whole by rsre__chat_ops_abandon: o comes first). */
struct tg_answer_op {
    struct tg_op o;
    struct tg_answer a;
};

/* An answer waiting out a rate limit; freed in its timer's close callback. */
struct tg_answer_wait {
    uv_timer_t timer; /* data: this */
    struct tg *t;
    struct tg_answer a;
    struct tg_answer_wait *prev, *next; /* the channel's list */
};

struct tg {
    struct rsre_channel base; /* first: ops->x(ch) casts back */
    struct rsre_http *http;
    struct rsre_telegram_config cfg;
    int webhook;
    char token[TOKEN_MAX];
    char secret[SECRET_MAX];
    rsre_chat_action_cb action_cb;
    void *action_arg;
    struct rsre__chat_op *ops;      /* in flight, including the poll */
    struct tg_answer_wait *waiting; /* answers waiting out a rate limit */
    struct tg_op *poll;             /* the getUpdates in flight, or NULL */
    uv_timer_t poll_timer;
    uint32_t backoff_ms;
    int64_t offset;         /* next getUpdates offset (0 = none confirmed yet) */
    int64_t seen[SEEN_MAX]; /* webhook update ids, ring */
    size_t nseen, seen_pos;
    int started, closing;
    struct rsre_telegram_stats stats;
};

static void link_op(struct tg *t, struct tg_op *o) {
    rsre__chat_op_link(&t->ops, &o->op);
}

static void unlink_op(struct tg *t, struct tg_op *o) {
    rsre__chat_op_unlink(&t->ops, &o->op);
}

/* Starts one Bot API call with a JSON body. On failure nothing is in flight and o is freed. */
static int call(struct tg *t, struct tg_op *o, const char *json, uint32_t timeout_ms,
                rsre_http_done_cb done) {
    char url[sizeof(t->cfg.base_url) + TOKEN_MAX + 64];
    snprintf(url, sizeof(url), "%s/bot%s/%s", t->cfg.base_url, t->token, op_method[o->kind]);
    struct rsre_http_opts ho = {
        .method = "POST",
        .url = url,
        .headers = {"Content-Type: application/json", "Accept: application/json"},
        .nheaders = 2,
        .body = json,
        .body_len = strlen(json),
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = t->cfg.timeout_ms,
        .max_body = t->cfg.max_body,
        .url_secret = 1,
        .done = done,
        .arg = o,
    };
    int rc = rsre_http_request(t->http, &ho, &o->op.req);
    OPENSSL_cleanse(url, sizeof(url));
    if (rc != 0) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "request not started method=%s err=\"%s\"", op_method[o->kind],
                 rsre_strerror(rc));
        free(o);
        return rc;
    }
    link_op(t, o);
    return 0;
}

/* ---- send / edit ----------------------------------------------------------------------------- */

static void send_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct tg_op *o = arg;
    struct tg *t = o->t;
    struct rsre_send_result r;
    rsre__tg_classify(rc, resp->status, resp->body, resp->body_len,
                      o->kind == OP_EDIT ? o->edit_ref : NULL, &r);
    rsre__chat_retry_after(&r, resp->retry_after_s);
    if (r.status != RSRE_SEND_OK) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "%s failed http=%d code=%ld status=%d err=\"%s\"",
                 op_method[o->kind], r.http_status, r.api_code, (int)r.status, r.error);
    }
    rsre__chat_op_complete(&t->ops, &o->op, &r);
}

static int tg_send(struct rsre_channel *ch, const struct rsre_chat_message *m, rsre_send_cb cb,
                   void *arg) {
    struct tg *t = (struct tg *)ch;
    if (!cb || t->closing) {
        return -EINVAL;
    }
    char *json = NULL;
    int rc = rsre__tg_build_message(m, &json);
    if (rc != 0) {
        return rc;
    }
    struct tg_op *o = calloc(1, sizeof(*o));
    if (!o) {
        free(json);
        return -ENOMEM;
    }
    o->t = t;
    o->kind = m->edit_ref ? OP_EDIT : OP_SEND;
    o->op.cb = cb;
    o->op.arg = arg;
    if (m->edit_ref) {
        snprintf(o->edit_ref, sizeof(o->edit_ref), "%s", m->edit_ref);
    }
    rc = call(t, o, json, t->cfg.timeout_ms, send_done);
    free(json);
    return rc;
}

/* ---- answerCallbackQuery --------------------------------------------------------------------- */

static int answer_start(struct tg *t, const struct tg_answer *a);

static void wait_closed(uv_handle_t *h) {
    free(h->data);
}

static void wait_unlink(struct tg *t, struct tg_answer_wait *w) {
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        t->waiting = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    w->prev = w->next = NULL;
}

static void wait_done(uv_timer_t *h) {
    struct tg_answer_wait *w = h->data;
    struct tg *t = w->t;
    wait_unlink(t, w);
    if (!t->closing) {
        int rc = answer_start(t, &w->a);
        if (rc != 0) {
            RSRE_LOG(RSRE_LOG_WARN, MOD, "answerCallbackQuery dropped: retry not started: %s",
                     rsre_strerror(rc));
        }
    }
    uv_close((uv_handle_t *)&w->timer, wait_closed);
}

/* Waits `ms` (the rate limit's retry_after) before trying answer `a` again. */
static void answer_wait(struct tg *t, const struct tg_answer *a, int64_t ms) {
    struct tg_answer_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "answerCallbackQuery dropped: out of memory");
        return;
    }
    w->t = t;
    w->a = *a;
    uv_timer_init(rsre_http_loop(t->http), &w->timer);
    w->timer.data = w;
    w->next = t->waiting;
    if (t->waiting) {
        t->waiting->prev = w;
    }
    t->waiting = w;
    uv_timer_start(&w->timer, wait_done, (uint64_t)ms, 0);
}

/* A rate-limited answer (429) is tried again after retry_after (at least 1 s) while that keeps
 * it useful (ANSWER_WAIT_MAX_MS) and ANSWER_ATTEMPTS are not used up; anything else is
 * logged and dropped (the vote itself is recorded either way). */
static void answer_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct tg_answer_op *ao = arg;
    struct tg *t = ao->o.t;
    unlink_op(t, &ao->o);
    /* answerCallbackQuery answers {"ok":true,"result":true}, not a Message. */
    json_error_t je;
    json_t *doc = rc == 0 ? json_loadb(resp->body, resp->body_len, 0, &je) : NULL;
    int ok = resp->status == 200 && json_is_true(json_object_get(doc, "ok"));
    json_decref(doc);
    if (!ok) {
        struct rsre_send_result r;
        rsre__tg_classify(rc, resp->status, resp->body, resp->body_len, NULL, &r);
        rsre__chat_retry_after(&r, resp->retry_after_s);
        int again = r.status == RSRE_SEND_RETRY && ao->a.attempts < ANSWER_ATTEMPTS &&
                    r.retry_after_ms <= ANSWER_WAIT_MAX_MS && !t->closing;
        RSRE_LOG(RSRE_LOG_WARN, MOD,
                 "answerCallbackQuery failed http=%d code=%ld err=\"%s\" attempt=%u %s%" PRId64,
                 r.http_status, r.api_code, r.error, ao->a.attempts,
                 again ? "retry_in_ms=" : "dropped retry_after_ms=", r.retry_after_ms);
        if (again) {
            answer_wait(t, &ao->a, r.retry_after_ms);
        }
    }
    free(ao);
}

/* Starts answerCallbackQuery for `a` (attempt a->attempts + 1). */
static int answer_start(struct tg *t, const struct tg_answer *a) {
    json_t *doc = json_pack("{s:s}", "callback_query_id", a->query);
    if (doc && a->text[0]) {
        json_object_set_new(doc, "text", json_string(a->text));
    }
    char *json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!json) {
        return -EINVAL;
    }
    struct tg_answer_op *ao = calloc(1, sizeof(*ao));
    if (!ao) {
        free(json);
        return -ENOMEM;
    }
    ao->o.t = t;
    ao->o.kind = OP_ANSWER;
    ao->a = *a;
    ao->a.attempts++;
    int rc = call(t, &ao->o, json, t->cfg.timeout_ms, answer_done);
    free(json);
    return rc;
}

static int tg_ack(struct rsre_channel *ch, const struct rsre_chat_action *a, const char *text) {
    struct tg *t = (struct tg *)ch;
    if (!a || !a->ack_ref || !a->ack_ref[0] || strlen(a->ack_ref) > RSRE_TG_QUERY_ID_MAX ||
        t->closing) {
        return -EINVAL;
    }
    struct tg_answer ans = {.attempts = 0};
    snprintf(ans.query, sizeof(ans.query), "%s", a->ack_ref);
    char *clipped = text && text[0] ? rsre__chat_clip(text, RSRE_TG_ANSWER_MAX, 1) : NULL;
    if (text && text[0] && !clipped) {
        return -ENOMEM;
    }
    if (clipped) {
        snprintf(ans.text, sizeof(ans.text), "%s", clipped);
    }
    free(clipped);
    return answer_start(t, &ans);
}

/* ---- updates (poll and webhook) -------------------------------------------------------------- */

static void deliver(struct tg *t, const struct rsre__tg_update *u) {
    t->stats.updates++;
    if (u->kind == RSRE_TG_MESSAGE) {
        RSRE_LOG(RSRE_LOG_INFO, MOD, "message received chat_id=%s from_id=%s (not an action)",
                 u->chat, u->user[0] ? u->user : "-");
        return;
    }
    if (u->kind != RSRE_TG_CALLBACK || !t->action_cb) {
        return;
    }
    struct rsre_chat_action a = {
        .channel = "telegram",
        .user = u->user,
        .chat = u->chat,
        .payload = u->payload,
        .ack_ref = u->query_id,
        .message_ref = u->message_id,
    };
    t->stats.actions++;
    t->action_cb(t->action_arg, &a);
}

struct poll_ctx {
    struct tg *t;
    int64_t max_id;
};

static void poll_update(void *arg, const struct rsre__tg_update *u) {
    struct poll_ctx *p = arg;
    /* Updates below the confirmed offset were already handled (a server repeating itself). */
    if (p->t->offset > 0 && u->update_id < p->t->offset) {
        return;
    }
    if (u->update_id > p->max_id) {
        p->max_id = u->update_id;
    }
    deliver(p->t, u);
}

static void poll_schedule(struct tg *t, uint64_t delay_ms);

static void poll_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct tg_op *o = arg;
    struct tg *t = o->t;
    unlink_op(t, o);
    t->poll = NULL;
    free(o);
    t->stats.polls++;
    uint64_t delay = 0;
    int n = RSRE_EPARSE;
    if (rc == 0 && resp->status == 200) {
        struct poll_ctx p = {.t = t, .max_id = -1};
        n = rsre__tg_parse_updates(resp->body, resp->body_len, poll_update, &p);
        if (n >= 0 && p.max_id >= 0 && p.max_id + 1 > t->offset) {
            t->offset = p.max_id + 1;
        }
    }
    if (n < 0) {
        struct rsre_send_result r;
        rsre__tg_classify(rc, resp->status, resp->body, resp->body_len, NULL, &r);
        rsre__chat_retry_after(&r, resp->retry_after_s);
        if (rc == -ECANCELED || rc == -ESHUTDOWN) {
            return; /* the client is going away */
        }
        t->stats.poll_failures++;
        delay = t->backoff_ms;
        t->backoff_ms =
            t->backoff_ms * 2 > POLL_BACKOFF_MAX_MS ? POLL_BACKOFF_MAX_MS : t->backoff_ms * 2;
        if (r.status == RSRE_SEND_RETRY && (uint64_t)r.retry_after_ms > delay) {
            delay = (uint64_t)r.retry_after_ms;
        }
        RSRE_LOG(RSRE_LOG_WARN, MOD,
                 "getUpdates failed http=%d code=%ld err=\"%s\" retry_in_ms=%" PRIu64,
                 r.http_status, r.api_code, r.error[0] ? r.error : "malformed reply", delay);
    } else {
        t->backoff_ms = t->cfg.poll_retry_ms;
    }
    t->stats.next_offset = t->offset;
    if (!t->closing) {
        poll_schedule(t, delay);
    }
}

static void poll_start(struct tg *t) {
    if (t->closing || t->poll) {
        return;
    }
    json_t *doc = json_pack("{s:I, s:I, s:i, s:[s,s]}", "offset", (json_int_t)t->offset, "timeout",
                            (json_int_t)t->cfg.poll_timeout_s, "limit", 100, "allowed_updates",
                            "callback_query", "message");
    char *json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    struct tg_op *o = json ? calloc(1, sizeof(*o)) : NULL;
    if (!o) {
        free(json);
        poll_schedule(t, t->backoff_ms);
        return;
    }
    o->t = t;
    o->kind = OP_POLL;
    uint32_t timeout = t->cfg.poll_timeout_s * 1000u + t->cfg.timeout_ms;
    int rc = call(t, o, json, timeout, poll_done);
    free(json);
    if (rc == 0) {
        t->poll = o;
    } else if (rc != -ESHUTDOWN) {
        poll_schedule(t, t->backoff_ms);
    }
}

static void poll_timer_cb(uv_timer_t *h) {
    poll_start(h->data);
}

static void poll_schedule(struct tg *t, uint64_t delay_ms) {
    uv_timer_start(&t->poll_timer, poll_timer_cb, delay_ms, 0);
}

static int tg_start(struct rsre_channel *ch, rsre_chat_action_cb cb, void *arg) {
    struct tg *t = (struct tg *)ch;
    if (!cb || t->closing) {
        return -EINVAL;
    }
    if (t->started) {
        return -EALREADY;
    }
    t->action_cb = cb;
    t->action_arg = arg;
    t->started = 1;
    if (!t->webhook) {
        poll_schedule(t, 0);
    }
    return 0;
}

static void webhook_update(void *arg, const struct rsre__tg_update *u) {
    struct tg *t = arg;
    size_t n = t->nseen < SEEN_MAX ? t->nseen : SEEN_MAX;
    for (size_t i = 0; i < n; i++) {
        if (t->seen[i] == u->update_id) {
            return; /* Telegram re-sends when our answer was late */
        }
    }
    t->seen[t->seen_pos] = u->update_id;
    t->seen_pos = (t->seen_pos + 1) % SEEN_MAX;
    t->nseen++;
    deliver(t, u);
}

int rsre_telegram_webhook(struct rsre_channel *ch, const char *secret_header, const char *body,
                          size_t len) {
    struct tg *t = (struct tg *)ch;
    if (!t || !t->webhook) {
        return 404;
    }
    if (!secret_header || !rsre__chat_secret_eq(t->secret, secret_header, strlen(secret_header))) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "webhook refused: secret token %s",
                 secret_header ? "wrong" : "missing");
        return 401;
    }
    if (len > t->cfg.max_body) {
        return 413;
    }
    if (!t->started || t->closing) {
        return 503;
    }
    if (!body || rsre__tg_parse_update(body, len, webhook_update, t) < 0) {
        return 400;
    }
    return 200;
}

void rsre_telegram_stats(const struct rsre_channel *ch, struct rsre_telegram_stats *out) {
    const struct tg *t = (const struct tg *)ch;
    *out = t->stats;
    out->next_offset = t->offset;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h) {
    struct tg *t = h->data;
    OPENSSL_cleanse(t->token, sizeof(t->token));
    OPENSSL_cleanse(t->secret, sizeof(t->secret));
    free(t);
}

static void tg_destroy(struct rsre_channel *ch) {
    struct tg *t = (struct tg *)ch;
    if (!t || t->closing) {
        return;
    }
    t->closing = 1;
    uv_timer_stop(&t->poll_timer);
    while (t->waiting) {
        struct tg_answer_wait *w = t->waiting;
        wait_unlink(t, w);
        uv_timer_stop(&w->timer);
        uv_close((uv_handle_t *)&w->timer, wait_closed);
    }
    rsre__chat_ops_abandon(&t->ops);
    t->poll = NULL;
    uv_close((uv_handle_t *)&t->poll_timer, timer_closed);
}

static const struct rsre_channel_ops tg_ops = {
    .name = "telegram",
    .send = tg_send,
    .ack = tg_ack,
    .start = tg_start,
    .destroy = tg_destroy,
    .on_delivery = NULL,
};

static int token_ok(const char *s) {
    /* "<bot id>:<secret>", URL-safe characters only (it is a path segment). */
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1]) {
        return 0;
    }
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == ':')) {
            return 0;
        }
    }
    return 1;
}

int rsre_telegram_create(struct rsre_http *http, const struct rsre_telegram_config *cfg,
                         struct rsre_channel **out, char *err, size_t errlen) {
    *out = NULL;
    if (!http || !cfg) {
        snprintf(err, errlen, "telegram: no HTTP client or configuration");
        return -EINVAL;
    }
    const char *bu = cfg->base_url;
    size_t bl = strlen(bu);
    if ((strncmp(bu, "https://", 8) != 0 && strncmp(bu, "http://", 7) != 0) || bl < 9 ||
        bu[bl - 1] == '/' || strpbrk(bu, " \r\n\t?#")) {
        snprintf(err, errlen,
                 "telegram: base_url must be http(s)://host[:port][/path] without a "
                 "trailing slash");
        return RSRE_EINVALID;
    }
    int webhook;
    if (strcmp(cfg->mode, "poll") == 0) {
        webhook = 0;
    } else if (strcmp(cfg->mode, "webhook") == 0) {
        webhook = 1;
    } else {
        snprintf(err, errlen, "telegram: mode must be poll or webhook");
        return RSRE_EINVALID;
    }
    if (cfg->timeout_ms == 0 || cfg->max_body < 4096 || cfg->poll_retry_ms == 0) {
        snprintf(err, errlen, "telegram: timeout_ms, poll_retry_ms and max_body must be set");
        return RSRE_EINVALID;
    }
    struct tg *t = calloc(1, sizeof(*t));
    if (!t) {
        return -ENOMEM;
    }
    char why[256];
    int rc = rsre__chat_read_secret(cfg->token_file, cfg->token_env, t->token, sizeof(t->token),
                                    why, sizeof(why));
    if (rc == 0 && !token_ok(t->token)) {
        snprintf(why, sizeof(why), "not a bot token (<id>:<secret>, letters, digits, _ and -)");
        rc = RSRE_EINVALID;
    }
    if (rc != 0) {
        snprintf(err, errlen, "telegram: bot token: %s", why);
        OPENSSL_cleanse(t->token, sizeof(t->token));
        free(t);
        return rc;
    }
    if (webhook) {
        rc = rsre__chat_read_secret(cfg->webhook_secret_file, cfg->webhook_secret_env, t->secret,
                                    sizeof(t->secret), why, sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "telegram: webhook secret (required in webhook mode): %s", why);
            OPENSSL_cleanse(t->token, sizeof(t->token));
            free(t);
            return rc;
        }
    }
    t->base.ops = &tg_ops;
    t->http = http;
    t->cfg = *cfg;
    t->webhook = webhook;
    t->backoff_ms = cfg->poll_retry_ms;
    uv_timer_init(rsre_http_loop(http), &t->poll_timer);
    t->poll_timer.data = t;
    *out = &t->base;
    return 0;
}
