/* The daemon's rule set and its reload after a rule change (wire_rules.h). */
#include "daemon/wire_rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"

struct add_ctx {
    struct rsre_ruleset *rs;
    char *err;
    size_t cap;
    size_t skipped; /* stored rules that did not load */
};

/* Versions arrive in ascending order per rule id: the last one seen before the id changes is
 * the latest. Rule texts are copied by the loader into the set (it keeps no pointer into
 * the transaction). */
struct latest_ctx {
    char id[RSRE_STORE_ID_MAX + 1];
    char *yaml;
    uint32_t version;
    struct add_ctx *add;
};

static int add_text(struct add_ctx *a, const char *id, uint32_t version, const char *yaml) {
    char origin[RSRE_STORE_ID_MAX + 32];
    snprintf(origin, sizeof(origin), "rule/%s@v%u", id, version);
    struct rsre_rule_error e;
    memset(&e, 0, sizeof(e));
    int rc = rsre_ruleset_add_yaml(a->rs, origin, yaml, strlen(yaml), &e);
    if (rc) {
        rsre_rule_error_format(&e, a->err, a->cap);
    }
    return rc;
}

/* A stored rule that no longer loads (say, the taxonomy changed under it) is skipped with an
 * error, not fatal: the daemon must start so that the rule can be fixed over the API, and
 * without it the built-in rule of its class applies. */
static int flush(struct latest_ctx *l) {
    if (!l->yaml) {
        return 0;
    }
    int rc = add_text(l->add, l->id, l->version, l->yaml);
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator",
                 "stored rule %s v%u does not load and is skipped (fix it over the admin API): %s",
                 l->id, l->version, l->add->err);
        l->add->err[0] = '\0';
        l->add->skipped++;
    }
    free(l->yaml);
    l->yaml = NULL;
    return 0;
}

static int latest_cb(const rsre_store_rule *r, void *ud) {
    struct latest_ctx *l = ud;
    if (l->yaml && strcmp(l->id, r->rule_id)) {
        int rc = flush(l);
        if (rc) {
            return rc;
        }
    }
    free(l->yaml);
    l->yaml = strdup(r->yaml ? r->yaml : "");
    if (!l->yaml) {
        return -ENOMEM;
    }
    snprintf(l->id, sizeof(l->id), "%s", r->rule_id);
    l->version = r->version;
    return 0;
}

int rsre__wire_rules_build(rsre_store *store, const char *rules_dir, struct rsre_ruleset **out,
                           char *err, size_t cap) {
    *out = NULL;
    err[0] = '\0';
    struct add_ctx a = {.err = err, .cap = cap};
    int rc = rsre_ruleset_create(NULL, &a.rs);
    if (rc) {
        snprintf(err, cap, "cannot create a rule set: %s", rsre_strerror(rc));
        return rc;
    }
    rsre_store_txn *txn;
    if ((rc = rsre_store_txn_begin(store, 1, &txn))) {
        snprintf(err, cap, "cannot read the stored rules: %s", rsre_strerror(rc));
        rsre_ruleset_destroy(a.rs);
        return rc;
    }
    struct latest_ctx l = {.add = &a};
    rc = rsre_store_rule_foreach(txn, NULL, latest_cb, &l);
    if (!rc) {
        rc = flush(&l);
    }
    free(l.yaml);
    rsre_store_txn_abort(txn);
    if (rc) {
        if (!err[0]) {
            snprintf(err, cap, "cannot read the stored rules: %s", rsre_strerror(rc));
        }
        rsre_ruleset_destroy(a.rs);
        return rc;
    }
    if (rules_dir && rules_dir[0]) {
        struct rsre_rule_error e;
        memset(&e, 0, sizeof(e));
        if ((rc = rsre_ruleset_add_dir(a.rs, rules_dir, &e))) {
            rsre_rule_error_format(&e, err, cap);
            rsre_ruleset_destroy(a.rs);
            return rc;
        }
    }
    *out = a.rs;
    return 0;
}

int rsre__wire_rules_reload(rsre_store *store, const char *rules_dir,
                            struct rsre_incident_engine *engine, struct rsre_ruleset **current,
                            const char *rule_id, uint32_t version) {
    char err[700];
    struct rsre_ruleset *rs;
    int rc = rsre__wire_rules_build(store, rules_dir, &rs, err, sizeof(err));
    if (!rc && (rc = rsre_incident_engine_set_rules(engine, rs))) {
        snprintf(err, sizeof(err), "the engine refused the new rules: %s", rsre_strerror(rc));
        rsre_ruleset_destroy(rs);
    }
    if (rc) {
        RSRE_LOG(RSRE_LOG_ERROR, "aggregator",
                 "rules reload after rule=%s version=%u failed, previous rules kept: %s", rule_id,
                 version, err);
        rsre_store_txn *txn;
        if (!rsre_store_txn_begin(store, 0, &txn)) {
            char object[RSRE_STORE_ID_MAX + 16];
            snprintf(object, sizeof(object), "rule/%s", rule_id);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            if (rsre_store_audit_append(txn, "robot-sre", "rules reload failed", object, err, "",
                                        (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, NULL)) {
                rsre_store_txn_abort(txn);
            } else {
                rsre_store_txn_commit(txn);
            }
        }
        return rc;
    }
    rsre_ruleset_destroy(*current);
    *current = rs;
    RSRE_LOG(RSRE_LOG_INFO, "aggregator", "rules reloaded after rule=%s version=%u: %zu rules",
             rule_id, version, rsre_ruleset_count(rs));
    return 0;
}
