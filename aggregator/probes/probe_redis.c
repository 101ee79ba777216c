/* redis kind: connect (with a deadline), AUTH when a password is configured, PING. Server
 * error replies keep their first word as the code (LOADING, NOAUTH, WRONGPASS, ERR, ...). */
#include "probes/probes_internal.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <string.h>

static void reply_code(const char *s, char *code, size_t cap) {
    size_t n = 0;
    while (s[n] && n + 1 < cap && (isupper((unsigned char)s[n]) || s[n] == '_')) {
        n++;
    }
    if (n == 0) {
        snprintf(code, cap, "ERR");
        return;
    }
    memcpy(code, s, n);
    code[n] = '\0';
}

static void io_fail(struct rsre_probe_result *res, redisContext *c, const char *step) {
    const char *code = "EIO";
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == ETIMEDOUT || errno == EINPROGRESS)) {
        code = "ETIMEDOUT";
    } else if (strstr(c->errstr, "refused")) {
        code = "ECONNREFUSED";
    } else if (strstr(c->errstr, "timed out") || strstr(c->errstr, "temporarily unavailable")) {
        code = "ETIMEDOUT";
    } else if (c->err == REDIS_ERR_EOF) {
        code = "ECONNRESET";
    }
    rsre__probe_fail(res, code, "redis %s: %s", step, c->errstr);
}

/* Runs one command; returns the reply (caller frees) or NULL with res filled. */
static redisReply *command(redisContext *c, struct rsre_probe_result *res, const char *step,
                           int argc, const char **argv) {
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        io_fail(res, c, step);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        reply_code(r->str, res->code, sizeof res->code);
        rsre__probe_fail(res, res->code, "redis %s: %s", step, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

void rsre__probe_redis(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    struct timeval tv = {def->timeout_ms / 1000, (def->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(def->host, def->port, tv);
    if (!c) {
        rsre__probe_fail(res, "ENOMEM", "redis connect: out of memory");
        return;
    }
    if (c->err) {
        io_fail(res, c, "connect");
        redisFree(c);
        return;
    }
    redisSetTimeout(c, tv);
    redisReply *r;
    if (def->password[0]) {
        const char *argv[3] = {"AUTH", def->user[0] ? def->user : def->password, def->password};
        r = command(c, res, "AUTH", def->user[0] ? 3 : 2, argv);
        if (!r) {
            redisFree(c);
            return;
        }
        freeReplyObject(r);
    }
    const char *ping[1] = {"PING"};
    r = command(c, res, "PING", 1, ping);
    if (r) {
        if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) {
            res->ok = 1;
        } else {
            rsre__probe_fail(res, "EPROTO", "redis PING: unexpected reply type %d", r->type);
        }
        freeReplyObject(r);
    }
    redisFree(c);
}
