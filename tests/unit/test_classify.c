/*
 * Tests for engine/classify: the pattern table is valid and covers every incident class; the
 * evidence corpus (tests/data/evidence/corpus.jsonl) classifies as each record expects, with
 * per-class precision and recall printed; benign look-alikes never yield more than a WEAK
 * contribution; dozens of malformed records fail with a clear error; term semantics on a small
 * table of our own; the streaming helper (chunking, CRLF, blank and overlong lines, stop);
 * the size and depth limits and linear time on a 1 MiB record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "engine/classify.h"
#include "engine/taxonomy.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int classify_str(const char *s, struct rsre_classification *c) {
    return rsre_classify_record(s, strlen(s), c);
}

/* Every string in a result is bounded and NUL-terminated; none/incident is consistent. */
static void check_result(int rc, const struct rsre_classification *c) {
    assert_non_null(memchr(c->span, '\0', sizeof(c->span)));
    assert_non_null(memchr(c->error, '\0', sizeof(c->error)));
    if (rc != 0) {
        assert_null(c->incident);
        assert_true(c->error[0] != '\0');
        return;
    }
    assert_true(c->error[0] == '\0');
    assert_true((unsigned)c->kind < RSRE_REC_KIND_COUNT);
    assert_true((unsigned)c->severity < RSRE_SEV_COUNT);
    assert_true((unsigned)c->strength < RSRE_EVIDENCE_STRENGTH_COUNT);
    if (c->incident) {
        assert_non_null(rsre_taxonomy_incident(rsre_taxonomy_builtin(), c->incident));
        assert_non_null(c->rule);
        assert_true(c->nmatched >= 1);
    } else {
        assert_int_equal(c->severity, RSRE_SEV_INFO);
        assert_int_equal(c->nmatched, 0);
    }
}

/* ---- the table ---------------------------------------------------------------------------- */

static void test_table_valid_and_covering(void **unused) {
    (void)unused;
    size_t n;
    const struct rsre_classify_pattern *rows = rsre_classify_patterns(&n);
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    char err[256];
    assert_non_null(t);
    int rc = rsre_classify_check_table(rows, n, t, err, sizeof(err));
    if (rc) {
        fail_msg("pattern table: %s", err);
    }
    /* Every incident class of the taxonomy has rows; at least one STRONG or DIRECT. */
    for (size_t i = 0; i < t->nincidents; i++) {
        int any = 0, strong = 0;
        for (size_t k = 0; k < n; k++) {
            if (rows[k].incident && !strcmp(rows[k].incident, t->incidents[i].id)) {
                any++;
                strong += rows[k].strength != RSRE_EVIDENCE_WEAK;
            }
        }
        if (!any || !strong) {
            fail_msg("incident %s: %d rows, %d strong", t->incidents[i].id, any, strong);
        }
    }
    /* Every record kind has rows. */
    for (int k = 0; k < RSRE_REC_KIND_COUNT; k++) {
        int any = 0;
        for (size_t i = 0; i < n; i++) {
            any |= (rows[i].kinds & RSRE_CLS_KIND(k)) != 0;
        }
        assert_true(any);
    }
}

static void test_table_check_rejects(void **unused) {
    (void)unused;
    const struct rsre_classify_pattern good = {.id = "ok",
                                               .kinds = RSRE_CLS_KIND(RSRE_REC_LOG_LINE),
                                               .field = "@text",
                                               .all = {"x"},
                                               .incident = "node_disk_pressure",
                                               .note = "n"};
    struct rsre_classify_pattern rows[2];
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    char err[256];
    rows[0] = good;
    assert_int_equal(rsre_classify_check_table(rows, 1, t, err, sizeof(err)), 0);
    assert_int_equal(rsre_classify_check_table(rows, 0, t, NULL, 0), 0);

#define REJECT(stmt, needle)                                                                       \
    do {                                                                                           \
        rows[0] = good;                                                                            \
        rows[1] = good;                                                                            \
        rows[1].id = "ok2";                                                                        \
        struct rsre_classify_pattern *r = &rows[0];                                                \
        (void)r;                                                                                   \
        stmt;                                                                                      \
        assert_int_equal(rsre_classify_check_table(rows, 2, t, err, sizeof(err)), RSRE_EINVALID);  \
        if (!strstr(err, needle)) {                                                                \
            fail_msg("error \"%s\" lacks \"%s\"", err, needle);                                    \
        }                                                                                          \
    } while (0)
    REJECT(r->id = NULL, "no id");
    REJECT(r->id = "", "no id");
    REJECT(rows[1].id = "ok", "duplicate id");
    REJECT(r->kinds = 0, "kinds");
    REJECT(r->kinds = 1u << RSRE_REC_KIND_COUNT, "kinds");
    REJECT(r->field = NULL, "bad field");
    REJECT(r->field = "@nope", "bad field");
    REJECT(r->field = "a..b", "bad field");
    REJECT(r->field = "a.", "bad field");
    REJECT(r->all[0] = "#<", "not a valid term");
    REJECT(r->all[0] = "#<x", "not a valid term");
    REJECT(r->all[0] = "#=3", "not a valid term");
    REJECT(r->all[0] = "~", "not a valid term");
    REJECT(r->any[0] = "", "not a valid term");
    REJECT(r->unless[0] = "^", "not a valid term");
    REJECT(r->where[0] = "nocolon", "path:term");
    REJECT(r->where[0] = ":x", "path:term");
    REJECT(r->where[0] = "@bogus:x", "path:term");
    REJECT((r->min_count = 3, r->all[0] = NULL, r->any[0] = "x"), "min_count");
    REJECT(r->severity = (enum rsre_severity)7, "out of range");
    REJECT(r->strength = (enum rsre_evidence_strength)9, "out of range");
    REJECT(r->note = NULL, "no note");
    REJECT(r->incident = "no_such_incident", "unknown incident");
    REJECT(for (int i = 0; i < RSRE_CLASSIFY_TERMS; i++) r->all[i] = "x", "terminator");
#undef REJECT
}

/* ---- the corpus --------------------------------------------------------------------------- */

#define NCLASS 12 /* 11 incident classes + none */

struct tally {
    unsigned tp[NCLASS], fp[NCLASS], fn[NCLASS], n[NCLASS];
    unsigned records, correct, benign, benign_ok, mismatched_known;
};

static int class_index(const struct rsre_taxonomy *t, const char *id) {
    if (!id || !strcmp(id, "none")) {
        return 0;
    }
    for (size_t i = 0; i < t->nincidents && i < NCLASS - 1; i++) {
        if (!strcmp(t->incidents[i].id, id)) {
            return (int)i + 1;
        }
    }
    return -1;
}

static void tally_add(struct tally *ty, int want, int got) {
    ty->records++;
    ty->n[want]++;
    if (want == got) {
        ty->correct++;
        ty->tp[want]++;
    } else {
        ty->fp[got]++;
        ty->fn[want]++;
    }
}

static double ratio(unsigned a, unsigned b) {
    return b ? (double)a / (double)b : 1.0;
}

/* Prints per-class precision/recall and the micro average over incident classes (none is not a
 * class: a record wrongly classified none is a miss, a none wrongly classified is a false alarm).
 */
static void tally_print(const struct rsre_taxonomy *t, const struct tally *ty, const char *title) {
    unsigned tp = 0, fp = 0, fn = 0;
    printf("\n%s: %u records, %u classified as expected\n", title, ty->records, ty->correct);
    printf("  %-32s %5s %5s %5s %5s %9s %9s\n", "class", "n", "tp", "fp", "fn", "precision",
           "recall");
    for (int i = 0; i < NCLASS; i++) {
        const char *name = i == 0 ? "none" : t->incidents[i - 1].id;
        printf("  %-32s %5u %5u %5u %5u %9.3f %9.3f\n", name, ty->n[i], ty->tp[i], ty->fp[i],
               ty->fn[i], ratio(ty->tp[i], ty->tp[i] + ty->fp[i]),
               ratio(ty->tp[i], ty->tp[i] + ty->fn[i]));
        if (i > 0) {
            tp += ty->tp[i], fp += ty->fp[i], fn += ty->fn[i];
        }
    }
    printf("  %-32s %5s %5u %5u %5u %9.3f %9.3f\n", "overall (micro, incident classes)", "", tp, fp,
           fn, ratio(tp, tp + fp), ratio(tp, tp + fn));
    if (ty->benign) {
        printf("  benign look-alikes: %u, classified none: %u, never above weak: yes\n", ty->benign,
               ty->benign_ok);
    }
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf);
                buf = NULL;
            }
            buf = b;
        }
    }
    fclose(f);
    if (buf) {
        buf[n < cap ? n : cap - 1] = '\0';
    }
    *len = n;
    return buf;
}

static void test_corpus(void **unused) {
    (void)unused;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    size_t len;
    char *text = slurp(RSRE_TEST_DATA "/evidence/corpus.jsonl", &len);
    assert_non_null(text);
    /* Sets: "dev" (written alongside the table), "h1" (held out from the table frozen at commit
     * 798cdd8, then used to improve it), "h2" (held out from table v2 at commit b50c49d, then
     * used to improve it). The frozen-table figures are in docs/evidence-classifier.md. */
    static const char *const set_names[] = {"dev", "h1", "h2"};
    static const char *const set_titles[] = {
        "development set (patterns written alongside)",
        "held-out round 1 (collected after table v1 froze; since used to improve the table)",
        "held-out round 2 (collected after table v2 froze; since used to improve the table)"};
    struct tally sets[3], all;
    memset(sets, 0, sizeof(sets));
    memset(&all, 0, sizeof(all));
    unsigned per_class[NCLASS] = {0}, failures = 0, line = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        json_error_t je;
        json_t *rec = json_loads(l, 0, &je);
        if (!rec) {
            fail_msg("corpus line %u: %s", line, je.text);
        }
        const char *id = json_string_value(json_object_get(rec, "id"));
        json_t *e = json_object_get(rec, "expect");
        const char *want_type = json_string_value(json_object_get(e, "type"));
        const char *want_sev = json_string_value(json_object_get(e, "severity"));
        const char *want_con = json_string_value(json_object_get(e, "contribution"));
        int benign = json_is_true(json_object_get(e, "benign"));
        int known_miss = json_is_true(json_object_get(e, "known_miss"));
        const char *set = json_string_value(json_object_get(rec, "set"));
        int si = -1;
        for (int k = 0; set && k < 3; k++) {
            si = !strcmp(set, set_names[k]) ? k : si;
        }
        if (si < 0) {
            fail_msg("corpus line %u: set must be dev, h1 or h2", line);
        }
        assert_non_null(id);
        assert_non_null(want_type);
        int want = class_index(t, want_type);
        if (want < 0) {
            fail_msg("%s: unknown expected type %s", id, want_type);
        }
        per_class[want]++;

        struct rsre_classification c, c2;
        int rc = rsre_classify_record(l, strlen(l), &c);
        check_result(rc, &c);
        if (rc) {
            fail_msg("%s: rc %d: %s", id, rc, c.error);
        }
        /* Deterministic. */
        assert_int_equal(rsre_classify_record(l, strlen(l), &c2), 0);
        assert_memory_equal(&c, &c2, sizeof(c));

        int got = class_index(t, c.incident);
        assert_true(got >= 0);
        int ok = got == want;
        if (ok && want > 0) {
            ok = want_sev && !strcmp(want_sev, rsre_severity_name(c.severity)) && want_con &&
                 !strcmp(want_con, rsre_evidence_strength_name(c.strength));
        }
        /* A benign look-alike may at most contribute WEAK evidence: it can never reach the HIGH
         * band, so it can never open an incident the robot acts on. Known misses included. */
        if (benign) {
            all.benign++;
            sets[si].benign++;
            if (c.incident && c.strength != RSRE_EVIDENCE_WEAK) {
                fail_msg("%s: benign look-alike classified %s with %s evidence (%s)", id,
                         c.incident, rsre_evidence_strength_name(c.strength), c.rule);
            }
            if (!c.incident) {
                all.benign_ok++;
                sets[si].benign_ok++;
            }
        }
        tally_add(&sets[si], want, got);
        tally_add(&all, want, got);
        if (known_miss) {
            /* Documented misses stay misses until someone fixes the table and the record. */
            if (ok) {
                printf("%s: marked known_miss but now classified as expected: update the corpus\n",
                       id);
                failures++;
            }
            all.mismatched_known++;
        } else if (!ok) {
            printf("%s: expected %s %s %s, got %s %s %s (%s \"%s\")\n", id, want_type,
                   want_sev ? want_sev : "", want_con ? want_con : "",
                   c.incident ? c.incident : "none", rsre_severity_name(c.severity),
                   c.incident ? rsre_evidence_strength_name(c.strength) : "", c.rule ? c.rule : "-",
                   c.span);
            failures++;
        }
        json_decref(rec);
    }
    free(text);
    for (int k = 0; k < 3; k++) {
        if (sets[k].records) {
            tally_print(t, &sets[k], set_titles[k]);
        }
    }
    tally_print(t, &all, "whole corpus");
    printf("  known misses kept in the corpus: %u\n", all.mismatched_known);

    /* Composition the issue asks for. */
    assert_true(all.records >= 150);
    assert_true(all.benign >= 30);
    for (int i = 1; i < NCLASS; i++) {
        if (per_class[i] < 5) {
            fail_msg("class %s has only %u records", t->incidents[i - 1].id, per_class[i]);
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- malformed records -------------------------------------------------------------------- */

struct bad {
    const char *text;
    int rc;
    const char *needle; /* part of the error message */
};

static const struct bad bad_records[] = {
    {"", RSRE_EPARSE, "not JSON"},
    {"   ", RSRE_EPARSE, "not JSON"},
    {"{", RSRE_EPARSE, "not JSON"},
    {"}", RSRE_EPARSE, "not JSON"},
    {"null", RSRE_EPARSE, "not JSON"},
    {"42", RSRE_EPARSE, "not JSON"},
    {"\"kind\"", RSRE_EPARSE, "not JSON"},
    {"[]", RSRE_EINVALID, "expected an object, got array"},
    {"[{\"kind\":\"log_line\"}]", RSRE_EINVALID, "expected an object"},
    {"{}", RSRE_EINVALID, "kind: missing"},
    {"{\"kind\":null,\"object\":{}}", RSRE_EINVALID, "kind: missing"},
    {"{\"kind\":42,\"object\":{}}", RSRE_EINVALID, "kind: expected a string, got integer"},
    {"{\"kind\":[\"log_line\"],\"object\":{}}", RSRE_EINVALID, "kind: expected a string"},
    {"{\"kind\":\"bogus\",\"object\":{}}", RSRE_EINVALID, "unknown kind \"bogus\""},
    {"{\"kind\":\"LOG_LINE\",\"object\":{}}", RSRE_EINVALID, "unknown kind"},
    {"{\"kind\":\"log_line\"}", RSRE_EINVALID, "object: missing"},
    {"{\"kind\":\"log_line\",\"object\":null}", RSRE_EINVALID, "object: missing"},
    {"{\"kind\":\"log_line\",\"object\":[]}", RSRE_EINVALID, "object: expected an object"},
    {"{\"kind\":\"log_line\",\"object\":\"line\"}", RSRE_EINVALID,
     "expected an object, got string"},
    {"{\"kind\":\"log_line\",\"object\":{}}", RSRE_EINVALID, "object.line: missing"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":5}}", RSRE_EINVALID,
     "object.line: expected a string, got integer"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"x\",\"source\":[]}}", RSRE_EINVALID,
     "object.source: expected a string"},
    {"{\"kind\":\"http_response\",\"object\":{\"status\":\"200\"}}", RSRE_EINVALID,
     "object.status: expected an integer, got string"},
    {"{\"kind\":\"http_response\",\"object\":{\"status\":200.5}}", RSRE_EINVALID,
     "expected an integer, got number"},
    {"{\"kind\":\"http_response\",\"object\":{\"body\":\"x\"}}", RSRE_EINVALID,
     "object.status: missing"},
    {"{\"kind\":\"http_response\",\"object\":{\"status\":200,\"expected_status\":\"200\"}}",
     RSRE_EINVALID, "object.expected_status"},
    {"{\"kind\":\"http_response\",\"object\":{\"status\":200,\"body\":{}}}", RSRE_EINVALID,
     "object.body: expected a string, got object"},
    {"{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"mysql\",\"ok\":false}}",
     RSRE_EINVALID, "unknown value \"mysql\""},
    {"{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"redis\",\"ok\":\"false\"}}",
     RSRE_EINVALID, "object.ok: expected a boolean"},
    {"{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"redis\"}}", RSRE_EINVALID,
     "object.ok: missing"},
    {"{\"kind\":\"probe_result\",\"object\":{\"ok\":true}}", RSRE_EINVALID,
     "object.dependency: missing"},
    {"{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"tls\",\"ok\":true,"
     "\"days_to_expiry\":\"9\"}}",
     RSRE_EINVALID, "object.days_to_expiry: expected a number"},
    {"{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"redis\",\"ok\":false,\"error\":1}}",
     RSRE_EINVALID, "object.error"},
    {"{\"kind\":\"chat_delivery\",\"object\":{\"channel\":\"sms\",\"status\":200}}", RSRE_EINVALID,
     "unknown value \"sms\""},
    {"{\"kind\":\"chat_delivery\",\"object\":{\"channel\":\"telegram\"}}", RSRE_EINVALID,
     "object.status: missing"},
    {"{\"kind\":\"chat_delivery\",\"object\":{\"channel\":true,\"status\":200}}", RSRE_EINVALID,
     "object.channel: expected a string"},
    {"{\"kind\":\"helm_release\",\"object\":{}}", RSRE_EINVALID, "object.info: missing"},
    {"{\"kind\":\"helm_release\",\"object\":{\"info\":{}}}", RSRE_EINVALID,
     "object.info.status: missing"},
    {"{\"kind\":\"helm_release\",\"object\":{\"info\":{\"status\":3}}}", RSRE_EINVALID,
     "object.info.status: expected a string"},
    {"{\"kind\":\"helm_release\",\"object\":{\"info\":\"deployed\"}}", RSRE_EINVALID,
     "object.info: expected an object, got string"},
    {"{\"kind\":\"node\",\"object\":{\"status\":{\"conditions\":{}}}}", RSRE_EINVALID,
     "object.status.conditions: expected an array"},
    {"{\"kind\":\"node\",\"object\":{\"status\":{\"conditions\":[1]}}}", RSRE_EINVALID,
     "object.status.conditions[0]: expected an object, got integer"},
    {"{\"kind\":\"node\",\"object\":{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":"
     "\"True\"},{\"type\":\"Ready\",\"status\":true}]}}}",
     RSRE_EINVALID, "object.status.conditions[1].status: expected a string, got boolean"},
    {"{\"kind\":\"node\",\"object\":{\"spec\":{\"taints\":[{\"key\":5}]}}}", RSRE_EINVALID,
     "object.spec.taints[0].key"},
    {"{\"kind\":\"node\",\"object\":{\"spec\":[]}}", RSRE_EINVALID,
     "object.spec: expected an object"},
    {"{\"kind\":\"pod\",\"object\":{\"status\":\"Running\"}}", RSRE_EINVALID,
     "object.status: expected an object"},
    {"{\"kind\":\"pod\",\"object\":{\"status\":{\"containerStatuses\":[{\"state\":{\"waiting\":"
     "{\"reason\":7}}}]}}}",
     RSRE_EINVALID, "object.status.containerStatuses[0].state.waiting.reason"},
    {"{\"kind\":\"pod\",\"object\":{\"metadata\":{\"ownerReferences\":{}}}}", RSRE_EINVALID,
     "object.metadata.ownerReferences: expected an array"},
    {"{\"kind\":\"pod\",\"object\":{\"status\":{\"phase\":[\"Failed\"]}}}", RSRE_EINVALID,
     "object.status.phase"},
    {"{\"kind\":\"k8s_event\",\"object\":{\"reason\":[\"x\"]}}", RSRE_EINVALID,
     "object.reason: expected a string, got array"},
    {"{\"kind\":\"k8s_event\",\"object\":{\"involvedObject\":\"Node\"}}", RSRE_EINVALID,
     "object.involvedObject: expected an object"},
    {"{\"kind\":\"k8s_event\",\"object\":{\"count\":\"3\"}}", RSRE_EINVALID,
     "object.count: expected an integer"},
    {"{\"kind\":\"log_line\",\"kind\":\"node\",\"object\":{\"line\":\"x\"}}", RSRE_EPARSE,
     "duplicate"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"x\"}} trailing", RSRE_EPARSE, "not JSON"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"x\"}}{\"kind\":\"log_line\"}", RSRE_EPARSE,
     "not JSON"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"\xff\xfe\"}}", RSRE_EPARSE, "not JSON"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"a\\u0000b\"}}", RSRE_EPARSE, "not JSON"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"unterminated}}", RSRE_EPARSE, "not JSON"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"\\q\"}}", RSRE_EPARSE, "not JSON"},
    {"{\"kind\":\"http_response\",\"object\":{\"status\":1e999}}", RSRE_EPARSE, "not JSON"},
    {"{\"kind\":\"http_response\",\"object\":{\"status\":99999999999999999999999}}", RSRE_EPARSE,
     "not JSON"},
    {"{'kind':'log_line'}", RSRE_EPARSE, "not JSON"},
    {"{\"kind\":\"log_line\",\"object\":{\"line\":\"x\",}}", RSRE_EPARSE, "not JSON"},
};

static void test_malformed(void **unused) {
    (void)unused;
    for (size_t i = 0; i < COUNT(bad_records); i++) {
        struct rsre_classification c;
        int rc = classify_str(bad_records[i].text, &c);
        check_result(rc, &c);
        if (rc != bad_records[i].rc || !strstr(c.error, bad_records[i].needle)) {
            fail_msg("record %zu (%s): rc %d error \"%s\"; want rc %d with \"%s\"", i,
                     bad_records[i].text, rc, c.error, bad_records[i].rc, bad_records[i].needle);
        }
    }
    /* A raw NUL byte inside the text. */
    static const char nul[] = "{\"kind\":\"log_line\",\"object\":{\"line\":\"a\0b\"}}";
    struct rsre_classification c;
    int rc = rsre_classify_record(nul, sizeof(nul) - 1, &c);
    assert_int_equal(rc, RSRE_EPARSE);
    check_result(rc, &c);
    /* NULL arguments. */
    assert_int_equal(rsre_classify_record(NULL, 3, &c), -EINVAL);
    assert_true(c.error[0] != '\0');
    assert_int_equal(rsre_classify_record("{}", 2, NULL), -EINVAL);
    /* The kind is reported even when the object is bad. */
    assert_int_equal(classify_str("{\"kind\":\"pod\",\"object\":7}", &c), RSRE_EINVALID);
    assert_int_equal(c.kind, RSRE_REC_POD);
}

static void test_tolerated(void **unused) {
    (void)unused;
    static const char *const ok[] = {
        /* Unknown keys at both levels, nulls, trailing newline and CR. */
        "{\"kind\":\"log_line\",\"object\":{\"line\":\"x\",\"extra\":[1,{\"a\":null}]},\"id\":7,"
        "\"expect\":{}}\r\n",
        "{\"kind\":\"node\",\"object\":{\"metadata\":null,\"status\":{\"conditions\":null}}}",
        "{\"kind\":\"node\",\"object\":{}}",
        "{\"kind\":\"pod\",\"object\":{}}",
        "{\"kind\":\"k8s_event\",\"object\":{}}",
        "{\"kind\":\"http_response\",\"object\":{\"status\":0}}",
        "{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"dns\",\"ok\":false}}",
        "{\"kind\":\"chat_delivery\",\"object\":{\"channel\":\"whatsapp\",\"status\":-1}}",
        "{\"kind\":\"helm_release\",\"object\":{\"info\":{\"status\":\"\"}}}",
        "  {\"object\":{\"line\":\"\"},\"kind\":\"log_line\"}  ",
    };
    for (size_t i = 0; i < COUNT(ok); i++) {
        struct rsre_classification c;
        int rc = classify_str(ok[i], &c);
        if (rc) {
            fail_msg("record %zu: rc %d: %s", i, rc, c.error);
        }
        check_result(rc, &c);
    }
    /* A failed probe without error text still classifies (span is empty). */
    struct rsre_classification c;
    assert_int_equal(
        classify_str(
            "{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"ldap\",\"ok\":false}}", &c),
        0);
    assert_string_equal(c.incident, "identity_provider_unreachable");
    assert_string_equal(c.span, "");
}

/* ---- term semantics on a table of our own -------------------------------------------------- */

#define LOGK RSRE_CLS_KIND(RSRE_REC_LOG_LINE)
#define HTTPK RSRE_CLS_KIND(RSRE_REC_HTTP_RESPONSE)
#define NODEK RSRE_CLS_KIND(RSRE_REC_NODE)

static const struct rsre_classify_pattern term_rows[] = {
    {.id = "sub",
     .kinds = LOGK,
     .field = "line",
     .all = {"alpha"},
     .incident = "node_disk_pressure",
     .strength = RSRE_EVIDENCE_WEAK,
     .note = "n"},
    {.id = "tok",
     .kinds = LOGK,
     .field = "line",
     .all = {"~beta"},
     .incident = "registry_pull_failure",
     .strength = RSRE_EVIDENCE_WEAK,
     .note = "n"},
    {.id = "eq",
     .kinds = LOGK,
     .field = "line",
     .all = {"=gamma"},
     .incident = "runtime_dependency_outage",
     .strength = RSRE_EVIDENCE_WEAK,
     .note = "n"},
    {.id = "pre",
     .kinds = LOGK,
     .field = "line",
     .all = {"^delta"},
     .incident = "ingress_configuration_drift",
     .strength = RSRE_EVIDENCE_WEAK,
     .note = "n"},
    {.id = "suf",
     .kinds = LOGK,
     .field = "line",
     .all = {"$epsilon"},
     .incident = "identity_provider_unreachable",
     .strength = RSRE_EVIDENCE_WEAK,
     .note = "n"},
    {.id = "lit",
     .kinds = LOGK,
     .field = "line",
     .all = {"\\~zeta"},
     .incident = "http_error_rate_spike",
     .strength = RSRE_EVIDENCE_WEAK,
     .note = "n"},
    {.id = "num",
     .kinds = HTTPK,
     .field = "status",
     .all = {"#>=500", "#<600"},
     .incident = "http_error_rate_spike",
     .strength = RSRE_EVIDENCE_STRONG,
     .note = "n"},
    {.id = "where",
     .kinds = HTTPK,
     .field = "body",
     .all = {"eta"},
     .where = {"status:=418", "!url:$/skip"},
     .incident = "database_connectivity_degraded",
     .strength = RSRE_EVIDENCE_DIRECT,
     .severity = RSRE_SEV_CRITICAL,
     .note = "n"},
    {.id = "count",
     .kinds = LOGK,
     .field = "line",
     .all = {"~theta"},
     .min_count = 3,
     .incident = "background_job_buildup",
     .strength = RSRE_EVIDENCE_STRONG,
     .note = "n"},
    {.id = "unless",
     .kinds = LOGK,
     .field = "line",
     .all = {"iota"},
     .unless = {"kappa"},
     .incident = "chatops_delivery_failure",
     .strength = RSRE_EVIDENCE_STRONG,
     .note = "n"},
    {.id = "any",
     .kinds = LOGK,
     .field = "line",
     .any = {"lambda", "mu"},
     .all = {"nu"},
     .incident = "release_drift_or_partial_apply",
     .strength = RSRE_EVIDENCE_STRONG,
     .note = "n"},
    {.id = "arr",
     .kinds = NODEK,
     .field = "status.conditions[].reason",
     .all = {"=Xi"},
     .incident = "node_unreachable_or_notready",
     .strength = RSRE_EVIDENCE_STRONG,
     .note = "n"},
    {.id = "cond",
     .kinds = NODEK,
     .field = "@condition",
     .all = {"=Omicron=True"},
     .incident = "node_disk_pressure",
     .strength = RSRE_EVIDENCE_DIRECT,
     .note = "n"},
    {.id = "benign", .kinds = LOGK, .field = "line", .all = {"pi"}, .note = "n"},
    {.id = "strong_late",
     .kinds = LOGK,
     .field = "line",
     .all = {"rho"},
     .incident = "identity_provider_unreachable",
     .strength = RSRE_EVIDENCE_DIRECT,
     .note = "n"},
    {.id = "weak_early",
     .kinds = LOGK,
     .field = "line",
     .all = {"rh"},
     .incident = "node_disk_pressure",
     .strength = RSRE_EVIDENCE_WEAK,
     .note = "n"},
};

static const char *run_terms(const char *json, struct rsre_classification *c) {
    int rc = rsre__classify_record_with(term_rows, COUNT(term_rows), json, strlen(json), c);
    assert_int_equal(rc, 0);
    check_result(rc, c);
    return c->incident ? c->rule : (c->rule ? c->rule : "");
}

#define LOGREC(s) "{\"kind\":\"log_line\",\"object\":{\"line\":\"" s "\"}}"

static void test_terms(void **unused) {
    (void)unused;
    char err[256];
    assert_int_equal(rsre_classify_check_table(term_rows, COUNT(term_rows), rsre_taxonomy_builtin(),
                                               err, sizeof(err)),
                     0);
    struct rsre_classification c;
    assert_string_equal(run_terms(LOGREC("xxALPHAxx"), &c), "sub");
    assert_string_equal(c.span, "ALPHA"); /* the original case */
    assert_int_equal(c.span_offset, 2);
    assert_int_equal(c.span_len, 5);
    assert_string_equal(run_terms(LOGREC("a beta."), &c), "tok");
    assert_string_equal(run_terms(LOGREC("alphabet"), &c), "sub");
    assert_string_equal(run_terms(LOGREC("betamax beta_x xbeta"), &c), ""); /* no token */
    assert_string_equal(run_terms(LOGREC("betamax, BETA"), &c), "tok");     /* second occurrence */
    assert_string_equal(run_terms(LOGREC("Gamma"), &c), "eq");
    assert_string_equal(run_terms(LOGREC("gamma "), &c), "");
    assert_string_equal(run_terms(LOGREC("Delta force"), &c), "pre");
    assert_string_equal(run_terms(LOGREC("the delta"), &c), "");
    assert_string_equal(run_terms(LOGREC("last epsilon"), &c), "suf");
    assert_string_equal(run_terms(LOGREC("epsilon first"), &c), "");
    assert_string_equal(run_terms(LOGREC("a ~zeta"), &c), "lit");
    assert_string_equal(run_terms(LOGREC("a zeta"), &c), "");
    assert_string_equal(run_terms(LOGREC("theta theta"), &c), "");
    assert_string_equal(run_terms(LOGREC("theta theta, THETA"), &c), "count");
    assert_string_equal(run_terms(LOGREC("thetatheta theta theta"), &c), ""); /* tokens only */
    assert_string_equal(run_terms(LOGREC("iota"), &c), "unless");
    assert_string_equal(run_terms(LOGREC("iota kappa"), &c), "");
    assert_string_equal(run_terms(LOGREC("nu mu"), &c), "any");
    assert_string_equal(run_terms(LOGREC("nu"), &c), "");
    assert_string_equal(run_terms(LOGREC("mu"), &c), "");
    /* Benign marker: no incident, named as the reason. */
    assert_string_equal(run_terms(LOGREC("pi"), &c), "benign");
    assert_null(c.incident);
    /* An incident row beats a benign marker. */
    assert_string_equal(run_terms(LOGREC("pi alpha"), &c), "sub");
    /* Strongest wins over table order; the other incident is reported in also. */
    assert_string_equal(run_terms(LOGREC("rho"), &c), "strong_late");
    assert_string_equal(c.also[0], "weak_early");
    assert_null(c.also[1]);
    assert_int_equal(c.nmatched, 2);
    /* Numbers. */
    assert_string_equal(run_terms("{\"kind\":\"http_response\",\"object\":{\"status\":503}}", &c),
                        "num");
    assert_string_equal(run_terms("{\"kind\":\"http_response\",\"object\":{\"status\":499}}", &c),
                        "");
    assert_string_equal(run_terms("{\"kind\":\"http_response\",\"object\":{\"status\":600}}", &c),
                        "");
    /* Where clauses, positive and negated. */
    assert_string_equal(run_terms("{\"kind\":\"http_response\",\"object\":{\"status\":418,"
                                  "\"body\":\"beta eta\",\"url\":\"/a\"}}",
                                  &c),
                        "where");
    assert_int_equal(c.severity, RSRE_SEV_CRITICAL);
    assert_string_equal(run_terms("{\"kind\":\"http_response\",\"object\":{\"status\":418,"
                                  "\"body\":\"eta\",\"url\":\"/a/skip\"}}",
                                  &c),
                        "");
    assert_string_equal(run_terms("{\"kind\":\"http_response\",\"object\":{\"status\":417,"
                                  "\"body\":\"eta\"}}",
                                  &c),
                        "");
    /* Arrays and virtual fields. */
    assert_string_equal(run_terms("{\"kind\":\"node\",\"object\":{\"status\":{\"conditions\":["
                                  "{\"type\":\"A\",\"reason\":\"no\"},{\"type\":\"B\",\"reason\":"
                                  "\"xi\"}]}}}",
                                  &c),
                        "arr");
    assert_string_equal(
        run_terms("{\"kind\":\"node\",\"object\":{\"status\":{\"conditions\":["
                  "{\"type\":\"Omicron\",\"status\":\"True\",\"reason\":\"xi\"}]}}}",
                  &c),
        "cond");
    assert_string_equal(c.span, "Omicron=True");
    assert_string_equal(c.also[0], "arr");
    /* Kinds are respected. */
    assert_string_equal(run_terms("{\"kind\":\"http_response\",\"object\":{\"status\":200,"
                                  "\"body\":\"alpha\"}}",
                                  &c),
                        "");
}

static void test_span_is_sanitized(void **unused) {
    (void)unused;
    static const struct rsre_classify_pattern rows[] = {
        {.id = "whole",
         .kinds = LOGK,
         .field = "line", /* no terms: the whole value */
         .incident = "node_disk_pressure",
         .note = "n"},
    };
    /* A long value: the span is cut below the buffer on a UTF-8 boundary. */
    char json[1024];
    char line[600] = "x\\t\\u0001";
    size_t n = strlen(line);
    while (n + 2 < 500) {
        memcpy(line + n, "\xc3\xa9", 2); /* é */
        n += 2;
    }
    line[n] = '\0';
    snprintf(json, sizeof(json), "{\"kind\":\"log_line\",\"object\":{\"line\":\"%s\"}}", line);
    struct rsre_classification c;
    assert_int_equal(rsre__classify_record_with(rows, 1, json, strlen(json), &c), 0);
    assert_string_equal(c.rule, "whole");
    size_t l = strlen(c.span);
    assert_true(l < RSRE_CLASSIFY_SPAN_MAX);
    assert_true(c.span[0] == 'x' && c.span[1] == ' ' && c.span[2] == ' ');
    assert_true(((unsigned char)c.span[l - 1] & 0xC0) != 0xC0); /* no dangling lead byte */
    assert_true(c.span_len > l);                                /* the match was longer */
}

/* ---- limits and time ---------------------------------------------------------------------- */

static char *big_record(size_t total, const char *filler) {
    static const char head[] = "{\"kind\":\"log_line\",\"object\":{\"line\":\"";
    static const char tail[] = "\"}}";
    char *s = malloc(total + 1);
    assert_non_null(s);
    size_t h = strlen(head), t = strlen(tail), fl = strlen(filler);
    memcpy(s, head, h);
    for (size_t i = h; i < total - t; i++) {
        s[i] = filler[(i - h) % fl];
    }
    memcpy(s + total - t, tail, t);
    s[total] = '\0';
    return s;
}

static void test_limits(void **unused) {
    (void)unused;
    struct rsre_classification c;
    /* Exactly the limit: accepted. A worst case for the matcher: a long text of near-misses of
     * many patterns, ending in a real error. */
    char *s = big_record(RSRE_CLASSIFY_MAX_RECORD, "connection refuse redis loadin ");
    memcpy(s + RSRE_CLASSIFY_MAX_RECORD - 60, "nats: no servers available for connection", 41);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = rsre_classify_record(s, RSRE_CLASSIFY_MAX_RECORD, &c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    size_t nrows;
    rsre_classify_patterns(&nrows);
    printf("1 MiB log line against %zu rows: %.3f s\n", nrows, secs);
    assert_int_equal(rc, 0);
    assert_string_equal(c.incident, "runtime_dependency_outage");
    assert_true(secs < 20.0); /* generous: sanitizer builds are slow; linear, not quadratic */
    /* One byte over: refused before parsing. */
    char *s2 = big_record(RSRE_CLASSIFY_MAX_RECORD + 1, "a");
    assert_int_equal(rsre_classify_record(s2, RSRE_CLASSIFY_MAX_RECORD + 1, &c), RSRE_ELIMIT);
    assert_non_null(strstr(c.error, "limit"));
    free(s);
    free(s2);

    /* Depth: the record's own two levels count. */
    char deep[1024];
    for (int depth = RSRE_CLASSIFY_MAX_DEPTH - 3; depth <= RSRE_CLASSIFY_MAX_DEPTH + 3; depth++) {
        int extra = depth - 2; /* root object + "object" */
        char *p = deep;
        p += sprintf(p, "{\"kind\":\"log_line\",\"object\":{\"line\":\"x\",\"deep\":");
        for (int i = 0; i < extra; i++) {
            *p++ = '[';
        }
        for (int i = 0; i < extra; i++) {
            *p++ = ']';
        }
        p += sprintf(p, "}}");
        rc = rsre_classify_record(deep, (size_t)(p - deep), &c);
        assert_int_equal(rc, depth <= RSRE_CLASSIFY_MAX_DEPTH ? 0 : RSRE_ELIMIT);
    }
    /* Brackets inside strings are not nesting. */
    char str[512];
    char *p = str;
    p += sprintf(p, "{\"kind\":\"log_line\",\"object\":{\"line\":\"");
    for (int i = 0; i < 200; i++) {
        *p++ = '[';
    }
    p += sprintf(p, "\\\"{\"}}");
    assert_int_equal(rsre_classify_record(str, (size_t)(p - str), &c), 0);
}

/* ---- streaming ---------------------------------------------------------------------------- */

struct seen {
    unsigned long lines[64];
    int rcs[64];
    char incidents[64][48];
    size_t n;
    int stop_at; /* return nonzero at this record (1-based), 0 = never */
};

static int on_record(void *ud, unsigned long line, int rc, const struct rsre_classification *c) {
    struct seen *s = ud;
    check_result(rc, c);
    if (s->n < 64) {
        s->lines[s->n] = line;
        s->rcs[s->n] = rc;
        snprintf(s->incidents[s->n], sizeof(s->incidents[0]), "%s",
                 c->incident ? c->incident : "none");
        s->n++;
    }
    return s->stop_at && (int)s->n == s->stop_at ? 42 : 0;
}

static const char stream_text[] =
    "{\"kind\":\"log_line\",\"object\":{\"line\":\"nats: no servers available for connection\"}}\n"
    "\n"
    "   \t\n"
    "not json\r\n"
    "{\"kind\":\"probe_result\",\"object\":{\"dependency\":\"postgres\",\"ok\":false}}\r\n"
    "{\"kind\":\"log_line\",\"object\":{\"line\":\"all good\"}}";

static void feed_in_chunks(size_t chunk, struct seen *s, struct rsre_classify_stats *st) {
    rsre_classify_stream *str;
    assert_int_equal(rsre_classify_stream_create(on_record, s, &str), 0);
    size_t len = sizeof(stream_text) - 1;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        assert_int_equal(rsre_classify_stream_feed(str, stream_text + off, n), 0);
    }
    assert_int_equal(rsre_classify_stream_finish(str), 0);
    assert_int_equal(rsre_classify_stream_finish(str), 0); /* idempotent */
    rsre_classify_stream_stats(str, st);
    rsre_classify_stream_destroy(str);
}

static void test_stream(void **unused) {
    (void)unused;
    static const unsigned long want_lines[] = {1, 4, 5, 6};
    static const char *const want_inc[] = {"runtime_dependency_outage", "none",
                                           "database_connectivity_degraded", "none"};
    for (size_t chunk = 1; chunk <= sizeof(stream_text);
         chunk = chunk < 8 ? chunk + 1 : chunk * 3) {
        struct seen s = {0};
        struct rsre_classify_stats st;
        feed_in_chunks(chunk, &s, &st);
        assert_int_equal(s.n, 4);
        for (size_t i = 0; i < 4; i++) {
            assert_int_equal(s.lines[i], want_lines[i]);
            assert_string_equal(s.incidents[i], want_inc[i]);
        }
        assert_int_equal(s.rcs[1], RSRE_EPARSE);
        assert_int_equal(st.lines, 6);
        assert_int_equal(st.records, 4);
        assert_int_equal(st.errors, 1);
        assert_int_equal(st.matched, 2);
    }
    /* The callback can stop the stream. */
    struct seen s = {.stop_at = 2};
    rsre_classify_stream *str;
    assert_int_equal(rsre_classify_stream_create(on_record, &s, &str), 0);
    assert_int_equal(rsre_classify_stream_feed(str, stream_text, sizeof(stream_text) - 1), 42);
    rsre_classify_stream_destroy(str);
    assert_int_equal(s.n, 2);
    /* Arguments. */
    assert_int_equal(rsre_classify_stream_create(NULL, NULL, &str), -EINVAL);
    assert_null(str);
    assert_int_equal(rsre_classify_stream_create(on_record, NULL, NULL), -EINVAL);
    assert_int_equal(rsre_classify_stream_feed(NULL, "x", 1), -EINVAL);
    assert_int_equal(rsre_classify_stream_finish(NULL), -EINVAL);
    rsre_classify_stream_destroy(NULL);
    rsre_classify_stream_stats(NULL, NULL);
}

static void test_stream_overlong(void **unused) {
    (void)unused;
    /* A line over the limit is reported once, as RSRE_ELIMIT, without being buffered, and the
     * next line is classified normally; both when it arrives in pieces and in one chunk. */
    size_t big = RSRE_CLASSIFY_MAX_RECORD + 100;
    char *buf = malloc(big + 200);
    assert_non_null(buf);
    memset(buf, 'a', big);
    buf[big] = '\n';
    const char *next = "{\"kind\":\"log_line\",\"object\":{\"line\":\"manifest unknown\"}}\n";
    memcpy(buf + big + 1, next, strlen(next));
    size_t total = big + 1 + strlen(next);
    for (int mode = 0; mode < 3; mode++) {
        struct seen s = {0};
        rsre_classify_stream *str;
        assert_int_equal(rsre_classify_stream_create(on_record, &s, &str), 0);
        if (mode == 0) {
            assert_int_equal(rsre_classify_stream_feed(str, buf, total), 0);
        } else {
            size_t chunk = mode == 1 ? 4096 : 65537;
            for (size_t off = 0; off < total; off += chunk) {
                size_t n = total - off < chunk ? total - off : chunk;
                assert_int_equal(rsre_classify_stream_feed(str, buf + off, n), 0);
            }
        }
        assert_int_equal(rsre_classify_stream_finish(str), 0);
        rsre_classify_stream_destroy(str);
        assert_int_equal(s.n, 2);
        assert_int_equal(s.rcs[0], RSRE_ELIMIT);
        assert_int_equal(s.lines[0], 1);
        assert_int_equal(s.rcs[1], 0);
        assert_string_equal(s.incidents[1], "registry_pull_failure");
    }
    /* An overlong final line without a newline is reported at finish. */
    struct seen s = {0};
    rsre_classify_stream *str;
    assert_int_equal(rsre_classify_stream_create(on_record, &s, &str), 0);
    assert_int_equal(rsre_classify_stream_feed(str, buf, big), 0);
    assert_int_equal(rsre_classify_stream_finish(str), 0);
    rsre_classify_stream_destroy(str);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.rcs[0], RSRE_ELIMIT);
    free(buf);
}

static void test_names(void **unused) {
    (void)unused;
    for (int k = 0; k < RSRE_REC_KIND_COUNT; k++) {
        enum rsre_record_kind out;
        assert_int_equal(
            rsre_record_kind_parse(rsre_record_kind_name((enum rsre_record_kind)k), &out), 0);
        assert_int_equal(out, k);
    }
    enum rsre_record_kind out;
    assert_int_equal(rsre_record_kind_parse("nope", &out), RSRE_ENOTFOUND);
    assert_int_equal(rsre_record_kind_parse(NULL, &out), RSRE_ENOTFOUND);
    assert_string_equal(rsre_record_kind_name(RSRE_REC_UNKNOWN), "unknown");
    assert_string_equal(rsre_record_kind_name((enum rsre_record_kind)99), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_valid_and_covering),
        cmocka_unit_test(test_table_check_rejects),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_tolerated),
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_span_is_sanitized),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_overlong),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
