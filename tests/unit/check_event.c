/*  check_event.c — unit tests for broker events (src/broker/event.c).

    An event keeps a small payload and its headers inside its own pooled
    block (event_new_copy) and a big one as a zmq_msg_t shared with every
    DELIVER (event_new).  The interesting edges: the inline limit exactly
    (EVENT_INLINE_MAX bytes of payload plus headers stay inline, one more
    goes to messages), empty payloads, long names that do not fit a pooled
    block, blocks reused from the free list carrying nothing over from the
    event before, event_bytes agreeing for both kinds, and the DELIVER
    header template sitting between the names and the inline bytes without
    overwriting them.                                                        */
#include "event.h"
#include "busp.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_fill (uint8_t *buf, size_t size, uint8_t seed)
{
    for (size_t i = 0; i < size; i++)
        buf [i] = (uint8_t) (seed + i * 7);
}

static void
s_check_bytes (const event_t *ev, const char *topic, const char *msg_id,
               const uint8_t *payload, size_t size, const char *headers)
{
    ck_assert_str_eq (ev->topic, topic);
    ck_assert_uint_eq (ev->topic_len, strlen (topic));
    ck_assert_str_eq (ev->msg_id, msg_id);
    ck_assert_uint_eq (ev->msg_id_len, strlen (msg_id));
    ck_assert_uint_eq (ev->payload_size, size);
    if (size)
        ck_assert_mem_eq (ev->payload_data, payload, size);
    size_t hsize = headers ? strlen (headers) : 0;
    ck_assert_int_eq (ev->has_headers, hsize > 0);
    ck_assert_uint_eq (ev->headers_size, hsize);
    if (hsize)
        ck_assert_mem_eq (ev->headers_data, headers, hsize);
    else
        ck_assert_ptr_null (ev->headers_data);
    ck_assert_uint_eq (event_bytes (ev), size + hsize + strlen (topic) + strlen (msg_id)
                                         + sizeof (event_t));
}

START_TEST (test_inline_small)
{
    uint8_t payload [100];
    s_fill (payload, sizeof payload, 3);
    const char *headers = "{\"k\":\"v\"}";
    event_t *ev = event_new_copy ("a.b", 3, "id-1", 4, payload, sizeof payload,
                                  headers, strlen (headers), 42);
    ck_assert_ptr_nonnull (ev);
    ck_assert (ev->is_inline);
    ck_assert_int_eq (ev->ts_us, 42);
    ck_assert_uint_eq (ev->refs, 1);
    s_check_bytes (ev, "a.b", "id-1", payload, sizeof payload, headers);
    //  The bytes live in the event's own block.
    ck_assert ((const uint8_t *) ev->payload_data > (const uint8_t *) ev
            && (const uint8_t *) ev->payload_data < (const uint8_t *) ev->data + 1024);
    event_unref (&ev);
    ck_assert_ptr_null (ev);
}
END_TEST

START_TEST (test_inline_limit)
{
    //  Exactly EVENT_INLINE_MAX bytes (payload + headers) stay inline; one
    //  byte more goes to messages, with the same contents either way.
    static uint8_t payload [EVENT_INLINE_MAX + 1];
    s_fill (payload, sizeof payload, 9);
    const char *headers = "{\"a\":\"b\"}";
    size_t hsize = strlen (headers);
    struct { size_t size; const char *headers; bool is_inline; } cases [] = {
        { EVENT_INLINE_MAX, NULL, true },
        { EVENT_INLINE_MAX + 1, NULL, false },
        { EVENT_INLINE_MAX - hsize, headers, true },
        { EVENT_INLINE_MAX - hsize + 1, headers, false },
        { 0, NULL, true },
        { 0, headers, true },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        event_t *ev = event_new_copy ("t", 1, "", 0, payload, cases [i].size,
                                      cases [i].headers,
                                      cases [i].headers ? strlen (cases [i].headers) : 0, 1);
        ck_assert_ptr_nonnull (ev);
        ck_assert_msg (ev->is_inline == cases [i].is_inline, "case %zu", i);
        s_check_bytes (ev, "t", "", payload, cases [i].size, cases [i].headers);
        if (!ev->is_inline) {
            //  The messages a DELIVER shares hold the same bytes.
            ck_assert_uint_eq (zmq_msg_size (&ev->payload_msg), cases [i].size);
            ck_assert_ptr_eq (zmq_msg_data (&ev->payload_msg), ev->payload_data);
        }
        event_unref (&ev);
    }
    event_pool_release ();
}
END_TEST

START_TEST (test_headers_without_bytes)
{
    //  headers NULL (or empty) means none, whatever hsize says.
    event_t *ev = event_new_copy ("t", 1, "", 0, "xy", 2, NULL, 5, 1);
    ck_assert_ptr_nonnull (ev);
    s_check_bytes (ev, "t", "", (const uint8_t *) "xy", 2, NULL);
    event_unref (&ev);
}
END_TEST

START_TEST (test_long_names)
{
    //  255-byte topic and msg_id: not a pooled block, payload still inline.
    char topic [256], msg_id [256];
    memset (topic, 't', 255);
    topic [255] = 0;
    memset (msg_id, 'm', 255);
    msg_id [255] = 0;
    uint8_t payload [EVENT_INLINE_MAX];
    s_fill (payload, sizeof payload, 1);
    for (int round = 0; round < 3; round++) {
        event_t *ev = event_new_copy (topic, 255, msg_id, 255, payload, sizeof payload,
                                      NULL, 0, 7);
        ck_assert_ptr_nonnull (ev);
        ck_assert (ev->is_inline);
        s_check_bytes (ev, topic, msg_id, payload, sizeof payload, NULL);
        //  Encoding the DELIVER header into the template must not touch
        //  the payload behind it.
        const uint8_t *header = event_deliver_header (ev, 5, 6, 1);
        ck_assert_ptr_nonnull (header);
        ck_assert_uint_gt (ev->deliver_len, 2 + 255 + 255);
        s_check_bytes (ev, topic, msg_id, payload, sizeof payload, NULL);
        event_unref (&ev);
    }
}
END_TEST

START_TEST (test_deliver_header_and_payload)
{
    //  A short-named inline event: the DELIVER header decodes back and the
    //  payload behind the template is intact after every delivery.
    uint8_t payload [200];
    s_fill (payload, sizeof payload, 5);
    event_t *ev = event_new_copy ("orders.eu", 9, "pay-981", 7, payload, sizeof payload,
                                  NULL, 0, 1234);
    ck_assert_ptr_nonnull (ev);
    ev->stream_seq = 77;
    for (uint32_t d = 1; d <= 3; d++) {
        const uint8_t *buf = event_deliver_header (ev, 9, d, (uint16_t) d);
        busp_header_t h;
        ck_assert_int_eq (busp_decode (buf, ev->deliver_len, &h, NULL), 0);
        ck_assert_int_eq (h.command, BUSP_DELIVER);
        ck_assert_uint_eq (h.sub_id, 9);
        ck_assert_uint_eq (h.delivery_id, d);
        ck_assert_uint_eq (h.stream_seq, 77);
        ck_assert_uint_eq (h.attempt, d);
        ck_assert_int_eq (h.ts_us, 1234);
        ck_assert_uint_eq (h.topic.len, 9);
        ck_assert_mem_eq (h.topic.data, "orders.eu", 9);
        ck_assert_uint_eq (h.msg_id.len, 7);
        ck_assert_mem_eq (h.msg_id.data, "pay-981", 7);
        s_check_bytes (ev, "orders.eu", "pay-981", payload, sizeof payload, NULL);
    }
    event_unref (&ev);
}
END_TEST

START_TEST (test_reuse_and_refs)
{
    //  Blocks come back from the free list: nothing of the event before
    //  (inline or not, with or without headers) shows through, and the
    //  last reference, not the first, frees.
    uint8_t payload [EVENT_INLINE_MAX + 100];
    for (int round = 0; round < 2000; round++) {
        size_t size = (size_t) (round * 37) % sizeof payload;
        s_fill (payload, size, (uint8_t) round);
        const char *headers = round % 3 == 0 ? "{\"r\":\"x\"}" : NULL;
        char topic [32], msg_id [32];
        snprintf (topic, sizeof topic, "t.%d", round);
        snprintf (msg_id, sizeof msg_id, round % 2 ? "m%d" : "", round);
        event_t *ev = round % 5 == 4
            ? NULL : event_new_copy (topic, strlen (topic), msg_id, strlen (msg_id), payload,
                                     size, headers, headers ? strlen (headers) : 0, round);
        if (!ev) {
            //  Now and then the message path, into the same pool.
            zmq_msg_t p;
            ck_assert_int_eq (zmq_msg_init_size (&p, size), 0);
            if (size)
                memcpy (zmq_msg_data (&p), payload, size);
            ev = event_new (topic, strlen (topic), msg_id, strlen (msg_id), &p, NULL, round);
            ck_assert_uint_eq (zmq_msg_size (&p), 0);       /*  moved      */
            zmq_msg_close (&p);
            headers = NULL;
        }
        ck_assert_ptr_nonnull (ev);
        event_t *second = event_ref (ev);
        event_t *third = event_ref (ev);
        event_unref (&second);
        event_unref (&third);
        s_check_bytes (ev, topic, msg_id, payload, size, headers);
        event_unref (&ev);
    }
    event_pool_release ();
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("event");
    TCase *tc = tcase_create ("event");
    tcase_add_test (tc, test_inline_small);
    tcase_add_test (tc, test_inline_limit);
    tcase_add_test (tc, test_headers_without_bytes);
    tcase_add_test (tc, test_long_names);
    tcase_add_test (tc, test_deliver_header_and_payload);
    tcase_add_test (tc, test_reuse_and_refs);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
