/*
 * Integration tests of the admin API (aggregator/http) over real HTTP: the server runs on a
 * libuv loop in its own thread with a temp LMDB store seeded with incidents, evidence, actions,
 * approvals, a rule version and audit records, and a token file (viewer, operator, approver,
 * admin); the tests talk to it with libcurl (and a raw socket where curl cannot send the bytes).
 *
 *   unauthenticated  every endpoint without a token, with an unknown token and with a malformed
 *                    header: 401 and one "login failure" audit record each; public endpoints 200
 *   wrong_role       viewer/operator on approve, deny and POST rules, approver on POST rules: 403;
 *                    nothing changes
 *   hostile          oversized bodies (Content-Length and chunked), broken/deep/unknown JSON,
 *                    invalid and unsafe rule YAML, path tricks (.., %2e%2e, NUL, long ids, //),
 *                    query tricks, wrong methods: 400/404/405/413; store and audit unchanged
 *   happy            the seeded data through every endpoint; votes through the decide callback;
 *                    a new rule version with its audit record; preview; audit paging and verify
 *   metrics          /metrics parses as Prometheus text and has every spec metric
 *   metrics_registry the registry alone: types, labels, escaping, histograms, limits
 *   callbacks        no decide callback: 503; no agents callback: 503; readiness callback
 *   login_budget     login-failure audit records are capped per minute, the rest counted
 *   tls              HTTPS with HTTP/2 by ALPN (certificate made with the openssl CLI)
 *   tokens_file      a broken token file refuses to start the server, naming the problem
 *
 * `test_admin_api --serve DIR` seeds DIR, writes DIR/tokens.yaml, DIR/token.<role> and, once
 * listening on 127.0.0.1, DIR/port, then serves until SIGTERM (used by tests/cli/api.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/error.h"
#include "common/log.h"
#include "http/api.h"
#include "http/metrics.h"
#include "store/store.h"

#define TOKEN_VIEWER "viewer-token-5f1c0e"
#define TOKEN_OPERATOR "operator-token-a71b22"
#define TOKEN_APPROVER "approver-token-9d3e41"
#define TOKEN_ADMIN "admin-token-c4b8d7"
#define TOKEN_APPROVER2 "approver2-token-77aa10"

/* ---- seeded store ---------------------------------------------------------------------------- */

static void must(int rc, const char *what) {
    if (rc) {
        fprintf(stderr, "seed: %s: %s\n", what, rsre_strerror(rc));
        abort();
    }
}

static void put_incident(rsre_store_txn *txn, const char *id, const char *type, int lifecycle,
                         const char *evidence_summary) {
    rsre_store_incident r = ROBOT_SRE__STORE__INCIDENT__INIT;
    RobotSre__Store__ResourceRef ref = ROBOT_SRE__STORE__RESOURCE_REF__INIT;
    RobotSre__Store__ResourceRef *refs[] = {&ref};
    char *sources[] = {"agent/nodefs", "kube/node_conditions"};
    char *recommended[] = {"prune_unused_images", "cordon_node"};
    ref.kind = "Node";
    ref.name = "worker-1";
    ref.node = "worker-1";
    r.id = (char *)id;
    r.fingerprint = (char *)id;
    r.domain = "infrastructure";
    r.incident_type = (char *)type;
    r.severity = ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING;
    r.confidence = ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_HIGH;
    r.confidence_score = 0.9;
    r.lifecycle = lifecycle;
    r.n_signal_sources = 2;
    r.signal_sources = sources;
    r.n_resource_scope = 1;
    r.resource_scope = refs;
    r.environment = ROBOT_SRE__STORE__ENVIRONMENT__ENVIRONMENT_DEMO;
    r.evidence_summary = (char *)evidence_summary;
    r.n_recommended_actions = 2;
    r.recommended_actions = recommended;
    r.approval_state = ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING;
    r.opened_at_ms = 1700000000000;
    r.updated_at_ms = 1700000060000;
    r.cluster = "demo";
    must(rsre_store_incident_put(txn, &r, RSRE_STORE_NOOVERWRITE), "incident");
}

static void put_evidence(rsre_store_txn *txn, const char *inc, const char *id, int64_t at,
                         const char *summary) {
    rsre_store_evidence e = ROBOT_SRE__STORE__EVIDENCE__INIT;
    e.id = (char *)id;
    e.incident_id = (char *)inc;
    e.source = "agent/nodefs";
    e.kind = "nodefs.used_ratio";
    e.observed_at_ms = at;
    e.summary = (char *)summary;
    e.raw.data = (uint8_t *)"used=91%";
    e.raw.len = 8;
    must(rsre_store_evidence_put(txn, &e, 0), "evidence");
}

static void put_approval(rsre_store_txn *txn, const char *id, const char *requester, int state) {
    rsre_store_approval a = ROBOT_SRE__STORE__APPROVAL__INIT;
    a.id = (char *)id;
    a.action_id = "act-2";
    a.incident_id = "inc-1";
    a.requester = (char *)requester;
    a.prompt = "Robot SRE requests approval: cordon node worker-1.";
    a.action = "cordon_node";
    a.target = "worker-1";
    a.why_now = "disk pressure for 17m";
    a.expected_impact = "no new pods on worker-1";
    a.rollback = "uncordon worker-1";
    a.quorum = 1;
    a.requested_at_ms = 1700000000000;
    a.expires_at_ms = 4102444800000; /* 2100 */
    a.state = state;
    must(rsre_store_approval_put(txn, &a, RSRE_STORE_NOOVERWRITE), "approval");
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len) {
        *len = n;
    }
    return buf;
}

static void seed(rsre_store *st) {
    rsre_store_txn *txn;
    must(rsre_store_txn_begin(st, 0, &txn), "begin");
    put_incident(txn, "inc-1", "node_disk_pressure",
                 ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_OBSERVED, "nodefs 91% on worker-1");
    put_incident(txn, "inc-2", "registry_pull_failure",
                 ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_RESOLVED, "pulls failing from registry");
    put_incident(txn, "inc-3", "node_disk_pressure",
                 ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_CONTAINED, "nodefs 88% on worker-2");
    put_evidence(txn, "inc-1", "ev-a", 1700000050000, "second sample");
    put_evidence(txn, "inc-1", "ev-b", 1700000010000, "first sample");
    rsre_store_action act = ROBOT_SRE__STORE__ACTION_RECORD__INIT;
    char *reasons[] = {"contain: auto on allowlisted targets"};
    act.id = "act-1";
    act.incident_id = "inc-1";
    act.action_id = "prune_unused_images";
    act.action_class = "contain";
    act.target = "worker-1";
    act.decision = ROBOT_SRE__STORE__DECISION__DECISION_AUTO;
    act.n_reasons = 1;
    act.reasons = reasons;
    act.state = ROBOT_SRE__STORE__ACTION_STATE__ACTION_STATE_SUCCEEDED;
    act.requested_by = "robot";
    act.bytes_freed = 123456789;
    act.created_at_ms = 1700000020000;
    must(rsre_store_action_put(txn, &act, 0), "action");
    put_approval(txn, "apr-1", "robot-sre",
                 ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING);
    put_approval(txn, "apr-2", "alice", ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING);
    put_approval(txn, "apr-3", "robot-sre",
                 ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_APPROVED);
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/local/rules/demo-disk-pressure.yaml", RSRE_SOURCE_DIR);
    char *yaml = slurp(path, NULL);
    if (!yaml) {
        fprintf(stderr, "seed: cannot read %s\n", path);
        abort();
    }
    rsre_store_rule rule = ROBOT_SRE__STORE__RULE_VERSION__INIT;
    rule.rule_id = "demo-disk-pressure-early";
    rule.version = 1;
    rule.yaml = yaml;
    rule.author = "adam";
    rule.created_at_ms = 1700000000000;
    rule.enabled_demo = 1;
    must(rsre_store_rule_put(txn, &rule), "rule");
    free(yaml);
    must(rsre_store_audit_append(txn, "robot-sre", "incident.open", "incident/inc-1", "nodefs 91%",
                                 NULL, 1700000000000, NULL),
         "audit");
    must(rsre_store_audit_append(txn, "robot-sre", "action.run", "action/act-1",
                                 "auto: allowlisted", "{\"bytes_freed\":123456789}", 1700000020000,
                                 NULL),
         "audit");
    must(rsre_store_audit_append(txn, "robot-sre", "approval.request", "approval/apr-1",
                                 "cordon needs approval", NULL, 1700000030000, NULL),
         "audit");
    must(rsre_store_txn_commit(txn), "commit");
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        abort();
    }
    fputs(text, f);
    fclose(f);
}

static void sha_hex(const char *tok, char out[65]) {
    unsigned char h[32];
    SHA256((const unsigned char *)tok, strlen(tok), h);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    }
}

static void write_tokens(const char *dir, char *path, size_t cap) {
    static const struct {
        const char *op, *role, *tok;
    } rows[] = {
        {"victor", "viewer", TOKEN_VIEWER},    {"olga", "operator", TOKEN_OPERATOR},
        {"alice", "approver", TOKEN_APPROVER}, {"bob", "approver", TOKEN_APPROVER2},
        {"adam", "admin", TOKEN_ADMIN},
    };
    char text[4096] = "# test tokens\ntokens:\n";
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char hex[65], line[256];
        sha_hex(rows[i].tok, hex);
        snprintf(line, sizeof(line), "  - operator: %s\n    role: %s\n    sha256: %s\n", rows[i].op,
                 rows[i].role, hex);
        strncat(text, line, sizeof(text) - strlen(text) - 1);
        char tpath[512];
        snprintf(tpath, sizeof(tpath), "%s/token.%s%s", dir, rows[i].role,
                 !strcmp(rows[i].op, "bob") ? "2" : "");
        write_text(tpath, rows[i].tok);
    }
    snprintf(path, cap, "%s/tokens.yaml", dir);
    write_text(path, text);
}

/* ---- callbacks (what the approvals module and the agent registry will plug in) --------------- */

static const char *const approval_state_names[] = {
    "unspecified", "not_required", "pending", "approved", "denied", "expired", "cancelled"};

static int fake_decide(void *ud, const char *id, const char *op, int approve, const char *channel,
                       const char *comment, struct rsre_api_vote_result *out) {
    rsre_store *st = ud;
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(st, 0, &txn);
    if (rc) {
        return rc;
    }
    rsre_store_approval *a = NULL;
    if ((rc = rsre_store_approval_get(txn, id, &a))) {
        rsre_store_txn_abort(txn);
        return rc;
    }
    if (!strcmp(a->requester, op)) {
        snprintf(out->message, sizeof(out->message),
                 "%s requested this approval; another approver must decide", op);
        rc = RSRE_EBOUNDARY;
    } else if (a->state != ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING) {
        snprintf(out->message, sizeof(out->message), "approval %s is %s, not pending", id,
                 approval_state_names[a->state]);
        rc = RSRE_ETRANSITION;
    } else {
        rsre_store_vote v = ROBOT_SRE__STORE__VOTE__INIT;
        v.operator_ = (char *)op;
        v.vote = approve ? ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE
                         : ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_DENY;
        v.channel = (char *)channel;
        v.comment = (char *)(comment ? comment : "");
        rc = rsre_store_approval_vote_add(txn, id, &v);
        if (!rc) {
            rsre_store_approval_free(a);
            a = NULL;
            rc = rsre_store_approval_get(txn, id, &a);
        }
        if (!rc) {
            a->state = approve ? ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_APPROVED
                               : ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_DENIED;
            rc = rsre_store_approval_put(txn, a, 0);
        }
        if (!rc) {
            rc = rsre_store_audit_append(txn, op, "approval.vote", id, approve ? "approve" : "deny",
                                         comment, 1700000100000, NULL);
        }
        if (!rc) {
            snprintf(out->message, sizeof(out->message), "%s by %s",
                     approve ? "approved" : "denied", op);
        }
    }
    if (a) {
        snprintf(out->state, sizeof(out->state), "%s",
                 approval_state_names[a->state < 7 ? a->state : 0]);
    }
    rsre_store_approval_free(a);
    if (rc) {
        rsre_store_txn_abort(txn);
        return rc;
    }
    return rsre_store_txn_commit(txn);
}

static json_t *fake_agents(void *ud) {
    return json_pack("[{s:s, s:s, s:I}]", "node", "worker-1", "agent_version", "0.1.0",
                     "last_seen_ms", (json_int_t)1700000000000);
}

static int ready_flag = 1;

static int fake_ready(void *ud, char *why, size_t cap) {
    if (!__atomic_load_n(&ready_flag, __ATOMIC_SEQ_CST)) {
        snprintf(why, cap, "ingest not started");
        return 1;
    }
    return 0;
}

/* ---- the server thread ----------------------------------------------------------------------- */

struct server {
    char dir[128], store_dir[192], tokens[256];
    rsre_store *store;
    struct rsre_metrics *metrics;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* a job for the loop thread */
    void (*job)(struct server *s, void *arg);
    void *job_arg;
    int job_done;
    rsre_api *api;
    int port, stop, closed;
};

static struct server S;
static CURL *curl; /* one handle: keeps its connection alive across requests and tests */

static void on_api_closed(void *ud) {
    int *flag = ud;
    *flag = 1;
}

static void on_wake(uv_async_t *a) {
    struct server *s = a->data;
    pthread_mutex_lock(&s->mu);
    void (*job)(struct server *, void *) = s->job;
    void *arg = s->job_arg;
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (job) {
        job(s, arg);
        pthread_mutex_lock(&s->mu);
        s->job = NULL;
        s->job_done = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    if (stop) {
        rsre_api_close(s->api, on_api_closed, &s->closed);
        uv_close((uv_handle_t *)&s->wake, NULL);
    }
}

static void *server_main(void *arg) {
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs `job(s, arg)` on the loop thread and waits for it. */
static void on_loop(void (*job)(struct server *, void *), void *arg) {
    pthread_mutex_lock(&S.mu);
    S.job = job;
    S.job_arg = arg;
    S.job_done = 0;
    pthread_mutex_unlock(&S.mu);
    uv_async_send(&S.wake);
    pthread_mutex_lock(&S.mu);
    while (!S.job_done) {
        pthread_cond_wait(&S.cv, &S.mu);
    }
    pthread_mutex_unlock(&S.mu);
}

static void set_all_callbacks(struct server *s, void *arg) {
    struct rsre_api_callbacks cb = {
        .decide = fake_decide, .agents = fake_agents, .ready = fake_ready, .ud = s->store};
    if (arg) {
        cb.decide = NULL;
        cb.agents = NULL;
    }
    rsre_api_set_callbacks(s->api, &cb);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(p);
}

static void server_start(struct server *s, const char *dir) {
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    snprintf(s->store_dir, sizeof(s->store_dir), "%s/store", dir);
    must(rsre_store_open(s->store_dir, NULL, &s->store), "open");
    seed(s->store);
    write_tokens(dir, s->tokens, sizeof(s->tokens));
    must(rsre_metrics_create(&s->metrics), "metrics");
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->wake, on_wake);
    s->wake.data = s;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    struct rsre_api_options o = {.listen = "127.0.0.1:0", .tokens_file = s->tokens};
    must(rsre_api_create(&s->loop, s->store, s->metrics, &o, &s->api), "api");
    set_all_callbacks(s, NULL);
    s->port = rsre_api_port(s->api);
    pthread_create(&s->thread, NULL, server_main, s);
}

static void server_stop(struct server *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);
    pthread_join(s->thread, NULL);
    assert_int_equal(s->closed, 1);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    rsre_store_close(s->store);
    rsre_metrics_destroy(s->metrics);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

/* ---- HTTP client ----------------------------------------------------------------------------- */

struct resp {
    long status;
    char *body;
    size_t len;
    char allow[128];
    json_t *json;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    struct resp *r = ud;
    size_t k = sz * n;
    char *b = realloc(r->body, r->len + k + 1);
    assert_non_null(b);
    memcpy(b + r->len, p, k);
    r->len += k;
    b[r->len] = '\0';
    r->body = b;
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    struct resp *r = ud;
    size_t k = sz * n;
    if (k > 9 && !strncasecmp(p, "allow: ", 7)) {
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)k - 9, p + 7);
    }
    return k;
}

static void resp_free(struct resp *r) {
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

struct chunked {
    size_t left;
};

static size_t on_read(char *p, size_t sz, size_t n, void *ud) {
    struct chunked *c = ud;
    size_t k = sz * n < c->left ? sz * n : c->left;
    memset(p, ' ', k);
    c->left -= k;
    return k;
}

/* One request on a port; `token` may be NULL; `body` NULL = none. `chunked_len` > 0 sends a
 * chunked body of that many bytes instead. Paths are sent as is. */
static struct resp http_port(int port, const char *method, const char *path, const char *token,
                             const char *body, size_t chunked_len) {
    struct resp r = {0};
    char url[8192], auth[600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    struct curl_slist *h = NULL;
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    struct chunked ch = {chunked_len};
    if (chunked_len) {
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, &ch);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    } else if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    CURLcode cc = curl_easy_perform(curl);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        /* The server may answer 413 and close before the whole body is sent. */
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
        if (!r.status) {
            fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
        }
        return r;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    if (r.body) {
        r.json = json_loads(r.body, 0, NULL);
    }
    return r;
}

static struct resp http(const char *method, const char *path, const char *token, const char *body) {
    return http_port(S.port, method, path, token, body, 0);
}

/* Asserts the status and, for errors, the JSON error shape. */
static void expect(const char *method, const char *path, const char *token, const char *body,
                   long status) {
    struct resp r = http(method, path, token, body);
    if (r.status != status) {
        fail_msg("%s %s: status %ld, want %ld (%s)", method, path, r.status, status,
                 r.body ? r.body : "");
    }
    if (status >= 400 && status != 413) {
        if (!json_is_string(json_object_get(r.json, "error")) ||
            !json_object_get(r.json, "field")) {
            fail_msg("%s %s: error body is not {error, field}: %s", method, path,
                     r.body ? r.body : "");
        }
    }
    resp_free(&r);
}

/* Sends raw bytes on a new connection and returns the status code of the answer (0: none). */
static int raw_request(const char *req, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(write(fd, req, len), (ssize_t)len);
    char buf[512] = {0};
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    int status = 0;
    if (n > 12) {
        sscanf(buf, "HTTP/1.%*d %d", &status);
    }
    return status;
}

/* ---- store state ----------------------------------------------------------------------------- */

struct snapshot {
    struct rsre_store_info info;
    uint64_t audit_head;
};

static int last_seq_cb(const rsre_store_audit *r, void *ud) {
    *(uint64_t *)ud = r->seq;
    return 0;
}

static struct snapshot snap(void) {
    struct snapshot s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(rsre_store_info(S.store, &s.info), 0);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(S.store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, 1, last_seq_cb, &s.audit_head), 0);
    rsre_store_txn_abort(txn);
    return s;
}

struct verbs {
    uint64_t from;
    size_t n, other;
    const char *verb;
};

static int verb_cb(const rsre_store_audit *r, void *ud) {
    struct verbs *v = ud;
    if (!strcmp(r->verb, v->verb)) {
        v->n++;
    } else {
        v->other++;
    }
    return 0;
}

/* Counts audit records after `from` with verb `verb` (*other gets the rest). */
static size_t audit_since(uint64_t from, const char *verb, size_t *other) {
    struct verbs v = {.verb = verb};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(S.store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, from + 1, verb_cb, &v), 0);
    rsre_store_txn_abort(txn);
    if (other) {
        *other = v.other;
    }
    return v.n;
}

/* The same store contents as `a`, apart from audit records of verb `allowed` (may be NULL). */
static void unchanged(const struct snapshot *a, const char *allowed) {
    struct snapshot b = snap();
    assert_int_equal(a->info.incidents, b.info.incidents);
    assert_int_equal(a->info.evidence, b.info.evidence);
    assert_int_equal(a->info.actions, b.info.actions);
    assert_int_equal(a->info.approvals, b.info.approvals);
    assert_int_equal(a->info.rules, b.info.rules);
    assert_int_equal(a->info.cooldowns, b.info.cooldowns);
    size_t other = 0;
    audit_since(a->audit_head, allowed ? allowed : "-", &other);
    assert_int_equal(other, 0);
    if (!allowed) {
        assert_int_equal(a->audit_head, b.audit_head);
    }
}

/* ---- tests ----------------------------------------------------------------------------------- */

static const struct {
    const char *method, *path, *body;
} endpoints[] = {
    {"GET", "/api/v1/incidents", NULL},
    {"GET", "/api/v1/incidents/inc-1", NULL},
    {"GET", "/api/v1/approvals", NULL},
    {"GET", "/api/v1/approvals/apr-1", NULL},
    {"POST", "/api/v1/approvals/apr-1/approve", "{\"comment\":\"ok\"}"},
    {"POST", "/api/v1/approvals/apr-1/deny", "{}"},
    {"GET", "/api/v1/actions", NULL},
    {"GET", "/api/v1/agents", NULL},
    {"GET", "/api/v1/rules", NULL},
    {"GET", "/api/v1/rules/demo-disk-pressure-early", NULL},
    {"POST", "/api/v1/rules", "id: x\n"},
    {"POST", "/api/v1/rules/demo-disk-pressure-early/preview", "{\"action\":\"cordon_node\"}"},
    {"GET", "/api/v1/audit", NULL},
    {"POST", "/api/v1/audit/verify", NULL},
    {"GET", "/api/v1/nope", NULL},
    {"GET", "/api/v1/incidents/../audit", NULL},
};
#define NENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

static void test_unauthenticated(void **state) {
    struct snapshot before = snap();
    size_t n = 0;
    const char *bad[] = {NULL, "not-a-token", "x"};
    for (size_t b = 0; b < 3; b++) {
        for (size_t i = 0; i < NENDPOINTS; i++) {
            expect(endpoints[i].method, endpoints[i].path, bad[b], endpoints[i].body, 401);
            n++;
        }
    }
    /* Malformed Authorization headers. */
    static const char *const hdrs[] = {
        "Authorization: Basic dmlld2VyOnB3",
        "Authorization: Bearer",
        "Authorization: Bearer " TOKEN_VIEWER "\r\nAuthorization: Bearer " TOKEN_VIEWER,
    };
    for (size_t i = 0; i < 3; i++) {
        char req[512];
        int len = snprintf(req, sizeof(req),
                           "GET /api/v1/incidents HTTP/1.1\r\nHost: x\r\n%s\r\n"
                           "Connection: close\r\n\r\n",
                           hdrs[i]);
        assert_int_equal(raw_request(req, (size_t)len), 401);
        n++;
    }
    size_t other = 0;
    assert_int_equal(audit_since(before.audit_head, "login failure", &other), n);
    assert_int_equal(other, 0);
    unchanged(&before, "login failure");
    /* The records name the path, the reason and the peer; the chain still verifies. */
    rsre_store_audit *rec;
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(S.store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_get(txn, before.audit_head + 1, &rec), 0);
    rsre_store_txn_abort(txn);
    assert_string_equal(rec->actor, "anonymous");
    assert_string_equal(rec->object, "api:GET /api/v1/incidents");
    assert_string_equal(rec->reason, "missing bearer token");
    assert_non_null(strstr(rec->detail, "\"peer\":\"127.0.0.1\""));
    rsre_store_audit_free(rec);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(S.store, &rep), 0);
    double v;
    const char *lv[] = {"missing"};
    assert_int_equal(rsre_metrics_get(S.metrics, RSRE_M_HTTP_LOGIN_FAILURES_TOTAL, lv, &v), 0);
    assert_true(v >= NENDPOINTS);
    /* Public endpoints need no token and write nothing. */
    before = snap();
    expect("GET", "/healthz", NULL, NULL, 200);
    expect("GET", "/readyz", NULL, NULL, 200);
    expect("GET", "/metrics", NULL, NULL, 200);
    expect("POST", "/healthz", NULL, NULL, 405);
    unchanged(&before, NULL);
}

static void test_wrong_role(void **state) {
    struct snapshot before = snap();
    const char *vote = "{\"comment\":\"looks fine\"}";
    const char *rule = "id: x\n";
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_VIEWER, vote, 403);
    expect("POST", "/api/v1/approvals/apr-1/deny", TOKEN_VIEWER, vote, 403);
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_OPERATOR, vote, 403);
    expect("POST", "/api/v1/rules", TOKEN_VIEWER, rule, 403);
    expect("POST", "/api/v1/rules", TOKEN_OPERATOR, rule, 403);
    expect("POST", "/api/v1/rules", TOKEN_APPROVER, rule, 403);
    struct resp r = http("POST", "/api/v1/approvals/apr-1/approve", TOKEN_VIEWER, vote);
    assert_non_null(strstr(json_string_value(json_object_get(r.json, "error")),
                           "needs the approver role; victor has the viewer role"));
    resp_free(&r);
    unchanged(&before, NULL);
}

static void test_hostile(void **state) {
    struct snapshot before = snap();
    /* Oversized bodies: Content-Length, and chunked (h2o stops reading at the limit). */
    size_t big = RSRE_API_BODY_MAX + 1;
    char *body = malloc(big + 1);
    memset(body, 'a', big);
    body[big] = '\0';
    expect("POST", "/api/v1/rules", TOKEN_ADMIN, body, 413);
    memcpy(body, "{\"comment\":\"", 12);
    body[big - 2] = '"';
    body[big - 1] = '}';
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, body, 413);
    free(body);
    struct resp r = http_port(S.port, "POST", "/api/v1/rules", TOKEN_ADMIN, NULL, 200000);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    /* Broken JSON, deep JSON, unknown fields, wrong types. */
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, "{\"comment\":", 400);
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, "[1,2]", 400);
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER,
           "{\"comment\":\"a\",\"comment\":\"b\"}", 400);
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, "{\"comment\":42}", 400);
    r = http("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, "{\"operator\":\"bob\"}");
    assert_int_equal(r.status, 400);
    assert_string_equal(json_string_value(json_object_get(r.json, "field")), "operator");
    resp_free(&r);
    char deep[256] = "{\"comment\":";
    for (int i = 0; i < 20; i++) {
        strcat(deep, "[");
    }
    for (int i = 0; i < 20; i++) {
        strcat(deep, "]");
    }
    strcat(deep, "}");
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, deep, 400);
    char *many = malloc(40000);
    memcpy(many, "{\"comment\":", 11);
    memset(many + 11, '[', 15000);
    many[15011] = '\0';
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, many, 400);
    free(many);
    char longc[700] = "{\"comment\":\"";
    memset(longc + 12, 'c', 600);
    strcpy(longc + 612, "\"}");
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, longc, 400);
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, "{\"comment\":\"a\\u0000b\"}",
           400);
    expect("POST", "/api/v1/rules/demo-disk-pressure-early/preview", TOKEN_VIEWER,
           "{\"action\":\"cordon_node\",\"env\":\"prod\"}", 400);
    expect("POST", "/api/v1/rules/demo-disk-pressure-early/preview", TOKEN_VIEWER,
           "{\"action\":\"nuke\",\"env\":\"demo\"}", 400);
    expect("POST", "/api/v1/rules/demo-disk-pressure-early/preview", TOKEN_VIEWER,
           "{\"env\":\"demo\"}", 400);
    expect("POST", "/api/v1/audit/verify", TOKEN_VIEWER, "{}", 400);
    /* Rule YAML: broken, not a rule, unsafe, two rules, duplicate of a built-in. */
    expect("POST", "/api/v1/rules", TOKEN_ADMIN, "id: [unclosed\n", 400);
    expect("POST", "/api/v1/rules", TOKEN_ADMIN, "id: x\nname: y\n", 400);
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/local/rules/unsafe-example.yaml", RSRE_SOURCE_DIR);
    char *unsafe = slurp(path, NULL);
    r = http("POST", "/api/v1/rules", TOKEN_ADMIN, unsafe);
    assert_int_equal(r.status, 400);
    assert_non_null(
        strstr(json_string_value(json_object_get(r.json, "error")), "cannot be made auto-allowed"));
    assert_string_equal(json_string_value(json_object_get(r.json, "field")),
                        "allowed_action_profile[0].mode");
    resp_free(&r);
    free(unsafe);
    expect("POST", "/api/v1/rules", TOKEN_ADMIN, "rules: []\n", 400);
    expect("POST", "/api/v1/rules", TOKEN_ADMIN, "a: &x 1\nb: *x\n", 400);
    /* Path tricks: nothing is decoded or normalised. */
    static const char *const bad400[] = {
        "/api/v1/incidents/../audit",
        "/api/v1/incidents/..",
        "/api/v1/incidents/.",
        "/api/v1/incidents/%2e%2e/audit",
        "/api/v1/incidents/%2E%2E",
        "/api/v1/incidents/inc-1%00",
        "/api/v1/incidents/inc-1%2f..",
        "/api/v1/./incidents",
        "/api/v1/rules/x/../../audit",
        "/api/v1/incidents/inc-1%20x",
        "/api/v1/approvals/apr-1/../../rules",
    };
    for (size_t i = 0; i < sizeof(bad400) / sizeof(bad400[0]); i++) {
        expect("GET", bad400[i], TOKEN_ADMIN, NULL, 400);
    }
    expect("POST", "/api/v1/approvals/../rules", TOKEN_ADMIN, "id: x\n", 400);
    expect("POST", "/api/v1/approvals/%2e%2e/approve", TOKEN_APPROVER, "{}", 400);
    char longid[600];
    strcpy(longid, "/api/v1/incidents/");
    memset(longid + 18, 'a', 129);
    longid[18 + 129] = '\0';
    expect("GET", longid, TOKEN_VIEWER, NULL, 400);
    longid[18 + 128] = '\0';
    expect("GET", longid, TOKEN_VIEWER, NULL, 404); /* 128 bytes is a valid id: not found */
    char *huge = malloc(5100);
    strcpy(huge, "/api/v1/incidents/");
    memset(huge + 18, 'b', 5000);
    huge[5018] = '\0';
    r = http("GET", huge, TOKEN_VIEWER, NULL);
    assert_true(r.status == 400 || r.status == 414 || r.status == 431);
    resp_free(&r);
    free(huge);
    static const char nul_req[] = "GET /api/v1/incidents/inc-1\0/x HTTP/1.1\r\nHost: x\r\n"
                                  "Authorization: Bearer " TOKEN_VIEWER "\r\n\r\n";
    assert_int_equal(raw_request(nul_req, sizeof(nul_req) - 1), 400);
    static const char nul_hdr[] = "GET /api/v1/incidents HTTP/1.1\r\nHost: x\r\n"
                                  "Authorization: Bearer " TOKEN_VIEWER "\0x\r\n\r\n";
    int st = raw_request(nul_hdr, sizeof(nul_hdr) - 1);
    assert_true(st == 400 || st == 401);
    static const char *const bad404[] = {
        "/api/v1/incidents/",
        "//api/v1/incidents",
        "/api/v1//incidents",
        "/api/v1/nope",
        "/api/v2/incidents",
        "/api/v1/incidents/inc-1/extra/x/y/z/a/b/c",
        "/",
        "/api/v1/incidents/no-such-incident",
        "/api/v1/approvals/no-such",
        "/api/v1/rules/no-such-rule",
    };
    for (size_t i = 0; i < sizeof(bad404) / sizeof(bad404[0]); i++) {
        expect("GET", bad404[i], TOKEN_ADMIN, NULL, 404);
    }
    /* Query tricks. */
    static const char *const badq[] = {
        "/api/v1/incidents?state=open&state=open",
        "/api/v1/incidents?limit=0",
        "/api/v1/incidents?limit=99999999999999999999",
        "/api/v1/incidents?bogus=1",
        "/api/v1/incidents?state=%27",
        "/api/v1/incidents?state=nope",
        "/api/v1/incidents?type=../x",
        "/api/v1/audit?from_seq=-1",
        "/api/v1/audit?limit=1001",
        "/api/v1/incidents/inc-1?x=1",
        "/api/v1/incidents?STATE=open",
    };
    for (size_t i = 0; i < sizeof(badq) / sizeof(badq[0]); i++) {
        expect("GET", badq[i], TOKEN_VIEWER, NULL, 400);
    }
    /* Wrong methods: 405 with Allow. */
    r = http("DELETE", "/api/v1/incidents", TOKEN_ADMIN, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET");
    resp_free(&r);
    r = http("PUT", "/api/v1/rules", TOKEN_ADMIN, "id: x\n");
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, POST");
    resp_free(&r);
    expect("GET", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, NULL, 405);
    expect("POST", "/api/v1/incidents", TOKEN_ADMIN, "{}", 405);
    /* A body where none is taken. */
    expect("POST", "/api/v1/audit/verify", TOKEN_VIEWER, "x", 400);
    unchanged(&before, NULL);
}

static json_t *get_json(const char *path, const char *token) {
    struct resp r = http("GET", path, token, NULL);
    if (r.status != 200 || !r.json) {
        fail_msg("GET %s: %ld %s", path, r.status, r.body ? r.body : "");
    }
    json_t *j = json_incref(r.json);
    resp_free(&r);
    return j;
}

static void test_happy(void **state) {
    /* Incidents, filters, one incident with its evidence timeline and actions. */
    json_t *j = get_json("/api/v1/incidents", TOKEN_VIEWER);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 3);
    json_t *first = json_array_get(json_object_get(j, "incidents"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "id")), "inc-1");
    assert_string_equal(json_string_value(json_object_get(first, "state")), "observed");
    assert_string_equal(json_string_value(json_object_get(first, "severity")), "warning");
    assert_string_equal(json_string_value(json_object_get(first, "environment")), "demo");
    static const char *const schema[] = {
        "incident_type",       "severity",         "confidence",       "signal_sources",
        "resource_scope",      "environment",      "evidence_summary", "raw_evidence_refs",
        "recommended_actions", "executed_actions", "approval_state"};
    for (size_t i = 0; i < sizeof(schema) / sizeof(schema[0]); i++) {
        assert_non_null(json_object_get(first, schema[i]));
    }
    json_decref(j);
    j = get_json("/api/v1/incidents?state=open", TOKEN_VIEWER);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 2);
    json_decref(j);
    j = get_json("/api/v1/incidents?type=registry_pull_failure&state=resolved", TOKEN_VIEWER);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    j = get_json("/api/v1/incidents?limit=1", TOKEN_VIEWER);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    j = get_json("/api/v1/incidents/inc-1", TOKEN_VIEWER);
    json_t *ev = json_object_get(j, "evidence");
    assert_int_equal(json_array_size(ev), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "id")), "ev-b");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "id")), "ev-a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "raw")),
                        "used=91%");
    assert_int_equal(json_array_size(json_object_get(j, "actions")), 1);
    json_decref(j);
    /* Approvals, actions, agents. */
    j = get_json("/api/v1/approvals?state=pending", TOKEN_VIEWER);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 2);
    json_decref(j);
    j = get_json("/api/v1/approvals/apr-1", TOKEN_VIEWER);
    assert_string_equal(json_string_value(json_object_get(j, "why_now")), "disk pressure for 17m");
    json_decref(j);
    j = get_json("/api/v1/actions?incident=inc-1", TOKEN_VIEWER);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    json_t *a0 = json_array_get(json_object_get(j, "actions"), 0);
    assert_string_equal(json_string_value(json_object_get(a0, "decision")), "auto");
    assert_int_equal(json_integer_value(json_object_get(a0, "bytes_freed")), 123456789);
    json_decref(j);
    j = get_json("/api/v1/agents", TOKEN_VIEWER);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "agents"), 0), "node")),
        "worker-1");
    json_decref(j);

    /* Votes go through the decide callback with the token's operator and channel "api". */
    struct snapshot before = snap();
    struct resp r =
        http("POST", "/api/v1/approvals/apr-2/approve", TOKEN_APPROVER, "{\"comment\":\"mine\"}");
    assert_int_equal(r.status, 403); /* alice requested apr-2 */
    assert_non_null(strstr(r.body, "another approver must decide"));
    resp_free(&r);
    r = http("POST", "/api/v1/approvals/apr-3/approve", TOKEN_APPROVER, NULL);
    assert_int_equal(r.status, 409); /* already approved */
    resp_free(&r);
    r = http("POST", "/api/v1/approvals/no-such/approve", TOKEN_APPROVER, NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    unchanged(&before, NULL);
    r = http("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER,
             "{\"comment\":\"disk is full, go\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "state")), "approved");
    assert_string_equal(json_string_value(json_object_get(r.json, "operator")), "alice");
    resp_free(&r);
    j = get_json("/api/v1/approvals/apr-1", TOKEN_VIEWER);
    json_t *v0 = json_array_get(json_object_get(j, "votes"), 0);
    assert_string_equal(json_string_value(json_object_get(v0, "operator")), "alice");
    assert_string_equal(json_string_value(json_object_get(v0, "channel")), "api");
    assert_string_equal(json_string_value(json_object_get(v0, "comment")), "disk is full, go");
    json_decref(j);
    r = http("POST", "/api/v1/approvals/apr-2/deny", TOKEN_APPROVER2, "");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "state")), "denied");
    resp_free(&r);
    assert_int_equal(audit_since(before.audit_head, "approval.vote", NULL), 2);

    /* Rules: built-ins and the stored rule; versions; a new version; preview. */
    j = get_json("/api/v1/rules", TOKEN_VIEWER);
    json_t *rules = json_object_get(j, "rules");
    int builtins = 0, stored = 0;
    size_t i;
    json_t *it;
    json_array_foreach(rules, i, it) {
        if (json_is_true(json_object_get(it, "builtin"))) {
            builtins++;
        } else {
            stored++;
            assert_string_equal(json_string_value(json_object_get(it, "id")),
                                "demo-disk-pressure-early");
        }
    }
    assert_int_equal(builtins, 11);
    assert_int_equal(stored, 1);
    json_decref(j);
    j = get_json("/api/v1/rules/builtin.node_disk_pressure", TOKEN_VIEWER);
    assert_true(json_is_true(json_object_get(j, "builtin")));
    json_decref(j);
    before = snap();
    const char *rule_yaml =
        "id: api-test-rule\nname: API test rule\ndomain: infrastructure\n"
        "incident_type: node_disk_pressure\nenvironment_scope: [demo, staging]\n"
        "threshold_expression: \"nodefs.used_ratio > 85%\"\nseverity: warning\n"
        "allowed_action_profile:\n  - {action: cordon_node, mode: approval, "
        "quorum: 2}\nowner: platform-team\nversion: 1\n";
    r = http("POST", "/api/v1/rules", TOKEN_ADMIN, rule_yaml);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 1);
    assert_true(json_is_true(json_object_get(json_object_get(r.json, "enabled"), "staging")));
    assert_true(json_is_false(json_object_get(json_object_get(r.json, "enabled"), "production")));
    resp_free(&r);
    r = http("POST", "/api/v1/rules", TOKEN_ADMIN, rule_yaml);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_integer_value(json_object_get(r.json, "version")), 2);
    resp_free(&r);
    assert_int_equal(audit_since(before.audit_head, "rule change", NULL), 2);
    struct snapshot after = snap();
    assert_int_equal(after.info.rules, before.info.rules + 2);
    j = get_json("/api/v1/rules/api-test-rule", TOKEN_VIEWER);
    assert_int_equal(json_array_size(json_object_get(j, "versions")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "latest"), "author")),
                        "adam");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "latest"), "yaml")),
                        rule_yaml);
    json_decref(j);
    /* The same id as another stored rule's is a new version of it only when it validates. */
    r = http("POST", "/api/v1/rules", TOKEN_ADMIN, "id: builtin.node_disk_pressure\nname: x\n");
    assert_int_equal(r.status, 400);
    resp_free(&r);
    r = http("POST", "/api/v1/rules/api-test-rule/preview", TOKEN_VIEWER,
             "{\"action\":\"cordon_node\",\"env\":\"demo\",\"target\":\"worker-1\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "decision")),
                        "approval_required");
    assert_int_equal(json_integer_value(json_object_get(r.json, "quorum")), 2);
    assert_true(json_is_true(json_object_get(r.json, "rule_applies")));
    assert_true(json_array_size(json_object_get(r.json, "reasons")) > 0);
    resp_free(&r);
    r = http("POST", "/api/v1/rules/api-test-rule/preview", TOKEN_VIEWER,
             "{\"action\":\"cordon_node\",\"env\":\"production\"}");
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.json, "rule_applies")));
    resp_free(&r);
    r = http("POST", "/api/v1/rules/builtin.node_disk_pressure/preview", TOKEN_VIEWER,
             "{\"action\":\"reboot_worker\",\"env\":\"demo\",\"confidence\":\"low\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = http("POST", "/api/v1/rules/no-such/preview", TOKEN_VIEWER,
             "{\"action\":\"reboot_worker\",\"env\":\"demo\"}");
    assert_int_equal(r.status, 404);
    resp_free(&r);

    /* Audit: pages, and verify. */
    j = get_json("/api/v1/audit?limit=2", TOKEN_VIEWER);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 2);
    json_t *rec = json_array_get(json_object_get(j, "records"), 0);
    assert_int_equal(json_integer_value(json_object_get(rec, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(rec, "verb")), "incident.open");
    assert_int_equal(strlen(json_string_value(json_object_get(rec, "hash"))), 64);
    assert_int_equal(json_integer_value(json_object_get(j, "next_seq")), 3);
    json_decref(j);
    j = get_json("/api/v1/audit?from_seq=3&limit=1000", TOKEN_VIEWER);
    struct snapshot now = snap();
    assert_int_equal(json_integer_value(json_object_get(j, "count")), now.audit_head - 2);
    assert_true(json_is_null(json_object_get(j, "next_seq")));
    json_decref(j);
    r = http("POST", "/api/v1/audit/verify", TOKEN_VIEWER, NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "count")), now.audit_head);
    resp_free(&r);
}

/* Checks one exposition line; returns the metric name of a sample line into name. */
static int prom_line(const char *l, char *name, size_t cap) {
    if (!*l) {
        return 0;
    }
    if (l[0] == '#') {
        char kind[8], n[128], rest[256];
        if (sscanf(l, "# %7s %127s %255[^\n]", kind, n, rest) != 3) {
            return -1;
        }
        if (!strcmp(kind, "TYPE")) {
            return (!strcmp(rest, "counter") || !strcmp(rest, "gauge") ||
                    !strcmp(rest, "histogram"))
                       ? 0
                       : -1;
        }
        return !strcmp(kind, "HELP") ? 0 : -1;
    }
    size_t k = 0;
    while (l[k] && (l[k] == '_' || l[k] == ':' || (l[k] >= 'a' && l[k] <= 'z') ||
                    (l[k] >= 'A' && l[k] <= 'Z') || (k && l[k] >= '0' && l[k] <= '9'))) {
        k++;
    }
    if (!k || k >= cap) {
        return -1;
    }
    memcpy(name, l, k);
    name[k] = '\0';
    const char *p = l + k;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            while (*p == '_' || (*p >= 'a' && *p <= 'z')) {
                p++;
            }
            if (*p++ != '=' || *p++ != '"') {
                return -1;
            }
            while (*p && *p != '"') {
                p += *p == '\\' ? 2 : 1;
            }
            if (*p++ != '"') {
                return -1;
            }
            if (*p == ',') {
                p++;
            } else if (*p != '}') {
                return -1;
            }
        }
        p++;
    }
    if (*p++ != ' ') {
        return -1;
    }
    char *end;
    strtod(p, &end);
    if (end == p && strcmp(p, "+Inf") && strcmp(p, "-Inf") && strcmp(p, "NaN")) {
        return -1;
    }
    return 1;
}

static void test_metrics(void **state) {
    assert_int_equal(rsre_metrics_inc(S.metrics, RSRE_M_APPROVALS_GRANTED_TOTAL), 0);
    struct resp r = http("GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    static const char *const spec[] = {
        "ops_incidents_open_total",
        "ops_incidents_resolved_total",
        "ops_incidents_by_type",
        "ops_auto_remediations_total",
        "ops_auto_remediations_failed_total",
        "ops_approvals_requested_total",
        "ops_approvals_granted_total",
        "ops_approvals_denied_total",
        "ops_policy_suppressions_total",
        "ops_chat_delivery_failures_total",
        "ops_http_requests_total",
        "ops_http_request_duration_seconds_bucket",
    };
    int seen[sizeof(spec) / sizeof(spec[0])] = {0};
    char *save = NULL;
    int lines = 0;
    for (char *l = strtok_r(r.body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char name[128];
        int k = prom_line(l, name, sizeof(name));
        if (k < 0) {
            fail_msg("not Prometheus text: '%s'", l);
        }
        for (size_t i = 0; k == 1 && i < sizeof(spec) / sizeof(spec[0]); i++) {
            seen[i] |= !strcmp(name, spec[i]);
        }
        lines++;
    }
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
        if (!seen[i]) {
            fail_msg("no sample of %s", spec[i]);
        }
    }
    resp_free(&r);
    r = http("GET", "/metrics", NULL, NULL);
    assert_non_null(strstr(r.body, "ops_incidents_by_type{type=\"node_disk_pressure\"} 2\n"));
    assert_non_null(strstr(r.body, "ops_incidents_by_type{type=\"registry_pull_failure\"} 0\n"));
    assert_non_null(strstr(r.body, "ops_approvals_granted_total 1\n"));
    assert_non_null(strstr(r.body, "ops_http_requests_total{method=\"GET\","
                                   "route=\"/api/v1/incidents\",code=\"200\"}"));
    assert_non_null(strstr(r.body, "ops_http_login_failures_total{reason=\"missing\"}"));
    resp_free(&r);
}

/* The registry on its own: types, labels, escaping, histograms, limits. */
static const double tbuckets[] = {0.1, 1};
static const struct rsre_metric_def tdefs[] = {
    {"test_things_total", "Things.\nCounted.", RSRE_METRIC_COUNTER, {"kind", "zone"}, NULL, 0},
    {"test_latency_seconds", "Latency.", RSRE_METRIC_HISTOGRAM, {NULL}, tbuckets, 2},
    {"ops_incidents_open_total", "Clash.", RSRE_METRIC_COUNTER, {NULL}, NULL, 0},
    {"bad-name", "Bad.", RSRE_METRIC_GAUGE, {NULL}, NULL, 0},
    {"test_bad_label", "Bad.", RSRE_METRIC_GAUGE, {"le"}, NULL, 0},
};

static void test_metrics_registry(void **state) {
    struct rsre_metrics *m;
    assert_int_equal(rsre_metrics_create(&m), 0);
    int things, lat, again;
    assert_int_equal(rsre_metrics_register(m, &tdefs[0], &things), 0);
    assert_int_equal(rsre_metrics_register(m, &tdefs[0], &again), 0);
    assert_int_equal(things, again);
    assert_int_equal(rsre_metrics_register(m, &tdefs[1], &lat), 0);
    assert_int_equal(rsre_metrics_register(m, &tdefs[2], &again), RSRE_EEXIST);
    assert_int_equal(rsre_metrics_register(m, &tdefs[3], &again), -EINVAL);
    assert_int_equal(rsre_metrics_register(m, &tdefs[4], &again), -EINVAL);
    const char *lv[] = {"a\"b\\c\nd", "z1"};
    assert_int_equal(rsre_metrics_add(m, things, lv, 2), 0);
    assert_int_equal(rsre_metrics_add(m, things, lv, 0.5), 0);
    assert_int_equal(rsre_metrics_add(m, things, lv, -1), -EINVAL);
    assert_int_equal(rsre_metrics_add(m, things, NULL, 1), -EINVAL);
    assert_int_equal(rsre_metrics_set(m, things, lv, 1), -EINVAL);
    assert_int_equal(rsre_metrics_add(m, 9999, NULL, 1), -EINVAL);
    char longv[RSRE_METRIC_LABEL_MAX + 2];
    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    const char *lv2[] = {longv, "z"};
    assert_int_equal(rsre_metrics_add(m, things, lv2, 1), RSRE_ELIMIT);
    for (int i = 0; i < RSRE_METRIC_MAX_SERIES + 5; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        const char *lv3[] = {k, "z"};
        int rc = rsre_metrics_add(m, things, lv3, 1);
        assert_int_equal(rc, i < RSRE_METRIC_MAX_SERIES - 1 ? 0 : RSRE_ELIMIT);
    }
    assert_int_equal(rsre_metrics_observe(m, lat, NULL, 0.05), 0);
    assert_int_equal(rsre_metrics_observe(m, lat, NULL, 0.5), 0);
    assert_int_equal(rsre_metrics_observe(m, lat, NULL, 5), 0);
    double v;
    assert_int_equal(rsre_metrics_get(m, things, lv, &v), 0);
    assert_true(v == 2.5);
    assert_int_equal(rsre_metrics_get(m, lat, NULL, &v), 0);
    assert_true(v == 3);
    char *text;
    size_t len;
    assert_int_equal(rsre_metrics_render(m, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "# HELP test_things_total Things.\\nCounted.\n"));
    assert_non_null(strstr(text, "test_things_total{kind=\"a\\\"b\\\\c\\nd\",zone=\"z1\"} 2.5\n"));
    assert_non_null(strstr(text, "test_latency_seconds_bucket{le=\"0.1\"} 1\n"
                                 "test_latency_seconds_bucket{le=\"1\"} 2\n"
                                 "test_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                                 "test_latency_seconds_sum 5.55\n"
                                 "test_latency_seconds_count 3\n"));
    assert_non_null(strstr(text, "ops_chat_delivery_failures_total 0\n"));
    char *save = NULL, name[128];
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (prom_line(l, name, sizeof(name)) < 0) {
            fail_msg("not Prometheus text: '%s'", l);
        }
    }
    free(text);
    assert_int_equal(rsre_metrics_zero(m, things), 0);
    assert_int_equal(rsre_metrics_get(m, things, lv, &v), 0);
    assert_true(v == 0);
    rsre_metrics_destroy(m);
    /* NULL registries do nothing. */
    assert_int_equal(rsre_metrics_inc(NULL, RSRE_M_INCIDENTS_OPEN_TOTAL), 0);
    rsre_metrics_destroy(NULL);
}

static void set_no_callbacks(struct server *s, void *arg) {
    set_all_callbacks(s, (void *)1);
}

static void set_callbacks_back(struct server *s, void *arg) {
    set_all_callbacks(s, NULL);
}

static void test_callbacks(void **state) {
    on_loop(set_no_callbacks, NULL);
    struct snapshot before = snap();
    expect("POST", "/api/v1/approvals/apr-1/approve", TOKEN_APPROVER, "{}", 503);
    expect("GET", "/api/v1/agents", TOKEN_VIEWER, NULL, 503);
    unchanged(&before, NULL);
    on_loop(set_callbacks_back, NULL);
    __atomic_store_n(&ready_flag, 0, __ATOMIC_SEQ_CST);
    struct resp r = http("GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 503);
    assert_string_equal(json_string_value(json_object_get(r.json, "reason")), "ingest not started");
    resp_free(&r);
    __atomic_store_n(&ready_flag, 1, __ATOMIC_SEQ_CST);
    expect("GET", "/readyz", NULL, NULL, 200);
}

/* A second server on the same loop, with options of the test's choosing. */
struct extra {
    struct rsre_api_options o;
    rsre_api *api;
    int rc, closed;
};

static void extra_create(struct server *s, void *arg) {
    struct extra *e = arg;
    e->rc = rsre_api_create(&s->loop, s->store, NULL, &e->o, &e->api);
}

static void extra_close(struct server *s, void *arg) {
    struct extra *e = arg;
    rsre_api_close(e->api, on_api_closed, &e->closed);
}

static void extra_wait_closed(struct extra *e) {
    for (int i = 0; i < 500 && !__atomic_load_n(&e->closed, __ATOMIC_SEQ_CST); i++) {
        usleep(10000);
    }
    assert_int_equal(e->closed, 1);
}

static void test_login_budget(void **state) {
    struct extra e = {.o = {.listen = "127.0.0.1:0",
                            .tokens_file = S.tokens,
                            .login_audit_per_minute = 3,
                            .metrics_need_token = 1}};
    on_loop(extra_create, &e);
    assert_int_equal(e.rc, 0);
    int port = rsre_api_port(e.api);
    struct snapshot before = snap();
    for (int i = 0; i < 8; i++) {
        struct resp r = http_port(port, "GET", "/api/v1/incidents", NULL, NULL, 0);
        assert_int_equal(r.status, 401);
        resp_free(&r);
    }
    assert_int_equal(audit_since(before.audit_head, "login failure", NULL), 3);
    /* metrics_need_token: /metrics is a viewer route on this server. */
    struct resp r = http_port(port, "GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    r = http_port(port, "GET", "/metrics", TOKEN_VIEWER, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "ops_http_login_failures_total{reason=\"missing\"} 9\n"));
    resp_free(&r);
    on_loop(extra_close, &e);
    extra_wait_closed(&e);
}

static void test_tls(void **state) {
    char cert[256], key[256], cmd[1024];
    snprintf(cert, sizeof(cert), "%s/cert.pem", S.dir);
    snprintf(key, sizeof(key), "%s/key.pem", S.dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s -out %s -days 1 -subj /CN=localhost -addext "
             "subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             key, cert);
    if (system(cmd) != 0) {
        skip();
    }
    struct extra e = {.o = {.listen = "127.0.0.1:0",
                            .tokens_file = S.tokens,
                            .tls_cert_file = cert,
                            .tls_key_file = key}};
    on_loop(extra_create, &e);
    assert_int_equal(e.rc, 0);
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/api/v1/incidents/inc-1", rsre_api_port(e.api));
    CURL *c = curl_easy_init();
    struct resp r = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN_VIEWER);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, cert);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long ver = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &ver);
    assert_int_equal(r.status, 200);
    assert_int_equal(ver, CURL_HTTP_VERSION_2_0);
    assert_non_null(strstr(r.body, "\"evidence\""));
    resp_free(&r);
    /* HTTP/1.1 over TLS too; without a token 401 as over plain HTTP. */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &ver);
    assert_int_equal(r.status, 401);
    assert_int_equal(ver, CURL_HTTP_VERSION_1_1);
    resp_free(&r);
    /* Close the server while curl still holds its (HTTP/1.1 keep-alive) connection. */
    on_loop(extra_close, &e);
    extra_wait_closed(&e);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void test_tokens_file(void **state) {
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"tokens:\n  - {operator: a, role: viewer, sha256: zz}\n", "sha256"},
        {"tokens:\n  - {operator: a, role: root, sha256: "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
         "role"},
        {"tokens:\n  - {operator: a, role: viewer, sha256: "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n"
         "  - {operator: b, role: admin, sha256: "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
         "twice"},
        {"tokens:\n  - {operator: 'a b', role: viewer, sha256: "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
         "operator"},
        {"tokens:\n  - {operator: a, role: viewer, token: hunter2}\n", "unknown key"},
        {"tokens: [\n", "parse"},
        {"users: []\n", "tokens"},
    };
    char path[256];
    snprintf(path, sizeof(path), "%s/bad-tokens.yaml", S.dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(path, bad[i].text);
        struct extra e = {.o = {.listen = "127.0.0.1:0", .tokens_file = path}};
        on_loop(extra_create, &e);
        if (e.rc == 0) {
            fail_msg("token file %zu accepted", i);
        }
    }
    struct extra e = {.o = {.listen = "127.0.0.1:0", .tokens_file = "/nonexistent/tokens.yaml"}};
    on_loop(extra_create, &e);
    assert_int_not_equal(e.rc, 0);
    e.o.tokens_file = S.tokens;
    e.o.listen = "nonsense";
    on_loop(extra_create, &e);
    assert_int_equal(e.rc, RSRE_EINVALID);
    char taken[32];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", S.port);
    e.o.listen = taken;
    on_loop(extra_create, &e);
    assert_int_equal(e.rc, -EADDRINUSE);
}

/*
 * LeakSanitizer: h2o 2.2 keeps freed memory-pool chunks and socket/HTTP2 buffers in per-thread
 * recycle lists (h2o_mem_alloc_recycle) that it offers no way to drain; they become unreachable
 * when the server thread exits (in the aggregator the loop thread lives until exit, so they stay
 * reachable there). Only those caches are exempt; every other allocation stays checked.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:h2o_mem_alloc_recycle\n";
}

/* ---- main ------------------------------------------------------------------------------------ */

static int group_setup(void **state) {
    char dir[] = "/tmp/rsre-api-XXXXXX";
    if (!mkdtemp(dir)) {
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    server_start(&S, dir);
    return 0;
}

static int group_teardown(void **state) {
    server_stop(&S); /* while `curl` still holds a keep-alive connection */
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    nftw(S.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* --serve DIR: the CLI tests' server. */
static uv_signal_t sigterm, sigint;

static void on_signal(uv_signal_t *h, int signum) {
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    rsre_api_close(S.api, on_api_closed, &S.closed);
}

static int serve(const char *dir) {
    memset(&S, 0, sizeof(S));
    snprintf(S.dir, sizeof(S.dir), "%s", dir);
    snprintf(S.store_dir, sizeof(S.store_dir), "%s/store", dir);
    must(rsre_store_open(S.store_dir, NULL, &S.store), "open");
    seed(S.store);
    write_tokens(dir, S.tokens, sizeof(S.tokens));
    uv_loop_init(&S.loop);
    struct rsre_api_options o = {.listen = "127.0.0.1:0", .tokens_file = S.tokens};
    must(rsre_api_create(&S.loop, S.store, NULL, &o, &S.api), "api");
    set_all_callbacks(&S, NULL);
    uv_signal_init(&S.loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(&S.loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    char path[256], tmp[300], port[16];
    snprintf(path, sizeof(path), "%s/port", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(port, sizeof(port), "%d\n", rsre_api_port(S.api));
    write_text(tmp, port);
    rename(tmp, path);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    uv_loop_close(&S.loop);
    rsre_store_close(S.store);
    return S.closed ? 0 : 1;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    rsre_log_set_level_name(getenv("RSRE_LOG_LEVEL") ? getenv("RSRE_LOG_LEVEL") : "error");
    if (argc == 3 && !strcmp(argv[1], "--serve")) {
        return serve(argv[2]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unauthenticated),
        cmocka_unit_test(test_wrong_role),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_happy),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_metrics_registry),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_login_budget),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_tokens_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
