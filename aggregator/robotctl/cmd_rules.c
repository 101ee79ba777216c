#include <jansson.h>
#include <string.h>

#include "common/error.h"
#include "engine/rules.h"
#include "robotctl.h"

/*
 * Validates each file on top of the built-in rules and the files before it (so duplicate ids
 * across files are caught). Prints one line per file; exit 1 if any file is rejected.
 */
int rctl_rules_validate(int argc, char **argv, const struct rctl_opts *o) {
    if (argc == 0) {
        return rctl_usage_error("rules validate needs at least one FILE");
    }
    struct rsre_ruleset *rs;
    if (rsre_ruleset_create(NULL, &rs)) {
        fprintf(stderr, "robotctl: out of memory\n");
        return RCTL_FAIL;
    }
    int failed = 0;
    json_t *results = json_array();
    for (int i = 0; i < argc; i++) {
        size_t before = rsre_ruleset_count(rs);
        struct rsre_rule_error err;
        int rc = rsre_ruleset_add_file(rs, argv[i], &err);
        char msg[700];
        if (rc) {
            failed = 1;
            rsre_rule_error_format(&err, msg, sizeof(msg));
            if (o->json) {
                json_array_append_new(
                    results, json_pack("{s:s, s:b, s:s, s:i, s:i, s:s, s:s, s:s}", "file", argv[i],
                                       "ok", 0, "error", rsre_strerror(rc), "line", err.line,
                                       "column", err.col, "field", err.field, "message", err.msg,
                                       "text", msg));
            } else {
                fprintf(stdout, "invalid %s\n", msg);
            }
            continue;
        }
        size_t added = rsre_ruleset_count(rs) - before;
        json_t *ids = json_array();
        for (size_t k = before; k < rsre_ruleset_count(rs); k++) {
            json_array_append_new(ids, json_string(rsre_ruleset_get(rs, k)->id));
        }
        if (o->json) {
            json_array_append_new(results,
                                  json_pack("{s:s, s:b, s:o}", "file", argv[i], "ok", 1, "rules",
                                            ids));
        } else {
            printf("ok      %s: %zu rule%s (", argv[i], added, added == 1 ? "" : "s");
            for (size_t k = 0; k < json_array_size(ids); k++) {
                printf("%s%s", k ? ", " : "", json_string_value(json_array_get(ids, k)));
            }
            printf(")\n");
            json_decref(ids);
        }
    }
    if (o->json) {
        json_dumpf(results, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    json_decref(results);
    rsre_ruleset_destroy(rs);
    return failed ? RCTL_FAIL : RCTL_OK;
}
