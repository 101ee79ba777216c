/* The declarative configuration table: defaults, file < environment < flags, bounds, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cfgtable.h"
#include "common/error.h"

struct cfg {
    char name[16];
    uint32_t n;
    int on;
    char list[4][8];
    size_t nlist;
};

static const struct rsre_cfg_entry entries[] = {
    RSRE_CFG_STR_ENTRY(struct cfg, name, "dflt", "a name"),
    RSRE_CFG_U32_ENTRY(struct cfg, n, "10", 5, 100, "a number"),
    RSRE_CFG_BOOL_ENTRY(struct cfg, on, "false", "a switch"),
    RSRE_CFG_LIST_ENTRY(struct cfg, list, nlist, "a,b", "a list"),
};
static const struct rsre_cfg_alias aliases[] = {{"MY_NAME", "name"}};
static const struct rsre_cfg_table T = {"prog", "1", "summary", "PFX_", entries, 4, aliases, 1};

static int load(struct cfg *c, int argc, char **argv, char *const *envp, char *err) {
    rsre_cfg_defaults(&T, c);
    FILE *out = fopen("/dev/null", "w");
    int rc = rsre_cfg_load(&T, c, argc, argv, envp, out, err, 256);
    fclose(out);
    return rc;
}

static void test_precedence(void **state) {
    (void)state;
    char path[] = "/tmp/rsre-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *y = "name: file\nn: 20\non: true\nlist: [x, y, z]\n";
    assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    struct cfg c;
    char err[256];
    char *argv0[] = {"prog", NULL};
    char *noenv[] = {NULL};
    assert_int_equal(load(&c, 1, argv0, noenv, err), 0);
    assert_string_equal(c.name, "dflt");
    assert_int_equal(c.n, 10);
    assert_int_equal(c.nlist, 2);
    char *argv1[] = {"prog", "--config", path, NULL};
    assert_int_equal(load(&c, 3, argv1, noenv, err), 0);
    assert_string_equal(c.name, "file");
    assert_int_equal(c.n, 20);
    assert_true(c.on);
    assert_int_equal(c.nlist, 3);
    assert_string_equal(c.list[2], "z");
    char *env[] = {"PFX_N=30", "MY_NAME=alias", NULL};
    assert_int_equal(load(&c, 3, argv1, env, err), 0);
    assert_int_equal(c.n, 30);
    assert_string_equal(c.name, "alias");
    char *argv2[] = {"prog", "--config", path, "--n=40", "--name", "flag", "--on=false", NULL};
    assert_int_equal(load(&c, 7, argv2, env, err), 0);
    assert_int_equal(c.n, 40);
    assert_string_equal(c.name, "flag");
    assert_false(c.on);
    unlink(path);
}

static void test_errors(void **state) {
    (void)state;
    struct cfg c;
    char err[256];
    char *noenv[] = {NULL};
    static const struct {
        const char *arg, *msg;
    } bad[] = {
        {"--n=4", "not an integer in 5..100"},    {"--n=101", "5..100"},
        {"--n=-7", "not an integer"},             {"--n=12abc", "not an integer"},
        {"--name=0123456789abcdefXX", "longer"},  {"--on=maybe", "true or false"},
        {"--list=a,b,c,d,e", "more than 4"},       {"--list=abcdefghij", "longer than 7"},
        {"--nope=1", "unknown flag"},             {"stray", "unexpected argument"},
        {"--n", "needs a value"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"prog", (char *)bad[i].arg, NULL};
        int rc = load(&c, 2, argv, noenv, err);
        if (rc == 0 || !strstr(err, bad[i].msg)) {
            fail_msg("%s: rc=%d err=%s", bad[i].arg, rc, err);
        }
    }
    char *env[] = {"PFX_BOGUS=1", NULL};
    char *argv[] = {"prog", NULL};
    assert_int_equal(load(&c, 1, argv, env, err), RSRE_EINVALID);
    assert_non_null(strstr(err, "PFX_BOGUS"));
    char *argvf[] = {"prog", "--config", "/nonexistent/x.yaml", NULL};
    assert_true(load(&c, 3, argvf, noenv, err) < 0);
    char *argvh[] = {"prog", "--help", NULL};
    assert_int_equal(load(&c, 2, argvh, noenv, err), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
