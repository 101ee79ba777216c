#ifndef RSRE_PROBES_INTERNAL_H
#define RSRE_PROBES_INTERNAL_H

/* Private to aggregator/probes: the set's layout and the kinds' run functions. */

#include "probes/probes.h"

struct rsre_probe_set {
    struct rsre_probe_def *defs;
    size_t n;
};

/* Each kind's run function: blocking, bounded by def->timeout_ms per step; fills res->ok,
 * res->error, res->code and the kind's extras. */
typedef void (*rsre__probe_run_fn)(const struct rsre_probe_def *def, struct rsre_probe_result *res);

void rsre__probe_redis(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_nats(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_minio(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_registry(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_ldap(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_postgres(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_http(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_tls(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_dns(const struct rsre_probe_def *def, struct rsre_probe_result *res);
void rsre__probe_http5xx(const struct rsre_probe_def *def, struct rsre_probe_result *res);

/* Sets a failure: code and printf-style evidence text. */
void rsre__probe_fail(struct rsre_probe_result *res, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends printf-style text to the NUL-terminated buf (truncating at cap). */
void rsre__probe_append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
