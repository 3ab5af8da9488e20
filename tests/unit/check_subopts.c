/*  check_subopts.c — unit tests for SUB options (subopts_parse in
    src/broker/subopts.c, PROTOCOL §6).

    SUB options are input from the network and fail the SUB with a message
    naming the key, because a silently ignored typo in "overflow" would turn
    backpressure into data loss.  So every option is tried with good values,
    edge values and each kind of bad value (wrong type, out of range, not
    whole, unknown), and every error must name its key.  Bodies are passed
    by length and not NUL-terminated, as they arrive in a frame.            */
#include "broker.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static config_t *s_config;
static subopts_t s_opts;
static char s_err [256];

static void
s_setup (void)
{
    s_config = config_new ();
    ck_assert_ptr_nonnull (s_config);
}

static void
s_teardown (void)
{
    config_destroy (&s_config);
}

/*  Parse text (copied without its NUL into a buffer followed by junk, so a
    parser that reads past size is caught).                                 */
static int
s_parse (const char *text)
{
    size_t len = strlen (text);
    char *buffer = malloc (len + 8);
    ck_assert_ptr_nonnull (buffer);
    memcpy (buffer, text, len);
    memcpy (buffer + len, "}}]]xx\"", 8);
    strcpy (s_err, "(untouched)");
    int rc = subopts_parse (&s_opts, s_config, buffer, len, s_err, sizeof s_err);
    free (buffer);
    return rc;
}

/*  text must fail, with an error naming key.                               */
static void
s_expect_fail (const char *text, const char *key)
{
    int rc = s_parse (text);
    ck_assert_msg (rc == -EINVAL, "accepted: %s", text);
    char quoted [64];
    snprintf (quoted, sizeof quoted, "'%s'", key);
    ck_assert_msg (strstr (s_err, quoted) != NULL, "%s: error '%s' does not name %s",
                   text, s_err, quoted);
}

static void
s_expect_ok (const char *text)
{
    int rc = s_parse (text);
    ck_assert_msg (rc == 0, "rejected %s: %s", text, s_err);
}

static void
s_expect_defaults (const config_t *config)
{
    ck_assert_uint_eq (s_opts.credit, (uint32_t) config->credit);
    ck_assert (!s_opts.ack_explicit);
    ck_assert_int_eq (s_opts.policy, POLICY_BLOCK);
    ck_assert_uint_eq (s_opts.queue_limit, (uint32_t) config->queue_limit);
    ck_assert_uint_eq (s_opts.queue_bytes, (uint64_t) config->queue_bytes);
    ck_assert_uint_eq (s_opts.ack_wait_ms, (uint32_t) config->ack_wait_ms);
    ck_assert_uint_eq (s_opts.max_deliver, (uint32_t) config->max_deliver);
    ck_assert (!s_opts.has_group && !s_opts.has_durable && !s_opts.has_from);
    ck_assert_str_eq (s_opts.group, "");
    ck_assert_str_eq (s_opts.durable, "");
}

START_TEST (test_defaults)
{
    memset (&s_opts, 0xAB, sizeof s_opts);
    ck_assert_int_eq (subopts_parse (&s_opts, s_config, NULL, 0, s_err, sizeof s_err), 0);
    s_expect_defaults (s_config);
    ck_assert_uint_eq (s_opts.credit, 1000);
    ck_assert_uint_eq (s_opts.queue_limit, 10000);
    ck_assert_uint_eq (s_opts.ack_wait_ms, 30000);
    ck_assert_uint_eq (s_opts.max_deliver, 5);

    //  An empty frame, an empty object, whitespace around it.
    memset (&s_opts, 0xAB, sizeof s_opts);
    ck_assert_int_eq (subopts_parse (&s_opts, s_config, "x", 0, s_err, sizeof s_err), 0);
    s_expect_defaults (s_config);
    s_expect_ok ("{}");
    s_expect_defaults (s_config);
    s_expect_ok (" \n{ }\r\n ");
    s_expect_defaults (s_config);

    //  The defaults follow the broker's configuration.
    s_config->credit = 7;
    s_config->queue_limit = 3;
    s_config->queue_bytes = 4096;
    s_config->ack_wait_ms = 1500;
    s_config->max_deliver = 9;
    s_expect_ok ("{}");
    s_expect_defaults (s_config);
    ck_assert_uint_eq (s_opts.credit, 7);
    ck_assert_uint_eq (s_opts.max_deliver, 9);
}
END_TEST

START_TEST (test_not_an_object)
{
    static const char *bad [] = {
        "[]", "5", "\"credit\"", "null", "true", "{", "{\"credit\": }", "garbage",
        "{\"credit\": 5", "{} x", "{}{}", "{\"credit\": 5} 6",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        int rc = s_parse (bad [i]);
        ck_assert_msg (rc == -EINVAL, "accepted: %s", bad [i]);
        ck_assert_msg (strstr (s_err, "object") != NULL, "%s: %s", bad [i], s_err);
    }
}
END_TEST

START_TEST (test_credit)
{
    s_expect_ok ("{\"credit\": 0}");
    ck_assert_uint_eq (s_opts.credit, 0);
    s_expect_ok ("{\"credit\": 4294967295}");
    ck_assert_uint_eq (s_opts.credit, 4294967295u);
    s_expect_ok ("{\"credit\": 1e3}");
    ck_assert_uint_eq (s_opts.credit, 1000);
    static const char *bad [] = {
        "{\"credit\": -1}", "{\"credit\": 4294967296}", "{\"credit\": 1.5}",
        "{\"credit\": \"5\"}", "{\"credit\": true}", "{\"credit\": null}",
        "{\"credit\": [5]}", "{\"credit\": 1e300}", "{\"credit\": -1e300}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        s_expect_fail (bad [i], "credit");
}
END_TEST

START_TEST (test_ack)
{
    s_expect_ok ("{\"ack\": \"explicit\"}");
    ck_assert (s_opts.ack_explicit);
    s_expect_ok ("{\"ack\": \"none\"}");
    ck_assert (!s_opts.ack_explicit);
    s_expect_ok ("{\"ack\": \"explicit\", \"ack\": \"none\"}");
    ck_assert (!s_opts.ack_explicit);
    static const char *bad [] = {
        "{\"ack\": \"Explicit\"}", "{\"ack\": \"\"}", "{\"ack\": 1}", "{\"ack\": true}",
        "{\"ack\": null}", "{\"ack\": \"explicit \"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        s_expect_fail (bad [i], "ack");
}
END_TEST

START_TEST (test_on_end)
{
    s_expect_ok ("{}");
    ck_assert (!s_opts.on_end_dead_letter);
    s_expect_ok ("{\"on_end\": \"dead-letter\"}");
    ck_assert (s_opts.on_end_dead_letter);
    s_expect_ok ("{\"on_end\": \"discard\"}");
    ck_assert (!s_opts.on_end_dead_letter);
    static const char *bad [] = {
        "{\"on_end\": \"keep\"}", "{\"on_end\": 1}", "{\"on_end\": null}",
        "{\"on_end\": \"Dead-letter\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        s_expect_fail (bad [i], "on_end");
}
END_TEST

START_TEST (test_overflow)
{
    static const struct { const char *name; policy_t policy; } good [] = {
        { "block", POLICY_BLOCK }, { "drop-oldest", POLICY_DROP_OLDEST },
        { "drop-new", POLICY_DROP_NEW }, { "latest", POLICY_LATEST },
        { "disconnect", POLICY_DISCONNECT },
    };
    char text [64];
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++) {
        snprintf (text, sizeof text, "{\"overflow\": \"%s\"}", good [i].name);
        s_expect_ok (text);
        ck_assert_int_eq (s_opts.policy, good [i].policy);
    }
    static const char *bad [] = {
        "{\"overflow\": \"drop_oldest\"}", "{\"overflow\": \"Block\"}", "{\"overflow\": \"\"}",
        "{\"overflow\": 0}", "{\"overflow\": null}", "{\"overflow\": [\"latest\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        s_expect_fail (bad [i], "overflow");
}
END_TEST

START_TEST (test_limits)
{
    s_expect_ok ("{\"queue_limit\": 1, \"ack_wait_ms\": 1, \"max_deliver\": 1}");
    ck_assert_uint_eq (s_opts.queue_limit, 1);
    ck_assert_uint_eq (s_opts.ack_wait_ms, 1);
    ck_assert_uint_eq (s_opts.max_deliver, 1);
    s_expect_ok ("{\"queue_limit\": 4294967295, \"ack_wait_ms\": 4294967295, "
                 "\"max_deliver\": 65535}");
    ck_assert_uint_eq (s_opts.queue_limit, 4294967295u);
    ck_assert_uint_eq (s_opts.ack_wait_ms, 4294967295u);
    ck_assert_uint_eq (s_opts.max_deliver, 65535);
    //  queue_bytes is the broker's, not an option.
    ck_assert_uint_eq (s_opts.queue_bytes, (uint64_t) s_config->queue_bytes);

    static const struct { const char *text; const char *key; } bad [] = {
        { "{\"queue_limit\": 0}", "queue_limit" },
        { "{\"queue_limit\": 4294967296}", "queue_limit" },
        { "{\"queue_limit\": \"10\"}", "queue_limit" },
        { "{\"queue_limit\": 2.5}", "queue_limit" },
        { "{\"ack_wait_ms\": 0}", "ack_wait_ms" },
        { "{\"ack_wait_ms\": -5}", "ack_wait_ms" },
        { "{\"ack_wait_ms\": false}", "ack_wait_ms" },
        { "{\"max_deliver\": 0}", "max_deliver" },
        { "{\"max_deliver\": 65536}", "max_deliver" },
        { "{\"max_deliver\": {}}", "max_deliver" },
        { "{\"queue_bytes\": 1000}", "queue_bytes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        s_expect_fail (bad [i].text, bad [i].key);
}
END_TEST

START_TEST (test_unknown_key)
{
    s_expect_fail ("{\"creditt\": 5}", "creditt");
    s_expect_fail ("{\"credit\": 5, \"overflw\": \"latest\"}", "overflw");
    s_expect_fail ("{\"Credit\": 5}", "Credit");
    s_expect_fail ("{\"\": 5}", "");
    //  The first problem is the one reported.
    s_expect_fail ("{\"bogus\": 1, \"credit\": -1}", "bogus");
    s_expect_fail ("{\"credit\": -1, \"bogus\": 1}", "credit");
}
END_TEST

START_TEST (test_group_durable)
{
    s_expect_ok ("{\"group\": \"email-workers\"}");
    ck_assert (s_opts.has_group && !s_opts.has_durable);
    ck_assert_str_eq (s_opts.group, "email-workers");

    s_expect_ok ("{\"durable\": \"crm\"}");
    ck_assert (s_opts.has_durable && !s_opts.has_group && !s_opts.has_from);
    ck_assert_str_eq (s_opts.durable, "crm");

    //  255 bytes is the longest name, kept whole; 256 fails.
    char name [300], text [700];
    memset (name, 'g', 255);
    name [255] = 0;
    snprintf (text, sizeof text, "{\"group\": \"%s\", \"durable\": \"%s\"}", name, name);
    s_expect_ok (text);
    ck_assert_uint_eq (strlen (s_opts.group), 255);
    ck_assert_uint_eq (strlen (s_opts.durable), 255);
    ck_assert_str_eq (s_opts.group, name);
    strcat (name, "g");
    snprintf (text, sizeof text, "{\"group\": \"%s\"}", name);
    s_expect_fail (text, "group");
    snprintf (text, sizeof text, "{\"durable\": \"%s\"}", name);
    s_expect_fail (text, "durable");

    static const char *keys [] = { "group", "durable" };
    static const char *values [] = { "\"\"", "5", "null", "true", "[\"a\"]", "{}" };
    for (size_t k = 0; k < 2; k++)
        for (size_t v = 0; v < sizeof values / sizeof values [0]; v++) {
            snprintf (text, sizeof text, "{\"%s\": %s}", keys [k], values [v]);
            s_expect_fail (text, keys [k]);
        }
}
END_TEST

START_TEST (test_from)
{
    static const char *good [] = {
        "\"new\"", "\"first\"", "\"last\"", "{\"seq\": 0}", "{\"seq\": 42}",
        "{\"seq\": 9007199254740992}", "{\"time\": \"2024-05-01T12:00:00Z\"}",
    };
    char text [128];
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++) {
        snprintf (text, sizeof text, "{\"durable\": \"d\", \"from\": %s}", good [i]);
        s_expect_ok (text);
        ck_assert (s_opts.has_from && s_opts.has_durable);
        //  The order of the keys does not matter.
        snprintf (text, sizeof text, "{\"from\": %s, \"durable\": \"d\"}", good [i]);
        s_expect_ok (text);
        ck_assert (s_opts.has_from && s_opts.has_durable);
        //  Without durable it fails, naming both.
        snprintf (text, sizeof text, "{\"from\": %s}", good [i]);
        s_expect_fail (text, "from");
        ck_assert_msg (strstr (s_err, "durable"), "%s", s_err);
        snprintf (text, sizeof text, "{\"group\": \"g\", \"from\": %s}", good [i]);
        s_expect_fail (text, "from");
    }
    static const char *bad [] = {
        "\"middle\"", "\"\"", "\"NEW\"", "5", "null", "true", "[]", "{}",
        "{\"seq\": -1}", "{\"seq\": 1.5}", "{\"seq\": \"1\"}", "{\"seq\": 1e300}",
        "{\"time\": 5}", "{\"seq\": 1, \"time\": \"2024-05-01T12:00:00Z\"}",
        "{\"sequence\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        snprintf (text, sizeof text, "{\"durable\": \"d\", \"from\": %s}", bad [i]);
        s_expect_fail (text, "from");
    }
}
END_TEST

START_TEST (test_everything)
{
    s_expect_ok ("{ \"credit\": 1000, \"ack\": \"explicit\", \"overflow\": \"latest\",\n"
                 "  \"queue_limit\": 10000, \"ack_wait_ms\": 30000, \"max_deliver\": 5,\n"
                 "  \"group\": \"email-workers\", \"durable\": \"crm\", \"from\": \"new\" }");
    ck_assert_uint_eq (s_opts.credit, 1000);
    ck_assert (s_opts.ack_explicit);
    ck_assert_int_eq (s_opts.policy, POLICY_LATEST);
    ck_assert_uint_eq (s_opts.queue_limit, 10000);
    ck_assert_uint_eq (s_opts.ack_wait_ms, 30000);
    ck_assert_uint_eq (s_opts.max_deliver, 5);
    ck_assert (s_opts.has_group && s_opts.has_durable && s_opts.has_from);
    ck_assert_str_eq (s_opts.group, "email-workers");
    ck_assert_str_eq (s_opts.durable, "crm");

    //  A parse starts from the defaults again: nothing carries over.
    s_expect_ok ("{}");
    s_expect_defaults (s_config);

    //  A tiny error buffer is respected.
    char small [8];
    memset (small, 'x', sizeof small);
    ck_assert_int_eq (subopts_parse (&s_opts, s_config, "{\"nope\":1}", 10, small, sizeof small),
                      -EINVAL);
    ck_assert_ptr_nonnull (memchr (small, 0, sizeof small));
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("subopts");
    TCase *tc = tcase_create ("subopts");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_defaults);
    tcase_add_test (tc, test_not_an_object);
    tcase_add_test (tc, test_credit);
    tcase_add_test (tc, test_ack);
    tcase_add_test (tc, test_on_end);
    tcase_add_test (tc, test_overflow);
    tcase_add_test (tc, test_limits);
    tcase_add_test (tc, test_unknown_key);
    tcase_add_test (tc, test_group_durable);
    tcase_add_test (tc, test_from);
    tcase_add_test (tc, test_everything);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    SRunner *runner = srunner_create (s_suite ());
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
