#ifndef RSRE_AGENT_CONFIG_H
#define RSRE_AGENT_CONFIG_H

/*
 * The agent's configuration: one declarative table (name, type, default, bounds, environment
 * variable, description). Sources, later ones winning: built-in defaults, the YAML file given
 * by --config (flat `key: value`), environment variables (ROBOT_SRE_<KEY>, and NODE_NAME from
 * the downward API), then command-line flags `--key=value` / `--key value`. `--help` is
 * generated from the table.
 */

#include <stdio.h>

#include "agent/agent.h"

struct rsre_config_error {
    char msg[512];
};

/* Fills `cfg` with the defaults (node_name: NODE_NAME or the hostname). */
void rsre_agent_config_defaults(struct rsre_agent_config *cfg);

/*
 * Applies file, environment and flags. `envp` may be NULL (then the process environment is
 * used). Returns 0; 1 when --help or --version was handled (printed to `out`); RSRE_EINVALID,
 * RSRE_EPARSE or -errno with `err` naming the key and the problem. On error `cfg` may be
 * partly updated; callers exit.
 */
int rsre_agent_config_load(struct rsre_agent_config *cfg, int argc, char **argv,
                           char *const *envp, FILE *out, struct rsre_config_error *err);

/* Writes the generated help text. */
void rsre_agent_config_help(FILE *out);

/* Writes the effective configuration as `key: value` lines (TLS key path shown, never contents). */
void rsre_agent_config_dump(const struct rsre_agent_config *cfg, FILE *out);

#endif
