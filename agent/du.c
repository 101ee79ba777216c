#include "agent/du.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Where consumers live: a base directory from the configuration, a fixed sub-path, and the
 * path pattern (one component per level, "*" = any directory) leading to each consumer. */
enum base { BASE_POD_LOGS, BASE_KUBELET, BASE_RUNTIME, NBASES };

static const struct root_spec {
    enum rsre_du_kind kind;
    enum base base;
    const char *sub;
    const char *pattern[4];
    size_t npattern;
} root_specs[] = {
    {RSRE_DU_POD_LOGS, BASE_POD_LOGS, "", {"*"}, 1},
    {RSRE_DU_EMPTY_DIR, BASE_KUBELET, "pods", {"*", "volumes", "kubernetes.io~empty-dir", "*"}, 4},
    {RSRE_DU_CONTENT_STORE, BASE_RUNTIME, "io.containerd.content.v1.content", {NULL}, 0},
};

#define NSPECS (sizeof(root_specs) / sizeof(root_specs[0]))

static const char *const kind_names[] = {
    [RSRE_DU_POD_LOGS] = "pod_logs",
    [RSRE_DU_EMPTY_DIR] = "empty_dir",
    [RSRE_DU_CONTENT_STORE] = "content_store",
};

const char *rsre_du_kind_name(enum rsre_du_kind k) {
    return k >= RSRE_DU_POD_LOGS && k <= RSRE_DU_CONTENT_STORE ? kind_names[k] : "unknown";
}

struct item {
    char *path;
    int32_t consumer; /* index into consumers, -1 above the consumer level */
    uint8_t spec;
    uint8_t level;  /* pattern components matched so far */
    uint16_t depth; /* below the root */
    dev_t dev;      /* what fstatat saw when the directory was found: the open is checked */
    ino_t ino;
};

struct consumer {
    enum rsre_du_kind kind;
    char *path;
    uint64_t bytes, files;
};

struct rsre_du {
    char *base[NBASES];
    size_t top_n;
    /* scan in progress */
    int scanning;
    dev_t root_dev[NSPECS];
    struct item *stack;
    size_t nstack, capstack;
    DIR *cur;
    struct item cur_item;
    struct consumer *cons;
    size_t ncons, capcons;
    struct rsre_du_scan_stats scan; /* counters of the scan in progress */
    /* last completed scan */
    struct rsre_du_consumer *results;
    size_t nresults;
    struct rsre_du_scan_stats done;
};

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rsre_du_create(const char *pod_log_dir, const char *kubelet_root, const char *runtime_root,
                   size_t top_n, struct rsre_du **out) {
    *out = NULL;
    if (top_n == 0) {
        return -EINVAL;
    }
    struct rsre_du *du = calloc(1, sizeof(*du));
    if (!du) {
        return -ENOMEM;
    }
    const char *b[NBASES] = {pod_log_dir, kubelet_root, runtime_root};
    for (int i = 0; i < NBASES; i++) {
        if (b[i] && b[i][0] && !(du->base[i] = strdup(b[i]))) {
            rsre_du_destroy(du);
            return -ENOMEM;
        }
    }
    du->top_n = top_n;
    du->results = calloc(top_n, sizeof(*du->results));
    if (!du->results) {
        rsre_du_destroy(du);
        return -ENOMEM;
    }
    *out = du;
    return 0;
}

static void drop_scan(struct rsre_du *du) {
    if (du->cur) {
        closedir(du->cur);
        du->cur = NULL;
        free(du->cur_item.path);
        du->cur_item.path = NULL;
    }
    for (size_t i = 0; i < du->nstack; i++) {
        free(du->stack[i].path);
    }
    du->nstack = 0;
    for (size_t i = 0; i < du->ncons; i++) {
        free(du->cons[i].path);
    }
    du->ncons = 0;
    du->scanning = 0;
}

void rsre_du_destroy(struct rsre_du *du) {
    if (!du) {
        return;
    }
    drop_scan(du);
    free(du->stack);
    free(du->cons);
    free(du->results);
    for (int i = 0; i < NBASES; i++) {
        free(du->base[i]);
    }
    free(du);
}

/* Pushes a directory to visit (path is taken over). Returns 0, or -ENOMEM (path freed); a
 * full queue skips the directory (counted). */
static int push(struct rsre_du *du, struct item it) {
    if (du->nstack >= RSRE_DU_MAX_QUEUE) {
        du->scan.skipped++;
        free(it.path);
        return 0;
    }
    if (du->nstack == du->capstack) {
        size_t cap = du->capstack ? du->capstack * 2 : 64;
        struct item *n = realloc(du->stack, cap * sizeof(*n));
        if (!n) {
            free(it.path);
            return -ENOMEM;
        }
        du->stack = n;
        du->capstack = cap;
    }
    du->stack[du->nstack++] = it;
    return 0;
}

/* Adds a consumer for `path` (copied); returns its index, -1 when the table is full, -ENOMEM
 * as -2. */
static int32_t add_consumer(struct rsre_du *du, enum rsre_du_kind kind, const char *path) {
    if (du->ncons >= RSRE_DU_MAX_CONSUMERS) {
        du->scan.dropped_consumers++;
        return -1;
    }
    if (du->ncons == du->capcons) {
        size_t cap = du->capcons ? du->capcons * 2 : 64;
        struct consumer *n = realloc(du->cons, cap * sizeof(*n));
        if (!n) {
            return -2;
        }
        du->cons = n;
        du->capcons = cap;
    }
    char *p = strdup(path);
    if (!p) {
        return -2;
    }
    du->cons[du->ncons] = (struct consumer){kind, p, 0, 0};
    return (int32_t)du->ncons++;
}

static int start_scan(struct rsre_du *du) {
    memset(&du->scan, 0, sizeof(du->scan));
    du->scanning = 1;
    for (size_t s = 0; s < NSPECS; s++) {
        const struct root_spec *r = &root_specs[s];
        const char *base = du->base[r->base];
        if (!base) {
            continue;
        }
        char path[RSRE_DU_MAX_PATH];
        int n = snprintf(path, sizeof(path), "%s%s%s", base, r->sub[0] ? "/" : "", r->sub);
        struct stat st;
        if (n < 0 || (size_t)n >= sizeof(path) || lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            continue; /* this node has no such root (e.g. another runtime) */
        }
        du->root_dev[s] = st.st_dev;
        int32_t c = -1;
        if (r->npattern == 0) {
            c = add_consumer(du, r->kind, path);
            if (c == -2) {
                return -ENOMEM;
            }
            if (c < 0) {
                continue;
            }
            du->cons[c].bytes += (uint64_t)st.st_blocks * 512u;
        }
        char *copy = strdup(path);
        if (!copy) {
            return -ENOMEM;
        }
        if (push(du, (struct item){copy, c, (uint8_t)s, 0, 0, st.st_dev, st.st_ino})) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int cmp_consumer(const void *a, const void *b) {
    const struct consumer *x = a, *y = b;
    if (x->bytes != y->bytes) {
        return x->bytes < y->bytes ? 1 : -1;
    }
    return strcmp(x->path, y->path);
}

static void finish_scan(struct rsre_du *du) {
    if (du->ncons > 1) {
        qsort(du->cons, du->ncons, sizeof(*du->cons), cmp_consumer);
    }
    du->nresults = du->ncons < du->top_n ? du->ncons : du->top_n;
    for (size_t i = 0; i < du->nresults; i++) {
        struct rsre_du_consumer *r = &du->results[i];
        r->kind = du->cons[i].kind;
        snprintf(r->path, sizeof(r->path), "%s", du->cons[i].path);
        r->bytes = du->cons[i].bytes;
        r->files = du->cons[i].files;
    }
    uint64_t completed = du->done.scans_completed;
    du->done = du->scan;
    du->done.consumers = du->ncons;
    du->done.scans_completed = completed + 1;
    du->done.completed_unix_ms = wall_ms();
    drop_scan(du);
}

/* Opens the next queued directory; returns 1 when one is open, 0 when the queue is empty. */
static int open_next(struct rsre_du *du) {
    while (du->nstack > 0) {
        struct item it = du->stack[--du->nstack];
        int fd = open(it.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == it.dev && st.st_ino == it.ino) {
            DIR *d = fdopendir(fd);
            if (d) {
                du->cur = d;
                du->cur_item = it;
                return 1;
            }
        }
        /* Gone, unreadable, or replaced (e.g. by a symlink somewhere on the path) since it was
         * found: not entered. */
        if (fd >= 0) {
            close(fd);
        }
        du->scan.errors++;
        free(it.path);
    }
    return 0;
}

/* Accounts one directory entry of the open directory. Returns 0 or -ENOMEM. */
static int visit(struct rsre_du *du, const char *name) {
    const struct item *it = &du->cur_item;
    const struct root_spec *r = &root_specs[it->spec];
    struct stat st;
    if (fstatat(dirfd(du->cur), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        du->scan.errors++;
        return 0;
    }
    int is_dir = S_ISDIR(st.st_mode);
    int32_t consumer = it->consumer;
    uint8_t level = it->level;
    if (level < r->npattern) {
        /* Above the consumers: only directories on the pattern matter. */
        if (!is_dir || fnmatch(r->pattern[level], name, FNM_PERIOD) != 0) {
            return 0;
        }
        level++;
        if (st.st_dev != du->root_dev[it->spec]) {
            du->scan.skipped++;
            return 0;
        }
    } else {
        struct consumer *c = &du->cons[consumer];
        c->bytes += (uint64_t)st.st_blocks * 512u;
        if (!is_dir) {
            c->files++;
            return 0;
        }
        if (st.st_dev != du->root_dev[it->spec] || it->depth + 1 > RSRE_DU_MAX_DEPTH) {
            du->scan.skipped++;
            return 0;
        }
    }
    char path[RSRE_DU_MAX_PATH];
    int n = snprintf(path, sizeof(path), "%s/%s", it->path, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        du->scan.skipped++;
        return 0;
    }
    if (consumer < 0 && level == r->npattern) {
        consumer = add_consumer(du, r->kind, path);
        if (consumer == -2) {
            return -ENOMEM;
        }
        if (consumer < 0) {
            return 0; /* table full: counted, not entered */
        }
        du->cons[consumer].bytes += (uint64_t)st.st_blocks * 512u;
    }
    char *copy = strdup(path);
    if (!copy) {
        return -ENOMEM;
    }
    return push(du, (struct item){copy, consumer, it->spec, level, (uint16_t)(it->depth + 1),
                                  st.st_dev, st.st_ino});
}

int rsre_du_step(struct rsre_du *du, uint32_t max_entries, uint32_t budget_ms,
                 struct rsre_du_step_stats *st) {
    struct rsre_du_step_stats local;
    st = st ? st : &local;
    memset(st, 0, sizeof(*st));
    uint64_t t0 = now_ms();
    if (!du->scanning) {
        int rc = start_scan(du);
        if (rc) {
            drop_scan(du);
            return rc;
        }
    }
    du->scan.steps++;
    max_entries = max_entries ? max_entries : 1;
    uint32_t closed = 0;
    for (;;) {
        if (!du->cur && !open_next(du)) {
            finish_scan(du);
            st->scan_complete = 1;
            break;
        }
        errno = 0;
        struct dirent *e = readdir(du->cur);
        if (!e) {
            if (errno) {
                du->scan.errors++;
            }
            closedir(du->cur);
            du->cur = NULL;
            free(du->cur_item.path);
            du->cur_item.path = NULL;
            /* Finishing directories is progress too: bound it like entries, so a run of empty
             * directories cannot overstay the budget. */
            if (++closed >= max_entries || now_ms() - t0 >= budget_ms) {
                break;
            }
            continue;
        }
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        int rc = visit(du, e->d_name);
        if (rc) {
            drop_scan(du);
            return rc;
        }
        st->entries++;
        du->scan.entries++;
        if (st->entries >= max_entries || now_ms() - t0 >= budget_ms) {
            break;
        }
    }
    st->elapsed_ms = (uint32_t)(now_ms() - t0);
    return st->scan_complete;
}

size_t rsre_du_results(const struct rsre_du *du, struct rsre_du_consumer *out, size_t max,
                       struct rsre_du_scan_stats *stats) {
    if (stats) {
        *stats = du->done;
    }
    size_t n = du->nresults < max ? du->nresults : max;
    if (n) {
        memcpy(out, du->results, n * sizeof(*out));
    }
    return n;
}
