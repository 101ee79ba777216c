/*
 * libFuzzer target: arbitrary bytes as the agent's spool file (agent/spool.h) at open.
 *
 * The first input byte picks how the file is made from the rest (so the fuzzer gets past the
 * checksums without a seed corpus):
 *   0: the bytes are the file;
 *   1: a header and records with valid checksums whose fields (types, flags, boots, seqs,
 *      lengths, acks, drops, header counters) come from the bytes; a record's checksum is
 *      broken on purpose when the input says so;
 *   2: a real spool written through the API (pushes and acks taken from the bytes, with a small
 *      bound so drops and rewrites happen), then cut at a position and with bytes flipped.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - open returns 0 or RSRE_ECORRUPT, and a usable spool in both cases;
 *   - what was restored respects the bound, and its entries are well-formed;
 *   - the spool keeps working (push, ack), and the file it rewrote reopens to the same number
 *     of entries (a file the spool wrote itself is always read back completely).
 *
 *   CC=clang cmake -S . -B build-stream-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-stream-fuzz --target fuzz_spool_file
 *   ./build-stream-fuzz/tests/fuzz_spool_file -max_total_time=60 -max_len=8192
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/spool.h"
#include "common/error.h"
#include "common/log.h"

#define CAP (4u * 1024u)

static char dir[64];
static char path[128];

static const char *const boots[] = {"0b8f3c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c",
                                    "7c2d4e6f-1a3b-4c5d-9e8f-0a1b2c3d4e5f", "b", ""};

#define check(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_spool_file: check failed at line %d: %s\n", __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- input reader --------------------------------------------------------------------------- */

struct in {
    const uint8_t *p;
    size_t n;
};

static unsigned u8(struct in *in) {
    if (!in->n) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

static uint64_t u16(struct in *in) {
    return u8(in) | (uint64_t)u8(in) << 8;
}

/* ---- file building -------------------------------------------------------------------------- */

static uint32_t crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
        }
    }
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void write_file(const uint8_t *b, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    check(fd >= 0);
    check(write(fd, b, n) == (ssize_t)n);
    close(fd);
}

/* Mode 1: header + records with valid checksums, fields from the input. */
static void build_structured(struct in *in) {
    static uint8_t buf[64 * 1024];
    size_t off = 0;
    uint8_t *h = buf;
    memset(h, 0, RSRE_SPOOL_HEADER_BYTES);
    memcpy(h, "RSRESPL1", 8);
    put32(h + 8, 1);
    put32(h + 12, RSRE_SPOOL_HEADER_BYTES);
    const char *hb = boots[u8(in) & 3];
    memcpy(h + 16, hb, strlen(hb));
    put64(h + 56, u16(in));
    put64(h + 64, u8(in));
    put64(h + 72, u16(in));
    put32(h + 92, crc32(0, h, 92));
    off = RSRE_SPOOL_HEADER_BYTES;
    while (in->n >= 6 && off + RSRE_SPOOL_RECORD_OVERHEAD + 256 < sizeof(buf)) {
        unsigned type = u8(in);
        unsigned flags = u8(in);
        const char *boot = boots[u8(in) & 3];
        uint64_t seq = u16(in);
        unsigned len = type <= 3 && (type & 1) ? u8(in) : 0;
        uint8_t *r = buf + off;
        memset(r, 0, RSRE_SPOOL_RECORD_OVERHEAD);
        put32(r, len);
        r[8] = (uint8_t)(type & 0x83); /* mostly 0..3, sometimes unknown */
        r[9] = (uint8_t)(flags & 0x81);
        put32(r + 12, flags >> 4);
        put64(r + 16, seq);
        memcpy(r + 24, boot, strlen(boot));
        for (unsigned i = 0; i < len; i++) {
            r[RSRE_SPOOL_RECORD_OVERHEAD + i] = (uint8_t)(seq + i);
        }
        uint32_t crc =
            crc32(crc32(0, r, RSRE_SPOOL_RECORD_OVERHEAD), r + RSRE_SPOOL_RECORD_OVERHEAD, len);
        put32(r + 4, (flags & 0x40) ? ~crc : crc);
        off += RSRE_SPOOL_RECORD_OVERHEAD + len;
    }
    write_file(buf, off);
}

/* Mode 2: a file written by the spool itself, then damaged. */
static void build_damaged(struct in *in) {
    unlink(path);
    struct rsre_spool *s;
    check(rsre_spool_open(dir, CAP, CAP, &s) == 0);
    uint64_t seq[2] = {0, 0};
    static const uint8_t msg[300];
    unsigned ops = u8(in) % 64;
    for (unsigned i = 0; i < ops; i++) {
        unsigned op = u8(in);
        int b = op & 1;
        if (op & 2) {
            rsre_spool_ack(s, boots[b], seq[b] > (op >> 4) ? seq[b] - (op >> 4) : 0);
        } else {
            int rc = rsre_spool_push(s, boots[b], ++seq[b], op >> 2, msg, u8(in) + (op & 4) * 8);
            check(rc == 0 || rc == RSRE_ELIMIT);
        }
    }
    rsre_spool_close(s);
    FILE *f = fopen(path, "r+b");
    check(f != NULL);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    long cut = (long)u16(in);
    if (cut < size && (u8(in) & 1)) {
        check(truncate(path, cut) == 0);
        size = cut;
    }
    int fd = open(path, O_RDWR);
    check(fd >= 0);
    unsigned flips = u8(in) % 4;
    for (unsigned i = 0; i < flips && size > 0; i++) {
        off_t at = (off_t)(u16(in) % (uint64_t)size);
        uint8_t x = (uint8_t)u8(in);
        uint8_t c;
        if (pread(fd, &c, 1, at) == 1) {
            c ^= x;
            check(pwrite(fd, &c, 1, at) == 1);
        }
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        rsre_log_set_level_name("off");
        snprintf(dir, sizeof(dir), "/tmp/rsre-fuzz-spool-XXXXXX");
        check(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/%s", dir, RSRE_SPOOL_FILE);
    }
    if (size < 1) {
        return 0;
    }
    struct in in = {data + 1, size - 1};
    switch (data[0] % 3) {
    case 0:
        write_file(data + 1, size - 1);
        break;
    case 1:
        build_structured(&in);
        break;
    default:
        build_damaged(&in);
        break;
    }

    struct rsre_spool *s = NULL;
    int rc = rsre_spool_open(dir, CAP, CAP, &s);
    check(rc == 0 || rc == RSRE_ECORRUPT);
    check(s != NULL);
    struct rsre_spool_stats st;
    rsre_spool_stats(s, NULL, &st);
    check(st.bytes <= CAP);
    size_t n = rsre_spool_count(s);
    uint64_t sum = 0, prev_id = 0;
    for (size_t i = 0; i < n; i++) {
        struct rsre_spool_entry e;
        check(rsre_spool_entry(s, i, &e) == 0);
        check(e.seq > 0 && e.boot_id[0] && strlen(e.boot_id) <= RSRE_SPOOL_BOOT_ID_MAX);
        check(e.id > prev_id);
        prev_id = e.id;
        sum += e.len + RSRE_SPOOL_RECORD_OVERHEAD;
    }
    check(sum == st.bytes);
    uint64_t last = 0;
    const char *boot = rsre_spool_boot_id(s, &last);
    char b[RSRE_SPOOL_BOOT_ID_MAX + 1];
    snprintf(b, sizeof(b), "%s", boot ? boot : "fuzz");
    static const uint8_t msg[40] = {1, 2, 3};
    if (last < UINT64_MAX) {
        check(rsre_spool_push(s, b, last + 1, 1, msg, sizeof(msg)) == 0);
    }
    if (rsre_spool_count(s) > 0) {
        struct rsre_spool_entry e;
        check(rsre_spool_entry(s, 0, &e) == 0);
        char eb[RSRE_SPOOL_BOOT_ID_MAX + 1];
        snprintf(eb, sizeof(eb), "%s", e.boot_id);
        check(rsre_spool_ack(s, eb, e.seq) >= 1);
    }
    size_t n1 = rsre_spool_count(s);
    rsre_spool_close(s);

    /* What the spool wrote reads back completely. */
    check(rsre_spool_open(dir, CAP, CAP, &s) == 0);
    check(rsre_spool_count(s) == n1);
    rsre_spool_close(s);
    unlink(path);
    return 0;
}
