/*
 * Bounded spool of unacknowledged signal batches (agent/spool.h), with an append-only file
 * mirror. File format (all integers little-endian):
 *
 *   header, RSRE_SPOOL_HEADER_BYTES (96):
 *     0  "RSRESPL1"           8  u32 version (1)      12 u32 header size (96)
 *     16 boot id, 36 bytes zero-padded (the current boot when the file was written)
 *     52 u32 0                56 u64 last_seq of that boot
 *     64 u64 dropped_batches  72 u64 dropped_signals  80 12 bytes 0
 *     92 u32 CRC-32 of bytes 0..91
 *   records, each a 64-byte header and `len` bytes of message:
 *     0  u32 len              4  u32 CRC-32 of the record header (with this field 0) + message
 *     8  u8 type (1 BATCH, 2 ACK, 3 DROP)   9  u8 flags (BATCH bit 0: COPY; DROP bit 1: PUSHED)
 *     12 u32 nsignals         16 u64 seq
 *     24 boot id, 36 bytes zero-padded               60 u32 0
 *
 * Replaying the records in order over the header's state rebuilds the spool: BATCH appends an
 * entry (dropping the oldest beyond the bound), ACK removes the boot's entries up to seq, DROP
 * removes the named entry and counts it — unless the replay already dropped (and counted) it
 * because the bound is smaller now; a DROP flagged PUSHED is an entry too large to be queued at
 * all, always counted, and like a push it moves the current boot. A rewrite copies the live
 * entries as
 * BATCH records flagged COPY: they restore entries but, unlike records appended later, do not
 * move the current boot and its last_seq, which the header carries.
 */
#include "agent/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"

#define HDR_MAGIC "RSRESPL1"
#define FILE_VERSION 1u
#define REC_BATCH 1u
#define REC_ACK 2u
#define REC_DROP 3u
#define REC_FLAG_COPY 1u
#define REC_FLAG_PUSHED 2u
/* Dead bytes that justify a rewrite even when the file is far below twice the capacity. */
#define COMPACT_MIN_DEAD (64u * 1024u)
/* Disk errors are logged at most once per this interval (the rest are counted). */
#define ERROR_LOG_MS 10000u

struct entry {
    uint64_t id, seq;
    uint32_t nsignals;
    uint32_t len;
    char boot[RSRE_SPOOL_BOOT_ID_MAX + 1];
    uint8_t msg[];
};

struct rsre_spool {
    struct entry **v; /* live entries are v[start .. start + n) */
    size_t start, n, cap;
    uint64_t bytes, capacity;
    uint64_t next_id;
    char boot[RSRE_SPOOL_BOOT_ID_MAX + 1]; /* current boot, "" when none */
    uint64_t last_seq;
    uint64_t dropped_batches, dropped_signals;
    int restored;

    int fd; /* -1: memory only */
    char *dir, *path, *tmp_path;
    uint64_t file_bytes;
    uint64_t disk_errors, compactions;
    int need_rewrite; /* the file may not match memory: rewrite at the next chance */
    int dirty;        /* written since the last sync */
    uint64_t last_sync_ms, last_rewrite_try_ms, last_error_log_ms, errors_unlogged;
};

/* ---- small helpers -------------------------------------------------------------------------- */

static uint32_t crc_table[256];
static int crc_ready;

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    if (!crc_ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            crc_table[i] = c;
        }
        crc_ready = 1;
    }
    crc = ~crc;
    while (n--) {
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
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

static uint32_t get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int boot_ok(const char *boot) {
    if (!boot) {
        return 0;
    }
    size_t n = strnlen(boot, RSRE_SPOOL_BOOT_ID_MAX + 1);
    return n >= 1 && n <= RSRE_SPOOL_BOOT_ID_MAX;
}

/* Copies a zero-padded 36-byte boot field into a NUL-terminated string; 0 when it is not a
 * valid boot id (empty, or bytes after the first NUL). */
static int boot_from_field(char out[RSRE_SPOOL_BOOT_ID_MAX + 1], const uint8_t *field) {
    size_t n = 0;
    while (n < RSRE_SPOOL_BOOT_ID_MAX && field[n]) {
        n++;
    }
    for (size_t i = n; i < RSRE_SPOOL_BOOT_ID_MAX; i++) {
        if (field[i]) {
            return 0;
        }
    }
    memcpy(out, field, n);
    out[n] = '\0';
    return 1;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) {
        snprintf(p, n, "%s/%s", dir, name);
    }
    return p;
}

/* Logs a disk failure (rate-limited) and counts it. */
static void disk_error(struct rsre_spool *s, const char *what, int err) {
    s->disk_errors++;
    uint64_t now = mono_ms();
    if (s->last_error_log_ms && now - s->last_error_log_ms < ERROR_LOG_MS) {
        s->errors_unlogged++;
        return;
    }
    RSRE_LOG(RSRE_LOG_ERROR, "spool", "disk spool %s failed path=%s err=\"%s\" suppressed=%llu",
             what, s->path, rsre_strerror(err), (unsigned long long)s->errors_unlogged);
    s->last_error_log_ms = now;
    s->errors_unlogged = 0;
}

static struct entry *at(const struct rsre_spool *s, size_t i) {
    return s->v[s->start + i];
}

static uint64_t cost_of(size_t len) {
    return (uint64_t)len + RSRE_SPOOL_RECORD_OVERHEAD;
}

/* ---- memory queue --------------------------------------------------------------------------- */

/* Makes room for one more pointer at the end of the array; drops and removals only shrink the
 * queue, so after this the append cannot fail. */
static int ensure_room(struct rsre_spool *s) {
    if (s->start + s->n < s->cap) {
        return 0;
    }
    if (s->start > 0 && s->start >= s->n / 2) {
        memmove(s->v, s->v + s->start, s->n * sizeof(*s->v));
        s->start = 0;
        return 0;
    }
    size_t ncap = s->cap ? s->cap * 2 : 64;
    struct entry **nv = realloc(s->v, ncap * sizeof(*nv));
    if (!nv) {
        if (s->start > 0) {
            memmove(s->v, s->v + s->start, s->n * sizeof(*s->v));
            s->start = 0;
            return 0;
        }
        return -ENOMEM;
    }
    s->v = nv;
    s->cap = ncap;
    return 0;
}

static void set_current(struct rsre_spool *s, const char *boot, uint64_t seq) {
    if (strcmp(s->boot, boot) != 0) {
        snprintf(s->boot, sizeof(s->boot), "%s", boot);
        s->last_seq = seq;
    } else if (seq > s->last_seq) {
        s->last_seq = seq;
    }
}

/* ---- file ----------------------------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (w == 0) {
            return -EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fill_record_header(uint8_t h[RSRE_SPOOL_RECORD_OVERHEAD], unsigned type, unsigned flags,
                               const char *boot, uint64_t seq, uint32_t nsignals,
                               const uint8_t *msg, size_t len) {
    memset(h, 0, RSRE_SPOOL_RECORD_OVERHEAD);
    put32(h, (uint32_t)len);
    h[8] = (uint8_t)type;
    h[9] = (uint8_t)flags;
    put32(h + 12, nsignals);
    put64(h + 16, seq);
    memcpy(h + 24, boot, strlen(boot));
    uint32_t crc = crc32_update(0, h, RSRE_SPOOL_RECORD_OVERHEAD);
    crc = crc32_update(crc, msg, len);
    put32(h + 4, crc);
}

static void fill_file_header(const struct rsre_spool *s, uint8_t h[RSRE_SPOOL_HEADER_BYTES]) {
    memset(h, 0, RSRE_SPOOL_HEADER_BYTES);
    memcpy(h, HDR_MAGIC, 8);
    put32(h + 8, FILE_VERSION);
    put32(h + 12, RSRE_SPOOL_HEADER_BYTES);
    memcpy(h + 16, s->boot, strlen(s->boot));
    put64(h + 56, s->last_seq);
    put64(h + 64, s->dropped_batches);
    put64(h + 72, s->dropped_signals);
    put32(h + 92, crc32_update(0, h, 92));
}

/* Appends one record. On failure the file is cut back to its last good size and marked for a
 * rewrite; memory is never affected. */
static void append_record(struct rsre_spool *s, unsigned type, unsigned flags, const char *boot,
                          uint64_t seq, uint32_t nsignals, const uint8_t *msg, size_t len) {
    if (s->fd < 0 || s->need_rewrite) {
        return; /* the coming rewrite writes the whole state */
    }
    size_t total = RSRE_SPOOL_RECORD_OVERHEAD + len;
    uint8_t *buf = malloc(total);
    if (!buf) {
        disk_error(s, "append", -ENOMEM);
        s->need_rewrite = 1;
        return;
    }
    fill_record_header(buf, type, flags, boot, seq, nsignals, msg, len);
    if (len) {
        memcpy(buf + RSRE_SPOOL_RECORD_OVERHEAD, msg, len);
    }
    int rc = write_all(s->fd, buf, total);
    free(buf);
    if (rc) {
        disk_error(s, "append", rc);
        if (ftruncate(s->fd, (off_t)s->file_bytes) != 0) {
            disk_error(s, "truncate", -errno);
        }
        s->need_rewrite = 1;
        return;
    }
    s->file_bytes += total;
    s->dirty = 1;
}

static int fsync_dir(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return -errno;
    }
    int rc = fsync(dfd) ? -errno : 0;
    close(dfd);
    return rc;
}

/* Writes the whole state to a temporary file, syncs it and renames it over the spool file. */
static int rewrite(struct rsre_spool *s) {
    s->last_rewrite_try_ms = mono_ms();
    int fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        disk_error(s, "rewrite (open)", rc);
        s->need_rewrite = 1;
        return rc;
    }
    enum { BUF = 64 * 1024 };
    uint8_t *buf = malloc(BUF);
    int rc = buf ? 0 : -ENOMEM;
    size_t used = 0;
    if (!rc) {
        fill_file_header(s, buf);
        used = RSRE_SPOOL_HEADER_BYTES;
    }
    for (size_t i = 0; !rc && i < s->n; i++) {
        const struct entry *e = at(s, i);
        if (used + RSRE_SPOOL_RECORD_OVERHEAD > BUF) {
            rc = write_all(fd, buf, used);
            used = 0;
        }
        if (rc) {
            break;
        }
        fill_record_header(buf + used, REC_BATCH, REC_FLAG_COPY, e->boot, e->seq, e->nsignals,
                           e->msg, e->len);
        used += RSRE_SPOOL_RECORD_OVERHEAD;
        if (used + e->len > BUF) {
            if ((rc = write_all(fd, buf, used)) || (rc = write_all(fd, e->msg, e->len))) {
                break;
            }
            used = 0;
        } else {
            memcpy(buf + used, e->msg, e->len);
            used += e->len;
        }
    }
    if (!rc && used) {
        rc = write_all(fd, buf, used);
    }
    free(buf);
    if (!rc && fdatasync(fd) != 0) {
        rc = -errno;
    }
    if (!rc && rename(s->tmp_path, s->path) != 0) {
        rc = -errno;
    }
    if (rc) {
        disk_error(s, "rewrite", rc);
        close(fd);
        unlink(s->tmp_path);
        s->need_rewrite = 1;
        return rc;
    }
    int drc = fsync_dir(s->dir);
    if (drc) {
        disk_error(s, "rewrite (directory sync)", drc);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    s->fd = fd;
    s->file_bytes = RSRE_SPOOL_HEADER_BYTES + s->bytes;
    s->need_rewrite = 0;
    s->dirty = 0;
    s->last_sync_ms = mono_ms();
    s->compactions++;
    return 0;
}

/* After every change: rewrite when the file is mostly dead or out of step, sync when due. */
static void maintain(struct rsre_spool *s) {
    if (s->fd < 0) {
        return;
    }
    uint64_t now = mono_ms();
    uint64_t live = RSRE_SPOOL_HEADER_BYTES + s->bytes;
    uint64_t dead = s->file_bytes > live ? s->file_bytes - live : 0;
    if (s->need_rewrite) {
        if (now - s->last_rewrite_try_ms >= RSRE_SPOOL_SYNC_MS) {
            rewrite(s);
        }
    } else if (s->file_bytes > 2 * s->capacity + RSRE_SPOOL_HEADER_BYTES ||
               (dead >= COMPACT_MIN_DEAD && dead >= 3 * s->bytes)) {
        rewrite(s);
    }
    if (s->dirty && now - s->last_sync_ms >= RSRE_SPOOL_SYNC_MS) {
        rsre_spool_sync(s);
    }
}

int rsre_spool_sync(struct rsre_spool *s) {
    if (!s || s->fd < 0) {
        return 0;
    }
    s->last_sync_ms = mono_ms();
    if (fdatasync(s->fd) != 0) {
        int rc = -errno;
        disk_error(s, "sync", rc);
        return rc;
    }
    s->dirty = 0;
    return 0;
}

/* ---- core operations (persist = also append the record to the file) -------------------------- */

static void count_drop(struct rsre_spool *s, const char *boot, uint64_t seq, uint32_t nsignals,
                       int persist, unsigned flags) {
    s->dropped_batches++;
    s->dropped_signals += nsignals;
    if (persist) {
        append_record(s, REC_DROP, flags, boot, seq, nsignals, NULL, 0);
    }
}

static void drop_oldest(struct rsre_spool *s, int persist) {
    struct entry *e = at(s, 0);
    s->start++;
    s->n--;
    if (s->n == 0) {
        s->start = 0;
    }
    s->bytes -= cost_of(e->len);
    count_drop(s, e->boot, e->seq, e->nsignals, persist, 0);
    free(e);
}

/* How a push happens: a live push (checked, written to the file), the replay of a record
 * appended by one (checked), or the replay of a rewrite's copy (restores the entry only). */
enum push_mode { PUSH_LIVE, PUSH_REPLAY, PUSH_REPLAY_COPY };

static int push(struct rsre_spool *s, const char *boot, uint64_t seq, uint32_t nsignals,
                const uint8_t *msg, size_t len, enum push_mode mode) {
    int persist = mode == PUSH_LIVE;
    if (!boot_ok(boot) || seq == 0 || (len && !msg)) {
        return -EINVAL;
    }
    if (mode != PUSH_REPLAY_COPY && s->boot[0] && strcmp(s->boot, boot) == 0 &&
        seq <= s->last_seq) {
        return -EINVAL;
    }
    uint64_t cost = cost_of(len);
    if (cost > s->capacity || len > RSRE_SPOOL_MAX_MESSAGE) {
        if (mode != PUSH_REPLAY_COPY) {
            set_current(s, boot, seq);
        }
        count_drop(s, boot, seq, nsignals, persist, REC_FLAG_PUSHED);
        return RSRE_ELIMIT;
    }
    struct entry *e = malloc(sizeof(*e) + (len ? len : 1));
    if (!e) {
        return -ENOMEM;
    }
    e->id = ++s->next_id;
    e->seq = seq;
    e->nsignals = nsignals;
    e->len = (uint32_t)len;
    snprintf(e->boot, sizeof(e->boot), "%s", boot);
    if (len) {
        memcpy(e->msg, msg, len);
    }
    if (ensure_room(s) != 0) {
        free(e);
        return -ENOMEM;
    }
    while (s->n > 0 && s->bytes + cost > s->capacity) {
        drop_oldest(s, persist);
    }
    s->v[s->start + s->n++] = e;
    s->bytes += cost;
    if (mode != PUSH_REPLAY_COPY) {
        set_current(s, boot, seq);
    }
    if (persist) {
        append_record(s, REC_BATCH, 0, boot, seq, nsignals, msg, len);
    }
    return 0;
}

/* Removes entries of `boot` with seq <= upto (only == upto when exact); returns how many. */
static size_t remove_matching(struct rsre_spool *s, const char *boot, uint64_t upto, int exact,
                              uint32_t *nsignals_out) {
    size_t w = 0, removed = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct entry *e = at(s, i);
        int hit = strcmp(e->boot, boot) == 0 && (exact ? e->seq == upto : e->seq <= upto);
        if (hit) {
            if (nsignals_out) {
                *nsignals_out = e->nsignals;
            }
            s->bytes -= cost_of(e->len);
            free(e);
            removed++;
        } else {
            s->v[s->start + w++] = e;
        }
    }
    s->n = w;
    if (s->n == 0) {
        s->start = 0;
    }
    return removed;
}

size_t rsre_spool_ack(struct rsre_spool *s, const char *boot_id, uint64_t committed_seq) {
    if (!s || !boot_ok(boot_id) || committed_seq == 0) {
        return 0;
    }
    size_t removed = remove_matching(s, boot_id, committed_seq, 0, NULL);
    if (removed) {
        append_record(s, REC_ACK, 0, boot_id, committed_seq, 0, NULL, 0);
        maintain(s);
    }
    return removed;
}

int rsre_spool_push(struct rsre_spool *s, const char *boot_id, uint64_t seq, uint32_t nsignals,
                    const uint8_t *msg, size_t len) {
    if (!s) {
        return -EINVAL;
    }
    int rc = push(s, boot_id, seq, nsignals, msg, len, PUSH_LIVE);
    if (rc == 0 || rc == RSRE_ELIMIT) {
        maintain(s);
    }
    return rc;
}

/* ---- open / replay -------------------------------------------------------------------------- */

static int pread_all(int fd, uint8_t *buf, size_t n, uint64_t off) {
    while (n > 0) {
        ssize_t r = pread(fd, buf, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return -EIO;
        }
        buf += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Reads the file back. Returns 0 (possibly with a dropped tail), RSRE_ECORRUPT when the header is
 * unusable, or a negative errno on I/O failure. */
static int replay(struct rsre_spool *s, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0) {
        return 0; /* created but never written: a fresh spool */
    }
    uint8_t h[RSRE_SPOOL_HEADER_BYTES];
    if (size < RSRE_SPOOL_HEADER_BYTES || pread_all(fd, h, sizeof(h), 0) != 0 ||
        memcmp(h, HDR_MAGIC, 8) != 0 || get32(h + 8) != FILE_VERSION ||
        get32(h + 12) != RSRE_SPOOL_HEADER_BYTES || get32(h + 92) != crc32_update(0, h, 92) ||
        get32(h + 52) != 0) {
        return RSRE_ECORRUPT;
    }
    char boot[RSRE_SPOOL_BOOT_ID_MAX + 1];
    if (!boot_from_field(boot, h + 16)) {
        return RSRE_ECORRUPT;
    }
    if (boot[0]) {
        set_current(s, boot, get64(h + 56));
    }
    s->dropped_batches = get64(h + 64);
    s->dropped_signals = get64(h + 72);
    s->restored = 1;

    uint64_t off = RSRE_SPOOL_HEADER_BYTES;
    uint64_t records = 0;
    const char *why = NULL;
    uint8_t *payload = NULL;
    while (off < size) {
        uint8_t r[RSRE_SPOOL_RECORD_OVERHEAD];
        if (size - off < RSRE_SPOOL_RECORD_OVERHEAD) {
            why = "torn record header";
            break;
        }
        int rc = pread_all(fd, r, sizeof(r), off);
        if (rc) {
            free(payload);
            return rc;
        }
        uint32_t len = get32(r);
        uint32_t crc = get32(r + 4);
        unsigned type = r[8];
        unsigned flags = r[9];
        uint32_t nsignals = get32(r + 12);
        uint64_t seq = get64(r + 16);
        if (type < REC_BATCH || type > REC_DROP ||
            (flags & ~(type == REC_BATCH  ? REC_FLAG_COPY
                       : type == REC_DROP ? REC_FLAG_PUSHED
                                          : 0)) ||
            r[10] || r[11] || get32(r + 60) || len > RSRE_SPOOL_MAX_MESSAGE ||
            (type != REC_BATCH && len != 0) || seq == 0 || !boot_from_field(boot, r + 24) ||
            !boot[0]) {
            why = "bad record header";
            break;
        }
        if (size - off - RSRE_SPOOL_RECORD_OVERHEAD < len) {
            why = "torn record";
            break;
        }
        free(payload);
        payload = malloc(len ? len : 1);
        if (!payload) {
            return -ENOMEM;
        }
        if (len && (rc = pread_all(fd, payload, len, off + RSRE_SPOOL_RECORD_OVERHEAD)) != 0) {
            free(payload);
            return rc;
        }
        put32(r + 4, 0);
        if (crc32_update(crc32_update(0, r, sizeof(r)), payload, len) != crc) {
            why = "checksum mismatch";
            break;
        }
        if (type == REC_BATCH) {
            rc = push(s, boot, seq, nsignals, payload, len,
                      flags & REC_FLAG_COPY ? PUSH_REPLAY_COPY : PUSH_REPLAY);
            if (rc == -EINVAL) {
                why = "sequence out of order";
                break;
            }
            if (rc == -ENOMEM) {
                free(payload);
                return rc;
            }
        } else if (type == REC_ACK) {
            remove_matching(s, boot, seq, 0, NULL);
        } else if (flags & REC_FLAG_PUSHED) {
            if (strcmp(s->boot, boot) == 0 && seq <= s->last_seq) {
                why = "sequence out of order";
                break;
            }
            s->dropped_batches++;
            s->dropped_signals += nsignals;
            set_current(s, boot, seq);
        } else if (remove_matching(s, boot, seq, 1, NULL) == 1) {
            s->dropped_batches++;
            s->dropped_signals += nsignals;
        }
        records++;
        off += RSRE_SPOOL_RECORD_OVERHEAD + len;
    }
    free(payload);
    if (why) {
        RSRE_LOG(RSRE_LOG_WARN, "spool",
                 "spool file tail dropped path=%s reason=\"%s\" offset=%llu bytes=%llu "
                 "records_read=%llu",
                 s->path, why, (unsigned long long)off, (unsigned long long)(size - off),
                 (unsigned long long)records);
    }
    return 0;
}

/* Discards everything read so far (after a corrupt header). */
static void reset_memory(struct rsre_spool *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(at(s, i));
    }
    s->start = s->n = 0;
    s->bytes = 0;
    s->boot[0] = '\0';
    s->last_seq = 0;
    s->dropped_batches = s->dropped_signals = 0;
    s->restored = 0;
}

static int open_disk(struct rsre_spool *s, const char *dir) {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        RSRE_LOG(RSRE_LOG_ERROR, "spool", "cannot create spool dir=%s err=\"%s\"", dir,
                 rsre_strerror(rc));
        return rc;
    }
    if (!(s->dir = strdup(dir)) || !(s->path = join(dir, RSRE_SPOOL_FILE)) ||
        !(s->tmp_path = join(dir, RSRE_SPOOL_FILE ".tmp"))) {
        return -ENOMEM;
    }
    int result = 0;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        int rc = -errno;
        RSRE_LOG(RSRE_LOG_ERROR, "spool", "cannot open spool file path=%s err=\"%s\"", s->path,
                 rsre_strerror(rc));
        return rc;
    }
    if (fd >= 0) {
        int rc = replay(s, fd);
        close(fd);
        if (rc == RSRE_ECORRUPT) {
            reset_memory(s);
            char *aside = join(dir, RSRE_SPOOL_FILE ".corrupt");
            if (!aside) {
                return -ENOMEM;
            }
            int mv = rename(s->path, aside) ? -errno : 0;
            RSRE_LOG(RSRE_LOG_ERROR, "spool",
                     "spool file unusable (bad header), set aside path=%s aside=%s rename=\"%s\"",
                     s->path, aside, rsre_strerror(mv));
            free(aside);
            result = RSRE_ECORRUPT;
        } else if (rc) {
            RSRE_LOG(RSRE_LOG_ERROR, "spool", "cannot read spool file path=%s err=\"%s\"", s->path,
                     rsre_strerror(rc));
            return rc;
        }
    }
    int rc = rewrite(s);
    if (rc) {
        return rc;
    }
    if (s->restored) {
        RSRE_LOG(RSRE_LOG_INFO, "spool",
                 "spool restored path=%s batches=%zu bytes=%llu boot_id=%s last_seq=%llu "
                 "dropped_batches=%llu",
                 s->path, s->n, (unsigned long long)s->bytes, s->boot,
                 (unsigned long long)s->last_seq, (unsigned long long)s->dropped_batches);
    }
    return result;
}

int rsre_spool_open(const char *dir, size_t mem_bytes, size_t disk_bytes, struct rsre_spool **out) {
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (mem_bytes == 0) {
        return -EINVAL;
    }
    struct rsre_spool *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->fd = -1;
    s->capacity = mem_bytes;
    if (dir && dir[0] && disk_bytes && disk_bytes < mem_bytes) {
        s->capacity = disk_bytes;
    }
    int rc = 0;
    if (dir && dir[0]) {
        rc = open_disk(s, dir);
        if (rc && rc != RSRE_ECORRUPT) {
            rsre_spool_close(s);
            return rc;
        }
    }
    *out = s;
    return rc;
}

void rsre_spool_close(struct rsre_spool *s) {
    if (!s) {
        return;
    }
    if (s->fd >= 0) {
        if (s->need_rewrite) {
            rewrite(s);
        }
        if (s->dirty) {
            rsre_spool_sync(s);
        }
        close(s->fd);
    }
    for (size_t i = 0; i < s->n; i++) {
        free(at(s, i));
    }
    free(s->v);
    free(s->dir);
    free(s->path);
    free(s->tmp_path);
    free(s);
}

/* ---- queries -------------------------------------------------------------------------------- */

size_t rsre_spool_count(const struct rsre_spool *s) {
    return s ? s->n : 0;
}

int rsre_spool_entry(const struct rsre_spool *s, size_t i, struct rsre_spool_entry *out) {
    if (!s || i >= s->n) {
        return RSRE_ENOTFOUND;
    }
    const struct entry *e = at(s, i);
    if (out) {
        out->boot_id = e->boot;
        out->seq = e->seq;
        out->nsignals = e->nsignals;
        out->id = e->id;
        out->msg = e->msg;
        out->len = e->len;
    }
    return 0;
}

int rsre_spool_peek(const struct rsre_spool *s, size_t i, const char **boot_id, uint64_t *seq,
                    const uint8_t **msg, size_t *len) {
    struct rsre_spool_entry e;
    int rc = rsre_spool_entry(s, i, &e);
    if (rc) {
        return rc;
    }
    if (boot_id) {
        *boot_id = e.boot_id;
    }
    if (seq) {
        *seq = e.seq;
    }
    if (msg) {
        *msg = e.msg;
    }
    if (len) {
        *len = e.len;
    }
    return 0;
}

size_t rsre_spool_index_after(const struct rsre_spool *s, uint64_t id) {
    if (!s) {
        return 0;
    }
    size_t lo = 0, hi = s->n; /* first index with entry id > id */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(s, mid)->id <= id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const char *rsre_spool_boot_id(const struct rsre_spool *s, uint64_t *last_seq) {
    if (last_seq) {
        *last_seq = s && s->boot[0] ? s->last_seq : 0;
    }
    return s && s->boot[0] ? s->boot : NULL;
}

void rsre_spool_stats(const struct rsre_spool *s, const char *boot_id,
                      struct rsre_spool_stats *out) {
    memset(out, 0, sizeof(*out));
    if (!s) {
        return;
    }
    if (!boot_id) {
        boot_id = s->boot;
    }
    for (size_t i = 0; boot_id[0] && i < s->n; i++) {
        const struct entry *e = at(s, i);
        if (strcmp(e->boot, boot_id) == 0) {
            if (!out->first_unacked_seq) {
                out->first_unacked_seq = e->seq;
            }
            if (e->seq > out->last_seq) {
                out->last_seq = e->seq;
            }
        }
    }
    if (boot_id[0] && strcmp(boot_id, s->boot) == 0) {
        out->last_seq = s->last_seq;
    }
    out->batches = (uint32_t)s->n;
    out->bytes = s->bytes;
    out->capacity_bytes = s->capacity;
    out->dropped_batches = s->dropped_batches;
    out->dropped_signals = s->dropped_signals;
    out->restored = s->restored;
    out->file_bytes = s->fd >= 0 ? s->file_bytes : 0;
    out->disk_errors = s->disk_errors;
    out->compactions = s->compactions;
}
