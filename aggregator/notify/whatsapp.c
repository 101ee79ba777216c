/* WhatsApp Cloud API transport: see whatsapp.h for the contract. */

#include "notify/whatsapp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/error.h"
#include "common/log.h"
#include "notify/chat_internal.h"

#define MOD "whatsapp"
#define SECRET_MAX 512
#define SEEN_MAX 256
#define CHALLENGE_MAX 128

#define T(f) offsetof(struct rsre_whatsapp_config, f), sizeof(((struct rsre_whatsapp_config *)0)->f)
#define U(f) offsetof(struct rsre_whatsapp_config, f), 0
const struct rsre_chat_config_key rsre_whatsapp_config_keys[] = {
    {"base_url", 0, T(base_url), "https://graph.facebook.com", 0, 0, "Graph API base URL"},
    {"api_version", 0, T(api_version), "v19.0", 0, 0, "Graph API version"},
    {"phone_number_id", 0, T(phone_number_id), "", 0, 0,
     "id of the sending phone number (WhatsApp > API Setup)"},
    {"token_file", 0, T(token_file), "", 0, 0, "file holding the access token"},
    {"token_env", 0, T(token_env), "ROBOT_SRE_WHATSAPP_TOKEN", 0, 0,
     "environment variable holding the access token when token_file is empty"},
    {"app_secret_file", 0, T(app_secret_file), "", 0, 0,
     "file holding the app secret (webhook signatures)"},
    {"app_secret_env", 0, T(app_secret_env), "ROBOT_SRE_WHATSAPP_APP_SECRET", 0, 0,
     "environment variable holding the app secret when app_secret_file is empty"},
    {"verify_token_file", 0, T(verify_token_file), "", 0, 0,
     "file holding the webhook verify token"},
    {"verify_token_env", 0, T(verify_token_env), "ROBOT_SRE_WHATSAPP_VERIFY_TOKEN", 0, 0,
     "environment variable holding the verify token when verify_token_file is empty"},
    {"timeout_ms", 1, U(timeout_ms), "10000", 100, 120000, "timeout of one API call"},
    {"max_body", 1, U(max_body), "262144", 4096, 16777216, "largest reply or webhook body"},
};
const size_t rsre_whatsapp_config_nkeys =
    sizeof(rsre_whatsapp_config_keys) / sizeof(rsre_whatsapp_config_keys[0]);
#undef T
#undef U

void rsre_whatsapp_config_defaults(struct rsre_whatsapp_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    rsre_chat_config_defaults(rsre_whatsapp_config_keys, rsre_whatsapp_config_nkeys, cfg);
}

int rsre_whatsapp_config_set(struct rsre_whatsapp_config *cfg, const char *key, const char *value,
                             char *err, size_t errlen) {
    return rsre_chat_config_set(rsre_whatsapp_config_keys, rsre_whatsapp_config_nkeys, cfg, key,
                                value, err, errlen);
}

/* ---- state ----------------------------------------------------------------------------------- */

struct wa;

struct wa_op {
    struct rsre__chat_op op; /* first: request, callback, list links */
    struct wa *w;
};

struct wa {
    struct rsre_channel base; /* first */
    struct rsre_http *http;
    struct rsre_whatsapp_config cfg;
    char url[sizeof(((struct rsre_whatsapp_config *)0)->base_url) + 64];
    char token[SECRET_MAX];
    char app_secret[SECRET_MAX];
    char verify_token[SECRET_MAX];
    rsre_chat_action_cb action_cb;
    void *action_arg;
    rsre_chat_delivery_cb delivery_cb;
    void *delivery_arg;
    struct rsre__chat_op *ops; /* sends in flight */
    char seen[SEEN_MAX][RSRE_WA_WAMID_MAX + 2]; /* 'a' or 'f' + message id, ring */
    size_t nseen, seen_pos;
    int started, closing;
    struct rsre_whatsapp_stats stats;
};


/* ---- send ------------------------------------------------------------------------------------ */

static void send_done(void *arg, int rc, const struct rsre_http_response *resp) {
    struct wa_op *o = arg;
    struct rsre_send_result r;
    rsre__wa_classify(rc, resp->status, resp->body, resp->body_len, &r);
    rsre__chat_retry_after(&r, resp->retry_after_s);
    if (r.status != RSRE_SEND_OK) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "send failed http=%d code=%ld status=%d err=\"%s\"",
                 r.http_status, r.api_code, (int)r.status, r.error);
    }
    rsre__chat_op_complete(&o->w->ops, &o->op, &r);
}

static int wa_send(struct rsre_channel *ch, const struct rsre_chat_message *m, rsre_send_cb cb,
                   void *arg) {
    struct wa *w = (struct wa *)ch;
    if (!cb || w->closing) {
        return -EINVAL;
    }
    char *json = NULL;
    int rc = rsre__wa_build_message(m, &json);
    if (rc != 0) {
        return rc;
    }
    struct wa_op *o = calloc(1, sizeof(*o));
    if (!o) {
        free(json);
        return -ENOMEM;
    }
    o->w = w;
    o->op.cb = cb;
    o->op.arg = arg;
    struct rsre_http_opts ho = {
        .method = "POST",
        .url = w->url,
        .headers = {"Content-Type: application/json", "Accept: application/json"},
        .nheaders = 2,
        .bearer_token = w->token,
        .body = json,
        .body_len = strlen(json),
        .timeout_ms = w->cfg.timeout_ms,
        .connect_timeout_ms = w->cfg.timeout_ms,
        .max_body = w->cfg.max_body,
        .done = send_done,
        .arg = o,
    };
    rc = rsre_http_request(w->http, &ho, &o->op.req);
    free(json);
    if (rc != 0) {
        free(o);
        return rc;
    }
    rsre__chat_op_link(&w->ops, &o->op);
    return 0;
}

static int wa_ack(struct rsre_channel *ch, const struct rsre_chat_action *a, const char *text) {
    (void)ch;
    (void)a;
    (void)text;
    return 0; /* a reply needs no acknowledgement; the core answers with a message if it wants */
}

static int wa_start(struct rsre_channel *ch, rsre_chat_action_cb cb, void *arg) {
    struct wa *w = (struct wa *)ch;
    if (!cb || w->closing) {
        return -EINVAL;
    }
    if (w->started) {
        return -EALREADY;
    }
    w->action_cb = cb;
    w->action_arg = arg;
    w->started = 1;
    return 0;
}

static void wa_on_delivery(struct rsre_channel *ch, rsre_chat_delivery_cb cb, void *arg) {
    struct wa *w = (struct wa *)ch;
    w->delivery_cb = cb;
    w->delivery_arg = arg;
}

/* ---- webhook --------------------------------------------------------------------------------- */

int rsre_whatsapp_webhook_verify(struct rsre_channel *ch, const char *mode, const char *token,
                                 const char *challenge, char *out, size_t cap) {
    struct wa *w = (struct wa *)ch;
    if (cap > 0) {
        out[0] = '\0';
    }
    if (!challenge || !challenge[0] || strlen(challenge) > CHALLENGE_MAX ||
        strlen(challenge) >= cap) {
        return 400;
    }
    for (const char *p = challenge; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return 400;
        }
    }
    int ok = mode && strcmp(mode, "subscribe") == 0 && token &&
             rsre__chat_secret_eq(w->verify_token, token, strlen(token));
    if (!ok) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "webhook verification refused: %s",
                 !mode || strcmp(mode, "subscribe") != 0 ? "hub.mode is not subscribe"
                                                         : "wrong verify token");
        return 403;
    }
    memcpy(out, challenge, strlen(challenge) + 1);
    return 200;
}

/* Checks "sha256=<64 hex>" against HMAC-SHA256(app secret, body). */
static int signature_ok(const struct wa *w, const char *sig, const char *body, size_t len) {
    if (!sig || strncmp(sig, "sha256=", 7) != 0 || strlen(sig) != 7 + 64) {
        return 0;
    }
    unsigned char want[EVP_MAX_MD_SIZE];
    unsigned int wlen = 0;
    if (!HMAC(EVP_sha256(), w->app_secret, (int)strlen(w->app_secret),
              (const unsigned char *)(body ? body : ""), len, want, &wlen) ||
        wlen != 32) {
        return 0;
    }
    unsigned char got[32];
    for (size_t i = 0; i < 32; i++) {
        unsigned v = 0;
        for (size_t j = 0; j < 2; j++) {
            char c = sig[7 + 2 * i + j];
            unsigned d;
            if (c >= '0' && c <= '9') {
                d = (unsigned)(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                d = (unsigned)(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                d = (unsigned)(c - 'A' + 10);
            } else {
                return 0;
            }
            v = (v << 4) | d;
        }
        got[i] = (unsigned char)v;
    }
    return CRYPTO_memcmp(want, got, 32) == 0;
}

/* Remembers key; returns 1 when it was already there. */
static int seen_before(struct wa *w, char kind, const char *id) {
    char key[RSRE_WA_WAMID_MAX + 2];
    snprintf(key, sizeof(key), "%c%s", kind, id);
    size_t n = w->nseen < SEEN_MAX ? w->nseen : SEEN_MAX;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(w->seen[i], key) == 0) {
            return 1;
        }
    }
    memcpy(w->seen[w->seen_pos], key, strlen(key) + 1);
    w->seen_pos = (w->seen_pos + 1) % SEEN_MAX;
    w->nseen++;
    return 0;
}

static void webhook_event(void *arg, const struct rsre__wa_event *e) {
    struct wa *w = arg;
    if (seen_before(w, e->kind == RSRE_WA_ACTION ? 'a' : 'f', e->message_id)) {
        w->stats.repeats++;
        return;
    }
    if (e->kind == RSRE_WA_ACTION) {
        if (!w->action_cb) {
            return;
        }
        struct rsre_chat_action a = {
            .channel = "whatsapp",
            .user = e->from,
            .chat = e->from,
            .payload = e->payload,
            .ack_ref = e->message_id,
            .message_ref = e->context_id,
        };
        w->stats.actions++;
        w->action_cb(w->action_arg, &a);
        return;
    }
    RSRE_LOG(RSRE_LOG_WARN, MOD, "delivery failed code=%ld err=\"%s\"", e->result.api_code,
             e->result.error);
    if (!w->delivery_cb) {
        return;
    }
    struct rsre_chat_delivery d = {
        .channel = "whatsapp",
        .chat = e->recipient,
        .message_id = e->message_id,
        .result = &e->result,
    };
    w->stats.failures++;
    w->delivery_cb(w->delivery_arg, &d);
}

int rsre_whatsapp_webhook_post(struct rsre_channel *ch, const char *signature, const char *body,
                               size_t len) {
    struct wa *w = (struct wa *)ch;
    if (len > w->cfg.max_body) {
        return 413;
    }
    if (!signature_ok(w, signature, body, len)) {
        w->stats.bad_signatures++;
        RSRE_LOG(RSRE_LOG_WARN, MOD, "webhook refused: X-Hub-Signature-256 %s",
                 signature ? "does not match" : "missing");
        return 401;
    }
    if (!w->started || w->closing) {
        return 503;
    }
    if (!body || rsre__wa_parse_webhook(body, len, w->cfg.phone_number_id, webhook_event, w) < 0) {
        return 400;
    }
    w->stats.webhooks++;
    return 200;
}

void rsre_whatsapp_stats(const struct rsre_channel *ch, struct rsre_whatsapp_stats *out) {
    *out = ((const struct wa *)ch)->stats;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void wa_destroy(struct rsre_channel *ch) {
    struct wa *w = (struct wa *)ch;
    if (!w || w->closing) {
        return;
    }
    w->closing = 1;
    rsre__chat_ops_abandon(&w->ops);
    OPENSSL_cleanse(w->token, sizeof(w->token));
    OPENSSL_cleanse(w->app_secret, sizeof(w->app_secret));
    OPENSSL_cleanse(w->verify_token, sizeof(w->verify_token));
    free(w);
}

static const struct rsre_channel_ops wa_ops = {
    .name = "whatsapp",
    .send = wa_send,
    .ack = wa_ack,
    .start = wa_start,
    .destroy = wa_destroy,
    .on_delivery = wa_on_delivery,
};

static int digits(const char *s, size_t min, size_t max) {
    size_t n = strlen(s);
    return n >= min && n <= max && strspn(s, "0123456789") == n;
}

int rsre_whatsapp_create(struct rsre_http *http, const struct rsre_whatsapp_config *cfg,
                         struct rsre_channel **out, char *err, size_t errlen) {
    *out = NULL;
    if (!http || !cfg) {
        snprintf(err, errlen, "whatsapp: no HTTP client or configuration");
        return -EINVAL;
    }
    const char *bu = cfg->base_url;
    size_t bl = strlen(bu);
    if ((strncmp(bu, "https://", 8) != 0 && strncmp(bu, "http://", 7) != 0) || bl < 9 ||
        bu[bl - 1] == '/' || strpbrk(bu, " \r\n\t?#")) {
        snprintf(err, errlen,
                 "whatsapp: base_url must be http(s)://host[:port][/path] without a "
                 "trailing slash");
        return RSRE_EINVALID;
    }
    const char *v = cfg->api_version;
    if (v[0] != 'v' || strlen(v) < 2 || strspn(v + 1, "0123456789.") != strlen(v) - 1) {
        snprintf(err, errlen, "whatsapp: api_version must look like v19.0");
        return RSRE_EINVALID;
    }
    if (!digits(cfg->phone_number_id, 1, 30)) {
        snprintf(err, errlen, "whatsapp: phone_number_id (digits) is required");
        return RSRE_EINVALID;
    }
    if (cfg->timeout_ms == 0 || cfg->max_body < 4096) {
        snprintf(err, errlen, "whatsapp: timeout_ms and max_body must be set");
        return RSRE_EINVALID;
    }
    struct wa *w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    static const char *const what[] = {"access token", "app secret", "verify token"};
    const char *files[] = {cfg->token_file, cfg->app_secret_file, cfg->verify_token_file};
    const char *envs[] = {cfg->token_env, cfg->app_secret_env, cfg->verify_token_env};
    char *dst[] = {w->token, w->app_secret, w->verify_token};
    for (size_t i = 0; i < 3; i++) {
        char why[256];
        int rc = rsre__chat_read_secret(files[i], envs[i], dst[i], SECRET_MAX, why, sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "whatsapp: %s: %s", what[i], why);
            OPENSSL_cleanse(w, sizeof(*w));
            free(w);
            return rc;
        }
    }
    w->base.ops = &wa_ops;
    w->http = http;
    w->cfg = *cfg;
    snprintf(w->url, sizeof(w->url), "%s/%s/%s/messages", bu, v, cfg->phone_number_id);
    *out = &w->base;
    return 0;
}
