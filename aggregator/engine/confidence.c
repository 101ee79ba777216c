#include "engine/confidence.h"

#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const conf_names[RSRE_CONF_COUNT] = {
    [RSRE_CONF_LOW] = "low",
    [RSRE_CONF_MEDIUM] = "medium",
    [RSRE_CONF_HIGH] = "high",
};

static const char *const strength_names[RSRE_EVIDENCE_STRENGTH_COUNT] = {
    [RSRE_EVIDENCE_WEAK] = "weak",
    [RSRE_EVIDENCE_STRONG] = "strong",
    [RSRE_EVIDENCE_DIRECT] = "direct",
};

static const char *const rule_reasons[] = {
    [RSRE_CONF_RULE_NONE] = "low: no usable evidence",
    [RSRE_CONF_RULE_CORROBORATED] = "high(a): multiple corroborating signals",
    [RSRE_CONF_RULE_DIRECT_REPEATED] = "high(b): direct error from failing component",
    [RSRE_CONF_RULE_STRONG_REPEATED] = "high(c): repeated signal across two or more checks",
    [RSRE_CONF_RULE_STRONG_PLUS_WEAK] = "medium(d): one strong signal plus one weak signal",
    [RSRE_CONF_RULE_SINGLE_STRONG] = "medium(e): inferred root cause, not directly proven",
    [RSRE_CONF_RULE_WEAK_ONLY] = "low: only weak or ambiguous signals, no corroboration",
};

#define NRULES (sizeof(rule_reasons) / sizeof(rule_reasons[0]))

const char *rsre_confidence_name(enum rsre_confidence c) {
    return (unsigned)c < RSRE_CONF_COUNT ? conf_names[c] : "unknown";
}

const char *rsre_evidence_strength_name(enum rsre_evidence_strength s) {
    return (unsigned)s < RSRE_EVIDENCE_STRENGTH_COUNT ? strength_names[s] : "unknown";
}

const char *rsre_confidence_rule_reason(enum rsre_confidence_rule r) {
    return (unsigned)r < NRULES ? rule_reasons[r] : "unknown";
}

/* Index of `name` in `names[0..count)`, or -1. */
static int lookup(const char *const *names, unsigned count, const char *name) {
    for (unsigned i = 0; i < count; i++) {
        if (strcmp(name, names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int rsre_confidence_parse(const char *name, enum rsre_confidence *out) {
    if (name == NULL || out == NULL) {
        return -EINVAL;
    }
    int i = lookup(conf_names, RSRE_CONF_COUNT, name);
    if (i < 0) {
        return RSRE_EINVALID;
    }
    *out = (enum rsre_confidence)i;
    return 0;
}

int rsre_evidence_strength_parse(const char *name, enum rsre_evidence_strength *out) {
    if (name == NULL || out == NULL) {
        return -EINVAL;
    }
    int i = lookup(strength_names, RSRE_EVIDENCE_STRENGTH_COUNT, name);
    if (i < 0) {
        return RSRE_EINVALID;
    }
    *out = (enum rsre_evidence_strength)i;
    return 0;
}

static int usable(const struct rsre_evidence_item *it) {
    return it->checks > 0 && (unsigned)it->strength < RSRE_EVIDENCE_STRENGTH_COUNT;
}

static const char *src_key(const char *s) {
    return s != NULL ? s : "";
}

static int same_source(const char *a, const char *b) {
    return strcmp(src_key(a), src_key(b)) == 0;
}

/* How a source is shown in why.text. */
static const char *src_label(const char *s) {
    return (s == NULL || s[0] == '\0') ? "(unnamed source)" : s;
}

/*
 * What one source contributes: at[l] is the largest `checks` of its usable items whose
 * strength is >= l (0 when it has none). Rules test single items, so a STRONG item seen once
 * and a WEAK item seen three times give at[STRONG] == 1, at[WEAK] == 3.
 */
struct source_sum {
    const char *source;
    unsigned at[RSRE_EVIDENCE_STRENGTH_COUNT];
};

/* Summarises the source of items[first], which must be its first usable item. */
static void summarise(const struct rsre_evidence_item *items, size_t n, size_t first,
                      struct source_sum *sum) {
    memset(sum, 0, sizeof(*sum));
    sum->source = items[first].source;
    for (size_t k = first; k < n; k++) {
        const struct rsre_evidence_item *it = &items[k];
        if (!usable(it) || !same_source(it->source, sum->source)) {
            continue;
        }
        for (unsigned l = 0; l <= (unsigned)it->strength; l++) {
            if (it->checks > sum->at[l]) {
                sum->at[l] = it->checks;
            }
        }
    }
}

/* Returns 1 when a usable item before items[i] has the same source as items[i]. */
static int seen_before(const struct rsre_evidence_item *items, size_t i) {
    for (size_t j = 0; j < i; j++) {
        if (usable(&items[j]) && same_source(items[j].source, items[i].source)) {
            return 1;
        }
    }
    return 0;
}

/*
 * One pass over the distinct sources, remembering what the rules and the explanation need:
 * counts, the first two sources, the first two strong sources, and the first source that
 * satisfies each per-source condition of rules (b) and (c).
 */
struct tally {
    size_t sources, strong_sources, primary_items;
    struct source_sum first[2];  /* first two distinct sources */
    struct source_sum strong[2]; /* first two sources with STRONG or DIRECT evidence */
    struct source_sum direct_rep, strong_rep;
    int has_direct_rep, has_strong_rep;
};

static void tally_items(const struct rsre_evidence_item *items, size_t n, struct tally *t) {
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        if (!usable(&items[i])) {
            continue;
        }
        if (items[i].primary) {
            t->primary_items++;
        }
        if (seen_before(items, i)) {
            continue;
        }
        struct source_sum s;
        summarise(items, n, i, &s);
        if (t->sources < 2) {
            t->first[t->sources] = s;
        }
        t->sources++;
        if (s.at[RSRE_EVIDENCE_STRONG] >= 1) {
            if (t->strong_sources < 2) {
                t->strong[t->strong_sources] = s;
            }
            t->strong_sources++;
        }
        if (!t->has_direct_rep && s.at[RSRE_EVIDENCE_DIRECT] >= 2) {
            t->direct_rep = s;
            t->has_direct_rep = 1;
        }
        if (!t->has_strong_rep && s.at[RSRE_EVIDENCE_STRONG] >= 2) {
            t->strong_rep = s;
            t->has_strong_rep = 1;
        }
    }
}

/* A distinct source other than `s` (requires t->sources >= 2). */
static const char *other_source(const struct tally *t, const char *s) {
    return same_source(t->first[0].source, s) ? t->first[1].source : t->first[0].source;
}

static enum rsre_confidence_rule decide(const struct tally *t) {
    if (t->strong_sources >= 2) {
        return RSRE_CONF_RULE_CORROBORATED;
    }
    if (t->has_direct_rep) {
        return RSRE_CONF_RULE_DIRECT_REPEATED;
    }
    if (t->has_strong_rep && t->sources >= 2) {
        return RSRE_CONF_RULE_STRONG_REPEATED;
    }
    if (t->strong_sources == 1) {
        return t->sources >= 2 ? RSRE_CONF_RULE_STRONG_PLUS_WEAK : RSRE_CONF_RULE_SINGLE_STRONG;
    }
    return t->sources > 0 ? RSRE_CONF_RULE_WEAK_ONLY : RSRE_CONF_RULE_NONE;
}

static enum rsre_confidence band_of(enum rsre_confidence_rule r) {
    switch (r) {
    case RSRE_CONF_RULE_CORROBORATED:
    case RSRE_CONF_RULE_DIRECT_REPEATED:
    case RSRE_CONF_RULE_STRONG_REPEATED:
        return RSRE_CONF_HIGH;
    case RSRE_CONF_RULE_STRONG_PLUS_WEAK:
    case RSRE_CONF_RULE_SINGLE_STRONG:
        return RSRE_CONF_MEDIUM;
    default:
        return RSRE_CONF_LOW;
    }
}

/* Strongest strength present in a summary (requires at least one usable item). */
static const char *top_strength(const struct source_sum *s) {
    return s->at[RSRE_EVIDENCE_DIRECT] ? "direct" : s->at[RSRE_EVIDENCE_STRONG] ? "strong" : "weak";
}

static void explain(const struct tally *t, enum rsre_confidence_rule r,
                    struct rsre_confidence_why *why) {
    char *b = why->text;
    size_t sz = sizeof(why->text);
    switch (r) {
    case RSRE_CONF_RULE_CORROBORATED:
        snprintf(b, sz, "high(a): corroborated by %.48s and %.48s%s",
                 src_label(t->strong[0].source), src_label(t->strong[1].source),
                 t->strong_sources > 2 ? " and more" : "");
        break;
    case RSRE_CONF_RULE_DIRECT_REPEATED:
        snprintf(b, sz, "high(b): direct error from %.64s seen in %u consecutive checks",
                 src_label(t->direct_rep.source), t->direct_rep.at[RSRE_EVIDENCE_DIRECT]);
        break;
    case RSRE_CONF_RULE_STRONG_REPEATED:
        snprintf(b, sz, "high(c): %s signal from %.48s seen in %u checks, corroborated by %.48s",
                 top_strength(&t->strong_rep), src_label(t->strong_rep.source),
                 t->strong_rep.at[RSRE_EVIDENCE_STRONG],
                 src_label(other_source(t, t->strong_rep.source)));
        break;
    case RSRE_CONF_RULE_STRONG_PLUS_WEAK:
        snprintf(b, sz, "medium(d): %s signal from %.48s plus weak signal from %.48s",
                 top_strength(&t->strong[0]), src_label(t->strong[0].source),
                 src_label(other_source(t, t->strong[0].source)));
        break;
    case RSRE_CONF_RULE_SINGLE_STRONG:
        snprintf(b, sz, "medium(e): single %s signal from %.64s, not corroborated",
                 top_strength(&t->strong[0]), src_label(t->strong[0].source));
        break;
    case RSRE_CONF_RULE_WEAK_ONLY:
        snprintf(b, sz, "low: only weak signals from %zu source%s", t->sources,
                 t->sources == 1 ? "" : "s");
        break;
    default:
        snprintf(b, sz, "low: no usable evidence");
        break;
    }
}

enum rsre_confidence rsre_confidence_band(const struct rsre_evidence_item *items, size_t n,
                                          struct rsre_confidence_why *why) {
    struct tally t;
    tally_items(items, items != NULL ? n : 0, &t);
    enum rsre_confidence_rule r = decide(&t);
    if (why != NULL) {
        why->rule = r;
        why->reason = rule_reasons[r];
        why->sources = t.sources;
        why->strong_sources = t.strong_sources;
        why->primary_items = t.primary_items;
        explain(&t, r, why);
    }
    return band_of(r);
}
