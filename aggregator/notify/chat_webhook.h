#ifndef RSRE_CHAT_WEBHOOK_H
#define RSRE_CHAT_WEBHOOK_H

/*
 * One entry point for chat platform webhooks, so the daemon can hand the admin API's webhook
 * callback (http/api.h: struct rsre_api_webhook, same fields) to whichever channel it names:
 * WhatsApp GET -> rsre_whatsapp_webhook_verify, WhatsApp POST -> rsre_whatsapp_webhook_post,
 * Telegram POST -> rsre_telegram_webhook. Runs on the channel's loop.
 */

#include <stddef.h>

#include "notify/channel.h"

struct rsre_chat_webhook_req {
    const char *method; /* "GET" | "POST" */
    const char *hub_mode, *hub_verify_token, *hub_challenge;
    const char *hub_signature;   /* X-Hub-Signature-256 */
    const char *telegram_secret; /* X-Telegram-Bot-Api-Secret-Token */
    const char *body;
    size_t body_len;
};

/* Returns the HTTP status to answer (405 for a method the channel does not take, 404 for a NULL
 * channel); out[cap] gets the text body to send ("" when none). */
int rsre_chat_webhook(struct rsre_channel *ch, const struct rsre_chat_webhook_req *r, char *out,
                      size_t cap);

#endif
