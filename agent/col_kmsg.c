/*
 * Kernel log collector: reads kmsg_path (/dev/kmsg) without ever blocking the loop and emits a
 * KernelEvent for each recognised record (parsing, patterns, de-duplication and the per-kind
 * rate limit are in kmsg.c).
 *
 * - The descriptor is opened O_NONBLOCK and positioned with SEEK_END: only records logged
 *   after the agent started are reported. Older records were either reported by the previous
 *   agent instance or belong to boot noise that would otherwise be replayed on every restart.
 * - A uv_poll on the descriptor drains records as soon as the kernel logs them; the collector's
 *   timer (kmsg_ms) drains as well, which also covers sources uv_poll cannot watch (a regular
 *   file used in tests: epoll refuses those, and then only the timer reads).
 * - read() on /dev/kmsg returns exactly one record; EAGAIN ends a drain; EPIPE means the
 *   kernel overwrote records we had not read yet: it is counted (overruns), the next read
 *   continues with the oldest record still there, and the gap in sequence numbers is counted
 *   as lost records.
 * - One drain handles at most DRAIN_MAX records so a log storm cannot starve the loop; the
 *   rest waits for the next readiness callback.
 * - Reading /dev/kmsg needs CAP_SYSLOG when kernel.dmesg_restrict=1 (the agent's DaemonSet
 *   grants it); without access the collector is disabled with one log line.
 *
 * State: a static pointer (one kmsg collector per process) for rsre_kmsg_collector_stats.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/kmsg.h"
#include "common/error.h"
#include "common/log.h"

#define MOD "col_kmsg"
#define DRAIN_MAX 256

struct kmsg_col {
    struct rsre_agent *agent;
    int fd;
    int is_chardev;
    int polling;
    uv_poll_t poll;
    struct rsre_kmsg_state filt;
    size_t len;                         /* buffered bytes (regular-file source only) */
    char buf[RSRE_KMSG_MAX_RECORD * 2]; /* one record (device) or a window of the file */
    struct rsre_kmsg_event ev;
    struct rsre_kmsg_signal sig;
};

static struct kmsg_col *g_kmsg;

static void handle_record(struct kmsg_col *k, const char *rec, size_t len) {
    int rc = rsre_kmsg_process(&k->filt, rec, len, &k->ev);
    if (rc == RSRE_EPARSE) {
        uint64_t n = k->filt.stats.parse_errors;
        if (n == 1 || n % 100 == 0) {
            RSRE_LOG(RSRE_LOG_WARN, MOD,
                     "unparseable kmsg record (%zu bytes) skipped; "
                     "parse_errors=%llu",
                     len, (unsigned long long)n);
        }
        return;
    }
    if (rc == 1) {
        int erc = rsre_agent_emit(k->agent, rsre_kmsg_build_signal(&k->ev, 0, &k->sig));
        if (erc) {
            RSRE_LOG(RSRE_LOG_WARN, MOD, "kernel event kind=%d not emitted: %s", k->ev.kind,
                     rsre_strerror(erc));
        }
    }
}

/* Reads what is available now, at most DRAIN_MAX records. Returns 0 or a negative errno. */
static int drain(struct kmsg_col *k) {
    for (int n = 0; n < DRAIN_MAX;) {
        if (k->is_chardev) {
            ssize_t r = read(k->fd, k->buf, RSRE_KMSG_MAX_RECORD);
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EPIPE) {
                    k->filt.stats.overruns++; /* the next read continues with the oldest */
                    n++;
                    continue;
                }
                return errno == EAGAIN ? 0 : -errno;
            }
            if (r == 0) {
                return 0;
            }
            handle_record(k, k->buf, (size_t)r);
            n++;
            continue;
        }
        /* Regular file: keep a window, cut it into records; at end of file only complete lines
         * are handled (a writer may be mid-line). */
        ssize_t r = read(k->fd, k->buf + k->len, sizeof(k->buf) - k->len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return errno == EAGAIN ? 0 : -errno;
        }
        k->len += (size_t)r;
        int at_end = r == 0 && k->len > 0 && k->buf[k->len - 1] == '\n';
        size_t off = 0, rl;
        while (n < DRAIN_MAX && rsre_kmsg_next_record(k->buf + off, k->len - off, at_end, &rl)) {
            handle_record(k, k->buf + off, rl);
            off += rl;
            n++;
        }
        if (off == 0 && k->len == sizeof(k->buf)) {
            /* A "record" longer than the window: count it and drop the window. */
            k->filt.stats.parse_errors++;
            off = k->len;
        }
        memmove(k->buf, k->buf + off, k->len - off);
        k->len -= off;
        if (r == 0) {
            return 0;
        }
    }
    return 0;
}

static void on_readable(uv_poll_t *h, int status, int events) {
    struct kmsg_col *k = h->data;
    (void)events;
    int rc = status < 0 ? status : drain(k);
    if (rc < 0) {
        RSRE_LOG(RSRE_LOG_ERROR, MOD, "reading kmsg failed: %s; falling back to the timer",
                 status < 0 ? uv_strerror(rc) : rsre_strerror(rc));
        uv_poll_stop(h);
    }
}

static int kmsg_init(struct rsre_agent *a, void **state) {
    const struct rsre_agent_config *cfg = rsre_agent_config(a);
    if (g_kmsg) {
        return -EBUSY;
    }
    if (!cfg->kmsg_path[0]) {
        RSRE_LOG(RSRE_LOG_INFO, MOD, "kmsg_path is empty: kernel events disabled");
        return RSRE_ENOTFOUND;
    }
    int fd = open(cfg->kmsg_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        RSRE_LOG(RSRE_LOG_WARN, MOD, "cannot open %s: %s; kernel events disabled", cfg->kmsg_path,
                 strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (!S_ISCHR(st.st_mode) && !S_ISREG(st.st_mode))) {
        close(fd);
        RSRE_LOG(RSRE_LOG_WARN, MOD,
                 "%s is neither the kmsg device nor a file; kernel events "
                 "disabled",
                 cfg->kmsg_path);
        return -EINVAL;
    }
    struct kmsg_col *k = calloc(1, sizeof(*k));
    if (!k) {
        close(fd);
        return -ENOMEM;
    }
    k->agent = a;
    k->fd = fd;
    k->is_chardev = S_ISCHR(st.st_mode);
    rsre_kmsg_state_init(&k->filt, cfg->kmsg_rate_per_min);
    (void)lseek(fd, 0, SEEK_END);
    int watching = 0;
    if (uv_poll_init(rsre_agent_loop(a), &k->poll, fd) == 0) {
        k->poll.data = k;
        k->polling = 1; /* the handle exists and must be closed */
        watching = uv_poll_start(&k->poll, UV_READABLE, on_readable) == 0;
    }
    RSRE_LOG(RSRE_LOG_INFO, MOD, "reading %s from its end, woken by %s, rate_per_min=%u",
             cfg->kmsg_path, watching ? "poll and timer" : "timer only", cfg->kmsg_rate_per_min);
    g_kmsg = k;
    *state = k;
    return 0;
}

static void kmsg_collect(struct rsre_agent *a, void *state, struct rsre_collect_run *run) {
    (void)a;
    rsre_collect_done(run, drain(state));
}

static void on_poll_closed(uv_handle_t *h) {
    struct kmsg_col *k = h->data;
    close(k->fd);
    free(k);
}

/* Stops reading; the state is freed in the poll handle's close callback (the loop must run,
 * as the agent's own shutdown does). */
static void kmsg_destroy(void *state) {
    struct kmsg_col *k = state;
    if (g_kmsg == k) {
        g_kmsg = NULL;
    }
    if (k->polling) {
        uv_close((uv_handle_t *)&k->poll, on_poll_closed);
        return;
    }
    close(k->fd);
    free(k);
}

const struct rsre_collector_desc rsre_collector_kmsg = {
    .name = "kmsg",
    .interval_offset = offsetof(struct rsre_agent_config, kmsg_ms),
    .init = kmsg_init,
    .collect = kmsg_collect,
    .destroy = kmsg_destroy,
    .capability = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_KERNEL_EVENTS,
};

int rsre_kmsg_collector_stats(struct rsre_agent *a, struct rsre_kmsg_stats *out) {
    (void)a;
    if (!g_kmsg) {
        memset(out, 0, sizeof(*out));
        return RSRE_ENOTFOUND;
    }
    *out = g_kmsg->filt.stats;
    return 0;
}
