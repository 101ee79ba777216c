/*
 * Integration tests of the OCI executor client (aggregator/exec/oci.h) against
 * tests/support/oci_api_server.py, a stand-in for the OCI compute and container engine APIs
 * that verifies every request's signature with the configured public key. Key pairs are made
 * at test time with `openssl genrsa`; requests go through common/curl_uv.h on a libuv loop.
 *
 * What is shown:
 *   - signed GET / POST / DELETE calls are accepted; the POST signs an empty body (length 0,
 *     its SHA-256) and carries an opc-retry-token, every call an opc-request-id;
 *   - reboot round trip: RUNNING -> SOFTRESET -> STOPPING ... RUNNING, verified by polling;
 *     a guest stuck in STOPPING falls back to RESET (when allowed) or times out; a reboot of an
 *     instance that is not RUNNING is refused before anything is sent;
 *   - replace round trip: the node must be in the pool; DELETE node with
 *     isDecrementSize=false; the old instance terminates, the pool keeps its size and gains a
 *     replacement; a node of another pool is refused;
 *   - a wrong key or a tampered signature gets 401 NotAuthenticated, surfaced as -EACCES
 *     with OCI's code and not retried;
 *   - 429 then success (retried, same retry token), 5xx until the attempts run out (-EIO),
 *     Retry-After honoured (through a scripted transport, as curl_uv does not expose
 *     response headers yet), errors mapped (404, 409), oversized bodies refused;
 *   - provider IDs and node pool choice parsed strictly; configuration checked;
 *   - destroy with work in flight, abandon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
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
#include "../support/port_server.c"
#include "../support/server_http.c"
#include "exec/oci.h"

extern char **environ;

#define TENANCY "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq"
#define USER "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq"
#define INST "ocid1.instance.oc1.iad.anuwcljt3b7zqwqc3y4f5sroxbfbcu4mhscgldm3dq4mv6xkkqquqnthmxqa"
#define INST2 "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcpgyk4m3f4tfo5flzstnxvbu4bb5obj3uhxz4rcpxk6wq"
#define INST3 "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcgbgbfwuq2odbkqcqsujfe3ilaakpnpmkqn2yvylcd2ha"
#define OTHER "ocid1.instance.oc1.iad.anuwcljt3b7zqwqcx6u4kdzvj5e3jiw6qlyetwdzlqtjubc7l4jwjc4jd3aa"
#define POOL "ocid1.nodepool.oc1.iad.aaaaaaaaxa4tkmbvgjstsyzzg4ytanzrmqzdsmzqgrqtgzbtgbqtgmbsguyt"
#define POOL2 "ocid1.nodepool.oc1.iad.aaaaaaaapqrstmbvgjstsyzzg4ytanzrmqzdsmzqgrqtgzbtgbqtgmbsguyt"
#define EMPTY_SHA "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

/* ---- keys, made once ---------------------------------------------------------------------- */

static char keydir[64];
static char good_fp[RSRE_OCI_FINGERPRINT_LEN];
static char wrong_fp[RSRE_OCI_FINGERPRINT_LEN];

static const char *kpath(const char *name) {
    static char bufs[4][256];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", keydir, name);
    return b;
}

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

static void key_fp(const char *path, char out[RSRE_OCI_FINGERPRINT_LEN]) {
    struct rsre_oci_key *k = NULL;
    char err[256];
    assert_int_equal(rsre_oci_key_load_file(path, NULL, &k, err, sizeof(err)), 0);
    snprintf(out, RSRE_OCI_FINGERPRINT_LEN, "%s", rsre_oci_key_fingerprint(k));
    rsre_oci_key_free(k);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state) {
    (void)state;
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "error");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(keydir, sizeof(keydir), "/tmp/rsre-oci-XXXXXX");
    assert_non_null(mkdtemp(keydir));
    const char *g1[] = {"openssl", "genrsa", "-out", kpath("good.pem"), "2048", NULL};
    const char *p1[] = {"openssl",         "rsa", "-in", kpath("good.pem"), "-pubout", "-out",
                        (char *)kpath("good.pub"), NULL};
    const char *g2[] = {"openssl", "genrsa", "-out", kpath("wrong.pem"), "2048", NULL};
    assert_int_equal(run(g1), 0);
    assert_int_equal(run(p1), 0);
    assert_int_equal(run(g2), 0);
    key_fp(kpath("good.pem"), good_fp);
    key_fp(kpath("wrong.pem"), wrong_fp);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    nftw(keydir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}

/* ---- fixture: the server, a loop, an HTTP client, an OCI client --------------------------- */

struct fx {
    pid_t pid;
    int port;
    char base[64];
    uv_loop_t loop;
    uv_timer_t tick;
    struct rsre_http *http;
    struct rsre_oci_transport tr;
    struct rsre_oci_config cfg;
    struct rsre_oci *oci;
};

static struct fx *F;

static void tick_cb(uv_timer_t *t) {
    (void)t;
}

static int start_server(struct fx *f) {
    char *argv[] = {"/usr/bin/python3",
                    RSRE_SOURCE_DIR "/tests/support/oci_api_server.py",
                    "--port",
                    "0",
                    "--public-key",
                    (char *)kpath("good.pub"),
                    "--tenancy",
                    TENANCY,
                    "--user",
                    USER,
                    "--transition",
                    "0.15",
                    NULL};
    struct port_server_opts o = {.timeout_ms = 15000};
    if ((f->port = port_server_start(argv, &o, &f->pid)) < 0) {
        return -1;
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
    return 0;
}

static void base_config(struct rsre_oci_config *cfg, const char *url) {
    char err[256];
    rsre_oci_config_defaults(cfg);
    assert_int_equal(rsre_oci_config_set(cfg, "tenancy", TENANCY, err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "user", USER, err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "fingerprint", good_fp, err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "key_file", kpath("good.pem"), err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "region", "us-ashburn-1", err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "compute_url", url, err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "containerengine_url", url, err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "node_pool_id", POOL, err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "timeout_ms", "5000", err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "backoff_min_ms", "20", err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "backoff_max_ms", "100", err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "max_attempts", "4", err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "poll_interval_ms", "40", err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "soft_reset_timeout_ms", "3000", err, sizeof(err)),
                     0);
    assert_int_equal(rsre_oci_config_set(cfg, "reset_timeout_ms", "3000", err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_config_set(cfg, "replace_timeout_ms", "3000", err, sizeof(err)), 0);
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    F = f;
    assert_int_equal(start_server(f), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, tick_cb, 10, 10);
    assert_int_equal(rsre_http_create(&f->loop, &f->http), 0);
    rsre_oci_transport_curl(f->http, &f->tr);
    base_config(&f->cfg, f->base);
    char err[512] = "";
    int rc = rsre_oci_create(&f->loop, &f->tr, &f->cfg, &f->oci, err, sizeof(err));
    if (rc != 0) {
        fail_msg("rsre_oci_create: %d %s", rc, err);
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    rsre_oci_destroy(f->oci);
    rsre_http_destroy(f->http);
    uv_timer_stop(&f->tick);
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 1000 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    port_server_stop(&f->pid);
    free(f);
    F = NULL;
    return 0;
}

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
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    return 1;
}

/* ---- blocking control requests ------------------------------------------------------------ */

static json_t *ctl(const char *method, const char *path, const char *body) {
    long status;
    char *b;
    assert_int_equal(server_http(F->base, method, path, body, NULL, &status, &b), CURLE_OK);
    json_error_t je;
    json_t *j = b ? json_loads(b, 0, &je) : NULL;
    free(b);
    assert_non_null(j);
    return j;
}

static void ctl0(const char *method, const char *path, const char *body) {
    json_decref(ctl(method, path, body));
}

static void add_instance(const char *id, const char *state, int stuck) {
    char body[512];
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"lifecycleState\":\"%s\",\"stuck\":%s}", id,
             state, stuck ? "true" : "false");
    ctl0("POST", "/_test/instances", body);
}

static void add_pool(const char *id, const char *a, const char *b, const char *c) {
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"name\":\"workers\",\"nodes\":[\"%s\",\"%s\",\"%s\"]}", id, a, b, c);
    ctl0("POST", "/_test/nodepools", body);
}

static json_t *actions(void) {
    return ctl("GET", "/_test/actions", NULL);
}

static json_t *requests(void) {
    return ctl("GET", "/_test/requests", NULL);
}

static const char *jget(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* ---- collecting results ------------------------------------------------------------------- */

struct got {
    int done;
    int rc;
    long status;
    unsigned attempts;
    char code[64];
    char message[512];
    char request_id[64];
    char opc_request_id[160];
    char state[32];
    uint64_t at;
};

static void on_result(void *arg, const struct rsre_oci_result *r) {
    struct got *g = arg;
    g->done++;
    g->rc = r->rc;
    g->status = r->http_status;
    g->attempts = r->attempts;
    snprintf(g->code, sizeof(g->code), "%s", r->code);
    snprintf(g->message, sizeof(g->message), "%s", r->message);
    snprintf(g->request_id, sizeof(g->request_id), "%s", r->request_id);
    snprintf(g->opc_request_id, sizeof(g->opc_request_id), "%s", r->opc_request_id);
    snprintf(g->state, sizeof(g->state), "%s", r->body ? jget(r->body, "lifecycleState") : "");
    g->at = now_ms();
}

static int got_done(void *arg) {
    return ((struct got *)arg)->done > 0;
}

struct outc {
    int done;
    struct rsre_oci_outcome o;
    char step[32], message[640], action[32], state[32], request_id[64], opc_request_id[160],
        work[160], replacement[300];
};

static void on_outcome(void *arg, const struct rsre_oci_outcome *o) {
    struct outc *g = arg;
    g->done++;
    g->o = *o;
    snprintf(g->step, sizeof(g->step), "%s", o->step);
    snprintf(g->message, sizeof(g->message), "%s", o->message);
    snprintf(g->action, sizeof(g->action), "%s", o->action);
    snprintf(g->state, sizeof(g->state), "%s", o->final_state);
    snprintf(g->request_id, sizeof(g->request_id), "%s", o->request_id);
    snprintf(g->opc_request_id, sizeof(g->opc_request_id), "%s", o->opc_request_id);
    snprintf(g->work, sizeof(g->work), "%s", o->opc_work_request_id);
    snprintf(g->replacement, sizeof(g->replacement), "%s", o->replacement_node);
}

static int outc_done(void *arg) {
    return ((struct outc *)arg)->done > 0;
}

/* ---- pure parts: provider ids, node pools, configuration ---------------------------------- */

static void test_provider_id(void **state) {
    (void)state;
    struct rsre_oci_instance_ref r;
    assert_int_equal(rsre_oci_parse_provider_id("oci://" INST, &r), 0);
    assert_string_equal(r.ocid, INST);
    assert_string_equal(r.realm, "oc1");
    assert_string_equal(r.region, "iad");
    assert_int_equal(
        rsre_oci_parse_provider_id("oci://ocid1.instance.oc1.eu-frankfurt-1.antheljtabc123", &r),
        0);
    assert_string_equal(r.region, "eu-frankfurt-1");
    assert_int_equal(rsre_oci_parse_provider_id("oci://ocid1.instance.oc2.us-langley-1.x.abc", &r),
                     0);
    assert_string_equal(r.realm, "oc2");

    static const char *bad[] = {
        NULL,
        "",
        "oci://",
        "oci:///" INST,
        INST,
        "OCI://" INST,
        "aws://" INST,
        " oci://" INST,
        "oci://" INST " ",
        "oci://" INST "\n",
        "oci://" INST "?x=1",
        "oci://" INST "/",
        "oci://oci://" INST,
        "oci://ocid1.nodepool.oc1.iad.aaaa",
        "oci://ocid1.instance.oc1..aaaa",
        "oci://ocid1.instance.oc1.iad",
        "oci://ocid1.instance.oc1.iad.",
        "oci://ocid1.instance.oc1.IAD.abc",
        "oci://ocid1.instance.oc1.iad.ab_c",
        "oci://ocid1.instance.oc1.iad.a.b.c",
        "oci://ocid1.instance.oc1.iad.abc%2F",
        "oci://ocid1.instance.oc1.iad.abc/../x",
        "k8s://" INST,
        "oci:/" INST,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&r, 'x', sizeof(r));
        if (rsre_oci_parse_provider_id(bad[i], &r) != RSRE_EINVALID) {
            fail_msg("accepted bad provider id #%zu %s", i, bad[i] ? bad[i] : "(null)");
        }
        assert_string_equal(r.ocid, "");
    }
    /* Longest accepted and one past it. */
    char longp[400] = "oci://ocid1.instance.oc1.iad.";
    size_t n = strlen(longp);
    memset(longp + n, 'a', sizeof(longp) - n - 1);
    longp[6 + RSRE_OCI_OCID_MAX] = '\0';
    assert_int_equal(rsre_oci_parse_provider_id(longp, &r), 0);
    longp[6 + RSRE_OCI_OCID_MAX] = 'a';
    longp[7 + RSRE_OCI_OCID_MAX] = '\0';
    assert_int_equal(rsre_oci_parse_provider_id(longp, &r), RSRE_EINVALID);
}

static void test_pick_node_pool(void **state) {
    (void)state;
    const char *p;
    assert_int_equal(rsre_oci_pick_node_pool(POOL2, POOL, &p), 0);
    assert_string_equal(p, POOL2);
    assert_int_equal(rsre_oci_pick_node_pool("", POOL, &p), 0);
    assert_string_equal(p, POOL);
    assert_int_equal(rsre_oci_pick_node_pool(NULL, POOL, &p), 0);
    assert_string_equal(p, POOL);
    assert_int_equal(rsre_oci_pick_node_pool(NULL, NULL, &p), RSRE_ENOTFOUND);
    assert_int_equal(rsre_oci_pick_node_pool("", "", &p), RSRE_ENOTFOUND);
    /* A malformed label never falls back to the configured pool. */
    assert_int_equal(rsre_oci_pick_node_pool("pool-1", POOL, &p), RSRE_EINVALID);
    assert_null(p);
    assert_int_equal(rsre_oci_pick_node_pool(INST, NULL, &p), RSRE_EINVALID);
    assert_string_equal(RSRE_OCI_NODE_POOL_LABEL, "oci.oraclecloud.com/node-pool-id");
}

static void test_config(void **state) {
    (void)state;
    struct rsre_oci_config cfg;
    char err[256], compute[RSRE_OCI_URL_MAX], ce[RSRE_OCI_URL_MAX];
    rsre_oci_config_defaults(&cfg);
    assert_int_equal(cfg.max_attempts, 5);
    assert_string_equal(cfg.realm_domain, "oraclecloud.com");
    assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), RSRE_EINVALID);
    assert_non_null(strstr(err, "tenancy"));
    base_config(&cfg, "");
    assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), 0);
    assert_string_equal(compute, "https://iaas.us-ashburn-1.oraclecloud.com");
    assert_string_equal(ce, "https://containerengine.us-ashburn-1.oraclecloud.com");
    rsre_oci_config_set(&cfg, "region", "us-gov-ashburn-1", err, sizeof(err));
    rsre_oci_config_set(&cfg, "realm_domain", "oraclegovcloud.com", err, sizeof(err));
    assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), 0);
    assert_string_equal(compute, "https://iaas.us-gov-ashburn-1.oraclegovcloud.com");
    static const char *bad_regions[] = {"ashburn",     "US-ASHBURN-1",  "us-ashburn",
                                        "1-us-x",      "us--ashburn-1", "us-ashburn-1.evil.com",
                                        "us ashburn 1"};
    for (size_t i = 0; i < sizeof(bad_regions) / sizeof(bad_regions[0]); i++) {
        base_config(&cfg, "");
        rsre_oci_config_set(&cfg, "region", bad_regions[i], err, sizeof(err));
        assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), RSRE_EINVALID);
        assert_non_null(strstr(err, "region"));
    }
    static const char *bad_urls[] = {"ftp://x",       "http://",    "http://a/b",
                                     "https://u:p@h", "http://h?x", "iaas.example.com",
                                     "http://h h"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        base_config(&cfg, bad_urls[i]);
        assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), RSRE_EINVALID);
        assert_non_null(strstr(err, "_url"));
    }
    base_config(&cfg, "http://127.0.0.1:9/");
    assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), 0);
    assert_string_equal(compute, "http://127.0.0.1:9");
    /* Region needed only for URLs left to default. */
    rsre_oci_config_set(&cfg, "region", "", err, sizeof(err));
    assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), 0);
    rsre_oci_config_set(&cfg, "compute_url", "", err, sizeof(err));
    assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), RSRE_EINVALID);

    assert_int_equal(rsre_oci_config_set(&cfg, "nope", "1", err, sizeof(err)), RSRE_ENOTFOUND);
    assert_int_equal(rsre_oci_config_set(&cfg, "max_attempts", "0", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_oci_config_set(&cfg, "max_attempts", "21", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_oci_config_set(&cfg, "max_attempts", "-1", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_oci_config_set(&cfg, "max_attempts", "3x", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_oci_config_set(&cfg, "max_attempts", "", err, sizeof(err)),
                     RSRE_EINVALID);
    assert_int_equal(rsre_oci_config_set(&cfg, "region", "a\nb", err, sizeof(err)), RSRE_EINVALID);
    char longv[400];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    assert_int_equal(rsre_oci_config_set(&cfg, "key_file", longv, err, sizeof(err)), RSRE_EINVALID);
    base_config(&cfg, "");
    rsre_oci_config_set(&cfg, "node_pool_id", INST, err, sizeof(err));
    assert_int_equal(rsre_oci_config_check(&cfg, compute, ce, err, sizeof(err)), RSRE_EINVALID);
    for (size_t i = 0; i < rsre_oci_config_nkeys; i++) {
        assert_non_null(rsre_oci_config_keys[i].description);
        assert_true(strlen(rsre_oci_config_keys[i].description) > 5);
    }
}

/* A fingerprint that is not the key's, a missing key, an encrypted key with its passphrase
 * file: what rsre_oci_create says. */
static void test_create_checks_key(void **state) {
    struct fx *f = *state;
    struct rsre_oci_config cfg;
    struct rsre_oci *c = NULL;
    char err[512];
    base_config(&cfg, f->base);
    rsre_oci_config_set(&cfg, "fingerprint", wrong_fp, err, sizeof(err));
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &cfg, &c, err, sizeof(err)), RSRE_EINVALID);
    assert_null(c);
    assert_non_null(strstr(err, "fingerprint"));
    base_config(&cfg, f->base);
    rsre_oci_config_set(&cfg, "key_file", kpath("nope.pem"), err, sizeof(err));
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &cfg, &c, err, sizeof(err)), -ENOENT);

    const char *enc[] = {"openssl",
                         "pkcs8",
                         "-topk8",
                         "-in",
                         kpath("good.pem"),
                         "-passout",
                         "pass:hunter2 hunter2",
                         "-out",
                         kpath("enc.pem"),
                         NULL};
    assert_int_equal(run(enc), 0);
    FILE *pf = fopen(kpath("pass.txt"), "w");
    assert_non_null(pf);
    fputs("hunter2 hunter2\n", pf);
    fclose(pf);
    base_config(&cfg, f->base);
    rsre_oci_config_set(&cfg, "key_file", kpath("enc.pem"), err, sizeof(err));
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &cfg, &c, err, sizeof(err)), -EACCES);
    rsre_oci_config_set(&cfg, "passphrase_file", kpath("pass.txt"), err, sizeof(err));
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &cfg, &c, err, sizeof(err)), 0);
    /* ... and it signs requests the server accepts. */
    add_instance(INST, "RUNNING", 0);
    struct got g = {0};
    assert_int_equal(rsre_oci_get_instance(c, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, 0);
    rsre_oci_destroy(c);
}

/* ---- calls against the server ------------------------------------------------------------- */

static void test_signed_get_and_headers(void **state) {
    struct fx *f = *state;
    add_instance(INST, "RUNNING", 0);
    struct got g = {0};
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g, NULL), 0);
    assert_int_equal(g.done, 0); /* never from inside the starting call */
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.state, "RUNNING");
    assert_int_equal(strlen(g.request_id), 32);

    json_t *reqs = requests();
    assert_int_equal(json_array_size(reqs), 1);
    json_t *r = json_array_get(reqs, 0);
    assert_true(json_is_true(json_object_get(r, "verified")));
    json_t *h = json_object_get(r, "headers");
    assert_non_null(strstr(jget(h, "authorization"), "headers=\"date (request-target) host\""));
    assert_non_null(strstr(jget(h, "authorization"), good_fp));
    assert_string_equal(jget(h, "opc-request-id"), g.request_id);
    assert_string_equal(jget(h, "host"), f->base + strlen("http://"));
    assert_string_equal(jget(h, "x-content-sha256"), "");
    json_decref(reqs);

    /* Synchronous refusals: the callback never runs. */
    assert_int_equal(
        rsre_oci_get_instance(f->oci, "ocid1.instance.oc1.iad.a/b", on_result, &g, NULL),
        RSRE_EINVALID);
    assert_int_equal(rsre_oci_get_instance(f->oci, POOL, on_result, &g, NULL), RSRE_EINVALID);
    assert_int_equal(rsre_oci_instance_action(f->oci, INST, (enum rsre_oci_instance_action)7,
                                              on_result, &g, NULL),
                     RSRE_EINVALID);
    assert_int_equal(rsre_oci_delete_node(f->oci, INST, INST, on_result, &g, NULL), RSRE_EINVALID);
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, INST, RSRE_OCI_REBOOT_SOFT, on_outcome, NULL, NULL),
        RSRE_EINVALID);
    assert_int_equal(g.done, 1);
}

static void test_reboot_round_trip(void **state) {
    struct fx *f = *state;
    add_instance(INST, "RUNNING", 0);
    struct outc o = {0};
    struct rsre_oci_op *op = NULL;
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, "oci://" INST, RSRE_OCI_REBOOT_SOFT, on_outcome, &o, &op),
        0);
    assert_non_null(op);
    assert_true(run_until(outc_done, &o, 15000));
    if (o.o.rc != 0) {
        fail_msg("reboot: %s (%s)", rsre_strerror(o.o.rc), o.message);
    }
    assert_int_equal(o.done, 1);
    assert_string_equal(o.step, "done");
    assert_string_equal(o.action, "SOFTRESET");
    assert_string_equal(o.state, "RUNNING");
    assert_true(o.o.transition_seen);
    assert_false(o.o.fell_back_to_reset);
    assert_int_equal(o.o.http_status, 200);
    assert_int_equal(strlen(o.request_id), 32);

    json_t *acts = actions();
    assert_int_equal(json_array_size(acts), 1);
    json_t *a = json_array_get(acts, 0);
    assert_string_equal(jget(a, "action"), "SOFTRESET");
    assert_string_equal(jget(a, "instance"), INST);
    assert_int_equal(strlen(jget(a, "retry_token")), 32);
    /* OCI's request id folds in ours. */
    assert_int_equal(strncmp(jget(a, "opc_request_id"), o.request_id, 32), 0);
    json_decref(acts);

    /* Every request verified; the POST signed an empty body. */
    json_t *reqs = requests();
    size_t i;
    json_t *r;
    int posts = 0, gets = 0;
    json_array_foreach(reqs, i, r) {
        assert_true(json_is_true(json_object_get(r, "verified")));
        json_t *h = json_object_get(r, "headers");
        if (strcmp(jget(r, "method"), "POST") == 0) {
            posts++;
            assert_string_equal(jget(r, "path"), "/20160918/instances/" INST "?action=SOFTRESET");
            assert_string_equal(jget(h, "content-length"), "0");
            assert_string_equal(jget(h, "content-type"), "application/json");
            assert_string_equal(jget(h, "x-content-sha256"), EMPTY_SHA);
            assert_non_null(strstr(jget(h, "authorization"),
                                   "headers=\"date (request-target) host content-length "
                                   "content-type x-content-sha256\""));
        } else {
            gets++;
        }
    }
    assert_int_equal(posts, 1);
    assert_true(gets >= 3); /* precheck and polls through STOPPING..RUNNING */
    json_decref(reqs);
}

static void test_reboot_hard_and_fallback(void **state) {
    struct fx *f = *state;
    char err[128];
    /* A guest that never finishes its ACPI shutdown. */
    add_instance(INST, "RUNNING", 1);
    rsre_oci_destroy(f->oci);
    rsre_oci_config_set(&f->cfg, "soft_reset_timeout_ms", "500", err, sizeof(err));
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &f->cfg, &f->oci, err, sizeof(err)), 0);

    /* SOFT only: times out in STOPPING. */
    struct outc o = {0};
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, "oci://" INST, RSRE_OCI_REBOOT_SOFT, on_outcome, &o, NULL),
        0);
    assert_true(run_until(outc_done, &o, 15000));
    assert_int_equal(o.o.rc, -ETIMEDOUT);
    assert_string_equal(o.state, "STOPPING");
    assert_string_equal(o.step, "verify");
    assert_false(o.o.fell_back_to_reset);

    /* SOFT then HARD: the stuck instance gets a RESET and comes back. */
    add_instance(INST, "RUNNING", 1);
    ctl0("DELETE", "/_test/requests", NULL);
    memset(&o, 0, sizeof(o));
    assert_int_equal(rsre_oci_reboot_worker(f->oci, "oci://" INST, RSRE_OCI_REBOOT_SOFT_THEN_HARD,
                                            on_outcome, &o, NULL),
                     0);
    assert_true(run_until(outc_done, &o, 15000));
    if (o.o.rc != 0) {
        fail_msg("fallback: %s (%s)", rsre_strerror(o.o.rc), o.message);
    }
    assert_true(o.o.fell_back_to_reset);
    assert_string_equal(o.action, "RESET");
    assert_string_equal(o.state, "RUNNING");
    json_t *acts = actions();
    assert_int_equal(json_array_size(acts), 2);
    assert_string_equal(jget(json_array_get(acts, 0), "action"), "SOFTRESET");
    assert_string_equal(jget(json_array_get(acts, 1), "action"), "RESET");
    /* Two actions, two retry tokens. */
    assert_string_not_equal(jget(json_array_get(acts, 0), "retry_token"),
                            jget(json_array_get(acts, 1), "retry_token"));
    json_decref(acts);

    /* HARD: RESET straight away. */
    add_instance(INST2, "RUNNING", 0);
    ctl0("DELETE", "/_test/requests", NULL);
    memset(&o, 0, sizeof(o));
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, "oci://" INST2, RSRE_OCI_REBOOT_HARD, on_outcome, &o, NULL),
        0);
    assert_true(run_until(outc_done, &o, 15000));
    assert_int_equal(o.o.rc, 0);
    assert_string_equal(o.action, "RESET");
    acts = actions();
    assert_int_equal(json_array_size(acts), 1);
    assert_string_equal(jget(json_array_get(acts, 0), "action"), "RESET");
    json_decref(acts);
}

static void test_reboot_refused_when_not_running(void **state) {
    struct fx *f = *state;
    add_instance(INST, "STOPPED", 0);
    struct outc o = {0};
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, "oci://" INST, RSRE_OCI_REBOOT_SOFT, on_outcome, &o, NULL),
        0);
    assert_true(run_until(outc_done, &o, 10000));
    assert_int_equal(o.o.rc, -ESTALE);
    assert_string_equal(o.step, "precheck");
    assert_string_equal(o.state, "STOPPED");
    assert_string_equal(o.action, "");
    assert_non_null(strstr(o.message, "not RUNNING"));
    json_t *acts = actions();
    assert_int_equal(json_array_size(acts), 0);
    json_decref(acts);

    /* An unknown instance: 404 NotAuthorizedOrNotFound, not retried. */
    memset(&o, 0, sizeof(o));
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, "oci://" OTHER, RSRE_OCI_REBOOT_SOFT, on_outcome, &o, NULL),
        0);
    assert_true(run_until(outc_done, &o, 10000));
    assert_int_equal(o.o.rc, RSRE_ENOTFOUND);
    assert_non_null(strstr(o.message, "not found"));
}

struct pool_seen {
    int done, rc;
    long long size;
    size_t nodes, new_nodes;
    int has_old;
};

static void on_pool(void *arg, const struct rsre_oci_result *r) {
    struct pool_seen *p = arg;
    p->done = 1;
    p->rc = r->rc;
    if (r->rc != 0) {
        return;
    }
    p->size =
        json_integer_value(json_object_get(json_object_get(r->body, "nodeConfigDetails"), "size"));
    json_t *nodes = json_object_get(r->body, "nodes");
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        const char *id = jget(n, "id");
        p->nodes++;
        p->has_old |= strcmp(id, INST2) == 0;
        p->new_nodes += strcmp(id, INST) != 0 && strcmp(id, INST2) != 0 && strcmp(id, INST3) != 0;
        assert_string_equal(jget(n, "nodePoolId"), POOL);
    }
}

static int pool_done(void *arg) {
    return ((struct pool_seen *)arg)->done;
}

static void test_replace_round_trip(void **state) {
    struct fx *f = *state;
    add_pool(POOL, INST, INST2, INST3);
    struct outc o = {0};
    /* The node's label names the pool (the configured one is the same here). */
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST2, POOL, on_outcome, &o, NULL),
                     0);
    assert_true(run_until(outc_done, &o, 15000));
    if (o.o.rc != 0) {
        fail_msg("replace: %s (%s)", rsre_strerror(o.o.rc), o.message);
    }
    assert_string_equal(o.action, "DELETE_NODE");
    assert_true(strcmp(o.state, "TERMINATING") == 0 || strcmp(o.state, "TERMINATED") == 0);
    assert_int_equal(o.o.http_status, 202);
    assert_non_null(strstr(o.message, "pool keeps 3 nodes"));
    json_t *acts = actions();
    assert_int_equal(json_array_size(acts), 1);
    json_t *a = json_array_get(acts, 0);
    assert_string_equal(jget(a, "action"), "DELETE_NODE");
    assert_string_equal(jget(a, "node_pool"), POOL);
    assert_string_equal(jget(a, "node"), INST2);
    assert_true(json_is_false(json_object_get(a, "isDecrementSize")));
    json_decref(acts);
    json_t *reqs = requests();
    size_t i;
    json_t *r;
    int deletes = 0;
    json_array_foreach(reqs, i, r) {
        assert_true(json_is_true(json_object_get(r, "verified")));
        if (strcmp(jget(r, "method"), "DELETE") == 0) {
            deletes++;
            assert_string_equal(jget(r, "path"), "/20180222/nodePools/" POOL "/node/" INST2
                                                 "?isDecrementSize=false");
            assert_non_null(strstr(jget(json_object_get(r, "headers"), "authorization"),
                                   "headers=\"date (request-target) host\""));
        }
    }
    assert_int_equal(deletes, 1);
    json_decref(reqs);

    /* Later the old node is gone and a replacement is in the pool, which kept its size. */
    uint64_t end = now_ms() + 1500;
    while (now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    struct pool_seen ps = {0};
    assert_int_equal(rsre_oci_get_node_pool(f->oci, POOL, on_pool, &ps, NULL), 0);
    assert_true(run_until(pool_done, &ps, 10000));
    assert_int_equal(ps.rc, 0);
    assert_int_equal(ps.size, 3);
    assert_int_equal(ps.nodes, 3);
    assert_false(ps.has_old);
    assert_int_equal(ps.new_nodes, 1);

    /* Deleting it again: the node is no longer in the pool. */
    memset(&o, 0, sizeof(o));
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST2, NULL, on_outcome, &o, NULL),
                     0);
    assert_true(run_until(outc_done, &o, 10000));
    assert_int_equal(o.o.rc, RSRE_ENOTFOUND);
    assert_string_equal(o.step, "precheck");
}

static void test_replace_refusals(void **state) {
    struct fx *f = *state;
    add_pool(POOL, INST, INST2, INST3);
    add_pool(POOL2, OTHER, OTHER, OTHER);
    /* A node of another pool: refused before anything is deleted. */
    struct outc o = {0};
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST, POOL2, on_outcome, &o, NULL),
                     0);
    assert_true(run_until(outc_done, &o, 10000));
    assert_int_equal(o.o.rc, RSRE_ENOTFOUND);
    assert_non_null(strstr(o.message, "not a node of node pool"));
    /* A node already being deleted. */
    memset(&o, 0, sizeof(o));
    struct got g = {0};
    assert_int_equal(rsre_oci_delete_node(f->oci, POOL, INST3, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.status, 202);
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST3, POOL, on_outcome, &o, NULL),
                     0);
    assert_true(run_until(outc_done, &o, 10000));
    assert_int_equal(o.o.rc, -EALREADY);
    json_t *acts = actions();
    assert_int_equal(json_array_size(acts), 1); /* only the explicit delete */
    json_decref(acts);
    /* Bad pool labels and no pool at all are refused synchronously. */
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST, "pool-a", on_outcome, &o, NULL),
                     RSRE_EINVALID);
    char err[64];
    rsre_oci_destroy(f->oci);
    rsre_oci_config_set(&f->cfg, "node_pool_id", "", err, sizeof(err));
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &f->cfg, &f->oci, err, sizeof(err)), 0);
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST, NULL, on_outcome, &o, NULL),
                     RSRE_ENOTFOUND);
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST, "", on_outcome, &o, NULL),
                     RSRE_ENOTFOUND);
}

/* ---- authentication failures -------------------------------------------------------------- */

static void test_wrong_key_401(void **state) {
    struct fx *f = *state;
    add_instance(INST, "RUNNING", 0);
    struct rsre_oci_config cfg = f->cfg;
    char err[256];
    rsre_oci_config_set(&cfg, "key_file", kpath("wrong.pem"), err, sizeof(err));
    rsre_oci_config_set(&cfg, "fingerprint", wrong_fp, err, sizeof(err));
    struct rsre_oci *c = NULL;
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &cfg, &c, err, sizeof(err)), 0);
    struct outc o = {0};
    assert_int_equal(
        rsre_oci_reboot_worker(c, "oci://" INST, RSRE_OCI_REBOOT_SOFT, on_outcome, &o, NULL), 0);
    assert_true(run_until(outc_done, &o, 10000));
    assert_int_equal(o.o.rc, -EACCES);
    assert_string_equal(o.step, "precheck");
    assert_non_null(strstr(o.message, "NotAuthenticated"));
    struct got g = {0};
    assert_int_equal(rsre_oci_instance_action(c, INST, RSRE_OCI_SOFTRESET, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, -EACCES);
    assert_int_equal(g.status, 401);
    assert_string_equal(g.code, "NotAuthenticated");
    assert_int_equal(g.attempts, 1); /* 401 is not retried */
    rsre_oci_destroy(c);
    json_t *acts = actions();
    assert_int_equal(json_array_size(acts), 0);
    json_decref(acts);
    json_t *reqs = requests();
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        assert_false(json_is_true(json_object_get(r, "verified")));
        assert_string_equal(jget(r, "reason"), "unknown keyId");
    }
    json_decref(reqs);

    /* A key whose signatures do not verify under the configured keyId cannot be configured
     * (the fingerprint is computed from the key): test_tampered_signature_401 covers it. */
}

/* A transport that corrupts one character of the signature after signing. */
struct tamper {
    struct rsre_oci_transport inner;
    int what; /* 0: signature byte, 1: path */
};

static int tamper_send(void *ctx, const struct rsre_oci_http_request *req,
                       rsre_oci_http_done_cb done, void *arg, void **handle) {
    struct tamper *t = ctx;
    struct rsre_oci_http_request r = *req;
    static char hdr[RSRE_OCI_MAX_REQ_HEADERS][RSRE_OCI_AUTH_MAX + 64];
    static char url[1024];
    for (size_t i = 0; i < r.nheaders; i++) {
        snprintf(hdr[i], sizeof(hdr[i]), "%s", req->headers[i]);
        r.headers[i] = hdr[i];
        char *sig = strstr(hdr[i], "signature=\"");
        if (t->what == 0 && strncmp(hdr[i], "authorization:", 14) == 0 && sig) {
            sig += strlen("signature=\"") + 10;
            *sig = *sig == 'A' ? 'B' : 'A';
        }
    }
    if (t->what == 1) { /* same signature, another instance */
        snprintf(url, sizeof(url), "%s", req->url);
        char *p = strstr(url, INST);
        if (p) {
            memcpy(p, INST2, strlen(INST2));
        }
        r.url = url;
    }
    return t->inner.send(t->inner.ctx, &r, done, arg, handle);
}

static void tamper_abandon(void *ctx, void *handle) {
    struct tamper *t = ctx;
    t->inner.abandon(t->inner.ctx, handle);
}

static void test_tampered_signature_401(void **state) {
    struct fx *f = *state;
    add_instance(INST, "RUNNING", 0);
    add_instance(INST2, "RUNNING", 0);
    for (int what = 0; what < 2; what++) {
        struct tamper t = {.inner = f->tr, .what = what};
        struct rsre_oci_transport tr = {.send = tamper_send, .abandon = tamper_abandon, .ctx = &t};
        struct rsre_oci *c = NULL;
        char err[256];
        assert_int_equal(rsre_oci_create(&f->loop, &tr, &f->cfg, &c, err, sizeof(err)), 0);
        ctl0("DELETE", "/_test/requests", NULL);
        struct got g = {0};
        assert_int_equal(rsre_oci_instance_action(c, INST, RSRE_OCI_RESET, on_result, &g, NULL), 0);
        assert_true(run_until(got_done, &g, 10000));
        assert_int_equal(g.rc, -EACCES);
        assert_int_equal(g.status, 401);
        assert_string_equal(g.code, "NotAuthenticated");
        rsre_oci_destroy(c);
        json_t *reqs = requests();
        assert_int_equal(json_array_size(reqs), 1);
        assert_string_equal(jget(json_array_get(reqs, 0), "reason"), "signature does not verify");
        json_decref(reqs);
        json_t *acts = actions();
        assert_int_equal(json_array_size(acts), 0);
        json_decref(acts);
    }
}

/* ---- retries and errors ------------------------------------------------------------------- */

static void test_429_then_success(void **state) {
    struct fx *f = *state;
    add_instance(INST, "RUNNING", 0);
    ctl0("POST", "/_test/faults",
         "{\"method\":\"POST\",\"status\":429,\"count\":1,\"retry_after\":\"1\"}");
    struct got g = {0};
    assert_int_equal(
        rsre_oci_instance_action(f->oci, INST, RSRE_OCI_SOFTRESET, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.attempts, 2);
    assert_string_equal(g.state, "STOPPING");
    json_t *reqs = requests();
    assert_int_equal(json_array_size(reqs), 2);
    json_t *r0 = json_array_get(reqs, 0), *r1 = json_array_get(reqs, 1);
    assert_int_equal(json_integer_value(json_object_get(r0, "status")), 429);
    assert_int_equal(json_integer_value(json_object_get(r1, "status")), 200);
    /* The retry is signed afresh, with the same request id and retry token. */
    json_t *h0 = json_object_get(r0, "headers"), *h1 = json_object_get(r1, "headers");
    assert_string_equal(jget(h0, "opc-retry-token"), jget(h1, "opc-retry-token"));
    assert_string_equal(jget(h0, "opc-request-id"), jget(h1, "opc-request-id"));
    json_decref(reqs);
    json_t *acts = actions();
    assert_int_equal(json_array_size(acts), 1);
    json_decref(acts);

    /* 500 twice, then success, on a GET. */
    ctl0("DELETE", "/_test/requests", NULL);
    ctl0("POST", "/_test/faults", "{\"method\":\"GET\",\"status\":500,\"count\":2}");
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.attempts, 3);

    /* 503 every time: gives up after max_attempts with -EIO and OCI's code. */
    ctl0("POST", "/_test/faults", "{\"method\":\"GET\",\"status\":503,\"count\":4}");
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, -EIO);
    assert_int_equal(g.status, 503);
    assert_int_equal(g.attempts, 4);
    assert_string_equal(g.code, "ServiceUnavailable");

    /* 429 every time: -EAGAIN. */
    ctl0("POST", "/_test/faults", "{\"method\":\"GET\",\"status\":429,\"count\":4}");
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, -EAGAIN);
    assert_int_equal(g.attempts, 4);
    assert_string_equal(g.code, "TooManyRequests");
}

static void test_errors_mapped(void **state) {
    struct fx *f = *state;
    add_instance(INST, "STOPPED", 0);
    struct got g = {0};
    /* 409 IncorrectState: RESET of a stopped instance. */
    assert_int_equal(rsre_oci_instance_action(f->oci, INST, RSRE_OCI_RESET, on_result, &g, NULL),
                     0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, -ESTALE);
    assert_int_equal(g.status, 409);
    assert_string_equal(g.code, "IncorrectState");
    assert_non_null(strstr(g.message, "incorrect state"));
    assert_int_equal(g.attempts, 1);
    /* 404. */
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(f->oci, OTHER, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, RSRE_ENOTFOUND);
    assert_string_equal(g.code, "NotAuthorizedOrNotFound");
    /* 403 / 400 through injected faults. */
    ctl0("POST", "/_test/faults", "{\"status\":403,\"code\":\"NotAllowed\",\"message\":\"no\"}");
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, -EPERM);
    assert_string_equal(g.code, "NotAllowed");
    ctl0("POST", "/_test/faults",
         "{\"status\":400,\"code\":\"InvalidParameter\",\"message\":\"bad\\r\\nX-Injected: 1\"}");
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, RSRE_EINVALID);
    assert_null(strchr(g.message, '\n')); /* peer text is cleaned */

    /* An oversized body: RSRE_ELIMIT, not retried. */
    char err[64];
    rsre_oci_destroy(f->oci);
    rsre_oci_config_set(&f->cfg, "max_body", "4096", err, sizeof(err));
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &f->cfg, &f->oci, err, sizeof(err)), 0);
    char *big = malloc(12000);
    assert_non_null(big);
    int n = snprintf(big, 12000, "{\"id\":\"%s\",\"displayName\":\"", INST2);
    memset(big + n, 'x', 10000);
    strcpy(big + n + 10000, "\"}");
    ctl0("POST", "/_test/instances", big);
    free(big);
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(f->oci, INST2, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, RSRE_ELIMIT);
    assert_int_equal(g.attempts, 1);

    /* Nobody listening: transport errors are retried, then reported. */
    struct rsre_oci_config cfg = f->cfg;
    rsre_oci_config_set(&cfg, "compute_url", "http://127.0.0.1:1", err, sizeof(err));
    struct rsre_oci *c = NULL;
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &cfg, &c, err, sizeof(err)), 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(c, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, -ECONNREFUSED);
    assert_int_equal(g.attempts, 4);
    rsre_oci_destroy(c);
}

/* ---- Retry-After, through a scripted transport -------------------------------------------- */

struct script {
    uv_loop_t *loop;
    int sent;
    uint64_t at[8];   /* monotonic ms of each attempt */
    int64_t wall[8];  /* wall-clock ms of each attempt (Retry-After as an HTTP-date) */
    const char *retry_after[8]; /* per attempt; NULL = success */
};

struct sx {
    uv_timer_t t;
    struct script *s;
    rsre_oci_http_done_cb done;
    void *arg;
    int n;
};

static void sx_free(uv_handle_t *h) {
    free(h->data);
}

static void sx_fire(uv_timer_t *t) {
    struct sx *x = t->data;
    struct rsre_oci_http_response r = {.opc_request_id = "ORACLE-SIDE/1"};
    const char *ra = x->s->retry_after[x->n];
    static char body[512];
    if (ra) {
        r.status = 429;
        r.retry_after = ra[0] ? ra : NULL;
        r.body = "{\"code\":\"TooManyRequests\",\"message\":\"slow down\"}";
    } else {
        r.status = 200;
        snprintf(body, sizeof(body), "{\"id\":\"%s\",\"lifecycleState\":\"RUNNING\"}", INST);
        r.body = body;
    }
    r.body_len = strlen(r.body);
    x->done(x->arg, 0, &r);
    uv_close((uv_handle_t *)&x->t, sx_free);
}

static int sx_send(void *ctx, const struct rsre_oci_http_request *req, rsre_oci_http_done_cb done,
                   void *arg, void **handle) {
    (void)req;
    struct script *s = ctx;
    struct sx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->s = s;
    x->done = done;
    x->arg = arg;
    x->n = s->sent;
    struct timespec wt;
    clock_gettime(CLOCK_REALTIME, &wt);
    s->wall[s->sent] = (int64_t)wt.tv_sec * 1000 + wt.tv_nsec / 1000000;
    s->at[s->sent++] = now_ms();
    uv_timer_init(s->loop, &x->t);
    x->t.data = x;
    uv_timer_start(&x->t, sx_fire, 1, 0);
    *handle = x;
    return 0;
}

static void sx_abandon(void *ctx, void *handle) {
    (void)ctx;
    struct sx *x = handle;
    uv_timer_stop(&x->t);
    uv_close((uv_handle_t *)&x->t, sx_free);
}

static void test_retry_after_honoured(void **state) {
    struct fx *f = *state;
    char date[RSRE_OCI_DATE_LEN];
    long long not_before = (long long)time(NULL) + 2;
    rsre_oci_http_date(not_before, date);
    struct script s = {.loop = &f->loop, .retry_after = {"1", date, NULL}};
    struct rsre_oci_transport tr = {.send = sx_send, .abandon = sx_abandon, .ctx = &s};
    struct rsre_oci *c = NULL;
    char err[256];
    assert_int_equal(rsre_oci_create(&f->loop, &tr, &f->cfg, &c, err, sizeof(err)), 0);
    struct got g = {0};
    assert_int_equal(rsre_oci_get_instance(c, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.attempts, 3);
    assert_string_equal(g.opc_request_id, "ORACLE-SIDE/1");
    /* backoff is 20..100 ms here: the waits come from Retry-After. */
    assert_true(s.at[1] - s.at[0] >= 950);
    /* The second wait lasts until the date, whenever the second attempt came (a loaded machine
     * may bring it close to the date): the third attempt is never before it (timer slack 50 ms). */
    assert_true(s.wall[2] >= not_before * 1000 - 50);
    rsre_oci_destroy(c);

    /* A Retry-After beyond the cap waits the cap; garbage is ignored. */
    struct rsre_oci_config cfg = f->cfg;
    rsre_oci_config_set(&cfg, "max_retry_after_ms", "300", err, sizeof(err));
    struct script s2 = {.loop = &f->loop, .retry_after = {"3600", "soon", NULL}};
    tr.ctx = &s2;
    assert_int_equal(rsre_oci_create(&f->loop, &tr, &cfg, &c, err, sizeof(err)), 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(rsre_oci_get_instance(c, INST, on_result, &g, NULL), 0);
    assert_true(run_until(got_done, &g, 10000));
    assert_int_equal(g.rc, 0);
    assert_true(s2.at[1] - s2.at[0] >= 290 && s2.at[1] - s2.at[0] < 900);
    assert_true(s2.at[2] - s2.at[1] < 290);
    rsre_oci_destroy(c);
}

/* ---- lifetimes ---------------------------------------------------------------------------- */

struct self_abandon {
    struct rsre_oci_op *op;
    int done, rc;
};

static void on_outcome_abandon(void *arg, const struct rsre_oci_outcome *o) {
    struct self_abandon *sa = arg;
    rsre_oci_op_abandon(sa->op);
    sa->done++;
    sa->rc = o->rc;
}

static void test_destroy_and_abandon(void **state) {
    struct fx *f = *state;
    add_instance(INST, "RUNNING", 0);
    add_pool(POOL, INST, INST2, INST3);
    struct outc o1 = {0}, o2 = {0};
    struct got g = {0}, g2 = {0};
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, "oci://" INST, RSRE_OCI_REBOOT_SOFT, on_outcome, &o1, NULL),
        0);
    assert_int_equal(rsre_oci_replace_worker(f->oci, "oci://" INST2, NULL, on_outcome, &o2, NULL),
                     0);
    struct rsre_oci_call *call = NULL;
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g, &call), 0);
    assert_int_equal(rsre_oci_get_instance(f->oci, INST, on_result, &g2, NULL), 0);
    rsre_oci_call_abandon(call);
    /* Let the reboot reach its polling phase. */
    uint64_t end = now_ms() + 300;
    while (now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(g.done, 0); /* abandoned: never */
    assert_int_equal(g2.done, 1);
    assert_int_equal(o1.done, 0);
    rsre_oci_destroy(f->oci);
    f->oci = NULL;
    assert_int_equal(o1.done, 1);
    assert_int_equal(o1.o.rc, -ECANCELED);
    assert_int_equal(o2.done, 1);
    assert_true(o2.o.rc == -ECANCELED || o2.o.rc == 0);

    /* An abandoned operation never calls back. */
    char err[64];
    assert_int_equal(rsre_oci_create(&f->loop, &f->tr, &f->cfg, &f->oci, err, sizeof(err)), 0);
    struct outc o3 = {0};
    struct rsre_oci_op *op = NULL;
    add_instance(INST3, "RUNNING", 0);
    assert_int_equal(
        rsre_oci_reboot_worker(f->oci, "oci://" INST3, RSRE_OCI_REBOOT_SOFT, on_outcome, &o3, &op),
        0);
    rsre_oci_op_abandon(op);
    end = now_ms() + 300;
    while (now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(o3.done, 0);

    /* Abandoning an operation from inside its own callback is a no-op. */
    struct self_abandon sa = {0};
    assert_int_equal(rsre_oci_reboot_worker(f->oci, "oci://" OTHER, RSRE_OCI_REBOOT_SOFT,
                                            on_outcome_abandon, &sa, &sa.op),
                     0);
    end = now_ms() + 5000;
    while (!sa.done && now_ms() < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(sa.done, 1);
    assert_int_equal(sa.rc, RSRE_ENOTFOUND);
    rsre_oci_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_id),
        cmocka_unit_test(test_pick_node_pool),
        cmocka_unit_test(test_config),
        cmocka_unit_test_setup_teardown(test_create_checks_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_get_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reboot_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reboot_hard_and_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reboot_refused_when_not_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_signature_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_mapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_and_abandon, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
