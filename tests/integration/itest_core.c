/*  itest_core.c — the broker core (issue 10) seen through libbusd.

    A graceful broker restart must cost a libbusd client well under a
    second: ERROR 503 makes it say HELLO again at once and keep trying on a
    short backoff, instead of waiting for a heartbeat to discover the new
    broker (PROTOCOL §4).  The time is measured from the moment the new
    broker answers HELLO (testbroker_restart returns then).                 */
#include "busd/client.h"
#include "testclient.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 5000

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST (test_restart_rejoins_at_once)
{
    //  Default heartbeat (5 s) and session timeout (15 s): without the 503
    //  rule a client would need one of them to notice the new broker.
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    int64_t id = busd_subscribe (sub, "restart.#", NULL, WAIT_MS);
    ck_assert_int_gt (id, 0);

    ck_assert_int_eq (testbroker_stop (broker), 0);
    ck_assert_int_eq (testbroker_restart (broker), 0);
    int64_t listening = s_now_ms ();
    int64_t sub_back = 0, pub_back = 0;
    while ((!sub_back || !pub_back) && s_now_ms () - listening < 10000) {
        busd_client_poll (sub, 10);
        busd_client_poll (pub, 10);
        if (!sub_back && busd_client_reconnects (sub) >= 1
        &&  busd_subscription_info (sub, (uint32_t) id))
            sub_back = s_now_ms ();
        if (!pub_back && busd_client_reconnects (pub) >= 1)
            pub_back = s_now_ms ();
    }
    ck_assert_msg (sub_back && pub_back, "clients did not come back within 10 s");
    ck_assert_msg (sub_back - listening < 1000, "subscriber back after %lld ms",
                   (long long) (sub_back - listening));
    ck_assert_msg (pub_back - listening < 1000, "publisher back after %lld ms",
                   (long long) (pub_back - listening));

    //  And the session works: an event goes through.
    ck_assert_int_eq (busd_publish (pub, "restart.ok", "x", 1, NULL, WAIT_MS), 0);
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), 0);
    busd_msg_t *msg = NULL;
    ck_assert_int_eq (busd_receive (sub, &msg, WAIT_MS), 0);
    ck_assert_int_eq (busd_msg_kind (msg), BUSD_MSG_DELIVER);
    busd_msg_destroy (&msg);

    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

/*  A window above the broker's max_credit: libbusd tops up by what the
    broker granted (SUBOK credit), so events keep flowing.                  */
START_TEST (test_window_above_max_credit)
{
    testbroker_t *broker = testbroker_start ("-s", "max_credit=100", NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    int64_t id = busd_subscribe (sub, "cap.#", "{\"credit\": 100000}", WAIT_MS);
    ck_assert_int_gt (id, 0);
    const char *info = busd_subscription_info (sub, (uint32_t) id);
    ck_assert_ptr_nonnull (strstr (info, "\"credit\":100"));
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq (busd_publish (pub, "cap.x", "x", 1, NULL, WAIT_MS), 0);
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), 0);
    for (int i = 0; i < 1000; i++) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (sub, &msg, WAIT_MS);
        ck_assert_msg (rc == 0, "event %d: %s", i, busd_strerror (rc));
        busd_msg_destroy (&msg);
    }
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

int
main (void)
{
    Suite *s = suite_create ("core");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_restart_rejoins_at_once);
    tcase_add_test (tc, test_window_above_max_credit);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
