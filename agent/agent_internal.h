#ifndef RSRE_AGENT_INTERNAL_H
#define RSRE_AGENT_INTERNAL_H

/* The agent's private state. Modules use the accessors in agent.h; only agent.c, health.c
 * and main.c see this. */

#include "agent/agent.h"
#include "agent/spool.h"
#include "common/curl_uv.h"
#include "common/kube.h"
#include "agent/stream.h"

#define RSRE_AGENT_MAX_COLLECTORS 16
#define RSRE_BATCH_MAX_BYTES (512u << 10)
#define RSRE_BATCH_MAX_SIGNALS 4096
#define RSRE_RESULT_CACHE 64

struct rsre_collect_run {
    struct rsre_agent *agent;
    size_t index;
    uint64_t started_us;
    int in_flight;
};

struct collector_slot {
    const struct rsre_collector_desc *desc;
    void *state;
    uv_timer_t timer;
    struct rsre_collect_run run;
    struct rsre_collector_stats stats;
    uint32_t interval_ms;
    size_t leader; /* index of the slot whose timer runs this one (itself when it leads) */
};

struct cached_result {
    char request_id[129];
    int64_t finished_ms;
};

struct rsre_agent {
    uv_loop_t *loop;
    struct rsre_agent_config cfg;
    char boot_id[37];
    int64_t started_ms;
    struct rsre_grpc_loop *grpc;
    struct rsre_cri *cri;
    struct rsre_kube *kube;
    struct rsre_http *http;
    struct rsre_spool *spool;
    struct rsre_stream *stream;

    /* the batch being built: packed Signal messages, each as a SignalBatch.signals field */
    uint8_t *batch;
    size_t batch_len, batch_cap;
    uint32_t batch_signals;
    uint64_t seq;
    uv_timer_t flush_timer;

    struct collector_slot collectors[RSRE_AGENT_MAX_COLLECTORS];
    size_t ncollectors;

    /* actions: the allowlist last sent by the aggregator (ConfigUpdate), if any */
    int have_remote_allowlist;
    char remote_allowlist[RSRE_AGENT_MAX_LIST][48];
    size_t nremote_allowlist;
    size_t actions_running;
    struct cached_result recent[RSRE_RESULT_CACHE];
    size_t recent_next;

    /* counters */
    uint64_t signals_emitted, signals_dropped_oversize, batches_cut, actions_run,
        actions_refused;

    /* footprint (agent/footprint.h): clean file pages dropped when settled; malloc_trim */
    size_t footprint_drops;
    uint64_t footprint_last_trim_ms, footprint_last_drop_ms;

    /* health endpoint */
    uv_tcp_t health;
    int health_open;

    int closing;
    int pending_closes;
    void (*closed_cb)(void *);
    void *closed_arg;
};

/* Starts/stops the liveness endpoint (agent/health.c). */
int rsre__health_start(struct rsre_agent *a);
void rsre__health_stop(struct rsre_agent *a);
/* Writes the health JSON document into buf; returns 1 when healthy. */
int rsre__health_report(struct rsre_agent *a, char *buf, size_t cap, size_t *len);

/* Runtime (CRI) and Kubernetes clients (agent/services.c): created before the collectors,
 * stopped after the stream; `done(a)` runs when every in-flight call has completed. */
void rsre__agent_services_start(struct rsre_agent *a);
void rsre__agent_services_stop(struct rsre_agent *a, void (*done)(struct rsre_agent *a));

/* Runs the hand-overs registered for collector `d` after one of its successful runs. */
void rsre__agent_after_collect(struct rsre_agent *a, const struct rsre_collector_desc *d);

/* The tables (agent/collectors.c, agent/actions.c). */
extern const struct rsre_collector_desc *const rsre__collectors[];
extern const size_t rsre__ncollectors;
extern const struct rsre_action_desc *const rsre__actions[];
extern const size_t rsre__nactions;

/* Lifecycle used by main.c and tests: create starts everything on `loop`. */
int rsre_agent_create(uv_loop_t *loop, const struct rsre_agent_config *cfg,
                      struct rsre_agent **out);
/* Stops collectors, flushes the last batch to the spool, closes the stream; `closed(arg)` runs
 * when every handle is closed and the agent is freed. */
void rsre_agent_close(struct rsre_agent *a, void (*closed)(void *), void *arg);

#endif
