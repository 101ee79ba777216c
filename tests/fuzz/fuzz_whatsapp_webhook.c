/*
 * libFuzzer target over the WhatsApp Cloud API parsers (notify/chat_internal.h): webhook
 * notifications (what anyone who learnt the app secret, or Meta itself, can post) and /messages
 * replies.
 *
 * The first input byte picks (mod 3): 0 a webhook body (filtered by phone number id or not,
 * from the second byte), 1 a /messages reply with an HTTP status from the second byte, 2 a
 * message built from the input (text, chat, payloads); the rest is the input.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - the parser returns the documented values and is deterministic;
 *   - actions carry a sender of 6-20 digits, a non-empty payload ≤ 256 bytes, a message id;
 *     failures a recipient, a message id and a status that is not OK;
 *   - a classified reply is one of the five statuses; OK has a message id, nothing else has one;
 *   - a built message is JSON that the parser-side limits accept (checked by re-reading it).
 *
 *   CC=clang cmake -S . -B build-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_whatsapp_webhook
 *   ./build-fuzz/tests/fuzz_whatsapp_webhook -max_total_time=30 tests/fuzz/corpus/whatsapp_webhook
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "notify/chat_internal.h"

#define FUZZ_MAX_LEN (256u * 1024u)

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static void check_str(const char *s, size_t cap) {
    check(memchr(s, '\0', cap) != NULL);
}

static void check_number(const char *s) {
    size_t n = strlen(s);
    check(n >= 6 && n <= RSRE_WA_NUMBER_MAX && strspn(s, "0123456789") == n);
}

struct seen {
    size_t n;
    unsigned long hash;
};

static void mix(struct seen *s, const char *p) {
    for (; *p; p++) {
        s->hash = s->hash * 31 + (unsigned char)*p;
    }
    s->hash = s->hash * 31 + 1;
}

static void on_event(void *arg, const struct rsre__wa_event *e) {
    struct seen *s = arg;
    check_str(e->from, sizeof(e->from));
    check_str(e->payload, sizeof(e->payload));
    check_str(e->message_id, sizeof(e->message_id));
    check_str(e->context_id, sizeof(e->context_id));
    check_str(e->recipient, sizeof(e->recipient));
    check_str(e->result.error, sizeof(e->result.error));
    check(e->message_id[0] != '\0');
    if (e->kind == RSRE_WA_ACTION) {
        check_number(e->from);
        check(e->payload[0] != '\0' && strlen(e->payload) <= RSRE_WA_PAYLOAD_MAX);
        mix(s, e->from);
        mix(s, e->payload);
    } else {
        check(e->kind == RSRE_WA_FAILED);
        check_number(e->recipient);
        check(e->result.status != RSRE_SEND_OK && e->result.status <= RSRE_SEND_REJECTED);
        mix(s, e->recipient);
    }
    mix(s, e->message_id);
    s->n++;
}

static void check_result(const struct rsre_send_result *r) {
    check(r->status >= RSRE_SEND_OK && r->status <= RSRE_SEND_REJECTED);
    check_str(r->message_id, sizeof(r->message_id));
    check_str(r->error, sizeof(r->error));
    check((r->status == RSRE_SEND_OK) == (r->message_id[0] != '\0'));
    if (r->status == RSRE_SEND_RETRY) {
        check(r->retry_after_ms > 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    unsigned sel = data[0] % 3;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    if (sel == 0) {
        const char *pid = (data[1] & 1) ? "106540352242922" : "";
        struct seen a = {0}, b = {0};
        int ra = rsre__wa_parse_webhook(body, len, pid, on_event, &a);
        int rb = rsre__wa_parse_webhook(body, len, pid, on_event, &b);
        check(ra == rb && a.n == b.n && a.hash == b.hash);
        check(ra == RSRE_EPARSE || (ra >= 0 && (size_t)ra >= a.n));
    } else if (sel == 1) {
        long status = 100 + (long)data[1] * 2;
        struct rsre_send_result r;
        rsre__wa_classify(0, status, body, len, &r);
        check_result(&r);
        if (status >= 500) {
            check(r.status != RSRE_SEND_OK);
        }
    } else {
        /* text \0 chat \0 payload1 \0 payload2 */
        char *s = malloc(len + 4);
        check(s != NULL);
        memcpy(s, body, len);
        memset(s + len, 0, 4);
        const char *parts[4] = {s, NULL, NULL, NULL};
        size_t np = 1;
        for (size_t i = 0; i < len && np < 4; i++) {
            if (s[i] == '\0') {
                parts[np++] = s + i + 1;
            }
        }
        struct rsre_chat_button btn[3] = {
            {.label = "Approve the action right now", .payload = parts[2]},
            {.label = parts[3] ? parts[3] : "Deny", .payload = "deny"},
            {.label = "Details", .url = "https://x.example/a"},
        };
        struct rsre_chat_message m = {.chat = parts[1] ? parts[1] : "4915112345678",
                                      .text = parts[0],
                                      .edit_ref = (data[1] & 2) ? "wamid.ABC" : NULL,
                                      .buttons = btn,
                                      .nbuttons = parts[2] ? (size_t)(data[1] % 4) : 0};
        char *out = NULL;
        int rc = rsre__wa_build_message(&m, &out);
        check(rc == 0 || rc == -22 /* EINVAL */);
        if (rc == 0) {
            json_error_t je;
            json_t *doc = json_loads(out, 0, &je);
            check(doc != NULL);
            json_t *bl = json_object_get(
                json_object_get(json_object_get(doc, "interactive"), "action"), "buttons");
            for (size_t i = 0; i < json_array_size(bl); i++) {
                json_t *rp = json_object_get(json_array_get(bl, i), "reply");
                const char *t = json_string_value(json_object_get(rp, "title"));
                check(t != NULL && json_string_length(json_object_get(rp, "title")) <= 20 * 4);
            }
            json_decref(doc);
            free(out);
        }
        /* The same message on Telegram's builder. */
        out = NULL;
        m.chat = "1001";
        rc = rsre__tg_build_message(&m, &out);
        check(rc == 0 || rc == -22);
        free(out);
        free(s);
    }
    return 0;
}
