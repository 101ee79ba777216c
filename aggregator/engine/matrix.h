#ifndef RSRE_MATRIX_H
#define RSRE_MATRIX_H

/*
 * The spec's policy matrix, computed from the policy engine (never printed from a string):
 * for each incident class and a set of environments, which observe / notify / contain actions
 * run without approval, which need approval everywhere, and which only a human may do.
 * Every cell is derived by calling rsre_policy_decide at high confidence on an allowlisted
 * target (and on a target outside the allowlist, to tell "allowlist only").
 */

#include <stddef.h>

#include "engine/policy.h"

#define RSRE_MATRIX_CELL 256

struct rsre_matrix_row {
    const struct rsre_incident_def *incident;
    char auto_observe[16];
    char auto_notify[16];
    char auto_contain[RSRE_MATRIX_CELL];
    char approval[RSRE_MATRIX_CELL];
    char human_only[RSRE_MATRIX_CELL];
    /* Structured form of the same cells, in the order the class lists its actions. */
    unsigned nauto_contain, napproval, nhuman;
    const struct rsre_action_def *auto_contain_actions[RSRE_MAX_ACTIONS];
    const struct rsre_action_def *approval_actions[RSRE_MAX_ACTIONS];
    const struct rsre_action_def *human_actions[RSRE_MAX_ACTIONS];
    unsigned auto_contain_envs; /* bit (1u << env) where some contain action is auto */
};

/*
 * Computes one row for `inc` over the environments in `env_mask` (bit (1u << env); 0 means
 * all), with the operator rules `rules` (may be NULL). Never fails.
 */
void rsre_matrix_row(const struct rsre_taxonomy *t, const struct rsre_incident_def *inc,
                     unsigned env_mask, const struct rsre_ruleset *rules,
                     struct rsre_matrix_row *out);

/* A target that the built-in allowlist of `a`'s family accepts, or NULL when there is none. */
const char *rsre_matrix_sample_target(const struct rsre_taxonomy *t,
                                      const struct rsre_action_def *a);

#endif
