/*  check_acl.c — unit tests for src/broker/acl.c: the file format and its
    errors (file:line), deny by default, pattern coverage for subscribe
    rules (including '$dlq.#' and '$sys.#' needing explicit rules), groups
    and the read-only / admin CTL split, and the rule each answer names.     */
#include "acl.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *s_example =
    "# busd ACL\n"
    "identity alice\n"
    "    publish   user.# orders.created\n"
    "    subscribe user.* $dlq.user.#\n"
    "    group     mailers\n"
    "    ctl       read\n"
    "\n"
    "identity admin\n"
    "    publish #\n"
    "    subscribe # $dlq.# $sys.#\n"
    "    group *\n"
    "    ctl admin\n"
    "identity anonymous\n"
    "    subscribe public.#\n"
    "    ctl stats\n"
    "identity nobody\n"
    "    ctl none\n";

static acl_t *
s_parse (const char *text)
{
    char errors [1024];
    acl_t *acl = NULL;
    int rc = acl_parse (text, strlen (text), "acl.conf", &acl, errors, sizeof errors);
    ck_assert_msg (rc == 0, "parse failed: %s", errors);
    return acl;
}

static void
s_parse_fails (const char *text, const char *expected)
{
    char errors [1024];
    acl_t *acl = NULL;
    ck_assert_int_eq (acl_parse (text, strlen (text), "acl.conf", &acl, errors, sizeof errors),
                      -EINVAL);
    ck_assert_ptr_null (acl);
    ck_assert_msg (strstr (errors, expected), "expected '%s' in '%s'", expected, errors);
}

START_TEST (test_parse)
{
    acl_t *acl = s_parse (s_example);
    ck_assert_uint_eq (acl_size (acl), 4);
    acl_destroy (&acl);
    ck_assert_ptr_null (acl);
    acl_destroy (&acl);
}
END_TEST

START_TEST (test_parse_errors)
{
    s_parse_fails ("publish a.b\n", "acl.conf:1: 'publish' outside an identity block");
    s_parse_fails ("identity a\n  publish a..b\n", "acl.conf:2: publish pattern 'a..b'");
    s_parse_fails ("identity a\n  subscribe a.#.b\n", "acl.conf:2: subscribe pattern 'a.#.b'");
    s_parse_fails ("identity a\n\n  publsh a\n", "acl.conf:3: unknown directive 'publsh'");
    s_parse_fails ("identity a\nidentity a\n", "acl.conf:2: identity 'a' already defined at line 1");
    s_parse_fails ("identity\n", "acl.conf:1: 'identity' needs a name");
    s_parse_fails ("identity a b\n", "acl.conf:1: 'identity' takes one name");
    s_parse_fails ("identity a\n  publish\n", "acl.conf:2: 'publish' needs at least one pattern");
    s_parse_fails ("identity a\n  ctl Stats\n", "acl.conf:2: ctl takes none, read, admin");
    s_parse_fails ("identity a\n  group caf\xC3\xA9\n", "acl.conf:2: group name must be");
    s_parse_fails ("# nothing\n\n", "no identity blocks");
    s_parse_fails ("", "no identity blocks");
    //  Every error is reported, not only the first.
    s_parse_fails ("identity a\n  publish a..b\n  bogus\n", "acl.conf:3: unknown directive");
    //  A NUL byte cannot hide the rest of a line.
    char text [] = "identity a\n  publish a\0.b\n";
    char errors [256];
    acl_t *acl = NULL;
    ck_assert_int_eq (acl_parse (text, sizeof text - 1, "x", &acl, errors, sizeof errors), -EINVAL);
    ck_assert_ptr_nonnull (strstr (errors, "x:2: NUL byte"));
}
END_TEST

START_TEST (test_load_file)
{
    char path [] = "/tmp/check_acl.XXXXXX";
    int fd = mkstemp (path);
    ck_assert_int_ge (fd, 0);
    ck_assert_int_eq (write (fd, "identity a\n  bogus\n", 19), 19);
    close (fd);
    char errors [512];
    acl_t *acl = NULL;
    ck_assert_int_eq (acl_load_file (path, &acl, errors, sizeof errors), -EINVAL);
    char expected [64];
    snprintf (expected, sizeof expected, "%s:2: unknown directive 'bogus'", path);
    ck_assert_ptr_nonnull (strstr (errors, expected));
    unlink (path);
    ck_assert_int_eq (acl_load_file (path, &acl, errors, sizeof errors), -EINVAL);
    ck_assert_ptr_nonnull (strstr (errors, "cannot open"));
}
END_TEST

START_TEST (test_publish)
{
    acl_t *acl = s_parse (s_example);
    char why [256];
    ck_assert (acl_may_publish (acl, "alice", "user.created", 12, why, sizeof why));
    ck_assert_str_eq (why, "allowed by ACL acl.conf:3 (identity 'alice', publish user.#)");
    ck_assert (acl_may_publish (acl, "alice", "user", 4, why, sizeof why));
    ck_assert (acl_may_publish (acl, "alice", "orders.created", 14, why, sizeof why));
    ck_assert (!acl_may_publish (acl, "alice", "orders.deleted", 14, why, sizeof why));
    ck_assert_str_eq (why, "denied by ACL acl.conf:2: no publish rule of identity 'alice' allows 'orders.deleted'");
    ck_assert (acl_may_publish (acl, "admin", "anything.at.all", 15, why, sizeof why));
    //  No publish rule at all.
    ck_assert (!acl_may_publish (acl, "anonymous", "public.x", 8, why, sizeof why));
    ck_assert_str_eq (why, "denied by ACL acl.conf:13: identity 'anonymous' has no publish rule");
    //  Deny by default: an identity the file does not name.
    ck_assert (!acl_may_publish (acl, "mallory", "user.x", 6, why, sizeof why));
    ck_assert_str_eq (why, "denied by ACL acl.conf: identity 'mallory' has no entry (deny by default)");
    //  why may be omitted.
    ck_assert (acl_may_publish (acl, "alice", "user.x", 6, NULL, 0));
    acl_destroy (&acl);
}
END_TEST

START_TEST (test_subscribe)
{
    acl_t *acl = s_parse (s_example);
    char why [256];
    ck_assert (acl_may_subscribe (acl, "alice", "user.created", 12, why, sizeof why));
    ck_assert (acl_may_subscribe (acl, "alice", "user.*", 6, why, sizeof why));
    //  user.* does not cover user.# (deeper topics) nor user itself.
    ck_assert (!acl_may_subscribe (acl, "alice", "user.#", 6, why, sizeof why));
    ck_assert (!acl_may_subscribe (acl, "alice", "user", 4, why, sizeof why));
    ck_assert (!acl_may_subscribe (acl, "alice", "user.a.b", 8, why, sizeof why));
    ck_assert (acl_may_subscribe (acl, "alice", "$dlq.user.x", 11, why, sizeof why));
    ck_assert (acl_may_subscribe (acl, "alice", "$dlq.user.#", 11, why, sizeof why));
    ck_assert (!acl_may_subscribe (acl, "alice", "$dlq.#", 6, why, sizeof why));
    ck_assert (!acl_may_subscribe (acl, "alice", "$sys.stats", 10, why, sizeof why));
    ck_assert (!acl_may_subscribe (acl, "alice", "#", 1, why, sizeof why));
    ck_assert_str_eq (why, "denied by ACL acl.conf:2: no subscribe rule of identity 'alice' allows '#'");
    //  admin: '#' covers every pattern but no '$' topics; those are named.
    ck_assert (acl_may_subscribe (acl, "admin", "#", 1, why, sizeof why));
    ck_assert (acl_may_subscribe (acl, "admin", "*.x.#", 5, why, sizeof why));
    ck_assert (acl_may_subscribe (acl, "admin", "$dlq.#", 6, why, sizeof why));
    ck_assert_str_eq (why, "allowed by ACL acl.conf:10 (identity 'admin', subscribe $dlq.#)");
    ck_assert (acl_may_subscribe (acl, "admin", "$sys.stats", 10, why, sizeof why));
    acl_destroy (&acl);

    acl = s_parse ("identity u\n subscribe #\n");
    ck_assert (acl_may_subscribe (acl, "u", "a.b", 3, NULL, 0));
    ck_assert (!acl_may_subscribe (acl, "u", "$dlq.#", 6, NULL, 0));
    ck_assert (!acl_may_subscribe (acl, "u", "$sys.stats", 10, NULL, 0));
    acl_destroy (&acl);
}
END_TEST

START_TEST (test_covers)
{
#define COVERS(a, r) acl_pattern_covers (a, strlen (a), r, strlen (r))
    ck_assert (COVERS ("#", "#"));
    ck_assert (COVERS ("#", "a"));
    ck_assert (COVERS ("#", "*"));
    ck_assert (!COVERS ("#", "$a"));
    ck_assert (COVERS ("a.#", "a"));
    ck_assert (COVERS ("a.#", "a.#"));
    ck_assert (COVERS ("a.#", "a.*.#"));
    ck_assert (!COVERS ("a.#", "#"));
    ck_assert (!COVERS ("a.#", "*"));
    ck_assert (!COVERS ("a.#", "b"));
    ck_assert (COVERS ("*", "a"));
    ck_assert (COVERS ("*", "*"));
    ck_assert (!COVERS ("*", "#"));
    ck_assert (!COVERS ("*", "a.b"));
    ck_assert (!COVERS ("*", "$a"));
    ck_assert (COVERS ("*.b", "a.b"));
    ck_assert (COVERS ("$a.*", "$a.b"));
    ck_assert (!COVERS ("a", "*"));
    ck_assert (!COVERS ("a", "ab"));
    ck_assert (!COVERS ("ab", "a"));
    ck_assert (!COVERS ("a.b", "a"));
    ck_assert (!COVERS ("a", "a.b"));
    ck_assert (COVERS ("a.*.c", "a.b.c"));
    ck_assert (!COVERS ("a.*.c", "a.b.#"));
#undef COVERS
}
END_TEST

START_TEST (test_groups_and_ctl)
{
    acl_t *acl = s_parse (s_example);
    char why [256];
    ck_assert (acl_may_join (acl, "alice", "mailers", why, sizeof why));
    ck_assert (!acl_may_join (acl, "alice", "billing", why, sizeof why));
    ck_assert_str_eq (why, "denied by ACL acl.conf:2: no group rule of identity 'alice' allows 'billing'");
    ck_assert (acl_may_join (acl, "admin", "billing", why, sizeof why));
    ck_assert (!acl_may_join (acl, "anonymous", "mailers", why, sizeof why));

    ck_assert (acl_may_ctl (acl, "alice", "stats", why, sizeof why));
    ck_assert (acl_may_ctl (acl, "alice", "clients", why, sizeof why));
    ck_assert (!acl_may_ctl (acl, "alice", "reload", why, sizeof why));
    ck_assert (!acl_may_ctl (acl, "alice", "dlq-replay", why, sizeof why));
    ck_assert (!acl_may_ctl (acl, "alice", "dlq-show", why, sizeof why));
    ck_assert (acl_may_ctl (acl, "admin", "reload", why, sizeof why));
    ck_assert (acl_may_ctl (acl, "admin", "dlq-purge", why, sizeof why));
    ck_assert (acl_may_ctl (acl, "anonymous", "stats", why, sizeof why));
    ck_assert (!acl_may_ctl (acl, "anonymous", "clients", why, sizeof why));
    //  "ctl none" grants nothing and is not an error.
    ck_assert (!acl_may_ctl (acl, "nobody", "stats", why, sizeof why));
    ck_assert_str_eq (why, "denied by ACL acl.conf:16: identity 'nobody' has no ctl rule");

    ck_assert (acl_ctl_is_read_only ("stats"));
    ck_assert (!acl_ctl_is_read_only ("reload"));
    acl_destroy (&acl);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("acl");
    TCase *tc = tcase_create ("acl");
    tcase_add_test (tc, test_parse);
    tcase_add_test (tc, test_parse_errors);
    tcase_add_test (tc, test_load_file);
    tcase_add_test (tc, test_publish);
    tcase_add_test (tc, test_subscribe);
    tcase_add_test (tc, test_covers);
    tcase_add_test (tc, test_groups_and_ctl);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
