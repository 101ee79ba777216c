/*
 * Unit tests of the agent's spool (agent/spool.h): memory bounds, drop order and exact drop
 * counters, ack semantics across boots, ids and index_after, the disk mirror (round trip,
 * persisted acks/drops/counters, compaction bound, torn tail, corrupt record, corrupt header,
 * garbage, empty file, smaller capacity at reopen), huge entries and argument checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/spool.h"
#include "common/error.h"
#include "common/log.h"

#define BOOT_A "0b8f3c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c"
#define BOOT_B "7c2d4e6f-1a3b-4c5d-9e8f-0a1b2c3d4e5f"
#define OVH RSRE_SPOOL_RECORD_OVERHEAD

static char tmpdir[128];
static char spooldir[192];
static char spoolfile[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rsre-spool-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return -1;
    }
    snprintf(spooldir, sizeof(spooldir), "%s/spool", tmpdir);
    snprintf(spoolfile, sizeof(spoolfile), "%s/%s", spooldir, RSRE_SPOOL_FILE);
    return 0;
}

/* Every test starts without a spool file. */
static int fresh(void **state) {
    (void)state;
    char p[300];
    unlink(spoolfile);
    snprintf(p, sizeof(p), "%s.corrupt", spoolfile);
    unlink(p);
    snprintf(p, sizeof(p), "%s.tmp", spoolfile);
    unlink(p);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A message whose bytes are a function of (seq, len). */
static void fill(uint8_t *b, size_t len, uint64_t seq) {
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)(seq * 131 + i * 7);
    }
}

static int push(struct rsre_spool *s, const char *boot, uint64_t seq, uint32_t nsig, size_t len) {
    uint8_t buf[4096];
    assert_true(len <= sizeof(buf));
    fill(buf, len, seq);
    return rsre_spool_push(s, boot, seq, nsig, buf, len);
}

static void check_entry(const struct rsre_spool *s, size_t i, const char *boot, uint64_t seq,
                        size_t len) {
    struct rsre_spool_entry e;
    assert_int_equal(rsre_spool_entry(s, i, &e), 0);
    assert_string_equal(e.boot_id, boot);
    assert_int_equal(e.seq, seq);
    assert_int_equal(e.len, len);
    uint8_t want[4096];
    fill(want, len, seq);
    assert_memory_equal(e.msg, want, len);
}

static off_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- memory --------------------------------------------------------------------------------- */

static void test_memory_bounds_and_drop_order(void **state) {
    (void)state;
    struct rsre_spool *s;
    /* Room for exactly 10 entries of 100 bytes. */
    assert_int_equal(rsre_spool_open(NULL, 10 * (100 + OVH), 0, &s), 0);
    for (uint64_t seq = 1; seq <= 10; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, (uint32_t)seq, 100), 0);
    }
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 10);
    assert_int_equal(st.bytes, 10 * (100 + OVH));
    assert_int_equal(st.dropped_batches, 0);
    /* Three more: seq 1, 2, 3 go, oldest first, with their signal counts. */
    for (uint64_t seq = 11; seq <= 13; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, (uint32_t)seq, 100), 0);
    }
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 10);
    assert_int_equal(st.dropped_batches, 3);
    assert_int_equal(st.dropped_signals, 1 + 2 + 3);
    assert_int_equal(st.first_unacked_seq, 4);
    assert_int_equal(st.last_seq, 13);
    for (size_t i = 0; i < 10; i++) {
        check_entry(s, i, BOOT_A, 4 + i, 100);
    }
    /* A bigger entry drops as many old ones as it needs (here 3: 4, 5, 6). */
    assert_int_equal(push(s, BOOT_A, 14, 50, 300), 0);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.dropped_batches, 6);
    assert_int_equal(st.dropped_signals, 6 + 4 + 5 + 6);
    assert_int_equal(st.first_unacked_seq, 7);
    assert_true(st.bytes <= st.capacity_bytes);
    assert_int_equal(rsre_spool_count(s), 8);
    rsre_spool_close(s);
}

static void test_huge_entry(void **state) {
    (void)state;
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(NULL, 1000, 0, &s), 0);
    assert_int_equal(push(s, BOOT_A, 1, 2, 100), 0);
    /* Larger than the whole bound: dropped itself, counted, nothing else touched. */
    assert_int_equal(push(s, BOOT_A, 2, 7, 1000), RSRE_ELIMIT);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.dropped_batches, 1);
    assert_int_equal(st.dropped_signals, 7);
    assert_int_equal(st.last_seq, 2); /* the seq is used: the aggregator sees the gap */
    /* Exactly the bound fits. */
    assert_int_equal(push(s, BOOT_A, 3, 1, 1000 - OVH), 0);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.dropped_batches, 2);
    assert_int_equal(st.dropped_signals, 9);
    check_entry(s, 0, BOOT_A, 3, 1000 - OVH);
    rsre_spool_close(s);
    /* Larger than a message may be, with room to spare: dropped and counted too. */
    assert_int_equal(rsre_spool_open(NULL, 4 * RSRE_SPOOL_MAX_MESSAGE, 0, &s), 0);
    uint8_t *big = calloc(1, RSRE_SPOOL_MAX_MESSAGE + 1);
    assert_int_equal(rsre_spool_push(s, BOOT_A, 1, 3, big, RSRE_SPOOL_MAX_MESSAGE + 1),
                     RSRE_ELIMIT);
    assert_int_equal(rsre_spool_push(s, BOOT_A, 2, 3, big, RSRE_SPOOL_MAX_MESSAGE), 0);
    free(big);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.dropped_batches, 1);
    assert_int_equal(st.dropped_signals, 3);
    rsre_spool_close(s);
}

static void test_argument_checks(void **state) {
    (void)state;
    struct rsre_spool *s = (void *)1;
    assert_int_equal(rsre_spool_open(NULL, 0, 0, &s), -EINVAL);
    assert_null(s);
    assert_int_equal(rsre_spool_open(NULL, 1000, 0, NULL), -EINVAL);
    assert_int_equal(rsre_spool_open("", 4096, 0, &s), 0); /* "" = memory only */
    assert_int_equal(push(s, BOOT_A, 0, 1, 10), -EINVAL);  /* seq 0 */
    assert_int_equal(push(s, "", 1, 1, 10), -EINVAL);
    assert_int_equal(push(s, BOOT_A "x", 1, 1, 10), -EINVAL); /* 37 bytes */
    assert_int_equal(rsre_spool_push(s, BOOT_A, 1, 1, NULL, 10), -EINVAL);
    assert_int_equal(push(s, BOOT_A, 5, 1, 10), 0);
    assert_int_equal(push(s, BOOT_A, 5, 1, 10), -EINVAL); /* not increasing */
    assert_int_equal(push(s, BOOT_A, 4, 1, 10), -EINVAL);
    assert_int_equal(push(s, BOOT_A, 7, 1, 0), 0); /* an empty message is allowed */
    assert_int_equal(rsre_spool_count(s), 2);
    assert_int_equal(rsre_spool_peek(s, 2, NULL, NULL, NULL, NULL), RSRE_ENOTFOUND);
    assert_int_equal(rsre_spool_entry(s, 9, NULL), RSRE_ENOTFOUND);
    const char *b;
    uint64_t seq;
    const uint8_t *m;
    size_t len;
    assert_int_equal(rsre_spool_peek(s, 1, &b, &seq, &m, &len), 0);
    assert_string_equal(b, BOOT_A);
    assert_int_equal(seq, 7);
    assert_int_equal(len, 0);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.file_bytes, 0);
    assert_false(st.restored);
    assert_int_equal(rsre_spool_sync(s), 0);
    rsre_spool_close(s);
    rsre_spool_close(NULL);
    assert_int_equal(rsre_spool_count(NULL), 0);
}

static void test_ack_semantics(void **state) {
    (void)state;
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(NULL, 1 << 20, 0, &s), 0);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 1, 10), 0);
    }
    for (uint64_t seq = 1; seq <= 3; seq++) {
        assert_int_equal(push(s, BOOT_B, seq, 1, 10), 0);
    }
    uint64_t last;
    assert_string_equal(rsre_spool_boot_id(s, &last), BOOT_B);
    assert_int_equal(last, 3);
    /* Cumulative, per boot. */
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 2), 2);
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 2), 0); /* again: nothing */
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 1), 0); /* lower: nothing */
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 0), 0);
    assert_int_equal(rsre_spool_ack(s, "ffffffff-ffff-4fff-8fff-ffffffffffff", 99), 0);
    assert_int_equal(rsre_spool_ack(s, BOOT_B, 2), 2); /* B's entries behind A's */
    assert_int_equal(rsre_spool_count(s), 4);
    check_entry(s, 0, BOOT_A, 3, 10);
    check_entry(s, 2, BOOT_A, 5, 10);
    check_entry(s, 3, BOOT_B, 3, 10);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.first_unacked_seq, 3);
    assert_int_equal(st.last_seq, 5);
    assert_int_equal(st.dropped_batches, 0); /* acks are not drops */
    rsre_spool_stats(s, NULL, &st);
    assert_int_equal(st.first_unacked_seq, 3);
    assert_int_equal(st.last_seq, 3);
    /* Beyond the last seq: everything of that boot. */
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 1000), 3);
    assert_int_equal(rsre_spool_count(s), 1);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.first_unacked_seq, 0);
    assert_int_equal(st.bytes, 10 + OVH);
    rsre_spool_close(s);
}

static void test_ids_and_index_after(void **state) {
    (void)state;
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(NULL, 5 * (10 + OVH), 0, &s), 0);
    assert_int_equal(rsre_spool_index_after(s, 0), 0);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 1, 10), 0);
    }
    struct rsre_spool_entry e0, e4;
    assert_int_equal(rsre_spool_entry(s, 0, &e0), 0);
    assert_int_equal(rsre_spool_entry(s, 4, &e4), 0);
    assert_true(e4.id > e0.id);
    uint64_t id2;
    struct rsre_spool_entry e;
    assert_int_equal(rsre_spool_entry(s, 2, &e), 0);
    id2 = e.id;
    assert_int_equal(rsre_spool_index_after(s, 0), 0);
    assert_int_equal(rsre_spool_index_after(s, id2), 3);
    assert_int_equal(rsre_spool_index_after(s, e4.id), 5);
    /* Drops and acks shift indexes, ids stay: "entries at or before id2" shrinks. */
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 1), 1);
    assert_int_equal(rsre_spool_index_after(s, id2), 2);
    assert_int_equal(push(s, BOOT_A, 6, 1, 10), 0);
    assert_int_equal(push(s, BOOT_A, 7, 1, 10), 0); /* drops seq 2 */
    assert_int_equal(rsre_spool_index_after(s, id2), 1);
    assert_int_equal(rsre_spool_entry(s, 4, &e), 0);
    assert_int_equal(e.seq, 7);
    assert_int_equal(rsre_spool_index_after(s, e.id), 5);
    rsre_spool_close(s);
}

/* Many pushes and acks: the queue array is reused (start offset), contents stay right. */
static void test_long_run(void **state) {
    (void)state;
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(NULL, 200 * (16 + OVH), 0, &s), 0);
    uint64_t acked = 0, dropped = 0;
    for (uint64_t seq = 1; seq <= 20000; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 1, 16), 0);
        if (seq % 7 == 0) {
            acked = seq - 3;
            rsre_spool_ack(s, BOOT_A, acked);
        }
    }
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    dropped = st.dropped_batches;
    assert_int_equal(dropped, 0);
    assert_int_equal(st.first_unacked_seq, acked + 1);
    for (size_t i = 0; i < rsre_spool_count(s); i++) {
        check_entry(s, i, BOOT_A, acked + 1 + i, 16);
    }
    rsre_spool_close(s);
}

/* ---- disk ----------------------------------------------------------------------------------- */

static void test_disk_round_trip(void **state) {
    (void)state;
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, NULL, &st);
    assert_false(st.restored);
    assert_null(rsre_spool_boot_id(s, NULL));
    assert_int_equal(st.file_bytes, RSRE_SPOOL_HEADER_BYTES);
    for (uint64_t seq = 1; seq <= 30; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, (uint32_t)(seq % 4 + 1), 50 + seq), 0);
    }
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 10), 10);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        assert_int_equal(push(s, BOOT_B, seq, 1, 20), 0);
    }
    assert_int_equal(rsre_spool_ack(s, BOOT_B, 2), 2);
    rsre_spool_stats(s, NULL, &st);
    assert_int_equal(st.file_bytes, file_size(spoolfile));
    rsre_spool_close(s);

    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_true(st.restored);
    assert_int_equal(st.batches, 23);
    assert_int_equal(st.first_unacked_seq, 11);
    assert_int_equal(st.last_seq, 30);
    uint64_t last;
    assert_string_equal(rsre_spool_boot_id(s, &last), BOOT_B);
    assert_int_equal(last, 5);
    for (size_t i = 0; i < 20; i++) {
        check_entry(s, i, BOOT_A, 11 + i, 50 + 11 + i);
    }
    for (size_t i = 0; i < 3; i++) {
        check_entry(s, 20 + i, BOOT_B, 3 + i, 20);
    }
    /* The sequence continues: seq 5 of B is taken. */
    assert_int_equal(push(s, BOOT_B, 5, 1, 20), -EINVAL);
    assert_int_equal(push(s, BOOT_B, 6, 1, 20), 0);
    /* The reopened file was rewritten: header + live records only. */
    rsre_spool_stats(s, NULL, &st);
    assert_int_equal(file_size(spoolfile), RSRE_SPOOL_HEADER_BYTES + st.bytes);
    rsre_spool_close(s);
}

/* Drop counters and the last seq survive a reopen, also when everything was acknowledged. */
static void test_disk_counters_persist(void **state) {
    (void)state;
    struct rsre_spool *s;
    size_t cap = 5 * (40 + OVH);
    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    for (uint64_t seq = 1; seq <= 12; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 3, 40), 0);
    }
    assert_int_equal(push(s, BOOT_A, 13, 9, 4000), RSRE_ELIMIT);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.dropped_batches, 8);
    assert_int_equal(st.dropped_signals, 7 * 3 + 9);
    rsre_spool_close(s);

    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.dropped_batches, 8);
    assert_int_equal(st.dropped_signals, 30);
    assert_int_equal(st.last_seq, 13);
    assert_int_equal(st.batches, 5);
    assert_int_equal(st.first_unacked_seq, 8);
    assert_int_equal(rsre_spool_ack(s, BOOT_A, 13), 5);
    rsre_spool_close(s);

    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    uint64_t last;
    assert_string_equal(rsre_spool_boot_id(s, &last), BOOT_A);
    assert_int_equal(last, 13);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 0);
    assert_int_equal(st.dropped_batches, 8);
    rsre_spool_close(s);
}

/* The file stays within 2 x capacity (+ header + one record) under steady pushes and acks,
 * and under pushes with no acks at all (drops). */
static void test_disk_compaction_bound(void **state) {
    (void)state;
    struct rsre_spool *s;
    size_t cap = 20 * (100 + OVH);
    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    off_t max = 0;
    for (uint64_t seq = 1; seq <= 3000; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 1, 100), 0);
        if (seq % 3 == 0 && seq < 1500) {
            rsre_spool_ack(s, BOOT_A, seq - 5);
        }
        off_t sz = file_size(spoolfile);
        if (sz > max) {
            max = sz;
        }
    }
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    assert_true((uint64_t)max <= 2 * cap + RSRE_SPOOL_HEADER_BYTES + 100 + OVH);
    assert_true(st.compactions > 10);
    assert_int_equal(st.file_bytes, file_size(spoolfile));
    uint64_t dropped = st.dropped_batches;
    rsre_spool_close(s);
    /* What is on disk is what was in memory. */
    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 20);
    assert_int_equal(st.dropped_batches, dropped);
    for (size_t i = 0; i < 20; i++) {
        check_entry(s, i, BOOT_A, 2981 + i, 100);
    }
    rsre_spool_close(s);
}

static void write_spool(size_t n) {
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    for (uint64_t seq = 1; seq <= n; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 2, 64), 0);
    }
    rsre_spool_close(s);
}

static void test_torn_tail(void **state) {
    (void)state;
    write_spool(10);
    off_t sz = file_size(spoolfile);
    assert_int_equal(sz, RSRE_SPOOL_HEADER_BYTES + 10 * (64 + OVH));
    /* Cut into the last record's message, then into a record header. */
    assert_int_equal(truncate(spoolfile, sz - 5), 0);
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    assert_int_equal(rsre_spool_count(s), 9);
    check_entry(s, 8, BOOT_A, 9, 64);
    uint64_t last;
    rsre_spool_boot_id(s, &last);
    assert_int_equal(last, 9);
    assert_int_equal(push(s, BOOT_A, 10, 2, 64), 0); /* seq 10 is free again */
    rsre_spool_close(s);
    sz = file_size(spoolfile);
    assert_int_equal(truncate(spoolfile, sz - (64 + OVH) + 10), 0);
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    assert_int_equal(rsre_spool_count(s), 9);
    rsre_spool_close(s);
    /* The file was rewritten clean. */
    assert_int_equal(file_size(spoolfile), RSRE_SPOOL_HEADER_BYTES + 9 * (64 + OVH));
}

static void flip_byte(const char *path, off_t off) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_corrupt_record(void **state) {
    (void)state;
    write_spool(10);
    /* A flipped message byte in record 6 (0-based 5): records 1..5 survive. */
    flip_byte(spoolfile, RSRE_SPOOL_HEADER_BYTES + 5 * (64 + OVH) + OVH + 3);
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    assert_int_equal(rsre_spool_count(s), 5);
    for (size_t i = 0; i < 5; i++) {
        check_entry(s, i, BOOT_A, 1 + i, 64);
    }
    rsre_spool_close(s);
    /* A length field claiming more than the file holds: a torn record. */
    assert_int_equal(unlink(spoolfile), 0);
    write_spool(4);
    flip_byte(spoolfile, RSRE_SPOOL_HEADER_BYTES + 2 * (64 + OVH) + 2);
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    assert_int_equal(rsre_spool_count(s), 2);
    rsre_spool_close(s);
    unlink(spoolfile);
}

static void test_corrupt_header(void **state) {
    (void)state;
    char aside[300];
    snprintf(aside, sizeof(aside), "%s.corrupt", spoolfile);
    write_spool(3);
    flip_byte(spoolfile, 20); /* inside the boot id: header CRC fails */
    struct rsre_spool *s = NULL;
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), RSRE_ECORRUPT);
    assert_non_null(s); /* usable, empty */
    assert_int_equal(rsre_spool_count(s), 0);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, NULL, &st);
    assert_false(st.restored);
    assert_true(file_size(aside) > 0);
    assert_int_equal(push(s, BOOT_B, 1, 1, 10), 0);
    rsre_spool_close(s);
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    assert_int_equal(rsre_spool_count(s), 1);
    rsre_spool_close(s);

    /* Garbage and a too-short file are set aside too; an empty file is a fresh spool. */
    const char *garbage = "this is not a spool file at all, not even close to one.........."
                          "................................................................";
    FILE *f = fopen(spoolfile, "w");
    fputs(garbage, f);
    fclose(f);
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), RSRE_ECORRUPT);
    rsre_spool_close(s);
    f = fopen(spoolfile, "w");
    fputs("RSRESPL1", f);
    fclose(f);
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), RSRE_ECORRUPT);
    rsre_spool_close(s);
    f = fopen(spoolfile, "w");
    fclose(f);
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 1 << 20, &s), 0);
    rsre_spool_stats(s, NULL, &st);
    assert_false(st.restored);
    rsre_spool_close(s);
    unlink(spoolfile);
    unlink(aside);
}

/* Reopened with a smaller bound: the oldest entries are dropped and counted. */
static void test_reopen_smaller(void **state) {
    (void)state;
    write_spool(10);
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(spooldir, 1 << 20, 4 * (64 + OVH), &s), 0);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.batches, 4);
    assert_int_equal(st.dropped_batches, 6);
    assert_int_equal(st.dropped_signals, 12);
    assert_int_equal(st.capacity_bytes, 4 * (64 + OVH));
    check_entry(s, 0, BOOT_A, 7, 64);
    rsre_spool_close(s);
    unlink(spoolfile);
}

/* DROP records replay exactly: the drop of an old entry does not move the current boot (found by
 * fuzz_spool_file), and one the replay already made under a smaller bound is not counted twice. */
static void test_disk_drop_replay(void **state) {
    (void)state;
    size_t cap = 5 * (30 + OVH);
    struct rsre_spool *s;
    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 1, 30), 0);
    }
    assert_int_equal(push(s, BOOT_B, 1, 1, 30), 0); /* drops A1: a DROP record of boot A */
    rsre_spool_close(s);
    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    uint64_t last;
    assert_string_equal(rsre_spool_boot_id(s, &last), BOOT_B);
    assert_int_equal(last, 1);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, NULL, &st);
    assert_int_equal(st.dropped_batches, 1);
    assert_int_equal(st.batches, 5);
    rsre_spool_close(s);
    unlink(spoolfile);

    assert_int_equal(rsre_spool_open(spooldir, cap, cap, &s), 0);
    for (uint64_t seq = 1; seq <= 6; seq++) {
        assert_int_equal(push(s, BOOT_A, seq, 2, 30), 0); /* A6 drops A1 */
    }
    rsre_spool_close(s);
    /* Reopened with room for 3: A1 (recorded), A2 and A3 (by the replay) are dropped, once. */
    assert_int_equal(rsre_spool_open(spooldir, cap, 3 * (30 + OVH), &s), 0);
    rsre_spool_stats(s, BOOT_A, &st);
    assert_int_equal(st.dropped_batches, 3);
    assert_int_equal(st.dropped_signals, 6);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.first_unacked_seq, 4);
    assert_int_equal(st.last_seq, 6);
    rsre_spool_close(s);
}

static void test_unusable_dir(void **state) {
    (void)state;
    char file[256];
    snprintf(file, sizeof(file), "%s/plainfile", tmpdir);
    FILE *f = fopen(file, "w");
    fclose(f);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/sub", file); /* a path through a regular file */
    struct rsre_spool *s = (void *)1;
    int rc = rsre_spool_open(dir, 1 << 20, 0, &s);
    assert_true(rc < 0 && rc != RSRE_ECORRUPT);
    assert_null(s);
}

int main(void) {
    rsre_log_set_level_name(getenv("RSRE_LOG_LEVEL") ? getenv("RSRE_LOG_LEVEL") : "off");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_memory_bounds_and_drop_order, fresh),
        cmocka_unit_test_setup(test_huge_entry, fresh),
        cmocka_unit_test_setup(test_argument_checks, fresh),
        cmocka_unit_test_setup(test_ack_semantics, fresh),
        cmocka_unit_test_setup(test_ids_and_index_after, fresh),
        cmocka_unit_test_setup(test_long_run, fresh),
        cmocka_unit_test_setup(test_disk_round_trip, fresh),
        cmocka_unit_test_setup(test_disk_counters_persist, fresh),
        cmocka_unit_test_setup(test_disk_compaction_bound, fresh),
        cmocka_unit_test_setup(test_torn_tail, fresh),
        cmocka_unit_test_setup(test_corrupt_record, fresh),
        cmocka_unit_test_setup(test_corrupt_header, fresh),
        cmocka_unit_test_setup(test_reopen_smaller, fresh),
        cmocka_unit_test_setup(test_disk_drop_replay, fresh),
        cmocka_unit_test_setup(test_unusable_dir, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
