/*
 * Tests of OCI API-key request signing (aggregator/exec/oci_sign.h).
 *
 *   - OCI's published example (tests/data/oci, see its README for the source): the GET and
 *     POST signing strings, signatures and Authorization headers are reproduced byte for byte;
 *   - which headers are signed per method (GET/DELETE/HEAD: three; POST/PUT/PATCH: six, also
 *     for an empty body), the body hash, the header lines handed to the HTTP layer;
 *   - signatures made with keys generated here verify with the public key (OpenSSL EVP);
 *   - the fingerprint is computed from the key and a configured one that differs is refused
 *     (including the published keyId's, which is not the sample key's);
 *   - PEM handling: PKCS#1, PKCS#8, encrypted (both kinds) with and without the right
 *     passphrase, public keys, EC keys, garbage, truncation, oversized and missing files, each
 *     with a clear error; nothing secret reaches the log;
 *   - hostile request parts (CR/LF, spaces, unknown methods, quotes in the keyId) are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/error.h"
#include "common/log.h"
#include "exec/oci_sign.h"

extern char **environ;

#define TENANCY "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq"
#define USER "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq"
#define EMPTY_SHA "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

/* ---- helpers ------------------------------------------------------------------------------ */

static char tmpdir[64];

static char *slurp_path(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len) {
        *len = (size_t)n;
    }
    return buf;
}

static char *data_file(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/oci/%s", RSRE_TEST_DATA, name);
    return slurp_path(path, len);
}

static const char *tmp(const char *name) {
    static char bufs[4][512];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Runs a program (argv[0] looked up in PATH) with stdout/stderr discarded; returns its exit
 * status. Arguments are fixed strings from this file, never input. */
static int run(const char *const argv[]) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Key files made once for the whole run. */
static int group_setup(void **state) {
    (void)state;
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "error");
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rsre-ocisign-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    const char *genrsa[] = {"openssl", "genrsa", "-out", tmp("rsa2048.pem"), "2048", NULL};
    assert_int_equal(run(genrsa), 0);
    const char *pub[] = {"openssl",          "rsa", "-in", tmp("rsa2048.pem"), "-pubout", "-out",
                         tmp("rsa2048.pub"), NULL};
    assert_int_equal(run(pub), 0);
    /* genrsa in OpenSSL 3 writes PKCS#8 ("PRIVATE KEY"); -traditional gives PKCS#1. */
    const char *pkcs1[] = {"openssl",
                           "rsa",
                           "-in",
                           tmp("rsa2048.pem"),
                           "-traditional",
                           "-out",
                           tmp("rsa2048.pkcs1.pem"),
                           NULL};
    assert_int_equal(run(pkcs1), 0);
    const char *enc8[] = {"openssl",
                          "pkcs8",
                          "-topk8",
                          "-in",
                          tmp("rsa2048.pem"),
                          "-v2",
                          "aes-256-cbc",
                          "-passout",
                          "pass:correct horse battery",
                          "-out",
                          tmp("rsa2048.enc8.pem"),
                          NULL};
    assert_int_equal(run(enc8), 0);
    const char *enc1[] = {"openssl",
                          "rsa",
                          "-in",
                          tmp("rsa2048.pem"),
                          "-traditional",
                          "-aes128",
                          "-passout",
                          "pass:s3cret-pass",
                          "-out",
                          tmp("rsa2048.enc1.pem"),
                          NULL};
    assert_int_equal(run(enc1), 0);
    const char *ec[] = {"openssl", "genpkey",     "-algorithm",
                        "EC",      "-pkeyopt",    "ec_paramgen_curve:P-256",
                        "-out",    tmp("ec.pem"), NULL};
    assert_int_equal(run(ec), 0);
    const char *small[] = {"openssl", "genrsa", "-out", tmp("rsa512.pem"), "512", NULL};
    assert_int_equal(run(small), 0);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static struct rsre_oci_key *load_ok(const char *path, const char *pass) {
    struct rsre_oci_key *k = NULL;
    char err[256] = "";
    int rc = rsre_oci_key_load_file(path, pass, &k, err, sizeof(err));
    if (rc != 0) {
        fail_msg("load %s: %d %s", path, rc, err);
    }
    return k;
}

static const char *jstr(json_t *o, const char *path1, const char *path2) {
    json_t *v = json_object_get(o, path1);
    if (path2) {
        v = json_object_get(v, path2);
    }
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* Verifies `sig_b64` over `msg` with the public key in `pub_path` (OpenSSL EVP, independent
 * of the code under test). */
static int verify(const char *pub_path, const char *msg, const char *sig_b64) {
    FILE *f = fopen(pub_path, "r");
    assert_non_null(f);
    EVP_PKEY *pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(pk);
    unsigned char sig[1024];
    int n = EVP_DecodeBlock(sig, (const unsigned char *)sig_b64, (int)strlen(sig_b64));
    assert_true(n > 0);
    size_t len = strlen(sig_b64);
    int pad = (len >= 1 && sig_b64[len - 1] == '=') + (len >= 2 && sig_b64[len - 2] == '=');
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok =
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
        EVP_DigestVerify(md, sig, (size_t)(n - pad), (const unsigned char *)msg, strlen(msg)) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    return ok;
}

/* ---- OCI's published example -------------------------------------------------------------- */

static json_t *example(void) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/oci/published_example.json", RSRE_TEST_DATA);
    json_error_t je;
    json_t *ex = json_load_file(path, 0, &je);
    assert_non_null(ex);
    return ex;
}

static struct rsre_oci_key *example_key(void) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/oci/published_private_key.pem", RSRE_TEST_DATA);
    return load_ok(path, NULL);
}

static void test_published_get(void **state) {
    (void)state;
    json_t *ex = example();
    struct rsre_oci_key *key = example_key();
    assert_int_equal(rsre_oci_key_bits(key), 1024);
    struct rsre_oci_sign_input in = {
        .method = jstr(ex, "get", "method"),
        .target = jstr(ex, "get", "target"),
        .host = jstr(ex, "host", NULL),
        .date = jstr(ex, "date", NULL),
    };
    char ss[8192];
    int n = rsre_oci_signing_string(&in, ss, sizeof(ss));
    assert_true(n > 0);
    assert_string_equal(ss, jstr(ex, "get", "signing_string"));
    assert_int_equal((size_t)n, strlen(ss));

    static struct rsre_oci_signed out;
    assert_int_equal(rsre_oci_sign(key, jstr(ex, "key_id", NULL), &in, &out), 0);
    assert_string_equal(out.signature, jstr(ex, "get", "signature"));
    assert_string_equal(out.authorization, jstr(ex, "get", "authorization"));
    assert_string_equal(out.date, jstr(ex, "date", NULL));
    assert_string_equal(out.x_content_sha256, "");
    assert_string_equal(out.content_length, "");
    assert_int_equal(out.nlines, 3);
    assert_string_equal(out.lines[0], "date: Thu, 05 Jan 2014 21:31:40 GMT");
    assert_string_equal(out.lines[1], "host: iaas.us-phoenix-1.oraclecloud.com");
    assert_int_equal(strncmp(out.lines[2], "authorization: Signature version=\"1\",", 37), 0);
    assert_string_equal(out.lines[2] + strlen("authorization: "), out.authorization);

    char pub[1024];
    snprintf(pub, sizeof(pub), "%s/oci/published_public_key.pem", RSRE_TEST_DATA);
    assert_true(verify(pub, ss, out.signature));
    rsre_oci_key_free(key);
    json_decref(ex);
}

static void test_published_post(void **state) {
    (void)state;
    json_t *ex = example();
    struct rsre_oci_key *key = example_key();
    size_t blen = 0;
    char *body = data_file(jstr(ex, "post", "body_file"), &blen);
    assert_int_equal(blen, 316);
    struct rsre_oci_sign_input in = {
        .method = jstr(ex, "post", "method"),
        .target = jstr(ex, "post", "target"),
        .host = jstr(ex, "host", NULL),
        .date = jstr(ex, "date", NULL),
        .body = body,
        .body_len = blen,
        .content_type = jstr(ex, "post", "content_type"),
    };
    char ss[8192];
    assert_true(rsre_oci_signing_string(&in, ss, sizeof(ss)) > 0);
    assert_string_equal(ss, jstr(ex, "post", "signing_string"));

    static struct rsre_oci_signed out;
    assert_int_equal(rsre_oci_sign(key, jstr(ex, "key_id", NULL), &in, &out), 0);
    assert_string_equal(out.x_content_sha256, jstr(ex, "post", "x_content_sha256"));
    assert_string_equal(out.content_length, jstr(ex, "post", "content_length"));
    assert_string_equal(out.content_type, "application/json");
    assert_string_equal(out.signature, jstr(ex, "post", "signature"));
    assert_string_equal(out.authorization, jstr(ex, "post", "authorization"));
    assert_int_equal(out.nlines, 6);
    assert_string_equal(out.lines[2], "content-length: 316");
    assert_string_equal(out.lines[3], "content-type: application/json");
    assert_string_equal(out.lines[4],
                        "x-content-sha256: V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0=");

    /* content_type NULL means application/json: the same signature. */
    in.content_type = NULL;
    static struct rsre_oci_signed out2;
    assert_int_equal(rsre_oci_sign(key, jstr(ex, "key_id", NULL), &in, &out2), 0);
    assert_string_equal(out2.signature, out.signature);

    /* One byte of the body changed: another hash, another signature. */
    body[10] ^= 1;
    assert_int_equal(rsre_oci_sign(key, jstr(ex, "key_id", NULL), &in, &out2), 0);
    assert_string_not_equal(out2.x_content_sha256, out.x_content_sha256);
    assert_string_not_equal(out2.signature, out.signature);
    free(body);
    rsre_oci_key_free(key);
    json_decref(ex);
}

static void test_published_key_fingerprint(void **state) {
    (void)state;
    json_t *ex = example();
    struct rsre_oci_key *key = example_key();
    /* The sample key's own fingerprint, and the one in the published keyId differ. */
    assert_string_equal(rsre_oci_key_fingerprint(key), jstr(ex, "key_fingerprint_actual", NULL));
    assert_int_equal(
        rsre_oci_key_check_fingerprint(key, "73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7"), 0);
    assert_int_equal(
        rsre_oci_key_check_fingerprint(key, "73:61:A2:21:67:E0:DF:BE:7E:4B:93:1E:15:98:A5:B7"), 0);
    assert_int_equal(
        rsre_oci_key_check_fingerprint(key, "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34"),
        RSRE_EINVALID);
    assert_int_equal(
        rsre_oci_key_check_fingerprint(key, "73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5"),
        RSRE_EINVALID);
    assert_int_equal(
        rsre_oci_key_check_fingerprint(key, "73-61-a2-21-67-e0-df-be-7e-4b-93-1e-15-98-a5-b7"),
        RSRE_EINVALID);
    assert_int_equal(
        rsre_oci_key_check_fingerprint(key, "7g:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7"),
        RSRE_EINVALID);
    assert_int_equal(rsre_oci_key_check_fingerprint(key, ""), RSRE_EINVALID);
    assert_int_equal(rsre_oci_key_check_fingerprint(key, NULL), RSRE_EINVALID);
    rsre_oci_key_free(key);
    json_decref(ex);
}

/* ---- credentials -------------------------------------------------------------------------- */

static void test_signer_fingerprint_refused(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/oci/published_private_key.pem", RSRE_TEST_DATA);
    struct rsre_oci_credentials c = {
        .tenancy = TENANCY,
        .user = USER,
        .fingerprint = "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34", /* as published */
        .key_file = path,
    };
    struct rsre_oci_signer *s = NULL;
    char err[512] = "";
    assert_int_equal(rsre_oci_signer_create(&c, &s, err, sizeof(err)), RSRE_EINVALID);
    assert_null(s);
    assert_non_null(strstr(err, "fingerprint"));
    assert_non_null(strstr(err, "73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7"));

    c.fingerprint = "73:61:A2:21:67:E0:DF:BE:7E:4B:93:1E:15:98:A5:B7";
    assert_int_equal(rsre_oci_signer_create(&c, &s, err, sizeof(err)), 0);
    assert_string_equal(rsre_oci_signer_key_id(s),
                        TENANCY "/" USER "/73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7");
    static struct rsre_oci_signed out;
    struct rsre_oci_sign_input in = {.method = "GET",
                                     .target = "/20160918/instances/x",
                                     .host = "iaas.us-phoenix-1.oraclecloud.com"};
    assert_int_equal(rsre_oci_signer_sign(s, &in, &out), 0);
    assert_non_null(strstr(out.authorization, rsre_oci_signer_key_id(s)));
    rsre_oci_signer_destroy(s);

    /* Malformed identities are refused before the key is read. */
    c.tenancy = "ocid1.user.oc1..aaaa";
    assert_int_equal(rsre_oci_signer_create(&c, &s, err, sizeof(err)), RSRE_EINVALID);
    assert_non_null(strstr(err, "tenancy"));
    c.tenancy = TENANCY;
    c.user = "ocid1.user.oc1..aaa\"a";
    assert_int_equal(rsre_oci_signer_create(&c, &s, err, sizeof(err)), RSRE_EINVALID);
    assert_non_null(strstr(err, "user"));
    c.user = USER;
    c.key_file = tmp("does-not-exist.pem");
    assert_int_equal(rsre_oci_signer_create(&c, &s, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "does-not-exist.pem"));
    rsre_oci_signer_destroy(NULL);
}

/* ---- headers per method, body hash -------------------------------------------------------- */

static void test_headers_per_method(void **state) {
    (void)state;
    struct rsre_oci_key *key = load_ok(tmp("rsa2048.pem"), NULL);
    static const struct {
        const char *method;
        int body;
    } rows[] = {{"GET", 0},  {"DELETE", 0}, {"HEAD", 0}, {"OPTIONS", 0},
                {"POST", 1}, {"PUT", 1},    {"PATCH", 1}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        static struct rsre_oci_signed out;
        struct rsre_oci_sign_input in = {
            .method = rows[i].method,
            .target = "/20160918/instances/ocid1.instance.oc1.iad.abc?action=SOFTRESET",
            .host = "127.0.0.1:8443",
            .date = "Mon, 02 Jun 2025 10:00:00 GMT",
        };
        assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), 0);
        if (rows[i].body) {
            assert_int_equal(out.nlines, 6);
            assert_non_null(strstr(out.authorization,
                                   "headers=\"date (request-target) host content-length "
                                   "content-type x-content-sha256\""));
            /* An empty body is still hashed and its length signed. */
            assert_string_equal(out.content_length, "0");
            assert_string_equal(out.x_content_sha256, EMPTY_SHA);
            assert_string_equal(out.lines[2], "content-length: 0");
        } else {
            assert_int_equal(out.nlines, 3);
            assert_non_null(strstr(out.authorization, "headers=\"date (request-target) host\""));
            assert_string_equal(out.x_content_sha256, "");
        }
        char ss[8192];
        assert_true(rsre_oci_signing_string(&in, ss, sizeof(ss)) > 0);
        char want[256];
        char lower[8] = "";
        for (size_t j = 0; rows[i].method[j]; j++) {
            lower[j] = (char)(rows[i].method[j] + 32);
        }
        snprintf(
            want, sizeof(want),
            "date: Mon, 02 Jun 2025 10:00:00 GMT\n(request-target): %s "
            "/20160918/instances/ocid1.instance.oc1.iad.abc?action=SOFTRESET\nhost: 127.0.0.1:8443",
            lower);
        assert_int_equal(strncmp(ss, want, strlen(want)), 0);
        assert_int_equal(ss[strlen(want)] == '\0', !rows[i].body);
        assert_true(verify(tmp("rsa2048.pub"), ss, out.signature));
        assert_string_equal(out.lines[out.nlines - 1] + strlen("authorization: "),
                            out.authorization);
    }
    rsre_oci_key_free(key);
}

static void test_body_hash_and_date(void **state) {
    (void)state;
    char sha[RSRE_OCI_SHA256_B64_LEN];
    assert_int_equal(rsre_oci_body_sha256(NULL, 0, sha), 0);
    assert_string_equal(sha, EMPTY_SHA);
    assert_int_equal(rsre_oci_body_sha256("", 0, sha), 0);
    assert_string_equal(sha, EMPTY_SHA);
    size_t blen;
    char *body = data_file("published_post_body.json", &blen);
    assert_int_equal(rsre_oci_body_sha256(body, blen, sha), 0);
    assert_string_equal(sha, "V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0=");
    free(body);

    char d[RSRE_OCI_DATE_LEN];
    /* The published example's instant. Its "Thu, 05 Jan 2014" names the wrong weekday (5
     * January 2014 was a Sunday); a given date string is signed verbatim, a computed one is
     * right. */
    rsre_oci_http_date(1388957500LL, d);
    assert_string_equal(d, "Sun, 05 Jan 2014 21:31:40 GMT");
    rsre_oci_http_date(0, d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
    rsre_oci_http_date(951782400LL, d); /* leap day */
    assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 GMT");

    /* No date given: now, in the same format, and signed. */
    struct rsre_oci_key *key = load_ok(tmp("rsa2048.pem"), NULL);
    static struct rsre_oci_signed out;
    struct rsre_oci_sign_input in = {.method = "GET", .target = "/", .host = "h"};
    assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), 0);
    assert_int_equal(strlen(out.date), 29);
    assert_string_equal(out.date + 25, " GMT");
    assert_string_equal(out.lines[0] + 6, out.date);
    rsre_oci_key_free(key);
}

static void test_pkcs1_pkcs8_same_signature(void **state) {
    (void)state;
    struct rsre_oci_key *k8 = load_ok(tmp("rsa2048.pem"), NULL);
    struct rsre_oci_key *k1 = load_ok(tmp("rsa2048.pkcs1.pem"), NULL);
    struct rsre_oci_key *e8 = load_ok(tmp("rsa2048.enc8.pem"), "correct horse battery");
    struct rsre_oci_key *e1 = load_ok(tmp("rsa2048.enc1.pem"), "s3cret-pass");
    assert_int_equal(rsre_oci_key_bits(k8), 2048);
    assert_string_equal(rsre_oci_key_fingerprint(k8), rsre_oci_key_fingerprint(k1));
    assert_string_equal(rsre_oci_key_fingerprint(k8), rsre_oci_key_fingerprint(e8));
    assert_string_equal(rsre_oci_key_fingerprint(k8), rsre_oci_key_fingerprint(e1));
    /* The fingerprint is the MD5 of the DER public key, as `openssl md5 -c` prints it. */
    const char *fp = rsre_oci_key_fingerprint(k8);
    assert_int_equal(strlen(fp), 47);
    struct rsre_oci_sign_input in = {.method = "PUT",
                                     .target = "/a?b=c",
                                     .host = "h",
                                     .date = "Mon, 02 Jun 2025 10:00:00 GMT",
                                     .body = "{}",
                                     .body_len = 2};
    static struct rsre_oci_signed a, b, c, d;
    assert_int_equal(rsre_oci_sign(k8, "t/u/f", &in, &a), 0);
    assert_int_equal(rsre_oci_sign(k1, "t/u/f", &in, &b), 0);
    assert_int_equal(rsre_oci_sign(e8, "t/u/f", &in, &c), 0);
    assert_int_equal(rsre_oci_sign(e1, "t/u/f", &in, &d), 0);
    assert_string_equal(a.authorization, b.authorization);
    assert_string_equal(a.authorization, c.authorization);
    assert_string_equal(a.authorization, d.authorization);
    rsre_oci_key_free(k8);
    rsre_oci_key_free(k1);
    rsre_oci_key_free(e8);
    rsre_oci_key_free(e1);
}

/* ---- bad keys ----------------------------------------------------------------------------- */

static void expect_load(const char *path, const char *pass, int want, const char *msg_part) {
    struct rsre_oci_key *k = (struct rsre_oci_key *)1;
    char err[512] = "";
    int rc = rsre_oci_key_load_file(path, pass, &k, err, sizeof(err));
    if (rc != want) {
        fail_msg("%s: rc %d (%s), want %d; err=%s", path, rc, rsre_strerror(rc), want, err);
    }
    assert_null(k);
    if (msg_part && !strstr(err, msg_part)) {
        fail_msg("%s: error \"%s\" lacks \"%s\"", path, err, msg_part);
    }
}

static void test_bad_pem(void **state) {
    (void)state;
    write_file(tmp("garbage.pem"), "hello, this is not a key\n", 25);
    expect_load(tmp("garbage.pem"), NULL, RSRE_EPARSE, "not a PEM file");
    write_file(tmp("empty.pem"), "", 0);
    expect_load(tmp("empty.pem"), NULL, RSRE_EPARSE, "not a PEM file");
    expect_load(tmp("rsa2048.pub"), NULL, RSRE_EPARSE, "PUBLIC KEY");

    /* Truncated: the base64 body cut in half. */
    size_t len;
    char *pem = slurp_path(tmp("rsa2048.pkcs1.pem"), &len);
    char *half = malloc(len);
    assert_non_null(half);
    memcpy(half, pem, len / 2);
    strcpy(half + len / 2, "\n-----END RSA PRIVATE KEY-----\n");
    write_file(tmp("truncated.pem"), half, strlen(half));
    expect_load(tmp("truncated.pem"), NULL, RSRE_EPARSE, "cannot decode");
    /* A corrupted byte in the middle. */
    pem[len / 2] = pem[len / 2] == 'A' ? 'B' : 'A';
    write_file(tmp("corrupt.pem"), pem, len);
    struct rsre_oci_key *k = NULL;
    char err[256];
    int rc = rsre_oci_key_load_file(tmp("corrupt.pem"), NULL, &k, err, sizeof(err));
    assert_true(rc == RSRE_EPARSE || rc == 0); /* a flipped bit may still decode... */
    rsre_oci_key_free(k);
    free(half);
    free(pem);

    expect_load(tmp("ec.pem"), NULL, RSRE_EINVALID, "RSA");
    expect_load(tmp("rsa512.pem"), NULL, RSRE_EINVALID, "too short");
    expect_load(tmp("rsa2048.enc8.pem"), NULL, -EACCES, "no passphrase");
    expect_load(tmp("rsa2048.enc8.pem"), "", -EACCES, "no passphrase");
    expect_load(tmp("rsa2048.enc8.pem"), "wrong", -EACCES, "wrong passphrase");
    expect_load(tmp("rsa2048.enc1.pem"), NULL, -EACCES, "no passphrase");
    expect_load(tmp("rsa2048.enc1.pem"), "wrong", -EACCES, "wrong passphrase");
    expect_load(tmp("missing.pem"), NULL, -ENOENT, "missing.pem");
    expect_load(tmpdir, NULL, -EINVAL, "not a regular file");

    char *big = malloc(RSRE_OCI_MAX_KEY_FILE + 10);
    assert_non_null(big);
    memset(big, 'A', RSRE_OCI_MAX_KEY_FILE + 10);
    write_file(tmp("big.pem"), big, RSRE_OCI_MAX_KEY_FILE + 10);
    expect_load(tmp("big.pem"), NULL, RSRE_ELIMIT, "larger than");
    assert_int_equal(
        rsre_oci_key_load_pem(big, RSRE_OCI_MAX_KEY_FILE + 10, NULL, &k, err, sizeof(err)),
        RSRE_ELIMIT);
    free(big);
    /* A passphrase given for an unencrypted key is ignored. */
    rsre_oci_key_free(load_ok(tmp("rsa2048.pem"), "unused"));
}

/* Errors and logs never carry the passphrase or key bytes. */
static void test_no_secrets_in_logs(void **state) {
    (void)state;
    fflush(stderr);
    int saved = dup(2);
    int fd = open(tmp("stderr.log"), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, 2);
    close(fd);
    int old = rsre_log_threshold;
    rsre_log_threshold = RSRE_LOG_DEBUG;

    char err[512] = "";
    struct rsre_oci_key *k = NULL;
    assert_int_equal(
        rsre_oci_key_load_file(tmp("rsa2048.enc1.pem"), "not-the-s3cret", &k, err, sizeof(err)),
        -EACCES);
    assert_null(strstr(err, "not-the-s3cret"));
    k = load_ok(tmp("rsa2048.enc1.pem"), "s3cret-pass");
    static struct rsre_oci_signed out;
    struct rsre_oci_sign_input in = {.method = "POST", .target = "/x", .host = "h"};
    assert_int_equal(rsre_oci_sign(k, "t/u/f", &in, &out), 0);
    rsre_oci_key_free(k);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rsre_log_threshold = old;
    size_t len;
    char *log = slurp_path(tmp("stderr.log"), &len);
    char *pem = slurp_path(tmp("rsa2048.pkcs1.pem"), NULL);
    /* The second line of the PEM body: key bytes. */
    char *line = strchr(pem, '\n') + 1;
    line = strchr(line, '\n') + 1;
    line[40] = '\0';
    assert_null(strstr(log, line));
    assert_null(strstr(log, "s3cret"));
    assert_null(strstr(log, "BEGIN"));
    free(log);
    free(pem);
}

/* ---- hostile request parts ---------------------------------------------------------------- */

static void test_bad_input(void **state) {
    (void)state;
    struct rsre_oci_key *key = load_ok(tmp("rsa2048.pem"), NULL);
    static struct rsre_oci_signed out;
    const struct rsre_oci_sign_input good = {.method = "GET",
                                             .target = "/20160918/instances",
                                             .host = "iaas.us-ashburn-1.oraclecloud.com",
                                             .date = "Mon, 02 Jun 2025 10:00:00 GMT"};
    assert_int_equal(rsre_oci_sign(key, "t/u/f", &good, &out), 0);
    struct rsre_oci_sign_input in;
    static const char *bad_methods[] = {"get", "Get", "", "CONNECT", "GET ", "TRACE", NULL};
    for (size_t i = 0; i < sizeof(bad_methods) / sizeof(bad_methods[0]); i++) {
        in = good;
        in.method = bad_methods[i];
        assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), RSRE_EINVALID);
    }
    static const char *bad_targets[] = {
        "20160918/instances", "",       "/a b", "/a\r\nX-Evil: 1", "/a\tb",
        "/caf\xc3\xa9",       "/a\x7f", NULL};
    for (size_t i = 0; i < sizeof(bad_targets) / sizeof(bad_targets[0]); i++) {
        in = good;
        in.target = bad_targets[i];
        assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), RSRE_EINVALID);
    }
    static const char *bad_hosts[] = {"", "a b", "h\r\nx: y", NULL};
    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        in = good;
        in.host = bad_hosts[i];
        assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), RSRE_EINVALID);
    }
    in = good;
    in.date = "Mon, 02 Jun 2025\r\n10:00:00 GMT";
    assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), RSRE_EINVALID);
    in = good;
    in.method = "POST";
    in.content_type = "application/json\r\nx: y";
    assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), RSRE_EINVALID);
    in = good;
    in.body_len = 3; /* length without a body */
    assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), RSRE_EINVALID);
    assert_int_equal(rsre_oci_sign(key, "t/u/\"f", &good, &out), RSRE_EINVALID);
    assert_int_equal(rsre_oci_sign(key, "t/u/f\n", &good, &out), RSRE_EINVALID);
    assert_int_equal(rsre_oci_sign(key, "", &good, &out), RSRE_EINVALID);
    assert_int_equal(rsre_oci_sign(NULL, "t/u/f", &good, &out), RSRE_EINVALID);

    /* Long targets: up to the bound works, beyond it is refused; a small buffer is a limit. */
    char *longt = malloc(RSRE_OCI_MAX_TARGET + 2);
    assert_non_null(longt);
    longt[0] = '/';
    memset(longt + 1, 'a', RSRE_OCI_MAX_TARGET);
    longt[RSRE_OCI_MAX_TARGET] = '\0';
    in = good;
    in.target = longt;
    assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), 0);
    longt[RSRE_OCI_MAX_TARGET] = 'a';
    longt[RSRE_OCI_MAX_TARGET + 1] = '\0';
    assert_int_equal(rsre_oci_sign(key, "t/u/f", &in, &out), RSRE_EINVALID);
    free(longt);
    char small[32];
    assert_int_equal(rsre_oci_signing_string(&good, small, sizeof(small)), RSRE_ELIMIT);
    in = good;
    in.date = NULL; /* the signing string needs an explicit date */
    assert_int_equal(rsre_oci_signing_string(&in, small, sizeof(small)), RSRE_EINVALID);
    rsre_oci_key_free(key);
}

static void test_ocid_shapes(void **state) {
    (void)state;
    static const struct {
        const char *ocid;
        const char *type;
        int ok;
    } rows[] = {
        {TENANCY, "tenancy", 1},
        {TENANCY, NULL, 1},
        {TENANCY, "user", 0},
        {USER, "user", 1},
        {"ocid1.instance.oc1.phx.abuw4ljrlsfiqw6vzzxb43vyypt4pkodawglp3wqxjqofakrwvou52gb6s5a",
         "instance", 1},
        {"ocid1.instance.oc1.eu-frankfurt-1.antheljt5xyz", "instance", 1},
        {"ocid1.nodepool.oc1.iad.aaaaaaaaqwerty", "nodepool", 1},
        {"ocid1.instance.oc1.iad.future.abc", "instance", 1},
        {"ocid1.instance.oc1.iad.", "instance", 0},
        {"ocid1.instance.oc1", "instance", 0},
        {"ocid1.instance.oc1.iad.a.b.c", "instance", 0},
        {"ocid2.instance.oc1.iad.abc", "instance", 0},
        {"ocid1..oc1.iad.abc", NULL, 0},
        {"ocid1.instance..iad.abc", NULL, 0},
        {"ocid1.Instance.oc1.iad.abc", NULL, 0},
        {"ocid1.instance.oc1.IAD.abc", NULL, 0},
        {"ocid1.instance.oc1.iad.ab c", NULL, 0},
        {"ocid1.instance.oc1.iad.abc/../x", NULL, 0},
        {"ocid1.instance.oc1.-iad.abc", NULL, 0},
        {"ocid1.instance.oc1.iad.abc\n", NULL, 0},
        {"", NULL, 0},
        {NULL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc = rsre_oci_ocid_check(rows[i].ocid, rows[i].type);
        if ((rc == 0) != rows[i].ok) {
            fail_msg("row %zu %s: rc %d", i, rows[i].ocid ? rows[i].ocid : "(null)", rc);
        }
    }
    char longo[300];
    snprintf(longo, sizeof(longo), "ocid1.instance.oc1.iad.");
    size_t n = strlen(longo);
    memset(longo + n, 'a', sizeof(longo) - n - 1);
    longo[sizeof(longo) - 1] = '\0';
    assert_int_equal(rsre_oci_ocid_check(longo, "instance"), RSRE_EINVALID);
    longo[RSRE_OCI_OCID_MAX] = '\0';
    assert_int_equal(rsre_oci_ocid_check(longo, "instance"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_published_get),
        cmocka_unit_test(test_published_post),
        cmocka_unit_test(test_published_key_fingerprint),
        cmocka_unit_test(test_signer_fingerprint_refused),
        cmocka_unit_test(test_headers_per_method),
        cmocka_unit_test(test_body_hash_and_date),
        cmocka_unit_test(test_pkcs1_pkcs8_same_signature),
        cmocka_unit_test(test_bad_pem),
        cmocka_unit_test(test_no_secrets_in_logs),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_ocid_shapes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
