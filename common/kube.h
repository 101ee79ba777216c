#ifndef RSRE_KUBE_H
#define RSRE_KUBE_H

/*
 * A small Kubernetes API client on the caller's libuv loop (through common/curl_uv.h), for the
 * agent (its own node and pods) and the aggregator (cluster observers and the Kubernetes
 * executor).
 *
 *   - Configuration: in-cluster service account, a kubeconfig file, or an explicit base URL.
 *   - Calls: GET / DELETE (with uid and resourceVersion preconditions and a propagation
 *     policy) / PATCH (merge, strategic merge, JSON patch) / POST, with bounded bodies decoded
 *     by jansson and non-2xx answers turned into error codes plus the server's Status.
 *   - Informers: list-then-watch of one collection with a local cache keyed by
 *     namespace/name, each entry carrying the object's uid and resourceVersion. Watches resume
 *     from the last resourceVersion seen (bookmarks included); a 410 Gone (HTTP status or an
 *     ERROR event with code 410) re-lists; a dropped or failed stream reconnects with
 *     exponential backoff and jitter. A re-list is diffed against the cache, so consumers see
 *     each change exactly once: ADDED for new objects, MODIFIED for changed ones (same uid,
 *     new resourceVersion), DELETED (synthetic) for objects that vanished while the watch was
 *     down, DELETED + ADDED when a name was reused by a new object (different uid).
 *
 * Threading: everything runs on the loop thread of the rsre_http client it was created with.
 * Credentials never appear in logs.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/curl_uv.h"
#include "common/kube_json.h"

/* ---- configuration ------------------------------------------------------------------------ */

#define RSRE_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define RSRE_KUBE_PATH_LEN 512
#define RSRE_KUBE_MAX_CREDENTIAL (64u << 10) /* token and PEM files / -data fields */

/*
 * Where and how to reach the API server. Filled by one of the rsre_kube_config_* functions
 * (or by hand); release with rsre_kube_config_clear. In-memory credentials are wiped when
 * cleared.
 */
struct rsre_kube_config {
    char server[RSRE_KUBE_PATH_LEN];     /* "https://10.96.0.1:443"; no trailing '/' */
    char token_file[RSRE_KUBE_PATH_LEN]; /* bearer token file, re-read every minute; "" = none */
    char *token;                         /* static bearer token; NULL = none */
    char ca_file[RSRE_KUBE_PATH_LEN];    /* CA bundle; "" = system bundle (or ca_pem) */
    char *ca_pem;                        /* CA bundle in memory (PEM) */
    size_t ca_pem_len;
    char cert_file[RSRE_KUBE_PATH_LEN]; /* client certificate / key files ... */
    char key_file[RSRE_KUBE_PATH_LEN];
    char *cert_pem; /* ... or in memory (PEM) */
    size_t cert_pem_len;
    char *key_pem;
    size_t key_pem_len;
    int insecure;              /* insecure-skip-tls-verify */
    char ns[RSRE_KUBE_NS_LEN]; /* default namespace (service account's or the context's) */
};

/* Explicit base URL (tests, proxies): no credentials. Returns 0 or -EINVAL (not http(s), too
 * long). */
int rsre_kube_config_url(struct rsre_kube_config *c, const char *url);

/*
 * In-cluster service account: server from KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT
 * (IPv6 hosts bracketed), token `sa_dir`/token (re-read every minute, as bound tokens
 * rotate), CA `sa_dir`/ca.crt, namespace from `sa_dir`/namespace. sa_dir NULL means
 * RSRE_KUBE_SA_DIR. Returns 0, RSRE_ENOTFOUND (not in a cluster: variables unset, no token),
 * RSRE_EINVALID (malformed values), with err filled.
 */
int rsre_kube_config_in_cluster(struct rsre_kube_config *c, const char *sa_dir, char *err,
                                size_t err_len);

/*
 * kubeconfig file (YAML): `context` (NULL = current-context) selects cluster and user;
 * cluster: server, certificate-authority (relative paths are relative to the file's
 * directory), certificate-authority-data, insecure-skip-tls-verify; user: token, tokenFile,
 * client-certificate(-data), client-key(-data). -data fields are base64-decoded into memory
 * (never written to disk). exec and auth-provider users are refused (this project never runs
 * a command from configuration). Returns 0, RSRE_ENOTFOUND, RSRE_EPARSE, RSRE_EINVALID,
 * RSRE_ELIMIT, -errno, with err filled ("kubeconfig:12:3: ..." when a position is known).
 */
int rsre_kube_config_kubeconfig(struct rsre_kube_config *c, const char *path, const char *context,
                                char *err, size_t err_len);

/*
 * The agent's and aggregator's rule: base_url when non-empty, else the kubeconfig when
 * non-empty, else in-cluster (sa_dir as above). Same returns as the function chosen.
 */
int rsre_kube_config_auto(struct rsre_kube_config *c, const char *base_url, const char *kubeconfig,
                          const char *sa_dir, char *err, size_t err_len);

void rsre_kube_config_clear(struct rsre_kube_config *c);

/* ---- client ------------------------------------------------------------------------------- */

struct rsre_kube;
struct rsre_kube_call;

/*
 * Creates a client that sends its requests through `http` (borrowed: it must outlive the
 * client). `cfg` is copied. Returns 0, -EINVAL (no server), -ENOMEM.
 */
int rsre_kube_create(struct rsre_http *http, const struct rsre_kube_config *cfg,
                     struct rsre_kube **out);

/*
 * Destroys the client. Informers must be stopped first. Calls still in flight complete now,
 * before this returns, with -ECANCELED. NULL is a no-op.
 */
void rsre_kube_destroy(struct rsre_kube *k);

/* The client's configuration (e.g. its default namespace). */
const struct rsre_kube_config *rsre_kube_get_config(const struct rsre_kube *k);
uv_loop_t *rsre_kube_loop(const struct rsre_kube *k);

/*
 * Outcome of a call, valid only during the callback.
 *
 * rc: 0 for a 2xx answer; for others: RSRE_EINVALID (400, 422, other 4xx), -EACCES (401),
 * -EPERM (403), RSRE_ENOTFOUND (404), RSRE_EEXIST (409 AlreadyExists), -ESTALE (409
 * Conflict, e.g. a failed precondition, and 410 Gone), -EAGAIN (429, e.g. an eviction a
 * PodDisruptionBudget blocks), -EIO (5xx); RSRE_EPARSE for a 2xx body that is not JSON;
 * transport errors as in curl_uv.h (-ECONNREFUSED, -ETIMEDOUT, RSRE_ELIMIT, -ECANCELED, ...).
 */
struct rsre_kube_result {
    int rc;
    long http_status;                      /* 0 when no answer */
    json_t *body;                          /* borrowed; NULL when empty or not JSON */
    const struct rsre_kube_status *status; /* the Status of a non-2xx answer, or NULL */
    const char *error;                     /* readable reason when rc != 0, else "" */
};

typedef void (*rsre_kube_cb)(void *arg, const struct rsre_kube_result *res);

enum rsre_kube_patch_type {
    RSRE_KUBE_PATCH_MERGE = 0, /* application/merge-patch+json (RFC 7386) */
    RSRE_KUBE_PATCH_STRATEGIC, /* application/strategic-merge-patch+json */
    RSRE_KUBE_PATCH_JSON,      /* application/json-patch+json (RFC 6902) */
};

#define RSRE_KUBE_DEFAULT_MAX_BODY (16u << 20)
#define RSRE_KUBE_DEFAULT_TIMEOUT_MS 30000u

/* One request. path is the API path with its query, e.g. "/api/v1/nodes/n1"; everything is
 * copied. */
struct rsre_kube_request {
    const char *method; /* "GET" when NULL */
    const char *path;
    const char *body; /* JSON text or NULL */
    size_t body_len;
    const char *content_type; /* "application/json" when NULL and body is set */
    size_t max_body;          /* 0 = RSRE_KUBE_DEFAULT_MAX_BODY */
    uint32_t timeout_ms;      /* 0 = RSRE_KUBE_DEFAULT_TIMEOUT_MS */
};

/*
 * Starts a call. `cb` runs exactly once, from the loop (never from inside this function),
 * unless the call is abandoned. *out (optional) is valid until cb starts. Returns 0, -EINVAL
 * (path not starting with '/'), -ESHUTDOWN, -ENOMEM; on failure cb never runs.
 */
int rsre_kube_call(struct rsre_kube *k, const struct rsre_kube_request *req, rsre_kube_cb cb,
                   void *arg, struct rsre_kube_call **out);

int rsre_kube_get(struct rsre_kube *k, const char *path, rsre_kube_cb cb, void *arg,
                  struct rsre_kube_call **out);

/*
 * DELETE with DeleteOptions: preconditions uid and/or resourceVersion (NULL or "" = none) and
 * propagationPolicy ("Background", "Foreground", "Orphan"; NULL = server default). A failed
 * precondition is -ESTALE (409).
 */
int rsre_kube_delete(struct rsre_kube *k, const char *path, const char *uid, const char *rv,
                     const char *propagation, rsre_kube_cb cb, void *arg,
                     struct rsre_kube_call **out);

int rsre_kube_patch(struct rsre_kube *k, const char *path, enum rsre_kube_patch_type type,
                    const char *json, rsre_kube_cb cb, void *arg, struct rsre_kube_call **out);

int rsre_kube_post(struct rsre_kube *k, const char *path, const char *json, rsre_kube_cb cb,
                   void *arg, struct rsre_kube_call **out);

/* Stops a call; its callback never runs. Safe from any callback. */
void rsre_kube_call_abandon(struct rsre_kube_call *c);

/*
 * Percent-encodes `s` for a URL path segment or query value (everything but A-Z a-z 0-9 - . _
 * ~). Returns 0 or RSRE_ELIMIT when it does not fit in cap bytes.
 */
int rsre_kube_escape(const char *s, char *out, size_t cap);

/* ---- informers ---------------------------------------------------------------------------- */

struct rsre_kube_informer;

enum rsre_kube_change {
    RSRE_KUBE_ADDED = 1,
    RSRE_KUBE_MODIFIED,
    RSRE_KUBE_DELETED,
};

/* Turns one object into the caller's form (stored in the cache). Returns 0 with *out set
 * (may be NULL to keep nothing but identity), or an error: the object is skipped and
 * counted. rsre_kube_node_decode / rsre_kube_pod_decode / rsre_kube_event_decode fit, cast. */
typedef int (*rsre_kube_decode_fn)(const json_t *obj, void **out, char *err, size_t err_len);
typedef void (*rsre_kube_free_fn)(void *obj);

/*
 * A change. meta: the object's identity (for DELETED the last one known); obj: the new
 * decoded object (for DELETED the last one known, freed right after the callback); old: the
 * previous one for MODIFIED, else NULL. All are borrowed for the duration of the callback.
 * The callback may read the cache and may stop the informer.
 */
typedef void (*rsre_kube_change_fn)(void *arg, enum rsre_kube_change change,
                                    const struct rsre_kube_meta *meta, void *obj, void *old);

struct rsre_kube_informer_opts {
    const char *path;           /* collection path: "/api/v1/pods", "/apis/apps/v1/deployments" */
    const char *list_kind;      /* checked when non-NULL, e.g. "PodList" */
    const char *field_selector; /* raw, e.g. "spec.nodeName=node-1" (escaped here) */
    const char *label_selector;
    rsre_kube_decode_fn decode;    /* required */
    rsre_kube_free_fn free_obj;    /* required when decode keeps objects */
    rsre_kube_change_fn on_change; /* may be NULL */
    void (*on_synced)(void *arg);  /* after each list (initial and re-list) is applied */
    void (*on_error)(void *arg, int rc, const char *msg); /* failed list/watch; may be NULL */
    void *arg;
    uint32_t page_size;       /* list limit; 0 = 500 */
    uint32_t watch_timeout_s; /* timeoutSeconds; 0 = random in 300..600 (as client-go) */
    uint32_t backoff_min_ms;  /* 0 = 500 */
    uint32_t backoff_max_ms;  /* 0 = 30000 */
    size_t max_objects;       /* cache bound; 0 = 10000 (a larger list fails with RSRE_ELIMIT) */
    size_t max_list_bytes;    /* one list page; 0 = 32 MiB */
    size_t max_event_bytes;   /* one watch line; 0 = 4 MiB */
};

/* Starts listing at once. Strings in `o` are copied. Returns 0, -EINVAL, -ENOMEM. */
int rsre_kube_informer_start(struct rsre_kube *k, const struct rsre_kube_informer_opts *o,
                             struct rsre_kube_informer **out);

/* Stops: no callback runs afterwards (safe inside the informer's own callbacks); the memory
 * is released once the loop has closed its timer. NULL is a no-op. */
void rsre_kube_informer_stop(struct rsre_kube_informer *inf);

/* 1 once a list has been applied (stays 1 across re-lists). */
int rsre_kube_informer_synced(const struct rsre_kube_informer *inf);

size_t rsre_kube_informer_size(const struct rsre_kube_informer *inf);

/* The cached object of ns/name (ns "" for cluster-scoped), or NULL. `uid` (optional) receives
 * a pointer to its uid. Borrowed until the next change. */
void *rsre_kube_informer_get(const struct rsre_kube_informer *inf, const char *ns, const char *name,
                             const char **uid);

/* Calls fn for every cached object (unspecified order) until it returns non-zero, which is
 * returned. fn must not stop the informer. */
int rsre_kube_informer_foreach(const struct rsre_kube_informer *inf,
                               int (*fn)(void *arg, const char *ns, const char *name,
                                         const char *uid, void *obj),
                               void *arg);

struct rsre_kube_informer_stats {
    uint64_t lists;        /* list requests completed successfully (pages) */
    uint64_t relists_gone; /* re-lists caused by 410 Gone */
    uint64_t watches;      /* watch streams opened (2xx) */
    uint64_t reconnects;   /* watch restarts after an error or a dropped stream */
    uint64_t events;       /* changes delivered (ADDED/MODIFIED/DELETED) */
    uint64_t duplicates;   /* watch events ignored because the cache already had them */
    uint64_t bookmarks;
    uint64_t decode_errors;    /* objects or lines that did not decode */
    uint64_t errors;           /* failed list/watch requests */
    int last_rc;               /* last error (0 when the last request succeeded) */
    char rv[RSRE_KUBE_RV_LEN]; /* resourceVersion the next watch resumes from */
};

void rsre_kube_informer_stats(const struct rsre_kube_informer *inf,
                              struct rsre_kube_informer_stats *out);

#endif
