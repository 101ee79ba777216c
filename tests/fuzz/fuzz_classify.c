/*
 * libFuzzer target over the evidence classifier (engine/classify.h): what the aggregator and
 * robotctl do with every evidence line, whoever wrote it.
 *
 * The input is used twice: whole, as one record for rsre_classify_record; and as a byte stream
 * for the streaming helper, split into two feeds at a point chosen by the first byte.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - results are only the documented ones (0, RSRE_EPARSE, RSRE_EINVALID, RSRE_ELIMIT);
 *   - a failure has an error message and no incident; a success has none;
 *   - an incident is a taxonomy class, named by a row of the table, with severity and strength
 *     in range; a none has severity info and no incident rows matched;
 *   - every string in the result is NUL-terminated within its buffer;
 *   - classification is deterministic: the same bytes give the same result, byte for byte;
 *   - the stream sees every newline-terminated line: records + blank lines = lines, and the
 *     split point does not change what it reports.
 *
 *   CC=clang cmake -S . -B build-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_classify
 *   ./build-fuzz/tests/fuzz_classify -max_total_time=60 -max_len=8192 tests/fuzz/corpus/classify
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "engine/classify.h"
#include "engine/taxonomy.h"

#define FUZZ_MAX_LEN (RSRE_CLASSIFY_MAX_RECORD + 64u)

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static int documented(int rc) {
    return rc == 0 || rc == RSRE_EPARSE || rc == RSRE_EINVALID || rc == RSRE_ELIMIT;
}

static void check_result(int rc, const struct rsre_classification *c) {
    check(documented(rc));
    check(memchr(c->span, '\0', sizeof(c->span)) != NULL);
    check(memchr(c->error, '\0', sizeof(c->error)) != NULL);
    if (rc != 0) {
        check(c->incident == NULL && c->error[0] != '\0');
        return;
    }
    check(c->error[0] == '\0');
    check((unsigned)c->kind < RSRE_REC_KIND_COUNT);
    check((unsigned)c->severity < RSRE_SEV_COUNT);
    check((unsigned)c->strength < RSRE_EVIDENCE_STRENGTH_COUNT);
    if (c->incident) {
        check(rsre_taxonomy_incident(rsre_taxonomy_builtin(), c->incident) != NULL);
        check(c->rule != NULL && c->nmatched >= 1);
    } else {
        check(c->severity == RSRE_SEV_INFO && c->nmatched == 0);
    }
    for (size_t i = 0; i < RSRE_CLASSIFY_ALSO_MAX && c->also[i]; i++) {
        check(c->also[i][0] != '\0');
    }
}

struct sink {
    unsigned long n, errors;
    uint32_t hash;
};

static int on_record(void *ud, unsigned long line, int rc, const struct rsre_classification *c) {
    struct sink *s = ud;
    check_result(rc, c);
    s->n++;
    s->errors += rc != 0;
    s->hash = s->hash * 31u + (uint32_t)line * 7u + (uint32_t)(rc + 100) +
              (c->incident ? (uint32_t)strlen(c->incident) : 0u);
    return 0;
}

static void run_stream(const uint8_t *data, size_t size, size_t split, struct sink *s,
                       struct rsre_classify_stats *st) {
    rsre_classify_stream *str = NULL;
    check(rsre_classify_stream_create(on_record, s, &str) == 0);
    check(rsre_classify_stream_feed(str, data, split) == 0);
    check(rsre_classify_stream_feed(str, data + split, size - split) == 0);
    check(rsre_classify_stream_finish(str) == 0);
    rsre_classify_stream_stats(str, st);
    rsre_classify_stream_destroy(str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_MAX_LEN) {
        return 0;
    }
    static struct rsre_classification a, b;
    int rc = rsre_classify_record((const char *)data, size, &a);
    check(rc != -EINVAL);
    if (rc == -ENOMEM) {
        return 0;
    }
    check_result(rc, &a);
    check(rsre_classify_record((const char *)data, size, &b) == rc);
    check(memcmp(&a, &b, sizeof(a)) == 0);

    if (size == 0) {
        return 0;
    }
    struct sink s1 = {0}, s2 = {0};
    struct rsre_classify_stats st1, st2;
    run_stream(data, size, size, &s1, &st1);
    run_stream(data, size, data[0] % (size + 1), &s2, &st2);
    check(s1.n == s2.n && s1.errors == s2.errors && s1.hash == s2.hash);
    check(st1.records == s1.n && st1.errors == s1.errors && st1.matched <= st1.records);
    check(memcmp(&st1, &st2, sizeof(st1)) == 0);
    size_t newlines = 0;
    for (size_t i = 0; i < size; i++) {
        newlines += data[i] == '\n';
    }
    check(st1.lines == newlines || st1.lines == newlines + 1);
    check(st1.records <= st1.lines);
    return 0;
}
