/* tls kind: TCP connect with a deadline, TLS handshake with SNI, then the chain verified
 * against ca_file (or the system store) and the name checked; days to the leaf's notAfter.
 * The handshake completes even when verification fails so the days are known either way;
 * a verification failure is a probe failure (EXPIRED, UNTRUSTED, HOSTNAME_MISMATCH, ...). */
#include "probes/probes_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int connect_deadline(const char *host, int port, int64_t timeout_ms, char *why, size_t wl) {
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0) {
        snprintf(why, wl, "resolve %s: %s", host, gai_strerror(g));
        return -EHOSTUNREACH;
    }
    int fd = -1, err = ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            rc = poll(&pfd, 1, (int)timeout_ms);
            if (rc == 0) {
                err = ETIMEDOUT;
                rc = -1;
            } else if (rc > 0) {
                socklen_t sl = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
                rc = err ? -1 : 0;
            } else {
                err = errno;
            }
        } else if (rc != 0) {
            err = errno;
        }
        if (rc == 0) {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(why, wl, "connect %s:%d: %s", host, port, strerror(err));
        return -err;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static const struct {
    long verr;
    const char *code;
} VERIFY_CODES[] = {
    {X509_V_ERR_CERT_HAS_EXPIRED, "EXPIRED"},
    {X509_V_ERR_CERT_NOT_YET_VALID, "NOT_YET_VALID"},
    {X509_V_ERR_HOSTNAME_MISMATCH, "HOSTNAME_MISMATCH"},
    {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "UNTRUSTED"},
    {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "UNTRUSTED"},
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "UNTRUSTED"},
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, "UNTRUSTED"},
    {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, "UNTRUSTED"},
    {X509_V_ERR_CERT_REVOKED, "REVOKED"},
};

void rsre__probe_tls(const struct rsre_probe_def *def, struct rsre_probe_result *res) {
    char why[300];
    int fd = connect_deadline(def->host, def->port, def->timeout_ms, why, sizeof why);
    if (fd < 0) {
        rsre__probe_fail(res,
                         fd == -ETIMEDOUT      ? "ETIMEDOUT"
                         : fd == -ECONNREFUSED ? "ECONNREFUSED"
                                               : "EHOSTUNREACH",
                         "tls %s", why);
        return;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (!ctx) {
        rsre__probe_fail(res, "ENOMEM", "tls: cannot create a context");
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (def->ca_file[0] ? SSL_CTX_load_verify_locations(ctx, def->ca_file, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        rsre__probe_fail(res, "CA_FILE", "tls: cannot load CA %s",
                         def->ca_file[0] ? def->ca_file : "(system)");
        goto out;
    }
    /* SSL_VERIFY_NONE: the handshake completes and the verification result is read below. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    ssl = SSL_new(ctx);
    if (!ssl) {
        rsre__probe_fail(res, "ENOMEM", "tls: cannot create a session");
        goto out;
    }
    SSL_set_fd(ssl, fd);
    /* An IP address is checked against the certificate's IP SANs and sent without SNI (SNI
     * carries host names only); a name is sent as SNI and checked against the DNS SANs. */
    unsigned char ipbuf[16];
    int is_ip = inet_pton(AF_INET, def->server_name, ipbuf) == 1 ||
                inet_pton(AF_INET6, def->server_name, ipbuf) == 1;
    if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), def->server_name);
    } else {
        SSL_set_tlsext_host_name(ssl, def->server_name);
        X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), def->server_name, 0);
    }
    ERR_clear_error();
    if (SSL_connect(ssl) != 1) {
        char e[200];
        unsigned long ec = ERR_get_error();
        ERR_error_string_n(ec, e, sizeof e);
        res->tls_failed = 1;
        rsre__probe_fail(res, "HANDSHAKE", "tls %s:%d handshake: %s", def->host, def->port,
                         ec ? e : (errno == EAGAIN ? "timed out" : "connection closed"));
        goto out;
    }
    X509 *leaf = SSL_get1_peer_certificate(ssl);
    if (!leaf) {
        res->tls_failed = 1;
        rsre__probe_fail(res, "NO_CERT", "tls %s:%d: no certificate", def->host, def->port);
        goto out;
    }
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(leaf))) {
        res->has_days = 1;
        res->days_to_expiry = days + secs / 86400.0;
    }
    X509_free(leaf);
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        const char *code = "VERIFY_FAILED";
        for (size_t i = 0; i < sizeof VERIFY_CODES / sizeof VERIFY_CODES[0]; i++) {
            if (VERIFY_CODES[i].verr == v) {
                code = VERIFY_CODES[i].code;
            }
        }
        res->tls_failed = 1;
        rsre__probe_fail(res, code, "tls %s:%d (%s): certificate verify failed: %s", def->host,
                         def->port, def->server_name, X509_verify_cert_error_string(v));
        goto out;
    }
    res->ok = 1;
out:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    SSL_CTX_free(ctx);
    close(fd);
}
