#ifndef RSRE_HELM_RELEASE_H
#define RSRE_HELM_RELEASE_H

/*
 * Decoding of Helm 3 release records as Helm's Secret storage driver writes them.
 *
 * Helm (pkg/storage/driver) stores each revision of a release in a Secret of type
 * `helm.sh/release.v1`, labelled owner=helm, name, status, version. Its data.release holds the
 * release (pkg/release.Release as JSON) gzip-compressed and base64-encoded by Helm; the API
 * server base64-encodes Secret data once more. So the text a client reads in data.release is
 *
 *     base64( base64( gzip( JSON ) ) )
 *
 * and older Helm versions wrote the JSON base64-encoded without gzip (no 1f 8b magic after
 * Helm's own base64): both are accepted.
 *
 * Everything here is pure (no I/O, no global state) and bounded: the decompressed JSON may not
 * exceed `max_json` bytes (a gzip bomb stops at the bound with RSRE_ELIMIT, having allocated
 * at most the bound), the manifest yields at most RSRE_HELM_MAX_IMAGES images from at most
 * RSRE_HELM_MAX_DOCS YAML documents.
 *
 * Errors: RSRE_EPARSE (bad base64, bad or truncated gzip, JSON or YAML that does not parse),
 * RSRE_EINVALID (well-formed but not a release: missing name, wrong types), RSRE_ELIMIT (a
 * bound), -ENOMEM; err names the step ("base64 (Secret data): invalid character at 12").
 */

#include <stddef.h>
#include <stdint.h>

#include "common/kube_json.h"

#define RSRE_HELM_DEFAULT_MAX_JSON (8u << 20) /* decompressed release JSON */
#define RSRE_HELM_MAX_IMAGES 128              /* container images taken from the manifest */
#define RSRE_HELM_MAX_DOCS 2048               /* YAML documents in the manifest */
#define RSRE_HELM_STATUS_LEN 32

/* One container image the release's manifest asks for. */
struct rsre_helm_image {
    char kind[RSRE_KUBE_KIND_LEN];     /* the workload: "Deployment", "StatefulSet", ... */
    char workload[RSRE_KUBE_NAME_LEN]; /* its metadata.name */
    char container[RSRE_KUBE_NS_LEN];
    char *image; /* owned; at most RSRE_KUBE_IMAGE_MAX - 1 bytes */
};

/* The parts of a release this project reads. */
struct rsre_helm_release {
    char name[RSRE_KUBE_NAME_LEN];
    char ns[RSRE_KUBE_NS_LEN];
    int64_t version;                        /* revision, >= 1 */
    char status[RSRE_HELM_STATUS_LEN];      /* info.status: "deployed", "pending-upgrade", ... */
    char description[RSRE_KUBE_REASON_LEN]; /* info.description (truncated) */
    char chart[RSRE_KUBE_NAME_LEN];         /* chart.metadata.name */
    char chart_version[RSRE_KUBE_LABEL_VALUE_LEN];
    struct rsre_helm_image *images; /* from the manifest, in document order (sized to
                                       nimages: about 400 bytes + the reference each) */
    size_t nimages;
    int images_truncated; /* more than RSRE_HELM_MAX_IMAGES */
};

/*
 * Standard base64 (RFC 4648 section 4, '=' padding required, no whitespace) of `len` bytes into
 * a new buffer (*out, NUL-terminated for convenience, *out_len bytes of data; free()). Input
 * longer than 4/3 * max_out is refused with RSRE_ELIMIT before anything is allocated.
 */
int rsre_helm_base64_decode(const char *in, size_t len, size_t max_out, unsigned char **out,
                            size_t *out_len);

/*
 * Inflates a gzip member (RFC 1952; magic 1f 8b required) into a new buffer of at most
 * `max_out` bytes (*out NUL-terminated; free()). RSRE_ELIMIT as soon as the output would pass
 * the bound; RSRE_EPARSE for a bad header, corrupt data, a bad CRC/length trailer, or input
 * that ends early (truncated).
 */
int rsre_helm_gunzip(const unsigned char *in, size_t len, size_t max_out, unsigned char **out,
                     size_t *out_len);

/*
 * Decodes a release from the text of the Secret's data.release as the API returns it
 * (double base64; see above). max_json 0 = RSRE_HELM_DEFAULT_MAX_JSON. On success *out is set
 * (release with rsre_helm_release_free).
 */
int rsre_helm_release_decode(const char *data_release, size_t len, size_t max_json,
                             struct rsre_helm_release **out, char *err, size_t err_len);

/* Decodes a release from its JSON text (the innermost layer). */
int rsre_helm_release_from_json(const char *json, size_t len, struct rsre_helm_release **out,
                                char *err, size_t err_len);

/*
 * Collects the container images of the workloads in a rendered manifest (YAML documents:
 * Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod: spec(.template).spec; CronJob:
 * spec.jobTemplate.spec.template.spec; containers and initContainers) into r->images.
 * Documents that are not YAML mappings (comments only, empty) are skipped.
 */
int rsre_helm_manifest_images(const char *manifest, size_t len, struct rsre_helm_release *r,
                              char *err, size_t err_len);

void rsre_helm_release_free(struct rsre_helm_release *r);

/* Release states Helm leaves a release in when an operation did not complete: "failed",
 * "pending-install", "pending-upgrade", "pending-rollback". */
int rsre_helm_status_unhealthy(const char *status);

#endif
