#ifndef RSRE_PBUF_DECODE_H
#define RSRE_PBUF_DECODE_H

/*
 * A faster drop-in for protobuf-c 1.4.1's protobuf_c_message_unpack(), driven by the same
 * generated descriptors and producing the same structs (see the "Fast decoder" paragraph in
 * common/pbuf.h for what it does and the one place it differs).
 */

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest sub-message nesting accepted (the root message is depth 0). protobuf-c has no limit. */
#define RSRE_PBUF_DECODE_MAX_DEPTH 64

/*
 * Decodes `len` bytes at `data` (which must not be NULL, even when len is 0) as a message of
 * type `desc`, allocating through `alloc` (NULL: malloc/free). Returns the message, or NULL when
 * the bytes are malformed exactly where protobuf_c_message_unpack() would refuse them, when
 * nesting is deeper than RSRE_PBUF_DECODE_MAX_DEPTH, or when `alloc` returned NULL. On NULL
 * every allocation made has been handed back to alloc->free. On success the caller owns the
 * message and frees it with protobuf_c_message_free_unpacked(msg, alloc): every sub-message,
 * string, bytes value, repeated array and unknown field is a separate allocation, as with
 * protobuf-c. The input is not retained. Thread-safe: the per-descriptor index it builds on
 * first use of a descriptor is published once and read-only afterwards.
 */
ProtobufCMessage *rsre_pbuf_decode_fast(const ProtobufCMessageDescriptor *desc,
                                        ProtobufCAllocator *alloc, size_t len, const uint8_t *data);

#endif
