/* ldap kind: connect (ldap:// or ldaps://, network timeout), simple bind with the service
 * account (anonymous without bind_dn), rootDSE base search. Codes are LDAP_<result code>,
 * e.g. LDAP_49 (invalid credentials), LDAP_-1 (server down). */
#include "probes/probes_internal.h"

#include <ldap.h>
#include <string.h>

static void ldap_fail(struct rsre_probe_result *res, const char *step, int rc, LDAP *ld) {
    char code[24];
    snprintf(code, sizeof code, "LDAP_%d", rc);
    char *diag = NULL;
    if (ld) {
        ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    }
    rsre__probe_fail(res, code, "ldap %s: %s (%d)%s%s", step, ldap_err2string(rc), rc,
                     diag && diag[0] ? ": " : "", diag && diag[0] ? diag : "");
    ldap_memfree(diag);
}

void rsre__probe_ldap(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, def->url);
    if (rc != LDAP_SUCCESS) {
        ldap_fail(res, "initialize", rc, NULL);
        return;
    }
    int v3 = LDAP_VERSION3;
    struct timeval tv = {def->timeout_ms / 1000, (def->timeout_ms % 1000) * 1000};
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    if (def->ca_file[0]) {
        int demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;
        ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, def->ca_file);
        ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
        ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
    }
    struct berval cred = {0};
    if (def->bind_dn[0]) {
        cred.bv_val = (char *)def->password;
        cred.bv_len = strlen(def->password);
    }
    rc = ldap_sasl_bind_s(ld, def->bind_dn[0] ? def->bind_dn : NULL, LDAP_SASL_SIMPLE, &cred, NULL,
                          NULL, NULL);
    if (rc != LDAP_SUCCESS) {
        ldap_fail(res, "bind", rc, ld);
        ldap_unbind_ext_s(ld, NULL, NULL);
        return;
    }
    char *attrs[] = {"namingContexts", "supportedLDAPVersion", NULL};
    LDAPMessage *msg = NULL;
    rc = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1,
                           &msg);
    if (rc != LDAP_SUCCESS) {
        ldap_fail(res, "rootDSE search", rc, ld);
    } else if (ldap_count_entries(ld, msg) != 1) {
        rsre__probe_fail(res, "LDAP_NO_ROOTDSE", "ldap rootDSE search: no entry returned");
    } else {
        res->ok = 1;
    }
    ldap_msgfree(msg);
    ldap_unbind_ext_s(ld, NULL, NULL);
}
