/*  check_backoff.c — unit tests for the redelivery delay after a NACK
    without delay (src/broker/backoff.c).

    The caller supplies the random number, so every case is exact: with
    jitter 0 the schedule is the plain exponential capped at max; with
    jitter the extremes of random01 give the extremes of the spread, which
    must still respect the cap and never reach 0.                            */
#include "backoff.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg (__VA_ARGS__); } while (0)

START_TEST (test_exponential)
{
    backoff_t policy = { .initial_ms = 1000, .max_ms = 60000, .multiplier = 2.0, .jitter = 0 };
    static const int64_t expect [] = { 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000 };
    for (uint32_t attempt = 1; attempt <= 8; attempt++)
        for (int r = 0; r < 3; r++)         //  random01 does not matter
            ck_assert_int_eq (backoff_delay_ms (&policy, attempt, r / 3.0), expect [attempt - 1]);
    //  Far beyond the cap it stays there (and does not overflow).
    ck_assert_int_eq (backoff_delay_ms (&policy, 100, 0.5), 60000);
    ck_assert_int_eq (backoff_delay_ms (&policy, 65535, 0.5), 60000);
    ck_assert_int_eq (backoff_delay_ms (&policy, UINT32_MAX, 0.5), 60000);

    //  Another multiplier; a cap that is reached exactly.
    policy = (backoff_t) { .initial_ms = 100, .max_ms = 8100, .multiplier = 3.0, .jitter = 0 };
    ck_assert_int_eq (backoff_delay_ms (&policy, 1, 0), 100);
    ck_assert_int_eq (backoff_delay_ms (&policy, 2, 0), 300);
    ck_assert_int_eq (backoff_delay_ms (&policy, 3, 0), 900);
    ck_assert_int_eq (backoff_delay_ms (&policy, 4, 0), 2700);
    ck_assert_int_eq (backoff_delay_ms (&policy, 5, 0), 8100);
    ck_assert_int_eq (backoff_delay_ms (&policy, 6, 0), 8100);

    //  An initial delay above the cap is capped from the first attempt.
    policy = (backoff_t) { .initial_ms = 5000, .max_ms = 2000, .multiplier = 2.0, .jitter = 0 };
    ck_assert_int_eq (backoff_delay_ms (&policy, 1, 0), 2000);
    ck_assert_int_eq (backoff_delay_ms (&policy, 3, 0), 2000);
}
END_TEST

START_TEST (test_multiplier_one)
{
    backoff_t policy = { .initial_ms = 750, .max_ms = 60000, .multiplier = 1.0, .jitter = 0 };
    for (uint32_t attempt = 1; attempt <= 1000; attempt++)
        REQUIRE (backoff_delay_ms (&policy, attempt, 0.3) == 750, "attempt %u", attempt);
    //  max_deliver's upper bound.
    ck_assert_int_eq (backoff_delay_ms (&policy, 65535, 0.3), 750);
}
END_TEST

START_TEST (test_jitter_bounds)
{
    backoff_t policy = { .initial_ms = 1000, .max_ms = 60000, .multiplier = 2.0, .jitter = 0.2 };
    //  random01 = 0: the low end, delay * (1 - jitter).
    ck_assert_int_eq (backoff_delay_ms (&policy, 1, 0.0), 800);
    ck_assert_int_eq (backoff_delay_ms (&policy, 2, 0.0), 1600);
    ck_assert_int_eq (backoff_delay_ms (&policy, 6, 0.0), 25600);
    //  random01 = 0.5: no jitter at all.
    ck_assert_int_eq (backoff_delay_ms (&policy, 1, 0.5), 1000);
    ck_assert_int_eq (backoff_delay_ms (&policy, 3, 0.5), 4000);
    //  random01 close to 1: close to delay * (1 + jitter).
    int64_t high = backoff_delay_ms (&policy, 1, 0.999);
    ck_assert_int_ge (high, 1198);
    ck_assert_int_le (high, 1200);
    high = backoff_delay_ms (&policy, 5, 0.999);
    ck_assert_int_ge (high, 19180);
    ck_assert_int_le (high, 19200);
    //  At the cap jitter may lower the delay but never raise it above max.
    ck_assert_int_eq (backoff_delay_ms (&policy, 10, 0.999), 60000);
    ck_assert_int_eq (backoff_delay_ms (&policy, 10, 0.0), 48000);
    //  Just below the cap: the upper spread is cut at max.
    policy.max_ms = 17000;
    ck_assert_int_eq (backoff_delay_ms (&policy, 5, 0.999), 17000);
    ck_assert_int_eq (backoff_delay_ms (&policy, 5, 0.0), 12800);

    //  Full jitter at the smallest delay: never below 1 ms.
    policy = (backoff_t) { .initial_ms = 1, .max_ms = 1000, .multiplier = 2.0, .jitter = 1.0 };
    ck_assert_int_eq (backoff_delay_ms (&policy, 1, 0.0), 1);
    ck_assert_int_ge (backoff_delay_ms (&policy, 1, 0.25), 1);
    ck_assert_int_le (backoff_delay_ms (&policy, 1, 0.999), 2);
    policy.initial_ms = 10;
    ck_assert_int_eq (backoff_delay_ms (&policy, 1, 0.0), 1);
    ck_assert_int_eq (backoff_delay_ms (&policy, 1, 0.999), 19);
}
END_TEST

START_TEST (test_jitter_sweep)
{
    //  For every attempt and a fine sweep of random01 the delay lies in
    //  [delay * (1 - j), min (max, delay * (1 + j))] and is at least 1, and
    //  it does not decrease as random01 grows.
    static const double jitters [] = { 0.0, 0.1, 0.2, 0.5, 1.0 };
    for (size_t j = 0; j < sizeof jitters / sizeof jitters [0]; j++) {
        backoff_t policy = { .initial_ms = 250, .max_ms = 30000, .multiplier = 1.7,
                             .jitter = jitters [j] };
        double base = 250;
        for (uint32_t attempt = 1; attempt <= 20; attempt++) {
            double capped = base < 30000 ? base : 30000;
            int64_t previous = 0;
            for (int step = 0; step < 1000; step++) {
                double r = step / 1000.0;
                int64_t d = backoff_delay_ms (&policy, attempt, r);
                double low = capped * (1 - jitters [j]);
                double high = capped * (1 + jitters [j]);
                REQUIRE (d >= 1, "jitter %g attempt %u r %g: %lld", jitters [j], attempt, r,
                         (long long) d);
                REQUIRE (d <= 30000, "jitter %g attempt %u r %g: %lld over max", jitters [j],
                         attempt, r, (long long) d);
                REQUIRE ((double) d >= low - 1 && (double) d <= high,
                         "jitter %g attempt %u r %g: %lld outside [%g, %g]", jitters [j],
                         attempt, r, (long long) d, low, high);
                REQUIRE (d >= previous, "not monotonic in random01");
                previous = d;
            }
            base *= 1.7;
        }
    }
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("backoff");
    TCase *tc = tcase_create ("backoff");
    tcase_add_test (tc, test_exponential);
    tcase_add_test (tc, test_multiplier_one);
    tcase_add_test (tc, test_jitter_bounds);
    tcase_add_test (tc, test_jitter_sweep);
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
