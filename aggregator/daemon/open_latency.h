#ifndef RSRE_OPEN_LATENCY_H
#define RSRE_OPEN_LATENCY_H

/*
 * Receipt-to-incident-open latency (docs/performance.md): the time from the ingest taking a
 * SignalBatch off the gRPC queue to the incident it opened being committed and released to the
 * notify hook. The ingest consumer notes (node, receipt time) for every batch of the current
 * group commit; when an incident opens after that commit, its resource scope's node is looked up
 * among the notes (its earliest batch in the group: an upper bound when a node sent several)
 * and the latency is observed in the histogram rsre_incident_open_latency_seconds. Incidents
 * opened by the observation tick, or for a scope no batch of the group named, are not
 * observed. Loop thread only.
 */

#include <stddef.h>
#include <stdint.h>

struct rsre_metrics;

struct rsre_open_latency {
    struct rsre_metrics *metrics;
    int metric_id; /* -1 when the family could not be registered */
    struct ol_note {
        uint32_t off; /* node name at names + off */
        uint64_t recv_ns;
    } * notes;
    size_t nnotes, capnotes;
    char *names;
    size_t nnames, capnames;
};

/* Registers the histogram in `m` (may be NULL: nothing is observed). Returns 0 or what
 * rsre_metrics_register returns. */
int rsre_open_latency_init(struct rsre_open_latency *ol, struct rsre_metrics *m);
/* A batch from `node` received at recv_ns (uv_hrtime) is being applied. recv_ns 0 is ignored;
 * so is a note that cannot be stored (out of memory: the measurement is lost, nothing else). */
void rsre_open_latency_note(struct rsre_open_latency *ol, const char *node, uint64_t recv_ns);
/* An incident for `node` opened (after the commit): observes now - receipt. */
void rsre_open_latency_opened(struct rsre_open_latency *ol, const char *node, uint64_t now_ns);
/* The group's commit (or abort) is done: forgets the notes. */
void rsre_open_latency_reset(struct rsre_open_latency *ol);
void rsre_open_latency_free(struct rsre_open_latency *ol);

#endif
