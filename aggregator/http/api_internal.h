#ifndef RSRE_API_INTERNAL_H
#define RSRE_API_INTERNAL_H

/* Private declarations shared by the admin API's files (api.c, auth.c, routes.c, rules_api.c,
 * records_json.c). Not for other modules. */

#include <jansson.h>
#include <stdint.h>

#include "http/api.h"

#define API_MAX_PARAMS 2 /* path parameters per route */
#define API_MAX_QUERY 4  /* query parameters per request */
#define API_QUERY_VALUE_MAX 128
#define API_TOKEN_MAX 512 /* bytes of a bearer token */
#define API_TOKENS_MAX 1024
#define API_OPERATOR_MAX 64 /* bytes of an operator id */
#define API_LIST_DEFAULT 500
#define API_LIST_MAX 5000
#define API_AUDIT_DEFAULT 100
#define API_AUDIT_MAX 1000

/* ---- tokens (auth.c) ------------------------------------------------------------------------- */

struct api_token {
    unsigned char sha256[32];
    char operator_id[API_OPERATOR_MAX + 1];
    enum rsre_api_role role;
};

struct api_tokens {
    struct api_token *v;
    size_t n;
};

/* Loads a token file (docs/api.md) into *out (free with rsre__api_tokens_free). Returns 0 or
 * RSRE_EPARSE / RSRE_EINVALID / RSRE_ELIMIT / -errno with the reason in why[cap]. */
int rsre__api_tokens_load(const char *path, struct api_tokens *out, char *why, size_t cap);
void rsre__api_tokens_free(struct api_tokens *t);

enum api_auth_result {
    API_AUTH_OK,
    API_AUTH_MISSING,   /* no Authorization header */
    API_AUTH_MALFORMED, /* not "Bearer <token>", several headers, token too long */
    API_AUTH_UNKNOWN,   /* no token with that hash */
};

/* Checks an Authorization header value (`value` may be NULL when absent; `count` headers
 * present). On success *who points into `t`. The hash comparison takes the same time
 * whichever entry matches. */
enum api_auth_result rsre__api_authenticate(const struct api_tokens *t, const char *value,
                                            size_t len, size_t count, const struct api_token **who);
const char *rsre__api_auth_reason(enum api_auth_result r);

/* ---- requests -------------------------------------------------------------------------------- */

struct api_query {
    char key[32];
    char value[API_QUERY_VALUE_MAX + 1];
};

struct api_call {
    struct rsre_api *api;
    const struct api_route *route;
    const struct api_token *who; /* NULL on unauthenticated routes */
    char params[API_MAX_PARAMS][RSRE_STORE_ID_MAX + 1];
    struct api_query query[API_MAX_QUERY];
    size_t nquery;
    const char *body; /* the request body (not NUL-terminated), NULL when none */
    size_t body_len;
    json_t *json; /* the body parsed (routes with BODY_JSON): an object, {} when empty */
    /* The response: JSON document (owned) or text (owned, malloc'd). */
    int status;
    json_t *out;
    char *text;
    size_t text_len;
    const char *content_type;
    void *h2o_req; /* the h2o_req_t, for rsre__api_header */
};

typedef int (*api_handler_fn)(struct api_call *c);

enum api_body { BODY_NONE, BODY_JSON, BODY_TEXT };

struct api_route {
    const char *method;
    const char *pattern; /* literal segments and "{id}" parameters; the metrics route label */
    enum rsre_api_role min_role;
    enum api_body body;
    const char *const *query;  /* allowed query keys, NULL-terminated; NULL = none */
    const char *const *fields; /* allowed JSON body fields (BODY_JSON), NULL-terminated */
    api_handler_fn fn;
    unsigned metrics_route : 1; /* needs a viewer token when metrics_need_token */
};

extern const struct api_route rsre__api_routes[];
extern const size_t rsre__api_nroutes;

/* Copies the first request header `lname` (lower case) into out[cap]: returns its length, or -1
 * when absent, longer than cap - 1, or holding a NUL byte. */
long rsre__api_header(const struct api_call *c, const char *lname, char *out, size_t cap);

/* The value of query parameter `key`, or NULL. */
const char *rsre__api_query(const struct api_call *c, const char *key);

/* Sets an error response {"error": msg, "field": field|null} and returns `status`. */
int rsre__api_fail(struct api_call *c, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets a JSON response (steals `doc`; NULL = 500 out of memory) and returns `status`. */
int rsre__api_reply(struct api_call *c, int status, json_t *doc);
/* Maps a store error to a response: 404 for RSRE_ENOTFOUND, 503 -EDEADLK, 500 otherwise. */
int rsre__api_store_fail(struct api_call *c, int rc, const char *what);

/* Parses a decimal in [min, max] from query `key` (absent: *out = def). 400 on error. */
int rsre__api_query_u64(struct api_call *c, const char *key, uint64_t min, uint64_t max,
                        uint64_t def, uint64_t *out);

int64_t rsre__api_now_ms(void);

/* ---- the server (api.c) ---------------------------------------------------------------------- */

struct rsre_api;
rsre_store *rsre__api_store(struct rsre_api *api);
const struct rsre_taxonomy *rsre__api_taxonomy(struct rsre_api *api);
const struct rsre_api_callbacks *rsre__api_callbacks(struct rsre_api *api);
int rsre__api_metrics_need_token(struct rsre_api *api);
/* Refreshes scrape-time gauges (incidents by type, connections). */
void rsre__api_refresh_gauges(struct rsre_api *api);

/* ---- records as JSON (records_json.c) -------------------------------------------------------- */

json_t *rsre__json_incident(const rsre_store_incident *r);
json_t *rsre__json_evidence(const rsre_store_evidence *r);
json_t *rsre__json_action(const rsre_store_action *r);
json_t *rsre__json_approval(const rsre_store_approval *r);
json_t *rsre__json_rule_version(const rsre_store_rule *r, int with_yaml);
json_t *rsre__json_audit(const rsre_store_audit *r);

/* Enum names <-> values of the store's enums; parsers return -1 for unknown names. */
const char *rsre__lifecycle_name(int v);
int rsre__lifecycle_parse(const char *s);
const char *rsre__approval_state_name(int v);
int rsre__approval_state_parse(const char *s);
const char *rsre__action_state_name(int v);
int rsre__action_state_parse(const char *s);

/* Lowercase hex of `n` bytes into out (2n+1 bytes). */
void rsre__hex(const uint8_t *p, size_t n, char *out);

/* ---- handlers -------------------------------------------------------------------------------- */

int rsre__h_healthz(struct api_call *c);
int rsre__h_readyz(struct api_call *c);
int rsre__h_metrics(struct api_call *c);
int rsre__h_incidents(struct api_call *c);
int rsre__h_incident(struct api_call *c);
int rsre__h_approvals(struct api_call *c);
int rsre__h_approval(struct api_call *c);
int rsre__h_approve(struct api_call *c);
int rsre__h_deny(struct api_call *c);
int rsre__h_actions(struct api_call *c);
int rsre__h_agents(struct api_call *c);
int rsre__h_rules(struct api_call *c);
int rsre__h_rule(struct api_call *c);
int rsre__h_rule_create(struct api_call *c);
int rsre__h_rule_preview(struct api_call *c);
int rsre__h_rule_patch(struct api_call *c);
int rsre__h_rule_enable(struct api_call *c);
int rsre__h_rule_disable(struct api_call *c);
int rsre__h_rule_clone(struct api_call *c);
int rsre__h_rule_test(struct api_call *c);

/* ---- rules (rules_api.c), shared with the edits (rules_edit.c) ------------------------------- */

struct rsre_ruleset;
/* What a new rule version is: audited as "rule change" with these, by the caller. */
struct rsre__rule_change {
    const char *expect_id;   /* the text must define this id (NULL: any) */
    const char *change;      /* "create", "patch", "enable production", "clone", ... */
    json_t *fields;          /* the fields changed (borrowed), or NULL */
    const char *comment;     /* why (NULL: "created via the admin API") */
    const char *cloned_from; /* clone: the source rule id (the new id must be free) */
};
/* Validates and commits `text` as the next version of its rule; answers the request and
 * returns its status (201 on success). */
int rsre__rule_commit(struct api_call *c, const char *text, size_t len,
                      const struct rsre__rule_change *ch);
/* The latest stored version of `id` (caller frees), or the answer (404, 5xx) and its status. */
int rsre__rule_latest(struct api_call *c, const char *id, rsre_store_rule **out);
/* Built-ins + the latest version of every stored rule (caller destroys), or an answer. */
int rsre__rule_current_set(struct api_call *c, struct rsre_ruleset **out);
int rsre__h_audit(struct api_call *c);
int rsre__h_audit_verify(struct api_call *c);
int rsre__h_webhook(struct api_call *c); /* webhook_api.c */
/* notify_api.c: in-app notifications. */
int rsre__h_notifications(struct api_call *c);
int rsre__h_notification_ack(struct api_call *c);

#endif
