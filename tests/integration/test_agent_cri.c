/*
 * Integration test of the agent's CRI client, the image_gc / containers collectors and the
 * prune_unused_images / remove_exited_containers actions against a real containerd (Debian
 * package) started in a temp dir by tests/support/containerd_env.sh.
 *
 * Images are built locally (tests/support/oci_image.py: no registry is reachable) and imported
 * with ctr: a pause image (the runtime's sandbox_image), busybox, and five images of known
 * sizes made of random bytes. Pods are created through CRI the way kubelet does it (host
 * network, so no CNI is needed):
 *
 *   pod "web" (ready)   app        busybox, running (sleep 300)
 *                       idle       img-5, created and never started (still pins img-5)
 *                       oneshot    busybox, attempts 0 and 1, both exited
 *   pod "old" (stopped) job        busybox, exited
 *
 * so img-1..img-4 are the only unused, unpinned images. The test asserts what the collector
 * reports, that a dry-run prune removes nothing and lists exactly those four, that the real
 * prune removes exactly them (checked over CRI and with `ctr images ls`), and that the exited
 * container cleanup removes oneshot#0 and job but never app, idle or the newest oneshot.
 * Error paths: unknown ids, a socket that does not exist, and destroy with calls in flight.
 *
 * The agent core is replaced by test doubles (struct rsre_agent below; rsre_agent_emit and
 * friends are weak so a linked agent.c would win, but nothing here pulls it in).
 *
 * Skips (exit 77 via cmocka skip) only when the containerd binary is not installed.
 */
#include "agent/agent.h"
#include "agent/cri.h"

#include "common/error.h"
#include "common/grpc_loop.h"
#include "common/log.h"
#include "common/pbuf.h"

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/proc.c"

#define SCRIPT RSRE_SOURCE_DIR "/tests/support/containerd_env.sh"
#define OCI_IMAGE RSRE_SOURCE_DIR "/tests/support/oci_image.py"
#define PYTHON "/usr/bin/python3"
#define NIMAGES 7
#define MIB (1024u * 1024u)

/* ---- test doubles of the agent core -------------------------------------------------------- */

#define MAX_SIGNALS 32

struct rsre_agent {
    struct rsre_agent_config cfg;
    struct rsre_cri *cri;
    uv_loop_t *loop;
    RobotSre__Agent__V1__Signal *signals[MAX_SIGNALS]; /* copies of what was emitted */
    size_t nsignals;
};

struct rsre_collect_run {
    int done;
    int rc;
};

__attribute__((weak)) int rsre_agent_emit(struct rsre_agent *a, const rsre_signal *s) {
    RobotSre__Agent__V1__Signal copy = *s;
    if (copy.observed_unix_ms == 0) {
        copy.observed_unix_ms = 1;
    }
    /* What leaves the agent must pass the stream's validation. */
    char err[RSRE_PBUF_ERR_LEN];
    int rc = rsre_pbuf_validate(&copy.base, err, sizeof(err));
    if (rc != 0) {
        fail_msg("emitted signal is invalid: %s", err);
    }
    uint8_t *buf;
    size_t len;
    assert_int_equal(rsre_pbuf_pack(&copy.base, 0, &buf, &len), 0);
    assert_true(a->nsignals < MAX_SIGNALS);
    a->signals[a->nsignals] = robot_sre__agent__v1__signal__unpack(NULL, len, buf);
    assert_non_null(a->signals[a->nsignals]);
    a->nsignals++;
    free(buf);
    return 0;
}

__attribute__((weak)) void rsre_collect_done(struct rsre_collect_run *run, int rc) {
    assert_int_equal(run->done, 0); /* exactly once */
    run->done = 1;
    run->rc = rc;
}

__attribute__((weak)) struct rsre_cri *rsre_agent_cri(struct rsre_agent *a) {
    return a->cri;
}

__attribute__((weak)) const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a) {
    return &a->cfg;
}

__attribute__((weak)) uv_loop_t *rsre_agent_loop(struct rsre_agent *a) {
    return a->loop;
}

/* The action context the double of the agent hands to an action. */
struct action_run {
    struct rsre_action_ctx ctx;
    RobotSre__Agent__V1__ActionRequest req;
    int done;
};

__attribute__((weak)) void rsre_action_add_removed(struct rsre_action_ctx *ctx, const char *id) {
    char **n = realloc(ctx->removed, (ctx->nremoved + 1) * sizeof(*n));
    assert_non_null(n);
    ctx->removed = n;
    ctx->removed[ctx->nremoved++] = strdup(id);
}

__attribute__((weak)) void rsre_action_set(struct rsre_action_ctx *ctx,
                                           RobotSre__Agent__V1__ActionStatus status,
                                           const char *fmt, ...) {
    ctx->result.status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
    va_end(ap);
}

__attribute__((weak)) void rsre_action_done(struct rsre_action_ctx *ctx) {
    struct action_run *r = (struct action_run *)ctx;
    assert_int_equal(r->done, 0);
    r->done = 1;
}

/* ---- fixture --------------------------------------------------------------------------------- */

struct image_info {
    char name[128];
    char file[512];
    char id[80];
    uint64_t size;
};

static struct {
    int skip;
    char dir[64];                   /* temp root */
    char ctd[96];                   /* containerd dir */
    char target[300];               /* unix://<sock> */
    struct image_info img[NIMAGES]; /* pause, busybox, img-1..img-5 */
    uv_loop_t loop;
    struct rsre_grpc_loop *gl;
    struct rsre_cri *cri;
    struct rsre_agent agent;
    char web_sandbox[80], old_sandbox[80];
    char app[80], idle[80], oneshot0[80], oneshot1[80], job[80];
    char newest[80]; /* newest exited "oneshot" attempt */
} F;

enum { IMG_PAUSE = 0, IMG_BUSYBOX = 1, IMG_1 = 2, IMG_5 = 6 };

static const uint64_t random_sizes[5] = {1 * MIB, 2 * MIB, 3 * MIB, MIB / 2, 3 * MIB / 2};

/* Runs the loop until *flag is set (fails after 30 s). */
static void run_until(const int *flag) {
    int64_t start = wall_ms();
    while (!*flag) {
        uv_run(&F.loop, UV_RUN_ONCE);
        if (wall_ms() - start > 30000) {
            fail_msg("timed out waiting for a callback");
        }
    }
}

struct sync_call {
    int done;
    int rc;
    ProtobufCMessage *reply;
};

static void on_sync(void *arg, int rc, ProtobufCMessage *reply) {
    struct sync_call *s = arg;
    s->done = 1;
    s->rc = rc;
    s->reply = reply;
}

/* One call, waited for. Returns rc; *reply (if asked) is owned by the caller. */
static int call_sync_on(struct rsre_cri *cri, const struct rsre_cri_method *m,
                        const ProtobufCMessage *req, ProtobufCMessage **reply) {
    struct sync_call s = {0};
    int rc = rsre_cri_call(cri, m, req, 0, on_sync, &s);
    if (rc != 0) {
        return rc;
    }
    run_until(&s.done);
    if (reply) {
        *reply = s.reply;
    } else {
        rsre_cri_free(s.reply);
    }
    return s.rc;
}

static int call_sync(const struct rsre_cri_method *m, const ProtobufCMessage *req,
                     ProtobufCMessage **reply) {
    return call_sync_on(F.cri, m, req, reply);
}

/* Pod and container lifecycle calls: rows of the test's own (kubelet's) method table. */
#define RT "/runtime.v1.RuntimeService/"
static const struct rsre_cri_method m_run_pod = {"RunPodSandbox",
                                                 RT "RunPodSandbox",
                                                 &runtime__v1__run_pod_sandbox_request__descriptor,
                                                 &runtime__v1__run_pod_sandbox_response__descriptor,
                                                 1 << 20,
                                                 60000};
static const struct rsre_cri_method m_stop_pod = {
    "StopPodSandbox",
    RT "StopPodSandbox",
    &runtime__v1__stop_pod_sandbox_request__descriptor,
    &runtime__v1__stop_pod_sandbox_response__descriptor,
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

static void pod_config(Runtime__V1__PodSandboxConfig *cfg, Runtime__V1__PodSandboxMetadata *md,
                       Runtime__V1__LinuxPodSandboxConfig *linux,
                       Runtime__V1__LinuxSandboxSecurityContext *sc,
                       Runtime__V1__NamespaceOption *ns, const char *name) {
    runtime__v1__pod_sandbox_config__init(cfg);
    runtime__v1__pod_sandbox_metadata__init(md);
    runtime__v1__linux_pod_sandbox_config__init(linux);
    runtime__v1__linux_sandbox_security_context__init(sc);
    runtime__v1__namespace_option__init(ns);
    md->name = (char *)name;
    md->uid = (char *)name; /* pod names are unique in this test: use them as uids */
    md->namespace_ = "default";
    ns->network = RUNTIME__V1__NAMESPACE_MODE__NODE; /* host network: no CNI needed */
    sc->namespace_options = ns;
    linux->security_context = sc;
    cfg->metadata = md;
    /* no hostname: with the node's network namespace the runtime refuses one */
    cfg->linux = linux;
}

static void run_pod(const char *name, char *id_out) {
    Runtime__V1__PodSandboxConfig cfg;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__LinuxPodSandboxConfig linux;
    Runtime__V1__LinuxSandboxSecurityContext sc;
    Runtime__V1__NamespaceOption ns;
    pod_config(&cfg, &md, &linux, &sc, &ns, name);
    Runtime__V1__RunPodSandboxRequest req = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
    req.config = &cfg;
    ProtobufCMessage *reply = NULL;
    int rc = call_sync(&m_run_pod, &req.base, &reply);
    if (rc != 0) {
        fail_msg("RunPodSandbox %s: %s", name, rsre_strerror(rc));
    }
    snprintf(id_out, 80, "%s", ((Runtime__V1__RunPodSandboxResponse *)reply)->pod_sandbox_id);
    rsre_cri_free(reply);
}

/* Creates (and starts unless start == 0) a container; its id goes to id_out. */
static void run_container(const char *pod_id, const char *pod, const char *name, uint32_t attempt,
                          const char *image, const char *const *cmd, size_t ncmd, int start,
                          char *id_out) {
    Runtime__V1__PodSandboxConfig pcfg;
    Runtime__V1__PodSandboxMetadata md;
    Runtime__V1__LinuxPodSandboxConfig linux;
    Runtime__V1__LinuxSandboxSecurityContext sc;
    Runtime__V1__NamespaceOption ns;
    pod_config(&pcfg, &md, &linux, &sc, &ns, pod);
    Runtime__V1__ContainerMetadata cmd_md = RUNTIME__V1__CONTAINER_METADATA__INIT;
    cmd_md.name = (char *)name;
    cmd_md.attempt = attempt;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = (char *)image;
    Runtime__V1__ContainerConfig cc = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cc.metadata = &cmd_md;
    cc.image = &spec;
    cc.command = (char **)cmd;
    cc.n_command = ncmd;
    Runtime__V1__CreateContainerRequest req = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
    req.pod_sandbox_id = (char *)pod_id;
    req.config = &cc;
    req.sandbox_config = &pcfg;
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

/* The container's CRI state, or GONE when the runtime no longer has it. */
#define GONE 99
static int container_state(const char *id) {
    ProtobufCMessage *reply = NULL;
    Runtime__V1__ContainerStatusRequest req = RUNTIME__V1__CONTAINER_STATUS_REQUEST__INIT;
    req.container_id = (char *)id;
    int rc = call_sync(&rsre_cri_methods[RSRE_CRI_CONTAINER_STATUS], &req.base, &reply);
    if (rc == RSRE_ENOTFOUND) {
        return GONE;
    }
    assert_int_equal(rc, 0);
    int st = (int)((Runtime__V1__ContainerStatusResponse *)reply)->status->state;
    rsre_cri_free(reply);
    return st;
}

static void wait_exited(const char *id) {
    for (int i = 0; i < 200; i++) {
        if (container_state(id) == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
            return;
        }
        usleep(50000);
    }
    fail_msg("container %s did not exit", id);
}

static int have_containerd(void) {
    return access("/usr/bin/containerd", X_OK) == 0 ||
           access("/usr/local/bin/containerd", X_OK) == 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void stop_containerd(void) {
    if (F.ctd[0]) {
        char *argv[] = {"/bin/bash", SCRIPT, "stop", F.ctd, NULL};
        run_cmd(argv, NULL, 0);
    }
}

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof(F));
    if (!have_containerd()) {
        F.skip = 1;
        fprintf(stderr, "SKIP: containerd is not installed (apt-get install containerd runc)\n");
        return 0;
    }
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "warn");
    snprintf(F.dir, sizeof(F.dir), "/tmp/rsre-cri.XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.ctd, sizeof(F.ctd), "%s/ctd", F.dir);

    /* Images: the sandbox (pause) image, busybox and five random images of known sizes. */
    char imgdir[128], specs[7][700];
    snprintf(imgdir, sizeof(imgdir), "%s/images", F.dir);
    snprintf(specs[0], sizeof(specs[0]),
             "busybox:rsre.test/pause:1:/bin/busybox:/bin/busybox,sleep,2147483647");
    snprintf(specs[1], sizeof(specs[1]), "busybox:rsre.test/busybox:1:/bin/busybox");
    for (int i = 0; i < 5; i++) {
        snprintf(specs[2 + i], sizeof(specs[0]), "random:rsre.test/img-%d:1:%llu:%d", i + 1,
                 (unsigned long long)random_sizes[i], 100 + i);
    }
    char *pyargv[] = {PYTHON,   OCI_IMAGE, imgdir,   specs[0], specs[1], specs[2],
                      specs[3], specs[4],  specs[5], specs[6], NULL};
    static char out[8192];
    assert_int_equal(run_cmd(pyargv, out, sizeof(out)), 0);
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
    assert_int_equal(rsre_grpc_loop_create(&F.loop, &F.gl), 0);
    assert_int_equal(rsre_cri_create(&F.loop, F.gl, F.target, &F.cri), 0);
    F.agent.cri = F.cri;
    F.agent.loop = &F.loop;
    F.agent.cfg.image_min_age_s = 0;
    F.agent.cfg.exited_container_min_age_s = 0;

    /* Pods, the way kubelet creates them. */
    static const char *const sleep_cmd[] = {"/bin/busybox", "sleep", "300"};
    static const char *const true_cmd[] = {"/bin/busybox", "true"};
    run_pod("web", F.web_sandbox);
    run_container(F.web_sandbox, "web", "app", 0, F.img[IMG_BUSYBOX].name, sleep_cmd, 3, 1, F.app);
    run_container(F.web_sandbox, "web", "idle", 0, F.img[IMG_5].name, true_cmd, 2, 0, F.idle);
    run_container(F.web_sandbox, "web", "oneshot", 0, F.img[IMG_BUSYBOX].name, true_cmd, 2, 1,
                  F.oneshot0);
    run_container(F.web_sandbox, "web", "oneshot", 1, F.img[IMG_BUSYBOX].name, true_cmd, 2, 1,
                  F.oneshot1);
    run_pod("old", F.old_sandbox);
    run_container(F.old_sandbox, "old", "job", 0, F.img[IMG_BUSYBOX].name, true_cmd, 2, 1, F.job);
    wait_exited(F.oneshot0);
    wait_exited(F.oneshot1);
    wait_exited(F.job);
    Runtime__V1__StopPodSandboxRequest stop = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
    stop.pod_sandbox_id = F.old_sandbox;
    assert_int_equal(call_sync(&m_stop_pod, &stop.base, NULL), 0);
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
    for (size_t i = 0; i < F.agent.nsignals; i++) {
        robot_sre__agent__v1__signal__free_unpacked(F.agent.signals[i], NULL);
    }
    if (F.cri) {
        closed_flag = 0;
        rsre_cri_destroy(F.cri, on_closed, NULL);
        run_until(&closed_flag);
    }
    if (F.gl) {
        closed_flag = 0;
        rsre_grpc_loop_destroy(F.gl, on_closed, NULL);
        run_until(&closed_flag);
        uv_run(&F.loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&F.loop), 0);
    }
    if (getenv("RSRE_TEST_KEEP")) {
        fprintf(stderr, "RSRE_TEST_KEEP: containerd left running in %s (stop with %s stop %s)\n",
                F.dir, SCRIPT, F.ctd);
        return 0;
    }
    stop_containerd();
    nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

#define SKIP_IF_NEEDED()                                                                           \
    do {                                                                                           \
        if (F.skip) {                                                                              \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- helpers over the replies ------------------------------------------------------------- */

static Runtime__V1__ListImagesResponse *list_images(void) {
    ProtobufCMessage *reply = NULL;
    Runtime__V1__ListImagesRequest req = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    assert_int_equal(call_sync(&rsre_cri_methods[RSRE_CRI_LIST_IMAGES], &req.base, &reply), 0);
    return (Runtime__V1__ListImagesResponse *)reply;
}

static const Runtime__V1__Image *find_image(const Runtime__V1__ListImagesResponse *l,
                                            const char *id) {
    for (size_t i = 0; i < l->n_images; i++) {
        if (strcmp(l->images[i]->id, id) == 0) {
            return l->images[i];
        }
    }
    return NULL;
}

static uint64_t sum_sizes(int from, int to) {
    uint64_t s = 0;
    for (int i = from; i <= to; i++) {
        s += F.img[i].size;
    }
    return s;
}

struct snap_wait {
    int done;
    int rc;
    struct rsre_cri_snapshot *snap;
};

static void on_snap(void *arg, int rc, struct rsre_cri_snapshot *snap) {
    struct snap_wait *w = arg;
    w->done = 1;
    w->rc = rc;
    w->snap = snap;
}

static struct rsre_cri_snapshot *snapshot(unsigned what) {
    struct snap_wait w = {0};
    assert_int_equal(rsre_cri_snapshot(F.cri, what, on_snap, &w), 0);
    run_until(&w.done);
    assert_int_equal(w.rc, 0);
    return w.snap;
}

static int has_removed(const struct rsre_action_ctx *ctx, const char *id) {
    for (size_t i = 0; i < ctx->nremoved; i++) {
        if (strcmp(ctx->removed[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

static void free_removed(struct rsre_action_ctx *ctx) {
    for (size_t i = 0; i < ctx->nremoved; i++) {
        free(ctx->removed[i]);
    }
    free(ctx->removed);
    ctx->removed = NULL;
    ctx->nremoved = 0;
}

/* Runs an action through its descriptor as the agent would. */
static void run_action(const struct rsre_action_desc *d, struct action_run *r, int dry) {
    memset(r, 0, sizeof(*r));
    robot_sre__agent__v1__action_request__init(&r->req);
    robot_sre__agent__v1__action_result__init(&r->ctx.result);
    r->req.request_id = "req-1";
    r->req.action_id = (char *)d->id;
    r->req.dry_run = dry;
    r->req.deadline_unix_ms = wall_ms() + 60000;
    r->ctx.agent = &F.agent;
    r->ctx.req = &r->req;
    d->run(&r->ctx);
    run_until(&r->done);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Version and the raw listings: what containerd reports for our images and pods. */
static void test_listing(void **state) {
    (void)state;
    SKIP_IF_NEEDED();
    ProtobufCMessage *reply = NULL;
    Runtime__V1__VersionRequest vreq = RUNTIME__V1__VERSION_REQUEST__INIT;
    assert_int_equal(call_sync(&rsre_cri_methods[RSRE_CRI_VERSION], &vreq.base, &reply), 0);
    Runtime__V1__VersionResponse *v = (Runtime__V1__VersionResponse *)reply;
    assert_string_equal(v->runtime_name, "containerd");
    assert_string_equal(v->runtime_api_version, "v1");
    rsre_cri_free(reply);

    Runtime__V1__ListImagesResponse *l = list_images();
    assert_int_equal(l->n_images, NIMAGES);
    for (int i = 0; i < NIMAGES; i++) {
        const Runtime__V1__Image *im = find_image(l, F.img[i].id);
        if (im == NULL) {
            fail_msg("image %s (%s) not listed", F.img[i].name, F.img[i].id);
        }
        /* containerd's size is the packed size of manifest + config + layers. */
        assert_int_equal(im->size, F.img[i].size);
        int tagged = 0;
        for (size_t t = 0; t < im->n_repo_tags; t++) {
            tagged |= strcmp(im->repo_tags[t], F.img[i].name) == 0;
        }
        assert_true(tagged);
    }
    rsre_cri_free(&l->base);

    struct rsre_cri_snapshot *s = snapshot(RSRE_CRI_SNAP_CONTAINERS | RSRE_CRI_SNAP_SANDBOXES |
                                           RSRE_CRI_SNAP_IMAGEFS | RSRE_CRI_SNAP_STATUS);
    assert_int_equal(s->containers->n_containers, 5);
    assert_int_equal(s->sandboxes->n_items, 2);
    assert_non_null(s->imagefs);
    assert_true(s->imagefs->n_image_filesystems >= 1);
    assert_non_null(strstr(s->imagefs->image_filesystems[0]->fs_id->mountpoint, F.ctd));
    /* containerd 1.6 does not mark the sandbox image pinned; Status names it. */
    assert_non_null(s->sandbox_image);
    assert_string_equal(s->sandbox_image, F.img[IMG_PAUSE].name);
    for (size_t i = 0; i < s->containers->n_containers; i++) {
        const Runtime__V1__Container *c = s->containers->containers[i];
        if (strcmp(c->id, F.app) == 0) {
            assert_int_equal(c->state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING);
            assert_string_equal(c->image_ref, F.img[IMG_BUSYBOX].id);
        } else if (strcmp(c->id, F.idle) == 0) {
            assert_int_equal(c->state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED);
            assert_string_equal(c->image_ref, F.img[IMG_5].id);
        } else {
            assert_int_equal(c->state, RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED);
        }
    }
    for (size_t i = 0; i < s->sandboxes->n_items; i++) {
        const Runtime__V1__PodSandbox *sb = s->sandboxes->items[i];
        assert_int_equal(sb->state, strcmp(sb->id, F.old_sandbox) == 0
                                        ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY
                                        : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY);
    }
    rsre_cri_snapshot_free(s);

    /* A container started with ctr (not through CRI) runs, but CRI, like kubelet, does not see
     * it: images only such containers use count as unused (see docs/agent-cri.md). */
    char *run[] = {"/bin/bash", SCRIPT,         "run",   F.ctd, F.img[IMG_BUSYBOX].name,
                   "outside",   "/bin/busybox", "sleep", "300", NULL};
    assert_int_equal(run_cmd(run, NULL, 0), 0);
    s = snapshot(RSRE_CRI_SNAP_CONTAINERS);
    assert_int_equal(s->containers->n_containers, 5);
    rsre_cri_snapshot_free(s);
}

/* The GC projection, computed from live replies with chosen parameters. */
static void test_gc_state(void **state) {
    (void)state;
    SKIP_IF_NEEDED();
    struct rsre_cri_snapshot *s = snapshot(RSRE_CRI_SNAP_IMAGES | RSRE_CRI_SNAP_CONTAINERS |
                                           RSRE_CRI_SNAP_IMAGEFS | RSRE_CRI_SNAP_STATUS);
    const uint64_t all = sum_sizes(0, NIMAGES - 1);
    const uint64_t unused = F.img[IMG_PAUSE].size + sum_sizes(IMG_1, IMG_1 + 3);
    const uint64_t reclaimable = sum_sizes(IMG_1, IMG_1 + 3);
    RobotSre__Agent__V1__ImageGcState gc;
    RobotSre__Agent__V1__ImageFsInfo fs;

    /* Capacity 100 MiB, low 80%: target 80 MiB. Used = target + reclaimable - 1: GC can. */
    struct rsre_cri_gc_params p = {.min_age_s = 0, .now_ms = s->taken_unix_ms};
    p.fs.capacity_bytes = 100 * MIB;
    p.fs.gc_low_percent = 80;
    p.fs.gc_high_percent = 85;
    p.fs.used_bytes = 80 * MIB + reclaimable - 1;
    assert_int_equal(rsre_cri_compute_gc_state(s, rsre_cri_seen_of(F.cri), &p, &gc, &fs), 0);
    assert_int_equal(gc.image_count, NIMAGES);
    assert_int_equal(gc.total_bytes, all);
    assert_int_equal(gc.unused_count, 5);
    assert_int_equal(gc.unused_bytes, unused);
    assert_int_equal(gc.pinned_count, 1);
    assert_int_equal(gc.pinned_bytes, F.img[IMG_PAUSE].size);
    assert_int_equal(gc.reclaimable_bytes, reclaimable);
    assert_int_equal(gc.bytes_to_gc_low, reclaimable - 1);
    assert_true(gc.gc_can_recover);
    assert_ptr_equal(gc.imagefs, &fs);
    assert_int_equal(fs.capacity_bytes, 100 * MIB);
    assert_non_null(strstr(fs.mountpoint, F.ctd));

    /* One byte more than GC can free: "GC cannot save this node". */
    p.fs.used_bytes = 80 * MIB + reclaimable + 1;
    assert_int_equal(rsre_cri_compute_gc_state(s, rsre_cri_seen_of(F.cri), &p, &gc, &fs), 0);
    assert_int_equal(gc.bytes_to_gc_low, reclaimable + 1);
    assert_false(gc.gc_can_recover);

    /* Below the low threshold: nothing to free. */
    p.fs.used_bytes = 10 * MIB;
    assert_int_equal(rsre_cri_compute_gc_state(s, rsre_cri_seen_of(F.cri), &p, &gc, &fs), 0);
    assert_int_equal(gc.bytes_to_gc_low, 0);
    assert_true(gc.gc_can_recover);

    /* Used unknown: the CRI's own used_bytes is the usage. containerd refreshes it every few
     * seconds (0 right after import), so the test sets it in the reply: 60 MiB used of 100 MiB
     * at low 50% leaves 10 MiB to free. */
    Runtime__V1__FilesystemUsage *fu = s->imagefs->image_filesystems[0];
    Runtime__V1__UInt64Value used_v = RUNTIME__V1__UINT64_VALUE__INIT;
    Runtime__V1__UInt64Value *saved = fu->used_bytes;
    used_v.value = 60 * MIB;
    fu->used_bytes = &used_v;
    p.fs.used_bytes = 0;
    p.fs.gc_low_percent = 50;
    assert_int_equal(rsre_cri_compute_gc_state(s, rsre_cri_seen_of(F.cri), &p, &gc, &fs), 0);
    assert_int_equal(fs.used_bytes, 60 * MIB);
    assert_int_equal(gc.bytes_to_gc_low, 10 * MIB);
    fu->used_bytes = saved;

    /* Minimum age: images were first seen moments ago, so nothing is old enough yet... */
    p.min_age_s = 120;
    p.fs.used_bytes = 80 * MIB + 1;
    p.fs.capacity_bytes = 100 * MIB;
    p.fs.gc_low_percent = 80;
    assert_int_equal(rsre_cri_compute_gc_state(s, rsre_cri_seen_of(F.cri), &p, &gc, &fs), 0);
    assert_int_equal(gc.reclaimable_bytes, 0);
    assert_int_equal(gc.unused_bytes, unused);
    assert_false(gc.gc_can_recover);
    assert_int_equal(gc.min_image_age_sec, 120);
    /* ...and all of them are 121 s later. */
    p.now_ms = s->taken_unix_ms + 121000;
    assert_int_equal(rsre_cri_compute_gc_state(s, rsre_cri_seen_of(F.cri), &p, &gc, &fs), 0);
    assert_int_equal(gc.reclaimable_bytes, reclaimable);
    assert_true(gc.gc_can_recover);

    /* The in-use images are never unused, whatever the age. */
    uint8_t cls[NIMAGES];
    assert_int_equal(s->images->n_images, NIMAGES);
    assert_int_equal(rsre_cri_classify_images(s->images, s->containers, s->sandbox_image, NULL, 0,
                                              p.now_ms, cls),
                     0);
    for (size_t i = 0; i < NIMAGES; i++) {
        const char *id = s->images->images[i]->id;
        if (!strcmp(id, F.img[IMG_BUSYBOX].id) || !strcmp(id, F.img[IMG_5].id)) {
            assert_int_equal(cls[i], RSRE_CRI_IMAGE_IN_USE);
        } else if (!strcmp(id, F.img[IMG_PAUSE].id)) {
            assert_int_equal(cls[i], RSRE_CRI_IMAGE_PINNED);
        } else {
            assert_int_equal(cls[i], RSRE_CRI_IMAGE_RECLAIMABLE);
        }
    }
    rsre_cri_snapshot_free(s);
}

/* The collectors through their descriptors, emitting validated signals. */
static void test_collectors(void **state) {
    (void)state;
    SKIP_IF_NEEDED();
    const uint64_t reclaimable = sum_sizes(IMG_1, IMG_1 + 3);
    struct rsre_cri_imagefs fsh = {.capacity_bytes = 100 * MIB,
                                   .used_bytes = 80 * MIB + reclaimable / 2};
    rsre_cri_set_imagefs(F.cri, &fsh);
    struct rsre_cri_imagefs got;
    rsre_cri_get_imagefs(F.cri, &got);
    assert_true(got.gc_high_percent == 85.0 && got.gc_low_percent == 80.0); /* kubelet defaults */

    void *st = NULL;
    assert_int_equal(rsre_collector_image_gc.init(&F.agent, &st), 0);
    struct rsre_collect_run run = {0};
    size_t before = F.agent.nsignals;
    rsre_collector_image_gc.collect(&F.agent, st, &run);
    run_until(&run.done);
    assert_int_equal(run.rc, 0);
    assert_int_equal(F.agent.nsignals, before + 1);
    const RobotSre__Agent__V1__Signal *sig = F.agent.signals[before];
    assert_int_equal(sig->kind_case, ROBOT_SRE__AGENT__V1__SIGNAL__KIND_IMAGE_GC);
    const RobotSre__Agent__V1__ImageGcState *gc = sig->image_gc;
    assert_int_equal(gc->image_count, NIMAGES);
    assert_int_equal(gc->total_bytes, sum_sizes(0, NIMAGES - 1));
    assert_int_equal(gc->unused_count, 5);
    assert_int_equal(gc->pinned_count, 1);
    assert_int_equal(gc->reclaimable_bytes, reclaimable);
    assert_int_equal(gc->bytes_to_gc_low, reclaimable / 2);
    assert_true(gc->gc_can_recover);
    assert_int_equal(gc->imagefs->capacity_bytes, 100 * MIB);
    rsre_collector_image_gc.destroy(st);

    /* Containers: the first run is the baseline, the second reports the churn in between. */
    assert_int_equal(rsre_collector_containers.init(&F.agent, &st), 0);
    memset(&run, 0, sizeof(run));
    before = F.agent.nsignals;
    rsre_collector_containers.collect(&F.agent, st, &run);
    run_until(&run.done);
    assert_int_equal(run.rc, 0);
    assert_int_equal(F.agent.nsignals, before);
    static const char *const true_cmd[] = {"/bin/busybox", "true"};
    char extra[80];
    run_container(F.web_sandbox, "web", "oneshot", 2, F.img[IMG_BUSYBOX].name, true_cmd, 2, 1,
                  extra);
    wait_exited(extra);
    memset(&run, 0, sizeof(run));
    rsre_collector_containers.collect(&F.agent, st, &run);
    run_until(&run.done);
    assert_int_equal(run.rc, 0);
    assert_int_equal(F.agent.nsignals, before + 1);
    sig = F.agent.signals[before];
    assert_int_equal(sig->kind_case, ROBOT_SRE__AGENT__V1__SIGNAL__KIND_POD_CHURN);
    assert_int_equal(sig->pod_churn->containers_created_in_window, 1);
    assert_int_equal(sig->pod_churn->containers_exited_in_window, 1);
    assert_int_equal(sig->pod_churn->exited_containers, 4); /* oneshot 0,1,2 and job */
    assert_int_equal(sig->pod_churn->sandboxes_not_ready, 1);
    assert_true(sig->pod_churn->window_sec >= 1);
    rsre_collector_containers.destroy(st);
    /* The extra attempt is now the newest "oneshot": oneshot#1 becomes removable. */
    snprintf(F.newest, sizeof(F.newest), "%s", extra);
}

/* Prune: dry-run changes nothing and lists exactly the unused images; the real run removes
 * exactly them, by id, and never the in-use or pinned ones. */
static void test_prune(void **state) {
    (void)state;
    SKIP_IF_NEEDED();
    struct action_run r;
    const uint64_t reclaimable = sum_sizes(IMG_1, IMG_1 + 3);

    /* With the default minimum age (kubelet's 2m) the freshly seen images are all kept. */
    F.agent.cfg.image_min_age_s = 120;
    run_action(&rsre_action_prune_unused_images, &r, 1);
    assert_int_equal(r.ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_DRY_RUN);
    assert_int_equal(r.ctx.result.objects_removed, 0);
    free_removed(&r.ctx);
    F.agent.cfg.image_min_age_s = 0;

    run_action(&rsre_action_prune_unused_images, &r, 1);
    assert_int_equal(r.ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_DRY_RUN);
    assert_int_equal(r.ctx.result.objects_removed, 4);
    assert_int_equal(r.ctx.result.bytes_freed, reclaimable);
    assert_int_equal(r.ctx.nremoved, 4);
    for (int i = IMG_1; i < IMG_1 + 4; i++) {
        assert_true(has_removed(&r.ctx, F.img[i].id));
    }
    free_removed(&r.ctx);
    Runtime__V1__ListImagesResponse *l = list_images();
    assert_int_equal(l->n_images, NIMAGES); /* nothing removed */
    rsre_cri_free(&l->base);

    run_action(&rsre_action_prune_unused_images, &r, 0);
    if (r.ctx.result.status != ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_OK) {
        fail_msg("prune failed: %s", r.ctx.message);
    }
    assert_int_equal(r.ctx.result.objects_removed, 4);
    assert_int_equal(r.ctx.result.bytes_freed, reclaimable);
    for (int i = IMG_1; i < IMG_1 + 4; i++) {
        assert_true(has_removed(&r.ctx, F.img[i].id));
    }
    free_removed(&r.ctx);

    l = list_images();
    assert_int_equal(l->n_images, 3);
    assert_non_null(find_image(l, F.img[IMG_PAUSE].id));
    assert_non_null(find_image(l, F.img[IMG_BUSYBOX].id));
    assert_non_null(find_image(l, F.img[IMG_5].id));
    rsre_cri_free(&l->base);

    /* containerd itself (not only its CRI view) no longer has them under any name. */
    char *argv[] = {"/bin/bash", SCRIPT, "images", F.ctd, NULL};
    static char out[8192];
    assert_int_equal(run_cmd(argv, out, sizeof(out)), 0);
    for (int i = IMG_1; i < IMG_1 + 4; i++) {
        assert_null(strstr(out, F.img[i].name));
        assert_null(strstr(out, F.img[i].id));
    }
    assert_non_null(strstr(out, F.img[IMG_BUSYBOX].name));
    assert_non_null(strstr(out, F.img[IMG_PAUSE].name));
    assert_non_null(strstr(out, F.img[IMG_5].name));

    /* Nothing left to prune; the running container is untouched. */
    run_action(&rsre_action_prune_unused_images, &r, 0);
    assert_int_equal(r.ctx.result.status, ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_OK);
    assert_int_equal(r.ctx.result.objects_removed, 0);
    free_removed(&r.ctx);
    assert_int_equal(container_state(F.app), RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING);
}

/* Exited containers: only EXITED ones go, never the running or created one, and the newest
 * attempt of a live pod's container stays. */
static void test_remove_exited(void **state) {
    (void)state;
    SKIP_IF_NEEDED();
    const char *newest = F.newest[0] ? F.newest : F.oneshot1;
    struct action_run r;

    F.agent.cfg.exited_container_min_age_s = 3600;
    run_action(&rsre_action_remove_exited_containers, &r, 1);
    assert_int_equal(r.ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_DRY_RUN);
    assert_int_equal(r.ctx.result.objects_removed, 0); /* all finished seconds ago */
    free_removed(&r.ctx);

    F.agent.cfg.exited_container_min_age_s = 0;
    run_action(&rsre_action_remove_exited_containers, &r, 1);
    assert_int_equal(r.ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_DRY_RUN);
    int expect = strcmp(newest, F.oneshot1) ? 3 : 2; /* oneshot0 (+ oneshot1), job */
    assert_int_equal(r.ctx.result.objects_removed, expect);
    assert_true(has_removed(&r.ctx, F.oneshot0));
    assert_true(has_removed(&r.ctx, F.job));
    assert_false(has_removed(&r.ctx, newest));
    free_removed(&r.ctx);
    assert_int_equal(container_state(F.oneshot0), RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED);

    run_action(&rsre_action_remove_exited_containers, &r, 0);
    if (r.ctx.result.status != ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_OK) {
        fail_msg("remove_exited_containers failed: %s", r.ctx.message);
    }
    assert_int_equal(r.ctx.result.objects_removed, expect);
    free_removed(&r.ctx);
    assert_int_equal(container_state(F.oneshot0), GONE);
    assert_int_equal(container_state(F.job), GONE);
    assert_int_equal(container_state(newest), RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED);
    assert_int_equal(container_state(F.app), RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING);
    assert_int_equal(container_state(F.idle), RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED);
}

/* Errors are mapped and nothing crashes. */
static void test_errors(void **state) {
    (void)state;
    SKIP_IF_NEEDED();
    /* RemoveImage is idempotent in CRI: an unknown id is success, not an error. */
    struct sync_call s = {0};
    assert_int_equal(rsre_cri_remove_image(F.cri,
                                           "sha256:00000000000000000000000000000000000000"
                                           "00000000000000000000000000",
                                           on_sync, &s),
                     0);
    run_until(&s.done);
    assert_int_equal(s.rc, 0);
    rsre_cri_free(s.reply);
    /* ImageStatus of an unknown image: success without an image. */
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    spec.image = "rsre.test/never-imported:1";
    Runtime__V1__ImageStatusRequest isr = RUNTIME__V1__IMAGE_STATUS_REQUEST__INIT;
    isr.image = &spec;
    ProtobufCMessage *reply = NULL;
    assert_int_equal(call_sync(&rsre_cri_methods[RSRE_CRI_IMAGE_STATUS], &isr.base, &reply), 0);
    assert_null(((Runtime__V1__ImageStatusResponse *)reply)->image);
    rsre_cri_free(reply);
    /* ContainerStatus of an unknown id: NOT_FOUND becomes RSRE_ENOTFOUND. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(rsre_cri_container_status(F.cri, "no-such-container", on_sync, &s), 0);
    run_until(&s.done);
    assert_int_equal(s.rc, RSRE_ENOTFOUND);
    assert_null(s.reply);
    /* RemoveContainer of an unknown id is idempotent too. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(rsre_cri_remove_container(F.cri, "no-such-container", on_sync, &s), 0);
    run_until(&s.done);
    assert_int_equal(s.rc, 0);
    rsre_cri_free(s.reply);
    /* A method the runtime does not have: UNIMPLEMENTED. */
    static const struct rsre_cri_method bogus = {"Bogus",
                                                 "/runtime.v1.ImageService/Bogus",
                                                 &runtime__v1__list_images_request__descriptor,
                                                 &runtime__v1__list_images_response__descriptor,
                                                 1 << 20,
                                                 5000};
    Runtime__V1__ListImagesRequest li = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    assert_int_equal(call_sync(&bogus, &li.base, NULL), -ENOSYS);
    /* A reply larger than the method allows: RSRE_ELIMIT, no reply. */
    static const struct rsre_cri_method tiny = {"ListImages",
                                                "/runtime.v1.ImageService/ListImages",
                                                &runtime__v1__list_images_request__descriptor,
                                                &runtime__v1__list_images_response__descriptor,
                                                16,
                                                5000};
    assert_int_equal(call_sync(&tiny, &li.base, NULL), RSRE_ELIMIT);
    /* Wrong request type: refused at once, no callback. */
    Runtime__V1__VersionRequest vr = RUNTIME__V1__VERSION_REQUEST__INIT;
    assert_int_equal(
        rsre_cri_call(F.cri, &rsre_cri_methods[RSRE_CRI_LIST_IMAGES], &vr.base, 0, on_sync, &s),
        -EINVAL);
    assert_int_equal(rsre_cri_pending(F.cri), 0);
    /* A deadline that cannot be met. */
    static const struct rsre_cri_method hurry = {"ListImages",
                                                 "/runtime.v1.ImageService/ListImages",
                                                 &runtime__v1__list_images_request__descriptor,
                                                 &runtime__v1__list_images_response__descriptor,
                                                 1 << 20,
                                                 0};
    memset(&s, 0, sizeof(s));
    assert_int_equal(rsre_cri_call(F.cri, &hurry, &li.base, 0, on_sync, &s), 0);
    run_until(&s.done);
    assert_true(s.rc == -ETIMEDOUT || s.rc == 0);
    rsre_cri_free(s.reply);
}

/* A runtime socket that does not exist: calls, collectors and actions fail cleanly. */
static void test_socket_absent(void **state) {
    (void)state;
    SKIP_IF_NEEDED();
    char path[160];
    snprintf(path, sizeof(path), "%s/absent.sock", F.dir);
    struct rsre_cri *cri = NULL;
    assert_int_equal(rsre_cri_create(&F.loop, F.gl, path, &cri), 0);
    ProtobufCMessage *reply = NULL;
    Runtime__V1__ListImagesRequest li = RUNTIME__V1__LIST_IMAGES_REQUEST__INIT;
    assert_int_equal(call_sync_on(cri, &rsre_cri_methods[RSRE_CRI_LIST_IMAGES], &li.base, &reply),
                     -ECONNREFUSED);
    assert_null(reply);

    struct rsre_agent *a = calloc(1, sizeof(*a));
    assert_non_null(a);
    a->cri = cri;
    a->loop = &F.loop;
    void *st = NULL;
    assert_int_equal(rsre_collector_image_gc.init(a, &st), 0);
    struct rsre_collect_run run = {0};
    rsre_collector_image_gc.collect(a, st, &run);
    run_until(&run.done);
    assert_int_equal(run.rc, -ECONNREFUSED);
    assert_int_equal(a->nsignals, 0);
    rsre_collector_image_gc.destroy(st);

    struct action_run r;
    memset(&r, 0, sizeof(r));
    robot_sre__agent__v1__action_request__init(&r.req);
    r.req.dry_run = 0;
    r.ctx.agent = a;
    r.ctx.req = &r.req;
    rsre_action_prune_unused_images.run(&r.ctx);
    run_until(&r.done);
    assert_int_equal(r.ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_FAILED);
    assert_int_equal(r.ctx.result.objects_removed, 0);

    /* No CRI configured at all: collector disabled, action refused with a message. */
    a->cri = NULL;
    assert_int_equal(rsre_collector_image_gc.init(a, &st), -ENOTCONN);
    memset(&r, 0, sizeof(r));
    r.ctx.agent = a;
    r.ctx.req = &r.req;
    rsre_action_remove_exited_containers.run(&r.ctx);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.ctx.result.status,
                     ROBOT_SRE__AGENT__V1__ACTION_STATUS__ACTION_STATUS_FAILED);

    /* Destroy with calls in flight: each callback runs once (cancelled), then closed_cb. */
    struct sync_call s1 = {0}, s2 = {0};
    assert_int_equal(rsre_cri_list_images(cri, on_sync, &s1), 0);
    assert_int_equal(rsre_cri_list_containers(cri, on_sync, &s2), 0);
    assert_int_equal(rsre_cri_pending(cri), 2);
    closed_flag = 0;
    rsre_cri_destroy(cri, on_closed, NULL);
    run_until(&closed_flag);
    assert_int_equal(s1.done, 1);
    assert_int_equal(s2.done, 1);
    assert_true(s1.rc == -ECANCELED || s1.rc == -ECONNREFUSED);
    assert_true(s2.rc == -ECANCELED || s2.rc == -ECONNREFUSED);
    free(a);

    /* Destroy of the live client with calls in flight, then a fresh one for later tests. */
    memset(&s1, 0, sizeof(s1));
    assert_int_equal(rsre_cri_list_images(F.cri, on_sync, &s1), 0);
    closed_flag = 0;
    rsre_cri_destroy(F.cri, on_closed, NULL);
    assert_int_equal(rsre_cri_list_images(F.cri, on_sync, &s2), -ESHUTDOWN);
    run_until(&closed_flag);
    assert_int_equal(s1.done, 1);
    assert_true(s1.rc == -ECANCELED || s1.rc == 0);
    rsre_cri_free(s1.reply);
    assert_int_equal(rsre_cri_create(&F.loop, F.gl, F.target, &F.cri), 0);
    F.agent.cri = F.cri;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listing),       cmocka_unit_test(test_gc_state),
        cmocka_unit_test(test_collectors),    cmocka_unit_test(test_prune),
        cmocka_unit_test(test_remove_exited), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_socket_absent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
