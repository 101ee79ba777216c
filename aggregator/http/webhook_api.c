/*
 * Chat platform webhooks on the admin API (routes.c rows, no bearer token): GET
 * /webhooks/whatsapp (Meta's verify handshake), POST /webhooks/whatsapp (notifications signed
 * with X-Hub-Signature-256) and POST /webhooks/telegram (updates carrying
 * X-Telegram-Bot-Api-Secret-Token). The request is handed as it came to the daemon's webhook
 * callback, which lets the channel check the signature or secret before anything is parsed; the
 * answer is the status it returns, with a text/plain body (the verify challenge, or a word).
 */

#include <stdlib.h>
#include <string.h>

#include "http/api_internal.h"

#define WEBHOOK_HEADER_MAX 512
#define WEBHOOK_OUT_MAX 256

static int reply_text(struct api_call *c, int status, const char *text) {
    c->text = strdup(text);
    if (!c->text) {
        return rsre__api_fail(c, 500, NULL, "out of memory");
    }
    c->text_len = strlen(text);
    c->content_type = "text/plain; charset=utf-8";
    c->status = status;
    return status;
}

int rsre__h_webhook(struct api_call *c) {
    const struct rsre_api_callbacks *cb = rsre__api_callbacks(c->api);
    if (!cb->webhook) {
        return rsre__api_fail(c, 503, NULL, "no chat channel receives webhooks");
    }
    const char *p = c->route->pattern;
    struct rsre_api_webhook w = {
        .channel = strrchr(p, '/') + 1,
        .method = c->route->method,
        .hub_mode = rsre__api_query(c, "hub.mode"),
        .hub_verify_token = rsre__api_query(c, "hub.verify_token"),
        .hub_challenge = rsre__api_query(c, "hub.challenge"),
        .body = c->body,
        .body_len = c->body_len,
    };
    char sig[WEBHOOK_HEADER_MAX], secret[WEBHOOK_HEADER_MAX];
    if (rsre__api_header(c, "x-hub-signature-256", sig, sizeof(sig)) >= 0) {
        w.hub_signature = sig;
    }
    if (rsre__api_header(c, "x-telegram-bot-api-secret-token", secret, sizeof(secret)) >= 0) {
        w.telegram_secret = secret;
    }
    char out[WEBHOOK_OUT_MAX] = "";
    int status = cb->webhook(cb->ud, &w, out, sizeof(out));
    if (status < 200 || status > 599) {
        status = 500;
    }
    if (!out[0]) {
        const char *word = status == 200   ? "ok"
                           : status == 401 ? "signature or secret missing or wrong"
                           : status == 403 ? "forbidden"
                           : status == 404 ? "no such chat channel"
                           : status == 413 ? "body too large"
                           : status == 503 ? "channel not receiving"
                                           : "refused";
        return reply_text(c, status, word);
    }
    return reply_text(c, status, out);
}
