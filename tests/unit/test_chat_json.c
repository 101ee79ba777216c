/*
 * The chat transports' wire formats as pure functions (notify/chat_internal.h): text clipping in
 * code points and UTF-16 units, Telegram update parsing and reply classification corners, the
 * WhatsApp webhook parser (phone number filter, template quick replies, failed statuses with
 * unknown codes, malformed elements skipped) and request builders, secrets from files and the
 * environment, configuration rows.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "notify/chat_internal.h"
#include "notify/telegram.h"
#include "notify/whatsapp.h"

static void clip(void **state) {
    (void)state;
    char *c = rsre__chat_clip("hello", 5, 0);
    assert_string_equal(c, "hello");
    free(c);
    c = rsre__chat_clip("hello!", 5, 0);
    assert_string_equal(c, "hell\xe2\x80\xa6");
    free(c);
    /* Astral characters count 2 in UTF-16: "a🚨b" is 4 units. */
    c = rsre__chat_clip("a\xf0\x9f\x9a\xa8"
                        "b",
                        4, 1);
    assert_string_equal(c, "a\xf0\x9f\x9a\xa8"
                           "b");
    free(c);
    c = rsre__chat_clip("a\xf0\x9f\x9a\xa8"
                        "b",
                        3, 1);
    assert_string_equal(c, "a\xe2\x80\xa6"); /* the emoji would not fit with the ellipsis */
    free(c);
    c = rsre__chat_clip("a\xf0\x9f\x9a\xa8"
                        "b",
                        3, 0);
    assert_string_equal(c, "a\xf0\x9f\x9a\xa8"
                           "b");
    free(c);
    /* Invalid UTF-8 becomes U+FFFD; overlongs and surrogates are invalid. */
    c = rsre__chat_clip("x\xc0\xafy\xed\xa0\x80z\xff", 100, 0);
    assert_string_equal(c, "x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz"
                           "\xef\xbf\xbd");
    free(c);
    c = rsre__chat_clip("abc", 0, 0);
    assert_string_equal(c, "");
    free(c);
    c = rsre__chat_clip(NULL, 3, 0);
    assert_string_equal(c, "");
    free(c);
}

struct tg_seen {
    int n;
    struct rsre__tg_update last[8];
};

static void tg_fn(void *arg, const struct rsre__tg_update *u) {
    struct tg_seen *s = arg;
    if (s->n < 8) {
        s->last[s->n] = *u;
    }
    s->n++;
}

static void tg_updates(void **state) {
    (void)state;
    const char *body =
        "{\"ok\":true,\"result\":["
        "{\"update_id\":10,\"callback_query\":{\"id\":\"q1\",\"from\":{\"id\":7},\"message\":"
        "{\"message_id\":5,\"chat\":{\"id\":-1001}},\"data\":\"p\"}},"
        "{\"update_id\":11,\"callback_query\":{\"id\":\"q2\",\"from\":{\"id\":7},"
        "\"inline_message_id\":\"x\",\"data\":\"p\"}},"
        "{\"update_id\":12,\"callback_query\":{\"id\":\"q3\",\"from\":{\"id\":7},\"message\":"
        "{\"message_id\":5,\"chat\":{\"id\":1}},\"data\":"
        "\"01234567890123456789012345678901234567890123456789012345678901234\"}},"
        "{\"update_id\":13,\"message\":{\"message_id\":9,\"chat\":{\"id\":-100},\"text\":\"hi\"}},"
        "{\"update_id\":\"14\"},"
        "17,"
        "{\"update_id\":15,\"edited_message\":{}}]}";
    struct tg_seen s = {0};
    assert_int_equal(rsre__tg_parse_updates(body, strlen(body), tg_fn, &s), 5);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.last[0].kind, RSRE_TG_CALLBACK);
    assert_string_equal(s.last[0].chat, "-1001");
    assert_string_equal(s.last[0].user, "7");
    assert_string_equal(s.last[0].message_id, "5");
    assert_int_equal(s.last[1].kind, 0); /* inline message: no chat to answer in */
    assert_int_equal(s.last[1].update_id, 11);
    assert_int_equal(s.last[2].kind, 0); /* 65-byte data: not from our buttons */
    assert_int_equal(s.last[3].kind, RSRE_TG_MESSAGE);
    assert_string_equal(s.last[3].user, ""); /* channel post: no sender */
    assert_int_equal(s.last[4].kind, 0);
    assert_int_equal(s.last[4].update_id, 15);
    const char *bad[] = {"",
                         "[]",
                         "{\"ok\":false,\"result\":[]}",
                         "{\"ok\":true}",
                         "{\"ok\":true,\"result\":{}}",
                         "{\"ok\":true,\"result\":[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(rsre__tg_parse_updates(bad[i], strlen(bad[i]), tg_fn, &s), RSRE_EPARSE);
    }
    assert_int_equal(rsre__tg_parse_update("{\"update_id\":-1}", 16, tg_fn, &s), RSRE_EPARSE);
}

static void tg_classify(void **state) {
    (void)state;
    struct rsre_send_result r;
    const char *b =
        "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group chat was "
        "upgraded to a supergroup chat\",\"parameters\":{\"migrate_to_chat_id\":"
        "-1009876}}";
    rsre__tg_classify(0, 400, b, strlen(b), NULL, &r);
    assert_int_equal(r.status, RSRE_SEND_CHAT_FAILED);
    assert_non_null(strstr(r.error, "migrate_to_chat_id=-1009876"));
    b = "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests\","
        "\"parameters\":{\"retry_after\":999999}}";
    rsre__tg_classify(0, 429, b, strlen(b), NULL, &r);
    assert_int_equal(r.status, RSRE_SEND_RETRY);
    assert_int_equal(r.retry_after_ms, 3600 * 1000); /* bounded */
    b = "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: message is not "
        "modified: x\"}";
    rsre__tg_classify(0, 400, b, strlen(b), NULL, &r);
    assert_int_equal(r.status, RSRE_SEND_REJECTED); /* only an edit can be "not modified" */
    rsre__tg_classify(0, 400, b, strlen(b), "77", &r);
    assert_int_equal(r.status, RSRE_SEND_OK);
    assert_string_equal(r.message_id, "77");
    b = "{\"ok\":true,\"result\":true}";
    rsre__tg_classify(0, 200, b, strlen(b), "78", &r);
    assert_int_equal(r.status, RSRE_SEND_OK);
    rsre__tg_classify(0, 200, b, strlen(b), NULL, &r);
    assert_int_equal(r.status, RSRE_SEND_TRANSIENT);
    b = "{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}";
    rsre__tg_classify(0, 401, b, strlen(b), NULL, &r);
    assert_int_equal(r.status, RSRE_SEND_REJECTED);
    assert_int_equal(r.api_code, 401);
    rsre__tg_classify(0, 403, "<html>", 6, NULL, &r);
    assert_int_equal(r.status, RSRE_SEND_CHAT_FAILED);
    rsre__tg_classify(-ECONNREFUSED, 0, "", 0, NULL, &r);
    assert_int_equal(r.status, RSRE_SEND_TRANSIENT);
    assert_int_equal(r.http_status, 0);
    /* Control characters in a description do not reach logs. */
    b = "{\"ok\":false,\"error_code\":400,\"description\":\"a\\nb\\u001b[31m\"}";
    rsre__tg_classify(0, 400, b, strlen(b), NULL, &r);
    assert_string_equal(r.error, "a?b?[31m");
}

static void tg_build(void **state) {
    (void)state;
    struct rsre_chat_button b[] = {{.label = "Approve", .payload = "p1"},
                                   {.label = "Details", .url = "https://x.example/a"}};
    struct rsre_chat_message m = {.chat = "@ops_channel", .text = "t", .buttons = b, .nbuttons = 2};
    char *out = NULL;
    assert_int_equal(rsre__tg_build_message(&m, &out), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    free(out);
    assert_string_equal(json_string_value(json_object_get(j, "chat_id")), "@ops_channel");
    json_decref(j);
    m.chat = "@bad-name";
    assert_int_equal(rsre__tg_build_message(&m, &out), -EINVAL);
    m.chat = "-1001234567890";
    m.edit_ref = "0";
    assert_int_equal(rsre__tg_build_message(&m, &out), -EINVAL);
    m.edit_ref = "12";
    assert_int_equal(rsre__tg_build_message(&m, &out), 0);
    j = json_loads(out, 0, &je);
    free(out);
    assert_int_equal(json_integer_value(json_object_get(j, "chat_id")), -1001234567890LL);
    assert_int_equal(json_integer_value(json_object_get(j, "message_id")), 12);
    json_decref(j);
    struct rsre_chat_button badutf[] = {{.label = "A", .payload = "\xff\xfe"}};
    struct rsre_chat_message m2 = {.chat = "1", .text = "t", .buttons = badutf, .nbuttons = 1};
    assert_int_equal(rsre__tg_build_message(&m2, &out), -EINVAL);
}

struct wa_seen {
    int actions, failed;
    struct rsre__wa_event last_action, last_failed;
};

static void wa_fn(void *arg, const struct rsre__wa_event *e) {
    struct wa_seen *s = arg;
    if (e->kind == RSRE_WA_ACTION) {
        s->actions++;
        s->last_action = *e;
    } else {
        s->failed++;
        s->last_failed = *e;
    }
}

static void wa_webhook(void **state) {
    (void)state;
    const char *body =
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":["
        "{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"111\"},"
        "\"messages\":[{\"from\":\"4915112345678\",\"id\":\"wamid.T\",\"type\":\"button\","
        "\"button\":{\"payload\":\"tp\",\"text\":\"Approve\"},\"context\":{\"id\":\"wamid.C\"}},"
        "{\"from\":\"4915112345678\",\"id\":\"wamid.X\",\"type\":\"text\",\"text\":{\"body\":"
        "\"hi\"}},"
        "{\"from\":\"12ab\",\"id\":\"wamid.Y\",\"type\":\"button\",\"button\":{\"payload\":\"p\"}}"
        "],\"statuses\":[{\"id\":\"wamid.S\",\"status\":\"failed\",\"recipient_id\":"
        "\"447700900123\","
        "\"errors\":[{\"code\":999999,\"title\":\"new error\"}]},"
        "{\"id\":\"wamid.D\",\"status\":\"delivered\",\"recipient_id\":\"447700900123\"},"
        "{\"id\":\"wamid.R\",\"status\":\"failed\",\"recipient_id\":\"447700900123\","
        "\"errors\":[{\"code\":130429,\"title\":\"Rate limit hit\"}]}]}},"
        "{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"222\"},"
        "\"messages\":[{\"from\":\"4915112345678\",\"id\":\"wamid.O\",\"type\":\"button\","
        "\"button\":{\"payload\":\"other-number\"}}]}},"
        "{\"field\":\"account_update\",\"value\":{}}]}]}";
    struct wa_seen s = {0};
    assert_true(rsre__wa_parse_webhook(body, strlen(body), "111", wa_fn, &s) >= 0);
    assert_int_equal(s.actions, 1); /* text and a non-number sender skipped; 222 filtered */
    assert_string_equal(s.last_action.payload, "tp");
    assert_string_equal(s.last_action.context_id, "wamid.C");
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.last_failed.result.status, RSRE_SEND_RETRY);
    memset(&s, 0, sizeof(s));
    assert_true(rsre__wa_parse_webhook(body, strlen(body), "", wa_fn, &s) >= 0);
    assert_int_equal(s.actions, 2); /* no filter: the other number's reply too */
    /* The unknown code still means the chat was not reached. */
    const char *one = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{"
                      "\"field\":\"messages\",\"value\":{\"statuses\":[{\"id\":\"wamid.S\","
                      "\"status\":\"failed\",\"recipient_id\":\"447700900123\"}]}}]}]}";
    memset(&s, 0, sizeof(s));
    assert_int_equal(rsre__wa_parse_webhook(one, strlen(one), "", wa_fn, &s), 1);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.last_failed.result.status, RSRE_SEND_CHAT_FAILED);
    assert_int_equal(
        rsre__wa_parse_webhook("{\"object\":\"page\",\"entry\":[]}", 29, "", wa_fn, &s),
        RSRE_EPARSE);
}

static void wa_build(void **state) {
    (void)state;
    struct rsre_chat_button b[] = {{.label = "Approve", .payload = "x"},
                                   {.label = "Deny", .payload = "y"}};
    char text[2000];
    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    struct rsre_chat_message m = {
        .chat = "+4915112345678", .text = text, .buttons = b, .nbuttons = 2};
    char *out = NULL;
    assert_int_equal(rsre__wa_build_message(&m, &out), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    free(out);
    const char *body = json_string_value(
        json_object_get(json_object_get(json_object_get(j, "interactive"), "body"), "text"));
    assert_int_equal(strlen(body), 1023 + 3); /* 1023 characters and the ellipsis */
    assert_string_equal(json_string_value(json_object_get(j, "to")), "4915112345678");
    json_decref(j);
    char payload[300];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    b[0].payload = payload;
    assert_int_equal(rsre__wa_build_message(&m, &out), -EINVAL);
}

static void secrets(void **state) {
    (void)state;
    char dir[] = "/tmp/rsre-secret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/s", dir);
    FILE *f = fopen(path, "w");
    fputs("abc:DEF_123-x \n\n", f);
    fclose(f);
    char out[64], err[256];
    assert_int_equal(rsre__chat_read_secret(path, "IGNORED", out, sizeof(out), err, sizeof(err)),
                     0);
    assert_string_equal(out, "abc:DEF_123-x");
    f = fopen(path, "w");
    fputs("two words\n", f);
    fclose(f);
    assert_int_equal(rsre__chat_read_secret(path, NULL, out, sizeof(out), err, sizeof(err)),
                     RSRE_EINVALID);
    assert_null(strstr(err, "two"));
    f = fopen(path, "w");
    for (int i = 0; i < 100; i++) {
        fputc('k', f);
    }
    fclose(f);
    assert_int_equal(rsre__chat_read_secret(path, NULL, out, sizeof(out), err, sizeof(err)),
                     RSRE_ELIMIT);
    f = fopen(path, "w");
    fclose(f);
    assert_int_equal(rsre__chat_read_secret(path, NULL, out, sizeof(out), err, sizeof(err)),
                     RSRE_EINVALID);
    unlink(path);
    rmdir(dir);
    setenv("RSRE_TEST_SECRET_X", "s3cret", 1);
    assert_int_equal(
        rsre__chat_read_secret("", "RSRE_TEST_SECRET_X", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "s3cret");
    unsetenv("RSRE_TEST_SECRET_X");
    assert_int_equal(
        rsre__chat_read_secret("", "RSRE_TEST_SECRET_X", out, sizeof(out), err, sizeof(err)),
        RSRE_ENOTFOUND);
    assert_int_equal(rsre__chat_read_secret(NULL, NULL, out, sizeof(out), err, sizeof(err)),
                     RSRE_ENOTFOUND);
    assert_true(rsre__chat_secret_eq("abc", "abc", 3));
    assert_false(rsre__chat_secret_eq("abc", "abd", 3));
    assert_false(rsre__chat_secret_eq("abc", "ab", 2));
    assert_false(rsre__chat_secret_eq("abc", NULL, 0));
}

static void config_rows(void **state) {
    (void)state;
    struct rsre_telegram_config t;
    rsre_telegram_config_defaults(&t);
    assert_string_equal(t.base_url, "https://api.telegram.org");
    assert_int_equal(t.poll_timeout_s, 25);
    char err[256];
    assert_int_equal(rsre_telegram_config_set(&t, "poll_timeout_s", "51", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_telegram_config_set(&t, "poll_timeout_s", "-1", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_telegram_config_set(&t, "poll_timeout_s", "5x", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(t.poll_timeout_s, 25); /* unchanged on error */
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(rsre_telegram_config_set(&t, "token_file", big, err, sizeof(err)),
                     RSRE_EINVALID);
    struct rsre_whatsapp_config w;
    rsre_whatsapp_config_defaults(&w);
    assert_string_equal(w.api_version, "v19.0");
    assert_string_equal(w.app_secret_env, "ROBOT_SRE_WHATSAPP_APP_SECRET");
    for (size_t i = 0; i < rsre_whatsapp_config_nkeys; i++) {
        assert_non_null(rsre_whatsapp_config_keys[i].desc);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clip),     cmocka_unit_test(tg_updates),  cmocka_unit_test(tg_classify),
        cmocka_unit_test(tg_build), cmocka_unit_test(wa_webhook),  cmocka_unit_test(wa_build),
        cmocka_unit_test(secrets),  cmocka_unit_test(config_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
