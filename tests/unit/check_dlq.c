/*  check_dlq.c — unit tests for the dead-letter store (src/broker/dlq.c).

    The store backs dlq-list and dlq-replay (PROTOCOL §7): entries keep the
    original event by reference, come back in arrival order, filter by a
    pattern over the original topic or over `$dlq.<topic>`, by subscription,
    by time and by count, and are bounded by count and bytes, evicting the
    oldest and counting what was evicted.  Reference counts are checked
    directly: the store must release every event exactly once.              */
#include "dlq.h"
#include "topic.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static event_t *
s_event (const char *topic, const char *msg_id, size_t payload_size)
{
    zmq_msg_t payload;
    ck_assert_int_eq (zmq_msg_init_size (&payload, payload_size), 0);
    if (payload_size)
        memset (zmq_msg_data (&payload), 'p', payload_size);
    event_t *ev = event_new (topic, strlen (topic), msg_id, strlen (msg_id), &payload, NULL, 99);
    ck_assert_ptr_nonnull (ev);
    zmq_msg_close (&payload);
    return ev;
}

/*  A reply as the client reads it: printed, then parsed back (ts_us is
    written raw so it stays an exact integer on the wire).                  */
static cJSON *
s_wire (cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    ck_assert_ptr_nonnull (text);
    cJSON_Delete (json);
    cJSON *back = cJSON_Parse (text);
    free (text);
    ck_assert_ptr_nonnull (back);
    return back;
}

/*  Add an event and drop the test's reference: the store then holds the
    only one.                                                               */
static uint64_t
s_add (dlq_t *dlq, const char *topic, const char *subscription, int64_t ts_us)
{
    event_t *ev = s_event (topic, "", 10);
    uint64_t id = dlq_add (dlq, ev, "nacked", 3, subscription, ts_us);
    event_unref (&ev);
    return id;
}

/*  The ids in a dlq_list result, as a comma-separated string.              */
static char *
s_ids (cJSON *list)
{
    static char buf [1024];
    buf [0] = 0;
    ck_assert (cJSON_IsArray (list));
    const cJSON *item;
    cJSON_ArrayForEach (item, list) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive (item, "id");
        ck_assert (cJSON_IsNumber (id));
        size_t len = strlen (buf);
        snprintf (buf + len, sizeof buf - len, "%s%.0f", len ? "," : "", id->valuedouble);
    }
    cJSON_Delete (list);
    return buf;
}

/*  The ids dlq_match finds for pattern.                                    */
static char *
s_match (dlq_t *dlq, const char *pattern)
{
    static char buf [1024];
    uint64_t ids [64];
    size_t n = dlq_match (dlq, pattern, ids, 64);
    buf [0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen (buf);
        snprintf (buf + len, sizeof buf - len, "%s%llu", len ? "," : "",
                  (unsigned long long) ids [i]);
    }
    return buf;
}

START_TEST (test_new_destroy)
{
    dlq_t *dlq = dlq_new (10, 1000000);
    ck_assert_ptr_nonnull (dlq);
    ck_assert_uint_eq (dlq_size (dlq), 0);
    ck_assert_uint_eq (dlq_bytes (dlq), 0);
    ck_assert_uint_eq (dlq_evicted (dlq), 0);
    ck_assert_ptr_null (dlq_find (dlq, 1));
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "");
    dlq_remove (dlq, 1);                //  absent: nothing happens
    dlq_destroy (&dlq);
    ck_assert_ptr_null (dlq);
    dlq_destroy (&dlq);
}
END_TEST

START_TEST (test_add_find_remove)
{
    dlq_t *dlq = dlq_new (100, 1000000);
    event_t *ev = s_event ("user.created", "m-1", 123);
    ev->stream_seq = 77;
    uint64_t id = dlq_add (dlq, ev, "smtp down", 5, "email-workers", 1000);
    ck_assert_uint_gt (id, 0);
    ck_assert_uint_eq (ev->refs, 2);        //  the store took its own
    ck_assert_uint_eq (dlq_size (dlq), 1);
    ck_assert_uint_eq (dlq_bytes (dlq), event_bytes (ev));

    dlq_entry_t *entry = dlq_find (dlq, id);
    ck_assert_ptr_nonnull (entry);
    ck_assert_uint_eq (entry->id, id);
    ck_assert_ptr_eq (entry->original, ev);
    ck_assert_str_eq (entry->reason, "smtp down");
    ck_assert_uint_eq (entry->attempts, 5);
    ck_assert_str_eq (entry->subscription, "email-workers");
    ck_assert_int_eq (entry->ts_us, 1000);
    ck_assert_uint_eq (entry->original_seq, 77);
    ck_assert_ptr_null (dlq_find (dlq, id + 1));

    //  The list entry carries what dlq-list promises.
    cJSON *list = s_wire (dlq_list (dlq, NULL, NULL, 0, 0));
    ck_assert_int_eq (cJSON_GetArraySize (list), 1);
    cJSON *item = cJSON_GetArrayItem (list, 0);
    ck_assert_double_eq (cJSON_GetObjectItem (item, "id")->valuedouble, (double) id);
    ck_assert_str_eq (cJSON_GetObjectItem (item, "topic")->valuestring, "user.created");
    ck_assert_str_eq (cJSON_GetObjectItem (item, "reason")->valuestring, "smtp down");
    ck_assert_double_eq (cJSON_GetObjectItem (item, "attempts")->valuedouble, 5);
    ck_assert_str_eq (cJSON_GetObjectItem (item, "subscription")->valuestring, "email-workers");
    ck_assert_double_eq (cJSON_GetObjectItem (item, "ts_us")->valuedouble, 1000);
    ck_assert_str_eq (cJSON_GetObjectItem (item, "msg_id")->valuestring, "m-1");
    ck_assert_double_eq (cJSON_GetObjectItem (item, "size")->valuedouble, 123);
    cJSON_Delete (list);

    //  Ids grow and are never reused, even after a removal.
    uint64_t id2 = s_add (dlq, "user.deleted", "crm", 2000);
    uint64_t id3 = s_add (dlq, "user.updated", "crm", 3000);
    ck_assert_uint_eq (id2, id + 1);
    ck_assert_uint_eq (id3, id + 2);
    char expect [64];
    snprintf (expect, sizeof expect, "%llu,%llu,%llu", (unsigned long long) id,
              (unsigned long long) id2, (unsigned long long) id3);
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), expect);

    size_t bytes = dlq_bytes (dlq);
    size_t bytes2 = event_bytes (dlq_find (dlq, id2)->original);
    dlq_remove (dlq, id2);
    ck_assert_uint_eq (dlq_size (dlq), 2);
    ck_assert_uint_eq (dlq_bytes (dlq), bytes - bytes2);
    ck_assert_ptr_null (dlq_find (dlq, id2));
    ck_assert_ptr_nonnull (dlq_find (dlq, id));
    ck_assert_ptr_nonnull (dlq_find (dlq, id3));
    dlq_remove (dlq, id2);              //  twice: nothing happens
    ck_assert_uint_eq (dlq_size (dlq), 2);
    uint64_t id4 = s_add (dlq, "user.x", "crm", 4000);
    ck_assert_uint_eq (id4, id + 3);
    //  Removal is not eviction.
    ck_assert_uint_eq (dlq_evicted (dlq), 0);

    dlq_remove (dlq, id);
    ck_assert_uint_eq (ev->refs, 1);        //  released with the entry
    event_unref (&ev);
    dlq_destroy (&dlq);
}
END_TEST

START_TEST (test_wire_form)
{
    //  cJSON's numbers print with 15 digits: a µs time ending in 0 would
    //  come out as 1.79610277302191e+15.  ts_us stays an exact integer,
    //  and dlq-show's headers are the dead letter's (PROTOCOL §6).
    dlq_t *dlq = dlq_new (10, 1 << 20);
    event_t *ev = s_event ("a.b", "m", 3);
    uint64_t id = dlq_add (dlq, ev, "why", 2, "grp", INT64_C (1796102773021910));
    event_unref (&ev);
    cJSON *list = dlq_list (dlq, NULL, NULL, 0, 0);
    char *text = cJSON_PrintUnformatted (list);
    ck_assert_ptr_nonnull (strstr (text, "\"ts_us\":1796102773021910,"));
    free (text);
    cJSON_Delete (list);
    cJSON *one = s_wire (dlq_entry_json (dlq_find (dlq, id)));
    cJSON *headers = cJSON_GetObjectItem (one, "headers");
    ck_assert_str_eq (cJSON_GetObjectItem (headers, "x-reason")->valuestring, "why");
    ck_assert_str_eq (cJSON_GetObjectItem (headers, "x-attempts")->valuestring, "2");
    ck_assert_str_eq (cJSON_GetObjectItem (headers, "x-subscription")->valuestring, "grp");
    ck_assert_str_eq (cJSON_GetObjectItem (headers, "x-original-seq")->valuestring, "0");
    cJSON_Delete (one);
    dlq_destroy (&dlq);
}
END_TEST

START_TEST (test_long_texts)
{
    //  Reason and subscription are cut to their fields, still terminated.
    dlq_t *dlq = dlq_new (10, 1000000);
    char reason [1000], subscription [1000];
    memset (reason, 'r', sizeof reason - 1);
    reason [sizeof reason - 1] = 0;
    memset (subscription, 's', sizeof subscription - 1);
    subscription [sizeof subscription - 1] = 0;
    event_t *ev = s_event ("t", "", 0);
    uint64_t id = dlq_add (dlq, ev, reason, 1, subscription, 1);
    event_unref (&ev);
    dlq_entry_t *entry = dlq_find (dlq, id);
    ck_assert_uint_eq (strlen (entry->reason), sizeof entry->reason - 1);
    ck_assert_uint_eq (strlen (entry->subscription), sizeof entry->subscription - 1);
    //  An empty payload lists as size 0.
    cJSON *list = dlq_list (dlq, NULL, NULL, 0, 0);
    ck_assert_double_eq (cJSON_GetObjectItem (cJSON_GetArrayItem (list, 0), "size")->valuedouble, 0);
    cJSON_Delete (list);
    dlq_destroy (&dlq);
}
END_TEST

START_TEST (test_filter_pattern)
{
    dlq_t *dlq = dlq_new (100, 1000000);
    ck_assert_uint_eq (s_add (dlq, "user.created", "a", 1), 1);
    ck_assert_uint_eq (s_add (dlq, "user.deleted", "a", 2), 2);
    ck_assert_uint_eq (s_add (dlq, "order.paid", "b", 3), 3);
    ck_assert_uint_eq (s_add (dlq, "user.created.v2", "b", 4), 4);
    ck_assert_uint_eq (s_add (dlq, "user", "a", 5), 5);

    static const struct { const char *pattern; const char *ids; } cases [] = {
        //  Over the original topic.
        { "user.created", "1" },
        { "user.*", "1,2" },
        { "user.#", "1,2,4,5" },
        { "*.paid", "3" },
        { "#", "1,2,3,4,5" },
        { "*", "5" },
        { "nothing", "" },
        { "user.created.v2.extra", "" },
        //  Over the dead-letter topic.
        { "$dlq.#", "1,2,3,4,5" },
        { "$dlq.user.*", "1,2" },
        { "$dlq.user.#", "1,2,4,5" },
        { "$dlq.order.paid", "3" },
        { "$dlq.*", "5" },
        { "$dlq.*.created", "1" },
        { "$dlq", "" },
        { "$sys.#", "" },
        //  A wildcard first token never matches the `$dlq.` form.
        { "*.user.created", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        const char *pattern = cases [i].pattern;
        ck_assert_int_eq (busp_pattern_check (pattern, strlen (pattern), NULL), 0);
        char *got = s_ids (dlq_list (dlq, pattern, NULL, 0, 0));
        ck_assert_msg (strcmp (got, cases [i].ids) == 0, "list '%s': got [%s], expected [%s]",
                       pattern, got, cases [i].ids);
        got = s_match (dlq, pattern);
        ck_assert_msg (strcmp (got, cases [i].ids) == 0, "match '%s': got [%s], expected [%s]",
                       pattern, got, cases [i].ids);
    }
    //  NULL: everything.
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "1,2,3,4,5");
    ck_assert_str_eq (s_match (dlq, NULL), "1,2,3,4,5");

    //  dlq_match stops at max.
    uint64_t ids [2];
    ck_assert_uint_eq (dlq_match (dlq, "user.#", ids, 2), 2);
    ck_assert_uint_eq (ids [0], 1);
    ck_assert_uint_eq (ids [1], 2);
    ck_assert_uint_eq (dlq_match (dlq, "#", ids, 0), 0);

    //  A removed entry is no longer found.
    dlq_remove (dlq, 2);
    ck_assert_str_eq (s_match (dlq, "user.*"), "1");
    dlq_destroy (&dlq);
}
END_TEST

START_TEST (test_filter_subscription_time_limit)
{
    dlq_t *dlq = dlq_new (100, 1000000);
    s_add (dlq, "a.x", "crm", 100);
    s_add (dlq, "a.y", "email-workers", 200);
    s_add (dlq, "b.x", "crm", 300);
    s_add (dlq, "a.z", "app/7", 400);
    s_add (dlq, "a.x", "crm", 500);

    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, "crm", 0, 0)), "1,3,5");
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, "app/7", 0, 0)), "4");
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, "cr", 0, 0)), "");
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, "", 0, 0)), "");

    //  since_us is inclusive.
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 300, 0)), "3,4,5");
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 301, 0)), "4,5");
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 501, 0)), "");

    //  limit counts matching entries, oldest first; 0 is no limit.
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 2)), "1,2");
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 100)), "1,2,3,4,5");
    ck_assert_str_eq (s_ids (dlq_list (dlq, "a.#", NULL, 0, 2)), "1,2");
    ck_assert_str_eq (s_ids (dlq_list (dlq, "*.x", NULL, 0, 2)), "1,3");

    //  All filters together.
    ck_assert_str_eq (s_ids (dlq_list (dlq, "a.*", "crm", 200, 0)), "5");
    ck_assert_str_eq (s_ids (dlq_list (dlq, "$dlq.a.x", "crm", 0, 1)), "1");
    ck_assert_str_eq (s_ids (dlq_list (dlq, "a.*", "crm", 0, 1)), "1");
    dlq_destroy (&dlq);
}
END_TEST

START_TEST (test_evict_by_count)
{
    dlq_t *dlq = dlq_new (3, 1000000);
    event_t *held [6];
    char topic [16];
    for (int i = 0; i < 6; i++) {
        snprintf (topic, sizeof topic, "t.%d", i);
        held [i] = s_event (topic, "", 10);
        ck_assert_uint_eq (dlq_add (dlq, held [i], "r", 1, "s", i), (uint64_t) i + 1);
        ck_assert_uint_le (dlq_size (dlq), 3);
    }
    ck_assert_uint_eq (dlq_size (dlq), 3);
    ck_assert_uint_eq (dlq_evicted (dlq), 3);
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "4,5,6");
    ck_assert_ptr_null (dlq_find (dlq, 1));
    ck_assert_uint_eq (dlq_bytes (dlq), event_bytes (held [3]) * 3);
    //  Evicted events were released; kept ones are still held.
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq (held [i]->refs, i < 3 ? 1 : 2);

    //  Shrinking the limit evicts at once, oldest first.
    dlq_configure (dlq, 1, 1000000);
    ck_assert_uint_eq (dlq_size (dlq), 1);
    ck_assert_uint_eq (dlq_evicted (dlq), 5);
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "6");
    //  Growing it keeps what is there.
    dlq_configure (dlq, 10, 1000000);
    ck_assert_uint_eq (dlq_size (dlq), 1);
    //  A limit of 0 keeps nothing.
    dlq_configure (dlq, 0, 1000000);
    ck_assert_uint_eq (dlq_size (dlq), 0);
    ck_assert_uint_eq (dlq_bytes (dlq), 0);
    ck_assert_uint_eq (dlq_evicted (dlq), 6);
    uint64_t id = dlq_add (dlq, held [0], "r", 1, "s", 0);
    ck_assert_ptr_null (dlq_find (dlq, id));
    ck_assert_uint_eq (dlq_evicted (dlq), 7);
    for (int i = 0; i < 6; i++) {
        ck_assert_uint_eq (held [i]->refs, 1);
        event_unref (&held [i]);
    }
    dlq_destroy (&dlq);
}
END_TEST

START_TEST (test_evict_by_bytes)
{
    event_t *small = s_event ("s", "", 100);
    event_t *big = s_event ("b", "", 10000);
    size_t sb = event_bytes (small), bb = event_bytes (big);
    //  Room for one big and a few small ones.
    dlq_t *dlq = dlq_new (1000, bb + 3 * sb);
    for (int i = 0; i < 4; i++)
        dlq_add (dlq, small, "r", 1, "s", i);             //  ids 1..4
    ck_assert_uint_eq (dlq_bytes (dlq), 4 * sb);
    ck_assert_uint_eq (dlq_evicted (dlq), 0);
    dlq_add (dlq, big, "r", 1, "s", 4);                   //  id 5
    //  Adding the big one pushes out the oldest small one only.
    ck_assert_uint_eq (dlq_evicted (dlq), 1);
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "2,3,4,5");
    ck_assert_uint_eq (dlq_bytes (dlq), bb + 3 * sb);
    dlq_add (dlq, small, "r", 1, "s", 5);                 //  id 6
    ck_assert_uint_eq (dlq_evicted (dlq), 2);
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "3,4,5,6");
    ck_assert_uint_le (dlq_bytes (dlq), bb + 3 * sb);

    //  A second big one evicts everything older than it, big one included.
    dlq_add (dlq, big, "r", 1, "s", 6);                   //  id 7
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "6,7");
    ck_assert_uint_eq (dlq_evicted (dlq), 5);
    ck_assert_uint_eq (dlq_bytes (dlq), bb + sb);

    //  An entry larger than the whole budget is not kept, but counted.
    dlq_configure (dlq, 1000, sb * 2);
    ck_assert_str_eq (s_ids (dlq_list (dlq, NULL, NULL, 0, 0)), "");
    ck_assert_uint_eq (dlq_evicted (dlq), 7);
    uint64_t id = dlq_add (dlq, big, "r", 1, "s", 7);
    ck_assert_ptr_null (dlq_find (dlq, id));
    ck_assert_uint_eq (dlq_size (dlq), 0);
    ck_assert_uint_eq (dlq_bytes (dlq), 0);
    ck_assert_uint_eq (dlq_evicted (dlq), 8);
    dlq_add (dlq, small, "r", 1, "s", 8);
    dlq_add (dlq, small, "r", 1, "s", 9);
    ck_assert_uint_eq (dlq_size (dlq), 2);
    ck_assert_uint_eq (small->refs, 3);
    dlq_destroy (&dlq);
    //  Destroy released every reference.
    ck_assert_uint_eq (small->refs, 1);
    ck_assert_uint_eq (big->refs, 1);
    event_unref (&small);
    event_unref (&big);
}
END_TEST

START_TEST (test_many)
{
    //  A steady flow through a bounded store: size, bytes and the eviction
    //  count stay consistent with what went in.
    dlq_t *dlq = dlq_new (500, 1000000000);
    size_t per = 0;
    for (int i = 0; i < 20000; i++) {
        event_t *ev = s_event (i % 2 ? "odd.one" : "evn.one", "", 50);
        per = event_bytes (ev);
        dlq_add (dlq, ev, "r", 1, i % 3 ? "x" : "y", i);
        event_unref (&ev);
        if (i % 7 == 0)
            dlq_remove (dlq, (uint64_t) i + 1 - 250);     //  an id in the middle
    }
    ck_assert_uint_le (dlq_size (dlq), 500);
    ck_assert_uint_eq (dlq_bytes (dlq), dlq_size (dlq) * per);
    ck_assert_uint_gt (dlq_evicted (dlq), 0);
    cJSON *list = s_wire (dlq_list (dlq, "odd.*", NULL, 19000, 0));
    const cJSON *item;
    cJSON_ArrayForEach (item, list) {
        ck_assert_str_eq (cJSON_GetObjectItem (item, "topic")->valuestring, "odd.one");
        ck_assert_double_ge (cJSON_GetObjectItem (item, "ts_us")->valuedouble, 19000);
    }
    cJSON_Delete (list);
    dlq_destroy (&dlq);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("dlq");
    TCase *tc = tcase_create ("store");
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_add_find_remove);
    tcase_add_test (tc, test_long_texts);
    tcase_add_test (tc, test_wire_form);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("filter");
    tcase_add_test (tc, test_filter_pattern);
    tcase_add_test (tc, test_filter_subscription_time_limit);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("evict");
    tcase_add_test (tc, test_evict_by_count);
    tcase_add_test (tc, test_evict_by_bytes);
    tcase_add_test (tc, test_many);
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
