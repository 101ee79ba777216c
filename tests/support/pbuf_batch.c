/*
 * The AgentMessage robot-sre-sim's load mode sends (aggregator/sim/sim.c build_batch): a
 * SignalBatch whose first Signal is NodeConditions, followed by nodefs FilesystemUsage samples,
 * each with distinct values. Shared by tests/unit/test_pbuf_decode.c and
 * tests/bench/bench_pbuf_decode.c, which #include this file.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdlib.h>

#include "robot_sre/agent.pb-c.h"

#define PB_M(x) RobotSre__Agent__V1__##x
#define PB_E(x) ROBOT_SRE__AGENT__V1__##x

/* Packs a load-mode batch of n_signals signals (n_signals >= 1); returns a malloc'd buffer
 * and its length in *len, or NULL. */
static uint8_t *pb_load_batch(size_t n_signals, size_t *len) {
    PB_M(NodeCondition) ready, dp, mp, pp;
    PB_M(NodeCondition) * conds[4] = {&ready, &dp, &mp, &pp};
    for (int i = 0; i < 4; i++) {
        robot_sre__agent__v1__node_condition__init(conds[i]);
        conds[i]->status = PB_E(CONDITION_STATUS__CONDITION_STATUS_FALSE);
    }
    ready.status = PB_E(CONDITION_STATUS__CONDITION_STATUS_TRUE);
    ready.reason = "KubeletReady";
    dp.reason = "KubeletHasNoDiskPressure";
    PB_M(NodeConditions) nc;
    robot_sre__agent__v1__node_conditions__init(&nc);
    nc.ready = &ready;
    nc.disk_pressure = &dp;
    nc.memory_pressure = &mp;
    nc.pid_pressure = &pp;

    PB_M(Signal) *sigs = calloc(n_signals, sizeof(*sigs));
    PB_M(Signal) **sigp = calloc(n_signals, sizeof(*sigp));
    PB_M(FilesystemUsage) *fss = calloc(n_signals, sizeof(*fss));
    if (sigs == NULL || sigp == NULL || fss == NULL) {
        free(sigs);
        free(sigp);
        free(fss);
        return NULL;
    }
    int64_t now = INT64_C(1795000000000);
    for (size_t i = 0; i < n_signals; i++) {
        PB_M(Signal) *sg = &sigs[i];
        robot_sre__agent__v1__signal__init(sg);
        sg->observed_unix_ms = now;
        if (i == 0) {
            sg->kind_case = PB_E(SIGNAL__KIND_NODE_CONDITIONS);
            sg->node_conditions = &nc;
        } else {
            PB_M(FilesystemUsage) *f = &fss[i];
            robot_sre__agent__v1__filesystem_usage__init(f);
            uint64_t total = UINT64_C(100) << 30, reserve = total / 20;
            uint64_t avail = (uint64_t)((double)(total - reserve) * 0.4) - i * 4096;
            f->which = PB_E(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS);
            f->path = "/var/lib/kubelet";
            f->device = "/dev/sim0";
            f->bytes_total = total;
            f->bytes_avail = avail;
            f->bytes_free = avail + reserve;
            f->inodes_total = 6553600;
            f->inodes_free = 6553600 / 2 - i;
            f->threshold_source = PB_E(THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_DEFAULTS);
            f->image_gc_high_percent = 85;
            f->image_gc_low_percent = 80;
            f->fill_rate_bytes_per_sec = 1048576.0 + (double)i;
            f->fill_window_sec = 60;
            f->seconds_to_eviction = 3600 + (int64_t)i;
            f->seconds_to_gc_high = -1;
            f->seconds_to_inode_eviction = -1;
            sg->kind_case = PB_E(SIGNAL__KIND_FILESYSTEM);
            sg->filesystem = f;
        }
        sigp[i] = sg;
    }
    PB_M(SignalBatch) sb;
    robot_sre__agent__v1__signal_batch__init(&sb);
    sb.boot_id = "5f0c3a9e-6a57-4c1b-9d8e-2f4b7a1c0d3e";
    sb.seq = 42;
    sb.created_unix_ms = now;
    sb.n_signals = n_signals;
    sb.signals = sigp;
    PB_M(AgentMessage) am;
    robot_sre__agent__v1__agent_message__init(&am);
    am.body_case = PB_E(AGENT_MESSAGE__BODY_SIGNAL_BATCH);
    am.signal_batch = &sb;
    size_t n = protobuf_c_message_get_packed_size(&am.base);
    uint8_t *b = malloc(n + 1);
    if (b != NULL) {
        protobuf_c_message_pack(&am.base, b);
        *len = n;
    }
    free(sigs);
    free(sigp);
    free(fss);
    return b;
}
