/*
 * libFuzzer target over the path every byte from a peer takes: bounded unpack, then validation,
 * for both directions of the agent <-> aggregator stream (common/pbuf.h).
 *
 * The first input byte picks the direction (bit 0: 0 = AgentMessage, what the aggregator
 * receives; 1 = AggregatorMessage, what the agent receives); the rest is the message.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - results are only the documented ones (0, RSRE_EPARSE, RSRE_ELIMIT, RSRE_EINVALID);
 *   - a rejected message leaves *out NULL and an error naming what failed;
 *   - an accepted message re-encodes, and the re-encoding decodes and validates again with the
 *     same outcome (validation depends on the decoded values only, not on the wire form).
 *
 *   CC=clang cmake -S . -B build-proto-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-proto-fuzz --target fuzz_agent_proto
 *   ./build-proto-fuzz/tests/fuzz_agent_proto -max_total_time=30 -max_len=4096
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/pbuf.h"

/* Largest message the target accepts: small enough that each run stays fast. */
#define FUZZ_MAX_LEN (64u * 1024u)

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static int documented(int rc) {
    return rc == 0 || rc == RSRE_EPARSE || rc == RSRE_ELIMIT || rc == RSRE_EINVALID;
}

/* Decodes b as the given side; returns the result, leaving the message in *out on success. */
static int decode(int side, const uint8_t *b, size_t len, ProtobufCMessage **out, char *err,
                  size_t err_len) {
    if (side == 0) {
        RobotSre__Agent__V1__AgentMessage *m = (void *)0x1;
        int rc = rsre_pbuf_decode_agent_message(b, len, FUZZ_MAX_LEN, &m, err, err_len);
        *out = m ? &m->base : NULL;
        return rc;
    }
    RobotSre__Agent__V1__AggregatorMessage *m = (void *)0x1;
    int rc = rsre_pbuf_decode_aggregator_message(b, len, FUZZ_MAX_LEN, &m, err, err_len);
    *out = m ? &m->base : NULL;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    int side = data[0] & 1;
    const uint8_t *msg = data + 1;
    size_t len = size - 1;
    char err[RSRE_PBUF_ERR_LEN];
    ProtobufCMessage *m = NULL;

    int rc = decode(side, msg, len, &m, err, sizeof(err));
    check(documented(rc));
    if (rc != 0) {
        check(m == NULL);
        check(err[0] != '\0' && strchr(err, ':') != NULL);
        return 0;
    }
    check(m != NULL);

    /* Validation of the decoded message is deterministic and side-effect free. */
    check(rsre_pbuf_validate(m, err, sizeof(err)) == 0);

    /* Re-encode (the wire form may differ: defaults dropped, varints shortened, duplicates
     * merged) and decode again: same outcome. */
    uint8_t *again = NULL;
    size_t again_len = 0;
    rc = rsre_pbuf_pack(m, SIZE_MAX, &again, &again_len);
    check(rc == 0);
    ProtobufCMessage *m2 = NULL;
    rc = decode(side, again, again_len, &m2, err, sizeof(err));
    /* A re-encoding can be longer than the input (int32 -1 as a 5-byte varint on input becomes
     * 10 bytes), so the size limit may refuse it; anything else must succeed. */
    check(rc == 0 || rc == RSRE_ELIMIT);
    if (rc == 0) {
        check(m2 != NULL);
        check(protobuf_c_message_get_packed_size(m2) == again_len);
        protobuf_c_message_free_unpacked(m2, NULL);
    }
    free(again);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
