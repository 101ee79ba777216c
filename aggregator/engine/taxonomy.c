#include "engine/taxonomy.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/error.h"
#include "common/log.h"
#include "common/yamldoc.h"

extern const unsigned char rsre_taxonomy_yaml[];
extern const size_t rsre_taxonomy_yaml_len;

static const char *const class_names[RSRE_CLASS_COUNT] = {"observe", "notify", "contain",
                                                          "recover", "disruptive"};
static const char *const env_names[RSRE_ENV_COUNT] = {"demo", "staging", "production"};
static const char *const severity_names[RSRE_SEV_COUNT] = {"info", "warning", "critical"};

const char *rsre_class_name(enum rsre_action_class c) {
    return (unsigned)c < RSRE_CLASS_COUNT ? class_names[c] : "?";
}
const char *rsre_env_name(enum rsre_env e) {
    return (unsigned)e < RSRE_ENV_COUNT ? env_names[e] : "?";
}
const char *rsre_severity_name(enum rsre_severity s) {
    return (unsigned)s < RSRE_SEV_COUNT ? severity_names[s] : "?";
}

static int parse_name(const char *const *names, int n, const char *s, int *out) {
    for (int i = 0; s && i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return 0;
        }
    }
    return RSRE_ENOTFOUND;
}
int rsre_class_parse(const char *s, enum rsre_action_class *out) {
    int v, rc = parse_name(class_names, RSRE_CLASS_COUNT, s, &v);
    if (!rc) {
        *out = (enum rsre_action_class)v;
    }
    return rc;
}
int rsre_env_parse(const char *s, enum rsre_env *out) {
    int v, rc = parse_name(env_names, RSRE_ENV_COUNT, s, &v);
    if (!rc) {
        *out = (enum rsre_env)v;
    }
    return rc;
}
int rsre_severity_parse(const char *s, enum rsre_severity *out) {
    int v, rc = parse_name(severity_names, RSRE_SEV_COUNT, s, &v);
    if (!rc) {
        *out = (enum rsre_severity)v;
    }
    return rc;
}

const struct rsre_action_def *rsre_taxonomy_action(const struct rsre_taxonomy *t, const char *id) {
    for (size_t i = 0; id && i < t->nactions; i++) {
        if (strcmp(t->actions[i].id, id) == 0) {
            return &t->actions[i];
        }
    }
    return NULL;
}
const struct rsre_incident_def *rsre_taxonomy_incident(const struct rsre_taxonomy *t,
                                                       const char *id) {
    for (size_t i = 0; id && i < t->nincidents; i++) {
        if (strcmp(t->incidents[i].id, id) == 0) {
            return &t->incidents[i];
        }
    }
    return NULL;
}
const struct rsre_domain_def *rsre_taxonomy_domain(const struct rsre_taxonomy *t, const char *id) {
    for (size_t i = 0; id && i < t->ndomains; i++) {
        if (strcmp(t->domains[i].id, id) == 0) {
            return &t->domains[i];
        }
    }
    return NULL;
}
const struct rsre_allow_family *rsre_taxonomy_family(const struct rsre_taxonomy *t,
                                                     const char *family) {
    for (size_t i = 0; family && i < t->nallow; i++) {
        if (strcmp(t->allow[i].family, family) == 0) {
            return &t->allow[i];
        }
    }
    return NULL;
}
int rsre_taxonomy_signal_slot(void *taxonomy, const char *name, size_t len) {
    const struct rsre_taxonomy *t = taxonomy;
    for (size_t i = 0; i < t->nsignals; i++) {
        if (strlen(t->signals[i].name) == len && memcmp(t->signals[i].name, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int rsre_target_matches(const struct rsre_strlist *patterns, const char *target) {
    if (!target || !*target) {
        return 0;
    }
    const char *slash = strchr(target, '/');
    for (size_t i = 0; i < patterns->n; i++) {
        if (fnmatch(patterns->items[i], target, 0) == 0) {
            return 1;
        }
        if (slash && !strchr(patterns->items[i], '/') &&
            fnmatch(patterns->items[i], slash + 1, 0) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- loader ---- */

struct loader {
    yaml_document_t *doc;
    struct rsre_taxonomy *t;
    struct rsre_arena *arena;
    struct rsre_yerr *err;
};

/* Reads a required string field. */
static int req_str(struct loader *L, yaml_node_t *map, const char *key, const char **out) {
    int rc = rsre_yaml_get_str(L->doc, map, key, out, L->err);
    if (rc == RSRE_ENOTFOUND) {
        return rsre_yaml_fail(L->err, map, RSRE_EINVALID, "missing required field '%s'", key);
    }
    if (rc == 0 && !**out) {
        return rsre_yaml_fail(L->err, rsre_yaml_get(L->doc, map, key), RSRE_EINVALID,
                              "'%s' must not be empty", key);
    }
    return rc;
}

static int opt_bool(struct loader *L, yaml_node_t *map, const char *key, int *out) {
    *out = 0;
    int rc = rsre_yaml_get_bool(L->doc, map, key, out, L->err);
    return rc == RSRE_ENOTFOUND ? 0 : rc;
}

/* Reads a list of strings (absent = empty when !required). */
static int str_list(struct loader *L, yaml_node_t *map, const char *key, int required,
                    struct rsre_strlist *out) {
    yaml_node_t *n = rsre_yaml_get(L->doc, map, key);
    out->items = NULL;
    out->n = 0;
    if (!n) {
        return required ? rsre_yaml_fail(L->err, map, RSRE_EINVALID,
                                         "missing required list '%s'", key)
                        : 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return rsre_yaml_fail(L->err, n, RSRE_EINVALID, "%s: expected a list, found %s", key,
                              rsre_yaml_kind(n));
    }
    size_t len = rsre_yaml_len(n);
    if (len > RSRE_MAX_LIST) {
        return rsre_yaml_fail(L->err, n, RSRE_ELIMIT, "%s: more than %d entries", key,
                              RSRE_MAX_LIST);
    }
    const char **items = rsre_arena_alloc(L->arena, (len ? len : 1) * sizeof(char *));
    if (!items) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rsre_yaml_item(L->doc, n, i);
        items[i] = rsre_yaml_str(it);
        if (!items[i] || !*items[i]) {
            return rsre_yaml_fail(L->err, it, RSRE_EINVALID, "%s[%zu]: expected a string", key,
                                  i);
        }
    }
    out->items = items;
    out->n = len;
    return 0;
}

static yaml_node_t *req_seq(struct loader *L, yaml_node_t *map, const char *key, int *rc) {
    yaml_node_t *n = rsre_yaml_get(L->doc, map, key);
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        *rc = rsre_yaml_fail(L->err, n ? n : map, RSRE_EINVALID, "'%s' must be a list", key);
        return NULL;
    }
    *rc = 0;
    return n;
}

static int check_id(struct loader *L, yaml_node_t *at, const char *id) {
    for (const char *p = id; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return rsre_yaml_fail(L->err, at, RSRE_EINVALID,
                                  "id '%s' must be lower_snake_case", id);
        }
    }
    return 0;
}

static int load_domains(struct loader *L, yaml_node_t *root) {
    int rc;
    yaml_node_t *seq = req_seq(L, root, "domains", &rc);
    if (rc) {
        return rc;
    }
    if (rsre_yaml_len(seq) > RSRE_MAX_DOMAINS) {
        return rsre_yaml_fail(L->err, seq, RSRE_ELIMIT, "too many domains");
    }
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *m = rsre_yaml_item(L->doc, seq, i);
        struct rsre_domain_def *d = &L->t->domains[L->t->ndomains];
        if ((rc = req_str(L, m, "id", &d->id)) || (rc = check_id(L, m, d->id)) ||
            (rc = req_str(L, m, "display_name", &d->display_name)) ||
            (rc = req_str(L, m, "description", &d->description)) ||
            (rc = str_list(L, m, "covers", 1, &d->covers))) {
            return rc;
        }
        if (rsre_taxonomy_domain(L->t, d->id)) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "duplicate domain '%s'", d->id);
        }
        L->t->ndomains++;
    }
    return 0;
}

static int env_mask(struct loader *L, yaml_node_t *map, const char *key, unsigned *mask) {
    struct rsre_strlist l;
    int rc = str_list(L, map, key, 0, &l);
    *mask = 0;
    for (size_t i = 0; !rc && i < l.n; i++) {
        enum rsre_env e;
        if (rsre_env_parse(l.items[i], &e)) {
            return rsre_yaml_fail(L->err, rsre_yaml_get(L->doc, map, key), RSRE_EINVALID,
                                  "%s: unknown environment '%s'", key, l.items[i]);
        }
        *mask |= 1u << e;
    }
    return rc;
}

static int load_actions(struct loader *L, yaml_node_t *root) {
    int rc;
    yaml_node_t *seq = req_seq(L, root, "actions", &rc);
    if (rc) {
        return rc;
    }
    if (rsre_yaml_len(seq) > RSRE_MAX_ACTIONS) {
        return rsre_yaml_fail(L->err, seq, RSRE_ELIMIT, "more than %d actions", RSRE_MAX_ACTIONS);
    }
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *m = rsre_yaml_item(L->doc, seq, i);
        struct rsre_action_def *a = &L->t->actions[L->t->nactions];
        const char *cls;
        int b;
        a->index = (unsigned)L->t->nactions;
        if ((rc = req_str(L, m, "id", &a->id)) || (rc = check_id(L, m, a->id)) ||
            (rc = req_str(L, m, "class", &cls)) || (rc = req_str(L, m, "label", &a->label)) ||
            (rc = req_str(L, m, "description", &a->description)) ||
            (rc = req_str(L, m, "target_kind", &a->target_kind))) {
            return rc;
        }
        if (rsre_class_parse(cls, &a->cls)) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "action '%s': unknown class '%s' (observe, notify, contain, "
                                  "recover, disruptive)",
                                  a->id, cls);
        }
        rc = rsre_yaml_get_str(L->doc, m, "family", &a->family, L->err);
        if (rc && rc != RSRE_ENOTFOUND) {
            return rc;
        }
        if ((rc = opt_bool(L, m, "mutates_config", &b))) {
            return rc;
        }
        a->mutates_config = (unsigned)b;
        if ((rc = opt_bool(L, m, "helm", &b))) {
            return rc;
        }
        a->helm = (unsigned)b;
        if ((rc = opt_bool(L, m, "oci", &b))) {
            return rc;
        }
        a->oci = (unsigned)b;
        if ((rc = opt_bool(L, m, "human_only", &b))) {
            return rc;
        }
        a->human_only = (unsigned)b;
        if ((rc = opt_bool(L, m, "requires_allowlist", &b))) {
            return rc;
        }
        a->requires_allowlist = (unsigned)b;
        if ((rc = env_mask(L, m, "auto_envs", &a->auto_envs))) {
            return rc;
        }
        if (rsre_taxonomy_action(L->t, a->id)) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "duplicate action '%s'", a->id);
        }
        /* Catalogue invariants: only contain actions can carry auto environments; those that
         * need an allowlist must name the family it lives in; human-only never auto. */
        if (a->auto_envs && a->cls != RSRE_CLASS_CONTAIN) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "action '%s': auto_envs is only meaningful for contain actions",
                                  a->id);
        }
        if (a->requires_allowlist && !a->family) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "action '%s': requires_allowlist needs a family", a->id);
        }
        if (a->human_only && (a->auto_envs || a->family)) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "action '%s': a human-only action cannot be auto or allowlisted",
                                  a->id);
        }
        if ((a->mutates_config || a->helm || a->oci) && a->cls < RSRE_CLASS_RECOVER) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "action '%s': config, Helm and OCI operations are recover or "
                                  "disruptive",
                                  a->id);
        }
        L->t->nactions++;
    }
    return 0;
}

/* Resolves a list of action ids into `binding` with value `bind`. */
static int bind_actions(struct loader *L, yaml_node_t *m, const char *key, int bind,
                        struct rsre_incident_def *inc) {
    struct rsre_strlist l;
    int rc = str_list(L, m, key, bind != RSRE_BIND_ENV_AUTO, &l);
    if (rc) {
        return rc;
    }
    yaml_node_t *at = rsre_yaml_get(L->doc, m, key);
    for (size_t i = 0; i < l.n; i++) {
        const struct rsre_action_def *a = rsre_taxonomy_action(L->t, l.items[i]);
        if (!a) {
            return rsre_yaml_fail(L->err, at, RSRE_EINVALID, "%s: %s: unknown action '%s'",
                                  inc->id, key, l.items[i]);
        }
        if (inc->binding[a->index]) {
            return rsre_yaml_fail(L->err, at, RSRE_EINVALID, "%s: action '%s' is listed twice",
                                  inc->id, a->id);
        }
        if (a->human_only != (bind == RSRE_BIND_HUMAN)) {
            return rsre_yaml_fail(L->err, at, RSRE_EINVALID,
                                  "%s: action '%s' is %shuman-only and cannot be listed under %s",
                                  inc->id, a->id, a->human_only ? "" : "not ", key);
        }
        if ((bind == RSRE_BIND_AUTO || bind == RSRE_BIND_ENV_AUTO) &&
            a->cls > RSRE_CLASS_CONTAIN) {
            return rsre_yaml_fail(L->err, at, RSRE_EINVALID,
                                  "%s: %s action '%s' cannot be auto-allowed", inc->id,
                                  rsre_class_name(a->cls), a->id);
        }
        if (bind == RSRE_BIND_ENV_AUTO && a->cls != RSRE_CLASS_CONTAIN) {
            return rsre_yaml_fail(L->err, at, RSRE_EINVALID,
                                  "%s: env_auto holds contain actions only", inc->id);
        }
        inc->binding[a->index] = (uint8_t)bind;
        inc->plan[inc->nplan++] = (uint8_t)a->index;
    }
    return 0;
}

static int compile(struct loader *L, yaml_node_t *at, const char *what, const char *src,
                   struct rsre_expr **out) {
    struct rsre_expr_error e;
    int rc = rsre_expr_compile(src, strlen(src), rsre_taxonomy_signal_slot, L->t, out, &e);
    if (rc) {
        return rsre_yaml_fail(L->err, at, RSRE_EINVALID, "%s: expression line %d col %d: %s",
                              what, e.line, e.col, e.msg);
    }
    return 0;
}

static int load_cooldowns(struct loader *L, yaml_node_t *m, struct rsre_incident_def *inc) {
    yaml_node_t *seq = rsre_yaml_get(L->doc, m, "cooldowns");
    if (!seq) {
        return 0;
    }
    if (seq->type != YAML_SEQUENCE_NODE || rsre_yaml_len(seq) > RSRE_MAX_LIST) {
        return rsre_yaml_fail(L->err, seq, RSRE_EINVALID, "%s: cooldowns must be a short list",
                              inc->id);
    }
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *c = rsre_yaml_item(L->doc, seq, i);
        struct rsre_cooldown_def *cd = &inc->cooldowns[inc->ncooldowns];
        struct rsre_strlist applies;
        const char *scope;
        int rc;
        if ((rc = str_list(L, c, "applies_to", 1, &applies)) ||
            (rc = rsre_yaml_get_i64(L->doc, c, "seconds", 1, 30LL * 86400, &cd->seconds,
                                    L->err)) ||
            (rc = req_str(L, c, "scope", &scope)) || (rc = req_str(L, c, "text", &cd->text))) {
            return rc == RSRE_ENOTFOUND
                       ? rsre_yaml_fail(L->err, c, RSRE_EINVALID, "cooldown needs 'seconds'")
                       : rc;
        }
        if (!strcmp(scope, "incident")) {
            cd->scope = RSRE_CD_INCIDENT;
        } else if (!strcmp(scope, "node")) {
            cd->scope = RSRE_CD_NODE;
        } else if (!strcmp(scope, "target")) {
            cd->scope = RSRE_CD_TARGET;
        } else {
            return rsre_yaml_fail(L->err, c, RSRE_EINVALID,
                                  "cooldown scope '%s' (incident, node, target)", scope);
        }
        for (size_t k = 0; k < applies.n; k++) {
            enum rsre_action_class cls;
            const struct rsre_action_def *a;
            if (!rsre_class_parse(applies.items[k], &cls)) {
                cd->class_mask |= 1u << cls;
            } else if ((a = rsre_taxonomy_action(L->t, applies.items[k]))) {
                cd->actions[a->index] = 1;
            } else {
                return rsre_yaml_fail(L->err, c, RSRE_EINVALID,
                                      "cooldown applies_to '%s': neither a class nor an action",
                                      applies.items[k]);
            }
        }
        inc->ncooldowns++;
    }
    return 0;
}

static int load_incidents(struct loader *L, yaml_node_t *root) {
    int rc;
    yaml_node_t *seq = req_seq(L, root, "incidents", &rc);
    if (rc) {
        return rc;
    }
    if (rsre_yaml_len(seq) > RSRE_MAX_INCIDENTS) {
        return rsre_yaml_fail(L->err, seq, RSRE_ELIMIT, "too many incident classes");
    }
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *m = rsre_yaml_item(L->doc, seq, i);
        struct rsre_incident_def *inc = &L->t->incidents[L->t->nincidents];
        const char *domain, *sev;
        inc->index = (unsigned)L->t->nincidents;
        if ((rc = req_str(L, m, "id", &inc->id)) || (rc = check_id(L, m, inc->id)) ||
            (rc = req_str(L, m, "domain", &domain)) ||
            (rc = req_str(L, m, "display_name", &inc->display_name)) ||
            (rc = req_str(L, m, "description", &inc->description)) ||
            (rc = req_str(L, m, "default_severity", &sev)) ||
            (rc = str_list(L, m, "primary_signals", 1, &inc->primary_signals)) ||
            (rc = str_list(L, m, "secondary_signals", 0, &inc->secondary_signals)) ||
            (rc = str_list(L, m, "root_cause_hypotheses", 1, &inc->hypotheses)) ||
            (rc = str_list(L, m, "exit_criteria", 1, &inc->exit_criteria)) ||
            (rc = req_str(L, m, "exit_expression", &inc->exit_expression))) {
            return rc;
        }
        if (rsre_taxonomy_incident(L->t, inc->id)) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "duplicate incident '%s'", inc->id);
        }
        if (!(inc->domain = rsre_taxonomy_domain(L->t, domain))) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "%s: unknown domain '%s'", inc->id,
                                  domain);
        }
        if (rsre_severity_parse(sev, &inc->default_severity)) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "%s: unknown severity '%s'", inc->id,
                                  sev);
        }
        if ((rc = bind_actions(L, m, "auto", RSRE_BIND_AUTO, inc)) ||
            (rc = bind_actions(L, m, "env_auto", RSRE_BIND_ENV_AUTO, inc)) ||
            (rc = bind_actions(L, m, "approval", RSRE_BIND_APPROVAL, inc)) ||
            (rc = bind_actions(L, m, "human_only", RSRE_BIND_HUMAN, inc)) ||
            (rc = load_cooldowns(L, m, inc))) {
            return rc;
        }
        inc->exit_window = 0;
        rc = rsre_yaml_get_i64(L->doc, m, "exit_window", 0, 86400, &inc->exit_window, L->err);
        if (rc && rc != RSRE_ENOTFOUND) {
            return rc;
        }
        yaml_node_t *rules = rsre_yaml_get(L->doc, m, "severity_rules");
        if (!rules || rules->type != YAML_SEQUENCE_NODE || rsre_yaml_len(rules) == 0 ||
            rsre_yaml_len(rules) > RSRE_MAX_LIST) {
            return rsre_yaml_fail(L->err, rules ? rules : m, RSRE_EINVALID,
                                  "%s: severity_rules must be a non-empty list", inc->id);
        }
        for (size_t k = 0; k < rsre_yaml_len(rules); k++) {
            yaml_node_t *r = rsre_yaml_item(L->doc, rules, k);
            struct rsre_severity_rule *sr = &inc->severity_rules[inc->nseverity_rules];
            const char *s;
            if ((rc = req_str(L, r, "severity", &s)) || (rc = req_str(L, r, "text", &sr->text)) ||
                (rc = req_str(L, r, "when", &sr->when))) {
                return rc;
            }
            if (rsre_severity_parse(s, &sr->severity)) {
                return rsre_yaml_fail(L->err, r, RSRE_EINVALID, "unknown severity '%s'", s);
            }
            inc->nseverity_rules++;
            if ((rc = compile(L, r, inc->id, sr->when, &sr->expr))) {
                return rc;
            }
        }
        if ((rc = compile(L, m, inc->id, inc->exit_expression, &inc->exit_expr))) {
            return rc;
        }
        L->t->nincidents++;
    }
    return 0;
}

static int load_allowlist(struct loader *L, yaml_node_t *root) {
    yaml_node_t *m = rsre_yaml_get(L->doc, root, "allowlist");
    if (!m || m->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(L->err, m ? m : root, RSRE_EINVALID, "'allowlist' must be a mapping");
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        if (L->t->nallow >= RSRE_MAX_LIST) {
            return rsre_yaml_fail(L->err, m, RSRE_ELIMIT, "too many allowlist families");
        }
        struct rsre_allow_family *f = &L->t->allow[L->t->nallow];
        f->family = rsre_yaml_str(yaml_document_get_node(L->doc, p->key));
        int rc = str_list(L, m, f->family, 1, &f->patterns);
        if (rc) {
            return rc;
        }
        int used = 0;
        for (size_t i = 0; i < L->t->nactions; i++) {
            used |= L->t->actions[i].family && !strcmp(L->t->actions[i].family, f->family);
        }
        if (!used) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "allowlist family '%s' is not used by any action", f->family);
        }
        L->t->nallow++;
    }
    for (size_t i = 0; i < L->t->nactions; i++) {
        const struct rsre_action_def *a = &L->t->actions[i];
        if (a->family && !rsre_taxonomy_family(L->t, a->family)) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "action '%s' names family '%s' that has no allowlist entry",
                                  a->id, a->family);
        }
    }
    return 0;
}

static int load_never(struct loader *L, yaml_node_t *root) {
    int rc;
    yaml_node_t *seq = req_seq(L, root, "never_auto_contain", &rc);
    if (rc) {
        return rc;
    }
    if (rsre_yaml_len(seq) > RSRE_MAX_LIST) {
        return rsre_yaml_fail(L->err, seq, RSRE_ELIMIT, "never_auto_contain is too long");
    }
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *m = rsre_yaml_item(L->doc, seq, i);
        struct rsre_never_def *n = &L->t->never[L->t->nnever];
        struct rsre_strlist acts;
        if ((rc = req_str(L, m, "id", &n->id)) ||
            (rc = req_str(L, m, "description", &n->description)) ||
            (rc = str_list(L, m, "match", 0, &n->match)) ||
            (rc = str_list(L, m, "target_kinds", 0, &n->target_kinds)) ||
            (rc = str_list(L, m, "actions", 0, &acts))) {
            return rc;
        }
        for (size_t k = 0; k < acts.n; k++) {
            const struct rsre_action_def *a = rsre_taxonomy_action(L->t, acts.items[k]);
            if (!a) {
                return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "%s: unknown action '%s'", n->id,
                                      acts.items[k]);
            }
            n->actions[a->index] = 1;
        }
        if (!n->match.n && !n->target_kinds.n && !acts.n) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "%s: matches nothing", n->id);
        }
        L->t->nnever++;
    }
    return 0;
}

static int load_signals(struct loader *L, yaml_node_t *root) {
    int rc;
    yaml_node_t *seq = req_seq(L, root, "signals", &rc);
    if (rc) {
        return rc;
    }
    if (rsre_yaml_len(seq) > RSRE_MAX_SIGNALS) {
        return rsre_yaml_fail(L->err, seq, RSRE_ELIMIT, "too many signals");
    }
    for (size_t i = 0; i < rsre_yaml_len(seq); i++) {
        yaml_node_t *m = rsre_yaml_item(L->doc, seq, i);
        struct rsre_signal_def *s = &L->t->signals[L->t->nsignals];
        if ((rc = req_str(L, m, "name", &s->name)) || (rc = req_str(L, m, "unit", &s->unit)) ||
            (rc = req_str(L, m, "description", &s->description))) {
            return rc;
        }
        if (strlen(s->name) > RSRE_EXPR_MAX_NAME ||
            rsre_taxonomy_signal_slot(L->t, s->name, strlen(s->name)) >= 0) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID, "signal '%s' is duplicate or too long",
                                  s->name);
        }
        L->t->nsignals++;
    }
    return 0;
}

static int load_top(struct loader *L, yaml_node_t *root) {
    struct rsre_taxonomy *t = L->t;
    int rc;
    if (!root || root->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(L->err, root, RSRE_EINVALID, "taxonomy must be a mapping");
    }
    if ((rc = rsre_yaml_get_i64(L->doc, root, "version", 1, 1000000, &t->version, L->err))) {
        return rc == RSRE_ENOTFOUND
                   ? rsre_yaml_fail(L->err, root, RSRE_EINVALID, "missing 'version'")
                   : rc;
    }
    yaml_node_t *envs = req_seq(L, root, "environments", &rc);
    if (rc) {
        return rc;
    }
    unsigned seen = 0;
    for (size_t i = 0; i < rsre_yaml_len(envs); i++) {
        yaml_node_t *m = rsre_yaml_item(L->doc, envs, i);
        const char *id;
        enum rsre_env e;
        if ((rc = req_str(L, m, "id", &id))) {
            return rc;
        }
        if (rsre_env_parse(id, &e) || (seen & (1u << e))) {
            return rsre_yaml_fail(L->err, m, RSRE_EINVALID,
                                  "environment '%s' is unknown or duplicate", id);
        }
        seen |= 1u << e;
        if ((rc = req_str(L, m, "description", &t->env_description[e]))) {
            return rc;
        }
    }
    if (seen != (1u << RSRE_ENV_COUNT) - 1) {
        return rsre_yaml_fail(L->err, envs, RSRE_EINVALID,
                              "environments must be exactly demo, staging and production");
    }
    yaml_node_t *cd = rsre_yaml_get(L->doc, root, "cooldown_defaults");
    struct {
        const char *key;
        long long *out;
    } cds[] = {{"observation_polling", &t->cooldown.observation_polling},
               {"duplicate_suppression", &t->cooldown.duplicate_suppression},
               {"same_action_retry", &t->cooldown.same_action_retry},
               {"disruptive_retry", &t->cooldown.disruptive_retry}};
    for (size_t i = 0; i < sizeof(cds) / sizeof(cds[0]); i++) {
        rc = rsre_yaml_get_i64(L->doc, cd, cds[i].key, 1, 30LL * 86400, cds[i].out, L->err);
        if (rc) {
            return rc == RSRE_ENOTFOUND ? rsre_yaml_fail(L->err, cd ? cd : root, RSRE_EINVALID,
                                                         "cooldown_defaults.%s is required",
                                                         cds[i].key)
                                        : rc;
        }
    }
    if ((rc = load_domains(L, root)) || (rc = load_actions(L, root)) ||
        (rc = load_signals(L, root)) || (rc = load_allowlist(L, root)) ||
        (rc = load_never(L, root)) || (rc = load_incidents(L, root))) {
        return rc;
    }
    return 0;
}

void rsre_taxonomy_destroy(struct rsre_taxonomy *t) {
    if (!t) {
        return;
    }
    for (size_t i = 0; i < RSRE_MAX_INCIDENTS; i++) {
        struct rsre_incident_def *inc = &t->incidents[i];
        for (size_t k = 0; k < RSRE_MAX_LIST; k++) {
            rsre_expr_destroy(inc->severity_rules[k].expr);
        }
        rsre_expr_destroy(inc->exit_expr);
    }
    if (t->_doc) {
        yaml_document_delete(t->_doc);
        free(t->_doc);
    }
    rsre_arena_destroy(t->_arena);
    free(t);
}

int rsre_taxonomy_load(const char *yaml, size_t len, struct rsre_taxonomy **out,
                       struct rsre_yerr *err) {
    *out = NULL;
    struct rsre_taxonomy *t = calloc(1, sizeof(*t));
    yaml_document_t *doc = calloc(1, sizeof(*doc));
    struct rsre_arena *arena = rsre_arena_create();
    if (!t || !doc || !arena) {
        free(t);
        free(doc);
        rsre_arena_destroy(arena);
        return -ENOMEM;
    }
    t->_arena = arena;
    int rc = rsre_yaml_load(yaml, len, doc, err);
    if (rc) {
        free(doc);
        rsre_taxonomy_destroy(t);
        return rc;
    }
    t->_doc = doc;
    struct loader L = {.doc = doc, .t = t, .arena = arena, .err = err};
    rc = load_top(&L, rsre_yaml_root(doc));
    if (rc) {
        rsre_taxonomy_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

static struct rsre_taxonomy *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void load_builtin(void) {
    struct rsre_yerr e = {0};
    int rc = rsre_taxonomy_load((const char *)rsre_taxonomy_yaml, rsre_taxonomy_yaml_len,
                                &builtin, &e);
    if (rc) {
        fprintf(stderr, "built-in taxonomy is invalid: line %d col %d: %s (%s)\n", e.line, e.col,
                e.msg, rsre_strerror(rc));
        abort();
    }
}

const struct rsre_taxonomy *rsre_taxonomy_builtin(void) {
    pthread_once(&builtin_once, load_builtin);
    return builtin;
}
