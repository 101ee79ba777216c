/* Scenario loading and timeline evaluation for robot-sre-sim (scenario.h, docs/sim.md). */
#include "sim/scenario.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/pbuf.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

const struct rsre_sim_field_desc rsre_sim_fields[SF_COUNT] = {
    [SF_NODEFS_USED] = {"nodefs_used_percent", SK_PERCENT, 40, 0, 100, 1},
    [SF_IMAGEFS_USED] = {"imagefs_used_percent", SK_PERCENT, 35, 0, 100, 1},
    [SF_INODES_USED] = {"inodes_used_percent", SK_PERCENT, 10, 0, 100, 1},
    [SF_RECLAIMABLE] = {"image_reclaimable_percent", SK_PERCENT, 5, 0, 100, 1},
    [SF_READY] = {"ready", SK_BOOL, 1, 0, 1, 0},
    [SF_DISK_PRESSURE] = {"disk_pressure", SK_BOOL, 0, 0, 1, 0},
    [SF_MEM_PRESSURE] = {"memory_pressure", SK_BOOL, 0, 0, 1, 0},
    [SF_PSI_CPU] = {"psi_cpu", SK_PERCENT, 1, 0, 100, 1},
    [SF_PSI_MEMORY] = {"psi_memory", SK_PERCENT, 0.5, 0, 100, 1},
    [SF_PSI_IO] = {"psi_io", SK_PERCENT, 1, 0, 100, 1},
    [SF_PODS_RUNNING] = {"pods_running", SK_COUNT, 12, 0, 100000, 1},
    [SF_PODS_PENDING] = {"pods_pending", SK_COUNT, 0, 0, 100000, 1},
    [SF_PODS_SUCCEEDED] = {"pods_succeeded", SK_COUNT, 0, 0, 100000, 1},
    [SF_PODS_FAILED] = {"pods_failed", SK_COUNT, 0, 0, 100000, 1},
    [SF_PODS_EVICTED] = {"pods_evicted", SK_COUNT, 0, 0, 100000, 1},
    [SF_SILENT] = {"silent", SK_BOOL, 0, 0, 1, 0},
    [SF_INTERVAL_MS] = {"interval", SK_DURATION, 1000, 10, 3600000, 0},
};

int rsre_sim_parse_duration(const char *s, int64_t *ms) {
    if (!s || !*s) {
        return -EINVAL;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0) {
        return -EINVAL;
    }
    double mult;
    if (strcmp(end, "ms") == 0) {
        mult = 1;
    } else if (strcmp(end, "s") == 0 || *end == '\0') {
        mult = 1000;
    } else if (strcmp(end, "m") == 0) {
        mult = 60000;
    } else if (strcmp(end, "h") == 0) {
        mult = 3600000;
    } else {
        return -EINVAL;
    }
    v *= mult;
    if (v > 7.0 * 24 * 3600000) {
        return -EINVAL; /* a week is more than any scenario needs */
    }
    *ms = (int64_t)llround(v);
    return 0;
}

/* ---- node name patterns -------------------------------------------------------------------- */

long rsre_sim_expand(const char *pattern, size_t limit, int (*emit)(void *arg, const char *name),
                     void *arg, const char **why) {
    const char *open = strchr(pattern, '{');
    char name[RSRE_SIM_NAME_MAX + 1];
    if (!open) {
        if (strlen(pattern) > RSRE_SIM_NAME_MAX || !rsre_pbuf_is_dns1123_subdomain(pattern)) {
            *why = "not a DNS-1123 subdomain (lowercase letters, digits, '-', '.')";
            return RSRE_EINVALID;
        }
        return emit(arg, pattern) ? RSRE_ELIMIT : 1;
    }
    const char *close = strchr(open, '}');
    if (!close || strchr(close + 1, '{') || strchr(close + 1, '}')) {
        *why = "expected one range like name-{01..12}";
        return RSRE_EINVALID;
    }
    char a[16], b[16];
    size_t inner = (size_t)(close - open - 1);
    const char *dots = strstr(open, "..");
    if (!dots || dots > close || (size_t)(dots - open - 1) >= sizeof(a) ||
        (size_t)(close - dots - 2) >= sizeof(b) || inner < 4) {
        *why = "expected a range {A..B} of decimal numbers";
        return RSRE_EINVALID;
    }
    memcpy(a, open + 1, (size_t)(dots - open - 1));
    a[dots - open - 1] = '\0';
    memcpy(b, dots + 2, (size_t)(close - dots - 2));
    b[close - dots - 2] = '\0';
    for (const char *p = a; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            *why = "range bounds must be decimal numbers";
            return RSRE_EINVALID;
        }
    }
    for (const char *p = b; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            *why = "range bounds must be decimal numbers";
            return RSRE_EINVALID;
        }
    }
    if (!a[0] || !b[0]) {
        *why = "range bounds must be decimal numbers";
        return RSRE_EINVALID;
    }
    unsigned long lo = strtoul(a, NULL, 10), hi = strtoul(b, NULL, 10);
    if (hi < lo) {
        *why = "range end is below its start";
        return RSRE_EINVALID;
    }
    if (hi - lo + 1 > RSRE_SIM_MAX_AGENTS || (limit && hi - lo + 1 > limit)) {
        *why = "too many nodes in the range";
        return RSRE_ELIMIT;
    }
    int width = a[0] == '0' ? (int)strlen(a) : 0;
    long n = 0;
    for (unsigned long i = lo; i <= hi; i++) {
        int len = snprintf(name, sizeof(name), "%.*s%0*lu%s", (int)(open - pattern), pattern, width,
                           i, close + 1);
        if (len < 0 || (size_t)len >= sizeof(name) || !rsre_pbuf_is_dns1123_subdomain(name)) {
            *why = "a generated name is not a DNS-1123 subdomain (lowercase letters, digits, "
                   "'-', '.'; at most 253 bytes)";
            return RSRE_EINVALID;
        }
        if (emit(arg, name)) {
            *why = "too many nodes";
            return RSRE_ELIMIT;
        }
        n++;
    }
    return n;
}

struct names {
    struct rsre_sim_scenario *s;
    size_t group;
    int dup;
};

static int add_name(void *arg, const char *name) {
    struct names *nm = arg;
    struct rsre_sim_scenario *s = nm->s;
    if (s->nnodes >= RSRE_SIM_MAX_AGENTS) {
        return -1;
    }
    for (size_t i = 0; i < s->nnodes && !nm->dup; i++) {
        if (strcmp(s->nodes[i], name) == 0) {
            nm->dup = 1;
        }
    }
    snprintf(s->nodes[s->nnodes], sizeof(s->nodes[0]), "%s", name);
    s->node_group[s->nnodes++] = nm->group;
    return 0;
}

static int alloc_nodes(struct rsre_sim_scenario *s) {
    s->nodes = calloc(RSRE_SIM_MAX_AGENTS, sizeof(*s->nodes));
    s->node_group = calloc(RSRE_SIM_MAX_AGENTS, sizeof(*s->node_group));
    return s->nodes && s->node_group ? 0 : -ENOMEM;
}

void rsre_sim_scenario_free(struct rsre_sim_scenario *s) {
    if (s) {
        free(s->nodes);
        free(s->node_group);
        s->nodes = NULL;
        s->node_group = NULL;
        s->nnodes = 0;
    }
}

static void defaults(struct rsre_sim_scenario *s) {
    memset(s, 0, sizeof(*s));
    s->duration_ms = 30000;
    s->result = SR_OK;
    s->action_delay_ms = 200;
    s->nodefs_bytes = (uint64_t)(100 * GIB);
    s->imagefs_bytes = (uint64_t)(200 * GIB);
}

/* ---- YAML --------------------------------------------------------------------------------- */

static int key_in(const char *key, const char *const *allowed) {
    for (; *allowed; allowed++) {
        if (strcmp(key, *allowed) == 0) {
            return 1;
        }
    }
    return 0;
}

static int field_index(const char *key) {
    for (int i = 0; i < SF_COUNT; i++) {
        if (strcmp(rsre_sim_fields[i].key, key) == 0) {
            return i;
        }
    }
    return -1;
}

/* Every key of `map` must be in `allowed` or (with fields) a state field name. */
static int check_keys(yaml_document_t *doc, yaml_node_t *map, const char *what,
                      const char *const *allowed, int fields, struct rsre_yerr *err) {
    if (!map || map->type != YAML_MAPPING_NODE) {
        return rsre_yaml_fail(err, map, RSRE_EINVALID, "%s: expected a mapping, got a %s", what,
                              map ? rsre_yaml_kind(map) : "nothing");
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        const char *key = rsre_yaml_str(k);
        if (!key) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s: keys must be scalars", what);
        }
        if (!key_in(key, allowed) && !(fields && field_index(key) >= 0)) {
            return rsre_yaml_fail(err, k, RSRE_EINVALID, "%s: unknown key '%s'", what, key);
        }
    }
    return 0;
}

static int get_duration(yaml_document_t *doc, yaml_node_t *map, const char *key, int64_t *out,
                        struct rsre_yerr *err) {
    yaml_node_t *n = rsre_yaml_get(doc, map, key);
    if (!n) {
        return RSRE_ENOTFOUND;
    }
    const char *s = rsre_yaml_str(n);
    if (!s || rsre_sim_parse_duration(s, out) != 0) {
        return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected a duration like 500ms, 10s, 2m",
                              key);
    }
    return 0;
}

/* Reads the state fields present in `map` into v (bits into *set). */
static int get_fields(yaml_document_t *doc, yaml_node_t *map, double v[SF_COUNT], uint32_t *set,
                      struct rsre_yerr *err) {
    for (int i = 0; i < SF_COUNT; i++) {
        const struct rsre_sim_field_desc *d = &rsre_sim_fields[i];
        yaml_node_t *n = rsre_yaml_get(doc, map, d->key);
        if (!n) {
            continue;
        }
        const char *s = rsre_yaml_str(n);
        double x;
        if (!s) {
            return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected a scalar", d->key);
        }
        if (d->kind == SK_BOOL) {
            int b;
            int rc = rsre_yaml_get_bool(doc, map, d->key, &b, err);
            if (rc) {
                return rc;
            }
            x = b;
        } else if (d->kind == SK_DURATION) {
            int64_t ms;
            if (rsre_sim_parse_duration(s, &ms) != 0) {
                return rsre_yaml_fail(err, n, RSRE_EINVALID,
                                      "%s: expected a duration like 500ms, 10s, 2m", d->key);
            }
            x = (double)ms;
        } else {
            char *end;
            errno = 0;
            x = strtod(s, &end);
            if (errno || end == s || *end || !isfinite(x)) {
                return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected a number", d->key);
            }
            if (d->kind == SK_COUNT && x != floor(x)) {
                return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: expected a whole number", d->key);
            }
        }
        if (x < d->min || x > d->max) {
            return rsre_yaml_fail(err, n, RSRE_EINVALID, "%s: %g is outside %g..%g", d->key, x,
                                  d->min, d->max);
        }
        v[i] = x;
        *set |= 1u << i;
    }
    return 0;
}

static const char *const top_keys[] = {
    "duration", "action_result", "action_delay", "nodefs_size_gib", "imagefs_size_gib", "groups",
    NULL};
static const char *const group_keys[] = {"name", "nodes", "start", "steps", NULL};
static const char *const step_keys[] = {"at", "ramp", NULL};
static const char *const no_keys[] = {NULL};

static const char *const result_names[] = {[SR_OK] = "ok",
                                           [SR_FAILED] = "failed",
                                           [SR_REFUSED] = "refused",
                                           [SR_TIMEOUT] = "timeout",
                                           [SR_NONE] = "none"};

static int parse_group(yaml_document_t *doc, yaml_node_t *gn, struct rsre_sim_scenario *s,
                       struct rsre_yerr *err) {
    int rc = check_keys(doc, gn, "groups[]", group_keys, 0, err);
    if (rc) {
        return rc;
    }
    struct rsre_sim_group *g = &s->groups[s->ngroups];
    memset(g, 0, sizeof(*g));
    const char *name = NULL, *pattern = NULL;
    if ((rc = rsre_yaml_get_str(doc, gn, "name", &name, err)) && rc != RSRE_ENOTFOUND) {
        return rc;
    }
    snprintf(g->name, sizeof(g->name), "%s", name ? name : "group");
    if ((rc = rsre_yaml_get_str(doc, gn, "nodes", &pattern, err))) {
        return rc == RSRE_ENOTFOUND
                   ? rsre_yaml_fail(err, gn, RSRE_EINVALID, "groups[]: 'nodes' is required")
                   : rc;
    }
    for (int i = 0; i < SF_COUNT; i++) {
        g->start[i] = rsre_sim_fields[i].def;
    }
    yaml_node_t *start = rsre_yaml_get(doc, gn, "start");
    if (start) {
        uint32_t set = 0;
        if ((rc = check_keys(doc, start, "start", no_keys, 1, err)) ||
            (rc = get_fields(doc, start, g->start, &set, err))) {
            return rc;
        }
    }
    yaml_node_t *steps = rsre_yaml_get(doc, gn, "steps");
    if (steps && steps->type != YAML_SEQUENCE_NODE) {
        return rsre_yaml_fail(err, steps, RSRE_EINVALID, "steps: expected a sequence");
    }
    size_t ns = rsre_yaml_len(steps);
    if (ns > RSRE_SIM_MAX_STEPS) {
        return rsre_yaml_fail(err, steps, RSRE_ELIMIT, "steps: more than %d", RSRE_SIM_MAX_STEPS);
    }
    int64_t prev_at = 0;
    for (size_t i = 0; i < ns; i++) {
        yaml_node_t *sn = rsre_yaml_item(doc, steps, i);
        struct rsre_sim_step *st = &g->steps[i];
        memset(st, 0, sizeof(*st));
        if ((rc = check_keys(doc, sn, "steps[]", step_keys, 1, err))) {
            return rc;
        }
        if ((rc = get_duration(doc, sn, "at", &st->at_ms, err))) {
            return rc == RSRE_ENOTFOUND
                       ? rsre_yaml_fail(err, sn, RSRE_EINVALID, "steps[]: 'at' is required")
                       : rc;
        }
        if ((rc = get_duration(doc, sn, "ramp", &st->ramp_ms, err)) && rc != RSRE_ENOTFOUND) {
            return rc;
        }
        if (st->at_ms < prev_at) {
            return rsre_yaml_fail(err, rsre_yaml_get(doc, sn, "at"), RSRE_EINVALID,
                                  "at: steps must be in time order");
        }
        prev_at = st->at_ms;
        if ((rc = get_fields(doc, sn, st->v, &st->set, err))) {
            return rc;
        }
        if (!st->set) {
            return rsre_yaml_fail(err, sn, RSRE_EINVALID, "steps[]: sets no field");
        }
        g->nsteps++;
    }
    struct names nm = {.s = s, .group = s->ngroups};
    g->first = s->nnodes;
    const char *why = "";
    long n = rsre_sim_expand(pattern, 0, add_name, &nm, &why);
    yaml_node_t *pn = rsre_yaml_get(doc, gn, "nodes");
    if (n < 0) {
        return rsre_yaml_fail(err, pn, n == RSRE_ELIMIT ? RSRE_ELIMIT : RSRE_EINVALID,
                              "nodes: '%s': %s", pattern, why);
    }
    if (nm.dup) {
        return rsre_yaml_fail(err, pn, RSRE_EINVALID, "nodes: '%s' repeats a node name", pattern);
    }
    g->count = (size_t)n;
    s->ngroups++;
    return 0;
}

static int parse_doc(yaml_document_t *doc, struct rsre_sim_scenario *s, struct rsre_yerr *err) {
    yaml_node_t *root = rsre_yaml_root(doc);
    int rc = check_keys(doc, root, "scenario", top_keys, 0, err);
    if (rc) {
        return rc;
    }
    if ((rc = get_duration(doc, root, "duration", &s->duration_ms, err)) && rc != RSRE_ENOTFOUND) {
        return rc;
    }
    if (s->duration_ms < 1000) {
        return rsre_yaml_fail(err, rsre_yaml_get(doc, root, "duration"), RSRE_EINVALID,
                              "duration: at least 1s");
    }
    if ((rc = get_duration(doc, root, "action_delay", &s->action_delay_ms, err)) &&
        rc != RSRE_ENOTFOUND) {
        return rc;
    }
    const char *res = NULL;
    if ((rc = rsre_yaml_get_str(doc, root, "action_result", &res, err)) && rc != RSRE_ENOTFOUND) {
        return rc;
    }
    if (res) {
        size_t i;
        for (i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++) {
            if (strcmp(res, result_names[i]) == 0) {
                break;
            }
        }
        if (i == sizeof(result_names) / sizeof(result_names[0])) {
            return rsre_yaml_fail(err, rsre_yaml_get(doc, root, "action_result"), RSRE_EINVALID,
                                  "action_result: '%s' is not ok, failed, refused, timeout or "
                                  "none",
                                  res);
        }
        s->result = (enum rsre_sim_result)i;
    }
    long long gib;
    if ((rc = rsre_yaml_get_i64(doc, root, "nodefs_size_gib", 1, 1 << 20, &gib, err)) == 0) {
        s->nodefs_bytes = (uint64_t)gib * (uint64_t)GIB;
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    if ((rc = rsre_yaml_get_i64(doc, root, "imagefs_size_gib", 1, 1 << 20, &gib, err)) == 0) {
        s->imagefs_bytes = (uint64_t)gib * (uint64_t)GIB;
    } else if (rc != RSRE_ENOTFOUND) {
        return rc;
    }
    yaml_node_t *groups = rsre_yaml_get(doc, root, "groups");
    if (!groups || groups->type != YAML_SEQUENCE_NODE || rsre_yaml_len(groups) == 0) {
        return rsre_yaml_fail(err, groups ? groups : root, RSRE_EINVALID,
                              "groups: expected a non-empty sequence of node groups");
    }
    if (rsre_yaml_len(groups) > RSRE_SIM_MAX_GROUPS) {
        return rsre_yaml_fail(err, groups, RSRE_ELIMIT, "groups: more than %d",
                              RSRE_SIM_MAX_GROUPS);
    }
    for (size_t i = 0; i < rsre_yaml_len(groups); i++) {
        if ((rc = parse_group(doc, rsre_yaml_item(doc, groups, i), s, err))) {
            return rc;
        }
    }
    return 0;
}

int rsre_sim_scenario_parse(const char *buf, size_t len, struct rsre_sim_scenario *out,
                            struct rsre_yerr *err) {
    defaults(out);
    memset(err, 0, sizeof(*err));
    if (alloc_nodes(out)) {
        rsre_sim_scenario_free(out);
        return -ENOMEM;
    }
    yaml_document_t doc;
    int rc = rsre_yaml_load(buf, len, &doc, err);
    if (rc) {
        rsre_sim_scenario_free(out);
        return rc;
    }
    rc = parse_doc(&doc, out, err);
    yaml_document_delete(&doc);
    if (rc) {
        rsre_sim_scenario_free(out);
    }
    return rc;
}

int rsre_sim_scenario_load(const char *path, struct rsre_sim_scenario *out, struct rsre_yerr *err) {
    memset(err, 0, sizeof(*err));
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err->msg, sizeof(err->msg), "cannot open: %s", strerror(errno));
        return -errno;
    }
    char *buf = malloc(RSRE_YAML_MAX_INPUT + 1);
    size_t n = buf ? fread(buf, 1, RSRE_YAML_MAX_INPUT + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        return -ENOMEM;
    }
    if (bad || n > RSRE_YAML_MAX_INPUT) {
        free(buf);
        snprintf(err->msg, sizeof(err->msg), bad ? "read error" : "larger than %u bytes",
                 RSRE_YAML_MAX_INPUT);
        return bad ? -EIO : RSRE_ELIMIT;
    }
    int rc = rsre_sim_scenario_parse(buf, n, out, err);
    free(buf);
    return rc;
}

int rsre_sim_scenario_load_mode(struct rsre_sim_scenario *s, const char *pattern, size_t n,
                                int64_t duration_ms, int64_t interval_ms, double pressure_pct,
                                struct rsre_yerr *err) {
    defaults(s);
    memset(err, 0, sizeof(*err));
    if (alloc_nodes(s)) {
        rsre_sim_scenario_free(s);
        return -ENOMEM;
    }
    s->duration_ms = duration_ms;
    const char *why = "";
    struct names nm = {.s = s, .group = 0};
    long got = rsre_sim_expand(pattern, n, add_name, &nm, &why);
    if (got < 0 || nm.dup || (size_t)got != n) {
        snprintf(err->msg, sizeof(err->msg), "--node-pattern '%s': %s", pattern,
                 got < 0  ? why
                 : nm.dup ? "repeats a node name"
                          : "gives a different number of names than --agents");
        rsre_sim_scenario_free(s);
        return RSRE_EINVALID;
    }
    size_t pressured = (size_t)ceil((double)n * pressure_pct / 100.0);
    if (pressure_pct <= 0) {
        pressured = 0;
    }
    if (pressured > n) {
        pressured = n;
    }
    /* Group 0: the nodes that go into disk pressure at half time; group 1: the rest. Both
     * change their nodefs usage continuously, so every signal is a state change. */
    size_t sizes[2] = {pressured, n - pressured};
    size_t first = 0;
    for (int gi = 0; gi < 2; gi++) {
        if (sizes[gi] == 0) {
            continue;
        }
        struct rsre_sim_group *g = &s->groups[s->ngroups];
        memset(g, 0, sizeof(*g));
        snprintf(g->name, sizeof(g->name), "%s", gi == 0 ? "pressured" : "steady");
        g->first = first;
        g->count = sizes[gi];
        for (size_t i = first; i < first + sizes[gi]; i++) {
            s->node_group[i] = s->ngroups;
        }
        first += sizes[gi];
        for (int i = 0; i < SF_COUNT; i++) {
            g->start[i] = rsre_sim_fields[i].def;
        }
        g->start[SF_INTERVAL_MS] = (double)interval_ms;
        /* Usage climbs slowly over the whole run (a fill rate on every node). */
        struct rsre_sim_step *st = &g->steps[g->nsteps++];
        st->at_ms = 0;
        st->ramp_ms = duration_ms;
        st->set = 1u << SF_NODEFS_USED;
        st->v[SF_NODEFS_USED] = gi == 0 ? 93 : 60;
        if (gi == 0) {
            st = &g->steps[g->nsteps++];
            st->at_ms = duration_ms / 2;
            st->set = 1u << SF_DISK_PRESSURE;
            st->v[SF_DISK_PRESSURE] = 1;
        }
        s->ngroups++;
    }
    return 0;
}

void rsre_sim_state_at(const struct rsre_sim_group *g, int64_t t, double v[SF_COUNT],
                       double slope[SF_COUNT]) {
    memcpy(v, g->start, sizeof(double) * SF_COUNT);
    if (slope) {
        memset(slope, 0, sizeof(double) * SF_COUNT);
    }
    for (size_t i = 0; i < g->nsteps && g->steps[i].at_ms <= t; i++) {
        const struct rsre_sim_step *st = &g->steps[i];
        for (int f = 0; f < SF_COUNT; f++) {
            if (!(st->set & (1u << f))) {
                continue;
            }
            if (rsre_sim_fields[f].ramps && st->ramp_ms > 0 && t < st->at_ms + st->ramp_ms) {
                double frac = (double)(t - st->at_ms) / (double)st->ramp_ms;
                double from = v[f];
                v[f] = from + (st->v[f] - from) * frac;
                if (slope) {
                    slope[f] = (st->v[f] - from) * 1000.0 / (double)st->ramp_ms;
                }
            } else {
                v[f] = st->v[f];
                if (slope) {
                    slope[f] = 0;
                }
            }
        }
    }
}
