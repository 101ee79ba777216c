/* Runtime (CRI) and Kubernetes clients shared by collectors and actions. A client that cannot
 * be set up is left NULL and logged once; the collectors that need it report errors. */
#include <stdio.h>

#include "agent/agent_internal.h"
#include "agent/cri.h"
#include "common/error.h"
#include "common/log.h"

#include "agent/fs_predict.h"

static void (*services_done)(struct rsre_agent *a);

/* After each filesystem collection, hand imagefs usage and the kubelet's image-GC thresholds
 * to the CRI client, whose image-GC collector computes reclaimable bytes against them. */
static void imagefs_to_cri(struct rsre_agent *a) {
    struct rsre_fs_view view;
    if (!a->cri || rsre_fs_imagefs(a, &view) != 0 || !view.valid) {
        return;
    }
    struct rsre_cri_imagefs fsi = {
        .capacity_bytes = view.usage.bytes_total,
        .used_bytes = view.usage.bytes_total > view.usage.bytes_avail
                          ? view.usage.bytes_total - view.usage.bytes_avail
                          : 0,
        .gc_high_percent = view.gc_high_percent,
        .gc_low_percent = view.gc_low_percent};
    rsre_cri_set_imagefs(a->cri, &fsi);
}

/* Data one collector's run produces that another module consumes: a row per hand-over. */
static const struct {
    const struct rsre_collector_desc *after;
    void (*fn)(struct rsre_agent *a);
} handovers[] = {
    {&rsre_collector_filesystem, imagefs_to_cri},
};

void rsre__agent_after_collect(struct rsre_agent *a, const struct rsre_collector_desc *d) {
    for (size_t i = 0; i < sizeof(handovers) / sizeof(handovers[0]); i++) {
        if (handovers[i].after == d) {
            handovers[i].fn(a);
        }
    }
}

static void start_kube(struct rsre_agent *a) {
    struct rsre_kube_config kc = {0};
    char err[256] = "";
    int rc = rsre_kube_config_auto(&kc, a->cfg.kube_api, a->cfg.kubeconfig, NULL, err,
                                   sizeof(err));
    if (rc) {
        RSRE_LOG(RSRE_LOG_WARN, "agent", "Kubernetes API not configured (%s): %s",
                 rsre_strerror(rc), err);
        rsre_kube_config_clear(&kc);
        return;
    }
    if ((rc = rsre_http_create(a->loop, &a->http)) ||
        (rc = rsre_kube_create(a->http, &kc, &a->kube))) {
        RSRE_LOG(RSRE_LOG_WARN, "agent", "Kubernetes client not started: %s", rsre_strerror(rc));
        a->kube = NULL;
    }
    rsre_kube_config_clear(&kc);
}

void rsre__agent_services_start(struct rsre_agent *a) {
    if (a->cfg.cri_socket[0]) {
        int rc = rsre_cri_create(a->loop, a->grpc, a->cfg.cri_socket, &a->cri);
        if (rc) {
            RSRE_LOG(RSRE_LOG_WARN, "agent", "CRI client for %s not started: %s",
                     a->cfg.cri_socket, rsre_strerror(rc));
            a->cri = NULL;
        }
    }
    start_kube(a);
}

static void on_cri_closed(void *arg) {
    struct rsre_agent *a = arg;
    a->cri = NULL;
    services_done(a);
}

void rsre__agent_services_stop(struct rsre_agent *a, void (*done)(struct rsre_agent *a)) {
    services_done = done;
    rsre_kube_destroy(a->kube); /* informers were stopped with their collectors */
    a->kube = NULL;
    rsre_http_destroy(a->http);
    a->http = NULL;
    if (a->cri) {
        rsre_cri_destroy(a->cri, on_cri_closed, a);
    } else {
        done(a);
    }
}
