/* postgres kind: non-blocking connect and SELECT 1, each step polled against the deadline so a
 * hung server never holds the worker longer than the timeout. The code is the server's
 * SQLSTATE when it sent one (53300 too_many_connections, 57P03 cannot_connect_now, 28P01
 * invalid_password, 3D000 invalid_catalog_name, ...), else ECONNREFUSED / ETIMEDOUT / EIO. */
#include "probes/probes_internal.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on the connection's socket until the deadline; 0, or -ETIMEDOUT. */
static int wait_sock(PGconn *c, short events, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        struct pollfd pfd = {.fd = PQsocket(c), .events = events};
        if (pfd.fd < 0) {
            return -EIO;
        }
        int n = poll(&pfd, 1, (int)left);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
}

/* Finds "NNNNN: " (a SQLSTATE, verbose error format) in an error message. */
static int find_sqlstate(const char *msg, char out[6]) {
    for (const char *p = msg; *p; p++) {
        int ok = 1, digits = 0;
        for (int i = 0; i < 5; i++) {
            if (!p[i] || !(isdigit((unsigned char)p[i]) || isupper((unsigned char)p[i]))) {
                ok = 0;
                break;
            }
            digits += isdigit((unsigned char)p[i]) != 0;
        }
        ok = ok && digits > 0; /* "FATAL: " is a severity, every SQLSTATE has a digit */
        if (ok && p[5] == ':' && p[6] == ' ' && (p == msg || p[-1] == ' ')) {
            memcpy(out, p, 5);
            out[5] = '\0';
            return 1;
        }
    }
    return 0;
}

static void pg_fail(struct rsre_probe_result *res, const char *step, const char *msg) {
    char text[RSRE_PROBE_ERR_LEN];
    snprintf(text, sizeof text, "%s", msg ? msg : "");
    char *loc = strstr(text, "\nLOCATION:");
    if (loc) {
        *loc = '\0'; /* the server's source location is noise in evidence */
    }
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) {
        text[--n] = '\0';
    }
    for (char *p = text; *p; p++) {
        if (*p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }
    char state[6];
    const char *code = "EIO";
    if (find_sqlstate(text, state)) {
        code = state;
    } else if (strstr(text, "Connection refused")) {
        code = "ECONNREFUSED";
    } else if (strstr(text, "timeout") || strstr(text, "timed out")) {
        code = "ETIMEDOUT";
    }
    rsre__probe_fail(res, code, "postgres %s: %s", step, text);
}

void rsre__probe_postgres(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    int64_t deadline = mono_ms() + def->timeout_ms;
    char port[12], ctimeout[24];
    snprintf(port, sizeof port, "%d", def->port);
    snprintf(ctimeout, sizeof ctimeout, "%lld", (long long)((def->timeout_ms + 999) / 1000));
    const char *keys[] = {"host",     "port",
                          "dbname",   "user",
                          "password", "connect_timeout",
                          "sslmode",  "application_name",
                          NULL};
    const char *vals[] = {def->host,
                          port,
                          def->database[0] ? def->database : "postgres",
                          def->user[0] ? def->user : "postgres",
                          def->password,
                          ctimeout,
                          def->tls ? "require" : "prefer",
                          "robot-sre-probe",
                          NULL};
    /* An empty password falls back to libpq's own sources (PGPASSWORD, ~/.pgpass). */
    PGconn *c = PQconnectStartParams(keys, vals, 0);
    if (!c) {
        rsre__probe_fail(res, "ENOMEM", "postgres connect: out of memory");
        return;
    }
    PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
    if (PQstatus(c) == CONNECTION_BAD) {
        pg_fail(res, "connect", PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int rc = wait_sock(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (rc == -ETIMEDOUT) {
            rsre__probe_fail(res, "ETIMEDOUT", "postgres connect: no answer within %lld ms",
                             (long long)def->timeout_ms);
            PQfinish(c);
            return;
        }
        st = PQconnectPoll(c);
    }
    if (st == PGRES_POLLING_FAILED) {
        pg_fail(res, "connect", PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    if (!PQsendQuery(c, "SELECT 1")) {
        pg_fail(res, "SELECT 1", PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    PGresult *r = NULL, *last = NULL;
    for (;;) {
        while (PQisBusy(c)) {
            if (wait_sock(c, POLLIN, deadline) != 0) {
                rsre__probe_fail(res, "ETIMEDOUT", "postgres SELECT 1: no answer within %lld ms",
                                 (long long)def->timeout_ms);
                PQclear(last);
                PQfinish(c);
                return;
            }
            if (!PQconsumeInput(c)) {
                pg_fail(res, "SELECT 1", PQerrorMessage(c));
                PQclear(last);
                PQfinish(c);
                return;
            }
        }
        r = PQgetResult(c);
        if (!r) {
            break;
        }
        PQclear(last);
        last = r;
    }
    if (!last) {
        pg_fail(res, "SELECT 1", PQerrorMessage(c));
    } else if (PQresultStatus(last) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(last, PG_DIAG_SQLSTATE);
        rsre__probe_fail(res, state ? state : "EIO", "postgres SELECT 1: %s",
                         PQresultErrorField(last, PG_DIAG_MESSAGE_PRIMARY)
                             ? PQresultErrorField(last, PG_DIAG_MESSAGE_PRIMARY)
                             : PQresStatus(PQresultStatus(last)));
    } else if (PQntuples(last) != 1 || strcmp(PQgetvalue(last, 0, 0), "1") != 0) {
        rsre__probe_fail(res, "EPROTO", "postgres SELECT 1: unexpected answer");
    } else {
        res->ok = 1;
    }
    PQclear(last);
    PQfinish(c);
}
