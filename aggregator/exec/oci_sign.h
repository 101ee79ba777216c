#ifndef RSRE_OCI_SIGN_H
#define RSRE_OCI_SIGN_H

/*
 * OCI API-key request signing ("Request Signatures", signature version 1): HTTP Signatures
 * (draft-cavage-http-signatures-08) with RSA-SHA256 (PKCS#1 v1.5), as Oracle's documentation
 * and SDKs do it.
 *
 *   Authorization: Signature version="1",headers="date (request-target) host[ content-length
 *       content-type x-content-sha256]",keyId="<tenancy>/<user>/<fingerprint>",
 *       algorithm="rsa-sha256",signature="<base64>"
 *
 * The signed header list and the parameter order are the ones of OCI's published example and
 * of its SDKs (any order verifies; this one reproduces the published Authorization headers
 * byte for byte). POST, PUT and PATCH sign the three body headers, even for an empty body;
 * other methods sign only date, (request-target) and host.
 *
 * Key material never leaves this module: keys are opaque, passphrases are wiped after use,
 * and nothing here logs a key, a passphrase or a signing string.
 *
 * Threading: a loaded key is read-only and may be shared between threads; every function is
 * reentrant.
 */

#include <stddef.h>

#define RSRE_OCI_FINGERPRINT_LEN 48 /* "xx:" x 16 minus one, plus NUL */
#define RSRE_OCI_OCID_MAX 255       /* OCIDs are at most 255 characters */
#define RSRE_OCI_KEY_ID_MAX (2 * RSRE_OCI_OCID_MAX + RSRE_OCI_FINGERPRINT_LEN + 2)
#define RSRE_OCI_MAX_KEY_FILE (64u << 10)
#define RSRE_OCI_MAX_TARGET 4096 /* path + query */
#define RSRE_OCI_MAX_HOST 256
#define RSRE_OCI_DATE_LEN 32 /* "Thu, 05 Jan 2014 21:31:40 GMT" */
#define RSRE_OCI_SHA256_B64_LEN 48
#define RSRE_OCI_AUTH_MAX 2048 /* fits a 4096-bit signature and the longest keyId */
#define RSRE_OCI_MAX_SIGNED_HEADERS 6

/* ---- keys ------------------------------------------------------------------------------- */

struct rsre_oci_key; /* an RSA private key and its public-key fingerprint */

/*
 * Loads an RSA private key from PEM text: PKCS#1 ("RSA PRIVATE KEY", optionally encrypted
 * with Proc-Type/DEK-Info) or PKCS#8 ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"). `passphrase`
 * may be NULL; it is only used for an encrypted key and never prompted for. Computes the
 * fingerprint (MD5 of the DER SubjectPublicKeyInfo, lower-case colon-separated hex, as the
 * OCI console shows it).
 *
 * Returns 0 with *out set (free with rsre_oci_key_free), or RSRE_EPARSE (not a PEM private
 * key), -EACCES (encrypted and no passphrase, or the wrong passphrase), RSRE_EINVALID (not an
 * RSA key, or shorter than 1024 bits), RSRE_ELIMIT (more than RSRE_OCI_MAX_KEY_FILE bytes),
 * -ENOMEM; err (optional) gets a readable reason that never contains key material.
 */
int rsre_oci_key_load_pem(const void *pem, size_t len, const char *passphrase,
                          struct rsre_oci_key **out, char *err, size_t err_len);

/* The same from a file (read whole, bounded, wiped from memory after parsing). Adds -errno
 * for a file that cannot be read. */
int rsre_oci_key_load_file(const char *path, const char *passphrase, struct rsre_oci_key **out,
                           char *err, size_t err_len);

/* Wipes and frees. NULL is a no-op. */
void rsre_oci_key_free(struct rsre_oci_key *key);

/* The key's fingerprint, e.g. "73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7"; valid as long
 * as the key. */
const char *rsre_oci_key_fingerprint(const struct rsre_oci_key *key);

/* Modulus size in bits. */
int rsre_oci_key_bits(const struct rsre_oci_key *key);

/*
 * Compares a configured fingerprint with the key's: 16 colon-separated hex bytes, either case.
 * Returns 0 when they match, RSRE_EINVALID when the configured one is malformed or differs.
 */
int rsre_oci_key_check_fingerprint(const struct rsre_oci_key *key, const char *fingerprint);

/* ---- signing ---------------------------------------------------------------------------- */

/* One request to sign. Strings are borrowed for the call. */
struct rsre_oci_sign_input {
    const char *method; /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" (upper case) */
    const char *target; /* path and query exactly as sent, e.g.
                           "/20160918/instances/ocid1...?action=SOFTRESET" */
    const char *host;   /* the Host header sent: "iaas.us-ashburn-1.oraclecloud.com" or
                           "127.0.0.1:8080" */
    const char *date;   /* IMF-fixdate; NULL = now */
    const void *body;   /* NULL = empty */
    size_t body_len;
    const char *content_type; /* for POST/PUT/PATCH; NULL = "application/json" */
};

/*
 * The headers to add, as values and as ready "name: value" lines (lines[0..nlines), in the
 * order: date, host, [content-length, content-type, x-content-sha256,] authorization).
 */
struct rsre_oci_signed {
    char date[RSRE_OCI_DATE_LEN];
    char content_length[24];                        /* "" when not signed */
    char content_type[128];                         /* "" when not signed */
    char x_content_sha256[RSRE_OCI_SHA256_B64_LEN]; /* "" when not signed */
    char signature[1024];                           /* base64 RSA-SHA256 signature */
    char authorization[RSRE_OCI_AUTH_MAX];          /* "Signature version=..." */
    char lines[RSRE_OCI_MAX_SIGNED_HEADERS][RSRE_OCI_AUTH_MAX + 16];
    size_t nlines;
};

/*
 * Builds the signing string of `in` into buf (NUL-terminated): one "name: value" line per
 * signed header, separated by "\n", no trailing newline; (request-target) is the lower-case
 * method, a space and the target. in->date must be set. Returns the length, or RSRE_EINVALID
 * (bad method, target not starting with '/', a control character or a space in a value,
 * missing host), RSRE_ELIMIT (buf too small).
 */
int rsre_oci_signing_string(const struct rsre_oci_sign_input *in, char *buf, size_t cap);

/*
 * Signs `in` with `key` under `key_id` ("<tenancy OCID>/<user OCID>/<fingerprint>", copied
 * as given). Pure apart from reading the clock when in->date is NULL; deterministic for a
 * given input (RSA PKCS#1 v1.5). Returns 0, RSRE_EINVALID (as rsre_oci_signing_string, or a
 * key_id with a quote, a control character or more than RSRE_OCI_KEY_ID_MAX bytes),
 * RSRE_ELIMIT, -ENOMEM, -EIO (OpenSSL failed; its error is logged, without key material).
 */
int rsre_oci_sign(const struct rsre_oci_key *key, const char *key_id,
                  const struct rsre_oci_sign_input *in, struct rsre_oci_signed *out);

/* Formats t (seconds since the epoch, UTC) as an IMF-fixdate into out (RSRE_OCI_DATE_LEN),
 * independent of the locale. */
void rsre_oci_http_date(long long t, char out[RSRE_OCI_DATE_LEN]);

/* base64 of SHA-256 of the body, as x-content-sha256 carries it. */
int rsre_oci_body_sha256(const void *body, size_t len, char out[RSRE_OCI_SHA256_B64_LEN]);

/* ---- credentials: the key plus the identity it signs for -------------------------------- */

struct rsre_oci_credentials {
    const char *tenancy;     /* ocid1.tenancy.oc1..xxx */
    const char *user;        /* ocid1.user.oc1..xxx */
    const char *fingerprint; /* as the console shows it; must match the key */
    const char *key_file;    /* PEM private key */
    const char *passphrase;  /* NULL = none; wiped by the caller */
};

struct rsre_oci_signer;

/*
 * Loads the key, checks the OCIDs' shape (ocid1.tenancy.*, ocid1.user.*) and that the
 * configured fingerprint is the key's own (OCI would answer 401 NotAuthenticated otherwise;
 * failing here says why). Returns 0, the codes of rsre_oci_key_load_file, RSRE_EINVALID
 * (malformed OCID, fingerprint mismatch), with err filled.
 */
int rsre_oci_signer_create(const struct rsre_oci_credentials *cred, struct rsre_oci_signer **out,
                           char *err, size_t err_len);

void rsre_oci_signer_destroy(struct rsre_oci_signer *s);

/* "<tenancy>/<user>/<fingerprint>"; valid as long as the signer. */
const char *rsre_oci_signer_key_id(const struct rsre_oci_signer *s);

/* rsre_oci_sign with the signer's key and keyId. */
int rsre_oci_signer_sign(const struct rsre_oci_signer *s, const struct rsre_oci_sign_input *in,
                         struct rsre_oci_signed *out);

/*
 * Checks the shape of an OCID: "ocid1.<type>.<realm>.[region][.future].<unique>": type, realm
 * and unique id non-empty lower-case letters and digits; region and future (either may be
 * empty) also '-' inside; at most RSRE_OCI_OCID_MAX characters. `type` (e.g.
 * "instance", "nodepool", "tenancy"; NULL = any) must match. Returns 0 or RSRE_EINVALID.
 */
int rsre_oci_ocid_check(const char *ocid, const char *type);

#endif
