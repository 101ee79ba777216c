/*
 * libFuzzer target: arbitrary bytes as CRI replies (what a broken or hostile runtime could send)
 * through the agent's bounded decoding (rsre_cri_decode) and everything computed from the
 * replies: image classification, the first-seen tracker, the GC projection and container churn.
 *
 * Input layout: byte 0 picks the parameters (min age, thresholds, capacity), bytes 1-2 (little
 * endian) the length of the ListImages part; the ListImages part follows, and the rest is used
 * as ListContainers, ListPodSandbox and ImageFsInfo replies at once (the same bytes decode
 * differently per message type, which reaches more of each decoder). Every signal computed must
 * pass the stream's validation (common/pbuf.h): an invariant violation aborts.
 *
 * Build: CC=clang cmake -DRSRE_FUZZ=ON ...; run: ./fuzz_cri_reply -max_total_time=60 CORPUS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cri.h"
#include "common/error.h"
#include "common/log.h"
#include "common/pbuf.h"

static const struct rsre_cri_method *method(enum rsre_cri_method_id id) {
    return &rsre_cri_methods[id];
}

static void check_valid(const ProtobufCMessage *m) {
    char err[RSRE_PBUF_ERR_LEN];
    if (rsre_pbuf_validate(m, err, sizeof(err)) != 0) {
        fprintf(stderr, "computed signal fails validation: %s\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        rsre_log_threshold = RSRE_LOG_OFF;
        quiet = 1;
    }
    if (size < 3) {
        return 0;
    }
    uint8_t knobs = data[0];
    size_t ilen = (size_t)data[1] | ((size_t)data[2] << 8);
    data += 3;
    size -= 3;
    if (ilen > size) {
        ilen = size;
    }
    const uint8_t *rest = data + ilen;
    size_t rlen = size - ilen;

    /* Every reply type the agent decodes, from the same bytes: none may crash or leak. */
    for (int m = 0; m < RSRE_CRI_METHOD_COUNT; m++) {
        ProtobufCMessage *msg = NULL;
        if (rsre_cri_decode(method((enum rsre_cri_method_id)m), data, size, &msg) == 0) {
            rsre_cri_free(msg);
        }
    }

    struct rsre_cri_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    ProtobufCMessage *msg = NULL;
    if (rsre_cri_decode(method(RSRE_CRI_LIST_IMAGES), data, ilen, &msg) != 0) {
        return 0;
    }
    snap.images = (Runtime__V1__ListImagesResponse *)msg;
    if (rsre_cri_decode(method(RSRE_CRI_LIST_CONTAINERS), rest, rlen, &msg) == 0) {
        snap.containers = (Runtime__V1__ListContainersResponse *)msg;
    }
    if (rsre_cri_decode(method(RSRE_CRI_LIST_POD_SANDBOX), rest, rlen, &msg) == 0) {
        snap.sandboxes = (Runtime__V1__ListPodSandboxResponse *)msg;
    }
    if (rsre_cri_decode(method(RSRE_CRI_IMAGE_FS_INFO), rest, rlen, &msg) == 0) {
        snap.imagefs = (Runtime__V1__ImageFsInfoResponse *)msg;
    }
    /* A sandbox image name taken from the first tag of the listing, when there is one. */
    if (knobs & 0x80 && snap.images->n_images > 0 && snap.images->images[0]->n_repo_tags > 0) {
        snap.sandbox_image = strdup(snap.images->images[0]->repo_tags[0]);
    }
    snap.taken_unix_ms = 1700000000000;

    struct rsre_cri_seen *seen = NULL;
    if (rsre_cri_seen_create(&seen) != 0) {
        abort();
    }
    rsre_cri_seen_update(seen, snap.images, snap.taken_unix_ms - (knobs & 3) * 60000);
    rsre_cri_seen_update(seen, snap.images, snap.taken_unix_ms);

    struct rsre_cri_gc_params p;
    memset(&p, 0, sizeof(p));
    p.min_age_s = (knobs & 4) ? 120 : 0;
    p.now_ms = snap.taken_unix_ms;
    p.fs.gc_low_percent = (knobs & 8) ? 80 : (double)(knobs & 0x70);
    p.fs.gc_high_percent = 85;
    p.fs.capacity_bytes = (knobs & 0x10) ? UINT64_MAX : (uint64_t)ilen * 1000;
    p.fs.used_bytes = (knobs & 0x20) ? 0 : (uint64_t)rlen * 997;

    RobotSre__Agent__V1__ImageGcState gc;
    RobotSre__Agent__V1__ImageFsInfo fs;
    if (rsre_cri_compute_gc_state(&snap, seen, &p, &gc, &fs) == 0) {
        RobotSre__Agent__V1__Signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
        s.observed_unix_ms = snap.taken_unix_ms;
        s.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_IMAGE_GC;
        s.image_gc = &gc;
        check_valid(&s.base);
        if (gc.reclaimable_bytes > gc.unused_bytes || gc.unused_count > gc.image_count ||
            gc.gc_can_recover != (gc.reclaimable_bytes >= gc.bytes_to_gc_low)) {
            abort();
        }
    }

    if (snap.containers) {
        struct rsre_cri_churn *churn = NULL;
        if (rsre_cri_churn_create(&churn) != 0) {
            abort();
        }
        RobotSre__Agent__V1__PodChurn pc = ROBOT_SRE__AGENT__V1__POD_CHURN__INIT;
        if (rsre_cri_churn_update(churn, &snap, snap.taken_unix_ms, &pc) != 0) {
            abort(); /* the first update is the baseline */
        }
        if (rsre_cri_churn_update(churn, &snap, snap.taken_unix_ms + 60000, &pc) == 1) {
            RobotSre__Agent__V1__Signal s = ROBOT_SRE__AGENT__V1__SIGNAL__INIT;
            s.observed_unix_ms = snap.taken_unix_ms;
            s.kind_case = ROBOT_SRE__AGENT__V1__SIGNAL__KIND_POD_CHURN;
            s.pod_churn = &pc;
            check_valid(&s.base);
            /* The same list twice: nothing was created or exited in between. */
            if (pc.containers_created_in_window != 0 || pc.containers_exited_in_window != 0) {
                abort();
            }
        }
        rsre_cri_churn_destroy(churn);
    }

    rsre_cri_seen_destroy(seen);
    struct rsre_cri_snapshot *heap = malloc(sizeof(*heap));
    if (heap == NULL) {
        abort();
    }
    *heap = snap;
    rsre_cri_snapshot_free(heap);
    return 0;
}
