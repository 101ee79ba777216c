/*
 * Bounded protobuf decoding and table-driven validation for robot_sre.agent.v1.
 *
 * Validation walks a message through its protobuf-c descriptor, so every field is visited,
 * including fields added to agent.proto later: a field without a rule of its own still gets
 * the defaults (strings valid UTF-8 text of at most RSRE_PBUF_MAX_TEXT_LEN bytes, repeated
 * fields at most RSRE_PBUF_MAX_REPEATED entries, doubles finite). Tighter per-field rules live
 * in one table per message below; invariants between fields live in one check function per
 * message. Adding a rule is adding a row.
 */
#include "common/pbuf.h"

#include "common/error.h"
#include "common/pbuf_decode.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failing allocator ---------------------------------------------------------------------- */

static void *budget_alloc(void *data, size_t size) {
    struct rsre_pbuf_allocator *a = data;
    size_t charge = size + RSRE_PBUF_ALLOC_OVERHEAD;

    if (charge < size || charge > a->budget - a->used) {
        a->exhausted = 1;
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        a->failed = 1;
        return NULL;
    }
    a->used += charge;
    return p;
}

static void budget_free(void *data, void *p) {
    (void)data;
    free(p);
}

void rsre_pbuf_allocator_init(struct rsre_pbuf_allocator *a, size_t budget) {
    a->base.alloc = budget_alloc;
    a->base.free = budget_free;
    a->base.allocator_data = a;
    a->budget = budget;
    a->used = 0;
    a->exhausted = 0;
    a->failed = 0;
}

size_t rsre_pbuf_decode_budget(size_t len) {
    if (len > (SIZE_MAX - RSRE_PBUF_DECODE_SLACK) / RSRE_PBUF_DECODE_FACTOR) {
        return SIZE_MAX;
    }
    return len * RSRE_PBUF_DECODE_FACTOR + RSRE_PBUF_DECODE_SLACK;
}

/* ---- unpack / pack -------------------------------------------------------------------------- */

static size_t effective_max(size_t max_len) {
    return max_len ? max_len : RSRE_PBUF_MAX_MESSAGE_BYTES;
}

int rsre_pbuf_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                     size_t max_len, ProtobufCMessage **out) {
    static const uint8_t empty[1];
    struct rsre_pbuf_allocator a;

    if (out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    if (desc == NULL || (buf == NULL && len > 0)) {
        return -EINVAL;
    }
    if (len > effective_max(max_len)) {
        return RSRE_ELIMIT;
    }
    rsre_pbuf_allocator_init(&a, rsre_pbuf_decode_budget(len));
    ProtobufCMessage *m = rsre_pbuf_decode_fast(desc, &a.base, len, buf ? buf : empty);
    if (m == NULL) {
        if (a.exhausted) {
            return RSRE_ELIMIT;
        }
        return a.failed ? -ENOMEM : RSRE_EPARSE;
    }
    *out = m;
    return 0;
}

int rsre_pbuf_pack(const ProtobufCMessage *msg, size_t max_len, uint8_t **out, size_t *out_len) {
    if (out == NULL || out_len == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    *out_len = 0;
    if (msg == NULL) {
        return -EINVAL;
    }
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > effective_max(max_len)) {
        return RSRE_ELIMIT;
    }
    uint8_t *b = malloc(n ? n : 1);
    if (b == NULL) {
        return -ENOMEM;
    }
    size_t w = protobuf_c_message_pack(msg, b);
    if (w != n) {
        free(b);
        return -EINVAL;
    }
    *out = b;
    *out_len = n;
    return 0;
}

/* ---- string classes ------------------------------------------------------------------------- */

enum str_class {
    S_TEXT,           /* UTF-8; controls other than \t \n \r refused */
    S_LINE,           /* UTF-8, one line: no C0/C1 controls, no DEL */
    S_TOKEN,          /* printable ASCII without spaces (image references) */
    S_ID,             /* [A-Za-z0-9._:-] */
    S_ACTION_ID,      /* [a-z0-9][a-z0-9._-]* */
    S_UUID,           /* canonical lowercase UUID, 36 bytes */
    S_DNS_SUBDOMAIN,  /* Kubernetes DNS-1123 subdomain */
    S_DNS_LABEL,      /* Kubernetes DNS-1123 label */
    S_QUALIFIED_NAME, /* Kubernetes qualified name: [subdomain/]name */
    S_LABEL_VALUE,    /* Kubernetes label value */
    S_ABS_PATH,       /* S_LINE starting with '/' */
};

/* Decodes one UTF-8 sequence at s (n bytes left). Returns its length and stores the code point,
 * or returns 0 for an invalid sequence (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return len;
}

/* Checks UTF-8 and control characters. Returns NULL or a problem description. */
static const char *check_utf8(const char *str, size_t n, bool multiline) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = utf8_next(s + i, n - i, &cp);
        if (l == 0) {
            return "not valid UTF-8";
        }
        bool ctl = cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
        if (ctl && !(multiline && (cp == '\t' || cp == '\n' || cp == '\r'))) {
            return "contains a control character";
        }
        i += l;
    }
    return NULL;
}

static bool is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c) {
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..n) */
static bool is_dns_label_n(const char *s, size_t n) {
    if (n == 0 || n > RSRE_PBUF_MAX_LABEL_LEN) {
        return false;
    }
    if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1])) {
        return false;
    }
    for (size_t i = 1; i + 1 < n; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '-') {
            return false;
        }
    }
    return true;
}

/* Kubernetes IsDNS1123Subdomain: at most 253 bytes of dot-separated
 * [a-z0-9]([-a-z0-9]*[a-z0-9])? parts (the parts themselves are not length-limited). */
static bool is_dns_subdomain_n(const char *s, size_t n) {
    if (n == 0 || n > RSRE_PBUF_MAX_NAME_LEN) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t l = i - start;
            if (l == 0 || !is_lower_alnum(s[start]) || !is_lower_alnum(s[i - 1])) {
                return false;
            }
            for (size_t j = start; j < i; j++) {
                if (!is_lower_alnum(s[j]) && s[j] != '-') {
                    return false;
                }
            }
            start = i + 1;
        }
    }
    return true;
}

int rsre_pbuf_is_dns1123_subdomain(const char *s) {
    return s != NULL && is_dns_subdomain_n(s, strnlen(s, RSRE_PBUF_MAX_NAME_LEN + 1));
}

/* Label value / qualified-name part: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63. */
static bool is_k8s_name_part(const char *s, size_t n) {
    if (n == 0 || n > RSRE_PBUF_MAX_LABEL_LEN || !is_alnum(s[0]) || !is_alnum(s[n - 1])) {
        return false;
    }
    for (size_t i = 1; i + 1 < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
            return false;
        }
    }
    return true;
}

static bool is_uuid(const char *s, size_t n) {
    if (n != 36) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return false;
            }
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* Checks a non-empty string s of length n against its class. Returns NULL or a problem. */
static const char *check_class(const char *s, size_t n, enum str_class cls) {
    switch (cls) {
    case S_TEXT:
        return check_utf8(s, n, true);
    case S_LINE:
        return check_utf8(s, n, false);
    case S_ABS_PATH:
        if (s[0] != '/') {
            return "not an absolute path";
        }
        return check_utf8(s, n, false);
    case S_TOKEN:
        for (size_t i = 0; i < n; i++) {
            if (s[i] <= 0x20 || s[i] >= 0x7f) {
                return "contains a space, control or non-ASCII character";
            }
        }
        return NULL;
    case S_ID:
        for (size_t i = 0; i < n; i++) {
            if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != ':' && s[i] != '-') {
                return "not an id ([A-Za-z0-9._:-])";
            }
        }
        return NULL;
    case S_ACTION_ID:
        if (!is_lower_alnum(s[0])) {
            return "not an action id ([a-z0-9][a-z0-9._-]*)";
        }
        for (size_t i = 1; i < n; i++) {
            if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') {
                return "not an action id ([a-z0-9][a-z0-9._-]*)";
            }
        }
        return NULL;
    case S_UUID:
        return is_uuid(s, n) ? NULL : "not a canonical lowercase UUID";
    case S_DNS_SUBDOMAIN:
        return is_dns_subdomain_n(s, n) ? NULL : "not a DNS-1123 subdomain";
    case S_DNS_LABEL:
        return is_dns_label_n(s, n) ? NULL : "not a DNS-1123 label";
    case S_QUALIFIED_NAME: {
        const char *slash = memchr(s, '/', n);
        if (slash == NULL) {
            return is_k8s_name_part(s, n) ? NULL : "not a qualified name";
        }
        size_t pl = (size_t)(slash - s);
        if (!is_dns_subdomain_n(s, pl) || !is_k8s_name_part(slash + 1, n - pl - 1)) {
            return "not a qualified name";
        }
        return NULL;
    }
    case S_LABEL_VALUE:
        return is_k8s_name_part(s, n) ? NULL : "not a label value";
    }
    return "unknown string class";
}

/* ---- rule tables ---------------------------------------------------------------------------- */

enum rule_kind {
    R_STR,      /* string (or each string of a repeated field): class, max length */
    R_INT,      /* integer within [min, max]; max INT64_MAX means unbounded */
    R_INTERVAL, /* 0, or within [RSRE_PBUF_MIN_INTERVAL_MS, RSRE_PBUF_MAX_INTERVAL_MS] */
    R_PERCENT,  /* finite double within [0, 100] */
    R_ENUM,     /* enum; REQ: not the 0 (UNSPECIFIED) value */
    R_MSG,      /* sub-message; REQ: must be set */
    R_COUNT,    /* repeated non-string field; REQ: at least one entry */
};

#define REQ 1u

struct field_rule {
    size_t offset; /* offsetof the member in the generated struct */
    unsigned char kind;
    unsigned char cls;
    unsigned char flags;
    int64_t min, max;   /* R_INT range; R_STR: max = longest length in bytes */
    uint32_t max_count; /* repeated fields: most entries (0: RSRE_PBUF_MAX_REPEATED) */
};

#define T_(M) RobotSre__Agent__V1__##M
#define STR(M, f, c, maxlen, fl)                                                                   \
    { offsetof(T_(M), f), R_STR, c, fl, 0, maxlen, 0 }
#define STRS(M, f, c, maxlen, count)                                                               \
    { offsetof(T_(M), f), R_STR, c, 0, 0, maxlen, count }
#define INT(M, f, lo, hi)                                                                          \
    { offsetof(T_(M), f), R_INT, 0, 0, lo, hi, 0 }
#define TIME(M, f) INT(M, f, 0, RSRE_PBUF_MAX_UNIX_MS)
#define TIME_REQ(M, f) INT(M, f, 1, RSRE_PBUF_MAX_UNIX_MS)
#define ETA(M, f) INT(M, f, -1, INT64_MAX)
#define INTERVAL(M, f)                                                                             \
    { offsetof(T_(M), f), R_INTERVAL, 0, 0, 0, 0, 0 }
#define PCT(M, f)                                                                                  \
    { offsetof(T_(M), f), R_PERCENT, 0, 0, 0, 100, 0 }
#define ENUM_REQ(M, f)                                                                             \
    { offsetof(T_(M), f), R_ENUM, 0, REQ, 0, 0, 0 }
#define MSG_REQ(M, f)                                                                              \
    { offsetof(T_(M), f), R_MSG, 0, REQ, 0, 0, 0 }
#define COUNT(M, f, fl, count)                                                                     \
    { offsetof(T_(M), f), R_COUNT, 0, fl, 0, 0, count }

static const struct field_rule hello_rules[] = {
    INT(Hello, protocol_revision, 1, UINT32_MAX),
    STR(Hello, node_name, S_DNS_SUBDOMAIN, RSRE_PBUF_MAX_NAME_LEN, REQ),
    STR(Hello, boot_id, S_UUID, 36, REQ),
    STR(Hello, agent_version, S_LINE, RSRE_PBUF_MAX_ID_LEN, REQ),
    COUNT(Hello, capabilities, 0, RSRE_PBUF_MAX_CAPABILITIES),
    TIME_REQ(Hello, started_unix_ms),
    STR(Hello, kernel_boot_id, S_UUID, 36, 0),
    STR(Hello, container_runtime, S_LINE, RSRE_PBUF_MAX_STRING_LEN, 0),
    STRS(Hello, actions, S_ACTION_ID, RSRE_PBUF_MAX_ID_LEN, RSRE_PBUF_MAX_ACTIONS),
    STR(Hello, kernel_release, S_LINE, 256, 0),
};

static const struct field_rule intervals_rules[] = {
    INTERVAL(CollectorIntervals, filesystem_ms),
    INTERVAL(CollectorIntervals, node_conditions_ms),
    INTERVAL(CollectorIntervals, image_gc_ms),
    INTERVAL(CollectorIntervals, pod_churn_ms),
    INTERVAL(CollectorIntervals, pressure_stall_ms),
    INTERVAL(CollectorIntervals, kernel_events_ms),
    INTERVAL(CollectorIntervals, pull_errors_ms),
    INTERVAL(CollectorIntervals, batch_flush_ms),
};

static const struct field_rule batch_rules[] = {
    STR(SignalBatch, boot_id, S_UUID, 36, REQ),
    INT(SignalBatch, seq, 1, INT64_MAX),
    TIME_REQ(SignalBatch, created_unix_ms),
    COUNT(SignalBatch, signals, REQ, RSRE_PBUF_MAX_SIGNALS),
};

static const struct field_rule signal_rules[] = {
    TIME_REQ(Signal, observed_unix_ms),
};

static const struct field_rule eviction_rules[] = {
    PCT(EvictionThreshold, percent),
};

static const struct field_rule fs_rules[] = {
    ENUM_REQ(FilesystemUsage, which),
    STR(FilesystemUsage, path, S_ABS_PATH, RSRE_PBUF_MAX_TEXT_LEN, REQ),
    STR(FilesystemUsage, device, S_LINE, RSRE_PBUF_MAX_STRING_LEN, 0),
    PCT(FilesystemUsage, image_gc_high_percent),
    PCT(FilesystemUsage, image_gc_low_percent),
    ETA(FilesystemUsage, seconds_to_eviction),
    ETA(FilesystemUsage, seconds_to_gc_high),
    ETA(FilesystemUsage, seconds_to_inode_eviction),
};

static const struct field_rule condition_rules[] = {
    ENUM_REQ(NodeCondition, status),
    STR(NodeCondition, reason, S_LINE, RSRE_PBUF_MAX_STRING_LEN, 0),
    STR(NodeCondition, message, S_TEXT, RSRE_PBUF_MAX_TEXT_LEN, 0),
    TIME(NodeCondition, last_transition_unix_ms),
    TIME(NodeCondition, last_heartbeat_unix_ms),
};

static const struct field_rule taint_rules[] = {
    STR(Taint, key, S_QUALIFIED_NAME, RSRE_PBUF_MAX_NAME_LEN + 1 + RSRE_PBUF_MAX_LABEL_LEN, REQ),
    STR(Taint, value, S_LABEL_VALUE, RSRE_PBUF_MAX_LABEL_LEN, 0),
    ENUM_REQ(Taint, effect),
    TIME(Taint, time_added_unix_ms),
};

static const struct field_rule conditions_rules[] = {
    COUNT(NodeConditions, taints, 0, RSRE_PBUF_MAX_TAINTS),
};

static const struct field_rule imagefs_rules[] = {
    STR(ImageFsInfo, mountpoint, S_ABS_PATH, RSRE_PBUF_MAX_TEXT_LEN, 0),
};

static const struct field_rule churn_rules[] = {
    INT(PodChurn, window_sec, 1, UINT32_MAX),
};

static const struct field_rule psi_line_rules[] = {
    PCT(PsiLine, avg10),
    PCT(PsiLine, avg60),
    PCT(PsiLine, avg300),
};

static const struct field_rule psi_rules[] = {
    ENUM_REQ(PressureStall, resource),
    MSG_REQ(PressureStall, some),
};

static const struct field_rule kernel_rules[] = {
    ENUM_REQ(KernelEvent, kind),
    STR(KernelEvent, message, S_TEXT, RSRE_PBUF_MAX_TEXT_LEN, 0),
    INT(KernelEvent, priority, 0, 7),
    STR(KernelEvent, subject, S_LINE, RSRE_PBUF_MAX_STRING_LEN, 0),
};

static const struct field_rule pull_rules[] = {
    STR(PullError, pod_namespace, S_DNS_LABEL, RSRE_PBUF_MAX_LABEL_LEN, REQ),
    STR(PullError, pod_name, S_DNS_SUBDOMAIN, RSRE_PBUF_MAX_NAME_LEN, REQ),
    STR(PullError, container, S_DNS_LABEL, RSRE_PBUF_MAX_LABEL_LEN, REQ),
    STR(PullError, image, S_TOKEN, RSRE_PBUF_MAX_STRING_LEN, REQ),
    ENUM_REQ(PullError, reason),
    STR(PullError, message, S_TEXT, RSRE_PBUF_MAX_TEXT_LEN, 0),
    TIME(PullError, first_seen_unix_ms),
};

static const struct field_rule result_rules[] = {
    STR(ActionResult, request_id, S_ID, RSRE_PBUF_MAX_ID_LEN, REQ),
    ENUM_REQ(ActionResult, status),
    STR(ActionResult, message, S_TEXT, RSRE_PBUF_MAX_TEXT_LEN, 0),
    STRS(ActionResult, removed_object_ids, S_LINE, RSRE_PBUF_MAX_STRING_LEN,
         RSRE_PBUF_MAX_REMOVED_IDS),
    TIME(ActionResult, started_unix_ms),
    TIME_REQ(ActionResult, finished_unix_ms),
    STR(ActionResult, action_id, S_ACTION_ID, RSRE_PBUF_MAX_ID_LEN, REQ),
};

static const struct field_rule ack_rules[] = {
    STR(Ack, boot_id, S_UUID, 36, REQ),
    STRS(Ack, result_request_ids, S_ID, RSRE_PBUF_MAX_ID_LEN, RSRE_PBUF_MAX_ACKED_RESULTS),
};

static const struct field_rule request_rules[] = {
    STR(ActionRequest, request_id, S_ID, RSRE_PBUF_MAX_ID_LEN, REQ),
    STR(ActionRequest, action_id, S_ACTION_ID, RSRE_PBUF_MAX_ID_LEN, REQ),
    STR(ActionRequest, target, S_LINE, RSRE_PBUF_MAX_STRING_LEN, 0),
    COUNT(ActionRequest, parameters, 0, RSRE_PBUF_MAX_PARAMETERS),
    TIME_REQ(ActionRequest, deadline_unix_ms),
    STR(ActionRequest, incident_id, S_ID, RSRE_PBUF_MAX_ID_LEN, 0),
    TIME(ActionRequest, issued_unix_ms),
};

static const struct field_rule param_rules[] = {
    STR(ActionRequest__ParametersEntry, key, S_ID, RSRE_PBUF_MAX_ID_LEN, REQ),
    STR(ActionRequest__ParametersEntry, value, S_LINE, RSRE_PBUF_MAX_STRING_LEN, 0),
};

static const struct field_rule override_rules[] = {
    ENUM_REQ(ThresholdOverride, kind),
    PCT(ThresholdOverride, percent),
};

static const struct field_rule config_rules[] = {
    INT(ConfigUpdate, generation, 1, INT64_MAX),
    COUNT(ConfigUpdate, threshold_overrides, 0, RSRE_PBUF_MAX_THRESHOLD_OVERRIDES),
    STRS(ConfigUpdate, action_allowlist, S_ACTION_ID, RSRE_PBUF_MAX_ID_LEN, RSRE_PBUF_MAX_ACTIONS),
    INT(ConfigUpdate, protocol_revision, 1, UINT32_MAX),
};

/* ---- validation context --------------------------------------------------------------------- */

/* The path of the field being checked ("signal_batch.signals[3].filesystem") is kept as a
 * stack of (name, index) frames and rendered into text only when a check fails: validation
 * runs for every field of every message received, the ingest's hot path
 * (docs/performance.md), and nearly all of them pass. */
#define VCTX_MAX_FRAMES 128 /* > 4 frames per level x 17 levels (walk stops at depth 16) */
#define VCTX_PATH_LEN 512

struct path_frame {
    const char *name; /* field name, or NULL for an index frame */
    long index;       /* >= 0: "[index]"; < 0: ".name" */
};

struct vctx {
    char *err;
    size_t err_len;
    const char *root; /* short name of the top-level message, for errors about it */
    struct path_frame frames[VCTX_MAX_FRAMES];
    size_t nframes; /* may exceed VCTX_MAX_FRAMES: frames past it are not kept */
    int depth;
};

/* Appends ".name" (or "name" at the root) or "[index]" to the path; returns the old depth. */
static size_t path_push(struct vctx *v, const char *name, long index) {
    size_t old = v->nframes;
    if (old < VCTX_MAX_FRAMES) {
        v->frames[old].name = name;
        v->frames[old].index = index;
    }
    v->nframes = old + 1;
    return old;
}

static void path_pop(struct vctx *v, size_t old) {
    v->nframes = old;
}

/* Renders the path into `path` (VCTX_PATH_LEN bytes), truncated to it; returns its length. */
static size_t path_render(const struct vctx *v, char *path) {
    size_t plen = 0;
    size_t nf = v->nframes < VCTX_MAX_FRAMES ? v->nframes : VCTX_MAX_FRAMES;
    path[0] = '\0';
    for (size_t f = 0; f < nf; f++) {
        char tmp[32];
        size_t n = 0;
        const char *src = tmp;
        if (v->frames[f].index >= 0) {
            char digits[24];
            size_t nd = 0;
            unsigned long u = (unsigned long)v->frames[f].index;
            do {
                digits[nd++] = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            tmp[n++] = '[';
            while (nd) {
                tmp[n++] = digits[--nd];
            }
            tmp[n++] = ']';
        } else {
            if (plen && plen < VCTX_PATH_LEN - 1) {
                path[plen++] = '.';
            }
            src = v->frames[f].name ? v->frames[f].name : "?";
            n = strlen(src);
        }
        size_t room = VCTX_PATH_LEN - 1 - plen;
        if (n > room) {
            n = room;
        }
        memcpy(path + plen, src, n);
        plen += n;
        path[plen] = '\0';
    }
    return plen;
}

/* Records "path[.field]: problem" and returns RSRE_EINVALID. */
__attribute__((format(printf, 3, 4))) static int fail(struct vctx *v, const char *field,
                                                      const char *fmt, ...) {
    if (v->err != NULL && v->err_len > 0) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        char path[VCTX_PATH_LEN];
        size_t plen = path_render(v, path);
        const char *base = plen ? path : (field ? "" : v->root);
        snprintf(v->err, v->err_len, "%s%s%s: %s", base, (plen && field) ? "." : "",
                 field ? field : "", msg);
    }
    return RSRE_EINVALID;
}

/* ---- field checks --------------------------------------------------------------------------- */

static int check_string(struct vctx *v, const char *s, const struct field_rule *r) {
    enum str_class cls = r ? (enum str_class)r->cls : S_TEXT;
    size_t max = r ? (size_t)r->max : RSRE_PBUF_MAX_TEXT_LEN;
    size_t n = s ? strnlen(s, max + 1) : 0;

    if (n > max) {
        return fail(v, NULL, "longer than %zu bytes", max);
    }
    if (n == 0) {
        return (r && (r->flags & REQ)) ? fail(v, NULL, "required") : 0;
    }
    const char *problem = check_class(s, n, cls);
    return problem ? fail(v, NULL, "%s", problem) : 0;
}

static int check_signed(struct vctx *v, int64_t x, const struct field_rule *r) {
    if (r == NULL || r->kind != R_INT) {
        return 0;
    }
    if (x < r->min || x > r->max) {
        if (r->min == 1 && x <= 0) {
            return fail(v, NULL, "required (must be > 0)");
        }
        return fail(v, NULL, "%" PRId64 " is outside %" PRId64 "..%" PRId64, x, r->min, r->max);
    }
    return 0;
}

static int check_unsigned(struct vctx *v, uint64_t x, const struct field_rule *r) {
    if (r == NULL) {
        return 0;
    }
    if (r->kind == R_INTERVAL) {
        if (x != 0 && (x < RSRE_PBUF_MIN_INTERVAL_MS || x > RSRE_PBUF_MAX_INTERVAL_MS)) {
            return fail(v, NULL, "%" PRIu64 " ms is outside %u..%u (or 0 for the default)", x,
                        RSRE_PBUF_MIN_INTERVAL_MS, RSRE_PBUF_MAX_INTERVAL_MS);
        }
        return 0;
    }
    if (r->kind != R_INT) {
        return 0;
    }
    if ((r->min > 0 && x < (uint64_t)r->min) || (r->max != INT64_MAX && x > (uint64_t)r->max)) {
        if (r->min == 1 && x == 0) {
            return fail(v, NULL, "required (must be > 0)");
        }
        return fail(v, NULL, "%" PRIu64 " is outside %" PRId64 "..%" PRId64, x, r->min, r->max);
    }
    return 0;
}

static int check_double(struct vctx *v, double x, const struct field_rule *r) {
    if (!isfinite(x)) {
        return fail(v, NULL, "not a finite number");
    }
    if (r && r->kind == R_PERCENT && (x < 0.0 || x > 100.0)) {
        return fail(v, NULL, "%g is not a percentage (0..100)", x);
    }
    return 0;
}

static int walk(struct vctx *v, const ProtobufCMessage *m);

static int check_single(struct vctx *v, const ProtobufCFieldDescriptor *f, const void *p,
                        const struct field_rule *r) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return check_string(v, *(char *const *)p, r);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL) {
            return (r && (r->flags & REQ)) ? fail(v, NULL, "required") : 0;
        }
        return walk(v, sub);
    }
    case PROTOBUF_C_TYPE_ENUM:
        if (r && (r->flags & REQ) && *(const int *)p == 0) {
            return fail(v, NULL, "required (UNSPECIFIED)");
        }
        return 0;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return check_signed(v, *(const int32_t *)p, r);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return check_signed(v, *(const int64_t *)p, r);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return check_unsigned(v, *(const uint32_t *)p, r);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return check_unsigned(v, *(const uint64_t *)p, r);
    case PROTOBUF_C_TYPE_DOUBLE:
        return check_double(v, *(const double *)p, r);
    case PROTOBUF_C_TYPE_FLOAT:
        return check_double(v, *(const float *)p, r);
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_BYTES:
        return 0;
    }
    return 0;
}

static int check_repeated(struct vctx *v, const ProtobufCFieldDescriptor *f,
                          const ProtobufCMessage *m, const struct field_rule *r) {
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
    size_t max = (r && r->max_count) ? r->max_count : RSRE_PBUF_MAX_REPEATED;
    const void *arr = *(void *const *)((const char *)m + f->offset);

    if (n > max) {
        return fail(v, NULL, "%zu entries, more than %zu", n, max);
    }
    if (n == 0) {
        return (r && (r->flags & REQ)) ? fail(v, NULL, "must not be empty") : 0;
    }
    if (arr == NULL) {
        return fail(v, NULL, "entries missing");
    }
    for (size_t i = 0; i < n; i++) {
        size_t mark = path_push(v, NULL, (long)i);
        int rc = 0;
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING:
            rc = check_string(v, ((char *const *)arr)[i], (r && r->kind == R_STR) ? r : NULL);
            break;
        case PROTOBUF_C_TYPE_MESSAGE: {
            const ProtobufCMessage *sub = ((ProtobufCMessage *const *)arr)[i];
            rc = sub ? walk(v, sub) : fail(v, NULL, "null entry");
            break;
        }
        case PROTOBUF_C_TYPE_DOUBLE:
            rc = check_double(v, ((const double *)arr)[i], NULL);
            break;
        case PROTOBUF_C_TYPE_FLOAT:
            rc = check_double(v, ((const float *)arr)[i], NULL);
            break;
        default:
            break; /* enums are open; integers have no per-element rules */
        }
        path_pop(v, mark);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* ---- cross-field invariants ----------------------------------------------------------------- */

typedef int (*msg_check_fn)(struct vctx *v, const ProtobufCMessage *m);

static int check_spool(struct vctx *v, const ProtobufCMessage *m) {
    const T_(SpoolState) *s = (const void *)m;
    if (s->first_unacked_seq != 0 && s->first_unacked_seq > s->last_seq) {
        return fail(v, "first_unacked_seq", "greater than last_seq");
    }
    return 0;
}

static int check_eviction(struct vctx *v, const ProtobufCMessage *m) {
    const T_(EvictionThreshold) *t = (const void *)m;
    if (t->quantity != 0 && t->percent != 0.0) {
        return fail(v, "percent", "set together with quantity (only one form is allowed)");
    }
    return 0;
}

static int check_fs(struct vctx *v, const ProtobufCMessage *m) {
    const T_(FilesystemUsage) *fs = (const void *)m;
    if (fs->bytes_free > fs->bytes_total) {
        return fail(v, "bytes_free", "greater than bytes_total");
    }
    if (fs->bytes_avail > fs->bytes_free) {
        return fail(v, "bytes_avail", "greater than bytes_free");
    }
    if (fs->inodes_free > fs->inodes_total) {
        return fail(v, "inodes_free", "greater than inodes_total");
    }
    if (fs->image_gc_low_percent > fs->image_gc_high_percent) {
        return fail(v, "image_gc_low_percent", "greater than image_gc_high_percent");
    }
    return 0;
}

static int check_image_gc(struct vctx *v, const ProtobufCMessage *m) {
    const T_(ImageGcState) *g = (const void *)m;
    if (g->unused_count > g->image_count) {
        return fail(v, "unused_count", "greater than image_count");
    }
    if (g->pinned_count > g->image_count) {
        return fail(v, "pinned_count", "greater than image_count");
    }
    if (g->unused_bytes > g->total_bytes) {
        return fail(v, "unused_bytes", "greater than total_bytes");
    }
    if (g->pinned_bytes > g->total_bytes) {
        return fail(v, "pinned_bytes", "greater than total_bytes");
    }
    if (g->reclaimable_bytes > g->unused_bytes) {
        return fail(v, "reclaimable_bytes", "greater than unused_bytes");
    }
    return 0;
}

static int check_churn(struct vctx *v, const ProtobufCMessage *m) {
    const T_(PodChurn) *c = (const void *)m;
    if (c->evicted > c->failed) {
        return fail(v, "evicted", "greater than failed (evicted pods are failed pods)");
    }
    return 0;
}

static int check_result(struct vctx *v, const ProtobufCMessage *m) {
    const T_(ActionResult) *r = (const void *)m;
    if (r->started_unix_ms != 0 && r->started_unix_ms > r->finished_unix_ms) {
        return fail(v, "started_unix_ms", "later than finished_unix_ms");
    }
    if (r->n_removed_object_ids > r->objects_removed) {
        return fail(v, "removed_object_ids", "more ids than objects_removed");
    }
    return 0;
}

static int check_request(struct vctx *v, const ProtobufCMessage *m) {
    const T_(ActionRequest) *r = (const void *)m;
    for (size_t i = 0; i < r->n_parameters; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(r->parameters[i]->key, r->parameters[j]->key) == 0) {
                size_t mark = path_push(v, "parameters", -1);
                path_push(v, NULL, (long)i);
                int rc = fail(v, "key", "duplicate key \"%.64s\"", r->parameters[i]->key);
                path_pop(v, mark);
                return rc;
            }
        }
    }
    return 0;
}

static bool is_gc_threshold(int kind) {
    return kind == ROBOT_SRE__AGENT__V1__THRESHOLD_KIND__THRESHOLD_KIND_IMAGE_GC_HIGH ||
           kind == ROBOT_SRE__AGENT__V1__THRESHOLD_KIND__THRESHOLD_KIND_IMAGE_GC_LOW;
}

static int check_override(struct vctx *v, const ProtobufCMessage *m) {
    const T_(ThresholdOverride) *o = (const void *)m;
    if (is_gc_threshold((int)o->kind) && o->quantity != 0) {
        return fail(v, "quantity", "not allowed for an image GC threshold (percent only)");
    }
    if ((o->quantity != 0) == (o->percent != 0.0)) {
        return fail(v, "percent", "exactly one of quantity and percent must be set");
    }
    return 0;
}

static int check_config(struct vctx *v, const ProtobufCMessage *m) {
    const T_(ConfigUpdate) *c = (const void *)m;
    for (size_t i = 0; i < c->n_threshold_overrides; i++) {
        for (size_t j = 0; j < i; j++) {
            if (c->threshold_overrides[i]->kind == c->threshold_overrides[j]->kind) {
                size_t mark = path_push(v, "threshold_overrides", -1);
                path_push(v, NULL, (long)i);
                int rc = fail(v, "kind", "duplicate threshold kind %d",
                              (int)c->threshold_overrides[i]->kind);
                path_pop(v, mark);
                return rc;
            }
        }
    }
    return 0;
}

/* ---- message table -------------------------------------------------------------------------- */

struct msg_rules {
    const ProtobufCMessageDescriptor *desc;
    const struct field_rule *rules;
    size_t n_rules;
    msg_check_fn check;
};

#define D_(m) &robot_sre__agent__v1__##m##__descriptor
#define ROWS(t) t, sizeof(t) / sizeof((t)[0])

static const struct msg_rules msg_table[] = {
    {D_(agent_message), NULL, 0, NULL},
    {D_(hello), ROWS(hello_rules), NULL},
    {D_(collector_intervals), ROWS(intervals_rules), NULL},
    {D_(spool_state), NULL, 0, check_spool},
    {D_(signal_batch), ROWS(batch_rules), NULL},
    {D_(signal), ROWS(signal_rules), NULL},
    {D_(eviction_threshold), ROWS(eviction_rules), check_eviction},
    {D_(filesystem_usage), ROWS(fs_rules), check_fs},
    {D_(node_condition), ROWS(condition_rules), NULL},
    {D_(taint), ROWS(taint_rules), NULL},
    {D_(node_conditions), ROWS(conditions_rules), NULL},
    {D_(image_fs_info), ROWS(imagefs_rules), NULL},
    {D_(image_gc_state), NULL, 0, check_image_gc},
    {D_(pod_churn), ROWS(churn_rules), check_churn},
    {D_(psi_line), ROWS(psi_line_rules), NULL},
    {D_(pressure_stall), ROWS(psi_rules), NULL},
    {D_(kernel_event), ROWS(kernel_rules), NULL},
    {D_(pull_error), ROWS(pull_rules), NULL},
    {D_(action_result), ROWS(result_rules), check_result},
    {D_(aggregator_message), NULL, 0, NULL},
    {D_(ack), ROWS(ack_rules), NULL},
    {D_(action_request), ROWS(request_rules), check_request},
    {D_(action_request__parameters_entry), ROWS(param_rules), NULL},
    {D_(threshold_override), ROWS(override_rules), check_override},
    {D_(config_update), ROWS(config_rules), check_config},
};

static const struct field_rule *find_rule(const struct msg_rules *mr, size_t offset) {
    for (size_t i = 0; mr && i < mr->n_rules; i++) {
        if (mr->rules[i].offset == offset) {
            return &mr->rules[i];
        }
    }
    return NULL;
}

/* Field index -> rule, per row of msg_table, built once from the tables above (read-only
 * afterwards): walk() looks a rule up for every field of every message received, and most
 * fields have none, which find_rule() only learns after scanning the whole table. Entries
 * hold the rule's index + 1 (0: no rule); fields past RULE_MAP_FIELDS use find_rule().
 *
 * Built with it, per row: the plan, the fields walk() has to look at, in descriptor order (so
 * the first failure reported is the same). A field that no check can refuse is left out: a
 * bool or bytes field, an enum without a required rule, an integer without a range rule. And
 * a descriptor -> row hash, so that finding a message's row is not a scan of the table. */
#define N_MSG (sizeof(msg_table) / sizeof(msg_table[0]))
#define RULE_MAP_FIELDS 64
#define ROW_HASH_SLOTS 64 /* power of two, > 2 x N_MSG */
static uint16_t rule_map[N_MSG][RULE_MAP_FIELDS];
static uint8_t plan[N_MSG][RULE_MAP_FIELDS]; /* field indexes to visit */
static uint8_t plan_len[N_MSG];
static uint8_t plan_ok[N_MSG];   /* 0: message too large for a plan, walk every field */
static uint8_t has_oneof[N_MSG];
static int8_t row_hash[ROW_HASH_SLOTS]; /* row + 1, 0: empty */
static pthread_once_t rule_map_once = PTHREAD_ONCE_INIT;

static size_t row_slot(const ProtobufCMessageDescriptor *d) {
    uintptr_t x = (uintptr_t)d;
    return (size_t)((x >> 4) ^ (x >> 10)) & (ROW_HASH_SLOTS - 1);
}

/* Whether a check could refuse field `f` holding rule `r` (NULL: none). */
static int can_fail(const ProtobufCFieldDescriptor *f, const struct field_rule *r) {
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        return 1; /* the count bound */
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_FLOAT:
        return 1;
    case PROTOBUF_C_TYPE_ENUM:
        return r && (r->flags & REQ);
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return r && r->kind == R_INT;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return r && (r->kind == R_INT || r->kind == R_INTERVAL);
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_BYTES:
        return 0;
    }
    return 1;
}

static void rule_map_build(void) {
    for (size_t m = 0; m < N_MSG; m++) {
        const ProtobufCMessageDescriptor *d = msg_table[m].desc;
        plan_ok[m] = d->n_fields <= RULE_MAP_FIELDS;
        for (unsigned i = 0; i < d->n_fields && i < RULE_MAP_FIELDS; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            const struct field_rule *r = find_rule(&msg_table[m], f->offset);
            rule_map[m][i] = r ? (uint16_t)(r - msg_table[m].rules + 1) : 0;
            int oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
            has_oneof[m] |= (uint8_t)oneof;
            /* walk() uses no rule for oneof members */
            if (can_fail(f, oneof ? NULL : r)) {
                plan[m][plan_len[m]++] = (uint8_t)i;
            }
        }
        size_t slot = row_slot(d);
        while (row_hash[slot] != 0) {
            slot = (slot + 1) & (ROW_HASH_SLOTS - 1);
        }
        row_hash[slot] = (int8_t)(m + 1);
    }
}

/* The msg_table row of a descriptor, or NULL (after rule_map_build). */
static const struct msg_rules *row_of(const ProtobufCMessageDescriptor *d) {
    for (size_t slot = row_slot(d);; slot = (slot + 1) & (ROW_HASH_SLOTS - 1)) {
        int k = row_hash[slot];
        if (k == 0) {
            return NULL;
        }
        if (msg_table[k - 1].desc == d) {
            return &msg_table[k - 1];
        }
    }
}

/* The rule for field `i` of a message whose table row is `mr` (NULL: no row). */
static const struct field_rule *rule_for(const struct msg_rules *mr, unsigned i) {
    if (mr == NULL) {
        return NULL;
    }
    if (i >= RULE_MAP_FIELDS) {
        return find_rule(mr, mr->desc->fields[i].offset);
    }
    uint16_t k = rule_map[mr - msg_table][i];
    return k ? &mr->rules[k - 1] : NULL;
}

/* Every oneof must have a member set, unless the message carries unknown fields (then the
 * member is one this build does not know, and the caller ignores the message). */
static int check_oneofs(struct vctx *v, const ProtobufCMessage *m) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            continue;
        }
        uint32_t set = *(const uint32_t *)((const char *)m + f->quantifier_offset);
        if (set != 0 || m->n_unknown_fields > 0) {
            continue;
        }
        char names[256];
        size_t len = 0;
        names[0] = '\0';
        for (unsigned j = 0; j < d->n_fields; j++) {
            const ProtobufCFieldDescriptor *g = &d->fields[j];
            if ((g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                g->quantifier_offset == f->quantifier_offset && len < sizeof(names)) {
                int n =
                    snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "", g->name);
                len += n > 0 ? (size_t)n : 0;
            }
        }
        return fail(v, NULL, "none of %s is set", names);
    }
    return 0;
}

/* Fields this build does not know: bounded in number, and with valid field numbers. */
static int check_unknown(struct vctx *v, const ProtobufCMessage *m) {
    if (m->n_unknown_fields > RSRE_PBUF_MAX_UNKNOWN_FIELDS) {
        return fail(v, NULL, "%u unknown fields, more than %d", m->n_unknown_fields,
                    RSRE_PBUF_MAX_UNKNOWN_FIELDS);
    }
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        uint32_t tag = m->unknown_fields[i].tag;
        if (tag == 0 || tag > 536870911u) {
            return fail(v, NULL, "unknown field with invalid field number %" PRIu32, tag);
        }
    }
    return 0;
}

/* Checks field `i` of `m` (a oneof member only when it is the active one). */
static int walk_field(struct vctx *v, const ProtobufCMessage *m, const struct msg_rules *mr,
                      unsigned i) {
    const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
    const struct field_rule *r = NULL;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t set = *(const uint32_t *)((const char *)m + f->quantifier_offset);
        if (set != f->id) {
            return 0; /* members share one offset: only the active one is looked at */
        }
    } else {
        r = rule_for(mr, i);
    }
    size_t mark = path_push(v, f->name, -1);
    int rc;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        rc = check_repeated(v, f, m, r);
    } else {
        rc = check_single(v, f, (const char *)m + f->offset, r);
    }
    path_pop(v, mark);
    return rc;
}

static int walk(struct vctx *v, const ProtobufCMessage *m) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == NULL || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        return fail(v, NULL, "not a protobuf-c message");
    }
    if (++v->depth > 16) {
        return fail(v, NULL, "nested too deeply");
    }
    const struct msg_rules *mr = row_of(d);
    size_t row = mr ? (size_t)(mr - msg_table) : 0;
    int rc = 0;
    if (mr && plan_ok[row]) {
        for (unsigned k = 0; k < plan_len[row] && rc == 0; k++) {
            rc = walk_field(v, m, mr, plan[row][k]);
        }
    } else {
        for (unsigned i = 0; i < d->n_fields && rc == 0; i++) {
            rc = walk_field(v, m, mr, i);
        }
    }
    if (rc == 0) {
        rc = check_unknown(v, m);
    }
    if (rc == 0 && (!mr || has_oneof[row])) {
        rc = check_oneofs(v, m);
    }
    if (rc == 0 && mr && mr->check) {
        rc = mr->check(v, m);
    }
    v->depth--;
    return rc;
}

int rsre_pbuf_validate(const ProtobufCMessage *msg, char *err, size_t err_len) {
    if (err && err_len) {
        err[0] = '\0';
    }
    if (msg == NULL || msg->descriptor == NULL) {
        return -EINVAL;
    }
    pthread_once(&rule_map_once, rule_map_build);
    struct vctx v = {.err = err, .err_len = err_len, .root = msg->descriptor->short_name};
    return walk(&v, msg);
}

/* ---- typed API ------------------------------------------------------------------------------ */

int rsre_pbuf_unpack_agent_message(const uint8_t *buf, size_t len, size_t max_len,
                                   RobotSre__Agent__V1__AgentMessage **out) {
    return rsre_pbuf_unpack(D_(agent_message), buf, len, max_len, (ProtobufCMessage **)out);
}

int rsre_pbuf_unpack_aggregator_message(const uint8_t *buf, size_t len, size_t max_len,
                                        RobotSre__Agent__V1__AggregatorMessage **out) {
    return rsre_pbuf_unpack(D_(aggregator_message), buf, len, max_len, (ProtobufCMessage **)out);
}

int rsre_pbuf_validate_agent_message(const RobotSre__Agent__V1__AgentMessage *msg, char *err,
                                     size_t err_len) {
    return rsre_pbuf_validate(msg ? &msg->base : NULL, err, err_len);
}

int rsre_pbuf_validate_aggregator_message(const RobotSre__Agent__V1__AggregatorMessage *msg,
                                          char *err, size_t err_len) {
    return rsre_pbuf_validate(msg ? &msg->base : NULL, err, err_len);
}

/* Shared body of the two decode functions. */
static int decode(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                  size_t max_len, ProtobufCMessage **out, char *err, size_t err_len) {
    if (err && err_len) {
        err[0] = '\0';
    }
    int rc = rsre_pbuf_unpack(desc, buf, len, max_len, out);
    if (rc == RSRE_ELIMIT && err && err_len) {
        if (len > effective_max(max_len)) {
            snprintf(err, err_len, "%s: %zu bytes, more than the limit of %zu", desc->short_name,
                     len, effective_max(max_len));
        } else {
            snprintf(err, err_len, "%s: decoding needs more than %zu bytes of memory",
                     desc->short_name, rsre_pbuf_decode_budget(len));
        }
    } else if (rc == RSRE_EPARSE && err && err_len) {
        snprintf(err, err_len, "%s: malformed protobuf encoding", desc->short_name);
    }
    if (rc != 0) {
        return rc;
    }
    rc = rsre_pbuf_validate(*out, err, err_len);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(*out, NULL);
        *out = NULL;
    }
    return rc;
}

int rsre_pbuf_decode_agent_message(const uint8_t *buf, size_t len, size_t max_len,
                                   RobotSre__Agent__V1__AgentMessage **out, char *err,
                                   size_t err_len) {
    return decode(D_(agent_message), buf, len, max_len, (ProtobufCMessage **)out, err, err_len);
}

int rsre_pbuf_decode_aggregator_message(const uint8_t *buf, size_t len, size_t max_len,
                                        RobotSre__Agent__V1__AggregatorMessage **out, char *err,
                                        size_t err_len) {
    return decode(D_(aggregator_message), buf, len, max_len, (ProtobufCMessage **)out, err,
                  err_len);
}

void rsre_pbuf_free_agent_message(RobotSre__Agent__V1__AgentMessage *msg) {
    if (msg != NULL) {
        protobuf_c_message_free_unpacked(&msg->base, NULL);
    }
}

void rsre_pbuf_free_aggregator_message(RobotSre__Agent__V1__AggregatorMessage *msg) {
    if (msg != NULL) {
        protobuf_c_message_free_unpacked(&msg->base, NULL);
    }
}
