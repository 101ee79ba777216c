/* The node-local action table: adding an action is adding a row. Every request is re-checked
 * against the agent's own allowlist (agent.c) before its row runs. */
#include "agent/agent_internal.h"
#include "agent/cri.h"

extern const struct rsre_action_desc rsre_action_delete_finished_pods; /* agent/act_pods.c */

const struct rsre_action_desc *const rsre__actions[] = {
    &rsre_action_delete_finished_pods,      /* Kubernetes: this node's Succeeded/Failed pods */
    &rsre_action_prune_unused_images,       /* CRI RemoveImage by id: unused, unpinned, old */
    &rsre_action_remove_exited_containers,  /* CRI RemoveContainer: exited, older than a bound */
};
const size_t rsre__nactions = sizeof(rsre__actions) / sizeof(rsre__actions[0]);
