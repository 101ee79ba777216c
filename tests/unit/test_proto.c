/*
 * Tests of the agent <-> aggregator protocol (proto/robot_sre/agent.proto) and its bounded
 * decoder/validator (common/pbuf.h): round trips of every message kind, size and memory limits,
 * malformed and randomly mutated input (errors, never crashes), and one rejection per
 * validation rule with the field named in the error.
 *
 * RSRE_TEST_SEED=<n> changes the seed of the random-input tests (the seed is printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/pbuf.h"

#define M(x) RobotSre__Agent__V1__##x
#define E(x) ROBOT_SRE__AGENT__V1__##x
#define I(x) ROBOT_SRE__AGENT__V1__##x##__INIT

static const char *BOOT = "3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c";
static const char *KBOOT = "0d4ac0f0-58c8-4a3f-b1a7-5c2c9e1f2d3b";
static const int64_t NOW = INT64_C(1795000000000); /* 2026-11-18 */

/* ---- fixture: one valid instance of every message, all on one struct ------------------------ */

struct fixture {
    /* Hello */
    M(CollectorIntervals) intervals;
    M(SpoolState) spool;
    M(Capability) caps[4];
    char *actions[2];
    M(Hello) hello;
    M(AgentMessage) hello_msg;
    /* SignalBatch with one signal of each kind */
    M(EvictionThreshold) ev_avail, ev_inodes;
    M(FilesystemUsage) fs;
    M(NodeCondition) ready, disk, mem, pid;
    M(Taint) taint;
    M(Taint) * taints[1];
    M(NodeConditions) nc;
    M(ImageFsInfo) imagefs;
    M(ImageGcState) gc;
    M(PodChurn) churn;
    M(PsiLine) psi_some, psi_full;
    M(PressureStall) psi;
    M(KernelEvent) kev;
    M(PullError) pull;
    M(Signal) sig[7];
    M(Signal) * sigs[7];
    M(SignalBatch) batch;
    M(AgentMessage) batch_msg;
    /* ActionResult */
    char *removed[2];
    M(ActionResult) result;
    M(AgentMessage) result_msg;
    /* Ack */
    char *acked[1];
    M(Ack) ack;
    M(AggregatorMessage) ack_msg;
    /* ActionRequest */
    M(ActionRequest__ParametersEntry) params[2];
    M(ActionRequest__ParametersEntry) * paramp[2];
    M(ActionRequest) req;
    M(AggregatorMessage) req_msg;
    /* ConfigUpdate */
    M(CollectorIntervals) cfg_intervals;
    M(ThresholdOverride) ovr[2];
    M(ThresholdOverride) * ovrp[2];
    char *allow[2];
    M(ConfigUpdate) cfg;
    M(AggregatorMessage) cfg_msg;
};

enum target { T_HELLO, T_BATCH, T_RESULT, T_ACK, T_REQUEST, T_CONFIG, T_COUNT };
static const char *const target_names[T_COUNT] = {"hello", "signal_batch",   "action_result",
                                                  "ack",   "action_request", "config_update"};

static void condition(M(NodeCondition) * c, M(ConditionStatus) s, const char *reason) {
    *c = (M(NodeCondition))I(NODE_CONDITION);
    c->status = s;
    c->reason = (char *)reason;
    c->message = (char *)"kubelet has no disk pressure\n(checked 10s ago)";
    c->last_transition_unix_ms = NOW - 3600000;
    c->last_heartbeat_unix_ms = NOW - 10000;
}

static void fixture_init(struct fixture *f) {
    memset(f, 0, sizeof(*f));

    f->intervals = (M(CollectorIntervals))I(COLLECTOR_INTERVALS);
    f->intervals.filesystem_ms = 10000;
    f->intervals.node_conditions_ms = 60000;
    f->intervals.image_gc_ms = 60000;
    f->intervals.pod_churn_ms = 30000;
    f->intervals.pressure_stall_ms = 10000;
    f->intervals.kernel_events_ms = 1000;
    f->intervals.pull_errors_ms = 30000;
    f->intervals.batch_flush_ms = 5000;
    f->spool = (M(SpoolState))I(SPOOL_STATE);
    f->spool.first_unacked_seq = 41;
    f->spool.last_seq = 45;
    f->spool.batches = 5;
    f->spool.bytes = 20480;
    f->spool.capacity_bytes = 64u << 20;
    f->spool.restored = 1;
    f->caps[0] = E(CAPABILITY__CAPABILITY_FILESYSTEM);
    f->caps[1] = E(CAPABILITY__CAPABILITY_IMAGE_GC);
    f->caps[2] = E(CAPABILITY__CAPABILITY_ACTIONS);
    f->caps[3] = E(CAPABILITY__CAPABILITY_DRY_RUN);
    f->actions[0] = (char *)"image.prune_unused";
    f->actions[1] = (char *)"containers.remove_exited";
    f->hello = (M(Hello))I(HELLO);
    f->hello.protocol_revision = RSRE_PBUF_PROTOCOL_REVISION;
    f->hello.node_name = (char *)"10.0.10.202";
    f->hello.boot_id = (char *)BOOT;
    f->hello.agent_version = (char *)"0.1.0";
    f->hello.n_capabilities = 4;
    f->hello.capabilities = f->caps;
    f->hello.intervals = &f->intervals;
    f->hello.spool = &f->spool;
    f->hello.started_unix_ms = NOW - 60000;
    f->hello.kernel_boot_id = (char *)KBOOT;
    f->hello.container_runtime = (char *)"containerd://1.6.20";
    f->hello.n_actions = 2;
    f->hello.actions = f->actions;
    f->hello.kernel_release = (char *)"5.15.0-200.131.27.el8uek.x86_64";
    f->hello_msg = (M(AgentMessage))I(AGENT_MESSAGE);
    f->hello_msg.body_case = E(AGENT_MESSAGE__BODY_HELLO);
    f->hello_msg.hello = &f->hello;

    f->ev_avail = (M(EvictionThreshold))I(EVICTION_THRESHOLD);
    f->ev_avail.percent = 10.0;
    f->ev_avail.effective = 10737418240u;
    f->ev_inodes = (M(EvictionThreshold))I(EVICTION_THRESHOLD);
    f->ev_inodes.percent = 5.0;
    f->ev_inodes.effective = 327680;
    f->fs = (M(FilesystemUsage))I(FILESYSTEM_USAGE);
    f->fs.which = E(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS);
    f->fs.path = (char *)"/var/lib/kubelet";
    f->fs.device = (char *)"/dev/sda3";
    f->fs.bytes_total = 107374182400u;
    f->fs.bytes_free = 16106127360u;
    f->fs.bytes_avail = 10737418240u + 1073741824u;
    f->fs.inodes_total = 6553600;
    f->fs.inodes_free = 5000000;
    f->fs.eviction_available = &f->ev_avail;
    f->fs.eviction_inodes_free = &f->ev_inodes;
    f->fs.threshold_source = E(THRESHOLD_SOURCE__THRESHOLD_SOURCE_KUBELET_DEFAULTS);
    f->fs.image_gc_high_percent = 85.0;
    f->fs.image_gc_low_percent = 80.0;
    f->fs.fill_rate_bytes_per_sec = 1048576.0;
    f->fs.fill_window_sec = 600;
    f->fs.seconds_to_eviction = 1024;
    f->fs.seconds_to_gc_high = 0;
    f->fs.seconds_to_inode_eviction = -1;

    condition(&f->ready, E(CONDITION_STATUS__CONDITION_STATUS_TRUE), "KubeletReady");
    condition(&f->disk, E(CONDITION_STATUS__CONDITION_STATUS_TRUE), "KubeletHasDiskPressure");
    condition(&f->mem, E(CONDITION_STATUS__CONDITION_STATUS_FALSE), "KubeletHasSufficientMemory");
    condition(&f->pid, E(CONDITION_STATUS__CONDITION_STATUS_UNKNOWN), "NodeStatusUnknown");
    f->taint = (M(Taint))I(TAINT);
    f->taint.key = (char *)"node.kubernetes.io/disk-pressure";
    f->taint.effect = E(TAINT_EFFECT__TAINT_EFFECT_NO_SCHEDULE);
    f->taint.time_added_unix_ms = NOW - 600000;
    f->taints[0] = &f->taint;
    f->nc = (M(NodeConditions))I(NODE_CONDITIONS);
    f->nc.ready = &f->ready;
    f->nc.disk_pressure = &f->disk;
    f->nc.memory_pressure = &f->mem;
    f->nc.pid_pressure = &f->pid;
    f->nc.n_taints = 1;
    f->nc.taints = f->taints;

    f->imagefs = (M(ImageFsInfo))I(IMAGE_FS_INFO);
    f->imagefs.mountpoint = (char *)"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs";
    f->imagefs.used_bytes = 42949672960u;
    f->imagefs.inodes_used = 812345;
    f->imagefs.capacity_bytes = 107374182400u;
    f->gc = (M(ImageGcState))I(IMAGE_GC_STATE);
    f->gc.image_count = 87;
    f->gc.total_bytes = 42949672960u;
    f->gc.unused_count = 51;
    f->gc.unused_bytes = 21474836480u;
    f->gc.pinned_count = 1;
    f->gc.pinned_bytes = 750000;
    f->gc.reclaimable_bytes = 20000000000u;
    f->gc.bytes_to_gc_low = 5368709120u;
    f->gc.gc_can_recover = 1;
    f->gc.imagefs = &f->imagefs;
    f->gc.min_image_age_sec = 120;

    f->churn = (M(PodChurn))I(POD_CHURN);
    f->churn.window_sec = 600;
    f->churn.running = 31;
    f->churn.pending = 2;
    f->churn.succeeded = 140;
    f->churn.failed = 12;
    f->churn.evicted = 9;
    f->churn.restarts_total = 77;
    f->churn.restarts_in_window = 3;
    f->churn.containers_created_in_window = 40;
    f->churn.containers_exited_in_window = 38;
    f->churn.sandboxes_not_ready = 4;
    f->churn.exited_containers = 150;
    f->churn.evicted_in_window = 9;

    f->psi_some = (M(PsiLine))I(PSI_LINE);
    f->psi_some.avg10 = 12.5;
    f->psi_some.avg60 = 8.25;
    f->psi_some.avg300 = 3.0;
    f->psi_some.total_usec = 123456789;
    f->psi_full = f->psi_some;
    f->psi_full.avg10 = 100.0;
    f->psi = (M(PressureStall))I(PRESSURE_STALL);
    f->psi.resource = E(PSI_RESOURCE__PSI_RESOURCE_IO);
    f->psi.some = &f->psi_some;
    f->psi.full = &f->psi_full;

    f->kev = (M(KernelEvent))I(KERNEL_EVENT);
    f->kev.kind = E(KERNEL_EVENT_KIND__KERNEL_EVENT_KIND_OOM_KILL);
    f->kev.message = (char *)"Out of memory: Killed process 4242 (java) total-vm:8123456kB";
    f->kev.monotonic_usec = 987654321;
    f->kev.suppressed = 3;
    f->kev.priority = 3;
    f->kev.subject = (char *)"java[4242]";

    f->pull = (M(PullError))I(PULL_ERROR);
    f->pull.pod_namespace = (char *)"image-factory";
    f->pull.pod_name = (char *)"builder-7d9f8c6b5-x2x9q";
    f->pull.container = (char *)"builder";
    f->pull.image = (char *)"iad.ocir.io/tenancy/builder@sha256:0123abcd";
    f->pull.reason = E(PULL_ERROR_REASON__PULL_ERROR_REASON_IMAGE_PULL_BACKOFF);
    f->pull.message = (char *)"Back-off pulling image: 401 Unauthorized\tretrying";
    f->pull.attempts = 6;
    f->pull.first_seen_unix_ms = NOW - 300000;

    for (int i = 0; i < 7; i++) {
        f->sig[i] = (M(Signal))I(SIGNAL);
        f->sig[i].observed_unix_ms = NOW - 1000 + i;
        f->sigs[i] = &f->sig[i];
    }
    f->sig[0].kind_case = E(SIGNAL__KIND_FILESYSTEM);
    f->sig[0].filesystem = &f->fs;
    f->sig[1].kind_case = E(SIGNAL__KIND_NODE_CONDITIONS);
    f->sig[1].node_conditions = &f->nc;
    f->sig[2].kind_case = E(SIGNAL__KIND_IMAGE_GC);
    f->sig[2].image_gc = &f->gc;
    f->sig[3].kind_case = E(SIGNAL__KIND_POD_CHURN);
    f->sig[3].pod_churn = &f->churn;
    f->sig[4].kind_case = E(SIGNAL__KIND_PRESSURE_STALL);
    f->sig[4].pressure_stall = &f->psi;
    f->sig[5].kind_case = E(SIGNAL__KIND_KERNEL_EVENT);
    f->sig[5].kernel_event = &f->kev;
    f->sig[6].kind_case = E(SIGNAL__KIND_PULL_ERROR);
    f->sig[6].pull_error = &f->pull;
    f->batch = (M(SignalBatch))I(SIGNAL_BATCH);
    f->batch.boot_id = (char *)BOOT;
    f->batch.seq = 46;
    f->batch.created_unix_ms = NOW;
    f->batch.n_signals = 7;
    f->batch.signals = f->sigs;
    f->batch_msg = (M(AgentMessage))I(AGENT_MESSAGE);
    f->batch_msg.body_case = E(AGENT_MESSAGE__BODY_SIGNAL_BATCH);
    f->batch_msg.signal_batch = &f->batch;

    f->removed[0] = (char *)"sha256:4f1e8a0c";
    f->removed[1] = (char *)"sha256:9b2d7e11";
    f->result = (M(ActionResult))I(ACTION_RESULT);
    f->result.request_id = (char *)"6c1f0d2e-8b7a-4c3d-9e5f-0a1b2c3d4e5f";
    f->result.status = E(ACTION_STATUS__ACTION_STATUS_OK);
    f->result.message = (char *)"removed 2 unused images";
    f->result.bytes_freed = 3221225472u;
    f->result.objects_removed = 2;
    f->result.n_removed_object_ids = 2;
    f->result.removed_object_ids = f->removed;
    f->result.started_unix_ms = NOW - 5000;
    f->result.finished_unix_ms = NOW - 1000;
    f->result.action_id = (char *)"image.prune_unused";
    f->result_msg = (M(AgentMessage))I(AGENT_MESSAGE);
    f->result_msg.body_case = E(AGENT_MESSAGE__BODY_ACTION_RESULT);
    f->result_msg.action_result = &f->result;

    f->ack = (M(Ack))I(ACK);
    f->ack.boot_id = (char *)BOOT;
    f->ack.committed_seq = 45;
    f->acked[0] = (char *)"6c1f0d2e-8b7a-4c3d-9e5f-0a1b2c3d4e5f";
    f->ack.n_result_request_ids = 1;
    f->ack.result_request_ids = f->acked;
    f->ack_msg = (M(AggregatorMessage))I(AGGREGATOR_MESSAGE);
    f->ack_msg.body_case = E(AGGREGATOR_MESSAGE__BODY_ACK);
    f->ack_msg.ack = &f->ack;

    f->params[0] = (M(ActionRequest__ParametersEntry))I(ACTION_REQUEST__PARAMETERS_ENTRY);
    f->params[0].key = (char *)"min_age";
    f->params[0].value = (char *)"2h";
    f->params[1] = (M(ActionRequest__ParametersEntry))I(ACTION_REQUEST__PARAMETERS_ENTRY);
    f->params[1].key = (char *)"keep_pinned";
    f->params[1].value = (char *)"true";
    f->paramp[0] = &f->params[0];
    f->paramp[1] = &f->params[1];
    f->req = (M(ActionRequest))I(ACTION_REQUEST);
    f->req.request_id = (char *)"6c1f0d2e-8b7a-4c3d-9e5f-0a1b2c3d4e5f";
    f->req.action_id = (char *)"image.prune_unused";
    f->req.target = (char *)"imagefs";
    f->req.n_parameters = 2;
    f->req.parameters = f->paramp;
    f->req.dry_run = 1;
    f->req.deadline_unix_ms = NOW + 120000;
    f->req.incident_id = (char *)"inc-2026-11-18-0007";
    f->req.issued_unix_ms = NOW;
    f->req_msg = (M(AggregatorMessage))I(AGGREGATOR_MESSAGE);
    f->req_msg.body_case = E(AGGREGATOR_MESSAGE__BODY_ACTION_REQUEST);
    f->req_msg.action_request = &f->req;

    f->cfg_intervals = f->intervals;
    f->cfg_intervals.kernel_events_ms = 0; /* agent default */
    f->ovr[0] = (M(ThresholdOverride))I(THRESHOLD_OVERRIDE);
    f->ovr[0].kind = E(THRESHOLD_KIND__THRESHOLD_KIND_NODEFS_AVAILABLE);
    f->ovr[0].quantity = 5368709120u;
    f->ovr[1] = (M(ThresholdOverride))I(THRESHOLD_OVERRIDE);
    f->ovr[1].kind = E(THRESHOLD_KIND__THRESHOLD_KIND_IMAGE_GC_HIGH);
    f->ovr[1].percent = 75.0;
    f->ovrp[0] = &f->ovr[0];
    f->ovrp[1] = &f->ovr[1];
    f->allow[0] = (char *)"image.prune_unused";
    f->allow[1] = (char *)"containers.remove_exited";
    f->cfg = (M(ConfigUpdate))I(CONFIG_UPDATE);
    f->cfg.generation = 3;
    f->cfg.intervals = &f->cfg_intervals;
    f->cfg.n_threshold_overrides = 2;
    f->cfg.threshold_overrides = f->ovrp;
    f->cfg.n_action_allowlist = 2;
    f->cfg.action_allowlist = f->allow;
    f->cfg.log_level = E(LOG_LEVEL__LOG_LEVEL_DEBUG);
    f->cfg.protocol_revision = RSRE_PBUF_PROTOCOL_REVISION;
    f->cfg_msg = (M(AggregatorMessage))I(AGGREGATOR_MESSAGE);
    f->cfg_msg.body_case = E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE);
    f->cfg_msg.config_update = &f->cfg;
}

static ProtobufCMessage *target_msg(struct fixture *f, enum target t) {
    switch (t) {
    case T_HELLO:
        return &f->hello_msg.base;
    case T_BATCH:
        return &f->batch_msg.base;
    case T_RESULT:
        return &f->result_msg.base;
    case T_ACK:
        return &f->ack_msg.base;
    case T_REQUEST:
        return &f->req_msg.base;
    case T_CONFIG:
    case T_COUNT:
        break;
    }
    return &f->cfg_msg.base;
}

static bool is_agent_target(enum target t) {
    return t == T_HELLO || t == T_BATCH || t == T_RESULT;
}

/* Packs m (test helper: must succeed). */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    uint8_t *b = NULL;
    assert_int_equal(rsre_pbuf_pack(m, 0, &b, len), 0);
    assert_non_null(b);
    return b;
}

/* Unpack + validate as the receiving side of t would. */
static int decode_as(enum target t, const uint8_t *b, size_t len, size_t max, char *err,
                     size_t err_len) {
    if (is_agent_target(t)) {
        M(AgentMessage) *m = NULL;
        int rc = rsre_pbuf_decode_agent_message(b, len, max, &m, err, err_len);
        assert_true(rc == 0 ? m != NULL : m == NULL);
        rsre_pbuf_free_agent_message(m);
        return rc;
    }
    M(AggregatorMessage) *m = NULL;
    int rc = rsre_pbuf_decode_aggregator_message(b, len, max, &m, err, err_len);
    assert_true(rc == 0 ? m != NULL : m == NULL);
    rsre_pbuf_free_aggregator_message(m);
    return rc;
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_fixture_valid(void **state) {
    (void)state;
    struct fixture f;
    char err[RSRE_PBUF_ERR_LEN];
    fixture_init(&f);
    for (int t = 0; t < T_COUNT; t++) {
        int rc = rsre_pbuf_validate(target_msg(&f, (enum target)t), err, sizeof(err));
        if (rc != 0) {
            print_error("%s: %s\n", target_names[t], err);
        }
        assert_int_equal(rc, 0);
        assert_string_equal(err, "");
    }
}

/* Every kind: pack, decode, validate, re-pack to the same bytes. */
static void test_round_trip_bytes(void **state) {
    (void)state;
    struct fixture f;
    fixture_init(&f);
    for (int t = 0; t < T_COUNT; t++) {
        size_t len, len2;
        uint8_t *b = pack(target_msg(&f, (enum target)t), &len);
        ProtobufCMessage *m = NULL;
        const ProtobufCMessageDescriptor *d = target_msg(&f, (enum target)t)->descriptor;
        assert_int_equal(rsre_pbuf_unpack(d, b, len, 0, &m), 0);
        assert_int_equal(rsre_pbuf_validate(m, NULL, 0), 0);
        uint8_t *b2 = pack(m, &len2);
        assert_int_equal(len, len2);
        assert_memory_equal(b, b2, len);
        protobuf_c_message_free_unpacked(m, NULL);
        free(b);
        free(b2);
    }
}

static void test_round_trip_hello(void **state) {
    (void)state;
    struct fixture f;
    size_t len;
    fixture_init(&f);
    uint8_t *b = pack(&f.hello_msg.base, &len);
    M(AgentMessage) *m = NULL;
    char err[RSRE_PBUF_ERR_LEN];
    assert_int_equal(rsre_pbuf_decode_agent_message(b, len, 0, &m, err, sizeof(err)), 0);
    assert_int_equal(m->body_case, E(AGENT_MESSAGE__BODY_HELLO));
    const M(Hello) *h = m->hello;
    assert_int_equal(h->protocol_revision, 1);
    assert_string_equal(h->node_name, "10.0.10.202");
    assert_string_equal(h->boot_id, BOOT);
    assert_string_equal(h->kernel_boot_id, KBOOT);
    assert_int_equal(h->n_capabilities, 4);
    assert_int_equal(h->capabilities[3], E(CAPABILITY__CAPABILITY_DRY_RUN));
    assert_int_equal(h->intervals->batch_flush_ms, 5000);
    assert_int_equal(h->spool->first_unacked_seq, 41);
    assert_true(h->spool->restored);
    assert_int_equal(h->n_actions, 2);
    assert_string_equal(h->actions[1], "containers.remove_exited");
    assert_string_equal(h->container_runtime, "containerd://1.6.20");
    rsre_pbuf_free_agent_message(m);
    free(b);
}

static void test_round_trip_signal_batch(void **state) {
    (void)state;
    struct fixture f;
    size_t len;
    fixture_init(&f);
    uint8_t *b = pack(&f.batch_msg.base, &len);
    M(AgentMessage) *m = NULL;
    assert_int_equal(rsre_pbuf_decode_agent_message(b, len, 0, &m, NULL, 0), 0);
    assert_int_equal(m->body_case, E(AGENT_MESSAGE__BODY_SIGNAL_BATCH));
    const M(SignalBatch) *sb = m->signal_batch;
    assert_int_equal(sb->seq, 46);
    assert_int_equal(sb->n_signals, 7);
    assert_int_equal(sb->signals[0]->kind_case, E(SIGNAL__KIND_FILESYSTEM));
    const M(FilesystemUsage) *fs = sb->signals[0]->filesystem;
    assert_int_equal(fs->which, E(FILESYSTEM_ROLE__FILESYSTEM_ROLE_NODEFS));
    assert_string_equal(fs->path, "/var/lib/kubelet");
    assert_int_equal(fs->bytes_total, 107374182400u);
    assert_true(fs->eviction_available->percent == 10.0);
    assert_int_equal(fs->seconds_to_inode_eviction, -1);
    assert_true(fs->fill_rate_bytes_per_sec == 1048576.0);
    const M(NodeConditions) *nc = sb->signals[1]->node_conditions;
    assert_int_equal(nc->disk_pressure->status, E(CONDITION_STATUS__CONDITION_STATUS_TRUE));
    assert_null(nc->network_unavailable);
    assert_string_equal(nc->taints[0]->key, "node.kubernetes.io/disk-pressure");
    assert_true(sb->signals[2]->image_gc->gc_can_recover);
    assert_int_equal(sb->signals[2]->image_gc->imagefs->inodes_used, 812345);
    assert_int_equal(sb->signals[3]->pod_churn->evicted, 9);
    assert_true(sb->signals[4]->pressure_stall->full->avg10 == 100.0);
    assert_int_equal(sb->signals[5]->kernel_event->kind,
                     E(KERNEL_EVENT_KIND__KERNEL_EVENT_KIND_OOM_KILL));
    assert_int_equal(sb->signals[6]->pull_error->reason,
                     E(PULL_ERROR_REASON__PULL_ERROR_REASON_IMAGE_PULL_BACKOFF));
    assert_string_equal(sb->signals[6]->pull_error->message,
                        "Back-off pulling image: 401 Unauthorized\tretrying");
    rsre_pbuf_free_agent_message(m);
    free(b);
}

static void test_round_trip_action_result(void **state) {
    (void)state;
    struct fixture f;
    size_t len;
    fixture_init(&f);
    f.result.status = E(ACTION_STATUS__ACTION_STATUS_DRY_RUN);
    uint8_t *b = pack(&f.result_msg.base, &len);
    M(AgentMessage) *m = NULL;
    assert_int_equal(rsre_pbuf_decode_agent_message(b, len, 0, &m, NULL, 0), 0);
    const M(ActionResult) *r = m->action_result;
    assert_int_equal(r->status, E(ACTION_STATUS__ACTION_STATUS_DRY_RUN));
    assert_int_equal(r->bytes_freed, 3221225472u);
    assert_int_equal(r->n_removed_object_ids, 2);
    assert_string_equal(r->removed_object_ids[1], "sha256:9b2d7e11");
    assert_int_equal(r->finished_unix_ms, NOW - 1000);
    rsre_pbuf_free_agent_message(m);
    free(b);
}

static void test_round_trip_aggregator_messages(void **state) {
    (void)state;
    struct fixture f;
    size_t len;
    fixture_init(&f);
    M(AggregatorMessage) *m = NULL;

    uint8_t *b = pack(&f.ack_msg.base, &len);
    assert_int_equal(rsre_pbuf_decode_aggregator_message(b, len, 0, &m, NULL, 0), 0);
    assert_int_equal(m->body_case, E(AGGREGATOR_MESSAGE__BODY_ACK));
    assert_int_equal(m->ack->committed_seq, 45);
    assert_int_equal(m->ack->n_result_request_ids, 1);
    assert_string_equal(m->ack->result_request_ids[0], "6c1f0d2e-8b7a-4c3d-9e5f-0a1b2c3d4e5f");
    rsre_pbuf_free_aggregator_message(m);
    free(b);

    b = pack(&f.req_msg.base, &len);
    assert_int_equal(rsre_pbuf_decode_aggregator_message(b, len, 0, &m, NULL, 0), 0);
    assert_int_equal(m->body_case, E(AGGREGATOR_MESSAGE__BODY_ACTION_REQUEST));
    assert_true(m->action_request->dry_run);
    assert_int_equal(m->action_request->n_parameters, 2);
    assert_string_equal(m->action_request->parameters[1]->key, "keep_pinned");
    assert_string_equal(m->action_request->parameters[1]->value, "true");
    assert_int_equal(m->action_request->deadline_unix_ms, NOW + 120000);
    rsre_pbuf_free_aggregator_message(m);
    free(b);

    b = pack(&f.cfg_msg.base, &len);
    assert_int_equal(rsre_pbuf_decode_aggregator_message(b, len, 0, &m, NULL, 0), 0);
    assert_int_equal(m->body_case, E(AGGREGATOR_MESSAGE__BODY_CONFIG_UPDATE));
    const M(ConfigUpdate) *c = m->config_update;
    assert_int_equal(c->generation, 3);
    assert_int_equal(c->n_threshold_overrides, 2);
    assert_true(c->threshold_overrides[1]->percent == 75.0);
    assert_int_equal(c->n_action_allowlist, 2);
    assert_int_equal(c->log_level, E(LOG_LEVEL__LOG_LEVEL_DEBUG));
    assert_int_equal(c->intervals->kernel_events_ms, 0);
    assert_int_equal(c->protocol_revision, 1);
    rsre_pbuf_free_aggregator_message(m);
    free(b);
}

/* ---- limits --------------------------------------------------------------------------------- */

static void test_oversized_refused(void **state) {
    (void)state;
    struct fixture f;
    size_t len;
    char err[RSRE_PBUF_ERR_LEN];
    fixture_init(&f);
    uint8_t *b = pack(&f.batch_msg.base, &len);

    M(AgentMessage) *m = (void *)0x1;
    assert_int_equal(rsre_pbuf_unpack_agent_message(b, len, len - 1, &m), RSRE_ELIMIT);
    assert_null(m);
    assert_int_equal(rsre_pbuf_unpack_agent_message(b, len, len, &m), 0);
    rsre_pbuf_free_agent_message(m);
    assert_int_equal(rsre_pbuf_decode_agent_message(b, len, 16, &m, err, sizeof(err)), RSRE_ELIMIT);
    assert_non_null(strstr(err, "more than the limit of 16"));

    /* The default limit applies when max_len is 0; nothing of the input is read. */
    assert_int_equal(rsre_pbuf_unpack_agent_message(b, RSRE_PBUF_MAX_MESSAGE_BYTES + 1, 0, &m),
                     RSRE_ELIMIT);

    /* A sender refuses to produce what its peer would refuse. */
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(rsre_pbuf_pack(&f.batch_msg.base, len - 1, &out, &out_len), RSRE_ELIMIT);
    assert_null(out);
    free(b);
}

static size_t put_varint(uint8_t *b, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return n;
}

/* A small encoding that decodes into a lot of memory: a batch of many empty Signals (2 bytes
 * each on the wire, ~100 bytes each decoded) must hit the decode budget, not the heap. */
static void test_decode_budget_refuses_expansion(void **state) {
    (void)state;
    const size_t n = 400000;
    size_t inner = 2 * n;
    uint8_t *b = malloc(inner + 16);
    size_t off = 0;
    b[off++] = 0x12; /* AgentMessage.signal_batch, length-delimited */
    off += put_varint(b + off, inner);
    for (size_t i = 0; i < n; i++) {
        b[off++] = 0x22; /* SignalBatch.signals, length 0 */
        b[off++] = 0x00;
    }
    M(AgentMessage) *m = NULL;
    char err[RSRE_PBUF_ERR_LEN];
    assert_int_equal(rsre_pbuf_unpack_agent_message(b, off, 0, &m), RSRE_ELIMIT);
    assert_null(m);
    assert_int_equal(rsre_pbuf_decode_agent_message(b, off, 0, &m, err, sizeof(err)), RSRE_ELIMIT);
    assert_non_null(strstr(err, "bytes of memory"));

    /* The allocator itself: refuses past its budget and says so. */
    struct rsre_pbuf_allocator a;
    rsre_pbuf_allocator_init(&a, 100);
    void *p = a.base.alloc(a.base.allocator_data, 50);
    assert_non_null(p);
    assert_null(a.base.alloc(a.base.allocator_data, 50));
    assert_true(a.exhausted);
    a.base.free(a.base.allocator_data, p);
    assert_int_equal(rsre_pbuf_decode_budget(SIZE_MAX), SIZE_MAX);
    free(b);
}

/* Legitimate maximal batches decode within the budget, with room to spare. */
static void test_decode_budget_fits_legitimate_batches(void **state) {
    (void)state;
    struct fixture f;
    fixture_init(&f);
    static M(Signal) * many[RSRE_PBUF_MAX_SIGNALS];
    M(PodChurn) tiny = I(POD_CHURN);
    tiny.window_sec = 60;
    M(Signal) small = I(SIGNAL);
    small.observed_unix_ms = NOW;
    small.kind_case = E(SIGNAL__KIND_POD_CHURN);
    small.pod_churn = &tiny;

    for (int variant = 0; variant < 2; variant++) {
        for (size_t i = 0; i < RSRE_PBUF_MAX_SIGNALS; i++) {
            many[i] = variant == 0 ? &f.sig[i % 7] : &small;
        }
        f.batch.n_signals = RSRE_PBUF_MAX_SIGNALS;
        f.batch.signals = many;
        size_t len;
        uint8_t *b = pack(&f.batch_msg.base, &len);
        struct rsre_pbuf_allocator a;
        rsre_pbuf_allocator_init(&a, rsre_pbuf_decode_budget(len));
        ProtobufCMessage *m = protobuf_c_message_unpack(
            &robot_sre__agent__v1__agent_message__descriptor, &a.base, len, b);
        assert_non_null(m);
        print_message("batch of %d %s signals: %zu bytes encoded, %zu charged (%.1fx), "
                      "budget %zu\n",
                      RSRE_PBUF_MAX_SIGNALS, variant == 0 ? "mixed" : "minimal", len, a.used,
                      (double)a.used / (double)len, a.budget);
        assert_true(a.used * 3 / 2 <= a.budget); /* at least a third of the budget to spare */
        assert_int_equal(rsre_pbuf_validate(m, NULL, 0), 0);
        protobuf_c_message_free_unpacked(m, NULL);
        M(AgentMessage) *am = NULL;
        assert_int_equal(rsre_pbuf_decode_agent_message(b, len, 0, &am, NULL, 0), 0);
        rsre_pbuf_free_agent_message(am);
        free(b);
    }
}

/* ---- malformed input ------------------------------------------------------------------------ */

static void test_truncated_refused(void **state) {
    (void)state;
    struct fixture f;
    fixture_init(&f);
    for (int t = 0; t < T_COUNT; t++) {
        size_t len;
        uint8_t *full = pack(target_msg(&f, (enum target)t), &len);
        for (size_t cut = 1; cut < len; cut++) {
            /* Copy so ASan sees any read past the shorter buffer. */
            uint8_t *b = malloc(cut);
            memcpy(b, full, cut);
            /* Every top-level message is a single length-delimited field: any cut is short. */
            assert_int_equal(decode_as((enum target)t, b, cut, 0, NULL, 0), RSRE_EPARSE);
            free(b);
        }
        free(full);
    }
}

static void test_garbage_refused(void **state) {
    (void)state;
    static const struct {
        const char *name;
        uint8_t bytes[16];
        size_t len;
        bool agent_only; /* well-formed as an AggregatorMessage */
    } cases[] = {
        {"all ones", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8, false},
        {"varint longer than 10 bytes",
         {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         13,
         false},
        {"start-group wire type", {0x0b, 0x0c}, 2, false},
        {"wire type 7", {0x0f, 0x00}, 2, false},
        {"field number 0", {0x02, 0x00}, 2, false},
        {"length past the end", {0x12, 0x05, 0x0a}, 3, false},
        {"huge length", {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}, 7, false},
        {"length 2^63",
         {0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         11,
         false},
        {"submessage of garbage", {0x12, 0x03, 0xff, 0xff, 0xff}, 5, false},
        {"truncated fixed64", {0x12, 0x03, 0x21, 0x00, 0x00}, 5, false},
        /* hello.protocol_revision (varint) sent as a string; for the aggregator side the same
         * bytes are ack.boot_id = "AB", which is well-formed. */
        {"string in a varint field", {0x0a, 0x04, 0x0a, 0x02, 0x41, 0x42}, 6, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        M(AgentMessage) *am = NULL;
        M(AggregatorMessage) *gm = NULL;
        int rc1 = rsre_pbuf_unpack_agent_message(cases[i].bytes, cases[i].len, 0, &am);
        int rc2 = rsre_pbuf_unpack_aggregator_message(cases[i].bytes, cases[i].len, 0, &gm);
        int want2 = cases[i].agent_only ? 0 : RSRE_EPARSE;
        if (rc1 != RSRE_EPARSE || rc2 != want2) {
            print_error("case '%s': %d %d\n", cases[i].name, rc1, rc2);
        }
        assert_int_equal(rc1, RSRE_EPARSE);
        assert_int_equal(rc2, want2);
        assert_null(am);
        rsre_pbuf_free_aggregator_message(gm);
    }
    char err[RSRE_PBUF_ERR_LEN];
    M(AgentMessage) *am = NULL;
    assert_int_equal(rsre_pbuf_decode_agent_message(cases[0].bytes, 8, 0, &am, err, sizeof(err)),
                     RSRE_EPARSE);
    assert_string_equal(err, "AgentMessage: malformed protobuf encoding");

    /* An empty buffer is a well-formed message with nothing set: it fails validation. */
    assert_int_equal(rsre_pbuf_decode_agent_message(NULL, 0, 0, &am, err, sizeof(err)),
                     RSRE_EINVALID);
    assert_string_equal(err, "AgentMessage: none of hello, signal_batch, action_result is set");

    /* Bad arguments. */
    assert_int_equal(rsre_pbuf_unpack_agent_message(NULL, 3, 0, &am), -EINVAL);
    assert_int_equal(rsre_pbuf_unpack_agent_message(cases[0].bytes, 8, 0, NULL), -EINVAL);
    assert_int_equal(rsre_pbuf_validate(NULL, err, sizeof(err)), -EINVAL);
    rsre_pbuf_free_agent_message(NULL);
    rsre_pbuf_free_aggregator_message(NULL);
}

static uint64_t rng_state;

static uint64_t rng(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void rng_seed(void) {
    const char *s = getenv("RSRE_TEST_SEED");
    rng_state = s ? strtoull(s, NULL, 0) : UINT64_C(0x9e3779b97f4a7c15);
    if (rng_state == 0) {
        rng_state = 1;
    }
    print_message("seed %" PRIu64 "\n", rng_state);
}

/* Feeds b to both decoders; any result must be one of the documented ones, a successful
 * decode must validate without crashing, and a validation failure must name something. */
static void feed(const uint8_t *b, size_t len, int *accepted) {
    char err[RSRE_PBUF_ERR_LEN];
    for (int side = 0; side < 2; side++) {
        int rc = decode_as(side ? T_ACK : T_HELLO, b, len, 0, err, sizeof(err));
        assert_true(rc == 0 || rc == RSRE_EPARSE || rc == RSRE_ELIMIT || rc == RSRE_EINVALID);
        if (rc != 0) {
            assert_true(err[0] != '\0');
            assert_non_null(strstr(err, ": "));
        } else {
            (*accepted)++;
        }
    }
}

static void test_random_bytes_never_crash(void **state) {
    (void)state;
    rng_seed();
    uint8_t b[512];
    int accepted = 0;
    for (int i = 0; i < 5000; i++) {
        size_t len = rng() % sizeof(b);
        for (size_t j = 0; j < len; j++) {
            b[j] = (uint8_t)rng();
        }
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, b, len);
        feed(copy, len, &accepted);
        free(copy);
    }
    print_message("random: %d of 10000 decodes accepted\n", accepted);
}

/* Thousands of random mutations (flip, set, insert, delete, duplicate a span) of every valid
 * encoding. */
static void test_mutations_never_crash(void **state) {
    (void)state;
    struct fixture f;
    fixture_init(&f);
    rng_seed();
    int accepted = 0, total = 0;
    for (int t = 0; t < T_COUNT; t++) {
        size_t len;
        uint8_t *orig = pack(target_msg(&f, (enum target)t), &len);
        for (int iter = 0; iter < 2500; iter++) {
            size_t cap = len * 2 + 16, n = len;
            uint8_t *b = malloc(cap);
            memcpy(b, orig, len);
            int edits = 1 + (int)(rng() % 4);
            for (int e = 0; e < edits; e++) {
                size_t pos = n ? rng() % n : 0;
                switch (rng() % 6) {
                case 0:
                    if (n) {
                        b[pos] ^= (uint8_t)(1u << (rng() % 8));
                    }
                    break;
                case 1:
                    if (n) {
                        static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80,
                                                              0xff, 0x0a, 0x12, 0x22};
                        b[pos] = interesting[rng() % sizeof(interesting)];
                    }
                    break;
                case 2:
                    if (n < cap) {
                        memmove(b + pos + 1, b + pos, n - pos);
                        b[pos] = (uint8_t)rng();
                        n++;
                    }
                    break;
                case 3:
                    if (n) {
                        memmove(b + pos, b + pos + 1, n - pos - 1);
                        n--;
                    }
                    break;
                case 4:
                    n = pos;
                    break;
                default: {
                    size_t span = n ? 1 + rng() % (n - pos < 16 ? n - pos : 16) : 0;
                    if (n + span <= cap) {
                        memmove(b + pos + span, b + pos, n - pos);
                        n += span;
                    }
                    break;
                }
                }
            }
            uint8_t *exact = malloc(n ? n : 1);
            memcpy(exact, b, n);
            feed(exact, n, &accepted);
            total += 2;
            free(exact);
            free(b);
        }
        free(orig);
    }
    print_message("mutations: %d of %d decodes accepted\n", accepted, total);
}

/* ---- validation: accepted edge cases -------------------------------------------------------- */

static void test_unknown_members_are_skipped(void **state) {
    (void)state;
    struct fixture f;
    fixture_init(&f);
    char err[RSRE_PBUF_ERR_LEN];

    /* AgentMessage with only an unknown field (a message kind from a newer agent). */
    static const uint8_t newer_kind[] = {0x4a, 0x02, 0x08, 0x01}; /* field 9, {1: 1} */
    M(AgentMessage) *am = NULL;
    assert_int_equal(
        rsre_pbuf_decode_agent_message(newer_kind, sizeof(newer_kind), 0, &am, err, sizeof(err)),
        0);
    assert_int_equal(am->body_case, E(AGENT_MESSAGE__BODY__NOT_SET));
    rsre_pbuf_free_agent_message(am);

    /* A Signal of a kind added later (field 40) in an otherwise valid batch. */
    ProtobufCMessageUnknownField uf = {
        .tag = 40, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = (uint8_t *)"\x05"};
    f.sig[3].kind_case = E(SIGNAL__KIND__NOT_SET);
    f.sig[3].base.n_unknown_fields = 1;
    f.sig[3].base.unknown_fields = &uf;
    size_t len;
    uint8_t *b = pack(&f.batch_msg.base, &len);
    assert_int_equal(rsre_pbuf_decode_agent_message(b, len, 0, &am, err, sizeof(err)), 0);
    assert_int_equal(am->signal_batch->signals[3]->kind_case, E(SIGNAL__KIND__NOT_SET));
    assert_int_equal(am->signal_batch->signals[4]->kind_case, E(SIGNAL__KIND_PRESSURE_STALL));
    rsre_pbuf_free_agent_message(am);
    free(b);

    /* Field number 0 with a non-minimal tag (0x80 0x00): protobuf-c keeps it as an unknown
     * field; validation refuses it. Found by fuzz_agent_proto. */
    static const uint8_t field_zero[] = {0x80, 0x00, 0x06, 0x78, 0x33};
    M(AggregatorMessage) *gm = NULL;
    assert_int_equal(rsre_pbuf_decode_aggregator_message(field_zero, sizeof(field_zero), 0, &gm,
                                                         err, sizeof(err)),
                     RSRE_EINVALID);
    assert_null(gm);
    assert_string_equal(err, "AggregatorMessage: unknown field with invalid field number 0");

    /* At most RSRE_PBUF_MAX_UNKNOWN_FIELDS unknown fields per message. */
    uint8_t many_unknown[2 * (RSRE_PBUF_MAX_UNKNOWN_FIELDS + 1)];
    for (size_t i = 0; i < sizeof(many_unknown); i += 2) {
        many_unknown[i] = 0x78; /* field 15, varint */
        many_unknown[i + 1] = 0x01;
    }
    assert_int_equal(rsre_pbuf_decode_aggregator_message(many_unknown, sizeof(many_unknown), 0, &gm,
                                                         err, sizeof(err)),
                     RSRE_EINVALID);
    assert_string_equal(err, "AggregatorMessage: 65 unknown fields, more than 64");
    assert_int_equal(rsre_pbuf_decode_aggregator_message(many_unknown, sizeof(many_unknown) - 2, 0,
                                                         &gm, err, sizeof(err)),
                     0);
    rsre_pbuf_free_aggregator_message(gm);

    /* Unknown enum values are accepted (open enums); receivers map them to a fallback. */
    fixture_init(&f);
    f.fs.which = (M(FilesystemRole))42;
    f.kev.kind = (M(KernelEventKind))99;
    f.caps[0] = (M(Capability))1000;
    b = pack(&f.batch_msg.base, &len);
    assert_int_equal(rsre_pbuf_decode_agent_message(b, len, 0, &am, err, sizeof(err)), 0);
    assert_int_equal(am->signal_batch->signals[0]->filesystem->which, 42);
    rsre_pbuf_free_agent_message(am);
    free(b);
}

static void test_edge_values_accepted(void **state) {
    (void)state;
    struct fixture f;
    char err[RSRE_PBUF_ERR_LEN];
    char name[RSRE_PBUF_MAX_NAME_LEN + 1];
    /* 253 bytes: labels of 63 separated by dots (63*4 + 3 = 255, so trim the last label). */
    memset(name, 'a', sizeof(name) - 1);
    name[RSRE_PBUF_MAX_NAME_LEN] = '\0';
    for (size_t i = 63; i < RSRE_PBUF_MAX_NAME_LEN; i += 64) {
        name[i] = '.';
    }
    fixture_init(&f);
    f.hello.node_name = name;
    f.hello.kernel_boot_id = (char *)""; /* unreadable */
    f.hello.container_runtime = (char *)"";
    f.hello.n_capabilities = 0;
    f.hello.intervals = NULL;
    f.hello.spool = NULL;
    f.intervals.filesystem_ms = RSRE_PBUF_MIN_INTERVAL_MS;
    f.intervals.image_gc_ms = RSRE_PBUF_MAX_INTERVAL_MS;
    f.hello.intervals = &f.intervals;
    f.intervals.pod_churn_ms = 0;
    assert_int_equal(rsre_pbuf_validate(&f.hello_msg.base, err, sizeof(err)), 0);

    fixture_init(&f);
    f.fs.image_gc_high_percent = 100.0;
    f.fs.image_gc_low_percent = 0.0;
    f.fs.seconds_to_eviction = -1;
    f.fs.fill_rate_bytes_per_sec = -2048.5; /* draining */
    f.fs.eviction_available = NULL;
    f.fs.bytes_free = f.fs.bytes_total;
    f.fs.bytes_avail = f.fs.bytes_free;
    f.kev.message = (char *)"EXT4-fs error (device sda3): ext4_find_entry:1455: inode #2\n"
                            "Ünïcödé 😀 ok";
    f.kev.priority = 7;
    f.nc.n_taints = 0;
    f.taint.value = (char *)"true";
    f.psi.full = NULL;
    f.psi_some.avg10 = 0.0;
    f.psi_some.avg300 = 100.0;
    f.pull.image = (char *)"nginx";
    f.batch.seq = UINT64_MAX; /* very large but > 0 */
    assert_int_equal(rsre_pbuf_validate(&f.batch_msg.base, err, sizeof(err)), 0);

    fixture_init(&f);
    f.result.status = E(ACTION_STATUS__ACTION_STATUS_REFUSED);
    f.result.started_unix_ms = 0; /* never started */
    f.result.objects_removed = 0;
    f.result.n_removed_object_ids = 0;
    f.result.message = (char *)"action image.prune_unused is not in the local allowlist";
    assert_int_equal(rsre_pbuf_validate(&f.result_msg.base, err, sizeof(err)), 0);

    fixture_init(&f);
    f.ack.committed_seq = 0; /* a boot id the aggregator has never seen */
    assert_int_equal(rsre_pbuf_validate(&f.ack_msg.base, err, sizeof(err)), 0);

    fixture_init(&f);
    f.req.n_parameters = 0;
    f.req.target = (char *)"";
    f.req.incident_id = (char *)"";
    assert_int_equal(rsre_pbuf_validate(&f.req_msg.base, err, sizeof(err)), 0);

    fixture_init(&f);
    f.cfg.n_action_allowlist = 0; /* allow nothing */
    f.cfg.n_threshold_overrides = 0;
    f.cfg.intervals = NULL;
    f.cfg.log_level = E(LOG_LEVEL__LOG_LEVEL_UNSPECIFIED);
    assert_int_equal(rsre_pbuf_validate(&f.cfg_msg.base, err, sizeof(err)), 0);
}

static void test_dns1123_subdomain(void **state) {
    (void)state;
    static const char *const good[] = {"a",           "0",         "10.0.10.202",
                                       "oke-cabc-n1", "a-b.c-d.e", "xn--bcher-kva.example"};
    static const char *const bad[] = {"",    "A",   "-a", "a-",   "a..b", ".a",    "a.",
                                      "a_b", "a b", "ä",  "a.-b", "a/b",  "node\n"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(rsre_pbuf_is_dns1123_subdomain(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rsre_pbuf_is_dns1123_subdomain(bad[i])) {
            print_error("accepted '%s'\n", bad[i]);
        }
        assert_false(rsre_pbuf_is_dns1123_subdomain(bad[i]));
    }
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name));
    long_name[254] = '\0';
    assert_false(rsre_pbuf_is_dns1123_subdomain(long_name));
    long_name[253] = '\0';
    assert_true(rsre_pbuf_is_dns1123_subdomain(long_name));
    assert_false(rsre_pbuf_is_dns1123_subdomain(NULL));
}

/* ---- validation: one rejection per rule ----------------------------------------------------- */

static char long_str[RSRE_PBUF_MAX_TEXT_LEN + 2];

/* A string of exactly n 'a' bytes (valid for every class except UUID/paths). */
static char *str_of(size_t n) {
    memset(long_str, 'a', n);
    long_str[n] = '\0';
    return long_str;
}

static M(Signal) * sig_many[RSRE_PBUF_MAX_SIGNALS + 1];
static M(Taint) * taint_many[RSRE_PBUF_MAX_TAINTS + 1];
static M(Capability) cap_many[RSRE_PBUF_MAX_CAPABILITIES + 1];
static char *str_many[RSRE_PBUF_MAX_REMOVED_IDS + 1];
static M(ActionRequest__ParametersEntry) * param_many[RSRE_PBUF_MAX_PARAMETERS + 1];

#define S(x) ((char *)(x))

/* X(name, target, expected error, mutation of struct fixture *f) */
// clang-format off
#define REJECTIONS(X)                                                                            \
    X(agent_body_unset, T_HELLO,                                                                 \
      "AgentMessage: none of hello, signal_batch, action_result is set",                         \
      f->hello_msg.body_case = E(AGENT_MESSAGE__BODY__NOT_SET))                                  \
    X(revision_zero, T_HELLO, "hello.protocol_revision: required (must be > 0)",                 \
      f->hello.protocol_revision = 0)                                                            \
    X(node_name_upper, T_HELLO, "hello.node_name: not a DNS-1123 subdomain",                     \
      f->hello.node_name = S("Worker-1"))                                                        \
    X(node_name_dots, T_HELLO, "hello.node_name: not a DNS-1123 subdomain",                      \
      f->hello.node_name = S("a..b"))                                                            \
    X(node_name_empty, T_HELLO, "hello.node_name: required", f->hello.node_name = S(""))         \
    X(node_name_long, T_HELLO, "hello.node_name: longer than 253 bytes",                         \
      f->hello.node_name = str_of(254))                                                          \
    X(hello_boot_id, T_HELLO, "hello.boot_id: not a canonical lowercase UUID",                   \
      f->hello.boot_id = S("3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9"))                               \
    X(hello_boot_id_upper, T_HELLO, "hello.boot_id: not a canonical lowercase UUID",             \
      f->hello.boot_id = S("3F2B8C1E-9A4D-4E7B-8C2A-1D5E6F7A8B9C"))                              \
    X(kernel_boot_id, T_HELLO, "hello.kernel_boot_id: not a canonical lowercase UUID",           \
      f->hello.kernel_boot_id = S("not-a-uuid"))                                                 \
    X(agent_version_empty, T_HELLO, "hello.agent_version: required",                             \
      f->hello.agent_version = S(""))                                                            \
    X(agent_version_newline, T_HELLO, "hello.agent_version: contains a control character",       \
      f->hello.agent_version = S("0.1.0\nlevel=error"))                                          \
    X(agent_version_long, T_HELLO, "hello.agent_version: longer than 128 bytes",                 \
      f->hello.agent_version = str_of(129))                                                      \
    X(capabilities_many, T_HELLO, "hello.capabilities: 65 entries, more than 64",                \
      f->hello.n_capabilities = 65;                                                              \
      f->hello.capabilities = cap_many)                                                          \
    X(interval_short, T_HELLO,                                                                   \
      "hello.intervals.filesystem_ms: 500 ms is outside 1000..3600000 (or 0 for the default)",   \
      f->intervals.filesystem_ms = 500)                                                          \
    X(interval_long, T_HELLO, "hello.intervals.batch_flush_ms: 3600001 ms is outside",           \
      f->intervals.batch_flush_ms = 3600001)                                                     \
    X(spool_order, T_HELLO, "hello.spool.first_unacked_seq: greater than last_seq",              \
      f->spool.first_unacked_seq = 46)                                                           \
    X(started_zero, T_HELLO, "hello.started_unix_ms: required (must be > 0)",                    \
      f->hello.started_unix_ms = 0)                                                              \
    X(started_far_future, T_HELLO,                                                               \
      "hello.started_unix_ms: 7258118400001 is outside 1..7258118400000",                        \
      f->hello.started_unix_ms = RSRE_PBUF_MAX_UNIX_MS + 1)                                      \
    X(hello_action_id, T_HELLO, "hello.actions[1]: not an action id",                            \
      f->actions[1] = S("Prune Images"))                                                         \
    X(hello_actions_many, T_HELLO, "hello.actions: 65 entries, more than 64",                    \
      f->hello.n_actions = 65;                                                                   \
      f->hello.actions = str_many)                                                               \
    X(container_runtime_utf8, T_HELLO, "hello.container_runtime: not valid UTF-8",               \
      f->hello.container_runtime = S("containerd\xc3\x28"))                                      \
    X(kernel_release_long, T_HELLO, "hello.kernel_release: longer than 256 bytes",               \
      f->hello.kernel_release = str_of(257))                                                     \
    X(batch_boot_id, T_BATCH, "signal_batch.boot_id: required", f->batch.boot_id = S(""))        \
    X(batch_seq_zero, T_BATCH, "signal_batch.seq: required (must be > 0)", f->batch.seq = 0)     \
    X(batch_created_zero, T_BATCH, "signal_batch.created_unix_ms: required (must be > 0)",       \
      f->batch.created_unix_ms = 0)                                                              \
    X(batch_empty, T_BATCH, "signal_batch.signals: must not be empty", f->batch.n_signals = 0)   \
    X(batch_too_many, T_BATCH, "signal_batch.signals: 4097 entries, more than 4096",             \
      f->batch.n_signals = RSRE_PBUF_MAX_SIGNALS + 1;                                            \
      f->batch.signals = sig_many)                                                               \
    X(signal_kind_unset, T_BATCH,                                                                \
      "signal_batch.signals[3]: none of filesystem, node_conditions, image_gc, pod_churn, "      \
      "pressure_stall, kernel_event, pull_error is set",                                         \
      f->sig[3].kind_case = E(SIGNAL__KIND__NOT_SET))                                            \
    X(signal_observed_zero, T_BATCH,                                                             \
      "signal_batch.signals[2].observed_unix_ms: required (must be > 0)",                        \
      f->sig[2].observed_unix_ms = 0)                                                            \
    X(signal_observed_negative, T_BATCH,                                                         \
      "signal_batch.signals[6].observed_unix_ms: required (must be > 0)",                        \
      f->sig[6].observed_unix_ms = -5)                                                           \
    X(fs_which, T_BATCH, "signal_batch.signals[0].filesystem.which: required (UNSPECIFIED)",     \
      f->fs.which = E(FILESYSTEM_ROLE__FILESYSTEM_ROLE_UNSPECIFIED))                             \
    X(fs_path_relative, T_BATCH, "signal_batch.signals[0].filesystem.path: not an absolute path",\
      f->fs.path = S("var/lib/kubelet"))                                                         \
    X(fs_path_empty, T_BATCH, "signal_batch.signals[0].filesystem.path: required",               \
      f->fs.path = S(""))                                                                        \
    X(fs_device_control, T_BATCH,                                                                \
      "signal_batch.signals[0].filesystem.device: contains a control character",                 \
      f->fs.device = S("/dev/sda\x1b[31m"))                                                      \
    X(fs_free_gt_total, T_BATCH,                                                                 \
      "signal_batch.signals[0].filesystem.bytes_free: greater than bytes_total",                 \
      f->fs.bytes_free = f->fs.bytes_total + 1)                                                  \
    X(fs_avail_gt_free, T_BATCH,                                                                 \
      "signal_batch.signals[0].filesystem.bytes_avail: greater than bytes_free",                 \
      f->fs.bytes_avail = f->fs.bytes_free + 1)                                                  \
    X(fs_inodes, T_BATCH,                                                                        \
      "signal_batch.signals[0].filesystem.inodes_free: greater than inodes_total",               \
      f->fs.inodes_free = f->fs.inodes_total + 1)                                                \
    X(fs_gc_high_pct, T_BATCH,                                                                   \
      "signal_batch.signals[0].filesystem.image_gc_high_percent: 101 is not a percentage "       \
      "(0..100)",                                                                                \
      f->fs.image_gc_high_percent = 101.0)                                                       \
    X(fs_gc_low_negative, T_BATCH,                                                               \
      "signal_batch.signals[0].filesystem.image_gc_low_percent: -1 is not a percentage",         \
      f->fs.image_gc_low_percent = -1.0)                                                         \
    X(fs_gc_low_gt_high, T_BATCH,                                                                \
      "signal_batch.signals[0].filesystem.image_gc_low_percent: greater than "                   \
      "image_gc_high_percent",                                                                   \
      f->fs.image_gc_low_percent = 90.0)                                                         \
    X(fs_eviction_pct, T_BATCH,                                                                  \
      "signal_batch.signals[0].filesystem.eviction_available.percent: 150 is not a percentage",  \
      f->ev_avail.percent = 150.0)                                                               \
    X(fs_eviction_both, T_BATCH,                                                                 \
      "signal_batch.signals[0].filesystem.eviction_inodes_free.percent: set together with "      \
      "quantity",                                                                                \
      f->ev_inodes.quantity = 1000)                                                              \
    X(fs_fill_nan, T_BATCH,                                                                      \
      "signal_batch.signals[0].filesystem.fill_rate_bytes_per_sec: not a finite number",         \
      f->fs.fill_rate_bytes_per_sec = NAN)                                                       \
    X(fs_fill_inf, T_BATCH,                                                                      \
      "signal_batch.signals[0].filesystem.fill_rate_bytes_per_sec: not a finite number",         \
      f->fs.fill_rate_bytes_per_sec = -INFINITY)                                                 \
    X(fs_eta_below_sentinel, T_BATCH,                                                            \
      "signal_batch.signals[0].filesystem.seconds_to_eviction: -2 is outside -1..",              \
      f->fs.seconds_to_eviction = -2)                                                            \
    X(fs_gc_eta, T_BATCH, "signal_batch.signals[0].filesystem.seconds_to_gc_high: -7 is outside",\
      f->fs.seconds_to_gc_high = -7)                                                             \
    X(cond_status, T_BATCH,                                                                      \
      "signal_batch.signals[1].node_conditions.disk_pressure.status: required (UNSPECIFIED)",    \
      f->disk.status = E(CONDITION_STATUS__CONDITION_STATUS_UNSPECIFIED))                        \
    X(cond_message_utf8, T_BATCH,                                                                \
      "signal_batch.signals[1].node_conditions.ready.message: not valid UTF-8",                  \
      f->ready.message = S("overlong \xc0\xaf slash"))                                           \
    X(cond_message_surrogate, T_BATCH,                                                           \
      "signal_batch.signals[1].node_conditions.ready.message: not valid UTF-8",                  \
      f->ready.message = S("surrogate \xed\xa0\x80"))                                            \
    X(cond_reason_c1, T_BATCH,                                                                   \
      "signal_batch.signals[1].node_conditions.pid_pressure.reason: contains a control "         \
      "character",                                                                               \
      f->pid.reason = S("Next\xc2\x85Line"))                                                     \
    X(cond_transition_negative, T_BATCH,                                                         \
      "signal_batch.signals[1].node_conditions.memory_pressure.last_transition_unix_ms: -1 is "  \
      "outside 0..",                                                                             \
      f->mem.last_transition_unix_ms = -1)                                                       \
    X(taint_key, T_BATCH,                                                                        \
      "signal_batch.signals[1].node_conditions.taints[0].key: not a qualified name",             \
      f->taint.key = S("-bad/disk-pressure"))                                                    \
    X(taint_key_empty, T_BATCH, "signal_batch.signals[1].node_conditions.taints[0].key: required",\
      f->taint.key = S(""))                                                                      \
    X(taint_value, T_BATCH,                                                                      \
      "signal_batch.signals[1].node_conditions.taints[0].value: not a label value",              \
      f->taint.value = S("has space"))                                                           \
    X(taint_effect, T_BATCH,                                                                     \
      "signal_batch.signals[1].node_conditions.taints[0].effect: required (UNSPECIFIED)",        \
      f->taint.effect = E(TAINT_EFFECT__TAINT_EFFECT_UNSPECIFIED))                               \
    X(taints_many, T_BATCH,                                                                      \
      "signal_batch.signals[1].node_conditions.taints: 65 entries, more than 64",                \
      f->nc.n_taints = RSRE_PBUF_MAX_TAINTS + 1;                                                 \
      f->nc.taints = taint_many)                                                                 \
    X(gc_unused_count, T_BATCH,                                                                  \
      "signal_batch.signals[2].image_gc.unused_count: greater than image_count",                 \
      f->gc.unused_count = 88)                                                                   \
    X(gc_pinned_count, T_BATCH,                                                                  \
      "signal_batch.signals[2].image_gc.pinned_count: greater than image_count",                 \
      f->gc.pinned_count = 88)                                                                   \
    X(gc_unused_bytes, T_BATCH,                                                                  \
      "signal_batch.signals[2].image_gc.unused_bytes: greater than total_bytes",                 \
      f->gc.unused_bytes = f->gc.total_bytes + 1)                                                \
    X(gc_reclaimable, T_BATCH,                                                                   \
      "signal_batch.signals[2].image_gc.reclaimable_bytes: greater than unused_bytes",           \
      f->gc.reclaimable_bytes = f->gc.unused_bytes + 1)                                          \
    X(gc_mountpoint, T_BATCH,                                                                    \
      "signal_batch.signals[2].image_gc.imagefs.mountpoint: not an absolute path",               \
      f->imagefs.mountpoint = S("containerd"))                                                   \
    X(churn_window, T_BATCH,                                                                     \
      "signal_batch.signals[3].pod_churn.window_sec: required (must be > 0)",                    \
      f->churn.window_sec = 0)                                                                   \
    X(churn_evicted, T_BATCH,                                                                    \
      "signal_batch.signals[3].pod_churn.evicted: greater than failed",                          \
      f->churn.evicted = 13)                                                                     \
    X(psi_resource, T_BATCH,                                                                     \
      "signal_batch.signals[4].pressure_stall.resource: required (UNSPECIFIED)",                 \
      f->psi.resource = E(PSI_RESOURCE__PSI_RESOURCE_UNSPECIFIED))                               \
    X(psi_some_missing, T_BATCH, "signal_batch.signals[4].pressure_stall.some: required",        \
      f->psi.some = NULL)                                                                        \
    X(psi_avg_pct, T_BATCH,                                                                      \
      "signal_batch.signals[4].pressure_stall.full.avg60: 100.5 is not a percentage",            \
      f->psi_full.avg60 = 100.5)                                                                 \
    X(psi_avg_nan, T_BATCH,                                                                      \
      "signal_batch.signals[4].pressure_stall.some.avg10: not a finite number",                  \
      f->psi_some.avg10 = NAN)                                                                   \
    X(kernel_kind, T_BATCH,                                                                      \
      "signal_batch.signals[5].kernel_event.kind: required (UNSPECIFIED)",                       \
      f->kev.kind = E(KERNEL_EVENT_KIND__KERNEL_EVENT_KIND_UNSPECIFIED))                         \
    X(kernel_priority, T_BATCH,                                                                  \
      "signal_batch.signals[5].kernel_event.priority: 8 is outside 0..7",                        \
      f->kev.priority = 8)                                                                       \
    X(kernel_message_long, T_BATCH,                                                              \
      "signal_batch.signals[5].kernel_event.message: longer than 4096 bytes",                    \
      f->kev.message = str_of(4097))                                                             \
    X(kernel_message_nul_ctl, T_BATCH,                                                           \
      "signal_batch.signals[5].kernel_event.message: contains a control character",              \
      f->kev.message = S("bell\a"))                                                              \
    X(pull_namespace, T_BATCH,                                                                   \
      "signal_batch.signals[6].pull_error.pod_namespace: not a DNS-1123 label",                  \
      f->pull.pod_namespace = S("Default"))                                                      \
    X(pull_pod_name, T_BATCH, "signal_batch.signals[6].pull_error.pod_name: required",           \
      f->pull.pod_name = S(""))                                                                  \
    X(pull_container_long, T_BATCH,                                                              \
      "signal_batch.signals[6].pull_error.container: longer than 63 bytes",                      \
      f->pull.container = str_of(64))                                                            \
    X(pull_image_space, T_BATCH,                                                                 \
      "signal_batch.signals[6].pull_error.image: contains a space, control or non-ASCII "        \
      "character",                                                                               \
      f->pull.image = S("nginx latest"))                                                         \
    X(pull_reason, T_BATCH, "signal_batch.signals[6].pull_error.reason: required (UNSPECIFIED)", \
      f->pull.reason = E(PULL_ERROR_REASON__PULL_ERROR_REASON_UNSPECIFIED))                      \
    X(result_request_id_empty, T_RESULT, "action_result.request_id: required",                   \
      f->result.request_id = S(""))                                                              \
    X(result_request_id_chars, T_RESULT, "action_result.request_id: not an id",                  \
      f->result.request_id = S("id with space"))                                                 \
    X(result_status, T_RESULT, "action_result.status: required (UNSPECIFIED)",                   \
      f->result.status = E(ACTION_STATUS__ACTION_STATUS_UNSPECIFIED))                            \
    X(result_action_id, T_RESULT, "action_result.action_id: required",                           \
      f->result.action_id = S(""))                                                               \
    X(result_times, T_RESULT, "action_result.started_unix_ms: later than finished_unix_ms",      \
      f->result.started_unix_ms = f->result.finished_unix_ms + 1)                                \
    X(result_finished_zero, T_RESULT,                                                            \
      "action_result.finished_unix_ms: required (must be > 0)",                                  \
      f->result.finished_unix_ms = 0)                                                            \
    X(result_ids_vs_count, T_RESULT,                                                             \
      "action_result.removed_object_ids: more ids than objects_removed",                         \
      f->result.objects_removed = 1)                                                             \
    X(result_ids_many, T_RESULT, "action_result.removed_object_ids: 1025 entries, more than 1024",\
      f->result.objects_removed = 5000;                                                          \
      f->result.n_removed_object_ids = RSRE_PBUF_MAX_REMOVED_IDS + 1;                            \
      f->result.removed_object_ids = str_many)                                                   \
    X(result_id_control, T_RESULT,                                                               \
      "action_result.removed_object_ids[1]: contains a control character",                       \
      f->removed[1] = S("/var/log/pods/x\r"))                                                    \
    X(result_message_long, T_RESULT, "action_result.message: longer than 4096 bytes",            \
      f->result.message = str_of(4097))                                                          \
    X(aggregator_body_unset, T_ACK,                                                              \
      "AggregatorMessage: none of ack, action_request, config_update is set",                    \
      f->ack_msg.body_case = E(AGGREGATOR_MESSAGE__BODY__NOT_SET))                               \
    X(ack_boot_id, T_ACK, "ack.boot_id: required", f->ack.boot_id = S(""))                       \
    X(ack_boot_id_form, T_ACK, "ack.boot_id: not a canonical lowercase UUID",                    \
      f->ack.boot_id = S("{3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b}"))                               \
    X(ack_results_many, T_ACK, "ack.result_request_ids: 65 entries, more than 64",              \
      f->ack.n_result_request_ids = RSRE_PBUF_MAX_ACKED_RESULTS + 1;                             \
      f->ack.result_request_ids = str_many)                                                      \
    X(ack_result_id, T_ACK, "ack.result_request_ids[0]: not an id",                              \
      f->acked[0] = S("6c1f0d2e 8b7a"))                                                          \
    X(req_request_id, T_REQUEST, "action_request.request_id: required",                          \
      f->req.request_id = S(""))                                                                 \
    X(req_action_id, T_REQUEST, "action_request.action_id: not an action id",                    \
      f->req.action_id = S("Image.Prune"))                                                       \
    X(req_action_id_shell, T_REQUEST, "action_request.action_id: not an action id",              \
      f->req.action_id = S("image.prune;rm -rf /"))                                              \
    X(req_target_long, T_REQUEST, "action_request.target: longer than 1024 bytes",               \
      f->req.target = str_of(1025))                                                              \
    X(req_deadline, T_REQUEST, "action_request.deadline_unix_ms: required (must be > 0)",        \
      f->req.deadline_unix_ms = 0)                                                               \
    X(req_incident_id, T_REQUEST, "action_request.incident_id: not an id",                       \
      f->req.incident_id = S("inc/7"))                                                           \
    X(req_param_dup, T_REQUEST, "action_request.parameters[1].key: duplicate key \"min_age\"",   \
      f->params[1].key = S("min_age"))                                                           \
    X(req_param_key_empty, T_REQUEST, "action_request.parameters[0].key: required",              \
      f->params[0].key = S(""))                                                                  \
    X(req_param_value, T_REQUEST,                                                                \
      "action_request.parameters[1].value: contains a control character",                        \
      f->params[1].value = S("true\nmore"))                                                      \
    X(req_params_many, T_REQUEST, "action_request.parameters: 33 entries, more than 32",         \
      f->req.n_parameters = RSRE_PBUF_MAX_PARAMETERS + 1;                                        \
      f->req.parameters = param_many)                                                            \
    X(cfg_generation, T_CONFIG, "config_update.generation: required (must be > 0)",              \
      f->cfg.generation = 0)                                                                     \
    X(cfg_revision, T_CONFIG, "config_update.protocol_revision: required (must be > 0)",        \
      f->cfg.protocol_revision = 0)                                                              \
    X(cfg_interval, T_CONFIG,                                                                    \
      "config_update.intervals.pressure_stall_ms: 999 ms is outside 1000..3600000",              \
      f->cfg_intervals.pressure_stall_ms = 999)                                                  \
    X(cfg_override_both, T_CONFIG,                                                               \
      "config_update.threshold_overrides[0].percent: exactly one of quantity and percent",       \
      f->ovr[0].percent = 10.0)                                                                  \
    X(cfg_override_neither, T_CONFIG,                                                            \
      "config_update.threshold_overrides[0].percent: exactly one of quantity and percent",       \
      f->ovr[0].quantity = 0)                                                                    \
    X(cfg_override_gc_quantity, T_CONFIG,                                                        \
      "config_update.threshold_overrides[1].quantity: not allowed for an image GC threshold",    \
      f->ovr[1].quantity = 1000)                                                                 \
    X(cfg_override_pct, T_CONFIG,                                                                \
      "config_update.threshold_overrides[1].percent: 100.1 is not a percentage",                 \
      f->ovr[1].percent = 100.1)                                                                 \
    X(cfg_override_kind, T_CONFIG,                                                               \
      "config_update.threshold_overrides[0].kind: required (UNSPECIFIED)",                       \
      f->ovr[0].kind = E(THRESHOLD_KIND__THRESHOLD_KIND_UNSPECIFIED))                            \
    X(cfg_override_dup, T_CONFIG,                                                                \
      "config_update.threshold_overrides[1].kind: duplicate threshold kind 1",                   \
      f->ovr[1].kind = E(THRESHOLD_KIND__THRESHOLD_KIND_NODEFS_AVAILABLE);                       \
      f->ovr[1].quantity = 1;                                                                    \
      f->ovr[1].percent = 0)                                                                    \
    X(cfg_allowlist_id, T_CONFIG, "config_update.action_allowlist[0]: not an action id",         \
      f->allow[0] = S("../image.prune"))                                                         \
    X(cfg_allowlist_many, T_CONFIG, "config_update.action_allowlist: 65 entries, more than 64",  \
      f->cfg.n_action_allowlist = 65;                                                            \
      f->cfg.action_allowlist = str_many)
// clang-format on

#define X_FN(name, target, expect, body)                                                           \
    static void mut_##name(struct fixture *f) {                                                    \
        body;                                                                                      \
    }
REJECTIONS(X_FN)

struct rejection {
    const char *name;
    enum target target;
    const char *expect;
    void (*mutate)(struct fixture *f);
};

#define X_ROW(name, target, expect, body) {#name, target, expect, mut_##name},
static const struct rejection rejections[] = {REJECTIONS(X_ROW)};

static void fill_many(struct fixture *f) {
    for (size_t i = 0; i <= RSRE_PBUF_MAX_SIGNALS; i++) {
        sig_many[i] = &f->sig[i % 7];
    }
    for (size_t i = 0; i <= RSRE_PBUF_MAX_TAINTS; i++) {
        taint_many[i] = &f->taint;
    }
    for (size_t i = 0; i <= RSRE_PBUF_MAX_CAPABILITIES; i++) {
        cap_many[i] = E(CAPABILITY__CAPABILITY_FILESYSTEM);
    }
    for (size_t i = 0; i <= RSRE_PBUF_MAX_REMOVED_IDS; i++) {
        str_many[i] = S("image.prune_unused");
    }
    for (size_t i = 0; i <= RSRE_PBUF_MAX_PARAMETERS; i++) {
        param_many[i] = &f->params[0];
    }
}

/* Every rule: the in-memory message and its encoding, decoded by the receiving side, are both
 * refused with RSRE_EINVALID and an error that names the field. */
static void test_rejections(void **state) {
    (void)state;
    static struct fixture f;
    char err[RSRE_PBUF_ERR_LEN], err2[RSRE_PBUF_ERR_LEN];
    size_t n = sizeof(rejections) / sizeof(rejections[0]);
    for (size_t i = 0; i < n; i++) {
        const struct rejection *r = &rejections[i];
        fixture_init(&f);
        fill_many(&f);
        r->mutate(&f);
        ProtobufCMessage *m = target_msg(&f, r->target);
        int rc = rsre_pbuf_validate(m, err, sizeof(err));
        if (rc != RSRE_EINVALID || strstr(err, r->expect) != err) {
            print_error("rejection %s: rc=%d err='%s', expected '%s...'\n", r->name, rc, err,
                        r->expect);
        }
        assert_int_equal(rc, RSRE_EINVALID);
        assert_ptr_equal(strstr(err, r->expect), err);

        size_t len;
        uint8_t *b = pack(m, &len);
        rc = decode_as(r->target, b, len, 0, err2, sizeof(err2));
        if (rc != RSRE_EINVALID || strcmp(err, err2) != 0) {
            print_error("rejection %s after decoding: rc=%d err='%s'\n", r->name, rc, err2);
        }
        assert_int_equal(rc, RSRE_EINVALID);
        assert_string_equal(err, err2);
        free(b);
    }
    print_message("%zu validation rules rejected as expected\n", n);
}

static void test_error_buffer_handling(void **state) {
    (void)state;
    struct fixture f;
    fixture_init(&f);
    f.fs.bytes_free = f.fs.bytes_total + 1;
    char small[12];
    memset(small, 'x', sizeof(small));
    assert_int_equal(rsre_pbuf_validate(&f.batch_msg.base, small, sizeof(small)), RSRE_EINVALID);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, "signal_batc", 11);
    assert_int_equal(rsre_pbuf_validate(&f.batch_msg.base, NULL, 0), RSRE_EINVALID);
    assert_int_equal(rsre_pbuf_validate(&f.batch_msg.base, small, 0), RSRE_EINVALID);

    /* A lone sub-message validates on its own, with its own short name at the root. */
    char err[RSRE_PBUF_ERR_LEN];
    assert_int_equal(rsre_pbuf_validate(&f.sig[1].base, err, sizeof(err)), 0);
    f.sig[1].kind_case = E(SIGNAL__KIND__NOT_SET);
    assert_int_equal(rsre_pbuf_validate(&f.sig[1].base, err, sizeof(err)), RSRE_EINVALID);
    assert_ptr_equal(strstr(err, "Signal: none of filesystem"), err);
}

/* With RSRE_FUZZ_SEED_DIR=<dir>, writes every fixture message there in the input format of
 * tests/fuzz/fuzz_agent_proto.c (a direction byte, then the encoding): a seed corpus. */
static void test_write_fuzz_seeds(void **state) {
    (void)state;
    const char *dir = getenv("RSRE_FUZZ_SEED_DIR");
    if (dir == NULL) {
        skip();
    }
    struct fixture f;
    fixture_init(&f);
    for (int t = 0; t < T_COUNT; t++) {
        size_t len;
        uint8_t *b = pack(target_msg(&f, (enum target)t), &len);
        char path[4096];
        snprintf(path, sizeof(path), "%s/seed-%s", dir, target_names[t]);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        uint8_t side = is_agent_target((enum target)t) ? 0 : 1;
        assert_int_equal(fwrite(&side, 1, 1, fp), 1);
        assert_int_equal(fwrite(b, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
        free(b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_valid),
        cmocka_unit_test(test_round_trip_bytes),
        cmocka_unit_test(test_round_trip_hello),
        cmocka_unit_test(test_round_trip_signal_batch),
        cmocka_unit_test(test_round_trip_action_result),
        cmocka_unit_test(test_round_trip_aggregator_messages),
        cmocka_unit_test(test_oversized_refused),
        cmocka_unit_test(test_decode_budget_refuses_expansion),
        cmocka_unit_test(test_decode_budget_fits_legitimate_batches),
        cmocka_unit_test(test_truncated_refused),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_random_bytes_never_crash),
        cmocka_unit_test(test_mutations_never_crash),
        cmocka_unit_test(test_unknown_members_are_skipped),
        cmocka_unit_test(test_edge_values_accepted),
        cmocka_unit_test(test_dns1123_subdomain),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_error_buffer_handling),
        cmocka_unit_test(test_write_fuzz_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
