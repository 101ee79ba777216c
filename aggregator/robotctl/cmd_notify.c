/*
 * robotctl notifications list|ack: the in-app notifications over the admin API
 * (GET /api/v1/notifications, POST /api/v1/notifications/{id}/ack; docs/chatops.md). Same
 * flags and environment as the other API commands (cmd_api.c): --server, --token-file,
 * --cacert, ROBOT_SRE_SERVER, ROBOT_SRE_TOKEN_FILE, ROBOT_SRE_TOKEN, ROBOT_SRE_CACERT.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robotctl.h"

#define RESPONSE_MAX (16u << 20)
#define TOKEN_MAX 512

struct opts {
    const char *server, *token_file, *cacert, *limit, *id;
    int unacked;
};

static int parse(int argc, char **argv, struct opts *op, int want_id) {
    memset(op, 0, sizeof(*op));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--server")              ? &op->server
                           : !strcmp(a, "--token-file")        ? &op->token_file
                           : !strcmp(a, "--cacert")            ? &op->cacert
                           : !strcmp(a, "--limit") && !want_id ? &op->limit
                                                               : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                return rctl_usage_error("%s needs a value", a);
            }
            *dst = argv[++i];
        } else if (!strcmp(a, "--unacked") && !want_id) {
            op->unacked = 1;
        } else if (a[0] != '-' && want_id && !op->id) {
            op->id = a;
        } else {
            return rctl_usage_error("unexpected argument '%s'", a);
        }
    }
    if (want_id) {
        if (!op->id) {
            return rctl_usage_error("usage: robotctl notifications ack ID");
        }
        size_t n = strlen(op->id);
        for (size_t i = 0; i < n; i++) {
            if (!isalnum((unsigned char)op->id[i]) && op->id[i] != '-') {
                return rctl_usage_error("'%s' is not a notification id (ntf-<n>)", op->id);
            }
        }
        if (n == 0 || n > 32) {
            return rctl_usage_error("'%s' is not a notification id (ntf-<n>)", op->id);
        }
    }
    if (op->limit) {
        char *end;
        long v = strtol(op->limit, &end, 10);
        if (*end || v < 1 || v > 1000) {
            return rctl_usage_error("--limit wants 1..1000");
        }
    }
    return 0;
}

struct body {
    char *p;
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    struct body *b = ud;
    size_t k = sz * n;
    if (b->len + k > RESPONSE_MAX) {
        return 0;
    }
    char *q = realloc(b->p, b->len + k + 1);
    if (!q) {
        return 0;
    }
    memcpy(q + b->len, p, k);
    b->len += k;
    q[b->len] = '\0';
    b->p = q;
    return k;
}

static int read_token(const struct opts *op, char *tok, size_t cap) {
    const char *file = op->token_file ? op->token_file : getenv("ROBOT_SRE_TOKEN_FILE");
    char buf[TOKEN_MAX + 2] = "";
    const char *t = NULL;
    if (file && *file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr, "robotctl: cannot open token file %s: %s\n", file, strerror(errno));
            return RCTL_USAGE;
        }
        buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
        fclose(f);
        t = buf;
    } else {
        t = getenv("ROBOT_SRE_TOKEN");
    }
    tok[0] = '\0';
    if (t) {
        while (isspace((unsigned char)*t)) {
            t++;
        }
        size_t l = strcspn(t, "\r\n \t");
        if (l >= cap) {
            return rctl_usage_error("the token is longer than %d bytes", TOKEN_MAX);
        }
        memcpy(tok, t, l);
        tok[l] = '\0';
    }
    return 0;
}

/* One request; *out gets the JSON answer. Prints the error and returns RCTL_FAIL otherwise. */
static int call(const struct opts *op, const char *method, const char *path, json_t **out) {
    *out = NULL;
    const char *server = op->server ? op->server : getenv("ROBOT_SRE_SERVER");
    server = server && *server ? server : "http://127.0.0.1:8080";
    if (strncmp(server, "http://", 7) && strncmp(server, "https://", 8)) {
        return rctl_usage_error("--server wants an http:// or https:// URL, got '%s'", server);
    }
    char tok[TOKEN_MAX + 1];
    int rc = read_token(op, tok, sizeof(tok));
    if (rc) {
        return rc;
    }
    char url[1024], auth[TOKEN_MAX + 32];
    size_t sl = strlen(server);
    while (sl && server[sl - 1] == '/') {
        sl--;
    }
    snprintf(url, sizeof(url), "%.*s%s", (int)sl, server, path);
    CURL *c = curl_easy_init();
    if (!c) {
        return RCTL_FAIL;
    }
    struct curl_slist *h = NULL;
    if (tok[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
        h = curl_slist_append(h, auth);
    }
    struct body b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    const char *ca = op->cacert ? op->cacert : getenv("ROBOT_SRE_CACERT");
    if (ca) {
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    }
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    rc = RCTL_FAIL;
    if (cc != CURLE_OK) {
        fprintf(stderr, "robotctl: request to %s failed: %s\n", url, curl_easy_strerror(cc));
    } else {
        json_error_t je;
        json_t *doc = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
        if (status >= 400 || !doc) {
            const char *msg = json_string_value(json_object_get(doc, "error"));
            fprintf(stderr, "robotctl: %ld: %s\n", status, msg ? msg : "the answer is not JSON");
            json_decref(doc);
        } else {
            *out = doc;
            rc = RCTL_OK;
        }
    }
    free(b.p);
    return rc;
}

int rctl_notifications_list(int argc, char **argv, const struct rctl_opts *o) {
    struct opts op;
    int rc = parse(argc, argv, &op, 0);
    if (rc) {
        return rc;
    }
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/notifications?limit=%s%s", op.limit ? op.limit : "100",
             op.unacked ? "&unacked=true" : "");
    json_t *doc;
    if ((rc = call(&op, "GET", path, &doc))) {
        return rc;
    }
    if (o->json) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
        return RCTL_OK;
    }
    static const char *const hdr[] = {"ID",      "TIME",  "KIND",    "SEVERITY",
                                      "SUBJECT", "TITLE", "ACKED BY"};
    struct rctl_table *t = rctl_table_new(7, hdr);
    size_t i;
    json_t *it;
    json_t *list = json_object_get(doc, "notifications");
    json_array_foreach(list, i, it) {
        char tb[32], title[80];
        long long ms = (long long)json_integer_value(json_object_get(it, "ts"));
        time_t tt = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(tb, sizeof(tb), "%Y-%m-%dT%H:%M:%SZ", &tm);
        const char *ti = json_string_value(json_object_get(it, "title"));
        snprintf(title, sizeof(title), "%.76s", ti ? ti : "");
        const char *ack = json_string_value(json_object_get(it, "acked_by"));
#define S(k)                                                                                       \
    (json_string_value(json_object_get(it, k)) ? json_string_value(json_object_get(it, k)) : "")
        const char *row[] = {S("id"),      tb,    S("kind"),      S("severity"),
                             S("subject"), title, ack ? ack : "-"};
#undef S
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    printf("\n%zu notification(s)\n", json_array_size(list));
    json_decref(doc);
    return RCTL_OK;
}

int rctl_notifications_ack(int argc, char **argv, const struct rctl_opts *o) {
    struct opts op;
    int rc = parse(argc, argv, &op, 1);
    if (rc) {
        return rc;
    }
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/notifications/%s/ack", op.id);
    json_t *doc;
    if ((rc = call(&op, "POST", path, &doc))) {
        return rc;
    }
    if (o->json) {
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        printf("%s acknowledged by %s\n", op.id,
               json_string_value(json_object_get(doc, "acked_by")));
    }
    json_decref(doc);
    return RCTL_OK;
}
