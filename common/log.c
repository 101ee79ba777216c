#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int rsre_log_threshold = RSRE_LOG_INFO;
static int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int rsre_log_set_level_name(const char *name) {
    for (int i = 0; i <= RSRE_LOG_OFF; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            rsre_log_threshold = i;
            return 0;
        }
    }
    return -EINVAL;
}

void rsre_log_set_json(int on) {
    log_json = on;
}

/* Escapes `s` for a double-quoted logfmt or JSON string into `out` (always terminated). */
static void quote(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

void rsre__log(int level, const char *module, const char *fmt, ...) {
    char msg[1024], q[2048], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    quote(q, sizeof(q), msg);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
    if (level < 0 || level > RSRE_LOG_ERROR) {
        level = RSRE_LOG_ERROR;
    }
    if (log_json) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"%s\"}\n", ts,
                level_names[level], module, q);
    } else {
        fprintf(stderr, "ts=%s level=%s module=%s msg=\"%s\"\n", ts, level_names[level], module, q);
    }
}
