/*
 * Unit tests of the notification core (aggregator/notify) on a real LMDB store with the real
 * approvals module, through a fake in-process transport that implements notify/channel.h and
 * lets each test decide what every send returns: routing rules (matching, merging, errors with
 * line:col, no inline secrets), signed buttons (every byte tampered, another user or channel,
 * expiry, length), incident threads (one message, then edits), duplicate suppression inside the
 * window only, the token bucket, retries honouring retry_after, fail-over after retries or a
 * chat failure, channel health, the in-app record, and chat approvals end to end (forwarded,
 * expired, unmapped, requester and replayed buttons refused and audited; a replay after a
 * restart refused too; the decision edited into every approver's message).
 */
/* approvals.h's enum rsre_channel and channel.h's struct rsre_channel share a tag name. */
#define rsre_channel rsre_vote_channel
#include "approvals/approvals.h"
#undef rsre_channel
#include "approvals/operators.h"
#include "common/error.h"
#include "common/log.h"
#include "notify/notify.h"
#include "store/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1700000000000LL
#define SEC 1000LL
#define MIN (60 * SEC)

static int64_t now_ms = T0;

/* ---- a fake transport ---- */

struct fake_send {
    char chat[64], text[RSRE_NOTIFY_TEXT_MAX], edit_ref[128];
    size_t nbuttons;
    char payload[2][RSRE_NOTIFY_PAYLOAD_MAX + 1];
    char url[600];
    rsre_send_cb cb;
    void *arg;
    int done;
};

struct fake {
    struct rsre_channel base;
    struct fake_send sent[64];
    size_t n;
    int next_id;
    char ack_text[320];
    int acks;
    rsre_chat_action_cb acb;
    void *aarg;
    rsre_chat_delivery_cb dcb; /* late failures (WhatsApp status webhooks) */
    void *darg;
    int destroyed;
};

static struct fake *tg, *wa;

static int fake_send(struct rsre_channel *ch, const struct rsre_chat_message *m, rsre_send_cb cb,
                     void *arg) {
    struct fake *f = (struct fake *)ch;
    if (f->n >= 64) {
        return -ENOSPC;
    }
    struct fake_send *s = &f->sent[f->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->chat, sizeof(s->chat), "%s", m->chat);
    snprintf(s->text, sizeof(s->text), "%s", m->text);
    snprintf(s->edit_ref, sizeof(s->edit_ref), "%s", m->edit_ref ? m->edit_ref : "");
    assert_true(m->nbuttons <= 3);
    for (size_t i = 0; i < m->nbuttons; i++) {
        if (m->buttons[i].payload) {
            assert_true(strlen(m->buttons[i].payload) <= 64);
            snprintf(s->payload[s->nbuttons++], sizeof(s->payload[0]), "%s", m->buttons[i].payload);
        } else {
            snprintf(s->url, sizeof(s->url), "%s", m->buttons[i].url);
        }
    }
    s->cb = cb;
    s->arg = arg;
    return 0;
}

static int fake_ack(struct rsre_channel *ch, const struct rsre_chat_action *a, const char *text) {
    (void)a;
    struct fake *f = (struct fake *)ch;
    snprintf(f->ack_text, sizeof(f->ack_text), "%s", text);
    f->acks++;
    return 0;
}

static int fake_start(struct rsre_channel *ch, rsre_chat_action_cb cb, void *arg) {
    struct fake *f = (struct fake *)ch;
    f->acb = cb;
    f->aarg = arg;
    return 0;
}

static void fake_destroy(struct rsre_channel *ch) {
    struct fake *f = (struct fake *)ch;
    for (size_t i = 0; i < f->n; i++) {
        if (!f->sent[i].done) {
            f->sent[i].done = 1;
            struct rsre_send_result r = {.status = RSRE_SEND_TRANSIENT};
            f->sent[i].cb(f->sent[i].arg, &r);
        }
    }
    f->destroyed = 1;
}

static void fake_on_delivery(struct rsre_channel *ch, rsre_chat_delivery_cb cb, void *arg) {
    struct fake *f = (struct fake *)ch;
    f->dcb = cb;
    f->darg = arg;
}

static const struct rsre_channel_ops tg_ops = {"telegram", fake_send,    fake_ack,
                                               fake_start, fake_destroy, NULL};
static const struct rsre_channel_ops wa_ops = {"whatsapp", fake_send,    fake_ack,
                                               fake_start, fake_destroy, fake_on_delivery};

/* Completes send `i` of `f`. */
static void complete(struct fake *f, size_t i, enum rsre_send_status st, int64_t retry_after) {
    assert_true(i < f->n);
    assert_false(f->sent[i].done);
    f->sent[i].done = 1;
    struct rsre_send_result r = {.status = st, .retry_after_ms = retry_after};
    if (st == RSRE_SEND_OK) {
        snprintf(r.message_id, sizeof(r.message_id), "m%d", ++f->next_id);
    } else {
        r.http_status = st == RSRE_SEND_RETRY ? 429 : st == RSRE_SEND_CHAT_FAILED ? 403 : 502;
        snprintf(r.error, sizeof(r.error), "injected");
    }
    f->sent[i].cb(f->sent[i].arg, &r);
}

/* WhatsApp's status webhook says message `id` to `chat` was not delivered (131026). */
static void late_failure(const char *chat, const char *id) {
    assert_non_null(wa->dcb);
    struct rsre_send_result r = {.status = RSRE_SEND_CHAT_FAILED, .api_code = 131026};
    snprintf(r.error, sizeof(r.error), "Message undeliverable");
    struct rsre_chat_delivery d = {
        .channel = "whatsapp", .chat = chat, .message_id = id, .result = &r};
    wa->dcb(wa->darg, &d);
}

static size_t pending(const struct fake *f) {
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++) {
        k += !f->sent[i].done;
    }
    return k;
}

/* ---- fixture ---- */

static const char routes_yaml[] =
    "admin_url: https://robot.example/ui/\n"
    "secret_env: RSRE_TEST_NOTIFY_SECRET\n"
    "suppress_minutes: 15\n"
    "channels:\n"
    "  - {name: telegram, alternate: whatsapp, chats: [\"-100\"], rate_per_minute: 60, burst: 3,\n"
    "     max_attempts: 3, backoff_ms: 1000, backoff_max_ms: 8000}\n"
    "  - {name: whatsapp, chats: [\"15550009999\"], rate_per_minute: 60, burst: 3,\n"
    "     max_attempts: 2, backoff_ms: 1000}\n"
    "routes:\n"
    "  - match: {environment: [production], severity: [critical]}\n"
    "    to: [{channel: telegram, chats: [\"-100\", \"-200\"]}]\n"
    "    continue: true\n"
    "  - match: {domain: [operator_channels]}\n"
    "    to: [{channel: whatsapp, chats: [\"15550001111\"]}]\n"
    "default: [{channel: telegram, chats: [\"-100\"]}]\n"
    "approvals: {channels: [telegram, whatsapp]}\n";

static const char operators_yaml[] =
    "operators:\n"
    "  - {id: alice, roles: [approver], telegram_user_id: 1001, whatsapp_number: "
    "\"+15550001001\"}\n"
    "  - {id: bob, roles: [operator, approver], telegram_user_id: 1002}\n"
    "  - {id: erin, roles: [viewer], telegram_user_id: 1005}\n";

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef-test-secret";

struct fx {
    char dir[64];
    rsre_store *store;
    struct rsre_notify_routes *routes;
    struct rsre_operators *ops;
    struct rsre_approvals *ap;
    struct rsre_notify *n;
    unsigned down, total, health_calls, failures;
    char decided[64];
    int ndecided;
    unsigned wakes;
};

static int h_in_txn(void *arg, int (*fn)(rsre_store_txn *, void *), void *fa) {
    struct fx *f = arg;
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(f->store, 0, &txn);
    if (rc) {
        return rc;
    }
    rc = fn(txn, fa);
    if (rc) {
        rsre_store_txn_abort(txn);
        return rc;
    }
    return rsre_store_txn_commit(txn);
}

static int h_decided(void *arg, rsre_store_txn *txn, const char *id, int64_t t) {
    (void)txn;
    (void)t;
    struct fx *f = arg;
    snprintf(f->decided, sizeof(f->decided), "%s", id);
    f->ndecided++;
    return 0;
}

static void h_channels(void *arg, unsigned down, unsigned total, const char *detail) {
    (void)detail;
    struct fx *f = arg;
    f->down = down;
    f->total = total;
    f->health_calls++;
}

static void h_failed(void *arg, const char *channel) {
    (void)channel;
    ((struct fx *)arg)->failures++;
}

static void h_wake(void *arg) {
    ((struct fx *)arg)->wakes++;
}

static int64_t h_now(void *arg) {
    (void)arg;
    return now_ms;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void make_notify(struct fx *f) {
    tg = calloc(1, sizeof(*tg));
    wa = calloc(1, sizeof(*wa));
    tg->base.ops = &tg_ops;
    wa->base.ops = &wa_ops;
    struct rsre_notify_config cfg = {.routes = f->routes,
                                     .store = f->store,
                                     .approvals = f->ap,
                                     .operators = f->ops,
                                     .channels = {&tg->base, &wa->base},
                                     .nchannels = 2,
                                     .secret = secret,
                                     .secret_len = sizeof(secret) - 1,
                                     .jitter_seed = 42};
    struct rsre_notify_hooks hooks = {.in_txn = h_in_txn,
                                      .decided = h_decided,
                                      .channels = h_channels,
                                      .delivery_failed = h_failed,
                                      .wake = h_wake,
                                      .now = h_now,
                                      .arg = f};
    assert_int_equal(rsre_notify_create(&cfg, &hooks, &f->n), 0);
    assert_int_equal(rsre_notify_start(f->n), 0);
}

static void drop_notify(struct fx *f) {
    rsre_notify_destroy(f->n);
    f->n = NULL;
    assert_true(tg->destroyed && wa->destroyed);
    free(tg);
    free(wa);
    tg = wa = NULL;
}

static int setup(void **state) {
    rsre_log_set_level_name("error");
    now_ms = T0;
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-test-notify-XXXXXX");
    if (!f || !mkdtemp(f->dir) || rsre_store_open(f->dir, NULL, &f->store)) {
        return -1;
    }
    struct rsre_yerr err;
    if (rsre_notify_routes_load(routes_yaml, sizeof(routes_yaml) - 1, &f->routes, &err)) {
        fprintf(stderr, "routes %d:%d: %s\n", err.line, err.col, err.msg);
        return -1;
    }
    if (rsre_operators_load(operators_yaml, sizeof(operators_yaml) - 1, &f->ops, &err)) {
        fprintf(stderr, "operators %d:%d: %s\n", err.line, err.col, err.msg);
        return -1;
    }
    struct rsre_approvals_config ac = {f->ops, NULL, 0};
    if (rsre_approvals_create(&ac, &f->ap)) {
        return -1;
    }
    make_notify(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    if (f->n) {
        drop_notify(f);
    }
    rsre_approvals_destroy(f->ap);
    rsre_operators_destroy(f->ops);
    rsre_notify_routes_destroy(f->routes);
    rsre_store_close(f->store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static rsre_store_incident *incident(const char *id, const char *type, const char *domain,
                                     int severity, int env) {
    static rsre_store_incident inc;
    static RobotSre__Store__ResourceRef ref, *refs[1];
    robot_sre__store__incident__init(&inc);
    robot_sre__store__resource_ref__init(&ref);
    ref.kind = "Node";
    ref.name = "worker-1";
    refs[0] = &ref;
    inc.id = (char *)id;
    inc.incident_type = (char *)type;
    inc.domain = (char *)domain;
    inc.severity = severity;
    inc.environment = env;
    inc.confidence = ROBOT_SRE__STORE__CONFIDENCE__CONFIDENCE_HIGH;
    inc.confidence_score = 0.9;
    inc.lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_TRIAGED;
    inc.evidence_summary = "DiskPressure=True for 17m; nodefs 96% used";
    inc.n_resource_scope = 1;
    inc.resource_scope = refs;
    return &inc;
}

#define SEV_CRIT ROBOT_SRE__STORE__SEVERITY__SEVERITY_CRITICAL
#define SEV_WARN ROBOT_SRE__STORE__SEVERITY__SEVERITY_WARNING
#define ENV_PROD ROBOT_SRE__STORE__ENVIRONMENT__ENVIRONMENT_PRODUCTION
#define ENV_STAGING ROBOT_SRE__STORE__ENVIRONMENT__ENVIRONMENT_STAGING

struct kind_count {
    const char *kind;
    size_t n;
};

static int count_cb(const char *json, void *ud) {
    struct kind_count *c = ud;
    char want[64];
    snprintf(want, sizeof(want), "\"kind\":\"%s\"", c->kind);
    c->n += strstr(json, want) != NULL;
    return 0;
}

static size_t count_inapp(struct fx *f, const char *kind) {
    struct kind_count c = {kind, 0};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_notify_inapp_list(txn, 0, 1000, count_cb, &c), 0);
    rsre_store_txn_abort(txn);
    return c.n;
}

/* ---- routing ---- */

static void test_routing_match(void **state) {
    struct fx *f = *state;
    struct rsre_notify_target t[8];
    struct rsre_notify_subject s = {"production", "node_health", "node_disk_pressure", "critical"};
    size_t n = rsre_notify_route(f->routes, &s, t, 8);
    assert_int_equal(n, 1);
    assert_string_equal(t[0].channel, "telegram");
    assert_int_equal(t[0].nchats, 2);
    /* continue: true merges the second route's targets. */
    s.domain = "operator_channels";
    n = rsre_notify_route(f->routes, &s, t, 8);
    assert_int_equal(n, 2);
    assert_string_equal(t[1].channel, "whatsapp");
    assert_string_equal(t[1].chats[0], "15550001111");
    /* No route matches: default. */
    struct rsre_notify_subject w = {"staging", "node_health", "node_disk_pressure", "warning"};
    n = rsre_notify_route(f->routes, &w, t, 8);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].nchats, 1);
    assert_string_equal(t[0].chats[0], "-100");
    assert_int_equal(rsre_notify_routes_suppress_ms(f->routes), 15 * MIN);
    assert_string_equal(rsre_notify_routes_admin_url(f->routes), "https://robot.example/ui");
}

static void expect_error(const char *yaml, int code, int line, const char *has) {
    struct rsre_notify_routes *r = NULL;
    struct rsre_yerr err;
    int rc = rsre_notify_routes_load(yaml, strlen(yaml), &r, &err);
    if (rc != code || (line && err.line != line) || !strstr(err.msg, has)) {
        fail_msg("yaml:\n%s\nrc=%d (want %d) at %d:%d (want line %d): %s (want '%s')", yaml, rc,
                 code, err.line, err.col, line, err.msg, has);
    }
    assert_null(r);
}

static void test_routing_errors(void **state) {
    (void)state;
    expect_error("channels: [{name: telegram}]\nroutes:\n  - to: [{channel: slack, chats: [a]}]\n",
                 RSRE_EINVALID, 3, "'slack' is not in `channels`");
    expect_error("channels: [{name: telegram}]\nbot_token: 123:abc\n", RSRE_EINVALID, 2,
                 "unknown key 'bot_token'");
    expect_error("channels: [{name: telegram, token: x}]\n", RSRE_EINVALID, 1,
                 "unknown key 'token'");
    expect_error("channels: [{name: telegram}]\nroutes:\n  - match: {severity: [fatal]}\n"
                 "    to: [{channel: telegram, chats: [a]}]\n",
                 RSRE_EINVALID, 3, "unknown value 'fatal'");
    expect_error("channels: [{name: telegram, alternate: whatsapp}]\n", RSRE_EINVALID, 1,
                 "alternate");
    expect_error("channels: [{name: telegram, max_attempts: 0}]\n", RSRE_EINVALID, 1,
                 "max_attempts");
    expect_error("secret_file: relative/path\n", RSRE_EINVALID, 1, "absolute path");
    expect_error("channels: [{name: telegram}, {name: telegram}]\n", RSRE_EEXIST, 1, "twice");
    expect_error("routes: [\n", RSRE_EPARSE, 0, "");
}

/* ---- signing ---- */

static void test_sign_verify(void **state) {
    (void)state;
    const uint8_t *k = secret;
    size_t kl = sizeof(secret) - 1;
    char p[RSRE_NOTIFY_PAYLOAD_MAX + 1];
    int64_t exp = T0 + 10 * MIN;
    assert_int_equal(rsre_notify_sign(k, kl, "telegram", "1001", "apr-123456", 1, exp, p), 0);
    assert_true(strlen(p) <= 64);
    struct rsre_notify_button b;
    assert_int_equal(rsre_notify_verify(k, kl, "telegram", "1001", p, T0, &b), RSRE_SIGN_OK);
    assert_string_equal(b.approval_id, "apr-123456");
    assert_int_equal(b.approve, 1);
    assert_true(b.expires_ms <= exp && b.expires_ms > exp - SEC);
    /* Another user, another channel, another key. */
    assert_int_equal(rsre_notify_verify(k, kl, "telegram", "1002", p, T0, &b), RSRE_SIGN_BAD_MAC);
    assert_int_equal(rsre_notify_verify(k, kl, "whatsapp", "1001", p, T0, &b), RSRE_SIGN_BAD_MAC);
    assert_int_equal(rsre_notify_verify((const uint8_t *)"another-secret-another-secret-xx", 32,
                                        "telegram", "1001", p, T0, &b),
                     RSRE_SIGN_BAD_MAC);
    /* Expired. */
    assert_int_equal(rsre_notify_verify(k, kl, "telegram", "1001", p, exp, &b), RSRE_SIGN_EXPIRED);
    /* Every byte tampered, with several replacement characters. */
    size_t len = strlen(p);
    const char repl[] = "a0.-_Zd";
    for (size_t i = 0; i < len; i++) {
        for (size_t r = 0; r < sizeof(repl) - 1; r++) {
            char q[RSRE_NOTIFY_PAYLOAD_MAX + 1];
            memcpy(q, p, len + 1);
            if (q[i] == repl[r]) {
                continue;
            }
            q[i] = repl[r];
            enum rsre_sign_verdict v = rsre_notify_verify(k, kl, "telegram", "1001", q, T0, &b);
            if (v == RSRE_SIGN_OK) {
                fail_msg("tampered byte %zu ('%c') verified: %s", i, repl[r], q);
            }
        }
    }
    /* Truncated and extended. */
    for (size_t cut = 0; cut < len; cut++) {
        char q[RSRE_NOTIFY_PAYLOAD_MAX + 1];
        memcpy(q, p, cut);
        q[cut] = '\0';
        assert_int_not_equal(rsre_notify_verify(k, kl, "telegram", "1001", q, T0, &b),
                             RSRE_SIGN_OK);
    }
    char longer[200];
    snprintf(longer, sizeof(longer), "%sA", p);
    assert_int_not_equal(rsre_notify_verify(k, kl, "telegram", "1001", longer, T0, &b),
                         RSRE_SIGN_OK);
    /* The deny button is a different payload; ids that leave no room for a MAC are refused. */
    char d[RSRE_NOTIFY_PAYLOAD_MAX + 1];
    assert_int_equal(rsre_notify_sign(k, kl, "telegram", "1001", "apr-123456", 0, exp, d), 0);
    assert_string_not_equal(p, d);
    assert_int_equal(rsre_notify_verify(k, kl, "telegram", "1001", d, T0, &b), RSRE_SIGN_OK);
    assert_int_equal(b.approve, 0);
    assert_int_equal(rsre_notify_sign(k, kl, "telegram", "1",
                                      "apr-123456789012345678901234567890123456", 1, exp, d),
                     RSRE_ELIMIT);
    assert_int_equal(rsre_notify_sign(k, kl, "telegram", "1", "apr.1", 1, exp, d), RSRE_EINVALID);
}

/* ---- threads, suppression, retries, fail-over ---- */

static void test_thread_and_suppression(void **state) {
    struct fx *f = *state;
    rsre_store_incident *inc =
        incident("inc-7", "node_disk_pressure", "node_health", SEV_CRIT, ENV_PROD);
    rsre_notify_incident(f->n, inc, "opened", now_ms);
    assert_int_equal(tg->n, 2); /* -100 and -200 */
    assert_string_equal(tg->sent[0].edit_ref, "");
    assert_non_null(strstr(tg->sent[0].text, "[CRITICAL] node_disk_pressure"));
    assert_non_null(strstr(tg->sent[0].text, "Confidence: high"));
    assert_non_null(strstr(tg->sent[0].text, "Scope: Node/worker-1"));
    assert_non_null(strstr(tg->sent[0].text, "Evidence: DiskPressure=True"));
    assert_string_equal(tg->sent[0].url, "https://robot.example/ui/incidents/inc-7");
    /* While the first message is in flight, an update waits (it needs the message id). */
    inc->lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_CONTAINED;
    rsre_notify_incident(f->n, inc, "state", now_ms);
    assert_int_equal(tg->n, 2);
    /* Nothing is due while it waits (no busy timer): the completion wakes it. */
    assert_true(rsre_notify_next_due(f->n) == INT64_MAX);
    unsigned wakes = f->wakes;
    complete(tg, 0, RSRE_SEND_OK, 0);
    assert_true(f->wakes > wakes);
    complete(tg, 1, RSRE_SEND_OK, 0);
    now_ms += SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 4);
    /* The update edits each thread's first message. */
    assert_string_equal(tg->sent[2].edit_ref,
                        !strcmp(tg->sent[2].chat, tg->sent[0].chat) ? "m1" : "m2");
    assert_string_equal(tg->sent[3].edit_ref,
                        !strcmp(tg->sent[3].chat, tg->sent[0].chat) ? "m1" : "m2");
    assert_non_null(strstr(tg->sent[2].text, "State: contained"));
    complete(tg, 2, RSRE_SEND_OK, 0);
    complete(tg, 3, RSRE_SEND_OK, 0);
    /* The same state again within 15m: nothing sent. */
    now_ms += 5 * MIN;
    rsre_notify_incident(f->n, inc, "state", now_ms);
    now_ms += SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 4);
    struct rsre_notify_stats st;
    rsre_notify_stats(f->n, &st);
    assert_true(st.suppressed >= 2);
    /* After the window it may be repeated (still an edit of the same thread). */
    now_ms += 15 * MIN;
    rsre_notify_incident(f->n, inc, "state", now_ms);
    assert_int_equal(tg->n, 6);
    assert_true(tg->sent[4].edit_ref[0] == 'm' && tg->sent[5].edit_ref[0] == 'm');
    complete(tg, 4, RSRE_SEND_OK, 0);
    complete(tg, 5, RSRE_SEND_OK, 0);
    /* Every event is in-app too. */
    assert_int_equal(count_inapp(f, "incident"), 4);
    rsre_notify_stats(f->n, &st);
    assert_int_equal(st.sent, 2);
    assert_int_equal(st.edits, 4);
}

static void test_retry_after_and_backoff(void **state) {
    struct fx *f = *state;
    rsre_notify_incident(f->n, incident("inc-8", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    assert_int_equal(tg->n, 1);
    complete(tg, 0, RSRE_SEND_RETRY, 30 * SEC);
    /* Not before retry_after. */
    assert_true(rsre_notify_next_due(f->n) >= now_ms + 30 * SEC);
    rsre_notify_poll(f->n, now_ms + 29 * SEC);
    assert_int_equal(tg->n, 1);
    now_ms = rsre_notify_next_due(f->n);
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 2);
    /* A 5xx backs off with jitter: between half and all of the base delay (1s * 2). */
    complete(tg, 1, RSRE_SEND_TRANSIENT, 0);
    int64_t due = rsre_notify_next_due(f->n);
    assert_true(due >= now_ms + 1000 && due <= now_ms + 2000);
    now_ms = due;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 3);
    complete(tg, 2, RSRE_SEND_OK, 0);
    assert_int_equal(f->failures, 0);
    assert_int_equal(wa->n, 0);
    assert_int_equal(f->down, 0);
}

static void test_failover_and_health(void **state) {
    struct fx *f = *state;
    rsre_notify_incident(f->n, incident("inc-9", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    /* max_attempts 3: three 5xx, then fail-over to WhatsApp's chats. */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tg->n, i + 1);
        complete(tg, i, RSRE_SEND_TRANSIENT, 0);
        now_ms = i < 2 ? rsre_notify_next_due(f->n) : now_ms;
        rsre_notify_poll(f->n, now_ms);
    }
    assert_int_equal(tg->n, 3);
    assert_int_equal(f->failures, 1);
    assert_int_equal(f->down, 1);
    assert_int_equal(f->total, 2);
    assert_int_equal(wa->n, 1);
    assert_string_equal(wa->sent[0].chat, "15550009999");
    assert_non_null(strstr(wa->sent[0].text, "inc-9"));
    complete(wa, 0, RSRE_SEND_OK, 0);
    assert_int_equal(count_inapp(f, "delivery_failure"), 1);
    /* A chat failure (403 blocked) fails over at once; WhatsApp failing too leaves in-app. */
    now_ms += MIN;
    rsre_notify_incident(f->n, incident("inc-10", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    assert_int_equal(tg->n, 4);
    complete(tg, 3, RSRE_SEND_CHAT_FAILED, 0);
    assert_int_equal(wa->n, 2);
    complete(wa, 1, RSRE_SEND_CHAT_FAILED, 0);
    assert_int_equal(f->down, 2);
    assert_int_equal(f->failures, 3);
    assert_int_equal(count_inapp(f, "delivery_failure"), 3);
    assert_int_equal(pending(tg) + pending(wa), 0);
    /* Telegram works again: up. */
    now_ms += MIN;
    rsre_notify_incident(f->n, incident("inc-11", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    complete(tg, 4, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 1);
    struct rsre_notify_stats st;
    rsre_notify_stats(f->n, &st);
    assert_int_equal(st.failovers, 2);
    assert_int_equal(st.inapp_failures, 0);
}

static void test_recheck_recovers(void **state) {
    struct fx *f = *state;
    rsre_notify_incident(f->n, incident("inc-30", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    complete(tg, 0, RSRE_SEND_CHAT_FAILED, 0); /* -100 blocked the bot */
    assert_int_equal(wa->n, 1);
    complete(wa, 0, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 1);
    assert_int_equal(count_inapp(f, "delivery_failure"), 1);
    /* Nothing before the recheck time (300 s by default). */
    rsre_notify_poll(f->n, now_ms + 299 * SEC);
    assert_int_equal(tg->n, 1);
    /* Then the same message again; still blocked: no new fail-over, no new failure record. */
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 2);
    assert_string_equal(tg->sent[1].chat, "-100");
    assert_string_equal(tg->sent[1].text, tg->sent[0].text);
    complete(tg, 1, RSRE_SEND_CHAT_FAILED, 0);
    assert_int_equal(wa->n, 1);
    assert_int_equal(count_inapp(f, "delivery_failure"), 1);
    assert_int_equal(f->down, 1);
    /* Unblocked: the next recheck gets through and the channel is up. */
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 3);
    complete(tg, 2, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 0);
    now_ms += 600 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 3);
}

/* A late failure of a thread's update (on WhatsApp a reply with its own id, not the thread's
 * first message) is that thread's failure, and the failing chat gets the text again at the
 * next recheck even though the thread records it as sent within the suppression window. */
static void test_late_failure_of_update_rechecked(void **state) {
    struct fx *f = *state;
    rsre_store_incident *inc = incident("inc-40", "t", "node_health", SEV_WARN, ENV_STAGING);
    rsre_notify_incident(f->n, inc, "opened", now_ms);
    complete(tg, 0, RSRE_SEND_CHAT_FAILED, 0); /* -100 blocked the bot */
    assert_int_equal(wa->n, 1);
    complete(wa, 0, RSRE_SEND_OK, 0); /* m1, then reported undeliverable */
    late_failure("15550009999", "m1");
    assert_int_equal(f->down, 2);
    assert_int_equal(count_inapp(f, "delivery_failure"), 2);
    /* An update: Telegram still blocked, WhatsApp accepts it as a reply (m2) to m1 ... */
    now_ms += MIN;
    inc->lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_CONTAINED;
    rsre_notify_incident(f->n, inc, "state", now_ms);
    assert_int_equal(tg->n, 2);
    complete(tg, 1, RSRE_SEND_CHAT_FAILED, 0);
    assert_int_equal(wa->n, 2);
    assert_string_equal(wa->sent[1].edit_ref, "m1");
    complete(wa, 1, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 1);
    /* ... and reports m2 undeliverable: the update of inc-40 failed, recorded as such. */
    late_failure("15550009999", "m2");
    assert_int_equal(f->down, 2);
    assert_int_equal(count_inapp(f, "delivery_failure"), 4);
    /* The recheck (300 s) re-sends the update although that text is in the thread's record
     * for less than suppress_minutes: it never arrived. */
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(wa->n, 3);
    assert_string_equal(wa->sent[2].chat, "15550009999");
    assert_string_equal(wa->sent[2].text, wa->sent[1].text);
    complete(wa, 2, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 1); /* WhatsApp is back; Telegram's re-send is still out */
    assert_int_equal(tg->n, 3);
    complete(tg, 2, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 0);
}

/* A failed status may come before the reply to the send (the id is not in any thread yet):
 * the send then fails once it completes, counted once. A failed status for an id no thread
 * knows still leaves the chat something to be rechecked with: its latest thread's text. */
static void test_late_failure_before_send_completes(void **state) {
    struct fx *f = *state;
    rsre_notify_incident(f->n, incident("inc-41", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    complete(tg, 0, RSRE_SEND_CHAT_FAILED, 0);
    assert_int_equal(wa->n, 1);
    late_failure("15550009999", "m1"); /* the id the pending send will report */
    assert_int_equal(f->down, 2);
    complete(wa, 0, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 2);
    assert_int_equal(f->failures, 2);
    assert_int_equal(count_inapp(f, "delivery_failure"), 2);
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(wa->n, 2);
    assert_string_equal(wa->sent[1].text, wa->sent[0].text);
    complete(wa, 1, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 1);
    /* Unknown id: the chat is failing and is rechecked with inc-41's text. */
    late_failure("15550009999", "wamid.nobody-knows");
    assert_int_equal(f->down, 2);
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(wa->n, 3);
    assert_string_equal(wa->sent[2].text, wa->sent[0].text);
    complete(wa, 2, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 1);
}

/* A real update of a thread whose recheck is still queued (waiting out a retry_after)
 * replaces that recheck: it is a real message, so when it fails it fails over and is recorded
 * (a recheck would only keep the chat failing). Still not before the retry_after. */
static void test_update_replaces_queued_recheck(void **state) {
    struct fx *f = *state;
    rsre_store_incident *inc = incident("inc-50", "t", "node_health", SEV_WARN, ENV_STAGING);
    rsre_notify_incident(f->n, inc, "opened", now_ms);
    complete(tg, 0, RSRE_SEND_CHAT_FAILED, 0); /* -100 blocked the bot */
    assert_int_equal(wa->n, 1);
    complete(wa, 0, RSRE_SEND_OK, 0);
    assert_int_equal(f->failures, 1);
    /* The recheck is rate limited: it waits 30 s in the queue. */
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 2);
    complete(tg, 1, RSRE_SEND_RETRY, 30 * SEC);
    /* Meanwhile the incident changes: the update takes the queued recheck's place. */
    now_ms += SEC;
    inc->lifecycle = ROBOT_SRE__STORE__LIFECYCLE__LIFECYCLE_CONTAINED;
    rsre_notify_incident(f->n, inc, "state", now_ms);
    assert_int_equal(tg->n, 2);
    rsre_notify_poll(f->n, now_ms + 28 * SEC);
    assert_int_equal(tg->n, 2);
    now_ms = rsre_notify_next_due(f->n);
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 3);
    assert_non_null(strstr(tg->sent[2].text, "State: contained"));
    /* Still blocked: the update fails over to WhatsApp and is counted and recorded. */
    complete(tg, 2, RSRE_SEND_CHAT_FAILED, 0);
    assert_int_equal(f->failures, 2);
    assert_int_equal(count_inapp(f, "delivery_failure"), 2);
    assert_int_equal(wa->n, 2);
    assert_non_null(strstr(wa->sent[1].text, "State: contained"));
    complete(wa, 1, RSRE_SEND_OK, 0);
    assert_int_equal(pending(tg) + pending(wa), 0);
}

/* A recheck the platform accepts and later reports undeliverable (its status after its reply,
 * or before it) only keeps the chat failing: it was counted, failed over and recorded when it
 * first failed (docs/chatops.md: no new fail-over, no new failure record). */
static void test_late_failure_of_recheck_not_counted_again(void **state) {
    struct fx *f = *state;
    rsre_notify_incident(f->n, incident("inc-51", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    complete(tg, 0, RSRE_SEND_CHAT_FAILED, 0);
    assert_int_equal(wa->n, 1);
    complete(wa, 0, RSRE_SEND_OK, 0); /* m1 */
    late_failure("15550009999", "m1");
    assert_int_equal(f->failures, 2);
    assert_int_equal(count_inapp(f, "delivery_failure"), 2);
    assert_int_equal(f->down, 2);
    /* Rechecks: WhatsApp accepts its re-send (m2), then reports it undeliverable. */
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 2);
    assert_int_equal(wa->n, 2);
    complete(tg, 1, RSRE_SEND_CHAT_FAILED, 0);
    complete(wa, 1, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 1);
    late_failure("15550009999", "m2");
    assert_int_equal(f->down, 2);
    assert_int_equal(f->failures, 2);
    assert_int_equal(count_inapp(f, "delivery_failure"), 2);
    assert_int_equal(pending(tg) + pending(wa), 0);
    struct rsre_notify_stats st;
    rsre_notify_stats(f->n, &st);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.failovers, 1);
    /* Next recheck: the status of its re-send (m3) comes before the send's reply. */
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(wa->n, 3);
    assert_string_equal(wa->sent[2].text, wa->sent[0].text);
    complete(tg, 2, RSRE_SEND_CHAT_FAILED, 0);
    late_failure("15550009999", "m3");
    complete(wa, 2, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 2);
    assert_int_equal(f->failures, 2);
    assert_int_equal(count_inapp(f, "delivery_failure"), 2);
    /* Still rechecked; once a re-send sticks the channel is up. */
    now_ms += 300 * SEC;
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(wa->n, 4);
    complete(wa, 3, RSRE_SEND_OK, 0);
    complete(tg, 3, RSRE_SEND_OK, 0);
    assert_int_equal(f->down, 0);
    assert_int_equal(f->failures, 2);
}

static void test_rate_limit(void **state) {
    struct fx *f = *state;
    /* burst 3, 60/min: five incidents -> three now, one per second after. */
    char id[5][16];
    for (int i = 0; i < 5; i++) {
        snprintf(id[i], sizeof(id[i]), "inc-r%d", i);
        rsre_notify_incident(f->n, incident(id[i], "t", "node_health", SEV_WARN, ENV_STAGING),
                             "opened", now_ms);
    }
    assert_int_equal(tg->n, 3);
    int64_t due = rsre_notify_next_due(f->n);
    assert_true(due > now_ms && due <= now_ms + 1100);
    rsre_notify_poll(f->n, due);
    assert_int_equal(tg->n, 4);
    rsre_notify_poll(f->n, due + 1100);
    assert_int_equal(tg->n, 5);
    for (size_t i = 0; i < 5; i++) {
        complete(tg, i, RSRE_SEND_OK, 0);
    }
}

/* ---- chat approvals ---- */

static void put_approval(struct fx *f, const char *id, const char *requester, int64_t expires) {
    rsre_store_approval a;
    robot_sre__store__approval__init(&a);
    a.id = (char *)id;
    a.action_id = "act-1";
    a.incident_id = "inc-1";
    a.requester = (char *)requester;
    a.prompt = "Robot SRE requests approval: cordon node worker-1. Reason: disk pressure "
               "persists after cleanup for 17m. Expected impact: no new pods on worker-1. "
               "Rollback/fallback: uncordon worker-1. Approval expires in 10m.";
    a.action = "cordon_node";
    a.target = "worker-1";
    a.why_now = "disk pressure persists after cleanup for 17m";
    a.expected_impact = "no new pods on worker-1";
    a.rollback = "uncordon worker-1";
    a.quorum = 1;
    a.requested_at_ms = now_ms;
    a.expires_at_ms = expires;
    a.state = ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING;
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_store_approval_put(txn, &a, 0), 0);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
}

static int approval_state(struct fx *f, const char *id) {
    rsre_store_txn *txn;
    rsre_store_approval *a;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_approval_get(txn, id, &a), 0);
    rsre_store_txn_abort(txn);
    int s = (int)a->state;
    rsre_store_approval_free(a);
    return s;
}

static void press(struct fake *ch, const char *channel, const char *user, const char *payload) {
    struct rsre_chat_action a = {.channel = channel,
                                 .user = user,
                                 .chat = user,
                                 .payload = payload,
                                 .ack_ref = "cq-1",
                                 .message_ref = "m1"};
    ch->acb(ch->aarg, &a);
}

struct audit_count {
    const char *verb, *has;
    size_t n;
};

static int audit_cb(const rsre_store_audit *rec, void *ud) {
    struct audit_count *c = ud;
    if (!strcmp(rec->verb, c->verb) &&
        (!c->has || strstr(rec->reason, c->has) || strstr(rec->detail, c->has) ||
         strstr(rec->actor, c->has))) {
        c->n++;
    }
    return 0;
}

static size_t audits(struct fx *f, const char *verb, const char *has) {
    struct audit_count c = {verb, has, 0};
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, 1, audit_cb, &c), 0);
    rsre_store_txn_abort(txn);
    return c.n;
}

static const struct fake_send *find_sent(struct fake *f, const char *chat) {
    for (size_t i = 0; i < f->n; i++) {
        if (!strcmp(f->sent[i].chat, chat)) {
            return &f->sent[i];
        }
    }
    fail_msg("nothing sent to %s", chat);
    return NULL;
}

static void test_chat_approval_flow(void **state) {
    struct fx *f = *state;
    put_approval(f, "apr-1", RSRE_OPERATOR_ROBOT, now_ms + 10 * MIN);
    rsre_notify_scan_approvals(f->n, now_ms);
    /* One private message per approver with an identity on the channel (not erin: viewer). */
    assert_int_equal(tg->n, 2);
    assert_int_equal(wa->n, 1);
    const struct fake_send *alice = find_sent(tg, "1001");
    find_sent(tg, "1002");
    assert_string_equal(wa->sent[0].chat, "15550001001");
    assert_int_equal(alice->nbuttons, 2);
    assert_non_null(strstr(alice->text, "Robot SRE requests approval: cordon node worker-1."));
    assert_non_null(strstr(alice->text, "Approval expires in 10m."));
    assert_string_equal(alice->url, "https://robot.example/ui/approvals/apr-1");
    char approve[65], deny_bob[65];
    snprintf(approve, sizeof(approve), "%s", alice->payload[0]);
    snprintf(deny_bob, sizeof(deny_bob), "%s", find_sent(tg, "1002")->payload[1]);
    for (size_t i = 0; i < tg->n; i++) {
        complete(tg, i, RSRE_SEND_OK, 0);
    }
    complete(wa, 0, RSRE_SEND_OK, 0);
    /* A second scan announces nothing new. */
    rsre_notify_scan_approvals(f->n, now_ms);
    assert_int_equal(tg->n + wa->n, 3);
    assert_int_equal(count_inapp(f, "approval"), 1);

    /* Alice's button pressed by erin (forwarded) or by an unmapped user: refused. */
    press(tg, "telegram", "1005", approve);
    assert_non_null(strstr(tg->ack_text, "not issued to you"));
    press(tg, "telegram", "777", approve);
    assert_non_null(strstr(tg->ack_text, "not issued to you"));
    /* Alice's Telegram button sent back over WhatsApp: refused. */
    press(wa, "whatsapp", "15550001001", approve);
    assert_non_null(strstr(wa->ack_text, "not issued to you"));
    /* Garbage. */
    press(tg, "telegram", "1001", "apr-1.a.zzz");
    assert_non_null(strstr(tg->ack_text, "not a valid approval button"));
    /* An unmapped user holding a correctly signed button (say the secret leaked): the
     * approvals module still refuses. */
    char unmapped[65];
    assert_int_equal(rsre_notify_sign(secret, sizeof(secret) - 1, "telegram", "777", "apr-1", 1,
                                      now_ms + 10 * MIN, unmapped),
                     0);
    press(tg, "telegram", "777", unmapped);
    assert_non_null(strstr(tg->ack_text, "Refused"));
    assert_int_equal(f->ndecided, 0);
    assert_int_equal(approval_state(f, "apr-1"),
                     ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING);

    /* Alice approves: quorum 1, decided, handed to the engine hook. */
    now_ms += MIN;
    press(tg, "telegram", "1001", approve);
    assert_int_equal(f->ndecided, 1);
    assert_string_equal(f->decided, "apr-1");
    assert_int_equal(approval_state(f, "apr-1"),
                     ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_APPROVED);
    assert_int_equal(audits(f, "approval.vote", "telegram"), 1);
    /* Every approver's message is edited: the decision, who made it, no buttons. */
    assert_int_equal(tg->n, 4);
    assert_int_equal(wa->n, 2);
    for (size_t i = 2; i < 4; i++) {
        assert_int_equal(tg->sent[i].nbuttons, 0);
        assert_true(tg->sent[i].edit_ref[0] != '\0');
        assert_non_null(strstr(tg->sent[i].text, "Decision: approved by alice via telegram"));
    }
    assert_string_equal(wa->sent[1].edit_ref, "m1");
    /* The same button again: a replay. */
    press(tg, "telegram", "1001", approve);
    assert_non_null(strstr(tg->ack_text, "replay"));
    /* Bob's deny after the decision: the approvals module refuses (decided). */
    press(tg, "telegram", "1002", deny_bob);
    assert_non_null(strstr(tg->ack_text, "Refused"));
    assert_int_equal(f->ndecided, 1);

    /* A restart does not forget used buttons. */
    for (size_t i = 2; i < tg->n; i++) {
        complete(tg, i, RSRE_SEND_OK, 0);
    }
    complete(wa, 1, RSRE_SEND_OK, 0);
    drop_notify(f);
    make_notify(f);
    press(tg, "telegram", "1001", approve);
    assert_non_null(strstr(tg->ack_text, "replay"));

    /* Refusals are audited with the presser and channel. */
    assert_true(audits(f, "approval.vote.refused", "telegram:1005") >= 1);
    assert_true(audits(f, "approval.vote.refused", "telegram:777") >= 2);
    assert_true(audits(f, "approval.vote.refused", "replay") >= 2);
    assert_int_equal(audits(f, "approval.vote.refused", "whatsapp:15550001001"), 1);
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
}

static void test_chat_approval_requester_and_expiry(void **state) {
    struct fx *f = *state;
    /* Bob requested it: he gets no buttons, and a button made for him is refused. */
    put_approval(f, "apr-2", "bob", now_ms + 10 * MIN);
    rsre_notify_scan_approvals(f->n, now_ms);
    assert_int_equal(tg->n, 1);
    assert_string_equal(tg->sent[0].chat, "1001");
    char self[65];
    assert_int_equal(rsre_notify_sign(secret, sizeof(secret) - 1, "telegram", "1002", "apr-2", 1,
                                      now_ms + 10 * MIN, self),
                     0);
    press(tg, "telegram", "1002", self);
    assert_non_null(strstr(tg->ack_text, "Refused"));
    assert_true(audits(f, "approval.vote.refused", "bob") >= 1);
    /* Alice's button after the expiry: refused as expired, nothing decided. */
    char alice[65];
    snprintf(alice, sizeof(alice), "%s", tg->sent[0].payload[0]);
    complete(tg, 0, RSRE_SEND_OK, 0);
    now_ms += 11 * MIN;
    press(tg, "telegram", "1001", alice);
    assert_non_null(strstr(tg->ack_text, "expired"));
    assert_int_equal(f->ndecided, 0);
    assert_true(audits(f, "approval.vote.refused", "expired") >= 1);
    assert_int_equal(approval_state(f, "apr-2"),
                     ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING);
}

static void test_decision_while_request_in_flight(void **state) {
    struct fx *f = *state;
    put_approval(f, "apr-3", RSRE_OPERATOR_ROBOT, now_ms + 10 * MIN);
    rsre_notify_scan_approvals(f->n, now_ms);
    assert_int_equal(tg->n, 2);
    char approve[65];
    snprintf(approve, sizeof(approve), "%s", find_sent(tg, "1001")->payload[0]);
    /* Alice votes before the sends to her and bob completed. */
    press(tg, "telegram", "1001", approve);
    assert_int_equal(f->ndecided, 1);
    assert_int_equal(tg->n, 2); /* the edits wait for the message ids */
    complete(tg, 0, RSRE_SEND_OK, 0);
    complete(tg, 1, RSRE_SEND_OK, 0);
    now_ms += 2 * SEC; /* a token for each (burst 3, 1 per second) */
    rsre_notify_poll(f->n, now_ms);
    assert_int_equal(tg->n, 4);
    for (size_t i = 2; i < 4; i++) {
        assert_true(tg->sent[i].edit_ref[0] == 'm');
        assert_int_equal(tg->sent[i].nbuttons, 0);
        assert_non_null(strstr(tg->sent[i].text, "Decision: approved by alice via telegram"));
    }
}

static void test_inapp_ack(void **state) {
    struct fx *f = *state;
    rsre_notify_incident(f->n, incident("inc-20", "t", "node_health", SEV_WARN, ENV_STAGING),
                         "opened", now_ms);
    complete(tg, 0, RSRE_SEND_OK, 0);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    assert_int_equal(rsre_notify_inapp_ack(txn, "ntf-1", "alice", now_ms), 0);
    assert_int_equal(rsre_notify_inapp_ack(txn, "ntf-1", "alice", now_ms), RSRE_EEXIST);
    assert_int_equal(rsre_notify_inapp_ack(txn, "ntf-99", "alice", now_ms), RSRE_ENOTFOUND);
    assert_int_equal(rsre_notify_inapp_ack(txn, "bogus", "alice", now_ms), RSRE_ENOTFOUND);
    assert_int_equal(rsre_store_txn_commit(txn), 0);
    assert_int_equal(audits(f, "notification.ack", "alice"), 1);
    struct kind_count c = {"incident", 0};
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_notify_inapp_list(txn, 1, 10, count_cb, &c), 0);
    rsre_store_txn_abort(txn);
    assert_int_equal(c.n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing_match, setup, teardown),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test_setup_teardown(test_thread_and_suppression, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_and_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_and_health, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_failure_of_update_rechecked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_failure_before_send_completes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_replaces_queued_recheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_failure_of_recheck_not_counted_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_approval_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_approval_requester_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decision_while_request_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inapp_ack, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
