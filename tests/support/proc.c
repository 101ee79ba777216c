/*
 * Process and file helpers of the integration tests that start real daemons (the aggregator,
 * the agent, containerd, the Kubernetes test server): clocks, running a command, starting a
 * daemon with a log and sanitizer options, waiting for and killing it, free ports, whole
 * files, and (port_server.c) test servers that print the port they listen on. Tests #include
 * this file (like fake_aggregator.c); every function is static, and marked unused so a test
 * takes what it needs. Failures use cmocka's assertions.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "port_server.c"

#define PROC_UNUSED __attribute__((unused))

PROC_UNUSED static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

PROC_UNUSED static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

PROC_UNUSED static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Runs argv and waits; stdout goes to `out` (NUL-terminated, truncated to cap - 1) when not
 * NULL. Returns the exit status, or -1 when it could not run or was killed by a signal. */
PROC_UNUSED static int run_cmd(char *const argv[], char *out, size_t cap) {
    int pfd[2] = {-1, -1};
    if (out && pipe(pfd) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        if (out) {
            dup2(pfd[1], 1);
            close(pfd[0]);
            close(pfd[1]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (out) {
        size_t n = 0;
        ssize_t r;
        close(pfd[1]);
        while (n < cap - 1 && (r = read(pfd[0], out + n, cap - 1 - n)) > 0) {
            n += (size_t)r;
        }
        out[n] = '\0';
        close(pfd[0]);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The whole file as a NUL-terminated string (free()), or NULL; its length in *len_out. */
PROC_UNUSED static char *slurp(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - 1 - len, f)) > 0) {
        len += r;
        if (len == cap - 1) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
    }
    if (len_out) {
        *len_out = len;
    }
    return buf;
}

/* Writes `text` to path atomically (a temp file renamed over it). */
PROC_UNUSED static void write_file(const char *path, const char *text) {
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/*
 * Starts argv with stdout and stderr appended to `log` (stdout to `out_fd` instead when it is
 * >= 0), in this environment less NODE_NAME, ROBOT_SRE_*, LD_PRELOAD and FAKETIME*, plus
 * `extra` (NULL-terminated "K=V" strings, may be NULL; an ASAN_OPTIONS entry is appended to
 * ours) and sanitizer options that make a leak at exit a non-zero status. The environment is
 * built before fork. Returns the pid.
 */
PROC_UNUSED static pid_t spawn(char *const argv[], const char *log, int out_fd,
                               const char *const *extra) {
    extern char **environ;
    static char asan[1024];
    const char *user = getenv("ASAN_OPTIONS");
    const char *more = NULL;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (!strncmp(extra[i], "ASAN_OPTIONS=", 13)) {
            more = extra[i] + 13;
        }
    }
    snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%sdetect_leaks=1:exitcode=23%s%s",
             user ? user : "", user && *user ? ":" : "", more ? ":" : "", more ? more : "");
    size_t n = 0;
    while (environ[n]) {
        n++;
    }
    char **envp = calloc(n + 16, sizeof(*envp));
    assert_non_null(envp);
    size_t k = 0;
    int have_ubsan = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(environ[i], "ASAN_OPTIONS=", 13) || !strncmp(environ[i], "NODE_NAME=", 10) ||
            !strncmp(environ[i], "ROBOT_SRE_", 10) || !strncmp(environ[i], "LD_PRELOAD=", 11) ||
            !strncmp(environ[i], "FAKETIME", 8)) {
            continue;
        }
        have_ubsan |= !strncmp(environ[i], "UBSAN_OPTIONS=", 14);
        envp[k++] = environ[i];
    }
    envp[k++] = asan;
    if (!have_ubsan) {
        envp[k++] = "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1";
    }
    for (size_t i = 0; extra && extra[i] && k < n + 15; i++) {
        if (strncmp(extra[i], "ASAN_OPTIONS=", 13) != 0) {
            envp[k++] = (char *)extra[i];
        }
    }
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0 && null >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(null, 0);
        dup2(out_fd >= 0 ? out_fd : fd, 1);
        dup2(fd, 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(fd);
    close(null);
    free(envp);
    return pid;
}

/* Waits up to timeout_ms for pid; 1 and its status when it exited, 0 when it still runs. */
PROC_UNUSED static int wait_exit(pid_t pid, int64_t timeout_ms, int *status) {
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) {
            return 1;
        }
        if (r < 0 || mono_ms() > end) {
            return 0;
        }
        sleep_ms(10);
    }
}

/* SIGKILL and reap; *pid becomes 0. A no-op when *pid is 0. */
PROC_UNUSED static void kill_wait(pid_t *pid) {
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
    }
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
PROC_UNUSED static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}
