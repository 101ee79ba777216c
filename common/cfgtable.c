#include "common/cfgtable.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/yamldoc.h"

static int set_value(const struct rsre_cfg_entry *e, void *cfgp, const char *v, char *err,
                     size_t errlen, const char *source) {
    char *field = (char *)cfgp + e->offset;
    switch (e->type) {
    case RSRE_CFG_STR:
        if (strlen(v) >= e->size) {
            snprintf(err, errlen, "%s (%s): value longer than %zu bytes", e->name, source,
                     e->size - 1);
            return RSRE_EINVALID;
        }
        strcpy(field, v);
        return 0;
    case RSRE_CFG_U32: {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-' || n < e->min || n > e->max) {
            snprintf(err, errlen, "%s (%s): '%.40s' is not an integer in %llu..%llu", e->name,
                     source, v, e->min, e->max);
            return RSRE_EINVALID;
        }
        *(uint32_t *)field = (uint32_t)n;
        return 0;
    }
    case RSRE_CFG_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
            *(int *)field = 1;
        } else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
            *(int *)field = 0;
        } else {
            snprintf(err, errlen, "%s (%s): '%.40s' is not true or false", e->name, source, v);
            return RSRE_EINVALID;
        }
        return 0;
    case RSRE_CFG_LIST: {
        size_t n = 0;
        const char *p = v;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t l = c ? (size_t)(c - p) : strlen(p);
            while (l && isspace((unsigned char)*p)) {
                p++;
                l--;
            }
            while (l && isspace((unsigned char)p[l - 1])) {
                l--;
            }
            if (l) {
                if (n >= e->max_items || l >= e->size) {
                    snprintf(err, errlen, "%s (%s): more than %zu entries, or one longer than %zu "
                                          "bytes",
                             e->name, source, e->max_items, e->size - 1);
                    return RSRE_EINVALID;
                }
                memcpy(field + n * e->size, p, l);
                field[n * e->size + l] = '\0';
                n++;
            }
            if (!c) {
                break;
            }
            p = c + 1;
        }
        *(size_t *)((char *)cfgp + e->count_offset) = n;
        return 0;
    }
    }
    return RSRE_EINVALID;
}

static const struct rsre_cfg_entry *find(const struct rsre_cfg_table *t, const char *name,
                                         size_t len) {
    for (size_t i = 0; i < t->n; i++) {
        if (strlen(t->entries[i].name) == len && !strncmp(t->entries[i].name, name, len)) {
            return &t->entries[i];
        }
    }
    return NULL;
}

void rsre_cfg_defaults(const struct rsre_cfg_table *t, void *cfg) {
    char err[256];
    for (size_t i = 0; i < t->n; i++) {
        set_value(&t->entries[i], cfg, t->entries[i].def, err, sizeof(err), "default");
    }
}

static int load_file(const struct rsre_cfg_table *t, void *cfg, const char *path, char *err,
                     size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "config file %s: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(65536);
    ssize_t n = buf ? read(fd, buf, 65535) : -1;
    close(fd);
    if (n < 0) {
        free(buf);
        snprintf(err, errlen, "config file %s: cannot read", path);
        return -EIO;
    }
    yaml_document_t doc;
    struct rsre_yerr ye;
    int rc = rsre_yaml_load(buf, (size_t)n, &doc, &ye);
    free(buf);
    if (rc) {
        snprintf(err, errlen, "config file %s:%d:%d: %s", path, ye.line, ye.col, ye.msg);
        return rc;
    }
    yaml_node_t *root = rsre_yaml_root(&doc);
    if (root->type != YAML_MAPPING_NODE) {
        yaml_document_delete(&doc);
        snprintf(err, errlen, "config file %s: expected a mapping of key: value", path);
        return RSRE_EINVALID;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        const char *key = rsre_yaml_str(k);
        const struct rsre_cfg_entry *e = key ? find(t, key, strlen(key)) : NULL;
        char src[200];
        snprintf(src, sizeof(src), "%.180s:%d", path, k ? (int)k->start_mark.line + 1 : 0);
        if (!e) {
            snprintf(err, errlen, "%s: unknown key '%.64s' (see --help)", src, key ? key : "?");
            yaml_document_delete(&doc);
            return RSRE_EINVALID;
        }
        char joined[2048] = "";
        const char *val = rsre_yaml_str(v);
        if (!val && v && v->type == YAML_SEQUENCE_NODE && e->type == RSRE_CFG_LIST) {
            for (size_t i = 0; i < rsre_yaml_len(v); i++) {
                const char *it = rsre_yaml_str(rsre_yaml_item(&doc, v, i));
                size_t l = strlen(joined);
                snprintf(joined + l, sizeof(joined) - l, "%s%s", l ? "," : "", it ? it : "");
            }
            val = joined;
        }
        if (!val) {
            snprintf(err, errlen, "%s: %s: expected a scalar value", src, e->name);
            yaml_document_delete(&doc);
            return RSRE_EINVALID;
        }
        if ((rc = set_value(e, cfg, val, err, errlen, src))) {
            yaml_document_delete(&doc);
            return rc;
        }
    }
    yaml_document_delete(&doc);
    return 0;
}

void rsre_cfg_help(const struct rsre_cfg_table *t, FILE *out) {
    fprintf(out,
            "usage: %s [--config FILE] [--KEY=VALUE ...]\n\n%s\n\n"
            "Every key can be set in the YAML config file (key: value), in the environment as\n"
            "%s<KEY> (upper case), or as a flag; flags win over the environment, which wins\n"
            "over the file.",
            t->program, t->summary, t->env_prefix);
    for (size_t i = 0; i < t->naliases; i++) {
        fprintf(out, " %s sets %s.", t->aliases[i].env, t->aliases[i].key);
    }
    fprintf(out, "\n\nkeys:\n");
    for (size_t i = 0; i < t->n; i++) {
        const struct rsre_cfg_entry *e = &t->entries[i];
        char range[64] = "";
        if (e->type == RSRE_CFG_U32) {
            snprintf(range, sizeof(range), " [%llu..%llu]", e->min, e->max);
        }
        fprintf(out, "  --%-28s %s\n  %-30s default: %s%s\n", e->name, e->desc, "",
                e->def[0] ? e->def : "(empty)", range);
    }
    fprintf(out, "\n  --config FILE                  YAML file of the keys above\n"
                 "  --print-config                 print the effective configuration and exit\n"
                 "  --help, --version\n");
}

void rsre_cfg_dump(const struct rsre_cfg_table *t, const void *cfg, FILE *out) {
    for (size_t i = 0; i < t->n; i++) {
        const struct rsre_cfg_entry *e = &t->entries[i];
        const char *field = (const char *)cfg + e->offset;
        switch (e->type) {
        case RSRE_CFG_STR:
            fprintf(out, "%s: \"%s\"\n", e->name, field);
            break;
        case RSRE_CFG_U32:
            fprintf(out, "%s: %u\n", e->name, *(const uint32_t *)field);
            break;
        case RSRE_CFG_BOOL:
            fprintf(out, "%s: %s\n", e->name, *(const int *)field ? "true" : "false");
            break;
        case RSRE_CFG_LIST: {
            size_t n = *(const size_t *)((const char *)cfg + e->count_offset);
            fprintf(out, "%s: [", e->name);
            for (size_t k = 0; k < n; k++) {
                fprintf(out, "%s%s", k ? ", " : "", field + k * e->size);
            }
            fprintf(out, "]\n");
            break;
        }
        }
    }
}

int rsre_cfg_load(const struct rsre_cfg_table *t, void *cfg, int argc, char **argv,
                  char *const *envp, FILE *out, char *err, size_t errlen) {
    extern char **environ;
    int rc;
    err[0] = '\0';
    /* 1. the file */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            path = argv[i + 1];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        }
        if (path && (rc = load_file(t, cfg, path, err, errlen))) {
            return rc;
        }
    }
    /* 2. the environment */
    size_t plen = strlen(t->env_prefix);
    for (char *const *ep = envp ? envp : environ; ep && *ep; ep++) {
        const char *eq = strchr(*ep, '=');
        if (!eq) {
            continue;
        }
        for (size_t a = 0; a < t->naliases; a++) {
            size_t l = strlen(t->aliases[a].env);
            if (!strncmp(*ep, t->aliases[a].env, l) && (*ep)[l] == '=' && eq[1]) {
                const struct rsre_cfg_entry *e = find(t, t->aliases[a].key,
                                                      strlen(t->aliases[a].key));
                if (e && (rc = set_value(e, cfg, eq + 1, err, errlen, t->aliases[a].env))) {
                    return rc;
                }
            }
        }
        if (strncmp(*ep, t->env_prefix, plen) != 0) {
            continue;
        }
        char key[64];
        size_t l = (size_t)(eq - (*ep + plen));
        if (l >= sizeof(key)) {
            continue;
        }
        for (size_t k = 0; k < l; k++) {
            key[k] = (char)tolower((unsigned char)(*ep)[plen + k]);
        }
        key[l] = '\0';
        const struct rsre_cfg_entry *e = find(t, key, l);
        if (!e) {
            snprintf(err, errlen, "environment: unknown variable %s%.40s", t->env_prefix,
                     *ep + plen);
            return RSRE_EINVALID;
        }
        if ((rc = set_value(e, cfg, eq + 1, err, errlen, "environment"))) {
            return rc;
        }
    }
    /* 3. flags */
    int print_config = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            rsre_cfg_help(t, out);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            fprintf(out, "%s %s\n", t->program, t->version);
            return 1;
        }
        if (!strcmp(a, "--print-config")) {
            print_config = 1;
            continue;
        }
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9)) {
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%.64s' (see --help)", a);
            return RSRE_EINVALID;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t l = eq ? (size_t)(eq - name) : strlen(name);
        char norm[64];
        if (l >= sizeof(norm)) {
            snprintf(err, errlen, "unknown flag '%.64s'", a);
            return RSRE_EINVALID;
        }
        for (size_t k = 0; k < l; k++) {
            norm[k] = name[k] == '-' ? '_' : name[k];
        }
        const struct rsre_cfg_entry *e = find(t, norm, l);
        if (!e) {
            snprintf(err, errlen, "unknown flag '%.64s' (see --help)", a);
            return RSRE_EINVALID;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (e->type == RSRE_CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
                val = "true";
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                snprintf(err, errlen, "flag --%s needs a value", e->name);
                return RSRE_EINVALID;
            }
        }
        if ((rc = set_value(e, cfg, val, err, errlen, "flag"))) {
            return rc;
        }
    }
    if (print_config) {
        rsre_cfg_dump(t, cfg, out);
        return 1;
    }
    return 0;
}
