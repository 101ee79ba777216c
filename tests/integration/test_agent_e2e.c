/*
 * End-to-end test of the node agent: the real robot-sre-agent binary (BUILD/agent/
 * robot-sre-agent), started as a child process with every path pointing into a temp dir, against
 *
 *   - a real containerd (tests/support/containerd_env.sh) holding locally built images
 *     (tests/support/oci_image.py): the pause image (containerd's sandbox_image), busybox, and
 *     five images of random bytes of known sizes, img-1..img-5. Pod "web" is created through CRI
 *     the way kubelet does it (host network, no CNI), with container "app" (busybox, running
 *     `sleep`) and "idle" (img-5, created and never started);
 *   - the fake aggregator (tests/support/fake_aggregator.c: this binary started with --serve)
 *     over real gRPC; it writes every signal, Hello and action result it receives to a file
 *     (--dump-signals) and sends the ActionRequests of a file on SIGUSR1 (--actions-file);
 *   - a 64 MiB tmpfs as the imagefs (--runtime_root) holding a 48 MiB file, and a kubelet config
 *     with image GC at 75 % / 70 % and imagefs.available<4Mi, so the GC projection is exact:
 *     bytes_to_gc_low = 48 MiB - floor(64 MiB * 0.70);
 *   - an unreachable Kubernetes API (that collector fails; the others carry on).
 *
 * Checked from what the aggregator received (and from containerd itself):
 *   signals   Hello (node, runtime from CRI Version, capabilities, actions); ImageGcState: 7 images and their summed sizes,
 *             5 unused (pause + img-1..4: never busybox or img-5, which containers use), 1
 *             pinned (pause), reclaimable = img-1..4 (image_min_age_s 0), bytes_to_gc_low and
 *             gc_can_recover from the tmpfs; FilesystemUsage of the imagefs: size, free bytes,
 *             the kubelet config's thresholds.
 *   dry_run   prune_unused_images with dry_run: DRY_RUN, exactly img-1..4 by id with their
 *             bytes; containerd still has all 7.
 *   refused   remove_exited_containers (allowed by the aggregator, not by the agent's
 *             --actions_allowed), delete_finished_pods (allowed by the agent, not by the
 *             aggregator's ConfigUpdate) and an unknown action are REFUSED; a request past its
 *             deadline is TIMEOUT; nothing is removed.
 *   prune     the real prune: OK, objects_removed 4, bytes_freed = their sizes, their ids;
 *             containerd then has exactly pause, busybox and img-5, "app" still runs; the
 *             same request id sent again is not run again; the next ImageGcState says 3
 *             images, 1 unused (pause), 0 reclaimable, GC cannot recover.
 *   health    GET /healthz: 200 JSON with per-collector stats; /metrics: action counters; 404.
 *   sigterm   SIGTERM: the agent exits 0 within 5 s. In the ASan build the agent runs with
 *             LeakSanitizer on and exitcode=23, so a leak at exit fails this check; the fake
 *             aggregator is stopped the same way.
 *
 * Needs root (tmpfs mount, containerd); skipped when not root or containerd is not installed.
 * RSRE_TEST_KEEP=1 leaves the temp dir (logs, dump) and containerd in place.
 */
#define RSRE_FAKE_AGGREGATOR_NO_MAIN
#include "../support/fake_aggregator.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "agent/cri.h"

#include "../support/proc.c"

#define SCRIPT RSRE_SOURCE_DIR "/tests/support/containerd_env.sh"
#define OCI_IMAGE RSRE_SOURCE_DIR "/tests/support/oci_image.py"
#define AGENT RSRE_BINARY_DIR "/agent/robot-sre-agent"
#define PYTHON "/usr/bin/python3"
#define NODE "node-e2e"
#define NIMAGES 7
#define MIB (1024u * 1024u)
#define TMPFS_BYTES (64ull * MIB)
#define FILLER_BYTES (48ull * MIB)
#define GC_HIGH 75
#define GC_LOW 70
#define EVICT_IMAGEFS (4ull * MIB)
#define WAIT_MS 20000

enum { IMG_PAUSE = 0, IMG_BUSYBOX = 1, IMG_1 = 2, IMG_4 = 5, IMG_5 = 6 };

static const uint64_t random_sizes[5] = {1 * MIB, 2 * MIB, 3 * MIB, MIB / 2, 3 * MIB / 2};

struct image_info {
    char name[128];
    char file[512];
    char id[80];
    uint64_t size;
};

static struct {
    int skip;
    int broken; /* a test failed: the later ones depend on it and are skipped */
    char dir[64];
    char ctd[96], imagefs[96], nodefs[96], pods[96], spool[96], agg[96];
    char kubelet_cfg[128], dump[128], actions[128], agent_log[128], agg_log[128], port_file[128];
    int mounted;
    struct image_info img[NIMAGES];
    char target[300];
    /* CRI client of the test (pods, container state) */
    uv_loop_t loop;
    int loop_open;
    struct rsre_grpc_loop *gl;
    struct rsre_cri *cri;
    char web_sandbox[80], app[80], idle[80];
    /* processes */
    pid_t agg_pid, agent_pid;
    int agg_port, health_port;
    int64_t agent_started_ms;
    int64_t prune_finished_ms;
} F;

/* ---- small helpers ----------------------------------------------------------------------------
 */

/* Prints the end of the agent's log (on failures). */
static void show_agent_log(void) {
    size_t len = 0;
    char *log = slurp(F.agent_log, &len);
    if (!log) {
        return;
    }
    size_t from = len > 6000 ? len - 6000 : 0;
    fprintf(stderr, "---- end of %s ----\n%s\n----\n", F.agent_log, log + from);
    free(log);
}

/* ---- lines of the aggregator's dump -----------------------------------------------------------
 */

/* The value of " key=" in `line` (up to the next space) into out; 0 when present. */
static int field(const char *line, const char *key, char *out, size_t cap) {
    char pat[80];
    snprintf(pat, sizeof(pat), " %s=", key);
    const char *p = strstr(line, pat);
    if (!p) {
        return -1;
    }
    p += strlen(pat);
    size_t n = strcspn(p, " \n");
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static uint64_t field_u64(const char *line, const char *key) {
    char v[64];
    if (field(line, key, v, sizeof(v)) != 0) {
        fail_msg("no field %s in: %s", key, line);
    }
    return strtoull(v, NULL, 10);
}

static int64_t field_i64(const char *line, const char *key) {
    char v[64];
    if (field(line, key, v, sizeof(v)) != 0) {
        fail_msg("no field %s in: %s", key, line);
    }
    return strtoll(v, NULL, 10);
}

static double field_double(const char *line, const char *key) {
    char v[64];
    if (field(line, key, v, sizeof(v)) != 0) {
        fail_msg("no field %s in: %s", key, line);
    }
    return strtod(v, NULL);
}

static void assert_field(const char *line, const char *key, const char *want) {
    char v[4096];
    if (field(line, key, v, sizeof(v)) != 0) {
        fail_msg("no field %s in: %s", key, line);
    }
    if (strcmp(v, want) != 0) {
        fail_msg("%s=%s, want %s, in: %s", key, v, want, line);
    }
}

typedef int (*line_pred)(const char *line, const void *arg);

/*
 * Waits until the dump has a complete line for which `pred` holds and copies the first such
 * line into out (malloc'ed, free()). Fails the test after timeout_ms.
 */
static char *wait_line(line_pred pred, const void *arg, int timeout_ms, const char *what) {
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        char *buf = slurp(F.dump, NULL);
        for (char *line = buf; line && *line;) {
            char *nl = strchr(line, '\n');
            if (!nl) {
                break; /* torn last line: not written completely yet */
            }
            *nl = '\0';
            if (pred(line, arg)) {
                char *copy = strdup(line);
                free(buf);
                assert_non_null(copy);
                return copy;
            }
            line = nl + 1;
        }
        free(buf);
        if (mono_ms() > end) {
            show_agent_log();
            fail_msg("timed out after %d ms waiting for %s", timeout_ms, what);
        }
        if (F.agent_pid > 0 && waitpid(F.agent_pid, NULL, WNOHANG) == F.agent_pid) {
            F.agent_pid = 0;
            show_agent_log();
            fail_msg("the agent exited while waiting for %s", what);
        }
        usleep(50000);
    }
}

/* Waits until the agent's log contains `text`. */
static void wait_log(const char *text, const char *what) {
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        char *log = slurp(F.agent_log, NULL);
        int found = log && strstr(log, text);
        free(log);
        if (found) {
            return;
        }
        if (mono_ms() > end) {
            show_agent_log();
            fail_msg("timed out waiting for %s", what);
        }
        usleep(50000);
    }
}

static int starts_with(const char *line, const char *kind) {
    size_t n = strlen(kind);
    return strncmp(line, kind, n) == 0 && line[n] == ' ';
}

static int pred_hello(const char *line, const void *arg) {
    (void)arg;
    return starts_with(line, "hello");
}

/* ImageGcState computed against the tmpfs (the filesystem collector's hand-over) and observed
 * at or after *(int64_t *)arg. */
static int pred_image_gc(const char *line, const void *arg) {
    char v[64];
    return starts_with(line, "image_gc") &&
           field(line, "imagefs_capacity_bytes", v, sizeof(v)) == 0 &&
           strtoull(v, NULL, 10) == TMPFS_BYTES &&
           field_i64(line, "observed_ms") >= *(const int64_t *)arg;
}

static int pred_fs(const char *line, const void *arg) {
    char v[64];
    return starts_with(line, "filesystem") && field(line, "which", v, sizeof(v)) == 0 &&
           strcmp(v, (const char *)arg) == 0;
}

static int pred_result(const char *line, const void *arg) {
    char v[160];
    return starts_with(line, "result") && field(line, "request_id", v, sizeof(v)) == 0 &&
           strcmp(v, (const char *)arg) == 0;
}

/* The comma-separated removed_ids of a result line hold exactly the ids of images [from, to]. */
static void assert_removed_ids(const char *line, int from, int to) {
    char ids[4096];
    assert_int_equal(field(line, "removed_ids", ids, sizeof(ids)), 0);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(ids, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int i = from; i <= to; i++) {
            found |= strcmp(t, F.img[i].id) == 0;
        }
        if (!found) {
            fail_msg("removed id %s is not one of the unused images", t);
        }
        n++;
    }
    assert_int_equal(n, to - from + 1);
}

static uint64_t sum_sizes(int from, int to) {
    uint64_t s = 0;
    for (int i = from; i <= to; i++) {
        s += F.img[i].size;
    }
    return s;
}

/* kubelet's amountToFree for the tmpfs, computed the way the agent documents it. */
static uint64_t expected_to_gc_low(void) {
    uint64_t target = (uint64_t)((double)TMPFS_BYTES * GC_LOW / 100.0);
    return FILLER_BYTES > target ? FILLER_BYTES - target : 0;
}

/* Sends the ActionRequests in `lines` (one per line, fake_aggregator --actions-file syntax). */
static void send_actions(const char *lines) {
    write_file(F.actions, lines);
    assert_int_equal(kill(F.agg_pid, SIGUSR1), 0);
}

/* ---- containerd, CRI ------------------------------------------------------------------------- */

static void run_loop_until(const int *flag) {
    int64_t end = mono_ms() + 60000;
    while (!*flag) {
        uv_run(&F.loop, UV_RUN_ONCE);
        if (mono_ms() > end) {
            fail_msg("timed out waiting for a CRI call");
        }
    }
}

struct sync_call {
    int done, rc;
    ProtobufCMessage *reply;
};

static void on_sync(void *arg, int rc, ProtobufCMessage *reply) {
    struct sync_call *s = arg;
    s->done = 1;
    s->rc = rc;
    s->reply = reply;
}

static int call_sync(const struct rsre_cri_method *m, const ProtobufCMessage *req,
                     ProtobufCMessage **reply) {
    struct sync_call s = {0};
    int rc = rsre_cri_call(F.cri, m, req, 0, on_sync, &s);
    if (rc != 0) {
        return rc;
    }
    run_loop_until(&s.done);
    if (reply) {
        *reply = s.reply;
    } else {
        rsre_cri_free(s.reply);
    }
    return s.rc;
}

/* Kubelet's calls: rows of the test's own method table. */
#define RT "/runtime.v1.RuntimeService/"
static const struct rsre_cri_method m_run_pod = {"RunPodSandbox",
                                                 RT "RunPodSandbox",
                                                 &runtime__v1__run_pod_sandbox_request__descriptor,
                                                 &runtime__v1__run_pod_sandbox_response__descriptor,
                                                 1 << 20,
                                                 60000};
static const struct rsre_cri_method m_create = {"CreateContainer",
                                                RT "CreateContainer",
                                                &runtime__v1__create_container_request__descriptor,
                                                &runtime__v1__create_container_response__descriptor,
                                                1 << 20,
                                                60000};
static const struct rsre_cri_method m_start = {"StartContainer",
                                               RT "StartContainer",
                                               &runtime__v1__start_container_request__descriptor,
                                               &runtime__v1__start_container_response__descriptor,
                                               1 << 20,
                                               60000};

struct pod_cfg {
    Runtime__V1__PodSandboxConfig cfg;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__LinuxPodSandboxConfig linux;
    Runtime__V1__LinuxSandboxSecurityContext sc;
    Runtime__V1__NamespaceOption ns;
};

static void pod_config(struct pod_cfg *p, const char *name) {
    runtime__v1__pod_sandbox_config__init(&p->cfg);
    runtime__v1__pod_sandbox_metadata__init(&p->md);
    runtime__v1__linux_pod_sandbox_config__init(&p->linux);
    runtime__v1__linux_sandbox_security_context__init(&p->sc);
    runtime__v1__namespace_option__init(&p->ns);
    p->md.name = (char *)name;
    p->md.uid = (char *)name;
    p->md.namespace_ = "default";
    p->ns.network = RUNTIME__V1__NAMESPACE_MODE__NODE; /* host network: no CNI needed */
    p->sc.namespace_options = &p->ns;
    p->linux.security_context = &p->sc;
    p->cfg.metadata = &p->md;
    p->cfg.linux = &p->linux;
}

static void run_pod(const char *name, char *id_out) {
    struct pod_cfg p;
    pod_config(&p, name);
    Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    req.config = &p.cfg;
    ProtobufCMessage *reply = NULL;
    int rc = call_sync(&m_run_pod, &req.base, &reply);
    if (rc != 0) {
        fail_msg("RunPodSandbox %s: %s", name, rsre_strerror(rc));
    }
    snprintf(id_out, 80, "%s", ((Runtime__V1__RunPodSandboxResponse *)reply)->pod_sandbox_id);
    rsre_cri_free(reply);
}

static void run_container(const char *pod_id, const char *pod, const char *name, const char *image,
                          const char *const *cmd, size_t ncmd, int start, char *id_out) {
    struct pod_cfg p;
    pod_config(&p, pod);
    Runtime__V1__ContainerMetadata md = RUNTIME__V1__CONTAINER_METADATA__INIT;
    md.name = (char *)name;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = (char *)image;
    Runtime__V1__ContainerConfig cc = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cc.metadata = &md;
    cc.image = &spec;
    cc.command = (char **)cmd;
    cc.n_command = ncmd;
    Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
    req.pod_sandbox_id = (char *)pod_id;
    req.config = &cc;
    req.sandbox_config = &p.cfg;
    ProtobufCMessage *reply = NULL;
    int rc = call_sync(&m_create, &req.base, &reply);
    if (rc != 0) {
        fail_msg("CreateContainer %s/%s: %s", pod, name, rsre_strerror(rc));
    }
    snprintf(id_out, 80, "%s", ((Runtime__V1__CreateContainerResponse *)reply)->container_id);
    rsre_cri_free(reply);
    if (start) {
        Runtime__V1__StartContainerRequest sreq = RUNTIME__V1__START_CONTAINER_REQUEST__INIT;
        sreq.container_id = id_out;
        rc = call_sync(&m_start, &sreq.base, NULL);
        if (rc != 0) {
            fail_msg("StartContainer %s/%s: %s", pod, name, rsre_strerror(rc));
        }
    }
}

static int container_state(const char *id) {
    ProtobufCMessage *reply = NULL;
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    req.container_id = (char *)id;
    assert_int_equal(call_sync(&rsre_cri_methods[RSRE_CRI_CONTAINER_STATUS], &req.base, &reply), 0);
    int st = (int)((Runtime__V1__ContainerStatusResponse *)reply)->status->state;
    rsre_cri_free(reply);
    return st;
}

/* containerd's own image names (`ctr images ls -q`: tags and the CRI's id names), one per line. */
static char *ctr_images(void) {
    static char out[16384];
    char *argv[] = {"/bin/bash", SCRIPT, "images", F.ctd, NULL};
    assert_int_equal(run_cmd(argv, out, sizeof(out)), 0);
    return out;
}

/* True when image i is known to containerd under its tag or its id. */
static int ctr_has(const char *list, int i) {
    char tag[160], id[100];
    snprintf(tag, sizeof(tag), "\n%s\n", F.img[i].name);
    snprintf(id, sizeof(id), "\n%s\n", F.img[i].id);
    char *wrapped = malloc(strlen(list) + 3);
    assert_non_null(wrapped);
    sprintf(wrapped, "\n%s%s", list, list[0] && list[strlen(list) - 1] == '\n' ? "" : "\n");
    int has = strstr(wrapped, tag) != NULL || strstr(wrapped, id) != NULL;
    free(wrapped);
    return has;
}

/* Every line containerd lists names one of the images in keep[] (by tag or id), and every one of
 * them is listed under its tag. */
static void assert_ctr_exactly(const int *keep, int nkeep) {
    char *list = ctr_images();
    for (int k = 0; k < nkeep; k++) {
        if (!ctr_has(list, keep[k])) {
            fail_msg("containerd lost image %s; it lists:\n%s", F.img[keep[k]].name, list);
        }
    }
    char *copy = strdup(list);
    assert_non_null(copy);
    for (char *save = NULL, *t = strtok_r(copy, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        int ok = 0;
        for (int k = 0; k < nkeep; k++) {
            ok |= !strcmp(t, F.img[keep[k]].name) || !strcmp(t, F.img[keep[k]].id);
        }
        if (!ok) {
            free(copy);
            fail_msg("containerd still has image %s", t);
        }
    }
    free(copy);
}

/* ---- processes --------------------------------------------------------------------------------
 */

static void start_aggregator(void) {
    static char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    char *argv[] = {exe, "--serve", "--listen", "127.0.0.1:0", "--dir", F.agg, "--port-file",
                    F.port_file, "--dump-signals", F.dump, "--actions-file", F.actions,
                    /* the aggregator allows these; the agent allows prune_unused_images and
                     * delete_finished_pods */
                    "--allow", "prune_unused_images", "--allow", "remove_exited_containers", NULL};
    F.agg_pid = spawn(argv, F.agg_log, -1, NULL);
    int64_t end = mono_ms() + WAIT_MS;
    FILE *f = NULL;
    while (!(f = fopen(F.port_file, "r"))) {
        if (mono_ms() > end || waitpid(F.agg_pid, NULL, WNOHANG) == F.agg_pid) {
            fail_msg("the fake aggregator did not start (see %s)", F.agg_log);
        }
        usleep(20000);
    }
    assert_int_equal(fscanf(f, "%d", &F.agg_port), 1);
    fclose(f);
    assert_true(F.agg_port > 0);
}

static void start_agent(void) {
    char a[24][600];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--node_name=%s", NODE);
    ARG("--aggregator=127.0.0.1:%d", F.agg_port);
    ARG("--cri_socket=%s", F.target);
    ARG("--kubelet_root=%s", F.nodefs);
    ARG("--runtime_root=%s", F.imagefs);
    ARG("--kubelet_config=%s", F.kubelet_cfg);
    ARG("--pod_log_dir=%s", F.pods);
    ARG("--kube_api=http://127.0.0.1:1"); /* unreachable: that collector fails alone */
    ARG("--spool_dir=%s", F.spool);
    ARG("--health_addr=127.0.0.1:%d", F.health_port);
    ARG("--log_level=info");
    ARG("--filesystem_ms=1000");
    ARG("--image_gc_ms=5000");
    ARG("--psi_ms=2000");
    ARG("--du_ms=10000");
    ARG("--batch_flush_ms=1000"); /* the protocol's minimum interval */
    ARG("--image_min_age_s=0");
    ARG("--reconnect_min_ms=100");
    ARG("--reconnect_max_ms=1000");
    ARG("--actions_allowed=prune_unused_images,delete_finished_pods");
#undef ARG
    char *argv[26] = {AGENT};
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    F.agent_started_ms = wall_ms();
    F.agent_pid = spawn(argv, F.agent_log, -1, NULL);
}

/* ---- fixture ----------------------------------------------------------------------------------
 */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void fill_imagefs(void) {
    char path[160];
    snprintf(path, sizeof(path), "%s/filler", F.imagefs);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    static char chunk[1 << 20];
    memset(chunk, 0xa5, sizeof(chunk));
    for (uint64_t w = 0; w < FILLER_BYTES; w += sizeof(chunk)) {
        assert_int_equal(write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
    }
    assert_int_equal(fsync(fd), 0);
    close(fd);
    struct statvfs sv;
    assert_int_equal(statvfs(F.imagefs, &sv), 0);
    /* tmpfs accounts whole pages of file data only: used is exactly what was written */
    assert_int_equal((uint64_t)sv.f_blocks * sv.f_frsize, TMPFS_BYTES);
    assert_int_equal((uint64_t)(sv.f_blocks - sv.f_bavail) * sv.f_frsize, FILLER_BYTES);
}

static void build_images(void) {
    char imgdir[128], specs[NIMAGES][256];
    snprintf(imgdir, sizeof(imgdir), "%s/images", F.dir);
    snprintf(specs[0], sizeof(specs[0]),
             "busybox:rsre.test/pause:1:/bin/busybox:/bin/busybox,sleep,2147483647");
    snprintf(specs[1], sizeof(specs[1]), "busybox:rsre.test/busybox:1:/bin/busybox");
    for (int i = 0; i < 5; i++) {
        snprintf(specs[2 + i], sizeof(specs[0]), "random:rsre.test/img-%d:1:%llu:%d", i + 1,
                 (unsigned long long)random_sizes[i], 200 + i);
    }
    char *argv[NIMAGES + 4] = {PYTHON, OCI_IMAGE, imgdir};
    for (int i = 0; i < NIMAGES; i++) {
        argv[3 + i] = specs[i];
    }
    argv[3 + NIMAGES] = NULL;
    static char out[8192];
    assert_int_equal(run_cmd(argv, out, sizeof(out)), 0);
    char *line = out;
    for (int i = 0; i < NIMAGES; i++) {
        unsigned long long size;
        struct image_info *im = &F.img[i];
        assert_int_equal(
            sscanf(line, "%127[^\t]\t%511[^\t]\t%79[^\t]\t%llu", im->name, im->file, im->id, &size),
            4);
        im->size = size;
        line = strchr(line, '\n');
        assert_non_null(line);
        line++;
    }
}

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof(F));
    if (access("/usr/bin/containerd", X_OK) != 0 && access("/usr/local/bin/containerd", X_OK)) {
        fprintf(stderr, "SKIP: containerd is not installed (apt-get install containerd runc)\n");
        F.skip = 1;
        return 0;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root (tmpfs mount, containerd)\n");
        F.skip = 1;
        return 0;
    }
    assert_int_equal(access(AGENT, X_OK), 0);
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "warn");
    int64_t t0 = mono_ms();

    snprintf(F.dir, sizeof(F.dir), "/tmp/rsre-e2e.XXXXXX");
    assert_non_null(mkdtemp(F.dir));
#define SUB(f, name) snprintf(F.f, sizeof(F.f), "%s/%s", F.dir, name)
    SUB(ctd, "ctd");
    SUB(imagefs, "imagefs");
    SUB(nodefs, "nodefs");
    SUB(pods, "pods");
    SUB(spool, "spool");
    SUB(agg, "agg");
    SUB(kubelet_cfg, "kubelet-config.yaml");
    SUB(dump, "signals.log");
    SUB(actions, "actions.txt");
    SUB(agent_log, "agent.log");
    SUB(agg_log, "aggregator.log");
    SUB(port_file, "aggregator.port");
#undef SUB
    const char *dirs[] = {F.imagefs, F.nodefs, F.pods, F.spool, F.agg};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        assert_int_equal(mkdir(dirs[i], 0755), 0);
    }
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%llu,mode=0755", (unsigned long long)TMPFS_BYTES);
    assert_int_equal(mount("tmpfs", F.imagefs, "tmpfs", 0, opts), 0);
    F.mounted = 1;
    fill_imagefs();
    char kcfg[512];
    snprintf(kcfg, sizeof(kcfg),
             "apiVersion: kubelet.config.k8s.io/v1beta1\n"
             "kind: KubeletConfiguration\n"
             "imageGCHighThresholdPercent: %d\n"
             "imageGCLowThresholdPercent: %d\n"
             "evictionHard:\n"
             "  imagefs.available: \"4Mi\"\n"
             "  nodefs.available: \"10%%\"\n",
             GC_HIGH, GC_LOW);
    write_file(F.kubelet_cfg, kcfg);

    build_images();
    char *start[] = {"/bin/bash", SCRIPT, "start", F.ctd, F.img[IMG_PAUSE].name, NULL};
    char sock[256];
    assert_int_equal(run_cmd(start, sock, sizeof(sock)), 0);
    sock[strcspn(sock, "\n")] = '\0';
    snprintf(F.target, sizeof(F.target), "unix://%s", sock);
    char *import[NIMAGES + 5] = {"/bin/bash", SCRIPT, "import", F.ctd};
    for (int i = 0; i < NIMAGES; i++) {
        import[4 + i] = F.img[i].file;
    }
    assert_int_equal(run_cmd(import, NULL, 0), 0);

    assert_int_equal(uv_loop_init(&F.loop), 0);
    F.loop_open = 1;
    assert_int_equal(rsre_grpc_loop_create(&F.loop, &F.gl), 0);
    assert_int_equal(rsre_cri_create(&F.loop, F.gl, F.target, &F.cri), 0);
    static const char *const sleep_cmd[] = {"/bin/busybox", "sleep", "600"};
    static const char *const true_cmd[] = {"/bin/busybox", "true"};
    run_pod("web", F.web_sandbox);
    run_container(F.web_sandbox, "web", "app", F.img[IMG_BUSYBOX].name, sleep_cmd, 3, 1, F.app);
    run_container(F.web_sandbox, "web", "idle", F.img[IMG_5].name, true_cmd, 2, 0, F.idle);
    assert_int_equal(container_state(F.app), RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING);

    F.health_port = free_port();
    start_aggregator();
    start_agent();
    char *hello = wait_line(pred_hello, NULL, WAIT_MS, "the agent's Hello");
    free(hello);
    fprintf(stderr, "[ setup ] images, containerd, pod, aggregator and agent ready in %lld ms\n",
            (long long)(mono_ms() - t0));
    return 0;
}

static int closed_flag;
static void on_closed(void *arg) {
    (void)arg;
    closed_flag = 1;
}

static int teardown(void **state) {
    (void)state;
    if (F.skip) {
        return 0;
    }
    kill_wait(&F.agent_pid);
    kill_wait(&F.agg_pid);
    if (F.cri) {
        closed_flag = 0;
        rsre_cri_destroy(F.cri, on_closed, NULL);
        run_loop_until(&closed_flag);
        F.cri = NULL;
    }
    if (F.gl) {
        closed_flag = 0;
        rsre_grpc_loop_destroy(F.gl, on_closed, NULL);
        run_loop_until(&closed_flag);
        F.gl = NULL;
    }
    if (F.loop_open) {
        uv_run(&F.loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&F.loop), 0);
    }
    if (getenv("RSRE_TEST_KEEP")) {
        fprintf(stderr, "RSRE_TEST_KEEP: left %s (containerd: %s stop %s; umount %s)\n", F.dir,
                SCRIPT, F.ctd, F.imagefs);
        return 0;
    }
    if (F.ctd[0]) {
        char *argv[] = {"/bin/bash", SCRIPT, "stop", F.ctd, NULL};
        run_cmd(argv, NULL, 0);
    }
    if (F.mounted && umount2(F.imagefs, 0) != 0) {
        umount2(F.imagefs, MNT_DETACH);
    }
    if (F.dir[0]) {
        nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}

/* Each test depends on the ones before: after a failure the rest are skipped. */
#define BEGIN()                                                                                    \
    do {                                                                                           \
        if (F.skip || F.broken) {                                                                  \
            skip();                                                                                \
        }                                                                                          \
        F.broken = 1;                                                                              \
    } while (0)
#define END() (F.broken = 0)

/* ---- tests ------------------------------------------------------------------------------------
 */

/* What the agent reports before anything is removed. */
static void test_signals(void **state) {
    (void)state;
    BEGIN();
    char *hello = wait_line(pred_hello, NULL, WAIT_MS, "Hello");
    assert_field(hello, "node", NODE);
    /* Hello.container_runtime from CRI Version, already in the first Hello. */
    char runtime[128];
    assert_int_equal(field(hello, "runtime", runtime, sizeof(runtime)), 0);
    if (strncmp(runtime, "containerd://", 13) != 0 || !runtime[13]) {
        fail_msg("Hello runtime=%s, want containerd://<version>", runtime);
    }
    /* Hello.actions: today the local allowlist; the proto says "implemented". Either way: */
    char actions[512];
    assert_int_equal(field(hello, "actions", actions, sizeof(actions)), 0);
    assert_non_null(strstr(actions, "prune_unused_images"));
    char caps[512];
    assert_int_equal(field(hello, "capabilities", caps, sizeof(caps)), 0);
    const char *want_caps[] = {"FILESYSTEM", "IMAGE_GC", "POD_CHURN",
                               "ACTIONS",    "DRY_RUN",  "SPOOL"};
    for (size_t i = 0; i < sizeof(want_caps) / sizeof(want_caps[0]); i++) {
        if (!strstr(caps, want_caps[i])) {
            fail_msg("capability %s missing: %s", want_caps[i], caps);
        }
    }
    free(hello);

    int64_t since = F.agent_started_ms;
    char *gc = wait_line(pred_image_gc, &since, WAIT_MS, "an ImageGcState");
    fprintf(stderr, "[ signal ] %s\n", gc);
    const uint64_t unused_bytes = F.img[IMG_PAUSE].size + sum_sizes(IMG_1, IMG_4);
    const uint64_t reclaimable = sum_sizes(IMG_1, IMG_4);
    assert_int_equal(field_u64(gc, "image_count"), NIMAGES);
    assert_int_equal(field_u64(gc, "total_bytes"), sum_sizes(0, NIMAGES - 1));
    /* busybox (running "app") and img-5 (created "idle") are in use: never unused */
    assert_int_equal(field_u64(gc, "unused_count"), 5);
    assert_int_equal(field_u64(gc, "unused_bytes"), unused_bytes);
    assert_int_equal(field_u64(gc, "pinned_count"), 1);
    assert_int_equal(field_u64(gc, "pinned_bytes"), F.img[IMG_PAUSE].size);
    assert_int_equal(field_u64(gc, "reclaimable_bytes"), reclaimable);
    assert_int_equal(field_u64(gc, "min_image_age_sec"), 0);
    assert_int_equal(field_u64(gc, "bytes_to_gc_low"), expected_to_gc_low());
    assert_true(reclaimable >= expected_to_gc_low());
    assert_int_equal(field_u64(gc, "gc_can_recover"), 1);
    char mnt[512];
    assert_int_equal(field(gc, "imagefs_mountpoint", mnt, sizeof(mnt)), 0);
    if (!strstr(mnt, F.ctd)) {
        fail_msg("CRI image filesystem %s is not under %s", mnt, F.ctd);
    }
    free(gc);

    char *fs = wait_line(pred_fs, "IMAGEFS", WAIT_MS, "the imagefs FilesystemUsage");
    fprintf(stderr, "[ signal ] %s\n", fs);
    assert_field(fs, "path", F.imagefs);
    assert_int_equal(field_u64(fs, "bytes_total"), TMPFS_BYTES);
    assert_int_equal(field_u64(fs, "bytes_avail"), TMPFS_BYTES - FILLER_BYTES);
    assert_int_equal(field_u64(fs, "eviction_available"), EVICT_IMAGEFS);
    assert_field(fs, "threshold_source", "KUBELET_CONFIG");
    assert_true(field_double(fs, "image_gc_high_percent") == GC_HIGH);
    assert_true(field_double(fs, "image_gc_low_percent") == GC_LOW);
    assert_int_equal(field_i64(fs, "seconds_to_eviction"), -1); /* not filling */
    free(fs);
    /* nodefs is the temp dir on the host's filesystem: reported by its mount point */
    fs = wait_line(pred_fs, "NODEFS", WAIT_MS, "the nodefs FilesystemUsage");
    char path[512];
    assert_int_equal(field(fs, "path", path, sizeof(path)), 0);
    struct statvfs sv;
    assert_int_equal(statvfs(F.nodefs, &sv), 0);
    if (strncmp(F.nodefs, path, strlen(path)) != 0) {
        fail_msg("nodefs mount point %s does not hold %s", path, F.nodefs);
    }
    assert_int_equal(field_u64(fs, "bytes_total"), (uint64_t)sv.f_blocks * sv.f_frsize);
    assert_true(field_double(fs, "image_gc_high_percent") == 0); /* GC acts on the imagefs */
    free(fs);
    END();
}

/* A dry run reports exactly the unused, unpinned images and removes nothing. */
static void test_dry_run(void **state) {
    (void)state;
    BEGIN();
    send_actions("dry-1 prune_unused_images dry_run=1 target=imagefs param=reason=e2e\n");
    char *r = wait_line(pred_result, "dry-1", WAIT_MS, "the dry-run result");
    fprintf(stderr, "[ result ] %s\n", r);
    assert_field(r, "action_id", "prune_unused_images");
    assert_field(r, "status", "DRY_RUN");
    assert_int_equal(field_u64(r, "objects_removed"), 4);
    assert_int_equal(field_u64(r, "bytes_freed"), sum_sizes(IMG_1, IMG_4));
    assert_removed_ids(r, IMG_1, IMG_4);
    assert_true(field_i64(r, "started_ms") > 0);
    assert_true(field_i64(r, "finished_ms") >= field_i64(r, "started_ms"));
    free(r);
    const int all[] = {0, 1, 2, 3, 4, 5, 6};
    assert_ctr_exactly(all, NIMAGES);
    END();
}

/* Not on the agent's allowlist, not on the aggregator's, unknown, or too late: nothing runs. */
static void test_refused(void **state) {
    (void)state;
    BEGIN();
    send_actions("refuse-local remove_exited_containers dry_run=0\n"
                 "refuse-remote delete_finished_pods dry_run=0\n"
                 "refuse-unknown no_such_action dry_run=0\n"
                 "late-1 prune_unused_images dry_run=0 deadline_ms=-1000\n");
    static const struct {
        const char *id, *status, *message;
    } want[] = {
        {"refuse-local", "REFUSED", "not on this agent's allowlist (actions_allowed)"},
        {"refuse-remote", "REFUSED", "not on the aggregator's allowlist (ConfigUpdate)"},
        {"refuse-unknown", "REFUSED", "unknown node-local action"},
        {"late-1", "TIMEOUT", "deadline"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *r = wait_line(pred_result, want[i].id, WAIT_MS, want[i].id);
        fprintf(stderr, "[ result ] %s\n", r);
        assert_field(r, "status", want[i].status);
        assert_int_equal(field_u64(r, "objects_removed"), 0);
        assert_int_equal(field_u64(r, "bytes_freed"), 0);
        assert_field(r, "removed_ids", "-");
        if (!strstr(strstr(r, " message="), want[i].message)) {
            fail_msg("%s: message lacks \"%s\": %s", want[i].id, want[i].message, r);
        }
        free(r);
    }
    const int all[] = {0, 1, 2, 3, 4, 5, 6};
    assert_ctr_exactly(all, NIMAGES);
    END();
}

/* The real prune removes exactly the unused images, and the next report shows it. */
static void test_prune(void **state) {
    (void)state;
    BEGIN();
    send_actions("prune-1 prune_unused_images dry_run=0 target=imagefs\n");
    char *r = wait_line(pred_result, "prune-1", WAIT_MS, "the prune result");
    fprintf(stderr, "[ result ] %s\n", r);
    assert_field(r, "status", "OK");
    assert_int_equal(field_u64(r, "objects_removed"), 4);
    assert_int_equal(field_u64(r, "bytes_freed"), sum_sizes(IMG_1, IMG_4));
    assert_removed_ids(r, IMG_1, IMG_4);
    F.prune_finished_ms = field_i64(r, "finished_ms");
    free(r);

    const int kept[] = {IMG_PAUSE, IMG_BUSYBOX, IMG_5};
    assert_ctr_exactly(kept, 3);
    assert_int_equal(container_state(F.app), RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING);
    assert_int_equal(container_state(F.idle), RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED);

    /* The same request id again is never run twice (test_health checks the action counter). */
    send_actions("prune-1 prune_unused_images dry_run=0 target=imagefs\n");
    wait_log("request=prune-1 already ran", "the repeated request to be ignored");

    char *gc =
        wait_line(pred_image_gc, &F.prune_finished_ms, WAIT_MS, "an ImageGcState after the prune");
    fprintf(stderr, "[ signal ] %s\n", gc);
    assert_int_equal(field_u64(gc, "image_count"), 3);
    assert_int_equal(field_u64(gc, "total_bytes"),
                     F.img[IMG_PAUSE].size + F.img[IMG_BUSYBOX].size + F.img[IMG_5].size);
    assert_int_equal(field_u64(gc, "unused_count"), 1);
    assert_int_equal(field_u64(gc, "unused_bytes"), F.img[IMG_PAUSE].size);
    assert_int_equal(field_u64(gc, "pinned_count"), 1);
    assert_int_equal(field_u64(gc, "reclaimable_bytes"), 0);
    /* the filler still holds imagefs above the low threshold: GC alone cannot save this node */
    assert_int_equal(field_u64(gc, "bytes_to_gc_low"), expected_to_gc_low());
    assert_int_equal(field_u64(gc, "gc_can_recover"), 0);
    free(gc);
    END();
}

/* One HTTP/1.0 GET to the agent's health endpoint; returns the status code, body in out. */
static int http_get(const char *path, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)F.health_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    static char resp[65536];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof(resp) - 1 && (r = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0) {
        len += (size_t)r;
    }
    resp[len] = '\0';
    close(fd);
    int code = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.%*d %d", &code), 1);
    const char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    snprintf(out, cap, "%s", body + 4);
    return code;
}

static uint64_t metric(const char *text, const char *name) {
    char pat[160];
    snprintf(pat, sizeof(pat), "\n%s ", name);
    const char *p = strstr(text, pat);
    if (!p) {
        fail_msg("metric %s missing", name);
    }
    return strtoull(p + strlen(pat), NULL, 10);
}

static void test_health(void **state) {
    (void)state;
    BEGIN();
    static char body[65536];
    assert_int_equal(http_get("/healthz", body, sizeof(body)), 200);
    fprintf(stderr, "[ healthz ] %s", body);
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr);
    if (!doc) {
        fail_msg("/healthz is not JSON (%s): %s", jerr.text, body);
    }
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(doc, "node")), NODE);
    assert_true(json_is_true(json_object_get(doc, "aggregator_connected")));
    json_t *cols = json_object_get(doc, "collectors");
    assert_true(json_is_array(cols));
    int seen_gc = 0, seen_fs = 0, seen_kube = 0;
    for (size_t i = 0; i < json_array_size(cols); i++) {
        json_t *c = json_array_get(cols, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        assert_non_null(name);
        assert_true(json_is_integer(json_object_get(c, "runs")));
        assert_true(json_is_integer(json_object_get(c, "errors")));
        json_int_t runs = json_integer_value(json_object_get(c, "runs"));
        json_int_t errors = json_integer_value(json_object_get(c, "errors"));
        if (!strcmp(name, "image_gc")) {
            seen_gc = 1;
            assert_true(json_is_true(json_object_get(c, "enabled")));
            assert_true(runs >= 2); /* before and after the prune */
            assert_int_equal(errors, 0);
        } else if (!strcmp(name, "filesystem")) {
            seen_fs = 1;
            assert_true(runs >= 2);
            assert_int_equal(errors, 0);
        } else if (!strcmp(name, "kube")) {
            /* The API is unreachable: its informers fail (their error shows in this row once a
             * run came after the first failed list), and the other rows are unaffected. */
            seen_kube = 1;
            assert_true(json_is_true(json_object_get(c, "enabled")));
            assert_true(runs >= 1);
        }
    }
    assert_true(seen_gc && seen_fs && seen_kube);
    json_decref(doc);

    assert_int_equal(http_get("/metrics", body, sizeof(body)), 200);
    assert_int_equal(metric(body, "rsre_agent_actions_total"), 2); /* dry-1 and prune-1 */
    assert_int_equal(metric(body, "rsre_agent_actions_refused_total"), 3);
    assert_int_equal(metric(body, "rsre_agent_stream_connected"), 1);
    assert_true(metric(body, "rsre_agent_signals_total") > 0);
    assert_int_equal(http_get("/nope", body, sizeof(body)), 404);
    END();
}

/* SIGTERM: a clean exit, status 0, within a few seconds (under ASan: without leaks). */
static void test_sigterm(void **state) {
    (void)state;
    BEGIN();
    int64_t t0 = mono_ms();
    assert_int_equal(kill(F.agent_pid, SIGTERM), 0);
    int st = 0;
    if (!wait_exit(F.agent_pid, 5000, &st)) {
        show_agent_log();
        fail_msg("the agent did not exit within 5 s of SIGTERM");
    }
    F.agent_pid = 0;
    int64_t took = mono_ms() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        show_agent_log();
        fail_msg("agent exit: %s %d (23: LeakSanitizer found leaks)",
                 WIFEXITED(st) ? "status" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    char *log = slurp(F.agent_log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "shutting down"));
    assert_null(strstr(log, "ERROR: AddressSanitizer"));
    assert_null(strstr(log, "runtime error:"));
    free(log);
    fprintf(stderr, "[ sigterm ] agent exited 0 after %lld ms\n", (long long)took);

    assert_int_equal(kill(F.agg_pid, SIGTERM), 0);
    assert_true(wait_exit(F.agg_pid, 10000, &st));
    F.agg_pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("fake aggregator exit: %d (see %s)", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 F.agg_log);
    }
    END();
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--serve") == 0) {
        return fake_aggregator_main(argc - 1, argv + 1);
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signals), cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_refused), cmocka_unit_test(test_prune),
        cmocka_unit_test(test_health),  cmocka_unit_test(test_sigterm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
