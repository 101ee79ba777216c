/* robot-sre-aggregator: the central daemon (see --help and docs/aggregator.md). */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <uv.h>

#include "common/error.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/wire_absl.h"

static struct rsre_aggregator *ag;
static uv_signal_t sigterm, sigint;

static void on_closed(void *arg) {
    (void)arg;
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
    (void)s;
    RSRE_LOG(RSRE_LOG_INFO, "aggregator", "signal %d: shutting down", signum);
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    if (ag) {
        rsre_aggregator_close(ag, on_closed, NULL);
        ag = NULL;
    }
}

int main(int argc, char **argv) {
    struct rsre_aggregator_config cfg;
    char err[512];
    rsre_aggregator_config_defaults(&cfg);
    int rc = rsre_aggregator_config_load(&cfg, argc, argv, err, sizeof(err));
    if (rc == 1) {
        return 0;
    }
    if (rc) {
        fprintf(stderr, "robot-sre-aggregator: %s\n", err);
        return 2;
    }
    if (rsre_log_set_level_name(cfg.log_level)) {
        fprintf(stderr, "robot-sre-aggregator: log_level: unknown level '%s'\n", cfg.log_level);
        return 2;
    }
    rsre_log_set_json(cfg.log_json);
    signal(SIGPIPE, SIG_IGN);
    rsre_absl_deadlock_detection_off(); /* before gRPC starts: docs/performance.md */
    /* Keep freed memory instead of returning it to the kernel at once: gRPC's read buffers and
     * the decode arenas are freed and allocated again for every message, and glibc's default
     * trimming made each of them fault its pages in anew (docs/performance.md, change 9). */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    uv_loop_t *loop = uv_default_loop();
    if ((rc = rsre_aggregator_create(loop, &cfg, &ag))) {
        fprintf(stderr, "robot-sre-aggregator: cannot start: %s\n", rsre_strerror(rc));
        if (ag) {
            rsre_aggregator_close(ag, NULL, NULL);
            uv_run(loop, UV_RUN_DEFAULT);
        }
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
