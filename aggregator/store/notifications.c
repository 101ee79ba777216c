/*
 * The `notify` database (schema 3): the notification core's own state (aggregator/notify):
 * in-app notifications, incident-thread message references and used chat-button nonces.
 * Values are opaque to the store (the notify module defines and bounds their format, see
 * aggregator/notify/notify.h "Stored state"); keys are printable strings.
 */
#include "store/store_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int key_check(const char *key) {
    if (key == NULL || *key == '\0') {
        return RSRE_EINVALID;
    }
    if (strnlen(key, RSRE_STORE_NOTIFY_KEY_MAX + 1) > RSRE_STORE_NOTIFY_KEY_MAX) {
        return RSRE_ELIMIT;
    }
    return 0;
}

int rsre__store_migrate_2_to_3(rsre_store_txn *txn) {
    MDB_dbi dbi;
    int rc = mdb_dbi_open(txn->mdb, rsre__store_db_name(RSRE__DB_NOTIFY), MDB_CREATE, &dbi);
    if (rc != 0) {
        return rsre__store_txn_fail(txn, rc, "dbi_open notify");
    }
    txn->store->dbi[RSRE__DB_NOTIFY] = dbi;
    return 0;
}

int rsre_store_notify_put(rsre_store_txn *txn, const char *key, const void *val, size_t len,
                          unsigned flags) {
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    if ((rc = key_check(key)) != 0) {
        return rc;
    }
    if (len > RSRE_STORE_NOTIFY_VALUE_MAX || (val == NULL && len > 0)) {
        return val == NULL ? -EINVAL : RSRE_ELIMIT;
    }
    MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
    MDB_val v = {.mv_size = len, .mv_data = (void *)val};
    int mrc = mdb_put(txn->mdb, txn->store->dbi[RSRE__DB_NOTIFY], &k, &v,
                      (flags & RSRE_STORE_NOOVERWRITE) ? MDB_NOOVERWRITE : 0);
    if (mrc == MDB_KEYEXIST) {
        return RSRE_EEXIST;
    }
    return mrc ? rsre__store_txn_fail(txn, mrc, "put notify") : 0;
}

int rsre_store_notify_get(rsre_store_txn *txn, const char *key, char **val, size_t *len) {
    if (val == NULL) {
        return -EINVAL;
    }
    *val = NULL;
    int rc = rsre__store_txn_check(txn, 0);
    if (rc != 0) {
        return rc;
    }
    if ((rc = key_check(key)) != 0) {
        return rc;
    }
    MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key}, v;
    int mrc = mdb_get(txn->mdb, txn->store->dbi[RSRE__DB_NOTIFY], &k, &v);
    if (mrc == MDB_NOTFOUND) {
        return RSRE_ENOTFOUND;
    }
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "get notify");
    }
    if (v.mv_size > RSRE_STORE_NOTIFY_VALUE_MAX) {
        return RSRE_ECORRUPT;
    }
    char *copy = malloc(v.mv_size + 1);
    if (copy == NULL) {
        return -ENOMEM;
    }
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size] = '\0';
    *val = copy;
    if (len != NULL) {
        *len = v.mv_size;
    }
    return 0;
}

int rsre_store_notify_delete(rsre_store_txn *txn, const char *key) {
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    if ((rc = key_check(key)) != 0) {
        return rc;
    }
    MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
    int mrc = mdb_del(txn->mdb, txn->store->dbi[RSRE__DB_NOTIFY], &k, NULL);
    if (mrc == MDB_NOTFOUND) {
        return RSRE_ENOTFOUND;
    }
    return mrc ? rsre__store_txn_fail(txn, mrc, "del notify") : 0;
}

int rsre_store_notify_foreach(rsre_store_txn *txn, const char *prefix, const char *start,
                              rsre_store_notify_cb cb, void *ud) {
    if (cb == NULL || prefix == NULL) {
        return -EINVAL;
    }
    int rc = rsre__store_txn_check(txn, 0);
    if (rc != 0) {
        return rc;
    }
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn->mdb, txn->store->dbi[RSRE__DB_NOTIFY], &cur);
    if (mrc != 0) {
        return rsre__store_txn_fail(txn, mrc, "cursor notify");
    }
    size_t plen = strlen(prefix);
    const char *from = start && *start ? start : prefix;
    MDB_val k = {.mv_size = strlen(from), .mv_data = (void *)from}, v;
    MDB_cursor_op op = k.mv_size ? MDB_SET_RANGE : MDB_FIRST;
    char key[RSRE_STORE_NOTIFY_KEY_MAX + 1];
    rc = 0;
    while ((mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0) {
            break;
        }
        if (k.mv_size > RSRE_STORE_NOTIFY_KEY_MAX || v.mv_size > RSRE_STORE_NOTIFY_VALUE_MAX) {
            rc = RSRE_ECORRUPT;
            break;
        }
        memcpy(key, k.mv_data, k.mv_size);
        key[k.mv_size] = '\0';
        rc = cb(key, v.mv_data, v.mv_size, ud);
        if (rc != 0) {
            rc = rc > 0 ? 0 : rc;
            break;
        }
    }
    mdb_cursor_close(cur);
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        return rsre__store_txn_fail(txn, mrc, "cursor_get notify");
    }
    return rc;
}
