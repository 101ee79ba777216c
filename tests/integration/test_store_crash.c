/*
 * kill -9 test of the store (safety invariant 4: nothing acknowledged is lost).
 *
 * A forked writer loops over transactions that each create an incident, an approval with one
 * vote, an evidence record and an audit record, and after every commit returns reports the
 * committed number on a pipe (the "acknowledgement"). The parent SIGKILLs it at random
 * moments, reopens the store and checks that every acknowledged transaction is present and
 * intact, that every transaction present is complete (atomicity), that numbers have no gaps,
 * and that the audit chain verifies. Repeated RSRE_CRASH_KILLS times (default 60) within a
 * time budget; RSRE_CRASH_SEED replays a run (the seed is printed).
 */
#include "store/store.h"

#include "common/error.h"
#include "common/log.h"

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_KILLS 100
#define TIME_BUDGET_S 45.0

/* xorshift64*: small, seedable, identical everywhere. */
static uint64_t rng_state;

static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* --- the writer (child) --------------------------------------------------------------------- */

static void fill_raw(uint8_t *buf, size_t len, uint64_t i) {
    for (size_t j = 0; j < len; j++) {
        buf[j] = (uint8_t)(i * 31 + j);
    }
}

static size_t raw_len(uint64_t i) {
    return (size_t)((i * 2654435761u) % 6000);
}

/* One transaction: incident, approval + vote, evidence, audit record, all for number `i`,
 * which comes from the store's own counter so a restarted writer continues after whatever
 * committed last (acknowledged or not). */
static int write_one(rsre_store *s, uint64_t *i_out, uint64_t *seq_out) {
    static uint8_t raw[6000];
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(s, 0, &txn);
    if (rc != 0) {
        return rc;
    }
    uint64_t i;
    rc = rsre_store_seq_next(txn, "crash", &i);
    char inc_id[32], apr_id[32], ev_id[32], op[16], detail[32], fp[32];
    snprintf(inc_id, sizeof(inc_id), "inc-%llu", (unsigned long long)i);
    snprintf(apr_id, sizeof(apr_id), "apr-%llu", (unsigned long long)i);
    snprintf(ev_id, sizeof(ev_id), "ev-%llu", (unsigned long long)i);
    snprintf(op, sizeof(op), "op-%llu", (unsigned long long)(i % 5));
    snprintf(detail, sizeof(detail), "i=%llu", (unsigned long long)i);
    snprintf(fp, sizeof(fp), "fp-%llu", (unsigned long long)i);
    if (rc == 0) {
        rsre_store_incident inc = ROBOT_SRE__STORE__INCIDENT__INIT;
        inc.id = inc_id;
        inc.fingerprint = fp;
        inc.incident_type = "node_disk_pressure";
        inc.opened_at_ms = (int64_t)i;
        inc.approval_state = ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_PENDING;
        rc = rsre_store_incident_put(txn, &inc, RSRE_STORE_NOOVERWRITE);
    }
    if (rc == 0) {
        rsre_store_approval ap = ROBOT_SRE__STORE__APPROVAL__INIT;
        ap.id = apr_id;
        ap.incident_id = inc_id;
        ap.requester = "robot";
        ap.quorum = 1;
        ap.expires_at_ms = (int64_t)i + 600000;
        rc = rsre_store_approval_put(txn, &ap, RSRE_STORE_NOOVERWRITE);
    }
    if (rc == 0) {
        rsre_store_vote v = ROBOT_SRE__STORE__VOTE__INIT;
        v.operator_ = op;
        v.vote = ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE;
        v.channel = "telegram";
        v.at_ms = (int64_t)i;
        rc = rsre_store_approval_vote_add(txn, apr_id, &v);
    }
    if (rc == 0) {
        rsre_store_evidence ev = ROBOT_SRE__STORE__EVIDENCE__INIT;
        ev.id = ev_id;
        ev.incident_id = inc_id;
        ev.raw.len = raw_len(i);
        fill_raw(raw, ev.raw.len, i);
        ev.raw.data = raw;
        rc = rsre_store_evidence_put(txn, &ev, RSRE_STORE_NOOVERWRITE);
    }
    uint64_t seq = 0;
    if (rc == 0) {
        rc = rsre_store_audit_append(txn, "crash-writer", "incident.open", inc_id, "test", detail,
                                     (int64_t)i, &seq);
    }
    if (rc != 0) {
        rsre_store_txn_abort(txn);
        return rc;
    }
    rc = rsre_store_txn_commit(txn);
    *i_out = i;
    *seq_out = seq;
    return rc;
}

static _Noreturn void writer(const char *dir, int wfd) {
    rsre_store *s;
    int rc = rsre_store_open(dir, NULL, &s);
    if (rc != 0) {
        fprintf(stderr, "writer: open: %s\n", rsre_strerror(rc));
        _exit(3);
    }
    for (;;) {
        uint64_t i, seq;
        rc = write_one(s, &i, &seq);
        if (rc != 0) {
            fprintf(stderr, "writer: transaction: %s\n", rsre_strerror(rc));
            _exit(4);
        }
        /* The commit returned: this is the acknowledgement. One write() of < PIPE_BUF bytes is
         * atomic, so the parent never sees half a line. */
        char line[64];
        int n = snprintf(line, sizeof(line), "%llu %llu\n", (unsigned long long)i,
                         (unsigned long long)seq);
        if (write(wfd, line, (size_t)n) != n) {
            _exit(5);
        }
    }
}

/* --- the checker (parent) ------------------------------------------------------------------- */

struct acked {
    uint64_t *i, *seq;
    size_t n, cap;
};

static void ack_add(struct acked *a, uint64_t i, uint64_t seq) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->i = realloc(a->i, a->cap * sizeof(*a->i));
        a->seq = realloc(a->seq, a->cap * sizeof(*a->seq));
        assert_non_null(a->i);
        assert_non_null(a->seq);
    }
    if (a->n > 0) {
        assert_true(i > a->i[a->n - 1]);
    }
    a->i[a->n] = i;
    a->seq[a->n++] = seq;
}

/* Parses complete lines from buf[0..*len), keeps a partial tail. */
static void parse_acks(char *buf, size_t *len, struct acked *a) {
    size_t start = 0;
    for (size_t p = 0; p < *len; p++) {
        if (buf[p] == '\n') {
            buf[p] = '\0';
            unsigned long long i, seq;
            assert_int_equal(sscanf(buf + start, "%llu %llu", &i, &seq), 2);
            ack_add(a, i, seq);
            start = p + 1;
        }
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

/* Checks everything number `i` wrote; `seq` 0 means "find it by the incident's presence". */
static void check_one(rsre_store_txn *txn, uint64_t i, uint64_t seq) {
    char id[32], op[16], detail[32];
    uint8_t raw[6000];
    snprintf(id, sizeof(id), "inc-%llu", (unsigned long long)i);
    rsre_store_incident *inc;
    assert_int_equal(rsre_store_incident_get(txn, id, &inc), 0);
    assert_int_equal(inc->opened_at_ms, (int64_t)i);
    char fp[32];
    snprintf(fp, sizeof(fp), "fp-%llu", (unsigned long long)i);
    assert_string_equal(inc->fingerprint, fp);
    rsre_store_incident_free(inc);

    snprintf(id, sizeof(id), "apr-%llu", (unsigned long long)i);
    rsre_store_approval *ap;
    assert_int_equal(rsre_store_approval_get(txn, id, &ap), 0);
    assert_int_equal(ap->n_votes, 1);
    snprintf(op, sizeof(op), "op-%llu", (unsigned long long)(i % 5));
    assert_string_equal(ap->votes[0]->operator_, op);
    assert_int_equal(ap->votes[0]->vote, ROBOT_SRE__STORE__VOTE_KIND__VOTE_KIND_APPROVE);
    rsre_store_approval_free(ap);

    char inc_id[32], ev_id[32];
    snprintf(inc_id, sizeof(inc_id), "inc-%llu", (unsigned long long)i);
    snprintf(ev_id, sizeof(ev_id), "ev-%llu", (unsigned long long)i);
    rsre_store_evidence *ev;
    assert_int_equal(rsre_store_evidence_get(txn, inc_id, ev_id, &ev), 0);
    assert_int_equal(ev->raw.len, raw_len(i));
    fill_raw(raw, raw_len(i), i);
    assert_memory_equal(ev->raw.data, raw, raw_len(i));
    rsre_store_evidence_free(ev);

    if (seq != 0) {
        rsre_store_audit *a;
        assert_int_equal(rsre_store_audit_get(txn, seq, &a), 0);
        assert_string_equal(a->object, inc_id);
        snprintf(detail, sizeof(detail), "i=%llu", (unsigned long long)i);
        assert_string_equal(a->detail, detail);
        rsre_store_audit_free(a);
    }
}

struct census {
    uint64_t n;
};

static int count_incidents(const rsre_store_incident *rec, void *ud) {
    (void)rec;
    ((struct census *)ud)->n++;
    return 0;
}

static int count_approvals(const rsre_store_approval *rec, void *ud) {
    (void)rec;
    ((struct census *)ud)->n++;
    return 0;
}

/* Every number from 1 to the counter is complete: incident, approval, evidence, audit. */
static int check_audit_rec(const rsre_store_audit *a, void *ud) {
    rsre_store_txn *txn = ud;
    unsigned long long i;
    assert_int_equal(sscanf(a->detail, "i=%llu", &i), 1);
    check_one(txn, i, a->seq);
    return 0;
}

static void verify_store(const char *dir, const struct acked *acks, uint64_t *committed) {
    rsre_store *s;
    assert_int_equal(rsre_store_open(dir, NULL, &s), 0);

    struct rsre_store_audit_report rep;
    int rc = rsre_store_audit_verify(s, &rep);
    if (rc != 0) {
        print_error("audit verify: %s broken_seq=%llu %s\n", rsre_strerror(rc),
                    (unsigned long long)rep.broken_seq, rep.reason);
    }
    assert_int_equal(rc, 0);

    /* The counter's committed value, read by taking the next number and giving it back. */
    rsre_store_txn *txn;
    uint64_t next;
    assert_int_equal(rsre_store_txn_begin(s, 0, &txn), 0);
    assert_int_equal(rsre_store_seq_next(txn, "crash", &next), 0);
    rsre_store_txn_abort(txn);
    uint64_t total = next - 1;

    assert_int_equal(rsre_store_txn_begin(s, 1, &txn), 0);
    /* Acknowledged ones are present and intact. */
    for (size_t k = 0; k < acks->n; k++) {
        assert_true(acks->i[k] <= total);
        check_one(txn, acks->i[k], acks->seq[k]);
    }
    /* Nothing partial: counts agree and every audit record's transaction is whole. Only the
     * records added since the last check need the deep look. */
    struct census incs = {0}, aprs = {0};
    assert_int_equal(rsre_store_incident_foreach(txn, count_incidents, &incs), 0);
    assert_int_equal(rsre_store_approval_foreach(txn, count_approvals, &aprs), 0);
    assert_int_equal(incs.n, total);
    assert_int_equal(aprs.n, total);
    assert_int_equal(rep.count, total);
    assert_int_equal(rsre_store_audit_foreach(txn, *committed + 1, check_audit_rec, txn), 0);
    rsre_store_txn_abort(txn);
    rsre_store_close(s);
    *committed = total;
}

static void test_kill9_loses_nothing(void **state) {
    (void)state;
    const char *seed_env = getenv("RSRE_CRASH_SEED");
    const char *kills_env = getenv("RSRE_CRASH_KILLS");
    uint64_t seed =
        seed_env ? strtoull(seed_env, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    int kills = kills_env ? atoi(kills_env) : DEFAULT_KILLS;
    rng_state = seed ? seed : 1;
    print_message("store crash test: seed=%llu kills=%d (replay with RSRE_CRASH_SEED=%llu)\n",
                  (unsigned long long)seed, kills, (unsigned long long)seed);

    char dir[] = "/tmp/rsre-test-crash-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct acked acks = {0};
    uint64_t committed = 0;
    int done = 0, silent = 0;
    double t0 = now_s();
    for (; done < kills && now_s() - t0 < TIME_BUDGET_S; done++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            writer(dir, fds[1]);
        }
        close(fds[1]);

        /* Kill early (during open), mid-stream, or after a longer run. */
        uint64_t r = rng() % 100;
        double delay_ms = r < 10   ? (double)(rng() % 1000) / 1000.0
                          : r < 70 ? 1 + (double)(rng() % 29000) / 1000.0
                                   : 30 + (double)(rng() % 90000) / 1000.0;
        char buf[8192];
        size_t len = 0;
        size_t before = acks.n;
        double kill_at = now_s() + delay_ms / 1000.0;
        for (;;) {
            double left = kill_at - now_s();
            if (left <= 0) {
                break;
            }
            struct pollfd p = {.fd = fds[0], .events = POLLIN};
            int timeout = (int)(left * 1000.0);
            if (poll(&p, 1, timeout) > 0 && (p.revents & (POLLIN | POLLHUP))) {
                ssize_t n = read(fds[0], buf + len, sizeof(buf) - len - 1);
                if (n <= 0) {
                    break;
                }
                len += (size_t)n;
                parse_acks(buf, &len, &acks);
            }
        }
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            print_error("writer exited on its own: status=%d\n", status);
            fail();
        }
        /* Drain what it acknowledged before dying. */
        for (;;) {
            ssize_t n = read(fds[0], buf + len, sizeof(buf) - len - 1);
            if (n <= 0) {
                break;
            }
            len += (size_t)n;
            parse_acks(buf, &len, &acks);
        }
        close(fds[0]);
        if (acks.n == before) {
            silent++;
        }
        verify_store(dir, &acks, &committed);
    }
    print_message("store crash test: kills=%d committed=%llu acknowledged=%zu "
                  "kills_before_first_ack=%d elapsed=%.1fs\n",
                  done, (unsigned long long)committed, acks.n, silent, now_s() - t0);
    assert_true(done >= 50 || done == kills);
    assert_true(acks.n > 0);
    free(acks.i);
    free(acks.seq);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
    rsre_log_set_level_name(getenv("RSRE_TEST_LOG") ? getenv("RSRE_TEST_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
