#ifndef RSRE_KUBE_JSON_H
#define RSRE_KUBE_JSON_H

/*
 * Pure decoding of Kubernetes v1 JSON (Node, Pod, Event, Status, List, watch event lines) into
 * bounded C structs. No I/O, no global state; reentrant.
 *
 * Rules, the same for every object:
 *   - Missing fields and JSON null are tolerated: they leave the zero value (strings "",
 *     times 0, enums *_UNSET). Kubernetes omits empty fields, so this is the normal case.
 *   - A present field of the wrong JSON type is an error (RSRE_EINVALID), never guessed at.
 *   - Identifiers (names, namespaces, uids, resource versions, kinds, keys) longer than the
 *     bound Kubernetes itself enforces, or containing control characters, are an error
 *     (RSRE_EINVALID); a name or namespace containing '/' too. Free text (reasons, messages,
 *     images) longer than its bound is truncated on a UTF-8 character boundary.
 *   - Times are RFC 3339 ("2024-05-01T10:00:00Z", fractions and offsets accepted); anything
 *     else is an error.
 *   - Errors name the field by its path: "status.conditions[2].status: expected a string".
 *
 * Ownership: decoded objects are allocated by the *_decode functions and released with the
 * matching *_free (NULL is a no-op); every pointer inside is owned by the object.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- bounds (bytes including the NUL) ------------------------------------------------------ */
#define RSRE_KUBE_NAME_LEN 254       /* DNS-1123 subdomain: 253 */
#define RSRE_KUBE_NS_LEN 64          /* DNS-1123 label: 63 */
#define RSRE_KUBE_UID_LEN 64         /* a UUID (36) in practice */
#define RSRE_KUBE_RV_LEN 64          /* resourceVersion: opaque, decimal etcd revision today */
#define RSRE_KUBE_KIND_LEN 64        /* kind, condition types, address types, event types */
#define RSRE_KUBE_REASON_LEN 256     /* reasons (truncated) */
#define RSRE_KUBE_MESSAGE_MAX 4096   /* messages and other free text (truncated) */
#define RSRE_KUBE_IMAGE_MAX 1024     /* image references (truncated) */
#define RSRE_KUBE_TAINT_KEY_LEN 318  /* qualified name: 253-byte prefix, '/', 63-byte name */
#define RSRE_KUBE_LABEL_VALUE_LEN 64 /* label values (taint values): 63 */
#define RSRE_KUBE_PROVIDER_ID_LEN 1024
#define RSRE_KUBE_CONTINUE_LEN 4096    /* list continue tokens */
#define RSRE_KUBE_MAX_TAINTS 64        /* more: RSRE_ELIMIT */
#define RSRE_KUBE_MAX_ADDRESSES 32     /* more: RSRE_ELIMIT */
#define RSRE_KUBE_MAX_CONTAINERS 256   /* init + regular container statuses; more: RSRE_ELIMIT */
#define RSRE_KUBE_MAX_CONDITIONS 64    /* node conditions scanned; more: RSRE_ELIMIT */
#define RSRE_KUBE_MAX_JSON (64u << 20) /* largest JSON text rsre_kube_json_load accepts */
#define RSRE_KUBE_ERR_LEN 256          /* suggested size of err buffers */

/* ---- common ------------------------------------------------------------------------------- */

/*
 * Parses JSON text (at most RSRE_KUBE_MAX_JSON bytes; duplicate keys rejected) into *out
 * (release with json_decref). Returns 0, RSRE_ELIMIT, RSRE_EPARSE (err says where), -ENOMEM.
 */
int rsre_kube_json_load(const char *buf, size_t len, json_t **out, char *err, size_t err_len);

/* Parses an RFC 3339 date-time into milliseconds since the epoch (UTC). Returns 0 or
 * RSRE_EINVALID. Years 1..9999; fractions beyond milliseconds are dropped. */
int rsre_kube_time_parse(const char *s, int64_t *unix_ms);

/* The parts of ObjectMeta this project uses. */
struct rsre_kube_meta {
    char ns[RSRE_KUBE_NS_LEN]; /* "" for cluster-scoped objects */
    char name[RSRE_KUBE_NAME_LEN];
    char uid[RSRE_KUBE_UID_LEN];
    char rv[RSRE_KUBE_RV_LEN];
    int64_t created_ms;
    int64_t deleted_ms; /* deletionTimestamp; 0 = not being deleted */
    /* The controlling owner reference (controller: true), else the first one; "" if none. */
    char owner_kind[RSRE_KUBE_KIND_LEN];
    char owner_name[RSRE_KUBE_NAME_LEN];
    int mirror; /* annotation kubernetes.io/config.mirror present: a static pod's mirror */
};

/* Decodes obj.metadata into *m (zeroed first). `obj` must be a JSON object. */
int rsre_kube_meta_decode(const json_t *obj, struct rsre_kube_meta *m, char *err, size_t err_len);

/* metav1.Status (kind "Status"), as returned with errors and in watch ERROR events. */
struct rsre_kube_status {
    long code;                         /* HTTP status code; 0 when absent */
    char status[16];                   /* "Success" / "Failure" */
    char reason[RSRE_KUBE_REASON_LEN]; /* "NotFound", "Conflict", "Expired", "Gone", ... */
    char message[1024];                /* truncated */
};

/* Decodes a Status object. RSRE_EINVALID when `obj` is not an object of kind "Status". */
int rsre_kube_status_decode(const json_t *obj, struct rsre_kube_status *st, char *err,
                            size_t err_len);

/* ---- Node --------------------------------------------------------------------------------- */

/* Values equal those of robot_sre.agent.v1.ConditionStatus. */
enum rsre_kube_cond_status {
    RSRE_KUBE_COND_UNSET = 0, /* the node does not report this condition */
    RSRE_KUBE_COND_TRUE = 1,
    RSRE_KUBE_COND_FALSE = 2,
    RSRE_KUBE_COND_UNKNOWN = 3, /* "Unknown", or any status value this build does not know */
};

enum rsre_kube_node_cond {
    RSRE_KUBE_NODE_READY = 0,
    RSRE_KUBE_NODE_DISK_PRESSURE,
    RSRE_KUBE_NODE_MEMORY_PRESSURE,
    RSRE_KUBE_NODE_PID_PRESSURE,
    RSRE_KUBE_NODE_NETWORK_UNAVAILABLE,
    RSRE_KUBE_NODE_NCOND
};

/* The condition type string of each enum value ("Ready", "DiskPressure", ...). */
const char *rsre_kube_node_cond_name(enum rsre_kube_node_cond c);

struct rsre_kube_condition {
    enum rsre_kube_cond_status status;
    char reason[RSRE_KUBE_REASON_LEN];
    char *message; /* NULL when absent; at most RSRE_KUBE_MESSAGE_MAX bytes */
    int64_t last_transition_ms, last_heartbeat_ms;
};

/* Values equal those of robot_sre.agent.v1.TaintEffect. */
enum rsre_kube_taint_effect {
    RSRE_KUBE_TAINT_UNSET = 0,
    RSRE_KUBE_TAINT_NO_SCHEDULE = 1,
    RSRE_KUBE_TAINT_PREFER_NO_SCHEDULE = 2,
    RSRE_KUBE_TAINT_NO_EXECUTE = 3, /* also any effect this build does not know (safest) */
};

struct rsre_kube_taint {
    char key[RSRE_KUBE_TAINT_KEY_LEN];
    char value[RSRE_KUBE_LABEL_VALUE_LEN];
    enum rsre_kube_taint_effect effect;
    int64_t time_added_ms;
};

struct rsre_kube_address {
    char type[RSRE_KUBE_KIND_LEN]; /* "InternalIP", "ExternalIP", "Hostname", ... */
    char address[RSRE_KUBE_NAME_LEN];
};

struct rsre_kube_node {
    struct rsre_kube_meta meta;
    struct rsre_kube_condition cond[RSRE_KUBE_NODE_NCOND]; /* other condition types ignored */
    struct rsre_kube_taint *taints;
    size_t ntaints;
    int unschedulable;
    char provider_id[RSRE_KUBE_PROVIDER_ID_LEN]; /* e.g. "ocid1.instance.oc1.iad.abc..." */
    struct rsre_kube_address *addresses;
    size_t naddresses;
};

/* Decodes a v1 Node. Returns 0 with *out set, or RSRE_EINVALID / RSRE_ELIMIT / -ENOMEM with
 * *out NULL and err filled. */
int rsre_kube_node_decode(const json_t *obj, struct rsre_kube_node **out, char *err,
                          size_t err_len);
void rsre_kube_node_free(struct rsre_kube_node *n);

/* 1 when conditions (status, reason, message, lastTransitionTime), taints and unschedulable
 * are the same; heartbeats and resourceVersion are ignored (they change on every status
 * update and mean nothing changed). */
int rsre_kube_node_same_state(const struct rsre_kube_node *a, const struct rsre_kube_node *b);

/* ---- Pod ---------------------------------------------------------------------------------- */

enum rsre_kube_phase {
    RSRE_KUBE_PHASE_UNSET = 0, /* no phase yet (treated as Pending when counting) */
    RSRE_KUBE_PHASE_PENDING,
    RSRE_KUBE_PHASE_RUNNING,
    RSRE_KUBE_PHASE_SUCCEEDED,
    RSRE_KUBE_PHASE_FAILED,
    RSRE_KUBE_PHASE_UNKNOWN, /* "Unknown", or a phase this build does not know */
};

enum rsre_kube_cstate {
    RSRE_KUBE_CSTATE_UNSET = 0,
    RSRE_KUBE_CSTATE_WAITING,
    RSRE_KUBE_CSTATE_RUNNING,
    RSRE_KUBE_CSTATE_TERMINATED,
};

struct rsre_kube_container {
    char name[RSRE_KUBE_NS_LEN]; /* DNS-1123 label */
    int init;                    /* from status.initContainerStatuses */
    char *image; /* the image as in the pod spec (else as in the status); NULL when unknown */
    int32_t restart_count;
    int ready;
    enum rsre_kube_cstate state;
    char reason[RSRE_KUBE_REASON_LEN]; /* state.waiting.reason or state.terminated.reason */
    char *message;                     /* its message; NULL when absent */
    int32_t exit_code;                 /* state.terminated.exitCode */
};

struct rsre_kube_pod {
    struct rsre_kube_meta meta;
    char node_name[RSRE_KUBE_NAME_LEN]; /* spec.nodeName; "" when not scheduled */
    enum rsre_kube_phase phase;
    char reason[RSRE_KUBE_REASON_LEN];      /* status.reason, e.g. "Evicted" */
    char *message;                          /* status.message; NULL when absent */
    int64_t start_ms;                       /* status.startTime */
    struct rsre_kube_container *containers; /* init containers first */
    size_t ncontainers;
};

int rsre_kube_pod_decode(const json_t *obj, struct rsre_kube_pod **out, char *err, size_t err_len);
void rsre_kube_pod_free(struct rsre_kube_pod *p);

/* 1 for phase Succeeded or Failed. */
int rsre_kube_pod_finished(const struct rsre_kube_pod *p);
/* 1 for phase Failed with reason "Evicted" (kubelet's eviction manager). */
int rsre_kube_pod_evicted(const struct rsre_kube_pod *p);

/* Phase counts over a set of pods (Pending includes pods without a phase). */
struct rsre_kube_pod_counts {
    uint32_t running, pending, succeeded, failed, evicted, unknown;
    uint64_t restarts_total; /* sum of restartCount over all containers */
};

/* Adds one pod to *c. */
void rsre_kube_pod_count(const struct rsre_kube_pod *p, struct rsre_kube_pod_counts *c);

/* Values equal those of robot_sre.agent.v1.PullErrorReason. */
enum rsre_kube_pull_reason {
    RSRE_KUBE_PULL_NONE = 0,
    RSRE_KUBE_PULL_ERR_IMAGE_PULL = 1,
    RSRE_KUBE_PULL_BACKOFF = 2,
    RSRE_KUBE_PULL_INVALID_IMAGE_NAME = 3,
    RSRE_KUBE_PULL_OTHER = 4, /* ErrImageNeverPull, ErrImageInspect, RegistryUnavailable, ... */
};

/* Classifies a container's waiting reason; NONE when it is not an image problem. */
enum rsre_kube_pull_reason rsre_kube_pull_reason(const char *waiting_reason);

/* ---- Event (core/v1) ---------------------------------------------------------------------- */

struct rsre_kube_event {
    struct rsre_kube_meta meta;
    char involved_kind[RSRE_KUBE_KIND_LEN];
    char involved_ns[RSRE_KUBE_NS_LEN];
    char involved_name[RSRE_KUBE_NAME_LEN];
    char involved_uid[RSRE_KUBE_UID_LEN];
    char type[RSRE_KUBE_KIND_LEN]; /* "Normal" / "Warning" */
    char reason[RSRE_KUBE_REASON_LEN];
    char *message;
    int32_t count;
    int64_t first_ms, last_ms, event_ms;         /* firstTimestamp, lastTimestamp, eventTime */
    char source_component[RSRE_KUBE_REASON_LEN]; /* source.component or reportingComponent */
    char source_host[RSRE_KUBE_NAME_LEN];
};

int rsre_kube_event_decode(const json_t *obj, struct rsre_kube_event **out, char *err,
                           size_t err_len);
void rsre_kube_event_free(struct rsre_kube_event *e);

/* ---- lists and watch streams -------------------------------------------------------------- */

/* A decoded list response (e.g. kind "PodList"). */
struct rsre_kube_list {
    json_t *root;                      /* owned */
    json_t *items;                     /* borrowed from root: a JSON array */
    char rv[RSRE_KUBE_RV_LEN];         /* metadata.resourceVersion */
    char cont[RSRE_KUBE_CONTINUE_LEN]; /* metadata.continue; "" on the last page */
};

/*
 * Parses a list response. `kind` (e.g. "PodList") is checked when non-NULL. items must be an
 * array (null or missing = empty) of objects. Returns 0, RSRE_EPARSE, RSRE_EINVALID,
 * RSRE_ELIMIT, -ENOMEM; on failure *l is cleared.
 */
int rsre_kube_list_parse(const char *buf, size_t len, const char *kind, struct rsre_kube_list *l,
                         char *err, size_t err_len);
void rsre_kube_list_clear(struct rsre_kube_list *l);

enum rsre_kube_watch_type {
    RSRE_KUBE_WATCH_NONE = 0,
    RSRE_KUBE_WATCH_ADDED,
    RSRE_KUBE_WATCH_MODIFIED,
    RSRE_KUBE_WATCH_DELETED,
    RSRE_KUBE_WATCH_BOOKMARK,
    RSRE_KUBE_WATCH_ERROR,
};

const char *rsre_kube_watch_type_name(enum rsre_kube_watch_type t);

/* One line of a watch stream: {"type": "...", "object": {...}}. */
struct rsre_kube_watch_event {
    enum rsre_kube_watch_type type;
    json_t *object;                 /* owned; the Status object for ERROR */
    char rv[RSRE_KUBE_RV_LEN];      /* object.metadata.resourceVersion; "" when absent */
    struct rsre_kube_status status; /* ERROR only */
};

/*
 * Parses one watch line. Returns 0 with *ev filled (release with rsre_kube_watch_event_clear),
 * RSRE_EPARSE (not JSON), RSRE_EINVALID (unknown type, object missing or not an object, an
 * ERROR whose object is not a Status), RSRE_ELIMIT, -ENOMEM. On failure *ev is cleared.
 */
int rsre_kube_watch_parse(const char *line, size_t len, struct rsre_kube_watch_event *ev, char *err,
                          size_t err_len);
void rsre_kube_watch_event_clear(struct rsre_kube_watch_event *ev);

#endif
