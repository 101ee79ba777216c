/* nats kind: connect (user/password or token; no reconnects) and a flush round trip
 * bounded by the timeout. Authorization failures get the code AUTHORIZATION. */
#include "probes/probes_internal.h"

#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

static void nats_fail(struct rsre_probe_result *res, const char *step, natsStatus s) {
    char text[256];
    natsStatus ls;
    const char *last = nats_GetLastError(&ls);
    const char *t = last && last[0] ? last : natsStatus_GetText(s);
    const char *src = t[0] == '(' ? strstr(t, "): ") : NULL; /* "(conn.c:1905): ..." */
    snprintf(text, sizeof text, "%s", src ? src + 3 : t);
    const char *code = "EIO";
    if (strstr(text, "uthorization") || s == NATS_NOT_PERMITTED) {
        code = "AUTHORIZATION";
    } else if (s == NATS_NO_SERVER || strstr(text, "refused")) {
        code = "ECONNREFUSED";
    } else if (s == NATS_TIMEOUT) {
        code = "ETIMEDOUT";
    }
    rsre__probe_fail(res, code, "nats %s: %s", step, text);
}

void rsre__probe_nats(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    char url[320];
    snprintf(url, sizeof url, "nats://%s:%d", def->host, def->port);
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) {
        s = natsOptions_SetURL(o, url);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(o, def->timeout_ms);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetAllowReconnect(o, false);
    }
    if (s == NATS_OK && def->user[0]) {
        s = natsOptions_SetUserInfo(o, def->user, def->password);
    }
    if (s == NATS_OK && def->token[0]) {
        s = natsOptions_SetToken(o, def->token);
    }
    if (s != NATS_OK) {
        nats_fail(res, "options", s);
        natsOptions_Destroy(o);
        return;
    }
    s = natsConnection_Connect(&nc, o);
    if (s != NATS_OK) {
        nats_fail(res, "connect", s);
    } else {
        s = natsConnection_FlushTimeout(nc, def->timeout_ms);
        if (s != NATS_OK) {
            nats_fail(res, "flush", s);
        } else {
            res->ok = 1;
        }
    }
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
}
