/*
 * Durability of the aggregator daemon under SIGKILL (issue 4, "Durability").
 *
 * The real robot-sre-aggregator (BUILD/aggregator/daemon/robot-sre-aggregator) runs on a store
 * in a temp dir, gRPC and admin API on 127.0.0.1 port 0 (the ports read from its log). Each
 * cycle:
 *   1. start it; `robotctl audit verify` over the admin API must pass (exit 0);
 *   2. a scripted agent client (gRPC core, the agent proto, written here) opens one stream per
 *      node — four steady nodes plus two new ones each cycle — says Hello, and checks that
 *      the Hello's Ack reports at least every seq it was acknowledged before the kill; then it
 *      streams SignalBatches with disk pressure (DiskPressure=True, the disk-pressure taint,
 *      97 % nodefs) as fast as the stream takes them (rate limits raised for the test);
 *   3. at the same time a voter thread lists pending approvals over the admin API (the
 *      engine asks for cordon_node on each new node's incident) and approves (alice) or
 *      denies (bob) them, logging every vote answered 200, changes a rule (adam, admin: a
 *      clone of builtin.node_disk_pressure, then PATCHes of its cooldown, each a new version
 *      and an engine reload), logging every version answered 201, and pages the audit log,
 *      logging every (seq, hash) it was shown;
 *   4. after a random delay (seeded; RSRE_TEST_SEED=<n> replays, the seed is printed) the
 *      aggregator is SIGKILLed while all of that runs;
 *   5. with the daemon dead the store is opened here and checked against the client's logs:
 *      every acknowledged batch is committed (the node's boot record has committed_seq >= the
 *      highest Ack, and the node's node_disk_pressure incident exists once any of its batches
 *      was acknowledged), every vote answered 200 is on its approval, every rule version
 *      answered 201 is stored, every audit record the API showed is still there with the same
 *      hash, and the audit chain verifies.
 * RSRE_DURABILITY_KILLS (default 22, at least 20) kills; a last start checks the same, then
 * SIGTERM must end the daemon with status 0. Figures are printed.
 *
 * RSRE_TEST_KEEP=1 keeps the temp dir (logs, store).
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
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/error.h"
#include "store/store.h"

#define AGGREGATOR RSRE_BINARY_DIR "/aggregator/daemon/robot-sre-aggregator"
#define ROBOTCTL RSRE_BINARY_DIR "/aggregator/robotctl/robotctl"
#define WAIT_MS 30000
#define STEADY_NODES 4
#define NEW_PER_CYCLE 2
#define MAX_NODES 128
#define MAX_STREAMS (STEADY_NODES + NEW_PER_CYCLE)

#include "../support/aggregator_harness.c"
#define MAX_VOTES 4096
#define MAX_AUDIT 65536

#define TOKEN_ALICE "durability-token-alice"
#define TOKEN_BOB "durability-token-bob"
#define TOKEN_ADAM "durability-token-adam" /* admin: rule changes */
#define RULE "ndp-durability"
#define MAX_RULE_VERSIONS 4096

/* ---- what the client was told (the logs checked after each kill) -------------------------- */

struct vote_log {
    char approval[RSRE_STORE_ID_MAX + 1];
    char op[16];
    int approve;
};

struct audit_log {
    uint64_t seq;
    char hash[2 * RSRE_STORE_HASH_LEN + 1];
};

static struct fx {
    char dir[64], store[128], tokens[128], operators[128], log[160];
    struct harness_daemon agg;
    int runs;
    uint64_t rng, seed;
    struct node_log nodes[MAX_NODES];
    size_t nnodes;
    /* shared with the voter thread */
    pthread_mutex_t mu;
    struct vote_log votes[MAX_VOTES];
    uint32_t rule_versions[MAX_RULE_VERSIONS]; /* versions of RULE answered 201 */
    size_t nrule_versions;
    size_t nvotes;
    struct audit_log *audit;
    size_t naudit;
    uint64_t audit_next;
    volatile int voter_stop;
    unsigned long vote_refused, http_errors;
} F;

static uint64_t rng(void) {
    F.rng ^= F.rng >> 12;
    F.rng ^= F.rng << 25;
    F.rng ^= F.rng >> 27;
    return F.rng * 2685821657736338717ull;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

static void start_aggregator(void) {
    char a[16][600];
    int n = 0;
#define ARG(...) snprintf(a[n++], sizeof(a[0]), __VA_ARGS__)
    ARG("--listen=127.0.0.1:0");
    ARG("--env=demo");
    ARG("--data_dir=%s", F.store);
    ARG("--cluster=durability");
    ARG("--tick_ms=1000");
    ARG("--api_listen=127.0.0.1:0");
    ARG("--api_tokens_file=%s", F.tokens);
    ARG("--operators_file=%s", F.operators);
    ARG("--rate_per_sec=100000");
    ARG("--rate_burst=100000");
    ARG("--kube_api=http://127.0.0.1:1"); /* nothing listens: approved cordons fail, never run */
    ARG("--log_level=info");
#undef ARG
    char *argv[18] = {AGGREGATOR};
    for (int i = 0; i < n; i++) {
        argv[i + 1] = a[i];
    }
    argv[n + 1] = NULL;
    F.runs++;
    snprintf(F.log, sizeof(F.log), "%s/aggregator-%d.log", F.dir, F.runs);
    /* A SIGKILLed ASan process reports nothing; a clean exit must not leak. */
    setenv("ASAN_OPTIONS", "detect_leaks=1:exitcode=23", 0);
    harness_agg_start(&F.agg, argv, F.log);
}

/* robotctl audit verify over the admin API; its exit status. */
static int robotctl_audit_verify(void) {
    char server[64], out[192];
    snprintf(server, sizeof(server), "http://127.0.0.1:%d", F.agg.api_port);
    snprintf(out, sizeof(out), "%s/robotctl.log", F.dir);
    char *argv[] = {ROBOTCTL, "audit", "verify", "--server", server, NULL};
    pid_t pid = spawn_logged(argv, out, TOKEN_ALICE);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Steady nodes every cycle, two new nodes per cycle (a new incident, a new approval). */
static void client_open(size_t cycle) {
    struct node_log *nodes[MAX_STREAMS];
    for (size_t i = 0; i < STEADY_NODES + NEW_PER_CYCLE; i++) {
        size_t idx =
            i < STEADY_NODES ? i : STEADY_NODES + cycle * NEW_PER_CYCLE + (i - STEADY_NODES);
        assert_true(idx < MAX_NODES);
        struct node_log *n = &F.nodes[idx];
        if (!n->name[0]) {
            snprintf(n->name, sizeof(n->name), "dur-node-%02zu", idx);
            snprintf(n->boot, sizeof(n->boot), "6f1c2a7e-9a54-4a8e-8d8e-%012zx", idx + 1);
        }
        if (idx + 1 > F.nnodes) {
            F.nnodes = idx + 1;
        }
        nodes[i] = n;
    }
    client_open_nodes(F.agg.grpc_port, nodes, STEADY_NODES + NEW_PER_CYCLE);
}

/* ---- the voter thread (admin API) ---------------------------------------------------------- */

/* Pages the audit log from where it stopped; logs every (seq, hash) shown. */
static void voter_audit(int port) {
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/audit?from_seq=%" PRIu64 "&limit=500", F.audit_next);
    long st;
    json_t *j = api(port, "GET", path, NULL, TOKEN_ALICE, &st);
    json_t *recs = j ? json_object_get(j, "records") : NULL;
    if (st != 200 || !json_is_array(recs)) {
        json_decref(j);
        return;
    }
    pthread_mutex_lock(&F.mu);
    for (size_t i = 0; i < json_array_size(recs) && F.naudit < MAX_AUDIT; i++) {
        json_t *r = json_array_get(recs, i);
        struct audit_log *a = &F.audit[F.naudit++];
        a->seq = (uint64_t)json_integer_value(json_object_get(r, "seq"));
        snprintf(a->hash, sizeof(a->hash), "%s", json_string_value(json_object_get(r, "hash")));
        F.audit_next = a->seq + 1;
    }
    pthread_mutex_unlock(&F.mu);
    json_decref(j);
}

/* A rule change (a new version of RULE, cloned on the first call), logged when answered 201:
 * the rule versions and their audit records must survive a kill like votes. Every change
 * also makes the daemon reload its engine's rules under load. */
static void voter_rule(int port, unsigned turn) {
    long st = 0;
    json_t *r;
    if (turn % 4) {
        return;
    }
    char body[160];
    snprintf(body, sizeof(body), "{\"cooldown_seconds\":%u,\"comment\":\"durability %u\"}",
             600 + turn % 600, turn);
    r = api(port, "PATCH", "/api/v1/rules/" RULE, body, TOKEN_ADAM, &st);
    if (r && st == 404) {
        json_decref(r);
        r = api(port, "POST", "/api/v1/rules/builtin.node_disk_pressure/clone",
                "{\"new_id\":\"" RULE "\",\"comment\":\"durability\"}", TOKEN_ADAM, &st);
    }
    if (r && st == 201) {
        pthread_mutex_lock(&F.mu);
        if (F.nrule_versions < MAX_RULE_VERSIONS) {
            F.rule_versions[F.nrule_versions++] =
                (uint32_t)json_integer_value(json_object_get(r, "version"));
        }
        pthread_mutex_unlock(&F.mu);
    } else if (!r) {
        F.http_errors++;
    }
    json_decref(r);
}

static void *voter(void *arg) {
    int port = *(int *)arg;
    unsigned turn = 0;
    while (!F.voter_stop) {
        long st;
        json_t *j =
            api(port, "GET", "/api/v1/approvals?state=pending&limit=20", NULL, TOKEN_ALICE, &st);
        json_t *list = j ? json_object_get(j, "approvals") : NULL;
        if (!j) {
            F.http_errors++;
        }
        for (size_t i = 0; json_is_array(list) && i < json_array_size(list) && !F.voter_stop; i++) {
            const char *id = json_string_value(json_object_get(json_array_get(list, i), "id"));
            if (!id) {
                continue;
            }
            int approve = (turn++ % 2) == 0;
            char path[256];
            snprintf(path, sizeof(path), "/api/v1/approvals/%s/%s", id,
                     approve ? "approve" : "deny");
            json_t *r = api(port, "POST", path, "{\"comment\":\"durability test\"}",
                            approve ? TOKEN_ALICE : TOKEN_BOB, &st);
            if (r && st == 200) {
                pthread_mutex_lock(&F.mu);
                if (F.nvotes < MAX_VOTES) {
                    struct vote_log *v = &F.votes[F.nvotes++];
                    snprintf(v->approval, sizeof(v->approval), "%s", id);
                    snprintf(v->op, sizeof(v->op), "%s", approve ? "alice" : "bob");
                    v->approve = approve;
                }
                pthread_mutex_unlock(&F.mu);
            } else if (r) {
                F.vote_refused++;
            } else {
                F.http_errors++;
            }
            json_decref(r);
        }
        json_decref(j);
        voter_rule(port, turn++);
        voter_audit(port);
        sleep_ms(5);
    }
    return NULL;
}

/* ---- the checks against the store ---------------------------------------------------------- */

struct inc_find {
    const char *node;
    int found;
};

static int inc_cb(const rsre_store_incident *rec, void *ud) {
    struct inc_find *f = ud;
    if (strcmp(rec->incident_type, "node_disk_pressure")) {
        return 0;
    }
    for (size_t i = 0; i < rec->n_resource_scope; i++) {
        if (rec->resource_scope[i]->name && !strcmp(rec->resource_scope[i]->name, f->node)) {
            f->found = 1;
        }
    }
    return 0;
}

static void check_store(unsigned kill_no) {
    rsre_store *st;
    assert_int_equal(rsre_store_open(F.store, NULL, &st), 0);
    rsre_store_txn *txn;
    assert_int_equal(rsre_store_txn_begin(st, 1, &txn), 0);
    for (size_t i = 0; i < F.nnodes; i++) {
        struct node_log *n = &F.nodes[i];
        if (!n->name[0] || !n->acked) {
            continue;
        }
        rsre_store_agent *rec = NULL;
        int rc = rsre_store_agent_get(txn, n->name, &rec);
        if (rc) {
            fail_msg("kill %u (seed %" PRIu64 "): node %s had %" PRIu64
                     " acknowledged batches and has no agent record (%s)",
                     kill_no, F.seed, n->name, n->acked, rsre_strerror(rc));
        }
        const rsre_store_agent_boot *b = rsre_store_agent_boot_find(rec, n->boot);
        uint64_t committed = b ? b->committed_seq : 0;
        rsre_store_agent_free(rec);
        if (committed < n->acked) {
            fail_msg("kill %u (seed %" PRIu64 "): node %s: acknowledged seq %" PRIu64
                     ", committed only %" PRIu64,
                     kill_no, F.seed, n->name, n->acked, committed);
        }
        struct inc_find f = {n->name, 0};
        assert_int_equal(rsre_store_incident_foreach(txn, inc_cb, &f), 0);
        if (!f.found) {
            fail_msg("kill %u (seed %" PRIu64 "): node %s: %" PRIu64
                     " acknowledged disk-pressure batches and no node_disk_pressure incident",
                     kill_no, F.seed, n->name, n->acked);
        }
    }
    pthread_mutex_lock(&F.mu);
    for (size_t i = 0; i < F.nvotes; i++) {
        const struct vote_log *v = &F.votes[i];
        rsre_store_approval *a = NULL;
        assert_int_equal(rsre_store_approval_get(txn, v->approval, &a), 0);
        int found = 0;
        for (size_t k = 0; k < a->n_votes; k++) {
            int kind_ok = v->approve
                              ? a->votes[k]->vote == ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE
                              : a->votes[k]->vote == ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_DENY;
            found |= !strcmp(a->votes[k]->operator_, v->op) && kind_ok;
        }
        rsre_store_approval_free(a);
        if (!found) {
            fail_msg("kill %u (seed %" PRIu64 "): the %s vote of %s on %s was answered 200 and "
                     "is not in the store",
                     kill_no, F.seed, v->approve ? "approve" : "deny", v->op, v->approval);
        }
    }
    for (size_t i = 0; i < F.nrule_versions; i++) {
        rsre_store_rule *rv = NULL;
        int rc = rsre_store_rule_get(txn, RULE, F.rule_versions[i], &rv);
        rsre_store_rule_free(rv);
        if (rc) {
            fail_msg("kill %u (seed %" PRIu64 "): rule %s version %u was answered 201 and is not "
                     "in the store (%s)",
                     kill_no, F.seed, RULE, F.rule_versions[i], rsre_strerror(rc));
        }
    }
    for (size_t i = 0; i < F.naudit; i++) {
        rsre_store_audit *r = NULL;
        int rc = rsre_store_audit_get(txn, F.audit[i].seq, &r);
        if (rc) {
            fail_msg("kill %u (seed %" PRIu64 "): audit record %" PRIu64
                     " was served by the API and is gone (%s)",
                     kill_no, F.seed, F.audit[i].seq, rsre_strerror(rc));
        }
        char h[2 * RSRE_STORE_HASH_LEN + 1] = "";
        if (r->hash.len == RSRE_STORE_HASH_LEN) {
            hex(r->hash.data, RSRE_STORE_HASH_LEN, h);
        }
        rsre_store_audit_free(r);
        if (strcmp(h, F.audit[i].hash)) {
            fail_msg("kill %u (seed %" PRIu64 "): audit record %" PRIu64 " changed: %s, was %s",
                     kill_no, F.seed, F.audit[i].seq, h, F.audit[i].hash);
        }
    }
    pthread_mutex_unlock(&F.mu);
    rsre_store_txn_abort(txn);
    struct rsre_store_audit_report rep;
    memset(&rep, 0, sizeof(rep));
    int rc = rsre_store_audit_verify(st, &rep);
    if (rc) {
        fail_msg("kill %u (seed %" PRIu64 "): the audit chain is broken at %llu: %s", kill_no,
                 F.seed, (unsigned long long)rep.broken_seq, rep.reason);
    }
    rsre_store_close(st);
}

/* ---- the test ------------------------------------------------------------------------------ */

static void write_identities(void) {
    static const struct harness_token toks[] = {{"alice", "approver", TOKEN_ALICE},
                                                {"bob", "approver", TOKEN_BOB},
                                                {"adam", "admin", TOKEN_ADAM}};
    harness_write_tokens(F.tokens, toks, sizeof(toks) / sizeof(toks[0]));
    write_file(F.operators, "operators:\n"
                            "  - id: alice\n    roles: [approver]\n"
                            "  - id: bob\n    roles: [approver]\n");
}

/* One cycle: start, verify, load + votes, kill after `load_ms` of load (or stop with SIGTERM
 * when `last`), check. */
static void cycle(unsigned no, int64_t load_ms, int last) {
    start_aggregator();
    int rc = robotctl_audit_verify();
    if (rc != 0) {
        fail_msg("run %d: robotctl audit verify exit %d (see %s/robotctl.log)", F.runs, rc, F.dir);
    }
    client_open(no);
    F.voter_stop = 0;
    pthread_t th;
    int port = F.agg.api_port;
    assert_int_equal(pthread_create(&th, NULL, voter, &port), 0);
    int64_t end = mono_ms() + WAIT_MS;
    while (!all_hello_acked()) {
        pump(10);
        if (mono_ms() > end) {
            log_tail(F.log, 20);
            fail_msg("run %d: the streams were not acknowledged (see %s)", F.runs, F.log);
        }
    }
    pump(load_ms);
    if (last) {
        sleep_ms(0);
        F.voter_stop = 1;
        pthread_join(th, NULL);
        client_close();
        harness_agg_stop(&F.agg);
    } else {
        harness_agg_kill(&F.agg); /* while batches, votes and audit reads are in flight */
        F.voter_stop = 1;
        pthread_join(th, NULL);
        client_close();
    }
    check_store(no + 1);
}

static void test_sigkill_under_load(void **state) {
    (void)state;
    const char *env = getenv("RSRE_DURABILITY_KILLS");
    unsigned kills = env ? (unsigned)atoi(env) : 22;
    kills = kills < 20 ? 20 : kills;
    kills = kills > (MAX_NODES - STEADY_NODES) / NEW_PER_CYCLE - 1
                ? (MAX_NODES - STEADY_NODES) / NEW_PER_CYCLE - 1
                : kills;
    const char *seed = getenv("RSRE_TEST_SEED");
    uint64_t s = seed ? strtoull(seed, NULL, 0) : ((uint64_t)time(NULL) ^ (uint64_t)getpid());
    F.seed = SA.seed = s;
    F.rng = s ? s : 1;
    fprintf(stderr, "durability: seed %" PRIu64 " (RSRE_TEST_SEED=%" PRIu64 " replays), %u kills\n",
            s, s, kills);
    int64_t t0 = mono_ms();
    for (unsigned k = 0; k < kills; k++) {
        int64_t load = 20 + (int64_t)(rng() % 600); /* 20..619 ms of load before the kill */
        cycle(k, load, 0);
    }
    cycle(kills, 300, 1);
    fprintf(stderr,
            "durability: %u kills in %.1f s; %lu batches acknowledged over %zu nodes, %lu Hello "
            "acks checked, %zu votes answered 200 (%lu refused), %zu rule versions answered 201, "
            "%lu transport errors around kills, %zu audit records seen, all present after every "
            "kill\n",
            kills, (double)(mono_ms() - t0) / 1000.0, SA.batches_acked, F.nnodes, SA.hello_checks,
            F.nvotes, F.vote_refused, F.nrule_versions, F.http_errors, F.naudit);
    assert_true(F.nvotes > 0);
    assert_true(F.nrule_versions > 0);
    assert_true(SA.batches_acked > 0);
}

static int setup(void **state) {
    (void)state;
    memset(&F, 0, sizeof(F));
    pthread_mutex_init(&F.mu, NULL);
    F.audit = calloc(MAX_AUDIT, sizeof(*F.audit));
    F.audit_next = 1;
    assert_non_null(F.audit);
    snprintf(F.dir, sizeof(F.dir), "/tmp/rsre-durab-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.store, sizeof(F.store), "%s/store", F.dir);
    snprintf(F.tokens, sizeof(F.tokens), "%s/tokens.yaml", F.dir);
    snprintf(F.operators, sizeof(F.operators), "%s/operators.yaml", F.dir);
    write_identities();
    grpc_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    harness_agg_kill(&F.agg);
    harness_remove_dir(F.dir);
    free(F.audit);
    curl_global_cleanup();
    grpc_shutdown();
    return 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_under_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
