#ifndef RSRE_KUBE_PROTO_H
#define RSRE_KUBE_PROTO_H

/*
 * A Kubernetes node as decoded by common/kube_json.h, as the protocol's NodeConditions signal
 * (proto/robot_sre/agent.proto). The agent sends its own node's conditions this way and the
 * aggregator's node observer hands the control plane's view to the incident engine the same way.
 */

#include "common/kube_json.h"
#include "robot_sre/agent.pb-c.h"

/*
 * Fills *nc (with cond[] and taints[] / taint_ptrs[] as its storage) from node n. Strings
 * point into n, so n must outlive *nc. Conditions the node does not report stay unset; taints
 * beyond RSRE_KUBE_MAX_TAINTS are left out.
 */
void rsre_kube_node_conditions_pb(const struct rsre_kube_node *n,
                                  RobotSre__Agent__V1__NodeConditions *nc,
                                  RobotSre__Agent__V1__NodeCondition cond[RSRE_KUBE_NODE_NCOND],
                                  RobotSre__Agent__V1__Taint taints[RSRE_KUBE_MAX_TAINTS],
                                  RobotSre__Agent__V1__Taint *taint_ptrs[RSRE_KUBE_MAX_TAINTS]);

#endif
