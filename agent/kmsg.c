#include "agent/kmsg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* ---- records -------------------------------------------------------------------------------- */

/* Parses 1..20 decimal digits into *out; returns 0 or -1 (empty, non-digit, overflow). */
static int parse_u64(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20) {
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int rsre_kmsg_parse_record(const char *buf, size_t len, struct rsre_kmsg_record *out) {
    memset(out, 0, sizeof(*out));
    if (!buf || len == 0 || len > RSRE_KMSG_MAX_RECORD || memchr(buf, '\0', len)) {
        return RSRE_EPARSE;
    }
    const char *nl = memchr(buf, '\n', len);
    size_t line = nl ? (size_t)(nl - buf) : len;
    const char *semi = memchr(buf, ';', line);
    if (!semi) {
        return RSRE_EPARSE;
    }
    /* Header: prio,seq,usec,flags[,more fields added by newer kernels] */
    const char *f[4];
    size_t fl[4], nf = 0;
    for (const char *p = buf; p <= semi && nf < 4;) {
        const char *c = memchr(p, ',', (size_t)(semi - p));
        const char *e = c ? c : semi;
        f[nf] = p;
        fl[nf++] = (size_t)(e - p);
        p = e + 1;
        if (!c) {
            break;
        }
    }
    uint64_t prio;
    if (nf < 4 || parse_u64(f[0], fl[0], &prio) || prio > 1023 ||
        parse_u64(f[1], fl[1], &out->seq) || parse_u64(f[2], fl[2], &out->usec) || fl[3] == 0) {
        memset(out, 0, sizeof(*out));
        return RSRE_EPARSE;
    }
    out->priority = (unsigned)(prio & 7);
    out->facility = (unsigned)(prio >> 3);
    out->flag = f[3][0];
    out->msg = semi + 1;
    out->msg_len = (size_t)(buf + line - (semi + 1));
    /* Everything after the message line must be continuation lines (" KEY=value"). */
    if (nl && (size_t)(nl - buf) + 1 < len) {
        const char *d = nl + 1;
        size_t dl = len - (size_t)(d - buf);
        if (d[dl - 1] == '\n') {
            dl--;
        }
        for (const char *p = d; p < d + dl;) {
            if (*p != ' ') {
                memset(out, 0, sizeof(*out));
                return RSRE_EPARSE;
            }
            const char *e = memchr(p, '\n', (size_t)(d + dl - p));
            p = e ? e + 1 : d + dl;
        }
        out->dict = d;
        out->dict_len = dl;
    }
    return 0;
}

int rsre_kmsg_next_record(const char *buf, size_t len, int at_end, size_t *rec_len) {
    *rec_len = 0;
    if (len == 0) {
        return 0;
    }
    const char *nl = memchr(buf, '\n', len);
    if (!nl) {
        if (at_end) {
            *rec_len = len;
            return 1;
        }
        return 0;
    }
    size_t pos = (size_t)(nl - buf) + 1;
    for (;;) {
        if (pos == len) {
            if (at_end) {
                *rec_len = len;
                return 1;
            }
            return 0; /* the next read may start with a continuation line */
        }
        if (buf[pos] != ' ') {
            *rec_len = pos;
            return 1;
        }
        const char *e = memchr(buf + pos, '\n', len - pos);
        if (!e) {
            if (at_end) {
                *rec_len = len;
                return 1;
            }
            return 0;
        }
        pos = (size_t)(e - buf) + 1;
    }
}

/* ---- the pattern table ---------------------------------------------------------------------- */

enum extractor {
    EX_NONE,
    EX_KILLED_PROCESS, /* "Killed process 1234 (comm)" -> "comm[1234]" */
    EX_OOM_KILL_TASK,  /* "oom-kill:...,task=comm,pid=1234,..." -> "comm[1234]" */
    EX_DEVICE,         /* "(device sda1)", "EXT4-fs (sda1)", "XFS (dm-0)", "dev sda,", ... */
    EX_HUNG_TASK,      /* "task comm:123 blocked for more than" -> "comm:123" */
};

/*
 * One row per recognised message. First match wins. `needle2`, when set, must also occur
 * after `needle`. Sources of the message formats: docs/agent-collectors.md and
 * tests/data/kmsg/SOURCES.txt.
 */
static const struct pattern {
    int kind;
    const char *needle;
    const char *needle2;
    enum extractor ex;
    int dedupe;
} patterns[] = {
    /* mm/oom_kill.c: __oom_kill_process / dump_oom_summary */
    {RSRE_KMSG_OOM_KILL, "Out of memory: Killed process", NULL, EX_KILLED_PROCESS, 1},
    {RSRE_KMSG_OOM_KILL, "Memory cgroup out of memory: Killed process", NULL, EX_KILLED_PROCESS, 1},
    {RSRE_KMSG_OOM_KILL, "(oom_kill_allocating_task): Killed process", NULL, EX_KILLED_PROCESS, 1},
    {RSRE_KMSG_OOM_KILL, "oom-kill:", NULL, EX_OOM_KILL_TASK, 1},
    /* ENOSPC reported by a filesystem or the block layer below it (28 = ENOSPC) */
    {RSRE_KMSG_NO_SPACE, "No space left on device", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_NO_SPACE, "Delayed block allocation failed", "with error 28", EX_DEVICE, 0},
    {RSRE_KMSG_NO_SPACE, "I/O error -28", NULL, EX_DEVICE, 0}, /* ext4_end_bio, dm-thin full */
    {RSRE_KMSG_NO_SPACE, "errno=-28", NULL, EX_DEVICE, 0},     /* btrfs_decode_error */
    {RSRE_KMSG_NO_SPACE, "critical space allocation error", NULL, EX_DEVICE, 0}, /* NOSPC */
    /* filesystem errors */
    {RSRE_KMSG_FS_ERROR, "EXT4-fs error", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "Delayed block allocation failed", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "BTRFS: error", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "EXT3-fs error", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "XFS (", "orruption", EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "XFS (", "Shutting down filesystem", EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "Remounting filesystem read-only", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "Aborting journal on device", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "I/O error", NULL, EX_DEVICE, 0},
    /* block layer request errors (blk_print_req_error: "%s error, dev %s, sector ...") */
    {RSRE_KMSG_FS_ERROR, "critical medium error", NULL, EX_DEVICE, 0},
    {RSRE_KMSG_FS_ERROR, "critical target error", NULL, EX_DEVICE, 0},
    /* kernel/hung_task.c */
    {RSRE_KMSG_HUNG_TASK, "blocked for more than", NULL, EX_HUNG_TASK, 0},
};

#define NPATTERNS (sizeof(patterns) / sizeof(patterns[0]))

/* Where EX_DEVICE finds the device: after `start`, up to the first byte of `stop`. */
static const struct {
    const char *start;
    const char *stop;
} device_markers[] = {
    {"(device ", ")"}, {"-fs (", ")"}, {"XFS (", ")"}, {"dev ", ", )"}, {"device ", " .,:)"},
};

size_t rsre_kmsg_pattern_count(void) {
    return NPATTERNS;
}

const char *rsre_kmsg_pattern_needle(size_t i, int *kind) {
    if (i >= NPATTERNS) {
        return NULL;
    }
    if (kind) {
        *kind = patterns[i].kind;
    }
    return patterns[i].needle;
}

static const char *find(const char *hay, size_t n, const char *needle) {
    return memmem(hay, n, needle, strlen(needle));
}

/* Appends bytes of s (up to a stop byte or control character) to out[*o..cap). */
static void put_until(char *out, size_t cap, size_t *o, const char *s, const char *end,
                      const char *stop) {
    for (; s < end && *o + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((stop && strchr(stop, c)) || c < 0x20 || c >= 0x7f) {
            break;
        }
        out[(*o)++] = (char)c;
    }
    out[*o] = '\0';
}

static void put_str(char *out, size_t cap, size_t *o, const char *s) {
    put_until(out, cap, o, s, s + strlen(s), NULL);
}

static void extract(enum extractor ex, const char *msg, size_t len, char *out, size_t cap) {
    const char *end = msg + len, *p, *q;
    size_t o = 0;
    out[0] = '\0';
    switch (ex) {
    case EX_NONE:
        return;
    case EX_KILLED_PROCESS: {
        p = find(msg, len, "Killed process ");
        if (!p) {
            return;
        }
        p += strlen("Killed process ");
        const char *pid = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        size_t pidlen = (size_t)(p - pid);
        if (pidlen == 0 || pidlen > 10 || end - p < 2 || p[0] != ' ' || p[1] != '(') {
            return;
        }
        /* "Killed process %d (%s) total-vm:...": the comm may itself contain ')', e.g.
         * "((resolved))", so it ends at ") total-vm" when that follows, else at the first ')'. */
        const char *cstart = p + 2, *cend = find(cstart, (size_t)(end - cstart), ") total-vm");
        if (!cend) {
            cend = memchr(cstart, ')', (size_t)(end - cstart));
        }
        put_until(out, cap, &o, cstart, cend ? cend : end, NULL);
        put_str(out, cap, &o, "[");
        put_until(out, cap, &o, pid, pid + pidlen, NULL);
        put_str(out, cap, &o, "]");
        return;
    }
    case EX_OOM_KILL_TASK: {
        p = find(msg, len, ",task=");
        q = find(msg, len, ",pid=");
        if (!p) {
            return;
        }
        put_until(out, cap, &o, p + 6, end, ",");
        if (q) {
            put_str(out, cap, &o, "[");
            put_until(out, cap, &o, q + 5, end, ",");
            put_str(out, cap, &o, "]");
        }
        return;
    }
    case EX_DEVICE:
        for (size_t i = 0; i < sizeof(device_markers) / sizeof(device_markers[0]); i++) {
            p = find(msg, len, device_markers[i].start);
            if (p) {
                put_until(out, cap, &o, p + strlen(device_markers[i].start), end,
                          device_markers[i].stop);
                if (o > 0) {
                    return;
                }
            }
        }
        return;
    case EX_HUNG_TASK:
        p = find(msg, len, "task ");
        q = find(msg, len, " blocked for more than");
        if (p && q && p + 5 < q) {
            put_until(out, cap, &o, p + 5, q, NULL);
        }
        return;
    }
}

int rsre_kmsg_match_row(const char *msg, size_t len) {
    for (size_t i = 0; i < NPATTERNS; i++) {
        const struct pattern *r = &patterns[i];
        const char *p = find(msg, len, r->needle);
        if (!p) {
            continue;
        }
        if (r->needle2) {
            size_t off = (size_t)(p - msg) + strlen(r->needle);
            if (!find(msg + off, len - off, r->needle2)) {
                continue;
            }
        }
        return (int)i;
    }
    return -1;
}

int rsre_kmsg_classify(const char *msg, size_t len, char *subject, size_t cap, int *dedupe) {
    if (cap) {
        subject[0] = '\0';
    }
    *dedupe = 0;
    int row = rsre_kmsg_match_row(msg, len);
    if (row < 0) {
        return 0;
    }
    const struct pattern *r = &patterns[row];
    if (cap) {
        extract(r->ex, msg, len, subject, cap);
    }
    *dedupe = r->dedupe;
    return r->kind;
}

/* ---- filtering ------------------------------------------------------------------------------ */

#define TOKEN 60000u /* one event in bucket units (1/60000 event per refill unit) */

void rsre_kmsg_state_init(struct rsre_kmsg_state *st, uint32_t rate_per_min) {
    memset(st, 0, sizeof(*st));
    st->rate_per_min = rate_per_min;
}

static int allow(struct rsre_kmsg_state *st, int kind, int64_t now_ms) {
    if (st->rate_per_min == 0) {
        return 1;
    }
    uint64_t cap = (uint64_t)st->rate_per_min * TOKEN;
    struct rsre_kmsg_bucket *b = &st->_bucket[kind];
    if (!b->init) {
        b->init = 1;
        b->tokens = cap;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) {
        /* A minute refills the whole bucket; cap the interval so the product cannot overflow. */
        uint64_t dt = (uint64_t)(now_ms - b->last_ms);
        dt = dt > 60000 ? 60000 : dt;
        b->tokens += dt * st->rate_per_min;
        b->tokens = b->tokens > cap ? cap : b->tokens;
        b->last_ms = now_ms;
    } else if (now_ms < b->last_ms) {
        b->last_ms = now_ms; /* kmsg time went back (should not happen): no refill */
    }
    if (b->tokens >= TOKEN) {
        b->tokens -= TOKEN;
        return 1;
    }
    return 0;
}

/* Copies text for a proto string: at most max bytes, printable ASCII (kmsg escapes everything
 * else as \xNN already), anything else as '?'. */
static void copy_text(char *dst, size_t max, const char *s, size_t n) {
    n = n > max ? max : n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x20 && c != '\t') || c >= 0x7f ? '?' : (char)c;
    }
    dst[n] = '\0';
}

int rsre_kmsg_process(struct rsre_kmsg_state *st, const char *buf, size_t len,
                      struct rsre_kmsg_event *ev) {
    struct rsre_kmsg_record rec;
    if (rsre_kmsg_parse_record(buf, len, &rec) != 0) {
        st->stats.parse_errors++;
        return RSRE_EPARSE;
    }
    st->stats.records++;
    if (st->_have_seq && rec.seq > st->_last_seq + 1) {
        st->stats.lost += rec.seq - st->_last_seq - 1;
    }
    st->_have_seq = 1;
    st->_last_seq = rec.seq;
    if (rec.facility != 0) {
        return 0;
    }
    char subject[RSRE_KMSG_MAX_SUBJECT + 1];
    int dedupe;
    int kind = rsre_kmsg_classify(rec.msg, rec.msg_len, subject, sizeof(subject), &dedupe);
    if (!kind) {
        return 0;
    }
    if (dedupe && subject[0]) {
        uint64_t d =
            rec.usec > st->_last.usec ? rec.usec - st->_last.usec : st->_last.usec - rec.usec;
        if (st->_last.kind == kind && d <= 1000000 &&
            strncmp(st->_last.subject, subject, sizeof(st->_last.subject) - 1) == 0) {
            st->stats.merged++;
            st->_last.usec = rec.usec;
            return 0;
        }
        st->_last.kind = kind;
        st->_last.usec = rec.usec;
        size_t sl = strnlen(subject, sizeof(st->_last.subject) - 1);
        memcpy(st->_last.subject, subject, sl);
        st->_last.subject[sl] = '\0';
    }
    st->stats.matched++;
    if (!allow(st, kind, (int64_t)(rec.usec / 1000))) {
        st->_bucket[kind].suppressed++;
        st->stats.suppressed++;
        return 0;
    }
    ev->kind = kind;
    ev->priority = rec.priority;
    ev->seq = rec.seq;
    ev->usec = rec.usec;
    ev->suppressed = st->_bucket[kind].suppressed;
    st->_bucket[kind].suppressed = 0;
    copy_text(ev->message, RSRE_KMSG_MAX_MESSAGE, rec.msg, rec.msg_len);
    snprintf(ev->subject, sizeof(ev->subject), "%s", subject);
    st->stats.emitted++;
    return 1;
}

RobotSre__Agent__V1__Signal *rsre_kmsg_build_signal(const struct rsre_kmsg_event *ev,
                                                    int64_t observed_unix_ms,
                                                    struct rsre_kmsg_signal *out) {
    robot_sre__agent__v1__signal__init(&out->sig);
    robot_sre__agent__v1__kernel_event__init(&out->ev);
    out->ev.kind = (RobotSre__Agent__V1__KernelEventKind)ev->kind;
    out->ev.message = (char *)ev->message;
    out->ev.monotonic_usec = ev->usec;
    out->ev.suppressed = ev->suppressed;
    out->ev.priority = ev->priority;
    out->ev.subject = (char *)ev->subject;
    out->sig.observed_unix_ms = observed_unix_ms;
    out->sig.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_KERNEL_EVENT;
    out->sig.kernel_event = &out->ev;
    return &out->sig;
}

/* ---- PSI ------------------------------------------------------------------------------------ */

#define PSI_MAX_TEXT 4096

static int parse_pct(const char *s, size_t n, double *out) {
    char tmp[32];
    if (n == 0 || n >= sizeof(tmp)) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((s[i] < '0' || s[i] > '9') && s[i] != '.') {
            return -1;
        }
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (*end || !isfinite(v) || v < 0.0 || v > 100.0) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_psi_line(const char *p, const char *end, struct rsre_psi_line *l) {
    enum { AVG10 = 1, AVG60 = 2, AVG300 = 4, TOTAL = 8 };
    unsigned seen = 0;
    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }
        if (p >= end) {
            break;
        }
        const char *tok = p;
        while (p < end && *p != ' ') {
            p++;
        }
        size_t tl = (size_t)(p - tok);
        const char *eq = memchr(tok, '=', tl);
        if (!eq || eq == tok) {
            return -1;
        }
        size_t kl = (size_t)(eq - tok), vl = tl - kl - 1;
        const char *v = eq + 1;
        unsigned bit = 0;
        int rc = 0;
        if (kl == 5 && !memcmp(tok, "avg10", 5)) {
            bit = AVG10;
            rc = parse_pct(v, vl, &l->avg10);
        } else if (kl == 5 && !memcmp(tok, "avg60", 5)) {
            bit = AVG60;
            rc = parse_pct(v, vl, &l->avg60);
        } else if (kl == 6 && !memcmp(tok, "avg300", 6)) {
            bit = AVG300;
            rc = parse_pct(v, vl, &l->avg300);
        } else if (kl == 5 && !memcmp(tok, "total", 5)) {
            bit = TOTAL;
            rc = parse_u64(v, vl, &l->total_usec);
        }
        if (rc || (bit && (seen & bit))) {
            return -1;
        }
        seen |= bit;
    }
    return seen == (AVG10 | AVG60 | AVG300 | TOTAL) ? 0 : -1;
}

int rsre_psi_parse(const char *text, size_t len, struct rsre_psi *out) {
    memset(out, 0, sizeof(*out));
    if (!text || len > PSI_MAX_TEXT || memchr(text, '\0', len)) {
        return RSRE_EPARSE;
    }
    const char *end = text + len;
    for (const char *p = text; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le > p) {
            struct rsre_psi_line *l;
            int *has;
            if ((size_t)(le - p) > 5 && !memcmp(p, "some ", 5)) {
                l = &out->some;
                has = &out->has_some;
            } else if ((size_t)(le - p) > 5 && !memcmp(p, "full ", 5)) {
                l = &out->full;
                has = &out->has_full;
            } else {
                memset(out, 0, sizeof(*out));
                return RSRE_EPARSE;
            }
            if (*has || parse_psi_line(p + 5, le, l) != 0) {
                memset(out, 0, sizeof(*out));
                return RSRE_EPARSE;
            }
            *has = 1;
        }
        p = nl ? nl + 1 : end;
    }
    if (!out->has_some) {
        memset(out, 0, sizeof(*out));
        return RSRE_EPARSE;
    }
    return 0;
}

static void fill_line(RobotSre__Agent__V1__PsiLine *m, const struct rsre_psi_line *l) {
    robot_sre__agent__v1__psi_line__init(m);
    m->avg10 = l->avg10;
    m->avg60 = l->avg60;
    m->avg300 = l->avg300;
    m->total_usec = l->total_usec;
}

RobotSre__Agent__V1__Signal *rsre_psi_build_signal(enum rsre_psi_resource r,
                                                   const struct rsre_psi *p,
                                                   int64_t observed_unix_ms,
                                                   struct rsre_psi_signal *out) {
    robot_sre__agent__v1__signal__init(&out->sig);
    robot_sre__agent__v1__pressure_stall__init(&out->ps);
    out->ps.resource = (RobotSre__Agent__V1__PsiResource)r;
    fill_line(&out->some, &p->some);
    out->ps.some = &out->some;
    if (p->has_full) {
        fill_line(&out->full, &p->full);
        out->ps.full = &out->full;
    }
    out->sig.observed_unix_ms = observed_unix_ms;
    out->sig.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_PRESSURE_STALL;
    out->sig.pressure_stall = &out->ps;
    return &out->sig;
}
