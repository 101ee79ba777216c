/*
 * CRI client (gRPC core C API over the runtime's unix socket) and the pure computations shared
 * by the image-GC collector (col_cri.c) and the runtime actions (act_cri.c). See agent/cri.h
 * for the contracts and docs/agent-cri.md for the semantics.
 */
#include "agent/cri.h"

#include <errno.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/log.h"
#include "common/pbuf.h"

#define D_(x) (&runtime__v1__##x##__descriptor)
#define RUNTIME_SVC "/runtime.v1.RuntimeService/"
#define IMAGE_SVC "/runtime.v1.ImageService/"

/* How long a sandbox image name learnt from Status stays fresh. */
#define SANDBOX_IMAGE_TTL_MS (10 * 60 * 1000)
/* A failing call is logged at WARN at most this often for the same status; DEBUG otherwise. */
#define FAIL_LOG_INTERVAL_MS (60 * 1000)
/* Largest Status info["config"] document parsed for the sandbox image name. */
#define MAX_STATUS_JSON (256u * 1024u)

const struct rsre_cri_method rsre_cri_methods[RSRE_CRI_METHOD_COUNT] = {
    [RSRE_CRI_VERSION] = {"Version", RUNTIME_SVC "Version", D_(version_request),
                          D_(version_response), RSRE_CRI_MAX_SMALL_REPLY, 5000},
    [RSRE_CRI_STATUS] = {"Status", RUNTIME_SVC "Status", D_(status_request), D_(status_response),
                         RSRE_CRI_MAX_SMALL_REPLY, 5000},
    [RSRE_CRI_LIST_IMAGES] = {"ListImages", IMAGE_SVC "ListImages", D_(list_images_request),
                              D_(list_images_response), RSRE_CRI_MAX_LIST_REPLY, 15000},
    [RSRE_CRI_IMAGE_STATUS] = {"ImageStatus", IMAGE_SVC "ImageStatus", D_(image_status_request),
                               D_(image_status_response), RSRE_CRI_MAX_SMALL_REPLY, 5000},
    /* containerd removes an image's content synchronously: allow for a slow disk. */
    [RSRE_CRI_REMOVE_IMAGE] = {"RemoveImage", IMAGE_SVC "RemoveImage", D_(remove_image_request),
                               D_(remove_image_response), RSRE_CRI_MAX_SMALL_REPLY, 60000},
    [RSRE_CRI_IMAGE_FS_INFO] = {"ImageFsInfo", IMAGE_SVC "ImageFsInfo", D_(image_fs_info_request),
                                D_(image_fs_info_response), RSRE_CRI_MAX_SMALL_REPLY, 10000},
    [RSRE_CRI_LIST_CONTAINERS] = {"ListContainers", RUNTIME_SVC "ListContainers",
                                  D_(list_containers_request), D_(list_containers_response),
                                  RSRE_CRI_MAX_LIST_REPLY, 15000},
    [RSRE_CRI_CONTAINER_STATUS] = {"ContainerStatus", RUNTIME_SVC "ContainerStatus",
                                   D_(container_status_request), D_(container_status_response),
                                   RSRE_CRI_MAX_SMALL_REPLY, 5000},
    [RSRE_CRI_REMOVE_CONTAINER] = {"RemoveContainer", RUNTIME_SVC "RemoveContainer",
                                   D_(remove_container_request), D_(remove_container_response),
                                   RSRE_CRI_MAX_SMALL_REPLY, 30000},
    [RSRE_CRI_LIST_POD_SANDBOX] = {"ListPodSandbox", RUNTIME_SVC "ListPodSandbox",
                                   D_(list_pod_sandbox_request), D_(list_pod_sandbox_response),
                                   RSRE_CRI_MAX_LIST_REPLY, 15000},
};

/* ---- status mapping (a table, not a switch) -------------------------------------------------- */

static const int status_rc[] = {
    [GRPC_STATUS_OK] = 0,
    [GRPC_STATUS_CANCELLED] = -ECANCELED,
    [GRPC_STATUS_UNKNOWN] = -EIO,
    [GRPC_STATUS_INVALID_ARGUMENT] = -EINVAL,
    [GRPC_STATUS_DEADLINE_EXCEEDED] = -ETIMEDOUT,
    [GRPC_STATUS_NOT_FOUND] = RSRE_ENOTFOUND,
    [GRPC_STATUS_ALREADY_EXISTS] = RSRE_EEXIST,
    [GRPC_STATUS_PERMISSION_DENIED] = -EACCES,
    [GRPC_STATUS_RESOURCE_EXHAUSTED] = RSRE_ELIMIT,
    [GRPC_STATUS_FAILED_PRECONDITION] = -EBUSY,
    [GRPC_STATUS_ABORTED] = -EBUSY,
    [GRPC_STATUS_OUT_OF_RANGE] = -EINVAL,
    [GRPC_STATUS_UNIMPLEMENTED] = -ENOSYS,
    [GRPC_STATUS_INTERNAL] = -EIO,
    [GRPC_STATUS_UNAVAILABLE] = -ECONNREFUSED,
    [GRPC_STATUS_DATA_LOSS] = -EIO,
    [GRPC_STATUS_UNAUTHENTICATED] = -EACCES,
};

int rsre_cri_status_to_rc(int grpc_status) {
    if (grpc_status < 0 || (size_t)grpc_status >= sizeof(status_rc) / sizeof(status_rc[0])) {
        return -EIO;
    }
    return status_rc[grpc_status];
}

/* ---- client ------------------------------------------------------------------------------------
 */

struct cri_call {
    struct rsre_grpc_op op; /* the tag; first member */
    struct rsre_cri *cri;
    const struct rsre_cri_method *m;
    grpc_call *call;
    grpc_byte_buffer *send;
    grpc_byte_buffer *recv;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    rsre_cri_cb cb;
    void *arg;
    struct cri_call *prev, *next;
};

struct rsre_cri {
    uv_loop_t *loop;
    struct rsre_grpc_loop *gl;
    grpc_channel *channel;
    char *target;
    struct cri_call *calls; /* in flight */
    size_t pending;
    int destroying;
    int in_callback;
    void (*closed_cb)(void *);
    void *closed_arg;
    struct rsre_cri_seen *seen;
    struct rsre_cri_imagefs fs;
    char *sandbox_image;       /* cached from Status; "" = runtime did not say */
    uint64_t sandbox_image_at; /* uv_now of the cache; 0 = never */
    int last_fail_status;
    uint64_t last_fail_log;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rsre_cri_create(uv_loop_t *loop, struct rsre_grpc_loop *gl, const char *target,
                    struct rsre_cri **out) {
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    if (loop == NULL || gl == NULL || target == NULL || target[0] == '\0' ||
        strlen(target) > 4096) {
        return -EINVAL;
    }
    struct rsre_cri *cri = calloc(1, sizeof(*cri));
    if (cri == NULL) {
        return -ENOMEM;
    }
    size_t n = strlen(target) + sizeof("unix:");
    cri->target = malloc(n);
    if (cri->target == NULL || rsre_cri_seen_create(&cri->seen) != 0) {
        free(cri->target);
        free(cri);
        return -ENOMEM;
    }
    /* A bare path is a unix socket. */
    snprintf(cri->target, n, "%s%s", target[0] == '/' ? "unix:" : "", target);
    cri->loop = loop;
    cri->gl = gl;

    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)RSRE_CRI_MAX_LIST_REPLY},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         .value.integer = 1000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = 1000},
        /* A restarted runtime is found again within 10 s, not gRPC's default 120 s. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
         .value.integer = 10000},
        {.type = GRPC_ARG_STRING,
         .key = GRPC_ARG_PRIMARY_USER_AGENT_STRING,
         .value.string = "robot-sre-agent"},
    };
    grpc_channel_args cargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    cri->channel = grpc_channel_create(cri->target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (cri->channel == NULL) {
        rsre_cri_seen_destroy(cri->seen);
        free(cri->target);
        free(cri);
        return -ENOMEM;
    }
    *out = cri;
    return 0;
}

static void finish_destroy(struct rsre_cri *cri) {
    void (*cb)(void *) = cri->closed_cb;
    void *arg = cri->closed_arg;
    grpc_channel_destroy(cri->channel);
    rsre_cri_seen_destroy(cri->seen);
    free(cri->sandbox_image);
    free(cri->target);
    free(cri);
    if (cb) {
        cb(arg);
    }
}

void rsre_cri_destroy(struct rsre_cri *cri, void (*closed_cb)(void *), void *arg) {
    if (cri == NULL) {
        if (closed_cb) {
            closed_cb(arg);
        }
        return;
    }
    if (cri->destroying) {
        return;
    }
    cri->destroying = 1;
    cri->closed_cb = closed_cb;
    cri->closed_arg = arg;
    for (struct cri_call *c = cri->calls; c; c = c->next) {
        grpc_call_cancel(c->call, NULL);
    }
    if (cri->calls == NULL && cri->in_callback == 0) {
        finish_destroy(cri);
    }
}

size_t rsre_cri_pending(const struct rsre_cri *cri) {
    return cri ? cri->pending : 0;
}

void rsre_cri_free(ProtobufCMessage *reply) {
    if (reply) {
        protobuf_c_message_free_unpacked(reply, NULL);
    }
}

int rsre_cri_decode(const struct rsre_cri_method *m, const uint8_t *buf, size_t len,
                    ProtobufCMessage **out) {
    static const uint8_t empty[1];
    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    if (m == NULL || (buf == NULL && len > 0)) {
        return -EINVAL;
    }
    if (len > m->max_reply_bytes) {
        return RSRE_ELIMIT;
    }
    size_t budget = rsre_pbuf_decode_budget(len);
    if (budget > RSRE_CRI_DECODE_BUDGET_MAX) {
        budget = RSRE_CRI_DECODE_BUDGET_MAX;
    }
    struct rsre_pbuf_allocator a;
    rsre_pbuf_allocator_init(&a, budget);
    ProtobufCMessage *msg = protobuf_c_message_unpack(m->reply, &a.base, len, buf ? buf : empty);
    if (msg == NULL) {
        return a.exhausted ? RSRE_ELIMIT : a.failed ? -ENOMEM : RSRE_EPARSE;
    }
    *out = msg;
    return 0;
}

/* Copies a gRPC slice into a bounded, printable C string for logs. */
static void slice_str(grpc_slice s, char *out, size_t cap) {
    size_t n = GRPC_SLICE_LENGTH(s);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, GRPC_SLICE_START_PTR(s), n);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)out[i] < 0x20) {
            out[i] = ' ';
        }
    }
    out[n] = '\0';
}

static void log_failure(struct rsre_cri *cri, const struct cri_call *c, int rc) {
    char details[256];
    slice_str(c->details, details, sizeof(details));
    uint64_t now = uv_now(cri->loop);
    int level = RSRE_LOG_DEBUG;
    /* NOT_FOUND answers a question ("is it there?"); the caller decides whether it matters. */
    if (c->status != GRPC_STATUS_NOT_FOUND &&
        !(c->status == GRPC_STATUS_CANCELLED && cri->destroying) &&
        ((int)c->status != cri->last_fail_status || cri->last_fail_log == 0 ||
         now - cri->last_fail_log >= FAIL_LOG_INTERVAL_MS)) {
        level = RSRE_LOG_WARN;
        cri->last_fail_status = (int)c->status;
        cri->last_fail_log = now ? now : 1;
    }
    RSRE_LOG(level, "cri",
             "call failed method=%s target=%s grpc_status=%s details=\"%s\" rc=%d (%s)", c->m->name,
             cri->target, rsre_grpc_status_name(c->status), details, rc, rsre_strerror(rc));
}

static void free_call(struct cri_call *c) {
    if (c->send) {
        grpc_byte_buffer_destroy(c->send);
    }
    if (c->recv) {
        grpc_byte_buffer_destroy(c->recv);
    }
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    grpc_slice_unref(c->details);
    if (c->error_string) {
        gpr_free((void *)c->error_string);
    }
    if (c->call) {
        grpc_call_unref(c->call);
    }
    free(c);
}

static void on_call_done(struct rsre_grpc_op *op, int ok) {
    struct cri_call *c = (struct cri_call *)op;
    struct rsre_cri *cri = c->cri;
    ProtobufCMessage *reply = NULL;
    int rc;

    if (!ok) {
        rc = cri->destroying ? -ECANCELED : -EIO;
    } else if (c->status != GRPC_STATUS_OK) {
        rc = rsre_cri_status_to_rc(c->status);
        log_failure(cri, c, rc);
    } else {
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = rsre_grpc_flatten(c->recv, c->m->max_reply_bytes, &buf, &len);
        if (rc == 0) {
            rc = rsre_cri_decode(c->m, buf, len, &reply);
        }
        free(buf);
        if (rc) {
            RSRE_LOG(RSRE_LOG_WARN, "cri", "bad reply method=%s bytes=%zu rc=%d (%s)", c->m->name,
                     c->recv ? grpc_byte_buffer_length(c->recv) : 0, rc, rsre_strerror(rc));
        }
    }
    /* Unlink before the callback: it may start calls or destroy the client. */
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        cri->calls = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    cri->pending--;
    rsre_cri_cb cb = c->cb;
    void *arg = c->arg;
    free_call(c);
    cri->in_callback++;
    cb(arg, rc, reply);
    cri->in_callback--;
    if (cri->destroying && cri->calls == NULL && cri->in_callback == 0) {
        finish_destroy(cri);
    }
}

int rsre_cri_call(struct rsre_cri *cri, const struct rsre_cri_method *m,
                  const ProtobufCMessage *request, uint32_t timeout_ms, rsre_cri_cb cb, void *arg) {
    if (cri == NULL || m == NULL || request == NULL || cb == NULL ||
        request->descriptor != m->request) {
        return -EINVAL;
    }
    if (cri->destroying) {
        return -ESHUTDOWN;
    }
    struct cri_call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    c->op.cb = on_call_done;
    c->cri = cri;
    c->m = m;
    c->cb = cb;
    c->arg = arg;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    c->send = rsre_grpc_pack(request);
    if (c->send == NULL) {
        free_call(c);
        return -ENOMEM;
    }
    gpr_timespec deadline = rsre_grpc_deadline_ms(timeout_ms ? timeout_ms : m->timeout_ms);
    c->call = grpc_channel_create_call(
        cri->channel, NULL, GRPC_PROPAGATE_DEFAULTS, rsre_grpc_loop_cq(cri->gl),
        grpc_slice_from_static_string(m->path), NULL, deadline, NULL);
    if (c->call == NULL) {
        free_call(c);
        return -ENOMEM;
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    ops[5].data.recv_status_on_client.error_string = &c->error_string;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, 6, &c->op, NULL);
    if (err != GRPC_CALL_OK) {
        RSRE_LOG(RSRE_LOG_ERROR, "cri", "grpc_call_start_batch method=%s failed: %d", m->name,
                 (int)err);
        free_call(c);
        return -EIO;
    }
    rsre_grpc_loop_started(cri->gl);
    c->next = cri->calls;
    if (cri->calls) {
        cri->calls->prev = c;
    }
    cri->calls = c;
    cri->pending++;
    return 0;
}

/* ---- typed shortcuts ----------------------------------------------------------------------- */

static int call_id(struct rsre_cri *cri, enum rsre_cri_method_id id, const ProtobufCMessage *req,
                   rsre_cri_cb cb, void *arg) {
    return rsre_cri_call(cri, &rsre_cri_methods[id], req, 0, cb, arg);
}

int rsre_cri_version(struct rsre_cri *cri, rsre_cri_cb cb, void *arg) {
    Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
    req.version = "v1";
    return call_id(cri, RSRE_CRI_VERSION, &req.base, cb, arg);
}

int rsre_cri_list_images(struct rsre_cri *cri, rsre_cri_cb cb, void *arg) {
    Runtime__V1__ListImagesRequest req = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    return call_id(cri, RSRE_CRI_LIST_IMAGES, &req.base, cb, arg);
}

int rsre_cri_image_fs_info(struct rsre_cri *cri, rsre_cri_cb cb, void *arg) {
    Runtime__V1__ImageFsInfoRequest req = RUNTIME__V1__IMAGE_FS_INFO_REQUEST__INIT;
    return call_id(cri, RSRE_CRI_IMAGE_FS_INFO, &req.base, cb, arg);
}

int rsre_cri_list_containers(struct rsre_cri *cri, rsre_cri_cb cb, void *arg) {
    Runtime__V1__ListContainersRequest req = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    return call_id(cri, RSRE_CRI_LIST_CONTAINERS, &req.base, cb, arg);
}

int rsre_cri_list_pod_sandbox(struct rsre_cri *cri, rsre_cri_cb cb, void *arg) {
    Runtime__V1__ListPodSandboxRequest req = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
    return call_id(cri, RSRE_CRI_LIST_POD_SANDBOX, &req.base, cb, arg);
}

int rsre_cri_container_status(struct rsre_cri *cri, const char *id, rsre_cri_cb cb, void *arg) {
    if (id == NULL) {
        return -EINVAL;
    }
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    req.container_id = (char *)id;
    return call_id(cri, RSRE_CRI_CONTAINER_STATUS, &req.base, cb, arg);
}

int rsre_cri_remove_image(struct rsre_cri *cri, const char *image, rsre_cri_cb cb, void *arg) {
    if (image == NULL) {
        return -EINVAL;
    }
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = (char *)image;
    Runtime__V1__RemoveImageRequest req = RUNTIME__V1__REMOVE_IMAGE_REQUEST__INIT;
    req.image = &spec;
    return call_id(cri, RSRE_CRI_REMOVE_IMAGE, &req.base, cb, arg);
}

int rsre_cri_remove_container(struct rsre_cri *cri, const char *id, rsre_cri_cb cb, void *arg) {
    if (id == NULL) {
        return -EINVAL;
    }
    Runtime__V1__RemoveContainerRequest req = RUNTIME__V1__REMOVE_CONTAINER_REQUEST__INIT;
    req.container_id = (char *)id;
    return call_id(cri, RSRE_CRI_REMOVE_CONTAINER, &req.base, cb, arg);
}

/* ---- imagefs hint ---------------------------------------------------------------------------- */

void rsre_cri_set_imagefs(struct rsre_cri *cri, const struct rsre_cri_imagefs *fs) {
    if (cri && fs) {
        cri->fs = *fs;
    }
}

void rsre_cri_get_imagefs(const struct rsre_cri *cri, struct rsre_cri_imagefs *out) {
    memset(out, 0, sizeof(*out));
    if (cri) {
        *out = cri->fs;
    }
    if (!(out->gc_high_percent > 0 && out->gc_high_percent <= 100)) {
        out->gc_high_percent = RSRE_CRI_DEFAULT_GC_HIGH;
    }
    if (!(out->gc_low_percent > 0 && out->gc_low_percent <= out->gc_high_percent)) {
        out->gc_low_percent = out->gc_high_percent < RSRE_CRI_DEFAULT_GC_LOW
                                  ? out->gc_high_percent
                                  : RSRE_CRI_DEFAULT_GC_LOW;
    }
}

/* ---- snapshot ----------------------------------------------------------------------------------
 */

enum { PART_IMAGES, PART_CONTAINERS, PART_SANDBOXES, PART_IMAGEFS, PART_STATUS, PART_COUNT };

struct snap_job;
struct snap_part {
    struct snap_job *job;
    int kind;
};

struct snap_job {
    struct rsre_cri *cri;
    struct rsre_cri_snapshot *snap;
    unsigned pending;
    int rc;
    rsre_cri_snapshot_cb cb;
    void *arg;
    struct snap_part parts[PART_COUNT];
};

void rsre_cri_snapshot_free(struct rsre_cri_snapshot *snap) {
    if (snap == NULL) {
        return;
    }
    rsre_cri_free(snap->images ? &snap->images->base : NULL);
    rsre_cri_free(snap->containers ? &snap->containers->base : NULL);
    rsre_cri_free(snap->sandboxes ? &snap->sandboxes->base : NULL);
    rsre_cri_free(snap->imagefs ? &snap->imagefs->base : NULL);
    free(snap->sandbox_image);
    free(snap);
}

/* True when `s` is 1..max bytes of printable ASCII without spaces (ids, image references). */
static int clean_token(const char *s, size_t max) {
    size_t n = 0;
    if (s == NULL) {
        return 0;
    }
    for (; s[n]; n++) {
        if (n >= max || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f) {
            return 0;
        }
    }
    return n > 0;
}

/*
 * Normalises an image reference the way containerd's CRI plugin does (docker reference rules),
 * so a configured sandbox image such as "pause:3.6" matches the runtime's repo tag
 * "docker.io/library/pause:3.6". Writes at most cap bytes; returns 0 when it does not fit.
 */
static int normalize_ref(const char *ref, char *out, size_t cap) {
    const char *slash = strchr(ref, '/');
    const char *domain = "";
    const char *lib = "";
    if (slash == NULL) {
        domain = "docker.io/";
        lib = "library/";
    } else {
        size_t dl = (size_t)(slash - ref);
        int has_domain = memchr(ref, '.', dl) || memchr(ref, ':', dl) ||
                         (dl == 9 && strncmp(ref, "localhost", 9) == 0);
        if (!has_domain) {
            domain = "docker.io/";
        }
    }
    const char *last = strrchr(ref, '/');
    last = last ? last + 1 : ref;
    const char *tag = strchr(ref, '@') || strchr(last, ':') ? "" : ":latest";
    int n = snprintf(out, cap, "%s%s%s%s", domain, lib, ref, tag);
    return n > 0 && (size_t)n < cap;
}

/* The sandbox image name from containerd's verbose Status: info["config"] is a JSON document
 * with "sandboxImage". Returns a malloc'd name, or NULL when absent or unusable. */
static char *sandbox_image_from_status(const Runtime__V1__StatusResponse *st) {
    for (size_t i = 0; i < st->n_info; i++) {
        const Runtime__V1__StatusResponse__InfoEntry *e = st->info[i];
        if (e == NULL || e->key == NULL || strcmp(e->key, "config") != 0 || e->value == NULL) {
            continue;
        }
        size_t len = strlen(e->value);
        if (len > MAX_STATUS_JSON) {
            return NULL;
        }
        json_error_t jerr;
        json_t *root = json_loadb(e->value, len, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL) {
            return NULL;
        }
        const char *img = json_string_value(json_object_get(root, "sandboxImage"));
        char *copy = img && clean_token(img, RSRE_CRI_MAX_ID_LEN) ? strdup(img) : NULL;
        json_decref(root);
        return copy;
    }
    return NULL;
}

static void snap_finish(struct snap_job *job) {
    struct rsre_cri *cri = job->cri;
    rsre_cri_snapshot_cb cb = job->cb;
    void *arg = job->arg;
    struct rsre_cri_snapshot *snap = job->snap;
    int rc = job->rc;
    free(job);
    if (rc) {
        rsre_cri_snapshot_free(snap);
        snap = NULL;
    } else {
        snap->taken_unix_ms = wall_ms();
        if (snap->images) {
            /* Every ListImages feeds the first-seen tracker. A failure keeps the old state. */
            if (rsre_cri_seen_update(cri->seen, snap->images, snap->taken_unix_ms) != 0) {
                RSRE_LOG(RSRE_LOG_WARN, "cri", "out of memory updating image first-seen times");
            }
        }
    }
    cb(arg, rc, snap);
}

static void on_snap_part(void *arg, int rc, ProtobufCMessage *reply) {
    struct snap_part *part = arg;
    struct snap_job *job = part->job;
    struct rsre_cri_snapshot *snap = job->snap;
    struct rsre_cri *cri = job->cri;

    if (part->kind == PART_STATUS) {
        /* Best effort: the sandbox image is an extra guard, not a requirement. */
        if (rc == 0) {
            char *name = sandbox_image_from_status((const Runtime__V1__StatusResponse *)reply);
            free(cri->sandbox_image);
            cri->sandbox_image = name ? name : strdup("");
            cri->sandbox_image_at = uv_now(cri->loop) ? uv_now(cri->loop) : 1;
        }
        if (cri->sandbox_image && cri->sandbox_image[0]) {
            free(snap->sandbox_image);
            snap->sandbox_image = strdup(cri->sandbox_image);
        }
        rsre_cri_free(reply);
    } else if (rc) {
        /* ImageFsInfo is best effort too: images and containers still make a useful signal
         * (without imagefs) on a runtime that cannot report it. */
        if (job->rc == 0 && part->kind != PART_IMAGEFS) {
            job->rc = rc;
        }
    } else {
        switch (part->kind) {
        case PART_IMAGES:
            snap->images = (Runtime__V1__ListImagesResponse *)reply;
            break;
        case PART_CONTAINERS:
            snap->containers = (Runtime__V1__ListContainersResponse *)reply;
            break;
        case PART_SANDBOXES:
            snap->sandboxes = (Runtime__V1__ListPodSandboxResponse *)reply;
            break;
        default:
            snap->imagefs = (Runtime__V1__ImageFsInfoResponse *)reply;
            break;
        }
    }
    if (--job->pending == 0) {
        snap_finish(job);
    }
}

int rsre_cri_snapshot(struct rsre_cri *cri, unsigned what, rsre_cri_snapshot_cb cb, void *arg) {
    if (cri == NULL || cb == NULL || (what & ~0x1fu) != 0 || what == 0) {
        return -EINVAL;
    }
    if (cri->destroying) {
        return -ESHUTDOWN;
    }
    struct snap_job *job = calloc(1, sizeof(*job));
    if (job == NULL || (job->snap = calloc(1, sizeof(*job->snap))) == NULL) {
        free(job);
        return -ENOMEM;
    }
    job->cri = cri;
    job->cb = cb;
    job->arg = arg;
    if (what & RSRE_CRI_SNAP_STATUS) {
        uint64_t now = uv_now(cri->loop);
        if (cri->sandbox_image_at && now - cri->sandbox_image_at < SANDBOX_IMAGE_TTL_MS) {
            what &= ~(unsigned)RSRE_CRI_SNAP_STATUS;
            if (cri->sandbox_image[0]) {
                job->snap->sandbox_image = strdup(cri->sandbox_image);
            }
        }
    }
    static const struct {
        unsigned flag;
        enum rsre_cri_method_id method;
    } rows[PART_COUNT] = {
        [PART_IMAGES] = {RSRE_CRI_SNAP_IMAGES, RSRE_CRI_LIST_IMAGES},
        [PART_CONTAINERS] = {RSRE_CRI_SNAP_CONTAINERS, RSRE_CRI_LIST_CONTAINERS},
        [PART_SANDBOXES] = {RSRE_CRI_SNAP_SANDBOXES, RSRE_CRI_LIST_POD_SANDBOX},
        [PART_IMAGEFS] = {RSRE_CRI_SNAP_IMAGEFS, RSRE_CRI_IMAGE_FS_INFO},
        [PART_STATUS] = {RSRE_CRI_SNAP_STATUS, RSRE_CRI_STATUS},
    };
    /* Every request of these methods is an empty message except Status(verbose). */
    Runtime__V1__ListImagesRequest li = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    Runtime__V1__ListContainersRequest lc = RUNTIME__V1__LIST_CONTAINERS_REQUEST__INIT;
    Runtime__V1__ListPodSandboxRequest ls = RUNTIME__V1__LIST_POD_SANDBOX_REQUEST__INIT;
    Runtime__V1__ImageFsInfoRequest fi = RUNTIME__V1__IMAGE_FS_INFO_REQUEST__INIT;
    Runtime__V1__StatusRequest st = RUNTIME__V1__STATUS_REQUEST__INIT;
    st.verbose = 1;
    const ProtobufCMessage *reqs[PART_COUNT] = {&li.base, &lc.base, &ls.base, &fi.base, &st.base};
    int first_rc = 0;
    for (int k = 0; k < PART_COUNT; k++) {
        if (!(what & rows[k].flag)) {
            continue;
        }
        job->parts[k].job = job;
        job->parts[k].kind = k;
        int rc = rsre_cri_call(cri, &rsre_cri_methods[rows[k].method], reqs[k], 0, on_snap_part,
                               &job->parts[k]);
        if (rc == 0) {
            job->pending++;
        } else if (first_rc == 0 && k != PART_STATUS) {
            first_rc = rc;
        }
    }
    if (job->pending == 0) {
        /* Nothing started (or only a cached Status was asked for): no callback will run. */
        if (first_rc == 0 && what == 0) {
            first_rc = -EINVAL;
        }
        rsre_cri_snapshot_free(job->snap);
        free(job);
        return first_rc ? first_rc : -EIO;
    }
    job->rc = first_rc;
    return 0;
}

/* ---- first-seen tracker --------------------------------------------------------------------- */

struct seen_entry {
    char *id;
    int64_t first_ms;
};

struct rsre_cri_seen {
    struct seen_entry *v;
    size_t n;
};

static int cmp_seen(const void *a, const void *b) {
    return strcmp(((const struct seen_entry *)a)->id, ((const struct seen_entry *)b)->id);
}

int rsre_cri_seen_create(struct rsre_cri_seen **out) {
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

static void seen_free_entries(struct seen_entry *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
    }
    free(v);
}

void rsre_cri_seen_destroy(struct rsre_cri_seen *s) {
    if (s) {
        seen_free_entries(s->v, s->n);
        free(s);
    }
}

static const struct seen_entry *seen_find(const struct rsre_cri_seen *s, const char *id) {
    if (s == NULL || s->n == 0 || id == NULL) {
        return NULL;
    }
    struct seen_entry key = {.id = (char *)id};
    return bsearch(&key, s->v, s->n, sizeof(*s->v), cmp_seen);
}

int64_t rsre_cri_seen_get(const struct rsre_cri_seen *s, const char *id) {
    const struct seen_entry *e = seen_find(s, id);
    return e ? e->first_ms : 0;
}

size_t rsre_cri_seen_count(const struct rsre_cri_seen *s) {
    return s ? s->n : 0;
}

int rsre_cri_seen_set(struct rsre_cri_seen *s, const char *id, int64_t first_ms) {
    if (s == NULL || !clean_token(id, RSRE_CRI_MAX_ID_LEN)) {
        return -EINVAL;
    }
    struct seen_entry *e = (struct seen_entry *)seen_find(s, id);
    if (e) {
        e->first_ms = first_ms;
        return 0;
    }
    struct seen_entry *v = realloc(s->v, (s->n + 1) * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    s->v = v;
    if ((v[s->n].id = strdup(id)) == NULL) {
        return -ENOMEM;
    }
    v[s->n].first_ms = first_ms;
    s->n++;
    qsort(s->v, s->n, sizeof(*s->v), cmp_seen);
    return 0;
}

int rsre_cri_seen_update(struct rsre_cri_seen *s, const Runtime__V1__ListImagesResponse *images,
                         int64_t now_ms) {
    if (s == NULL || images == NULL) {
        return -EINVAL;
    }
    size_t cap = images->n_images;
    struct seen_entry *v = cap ? calloc(cap, sizeof(*v)) : NULL;
    if (cap && v == NULL) {
        return -ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < images->n_images; i++) {
        const Runtime__V1__Image *img = images->images[i];
        if (img == NULL || !clean_token(img->id, RSRE_CRI_MAX_ID_LEN)) {
            continue;
        }
        const struct seen_entry *old = seen_find(s, img->id);
        if ((v[n].id = strdup(img->id)) == NULL) {
            seen_free_entries(v, n);
            return -ENOMEM;
        }
        v[n].first_ms = old ? old->first_ms : now_ms;
        n++;
    }
    if (n > 1) { /* qsort(NULL, 0, ...) is undefined */
        qsort(v, n, sizeof(*v), cmp_seen);
    }
    /* Drop duplicate ids (a confused runtime); keep the first of each. */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && strcmp(v[w - 1].id, v[i].id) == 0) {
            free(v[i].id);
            continue;
        }
        v[w++] = v[i];
    }
    seen_free_entries(s->v, s->n);
    s->v = v;
    s->n = w;
    return 0;
}

struct rsre_cri_seen *rsre_cri_seen_of(struct rsre_cri *cri) {
    return cri ? cri->seen : NULL;
}

/* ---- classification ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int in_set(const char *const *set, size_t n, const char *s) {
    return n && s && s[0] && bsearch(&s, set, n, sizeof(*set), cmp_str) != NULL;
}

/* True when `ref` names `img`: its id, one of its tags or one of its digests. */
static int names_image_exact(const Runtime__V1__Image *img, const char *ref) {
    if (ref == NULL || ref[0] == '\0') {
        return 0;
    }
    if (strcmp(img->id, ref) == 0) {
        return 1;
    }
    for (size_t t = 0; t < img->n_repo_tags; t++) {
        if (img->repo_tags[t] && strcmp(img->repo_tags[t], ref) == 0) {
            return 1;
        }
    }
    for (size_t t = 0; t < img->n_repo_digests; t++) {
        if (img->repo_digests[t] && strcmp(img->repo_digests[t], ref) == 0) {
            return 1;
        }
    }
    return 0;
}

/* names_image_exact, also trying the normalised form of `ref` (for the sandbox image). */
static int names_image(const Runtime__V1__Image *img, const char *ref) {
    char norm[RSRE_CRI_MAX_ID_LEN + 64];
    if (names_image_exact(img, ref)) {
        return 1;
    }
    return ref && ref[0] && normalize_ref(ref, norm, sizeof(norm)) && names_image_exact(img, norm);
}

struct idx_id {
    const char *id;
    size_t i;
};

static int cmp_idx_id(const void *a, const void *b) {
    const struct idx_id *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

int rsre_cri_classify_images(const Runtime__V1__ListImagesResponse *images,
                             const Runtime__V1__ListContainersResponse *containers,
                             const char *sandbox_image, const struct rsre_cri_seen *seen,
                             uint32_t min_age_s, int64_t now_ms, uint8_t *classes) {
    if (images == NULL || (classes == NULL && images->n_images)) {
        return -EINVAL;
    }
    size_t ni = images->n_images;
    size_t nc = containers ? containers->n_containers : 0;
    /* Every reference a container makes to its image. */
    const char **refs = nc ? calloc(nc * 3, sizeof(*refs)) : NULL;
    struct idx_id *ids = ni ? calloc(ni, sizeof(*ids)) : NULL;
    if ((nc && refs == NULL) || (ni && ids == NULL)) {
        free(refs);
        free(ids);
        return -ENOMEM;
    }
    size_t nr = 0;
    for (size_t i = 0; i < nc; i++) {
        const Runtime__V1__Container *c = containers->containers[i];
        if (c == NULL) {
            continue;
        }
        const char *cand[3] = {c->image_ref, c->image_id, c->image ? c->image->image : NULL};
        for (int k = 0; k < 3; k++) {
            if (cand[k] && cand[k][0]) {
                refs[nr++] = cand[k];
            }
        }
    }
    if (nr > 1) { /* qsort(NULL, 0, ...) is undefined */
        qsort(refs, nr, sizeof(*refs), cmp_str);
    }

    /* Valid ids, duplicates marked invalid (the first occurrence wins). */
    size_t nv = 0;
    for (size_t i = 0; i < ni; i++) {
        classes[i] = RSRE_CRI_IMAGE_INVALID;
        const Runtime__V1__Image *img = images->images[i];
        if (img && clean_token(img->id, RSRE_CRI_MAX_ID_LEN)) {
            ids[nv].id = img->id;
            ids[nv].i = i;
            nv++;
        }
    }
    if (nv > 1) { /* qsort(NULL, 0, ...) is undefined */
        qsort(ids, nv, sizeof(*ids), cmp_idx_id);
    }
    for (size_t k = 0; k < nv; k++) {
        if (k > 0 && strcmp(ids[k - 1].id, ids[k].id) == 0) {
            continue; /* stays INVALID */
        }
        size_t i = ids[k].i;
        const Runtime__V1__Image *img = images->images[i];
        int used = in_set(refs, nr, img->id);
        for (size_t t = 0; !used && t < img->n_repo_tags; t++) {
            used = in_set(refs, nr, img->repo_tags[t]);
        }
        for (size_t t = 0; !used && t < img->n_repo_digests; t++) {
            used = in_set(refs, nr, img->repo_digests[t]);
        }
        if (used) {
            classes[i] = RSRE_CRI_IMAGE_IN_USE;
        } else if (img->pinned || names_image(img, sandbox_image)) {
            classes[i] = RSRE_CRI_IMAGE_PINNED;
        } else {
            int64_t first = rsre_cri_seen_get(seen, img->id);
            int old_enough =
                min_age_s == 0 || (first > 0 && now_ms - first >= (int64_t)min_age_s * 1000);
            classes[i] = old_enough ? RSRE_CRI_IMAGE_RECLAIMABLE : RSRE_CRI_IMAGE_TOO_YOUNG;
        }
    }
    free(refs);
    free(ids);
    return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Mountpoints reported as signals must be clean absolute paths (printable ASCII). */
static int clean_path(const char *s) {
    if (s == NULL || s[0] != '/') {
        return 0;
    }
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= 4096 || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

int rsre_cri_compute_gc_state(const struct rsre_cri_snapshot *snap,
                              const struct rsre_cri_seen *seen, const struct rsre_cri_gc_params *p,
                              RobotSre__Agent__V1__ImageGcState *out,
                              RobotSre__Agent__V1__ImageFsInfo *fs_out) {
    if (snap == NULL || snap->images == NULL || p == NULL || out == NULL || fs_out == NULL) {
        return -EINVAL;
    }
    const Runtime__V1__ListImagesResponse *images = snap->images;
    uint8_t *classes = images->n_images ? malloc(images->n_images) : NULL;
    if (images->n_images && classes == NULL) {
        return -ENOMEM;
    }
    int rc = rsre_cri_classify_images(images, snap->containers, snap->sandbox_image, seen,
                                      p->min_age_s, p->now_ms, classes);
    if (rc) {
        free(classes);
        return rc;
    }
    robot_sre__agent__v1__image_gc_state__init(out);
    robot_sre__agent__v1__image_fs_info__init(fs_out);
    for (size_t i = 0; i < images->n_images; i++) {
        if (classes[i] == RSRE_CRI_IMAGE_INVALID) {
            continue;
        }
        const Runtime__V1__Image *img = images->images[i];
        uint64_t size = img->size;
        if (out->image_count < UINT32_MAX) {
            out->image_count++;
        }
        out->total_bytes = sat_add(out->total_bytes, size);
        if (classes[i] != RSRE_CRI_IMAGE_IN_USE) {
            out->unused_count += out->unused_count < UINT32_MAX;
            out->unused_bytes = sat_add(out->unused_bytes, size);
        }
        /* Pinned counts every pinned image, in use or not. */
        if (img->pinned || names_image(img, snap->sandbox_image)) {
            out->pinned_count += out->pinned_count < UINT32_MAX;
            out->pinned_bytes = sat_add(out->pinned_bytes, size);
        }
        if (classes[i] == RSRE_CRI_IMAGE_RECLAIMABLE) {
            out->reclaimable_bytes = sat_add(out->reclaimable_bytes, size);
        }
    }
    free(classes);

    const Runtime__V1__FilesystemUsage *fu = NULL;
    if (snap->imagefs && snap->imagefs->n_image_filesystems > 0) {
        fu = snap->imagefs->image_filesystems[0];
    }
    if (fu) {
        if (fu->fs_id && clean_path(fu->fs_id->mountpoint)) {
            fs_out->mountpoint = fu->fs_id->mountpoint;
        }
        fs_out->used_bytes = fu->used_bytes ? fu->used_bytes->value : 0;
        fs_out->inodes_used = fu->inodes_used ? fu->inodes_used->value : 0;
    }
    fs_out->capacity_bytes = p->fs.capacity_bytes;

    double low = p->fs.gc_low_percent;
    if (!(low > 0 && low <= 100)) {
        low = RSRE_CRI_DEFAULT_GC_LOW;
    }
    uint64_t used = p->fs.used_bytes ? p->fs.used_bytes : fs_out->used_bytes;
    if (p->fs.capacity_bytes > 0) {
        /* kubelet: amountToFree = usage - capacity * low / 100 (when usage is above it). */
        double target_d = (double)p->fs.capacity_bytes * low / 100.0;
        uint64_t target = target_d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)target_d;
        out->bytes_to_gc_low = used > target ? used - target : 0;
    }
    out->gc_can_recover = out->reclaimable_bytes >= out->bytes_to_gc_low;
    out->imagefs = fs_out;
    out->min_image_age_sec = p->min_age_s;
    return 0;
}

/* ---- churn ----------------------------------------------------------------------------------- */

struct churn_entry {
    char *id;
    int state;
};

struct rsre_cri_churn {
    struct churn_entry *v;
    size_t n;
    int64_t last_ms;
    int have_baseline;
};

static int cmp_churn(const void *a, const void *b) {
    return strcmp(((const struct churn_entry *)a)->id, ((const struct churn_entry *)b)->id);
}

int rsre_cri_churn_create(struct rsre_cri_churn **out) {
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

static void churn_free_entries(struct churn_entry *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
    }
    free(v);
}

void rsre_cri_churn_destroy(struct rsre_cri_churn *c) {
    if (c) {
        churn_free_entries(c->v, c->n);
        free(c);
    }
}

int rsre_cri_churn_update(struct rsre_cri_churn *c, const struct rsre_cri_snapshot *snap,
                          int64_t now_ms, RobotSre__Agent__V1__PodChurn *out) {
    if (c == NULL || snap == NULL || snap->containers == NULL || out == NULL) {
        return -EINVAL;
    }
    const Runtime__V1__ListContainersResponse *lc = snap->containers;
    struct churn_entry *v = lc->n_containers ? calloc(lc->n_containers, sizeof(*v)) : NULL;
    if (lc->n_containers && v == NULL) {
        return -ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < lc->n_containers; i++) {
        const Runtime__V1__Container *ct = lc->containers[i];
        if (ct == NULL || !clean_token(ct->id, RSRE_CRI_MAX_ID_LEN)) {
            continue;
        }
        if ((v[n].id = strdup(ct->id)) == NULL) {
            churn_free_entries(v, n);
            return -ENOMEM;
        }
        v[n].state = (int)ct->state;
        n++;
    }
    if (n > 1) { /* qsort(NULL, 0, ...) is undefined */
        qsort(v, n, sizeof(*v), cmp_churn);
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && strcmp(v[w - 1].id, v[i].id) == 0) {
            free(v[i].id);
            continue;
        }
        v[w++] = v[i];
    }
    n = w;

    uint32_t created = 0, exited_now = 0, exited_in_window = 0, not_ready = 0;
    for (size_t i = 0; i < n; i++) {
        const struct churn_entry *old =
            c->n ? bsearch(&v[i], c->v, c->n, sizeof(*c->v), cmp_churn) : NULL;
        int exited = v[i].state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
        created += old == NULL;
        exited_now += exited;
        if (exited &&
            (old == NULL || old->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)) {
            exited_in_window++;
        }
    }
    if (snap->sandboxes) {
        for (size_t i = 0; i < snap->sandboxes->n_items; i++) {
            const Runtime__V1__PodSandbox *sb = snap->sandboxes->items[i];
            not_ready += sb && sb->state == RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
        }
    }
    int had_baseline = c->have_baseline;
    int64_t last = c->last_ms;
    churn_free_entries(c->v, c->n);
    c->v = v;
    c->n = n;
    c->last_ms = now_ms;
    c->have_baseline = 1;
    if (!had_baseline) {
        return 0;
    }
    int64_t window = (now_ms - last + 500) / 1000;
    out->window_sec = window < 1 ? 1 : window > UINT32_MAX ? UINT32_MAX : (uint32_t)window;
    out->containers_created_in_window = created;
    out->containers_exited_in_window = exited_in_window;
    out->exited_containers = exited_now;
    out->sandboxes_not_ready = not_ready;
    return 1;
}
