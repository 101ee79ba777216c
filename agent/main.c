/* robot-sre-agent: the node agent daemon (see --help and docs/agent.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent/agent_internal.h"
#include "agent/config.h"
#include "common/error.h"
#include "common/log.h"

static struct rsre_agent *agent;
static uv_signal_t sigterm, sigint;

static void on_closed(void *arg) {
    (void)arg;
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
    (void)s;
    RSRE_LOG(RSRE_LOG_INFO, "agent", "signal %d: shutting down", signum);
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    if (agent) {
        rsre_agent_close(agent, on_closed, NULL);
        agent = NULL;
    }
}

int main(int argc, char **argv) {
    struct rsre_agent_config cfg;
    struct rsre_config_error err;
    rsre_agent_config_defaults(&cfg);
    int rc = rsre_agent_config_load(&cfg, argc, argv, NULL, stdout, &err);
    if (rc == 1) {
        return 0;
    }
    if (rc) {
        fprintf(stderr, "robot-sre-agent: %s\n", err.msg);
        return 2;
    }
    if (rsre_log_set_level_name(cfg.log_level)) {
        fprintf(stderr, "robot-sre-agent: log_level: unknown level '%s'\n", cfg.log_level);
        return 2;
    }
    rsre_log_set_json(cfg.log_json);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    if ((rc = rsre_agent_create(loop, &cfg, &agent))) {
        fprintf(stderr, "robot-sre-agent: cannot start: %s\n", rsre_strerror(rc));
        if (agent) { /* partly started: release it cleanly */
            rsre_agent_close(agent, NULL, NULL);
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
