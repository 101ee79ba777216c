#ifndef RSRE_YAMLDOC_H
#define RSRE_YAMLDOC_H

/*
 * A small, bounded reader over libyaml's document tree, used by the taxonomy and rule
 * loaders. Errors carry the 1-based line and column of the offending node so that operators
 * see "rules.yaml:12:5: cooldown_seconds: expected an integer".
 */

#include <stddef.h>
#include <yaml.h>

#define RSRE_YAML_MAX_INPUT (4u << 20) /* bytes of YAML accepted */
#define RSRE_YAML_MAX_NODES 100000     /* nodes in one document */

struct rsre_yerr {
    int line, col;
    char msg[256];
};

/*
 * Parses exactly one YAML document from `buf`. On success fills *doc (release with
 * yaml_document_delete) and returns 0; an empty input yields a document without a root and
 * returns RSRE_EPARSE. Aliases are rejected (no billion-laughs expansion). Returns RSRE_EPARSE
 * or RSRE_ELIMIT with *err filled otherwise.
 */
int rsre_yaml_load(const char *buf, size_t len, yaml_document_t *doc, struct rsre_yerr *err);

/* Root node, or NULL. */
yaml_node_t *rsre_yaml_root(yaml_document_t *doc);
/* Value node of `key` in mapping `map`, or NULL when absent or `map` is not a mapping. */
yaml_node_t *rsre_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key);
/* Scalar text (NUL-terminated, owned by the document) or NULL when `n` is not a scalar. */
const char *rsre_yaml_str(yaml_node_t *n);
/* Number of items of a sequence (0 for anything else) and the i-th item. */
size_t rsre_yaml_len(yaml_node_t *n);
yaml_node_t *rsre_yaml_item(yaml_document_t *doc, yaml_node_t *seq, size_t i);

/*
 * Typed getters. Each returns 0 and stores the value; RSRE_ENOTFOUND when the key is absent
 * (the output is left untouched, so callers pre-set defaults); RSRE_EINVALID with *err filled
 * (naming `key` and the node's position) when the value has the wrong type or is out of range.
 */
int rsre_yaml_get_str(yaml_document_t *doc, yaml_node_t *map, const char *key, const char **out,
                      struct rsre_yerr *err);
int rsre_yaml_get_bool(yaml_document_t *doc, yaml_node_t *map, const char *key, int *out,
                       struct rsre_yerr *err);
int rsre_yaml_get_i64(yaml_document_t *doc, yaml_node_t *map, const char *key, long long min,
                      long long max, long long *out, struct rsre_yerr *err);

/* Fills *err with the position of `n` and a formatted message; returns `code`. */
int rsre_yaml_fail(struct rsre_yerr *err, const yaml_node_t *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Node kinds for messages: "mapping", "sequence", "scalar". */
const char *rsre_yaml_kind(const yaml_node_t *n);

#endif
