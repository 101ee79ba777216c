/* Helpers shared by the chat transports: secrets, UTF-8 clipping, safe copies. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/curl_uv.h"
#include "common/error.h"
#include "notify/chat_config.h"
#include "notify/chat_internal.h"

#define SECRET_FILE_MAX 4096

static int secret_ok(const char *s, size_t n) {
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

int rsre__chat_read_secret(const char *file, const char *env, char *out, size_t cap, char *err,
                           size_t errlen) {
    out[0] = '\0';
    if (file && file[0]) {
        int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            int e = errno;
            snprintf(err, errlen, "secret file %s: %s", file, strerror(e));
            return -e;
        }
        char buf[SECRET_FILE_MAX + 1];
        size_t n = 0;
        for (;;) {
            ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k < 0) {
                int e = errno;
                close(fd);
                snprintf(err, errlen, "secret file %s: %s", file, strerror(e));
                return -e;
            }
            if (k == 0 || n + (size_t)k >= sizeof(buf) - 1) {
                n += (size_t)k;
                break;
            }
            n += (size_t)k;
        }
        close(fd);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                         buf[n - 1] == '\t')) {
            n--;
        }
        if (n >= cap || n >= SECRET_FILE_MAX) {
            snprintf(err, errlen, "secret file %s: longer than %zu bytes", file, cap - 1);
            return RSRE_ELIMIT;
        }
        if (!secret_ok(buf, n)) {
            snprintf(err, errlen, "secret file %s: empty or not printable ASCII on one line", file);
            return RSRE_EINVALID;
        }
        memcpy(out, buf, n);
        out[n] = '\0';
        OPENSSL_cleanse(buf, sizeof(buf));
        return 0;
    }
    if (env && env[0]) {
        const char *v = getenv(env);
        if (!v) {
            snprintf(err, errlen, "environment variable %s is not set", env);
            return RSRE_ENOTFOUND;
        }
        size_t n = strlen(v);
        if (n >= cap) {
            snprintf(err, errlen, "environment variable %s: longer than %zu bytes", env, cap - 1);
            return RSRE_ELIMIT;
        }
        if (!secret_ok(v, n)) {
            snprintf(err, errlen, "environment variable %s: empty or not printable ASCII", env);
            return RSRE_EINVALID;
        }
        memcpy(out, v, n + 1);
        return 0;
    }
    snprintf(err, errlen, "no secret file or environment variable configured");
    return RSRE_ENOTFOUND;
}

int rsre__chat_secret_eq(const char *want, const char *got, size_t got_len) {
    size_t n = strlen(want);
    if (!got || got_len != n) {
        /* Same work as a comparison, so a wrong length is not faster to learn. */
        (void)CRYPTO_memcmp(want, want, n);
        return 0;
    }
    return CRYPTO_memcmp(want, got, n) == 0;
}

/* Decodes one UTF-8 sequence at s (n bytes left): returns its length (0 when invalid) and the
 * code point in *cp. Rejects overlongs, surrogates and values above U+10FFFF. */
static size_t utf8_one(const unsigned char *s, size_t n, unsigned *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    unsigned c, min;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, c = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, c = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *cp = c;
    return len;
}

/* Units of s (as rsre__chat_clip counts them), stopping early once above `stop`. */
static size_t clip_units(const unsigned char *p, size_t n, int utf16, size_t stop) {
    size_t i = 0, units = 0;
    while (i < n && units <= stop) {
        unsigned cp = 0xfffd;
        size_t k = utf8_one(p + i, n - i, &cp);
        units += (utf16 && cp >= 0x10000) ? 2 : 1;
        i += k ? k : 1;
    }
    return units;
}

char *rsre__chat_clip(const char *s, size_t max, int utf16) {
    static const char ell[] = "\xe2\x80\xa6";  /* U+2026, one unit */
    static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */
    if (!s) {
        s = "";
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    /* Worst case every byte becomes U+FFFD (3 bytes), plus the ellipsis. */
    if (n > (SIZE_MAX - 8) / 3) {
        return NULL;
    }
    char *out = malloc(n * 3 + 8);
    if (!out) {
        return NULL;
    }
    int cut = clip_units(p, n, utf16, max) > max;
    size_t budget = cut ? (max > 0 ? max - 1 : 0) : max;
    size_t i = 0, o = 0, units = 0;
    while (i < n) {
        unsigned cp = 0xfffd;
        size_t k = utf8_one(p + i, n - i, &cp);
        size_t w = (utf16 && cp >= 0x10000) ? 2 : 1;
        if (units + w > budget) {
            break;
        }
        if (k == 0) {
            memcpy(out + o, repl, 3);
            o += 3;
            i += 1;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
        units += w;
    }
    if (cut && max > 0) {
        memcpy(out + o, ell, 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

void rsre__chat_safe_copy(char *dst, size_t cap, const char *src) {
    if (cap == 0) {
        return;
    }
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[i] = '\0';
}

void rsre__chat_retry_after(struct rsre_send_result *r, int64_t header_s) {
    if (r->status != RSRE_SEND_RETRY) {
        return;
    }
    if (header_s > 0) {
        int64_t h = header_s > RSRE_CHAT_RETRY_AFTER_MAX_MS / 1000 ? RSRE_CHAT_RETRY_AFTER_MAX_MS
                                                                   : header_s * 1000;
        if (h > r->retry_after_ms) {
            r->retry_after_ms = h;
        }
    }
    if (r->retry_after_ms < 1000) {
        r->retry_after_ms = 1000;
    } else if (r->retry_after_ms > RSRE_CHAT_RETRY_AFTER_MAX_MS) {
        r->retry_after_ms = RSRE_CHAT_RETRY_AFTER_MAX_MS;
    }
}

/* ---- configuration rows ---------------------------------------------------------------------- */

static int set_one(const struct rsre_chat_config_key *k, void *cfg, const char *value, char *err,
                   size_t errlen) {
    char *base = (char *)cfg + k->offset;
    if (!k->is_u32) {
        size_t n = strlen(value);
        if (n >= k->size) {
            snprintf(err, errlen, "%s: longer than %zu bytes", k->name, k->size - 1);
            return RSRE_EINVALID;
        }
        memcpy(base, value, n + 1);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || !*value || *end || value[0] == '-' || v < k->min || v > k->max) {
        snprintf(err, errlen, "%s: \"%.40s\" is not a number in [%u, %u]", k->name, value,
                 (unsigned)k->min, (unsigned)k->max);
        return RSRE_EINVALID;
    }
    uint32_t u = (uint32_t)v;
    memcpy(base, &u, sizeof(u));
    return 0;
}

void rsre_chat_config_defaults(const struct rsre_chat_config_key *keys, size_t n, void *cfg) {
    char err[128];
    for (size_t i = 0; i < n; i++) {
        if (keys[i].is_u32) {
            memset((char *)cfg + keys[i].offset, 0, sizeof(uint32_t));
        } else {
            memset((char *)cfg + keys[i].offset, 0, keys[i].size);
        }
        (void)set_one(&keys[i], cfg, keys[i].def, err, sizeof(err));
    }
}

int rsre_chat_config_set(const struct rsre_chat_config_key *keys, size_t n, void *cfg,
                         const char *key, const char *value, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i].name, key) == 0) {
            return set_one(&keys[i], cfg, value ? value : "", err, errlen);
        }
    }
    snprintf(err, errlen, "unknown key %.64s", key);
    return RSRE_ENOTFOUND;
}

/* ---- calls in flight -------------------------------------------------------------------------- */

void rsre__chat_op_link(struct rsre__chat_op **head, struct rsre__chat_op *o) {
    o->next = *head;
    o->prev = NULL;
    if (*head) {
        (*head)->prev = o;
    }
    *head = o;
}

void rsre__chat_op_unlink(struct rsre__chat_op **head, struct rsre__chat_op *o) {
    if (o->prev) {
        o->prev->next = o->next;
    } else {
        *head = o->next;
    }
    if (o->next) {
        o->next->prev = o->prev;
    }
    o->prev = o->next = NULL;
}

void rsre__chat_op_complete(struct rsre__chat_op **head, struct rsre__chat_op *o,
                            const struct rsre_send_result *r) {
    rsre__chat_op_unlink(head, o);
    rsre_send_cb cb = o->cb;
    void *cb_arg = o->arg;
    free(o);
    cb(cb_arg, r);
}

void rsre__chat_ops_abandon(struct rsre__chat_op **head) {
    while (*head) {
        struct rsre__chat_op *o = *head;
        rsre__chat_op_unlink(head, o);
        rsre_http_abandon(o->req);
        if (o->cb) {
            struct rsre_send_result r;
            memset(&r, 0, sizeof(r));
            r.status = RSRE_SEND_TRANSIENT;
            snprintf(r.error, sizeof(r.error), "channel closed");
            o->cb(o->arg, &r);
        }
        free(o);
    }
}
