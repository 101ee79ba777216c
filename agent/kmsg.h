#ifndef RSRE_KMSG_H
#define RSRE_KMSG_H

/*
 * The kernel's text interfaces the agent reads, as pure functions over bytes:
 *
 *   - /dev/kmsg records ("prio,seq,usec,flags[,...];message\n" plus continuation lines
 *     " KEY=value\n", Documentation/ABI/testing/dev-kmsg), recognised with a table of patterns
 *     (OOM kills, "No space left on device", filesystem errors, hung tasks), de-duplicated and
 *     rate-limited per kind -> KernelEvent (collector: col_kmsg.c);
 *   - /proc/pressure/{cpu,memory,io} ("some avg10=.. avg60=.. avg300=.. total=..", "full ...",
 *     Documentation/accounting/psi.rst) -> PressureStall (collector: col_psi.c).
 *
 * Both live in this one module because both are "parse what the kernel prints"; neither keeps
 * global state. Nothing here does I/O.
 */

#include <stddef.h>
#include <stdint.h>

#include "robot_sre/agent.pb-c.h"

/* ---- /dev/kmsg records ---------------------------------------------------------------------- */

/* A read() of /dev/kmsg returns one record; the kernel's bound is 8 KiB (CONSOLE_EXT_LOG_MAX). */
#define RSRE_KMSG_MAX_RECORD 8192
#define RSRE_KMSG_MAX_MESSAGE 4096 /* KernelEvent.message bound */
#define RSRE_KMSG_MAX_SUBJECT 1024 /* KernelEvent.subject bound */

struct rsre_kmsg_record {
    unsigned priority; /* syslog level 0..7 (prio & 7) */
    unsigned facility; /* prio >> 3; 0 = kernel */
    uint64_t seq;
    uint64_t usec;   /* CLOCK_MONOTONIC microseconds at logging time */
    char flag;       /* '-' record, 'c' continuation of a fragment, '+' fragment */
    const char *msg; /* points into the input; not NUL-terminated */
    size_t msg_len;
    const char *dict; /* continuation lines as read (each " KEY=value", '\n' between) */
    size_t dict_len;  /* 0 when there are none */
};

/*
 * Parses one record of `len` bytes (the trailing newline is optional). Returns 0, or
 * RSRE_EPARSE for anything that is not a record: missing ';', non-numeric or out-of-range
 * fields (prio above 1023, more than 20 digits), an empty header, a NUL byte, more than
 * RSRE_KMSG_MAX_RECORD bytes.
 */
int rsre_kmsg_parse_record(const char *buf, size_t len, struct rsre_kmsg_record *out);

/*
 * Splits a byte stream into records for sources that are not the kmsg device (a regular file
 * in tests, or a stream of records captured elsewhere): a record is a header line plus the
 * lines after it that start with a space. Sets *rec_len to the length of the first record of
 * `buf` (including its newlines) and returns 1; returns 0 when `buf` does not yet hold a whole
 * record (more input may continue it), unless `at_end` is set, in which case whatever is there
 * is the last record. A leading continuation line without a header is one record of its own
 * (it will fail to parse and be counted).
 */
int rsre_kmsg_next_record(const char *buf, size_t len, int at_end, size_t *rec_len);

/* Values of RobotSre__Agent__V1__KernelEventKind. */
enum rsre_kmsg_kind {
    RSRE_KMSG_OOM_KILL = 1,
    RSRE_KMSG_NO_SPACE = 2,
    RSRE_KMSG_FS_ERROR = 3,
    RSRE_KMSG_HUNG_TASK = 4,
    RSRE_KMSG_OTHER = 5,
    RSRE_KMSG_NKINDS = 6 /* array bound: kinds are 1..5 */
};

/*
 * Matches one message (kernel facility records only; see rsre_kmsg_process) against the
 * pattern table. Returns the kind, or 0 when nothing matches; fills `subject` (cap bytes,
 * NUL-terminated, may be "") with what the row's extractor finds: "comm[pid]" for OOM kills,
 * the device for filesystem errors, "comm:pid" for hung tasks. *dedupe is set for rows whose
 * repeats with the same subject within a second are one event (an OOM kill prints both
 * "oom-kill:" and "Killed process" lines).
 */
int rsre_kmsg_classify(const char *msg, size_t len, char *subject, size_t cap, int *dedupe);

/* Number of rows in the pattern table, the needle of row i, and the row a message matches
 * first (-1: none). For docs and tests. */
size_t rsre_kmsg_pattern_count(void);
const char *rsre_kmsg_pattern_needle(size_t i, int *kind);
int rsre_kmsg_match_row(const char *msg, size_t len);

struct rsre_kmsg_stats {
    uint64_t records;      /* records parsed */
    uint64_t parse_errors; /* inputs that were not records */
    uint64_t matched;      /* records of interest (after de-duplication) */
    uint64_t merged;       /* repeats folded into the previous event (same OOM kill) */
    uint64_t emitted;      /* events handed out */
    uint64_t suppressed;   /* events dropped by the rate limit */
    uint64_t lost;         /* records the kernel overwrote before we read them (seq gaps) */
    uint64_t overruns;     /* EPIPE from read(): the reader fell behind (col_kmsg counts) */
};

/* Token bucket of one kind (private to kmsg.c). */
struct rsre_kmsg_bucket {
    uint64_t tokens; /* in 1/60000 of an event */
    int64_t last_ms;
    int init;
    uint32_t suppressed; /* since the last emitted event of this kind */
};

/* Rate limiting and de-duplication state; embeddable, fields starting with '_' are private. */
struct rsre_kmsg_state {
    uint32_t rate_per_min; /* events per kind per minute; 0 = unlimited */
    struct rsre_kmsg_stats stats;
    struct rsre_kmsg_bucket _bucket[RSRE_KMSG_NKINDS];
    struct {
        int kind;
        uint64_t usec;
        char subject[128];
    } _last;
    uint64_t _last_seq;
    int _have_seq;
};

void rsre_kmsg_state_init(struct rsre_kmsg_state *st, uint32_t rate_per_min);

/* One recognised kernel event, ready to become a KernelEvent. */
struct rsre_kmsg_event {
    int kind;
    unsigned priority;
    uint64_t seq;
    uint64_t usec;
    uint32_t suppressed;
    char message[RSRE_KMSG_MAX_MESSAGE + 1];
    char subject[RSRE_KMSG_MAX_SUBJECT + 1];
};

/*
 * Handles one record: parse, classify (only facility 0, the kernel: userspace can write to
 * /dev/kmsg too), de-duplicate, then rate-limit with a token bucket per kind (capacity
 * rate_per_min, refilled at rate_per_min per minute of kmsg time, i.e. the record's usec).
 * Returns 1 and fills *ev when an event is to be emitted (ev->suppressed = events of that kind
 * the limit dropped since the previous emitted one), 0 when the record is not of interest,
 * merged or suppressed, RSRE_EPARSE when it is not a record. Updates st->stats.
 */
int rsre_kmsg_process(struct rsre_kmsg_state *st, const char *buf, size_t len,
                      struct rsre_kmsg_event *ev);

/* Storage for one KernelEvent Signal; the Signal points into it and into *ev. */
struct rsre_kmsg_signal {
    RobotSre__Agent__V1__Signal sig;
    RobotSre__Agent__V1__KernelEvent ev;
};

/* Fills *out from *ev (which must outlive the Signal). observed_unix_ms 0 = stamp on emit. */
RobotSre__Agent__V1__Signal *rsre_kmsg_build_signal(const struct rsre_kmsg_event *ev,
                                                    int64_t observed_unix_ms,
                                                    struct rsre_kmsg_signal *out);

/* ---- /proc/pressure ------------------------------------------------------------------------- */

struct rsre_psi_line {
    double avg10, avg60, avg300; /* percent, 0..100 */
    uint64_t total_usec;
};

struct rsre_psi {
    int has_some, has_full;
    struct rsre_psi_line some, full;
};

/*
 * Parses the text of one /proc/pressure file: a "some" line (required) and an optional "full"
 * line, each "avg10=F avg60=F avg300=F total=U" in any order (unknown key=value fields are
 * ignored, as newer kernels may add some). Returns 0, or RSRE_EPARSE (missing "some", a
 * duplicated line or key, a missing key, a number that is not finite, a percentage outside
 * 0..100, an unknown line kind, more than 4 KiB).
 */
int rsre_psi_parse(const char *text, size_t len, struct rsre_psi *out);

/* Values of RobotSre__Agent__V1__PsiResource. */
enum rsre_psi_resource { RSRE_PSI_CPU = 1, RSRE_PSI_MEMORY = 2, RSRE_PSI_IO = 3 };

struct rsre_psi_signal {
    RobotSre__Agent__V1__Signal sig;
    RobotSre__Agent__V1__PressureStall ps;
    RobotSre__Agent__V1__PsiLine some, full;
};

/* Fills *out from *p; "full" is left unset when the kernel did not report it. */
RobotSre__Agent__V1__Signal *rsre_psi_build_signal(enum rsre_psi_resource r,
                                                   const struct rsre_psi *p,
                                                   int64_t observed_unix_ms,
                                                   struct rsre_psi_signal *out);

/* ---- the collectors (col_kmsg.c, col_psi.c) ---------------------------------------------- */

struct rsre_agent;
struct rsre_collector_desc;
/* kmsg_path, non-blocking reads driven by uv_poll; interval kmsg_ms; KERNEL_EVENTS. */
extern const struct rsre_collector_desc rsre_collector_kmsg;
/* proc_root/pressure/{cpu,memory,io}; interval psi_ms; PRESSURE_STALL. */
extern const struct rsre_collector_desc rsre_collector_psi;

/* Copies the kmsg collector's counters; returns RSRE_ENOTFOUND (zeros) when it is not running.
 * Reads the collector's static state pointer: call on the loop thread. */
int rsre_kmsg_collector_stats(struct rsre_agent *a, struct rsre_kmsg_stats *out);

#endif
