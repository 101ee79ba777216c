/*
 * robotctl — the Robot SRE operator CLI.
 *
 *   robotctl [--json] <group> <command> [options]
 *
 * Commands are rows of the table below; `robotctl --help` is generated from it.
 */
#include "robotctl.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

#ifndef RSRE_VERSION
#define RSRE_VERSION "0.1.0"
#endif

static const struct {
    const char *group, *verb, *args, *summary;
    rctl_cmd_fn fn;
} commands[] = {
    {"policy", "matrix", "[--env E] [--rules DIR]",
     "the spec's policy matrix, computed by the policy engine", rctl_policy_matrix},
    {"policy", "preview", "--incident T --action A --env E [--confidence C] [--target X] "
     "[--rules DIR] [--last-run-ago S]",
     "the decision for one action and every reason, layer by layer", rctl_policy_preview},
    {"rules", "validate", "FILE...",
     "check operator rule files against the schema and the safety boundaries",
     rctl_rules_validate},
    {"taxonomy", "show", "[INCIDENT]", "incident classes, or one class in full",
     rctl_taxonomy_show},
    {"evidence", "classify", "[FILE|-] [--patterns [--markdown]]",
     "classify evidence records (JSON lines) to incident classes, with the matching pattern",
     rctl_evidence_classify},
    /* Over the admin API: every row below also takes --server URL (ROBOT_SRE_SERVER),
     * --token-file F (ROBOT_SRE_TOKEN_FILE, or the token in ROBOT_SRE_TOKEN), --cacert F. */
    {"incidents", "list", "[--state S] [--type T] [--limit N]",
     "incidents from the aggregator (state: open, observed, ..., resolved)", rctl_incidents_list},
    {"incidents", "show", "ID", "one incident with its evidence timeline and actions",
     rctl_incidents_show},
    {"approvals", "list", "[--state S] [--incident ID]", "approval requests and their votes",
     rctl_approvals_list},
    {"approvals", "approve", "ID [--comment C]", "approve a request (role approver)",
     rctl_approvals_approve},
    {"approvals", "deny", "ID [--comment C]", "deny a request (role approver)",
     rctl_approvals_deny},
    {"audit", "list", "[--from SEQ] [--limit N]", "the audit log, oldest first",
     rctl_audit_list},
    {"audit", "verify", "", "verify the audit log's hash chain on the server (exit 1 if broken)",
     rctl_audit_verify},
    {"rules", "list", "", "built-in rules and the latest version of every operator rule",
     rctl_rules_list},
    {"rules", "show", "ID", "one rule with every stored version", rctl_rules_show},
    {"rules", "clone", "ID NEW_ID --comment WHY [--owner O]",
     "copy a built-in or operator rule under a new id (starts disabled; role admin)",
     rctl_rules_clone},
    {"rules", "enable", "ID --env E --comment WHY",
     "enable an operator rule in an environment (demo, staging, production, all; role admin)",
     rctl_rules_enable},
    {"rules", "disable", "ID --env E --comment WHY", "disable an operator rule in an environment",
     rctl_rules_disable},
    {"rules", "edit",
     "ID --comment WHY [--threshold EXPR] [--severity S] [--cooldown S|none] [--channels a,b] "
     "[--route R|none] [--dedupe S] [--selector X] [--name N] [--owner O]",
     "change thresholds and routing; the server refuses what crosses a boundary (role admin)",
     rctl_rules_edit},
    {"rules", "preview", "ID --action A --env E [--incident T] [--confidence C] [--target X]",
     "the policy outcome of an action under the current rules, with every reason",
     rctl_rules_preview},
    {"rules", "test", "ID [--limit N]",
     "which recent incidents' stored evidence the rule's threshold would match", rctl_rules_test},
    {"agents", "list", "", "agents with connection, last seen, boot id and committed seq",
     rctl_agents_list},
    {"notifications", "list", "[--unacked] [--limit N]",
     "in-app notifications, newest first (incidents, approvals, delivery failures)",
     rctl_notifications_list},
    {"notifications", "ack", "ID", "acknowledge an in-app notification (role operator)",
     rctl_notifications_ack},
    {"backup", "store", "--data-dir DIR --to DEST",
     "online, verified copy of the store, taken directly on the data directory (not over the "
     "API)",
     rctl_backup},
};

static void usage(FILE *f) {
    fprintf(f, "usage: robotctl [--json] <group> <command> [options]\n\n"
               "Robot SRE operator CLI. Tables for people; --json for scripts.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %s %s %s\n      %s\n", commands[i].group, commands[i].verb, commands[i].args,
                commands[i].summary);
    }
    fprintf(f, "\nAPI commands (incidents, approvals, audit, rules except validate, agents) also take\n"
               "  --server URL    (ROBOT_SRE_SERVER, default http://127.0.0.1:8080)\n"
               "  --token-file F  (ROBOT_SRE_TOKEN_FILE; or the token itself in ROBOT_SRE_TOKEN)\n"
               "  --cacert F      (ROBOT_SRE_CACERT) CA bundle for https with a private CA\n");
    fprintf(f, "\nglobal options:\n  --json     machine-readable output\n"
               "  --help     this text\n  --version  print the version\n"
               "\nexit status: 0 ok, 1 the command found a problem, 2 usage error\n");
}

int main(int argc, char **argv) {
    struct rctl_opts o = {0};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--json")) {
            o.json = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return RCTL_OK;
        } else if (!strcmp(argv[i], "--version")) {
            printf("robotctl %s\n", RSRE_VERSION);
            return RCTL_OK;
        } else {
            usage(stderr);
            return rctl_usage_error("unknown option '%s'", argv[i]);
        }
    }
    if (i + 2 > argc) {
        usage(stderr);
        return RCTL_USAGE;
    }
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
        if (!strcmp(argv[i], commands[c].group) && !strcmp(argv[i + 1], commands[c].verb)) {
            /* Sub-commands accept --json after the verb too. */
            int n = 0;
            char *rest[256];
            for (int k = i + 2; k < argc && n < 255; k++) {
                if (!strcmp(argv[k], "--json")) {
                    o.json = 1;
                } else if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                    printf("usage: robotctl %s %s %s\n  %s\n", commands[c].group,
                           commands[c].verb, commands[c].args, commands[c].summary);
                    return RCTL_OK;
                } else {
                    rest[n++] = argv[k];
                }
            }
            rest[n] = NULL;
            return commands[c].fn(n, rest, &o);
        }
    }
    usage(stderr);
    return rctl_usage_error("unknown command '%s %s'", argv[i], argv[i + 1]);
}
