#ifndef RSRE_OCI_H
#define RSRE_OCI_H

/*
 * OCI executor client: reboot and replace OKE worker nodes through the OCI REST APIs, on the
 * caller's libuv loop, with every request signed by oci_sign.h.
 *
 *   reboot   POST   /20160918/instances/{instanceId}?action=SOFTRESET   (compute, iaas.*)
 *            POST   /20160918/instances/{instanceId}?action=RESET       (hard; fallback)
 *   replace  DELETE /20180222/nodePools/{nodePoolId}/node/{nodeId}?isDecrementSize=false
 *                                                         (container engine, containerengine.*)
 *   verify   GET    /20160918/instances/{instanceId}, GET /20180222/nodePools/{nodePoolId}
 *
 * The instance comes from the Kubernetes node's spec.providerID ("oci://<instance OCID>"),
 * the node pool from the node's RSRE_OCI_NODE_POOL_LABEL label or the configuration.
 *
 * Every call: a fresh signature per attempt; an opc-request-id of ours on every request
 * (logged, and OCI folds it into its own); opc-retry-token on instance actions so a retried
 * POST cannot reboot twice; retries with exponential backoff and jitter for 429, 500, 502,
 * 503, 504 and transport failures, honouring Retry-After (seconds or HTTP-date) when the
 * transport can see it; response bodies bounded; OCI's {"code","message"} errors mapped to
 * error codes.
 *
 * Callback rules (libuv's, as curl_uv.h): when a starting function fails, its callback never
 * runs; otherwise it runs exactly once, from the loop (never from inside the starting
 * function), unless abandoned. Call and operation handles are valid until their callback
 * starts. rsre_oci_destroy runs the callback of everything in flight with -ECANCELED before it
 * returns.
 *
 * Threading: loop thread only. Logs never contain key material or signatures.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/curl_uv.h"
#include "exec/oci_sign.h"

#define RSRE_OCI_PROVIDER_PREFIX "oci://"
#define RSRE_OCI_NODE_POOL_LABEL "oci.oraclecloud.com/node-pool-id"
#define RSRE_OCI_URL_MAX 256
#define RSRE_OCI_PATH_MAX 512
#define RSRE_OCI_STATE_LEN 32

/* ---- pure helpers ----------------------------------------------------------------------- */

/* An instance named by a Kubernetes providerID. */
struct rsre_oci_instance_ref {
    char ocid[RSRE_OCI_OCID_MAX + 1]; /* "ocid1.instance.oc1.iad.xxxx" */
    char realm[16];                   /* "oc1" */
    char region[64]; /* the OCID's region segment: a key ("iad") or a name ("eu-frankfurt-1") */
};

/*
 * Parses spec.providerID strictly: exactly "oci://" followed by an instance OCID
 * ("ocid1.instance.<realm>.<region>.[future.]<id>", as rsre_oci_ocid_check, with a non-empty
 * region), nothing before or after (no whitespace, no query, no second "oci://"). Returns 0
 * with *out filled, or RSRE_EINVALID (out zeroed).
 */
int rsre_oci_parse_provider_id(const char *provider_id, struct rsre_oci_instance_ref *out);

/*
 * Chooses the node pool of a node: the value of its RSRE_OCI_NODE_POOL_LABEL label when the
 * node has one (`label`, NULL or "" = absent), else `configured` (NULL or "" = none). The
 * chosen value must be a node pool OCID. Returns 0 with *out pointing at the chosen string,
 * RSRE_EINVALID (the chosen value is not a node pool OCID; a malformed label never falls back
 * to the configuration), RSRE_ENOTFOUND (neither is set).
 */
int rsre_oci_pick_node_pool(const char *label, const char *configured, const char **out);

/* ---- configuration ---------------------------------------------------------------------- */

struct rsre_oci_config {
    char tenancy[RSRE_OCI_OCID_MAX + 1];
    char user[RSRE_OCI_OCID_MAX + 1];
    char fingerprint[RSRE_OCI_FINGERPRINT_LEN];
    char key_file[RSRE_OCI_URL_MAX];
    char passphrase_file[RSRE_OCI_URL_MAX];     /* "" = the key is not encrypted */
    char region[64];                            /* "us-ashburn-1" */
    char realm_domain[64];                      /* "oraclecloud.com" */
    char compute_url[RSRE_OCI_URL_MAX];         /* "" = https://iaas.<region>.<realm_domain> */
    char containerengine_url[RSRE_OCI_URL_MAX]; /* "" = https://containerengine.<region>... */
    char node_pool_id[RSRE_OCI_OCID_MAX + 1];   /* default pool when a node has no label */
    char ca_file[RSRE_OCI_URL_MAX];             /* "" = system CA bundle */
    uint32_t timeout_ms;                        /* one HTTP attempt */
    uint32_t max_attempts;                      /* per call, first one included */
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    uint32_t max_retry_after_ms;    /* Retry-After longer than this is capped */
    uint32_t max_body;              /* response body bound, bytes */
    uint32_t poll_interval_ms;      /* verification polling */
    uint32_t soft_reset_timeout_ms; /* SOFTRESET must be RUNNING again within this */
    uint32_t reset_timeout_ms;      /* RESET likewise */
    uint32_t replace_timeout_ms;    /* the old instance must be terminating within this */
};

/* One row per key: the table drives defaults, setting by name, bounds and --help. */
enum rsre_oci_config_type { RSRE_OCI_CFG_STR, RSRE_OCI_CFG_U32 };

struct rsre_oci_config_key {
    const char *name;
    enum rsre_oci_config_type type;
    size_t offset;
    size_t size;  /* capacity for strings */
    uint32_t min; /* U32 bounds */
    uint32_t max;
    const char *def; /* default, as text */
    const char *description;
};

extern const struct rsre_oci_config_key rsre_oci_config_keys[];
extern const size_t rsre_oci_config_nkeys;

/* Fills every key with its default. */
void rsre_oci_config_defaults(struct rsre_oci_config *cfg);

/* Sets one key from text. Returns 0, RSRE_ENOTFOUND (no such key), RSRE_EINVALID (not a number,
 * out of bounds, too long), with err filled. */
int rsre_oci_config_set(struct rsre_oci_config *cfg, const char *key, const char *value, char *err,
                        size_t err_len);

/*
 * Checks a configuration as rsre_oci_create would (required keys, OCID shapes, region, base
 * URLs, bounds) and writes the effective base URLs. Returns 0 or RSRE_EINVALID with err
 * filled. Does not read the key.
 */
int rsre_oci_config_check(const struct rsre_oci_config *cfg, char compute[RSRE_OCI_URL_MAX],
                          char containerengine[RSRE_OCI_URL_MAX], char *err, size_t err_len);

/* ---- transport -------------------------------------------------------------------------- */

#define RSRE_OCI_MAX_REQ_HEADERS 12

/* One HTTP exchange as the client hands it to a transport. Borrowed for the send call. */
struct rsre_oci_http_request {
    const char *method;
    const char *url;
    const char *headers[RSRE_OCI_MAX_REQ_HEADERS]; /* "name: value" */
    size_t nheaders;
    const void *body; /* non-NULL for POST/PUT (possibly empty) */
    size_t body_len;
    uint32_t timeout_ms;
    size_t max_body;
    const char *ca_file; /* NULL = system bundle */
};

/* What the transport saw; valid during the callback. Header fields are NULL when absent or
 * when the transport cannot see response headers. */
struct rsre_oci_http_response {
    long status;
    const char *body;
    size_t body_len;
    const char *opc_request_id;
    const char *opc_work_request_id;
    const char *retry_after;
};

/* rc: 0 when a response arrived (any status), else a negative code as in curl_uv.h. */
typedef void (*rsre_oci_http_done_cb)(void *arg, int rc, const struct rsre_oci_http_response *r);

/*
 * A transport: `send` starts an exchange and calls `done` exactly once, later, from the loop
 * (never from inside send), unless `abandon` is called first; it returns 0 with *handle set,
 * or a negative code (then done never runs). `abandon` stops an exchange without a callback.
 */
struct rsre_oci_transport {
    int (*send)(void *ctx, const struct rsre_oci_http_request *req, rsre_oci_http_done_cb done,
                void *arg, void **handle);
    void (*abandon)(void *ctx, void *handle);
    void *ctx;
};

/*
 * The production transport: common/curl_uv.h on `http` (borrowed; must outlive the client).
 * curl_uv does not expose response headers yet, so opc_request_id, opc_work_request_id and
 * retry_after are NULL through it (the client then logs its own request id and backs off
 * without Retry-After).
 */
void rsre_oci_transport_curl(struct rsre_http *http, struct rsre_oci_transport *out);

/* ---- client ----------------------------------------------------------------------------- */

struct rsre_oci;
struct rsre_oci_call;

/*
 * Creates a client: checks cfg (rsre_oci_config_check), reads the passphrase file, loads the
 * key and checks its fingerprint (rsre_oci_signer_create). `transport` is copied; `loop` is
 * borrowed. Returns 0, RSRE_EINVALID, the key loading codes, -ENOMEM, with err filled.
 */
int rsre_oci_create(uv_loop_t *loop, const struct rsre_oci_transport *transport,
                    const struct rsre_oci_config *cfg, struct rsre_oci **out, char *err,
                    size_t err_len);

/*
 * Cancels everything in flight (callbacks run now with -ECANCELED; calls they try to start
 * fail with -ESHUTDOWN) and releases the client. Timers are released in their close
 * callbacks, so the loop must run once more. Not from inside one of this client's callbacks.
 * NULL is a no-op.
 */
void rsre_oci_destroy(struct rsre_oci *c);

/* Effective base URLs. */
const char *rsre_oci_compute_url(const struct rsre_oci *c);
const char *rsre_oci_containerengine_url(const struct rsre_oci *c);

/*
 * Outcome of one call, valid during the callback.
 *
 * rc: 0 for a 2xx answer (with a JSON body when one was sent, else RSRE_EPARSE); otherwise
 * RSRE_EINVALID (400 and other 4xx), -EACCES (401 NotAuthenticated), -EPERM (403),
 * RSRE_ENOTFOUND (404 NotAuthorizedOrNotFound), -ESTALE (409 Conflict/IncorrectState, 412),
 * -EAGAIN (429 after the last attempt), -EIO (5xx after the last attempt), or a transport code
 * (-ECONNREFUSED, -ETIMEDOUT, RSRE_ELIMIT for an oversized body, ...), -ECANCELED.
 */
struct rsre_oci_result {
    int rc;
    long http_status;                /* of the last attempt; 0 when none answered */
    const char *code;                /* OCI error code ("NotAuthenticated", ...) or "" */
    const char *message;             /* OCI's or our reason; "" on success */
    const char *request_id;          /* the opc-request-id we sent */
    const char *opc_request_id;      /* the one OCI answered with, or "" when not seen */
    const char *opc_work_request_id; /* "" when none / not seen */
    json_t *body;                    /* borrowed; NULL when empty or on error */
    unsigned attempts;
};

typedef void (*rsre_oci_cb)(void *arg, const struct rsre_oci_result *res);

enum rsre_oci_instance_action {
    RSRE_OCI_SOFTRESET = 0, /* ACPI shutdown, then power on (OCI forces it after 15 min) */
    RSRE_OCI_RESET,         /* immediate power cycle */
};

/* GET /20160918/instances/{id}. Returns 0, RSRE_EINVALID (not an instance OCID),
 * -ESHUTDOWN, -ENOMEM; *out (optional) is valid until cb starts. */
int rsre_oci_get_instance(struct rsre_oci *c, const char *instance_id, rsre_oci_cb cb, void *arg,
                          struct rsre_oci_call **out);

/* POST /20160918/instances/{id}?action=SOFTRESET|RESET (empty body, opc-retry-token). */
int rsre_oci_instance_action(struct rsre_oci *c, const char *instance_id,
                             enum rsre_oci_instance_action action, rsre_oci_cb cb, void *arg,
                             struct rsre_oci_call **out);

/* GET /20180222/nodePools/{id}. */
int rsre_oci_get_node_pool(struct rsre_oci *c, const char *node_pool_id, rsre_oci_cb cb, void *arg,
                           struct rsre_oci_call **out);

/* DELETE /20180222/nodePools/{pool}/node/{node}?isDecrementSize=false: OKE drains and
 * terminates the node and, the pool keeping its size, launches a replacement. */
int rsre_oci_delete_node(struct rsre_oci *c, const char *node_pool_id, const char *node_id,
                         rsre_oci_cb cb, void *arg, struct rsre_oci_call **out);

/* Stops a call: its callback never runs. Safe from any callback; a no-op once the call's own
 * callback has started. */
void rsre_oci_call_abandon(struct rsre_oci_call *call);

/* ---- worker operations: act, then verify ------------------------------------------------ */

struct rsre_oci_op;

enum rsre_oci_reboot_mode {
    RSRE_OCI_REBOOT_SOFT = 0,       /* SOFTRESET only */
    RSRE_OCI_REBOOT_SOFT_THEN_HARD, /* SOFTRESET; RESET when still STOPPING at the timeout */
    RSRE_OCI_REBOOT_HARD,           /* RESET only */
};

/*
 * Outcome of a worker operation, valid during the callback. rc 0 means the effect was seen:
 * for a reboot, the instance RUNNING again after the action (transition_seen says whether a
 * non-RUNNING state was observed on the way — compare the node's boot id to be sure); for a
 * replace, the old instance TERMINATING/TERMINATED (or gone) and the pool's size unchanged.
 * Otherwise rc is a call's code (see rsre_oci_result) or: -ESTALE (instance not RUNNING
 * before a reboot, pool size changed), RSRE_ENOTFOUND (the instance is not a node of the
 * pool), -EALREADY (the node is already being deleted), -ETIMEDOUT (no effect within the
 * configured time), -ECANCELED.
 */
struct rsre_oci_outcome {
    int rc;
    const char *step;    /* where it ended: "precheck", "action", "verify", "done" */
    const char *message; /* readable: what happened or why not */
    const char *instance_id;
    const char *node_pool_id;        /* replace only */
    const char *action;              /* last action sent: "SOFTRESET", "RESET", "DELETE_NODE", "" */
    const char *final_state;         /* last lifecycleState seen of the instance, or "" */
    const char *request_id;          /* opc-request-id we sent with the action, or "" */
    const char *opc_request_id;      /* OCI's for the action, "" when not seen */
    const char *opc_work_request_id; /* replace: the work request, "" when not seen */
    const char *replacement_node;    /* replace: a node of the pool not there before, or "" */
    long http_status;                /* of the action, 0 when not sent */
    int fell_back_to_reset;
    int transition_seen;
    uint64_t elapsed_ms;
};

typedef void (*rsre_oci_outcome_cb)(void *arg, const struct rsre_oci_outcome *o);

/*
 * Reboots the worker named by `provider_id`: GET (must be RUNNING) → action → poll GET every
 * poll_interval_ms until RUNNING again (soft_reset_timeout_ms / reset_timeout_ms). Returns 0,
 * RSRE_EINVALID (bad provider id), -ESHUTDOWN, -ENOMEM; cb never runs on failure.
 */
int rsre_oci_reboot_worker(struct rsre_oci *c, const char *provider_id,
                           enum rsre_oci_reboot_mode mode, rsre_oci_outcome_cb cb, void *arg,
                           struct rsre_oci_op **out);

/*
 * Replaces the worker: GET the pool (the instance must be one of its nodes, not already
 * DELETING) → DELETE node with isDecrementSize=false → poll GET instance until
 * TERMINATING/TERMINATED/404 (replace_timeout_ms) → GET the pool again (size unchanged).
 * node_pool_id as chosen by rsre_oci_pick_node_pool (NULL = the configured one). Returns 0,
 * RSRE_EINVALID, RSRE_ENOTFOUND (no pool), -ESHUTDOWN, -ENOMEM.
 */
int rsre_oci_replace_worker(struct rsre_oci *c, const char *provider_id, const char *node_pool_id,
                            rsre_oci_outcome_cb cb, void *arg, struct rsre_oci_op **out);

/* Stops an operation: its callback never runs (a request already sent may still take effect
 * at OCI). Safe from any callback; a no-op once the operation's own callback has started. */
void rsre_oci_op_abandon(struct rsre_oci_op *op);

#endif
