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
 */

#include <stddef.h>
#include <stdint.h>

struct rsre_spool;

struct rsre_spool_stats {
    uint64_t first_unacked_seq, last_seq; /* of the current boot; 0 when none */
    uint32_t batches;
    uint64_t bytes, capacity_bytes;
    uint64_t dropped_batches, dropped_signals;
    int restored; /* entries were read back from disk at open */
};

/*
 * Opens a spool bounded by `mem_bytes` (and `disk_bytes` for the file under `dir`; dir NULL or
 * "" = memory only). An existing spool file is read back (corrupt tail records are dropped and
 * logged). Returns 0, a negative errno, or RSRE_ECORRUPT when the file is unusable (it is
 * then renamed aside and an empty spool is used; the caller may still proceed).
 */
int rsre_spool_open(const char *dir, size_t mem_bytes, size_t disk_bytes, struct rsre_spool **out);
void rsre_spool_close(struct rsre_spool *s); /* NULL is a no-op */

/* Appends one batch (copied). Drops oldest entries to make room; an entry larger than the
 * bound on its own is dropped itself (counted) and RSRE_ELIMIT returned. */
int rsre_spool_push(struct rsre_spool *s, const char *boot_id, uint64_t seq, uint32_t nsignals,
                    const uint8_t *msg, size_t len);

/* Number of entries, and the i-th oldest (pointers valid until the next push/ack/close). */
size_t rsre_spool_count(const struct rsre_spool *s);
int rsre_spool_peek(const struct rsre_spool *s, size_t i, const char **boot_id, uint64_t *seq,
                    const uint8_t **msg, size_t *len);

/* Removes every entry of `boot_id` with seq <= committed_seq. Returns how many were removed. */
size_t rsre_spool_ack(struct rsre_spool *s, const char *boot_id, uint64_t committed_seq);

void rsre_spool_stats(const struct rsre_spool *s, const char *boot_id,
                      struct rsre_spool_stats *out);

#endif
