/*
 * Policy decisions per second on one core: a realistic mix of (incident class, action,
 * environment, confidence, target, cooldown state), without and with operator rules.
 *
 *   bench_policy [seconds-per-case]   (default 2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/policy.h"
#include "engine/rules.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define NREQ 4096

static void run(const char *name, struct rsre_policy_request *reqs, double seconds) {
    struct rsre_decision d;
    unsigned long long n = 0, autos = 0;
    double t0 = now_s(), t1;
    do {
        for (int i = 0; i < NREQ; i++) {
            rsre_policy_decide(&reqs[i], &d);
            autos += d.verdict == RSRE_VERDICT_AUTO;
        }
        n += NREQ;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    printf("policy_decide %-14s %12.0f decisions/s  (%llu decisions, %.1f%% auto, %.1f ns each)\n",
           name, (double)n / (t1 - t0), n, 100.0 * (double)autos / (double)n,
           (t1 - t0) * 1e9 / (double)n);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    static const char *const targets[] = {NULL, "ci", "jobs/trivy-db-warmup", "headlamp/headlamp",
                                          "default/app", "cert-manager/cert-manager",
                                          "worker-10-0-10-202"};
    static struct rsre_policy_request reqs[NREQ];
    srand(42);
    for (int i = 0; i < NREQ; i++) {
        reqs[i] = (struct rsre_policy_request){
            .taxonomy = t,
            .incident = &t->incidents[(size_t)rand() % t->nincidents],
            .action = &t->actions[(size_t)rand() % t->nactions],
            .env = (enum rsre_env)(rand() % RSRE_ENV_COUNT),
            .confidence = (enum rsre_confidence)(rand() % 3),
            .target = targets[(size_t)rand() % (sizeof(targets) / sizeof(*targets))],
            .now = 100000,
            .last_run = rand() % 4 ? 0 : 100000 - rand() % 2000};
    }
    /* Bias a quarter toward actions the class actually binds (the common case in the engine). */
    for (int i = 0; i < NREQ; i += 4) {
        const struct rsre_incident_def *inc = reqs[i].incident;
        reqs[i].action = &t->actions[inc->plan[(size_t)rand() % inc->nplan]];
    }
    run("no-rules", reqs, seconds);

    struct rsre_ruleset *rs;
    struct rsre_rule_error err;
    if (rsre_ruleset_create(NULL, &rs) ||
        rsre_ruleset_add_file(rs, RSRE_SOURCE_DIR "/deploy/local/rules/demo-disk-pressure.yaml",
                              &err)) {
        fprintf(stderr, "cannot load rules: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < NREQ; i++) {
        reqs[i].rules = rs;
        if (i % 2 == 0) { /* half hit the rule's class and environment */
            reqs[i].incident = rsre_taxonomy_incident(t, "node_disk_pressure");
            reqs[i].env = RSRE_ENV_DEMO;
        }
    }
    run("with-rules", reqs, seconds);
    rsre_ruleset_destroy(rs);
    return 0;
}
