/*
 * The evidence classifier (engine/classify.h): envelope and field checks, the value walker,
 * term matching, row evaluation and decision, and the line-streaming helper. The patterns
 * themselves are data in classify_patterns.c.
 */
#include "engine/classify.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* ---- names --------------------------------------------------------------------------------- */

static const char *const kind_names[RSRE_REC_KIND_COUNT] = {
    [RSRE_REC_K8S_EVENT] = "k8s_event",
    [RSRE_REC_NODE] = "node",
    [RSRE_REC_POD] = "pod",
    [RSRE_REC_LOG_LINE] = "log_line",
    [RSRE_REC_HTTP_RESPONSE] = "http_response",
    [RSRE_REC_HELM_RELEASE] = "helm_release",
    [RSRE_REC_PROBE_RESULT] = "probe_result",
    [RSRE_REC_CHAT_DELIVERY] = "chat_delivery",
};

const char *rsre_record_kind_name(enum rsre_record_kind k) {
    return (unsigned)k < RSRE_REC_KIND_COUNT ? kind_names[k] : "unknown";
}

int rsre_record_kind_parse(const char *s, enum rsre_record_kind *out) {
    for (int i = 0; s && i < RSRE_REC_KIND_COUNT; i++) {
        if (!strcmp(s, kind_names[i])) {
            *out = (enum rsre_record_kind)i;
            return 0;
        }
    }
    return RSRE_ENOTFOUND;
}

/* ---- small helpers ------------------------------------------------------------------------- */

static unsigned char lc(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int is_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static void lower_into(char *dst, const char *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        dst[i] = (char)lc((unsigned char)src[i]);
    }
    dst[n] = '\0';
}

static const char *jtype(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static int fail(struct rsre_classification *out, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct rsre_classification *out, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof(out->error), fmt, ap);
    va_end(ap);
    out->incident = NULL;
    out->rule = NULL;
    return rc;
}

static void reset(struct rsre_classification *out) {
    memset(out, 0, sizeof(*out));
    out->kind = RSRE_REC_UNKNOWN;
    out->severity = RSRE_SEV_INFO;
    out->strength = RSRE_EVIDENCE_WEAK;
}

/* ---- terms --------------------------------------------------------------------------------- */

enum term_op { OP_SUB, OP_TOK, OP_EQ, OP_PRE, OP_SUF, OP_LT, OP_LE, OP_GT, OP_GE };

#define TERM_MAX 255 /* bytes of a term's text */

struct term {
    enum term_op op;
    char text[TERM_MAX + 1]; /* lower-cased */
    size_t len;
    double num;
};

/* Parses a term (see classify.h). Returns 0 or -1 when malformed. */
static int term_parse(const char *s, struct term *t) {
    t->op = OP_SUB;
    if (s[0] == '~') {
        t->op = OP_TOK, s++;
    } else if (s[0] == '=') {
        t->op = OP_EQ, s++;
    } else if (s[0] == '^') {
        t->op = OP_PRE, s++;
    } else if (s[0] == '$') {
        t->op = OP_SUF, s++;
    } else if (s[0] == '\\') {
        s++;
    } else if (s[0] == '#') {
        s++;
        if (s[0] == '<' && s[1] == '=') {
            t->op = OP_LE, s += 2;
        } else if (s[0] == '>' && s[1] == '=') {
            t->op = OP_GE, s += 2;
        } else if (s[0] == '<') {
            t->op = OP_LT, s++;
        } else if (s[0] == '>') {
            t->op = OP_GT, s++;
        } else {
            return -1;
        }
        char *end;
        errno = 0;
        t->num = strtod(s, &end);
        if (end == s || *end != '\0' || errno) {
            return -1;
        }
    }
    size_t n = strlen(s);
    if (n > TERM_MAX || (n == 0 && t->op != OP_EQ)) {
        return -1;
    }
    lower_into(t->text, s, n);
    t->len = n;
    return 0;
}

/* Parses a value as a whole number (JSON numbers and numeric strings). */
static int value_number(const char *v, size_t len, double *out) {
    char buf[64];
    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    *out = strtod(buf, &end);
    return (end == buf || *end != '\0' || errno) ? -1 : 0;
}

/* Next occurrence of the term at or after `from` in lower-cased `v`; token terms need word
 * boundaries. Returns the offset or -1. */
static long find_from(const char *v, size_t len, size_t from, const struct term *t) {
    while (from <= len && len - from >= t->len) {
        const char *p = memmem(v + from, len - from, t->text, t->len);
        if (!p) {
            return -1;
        }
        size_t off = (size_t)(p - v);
        if (t->op != OP_TOK ||
            ((off == 0 || !is_word((unsigned char)v[off - 1])) &&
             (off + t->len == len || !is_word((unsigned char)v[off + t->len])))) {
            return (long)off;
        }
        from = off + 1;
    }
    return -1;
}

/* Whether lower-cased value `v` satisfies the term; the match position goes to off and mlen. */
static int term_match(const char *v, size_t len, const struct term *t, size_t *off, size_t *mlen) {
    double x;
    *off = 0;
    *mlen = len;
    switch (t->op) {
    case OP_SUB:
    case OP_TOK: {
        long o = find_from(v, len, 0, t);
        if (o < 0) {
            return 0;
        }
        *off = (size_t)o;
        *mlen = t->len;
        return 1;
    }
    case OP_EQ:
        return len == t->len && memcmp(v, t->text, len) == 0;
    case OP_PRE:
        *mlen = t->len;
        return len >= t->len && memcmp(v, t->text, t->len) == 0;
    case OP_SUF:
        *off = len - (len >= t->len ? t->len : 0);
        *mlen = t->len;
        return len >= t->len && memcmp(v + len - t->len, t->text, t->len) == 0;
    case OP_LT:
        return value_number(v, len, &x) == 0 && x < t->num;
    case OP_LE:
        return value_number(v, len, &x) == 0 && x <= t->num;
    case OP_GT:
        return value_number(v, len, &x) == 0 && x > t->num;
    case OP_GE:
        return value_number(v, len, &x) == 0 && x >= t->num;
    }
    return 0;
}

/* Non-overlapping occurrences of a substring or token term, counting up to `cap`. */
static unsigned term_count(const char *v, size_t len, const struct term *t, unsigned cap) {
    unsigned n = 0;
    size_t from = 0;
    if (t->op != OP_SUB && t->op != OP_TOK) {
        size_t o, l;
        return (unsigned)term_match(v, len, t, &o, &l);
    }
    while (n < cap) {
        long o = find_from(v, len, from, t);
        if (o < 0) {
            break;
        }
        n++;
        from = (size_t)o + (t->len ? t->len : 1);
    }
    return n;
}

/* ---- the record context and the value walker ------------------------------------------------ */

#define LCACHE_MAX 128   /* lower-cased copies of JSON strings kept per record */
#define SYNTH_MAX 640    /* bytes of a synthesized value (@condition, @taint) */
#define PATH_MAX_LEN 160 /* bytes of a path */

struct lentry {
    const json_t *key;
    char *lower;
};

struct ctx {
    enum rsre_record_kind kind;
    const json_t *obj; /* "object" */
    struct lentry cache[LCACHE_MAX];
    size_t ncache;
    int oom;
};

/* One value handed to a visitor: raw bytes for reporting, lower-cased bytes for matching. */
struct value {
    const char *raw;
    const char *lower;
    size_t len;
};

/* Returns nonzero to stop the walk. */
typedef int (*visit_fn)(struct ctx *c, const struct value *v, void *arg);

static void ctx_clear(struct ctx *c) {
    for (size_t i = 0; i < c->ncache; i++) {
        free(c->cache[i].lower);
    }
    c->ncache = 0;
}

/* Visits a JSON leaf: strings (lower-cased once per record), numbers, booleans. */
static int visit_leaf(struct ctx *c, const json_t *j, visit_fn fn, void *arg) {
    char buf[64];
    struct value v;
    if (json_is_string(j)) {
        v.raw = json_string_value(j);
        v.len = json_string_length(j);
        for (size_t i = 0; i < c->ncache; i++) {
            if (c->cache[i].key == j) {
                v.lower = c->cache[i].lower;
                return fn(c, &v, arg);
            }
        }
        char *low = malloc(v.len + 1);
        if (!low) {
            c->oom = 1;
            return 1;
        }
        lower_into(low, v.raw, v.len);
        v.lower = low;
        if (c->ncache < LCACHE_MAX) {
            c->cache[c->ncache].key = j;
            c->cache[c->ncache++].lower = low;
            return fn(c, &v, arg);
        }
        int r = fn(c, &v, arg);
        free(low);
        return r;
    }
    if (json_is_integer(j)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(j));
    } else if (json_is_real(j)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(j));
    } else if (json_is_boolean(j)) {
        snprintf(buf, sizeof(buf), "%s", json_is_true(j) ? "true" : "false");
    } else {
        return 0; /* null, objects and arrays are not values */
    }
    v.raw = v.lower = buf;
    v.len = strlen(buf);
    return fn(c, &v, arg);
}

/* Walks `path` (dotted keys, "[]" steps into arrays) from node j. */
static int walk(struct ctx *c, const json_t *j, const char *path, visit_fn fn, void *arg) {
    if (!j || c->oom) {
        return c->oom;
    }
    if (*path == '\0') {
        return visit_leaf(c, j, fn, arg);
    }
    const char *dot = strchr(path, '.');
    size_t seglen = dot ? (size_t)(dot - path) : strlen(path);
    const char *rest = dot ? dot + 1 : path + seglen;
    int arr = seglen >= 2 && path[seglen - 2] == '[' && path[seglen - 1] == ']';
    size_t keylen = arr ? seglen - 2 : seglen;
    char key[PATH_MAX_LEN];
    if (keylen >= sizeof(key) || !json_is_object(j)) {
        return 0;
    }
    memcpy(key, path, keylen);
    key[keylen] = '\0';
    const json_t *next = json_object_get(j, key);
    if (!arr) {
        return walk(c, next, rest, fn, arg);
    }
    if (!json_is_array(next)) {
        return 0;
    }
    for (size_t i = 0; i < json_array_size(next); i++) {
        int r = walk(c, json_array_get(next, i), rest, fn, arg);
        if (r) {
            return r;
        }
    }
    return 0;
}

static int visit_synth(struct ctx *c, const char *s, visit_fn fn, void *arg) {
    char low[SYNTH_MAX];
    size_t n = strlen(s);
    lower_into(low, s, n);
    struct value v = {s, low, n};
    return fn(c, &v, arg);
}

static const char *sget(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Free-text paths per kind (the @text virtual field). */
static const char *const text_paths[RSRE_REC_KIND_COUNT][8] = {
    [RSRE_REC_K8S_EVENT] = {"message", NULL},
    [RSRE_REC_NODE] = {"status.conditions[].message", NULL},
    [RSRE_REC_POD] = {"status.message", "status.containerStatuses[].state.waiting.message",
                      "status.containerStatuses[].state.terminated.message",
                      "status.initContainerStatuses[].state.waiting.message",
                      "status.initContainerStatuses[].state.terminated.message", NULL},
    [RSRE_REC_LOG_LINE] = {"line", NULL},
    [RSRE_REC_HTTP_RESPONSE] = {"body", NULL},
    [RSRE_REC_HELM_RELEASE] = {"info.description", NULL},
    [RSRE_REC_PROBE_RESULT] = {"error", NULL},
    [RSRE_REC_CHAT_DELIVERY] = {"body", NULL},
};

static const char *const virtual_fields[] = {"@text", "@condition", "@taint", "@status_mismatch"};

/* Visits every value of a field (path or virtual field). Returns nonzero if a visitor stopped. */
static int visit_field(struct ctx *c, const char *field, visit_fn fn, void *arg) {
    char buf[SYNTH_MAX];
    if (field[0] != '@') {
        return walk(c, c->obj, field, fn, arg);
    }
    if (!strcmp(field, "@text")) {
        for (const char *const *p = text_paths[c->kind]; *p; p++) {
            int r = walk(c, c->obj, *p, fn, arg);
            if (r) {
                return r;
            }
        }
        if (c->kind == RSRE_REC_PROBE_RESULT && !json_is_string(json_object_get(c->obj, "error"))) {
            return visit_synth(c, "", fn, arg); /* a failed probe may carry no text */
        }
        return 0;
    }
    if (!strcmp(field, "@condition") && c->kind == RSRE_REC_NODE) {
        const json_t *conds = json_object_get(json_object_get(c->obj, "status"), "conditions");
        for (size_t i = 0; i < json_array_size(conds); i++) {
            const json_t *cd = json_array_get(conds, i);
            snprintf(buf, sizeof(buf), "%.200s=%.200s", sget(cd, "type"), sget(cd, "status"));
            int r = visit_synth(c, buf, fn, arg);
            if (r) {
                return r;
            }
        }
        return 0;
    }
    if (!strcmp(field, "@taint") && c->kind == RSRE_REC_NODE) {
        const json_t *taints = json_object_get(json_object_get(c->obj, "spec"), "taints");
        for (size_t i = 0; i < json_array_size(taints); i++) {
            const json_t *t = json_array_get(taints, i);
            snprintf(buf, sizeof(buf), "%.400s:%.100s", sget(t, "key"), sget(t, "effect"));
            int r = visit_synth(c, buf, fn, arg);
            if (r) {
                return r;
            }
        }
        return 0;
    }
    if (!strcmp(field, "@status_mismatch") && c->kind == RSRE_REC_HTTP_RESPONSE) {
        const json_t *want = json_object_get(c->obj, "expected_status");
        const json_t *got = json_object_get(c->obj, "status");
        if (json_is_integer(want) && json_is_integer(got)) {
            return visit_synth(
                c, json_integer_value(want) != json_integer_value(got) ? "true" : "false", fn, arg);
        }
    }
    return 0;
}

/* ---- rows ---------------------------------------------------------------------------------- */

/* Copies a span for display: control characters become spaces; cut on a UTF-8 boundary. */
static void copy_span(char *dst, size_t cap, const char *src, size_t len) {
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80) {
            len--; /* do not end inside a multi-byte character */
        }
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    memset(dst + len, 0, cap - len); /* the whole buffer is defined: results compare bytewise */
}

struct hit {
    size_t off, len;                   /* the match within its value */
    char span[RSRE_CLASSIFY_SPAN_MAX]; /* copied at once: synthesized values do not outlive
                                          the visit */
};

struct value_arg {
    const struct rsre_classify_pattern *row;
    struct hit *hit;
    int matched;
};

/* Whether one value satisfies the row's all/any/unless/min_count; records the span. */
static int check_value(struct ctx *c, const struct value *v, void *argp) {
    struct value_arg *a = argp;
    const struct rsre_classify_pattern *row = a->row;
    struct term t;
    size_t off = 0, len = v->len, o, l;
    int have_span = 0;
    (void)c;
    for (int i = 0; i < RSRE_CLASSIFY_TERMS && row->all[i]; i++) {
        if (term_parse(row->all[i], &t) || !term_match(v->lower, v->len, &t, &o, &l)) {
            return 0;
        }
        if (i == 0 && row->min_count > 1 &&
            term_count(v->lower, v->len, &t, row->min_count) < row->min_count) {
            return 0;
        }
        if (!have_span) {
            off = o, len = l, have_span = 1;
        }
    }
    if (row->any[0]) {
        int found = 0;
        for (int i = 0; i < RSRE_CLASSIFY_TERMS && row->any[i] && !found; i++) {
            if (!term_parse(row->any[i], &t) && term_match(v->lower, v->len, &t, &o, &l)) {
                found = 1;
                if (!have_span) {
                    off = o, len = l, have_span = 1;
                }
            }
        }
        if (!found) {
            return 0;
        }
    }
    for (int i = 0; i < RSRE_CLASSIFY_TERMS && row->unless[i]; i++) {
        if (!term_parse(row->unless[i], &t) && term_match(v->lower, v->len, &t, &o, &l)) {
            return 0;
        }
    }
    copy_span(a->hit->span, sizeof(a->hit->span), v->raw + off, len);
    a->hit->off = off;
    a->hit->len = len;
    a->matched = 1;
    return 1;
}

struct where_arg {
    const struct term *t;
    int found;
};

static int check_where_value(struct ctx *c, const struct value *v, void *argp) {
    struct where_arg *a = argp;
    size_t o, l;
    (void)c;
    if (term_match(v->lower, v->len, a->t, &o, &l)) {
        a->found = 1;
        return 1;
    }
    return 0;
}

/* Splits "!path:term" into its parts. Returns 0 or -1 when malformed. */
static int where_parse(const char *w, int *neg, char *path, size_t path_cap, struct term *t) {
    *neg = w[0] == '!';
    w += *neg;
    const char *colon = strchr(w, ':');
    if (!colon || colon == w || (size_t)(colon - w) >= path_cap) {
        return -1;
    }
    memcpy(path, w, (size_t)(colon - w));
    path[colon - w] = '\0';
    return term_parse(colon + 1, t);
}

static int where_holds(struct ctx *c, const char *w) {
    char path[PATH_MAX_LEN];
    struct term t;
    int neg;
    if (where_parse(w, &neg, path, sizeof(path), &t)) {
        return 0;
    }
    struct where_arg a = {&t, 0};
    visit_field(c, path, check_where_value, &a);
    return neg ? !a.found : a.found;
}

static int row_matches(struct ctx *c, const struct rsre_classify_pattern *row, struct hit *hit) {
    if (!(row->kinds & RSRE_CLS_KIND(c->kind))) {
        return 0;
    }
    for (int i = 0; i < RSRE_CLASSIFY_TERMS && row->where[i]; i++) {
        if (!where_holds(c, row->where[i]) || c->oom) {
            return 0;
        }
    }
    struct value_arg a = {row, hit, 0};
    visit_field(c, row->field, check_value, &a);
    return a.matched && !c->oom;
}

/* Whether row a beats row b: stronger, then more severe; ties keep table order. */
static int better(const struct rsre_classify_pattern *a, const struct rsre_classify_pattern *b) {
    if (a->strength != b->strength) {
        return a->strength > b->strength;
    }
    return a->severity > b->severity;
}

/* Evaluates every row and fills the decision. Returns 0 or -ENOMEM. */
static int decide(struct ctx *c, const struct rsre_classify_pattern *rows, size_t n,
                  struct rsre_classification *out) {
    const struct rsre_classify_pattern *best = NULL, *benign = NULL;
    const struct rsre_classify_pattern *others[RSRE_CLASSIFY_ALSO_MAX * 4];
    size_t nothers = 0;
    struct hit best_hit, benign_hit, h;
    memset(&best_hit, 0, sizeof(best_hit));
    memset(&benign_hit, 0, sizeof(benign_hit));
    for (size_t i = 0; i < n; i++) {
        const struct rsre_classify_pattern *row = &rows[i];
        if (!row_matches(c, row, &h)) {
            if (c->oom) {
                return -ENOMEM;
            }
            continue;
        }
        if (!row->incident) {
            if (!benign) {
                benign = row, benign_hit = h;
            }
            continue;
        }
        out->nmatched++;
        if (!best || better(row, best)) {
            if (best && nothers < sizeof(others) / sizeof(others[0])) {
                others[nothers++] = best;
            }
            best = row, best_hit = h;
        } else if (nothers < sizeof(others) / sizeof(others[0])) {
            others[nothers++] = row;
        }
    }
    const struct rsre_classify_pattern *dec = best ? best : benign;
    const struct hit *dh = best ? &best_hit : &benign_hit;
    if (!dec) {
        return 0;
    }
    out->rule = dec->id;
    out->field = dec->field;
    out->span_offset = dh->off;
    out->span_len = dh->len;
    memcpy(out->span, dh->span, sizeof(out->span));
    if (!best) {
        return 0;
    }
    out->incident = best->incident;
    out->severity = best->severity;
    out->strength = best->strength;
    /* Other conclusions, one row per other incident, strongest first. */
    const char *seen[RSRE_CLASSIFY_ALSO_MAX];
    size_t na = 0;
    while (na < RSRE_CLASSIFY_ALSO_MAX) {
        const struct rsre_classify_pattern *pick = NULL;
        for (size_t i = 0; i < nothers; i++) {
            const struct rsre_classify_pattern *o = others[i];
            int dup = !strcmp(o->incident, best->incident);
            for (size_t k = 0; k < na && !dup; k++) {
                dup = !strcmp(seen[k], o->incident);
            }
            if (!dup && (!pick || better(o, pick))) {
                pick = o;
            }
        }
        if (!pick) {
            break;
        }
        seen[na] = pick->incident;
        out->also[na++] = pick->id;
    }
    return 0;
}

/* ---- envelope and field types ---------------------------------------------------------------- */

enum { T_STR = 1, T_INT = 2, T_REAL = 4, T_BOOL = 8, T_OBJ = 16, T_ARR = 32 };
#define T_NUM (T_INT | T_REAL)

struct schema_row {
    unsigned kinds;
    const char *path;
    unsigned types;
    int required;
    const char *const *values; /* allowed string values, NULL-terminated; NULL = any */
};

static const char *const dependencies[] = {"redis",    "nats", "minio", "registry", "ldap",
                                           "postgres", "http", "dns",   "tls",      NULL};
static const char *const channels[] = {"telegram", "whatsapp", NULL};

#define K(k) RSRE_CLS_KIND(RSRE_REC_##k)
#define CONTAINER_ROWS(arr)                                                                        \
    {K(POD), "status." arr, T_ARR, 0, NULL}, {K(POD), "status." arr "[]", T_OBJ, 0, NULL},         \
        {K(POD), "status." arr "[].name", T_STR, 0, NULL},                                         \
        {K(POD), "status." arr "[].image", T_STR, 0, NULL},                                        \
        {K(POD), "status." arr "[].ready", T_BOOL, 0, NULL},                                       \
        {K(POD), "status." arr "[].restartCount", T_INT, 0, NULL},                                 \
        {K(POD), "status." arr "[].state", T_OBJ, 0, NULL},                                        \
        {K(POD), "status." arr "[].state.waiting", T_OBJ, 0, NULL},                                \
        {K(POD), "status." arr "[].state.waiting.reason", T_STR, 0, NULL},                         \
        {K(POD), "status." arr "[].state.waiting.message", T_STR, 0, NULL},                        \
        {K(POD), "status." arr "[].state.terminated", T_OBJ, 0, NULL},                             \
        {K(POD), "status." arr "[].state.terminated.reason", T_STR, 0, NULL},                      \
        {K(POD), "status." arr "[].state.terminated.message", T_STR, 0, NULL}, {                   \
        K(POD), "status." arr "[].state.terminated.exitCode", T_INT, 0, NULL                       \
    }

/* Every field a pattern row reads, with the type the Kubernetes API or our format gives it. */
static const struct schema_row schema[] = {
    {K(K8S_EVENT), "reason", T_STR, 0, NULL},
    {K(K8S_EVENT), "message", T_STR, 0, NULL},
    {K(K8S_EVENT), "type", T_STR, 0, NULL},
    {K(K8S_EVENT), "count", T_INT, 0, NULL},
    {K(K8S_EVENT), "involvedObject", T_OBJ, 0, NULL},
    {K(K8S_EVENT), "involvedObject.kind", T_STR, 0, NULL},
    {K(K8S_EVENT), "involvedObject.name", T_STR, 0, NULL},
    {K(K8S_EVENT), "source", T_OBJ, 0, NULL},
    {K(K8S_EVENT), "source.component", T_STR, 0, NULL},
    {K(K8S_EVENT), "reportingComponent", T_STR, 0, NULL},
    {K(NODE) | K(POD) | K(K8S_EVENT), "metadata", T_OBJ, 0, NULL},
    {K(NODE) | K(POD) | K(K8S_EVENT), "metadata.name", T_STR, 0, NULL},
    {K(NODE) | K(POD), "status", T_OBJ, 0, NULL},
    {K(NODE), "status.conditions", T_ARR, 0, NULL},
    {K(NODE), "status.conditions[]", T_OBJ, 0, NULL},
    {K(NODE), "status.conditions[].type", T_STR, 0, NULL},
    {K(NODE), "status.conditions[].status", T_STR, 0, NULL},
    {K(NODE), "status.conditions[].reason", T_STR, 0, NULL},
    {K(NODE), "status.conditions[].message", T_STR, 0, NULL},
    {K(NODE), "spec", T_OBJ, 0, NULL},
    {K(NODE), "spec.unschedulable", T_BOOL, 0, NULL},
    {K(NODE), "spec.taints", T_ARR, 0, NULL},
    {K(NODE), "spec.taints[]", T_OBJ, 0, NULL},
    {K(NODE), "spec.taints[].key", T_STR, 0, NULL},
    {K(NODE), "spec.taints[].value", T_STR, 0, NULL},
    {K(NODE), "spec.taints[].effect", T_STR, 0, NULL},
    {K(POD), "metadata.ownerReferences", T_ARR, 0, NULL},
    {K(POD), "metadata.ownerReferences[]", T_OBJ, 0, NULL},
    {K(POD), "metadata.ownerReferences[].kind", T_STR, 0, NULL},
    {K(POD), "status.phase", T_STR, 0, NULL},
    {K(POD), "status.reason", T_STR, 0, NULL},
    {K(POD), "status.message", T_STR, 0, NULL},
    CONTAINER_ROWS("containerStatuses"),
    CONTAINER_ROWS("initContainerStatuses"),
    {K(LOG_LINE), "line", T_STR, 1, NULL},
    {K(LOG_LINE), "source", T_STR, 0, NULL},
    {K(HTTP_RESPONSE), "url", T_STR, 0, NULL},
    {K(HTTP_RESPONSE), "status", T_INT, 1, NULL},
    {K(HTTP_RESPONSE), "expected_status", T_INT, 0, NULL},
    {K(HTTP_RESPONSE), "body", T_STR, 0, NULL},
    {K(HELM_RELEASE), "name", T_STR, 0, NULL},
    {K(HELM_RELEASE), "namespace", T_STR, 0, NULL},
    {K(HELM_RELEASE), "version", T_INT, 0, NULL},
    {K(HELM_RELEASE), "info", T_OBJ, 1, NULL},
    {K(HELM_RELEASE), "info.status", T_STR, 1, NULL},
    {K(HELM_RELEASE), "info.description", T_STR, 0, NULL},
    {K(PROBE_RESULT), "dependency", T_STR, 1, dependencies},
    {K(PROBE_RESULT), "ok", T_BOOL, 1, NULL},
    {K(PROBE_RESULT), "error", T_STR, 0, NULL},
    {K(PROBE_RESULT), "days_to_expiry", T_NUM, 0, NULL},
    {K(CHAT_DELIVERY), "channel", T_STR, 1, channels},
    {K(CHAT_DELIVERY), "status", T_INT, 1, NULL},
    {K(CHAT_DELIVERY), "body", T_STR, 0, NULL},
};

static int type_ok(const json_t *j, unsigned types) {
    return ((types & T_STR) && json_is_string(j)) || ((types & T_INT) && json_is_integer(j)) ||
           ((types & T_REAL) && json_is_real(j)) || ((types & T_BOOL) && json_is_boolean(j)) ||
           ((types & T_OBJ) && json_is_object(j)) || ((types & T_ARR) && json_is_array(j));
}

static const char *type_word(unsigned types) {
    switch (types) {
    case T_STR:
        return "a string";
    case T_INT:
        return "an integer";
    case T_NUM:
        return "a number";
    case T_BOOL:
        return "a boolean";
    case T_OBJ:
        return "an object";
    case T_ARR:
        return "an array";
    default:
        return "a value of another type";
    }
}

/*
 * Checks one schema row below node j. `shown` is the path printed so far ("object.status").
 * Missing or null values are fine unless required (only top-level fields are required).
 */
static int check_path(const json_t *j, const char *path, const struct schema_row *row, char *shown,
                      size_t shown_len, struct rsre_classification *out) {
    const char *dot = strchr(path, '.');
    size_t seglen = dot ? (size_t)(dot - path) : strlen(path);
    int arr = seglen >= 2 && path[seglen - 2] == '[' && path[seglen - 1] == ']';
    size_t keylen = arr ? seglen - 2 : seglen;
    size_t base = strlen(shown);
    if (base + keylen + 2 >= shown_len) {
        return 0;
    }
    shown[base] = '.';
    memcpy(shown + base + 1, path, keylen);
    shown[base + 1 + keylen] = '\0';
    char key[PATH_MAX_LEN];
    memcpy(key, path, keylen);
    key[keylen] = '\0';
    const json_t *v = json_object_get(j, key);
    int rc = 0;
    if (!v || json_is_null(v)) {
        if (row->required && !dot && !arr) {
            rc = fail(out, RSRE_EINVALID, "%s: missing", shown);
        }
    } else if (arr) {
        if (!json_is_array(v)) {
            rc = fail(out, RSRE_EINVALID, "%s: expected an array, got %s", shown, jtype(v));
        }
        for (size_t i = 0; rc == 0 && json_is_array(v) && i < json_array_size(v); i++) {
            size_t b2 = strlen(shown);
            snprintf(shown + b2, shown_len - b2, "[%zu]", i);
            const json_t *e = json_array_get(v, i);
            if (!dot) {
                if (!type_ok(e, row->types)) {
                    rc = fail(out, RSRE_EINVALID, "%s: expected %s, got %s", shown,
                              type_word(row->types), jtype(e));
                }
            } else if (json_is_object(e)) {
                rc = check_path(e, dot + 1, row, shown, shown_len, out);
            }
            shown[b2] = '\0';
        }
    } else if (!dot) {
        if (!type_ok(v, row->types)) {
            rc = fail(out, RSRE_EINVALID, "%s: expected %s, got %s", shown, type_word(row->types),
                      jtype(v));
        } else if (row->values && json_is_string(v)) {
            int known = 0;
            char list[160] = "";
            for (const char *const *p = row->values; *p; p++) {
                known |= !strcmp(*p, json_string_value(v));
                size_t l = strlen(list);
                snprintf(list + l, sizeof(list) - l, "%s%s", l ? "|" : "", *p);
            }
            if (!known) {
                rc = fail(out, RSRE_EINVALID, "%s: unknown value \"%.40s\" (expected %s)", shown,
                          json_string_value(v), list);
            }
        }
    } else if (json_is_object(v)) {
        rc = check_path(v, dot + 1, row, shown, shown_len, out);
    }
    /* A non-object intermediate is reported by the row for that intermediate path. */
    shown[base] = '\0';
    return rc;
}

static int check_fields(enum rsre_record_kind kind, const json_t *obj,
                        struct rsre_classification *out) {
    char shown[512];
    for (size_t i = 0; i < sizeof(schema) / sizeof(schema[0]); i++) {
        if (!(schema[i].kinds & RSRE_CLS_KIND(kind))) {
            continue;
        }
        strcpy(shown, "object");
        int rc = check_path(obj, schema[i].path, &schema[i], shown, sizeof(shown), out);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* Rejects nesting deeper than the limit, in one linear pass over the text, before parsing. */
static int check_depth(const char *s, size_t len, struct rsre_classification *out) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') {
                i++;
            } else if (ch == '"') {
                in_str = 0;
            }
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > RSRE_CLASSIFY_MAX_DEPTH) {
                return fail(out, RSRE_ELIMIT, "JSON nested deeper than %d levels at byte %zu",
                            RSRE_CLASSIFY_MAX_DEPTH, i);
            }
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return 0;
}

/* ---- the record ---------------------------------------------------------------------------- */

int rsre__classify_record_with(const struct rsre_classify_pattern *rows, size_t n,
                               const char *json_line, size_t len, struct rsre_classification *out) {
    if (!out) {
        return -EINVAL;
    }
    reset(out);
    if (!json_line || (!rows && n)) {
        return fail(out, -EINVAL, "no input");
    }
    while (len > 0 && (json_line[len - 1] == '\n' || json_line[len - 1] == '\r')) {
        len--;
    }
    if (len > RSRE_CLASSIFY_MAX_RECORD) {
        return fail(out, RSRE_ELIMIT, "record is %zu bytes, limit is %u", len,
                    RSRE_CLASSIFY_MAX_RECORD);
    }
    int rc = check_depth(json_line, len, out);
    if (rc) {
        return rc;
    }
    json_error_t je;
    json_t *root = json_loadb(json_line, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_out_of_memory) {
            return fail(out, -ENOMEM, "out of memory parsing the record");
        }
        return fail(out, RSRE_EPARSE, "not JSON: line %d column %d: %s", je.line, je.column,
                    je.text);
    }
    struct ctx c = {0};
    if (!json_is_object(root)) {
        rc = fail(out, RSRE_EINVALID, "record: expected an object, got %s", jtype(root));
        goto done;
    }
    const json_t *kind = json_object_get(root, "kind");
    if (!kind || json_is_null(kind)) {
        rc = fail(out, RSRE_EINVALID, "kind: missing");
        goto done;
    }
    if (!json_is_string(kind)) {
        rc = fail(out, RSRE_EINVALID, "kind: expected a string, got %s", jtype(kind));
        goto done;
    }
    if (rsre_record_kind_parse(json_string_value(kind), &out->kind)) {
        rc = fail(out, RSRE_EINVALID,
                  "kind: unknown kind \"%.40s\" (expected k8s_event|node|pod|log_line|"
                  "http_response|helm_release|probe_result|chat_delivery)",
                  json_string_value(kind));
        goto done;
    }
    const json_t *obj = json_object_get(root, "object");
    if (!obj || json_is_null(obj)) {
        rc = fail(out, RSRE_EINVALID, "object: missing");
        goto done;
    }
    if (!json_is_object(obj)) {
        rc = fail(out, RSRE_EINVALID, "object: expected an object, got %s", jtype(obj));
        goto done;
    }
    if ((rc = check_fields(out->kind, obj, out))) {
        goto done;
    }
    c.kind = out->kind;
    c.obj = obj;
    if ((rc = decide(&c, rows, n, out))) {
        fail(out, rc, "out of memory classifying the record");
    }
done:
    ctx_clear(&c);
    json_decref(root);
    return rc;
}

int rsre_classify_record(const char *json_line, size_t len, struct rsre_classification *out) {
    size_t n;
    const struct rsre_classify_pattern *rows = rsre_classify_patterns(&n);
    return rsre__classify_record_with(rows, n, json_line, len, out);
}

/* ---- table check ----------------------------------------------------------------------------- */

static int check_terms(const char *const *terms, const char *what, const char *id, char *err,
                       size_t err_len) {
    struct term t;
    for (int i = 0; i < RSRE_CLASSIFY_TERMS; i++) {
        if (!terms[i]) {
            return 0;
        }
        if (term_parse(terms[i], &t)) {
            snprintf(err, err_len, "%s: %s[%d] \"%s\" is not a valid term", id, what, i, terms[i]);
            return RSRE_EINVALID;
        }
    }
    snprintf(err, err_len, "%s: %s has no NULL terminator slot", id, what);
    return RSRE_EINVALID;
}

static int field_ok(const char *f) {
    if (!f || !*f || strlen(f) >= PATH_MAX_LEN) {
        return 0;
    }
    if (f[0] == '@') {
        for (size_t i = 0; i < sizeof(virtual_fields) / sizeof(virtual_fields[0]); i++) {
            if (!strcmp(f, virtual_fields[i])) {
                return 1;
            }
        }
        return 0;
    }
    return f[strlen(f) - 1] != '.' && !strstr(f, "..");
}

int rsre_classify_check_table(const struct rsre_classify_pattern *rows, size_t n,
                              const struct rsre_taxonomy *taxonomy, char *err, size_t err_len) {
    char dummy[8];
    if (!err || err_len == 0) {
        err = dummy, err_len = sizeof(dummy);
    }
    err[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct rsre_classify_pattern *r = &rows[i];
        const char *id = r->id ? r->id : "(no id)";
        if (!r->id || !*r->id) {
            snprintf(err, err_len, "row %zu: no id", i);
            return RSRE_EINVALID;
        }
        for (size_t k = 0; k < i; k++) {
            if (!strcmp(rows[k].id, r->id)) {
                snprintf(err, err_len, "%s: duplicate id (rows %zu and %zu)", id, k, i);
                return RSRE_EINVALID;
            }
        }
        if (!r->kinds || (r->kinds >> RSRE_REC_KIND_COUNT)) {
            snprintf(err, err_len, "%s: kinds 0x%x out of range", id, r->kinds);
            return RSRE_EINVALID;
        }
        if (!field_ok(r->field)) {
            snprintf(err, err_len, "%s: bad field \"%s\"", id, r->field ? r->field : "(null)");
            return RSRE_EINVALID;
        }
        int rc;
        if ((rc = check_terms(r->all, "all", id, err, err_len)) ||
            (rc = check_terms(r->any, "any", id, err, err_len)) ||
            (rc = check_terms(r->unless, "unless", id, err, err_len))) {
            return rc;
        }
        for (int k = 0; k < RSRE_CLASSIFY_TERMS && r->where[k]; k++) {
            char path[PATH_MAX_LEN];
            struct term t;
            int neg;
            if (where_parse(r->where[k], &neg, path, sizeof(path), &t) || !field_ok(path)) {
                snprintf(err, err_len, "%s: where[%d] \"%s\" is not path:term", id, k, r->where[k]);
                return RSRE_EINVALID;
            }
        }
        if (r->min_count > 1 && !r->all[0]) {
            snprintf(err, err_len, "%s: min_count needs an all[0] term to count", id);
            return RSRE_EINVALID;
        }
        if ((unsigned)r->severity >= RSRE_SEV_COUNT ||
            (unsigned)r->strength >= RSRE_EVIDENCE_STRENGTH_COUNT) {
            snprintf(err, err_len, "%s: severity or strength out of range", id);
            return RSRE_EINVALID;
        }
        if (!r->note || !*r->note) {
            snprintf(err, err_len, "%s: no note", id);
            return RSRE_EINVALID;
        }
        if (r->incident && taxonomy && !rsre_taxonomy_incident(taxonomy, r->incident)) {
            snprintf(err, err_len, "%s: unknown incident \"%s\"", id, r->incident);
            return RSRE_EINVALID;
        }
    }
    return 0;
}

/* ---- streaming ----------------------------------------------------------------------------- */

struct rsre_classify_stream {
    rsre_classify_cb cb;
    void *ud;
    char *buf; /* the current, incomplete line */
    size_t len, cap;
    int overlong; /* the current line passed the limit; its bytes are being discarded */
    struct rsre_classify_stats st;
    struct rsre_classification c;
};

int rsre_classify_stream_create(rsre_classify_cb cb, void *ud, rsre_classify_stream **out) {
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (!cb) {
        return -EINVAL;
    }
    rsre_classify_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->cb = cb;
    s->ud = ud;
    *out = s;
    return 0;
}

void rsre_classify_stream_destroy(rsre_classify_stream *s) {
    if (s) {
        free(s->buf);
        free(s);
    }
}

void rsre_classify_stream_stats(const rsre_classify_stream *s, struct rsre_classify_stats *out) {
    if (s && out) {
        *out = s->st;
    }
}

static int blank(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

/* Handles one complete line (without its newline). */
static int emit(rsre_classify_stream *s, const char *p, size_t n) {
    s->st.lines++;
    int rc;
    if (s->overlong) {
        s->overlong = 0;
        reset(&s->c);
        rc = fail(&s->c, RSRE_ELIMIT, "line is longer than %u bytes", RSRE_CLASSIFY_MAX_RECORD);
    } else {
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (blank(p, n)) {
            return 0;
        }
        rc = rsre_classify_record(p, n, &s->c);
        if (rc == -ENOMEM) {
            return rc;
        }
    }
    s->st.records++;
    s->st.errors += rc != 0;
    s->st.matched += rc == 0 && s->c.incident != NULL;
    return s->cb(s->ud, s->st.lines, rc, &s->c);
}

static int append(rsre_classify_stream *s, const char *p, size_t n) {
    if (s->overlong) {
        return 0;
    }
    if (s->len + n > RSRE_CLASSIFY_MAX_RECORD + 1) { /* +1: a CR before the newline */
        s->overlong = 1;
        s->len = 0;
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
        return 0;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) {
            cap *= 2;
        }
        char *b = realloc(s->buf, cap);
        if (!b) {
            return -ENOMEM;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

int rsre_classify_stream_feed(rsre_classify_stream *s, const void *data, size_t len) {
    if (!s || (!data && len)) {
        return -EINVAL;
    }
    const char *p = data;
    while (len > 0) {
        const char *nl = memchr(p, '\n', len);
        size_t seg = nl ? (size_t)(nl - p) : len;
        int rc;
        if (!nl) {
            return append(s, p, seg);
        }
        if (s->len == 0 && !s->overlong) {
            if (seg > RSRE_CLASSIFY_MAX_RECORD + 1) {
                s->overlong = 1;
            }
            rc = emit(s, p, seg); /* a whole line in the chunk: no copy */
        } else {
            if ((rc = append(s, p, seg))) {
                return rc;
            }
            rc = emit(s, s->buf, s->len);
            s->len = 0;
        }
        if (rc) {
            return rc;
        }
        p += seg + 1;
        len -= seg + 1;
    }
    return 0;
}

int rsre_classify_stream_finish(rsre_classify_stream *s) {
    if (!s) {
        return -EINVAL;
    }
    if (s->len == 0 && !s->overlong) {
        return 0;
    }
    int rc = emit(s, s->buf ? s->buf : "", s->len);
    s->len = 0;
    return rc;
}
