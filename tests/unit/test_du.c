/*
 * Tests of the top-consumer walker (agent/du.h, agent/col_du.c) on a temp directory tree laid
 * out like a node (pod log dirs, emptyDir volumes among other volume kinds, a containerd
 * content store) with files of known sizes: each consumer's bytes and file count equal an
 * independent nftw() walk, the ordering, what is ignored (other volume types, hidden and stray
 * entries, symlinks not followed), the entry and time budgets (a step never visits more than
 * max_entries, budget 0 still progresses, a scan resumes across steps and gives the same result
 * as one big step), results only from completed scans, a tree changing under the walker, and
 * the collector row on a real libuv loop (the agent core is a link-time double here: the
 * functions col_du.c calls are defined in this file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/du.h"
#include "common/error.h"

/* ---- the agent double ------------------------------------------------------------------------ */

static struct rsre_agent_config g_cfg;
static uv_loop_t *g_loop;
static int g_done_calls, g_done_rc;

const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a) {
    (void)a;
    return &g_cfg;
}

uv_loop_t *rsre_agent_loop(struct rsre_agent *a) {
    (void)a;
    return g_loop;
}

void rsre_collect_done(struct rsre_collect_run *run, int rc) {
    (void)run;
    g_done_calls++;
    g_done_rc = rc;
}

/* ---- the tree ------------------------------------------------------------------------------- */

static char g_root[64];
static char g_logs[128], g_kubelet[128], g_runtime[128];

static void mkdirs(const char *rel) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_root, rel);
    for (char *p = path + strlen(g_root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    mkdir(path, 0755);
}

static void file(const char *rel, size_t size) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    while (size > 0) {
        size_t n = size < sizeof(buf) ? size : sizeof(buf);
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
        size -= n;
    }
    close(fd);
}

#define EMPTY "kubelet/pods/%s/volumes/kubernetes.io~empty-dir/%s"

static int setup_tree(void **state) {
    (void)state;
    snprintf(g_root, sizeof(g_root), "/tmp/rsre-du-XXXXXX");
    if (!mkdtemp(g_root)) {
        return -1;
    }
    snprintf(g_logs, sizeof(g_logs), "%s/logs", g_root);
    snprintf(g_kubelet, sizeof(g_kubelet), "%s/kubelet", g_root);
    snprintf(g_runtime, sizeof(g_runtime), "%s/containerd", g_root);
    mkdirs("logs/default_pod-a_11111111/app");
    mkdirs("logs/default_pod-a_11111111/sidecar");
    mkdirs("logs/kube-system_pod-b_22222222/c");
    mkdirs("logs/.hidden");
    file("logs/default_pod-a_11111111/app/0.log", 100 * 1024);
    file("logs/default_pod-a_11111111/app/1.log.20240101-000000.gz", 20 * 1024);
    file("logs/default_pod-a_11111111/sidecar/0.log", 10 * 1024);
    file("logs/kube-system_pod-b_22222222/c/0.log", 300 * 1024);
    file("logs/.hidden/big", 2000 * 1024); /* not a pod directory */
    file("logs/stray.txt", 4096);
    mkdirs("kubelet/pods/uid1/volumes/kubernetes.io~empty-dir/cache/sub/sub2");
    mkdirs("kubelet/pods/uid1/volumes/kubernetes.io~configmap/cfg");
    mkdirs("kubelet/pods/uid2/volumes/kubernetes.io~empty-dir/scratch");
    file("kubelet/pods/uid1/volumes/kubernetes.io~empty-dir/cache/big", 500 * 1024);
    file("kubelet/pods/uid1/volumes/kubernetes.io~empty-dir/cache/sub/sub2/f", 4096);
    file("kubelet/pods/uid1/volumes/kubernetes.io~configmap/cfg/data", 900 * 1024);
    file("kubelet/pods/uid2/etc-hosts", 100);
    char link[512];
    snprintf(link, sizeof(link), "%s/" EMPTY "/etc-link", g_root, "uid1", "cache");
    assert_int_equal(symlink("/etc", link), 0); /* never followed */
    mkdirs("containerd/io.containerd.content.v1.content/blobs/sha256");
    mkdirs("containerd/io.containerd.content.v1.content/ingest");
    file("containerd/io.containerd.content.v1.content/blobs/sha256/"
         "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4",
         1024 * 1024);
    file("containerd/io.containerd.content.v1.content/blobs/sha256/"
         "0b3a8a4c0c5b7e3e0c1e3e4b0f9a1d7c4e5b6a7f8091a2b3c4d5e6f708192a3b",
         64 * 1024);
    file("containerd/other-plugin-file", 3000 * 1024); /* outside the content store */
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown_tree(void **state) {
    (void)state;
    nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Reference: bytes and files under one consumer directory, with nftw. */
static uint64_t ref_bytes, ref_files;

static int ref_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)path;
    (void)ftw;
    ref_bytes += (uint64_t)st->st_blocks * 512u;
    if (flag != FTW_D) {
        ref_files++;
    }
    return 0;
}

static void reference(const char *path, uint64_t *bytes, uint64_t *files) {
    ref_bytes = ref_files = 0;
    assert_int_equal(nftw(path, ref_entry, 16, FTW_PHYS | FTW_MOUNT), 0);
    *bytes = ref_bytes;
    *files = ref_files;
}

static const struct rsre_du_consumer *find(const struct rsre_du_consumer *c, size_t n,
                                           const char *suffix) {
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(c[i].path), s = strlen(suffix);
        if (l >= s && strcmp(c[i].path + l - s, suffix) == 0) {
            return &c[i];
        }
    }
    return NULL;
}

static struct rsre_du_consumer g_res[32], g_res2[32];

static size_t full_scan(struct rsre_du *du, uint32_t max_entries, uint32_t budget_ms,
                        struct rsre_du_consumer *out, uint32_t *steps, uint32_t *max_step) {
    struct rsre_du_step_stats st;
    *steps = 0;
    *max_step = 0;
    int rc;
    do {
        rc = rsre_du_step(du, max_entries, budget_ms, &st);
        assert_true(rc >= 0);
        (*steps)++;
        *max_step = st.entries > *max_step ? st.entries : *max_step;
        assert_true(*steps < 100000);
    } while (rc == 0);
    assert_true(st.scan_complete);
    return rsre_du_results(du, out, 32, NULL);
}

static void test_sizes_and_order(void **state) {
    (void)state;
    struct rsre_du *du;
    assert_int_equal(rsre_du_create(g_logs, g_kubelet, g_runtime, 32, &du), 0);
    assert_int_equal(rsre_du_results(du, g_res, 32, NULL), 0); /* nothing before a scan */
    uint32_t steps, max_step;
    size_t n = full_scan(du, 1000000, 100000, g_res, &steps, &max_step);
    assert_int_equal(steps, 1);
    assert_int_equal(n, 5);
    static const struct {
        const char *suffix;
        enum rsre_du_kind kind;
    } want[] = {
        {"/containerd/io.containerd.content.v1.content", RSRE_DU_CONTENT_STORE},
        {"/kubelet/pods/uid1/volumes/kubernetes.io~empty-dir/cache", RSRE_DU_EMPTY_DIR},
        {"/logs/kube-system_pod-b_22222222", RSRE_DU_POD_LOGS},
        {"/logs/default_pod-a_11111111", RSRE_DU_POD_LOGS},
        {"/kubelet/pods/uid2/volumes/kubernetes.io~empty-dir/scratch", RSRE_DU_EMPTY_DIR},
    };
    for (size_t i = 0; i < 5; i++) {
        const struct rsre_du_consumer *c = find(g_res, n, want[i].suffix);
        if (!c) {
            fail_msg("no consumer %s", want[i].suffix);
        }
        assert_int_equal(c - g_res, (ptrdiff_t)i); /* largest first */
        assert_int_equal(c->kind, want[i].kind);
        uint64_t bytes, files;
        reference(c->path, &bytes, &files);
        if (c->bytes != bytes || c->files != files) {
            fail_msg("%s: %llu bytes %llu files, nftw says %llu and %llu", c->path,
                     (unsigned long long)c->bytes, (unsigned long long)c->files,
                     (unsigned long long)bytes, (unsigned long long)files);
        }
    }
    /* What was written is accounted (allocation may round up, never down). */
    assert_true(g_res[0].bytes >= 1088 * 1024);
    assert_int_equal(g_res[0].files, 2);
    assert_true(g_res[1].bytes >= 504 * 1024);
    assert_int_equal(g_res[1].files, 3); /* big, sub/sub2/f, the symlink itself */
    assert_int_equal(g_res[3].files, 3);
    assert_string_equal(rsre_du_kind_name(g_res[2].kind), "pod_logs");
    assert_string_equal(rsre_du_kind_name(RSRE_DU_EMPTY_DIR), "empty_dir");
    assert_string_equal(rsre_du_kind_name(RSRE_DU_CONTENT_STORE), "content_store");
    assert_string_equal(rsre_du_kind_name(0), "unknown");

    struct rsre_du_scan_stats s;
    rsre_du_results(du, g_res, 1, &s);
    assert_int_equal(s.scans_completed, 1);
    assert_int_equal(s.consumers, 5);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.steps, 1);
    assert_true(s.completed_unix_ms > 0);
    /* top_n bounds the results kept. */
    rsre_du_destroy(du);
    assert_int_equal(rsre_du_create(g_logs, g_kubelet, g_runtime, 2, &du), 0);
    n = full_scan(du, 1000000, 100000, g_res2, &steps, &max_step);
    assert_int_equal(n, 2);
    assert_string_equal(g_res2[0].path, g_res[0].path);
    assert_string_equal(g_res2[1].path, g_res[1].path);
    rsre_du_destroy(du);
    rsre_du_destroy(NULL);
    assert_int_equal(rsre_du_create(g_logs, g_kubelet, g_runtime, 0, &du), -EINVAL);
}

static void test_budgets_and_resume(void **state) {
    (void)state;
    struct rsre_du *du;
    assert_int_equal(rsre_du_create(g_logs, g_kubelet, g_runtime, 32, &du), 0);
    uint32_t steps, max_step;
    size_t n = full_scan(du, 1000000, 100000, g_res, &steps, &max_step);
    struct rsre_du_scan_stats one;
    rsre_du_results(du, g_res2, 0, &one);
    uint64_t total_entries = one.entries;
    assert_true(total_entries > 20);

    /* Three entries per step: never more, and the scan resumes to the same result. */
    struct rsre_du_step_stats st;
    uint64_t sum = 0;
    uint32_t k = 0;
    int rc;
    do {
        rc = rsre_du_step(du, 3, 100000, &st);
        assert_true(st.entries <= 3);
        sum += st.entries;
        k++;
        if (rc == 0) {
            /* Mid-scan the previous completed scan is still what is reported. */
            struct rsre_du_scan_stats s;
            assert_int_equal(rsre_du_results(du, g_res2, 32, &s), n);
            assert_int_equal(s.scans_completed, 1);
        }
    } while (rc == 0);
    assert_int_equal(sum, total_entries);
    assert_true(k >= total_entries / 3);
    struct rsre_du_scan_stats two;
    assert_int_equal(rsre_du_results(du, g_res2, 32, &two), n);
    assert_int_equal(two.scans_completed, 2);
    assert_int_equal(two.entries, total_entries);
    assert_int_equal(two.steps, k);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(g_res2[i].path, g_res[i].path);
        assert_int_equal(g_res2[i].bytes, g_res[i].bytes);
        assert_int_equal(g_res2[i].files, g_res[i].files);
    }
    /* Budget 0 ms: one entry per step at most, still completes. */
    size_t n0 = full_scan(du, 1000000, 0, g_res2, &steps, &max_step);
    assert_int_equal(n0, n);
    assert_true(max_step <= 1);
    assert_true(steps >= total_entries);
    /* max_entries 0 is treated as 1. */
    assert_int_equal(full_scan(du, 0, 100000, g_res2, &steps, &max_step), n);
    assert_true(max_step <= 1);
    rsre_du_destroy(du);
}

static void test_tree_changes_mid_scan(void **state) {
    (void)state;
    struct rsre_du *du;
    assert_int_equal(rsre_du_create(g_logs, g_kubelet, g_runtime, 32, &du), 0);
    struct rsre_du_step_stats st;
    assert_int_equal(rsre_du_step(du, 2, 100000, &st), 0);
    /* Remove a pod log directory and replace an emptyDir by a symlink while the walk runs. */
    char path[512];
    snprintf(path, sizeof(path), "%s/logs/kube-system_pod-b_22222222", g_root);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(path, sizeof(path), "%s/" EMPTY, g_root, "uid2", "scratch");
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(symlink("/", path), 0);
    uint32_t steps, max_step;
    size_t n = full_scan(du, 2, 100000, g_res, &steps, &max_step);
    /* Nothing crashed, no path outside the tree was counted (/ was not entered). */
    for (size_t i = 0; i < n; i++) {
        assert_true(strncmp(g_res[i].path, g_root, strlen(g_root)) == 0);
        assert_true(g_res[i].bytes < 100u << 20);
    }
    struct rsre_du_scan_stats s;
    rsre_du_results(du, g_res, 32, &s);
    assert_true(s.consumers >= 3);
    unlink(path);
    rsre_du_destroy(du);
}

static void test_missing_roots(void **state) {
    (void)state;
    struct rsre_du *du;
    assert_int_equal(rsre_du_create("/nonexistent/logs", NULL, "", 4, &du), 0);
    struct rsre_du_step_stats st;
    assert_int_equal(rsre_du_step(du, 10, 10, &st), 1); /* nothing to do: complete at once */
    assert_int_equal(rsre_du_results(du, g_res, 4, NULL), 0);
    rsre_du_destroy(du);
    /* A root that is a file is skipped too. */
    char path[512];
    snprintf(path, sizeof(path), "%s/logs/stray.txt", g_root);
    assert_int_equal(rsre_du_create(path, NULL, NULL, 4, &du), 0);
    assert_int_equal(rsre_du_step(du, 10, 10, &st), 1);
    rsre_du_destroy(du);
}

/* ---- the cache of immutable directories ------------------------------------------------------ */

#define BLOBS "containerd/io.containerd.content.v1.content/blobs/sha256"

/* Sets a directory's atime and mtime `age` seconds into the past (ctime becomes now). */
static void age_dir(const char *rel, time_t age) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_root, rel);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= age;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* One full scan; returns the content store consumer and the scan's statistics. */
static const struct rsre_du_consumer *scan_store(struct rsre_du *du,
                                                 struct rsre_du_scan_stats *s) {
    uint32_t steps, max_step;
    size_t n = full_scan(du, 1000000, 100000, g_res, &steps, &max_step);
    rsre_du_results(du, g_res2, 0, s);
    const struct rsre_du_consumer *c = find(g_res, n, "/io.containerd.content.v1.content");
    assert_non_null(c);
    return c;
}

/* The reference walk must agree with the walker after every change. */
static void assert_matches_reference(const struct rsre_du_consumer *c) {
    uint64_t bytes, files;
    reference(c->path, &bytes, &files);
    if (c->bytes != bytes || c->files != files) {
        fail_msg("%s: %llu bytes %llu files, nftw says %llu and %llu", c->path,
                 (unsigned long long)c->bytes, (unsigned long long)c->files,
                 (unsigned long long)bytes, (unsigned long long)files);
    }
}

static void test_cache_invalidation(void **state) {
    (void)state;
    /* ctime cannot be set back, and a directory changed within RSRE_DU_CACHE_RACY_S is not
     * cached: wait until the tree's ctimes are old enough (the only wait in this file). */
    age_dir(BLOBS, 100);
    sleep(RSRE_DU_CACHE_RACY_S + 1);
    struct rsre_du *du;
    assert_int_equal(rsre_du_create(g_logs, g_kubelet, g_runtime, 32, &du), 0);
    rsre_du_set_cache(du, 3);
    struct rsre_du_scan_stats s;

    /* First scan reads everything and caches the blob directory; the second uses it. */
    const struct rsre_du_consumer *c = scan_store(du, &s);
    assert_matches_reference(c);
    assert_int_equal(s.cached_dirs, 0);
    uint64_t entries_full = s.entries, bytes0 = c->bytes, files0 = c->files;
    c = scan_store(du, &s);
    assert_int_equal(s.cached_dirs, 1);
    assert_int_equal(s.cached_entries, 2);
    assert_int_equal(s.entries, entries_full - 2); /* the two blobs were not stat'ed */
    assert_int_equal(c->bytes, bytes0);
    assert_int_equal(c->files, files0);

    /* A blob added: the directory's mtime/ctime change, it is read again at once. */
    file(BLOBS "/1111111111111111111111111111111111111111111111111111111111111111", 256 * 1024);
    c = scan_store(du, &s);
    assert_int_equal(s.cached_dirs, 0);
    assert_int_equal(c->files, files0 + 1);
    assert_true(c->bytes >= bytes0 + 256 * 1024);
    assert_matches_reference(c);
    c = scan_store(du, &s); /* cached or read again: the same figures either way */
    assert_matches_reference(c);

    /* A blob replaced by rename (how containerd writes) with another size, and the directory's
     * mtime forged back to the cached value: ctime still differs, the change is seen. */
    age_dir(BLOBS, 100);
    sleep(RSRE_DU_CACHE_RACY_S + 1);
    c = scan_store(du, &s); /* read and cached */
    assert_int_equal(s.cached_dirs, 0);
    c = scan_store(du, &s);
    assert_int_equal(s.cached_dirs, 1);
    uint64_t bytes1 = c->bytes;
    char from[512], to[512], dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", g_root, BLOBS);
    struct stat before;
    assert_int_equal(stat(dir, &before), 0);
    file("containerd/io.containerd.content.v1.content/ingest/new", 2048 * 1024);
    snprintf(from, sizeof(from), "%s/containerd/io.containerd.content.v1.content/ingest/new",
             g_root);
    snprintf(to, sizeof(to), "%s/" BLOBS "/1111111111111111111111111111111111111111111111111111111111111111",
             g_root);
    assert_int_equal(rename(from, to), 0);
    struct timespec back[2] = {before.st_atim, before.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, dir, back, 0), 0);
    c = scan_store(du, &s);
    assert_int_equal(s.cached_dirs, 0);
    assert_true(c->bytes >= bytes1 + (2048 - 256) * 1024);
    assert_matches_reference(c);

    /* A blob removed. */
    assert_int_equal(unlink(to), 0);
    c = scan_store(du, &s);
    assert_int_equal(s.cached_dirs, 0);
    assert_int_equal(c->files, files0);
    assert_matches_reference(c);

    /* A file rewritten in place (containerd never does this; nothing on the directory changes):
     * seen after at most max_reuse cached scans. */
    age_dir(BLOBS, 100);
    sleep(RSRE_DU_CACHE_RACY_S + 1);
    c = scan_store(du, &s); /* read and cached */
    uint64_t bytes2 = c->bytes;
    file("containerd/io.containerd.content.v1.content/blobs/sha256/"
         "0b3a8a4c0c5b7e3e0c1e3e4b0f9a1d7c4e5b6a7f8091a2b3c4d5e6f708192a3b",
         512 * 1024);
    int cached_scans = 0, seen = 0;
    for (int i = 0; i < 5 && !seen; i++) {
        c = scan_store(du, &s);
        cached_scans += (int)s.cached_dirs;
        seen = c->bytes != bytes2;
    }
    assert_true(seen);
    assert_int_equal(cached_scans, 3);
    assert_matches_reference(c);

    /* Pod logs are never cached: an append is seen on the next scan. */
    uint32_t steps, max_step;
    size_t n = full_scan(du, 1000000, 100000, g_res, &steps, &max_step);
    const struct rsre_du_consumer *p = find(g_res, n, "/logs/default_pod-a_11111111");
    assert_non_null(p);
    uint64_t log0 = p->bytes;
    char logp[512];
    snprintf(logp, sizeof(logp), "%s/logs/default_pod-a_11111111/app/0.log", g_root);
    int fd = open(logp, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    static char chunk[64 * 1024];
    assert_int_equal(write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
    close(fd);
    n = full_scan(du, 1000000, 100000, g_res, &steps, &max_step);
    p = find(g_res, n, "/logs/default_pod-a_11111111");
    assert_non_null(p);
    assert_true(p->bytes >= log0 + sizeof(chunk));

    /* Off: every scan reads the directory. */
    rsre_du_set_cache(du, 0);
    c = scan_store(du, &s);
    c = scan_store(du, &s);
    assert_int_equal(s.cached_dirs, 0);
    assert_matches_reference(c);
    rsre_du_destroy(du);
}

/* A fixed path component (pods/<uid>/volumes) is looked up, not read from its directory: a
 * symlink there is still never followed, and the figures match a full walk. */
static void test_fixed_names_not_followed(void **state) {
    (void)state;
    mkdirs("outside/kubernetes.io~empty-dir/vol");
    file("outside/kubernetes.io~empty-dir/vol/big", 4096 * 1024);
    mkdirs("kubelet/pods/uid3");
    char target[512], link[512];
    snprintf(target, sizeof(target), "%s/outside", g_root);
    snprintf(link, sizeof(link), "%s/kubelet/pods/uid3/volumes", g_root);
    assert_int_equal(symlink(target, link), 0);
    struct rsre_du *du;
    assert_int_equal(rsre_du_create(g_logs, g_kubelet, g_runtime, 32, &du), 0);
    uint32_t steps, max_step;
    size_t n = full_scan(du, 1, 100000, g_res, &steps, &max_step);
    assert_int_equal(n, 5);
    assert_null(find(g_res, n, "/vol"));
    const struct rsre_du_consumer *c =
        find(g_res, n, "/kubelet/pods/uid1/volumes/kubernetes.io~empty-dir/cache");
    assert_non_null(c);
    assert_matches_reference(c);
    rsre_du_destroy(du);
    unlink(link);
    snprintf(link, sizeof(link), "%s/kubelet/pods/uid3", g_root);
    rmdir(link);
    nftw(target, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the collector -------------------------------------------------------------------------- */

/* The double's rsre_collect_done ignores the run; any non-NULL pointer stands for one. */
#define FAKE_RUN ((struct rsre_collect_run *)&g_done_calls)

static void test_collector(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    g_loop = &loop;
    memset(&g_cfg, 0, sizeof(g_cfg));
    snprintf(g_cfg.pod_log_dir, sizeof(g_cfg.pod_log_dir), "%s", g_logs);
    snprintf(g_cfg.kubelet_root, sizeof(g_cfg.kubelet_root), "%s", g_kubelet);
    snprintf(g_cfg.runtime_root, sizeof(g_cfg.runtime_root), "%s", g_runtime);
    g_cfg.du_max_entries = 10;
    g_cfg.du_budget_ms = 5;
    void *st = NULL;
    assert_int_equal(rsre_collector_du.init((struct rsre_agent *)&g_cfg, &st), 0);
    void *st2 = NULL;
    assert_int_equal(rsre_collector_du.init((struct rsre_agent *)&g_cfg, &st2), -EBUSY);
    assert_int_equal(rsre_du_top(NULL, g_res, 32, NULL), 0);
    g_done_calls = 0;
    rsre_collector_du.collect((struct rsre_agent *)&g_cfg, st, FAKE_RUN);
    assert_int_equal(g_done_calls, 0); /* more than one step: completes later, on the loop */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(g_done_calls, 1);
    assert_int_equal(g_done_rc, 0);
    struct rsre_du_scan_stats s;
    size_t n = rsre_du_top(NULL, g_res, 32, &s);
    assert_int_equal(n, 5);
    assert_true(s.steps > 1);
    assert_int_equal(g_res[0].kind, RSRE_DU_CONTENT_STORE);

    /* Destroy during a run: the run ends with -ECANCELED, the state is freed on close. */
    g_done_calls = 0;
    rsre_collector_du.collect((struct rsre_agent *)&g_cfg, st, FAKE_RUN);
    rsre_collector_du.destroy(st);
    assert_int_equal(g_done_calls, 1);
    assert_int_equal(g_done_rc, -ECANCELED);
    assert_int_equal(rsre_du_top(NULL, g_res, 32, &s), 0);
    assert_int_equal(s.scans_completed, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_order),       cmocka_unit_test(test_budgets_and_resume),
        cmocka_unit_test(test_missing_roots),         cmocka_unit_test(test_collector),
        cmocka_unit_test(test_fixed_names_not_followed),
        cmocka_unit_test(test_cache_invalidation),    /* changes the content store */
        cmocka_unit_test(test_tree_changes_mid_scan), /* last: it changes the tree */
    };
    return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
