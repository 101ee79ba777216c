/*
 * Shared fixture for tests/integration/test_probes_*.c: temp dirs, free ports, real servers
 * started as child processes (optionally as an unprivileged user), a probe scheduler on a
 * libuv loop with a test clock, and an incident engine on a temp LMDB store fed with every
 * probe status through rsre_incident_engine_observe (the wiring wire_probes.c does in the
 * daemon). Header-only: each test file includes it once.
 */
#ifndef RSRE_TEST_PROBE_ENV_H
#define RSRE_TEST_PROBE_ENV_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/error.h"
#include "incidents/engine.h"
#include "probes/probes.h"
#include "store/store.h"

static int pe_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void pe_rmrf(const char *dir) {
    if (dir && dir[0]) {
        nftw(dir, pe_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

__attribute__((unused)) static int pe_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int pe_port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Waits until 127.0.0.1:port accepts (or the child died); 0 or -1. */
static int pe_wait_port(pid_t pid, int port, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (pe_port_open(port)) {
            return 0;
        }
        int st;
        if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid) {
            return -1;
        }
        usleep(50000);
    }
    return -1;
}

/* Starts argv[0] (absolute path) with output to `log`; as user `as_user` when not NULL. */
static pid_t pe_spawn(char *const argv[], const char *log, const char *as_user) {
    struct passwd *pw = as_user ? getpwnam(as_user) : NULL;
    if (as_user && !pw) {
        return -1;
    }
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    if (pw && (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)) {
        _exit(126);
    }
    execv(argv[0], argv);
    _exit(127);
}

/* Sends `sig` to our child `pid` (unless it already exited), then SIGKILL after 10 s; reaps
 * it. Callers set their pid to 0 afterwards. */
static void pe_stop(pid_t pid, int sig) {
    if (pid <= 0) {
        return;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) != 0) {
        return; /* already reaped (or not our child): never signal a pid we do not own */
    }
    kill(pid, sig);
    for (int i = 0; i < 200; i++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD)) {
            return;
        }
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Stops `pid` with SIGSTOP and waits until every thread of it is stopped (kill() returns
 * before a busy multi-threaded server has really stopped). */
__attribute__((unused)) static void pe_sigstop(pid_t pid) {
    kill(pid, SIGSTOP);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    for (int tries = 0; tries < 400; tries++) {
        DIR *d = opendir(dir);
        if (!d) {
            return;
        }
        int running = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') {
                continue;
            }
            char path[400], buf[512];
            snprintf(path, sizeof path, "%s/%s/stat", dir, de->d_name);
            FILE *f = fopen(path, "r");
            if (!f) {
                continue;
            }
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            const char *rp = strrchr(buf, ')'); /* "pid (comm) S ..." */
            if (rp && rp[1] == ' ' && rp[2] != 'T' && rp[2] != 't') {
                running = 1;
            }
        }
        closedir(d);
        if (!running) {
            return;
        }
        usleep(5000);
    }
}

__attribute__((unused)) static void pe_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        abort();
    }
    fputs(text, f);
    fclose(f);
}

/* ---- probes + engine ------------------------------------------------------------------ */

struct pe_seen {
    int ok, failing, changed, consecutive, nvals;
    char code[40], error[RSRE_PROBE_ERR_LEN];
    double days;
    int has_days;
};

struct pe {
    char dir[128];
    uv_loop_t loop;
    struct rsre_probes *probes;
    rsre_store *store;
    struct rsre_incident_engine *eng;
    int64_t now;
    int got;
    struct pe_seen last;
    int feed_rc;
};

/* The store dir of the last pe_open, for test teardowns after a failed assertion. */
static char pe_last_store[128];

/* The server and temp dir a probe test owns (registered once with pe_own() before the test
 * runs): pe_finish() at the end of the test, and pe_teardown (the cmocka group teardown)
 * whatever happened, stop the server with its signal, reap it, and remove the dir and the
 * last store. */
static struct {
    pid_t *pid;
    int sig;
    const char *dir;
} pe_owned;

__attribute__((unused)) static void pe_own(pid_t *pid, int sig, const char *dir) {
    pe_owned.pid = pid;
    pe_owned.sig = sig;
    pe_owned.dir = dir;
}

__attribute__((unused)) static void pe_finish(void) {
    if (pe_owned.pid) {
        pe_stop(*pe_owned.pid, pe_owned.sig);
        *pe_owned.pid = 0;
    }
    pe_rmrf(pe_owned.dir);
    pe_rmrf(pe_last_store);
}

__attribute__((unused)) static int pe_teardown(void **state) {
    (void)state;
    pe_finish();
    return 0;
}

static int64_t pe_clock(void *arg) {
    return ((struct pe *)arg)->now;
}

/* Feeds one status to the engine, one transaction per observation (what wire_probes.c does). */
static int pe_feed(struct pe *e, const struct rsre_probe_status *st) {
    struct rsre_probe_obs o[RSRE_PROBE_OBS_MAX];
    int n = rsre_probe_observations(st, o);
    for (int k = 0; k < n; k++) {
        struct rsre_observation_value v[RSRE_PROBE_OBS_VALUES];
        for (size_t i = 0; i < o[k].nvalues; i++) {
            v[i].signal = o[k].values[i].signal;
            v[i].value = o[k].values[i].value;
        }
        struct rsre_observation obs = {o[k].scope, o[k].source, o[k].detail, v, o[k].nvalues, 0};
        rsre_store_txn *txn;
        int rc = rsre_store_txn_begin(e->store, 0, &txn);
        if (rc) {
            return rc;
        }
        rc = rsre_incident_engine_observe(e->eng, txn, &obs, st->at_ms);
        if (rc == 0) {
            rc = rsre_store_txn_commit(txn);
        } else {
            rsre_store_txn_abort(txn);
        }
        if (rc == 0) {
            rsre_incident_engine_committed(e->eng);
        } else {
            rsre_incident_engine_aborted(e->eng);
            return rc;
        }
    }
    return n < 0 ? n : 0;
}

static void pe_on_status(void *arg, const struct rsre_probe_status *st) {
    struct pe *e = arg;
    e->got++;
    struct pe_seen *s = &e->last;
    memset(s, 0, sizeof *s);
    s->ok = st->result->ok;
    s->failing = st->failing;
    s->changed = st->changed;
    s->consecutive = st->consecutive_failures;
    snprintf(s->code, sizeof s->code, "%s", st->result->code);
    snprintf(s->error, sizeof s->error, "%s", st->result->error);
    s->has_days = st->result->has_days;
    s->days = st->result->days_to_expiry;
    if (e->eng) {
        e->feed_rc = pe_feed(e, st);
    }
}

/* Creates the loop, the store, the engine (demo environment) and the probes of `yaml`. */
static int pe_open(struct pe *e, const char *yaml, const char *base_dir) {
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/rsre-probes-store-XXXXXX");
    if (!mkdtemp(e->dir) || uv_loop_init(&e->loop) != 0) {
        return -1;
    }
    memcpy(pe_last_store, e->dir, sizeof pe_last_store);
    e->now = 1700000000000LL;
    int rc = rsre_store_open(e->dir, NULL, &e->store);
    if (rc) {
        return rc;
    }
    struct rsre_incident_engine_config cfg = {0};
    cfg.env = RSRE_ENV_DEMO;
    cfg.cluster = "test-cluster";
    if ((rc = rsre_incident_engine_create(e->store, &cfg, NULL, &e->eng))) {
        return rc;
    }
    struct rsre_probe_set *set;
    struct rsre_yerr yerr;
    if ((rc = rsre_probe_set_load(yaml, strlen(yaml), base_dir, &set, &yerr))) {
        fprintf(stderr, "probes yaml %d:%d: %s\n", yerr.line, yerr.col, yerr.msg);
        return rc;
    }
    return rsre_probes_create(&e->loop, set, pe_clock, e, pe_on_status, e, &e->probes);
}

/* Runs probe `name` once at the test clock's now (advanced by advance_ms first). */
static const struct pe_seen *pe_run(struct pe *e, const char *name, int64_t advance_ms) {
    e->now += advance_ms;
    int before = e->got;
    if (rsre_probes_run_now(e->probes, name) != 0) {
        return NULL;
    }
    while (e->got == before) {
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    if (e->feed_rc != 0) {
        fail_msg("engine refused the observation of %s: %s", name, rsre_strerror(e->feed_rc));
    }
    return &e->last;
}

/* The observation tick at the test clock's now. */
static int pe_tick(struct pe *e, int64_t advance_ms) {
    e->now += advance_ms;
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(e->store, 0, &txn);
    if (rc) {
        return rc;
    }
    rc = rsre_incident_engine_tick(e->eng, txn, e->now);
    if (rc == 0) {
        rc = rsre_store_txn_commit(txn);
    } else {
        rsre_store_txn_abort(txn);
    }
    if (rc == 0) {
        rsre_incident_engine_committed(e->eng);
    } else {
        rsre_incident_engine_aborted(e->eng);
    }
    return rc;
}

struct pe_find {
    const char *fp;
    rsre_store_incident *found;
};

static int pe_find_cb(const rsre_store_incident *rec, void *ud) {
    struct pe_find *f = ud;
    if (strcmp(rec->fingerprint, f->fp) != 0 ||
        (f->found && rec->opened_at_ms < f->found->opened_at_ms)) {
        return 0;
    }
    size_t len = robot_sre__store__incident__get_packed_size(rec);
    uint8_t *buf = malloc(len ? len : 1);
    robot_sre__store__incident__pack(rec, buf);
    if (f->found) {
        rsre_store_incident_free(f->found);
    }
    f->found = robot_sre__store__incident__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

/* The latest incident with fingerprint "<class>/<scope>", or NULL; caller frees with
 * rsre_store_incident_free. */
static rsre_store_incident *pe_incident(struct pe *e, const char *cls, const char *scope) {
    char fp[256];
    snprintf(fp, sizeof fp, "%s/%s", cls, scope);
    struct pe_find f = {fp, NULL};
    rsre_store_txn *txn;
    if (rsre_store_txn_begin(e->store, 1, &txn) != 0) {
        return NULL;
    }
    rsre_store_incident_foreach(txn, pe_find_cb, &f);
    rsre_store_txn_abort(txn);
    return f.found;
}

static void pe_closed(void *arg) {
    *(int *)arg = 1;
}

static void pe_close(struct pe *e) {
    int done = 0;
    if (e->probes) {
        rsre_probes_close(e->probes, pe_closed, &done);
        while (!done) {
            uv_run(&e->loop, UV_RUN_ONCE);
        }
    }
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    rsre_incident_engine_destroy(e->eng);
    rsre_store_close(e->store);
    pe_rmrf(e->dir);
}

#endif
