/* Decoders of the workload, pod, service account, ingress and Helm Secret fields the
 * observers use (contract in kube_objects.h). */
#include "observe/kube_objects.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t err_len, int rc, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* obj.a.b... (NULL when absent or a step is not an object). */
static const json_t *at(const json_t *obj, const char *a, const char *b, const char *c) {
    const char *keys[3] = {a, b, c};
    for (int i = 0; i < 3 && keys[i] && obj; i++) {
        obj = json_is_object(obj) ? json_object_get(obj, keys[i]) : NULL;
    }
    return obj;
}

/* Copies a string: absent/null -> "", other types error; identifiers checked, text truncated. */
static int str_at(const json_t *v, char *dst, size_t cap, int ident, const char *path, char *err,
                  size_t err_len) {
    dst[0] = '\0';
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(err, err_len, RSRE_EINVALID, "%s: expected a string", path);
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (ident && n >= cap) {
        return fail(err, err_len, RSRE_EINVALID, "%s: longer than %zu bytes", path, cap - 1);
    }
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            if (ident) {
                return fail(err, err_len, RSRE_EINVALID, "%s: control character", path);
            }
        }
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    if (!ident) {
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f) {
                dst[i] = ' ';
            }
        }
    }
    return 0;
}

static int int_at(const json_t *v, int32_t *out, int32_t dflt, const char *path, char *err,
                  size_t err_len) {
    *out = dflt;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
        return fail(err, err_len, RSRE_EINVALID, "%s: expected an integer >= 0", path);
    }
    *out = (int32_t)json_integer_value(v);
    return 0;
}

static int i64_at(const json_t *v, int64_t *out, const char *path, char *err, size_t err_len) {
    *out = 0;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return fail(err, err_len, RSRE_EINVALID, "%s: expected an integer", path);
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static const json_t *arr_at(const json_t *v, size_t max, const char *path, int *rc, char *err,
                            size_t err_len) {
    *rc = 0;
    if (!v || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_array(v)) {
        *rc = fail(err, err_len, RSRE_EINVALID, "%s: expected an array", path);
        return NULL;
    }
    if (json_array_size(v) > max) {
        *rc = fail(err, err_len, RSRE_ELIMIT, "%s: more than %zu items", path, max);
        return NULL;
    }
    return v;
}

/* Labels as "\nk=v\nk=v\n" (bounded; truncated at a whole entry). */
static int labels_text(const json_t *obj, char **out, char *err, size_t err_len) {
    *out = NULL;
    const json_t *l = at(obj, "metadata", "labels", NULL);
    if (!l || json_is_null(l)) {
        return 0;
    }
    if (!json_is_object(l)) {
        return fail(err, err_len, RSRE_EINVALID, "metadata.labels: expected an object");
    }
    char *buf = malloc(RSRE_OBS_MAX_LABELS_TEXT);
    if (!buf) {
        return -ENOMEM;
    }
    size_t n = 0;
    buf[n++] = '\n';
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)l, k, v) {
        if (!json_is_string(v)) {
            free(buf);
            return fail(err, err_len, RSRE_EINVALID, "metadata.labels.%.64s: expected a string", k);
        }
        size_t kl = strlen(k), vl = json_string_length(v);
        if (n + kl + vl + 3 > RSRE_OBS_MAX_LABELS_TEXT) {
            break;
        }
        if (strpbrk(k, "\n=") || memchr(json_string_value(v), '\n', vl)) {
            continue; /* not a valid label; never matched */
        }
        memcpy(buf + n, k, kl);
        n += kl;
        buf[n++] = '=';
        memcpy(buf + n, json_string_value(v), vl);
        n += vl;
        buf[n++] = '\n';
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

int rsre_obs_labels_have(const char *labels, const char *kv) {
    if (!labels || !kv || !kv[0]) {
        return 0;
    }
    size_t n = strlen(kv);
    for (const char *p = strstr(labels, kv); p; p = strstr(p + 1, kv)) {
        if (p > labels && p[-1] == '\n' && p[n] == '\n') {
            return 1;
        }
    }
    return 0;
}

/* Pull secret names of a `imagePullSecrets` array. */
static int pull_secrets(const json_t *v, char (**out)[RSRE_KUBE_NAME_LEN], size_t *n,
                        const char *path, char *err, size_t err_len) {
    int rc;
    const json_t *a = arr_at(v, RSRE_OBS_MAX_REFS, path, &rc, err, err_len);
    *out = NULL;
    *n = 0;
    if (rc || !a || json_array_size(a) == 0) {
        return rc;
    }
    *out = calloc(json_array_size(a), sizeof(**out));
    if (!*out) {
        return -ENOMEM;
    }
    size_t i;
    const json_t *it;
    json_array_foreach(a, i, it) {
        if (!json_is_object(it)) {
            return fail(err, err_len, RSRE_EINVALID, "%s[%zu]: expected an object", path, i);
        }
        if ((rc = str_at(json_object_get(it, "name"), (*out)[*n], RSRE_KUBE_NAME_LEN, 1, path, err,
                         err_len))) {
            return rc;
        }
        if ((*out)[*n][0]) {
            (*n)++;
        }
    }
    return 0;
}

/* ---- workloads ---------------------------------------------------------------------------- */

static const char *const workload_kinds[RSRE_OBS_NWORKLOAD_KINDS] = {"Deployment", "StatefulSet",
                                                                     "DaemonSet"};

const char *rsre_obs_workload_kind_name(enum rsre_obs_workload_kind k) {
    return (unsigned)k < RSRE_OBS_NWORKLOAD_KINDS ? workload_kinds[k] : "?";
}

void rsre_obs_workload_free(struct rsre_obs_workload *w) {
    if (!w) {
        return;
    }
    for (size_t i = 0; i < w->ncontainers; i++) {
        free(w->containers[i].image);
    }
    free(w->containers);
    free(w->labels);
    free(w);
}

static int template_containers(const json_t *pod_spec, struct rsre_obs_workload *w, char *err,
                               size_t err_len) {
    static const char *const lists[] = {"initContainers", "containers"};
    size_t total = 0;
    int rc;
    const json_t *arr[2];
    for (int l = 0; l < 2; l++) {
        char path[64];
        snprintf(path, sizeof(path), "spec.template.spec.%s", lists[l]);
        arr[l] = arr_at(json_object_get(pod_spec, lists[l]), RSRE_OBS_MAX_TEMPLATE_CONTAINERS, path,
                        &rc, err, err_len);
        if (rc) {
            return rc;
        }
        total += arr[l] ? json_array_size(arr[l]) : 0;
    }
    if (total > RSRE_OBS_MAX_TEMPLATE_CONTAINERS) {
        return fail(err, err_len, RSRE_ELIMIT, "spec.template.spec: more than %d containers",
                    RSRE_OBS_MAX_TEMPLATE_CONTAINERS);
    }
    if (!total) {
        return 0;
    }
    w->containers = calloc(total, sizeof(*w->containers));
    if (!w->containers) {
        return -ENOMEM;
    }
    for (int l = 0; l < 2; l++) {
        size_t i;
        const json_t *c;
        json_array_foreach(arr[l], i, c) {
            char path[96];
            snprintf(path, sizeof(path), "spec.template.spec.%s[%zu]", lists[l], i);
            if (!json_is_object(c)) {
                return fail(err, err_len, RSRE_EINVALID, "%s: expected an object", path);
            }
            struct rsre_obs_container *oc = &w->containers[w->ncontainers++];
            char image[RSRE_KUBE_IMAGE_MAX];
            if ((rc = str_at(json_object_get(c, "name"), oc->name, sizeof(oc->name), 1, path, err,
                             err_len)) ||
                (rc = str_at(json_object_get(c, "image"), image, sizeof(image), 0, path, err,
                             err_len))) {
                return rc;
            }
            if (image[0] && !(oc->image = strdup(image))) {
                return -ENOMEM;
            }
        }
    }
    return 0;
}

static int workload_decode(const json_t *obj, enum rsre_obs_workload_kind kind,
                           struct rsre_obs_workload **out, char *err, size_t err_len) {
    *out = NULL;
    if (!json_is_object(obj)) {
        return fail(err, err_len, RSRE_EINVALID, "object: expected an object");
    }
    struct rsre_obs_workload *w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    w->kind = kind;
    const json_t *spec = json_object_get(obj, "spec");
    const json_t *st = json_object_get(obj, "status");
    const json_t *ann = at(obj, "metadata", "annotations", NULL);
    int rc = rsre_kube_meta_decode(obj, &w->meta, err, err_len);
    if (!rc && ((spec && !json_is_object(spec) && !json_is_null(spec)) ||
                (st && !json_is_object(st) && !json_is_null(st)) ||
                (ann && !json_is_object(ann) && !json_is_null(ann)))) {
        rc = fail(err, err_len, RSRE_EINVALID, "spec/status/annotations: expected objects");
    }
    if (!rc) {
        rc = labels_text(obj, &w->labels, err, err_len);
    }
    if (!rc) {
        rc = str_at(json_object_get(ann, "meta.helm.sh/release-name"), w->release,
                    sizeof(w->release), 0, "metadata.annotations", err, err_len);
    }
    if (!rc) {
        rc = str_at(json_object_get(ann, "meta.helm.sh/release-namespace"), w->release_ns,
                    sizeof(w->release_ns), 0, "metadata.annotations", err, err_len);
    }
    if (!rc) {
        rc = i64_at(at(obj, "metadata", "generation", NULL), &w->generation, "metadata.generation",
                    err, err_len);
    }
    if (!rc) {
        rc = i64_at(json_object_get(st, "observedGeneration"), &w->observed_generation,
                    "status.observedGeneration", err, err_len);
    }
    if (!rc && kind == RSRE_OBS_DAEMONSET) {
        if (!(rc = int_at(json_object_get(st, "desiredNumberScheduled"), &w->replicas, 0,
                          "status.desiredNumberScheduled", err, err_len)) &&
            !(rc = int_at(json_object_get(st, "updatedNumberScheduled"), &w->updated, 0,
                          "status.updatedNumberScheduled", err, err_len)) &&
            !(rc = int_at(json_object_get(st, "numberReady"), &w->ready, 0, "status.numberReady",
                          err, err_len))) {
            rc = int_at(json_object_get(st, "numberAvailable"), &w->available, 0,
                        "status.numberAvailable", err, err_len);
        }
    } else if (!rc) {
        if (!(rc = int_at(json_object_get(spec, "replicas"), &w->replicas, 1, "spec.replicas", err,
                          err_len)) &&
            !(rc = int_at(json_object_get(st, "updatedReplicas"), &w->updated, 0,
                          "status.updatedReplicas", err, err_len)) &&
            !(rc = int_at(json_object_get(st, "readyReplicas"), &w->ready, 0,
                          "status.readyReplicas", err, err_len))) {
            rc = int_at(json_object_get(st, "availableReplicas"), &w->available,
                        kind == RSRE_OBS_STATEFULSET ? -1 : 0, "status.availableReplicas", err,
                        err_len);
            if (!rc && w->available < 0) {
                w->available = w->ready; /* older StatefulSets do not report it */
            }
        }
    }
    int crc;
    const json_t *conds = rc ? NULL
                             : arr_at(json_object_get(st, "conditions"), RSRE_KUBE_MAX_CONDITIONS,
                                      "status.conditions", &crc, err, err_len);
    if (!rc && conds == NULL && crc) {
        rc = crc;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(conds, i, c) {
        if (rc || !json_is_object(c)) {
            rc = rc ? rc : fail(err, err_len, RSRE_EINVALID, "status.conditions[%zu]", i);
            break;
        }
        char type[RSRE_KUBE_KIND_LEN], status[16], reason[RSRE_KUBE_REASON_LEN];
        if ((rc = str_at(json_object_get(c, "type"), type, sizeof(type), 0, "status.conditions",
                         err, err_len)) ||
            (rc = str_at(json_object_get(c, "status"), status, sizeof(status), 0,
                         "status.conditions", err, err_len)) ||
            (rc = str_at(json_object_get(c, "reason"), reason, sizeof(reason), 0,
                         "status.conditions", err, err_len))) {
            break;
        }
        if (strcmp(type, "Progressing") == 0 && strcmp(status, "False") == 0 &&
            strcmp(reason, "ProgressDeadlineExceeded") == 0) {
            w->deadline_exceeded = 1;
            rc = str_at(json_object_get(c, "message"), w->progress_message,
                        sizeof(w->progress_message), 0, "status.conditions", err, err_len);
        }
    }
    if (!rc) {
        const json_t *ps = at(spec, "template", "spec", NULL);
        if (ps && !json_is_object(ps) && !json_is_null(ps)) {
            rc = fail(err, err_len, RSRE_EINVALID, "spec.template.spec: expected an object");
        } else if (ps) {
            rc = template_containers(ps, w, err, err_len);
        }
    }
    if (rc) {
        rsre_obs_workload_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int rsre_obs_deployment_decode(const json_t *obj, struct rsre_obs_workload **out, char *err,
                               size_t err_len) {
    return workload_decode(obj, RSRE_OBS_DEPLOYMENT, out, err, err_len);
}
int rsre_obs_statefulset_decode(const json_t *obj, struct rsre_obs_workload **out, char *err,
                                size_t err_len) {
    return workload_decode(obj, RSRE_OBS_STATEFULSET, out, err, err_len);
}
int rsre_obs_daemonset_decode(const json_t *obj, struct rsre_obs_workload **out, char *err,
                              size_t err_len) {
    return workload_decode(obj, RSRE_OBS_DAEMONSET, out, err, err_len);
}

int rsre_obs_workload_lagging(const struct rsre_obs_workload *w) {
    return w->updated < w->replicas || w->ready < w->replicas || w->available < w->replicas ||
           (w->generation > 0 && w->observed_generation < w->generation);
}

/* ---- owned objects, pods, service accounts ------------------------------------------------ */

int rsre_obs_owned_decode(const json_t *obj, struct rsre_obs_owned **out, char *err,
                          size_t err_len) {
    *out = NULL;
    if (!json_is_object(obj)) {
        return fail(err, err_len, RSRE_EINVALID, "object: expected an object");
    }
    struct rsre_obs_owned *o = calloc(1, sizeof(*o));
    if (!o) {
        return -ENOMEM;
    }
    int rc = rsre_kube_meta_decode(obj, &o->meta, err, err_len);
    if (rc) {
        free(o);
        return rc;
    }
    *out = o;
    return 0;
}

void rsre_obs_owned_free(struct rsre_obs_owned *o) {
    free(o);
}

void rsre_obs_pod_free(struct rsre_obs_pod *p) {
    if (p) {
        rsre_kube_pod_free(p->pod);
        free(p->pull_secrets);
        free(p->labels);
        free(p);
    }
}

int rsre_obs_pod_decode(const json_t *obj, struct rsre_obs_pod **out, char *err, size_t err_len) {
    *out = NULL;
    struct rsre_obs_pod *p = calloc(1, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    const json_t *spec = json_is_object(obj) ? json_object_get(obj, "spec") : NULL;
    int rc = rsre_kube_pod_decode(obj, &p->pod, err, err_len);
    if (!rc) {
        rc = str_at(json_object_get(spec, "serviceAccountName"), p->service_account,
                    sizeof(p->service_account), 1, "spec.serviceAccountName", err, err_len);
    }
    if (!rc) {
        rc = pull_secrets(json_object_get(spec, "imagePullSecrets"), &p->pull_secrets,
                          &p->npull_secrets, "spec.imagePullSecrets", err, err_len);
    }
    if (!rc) {
        rc = labels_text(obj, &p->labels, err, err_len);
    }
    if (rc) {
        rsre_obs_pod_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int rsre_obs_service_account_decode(const json_t *obj, struct rsre_obs_service_account **out,
                                    char *err, size_t err_len) {
    *out = NULL;
    if (!json_is_object(obj)) {
        return fail(err, err_len, RSRE_EINVALID, "object: expected an object");
    }
    struct rsre_obs_service_account *sa = calloc(1, sizeof(*sa));
    if (!sa) {
        return -ENOMEM;
    }
    int rc = pull_secrets(json_object_get(obj, "imagePullSecrets"), &sa->pull_secrets,
                          &sa->npull_secrets, "imagePullSecrets", err, err_len);
    if (rc) {
        rsre_obs_service_account_free(sa);
        return rc;
    }
    *out = sa;
    return 0;
}

void rsre_obs_service_account_free(struct rsre_obs_service_account *sa) {
    if (sa) {
        free(sa->pull_secrets);
        free(sa);
    }
}

/* ---- ingresses ---------------------------------------------------------------------------- */

static int add_backend(struct rsre_obs_ingress *in, const json_t *backend, const char *host,
                       const char *path, char *err, size_t err_len) {
    if (!backend || json_is_null(backend)) {
        return 0;
    }
    if (!json_is_object(backend)) {
        return fail(err, err_len, RSRE_EINVALID, "backend: expected an object");
    }
    const json_t *svc = json_object_get(backend, "service");
    if (!svc || json_is_null(svc)) {
        return 0; /* a resource backend: not a Service */
    }
    if (in->nbackends >= RSRE_OBS_MAX_REFS) {
        return fail(err, err_len, RSRE_ELIMIT, "spec.rules: more than %d backends",
                    RSRE_OBS_MAX_REFS);
    }
    struct rsre_obs_ingress_backend *b = &in->backends[in->nbackends];
    int rc = json_is_object(svc)
                 ? str_at(json_object_get(svc, "name"), b->service, sizeof(b->service), 1,
                          "backend.service.name", err, err_len)
                 : fail(err, err_len, RSRE_EINVALID, "backend.service: expected an object");
    if (rc) {
        return rc;
    }
    snprintf(b->host, sizeof(b->host), "%s", host);
    snprintf(b->path, sizeof(b->path), "%s", path);
    if (b->service[0]) {
        in->nbackends++;
    }
    return 0;
}

int rsre_obs_ingress_decode(const json_t *obj, struct rsre_obs_ingress **out, char *err,
                            size_t err_len) {
    *out = NULL;
    if (!json_is_object(obj)) {
        return fail(err, err_len, RSRE_EINVALID, "object: expected an object");
    }
    struct rsre_obs_ingress *in = calloc(1, sizeof(*in));
    if (in) {
        in->backends = calloc(RSRE_OBS_MAX_REFS, sizeof(*in->backends));
    }
    if (!in || !in->backends) {
        rsre_obs_ingress_free(in);
        return -ENOMEM;
    }
    const json_t *spec = json_object_get(obj, "spec");
    int rc = spec && !json_is_object(spec) && !json_is_null(spec)
                 ? fail(err, err_len, RSRE_EINVALID, "spec: expected an object")
                 : add_backend(in, json_object_get(spec, "defaultBackend"), "", "", err, err_len);
    const json_t *rules =
        rc ? NULL : arr_at(json_object_get(spec, "rules"), 256, "spec.rules", &rc, err, err_len);
    size_t i;
    const json_t *r;
    json_array_foreach(rules, i, r) {
        if (!json_is_object(r)) {
            rc = fail(err, err_len, RSRE_EINVALID, "spec.rules[%zu]: expected an object", i);
            break;
        }
        char host[RSRE_KUBE_NAME_LEN];
        if ((rc = str_at(json_object_get(r, "host"), host, sizeof(host), 0, "spec.rules.host", err,
                         err_len))) {
            break;
        }
        const json_t *paths =
            arr_at(at(r, "http", "paths", NULL), 256, "spec.rules.http.paths", &rc, err, err_len);
        size_t j;
        const json_t *p;
        json_array_foreach(paths, j, p) {
            char path[RSRE_KUBE_REASON_LEN];
            if (!json_is_object(p)) {
                rc = fail(err, err_len, RSRE_EINVALID, "spec.rules.http.paths[%zu]", j);
            }
            if (rc ||
                (rc = str_at(json_object_get(p, "path"), path, sizeof(path), 0, "path", err,
                             err_len)) ||
                (rc = add_backend(in, json_object_get(p, "backend"), host, path, err, err_len))) {
                break;
            }
        }
        if (rc) {
            break;
        }
    }
    if (rc) {
        rsre_obs_ingress_free(in);
        return rc;
    }
    *out = in;
    return 0;
}

void rsre_obs_ingress_free(struct rsre_obs_ingress *in) {
    if (in) {
        free(in->backends);
        free(in);
    }
}

/* ---- Helm release Secrets ----------------------------------------------------------------- */

int rsre_obs_helm_secret_decode(const json_t *obj, struct rsre_obs_helm_secret **out, char *err,
                                size_t err_len) {
    *out = NULL;
    if (!json_is_object(obj)) {
        return fail(err, err_len, RSRE_EINVALID, "object: expected an object");
    }
    const json_t *type = json_object_get(obj, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "helm.sh/release.v1") != 0) {
        return fail(err, err_len, RSRE_EINVALID, "type: not helm.sh/release.v1");
    }
    struct rsre_obs_helm_secret *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    const json_t *labels = at(obj, "metadata", "labels", NULL);
    char version[32];
    int rc;
    if (!json_is_object(labels)) {
        rc = fail(err, err_len, RSRE_EINVALID, "metadata.labels: expected an object");
    } else if (!(rc = str_at(json_object_get(labels, "name"), s->name, sizeof(s->name), 1,
                             "metadata.labels.name", err, err_len)) &&
               !(rc = str_at(json_object_get(labels, "version"), version, sizeof(version), 1,
                             "metadata.labels.version", err, err_len)) &&
               !(rc = str_at(json_object_get(labels, "status"), s->status, sizeof(s->status), 1,
                             "metadata.labels.status", err, err_len)) &&
               !(rc = str_at(at(obj, "metadata", "namespace", NULL), s->ns, sizeof(s->ns), 1,
                             "metadata.namespace", err, err_len))) {
        char *end = NULL;
        long long v = version[0] ? strtoll(version, &end, 10) : 0;
        if (!s->name[0] || !end || *end || v < 1) {
            rc = fail(err, err_len, RSRE_EINVALID,
                      "metadata.labels: name and a positive version are required");
        } else {
            s->version = v;
        }
    }
    if (rc) {
        free(s);
        return rc;
    }
    const json_t *data = at(obj, "data", "release", NULL);
    if (strcmp(s->status, "superseded") == 0) {
        /* Helm marks every revision but the current one superseded: never the latest, so
         * never compared; not decoding it saves the memory of up to ten revisions each. */
        snprintf(s->error, sizeof(s->error), "superseded revision: not decoded");
    } else if (!json_is_string(data)) {
        snprintf(s->error, sizeof(s->error), "data.release: missing or not a string");
    } else {
        int drc = rsre_helm_release_decode(json_string_value(data), json_string_length(data), 0,
                                           &s->release, s->error, sizeof(s->error));
        if (drc == -ENOMEM) {
            free(s);
            return -ENOMEM;
        }
    }
    *out = s;
    return 0;
}

void rsre_obs_helm_secret_free(struct rsre_obs_helm_secret *s) {
    if (s) {
        rsre_helm_release_free(s->release);
        free(s);
    }
}
