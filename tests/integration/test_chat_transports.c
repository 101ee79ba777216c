/*
 * The chat transports against their test servers (tests/support/telegram_api_server.py and
 * tests/support/whatsapp_api_server.py, which check request shapes the way the real APIs do and
 * answer with their documented JSON):
 *
 *  - Telegram: sendMessage with the inline keyboard, editMessageText (keyboard removed, "not
 *    modified" is success), every reply class mapped (429 + retry_after or a Retry-After
 *    header, at least 1 s, at most an hour; 403 blocked, 400 chat not found, 5xx, bare 502,
 *    malformed JSON, timeout, wrong token, other 400), bad input refused before anything is
 *    sent, long text clipped in UTF-16 units, getUpdates long polling delivering callback
 *    queries once with the offset advancing (also across a failed poll), answerCallbackQuery
 *    (a 429 tried again not before retry_after, at most 3 attempts), the webhook's secret-token
 *    check and repeat suppression, the bot token absent from debug logs, in-flight sends
 *    completed on destroy.
 *  - WhatsApp: interactive button messages (titles clipped to 20 characters, URL buttons in the
 *    body), replies with context, error codes mapped (131047, 131026, 130429, 131056, 80007, 4
 *    and a longer Retry-After header, 190, 131000, 131009, bare 502, malformed, timeout), the
 *    verify handshake, webhook signatures (good, wrong, missing, other secret), repeats
 *    ignored, and a failed status webhook (131047 after a 200) reaching the delivery callback.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/curl_uv.h"
#include "common/error.h"
#include "common/log.h"
#include "notify/telegram.h"
#include "notify/whatsapp.h"
#include "../support/port_server.c"
#include "../support/server_http.c"

#define TG_TOKEN "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
#define WA_TOKEN "EAAGm0PX4ZCpsBAOZBZCZAZCNjwjE1y5qUp"
#define WA_PHONE "106540352242922"
#define WA_SECRET "5b7d2c0f1e6a4b3c9d8e7f6a5b4c3d2e"
#define WA_VERIFY "robot-sre-verify-4711"
#define TG_HOOK_SECRET "hook_Secret-123"

struct server {
    pid_t pid;
    char base[64];
};

static struct server tgs, was;
static char tmpdir[64];

static const char *tpath(const char *name) {
    static char bufs[4][256];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, 256, "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int start_server(struct server *s, const char *const argv[]) {
    struct port_server_opts o = {.timeout_ms = 20000};
    int port = port_server_start((char *const *)argv, &o, &s->pid);
    if (port < 0) {
        return -1;
    }
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", port);
    return 0;
}

static int group_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rsre-chat-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    write_file(tpath("tg_token"), TG_TOKEN "\n");
    write_file(tpath("tg_hook"), TG_HOOK_SECRET "\n");
    write_file(tpath("wa_token"), WA_TOKEN "\n");
    write_file(tpath("wa_bad_token"), "EAAnotthetoken\n");
    write_file(tpath("wa_secret"), WA_SECRET "\n");
    write_file(tpath("wa_verify"), WA_VERIFY "\n");
    const char *tg[] = {"/usr/bin/python3",
                        RSRE_SOURCE_DIR "/tests/support/telegram_api_server.py",
                        "--token",
                        TG_TOKEN,
                        "--port",
                        "0",
                        NULL};
    assert_int_equal(start_server(&tgs, tg), 0);
    const char *wa[] = {"/usr/bin/python3",
                        RSRE_SOURCE_DIR "/tests/support/whatsapp_api_server.py",
                        "--token",
                        WA_TOKEN,
                        "--phone-number-id",
                        WA_PHONE,
                        "--app-secret",
                        WA_SECRET,
                        "--port",
                        "0",
                        NULL};
    if (start_server(&was, wa) != 0) {
        port_server_stop(&tgs.pid); /* group teardown does not run when setup fails */
        fail_msg("whatsapp_api_server.py did not start");
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    struct server *all[] = {&tgs, &was};
    for (size_t i = 0; i < 2; i++) {
        port_server_stop(&all[i]->pid);
    }
    const char *names[] = {"tg_token",  "tg_hook",   "wa_token", "wa_bad_token",
                           "wa_secret", "wa_verify", "log"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unlink(tpath(names[i]));
    }
    rmdir(tmpdir);
    curl_global_cleanup();
    return 0;
}

/* ---- control requests (blocking) ------------------------------------------------------------- */

static json_t *ctl(const struct server *s, const char *method, const char *path, const char *body) {
    long status;
    char *b;
    assert_int_equal(server_http(s->base, method, path, body, NULL, &status, &b), CURLE_OK);
    json_error_t je;
    json_t *j = b ? json_loads(b, 0, &je) : NULL;
    if (status != 200 || !j) {
        fail_msg("control %s %s: %ld %s", method, path, status, b ? b : "");
    }
    free(b);
    return j;
}

static void ctl0(const struct server *s, const char *method, const char *path, const char *body) {
    json_decref(ctl(s, method, path, body));
}

/* The last API request the server recorded. Caller decrefs. */
static json_t *last_request(const struct server *s) {
    json_t *all = ctl(s, "GET", "/_test/requests", NULL);
    assert_true(json_array_size(all) > 0);
    json_t *r = json_incref(json_array_get(all, json_array_size(all) - 1));
    json_decref(all);
    return r;
}

static size_t request_count(const struct server *s) {
    json_t *all = ctl(s, "GET", "/_test/requests", NULL);
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

/* ---- loop fixture ---------------------------------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    struct rsre_http *http;
    struct rsre_channel *tg;
    struct rsre_channel *wa;
    /* last send result */
    int done;
    struct rsre_send_result res;
    /* actions */
    int nactions;
    char act_user[64], act_chat[64], act_payload[300], act_ack[160], act_ref[160];
    /* delivery failures */
    int nfail;
    struct rsre_send_result fail;
    char fail_id[160], fail_chat[64];
};

static struct fx *F;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int run_until(int (*pred)(void *), void *arg, uint64_t ms) {
    uint64_t end = now_ms() + ms;
    while (!pred(arg)) {
        if (now_ms() > end) {
            return 0;
        }
        uv_run(&F->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return 1;
}

static int is_done(void *arg) {
    (void)arg;
    return F->done;
}

static int actions_at_least(void *arg) {
    return F->nactions >= *(int *)arg;
}

static void on_sent(void *arg, const struct rsre_send_result *r) {
    struct fx *f = arg;
    f->done++;
    f->res = *r;
}

static void on_action(void *arg, const struct rsre_chat_action *a) {
    struct fx *f = arg;
    f->nactions++;
    snprintf(f->act_user, sizeof(f->act_user), "%s", a->user);
    snprintf(f->act_chat, sizeof(f->act_chat), "%s", a->chat);
    snprintf(f->act_payload, sizeof(f->act_payload), "%s", a->payload);
    snprintf(f->act_ack, sizeof(f->act_ack), "%s", a->ack_ref);
    snprintf(f->act_ref, sizeof(f->act_ref), "%s", a->message_ref);
}

static void on_delivery(void *arg, const struct rsre_chat_delivery *d) {
    struct fx *f = arg;
    f->nfail++;
    f->fail = *d->result;
    snprintf(f->fail_id, sizeof(f->fail_id), "%s", d->message_id);
    snprintf(f->fail_chat, sizeof(f->fail_chat), "%s", d->chat);
}

static void tg_config(struct rsre_telegram_config *c, const char *base) {
    char err[256];
    rsre_telegram_config_defaults(c);
    assert_int_equal(rsre_telegram_config_set(c, "base_url", base, err, sizeof(err)), 0);
    assert_int_equal(rsre_telegram_config_set(c, "token_file", tpath("tg_token"), err, sizeof(err)),
                     0);
    assert_int_equal(rsre_telegram_config_set(c, "timeout_ms", "1500", err, sizeof(err)), 0);
    assert_int_equal(rsre_telegram_config_set(c, "poll_timeout_s", "1", err, sizeof(err)), 0);
    assert_int_equal(rsre_telegram_config_set(c, "poll_retry_ms", "50", err, sizeof(err)), 0);
}

static void wa_config(struct rsre_whatsapp_config *c, const char *base, const char *token_file) {
    char err[256];
    rsre_whatsapp_config_defaults(c);
    assert_int_equal(rsre_whatsapp_config_set(c, "base_url", base, err, sizeof(err)), 0);
    assert_int_equal(rsre_whatsapp_config_set(c, "phone_number_id", WA_PHONE, err, sizeof(err)), 0);
    assert_int_equal(rsre_whatsapp_config_set(c, "token_file", token_file, err, sizeof(err)), 0);
    assert_int_equal(
        rsre_whatsapp_config_set(c, "app_secret_file", tpath("wa_secret"), err, sizeof(err)), 0);
    assert_int_equal(
        rsre_whatsapp_config_set(c, "verify_token_file", tpath("wa_verify"), err, sizeof(err)), 0);
    assert_int_equal(rsre_whatsapp_config_set(c, "timeout_ms", "1500", err, sizeof(err)), 0);
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    F = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(rsre_http_create(&f->loop, &f->http), 0);
    char err[256] = "";
    struct rsre_telegram_config tc;
    tg_config(&tc, tgs.base);
    if (rsre_telegram_create(f->http, &tc, &f->tg, err, sizeof(err)) != 0) {
        fail_msg("telegram: %s", err);
    }
    struct rsre_whatsapp_config wc;
    wa_config(&wc, was.base, tpath("wa_token"));
    if (rsre_whatsapp_create(f->http, &wc, &f->wa, err, sizeof(err)) != 0) {
        fail_msg("whatsapp: %s", err);
    }
    ctl0(&tgs, "DELETE", "/_test/requests", NULL);
    ctl0(&was, "DELETE", "/_test/requests", NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    if (f->tg) {
        f->tg->ops->destroy(f->tg);
    }
    if (f->wa) {
        f->wa->ops->destroy(f->wa);
    }
    rsre_http_destroy(f->http);
    for (int i = 0; i < 1000 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    F = NULL;
    return 0;
}

/* Sends m on ch and waits for its callback. */
static const struct rsre_send_result *send_wait(struct rsre_channel *ch,
                                                const struct rsre_chat_message *m) {
    F->done = 0;
    assert_int_equal(ch->ops->send(ch, m, on_sent, F), 0);
    assert_int_equal(F->done, 0); /* never inside send */
    assert_true(run_until(is_done, NULL, 15000));
    assert_int_equal(F->done, 1);
    return &F->res;
}

static const struct rsre_chat_button approval_buttons[] = {
    {.label = "Approve", .payload = "a1:approve:7f3a9c"},
    {.label = "Deny", .payload = "a1:deny:7f3a9c"},
    {.label = "Details", .url = "https://robot.example.com/ui/approvals/a1"},
};

/* ---- Telegram -------------------------------------------------------------------------------- */

static void tg_send_shape(void **state) {
    (void)state;
    ctl0(&tgs, "POST", "/_test/chats", "{\"id\": 1001}");
    struct rsre_chat_message m = {.chat = "1001",
                                  .text = "Approve cordon of node-a?",
                                  .buttons = approval_buttons,
                                  .nbuttons = 3};
    const struct rsre_send_result *r = send_wait(F->tg, &m);
    assert_int_equal(r->status, RSRE_SEND_OK);
    assert_int_equal(r->http_status, 200);
    assert_true(atoi(r->message_id) > 100);

    json_t *req = last_request(&tgs);
    assert_string_equal(json_string_value(json_object_get(req, "method")), "sendMessage");
    assert_string_equal(json_string_value(json_object_get(req, "content_type")),
                        "application/json");
    assert_int_equal(json_integer_value(json_object_get(req, "status")), 200);
    json_t *p = json_object_get(req, "params");
    assert_int_equal(json_integer_value(json_object_get(p, "chat_id")), 1001);
    assert_string_equal(json_string_value(json_object_get(p, "text")), m.text);
    json_t *kb = json_object_get(json_object_get(p, "reply_markup"), "inline_keyboard");
    assert_int_equal(json_array_size(kb), 2);
    json_t *row0 = json_array_get(kb, 0), *row1 = json_array_get(kb, 1);
    assert_int_equal(json_array_size(row0), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(row0, 0), "text")),
                        "Approve");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(row0, 1), "callback_data")),
        "a1:deny:7f3a9c");
    assert_string_equal(json_string_value(json_object_get(json_array_get(row1, 0), "url")),
                        "https://robot.example.com/ui/approvals/a1");
    json_decref(req);
}

static void tg_edit(void **state) {
    (void)state;
    ctl0(&tgs, "POST", "/_test/chats", "{\"id\": 1002}");
    struct rsre_chat_message m = {
        .chat = "1002", .text = "Approve?", .buttons = approval_buttons, .nbuttons = 2};
    const struct rsre_send_result *r = send_wait(F->tg, &m);
    assert_int_equal(r->status, RSRE_SEND_OK);
    char mid[128];
    snprintf(mid, sizeof(mid), "%s", r->message_id);

    /* After the decision: new text, no keyboard. */
    struct rsre_chat_message e = {.chat = "1002", .text = "Approved by alice", .edit_ref = mid};
    r = send_wait(F->tg, &e);
    assert_int_equal(r->status, RSRE_SEND_OK);
    assert_string_equal(r->message_id, mid);
    json_t *req = last_request(&tgs);
    assert_string_equal(json_string_value(json_object_get(req, "method")), "editMessageText");
    json_t *p = json_object_get(req, "params");
    assert_int_equal(json_integer_value(json_object_get(p, "message_id")), atoi(mid));
    assert_null(json_object_get(p, "reply_markup"));
    json_decref(req);
    json_t *msgs = ctl(&tgs, "GET", "/_test/messages", NULL);
    size_t i;
    json_t *x;
    int found = 0;
    json_array_foreach(msgs, i, x) {
        if (json_integer_value(json_object_get(x, "message_id")) == atoi(mid)) {
            found = 1;
            assert_string_equal(json_string_value(json_object_get(x, "text")), "Approved by alice");
            assert_null(json_object_get(x, "reply_markup"));
            assert_int_equal(json_integer_value(json_object_get(x, "edits")), 1);
        }
    }
    assert_true(found);
    json_decref(msgs);

    /* An edit answered 429 waits its retry_after like a send. */
    ctl0(&tgs, "POST", "/_test/faults",
         "{\"method\":\"editMessageText\",\"status\":429,\"description\":\"Too Many Requests: "
         "retry after 3\",\"retry_after\":3}");
    r = send_wait(F->tg, &e);
    assert_int_equal(r->status, RSRE_SEND_RETRY);
    assert_int_equal(r->retry_after_ms, 3000);

    /* The same edit again: Telegram says "not modified"; the message reads so: OK. */
    r = send_wait(F->tg, &e);
    assert_int_equal(r->status, RSRE_SEND_OK);
    assert_int_equal(r->http_status, 400);

    /* A message that does not exist: our request was wrong. */
    struct rsre_chat_message gone = {.chat = "1002", .text = "x", .edit_ref = "999999"};
    r = send_wait(F->tg, &gone);
    assert_int_equal(r->status, RSRE_SEND_REJECTED);
    assert_non_null(strstr(r->error, "message to edit not found"));
}

struct tg_case {
    const char *fault; /* JSON for /_test/faults, or NULL */
    const char *chat;
    enum rsre_send_status want;
    int http;
    int64_t retry_after_ms;
    const char *error_part;
};

static void tg_failures(void **state) {
    (void)state;
    ctl0(&tgs, "POST", "/_test/chats", "[{\"id\": 1003}, {\"id\": 1004, \"blocked\": true}]");
    static const struct tg_case cases[] = {
        {"{\"method\":\"sendMessage\",\"status\":429,\"description\":\"Too Many Requests: retry "
         "after 7\",\"retry_after\":7}",
         "1003", RSRE_SEND_RETRY, 429, 7000, "Too Many Requests"},
        /* A Retry-After header longer than parameters.retry_after wins; a bare 429 takes the
         * header; a hint beyond an hour waits an hour; retry_after 0 still waits 1 s. */
        {"{\"method\":\"sendMessage\",\"status\":429,\"description\":\"Too Many Requests: retry "
         "after 2\",\"retry_after\":2,\"retry_after_header\":9}",
         "1003", RSRE_SEND_RETRY, 429, 9000, "Too Many Requests"},
        {"{\"method\":\"sendMessage\",\"raw_status\":429,\"retry_after_header\":5}", "1003",
         RSRE_SEND_RETRY, 429, 5000, "HTTP 429"},
        {"{\"method\":\"sendMessage\",\"status\":429,\"description\":\"Too Many Requests: retry "
         "after 86400\",\"retry_after\":86400,\"retry_after_header\":90000}",
         "1003", RSRE_SEND_RETRY, 429, 3600000, "Too Many Requests"},
        {"{\"method\":\"sendMessage\",\"status\":429,\"description\":\"Too Many Requests: retry "
         "after 0\",\"retry_after\":0}",
         "1003", RSRE_SEND_RETRY, 429, 1000, "Too Many Requests"},
        {NULL, "1004", RSRE_SEND_CHAT_FAILED, 403, 0, "bot was blocked by the user"},
        {NULL, "555", RSRE_SEND_CHAT_FAILED, 400, 0, "chat not found"},
        {"{\"method\":\"sendMessage\",\"status\":500,\"description\":\"Internal Server Error\"}",
         "1003", RSRE_SEND_TRANSIENT, 500, 0, "Internal Server Error"},
        {"{\"method\":\"sendMessage\",\"raw_status\":502}", "1003", RSRE_SEND_TRANSIENT, 502, 0,
         NULL},
        {"{\"method\":\"sendMessage\",\"malformed\":true}", "1003", RSRE_SEND_TRANSIENT, 200, 0,
         "malformed"},
        {"{\"method\":\"sendMessage\",\"sleep\":3}", "1003", RSRE_SEND_TRANSIENT, 0, 0,
         "transport"},
        {"{\"method\":\"sendMessage\",\"status\":400,\"description\":\"Bad Request: "
         "BUTTON_DATA_INVALID\"}",
         "1003", RSRE_SEND_REJECTED, 400, 0, "BUTTON_DATA_INVALID"},
        {"{\"method\":\"sendMessage\",\"status\":400,\"description\":\"Bad Request: group chat "
         "was upgraded to a supergroup chat\"}",
         "1003", RSRE_SEND_CHAT_FAILED, 400, 0, "supergroup"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tg_case *c = &cases[i];
        if (c->fault) {
            ctl0(&tgs, "POST", "/_test/faults", c->fault);
        }
        struct rsre_chat_message m = {.chat = c->chat, .text = "incident update"};
        const struct rsre_send_result *r = send_wait(F->tg, &m);
        if (r->status != c->want || r->http_status != c->http) {
            fail_msg("case %zu: status %d http %d (want %d %d) err %s", i, (int)r->status,
                     r->http_status, (int)c->want, c->http, r->error);
        }
        assert_int_equal(r->retry_after_ms, c->retry_after_ms);
        if (c->error_part && !strstr(r->error, c->error_part)) {
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, r->error, c->error_part);
        }
        if (r->status != RSRE_SEND_OK) {
            assert_string_equal(r->message_id, "");
        }
    }
    /* The success after all that, so no fault is left queued. */
    struct rsre_chat_message m = {.chat = "1003", .text = "ok now"};
    assert_int_equal(send_wait(F->tg, &m)->status, RSRE_SEND_OK);
}

static void tg_wrong_token(void **state) {
    (void)state;
    write_file(tpath("tg_bad"), "7000000001:wrong\n");
    struct rsre_telegram_config tc;
    tg_config(&tc, tgs.base);
    char err[256];
    assert_int_equal(rsre_telegram_config_set(&tc, "token_file", tpath("tg_bad"), err, sizeof(err)),
                     0);
    struct rsre_channel *ch = NULL;
    assert_int_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), 0);
    unlink(tpath("tg_bad"));
    struct rsre_chat_message m = {.chat = "1003", .text = "x"};
    const struct rsre_send_result *r = send_wait(ch, &m);
    assert_int_equal(r->status, RSRE_SEND_REJECTED);
    assert_int_equal(r->api_code, 401);
    ch->ops->destroy(ch);
}

static void tg_bad_input(void **state) {
    (void)state;
    size_t before = request_count(&tgs);
    struct rsre_chat_button long_payload[] = {
        {.label = "Approve",
         .payload = "0123456789012345678901234567890123456789012345678901234567890123456789"}};
    struct rsre_chat_button no_target[] = {{.label = "Details"}};
    struct rsre_chat_button bad_url[] = {{.label = "Details", .url = "javascript:alert(1)"}};
    struct rsre_chat_message cases[] = {
        {.chat = "1003", .text = "x", .buttons = long_payload, .nbuttons = 1},
        {.chat = "1003", .text = "x", .buttons = no_target, .nbuttons = 1},
        {.chat = "1003", .text = "x", .buttons = bad_url, .nbuttons = 1},
        {.chat = "1003", .text = "x", .buttons = approval_buttons, .nbuttons = 4},
        {.chat = "not a chat", .text = "x"},
        {.chat = "", .text = "x"},
        {.chat = "1003", .text = NULL},
        {.chat = "1003", .text = ""},
        {.chat = "1003", .text = "x", .edit_ref = "12abc"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        F->done = 0;
        int rc = F->tg->ops->send(F->tg, &cases[i], on_sent, F);
        if (rc != -EINVAL) {
            fail_msg("case %zu: rc %d", i, rc);
        }
    }
    uv_run(&F->loop, UV_RUN_NOWAIT);
    assert_int_equal(F->done, 0);
    assert_int_equal(request_count(&tgs), before);
}

static void tg_long_text(void **state) {
    (void)state;
    /* 3000 astral characters: 6000 UTF-16 units, above Telegram's 4096. The server checks the
     * limit in UTF-16 units, as Telegram does. */
    size_t n = 3000;
    char *t = malloc(n * 4 + 1);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        memcpy(t + 4 * i, "\xf0\x9f\x9a\xa8", 4); /* U+1F6A8 */
    }
    t[n * 4] = '\0';
    struct rsre_chat_message m = {.chat = "1003", .text = t};
    const struct rsre_send_result *r = send_wait(F->tg, &m);
    free(t);
    if (r->status != RSRE_SEND_OK) {
        fail_msg("long text: %d %s", (int)r->status, r->error);
    }
    json_t *req = last_request(&tgs);
    const char *sent = json_string_value(json_object_get(json_object_get(req, "params"), "text"));
    assert_non_null(sent);
    assert_non_null(strstr(sent, "\xe2\x80\xa6")); /* clipped, with an ellipsis */
    json_decref(req);
}

struct press {
    int64_t update_id;
    char query[64];
};

static struct press press(int chat, const char *mid, int from, int button) {
    char body[256];
    snprintf(body, sizeof(body),
             "{\"chat_id\": %d, \"message_id\": %s, \"from_id\": %d, \"button\": %d}", chat, mid,
             from, button);
    json_t *j = ctl(&tgs, "POST", "/_test/press", body);
    struct press p = {.update_id = json_integer_value(json_object_get(j, "update_id"))};
    snprintf(p.query, sizeof(p.query), "%s",
             json_string_value(json_object_get(j, "callback_query_id")));
    json_decref(j);
    return p;
}

static void tg_long_polling(void **state) {
    (void)state;
    ctl0(&tgs, "POST", "/_test/chats", "{\"id\": 1005}");
    struct rsre_chat_message m = {
        .chat = "1005", .text = "Approve?", .buttons = approval_buttons, .nbuttons = 3};
    const struct rsre_send_result *r = send_wait(F->tg, &m);
    assert_int_equal(r->status, RSRE_SEND_OK);
    char mid[128];
    snprintf(mid, sizeof(mid), "%s", r->message_id);
    assert_int_equal(F->tg->ops->start(F->tg, on_action, F), 0);
    assert_int_equal(F->tg->ops->start(F->tg, on_action, F), -EALREADY);

    struct press p1 = press(1005, mid, 424242, 0);
    int want = 1;
    assert_true(run_until(actions_at_least, &want, 15000));
    assert_int_equal(F->nactions, 1);
    assert_string_equal(F->act_user, "424242");
    assert_string_equal(F->act_chat, "1005");
    assert_string_equal(F->act_payload, "a1:approve:7f3a9c");
    assert_string_equal(F->act_ack, p1.query);
    assert_string_equal(F->act_ref, mid);

    /* answerCallbackQuery reaches the server with our text. */
    struct rsre_chat_action a = {.channel = "telegram", .ack_ref = F->act_ack};
    assert_int_equal(F->tg->ops->ack(F->tg, &a, "Vote recorded"), 0);
    uint64_t end = now_ms() + 10000;
    json_t *answers = NULL;
    while (now_ms() < end) {
        uv_run(&F->loop, UV_RUN_NOWAIT);
        answers = ctl(&tgs, "GET", "/_test/answers", NULL);
        if (json_array_size(answers) > 0) {
            break;
        }
        json_decref(answers);
        answers = NULL;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_non_null(answers);
    json_t *ans = json_array_get(answers, json_array_size(answers) - 1);
    assert_string_equal(json_string_value(json_object_get(ans, "callback_query_id")), p1.query);
    assert_string_equal(json_string_value(json_object_get(ans, "text")), "Vote recorded");
    json_decref(answers);

    /* A failing getUpdates in between: the poll recovers and nothing is lost or repeated. */
    ctl0(&tgs, "POST", "/_test/faults",
         "{\"method\":\"getUpdates\",\"status\":502,\"description\":\"Bad Gateway\"}");
    struct press p2 = press(1005, mid, 424242, 1);
    struct press p3 = press(1005, mid, 515151, 0);
    want = 3;
    assert_true(run_until(actions_at_least, &want, 20000));
    /* Let a few more polls run: no update may come back. */
    uint64_t settle = now_ms() + 1500;
    while (now_ms() < settle) {
        uv_run(&F->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(F->nactions, 3);
    assert_string_equal(F->act_user, "515151");
    struct rsre_telegram_stats st;
    rsre_telegram_stats(F->tg, &st);
    assert_int_equal(st.next_offset, p3.update_id + 1);
    assert_true(p2.update_id < p3.update_id);
    assert_int_equal(st.actions, 3);
    /* The server saw the offset confirmed. */
    json_t *s = ctl(&tgs, "GET", "/_test/state", NULL);
    assert_int_equal(json_integer_value(json_object_get(s, "confirmed_offset")), p3.update_id + 1);
    assert_int_equal(json_integer_value(json_object_get(s, "queued")), 0);
    json_decref(s);
    /* Request shape of the poll. */
    json_t *all = ctl(&tgs, "GET", "/_test/requests", NULL);
    size_t i;
    json_t *x;
    int polls = 0, failed = 0;
    json_array_foreach(all, i, x) {
        if (strcmp(json_string_value(json_object_get(x, "method")), "getUpdates") != 0) {
            continue;
        }
        polls++;
        json_t *p = json_object_get(x, "params");
        assert_int_equal(json_integer_value(json_object_get(p, "timeout")), 1);
        json_t *au = json_object_get(p, "allowed_updates");
        assert_int_equal(json_array_size(au), 2);
        assert_string_equal(json_string_value(json_array_get(au, 0)), "callback_query");
        failed += json_integer_value(json_object_get(x, "status")) == 502;
    }
    json_decref(all);
    assert_true(polls >= 3);
    assert_int_equal(failed, 1);
    assert_true(st.poll_failures >= 1);
}

/* answerCallbackQuery requests the server recorded, in order. Caller decrefs. */
static json_t *answer_requests(void) {
    json_t *all = ctl(&tgs, "GET", "/_test/requests", NULL);
    json_t *out = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(all, i, x) {
        if (!strcmp(json_string_value(json_object_get(x, "method")), "answerCallbackQuery")) {
            json_array_append(out, x);
        }
    }
    json_decref(all);
    return out;
}

/* Runs the loop until the server recorded `n` answerCallbackQuery requests (and each got its
 * reply), or 15 s. */
static json_t *wait_answer_requests(size_t n) {
    uint64_t end = now_ms() + 15000;
    for (;;) {
        uv_run(&F->loop, UV_RUN_NOWAIT);
        json_t *a = answer_requests();
        json_t *last = json_array_get(a, json_array_size(a) - 1);
        if ((json_array_size(a) >= n && json_object_get(last, "status")) || now_ms() > end) {
            return a;
        }
        json_decref(a);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

/* answerCallbackQuery answered 429: tried again, not before retry_after (the server's request
 * times), at most 3 attempts; a wait beyond 30 s drops the answer; destroy with an answer
 * waiting closes its timer. */
static void tg_answer_rate_limited(void **state) {
    (void)state;
    ctl0(&tgs, "POST", "/_test/chats", "{\"id\": 1008}");
    struct rsre_chat_message m = {
        .chat = "1008", .text = "Approve?", .buttons = approval_buttons, .nbuttons = 2};
    const struct rsre_send_result *r = send_wait(F->tg, &m);
    assert_int_equal(r->status, RSRE_SEND_OK);
    char mid[128];
    snprintf(mid, sizeof(mid), "%s", r->message_id);

    struct press p1 = press(1008, mid, 424242, 0);
    ctl0(&tgs, "POST", "/_test/faults",
         "{\"method\":\"answerCallbackQuery\",\"status\":429,\"description\":\"Too Many "
         "Requests: retry after 1\",\"retry_after\":1}");
    struct rsre_chat_action a = {.channel = "telegram", .ack_ref = p1.query};
    assert_int_equal(F->tg->ops->ack(F->tg, &a, "Vote recorded"), 0);
    json_t *reqs = wait_answer_requests(2);
    assert_int_equal(json_array_size(reqs), 2);
    json_t *q0 = json_array_get(reqs, 0), *q1 = json_array_get(reqs, 1);
    assert_int_equal(json_integer_value(json_object_get(q0, "status")), 429);
    assert_int_equal(json_integer_value(json_object_get(q1, "status")), 200);
    double gap = json_number_value(json_object_get(q1, "time")) -
                 json_number_value(json_object_get(q0, "time"));
    if (gap < 1.0) {
        fail_msg("answerCallbackQuery retried %.3f s after a 429 with retry_after 1", gap);
    }
    json_t *p = json_object_get(q1, "params");
    assert_string_equal(json_string_value(json_object_get(p, "callback_query_id")), p1.query);
    assert_string_equal(json_string_value(json_object_get(p, "text")), "Vote recorded");
    json_decref(reqs);

    /* Rate limited every time: three attempts, then dropped. */
    ctl0(&tgs, "DELETE", "/_test/requests", NULL);
    struct press p2 = press(1008, mid, 424242, 1);
    ctl0(&tgs, "POST", "/_test/faults",
         "{\"method\":\"answerCallbackQuery\",\"count\":3,\"status\":429,\"description\":\"Too "
         "Many Requests: retry after 1\",\"retry_after\":1}");
    a.ack_ref = p2.query;
    assert_int_equal(F->tg->ops->ack(F->tg, &a, "Vote recorded"), 0);
    reqs = wait_answer_requests(3);
    assert_int_equal(json_array_size(reqs), 3);
    json_decref(reqs);
    uint64_t settle = now_ms() + 1500; /* longer than retry_after: a 4th would have come */
    while (now_ms() < settle) {
        uv_run(&F->loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    reqs = answer_requests();
    assert_int_equal(json_array_size(reqs), 3);
    json_decref(reqs);

    /* An answer waiting out a 20 s limit when the channel goes away (teardown destroys it):
     * its timer is closed, nothing leaks, the loop closes. */
    ctl0(&tgs, "DELETE", "/_test/requests", NULL);
    ctl0(&tgs, "POST", "/_test/faults",
         "{\"method\":\"answerCallbackQuery\",\"status\":429,\"description\":\"Too Many "
         "Requests: retry after 20\",\"retry_after\":20}");
    assert_int_equal(F->tg->ops->ack(F->tg, &a, "Vote recorded"), 0);
    reqs = wait_answer_requests(1);
    assert_int_equal(json_array_size(reqs), 1);
    json_decref(reqs);
}

static void tg_webhook(void **state) {
    (void)state;
    write_file(tpath("tg_hook"), TG_HOOK_SECRET "\n");
    struct rsre_telegram_config tc;
    tg_config(&tc, tgs.base);
    char err[256];
    assert_int_equal(rsre_telegram_config_set(&tc, "mode", "webhook", err, sizeof(err)), 0);
    struct rsre_channel *ch = NULL;
    /* Webhook mode needs a secret. */
    assert_int_equal(rsre_telegram_config_set(&tc, "webhook_secret_env", "RSRE_TEST_UNSET_XYZ", err,
                                              sizeof(err)),
                     0);
    assert_int_not_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), 0);
    assert_null(strstr(err, TG_TOKEN));
    assert_int_equal(
        rsre_telegram_config_set(&tc, "webhook_secret_file", tpath("tg_hook"), err, sizeof(err)),
        0);
    assert_int_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), 0);

    const char *upd =
        "{\"update_id\": 77, \"callback_query\": {\"id\": \"q77\", \"from\": {\"id\": "
        "31337, \"is_bot\": false, \"first_name\": \"Op\"}, \"message\": "
        "{\"message_id\": 12, \"chat\": {\"id\": 31337, \"type\": \"private\"}, "
        "\"date\": 1, \"text\": \"Approve?\"}, \"chat_instance\": \"1\", \"data\": "
        "\"a9:approve:abc\"}}";
    assert_int_equal(rsre_telegram_webhook(ch, TG_HOOK_SECRET, upd, strlen(upd)), 503);
    assert_int_equal(ch->ops->start(ch, on_action, F), 0);
    assert_int_equal(rsre_telegram_webhook(ch, NULL, upd, strlen(upd)), 401);
    assert_int_equal(rsre_telegram_webhook(ch, "hook_Secret-124", upd, strlen(upd)), 401);
    assert_int_equal(rsre_telegram_webhook(ch, "hook_Secret-12", upd, strlen(upd)), 401);
    assert_int_equal(F->nactions, 0);
    assert_int_equal(rsre_telegram_webhook(ch, TG_HOOK_SECRET, upd, strlen(upd)), 200);
    assert_int_equal(F->nactions, 1);
    assert_string_equal(F->act_user, "31337");
    assert_string_equal(F->act_payload, "a9:approve:abc");
    assert_string_equal(F->act_ack, "q77");
    assert_string_equal(F->act_ref, "12");
    /* Telegram re-sends an update when we answered late: delivered once. */
    assert_int_equal(rsre_telegram_webhook(ch, TG_HOOK_SECRET, upd, strlen(upd)), 200);
    assert_int_equal(F->nactions, 1);
    assert_int_equal(rsre_telegram_webhook(ch, TG_HOOK_SECRET, "{\"update_id\":", 13), 400);
    assert_int_equal(rsre_telegram_webhook(ch, TG_HOOK_SECRET, "[]", 2), 400);
    assert_int_equal(rsre_telegram_webhook(ch, TG_HOOK_SECRET, upd, 2u << 20), 413);
    /* A poll-mode channel has no webhook. */
    assert_int_equal(rsre_telegram_webhook(F->tg, TG_HOOK_SECRET, upd, strlen(upd)), 404);
    /* No getUpdates from a webhook-mode channel. */
    uv_run(&F->loop, UV_RUN_NOWAIT);
    json_t *all = ctl(&tgs, "GET", "/_test/requests", NULL);
    assert_int_equal(json_array_size(all), 0);
    json_decref(all);
    ch->ops->destroy(ch);
}

/* Debug logging of a failed request names no token (curl_uv logs failed URLs at debug). */
static void tg_token_not_logged(void **state) {
    (void)state;
    int saved = dup(2);
    int fd = open(tpath("log"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    close(fd);
    int level = rsre_log_threshold;
    rsre_log_threshold = RSRE_LOG_DEBUG;
    struct rsre_telegram_config tc;
    tg_config(&tc, "http://127.0.0.1:9"); /* discard port: nobody listens */
    char err[256];
    struct rsre_channel *ch = NULL;
    int rc = rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err));
    struct rsre_chat_message m = {.chat = "1003", .text = "x"};
    const struct rsre_send_result *r = rc == 0 ? send_wait(ch, &m) : NULL;
    fflush(stderr);
    rsre_log_threshold = level;
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    assert_int_equal(r->status, RSRE_SEND_TRANSIENT);
    assert_null(strstr(r->error, "AAHdq"));
    ch->ops->destroy(ch);
    FILE *f = fopen(tpath("log"), "r");
    assert_non_null(f);
    char line[4096];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        lines++;
        if (strstr(line, "AAHdqTcvCH1vGWJx")) {
            fail_msg("token in log: %s", line);
        }
    }
    fclose(f);
    assert_true(lines > 0); /* the failure was logged, without the token */
}

static void tg_destroy_in_flight(void **state) {
    (void)state;
    ctl0(&tgs, "POST", "/_test/faults", "{\"method\":\"sendMessage\",\"sleep\":1}");
    struct rsre_chat_message m = {.chat = "1003", .text = "slow"};
    F->done = 0;
    assert_int_equal(F->tg->ops->send(F->tg, &m, on_sent, F), 0);
    for (int i = 0; i < 20; i++) {
        uv_run(&F->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(F->done, 0);
    F->tg->ops->destroy(F->tg);
    F->tg = NULL;
    assert_int_equal(F->done, 1);
    assert_int_equal(F->res.status, RSRE_SEND_TRANSIENT);
    /* Let the server finish its sleep so no fault leaks into the next test. */
    struct timespec ts = {1, 200000000};
    nanosleep(&ts, NULL);
}

/* ---- WhatsApp -------------------------------------------------------------------------------- */

#define WA_TO "4915112345678"

static void wa_send_shape(void **state) {
    (void)state;
    struct rsre_chat_button btns[] = {
        {.label = "Approve the reboot of node-a now", .payload = "a2:approve:0123abcd"},
        {.label = "Deny", .payload = "a2:deny:0123abcd"},
        {.label = "Details", .url = "https://robot.example.com/ui/approvals/a2"},
    };
    struct rsre_chat_message m = {
        .chat = "+" WA_TO, .text = "Reboot node-a?", .buttons = btns, .nbuttons = 3};
    const struct rsre_send_result *r = send_wait(F->wa, &m);
    if (r->status != RSRE_SEND_OK) {
        fail_msg("send: %d %s", (int)r->status, r->error);
    }
    assert_int_equal(strncmp(r->message_id, "wamid.", 6), 0);
    json_t *req = last_request(&was);
    assert_true(json_is_true(json_object_get(req, "auth_ok")));
    assert_string_equal(json_string_value(json_object_get(req, "path")),
                        "/v19.0/" WA_PHONE "/messages");
    assert_string_equal(json_string_value(json_object_get(req, "content_type")),
                        "application/json");
    json_error_t je;
    json_t *b = json_loads(json_string_value(json_object_get(req, "body")), 0, &je);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "messaging_product")), "whatsapp");
    assert_string_equal(json_string_value(json_object_get(b, "to")), WA_TO);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "interactive");
    json_t *in = json_object_get(b, "interactive");
    assert_string_equal(json_string_value(json_object_get(in, "type")), "button");
    const char *body = json_string_value(json_object_get(json_object_get(in, "body"), "text"));
    assert_non_null(strstr(body, "Reboot node-a?"));
    assert_non_null(strstr(body, "Details: https://robot.example.com/ui/approvals/a2"));
    json_t *bl = json_object_get(json_object_get(in, "action"), "buttons");
    assert_int_equal(json_array_size(bl), 2);
    json_t *r0 = json_object_get(json_array_get(bl, 0), "reply");
    assert_string_equal(json_string_value(json_object_get(r0, "id")), "a2:approve:0123abcd");
    const char *title = json_string_value(json_object_get(r0, "title"));
    /* 19 characters and the ellipsis: 20 characters. */
    assert_int_equal(strlen(title), 19 + 3);
    assert_int_equal(strncmp(title, "Approve the reboot ", 19), 0);
    json_decref(b);
    json_decref(req);

    /* An update of the thread: a text message replying to the first one. */
    char first[160];
    snprintf(first, sizeof(first), "%s", F->res.message_id);
    struct rsre_chat_message u = {.chat = WA_TO, .text = "Approved by alice", .edit_ref = first};
    r = send_wait(F->wa, &u);
    assert_int_equal(r->status, RSRE_SEND_OK);
    assert_string_not_equal(r->message_id, first);
    req = last_request(&was);
    b = json_loads(json_string_value(json_object_get(req, "body")), 0, &je);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "text");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "text"), "body")),
                        "Approved by alice");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(b, "context"), "message_id")), first);
    json_decref(b);
    json_decref(req);

    /* A reply to a message this number never sent: the server refuses (131009). */
    struct rsre_chat_message bad = {.chat = WA_TO, .text = "x", .edit_ref = "wamid.nope"};
    r = send_wait(F->wa, &bad);
    assert_int_equal(r->status, RSRE_SEND_REJECTED);
    assert_int_equal(r->api_code, 131009);
}

struct wa_case {
    const char *fault;
    enum rsre_send_status want;
    long code;
    int64_t retry_after_ms;
};

static void wa_failures(void **state) {
    (void)state;
    static const struct wa_case cases[] = {
        {"{\"status\":400,\"code\":131047,\"message\":\"Re-engagement message\"}",
         RSRE_SEND_CHAT_FAILED, 131047, 0},
        {"{\"status\":400,\"code\":131026,\"message\":\"Message Undeliverable.\"}",
         RSRE_SEND_CHAT_FAILED, 131026, 0},
        {"{\"status\":400,\"code\":130429,\"message\":\"Rate limit hit\"}", RSRE_SEND_RETRY, 130429,
         1000},
        {"{\"status\":400,\"code\":131056,\"message\":\"(Business Account, Consumer Account) "
         "pair rate limit hit\"}",
         RSRE_SEND_RETRY, 131056, 6000},
        {"{\"status\":429,\"code\":80007,\"message\":\"Rate limit issues\"}", RSRE_SEND_RETRY,
         80007, 60000},
        /* A Retry-After header longer than the documented wait wins (capped at an hour). */
        {"{\"status\":400,\"code\":130429,\"message\":\"Rate limit hit\","
         "\"retry_after_header\":20}",
         RSRE_SEND_RETRY, 130429, 20000},
        {"{\"status\":429,\"code\":4,\"message\":\"(#4) Application request limit reached\","
         "\"retry_after_header\":7200}",
         RSRE_SEND_RETRY, 4, 3600000},
        {"{\"raw_status\":429,\"retry_after_header\":3}", RSRE_SEND_RETRY, 0, 3000},
        {"{\"status\":500,\"code\":131000,\"message\":\"Something went wrong\"}",
         RSRE_SEND_TRANSIENT, 131000, 0},
        {"{\"status\":503,\"code\":12345,\"message\":\"unknown\"}", RSRE_SEND_TRANSIENT, 12345, 0},
        {"{\"status\":400,\"code\":131009,\"message\":\"(#131009) Parameter value is not "
         "valid\"}",
         RSRE_SEND_REJECTED, 131009, 0},
        {"{\"raw_status\":502}", RSRE_SEND_TRANSIENT, 0, 0},
        {"{\"malformed\":true}", RSRE_SEND_TRANSIENT, 0, 0},
        {"{\"sleep\":3}", RSRE_SEND_TRANSIENT, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ctl0(&was, "POST", "/_test/faults", cases[i].fault);
        struct rsre_chat_message m = {.chat = WA_TO, .text = "incident update"};
        const struct rsre_send_result *r = send_wait(F->wa, &m);
        if (r->status != cases[i].want || r->api_code != cases[i].code ||
            r->retry_after_ms != cases[i].retry_after_ms) {
            fail_msg("case %zu: status %d code %ld retry %lld err %s", i, (int)r->status,
                     r->api_code, (long long)r->retry_after_ms, r->error);
        }
    }
    /* Wrong access token: 190, rejected. */
    struct rsre_whatsapp_config wc;
    wa_config(&wc, was.base, tpath("wa_bad_token"));
    struct rsre_channel *ch = NULL;
    char err[256];
    assert_int_equal(rsre_whatsapp_create(F->http, &wc, &ch, err, sizeof(err)), 0);
    struct rsre_chat_message m = {.chat = WA_TO, .text = "x"};
    const struct rsre_send_result *r = send_wait(ch, &m);
    assert_int_equal(r->status, RSRE_SEND_REJECTED);
    assert_int_equal(r->api_code, 190);
    assert_int_equal(r->http_status, 401);
    ch->ops->destroy(ch);
    /* Bad input never reaches the API. */
    size_t before = request_count(&was);
    struct rsre_chat_button four[] = {{.label = "a", .payload = "1"},
                                      {.label = "b", .payload = "2"},
                                      {.label = "c", .payload = "3"},
                                      {.label = "d", .payload = "4"}};
    struct rsre_chat_message bad[] = {
        {.chat = "12ab", .text = "x"},
        {.chat = "123", .text = "x"},
        {.chat = WA_TO, .text = ""},
        {.chat = WA_TO, .text = "x", .buttons = four, .nbuttons = 4},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(F->wa->ops->send(F->wa, &bad[i], on_sent, F), -EINVAL);
    }
    assert_int_equal(request_count(&was), before);
}

static void wa_verify(void **state) {
    (void)state;
    char out[256];
    assert_int_equal(
        rsre_whatsapp_webhook_verify(F->wa, "subscribe", WA_VERIFY, "1158201444", out, sizeof(out)),
        200);
    assert_string_equal(out, "1158201444");
    assert_int_equal(rsre_whatsapp_webhook_verify(F->wa, "subscribe", "robot-sre-verify-4712",
                                                  "1158201444", out, sizeof(out)),
                     403);
    assert_string_equal(out, "");
    assert_int_equal(rsre_whatsapp_webhook_verify(F->wa, "subscribe", "", "1", out, sizeof(out)),
                     403);
    assert_int_equal(
        rsre_whatsapp_webhook_verify(F->wa, "unsubscribe", WA_VERIFY, "1", out, sizeof(out)), 403);
    assert_int_equal(rsre_whatsapp_webhook_verify(F->wa, NULL, WA_VERIFY, "1", out, sizeof(out)),
                     403);
    assert_int_equal(
        rsre_whatsapp_webhook_verify(F->wa, "subscribe", WA_VERIFY, NULL, out, sizeof(out)), 400);
    assert_int_equal(
        rsre_whatsapp_webhook_verify(F->wa, "subscribe", WA_VERIFY, "a\nb", out, sizeof(out)), 400);
}

static void wa_webhook_reply(void **state) {
    (void)state;
    struct rsre_chat_message m = {
        .chat = WA_TO, .text = "Reboot node-b?", .buttons = approval_buttons, .nbuttons = 2};
    const struct rsre_send_result *r = send_wait(F->wa, &m);
    assert_int_equal(r->status, RSRE_SEND_OK);
    char mid[160];
    snprintf(mid, sizeof(mid), "%s", r->message_id);
    char body[512];
    snprintf(body, sizeof(body), "{\"from\": \"%s\", \"context_id\": \"%s\", \"button\": 1}", WA_TO,
             mid);
    json_t *hook = ctl(&was, "POST", "/_test/reply", body);
    const char *hb = json_string_value(json_object_get(hook, "body"));
    const char *sig = json_string_value(json_object_get(hook, "signature"));
    assert_non_null(hb);
    assert_non_null(sig);
    size_t hl = strlen(hb);

    /* Before start: 503, nothing delivered. */
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa, sig, hb, hl), 503);
    assert_int_equal(F->wa->ops->start(F->wa, on_action, F), 0);
    /* Missing, malformed, wrong signatures: refused before parsing. */
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa, NULL, hb, hl), 401);
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa, "sha1=abc", hb, hl), 401);
    char wrong[80];
    snprintf(wrong, sizeof(wrong), "%s", sig);
    wrong[20] = wrong[20] == '0' ? '1' : '0';
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa, wrong, hb, hl), 401);
    /* The body changed by one byte under the right signature. */
    char *tampered = strdup(hb);
    assert_non_null(tampered);
    char *d = strstr(tampered, "a1:deny");
    assert_non_null(d);
    d[1] = '2';
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa, sig, tampered, hl), 401);
    free(tampered);
    /* Signed with another app's secret. */
    json_t *req = json_pack("{s:s, s:s}", "body", hb, "secret", "another-apps-secret");
    char *rq = json_dumps(req, 0);
    json_t *other = ctl(&was, "POST", "/_test/sign", rq);
    free(rq);
    json_decref(req);
    assert_int_equal(rsre_whatsapp_webhook_post(
                         F->wa, json_string_value(json_object_get(other, "signature")), hb, hl),
                     401);
    json_decref(other);
    assert_int_equal(F->nactions, 0);
    struct rsre_whatsapp_stats st;
    rsre_whatsapp_stats(F->wa, &st);
    assert_int_equal(st.bad_signatures, 5);

    /* The real one. Upper-case hex is accepted too. */
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa, sig, hb, hl), 200);
    assert_int_equal(F->nactions, 1);
    assert_string_equal(F->act_user, WA_TO);
    assert_string_equal(F->act_chat, WA_TO);
    assert_string_equal(F->act_payload, "a1:deny:7f3a9c");
    assert_string_equal(F->act_ref, mid);
    assert_int_equal(strncmp(F->act_ack, "wamid.", 6), 0);
    /* Meta re-delivers: handled once. */
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa, sig, hb, hl), 200);
    assert_int_equal(F->nactions, 1);
    rsre_whatsapp_stats(F->wa, &st);
    assert_int_equal(st.repeats, 1);
    json_decref(hook);

    /* Signed but not a WhatsApp notification: 400. */
    const char *junk = "{\"object\":\"page\",\"entry\":[]}";
    req = json_pack("{s:s}", "body", junk);
    rq = json_dumps(req, 0);
    json_t *js = ctl(&was, "POST", "/_test/sign", rq);
    free(rq);
    json_decref(req);
    assert_int_equal(rsre_whatsapp_webhook_post(F->wa,
                                                json_string_value(json_object_get(js, "signature")),
                                                junk, strlen(junk)),
                     400);
    json_decref(js);
}

static void wa_async_failure(void **state) {
    (void)state;
    ctl0(&was, "POST", "/_test/recipients",
         "[{\"number\": \"447700900123\", \"window_closed\": true}, "
         "{\"number\": \"447700900124\", \"undeliverable\": true}]");
    F->wa->ops->on_delivery(F->wa, on_delivery, F);
    assert_int_equal(F->wa->ops->start(F->wa, on_action, F), 0);
    const char *nums[] = {"447700900123", "447700900124"};
    long codes[] = {131047, 131026};
    for (size_t i = 0; i < 2; i++) {
        struct rsre_chat_message m = {.chat = nums[i], .text = "disk pressure on node-c"};
        const struct rsre_send_result *r = send_wait(F->wa, &m);
        assert_int_equal(r->status, RSRE_SEND_OK); /* the API accepts it... */
        char mid[160];
        snprintf(mid, sizeof(mid), "%s", r->message_id);
        json_t *out = ctl(&was, "GET", "/_test/outbox", NULL);
        assert_int_equal(json_array_size(out), i + 1);
        json_t *it = json_array_get(out, i);
        const char *hb = json_string_value(json_object_get(it, "body"));
        const char *sig = json_string_value(json_object_get(it, "signature"));
        /* ...and the failure arrives later, through the webhook. */
        assert_int_equal(rsre_whatsapp_webhook_post(F->wa, sig, hb, strlen(hb)), 200);
        assert_int_equal(F->nfail, (int)i + 1);
        assert_int_equal(F->fail.status, RSRE_SEND_CHAT_FAILED);
        assert_int_equal(F->fail.api_code, codes[i]);
        assert_string_equal(F->fail_id, mid);
        assert_string_equal(F->fail_chat, nums[i]);
        assert_true(strlen(F->fail.error) > 0);
        /* Again: once. */
        assert_int_equal(rsre_whatsapp_webhook_post(F->wa, sig, hb, strlen(hb)), 200);
        assert_int_equal(F->nfail, (int)i + 1);
        json_decref(out);
    }
    assert_int_equal(F->nactions, 0);
}

static void config_errors(void **state) {
    (void)state;
    char err[256];
    struct rsre_telegram_config tc;
    struct rsre_channel *ch = NULL;
    tg_config(&tc, "ftp://x");
    assert_int_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), RSRE_EINVALID);
    tg_config(&tc, tgs.base);
    assert_int_equal(rsre_telegram_config_set(&tc, "timeout_ms", "0", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_telegram_config_set(&tc, "nope", "1", err, sizeof(err)), RSRE_ENOTFOUND);
    assert_int_equal(rsre_telegram_config_set(&tc, "mode", "push", err, sizeof(err)), 0);
    assert_int_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), RSRE_EINVALID);
    tg_config(&tc, tgs.base);
    assert_int_equal(
        rsre_telegram_config_set(&tc, "token_file", "/nonexistent/t", err, sizeof(err)), 0);
    assert_int_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), -ENOENT);
    write_file(tpath("tg_bad"), "has space:in it\n");
    assert_int_equal(rsre_telegram_config_set(&tc, "token_file", tpath("tg_bad"), err, sizeof(err)),
                     0);
    assert_int_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), RSRE_EINVALID);
    assert_null(strstr(err, "has space"));
    unlink(tpath("tg_bad"));
    /* The token from the environment. */
    assert_int_equal(rsre_telegram_config_set(&tc, "token_file", "", err, sizeof(err)), 0);
    assert_int_equal(
        rsre_telegram_config_set(&tc, "token_env", "RSRE_TEST_TG_TOKEN", err, sizeof(err)), 0);
    setenv("RSRE_TEST_TG_TOKEN", TG_TOKEN, 1);
    assert_int_equal(rsre_telegram_create(F->http, &tc, &ch, err, sizeof(err)), 0);
    unsetenv("RSRE_TEST_TG_TOKEN");
    struct rsre_chat_message m = {.chat = "1003", .text = "from env token"};
    assert_int_equal(send_wait(ch, &m)->status, RSRE_SEND_OK);
    ch->ops->destroy(ch);

    struct rsre_whatsapp_config wc;
    wa_config(&wc, was.base, tpath("wa_token"));
    assert_int_equal(rsre_whatsapp_config_set(&wc, "phone_number_id", "", err, sizeof(err)), 0);
    assert_int_equal(rsre_whatsapp_create(F->http, &wc, &ch, err, sizeof(err)), RSRE_EINVALID);
    wa_config(&wc, was.base, tpath("wa_token"));
    assert_int_equal(rsre_whatsapp_config_set(&wc, "api_version", "19", err, sizeof(err)), 0);
    assert_int_equal(rsre_whatsapp_create(F->http, &wc, &ch, err, sizeof(err)), RSRE_EINVALID);
    wa_config(&wc, was.base, tpath("wa_token"));
    assert_int_equal(rsre_whatsapp_config_set(&wc, "app_secret_file", "", err, sizeof(err)), 0);
    assert_int_equal(
        rsre_whatsapp_config_set(&wc, "app_secret_env", "RSRE_TEST_UNSET_XYZ", err, sizeof(err)),
        0);
    assert_int_equal(rsre_whatsapp_create(F->http, &wc, &ch, err, sizeof(err)), RSRE_ENOTFOUND);
    assert_non_null(strstr(err, "app secret"));
}

/* ---- the test servers refuse what the real APIs refuse ------------------------------------- */

/* POSTs body with a content type to a server; returns the HTTP status, *out the JSON reply. */
static long raw_post(const struct server *s, const char *path, const char *ctype, const char *auth,
                     const char *body, json_t **out) {
    CURL *e = curl_easy_init();
    assert_non_null(e);
    char url[256], h1[128], h2[256];
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    snprintf(h1, sizeof(h1), "Content-Type: %s", ctype);
    struct curl_slist *h = curl_slist_append(NULL, h1);
    if (auth) {
        snprintf(h2, sizeof(h2), "Authorization: Bearer %s", auth);
        h = curl_slist_append(h, h2);
    }
    struct server_http_buf b = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, server_http_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    json_error_t je;
    *out = b.p ? json_loads(b.p, 0, &je) : NULL;
    free(b.p);
    assert_non_null(*out);
    return status;
}

static void servers_check_shapes(void **state) {
    (void)state;
    ctl0(&tgs, "POST", "/_test/chats", "{\"id\": 1006}");
    static const struct {
        const char *ctype, *body;
        long status;
        const char *desc;
    } tg[] = {
        {"application/json", "{\"text\": \"x\"}", 400, "Bad Request: chat_id is empty"},
        {"text/plain", "{\"chat_id\": 1006, \"text\": \"x\"}", 400,
         "Bad Request: chat_id is empty"},
        {"application/json", "{\"chat_id\": 1006}", 400, "Bad Request: message text is empty"},
        {"application/json",
         "{\"chat_id\": 1006, \"text\": \"x\", \"reply_markup\": {\"inline_keyboard\": "
         "[[{\"text\": \"A\", \"callback_data\": "
         "\"01234567890123456789012345678901234567890123456789012345678901234\"}]]}}",
         400, "Bad Request: BUTTON_DATA_INVALID"},
        {"application/json",
         "{\"chat_id\": 1006, \"text\": \"x\", \"reply_markup\": {\"inline_keyboard\": "
         "[{\"text\": \"A\"}]}}",
         400, NULL},
        {"application/json",
         "{\"chat_id\": 1006, \"text\": \"x\", \"reply_markup\": {\"inline_keyboard\": "
         "[[{\"text\": \"A\"}]]}}",
         400, NULL},
        {"application/json", "{\"chat_id\": 1006, \"text\": \"x\"}", 200, NULL},
    };
    for (size_t i = 0; i < sizeof(tg) / sizeof(tg[0]); i++) {
        json_t *j = NULL;
        long st = raw_post(&tgs, "/bot" TG_TOKEN "/sendMessage", tg[i].ctype, NULL, tg[i].body, &j);
        if (st != tg[i].status) {
            fail_msg("telegram case %zu: %ld", i, st);
        }
        if (st != 200) {
            assert_true(json_is_false(json_object_get(j, "ok")));
            assert_int_equal(json_integer_value(json_object_get(j, "error_code")), st);
        }
        if (tg[i].desc) {
            assert_string_equal(json_string_value(json_object_get(j, "description")), tg[i].desc);
        }
        json_decref(j);
    }
    json_t *j = NULL;
    assert_int_equal(raw_post(&tgs, "/bot1:wrong/sendMessage", "application/json", NULL,
                              "{\"chat_id\": 1006, \"text\": \"x\"}", &j),
                     401);
    json_decref(j);

    static const struct {
        const char *ctype, *auth, *body;
        long status, code;
    } wa[] = {
        {"application/json", WA_TOKEN,
         "{\"to\": \"4915112345678\", \"type\": \"text\", "
         "\"text\": {\"body\": \"x\"}}",
         400, 100},
        {"text/plain", WA_TOKEN,
         "{\"messaging_product\": \"whatsapp\", \"to\": "
         "\"4915112345678\", \"type\": \"text\", \"text\": {\"body\": \"x\"}}",
         400, 100},
        {"application/json", "nope", "{}", 401, 190},
        {"application/json", WA_TOKEN,
         "{\"messaging_product\": \"whatsapp\", \"to\": \"4915112345678\", \"type\": "
         "\"interactive\", \"interactive\": {\"type\": \"button\", \"body\": {\"text\": "
         "\"x\"}, \"action\": {\"buttons\": [{\"type\": \"reply\", \"reply\": {\"id\": "
         "\"a\", \"title\": \"123456789012345678901\"}}]}}}",
         400, 131009},
        {"application/json", WA_TOKEN,
         "{\"messaging_product\": \"whatsapp\", \"to\": \"4915112345678\", \"type\": "
         "\"interactive\", \"interactive\": {\"type\": \"button\", \"body\": {\"text\": "
         "\"x\"}, \"action\": {\"buttons\": [{\"type\": \"reply\", \"reply\": {\"id\": "
         "\"a\", \"title\": \"A\"}}, {\"type\": \"reply\", \"reply\": {\"id\": \"a\", "
         "\"title\": \"B\"}}]}}}",
         400, 131009},
        {"application/json", WA_TOKEN,
         "{\"messaging_product\": \"whatsapp\", \"to\": \"4915112345678\", \"type\": "
         "\"text\", \"text\": {\"body\": \"x\"}}",
         200, 0},
    };
    for (size_t i = 0; i < sizeof(wa) / sizeof(wa[0]); i++) {
        json_t *r = NULL;
        long st =
            raw_post(&was, "/v19.0/" WA_PHONE "/messages", wa[i].ctype, wa[i].auth, wa[i].body, &r);
        if (st != wa[i].status) {
            fail_msg("whatsapp case %zu: %ld", i, st);
        }
        if (st != 200) {
            json_t *err = json_object_get(r, "error");
            assert_int_equal(json_integer_value(json_object_get(err, "code")), wa[i].code);
            assert_non_null(json_string_value(json_object_get(err, "message")));
            assert_non_null(json_string_value(json_object_get(err, "fbtrace_id")));
        }
        json_decref(r);
    }
    json_t *r = NULL;
    assert_int_equal(raw_post(&was, "/v19.0/999/messages", "application/json", WA_TOKEN,
                              "{\"messaging_product\": \"whatsapp\"}", &r),
                     400);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r, "error"), "error_subcode")), 33);
    json_decref(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tg_send_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_wrong_token, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_long_text, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_long_polling, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_answer_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_webhook, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_token_not_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(tg_destroy_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(wa_send_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(wa_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(wa_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(wa_webhook_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(wa_async_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(servers_check_shapes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
