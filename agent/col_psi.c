/*
 * Pressure stall collector: proc_root/pressure/{cpu,memory,io} -> one PressureStall signal per
 * resource each run (parsing in kmsg.c, rsre_psi_parse). Kernels without PSI (CONFIG_PSI off,
 * or booted with psi=0) have no /proc/pressure: the collector is then disabled with one log
 * line. A resource file that is missing while others exist is skipped (logged once).
 * The files are tiny procfs reads answered from memory, so they are read synchronously.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/kmsg.h"
#include "common/error.h"
#include "common/log.h"

#define MOD "col_psi"
#define PSI_READ_MAX 4096

static const struct {
    enum rsre_psi_resource resource;
    const char *file;
} psi_files[] = {
    {RSRE_PSI_CPU, "cpu"},
    {RSRE_PSI_MEMORY, "memory"},
    {RSRE_PSI_IO, "io"},
};

#define NPSI (sizeof(psi_files) / sizeof(psi_files[0]))

struct psi_col {
    char path[NPSI][RSRE_AGENT_MAX_PATH + 32];
    int enabled[NPSI];
    int failing[NPSI];
    uint64_t parse_errors;
};

/* Reads the whole file (at most PSI_READ_MAX bytes; more is an error). Returns the length or
 * a negative errno / RSRE_ELIMIT. */
static int read_small(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return -errno;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            close(fd);
            return -e; /* EOPNOTSUPP: PSI compiled in but disabled at boot */
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
        if (len == cap) {
            close(fd);
            return RSRE_ELIMIT;
        }
    }
    close(fd);
    return (int)len;
}

static int psi_init(struct rsre_agent *a, void **state) {
    const struct rsre_agent_config *cfg = rsre_agent_config(a);
    struct psi_col *p = calloc(1, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    const char *root = cfg->proc_root[0] ? cfg->proc_root : "/proc";
    char buf[PSI_READ_MAX + 1], missing[64] = "";
    int n = 0, first_err = 0;
    for (size_t i = 0; i < NPSI; i++) {
        snprintf(p->path[i], sizeof(p->path[i]), "%s/pressure/%s", root, psi_files[i].file);
        int rc = read_small(p->path[i], buf, sizeof(buf));
        if (rc >= 0) {
            p->enabled[i] = 1;
            n++;
        } else {
            first_err = first_err ? first_err : rc;
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof(missing) - l, "%s%s", l ? "," : "", psi_files[i].file);
        }
    }
    if (n == 0) {
        RSRE_LOG(RSRE_LOG_INFO, MOD,
                 "no pressure stall information under %s/pressure (%s): "
                 "kernel without PSI or booted with psi=0; collector disabled",
                 root, rsre_strerror(first_err));
        free(p);
        return first_err ? first_err : -ENOENT;
    }
    if (missing[0]) {
        RSRE_LOG(RSRE_LOG_WARN, MOD, "pressure files missing or unreadable: %s", missing);
    }
    *state = p;
    return 0;
}

static void psi_collect(struct rsre_agent *a, void *state, struct rsre_collect_run *run) {
    struct psi_col *p = state;
    char buf[PSI_READ_MAX + 1];
    int64_t now = rsre_now_unix_ms();
    int rc = 0;
    for (size_t i = 0; i < NPSI; i++) {
        if (!p->enabled[i]) {
            continue;
        }
        int len = read_small(p->path[i], buf, sizeof(buf));
        struct rsre_psi psi;
        int prc = len < 0 ? len : rsre_psi_parse(buf, (size_t)len, &psi);
        if (prc) {
            if (prc == RSRE_EPARSE) {
                p->parse_errors++;
            }
            if (!p->failing[i]) {
                RSRE_LOG(RSRE_LOG_WARN, MOD, "%s: %s", p->path[i],
                         prc == RSRE_EPARSE ? "not in the pressure stall format"
                                            : rsre_strerror(prc));
            }
            p->failing[i] = 1;
            rc = rc ? rc : prc;
            continue;
        }
        p->failing[i] = 0;
        struct rsre_psi_signal sig;
        int erc = rsre_agent_emit(a, rsre_psi_build_signal(psi_files[i].resource, &psi, now, &sig));
        rc = rc ? rc : erc;
    }
    rsre_collect_done(run, rc);
}

static void psi_destroy(void *state) {
    free(state);
}

const struct rsre_collector_desc rsre_collector_psi = {
    .name = "pressure_stall",
    .interval_offset = offsetof(struct rsre_agent_config, psi_ms),
    .init = psi_init,
    .collect = psi_collect,
    .destroy = psi_destroy,
    .capability = ROBOT_SRE__AGENT__V1__CAPABILITY__CAPABILITY_PRESSURE_STALL,
};
