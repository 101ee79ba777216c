#ifndef RSRE_API_H
#define RSRE_API_H

/*
 * The aggregator's admin API: HTTP/1.1 (and HTTP/2 over TLS) served by libh2o on the caller's
 * libuv loop. JSON under /api/v1 for incidents, approvals, actions, agents, rules and audit;
 * unauthenticated /healthz, /readyz and /metrics (Prometheus text). docs/api.md is the
 * reference for every endpoint, role, error and the token file.
 *
 * Every route is a row of one table (method, path pattern, minimum role, handler). A request
 * is checked in this order, and the first failure answers it:
 *   401  no or unknown bearer token (an audit record "login failure" is appended)
 *   400  a path that is not plain (`.`/`..` segments, `%`, bytes outside [A-Za-z0-9._:/-],
 *        an id over 128 bytes), an unknown or malformed query parameter
 *   404  no route has that path;  405  a route has the path but not the method
 *   403  the token's role is below the route's
 *   413  a body over RSRE_API_BODY_MAX (h2o answers this before the handler runs)
 *   400  a body that is not a JSON object of the expected fields (JSON routes), or YAML that
 *        is not a valid rule ({"error": "...", "field": ...})
 *
 * Threads: everything here runs on the loop thread the server was created with; callbacks are
 * called on that thread, synchronously, from a request handler. The store is used with
 * read-only transactions for reads and with short write transactions for audit records and
 * rule versions; the caller must not hold a write transaction of the store on the loop thread
 * when the loop may run a request.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "engine/taxonomy.h"
#include "http/metrics.h"
#include "store/store.h"

#define RSRE_API_BODY_MAX (64u * 1024u) /* bytes of a request body */
#define RSRE_API_JSON_DEPTH 8           /* nesting of a JSON request body */
#define RSRE_API_COMMENT_MAX 512        /* bytes of a vote comment */
#define RSRE_API_LISTEN_DEFAULT "127.0.0.1:8080"

/* Roles, each including the ones below it. */
enum rsre_api_role {
    RSRE_API_ROLE_NONE = 0, /* no token: only /healthz, /readyz and (by default) /metrics */
    RSRE_API_ROLE_VIEWER,   /* read everything */
    RSRE_API_ROLE_OPERATOR, /* reserved for operational commands (clone/enable rules) */
    RSRE_API_ROLE_APPROVER, /* approve and deny */
    RSRE_API_ROLE_ADMIN,    /* create rule versions */
};

const char *rsre_api_role_name(enum rsre_api_role r); /* "viewer", ...; "none" */

struct rsre_api_options {
    /* "host:port", "[v6]:port" or ":port" (all IPv4 interfaces); port 0 picks a free port (see
     * rsre_api_port). NULL: RSRE_API_LISTEN_DEFAULT. */
    const char *listen;
    /* The token file (YAML, docs/api.md); required. Read at create and by reload_tokens. */
    const char *tokens_file;
    /* PEM certificate chain and private key: both set = TLS (HTTP/2 and HTTP/1.1 by ALPN),
     * both NULL = plain HTTP/1.1. */
    const char *tls_cert_file, *tls_key_file;
    /* Nonzero: /metrics needs a viewer token like /api/v1; zero (default): no token. */
    int metrics_need_token;
    unsigned max_connections;    /* 0: 256; further connections are closed at once */
    unsigned request_timeout_ms; /* idle/slow request limit; 0: 10000 */
    /* Login-failure audit records allowed per minute (a token bucket of this size refilled
     * evenly); failures beyond it are counted in ops_http_login_failures_total and reported
     * in the next record's detail. 0: 600. */
    unsigned login_audit_per_minute;
    const struct rsre_taxonomy *taxonomy; /* NULL: the built-in taxonomy */
};

/* The outcome of a vote, filled by the decide callback. */
struct rsre_api_vote_result {
    char state[32];    /* the approval's state after the vote: "pending", "approved", ... */
    char message[256]; /* one sentence for people: what happened or why it was refused */
};

/*
 * Records a vote by `operator_id` (authenticated by its token, role approver or admin) on
 * approval `approval_id` (which the API has just found in the store) through `channel`
 * ("api"), with an optional `comment` (may be NULL, at most RSRE_API_COMMENT_MAX bytes), and
 * fills *out. The approvals module plugs this in (rsre_approvals_vote in its own write
 * transaction, committed also for refusals, returning the outcome's `err`); without it votes
 * get 503. Return codes and their HTTP status:
 *   0                 200  the vote counted (out->state says what the approval is now)
 *   RSRE_EBOUNDARY    403  refused: the requester voting on their own request, not an approver
 *   RSRE_ENOTFOUND    403  refused: the operator is not configured in the approvals module
 *   RSRE_EEXIST       409  this operator already voted
 *   RSRE_ETRANSITION  409  not pending any more: expired, decided or cancelled
 *   RSRE_EINVALID     400  the approvals module found the input malformed
 *   anything else     500
 * out->message is sent as the error text of a refusal.
 */
typedef int (*rsre_api_decide_cb)(void *ud, const char *approval_id, const char *operator_id,
                                  int approve, const char *channel, const char *comment,
                                  struct rsre_api_vote_result *out);
/* Returns a new JSON reference describing the agents/nodes (an array or an object; it is sent
 * as {"agents": <it>}), or NULL on failure (500). Without it GET /api/v1/agents is 503. */
typedef json_t *(*rsre_api_agents_cb)(void *ud);
/* Returns 0 when the aggregator is ready to serve, or nonzero with a reason in why[cap]. */
typedef int (*rsre_api_ready_cb)(void *ud, char *why, size_t cap);
/* Called after a new rule version has been committed. */
typedef void (*rsre_api_rules_changed_cb)(void *ud, const char *rule_id, uint32_t version);

/* A chat platform's webhook request: GET /webhooks/whatsapp (verify handshake), POST
 * /webhooks/whatsapp and POST /webhooks/telegram. These routes take no bearer token: the
 * receiver checks the platform's own signature or secret (notify/whatsapp.h, telegram.h).
 * Query values are not percent-decoded (hub.verify_token must be [A-Za-z0-9._:-]). Pointers are
 * valid during the call; absent values are NULL. */
struct rsre_api_webhook {
    const char *channel; /* "whatsapp" | "telegram" */
    const char *method;  /* "GET" | "POST" */
    const char *hub_mode, *hub_verify_token, *hub_challenge;
    const char *hub_signature;   /* X-Hub-Signature-256 */
    const char *telegram_secret; /* X-Telegram-Bot-Api-Secret-Token */
    const char *body;            /* raw body, exactly as received */
    size_t body_len;
};
/* Returns the HTTP status to answer; may write a text/plain body (NUL-terminated) to out[cap]
 * (the verify challenge). Without the callback the webhook routes answer 503. */
typedef int (*rsre_api_webhook_cb)(void *ud, const struct rsre_api_webhook *w, char *out,
                                   size_t cap);

struct rsre_api_callbacks {
    rsre_api_decide_cb decide;               /* NULL: votes are 503 */
    rsre_api_agents_cb agents;               /* NULL: GET agents is 503 */
    rsre_api_ready_cb ready;                 /* NULL: ready when the store is */
    rsre_api_rules_changed_cb rules_changed; /* NULL: nobody is told */
    rsre_api_webhook_cb webhook;             /* NULL: /webhooks/... are 503 */
    void *ud;                                /* passed to every callback */
};

typedef struct rsre_api rsre_api;
typedef void (*rsre_api_close_cb)(void *ud);

/*
 * Creates the server on `loop` and starts listening. `store` (may be NULL: /readyz and every
 * store-backed route then answer 503) and `metrics` (may be NULL: the server keeps a private
 * registry, see rsre_api_metrics) are borrowed and must outlive the server; `opts` and its
 * strings are copied. Fails with RSRE_EINVALID (bad listen address, missing tokens file),
 * RSRE_EPARSE / RSRE_EINVALID / RSRE_ELIMIT (token file, logged with the line), -EINVAL (TLS
 * files unusable, logged), a negative errno from bind/listen (e.g. -EADDRINUSE), -ENOMEM.
 * On failure nothing is left on the loop, except after the rare failure of uv_tcp_open or
 * uv_listen on the already bound socket: the listener handle is then closing and the rest is
 * released when the loop next runs.
 */
int rsre_api_create(uv_loop_t *loop, rsre_store *store, struct rsre_metrics *metrics,
                    const struct rsre_api_options *opts, rsre_api **out);

/* Sets the callbacks (copied). May be called at any time on the loop thread. */
void rsre_api_set_callbacks(rsre_api *api, const struct rsre_api_callbacks *cbs);

/* The TCP port the server listens on (useful with port 0). */
int rsre_api_port(const rsre_api *api);

/* The registry /metrics renders (the caller's, or the private one). Borrowed. */
struct rsre_metrics *rsre_api_metrics(rsre_api *api);

/* Re-reads the token file; on failure the old tokens stay in force and the error is returned. */
int rsre_api_reload_tokens(rsre_api *api);

/*
 * Stops listening, closes every connection (requests in flight are answered first: handlers
 * are synchronous), releases h2o's context and calls `cb(ud)` (may be NULL) once everything
 * is closed; the handle is freed right after cb returns. The caller keeps running the loop
 * until then. NULL is a no-op.
 */
void rsre_api_close(rsre_api *api, rsre_api_close_cb cb, void *ud);

#endif
