/*
 * libFuzzer target for the kernel text parsers (agent/kmsg.h): the input is a stream of
 * /dev/kmsg records (split the way the collector splits a non-device source) and, separately,
 * the text of a /proc/pressure file.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - splitting consumes the input exactly, in records of at least one byte;
 *   - every emitted event has a known kind, a printable-ASCII message of at most 4096 bytes and
 *     a printable subject of at most 1024 bytes, and its KernelEvent Signal passes protocol
 *     validation;
 *   - the counters add up: records + parse errors = records offered; emitted + suppressed =
 *     matched;
 *   - a parsed pressure file gives percentages within 0..100 and a valid PressureStall Signal.
 *
 *   CC=clang cmake -S . -B build-fs-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fs-fuzz --target fuzz_kmsg
 *   ./build-fs-fuzz/tests/fuzz_kmsg -max_total_time=60 tests/data/kmsg
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/kmsg.h"
#include "common/error.h"
#include "common/pbuf.h"

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static void check_text(const char *s, size_t max) {
    size_t n = strlen(s);
    check(n <= max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        check((c >= 0x20 && c < 0x7f) || c == '\t');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    static struct rsre_kmsg_state st;
    static struct rsre_kmsg_event ev;
    rsre_kmsg_state_init(&st, size ? (uint32_t)(data[0] % 8) : 0);
    size_t off = 0, rl, offered = 0;
    char err[RSRE_PBUF_ERR_LEN];
    while (rsre_kmsg_next_record(buf + off, size - off, 1, &rl)) {
        check(rl > 0 && rl <= size - off);
        offered++;
        int rc = rsre_kmsg_process(&st, buf + off, rl, &ev);
        check(rc == 0 || rc == 1 || rc == RSRE_EPARSE);
        if (rc == 1) {
            check(ev.kind >= RSRE_KMSG_OOM_KILL && ev.kind <= RSRE_KMSG_OTHER);
            check(ev.priority <= 7);
            check_text(ev.message, RSRE_KMSG_MAX_MESSAGE);
            check_text(ev.subject, RSRE_KMSG_MAX_SUBJECT);
            struct rsre_kmsg_signal sig;
            RobotSre__Agent__V1__Signal *s = rsre_kmsg_build_signal(&ev, 1, &sig);
            check(rsre_pbuf_validate(&s->base, err, sizeof(err)) == 0);
        }
        off += rl;
    }
    check(off == size);
    check(st.stats.records + st.stats.parse_errors == offered);
    check(st.stats.emitted + st.stats.suppressed == st.stats.matched);

    /* The same bytes as a single record, and as a pressure file. */
    struct rsre_kmsg_record r;
    if (rsre_kmsg_parse_record(buf, size, &r) == 0) {
        check(r.priority <= 7 && r.facility <= 127);
        check(r.msg >= buf && r.msg + r.msg_len <= buf + size);
        check(r.dict_len == 0 || (r.dict >= buf && r.dict + r.dict_len <= buf + size));
    }
    struct rsre_psi p;
    if (rsre_psi_parse(buf, size, &p) == 0) {
        check(p.has_some);
        check(p.some.avg10 >= 0 && p.some.avg10 <= 100 && p.some.avg300 <= 100);
        struct rsre_psi_signal sig;
        RobotSre__Agent__V1__Signal *s = rsre_psi_build_signal(RSRE_PSI_IO, &p, 1, &sig);
        check(rsre_pbuf_validate(&s->base, err, sizeof(err)) == 0);
    }
    return 0;
}
