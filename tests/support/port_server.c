/*
 * Starting the test servers of tests/support (kube_api_server.py, oci_api_server.py,
 * telegram_api_server.py, whatsapp_api_server.py, ...) from a C integration test. Each server
 * binds port 0 and prints "PORT <n>\n" on stdout once it listens; these helpers wait for that
 * line and return the port. Tests #include this file (proc.c and aggregator_harness.c include
 * it too); every function is static and marked unused, so a test takes what it needs.
 *
 *   port_line_read(fd, timeout_ms)  reads the "PORT <n>" line from fd (closes it): for a
 *                                   server started some other way (proc.c's spawn()).
 *   port_server_start(argv, opts, &pid)
 *                                   forks and execs argv (argv[0] an absolute path, e.g.
 *                                   /usr/bin/python3) and returns its port. opts: `log` (stderr
 *                                   appended there; NULL keeps ours), `pdeathsig` (the server
 *                                   gets SIGTERM when this test dies), `timeout_ms` (default
 *                                   10 s). On failure the server is killed and reaped, *pid is
 *                                   0 and -1 is returned (the reason is in the log).
 *   port_server_stop(&pid)          SIGTERM, reap; a no-op when pid is 0; *pid becomes 0.
 */
#ifndef RSRE_TEST_PORT_SERVER_C
#define RSRE_TEST_PORT_SERVER_C

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT_SERVER_UNUSED __attribute__((unused))

struct port_server_opts {
    const char *log; /* stderr appended here; NULL: inherited */
    int pdeathsig;   /* non-zero: PR_SET_PDEATHSIG SIGTERM in the child */
    int timeout_ms;  /* for the PORT line; 0: 10000 */
};

/* Reads up to the first newline from fd (closed here), waiting at most timeout_ms between
 * reads; the port of a "PORT <n>" line, or -1. */
PORT_SERVER_UNUSED static int port_line_read(int fd, int timeout_ms) {
    char buf[64] = "";
    size_t got = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (got < sizeof(buf) - 1 && !strchr(buf, '\n')) {
        if (poll(&pfd, 1, timeout_ms) <= 0) {
            break;
        }
        ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        buf[got] = '\0';
    }
    close(fd);
    int port;
    return sscanf(buf, "PORT %d", &port) == 1 && port > 0 && port < 65536 ? port : -1;
}

/* SIGTERM and reap; *pid becomes 0. A no-op when *pid is 0. */
PORT_SERVER_UNUSED static void port_server_stop(pid_t *pid) {
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
        *pid = 0;
    }
}

PORT_SERVER_UNUSED static int port_server_start(char *const argv[],
                                                const struct port_server_opts *opts,
                                                pid_t *pid_out) {
    static const struct port_server_opts none = {0};
    const struct port_server_opts *o = opts ? opts : &none;
    *pid_out = 0;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        return -1;
    }
    int fd = -1;
    if (o->log && (fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (pid == 0) {
        if (o->pdeathsig) {
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a test that crashed */
        }
        dup2(p[1], 1);
        if (fd >= 0) {
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    if (fd >= 0) {
        close(fd);
    }
    int port = port_line_read(p[0], o->timeout_ms > 0 ? o->timeout_ms : 10000);
    if (port < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    *pid_out = pid;
    return port;
}

#endif
