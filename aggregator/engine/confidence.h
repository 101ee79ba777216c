#ifndef RSRE_CONFIDENCE_H
#define RSRE_CONFIDENCE_H

/*
 * Evidence confidence bands (spec "Evidence Confidence Bands"): how sure the engine is that an
 * incident's evidence supports its class. The robot may auto-act only on HIGH. The rules below
 * make the spec's bullets precise; the same table, with examples, is in
 * docs/lifecycle-and-confidence.md.
 *
 *   HIGH   (a) two or more distinct sources have STRONG or DIRECT evidence
 *              ("multiple corroborating signals");
 *          (b) one source has a DIRECT item seen in >= 2 consecutive checks
 *              ("direct error from failing component", not a one-off blip);
 *          (c) one source has a STRONG or DIRECT item seen in >= 2 consecutive checks and any
 *              other source has any item ("repeated signal across two or more checks").
 *   MEDIUM not HIGH, and
 *          (d) one source has STRONG or DIRECT evidence and another source has (WEAK) evidence
 *              ("one strong signal plus one weak signal"), or
 *          (e) one source has STRONG or DIRECT evidence and no other source has any
 *              ("inferred root cause but not directly proven").
 *   LOW    otherwise: only WEAK evidence, however much or from however many sources
 *          ("single ambiguous signal", "no corroborating data"), or no usable evidence.
 *
 * Sources: items are grouped by `source` (strcmp equality; NULL is the same source as "").
 * Items of one source never corroborate each other. A condition on one item — "a DIRECT item
 * seen in >= 2 checks" — must hold for a single item of that source: a one-off DIRECT error
 * next to a WEAK signal seen three times from the same source is one DIRECT check, not three.
 * Every rule is monotone, so adding an item never lowers the band, and the result does not
 * depend on the order of the items.
 *
 * Ignored items: checks == 0 and strength out of range. `primary` does not change the band
 * (strength already says whether an item is a primary signal); it is only reported in `why`.
 *
 * Pure functions: no I/O, no allocation. rsre_confidence_band costs O(n^2) string compares;
 * callers bound n (evidence per incident is small).
 */

#include <stddef.h>

enum rsre_confidence {
    RSRE_CONF_LOW = 0,
    RSRE_CONF_MEDIUM,
    RSRE_CONF_HIGH,
};
#define RSRE_CONF_COUNT 3

/* Ordered: a larger value is stronger evidence. */
enum rsre_evidence_strength {
    RSRE_EVIDENCE_WEAK = 0, /* ambiguous or indirect */
    RSRE_EVIDENCE_STRONG,   /* a primary signal of the incident class */
    RSRE_EVIDENCE_DIRECT,   /* an error returned by the failing component itself */
};
#define RSRE_EVIDENCE_STRENGTH_COUNT 3

/* One piece of evidence. The caller owns `source`; it is read only during the call. */
struct rsre_evidence_item {
    const char *source; /* component or probe id that produced the item */
    enum rsre_evidence_strength strength;
    unsigned checks; /* consecutive checks in which it was seen; 0 = ignore the item */
    int primary;     /* nonzero when it is a primary signal of the incident class */
};

/* The rule that decided the band; letters match the table above. */
enum rsre_confidence_rule {
    RSRE_CONF_RULE_NONE = 0,         /* LOW: no usable item */
    RSRE_CONF_RULE_CORROBORATED,     /* HIGH (a) */
    RSRE_CONF_RULE_DIRECT_REPEATED,  /* HIGH (b) */
    RSRE_CONF_RULE_STRONG_REPEATED,  /* HIGH (c) */
    RSRE_CONF_RULE_STRONG_PLUS_WEAK, /* MEDIUM (d) */
    RSRE_CONF_RULE_SINGLE_STRONG,    /* MEDIUM (e) */
    RSRE_CONF_RULE_WEAK_ONLY,        /* LOW: only WEAK items */
};

#define RSRE_CONFIDENCE_WHY_MAX 160

/*
 * Why a band was chosen. When several rules hold, the first in the order a, b, c (HIGH) or
 * d, e (MEDIUM) is reported. `reason` is static. `text` is a NUL-terminated one-line summary
 * naming the rule and the deciding source(s), truncated to fit, e.g.
 *   "high(b): direct error from db-probe seen in 3 consecutive checks".
 */
struct rsre_confidence_why {
    enum rsre_confidence_rule rule;
    const char *reason;    /* static, e.g. "high(a): multiple corroborating signals" */
    size_t sources;        /* distinct sources among usable items */
    size_t strong_sources; /* of which with STRONG or DIRECT evidence */
    size_t primary_items;  /* usable items with `primary` set */
    char text[RSRE_CONFIDENCE_WHY_MAX];
};

/* Returns "low", "medium", "high", or "unknown" for a value out of range. */
const char *rsre_confidence_name(enum rsre_confidence c);
/* Parses "low"/"medium"/"high". Returns 0, -EINVAL (NULL argument) or RSRE_EINVALID. */
int rsre_confidence_parse(const char *name, enum rsre_confidence *out);

/* Returns "weak", "strong", "direct", or "unknown". */
const char *rsre_evidence_strength_name(enum rsre_evidence_strength s);
/* Parses "weak"/"strong"/"direct". Returns 0, -EINVAL (NULL argument) or RSRE_EINVALID. */
int rsre_evidence_strength_parse(const char *name, enum rsre_evidence_strength *out);

/* Returns the static reason string of a rule (as in rsre_confidence_why.reason). */
const char *rsre_confidence_rule_reason(enum rsre_confidence_rule r);

/*
 * Returns the band for `n` items at `items` (which may be NULL when n == 0; a NULL `items` with
 * n > 0 is treated as no evidence). When `why` is not NULL it is filled completely. Never
 * fails; reads `items` and their source strings only during the call.
 */
enum rsre_confidence rsre_confidence_band(const struct rsre_evidence_item *items, size_t n,
                                          struct rsre_confidence_why *why);

#endif
