/*
 * Tests of agent/footprint.h in this very process (it links gRPC and abseil like the agent):
 * the early step finds abseil's deadlock-detection setter exactly when the loaded abseil exports
 * it, and sets gRPC's backup-poller variable without overwriting an operator's value; dropping
 * clean file pages releases resident file pages (RssFile goes down) and the code in them still
 * runs afterwards; malloc_trim is callable at any time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/footprint.h"

/* RssFile of this process, in KiB, from /proc/self/status. */
static long rss_file_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "RssFile:", 8)) {
            v = strtol(line + 8, NULL, 10);
        }
    }
    fclose(f);
    return v;
}

static void test_early(void **state) {
    (void)state;
    /* An operator's own setting is kept. */
    assert_int_equal(setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "1234", 1), 0);
    int found = rsre_footprint_early();
    assert_string_equal(getenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS"), "1234");
    int exported =
        dlsym(RTLD_DEFAULT,
              "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE") != NULL ||
        dlsym(RTLD_DEFAULT, "_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE") !=
            NULL;
    assert_int_equal(found, exported);
    /* Unset: the agent's default (poller off). Calling twice is harmless. */
    assert_int_equal(unsetenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS"), 0);
    assert_int_equal(rsre_footprint_early(), found);
    assert_string_equal(getenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS"), "0");
}

static void test_drop_file_pages(void **state) {
    (void)state;
    long before = rss_file_kib();
    assert_true(before > 0);
    struct rsre_footprint_drop st;
    assert_int_equal(rsre_footprint_drop_file_pages(&st), 0);
    long after = rss_file_kib();
    assert_true(st.mappings > 0); /* at least the program's and libc's text */
    assert_true(st.resident_kib > 0);
    assert_true(after < before);
    /* The dropped code and data fault back in: libc, this program, formatting all still work. */
    char buf[64];
    snprintf(buf, sizeof(buf), "%d-%s", 42, "ok");
    assert_string_equal(buf, "42-ok");
    assert_int_equal(rsre_footprint_drop_file_pages(NULL), 0); /* again, no stats wanted */
    rsre_footprint_trim();
    void *p = malloc(1 << 20);
    assert_non_null(p);
    memset(p, 1, 1 << 20);
    free(p);
    rsre_footprint_trim();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early),
        cmocka_unit_test(test_drop_file_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
