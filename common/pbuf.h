#ifndef RSRE_PBUF_H
#define RSRE_PBUF_H

/*
 * Bounded protobuf decoding and validation for the agent <-> aggregator stream
 * (proto/robot_sre/agent.proto, package robot_sre.agent.v1). Both daemons decode every message
 * a peer sends through this module, so a hostile or broken peer gets a clear error and never
 * an abort, an unbounded allocation or a half-checked message.
 *
 * Three layers, each usable on its own:
 *
 *   1. Unpack: refuses input longer than max_len (RSRE_ELIMIT) before looking at it, decodes
 *      with an allocator that fails (returns NULL) once a byte budget proportional to the input
 *      length is spent (RSRE_ELIMIT) instead of aborting, and reports malformed wire bytes as
 *      RSRE_EPARSE.
 *   2. Validate: checks the semantic limits the peer controls (string lengths and character
 *      sets, repeated counts, required fields and oneofs, DNS-1123 node names, sequence > 0,
 *      percentages within 0..100, finite doubles, cross-field invariants such as
 *      bytes_free <= bytes_total). Fails with RSRE_EINVALID and a message naming the field by
 *      its path, e.g. "signal_batch.signals[3].filesystem.bytes_free: greater than bytes_total".
 *   3. Decode = unpack + validate, freeing the message on failure.
 *
 * Forward compatibility: a message whose oneof (AgentMessage.body, AggregatorMessage.body,
 * Signal.kind) is unset but which carries unknown fields comes from a newer peer that used a
 * member this build does not know. Validation accepts it and the caller must ignore it: check
 * for *_BODY__NOT_SET / *_KIND__NOT_SET after a successful decode. Unknown enum values are
 * accepted too (see the fallback each enum documents in agent.proto). Unknown fields are
 * accepted up to RSRE_PBUF_MAX_UNKNOWN_FIELDS per message, and only with valid field numbers
 * (1..2^29-1): protobuf-c 1.4.1 lets a non-minimally encoded tag of field 0 through as an
 * unknown field, which validation refuses.
 *
 * Fast decoder: layer 1 (and the aggregator's ingest, which decodes into its own arena)
 * unpacks with rsre_pbuf_decode_fast() (common/pbuf_decode.h) instead of protobuf-c's
 * protobuf_c_message_unpack(): the same generated structs, driven by the same descriptors,
 * about 2.7x faster on signal batches (tests/bench/bench_pbuf_decode.c). It makes protobuf-c
 * 1.4.1's decisions rule for rule, quirks included: a bool is read from any wire type; a
 * oneof member seen again replaces the earlier one; a singular sub-message seen twice is
 * merged as protobuf-c merges, where the later occurrence's proto3 scalars always win (even
 * 0) and a merge fails when a oneof of the sub-message is unset in both. It differs in three
 * ways: nesting deeper than RSRE_PBUF_DECODE_MAX_DEPTH (64) is refused (protobuf-c recurses
 * without a limit; agent.proto nests 4 levels); it allocates somewhat less (no scanned-member
 * list), so the budget below is if anything looser; and for input that is both malformed and
 * over budget, RSRE_EPARSE and RSRE_ELIMIT may be reported the other way round, as the
 * allocation order differs. tests/unit/test_pbuf_decode.c and tests/fuzz/fuzz_pbuf_decode.c
 * check it against protobuf-c.
 *
 * Strings: protobuf-c hands strings over NUL-terminated, so a string with an embedded NUL byte
 * is seen (and validated) up to that byte only.
 *
 * Thread safety: every function is reentrant. The only global state is a read-only index of
 * the validation rules, built once on first use (pthread_once).
 */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "robot_sre/agent.pb-c.h"

/* ---- limits (also documented in docs/protocol.md) ------------------------------------------- */

/* Default and recommended max_len: the largest encoded message either side accepts or sends.
 * Senders cut signal batches so they stay below it (4096 typical signals encode to ~630 KB). */
#define RSRE_PBUF_MAX_MESSAGE_BYTES (1024u * 1024u)
/* Decode budget: an unpack of `len` bytes may allocate at most
 * len * RSRE_PBUF_DECODE_FACTOR + RSRE_PBUF_DECODE_SLACK bytes, each allocation charged its size
 * plus RSRE_PBUF_ALLOC_OVERHEAD: at most ~32 MiB for a message of the default maximum size.
 * Legitimate messages need 4x (typical batches) to 18x (batches of minimal signals) their
 * encoded size; a message built from many empty sub-messages needs ~70x and is refused with
 * RSRE_ELIMIT (test_proto.c checks both). */
#define RSRE_PBUF_DECODE_FACTOR 32u
#define RSRE_PBUF_DECODE_SLACK (64u * 1024u)
#define RSRE_PBUF_ALLOC_OVERHEAD 16u

/* String length bounds in bytes (not counting the NUL). */
#define RSRE_PBUF_MAX_NAME_LEN 253    /* DNS-1123 subdomain: node and pod names */
#define RSRE_PBUF_MAX_LABEL_LEN 63    /* DNS-1123 label: namespaces, container names */
#define RSRE_PBUF_MAX_ID_LEN 128      /* request ids, action ids, parameter keys, versions */
#define RSRE_PBUF_MAX_STRING_LEN 1024 /* one-line strings: reasons, targets, images, object ids */
/* Free text and paths; also the bound of any string field without a tighter rule. */
#define RSRE_PBUF_MAX_TEXT_LEN 4096

/* Repeated-field bounds. */
#define RSRE_PBUF_MAX_SIGNALS 4096           /* SignalBatch.signals */
#define RSRE_PBUF_MAX_TAINTS 64              /* NodeConditions.taints */
#define RSRE_PBUF_MAX_CAPABILITIES 64        /* Hello.capabilities */
#define RSRE_PBUF_MAX_ACTIONS 64             /* Hello.actions, ConfigUpdate.action_allowlist */
#define RSRE_PBUF_MAX_PARAMETERS 32          /* ActionRequest.parameters */
#define RSRE_PBUF_MAX_REMOVED_IDS 1024       /* ActionResult.removed_object_ids */
#define RSRE_PBUF_MAX_THRESHOLD_OVERRIDES 32 /* ConfigUpdate.threshold_overrides */
#define RSRE_PBUF_MAX_ACKED_RESULTS 64       /* Ack.result_request_ids */
#define RSRE_PBUF_MAX_REPEATED 4096          /* any repeated field without a tighter rule */
#define RSRE_PBUF_MAX_UNKNOWN_FIELDS 64      /* fields unknown to this build, per message */

/* Numeric bounds. */
#define RSRE_PBUF_MIN_INTERVAL_MS 1000u /* non-zero CollectorIntervals fields */
#define RSRE_PBUF_MAX_INTERVAL_MS 3600000u
#define RSRE_PBUF_MAX_UNIX_MS INT64_C(7258118400000) /* 2200-01-01T00:00:00Z */

/* Protocol revision this build speaks (Hello / ConfigUpdate .protocol_revision). */
#define RSRE_PBUF_PROTOCOL_REVISION 1u

/* Suggested size of the err buffer passed to the validate/decode functions. */
#define RSRE_PBUF_ERR_LEN 256

/* ---- failing allocator ---------------------------------------------------------------------- */

/*
 * A ProtobufCAllocator over malloc/free that refuses (returns NULL) any allocation that would
 * take the bytes handed out past `budget`. Frees are not credited back, so the budget bounds the
 * total allocated during one unpack. Memory it hands out is plain malloc memory: a message
 * unpacked with it is freed with protobuf_c_message_free_unpacked(msg, NULL) (or the typed
 * rsre_pbuf_free_* below) and the allocator itself can go away as soon as unpacking returns.
 * Embed it (usually on the stack); fields other than `base` are read-only for callers.
 */
struct rsre_pbuf_allocator {
    ProtobufCAllocator base; /* pass &a.base to protobuf-c */
    size_t budget;           /* bytes that may be handed out in total */
    size_t used;             /* bytes handed out so far (with per-allocation overhead) */
    int exhausted;           /* set when an allocation was refused for the budget */
    int failed;              /* set when malloc itself failed */
};

/* Initialises `a` with the given budget in bytes. */
void rsre_pbuf_allocator_init(struct rsre_pbuf_allocator *a, size_t budget);

/* The budget rsre_pbuf_unpack() uses for an input of `len` bytes (saturates at SIZE_MAX). */
size_t rsre_pbuf_decode_budget(size_t len);

/* ---- generic helpers ------------------------------------------------------------------------ */

/*
 * Unpacks `len` bytes at `buf` as a message of type `desc`. `max_len` 0 means
 * RSRE_PBUF_MAX_MESSAGE_BYTES. On success stores a message owned by the caller in *out (free it
 * with protobuf_c_message_free_unpacked(*out, NULL)) and returns 0. On failure *out is NULL and
 * the result is RSRE_ELIMIT (len > max_len, or the decode budget ran out), RSRE_EPARSE
 * (malformed bytes), -ENOMEM (malloc failed within budget) or -EINVAL (NULL arguments, or
 * buf NULL with len > 0). The input is not retained.
 */
int rsre_pbuf_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                     size_t max_len, ProtobufCMessage **out);

/*
 * Encodes `msg`. Returns 0 with a malloc'd buffer in *out (caller frees with free()) and its
 * length in *out_len; RSRE_ELIMIT when the encoding would be longer than `max_len` (0 means
 * RSRE_PBUF_MAX_MESSAGE_BYTES), so a sender never produces what its peer must refuse; -ENOMEM;
 * -EINVAL for NULL arguments. An empty encoding yields a non-NULL 1-byte allocation and
 * *out_len 0.
 */
int rsre_pbuf_pack(const ProtobufCMessage *msg, size_t max_len, uint8_t **out, size_t *out_len);

/*
 * Validates `msg` (and every sub-message) against the limits above and the rules documented in
 * agent.proto. Works for any message of package robot_sre.agent.v1, e.g. a lone Signal.
 * Returns 0 or RSRE_EINVALID; on RSRE_EINVALID and err != NULL, writes a NUL-terminated
 * "field.path: problem" message of at most err_len bytes (truncated if needed). -EINVAL when
 * msg is NULL. Does not modify msg.
 */
int rsre_pbuf_validate(const ProtobufCMessage *msg, char *err, size_t err_len);

/* True when `s` is a valid Kubernetes DNS-1123 subdomain (what Node names must be). */
int rsre_pbuf_is_dns1123_subdomain(const char *s);

/* ---- typed API for the stream --------------------------------------------------------------- */

/* rsre_pbuf_unpack() for AgentMessage (what the aggregator receives). */
int rsre_pbuf_unpack_agent_message(const uint8_t *buf, size_t len, size_t max_len,
                                   RobotSre__Agent__V1__AgentMessage **out);
/* rsre_pbuf_unpack() for AggregatorMessage (what the agent receives). */
int rsre_pbuf_unpack_aggregator_message(const uint8_t *buf, size_t len, size_t max_len,
                                        RobotSre__Agent__V1__AggregatorMessage **out);

/* rsre_pbuf_validate() for the two stream message types. */
int rsre_pbuf_validate_agent_message(const RobotSre__Agent__V1__AgentMessage *msg, char *err,
                                     size_t err_len);
int rsre_pbuf_validate_aggregator_message(const RobotSre__Agent__V1__AggregatorMessage *msg,
                                          char *err, size_t err_len);

/*
 * Unpack, then validate. Returns 0 with the message in *out, or the unpack error, or
 * RSRE_EINVALID (with err filled as for rsre_pbuf_validate); on any failure *out is NULL and
 * nothing is left allocated. On RSRE_ELIMIT/RSRE_EPARSE err also gets a short description.
 */
int rsre_pbuf_decode_agent_message(const uint8_t *buf, size_t len, size_t max_len,
                                   RobotSre__Agent__V1__AgentMessage **out, char *err,
                                   size_t err_len);
int rsre_pbuf_decode_aggregator_message(const uint8_t *buf, size_t len, size_t max_len,
                                        RobotSre__Agent__V1__AggregatorMessage **out, char *err,
                                        size_t err_len);

/* Free a message from the functions above. NULL is a no-op. */
void rsre_pbuf_free_agent_message(RobotSre__Agent__V1__AgentMessage *msg);
void rsre_pbuf_free_aggregator_message(RobotSre__Agent__V1__AggregatorMessage *msg);

#endif
