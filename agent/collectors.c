/* The collector table: adding a collector is adding a row. Order is start order. */
#include "agent/agent_internal.h"
#include "agent/cri.h"
#include "agent/du.h"
#include "agent/fs_predict.h"
#include "agent/kmsg.h"

extern const struct rsre_collector_desc rsre_collector_kube;  /* agent/col_kube.c */

const struct rsre_collector_desc *const rsre__collectors[] = {
    &rsre_collector_filesystem, /* nodefs/imagefs usage, thresholds, fill rate, ETA */
    &rsre_collector_image_gc,   /* CRI images: unused, pinned, reclaimable, GC can recover */
    &rsre_collector_containers, /* CRI containers/sandboxes: exited, NotReady, churn */
    &rsre_collector_kmsg,       /* /dev/kmsg: OOM kills, ENOSPC, fs errors, hung tasks */
    &rsre_collector_psi,        /* /proc/pressure/{cpu,memory,io} */
    &rsre_collector_du,         /* top disk consumers under a time/IO budget */
    &rsre_collector_kube,       /* own node conditions/taints, own pods: phases, pull errors */
};
const size_t rsre__ncollectors = sizeof(rsre__collectors) / sizeof(rsre__collectors[0]);
