#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "engine/matrix.h"
#include "engine/policy.h"
#include "engine/rules.h"
#include "robotctl.h"

/* Finds "--name value" in argv; NULL when absent. Sets *bad on a flag without a value. */
static const char *opt(int argc, char **argv, const char *name, int *bad) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], name)) {
            if (i + 1 >= argc) {
                *bad = 1;
                return NULL;
            }
            return argv[i + 1];
        }
    }
    return NULL;
}

/* Rejects anything that is not one of the `known` flags followed by a value. */
static int check_flags(int argc, char **argv, const char *const *known) {
    for (int i = 0; i < argc; i += 2) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) {
            ok |= !strcmp(argv[i], *k);
        }
        if (!ok) {
            return rctl_usage_error("unexpected argument '%s'", argv[i]);
        }
        if (i + 1 >= argc) {
            return rctl_usage_error("%s needs a value", argv[i]);
        }
    }
    return 0;
}

/* Loads operator rules from DIR (or a single file) on top of the built-ins. */
static int load_rules(const char *path, struct rsre_ruleset **out) {
    int rc = rsre_ruleset_create(NULL, out);
    if (rc || !path) {
        return rc ? RCTL_FAIL : 0;
    }
    struct rsre_rule_error err;
    size_t l = strlen(path);
    if ((l > 5 && !strcmp(path + l - 5, ".yaml")) || (l > 4 && !strcmp(path + l - 4, ".yml"))) {
        rc = rsre_ruleset_add_file(*out, path, &err);
    } else {
        rc = rsre_ruleset_add_dir(*out, path, &err);
    }
    if (rc) {
        char buf[700];
        rsre_rule_error_format(&err, buf, sizeof(buf));
        fprintf(stderr, "robotctl: rules: %s\n", buf);
        rsre_ruleset_destroy(*out);
        *out = NULL;
        return RCTL_FAIL;
    }
    return 0;
}

static json_t *action_ids(const struct rsre_action_def *const *a, unsigned n) {
    json_t *arr = json_array();
    for (unsigned i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(a[i]->id));
    }
    return arr;
}

int rctl_policy_matrix(int argc, char **argv, const struct rctl_opts *o) {
    static const char *const known[] = {"--env", "--rules", NULL};
    int bad = 0, rc = check_flags(argc, argv, known);
    if (rc) {
        return rc;
    }
    const char *env_s = opt(argc, argv, "--env", &bad);
    unsigned mask = 0;
    if (env_s) {
        enum rsre_env e;
        if (rsre_env_parse(env_s, &e)) {
            return rctl_usage_error("unknown environment '%s' (demo, staging, production)", env_s);
        }
        mask = 1u << e;
    }
    struct rsre_ruleset *rules = NULL;
    if ((rc = load_rules(opt(argc, argv, "--rules", &bad), &rules))) {
        return rc;
    }
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    static const char *const headers[] = {"Incident Class", "Auto Observe", "Auto Notify",
                                          "Auto Contain",   "Approval Required", "Human Only"};
    struct rctl_table *tab = o->json ? NULL : rctl_table_new(6, headers);
    json_t *rows = json_array();
    for (size_t i = 0; i < t->nincidents; i++) {
        struct rsre_matrix_row r;
        rsre_matrix_row(t, &t->incidents[i], mask, rules, &r);
        if (o->json) {
            json_array_append_new(
                rows,
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "incident_class",
                          r.incident->id, "auto_observe", r.auto_observe, "auto_notify",
                          r.auto_notify, "auto_contain", r.auto_contain, "approval_required",
                          r.approval, "human_only", r.human_only, "auto_contain_actions",
                          action_ids(r.auto_contain_actions, r.nauto_contain),
                          "approval_required_actions", action_ids(r.approval_actions, r.napproval),
                          "human_only_actions", action_ids(r.human_actions, r.nhuman)));
        } else {
            const char *cells[] = {r.incident->id, r.auto_observe, r.auto_notify, r.auto_contain,
                                   r.approval,     r.human_only};
            rctl_table_row(tab, cells);
        }
    }
    if (o->json) {
        json_t *doc = json_pack("{s:s, s:I, s:o}", "environments", env_s ? env_s : "all",
                                "taxonomy_version", (json_int_t)t->version, "rows", rows);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        json_decref(rows);
        printf("Policy matrix (%s; high confidence, allowlisted targets; taxonomy v%lld)\n\n",
               env_s ? env_s : "demo/staging/production", t->version);
        rctl_table_print(tab, stdout);
    }
    rsre_ruleset_destroy(rules);
    return RCTL_OK;
}

int rctl_policy_preview(int argc, char **argv, const struct rctl_opts *o) {
    static const char *const known[] = {"--incident", "--action", "--env",          "--confidence",
                                        "--target",   "--rules",  "--last-run-ago", NULL};
    int bad = 0, rc = check_flags(argc, argv, known);
    if (rc) {
        return rc;
    }
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    const char *inc_s = opt(argc, argv, "--incident", &bad);
    const char *act_s = opt(argc, argv, "--action", &bad);
    const char *env_s = opt(argc, argv, "--env", &bad);
    const char *conf_s = opt(argc, argv, "--confidence", &bad);
    const char *ago_s = opt(argc, argv, "--last-run-ago", &bad);
    if (!inc_s || !act_s || !env_s) {
        return rctl_usage_error("policy preview needs --incident, --action and --env");
    }
    struct rsre_policy_request req = {.taxonomy = t, .confidence = RSRE_CONF_HIGH, .now = 0};
    if (!(req.incident = rsre_taxonomy_incident(t, inc_s))) {
        return rctl_usage_error("unknown incident class '%s' (see robotctl taxonomy show)", inc_s);
    }
    if (!(req.action = rsre_taxonomy_action(t, act_s))) {
        return rctl_usage_error("unknown action '%s' (see robotctl taxonomy show %s)", act_s,
                                inc_s);
    }
    if (rsre_env_parse(env_s, &req.env)) {
        return rctl_usage_error("unknown environment '%s' (demo, staging, production)", env_s);
    }
    if (conf_s && rsre_confidence_parse(conf_s, &req.confidence)) {
        return rctl_usage_error("unknown confidence '%s' (low, medium, high)", conf_s);
    }
    if (ago_s) {
        char *end;
        errno = 0;
        long long ago = strtoll(ago_s, &end, 10);
        if (errno || *end || ago < 0) {
            return rctl_usage_error("--last-run-ago wants a number of seconds, got '%s'", ago_s);
        }
        req.now = 10LL * 365 * 86400;
        req.last_run = req.now - ago;
    }
    req.target = opt(argc, argv, "--target", &bad);
    struct rsre_ruleset *rules = NULL;
    if ((rc = load_rules(opt(argc, argv, "--rules", &bad), &rules))) {
        return rc;
    }
    req.rules = rules;
    struct rsre_decision d;
    rsre_policy_decide(&req, &d);
    char buf[512];
    if (o->json) {
        json_t *reasons = json_array();
        for (unsigned i = 0; i < d.nreasons; i++) {
            json_array_append_new(
                reasons, json_pack("{s:s, s:s}", "layer",
                                   rsre_layer_name((enum rsre_policy_layer)d.reasons[i].layer),
                                   "reason", rsre_policy_reason_text(&d.reasons[i], buf,
                                                                     sizeof(buf))));
        }
        json_t *doc = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:o}", "incident", req.incident->id,
            "action", req.action->id, "action_class", rsre_class_name(req.action->cls),
            "environment", rsre_env_name(req.env), "confidence",
            rsre_confidence_name(req.confidence), "target", req.target ? req.target : "",
            "decision", rsre_verdict_name(d.verdict), "quorum", (int)d.quorum,
            "cooldown_seconds", (json_int_t)d.cooldown_seconds, "reasons", reasons);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        printf("decision:   %s", rsre_verdict_name(d.verdict));
        if (d.verdict == RSRE_VERDICT_APPROVAL) {
            printf(" (%u approver%s, not the requester)", d.quorum, d.quorum == 1 ? "" : "s");
        }
        printf("\nincident:   %s (%s)\naction:     %s (%s: %s)\nenv:        %s\n"
               "confidence: %s\ntarget:     %s\ncooldown:   %llds\n\nreasons, in resolution "
               "order:\n",
               req.incident->id, req.incident->display_name, req.action->id,
               rsre_class_name(req.action->cls), req.action->description, rsre_env_name(req.env),
               rsre_confidence_name(req.confidence), req.target ? req.target : "(none)",
               d.cooldown_seconds);
        for (unsigned i = 0; i < d.nreasons; i++) {
            printf("  %-16s %s\n", rsre_layer_name((enum rsre_policy_layer)d.reasons[i].layer),
                   rsre_policy_reason_text(&d.reasons[i], buf, sizeof(buf)));
        }
    }
    rsre_ruleset_destroy(rules);
    return RCTL_OK;
}
