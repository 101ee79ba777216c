/*
 * libFuzzer target for the strict parsers in front of the OCI executor (aggregator/exec/oci.h,
 * oci_sign.h): Kubernetes spec.providerID -> instance OCID, node pool choice (label vs
 * configuration), the OCID shape check, and the signing-string builder fed with the parsed
 * parts. The input is the provider ID; its first byte, when present, also picks how the rest is
 * used as a node-pool label.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak":
 *   - an accepted provider ID is exactly "oci://" + the OCID returned, which is at most
 *     RSRE_OCI_OCID_MAX bytes of [a-z0-9.-], starts "ocid1.instance.", has a non-empty realm
 *     and region equal to its 3rd and 4th dot-separated fields, and parses again to the same;
 *   - a rejected one leaves the output zeroed;
 *   - rsre_oci_ocid_check agrees with the parser on the OCID part;
 *   - a chosen node pool is one of the two inputs and passes the nodepool OCID check; a
 *     present but malformed label never yields the configured pool;
 *   - a path built from an accepted OCID yields a signing string with exactly three lines and
 *     no character outside printable ASCII.
 *
 *   CC=clang cmake -S . -B build-oci-fuzz -DRSRE_FUZZ=ON
 *   cmake --build build-oci-fuzz --target fuzz_oci_provider_id
 *   ./build-oci-fuzz/tests/fuzz_oci_provider_id -max_total_time=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "exec/oci.h"
#include "exec/oci_sign.h"

#define POOL "ocid1.nodepool.oc1.iad.aaaaaaaaxa4tkmbvgjstsyzzg4ytanzrmqzdsmzqgrqtgzbtgbqtgmbsguyt"

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static int is_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i]) {
            return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) {
        return 0;
    }
    char *s = malloc(size + 1);
    if (!s) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0'; /* embedded NULs end the C string, as they would for any caller */

    struct rsre_oci_instance_ref ref;
    int rc = rsre_oci_parse_provider_id(s, &ref);
    check(rc == 0 || rc == RSRE_EINVALID);
    if (rc != 0) {
        check(is_zero(&ref, sizeof(ref)));
        if (strncmp(s, "oci://", 6) == 0) {
            /* The parser and the shape check agree, except that instances need a region. */
            int ok = rsre_oci_ocid_check(s + 6, "instance") == 0;
            if (ok) {
                /* ... or a realm / region segment longer than any real one. */
                check(strncmp(s + 6, "ocid1.instance.", 15) == 0);
                const char *realm = s + 6 + 15;
                const char *realm_end = strchr(realm, '.');
                check(realm_end != NULL);
                const char *region_end = strchr(realm_end + 1, '.');
                check(region_end != NULL);
                size_t rl = (size_t)(realm_end - realm);
                size_t gl = (size_t)(region_end - realm_end - 1);
                check(gl == 0 || rl >= sizeof(ref.realm) || gl >= sizeof(ref.region));
            }
        }
    } else {
        size_t n = strlen(ref.ocid);
        check(n > 0 && n <= RSRE_OCI_OCID_MAX);
        check(strlen(s) == 6 + n && memcmp(s, "oci://", 6) == 0 && strcmp(s + 6, ref.ocid) == 0);
        check(strncmp(ref.ocid, "ocid1.instance.", 15) == 0);
        for (size_t i = 0; i < n; i++) {
            char c = ref.ocid[i];
            check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-');
        }
        check(ref.realm[0] && ref.region[0]);
        char want[400];
        snprintf(want, sizeof(want), "ocid1.instance.%s.%s.", ref.realm, ref.region);
        check(strncmp(ref.ocid, want, strlen(want)) == 0);
        check(rsre_oci_ocid_check(ref.ocid, "instance") == 0);
        check(rsre_oci_ocid_check(ref.ocid, "nodepool") == RSRE_EINVALID);
        struct rsre_oci_instance_ref again;
        check(rsre_oci_parse_provider_id(s, &again) == 0);
        check(memcmp(&ref, &again, sizeof(ref)) == 0);

        /* What the client would sign for a GET of this instance. */
        char path[RSRE_OCI_PATH_MAX];
        snprintf(path, sizeof(path), "/20160918/instances/%s", ref.ocid);
        struct rsre_oci_sign_input in = {.method = "GET",
                                         .target = path,
                                         .host = "iaas.us-ashburn-1.oraclecloud.com",
                                         .date = "Mon, 02 Jun 2025 10:00:00 GMT"};
        char ss[8192];
        int len = rsre_oci_signing_string(&in, ss, sizeof(ss));
        check(len > 0 && (size_t)len == strlen(ss));
        int lines = 1;
        for (int i = 0; i < len; i++) {
            unsigned char c = (unsigned char)ss[i];
            lines += c == '\n';
            check(c == '\n' || (c >= 0x20 && c < 0x7f));
        }
        check(lines == 3);
    }

    /* The same bytes as a node-pool label (from the first byte on, or after it). */
    const char *label = size && (data[0] & 1) ? s + 1 : s;
    const char *pick = NULL;
    int prc = rsre_oci_pick_node_pool(label, POOL, &pick);
    if (*label) {
        check(prc == 0 || prc == RSRE_EINVALID);
        if (prc == 0) {
            check(pick == label);
            check(rsre_oci_ocid_check(pick, "nodepool") == 0);
        } else {
            check(pick == NULL);
        }
    } else {
        check(prc == 0 && pick != NULL && strcmp(pick, POOL) == 0);
    }
    check(rsre_oci_pick_node_pool(NULL, label, &pick) ==
          (*label ? (rsre_oci_ocid_check(label, "nodepool") == 0 ? 0 : RSRE_EINVALID)
                  : RSRE_ENOTFOUND));
    free(s);
    return 0;
}
