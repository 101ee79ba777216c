/*
 * libFuzzer target over the Kubernetes JSON decoders (common/kube_json.h): what the agent and
 * the aggregator do with every byte an API server (or anything pretending to be one) sends.
 *
 * The first input byte picks the decoder (mod 6): 0 Node, 1 Pod, 2 Event, 3 watch line,
 * 4 list, 5 RFC 3339 time; the rest is the input.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - results are only the documented ones (0, RSRE_EPARSE, RSRE_EINVALID, RSRE_ELIMIT);
 *   - a rejected object leaves *out NULL and an error message; an accepted one has its
 *     strings within their bounds and NUL-terminated;
 *   - decoding is deterministic: the same input decodes the same way twice;
 *   - an accepted time lies within years 1..9999 (with offsets, a day either side).
 *
 *   CC=clang cmake -S . -B build-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_kube_json
 *   ./build-fuzz/tests/fuzz_kube_json -max_total_time=30 -max_len=65536 -dict=... corpus/
 * A useful seed corpus: the fixtures in tests/data/kube, each with one leading selector byte.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/kube_json.h"

#define FUZZ_MAX_LEN (256u * 1024u)

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static int documented(int rc) {
    return rc == 0 || rc == RSRE_EPARSE || rc == RSRE_EINVALID || rc == RSRE_ELIMIT;
}

static void check_str(const char *s, size_t cap) {
    check(memchr(s, '\0', cap) != NULL);
}

static void check_meta(const struct rsre_kube_meta *m) {
    check_str(m->ns, sizeof(m->ns));
    check_str(m->name, sizeof(m->name));
    check_str(m->uid, sizeof(m->uid));
    check_str(m->rv, sizeof(m->rv));
    check_str(m->owner_kind, sizeof(m->owner_kind));
    check_str(m->owner_name, sizeof(m->owner_name));
    check(strchr(m->ns, '/') == NULL && strchr(m->name, '/') == NULL);
}

static int node_once(const json_t *j, uint32_t *sig) {
    struct rsre_kube_node *n = (void *)1;
    char err[RSRE_KUBE_ERR_LEN] = "";
    int rc = rsre_kube_node_decode(j, &n, err, sizeof(err));
    check(documented(rc));
    if (rc != 0) {
        check(n == NULL && err[0] != '\0');
        return rc;
    }
    check_meta(&n->meta);
    check(n->ntaints <= RSRE_KUBE_MAX_TAINTS && n->naddresses <= RSRE_KUBE_MAX_ADDRESSES);
    *sig = (uint32_t)n->ntaints * 31u + (uint32_t)n->naddresses;
    for (int i = 0; i < RSRE_KUBE_NODE_NCOND; i++) {
        const struct rsre_kube_condition *c = &n->cond[i];
        check((unsigned)c->status <= RSRE_KUBE_COND_UNKNOWN);
        check_str(c->reason, sizeof(c->reason));
        check(!c->message || strlen(c->message) <= RSRE_KUBE_MESSAGE_MAX);
        *sig = *sig * 7u + (uint32_t)c->status;
    }
    for (size_t i = 0; i < n->ntaints; i++) {
        check(n->taints[i].key[0] != '\0');
        check(n->taints[i].effect != RSRE_KUBE_TAINT_UNSET);
    }
    check(rsre_kube_node_same_state(n, n));
    rsre_kube_node_free(n);
    return 0;
}

static int pod_once(const json_t *j, uint32_t *sig) {
    struct rsre_kube_pod *p = (void *)1;
    char err[RSRE_KUBE_ERR_LEN] = "";
    int rc = rsre_kube_pod_decode(j, &p, err, sizeof(err));
    check(documented(rc));
    if (rc != 0) {
        check(p == NULL && err[0] != '\0');
        return rc;
    }
    check_meta(&p->meta);
    check(p->ncontainers <= RSRE_KUBE_MAX_CONTAINERS);
    struct rsre_kube_pod_counts c = {0};
    rsre_kube_pod_count(p, &c);
    check(c.running + c.pending + c.succeeded + c.failed + c.unknown == 1);
    check(c.evicted <= c.failed);
    *sig = (uint32_t)p->phase * 131u + (uint32_t)p->ncontainers;
    for (size_t i = 0; i < p->ncontainers; i++) {
        const struct rsre_kube_container *k = &p->containers[i];
        check(k->restart_count >= 0);
        check(!k->image || strlen(k->image) <= RSRE_KUBE_IMAGE_MAX);
        check(!k->message || strlen(k->message) <= RSRE_KUBE_MESSAGE_MAX);
        (void)rsre_kube_pull_reason(k->reason);
        *sig = *sig * 7u + (uint32_t)k->restart_count;
    }
    rsre_kube_pod_free(p);
    return 0;
}

static int event_once(const json_t *j, uint32_t *sig) {
    struct rsre_kube_event *e = (void *)1;
    char err[RSRE_KUBE_ERR_LEN] = "";
    int rc = rsre_kube_event_decode(j, &e, err, sizeof(err));
    check(documented(rc));
    if (rc != 0) {
        check(e == NULL && err[0] != '\0');
        return rc;
    }
    check_meta(&e->meta);
    check(e->count >= 0);
    *sig = (uint32_t)e->count;
    rsre_kube_event_free(e);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    int which = data[0] % 6;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char err[RSRE_KUBE_ERR_LEN];

    if (which == 5) {
        char buf[64];
        if (len >= sizeof(buf)) {
            return 0;
        }
        memcpy(buf, text, len);
        buf[len] = '\0';
        int64_t ms = 0, ms2 = 0;
        int rc = rsre_kube_time_parse(buf, &ms);
        check(rc == 0 || rc == RSRE_EINVALID);
        if (rc == 0) {
            check(ms >= INT64_C(-62135596800000) - 86400000 &&
                  ms <= INT64_C(253402300799999) + 86400000);
            check(rsre_kube_time_parse(buf, &ms2) == 0 && ms2 == ms);
        }
        return 0;
    }
    if (which == 3) {
        struct rsre_kube_watch_event ev;
        int rc = rsre_kube_watch_parse(text, len, &ev, err, sizeof(err));
        check(documented(rc) || rc == -ENOMEM);
        if (rc == 0) {
            check(ev.type >= RSRE_KUBE_WATCH_ADDED && ev.type <= RSRE_KUBE_WATCH_ERROR);
            check(json_is_object(ev.object));
            check_str(ev.rv, sizeof(ev.rv));
            if (ev.type == RSRE_KUBE_WATCH_ERROR) {
                check(ev.status.code >= 0 && ev.status.code <= 999);
            } else {
                uint32_t s1 = 0, s2 = 0;
                /* Whatever the object is, every decoder copes with it. */
                int a = node_once(ev.object, &s1);
                check(a == node_once(ev.object, &s2) && s1 == s2);
                pod_once(ev.object, &s1);
                event_once(ev.object, &s1);
            }
            rsre_kube_watch_event_clear(&ev);
        } else {
            check(ev.object == NULL);
        }
        return 0;
    }
    if (which == 4) {
        struct rsre_kube_list l;
        int rc = rsre_kube_list_parse(text, len, NULL, &l, err, sizeof(err));
        check(documented(rc) || rc == -ENOMEM);
        if (rc == 0) {
            check(json_is_array(l.items));
            for (size_t i = 0; i < json_array_size(l.items) && i < 64; i++) {
                uint32_t s;
                struct rsre_kube_meta m;
                int mrc = rsre_kube_meta_decode(json_array_get(l.items, i), &m, err, sizeof(err));
                check(documented(mrc));
                pod_once(json_array_get(l.items, i), &s);
            }
            rsre_kube_list_clear(&l);
        } else {
            check(l.root == NULL);
        }
        return 0;
    }
    json_t *j = NULL;
    int rc = rsre_kube_json_load(text, len, &j, err, sizeof(err));
    check(documented(rc) || rc == -ENOMEM);
    if (rc != 0) {
        check(j == NULL);
        return 0;
    }
    uint32_t s1 = 0, s2 = 0;
    int r1, r2;
    if (which == 0) {
        r1 = node_once(j, &s1);
        r2 = node_once(j, &s2);
    } else if (which == 1) {
        r1 = pod_once(j, &s1);
        r2 = pod_once(j, &s2);
    } else {
        r1 = event_once(j, &s1);
        r2 = event_once(j, &s2);
    }
    check(r1 == r2 && (r1 != 0 || s1 == s2));
    json_decref(j);
    return 0;
}
