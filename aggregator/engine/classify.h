#ifndef RSRE_CLASSIFY_H
#define RSRE_CLASSIFY_H

/*
 * The evidence classifier: maps one piece of raw evidence, as it appears in the wild, to an
 * incident class of the taxonomy (or to none), with a severity hint, a confidence contribution
 * and the reason (the pattern row that matched and the text it matched).
 *
 * Input is one JSON-lines record (docs/evidence-classifier.md has the full format):
 *
 *   {"kind": "k8s_event" | "node" | "pod" | "log_line" | "http_response" | "helm_release"
 *            | "probe_result" | "chat_delivery",
 *    "object": { ... }}
 *
 *   k8s_event, node, pod   Kubernetes v1 objects exactly as the API returns them
 *   log_line               {"source": "...", "line": "..."}; the line may be multi-line text
 *                          an operator pasted (kubectl describe, helm status, a log excerpt)
 *   http_response          {"url": "...", "status": N, "body": "...", "expected_status": N?}
 *   helm_release           the decoded Helm release JSON (info.status, info.description...)
 *   probe_result           {"dependency": "redis|nats|minio|registry|ldap|postgres|http|dns|tls",
 *                           "ok": bool, "error": "...", "days_to_expiry": N?}
 *   chat_delivery          {"channel": "telegram|whatsapp", "status": N, "body": "..."}
 *
 * Unknown top-level keys (a test corpus's "expect", an "id") and unknown keys inside "object"
 * are ignored. Fields the classifier reads are type-checked: a present field of the wrong JSON
 * type is an error naming its path, never guessed at.
 *
 * The patterns are data: a table of rows (classify_patterns.c, struct rsre_classify_pattern
 * below) saying which record kinds a row applies to, which field it reads, what it matches,
 * what it must not match (benign look-alike guards), and what it concludes.
 *
 * Bounds: a record is at most RSRE_CLASSIFY_MAX_RECORD bytes and JSON nesting at most
 * RSRE_CLASSIFY_MAX_DEPTH deep (checked before parsing, so the parser never recurses deeper).
 * Time is linear in the record's size for the fixed table: each row scans each value it reads
 * once per term (memmem, two-way), and values are lower-cased once per record.
 *
 * Pure: no I/O, no global mutable state; reentrant. Allocation only through malloc (which
 * fails, never aborts); out of memory is reported as -ENOMEM.
 */

#include <stddef.h>

#include "engine/confidence.h"
#include "engine/taxonomy.h"

#define RSRE_CLASSIFY_MAX_RECORD (1024u * 1024u) /* bytes of one record (one line) */
#define RSRE_CLASSIFY_MAX_DEPTH 64               /* JSON nesting of one record */
#define RSRE_CLASSIFY_SPAN_MAX 128               /* bytes of matched text kept (with NUL) */
#define RSRE_CLASSIFY_ERR_MAX 256                /* bytes of an error message (with NUL) */
#define RSRE_CLASSIFY_ALSO_MAX 4                 /* other matching rows reported */
#define RSRE_CLASSIFY_TERMS 12                   /* term slots per list (NULL-terminated) */

enum rsre_record_kind {
    RSRE_REC_K8S_EVENT = 0,
    RSRE_REC_NODE,
    RSRE_REC_POD,
    RSRE_REC_LOG_LINE,
    RSRE_REC_HTTP_RESPONSE,
    RSRE_REC_HELM_RELEASE,
    RSRE_REC_PROBE_RESULT,
    RSRE_REC_CHAT_DELIVERY,
    RSRE_REC_KIND_COUNT,
    RSRE_REC_UNKNOWN = -1,
};

/* Bit of a record kind in rsre_classify_pattern.kinds. */
#define RSRE_CLS_KIND(k) (1u << (unsigned)(k))

/*
 * One pattern row. A row matches a record when
 *   - the record's kind is in `kinds`,
 *   - every `where` clause holds, and
 *   - some value read from `field` matches every `all` term, at least one `any` term (when
 *     `any` is not empty), and no `unless` term; and when `min_count` > 1, the first `all`
 *     term occurs at least `min_count` times in that value.
 * A row with empty `all` and `any` matches any value of `field` (present, even empty).
 *
 * Fields are paths into "object": dotted keys, "[]" to step into every element of an array
 * ("status.containerStatuses[].state.waiting.reason"). Numbers and booleans read as their JSON
 * text ("404", "true"). Virtual fields start with '@':
 *   @text       the kind's free text: event message; node condition messages; pod status
 *               message and container waiting/terminated messages; log line; HTTP body;
 *               Helm info.description; probe error; chat body
 *   @condition  node: "Type=Status" for each status.conditions[] entry ("DiskPressure=True")
 *   @taint      node: "key:effect" for each spec.taints[] entry
 *   @status_mismatch  http_response: "true" when expected_status is given and differs
 *
 * Terms (all case-insensitive, ASCII):
 *   text        occurs as a substring
 *   ~text       occurs as a token: the bytes either side are not [A-Za-z0-9_]
 *   =text       the whole value equals text
 *   ^text       the value starts with text
 *   $text       the value ends with text
 *   #<N #<=N #>N #>=N   the value is a number and compares so
 *   \text       text taken literally (to start a substring with one of ~=^$#\)
 * A `where` clause is "path:term" (some value at path satisfies the term) or "!path:term"
 * (no value at path does; an absent path satisfies it).
 *
 * A row whose `incident` is NULL is a benign marker: it never yields an incident; when no
 * incident row matches, its id is reported as the reason the record is benign.
 */
struct rsre_classify_pattern {
    const char *id;    /* stable, unique, "<source>.<what>" */
    unsigned kinds;    /* RSRE_CLS_KIND bits */
    const char *field; /* path or virtual field */
    const char *all[RSRE_CLASSIFY_TERMS];
    const char *any[RSRE_CLASSIFY_TERMS];
    const char *unless[RSRE_CLASSIFY_TERMS];
    const char *where[RSRE_CLASSIFY_TERMS];
    unsigned min_count;
    const char *incident; /* taxonomy incident id, or NULL for a benign marker */
    enum rsre_severity severity;
    enum rsre_evidence_strength strength;
    const char *note; /* one line for people: what the text is and whose it is */
};

/*
 * The result for one record. Everything is filled by rsre_classify_record, also on error
 * (then `incident` is NULL and `error` says why). The const char pointers are static (they
 * point into the pattern table or at literals) and valid for the life of the process.
 */
struct rsre_classification {
    enum rsre_record_kind kind;           /* RSRE_REC_UNKNOWN when the kind could not be read */
    const char *incident;                 /* taxonomy incident id, NULL = none */
    enum rsre_severity severity;          /* severity hint; RSRE_SEV_INFO when none */
    enum rsre_evidence_strength strength; /* contribution; meaningful only with an incident */
    const char *rule;                  /* deciding row id; for none, a benign marker id or NULL */
    const char *field;                 /* field the span was found in, or NULL */
    size_t span_offset;                /* byte offset of the match within that field's value */
    size_t span_len;                   /* byte length of the match */
    char span[RSRE_CLASSIFY_SPAN_MAX]; /* the matched text, control characters as spaces,
                                          truncated on a UTF-8 boundary */
    size_t nmatched;                   /* incident rows that matched */
    const char *also[RSRE_CLASSIFY_ALSO_MAX]; /* other matching rows whose incident differs
                                                 from the decision, best first; NULL-ended */
    char error[RSRE_CLASSIFY_ERR_MAX];        /* "" on success */
};

/*
 * Classifies one record: `json_line` holds `len` bytes (no terminator needed; a trailing
 * newline or CR is allowed). Fills *out completely.
 * Returns 0 (classified, possibly as none), RSRE_ELIMIT (too long, too deep), RSRE_EPARSE
 * (not JSON), RSRE_EINVALID (JSON but not a valid record: not an object, unknown kind,
 * missing or mistyped object, a read field of the wrong type), -EINVAL (NULL arguments) or
 * -ENOMEM. On every failure out->error names the problem, with the JSON path where one applies.
 */
int rsre_classify_record(const char *json_line, size_t len, struct rsre_classification *out);

/* "k8s_event", ... or "unknown". */
const char *rsre_record_kind_name(enum rsre_record_kind k);
/* Parses a kind name. Returns 0 or RSRE_ENOTFOUND. */
int rsre_record_kind_parse(const char *s, enum rsre_record_kind *out);

/*
 * The built-in pattern table, in evaluation order (*n rows). Static; never NULL.
 */
const struct rsre_classify_pattern *rsre_classify_patterns(size_t *n);

/*
 * Checks a pattern table: unique non-empty ids, kinds within range, a known field or path,
 * well-formed terms and where clauses, a NULL terminator in every list, a term to count when
 * min_count is set, severity and strength in range, a note, and every incident present in
 * `taxonomy` (when not NULL). Returns 0 or RSRE_EINVALID with the first problem in `err`.
 */
int rsre_classify_check_table(const struct rsre_classify_pattern *rows, size_t n,
                              const struct rsre_taxonomy *taxonomy, char *err, size_t err_len);

/*
 * Internal, for tests and tools: rsre_classify_record against another table (`rows`, `n`),
 * which the caller has checked with rsre_classify_check_table.
 */
int rsre__classify_record_with(const struct rsre_classify_pattern *rows, size_t n,
                               const char *json_line, size_t len, struct rsre_classification *out);

/* ---- streaming ------------------------------------------------------------------------- */

/*
 * Called once per non-blank line. `line` is the 1-based line number; `rc` is the result of
 * rsre_classify_record (or RSRE_ELIMIT for a line longer than the record limit, which is
 * skipped without being buffered). `c` is valid only during the call. Returning nonzero stops
 * the stream: rsre_classify_stream_feed/finish return that value.
 */
typedef int (*rsre_classify_cb)(void *ud, unsigned long line, int rc,
                                const struct rsre_classification *c);

typedef struct rsre_classify_stream rsre_classify_stream;

struct rsre_classify_stats {
    unsigned long lines;   /* lines seen, blank ones included */
    unsigned long records; /* non-blank lines handed to the callback */
    unsigned long errors;  /* of which with rc != 0 */
    unsigned long matched; /* of which classified to an incident */
};

/* Creates a stream (owned by the caller; release with destroy). Returns 0, -EINVAL, -ENOMEM. */
int rsre_classify_stream_create(rsre_classify_cb cb, void *ud, rsre_classify_stream **out);
/* Feeds bytes; complete lines are classified in order. Memory stays below the record limit
 * plus one read: a line over the limit is reported and then discarded as it arrives.
 * Returns 0, the callback's nonzero value, -ENOMEM or -EINVAL. */
int rsre_classify_stream_feed(rsre_classify_stream *s, const void *buf, size_t len);
/* Classifies a final line without a newline. Returns as feed. */
int rsre_classify_stream_finish(rsre_classify_stream *s);
/* Counters so far. */
void rsre_classify_stream_stats(const rsre_classify_stream *s, struct rsre_classify_stats *out);
/* NULL is a no-op. */
void rsre_classify_stream_destroy(rsre_classify_stream *s);

#endif
