/*
 * Wire formats of the chat transports as pure functions: the Telegram Bot API
 * (https://core.telegram.org/bots/api: sendMessage, editMessageText, getUpdates, Update,
 * CallbackQuery, the {"ok":false,"error_code","description","parameters"} error shape) and the
 * WhatsApp Cloud API (POST /{version}/{phone-number-id}/messages, its {"error":{...}} shape and
 * the webhook's entry[].changes[].value with messages[] and statuses[]).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "notify/chat_internal.h"

/* ---- small JSON helpers ---------------------------------------------------------------------- */

/* Copies a JSON string of at most cap-1 bytes; 0 when absent, not a string, empty or longer. */
static int jstr(json_t *o, const char *key, char *dst, size_t cap) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        return 0;
    }
    size_t n = json_string_length(v);
    if (n == 0 || n >= cap || memchr(json_string_value(v), '\0', n)) {
        return 0;
    }
    memcpy(dst, json_string_value(v), n + 1);
    return 1;
}

/* An integer id as decimal text. */
static int jid(json_t *o, const char *key, char *dst, size_t cap) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        return 0;
    }
    snprintf(dst, cap, "%" PRId64, (int64_t)json_integer_value(v));
    return 1;
}

/* A decimal int64 (optional leading '-'), the whole string. */
static int parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || (s[0] != '-' && (s[0] < '0' || s[0] > '9'))) {
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

static int is_http_url(const char *u) {
    return u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0) &&
           strlen(u) < 2048 && !strpbrk(u, " \r\n\t");
}

static int dump(json_t *doc, char **out) {
    if (!doc) {
        return -ENOMEM;
    }
    *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return *out ? 0 : -ENOMEM;
}

static void fill_error(struct rsre_send_result *r, const char *a, const char *b) {
    char tmp[1024];
    int n = snprintf(tmp, sizeof(tmp), "%s%s%s", a ? a : "", (a && a[0] && b && b[0]) ? ": " : "",
                     b ? b : "");
    (void)n; /* longer texts are cut below */
    rsre__chat_safe_copy(r->error, sizeof(r->error), tmp);
}

static void transport_error(int rc, struct rsre_send_result *r) {
    r->status = RSRE_SEND_TRANSIENT;
    fill_error(r, "transport", rsre_strerror(rc));
}

/* ---- Telegram -------------------------------------------------------------------------------- */

/* Hands update u to fn; 1 when it did, 0 for an update without a valid (non-negative) id. */
static int tg_update(json_t *u, rsre__tg_update_fn fn, void *arg) {
    json_t *idv = json_object_get(u, "update_id");
    if (!json_is_integer(idv) || json_integer_value(idv) < 0) {
        return 0;
    }
    struct rsre__tg_update out;
    memset(&out, 0, sizeof(out));
    out.update_id = (int64_t)json_integer_value(idv);
    json_t *cq = json_object_get(u, "callback_query");
    json_t *msg = json_object_get(u, "message");
    if (json_is_object(cq)) {
        json_t *from = json_object_get(cq, "from");
        json_t *m = json_object_get(cq, "message");
        json_t *chat = json_object_get(m, "chat");
        if (jstr(cq, "id", out.query_id, sizeof(out.query_id)) &&
            jstr(cq, "data", out.payload, sizeof(out.payload)) &&
            jid(from, "id", out.user, sizeof(out.user)) &&
            jid(m, "message_id", out.message_id, sizeof(out.message_id)) &&
            jid(chat, "id", out.chat, sizeof(out.chat))) {
            out.kind = RSRE_TG_CALLBACK;
        }
    } else if (json_is_object(msg)) {
        json_t *from = json_object_get(msg, "from");
        json_t *chat = json_object_get(msg, "chat");
        if (jid(chat, "id", out.chat, sizeof(out.chat)) &&
            jid(msg, "message_id", out.message_id, sizeof(out.message_id))) {
            if (!jid(from, "id", out.user, sizeof(out.user))) {
                out.user[0] = '\0'; /* channel posts have no sender */
            }
            out.kind = RSRE_TG_MESSAGE;
        }
    }
    if (out.kind == 0) {
        memset(&out, 0, sizeof(out));
        out.update_id = (int64_t)json_integer_value(idv);
    }
    fn(arg, &out);
    return 1;
}

int rsre__tg_parse_updates(const char *body, size_t len, rsre__tg_update_fn fn, void *arg) {
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je);
    json_t *res = json_object_get(doc, "result");
    if (!json_is_true(json_object_get(doc, "ok")) || !json_is_array(res)) {
        json_decref(doc);
        return RSRE_EPARSE;
    }
    int n = 0;
    size_t i;
    json_t *u;
    json_array_foreach(res, i, u) {
        if (json_is_object(u)) {
            n += tg_update(u, fn, arg);
        }
    }
    json_decref(doc);
    return n;
}

int rsre__tg_parse_update(const char *body, size_t len, rsre__tg_update_fn fn, void *arg) {
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je);
    if (!json_is_object(doc) || !json_is_integer(json_object_get(doc, "update_id")) ||
        json_integer_value(json_object_get(doc, "update_id")) < 0) {
        json_decref(doc);
        return RSRE_EPARSE;
    }
    tg_update(doc, fn, arg);
    json_decref(doc);
    return 1;
}

/* chat_id: an integer id, or "@channelusername". */
static json_t *tg_chat_id(const char *chat) {
    int64_t id;
    if (parse_i64(chat, &id)) {
        return json_integer((json_int_t)id);
    }
    if (chat && chat[0] == '@' && strlen(chat) >= 2 && strlen(chat) <= 33) {
        for (const char *p = chat + 1; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_')) {
                return NULL;
            }
        }
        return json_string(chat);
    }
    return NULL;
}

/* inline_keyboard: the callback buttons on one row, URL buttons on the next. */
static json_t *tg_keyboard(const struct rsre_chat_message *m) {
    json_t *rows = json_array(), *cb = json_array(), *urls = json_array();
    int bad = !rows || !cb || !urls;
    for (size_t i = 0; !bad && i < m->nbuttons; i++) {
        const struct rsre_chat_button *b = &m->buttons[i];
        char *label = b->label && b->label[0] ? rsre__chat_clip(b->label, 64, 1) : NULL;
        json_t *btn = NULL;
        if (!label) {
            bad = 1;
        } else if (b->payload) {
            size_t n = strlen(b->payload);
            if (n == 0 || n > RSRE_TG_DATA_MAX) {
                bad = 1;
            } else {
                btn = json_pack("{s:s, s:s}", "text", label, "callback_data", b->payload);
                bad = !btn || json_array_append_new(cb, btn) != 0;
            }
        } else if (is_http_url(b->url)) {
            btn = json_pack("{s:s, s:s}", "text", label, "url", b->url);
            bad = !btn || json_array_append_new(urls, btn) != 0;
        } else {
            bad = 1;
        }
        free(label);
    }
    if (!bad && json_array_size(cb) > 0) {
        bad = json_array_append(rows, cb) != 0;
    }
    if (!bad && json_array_size(urls) > 0) {
        bad = json_array_append(rows, urls) != 0;
    }
    json_decref(cb);
    json_decref(urls);
    if (bad) {
        json_decref(rows);
        return NULL;
    }
    return json_pack("{s:o}", "inline_keyboard", rows);
}

int rsre__tg_build_message(const struct rsre_chat_message *m, char **out) {
    *out = NULL;
    if (!m || !m->text || m->nbuttons > 3 || (m->nbuttons && !m->buttons)) {
        return -EINVAL;
    }
    json_t *chat = tg_chat_id(m->chat);
    if (!chat) {
        return -EINVAL;
    }
    json_t *doc = json_object();
    char *text = rsre__chat_clip(m->text, RSRE_TG_TEXT_UNITS, 1);
    if (!doc || !text || json_object_set_new(doc, "chat_id", chat) != 0) {
        json_decref(doc);
        free(text);
        return -ENOMEM;
    }
    int rc = 0;
    if (text[0] == '\0') {
        rc = -EINVAL;
    } else if (json_object_set_new(doc, "text", json_string(text)) != 0) {
        rc = -ENOMEM;
    }
    free(text);
    int64_t mid;
    if (rc == 0 && m->edit_ref) {
        if (!parse_i64(m->edit_ref, &mid) || mid <= 0) {
            rc = -EINVAL;
        } else if (json_object_set_new(doc, "message_id", json_integer((json_int_t)mid)) != 0) {
            rc = -ENOMEM;
        }
    }
    if (rc == 0 && m->nbuttons > 0) {
        json_t *kb = tg_keyboard(m);
        if (!kb) {
            rc = -EINVAL;
        } else if (json_object_set_new(doc, "reply_markup", kb) != 0) {
            rc = -ENOMEM;
        }
    }
    if (rc != 0) {
        json_decref(doc);
        return rc;
    }
    return dump(doc, out);
}

/* Error replies that are not "our request was wrong": rows matched in order on error_code and
 * a description prefix (NULL = any). Everything else: 5xx transient, other 4xx rejected. */
static const struct tg_rule {
    long code;
    const char *prefix;
    enum rsre_send_status status;
} tg_rules[] = {
    {429, NULL, RSRE_SEND_RETRY},
    /* Every 403 of the Bot API concerns the chat: "bot was blocked by the user", "bot was
     * kicked from the group chat", "user is deactivated", "bot can't initiate conversation
     * with a user", "bot is not a member of the channel chat". */
    {403, NULL, RSRE_SEND_CHAT_FAILED},
    {400, "Bad Request: chat not found", RSRE_SEND_CHAT_FAILED},
    {400, "Bad Request: group chat was upgraded to a supergroup chat", RSRE_SEND_CHAT_FAILED},
    {400, "Bad Request: have no rights to send a message", RSRE_SEND_CHAT_FAILED},
    {400, "Bad Request: not enough rights to send text messages", RSRE_SEND_CHAT_FAILED},
    /* An edit that changes nothing has the state we asked for. */
    {400, "Bad Request: message is not modified", RSRE_SEND_OK},
};

void rsre__tg_classify(int rc, long status, const char *body, size_t len, const char *edit_ref,
                       struct rsre_send_result *r) {
    memset(r, 0, sizeof(*r));
    r->http_status = (int)status;
    if (rc != 0) {
        transport_error(rc, r);
        return;
    }
    json_error_t je;
    json_t *doc = len > 0 ? json_loadb(body, len, 0, &je) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        if (status >= 500 || status == 0) {
            r->status = RSRE_SEND_TRANSIENT;
            fill_error(r, "HTTP error without a Bot API reply", NULL);
        } else if (status == 429) {
            r->status = RSRE_SEND_RETRY;
            r->retry_after_ms = 1000;
            fill_error(r, "HTTP 429 without a Bot API reply", NULL);
        } else if (status >= 200 && status < 300) {
            r->status = RSRE_SEND_TRANSIENT;
            fill_error(r, "malformed Bot API reply", je.text);
        } else {
            r->status = status == 403 ? RSRE_SEND_CHAT_FAILED : RSRE_SEND_REJECTED;
            fill_error(r, "HTTP error without a Bot API reply", NULL);
        }
        return;
    }
    if (json_is_true(json_object_get(doc, "ok")) && status >= 200 && status < 300) {
        json_t *res = json_object_get(doc, "result");
        json_t *mid = json_object_get(res, "message_id");
        if (json_is_integer(mid) && json_integer_value(mid) > 0) {
            r->status = RSRE_SEND_OK;
            snprintf(r->message_id, sizeof(r->message_id), "%" PRId64,
                     (int64_t)json_integer_value(mid));
        } else if (edit_ref && json_is_true(res)) {
            r->status = RSRE_SEND_OK; /* inline messages answer `true` */
            rsre__chat_safe_copy(r->message_id, sizeof(r->message_id), edit_ref);
        } else {
            r->status = RSRE_SEND_TRANSIENT;
            fill_error(r, "malformed Bot API reply", "result without message_id");
        }
        json_decref(doc);
        return;
    }
    json_t *codev = json_object_get(doc, "error_code");
    long code = json_is_integer(codev) ? (long)json_integer_value(codev) : status;
    const char *desc = json_string_value(json_object_get(doc, "description"));
    r->api_code = code;
    fill_error(r, desc ? desc : "Bot API error without description", NULL);
    if (status >= 500 || code >= 500) {
        r->status = RSRE_SEND_TRANSIENT;
    } else {
        r->status = RSRE_SEND_REJECTED;
        for (size_t i = 0; i < sizeof(tg_rules) / sizeof(tg_rules[0]); i++) {
            const struct tg_rule *t = &tg_rules[i];
            if (t->code == code &&
                (!t->prefix || (desc && strncmp(desc, t->prefix, strlen(t->prefix)) == 0))) {
                r->status = t->status;
                break;
            }
        }
        if (r->status == RSRE_SEND_OK) {
            if (!edit_ref) {
                r->status = RSRE_SEND_REJECTED;
            } else {
                rsre__chat_safe_copy(r->message_id, sizeof(r->message_id), edit_ref);
                r->error[0] = '\0';
            }
        }
    }
    json_t *params = json_object_get(doc, "parameters");
    if (r->status == RSRE_SEND_RETRY) {
        json_t *ra = json_object_get(params, "retry_after");
        json_int_t s = json_is_integer(ra) ? json_integer_value(ra) : 1;
        if (s < 0) {
            s = 0;
        } else if (s > 3600) {
            s = 3600;
        }
        r->retry_after_ms = (int64_t)s * 1000;
    }
    json_t *mig = json_object_get(params, "migrate_to_chat_id");
    if (json_is_integer(mig) && r->status != RSRE_SEND_TRANSIENT) {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "migrate_to_chat_id=%" PRId64, (int64_t)json_integer_value(mig));
        char msg[sizeof(r->error)];
        snprintf(msg, sizeof(msg), "%s", r->error);
        fill_error(r, msg, tmp);
        r->status = RSRE_SEND_CHAT_FAILED; /* the chat moved, whatever else the reply says */
        r->message_id[0] = '\0';
    }
    json_decref(doc);
}

/* ---- WhatsApp -------------------------------------------------------------------------------- */

/* Error codes (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)
 * that are not "our request was wrong". The Cloud API sends no Retry-After: the waits are the
 * documented windows (131056: one message per 6 s to the same user). */
static const struct wa_rule {
    long code;
    enum rsre_send_status status;
    int64_t retry_after_ms;
} wa_rules[] = {
    {131047, RSRE_SEND_CHAT_FAILED, 0}, /* more than 24 h since the user last replied */
    {131026, RSRE_SEND_CHAT_FAILED, 0}, /* message undeliverable */
    {131030, RSRE_SEND_CHAT_FAILED, 0}, /* recipient not in the allowed list (test number) */
    {131049, RSRE_SEND_CHAT_FAILED, 0}, /* not delivered to maintain healthy ecosystem */
    {131050, RSRE_SEND_CHAT_FAILED, 0}, /* user stopped marketing messages */
    {130429, RSRE_SEND_RETRY, 1000},    /* throughput limit */
    {131056, RSRE_SEND_RETRY, 6000},    /* pair rate limit */
    {131048, RSRE_SEND_RETRY, 60000},   /* spam rate limit */
    {80007, RSRE_SEND_RETRY, 60000},    /* WABA rate limit */
    {4, RSRE_SEND_RETRY, 60000},        /* application request limit */
    {130472, RSRE_SEND_CHAT_FAILED, 0}, /* user's number is part of an experiment */
    {131000, RSRE_SEND_TRANSIENT, 0},   /* something went wrong */
    {131016, RSRE_SEND_TRANSIENT, 0},   /* service unavailable */
    {1, RSRE_SEND_TRANSIENT, 0},        /* API unknown */
    {2, RSRE_SEND_TRANSIENT, 0},        /* API service */
    {190, RSRE_SEND_REJECTED, 0},       /* access token expired or invalid */
};

int rsre__wa_code_status(long code, int64_t *retry_after_ms) {
    for (size_t i = 0; i < sizeof(wa_rules) / sizeof(wa_rules[0]); i++) {
        if (wa_rules[i].code == code) {
            *retry_after_ms = wa_rules[i].retry_after_ms;
            return (int)wa_rules[i].status;
        }
    }
    return -1;
}

/* Fills error text and code from a Graph API error object ({"message","code","error_data":
 * {"details"}} or a webhook errors[] element {"code","title","message","error_data"}). */
static long wa_error_fields(json_t *e, struct rsre_send_result *r) {
    json_t *codev = json_object_get(e, "code");
    long code = json_is_integer(codev) ? (long)json_integer_value(codev) : 0;
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!msg) {
        msg = json_string_value(json_object_get(e, "title"));
    }
    const char *details =
        json_string_value(json_object_get(json_object_get(e, "error_data"), "details"));
    r->api_code = code;
    if (msg && details && strcmp(msg, details) == 0) {
        details = NULL;
    }
    fill_error(r, msg ? msg : "Graph API error without message", details);
    return code;
}

void rsre__wa_classify(int rc, long status, const char *body, size_t len,
                       struct rsre_send_result *r) {
    memset(r, 0, sizeof(*r));
    r->http_status = (int)status;
    if (rc != 0) {
        transport_error(rc, r);
        return;
    }
    json_error_t je;
    json_t *doc = len > 0 ? json_loadb(body, len, 0, &je) : NULL;
    json_t *err = json_object_get(doc, "error");
    if (status >= 200 && status < 300 && json_is_object(doc) && !err) {
        json_t *m0 = json_array_get(json_object_get(doc, "messages"), 0);
        char id[RSRE_WA_WAMID_MAX + 1];
        if (jstr(m0, "id", id, sizeof(id))) {
            r->status = RSRE_SEND_OK;
            rsre__chat_safe_copy(r->message_id, sizeof(r->message_id), id);
        } else {
            r->status = RSRE_SEND_TRANSIENT;
            fill_error(r, "malformed Cloud API reply", "no messages[0].id");
        }
        json_decref(doc);
        return;
    }
    if (!json_is_object(err)) {
        r->status = (status == 0 || status >= 500 || (status >= 200 && status < 300))
                        ? RSRE_SEND_TRANSIENT
                    : status == 429 ? RSRE_SEND_RETRY
                                    : RSRE_SEND_REJECTED;
        if (r->status == RSRE_SEND_RETRY) {
            r->retry_after_ms = 1000;
        }
        fill_error(r, doc ? "Cloud API error without error object" : "malformed Cloud API reply",
                   doc ? NULL : je.text);
        json_decref(doc);
        return;
    }
    long code = wa_error_fields(err, r);
    int st = rsre__wa_code_status(code, &r->retry_after_ms);
    if (st >= 0) {
        r->status = (enum rsre_send_status)st;
    } else if (status >= 500) {
        r->status = RSRE_SEND_TRANSIENT;
    } else if (status == 429) {
        r->status = RSRE_SEND_RETRY;
        r->retry_after_ms = 1000;
    } else {
        r->status = RSRE_SEND_REJECTED;
    }
    json_decref(doc);
}

static int wa_number(const char *s, char *dst, size_t cap) {
    if (!s) {
        return 0;
    }
    if (*s == '+') {
        s++;
    }
    size_t n = strlen(s);
    if (n < 6 || n > RSRE_WA_NUMBER_MAX || n >= cap || strspn(s, "0123456789") != n) {
        return 0;
    }
    memcpy(dst, s, n + 1);
    return 1;
}

static void wa_message(json_t *v, json_t *msg, rsre__wa_event_fn fn, void *arg) {
    (void)v;
    struct rsre__wa_event e;
    memset(&e, 0, sizeof(e));
    e.kind = RSRE_WA_ACTION;
    const char *type = json_string_value(json_object_get(msg, "type"));
    char from[64];
    if (!type || !jstr(msg, "from", from, sizeof(from)) ||
        !wa_number(from, e.from, sizeof(e.from)) ||
        !jstr(msg, "id", e.message_id, sizeof(e.message_id))) {
        return;
    }
    if (!jstr(json_object_get(msg, "context"), "id", e.context_id, sizeof(e.context_id))) {
        e.context_id[0] = '\0';
    }
    int ok = 0;
    if (strcmp(type, "interactive") == 0) {
        json_t *in = json_object_get(msg, "interactive");
        const char *it = json_string_value(json_object_get(in, "type"));
        ok = it && strcmp(it, "button_reply") == 0 &&
             jstr(json_object_get(in, "button_reply"), "id", e.payload, sizeof(e.payload));
    } else if (strcmp(type, "button") == 0) {
        ok = jstr(json_object_get(msg, "button"), "payload", e.payload, sizeof(e.payload));
    }
    if (ok) {
        fn(arg, &e);
    }
}

static void wa_status(json_t *st, rsre__wa_event_fn fn, void *arg) {
    const char *s = json_string_value(json_object_get(st, "status"));
    if (!s || strcmp(s, "failed") != 0) {
        return;
    }
    struct rsre__wa_event e;
    memset(&e, 0, sizeof(e));
    e.kind = RSRE_WA_FAILED;
    char rcpt[64];
    if (!jstr(st, "id", e.message_id, sizeof(e.message_id)) ||
        !jstr(st, "recipient_id", rcpt, sizeof(rcpt)) ||
        !wa_number(rcpt, e.recipient, sizeof(e.recipient))) {
        return;
    }
    json_t *err = json_array_get(json_object_get(st, "errors"), 0);
    long code = json_is_object(err) ? wa_error_fields(err, &e.result) : 0;
    if (!json_is_object(err)) {
        fill_error(&e.result, "delivery failed", "no errors[] in the status");
    }
    int c = rsre__wa_code_status(code, &e.result.retry_after_ms);
    /* A failed delivery with a code we do not know still means this chat was not reached. */
    e.result.status = (c < 0 || c == RSRE_SEND_OK || c == RSRE_SEND_REJECTED)
                          ? RSRE_SEND_CHAT_FAILED
                          : (enum rsre_send_status)c;
    rsre__chat_safe_copy(e.result.message_id, sizeof(e.result.message_id), e.message_id);
    fn(arg, &e);
}

int rsre__wa_parse_webhook(const char *body, size_t len, const char *phone_number_id,
                           rsre__wa_event_fn fn, void *arg) {
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je);
    const char *obj = json_string_value(json_object_get(doc, "object"));
    json_t *entries = json_object_get(doc, "entry");
    if (!obj || strcmp(obj, "whatsapp_business_account") != 0 || !json_is_array(entries)) {
        json_decref(doc);
        return RSRE_EPARSE;
    }
    int n = 0;
    size_t i, j, k;
    json_t *ent, *ch, *x;
    json_array_foreach(entries, i, ent) {
        json_t *changes = json_object_get(ent, "changes");
        if (!json_is_array(changes)) {
            continue;
        }
        json_array_foreach(changes, j, ch) {
            const char *field = json_string_value(json_object_get(ch, "field"));
            json_t *v = json_object_get(ch, "value");
            if (!field || strcmp(field, "messages") != 0 || !json_is_object(v)) {
                continue;
            }
            const char *pid = json_string_value(
                json_object_get(json_object_get(v, "metadata"), "phone_number_id"));
            if (phone_number_id && phone_number_id[0] &&
                (!pid || strcmp(pid, phone_number_id) != 0)) {
                continue;
            }
            json_t *msgs = json_object_get(v, "messages");
            if (json_is_array(msgs)) {
                json_array_foreach(msgs, k, x) {
                    wa_message(v, x, fn, arg);
                    n++;
                }
            }
            json_t *sts = json_object_get(v, "statuses");
            if (json_is_array(sts)) {
                json_array_foreach(sts, k, x) {
                    wa_status(x, fn, arg);
                    n++;
                }
            }
        }
    }
    json_decref(doc);
    return n;
}

int rsre__wa_build_message(const struct rsre_chat_message *m, char **out) {
    *out = NULL;
    char to[RSRE_WA_NUMBER_MAX + 1];
    if (!m || !m->text || m->nbuttons > 3 || (m->nbuttons && !m->buttons) ||
        !wa_number(m->chat, to, sizeof(to))) {
        return -EINVAL;
    }
    if (m->edit_ref && (!m->edit_ref[0] || strlen(m->edit_ref) > RSRE_WA_WAMID_MAX)) {
        return -EINVAL;
    }
    /* URL buttons become lines of the body; reply buttons keep their payload as id. */
    size_t nreply = 0, extra = 0;
    for (size_t i = 0; i < m->nbuttons; i++) {
        const struct rsre_chat_button *b = &m->buttons[i];
        if (!b->label || !b->label[0]) {
            return -EINVAL;
        }
        if (b->payload) {
            size_t n = strlen(b->payload);
            if (n == 0 || n > RSRE_WA_PAYLOAD_MAX) {
                return -EINVAL;
            }
            nreply++;
        } else if (is_http_url(b->url)) {
            extra += strlen(b->label) + strlen(b->url) + 4;
        } else {
            return -EINVAL;
        }
    }
    char *suffix = malloc(extra + 1);
    if (!suffix) {
        return -ENOMEM;
    }
    suffix[0] = '\0';
    size_t slen = 0;
    for (size_t i = 0; i < m->nbuttons; i++) {
        const struct rsre_chat_button *b = &m->buttons[i];
        if (!b->payload) {
            slen += (size_t)snprintf(suffix + slen, extra + 1 - slen, "\n%s: %s", b->label, b->url);
        }
    }
    size_t limit = nreply ? RSRE_WA_BODY_MAX : RSRE_WA_TEXT_MAX;
    char *suf = rsre__chat_clip(suffix, limit / 2, 0);
    free(suffix);
    if (!suf) {
        return -ENOMEM;
    }
    size_t sunits = 0;
    for (const unsigned char *p = (const unsigned char *)suf; *p; p++) {
        sunits += (*p & 0xc0) != 0x80;
    }
    char *text = rsre__chat_clip(m->text, limit - sunits, 0);
    char *full = text ? malloc(strlen(text) + strlen(suf) + 1) : NULL;
    if (!full) {
        free(text);
        free(suf);
        return -ENOMEM;
    }
    strcpy(full, text);
    strcat(full, suf);
    free(text);
    free(suf);
    if (full[0] == '\0') {
        free(full);
        return -EINVAL;
    }
    json_t *doc = json_pack("{s:s, s:s, s:s}", "messaging_product", "whatsapp", "recipient_type",
                            "individual", "to", to);
    int bad = !doc;
    if (!bad && nreply == 0) {
        bad = json_object_set_new(doc, "type", json_string("text")) != 0 ||
              json_object_set_new(doc, "text",
                                  json_pack("{s:s, s:b}", "body", full, "preview_url", 0)) != 0;
    } else if (!bad) {
        json_t *btns = json_array();
        bad = !btns;
        for (size_t i = 0; !bad && i < m->nbuttons; i++) {
            const struct rsre_chat_button *b = &m->buttons[i];
            if (!b->payload) {
                continue;
            }
            char *title = rsre__chat_clip(b->label, RSRE_WA_TITLE_MAX, 0);
            json_t *bt = title ? json_pack("{s:s, s:{s:s, s:s}}", "type", "reply", "reply", "id",
                                           b->payload, "title", title)
                               : NULL;
            free(title);
            bad = !bt || json_array_append_new(btns, bt) != 0;
        }
        json_t *inter = bad ? NULL
                            : json_pack("{s:s, s:{s:s}, s:{s:o}}", "type", "button", "body", "text",
                                        full, "action", "buttons", btns);
        if (!inter) {
            if (!bad) {
                btns = NULL; /* json_pack steals it even on failure */
            }
            json_decref(btns);
            bad = 1;
        } else {
            bad = json_object_set_new(doc, "type", json_string("interactive")) != 0 ||
                  json_object_set_new(doc, "interactive", inter) != 0;
        }
    }
    free(full);
    if (!bad && m->edit_ref) {
        bad =
            json_object_set_new(doc, "context", json_pack("{s:s}", "message_id", m->edit_ref)) != 0;
    }
    if (bad) {
        json_decref(doc);
        return -EINVAL;
    }
    return dump(doc, out);
}
