#ifndef RSRE_AGENT_FOOTPRINT_H
#define RSRE_AGENT_FOOTPRINT_H

/*
 * Keeping the agent's resident memory small (config `footprint_trim`, default on; see
 * docs/performance.md, "Node agent footprint", for what each step saves and how it was measured).
 *
 * Three process-wide measures, none of which changes what the agent does:
 *
 *   1. rsre_footprint_early(), before gRPC starts (grpc_init):
 *      - abseil's Mutex deadlock detection off. Debian builds abseil without NDEBUG, so every
 *        gRPC mutex lock records lock-order graph nodes (heap that only grows, and CPU). The
 *        setter is C++ (absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore));
 *        it is looked up with dlsym under the mangled names abseil is known to export (Debian's
 *        inline namespace `debian3`, and the plain one), and when none is found nothing
 *        happens: such an abseil was built with NDEBUG and the detection is off already.
 *      - gRPC core's client-channel backup poller off (environment variable
 *        GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS=0, only when the operator has not set it).
 *        The poller exists for completion queues nobody polls; the agent's completion-queue
 *        thread (common/grpc_loop.c) always polls, so it only adds wake-ups.
 *   2. rsre_footprint_drop_file_pages(), once the agent has settled (every collector has run;
 *      the agent does it after the first and third rounds, then every 5 minutes): madvise(MADV_DONTNEED) on every private, read-only, file-backed mapping that holds
 *      no anonymous (copy-on-write) page: the text and read-only data of the program and its
 *      ~86 shared objects, mostly touched only while starting. Those pages are clean page cache:
 *      the kernel maps them back on the next touch, so nothing is lost; writable or
 *      copy-on-write mappings are never touched.
 *   3. rsre_footprint_trim(), after collection work (rate-limited by the caller): malloc_trim(0)
 *      returns free pages inside the heap and the malloc arenas of gRPC's threads.
 *
 * All functions are safe to call from any thread, at any time, and more than once; failures are
 * counted or logged, never fatal.
 */

#include <stddef.h>
#include <stdint.h>

struct rsre_footprint_drop {
    size_t mappings;      /* mappings dropped */
    size_t skipped;       /* candidate mappings beyond the parse bounds or refused by madvise */
    size_t resident_kib;  /* their resident pages before the drop (Rss of those mappings) */
    uint64_t elapsed_us;  /* CPU time the drop took (reading smaps dominates) */
};

/* Step 1. Returns 1 when the deadlock-detection setter was found and called, else 0. */
int rsre_footprint_early(void);

/*
 * Step 2: reads /proc/self/smaps (lines bounded, at most RSRE_FOOTPRINT_MAX_MAPPINGS mappings
 * considered) and drops the candidates. `st` may be NULL. Returns 0 or a negative errno when
 * smaps cannot be read.
 */
#define RSRE_FOOTPRINT_MAX_MAPPINGS 4096
int rsre_footprint_drop_file_pages(struct rsre_footprint_drop *st);

/* Step 3. */
void rsre_footprint_trim(void);

#endif
