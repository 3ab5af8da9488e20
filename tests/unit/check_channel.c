/*  check_channel.c — channel.c and sub.c against a fake wire.

    The broker's state is built by hand (a broker that never binds, one
    session, channels and subscriptions made the way commands.c makes them)
    and tests/support/fakewire.c stands in for the ROUTER, so each test sees
    exactly which DELIVER, GAP and SUBEND a channel or subscription sent,
    can make a send fail as the socket would, and checks that work which
    must wait for the end of the batch (dead letters, redeliveries, ending a
    subscription) does wait for it.                                          */
#include "fakewire.h"
#include "receipt.h"
#include "timers.h"
#include "dlq.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*  main.c's, which ctl.c (pulled in by route.c's $sys.stats) refers to.   */
volatile sig_atomic_t busd_reload_requested;

static config_t *s_config;
static broker_t *s_broker;
static session_t *s_session;

static void
s_setup (void)
{
    fakewire_reset ();
    s_config = config_new ();
    ck_assert_ptr_nonnull (s_config);
    s_broker = broker_new (s_config);
    ck_assert_ptr_nonnull (s_broker);
    s_session = session_new (s_broker, (const uint8_t *) "\x00\x01", 2, "unit", 4);
    ck_assert_ptr_nonnull (s_session);
}

static void
s_teardown (void)
{
    broker_destroy (&s_broker);
    config_destroy (&s_config);
}

static event_t *
s_event (const char *topic, size_t size)
{
    zmq_msg_t payload;
    ck_assert_int_eq (zmq_msg_init_size (&payload, size), 0);
    memset (zmq_msg_data (&payload), 'p', size);
    event_t *ev = event_new (topic, strlen (topic), "", 0, &payload, NULL, 1);
    zmq_msg_close (&payload);
    ck_assert_ptr_nonnull (ev);
    return ev;
}

/*  A plain subscription the way commands.c makes one.                      */
static sub_t *
s_subscribe (uint32_t sub_id, policy_t policy, uint32_t limit, uint64_t bytes,
             uint64_t credit, bool explicit_ack)
{
    channel_t *channel = channel_new (s_broker, "t.x", NULL, policy, limit, bytes);
    ck_assert_ptr_nonnull (channel);
    ck_assert_int_eq (channel_register (channel), 0);
    sub_t *sub = sub_new (s_session, sub_id, "t.x");
    ck_assert_ptr_nonnull (sub);
    sub->credit = credit;
    sub->ack_explicit = explicit_ack;
    sub->ack_wait_ms = 100;
    sub->max_deliver = 5;
    zhashx_insert (s_session->subs, (void *) ((uintptr_t) sub_id + 1), sub);
    channel_add_member (channel, sub);
    return sub;
}

static void
s_offer (channel_t *channel, size_t count, size_t size)
{
    for (size_t i = 0; i < count; i++) {
        event_t *ev = s_event ("t.x", size);
        channel_offer (channel, ev, NULL);
        event_unref (&ev);
    }
}

START_TEST (test_deliver_then_queue_then_pump)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 2, false);
    s_offer (sub->channel, 3, 10);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 2);
    ck_assert_uint_eq (fakewire_nth (BUSP_DELIVER, 1)->h.delivery_id, 2);
    ck_assert_uint_eq (fakewire_nth (BUSP_DELIVER, 0)->h.attempt, 1);
    ck_assert_uint_eq (sub->credit, 0);
    ck_assert_uint_eq (channel_waiting (sub->channel), 1);
    sub_add_credit (sub, 5, 1000);
    channel_pump (sub->channel);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 3);
    ck_assert_uint_eq (channel_waiting (sub->channel), 0);
    ck_assert_uint_eq (s_broker->stats.delivered, 3);
}
END_TEST

START_TEST (test_credit_is_capped)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 0, false);
    sub_add_credit (sub, 4000000000u, 1000);
    ck_assert_uint_eq (sub->credit, 1000);
    sub_add_credit (sub, 4000000000u, 1000);
    ck_assert_uint_eq (sub->credit, 1000);
}
END_TEST

START_TEST (test_drop_new_reports_gap)
{
    sub_t *sub = s_subscribe (1, POLICY_DROP_NEW, 2, 1 << 20, 0, false);
    s_offer (sub->channel, 5, 10);
    ck_assert_uint_eq (fakewire_count, 0);
    ck_assert_uint_eq (s_broker->stats.dropped, 3);
    ck_assert_uint_eq (s_broker->stats.dropped_by_policy [POLICY_DROP_NEW], 3);
    sub_add_credit (sub, 10, 1000);
    channel_pump (sub->channel);
    ck_assert_uint_eq (fakewire_sent [0].h.command, BUSP_GAP);
    ck_assert_uint_eq (fakewire_sent [0].h.dropped, 3);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 2);
}
END_TEST

START_TEST (test_ack_and_inflight_bytes)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 10, true);
    s_offer (sub->channel, 1, 100);
    const fakewire_sent_t *d = fakewire_nth (BUSP_DELIVER, 0);
    ck_assert_ptr_nonnull (d);
    ck_assert_uint_eq (sub_inflight (sub), 1);
    ck_assert_uint_gt (sub->inflight_bytes, 100);
    ck_assert_uint_eq (s_broker->inflight_bytes, sub->inflight_bytes);
    //  The ack deadline is in the timer heap, and only due at ack_wait.
    ck_assert_ptr_null (timers_pop_due (s_broker, s_broker->now_ms + 99));
    ck_assert_int_eq (sub_ack (sub, d->h.delivery_id), 0);
    ck_assert_uint_eq (sub_inflight (sub), 0);
    ck_assert_uint_eq (s_broker->inflight_bytes, 0);
    ck_assert_int_eq (sub_ack (sub, d->h.delivery_id), -ENOENT);
}
END_TEST

START_TEST (test_nack_redelivery_waits_for_end_of_batch)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 10, true);
    s_offer (sub->channel, 1, 10);
    uint64_t id = fakewire_nth (BUSP_DELIVER, 0)->h.delivery_id;
    ck_assert_int_eq (sub_nack (sub, id, BUSP_NACK_REDELIVER, 50, NULL), 0);
    //  Not re-entered: nothing moved yet.
    ck_assert_uint_eq (channel_waiting (sub->channel), 0);
    ck_assert_uint_eq (s_broker->work.size, 1);
    work_end_batch (s_broker);
    ck_assert_uint_eq (channel_waiting (sub->channel), 1);     /*  delayed  */
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 1);
    //  Due in 50 ms: the timer heap hands the channel over then, not before.
    ck_assert_ptr_null (timers_pop_due (s_broker, s_broker->now_ms + 49));
    s_broker->now_ms += 50;
    channel_t *due = timers_pop_due (s_broker, s_broker->now_ms);
    ck_assert_ptr_eq (due, sub->channel);
    channel_tick (due, s_broker->now_ms);
    work_end_batch (s_broker);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 2);
    ck_assert_uint_eq (fakewire_nth (BUSP_DELIVER, 1)->h.attempt, 2);
    ck_assert_uint_eq (s_broker->stats.redelivered, 1);
}
END_TEST

/*  delay_ms is the client's: a NACKed event waiting out its delay still
    counts against max_queued_bytes, so NACKing everything for a day cannot
    grow the broker past its cap.                                           */
START_TEST (test_delayed_redelivery_counts_against_the_cap)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 10, true);
    s_offer (sub->channel, 1, 1000);
    uint64_t size = sub->inflight_bytes;
    ck_assert_uint_gt (size, 1000);
    uint64_t id = fakewire_nth (BUSP_DELIVER, 0)->h.delivery_id;
    ck_assert_int_eq (sub_nack (sub, id, BUSP_NACK_REDELIVER, 86400000u, NULL), 0);
    work_end_batch (s_broker);
    ck_assert_uint_eq (s_broker->inflight_bytes, 0);
    ck_assert_uint_eq (s_broker->queued_bytes, size);
    //  At the cap, an explicit-ack member gets nothing more.
    s_config->max_queued_bytes = (int64_t) size;
    s_offer (sub->channel, 1, 1000);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 1);
    //  Due: the bytes move to the redelivery queue, counted once.
    s_broker->now_ms += 86400000;
    channel_tick (sub->channel, s_broker->now_ms);
    ck_assert_uint_eq (s_broker->queued_bytes, 2 * size);
    //  Leaving with the channel gives every byte back.
    session_end (s_session, "test");
    work_end_batch (s_broker);
    ck_assert_uint_eq (s_broker->queued_bytes, 0);
}
END_TEST

START_TEST (test_dead_letter_waits_for_end_of_batch)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 10, true);
    s_offer (sub->channel, 1, 10);
    uint64_t id = fakewire_nth (BUSP_DELIVER, 0)->h.delivery_id;
    ck_assert_int_eq (sub_nack (sub, id, BUSP_NACK_DEADLETTER, 0, "bad"), 0);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 0);
    ck_assert_uint_eq (dlq_size (s_broker->dlq), 0);
    work_end_batch (s_broker);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 1);
    ck_assert_uint_eq (dlq_size (s_broker->dlq), 1);
}
END_TEST

START_TEST (test_ack_timeout_past_max_deliver)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 10, true);
    sub->max_deliver = 1;
    s_offer (sub->channel, 1, 10);
    s_broker->now_ms += 100;
    channel_t *due = timers_pop_due (s_broker, s_broker->now_ms);
    ck_assert_ptr_eq (due, sub->channel);
    channel_tick (due, s_broker->now_ms);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 0);
    work_end_batch (s_broker);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 1);
    ck_assert_uint_eq (sub_inflight (sub), 0);
}
END_TEST

START_TEST (test_refused_send_keeps_the_event_and_ends_with_429)
{
    sub_t *sub = s_subscribe (7, POLICY_BLOCK, 100, 1 << 20, 5, false);
    fakewire_fail_code = -EAGAIN;
    fakewire_fail_count = 1;
    s_offer (sub->channel, 1, 10);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 0);
    ck_assert_uint_eq (channel_waiting (sub->channel), 1);     /*  kept     */
    ck_assert (sub->over_limit);
    work_end_batch (s_broker);
    const fakewire_sent_t *end = fakewire_nth (BUSP_SUBEND, 0);
    ck_assert_ptr_nonnull (end);
    ck_assert_uint_eq (end->h.code, BUSP_E_LIMIT);
    ck_assert_uint_eq (end->h.sub_id, 7);
    ck_assert_uint_eq (s_broker->stats.subs_over_limit, 1);
    ck_assert_uint_eq (s_broker->stats.discarded_on_end, 1);
    ck_assert_ptr_null (session_sub (s_session, 7));
}
END_TEST

/*  overflow: disconnect is found while routing, but the subscription ends
    at the end of the batch (work.c): until then it is still there (no
    SUBEND, nothing freed under the router's feet), takes nothing more and
    delivers nothing; then SUBEND 429 without GAP, and everything it was
    given is left behind, counted.                                          */
START_TEST (test_overflow_disconnect_waits_for_end_of_batch)
{
    sub_t *sub = s_subscribe (9, POLICY_DISCONNECT, 2, 1 << 20, 0, false);
    channel_t *channel = sub->channel;
    s_offer (channel, 4, 10);                   /*  2 queued, 3rd overflows */
    ck_assert (channel->overflowed);
    ck_assert (!channel->dead);
    ck_assert_ptr_eq (session_sub (s_session, 9), sub);
    ck_assert_uint_eq (fakewire_count_of (BUSP_SUBEND), 0);
    ck_assert_uint_eq (s_broker->stats.discarded_on_end, 2);    /*  3rd, 4th */
    sub_add_credit (sub, 10, 1000);
    channel_pump (channel);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 0);
    work_end_batch (s_broker);
    ck_assert_uint_eq (fakewire_count, 1);
    const fakewire_sent_t *end = fakewire_nth (BUSP_SUBEND, 0);
    ck_assert_ptr_nonnull (end);
    ck_assert_uint_eq (end->h.code, BUSP_E_LIMIT);
    ck_assert_uint_eq (end->h.sub_id, 9);
    ck_assert_uint_eq (fakewire_count_of (BUSP_GAP), 0);
    ck_assert_uint_eq (s_broker->stats.discarded_on_end, 4);
    ck_assert_uint_eq (s_broker->stats.dropped, 0);
    ck_assert_ptr_null (session_sub (s_session, 9));
}
END_TEST

START_TEST (test_overflow_disconnect_dead_letters_on_end)
{
    sub_t *sub = s_subscribe (9, POLICY_DISCONNECT, 1, 1 << 20, 0, false);
    sub->channel->on_end_dead_letter = true;
    s_offer (sub->channel, 3, 10);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 0);       /*  queued  */
    work_end_batch (s_broker);
    ck_assert_uint_eq (fakewire_count_of (BUSP_SUBEND), 1);
    ck_assert_uint_eq (s_broker->stats.discarded_on_end, 0);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 3);
}
END_TEST

/*  The member leaves (its session ends) in the same batch, after the
    overflow was found: the queued end finds the channel dead and sends
    nothing more.                                                           */
START_TEST (test_overflow_disconnect_then_session_end)
{
    sub_t *sub = s_subscribe (9, POLICY_DISCONNECT, 1, 1 << 20, 0, false);
    s_offer (sub->channel, 2, 10);
    session_end (s_session, "test");
    work_end_batch (s_broker);
    ck_assert_uint_eq (fakewire_count_of (BUSP_SUBEND), 0);
    ck_assert_uint_eq (s_broker->stats.discarded_on_end, 2);
}
END_TEST

START_TEST (test_last_member_leaving_discards_and_counts)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 1, true);
    s_offer (sub->channel, 3, 10);
    ck_assert_uint_eq (sub_inflight (sub), 1);
    session_end (s_session, "test");
    ck_assert_uint_eq (s_broker->stats.discarded_on_end, 3);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 0);
    work_end_batch (s_broker);
}
END_TEST

START_TEST (test_on_end_dead_letter)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 1, true);
    sub->channel->on_end_dead_letter = true;
    s_offer (sub->channel, 3, 10);
    session_end (s_session, "test");
    work_end_batch (s_broker);
    ck_assert_uint_eq (s_broker->stats.discarded_on_end, 0);
    ck_assert_uint_eq (s_broker->stats.dead_lettered, 3);
    ck_assert_uint_eq (dlq_size (s_broker->dlq), 3);
}
END_TEST

START_TEST (test_unconsumed_bytes_stop_deliveries)
{
    event_t *probe = s_event ("t.x", 1000);
    uint64_t size = event_bytes (probe);
    event_unref (&probe);
    //  Room for three events on the wire before credit comes back.
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 3 * size, 100, false);
    s_offer (sub->channel, 5, 1000);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 3);
    ck_assert_uint_eq (channel_waiting (sub->channel), 2);
    ck_assert_uint_eq (sub->wire_bytes, 3 * size);
    sub_add_credit (sub, 2, 1000);             /*  two taken off the socket */
    channel_pump (sub->channel);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 5);
}
END_TEST

START_TEST (test_read_receipt_releases_what_was_read)
{
    event_t *probe = s_event ("t.x", 1000);
    uint64_t size = event_bytes (probe);
    event_unref (&probe);
    //  Huge credit never returned: room for eight events on the wire, a
    //  receipt asked for at a quarter of that (two).
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 8 * size, 4000000000u, false);
    s_offer (sub->channel, 12, 1000);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 8);
    ck_assert_uint_eq (channel_waiting (sub->channel), 4);
    ck_assert (s_session->receipt_listed);
    receipt_send_due (s_broker);
    ck_assert_uint_eq (fakewire_count_of (BUSP_PING), 1);
    uint64_t nonce = fakewire_nth (BUSP_PING, 0)->h.nonce;
    ck_assert_uint_eq (s_session->receipt_nonce, nonce);
    ck_assert_uint_eq (s_broker->stats.receipts_sent, 1);
    //  One receipt at a time.
    receipt_want (s_session);
    receipt_send_due (s_broker);
    ck_assert_uint_eq (fakewire_count_of (BUSP_PING), 1);
    //  A heartbeat's PONG (another nonce) releases nothing.
    ck_assert (!receipt_pong (s_session, nonce + 1));
    ck_assert_uint_eq (sub->wire_bytes, 8 * size);
    //  The receipt's PONG: all eight were read; the four waiting go out.
    ck_assert (receipt_pong (s_session, nonce));
    ck_assert_uint_eq (s_session->receipt_nonce, 0);
    ck_assert_uint_eq (sub->wire_bytes, 0);
    channel_pump (sub->channel);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 12);
    ck_assert_uint_eq (channel_waiting (sub->channel), 0);
    //  Credit returned for some of them afterwards releases no more than
    //  is on the wire.
    sub_add_credit (sub, 12, 4294967295u);
    ck_assert_uint_eq (sub->wire_len, 0);
    ck_assert_uint_eq (sub->wire_bytes, 0);
}
END_TEST

START_TEST (test_receipt_covers_only_what_was_sent_before_it)
{
    event_t *probe = s_event ("t.x", 1000);
    uint64_t size = event_bytes (probe);
    event_unref (&probe);
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 8 * size, 4000000000u, false);
    s_offer (sub->channel, 2, 1000);
    receipt_send_due (s_broker);
    uint64_t nonce = fakewire_nth (BUSP_PING, 0)->h.nonce;
    s_offer (sub->channel, 3, 1000);            /*  after the PING          */
    ck_assert_uint_eq (sub->wire_len, 5);
    ck_assert (receipt_pong (s_session, nonce));
    ck_assert_uint_eq (sub->wire_len, 3);
    ck_assert_uint_eq (sub->wire_bytes, 3 * size);
}
END_TEST

START_TEST (test_retired_sub_gets_nothing)
{
    sub_t *sub = s_subscribe (1, POLICY_BLOCK, 100, 1 << 20, 10, false);
    sub_retire (sub);
    sub_add_credit (sub, 10, 1000);
    s_offer (sub->channel, 2, 10);
    ck_assert_uint_eq (fakewire_count_of (BUSP_DELIVER), 0);
    ck_assert_uint_eq (channel_waiting (sub->channel), 2);
}
END_TEST

int
main (void)
{
    Suite *s = suite_create ("channel");
    TCase *tc = tcase_create ("channel");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_deliver_then_queue_then_pump);
    tcase_add_test (tc, test_credit_is_capped);
    tcase_add_test (tc, test_drop_new_reports_gap);
    tcase_add_test (tc, test_ack_and_inflight_bytes);
    tcase_add_test (tc, test_nack_redelivery_waits_for_end_of_batch);
    tcase_add_test (tc, test_delayed_redelivery_counts_against_the_cap);
    tcase_add_test (tc, test_dead_letter_waits_for_end_of_batch);
    tcase_add_test (tc, test_ack_timeout_past_max_deliver);
    tcase_add_test (tc, test_refused_send_keeps_the_event_and_ends_with_429);
    tcase_add_test (tc, test_overflow_disconnect_waits_for_end_of_batch);
    tcase_add_test (tc, test_overflow_disconnect_dead_letters_on_end);
    tcase_add_test (tc, test_overflow_disconnect_then_session_end);
    tcase_add_test (tc, test_last_member_leaving_discards_and_counts);
    tcase_add_test (tc, test_on_end_dead_letter);
    tcase_add_test (tc, test_unconsumed_bytes_stop_deliveries);
    tcase_add_test (tc, test_read_receipt_releases_what_was_read);
    tcase_add_test (tc, test_receipt_covers_only_what_was_sent_before_it);
    tcase_add_test (tc, test_retired_sub_gets_nothing);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
