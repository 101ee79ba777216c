/* Webhook dispatch to the chat transports: see chat_webhook.h. */

#include "notify/chat_webhook.h"

#include <string.h>

#include "notify/telegram.h"
#include "notify/whatsapp.h"

int rsre_chat_webhook(struct rsre_channel *ch, const struct rsre_chat_webhook_req *r, char *out,
                      size_t cap) {
    if (cap > 0) {
        out[0] = '\0';
    }
    if (!ch || !r || !r->method) {
        return 404;
    }
    int get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    if (strcmp(ch->ops->name, "whatsapp") == 0) {
        if (get) {
            return rsre_whatsapp_webhook_verify(ch, r->hub_mode, r->hub_verify_token,
                                                r->hub_challenge, out, cap);
        }
        if (post) {
            return rsre_whatsapp_webhook_post(ch, r->hub_signature, r->body, r->body_len);
        }
        return 405;
    }
    if (strcmp(ch->ops->name, "telegram") == 0) {
        return post ? rsre_telegram_webhook(ch, r->telegram_secret, r->body, r->body_len) : 405;
    }
    return 404;
}
