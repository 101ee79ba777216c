/*
 * ChatOps end to end with the real robot-sre-aggregator (docs/chatops.md): the Telegram Bot API
 * and WhatsApp Cloud API test servers (tests/support/telegram_api_server.py,
 * whatsapp_api_server.py), the Kubernetes API test server (kube_api_server.py) with the node,
 * and the scripted agent of tests/support/aggregator_harness.c streaming disk pressure in demo
 * mode, so that a node_disk_pressure incident opens with a cordon_node approval request.
 *
 *   delivery   the operators' group chat has blocked the bot (403) and the Bot API first answers
 *              429 with retry_after, then malformed JSON, then too late (timeout): the incident
 *              message is retried (not before retry_after), fails over to WhatsApp, the
 *              chatops_delivery_failure incident opens, ops_chat_delivery_failures_total counts
 *              it, an in-app notification says so, and no chat gets the same text twice.
 *   approval   the approval request reaches alice and bob privately with Approve / Deny
 *              buttons; alice's button pressed by erin (a viewer) and by an unmapped user is
 *              refused and answered in the chat; alice's press cordons the node through the
 *              Kubernetes executor; the same callback again is refused as a replay; every
 *              approver's message is edited to say who decided; votes and refusals are in
 *              the audit log with their channel.
 *   resolution (wall clock sped up by libfaketime) the group blocks the bot and WhatsApp reports
 *              the fail-over number undeliverable (131026 status webhook): both channels down
 *              during the disk-pressure incident makes chatops_delivery_failure critical; once
 *              both work again the periodic re-send succeeds and it resolves after its 300 s
 *              exit window; an approval button pressed after its expiry is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <poll.h>
#include <sys/stat.h>

#include "common/error.h"

#define AGGREGATOR RSRE_BINARY_DIR "/aggregator/daemon/robot-sre-aggregator"
#define PYTHON "/usr/bin/python3"
#define TG_SERVER RSRE_SOURCE_DIR "/tests/support/telegram_api_server.py"
#define WA_SERVER RSRE_SOURCE_DIR "/tests/support/whatsapp_api_server.py"
#define KUBE_SERVER RSRE_SOURCE_DIR "/tests/support/kube_api_server.py"
#define WAIT_MS 60000
#define MAX_STREAMS 2

#include "../support/aggregator_harness.c"

#define TOKEN_VICTOR "chatops-token-victor-viewer"
#define TOKEN_OLGA "chatops-token-olga-operator"
#define TG_TOKEN "123456:chatops-test-bot-token"
#define WA_TOKEN "chatops-wa-access-token"
#define WA_SECRET "chatops-wa-app-secret"
#define NODE "chat-node-a"
#define NODE_B "chat-node-b"

static struct {
    char dir[64], store[128], log[160];
    pid_t pid, tg_pid, wa_pid, kube_pid;
    int grpc_port, api_port, tg_port, wa_port, kube_port;
    struct node_log node, node_b;
} F;

/* A test server of tests/support with its log in the test's dir; its pid, *port set. */
static pid_t start_py(char *const argv[], const char *logname, int *port) {
    char log[200];
    snprintf(log, sizeof(log), "%s/%s", F.dir, logname);
    return harness_start_py(argv, log, port);
}

static json_t *srv(int port, const char *method, const char *path, const char *body) {
    long st = 0;
    json_t *j = api(port, method, path, body, NULL, &st);
    if (st != 200) {
        fail_msg("%s :%d%s: status %ld", method, port, path, st);
    }
    return j;
}

static json_t *agg(const char *method, const char *path, const char *body, const char *token) {
    long st = 0;
    json_t *j = api(F.api_port, method, path, body, token, &st);
    if (st != 200) {
        char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
        fail_msg("%s %s: status %ld: %s", method, path, st, d ? d : "");
    }
    return j;
}

static void check_alive(void) {
    int st;
    if (F.pid > 0 && waitpid(F.pid, &st, WNOHANG) == F.pid) {
        F.pid = 0;
        log_tail(F.log, 30);
        fail_msg("the aggregator exited (status 0x%x)", st);
    }
}

/* What the chat test servers saw (every API request, WhatsApp's status webhooks), saved next
 * to the aggregator's log when a wait times out (RSRE_TEST_KEEP=1 keeps the directory). */
static void save_servers(void) {
    const struct {
        int port;
        const char *path, *file;
    } s[] = {{F.tg_port, "/_test/requests", "telegram-requests.json"},
             {F.wa_port, "/_test/requests", "whatsapp-requests.json"},
             {F.wa_port, "/_test/outbox", "whatsapp-webhooks.json"}};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        long st = 0;
        json_t *j = s[i].port ? api(s[i].port, "GET", s[i].path, NULL, NULL, &st) : NULL;
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", F.dir, s[i].file);
        if (j && st == 200) {
            json_dump_file(j, p, JSON_INDENT(1));
        }
        json_decref(j);
    }
}

/* Waits (streaming the agent's pressure meanwhile) until `pred` holds. */
static void wait_for(int (*pred)(void *), void *arg, const char *what) {
    int64_t end = mono_ms() + WAIT_MS;
    while (!pred(arg)) {
        check_alive();
        if (mono_ms() > end) {
            save_servers();
            log_tail(F.log, 40);
            fail_msg("timed out waiting for %s", what);
        }
        if (C.n) {
            pump(100);
        } else {
            sleep_ms(100);
        }
    }
}

/* ---- predicates ---- */

/* The Telegram message with buttons sent to `chat` whose text has `has`, or NULL (borrowed
 * from `msgs`). */
static json_t *tg_message(json_t *msgs, long long chat, const char *has) {
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *t = json_string_value(json_object_get(m, "text"));
        if (json_integer_value(json_object_get(json_object_get(m, "chat"), "id")) == chat &&
            json_object_get(m, "reply_markup") && t && strstr(t, has)) {
            return m;
        }
    }
    return NULL;
}

struct want_msg {
    long long chat;
    const char *to, *has;
};

static int has_tg_message(void *arg) {
    struct want_msg *w = arg;
    json_t *msgs = srv(F.tg_port, "GET", "/_test/messages", NULL);
    int ok = tg_message(msgs, w->chat, w->has) != NULL;
    json_decref(msgs);
    return ok;
}

/* The WhatsApp message with buttons to `to` whose body has `has` (its wamid, caller frees). */
static char *wa_buttons_message(const char *to, const char *has) {
    json_t *msgs = srv(F.wa_port, "GET", "/_test/messages", NULL);
    size_t i;
    json_t *m;
    char *id = NULL;
    json_array_foreach(msgs, i, m) {
        const char *t = json_string_value(json_object_get(m, "to"));
        const char *b = json_string_value(json_object_get(m, "body"));
        if (!id && t && !strcmp(t, to) && json_array_size(json_object_get(m, "buttons")) && b &&
            strstr(b, has)) {
            id = strdup(json_string_value(json_object_get(m, "id")));
        }
    }
    json_decref(msgs);
    return id;
}

static int has_wa_buttons(void *arg) {
    struct want_msg *w = arg;
    char *id = wa_buttons_message(w->to, w->has);
    free(id);
    return id != NULL;
}

/* Some WhatsApp message to `to` has `has` (a thread reply with the decision). */
static int wa_text(void *arg) {
    struct want_msg *w = arg;
    json_t *msgs = srv(F.wa_port, "GET", "/_test/messages", NULL);
    size_t i;
    json_t *m;
    int ok = 0;
    json_array_foreach(msgs, i, m) {
        const char *t = json_string_value(json_object_get(m, "to"));
        const char *b = json_string_value(json_object_get(m, "body"));
        ok |= t && !strcmp(t, w->to) && b && strstr(b, w->has) &&
              json_object_get(m, "context") != NULL;
    }
    json_decref(msgs);
    return ok;
}

static int has_wa_message(void *arg) {
    const char *to = arg;
    json_t *msgs = srv(F.wa_port, "GET", "/_test/messages", NULL);
    size_t i;
    json_t *m;
    int ok = 0;
    json_array_foreach(msgs, i, m) {
        const char *t = json_string_value(json_object_get(m, "to"));
        ok |= t && !strcmp(t, to);
    }
    json_decref(msgs);
    return ok;
}

static int incident_open(void *arg) {
    const char *type = arg;
    json_t *j = agg("GET", "/api/v1/incidents", NULL, TOKEN_VICTOR);
    json_t *list = json_object_get(j, "incidents");
    size_t i;
    json_t *x;
    int ok = 0;
    json_array_foreach(list, i, x) {
        const char *t = json_string_value(json_object_get(x, "incident_type"));
        ok |= t && !strcmp(t, type);
    }
    json_decref(j);
    return ok;
}

static int answers_at_least(void *arg) {
    size_t want = *(size_t *)arg;
    json_t *a = srv(F.tg_port, "GET", "/_test/answers", NULL);
    int ok = json_array_size(a) >= want;
    json_decref(a);
    return ok;
}

static int node_cordoned(void *arg) {
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", arg ? (const char *)arg : NODE);
    json_t *n = srv(F.kube_port, "GET", path, NULL);
    int u = json_is_true(json_object_get(json_object_get(n, "spec"), "unschedulable"));
    json_decref(n);
    return u;
}

/* Some message in `chat` (the thread's; a timed-out send may have left an earlier copy) now
 * shows the decision and no buttons. */
static int decision_edited(void *arg) {
    struct want_msg *w = arg;
    long long chat = w->chat;
    json_t *msgs = srv(F.tg_port, "GET", "/_test/messages", NULL);
    size_t i;
    json_t *m;
    int ok = 0;
    json_array_foreach(msgs, i, m) {
        const char *text = json_string_value(json_object_get(m, "text"));
        ok |= json_integer_value(json_object_get(json_object_get(m, "chat"), "id")) == chat &&
              text && strstr(text, w->has) && strstr(text, "Decision: approved by alice via") &&
              !json_object_get(m, "reply_markup");
    }
    json_decref(msgs);
    return ok;
}

/* The text of the last answerCallbackQuery. */
static char *last_answer(void) {
    json_t *a = srv(F.tg_port, "GET", "/_test/answers", NULL);
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    const char *t = json_string_value(json_object_get(last, "text"));
    char *s = strdup(t ? t : "");
    json_decref(a);
    return s;
}

/* A callback_query from `from` on the message, with the button's data as sent (a forwarded
 * or replayed button carries the same data). */
static void press(long long chat, long long message_id, long long from, const char *data) {
    char body[300];
    snprintf(body, sizeof(body),
             "{\"chat_id\":%lld,\"message_id\":%lld,\"from_id\":%lld,\"data\":\"%s\"}", chat,
             message_id, from, data);
    long st = 0;
    json_t *j = api(F.tg_port, "POST", "/_test/press", body, NULL, &st);
    json_decref(j);
    if (st != 200) {
        json_t *msgs = srv(F.tg_port, "GET", "/_test/messages", NULL);
        char *d = json_dumps(msgs, JSON_COMPACT);
        fail_msg("press on message %lld in %lld: status %ld; messages: %.4000s", message_id, chat,
                 st, d ? d : "");
    }
}

static void press_and_answer(long long chat, long long mid, long long from, const char *data,
                             size_t *answers, const char *want) {
    press(chat, mid, from, data);
    (*answers)++;
    wait_for(answers_at_least, answers, "the callback's answer");
    char *t = last_answer();
    if (!strstr(t, want)) {
        fail_msg("answer to %lld: '%s', want '%s'", from, t, want);
    }
    free(t);
}

/* Audit records with `verb` whose actor, reason or detail contains `has`. */
static size_t audits(const char *verb, const char *has) {
    json_t *j = agg("GET", "/api/v1/audit?limit=1000", NULL, TOKEN_VICTOR);
    size_t n = 0, i;
    json_t *r;
    json_array_foreach(json_object_get(j, "records"), i, r) {
        const char *v = json_string_value(json_object_get(r, "verb"));
        if (!v || strcmp(v, verb)) {
            continue;
        }
        const char *f[] = {"actor", "reason", "detail"};
        int hit = !has;
        for (size_t k = 0; k < 3 && !hit; k++) {
            const char *s = json_string_value(json_object_get(r, f[k]));
            hit = s && strstr(s, has);
        }
        n += hit;
    }
    json_decref(j);
    return n;
}

/* ---- setup ---- */

static void start_servers(int faults) {
    char port0[] = "0";
    char *tg[] = {PYTHON, TG_SERVER, "--token", TG_TOKEN, "--port", port0, NULL};
    F.tg_pid = start_py(tg, "telegram.log", &F.tg_port);
    char *wa[] = {PYTHON,    WA_SERVER,      "--token", WA_TOKEN, "--phone-number-id",
                  "1234567", "--app-secret", WA_SECRET, "--port", port0,
                  NULL};
    F.wa_pid = start_py(wa, "whatsapp.log", &F.wa_port);
    char *kube[] = {PYTHON, KUBE_SERVER, "--port", port0, NULL};
    F.kube_pid = start_py(kube, "kube.log", &F.kube_port);
    const char *names[] = {NODE, NODE_B};
    for (size_t i = 0; i < 2; i++) {
        char obj[512];
        snprintf(obj, sizeof(obj),
                 "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\","
                 "\"labels\":{\"kubernetes.io/hostname\":\"%s\"}},\"spec\":{},"
                 "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
                 names[i], names[i]);
        json_decref(srv(F.kube_port, "POST", "/_test/objects", obj));
    }
    /* The group has blocked the bot; the approvers' private chats work. */
    json_decref(srv(F.tg_port, "POST", "/_test/chats",
                    "[{\"id\":-100,\"type\":\"supergroup\",\"blocked\":true},{\"id\":1001},"
                    "{\"id\":1002},{\"id\":1005},{\"id\":4242}]"));
    /* The first Bot API sends: 429 with retry_after, malformed JSON, a late answer. */
    if (faults) {
        json_decref(srv(F.tg_port, "POST", "/_test/faults",
                        "[{\"method\":\"sendMessage\",\"status\":429,\"retry_after\":1,"
                        "\"description\":\"Too Many Requests: retry after 1\"},"
                        "{\"method\":\"sendMessage\",\"malformed\":true},"
                        "{\"method\":\"sendMessage\",\"sleep\":3}]"));
    }
}

static void write_configs(char *notify, char *operators, char *tokens) {
    char p[200], text[4096], h1[65], h2[65];
    snprintf(p, sizeof(p), "%s/tg.token", F.dir);
    write_file(p, TG_TOKEN "\n");
    snprintf(p, sizeof(p), "%s/wa.token", F.dir);
    write_file(p, WA_TOKEN "\n");
    snprintf(p, sizeof(p), "%s/wa.secret", F.dir);
    write_file(p, WA_SECRET "\n");
    snprintf(p, sizeof(p), "%s/wa.verify", F.dir);
    write_file(p, "chatops-verify-token\n");
    snprintf(p, sizeof(p), "%s/notify.key", F.dir);
    write_file(p, "chatops-button-signing-secret-0123456789abcdef\n");
    snprintf(text, sizeof(text),
             "admin_url: http://127.0.0.1:8080/ui\n"
             "secret_file: %s/notify.key\n"
             "channels:\n"
             "  - name: telegram\n"
             "    alternate: whatsapp\n"
             "    chats: [\"-100\"]\n"
             "    rate_per_minute: 600\n"
             "    burst: 30\n"
             "    max_attempts: 4\n"
             "    backoff_ms: 300\n"
             "    backoff_max_ms: 600\n"
             "    recheck_seconds: 60\n"
             "    settings: {base_url: \"http://127.0.0.1:%d\", token_file: %s/tg.token,\n"
             "               timeout_ms: \"1500\", poll_timeout_s: \"1\", poll_retry_ms: \"200\"}\n"
             "  - name: whatsapp\n"
             "    chats: [\"15550009999\"]\n"
             "    rate_per_minute: 600\n"
             "    burst: 30\n"
             "    settings: {base_url: \"http://127.0.0.1:%d\", phone_number_id: \"1234567\",\n"
             "               token_file: %s/wa.token, app_secret_file: %s/wa.secret,\n"
             "               verify_token_file: %s/wa.verify, timeout_ms: \"1500\"}\n"
             "default: [{channel: telegram, chats: [\"-100\"]}]\n"
             "approvals: {channels: [telegram, whatsapp]}\n",
             F.dir, F.tg_port, F.dir, F.wa_port, F.dir, F.dir, F.dir);
    snprintf(notify, 200, "%s/notify.yaml", F.dir);
    write_file(notify, text);
    snprintf(operators, 200, "%s/operators.yaml", F.dir);
    write_file(operators, "operators:\n"
                          "  - {id: alice, roles: [approver], telegram_user_id: 1001,\n"
                          "     whatsapp_number: \"+15550001001\"}\n"
                          "  - {id: bob, roles: [approver], telegram_user_id: 1002}\n"
                          "  - {id: erin, roles: [viewer], telegram_user_id: 1005}\n");
    sha256_hex(TOKEN_VICTOR, h1);
    sha256_hex(TOKEN_OLGA, h2);
    snprintf(text, sizeof(text),
             "tokens:\n  - operator: victor\n    role: viewer\n    sha256: %s\n"
             "  - operator: olga\n    role: operator\n    sha256: %s\n",
             h1, h2);
    snprintf(tokens, 200, "%s/tokens.yaml", F.dir);
    write_file(tokens, text);
}

/* Like spawn_logged, with extra environment (libfaketime). */
static pid_t spawn_env(char *const argv[], const char *log, const char *const *env) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0 && null >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        for (size_t i = 0; env && env[i]; i++) {
            putenv((char *)env[i]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    close(null);
    return pid;
}

static const char *faketime_lib(void) {
    static const char *const paths[] = {
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], R_OK) == 0) {
            return paths[i];
        }
    }
    return NULL;
}

/* Starts the aggregator; with `speedup` > 1 its wall clock (not CLOCK_MONOTONIC) runs that
 * many times faster through libfaketime, so 300 s exit windows pass in seconds. */
static void start_aggregator(int speedup, int long_approvals) {
    char notify[200], operators[200], tokens[200];
    write_configs(notify, operators, tokens);
    char a[12][600];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--listen=127.0.0.1:0");
    ARG("--env=demo");
    ARG("--data_dir=%s", F.store);
    ARG("--tick_ms=1000");
    ARG("--api_listen=127.0.0.1:0");
    ARG("--api_tokens_file=%s", tokens);
    ARG("--operators_file=%s", operators);
    ARG("--notify_file=%s", notify);
    ARG("--kube_api=http://127.0.0.1:%d", F.kube_port);
    ARG("--observe=false"); /* the Kubernetes observers are not what this test is about */
    if (long_approvals) {
        ARG("--approval_ttl_ms=86400000"); /* approvals outlive the test */
    }
#undef ARG
    char *argv[16] = {AGGREGATOR};
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    snprintf(F.log, sizeof(F.log), "%s/aggregator.log", F.dir);
    static char preload[256], faketime[64];
    const char *env[] = {preload, faketime, "FAKETIME_DONT_FAKE_MONOTONIC=1",
                         "ASAN_OPTIONS=verify_asan_link_order=0", NULL};
    if (speedup > 1) {
        snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", faketime_lib());
        snprintf(faketime, sizeof(faketime), "FAKETIME=+0 x%d", speedup);
    }
    F.pid = spawn_env(argv, F.log, speedup > 1 ? env : NULL);
    int64_t end = mono_ms() + WAIT_MS;
    while (agg_log_ports(F.log, &F.grpc_port, &F.api_port), !F.grpc_port || !F.api_port) {
        check_alive();
        if (mono_ms() > end) {
            log_tail(F.log, 30);
            fail_msg("the aggregator did not start (see %s)", F.log);
        }
        sleep_ms(10);
    }
}

/* The first sendMessage was answered 429; a later one to the same chat carries the same
 * Details link (the same incident or approval, maybe with newer text). */
static int retried_after_429(void *arg) {
    (void)arg;
    json_t *reqs = srv(F.tg_port, "GET", "/_test/requests", NULL);
    json_t *first = NULL;
    const char *link = NULL;
    int ok = 0;
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        const char *m = json_string_value(json_object_get(r, "method"));
        json_t *p = json_object_get(r, "params");
        const char *t = json_string_value(json_object_get(p, "text"));
        if (!m || strcmp(m, "sendMessage") || !t) {
            continue;
        }
        if (!first) {
            first = r;
            link = strstr(t, "\nDetails: ");
            continue;
        }
        ok |= link && strstr(t, link) &&
              json_equal(json_object_get(p, "chat_id"),
                         json_object_get(json_object_get(first, "params"), "chat_id"));
    }
    json_decref(reqs);
    return ok;
}

/* ---- the test ---- */

static void test_chatops(void **state) {
    (void)state;
    start_servers(1);
    start_aggregator(1, 1);
    char cfg[200];
    snprintf(cfg, sizeof(cfg), "{\"webhook_url\":\"http://127.0.0.1:%d/webhooks/whatsapp\"}",
             F.api_port);
    json_decref(srv(F.wa_port, "POST", "/_test/config", cfg));
    struct node_log *nodes[2] = {&F.node, &F.node_b};
    client_open_nodes(F.grpc_port, nodes, 2);

    /* delivery: retried, failed over to WhatsApp, a delivery-failure incident. */
    wait_for(has_wa_message, "15550009999", "the incident message failed over to WhatsApp");
    wait_for(incident_open, "chatops_delivery_failure", "chatops_delivery_failure");
    /* approval: private messages with buttons to alice and bob. */
    long long alice = 1001, bob = 1002;
    struct want_msg wa_a = {alice, NULL, "cordon node " NODE},
                    wb_a = {bob, NULL, "cordon node " NODE};
    wait_for(has_tg_message, &wa_a, "the approval request to alice");
    wait_for(has_tg_message, &wb_a, "the approval request to bob");
    json_t *msgs = srv(F.tg_port, "GET", "/_test/messages", NULL);
    json_t *am = tg_message(msgs, alice, "cordon node " NODE);
    const char *text = json_string_value(json_object_get(am, "text"));
    assert_non_null(strstr(text, "Robot SRE requests approval: cordon node"));
    assert_non_null(strstr(text, "Approval expires in"));
    long long mid = json_integer_value(json_object_get(am, "message_id"));
    json_t *kb = json_object_get(json_object_get(am, "reply_markup"), "inline_keyboard");
    const char *d0 = json_string_value(
        json_object_get(json_array_get(json_array_get(kb, 0), 0), "callback_data"));
    assert_non_null(d0);
    assert_non_null(strstr(d0, ".a.")); /* the Approve button */
    char data[80];
    snprintf(data, sizeof(data), "%s", d0);
    json_decref(msgs);

    size_t answers = 0;
    press_and_answer(alice, mid, 1005, data, &answers, "not issued to you"); /* erin, forwarded */
    press_and_answer(alice, mid, 4242, data, &answers, "not issued to you"); /* nobody we know */
    assert_false(node_cordoned(NULL));
    press_and_answer(alice, mid, 1001, data, &answers, ""); /* alice */
    wait_for(node_cordoned, NULL, "the node cordoned through the Kubernetes executor");
    press_and_answer(alice, mid, 1001, data, &answers, "replay"); /* the same again */
    wait_for(decision_edited, &wa_a, "alice's message edited with the decision");
    wait_for(decision_edited, &wb_a, "bob's message edited with the decision");
    assert_false(node_cordoned(NODE_B));

    /* WhatsApp: node b's request to alice's number; a reply from a number the button was not
     * sent to is refused; alice's reply cordons node b; a replayed reply is refused. */
    struct want_msg wwa = {0, "15550001001", "cordon node " NODE_B};
    wait_for(has_wa_buttons, &wwa, "the approval request to alice on WhatsApp");
    char *wamid = wa_buttons_message("15550001001", "cordon node " NODE_B);
    char body[300];
    snprintf(body, sizeof(body), "{\"from\":\"15550001002\",\"context_id\":\"%s\",\"button\":0}",
             wamid);
    json_t *rep1 = srv(F.wa_port, "POST", "/_test/reply", body);
    json_decref(rep1);
    sleep_ms(300);
    assert_false(node_cordoned(NODE_B));
    snprintf(body, sizeof(body), "{\"from\":\"15550001001\",\"context_id\":\"%s\",\"button\":0}",
             wamid);
    json_decref(srv(F.wa_port, "POST", "/_test/reply", body));
    wait_for(node_cordoned, NODE_B, "node b cordoned from a WhatsApp reply");
    /* A new notification with the same button: refused as a replay. */
    json_decref(srv(F.wa_port, "POST", "/_test/reply", body));
    struct want_msg wdec = {0, "15550001001", "Decision: approved by alice via whatsapp"};
    wait_for(wa_text, &wdec, "the decision as a reply in alice's WhatsApp thread");
    struct want_msg wb_b = {bob, NULL, "cordon node " NODE_B};
    wait_for(decision_edited, &wb_b, "bob's Telegram message for node b edited");
    free(wamid);

    /* delivery, checked once the message answered 429 went out again. */
    wait_for(retried_after_429, NULL, "the message answered 429 sent again");
    json_t *reqs = srv(F.tg_port, "GET", "/_test/requests", NULL);
    size_t i;
    json_t *r;
    /* sendMessage requests in order: the faults went to the first three. */
    json_t *sends = json_array();
    json_array_foreach(reqs, i, r) {
        const char *m = json_string_value(json_object_get(r, "method"));
        if (m && !strcmp(m, "sendMessage")) {
            json_array_append(sends, r);
        }
    }
    assert_true(json_array_size(sends) >= 4);
    json_t *first = json_array_get(sends, 0);
    assert_int_equal(json_integer_value(json_object_get(first, "status")), 429);
    json_t *chat429 = json_object_get(json_object_get(first, "params"), "chat_id");
    /* Its subject ("Incident: inc-N" / "Approval apr-N"): the retry may carry newer text. */
    const char *t429 = json_string_value(json_object_get(json_object_get(first, "params"), "text"));
    assert_non_null(t429);
    const char *sp = strstr(t429, "\nDetails: ");
    assert_non_null(sp);
    char subject[160];
    snprintf(subject, sizeof(subject), "%s", sp); /* the link names the incident or approval */
    int retried = 0, blocked = 0;
    for (size_t k = 1; k < json_array_size(sends); k++) {
        json_t *x = json_array_get(sends, k);
        const char *tx = json_string_value(json_object_get(json_object_get(x, "params"), "text"));
        if (!retried && tx && strstr(tx, subject) &&
            json_equal(json_object_get(json_object_get(x, "params"), "chat_id"), chat429)) {
            retried = 1;
            double wait = json_number_value(json_object_get(x, "time")) -
                          json_number_value(json_object_get(first, "time"));
            if (wait < 0.95) {
                fail_msg("retried %.3f s after a 429 with retry_after 1", wait);
            }
        }
        blocked += json_integer_value(json_object_get(x, "status")) == 403;
    }
    if (!retried) {
        for (size_t k = 0; k < json_array_size(sends); k++) {
            json_t *x = json_array_get(sends, k);
            json_t *px = json_object_get(x, "params");
            const char *tx = json_string_value(json_object_get(px, "text"));
            const char *cut = tx ? strstr(tx, "\nIncident: ") : NULL;
            cut = cut ? cut : (tx ? strstr(tx, "\nApproval apr-") : NULL);
            fprintf(stderr, "send %zu chat=%lld status=%lld t=%.3f %.40s\n", k,
                    (long long)json_integer_value(json_object_get(px, "chat_id")),
                    (long long)json_integer_value(json_object_get(x, "status")),
                    json_number_value(json_object_get(x, "time")), cut ? cut + 1 : "-");
        }
        fail_msg("the message answered 429 (%s to %lld) was not sent again", subject,
                 (long long)json_integer_value(chat429));
    }
    assert_true(blocked >= 1);
    /* The late (timed-out) third send may have been delivered too: the retry can duplicate it
     * (at-least-once); the duplicate check below leaves that one request out. */
    double late_at = json_number_value(json_object_get(json_array_get(sends, 2), "time"));
    json_decref(sends);
    json_decref(reqs);
    {
        /* /metrics is Prometheus text, not JSON: fetched raw. */
        CURL *e = curl_easy_init();
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", F.api_port);
        struct server_http_buf b = {0};
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, server_http_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " TOKEN_VICTOR);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        assert_int_equal(curl_easy_perform(e), CURLE_OK);
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        const char *line = b.p ? strstr(b.p, "\nops_chat_delivery_failures_total ") : NULL;
        if (!line || atof(line + strlen("\nops_chat_delivery_failures_total ")) < 1) {
            fail_msg("ops_chat_delivery_failures_total not counted:\n%s", b.p ? b.p : "");
        }
        free(b.p);
    }

    assert_int_equal(audits("approval.vote", "whatsapp"), 1);
    assert_true(audits("approval.vote.refused", "whatsapp:15550001002") >= 1);
    assert_true(audits("approval.vote.refused", "whatsapp:15550001001") >= 1);

    assert_int_equal(audits("approval.vote", "telegram"), 1);
    assert_true(audits("approval.vote.refused", "telegram:1005") >= 1);
    assert_true(audits("approval.vote.refused", "telegram:4242") >= 1);
    assert_true(audits("approval.vote.refused", "replay") >= 1);

    /* No chat got the same text twice. */
    reqs = srv(F.tg_port, "GET", "/_test/requests", NULL);
    json_array_foreach(reqs, i, r) {
        if (!json_is_true(json_object_get(json_object_get(r, "reply"), "ok")) ||
            json_number_value(json_object_get(r, "time")) == late_at) {
            continue;
        }
        json_t *p = json_object_get(r, "params");
        const char *m1 = json_string_value(json_object_get(r, "method"));
        size_t k;
        json_t *r2;
        json_array_foreach(reqs, k, r2) {
            if (k <= i || !json_is_true(json_object_get(json_object_get(r2, "reply"), "ok")) ||
                json_number_value(json_object_get(r2, "time")) == late_at) {
                continue;
            }
            json_t *p2 = json_object_get(r2, "params");
            const char *m2 = json_string_value(json_object_get(r2, "method"));
            if (m1 && m2 && !strcmp(m1, "answerCallbackQuery")) {
                continue;
            }
            if (m1 && m2 &&
                json_equal(json_object_get(p, "chat_id"), json_object_get(p2, "chat_id")) &&
                json_equal(json_object_get(p, "text"), json_object_get(p2, "text"))) {
                fail_msg("the same text went to chat %lld twice",
                         (long long)json_integer_value(json_object_get(p, "chat_id")));
            }
        }
    }
    json_decref(reqs);

    /* In-app: the delivery failure and the approval are there. */
    json_t *ia = agg("GET", "/api/v1/notifications?limit=1000", NULL, TOKEN_VICTOR);
    int failure = 0, approval = 0;
    json_array_foreach(json_object_get(ia, "notifications"), i, r) {
        const char *k = json_string_value(json_object_get(r, "kind"));
        failure |= k && !strcmp(k, "delivery_failure");
        approval |= k && !strcmp(k, "approval");
    }
    json_decref(ia);
    assert_true(failure && approval);

    client_close();
    kill(F.pid, SIGTERM);
    int st = 0;
    waitpid(F.pid, &st, 0);
    F.pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The incident of `type` that is resolved (state "resolved"). */
static int incident_resolved(void *arg) {
    const char *type = arg;
    json_t *j = agg("GET", "/api/v1/incidents", NULL, TOKEN_VICTOR);
    size_t i;
    json_t *x;
    int ok = 0;
    json_array_foreach(json_object_get(j, "incidents"), i, x) {
        const char *t = json_string_value(json_object_get(x, "incident_type"));
        const char *st = json_string_value(json_object_get(x, "state"));
        ok |= t && !strcmp(t, type) && st && !strcmp(st, "resolved");
    }
    json_decref(j);
    return ok;
}

/* Approval `arg` (an id) is expired. */
static int approval_expired(void *arg) {
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/approvals/%s", (const char *)arg);
    json_t *j = agg("GET", path, NULL, TOKEN_VICTOR);
    json_t *a = json_object_get(j, "approval") ? json_object_get(j, "approval") : j;
    const char *st = json_string_value(json_object_get(a, "state"));
    int ok = st && !strcmp(st, "expired");
    json_decref(j);
    return ok;
}

/* The open incident of `type` is critical. */
static int incident_critical(void *arg) {
    const char *type = arg;
    json_t *j = agg("GET", "/api/v1/incidents", NULL, TOKEN_VICTOR);
    size_t i;
    json_t *x;
    int ok = 0;
    json_array_foreach(json_object_get(j, "incidents"), i, x) {
        const char *t = json_string_value(json_object_get(x, "incident_type"));
        const char *sev = json_string_value(json_object_get(x, "severity"));
        ok |= t && !strcmp(t, type) && sev && !strcmp(sev, "critical");
    }
    json_decref(j);
    return ok;
}

/* A message to `chat` reached Telegram (any text containing `has`). */
static int tg_delivered(void *arg) {
    struct want_msg *w = arg;
    json_t *msgs = srv(F.tg_port, "GET", "/_test/messages", NULL);
    size_t i;
    json_t *m;
    int ok = 0;
    json_array_foreach(msgs, i, m) {
        const char *t = json_string_value(json_object_get(m, "text"));
        ok |= json_integer_value(json_object_get(json_object_get(m, "chat"), "id")) == w->chat &&
              t && strstr(t, w->has);
    }
    json_decref(msgs);
    return ok;
}

/*
 * The delivery-failure incident resolves: the group has blocked the bot, so incident messages
 * fail over to WhatsApp and chatops_delivery_failure opens; once the group unblocks it, the
 * periodic re-send (recheck_seconds) gets through, the channel is up, and after the class's
 * 300 s exit window (a sped-up clock) the incident resolves.
 */
static void test_delivery_failure_resolves(void **state) {
    (void)state;
    if (!faketime_lib()) {
        skip(); /* Debian package faketime */
    }
    start_servers(0);
    /* WhatsApp accepts messages to the fail-over number, then reports them undeliverable
     * (131026) through its status webhook. */
    json_decref(srv(F.wa_port, "POST", "/_test/recipients",
                    "{\"number\":\"15550009999\",\"undeliverable\":true}"));
    start_aggregator(30, 0); /* approvals expire after 10 min of the sped-up clock (20 s) */
    char cfg[200];
    snprintf(cfg, sizeof(cfg), "{\"webhook_url\":\"http://127.0.0.1:%d/webhooks/whatsapp\"}",
             F.api_port);
    json_decref(srv(F.wa_port, "POST", "/_test/config", cfg));
    struct node_log *nodes[1] = {&F.node};
    client_open_nodes(F.grpc_port, nodes, 1);
    wait_for(incident_open, "chatops_delivery_failure", "chatops_delivery_failure");
    /* Both channels down while the disk-pressure incident is open: critical. */
    wait_for(incident_critical, "chatops_delivery_failure", "chatops_delivery_failure critical");
    assert_false(incident_resolved("chatops_delivery_failure"));
    json_decref(srv(F.wa_port, "POST", "/_test/recipients",
                    "{\"number\":\"15550009999\",\"undeliverable\":false}"));
    json_decref(srv(F.tg_port, "POST", "/_test/chats",
                    "{\"id\":-100,\"type\":\"supergroup\",\"blocked\":false}"));
    struct want_msg w = {-100, NULL, "node_disk_pressure"};
    wait_for(tg_delivered, &w, "the re-sent incident message in the unblocked group");
    wait_for(incident_resolved, "chatops_delivery_failure", "chatops_delivery_failure resolved");

    /* An approval button pressed after the request expired: refused, answered, audited. */
    struct want_msg wa_a = {1001, NULL, "cordon node " NODE};
    wait_for(has_tg_message, &wa_a, "the approval request to alice");
    json_t *msgs = srv(F.tg_port, "GET", "/_test/messages", NULL);
    json_t *am = tg_message(msgs, 1001, "cordon node " NODE);
    long long mid = json_integer_value(json_object_get(am, "message_id"));
    const char *det = strstr(json_string_value(json_object_get(am, "text")), "Approval apr-");
    assert_non_null(det);
    char apr[32];
    snprintf(apr, sizeof(apr), "%.*s", (int)strcspn(det + 9, " "), det + 9);
    json_t *kb = json_object_get(json_object_get(am, "reply_markup"), "inline_keyboard");
    char data[80];
    snprintf(data, sizeof(data), "%s",
             json_string_value(
                 json_object_get(json_array_get(json_array_get(kb, 0), 0), "callback_data")));
    json_decref(msgs);
    wait_for(approval_expired, apr, "the approval's expiry");
    size_t answers = 0;
    press_and_answer(1001, mid, 1001, data, &answers, "expired");
    assert_false(node_cordoned(NODE));
    assert_true(audits("approval.vote.refused", "expired") >= 1);
    client_close();
    kill(F.pid, SIGTERM);
    int st = 0;
    waitpid(F.pid, &st, 0);
    F.pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof(F));
    snprintf(F.dir, sizeof(F.dir), "/tmp/rsre-chatops-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.store, sizeof(F.store), "%s/store", F.dir);
    snprintf(F.node.name, sizeof(F.node.name), NODE);
    snprintf(F.node.boot, sizeof(F.node.boot), "5d1c7b3a-2e4f-4a6b-9c8d-0000000000c1");
    snprintf(F.node_b.name, sizeof(F.node_b.name), NODE_B);
    snprintf(F.node_b.boot, sizeof(F.node_b.boot), "5d1c7b3a-2e4f-4a6b-9c8d-0000000000c2");
    grpc_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    pid_t pids[] = {F.pid, F.tg_pid, F.wa_pid, F.kube_pid};
    for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    }
    if (getenv("RSRE_TEST_KEEP")) {
        fprintf(stderr, "kept %s\n", F.dir);
    } else {
        nftw(F.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    curl_global_cleanup();
    grpc_shutdown();
    return 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chatops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_failure_resolves, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
