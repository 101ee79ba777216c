/*
 * Kubernetes executor (see kube_exec.h): one static table of actions, each a read -> write ->
 * read-back flow of API calls on the loop, bounded by a deadline.
 *
 * An operation makes one API call at a time; `op_call` starts it with the time left before
 * the deadline as its timeout and hands the answer to the step function named with it. The
 * deadline timer abandons whatever call is in flight and finishes the operation. Patch-style
 * actions (cordon, restart, scale, suspend, resume) share one flow driven by a row's plan and
 * check functions; drain and finished-pod cleanup have their own.
 */
#include "exec/kube_exec.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"

#define MOD "kube_exec"
#define MSG_MAX 1024
#define PATH_LEN 1400
#define BODY_LEN 1024
#define NOTE_LEN 320
#define PREV_LEN 320
#define ESC(n) ((n)*3)

static int errf(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t len, int code, const char *fmt, ...) {
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Copies a peer-controlled string for messages: control characters become '?' (the log
 * escapes quotes itself). */
static void copy_clean(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    if (!cap) {
        return;
    }
    for (; src && src[i] && i < cap - 1; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

/* ---- targets ---------------------------------------------------------------------------- */

static int is_alnum_lower(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters; s[0..n). */
static int label_ok(const char *s, size_t n) {
    if (n == 0 || n > 63 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1])) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum_lower(s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* DNS-1123 subdomain: labels joined by '.', at most 253 characters; s[0..n). */
static int subdomain_ok(const char *s, size_t n) {
    if (n == 0 || n > 253) {
        return 0;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (!label_ok(s + start, i - start)) {
                return 0;
            }
            start = i + 1;
        }
    }
    return 1;
}

int rsre_kube_exec_check_node(const char *target) {
    return target && subdomain_ok(target, strlen(target)) ? 0 : RSRE_EINVALID;
}

int rsre_kube_exec_check_object(const char *target, char *ns, char *name) {
    if (!target) {
        return RSRE_EINVALID;
    }
    const char *slash = strchr(target, '/');
    if (!slash || !label_ok(target, (size_t)(slash - target)) ||
        !subdomain_ok(slash + 1, strlen(slash + 1))) {
        return RSRE_EINVALID;
    }
    if (ns) {
        memcpy(ns, target, (size_t)(slash - target));
        ns[slash - target] = '\0';
    }
    if (name) {
        memcpy(name, slash + 1, strlen(slash + 1) + 1);
    }
    return 0;
}

int rsre_kube_exec_check_namespace(const char *target) {
    if (target && strcmp(target, "*") == 0) {
        return 0;
    }
    return target && label_ok(target, strlen(target)) ? 0 : RSRE_EINVALID;
}

/* ---- configuration ---------------------------------------------------------------------- */

#define U(f) offsetof(struct rsre_kube_exec_config, f)

const struct rsre_kube_exec_config_key rsre_kube_exec_config_keys[] = {
    {"timeout_ms", U(timeout_ms), 100, 86400000, "300000",
     "deadline of an action whose request names none"},
    {"call_timeout_ms", U(call_timeout_ms), 100, 600000, "30000",
     "one API call (never past the action's deadline)"},
    {"evict_backoff_min_ms", U(evict_backoff_min_ms), 1, 600000, "1000",
     "first wait before retrying evictions a PodDisruptionBudget refused (doubles each round)"},
    {"evict_backoff_max_ms", U(evict_backoff_max_ms), 1, 3600000, "30000",
     "longest wait between eviction rounds"},
    {"verify_reserve_ms", U(verify_reserve_ms), 0, 600000, "5000",
     "drain stops retrying evictions this long before the deadline, to verify (at most a "
     "quarter of the deadline)"},
    {"max_pods", U(max_pods), 1, 100000, "5000", "pods one drain or cleanup handles"},
    {"max_list_bytes", U(max_list_bytes), 65536, 256u << 20, "67108864",
     "largest pod list response accepted"},
    {"drain_delete_emptydir", U(drain_delete_emptydir), 0, 1, "0",
     "1 = drains also evict pods with emptyDir volumes (their data is lost)"},
    {"drain_unmanaged", U(drain_unmanaged), 0, 1, "0",
     "1 = drains also evict pods no controller owns (nothing recreates them)"},
};
const size_t rsre_kube_exec_config_nkeys =
    sizeof(rsre_kube_exec_config_keys) / sizeof(rsre_kube_exec_config_keys[0]);

#undef U

static int set_key(struct rsre_kube_exec_config *cfg, const struct rsre_kube_exec_config_key *k,
                   const char *value, char *err, size_t err_len) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = value ? strtoull(value, &end, 10) : 0;
    if (!value || !*value || *end || errno || value[0] == '-' || v < k->min || v > k->max) {
        return errf(err, err_len, RSRE_EINVALID, "%s: \"%.40s\" is not a number in %u..%u", k->name,
                    value ? value : "", k->min, k->max);
    }
    uint32_t u = (uint32_t)v;
    memcpy((char *)cfg + k->offset, &u, sizeof(u));
    return 0;
}

void rsre_kube_exec_config_defaults(struct rsre_kube_exec_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < rsre_kube_exec_config_nkeys; i++) {
        set_key(cfg, &rsre_kube_exec_config_keys[i], rsre_kube_exec_config_keys[i].def, NULL, 0);
    }
}

int rsre_kube_exec_config_set(struct rsre_kube_exec_config *cfg, const char *key, const char *value,
                              char *err, size_t err_len) {
    for (size_t i = 0; i < rsre_kube_exec_config_nkeys; i++) {
        if (key && strcmp(key, rsre_kube_exec_config_keys[i].name) == 0) {
            return set_key(cfg, &rsre_kube_exec_config_keys[i], value, err, err_len);
        }
    }
    return errf(err, err_len, RSRE_ENOTFOUND, "unknown Kubernetes executor setting \"%.40s\"",
                key ? key : "");
}

static int config_check(const struct rsre_kube_exec_config *cfg, char *err, size_t err_len) {
    for (size_t i = 0; i < rsre_kube_exec_config_nkeys; i++) {
        const struct rsre_kube_exec_config_key *k = &rsre_kube_exec_config_keys[i];
        uint32_t v;
        memcpy(&v, (const char *)cfg + k->offset, sizeof(v));
        if (v < k->min || v > k->max) {
            return errf(err, err_len, RSRE_EINVALID, "%s: %u is not in %u..%u", k->name, v, k->min,
                        k->max);
        }
    }
    if (cfg->evict_backoff_min_ms > cfg->evict_backoff_max_ms) {
        return errf(err, err_len, RSRE_EINVALID,
                    "evict_backoff_min_ms is larger than evict_backoff_max_ms");
    }
    return 0;
}

/* ---- object kinds ----------------------------------------------------------------------- */

enum { CAP_RESTART = 1, CAP_SCALE = 2, CAP_SUSPEND = 4 };

struct kind_row {
    const char *name; /* as requests spell it */
    const char *kind; /* as Kubernetes spells it */
    const char *api;  /* group/version path */
    const char *resource;
    unsigned caps;
};

static const struct kind_row kind_rows[] = {
    {"deployment", "Deployment", "/apis/apps/v1", "deployments", CAP_RESTART | CAP_SCALE},
    {"statefulset", "StatefulSet", "/apis/apps/v1", "statefulsets", CAP_RESTART | CAP_SCALE},
    {"daemonset", "DaemonSet", "/apis/apps/v1", "daemonsets", CAP_RESTART},
    {"cronjob", "CronJob", "/apis/batch/v1", "cronjobs", CAP_SUSPEND},
};

static const struct kind_row *kind_find(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof(kind_rows) / sizeof(kind_rows[0]); i++) {
        if (strlen(kind_rows[i].name) == n && strncasecmp(kind_rows[i].name, s, n) == 0) {
            return &kind_rows[i];
        }
    }
    return NULL;
}

/* ---- executor and operation state ------------------------------------------------------- */

struct strvec {
    char **v;
    size_t n, cap;
};

enum pod_state { POD_PENDING = 0, POD_EVICTED, POD_BLOCKED, POD_FAILED, POD_GONE };

struct pod {
    char ns[RSRE_KUBE_NS_LEN];
    char name[RSRE_KUBE_NAME_LEN];
    char uid[RSRE_KUBE_UID_LEN];
    enum pod_state state;
    char note[NOTE_LEN]; /* why blocked */
};

struct rsre_kube_exec {
    struct rsre_kube *kube;
    uv_loop_t *loop;
    struct rsre_kube_exec_config cfg;
    struct rsre_kube_exec_op *ops;
    size_t nops;
    int closing;
};

struct row;
struct patch_ops;

struct rsre_kube_exec_op {
    struct rsre_kube_exec *x;
    struct rsre_kube_exec_op *prev, *next;
    const struct row *row;
    const struct kind_row *kr; /* NULL for nodes and pods */
    const struct patch_ops *pops;
    char target[RSRE_KUBE_EXEC_TARGET_MAX];
    char ns[RSRE_KUBE_NS_LEN];     /* object namespace; cleanup: "" = all */
    char name[RSRE_KUBE_NAME_LEN]; /* object or node name */
    char uid[RSRE_KUBE_UID_LEN];   /* of the object as first read */
    char path[PATH_LEN];           /* the object's (or its scale subresource's) path */
    char body[BODY_LEN];           /* the patch */
    char new_value[PREV_LEN];      /* what the patch sets, for messages */
    enum rsre_kube_exec_dry_run dry;
    unsigned flags;
    int32_t replicas;
    int replicas_set;
    int want;       /* cordon / suspend: the wanted boolean */
    int scale_mode; /* SCALE_* */
    uint64_t started, deadline;
    uv_timer_t deadline_timer, wait_timer;
    int open_handles;
    struct rsre_kube_call *call;
    void (*on_res)(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
    int finishing;
    /* outcome */
    const char *step;
    int verified;
    struct strvec ids, blocked, skipped, failed;
    char prev_field[96];
    char prev_value[PREV_LEN];
    int64_t prev_replicas;
    int64_t prev_generation;
    char restarted_at[40];
    long http_status;
    char reason[RSRE_KUBE_REASON_LEN];
    int first_fail_rc;
    unsigned rounds;
    /* drain and cleanup */
    struct pod *pods;
    size_t npods, cap, cur;
    int phase_idx;
    int cordon_sent;
    uint32_t backoff_ms;
    size_t over_limit;
    rsre_kube_exec_cb cb;
    void *arg;
};

static int strvec_push(struct strvec *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int strvec_push(struct strvec *s, const char *fmt, ...) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        char **nv = realloc(s->v, ncap * sizeof(*nv));
        if (!nv) {
            return -ENOMEM;
        }
        s->v = nv;
        s->cap = ncap;
    }
    char buf[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char *d = strdup(buf);
    if (!d) {
        return -ENOMEM;
    }
    s->v[s->n++] = d;
    return 0;
}

static void strvec_free(struct strvec *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static void op_free(struct rsre_kube_exec_op *op) {
    strvec_free(&op->ids);
    strvec_free(&op->blocked);
    strvec_free(&op->skipped);
    strvec_free(&op->failed);
    free(op->pods);
    free(op);
}

static void handle_closed(uv_handle_t *h) {
    struct rsre_kube_exec_op *op = h->data;
    if (--op->open_handles == 0) {
        op_free(op);
    }
}

static void op_unlink(struct rsre_kube_exec_op *op) {
    struct rsre_kube_exec *x = op->x;
    if (op->prev) {
        op->prev->next = op->next;
    } else if (x->ops == op) {
        x->ops = op->next;
    }
    if (op->next) {
        op->next->prev = op->prev;
    }
    op->prev = op->next = NULL;
    x->nops--;
}

static void op_release(struct rsre_kube_exec_op *op) {
    if (op->call) {
        rsre_kube_call_abandon(op->call);
        op->call = NULL;
    }
    uv_timer_stop(&op->deadline_timer);
    uv_timer_stop(&op->wait_timer);
    uv_close((uv_handle_t *)&op->deadline_timer, handle_closed);
    uv_close((uv_handle_t *)&op->wait_timer, handle_closed);
}

static const char *dry_name(enum rsre_kube_exec_dry_run d) {
    return d == RSRE_KUBE_EXEC_DRY_SERVER   ? "server"
           : d == RSRE_KUBE_EXEC_DRY_CLIENT ? "client"
                                            : "no";
}

static void op_finish(struct rsre_kube_exec_op *op, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports the outcome to the caller and releases the operation. */
static void op_finish(struct rsre_kube_exec_op *op, int rc, const char *fmt, ...);

/* ---- the action table ------------------------------------------------------------------- */

enum { PLAN_WRITE = 1, PLAN_NOOP = 2 };
enum { SCALE_ZERO = 1, SCALE_ANY, SCALE_DOWN, SCALE_UP };
enum { REPL_NONE = 0, REPL_REQUIRED, REPL_OPTIONAL, REPL_BY_KIND };

/* A read -> patch -> read-back action on one object. plan() inspects the object as read,
 * records the previous value and either fills op->body (PLAN_WRITE), finds nothing to do
 * (PLAN_NOOP) or refuses (a negative code, op->new_value holding the reason). check() says
 * whether an object (read back, or a dry-run answer) shows the wanted state. */
struct patch_ops {
    const char *field;     /* the field written, for messages */
    int scale_subresource; /* the path ends in /scale */
    enum rsre_kube_patch_type type;
    int (*plan)(struct rsre_kube_exec_op *op, const json_t *obj);
    int (*check)(struct rsre_kube_exec_op *op, const json_t *obj);
};

struct row {
    struct rsre_kube_exec_action pub;
    int (*start)(struct rsre_kube_exec_op *op);
    const struct patch_ops *ops; /* patch-style rows */
    unsigned caps;               /* OBJECT targets: an object kind must have one of these */
    int want;                    /* cordon / suspend value */
    int scale_mode;
    int replicas_rule; /* REPL_* */
};

static int patch_start(struct rsre_kube_exec_op *op);
static int resume_start(struct rsre_kube_exec_op *op);
static int drain_start(struct rsre_kube_exec_op *op);
static int cleanup_start(struct rsre_kube_exec_op *op);

static int cordon_plan(struct rsre_kube_exec_op *op, const json_t *obj);
static int cordon_check(struct rsre_kube_exec_op *op, const json_t *obj);
static int restart_plan(struct rsre_kube_exec_op *op, const json_t *obj);
static int restart_check(struct rsre_kube_exec_op *op, const json_t *obj);
static int scale_plan(struct rsre_kube_exec_op *op, const json_t *obj);
static int scale_check(struct rsre_kube_exec_op *op, const json_t *obj);
static int suspend_plan(struct rsre_kube_exec_op *op, const json_t *obj);
static int suspend_check(struct rsre_kube_exec_op *op, const json_t *obj);

static const struct patch_ops cordon_ops = {"spec.unschedulable", 0, RSRE_KUBE_PATCH_STRATEGIC,
                                            cordon_plan, cordon_check};
static const struct patch_ops restart_ops = {
    "spec.template.metadata.annotations." RSRE_KUBE_EXEC_RESTARTED_AT, 0, RSRE_KUBE_PATCH_STRATEGIC,
    restart_plan, restart_check};
static const struct patch_ops scale_ops = {"spec.replicas", 1, RSRE_KUBE_PATCH_MERGE, scale_plan,
                                           scale_check};
static const struct patch_ops suspend_ops = {"spec.suspend", 0, RSRE_KUBE_PATCH_MERGE, suspend_plan,
                                             suspend_check};

#define NODE RSRE_KUBE_EXEC_TARGET_NODE
#define OBJ RSRE_KUBE_EXEC_TARGET_OBJECT
#define NS RSRE_KUBE_EXEC_TARGET_NAMESPACE
#define WORKLOADS "deployment,statefulset,daemonset"
#define SCALABLE "deployment,statefulset"

/* clang-format off */
static const struct row rows[] = {
    /* {id, target, kinds (default first), summary}, start, patch ops, kind caps, want,
     * scale mode, replicas rule */
    {{"cordon_node", NODE, "", "PATCH node spec.unschedulable=true"},
     patch_start, &cordon_ops, 0, 1, 0, REPL_NONE},
    {{"uncordon_node", NODE, "", "PATCH node spec.unschedulable=false"},
     patch_start, &cordon_ops, 0, 0, 0, REPL_NONE},
    {{"drain_node", NODE, "", "cordon, then evict the node's pods (policy/v1 Eviction)"},
     drain_start, NULL, 0, 1, 0, REPL_NONE},
    {{"rollout_restart", OBJ, WORKLOADS, "PATCH pod template restartedAt annotation"},
     patch_start, &restart_ops, CAP_RESTART, 0, 0, REPL_NONE},
    {{"restart_backend", OBJ, WORKLOADS, "PATCH pod template restartedAt annotation"},
     patch_start, &restart_ops, CAP_RESTART, 0, 0, REPL_NONE},
    {{"restart_shared_dependency", OBJ, WORKLOADS, "PATCH pod template restartedAt annotation"},
     patch_start, &restart_ops, CAP_RESTART, 0, 0, REPL_NONE},
    {{"scale_workload_to_zero", OBJ, SCALABLE, "PATCH scale spec.replicas=0"},
     patch_start, &scale_ops, CAP_SCALE, 0, SCALE_ZERO, REPL_NONE},
    {{"scale_dependency", OBJ, SCALABLE, "PATCH scale spec.replicas=N"},
     patch_start, &scale_ops, CAP_SCALE, 0, SCALE_ANY, REPL_REQUIRED},
    {{"scale_shared_controllers_down", OBJ, SCALABLE, "PATCH scale spec.replicas=N (N <= now)"},
     patch_start, &scale_ops, CAP_SCALE, 0, SCALE_DOWN, REPL_OPTIONAL},
    {{"suspend_cronjob", OBJ, "cronjob", "PATCH CronJob spec.suspend=true"},
     patch_start, &suspend_ops, CAP_SUSPEND, 1, 0, REPL_NONE},
    {{"resume_workload", OBJ, "cronjob,deployment,statefulset",
      "PATCH CronJob spec.suspend=false, or scale spec.replicas back up to N"},
     resume_start, NULL, CAP_SUSPEND | CAP_SCALE, 0, SCALE_UP, REPL_BY_KIND},
    {{"delete_finished_pods", NS, "", "DELETE Succeeded/Failed pods (uid precondition)"},
     cleanup_start, NULL, 0, 0, 0, REPL_NONE},
};
/* clang-format on */

#undef NODE
#undef OBJ
#undef NS

#define NROWS (sizeof(rows) / sizeof(rows[0]))

const struct rsre_kube_exec_action *rsre_kube_exec_action_at(size_t i) {
    return i < NROWS ? &rows[i].pub : NULL;
}

static const struct row *row_find(const char *id) {
    for (size_t i = 0; id && i < NROWS; i++) {
        if (strcmp(rows[i].pub.id, id) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

const struct rsre_kube_exec_action *rsre_kube_exec_find(const char *id) {
    const struct row *r = row_find(id);
    return r ? &r->pub : NULL;
}

/* ---- calls ------------------------------------------------------------------------------ */

static void call_cb(void *arg, const struct rsre_kube_result *res) {
    struct rsre_kube_exec_op *op = arg;
    op->call = NULL;
    if (res->rc == -ECANCELED) {
        op_finish(op, -ECANCELED, "cancelled: the Kubernetes client is closing");
        return;
    }
    op->on_res(op, res);
}

/*
 * Starts one API call whose answer goes to `next`. Its timeout is the configured call timeout
 * or the time left before the deadline, whichever is shorter. Returns 0 or the code of
 * rsre_kube_call (then nothing calls back).
 */
static int op_call(struct rsre_kube_exec_op *op, const char *method, const char *path,
                   const char *body, const char *ctype,
                   void (*next)(struct rsre_kube_exec_op *, const struct rsre_kube_result *)) {
    struct rsre_kube_exec *x = op->x;
    uint64_t now = uv_now(x->loop);
    uint64_t left = op->deadline > now ? op->deadline - now : 1;
    uint32_t t = x->cfg.call_timeout_ms;
    if (left < t) {
        t = (uint32_t)left;
    }
    struct rsre_kube_request r = {
        .method = method,
        .path = path,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .content_type = ctype,
        .max_body = x->cfg.max_list_bytes,
        .timeout_ms = t ? t : 1,
    };
    op->on_res = next;
    return rsre_kube_call(x->kube, &r, call_cb, op, &op->call);
}

/* Notes the failed call's status for the result. */
static void note_failure(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    op->http_status = res->http_status;
    copy_clean(op->reason, sizeof(op->reason), res->status ? res->status->reason : "");
}

/* Finishes with a failed call's code and the server's words. */
static void fail_call(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res,
                      const char *what) {
    char why[600];
    note_failure(op, res);
    copy_clean(why, sizeof(why), res->error);
    op_finish(op, res->rc, "%s: %s%s%s", what, why, op->reason[0] ? " reason=" : "", op->reason);
}

/* A call that could not even start, inside a step: finish with its code. */
static void fail_start(struct rsre_kube_exec_op *op, int rc, const char *what) {
    op_finish(op, rc, "%s: %s", what, rsre_strerror(rc));
}

static const char *dry_query(const struct rsre_kube_exec_op *op) {
    return op->dry == RSRE_KUBE_EXEC_DRY_SERVER ? "?dryRun=All" : "";
}

static const char *patch_ctype(enum rsre_kube_patch_type t) {
    return t == RSRE_KUBE_PATCH_STRATEGIC ? "application/strategic-merge-patch+json"
           : t == RSRE_KUBE_PATCH_JSON    ? "application/json-patch+json"
                                          : "application/merge-patch+json";
}

/* ---- JSON helpers ----------------------------------------------------------------------- */

/* obj[k1][k2]... (NULL-terminated keys); NULL when a level is missing or not an object. */
static json_t *jget(const json_t *obj, ...) {
    va_list ap;
    va_start(ap, obj);
    const json_t *cur = obj;
    const char *k;
    while (cur && (k = va_arg(ap, const char *)) != NULL) {
        cur = json_is_object(cur) ? json_object_get(cur, k) : NULL;
    }
    va_end(ap);
    return (json_t *)cur;
}

/* The object as read names what we asked for (a confused proxy or server must not make us
 * write elsewhere). Scale objects carry their parent's name and namespace. */
static int same_object(const struct rsre_kube_exec_op *op, const json_t *obj) {
    const char *name = json_string_value(jget(obj, "metadata", "name", NULL));
    const char *ns = json_string_value(jget(obj, "metadata", "namespace", NULL));
    if (!name || strcmp(name, op->name) != 0) {
        return 0;
    }
    if (op->kr && (!ns || strcmp(ns, op->ns) != 0)) {
        return 0;
    }
    return 1;
}

/* Records the field a write replaces and its value as JSON text ("null" when absent). JSON
 * text holds no raw control characters. */
static void set_prev(struct rsre_kube_exec_op *op, const char *field, const json_t *v) {
    snprintf(op->prev_field, sizeof(op->prev_field), "%s", field);
    char *t = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    snprintf(op->prev_value, sizeof(op->prev_value), "%s", t ? t : "null");
    free(t);
}

static int plan_refuse(struct rsre_kube_exec_op *op, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int plan_refuse(struct rsre_kube_exec_op *op, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->new_value, sizeof(op->new_value), fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- plans and checks ------------------------------------------------------------------- */

static int bool_field(const json_t *v, int *out) {
    if (v && !json_is_boolean(v) && !json_is_null(v)) {
        return RSRE_EINVALID;
    }
    *out = json_is_true(v);
    return 0;
}

static int cordon_plan(struct rsre_kube_exec_op *op, const json_t *obj) {
    const json_t *u = jget(obj, "spec", "unschedulable", NULL);
    int cur;
    if (bool_field(u, &cur) != 0) {
        return plan_refuse(op, RSRE_EINVALID, "spec.unschedulable is not a boolean");
    }
    json_t *b = json_boolean(cur);
    set_prev(op, "spec.unschedulable", b);
    json_decref(b);
    snprintf(op->new_value, sizeof(op->new_value), "%s", op->want ? "true" : "false");
    if (cur == op->want) {
        return PLAN_NOOP;
    }
    snprintf(op->body, sizeof(op->body), "{\"spec\":{\"unschedulable\":%s}}",
             op->want ? "true" : "false");
    return PLAN_WRITE;
}

static int cordon_check(struct rsre_kube_exec_op *op, const json_t *obj) {
    int cur;
    return bool_field(jget(obj, "spec", "unschedulable", NULL), &cur) == 0 && cur == op->want;
}

static int suspend_plan(struct rsre_kube_exec_op *op, const json_t *obj) {
    const json_t *s = jget(obj, "spec", "suspend", NULL);
    int cur;
    if (bool_field(s, &cur) != 0) {
        return plan_refuse(op, RSRE_EINVALID, "spec.suspend is not a boolean");
    }
    if (!json_is_object(jget(obj, "spec", NULL))) {
        return plan_refuse(op, RSRE_EINVALID, "the CronJob has no spec");
    }
    json_t *b = json_boolean(cur);
    set_prev(op, "spec.suspend", b);
    json_decref(b);
    snprintf(op->new_value, sizeof(op->new_value), "%s", op->want ? "true" : "false");
    if (cur == op->want) {
        return PLAN_NOOP;
    }
    snprintf(op->body, sizeof(op->body), "{\"spec\":{\"suspend\":%s}}",
             op->want ? "true" : "false");
    return PLAN_WRITE;
}

static int suspend_check(struct rsre_kube_exec_op *op, const json_t *obj) {
    int cur;
    return bool_field(jget(obj, "spec", "suspend", NULL), &cur) == 0 && cur == op->want;
}

/* spec.replicas of a Scale (autoscaling/v1); omitted means 0. -1 when malformed. */
static int64_t scale_replicas(const json_t *obj) {
    const json_t *spec = jget(obj, "spec", NULL);
    if (spec && !json_is_object(spec)) {
        return -1;
    }
    const json_t *r = jget(obj, "spec", "replicas", NULL);
    if (!r || json_is_null(r)) {
        return 0;
    }
    if (!json_is_integer(r) || json_integer_value(r) < 0) {
        return -1;
    }
    return json_integer_value(r);
}

static int scale_plan(struct rsre_kube_exec_op *op, const json_t *obj) {
    const char *kind = json_string_value(jget(obj, "kind", NULL));
    if (kind && strcmp(kind, "Scale") != 0) {
        return plan_refuse(op, RSRE_EINVALID, "the scale subresource answered a %.40s", kind);
    }
    int64_t cur = scale_replicas(obj);
    if (cur < 0) {
        return plan_refuse(op, RSRE_EINVALID, "spec.replicas of the Scale is not a count");
    }
    op->prev_replicas = cur;
    json_t *v = json_integer(cur);
    set_prev(op, "spec.replicas", v);
    json_decref(v);
    int64_t n = op->scale_mode == SCALE_ZERO ? 0 : op->replicas_set ? op->replicas : 0;
    snprintf(op->new_value, sizeof(op->new_value), "%lld", (long long)n);
    if (op->scale_mode == SCALE_DOWN && n > cur) {
        return plan_refuse(op, RSRE_EBOUNDARY,
                           "%lld replicas now: %s only scales down (asked for %lld)",
                           (long long)cur, op->row->pub.id, (long long)n);
    }
    if (op->scale_mode == SCALE_UP && n < cur) {
        return plan_refuse(op, RSRE_EBOUNDARY,
                           "%lld replicas now: %s only scales back up (asked for %lld)",
                           (long long)cur, op->row->pub.id, (long long)n);
    }
    if (n == cur) {
        return PLAN_NOOP;
    }
    snprintf(op->body, sizeof(op->body), "{\"spec\":{\"replicas\":%lld}}", (long long)n);
    return PLAN_WRITE;
}

static int scale_check(struct rsre_kube_exec_op *op, const json_t *obj) {
    int64_t n = op->scale_mode == SCALE_ZERO ? 0 : op->replicas_set ? op->replicas : 0;
    return scale_replicas(obj) == n;
}

static int restart_plan(struct rsre_kube_exec_op *op, const json_t *obj) {
    if (!json_is_object(jget(obj, "spec", "template", NULL))) {
        return plan_refuse(op, RSRE_EINVALID, "the %s has no pod template", op->kr->kind);
    }
    if (json_is_true(jget(obj, "spec", "paused", NULL))) {
        return plan_refuse(op, RSRE_EINVALID,
                           "the %s is paused: resume its rollout before restarting it",
                           op->kr->kind);
    }
    const json_t *ann = jget(obj, "spec", "template", "metadata", "annotations", NULL);
    const json_t *prev = ann ? json_object_get(ann, RSRE_KUBE_EXEC_RESTARTED_AT) : NULL;
    set_prev(op, restart_ops.field, prev);
    const json_t *gen = jget(obj, "metadata", "generation", NULL);
    op->prev_generation = json_is_integer(gen) ? json_integer_value(gen) : 0;
    /* As `kubectl rollout restart`: RFC 3339 seconds. A value equal to the one there (two
     * restarts within a second) would change nothing, so it moves on a second. */
    time_t now = time(NULL);
    for (int i = 0; i < 3; i++) {
        struct tm tm;
        time_t t = now + i;
        gmtime_r(&t, &tm);
        strftime(op->restarted_at, sizeof(op->restarted_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!json_is_string(prev) || strcmp(json_string_value(prev), op->restarted_at) != 0) {
            break;
        }
    }
    snprintf(op->new_value, sizeof(op->new_value), "\"%s\"", op->restarted_at);
    snprintf(op->body, sizeof(op->body),
             "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"%s\":\"%s\"}}}}}",
             RSRE_KUBE_EXEC_RESTARTED_AT, op->restarted_at);
    return PLAN_WRITE;
}

static int restart_check(struct rsre_kube_exec_op *op, const json_t *obj) {
    const json_t *ann = jget(obj, "spec", "template", "metadata", "annotations", NULL);
    const char *v =
        json_string_value(ann ? json_object_get(ann, RSRE_KUBE_EXEC_RESTARTED_AT) : NULL);
    if (!v || strcmp(v, op->restarted_at) != 0) {
        return 0;
    }
    /* A template change bumps metadata.generation; a server that reports one must show it. */
    const json_t *gen = jget(obj, "metadata", "generation", NULL);
    return op->prev_generation <= 0 || !json_is_integer(gen) ||
           json_integer_value(gen) > op->prev_generation;
}

/* ---- the patch flow --------------------------------------------------------------------- */

static void patch_on_read(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void patch_on_write(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void patch_on_verify(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);

static const char *op_kind(const struct rsre_kube_exec_op *op) {
    return op->kr                                              ? op->kr->name
           : op->row->pub.target == RSRE_KUBE_EXEC_TARGET_NODE ? "node"
                                                               : "pods";
}

static int object_path(struct rsre_kube_exec_op *op) {
    char ens[ESC(RSRE_KUBE_NS_LEN)], ename[ESC(RSRE_KUBE_NAME_LEN)];
    if (rsre_kube_escape(op->name, ename, sizeof(ename)) != 0) {
        return RSRE_ELIMIT;
    }
    if (!op->kr) {
        snprintf(op->path, sizeof(op->path), "/api/v1/nodes/%s", ename);
        return 0;
    }
    if (rsre_kube_escape(op->ns, ens, sizeof(ens)) != 0) {
        return RSRE_ELIMIT;
    }
    snprintf(op->path, sizeof(op->path), "%s/namespaces/%s/%s/%s%s", op->kr->api, ens,
             op->kr->resource, ename, op->pops->scale_subresource ? "/scale" : "");
    return 0;
}

static int patch_start(struct rsre_kube_exec_op *op) {
    if (!op->pops) {
        op->pops = op->row->ops;
    }
    int rc = object_path(op);
    if (rc != 0) {
        return rc;
    }
    op->step = "read";
    return op_call(op, "GET", op->path, NULL, NULL, patch_on_read);
}

static int resume_start(struct rsre_kube_exec_op *op) {
    if (op->kr->caps & CAP_SUSPEND) {
        op->pops = &suspend_ops;
        op->want = 0;
    } else {
        op->pops = &scale_ops;
    }
    return patch_start(op);
}

static void patch_on_read(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    char what[400];
    snprintf(what, sizeof(what), "cannot read %s %s", op_kind(op), op->target);
    if (res->rc != 0 || !json_is_object(res->body)) {
        if (res->rc == 0) {
            op_finish(op, RSRE_EPARSE, "%s: the answer is not an object", what);
            return;
        }
        fail_call(op, res, what);
        return;
    }
    if (!same_object(op, res->body)) {
        op_finish(op, RSRE_EINVALID, "%s: the API answered with another object", what);
        return;
    }
    copy_clean(op->uid, sizeof(op->uid),
               json_string_value(jget(res->body, "metadata", "uid", NULL)));
    int p = op->pops->plan(op, res->body);
    if (p < 0) {
        op_finish(op, p, "%s %s: %s", op_kind(op), op->target, op->new_value);
        return;
    }
    if (p == PLAN_NOOP) {
        op->step = "verify";
        op->verified = op->pops->check(op, res->body);
        op_finish(op, op->verified ? 0 : -ESTALE, "%s %s: %s already %s, nothing to write",
                  op_kind(op), op->target, op->pops->field, op->new_value);
        return;
    }
    if (op->dry == RSRE_KUBE_EXEC_DRY_CLIENT) {
        if (strvec_push(&op->ids, "%s", op->target) != 0) {
            op_finish(op, -ENOMEM, "out of memory");
            return;
        }
        op_finish(op, 0, "dry run: would PATCH %s %s: %s %s -> %s", op_kind(op), op->target,
                  op->pops->field, op->prev_value, op->new_value);
        return;
    }
    op->step = "write";
    char path[PATH_LEN + 16];
    snprintf(path, sizeof(path), "%s%s", op->path, dry_query(op));
    int rc = op_call(op, "PATCH", path, op->body, patch_ctype(op->pops->type), patch_on_write);
    if (rc != 0) {
        fail_start(op, rc, "cannot send the PATCH");
    }
}

static void patch_on_write(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    char what[400];
    snprintf(what, sizeof(what), "PATCH %s %s refused", op_kind(op), op->target);
    if (res->rc != 0) {
        fail_call(op, res, what);
        return;
    }
    if (strvec_push(&op->ids, "%s", op->target) != 0) {
        op_finish(op, -ENOMEM, "out of memory");
        return;
    }
    if (op->dry == RSRE_KUBE_EXEC_DRY_SERVER) {
        /* The dry-run answer is the object as it would be stored. */
        op->step = "verify";
        op->verified = json_is_object(res->body) && same_object(op, res->body) &&
                       op->pops->check(op, res->body);
        op_finish(op, op->verified ? 0 : -ESTALE, "dry run (server): %s %s: %s %s -> %s%s",
                  op_kind(op), op->target, op->pops->field, op->prev_value, op->new_value,
                  op->verified ? "" : ", but the server's answer does not show it");
        return;
    }
    op->step = "verify";
    int rc = op_call(op, "GET", op->path, NULL, NULL, patch_on_verify);
    if (rc != 0) {
        fail_start(op, rc, "written but cannot verify");
    }
}

static void patch_on_verify(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    char what[400];
    snprintf(what, sizeof(what), "written but cannot read %s %s back", op_kind(op), op->target);
    if (res->rc != 0 || !json_is_object(res->body)) {
        if (res->rc == 0) {
            op_finish(op, RSRE_EPARSE, "%s: the answer is not an object", what);
            return;
        }
        fail_call(op, res, what);
        return;
    }
    const char *uid = json_string_value(jget(res->body, "metadata", "uid", NULL));
    if (!same_object(op, res->body) || (op->uid[0] && (!uid || strcmp(uid, op->uid) != 0))) {
        op_finish(op, -ESTALE, "%s %s was replaced by another object after the write", op_kind(op),
                  op->target);
        return;
    }
    op->verified = op->pops->check(op, res->body);
    if (!op->verified) {
        op_finish(op, -ESTALE, "%s %s: %s is not %s after the write (changed by someone else?)",
                  op_kind(op), op->target, op->pops->field, op->new_value);
        return;
    }
    op_finish(op, 0, "%s %s: %s %s -> %s (verified)", op_kind(op), op->target, op->pops->field,
              op->prev_value, op->new_value);
}

/* ---- pods: classification shared by drain and cleanup ---------------------------------- */

static int has_controller(const json_t *pod) {
    const json_t *owners = jget(pod, "metadata", "ownerReferences", NULL);
    size_t i;
    const json_t *o;
    json_array_foreach(owners, i, o) {
        if (json_is_true(json_object_get(o, "controller"))) {
            return 1;
        }
    }
    return 0;
}

static int has_emptydir(const json_t *pod) {
    const json_t *vols = jget(pod, "spec", "volumes", NULL);
    size_t i;
    const json_t *v;
    json_array_foreach(vols, i, v) {
        if (json_object_get(v, "emptyDir")) {
            return 1;
        }
    }
    return 0;
}

static int pod_add(struct rsre_kube_exec_op *op, const struct rsre_kube_pod *p) {
    if (op->npods >= op->x->cfg.max_pods) {
        op->over_limit++;
        return 0;
    }
    if (op->npods == op->cap) {
        size_t ncap = op->cap ? op->cap * 2 : 16;
        struct pod *np = realloc(op->pods, ncap * sizeof(*np));
        if (!np) {
            return -ENOMEM;
        }
        op->pods = np;
        op->cap = ncap;
    }
    struct pod *d = &op->pods[op->npods++];
    memset(d, 0, sizeof(*d));
    memcpy(d->ns, p->meta.ns, sizeof(d->ns));
    memcpy(d->name, p->meta.name, sizeof(d->name));
    memcpy(d->uid, p->meta.uid, sizeof(d->uid));
    return 0;
}

static int pod_path(const char *ns, const char *name, const char *suffix, char *out, size_t cap) {
    char ens[ESC(RSRE_KUBE_NS_LEN)], ename[ESC(RSRE_KUBE_NAME_LEN)];
    if (rsre_kube_escape(ns, ens, sizeof(ens)) != 0 ||
        rsre_kube_escape(name, ename, sizeof(ename)) != 0) {
        return RSRE_ELIMIT;
    }
    snprintf(out, cap, "/api/v1/namespaces/%s/pods/%s%s", ens, ename, suffix);
    return 0;
}

/* 1 when `items` (a pod list) still holds pd as the same object (same uid) and not
 * terminating (no deletionTimestamp). */
static int pod_still_running(const json_t *items, const struct pod *pd) {
    size_t i;
    const json_t *o;
    json_array_foreach(items, i, o) {
        const char *ns = json_string_value(jget(o, "metadata", "namespace", NULL));
        const char *name = json_string_value(jget(o, "metadata", "name", NULL));
        const char *uid = json_string_value(jget(o, "metadata", "uid", NULL));
        if (ns && name && uid && strcmp(ns, pd->ns) == 0 && strcmp(name, pd->name) == 0 &&
            strcmp(uid, pd->uid) == 0 && !jget(o, "metadata", "deletionTimestamp", NULL)) {
            return 1;
        }
    }
    return 0;
}

static int is_system_ns(const char *ns) {
    return strcmp(ns, RSRE_KUBE_EXEC_SYSTEM_NS) == 0;
}

/* ---- drain ------------------------------------------------------------------------------ */

static void drain_on_node(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void drain_on_cordon(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void drain_list(struct rsre_kube_exec_op *op);
static void drain_on_list(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void drain_round(struct rsre_kube_exec_op *op);
static void drain_evict_next(struct rsre_kube_exec_op *op);
static void drain_on_evict(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void drain_verify(struct rsre_kube_exec_op *op);
static void drain_on_verify_node(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void drain_on_verify_pods(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void drain_finish(struct rsre_kube_exec_op *op, int verify_rc, const char *verify_msg);

static int drain_start(struct rsre_kube_exec_op *op) {
    int rc = object_path(op);
    if (rc != 0) {
        return rc;
    }
    op->step = "read";
    return op_call(op, "GET", op->path, NULL, NULL, drain_on_node);
}

static void drain_on_node(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    if (res->rc != 0 || !json_is_object(res->body)) {
        if (res->rc == 0) {
            op_finish(op, RSRE_EPARSE, "cannot read node %s: the answer is not an object",
                      op->name);
            return;
        }
        fail_call(op, res, "cannot read the node");
        return;
    }
    if (!same_object(op, res->body)) {
        op_finish(op, RSRE_EINVALID, "cannot read node %s: the API answered with another object",
                  op->name);
        return;
    }
    int cur;
    if (bool_field(jget(res->body, "spec", "unschedulable", NULL), &cur) != 0) {
        op_finish(op, RSRE_EINVALID, "node %s: spec.unschedulable is not a boolean", op->name);
        return;
    }
    json_t *b = json_boolean(cur);
    set_prev(op, "spec.unschedulable", b);
    json_decref(b);
    if (cur || op->dry == RSRE_KUBE_EXEC_DRY_CLIENT) {
        drain_list(op);
        return;
    }
    op->step = "write";
    char path[PATH_LEN + 16];
    snprintf(path, sizeof(path), "%s%s", op->path, dry_query(op));
    int rc = op_call(op, "PATCH", path, "{\"spec\":{\"unschedulable\":true}}",
                     patch_ctype(RSRE_KUBE_PATCH_STRATEGIC), drain_on_cordon);
    if (rc != 0) {
        fail_start(op, rc, "cannot send the cordon PATCH");
    }
}

static void drain_on_cordon(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    if (res->rc != 0) {
        fail_call(op, res, "cannot cordon the node");
        return;
    }
    op->cordon_sent = 1;
    drain_list(op);
}

static void drain_list(struct rsre_kube_exec_op *op) {
    char sel[RSRE_KUBE_NAME_LEN + 32], esel[ESC(sizeof(sel))], path[PATH_LEN];
    snprintf(sel, sizeof(sel), "spec.nodeName=%s", op->name);
    if (rsre_kube_escape(sel, esel, sizeof(esel)) != 0) {
        op_finish(op, RSRE_ELIMIT, "node name too long for a field selector");
        return;
    }
    snprintf(path, sizeof(path), "/api/v1/pods?fieldSelector=%s", esel);
    op->step = "list";
    int rc = op_call(op, "GET", path, NULL, NULL, drain_on_list);
    if (rc != 0) {
        fail_start(op, rc, "cannot list the node's pods");
    }
}

/* Sorts one pod of the node: a candidate for eviction, or skipped with the reason. */
static int drain_classify(struct rsre_kube_exec_op *op, const json_t *obj) {
    struct rsre_kube_pod *p = NULL;
    char err[RSRE_KUBE_ERR_LEN];
    if (rsre_kube_pod_decode(obj, &p, err, sizeof(err)) != 0) {
        const char *name = json_string_value(jget(obj, "metadata", "name", NULL));
        char clean[128];
        copy_clean(clean, sizeof(clean), name ? name : "?");
        return strvec_push(&op->skipped, "%s does not decode: %s", clean, err);
    }
    const char *why = NULL;
    if (strcmp(p->node_name, op->name) != 0) {
        why = NULL; /* the field selector was not honoured: not ours to touch, not reported */
        rsre_kube_pod_free(p);
        return 0;
    }
    if (rsre_kube_pod_finished(p)) {
        why = "finished";
    } else if (p->meta.deleted_ms) {
        why = "terminating";
    } else if (p->meta.mirror) {
        why = "mirror";
    } else if (strcmp(p->meta.owner_kind, "DaemonSet") == 0 && has_controller(obj)) {
        why = "DaemonSet";
    } else if (is_system_ns(p->meta.ns) && !(op->flags & RSRE_KUBE_EXEC_F_SYSTEM)) {
        why = RSRE_KUBE_EXEC_SYSTEM_NS;
    } else if (!has_controller(obj) && !(op->flags & RSRE_KUBE_EXEC_F_UNMANAGED)) {
        why = "unmanaged";
    } else if (has_emptydir(obj) && !(op->flags & RSRE_KUBE_EXEC_F_EMPTYDIR)) {
        why = "emptyDir";
    } else if (!p->meta.uid[0] || !p->meta.ns[0]) {
        why = "no uid";
    }
    int rc =
        why ? strvec_push(&op->skipped, "%s/%s %s", p->meta.ns, p->meta.name, why) : pod_add(op, p);
    rsre_kube_pod_free(p);
    return rc;
}

static void drain_on_list(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    if (res->rc != 0) {
        fail_call(op, res, "cannot list the node's pods");
        return;
    }
    const json_t *items = jget(res->body, "items", NULL);
    if (items && !json_is_array(items) && !json_is_null(items)) {
        op_finish(op, RSRE_EINVALID, "pod list: items is not an array");
        return;
    }
    size_t i;
    const json_t *o;
    json_array_foreach(items, i, o) {
        if (drain_classify(op, o) != 0) {
            op_finish(op, -ENOMEM, "out of memory");
            return;
        }
    }
    op->backoff_ms = op->x->cfg.evict_backoff_min_ms;
    drain_round(op);
}

static void drain_round(struct rsre_kube_exec_op *op) {
    op->rounds++;
    op->cur = 0;
    for (size_t i = 0; i < op->npods; i++) {
        if (op->pods[i].state == POD_BLOCKED) {
            op->pods[i].state = POD_PENDING;
        }
    }
    op->step = "evict";
    drain_evict_next(op);
}

static void wait_cb(uv_timer_t *t) {
    drain_round(t->data);
}

/* After a round: wait and retry the blocked pods, or move on to verification. */
static void drain_round_done(struct rsre_kube_exec_op *op) {
    size_t blocked = 0;
    for (size_t i = 0; i < op->npods; i++) {
        blocked += op->pods[i].state == POD_BLOCKED;
    }
    if (blocked && op->dry == RSRE_KUBE_EXEC_REAL) {
        uint64_t now = uv_now(op->x->loop);
        uint64_t budget = op->deadline - op->started;
        uint64_t reserve = op->x->cfg.verify_reserve_ms;
        if (reserve > budget / 4) {
            reserve = budget / 4;
        }
        uint64_t wait = op->backoff_ms;
        if (now + wait + reserve < op->deadline) {
            RSRE_LOG(RSRE_LOG_INFO, MOD,
                     "drain node=%s round=%u blocked=%zu retry_in_ms=%llu (PodDisruptionBudget)",
                     op->name, op->rounds, blocked, (unsigned long long)wait);
            uint64_t next = (uint64_t)op->backoff_ms * 2;
            op->backoff_ms = next > op->x->cfg.evict_backoff_max_ms
                                 ? op->x->cfg.evict_backoff_max_ms
                                 : (uint32_t)next;
            op->step = "evict";
            uv_timer_start(&op->wait_timer, wait_cb, wait, 0);
            return;
        }
    }
    drain_verify(op);
}

static void drain_evict_next(struct rsre_kube_exec_op *op) {
    for (; op->cur < op->npods; op->cur++) {
        struct pod *pd = &op->pods[op->cur];
        if (pd->state != POD_PENDING) {
            continue;
        }
        if (op->dry == RSRE_KUBE_EXEC_DRY_CLIENT) {
            pd->state = POD_EVICTED;
            continue;
        }
        char path[PATH_LEN + 32];
        if (pod_path(pd->ns, pd->name, "/eviction", path, PATH_LEN) != 0) {
            pd->state = POD_FAILED;
            snprintf(pd->note, sizeof(pd->note), "name too long");
            continue;
        }
        strcat(path, dry_query(op));
        /* kubectl drain sends the dry run in the Eviction's deleteOptions; the API server
         * also reads ?dryRun=All and wants both to agree. */
        json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1", "kind",
                               "Eviction", "metadata", "name", pd->name, "namespace", pd->ns);
        if (ev && op->dry == RSRE_KUBE_EXEC_DRY_SERVER) {
            json_object_set_new(ev, "deleteOptions", json_pack("{s:[s]}", "dryRun", "All"));
        }
        char *body = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        json_decref(ev);
        if (!body) {
            op_finish(op, -ENOMEM, "out of memory");
            return;
        }
        int rc = op_call(op, "POST", path, body, NULL, drain_on_evict);
        free(body);
        if (rc == 0) {
            return; /* continues in drain_on_evict */
        }
        pd->state = POD_FAILED;
        snprintf(pd->note, sizeof(pd->note), "%s", rsre_strerror(rc));
        if (!op->first_fail_rc) {
            op->first_fail_rc = rc;
        }
    }
    drain_round_done(op);
}

/* The PodDisruptionBudget's own words: details.causes[].message (kind DisruptionBudget),
 * else the Status message. */
static void pdb_note(const struct rsre_kube_result *res, char *out, size_t cap) {
    const json_t *causes = jget(res->body, "details", "causes", NULL);
    size_t i;
    const json_t *c;
    json_array_foreach(causes, i, c) {
        const char *m = json_string_value(json_object_get(c, "message"));
        if (m) {
            copy_clean(out, cap, m);
            return;
        }
    }
    copy_clean(out, cap, res->error);
}

static void drain_on_evict(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    struct pod *pd = &op->pods[op->cur];
    if (res->rc == 0) {
        pd->state = POD_EVICTED;
        RSRE_LOG(RSRE_LOG_INFO, MOD, "eviction accepted pod=%s/%s node=%s dry_run=%s", pd->ns,
                 pd->name, op->name, dry_name(op->dry));
    } else if (res->rc == -EAGAIN) {
        pd->state = POD_BLOCKED;
        pdb_note(res, pd->note, sizeof(pd->note));
    } else if (res->rc == RSRE_ENOTFOUND) {
        pd->state = POD_GONE;
    } else {
        pd->state = POD_FAILED;
        copy_clean(pd->note, sizeof(pd->note), res->error);
        note_failure(op, res);
        if (!op->first_fail_rc) {
            op->first_fail_rc = res->rc;
        }
        RSRE_LOG(RSRE_LOG_WARN, MOD, "eviction failed pod=%s/%s node=%s err=\"%s\"", pd->ns,
                 pd->name, op->name, pd->note);
    }
    op->cur++;
    drain_evict_next(op);
}

static void drain_verify(struct rsre_kube_exec_op *op) {
    if (op->dry != RSRE_KUBE_EXEC_REAL) {
        drain_finish(op, 0, NULL);
        return;
    }
    op->step = "verify";
    int rc = op_call(op, "GET", op->path, NULL, NULL, drain_on_verify_node);
    if (rc != 0) {
        drain_finish(op, rc, "cannot read the node back");
    }
}

static void drain_on_verify_node(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    if (res->rc != 0) {
        note_failure(op, res);
        drain_finish(op, res->rc, "cannot read the node back");
        return;
    }
    if (!json_is_true(jget(res->body, "spec", "unschedulable", NULL))) {
        drain_finish(op, -ESTALE, "the node is schedulable again (uncordoned by someone else?)");
        return;
    }
    char sel[RSRE_KUBE_NAME_LEN + 32], esel[ESC(sizeof(sel))], path[PATH_LEN];
    snprintf(sel, sizeof(sel), "spec.nodeName=%s", op->name);
    rsre_kube_escape(sel, esel, sizeof(esel));
    snprintf(path, sizeof(path), "/api/v1/pods?fieldSelector=%s", esel);
    int rc = op_call(op, "GET", path, NULL, NULL, drain_on_verify_pods);
    if (rc != 0) {
        drain_finish(op, rc, "cannot list the node's pods again");
    }
}

static void drain_on_verify_pods(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    if (res->rc != 0) {
        note_failure(op, res);
        drain_finish(op, res->rc, "cannot list the node's pods again");
        return;
    }
    const json_t *items = jget(res->body, "items", NULL);
    size_t still = 0;
    char first[RSRE_KUBE_NS_LEN + RSRE_KUBE_NAME_LEN + 2] = "";
    for (size_t i = 0; i < op->npods; i++) {
        const struct pod *pd = &op->pods[i];
        if (pd->state == POD_EVICTED && pod_still_running(items, pd)) {
            if (!still++) {
                snprintf(first, sizeof(first), "%s/%s", pd->ns, pd->name);
            }
        }
    }
    if (still) {
        char msg[320];
        snprintf(msg, sizeof(msg), "%zu evicted pod(s) still running and not terminating, e.g. %.200s",
                 still, first);
        drain_finish(op, -ESTALE, msg);
        return;
    }
    op->verified = 1;
    drain_finish(op, 0, NULL);
}

/* Sums up the pods into the result lists and finishes. */
static void drain_finish(struct rsre_kube_exec_op *op, int verify_rc, const char *verify_msg) {
    size_t evicted = 0, blocked = 0, failed = 0, gone = 0;
    int oom = 0;
    for (size_t i = 0; i < op->npods; i++) {
        const struct pod *pd = &op->pods[i];
        switch (pd->state) {
        case POD_EVICTED:
            evicted++;
            oom |= strvec_push(&op->ids, "%s/%s", pd->ns, pd->name);
            break;
        case POD_BLOCKED:
        case POD_PENDING:
            blocked++;
            oom |= strvec_push(&op->blocked, "%s/%s %s", pd->ns, pd->name,
                               pd->note[0] ? pd->note : "not evicted before the deadline");
            break;
        case POD_FAILED:
            failed++;
            oom |= strvec_push(&op->failed, "%s/%s: %s", pd->ns, pd->name, pd->note);
            break;
        case POD_GONE:
            gone++;
            oom |= strvec_push(&op->skipped, "%s/%s gone", pd->ns, pd->name);
            break;
        }
    }
    if (oom) {
        op_finish(op, -ENOMEM, "out of memory");
        return;
    }
    /* A failed eviction outranks a failed verification, which outranks blocked pods. */
    int rc = failed ? op->first_fail_rc : verify_rc ? verify_rc : blocked ? -EAGAIN : 0;
    if (rc == -EAGAIN) {
        op->step = "evict";
    }
    char first_blocked[NOTE_LEN + 160] = "";
    if (blocked) {
        snprintf(first_blocked, sizeof(first_blocked), "; blocked: %s%s", op->blocked.v[0],
                 blocked > 1 ? ", ..." : "");
    }
    const char *cordon = strcmp(op->prev_value, "true") == 0    ? "already cordoned"
                         : op->dry == RSRE_KUBE_EXEC_REAL       ? "cordoned"
                         : op->dry == RSRE_KUBE_EXEC_DRY_SERVER ? "would be cordoned (server dry "
                                                                  "run accepted the PATCH)"
                                                                : "would be cordoned";
    op_finish(op, rc,
              "%snode %s %s; %zu pod(s) %s, %zu blocked by PodDisruptionBudgets, %zu failed, "
              "%zu skipped%s%s%s (%u eviction round(s))%s",
              op->dry == RSRE_KUBE_EXEC_DRY_SERVER   ? "dry run (server): "
              : op->dry == RSRE_KUBE_EXEC_DRY_CLIENT ? "dry run: "
                                                     : "",
              op->name, cordon, evicted, op->dry ? "would be evicted" : "evicted", blocked, failed,
              op->skipped.n, op->over_limit ? " (more pods than max_pods were left)" : "",
              verify_msg ? "; " : "", verify_msg ? verify_msg : "", op->rounds, first_blocked);
}

/* ---- delete finished pods --------------------------------------------------------------- */

static const char *const finished_phases[] = {"Succeeded", "Failed"};

static void cleanup_list(struct rsre_kube_exec_op *op,
                         void (*next)(struct rsre_kube_exec_op *, const struct rsre_kube_result *));
static void cleanup_on_list(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void cleanup_next(struct rsre_kube_exec_op *op);
static void cleanup_on_delete(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void cleanup_on_verify(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res);
static void cleanup_finish(struct rsre_kube_exec_op *op, int verify_rc, const char *verify_msg);

static int cleanup_list_rc(struct rsre_kube_exec_op *op,
                           void (*next)(struct rsre_kube_exec_op *,
                                        const struct rsre_kube_result *));

static int cleanup_start(struct rsre_kube_exec_op *op) {
    op->phase_idx = 0;
    op->step = "list";
    return cleanup_list_rc(op, cleanup_on_list);
}

/* Lists the pods of phase finished_phases[op->phase_idx] in scope; the answer goes to next. */
static int cleanup_list_rc(struct rsre_kube_exec_op *op,
                           void (*next)(struct rsre_kube_exec_op *,
                                        const struct rsre_kube_result *)) {
    char sel[64], esel[ESC(64)], ens[ESC(RSRE_KUBE_NS_LEN)];
    snprintf(sel, sizeof(sel), "status.phase=%s", finished_phases[op->phase_idx]);
    if (rsre_kube_escape(sel, esel, sizeof(esel)) != 0 ||
        rsre_kube_escape(op->ns, ens, sizeof(ens)) != 0) {
        return RSRE_ELIMIT;
    }
    if (op->ns[0]) {
        snprintf(op->path, sizeof(op->path), "/api/v1/namespaces/%s/pods?fieldSelector=%s", ens,
                 esel);
    } else {
        snprintf(op->path, sizeof(op->path), "/api/v1/pods?fieldSelector=%s", esel);
    }
    return op_call(op, "GET", op->path, NULL, NULL, next);
}

static void cleanup_list(struct rsre_kube_exec_op *op,
                         void (*next)(struct rsre_kube_exec_op *,
                                      const struct rsre_kube_result *)) {
    int rc = cleanup_list_rc(op, next);
    if (rc != 0) {
        fail_start(op, rc, "cannot list finished pods");
    }
}

static int cleanup_classify(struct rsre_kube_exec_op *op, const json_t *obj) {
    struct rsre_kube_pod *p = NULL;
    char err[RSRE_KUBE_ERR_LEN];
    if (rsre_kube_pod_decode(obj, &p, err, sizeof(err)) != 0) {
        const char *name = json_string_value(jget(obj, "metadata", "name", NULL));
        char clean[128];
        copy_clean(clean, sizeof(clean), name ? name : "?");
        return strvec_push(&op->skipped, "%s does not decode: %s", clean, err);
    }
    int rc = 0;
    if (!rsre_kube_pod_finished(p) || (op->ns[0] && strcmp(p->meta.ns, op->ns) != 0)) {
        /* The selector was not honoured: not a candidate, not reported. */
    } else if (p->meta.deleted_ms) {
        rc = strvec_push(&op->skipped, "%s/%s terminating", p->meta.ns, p->meta.name);
    } else if (p->meta.mirror) {
        rc = strvec_push(&op->skipped, "%s/%s mirror", p->meta.ns, p->meta.name);
    } else if (!op->ns[0] && is_system_ns(p->meta.ns) && !(op->flags & RSRE_KUBE_EXEC_F_SYSTEM)) {
        rc = strvec_push(&op->skipped, "%s/%s %s", p->meta.ns, p->meta.name,
                         RSRE_KUBE_EXEC_SYSTEM_NS);
    } else if (!p->meta.uid[0] || !p->meta.ns[0]) {
        rc = strvec_push(&op->skipped, "%s/%s no uid", p->meta.ns, p->meta.name);
    } else {
        rc = pod_add(op, p);
    }
    rsre_kube_pod_free(p);
    return rc;
}

static void cleanup_on_list(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    if (res->rc != 0) {
        fail_call(op, res, "cannot list finished pods");
        return;
    }
    const json_t *items = jget(res->body, "items", NULL);
    if (items && !json_is_array(items) && !json_is_null(items)) {
        op_finish(op, RSRE_EINVALID, "pod list: items is not an array");
        return;
    }
    size_t i;
    const json_t *o;
    json_array_foreach(items, i, o) {
        if (cleanup_classify(op, o) != 0) {
            op_finish(op, -ENOMEM, "out of memory");
            return;
        }
    }
    if (++op->phase_idx < 2) {
        cleanup_list(op, cleanup_on_list);
        return;
    }
    op->step = "delete";
    op->cur = 0;
    cleanup_next(op);
}

static void cleanup_next(struct rsre_kube_exec_op *op) {
    for (; op->cur < op->npods; op->cur++) {
        struct pod *pd = &op->pods[op->cur];
        if (op->dry == RSRE_KUBE_EXEC_DRY_CLIENT) {
            pd->state = POD_EVICTED;
            continue;
        }
        char path[PATH_LEN];
        if (pod_path(pd->ns, pd->name, "", path, sizeof(path)) != 0) {
            pd->state = POD_FAILED;
            snprintf(pd->note, sizeof(pd->note), "name too long");
            continue;
        }
        /* With a body, the API server takes DeleteOptions (dryRun included) from the body
         * alone, not from the query. */
        json_t *opts =
            json_pack("{s:s, s:s, s:{s:s}, s:s}", "kind", "DeleteOptions", "apiVersion", "v1",
                      "preconditions", "uid", pd->uid, "propagationPolicy", "Background");
        if (opts && op->dry == RSRE_KUBE_EXEC_DRY_SERVER) {
            json_object_set_new(opts, "dryRun", json_pack("[s]", "All"));
        }
        char *body = opts ? json_dumps(opts, JSON_COMPACT) : NULL;
        json_decref(opts);
        if (!body) {
            op_finish(op, -ENOMEM, "out of memory");
            return;
        }
        int rc = op_call(op, "DELETE", path, body, NULL, cleanup_on_delete);
        free(body);
        if (rc == 0) {
            return;
        }
        pd->state = POD_FAILED;
        snprintf(pd->note, sizeof(pd->note), "%s", rsre_strerror(rc));
        if (!op->first_fail_rc) {
            op->first_fail_rc = rc;
        }
    }
    if (op->dry != RSRE_KUBE_EXEC_REAL) {
        cleanup_finish(op, 0, NULL);
        return;
    }
    op->step = "verify";
    op->phase_idx = 0;
    cleanup_list(op, cleanup_on_verify);
}

static void cleanup_on_delete(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    struct pod *pd = &op->pods[op->cur];
    if (res->rc == 0) {
        pd->state = POD_EVICTED;
    } else if (res->rc == RSRE_ENOTFOUND) {
        pd->state = POD_GONE;
        snprintf(pd->note, sizeof(pd->note), "gone");
    } else if (res->rc == -ESTALE) {
        pd->state = POD_GONE;
        snprintf(pd->note, sizeof(pd->note), "replaced (uid precondition failed)");
    } else {
        pd->state = POD_FAILED;
        copy_clean(pd->note, sizeof(pd->note), res->error);
        note_failure(op, res);
        if (!op->first_fail_rc) {
            op->first_fail_rc = res->rc;
        }
    }
    op->cur++;
    cleanup_next(op);
}

static void cleanup_on_verify(struct rsre_kube_exec_op *op, const struct rsre_kube_result *res) {
    if (res->rc != 0) {
        note_failure(op, res);
        cleanup_finish(op, res->rc, "cannot list finished pods again");
        return;
    }
    const json_t *items = jget(res->body, "items", NULL);
    for (size_t i = 0; i < op->npods; i++) {
        if (op->pods[i].state == POD_EVICTED && pod_still_running(items, &op->pods[i])) {
            char msg[400];
            snprintf(msg, sizeof(msg), "deleted pod %s/%s is still there", op->pods[i].ns,
                     op->pods[i].name);
            cleanup_finish(op, -ESTALE, msg);
            return;
        }
    }
    if (++op->phase_idx < 2) {
        cleanup_list(op, cleanup_on_verify);
        return;
    }
    op->verified = 1;
    cleanup_finish(op, 0, NULL);
}

static void cleanup_finish(struct rsre_kube_exec_op *op, int verify_rc, const char *verify_msg) {
    size_t deleted = 0, failed = 0;
    int oom = 0;
    for (size_t i = 0; i < op->npods; i++) {
        const struct pod *pd = &op->pods[i];
        if (pd->state == POD_EVICTED) {
            deleted++;
            oom |= strvec_push(&op->ids, "%s/%s", pd->ns, pd->name);
        } else if (pd->state == POD_GONE) {
            oom |= strvec_push(&op->skipped, "%s/%s %s", pd->ns, pd->name, pd->note);
        } else if (pd->state == POD_FAILED) {
            failed++;
            oom |= strvec_push(&op->failed, "%s/%s: %s", pd->ns, pd->name, pd->note);
        }
    }
    if (oom) {
        op_finish(op, -ENOMEM, "out of memory");
        return;
    }
    int rc = failed ? op->first_fail_rc : verify_rc;
    op_finish(op, rc, "%s%zu finished pod(s) in %s %s, %zu failed, %zu skipped%s%s%s",
              op->dry == RSRE_KUBE_EXEC_DRY_SERVER   ? "dry run (server): "
              : op->dry == RSRE_KUBE_EXEC_DRY_CLIENT ? "dry run: "
                                                     : "",
              deleted, op->ns[0] ? op->ns : "all namespaces",
              op->dry ? "would be deleted" : "deleted", failed, op->skipped.n,
              op->over_limit ? " (more pods than max_pods were left)" : "", verify_msg ? "; " : "",
              verify_msg ? verify_msg : "");
}

/* ---- operation lifecycle ---------------------------------------------------------------- */

static void op_finish(struct rsre_kube_exec_op *op, int rc, const char *fmt, ...) {
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    op_unlink(op);
    op->finishing = 1;
    if (op->call) {
        rsre_kube_call_abandon(op->call);
        op->call = NULL;
    }
    uv_timer_stop(&op->wait_timer);
    struct rsre_kube_exec_result r = {
        .rc = rc,
        .ok = rc == 0,
        .action = op->row->pub.id,
        .target = op->target,
        .kind = op_kind(op),
        .dry_run = op->dry,
        .step = rc == 0 ? "done" : op->step,
        .message = msg,
        .verified = op->verified,
        .changed = (uint32_t)op->ids.n,
        .ids = (const char *const *)op->ids.v,
        .nids = op->ids.n,
        .blocked = (const char *const *)op->blocked.v,
        .nblocked = op->blocked.n,
        .skipped = (const char *const *)op->skipped.v,
        .nskipped = op->skipped.n,
        .failed = (const char *const *)op->failed.v,
        .nfailed = op->failed.n,
        .previous_field = op->prev_field,
        .previous_value = op->prev_value,
        .previous_replicas = op->prev_replicas,
        .http_status = rc == 0 ? 0 : op->http_status,
        .reason = rc == 0 ? "" : op->reason,
        .evict_rounds = op->rounds,
        .elapsed_ms = uv_now(op->x->loop) - op->started,
    };
    RSRE_LOG(rc == 0 ? RSRE_LOG_INFO : RSRE_LOG_WARN, MOD,
             "action=%s target=%s kind=%s dry_run=%s rc=%s step=%s changed=%zu blocked=%zu "
             "failed=%zu skipped=%zu verified=%d previous=%s=%s msg=\"%s\" elapsed_ms=%llu",
             r.action, r.target, r.kind, dry_name(op->dry), rc ? rsre_strerror(rc) : "ok", r.step,
             r.nids, r.nblocked, r.nfailed, r.nskipped, r.verified,
             op->prev_field[0] ? op->prev_field : "-", op->prev_value[0] ? op->prev_value : "-",
             msg, (unsigned long long)r.elapsed_ms);
    op->cb(op->arg, &r);
    op_release(op);
}

static void deadline_cb(uv_timer_t *t) {
    struct rsre_kube_exec_op *op = t->data;
    if (op->call) {
        rsre_kube_call_abandon(op->call);
        op->call = NULL;
    }
    size_t done = 0;
    for (size_t i = 0; i < op->npods; i++) {
        done += op->pods[i].state == POD_EVICTED;
    }
    if (op->npods) {
        op_finish(op, -ETIMEDOUT, "deadline passed during step %s (%zu of %zu pod(s) done)",
                  op->step, done, op->npods);
    } else {
        op_finish(op, -ETIMEDOUT, "deadline passed during step %s", op->step);
    }
}

/* Checks the request against its row; fills op. Returns 0 or RSRE_EINVALID with err. */
static int op_prepare(struct rsre_kube_exec_op *op, const struct row *row,
                      const struct rsre_kube_exec_request *req, char *err, size_t err_len) {
    const char *t = req->target;
    if (!t || strlen(t) >= sizeof(op->target)) {
        return errf(err, err_len, RSRE_EINVALID, "%s: target missing or too long", row->pub.id);
    }
    char ct[RSRE_KUBE_EXEC_TARGET_MAX];
    copy_clean(ct, sizeof(ct), t);
    const char *kind = req->kind && req->kind[0] ? req->kind : NULL;
    switch (row->pub.target) {
    case RSRE_KUBE_EXEC_TARGET_NODE:
        if (rsre_kube_exec_check_node(t) != 0) {
            return errf(err, err_len, RSRE_EINVALID,
                        "%s: \"%.80s\" is not a node name (DNS-1123 subdomain)", row->pub.id, ct);
        }
        if (kind && strcasecmp(kind, "node") != 0) {
            return errf(err, err_len, RSRE_EINVALID, "%s acts on nodes, not on %.40s", row->pub.id,
                        kind);
        }
        snprintf(op->name, sizeof(op->name), "%s", t);
        break;
    case RSRE_KUBE_EXEC_TARGET_OBJECT: {
        if (rsre_kube_exec_check_object(t, op->ns, op->name) != 0) {
            return errf(err, err_len, RSRE_EINVALID,
                        "%s: \"%.80s\" is not namespace/name (a DNS-1123 label, a subdomain)",
                        row->pub.id, ct);
        }
        const char *def = row->pub.kinds;
        size_t dlen = strcspn(def, ",");
        op->kr = kind ? kind_find(kind, strlen(kind)) : kind_find(def, dlen);
        if (!op->kr || !(op->kr->caps & row->caps)) {
            return errf(err, err_len, RSRE_EINVALID, "%s takes %s, not \"%.40s\"", row->pub.id,
                        row->pub.kinds, kind ? kind : "");
        }
        /* "deployment" matched by name above; Kubernetes' "Deployment" spelling too. */
        break;
    }
    case RSRE_KUBE_EXEC_TARGET_NAMESPACE:
        if (rsre_kube_exec_check_namespace(t) != 0) {
            return errf(err, err_len, RSRE_EINVALID,
                        "%s: \"%.80s\" is not a namespace (DNS-1123 label) or \"*\"", row->pub.id,
                        ct);
        }
        if (kind && strcasecmp(kind, "pods") != 0 && strcasecmp(kind, "pod") != 0) {
            return errf(err, err_len, RSRE_EINVALID, "%s acts on pods, not on %.40s", row->pub.id,
                        kind);
        }
        snprintf(op->ns, sizeof(op->ns), "%s", strcmp(t, "*") == 0 ? "" : t);
        break;
    }
    snprintf(op->target, sizeof(op->target), "%s", t);
    int rule = row->replicas_rule;
    if (rule == REPL_BY_KIND) {
        rule = (op->kr->caps & CAP_SCALE) ? REPL_REQUIRED : REPL_NONE;
    }
    if (rule == REPL_NONE && req->replicas_set) {
        return errf(err, err_len, RSRE_EINVALID, "%s%s%s takes no replica count", row->pub.id,
                    op->kr ? " of a " : "", op->kr ? op->kr->kind : "");
    }
    if (rule == REPL_REQUIRED && !req->replicas_set) {
        return errf(err, err_len, RSRE_EINVALID, "%s%s%s needs a replica count", row->pub.id,
                    op->kr ? " of a " : "", op->kr ? op->kr->kind : "");
    }
    if (req->replicas_set && (req->replicas < 0 || req->replicas > RSRE_KUBE_EXEC_MAX_REPLICAS)) {
        return errf(err, err_len, RSRE_EINVALID, "replicas %d is not in 0..%d", (int)req->replicas,
                    RSRE_KUBE_EXEC_MAX_REPLICAS);
    }
    if (row->scale_mode == SCALE_UP && req->replicas_set && req->replicas == 0) {
        return errf(err, err_len, RSRE_EINVALID, "%s cannot resume to 0 replicas", row->pub.id);
    }
    op->replicas = req->replicas;
    op->replicas_set = req->replicas_set ? 1 : 0;
    if ((unsigned)req->dry_run > RSRE_KUBE_EXEC_DRY_CLIENT) {
        return errf(err, err_len, RSRE_EINVALID, "unknown dry-run mode %d", (int)req->dry_run);
    }
    unsigned known =
        RSRE_KUBE_EXEC_F_EMPTYDIR | RSRE_KUBE_EXEC_F_UNMANAGED | RSRE_KUBE_EXEC_F_SYSTEM;
    if (req->flags & ~known) {
        return errf(err, err_len, RSRE_EINVALID, "unknown flags 0x%x", req->flags & ~known);
    }
    return 0;
}

int rsre_kube_exec_run(struct rsre_kube_exec *x, const struct rsre_kube_exec_request *req,
                       rsre_kube_exec_cb cb, void *arg, struct rsre_kube_exec_op **out, char *err,
                       size_t err_len) {
    if (out) {
        *out = NULL;
    }
    if (!x || !req || !cb) {
        return errf(err, err_len, -EINVAL, "no executor, request or callback");
    }
    if (x->closing) {
        return errf(err, err_len, -ESHUTDOWN, "the executor is shutting down");
    }
    const struct row *row = row_find(req->action);
    if (!row) {
        char clean[80];
        copy_clean(clean, sizeof(clean), req->action ? req->action : "");
        return errf(err, err_len, RSRE_ENOTFOUND, "no Kubernetes action \"%s\"", clean);
    }
    struct rsre_kube_exec_op *op = calloc(1, sizeof(*op));
    if (!op) {
        return errf(err, err_len, -ENOMEM, "out of memory");
    }
    op->x = x;
    op->row = row;
    op->want = row->want;
    op->scale_mode = row->scale_mode;
    op->prev_replicas = -1;
    op->step = "read";
    int rc = op_prepare(op, row, req, err, err_len);
    if (rc != 0) {
        free(op);
        return rc;
    }
    op->dry = req->dry_run;
    op->flags = req->flags;
    if (x->cfg.drain_delete_emptydir) {
        op->flags |= RSRE_KUBE_EXEC_F_EMPTYDIR;
    }
    if (x->cfg.drain_unmanaged) {
        op->flags |= RSRE_KUBE_EXEC_F_UNMANAGED;
    }
    op->cb = cb;
    op->arg = arg;
    op->started = uv_now(x->loop);
    op->deadline = op->started + (req->timeout_ms ? req->timeout_ms : x->cfg.timeout_ms);
    /* Linked before the first call: a kube client closing right away finishes it cleanly. */
    op->next = x->ops;
    if (x->ops) {
        x->ops->prev = op;
    }
    x->ops = op;
    x->nops++;
    rc = row->start(op);
    if (rc != 0) {
        op_unlink(op);
        free(op);
        return errf(err, err_len, rc, "%s: cannot start: %s", row->pub.id, rsre_strerror(rc));
    }
    uv_timer_init(x->loop, &op->deadline_timer);
    uv_timer_init(x->loop, &op->wait_timer);
    op->deadline_timer.data = op;
    op->wait_timer.data = op;
    op->open_handles = 2;
    uv_timer_start(&op->deadline_timer, deadline_cb, op->deadline - op->started, 0);
    RSRE_LOG(RSRE_LOG_INFO, MOD, "start action=%s target=%s kind=%s dry_run=%s timeout_ms=%llu",
             row->pub.id, op->target, op_kind(op), dry_name(op->dry),
             (unsigned long long)(op->deadline - op->started));
    if (out) {
        *out = op;
    }
    return 0;
}

void rsre_kube_exec_abandon(struct rsre_kube_exec_op *op) {
    if (!op || op->finishing) {
        return;
    }
    op->finishing = 1;
    op_unlink(op);
    op_release(op);
}

size_t rsre_kube_exec_active(const struct rsre_kube_exec *x) {
    return x ? x->nops : 0;
}

int rsre_kube_exec_create(struct rsre_kube *kube, const struct rsre_kube_exec_config *cfg,
                          struct rsre_kube_exec **out, char *err, size_t err_len) {
    *out = NULL;
    if (!kube) {
        return errf(err, err_len, -EINVAL, "no Kubernetes client");
    }
    struct rsre_kube_exec_config c;
    if (cfg) {
        c = *cfg;
    } else {
        rsre_kube_exec_config_defaults(&c);
    }
    int rc = config_check(&c, err, err_len);
    if (rc != 0) {
        return rc;
    }
    struct rsre_kube_exec *x = calloc(1, sizeof(*x));
    if (!x) {
        return errf(err, err_len, -ENOMEM, "out of memory");
    }
    x->kube = kube;
    x->loop = rsre_kube_loop(kube);
    x->cfg = c;
    *out = x;
    return 0;
}

void rsre_kube_exec_destroy(struct rsre_kube_exec *x) {
    if (!x) {
        return;
    }
    x->closing = 1;
    while (x->ops) {
        struct rsre_kube_exec_op *op = x->ops;
        if (op->call) {
            rsre_kube_call_abandon(op->call);
            op->call = NULL;
        }
        op_finish(op, -ECANCELED, "cancelled: the executor is shutting down");
    }
    free(x);
}
