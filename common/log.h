#ifndef RSRE_LOG_H
#define RSRE_LOG_H

/*
 * Logging: one line per event on stderr, logfmt (`ts=... level=... msg="..." key=value`) or
 * JSON lines, which is what Kubernetes log shippers expect. The level is checked before any
 * formatting happens, so disabled levels cost one comparison.
 */

enum rsre_log_level { RSRE_LOG_DEBUG = 0, RSRE_LOG_INFO, RSRE_LOG_WARN, RSRE_LOG_ERROR, RSRE_LOG_OFF };

extern int rsre_log_threshold; /* messages below this level are dropped; default INFO */

/* Sets the level from a name ("debug", "info", "warn", "error", "off"). Returns 0 or -EINVAL. */
int rsre_log_set_level_name(const char *name);
/* Selects JSON-lines output instead of logfmt. */
void rsre_log_set_json(int on);

/* Writes one record. `fmt` formats the message; callers add key=value pairs in the message. */
void rsre__log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define RSRE_LOG(level, module, ...)                                                             \
    do {                                                                                         \
        if ((level) >= rsre_log_threshold) {                                                     \
            rsre__log((level), (module), __VA_ARGS__);                                           \
        }                                                                                        \
    } while (0)

#endif
