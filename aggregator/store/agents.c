/*
 * The `agents` database (schema 2): one AgentState record per node, keyed by node name. The
 * ingest (aggregator/ingest) keeps its dedupe state here, the highest committed sequence
 * number per (node, boot id), in the same transaction as the batches' effects.
 */
#include "store/store_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <string.h>

#define BOOT_ID_MAX 36 /* canonical UUID */

/* Node names are longer than other ids (DNS-1123 subdomains), so they get their own check. */
static int node_check(const char *node) {
    if (node == NULL || *node == '\0') {
        return RSRE_EINVALID;
    }
    if (strnlen(node, RSRE_STORE_NODE_MAX + 1) > RSRE_STORE_NODE_MAX) {
        return RSRE_ELIMIT;
    }
    return 0;
}

int rsre__store_agent_key(const ProtobufCMessage *m, uint8_t *key, size_t *klen) {
    const rsre_store_agent *a = (const rsre_store_agent *)m;
    int rc = node_check(a->node);
    if (rc != 0) {
        return rc;
    }
    *klen = strlen(a->node);
    memcpy(key, a->node, *klen);
    return 0;
}

/* The record's bounds; 0, RSRE_ELIMIT or RSRE_EINVALID. */
static int agent_bounds(const rsre_store_agent *a) {
    if (a->n_boots > RSRE_STORE_AGENT_MAX_BOOTS || a->n_results > RSRE_STORE_AGENT_MAX_RESULTS) {
        return RSRE_ELIMIT;
    }
    for (size_t i = 0; i < a->n_boots; i++) {
        const char *b = a->boots[i] ? a->boots[i]->boot_id : NULL;
        if (b == NULL || *b == '\0') {
            return RSRE_EINVALID;
        }
        if (strnlen(b, BOOT_ID_MAX + 1) > BOOT_ID_MAX) {
            return RSRE_ELIMIT;
        }
    }
    for (size_t i = 0; i < a->n_results; i++) {
        int rc = rsre__store_id_check(a->results[i] ? a->results[i]->request_id : NULL);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int rsre__store_agent_check(const ProtobufCMessage *m) {
    return agent_bounds((const rsre_store_agent *)m) == 0 ? 0 : -1;
}

int rsre__store_migrate_1_to_2(rsre_store_txn *txn) {
    /* The store opens (creating) every database it knows before migrating; make sure the new
     * one exists in this transaction whatever the caller did. Nothing to convert: schema 1 had
     * no per-agent state. */
    MDB_dbi dbi;
    int rc = mdb_dbi_open(txn->mdb, rsre__store_db_name(RSRE__DB_AGENTS), MDB_CREATE, &dbi);
    if (rc != 0) {
        return rsre__store_txn_fail(txn, rc, "dbi_open agents");
    }
    txn->store->dbi[RSRE__DB_AGENTS] = dbi;
    return 0;
}

int rsre_store_agent_put(rsre_store_txn *txn, const rsre_store_agent *rec, unsigned flags) {
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    if (rec == NULL) {
        return -EINVAL;
    }
    uint8_t key[RSRE__STORE_KEY_MAX];
    size_t klen;
    if ((rc = rsre__store_agent_key(&rec->base, key, &klen)) != 0 ||
        (rc = agent_bounds(rec)) != 0) {
        return rc;
    }
    return rsre__store_put(txn, RSRE__DB_AGENTS, key, klen, RSRE__K_AGENT, &rec->base,
                           (flags & RSRE_STORE_NOOVERWRITE) ? MDB_NOOVERWRITE : 0);
}

int rsre_store_agent_get(rsre_store_txn *txn, const char *node, rsre_store_agent **out) {
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    int rc = node_check(node);
    if (rc != 0) {
        return rc;
    }
    return rsre__store_get(txn, RSRE__DB_AGENTS, node, strlen(node), RSRE__K_AGENT,
                           (ProtobufCMessage **)out);
}

int rsre_store_agent_delete(rsre_store_txn *txn, const char *node) {
    int rc = rsre__store_txn_check(txn, 1);
    if (rc != 0) {
        return rc;
    }
    if ((rc = node_check(node)) != 0) {
        return rc;
    }
    MDB_val k = {.mv_size = strlen(node), .mv_data = (void *)node};
    int mrc = mdb_del(txn->mdb, txn->store->dbi[RSRE__DB_AGENTS], &k, NULL);
    return mrc ? rsre__store_txn_fail(txn, mrc, "del agent") : 0;
}

struct agent_iter {
    rsre_store_agent_cb cb;
    void *ud;
};

static int agent_tramp(const ProtobufCMessage *m, void *p) {
    struct agent_iter *it = p;
    return it->cb((const rsre_store_agent *)m, it->ud);
}

int rsre_store_agent_foreach(rsre_store_txn *txn, rsre_store_agent_cb cb, void *ud) {
    if (cb == NULL) {
        return -EINVAL;
    }
    struct agent_iter it = {cb, ud};
    return rsre__store_iterate(txn, RSRE__DB_AGENTS, NULL, 0, NULL, 0, RSRE__K_AGENT, agent_tramp,
                               &it);
}

void rsre_store_agent_free(rsre_store_agent *rec) {
    if (rec != NULL) {
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
}

const rsre_store_agent_boot *rsre_store_agent_boot_find(const rsre_store_agent *rec,
                                                        const char *boot_id) {
    if (rec == NULL || boot_id == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < rec->n_boots; i++) {
        if (rec->boots[i] != NULL && strcmp(rec->boots[i]->boot_id, boot_id) == 0) {
            return rec->boots[i];
        }
    }
    return NULL;
}
