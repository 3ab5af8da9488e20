/*  check_endpoint.c — unit tests for src/common/endpoint.c and
    src/tools/seen.c: the checks that turn a user's near-miss (port 99999,
    no scheme, MQTT's '+') into a message naming it, and busd-sub's one
    line per event across patterns.                                         */
#include "endpoint.h"
#include "../../src/tools/seen.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

START_TEST (test_endpoint_check)
{
    char why [200];
    static const char *good [] = {
        "tcp://127.0.0.1:7460", "tcp://localhost:1", "tcp://[::1]:65535", "ipc:///tmp/busd.sock",
        "inproc://busd", NULL
    };
    for (int i = 0; good [i]; i++)
        ck_assert_msg (busp_endpoint_check (good [i], false, why, sizeof why) == 0, "%s: %s",
                       good [i], why);
    //  Any free port: only when binding.
    ck_assert_int_eq (busp_endpoint_check ("tcp://*:*", true, why, sizeof why), 0);
    ck_assert_int_eq (busp_endpoint_check ("tcp://127.0.0.1:0", true, why, sizeof why), 0);
    ck_assert_int_eq (busp_endpoint_check ("tcp://127.0.0.1:0", false, why, sizeof why), -EINVAL);
    static const struct { const char *endpoint, *fragment; } bad [] = {
        { "tcp://127.0.0.1:99999", "99999 is out of range 1..65535" },
        { "tcp://127.0.0.1:65536", "65536" },
        { "tcp://127.0.0.1:123456789012345678901", "out of range" },
        { "tcp://127.0.0.1", "port is missing" },
        { "tcp://127.0.0.1:", "port is missing" },
        { "tcp://127.0.0.1:x1", "not a number" },
        { "tcp://:7460", "host is missing" },
        { "tcp://::1:7460", "brackets" },
        { "udp://127.0.0.1:7460", "unknown transport 'udp'" },
        { "127.0.0.1:7460", "did you mean tcp://127.0.0.1:7460" },
        { "localhost", "not an endpoint" },
        { "ipc://", "path is missing" },
        { "inproc://", "name is missing" },
        { "", "empty" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        ck_assert_msg (busp_endpoint_check (bad [i].endpoint, true, why, sizeof why) == -EINVAL,
                       "accepted %s", bad [i].endpoint);
        ck_assert_msg (strstr (why, bad [i].fragment), "%s: '%s' not in '%s'", bad [i].endpoint,
                       bad [i].fragment, why);
    }
    char long_ipc [200] = "ipc:///";
    memset (long_ipc + 7, 'x', 150);
    ck_assert_int_eq (busp_endpoint_check (long_ipc, true, why, sizeof why), -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "Unix socket"));
}
END_TEST

START_TEST (test_endpoint_normalize)
{
    char out [64], why [200];
    ck_assert_int_eq (busp_endpoint_normalize ("127.0.0.1:17460", out, sizeof out, why,
                                               sizeof why), 0);
    ck_assert_str_eq (out, "tcp://127.0.0.1:17460");
    ck_assert_int_eq (busp_endpoint_normalize ("ipc:///x", out, sizeof out, why, sizeof why), 0);
    ck_assert_str_eq (out, "ipc:///x");
    ck_assert_int_eq (busp_endpoint_normalize ("127.0.0.1:99999", out, sizeof out, why,
                                               sizeof why), -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "99999"));
    char tiny [8];
    ck_assert_int_eq (busp_endpoint_normalize ("tcp://127.0.0.1:1", tiny, sizeof tiny, why,
                                               sizeof why), -EINVAL);
}
END_TEST

START_TEST (test_hostport)
{
    char why [200];
    ck_assert_int_eq (busp_hostport_check ("127.0.0.1:9460", why, sizeof why), 0);
    ck_assert_int_eq (busp_hostport_check (":9460", why, sizeof why), 0);
    ck_assert_int_eq (busp_hostport_check ("9460", why, sizeof why), 0);
    ck_assert_int_eq (busp_hostport_check ("127.0.0.1:0", why, sizeof why), -EINVAL);
    ck_assert_int_eq (busp_hostport_check ("localhost:9460", why, sizeof why), -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "IPv4"));
    ck_assert_int_eq (busp_hostport_check ("http://127.0.0.1:9460", why, sizeof why), -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "scheme"));
}
END_TEST

START_TEST (test_foreign_wildcards)
{
    char hint [400];
    ck_assert (busp_pattern_foreign_wildcard ("user.+", hint, sizeof hint));
    ck_assert_ptr_nonnull (strstr (hint, "'user.*'"));
    ck_assert (busp_pattern_foreign_wildcard ("user.>", hint, sizeof hint));
    ck_assert_ptr_nonnull (strstr (hint, "'user.#'"));
    ck_assert (busp_pattern_foreign_wildcard ("+.created", hint, sizeof hint));
    ck_assert_ptr_nonnull (strstr (hint, "'*.created'"));
    ck_assert (busp_pattern_foreign_wildcard ("+", hint, sizeof hint));
    ck_assert (!busp_pattern_foreign_wildcard ("user.a+b", hint, sizeof hint));
    ck_assert (!busp_pattern_foreign_wildcard ("c++.>x", hint, sizeof hint));
    ck_assert (!busp_pattern_foreign_wildcard ("user.*", hint, sizeof hint));
}
END_TEST

START_TEST (test_seen)
{
    seen_t *seen = seen_new (4);
    uint64_t a = seen_fingerprint ("a.b", "", NULL, "x", 1, 100);
    uint64_t b = seen_fingerprint ("a.b", "", NULL, "y", 1, 100);
    ck_assert_uint_ne (a, b);
    //  The same event on subscriptions 0 and 1: the second is a copy.
    ck_assert (!seen_duplicate (seen, a, 0));
    ck_assert (seen_duplicate (seen, a, 1));
    //  The same fingerprint again on 0: a new, equal event, and its copy.
    ck_assert (!seen_duplicate (seen, a, 0));
    ck_assert (seen_duplicate (seen, a, 1));
    ck_assert (!seen_duplicate (seen, b, 1));
    ck_assert (seen_duplicate (seen, b, 0));
    //  Fields are separated: ("ab","c") is not ("a","bc").
    ck_assert_uint_ne (seen_fingerprint ("ab", "c", NULL, "", 0, 1),
                       seen_fingerprint ("a", "bc", NULL, "", 0, 1));
    //  Beyond the window a late copy is not recognised (printed again).
    for (int i = 0; i < 4; i++)
        seen_duplicate (seen, (uint64_t) i + 1000, 0);
    ck_assert (!seen_duplicate (seen, a, 2));
    seen_destroy (&seen);
    ck_assert_ptr_null (seen);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("endpoint");
    TCase *tc = tcase_create ("endpoint");
    tcase_add_test (tc, test_endpoint_check);
    tcase_add_test (tc, test_endpoint_normalize);
    tcase_add_test (tc, test_hostport);
    tcase_add_test (tc, test_foreign_wildcards);
    tcase_add_test (tc, test_seen);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
