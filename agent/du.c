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
    /* Directories (path below the root, one component per level) whose files never change in
     * place, so the sum of their direct entries may be cached by the directory's identity and
     * timestamps (see rsre_du_set_cache). Only for specs with npattern 0. */
    const char *immutable[2];
    size_t nimmutable;
} root_specs[] = {
    {RSRE_DU_POD_LOGS, BASE_POD_LOGS, "", {"*"}, 1, {NULL}, 0},
    {RSRE_DU_EMPTY_DIR, BASE_KUBELET, "pods", {"*", "volumes", "kubernetes.io~empty-dir", "*"}, 4,
     {NULL}, 0},
    /* containerd writes a blob under ingest/ and renames it into blobs/<algorithm>/<digest>:
     * a blob is named by its content and is never rewritten where it lies. */
    {RSRE_DU_CONTENT_STORE, BASE_RUNTIME, "io.containerd.content.v1.content", {NULL}, 0,
     {"blobs", "*"}, 2},
};

#define NSPECS (sizeof(root_specs) / sizeof(root_specs[0]))
#define RSRE_DU_DENTS_BUF 8192 /* getdents64 buffer */

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
    uint8_t imm;    /* leading components of the spec's `immutable` path matched */
    dev_t dev;      /* what fstatat saw when the directory was found: the open is checked */
    ino_t ino;
    struct timespec mtime, ctime; /* likewise (used for cacheable directories) */
};

/* A cached directory: the sum of its direct entries, valid while (dev, ino, mtime, ctime) are
 * unchanged, for at most max_reuse scans. */
struct cache_entry {
    dev_t dev;
    ino_t ino;
    struct timespec mtime, ctime;
    uint64_t bytes, files, entries;
    uint32_t reused; /* scans that used it since it was read */
    uint64_t gen;    /* last scan that saw the directory */
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
    int cur; /* the open directory, or -1 */
    struct item cur_item;
    /* its entries, read with getdents64 into dbuf (no DIR: fdopendir costs an fstat, two
     * fcntl and a 32 KiB allocation per directory) */
    uint8_t *dbuf;
    size_t dpos, dlen;
    struct consumer *cons;
    size_t ncons, capcons;
    struct rsre_du_scan_stats scan; /* counters of the scan in progress */
    /* cache of immutable directories (rsre_du_set_cache) */
    uint32_t cache_reuse; /* 0: off */
    struct cache_entry cache[RSRE_DU_MAX_CACHED];
    size_t ncache;
    uint64_t gen; /* scans started */
    /* the open directory, when it is cacheable: sums of its direct entries */
    int cur_cacheable;
    struct timespec cur_opened; /* wall time it was opened */
    uint64_t cur_bytes, cur_files, cur_entries;
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
    du->cur = -1;
    const char *b[NBASES] = {pod_log_dir, kubelet_root, runtime_root};
    for (int i = 0; i < NBASES; i++) {
        if (b[i] && b[i][0] && !(du->base[i] = strdup(b[i]))) {
            rsre_du_destroy(du);
            return -ENOMEM;
        }
    }
    du->top_n = top_n;
    du->results = calloc(top_n, sizeof(*du->results));
    du->dbuf = malloc(RSRE_DU_DENTS_BUF);
    if (!du->results || !du->dbuf) {
        rsre_du_destroy(du);
        return -ENOMEM;
    }
    *out = du;
    return 0;
}

void rsre_du_set_cache(struct rsre_du *du, uint32_t max_reuse) {
    du->cache_reuse = max_reuse;
    if (!max_reuse) {
        du->ncache = 0;
    }
}

static int ts_eq(struct timespec a, struct timespec b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static struct cache_entry *cache_find(struct rsre_du *du, dev_t dev, ino_t ino) {
    for (size_t i = 0; i < du->ncache; i++) {
        if (du->cache[i].dev == dev && du->cache[i].ino == ino) {
            return &du->cache[i];
        }
    }
    return NULL;
}

/* Called when the cacheable open directory has been read to its end without an error: store
 * its sums, unless it changed while being read or its timestamps are too recent to trust (a
 * change in the same clock tick as the last one, on a filesystem with coarse timestamps, would
 * leave them equal: like git's "racily clean" entries, such a directory is read again). */
static void cache_store(struct rsre_du *du) {
    const struct item *it = &du->cur_item;
    struct stat st;
    if (fstat(du->cur, &st) != 0 || !ts_eq(st.st_mtim, it->mtime) ||
        !ts_eq(st.st_ctim, it->ctime)) {
        return;
    }
    time_t margin = RSRE_DU_CACHE_RACY_S;
    if (st.st_mtim.tv_sec + margin > du->cur_opened.tv_sec ||
        st.st_ctim.tv_sec + margin > du->cur_opened.tv_sec) {
        return;
    }
    struct cache_entry *e = cache_find(du, it->dev, it->ino);
    if (!e) {
        if (du->ncache >= RSRE_DU_MAX_CACHED) {
            return;
        }
        e = &du->cache[du->ncache++];
    }
    *e = (struct cache_entry){it->dev,       it->ino,       it->mtime,      it->ctime,
                              du->cur_bytes, du->cur_files, du->cur_entries, 0,
                              du->gen};
}

/* Forgets directories the finished scan did not see (removed, or no longer cacheable). */
static void cache_prune(struct rsre_du *du) {
    size_t k = 0;
    for (size_t i = 0; i < du->ncache; i++) {
        if (du->cache[i].gen == du->gen) {
            du->cache[k++] = du->cache[i];
        }
    }
    du->ncache = k;
}

static void close_cur(struct rsre_du *du) {
    close(du->cur);
    du->cur = -1;
    du->dpos = du->dlen = 0;
    free(du->cur_item.path);
    du->cur_item.path = NULL;
    du->cur_cacheable = 0;
}

static void drop_scan(struct rsre_du *du) {
    if (du->cur >= 0) {
        close_cur(du);
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
    free(du->dbuf);
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
    du->gen++;
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
        if (push(du, (struct item){copy, c, (uint8_t)s, 0, 0, 0, st.st_dev, st.st_ino, st.st_mtim,
                                   st.st_ctim})) {
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
    cache_prune(du);
    drop_scan(du);
}

/* Whether a directory's direct entries may be cached: its path below the root is the spec's
 * whole `immutable` path. */
static int cacheable(const struct item *it) {
    const struct root_spec *r = &root_specs[it->spec];
    return r->nimmutable && it->depth == r->nimmutable && it->imm == r->nimmutable;
}

static int visit(struct rsre_du *du, const char *name, unsigned char d_type);

/* The pattern component an item's entries must match, when it is a plain name. */
static const char *literal_component(const struct item *it) {
    const struct root_spec *r = &root_specs[it->spec];
    if (it->level >= r->npattern || strpbrk(r->pattern[it->level], "*?[\\")) {
        return NULL;
    }
    return r->pattern[it->level];
}

/*
 * Takes the next queued directory. Returns 1 when it is open for reading; 2 when its only
 * interesting entry has a fixed name (e.g. "volumes" under a pod directory) and was looked up
 * with one fstatat instead of reading the directory (an entry visited); 0 when the queue is
 * empty; -ENOMEM.
 */
static int open_next(struct rsre_du *du) {
    while (du->nstack > 0) {
        struct item it = du->stack[--du->nstack];
        const char *lit = literal_component(&it);
        int fd = open(it.path, (lit ? O_PATH : O_RDONLY) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (lit && fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == it.dev && st.st_ino == it.ino) {
            du->cur = fd;
            du->cur_item = it;
            du->cur_cacheable = 0;
            int rc = visit(du, lit, DT_UNKNOWN);
            close(fd);
            du->cur = -1;
            free(it.path);
            du->cur_item.path = NULL;
            return rc ? rc : 2;
        }
        if (!lit && fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == it.dev && st.st_ino == it.ino) {
            du->cur = fd;
            du->dpos = du->dlen = 0;
            du->cur_item = it;
            du->cur_cacheable = du->cache_reuse && cacheable(&it);
            du->cur_bytes = du->cur_files = du->cur_entries = 0;
            clock_gettime(CLOCK_REALTIME, &du->cur_opened);
            return 1;
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

/* The next entry of the open directory: 1 with its name and type (DT_*, DT_UNKNOWN on
 * filesystems that do not say), 0 at the end, -1 on an error. */
static int next_entry(struct rsre_du *du, const char **name, unsigned char *d_type) {
    if (du->dpos >= du->dlen) {
        ssize_t n = getdents64(du->cur, du->dbuf, RSRE_DU_DENTS_BUF);
        if (n <= 0) {
            return n < 0 ? -1 : 0;
        }
        du->dlen = (size_t)n;
        du->dpos = 0;
    }
    const struct dirent64 *d = (const struct dirent64 *)(du->dbuf + du->dpos);
    du->dpos += d->d_reclen;
    *name = d->d_name;
    *d_type = d->d_type;
    return 1;
}

/* Accounts one directory entry of the open directory. Returns 0 or -ENOMEM. */
static int visit(struct rsre_du *du, const char *name, unsigned char d_type) {
    const struct item *it = &du->cur_item;
    const struct root_spec *r = &root_specs[it->spec];
    /* Above the consumers only directories on the pattern matter: skip the others before the
     * stat when the directory entry already says enough. */
    if (it->level < r->npattern &&
        ((d_type != DT_UNKNOWN && d_type != DT_DIR) ||
         fnmatch(r->pattern[it->level], name, FNM_PERIOD) != 0)) {
        return 0;
    }
    struct stat st;
    if (fstatat(du->cur, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        du->scan.errors++;
        du->cur_cacheable = 0;
        return 0;
    }
    int is_dir = S_ISDIR(st.st_mode);
    int32_t consumer = it->consumer;
    uint8_t level = it->level;
    if (level < r->npattern) {
        if (!is_dir) {
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
        if (du->cur_cacheable) {
            du->cur_bytes += (uint64_t)st.st_blocks * 512u;
            du->cur_files += !is_dir;
            du->cur_entries++;
            du->cur_cacheable = !is_dir; /* a subdirectory: not a flat blob directory */
        }
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
    struct item child = {NULL,     consumer,  it->spec,   level,      (uint16_t)(it->depth + 1),
                         it->imm,  st.st_dev, st.st_ino,  st.st_mtim, st.st_ctim};
    if (it->imm == it->depth && it->imm < r->nimmutable &&
        fnmatch(r->immutable[it->imm], name, FNM_PERIOD) == 0) {
        child.imm++;
    }
    if (du->cache_reuse && consumer >= 0 && cacheable(&child)) {
        struct cache_entry *e = cache_find(du, st.st_dev, st.st_ino);
        if (e && ts_eq(e->mtime, st.st_mtim) && ts_eq(e->ctime, st.st_ctim) &&
            e->reused < du->cache_reuse) {
            e->reused++;
            e->gen = du->gen;
            du->cons[consumer].bytes += e->bytes;
            du->cons[consumer].files += e->files;
            du->scan.cached_dirs++;
            du->scan.cached_entries += e->entries;
            return 0;
        }
    }
    if (!(child.path = strdup(path))) {
        return -ENOMEM;
    }
    return push(du, child);
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
        if (du->cur < 0) {
            int rc = open_next(du);
            if (rc < 0) {
                drop_scan(du);
                return rc;
            }
            if (rc == 0) {
                finish_scan(du);
                st->scan_complete = 1;
                break;
            }
            if (rc == 2) {
                st->entries++;
                du->scan.entries++;
                if (st->entries >= max_entries || now_ms() - t0 >= budget_ms) {
                    break;
                }
                continue;
            }
        }
        const char *name;
        unsigned char d_type;
        int got = next_entry(du, &name, &d_type);
        if (got <= 0) {
            if (got < 0) {
                du->scan.errors++;
            } else if (du->cur_cacheable) {
                cache_store(du);
            }
            close_cur(du);
            /* Finishing directories is progress too: bound it like entries, so a run of empty
             * directories cannot overstay the budget. */
            if (++closed >= max_entries || now_ms() - t0 >= budget_ms) {
                break;
            }
            continue;
        }
        if (!strcmp(name, ".") || !strcmp(name, "..")) {
            continue;
        }
        int rc = visit(du, name, d_type);
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
