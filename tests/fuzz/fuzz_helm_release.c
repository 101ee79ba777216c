/*
 * libFuzzer target over the observers' decoders (aggregator/observe/helm_release.h and
 * kube_objects.h): Helm release Secrets and the workload, pod, ingress and service account
 * objects an API server (or anything pretending to be one) sends.
 *
 * The first input byte picks the mode (mod 6); the rest is the input:
 *   0  Secret data.release text as the API returns it (base64 of Helm's base64 of gzip)
 *   1  the input taken as Helm's gzip bytes, base64-encoded twice here, then decoded as 0
 *      does (reaches the gzip and JSON layers with arbitrary bytes)
 *   2  release JSON (the innermost layer)
 *   3  a rendered manifest (YAML documents)
 *   4  rsre_helm_gunzip with a 64 KiB bound
 *   5  a JSON object decoded as (second byte mod 6) Deployment, StatefulSet, DaemonSet, Pod,
 *      Ingress, Helm Secret
 *
 * Oracles beyond "no crash, no sanitizer report, no leak": results are only the documented
 * ones; a rejected input leaves *out NULL and an error message; accepted releases have a name,
 * a version >= 1, at most RSRE_HELM_MAX_IMAGES images with bounded strings; a decompression
 * never returns more than its bound; decoding is deterministic.
 *
 *   CC=clang cmake -S . -B build-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_helm_release
 *   ./build-fuzz/tests/fuzz_helm_release -max_total_time=20 corpus/
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "observe/helm_release.h"
#include "observe/kube_objects.h"

#define FUZZ_MAX_LEN (256u * 1024u)

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static int documented(int rc) {
    return rc == 0 || rc == RSRE_EPARSE || rc == RSRE_EINVALID || rc == RSRE_ELIMIT;
}

static char *b64(const unsigned char *in, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8);
    check(o != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        o[k++] = t[w >> 18 & 63];
        o[k++] = t[w >> 12 & 63];
        o[k++] = i + 1 < n ? t[w >> 6 & 63] : '=';
        o[k++] = i + 2 < n ? t[w & 63] : '=';
    }
    o[k] = '\0';
    return o;
}

static uint32_t check_release(int rc, struct rsre_helm_release *r, const char *err) {
    check(documented(rc));
    if (rc) {
        check(r == NULL && err[0] != '\0');
        return (uint32_t)-rc;
    }
    check(r->name[0] != '\0' && r->version >= 1);
    check(memchr(r->status, '\0', sizeof(r->status)) != NULL);
    check(r->nimages <= RSRE_HELM_MAX_IMAGES);
    uint32_t sig = (uint32_t)r->nimages * 131u + (uint32_t)r->version;
    for (size_t i = 0; i < r->nimages; i++) {
        check(r->images[i].image && strlen(r->images[i].image) < RSRE_KUBE_IMAGE_MAX);
        check(memchr(r->images[i].workload, '\0', sizeof(r->images[i].workload)) != NULL);
        sig = sig * 31u + (uint32_t)strlen(r->images[i].image);
    }
    rsre_helm_release_free(r);
    return sig;
}

static uint32_t decode_text(const char *s, size_t n) {
    struct rsre_helm_release *r = (void *)1;
    char err[256] = "";
    int rc = rsre_helm_release_decode(s, n, 1u << 20, &r, err, sizeof(err));
    return check_release(rc, r, err);
}

static uint32_t run(uint8_t mode, const uint8_t *d, size_t n) {
    char err[256] = "";
    switch (mode % 6) {
    case 0:
        return decode_text((const char *)d, n);
    case 1: {
        char *inner = b64(d, n);
        char *outer = b64((const unsigned char *)inner, strlen(inner));
        uint32_t sig = decode_text(outer, strlen(outer));
        free(inner);
        free(outer);
        return sig;
    }
    case 2: {
        struct rsre_helm_release *r = (void *)1;
        int rc = rsre_helm_release_from_json((const char *)d, n, &r, err, sizeof(err));
        return check_release(rc, r, err);
    }
    case 3: {
        struct rsre_helm_release r;
        memset(&r, 0, sizeof(r));
        int rc = rsre_helm_manifest_images((const char *)d, n, &r, err, sizeof(err));
        check(documented(rc));
        check(r.nimages <= RSRE_HELM_MAX_IMAGES);
        uint32_t sig = (uint32_t)r.nimages;
        for (size_t i = 0; i < r.nimages; i++) {
            free(r.images[i].image);
        }
        free(r.images);
        return sig + (uint32_t)-rc;
    }
    case 4: {
        unsigned char *out = (void *)1;
        size_t on = 0;
        int rc = rsre_helm_gunzip(d, n, 65536, &out, &on);
        check(documented(rc));
        if (rc) {
            check(out == NULL);
            return (uint32_t)-rc;
        }
        check(on <= 65536 && out[on] == '\0');
        free(out);
        return (uint32_t)on;
    }
    default: {
        if (n == 0) {
            return 0;
        }
        json_t *j = NULL;
        if (rsre_kube_json_load((const char *)d + 1, n - 1, &j, err, sizeof(err)) != 0) {
            return 1;
        }
        void *obj = (void *)1;
        int rc;
        uint32_t sig = 0;
        switch (d[0] % 6) {
        case 0:
        case 1:
        case 2: {
            int (*fn[])(const json_t *, struct rsre_obs_workload **, char *, size_t) = {
                rsre_obs_deployment_decode, rsre_obs_statefulset_decode, rsre_obs_daemonset_decode};
            struct rsre_obs_workload *w = (void *)1;
            rc = fn[d[0] % 6](j, &w, err, sizeof(err));
            obj = w;
            if (!rc) {
                check(w->ncontainers <= RSRE_OBS_MAX_TEMPLATE_CONTAINERS);
                check(!w->labels || strlen(w->labels) < RSRE_OBS_MAX_LABELS_TEXT);
                sig = (uint32_t)w->ncontainers + (uint32_t)w->replicas;
                rsre_obs_workload_free(w);
            }
            break;
        }
        case 3: {
            struct rsre_obs_pod *p = (void *)1;
            rc = rsre_obs_pod_decode(j, &p, err, sizeof(err));
            obj = p;
            if (!rc) {
                check(p->npull_secrets <= RSRE_OBS_MAX_REFS);
                sig = (uint32_t)p->npull_secrets;
                rsre_obs_pod_free(p);
            }
            break;
        }
        case 4: {
            struct rsre_obs_ingress *in = (void *)1;
            rc = rsre_obs_ingress_decode(j, &in, err, sizeof(err));
            obj = in;
            if (!rc) {
                check(in->nbackends <= RSRE_OBS_MAX_REFS);
                sig = (uint32_t)in->nbackends;
                rsre_obs_ingress_free(in);
            }
            break;
        }
        default: {
            struct rsre_obs_helm_secret *s = (void *)1;
            rc = rsre_obs_helm_secret_decode(j, &s, err, sizeof(err));
            obj = s;
            if (!rc) {
                check(s->version >= 1 && s->name[0]);
                sig = (uint32_t)s->version + (s->release ? 7u : 0u);
                rsre_obs_helm_secret_free(s);
            }
            break;
        }
        }
        json_decref(j);
        check(documented(rc));
        if (rc) {
            check(obj == NULL && err[0] != '\0');
            return (uint32_t)-rc;
        }
        return sig;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    uint32_t a = run(data[0], data + 1, size - 1);
    uint32_t b = run(data[0], data + 1, size - 1);
    check(a == b);
    return 0;
}
