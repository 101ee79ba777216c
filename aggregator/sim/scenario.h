#ifndef RSRE_SIM_SCENARIO_H
#define RSRE_SIM_SCENARIO_H

/*
 * robot-sre-sim scenarios (docs/sim.md): groups of simulated nodes, each with a start state and
 * a timeline of steps. A step at time `at` sets some fields; with `ramp` the numeric ones move
 * linearly from their value at `at` to the target over the ramp (that is how fill rates are
 * expressed). The state of a node at time t is a pure function of (group, t): nothing is
 * accumulated, so every agent of a group evaluates the same timeline independently.
 *
 * Loading is strict: unknown keys, wrong types, out-of-range values, steps out of order, node
 * names that are not DNS-1123 subdomains and duplicate node names are errors carrying the
 * file's line:col (common/yamldoc.h). Bounds: RSRE_SIM_MAX_GROUPS groups, RSRE_SIM_MAX_STEPS
 * steps per group, RSRE_SIM_MAX_AGENTS nodes in total.
 */

#include <stddef.h>
#include <stdint.h>

#include "common/yamldoc.h"

#define RSRE_SIM_MAX_GROUPS 64
#define RSRE_SIM_MAX_STEPS 64
#define RSRE_SIM_MAX_AGENTS 20000
#define RSRE_SIM_NAME_MAX 253

/* The simulated node's observable state. Row i of rsre_sim_fields describes field i. */
enum rsre_sim_field {
    SF_NODEFS_USED,   /* percent of nodefs used (df's Use%) */
    SF_IMAGEFS_USED,  /* percent of imagefs used */
    SF_INODES_USED,   /* percent of nodefs inodes used */
    SF_RECLAIMABLE,   /* percent of imagefs that image GC could free */
    SF_READY,         /* Ready condition (0/1) */
    SF_DISK_PRESSURE, /* DiskPressure condition (0/1); also sets the disk-pressure taint */
    SF_MEM_PRESSURE,  /* MemoryPressure condition (0/1) */
    SF_PSI_CPU,       /* PSI some avg10, percent */
    SF_PSI_MEMORY,
    SF_PSI_IO,
    SF_PODS_RUNNING, /* pod counts on the node */
    SF_PODS_PENDING,
    SF_PODS_SUCCEEDED,
    SF_PODS_FAILED,
    SF_PODS_EVICTED, /* counted among the failed ones too, as kubelet does */
    SF_SILENT,       /* 1: the agent drops its stream and sends nothing; 0: it comes back */
    SF_INTERVAL_MS,  /* time between two batches of one agent */
    SF_COUNT
};

enum rsre_sim_kind { SK_PERCENT, SK_BOOL, SK_COUNT, SK_DURATION };

struct rsre_sim_field_desc {
    const char *key; /* YAML key */
    enum rsre_sim_kind kind;
    double def; /* value before any step */
    double min, max;
    int ramps; /* 1: follows `ramp` linearly; 0: switches at `at` */
};

extern const struct rsre_sim_field_desc rsre_sim_fields[SF_COUNT];

struct rsre_sim_step {
    int64_t at_ms, ramp_ms;
    uint32_t set; /* bit i: field i is set by this step */
    double v[SF_COUNT];
};

struct rsre_sim_group {
    char name[64];
    size_t first, count; /* its nodes: scenario->nodes[first .. first+count) */
    double start[SF_COUNT];
    struct rsre_sim_step steps[RSRE_SIM_MAX_STEPS];
    size_t nsteps;
};

enum rsre_sim_result { SR_OK, SR_FAILED, SR_REFUSED, SR_TIMEOUT, SR_NONE };

struct rsre_sim_scenario {
    int64_t duration_ms;         /* how long the scenario runs */
    enum rsre_sim_result result; /* answer to ActionRequests */
    int64_t action_delay_ms;     /* time the simulated action "runs" */
    uint64_t nodefs_bytes, imagefs_bytes;
    struct rsre_sim_group groups[RSRE_SIM_MAX_GROUPS];
    size_t ngroups;
    char (*nodes)[RSRE_SIM_NAME_MAX + 1]; /* malloc'd, every node of every group */
    size_t *node_group;                   /* group index of each node */
    size_t nnodes;
};

/* Parses a scenario from YAML text. Returns 0, or RSRE_EPARSE / RSRE_EINVALID / RSRE_ELIMIT
 * with *err filled (line:col of the offending node), or -ENOMEM. Free with _free. */
int rsre_sim_scenario_parse(const char *buf, size_t len, struct rsre_sim_scenario *out,
                            struct rsre_yerr *err);

/* Reads and parses a file; read errors are reported in err with line 0. */
int rsre_sim_scenario_load(const char *path, struct rsre_sim_scenario *out, struct rsre_yerr *err);

/*
 * A load scenario built from flags: `n` nodes named by `pattern` (see rsre_sim_expand), one
 * batch every `interval_ms`; when pressure_pct > 0 that share of the nodes (the first ones)
 * goes into DiskPressure at half the duration. Returns 0, RSRE_EINVALID (err filled), -ENOMEM.
 */
int rsre_sim_scenario_load_mode(struct rsre_sim_scenario *out, const char *pattern, size_t n,
                                int64_t duration_ms, int64_t interval_ms, double pressure_pct,
                                struct rsre_yerr *err);

void rsre_sim_scenario_free(struct rsre_sim_scenario *s);

/*
 * Expands a node name pattern: "prefix{A..B}suffix" gives B-A+1 names, numbers zero-padded to
 * the width of A when A has a leading zero ("w-{01..12}"); a pattern without braces is one name.
 * `limit` caps the count (0 = none: the range must fit). Calls `emit(arg, name)` per name;
 * returns the count, or RSRE_EINVALID with `why` set (static text).
 */
long rsre_sim_expand(const char *pattern, size_t limit, int (*emit)(void *arg, const char *name),
                     void *arg, const char **why);

/* The group's state at `t_ms` after the start into v[SF_COUNT]; `slope` (may be NULL) gets the
 * per-second rate of change of each field at that time (non-zero only inside a ramp). */
void rsre_sim_state_at(const struct rsre_sim_group *g, int64_t t_ms, double v[SF_COUNT],
                       double slope[SF_COUNT]);

/* Parses "250ms", "5s", "2m", "1h" or a bare number of seconds. Returns 0 or -EINVAL. */
int rsre_sim_parse_duration(const char *s, int64_t *ms);

#endif
