/*
 * Filesystem collector: nodefs (kubelet_root) and imagefs (runtime_root) usage, kubelet's
 * thresholds for them and the fill-rate projections, as FilesystemUsage signals. The
 * arithmetic lives in fs_predict.c and kubelet_config.c; this file only reads the node
 * (statvfs, stat, mountinfo, the kubelet config file) and emits.
 *
 * statvfs and stat run synchronously on the loop thread: both are answered from the kernel's
 * in-memory superblock/inode for local filesystems (microseconds). kubelet_root and
 * runtime_root are local on every supported node; a network filesystem there is not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/fs_predict.h"
#include "agent/kubelet_config.h"
#include "common/error.h"
#include "common/log.h"

#define MOD "col_fs"
#define MAX_OVERRIDES 32
#define MOUNTINFO_MAX (2u << 20)

struct file_id {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim, ctim;
};

struct fs_target {
    enum rsre_fs_role role;
    const char *dir; /* points into the agent config */
    struct rsre_fs_predict predict;
    dev_t dev;
    int have_dev;
    char mountpoint[4096];
    char device[1024];
    int failing; /* last statvfs failed (logged once per failure streak) */
    struct rsre_fs_usage usage;
    int have_usage;
};

struct override {
    int kind;
    uint64_t quantity;
    double percent;
};

struct fs_state {
    struct rsre_agent *agent;
    const struct rsre_agent_config *cfg;
    struct file_id kcfg_id;
    int kcfg_checked;
    struct rsre_kubelet_thresholds kubelet;   /* from the file or the defaults */
    struct rsre_kubelet_thresholds effective; /* kubelet + overrides */
    struct override ov[MAX_OVERRIDES];
    size_t nov;
    struct fs_target t[2]; /* nodefs, imagefs */
    int shared, shared_known;
    int64_t imagefs_observed_ms;
};

/* The one filesystem collector's state (see fs_predict.h). */
static struct fs_state *g_fs;

/* ---- thresholds ----------------------------------------------------------------------------- */

static void apply_overrides(struct fs_state *s) {
    s->effective = s->kubelet;
    /* GC high/low are checked as a pair (low < high): apply the pair in the order that keeps
     * each intermediate state valid, i.e. high first when it grows, low first otherwise. */
    int gc_first_low = 0;
    for (size_t i = 0; i < s->nov; i++) {
        if (s->ov[i].kind == RSRE_KOVR_IMAGE_GC_HIGH &&
            (int)s->ov[i].percent < s->effective.gc_high_percent) {
            gc_first_low = 1;
        }
    }
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < s->nov; i++) {
            const struct override *o = &s->ov[i];
            int gc = o->kind == RSRE_KOVR_IMAGE_GC_HIGH || o->kind == RSRE_KOVR_IMAGE_GC_LOW;
            int want_pass = !gc ? 0 : (o->kind == RSRE_KOVR_IMAGE_GC_LOW) == gc_first_low ? 1 : 2;
            if (want_pass != pass) {
                continue;
            }
            int rc = rsre_kubelet_apply_override(&s->effective, o->kind, o->quantity, o->percent);
            if (rc) {
                RSRE_LOG(RSRE_LOG_WARN, MOD,
                         "threshold override kind=%d quantity=%llu "
                         "percent=%g ignored: invalid or inconsistent with the other thresholds",
                         o->kind, (unsigned long long)o->quantity, o->percent);
            }
        }
    }
}

static void file_identity(const char *path, struct file_id *id) {
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (stat(path, &st) == 0) {
        id->exists = 1;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        id->size = st.st_size;
        id->mtim = st.st_mtim;
        id->ctim = st.st_ctim;
    }
}

static int same_id(const struct file_id *a, const struct file_id *b) {
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
           a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* Re-reads the kubelet config when it appeared, disappeared or changed. A malformed or
 * unreadable file keeps the thresholds of the last good read (kubelet reads its config only
 * at start, so the running kubelet still uses those); with no good read yet, the defaults
 * with source UNKNOWN. */
static void maybe_reload(struct fs_state *s) {
    const char *path = s->cfg->kubelet_config;
    struct file_id id;
    if (!path[0]) {
        if (!s->kcfg_checked) {
            rsre_kubelet_defaults(&s->kubelet);
            apply_overrides(s);
            s->kcfg_checked = 1;
        }
        return;
    }
    file_identity(path, &id);
    if (s->kcfg_checked && same_id(&id, &s->kcfg_id)) {
        return;
    }
    int first = !s->kcfg_checked;
    s->kcfg_checked = 1;
    s->kcfg_id = id;
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    int rc = rsre_kubelet_load(path, &t, &err);
    if (rc == 0) {
        s->kubelet = t;
        RSRE_LOG(RSRE_LOG_INFO, MOD,
                 "kubelet config %s loaded: nodefs.available=%s "
                 "imagefs.available=%s gc_high=%d gc_low=%d eviction_hard_from_config=%d",
                 path, t.hard[RSRE_KSIG_NODEFS_AVAILABLE].set ? "set" : "none",
                 t.hard[RSRE_KSIG_IMAGEFS_AVAILABLE].set ? "set" : "none", t.gc_high_percent,
                 t.gc_low_percent, t.hard_from_config);
    } else if (rc == -ENOENT) {
        s->kubelet = t; /* defaults, source KUBELET_DEFAULTS */
        RSRE_LOG(first ? RSRE_LOG_INFO : RSRE_LOG_WARN, MOD,
                 "kubelet config %s not found: using kubelet defaults", path);
    } else {
        int keep = s->kubelet.source == RSRE_KSRC_CONFIG;
        if (!keep) {
            s->kubelet = t; /* defaults with source UNKNOWN */
        }
        RSRE_LOG(RSRE_LOG_ERROR, MOD, "kubelet config %s:%d:%d: %s (%s); %s", path, err.line,
                 err.col, err.msg, rsre_strerror(rc),
                 keep ? "keeping the thresholds of the last good read"
                      : "using kubelet defaults, source unknown");
    }
    apply_overrides(s);
}

/* ---- reading the filesystems ------------------------------------------------------------- */

static void lookup_mount(struct fs_state *s, struct fs_target *t) {
    char path[RSRE_AGENT_MAX_PATH + 32];
    snprintf(path, sizeof(path), "%s/self/mountinfo",
             s->cfg->proc_root[0] ? s->cfg->proc_root : "/proc");
    snprintf(t->mountpoint, sizeof(t->mountpoint), "%s", t->dir);
    t->device[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    char *buf = malloc(MOUNTINFO_MAX);
    size_t len = 0;
    if (buf) {
        ssize_t r;
        while (len < MOUNTINFO_MAX &&
               ((r = read(fd, buf + len, MOUNTINFO_MAX - len)) > 0 || (r < 0 && errno == EINTR))) {
            len += r > 0 ? (size_t)r : 0;
        }
        char mnt[4096], dev[1024];
        if (rsre_fs_mountinfo_find(buf, len, major(t->dev), minor(t->dev), t->dir, mnt, sizeof(mnt),
                                   dev, sizeof(dev)) == 0) {
            snprintf(t->mountpoint, sizeof(t->mountpoint), "%s", mnt);
            snprintf(t->device, sizeof(t->device), "%s", dev);
        }
        free(buf);
    }
    close(fd);
}

/* statvfs + stat of one target; returns 0 or a negative errno (logged once per streak). */
static int read_target(struct fs_state *s, struct fs_target *t) {
    struct stat st;
    struct statvfs vfs;
    if (stat(t->dir, &st) != 0 || statvfs(t->dir, &vfs) != 0) {
        int e = errno;
        if (!t->failing) {
            RSRE_LOG(RSRE_LOG_WARN, MOD, "%s %s: %s",
                     t->role == RSRE_FS_NODEFS ? "nodefs" : "imagefs", t->dir, strerror(e));
        }
        t->failing = 1;
        t->have_usage = 0;
        return -e;
    }
    if (t->failing) {
        RSRE_LOG(RSRE_LOG_INFO, MOD, "%s %s readable again",
                 t->role == RSRE_FS_NODEFS ? "nodefs" : "imagefs", t->dir);
    }
    t->failing = 0;
    if (!t->have_dev || t->dev != st.st_dev) {
        t->dev = st.st_dev;
        t->have_dev = 1;
        lookup_mount(s, t);
    }
    rsre_fs_usage_from_statvfs(&vfs, &t->usage);
    t->have_usage = 1;
    rsre_fs_predict_add(&t->predict, (int64_t)(uv_hrtime() / 1000000u), &t->usage);
    return 0;
}

static int fs_init(struct rsre_agent *a, void **state) {
    if (g_fs) {
        return -EBUSY; /* one filesystem collector per process */
    }
    struct fs_state *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->agent = a;
    s->cfg = rsre_agent_config(a);
    rsre_kubelet_defaults(&s->kubelet);
    s->effective = s->kubelet;
    s->t[0].role = RSRE_FS_NODEFS;
    s->t[0].dir = s->cfg->kubelet_root;
    s->t[1].role = RSRE_FS_IMAGEFS;
    s->t[1].dir = s->cfg->runtime_root;
    for (int i = 0; i < 2; i++) {
        rsre_fs_predict_init(&s->t[i].predict, s->cfg->fill_window_s);
    }
    g_fs = s;
    *state = s;
    return 0;
}

static void fs_destroy(void *state) {
    if (g_fs == state) {
        g_fs = NULL;
    }
    free(state);
}

static void fs_collect(struct rsre_agent *a, void *state, struct rsre_collect_run *run) {
    struct fs_state *s = state;
    maybe_reload(s);
    int rc[2];
    for (int i = 0; i < 2; i++) {
        rc[i] = s->t[i].dir[0] ? read_target(s, &s->t[i]) : RSRE_ENOTFOUND;
    }
    if (rc[0] == 0 && rc[1] == 0) {
        int shared = s->t[0].dev == s->t[1].dev;
        if (!s->shared_known || shared != s->shared) {
            RSRE_LOG(RSRE_LOG_INFO, MOD, "imagefs %s is %s nodefs %s", s->t[1].dir,
                     shared ? "on the same filesystem as" : "a separate filesystem from",
                     s->t[0].dir);
        }
        s->shared = shared;
        s->shared_known = 1;
    }
    int64_t now = rsre_now_unix_ms();
    int emitted = 0, first_err = 0;
    for (int i = 0; i < 2; i++) {
        struct fs_target *t = &s->t[i];
        if (rc[i]) {
            first_err = first_err ? first_err : rc[i];
            continue;
        }
        int gc_applies = t->role == RSRE_FS_IMAGEFS || (s->shared_known && s->shared);
        struct rsre_fs_eval e;
        rsre_fs_evaluate(t->role, &t->usage, &s->effective, gc_applies, &t->predict, &e);
        struct rsre_fs_signal *sig = malloc(sizeof(*sig));
        if (!sig) {
            first_err = first_err ? first_err : -ENOMEM;
            continue;
        }
        int erc = rsre_agent_emit(a, rsre_fs_build_signal(&e, t->mountpoint, t->device, now, sig));
        free(sig);
        if (erc) {
            first_err = first_err ? first_err : erc;
            continue;
        }
        emitted++;
        if (t->role == RSRE_FS_IMAGEFS) {
            s->imagefs_observed_ms = now;
        }
    }
    /* One filesystem missing (no runtime root on this node yet) is not a collector failure;
     * neither one readable is. */
    rsre_collect_done(run, emitted ? 0 : (first_err ? first_err : RSRE_ENOTFOUND));
}

const struct rsre_collector_desc rsre_collector_filesystem = {
    .name = "filesystem",
    .interval_offset = offsetof(struct rsre_agent_config, filesystem_ms),
    .init = fs_init,
    .collect = fs_collect,
    .destroy = fs_destroy,
    .capability = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_FILESYSTEM,
};

/* ---- accessors ---------------------------------------------------------------------------- */

void rsre_fs_gc_thresholds(struct rsre_agent *a, double *high, double *low) {
    (void)a;
    struct rsre_kubelet_thresholds d;
    const struct rsre_kubelet_thresholds *t = g_fs ? &g_fs->effective : NULL;
    if (!t) {
        rsre_kubelet_defaults(&d);
        t = &d;
    }
    *high = t->gc_high_percent;
    *low = t->gc_low_percent;
}

int rsre_fs_imagefs(struct rsre_agent *a, struct rsre_fs_view *out) {
    (void)a;
    memset(out, 0, sizeof(*out));
    struct rsre_kubelet_thresholds d;
    const struct rsre_kubelet_thresholds *t = g_fs ? &g_fs->effective : NULL;
    if (!t) {
        rsre_kubelet_defaults(&d);
        t = &d;
    }
    out->gc_high_percent = t->gc_high_percent;
    out->gc_low_percent = t->gc_low_percent;
    out->gc_min_age_s = t->gc_min_age_s;
    out->source = t->source;
    if (!g_fs || !g_fs->t[1].have_usage) {
        return RSRE_ENOTFOUND;
    }
    out->valid = 1;
    out->shared_with_nodefs = g_fs->shared_known && g_fs->shared;
    out->usage = g_fs->t[1].usage;
    out->gc_trigger_avail =
        rsre_kubelet_gc_trigger_avail(out->usage.bytes_total, t->gc_high_percent);
    out->observed_unix_ms = g_fs->imagefs_observed_ms;
    return 0;
}

int rsre_fs_set_overrides(struct rsre_agent *a, RobotSre__Agent__V1__ThresholdOverride *const *ov,
                          size_t n) {
    (void)a;
    if (!g_fs) {
        return RSRE_ENOTFOUND;
    }
    g_fs->nov = 0;
    for (size_t i = 0; i < n && g_fs->nov < MAX_OVERRIDES; i++) {
        if (!ov[i]) {
            continue;
        }
        struct rsre_kubelet_thresholds probe = g_fs->kubelet;
        /* Validate the form alone here (GC pairs are checked when applied). */
        probe.gc_high_percent = 100;
        probe.gc_low_percent = 0;
        if (rsre_kubelet_apply_override(&probe, (int)ov[i]->kind, ov[i]->quantity,
                                        ov[i]->percent) != 0) {
            RSRE_LOG(RSRE_LOG_WARN, MOD,
                     "threshold override kind=%d quantity=%llu percent=%g "
                     "ignored: invalid",
                     (int)ov[i]->kind, (unsigned long long)ov[i]->quantity, ov[i]->percent);
            continue;
        }
        g_fs->ov[g_fs->nov++] =
            (struct override){(int)ov[i]->kind, ov[i]->quantity, ov[i]->percent};
    }
    apply_overrides(g_fs);
    return (int)g_fs->nov;
}
