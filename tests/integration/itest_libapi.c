/*  itest_libapi.c — libbusd's API as an application writer meets it
    (issue 16): busd_publish_seq hands out the pub_seq a reject handler
    will name, the typed subscription options reach the broker, sub_ids
    flow from subscribe to unsubscribe in one type, and MQTT/NATS
    wildcards are refused with a hint instead of matching nothing.         */
#include "busd/client.h"
#include "testbroker.h"
#include "testclient.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000

static uint64_t s_rejected_seq;

static void
s_on_reject (void *arg, uint64_t pub_seq, const char *topic, uint16_t code, const char *reason)
{
    (void) arg; (void) topic; (void) code; (void) reason;
    s_rejected_seq = pub_seq;
}

START_TEST (test_publish_seq_matches_reject)
{
    testbroker_t *broker = testbroker_start ("--max-payload", "16", NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *client = testclient_new (broker, "pub", WAIT_MS);
    busd_client_set_reject_handler (client, s_on_reject, NULL);
    uint64_t first = 0, second = 0;
    ck_assert_int_eq (busd_publish_seq (client, "a.b", "x", 1, NULL, WAIT_MS, &first), 0);
    ck_assert_int_eq (busd_publish_seq (client, "a.b", "y", 1, NULL, WAIT_MS, &second), 0);
    ck_assert_uint_gt (first, 0);
    ck_assert_uint_eq (second, first + 1);
    ck_assert_int_eq (busd_flush (client, WAIT_MS), 0);
    //  A topic the broker refuses ($-topics are its own): the handler's
    //  pub_seq is the one busd_publish_seq returned.
    uint64_t refused = 0;
    ck_assert_int_eq (busd_publish_seq (client, "$sys.fake", "z", 1, NULL, WAIT_MS, &refused), 0);
    ck_assert_int_eq (busd_flush (client, WAIT_MS), BUSD_EREJECTED);
    ck_assert_uint_eq (s_rejected_seq, refused);
    //  Failure: 0.
    uint64_t none = 99;
    ck_assert_int_eq (busd_publish_seq (client, "a..b", "x", 1, NULL, 0, &none), -EINVAL);
    ck_assert_uint_eq (none, 0);
    busd_client_destroy (&client);
    testbroker_destroy (&broker);
}
END_TEST

START_TEST (test_typed_options_and_sub_id)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *client = testclient_new (broker, "sub", WAIT_MS);
    busd_sub_options_t opts;
    busd_sub_options_init (&opts);
    opts.ack_explicit = true;
    opts.group = "workers";
    opts.overflow = BUSD_OVERFLOW_DROP_NEW;
    opts.queue_limit = 7;
    opts.credit = 3;
    busd_sub_id_t id = 0;
    ck_assert_int_eq (busd_subscribe_opts (client, "jobs.*", &opts, &id, WAIT_MS), 0);
    ck_assert_uint_gt (id, 0);
    char *reply = NULL;
    ck_assert_int_eq (busd_ctl (client, "{\"cmd\":\"subscriptions\"}", &reply, WAIT_MS), 200);
    ck_assert_msg (strstr (reply, "\"workers\"") && strstr (reply, "\"drop-new\"")
                   && strstr (reply, "\"explicit\""), "%s", reply);
    free (reply);
    ck_assert_int_eq (busd_unsubscribe (client, id, WAIT_MS), 0);
    //  Options the struct cannot carry are refused before anything is sent.
    opts.extra_json = "[1]";
    ck_assert_int_eq (busd_subscribe_opts (client, "jobs.*", &opts, &id, WAIT_MS), -EINVAL);
    ck_assert_uint_eq (id, 0);
    opts.extra_json = "{\"credit\": 5}";
    ck_assert_int_eq (busd_subscribe_opts (client, "jobs.#", &opts, &id, WAIT_MS), 0);
    ck_assert_int_eq (busd_unsubscribe (client, id, WAIT_MS), 0);
    busd_client_destroy (&client);
    testbroker_destroy (&broker);
}
END_TEST

START_TEST (test_foreign_wildcards_refused)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *client = testclient_new (broker, "sub", WAIT_MS);
    const char *reason = NULL;
    ck_assert_int_eq (busd_subscribe (client, "user.+", NULL, WAIT_MS), -EINVAL);
    busd_client_last_error (client, &reason);
    ck_assert_msg (strstr (reason, "user.*"), "%s", reason);
    ck_assert_int_eq (busd_subscribe (client, "user.>", NULL, WAIT_MS), -EINVAL);
    busd_client_last_error (client, &reason);
    ck_assert_msg (strstr (reason, "user.#"), "%s", reason);
    //  Inside a longer token they are ordinary bytes.
    int64_t id = busd_subscribe (client, "user.a+b", NULL, WAIT_MS);
    ck_assert_int_gt (id, 0);
    busd_client_destroy (&client);
    testbroker_destroy (&broker);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("libapi");
    TCase *tc = tcase_create ("libapi");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_publish_seq_matches_reject);
    tcase_add_test (tc, test_typed_options_and_sub_id);
    tcase_add_test (tc, test_foreign_wildcards_refused);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
