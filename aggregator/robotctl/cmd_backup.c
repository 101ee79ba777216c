/*
 * robotctl backup: an online copy of the aggregator's store, taken directly on the data
 * directory (not over the API): the store is opened read-only next to the running daemon
 * (LMDB allows readers from other processes while the daemon writes), copied compacted with
 * rsre_store_backup, and the copy is opened and its schema and audit chain verified. Run it on
 * the aggregator's host (or a volume it mounts), as a user that can read the data directory.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "robotctl.h"
#include "store/store.h"

int rctl_backup(int argc, char **argv, const struct rctl_opts *o) {
    const char *data = NULL, *to = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
            data = argv[++i];
        } else if (!strcmp(argv[i], "--to") && i + 1 < argc) {
            to = argv[++i];
        } else {
            return rctl_usage_error("usage: robotctl backup --data-dir DIR --to DEST (unexpected "
                                    "'%s')",
                                    argv[i]);
        }
    }
    if (!data || !to) {
        return rctl_usage_error("usage: robotctl backup --data-dir DIR --to DEST");
    }
    rsre_log_set_level_name("warn"); /* the outcome is printed below, the store's info is not */
    struct rsre_store_options opts = {.read_only = 1};
    rsre_store *st;
    int rc = rsre_store_open(data, &opts, &st);
    if (rc) {
        fprintf(stderr, "robotctl: cannot open the store in %s: %s\n", data, rsre_strerror(rc));
        return RCTL_FAIL;
    }
    struct rsre_store_info info;
    memset(&info, 0, sizeof(info));
    rsre_store_info(st, &info);
    rc = rsre_store_backup(st, to);
    rsre_store_close(st);
    if (rc) {
        fprintf(stderr, "robotctl: backup of %s to %s failed: %s%s\n", data, to, rsre_strerror(rc),
                rc == -EEXIST ? " (the destination already holds a store; choose a new directory)"
                              : "");
        return RCTL_FAIL;
    }
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I}", "data_dir", data, "to", to,
                              "verified", 1, "incidents", (json_int_t)info.incidents, "audit",
                              (json_int_t)info.audit, "rules", (json_int_t)info.rules);
        json_dumpf(j, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(j);
    } else {
        printf("backup of %s written to %s and verified (schema, audit chain): %zu incident(s), "
               "%zu audit record(s), %zu rule version(s)\n",
               data, to, info.incidents, info.audit, info.rules);
    }
    return RCTL_OK;
}
