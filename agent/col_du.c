/*
 * Top disk consumers collector. Every du_ms one run measures pod logs, emptyDir volumes and the
 * containerd content store with the incremental walker in du.c. A run is a sequence of steps,
 * each bounded by du_max_entries directory entries and du_budget_ms of wall time, separated by
 * a pause of max(4 x du_budget_ms, 100 ms) in which the loop serves everything else: the loop
 * is never held longer than one step and the walk uses at most ~20% of one core and a bounded
 * rate of metadata I/O. The run completes (rsre_collect_done) when the scan does; the walker
 * resumes each step exactly where the previous one stopped.
 *
 * The proto has no top-consumers signal yet: a completed scan is logged (a summary and the
 * largest consumers) and kept for rsre_du_top (the health endpoint). State: a static pointer
 * set by init (one du collector per process).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/du.h"
#include "common/error.h"
#include "common/log.h"

#define MOD "col_du"
#define LOG_TOP_INFO 5 /* consumers logged at info level; the rest of the top N at debug */

struct du_col {
    struct rsre_agent *agent;
    struct rsre_du *du;
    uint32_t max_entries, budget_ms, pause_ms;
    uv_timer_t timer;
    struct rsre_collect_run *run; /* in flight, or NULL */
    uint64_t run_started_ms;
};

static struct du_col *g_du;

static void log_results(struct du_col *c) {
    static struct rsre_du_consumer top[RSRE_DU_TOP_N];
    struct rsre_du_scan_stats s;
    size_t n = rsre_du_results(c->du, top, RSRE_DU_TOP_N, &s);
    RSRE_LOG(RSRE_LOG_INFO, MOD,
             "scan complete entries=%llu steps=%llu duration_ms=%llu "
             "consumers=%llu errors=%llu skipped=%llu",
             (unsigned long long)s.entries, (unsigned long long)s.steps,
             (unsigned long long)(uv_now(rsre_agent_loop(c->agent)) - c->run_started_ms),
             (unsigned long long)s.consumers, (unsigned long long)s.errors,
             (unsigned long long)s.skipped);
    for (size_t i = 0; i < n; i++) {
        RSRE_LOG(i < LOG_TOP_INFO ? RSRE_LOG_INFO : RSRE_LOG_DEBUG, MOD,
                 "top_consumer rank=%zu kind=%s bytes=%llu files=%llu path=\"%s\"", i + 1,
                 rsre_du_kind_name(top[i].kind), (unsigned long long)top[i].bytes,
                 (unsigned long long)top[i].files, top[i].path);
    }
}

static void finish_run(struct du_col *c, int rc) {
    struct rsre_collect_run *run = c->run;
    c->run = NULL;
    if (run) {
        rsre_collect_done(run, rc);
    }
}

static void step(uv_timer_t *t) {
    struct du_col *c = t->data;
    struct rsre_du_step_stats st;
    int rc = rsre_du_step(c->du, c->max_entries, c->budget_ms, &st);
    if (rc < 0) {
        finish_run(c, rc);
        return;
    }
    if (rc == 1) {
        log_results(c);
        finish_run(c, 0);
        return;
    }
    uv_timer_start(&c->timer, step, c->pause_ms, 0);
}

static int du_init(struct rsre_agent *a, void **state) {
    const struct rsre_agent_config *cfg = rsre_agent_config(a);
    if (g_du) {
        return -EBUSY;
    }
    struct du_col *c = calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    int rc = rsre_du_create(cfg->pod_log_dir, cfg->kubelet_root, cfg->runtime_root, RSRE_DU_TOP_N,
                            &c->du);
    if (rc) {
        free(c);
        return rc;
    }
    rsre_du_set_cache(c->du, cfg->du_cache_reuse);
    c->agent = a;
    c->max_entries = cfg->du_max_entries ? cfg->du_max_entries : 2000;
    c->budget_ms = cfg->du_budget_ms;
    c->pause_ms = c->budget_ms * 4 > 100 ? c->budget_ms * 4 : 100;
    uv_timer_init(rsre_agent_loop(a), &c->timer);
    c->timer.data = c;
    g_du = c;
    *state = c;
    return 0;
}

static void du_collect(struct rsre_agent *a, void *state, struct rsre_collect_run *run) {
    struct du_col *c = state;
    c->run = run;
    c->run_started_ms = uv_now(rsre_agent_loop(a));
    step(&c->timer);
}

static void on_timer_closed(uv_handle_t *h) {
    struct du_col *c = h->data;
    rsre_du_destroy(c->du);
    free(c);
}

/* Ends a run in flight (rc -ECANCELED) and closes the step timer; the state is freed in the
 * timer's close callback. */
static void du_destroy(void *state) {
    struct du_col *c = state;
    if (g_du == c) {
        g_du = NULL;
    }
    uv_timer_stop(&c->timer);
    finish_run(c, -ECANCELED);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

const struct rsre_collector_desc rsre_collector_du = {
    .name = "top_consumers",
    .interval_offset = offsetof(struct rsre_agent_config, du_ms),
    .init = du_init,
    .collect = du_collect,
    .destroy = du_destroy,
    .capability = 0, /* no signal of its own yet */
};

size_t rsre_du_top(struct rsre_agent *a, struct rsre_du_consumer *out, size_t max,
                   struct rsre_du_scan_stats *stats) {
    (void)a;
    if (!g_du) {
        if (stats) {
            memset(stats, 0, sizeof(*stats));
        }
        return 0;
    }
    return rsre_du_results(g_du->du, out, max, stats);
}
