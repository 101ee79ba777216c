#include "common/yamldoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

int rsre_yaml_fail(struct rsre_yerr *err, const yaml_node_t *n, int code, const char *fmt, ...) {
    if (err) {
        err->line = n ? (int)n->start_mark.line + 1 : 0;
        err->col = n ? (int)n->start_mark.column + 1 : 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *rsre_yaml_kind(const yaml_node_t *n) {
    if (!n) {
        return "nothing";
    }
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        return "a scalar";
    default:
        return "nothing";
    }
}

int rsre_yaml_load(const char *buf, size_t len, yaml_document_t *doc, struct rsre_yerr *err) {
    memset(doc, 0, sizeof(*doc));
    if (len > RSRE_YAML_MAX_INPUT) {
        return rsre_yaml_fail(err, NULL, RSRE_ELIMIT, "input is %zu bytes, limit is %u", len,
                              RSRE_YAML_MAX_INPUT);
    }
    if (memchr(buf, '\0', len)) {
        return rsre_yaml_fail(err, NULL, RSRE_EPARSE, "input contains a NUL byte");
    }
    /* Reject anchors/aliases before building the tree: they allow exponential expansion and
     * have no use in rule files. */
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    yaml_event_t ev;
    int rc = 0, docs = 0;
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            if (err) {
                err->line = (int)p.problem_mark.line + 1;
                err->col = (int)p.problem_mark.column + 1;
                snprintf(err->msg, sizeof(err->msg), "%s%s%s",
                         p.problem ? p.problem : "syntax error", p.context ? " " : "",
                         p.context ? p.context : "");
            }
            rc = RSRE_EPARSE;
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_ALIAS_EVENT ||
            ((t == YAML_SCALAR_EVENT && ev.data.scalar.anchor) ||
             (t == YAML_SEQUENCE_START_EVENT && ev.data.sequence_start.anchor) ||
             (t == YAML_MAPPING_START_EVENT && ev.data.mapping_start.anchor))) {
            if (err) {
                err->line = (int)ev.start_mark.line + 1;
                err->col = (int)ev.start_mark.column + 1;
                snprintf(err->msg, sizeof(err->msg), "YAML anchors and aliases are not allowed");
            }
            rc = RSRE_EPARSE;
        }
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            if (err) {
                err->line = (int)ev.start_mark.line + 1;
                err->col = (int)ev.start_mark.column + 1;
                snprintf(err->msg, sizeof(err->msg), "only one YAML document is allowed");
            }
            rc = RSRE_EPARSE;
        }
        yaml_event_delete(&ev);
        if (rc || t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&p);
    if (rc) {
        return rc;
    }
    if (!yaml_parser_initialize(&p)) {
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&p, doc)) {
        if (err) {
            err->line = (int)p.problem_mark.line + 1;
            err->col = (int)p.problem_mark.column + 1;
            snprintf(err->msg, sizeof(err->msg), "%s", p.problem ? p.problem : "syntax error");
        }
        yaml_parser_delete(&p);
        memset(doc, 0, sizeof(*doc));
        return RSRE_EPARSE;
    }
    yaml_parser_delete(&p);
    if (!yaml_document_get_root_node(doc)) {
        yaml_document_delete(doc);
        memset(doc, 0, sizeof(*doc));
        return rsre_yaml_fail(err, NULL, RSRE_EPARSE, "empty document");
    }
    if (doc->nodes.top - doc->nodes.start > RSRE_YAML_MAX_NODES) {
        yaml_document_delete(doc);
        memset(doc, 0, sizeof(*doc));
        return rsre_yaml_fail(err, NULL, RSRE_ELIMIT, "document has more than %d nodes",
                              RSRE_YAML_MAX_NODES);
    }
    return 0;
}

yaml_node_t *rsre_yaml_root(yaml_document_t *doc) {
    return yaml_document_get_root_node(doc);
}

yaml_node_t *rsre_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0) {
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

const char *rsre_yaml_str(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

size_t rsre_yaml_len(yaml_node_t *n) {
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        return 0;
    }
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

yaml_node_t *rsre_yaml_item(yaml_document_t *doc, yaml_node_t *seq, size_t i) {
    if (i >= rsre_yaml_len(seq)) {
        return NULL;
    }
    return yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
}

int rsre_yaml_get_str(yaml_document_t *doc, yaml_node_t *map, const char *key, const char **out,
                      struct rsre_yerr *err) {
    yaml_node_t *n = rsre_yaml_get(doc, map, key);
    if (!n) {
        return RSRE_ENOTFOUND;
    }
    const char *s = rsre_yaml_str(n);
    if (!s) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected a string, found %s", key,
                              rsre_yaml_kind(n));
    }
    *out = s;
    return 0;
}

int rsre_yaml_get_bool(yaml_document_t *doc, yaml_node_t *map, const char *key, int *out,
                       struct rsre_yerr *err) {
    yaml_node_t *n = rsre_yaml_get(doc, map, key);
    if (!n) {
        return RSRE_ENOTFOUND;
    }
    const char *s = rsre_yaml_str(n);
    if (s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "yes"))) {
        *out = 1;
        return 0;
    }
    if (s && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "no"))) {
        *out = 0;
        return 0;
    }
    return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected true or false, found %s%s%s%s",
                          key, s ? "'" : "", s ? s : rsre_yaml_kind(n), s ? "'" : "", "");
}

int rsre_yaml_get_i64(yaml_document_t *doc, yaml_node_t *map, const char *key, long long min,
                      long long max, long long *out, struct rsre_yerr *err) {
    yaml_node_t *n = rsre_yaml_get(doc, map, key);
    if (!n) {
        return RSRE_ENOTFOUND;
    }
    const char *s = rsre_yaml_str(n);
    if (!s || !*s) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected an integer, found %s", key,
                              s ? "an empty value" : rsre_yaml_kind(n));
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected an integer, found '%.40s'",
                              key, s);
    }
    if (v < min || v > max) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: %lld is outside %lld..%lld", key, v,
                              min, max);
    }
    *out = v;
    return 0;
}
