/*
 * Tests for engine/confidence: each band rule with positive and negative cases, same-source
 * duplicates, an exhaustive enumeration of small evidence sets against an oracle written here
 * independently (it quantifies over pairs of items instead of summarising sources), and the
 * properties the header promises: monotonicity, order independence, `primary` not mattering.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "engine/confidence.h"

#define W RSRE_EVIDENCE_WEAK
#define S RSRE_EVIDENCE_STRONG
#define D RSRE_EVIDENCE_DIRECT

#define ITEM(src, str, chk)                                                                        \
    { (src), (str), (chk), (str) != W }
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static enum rsre_confidence band(const struct rsre_evidence_item *items, size_t n,
                                 enum rsre_confidence_rule *rule) {
    struct rsre_confidence_why why;
    memset(&why, 0x5a, sizeof(why));
    enum rsre_confidence c = rsre_confidence_band(items, n, &why);
    assert_int_equal(c, rsre_confidence_band(items, n, NULL));
    assert_non_null(why.reason);
    assert_string_equal(why.reason, rsre_confidence_rule_reason(why.rule));
    assert_true(memchr(why.text, '\0', sizeof(why.text)) != NULL);
    assert_true(strlen(why.text) > 0);
    if (rule != NULL) {
        *rule = why.rule;
    }
    return c;
}

#define ASSERT_BAND(items, want_band, want_rule)                                                   \
    do {                                                                                           \
        enum rsre_confidence_rule r_;                                                              \
        assert_int_equal(band((items), COUNT(items), &r_), (want_band));                           \
        assert_int_equal(r_, (want_rule));                                                         \
    } while (0)

/* ---- names ---- */

static void test_names(void **unused) {
    static const char *const cn[] = {"low", "medium", "high"};
    for (int i = 0; i < 3; i++) {
        enum rsre_confidence c;
        assert_string_equal(rsre_confidence_name((enum rsre_confidence)i), cn[i]);
        assert_int_equal(rsre_confidence_parse(cn[i], &c), 0);
        assert_int_equal(c, i);
    }
    static const char *const sn[] = {"weak", "strong", "direct"};
    for (int i = 0; i < 3; i++) {
        enum rsre_evidence_strength s;
        assert_string_equal(rsre_evidence_strength_name((enum rsre_evidence_strength)i), sn[i]);
        assert_int_equal(rsre_evidence_strength_parse(sn[i], &s), 0);
        assert_int_equal(s, i);
    }
    enum rsre_confidence c = RSRE_CONF_MEDIUM;
    assert_int_equal(rsre_confidence_parse("HIGH", &c), RSRE_EINVALID);
    assert_int_equal(rsre_confidence_parse("", &c), RSRE_EINVALID);
    assert_int_equal(c, RSRE_CONF_MEDIUM);
    assert_int_equal(rsre_confidence_parse(NULL, &c), -EINVAL);
    assert_int_equal(rsre_confidence_parse("low", NULL), -EINVAL);
    enum rsre_evidence_strength s = S;
    assert_int_equal(rsre_evidence_strength_parse("strongest", &s), RSRE_EINVALID);
    assert_int_equal(s, S);
    assert_int_equal(rsre_evidence_strength_parse(NULL, &s), -EINVAL);
    assert_string_equal(rsre_confidence_name((enum rsre_confidence)3), "unknown");
    assert_string_equal(rsre_evidence_strength_name((enum rsre_evidence_strength)3), "unknown");
    assert_string_equal(rsre_confidence_rule_reason((enum rsre_confidence_rule)99), "unknown");
    assert_true(RSRE_CONF_LOW < RSRE_CONF_MEDIUM && RSRE_CONF_MEDIUM < RSRE_CONF_HIGH);
}

/* ---- rule (a): two or more distinct sources with STRONG/DIRECT ---- */

static void test_rule_a(void **unused) {
    const struct rsre_evidence_item pos1[] = {ITEM("kubelet", S, 1), ITEM("oci", S, 1)};
    ASSERT_BAND(pos1, RSRE_CONF_HIGH, RSRE_CONF_RULE_CORROBORATED);
    const struct rsre_evidence_item pos2[] = {ITEM("kubelet", D, 1), ITEM("oci", S, 1),
                                              ITEM("df", W, 1)};
    ASSERT_BAND(pos2, RSRE_CONF_HIGH, RSRE_CONF_RULE_CORROBORATED);
    /* Negative: one strong source and one weak one is (d), not (a). */
    const struct rsre_evidence_item neg1[] = {ITEM("kubelet", S, 1), ITEM("oci", W, 1)};
    ASSERT_BAND(neg1, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_STRONG_PLUS_WEAK);
    /* Negative: two strong items from the same source do not corroborate each other. */
    const struct rsre_evidence_item neg2[] = {ITEM("kubelet", S, 1), ITEM("kubelet", D, 1)};
    ASSERT_BAND(neg2, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    /* Negative: a second strong item that was seen in zero checks is ignored. */
    const struct rsre_evidence_item neg3[] = {ITEM("kubelet", S, 1), ITEM("oci", S, 0)};
    ASSERT_BAND(neg3, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
}

/* ---- rule (b): a DIRECT item seen in >= 2 consecutive checks ---- */

static void test_rule_b(void **unused) {
    const struct rsre_evidence_item pos1[] = {ITEM("postgres", D, 2)};
    ASSERT_BAND(pos1, RSRE_CONF_HIGH, RSRE_CONF_RULE_DIRECT_REPEATED);
    const struct rsre_evidence_item pos2[] = {ITEM("probe", W, 1), ITEM("postgres", D, 5)};
    ASSERT_BAND(pos2, RSRE_CONF_HIGH, RSRE_CONF_RULE_DIRECT_REPEATED);
    /* Negative: a one-off direct error is only medium. */
    const struct rsre_evidence_item neg1[] = {ITEM("postgres", D, 1)};
    ASSERT_BAND(neg1, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    /* Negative: a STRONG item repeated alone (no other source) is not (b) nor (c). */
    const struct rsre_evidence_item neg2[] = {ITEM("postgres", S, 4)};
    ASSERT_BAND(neg2, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    /* Negative: repetition of a weak item from the same source does not lend its checks to a
     * one-off direct error. */
    const struct rsre_evidence_item neg3[] = {ITEM("postgres", D, 1), ITEM("postgres", W, 3)};
    ASSERT_BAND(neg3, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    /* Negative: two one-off direct items from the same source are still one check each. */
    const struct rsre_evidence_item neg4[] = {ITEM("postgres", D, 1), ITEM("postgres", D, 1)};
    ASSERT_BAND(neg4, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
}

/* ---- rule (c): STRONG item in >= 2 checks plus any item from another source ---- */

static void test_rule_c(void **unused) {
    const struct rsre_evidence_item pos1[] = {ITEM("ingress", S, 2), ITEM("logs", W, 1)};
    ASSERT_BAND(pos1, RSRE_CONF_HIGH, RSRE_CONF_RULE_STRONG_REPEATED);
    const struct rsre_evidence_item pos2[] = {ITEM("logs", W, 1), ITEM("ingress", S, 3)};
    ASSERT_BAND(pos2, RSRE_CONF_HIGH, RSRE_CONF_RULE_STRONG_REPEATED);
    /* Negative: repeated strong item, corroborated only by its own source. */
    const struct rsre_evidence_item neg1[] = {ITEM("ingress", S, 2), ITEM("ingress", W, 1)};
    ASSERT_BAND(neg1, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    /* Negative: strong seen once plus a repeated weak item elsewhere: (d). */
    const struct rsre_evidence_item neg2[] = {ITEM("ingress", S, 1), ITEM("logs", W, 3)};
    ASSERT_BAND(neg2, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_STRONG_PLUS_WEAK);
    /* Negative: the corroborating item was seen in zero checks. */
    const struct rsre_evidence_item neg3[] = {ITEM("ingress", S, 2), ITEM("logs", W, 0)};
    ASSERT_BAND(neg3, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
}

/* ---- rules (d), (e) and LOW ---- */

static void test_rule_d_e_low(void **unused) {
    const struct rsre_evidence_item d1[] = {ITEM("http", S, 1), ITEM("logs", W, 1)};
    ASSERT_BAND(d1, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_STRONG_PLUS_WEAK);
    const struct rsre_evidence_item d2[] = {ITEM("logs", W, 2), ITEM("db", D, 1),
                                            ITEM("metrics", W, 1)};
    ASSERT_BAND(d2, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_STRONG_PLUS_WEAK);
    const struct rsre_evidence_item e1[] = {ITEM("http", S, 1)};
    ASSERT_BAND(e1, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    const struct rsre_evidence_item e2[] = {ITEM("http", S, 1), ITEM("http", W, 5)};
    ASSERT_BAND(e2, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    /* LOW: weak only, however repeated and however many sources. */
    const struct rsre_evidence_item l1[] = {ITEM("logs", W, 1)};
    ASSERT_BAND(l1, RSRE_CONF_LOW, RSRE_CONF_RULE_WEAK_ONLY);
    const struct rsre_evidence_item l2[] = {ITEM("a", W, 9), ITEM("b", W, 9), ITEM("c", W, 9)};
    ASSERT_BAND(l2, RSRE_CONF_LOW, RSRE_CONF_RULE_WEAK_ONLY);
    /* LOW: nothing usable. */
    const struct rsre_evidence_item l3[] = {ITEM("a", D, 0), ITEM("b", S, 0)};
    ASSERT_BAND(l3, RSRE_CONF_LOW, RSRE_CONF_RULE_NONE);
    enum rsre_confidence_rule r;
    assert_int_equal(band(NULL, 0, &r), RSRE_CONF_LOW);
    assert_int_equal(r, RSRE_CONF_RULE_NONE);
    assert_int_equal(band(NULL, 5, &r), RSRE_CONF_LOW);
    assert_int_equal(r, RSRE_CONF_RULE_NONE);
}

/* Out-of-range strengths are ignored, never promoted. */
static void test_invalid_items(void **unused) {
    const struct rsre_evidence_item bad[] = {
        {"a", (enum rsre_evidence_strength)3, 5, 1},
        {"b", (enum rsre_evidence_strength)77, 5, 1},
    };
    ASSERT_BAND(bad, RSRE_CONF_LOW, RSRE_CONF_RULE_NONE);
    const struct rsre_evidence_item mixed[] = {
        {"a", (enum rsre_evidence_strength)3, 5, 1},
        ITEM("b", S, 1),
    };
    ASSERT_BAND(mixed, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
}

/* NULL source and "" are one unnamed source: they never corroborate each other. */
static void test_null_source(void **unused) {
    const struct rsre_evidence_item a[] = {ITEM(NULL, S, 1), ITEM("", S, 1)};
    ASSERT_BAND(a, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
    const struct rsre_evidence_item b[] = {ITEM(NULL, S, 1), ITEM("x", S, 1)};
    ASSERT_BAND(b, RSRE_CONF_HIGH, RSRE_CONF_RULE_CORROBORATED);
    struct rsre_confidence_why why;
    rsre_confidence_band(b, COUNT(b), &why);
    assert_non_null(strstr(why.text, "(unnamed source)"));
}

/* Sources are compared by content, not by pointer. */
static void test_source_by_content(void **unused) {
    char s1[] = "node-1/kubelet";
    char s2[] = "node-1/kubelet";
    const struct rsre_evidence_item a[] = {ITEM(s1, S, 1), ITEM(s2, S, 1)};
    ASSERT_BAND(a, RSRE_CONF_MEDIUM, RSRE_CONF_RULE_SINGLE_STRONG);
}

static void test_why_fields(void **unused) {
    const struct rsre_evidence_item a[] = {
        {"kubelet", S, 1, 1}, {"oci", S, 1, 1}, {"df", W, 1, 0}, {"kubelet", W, 1, 1}};
    struct rsre_confidence_why why;
    assert_int_equal(rsre_confidence_band(a, COUNT(a), &why), RSRE_CONF_HIGH);
    assert_int_equal(why.rule, RSRE_CONF_RULE_CORROBORATED);
    assert_int_equal(why.sources, 3);
    assert_int_equal(why.strong_sources, 2);
    assert_int_equal(why.primary_items, 3);
    assert_string_equal(why.text, "high(a): corroborated by kubelet and oci");

    const struct rsre_evidence_item b[] = {{"postgres", D, 3, 1}};
    assert_int_equal(rsre_confidence_band(b, 1, &why), RSRE_CONF_HIGH);
    assert_string_equal(why.text,
                        "high(b): direct error from postgres seen in 3 consecutive checks");

    const struct rsre_evidence_item c[] = {{"logs", W, 1, 0}, {"ingress", S, 2, 1}};
    assert_int_equal(rsre_confidence_band(c, 2, &why), RSRE_CONF_HIGH);
    assert_string_equal(
        why.text, "high(c): strong signal from ingress seen in 2 checks, corroborated by logs");

    const struct rsre_evidence_item d[] = {{"logs", W, 1, 0}, {"ingress", S, 1, 1}};
    assert_int_equal(rsre_confidence_band(d, 2, &why), RSRE_CONF_MEDIUM);
    assert_string_equal(why.text,
                        "medium(d): strong signal from ingress plus weak signal from logs");

    /* Long source names are truncated, never overflow. */
    char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const struct rsre_evidence_item e[] = {{longname, D, 1, 1}, {"y", S, 3, 1}};
    assert_int_equal(rsre_confidence_band(e, 2, &why), RSRE_CONF_HIGH);
    assert_true(strlen(why.text) < sizeof(why.text));
    const struct rsre_evidence_item f[] = {{longname, S, 2, 1}, {longname + 1, W, 1, 0}};
    assert_int_equal(rsre_confidence_band(f, 2, &why), RSRE_CONF_HIGH);
    assert_int_equal(why.rule, RSRE_CONF_RULE_STRONG_REPEATED);
    assert_true(strlen(why.text) < sizeof(why.text));
}

/*
 * ---- exhaustive enumeration ----
 *
 * The oracle reads the rules item by item: "distinct sources" is a pair of items whose source
 * names differ; "a DIRECT item seen in >= 2 checks" is a single item. It shares no code with
 * confidence.c.
 */

static const char *const src_names[] = {"A", "B", "C"};
#define NSRC 3
#define MAXCHK 3

struct oitem {
    int src; /* index into src_names */
    int strength;
    unsigned checks;
    int primary;
};

static int oracle(const struct oitem *it, int n, int *rule_letter) {
    int a = 0, b = 0, c = 0, any_strong = 0, other_for_strong = 0, any_usable = 0;
    for (int i = 0; i < n; i++) {
        if (it[i].checks == 0) {
            continue;
        }
        any_usable = 1;
        if (it[i].strength == D && it[i].checks >= 2) {
            b = 1;
        }
        if (it[i].strength >= S) {
            any_strong = 1;
        }
        for (int j = 0; j < n; j++) {
            if (it[j].checks == 0 || it[j].src == it[i].src) {
                continue;
            }
            if (it[i].strength >= S && it[j].strength >= S) {
                a = 1;
            }
            if (it[i].strength >= S && it[i].checks >= 2) {
                c = 1;
            }
            if (it[i].strength >= S) {
                other_for_strong = 1;
            }
        }
    }
    if (a || b || c) {
        *rule_letter = a ? 'a' : b ? 'b' : 'c';
        return RSRE_CONF_HIGH;
    }
    if (any_strong) {
        *rule_letter = other_for_strong ? 'd' : 'e';
        return RSRE_CONF_MEDIUM;
    }
    *rule_letter = any_usable ? 'w' : '-';
    return RSRE_CONF_LOW;
}

static int rule_letter(enum rsre_confidence_rule r) {
    switch (r) {
    case RSRE_CONF_RULE_CORROBORATED:
        return 'a';
    case RSRE_CONF_RULE_DIRECT_REPEATED:
        return 'b';
    case RSRE_CONF_RULE_STRONG_REPEATED:
        return 'c';
    case RSRE_CONF_RULE_STRONG_PLUS_WEAK:
        return 'd';
    case RSRE_CONF_RULE_SINGLE_STRONG:
        return 'e';
    case RSRE_CONF_RULE_WEAK_ONLY:
        return 'w';
    default:
        return '-';
    }
}

/* Options per item: 3 sources x 3 strengths x checks 0..MAXCHK x primary 0/1. */
#define NOPT (NSRC * 3 * (MAXCHK + 1) * 2)

static struct oitem decode(int k) {
    struct oitem o;
    o.primary = k % 2;
    k /= 2;
    o.checks = (unsigned)(k % (MAXCHK + 1));
    k /= MAXCHK + 1;
    o.strength = k % 3;
    k /= 3;
    o.src = k;
    return o;
}

static enum rsre_confidence run(const struct oitem *o, int n, enum rsre_confidence_rule *rule) {
    struct rsre_evidence_item items[3];
    for (int i = 0; i < n; i++) {
        items[i].source = src_names[o[i].src];
        items[i].strength = (enum rsre_evidence_strength)o[i].strength;
        items[i].checks = o[i].checks;
        items[i].primary = o[i].primary;
    }
    struct rsre_confidence_why why;
    enum rsre_confidence c = rsre_confidence_band(n ? items : NULL, (size_t)n, &why);
    *rule = why.rule;
    return c;
}

static void check_against_oracle(const struct oitem *o, int n) {
    enum rsre_confidence_rule rule;
    int want_rule;
    int want = oracle(o, n, &want_rule);
    enum rsre_confidence got = run(o, n, &rule);
    if ((int)got != want || rule_letter(rule) != want_rule) {
        char desc[200] = "";
        for (int i = 0; i < n; i++) {
            size_t len = strlen(desc);
            snprintf(desc + len, sizeof(desc) - len, " {%s,%d,%u}", src_names[o[i].src],
                     o[i].strength, o[i].checks);
        }
        fail_msg("items%s: got %s/%c, oracle %s/%c", desc, rsre_confidence_name(got),
                 rule_letter(rule), rsre_confidence_name((enum rsre_confidence)want), want_rule);
    }
}

/*
 * All lists of 0..3 items. For every 3-item list also checks that each of its sub-lists (every
 * subset, in order) has a band no higher — adding an item never lowers the band, wherever it
 * is inserted — and that every permutation gives the same band and rule.
 */
static void test_exhaustive(void **unused) {
    struct oitem o[3] = {{0, 0, 0, 0}};
    check_against_oracle(o, 0);
    unsigned long checked = 0;
    for (int x = 0; x < NOPT; x++) {
        o[0] = decode(x);
        check_against_oracle(o, 1);
        for (int y = 0; y < NOPT; y++) {
            o[1] = decode(y);
            check_against_oracle(o, 2);
            for (int z = 0; z < NOPT; z++) {
                o[2] = decode(z);
                check_against_oracle(o, 3);
                enum rsre_confidence_rule full_rule;
                enum rsre_confidence full = run(o, 3, &full_rule);
                for (int mask = 0; mask < 7; mask++) {
                    struct oitem sub[3];
                    int m = 0;
                    for (int i = 0; i < 3; i++) {
                        if (mask & (1 << i)) {
                            sub[m++] = o[i];
                        }
                    }
                    enum rsre_confidence_rule r;
                    if (run(sub, m, &r) > full) {
                        fail_msg("monotonicity: sub-list mask %d of (%d,%d,%d) is higher", mask, x,
                                 y, z);
                    }
                }
                static const int perms[5][3] = {
                    {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
                for (int p = 0; p < 5; p++) {
                    struct oitem q[3] = {o[perms[p][0]], o[perms[p][1]], o[perms[p][2]]};
                    enum rsre_confidence_rule r;
                    assert_int_equal(run(q, 3, &r), full);
                    assert_int_equal(r, full_rule);
                }
                checked++;
            }
        }
    }
    assert_int_equal(checked, (unsigned long)NOPT * NOPT * NOPT);
}

/* `primary` never changes the band: flip it on every item of every 2-item list. */
static void test_primary_irrelevant(void **unused) {
    struct oitem o[2];
    for (int x = 0; x < NOPT; x++) {
        for (int y = 0; y < NOPT; y++) {
            o[0] = decode(x);
            o[1] = decode(y);
            enum rsre_confidence_rule r1, r2;
            enum rsre_confidence c1 = run(o, 2, &r1);
            o[0].primary = !o[0].primary;
            o[1].primary = !o[1].primary;
            enum rsre_confidence c2 = run(o, 2, &r2);
            assert_int_equal(c1, c2);
            assert_int_equal(r1, r2);
        }
    }
}

/* Larger sets: adding items one at a time from a pseudo-random stream never lowers the band. */
static void test_monotone_stream(void **unused) {
    uint64_t s = 0x243F6A8885A308D3ULL;
    static const char *const many[] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"};
    struct rsre_evidence_item items[24];
    for (int round = 0; round < 2000; round++) {
        enum rsre_confidence prev = RSRE_CONF_LOW;
        for (size_t n = 0; n < COUNT(items); n++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            items[n].source = many[s % 8];
            items[n].strength = (enum rsre_evidence_strength)((s >> 8) % 3);
            /* Mostly weak and one-off, so HIGH is reached late if at all. */
            if ((s >> 16) % 4 != 0) {
                items[n].strength = W;
            }
            items[n].checks = (unsigned)((s >> 24) % 3);
            items[n].primary = (int)((s >> 32) & 1);
            enum rsre_confidence c = rsre_confidence_band(items, n + 1, NULL);
            assert_true(c >= prev);
            prev = c;
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_rule_a),
        cmocka_unit_test(test_rule_b),
        cmocka_unit_test(test_rule_c),
        cmocka_unit_test(test_rule_d_e_low),
        cmocka_unit_test(test_invalid_items),
        cmocka_unit_test(test_null_source),
        cmocka_unit_test(test_source_by_content),
        cmocka_unit_test(test_why_fields),
        cmocka_unit_test(test_exhaustive),
        cmocka_unit_test(test_primary_irrelevant),
        cmocka_unit_test(test_monotone_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
