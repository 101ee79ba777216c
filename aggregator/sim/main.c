/*
 * robot-sre-sim: simulated node agents for the aggregator over real gRPC (docs/sim.md).
 *
 *   robot-sre-sim --aggregator HOST:PORT --scenario FILE        replay a scenario
 *   robot-sre-sim --aggregator HOST:PORT --agents N --rate R    load mode
 *   robot-sre-sim --check FILE                                  validate a scenario
 *
 * Exit status: 0 the run completed; 1 the run failed (no agent connected, or --require-all and
 * not every agent connected); 2 usage or scenario error.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "sim/scenario.h"
#include "sim/sim.h"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: robot-sre-sim [options] --scenario FILE\n"
            "       robot-sre-sim [options] --agents N --rate SIGNALS_PER_SEC [--duration D]\n"
            "       robot-sre-sim --check FILE\n"
            "\n"
            "Simulated Robot SRE node agents: each opens its own AgentStream.Connect to the\n"
            "aggregator over gRPC, says Hello, streams SignalBatches (per-boot seq, resent until\n"
            "acknowledged), and answers ActionRequests with a configured result.\n"
            "\n"
            "Options:\n"
            "  --aggregator ADDR      aggregator gRPC address (default 127.0.0.1:7443)\n"
            "  --scenario FILE        scenario YAML (docs/sim.md)\n"
            "  --check FILE           validate FILE, print its node groups, exit\n"
            "  --agents N             load mode: N agents (1..%d)\n"
            "  --rate R               load mode: signals per second over all agents\n"
            "  --interval D           load mode: time between two batches of one agent\n"
            "                         (default 200ms)\n"
            "  --pressure PCT         load mode: percent of agents that report DiskPressure\n"
            "                         from half the duration on (default 0)\n"
            "  --node-pattern P       load mode: node names (default sim-{00001..N})\n"
            "  --duration D           how long to run (overrides the scenario's duration;\n"
            "                         load mode default 10s)\n"
            "  --action-result R      answer to ActionRequests: ok, failed, refused, timeout,\n"
            "                         none (overrides the scenario's action_result)\n"
            "  --connect-timeout D    time for every agent to connect (default 30s)\n"
            "  --drain D              time to wait for the last Acks after the run (default 5s)\n"
            "  --report D             progress line on stderr every D (default 0: off)\n"
            "  --shared-connection    all streams over one HTTP/2 connection (default: one\n"
            "                         TCP connection per agent, as real agents)\n"
            "  --require-all          exit 1 unless every agent connected\n"
            "  --log-level L          debug, info, warn, error (default warn)\n"
            "  -h, --help             this help\n"
            "\n"
            "Durations: 500ms, 10s, 2m, 1h, or a bare number of seconds.\n"
            "At the end one summary line of key=value pairs goes to stdout.\n",
            RSRE_SIM_MAX_AGENTS);
}

static int bad(const char *fmt, const char *arg) {
    fprintf(stderr, "robot-sre-sim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'robot-sre-sim --help'.\n");
    return 2;
}

static int parse_num(const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static const char *result_name(enum rsre_sim_result r) {
    static const char *const names[] = {"ok", "failed", "refused", "timeout", "none"};
    return names[r];
}

int main(int argc, char **argv) {
    enum {
        O_AGG = 256,
        O_SCEN,
        O_CHECK,
        O_AGENTS,
        O_RATE,
        O_INTERVAL,
        O_PRESSURE,
        O_PATTERN,
        O_DURATION,
        O_RESULT,
        O_CONNECT,
        O_DRAIN,
        O_REPORT,
        O_SHARED,
        O_REQALL,
        O_LOG
    };
    static const struct option lo[] = {
        {"aggregator", required_argument, NULL, O_AGG},
        {"scenario", required_argument, NULL, O_SCEN},
        {"check", required_argument, NULL, O_CHECK},
        {"agents", required_argument, NULL, O_AGENTS},
        {"rate", required_argument, NULL, O_RATE},
        {"interval", required_argument, NULL, O_INTERVAL},
        {"pressure", required_argument, NULL, O_PRESSURE},
        {"node-pattern", required_argument, NULL, O_PATTERN},
        {"duration", required_argument, NULL, O_DURATION},
        {"action-result", required_argument, NULL, O_RESULT},
        {"connect-timeout", required_argument, NULL, O_CONNECT},
        {"drain", required_argument, NULL, O_DRAIN},
        {"report", required_argument, NULL, O_REPORT},
        {"shared-connection", no_argument, NULL, O_SHARED},
        {"require-all", no_argument, NULL, O_REQALL},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct rsre_sim_options opt = {
        .target = "127.0.0.1:7443", .connect_timeout_ms = 30000, .drain_ms = 5000};
    const char *scenario = NULL, *check = NULL, *pattern = NULL, *result = NULL;
    double agents = 0, pressure = 0;
    int64_t duration = -1, interval = 200;
    int require_all = 0;
    rsre_log_set_level_name("warn");
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case O_AGG:
            opt.target = optarg;
            break;
        case O_SCEN:
            scenario = optarg;
            break;
        case O_CHECK:
            check = optarg;
            break;
        case O_AGENTS:
            if (parse_num(optarg, 1, RSRE_SIM_MAX_AGENTS, &agents) || agents != floor(agents)) {
                return bad("--agents: '%s' is not a whole number in 1..20000", optarg);
            }
            break;
        case O_RATE:
            if (parse_num(optarg, 0.001, 1e8, &opt.rate)) {
                return bad("--rate: '%s' is not a positive number of signals per second", optarg);
            }
            break;
        case O_PRESSURE:
            if (parse_num(optarg, 0, 100, &pressure)) {
                return bad("--pressure: '%s' is not a percentage 0..100", optarg);
            }
            break;
        case O_PATTERN:
            pattern = optarg;
            break;
        case O_RESULT:
            result = optarg;
            break;
        case O_INTERVAL:
        case O_DURATION:
        case O_CONNECT:
        case O_DRAIN:
        case O_REPORT: {
            int64_t ms;
            if (rsre_sim_parse_duration(optarg, &ms) != 0) {
                return bad("'%s' is not a duration (500ms, 10s, 2m, 1h)", optarg);
            }
            if (c == O_INTERVAL) {
                if (ms < 10 || ms > 3600000) {
                    return bad("--interval: '%s' is outside 10ms..1h", optarg);
                }
                interval = ms;
            } else if (c == O_DURATION) {
                if (ms < 1000) {
                    return bad("--duration: '%s' is shorter than 1s", optarg);
                }
                duration = ms;
            } else if (c == O_CONNECT) {
                opt.connect_timeout_ms = ms;
            } else if (c == O_DRAIN) {
                opt.drain_ms = ms;
            } else {
                opt.report_ms = ms;
            }
            break;
        }
        case O_SHARED:
            opt.shared_connection = 1;
            break;
        case O_REQALL:
            require_all = 1;
            break;
        case O_LOG:
            if (rsre_log_set_level_name(optarg) != 0) {
                return bad("--log-level: '%s' is not debug, info, warn or error", optarg);
            }
            break;
        default:
            if (optopt) {
                fprintf(stderr, "robot-sre-sim: option needs a value or is unknown: %s\n",
                        argv[optind - 1]);
            } else {
                fprintf(stderr, "robot-sre-sim: unknown option: %s\n", argv[optind - 1]);
            }
            fprintf(stderr, "Try 'robot-sre-sim --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        return bad("unexpected argument '%s'", argv[optind]);
    }
    struct rsre_sim_scenario sc;
    struct rsre_yerr err;
    int rc;
    if (check || scenario) {
        if (agents > 0 || opt.rate > 0) {
            return bad("%s", "--scenario/--check and load mode (--agents/--rate) exclude each "
                             "other");
        }
        const char *path = check ? check : scenario;
        rc = rsre_sim_scenario_load(path, &sc, &err);
        if (rc) {
            if (err.line > 0) {
                fprintf(stderr, "robot-sre-sim: %s:%d:%d: %s\n", path, err.line, err.col, err.msg);
            } else {
                fprintf(stderr, "robot-sre-sim: %s: %s\n", path,
                        err.msg[0] ? err.msg : rsre_strerror(rc));
            }
            return 2;
        }
        if (check) {
            printf("%s: ok: %zu node(s) in %zu group(s), duration %.1fs, action_result %s\n", path,
                   sc.nnodes, sc.ngroups, (double)sc.duration_ms / 1000.0, result_name(sc.result));
            for (size_t g = 0; g < sc.ngroups; g++) {
                const struct rsre_sim_group *gr = &sc.groups[g];
                printf("  %s: %zu node(s) %s%s, %zu step(s)\n", gr->name, gr->count,
                       sc.nodes[gr->first], gr->count > 1 ? " .." : "", gr->nsteps);
            }
            rsre_sim_scenario_free(&sc);
            return 0;
        }
    } else if (agents > 0 || opt.rate > 0) {
        if (agents <= 0 || opt.rate <= 0) {
            return bad("%s", "load mode needs both --agents and --rate");
        }
        char defpat[64];
        if (!pattern) {
            snprintf(defpat, sizeof(defpat), "sim-{00001..%05.0f}", agents);
            pattern = defpat;
        }
        rc = rsre_sim_scenario_load_mode(&sc, pattern, (size_t)agents,
                                         duration > 0 ? duration : 10000, interval, pressure, &err);
        if (rc) {
            fprintf(stderr, "robot-sre-sim: %s\n", err.msg[0] ? err.msg : rsre_strerror(rc));
            return 2;
        }
    } else {
        return bad("%s", "nothing to do: give --scenario FILE, or --agents N and --rate R");
    }
    if (duration > 0) {
        sc.duration_ms = duration;
    }
    if (result) {
        static const char *const names[] = {"ok", "failed", "refused", "timeout", "none"};
        size_t i;
        for (i = 0; i < 5 && strcmp(result, names[i]) != 0; i++) {
        }
        if (i == 5) {
            rsre_sim_scenario_free(&sc);
            return bad("--action-result: '%s' is not ok, failed, refused, timeout or none", result);
        }
        sc.result = (enum rsre_sim_result)i;
    }
    struct rsre_sim_stats st;
    memset(&st, 0, sizeof(st));
    rc = rsre_sim_run(&sc, &opt, &st);
    rsre_sim_scenario_free(&sc);
    printf("summary agents=%llu connected=%llu all_connected=%d connect_s=%.2f run_s=%.2f "
           "batches_sent=%llu batches_resent=%llu batches_acked=%llu signals_sent=%llu "
           "signals_acked=%llu acked_signals_per_s=%.0f ack_p50_ms=%.1f ack_p99_ms=%.1f "
           "ack_max_ms=%.1f window_full=%llu reconnects=%llu actions=%llu results_sent=%llu "
           "results_acked=%llu\n",
           (unsigned long long)st.agents, (unsigned long long)st.connected_peak, st.all_connected,
           st.connect_seconds, st.run_seconds, (unsigned long long)st.batches_sent,
           (unsigned long long)st.batches_resent, (unsigned long long)st.batches_acked,
           (unsigned long long)st.signals_sent, (unsigned long long)st.signals_acked,
           st.run_seconds > 0 ? (double)st.signals_acked / st.run_seconds : 0.0, st.ack_p50_ms,
           st.ack_p99_ms, st.ack_max_ms, (unsigned long long)st.window_full,
           (unsigned long long)st.reconnects, (unsigned long long)st.actions_received,
           (unsigned long long)st.results_sent, (unsigned long long)st.results_acked);
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "robot-sre-sim: no agent could connect to %s\n", opt.target);
        return 1;
    }
    if (require_all && !st.all_connected) {
        fprintf(stderr, "robot-sre-sim: only %llu of %llu agents connected\n",
                (unsigned long long)st.connected_peak, (unsigned long long)st.agents);
        return 1;
    }
    return 0;
}
