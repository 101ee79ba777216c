/*
 * In-app notifications over the admin API (docs/api.md "Notifications", docs/chatops.md):
 *
 *   GET  /api/v1/notifications?unacked=true&limit=N   viewer: newest first (default 100)
 *   POST /api/v1/notifications/{id}/ack               operator: acknowledged by the token's
 *                                                     operator, audited "notification.ack";
 *                                                     404 unknown id, 409 already acknowledged
 *
 * The records are the notification core's (aggregator/notify/inapp.c): every incident event,
 * approval request and decision, and every chat delivery that failed for good.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "http/api_internal.h"
#include "notify/notify.h"

struct list_out {
    json_t *items;
};

static int add_item(const char *json, void *ud) {
    struct list_out *o = ud;
    json_error_t je;
    json_t *x = json_loads(json, 0, &je);
    if (!x) {
        return RSRE_ECORRUPT;
    }
    return json_array_append_new(o->items, x) ? -ENOMEM : 0;
}

int rsre__h_notifications(struct api_call *c) {
    uint64_t limit;
    if (rsre__api_query_u64(c, "limit", 1, 1000, 100, &limit)) {
        return c->status;
    }
    const char *u = rsre__api_query(c, "unacked");
    int unacked = 0;
    if (u && !strcmp(u, "true")) {
        unacked = 1;
    } else if (u && strcmp(u, "false")) {
        return rsre__api_fail(c, 400, "unacked", "unacked: expected true or false");
    }
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_fail(c, 503, NULL, "the store is not open");
    }
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(st, 1, &txn);
    if (rc) {
        return rsre__api_store_fail(c, rc, "store");
    }
    struct list_out o = {json_array()};
    rc = o.items ? rsre_notify_inapp_list(txn, unacked, (size_t)limit, add_item, &o) : -ENOMEM;
    rsre_store_txn_abort(txn);
    if (rc) {
        json_decref(o.items);
        return rsre__api_store_fail(c, rc, "notifications");
    }
    return rsre__api_reply(c, 200, json_pack("{s:o}", "notifications", o.items));
}

int rsre__h_notification_ack(struct api_call *c) {
    rsre_store *st = rsre__api_store(c->api);
    if (!st) {
        return rsre__api_fail(c, 503, NULL, "the store is not open");
    }
    const char *id = c->params[0];
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(st, 0, &txn);
    if (rc) {
        return rsre__api_store_fail(c, rc, "store");
    }
    rc = rsre_notify_inapp_ack(txn, id, c->who->operator_id, rsre__api_now_ms());
    if (rc) {
        rsre_store_txn_abort(txn);
        if (rc == RSRE_ENOTFOUND) {
            return rsre__api_fail(c, 404, "id", "no notification %s", id);
        }
        if (rc == RSRE_EEXIST) {
            return rsre__api_fail(c, 409, "id", "notification %s is already acknowledged", id);
        }
        return rsre__api_store_fail(c, rc, "notification");
    }
    if ((rc = rsre_store_txn_commit(txn))) {
        return rsre__api_store_fail(c, rc, "notification");
    }
    return rsre__api_reply(c, 200,
                           json_pack("{s:s, s:s}", "id", id, "acked_by", c->who->operator_id));
}
