/*
 * Store records as JSON for the admin API: every field, enums by name, timestamps in Unix ms,
 * hashes in hex, raw evidence as text when it is UTF-8 (else only its size, "raw_bytes").
 */
#include <stdio.h>
#include <string.h>

#include "http/api_internal.h"

#define NAMES(x) (sizeof(x) / sizeof((x)[0]))

static const char *const lifecycle_names[] = {"unspecified", "observed", "triaged",    "contained",
                                              "recovering",  "resolved", "suppressed", "escalated"};
static const char *const severity_names[] = {"unspecified", "info", "warning", "critical"};
static const char *const confidence_names[] = {"unspecified", "low", "medium", "high"};
static const char *const environment_names[] = {"unspecified", "demo", "staging", "production"};
static const char *const approval_names[] = {"unspecified", "not_required", "pending",  "approved",
                                             "denied",      "expired",      "cancelled"};
static const char *const decision_names[] = {"unspecified", "auto",           "approval_required",
                                             "human_only",  "recommend_only", "refused"};
static const char *const action_state_names[] = {
    "unspecified", "planned", "awaiting_approval", "approved", "running",  "succeeded",
    "failed",      "denied",  "expired",           "skipped",  "cancelled"};
static const char *const vote_names[] = {"unspecified", "approve", "deny"};

static const char *name_of(const char *const *names, size_t n, int v) {
    return v >= 0 && (size_t)v < n ? names[v] : "unknown";
}

static int parse_of(const char *const *names, size_t n, const char *s) {
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(names[i], s)) {
            return (int)i;
        }
    }
    return -1;
}

const char *rsre__lifecycle_name(int v) {
    return name_of(lifecycle_names, NAMES(lifecycle_names), v);
}
int rsre__lifecycle_parse(const char *s) {
    return parse_of(lifecycle_names, NAMES(lifecycle_names), s);
}
const char *rsre__approval_state_name(int v) {
    return name_of(approval_names, NAMES(approval_names), v);
}
int rsre__approval_state_parse(const char *s) {
    return parse_of(approval_names, NAMES(approval_names), s);
}
const char *rsre__action_state_name(int v) {
    return name_of(action_state_names, NAMES(action_state_names), v);
}
int rsre__action_state_parse(const char *s) {
    return parse_of(action_state_names, NAMES(action_state_names), s);
}

void rsre__hex(const uint8_t *p, size_t n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* A JSON string of `s` (NULL = ""); invalid UTF-8 (never expected from our writers) becomes
 * an empty string rather than a failed document. */
static json_t *str(const char *s) {
    json_t *j = json_string(s ? s : "");
    return j ? j : json_string("");
}

static json_t *strs(char **v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, str(v[i]));
    }
    return a;
}

static json_t *ms(int64_t v) {
    return json_integer((json_int_t)v);
}

json_t *rsre__json_incident(const rsre_store_incident *r) {
    json_t *scope = json_array();
    for (size_t i = 0; i < r->n_resource_scope; i++) {
        const RobotSre__Store__ResourceRef *x = r->resource_scope[i];
        json_array_append_new(scope, json_pack("{s:o, s:o, s:o, s:o}", "kind", str(x->kind),
                                               "namespace", str(x->k8s_namespace), "name",
                                               str(x->name), "node", str(x->node)));
    }
    json_t *j = json_object();
    json_object_set_new(j, "id", str(r->id));
    json_object_set_new(j, "fingerprint", str(r->fingerprint));
    json_object_set_new(j, "domain", str(r->domain));
    json_object_set_new(j, "incident_type", str(r->incident_type));
    json_object_set_new(j, "severity",
                        str(name_of(severity_names, NAMES(severity_names), r->severity)));
    json_object_set_new(j, "confidence",
                        str(name_of(confidence_names, NAMES(confidence_names), r->confidence)));
    json_object_set_new(j, "confidence_score", json_real(r->confidence_score));
    json_object_set_new(j, "state", str(rsre__lifecycle_name(r->lifecycle)));
    json_object_set_new(j, "signal_sources", strs(r->signal_sources, r->n_signal_sources));
    json_object_set_new(j, "resource_scope", scope);
    json_object_set_new(j, "environment",
                        str(name_of(environment_names, NAMES(environment_names), r->environment)));
    json_object_set_new(j, "evidence_summary", str(r->evidence_summary));
    json_object_set_new(j, "raw_evidence_refs", strs(r->raw_evidence_refs, r->n_raw_evidence_refs));
    json_object_set_new(j, "recommended_actions",
                        strs(r->recommended_actions, r->n_recommended_actions));
    json_object_set_new(j, "executed_actions", strs(r->executed_actions, r->n_executed_actions));
    json_object_set_new(j, "approval_state", str(rsre__approval_state_name(r->approval_state)));
    json_object_set_new(j, "opened_at_ms", ms(r->opened_at_ms));
    json_object_set_new(j, "updated_at_ms", ms(r->updated_at_ms));
    json_object_set_new(j, "resolved_at_ms", ms(r->resolved_at_ms));
    json_object_set_new(j, "rule_id", str(r->rule_id));
    json_object_set_new(j, "rule_version", json_integer(r->rule_version));
    json_object_set_new(j, "cluster", str(r->cluster));
    return j;
}

json_t *rsre__json_evidence(const rsre_store_evidence *r) {
    json_t *j = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id", str(r->id), "incident_id",
                          str(r->incident_id), "source", str(r->source), "kind", str(r->kind),
                          "observed_at_ms", ms(r->observed_at_ms), "summary", str(r->summary));
    if (j && r->raw.len) {
        json_t *raw = json_stringn((const char *)r->raw.data, r->raw.len);
        if (raw) {
            json_object_set_new(j, "raw", raw);
        } else {
            json_object_set_new(j, "raw_bytes", json_integer((json_int_t)r->raw.len));
        }
    }
    return j;
}

json_t *rsre__json_action(const rsre_store_action *r) {
    json_t *j = json_object();
    json_object_set_new(j, "id", str(r->id));
    json_object_set_new(j, "incident_id", str(r->incident_id));
    json_object_set_new(j, "action_id", str(r->action_id));
    json_object_set_new(j, "action_class", str(r->action_class));
    json_object_set_new(j, "target", str(r->target));
    json_object_set_new(j, "decision",
                        str(name_of(decision_names, NAMES(decision_names), r->decision)));
    json_object_set_new(j, "reasons", strs(r->reasons, r->n_reasons));
    json_object_set_new(j, "state", str(rsre__action_state_name(r->state)));
    json_object_set_new(j, "requested_by", str(r->requested_by));
    json_object_set_new(j, "dry_run", json_boolean(r->dry_run));
    json_object_set_new(j, "result", str(r->result));
    json_object_set_new(j, "bytes_freed", json_integer((json_int_t)r->bytes_freed));
    json_object_set_new(j, "objects_removed", json_integer((json_int_t)r->objects_removed));
    json_object_set_new(j, "approval_id", str(r->approval_id));
    json_object_set_new(j, "created_at_ms", ms(r->created_at_ms));
    json_object_set_new(j, "started_at_ms", ms(r->started_at_ms));
    json_object_set_new(j, "finished_at_ms", ms(r->finished_at_ms));
    return j;
}

json_t *rsre__json_approval(const rsre_store_approval *r) {
    json_t *votes = json_array();
    for (size_t i = 0; i < r->n_votes; i++) {
        const rsre_store_vote *v = r->votes[i];
        json_array_append_new(
            votes, json_pack("{s:o, s:o, s:o, s:o, s:o}", "operator", str(v->operator_), "vote",
                             str(name_of(vote_names, NAMES(vote_names), v->vote)), "channel",
                             str(v->channel), "at_ms", ms(v->at_ms), "comment", str(v->comment)));
    }
    json_t *j = json_object();
    json_object_set_new(j, "id", str(r->id));
    json_object_set_new(j, "action_id", str(r->action_id));
    json_object_set_new(j, "incident_id", str(r->incident_id));
    json_object_set_new(j, "requester", str(r->requester));
    json_object_set_new(j, "prompt", str(r->prompt));
    json_object_set_new(j, "action", str(r->action));
    json_object_set_new(j, "target", str(r->target));
    json_object_set_new(j, "why_now", str(r->why_now));
    json_object_set_new(j, "expected_impact", str(r->expected_impact));
    json_object_set_new(j, "rollback", str(r->rollback));
    json_object_set_new(j, "quorum", json_integer(r->quorum));
    json_object_set_new(j, "votes", votes);
    json_object_set_new(j, "requested_at_ms", ms(r->requested_at_ms));
    json_object_set_new(j, "expires_at_ms", ms(r->expires_at_ms));
    json_object_set_new(j, "state", str(rsre__approval_state_name(r->state)));
    json_object_set_new(j, "decided_at_ms", ms(r->decided_at_ms));
    return j;
}

json_t *rsre__json_rule_version(const rsre_store_rule *r, int with_yaml) {
    json_t *j = json_object();
    json_object_set_new(j, "id", str(r->rule_id));
    json_object_set_new(j, "version", json_integer(r->version));
    json_object_set_new(j, "author", str(r->author));
    json_object_set_new(j, "created_at_ms", ms(r->created_at_ms));
    json_object_set_new(j, "enabled",
                        json_pack("{s:b, s:b, s:b}", "demo", r->enabled_demo, "staging",
                                  r->enabled_staging, "production", r->enabled_production));
    json_object_set_new(j, "comment", str(r->comment));
    json_object_set_new(j, "cloned_from", str(r->cloned_from));
    if (with_yaml) {
        json_object_set_new(j, "yaml", str(r->yaml));
    }
    return j;
}

json_t *rsre__json_audit(const rsre_store_audit *r) {
    char prev[2 * RSRE_STORE_HASH_LEN + 1] = "", hash[2 * RSRE_STORE_HASH_LEN + 1] = "";
    if (r->prev_hash.len == RSRE_STORE_HASH_LEN) {
        rsre__hex(r->prev_hash.data, RSRE_STORE_HASH_LEN, prev);
    }
    if (r->hash.len == RSRE_STORE_HASH_LEN) {
        rsre__hex(r->hash.data, RSRE_STORE_HASH_LEN, hash);
    }
    json_t *j = json_object();
    json_object_set_new(j, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(j, "ts_ms", ms(r->ts_ms));
    json_object_set_new(j, "actor", str(r->actor));
    json_object_set_new(j, "verb", str(r->verb));
    json_object_set_new(j, "object", str(r->object));
    json_object_set_new(j, "reason", str(r->reason));
    json_object_set_new(j, "detail", str(r->detail));
    json_object_set_new(j, "prev_hash", str(prev));
    json_object_set_new(j, "hash", str(hash));
    return j;
}
