/*
 * Blocking HTTP requests of the integration tests to their test servers (the control
 * endpoints /_test/... of the tests/support servers, and API calls): libcurl easy, a JSON
 * content type, an optional bearer token, a 10 s timeout. Tests #include this file next to
 * port_server.c; every function is static and marked unused. Each test keeps its own small
 * wrapper deciding what a failure is (status, body, decoding).
 */
#ifndef RSRE_TEST_SERVER_HTTP_C
#define RSRE_TEST_SERVER_HTTP_C

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define SERVER_HTTP_UNUSED __attribute__((unused))

struct server_http_buf {
    char *p;
    size_t n;
};

static size_t server_http_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct server_http_buf *b = ud;
    size_t n = size * nmemb;
    char *np = realloc(b->p, b->n + n + 1);
    if (!np) {
        return 0; /* curl reports CURLE_WRITE_ERROR */
    }
    memcpy(np + b->n, ptr, n);
    b->p = np;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/*
 * `method` base+path with `body` (NULL: none) and "Authorization: Bearer <token>" when token
 * is set. Returns curl's code; *status is the HTTP status (0 when none came) and *answer the
 * body (malloc'd, NUL-terminated; NULL when empty; the caller frees it).
 */
SERVER_HTTP_UNUSED static CURLcode server_http(const char *base, const char *method,
                                               const char *path, const char *body,
                                               const char *token, long *status, char **answer) {
    struct server_http_buf b = {0};
    *status = 0;
    *answer = NULL;
    CURL *e = curl_easy_init();
    if (!e) {
        return CURLE_FAILED_INIT;
    }
    char url[1024], auth[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, server_http_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    CURLcode cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    *answer = b.p;
    return cc;
}

#endif
