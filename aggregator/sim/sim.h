#ifndef RSRE_SIM_SIM_H
#define RSRE_SIM_SIM_H

/*
 * robot-sre-sim's agents (docs/sim.md): one AgentStream.Connect call per simulated node over
 * real gRPC (its own channel and TCP connection unless shared_connection), speaking
 * docs/protocol.md as the real agent does:
 *
 *   - Hello (protocol revision 1, a random boot id per run, capabilities, node-local actions),
 *     then, once the Hello's Ack arrived, SignalBatches with seq 1, 2, ... every `interval` of
 *     the node's group state (scenario.h);
 *   - at most RSRE_SIM_WINDOW unacknowledged batches; each is kept until an Ack covers it and
 *     resent, in order, after a reconnect (so a silent period or an aggregator restart loses
 *     nothing); send-to-Ack latency is measured per batch;
 *   - ActionRequests are answered with the scenario's `action_result` after `action_delay`
 *     (REFUSED before the stream's first ConfigUpdate, as the agent does); results are kept
 *     until an Ack lists them and resent after a reconnect;
 *   - `silent: true` cancels the stream and sends nothing until the timeline says otherwise;
 *     a stream that ends unexpectedly is redialled after 1 s (plus jitter).
 *
 * Everything runs on one libuv loop (common/grpc_loop.h bridges gRPC's completion queue).
 */

#include <stddef.h>
#include <stdint.h>

#include "sim/scenario.h"

#define RSRE_SIM_WINDOW 32          /* unacknowledged batches per agent */
#define RSRE_SIM_MAX_BATCH 1024     /* signals per batch */
#define RSRE_SIM_LAT_BUCKETS 100001 /* 100 us buckets up to 10 s, then one overflow */

struct rsre_sim_options {
    const char *target;          /* aggregator address, host:port */
    int shared_connection;       /* 1: all streams over one HTTP/2 connection */
    double rate;                 /* load mode: signals per second in total (0: scenario mode) */
    int64_t connect_timeout_ms;  /* time allowed for every agent's Hello to be acknowledged */
    int64_t drain_ms;            /* after the run, time allowed for outstanding Acks */
    int64_t report_ms;           /* progress line period (0: none) */
    const char *result_override; /* NULL or ok/failed/refused/timeout/none */
};

struct rsre_sim_stats {
    uint64_t agents, connected_peak, hellos_acked, reconnects, stream_ends;
    uint64_t batches_sent, batches_resent, signals_sent, batches_acked, signals_acked;
    uint64_t window_full, not_connected_ticks;
    uint64_t actions_received, results_sent, results_acked, refused_unconfigured;
    uint64_t config_updates, invalid_messages;
    double run_seconds;     /* from the start of the timeline to the last Ack */
    double connect_seconds; /* until every agent's Hello was acknowledged */
    double ack_p50_ms, ack_p99_ms, ack_max_ms;
    int all_connected;
};

/* Runs the scenario to its end (or SIGINT/SIGTERM) and fills *st. Returns 0, or a negative
 * code when the run could not start (gRPC setup) or no agent ever connected. */
int rsre_sim_run(const struct rsre_sim_scenario *sc, const struct rsre_sim_options *opt,
                 struct rsre_sim_stats *st);

#endif
