/*
 * Collectors over the container runtime's CRI (agent/cri.h):
 *
 *   image_gc    ListImages + ListContainers + ImageFsInfo (+ Status for the sandbox image,
 *               cached 10 min) -> ImageGcState: counts, unused / pinned / reclaimable bytes, the
 *               bytes image GC must free to reach its low threshold, and whether it can.
 *   containers  ListContainers + ListPodSandbox -> PodChurn (the runtime's part: exited
 *               containers, NotReady sandboxes, containers created / exited since the previous
 *               run). The first run only records the baseline and emits nothing.
 *
 * The computation lives in cri.c (rsre_cri_compute_gc_state, rsre_cri_churn_update); this file
 * only schedules the calls and emits. Every run calls rsre_collect_done exactly once.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/statvfs.h>

#include "agent/agent.h"
#include "agent/cri.h"
#include "common/error.h"
#include "common/log.h"

struct col_state {
    struct rsre_agent *agent;
    struct rsre_collect_run *run; /* the run in flight, NULL when idle */
    struct rsre_cri_churn *churn; /* containers collector only */
    int orphaned;                 /* destroy() came while a run was in flight */
};

static int col_init(struct rsre_agent *a, void **state, int with_churn) {
    *state = NULL;
    if (rsre_agent_cri(a) == NULL) {
        return -ENOTCONN; /* no runtime endpoint configured: the collector stays disabled */
    }
    struct col_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return -ENOMEM;
    }
    st->agent = a;
    if (with_churn && rsre_cri_churn_create(&st->churn) != 0) {
        free(st);
        return -ENOMEM;
    }
    *state = st;
    return 0;
}

static void col_destroy(void *state) {
    struct col_state *st = state;
    if (st == NULL) {
        return;
    }
    if (st->run) {
        st->orphaned = 1; /* freed when the in-flight snapshot completes */
        return;
    }
    rsre_cri_churn_destroy(st->churn);
    free(st);
}

/* Ends the current run; returns 1 when the state was orphaned and has been freed. */
static int finish_run(struct col_state *st, int rc) {
    struct rsre_collect_run *run = st->run;
    st->run = NULL;
    rsre_collect_done(run, rc);
    if (st->orphaned) {
        rsre_cri_churn_destroy(st->churn);
        free(st);
        return 1;
    }
    return 0;
}

/* ---- image_gc ------------------------------------------------------------------------------ */

static int image_gc_init(struct rsre_agent *a, void **state) {
    return col_init(a, state, 0);
}

/* Completes params->fs from statvfs of the CRI's image filesystem when the filesystem collector
 * has not provided it. */
static void fill_fs_from_statvfs(struct rsre_cri_gc_params *p, const char *mountpoint) {
    struct statvfs sv;
    if (p->fs.capacity_bytes != 0 || mountpoint == NULL || mountpoint[0] != '/' ||
        statvfs(mountpoint, &sv) != 0 || sv.f_blocks == 0) {
        return;
    }
    uint64_t frsize = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
    p->fs.capacity_bytes = (uint64_t)sv.f_blocks * frsize;
    uint64_t avail = (uint64_t)sv.f_bavail * frsize;
    p->fs.used_bytes = p->fs.capacity_bytes > avail ? p->fs.capacity_bytes - avail : 0;
}

static void on_image_gc_snapshot(void *arg, int rc, struct rsre_cri_snapshot *snap) {
    struct col_state *st = arg;
    struct rsre_agent *a = st->agent;
    if (rc != 0 || st->orphaned) {
        rsre_cri_snapshot_free(snap);
        finish_run(st, rc ? rc : -ECANCELED);
        return;
    }
    struct rsre_cri *cri = rsre_agent_cri(a);
    struct rsre_cri_gc_params p = {0};
    rsre_cri_get_imagefs(cri, &p.fs);
    p.min_age_s = rsre_agent_config(a)->image_min_age_s;
    p.now_ms = snap->taken_unix_ms;
    RobotSre__Agent__V1__ImageGcState gc;
    RobotSre__Agent__V1__ImageFsInfo fs;
    const char *mnt = NULL;
    if (snap->imagefs && snap->imagefs->n_image_filesystems > 0 &&
        snap->imagefs->image_filesystems[0] && snap->imagefs->image_filesystems[0]->fs_id) {
        mnt = snap->imagefs->image_filesystems[0]->fs_id->mountpoint;
    }
    fill_fs_from_statvfs(&p, mnt);
    rc = rsre_cri_compute_gc_state(snap, rsre_cri_seen_of(cri), &p, &gc, &fs);
    if (rc == 0) {
        RobotSre__Agent__V1__Signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        s.observed_unix_ms = snap->taken_unix_ms;
        s.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_IMAGE_GC;
        s.image_gc = &gc;
        rc = rsre_agent_emit(a, &s);
        RSRE_LOG(RSRE_LOG_DEBUG, "cri",
                 "image_gc images=%u bytes=%llu unused=%u unused_bytes=%llu pinned=%u "
                 "reclaimable=%llu to_gc_low=%llu can_recover=%d",
                 gc.image_count, (unsigned long long)gc.total_bytes, gc.unused_count,
                 (unsigned long long)gc.unused_bytes, gc.pinned_count,
                 (unsigned long long)gc.reclaimable_bytes, (unsigned long long)gc.bytes_to_gc_low,
                 (int)gc.gc_can_recover);
    }
    rsre_cri_snapshot_free(snap); /* after emit: gc/fs point into it */
    finish_run(st, rc);
}

static void image_gc_collect(struct rsre_agent *a, void *state, struct rsre_collect_run *run) {
    struct col_state *st = state;
    st->run = run;
    int rc = rsre_cri_snapshot(rsre_agent_cri(a),
                               RSRE_CRI_SNAP_IMAGES | RSRE_CRI_SNAP_CONTAINERS |
                                   RSRE_CRI_SNAP_IMAGEFS | RSRE_CRI_SNAP_STATUS,
                               on_image_gc_snapshot, st);
    if (rc != 0) {
        finish_run(st, rc);
    }
}

const struct rsre_collector_desc rsre_collector_image_gc = {
    .name = "image_gc",
    .interval_offset = offsetof(struct rsre_agent_config, image_gc_ms),
    .init = image_gc_init,
    .collect = image_gc_collect,
    .destroy = col_destroy,
    .capability = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_IMAGE_GC,
};

/* ---- containers (PodChurn) ----------------------------------------------------------------- */

static int containers_init(struct rsre_agent *a, void **state) {
    return col_init(a, state, 1);
}

static void on_containers_snapshot(void *arg, int rc, struct rsre_cri_snapshot *snap) {
    struct col_state *st = arg;
    if (rc != 0 || st->orphaned) {
        rsre_cri_snapshot_free(snap);
        finish_run(st, rc ? rc : -ECANCELED);
        return;
    }
    RobotSre__Agent__V1__PodChurn churn = ROBOT_SRE__AGENT__V1__POD_CHURN__INIT;
    rc = rsre_cri_churn_update(st->churn, snap, snap->taken_unix_ms, &churn);
    if (rc == 1) {
        RobotSre__Agent__V1__Signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        s.observed_unix_ms = snap->taken_unix_ms;
        s.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_POD_CHURN;
        s.pod_churn = &churn;
        rc = rsre_agent_emit(st->agent, &s);
    }
    rsre_cri_snapshot_free(snap);
    finish_run(st, rc < 0 ? rc : 0);
}

static void containers_collect(struct rsre_agent *a, void *state, struct rsre_collect_run *run) {
    struct col_state *st = state;
    st->run = run;
    int rc =
        rsre_cri_snapshot(rsre_agent_cri(a), RSRE_CRI_SNAP_CONTAINERS | RSRE_CRI_SNAP_SANDBOXES,
                          on_containers_snapshot, st);
    if (rc != 0) {
        finish_run(st, rc);
    }
}

const struct rsre_collector_desc rsre_collector_containers = {
    .name = "containers",
    .interval_offset = offsetof(struct rsre_agent_config, image_gc_ms),
    .init = containers_init,
    .collect = containers_collect,
    .destroy = col_destroy,
    .capability = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_POD_CHURN,
};
