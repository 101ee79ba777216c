/*
 * libFuzzer target: the fast protobuf decoder (common/pbuf_decode.h) against protobuf-c 1.4.1's
 * protobuf_c_message_unpack() on the same bytes (tests/support/pbuf_diff.c). Aborts when they
 * disagree on accepting the input, when the two messages differ in any field or pack to
 * different bytes, or when the fast decoder leaves an allocation behind.
 *
 * The first input byte picks the message type (bit 0: 0 = AgentMessage, 1 =
 * AggregatorMessage); the rest is the message. Nesting stays far below the fast decoder's
 * depth limit for these types, so no input may make them differ.
 *
 *   CC=clang cmake -S . -B build-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_pbuf_decode
 *   ./build-fuzz/tests/fuzz_pbuf_decode -max_total_time=30 tests/fuzz/corpus/pbuf_decode
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../support/pbuf_diff.c"
#include "robot_sre/agent.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    const ProtobufCMessageDescriptor *d =
        (data[0] & 1) ? &robot_sre__agent__v1__aggregator_message__descriptor
                      : &robot_sre__agent__v1__agent_message__descriptor;
    if (pd_check(d, data + 1, size - 1) == PD_MISMATCH) {
        fprintf(stderr, "fast decoder and protobuf-c disagree: %s\n", pd_where);
        abort();
    }
    return 0;
}
