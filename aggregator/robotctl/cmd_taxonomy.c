#include <jansson.h>
#include <string.h>

#include "engine/policy.h"
#include "engine/taxonomy.h"
#include "robotctl.h"

static const char *const binding_names[] = {"", "auto", "auto (environment-limited)", "approval",
                                            "human_only"};

static json_t *strlist(const struct rsre_strlist *l) {
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++) {
        json_array_append_new(a, json_string(l->items[i]));
    }
    return a;
}

static void print_list(const char *title, const struct rsre_strlist *l) {
    printf("%s:\n", title);
    for (size_t i = 0; i < l->n; i++) {
        printf("  - %s\n", l->items[i]);
    }
}

static int show_one(const struct rsre_taxonomy *t, const struct rsre_incident_def *inc,
                    const struct rctl_opts *o) {
    if (o->json) {
        json_t *actions = json_array(), *sev = json_array();
        for (size_t i = 0; i < t->nactions; i++) {
            if (inc->binding[i]) {
                json_array_append_new(
                    actions, json_pack("{s:s, s:s, s:s, s:s}", "id", t->actions[i].id, "class",
                                       rsre_class_name(t->actions[i].cls), "binding",
                                       binding_names[inc->binding[i]], "label",
                                       t->actions[i].label));
            }
        }
        for (size_t i = 0; i < inc->nseverity_rules; i++) {
            json_array_append_new(
                sev, json_pack("{s:s, s:s, s:s}", "severity",
                               rsre_severity_name(inc->severity_rules[i].severity), "text",
                               inc->severity_rules[i].text, "when", inc->severity_rules[i].when));
        }
        json_t *doc = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:I}", "id", inc->id,
            "domain", inc->domain->id, "display_name", inc->display_name, "description",
            inc->description, "default_severity", rsre_severity_name(inc->default_severity),
            "primary_signals", strlist(&inc->primary_signals), "secondary_signals",
            strlist(&inc->secondary_signals), "severity_rules", sev, "root_cause_hypotheses",
            strlist(&inc->hypotheses), "actions", actions, "exit_criteria",
            strlist(&inc->exit_criteria), "exit_expression", inc->exit_expression, "exit_window",
            (json_int_t)inc->exit_window);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
        return RCTL_OK;
    }
    printf("%s — %s\ndomain: %s\ndefault severity: %s\n%s\n\n", inc->id, inc->display_name,
           inc->domain->id, rsre_severity_name(inc->default_severity), inc->description);
    print_list("primary signals", &inc->primary_signals);
    print_list("secondary signals", &inc->secondary_signals);
    printf("severity rules:\n");
    for (size_t i = 0; i < inc->nseverity_rules; i++) {
        printf("  - %-8s %s   [%s]\n", rsre_severity_name(inc->severity_rules[i].severity),
               inc->severity_rules[i].text, inc->severity_rules[i].when);
    }
    print_list("root-cause hypotheses", &inc->hypotheses);
    printf("actions:\n");
    for (size_t i = 0; i < t->nactions; i++) {
        if (inc->binding[i]) {
            printf("  - %-32s %-10s %s\n", t->actions[i].id, rsre_class_name(t->actions[i].cls),
                   binding_names[inc->binding[i]]);
        }
    }
    printf("cooldowns:\n");
    for (size_t i = 0; i < inc->ncooldowns; i++) {
        printf("  - %llds: %s\n", inc->cooldowns[i].seconds, inc->cooldowns[i].text);
    }
    print_list("exit criteria", &inc->exit_criteria);
    printf("  expression: %s (held %llds)\n", inc->exit_expression, inc->exit_window);
    return RCTL_OK;
}

int rctl_taxonomy_show(int argc, char **argv, const struct rctl_opts *o) {
    const struct rsre_taxonomy *t = rsre_taxonomy_builtin();
    if (argc > 1) {
        return rctl_usage_error("taxonomy show takes at most one incident class");
    }
    if (argc == 1) {
        const struct rsre_incident_def *inc = rsre_taxonomy_incident(t, argv[0]);
        if (!inc) {
            return rctl_usage_error("unknown incident class '%s'", argv[0]);
        }
        return show_one(t, inc, o);
    }
    if (o->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < t->nincidents; i++) {
            const struct rsre_incident_def *inc = &t->incidents[i];
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "id", inc->id, "domain",
                                               inc->domain->id, "display_name", inc->display_name,
                                               "default_severity",
                                               rsre_severity_name(inc->default_severity)));
        }
        json_dumpf(a, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(a);
        return RCTL_OK;
    }
    static const char *const h[] = {"Incident Class", "Domain", "Default Severity", "Name"};
    struct rctl_table *tab = rctl_table_new(4, h);
    for (size_t i = 0; i < t->nincidents; i++) {
        const struct rsre_incident_def *inc = &t->incidents[i];
        const char *cells[] = {inc->id, inc->domain->id,
                               rsre_severity_name(inc->default_severity), inc->display_name};
        rctl_table_row(tab, cells);
    }
    printf("Taxonomy v%lld: %zu domains, %zu incident classes, %zu actions\n\n", t->version,
           t->ndomains, t->nincidents, t->nactions);
    rctl_table_print(tab, stdout);
    return RCTL_OK;
}
