/*
 * robotctl evidence classify [FILE|-] [--json] [--patterns [--markdown]]
 *
 * Classifies evidence records (JSON lines, engine/classify.h) and prints, per record, the line
 * number, the kind, the incident class (or none), the severity hint, the confidence
 * contribution and the reason. Exit 1 when any record failed to parse; the others are still
 * classified and printed. --patterns prints the pattern table instead (--markdown for docs).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "engine/classify.h"
#include "robotctl.h"

struct run {
    const struct rctl_opts *o;
    struct rctl_table *table;
};

static void reason_text(const struct rsre_classification *c, char *buf, size_t len) {
    if (!c->rule) {
        snprintf(buf, len, "no pattern matched");
        return;
    }
    int n = snprintf(buf, len, "%s%s: %s \"%s\"", c->incident ? "" : "benign ", c->rule,
                     c->field ? c->field : "", c->span);
    for (size_t i = 0; i < RSRE_CLASSIFY_ALSO_MAX && c->also[i] && n > 0 && (size_t)n < len; i++) {
        n += snprintf(buf + n, len - (size_t)n, "%s%s", i ? ", " : " (also: ", c->also[i]);
        if (!c->also[i + 1] || i + 1 == RSRE_CLASSIFY_ALSO_MAX) {
            snprintf(buf + n, len - (size_t)n, ")");
        }
    }
}

static int on_record(void *ud, unsigned long line, int rc, const struct rsre_classification *c) {
    struct run *r = ud;
    char lineno[32], reason[512];
    snprintf(lineno, sizeof(lineno), "%lu", line);
    if (r->o->json) {
        json_t *j;
        if (rc) {
            j = json_pack("{s:I, s:b, s:s, s:s}", "line", (json_int_t)line, "ok", 0, "kind",
                          rsre_record_kind_name(c->kind), "error", c->error);
        } else {
            json_t *also = json_array();
            for (size_t i = 0; i < RSRE_CLASSIFY_ALSO_MAX && c->also[i]; i++) {
                json_array_append_new(also, json_string(c->also[i]));
            }
            j = json_pack(
                "{s:I, s:b, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "line",
                (json_int_t)line, "ok", 1, "kind", rsre_record_kind_name(c->kind), "incident",
                c->incident ? c->incident : "none", "severity", rsre_severity_name(c->severity),
                "contribution",
                c->incident ? json_string(rsre_evidence_strength_name(c->strength)) : json_null(),
                "rule", c->rule ? json_string(c->rule) : json_null(), "field",
                c->field ? json_string(c->field) : json_null(), "span",
                c->rule ? json_string(c->span) : json_null(), "offset", (json_int_t)c->span_offset,
                "length", (json_int_t)c->span_len, "also", also);
        }
        if (j) {
            json_dumpf(j, stdout, JSON_COMPACT);
            fputc('\n', stdout);
            json_decref(j);
        }
        return 0;
    }
    if (rc) {
        const char *cells[] = {lineno, rsre_record_kind_name(c->kind), "error", "-", "-", c->error};
        rctl_table_row(r->table, cells);
        return 0;
    }
    reason_text(c, reason, sizeof(reason));
    const char *cells[] = {lineno,
                           rsre_record_kind_name(c->kind),
                           c->incident ? c->incident : "none",
                           rsre_severity_name(c->severity),
                           c->incident ? rsre_evidence_strength_name(c->strength) : "-",
                           reason};
    rctl_table_row(r->table, cells);
    return 0;
}

static void join_terms(char *buf, size_t len, const char *label, const char *const *terms) {
    size_t n = strlen(buf);
    for (int i = 0; i < RSRE_CLASSIFY_TERMS && terms[i] && n < len; i++) {
        n += (size_t)snprintf(buf + n, len - n, "%s%s%s", i ? " | " : (n ? "; " : ""),
                              i ? "" : label, terms[i]);
    }
}

static void kinds_text(unsigned kinds, char *buf, size_t len) {
    buf[0] = '\0';
    size_t n = 0;
    for (int k = 0; k < RSRE_REC_KIND_COUNT && n < len; k++) {
        if (kinds & RSRE_CLS_KIND(k)) {
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "",
                                  rsre_record_kind_name((enum rsre_record_kind)k));
        }
    }
}

/* Escapes '|' for a markdown table cell. */
static void md_cell(const char *s) {
    for (; *s; s++) {
        if (*s == '|') {
            fputs("\\|", stdout);
        } else {
            fputc(*s, stdout);
        }
    }
}

static int print_patterns(const struct rctl_opts *o, int markdown) {
    size_t n;
    const struct rsre_classify_pattern *rows = rsre_classify_patterns(&n);
    static const char *const h[] = {"Id",       "Kinds",    "Field",    "Match",
                                    "Incident", "Severity", "Strength", "Note"};
    struct rctl_table *t = NULL;
    json_t *arr = NULL;
    if (o->json) {
        arr = json_array();
    } else if (markdown) {
        printf("| id | kinds | field | match | incident | severity | strength |\n"
               "| --- | --- | --- | --- | --- | --- | --- |\n");
    } else {
        t = rctl_table_new(8, h);
    }
    for (size_t i = 0; i < n; i++) {
        const struct rsre_classify_pattern *r = &rows[i];
        char kinds[160], match[1024] = "";
        char minc[32] = "";
        kinds_text(r->kinds, kinds, sizeof(kinds));
        if (r->min_count > 1) {
            snprintf(minc, sizeof(minc), "at least %u× ", r->min_count);
        }
        join_terms(match, sizeof(match), minc, r->all);
        join_terms(match, sizeof(match), "any ", r->any);
        join_terms(match, sizeof(match), "unless ", r->unless);
        join_terms(match, sizeof(match), "where ", r->where);
        const char *inc = r->incident ? r->incident : "(benign marker)";
        const char *sev = r->incident ? rsre_severity_name(r->severity) : "-";
        const char *str = r->incident ? rsre_evidence_strength_name(r->strength) : "-";
        if (arr) {
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                                                 r->id, "kinds", kinds, "field", r->field, "match",
                                                 match, "incident", inc, "severity", sev,
                                                 "strength", str, "note", r->note));
        } else if (markdown) {
            printf("| `%s` | %s | `%s` | ", r->id, kinds, r->field);
            md_cell(match);
            printf(" | %s | %s | %s |\n", inc, sev, str);
        } else {
            const char *cells[] = {r->id, kinds, r->field, match, inc, sev, str, r->note};
            rctl_table_row(t, cells);
        }
    }
    if (arr) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(arr);
    } else if (t) {
        rctl_table_print(t, stdout);
        printf("\n%zu pattern rows\n", n);
    }
    return RCTL_OK;
}

int rctl_evidence_classify(int argc, char **argv, const struct rctl_opts *o) {
    const char *path = NULL;
    int patterns = 0, markdown = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--patterns")) {
            patterns = 1;
        } else if (!strcmp(argv[i], "--markdown")) {
            markdown = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return rctl_usage_error("evidence classify: unknown option '%s'", argv[i]);
        } else if (path) {
            return rctl_usage_error("evidence classify takes at most one FILE");
        } else {
            path = argv[i];
        }
    }
    if (markdown && !patterns) {
        return rctl_usage_error("--markdown goes with --patterns");
    }
    if (patterns) {
        if (path) {
            return rctl_usage_error("--patterns takes no FILE");
        }
        return print_patterns(o, markdown);
    }
    FILE *f = stdin;
    if (path && strcmp(path, "-") != 0) {
        f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "robotctl: cannot open %s: %s\n", path, strerror(errno));
            return RCTL_FAIL;
        }
    }
    static const char *const h[] = {"Line",     "Kind",         "Incident",
                                    "Severity", "Contribution", "Reason"};
    struct run r = {o, o->json ? NULL : rctl_table_new(6, h)};
    rsre_classify_stream *s = NULL;
    int rc = rsre_classify_stream_create(on_record, &r, &s);
    static char buf[64 * 1024];
    size_t got;
    while (rc == 0 && (got = fread(buf, 1, sizeof(buf), f)) > 0) {
        rc = rsre_classify_stream_feed(s, buf, got);
    }
    int read_error = ferror(f);
    if (rc == 0) {
        rc = rsre_classify_stream_finish(s);
    }
    struct rsre_classify_stats st = {0};
    rsre_classify_stream_stats(s, &st);
    rsre_classify_stream_destroy(s);
    if (f != stdin) {
        fclose(f);
    }
    if (r.table) {
        rctl_table_print(r.table, stdout);
        printf("\n%lu records: %lu classified to an incident, %lu none, %lu errors\n", st.records,
               st.matched, st.records - st.matched - st.errors, st.errors);
    }
    if (rc || read_error) {
        fprintf(stderr, "robotctl: evidence classify: %s\n", rc ? rsre_strerror(rc) : "read error");
        return RCTL_FAIL;
    }
    return st.errors ? RCTL_FAIL : RCTL_OK;
}
