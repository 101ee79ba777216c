/* Helm 3 release decoding: base64 -> base64 -> gzip -> JSON -> manifest images. */
#include "observe/helm_release.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <zlib.h>

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

/* ---- base64 ------------------------------------------------------------------------------- */

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int rsre_helm_base64_decode(const char *in, size_t len, size_t max_out, unsigned char **out,
                            size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0) {
        return RSRE_EPARSE;
    }
    if (len / 4 > max_out / 3 + 1) {
        return RSRE_ELIMIT;
    }
    unsigned char *o = malloc(len / 4 * 3 + 1);
    if (!o) {
        return -ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64_val(c)) < 0) {
                free(o);
                return RSRE_EPARSE; /* bad character, or data after padding */
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        o[n++] = (unsigned char)(w >> 16);
        if (pad < 2) {
            o[n++] = (unsigned char)(w >> 8);
        }
        if (pad < 1) {
            o[n++] = (unsigned char)w;
        }
    }
    if (n > max_out) {
        free(o);
        return RSRE_ELIMIT;
    }
    o[n] = '\0';
    *out = o;
    *out_len = n;
    return 0;
}

/* ---- gzip --------------------------------------------------------------------------------- */

int rsre_helm_gunzip(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
                     size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (len < 18 || in[0] != 0x1f || in[1] != 0x8b) {
        return RSRE_EPARSE; /* not gzip (10-byte header + 8-byte trailer at least) */
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) { /* gzip wrapper only */
        return -ENOMEM;
    }
    size_t cap = len * 4 < 65536 ? 65536 : len * 4;
    if (cap > max_out) {
        cap = max_out;
    }
    unsigned char *buf = malloc(cap + 1);
    if (!buf) {
        inflateEnd(&zs);
        return -ENOMEM;
    }
    size_t have = 0;
    size_t in_left = len;
    zs.next_in = (unsigned char *)in;
    int rc = 0;
    for (;;) {
        if (have == cap) {
            if (cap >= max_out) {
                /* Full at the bound: anything more is over it. */
                unsigned char probe;
                zs.next_out = &probe;
                zs.avail_out = 1;
                int zr = inflate(&zs, Z_NO_FLUSH);
                if (zr == Z_STREAM_END && zs.avail_out == 1) {
                    break;
                }
                rc = zs.avail_out == 0 ? RSRE_ELIMIT : RSRE_EPARSE;
                break;
            }
            size_t ncap = cap * 2 > max_out ? max_out : cap * 2;
            unsigned char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t room = cap - have;
        zs.next_out = buf + have;
        zs.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        if (zs.avail_in == 0) {
            size_t take = in_left > UINT32_MAX ? UINT32_MAX : in_left;
            zs.avail_in = (uInt)take;
            in_left -= take;
        }
        uInt before = zs.avail_out;
        int zr = inflate(&zs, Z_NO_FLUSH);
        have += before - zs.avail_out;
        if (zr == Z_STREAM_END) {
            break;
        }
        if (zr == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) {
            rc = RSRE_EPARSE; /* truncated */
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zr == Z_MEM_ERROR ? -ENOMEM : RSRE_EPARSE;
            break;
        }
        if (zr == Z_OK && zs.avail_in == 0 && in_left == 0 && zs.avail_out != 0) {
            rc = RSRE_EPARSE; /* input ended without the end of the stream */
            break;
        }
    }
    inflateEnd(&zs);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[have] = '\0';
    *out = buf;
    *out_len = have;
    return 0;
}

/* ---- release JSON ------------------------------------------------------------------------- */

/* Copies a string field: absent/null leaves "", a non-string is an error, control characters
 * are refused for identifiers, free text is truncated. */
static int copy_str(const json_t *obj, const char *key, char *dst, size_t cap, int ident,
                    const char *path, char *err, size_t err_len) {
    const json_t *v = json_object_get(obj, key);
    dst[0] = '\0';
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(err, err_len, RSRE_EINVALID, "%s: expected a string", path);
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (ident) {
        if (n >= cap) {
            return fail(err, err_len, RSRE_EINVALID, "%s: longer than %ld bytes", path,
                        (long)cap - 1);
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '/') {
                return fail(err, err_len, RSRE_EINVALID, "%s: invalid character", path);
            }
        }
    } else if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--; /* keep whole UTF-8 characters */
        }
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int rsre_helm_release_from_json(const char *text, size_t len, struct rsre_helm_release **out,
                                char *err, size_t err_len) {
    *out = NULL;
    json_t *root = NULL;
    int rc = rsre_kube_json_load(text, len, &root, err, err_len);
    if (rc) {
        return rc;
    }
    struct rsre_helm_release *r = calloc(1, sizeof(*r));
    if (!r) {
        json_decref(root);
        return -ENOMEM;
    }
    const json_t *info = json_object_get(root, "info");
    const json_t *chart = json_object_get(root, "chart");
    const json_t *md = json_is_object(chart) ? json_object_get(chart, "metadata") : NULL;
    const json_t *ver = json_object_get(root, "version");
    const json_t *man = json_object_get(root, "manifest");
    if (!json_is_object(root)) {
        rc = fail(err, err_len, RSRE_EINVALID, "release: expected an object");
    } else if ((info && !json_is_object(info)) ||
               (chart && !json_is_object(chart) && !json_is_null(chart))) {
        rc = fail(err, err_len, RSRE_EINVALID, "release: info/chart: expected objects");
    } else if (!json_is_integer(ver) || json_integer_value(ver) < 1) {
        rc = fail(err, err_len, RSRE_EINVALID, "version: expected an integer >= 1");
    } else if (man && !json_is_string(man) && !json_is_null(man)) {
        rc = fail(err, err_len, RSRE_EINVALID, "manifest: expected a string");
    } else if (!(rc = copy_str(root, "name", r->name, sizeof(r->name), 1, "name", err, err_len)) &&
               !(rc = copy_str(root, "namespace", r->ns, sizeof(r->ns), 1, "namespace", err,
                               err_len)) &&
               !(rc = copy_str(info, "status", r->status, sizeof(r->status), 1, "info.status", err,
                               err_len)) &&
               !(rc = copy_str(info, "description", r->description, sizeof(r->description), 0,
                               "info.description", err, err_len)) &&
               !(rc = md && !json_is_object(md)
                          ? fail(err, err_len, RSRE_EINVALID, "chart.metadata: expected an object")
                          : 0) &&
               !(rc = copy_str(md, "name", r->chart, sizeof(r->chart), 0, "chart.metadata.name",
                               err, err_len)) &&
               !(rc = copy_str(md, "version", r->chart_version, sizeof(r->chart_version), 0,
                               "chart.metadata.version", err, err_len))) {
        if (!r->name[0]) {
            rc = fail(err, err_len, RSRE_EINVALID, "name: required");
        } else {
            r->version = (int64_t)json_integer_value(ver);
            if (json_is_string(man)) {
                rc = rsre_helm_manifest_images(json_string_value(man), json_string_length(man), r,
                                               err, err_len);
            }
        }
    }
    json_decref(root);
    if (rc) {
        rsre_helm_release_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int rsre_helm_release_decode(const char *data, size_t len, size_t max_json,
                             struct rsre_helm_release **out, char *err, size_t err_len) {
    *out = NULL;
    if (!max_json) {
        max_json = RSRE_HELM_DEFAULT_MAX_JSON;
    }
    /* Helm's base64 of gzip is at most ~ the JSON size plus overhead: bound both layers. */
    size_t max_outer = max_json / 3 * 4 + 1024;
    unsigned char *helm_text = NULL, *packed = NULL, *json = NULL;
    size_t helm_len = 0, packed_len = 0, json_len = 0;
    int rc = rsre_helm_base64_decode(data, len, max_outer, &helm_text, &helm_len);
    if (rc) {
        return fail(err, err_len, rc, "base64 (Secret data): %s", rsre_strerror(rc));
    }
    rc =
        rsre_helm_base64_decode((const char *)helm_text, helm_len, max_outer, &packed, &packed_len);
    free(helm_text);
    if (rc) {
        return fail(err, err_len, rc, "base64 (Helm's encoding): %s", rsre_strerror(rc));
    }
    if (packed_len >= 2 && packed[0] == 0x1f && packed[1] == 0x8b) {
        rc = rsre_helm_gunzip(packed, packed_len, max_json, &json, &json_len);
        free(packed);
        if (rc) {
            return fail(err, err_len, rc, "gzip: %s (bound %ld bytes)", rsre_strerror(rc),
                        (long)max_json);
        }
    } else {
        /* Helm before 3.0's gzip (and some tools) store the JSON without compression. */
        if (packed_len > max_json) {
            free(packed);
            return fail(err, err_len, RSRE_ELIMIT, "release JSON: above %ld bytes", (long)max_json);
        }
        json = packed;
        json_len = packed_len;
    }
    rc = rsre_helm_release_from_json((const char *)json, json_len, out, err, err_len);
    free(json);
    return rc;
}

static void free_images(struct rsre_helm_release *r) {
    for (size_t i = 0; i < r->nimages; i++) {
        free(r->images[i].image);
    }
    free(r->images);
    r->images = NULL;
    r->nimages = 0;
}

void rsre_helm_release_free(struct rsre_helm_release *r) {
    if (r) {
        free_images(r);
        free(r);
    }
}

int rsre_helm_status_unhealthy(const char *status) {
    static const char *const bad[] = {"failed", "pending-install", "pending-upgrade",
                                      "pending-rollback"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(status, bad[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- manifest ----------------------------------------------------------------------------- */

static yaml_node_t *ymap_get(yaml_document_t *d, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
            memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0) {
            return yaml_document_get_node(d, p->value);
        }
    }
    return NULL;
}

static void yscalar(yaml_node_t *n, char *dst, size_t cap) {
    dst[0] = '\0';
    if (n && n->type == YAML_SCALAR_NODE) {
        size_t len = n->data.scalar.length < cap ? n->data.scalar.length : cap - 1;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = n->data.scalar.value[i];
            dst[i] = (char)(c < 0x20 || c == 0x7f ? '?' : c);
        }
        dst[len] = '\0';
    }
}

/* Workload kinds and where their pod spec is. */
static const struct {
    const char *kind;
    const char *path[4];
} pod_spec_paths[] = {
    {"Deployment", {"spec", "template", "spec", NULL}},
    {"StatefulSet", {"spec", "template", "spec", NULL}},
    {"DaemonSet", {"spec", "template", "spec", NULL}},
    {"ReplicaSet", {"spec", "template", "spec", NULL}},
    {"Job", {"spec", "template", "spec", NULL}},
    {"CronJob", {"spec", "jobTemplate", "spec", "template"}}, /* then .spec */
    {"Pod", {"spec", NULL, NULL, NULL}},
};

static int add_images(yaml_document_t *d, yaml_node_t *pod_spec, const char *kind,
                      const char *workload, struct rsre_helm_release *r) {
    static const char *const lists[] = {"initContainers", "containers"};
    for (size_t l = 0; l < 2; l++) {
        yaml_node_t *seq = ymap_get(d, pod_spec, lists[l]);
        if (!seq || seq->type != YAML_SEQUENCE_NODE) {
            continue;
        }
        for (yaml_node_item_t *it = seq->data.sequence.items.start;
             it < seq->data.sequence.items.top; it++) {
            yaml_node_t *c = yaml_document_get_node(d, *it);
            yaml_node_t *img = ymap_get(d, c, "image");
            if (!img || img->type != YAML_SCALAR_NODE) {
                continue;
            }
            if (r->nimages >= RSRE_HELM_MAX_IMAGES) {
                r->images_truncated = 1;
                return 0;
            }
            struct rsre_helm_image *im = &r->images[r->nimages++];
            snprintf(im->kind, sizeof(im->kind), "%s", kind);
            snprintf(im->workload, sizeof(im->workload), "%s", workload);
            yscalar(ymap_get(d, c, "name"), im->container, sizeof(im->container));
            char ref[RSRE_KUBE_IMAGE_MAX];
            yscalar(img, ref, sizeof(ref));
            if (!(im->image = strdup(ref))) {
                r->nimages--;
                return -ENOMEM;
            }
        }
    }
    return 0;
}

int rsre_helm_manifest_images(const char *manifest, size_t len, struct rsre_helm_release *r,
                              char *err, size_t err_len) {
    free_images(r);
    r->images_truncated = 0;
    r->images = calloc(RSRE_HELM_MAX_IMAGES, sizeof(*r->images));
    if (!r->images) {
        return -ENOMEM;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)manifest, len);
    int rc = 0;
    for (size_t ndocs = 0;; ndocs++) {
        yaml_document_t d;
        if (!yaml_parser_load(&p, &d)) {
            rc = fail(err, err_len, RSRE_EPARSE, "manifest: YAML error at line %ld",
                      (long)p.problem_mark.line + 1);
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&d);
        if (!root) {
            yaml_document_delete(&d); /* end of the stream */
            break;
        }
        if (ndocs >= RSRE_HELM_MAX_DOCS) {
            yaml_document_delete(&d);
            rc = fail(err, err_len, RSRE_ELIMIT, "manifest: more than %ld documents",
                      (long)RSRE_HELM_MAX_DOCS);
            break;
        }
        char kind[RSRE_KUBE_KIND_LEN], name[RSRE_KUBE_NAME_LEN];
        yscalar(ymap_get(&d, root, "kind"), kind, sizeof(kind));
        yscalar(ymap_get(&d, ymap_get(&d, root, "metadata"), "name"), name, sizeof(name));
        for (size_t k = 0; k < sizeof(pod_spec_paths) / sizeof(pod_spec_paths[0]); k++) {
            if (strcmp(kind, pod_spec_paths[k].kind) != 0) {
                continue;
            }
            yaml_node_t *n = root;
            for (size_t i = 0; i < 4 && pod_spec_paths[k].path[i]; i++) {
                n = ymap_get(&d, n, pod_spec_paths[k].path[i]);
            }
            if (strcmp(kind, "CronJob") == 0) {
                n = ymap_get(&d, n, "spec");
            }
            rc = add_images(&d, n, kind, name, r);
        }
        yaml_document_delete(&d);
        if (rc) {
            break;
        }
    }
    yaml_parser_delete(&p);
    if (!rc && r->nimages < RSRE_HELM_MAX_IMAGES) {
        /* Keep only what is used (the caller may hold many releases). */
        struct rsre_helm_image *fit =
            r->nimages ? realloc(r->images, r->nimages * sizeof(*fit)) : NULL;
        if (fit || !r->nimages) {
            if (!r->nimages) {
                free(r->images);
            }
            r->images = fit;
        }
    }
    return rc;
}
