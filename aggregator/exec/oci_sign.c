/*
 * OCI API-key request signing (see oci_sign.h). OpenSSL 3: OSSL_DECODER for the PEM key,
 * EVP_DigestSign for RSA-SHA256 (PKCS#1 v1.5 is the RSA default), EVP_Digest for the body
 * hash and the fingerprint.
 */
#include "exec/oci_sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/error.h"
#include "common/log.h"

#define MOD "oci_sign"
#define SIGNING_STRING_MAX (RSRE_OCI_MAX_TARGET + 1024)

struct rsre_oci_key {
    EVP_PKEY *pkey;
    int bits;
    char fingerprint[RSRE_OCI_FINGERPRINT_LEN];
};

struct rsre_oci_signer {
    struct rsre_oci_key *key;
    char key_id[RSRE_OCI_KEY_ID_MAX + 1];
};

static int errf(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t len, int code, const char *fmt, ...) {
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Logs and clears OpenSSL's error queue (its messages name algorithms and formats, never key
 * bytes). */
static void log_openssl(const char *what) {
    unsigned long e;
    int first = 1;
    while ((e = ERR_get_error()) != 0) {
        if (first) {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof(buf));
            RSRE_LOG(RSRE_LOG_ERROR, MOD, "%s failed openssl=\"%s\"", what, buf);
            first = 0;
        }
    }
    if (first) {
        RSRE_LOG(RSRE_LOG_ERROR, MOD, "%s failed", what);
    }
}

/* ---- keys ------------------------------------------------------------------------------- */

static const char *pem_label(const char *pem, size_t len, char *label, size_t cap) {
    static const char begin[] = "-----BEGIN ";
    const char *end = pem + len;
    for (const char *p = pem; p + sizeof(begin) - 1 <= end; p++) {
        if (memcmp(p, begin, sizeof(begin) - 1) == 0) {
            const char *s = p + sizeof(begin) - 1;
            const char *e = s;
            while (e < end && *e != '-' && *e != '\n' && (size_t)(e - s) < cap - 1) {
                e++;
            }
            memcpy(label, s, (size_t)(e - s));
            label[e - s] = '\0';
            return p;
        }
    }
    return NULL;
}

static int contains(const char *hay, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Never prompt: a key that needs a passphrase we were not given fails to decode. */
static int no_prompt(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int fingerprint_of(EVP_PKEY *pkey, char out[RSRE_OCI_FINGERPRINT_LEN]) {
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0) {
        log_openssl("i2d_PUBKEY");
        return -EIO;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD *md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    int ok = md5 && EVP_Digest(der, (size_t)n, md, &mdlen, md5, NULL) == 1 && mdlen == 16;
    EVP_MD_free(md5);
    OPENSSL_free(der);
    if (!ok) {
        log_openssl("MD5 fingerprint");
        return -EIO;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 16; i++) {
        out[i * 3] = hex[md[i] >> 4];
        out[i * 3 + 1] = hex[md[i] & 15];
        out[i * 3 + 2] = i == 15 ? '\0' : ':';
    }
    return 0;
}

int rsre_oci_key_load_pem(const void *pem, size_t len, const char *passphrase,
                          struct rsre_oci_key **out, char *err, size_t err_len) {
    *out = NULL;
    if (err && err_len) {
        err[0] = '\0';
    }
    if (!pem) {
        return errf(err, err_len, -EINVAL, "no key");
    }
    if (len > RSRE_OCI_MAX_KEY_FILE) {
        return errf(err, err_len, RSRE_ELIMIT, "key file larger than %u bytes",
                    RSRE_OCI_MAX_KEY_FILE);
    }
    char label[40];
    if (!pem_label(pem, len, label, sizeof(label))) {
        return errf(err, err_len, RSRE_EPARSE, "not a PEM file (no \"-----BEGIN\" line)");
    }
    if (strcmp(label, "RSA PRIVATE KEY") != 0 && strcmp(label, "PRIVATE KEY") != 0 &&
        strcmp(label, "ENCRYPTED PRIVATE KEY") != 0) {
        return errf(err, err_len, RSRE_EPARSE,
                    "PEM block is \"%s\"; expected an RSA private key (\"RSA PRIVATE KEY\", "
                    "\"PRIVATE KEY\" or \"ENCRYPTED PRIVATE KEY\")",
                    label);
    }
    int encrypted =
        strcmp(label, "ENCRYPTED PRIVATE KEY") == 0 || contains(pem, len, "Proc-Type: 4,ENCRYPTED");
    if (encrypted && (!passphrase || !*passphrase)) {
        return errf(err, err_len, -EACCES, "private key is encrypted and no passphrase is set");
    }

    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
                                                           OSSL_KEYMGMT_SELECT_KEYPAIR, NULL, NULL);
    if (!dctx) {
        log_openssl("OSSL_DECODER_CTX_new_for_pkey");
        return errf(err, err_len, -ENOMEM, "cannot set up the key decoder");
    }
    if (encrypted) {
        OSSL_DECODER_CTX_set_passphrase(dctx, (const unsigned char *)passphrase,
                                        strlen(passphrase));
    } else {
        OSSL_DECODER_CTX_set_pem_password_cb(dctx, no_prompt, NULL);
    }
    const unsigned char *data = pem;
    size_t left = len;
    int ok = OSSL_DECODER_from_data(dctx, &data, &left);
    OSSL_DECODER_CTX_free(dctx);
    ERR_clear_error(); /* the decoder leaves errors from the formats it tried */
    if (!ok || !pkey) {
        EVP_PKEY_free(pkey);
        if (encrypted) {
            return errf(err, err_len, -EACCES,
                        "cannot decrypt the private key: wrong passphrase or corrupt key");
        }
        return errf(err, err_len, RSRE_EPARSE, "cannot decode the %s PEM block", label);
    }
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        const char *type = EVP_PKEY_get0_type_name(pkey);
        EVP_PKEY_free(pkey);
        return errf(err, err_len, RSRE_EINVALID, "key type is %s; OCI API signing keys are RSA",
                    type ? type : "unknown");
    }
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < 1024) {
        EVP_PKEY_free(pkey);
        return errf(err, err_len, RSRE_EINVALID, "RSA key of %d bits is too short", bits);
    }
    struct rsre_oci_key *k = calloc(1, sizeof(*k));
    if (!k) {
        EVP_PKEY_free(pkey);
        return errf(err, err_len, -ENOMEM, "out of memory");
    }
    k->pkey = pkey;
    k->bits = bits;
    int rc = fingerprint_of(pkey, k->fingerprint);
    if (rc != 0) {
        rsre_oci_key_free(k);
        return errf(err, err_len, rc, "cannot compute the key fingerprint (MD5 unavailable?)");
    }
    *out = k;
    return 0;
}

int rsre_oci_key_load_file(const char *path, const char *passphrase, struct rsre_oci_key **out,
                           char *err, size_t err_len) {
    *out = NULL;
    if (!path || !*path) {
        return errf(err, err_len, -EINVAL, "no key file configured");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return errf(err, err_len, -e, "%s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return errf(err, err_len, -EINVAL, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > RSRE_OCI_MAX_KEY_FILE) {
        close(fd);
        return errf(err, err_len, RSRE_ELIMIT, "%s: larger than %u bytes", path,
                    RSRE_OCI_MAX_KEY_FILE);
    }
    size_t cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return errf(err, err_len, -ENOMEM, "out of memory");
    }
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    char why[256] = "";
    int rc = rsre_oci_key_load_pem(buf, got, passphrase, out, why, sizeof(why));
    OPENSSL_cleanse(buf, cap);
    free(buf);
    if (rc != 0) {
        return errf(err, err_len, rc, "%s: %s", path, why);
    }
    return 0;
}

void rsre_oci_key_free(struct rsre_oci_key *key) {
    if (!key) {
        return;
    }
    EVP_PKEY_free(key->pkey); /* OpenSSL clears private key material on free */
    free(key);
}

const char *rsre_oci_key_fingerprint(const struct rsre_oci_key *key) {
    return key->fingerprint;
}

int rsre_oci_key_bits(const struct rsre_oci_key *key) {
    return key->bits;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int rsre_oci_key_check_fingerprint(const struct rsre_oci_key *key, const char *fp) {
    if (!fp || strlen(fp) != RSRE_OCI_FINGERPRINT_LEN - 1) {
        return RSRE_EINVALID;
    }
    for (size_t i = 0; i < RSRE_OCI_FINGERPRINT_LEN - 1; i++) {
        if (i % 3 == 2) {
            if (fp[i] != ':') {
                return RSRE_EINVALID;
            }
        } else if (hexval((unsigned char)fp[i]) < 0 ||
                   hexval((unsigned char)fp[i]) != hexval((unsigned char)key->fingerprint[i])) {
            return RSRE_EINVALID;
        }
    }
    return 0;
}

/* ---- signing ---------------------------------------------------------------------------- */

static const char *const body_methods[] = {"POST", "PUT", "PATCH"};
static const char *const plain_methods[] = {"GET", "DELETE", "HEAD", "OPTIONS"};

/* 1: signs the body headers, 0: does not, -1: not a method we sign. */
static int method_kind(const char *m) {
    if (!m) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(body_methods) / sizeof(body_methods[0]); i++) {
        if (strcmp(m, body_methods[i]) == 0) {
            return 1;
        }
    }
    for (size_t i = 0; i < sizeof(plain_methods) / sizeof(plain_methods[0]); i++) {
        if (strcmp(m, plain_methods[i]) == 0) {
            return 0;
        }
    }
    return -1;
}

/* Visible ASCII only (no space, no control, no DEL): targets, hosts. */
static int visible(const char *s, size_t max) {
    size_t n = 0;
    for (; *s; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || n >= max) {
            return 0;
        }
    }
    return n > 0;
}

/* Printable ASCII including spaces: dates, content types. */
static int printable(const char *s, size_t max) {
    size_t n = 0;
    for (; *s; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || n >= max) {
            return 0;
        }
    }
    return n > 0;
}

static int check_input(const struct rsre_oci_sign_input *in, int *with_body) {
    int kind = method_kind(in->method);
    if (kind < 0 || !in->target || in->target[0] != '/' ||
        !visible(in->target, RSRE_OCI_MAX_TARGET) || !in->host ||
        !visible(in->host, RSRE_OCI_MAX_HOST) || (in->body_len && !in->body)) {
        return RSRE_EINVALID;
    }
    if (in->date && !printable(in->date, RSRE_OCI_DATE_LEN - 1)) {
        return RSRE_EINVALID;
    }
    if (kind == 1 && in->content_type && !printable(in->content_type, 127)) {
        return RSRE_EINVALID;
    }
    *with_body = kind;
    return 0;
}

void rsre_oci_http_date(long long t, char out[RSRE_OCI_DATE_LEN]) {
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_mday = 1;
        tm.tm_year = 70;
        tm.tm_wday = 4;
    }
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    size_t n = strnlen(tmp, RSRE_OCI_DATE_LEN - 1);
    memcpy(out, tmp, n);
    out[n] = '\0';
}

int rsre_oci_body_sha256(const void *body, size_t len, char out[RSRE_OCI_SHA256_B64_LEN]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char empty = 0;
    if (EVP_Digest(body ? body : &empty, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        log_openssl("SHA-256");
        return -EIO;
    }
    EVP_EncodeBlock((unsigned char *)out, md, 32); /* 44 characters and a NUL */
    return 0;
}

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len) {
        return RSRE_ELIMIT;
    }
    *len += (size_t)n;
    return 0;
}

/* The signing string from checked parts. sha is "" for methods without body headers. */
static int build_signing_string(const struct rsre_oci_sign_input *in, const char *date,
                                int with_body, const char *clen, const char *ctype, const char *sha,
                                char *buf, size_t cap) {
    char lower[8];
    size_t i = 0;
    for (; in->method[i] && i < sizeof(lower) - 1; i++) {
        lower[i] = (char)(in->method[i] - 'A' + 'a');
    }
    lower[i] = '\0';
    size_t len = 0;
    if (cap == 0) {
        return RSRE_ELIMIT;
    }
    buf[0] = '\0';
    int rc = append(buf, cap, &len, "date: %s\n(request-target): %s %s\nhost: %s", date, lower,
                    in->target, in->host);
    if (rc == 0 && with_body) {
        rc = append(buf, cap, &len, "\ncontent-length: %s\ncontent-type: %s\nx-content-sha256: %s",
                    clen, ctype, sha);
    }
    return rc != 0 ? rc : (int)len;
}

int rsre_oci_signing_string(const struct rsre_oci_sign_input *in, char *buf, size_t cap) {
    int with_body = 0;
    if (!in || !in->date || check_input(in, &with_body) != 0) {
        return RSRE_EINVALID;
    }
    char clen[24] = "", sha[RSRE_OCI_SHA256_B64_LEN] = "";
    const char *ctype = "";
    if (with_body) {
        snprintf(clen, sizeof(clen), "%zu", in->body_len);
        ctype = in->content_type ? in->content_type : "application/json";
        int rc = rsre_oci_body_sha256(in->body, in->body_len, sha);
        if (rc != 0) {
            return rc;
        }
    }
    return build_signing_string(in, in->date, with_body, clen, ctype, sha, buf, cap);
}

static int valid_key_id(const char *id) {
    size_t n = 0;
    for (; id[n]; n++) {
        unsigned char c = (unsigned char)id[n];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || n >= RSRE_OCI_KEY_ID_MAX) {
            return 0;
        }
    }
    return n > 0;
}

static int rsa_sha256(EVP_PKEY *pkey, const char *msg, size_t len, char *b64, size_t cap) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) {
        return -ENOMEM;
    }
    int rc = -EIO;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    if (EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)msg, len) != 1) {
        log_openssl("RSA-SHA256 sign init");
        goto out;
    }
    if ((siglen + 2) / 3 * 4 + 1 > cap) {
        rc = RSRE_ELIMIT;
        goto out;
    }
    sig = OPENSSL_malloc(siglen);
    if (!sig) {
        rc = -ENOMEM;
        goto out;
    }
    if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)msg, len) != 1) {
        log_openssl("RSA-SHA256 sign");
        goto out;
    }
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
    rc = 0;
out:
    OPENSSL_free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

static int add_line(struct rsre_oci_signed *out, const char *name, const char *value) {
    if (out->nlines >= RSRE_OCI_MAX_SIGNED_HEADERS) {
        return RSRE_ELIMIT;
    }
    /* `value` may live inside *out (its date or signature fields): build the line apart. */
    char line[sizeof(out->lines[0])];
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return RSRE_ELIMIT;
    }
    memcpy(out->lines[out->nlines], line, (size_t)n + 1);
    out->nlines++;
    return 0;
}

int rsre_oci_sign(const struct rsre_oci_key *key, const char *key_id,
                  const struct rsre_oci_sign_input *in, struct rsre_oci_signed *out) {
    memset(out, 0, sizeof(*out));
    int with_body = 0;
    if (!key || !key_id || !in || !valid_key_id(key_id) || check_input(in, &with_body) != 0) {
        return RSRE_EINVALID;
    }
    if (in->date) {
        snprintf(out->date, sizeof(out->date), "%s", in->date);
    } else {
        rsre_oci_http_date((long long)time(NULL), out->date);
    }
    if (with_body) {
        snprintf(out->content_length, sizeof(out->content_length), "%zu", in->body_len);
        snprintf(out->content_type, sizeof(out->content_type), "%s",
                 in->content_type ? in->content_type : "application/json");
        int rc = rsre_oci_body_sha256(in->body, in->body_len, out->x_content_sha256);
        if (rc != 0) {
            return rc;
        }
    }
    char *ss = malloc(SIGNING_STRING_MAX);
    if (!ss) {
        return -ENOMEM;
    }
    int len = build_signing_string(in, out->date, with_body, out->content_length, out->content_type,
                                   out->x_content_sha256, ss, SIGNING_STRING_MAX);
    int rc = len < 0
                 ? len
                 : rsa_sha256(key->pkey, ss, (size_t)len, out->signature, sizeof(out->signature));
    free(ss);
    if (rc != 0) {
        return rc;
    }
    int n = snprintf(out->authorization, sizeof(out->authorization),
                     "Signature version=\"1\",headers=\"date (request-target) host%s\","
                     "keyId=\"%s\",algorithm=\"rsa-sha256\",signature=\"%s\"",
                     with_body ? " content-length content-type x-content-sha256" : "", key_id,
                     out->signature);
    if (n < 0 || (size_t)n >= sizeof(out->authorization)) {
        return RSRE_ELIMIT;
    }
    rc = add_line(out, "date", out->date);
    if (rc == 0) {
        rc = add_line(out, "host", in->host);
    }
    if (rc == 0 && with_body) {
        rc = add_line(out, "content-length", out->content_length);
        if (rc == 0) {
            rc = add_line(out, "content-type", out->content_type);
        }
        if (rc == 0) {
            rc = add_line(out, "x-content-sha256", out->x_content_sha256);
        }
    }
    if (rc == 0) {
        rc = add_line(out, "authorization", out->authorization);
    }
    return rc;
}

/* ---- OCIDs and credentials -------------------------------------------------------------- */

static int seg_ok(const char *s, size_t n, int allow_dash, int allow_empty) {
    if (n == 0) {
        return allow_empty;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (allow_dash && c == '-'))) {
            return 0;
        }
    }
    if (allow_dash && (s[0] == '-' || s[n - 1] == '-')) {
        return 0;
    }
    return 1;
}

int rsre_oci_ocid_check(const char *ocid, const char *type) {
    if (!ocid) {
        return RSRE_EINVALID;
    }
    size_t len = strnlen(ocid, RSRE_OCI_OCID_MAX + 1);
    if (len > RSRE_OCI_OCID_MAX || strncmp(ocid, "ocid1.", 6) != 0) {
        return RSRE_EINVALID;
    }
    const char *seg[8];
    size_t segl[8];
    size_t nseg = 0;
    const char *p = ocid;
    for (;;) {
        const char *dot = memchr(p, '.', len - (size_t)(p - ocid));
        if (nseg == 8) {
            return RSRE_EINVALID;
        }
        seg[nseg] = p;
        segl[nseg] = dot ? (size_t)(dot - p) : len - (size_t)(p - ocid);
        nseg++;
        if (!dot) {
            break;
        }
        p = dot + 1;
    }
    /* ocid1 . type . realm . region [. future] . unique */
    if (nseg != 5 && nseg != 6) {
        return RSRE_EINVALID;
    }
    if (!seg_ok(seg[1], segl[1], 0, 0) || !seg_ok(seg[2], segl[2], 0, 0) ||
        !seg_ok(seg[3], segl[3], 1, 1) || (nseg == 6 && !seg_ok(seg[4], segl[4], 1, 1)) ||
        !seg_ok(seg[nseg - 1], segl[nseg - 1], 0, 0)) {
        return RSRE_EINVALID;
    }
    if (type && (strlen(type) != segl[1] || memcmp(type, seg[1], segl[1]) != 0)) {
        return RSRE_EINVALID;
    }
    return 0;
}

int rsre_oci_signer_create(const struct rsre_oci_credentials *cred, struct rsre_oci_signer **out,
                           char *err, size_t err_len) {
    *out = NULL;
    if (!cred) {
        return errf(err, err_len, -EINVAL, "no credentials");
    }
    if (rsre_oci_ocid_check(cred->tenancy, "tenancy") != 0) {
        return errf(err, err_len, RSRE_EINVALID,
                    "tenancy: not a tenancy OCID (ocid1.tenancy.<realm>..<id>)");
    }
    if (rsre_oci_ocid_check(cred->user, "user") != 0) {
        return errf(err, err_len, RSRE_EINVALID,
                    "user: not a user OCID (ocid1.user.<realm>..<id>)");
    }
    struct rsre_oci_signer *s = calloc(1, sizeof(*s));
    if (!s) {
        return errf(err, err_len, -ENOMEM, "out of memory");
    }
    int rc = rsre_oci_key_load_file(cred->key_file, cred->passphrase, &s->key, err, err_len);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if (rsre_oci_key_check_fingerprint(s->key, cred->fingerprint) != 0) {
        rc = errf(err, err_len, RSRE_EINVALID,
                  "fingerprint: configured \"%.60s\" but the key file's is %s (upload this key's "
                  "public half to the user, or configure the matching key)",
                  cred->fingerprint ? cred->fingerprint : "", s->key->fingerprint);
        rsre_oci_signer_destroy(s);
        return rc;
    }
    /* The keyId carries the fingerprint as OCI computed it: lower-case. */
    snprintf(s->key_id, sizeof(s->key_id), "%s/%s/%s", cred->tenancy, cred->user,
             s->key->fingerprint);
    *out = s;
    return 0;
}

void rsre_oci_signer_destroy(struct rsre_oci_signer *s) {
    if (!s) {
        return;
    }
    rsre_oci_key_free(s->key);
    free(s);
}

const char *rsre_oci_signer_key_id(const struct rsre_oci_signer *s) {
    return s->key_id;
}

int rsre_oci_signer_sign(const struct rsre_oci_signer *s, const struct rsre_oci_sign_input *in,
                         struct rsre_oci_signed *out) {
    return rsre_oci_sign(s->key, s->key_id, in, out);
}
