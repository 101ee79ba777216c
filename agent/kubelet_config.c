#include "agent/kubelet_config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

/* ---- tables ---------------------------------------------------------------------------------- */

static const char *const signal_names[RSRE_KSIG_COUNT] = {
    [RSRE_KSIG_MEMORY_AVAILABLE] = "memory.available",
    [RSRE_KSIG_ALLOCATABLE_MEMORY_AVAILABLE] = "allocatableMemory.available",
    [RSRE_KSIG_NODEFS_AVAILABLE] = "nodefs.available",
    [RSRE_KSIG_NODEFS_INODES_FREE] = "nodefs.inodesFree",
    [RSRE_KSIG_IMAGEFS_AVAILABLE] = "imagefs.available",
    [RSRE_KSIG_IMAGEFS_INODES_FREE] = "imagefs.inodesFree",
    [RSRE_KSIG_CONTAINERFS_AVAILABLE] = "containerfs.available",
    [RSRE_KSIG_CONTAINERFS_INODES_FREE] = "containerfs.inodesFree",
    [RSRE_KSIG_PID_AVAILABLE] = "pid.available",
};

/* kubelet's DefaultEvictionHard on Linux (pkg/kubelet/apis/config/v1beta1/defaults_linux.go). */
static const struct {
    enum rsre_kubelet_signal sig;
    const char *value;
} default_hard[] = {
    {RSRE_KSIG_MEMORY_AVAILABLE, "100Mi"},
    {RSRE_KSIG_NODEFS_AVAILABLE, "10%"},
    {RSRE_KSIG_NODEFS_INODES_FREE, "5%"},
    {RSRE_KSIG_IMAGEFS_AVAILABLE, "15%"},
};

#define DEFAULT_GC_HIGH 85
#define DEFAULT_GC_LOW 80
#define DEFAULT_GC_MIN_AGE_S 120
#define DEFAULT_PRESSURE_TRANSITION_S 300

static const char API_VERSION[] = "kubelet.config.k8s.io/v1beta1";
static const char KIND[] = "KubeletConfiguration";

const char *rsre_kubelet_signal_name(enum rsre_kubelet_signal s) {
    return (unsigned)s < RSRE_KSIG_COUNT ? signal_names[s] : NULL;
}

static int signal_by_name(const char *name) {
    for (int i = 0; i < RSRE_KSIG_COUNT; i++) {
        if (strcmp(signal_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

void rsre_kubelet_defaults(struct rsre_kubelet_thresholds *t) {
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < sizeof(default_hard) / sizeof(default_hard[0]); i++) {
        char why[128];
        /* The table holds valid literals; a failure here is a programming error caught by the
         * unit tests (they compare the defaults field by field). */
        (void)rsre_kubelet_parse_threshold(default_hard[i].value, &t->hard[default_hard[i].sig],
                                           why, sizeof(why));
    }
    t->gc_high_percent = DEFAULT_GC_HIGH;
    t->gc_low_percent = DEFAULT_GC_LOW;
    t->gc_min_age_s = DEFAULT_GC_MIN_AGE_S;
    t->pressure_transition_s = DEFAULT_PRESSURE_TRANSITION_S;
    t->source = RSRE_KSRC_DEFAULTS;
}

/* ---- quantities ------------------------------------------------------------------------------ */

static const struct {
    const char *suffix;
    int binary; /* 1: multiply by 2^(10*pow); 0: multiply by 10^pow */
    int pow;
} quantity_suffixes[] = {
    {"Ki", 1, 1}, {"Mi", 1, 2}, {"Gi", 1, 3}, {"Ti", 1, 4}, {"Pi", 1, 5}, {"Ei", 1, 6},
    {"n", 0, -9}, {"u", 0, -6}, {"m", 0, -3}, {"", 0, 0},   {"k", 0, 3},  {"M", 0, 6},
    {"G", 0, 9},  {"T", 0, 12}, {"P", 0, 15}, {"E", 0, 18},
};

/* 10^e for 0 <= e <= 19 (the largest power of ten in 64 bits). */
static uint64_t pow10u(int e) {
    uint64_t v = 1;
    while (e-- > 0) {
        v *= 10;
    }
    return v;
}

static uint64_t ceil_div(uint64_t a, uint64_t b) {
    return a / b + (a % b != 0);
}

int rsre_kubelet_parse_quantity(const char *s, uint64_t *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    /* Mantissa: digits [. digits]; at least one digit overall. Leading zeros are skipped; the
     * significant digits must fit in 64 bits (more is refused as out of range). */
    uint64_t m = 0;
    int frac = 0, digits = 0, seen_dot = 0;
    for (;; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
            if (seen_dot) {
                frac++;
            }
            if (m == 0 && *p == '0') {
                continue;
            }
            if (__builtin_mul_overflow(m, 10, &m) ||
                __builtin_add_overflow(m, (uint64_t)(*p - '0'), &m)) {
                return RSRE_ELIMIT;
            }
        } else if (*p == '.' && !seen_dot) {
            seen_dot = 1;
        } else {
            break;
        }
    }
    if (digits == 0) {
        return RSRE_EPARSE;
    }
    if (frac > 19) {
        return RSRE_ELIMIT;
    }
    int binary = 0, pow = 0, found = 0;
    for (size_t i = 0; i < sizeof(quantity_suffixes) / sizeof(quantity_suffixes[0]); i++) {
        if (strcmp(p, quantity_suffixes[i].suffix) == 0) {
            binary = quantity_suffixes[i].binary;
            pow = quantity_suffixes[i].pow;
            found = 1;
            break;
        }
    }
    if (!found) {
        /* Decimal exponent: e or E followed by an optionally signed integer. */
        if ((*p != 'e' && *p != 'E') || p[1] == '\0') {
            return RSRE_EPARSE;
        }
        const char *q = p + 1;
        int eneg = 0;
        if (*q == '+' || *q == '-') {
            eneg = *q == '-';
            q++;
        }
        if (*q == '\0') {
            return RSRE_EPARSE;
        }
        long e = 0;
        for (; *q; q++) {
            if (*q < '0' || *q > '9') {
                return RSRE_EPARSE;
            }
            if (e < 100000) {
                e = e * 10 + (*q - '0');
            }
        }
        pow = (int)(eneg ? -e : e);
    }
    if (m == 0) {
        *out = 0;
        return 0;
    }
    if (neg) {
        return RSRE_EINVALID;
    }
    uint64_t v;
    if (binary) {
        int shift = 10 * pow;
        if (shift >= 64 || (m >> (64 - shift)) != 0) {
            /* m * 2^shift overflows before the fraction is divided out: try dividing first
             * when that is exact, otherwise refuse. */
            if (frac > 0 && m % pow10u(frac) == 0) {
                m /= pow10u(frac);
                frac = 0;
                if (shift >= 64 || (m >> (64 - shift)) != 0) {
                    return RSRE_ELIMIT;
                }
            } else {
                return RSRE_ELIMIT;
            }
        }
        v = ceil_div(m << shift, pow10u(frac));
    } else {
        long e = (long)pow - frac;
        if (e >= 0) {
            if (e > 19) {
                return RSRE_ELIMIT;
            }
            if (__builtin_mul_overflow(m, pow10u((int)e), &v)) {
                return RSRE_ELIMIT;
            }
        } else {
            /* 0 < m < 2^64 < 10^20 <= 10^-e: the value rounds up to 1. */
            v = -e > 19 ? 1 : ceil_div(m, pow10u((int)-e));
        }
    }
    *out = v;
    return 0;
}

int rsre_kubelet_parse_threshold(const char *s, struct rsre_kubelet_threshold *out, char *why,
                                 size_t why_len) {
    memset(out, 0, sizeof(*out));
    size_t n = strlen(s);
    if (n == 0) {
        snprintf(why, why_len, "empty threshold");
        return RSRE_EPARSE;
    }
    if (s[n - 1] == '%') {
        if (strcmp(s, "0%") == 0 || strcmp(s, "100%") == 0) {
            return 0; /* kubelet ignores these: no threshold */
        }
        /* strings.TrimRight(s, "%") then ParseFloat(32): digits, one dot, optional exponent. */
        size_t k = n;
        while (k > 0 && s[k - 1] == '%') {
            k--;
        }
        char num[64];
        if (k == 0 || k >= sizeof(num) || strspn(s, "0123456789.eE+-") != k) {
            snprintf(why, why_len, "'%.40s' is not a percentage", s);
            return RSRE_EPARSE;
        }
        memcpy(num, s, k);
        num[k] = '\0';
        char *end;
        errno = 0;
        double v = strtod(num, &end);
        if (*end != '\0' || end == num || !isfinite(v)) {
            snprintf(why, why_len, "'%.40s' is not a percentage", s);
            return RSRE_EPARSE;
        }
        float f = (float)v;
        if (!isfinite(f)) {
            snprintf(why, why_len, "'%.40s' is out of range", s);
            return RSRE_EINVALID;
        }
        if (f < 0.0f) {
            snprintf(why, why_len, "percentage threshold must be >= 0%%: %.40s", s);
            return RSRE_EINVALID;
        }
        if (f > 100.0f) {
            snprintf(why, why_len, "percentage threshold must be <= 100%%: %.40s", s);
            return RSRE_EINVALID;
        }
        out->fraction = f / 100.0f;
        out->percent = (double)f;
        out->set = out->fraction > 0.0f;
        if (!out->set) {
            out->percent = 0.0;
        }
        return 0;
    }
    uint64_t q;
    int rc = rsre_kubelet_parse_quantity(s, &q);
    if (rc == RSRE_EPARSE) {
        snprintf(why, why_len, "'%.40s' is neither a quantity (e.g. 100Mi) nor a percentage", s);
        return rc;
    }
    if (rc == RSRE_EINVALID || (rc == 0 && q == 0)) {
        snprintf(why, why_len, "threshold must be positive: %.40s", s);
        return RSRE_EINVALID;
    }
    if (rc) {
        snprintf(why, why_len, "quantity '%.40s' is out of range", s);
        return RSRE_EINVALID;
    }
    out->set = 1;
    out->quantity = q;
    return 0;
}

/* ---- durations (Go time.ParseDuration) ---------------------------------------------------------
 */

static const struct {
    const char *unit;
    double seconds;
} duration_units[] = {
    {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"\xce\xbcs", 1e-6},
    {"ms", 1e-3}, {"s", 1.0},   {"m", 60.0},         {"h", 3600.0},
};

int rsre_kubelet_parse_duration(const char *s, uint32_t *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (*p == '\0') {
        return RSRE_EPARSE;
    }
    double total = 0.0;
    while (*p) {
        const char *start = p;
        double v = 0.0, scale = 1.0;
        int digits = 0, dot = 0;
        for (; (*p >= '0' && *p <= '9') || (*p == '.' && !dot); p++) {
            if (*p == '.') {
                dot = 1;
                continue;
            }
            digits++;
            if (dot) {
                scale /= 10.0;
                v += (*p - '0') * scale;
            } else {
                v = v * 10.0 + (*p - '0');
            }
        }
        if (digits == 0 || p == start) {
            return RSRE_EPARSE;
        }
        size_t best = 0;
        double mult = 0.0;
        for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
            size_t ul = strlen(duration_units[i].unit);
            if (ul > best && strncmp(p, duration_units[i].unit, ul) == 0) {
                best = ul;
                mult = duration_units[i].seconds;
            }
        }
        if (best == 0) {
            return RSRE_EPARSE; /* missing or unknown unit */
        }
        p += best;
        total += v * mult;
        if (total > (double)UINT32_MAX) {
            return RSRE_ELIMIT;
        }
    }
    if (neg && total > 0.0) {
        return RSRE_EINVALID;
    }
    *out = (uint32_t)total;
    return 0;
}

/* ---- effective values ---------------------------------------------------------------------- */

uint64_t rsre_kubelet_effective(const struct rsre_kubelet_threshold *t, uint64_t capacity) {
    if (!t->set) {
        return 0;
    }
    if (t->quantity) {
        return t->quantity;
    }
    double v = (double)capacity * (double)t->fraction;
    /* (double)capacity may round up past capacity: a percentage never exceeds the whole. */
    uint64_t e = v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
    return e > capacity ? capacity : e;
}

uint64_t rsre_kubelet_gc_trigger_avail(uint64_t capacity, int high_percent) {
    if (capacity == 0 || high_percent >= 100 || high_percent < 0) {
        return 0;
    }
    /* GC when floor(avail*100/cap) <= 100-high, i.e. avail*100 < (101-high)*cap. The smallest
     * avail that does not trigger is ceil((101-high)*cap/100), computed without overflow. */
    uint64_t k = (uint64_t)(101 - high_percent);
    uint64_t q = capacity / 100, r = capacity % 100;
    return k * q + ceil_div(k * r, 100);
}

uint64_t rsre_kubelet_gc_bytes_to_low(uint64_t capacity, uint64_t avail, int low_percent) {
    if (low_percent < 0 || low_percent > 100) {
        return 0;
    }
    uint64_t k = (uint64_t)(100 - low_percent);
    uint64_t target = k * (capacity / 100) + k * (capacity % 100) / 100;
    return target > avail ? target - avail : 0;
}

/* ---- overrides ----------------------------------------------------------------------------- */

int rsre_kubelet_apply_override(struct rsre_kubelet_thresholds *t, int kind, uint64_t quantity,
                                double percent) {
    static const int kind_signal[] = {
        [RSRE_KOVR_NODEFS_AVAILABLE] = RSRE_KSIG_NODEFS_AVAILABLE,
        [RSRE_KOVR_NODEFS_INODES_FREE] = RSRE_KSIG_NODEFS_INODES_FREE,
        [RSRE_KOVR_IMAGEFS_AVAILABLE] = RSRE_KSIG_IMAGEFS_AVAILABLE,
        [RSRE_KOVR_IMAGEFS_INODES_FREE] = RSRE_KSIG_IMAGEFS_INODES_FREE,
    };
    if (!isfinite(percent) || percent < 0.0 || percent > 100.0 ||
        (quantity != 0) == (percent != 0.0)) {
        return RSRE_EINVALID;
    }
    if (kind == RSRE_KOVR_IMAGE_GC_HIGH || kind == RSRE_KOVR_IMAGE_GC_LOW) {
        if (quantity != 0) {
            return RSRE_EINVALID;
        }
        int p = (int)percent;
        int high = kind == RSRE_KOVR_IMAGE_GC_HIGH ? p : t->gc_high_percent;
        int low = kind == RSRE_KOVR_IMAGE_GC_LOW ? p : t->gc_low_percent;
        if (low >= high) {
            return RSRE_EINVALID;
        }
        t->gc_high_percent = high;
        t->gc_low_percent = low;
        t->overridden |= 1u << RSRE_KSIG_COUNT;
        return 0;
    }
    if (kind < RSRE_KOVR_NODEFS_AVAILABLE || kind > RSRE_KOVR_IMAGEFS_INODES_FREE) {
        return RSRE_EINVALID;
    }
    struct rsre_kubelet_threshold *th = &t->hard[kind_signal[kind]];
    memset(th, 0, sizeof(*th));
    th->set = 1;
    if (quantity) {
        th->quantity = quantity;
    } else {
        th->fraction = (float)percent / 100.0f;
        th->percent = percent;
    }
    t->overridden |= 1u << kind_signal[kind];
    return 0;
}

/* ---- the YAML document --------------------------------------------------------------------- */

static int is_null(const yaml_node_t *n) {
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Value of `key` in the top-level mapping, refusing a key that appears twice (ambiguous). */
static int get_unique(yaml_document_t *doc, yaml_node_t *map, const char *key, yaml_node_t **out,
                      struct rsre_yerr *err) {
    *out = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0) {
            if (*out) {
                return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s: duplicate key", key);
            }
            *out = yaml_document_get_node(doc, p->value);
        }
    }
    return 0;
}

/* A mapping of signal name -> scalar; calls `fn` for each pair. NULL/null: nothing to do. */
static int each_signal(yaml_document_t *doc, yaml_node_t *map, const char *field,
                       int (*fn)(void *ctx, int sig, yaml_node_t *val, const char *field,
                                 struct rsre_yerr *err),
                       void *ctx, struct rsre_yerr *err) {
    if (map->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(err, map, RSRE_EINVALID,
                              "%s: expected a mapping of signal: value, "
                              "found %s",
                              field, rsre_yaml_kind(map));
    }
    uint32_t seen = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        const char *name = rsre_yaml_str(k);
        if (!name) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s: keys must be signal names, found %s",
                                  field, rsre_yaml_kind(k));
        }
        int sig = signal_by_name(name);
        if (sig < 0) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s: unsupported eviction signal '%.60s'",
                                  field, name);
        }
        if (seen & (1u << sig)) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s.%s: duplicate signal", field, name);
        }
        seen |= 1u << sig;
        if (!v || v->type != YAML_SCALAR_NODE || is_null(v)) {
            return rsre_yaml_fail(err, v ? v : k, RSRE_EINVALID,
                                  "%s.%s: expected a value such as "
                                  "\"10%%\" or \"100Mi\", found %s",
                                  field, name,
                                  v && v->type == YAML_SCALAR_NODE ? "nothing" : rsre_yaml_kind(v));
        }
        int rc = fn(ctx, sig, v, field, err);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

struct threshold_ctx {
    struct rsre_kubelet_threshold *arr;
    yaml_node_t *node[RSRE_KSIG_COUNT]; /* where each signal was set, for later errors */
};

static int set_threshold(void *ctx, int sig, yaml_node_t *v, const char *field,
                         struct rsre_yerr *err) {
    struct threshold_ctx *c = ctx;
    char why[160];
    c->node[sig] = v;
    int rc = rsre_kubelet_parse_threshold(rsre_yaml_str(v), &c->arr[sig], why, sizeof(why));
    if (rc) {
        return rsre_yaml_fail(err, v, rc, "%s.%s: %s", field, signal_names[sig], why);
    }
    return 0;
}

struct grace_ctx {
    uint32_t grace[RSRE_KSIG_COUNT];
    uint32_t present;
};

static int set_grace(void *ctx, int sig, yaml_node_t *v, const char *field, struct rsre_yerr *err) {
    struct grace_ctx *g = ctx;
    int rc = rsre_kubelet_parse_duration(rsre_yaml_str(v), &g->grace[sig]);
    if (rc) {
        return rsre_yaml_fail(err, v, RSRE_EINVALID,
                              "%s.%s: '%.40s' is not a duration such as "
                              "\"1m30s\"",
                              field, signal_names[sig], rsre_yaml_str(v));
    }
    g->present |= 1u << sig;
    return 0;
}

static int get_percent(yaml_document_t *doc, yaml_node_t *root, const char *key, int *out,
                       struct rsre_yerr *err) {
    yaml_node_t *n;
    int rc = get_unique(doc, root, key, &n, err);
    if (rc || !n || is_null(n)) {
        return rc;
    }
    const char *s = rsre_yaml_str(n);
    if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected an integer 0..100, found %s",
                              key, s ? "a quoted string" : rsre_yaml_kind(n));
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || s[0] == ' ') {
        return rsre_yaml_fail(err, n, RSRE_EINVALID,
                              "%s: expected an integer 0..100, found "
                              "'%.40s'",
                              key, s);
    }
    if (v < 0 || v > 100) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID,
                              "%s: %ld must be between 0 and 100, "
                              "inclusive",
                              key, v);
    }
    *out = (int)v;
    return 0;
}

static int get_duration(yaml_document_t *doc, yaml_node_t *root, const char *key, uint32_t *out,
                        struct rsre_yerr *err) {
    yaml_node_t *n;
    int rc = get_unique(doc, root, key, &n, err);
    if (rc || !n || is_null(n)) {
        return rc;
    }
    const char *s = rsre_yaml_str(n);
    if (!s) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID,
                              "%s: expected a duration such as \"2m\", "
                              "found %s",
                              key, rsre_yaml_kind(n));
    }
    uint32_t v;
    rc = rsre_kubelet_parse_duration(s, &v);
    if (rc) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID,
                              "%s: '%.40s' is not a duration such as "
                              "\"2m\" or \"1h30m\"%s",
                              key, s, rc == RSRE_EINVALID ? " (negative)" : "");
    }
    /* kubelet's defaulting treats a zero duration as unset (kubeadm writes "0s"). */
    if (v) {
        *out = v;
    }
    return 0;
}

static int check_identity(yaml_document_t *doc, yaml_node_t *root, const char *key,
                          const char *want, struct rsre_yerr *err) {
    yaml_node_t *n;
    int rc = get_unique(doc, root, key, &n, err);
    if (rc) {
        return rc;
    }
    if (!n) {
        return rsre_yaml_fail(err, root, RSRE_EPARSE, "%s is missing (expected '%s')", key, want);
    }
    const char *s = rsre_yaml_str(n);
    if (!s || strcmp(s, want) != 0) {
        return rsre_yaml_fail(err, n, RSRE_EPARSE, "%s: expected '%s', found '%.60s'", key, want,
                              s ? s : rsre_yaml_kind(n));
    }
    return 0;
}

static int parse_doc(yaml_document_t *doc, struct rsre_kubelet_thresholds *t,
                     struct rsre_yerr *err) {
    yaml_node_t *root = rsre_yaml_root(doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(err, root, RSRE_EPARSE,
                              "expected a KubeletConfiguration mapping, "
                              "found %s",
                              rsre_yaml_kind(root));
    }
    int rc = check_identity(doc, root, "kind", KIND, err);
    if (!rc) {
        rc = check_identity(doc, root, "apiVersion", API_VERSION, err);
    }
    if (rc) {
        return rc;
    }

    yaml_node_t *hard, *soft, *grace;
    if ((rc = get_unique(doc, root, "evictionHard", &hard, err)) ||
        (rc = get_unique(doc, root, "evictionSoft", &soft, err)) ||
        (rc = get_unique(doc, root, "evictionSoftGracePeriod", &grace, err))) {
        return rc;
    }
    if (hard && !is_null(hard)) {
        /* Setting evictionHard replaces kubelet's default map: unnamed signals get nothing. */
        memset(t->hard, 0, sizeof(t->hard));
        t->hard_from_config = 1;
        struct threshold_ctx hc = {t->hard, {NULL}};
        if ((rc = each_signal(doc, hard, "evictionHard", set_threshold, &hc, err))) {
            return rc;
        }
    }
    struct grace_ctx g = {{0}, 0};
    if (grace && !is_null(grace) &&
        (rc = each_signal(doc, grace, "evictionSoftGracePeriod", set_grace, &g, err))) {
        return rc;
    }
    if (soft && !is_null(soft)) {
        struct threshold_ctx sc = {t->soft, {NULL}};
        if ((rc = each_signal(doc, soft, "evictionSoft", set_threshold, &sc, err))) {
            return rc;
        }
        for (int i = 0; i < RSRE_KSIG_COUNT; i++) {
            if (!t->soft[i].set) {
                continue;
            }
            if (!(g.present & (1u << i))) {
                return rsre_yaml_fail(err, sc.node[i], RSRE_EINVALID,
                                      "evictionSoft.%s: no grace period "
                                      "in evictionSoftGracePeriod (kubelet requires one)",
                                      signal_names[i]);
            }
            t->soft[i].grace_s = g.grace[i];
        }
    }

    if ((rc = get_percent(doc, root, "imageGCHighThresholdPercent", &t->gc_high_percent, err)) ||
        (rc = get_percent(doc, root, "imageGCLowThresholdPercent", &t->gc_low_percent, err)) ||
        (rc = get_duration(doc, root, "imageMinimumGCAge", &t->gc_min_age_s, err)) ||
        (rc = get_duration(doc, root, "evictionPressureTransitionPeriod", &t->pressure_transition_s,
                           err))) {
        return rc;
    }
    if (t->gc_low_percent >= t->gc_high_percent) {
        yaml_node_t *n = rsre_yaml_get(doc, root, "imageGCLowThresholdPercent");
        if (!n) {
            n = rsre_yaml_get(doc, root, "imageGCHighThresholdPercent");
        }
        return rsre_yaml_fail(err, n, RSRE_EINVALID,
                              "imageGCLowThresholdPercent (%d) must be "
                              "less than imageGCHighThresholdPercent (%d)",
                              t->gc_low_percent, t->gc_high_percent);
    }
    return 0;
}

int rsre_kubelet_parse(const char *buf, size_t len, struct rsre_kubelet_thresholds *out,
                       struct rsre_yerr *err) {
    struct rsre_yerr local;
    if (!err) {
        err = &local;
    }
    memset(err, 0, sizeof(*err));
    rsre_kubelet_defaults(out);
    if (len > RSRE_KUBELET_MAX_FILE) {
        out->source = RSRE_KSRC_UNKNOWN;
        return rsre_yaml_fail(err, NULL, RSRE_ELIMIT, "kubelet config is %zu bytes, limit is %u",
                              len, RSRE_KUBELET_MAX_FILE);
    }
    yaml_document_t doc;
    int rc = rsre_yaml_load(buf ? buf : "", buf ? len : 0, &doc, err);
    if (rc) {
        out->source = RSRE_KSRC_UNKNOWN;
        return rc;
    }
    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    rc = parse_doc(&doc, &t, err);
    yaml_document_delete(&doc);
    if (rc) {
        out->source = RSRE_KSRC_UNKNOWN;
        return rc;
    }
    t.source = RSRE_KSRC_CONFIG;
    *out = t;
    return 0;
}

int rsre_kubelet_load(const char *path, struct rsre_kubelet_thresholds *out,
                      struct rsre_yerr *err) {
    rsre_kubelet_defaults(out);
    if (err) {
        memset(err, 0, sizeof(*err));
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e != ENOENT) {
            out->source = RSRE_KSRC_UNKNOWN;
        }
        if (err) {
            snprintf(err->msg, sizeof(err->msg), "%s", strerror(e));
        }
        return -e;
    }
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : (!S_ISREG(st.st_mode) ? EINVAL : 0);
    if (e) {
        close(fd);
        out->source = RSRE_KSRC_UNKNOWN;
        if (err) {
            snprintf(err->msg, sizeof(err->msg), "not a regular file");
        }
        return -e;
    }
    /* Read at most one byte more than the limit so an oversized file is detected even when
     * it grows while being read. */
    size_t cap = RSRE_KUBELET_MAX_FILE + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        out->source = RSRE_KSRC_UNKNOWN;
        return -ENOMEM;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int rerr = errno;
            free(buf);
            close(fd);
            out->source = RSRE_KSRC_UNKNOWN;
            if (err) {
                snprintf(err->msg, sizeof(err->msg), "%s", strerror(rerr));
            }
            return -rerr;
        }
        if (r == 0 || (len += (size_t)r) == cap) {
            break;
        }
    }
    close(fd);
    int rc = rsre_kubelet_parse(buf, len, out, err);
    free(buf);
    return rc;
}
