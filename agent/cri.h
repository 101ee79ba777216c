#ifndef RSRE_CRI_H
#define RSRE_CRI_H

/*
 * Container runtime (CRI) client of the agent: asynchronous unary calls to the runtime's
 * `runtime.v1` RuntimeService and ImageService over gRPC core (C API) on a unix socket, plus the
 * pure computations the image-GC collector and the runtime actions share.
 *
 *   - Calls run on the agent's libuv loop through the gRPC completion-queue bridge
 *     (common/grpc_loop.h); every callback runs on the loop thread.
 *   - Replies are bounded: at most `max_reply_bytes` per method on the wire, decoded with a
 *     failing allocator (common/pbuf.h) whose budget is proportional to the reply size and
 *     capped at RSRE_CRI_DECODE_BUDGET_MAX. A runtime can make a call fail, never abort the
 *     agent.
 *   - gRPC status codes become project codes at this boundary (see rsre_cri_status_to_rc); the
 *     original status and details are logged (module "cri").
 *
 * Threading: every function must be called on the loop thread, except the pure functions
 * (rsre_cri_decode, rsre_cri_classify_images, rsre_cri_compute_gc_state, rsre_cri_seen_*,
 * rsre_cri_churn_*), which are reentrant and touch only their arguments.
 *
 * Message types are those protoc-c generates from proto/runtime/api.proto (Runtime__V1__*).
 */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "robot_sre/agent.pb-c.h"
#include "runtime/api.pb-c.h"

struct rsre_cri;
struct rsre_grpc_loop;

/* Largest reply accepted by the list calls (the runtime's own default send limit); a
 * ListImages of 200 images is ~60 KB. */
#define RSRE_CRI_MAX_LIST_REPLY (16u * 1024u * 1024u)
/* Largest reply of the other calls. */
#define RSRE_CRI_MAX_SMALL_REPLY (1024u * 1024u)
/* Decoding one reply never allocates more than this (or 32 x its size + 64 KiB if smaller). */
#define RSRE_CRI_DECODE_BUDGET_MAX (64u * 1024u * 1024u)
/* Longest image / container / sandbox id the agent acts on or reports (containerd: 71 and 64). */
#define RSRE_CRI_MAX_ID_LEN 255

/* Kubelet's image-GC defaults (kubelet config imageGCHighThresholdPercent /
 * imageGCLowThresholdPercent), used until the filesystem collector provides the node's own. */
#define RSRE_CRI_DEFAULT_GC_HIGH 85.0
#define RSRE_CRI_DEFAULT_GC_LOW 80.0

/* ---- calls ------------------------------------------------------------------------------- */

/* One unary RPC: a row of the method table. Tests may define rows of their own. */
struct rsre_cri_method {
    const char *name;                          /* for logs: "ListImages" */
    const char *path;                          /* "/runtime.v1.ImageService/ListImages" */
    const ProtobufCMessageDescriptor *request; /* request message type */
    const ProtobufCMessageDescriptor *reply;   /* reply message type */
    size_t max_reply_bytes;                    /* larger replies fail with RSRE_ELIMIT */
    uint32_t timeout_ms;                       /* default deadline */
};

enum rsre_cri_method_id {
    RSRE_CRI_VERSION = 0,
    RSRE_CRI_STATUS,
    RSRE_CRI_LIST_IMAGES,
    RSRE_CRI_IMAGE_STATUS,
    RSRE_CRI_REMOVE_IMAGE,
    RSRE_CRI_IMAGE_FS_INFO,
    RSRE_CRI_LIST_CONTAINERS,
    RSRE_CRI_CONTAINER_STATUS,
    RSRE_CRI_REMOVE_CONTAINER,
    RSRE_CRI_LIST_POD_SANDBOX,
    RSRE_CRI_METHOD_COUNT
};

/* The methods the agent uses, indexed by enum rsre_cri_method_id. */
extern const struct rsre_cri_method rsre_cri_methods[RSRE_CRI_METHOD_COUNT];

/*
 * Completion of a call. rc is 0 with `reply` a message of the method's reply type, which the
 * callback now owns (free it with rsre_cri_free), or an error with reply NULL:
 *   -ECONNREFUSED  runtime unreachable (UNAVAILABLE: socket absent, runtime down)
 *   -ETIMEDOUT     the deadline passed (DEADLINE_EXCEEDED)
 *   -ECANCELED     cancelled (rsre_cri_destroy, CANCELLED)
 *   RSRE_ENOTFOUND NOT_FOUND (e.g. ContainerStatus of an unknown id)
 *   -EINVAL        INVALID_ARGUMENT, OUT_OF_RANGE
 *   -EBUSY         FAILED_PRECONDITION, ABORTED (e.g. removing a running container's image in
 *                  runtimes that refuse it)
 *   -EACCES        PERMISSION_DENIED, UNAUTHENTICATED
 *   -ENOSYS        UNIMPLEMENTED (runtime without runtime.v1)
 *   RSRE_EEXIST    ALREADY_EXISTS
 *   RSRE_ELIMIT    reply larger than the method's limit or its decode budget, RESOURCE_EXHAUSTED
 *   RSRE_EPARSE    malformed reply bytes
 *   -EIO           UNKNOWN, INTERNAL, DATA_LOSS and anything else
 */
typedef void (*rsre_cri_cb)(void *arg, int rc, ProtobufCMessage *reply);

/*
 * Creates a client for `target`: a gRPC target ("unix:///run/containerd/containerd.sock",
 * "unix:/path") or a bare absolute socket path. Connects lazily; creation does not fail when the
 * runtime is down (calls do). `loop` and `gl` must outlive the client. Returns 0 and *out, or
 * -EINVAL / -ENOMEM.
 */
int rsre_cri_create(uv_loop_t *loop, struct rsre_grpc_loop *gl, const char *target,
                    struct rsre_cri **out);

/*
 * Cancels every call in flight (their callbacks still run, with -ECANCELED, before closed_cb)
 * and releases the channel; `closed_cb(arg)` runs on the loop once nothing is left. It may run
 * before rsre_cri_destroy returns when no call was in flight. The grpc loop must stay alive
 * until then. After this call no new call may be started. NULL cri: closed_cb runs at once.
 */
void rsre_cri_destroy(struct rsre_cri *cri, void (*closed_cb)(void *), void *arg);

/*
 * Starts one call of `m` with `request` (packed now; the caller keeps ownership and may free it
 * as soon as this returns). timeout_ms 0 uses the method's default. Returns 0 and `cb` will run
 * exactly once on the loop; or an error (-ENOMEM, -EINVAL, -ESHUTDOWN after destroy, -EIO when
 * gRPC refused the batch), and then `cb` never runs.
 */
int rsre_cri_call(struct rsre_cri *cri, const struct rsre_cri_method *m,
                  const ProtobufCMessage *request, uint32_t timeout_ms, rsre_cri_cb cb, void *arg);

/* Typed shortcuts with empty filters (`id` is copied). Same contract as rsre_cri_call. */
int rsre_cri_version(struct rsre_cri *cri, rsre_cri_cb cb, void *arg);
int rsre_cri_list_images(struct rsre_cri *cri, rsre_cri_cb cb, void *arg);
int rsre_cri_image_fs_info(struct rsre_cri *cri, rsre_cri_cb cb, void *arg);
int rsre_cri_list_containers(struct rsre_cri *cri, rsre_cri_cb cb, void *arg);
int rsre_cri_list_pod_sandbox(struct rsre_cri *cri, rsre_cri_cb cb, void *arg);
int rsre_cri_container_status(struct rsre_cri *cri, const char *id, rsre_cri_cb cb, void *arg);
/* Removes an image by id (or any reference the runtime resolves). Runtimes treat an image that
 * is already gone as success (CRI: RemoveImage is idempotent). */
int rsre_cri_remove_image(struct rsre_cri *cri, const char *image, rsre_cri_cb cb, void *arg);
int rsre_cri_remove_container(struct rsre_cri *cri, const char *id, rsre_cri_cb cb, void *arg);

/* Frees a reply handed to a callback (or decoded by rsre_cri_decode). NULL is a no-op. */
void rsre_cri_free(ProtobufCMessage *reply);

/* Calls in flight (started, callback not yet run). */
size_t rsre_cri_pending(const struct rsre_cri *cri);

/* Maps a gRPC status to the codes listed at rsre_cri_cb (GRPC_STATUS_OK gives 0). */
int rsre_cri_status_to_rc(int grpc_status);

/*
 * Decodes `len` bytes as a reply of `m` with the limits described at the top. Returns 0 and a
 * message owned by the caller (rsre_cri_free), RSRE_ELIMIT, RSRE_EPARSE or -ENOMEM. This is the
 * only way replies are decoded; the fuzz target drives it directly.
 */
int rsre_cri_decode(const struct rsre_cri_method *m, const uint8_t *buf, size_t len,
                    ProtobufCMessage **out);

/* ---- snapshot: several list calls in parallel -------------------------------------------- */

enum {
    RSRE_CRI_SNAP_IMAGES = 1 << 0,     /* ListImages */
    RSRE_CRI_SNAP_CONTAINERS = 1 << 1, /* ListContainers (all states) */
    RSRE_CRI_SNAP_SANDBOXES = 1 << 2,  /* ListPodSandbox (all states) */
    RSRE_CRI_SNAP_IMAGEFS = 1 << 3,    /* ImageFsInfo */
    RSRE_CRI_SNAP_STATUS = 1 << 4,     /* Status(verbose): the runtime's sandbox image name */
};

/* Replies of one snapshot; members not requested are NULL. */
struct rsre_cri_snapshot {
    Runtime__V1__ListImagesResponse *images;
    Runtime__V1__ListContainersResponse *containers;
    Runtime__V1__ListPodSandboxResponse *sandboxes;
    Runtime__V1__ImageFsInfoResponse *imagefs;
    /* From Status(verbose) info["config"].sandboxImage (containerd); NULL when unknown. */
    char *sandbox_image;
    int64_t taken_unix_ms; /* wall clock when the last reply arrived */
};

typedef void (*rsre_cri_snapshot_cb)(void *arg, int rc, struct rsre_cri_snapshot *snap);

/*
 * Issues the requested calls at once. `cb` runs once, after every call has finished: rc 0 with
 * a snapshot the callback owns (rsre_cri_snapshot_free), or the first error with snap NULL.
 * Status and ImageFsInfo are best effort: their failure leaves sandbox_image / imagefs NULL and
 * is not an error. Every snapshot with images updates the client's first-seen tracker before
 * `cb` runs. Same start contract as rsre_cri_call.
 */
int rsre_cri_snapshot(struct rsre_cri *cri, unsigned what, rsre_cri_snapshot_cb cb, void *arg);
void rsre_cri_snapshot_free(struct rsre_cri_snapshot *snap);

/* ---- image first-seen tracker ------------------------------------------------------------ */

/*
 * CRI does not report when an image arrived, so (like kubelet's image GC) the agent records
 * when it first saw each image id; an image becomes reclaimable once it has been known for the
 * minimum image age. Every client has one tracker (rsre_cri_seen_of), updated by each ListImages
 * the collector and the actions make.
 */
struct rsre_cri_seen;

int rsre_cri_seen_create(struct rsre_cri_seen **out);
void rsre_cri_seen_destroy(struct rsre_cri_seen *s);
/* Records `now_ms` for ids not seen before and forgets ids no longer listed. 0 or -ENOMEM
 * (the previous state is then kept). */
int rsre_cri_seen_update(struct rsre_cri_seen *s, const Runtime__V1__ListImagesResponse *images,
                         int64_t now_ms);
/* First-seen time of `id` (Unix ms), or 0 when unknown. */
int64_t rsre_cri_seen_get(const struct rsre_cri_seen *s, const char *id);
/* Sets the first-seen time of `id` (tests, and restoring state). 0 or -ENOMEM. */
int rsre_cri_seen_set(struct rsre_cri_seen *s, const char *id, int64_t first_ms);
size_t rsre_cri_seen_count(const struct rsre_cri_seen *s);
/* The tracker owned by `cri`. */
struct rsre_cri_seen *rsre_cri_seen_of(struct rsre_cri *cri);

/* ---- image classification and the GC projection ------------------------------------------ */

/*
 * What the agent (and kubelet's image GC) may do with one image. In use = referenced by any
 * container the runtime still has, in any state (created, running, exited, unknown): kubelet
 * treats images of existing containers, including exited ones, as in use, and removing the
 * image of an exited container breaks its restart. The runtime's sandbox (pause) image counts
 * as pinned even when the runtime does not set Image.pinned (containerd < 1.7 does not).
 */
enum rsre_cri_image_class {
    RSRE_CRI_IMAGE_INVALID = 0, /* empty, over-long or duplicate id: ignored entirely */
    RSRE_CRI_IMAGE_IN_USE,      /* a container references it */
    RSRE_CRI_IMAGE_PINNED,      /* unused, but pinned (never removed) */
    RSRE_CRI_IMAGE_TOO_YOUNG,   /* unused, unpinned, known for less than the minimum age */
    RSRE_CRI_IMAGE_RECLAIMABLE, /* unused, unpinned, old enough: GC and prune may remove it */
};

/*
 * Classifies images->images[i] into classes[i] (array of images->n_images entries). A container
 * references an image when its image_ref, image_id or image.image equals the image's id or one
 * of its repo_tags / repo_digests. `sandbox_image` (may be NULL) is matched the same way.
 * `seen` may be NULL (every image unknown: only min_age_s 0 makes them reclaimable).
 * `containers` may be NULL (no container). Returns 0 or -ENOMEM.
 */
int rsre_cri_classify_images(const Runtime__V1__ListImagesResponse *images,
                             const Runtime__V1__ListContainersResponse *containers,
                             const char *sandbox_image, const struct rsre_cri_seen *seen,
                             uint32_t min_age_s, int64_t now_ms, uint8_t *classes);

/*
 * The node's image filesystem as the filesystem collector sees it, and kubelet's GC thresholds.
 * Zero fields mean "unknown": percents fall back to RSRE_CRI_DEFAULT_GC_*, capacity to statvfs
 * of the CRI-reported mountpoint, used bytes to capacity minus available from that statvfs, or
 * the CRI's used_bytes when there is no statvfs either.
 */
struct rsre_cri_imagefs {
    uint64_t capacity_bytes; /* imagefs size (statvfs f_blocks * f_frsize) */
    uint64_t used_bytes;     /* capacity - available, kubelet's "usage" */
    double gc_high_percent;  /* imageGCHighThresholdPercent */
    double gc_low_percent;   /* imageGCLowThresholdPercent */
};

/* Stores what the filesystem collector knows (copied). */
void rsre_cri_set_imagefs(struct rsre_cri *cri, const struct rsre_cri_imagefs *fs);
/* What was stored, with the GC percents defaulted to kubelet's 85/80 when never provided. */
void rsre_cri_get_imagefs(const struct rsre_cri *cri, struct rsre_cri_imagefs *out);

/* Inputs of the GC projection beyond the replies. */
struct rsre_cri_gc_params {
    struct rsre_cri_imagefs fs; /* zero fields as described at struct rsre_cri_imagefs */
    uint32_t min_age_s;         /* kubelet imageMinimumGCAge / config image_min_age_s */
    int64_t now_ms;             /* Unix ms */
};

/*
 * Fills `out` (ImageGcState, with out->imagefs = fs_out) from a snapshot holding at least the
 * images (containers and imagefs optional):
 *   image_count/total_bytes     distinct valid image ids and the sum of their CRI sizes
 *   unused_count/unused_bytes   images no container uses (pinned ones included)
 *   pinned_count/pinned_bytes   Image.pinned or the sandbox image
 *   reclaimable_bytes           unused, unpinned, first seen >= min_age_s ago
 *   bytes_to_gc_low             used - capacity * low / 100 when positive, else 0 (0 when the
 *                               capacity is unknown)
 *   gc_can_recover              reclaimable_bytes >= bytes_to_gc_low
 *   imagefs                     first CRI image filesystem: mountpoint (only when it is a clean
 *                               absolute path), used_bytes, inodes_used; capacity from params
 * Sums saturate at UINT64_MAX. Strings in `fs_out` point into `snap` (valid while it lives).
 * Returns 0, -EINVAL (no images in snap) or -ENOMEM.
 */
int rsre_cri_compute_gc_state(const struct rsre_cri_snapshot *snap,
                              const struct rsre_cri_seen *seen, const struct rsre_cri_gc_params *p,
                              RobotSre__Agent__V1__ImageGcState *out,
                              RobotSre__Agent__V1__ImageFsInfo *fs_out);

/* ---- container churn ---------------------------------------------------------------------- */

/*
 * Remembers the containers (id, state) of the previous ListContainers so the next one yields
 * the containers created and exited in between. The first update only sets the baseline.
 */
struct rsre_cri_churn;

int rsre_cri_churn_create(struct rsre_cri_churn **out);
void rsre_cri_churn_destroy(struct rsre_cri_churn *c);

/*
 * Fills the CRI part of PodChurn from a snapshot with containers and sandboxes:
 * exited_containers and sandboxes_not_ready (now), containers_created_in_window (ids not in the
 * previous list) and containers_exited_in_window (ids exited now that were not exited, or not
 * there, before), window_sec = seconds since the previous update (at least 1). Other fields are
 * left untouched. Returns 1 when `out` was filled, 0 for the first (baseline) update, -ENOMEM
 * (the baseline is then kept) or -EINVAL.
 */
int rsre_cri_churn_update(struct rsre_cri_churn *c, const struct rsre_cri_snapshot *snap,
                          int64_t now_ms, RobotSre__Agent__V1__PodChurn *out);

/* ---- agent integration (agent/col_cri.c, agent/act_cri.c) --------------------------------- */

/* Collectors: ImageGcState (capability IMAGE_GC) and the runtime's PodChurn (POD_CHURN). */
struct rsre_collector_desc;
struct rsre_action_desc;
extern const struct rsre_collector_desc rsre_collector_image_gc;
extern const struct rsre_collector_desc rsre_collector_containers;
/* Actions "prune_unused_images" and "remove_exited_containers". */
extern const struct rsre_action_desc rsre_action_prune_unused_images;
extern const struct rsre_action_desc rsre_action_remove_exited_containers;

#endif
