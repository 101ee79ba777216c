#include "agent/fs_predict.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

/* ---- usage ---------------------------------------------------------------------------------- */

static uint64_t mul_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

void rsre_fs_usage_from_statvfs(const struct statvfs *st, struct rsre_fs_usage *out) {
    uint64_t frsize = st->f_frsize ? (uint64_t)st->f_frsize : (uint64_t)st->f_bsize;
    out->bytes_total = mul_sat((uint64_t)st->f_blocks, frsize);
    out->bytes_free = mul_sat((uint64_t)st->f_bfree, frsize);
    out->bytes_avail = mul_sat((uint64_t)st->f_bavail, frsize);
    out->inodes_total = (uint64_t)st->f_files;
    out->inodes_free = (uint64_t)st->f_ffree;
    /* The proto's invariants; real filesystems satisfy them, broken FUSE ones may not. */
    if (out->bytes_free > out->bytes_total) {
        out->bytes_free = out->bytes_total;
    }
    if (out->bytes_avail > out->bytes_free) {
        out->bytes_avail = out->bytes_free;
    }
    if (out->inodes_free > out->inodes_total) {
        out->inodes_free = out->inodes_total;
    }
}

/* ---- estimator ------------------------------------------------------------------------------ */

void rsre_fs_predict_init(struct rsre_fs_predict *p, uint32_t window_s) {
    p->window_s = window_s ? window_s : 1;
    p->_bytes_total = p->_inodes_total = 0;
    p->_head = p->_n = 0;
}

size_t rsre_fs_predict_count(const struct rsre_fs_predict *p) {
    return p->_n;
}

static struct rsre_fs_sample *at(struct rsre_fs_predict *p, size_t i) {
    return &p->_ring[(p->_head + i) % RSRE_FS_MAX_SAMPLES];
}

static const struct rsre_fs_sample *cat(const struct rsre_fs_predict *p, size_t i) {
    return &p->_ring[(p->_head + i) % RSRE_FS_MAX_SAMPLES];
}

void rsre_fs_predict_add(struct rsre_fs_predict *p, int64_t t_ms, const struct rsre_fs_usage *u) {
    struct rsre_fs_sample s = {t_ms, u->bytes_total - u->bytes_free,
                               u->inodes_total - u->inodes_free};
    if (p->_n > 0) {
        const struct rsre_fs_sample *newest = at(p, p->_n - 1);
        if (t_ms < newest->t_ms || u->bytes_total != p->_bytes_total ||
            u->inodes_total != p->_inodes_total) {
            p->_head = p->_n = 0;
        } else if (t_ms == newest->t_ms) {
            *at(p, p->_n - 1) = s;
            return;
        }
    }
    p->_bytes_total = u->bytes_total;
    p->_inodes_total = u->inodes_total;
    if (p->_n == RSRE_FS_MAX_SAMPLES) {
        p->_head = (p->_head + 1) % RSRE_FS_MAX_SAMPLES;
        p->_n--;
    }
    *at(p, p->_n) = s;
    p->_n++;
    int64_t oldest_ok = t_ms - (int64_t)p->window_s * 1000;
    while (p->_n > 1 && at(p, 0)->t_ms < oldest_ok) {
        p->_head = (p->_head + 1) % RSRE_FS_MAX_SAMPLES;
        p->_n--;
    }
}

int rsre_fs_predict_rates(const struct rsre_fs_predict *p, double *bytes_per_s,
                          double *inodes_per_s, uint32_t *span_s) {
    *bytes_per_s = *inodes_per_s = 0.0;
    *span_s = 0;
    if (p->_n < 2) {
        return RSRE_ENOTFOUND;
    }
    const struct rsre_fs_sample *first = cat(p, 0), *last = cat(p, p->_n - 1);
    if (last->t_ms == first->t_ms) {
        return RSRE_ENOTFOUND;
    }
    /* Coordinates relative to the oldest sample keep the sums small and exact for exact
     * input (used values differ by far less than 2^53 between samples). */
    double n = (double)p->_n, st = 0, sb = 0, si = 0;
    for (size_t i = 0; i < p->_n; i++) {
        const struct rsre_fs_sample *s = cat(p, i);
        st += (double)(s->t_ms - first->t_ms) / 1000.0;
        sb += (double)(int64_t)(s->used_bytes - first->used_bytes);
        si += (double)(int64_t)(s->used_inodes - first->used_inodes);
    }
    double mt = st / n, mb = sb / n, mi = si / n;
    double stt = 0, stb = 0, sti = 0;
    for (size_t i = 0; i < p->_n; i++) {
        const struct rsre_fs_sample *s = cat(p, i);
        double dt = (double)(s->t_ms - first->t_ms) / 1000.0 - mt;
        stt += dt * dt;
        stb += dt * ((double)(int64_t)(s->used_bytes - first->used_bytes) - mb);
        sti += dt * ((double)(int64_t)(s->used_inodes - first->used_inodes) - mi);
    }
    if (!(stt > 0.0)) {
        return RSRE_ENOTFOUND;
    }
    *bytes_per_s = stb / stt;
    *inodes_per_s = sti / stt;
    if (!isfinite(*bytes_per_s) || !isfinite(*inodes_per_s)) {
        *bytes_per_s = *inodes_per_s = 0.0;
        return RSRE_ENOTFOUND;
    }
    *span_s = (uint32_t)((last->t_ms - first->t_ms) / 1000);
    return 0;
}

int64_t rsre_fs_seconds_to(uint64_t value, uint64_t floor_v, double rate_down) {
    if (value <= floor_v) {
        return 0;
    }
    if (!(rate_down > 0.0) || !isfinite(rate_down)) {
        return -1;
    }
    double secs = (double)(value - floor_v) / rate_down;
    if (!(secs <= (double)RSRE_FS_MAX_ETA_S)) {
        return -1;
    }
    /* Exact quotients computed with a rounding error just above an integer stay that integer. */
    double r = ceil(secs - 1e-9 * (secs > 1.0 ? secs : 1.0));
    return r < 1.0 ? 1 : (int64_t)r;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

void rsre_fs_evaluate(enum rsre_fs_role role, const struct rsre_fs_usage *u,
                      const struct rsre_kubelet_thresholds *t, int gc_applies,
                      const struct rsre_fs_predict *p, struct rsre_fs_eval *out) {
    memset(out, 0, sizeof(*out));
    int sa = role == RSRE_FS_IMAGEFS ? RSRE_KSIG_IMAGEFS_AVAILABLE : RSRE_KSIG_NODEFS_AVAILABLE;
    int si = role == RSRE_FS_IMAGEFS ? RSRE_KSIG_IMAGEFS_INODES_FREE : RSRE_KSIG_NODEFS_INODES_FREE;
    out->role = role;
    out->usage = *u;
    out->evict_avail = t->hard[sa];
    out->evict_inodes = t->hard[si];
    out->evict_avail_effective = rsre_kubelet_effective(&t->hard[sa], u->bytes_total);
    out->evict_inodes_effective =
        u->inodes_total ? rsre_kubelet_effective(&t->hard[si], u->inodes_total) : 0;
    out->gc_applies = gc_applies && t->gc_high_percent < 100;
    if (gc_applies) {
        out->gc_high_percent = t->gc_high_percent;
        out->gc_low_percent = t->gc_low_percent;
        out->gc_trigger_avail = rsre_kubelet_gc_trigger_avail(u->bytes_total, t->gc_high_percent);
    }
    out->source = t->source;
    uint32_t touched = (1u << sa) | (1u << si) | (gc_applies ? 1u << RSRE_KSIG_COUNT : 0);
    if (t->overridden & touched) {
        out->source = RSRE_KSRC_OVERRIDE;
    }

    double rb = 0.0, ri = 0.0;
    uint32_t span = 0;
    if (p && rsre_fs_predict_rates(p, &rb, &ri, &span) == 0) {
        out->fill_rate_bytes_per_sec = rb;
        out->inode_rate_per_sec = ri;
        out->fill_window_sec = span;
    }
    /* Each ETA is the time until kubelet acts: eviction when the observed value is strictly
     * below the effective threshold, image GC when avail < gc_trigger_avail. The "floor" is
     * therefore the largest value at which kubelet acts. */
    out->seconds_to_eviction =
        out->evict_avail_effective
            ? rsre_fs_seconds_to(u->bytes_avail, out->evict_avail_effective - 1, rb)
            : -1;
    out->seconds_to_inode_eviction =
        out->evict_inodes_effective
            ? rsre_fs_seconds_to(u->inodes_free, out->evict_inodes_effective - 1, ri)
            : -1;
    out->seconds_to_gc_high =
        out->gc_trigger_avail ? rsre_fs_seconds_to(u->bytes_avail, out->gc_trigger_avail - 1, rb)
                              : -1;
}

/* Copies `s` into a buffer of `cap` bytes, at most `max` bytes of text, control characters and
 * DEL replaced by '?'; a multi-byte UTF-8 sequence cut at the end is dropped. */
static void copy_line(char *dst, size_t cap, const char *s, size_t max) {
    size_t n = 0;
    if (s) {
        size_t lim = cap - 1 < max ? cap - 1 : max;
        for (; s[n] && n < lim; n++) {
            unsigned char c = (unsigned char)s[n];
            dst[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
        if (s[n]) {
            while (n > 0 && ((unsigned char)dst[n - 1] & 0xC0) == 0x80) {
                n--;
            }
            if (n > 0 && ((unsigned char)dst[n - 1] & 0xC0) == 0xC0) {
                n--;
            }
        }
    }
    dst[n] = '\0';
}

static void fill_threshold(RobotSre__Agent__V1__EvictionThreshold *m,
                           const struct rsre_kubelet_threshold *t, uint64_t effective) {
    robot_sre__agent__v1__eviction_threshold__init(m);
    if (t->set) {
        m->quantity = t->quantity;
        m->percent = t->quantity ? 0.0 : t->percent;
        m->effective = effective;
    }
}

RobotSre__Agent__V1__Signal *rsre_fs_build_signal(const struct rsre_fs_eval *e, const char *path,
                                                  const char *device, int64_t observed_unix_ms,
                                                  struct rsre_fs_signal *out) {
    robot_sre__agent__v1__signal__init(&out->sig);
    robot_sre__agent__v1__filesystem_usage__init(&out->fs);
    copy_line(out->path, sizeof(out->path), path && path[0] == '/' ? path : "/", 4096);
    copy_line(out->device, sizeof(out->device), device, 1024);
    RobotSre__Agent__V1__FilesystemUsage *f = &out->fs;
    f->which = (RobotSre__Agent__V1__FilesystemRole)e->role;
    f->path = out->path;
    f->device = out->device;
    f->bytes_total = e->usage.bytes_total;
    f->bytes_free = e->usage.bytes_free;
    f->bytes_avail = e->usage.bytes_avail;
    f->inodes_total = e->usage.inodes_total;
    f->inodes_free = e->usage.inodes_free;
    fill_threshold(&out->avail, &e->evict_avail, e->evict_avail_effective);
    fill_threshold(&out->inodes, &e->evict_inodes, e->evict_inodes_effective);
    f->eviction_available = &out->avail;
    f->eviction_inodes_free = &out->inodes;
    f->threshold_source = (RobotSre__Agent__V1__ThresholdSource)e->source;
    f->image_gc_high_percent = e->gc_high_percent;
    f->image_gc_low_percent = e->gc_low_percent;
    f->fill_rate_bytes_per_sec = e->fill_rate_bytes_per_sec;
    f->fill_window_sec = e->fill_window_sec;
    f->seconds_to_eviction = e->seconds_to_eviction;
    f->seconds_to_gc_high = e->seconds_to_gc_high;
    f->seconds_to_inode_eviction = e->seconds_to_inode_eviction;
    out->sig.observed_unix_ms = observed_unix_ms;
    out->sig.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_FILESYSTEM;
    out->sig.filesystem = f;
    return &out->sig;
}

/* ---- mountinfo ------------------------------------------------------------------------------ */

/* Copies a mountinfo field (octal escapes such as \040 decoded) into dst. */
static void unescape(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            dst[o++] = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            dst[o++] = s[i];
        }
    }
    dst[o] = '\0';
}

/* True when mount point `m` contains `path` (m is "/" or path == m or path starts with m/). */
static int contains(const char *m, const char *path) {
    size_t n = strlen(m);
    if (n == 1 && m[0] == '/') {
        return path[0] == '/';
    }
    return strncmp(m, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int rsre_fs_mountinfo_find(const char *text, size_t len, unsigned major, unsigned minor,
                           const char *path, char *mnt, size_t mnt_len, char *dev, size_t dev_len) {
    mnt[0] = dev[0] = '\0';
    size_t best = 0;
    int found = 0;
    const char *end = text + len;
    for (const char *line = text; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        /* Split into at most 64 space-separated fields. */
        const char *f[64];
        size_t fl[64], nf = 0;
        for (const char *q = line; q < le && nf < 64;) {
            while (q < le && *q == ' ') {
                q++;
            }
            if (q >= le) {
                break;
            }
            const char *s = q;
            while (q < le && *q != ' ') {
                q++;
            }
            f[nf] = s;
            fl[nf++] = (size_t)(q - s);
        }
        line = nl ? nl + 1 : end;
        size_t sep = 0;
        for (size_t i = 6; i < nf; i++) {
            if (fl[i] == 1 && f[i][0] == '-') {
                sep = i;
                break;
            }
        }
        if (nf < 7 || sep == 0 || sep + 2 >= nf || fl[2] > 23) {
            continue;
        }
        char mm[24];
        memcpy(mm, f[2], fl[2]);
        mm[fl[2]] = '\0';
        unsigned ma, mi;
        char extra;
        if (sscanf(mm, "%u:%u%c", &ma, &mi, &extra) != 2 || ma != major || mi != minor) {
            continue;
        }
        char point[4096];
        unescape(point, sizeof(point), f[4], fl[4]);
        size_t plen = strlen(point);
        int inside = path && contains(point, path);
        if (found && !(inside && plen > best)) {
            continue;
        }
        if (!found || inside) {
            if (inside) {
                best = plen;
            }
            found = 1;
            snprintf(mnt, mnt_len, "%s", point);
            char src[4096];
            unescape(src, sizeof(src), f[sep + 2], fl[sep + 2]);
            if (src[0] == '/') {
                snprintf(dev, dev_len, "%s", src);
            } else {
                dev[0] = '\0';
            }
        }
    }
    return found ? 0 : RSRE_ENOTFOUND;
}
