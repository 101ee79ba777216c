/*
 * Micro-benchmark of the aggregator's decode step: protobuf-c 1.4.1's
 * protobuf_c_message_unpack() against rsre_pbuf_decode_fast() (common/pbuf_decode.h) on the
 * AgentMessage robot-sre-sim's load mode sends (one NodeConditions signal, then FilesystemUsage
 * signals; tests/support/pbuf_batch.c), each decoding into an arena-like allocator (a bump
 * pointer over one buffer, reset per message, free a no-op) as aggregator/ingest/ingest.c does.
 * Usage: bench_pbuf_decode [signals per batch, default 250] [seconds per decoder, default 1].
 *
 * Output, one line per decoder:
 *   <decoder>: N signals, B bytes: X ns/batch, Y ns/signal
 * followed by the speed-up. What it tells an operator: the CPU the aggregator's loop spends
 * decoding each signal an agent sends.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/pbuf_batch.c"
#include "common/pbuf_decode.h"

struct bump {
    ProtobufCAllocator base;
    unsigned char *buf;
    size_t cap, used;
};

static void *bump_alloc(void *data, size_t size) {
    struct bump *b = data;
    size = (size + 15) & ~(size_t)15;
    if (size > b->cap - b->used) {
        return NULL;
    }
    void *p = b->buf + b->used;
    b->used += size;
    return p;
}

static void bump_free(void *data, void *p) {
    (void)data;
    (void)p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef ProtobufCMessage *(*decode_fn)(const ProtobufCMessageDescriptor *, ProtobufCAllocator *,
                                       size_t, const uint8_t *);

/* Decodes the batch repeatedly for about `secs` seconds; returns ns per batch (0: failed). */
static double run(decode_fn fn, struct bump *arena, const uint8_t *b, size_t len, double secs) {
    const ProtobufCMessageDescriptor *d = &robot_sre__agent__v1__agent_message__descriptor;
    size_t iters = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 64; i++) {
            arena->used = 0;
            if (fn(d, &arena->base, len, b) == NULL) {
                return 0;
            }
        }
        iters += 64;
        t = now_s();
    } while (t - t0 < secs);
    return (t - t0) * 1e9 / (double)iters;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 250;
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    if (n == 0 || n > 100000 || secs <= 0) {
        fprintf(stderr, "usage: bench_pbuf_decode [signals 1..100000] [seconds]\n");
        return 2;
    }
    size_t len = 0;
    uint8_t *b = pb_load_batch(n, &len);
    struct bump arena = {{bump_alloc, bump_free, NULL}, NULL, len * 8 + 65536, 0};
    arena.base.allocator_data = &arena;
    arena.buf = malloc(arena.cap);
    if (b == NULL || arena.buf == NULL) {
        return 1;
    }
    /* Warm up both (the fast decoder builds its descriptor index on first use). */
    run(protobuf_c_message_unpack, &arena, b, len, secs / 10);
    run(rsre_pbuf_decode_fast, &arena, b, len, secs / 10);
    double pc = run(protobuf_c_message_unpack, &arena, b, len, secs);
    double fast = run(rsre_pbuf_decode_fast, &arena, b, len, secs);
    if (pc == 0 || fast == 0) {
        fprintf(stderr, "decode failed\n");
        return 1;
    }
    printf("protobuf_c_message_unpack: %zu signals, %zu bytes: %.0f ns/batch, %.1f ns/signal\n", n,
           len, pc, pc / (double)n);
    printf("rsre_pbuf_decode_fast:     %zu signals, %zu bytes: %.0f ns/batch, %.1f ns/signal\n", n,
           len, fast, fast / (double)n);
    printf("speed-up: %.2fx\n", pc / fast);
    free(arena.buf);
    free(b);
    return 0;
}
