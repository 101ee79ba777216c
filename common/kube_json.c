#include "common/kube_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* ---- error reporting ---------------------------------------------------------------------- */

struct ectx {
    char *err;
    size_t len;
};

/* Writes "prefix.key: message" (or "prefix: message" when key is NULL) and returns code. */
static int failf(struct ectx *e, int code, const char *prefix, const char *key, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));

static int failf(struct ectx *e, int code, const char *prefix, const char *key, const char *fmt,
                 ...) {
    if (!e || !e->err || e->len == 0) {
        return code;
    }
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *dot = (prefix && *prefix && key) ? "." : "";
    snprintf(e->err, e->len, "%s%s%s: %s", prefix ? prefix : "", dot, key ? key : "", msg);
    return code;
}

static const char *jtype(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* ---- field helpers ------------------------------------------------------------------------ */

/* Value of `key`, or NULL when absent or null. */
static const json_t *field(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

/* Fetches an optional sub-object: *out NULL when absent. */
static int get_obj(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                   const json_t **out) {
    const json_t *v = field(obj, key);
    *out = NULL;
    if (!v) {
        return 0;
    }
    if (!json_is_object(v)) {
        return failf(e, RSRE_EINVALID, prefix, key, "expected an object, got %s", jtype(v));
    }
    *out = v;
    return 0;
}

static int get_arr(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                   size_t max, const json_t **out) {
    const json_t *v = field(obj, key);
    *out = NULL;
    if (!v) {
        return 0;
    }
    if (!json_is_array(v)) {
        return failf(e, RSRE_EINVALID, prefix, key, "expected an array, got %s", jtype(v));
    }
    if (json_array_size(v) > max) {
        return failf(e, RSRE_ELIMIT, prefix, key, "%zu entries, limit is %zu", json_array_size(v),
                     max);
    }
    *out = v;
    return 0;
}

static int get_string_value(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                            const char **s, size_t *len) {
    const json_t *v = field(obj, key);
    *s = NULL;
    *len = 0;
    if (!v) {
        return 0;
    }
    if (!json_is_string(v)) {
        return failf(e, RSRE_EINVALID, prefix, key, "expected a string, got %s", jtype(v));
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* Length of the longest prefix of s (len bytes) of at most max bytes ending on a UTF-8
 * character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
    if (len <= max) {
        return len;
    }
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--;
    }
    return n;
}

enum { ID = 0, NAME = 1, TEXT = 2 };

/*
 * Copies string field `key` into dst[cap]. ID: longer than cap-1 or control characters is an
 * error; NAME: like ID and '/' is an error too; TEXT: truncated.
 */
static int get_str(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                   char *dst, size_t cap, int mode) {
    const char *s;
    size_t len;
    dst[0] = '\0';
    int rc = get_string_value(e, obj, key, prefix, &s, &len);
    if (rc != 0 || !s) {
        return rc;
    }
    if (mode == TEXT) {
        len = utf8_cut(s, len, cap - 1);
    } else {
        if (len > cap - 1) {
            return failf(e, RSRE_EINVALID, prefix, key, "longer than %zu bytes", cap - 1);
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f) {
                return failf(e, RSRE_EINVALID, prefix, key, "contains a control character");
            }
            if (mode == NAME && c == '/') {
                return failf(e, RSRE_EINVALID, prefix, key, "contains '/'");
            }
        }
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* Copies free text `key` into a new allocation of at most max bytes (NULL when absent). */
static int get_text_dup(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                        char **dst, size_t max) {
    const char *s;
    size_t len;
    *dst = NULL;
    int rc = get_string_value(e, obj, key, prefix, &s, &len);
    if (rc != 0 || !s) {
        return rc;
    }
    len = utf8_cut(s, len, max);
    char *d = malloc(len + 1);
    if (!d) {
        return failf(e, -ENOMEM, prefix, key, "out of memory");
    }
    memcpy(d, s, len);
    d[len] = '\0';
    *dst = d;
    return 0;
}

static int get_time(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                    int64_t *out) {
    const char *s;
    size_t len;
    *out = 0;
    int rc = get_string_value(e, obj, key, prefix, &s, &len);
    if (rc != 0 || !s) {
        return rc;
    }
    if (len == 0) {
        return 0;
    }
    if (strlen(s) != len || rsre_kube_time_parse(s, out) != 0) {
        *out = 0;
        return failf(e, RSRE_EINVALID, prefix, key, "not an RFC 3339 time");
    }
    return 0;
}

static int get_int(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                   long long min, long long max, long long *out) {
    const json_t *v = field(obj, key);
    if (!v) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return failf(e, RSRE_EINVALID, prefix, key, "expected an integer, got %s", jtype(v));
    }
    long long x = json_integer_value(v);
    if (x < min || x > max) {
        return failf(e, RSRE_EINVALID, prefix, key, "%lld is outside %lld..%lld", x, min, max);
    }
    *out = x;
    return 0;
}

static int get_bool(struct ectx *e, const json_t *obj, const char *key, const char *prefix,
                    int *out) {
    const json_t *v = field(obj, key);
    if (!v) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return failf(e, RSRE_EINVALID, prefix, key, "expected a boolean, got %s", jtype(v));
    }
    *out = json_is_true(v);
    return 0;
}

/* ---- common ------------------------------------------------------------------------------- */

int rsre_kube_json_load(const char *buf, size_t len, json_t **out, char *err, size_t err_len) {
    struct ectx e = {err, err_len};
    *out = NULL;
    if (len > RSRE_KUBE_MAX_JSON) {
        return failf(&e, RSRE_ELIMIT, "json", NULL, "%zu bytes, limit is %u", len,
                     RSRE_KUBE_MAX_JSON);
    }
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_out_of_memory) {
            return failf(&e, -ENOMEM, "json", NULL, "out of memory");
        }
        return failf(&e, RSRE_EPARSE, "json", NULL, "line %d column %d: %s", je.line, je.column,
                     je.text);
    }
    *out = root;
    return 0;
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int rsre_kube_time_parse(const char *s, int64_t *unix_ms) {
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec;
    if (!s || strlen(s) < 20) {
        return RSRE_EINVALID;
    }
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec)) {
        return RSRE_EINVALID;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) {
        return RSRE_EINVALID;
    }
    int dim = mdays[mo - 1] + (mo == 2 && is_leap(y));
    if (d > dim) {
        return RSRE_EINVALID;
    }
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
            }
            n++;
            p++;
        }
        if (n == 0 || n > 9) {
            return RSRE_EINVALID;
        }
        for (int i = n; i < 3; i++) {
            ms *= 10;
        }
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59) {
            return RSRE_EINVALID;
        }
        off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return RSRE_EINVALID;
    }
    if (*p != '\0') {
        return RSRE_EINVALID;
    }
    int64_t days = days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off_min * 60;
    *unix_ms = secs * 1000 + ms;
    return 0;
}

int rsre_kube_meta_decode(const json_t *obj, struct rsre_kube_meta *m, char *err, size_t err_len) {
    struct ectx e = {err, err_len};
    memset(m, 0, sizeof(*m));
    if (!json_is_object(obj)) {
        return failf(&e, RSRE_EINVALID, "object", NULL, "expected an object, got %s",
                     obj ? jtype(obj) : "nothing");
    }
    const json_t *md;
    int rc = get_obj(&e, obj, "metadata", "", &md);
    if (rc != 0 || !md) {
        return rc;
    }
    const char *P = "metadata";
    if ((rc = get_str(&e, md, "namespace", P, m->ns, sizeof(m->ns), NAME)) ||
        (rc = get_str(&e, md, "name", P, m->name, sizeof(m->name), NAME)) ||
        (rc = get_str(&e, md, "uid", P, m->uid, sizeof(m->uid), ID)) ||
        (rc = get_str(&e, md, "resourceVersion", P, m->rv, sizeof(m->rv), ID)) ||
        (rc = get_time(&e, md, "creationTimestamp", P, &m->created_ms)) ||
        (rc = get_time(&e, md, "deletionTimestamp", P, &m->deleted_ms))) {
        return rc;
    }
    const json_t *ann;
    if ((rc = get_obj(&e, md, "annotations", P, &ann))) {
        return rc;
    }
    if (ann && json_object_get(ann, "kubernetes.io/config.mirror")) {
        m->mirror = 1;
    }
    const json_t *owners;
    if ((rc = get_arr(&e, md, "ownerReferences", P, 64, &owners))) {
        return rc;
    }
    size_t chosen = (size_t)-1;
    for (size_t i = 0; owners && i < json_array_size(owners); i++) {
        char pre[64];
        snprintf(pre, sizeof(pre), "metadata.ownerReferences[%zu]", i);
        const json_t *o = json_array_get(owners, i);
        if (!json_is_object(o)) {
            return failf(&e, RSRE_EINVALID, pre, NULL, "expected an object, got %s", jtype(o));
        }
        int controller = 0;
        if ((rc = get_bool(&e, o, "controller", pre, &controller))) {
            return rc;
        }
        if (chosen == (size_t)-1 || controller) {
            if ((rc = get_str(&e, o, "kind", pre, m->owner_kind, sizeof(m->owner_kind), ID)) ||
                (rc = get_str(&e, o, "name", pre, m->owner_name, sizeof(m->owner_name), NAME))) {
                return rc;
            }
            chosen = i;
            if (controller) {
                break;
            }
        }
    }
    return 0;
}

int rsre_kube_status_decode(const json_t *obj, struct rsre_kube_status *st, char *err,
                            size_t err_len) {
    struct ectx e = {err, err_len};
    memset(st, 0, sizeof(*st));
    if (!json_is_object(obj)) {
        return failf(&e, RSRE_EINVALID, "status", NULL, "expected an object");
    }
    char kind[RSRE_KUBE_KIND_LEN];
    int rc = get_str(&e, obj, "kind", "", kind, sizeof(kind), ID);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(kind, "Status") != 0) {
        return failf(&e, RSRE_EINVALID, "kind", NULL, "expected \"Status\", got \"%s\"", kind);
    }
    long long code = 0;
    if ((rc = get_int(&e, obj, "code", "", 0, 999, &code)) ||
        (rc = get_str(&e, obj, "status", "", st->status, sizeof(st->status), TEXT)) ||
        (rc = get_str(&e, obj, "reason", "", st->reason, sizeof(st->reason), TEXT)) ||
        (rc = get_str(&e, obj, "message", "", st->message, sizeof(st->message), TEXT))) {
        return rc;
    }
    st->code = (long)code;
    return 0;
}

/* ---- Node --------------------------------------------------------------------------------- */

static const char *const cond_names[RSRE_KUBE_NODE_NCOND] = {
    [RSRE_KUBE_NODE_READY] = "Ready",
    [RSRE_KUBE_NODE_DISK_PRESSURE] = "DiskPressure",
    [RSRE_KUBE_NODE_MEMORY_PRESSURE] = "MemoryPressure",
    [RSRE_KUBE_NODE_PID_PRESSURE] = "PIDPressure",
    [RSRE_KUBE_NODE_NETWORK_UNAVAILABLE] = "NetworkUnavailable",
};

const char *rsre_kube_node_cond_name(enum rsre_kube_node_cond c) {
    return (unsigned)c < RSRE_KUBE_NODE_NCOND ? cond_names[c] : "";
}

void rsre_kube_node_free(struct rsre_kube_node *n) {
    if (!n) {
        return;
    }
    for (int i = 0; i < RSRE_KUBE_NODE_NCOND; i++) {
        free(n->cond[i].message);
    }
    free(n->taints);
    free(n->addresses);
    free(n);
}

static int decode_condition(struct ectx *e, const json_t *c, const char *pre,
                            struct rsre_kube_condition *out) {
    char status[RSRE_KUBE_KIND_LEN];
    int rc;
    if ((rc = get_str(e, c, "status", pre, status, sizeof(status), TEXT)) ||
        (rc = get_str(e, c, "reason", pre, out->reason, sizeof(out->reason), TEXT)) ||
        (rc = get_text_dup(e, c, "message", pre, &out->message, RSRE_KUBE_MESSAGE_MAX)) ||
        (rc = get_time(e, c, "lastTransitionTime", pre, &out->last_transition_ms)) ||
        (rc = get_time(e, c, "lastHeartbeatTime", pre, &out->last_heartbeat_ms))) {
        return rc;
    }
    if (strcmp(status, "True") == 0) {
        out->status = RSRE_KUBE_COND_TRUE;
    } else if (strcmp(status, "False") == 0) {
        out->status = RSRE_KUBE_COND_FALSE;
    } else {
        out->status = RSRE_KUBE_COND_UNKNOWN;
    }
    return 0;
}

static enum rsre_kube_taint_effect taint_effect(const char *s) {
    if (strcmp(s, "NoSchedule") == 0) {
        return RSRE_KUBE_TAINT_NO_SCHEDULE;
    }
    if (strcmp(s, "PreferNoSchedule") == 0) {
        return RSRE_KUBE_TAINT_PREFER_NO_SCHEDULE;
    }
    return RSRE_KUBE_TAINT_NO_EXECUTE;
}

static int decode_node(struct ectx *e, const json_t *obj, struct rsre_kube_node *n) {
    int rc = rsre_kube_meta_decode(obj, &n->meta, e->err, e->len);
    if (rc != 0) {
        return rc;
    }
    const json_t *spec, *status;
    if ((rc = get_obj(e, obj, "spec", "", &spec)) ||
        (rc = get_obj(e, obj, "status", "", &status))) {
        return rc;
    }
    if (spec) {
        const json_t *taints;
        if ((rc = get_bool(e, spec, "unschedulable", "spec", &n->unschedulable)) ||
            (rc = get_str(e, spec, "providerID", "spec", n->provider_id, sizeof(n->provider_id),
                          ID)) ||
            (rc = get_arr(e, spec, "taints", "spec", RSRE_KUBE_MAX_TAINTS, &taints))) {
            return rc;
        }
        size_t nt = taints ? json_array_size(taints) : 0;
        if (nt > 0) {
            n->taints = calloc(nt, sizeof(*n->taints));
            if (!n->taints) {
                return failf(e, -ENOMEM, "spec.taints", NULL, "out of memory");
            }
        }
        for (size_t i = 0; i < nt; i++) {
            char pre[48];
            snprintf(pre, sizeof(pre), "spec.taints[%zu]", i);
            const json_t *t = json_array_get(taints, i);
            struct rsre_kube_taint *tt = &n->taints[n->ntaints];
            char effect[RSRE_KUBE_KIND_LEN];
            if (!json_is_object(t)) {
                return failf(e, RSRE_EINVALID, pre, NULL, "expected an object, got %s", jtype(t));
            }
            if ((rc = get_str(e, t, "key", pre, tt->key, sizeof(tt->key), ID)) ||
                (rc = get_str(e, t, "value", pre, tt->value, sizeof(tt->value), ID)) ||
                (rc = get_str(e, t, "effect", pre, effect, sizeof(effect), ID)) ||
                (rc = get_time(e, t, "timeAdded", pre, &tt->time_added_ms))) {
                return rc;
            }
            if (!tt->key[0]) {
                return failf(e, RSRE_EINVALID, pre, "key", "required");
            }
            if (!effect[0]) {
                return failf(e, RSRE_EINVALID, pre, "effect", "required");
            }
            tt->effect = taint_effect(effect);
            n->ntaints++;
        }
    }
    if (status) {
        const json_t *conds, *addrs;
        if ((rc = get_arr(e, status, "conditions", "status", RSRE_KUBE_MAX_CONDITIONS, &conds)) ||
            (rc = get_arr(e, status, "addresses", "status", RSRE_KUBE_MAX_ADDRESSES, &addrs))) {
            return rc;
        }
        for (size_t i = 0; conds && i < json_array_size(conds); i++) {
            char pre[48];
            snprintf(pre, sizeof(pre), "status.conditions[%zu]", i);
            const json_t *c = json_array_get(conds, i);
            if (!json_is_object(c)) {
                return failf(e, RSRE_EINVALID, pre, NULL, "expected an object, got %s", jtype(c));
            }
            char type[RSRE_KUBE_KIND_LEN];
            if ((rc = get_str(e, c, "type", pre, type, sizeof(type), TEXT))) {
                return rc;
            }
            for (int k = 0; k < RSRE_KUBE_NODE_NCOND; k++) {
                if (strcmp(type, cond_names[k]) == 0) {
                    struct rsre_kube_condition *dst = &n->cond[k];
                    /* A repeated type: the last one wins, like a Go map would. */
                    free(dst->message);
                    memset(dst, 0, sizeof(*dst));
                    if ((rc = decode_condition(e, c, pre, dst))) {
                        return rc;
                    }
                    break;
                }
            }
        }
        size_t na = addrs ? json_array_size(addrs) : 0;
        if (na > 0) {
            n->addresses = calloc(na, sizeof(*n->addresses));
            if (!n->addresses) {
                return failf(e, -ENOMEM, "status.addresses", NULL, "out of memory");
            }
        }
        for (size_t i = 0; i < na; i++) {
            char pre[48];
            snprintf(pre, sizeof(pre), "status.addresses[%zu]", i);
            const json_t *a = json_array_get(addrs, i);
            struct rsre_kube_address *aa = &n->addresses[n->naddresses];
            if (!json_is_object(a)) {
                return failf(e, RSRE_EINVALID, pre, NULL, "expected an object, got %s", jtype(a));
            }
            if ((rc = get_str(e, a, "type", pre, aa->type, sizeof(aa->type), ID)) ||
                (rc = get_str(e, a, "address", pre, aa->address, sizeof(aa->address), ID))) {
                return rc;
            }
            n->naddresses++;
        }
    }
    return 0;
}

int rsre_kube_node_decode(const json_t *obj, struct rsre_kube_node **out, char *err,
                          size_t err_len) {
    struct ectx e = {err, err_len};
    *out = NULL;
    struct rsre_kube_node *n = calloc(1, sizeof(*n));
    if (!n) {
        return failf(&e, -ENOMEM, "node", NULL, "out of memory");
    }
    int rc = decode_node(&e, obj, n);
    if (rc != 0) {
        rsre_kube_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

static int streq_null(const char *a, const char *b) {
    return strcmp(a ? a : "", b ? b : "") == 0;
}

int rsre_kube_node_same_state(const struct rsre_kube_node *a, const struct rsre_kube_node *b) {
    if (a->unschedulable != b->unschedulable || a->ntaints != b->ntaints) {
        return 0;
    }
    for (int i = 0; i < RSRE_KUBE_NODE_NCOND; i++) {
        const struct rsre_kube_condition *x = &a->cond[i], *y = &b->cond[i];
        if (x->status != y->status || strcmp(x->reason, y->reason) != 0 ||
            !streq_null(x->message, y->message) || x->last_transition_ms != y->last_transition_ms) {
            return 0;
        }
    }
    for (size_t i = 0; i < a->ntaints; i++) {
        const struct rsre_kube_taint *x = &a->taints[i], *y = &b->taints[i];
        if (strcmp(x->key, y->key) != 0 || strcmp(x->value, y->value) != 0 ||
            x->effect != y->effect || x->time_added_ms != y->time_added_ms) {
            return 0;
        }
    }
    return 1;
}

/* ---- Pod ---------------------------------------------------------------------------------- */

void rsre_kube_pod_free(struct rsre_kube_pod *p) {
    if (!p) {
        return;
    }
    for (size_t i = 0; i < p->ncontainers; i++) {
        free(p->containers[i].image);
        free(p->containers[i].message);
    }
    free(p->containers);
    free(p->message);
    free(p);
}

static enum rsre_kube_phase phase_of(const char *s) {
    static const struct {
        const char *name;
        enum rsre_kube_phase phase;
    } map[] = {
        {"Pending", RSRE_KUBE_PHASE_PENDING},
        {"Running", RSRE_KUBE_PHASE_RUNNING},
        {"Succeeded", RSRE_KUBE_PHASE_SUCCEEDED},
        {"Failed", RSRE_KUBE_PHASE_FAILED},
    };
    if (!*s) {
        return RSRE_KUBE_PHASE_UNSET;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(s, map[i].name) == 0) {
            return map[i].phase;
        }
    }
    return RSRE_KUBE_PHASE_UNKNOWN;
}

/* Finds the image of container `name` in spec.containers / spec.initContainers. */
static const char *spec_image(const json_t *spec, const char *list, const char *name) {
    const json_t *arr = spec ? json_object_get(spec, list) : NULL;
    if (!json_is_array(arr)) {
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(arr) && i < RSRE_KUBE_MAX_CONTAINERS; i++) {
        const json_t *c = json_array_get(arr, i);
        const json_t *n = json_object_get(c, "name");
        if (json_is_string(n) && strcmp(json_string_value(n), name) == 0) {
            const json_t *img = json_object_get(c, "image");
            return json_is_string(img) ? json_string_value(img) : NULL;
        }
    }
    return NULL;
}

static int decode_container(struct ectx *e, const json_t *c, const char *pre, const json_t *spec,
                            int init, struct rsre_kube_container *out) {
    int rc;
    long long restarts = 0;
    out->init = init;
    if (!json_is_object(c)) {
        return failf(e, RSRE_EINVALID, pre, NULL, "expected an object, got %s", jtype(c));
    }
    if ((rc = get_str(e, c, "name", pre, out->name, sizeof(out->name), NAME)) ||
        (rc = get_int(e, c, "restartCount", pre, 0, INT32_MAX, &restarts)) ||
        (rc = get_bool(e, c, "ready", pre, &out->ready))) {
        return rc;
    }
    out->restart_count = (int32_t)restarts;
    /* The spec's image is what the user asked for; the status may hold a resolved digest. */
    const char *img = spec_image(spec, init ? "initContainers" : "containers", out->name);
    if (img) {
        size_t len = utf8_cut(img, strlen(img), RSRE_KUBE_IMAGE_MAX);
        out->image = strndup(img, len);
        if (!out->image) {
            return failf(e, -ENOMEM, pre, "image", "out of memory");
        }
    } else if ((rc = get_text_dup(e, c, "image", pre, &out->image, RSRE_KUBE_IMAGE_MAX))) {
        return rc;
    }
    const json_t *state;
    char spre[96];
    snprintf(spre, sizeof(spre), "%s.state", pre);
    if ((rc = get_obj(e, c, "state", pre, &state)) || !state) {
        return rc;
    }
    const json_t *w, *r, *t;
    if ((rc = get_obj(e, state, "waiting", spre, &w)) ||
        (rc = get_obj(e, state, "running", spre, &r)) ||
        (rc = get_obj(e, state, "terminated", spre, &t))) {
        return rc;
    }
    char ipre[112];
    if (w) {
        out->state = RSRE_KUBE_CSTATE_WAITING;
        snprintf(ipre, sizeof(ipre), "%s.waiting", spre);
        if ((rc = get_str(e, w, "reason", ipre, out->reason, sizeof(out->reason), TEXT)) ||
            (rc = get_text_dup(e, w, "message", ipre, &out->message, RSRE_KUBE_MESSAGE_MAX))) {
            return rc;
        }
    } else if (t) {
        long long code = 0;
        out->state = RSRE_KUBE_CSTATE_TERMINATED;
        snprintf(ipre, sizeof(ipre), "%s.terminated", spre);
        if ((rc = get_str(e, t, "reason", ipre, out->reason, sizeof(out->reason), TEXT)) ||
            (rc = get_text_dup(e, t, "message", ipre, &out->message, RSRE_KUBE_MESSAGE_MAX)) ||
            (rc = get_int(e, t, "exitCode", ipre, INT32_MIN, INT32_MAX, &code))) {
            return rc;
        }
        out->exit_code = (int32_t)code;
    } else if (r) {
        out->state = RSRE_KUBE_CSTATE_RUNNING;
    }
    return 0;
}

static int decode_pod(struct ectx *e, const json_t *obj, struct rsre_kube_pod *p) {
    int rc = rsre_kube_meta_decode(obj, &p->meta, e->err, e->len);
    if (rc != 0) {
        return rc;
    }
    const json_t *spec, *status;
    if ((rc = get_obj(e, obj, "spec", "", &spec)) ||
        (rc = get_obj(e, obj, "status", "", &status))) {
        return rc;
    }
    if (spec &&
        (rc = get_str(e, spec, "nodeName", "spec", p->node_name, sizeof(p->node_name), NAME))) {
        return rc;
    }
    if (!status) {
        return 0;
    }
    char phase[RSRE_KUBE_KIND_LEN];
    const json_t *init, *regular;
    if ((rc = get_str(e, status, "phase", "status", phase, sizeof(phase), TEXT)) ||
        (rc = get_str(e, status, "reason", "status", p->reason, sizeof(p->reason), TEXT)) ||
        (rc = get_text_dup(e, status, "message", "status", &p->message, RSRE_KUBE_MESSAGE_MAX)) ||
        (rc = get_time(e, status, "startTime", "status", &p->start_ms)) ||
        (rc = get_arr(e, status, "initContainerStatuses", "status", RSRE_KUBE_MAX_CONTAINERS,
                      &init)) ||
        (rc = get_arr(e, status, "containerStatuses", "status", RSRE_KUBE_MAX_CONTAINERS,
                      &regular))) {
        return rc;
    }
    p->phase = phase_of(phase);
    size_t ni = init ? json_array_size(init) : 0, nr = regular ? json_array_size(regular) : 0;
    if (ni + nr > RSRE_KUBE_MAX_CONTAINERS) {
        return failf(e, RSRE_ELIMIT, "status", "containerStatuses",
                     "%zu container statuses, limit is %d", ni + nr, RSRE_KUBE_MAX_CONTAINERS);
    }
    if (ni + nr == 0) {
        return 0;
    }
    p->containers = calloc(ni + nr, sizeof(*p->containers));
    if (!p->containers) {
        return failf(e, -ENOMEM, "status", "containerStatuses", "out of memory");
    }
    for (size_t i = 0; i < ni + nr; i++) {
        int is_init = i < ni;
        size_t idx = is_init ? i : i - ni;
        char pre[64];
        snprintf(pre, sizeof(pre), "status.%s[%zu]",
                 is_init ? "initContainerStatuses" : "containerStatuses", idx);
        const json_t *c = json_array_get(is_init ? init : regular, idx);
        /* Count it first so a failure half-way frees what was allocated. */
        p->ncontainers++;
        if ((rc = decode_container(e, c, pre, spec, is_init, &p->containers[i]))) {
            return rc;
        }
    }
    return 0;
}

int rsre_kube_pod_decode(const json_t *obj, struct rsre_kube_pod **out, char *err, size_t err_len) {
    struct ectx e = {err, err_len};
    *out = NULL;
    struct rsre_kube_pod *p = calloc(1, sizeof(*p));
    if (!p) {
        return failf(&e, -ENOMEM, "pod", NULL, "out of memory");
    }
    int rc = decode_pod(&e, obj, p);
    if (rc != 0) {
        rsre_kube_pod_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int rsre_kube_pod_finished(const struct rsre_kube_pod *p) {
    return p->phase == RSRE_KUBE_PHASE_SUCCEEDED || p->phase == RSRE_KUBE_PHASE_FAILED;
}

int rsre_kube_pod_evicted(const struct rsre_kube_pod *p) {
    return p->phase == RSRE_KUBE_PHASE_FAILED && strcmp(p->reason, "Evicted") == 0;
}

void rsre_kube_pod_count(const struct rsre_kube_pod *p, struct rsre_kube_pod_counts *c) {
    switch (p->phase) {
    case RSRE_KUBE_PHASE_UNSET:
    case RSRE_KUBE_PHASE_PENDING:
        c->pending++;
        break;
    case RSRE_KUBE_PHASE_RUNNING:
        c->running++;
        break;
    case RSRE_KUBE_PHASE_SUCCEEDED:
        c->succeeded++;
        break;
    case RSRE_KUBE_PHASE_FAILED:
        c->failed++;
        if (rsre_kube_pod_evicted(p)) {
            c->evicted++;
        }
        break;
    case RSRE_KUBE_PHASE_UNKNOWN:
        c->unknown++;
        break;
    }
    for (size_t i = 0; i < p->ncontainers; i++) {
        c->restarts_total += (uint64_t)p->containers[i].restart_count;
    }
}

enum rsre_kube_pull_reason rsre_kube_pull_reason(const char *r) {
    static const struct {
        const char *reason;
        enum rsre_kube_pull_reason kind;
    } map[] = {
        {"ErrImagePull", RSRE_KUBE_PULL_ERR_IMAGE_PULL},
        {"ImagePullBackOff", RSRE_KUBE_PULL_BACKOFF},
        {"InvalidImageName", RSRE_KUBE_PULL_INVALID_IMAGE_NAME},
        {"ErrImageNeverPull", RSRE_KUBE_PULL_OTHER},
        {"ErrImageInspect", RSRE_KUBE_PULL_OTHER},
        {"RegistryUnavailable", RSRE_KUBE_PULL_OTHER},
        {"SignatureValidationFailed", RSRE_KUBE_PULL_OTHER},
    };
    if (!r) {
        return RSRE_KUBE_PULL_NONE;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(r, map[i].reason) == 0) {
            return map[i].kind;
        }
    }
    return RSRE_KUBE_PULL_NONE;
}

/* ---- Event -------------------------------------------------------------------------------- */

void rsre_kube_event_free(struct rsre_kube_event *ev) {
    if (!ev) {
        return;
    }
    free(ev->message);
    free(ev);
}

static int decode_event(struct ectx *e, const json_t *obj, struct rsre_kube_event *ev) {
    int rc = rsre_kube_meta_decode(obj, &ev->meta, e->err, e->len);
    if (rc != 0) {
        return rc;
    }
    const json_t *io, *src;
    long long count = 0;
    if ((rc = get_obj(e, obj, "involvedObject", "", &io)) ||
        (rc = get_obj(e, obj, "source", "", &src)) ||
        (rc = get_str(e, obj, "type", "", ev->type, sizeof(ev->type), TEXT)) ||
        (rc = get_str(e, obj, "reason", "", ev->reason, sizeof(ev->reason), TEXT)) ||
        (rc = get_text_dup(e, obj, "message", "", &ev->message, RSRE_KUBE_MESSAGE_MAX)) ||
        (rc = get_int(e, obj, "count", "", 0, INT32_MAX, &count)) ||
        (rc = get_time(e, obj, "firstTimestamp", "", &ev->first_ms)) ||
        (rc = get_time(e, obj, "lastTimestamp", "", &ev->last_ms)) ||
        (rc = get_time(e, obj, "eventTime", "", &ev->event_ms)) ||
        (rc = get_str(e, obj, "reportingComponent", "", ev->source_component,
                      sizeof(ev->source_component), TEXT))) {
        return rc;
    }
    ev->count = (int32_t)count;
    if (io) {
        const char *P = "involvedObject";
        if ((rc = get_str(e, io, "kind", P, ev->involved_kind, sizeof(ev->involved_kind), ID)) ||
            (rc = get_str(e, io, "namespace", P, ev->involved_ns, sizeof(ev->involved_ns), NAME)) ||
            (rc = get_str(e, io, "name", P, ev->involved_name, sizeof(ev->involved_name), NAME)) ||
            (rc = get_str(e, io, "uid", P, ev->involved_uid, sizeof(ev->involved_uid), ID))) {
            return rc;
        }
    }
    if (src) {
        char comp[RSRE_KUBE_REASON_LEN];
        if ((rc = get_str(e, src, "component", "source", comp, sizeof(comp), TEXT)) ||
            (rc = get_str(e, src, "host", "source", ev->source_host, sizeof(ev->source_host),
                          TEXT))) {
            return rc;
        }
        if (comp[0]) {
            memcpy(ev->source_component, comp, sizeof(comp));
        }
    }
    return 0;
}

int rsre_kube_event_decode(const json_t *obj, struct rsre_kube_event **out, char *err,
                           size_t err_len) {
    struct ectx e = {err, err_len};
    *out = NULL;
    struct rsre_kube_event *ev = calloc(1, sizeof(*ev));
    if (!ev) {
        return failf(&e, -ENOMEM, "event", NULL, "out of memory");
    }
    int rc = decode_event(&e, obj, ev);
    if (rc != 0) {
        rsre_kube_event_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

/* ---- lists and watch streams -------------------------------------------------------------- */

void rsre_kube_list_clear(struct rsre_kube_list *l) {
    json_decref(l->root);
    memset(l, 0, sizeof(*l));
}

int rsre_kube_list_parse(const char *buf, size_t len, const char *kind, struct rsre_kube_list *l,
                         char *err, size_t err_len) {
    struct ectx e = {err, err_len};
    memset(l, 0, sizeof(*l));
    int rc = rsre_kube_json_load(buf, len, &l->root, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (!json_is_object(l->root)) {
        rc = failf(&e, RSRE_EINVALID, "list", NULL, "expected an object, got %s", jtype(l->root));
        goto fail;
    }
    char k[RSRE_KUBE_KIND_LEN];
    if ((rc = get_str(&e, l->root, "kind", "", k, sizeof(k), ID))) {
        goto fail;
    }
    if (kind && strcmp(k, kind) != 0) {
        rc = failf(&e, RSRE_EINVALID, "kind", NULL, "expected \"%s\", got \"%s\"", kind, k);
        goto fail;
    }
    const json_t *md;
    if ((rc = get_obj(&e, l->root, "metadata", "", &md))) {
        goto fail;
    }
    if (md && ((rc = get_str(&e, md, "resourceVersion", "metadata", l->rv, sizeof(l->rv), ID)) ||
               (rc = get_str(&e, md, "continue", "metadata", l->cont, sizeof(l->cont), ID)))) {
        goto fail;
    }
    json_t *items = json_object_get(l->root, "items");
    if (!items || json_is_null(items)) {
        items = json_array();
        if (!items || json_object_set_new(l->root, "items", items) != 0) {
            rc = failf(&e, -ENOMEM, "items", NULL, "out of memory");
            goto fail;
        }
    }
    if (!json_is_array(items)) {
        rc = failf(&e, RSRE_EINVALID, "items", NULL, "expected an array, got %s", jtype(items));
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(items); i++) {
        if (!json_is_object(json_array_get(items, i))) {
            char pre[48];
            snprintf(pre, sizeof(pre), "items[%zu]", i);
            rc = failf(&e, RSRE_EINVALID, pre, NULL, "expected an object, got %s",
                       jtype(json_array_get(items, i)));
            goto fail;
        }
    }
    l->items = items;
    return 0;
fail:
    rsre_kube_list_clear(l);
    return rc;
}

static const char *const watch_names[] = {
    [RSRE_KUBE_WATCH_NONE] = "",
    [RSRE_KUBE_WATCH_ADDED] = "ADDED",
    [RSRE_KUBE_WATCH_MODIFIED] = "MODIFIED",
    [RSRE_KUBE_WATCH_DELETED] = "DELETED",
    [RSRE_KUBE_WATCH_BOOKMARK] = "BOOKMARK",
    [RSRE_KUBE_WATCH_ERROR] = "ERROR",
};

const char *rsre_kube_watch_type_name(enum rsre_kube_watch_type t) {
    return (unsigned)t <= RSRE_KUBE_WATCH_ERROR ? watch_names[t] : "";
}

void rsre_kube_watch_event_clear(struct rsre_kube_watch_event *ev) {
    json_decref(ev->object);
    memset(ev, 0, sizeof(*ev));
}

int rsre_kube_watch_parse(const char *line, size_t len, struct rsre_kube_watch_event *ev, char *err,
                          size_t err_len) {
    struct ectx e = {err, err_len};
    memset(ev, 0, sizeof(*ev));
    json_t *root;
    int rc = rsre_kube_json_load(line, len, &root, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (!json_is_object(root)) {
        rc = failf(&e, RSRE_EINVALID, "event", NULL, "expected an object, got %s", jtype(root));
        goto out;
    }
    char type[RSRE_KUBE_KIND_LEN];
    if ((rc = get_str(&e, root, "type", "", type, sizeof(type), ID))) {
        goto out;
    }
    for (int t = RSRE_KUBE_WATCH_ADDED; t <= RSRE_KUBE_WATCH_ERROR; t++) {
        if (strcmp(type, watch_names[t]) == 0) {
            ev->type = (enum rsre_kube_watch_type)t;
        }
    }
    if (ev->type == RSRE_KUBE_WATCH_NONE) {
        rc = failf(&e, RSRE_EINVALID, "type", NULL, "unknown watch event type \"%s\"", type);
        goto out;
    }
    json_t *obj = json_object_get(root, "object");
    if (!json_is_object(obj)) {
        rc = failf(&e, RSRE_EINVALID, "object", NULL, "expected an object, got %s",
                   obj ? jtype(obj) : "nothing");
        goto out;
    }
    if (ev->type == RSRE_KUBE_WATCH_ERROR) {
        if ((rc = rsre_kube_status_decode(obj, &ev->status, err, err_len))) {
            goto out;
        }
    } else {
        const json_t *md;
        if ((rc = get_obj(&e, obj, "metadata", "object", &md))) {
            goto out;
        }
        if (md && (rc = get_str(&e, md, "resourceVersion", "object.metadata", ev->rv,
                                sizeof(ev->rv), ID))) {
            goto out;
        }
    }
    ev->object = json_incref(obj);
out:
    json_decref(root);
    if (rc != 0) {
        rsre_kube_watch_event_clear(ev);
    }
    return rc;
}
