#ifndef RSRE_OBSERVE_KUBE_OBJECTS_H
#define RSRE_OBSERVE_KUBE_OBJECTS_H

/*
 * Decoders for the Kubernetes objects the aggregator's observers read beyond common/kube_json.h
 * (Node, Pod, Event): apps/v1 Deployment / StatefulSet / DaemonSet / ReplicaSet, batch/v1 Job,
 * networking.k8s.io/v1 Ingress, v1 ServiceAccount, the pod fields the pull-failure observer
 * needs (image pull secrets, service account, labels) and Helm release Secrets.
 *
 * The rules of common/kube_json.h apply: missing fields and null leave zero values; a present
 * field of the wrong JSON type is RSRE_EINVALID with the field's path in err; identifiers are
 * bounded and checked, free text truncated; lists a peer controls are bounded (more: RSRE_ELIMIT).
 * Each *_decode fits rsre_kube_decode_fn (cast) and each object is freed by the matching
 * *_free (NULL is a no-op).
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kube_json.h"
#include "observe/helm_release.h"

#define RSRE_OBS_MAX_LABELS_TEXT 4096 /* labels kept as "\nkey=value\n..." (more: truncated) */
#define RSRE_OBS_MAX_REFS 32          /* pull secret references, ingress backends (more: ELIMIT) */
#define RSRE_OBS_MAX_TEMPLATE_CONTAINERS 64

/* A container of a pod template: name and image. */
struct rsre_obs_container {
    char name[RSRE_KUBE_NS_LEN];
    char *image; /* owned; NULL when absent */
};

enum rsre_obs_workload_kind {
    RSRE_OBS_DEPLOYMENT = 0,
    RSRE_OBS_STATEFULSET,
    RSRE_OBS_DAEMONSET,
    RSRE_OBS_NWORKLOAD_KINDS
};

const char *rsre_obs_workload_kind_name(enum rsre_obs_workload_kind k); /* "Deployment", ... */

/* Deployment, StatefulSet or DaemonSet: rollout state and the template's images. */
struct rsre_obs_workload {
    struct rsre_kube_meta meta;
    enum rsre_obs_workload_kind kind;
    char *labels;                      /* "\nk=v\n..." or NULL */
    char release[RSRE_KUBE_NAME_LEN];  /* annotation meta.helm.sh/release-name */
    char release_ns[RSRE_KUBE_NS_LEN]; /* annotation meta.helm.sh/release-namespace */
    int64_t generation, observed_generation;
    int32_t replicas;      /* spec.replicas (default 1); DaemonSet: status.desiredNumberScheduled */
    int32_t updated;       /* status.updatedReplicas / updatedNumberScheduled */
    int32_t ready;         /* status.readyReplicas / numberReady */
    int32_t available;     /* status.availableReplicas / numberAvailable */
    int deadline_exceeded; /* condition Progressing=False reason ProgressDeadlineExceeded */
    char progress_message[RSRE_KUBE_REASON_LEN];
    struct rsre_obs_container *containers; /* template: init containers, then containers */
    size_t ncontainers;
    /* Kept by the observer across updates: when the rollout started lagging (0 = it is not). */
    int64_t lagging_since_ms;
};

int rsre_obs_deployment_decode(const json_t *obj, struct rsre_obs_workload **out, char *err,
                               size_t err_len);
int rsre_obs_statefulset_decode(const json_t *obj, struct rsre_obs_workload **out, char *err,
                                size_t err_len);
int rsre_obs_daemonset_decode(const json_t *obj, struct rsre_obs_workload **out, char *err,
                              size_t err_len);
void rsre_obs_workload_free(struct rsre_obs_workload *w);
/* 1 when the rollout has not reached its desired state (updated, ready or available below the
 * desired count, or the controller has not observed the latest generation). */
int rsre_obs_workload_lagging(const struct rsre_obs_workload *w);

/* ReplicaSet or Job: identity and owner (Deployment, CronJob) only. */
struct rsre_obs_owned {
    struct rsre_kube_meta meta;
};
int rsre_obs_owned_decode(const json_t *obj, struct rsre_obs_owned **out, char *err,
                          size_t err_len);
void rsre_obs_owned_free(struct rsre_obs_owned *o);

/* Pod: the common decoding plus what the pull-failure observer needs. */
struct rsre_obs_pod {
    struct rsre_kube_pod *pod;
    char service_account[RSRE_KUBE_NAME_LEN]; /* spec.serviceAccountName ("" = "default") */
    char (*pull_secrets)[RSRE_KUBE_NAME_LEN]; /* spec.imagePullSecrets[].name */
    size_t npull_secrets;
    char *labels;
};
int rsre_obs_pod_decode(const json_t *obj, struct rsre_obs_pod **out, char *err, size_t err_len);
void rsre_obs_pod_free(struct rsre_obs_pod *p);

/* ServiceAccount: its imagePullSecrets. */
struct rsre_obs_service_account {
    char (*pull_secrets)[RSRE_KUBE_NAME_LEN];
    size_t npull_secrets;
};
int rsre_obs_service_account_decode(const json_t *obj, struct rsre_obs_service_account **out,
                                    char *err, size_t err_len);
void rsre_obs_service_account_free(struct rsre_obs_service_account *sa);

/* Ingress: the services its rules and default backend send traffic to. */
struct rsre_obs_ingress_backend {
    char service[RSRE_KUBE_NAME_LEN];
    char host[RSRE_KUBE_NAME_LEN]; /* rule host ("" = any / default backend) */
    char path[RSRE_KUBE_REASON_LEN];
};
struct rsre_obs_ingress {
    struct rsre_obs_ingress_backend *backends;
    size_t nbackends;
};
int rsre_obs_ingress_decode(const json_t *obj, struct rsre_obs_ingress **out, char *err,
                            size_t err_len);
void rsre_obs_ingress_free(struct rsre_obs_ingress *in);

/*
 * A Helm release Secret (type helm.sh/release.v1): the labels Helm sets (name, version,
 * status, owner) and the decoded release. A release that does not decode is kept with
 * `release` NULL and the reason in `error` (the labels still tell its status), so one bad
 * Secret never hides the others. A Secret of another type, or without name/version labels, is
 * RSRE_EINVALID. Revisions labelled `superseded` (every one but the current, as Helm keeps
 * them) are not decoded.
 */
struct rsre_obs_helm_secret {
    char name[RSRE_KUBE_NAME_LEN]; /* label name */
    char ns[RSRE_KUBE_NS_LEN];
    int64_t version;                   /* label version */
    char status[RSRE_HELM_STATUS_LEN]; /* label status */
    struct rsre_helm_release *release; /* NULL when it did not decode */
    char error[RSRE_KUBE_ERR_LEN];
};
int rsre_obs_helm_secret_decode(const json_t *obj, struct rsre_obs_helm_secret **out, char *err,
                                size_t err_len);
void rsre_obs_helm_secret_free(struct rsre_obs_helm_secret *s);

/* 1 when labels text (as kept above) has key=value ("key=value" given whole). */
int rsre_obs_labels_have(const char *labels, const char *key_value);

#endif
