/*
 * robotctl commands over the aggregator's admin API (docs/api.md): incidents, approvals, audit
 * and rules. One blocking libcurl request per command; tables for people, the server's JSON
 * with --json.
 *
 * Every command takes
 *   --server URL       (env ROBOT_SRE_SERVER, default http://127.0.0.1:8080)
 *   --token-file F     a file holding the bearer token (env ROBOT_SRE_TOKEN_FILE); without it
 *                      the token itself may come from env ROBOT_SRE_TOKEN
 *   --cacert F         CA bundle for an https server with a private CA (env ROBOT_SRE_CACERT)
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

#define DEFAULT_SERVER "http://127.0.0.1:8080"
#define RESPONSE_MAX (16u << 20)
#define TOKEN_MAX 512
#define ID_MAX 128

struct client {
    char server[512];
    char token[TOKEN_MAX + 1];
    const char *cacert;
};

/* Flags every API command accepts, plus the command's own. */
struct flag {
    const char *name;
    const char *value; /* filled by parse_args */
};

/*
 * Parses `argc/argv` into `flags` (each "--name value") and up to `maxpos` positional
 * arguments. Returns 0 or RCTL_USAGE with the message printed.
 */
static int parse_args(int argc, char **argv, struct flag *flags, const char **pos, int maxpos,
                      int *npos) {
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "--", 2)) {
            struct flag *f = NULL;
            for (struct flag *x = flags; x->name; x++) {
                if (!strcmp(x->name, argv[i])) {
                    f = x;
                }
            }
            if (!f) {
                return rctl_usage_error("unknown option '%s'", argv[i]);
            }
            if (i + 1 >= argc) {
                return rctl_usage_error("%s needs a value", argv[i]);
            }
            f->value = argv[++i];
        } else {
            if (*npos >= maxpos) {
                return rctl_usage_error("unexpected argument '%s'", argv[i]);
            }
            pos[(*npos)++] = argv[i];
        }
    }
    return 0;
}

static const char *flag(const struct flag *flags, const char *name) {
    for (const struct flag *x = flags; x->name; x++) {
        if (!strcmp(x->name, name)) {
            return x->value;
        }
    }
    return NULL;
}

/* Ids and query values: the API's alphabet, checked here for a clear message. */
static int check_id(const char *what, const char *s) {
    size_t n = strlen(s);
    int ok = n > 0 && n <= ID_MAX && strcmp(s, ".") && strcmp(s, "..");
    for (const char *p = s; ok && *p; p++) {
        ok = isalnum((unsigned char)*p) || strchr("._:-", *p);
    }
    if (!ok) {
        return rctl_usage_error("%s '%s' is not a valid id (1..%d of [A-Za-z0-9._:-])", what, s,
                                ID_MAX);
    }
    return 0;
}

static int client_init(struct client *cl, const struct flag *flags) {
    memset(cl, 0, sizeof(*cl));
    const char *server = flag(flags, "--server");
    server = server ? server : getenv("ROBOT_SRE_SERVER");
    server = server && *server ? server : DEFAULT_SERVER;
    if (strncmp(server, "http://", 7) && strncmp(server, "https://", 8)) {
        return rctl_usage_error("--server wants an http:// or https:// URL, got '%s'", server);
    }
    if (strlen(server) >= sizeof(cl->server)) {
        return rctl_usage_error("--server URL is too long");
    }
    snprintf(cl->server, sizeof(cl->server), "%s", server);
    size_t n = strlen(cl->server);
    while (n && cl->server[n - 1] == '/') {
        cl->server[--n] = '\0';
    }
    cl->cacert = flag(flags, "--cacert") ? flag(flags, "--cacert") : getenv("ROBOT_SRE_CACERT");
    const char *file = flag(flags, "--token-file");
    file = file ? file : getenv("ROBOT_SRE_TOKEN_FILE");
    const char *tok = NULL;
    char buf[TOKEN_MAX + 2];
    if (file && *file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr, "robotctl: cannot open token file %s: %s\n", file, strerror(errno));
            return RCTL_USAGE;
        }
        size_t got = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[got] = '\0';
        tok = buf;
    } else {
        tok = getenv("ROBOT_SRE_TOKEN");
    }
    if (tok) {
        while (isspace((unsigned char)*tok)) {
            tok++;
        }
        size_t l = strcspn(tok, "\r\n");
        while (l && isspace((unsigned char)tok[l - 1])) {
            l--;
        }
        if (l > TOKEN_MAX) {
            return rctl_usage_error("the token is longer than %d bytes", TOKEN_MAX);
        }
        memcpy(cl->token, tok, l);
        cl->token[l] = '\0';
    }
    return 0;
}

struct body {
    char *p;
    size_t len;
    int too_big;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    struct body *b = ud;
    size_t k = sz * n;
    if (b->len + k > RESPONSE_MAX) {
        b->too_big = 1;
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

/*
 * Sends one request and parses the JSON answer into *out (caller-owned). On any failure prints
 * a clear message and returns RCTL_FAIL; `what` names the object for 404s ("incident inc-1").
 */
static int api_call(const struct client *cl, const char *method, const char *path, const char *body,
                    const char *ctype, const char *what, json_t **out) {
    *out = NULL;
    char url[1024], auth[TOKEN_MAX + 32], ct[64];
    snprintf(url, sizeof(url), "%s%s", cl->server, path);
    CURL *c = curl_easy_init();
    if (!c) {
        fprintf(stderr, "robotctl: cannot initialise libcurl\n");
        return RCTL_FAIL;
    }
    struct body b = {0};
    struct curl_slist *h = NULL;
    if (cl->token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cl->token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Accept: application/json");
    if (body) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cl->cacert) {
        curl_easy_setopt(c, CURLOPT_CAINFO, cl->cacert);
    }
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    int rc = RCTL_FAIL;
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
        fprintf(stderr,
                "robotctl: cannot connect to %s: %s (is the aggregator running? set --server or "
                "ROBOT_SRE_SERVER)\n",
                cl->server, curl_easy_strerror(cc));
        goto out;
    }
    if (cc != CURLE_OK) {
        fprintf(stderr, "robotctl: request to %s failed: %s%s\n", url, curl_easy_strerror(cc),
                b.too_big ? " (answer larger than 16 MiB)" : "");
        goto out;
    }
    json_error_t jerr;
    json_t *doc = b.p ? json_loadb(b.p, b.len, 0, &jerr) : NULL;
    if (status >= 400) {
        const char *msg = json_string_value(json_object_get(doc, "error"));
        const char *field = json_string_value(json_object_get(doc, "field"));
        char detail[700];
        snprintf(detail, sizeof(detail), "%s%s%s%s", msg ? msg : (b.p ? b.p : "no details"),
                 field ? " (field " : "", field ? field : "", field ? ")" : "");
        size_t dl = strlen(detail);
        while (dl && (detail[dl - 1] == '\n' || detail[dl - 1] == '\r')) {
            detail[--dl] = '\0';
        }
        switch (status) {
        case 401:
            fprintf(stderr,
                    "robotctl: 401 unauthorized: %s; check --token-file, "
                    "ROBOT_SRE_TOKEN_FILE or ROBOT_SRE_TOKEN\n",
                    detail);
            break;
        case 403:
            fprintf(stderr, "robotctl: 403 forbidden: %s\n", detail);
            break;
        case 404:
            if (what) {
                fprintf(stderr, "robotctl: 404 not found: %s\n", what);
            } else {
                fprintf(stderr, "robotctl: 404 not found: %s\n", detail);
            }
            break;
        default:
            fprintf(stderr, "robotctl: %ld: %s\n", status, detail);
        }
        json_decref(doc);
        goto out;
    }
    if (!doc) {
        fprintf(stderr, "robotctl: the server's answer is not JSON (status %ld)\n", status);
        goto out;
    }
    *out = doc;
    rc = RCTL_OK;
out:
    free(b.p);
    return rc;
}

static void print_json(json_t *doc) {
    json_dumpf(doc, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

static const char *jstr(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long jint(json_t *o, const char *key) {
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Unix ms as "2024-05-01T12:00:00Z" ("-" for 0). */
static const char *when(long long ms, char *buf, size_t cap) {
    if (ms <= 0) {
        snprintf(buf, cap, "-");
        return buf;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* Truncates long text for table cells. */
static const char *cell(const char *s, char *buf, size_t cap) {
    size_t n = strlen(s);
    if (n < cap) {
        return s;
    }
    snprintf(buf, cap, "%.*s...", (int)cap - 4, s);
    return buf;
}

/* The common start of every command: flags, client, positional arguments. */
#define COMMON_FLAGS                                                                               \
    {"--server", NULL}, {"--token-file", NULL}, {                                                  \
        "--cacert", NULL                                                                           \
    }

static int setup(int argc, char **argv, struct flag *flags, struct client *cl, const char **pos,
                 int npos_want, const char *usage) {
    int npos = 0;
    int rc = parse_args(argc, argv, flags, pos, npos_want, &npos);
    if (rc) {
        return rc;
    }
    if (npos != npos_want) {
        return rctl_usage_error("usage: %s", usage);
    }
    for (int i = 0; i < npos; i++) {
        if ((rc = check_id("id", pos[i]))) {
            return rc;
        }
    }
    return client_init(cl, flags);
}

/* Appends "&key=value" (or "?key=value") after checking the value's alphabet. */
static int add_query(char *path, size_t cap, const char *key, const char *value) {
    if (!value) {
        return 0;
    }
    char what[40];
    snprintf(what, sizeof(what), "--%s value", key);
    if (check_id(what, value)) {
        return RCTL_USAGE;
    }
    size_t n = strlen(path);
    snprintf(path + n, cap - n, "%c%s=%s", strchr(path, '?') ? '&' : '?', key, value);
    return 0;
}

/*
 * One API command, the part every command shares: its flags (COMMON_FLAGS plus its own),
 * `npos` positional ids, the query built from flags, one request, and --json printing.
 * `path` and `what` may hold "{1}" and "{2}" for the positional ids; `query` maps API query
 * keys to flags ({"state", "--state", ..., NULL}); `body` (NULL: none) builds the JSON body
 * from the flags. Returns RCTL_OK with *doc set for the caller to render and free when the
 * output is a table (or `keep_json` is set); with --json the answer is printed and *doc is
 * NULL. Any failure is printed and returned.
 */
struct api_cmd {
    const char *usage, *method, *path, *what;
    int npos;
    const char *const *query;
    int (*body)(const struct flag *flags, const char **pos, json_t **out);
    int keep_json;
};

static void expand(char *out, size_t cap, const char *fmt, const char **pos, int npos) {
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = fmt; *p && n + 1 < cap; p++) {
        if (p[0] == '{' && (p[1] == '1' || p[1] == '2') && p[2] == '}' && p[1] - '1' < npos) {
            int w = snprintf(out + n, cap - n, "%s", pos[p[1] - '1']);
            n += w > 0 ? (size_t)w : 0;
            n = n < cap ? n : cap - 1;
            p += 2;
        } else {
            out[n++] = *p;
            out[n] = '\0';
        }
    }
}

static int api_cmd_run(const struct api_cmd *cmd, int argc, char **argv, struct flag *flags,
                       const struct rctl_opts *o, json_t **doc) {
    *doc = NULL;
    struct client cl;
    const char *pos[2] = {NULL, NULL};
    int rc = setup(argc, argv, flags, &cl, pos, cmd->npos, cmd->usage);
    if (rc) {
        return rc;
    }
    char path[512], what[256];
    expand(path, sizeof(path), cmd->path, pos, cmd->npos);
    expand(what, sizeof(what), cmd->what ? cmd->what : "", pos, cmd->npos);
    for (const char *const *q = cmd->query; q && q[0]; q += 2) {
        if (add_query(path, sizeof(path), q[0], flag(flags, q[1]))) {
            return RCTL_USAGE;
        }
    }
    char *body = NULL;
    if (cmd->body) {
        json_t *req = NULL;
        if ((rc = cmd->body(flags, pos, &req))) {
            json_decref(req); /* a body builder may fail after starting the object */
            return rc;
        }
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body) {
            return rctl_usage_error("the options must be valid UTF-8");
        }
    }
    rc = api_call(&cl, cmd->method, path, body, body ? "application/json" : NULL,
                  cmd->what ? what : NULL, doc);
    free(body);
    if (rc) {
        return rc;
    }
    if (o->json) {
        print_json(*doc);
        if (!cmd->keep_json) {
            json_decref(*doc);
            *doc = NULL;
        }
    }
    return RCTL_OK;
}

/* ---- incidents ------------------------------------------------------------------------------- */

int rctl_incidents_list(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {
        COMMON_FLAGS, {"--state", NULL}, {"--type", NULL}, {"--limit", NULL}, {NULL, NULL}};
    static const char *const query[] = {"state", "--state", "type", "--type",
                                        "limit", "--limit", NULL};
    static const struct api_cmd cmd = {
        .usage = "robotctl incidents list [--state S] [--type T] [--limit N]",
        .method = "GET",
        .path = "/api/v1/incidents",
        .query = query};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    static const char *const hdr[] = {"ID",         "TYPE", "STATE",  "SEVERITY",
                                      "CONFIDENCE", "ENV",  "OPENED", "SUMMARY"};
    struct rctl_table *t = rctl_table_new(8, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "incidents"), i, it) {
        char tb[32], sb[64];
        const char *row[] = {jstr(it, "id"),
                             jstr(it, "incident_type"),
                             jstr(it, "state"),
                             jstr(it, "severity"),
                             jstr(it, "confidence"),
                             jstr(it, "environment"),
                             when(jint(it, "opened_at_ms"), tb, sizeof(tb)),
                             cell(jstr(it, "evidence_summary"), sb, sizeof(sb))};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    printf("\n%lld incident(s)%s\n", jint(doc, "count"),
           json_is_true(json_object_get(doc, "truncated")) ? " (truncated: use --limit)" : "");
    json_decref(doc);
    return RCTL_OK;
}

static void print_strs(const char *label, json_t *arr) {
    printf("%-20s", label);
    size_t i;
    json_t *it;
    if (!json_array_size(arr)) {
        printf("-");
    }
    json_array_foreach(arr, i, it) {
        printf("%s%s", i ? ", " : "", json_string_value(it) ? json_string_value(it) : "");
    }
    printf("\n");
}

int rctl_incidents_show(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {NULL, NULL}};
    static const struct api_cmd cmd = {.usage = "robotctl incidents show ID",
                                       .method = "GET",
                                       .path = "/api/v1/incidents/{1}",
                                       .what = "incident {1}",
                                       .npos = 1};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    char tb[32];
    printf("%-20s%s\n%-20s%s (%s)\n%-20s%s\n%-20s%s\n%-20s%s (%.2f)\n%-20s%s\n%-20s%s\n",
           "incident", jstr(doc, "id"), "type", jstr(doc, "incident_type"), jstr(doc, "domain"),
           "state", jstr(doc, "state"), "severity", jstr(doc, "severity"), "confidence",
           jstr(doc, "confidence"), json_real_value(json_object_get(doc, "confidence_score")),
           "environment", jstr(doc, "environment"), "approval", jstr(doc, "approval_state"));
    printf("%-20s%s\n", "opened", when(jint(doc, "opened_at_ms"), tb, sizeof(tb)));
    printf("%-20s%s\n", "updated", when(jint(doc, "updated_at_ms"), tb, sizeof(tb)));
    printf("%-20s%s\n", "resolved", when(jint(doc, "resolved_at_ms"), tb, sizeof(tb)));
    printf("%-20s%s\n", "summary", jstr(doc, "evidence_summary"));
    print_strs("signal sources", json_object_get(doc, "signal_sources"));
    printf("%-20s", "scope");
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "resource_scope"), i, it) {
        const char *ns = jstr(it, "namespace");
        printf("%s%s %s%s%s", i ? ", " : "", jstr(it, "kind"), ns, *ns ? "/" : "",
               jstr(it, "name"));
    }
    printf("%s\n", json_array_size(json_object_get(doc, "resource_scope")) ? "" : "-");
    print_strs("recommended actions", json_object_get(doc, "recommended_actions"));
    if (*jstr(doc, "rule_id")) {
        printf("%-20s%s v%lld\n", "rule", jstr(doc, "rule_id"), jint(doc, "rule_version"));
    }
    printf("\nEvidence timeline\n");
    static const char *const eh[] = {"OBSERVED", "SOURCE", "KIND", "SUMMARY"};
    struct rctl_table *t = rctl_table_new(4, eh);
    json_array_foreach(json_object_get(doc, "evidence"), i, it) {
        char sb[80];
        const char *row[] = {when(jint(it, "observed_at_ms"), tb, sizeof(tb)), jstr(it, "source"),
                             jstr(it, "kind"), cell(jstr(it, "summary"), sb, sizeof(sb))};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    printf("\nActions\n");
    static const char *const ah[] = {"ID", "ACTION", "TARGET", "DECISION", "STATE", "CREATED"};
    t = rctl_table_new(6, ah);
    json_array_foreach(json_object_get(doc, "actions"), i, it) {
        const char *row[] = {jstr(it, "id"),     jstr(it, "action_id"),
                             jstr(it, "target"), jstr(it, "decision"),
                             jstr(it, "state"),  when(jint(it, "created_at_ms"), tb, sizeof(tb))};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    json_decref(doc);
    return RCTL_OK;
}

/* ---- approvals ------------------------------------------------------------------------------- */

int rctl_approvals_list(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {"--state", NULL}, {"--incident", NULL}, {NULL, NULL}};
    static const char *const query[] = {"state", "--state", "incident", "--incident", NULL};
    static const struct api_cmd cmd = {.usage =
                                           "robotctl approvals list [--state S] [--incident ID]",
                                       .method = "GET",
                                       .path = "/api/v1/approvals",
                                       .query = query};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    static const char *const hdr[] = {"ID",       "STATE",     "ACTION", "TARGET",
                                      "INCIDENT", "REQUESTER", "VOTES",  "EXPIRES"};
    struct rctl_table *t = rctl_table_new(8, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "approvals"), i, it) {
        char votes[32], tb[32];
        size_t approve = 0, k;
        json_t *v;
        json_array_foreach(json_object_get(it, "votes"), k, v) {
            approve += !strcmp(jstr(v, "vote"), "approve");
        }
        snprintf(votes, sizeof(votes), "%zu/%lld", approve, jint(it, "quorum"));
        const char *row[] = {jstr(it, "id"),
                             jstr(it, "state"),
                             jstr(it, "action"),
                             jstr(it, "target"),
                             jstr(it, "incident_id"),
                             jstr(it, "requester"),
                             votes,
                             when(jint(it, "expires_at_ms"), tb, sizeof(tb))};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    printf("\n%lld approval(s)\n", jint(doc, "count"));
    json_decref(doc);
    return RCTL_OK;
}

/* {"comment": --comment} (or {}). */
static int comment_body(const struct flag *flags, const char **pos, json_t **out) {
    (void)pos;
    const char *comment = flag(flags, "--comment");
    *out = comment ? json_pack("{s:s}", "comment", comment) : json_object();
    return 0;
}

static int vote(int argc, char **argv, const struct rctl_opts *o, const char *verb) {
    struct flag flags[] = {COMMON_FLAGS, {"--comment", NULL}, {NULL, NULL}};
    static const struct api_cmd approve = {.usage = "robotctl approvals approve ID [--comment C]",
                                           .method = "POST",
                                           .path = "/api/v1/approvals/{1}/approve",
                                           .what = "approval {1}",
                                           .npos = 1,
                                           .body = comment_body,
                                           .keep_json = 1};
    static const struct api_cmd deny = {.usage = "robotctl approvals deny ID [--comment C]",
                                        .method = "POST",
                                        .path = "/api/v1/approvals/{1}/deny",
                                        .what = "approval {1}",
                                        .npos = 1,
                                        .body = comment_body,
                                        .keep_json = 1};
    json_t *doc;
    int rc = api_cmd_run(strcmp(verb, "deny") ? &approve : &deny, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    if (!o->json) {
        const char *msg = jstr(doc, "message");
        printf("approval %s: %s recorded for %s; the approval is now %s%s%s\n",
               jstr(doc, "approval_id"), jstr(doc, "vote"), jstr(doc, "operator"),
               jstr(doc, "state"), *msg ? " — " : "", msg);
    }
    json_decref(doc);
    return RCTL_OK;
}

int rctl_approvals_approve(int argc, char **argv, const struct rctl_opts *o) {
    return vote(argc, argv, o, "approve");
}

int rctl_approvals_deny(int argc, char **argv, const struct rctl_opts *o) {
    return vote(argc, argv, o, "deny");
}

/* ---- audit ----------------------------------------------------------------------------------- */

int rctl_audit_list(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {"--from", NULL}, {"--limit", NULL}, {NULL, NULL}};
    static const char *const query[] = {"from_seq", "--from", "limit", "--limit", NULL};
    static const struct api_cmd cmd = {.usage = "robotctl audit list [--from SEQ] [--limit N]",
                                       .method = "GET",
                                       .path = "/api/v1/audit",
                                       .query = query};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    static const char *const hdr[] = {"SEQ", "TIME", "ACTOR", "VERB", "OBJECT", "REASON"};
    struct rctl_table *t = rctl_table_new(6, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "records"), i, it) {
        char seq[24], tb[32], ob[64], rb[80];
        snprintf(seq, sizeof(seq), "%lld", jint(it, "seq"));
        const char *row[] = {seq,
                             when(jint(it, "ts_ms"), tb, sizeof(tb)),
                             jstr(it, "actor"),
                             jstr(it, "verb"),
                             cell(jstr(it, "object"), ob, sizeof(ob)),
                             cell(jstr(it, "reason"), rb, sizeof(rb))};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    json_t *next = json_object_get(doc, "next_seq");
    if (json_is_integer(next)) {
        printf("\nmore: robotctl audit list --from %lld\n", (long long)json_integer_value(next));
    }
    json_decref(doc);
    return RCTL_OK;
}

int rctl_audit_verify(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {NULL, NULL}};
    static const struct api_cmd cmd = {.usage = "robotctl audit verify",
                                       .method = "POST",
                                       .path = "/api/v1/audit/verify",
                                       .keep_json = 1};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    int ok = json_is_true(json_object_get(doc, "ok"));
    if (o->json) {
        /* printed */
    } else if (ok) {
        printf("audit log OK: %lld record(s) verified, head seq %lld hash %s\n", jint(doc, "count"),
               jint(doc, "head_seq"), jstr(doc, "head_hash"));
    } else {
        printf("audit log BROKEN at seq %lld: %s (%lld record(s) verified before it)\n",
               jint(doc, "broken_seq"), jstr(doc, "reason"), jint(doc, "count"));
    }
    json_decref(doc);
    return ok ? RCTL_OK : RCTL_FAIL;
}

/* ---- rules ----------------------------------------------------------------------------------- */

static void enabled_envs(json_t *en, char *buf, size_t cap) {
    buf[0] = '\0';
    static const char *const envs[] = {"demo", "staging", "production"};
    for (size_t i = 0; i < 3; i++) {
        if (json_is_true(json_object_get(en, envs[i]))) {
            size_t n = strlen(buf);
            snprintf(buf + n, cap - n, "%s%s", n ? "," : "", envs[i]);
        }
    }
    if (!buf[0]) {
        snprintf(buf, cap, "off");
    }
}

int rctl_rules_list(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {NULL, NULL}};
    static const struct api_cmd cmd = {
        .usage = "robotctl rules list", .method = "GET", .path = "/api/v1/rules"};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    static const char *const hdr[] = {"ID",     "KIND", "VERSION", "ENABLED IN", "INCIDENT/AUTHOR",
                                      "UPDATED"};
    struct rctl_table *t = rctl_table_new(6, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "rules"), i, it) {
        int builtin = json_is_true(json_object_get(it, "builtin"));
        char ver[16], en[40], tb[32];
        snprintf(ver, sizeof(ver), "%lld", jint(it, "version"));
        enabled_envs(json_object_get(it, "enabled"), en, sizeof(en));
        const char *row[] = {jstr(it, "id"),
                             builtin ? "built-in" : "operator",
                             builtin ? "-" : ver,
                             en,
                             builtin ? jstr(it, "incident_type") : jstr(it, "author"),
                             builtin ? "-" : when(jint(it, "created_at_ms"), tb, sizeof(tb))};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    printf("\n%lld rule(s)\n", jint(doc, "count"));
    json_decref(doc);
    return RCTL_OK;
}

int rctl_rules_show(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {NULL, NULL}};
    static const struct api_cmd cmd = {.usage = "robotctl rules show ID",
                                       .method = "GET",
                                       .path = "/api/v1/rules/{1}",
                                       .what = "rule {1}",
                                       .npos = 1};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    char en[40], tb[32];
    if (json_is_true(json_object_get(doc, "builtin"))) {
        enabled_envs(json_object_get(doc, "enabled"), en, sizeof(en));
        printf("rule %s (built-in)\n  name:       %s\n  incident:   %s (%s)\n"
               "  severity:   %s\n  enabled in: %s\n",
               jstr(doc, "id"), jstr(doc, "name"), jstr(doc, "incident_type"), jstr(doc, "domain"),
               jstr(doc, "severity"), en);
        json_decref(doc);
        return RCTL_OK;
    }
    json_t *latest = json_object_get(doc, "latest");
    enabled_envs(json_object_get(latest, "enabled"), en, sizeof(en));
    printf("rule %s (operator rule), latest version %lld by %s at %s, enabled in: %s\n\n",
           jstr(doc, "id"), jint(latest, "version"), jstr(latest, "author"),
           when(jint(latest, "created_at_ms"), tb, sizeof(tb)), en);
    static const char *const hdr[] = {"VERSION", "AUTHOR", "CREATED", "ENABLED IN", "COMMENT"};
    struct rctl_table *t = rctl_table_new(5, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "versions"), i, it) {
        char ver[16], e2[40];
        snprintf(ver, sizeof(ver), "%lld", jint(it, "version"));
        enabled_envs(json_object_get(it, "enabled"), e2, sizeof(e2));
        const char *row[] = {ver, jstr(it, "author"),
                             when(jint(it, "created_at_ms"), tb, sizeof(tb)), e2,
                             jstr(it, "comment")};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    const char *yaml = jstr(latest, "yaml");
    size_t yl = strlen(yaml);
    printf("\n--- version %lld ---\n%s%s", jint(latest, "version"), yaml,
           yl && yaml[yl - 1] == '\n' ? "" : "\n");
    json_decref(doc);
    return RCTL_OK;
}

/* ---- rule changes (admin) -------------------------------------------------------------------- */

static int need_flag(const struct flag *flags, const char *name, const char *why) {
    if (!flag(flags, name) || !*flag(flags, name)) {
        return rctl_usage_error("%s is required: %s", name, why);
    }
    return 0;
}

/* Prints the new version of a changed rule. */
static int print_change(json_t *doc) {
    char en[40];
    enabled_envs(json_object_get(doc, "enabled"), en, sizeof(en));
    printf("rule %s: version %lld stored (%s; was version %lld), enabled in: %s\n", jstr(doc, "id"),
           jint(doc, "version"), jstr(doc, "change"), jint(doc, "previous_version"), en);
    json_decref(doc);
    return RCTL_OK;
}

static int clone_body(const struct flag *flags, const char **pos, json_t **out) {
    if (need_flag(flags, "--comment", "why this clone (it is audited)")) {
        return RCTL_USAGE;
    }
    *out = json_pack("{s:s, s:s}", "new_id", pos[1], "comment", flag(flags, "--comment"));
    if (*out && flag(flags, "--owner")) {
        json_object_set_new(*out, "owner", json_string(flag(flags, "--owner")));
    }
    return 0;
}

int rctl_rules_clone(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {"--comment", NULL}, {"--owner", NULL}, {NULL, NULL}};
    static const struct api_cmd cmd = {
        .usage = "robotctl rules clone ID NEW_ID --comment WHY [--owner O]",
        .method = "POST",
        .path = "/api/v1/rules/{1}/clone",
        .what = "rule {1}",
        .npos = 2,
        .body = clone_body};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    return rc || !doc ? rc : print_change(doc);
}

static int env_body(const struct flag *flags, const char **pos, json_t **out) {
    (void)pos;
    if (need_flag(flags, "--env", "demo, staging, production or all") ||
        need_flag(flags, "--comment", "why (it is audited)")) {
        return RCTL_USAGE;
    }
    *out =
        json_pack("{s:s, s:s}", "env", flag(flags, "--env"), "comment", flag(flags, "--comment"));
    return 0;
}

static int toggle(int argc, char **argv, const struct rctl_opts *o, int enable) {
    struct flag flags[] = {COMMON_FLAGS, {"--env", NULL}, {"--comment", NULL}, {NULL, NULL}};
    static const struct api_cmd en = {.usage = "robotctl rules enable ID --env E --comment WHY",
                                      .method = "POST",
                                      .path = "/api/v1/rules/{1}/enable",
                                      .what = "rule {1}",
                                      .npos = 1,
                                      .body = env_body};
    static const struct api_cmd dis = {.usage = "robotctl rules disable ID --env E --comment WHY",
                                       .method = "POST",
                                       .path = "/api/v1/rules/{1}/disable",
                                       .what = "rule {1}",
                                       .npos = 1,
                                       .body = env_body};
    json_t *doc;
    int rc = api_cmd_run(enable ? &en : &dis, argc, argv, flags, o, &doc);
    return rc || !doc ? rc : print_change(doc);
}

int rctl_rules_enable(int argc, char **argv, const struct rctl_opts *o) {
    return toggle(argc, argv, o, 1);
}

int rctl_rules_disable(int argc, char **argv, const struct rctl_opts *o) {
    return toggle(argc, argv, o, 0);
}

/* A number flag (integer, in range) into the JSON object. */
static int set_int(json_t *obj, const char *key, const char *flagname, const char *v) {
    char *end;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v) {
        return 0;
    }
    if (!*v || *end || n < 0 || n > 1000000000LL) {
        return rctl_usage_error("%s wants a number of seconds, got '%s'", flagname, v);
    }
    json_object_set_new(obj, key, json_integer(n));
    return 0;
}

/*
 * The PATCH body (docs/api.md): a JSON merge patch of the rule. --threshold, --severity,
 * --selector, --name, --owner set strings; --cooldown seconds; --channels a,b / --route R /
 * --dedupe S change notification_policy (merged: only the given keys change); "none" removes
 * --cooldown, --route or --selector.
 */
static int edit_body(const struct flag *flags, const char **pos, json_t **out) {
    (void)pos;
    if (need_flag(flags, "--comment", "why this change (it is audited)")) {
        return RCTL_USAGE;
    }
    json_t *b = json_pack("{s:s}", "comment", flag(flags, "--comment"));
    static const struct {
        const char *flag, *key;
    } strs[] = {{"--threshold", "threshold_expression"},
                {"--severity", "severity"},
                {"--selector", "signal_selector"},
                {"--name", "name"},
                {"--owner", "owner"}};
    for (size_t i = 0; b && i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *v = flag(flags, strs[i].flag);
        if (v) {
            json_object_set_new(b, strs[i].key, strcmp(v, "none") ? json_string(v) : json_null());
        }
    }
    const char *cd = flag(flags, "--cooldown");
    json_t *np = json_object();
    int rc = 0;
    if (cd && !strcmp(cd, "none")) {
        json_object_set_new(b, "cooldown_seconds", json_null());
    } else {
        rc = set_int(b, "cooldown_seconds", "--cooldown", cd);
    }
    if (!rc) {
        rc = set_int(np, "dedupe_seconds", "--dedupe", flag(flags, "--dedupe"));
    }
    const char *route = flag(flags, "--route");
    if (route) {
        json_object_set_new(np, "route", strcmp(route, "none") ? json_string(route) : json_null());
    }
    const char *ch = flag(flags, "--channels");
    if (ch) {
        json_t *arr = json_array();
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", ch);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            json_array_append_new(arr, json_string(t));
        }
        json_object_set_new(np, "channels", arr);
    }
    if (json_object_size(np)) {
        json_object_set(b, "notification_policy", np);
    }
    json_decref(np);
    if (rc || json_object_size(b) < 2) {
        json_decref(b);
        return rc ? rc
                  : rctl_usage_error("nothing to change: give --threshold, --severity, "
                                     "--cooldown, --channels, --route, --dedupe, --selector, "
                                     "--name or --owner");
    }
    *out = b;
    return 0;
}

int rctl_rules_edit(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS,         {"--comment", NULL},  {"--threshold", NULL},
                           {"--severity", NULL}, {"--cooldown", NULL}, {"--channels", NULL},
                           {"--route", NULL},    {"--dedupe", NULL},   {"--selector", NULL},
                           {"--name", NULL},     {"--owner", NULL},    {NULL, NULL}};
    static const struct api_cmd cmd = {
        .usage = "robotctl rules edit ID --comment WHY [--threshold EXPR] [--severity S] "
                 "[--cooldown SECONDS|none] [--channels a,b] [--route R|none] [--dedupe SECONDS]",
        .method = "PATCH",
        .path = "/api/v1/rules/{1}",
        .what = "rule {1}",
        .npos = 1,
        .body = edit_body};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    return rc || !doc ? rc : print_change(doc);
}

static int preview_body(const struct flag *flags, const char **pos, json_t **out) {
    (void)pos;
    if (need_flag(flags, "--action", "the action to decide (robotctl taxonomy show)") ||
        need_flag(flags, "--env", "demo, staging or production")) {
        return RCTL_USAGE;
    }
    *out = json_pack("{s:s, s:s}", "action", flag(flags, "--action"), "env", flag(flags, "--env"));
    static const struct {
        const char *flag, *key;
    } opt[] = {{"--incident", "incident"}, {"--confidence", "confidence"}, {"--target", "target"}};
    for (size_t i = 0; *out && i < sizeof(opt) / sizeof(opt[0]); i++) {
        if (flag(flags, opt[i].flag)) {
            json_object_set_new(*out, opt[i].key, json_string(flag(flags, opt[i].flag)));
        }
    }
    return 0;
}

int rctl_rules_preview(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS,         {"--action", NULL}, {"--env", NULL},
                           {"--incident", NULL}, {"--target", NULL}, {"--confidence", NULL},
                           {NULL, NULL}};
    static const struct api_cmd cmd = {
        .usage = "robotctl rules preview ID --action A --env E [--incident T] [--confidence C] "
                 "[--target X]",
        .method = "POST",
        .path = "/api/v1/rules/{1}/preview",
        .what = "rule {1}",
        .npos = 1,
        .body = preview_body};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    printf("%s for %s on %s (%s) in %s at %s confidence%s%s: %s", jstr(doc, "rule"),
           jstr(doc, "action"), jstr(doc, "incident"), jstr(doc, "action_class"),
           jstr(doc, "environment"), jstr(doc, "confidence"),
           *jstr(doc, "target") ? ", target " : "", jstr(doc, "target"), jstr(doc, "decision"));
    if (jint(doc, "quorum") > 0) {
        printf(" (quorum %lld)", jint(doc, "quorum"));
    }
    printf("%s\n", json_is_true(json_object_get(doc, "rule_applies"))
                       ? ""
                       : "\n(the rule does not apply to this incident/environment: shown for the "
                         "rule set as it is)");
    static const char *const hdr[] = {"LAYER", "REASON"};
    struct rctl_table *t = rctl_table_new(2, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "reasons"), i, it) {
        const char *row[] = {jstr(it, "layer"), jstr(it, "reason")};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    json_decref(doc);
    return RCTL_OK;
}

static int test_body(const struct flag *flags, const char **pos, json_t **out) {
    (void)pos;
    *out = json_object();
    const char *l = flag(flags, "--limit");
    if (l) {
        char *end;
        long n = strtol(l, &end, 10);
        if (!*l || *end || n < 1 || n > 200) {
            return rctl_usage_error("--limit wants 1..200 incidents, got '%s'", l);
        }
        json_object_set_new(*out, "limit", json_integer(n));
    }
    return 0;
}

int rctl_rules_test(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {"--limit", NULL}, {NULL, NULL}};
    static const struct api_cmd cmd = {.usage = "robotctl rules test ID [--limit N]",
                                       .method = "POST",
                                       .path = "/api/v1/rules/{1}/test",
                                       .what = "rule {1}",
                                       .npos = 1,
                                       .body = test_body};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    printf("rule %s: %s\n  on the last %lld %s incident(s): %lld would match (%lld evidence "
           "record(s) evaluated%s)\n\n",
           jstr(doc, "rule"), jstr(doc, "threshold_expression"), jint(doc, "incidents_tested"),
           jstr(doc, "incident_type"), jint(doc, "incidents_matched"),
           jint(doc, "evidence_evaluated"),
           json_is_true(json_object_get(doc, "evidence_budget_exhausted"))
               ? "; budget reached, older ones not read"
               : "");
    static const char *const hdr[] = {"INCIDENT", "SCOPE", "EVALUATED", "MATCHED", "FIRST MATCH"};
    struct rctl_table *t = rctl_table_new(5, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "incidents"), i, it) {
        char ev[24], m[24], tb[32];
        snprintf(ev, sizeof(ev), "%lld", jint(it, "evaluated"));
        snprintf(m, sizeof(m), "%lld", jint(it, "matched"));
        const char *row[] = {jstr(it, "incident_id"), jstr(it, "scope"), ev, m,
                             when(jint(it, "first_match_at_ms"), tb, sizeof(tb))};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    /* Each severity escalation: in how many of those incidents it would have held. */
    json_array_foreach(json_object_get(doc, "escalations"), i, it) {
        printf("%sescalation to %s when %s: would hold in %lld incident(s)\n", i ? "" : "\n",
               jstr(it, "severity"), jstr(it, "when"), jint(it, "incidents_matched"));
    }
    json_decref(doc);
    return RCTL_OK;
}

/* ---- agents ---------------------------------------------------------------------------------- */

int rctl_agents_list(int argc, char **argv, const struct rctl_opts *o) {
    struct flag flags[] = {COMMON_FLAGS, {NULL, NULL}};
    static const struct api_cmd cmd = {
        .usage = "robotctl agents list", .method = "GET", .path = "/api/v1/agents"};
    json_t *doc;
    int rc = api_cmd_run(&cmd, argc, argv, flags, o, &doc);
    if (rc || !doc) {
        return rc;
    }
    static const char *const hdr[] = {"NODE", "CONNECTED", "LAST SEEN", "BOOT ID",
                                      "SEQ",  "BATCHES",   "LOST",      "VERSION"};
    struct rctl_table *t = rctl_table_new(8, hdr);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(doc, "agents"), i, it) {
        char tb[32], seq[24], b[24], lost[24];
        snprintf(seq, sizeof(seq), "%lld", jint(it, "seq"));
        snprintf(b, sizeof(b), "%lld", jint(it, "batches"));
        snprintf(lost, sizeof(lost), "%lld", jint(it, "lost_batches"));
        const char *row[] = {jstr(it, "node"),
                             json_is_true(json_object_get(it, "connected")) ? "yes" : "no",
                             when(jint(it, "last_seen_ms"), tb, sizeof(tb)),
                             *jstr(it, "boot_id") ? jstr(it, "boot_id") : "-",
                             seq,
                             b,
                             lost,
                             *jstr(it, "agent_version") ? jstr(it, "agent_version") : "-"};
        rctl_table_row(t, row);
    }
    rctl_table_print(t, stdout);
    printf("\n%zu agent(s)\n", json_array_size(json_object_get(doc, "agents")));
    json_decref(doc);
    return RCTL_OK;
}
