/*
 * Tests of the /dev/kmsg reader (agent/kmsg.h, agent/col_kmsg.c): record parsing with
 * continuation lines, splitting a byte stream into records, one message per row of the pattern
 * table, the public-log samples in tests/data/kmsg with the exact events each must produce,
 * OOM de-duplication, the per-kind rate limit with exact emitted/suppressed counts, sequence
 * gaps, message bounds, the KernelEvent signal (validated by the protocol validator) and
 * garbage. The collector row runs on a real libuv loop against a regular file and, when the
 * test may open it, the real /dev/kmsg.
 *
 * The collector test replaces the agent core with a link-time double: this file defines the
 * five agent functions col_kmsg.c calls (rsre_agent_config, rsre_agent_loop, rsre_agent_emit,
 * rsre_collect_done, rsre_now_unix_ms), so agent.o is never pulled from the static library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/kmsg.h"
#include "common/error.h"
#include "common/pbuf.h"

/* ---- the agent double ------------------------------------------------------------------------ */

#define MAX_CAPTURED 64

static struct rsre_agent_config g_cfg;
static uv_loop_t *g_loop;
static struct {
    int kind;
    uint32_t suppressed;
    char subject[128];
} g_events[MAX_CAPTURED];
static size_t g_nevents;
static int g_done_calls, g_done_rc;

const struct rsre_agent_config *rsre_agent_config(struct rsre_agent *a) {
    (void)a;
    return &g_cfg;
}

uv_loop_t *rsre_agent_loop(struct rsre_agent *a) {
    (void)a;
    return g_loop;
}

int64_t rsre_now_unix_ms(void) {
    return 1700000000000;
}

int rsre_agent_emit(struct rsre_agent *a, const rsre_signal *s) {
    (void)a;
    RobotSre__Agent__V1__Signal copy = *s;
    copy.observed_unix_ms = rsre_now_unix_ms();
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&copy.base, err, sizeof(err)) != 0) {
        fail_msg("emitted an invalid signal: %s", err);
    }
    assert_int_equal(s->kind_case, ROBOT_SRE__AGENT__V1__SIGNAL__KIND_KERNEL_EVENT);
    if (g_nevents < MAX_CAPTURED) {
        g_events[g_nevents].kind = s->kernel_event->kind;
        g_events[g_nevents].suppressed = s->kernel_event->suppressed;
        snprintf(g_events[g_nevents].subject, sizeof(g_events[0].subject), "%s",
                 s->kernel_event->subject);
    }
    g_nevents++;
    return 0;
}

void rsre_collect_done(struct rsre_collect_run *run, int rc) {
    (void)run;
    g_done_calls++;
    g_done_rc = rc;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static char *read_file(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof(path), RSRE_TEST_DATA "/kmsg/%s", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

struct expect {
    int kind;
    const char *subject;
};

/* Feeds every record of a data file through a fresh state and checks the events in order. */
static void check_file(const char *name, uint32_t rate, const struct expect *want, size_t nwant,
                       struct rsre_kmsg_stats *stats_out) {
    size_t len;
    char *buf = read_file(name, &len);
    struct rsre_kmsg_state st;
    rsre_kmsg_state_init(&st, rate);
    struct rsre_kmsg_event *ev = malloc(sizeof(*ev));
    assert_non_null(ev);
    size_t off = 0, rl, got = 0;
    while (rsre_kmsg_next_record(buf + off, len - off, 1, &rl)) {
        int rc = rsre_kmsg_process(&st, buf + off, rl, ev);
        if (rc == 1) {
            if (got >= nwant) {
                fail_msg("%s: unexpected event kind=%d subject='%s' message='%s'", name, ev->kind,
                         ev->subject, ev->message);
            }
            if (ev->kind != want[got].kind || strcmp(ev->subject, want[got].subject) != 0) {
                fail_msg("%s: event %zu is kind=%d subject='%s', want kind=%d subject='%s'", name,
                         got, ev->kind, ev->subject, want[got].kind, want[got].subject);
            }
            got++;
        }
        off += rl;
    }
    assert_int_equal(off, len);
    if (got != nwant) {
        fail_msg("%s: %zu events, want %zu", name, got, nwant);
    }
    if (stats_out) {
        *stats_out = st.stats;
    }
    free(ev);
    free(buf);
}

/* ---- records -------------------------------------------------------------------------------- */

static void test_parse_record(void **state) {
    (void)state;
    struct rsre_kmsg_record r;
    const char *a = "6,339,5140900,-;NET: Registered protocol family 10\n";
    assert_int_equal(rsre_kmsg_parse_record(a, strlen(a), &r), 0);
    assert_int_equal(r.priority, 6);
    assert_int_equal(r.facility, 0);
    assert_int_equal(r.seq, 339);
    assert_int_equal(r.usec, 5140900);
    assert_int_equal(r.flag, '-');
    assert_int_equal(r.msg_len, strlen("NET: Registered protocol family 10"));
    assert_memory_equal(r.msg, "NET: Registered protocol family 10", r.msg_len);
    assert_int_equal(r.dict_len, 0);

    /* Continuation lines, no trailing newline, a fragment flag, extra header fields. */
    const char *b = "3,2008,33713705845,c,caller=T12;blk_update_request: critical medium error\n"
                    " SUBSYSTEM=block\n DEVICE=b8:16";
    assert_int_equal(rsre_kmsg_parse_record(b, strlen(b), &r), 0);
    assert_int_equal(r.flag, 'c');
    assert_int_equal(r.seq, 2008);
    assert_memory_equal(r.msg, "blk_update_request: critical medium error", r.msg_len);
    assert_int_equal(r.dict_len, strlen(" SUBSYSTEM=block\n DEVICE=b8:16"));
    assert_memory_equal(r.dict, " SUBSYSTEM=block\n DEVICE=b8:16", r.dict_len);

    /* Facility and level from the prio field; an empty message is a record. */
    const char *c = "30,1,2,-;";
    assert_int_equal(rsre_kmsg_parse_record(c, strlen(c), &r), 0);
    assert_int_equal(r.facility, 3);
    assert_int_equal(r.priority, 6);
    assert_int_equal(r.msg_len, 0);
    /* ';' inside the message is message text. */
    const char *d = "6,1,2,-;a;b\n";
    assert_int_equal(rsre_kmsg_parse_record(d, strlen(d), &r), 0);
    assert_memory_equal(r.msg, "a;b", 3);

    static const char *const bad[] = {
        "",
        "\n",
        "6,1,2,-\n",   /* no ';' */
        "6,1,2,-\n;x", /* ';' only after the first line */
        "6,1,2,-;msg\nnot a continuation\n",
        "6,1,2,-;msg\n KEY=v\nX\n",
        "6,1;x",
        "6,1,2;x",
        ",1,2,-;x",
        "6,,2,-;x",
        "6,1,,-;x",
        "6,1,2,;x",
        "a,1,2,-;x",
        "1024,1,2,-;x",
        "6,123456789012345678901,2,-;x",
        "6,18446744073709551616,2,-;x",
        "+6,1,2,-;x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rsre_kmsg_parse_record(bad[i], strlen(bad[i]), &r) != RSRE_EPARSE) {
            fail_msg("accepted '%s'", bad[i]);
        }
    }
    char nul[] = "6,1,2,-;a\0b";
    assert_int_equal(rsre_kmsg_parse_record(nul, sizeof(nul) - 1, &r), RSRE_EPARSE);
    char *huge = malloc(RSRE_KMSG_MAX_RECORD + 2);
    assert_non_null(huge);
    memset(huge, 'x', RSRE_KMSG_MAX_RECORD + 1);
    memcpy(huge, "6,1,2,-;", 8);
    assert_int_equal(rsre_kmsg_parse_record(huge, RSRE_KMSG_MAX_RECORD + 1, &r), RSRE_EPARSE);
    assert_int_equal(rsre_kmsg_parse_record(huge, RSRE_KMSG_MAX_RECORD, &r), 0);
    free(huge);
    assert_int_equal(rsre_kmsg_parse_record(NULL, 5, &r), RSRE_EPARSE);
}

static void test_next_record(void **state) {
    (void)state;
    const char *s = "6,1,1,-;one\n KEY=a\n KEY=b\n6,2,2,-;two\n6,3,3,-;three";
    size_t len = strlen(s), rl;
    assert_int_equal(rsre_kmsg_next_record(s, len, 0, &rl), 1);
    assert_int_equal(rl, strlen("6,1,1,-;one\n KEY=a\n KEY=b\n"));
    size_t off = rl;
    assert_int_equal(rsre_kmsg_next_record(s + off, len - off, 0, &rl), 1);
    assert_int_equal(rl, strlen("6,2,2,-;two\n"));
    off += rl;
    /* The last line has no newline: incomplete unless at the end. */
    assert_int_equal(rsre_kmsg_next_record(s + off, len - off, 0, &rl), 0);
    assert_int_equal(rsre_kmsg_next_record(s + off, len - off, 1, &rl), 1);
    assert_int_equal(rl, len - off);
    /* A complete line at the end of the buffer may still get continuation lines. */
    const char *t = "6,1,1,-;one\n";
    assert_int_equal(rsre_kmsg_next_record(t, strlen(t), 0, &rl), 0);
    assert_int_equal(rsre_kmsg_next_record(t, strlen(t), 1, &rl), 1);
    const char *u = "6,1,1,-;one\n KEY=partial";
    assert_int_equal(rsre_kmsg_next_record(u, strlen(u), 0, &rl), 0);
    assert_int_equal(rsre_kmsg_next_record(u, strlen(u), 1, &rl), 1);
    assert_int_equal(rl, strlen(u));
    /* A leading continuation line is a record of its own (and does not parse). */
    const char *v = " ORPHAN=1\n6,1,1,-;x\n";
    assert_int_equal(rsre_kmsg_next_record(v, strlen(v), 1, &rl), 1);
    assert_int_equal(rl, strlen(" ORPHAN=1\n"));
    assert_int_equal(rsre_kmsg_next_record("", 0, 1, &rl), 0);
}

/* One message per row of the pattern table, in table order: each must hit its own row. */
static const struct {
    const char *msg;
    int kind;
    const char *subject;
} rows[] = {
    {"Out of memory: Killed process 15784 (python3) total-vm:11964kB, anon-rss:4288kB",
     RSRE_KMSG_OOM_KILL, "python3[15784]"},
    {"Memory cgroup out of memory: Killed process 63214 (uwsgi) total-vm:3149468kB",
     RSRE_KMSG_OOM_KILL, "uwsgi[63214]"},
    {"Out of memory (oom_kill_allocating_task): Killed process 4243 (stress) total-vm:1kB",
     RSRE_KMSG_OOM_KILL, "stress[4243]"},
    {"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=x,mems_allowed=0,"
     "oom_memcg=/kubepods,task_memcg=/kubepods/pod1,task=java,pid=28438,uid=1000",
     RSRE_KMSG_OOM_KILL, "java[28438]"},
    {"overlayfs: failed to write upper inode (dev sdc1): No space left on device",
     RSRE_KMSG_NO_SPACE, "sdc1"},
    {"EXT4-fs (dm-0): Delayed block allocation failed for inode 2236419 at logical offset 0 "
     "with max blocks 1 with error 28",
     RSRE_KMSG_NO_SPACE, "dm-0"},
    {"EXT4-fs warning (device dm-4): ext4_end_bio:314: I/O error -28 writing to inode 528049",
     RSRE_KMSG_NO_SPACE, "dm-4"},
    {"BTRFS: error (device nvme0n1p3) in btrfs_commit_transaction:2418: errno=-28 No space left",
     RSRE_KMSG_NO_SPACE, "nvme0n1p3"},
    {"blk_update_request: critical space allocation error, dev dm-3, sector 81920",
     RSRE_KMSG_NO_SPACE, "dm-3"},
    {"EXT4-fs error (device sda): ext4_find_entry:1437: inode #12582913: comm bitcoind",
     RSRE_KMSG_FS_ERROR, "sda"},
    {"EXT4-fs (loop1): Delayed block allocation failed for inode 2215 at logical offset 1610 "
     "with max blocks 1 with error 117",
     RSRE_KMSG_FS_ERROR, "loop1"},
    {"BTRFS: error (device sdb) in __btrfs_free_extent:3072: errno=-2 No such entry",
     RSRE_KMSG_FS_ERROR, "sdb"},
    {"EXT3-fs error (device sdc1): ext3_lookup: deleted inode referenced: 1234", RSRE_KMSG_FS_ERROR,
     "sdc1"},
    {"XFS (vda4): Metadata corruption detected at xfs_buf_ioend+0x162/0x570 [xfs]",
     RSRE_KMSG_FS_ERROR, "vda4"},
    {"XFS (dm-0): Log I/O Error Detected. Shutting down filesystem", RSRE_KMSG_FS_ERROR, "dm-0"},
    {"EXT4-fs (dm-25): Remounting filesystem read-only", RSRE_KMSG_FS_ERROR, "dm-25"},
    {"Aborting journal on device loop1-8.", RSRE_KMSG_FS_ERROR, "loop1-8"},
    {"Buffer I/O error on dev sdb, logical block 640, lost async page write", RSRE_KMSG_FS_ERROR,
     "sdb"},
    {"blk_update_request: critical medium error, dev sdb, sector 5120", RSRE_KMSG_FS_ERROR, "sdb"},
    {"blk_update_request: critical target error, dev sdd, sector 2048", RSRE_KMSG_FS_ERROR, "sdd"},
    {"INFO: task kworker/2:1:5747 blocked for more than 120 seconds.", RSRE_KMSG_HUNG_TASK,
     "kworker/2:1:5747"},
};

static void test_every_pattern(void **state) {
    (void)state;
    size_t n = sizeof(rows) / sizeof(rows[0]);
    assert_int_equal(n, rsre_kmsg_pattern_count());
    for (size_t i = 0; i < n; i++) {
        char subject[RSRE_KMSG_MAX_SUBJECT + 1];
        int dedupe, kind_of_row;
        int row = rsre_kmsg_match_row(rows[i].msg, strlen(rows[i].msg));
        if (row != (int)i) {
            fail_msg("row %zu ('%s') matched row %d", i, rsre_kmsg_pattern_needle(i, NULL), row);
        }
        int kind =
            rsre_kmsg_classify(rows[i].msg, strlen(rows[i].msg), subject, sizeof(subject), &dedupe);
        assert_non_null(rsre_kmsg_pattern_needle(i, &kind_of_row));
        assert_int_equal(kind, rows[i].kind);
        assert_int_equal(kind, kind_of_row);
        assert_string_equal(subject, rows[i].subject);
        assert_int_equal(dedupe, kind == RSRE_KMSG_OOM_KILL);
    }
    assert_null(rsre_kmsg_pattern_needle(n, NULL));
    /* Near misses. */
    static const char *const no[] = {
        "uwsgi invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=986",
        "oom_reaper: reaped process 63214 (uwsgi), now anon-rss:0kB",
        "XFS (sda2): Mounting V5 Filesystem",
        "EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode",
        "EXT4-fs warning (device vdb): __ext4_read_dirblock:902: error reading directory block",
        "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
        "",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        char subject[64];
        int dedupe;
        if (rsre_kmsg_classify(no[i], strlen(no[i]), subject, sizeof(subject), &dedupe) != 0) {
            fail_msg("matched '%s'", no[i]);
        }
    }
    /* Subjects are bounded and clean; extractors tolerate truncated text. */
    char small[6];
    int dedupe;
    const char *m = "EXT4-fs error (device nvme0n1p1): x";
    assert_int_equal(rsre_kmsg_classify(m, strlen(m), small, sizeof(small), &dedupe),
                     RSRE_KMSG_FS_ERROR);
    assert_string_equal(small, "nvme0");
    static const char *const cut[] = {
        "Out of memory: Killed process ",
        "Out of memory: Killed process 12",
        "Out of memory: Killed process 12 (",
        "oom-kill:task=",
        "INFO: task blocked for more than",
        "EXT4-fs error (device ",
        "I/O error, dev ",
    };
    for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        char subject[64];
        assert_true(rsre_kmsg_classify(cut[i], strlen(cut[i]), subject, sizeof(subject), &dedupe) >
                    0);
        assert_true(strlen(subject) < sizeof(subject));
    }
}

static void test_data_files(void **state) {
    (void)state;
    static const struct expect oom[] = {
        {RSRE_KMSG_OOM_KILL, "uwsgi[63214]"},      {RSRE_KMSG_OOM_KILL, "python3[15784]"},
        {RSRE_KMSG_OOM_KILL, "(resolved)[15925]"}, {RSRE_KMSG_OOM_KILL, "stress[4242]"},
        {RSRE_KMSG_OOM_KILL, "stress[4243]"},
    };
    struct rsre_kmsg_stats s;
    check_file("oom.txt", 0, oom, 5, &s);
    assert_int_equal(s.records, 10);
    assert_int_equal(s.merged, 1); /* oom-kill: + Killed process of the same uwsgi kill */
    assert_int_equal(s.matched, 5);
    assert_int_equal(s.parse_errors, 0);

    static const struct expect fs[] = {
        {RSRE_KMSG_FS_ERROR, "sda"},   {RSRE_KMSG_FS_ERROR, "dm-25"},
        {RSRE_KMSG_FS_ERROR, "dm-25"}, {RSRE_KMSG_FS_ERROR, "loop1-8"},
        {RSRE_KMSG_FS_ERROR, "vda4"},  {RSRE_KMSG_FS_ERROR, "sdb1"},
        {RSRE_KMSG_FS_ERROR, "sdb"},   {RSRE_KMSG_FS_ERROR, "sdb"},
        {RSRE_KMSG_FS_ERROR, "dm-4"},  {RSRE_KMSG_FS_ERROR, "cas1-1"},
        {RSRE_KMSG_FS_ERROR, "loop1"},
    };
    check_file("fs-errors.txt", 0, fs, 11, &s);
    assert_int_equal(s.records, 13);
    assert_int_equal(s.merged, 0); /* filesystem rows are never merged */

    static const struct expect nospc[] = {
        {RSRE_KMSG_NO_SPACE, "dm-4"},
        {RSRE_KMSG_NO_SPACE, "dm-0"},
        {RSRE_KMSG_NO_SPACE, "nvme0n1p3"},
        {RSRE_KMSG_NO_SPACE, "sdc1"},
    };
    check_file("no-space.txt", 0, nospc, 4, NULL);

    static const struct expect hung[] = {
        {RSRE_KMSG_HUNG_TASK, "kworker/2:1:5747"},
        {RSRE_KMSG_HUNG_TASK, "ntpd:11794"},
        {RSRE_KMSG_HUNG_TASK, "jbd2/vblkdev3-8:722"},
    };
    check_file("hung-task.txt", 0, hung, 3, NULL);

    check_file("noise.txt", 0, NULL, 0, &s);
    assert_int_equal(s.records, 11);
    assert_int_equal(s.parse_errors, 0);
    assert_int_equal(s.matched, 0); /* the user-space OOM imitation (facility 1) is ignored */

    check_file("garbage.txt", 0, NULL, 0, &s);
    assert_int_equal(s.records, 0);
    assert_int_equal(s.parse_errors, 11);
}

/* Builds a kernel record "3,<seq>,<usec>,-;<msg>" into buf. */
static size_t rec(char *buf, size_t cap, uint64_t seq, uint64_t usec, const char *msg) {
    int n = snprintf(buf, cap, "3,%llu,%llu,-;%s\n", (unsigned long long)seq,
                     (unsigned long long)usec, msg);
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void test_rate_limit(void **state) {
    (void)state;
    struct rsre_kmsg_state st;
    rsre_kmsg_state_init(&st, 3);
    struct rsre_kmsg_event *ev = malloc(sizeof(*ev));
    assert_non_null(ev);
    char buf[256], msg[128];
    uint64_t seq = 1;
    const uint64_t t0 = 1000000000; /* kmsg time, usec */
    int emitted = 0;
    /* 10 distinct OOM kills at the same instant: 3 pass, 7 are suppressed. */
    for (int i = 0; i < 10; i++) {
        snprintf(msg, sizeof(msg), "Out of memory: Killed process %d (worker) total-vm:1kB",
                 1000 + i);
        size_t n = rec(buf, sizeof(buf), seq++, t0, msg);
        int rc = rsre_kmsg_process(&st, buf, n, ev);
        assert_true(rc == 0 || rc == 1);
        emitted += rc;
        if (rc == 1) {
            assert_int_equal(ev->suppressed, 0);
        }
    }
    assert_int_equal(emitted, 3);
    assert_int_equal(st.stats.suppressed, 7);
    /* Another kind is not affected. */
    size_t n = rec(buf, sizeof(buf), seq++, t0, "EXT4-fs error (device sda1): x");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    assert_int_equal(ev->suppressed, 0);
    /* 19.999 s later: not yet one token (3 per minute = one per 20 s). */
    n = rec(buf, sizeof(buf), seq++, t0 + 19999000, "Out of memory: Killed process 2000 (w)");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 0);
    assert_int_equal(st.stats.suppressed, 8);
    /* 20 s after t0: one token; the event carries the 8 suppressed since the last one. */
    n = rec(buf, sizeof(buf), seq++, t0 + 20000000, "Out of memory: Killed process 2001 (w)");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    assert_int_equal(ev->suppressed, 8);
    assert_string_equal(ev->subject, "w[2001]");
    n = rec(buf, sizeof(buf), seq++, t0 + 20000001, "Out of memory: Killed process 2002 (w)");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 0);
    /* Ten minutes later the bucket is full again, but never more than 3. */
    emitted = 0;
    uint32_t carried = 0;
    for (int i = 0; i < 6; i++) {
        snprintf(msg, sizeof(msg), "Out of memory: Killed process %d (z)", 3000 + i);
        n = rec(buf, sizeof(buf), seq++, t0 + 620000000, msg);
        int rc = rsre_kmsg_process(&st, buf, n, ev);
        if (rc == 1) {
            carried += ev->suppressed;
        }
        emitted += rc;
    }
    assert_int_equal(emitted, 3);
    assert_int_equal(carried, 1); /* the one suppressed at t0+20.000001 s */
    assert_int_equal(st.stats.emitted, 1 + 3 + 1 + 3);
    assert_int_equal(st.stats.suppressed, 7 + 1 + 1 + 3);
    /* Time going backwards does not refill. */
    n = rec(buf, sizeof(buf), seq++, t0, "Out of memory: Killed process 9 (b)");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 0);

    /* Rate 0 = unlimited. */
    rsre_kmsg_state_init(&st, 0);
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof(msg), "INFO: task t:%d blocked for more than 120 seconds.", i);
        n = rec(buf, sizeof(buf), (uint64_t)i + 1, t0, msg);
        assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    }
    free(ev);
}

static void test_dedupe_and_gaps(void **state) {
    (void)state;
    struct rsre_kmsg_state st;
    rsre_kmsg_state_init(&st, 0);
    struct rsre_kmsg_event *ev = malloc(sizeof(*ev));
    assert_non_null(ev);
    char buf[512];
    const char *kill = "oom-kill:constraint=CONSTRAINT_MEMCG,task=app,pid=77,uid=0";
    const char *killed = "Memory cgroup out of memory: Killed process 77 (app) total-vm:1kB";
    size_t n = rec(buf, sizeof(buf), 10, 5000000, kill);
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    assert_int_equal(ev->seq, 10);
    assert_int_equal(ev->usec, 5000000);
    assert_int_equal(ev->priority, 3);
    n = rec(buf, sizeof(buf), 11, 5000900, killed); /* same kill: merged */
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 0);
    assert_int_equal(st.stats.merged, 1);
    /* The same pid two seconds later is a new event (pids are reused). */
    n = rec(buf, sizeof(buf), 12, 7000901, killed);
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    /* Filesystem errors on one device are never merged (they are rate-limited instead). */
    n = rec(buf, sizeof(buf), 13, 7000902, "EXT4-fs error (device sda1): a");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    n = rec(buf, sizeof(buf), 14, 7000903, "EXT4-fs error (device sda1): a");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    /* Sequence gaps count records the kernel overwrote before we read them. */
    n = rec(buf, sizeof(buf), 20, 7000904, "nothing");
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 0);
    assert_int_equal(st.stats.lost, 5);
    n = rec(buf, sizeof(buf), 3, 7000905, "nothing"); /* going back (reset): not a loss */
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 0);
    assert_int_equal(st.stats.lost, 5);
    free(ev);
}

static void test_message_bounds(void **state) {
    (void)state;
    struct rsre_kmsg_state st;
    rsre_kmsg_state_init(&st, 0);
    struct rsre_kmsg_event *ev = malloc(sizeof(*ev));
    assert_non_null(ev);
    /* A 6000-byte message with control and high bytes: cut to 4096 printable bytes. */
    size_t cap = 7000;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = (size_t)snprintf(buf, cap, "3,1,1,-;EXT4-fs error (device sd\x01\xff): ");
    while (n < 6000) {
        buf[n] = (char)(n % 3 ? 'a' : 0x7f);
        n++;
    }
    buf[n++] = '\n';
    assert_int_equal(rsre_kmsg_process(&st, buf, n, ev), 1);
    assert_int_equal(strlen(ev->message), RSRE_KMSG_MAX_MESSAGE);
    for (size_t i = 0; ev->message[i]; i++) {
        unsigned char c = (unsigned char)ev->message[i];
        assert_true(c >= 0x20 && c < 0x7f);
    }
    assert_string_equal(ev->subject, "sd"); /* stops at the control character */
    struct rsre_kmsg_signal sig;
    RobotSre__Agent__V1__Signal *s = rsre_kmsg_build_signal(ev, 1, &sig);
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(&s->base, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(s->kernel_event->kind,
                     ROBOT_SRE__AGENT__V1__KERNEL_EVENT_KIND__KERNEL_EVENT_KIND_FS_ERROR);
    assert_int_equal(s->kernel_event->monotonic_usec, 1);
    free(buf);
    free(ev);
}

/* ---- the collector -------------------------------------------------------------------------- */

static void append(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void reset_capture(void) {
    g_nevents = 0;
    g_done_calls = 0;
    g_done_rc = 1;
}

static void test_collector_file(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    g_loop = &loop;
    memset(&g_cfg, 0, sizeof(g_cfg));
    char path[] = "/tmp/rsre-kmsg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* Old records before start: skipped (the reader starts at the end). */
    const char *old = "3,1,100,-;Out of memory: Killed process 1 (old) total-vm:1kB\n";
    assert_int_equal(write(fd, old, strlen(old)), (ssize_t)strlen(old));
    close(fd);
    snprintf(g_cfg.kmsg_path, sizeof(g_cfg.kmsg_path), "%s", path);
    g_cfg.kmsg_rate_per_min = 2;
    reset_capture();
    void *st = NULL;
    assert_int_equal(rsre_collector_kmsg.init((struct rsre_agent *)&g_cfg, &st), 0);
    assert_non_null(st);
    /* A second instance is refused while one runs. */
    void *st2 = NULL;
    assert_int_equal(rsre_collector_kmsg.init((struct rsre_agent *)&g_cfg, &st2), -EBUSY);

    append(path, "3,2,200,-;Out of memory: Killed process 10 (a) total-vm:1kB\n"
                 "3,3,300,-;Out of memory: Killed process 11 (b) total-vm:1kB\n"
                 "3,4,400,-;Out of memory: Killed process 12 (c) total-vm:1kB\n"
                 "2,5,500,-;EXT4-fs error (device sda1): ext4_find_entry:1437: inode #2\n"
                 "garbage\n"
                 "3,6,600,-;blk_update_request: I/O error, dev sdb, sector 8\n"
                 " SUBSYSTEM=block\n");
    rsre_collector_kmsg.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_done_calls, 1);
    assert_int_equal(g_done_rc, 0);
    /* The last record may still get continuation lines: it waits for the next line or for a
     * newline-terminated end of file, which is what we have, so it is handled. */
    assert_int_equal(g_nevents, 4);
    assert_string_equal(g_events[0].subject, "a[10]");
    assert_string_equal(g_events[1].subject, "b[11]");
    assert_int_equal(g_events[2].kind, RSRE_KMSG_FS_ERROR);
    assert_int_equal(g_events[3].kind, RSRE_KMSG_FS_ERROR);
    assert_string_equal(g_events[3].subject, "sdb");
    struct rsre_kmsg_stats s;
    assert_int_equal(rsre_kmsg_collector_stats(NULL, &s), 0);
    assert_int_equal(s.suppressed, 1);
    assert_int_equal(s.parse_errors, 1);
    assert_int_equal(s.records, 5);

    /* A record written in two pieces is handled once complete. */
    append(path, "3,7,60000400,-;Out of memory: Killed process 13 (d)");
    rsre_collector_kmsg.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_nevents, 4);
    append(path, " total-vm:1kB\n");
    rsre_collector_kmsg.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_nevents, 5);
    assert_string_equal(g_events[4].subject, "d[13]");
    assert_int_equal(g_events[4].suppressed, 1);

    rsre_collector_kmsg.destroy(st);
    assert_int_equal(rsre_kmsg_collector_stats(NULL, &s), RSRE_ENOTFOUND);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(path);

    /* Missing path: disabled (init fails), nothing leaks. */
    snprintf(g_cfg.kmsg_path, sizeof(g_cfg.kmsg_path), "/nonexistent/kmsg");
    assert_int_equal(rsre_collector_kmsg.init((struct rsre_agent *)&g_cfg, &st2), -ENOENT);
    g_cfg.kmsg_path[0] = '\0';
    assert_int_equal(rsre_collector_kmsg.init((struct rsre_agent *)&g_cfg, &st2), RSRE_ENOTFOUND);
    snprintf(g_cfg.kmsg_path, sizeof(g_cfg.kmsg_path), "/tmp");
    assert_int_equal(rsre_collector_kmsg.init((struct rsre_agent *)&g_cfg, &st2), -EINVAL);
}

static void on_tick(uv_timer_t *t) {
    uv_stop(t->loop);
}

/* The real device: open, seek to the end, poll, read one record per read(). A record written
 * from user space gets facility 1 (the kernel never lets user space log as the kernel), so it
 * is read and counted but never reported, even when its text looks like an OOM kill. */
static void test_collector_real_kmsg(void **state) {
    (void)state;
    int probe = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
    int wfd = open("/dev/kmsg", O_WRONLY);
    if (probe < 0 || wfd < 0) {
        if (probe >= 0) {
            close(probe);
        }
        if (wfd >= 0) {
            close(wfd);
        }
        skip();
    }
    close(probe);
    uv_loop_t loop;
    uv_loop_init(&loop);
    g_loop = &loop;
    memset(&g_cfg, 0, sizeof(g_cfg));
    snprintf(g_cfg.kmsg_path, sizeof(g_cfg.kmsg_path), "/dev/kmsg");
    g_cfg.kmsg_rate_per_min = 10;
    reset_capture();
    void *st = NULL;
    assert_int_equal(rsre_collector_kmsg.init((struct rsre_agent *)&g_cfg, &st), 0);
    struct rsre_kmsg_stats before;
    rsre_kmsg_collector_stats(NULL, &before);
    const char *line = "<3>robot-sre test_kmsg probe: Out of memory: Killed process 1 (probe)\n";
    assert_int_equal(write(wfd, line, strlen(line)), (ssize_t)strlen(line));
    close(wfd);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_tick, 200, 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* the poll callback drains while we wait */
    rsre_collector_kmsg.collect((struct rsre_agent *)&g_cfg, st, NULL);
    assert_int_equal(g_done_rc, 0);
    struct rsre_kmsg_stats after;
    rsre_kmsg_collector_stats(NULL, &after);
    assert_true(after.records >= before.records + 1);
    assert_int_equal(after.parse_errors, 0);
    assert_int_equal(g_nevents, 0);
    uv_close((uv_handle_t *)&t, NULL);
    rsre_collector_kmsg.destroy(st);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_record),        cmocka_unit_test(test_next_record),
        cmocka_unit_test(test_every_pattern),       cmocka_unit_test(test_data_files),
        cmocka_unit_test(test_rate_limit),          cmocka_unit_test(test_dedupe_and_gaps),
        cmocka_unit_test(test_message_bounds),      cmocka_unit_test(test_collector_file),
        cmocka_unit_test(test_collector_real_kmsg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
