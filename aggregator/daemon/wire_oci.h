#ifndef RSRE_WIRE_OCI_H
#define RSRE_WIRE_OCI_H

/*
 * The daemon's OCI executor (docs/executors.md "OCI", docs/oci.md): reboot_worker and
 * replace_worker for a Kubernetes node. The node's spec.providerID ("oci://<instance OCID>")
 * and its node-pool label are read from the Kubernetes API (GET /api/v1/nodes/{name}) at
 * execution time, so the instance is the node's current one; then exec/oci.h reboots it
 * (SOFTRESET, one RESET if the guest is still STOPPING at the soft-reset timeout) or deletes it
 * from its OKE node pool keeping the pool's size, and verifies the effect. A dry run reads
 * the node and the instance (which must be RUNNING) and changes nothing.
 *
 * A reboot is confirmed by the node itself: the status.nodeInfo.bootID read before the reboot
 * must be replaced by another one (the kubelet reports the kernel's boot id) within
 * reboot_verify_ms of the instance being RUNNING again, read every 5 s through the same
 * Kubernetes client; else the run fails ("... kept boot id ...: the reboot is not
 * confirmed"). Failed reads are logged and retried until that deadline. A node that reported
 * no boot id before the reboot succeeds with "boot id not reported by the node: not verified".
 *
 * Every request is signed with the configured API key (exec/oci_sign.h). Without oci_tenancy
 * the executor is off: rsre__wire_oci_create gives NULL and the daemon fails those actions
 * with "OCI executor not configured" (never a silent success).
 *
 * Loop thread only. `done` runs exactly once per started run, from the loop, unless the
 * executor is destroyed first (then never).
 */

#include <stddef.h>
#include <uv.h>

#include "common/kube.h"
#include "daemon/daemon.h"

struct rsre__wire_oci;

/* (record_id, ok, message): the outcome of one run; message is readable and bounded. */
typedef void (*rsre__wire_oci_done_cb)(void *arg, const char *record_id, int ok,
                                       const char *message);

/*
 * From the daemon's oci_* rows: 0 with *out NULL when oci_tenancy and every other oci_* row
 * are empty (not configured); 0 with a client; or RSRE_EINVALID / a key loading error with
 * err filled (a partial or wrong configuration never starts silently).
 */
int rsre__wire_oci_create(uv_loop_t *loop, const struct rsre_aggregator_config *cfg,
                          struct rsre__wire_oci **out, char *err, size_t cap);

/* Abandons every run (no callbacks; node reads, OCI calls and verification timers stopped) and
 * releases the client; the loop must run once more for its handles to close. NULL is a no-op. */
void rsre__wire_oci_destroy(struct rsre__wire_oci *w);

/*
 * Starts `action` ("reboot_worker" or "replace_worker") on `node`, reading the node through
 * `kube` (borrowed; must outlive the run or the executor). Returns 0 (done will run), or
 * RSRE_EINVALID (another action, no node), -ENOMEM, -ESHUTDOWN with err filled (done never
 * runs).
 */
int rsre__wire_oci_run(struct rsre__wire_oci *w, struct rsre_kube *kube, const char *action,
                       const char *node, const char *record_id, int dry_run,
                       rsre__wire_oci_done_cb done, void *arg, char *err, size_t cap);

#endif
