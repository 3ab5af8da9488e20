/*  check_dedup.c — unit tests for the msg_id idempotency window
    (src/broker/dedup.c, PROTOCOL §5).

    The index hashes keys that live inside the FIFO's entries, so the risky
    paths are those where an id has two entries (re-added after its window
    passed but before expiry ran): expiring the older entry must neither
    remove the newer one from the index nor leave the index pointing at a
    freed key.  Run under valgrind to see the latter.  Times are plain
    milliseconds chosen by the test; nothing here sleeps.                   */
#include "dedup.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg (__VA_ARGS__); } while (0)

static bool
s_seen (dedup_t *dedup, const char *id, int64_t now)
{
    return dedup_seen (dedup, "t", 1, id, strlen (id), now);
}

static void
s_add (dedup_t *dedup, const char *id, int64_t now)
{
    ck_assert_int_eq (dedup_add (dedup, "t", 1, id, strlen (id), now), 0);
}

START_TEST (test_new_destroy)
{
    dedup_t *dedup = dedup_new (1000, 10);
    ck_assert_ptr_nonnull (dedup);
    ck_assert_uint_eq (dedup_size (dedup), 0);
    ck_assert_uint_eq (dedup_evicted (dedup), 0);
    ck_assert (!s_seen (dedup, "a", 0));
    dedup_expire (dedup, 5000);             //  nothing to expire
    dedup_destroy (&dedup);
    ck_assert_ptr_null (dedup);
    dedup_destroy (&dedup);
}
END_TEST

START_TEST (test_window)
{
    dedup_t *dedup = dedup_new (100, 1000);
    s_add (dedup, "order-1", 1000);
    ck_assert_uint_eq (dedup_size (dedup), 1);
    ck_assert (s_seen (dedup, "order-1", 1000));
    ck_assert (s_seen (dedup, "order-1", 1099));
    //  Exactly window_ms later it is no longer a duplicate.
    ck_assert (!s_seen (dedup, "order-1", 1100));
    ck_assert (!s_seen (dedup, "order-1", 5000));
    //  Other ids, prefixes and extensions are not seen.
    ck_assert (!s_seen (dedup, "order-2", 1000));
    ck_assert (!s_seen (dedup, "order-", 1000));
    ck_assert (!s_seen (dedup, "order-10", 1000));
    ck_assert (!s_seen (dedup, "", 1000));
    dedup_destroy (&dedup);
}
END_TEST

START_TEST (test_expire)
{
    dedup_t *dedup = dedup_new (100, 1000);
    s_add (dedup, "a", 0);
    s_add (dedup, "b", 50);
    s_add (dedup, "c", 100);
    dedup_expire (dedup, 99);
    ck_assert_uint_eq (dedup_size (dedup), 3);
    dedup_expire (dedup, 120);
    ck_assert_uint_eq (dedup_size (dedup), 2);
    ck_assert (!s_seen (dedup, "a", 120));
    ck_assert (s_seen (dedup, "b", 120));
    ck_assert (s_seen (dedup, "c", 120));
    dedup_expire (dedup, 200);
    ck_assert_uint_eq (dedup_size (dedup), 0);
    ck_assert (!s_seen (dedup, "b", 149));  //  gone from the index too
    ck_assert (!s_seen (dedup, "c", 150));
    //  Expiry is not eviction.
    ck_assert_uint_eq (dedup_evicted (dedup), 0);
    dedup_destroy (&dedup);
}
END_TEST

START_TEST (test_readd_after_expiry)
{
    dedup_t *dedup = dedup_new (100, 1000);
    //  Expired and removed, then added again.
    s_add (dedup, "a", 0);
    dedup_expire (dedup, 100);
    ck_assert_uint_eq (dedup_size (dedup), 0);
    s_add (dedup, "a", 150);
    ck_assert (s_seen (dedup, "a", 160));
    dedup_expire (dedup, 249);
    ck_assert (s_seen (dedup, "a", 249));
    dedup_expire (dedup, 250);
    ck_assert (!s_seen (dedup, "a", 250));
    ck_assert_uint_eq (dedup_size (dedup), 0);

    //  Out of the window but not yet expired, then added again: two
    //  entries for one id.  Expiring the older one keeps the newer in the
    //  index (and must not touch the freed key: valgrind).
    s_add (dedup, "b", 1000);
    ck_assert (!s_seen (dedup, "b", 1200));
    s_add (dedup, "b", 1200);
    ck_assert_uint_eq (dedup_size (dedup), 2);
    ck_assert (s_seen (dedup, "b", 1250));
    dedup_expire (dedup, 1250);
    ck_assert_uint_eq (dedup_size (dedup), 1);
    ck_assert (s_seen (dedup, "b", 1250));
    //  The index still works for this key after its first entry died.
    s_add (dedup, "c", 1260);
    ck_assert (s_seen (dedup, "b", 1260));
    ck_assert (s_seen (dedup, "c", 1260));
    dedup_expire (dedup, 1300);
    ck_assert (!s_seen (dedup, "b", 1299));
    ck_assert (s_seen (dedup, "c", 1300));
    ck_assert_uint_eq (dedup_size (dedup), 1);
    //  And once more: add, re-add, expire all, add again.
    s_add (dedup, "b", 1400);
    s_add (dedup, "b", 1600);
    dedup_expire (dedup, 5000);
    ck_assert_uint_eq (dedup_size (dedup), 0);
    ck_assert (!s_seen (dedup, "b", 5000));
    s_add (dedup, "b", 5000);
    ck_assert (s_seen (dedup, "b", 5001));
    dedup_destroy (&dedup);
}
END_TEST

START_TEST (test_size_cap)
{
    dedup_t *dedup = dedup_new (1000000, 3);
    s_add (dedup, "a", 1);
    s_add (dedup, "b", 2);
    s_add (dedup, "c", 3);
    ck_assert_uint_eq (dedup_evicted (dedup), 0);
    s_add (dedup, "d", 4);
    ck_assert_uint_eq (dedup_size (dedup), 3);
    ck_assert_uint_eq (dedup_evicted (dedup), 1);
    ck_assert (!s_seen (dedup, "a", 5));    //  the oldest went first
    ck_assert (s_seen (dedup, "b", 5));
    ck_assert (s_seen (dedup, "c", 5));
    ck_assert (s_seen (dedup, "d", 5));
    s_add (dedup, "e", 6);
    s_add (dedup, "f", 7);
    ck_assert_uint_eq (dedup_evicted (dedup), 3);
    ck_assert (!s_seen (dedup, "b", 8));
    ck_assert (!s_seen (dedup, "c", 8));
    ck_assert (s_seen (dedup, "d", 8) && s_seen (dedup, "e", 8) && s_seen (dedup, "f", 8));
    //  Evicted ids can come back.
    s_add (dedup, "a", 9);
    ck_assert (s_seen (dedup, "a", 9));
    ck_assert (!s_seen (dedup, "d", 9));
    ck_assert_uint_eq (dedup_evicted (dedup), 4);

    //  A cap of 0 keeps nothing.
    dedup_configure (dedup, 1000000, 0);
    s_add (dedup, "z", 10);
    ck_assert (!s_seen (dedup, "z", 10));
    //  A cap of 1 keeps the newest only.
    dedup_configure (dedup, 1000000, 1);
    s_add (dedup, "y", 11);
    ck_assert_uint_eq (dedup_size (dedup), 1);
    ck_assert (s_seen (dedup, "y", 11));
    ck_assert (!s_seen (dedup, "a", 11));
    dedup_destroy (&dedup);
}
END_TEST

START_TEST (test_window_zero)
{
    dedup_t *dedup = dedup_new (0, 1000);
    s_add (dedup, "a", 10);
    ck_assert_uint_eq (dedup_size (dedup), 0);
    ck_assert (!s_seen (dedup, "a", 10));
    dedup_expire (dedup, 10);
    dedup_destroy (&dedup);

    //  Reconfigured to 0 with entries kept: nothing counts as seen any
    //  more, and expiry clears them.
    dedup = dedup_new (1000, 1000);
    s_add (dedup, "a", 10);
    s_add (dedup, "b", 20);
    ck_assert (s_seen (dedup, "a", 10));
    dedup_configure (dedup, 0, 1000);
    ck_assert (!s_seen (dedup, "a", 10));
    s_add (dedup, "c", 20);
    ck_assert_uint_eq (dedup_size (dedup), 2);
    dedup_expire (dedup, 20);
    ck_assert_uint_eq (dedup_size (dedup), 0);
    //  And back on.
    dedup_configure (dedup, 1000, 1000);
    s_add (dedup, "a", 30);
    ck_assert (s_seen (dedup, "a", 30));
    dedup_destroy (&dedup);
}
END_TEST

START_TEST (test_binary_ids)
{
    //  msg_ids are byte strings: NUL is an ordinary byte.
    dedup_t *dedup = dedup_new (1000, 1000);
    ck_assert_int_eq (dedup_add (dedup, "t", 1, "a\0b", 3, 0), 0);
    ck_assert (dedup_seen (dedup, "t", 1, "a\0b", 3, 1));
    ck_assert (!dedup_seen (dedup, "t", 1, "a\0c", 3, 1));
    ck_assert (!dedup_seen (dedup, "t", 1, "a", 1, 1));
    ck_assert (!dedup_seen (dedup, "t", 1, "a\0", 2, 1));
    ck_assert (!dedup_seen (dedup, "t", 1, "a\0b\0", 4, 1));
    ck_assert_int_eq (dedup_add (dedup, "t", 1, "\0", 1, 0), 0);
    ck_assert_int_eq (dedup_add (dedup, "t", 1, "\0\0", 2, 0), 0);
    ck_assert (dedup_seen (dedup, "t", 1, "\0", 1, 1));
    ck_assert (dedup_seen (dedup, "t", 1, "\0\0", 2, 1));
    ck_assert (!dedup_seen (dedup, "t", 1, "\0\0\0", 3, 1));
    ck_assert (!dedup_seen (dedup, "t", 1, "", 0, 1));
    ck_assert_uint_eq (dedup_size (dedup), 3);

    //  Every byte value, and the longest id a str8 can carry.
    uint8_t all [255];
    for (int i = 0; i < 255; i++)
        all [i] = (uint8_t) (255 - i);
    ck_assert_int_eq (dedup_add (dedup, "t", 1, (char *) all, 255, 0), 0);
    ck_assert (dedup_seen (dedup, "t", 1, (char *) all, 255, 1));
    ck_assert (!dedup_seen (dedup, "t", 1, (char *) all, 254, 1));
    all [254] ^= 1;
    ck_assert (!dedup_seen (dedup, "t", 1, (char *) all, 255, 1));
    all [254] ^= 1;
    dedup_expire (dedup, 1000);
    ck_assert (!dedup_seen (dedup, "t", 1, (char *) all, 255, 1000));
    ck_assert_uint_eq (dedup_size (dedup), 0);
    dedup_destroy (&dedup);
}
END_TEST

/*  PROTOCOL §5: the key is (topic, msg_id).  The same msg_id on another
    topic is a different event, and the boundary between topic and msg_id
    cannot be moved to forge a match.                                        */
START_TEST (test_topic_in_key)
{
    dedup_t *dedup = dedup_new (1000, 100);
    ck_assert_int_eq (dedup_add (dedup, "a.b", 3, "id-1", 4, 0), 0);
    ck_assert (dedup_seen (dedup, "a.b", 3, "id-1", 4, 1));
    ck_assert (!dedup_seen (dedup, "a.c", 3, "id-1", 4, 1));
    ck_assert (!dedup_seen (dedup, "a", 1, ".bid-1", 6, 1));
    ck_assert (!dedup_seen (dedup, "a.bi", 4, "d-1", 3, 1));
    dedup_remove (dedup, "a.c", 3, "id-1", 4);
    ck_assert (dedup_seen (dedup, "a.b", 3, "id-1", 4, 1));
    dedup_remove (dedup, "a.b", 3, "id-1", 4);
    ck_assert (!dedup_seen (dedup, "a.b", 3, "id-1", 4, 1));
    dedup_destroy (&dedup);
}
END_TEST

START_TEST (test_many)
{
    //  A steady stream: one id per ms, window 1000 ms, expiry every 10 ms.
    //  The window holds about 1000 ids at any time; ids from the window are
    //  seen, older ones not, and the index never outlives the FIFO.
    dedup_t *dedup = dedup_new (1000, 100000);
    char id [32];
    for (int64_t now = 0; now < 50000; now++) {
        snprintf (id, sizeof id, "msg-%lld", (long long) now);
        REQUIRE (!dedup_seen (dedup, "t", 1, id, strlen (id), now), "%s seen before added", id);
        REQUIRE (dedup_add (dedup, "t", 1, id, strlen (id), now) == 0, "add");
        if (now % 10 == 0) {
            dedup_expire (dedup, now);
            REQUIRE (dedup_size (dedup) <= 1000, "size %zu at %lld",
                     dedup_size (dedup), (long long) now);
        }
        if (now >= 1000 && now % 97 == 0) {
            snprintf (id, sizeof id, "msg-%lld", (long long) (now - 999));
            REQUIRE (dedup_seen (dedup, "t", 1, id, strlen (id), now), "%s not seen at %lld", id,
                     (long long) now);
            snprintf (id, sizeof id, "msg-%lld", (long long) (now - 1000));
            REQUIRE (!dedup_seen (dedup, "t", 1, id, strlen (id), now), "%s seen at %lld", id,
                     (long long) now);
        }
    }
    ck_assert_uint_eq (dedup_evicted (dedup), 0);
    dedup_expire (dedup, 1000000);
    ck_assert_uint_eq (dedup_size (dedup), 0);
    dedup_destroy (&dedup);
}
END_TEST

/*  dedup_max_bytes: long keys fill the byte cap before the entry cap, the
    oldest go first (counted as evicted), the newest are still seen.        */
START_TEST (test_byte_cap)
{
    dedup_t *dedup = dedup_new (100000, 1000000);
    dedup_set_max_bytes (dedup, 64 * 1024);
    char topic [256], id [256];
    memset (topic, 't', 255);
    memset (id, 'i', 255);
    topic [255] = id [255] = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf (id, sizeof id, "%0254d", i);
        ck_assert_int_eq (dedup_add (dedup, topic, 255, id, 254, 0), 0);
        ck_assert_uint_le (dedup_bytes (dedup), 64 * 1024);
    }
    size_t kept = dedup_size (dedup);
    ck_assert_uint_gt (kept, 64 * 1024 / 700);
    ck_assert_uint_lt (kept, 64 * 1024 / 500 + 1);
    ck_assert_uint_eq (dedup_evicted (dedup), 1000 - kept);
    ck_assert (dedup_seen (dedup, topic, 255, id, 254, 1));
    snprintf (id, sizeof id, "%0254d", 0);
    ck_assert (!dedup_seen (dedup, topic, 255, id, 254, 1));
    //  Short keys cost less: many more fit.
    dedup_t *small = dedup_new (100000, 1000000);
    dedup_set_max_bytes (small, 64 * 1024);
    for (int i = 0; i < 1000; i++) {
        snprintf (id, sizeof id, "%d", i);
        ck_assert_int_eq (dedup_add (small, "t", 1, id, strlen (id), 0), 0);
    }
    ck_assert_uint_gt (dedup_size (small), 4 * kept);
    //  Lowering the cap (a reload) evicts at once; expiry gives bytes back.
    dedup_set_max_bytes (small, 1024);
    ck_assert_uint_le (dedup_bytes (small), 1024);
    dedup_expire (small, 200000);
    ck_assert_uint_eq (dedup_bytes (small), 0);
    dedup_destroy (&small);
    dedup_destroy (&dedup);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("dedup");
    TCase *tc = tcase_create ("dedup");
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_window);
    tcase_add_test (tc, test_expire);
    tcase_add_test (tc, test_readd_after_expiry);
    tcase_add_test (tc, test_size_cap);
    tcase_add_test (tc, test_window_zero);
    tcase_add_test (tc, test_binary_ids);
    tcase_add_test (tc, test_many);
    tcase_add_test (tc, test_topic_in_key);
    tcase_add_test (tc, test_byte_cap);
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
