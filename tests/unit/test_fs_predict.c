/*
 * Tests of the filesystem arithmetic (agent/fs_predict.h): the sliding-window least-squares
 * fill rate on synthetic sample sequences (constant fill gives the exact time to each
 * threshold, draining and flat give -1, old samples leave the window, clock steps and resizes
 * restart it, the ring bound), the ETA rounding, the evaluation of kubelet thresholds per
 * filesystem role, the FilesystemUsage signal (validated by the protocol validator), statvfs
 * conversion and the mountinfo lookup; then the collector row (col_fs.c) on temp directories:
 * two signals per run, the kubelet config re-read when it changes, a malformed file keeping the
 * last good thresholds, aggregator overrides, and the accessors for the image GC collector.
 * The collector test replaces the agent core with a link-time double: this file defines the
 * agent functions col_fs.c calls, so agent.o is never pulled from the static library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/fs_predict.h"
#include "common/error.h"
#include "common/pbuf.h"

/* ---- the agent double (for the collector test) ------------------------------------------------
 */

static struct rsre_agent_config g_cfg;
static RobotSre__Agent__V1__FilesystemUsage g_fs[4];
static char g_paths[4][4096];
static size_t g_nfs;
static int g_done_rc;

const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a) {
    (void)a;
    return &g_cfg;
}

int64_t rsre_now_unix_ms(void) {
    return 1700000000000;
}

int rsre_agent_emit(struct rsre_agent *a, const rsre_signal *s) {
    (void)a;
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&s->base, err, sizeof(err)) != 0) {
        fail_msg("emitted an invalid signal: %s", err);
    }
    assert_int_equal(s->kind_case, ROBOT_SRE__AGENT__V1__SIGNAL__KIND_FILESYSTEM);
    if (g_nfs < 4) {
        g_fs[g_nfs] = *s->filesystem; /* sub-message pointers are not kept */
        g_fs[g_nfs].eviction_available = NULL;
        g_fs[g_nfs].eviction_inodes_free = NULL;
        snprintf(g_paths[g_nfs], sizeof(g_paths[0]), "%s", s->filesystem->path);
        g_fs[g_nfs].path = g_paths[g_nfs];
        g_fs[g_nfs].device = NULL;
    }
    g_nfs++;
    return 0;
}

void rsre_collect_done(struct rsre_collect_run *run, int rc) {
    (void)run;
    g_done_rc = rc;
}

#define GIB (1ull << 30)

static struct rsre_fs_usage usage(uint64_t total, uint64_t used, uint64_t reserved, uint64_t inodes,
                                  uint64_t inodes_used) {
    struct rsre_fs_usage u = {total, total - used, total - used - reserved, inodes,
                              inodes - inodes_used};
    return u;
}

static struct rsre_fs_predict *new_predict(uint32_t window) {
    struct rsre_fs_predict *p = malloc(sizeof(*p));
    assert_non_null(p);
    rsre_fs_predict_init(p, window);
    return p;
}

static void test_no_data(void **state) {
    (void)state;
    struct rsre_fs_predict *p = new_predict(600);
    double rb, ri;
    uint32_t span;
    assert_int_equal(rsre_fs_predict_rates(p, &rb, &ri, &span), RSRE_ENOTFOUND);
    struct rsre_fs_usage u = usage(100 * GIB, 50 * GIB, 0, 1000, 10);
    rsre_fs_predict_add(p, 1000, &u);
    assert_int_equal(rsre_fs_predict_rates(p, &rb, &ri, &span), RSRE_ENOTFOUND);
    assert_true(rb == 0.0 && span == 0);
    /* Same timestamp again: replaces, still one sample. */
    rsre_fs_predict_add(p, 1000, &u);
    assert_int_equal(rsre_fs_predict_count(p), 1);

    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    struct rsre_fs_eval e;
    rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 0, p, &e);
    assert_int_equal(e.seconds_to_eviction, -1);
    assert_int_equal(e.seconds_to_inode_eviction, -1);
    assert_int_equal(e.seconds_to_gc_high, -1);
    assert_int_equal(e.fill_window_sec, 0);
    rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 0, NULL, &e);
    assert_int_equal(e.seconds_to_eviction, -1);
    free(p);
}

/* Constant fill: 1 MiB per 10 s on a 100 GiB filesystem whose eviction threshold (10%, kubelet
 * float32 arithmetic) is known; the predicted crossing time must be exact at every sample. */
static void test_constant_fill_exact(void **state) {
    (void)state;
    struct rsre_fs_predict *p = new_predict(600);
    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    const uint64_t total = 100 * GIB, step = 1u << 20;
    const uint64_t eff = 10737418400ull; /* int64(float64(100 GiB) * float64(float32(0.1))) */
    uint64_t used = 80 * GIB;
    for (int i = 0; i < 100; i++) {
        int64_t t_ms = 1000000 + (int64_t)i * 10000;
        struct rsre_fs_usage u = usage(total, used, 0, 1000000, 1000 + (uint64_t)i * 5);
        rsre_fs_predict_add(p, t_ms, &u);
        struct rsre_fs_eval e;
        rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 0, p, &e);
        assert_int_equal(e.evict_avail_effective, eff);
        if (i == 0) {
            assert_int_equal(e.seconds_to_eviction, -1);
        } else {
            assert_true(fabs(e.fill_rate_bytes_per_sec - step / 10.0) < 1e-6);
            assert_int_equal(e.fill_window_sec, i < 60 ? i * 10 : 600);
            /* Kubelet evicts once avail < eff: the ETA is ceil((avail - eff + 1) / rate). */
            uint64_t avail = total - used;
            uint64_t need = avail - eff + 1;
            int64_t want = (int64_t)((need * 10 + step - 1) / step);
            assert_int_equal(e.seconds_to_eviction, want);
            /* Inodes: 5 per 10 s, 5% of 1e6 = 50000 free inodes is the line. */
            uint64_t ifree = 1000000 - 1000 - (uint64_t)i * 5;
            uint64_t ieff = rsre_kubelet_effective(&t.hard[RSRE_KSIG_NODEFS_INODES_FREE], 1000000);
            assert_int_equal(ieff, 50000);
            assert_int_equal(e.seconds_to_inode_eviction, (int64_t)((ifree - ieff + 1) * 2));
        }
        used += step;
    }
    free(p);
}

static void test_draining_and_flat(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    for (int mode = 0; mode < 2; mode++) {
        struct rsre_fs_predict *p = new_predict(600);
        uint64_t used = 50 * GIB;
        struct rsre_fs_eval e;
        for (int i = 0; i < 30; i++) {
            struct rsre_fs_usage u = usage(100 * GIB, used, GIB, 1000, 100);
            rsre_fs_predict_add(p, (int64_t)i * 10000, &u);
            rsre_fs_evaluate(RSRE_FS_IMAGEFS, &u, &t, 1, p, &e);
            used -= mode == 0 ? (1u << 20) : 0;
        }
        if (mode == 0) {
            assert_true(e.fill_rate_bytes_per_sec < 0);
        } else {
            assert_true(e.fill_rate_bytes_per_sec == 0.0);
        }
        assert_int_equal(e.fill_window_sec, 290);
        assert_int_equal(e.seconds_to_eviction, -1);
        assert_int_equal(e.seconds_to_gc_high, -1);
        assert_int_equal(e.seconds_to_inode_eviction, -1);
        free(p);
    }
}

/* Samples older than the window leave it: a burst followed by a flat period reads as flat once
 * the burst is more than window_s in the past. */
static void test_window_eviction(void **state) {
    (void)state;
    struct rsre_fs_predict *p = new_predict(60);
    uint64_t used = 10 * GIB;
    double rb, ri;
    uint32_t span;
    int64_t t_ms = 0;
    for (int i = 0; i < 7; i++, t_ms += 10000) { /* 0..60 s: filling 1 GiB / 10 s */
        struct rsre_fs_usage u = usage(100 * GIB, used, 0, 1000, 1);
        rsre_fs_predict_add(p, t_ms, &u);
        used += GIB;
    }
    assert_int_equal(rsre_fs_predict_count(p), 7);
    assert_int_equal(rsre_fs_predict_rates(p, &rb, &ri, &span), 0);
    assert_true(fabs(rb - GIB / 10.0) < 1e-3);
    assert_int_equal(span, 60);
    used -= GIB;                                 /* flat from the last fill on */
    for (int i = 0; i < 6; i++, t_ms += 10000) { /* 70..120 s */
        struct rsre_fs_usage u = usage(100 * GIB, used, 0, 1000, 1);
        rsre_fs_predict_add(p, t_ms, &u);
    }
    /* Window [60 s, 120 s]: only flat samples remain. */
    assert_int_equal(rsre_fs_predict_count(p), 7);
    assert_int_equal(rsre_fs_predict_rates(p, &rb, &ri, &span), 0);
    assert_true(fabs(rb) < 1e-9);
    assert_int_equal(span, 60);
    /* A gap longer than the window leaves only the newest sample. */
    struct rsre_fs_usage u = usage(100 * GIB, used, 0, 1000, 1);
    rsre_fs_predict_add(p, t_ms + 3600000, &u);
    assert_int_equal(rsre_fs_predict_count(p), 1);
    free(p);
}

static void test_restarts_and_bounds(void **state) {
    (void)state;
    struct rsre_fs_predict *p = new_predict(100000);
    struct rsre_fs_usage u = usage(100 * GIB, GIB, 0, 1000, 1);
    for (int i = 0; i < 10; i++) {
        rsre_fs_predict_add(p, (int64_t)i * 1000, &u);
    }
    assert_int_equal(rsre_fs_predict_count(p), 10);
    rsre_fs_predict_add(p, 5000, &u); /* clock stepped back */
    assert_int_equal(rsre_fs_predict_count(p), 1);
    rsre_fs_predict_add(p, 6000, &u);
    struct rsre_fs_usage bigger = usage(200 * GIB, GIB, 0, 1000, 1);
    rsre_fs_predict_add(p, 7000, &bigger); /* resized */
    assert_int_equal(rsre_fs_predict_count(p), 1);
    struct rsre_fs_usage more_inodes = usage(200 * GIB, GIB, 0, 2000, 1);
    rsre_fs_predict_add(p, 8000, &more_inodes);
    assert_int_equal(rsre_fs_predict_count(p), 1);
    /* The ring keeps the newest RSRE_FS_MAX_SAMPLES and the rate is still exact. */
    rsre_fs_predict_init(p, 100000);
    for (int i = 0; i < 3 * RSRE_FS_MAX_SAMPLES; i++) {
        struct rsre_fs_usage v = usage(100 * GIB, GIB + (uint64_t)i * 4096, 0, 1000, 1);
        rsre_fs_predict_add(p, (int64_t)i * 1000, &v);
    }
    assert_int_equal(rsre_fs_predict_count(p), RSRE_FS_MAX_SAMPLES);
    double rb, ri;
    uint32_t span;
    assert_int_equal(rsre_fs_predict_rates(p, &rb, &ri, &span), 0);
    assert_true(fabs(rb - 4096.0) < 1e-6);
    assert_int_equal(span, RSRE_FS_MAX_SAMPLES - 1);
    /* Window 0 is treated as 1 s. */
    rsre_fs_predict_init(p, 0);
    assert_int_equal(p->window_s, 1);
    free(p);
}

static void test_seconds_to(void **state) {
    (void)state;
    assert_int_equal(rsre_fs_seconds_to(100, 100, 1.0), 0);
    assert_int_equal(rsre_fs_seconds_to(99, 100, 1.0), 0);
    assert_int_equal(rsre_fs_seconds_to(200, 100, 0.0), -1);
    assert_int_equal(rsre_fs_seconds_to(200, 100, -5.0), -1);
    assert_int_equal(rsre_fs_seconds_to(200, 100, NAN), -1);
    assert_int_equal(rsre_fs_seconds_to(200, 100, INFINITY), -1);
    assert_int_equal(rsre_fs_seconds_to(200, 100, 10.0), 10);
    assert_int_equal(rsre_fs_seconds_to(201, 100, 10.0), 11);
    assert_int_equal(rsre_fs_seconds_to(101, 100, 1e9), 1); /* never 0 before the line */
    /* 1/3 per second: 300 units take exactly 900 s despite the inexact rate. */
    assert_int_equal(rsre_fs_seconds_to(400, 100, 1.0 / 3.0), 900);
    assert_int_equal(rsre_fs_seconds_to(UINT64_MAX, 0, 1.0), -1); /* beyond a year */
    assert_int_equal(rsre_fs_seconds_to(RSRE_FS_MAX_ETA_S, 0, 1.0), RSRE_FS_MAX_ETA_S);
    assert_int_equal(rsre_fs_seconds_to(RSRE_FS_MAX_ETA_S + 1ull, 0, 1.0), -1);
}

static void test_evaluate_roles(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    struct rsre_fs_usage u = usage(1000000, 500000, 0, 1000, 10);
    struct rsre_fs_eval e;
    rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 0, NULL, &e);
    assert_true(e.evict_avail.percent == 10.0);
    assert_int_equal(e.evict_avail_effective, 100000);
    assert_int_equal(e.evict_inodes_effective, 50); /* 5% of 1000 */
    assert_int_equal(e.gc_high_percent, 0);         /* nodefs on a split node: no GC */
    assert_int_equal(e.gc_trigger_avail, 0);
    assert_int_equal(e.source, RSRE_KSRC_DEFAULTS);
    rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 1, NULL, &e); /* shared with imagefs */
    assert_int_equal(e.gc_high_percent, 85);
    assert_int_equal(e.gc_low_percent, 80);
    assert_int_equal(e.gc_trigger_avail, 160000);
    rsre_fs_evaluate(RSRE_FS_IMAGEFS, &u, &t, 1, NULL, &e);
    assert_true(e.evict_avail.percent == 15.0);
    assert_int_equal(e.evict_avail_effective, 150000);
    assert_int_equal(e.evict_inodes_effective, 0); /* no imagefs.inodesFree default */
    assert_int_equal(e.seconds_to_inode_eviction, -1);
    /* Already past: 0. */
    struct rsre_fs_usage full = usage(1000000, 900000, 0, 1000, 990);
    rsre_fs_evaluate(RSRE_FS_IMAGEFS, &full, &t, 1, NULL, &e);
    assert_int_equal(e.seconds_to_eviction, 0);
    assert_int_equal(e.seconds_to_gc_high, 0);
    rsre_fs_evaluate(RSRE_FS_NODEFS, &full, &t, 0, NULL, &e);
    assert_int_equal(e.seconds_to_eviction, -1);      /* 100000 avail is not below 100000 */
    assert_int_equal(e.seconds_to_inode_eviction, 0); /* 10 free < 50 */
    /* No inode table (e.g. btrfs): no inode threshold. */
    struct rsre_fs_usage noinodes = usage(1000000, 1, 0, 0, 0);
    rsre_fs_evaluate(RSRE_FS_NODEFS, &noinodes, &t, 0, NULL, &e);
    assert_int_equal(e.evict_inodes_effective, 0);
    /* GC disabled (high 100). */
    t.gc_high_percent = 100;
    rsre_fs_evaluate(RSRE_FS_IMAGEFS, &full, &t, 1, NULL, &e);
    assert_int_equal(e.gc_trigger_avail, 0);
    assert_int_equal(e.seconds_to_gc_high, -1);
    assert_int_equal(e.gc_high_percent, 100);
    /* Overrides mark the source only for the filesystem they touch. */
    rsre_kubelet_defaults(&t);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_IMAGEFS_AVAILABLE, 0, 30), 0);
    rsre_fs_evaluate(RSRE_FS_IMAGEFS, &u, &t, 1, NULL, &e);
    assert_int_equal(e.source, RSRE_KSRC_OVERRIDE);
    assert_int_equal(e.evict_avail_effective, 300000);
    rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 0, NULL, &e);
    assert_int_equal(e.source, RSRE_KSRC_DEFAULTS);
    assert_int_equal(rsre_kubelet_apply_override(&t, RSRE_KOVR_IMAGE_GC_HIGH, 0, 90), 0);
    rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 1, NULL, &e); /* shared: GC applies to nodefs */
    assert_int_equal(e.source, RSRE_KSRC_OVERRIDE);
}

static void test_signal_valid(void **state) {
    (void)state;
    struct rsre_kubelet_thresholds t;
    rsre_kubelet_defaults(&t);
    struct rsre_fs_predict *p = new_predict(600);
    struct rsre_fs_signal *s = malloc(sizeof(*s));
    assert_non_null(s);
    char err[RSRE_PBUF_ERR_LEN];
    for (int i = 0; i < 5; i++) {
        struct rsre_fs_usage u =
            usage(100 * GIB, 60 * GIB + (uint64_t)i * GIB, GIB, 5000, 100 + (uint64_t)i);
        rsre_fs_predict_add(p, (int64_t)i * 10000, &u);
        struct rsre_fs_eval e;
        rsre_fs_evaluate(RSRE_FS_IMAGEFS, &u, &t, 1, p, &e);
        RobotSre__Agent__V1__Signal *sig =
            rsre_fs_build_signal(&e, "/var/lib/containerd", "/dev/sda1", 1700000000000, s);
        int rc = rsre_pbuf_validate(&sig->base, err, sizeof(err));
        if (rc) {
            fail_msg("%s", err);
        }
        assert_int_equal(sig->kind_case, ROBOT_SRE__AGENT__V1__SIGNAL__KIND_FILESYSTEM);
        assert_int_equal(sig->filesystem->which,
                         ROBOT_SRE__AGENT__V1__FILESYSTEM_ROLE__FILESYSTEM_ROLE_IMAGEFS);
        assert_true(sig->filesystem->eviction_available->percent == 15.0);
        assert_int_equal(sig->filesystem->eviction_available->quantity, 0);
        assert_int_equal(sig->filesystem->threshold_source,
                         ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_DEFAULTS);
        assert_true(sig->filesystem->image_gc_high_percent == 85.0);
        if (i > 0) {
            assert_true(sig->filesystem->seconds_to_eviction > 0);
            assert_true(sig->filesystem->seconds_to_gc_high > 0);
            assert_true(sig->filesystem->seconds_to_gc_high < sig->filesystem->seconds_to_eviction);
        }
        /* Round trip through the wire format. */
        size_t n = protobuf_c_message_get_packed_size(&sig->base);
        uint8_t *buf = malloc(n);
        assert_non_null(buf);
        protobuf_c_message_pack(&sig->base, buf);
        RobotSre__Agent__V1__Signal *back = robot_sre__agent__v1__signal__unpack(NULL, n, buf);
        assert_non_null(back);
        assert_int_equal(back->filesystem->bytes_avail, e.usage.bytes_avail);
        assert_string_equal(back->filesystem->device, "/dev/sda1");
        robot_sre__agent__v1__signal__free_unpacked(back, NULL);
        free(buf);
    }
    /* A quantity threshold, a relative or hostile path and device are made valid. */
    rsre_kubelet_apply_override(&t, RSRE_KOVR_NODEFS_AVAILABLE, 5 * GIB, 0);
    struct rsre_fs_usage u = usage(100 * GIB, GIB, 0, 10, 1);
    struct rsre_fs_eval e;
    rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 0, NULL, &e);
    RobotSre__Agent__V1__Signal *sig = rsre_fs_build_signal(&e, "relative", "dev\n\x01", 1, s);
    assert_int_equal(rsre_pbuf_validate(&sig->base, err, sizeof(err)), 0);
    assert_string_equal(sig->filesystem->path, "/");
    assert_string_equal(sig->filesystem->device, "dev??");
    assert_int_equal(sig->filesystem->eviction_available->quantity, 5 * GIB);
    assert_true(sig->filesystem->eviction_available->percent == 0.0);
    assert_int_equal(sig->filesystem->threshold_source,
                     ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_OVERRIDE);
    free(s);
    free(p);
}

static void test_statvfs(void **state) {
    (void)state;
    struct statvfs st;
    memset(&st, 0, sizeof(st));
    st.f_frsize = 4096;
    st.f_bsize = 4096;
    st.f_blocks = 1000;
    st.f_bfree = 400;
    st.f_bavail = 350;
    st.f_files = 100;
    st.f_ffree = 60;
    struct rsre_fs_usage u;
    rsre_fs_usage_from_statvfs(&st, &u);
    assert_int_equal(u.bytes_total, 4096000);
    assert_int_equal(u.bytes_free, 1638400);
    assert_int_equal(u.bytes_avail, 1433600);
    assert_int_equal(u.inodes_total, 100);
    assert_int_equal(u.inodes_free, 60);
    /* Broken values are clamped to the proto's invariants. */
    st.f_bavail = 500;
    st.f_bfree = 2000;
    st.f_ffree = 200;
    st.f_frsize = 0; /* then f_bsize is the unit */
    rsre_fs_usage_from_statvfs(&st, &u);
    assert_int_equal(u.bytes_free, u.bytes_total);
    assert_true(u.bytes_avail <= u.bytes_free);
    assert_int_equal(u.inodes_free, 100);
    st.f_blocks = (fsblkcnt_t)-1;
    st.f_frsize = 1u << 20;
    rsre_fs_usage_from_statvfs(&st, &u);
    assert_int_equal(u.bytes_total, UINT64_MAX);
}

static const char MOUNTINFO[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "25 22 0:22 / /proc rw,nosuid shared:12 - proc proc rw\n"
    "30 22 8:17 / /var/lib/containerd rw,relatime shared:5 - xfs /dev/sdb1 rw,attr2\n"
    "31 22 8:1 /var/lib/kubelet /var/lib/kubelet rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "32 31 0:45 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/cache rw - tmpfs "
    "tmpfs rw,size=65536k\n"
    "33 22 8:33 / /mnt/with\\040space rw - ext4 /dev/sdc1 rw\n"
    "garbage line without fields\n"
    "34 22 bad:dev / /x rw - ext4 /dev/sdz rw\n"
    "35 22 8:49 / /no-separator rw ext4 /dev/sdd1 rw\n";

static void test_mountinfo(void **state) {
    (void)state;
    char mnt[256], dev[64];
    size_t n = sizeof(MOUNTINFO) - 1;
    assert_int_equal(rsre_fs_mountinfo_find(MOUNTINFO, n, 8, 1, "/var/lib/kubelet/pods", mnt,
                                            sizeof(mnt), dev, sizeof(dev)),
                     0);
    assert_string_equal(mnt, "/var/lib/kubelet"); /* longest containing mount of 8:1 */
    assert_string_equal(dev, "/dev/sda1");
    assert_int_equal(
        rsre_fs_mountinfo_find(MOUNTINFO, n, 8, 1, "/etc", mnt, sizeof(mnt), dev, sizeof(dev)), 0);
    assert_string_equal(mnt, "/");
    assert_int_equal(rsre_fs_mountinfo_find(MOUNTINFO, n, 8, 17, "/var/lib/containerd", mnt,
                                            sizeof(mnt), dev, sizeof(dev)),
                     0);
    assert_string_equal(mnt, "/var/lib/containerd");
    assert_string_equal(dev, "/dev/sdb1");
    /* tmpfs: no device path. */
    assert_int_equal(rsre_fs_mountinfo_find(MOUNTINFO, n, 0, 45, "/elsewhere", mnt, sizeof(mnt),
                                            dev, sizeof(dev)),
                     0);
    assert_string_equal(mnt, "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/cache");
    assert_string_equal(dev, "");
    /* Octal escapes are decoded. */
    assert_int_equal(rsre_fs_mountinfo_find(MOUNTINFO, n, 8, 33, "/mnt/with space/x", mnt,
                                            sizeof(mnt), dev, sizeof(dev)),
                     0);
    assert_string_equal(mnt, "/mnt/with space");
    /* Unknown device, and lines without the separator are ignored. */
    assert_int_equal(
        rsre_fs_mountinfo_find(MOUNTINFO, n, 9, 9, "/", mnt, sizeof(mnt), dev, sizeof(dev)),
        RSRE_ENOTFOUND);
    assert_string_equal(mnt, "");
    assert_int_equal(
        rsre_fs_mountinfo_find(MOUNTINFO, n, 8, 49, "/", mnt, sizeof(mnt), dev, sizeof(dev)),
        RSRE_ENOTFOUND);
    /* Small buffers truncate. */
    char small[5];
    assert_int_equal(
        rsre_fs_mountinfo_find(MOUNTINFO, n, 8, 17, NULL, small, sizeof(small), dev, sizeof(dev)),
        0);
    assert_string_equal(small, "/var");
    assert_int_equal(rsre_fs_mountinfo_find("", 0, 8, 1, "/", mnt, sizeof(mnt), dev, sizeof(dev)),
                     RSRE_ENOTFOUND);
}

/* ---- the collector row ---------------------------------------------------------------------- */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void run_collect(void *st) {
    g_nfs = 0;
    g_done_rc = 1;
    rsre_collector_filesystem.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_done_rc, 0);
}

static void test_collector(void **state) {
    (void)state;
    char dir[] = "/tmp/rsre-colfs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    memset(&g_cfg, 0, sizeof(g_cfg));
    snprintf(g_cfg.kubelet_root, sizeof(g_cfg.kubelet_root), "%s/kubelet", dir);
    snprintf(g_cfg.runtime_root, sizeof(g_cfg.runtime_root), "%s/containerd", dir);
    snprintf(g_cfg.kubelet_config, sizeof(g_cfg.kubelet_config), "%s/config.yaml", dir);
    snprintf(g_cfg.proc_root, sizeof(g_cfg.proc_root), "/proc");
    g_cfg.fill_window_s = 600;
    assert_int_equal(mkdir(g_cfg.kubelet_root, 0755), 0);
    assert_int_equal(mkdir(g_cfg.runtime_root, 0755), 0);

    /* Before init the accessors answer with kubelet's defaults. */
    double high, low;
    rsre_fs_gc_thresholds(NULL, &high, &low);
    assert_true(high == 85.0 && low == 80.0);
    struct rsre_fs_view v;
    assert_int_equal(rsre_fs_imagefs(NULL, &v), RSRE_ENOTFOUND);
    assert_int_equal(rsre_fs_set_overrides(NULL, NULL, 0), RSRE_ENOTFOUND);

    void *st = NULL;
    assert_int_equal(rsre_collector_filesystem.init((struct rsre_agent *)&g_cfg, &st), 0);
    void *st2 = NULL;
    assert_int_equal(rsre_collector_filesystem.init((struct rsre_agent *)&g_cfg, &st2), -EBUSY);

    /* No config file: defaults. Both directories are on one filesystem: shared. */
    run_collect(st);
    assert_int_equal(g_nfs, 2);
    assert_int_equal(g_fs[0].which, ROBOT_SRE__AGENT__V1__FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS);
    assert_int_equal(g_fs[1].which, ROBOT_SRE__AGENT__V1__FILESYSTEM_ROLE__FILESYSTEM_ROLE_IMAGEFS);
    assert_int_equal(g_fs[0].threshold_source,
                     ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_DEFAULTS);
    assert_true(g_fs[0].image_gc_high_percent == 85.0); /* shared: GC acts on nodefs too */
    assert_string_equal(g_fs[0].path, g_fs[1].path);
    assert_int_equal(g_fs[0].bytes_total, g_fs[1].bytes_total);
    assert_int_equal(g_fs[0].fill_window_sec, 0);
    assert_int_equal(rsre_fs_imagefs(NULL, &v), 0);
    assert_true(v.valid && v.shared_with_nodefs);
    assert_int_equal(v.gc_high_percent, 85);
    assert_int_equal(v.gc_min_age_s, 120);
    assert_int_equal(v.source, RSRE_KSRC_DEFAULTS);
    assert_int_equal(v.gc_trigger_avail, rsre_kubelet_gc_trigger_avail(v.usage.bytes_total, 85));

    /* A config appears: re-read on the next run. */
    write_text(g_cfg.kubelet_config, "apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                     "kind: KubeletConfiguration\n"
                                     "imageGCHighThresholdPercent: 70\n"
                                     "imageGCLowThresholdPercent: 60\n"
                                     "imageMinimumGCAge: 10m\n");
    run_collect(st);
    assert_int_equal(g_fs[1].threshold_source,
                     ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_CONFIG);
    assert_true(g_fs[1].image_gc_high_percent == 70.0 && g_fs[1].image_gc_low_percent == 60.0);
    rsre_fs_gc_thresholds(NULL, &high, &low);
    assert_true(high == 70.0 && low == 60.0);
    rsre_fs_imagefs(NULL, &v);
    assert_int_equal(v.gc_min_age_s, 600);

    /* It turns malformed: the last good read is kept (kubelet still runs with it). */
    write_text(g_cfg.kubelet_config, "apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                     "kind: KubeletConfiguration\n"
                                     "imageGCHighThresholdPercent: [\n");
    run_collect(st);
    assert_true(g_fs[1].image_gc_high_percent == 70.0);
    assert_int_equal(g_fs[1].threshold_source,
                     ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_CONFIG);

    /* Aggregator overrides: the signals they touch say OVERRIDE. */
    RobotSre__Agent__V1__ThresholdOverride o1 = ROBOT_SRE__AGENT__V1__THRESHOLD_OVERRIDE__INIT;
    RobotSre__Agent__V1__ThresholdOverride o2 = ROBOT_SRE__AGENT__V1__THRESHOLD_OVERRIDE__INIT;
    RobotSre__Agent__V1__ThresholdOverride o3 = ROBOT_SRE__AGENT__V1__THRESHOLD_OVERRIDE__INIT;
    RobotSre__Agent__V1__ThresholdOverride bad = ROBOT_SRE__AGENT__V1__THRESHOLD_OVERRIDE__INIT;
    o1.kind = ROBOT_SRE__AGENT__V1__THRESHOLD_KIND__THRESHOLD_KIND_IMAGE_GC_LOW;
    o1.percent = 50; /* applied after the high one although listed first */
    o2.kind = ROBOT_SRE__AGENT__V1__THRESHOLD_KIND__THRESHOLD_KIND_IMAGE_GC_HIGH;
    o2.percent = 55;
    o3.kind = ROBOT_SRE__AGENT__V1__THRESHOLD_KIND__THRESHOLD_KIND_NODEFS_AVAILABLE;
    o3.quantity = 1u << 20;
    bad.kind = ROBOT_SRE__AGENT__V1__THRESHOLD_KIND__THRESHOLD_KIND_IMAGE_GC_HIGH;
    bad.quantity = 5;
    RobotSre__Agent__V1__ThresholdOverride *ov[] = {&o1, &o2, &o3, &bad, NULL};
    assert_int_equal(rsre_fs_set_overrides(NULL, ov, 5), 3);
    run_collect(st);
    assert_true(g_fs[1].image_gc_high_percent == 55.0 && g_fs[1].image_gc_low_percent == 50.0);
    assert_int_equal(g_fs[0].threshold_source,
                     ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_OVERRIDE);
    assert_int_equal(g_fs[1].threshold_source,
                     ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_OVERRIDE);
    assert_int_equal(rsre_fs_set_overrides(NULL, NULL, 0), 0);
    run_collect(st);
    assert_true(g_fs[1].image_gc_high_percent == 70.0);

    /* The runtime root vanishes: nodefs still reports, the run succeeds. */
    assert_int_equal(rmdir(g_cfg.runtime_root), 0);
    run_collect(st);
    assert_int_equal(g_nfs, 1);
    assert_int_equal(g_fs[0].which, ROBOT_SRE__AGENT__V1__FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS);
    /* Neither: the run fails. */
    assert_int_equal(rmdir(g_cfg.kubelet_root), 0);
    g_nfs = 0;
    rsre_collector_filesystem.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_nfs, 0);
    assert_int_equal(g_done_rc, -ENOENT);

    rsre_collector_filesystem.destroy(st);
    rsre_fs_gc_thresholds(NULL, &high, &low);
    assert_true(high == 85.0); /* back to the defaults once the row is gone */
    unlink(g_cfg.kubelet_config);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_data),
        cmocka_unit_test(test_constant_fill_exact),
        cmocka_unit_test(test_draining_and_flat),
        cmocka_unit_test(test_window_eviction),
        cmocka_unit_test(test_restarts_and_bounds),
        cmocka_unit_test(test_seconds_to),
        cmocka_unit_test(test_evaluate_roles),
        cmocka_unit_test(test_signal_valid),
        cmocka_unit_test(test_statvfs),
        cmocka_unit_test(test_mountinfo),
        cmocka_unit_test(test_collector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
