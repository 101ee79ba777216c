/*
 * Node-local actions over the container runtime's CRI (agent/cri.h). The agent has already
 * checked its allowlist and the request deadline before `run` is called; these functions add the
 * runtime-side guards and never run a shell command.
 *
 *   prune_unused_images       removes, by image id, every image no container uses: never a
 *                             pinned image (CRI pinned or the runtime's sandbox image), never an
 *                             image referenced by any container in any state, never one first
 *                             seen less than image_min_age_s ago. Containers are listed again
 *                             immediately before each removal and the image re-checked against
 *                             that list. bytes_freed = sum of the CRI sizes of removed images.
 *   remove_exited_containers  removes containers in state EXITED that finished at least
 *                             exited_container_min_age_s ago (ContainerStatus is read again just
 *                             before each removal; anything not EXITED is never touched). The
 *                             newest exited container of each (pod, container name) is kept
 *                             while the pod has a ready sandbox, as kubelet keeps it for
 *                             `kubectl logs --previous`. bytes_freed stays 0 (CRI does not say).
 *
 * Dry-run performs the same reads and checks and reports what would be removed, removing
 * nothing. Work stops at the request's deadline with status TIMEOUT and the partial effects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "agent/cri.h"
#include "common/error.h"
#include "common/log.h"

#define ST_(x) ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_##x

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* State shared by both actions: a list of candidates worked through one at a time. */
struct job {
    struct rsre_action_ctx *ctx;
    struct rsre_cri *cri;
    struct rsre_cri_snapshot *snap; /* the listing the candidates point into */
    size_t *cand;                   /* indexes into snap->images->images / containers */
    size_t ncand, next;
    uint32_t min_age_s;
    uint64_t bytes;
    uint32_t removed, skipped, failed;
    int first_err;
    int timed_out;
    /* objects kept, by reason, for the message */
    uint32_t kept_in_use, kept_pinned, kept_young;
    const struct labels *labels;
};

/* How the result message names the objects and the reasons they were kept. */
struct labels {
    const char *what;   /* "unused images" */
    const char *in_use; /* why kept_in_use objects stay */
    const char *pinned; /* why kept_pinned objects stay */
    const char *young;  /* why kept_young objects stay ("younger than %us") */
};

static const struct labels image_labels = {"unused images", "in use", "pinned", "first seen <"};
static const struct labels container_labels = {"exited containers", "not exited",
                                               "newest of its pod container", "finished <"};

static struct job *job_new(struct rsre_action_ctx *ctx, const struct labels *labels) {
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        rsre_action_set(ctx, ST_(FAILED), "out of memory");
        rsre_action_done(ctx);
        return NULL;
    }
    j->ctx = ctx;
    j->labels = labels;
    j->cri = rsre_agent_cri(ctx->agent);
    if (j->cri == NULL) {
        free(j);
        rsre_action_set(ctx, ST_(FAILED), "no container runtime (CRI) endpoint is configured");
        rsre_action_done(ctx);
        return NULL;
    }
    return j;
}

static void job_free(struct job *j) {
    rsre_cri_snapshot_free(j->snap);
    free(j->cand);
    free(j);
}

static int past_deadline(const struct job *j) {
    int64_t d = j->ctx->req ? j->ctx->req->deadline_unix_ms : 0;
    return d > 0 && wall_ms() >= d;
}

static int dry_run(const struct job *j) {
    return j->ctx->req && j->ctx->req->dry_run;
}

/* Records a per-object failure; the first one is kept for the message. */
static void note_failure(struct job *j, int rc) {
    j->failed++;
    if (j->first_err == 0) {
        j->first_err = rc;
    }
}

/* Fills the result and hands the context back to the agent. */
static void job_finish(struct job *j) {
    struct rsre_action_ctx *ctx = j->ctx;
    const struct labels *l = j->labels;
    char kept[200];
    snprintf(kept, sizeof(kept), "kept: %s %u, %s %u, %s %us %u; skipped %u", l->in_use,
             j->kept_in_use, l->pinned, j->kept_pinned, l->young, j->min_age_s, j->kept_young,
             j->skipped);
    ctx->result.bytes_freed = j->bytes;
    ctx->result.objects_removed = j->removed;
    if (j->timed_out) {
        rsre_action_set(ctx, ST_(TIMEOUT),
                        "deadline reached: %s %u of %zu %s (%llu bytes); %u failed",
                        dry_run(j) ? "would remove" : "removed", j->removed, j->ncand, l->what,
                        (unsigned long long)j->bytes, j->failed);
    } else if (j->failed) {
        rsre_action_set(ctx, ST_(FAILED), "removed %u of %zu %s (%llu bytes); %u failed, first: %s",
                        j->removed, j->ncand, l->what, (unsigned long long)j->bytes, j->failed,
                        rsre_strerror(j->first_err));
    } else {
        rsre_action_set(ctx, dry_run(j) ? ST_(DRY_RUN) : ST_(OK), "%s %u %s (%llu bytes); %s",
                        dry_run(j) ? "would remove" : "removed", j->removed, l->what,
                        (unsigned long long)j->bytes, kept);
    }
    job_free(j);
    rsre_action_done(ctx);
}

/* ---- prune_unused_images ------------------------------------------------------------------- */

static void prune_step(struct job *j);

static const Runtime__V1__Image *cand_image(const struct job *j, size_t k) {
    return j->snap->images->images[j->cand[k]];
}

static void on_image_removed(void *arg, int rc, ProtobufCMessage *reply) {
    struct job *j = arg;
    const Runtime__V1__Image *img = cand_image(j, j->next);
    rsre_cri_free(reply);
    if (rc == 0) {
        j->removed++;
        j->bytes += img->size;
        rsre_action_add_removed(j->ctx, img->id);
        RSRE_LOG(RSRE_LOG_INFO, "cri", "prune_unused_images removed image=%s bytes=%llu", img->id,
                 (unsigned long long)img->size);
    } else {
        note_failure(j, rc);
        RSRE_LOG(RSRE_LOG_WARN, "cri", "prune_unused_images could not remove image=%s: %s", img->id,
                 rsre_strerror(rc));
    }
    j->next++;
    prune_step(j);
}

/* The fresh container list for the image about to be removed. */
static void on_recheck_containers(void *arg, int rc, ProtobufCMessage *reply) {
    struct job *j = arg;
    if (rc != 0) {
        /* Without a current container list nothing more is removed. */
        note_failure(j, rc);
        j->ncand = j->next;
        job_finish(j);
        return;
    }
    Runtime__V1__Image *img = (Runtime__V1__Image *)cand_image(j, j->next);
    Runtime__V1__ListImagesResponse one = RUNTIME__V1__LIST_IMAGES_RESPONSE__INIT;
    one.n_images = 1;
    one.images = &img;
    uint8_t cls = RSRE_CRI_IMAGE_INVALID;
    rc = rsre_cri_classify_images(&one, (const Runtime__V1__ListContainersResponse *)reply,
                                  j->snap->sandbox_image, NULL, 0, 0, &cls);
    rsre_cri_free(reply);
    if (rc != 0 || cls != RSRE_CRI_IMAGE_RECLAIMABLE) {
        /* A container started using it since the first listing: keep it. */
        if (cls == RSRE_CRI_IMAGE_IN_USE) {
            j->kept_in_use++;
        } else {
            j->skipped++;
        }
        RSRE_LOG(RSRE_LOG_INFO, "cri", "prune_unused_images keeps image=%s: in use since listing",
                 img->id);
        j->next++;
        prune_step(j);
        return;
    }
    rc = rsre_cri_remove_image(j->cri, img->id, on_image_removed, j);
    if (rc != 0) {
        note_failure(j, rc);
        j->ncand = j->next;
        job_finish(j);
    }
}

static void prune_step(struct job *j) {
    if (j->next >= j->ncand) {
        job_finish(j);
        return;
    }
    if (past_deadline(j)) {
        j->timed_out = 1;
        job_finish(j);
        return;
    }
    int rc = rsre_cri_list_containers(j->cri, on_recheck_containers, j);
    if (rc != 0) {
        note_failure(j, rc);
        job_finish(j);
    }
}

static void on_prune_snapshot(void *arg, int rc, struct rsre_cri_snapshot *snap) {
    struct job *j = arg;
    if (rc != 0) {
        rsre_action_set(j->ctx, ST_(FAILED), "cannot list images and containers: %s",
                        rsre_strerror(rc));
        struct rsre_action_ctx *ctx = j->ctx;
        job_free(j);
        rsre_action_done(ctx);
        return;
    }
    j->snap = snap;
    size_t n = snap->images->n_images;
    uint8_t *cls = n ? malloc(n) : NULL;
    j->cand = n ? calloc(n, sizeof(*j->cand)) : NULL;
    if (n && (cls == NULL || j->cand == NULL)) {
        free(cls);
        note_failure(j, -ENOMEM);
        job_finish(j);
        return;
    }
    rc = rsre_cri_classify_images(snap->images, snap->containers, snap->sandbox_image,
                                  rsre_cri_seen_of(j->cri), j->min_age_s, snap->taken_unix_ms, cls);
    if (rc != 0) {
        free(cls);
        note_failure(j, rc);
        job_finish(j);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        switch (cls[i]) {
        case RSRE_CRI_IMAGE_RECLAIMABLE:
            j->cand[j->ncand++] = i;
            break;
        case RSRE_CRI_IMAGE_IN_USE:
            j->kept_in_use++;
            break;
        case RSRE_CRI_IMAGE_PINNED:
            j->kept_pinned++;
            break;
        case RSRE_CRI_IMAGE_TOO_YOUNG:
            j->kept_young++;
            break;
        default:
            j->skipped++;
            break;
        }
    }
    free(cls);
    if (dry_run(j)) {
        for (size_t k = 0; k < j->ncand; k++) {
            const Runtime__V1__Image *img = cand_image(j, k);
            j->removed++;
            j->bytes += img->size;
            rsre_action_add_removed(j->ctx, img->id);
        }
        job_finish(j);
        return;
    }
    prune_step(j);
}

static void prune_unused_images_run(struct rsre_action_ctx *ctx) {
    struct job *j = job_new(ctx, &image_labels);
    if (j == NULL) {
        return;
    }
    j->min_age_s = rsre_agent_config(ctx->agent)->image_min_age_s;
    int rc = rsre_cri_snapshot(
        j->cri, RSRE_CRI_SNAP_IMAGES | RSRE_CRI_SNAP_CONTAINERS | RSRE_CRI_SNAP_STATUS,
        on_prune_snapshot, j);
    if (rc != 0) {
        job_free(j);
        rsre_action_set(ctx, ST_(FAILED), "cannot query the container runtime: %s",
                        rsre_strerror(rc));
        rsre_action_done(ctx);
    }
}

const struct rsre_action_desc rsre_action_prune_unused_images = {
    .id = "prune_unused_images",
    .run = prune_unused_images_run,
};

/* ---- remove_exited_containers -------------------------------------------------------------- */

static void exited_step(struct job *j);

static const Runtime__V1__Container *cand_container(const struct job *j, size_t k) {
    return j->snap->containers->containers[j->cand[k]];
}

static void on_container_removed(void *arg, int rc, ProtobufCMessage *reply) {
    struct job *j = arg;
    const Runtime__V1__Container *c = cand_container(j, j->next);
    rsre_cri_free(reply);
    if (rc == 0) {
        j->removed++;
        rsre_action_add_removed(j->ctx, c->id);
        RSRE_LOG(RSRE_LOG_INFO, "cri", "remove_exited_containers removed container=%s", c->id);
    } else {
        note_failure(j, rc);
        RSRE_LOG(RSRE_LOG_WARN, "cri", "remove_exited_containers could not remove container=%s: %s",
                 c->id, rsre_strerror(rc));
    }
    j->next++;
    exited_step(j);
}

/* Fresh status of the container about to be removed: only EXITED and old enough goes. */
static void on_container_status(void *arg, int rc, ProtobufCMessage *reply) {
    struct job *j = arg;
    const Runtime__V1__Container *c = cand_container(j, j->next);
    const Runtime__V1__ContainerStatusResponse *r = (const void *)reply;
    int eligible = 0;
    if (rc == RSRE_ENOTFOUND) {
        j->skipped++; /* gone already */
    } else if (rc != 0) {
        note_failure(j, rc);
    } else if (r->status == NULL ||
               r->status->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
        j->skipped++; /* restarted or changed state: never touched */
    } else {
        int64_t finished_ms = r->status->finished_at / 1000000;
        if (finished_ms > 0 && wall_ms() - finished_ms >= (int64_t)j->min_age_s * 1000) {
            eligible = 1;
        } else {
            j->kept_young++;
        }
    }
    rsre_cri_free(reply);
    if (!eligible) {
        j->next++;
        exited_step(j);
        return;
    }
    if (dry_run(j)) {
        j->removed++;
        rsre_action_add_removed(j->ctx, c->id);
        j->next++;
        exited_step(j);
        return;
    }
    rc = rsre_cri_remove_container(j->cri, c->id, on_container_removed, j);
    if (rc != 0) {
        note_failure(j, rc);
        j->ncand = j->next;
        job_finish(j);
    }
}

static void exited_step(struct job *j) {
    if (j->next >= j->ncand) {
        job_finish(j);
        return;
    }
    if (past_deadline(j)) {
        j->timed_out = 1;
        job_finish(j);
        return;
    }
    int rc =
        rsre_cri_container_status(j->cri, cand_container(j, j->next)->id, on_container_status, j);
    if (rc != 0) {
        note_failure(j, rc);
        job_finish(j);
    }
}

/* Ids reported in results must be 1..RSRE_CRI_MAX_ID_LEN printable, space-free ASCII bytes. */
static int printable_id(const char *s) {
    size_t n = 0;
    for (; s && s[n]; n++) {
        if (n >= RSRE_CRI_MAX_ID_LEN || (unsigned char)s[n] <= 0x20 ||
            (unsigned char)s[n] >= 0x7f) {
            return 0;
        }
    }
    return n > 0;
}

/* Pod key of a container: its sandbox's pod uid when known, else the sandbox id. */
struct exited_row {
    size_t idx;
    const char *pod;
    const char *name;
    uint32_t attempt;
    int64_t created_at;
};

static int cmp_exited(const void *a, const void *b) {
    const struct exited_row *x = a, *y = b;
    int c = strcmp(x->pod, y->pod);
    if (c == 0) {
        c = strcmp(x->name, y->name);
    }
    if (c == 0) { /* newest first */
        c = x->attempt != y->attempt         ? (x->attempt > y->attempt ? -1 : 1)
            : x->created_at != y->created_at ? (x->created_at > y->created_at ? -1 : 1)
                                             : 0;
    }
    return c;
}

static const Runtime__V1__PodSandbox *find_sandbox(const Runtime__V1__ListPodSandboxResponse *l,
                                                   const char *id) {
    for (size_t i = 0; l && id && i < l->n_items; i++) {
        if (l->items[i] && l->items[i]->id && strcmp(l->items[i]->id, id) == 0) {
            return l->items[i];
        }
    }
    return NULL;
}

/* True when some READY sandbox belongs to pod key `pod` (uid or sandbox id). */
static int pod_alive(const Runtime__V1__ListPodSandboxResponse *l, const char *pod) {
    for (size_t i = 0; l && i < l->n_items; i++) {
        const Runtime__V1__PodSandbox *s = l->items[i];
        if (s == NULL || s->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY) {
            continue;
        }
        const char *uid = s->metadata && s->metadata->uid ? s->metadata->uid : "";
        if ((uid[0] && strcmp(uid, pod) == 0) || (s->id && strcmp(s->id, pod) == 0)) {
            return 1;
        }
    }
    return 0;
}

static void on_exited_snapshot(void *arg, int rc, struct rsre_cri_snapshot *snap) {
    struct job *j = arg;
    if (rc != 0) {
        rsre_action_set(j->ctx, ST_(FAILED), "cannot list containers: %s", rsre_strerror(rc));
        struct rsre_action_ctx *ctx = j->ctx;
        job_free(j);
        rsre_action_done(ctx);
        return;
    }
    j->snap = snap;
    const Runtime__V1__ListContainersResponse *lc = snap->containers;
    size_t n = lc->n_containers;
    struct exited_row *rows = n ? calloc(n, sizeof(*rows)) : NULL;
    j->cand = n ? calloc(n, sizeof(*j->cand)) : NULL;
    if (n && (rows == NULL || j->cand == NULL)) {
        free(rows);
        note_failure(j, -ENOMEM);
        job_finish(j);
        return;
    }
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        const Runtime__V1__Container *c = lc->containers[i];
        if (c == NULL || !printable_id(c->id)) {
            j->skipped++;
            continue;
        }
        if (c->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
            j->kept_in_use++; /* created, running or unknown: never touched */
            continue;
        }
        const Runtime__V1__PodSandbox *sb = find_sandbox(snap->sandboxes, c->pod_sandbox_id);
        const char *uid = sb && sb->metadata && sb->metadata->uid ? sb->metadata->uid : "";
        rows[nr].idx = i;
        rows[nr].pod = uid[0] ? uid : (c->pod_sandbox_id ? c->pod_sandbox_id : "");
        rows[nr].name = c->metadata && c->metadata->name ? c->metadata->name : "";
        rows[nr].attempt = c->metadata ? c->metadata->attempt : 0;
        rows[nr].created_at = c->created_at;
        nr++;
    }
    qsort(rows, nr, sizeof(*rows), cmp_exited);
    for (size_t k = 0; k < nr; k++) {
        int newest = k == 0 || strcmp(rows[k - 1].pod, rows[k].pod) != 0 ||
                     strcmp(rows[k - 1].name, rows[k].name) != 0;
        if (newest && pod_alive(snap->sandboxes, rows[k].pod)) {
            j->kept_pinned++; /* kept for kubectl logs --previous */
            continue;
        }
        j->cand[j->ncand++] = rows[k].idx;
    }
    free(rows);
    exited_step(j);
}

static void remove_exited_containers_run(struct rsre_action_ctx *ctx) {
    struct job *j = job_new(ctx, &container_labels);
    if (j == NULL) {
        return;
    }
    j->min_age_s = rsre_agent_config(ctx->agent)->exited_container_min_age_s;
    int rc = rsre_cri_snapshot(j->cri, RSRE_CRI_SNAP_CONTAINERS | RSRE_CRI_SNAP_SANDBOXES,
                               on_exited_snapshot, j);
    if (rc != 0) {
        job_free(j);
        rsre_action_set(ctx, ST_(FAILED), "cannot query the container runtime: %s",
                        rsre_strerror(rc));
        rsre_action_done(ctx);
    }
}

const struct rsre_action_desc rsre_action_remove_exited_containers = {
    .id = "remove_exited_containers",
    .run = remove_exited_containers_run,
};
