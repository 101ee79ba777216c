/*
 * Unit tests of aggregator/approvals on a real LMDB store in a temp dir: the operator registry,
 * the spec's approval prompt, every vote refusal (unknown, disabled, viewer/operator roles,
 * chat identity, self-approval, expired, decided, duplicate), quorum, deny, expiry, the
 * execution-time re-check (incident resolved, cooldown, rule tightened to human-only, quorum
 * raised, role revoked, confidence dropped), the audit records of all of it, and a randomized
 * attack on safety invariant 1.
 */
#include "approvals/approvals.h"
#include "approvals/operators.h"

#include "common/error.h"
#include "common/log.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "engine/taxonomy.h"
#include "store/store.h"

/* cmocka needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define APS(x) ROBOT_SRE__STORE__APPROVAL_STATE__APPROVAL_STATE_##x
#define AST(x) ROBOT_SRE__STORE__ACTION_STATE__ACTION_STATE_##x

#define T0 1700000000000LL /* ms */
#define MIN (60 * 1000LL)

static const char operators_yaml[] =
    "operators:\n"
    "  - {id: alice, name: Alice Example, roles: [approver], telegram_user_id: 1001,\n"
    "     whatsapp_number: \"+15550001001\"}\n"
    "  - {id: bob, roles: [operator, approver], telegram_user_id: 1002}\n"
    "  - {id: carol, roles: [admin]}\n"
    "  - {id: dave, roles: [operator]}\n"
    "  - {id: erin, roles: [viewer]}\n"
    "  - {id: frank, roles: [approver], enabled: false}\n";

/* --- fixture --------------------------------------------------------------------------------- */

struct fx {
    char dir[64];
    rsre_store *store;
    struct rsre_operators *ops;
    struct rsre_approvals *ap;
    const struct rsre_taxonomy *t;
    const struct rsre_incident_def *ndp;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/rsre-test-approvals-XXXXXX");
    if (!f || !mkdtemp(f->dir) || rsre_store_open(f->dir, NULL, &f->store) != 0) {
        return -1;
    }
    struct rsre_yerr err;
    if (rsre_operators_load(operators_yaml, sizeof(operators_yaml) - 1, &f->ops, &err) != 0) {
        fprintf(stderr, "operators: %d:%d: %s\n", err.line, err.col, err.msg);
        return -1;
    }
    struct rsre_approvals_config cfg = {f->ops, NULL, 0};
    if (rsre_approvals_create(&cfg, &f->ap) != 0) {
        return -1;
    }
    f->t = rsre_taxonomy_builtin();
    f->ndp = rsre_taxonomy_incident(f->t, "node_disk_pressure");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    rsre_approvals_destroy(f->ap);
    rsre_operators_destroy(f->ops);
    rsre_store_close(f->store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static rsre_store_txn *begin(struct fx *f) {
    rsre_store_txn *txn = NULL;
    assert_int_equal(rsre_store_txn_begin(f->store, 0, &txn), 0);
    return txn;
}

static void commit(rsre_store_txn *txn) {
    assert_int_equal(rsre_store_txn_commit(txn), 0);
}

static void decide(struct fx *f, const char *action, enum rsre_env env,
                   const struct rsre_ruleset *rules, struct rsre_decision *d) {
    struct rsre_policy_request req = {f->t,  f->ndp,         rsre_taxonomy_action(f->t, action),
                                      env,   RSRE_CONF_HIGH, "10.0.10.202",
                                      rules, T0 / 1000,      0};
    rsre_policy_decide(&req, d);
}

/* Requests `action` on `target` with the policy's decision for `env`; returns the id (static
 * buffer, copied by callers that need two). */
static const char *request(struct fx *f, rsre_store_txn *txn, const char *action,
                           const char *target, enum rsre_env env, const char *requester,
                           const char *record, int64_t now) {
    static char id[RSRE_STORE_ID_MAX + 1];
    struct rsre_decision d;
    decide(f, action, env, NULL, &d);
    assert_int_equal(d.verdict, RSRE_VERDICT_APPROVAL);
    struct rsre_approval_request req = {
        .incident_id = "inc-1",
        .action_record_id = record,
        .action = rsre_taxonomy_action(f->t, action),
        .target = target,
        .decision = &d,
        .why_now = "disk pressure persists after cleanup for 17m",
        .expected_impact = "pods on that node will reschedule",
        .rollback = "replace worker from node pool if reboot does not clear pressure",
        .requester = requester,
        .now_ms = now,
    };
    rsre_store_approval *rec = NULL;
    int created = -1;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &req, &rec, &created), 0);
    assert_non_null(rec);
    snprintf(id, sizeof(id), "%s", rec->id);
    rsre_store_approval_free(rec);
    return id;
}

static struct rsre_vote_outcome vote(struct fx *f, rsre_store_txn *txn, const char *id,
                                     const char *op, enum rsre_vote v, enum rsre_channel ch,
                                     int64_t now) {
    struct rsre_vote_outcome o;
    assert_int_equal(rsre_approvals_vote(f->ap, txn, id, op, v, ch, NULL, now, &o), 0);
    return o;
}

static rsre_store_approval *get(rsre_store_txn *txn, const char *id) {
    rsre_store_approval *rec = NULL;
    assert_int_equal(rsre_store_approval_get(txn, id, &rec), 0);
    return rec;
}

static int state_of(rsre_store_txn *txn, const char *id) {
    rsre_store_approval *rec = get(txn, id);
    int s = (int)rec->state;
    rsre_store_approval_free(rec);
    return s;
}

/* Checks the audit record an outcome points at. */
static void assert_audit(rsre_store_txn *txn, uint64_t seq, const char *actor, const char *verb,
                         const char *object, const char *reason, const char *detail_has) {
    rsre_store_audit *a = NULL;
    assert_true(seq > 0);
    assert_int_equal(rsre_store_audit_get(txn, seq, &a), 0);
    assert_string_equal(a->actor, actor);
    assert_string_equal(a->verb, verb);
    assert_string_equal(a->object, object);
    if (reason) {
        assert_string_equal(a->reason, reason);
    }
    assert_true(a->reason[0] != '\0');
    if (detail_has && !strstr(a->detail, detail_has)) {
        fail_msg("audit %llu detail '%s' lacks '%s'", (unsigned long long)seq, a->detail,
                 detail_has);
    }
    rsre_store_audit_free(a);
}

static void assert_chain(struct fx *f) {
    struct rsre_store_audit_report rep;
    assert_int_equal(rsre_store_audit_verify(f->store, &rep), 0);
    assert_true(rep.count > 0);
}

/* --- operators ------------------------------------------------------------------------------- */

static void test_operators_registry(void **state) {
    struct fx *f = *state;
    assert_int_equal(rsre_operators_count(f->ops), 6);
    const struct rsre_operator *a = rsre_operators_find(f->ops, "alice");
    assert_non_null(a);
    assert_string_equal(a->name, "Alice Example");
    assert_true(rsre_operator_may_approve(a));
    assert_false(rsre_operator_has_role(a, RSRE_ROLE_OPERATOR));
    assert_ptr_equal(rsre_operators_find_chat(f->ops, RSRE_CHAT_TELEGRAM, "1001"), a);
    assert_ptr_equal(rsre_operators_find_chat(f->ops, RSRE_CHAT_WHATSAPP, "+15550001001"), a);
    assert_ptr_equal(rsre_operators_find_chat(f->ops, RSRE_CHAT_WHATSAPP, "15550001001"), a);
    assert_null(rsre_operators_find_chat(f->ops, RSRE_CHAT_TELEGRAM, "15550001001"));
    assert_null(rsre_operators_find_chat(f->ops, RSRE_CHAT_TELEGRAM, "alice"));
    assert_null(rsre_operators_find_chat(f->ops, RSRE_CHAT_TELEGRAM, "01001"));
    assert_null(rsre_operators_find_chat(f->ops, RSRE_CHAT_TELEGRAM, NULL));
    assert_null(rsre_operators_find(f->ops, "Alice"));
    assert_null(rsre_operators_find(f->ops, "robot-sre"));
    /* admin holds every role; viewer and operator may not approve; disabled holds nothing */
    assert_true(rsre_operator_may_approve(rsre_operators_find(f->ops, "carol")));
    assert_false(rsre_operator_may_approve(rsre_operators_find(f->ops, "dave")));
    assert_true(rsre_operator_has_role(rsre_operators_find(f->ops, "dave"), RSRE_ROLE_OPERATOR));
    assert_false(rsre_operator_may_approve(rsre_operators_find(f->ops, "erin")));
    assert_false(rsre_operator_may_approve(rsre_operators_find(f->ops, "frank")));
    assert_false(rsre_operator_has_role(rsre_operators_find(f->ops, "frank"), RSRE_ROLE_VIEWER));
    assert_false(rsre_operator_may_approve(NULL));

    static const struct {
        const char *yaml;
        int rc;
        const char *msg;
    } bad[] = {
        {"operators:\n  - {id: a, roles: [approver], telegram: 5}\n", RSRE_EINVALID, "unknown key"},
        {"operators:\n  - {id: a, roles: [superuser]}\n", RSRE_EINVALID, "unknown role"},
        {"operators:\n  - {id: a, roles: []}\n", RSRE_EINVALID, "roles"},
        {"operators:\n  - {id: a}\n", RSRE_EINVALID, "roles"},
        {"operators:\n  - {roles: [viewer]}\n", RSRE_EINVALID, "missing 'id'"},
        {"operators:\n  - {id: a, roles: [viewer]}\n  - {id: a, roles: [admin]}\n", RSRE_EEXIST,
         "duplicate"},
        {"operators:\n  - {id: a, roles: [viewer], telegram_user_id: 7}\n"
         "  - {id: b, roles: [admin], telegram_user_id: 7}\n",
         RSRE_EEXIST, "already mapped"},
        {"operators:\n  - {id: a, roles: [viewer], whatsapp_number: \"+4912345678\"}\n"
         "  - {id: b, roles: [admin], whatsapp_number: \"4912345678\"}\n",
         RSRE_EEXIST, "already mapped"},
        {"operators:\n  - {id: robot-sre, roles: [admin]}\n", RSRE_EINVALID, "reserved"},
        {"operators:\n  - {id: \"a b\", roles: [admin]}\n", RSRE_EINVALID, "id"},
        {"operators:\n  - {id: a, roles: [admin], telegram_user_id: \"@alice\"}\n", RSRE_EINVALID,
         "telegram_user_id"},
        {"operators:\n  - {id: a, roles: [admin], whatsapp_number: \"555-1234\"}\n", RSRE_EINVALID,
         "whatsapp_number"},
        {"operators:\n  - {id: a, roles: [admin], enabled: maybe}\n", RSRE_EINVALID, "enabled"},
        {"users:\n  - {id: a, roles: [admin]}\n", RSRE_EINVALID, "unknown key"},
        {"operators: {id: a}\n", RSRE_EINVALID, "list"},
        {"operators: [\n", RSRE_EPARSE, NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rsre_operators *ops = NULL;
        struct rsre_yerr err;
        int rc = rsre_operators_load(bad[i].yaml, strlen(bad[i].yaml), &ops, &err);
        if (rc != bad[i].rc || ops || (bad[i].msg && !strstr(err.msg, bad[i].msg))) {
            fail_msg("case %zu: rc %d (%s) msg '%s'", i, rc, rsre_strerror(rc), err.msg);
        }
        assert_true(err.line > 0 || bad[i].rc == RSRE_EPARSE);
    }
    /* An empty registry loads; no one may approve. */
    struct rsre_operators *empty = NULL;
    assert_int_equal(rsre_operators_load("operators: []\n", 14, &empty, NULL), 0);
    assert_int_equal(rsre_operators_count(empty), 0);
    rsre_operators_destroy(empty);

    /* From a file. */
    char path[128];
    snprintf(path, sizeof(path), "%s/operators.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(operators_yaml, fp);
    fclose(fp);
    struct rsre_operators *ops = NULL;
    assert_int_equal(rsre_operators_load_file(path, &ops, NULL), 0);
    assert_int_equal(rsre_operators_count(ops), 6);
    rsre_operators_destroy(ops);
    struct rsre_yerr err;
    assert_int_equal(rsre_operators_load_file("/nonexistent/ops.yaml", &ops, &err), -ENOENT);
    rsre_operators_destroy(NULL);
}

/* --- requests and the prompt ----------------------------------------------------------------- */

static void test_prompt_spec_example(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, "robot-sre", NULL,
                     T0));
    rsre_store_approval *rec = get(txn, id);
    assert_string_equal(
        rec->prompt,
        "Robot SRE requests approval: reboot worker 10.0.10.202. Reason: disk pressure persists "
        "after cleanup for 17m. Expected impact: pods on that node will reschedule. "
        "Rollback/fallback: replace worker from node pool if reboot does not clear pressure. "
        "Approval expires in 10m.");
    assert_string_equal(rec->action, "reboot_worker");
    assert_string_equal(rec->target, "10.0.10.202");
    assert_string_equal(rec->why_now, "disk pressure persists after cleanup for 17m");
    assert_string_equal(rec->expected_impact, "pods on that node will reschedule");
    assert_string_equal(rec->rollback,
                        "replace worker from node pool if reboot does not clear pressure");
    assert_string_equal(rec->requester, "robot-sre");
    assert_int_equal(rec->quorum, 2); /* disruptive in production */
    assert_int_equal(rec->state, APS(PENDING));
    assert_int_equal(rec->requested_at_ms, T0);
    assert_int_equal(rec->expires_at_ms, T0 + 10 * MIN);
    rsre_store_approval_free(rec);

    /* The identical pending request is the same approval; another target is a new one. */
    assert_string_equal(request(f, txn, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION,
                                "robot-sre", NULL, T0 + MIN),
                        id);
    assert_string_not_equal(request(f, txn, "reboot_worker", "10.0.10.203", RSRE_ENV_PRODUCTION,
                                    "robot-sre", NULL, T0 + MIN),
                            id);
    /* ... and so is one after the first expired. */
    assert_string_not_equal(request(f, txn, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION,
                                    "robot-sre", NULL, T0 + 11 * MIN),
                            id);
    /* The request is audited with its prompt. */
    rsre_store_audit *a = NULL;
    assert_int_equal(rsre_store_audit_get(txn, 1, &a), 0);
    assert_string_equal(a->actor, "robot-sre");
    assert_string_equal(a->verb, "approval.request");
    assert_string_equal(a->object, id);
    assert_non_null(strstr(a->reason, "Approval expires in 10m."));
    rsre_store_audit_free(a);
    commit(txn);

    /* Rendering details: trailing periods trimmed, other expiries. */
    char buf[RSRE_APPROVAL_PROMPT_MAX];
    rsre_approvals_render_prompt(rsre_taxonomy_action(f->t, "cordon_node"), "node-a", "why.",
                                 "impact. ", "rollback...", 90 * 60 * 1000, buf, sizeof(buf));
    assert_string_equal(buf, "Robot SRE requests approval: cordon node node-a. Reason: why. "
                             "Expected impact: impact. Rollback/fallback: rollback. Approval "
                             "expires in 1h30m.");
    assert_string_equal(rsre_approvals_action_words(rsre_taxonomy_action(f->t, "helm_reconcile")),
                        rsre_taxonomy_action(f->t, "helm_reconcile")->label);
    assert_chain(f);
}

static void test_request_refusals(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    struct rsre_decision d;
    decide(f, "reboot_worker", RSRE_ENV_STAGING, NULL, &d);
    struct rsre_approval_request ok = {
        .incident_id = "inc-1",
        .action = rsre_taxonomy_action(f->t, "reboot_worker"),
        .target = "node-a",
        .decision = &d,
        .why_now = "why",
        .expected_impact = "impact",
        .rollback = "rollback",
        .requester = "robot-sre",
        .now_ms = T0,
    };
    struct rsre_approval_request r;
    rsre_store_approval *rec = NULL;

    /* Human-only actions can never be requested, whatever decision the caller hands in. */
    struct rsre_decision forged = d;
    forged.verdict = RSRE_VERDICT_APPROVAL;
    r = ok;
    r.action = rsre_taxonomy_action(f->t, "delete_persistent_data");
    r.decision = &forged;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, &rec, NULL), RSRE_EBOUNDARY);
    assert_null(rec);
    struct rsre_decision human = d, autod = d, denied = d;
    human.verdict = RSRE_VERDICT_HUMAN_ONLY;
    autod.verdict = RSRE_VERDICT_AUTO;
    denied.verdict = RSRE_VERDICT_DENIED;
    const struct rsre_decision *notok[] = {&human, &autod, &denied};
    for (size_t i = 0; i < 3; i++) {
        r = ok;
        r.decision = notok[i];
        assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EBOUNDARY);
    }
    /* Every part is required, bounded and clean. */
    char big[RSRE_APPROVAL_TEXT_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    static const char *const bad_text[] = {
        NULL, "", "  . ", "line\nbreak", "bell\a", "bad \xff utf8", "overlong \xc0\xaf"};
    for (size_t field = 0; field < 3; field++) {
        for (size_t i = 0; i < sizeof(bad_text) / sizeof(bad_text[0]); i++) {
            r = ok;
            const char **p = field == 0   ? &r.why_now
                             : field == 1 ? &r.expected_impact
                                          : &r.rollback;
            *p = bad_text[i];
            assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EINVALID);
        }
        r = ok;
        *(field == 0 ? &r.why_now : field == 1 ? &r.expected_impact : &r.rollback) = big;
        assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_ELIMIT);
    }
    const char *bad_targets[] = {NULL, "", "node a", "node\n"};
    for (size_t i = 0; i < 4; i++) {
        r = ok;
        r.target = bad_targets[i];
        assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EINVALID);
    }
    r = ok;
    r.incident_id = NULL;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EINVALID);
    r = ok;
    r.action = NULL;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EINVALID);
    /* Requesters: the robot or a configured operator with the operator role. */
    const char *bad_req[] = {NULL, "", "mallory", "erin", "alice", "frank"};
    for (size_t i = 0; i < sizeof(bad_req) / sizeof(bad_req[0]); i++) {
        r = ok;
        r.requester = bad_req[i];
        assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EINVALID);
    }
    r = ok;
    r.expiry_ms = 1000;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EINVALID);
    r.expiry_ms = 48 * 3600 * 1000LL;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, NULL, NULL), RSRE_EINVALID);
    /* Nothing was stored by any of that. */
    struct rsre_store_info info;
    commit(txn);
    assert_int_equal(rsre_store_info(f->store, &info), 0);
    assert_int_equal(info.approvals, 0);
    assert_int_equal(info.audit, 0);

    /* An operator may request; quorum is raised (never lowered) for the same request. */
    txn = begin(f);
    r = ok;
    r.requester = "dave";
    int created = 0;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, &rec, &created), 0);
    assert_int_equal(created, 1);
    assert_int_equal(rec->quorum, 1);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", rec->id);
    rsre_store_approval_free(rec);
    struct rsre_decision more = d;
    more.quorum = 3;
    r.decision = &more;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, &rec, &created), 0);
    assert_int_equal(created, 0);
    assert_string_equal(rec->id, id);
    assert_int_equal(rec->quorum, 3);
    rsre_store_approval_free(rec);
    r.decision = &d;
    assert_int_equal(rsre_approvals_request(f->ap, txn, &r, &rec, &created), 0);
    assert_int_equal(rec->quorum, 3);
    rsre_store_approval_free(rec);
    commit(txn);
}

/* --- votes ----------------------------------------------------------------------------------- */

static void test_self_approval_refused(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    /* bob is operator and approver: he may request, and may not approve his own request. */
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "cordon_node", "node-a", RSRE_ENV_STAGING, "bob", NULL, T0));
    struct rsre_vote_outcome o = vote(f, txn, id, "bob", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0);
    assert_int_equal(o.refusal, RSRE_REFUSE_SELF_APPROVAL);
    assert_int_equal(o.err, RSRE_EBOUNDARY);
    assert_false(o.execute);
    assert_non_null(strstr(o.reason, "self-approval"));
    assert_audit(txn, o.audit_seq, "bob", "approval.vote.refused", id, o.reason,
                 "refusal=self_approval vote=approve channel=api");
    /* Not through chat either, and not by denying. */
    assert_int_equal(rsre_approvals_vote_chat(f->ap, txn, id, RSRE_CHAT_TELEGRAM, "1002",
                                              RSRE_VOTE_APPROVE, NULL, T0, &o),
                     0);
    assert_int_equal(o.refusal, RSRE_REFUSE_SELF_APPROVAL);
    assert_audit(txn, o.audit_seq, "bob", "approval.vote.refused", id, NULL, "channel=telegram");
    o = vote(f, txn, id, "bob", RSRE_VOTE_DENY, RSRE_CHANNEL_INAPP, T0);
    assert_int_equal(o.refusal, RSRE_REFUSE_SELF_APPROVAL);
    assert_int_equal(state_of(txn, id), APS(PENDING));
    /* Another approver decides it (quorum 1 in staging). */
    o = vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 1000);
    assert_int_equal(o.refusal, RSRE_REFUSE_NONE);
    assert_true(o.execute);
    assert_int_equal(o.state, APS(APPROVED));
    commit(txn);
    assert_chain(f);
}

static void test_roles_and_identities_refused(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "cordon_node", "node-a", RSRE_ENV_STAGING, "robot-sre", NULL, T0));
    static const struct {
        const char *op;
        enum rsre_channel ch;
        enum rsre_vote_refusal why;
        int err;
        const char *actor;
    } cases[] = {
        {"erin", RSRE_CHANNEL_API, RSRE_REFUSE_NOT_APPROVER, RSRE_EBOUNDARY, "erin"},
        {"dave", RSRE_CHANNEL_INAPP, RSRE_REFUSE_NOT_APPROVER, RSRE_EBOUNDARY, "dave"},
        {"frank", RSRE_CHANNEL_API, RSRE_REFUSE_DISABLED, RSRE_EBOUNDARY, "frank"},
        {"mallory", RSRE_CHANNEL_API, RSRE_REFUSE_UNKNOWN_OPERATOR, RSRE_ENOTFOUND, "mallory"},
        {"robot-sre", RSRE_CHANNEL_API, RSRE_REFUSE_UNKNOWN_OPERATOR, RSRE_ENOTFOUND, "robot-sre"},
        {"ALICE", RSRE_CHANNEL_API, RSRE_REFUSE_UNKNOWN_OPERATOR, RSRE_ENOTFOUND, "ALICE"},
        {"", RSRE_CHANNEL_API, RSRE_REFUSE_UNKNOWN_OPERATOR, RSRE_ENOTFOUND, "(none)"},
        {NULL, RSRE_CHANNEL_API, RSRE_REFUSE_UNKNOWN_OPERATOR, RSRE_ENOTFOUND, "(none)"},
        {"alice\n", RSRE_CHANNEL_API, RSRE_REFUSE_UNKNOWN_OPERATOR, RSRE_ENOTFOUND, "alice?"},
        /* carol (admin) has no WhatsApp identity: a WhatsApp vote cannot be hers */
        {"carol", RSRE_CHANNEL_WHATSAPP, RSRE_REFUSE_CHANNEL, RSRE_EBOUNDARY, "carol"},
        {"bob", RSRE_CHANNEL_WHATSAPP, RSRE_REFUSE_CHANNEL, RSRE_EBOUNDARY, "bob"},
        {"alice", (enum rsre_channel)9, RSRE_REFUSE_INVALID, RSRE_EINVALID, "alice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rsre_vote_outcome o =
            vote(f, txn, id, cases[i].op, RSRE_VOTE_APPROVE, cases[i].ch, T0 + 1000);
        if (o.refusal != cases[i].why || o.err != cases[i].err) {
            fail_msg("case %zu: refusal %s err %d: %s", i, rsre_vote_refusal_name(o.refusal), o.err,
                     o.reason);
        }
        assert_false(o.execute);
        assert_audit(txn, o.audit_seq, cases[i].actor, "approval.vote.refused", id, o.reason,
                     "channel=");
    }
    /* Unknown approval ids, hostile ones included. */
    struct rsre_vote_outcome o =
        vote(f, txn, "apr-999", "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0);
    assert_int_equal(o.refusal, RSRE_REFUSE_UNKNOWN_APPROVAL);
    assert_int_equal(o.err, RSRE_ENOTFOUND);
    assert_audit(txn, o.audit_seq, "alice", "approval.vote.refused", "apr-999", NULL,
                 "refusal=unknown_approval");
    o = vote(f, txn, "apr-1\x01../../x", "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0);
    assert_int_equal(o.refusal, RSRE_REFUSE_INVALID);
    assert_audit(txn, o.audit_seq, "alice", "approval.vote.refused", "apr-1?../../x", NULL, NULL);
    o = vote(f, txn, id, "alice", (enum rsre_vote)0, RSRE_CHANNEL_API, T0);
    assert_int_equal(o.refusal, RSRE_REFUSE_INVALID);
    assert_int_equal(rsre_approvals_vote(f->ap, txn, id, "alice", RSRE_VOTE_APPROVE,
                                         RSRE_CHANNEL_API, "comment\nwith newline", T0, &o),
                     0);
    assert_int_equal(o.refusal, RSRE_REFUSE_INVALID);

    /* Chat: a mapped Telegram user is alice; an unmapped one is nobody. */
    assert_int_equal(rsre_approvals_vote_chat(f->ap, txn, id, RSRE_CHAT_TELEGRAM, "9999",
                                              RSRE_VOTE_APPROVE, NULL, T0, &o),
                     0);
    assert_int_equal(o.refusal, RSRE_REFUSE_UNKNOWN_OPERATOR);
    assert_audit(txn, o.audit_seq, "telegram:9999", "approval.vote.refused", id, NULL,
                 "channel=telegram chat_user=9999");
    assert_int_equal(rsre_approvals_vote_chat(f->ap, txn, id, RSRE_CHAT_WHATSAPP, "+1555<b>",
                                              RSRE_VOTE_APPROVE, NULL, T0, &o),
                     0);
    assert_int_equal(o.refusal, RSRE_REFUSE_UNKNOWN_OPERATOR);
    assert_audit(txn, o.audit_seq, "whatsapp:+1555<b>", "approval.vote.refused", id, NULL,
                 "channel=whatsapp");
    assert_int_equal(state_of(txn, id), APS(PENDING));
    rsre_store_approval *rec = get(txn, id);
    assert_int_equal(rec->n_votes, 0);
    rsre_store_approval_free(rec);

    assert_int_equal(rsre_approvals_vote_chat(f->ap, txn, id, RSRE_CHAT_WHATSAPP, "15550001001",
                                              RSRE_VOTE_APPROVE, "ok from my phone", T0 + 2000, &o),
                     0);
    assert_int_equal(o.refusal, RSRE_REFUSE_NONE);
    assert_true(o.execute);
    assert_audit(txn, o.audit_seq, "alice", "approval.vote", id, o.reason,
                 "vote=approve channel=whatsapp chat_user=15550001001");
    rec = get(txn, id);
    assert_int_equal(rec->n_votes, 1);
    assert_string_equal(rec->votes[0]->operator_, "alice");
    assert_string_equal(rec->votes[0]->channel, "whatsapp");
    assert_string_equal(rec->votes[0]->comment, "ok from my phone");
    assert_int_equal(rec->votes[0]->at_ms, T0 + 2000);
    rsre_store_approval_free(rec);
    commit(txn);
    assert_chain(f);
}

static void test_expired_refused(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    char id[RSRE_STORE_ID_MAX + 1], other[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "cordon_node", "node-a", RSRE_ENV_STAGING, "robot-sre", "act-1", T0));
    snprintf(other, sizeof(other), "%s",
             request(f, txn, "cordon_node", "node-b", RSRE_ENV_STAGING, "robot-sre", NULL,
                     T0 + 5 * MIN));
    rsre_store_action act = ROBOT_SRE__STORE__ACTION_RECORD__INIT;
    act.id = "act-1";
    act.incident_id = "inc-1";
    act.action_id = "cordon_node";
    act.target = "node-a";
    act.state = AST(AWAITING_APPROVAL);
    act.approval_id = id;
    assert_int_equal(rsre_store_action_put(txn, &act, 0), 0);
    /* A vote one millisecond before the expiry counts; at the expiry it does not. */
    struct rsre_vote_outcome o =
        vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 10 * MIN);
    assert_int_equal(o.refusal, RSRE_REFUSE_EXPIRED);
    assert_int_equal(o.err, RSRE_ETRANSITION);
    assert_true(o.escalate);
    assert_false(o.execute);
    assert_string_equal(o.incident_id, "inc-1");
    assert_int_equal(o.state, APS(EXPIRED));
    assert_audit(txn, o.audit_seq, "alice", "approval.vote.refused", id, NULL,
                 "refusal=expired vote=approve channel=api");
    assert_audit(txn, o.audit_seq - 1, "robot-sre", "approval.expire", id, NULL, "inc-1");
    rsre_store_action *a = NULL;
    assert_int_equal(rsre_store_action_get(txn, "act-1", &a), 0);
    assert_int_equal(a->state, AST(EXPIRED));
    rsre_store_action_free(a);
    /* Once expired, it stays expired; only the first finder escalates. */
    o = vote(f, txn, id, "bob", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 1000);
    assert_int_equal(o.refusal, RSRE_REFUSE_EXPIRED);
    assert_false(o.escalate);
    assert_int_equal(state_of(txn, id), APS(EXPIRED));
    o = vote(f, txn, other, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 15 * MIN - 1);
    assert_int_equal(o.refusal, RSRE_REFUSE_NONE);
    assert_true(o.execute);
    commit(txn);

    /* The sweep expires what is due, once. */
    txn = begin(f);
    char third[RSRE_STORE_ID_MAX + 1];
    snprintf(third, sizeof(third), "%s",
             request(f, txn, "cordon_node", "node-c", RSRE_ENV_STAGING, "robot-sre", NULL, T0));
    snprintf(other, sizeof(other), "%s",
             request(f, txn, "reboot_worker", "node-c", RSRE_ENV_STAGING, "robot-sre", NULL,
                     T0 + 5 * MIN));
    struct rsre_approval_list l;
    assert_int_equal(rsre_approvals_expire(f->ap, txn, T0 + 10 * MIN, &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0]->id, third);
    assert_int_equal(l.v[0]->state, APS(EXPIRED));
    rsre_approval_list_free(&l);
    assert_int_equal(rsre_approvals_expire(f->ap, txn, T0 + 10 * MIN, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(state_of(txn, other), APS(PENDING));
    assert_int_equal(rsre_approvals_expire(f->ap, txn, T0 + 15 * MIN, NULL), 0);
    assert_int_equal(state_of(txn, other), APS(EXPIRED));
    commit(txn);
    assert_chain(f);
}

static void test_duplicate_vote_refused(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, "robot-sre", NULL,
                     T0));
    struct rsre_vote_outcome o =
        vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 1000);
    assert_int_equal(o.refusal, RSRE_REFUSE_NONE);
    assert_int_equal(o.approvals, 1);
    assert_false(o.execute);
    /* The same operator again — other channel, chat identity, or a change of mind. */
    o = vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_INAPP, T0 + 2000);
    assert_int_equal(o.refusal, RSRE_REFUSE_DUPLICATE);
    assert_int_equal(o.err, RSRE_EEXIST);
    assert_int_equal(o.approvals, 1);
    assert_false(o.execute);
    assert_audit(txn, o.audit_seq, "alice", "approval.vote.refused", id, NULL,
                 "refusal=duplicate_vote vote=approve channel=inapp");
    assert_int_equal(rsre_approvals_vote_chat(f->ap, txn, id, RSRE_CHAT_TELEGRAM, "1001",
                                              RSRE_VOTE_APPROVE, NULL, T0 + 3000, &o),
                     0);
    assert_int_equal(o.refusal, RSRE_REFUSE_DUPLICATE);
    o = vote(f, txn, id, "alice", RSRE_VOTE_DENY, RSRE_CHANNEL_API, T0 + 4000);
    assert_int_equal(o.refusal, RSRE_REFUSE_DUPLICATE);
    assert_int_equal(state_of(txn, id), APS(PENDING));
    rsre_store_approval *rec = get(txn, id);
    assert_int_equal(rec->n_votes, 1);
    rsre_store_approval_free(rec);
    commit(txn);
}

static void test_quorum_two_distinct_approvers(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, "robot-sre", NULL,
                     T0));
    struct rsre_vote_outcome o =
        vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_TELEGRAM, T0 + 1000);
    assert_int_equal(o.refusal, RSRE_REFUSE_NONE);
    assert_int_equal(o.approvals, 1);
    assert_int_equal(o.quorum, 2);
    assert_false(o.execute);
    assert_int_equal(o.state, APS(PENDING));
    assert_audit(txn, o.audit_seq, "alice", "approval.vote", id, o.reason,
                 "vote=approve channel=telegram");
    /* Refused votes do not count toward quorum. */
    o = vote(f, txn, id, "erin", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 1500);
    assert_int_equal(o.refusal, RSRE_REFUSE_NOT_APPROVER);
    o = vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 1600);
    assert_int_equal(o.refusal, RSRE_REFUSE_DUPLICATE);
    assert_int_equal(state_of(txn, id), APS(PENDING));
    o = vote(f, txn, id, "carol", RSRE_VOTE_APPROVE, RSRE_CHANNEL_INAPP, T0 + 2000);
    assert_int_equal(o.refusal, RSRE_REFUSE_NONE);
    assert_int_equal(o.approvals, 2);
    assert_true(o.execute);
    assert_int_equal(o.state, APS(APPROVED));
    assert_audit(txn, o.audit_seq, "carol", "approval.vote", id, o.reason, "channel=inapp");
    assert_audit(txn, o.audit_seq + 1, "robot-sre", "approval.approved", id, NULL, "quorum=2");
    /* Decided: further votes are refused and change nothing. */
    o = vote(f, txn, id, "bob", RSRE_VOTE_DENY, RSRE_CHANNEL_API, T0 + 3000);
    assert_int_equal(o.refusal, RSRE_REFUSE_DECIDED);
    assert_int_equal(o.err, RSRE_ETRANSITION);
    assert_false(o.execute);
    assert_int_equal(state_of(txn, id), APS(APPROVED));
    rsre_store_approval *rec = get(txn, id);
    assert_int_equal(rec->decided_at_ms, T0 + 2000);
    assert_int_equal(rsre_approvals_valid_votes(f->ap, rec, NULL), 2);
    rsre_store_approval_free(rec);
    commit(txn);
    assert_chain(f);
}

static void test_deny_wins(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, "robot-sre", NULL,
                     T0));
    struct rsre_vote_outcome o =
        vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 1000);
    assert_false(o.execute);
    o = vote(f, txn, id, "bob", RSRE_VOTE_DENY, RSRE_CHANNEL_TELEGRAM, T0 + 2000);
    assert_int_equal(o.refusal, RSRE_REFUSE_NONE);
    assert_false(o.execute);
    assert_int_equal(o.state, APS(DENIED));
    assert_audit(txn, o.audit_seq, "bob", "approval.vote", id, o.reason,
                 "vote=deny channel=telegram");
    assert_audit(txn, o.audit_seq + 1, "robot-sre", "approval.denied", id,
                 "denied by bob via telegram", NULL);
    o = vote(f, txn, id, "carol", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 3000);
    assert_int_equal(o.refusal, RSRE_REFUSE_DECIDED);
    assert_false(o.execute);
    assert_int_equal(state_of(txn, id), APS(DENIED));
    /* A single deny decides a quorum-1 approval too, even as its first vote. */
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "cordon_node", "node-a", RSRE_ENV_STAGING, "robot-sre", NULL, T0));
    o = vote(f, txn, id, "carol", RSRE_VOTE_DENY, RSRE_CHANNEL_API, T0 + 1000);
    assert_int_equal(o.state, APS(DENIED));
    commit(txn);
}

/* --- re-check -------------------------------------------------------------------------------- */

/* An approved reboot of 10.0.10.202 in production with an ActionRecord; returns its id. */
static const char *approved(struct fx *f, const char *action, const char *target, enum rsre_env env,
                            int64_t now) {
    static char id[RSRE_STORE_ID_MAX + 1];
    static int n;
    char act_id[32];
    snprintf(act_id, sizeof(act_id), "act-%d", ++n);
    rsre_store_txn *txn = begin(f);
    snprintf(id, sizeof(id), "%s", request(f, txn, action, target, env, "robot-sre", act_id, now));
    rsre_store_action act = ROBOT_SRE__STORE__ACTION_RECORD__INIT;
    act.id = act_id;
    act.incident_id = "inc-1";
    act.action_id = (char *)action;
    act.target = (char *)target;
    act.state = AST(AWAITING_APPROVAL);
    act.approval_id = id;
    assert_int_equal(rsre_store_action_put(txn, &act, 0), 0);
    struct rsre_vote_outcome o =
        vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, now + 1000);
    if (!o.execute) {
        o = vote(f, txn, id, "carol", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, now + 2000);
    }
    assert_true(o.execute);
    commit(txn);
    return id;
}

static struct rsre_recheck_input good_input(struct fx *f, enum rsre_env env, int64_t now) {
    struct rsre_recheck_input in = {f->ndp, RSRE_STATE_TRIAGED, env, RSRE_CONF_HIGH, NULL, 0, NULL,
                                    now};
    return in;
}

static int action_state(struct fx *f, const char *approval_id) {
    rsre_store_txn *txn = NULL;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    rsre_store_approval *rec = get(txn, approval_id);
    rsre_store_action *a = NULL;
    assert_int_equal(rsre_store_action_get(txn, rec->action_id, &a), 0);
    int s = (int)a->state;
    rsre_store_action_free(a);
    rsre_store_approval_free(rec);
    rsre_store_txn_abort(txn);
    return s;
}

/* Re-checks and commits; returns the outcome. */
static struct rsre_recheck_outcome recheck(struct fx *f, const char *id,
                                           const struct rsre_recheck_input *in) {
    struct rsre_recheck_outcome o;
    rsre_store_txn *txn = begin(f);
    assert_int_equal(rsre_approvals_recheck(f->ap, txn, id, in, &o), 0);
    assert_audit(txn, o.audit_seq, "robot-sre",
                 o.execute || o.why == RSRE_RECHECK_PENDING || o.why == RSRE_RECHECK_CLOSED ||
                         o.why == RSRE_RECHECK_ALREADY_RAN
                     ? "approval.recheck"
                     : "approval.cancel",
                 id, o.reason, rsre_recheck_why_name(o.why));
    commit(txn);
    return o;
}

static void test_recheck_executes_when_all_holds(void **state) {
    struct fx *f = *state;
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, T0));
    struct rsre_recheck_input in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    struct rsre_recheck_outcome o = recheck(f, id, &in);
    assert_true(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_OK);
    assert_int_equal(o.state, APS(APPROVED));
    assert_int_equal(o.decision.verdict, RSRE_VERDICT_APPROVAL);
    assert_int_equal(o.approvals, 2);
    assert_int_equal(o.quorum, 2);
    /* A medium-confidence incident may still run an approved action. */
    in.confidence = RSRE_CONF_MEDIUM;
    o = recheck(f, id, &in);
    assert_true(o.execute);
    /* Once its ActionRecord ran, the approval is not an execute again. */
    rsre_store_txn *txn = begin(f);
    rsre_store_approval *rec = get(txn, id);
    rsre_store_action *a = NULL;
    assert_int_equal(rsre_store_action_get(txn, rec->action_id, &a), 0);
    a->state = AST(SUCCEEDED);
    assert_int_equal(rsre_store_action_put(txn, a, 0), 0);
    rsre_store_action_free(a);
    rsre_store_approval_free(rec);
    commit(txn);
    o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_ALREADY_RAN);
    assert_int_equal(o.state, APS(APPROVED));

    /* Pending: nothing to execute, nothing changes. */
    txn = begin(f);
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "reboot_worker", "10.0.10.209", RSRE_ENV_PRODUCTION, "robot-sre", NULL,
                     T0));
    commit(txn);
    o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_PENDING);
    assert_int_equal(o.state, APS(PENDING));
    /* Unknown approvals are an error. */
    txn = begin(f);
    assert_int_equal(rsre_approvals_recheck(f->ap, txn, "apr-404", &in, &o), RSRE_ENOTFOUND);
    assert_int_equal(rsre_approvals_recheck(f->ap, txn, "apr 404", &in, &o), RSRE_ENOTFOUND);
    in.incident = NULL;
    assert_int_equal(rsre_approvals_recheck(f->ap, txn, id, &in, &o), -EINVAL);
    rsre_store_txn_abort(txn);
    assert_chain(f);
}

static void test_recheck_cancels_when_incident_resolved(void **state) {
    struct fx *f = *state;
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, T0));
    struct rsre_recheck_input in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    in.incident_state = RSRE_STATE_RESOLVED;
    struct rsre_recheck_outcome o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_INCIDENT_CLOSED);
    assert_int_equal(o.state, APS(CANCELLED));
    assert_non_null(strstr(o.reason, "resolved"));
    assert_int_equal(action_state(f, id), AST(CANCELLED));
    /* Cancelled for good: a later re-check in good conditions does not execute it. */
    in.incident_state = RSRE_STATE_TRIAGED;
    o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_CLOSED);
    /* A pending approval of a resolved incident is cancelled too, and takes no more votes. */
    rsre_store_txn *txn = begin(f);
    snprintf(id, sizeof(id), "%s",
             request(f, txn, "cordon_node", "node-x", RSRE_ENV_STAGING, "robot-sre", NULL, T0));
    commit(txn);
    in.incident_state = RSRE_STATE_RESOLVED;
    o = recheck(f, id, &in);
    assert_int_equal(o.why, RSRE_RECHECK_INCIDENT_CLOSED);
    assert_int_equal(o.state, APS(CANCELLED));
    txn = begin(f);
    struct rsre_vote_outcome v =
        vote(f, txn, id, "alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, T0 + 6000);
    assert_int_equal(v.refusal, RSRE_REFUSE_CANCELLED);
    assert_false(v.execute);
    commit(txn);
}

static void test_recheck_cancels_on_cooldown(void **state) {
    struct fx *f = *state;
    char id[RSRE_STORE_ID_MAX + 1];
    /* The policy's cooldown: the same reboot ran on this node 10 minutes ago. */
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, T0));
    struct rsre_recheck_input in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    in.last_run = (T0 - 10 * MIN) / 1000;
    struct rsre_recheck_outcome o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_COOLDOWN);
    assert_int_equal(o.state, APS(CANCELLED));
    assert_int_equal(o.decision.verdict, RSRE_VERDICT_DENIED);
    assert_non_null(strstr(o.reason, "cooldown"));
    assert_int_equal(action_state(f, id), AST(CANCELLED));
    /* A stored cooldown record that began meanwhile. */
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.203", RSRE_ENV_PRODUCTION, T0));
    rsre_store_txn *txn = begin(f);
    assert_int_equal(rsre_store_cooldown_set(txn,
                                             "node_disk_pressure/reboot_worker/node=10.0.10.203",
                                             T0 + 60 * MIN, "robot-sre:act-x", T0 + 3000),
                     0);
    commit(txn);
    in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    in.cooldown_key = "node_disk_pressure/reboot_worker/node=10.0.10.203";
    o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_COOLDOWN);
    assert_int_equal(o.state, APS(CANCELLED));
    /* A cooldown that has ended does not block. */
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.204", RSRE_ENV_PRODUCTION, T0));
    in.last_run = (T0 - 2 * 60 * MIN) / 1000;
    in.cooldown_key = "none-such";
    o = recheck(f, id, &in);
    assert_true(o.execute);
}

static void test_recheck_cancels_when_rule_tightened(void **state) {
    struct fx *f = *state;
    struct rsre_ruleset *rs = NULL;
    assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
    static const char human[] =
        "id: prod-no-robot-reboots\nname: reboots are for humans\ndomain: infrastructure\n"
        "incident_type: node_disk_pressure\nenvironment_scope: [production]\n"
        "threshold_expression: nodefs.used_ratio > 80%\nseverity: warning\nowner: ops\n"
        "version: 1\nallowed_action_profile:\n  - {action: reboot_worker, mode: human_only}\n";
    struct rsre_rule_error err;
    assert_int_equal(rsre_ruleset_add_yaml(rs, "h.yaml", human, sizeof(human) - 1, &err), 0);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, T0));
    struct rsre_recheck_input in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    in.rules = rs;
    struct rsre_recheck_outcome o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_HUMAN_ONLY);
    assert_int_equal(o.state, APS(CANCELLED));
    assert_int_equal(o.decision.verdict, RSRE_VERDICT_HUMAN_ONLY);
    assert_non_null(strstr(o.reason, "human_only"));
    assert_non_null(strstr(o.reason, "prod-no-robot-reboots"));
    assert_int_equal(action_state(f, id), AST(CANCELLED));
    rsre_ruleset_destroy(rs);

    /* A rule that raised the quorum after the votes were cast. */
    assert_int_equal(rsre_ruleset_create(NULL, &rs), 0);
    static const char quorum[] =
        "id: prod-three-eyes\nname: three approvers\ndomain: infrastructure\n"
        "incident_type: node_disk_pressure\nenvironment_scope: [production]\n"
        "threshold_expression: nodefs.used_ratio > 80%\nseverity: warning\nowner: ops\n"
        "version: 1\nallowed_action_profile:\n  - {action: reboot_worker, mode: approval, "
        "quorum: 3}\n";
    assert_int_equal(rsre_ruleset_add_yaml(rs, "q.yaml", quorum, sizeof(quorum) - 1, &err), 0);
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.205", RSRE_ENV_PRODUCTION, T0));
    in.rules = rs;
    o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_QUORUM);
    assert_int_equal(o.quorum, 3);
    assert_int_equal(o.approvals, 2);
    assert_int_equal(o.state, APS(CANCELLED));
    rsre_ruleset_destroy(rs);

    /* A human-only action is cancelled whatever the policy inputs say. */
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.206", RSRE_ENV_PRODUCTION, T0));
    rsre_store_txn *txn = begin(f);
    rsre_store_approval *rec = get(txn, id);
    char *orig = rec->action;
    rec->action = "delete_persistent_data"; /* as if the record had been tampered with */
    assert_int_equal(rsre_store_approval_put(txn, rec, 0), 0);
    rec->action = orig;
    rsre_store_approval_free(rec);
    commit(txn);
    in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_HUMAN_ONLY);
}

static void test_recheck_cancels_when_confidence_dropped(void **state) {
    struct fx *f = *state;
    /* delete_finished_pods is an auto action of node_disk_pressure, but production needs an
     * approval for it. The approval came through; by execution time the evidence weakened. */
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s",
             approved(f, "delete_finished_pods", "ci", RSRE_ENV_PRODUCTION, T0));
    struct rsre_recheck_input in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    in.confidence = RSRE_CONF_LOW;
    struct rsre_recheck_outcome o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_CONFIDENCE);
    assert_int_equal(o.state, APS(CANCELLED));
    assert_non_null(strstr(o.reason, "low"));
    assert_int_equal(action_state(f, id), AST(CANCELLED));
    /* With high confidence in staging the same action is auto: an approval for it still runs. */
    snprintf(id, sizeof(id), "%s",
             approved(f, "delete_finished_pods", "ci", RSRE_ENV_PRODUCTION, T0));
    in = good_input(f, RSRE_ENV_STAGING, T0 + 5000);
    o = recheck(f, id, &in);
    assert_true(o.execute);
    assert_int_equal(o.decision.verdict, RSRE_VERDICT_AUTO);
}

static void test_recheck_expired_and_revoked(void **state) {
    struct fx *f = *state;
    char id[RSRE_STORE_ID_MAX + 1];
    /* Approved in time, executed too late. */
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, T0));
    struct rsre_recheck_input in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 10 * MIN);
    struct rsre_recheck_outcome o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_EXPIRED);
    assert_int_equal(o.state, APS(CANCELLED));
    /* An approver lost the role (registry reloaded) before execution: quorum no longer met. */
    snprintf(id, sizeof(id), "%s",
             approved(f, "reboot_worker", "10.0.10.203", RSRE_ENV_PRODUCTION, T0));
    static const char reloaded[] = "operators:\n  - {id: alice, roles: [viewer]}\n"
                                   "  - {id: carol, roles: [admin]}\n";
    struct rsre_operators *ops = NULL;
    assert_int_equal(rsre_operators_load(reloaded, sizeof(reloaded) - 1, &ops, NULL), 0);
    rsre_approvals_set_operators(f->ap, ops);
    in = good_input(f, RSRE_ENV_PRODUCTION, T0 + 5000);
    o = recheck(f, id, &in);
    assert_false(o.execute);
    assert_int_equal(o.why, RSRE_RECHECK_QUORUM);
    assert_int_equal(o.approvals, 1);
    rsre_approvals_set_operators(f->ap, f->ops);
    rsre_operators_destroy(ops);
}

/* Counting is checked on its own, on records the vote path would never write (a tampered
 * store, another writer): only distinct, configured approvers other than the requester, voting
 * before the expiry, count; any deny is reported. */
static void test_valid_votes_counting(void **state) {
    struct fx *f = *state;
    rsre_store_vote v[9];
    rsre_store_vote *pv[9];
    static const struct {
        const char *op;
        int kind;
        int64_t at;
    } votes[] = {
        {"alice", 1, T0 + 1},      /* counts */
        {"alice", 1, T0 + 2},      /* the same operator again */
        {"bob", 1, T0 + 10 * MIN}, /* at the expiry */
        {"dave", 1, T0 + 3},       /* the requester (and not an approver) */
        {"erin", 1, T0 + 4},       /* viewer */
        {"frank", 1, T0 + 5},      /* disabled */
        {"mallory", 1, T0 + 6},    /* unknown */
        {"carol", 1, T0 + 7},      /* counts */
        {"carol", 0, T0 + 8},      /* unspecified kind */
    };
    for (size_t i = 0; i < 9; i++) {
        rsre_store_vote init = ROBOT_SRE__STORE__VOTE__INIT;
        v[i] = init;
        v[i].operator_ = (char *)votes[i].op;
        v[i].vote = votes[i].kind;
        v[i].at_ms = votes[i].at;
        pv[i] = &v[i];
    }
    rsre_store_approval rec = ROBOT_SRE__STORE__APPROVAL__INIT;
    rec.requester = "dave";
    rec.expires_at_ms = T0 + 10 * MIN;
    rec.votes = pv;
    rec.n_votes = 9;
    int denied = 1;
    assert_int_equal(rsre_approvals_valid_votes(f->ap, &rec, &denied), 2);
    assert_false(denied);
    v[8].vote = 2; /* a deny */
    assert_int_equal(rsre_approvals_valid_votes(f->ap, &rec, &denied), 2);
    assert_true(denied);
    rec.expires_at_ms = 0; /* no expiry recorded: nothing counts */
    assert_int_equal(rsre_approvals_valid_votes(f->ap, &rec, NULL), 0);
    assert_int_equal(rsre_approvals_valid_votes(NULL, &rec, NULL), 0);
}

/* --- audit ----------------------------------------------------------------------------------- */

struct audit_scan {
    size_t votes, refused, other;
    const char *bad;
};

static int scan_cb(const rsre_store_audit *a, void *ud) {
    struct audit_scan *s = ud;
    if (!a->actor[0] || !a->verb[0] || !a->object[0] || !a->reason[0]) {
        s->bad = "empty actor, verb, object or reason";
        return 1;
    }
    if (!strcmp(a->verb, "approval.vote") || !strcmp(a->verb, "approval.vote.refused")) {
        if (!strstr(a->detail, "channel=")) {
            s->bad = "vote without channel";
            return 1;
        }
        if (!strcmp(a->verb, "approval.vote")) {
            s->votes++;
        } else {
            s->refused++;
        }
    } else {
        s->other++;
    }
    return 0;
}

static void test_audit_of_every_vote_and_refusal(void **state) {
    struct fx *f = *state;
    rsre_store_txn *txn = begin(f);
    char id[RSRE_STORE_ID_MAX + 1];
    snprintf(
        id, sizeof(id), "%s",
        request(f, txn, "reboot_worker", "10.0.10.202", RSRE_ENV_PRODUCTION, "dave", NULL, T0));
    static const struct {
        const char *op;
        enum rsre_vote v;
        enum rsre_channel ch;
        int refused;
    } seq[] = {
        {"dave", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, 1},   /* not approver (and requester) */
        {"erin", RSRE_VOTE_APPROVE, RSRE_CHANNEL_INAPP, 1}, /* viewer */
        {"zed", RSRE_VOTE_DENY, RSRE_CHANNEL_API, 1},       /* unknown */
        {"alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_TELEGRAM, 0},
        {"alice", RSRE_VOTE_APPROVE, RSRE_CHANNEL_TELEGRAM, 1}, /* duplicate */
        {"carol", RSRE_VOTE_APPROVE, RSRE_CHANNEL_TELEGRAM, 1}, /* no telegram identity */
        {"bob", RSRE_VOTE_APPROVE, RSRE_CHANNEL_TELEGRAM, 0},   /* quorum */
        {"carol", RSRE_VOTE_APPROVE, RSRE_CHANNEL_API, 1},      /* decided */
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        struct rsre_vote_outcome o =
            vote(f, txn, id, seq[i].op, seq[i].v, seq[i].ch, T0 + 1000 * (int64_t)(i + 1));
        assert_int_equal(o.refusal != RSRE_REFUSE_NONE, seq[i].refused);
        char chan[32];
        snprintf(chan, sizeof(chan), "channel=%s", rsre_channel_name(seq[i].ch));
        assert_audit(txn, o.audit_seq, seq[i].op,
                     seq[i].refused ? "approval.vote.refused" : "approval.vote", id, o.reason,
                     chan);
    }
    commit(txn);
    struct audit_scan s = {0};
    txn = NULL;
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, 1, scan_cb, &s), 0);
    rsre_store_txn_abort(txn);
    if (s.bad) {
        fail_msg("%s", s.bad);
    }
    assert_int_equal(s.votes, 2);
    assert_int_equal(s.refused, 6);
    assert_int_equal(s.other, 2); /* request, approved */
    assert_chain(f);
}

/* --- randomized attack ----------------------------------------------------------------------- */

/* The attack's own view of identities, independent of the module. */
static const struct {
    const char *id;
    int approver; /* approver or admin, enabled */
    const char *telegram;
} who[] = {
    {"a1", 1, "501"},   {"a2", 1, "502"},       {"a3", 1, NULL},   {"a4", 1, "504"},
    {"adm", 1, NULL},   {"req", 1, "506"}, /* requester in some sequences: operator + approver */
    {"op", 0, "507"},   {"view", 0, "508"},     {"off", 0, "509"}, /* disabled approver */
    {"ghost", 0, NULL}, {"robot-sre", 0, NULL}, {"", 0, NULL},     {"a1 ", 0, NULL},
};
#define NWHO (sizeof(who) / sizeof(who[0]))

static const char attack_ops[] =
    "operators:\n"
    "  - {id: a1, roles: [approver], telegram_user_id: 501}\n"
    "  - {id: a2, roles: [approver, viewer], telegram_user_id: 502}\n"
    "  - {id: a3, roles: [approver]}\n"
    "  - {id: a4, roles: [approver], telegram_user_id: 504}\n"
    "  - {id: adm, roles: [admin]}\n"
    "  - {id: req, roles: [operator, approver], telegram_user_id: 506}\n"
    "  - {id: op, roles: [operator], telegram_user_id: 507}\n"
    "  - {id: view, roles: [viewer], telegram_user_id: 508}\n"
    "  - {id: off, roles: [approver], enabled: false, telegram_user_id: 509}\n";

static unsigned long long rng_state;
static unsigned rnd(unsigned n) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

struct accepted {
    size_t who;
    enum rsre_vote v;
    int64_t at;
};

static int who_index(const char *id) {
    for (size_t i = 0; i < NWHO; i++) {
        if (!strcmp(who[i].id, id)) {
            return (int)i;
        }
    }
    return -1;
}

/* The invariant, from the attack's own records: quorum distinct approvers, none the requester,
 * all before expiry, no deny. */
static void assert_invariant(const struct accepted *acc, size_t n, const char *requester,
                             unsigned quorum, int64_t expires, const char *ctx) {
    unsigned distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (acc[i].v == RSRE_VOTE_DENY) {
            fail_msg("%s: executes with a deny vote", ctx);
        }
        if (!who[acc[i].who].approver || !strcmp(who[acc[i].who].id, requester) ||
            acc[i].at >= expires) {
            fail_msg("%s: a counted vote by %s at %lld (expiry %lld, requester %s)", ctx,
                     who[acc[i].who].id, (long long)acc[i].at, (long long)expires, requester);
        }
        int dup = 0;
        for (size_t k = 0; k < i; k++) {
            dup |= acc[k].who == acc[i].who;
        }
        distinct += !dup;
    }
    if (distinct < quorum) {
        fail_msg("%s: executes with %u distinct approvers, quorum %u", ctx, distinct, quorum);
    }
}

static void test_random_attack(void **state) {
    struct fx *f = *state;
    struct rsre_operators *ops = NULL;
    struct rsre_yerr err;
    assert_int_equal(rsre_operators_load(attack_ops, sizeof(attack_ops) - 1, &ops, &err), 0);
    rsre_approvals_set_operators(f->ap, ops);
    const char *seed_env = getenv("RSRE_TEST_SEED");
    unsigned long long seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed0001ULL;
    rng_state = seed;
    const int sequences = 5000;
    size_t executes = 0, rechecks_ok = 0, total_votes = 0, total_refusals = 0;
    size_t by_refusal[RSRE_REFUSE_COUNT] = {0};
    const struct rsre_action_def *actions[] = {rsre_taxonomy_action(f->t, "reboot_worker"),
                                               rsre_taxonomy_action(f->t, "cordon_node"),
                                               rsre_taxonomy_action(f->t, "replace_worker")};
    rsre_store_txn *txn = NULL;
    for (int s = 0; s < sequences; s++) {
        if (!txn) {
            txn = begin(f);
        }
        char ctx[96];
        snprintf(ctx, sizeof(ctx), "seed 0x%llx sequence %d", seed, s);
        const char *requester = rnd(2) ? "req" : "robot-sre";
        const struct rsre_action_def *a = actions[rnd(3)];
        struct rsre_decision d = {0};
        d.verdict = RSRE_VERDICT_APPROVAL;
        d.quorum = 1 + rnd(3);
        int64_t t0 = T0 + (int64_t)s * 3600 * 1000;
        int64_t ttl = (1 + rnd(20)) * MIN;
        char target[32];
        snprintf(target, sizeof(target), "node-%d", s);
        struct rsre_approval_request req = {"inc-r",  NULL,       a,         target, &d, "why now",
                                            "impact", "fallback", requester, t0,     ttl};
        rsre_store_approval *rec = NULL;
        assert_int_equal(rsre_approvals_request(f->ap, txn, &req, &rec, NULL), 0);
        char id[RSRE_STORE_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s", rec->id);
        int64_t expires = rec->expires_at_ms;
        unsigned quorum = rec->quorum;
        rsre_store_approval_free(rec);

        struct accepted acc[32];
        size_t nacc = 0;
        int executed = 0, closed = 0;
        unsigned nvotes = 1 + rnd(12);
        for (unsigned k = 0; k < nvotes; k++) {
            size_t w = rnd(NWHO);
            if (rnd(5) == 0) {
                w = (size_t)who_index(requester); /* the requester tries to vote */
            }
            enum rsre_vote v = rnd(8) == 0 ? RSRE_VOTE_DENY : RSRE_VOTE_APPROVE;
            enum rsre_channel ch = (enum rsre_channel)rnd(RSRE_CHANNEL_COUNT);
            int64_t at;
            switch (rnd(5)) {
            case 0: /* the last millisecond, the expiry itself, the one after */
                at = expires - 1 + (int64_t)rnd(3);
                break;
            case 1: /* around the expiry */
                at = expires - 2000 + (int64_t)rnd(4001);
                break;
            case 2: /* well after */
                at = expires + (int64_t)rnd(600) * 1000;
                break;
            default: /* inside the window (times not in order) */
                at = t0 + (int64_t)rnd((unsigned)(ttl / 1000)) * 1000;
                break;
            }
            struct rsre_vote_outcome o;
            int chat = ch == RSRE_CHANNEL_TELEGRAM && rnd(2);
            if (chat) {
                /* A chat user: the voter's telegram id, or a random unmapped one. */
                char user[16];
                snprintf(user, sizeof(user), "%s", who[w].telegram ? who[w].telegram : "777");
                assert_int_equal(rsre_approvals_vote_chat(f->ap, txn, id, RSRE_CHAT_TELEGRAM, user,
                                                          v, NULL, at, &o),
                                 0);
            } else {
                assert_int_equal(
                    rsre_approvals_vote(f->ap, txn, id, who[w].id, v, ch, NULL, at, &o), 0);
            }
            by_refusal[o.refusal]++;
            if (o.refusal == RSRE_REFUSE_NONE) {
                total_votes++;
                if (closed) {
                    fail_msg("%s: a vote counted after the approval closed", ctx);
                }
                /* The module says it counted: check that our view agrees it may count. */
                int wi = chat && !who[w].telegram ? -1 : (int)w;
                assert_true(wi >= 0);
                assert_true(nacc < 32);
                acc[nacc++] = (struct accepted){(size_t)wi, v, at};
                if (!who[wi].approver || !strcmp(who[wi].id, requester) || at >= expires ||
                    (ch == RSRE_CHANNEL_TELEGRAM && !who[wi].telegram) ||
                    (ch == RSRE_CHANNEL_WHATSAPP)) {
                    fail_msg("%s: vote by %s via %s at %lld counted", ctx, who[wi].id,
                             rsre_channel_name(ch), (long long)at);
                }
                for (size_t k2 = 0; k2 + 1 < nacc; k2++) {
                    if (acc[k2].who == (size_t)wi) {
                        fail_msg("%s: second vote by %s counted", ctx, who[wi].id);
                    }
                }
            } else {
                total_refusals++;
                assert_false(o.execute);
            }
            if (o.execute) {
                if (executed) {
                    fail_msg("%s: execute twice", ctx);
                }
                executed = 1;
                executes++;
                assert_invariant(acc, nacc, requester, quorum, expires, ctx);
            }
            if (o.state != APS(PENDING) && o.state != 0) {
                closed = 1;
            }
            /* Now and then, the execution-time re-check in the best conditions. */
            if (rnd(4) == 0) {
                struct rsre_recheck_input in = {
                    f->ndp, RSRE_STATE_TRIAGED, RSRE_ENV_DEMO, RSRE_CONF_HIGH, NULL, 0, NULL, at};
                struct rsre_recheck_outcome ro;
                assert_int_equal(rsre_approvals_recheck(f->ap, txn, id, &in, &ro), 0);
                if (ro.execute) {
                    rechecks_ok++;
                    if (!executed) {
                        fail_msg("%s: re-check executes an approval that never reached quorum",
                                 ctx);
                    }
                    assert_true(at < expires);
                    assert_invariant(acc, nacc, requester, quorum, expires, ctx);
                } else if (ro.state == APS(CANCELLED)) {
                    closed = 1;
                }
            }
        }
        /* The stored record agrees with what the attack saw. */
        rec = get(txn, id);
        assert_int_equal(rec->n_votes, nacc);
        if (executed) {
            assert_true(rec->state == APS(APPROVED) || rec->state == APS(CANCELLED));
        } else {
            assert_true(rec->state != APS(APPROVED));
        }
        for (size_t k = 0; k < rec->n_votes; k++) {
            assert_string_equal(rec->votes[k]->operator_, who[acc[k].who].id);
        }
        rsre_store_approval_free(rec);
        if (s % 50 == 49) {
            commit(txn);
            txn = NULL;
        }
    }
    if (txn) {
        commit(txn);
    }
    print_message("random attack: %d sequences, %zu votes counted, %zu refused, %zu executes, "
                  "%zu re-check executes\n",
                  sequences, total_votes, total_refusals, executes, rechecks_ok);
    for (int r = 1; r < RSRE_REFUSE_COUNT; r++) {
        print_message("  refused %-18s %zu\n", rsre_vote_refusal_name((enum rsre_vote_refusal)r),
                      by_refusal[r]);
    }
    /* Every kind of attack was tried and every sequence kind occurred. */
    assert_true(executes > 100);
    assert_true(rechecks_ok > 10);
    static const enum rsre_vote_refusal must[] = {
        RSRE_REFUSE_UNKNOWN_OPERATOR, RSRE_REFUSE_DISABLED,      RSRE_REFUSE_NOT_APPROVER,
        RSRE_REFUSE_CHANNEL,          RSRE_REFUSE_SELF_APPROVAL, RSRE_REFUSE_EXPIRED,
        RSRE_REFUSE_DECIDED,          RSRE_REFUSE_DUPLICATE,
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
        if (by_refusal[must[i]] == 0) {
            fail_msg("no %s refusal was exercised", rsre_vote_refusal_name(must[i]));
        }
    }
    /* Every vote and refusal is in the audit log, and the chain verifies. */
    struct audit_scan sc = {0};
    assert_int_equal(rsre_store_txn_begin(f->store, 1, &txn), 0);
    assert_int_equal(rsre_store_audit_foreach(txn, 1, scan_cb, &sc), 0);
    rsre_store_txn_abort(txn);
    if (sc.bad) {
        fail_msg("%s", sc.bad);
    }
    assert_int_equal(sc.votes, total_votes);
    assert_int_equal(sc.refused, total_refusals);
    assert_chain(f);
    rsre_approvals_set_operators(f->ap, f->ops);
    rsre_operators_destroy(ops);
}

static void test_names(void **state) {
    (void)state;
    enum rsre_channel ch;
    for (int i = 0; i < RSRE_CHANNEL_COUNT; i++) {
        assert_int_equal(rsre_channel_parse(rsre_channel_name((enum rsre_channel)i), &ch), 0);
        assert_int_equal(ch, i);
    }
    assert_int_equal(rsre_channel_parse("sms", &ch), RSRE_ENOTFOUND);
    for (int i = 0; i < RSRE_REFUSE_COUNT; i++) {
        assert_string_not_equal(rsre_vote_refusal_name((enum rsre_vote_refusal)i), "?");
    }
    for (int i = 0; i < RSRE_RECHECK_COUNT; i++) {
        assert_string_not_equal(rsre_recheck_why_name((enum rsre_recheck_why)i), "?");
    }
    assert_string_equal(rsre_approval_state_name(APS(EXPIRED)), "expired");
    assert_string_equal(rsre_approval_state_name(99), "?");
    struct rsre_approvals *ap = NULL;
    struct rsre_approvals_config bad = {NULL, NULL, 1000};
    assert_int_equal(rsre_approvals_create(&bad, &ap), -EINVAL);
    assert_int_equal(rsre_approvals_create(NULL, &ap), 0);
    rsre_approvals_destroy(ap);
    rsre_approvals_destroy(NULL);
}

int main(void) {
    rsre_log_threshold = RSRE_LOG_OFF;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_operators_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prompt_spec_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_approval_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles_and_identities_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_vote_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quorum_two_distinct_approvers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deny_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_executes_when_all_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_cancels_when_incident_resolved, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recheck_cancels_on_cooldown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_cancels_when_rule_tightened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_cancels_when_confidence_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_recheck_expired_and_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_votes_counting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_of_every_vote_and_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_attack, setup, teardown),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
