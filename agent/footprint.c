/* Resident-memory measures of the agent: contract in agent/footprint.h. */
#include "agent/footprint.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/log.h"

#define MOD "footprint"

/* absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle), as exported by abseil builds:
 * Debian 12's (LTS 20220623, inline namespace "debian3") and one without an inline namespace.
 * OnDeadlockCycle::kIgnore is 0. */
static const char *const deadlock_setters[] = {
    "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
    "_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE",
};

int rsre_footprint_early(void) {
    /* 0 = do not overwrite: an operator's own setting wins. */
    setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "0", 0);
    for (size_t i = 0; i < sizeof(deadlock_setters) / sizeof(deadlock_setters[0]); i++) {
        void *sym = dlsym(RTLD_DEFAULT, deadlock_setters[i]);
        if (sym) {
            void (*set_mode)(int);
            memcpy(&set_mode, &sym, sizeof(set_mode)); /* object to function pointer, ISO-clean */
            set_mode(0);
            RSRE_LOG(RSRE_LOG_DEBUG, MOD, "abseil mutex deadlock detection off");
            return 1;
        }
    }
    RSRE_LOG(RSRE_LOG_DEBUG, MOD, "abseil deadlock-detection setter not exported: left as built");
    return 0;
}

/* One mapping of /proc/self/smaps while its lines are read. */
struct mapping {
    unsigned long lo, hi;
    unsigned long rss_kib;
    int candidate; /* private, read-only, file-backed */
};

static void consider(const struct mapping *m, unsigned long anon_kib,
                     struct rsre_footprint_drop *st, size_t *seen) {
    if (!m->candidate || anon_kib != 0 || m->rss_kib == 0) {
        return;
    }
    if (++*seen > RSRE_FOOTPRINT_MAX_MAPPINGS) {
        st->skipped++;
        return;
    }
    /* Dropping while smaps is being read is fine: MADV_DONTNEED never splits or removes a VMA. */
    if (madvise((void *)m->lo, m->hi - m->lo, MADV_DONTNEED) == 0) {
        st->mappings++;
        st->resident_kib += m->rss_kib;
    } else {
        st->skipped++;
    }
}

int rsre_footprint_drop_file_pages(struct rsre_footprint_drop *out) {
    struct rsre_footprint_drop local;
    struct rsre_footprint_drop *st = out ? out : &local;
    memset(st, 0, sizeof(*st));
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f) {
        return -errno;
    }
    char line[512];
    struct mapping m = {0};
    size_t seen = 0;
    int partial = 0; /* the previous fgets returned part of a longer line */
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        int fragment = partial;
        partial = len > 0 && line[len - 1] != '\n' && !feof(f);
        if (fragment) {
            continue; /* the rest of a long line (a long path): never a header or a field */
        }
        unsigned long lo, hi, off, ino;
        unsigned maj, mnr;
        char perm[5];
        if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &lo, &hi, perm, &off, &maj, &mnr, &ino) ==
            7) {
            m = (struct mapping){lo, hi, 0, ino != 0 && perm[1] == '-' && perm[3] == 'p'};
        } else if (!strncmp(line, "Rss:", 4)) {
            m.rss_kib = strtoul(line + 4, NULL, 10);
        } else if (!strncmp(line, "Anonymous:", 10)) {
            consider(&m, strtoul(line + 10, NULL, 10), st, &seen);
            m.candidate = 0;
        }
    }
    fclose(f);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    st->elapsed_us =
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
    return 0;
}

void rsre_footprint_trim(void) {
    malloc_trim(0);
}
