/*
 * Filling a real, small, fixed-size filesystem: a tmpfs mounted by the test (size=8m,
 * nr_inodes=64) in a temp dir. Known amounts are written at known (explicit) sample times; after
 * each write the filesystem is read with statvfs and fed to the same functions the filesystem
 * collector uses (rsre_fs_usage_from_statvfs, rsre_fs_predict_add, rsre_fs_evaluate,
 * rsre_fs_build_signal), with thresholds read from a kubelet config file by
 * rsre_kubelet_load. Checked:
 *   - statvfs-derived usage equals what was written (tmpfs accounts whole pages, the writes are
 *     page multiples, so the only allowed difference is none);
 *   - the fill rate is the written rate, and every prediction of the absolute time kubelet
 *     starts evicting (and image GC starts) is the same instant, the one the writes reach;
 *   - the first sample at or after that instant is exactly the first one where the threshold is
 *     crossed by kubelet's own rule (avail < effective; GC: kubelet's integer usagePercent);
 *   - the same for inodes (one file per sample);
 *   - a full filesystem reports 0 seconds; every signal built passes protocol validation;
 *   - the mountinfo lookup finds the tmpfs mount point.
 * Needs root (mount); skipped otherwise. The tmpfs is unmounted in the teardown, which cmocka
 * runs after a failed test too, and again at exit as a last resort.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/fs_predict.h"
#include "agent/kubelet_config.h"
#include "common/error.h"
#include "common/pbuf.h"

#define FS_SIZE (8u << 20)
#define CHUNK (512u << 10)
#define STEP_MS 10000

static char g_dir[64];
static char g_cfgpath[64];
static int g_mounted;

static void unmount_all(void) {
    if (g_mounted) {
        if (umount2(g_dir, 0) != 0) {
            umount2(g_dir, MNT_DETACH);
        }
        g_mounted = 0;
    }
    if (g_dir[0]) {
        rmdir(g_dir);
        g_dir[0] = '\0';
    }
    if (g_cfgpath[0]) {
        unlink(g_cfgpath);
        g_cfgpath[0] = '\0';
    }
}

static int mount_fs(const char *opts) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/rsre-fsfill-XXXXXX");
    if (!mkdtemp(g_dir)) {
        g_dir[0] = '\0';
        return -1;
    }
    if (mount("rsre-test-tmpfs", g_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        fprintf(stderr, "mount tmpfs on %s: %s\n", g_dir, strerror(errno));
        return -1;
    }
    g_mounted = 1;
    return 0;
}

static int write_config(const char *yaml) {
    snprintf(g_cfgpath, sizeof(g_cfgpath), "/tmp/rsre-kubelet-XXXXXX");
    int fd = mkstemp(g_cfgpath);
    if (fd < 0) {
        g_cfgpath[0] = '\0';
        return -1;
    }
    ssize_t n = write(fd, yaml, strlen(yaml));
    close(fd);
    return n == (ssize_t)strlen(yaml) ? 0 : -1;
}

static const char KUBELET_BYTES[] = "apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                    "kind: KubeletConfiguration\n"
                                    "evictionHard:\n"
                                    "  nodefs.available: \"25%\"\n"
                                    "imageGCHighThresholdPercent: 75\n"
                                    "imageGCLowThresholdPercent: 70\n";

static const char KUBELET_INODES[] = "apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                     "kind: KubeletConfiguration\n"
                                     "evictionHard:\n"
                                     "  nodefs.inodesFree: 25%\n";

static int setup_common(const char *opts, const char *yaml) {
    if (geteuid() != 0) {
        fprintf(stderr, "not root: cannot mount a tmpfs\n");
        return 0; /* the test skips itself when g_mounted is 0 */
    }
    if (mount_fs(opts) != 0 || write_config(yaml) != 0) {
        unmount_all();
        return 0;
    }
    return 0;
}

static int setup_bytes(void **state) {
    (void)state;
    return setup_common("size=8m,nr_inodes=64,mode=0755", KUBELET_BYTES);
}

static int setup_inodes(void **state) {
    (void)state;
    return setup_common("size=8m,nr_inodes=64,mode=0755", KUBELET_INODES);
}

static int teardown(void **state) {
    (void)state;
    unmount_all();
    return 0;
}

static void read_usage(struct rsre_fs_usage *u) {
    struct statvfs st;
    assert_int_equal(statvfs(g_dir, &st), 0);
    rsre_fs_usage_from_statvfs(&st, u);
}

/* Writes `size` bytes to a new file; returns 0 or the errno. */
static int write_file(int i, size_t size) {
    char path[128];
    snprintf(path, sizeof(path), "%s/f%03d", g_dir, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        return errno;
    }
    static char buf[64 << 10];
    memset(buf, 'z', sizeof(buf));
    int rc = 0;
    while (size > 0) {
        size_t n = size < sizeof(buf) ? size : sizeof(buf);
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            rc = errno;
            break;
        }
        size -= (size_t)w;
    }
    if (fsync(fd) != 0 && rc == 0) {
        rc = errno;
    }
    close(fd);
    return rc;
}

/* kubelet's GC decision (pkg/kubelet/images/image_gc_manager.go). */
static int kubelet_gc_runs(uint64_t cap, uint64_t avail, int high) {
    int usage = 100 - (int)((avail * 100) / cap);
    return usage >= high;
}

static void check_signal(const struct rsre_fs_eval *e) {
    struct rsre_fs_signal *s = malloc(sizeof(*s));
    assert_non_null(s);
    RobotSre__Agent__V1__Signal *sig = rsre_fs_build_signal(e, g_dir, "", 1700000000000, s);
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&sig->base, err, sizeof(err)) != 0) {
        fail_msg("signal invalid: %s", err);
    }
    assert_int_equal(sig->filesystem->seconds_to_eviction, e->seconds_to_eviction);
    assert_int_equal(sig->filesystem->threshold_source,
                     ROBOT_SRE__AGENT__V1__THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_CONFIG);
    free(s);
}

static void test_fill_bytes(void **state) {
    (void)state;
    if (!g_mounted) {
        skip();
    }
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(rsre_kubelet_load(g_cfgpath, &t, &err), 0);
    assert_int_equal(t.source, RSRE_KSRC_CONFIG);
    assert_false(t.hard[RSRE_KSIG_NODEFS_INODES_FREE].set); /* evictionHard set: others gone */

    /* The mount point and device as the collector would report them. */
    struct stat st;
    assert_int_equal(stat(g_dir, &st), 0);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    assert_non_null(f);
    static char mi[1 << 20];
    size_t milen = fread(mi, 1, sizeof(mi), f);
    fclose(f);
    char mnt[4096], dev[1024];
    assert_int_equal(rsre_fs_mountinfo_find(mi, milen, major(st.st_dev), minor(st.st_dev), g_dir,
                                            mnt, sizeof(mnt), dev, sizeof(dev)),
                     0);
    assert_string_equal(mnt, g_dir);
    assert_string_equal(dev, ""); /* tmpfs has no backing device */

    struct rsre_fs_predict *p = malloc(sizeof(*p));
    assert_non_null(p);
    rsre_fs_predict_init(p, 600);
    struct rsre_fs_usage u0;
    read_usage(&u0);
    assert_int_equal(u0.bytes_total, FS_SIZE);
    const uint64_t used0 = u0.bytes_total - u0.bytes_free;
    const uint64_t eff = 2u << 20; /* 25% of 8 MiB */
    const uint64_t gc_trigger = rsre_kubelet_gc_trigger_avail(FS_SIZE, 75);
    rsre_fs_predict_add(p, 0, &u0);

    /* When, in continuous time, the writes make kubelet act: avail(t) = avail0 - rate*t. */
    const double rate = (double)CHUNK / (STEP_MS / 1000.0);
    int first_evict = -1, first_gc = -1;
    int64_t predicted_evict = -1, predicted_gc = -1;
    for (int i = 1; i <= 15; i++) {
        assert_int_equal(write_file(i, CHUNK), 0);
        struct rsre_fs_usage u;
        read_usage(&u);
        /* statvfs sees exactly what was written. */
        assert_int_equal(u.bytes_total - u.bytes_free - used0, (uint64_t)i * CHUNK);
        assert_int_equal(u.bytes_avail, u.bytes_free); /* tmpfs reserves nothing */
        int64_t t_ms = (int64_t)i * STEP_MS;
        rsre_fs_predict_add(p, t_ms, &u);
        struct rsre_fs_eval e;
        rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 1, p, &e);
        check_signal(&e);
        assert_int_equal(e.evict_avail_effective, eff);
        assert_int_equal(e.gc_trigger_avail, gc_trigger);
        assert_true(fabs(e.fill_rate_bytes_per_sec - rate) < 1e-6 * rate);
        assert_int_equal(e.fill_window_sec, i * 10);

        /* Kubelet's own rules on the real reading. */
        int evicting = u.bytes_avail < eff;
        int gc_runs = kubelet_gc_runs(u.bytes_total, u.bytes_avail, 75);
        assert_int_equal(gc_runs, u.bytes_avail < gc_trigger);
        if (evicting && first_evict < 0) {
            first_evict = i;
        }
        if (gc_runs && first_gc < 0) {
            first_gc = i;
        }
        /* Every prediction made before the crossing names the same absolute instant. */
        if (!evicting) {
            assert_true(e.seconds_to_eviction > 0);
            int64_t at = t_ms / 1000 + e.seconds_to_eviction;
            if (predicted_evict < 0) {
                predicted_evict = at;
            }
            assert_int_equal(at, predicted_evict);
        } else {
            assert_int_equal(e.seconds_to_eviction, 0);
        }
        if (!gc_runs) {
            int64_t at = t_ms / 1000 + e.seconds_to_gc_high;
            if (predicted_gc < 0) {
                predicted_gc = at;
            }
            assert_int_equal(at, predicted_gc);
        } else {
            assert_int_equal(e.seconds_to_gc_high, 0);
        }
    }
    /* The instants the writes reach: avail0 - rate*t <= eff-1 and <= gc_trigger-1. */
    const uint64_t avail0 = u0.bytes_avail;
    assert_int_equal(predicted_evict, (int64_t)ceil((double)(avail0 - (eff - 1)) / rate - 1e-9));
    assert_int_equal(predicted_gc,
                     (int64_t)ceil((double)(avail0 - (gc_trigger - 1)) / rate - 1e-9));
    /* The first sample at or after the predicted instant is the first that crossed. */
    assert_int_equal(first_evict, (int)((predicted_evict * 1000 + STEP_MS - 1) / STEP_MS));
    assert_int_equal(first_gc, (int)((predicted_gc * 1000 + STEP_MS - 1) / STEP_MS));
    /* And in numbers, for 512 KiB per 10 s on 8 MiB with nothing used before: eviction after
     * 12 chunks leave exactly 2 MiB (kubelet needs strictly less: the 13th write), GC (75%,
     * i.e. avail below 26% with kubelet's integer percent) at the 12th. */
    if (used0 == 0) {
        assert_int_equal(predicted_evict, 121);
        assert_int_equal(first_evict, 13);
        assert_int_equal(predicted_gc, 119);
        assert_int_equal(first_gc, 12);
    }

    /* Fill to the brim: ENOSPC, then 0 seconds to everything. */
    int rc = write_file(99, FS_SIZE);
    assert_int_equal(rc, ENOSPC);
    struct rsre_fs_usage full;
    read_usage(&full);
    assert_int_equal(full.bytes_avail, 0);
    rsre_fs_predict_add(p, 16 * STEP_MS, &full);
    struct rsre_fs_eval e;
    rsre_fs_evaluate(RSRE_FS_NODEFS, &full, &t, 1, p, &e);
    assert_int_equal(e.seconds_to_eviction, 0);
    assert_int_equal(e.seconds_to_gc_high, 0);
    check_signal(&e);
    /* Freeing space: the rate turns negative within the window, no ETA. */
    char path[128];
    snprintf(path, sizeof(path), "%s/f099", g_dir);
    assert_int_equal(unlink(path), 0);
    for (int i = 1; i <= 15; i++) {
        snprintf(path, sizeof(path), "%s/f%03d", g_dir, i);
        assert_int_equal(unlink(path), 0);
    }
    rsre_fs_predict_init(p, 600);
    struct rsre_fs_usage freed;
    read_usage(&freed);
    rsre_fs_predict_add(p, 0, &full);
    rsre_fs_predict_add(p, STEP_MS, &freed);
    rsre_fs_evaluate(RSRE_FS_NODEFS, &freed, &t, 1, p, &e);
    assert_true(e.fill_rate_bytes_per_sec < 0);
    assert_int_equal(e.seconds_to_eviction, -1);
    assert_int_equal(e.seconds_to_gc_high, -1);
    free(p);
}

static void test_fill_inodes(void **state) {
    (void)state;
    if (!g_mounted) {
        skip();
    }
    struct rsre_kubelet_thresholds t;
    struct rsre_yerr err;
    assert_int_equal(rsre_kubelet_load(g_cfgpath, &t, &err), 0);
    struct rsre_fs_predict *p = malloc(sizeof(*p));
    assert_non_null(p);
    rsre_fs_predict_init(p, 3600);
    struct rsre_fs_usage u0;
    read_usage(&u0);
    assert_int_equal(u0.inodes_total, 64);
    const uint64_t ieff = 16; /* 25% of 64 */
    rsre_fs_predict_add(p, 0, &u0);
    int first_evict = -1;
    int64_t predicted = -1;
    for (int i = 1; u0.inodes_free >= (uint64_t)i; i++) {
        int rc = write_file(i, 0);
        if (rc == ENOSPC) {
            break; /* out of inodes */
        }
        assert_int_equal(rc, 0);
        struct rsre_fs_usage u;
        read_usage(&u);
        assert_int_equal(u0.inodes_free - u.inodes_free, (uint64_t)i);
        int64_t t_ms = (int64_t)i * STEP_MS;
        rsre_fs_predict_add(p, t_ms, &u);
        struct rsre_fs_eval e;
        rsre_fs_evaluate(RSRE_FS_NODEFS, &u, &t, 0, p, &e);
        check_signal(&e);
        assert_int_equal(e.evict_inodes_effective, ieff);
        assert_true(fabs(e.inode_rate_per_sec - 0.1) < 1e-9);
        assert_int_equal(e.seconds_to_eviction, -1); /* no nodefs.available threshold here */
        int evicting = u.inodes_free < ieff;
        if (evicting && first_evict < 0) {
            first_evict = i;
        }
        if (!evicting) {
            int64_t at = t_ms / 1000 + e.seconds_to_inode_eviction;
            if (predicted < 0) {
                predicted = at;
            }
            assert_int_equal(at, predicted);
        } else {
            assert_int_equal(e.seconds_to_inode_eviction, 0);
        }
    }
    /* One inode per 10 s: free0 - t/10 <= ieff - 1 at t = (free0 - ieff + 1) * 10. */
    assert_int_equal(predicted, (int64_t)(u0.inodes_free - ieff + 1) * 10);
    assert_int_equal(first_evict, (int)(u0.inodes_free - ieff + 1));
    free(p);
}

int main(void) {
    atexit(unmount_all);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fill_bytes, setup_bytes, teardown),
        cmocka_unit_test_setup_teardown(test_fill_inodes, setup_inodes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
