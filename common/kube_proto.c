/* Kubernetes node -> protocol NodeConditions (common/kube_proto.h). */
#include "common/kube_proto.h"

#include <stddef.h>

#define M(x) RobotSre__Agent__V1__##x

void rsre_kube_node_conditions_pb(const struct rsre_kube_node *n, M(NodeConditions) * nc,
                                  M(NodeCondition) cond[RSRE_KUBE_NODE_NCOND],
                                  M(Taint) taints[RSRE_KUBE_MAX_TAINTS],
                                  M(Taint) * taint_ptrs[RSRE_KUBE_MAX_TAINTS]) {
    static const M(NodeConditions) nc_init = ROBOT_SRE__AGENT__V1__NODE_CONDITIONS__INIT;
    static const M(NodeCondition) cond_init = ROBOT_SRE__AGENT__V1__NODE_CONDITION__INIT;
    static const M(Taint) taint_init = ROBOT_SRE__AGENT__V1__TAINT__INIT;
    *nc = nc_init;
    M(NodeCondition) * *slots[RSRE_KUBE_NODE_NCOND] = {
        [RSRE_KUBE_NODE_READY] = &nc->ready,
        [RSRE_KUBE_NODE_DISK_PRESSURE] = &nc->disk_pressure,
        [RSRE_KUBE_NODE_MEMORY_PRESSURE] = &nc->memory_pressure,
        [RSRE_KUBE_NODE_PID_PRESSURE] = &nc->pid_pressure,
        [RSRE_KUBE_NODE_NETWORK_UNAVAILABLE] = &nc->network_unavailable,
    };
    for (int i = 0; i < RSRE_KUBE_NODE_NCOND; i++) {
        const struct rsre_kube_condition *c = &n->cond[i];
        if (c->status == RSRE_KUBE_COND_UNSET) {
            continue;
        }
        cond[i] = cond_init;
        /* The enum values are the proto's ConditionStatus values (kube_json.h). */
        cond[i].status = (M(ConditionStatus))c->status;
        cond[i].reason = (char *)c->reason;
        cond[i].message = c->message ? c->message : (char *)"";
        cond[i].last_transition_unix_ms = c->last_transition_ms;
        cond[i].last_heartbeat_unix_ms = c->last_heartbeat_ms;
        *slots[i] = &cond[i];
    }
    size_t nt = n->ntaints < RSRE_KUBE_MAX_TAINTS ? n->ntaints : RSRE_KUBE_MAX_TAINTS;
    for (size_t i = 0; i < nt; i++) {
        taints[i] = taint_init;
        taints[i].key = (char *)n->taints[i].key;
        taints[i].value = (char *)n->taints[i].value;
        taints[i].effect = (M(TaintEffect))n->taints[i].effect;
        taints[i].time_added_unix_ms = n->taints[i].time_added_ms;
        taint_ptrs[i] = &taints[i];
    }
    nc->n_taints = nt;
    nc->taints = nt ? taint_ptrs : NULL;
    nc->unschedulable = n->unschedulable ? 1 : 0;
}
