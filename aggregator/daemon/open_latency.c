/* Receipt-to-incident-open latency histogram (open_latency.h). */
#include "daemon/open_latency.h"

#include <stdlib.h>
#include <string.h>

#include "http/metrics.h"

static const double buckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05,
                                 0.075,  0.1,   0.2,   0.5,   1,    2,    5};

static const struct rsre_metric_def def = {
    .name = "rsre_incident_open_latency_seconds",
    .help = "Receipt of the signal batch that opened an incident to the incident's opening "
            "being committed",
    .type = RSRE_METRIC_HISTOGRAM,
    .buckets = buckets,
    .nbuckets = sizeof(buckets) / sizeof(buckets[0]),
};

int rsre_open_latency_init(struct rsre_open_latency *ol, struct rsre_metrics *m) {
    memset(ol, 0, sizeof(*ol));
    ol->metrics = m;
    ol->metric_id = -1;
    if (!m) {
        return 0;
    }
    return rsre_metrics_register(m, &def, &ol->metric_id);
}

void rsre_open_latency_note(struct rsre_open_latency *ol, const char *node, uint64_t recv_ns) {
    if (!ol->metrics || recv_ns == 0) {
        return;
    }
    size_t len = strlen(node) + 1;
    if (ol->nnotes == ol->capnotes) {
        size_t cap = ol->capnotes ? ol->capnotes * 2 : 256;
        struct ol_note *n = realloc(ol->notes, cap * sizeof(*n));
        if (!n) {
            return;
        }
        ol->notes = n;
        ol->capnotes = cap;
    }
    if (ol->nnames + len > ol->capnames) {
        size_t cap = ol->capnames ? ol->capnames * 2 : 8192;
        while (cap < ol->nnames + len) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return;
        }
        char *p = realloc(ol->names, cap);
        if (!p) {
            return;
        }
        ol->names = p;
        ol->capnames = cap;
    }
    memcpy(ol->names + ol->nnames, node, len);
    ol->notes[ol->nnotes].off = (uint32_t)ol->nnames;
    ol->notes[ol->nnotes].recv_ns = recv_ns;
    ol->nnotes++;
    ol->nnames += len;
}

void rsre_open_latency_opened(struct rsre_open_latency *ol, const char *node, uint64_t now_ns) {
    if (ol->metric_id < 0 || !node) {
        return;
    }
    for (size_t i = 0; i < ol->nnotes; i++) {
        if (strcmp(ol->names + ol->notes[i].off, node) == 0) {
            uint64_t r = ol->notes[i].recv_ns;
            double s = now_ns > r ? (double)(now_ns - r) / 1e9 : 0.0;
            rsre_metrics_observe(ol->metrics, ol->metric_id, NULL, s);
            return;
        }
    }
}

void rsre_open_latency_reset(struct rsre_open_latency *ol) {
    ol->nnotes = 0;
    ol->nnames = 0;
}

void rsre_open_latency_free(struct rsre_open_latency *ol) {
    free(ol->notes);
    free(ol->names);
    memset(ol, 0, sizeof(*ol));
    ol->metric_id = -1;
}
