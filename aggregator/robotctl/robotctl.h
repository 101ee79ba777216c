#ifndef RSRE_ROBOTCTL_H
#define RSRE_ROBOTCTL_H

/* robotctl: the operator's CLI. Each command is a row in the table in robotctl.c. */

#include <stdio.h>

#define RCTL_OK 0
#define RCTL_FAIL 1  /* the command ran and found a problem (invalid rule, failed check) */
#define RCTL_USAGE 2 /* bad command line */

struct rctl_opts {
    int json;
};

typedef int (*rctl_cmd_fn)(int argc, char **argv, const struct rctl_opts *o);

int rctl_policy_matrix(int argc, char **argv, const struct rctl_opts *o);
int rctl_policy_preview(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_validate(int argc, char **argv, const struct rctl_opts *o);
int rctl_taxonomy_show(int argc, char **argv, const struct rctl_opts *o);
int rctl_evidence_classify(int argc, char **argv, const struct rctl_opts *o);
/* Over the admin API (cmd_api.c): --server URL, --token-file F, --cacert F. */
int rctl_incidents_list(int argc, char **argv, const struct rctl_opts *o);
int rctl_incidents_show(int argc, char **argv, const struct rctl_opts *o);
int rctl_approvals_list(int argc, char **argv, const struct rctl_opts *o);
int rctl_approvals_approve(int argc, char **argv, const struct rctl_opts *o);
int rctl_approvals_deny(int argc, char **argv, const struct rctl_opts *o);
int rctl_audit_list(int argc, char **argv, const struct rctl_opts *o);
int rctl_audit_verify(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_list(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_show(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_clone(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_enable(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_disable(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_edit(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_preview(int argc, char **argv, const struct rctl_opts *o);
int rctl_rules_test(int argc, char **argv, const struct rctl_opts *o);
int rctl_agents_list(int argc, char **argv, const struct rctl_opts *o);
/* In-app notifications over the admin API (cmd_notify.c). */
int rctl_notifications_list(int argc, char **argv, const struct rctl_opts *o);
int rctl_notifications_ack(int argc, char **argv, const struct rctl_opts *o);
/* Directly on a data directory (cmd_backup.c). */
int rctl_backup(int argc, char **argv, const struct rctl_opts *o);

/* A plain-text table: add rows of `ncols` cells, then print with aligned columns. */
struct rctl_table;
struct rctl_table *rctl_table_new(int ncols, const char *const *headers);
void rctl_table_row(struct rctl_table *t, const char *const *cells);
void rctl_table_print(struct rctl_table *t, FILE *f); /* prints and frees */

/* Prints "robotctl: <message>" on stderr and returns RCTL_USAGE. */
int rctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
