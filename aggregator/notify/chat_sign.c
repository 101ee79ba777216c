/*
 * Signed approval buttons. A payload is
 *
 *     <approval id>.<a|d>.<expiry, unix seconds in base 36>.<mac>
 *
 * at most 64 bytes (Telegram's callback_data limit), where mac is the base64url HMAC-SHA256,
 * keyed with the server's secret, of "rsre-button-v1" NUL channel NUL user NUL approval NUL
 * decision NUL expiry, truncated to what fits (27 characters = 162 bits at most, never fewer
 * than 16 = 96 bits). The user is not in the payload: the MAC is recomputed for whoever pressed
 * the button, so a button forwarded to or pressed by someone else, or replayed on the other
 * channel, fails. Replays of the same user's button are stopped by the used-nonce record the
 * core keeps in the store (the mac is the nonce).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "notify/notify.h"

#define MAC_CHARS_MAX 27
#define MAC_CHARS_MIN 16

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int id_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 40) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

static void base36(uint64_t v, char *out, size_t cap) {
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        v /= 36;
    } while (v && n < sizeof(tmp));
    size_t i = 0;
    while (n && i + 1 < cap) {
        out[i++] = tmp[--n];
    }
    out[i] = '\0';
}

static int parse36(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    if (len == 0 || len > 10) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        const char *p = strchr("0123456789abcdefghijklmnopqrstuvwxyz", s[i]);
        if (!p || !s[i]) {
            return -1;
        }
        v = v * 36 + (uint64_t)(p - "0123456789abcdefghijklmnopqrstuvwxyz");
    }
    *out = v;
    return 0;
}

/* The full-length MAC (43 base64url characters) of the bound fields. */
static int mac_of(const uint8_t *key, size_t keylen, const char *channel, const char *user,
                  const char *approval_id, char decision, const char *exp36, char out[44]) {
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "rsre-button-v1%c%s%c%s%c%s%c%c%c%s", 0, channel, 0, user, 0,
                     approval_id, 0, decision, 0, exp36);
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        return RSRE_ELIMIT;
    }
    uint8_t md[32];
    unsigned mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const uint8_t *)msg, (size_t)n, md, &mdlen) ||
        mdlen != 32) {
        return -EIO;
    }
    size_t o = 0;
    for (size_t i = 0; i < 32; i += 3) {
        uint32_t v = (uint32_t)md[i] << 16;
        if (i + 1 < 32) {
            v |= (uint32_t)md[i + 1] << 8;
        }
        if (i + 2 < 32) {
            v |= md[i + 2];
        }
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < 32) {
            out[o++] = b64url[(v >> 6) & 63];
        }
        if (i + 2 < 32) {
            out[o++] = b64url[v & 63];
        }
    }
    out[o] = '\0';
    return 0;
}

int rsre_notify_sign(const uint8_t *key, size_t keylen, const char *channel, const char *user,
                     const char *approval_id, int approve, int64_t expires_ms,
                     char out[RSRE_NOTIFY_PAYLOAD_MAX + 1]) {
    if (!key || keylen == 0 || !channel || !user || !approval_id || !id_ok(approval_id) ||
        expires_ms <= 0) {
        return RSRE_EINVALID;
    }
    char exp36[16];
    base36((uint64_t)(expires_ms / 1000), exp36, sizeof(exp36));
    char d = approve ? 'a' : 'd';
    int head = snprintf(out, RSRE_NOTIFY_PAYLOAD_MAX + 1, "%s.%c.%s.", approval_id, d, exp36);
    if (head < 0 || head + MAC_CHARS_MIN > RSRE_NOTIFY_PAYLOAD_MAX) {
        out[0] = '\0';
        return RSRE_ELIMIT;
    }
    char mac[44];
    int rc = mac_of(key, keylen, channel, user, approval_id, d, exp36, mac);
    if (rc) {
        out[0] = '\0';
        return rc;
    }
    size_t take = (size_t)(RSRE_NOTIFY_PAYLOAD_MAX - head);
    if (take > MAC_CHARS_MAX) {
        take = MAC_CHARS_MAX;
    }
    memcpy(out + head, mac, take);
    out[head + (int)take] = '\0';
    return 0;
}

enum rsre_sign_verdict rsre_notify_verify(const uint8_t *key, size_t keylen, const char *channel,
                                          const char *user, const char *payload, int64_t now_ms,
                                          struct rsre_notify_button *out) {
    memset(out, 0, sizeof(*out));
    if (!payload || !user || !channel || !key || keylen == 0) {
        return RSRE_SIGN_MALFORMED;
    }
    size_t len = strnlen(payload, RSRE_NOTIFY_PAYLOAD_MAX + 1);
    if (len > RSRE_NOTIFY_PAYLOAD_MAX) {
        return RSRE_SIGN_MALFORMED;
    }
    const char *d1 = memchr(payload, '.', len);
    if (!d1) {
        return RSRE_SIGN_MALFORMED;
    }
    size_t idlen = (size_t)(d1 - payload);
    if (idlen == 0 || idlen >= sizeof(out->approval_id)) {
        return RSRE_SIGN_MALFORMED;
    }
    memcpy(out->approval_id, payload, idlen);
    out->approval_id[idlen] = '\0';
    if (!id_ok(out->approval_id)) {
        return RSRE_SIGN_MALFORMED;
    }
    const char *rest = d1 + 1, *end = payload + len;
    if (end - rest < 3 || (rest[0] != 'a' && rest[0] != 'd') || rest[1] != '.') {
        return RSRE_SIGN_MALFORMED;
    }
    char decision = rest[0];
    const char *e36 = rest + 2;
    const char *d3 = memchr(e36, '.', (size_t)(end - e36));
    uint64_t exp_s;
    if (!d3 || parse36(e36, (size_t)(d3 - e36), &exp_s) || exp_s > (uint64_t)INT64_MAX / 1000) {
        return RSRE_SIGN_MALFORMED;
    }
    char exp36[16];
    size_t e36len = (size_t)(d3 - e36);
    memcpy(exp36, e36, e36len);
    exp36[e36len] = '\0';
    const char *mac = d3 + 1;
    size_t maclen = (size_t)(end - mac);
    size_t head = (size_t)(mac - payload);
    size_t want = RSRE_NOTIFY_PAYLOAD_MAX - head;
    if (want > MAC_CHARS_MAX) {
        want = MAC_CHARS_MAX;
    }
    if (want < MAC_CHARS_MIN || maclen != want) {
        return RSRE_SIGN_MALFORMED;
    }
    char expect[44];
    if (mac_of(key, keylen, channel, user, out->approval_id, decision, exp36, expect)) {
        return RSRE_SIGN_MALFORMED;
    }
    if (CRYPTO_memcmp(expect, mac, maclen) != 0) {
        return RSRE_SIGN_BAD_MAC;
    }
    out->approve = decision == 'a';
    out->expires_ms = (int64_t)exp_s * 1000;
    memcpy(out->mac, mac, maclen);
    out->mac[maclen] = '\0';
    if (now_ms >= out->expires_ms) {
        return RSRE_SIGN_EXPIRED;
    }
    return RSRE_SIGN_OK;
}

const char *rsre_sign_verdict_name(enum rsre_sign_verdict v) {
    static const char *const names[] = {"ok", "malformed", "bad_signature", "expired"};
    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}
