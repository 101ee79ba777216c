/*
 * libFuzzer target over the Telegram Bot API parsers (notify/chat_internal.h): every byte a Bot
 * API server, or anything posting to our webhook, can send.
 *
 * The first input byte picks (mod 4): 0 a getUpdates reply, 1 one Update (webhook body), 2 a
 * sendMessage / editMessageText reply with an HTTP status from the second byte, 3 text
 * clipping; the rest is the input.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - parsers return only the documented values; callback-query updates carry every field,
 *     non-empty, NUL-terminated within its bound, payload ≤ 64 bytes, ids decimal;
 *   - parsing is deterministic (same updates, same order, twice);
 *   - a classified reply is one of the five statuses; OK has a message id, nothing else has
 *     one; RETRY has 0 ≤ retry_after ≤ 1 h; error text is printable ASCII;
 *   - clipped text is valid UTF-8 within the limit in UTF-16 units.
 *
 *   CC=clang cmake -S . -B build-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_telegram_update
 *   ./build-fuzz/tests/fuzz_telegram_update -max_total_time=30 tests/fuzz/corpus/telegram_update
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "notify/chat_internal.h"

#define FUZZ_MAX_LEN (256u * 1024u)

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static void check_str(const char *s, size_t cap, int nonempty) {
    const char *nul = memchr(s, '\0', cap);
    check(nul != NULL);
    if (nonempty) {
        check(nul != s);
    }
}

static void check_decimal(const char *s) {
    if (*s == '-') {
        s++;
    }
    check(*s != '\0');
    for (; *s; s++) {
        check(*s >= '0' && *s <= '9');
    }
}

struct seen {
    int64_t ids[512];
    int kinds[512];
    size_t n;
};

static void on_update(void *arg, const struct rsre__tg_update *u) {
    struct seen *s = arg;
    check(u->update_id >= 0);
    check(u->kind == 0 || u->kind == RSRE_TG_CALLBACK || u->kind == RSRE_TG_MESSAGE);
    check_str(u->user, sizeof(u->user), 0);
    check_str(u->chat, sizeof(u->chat), 0);
    check_str(u->payload, sizeof(u->payload), 0);
    check_str(u->query_id, sizeof(u->query_id), 0);
    check_str(u->message_id, sizeof(u->message_id), 0);
    if (u->kind == RSRE_TG_CALLBACK) {
        check(u->user[0] && u->chat[0] && u->payload[0] && u->query_id[0] && u->message_id[0]);
        check(strlen(u->payload) <= RSRE_TG_DATA_MAX);
        check_decimal(u->user);
        check_decimal(u->chat);
        check_decimal(u->message_id);
    } else if (u->kind == RSRE_TG_MESSAGE) {
        check_decimal(u->chat);
    } else {
        check(!u->user[0] && !u->payload[0] && !u->query_id[0]);
    }
    if (s->n < 512) {
        s->ids[s->n] = u->update_id;
        s->kinds[s->n] = u->kind;
    }
    s->n++;
}

static void check_result(const struct rsre_send_result *r) {
    check(r->status >= RSRE_SEND_OK && r->status <= RSRE_SEND_REJECTED);
    check_str(r->message_id, sizeof(r->message_id), 0);
    check_str(r->error, sizeof(r->error), 0);
    for (const char *p = r->error; *p; p++) {
        check(*p >= 0x20 && *p < 0x7f);
    }
    if (r->status == RSRE_SEND_OK) {
        check(r->message_id[0] != '\0');
    } else {
        check(r->message_id[0] == '\0');
    }
    if (r->status == RSRE_SEND_RETRY) {
        check(r->retry_after_ms >= 0 && r->retry_after_ms <= 3600 * 1000);
    }
}

/* Valid UTF-8, and its length in UTF-16 units. */
static size_t utf16_units(const unsigned char *p) {
    size_t units = 0;
    while (*p) {
        size_t k;
        unsigned cp;
        if (p[0] < 0x80) {
            k = 1, cp = p[0];
        } else if ((p[0] & 0xe0) == 0xc0) {
            k = 2, cp = p[0] & 0x1f;
        } else if ((p[0] & 0xf0) == 0xe0) {
            k = 3, cp = p[0] & 0x0f;
        } else {
            check((p[0] & 0xf8) == 0xf0);
            k = 4, cp = p[0] & 0x07;
        }
        for (size_t i = 1; i < k; i++) {
            check((p[i] & 0xc0) == 0x80);
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        check(cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff));
        units += cp >= 0x10000 ? 2 : 1;
        p += k;
    }
    return units;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    unsigned sel = data[0] % 4;
    long status = 100 + (long)data[1] * 2; /* 100..610 */
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    if (sel == 0 || sel == 1) {
        struct seen a = {0}, b = {0};
        int ra = sel == 0 ? rsre__tg_parse_updates(body, len, on_update, &a)
                          : rsre__tg_parse_update(body, len, on_update, &a);
        int rb = sel == 0 ? rsre__tg_parse_updates(body, len, on_update, &b)
                          : rsre__tg_parse_update(body, len, on_update, &b);
        check(ra == rb && a.n == b.n);
        check(ra == RSRE_EPARSE || (ra >= 0 && (size_t)ra == a.n));
        if (sel == 1) {
            check(ra == RSRE_EPARSE || ra == 1);
        }
        for (size_t i = 0; i < a.n && i < 512; i++) {
            check(a.ids[i] == b.ids[i] && a.kinds[i] == b.kinds[i]);
        }
    } else if (sel == 2) {
        struct rsre_send_result r;
        rsre__tg_classify(0, status, body, len, NULL, &r);
        check_result(&r);
        check(r.http_status == (int)status);
        if (status >= 500) {
            check(r.status == RSRE_SEND_TRANSIENT);
        }
        rsre__tg_classify(0, status, body, len, "42", &r);
        check_result(&r);
        rsre__tg_classify(-110, 0, body, len, NULL, &r);
        check(r.status == RSRE_SEND_TRANSIENT);
    } else {
        char *s = malloc(len + 1);
        check(s != NULL);
        memcpy(s, body, len);
        s[len] = '\0';
        size_t max = data[1] % 64;
        char *c = rsre__chat_clip(s, max, 1);
        check(c != NULL);
        check(utf16_units((const unsigned char *)c) <= max);
        free(c);
        c = rsre__chat_clip(s, RSRE_TG_TEXT_UNITS, 1);
        check(c != NULL);
        check(utf16_units((const unsigned char *)c) <= RSRE_TG_TEXT_UNITS);
        free(c);
        free(s);
    }
    return 0;
}
