#ifndef RSRE_SPOOL_H
#define RSRE_SPOOL_H

/*
 * The agent's bounded spool of signal batches not yet acknowledged by the aggregator: a memory
 * queue, mirrored to a small append-only file when a directory is given so that an agent
 * restart loses nothing. When a bound would be exceeded the OLDEST batches are dropped and
 * counted (dropped_batches, dropped_signals) — exactly, batch by batch.
 *
 * Each entry is one packed AgentMessage{signal_batch} plus its boot id, sequence number and
 * signal count. Entries keep the boot id they were created under: after a restart the old
 * boot's batches are resent unchanged and the aggregator deduplicates by (node, boot, seq).
 *
 * Accounting: an entry costs its message length plus RSRE_SPOOL_RECORD_OVERHEAD bytes (the size
 * of its record header on disk), in memory and on disk alike, so the memory and disk bounds
 * measure the same thing. With a directory, the capacity is min(mem_bytes, disk_bytes): every
 * entry on disk is also held in memory.
 *
 * The file (<dir>/spool.dat, format in docs/agent-stream.md) is a header followed by records:
 * BATCH (an entry), ACK (boot, committed seq) and DROP (boot, seq, signals of a dropped entry).
 * Acks and drops are appended, not applied in place; the file is rewritten (compacted, through
 * a temporary file, fsync and rename) when the dead records outweigh the live ones, when the
 * file passes twice the capacity, and at open. So the file never exceeds
 * 2 x capacity + one record + RSRE_SPOOL_HEADER_BYTES.
 *
 * Durability: every change is written with write(2) before the call returns, so it survives a
 * crash or SIGKILL of the agent (the page cache outlives the process). fdatasync(2) runs at
 * most once per RSRE_SPOOL_SYNC_MS (checked on push and ack), at every compaction and at close,
 * and whenever rsre_spool_sync() is called; a power loss can lose at most the last second of
 * changes. Batches lost that way are detected by the stream (an Ack above the spool's last_seq
 * for its boot, see stream.h) and the agent moves to a new boot id. A disk error never loses
 * memory entries: it is logged and counted, and the next change retries with a full rewrite.
 *
 * Threading: not thread-safe; one loop owns the spool.
 */

#include <stddef.h>
#include <stdint.h>

struct rsre_spool;

/* Bytes every entry is charged beyond its message (its on-disk record header). */
#define RSRE_SPOOL_RECORD_OVERHEAD 64u
/* Size of the file header. */
#define RSRE_SPOOL_HEADER_BYTES 96u
/* Longest boot id (a canonical UUID is 36 bytes). */
#define RSRE_SPOOL_BOOT_ID_MAX 36u
/* Largest message one entry may hold: the largest message the stream may send
 * (RSRE_PBUF_MAX_MESSAGE_BYTES). A larger push is dropped and counted; a record claiming more
 * is corrupt. */
#define RSRE_SPOOL_MAX_MESSAGE (1024u * 1024u)
/* Longest time between two fdatasync calls while changes are written. */
#define RSRE_SPOOL_SYNC_MS 1000u
/* File name under the spool directory; a corrupt file is renamed to <name>.corrupt. */
#define RSRE_SPOOL_FILE "spool.dat"

struct rsre_spool_stats {
    uint64_t first_unacked_seq, last_seq; /* of the boot asked for; 0 when none */
    uint32_t batches;                     /* entries, all boots */
    uint64_t bytes, capacity_bytes;       /* charged bytes of the entries; the bound */
    /* Dropped because a bound was exceeded, since the spool (file) was created. */
    uint64_t dropped_batches, dropped_signals;
    int restored;         /* a spool file was read back at open */
    uint64_t file_bytes;  /* size of the spool file; 0 for a memory spool */
    uint64_t disk_errors; /* failed writes/syncs/rewrites (each logged) */
    uint64_t compactions; /* rewrites of the file */
};

/* One entry, as returned by rsre_spool_entry(). Pointers valid until the next push/ack/close. */
struct rsre_spool_entry {
    const char *boot_id;
    uint64_t seq;
    uint32_t nsignals;
    uint64_t id; /* push order: strictly increasing over the spool's life in this process */
    const uint8_t *msg;
    size_t len;
};

/*
 * Opens a spool bounded by `mem_bytes` (and `disk_bytes` for the file under `dir`; dir NULL or
 * "" = memory only; disk_bytes 0 = same as mem_bytes). The directory is created (mode 0700)
 * when missing. An existing spool file is read back: a torn or corrupt record ends the read
 * (that record and everything after it are dropped and logged, never counted as sent), and
 * entries beyond the bound are dropped oldest first and counted. The file is then rewritten.
 *
 * Returns 0; -EINVAL (mem_bytes 0, NULL out); a negative errno when the directory or file
 * cannot be used (*out NULL); or RSRE_ECORRUPT when the file's header is unusable: the file is
 * renamed to spool.dat.corrupt, an empty spool is opened and stored in *out, and the caller
 * may proceed.
 */
int rsre_spool_open(const char *dir, size_t mem_bytes, size_t disk_bytes, struct rsre_spool **out);
/* Syncs and closes the file, frees everything. NULL is a no-op. */
void rsre_spool_close(struct rsre_spool *s);

/*
 * Appends one batch (copied). `boot_id` is 1..36 bytes; `seq` > 0 and greater than the last
 * seq pushed for the same boot (else -EINVAL). Drops oldest entries to make room (counted).
 * An entry larger than the bound on its own, or than RSRE_SPOOL_MAX_MESSAGE, is dropped itself
 * (counted, its seq still becomes the boot's last_seq so the aggregator sees the gap) and
 * RSRE_ELIMIT returned. -ENOMEM leaves the spool unchanged. A disk failure does not fail the
 * push (see above).
 */
int rsre_spool_push(struct rsre_spool *s, const char *boot_id, uint64_t seq, uint32_t nsignals,
                    const uint8_t *msg, size_t len);

/* Number of entries, and the i-th oldest (pointers valid until the next push/ack/close).
 * Returns 0 or RSRE_ENOTFOUND when i >= count. Any out pointer may be NULL. */
size_t rsre_spool_count(const struct rsre_spool *s);
int rsre_spool_peek(const struct rsre_spool *s, size_t i, const char **boot_id, uint64_t *seq,
                    const uint8_t **msg, size_t *len);
/* The i-th oldest entry with its signal count and id. 0 or RSRE_ENOTFOUND. */
int rsre_spool_entry(const struct rsre_spool *s, size_t i, struct rsre_spool_entry *out);
/* Index of the oldest entry whose id is greater than `id` (count when there is none); equals
 * the number of entries with id <= `id`. rsre_spool_index_after(s, 0) is 0. */
size_t rsre_spool_index_after(const struct rsre_spool *s, uint64_t id);

/* Removes every entry of `boot_id` with seq <= committed_seq (entries of other boots stay).
 * Returns how many were removed. */
size_t rsre_spool_ack(struct rsre_spool *s, const char *boot_id, uint64_t committed_seq);

/*
 * The current boot: the boot of the newest push, or after open the boot the file was last
 * written under. Returns NULL when the spool has never seen one; sets *last_seq (may be NULL)
 * to the highest seq pushed for it (including dropped ones). An agent that finds a boot here
 * after open keeps it and continues at *last_seq + 1 (protocol: the boot id lives as long as
 * the spool). Valid until the next push/close.
 */
const char *rsre_spool_boot_id(const struct rsre_spool *s, uint64_t *last_seq);

/* Stats; first_unacked_seq/last_seq are those of `boot_id` (NULL = the current boot). */
void rsre_spool_stats(const struct rsre_spool *s, const char *boot_id,
                      struct rsre_spool_stats *out);

/* Forces an fdatasync of the file now. 0, or a negative errno (also counted). */
int rsre_spool_sync(struct rsre_spool *s);

#endif
