/*  check_nats_subject.c — the nats plugin's topic/pattern to subject
    mapping (plugins/nats/subject.c): tokens cross unchanged, '*' stays,
    a final '#' becomes '>' plus the bare parent, what NATS would read
    differently is refused with the reason an operator reads, subjects map
    back to topics only under the prefix, and the plugin's own matcher
    agrees with busd's pattern rules (including '$' topics).               */
#include "subject.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

START_TEST (test_topic_subject)
{
    char out [NS_SUBJECT_MAX], why [300];
    ck_assert_int_eq (ns_topic_subject ("busd", "order.created", out, sizeof out, why,
                                        sizeof why), 0);
    ck_assert_str_eq (out, "busd.order.created");
    ck_assert_int_eq (ns_topic_subject ("dc1.busd", "$sys.stats", out, sizeof out, why,
                                        sizeof why), 0);
    ck_assert_str_eq (out, "dc1.busd.$sys.stats");
    ck_assert_int_eq (ns_topic_subject ("busd", "a.>.b", out, sizeof out, why, sizeof why),
                      -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "topic 'a.>.b' cannot map to a NATS subject"));
    ck_assert_ptr_nonnull (strstr (why, "'>' is NATS's full wildcard"));
    ck_assert_int_eq (ns_topic_subject ("busd", "a..b", out, sizeof out, why, sizeof why),
                      -EINVAL);
    ck_assert_int_eq (ns_topic_subject ("busd", "a b", out, sizeof out, why, sizeof why),
                      -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "0x20"));
    ck_assert_int_eq (ns_topic_subject ("busd", "a", out, 6, why, sizeof why), -ENAMETOOLONG);
}
END_TEST

START_TEST (test_pattern_subjects)
{
    char out [2][NS_SUBJECT_MAX], why [300];
    int n;
    ck_assert_int_eq (ns_pattern_subjects ("busd", "order.#", out, &n, why, sizeof why), 0);
    ck_assert_int_eq (n, 2);
    ck_assert_str_eq (out [0], "busd.order.>");
    ck_assert_str_eq (out [1], "busd.order");
    ck_assert_int_eq (ns_pattern_subjects ("busd", "#", out, &n, why, sizeof why), 0);
    ck_assert_int_eq (n, 1);
    ck_assert_str_eq (out [0], "busd.>");
    ck_assert_int_eq (ns_pattern_subjects ("busd", "a.*.c", out, &n, why, sizeof why), 0);
    ck_assert_int_eq (n, 1);
    ck_assert_str_eq (out [0], "busd.a.*.c");
    ck_assert_int_eq (ns_pattern_subjects ("busd", "a.#.c", out, &n, why, sizeof why), -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "'#' must be the last token"));
    ck_assert_int_eq (ns_pattern_subjects ("busd", "a.>", out, &n, why, sizeof why), -EINVAL);
    ck_assert_ptr_nonnull (strstr (why, "pattern 'a.>' cannot map"));
    ck_assert_int_eq (ns_pattern_subjects ("busd", "a*", out, &n, why, sizeof why), -EINVAL);
    ck_assert_int_eq (n, 0);
}
END_TEST

START_TEST (test_subject_topic)
{
    char topic [300];
    ck_assert_int_eq (ns_subject_topic ("busd", "busd.order.created", topic, sizeof topic), 0);
    ck_assert_str_eq (topic, "order.created");
    ck_assert_int_eq (ns_subject_topic ("busd", "busdx.order", topic, sizeof topic), -EINVAL);
    ck_assert_int_eq (ns_subject_topic ("busd", "busd", topic, sizeof topic), -EINVAL);
    ck_assert_int_eq (ns_subject_topic ("busd", "other.order", topic, sizeof topic), -EINVAL);
    ck_assert_int_eq (ns_subject_topic ("busd", "busd.a.>", topic, sizeof topic), -EINVAL);
}
END_TEST

START_TEST (test_match)
{
    ck_assert (ns_pattern_match ("order.#", "order"));
    ck_assert (ns_pattern_match ("order.#", "order.created.v2"));
    ck_assert (!ns_pattern_match ("order.#", "orders"));
    ck_assert (ns_pattern_match ("order.*", "order.created"));
    ck_assert (!ns_pattern_match ("order.*", "order"));
    ck_assert (!ns_pattern_match ("order.*", "order.a.b"));
    ck_assert (ns_pattern_match ("#", "anything.at.all"));
    ck_assert (!ns_pattern_match ("#", "$sys.stats"));
    ck_assert (!ns_pattern_match ("*.stats", "$sys.stats"));
    ck_assert (ns_pattern_match ("$sys.#", "$sys.stats"));
    ck_assert (ns_pattern_match ("a.b", "a.b"));
    ck_assert (!ns_pattern_match ("a.b", "a.b.c"));
    ck_assert (!ns_pattern_match ("a.b.c", "a.b"));
}
END_TEST

START_TEST (test_names_and_headers)
{
    ck_assert (ns_name_valid ("busd-a_1"));
    ck_assert (!ns_name_valid (""));
    ck_assert (!ns_name_valid ("a.b"));
    ck_assert (!ns_name_valid ("a b"));
    char out [NS_NAME_MAX];
    ns_name_sanitize ("host.example.com", out, sizeof out);
    ck_assert_str_eq (out, "host_example_com");
    char why [200];
    ck_assert_int_eq (ns_prefix_check ("busd", why, sizeof why), 0);
    ck_assert_int_eq (ns_prefix_check ("dc1.busd", why, sizeof why), 0);
    ck_assert_int_eq (ns_prefix_check ("", why, sizeof why), -EINVAL);
    ck_assert_int_eq (ns_prefix_check ("a.>", why, sizeof why), -EINVAL);
    ck_assert (ns_header_valid ("trace-id", "abc"));
    ck_assert (!ns_header_valid ("a:b", "x"));
    ck_assert (!ns_header_valid ("a b", "x"));
    ck_assert (!ns_header_valid ("a", "x\r\ny"));
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("nats_subject");
    TCase *tc = tcase_create ("mapping");
    tcase_add_test (tc, test_topic_subject);
    tcase_add_test (tc, test_pattern_subjects);
    tcase_add_test (tc, test_subject_topic);
    tcase_add_test (tc, test_match);
    tcase_add_test (tc, test_names_and_headers);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
