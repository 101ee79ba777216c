/* dns kind: resolve host with getaddrinfo (bounded by the resolver's own timeout and attempts
 * from resolv.conf, not by the probe's timeout: see docs/probes.md) and compare the set of
 * answers with the expected addresses. Mismatches = expected addresses missing + answers not
 * expected; a resolution failure counts every expected address as missing. */
#include "probes/probes_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_ANSWERS 64

void rsre__probe_dns(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(def->host, NULL, &hints, &ai);
    if (g != 0) {
        res->dns_mismatches = (int)def->nexpect;
        rsre__probe_fail(res,
                         g == EAI_NONAME  ? "NXDOMAIN"
                         : g == EAI_AGAIN ? "EAI_AGAIN"
                                          : "EAI",
                         "dns %s: %s", def->host, gai_strerror(g));
        return;
    }
    char got[MAX_ANSWERS][INET6_ADDRSTRLEN];
    size_t n = 0;
    for (struct addrinfo *a = ai; a && n < MAX_ANSWERS; a = a->ai_next) {
        char s[INET6_ADDRSTRLEN];
        const void *src = a->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (!inet_ntop(a->ai_family, src, s, sizeof s)) {
            continue;
        }
        int dup = 0;
        for (size_t i = 0; i < n; i++) {
            dup |= strcmp(got[i], s) == 0;
        }
        if (!dup) {
            memcpy(got[n++], s, sizeof s);
        }
    }
    freeaddrinfo(ai);
    char evidence[RSRE_PROBE_ERR_LEN] = "";
    int mism = 0;
    for (size_t i = 0; i < def->nexpect; i++) {
        int found = 0;
        for (size_t j = 0; j < n; j++) {
            found |= strcmp(def->expect[i], got[j]) == 0;
        }
        if (!found) {
            mism++;
            rsre__probe_append(evidence, sizeof evidence, "%smissing %s", evidence[0] ? ", " : "",
                               def->expect[i]);
        }
    }
    for (size_t j = 0; j < n; j++) {
        int found = 0;
        for (size_t i = 0; i < def->nexpect; i++) {
            found |= strcmp(def->expect[i], got[j]) == 0;
        }
        if (!found) {
            mism++;
            rsre__probe_append(evidence, sizeof evidence, "%sunexpected %s",
                               evidence[0] ? ", " : "", got[j]);
        }
    }
    res->dns_mismatches = mism;
    if (mism) {
        rsre__probe_fail(res, "MISMATCH", "dns %s: %s", def->host, evidence);
        return;
    }
    res->ok = 1;
}
