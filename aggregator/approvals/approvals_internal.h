#ifndef RSRE_APPROVALS_INTERNAL_H
#define RSRE_APPROVALS_INTERNAL_H

/* Shared between the files of aggregator/approvals; not for other modules. */

#include <stddef.h>
#include <stdint.h>

#include "approvals/approvals.h"

#define RSRE__APR_MOD "approvals"

struct rsre_approvals {
    const struct rsre_operators *ops;
    const struct rsre_taxonomy *t;
    int64_t default_expiry_ms;
};

/*
 * Checks a free-text part (why-now, impact, rollback, comment) and copies it trimmed of leading
 * whitespace and trailing whitespace and periods into buf (cap > max). Returns 0, RSRE_EINVALID
 * (NULL, empty after trimming, control characters, invalid UTF-8) or RSRE_ELIMIT (more than
 * `max` bytes before trimming).
 */
int rsre__apr_text(const char *s, size_t max, char *buf, size_t cap);

/* Whether `s` is 1..max bytes of printable ASCII without spaces (ids, targets). */
int rsre__apr_token(const char *s, size_t max);

/* Copies an untrusted string for an audit record or a message: printable ASCII kept, anything
 * else '?', at most 128 bytes (then "..."); NULL or "" becomes "(none)". Returns buf. */
char *rsre__apr_clean(const char *s, char *buf, size_t cap);

/* Formats a time to live as "10m", "1h", "1h30m", "45s", "2m30s". */
void rsre__apr_ttl(int64_t ms, char *buf, size_t cap);

/* Copies at most cap-1 bytes of `s` without splitting a UTF-8 sequence. */
void rsre__apr_copy(char *buf, size_t cap, const char *s);

#endif
