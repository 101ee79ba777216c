#ifndef RSRE_CFGTABLE_H
#define RSRE_CFGTABLE_H

/*
 * Declarative configuration for the daemons: one table per program (name, type, default,
 * bounds, description) filling a plain struct by offset. Sources, later ones winning: the
 * defaults, a YAML file of flat `key: value` (--config FILE), environment variables
 * (<PREFIX><KEY> upper case, plus per-table aliases such as NODE_NAME), then flags
 * `--key=value` / `--key value` (dashes or underscores). `--help` is generated from the table.
 */

#include <stddef.h>
#include <stdio.h>

enum rsre_cfg_type { RSRE_CFG_STR, RSRE_CFG_U32, RSRE_CFG_BOOL, RSRE_CFG_LIST };

struct rsre_cfg_entry {
    const char *name;
    enum rsre_cfg_type type;
    size_t offset;
    size_t size;       /* STR: buffer size; LIST: size of one item buffer */
    const char *def;   /* default, as text (LIST: comma-separated) */
    unsigned long long min, max; /* U32 bounds */
    const char *desc;
    size_t count_offset; /* LIST: offset of the size_t item count */
    size_t max_items;    /* LIST: capacity */
};

struct rsre_cfg_alias {
    const char *env; /* e.g. "NODE_NAME" */
    const char *key; /* e.g. "node_name" */
};

struct rsre_cfg_table {
    const char *program;    /* for --help / --version */
    const char *version;
    const char *summary;    /* paragraph printed by --help */
    const char *env_prefix; /* e.g. "ROBOT_SRE_" */
    const struct rsre_cfg_entry *entries;
    size_t n;
    const struct rsre_cfg_alias *aliases;
    size_t naliases;
};

#define RSRE_CFG_STR_ENTRY(T, f, d, desc)                                                        \
    { #f, RSRE_CFG_STR, offsetof(T, f), sizeof(((T *)0)->f), d, 0, 0, desc, 0, 0 }
#define RSRE_CFG_U32_ENTRY(T, f, d, lo, hi, desc)                                                \
    { #f, RSRE_CFG_U32, offsetof(T, f), 0, d, lo, hi, desc, 0, 0 }
#define RSRE_CFG_BOOL_ENTRY(T, f, d, desc)                                                       \
    { #f, RSRE_CFG_BOOL, offsetof(T, f), 0, d, 0, 1, desc, 0, 0 }
#define RSRE_CFG_LIST_ENTRY(T, f, countf, d, desc)                                               \
    { #f, RSRE_CFG_LIST, offsetof(T, f), sizeof(((T *)0)->f[0]), d, 0, 0, desc,                \
      offsetof(T, countf), sizeof(((T *)0)->f) / sizeof(((T *)0)->f[0]) }

/* Zeroes `cfg` (the table's struct) and applies every default. */
void rsre_cfg_defaults(const struct rsre_cfg_table *t, void *cfg);

/*
 * Applies file, environment (envp NULL = the process environment) and flags. Returns 0; 1 when
 * --help, --version or --print-config was handled (printed to `out`); or RSRE_EINVALID /
 * RSRE_EPARSE / -errno with `err` naming the key, its source and the problem.
 */
int rsre_cfg_load(const struct rsre_cfg_table *t, void *cfg, int argc, char **argv,
                  char *const *envp, FILE *out, char *err, size_t errlen);

void rsre_cfg_help(const struct rsre_cfg_table *t, FILE *out);
/* Writes the effective configuration as `key: value` lines. */
void rsre_cfg_dump(const struct rsre_cfg_table *t, const void *cfg, FILE *out);

#endif
