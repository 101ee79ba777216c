/*
 * In-app notifications: the channel of last resort. Each one is a JSON object under
 * "n/<16 hex digits of its sequence number>" in the store's `notify` database, so a key scan
 * in reverse gives newest first. Acknowledging is audited.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "notify/notify.h"

#define INAPP_PREFIX "n/"

static int key_of(const char *id, char key[32]) {
    if (!id || strncmp(id, "ntf-", 4) != 0) {
        return RSRE_ENOTFOUND;
    }
    char *end;
    errno = 0;
    unsigned long long seq = strtoull(id + 4, &end, 10);
    if (errno || *end || end == id + 4 || seq == 0 || strlen(id) > 24) {
        return RSRE_ENOTFOUND;
    }
    snprintf(key, 32, INAPP_PREFIX "%016llx", seq);
    return 0;
}

int rsre_notify_inapp_add(rsre_store_txn *txn, const char *kind, const char *subject,
                          const char *severity, const char *title, const char *text,
                          const char *link, int64_t now_ms, char *id) {
    uint64_t seq;
    int rc = rsre_store_seq_next(txn, "notification", &seq);
    if (rc) {
        return rc;
    }
    char idbuf[32], key[32];
    snprintf(idbuf, sizeof(idbuf), "ntf-%" PRIu64, seq);
    snprintf(key, sizeof(key), INAPP_PREFIX "%016" PRIx64, seq);
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:I}", "id", idbuf, "ts",
                          (json_int_t)now_ms, "kind", kind ? kind : "", "subject",
                          subject ? subject : "", "severity", severity ? severity : "", "title",
                          title ? title : "", "text", text ? text : "", "link", link ? link : "",
                          "acked_by", "acked_at", (json_int_t)0);
    if (!o) {
        return RSRE_EINVALID; /* a part that is not valid UTF-8 */
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) {
        return -ENOMEM;
    }
    rc = rsre_store_notify_put(txn, key, s, strlen(s), RSRE_STORE_NOOVERWRITE);
    free(s);
    if (rc == 0 && id) {
        snprintf(id, 32, "%s", idbuf);
    }
    return rc;
}

struct list_ctx {
    json_t **items; /* ring of the newest `limit` matches */
    size_t limit, n, head;
    int unacked;
    int err;
};

static int collect(const char *key, const void *val, size_t len, void *ud) {
    (void)key;
    struct list_ctx *c = ud;
    json_error_t je;
    json_t *o = json_loadb(val, len, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        c->err = RSRE_ECORRUPT;
        return -1;
    }
    if (c->unacked && json_is_string(json_object_get(o, "acked_by"))) {
        json_decref(o);
        return 0;
    }
    if (c->n < c->limit) {
        c->items[c->n++] = o;
    } else {
        json_decref(c->items[c->head]);
        c->items[c->head] = o;
        c->head = (c->head + 1) % c->limit;
    }
    return 0;
}

int rsre_notify_inapp_list(rsre_store_txn *txn, int unacked, size_t limit,
                           int (*cb)(const char *json, void *ud), void *ud) {
    if (limit == 0 || limit > 1000) {
        limit = limit == 0 ? 100 : 1000;
    }
    struct list_ctx c = {.limit = limit, .unacked = unacked};
    c.items = calloc(limit, sizeof(*c.items));
    if (!c.items) {
        return -ENOMEM;
    }
    int rc = rsre_store_notify_foreach(txn, INAPP_PREFIX, NULL, collect, &c);
    if (rc == 0 && c.err) {
        rc = c.err;
    }
    /* Newest first: walk the ring backwards from the newest. */
    for (size_t i = 0; i < c.n; i++) {
        size_t idx = (c.head + c.n - 1 - i) % c.n;
        if (rc == 0) {
            char *s = json_dumps(c.items[idx], JSON_COMPACT);
            rc = s ? cb(s, ud) : -ENOMEM;
            free(s);
        }
    }
    for (size_t i = 0; i < c.n; i++) {
        json_decref(c.items[i]);
    }
    free(c.items);
    return rc;
}

int rsre_notify_inapp_ack(rsre_store_txn *txn, const char *id, const char *who, int64_t now_ms) {
    char key[32];
    int rc = key_of(id, key);
    if (rc) {
        return rc;
    }
    if (!who || !*who) {
        return RSRE_EINVALID;
    }
    char *val;
    size_t len;
    if ((rc = rsre_store_notify_get(txn, key, &val, &len))) {
        return rc;
    }
    json_error_t je;
    json_t *o = json_loadb(val, len, 0, &je);
    free(val);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return RSRE_ECORRUPT;
    }
    if (json_is_string(json_object_get(o, "acked_by"))) {
        json_decref(o);
        return RSRE_EEXIST;
    }
    json_object_set_new(o, "acked_by", json_string(who));
    json_object_set_new(o, "acked_at", json_integer(now_ms));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) {
        return -ENOMEM;
    }
    rc = rsre_store_notify_put(txn, key, s, strlen(s), 0);
    free(s);
    if (rc == 0) {
        rc = rsre_store_audit_append(txn, who, "notification.ack", id, NULL, NULL, now_ms, NULL);
    }
    return rc;
}
