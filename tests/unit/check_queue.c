/*  check_queue.c — unit tests for a subscription's waiting queue
    (src/broker/queue.c).

    The queue is a ring indexed by absolute position with holes for the
    `latest` policy, so the interesting cases are the edges of that design:
    wrapping and growing past 16 and 1024 slots, shrinking after a burst
    drains, conflation moving a topic to the back, compaction keeping a hot
    topic from growing the ring, and reference counts (every event the queue
    holds is released exactly once).  Each event carries its creation number
    in ts_us, so order is checked by number; a seeded random run compares
    the queue with a plain array model of the same rules.                   */
#include "queue.h"

#include <check.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  ck_assert reports progress to the runner on every call, which costs a
    pipe write in fork mode: hot loops assert through this instead.         */
#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg (__VA_ARGS__); } while (0)

/*  Heap in use, counting large blocks (which glibc maps separately).
    Under valgrind or ASan mallinfo2 reports nothing: the checks that use
    this then only test behaviour.                                           */
static size_t
s_heap_used (void)
{
    struct mallinfo2 info = mallinfo2 ();
    return info.uordblks + info.hblkhd;
}

/*  An event on topic, numbered n (in ts_us), with a payload of size bytes
    and, when headers is not NULL, a headers frame.                         */
static event_t *
s_event_full (const char *topic, int64_t n, size_t size, const char *headers)
{
    zmq_msg_t payload;
    REQUIRE (zmq_msg_init_size (&payload, size) == 0, "zmq_msg_init_size");
    if (size)
        memset (zmq_msg_data (&payload), 'x', size);
    zmq_msg_t hdrs;
    if (headers) {
        REQUIRE (zmq_msg_init_size (&hdrs, strlen (headers)) == 0, "zmq_msg_init_size");
        memcpy (zmq_msg_data (&hdrs), headers, strlen (headers));
    }
    char msg_id [32];
    int id_len = snprintf (msg_id, sizeof msg_id, "id-%lld", (long long) n);
    event_t *ev = event_new (topic, strlen (topic), msg_id, (size_t) id_len,
                             &payload, headers ? &hdrs : NULL, n);
    REQUIRE (ev != NULL, "event_new");
    zmq_msg_close (&payload);
    if (headers)
        zmq_msg_close (&hdrs);
    return ev;
}

static event_t *
s_event (const char *topic, int64_t n)
{
    return s_event_full (topic, n, (size_t) (llabs (n) % 7) * 10, NULL);
}

static void
s_push (queue_t *queue, event_t *ev, uint16_t attempt)
{
    event_t *replaced = (event_t *) 1;
    REQUIRE (queue_push (queue, ev, attempt, &replaced) == 0, "queue_push");
    REQUIRE (replaced == NULL, "unexpected replacement");
}

/*  Pop one item and check its number and attempt; releases the event.       */
static void
s_expect_pop (queue_t *queue, int64_t n, uint16_t attempt)
{
    qitem_t item = { NULL, 0 };
    REQUIRE (queue_pop (queue, &item), "queue empty, expected %lld", (long long) n);
    REQUIRE (item.event != NULL, "popped a NULL event");
    REQUIRE (item.event->ts_us == n, "popped %lld, expected %lld",
             (long long) item.event->ts_us, (long long) n);
    REQUIRE (item.attempt == attempt, "event %lld: attempt %u, expected %u",
             (long long) n, (unsigned) item.attempt, (unsigned) attempt);
    event_unref (&item.event);
}

static void
s_expect_empty (queue_t *queue)
{
    qitem_t item = { NULL, 0 };
    ck_assert (!queue_pop (queue, &item));
    ck_assert_uint_eq (queue_len (queue), 0);
    ck_assert_uint_eq (queue_bytes (queue), 0);
}

START_TEST (test_new_destroy)
{
    for (int conflate = 0; conflate < 2; conflate++) {
        queue_t *queue = queue_new (conflate);
        ck_assert_ptr_nonnull (queue);
        s_expect_empty (queue);
        queue_destroy (&queue);
        ck_assert_ptr_null (queue);
        queue_destroy (&queue);         //  a NULL queue is fine
    }
}
END_TEST

START_TEST (test_fifo)
{
    queue_t *queue = queue_new (false);
    for (int n = 1; n <= 10; n++) {
        s_push (queue, s_event ("a.b", n), (uint16_t) (n % 3));
        ck_assert_uint_eq (queue_len (queue), (size_t) n);
    }
    for (int n = 1; n <= 10; n++) {
        s_expect_pop (queue, n, (uint16_t) (n % 3));
        ck_assert_uint_eq (queue_len (queue), (size_t) (10 - n));
    }
    s_expect_empty (queue);
    //  Usable again after running empty.
    s_push (queue, s_event ("a.b", 11), 0);
    s_expect_pop (queue, 11, 0);
    s_expect_empty (queue);
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_same_topic_without_conflation)
{
    //  Without conflation, events of one topic all wait, in order.
    queue_t *queue = queue_new (false);
    for (int n = 1; n <= 40; n++)
        s_push (queue, s_event ("hot", n), 0);
    ck_assert_uint_eq (queue_len (queue), 40);
    for (int n = 1; n <= 40; n++)
        s_expect_pop (queue, n, 0);
    s_expect_empty (queue);
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_push_front)
{
    queue_t *queue = queue_new (false);
    //  On an empty queue.
    ck_assert_int_eq (queue_push_front (queue, s_event ("x", 1), 2), 0);
    ck_assert_uint_eq (queue_len (queue), 1);
    s_expect_pop (queue, 1, 2);
    s_expect_empty (queue);

    //  A send that could not be made goes back where it was.
    s_push (queue, s_event ("x", 10), 0);
    s_push (queue, s_event ("x", 11), 0);
    s_push (queue, s_event ("x", 12), 0);
    qitem_t item;
    ck_assert (queue_pop (queue, &item));
    ck_assert_int_eq (item.event->ts_us, 10);
    ck_assert_int_eq (queue_push_front (queue, item.event, 4), 0);
    ck_assert_int_eq (queue_push_front (queue, s_event ("x", 9), 5), 0);
    ck_assert_uint_eq (queue_len (queue), 4);
    s_expect_pop (queue, 9, 5);
    s_expect_pop (queue, 10, 4);
    s_expect_pop (queue, 11, 0);
    s_expect_pop (queue, 12, 0);
    s_expect_empty (queue);

    //  Many at the front: the ring grows backwards too, and pushes at the
    //  back interleave correctly.
    for (int n = 1; n <= 3000; n++) {
        REQUIRE (queue_push_front (queue, s_event ("x", -n), 1) == 0, "push_front");
        s_push (queue, s_event ("x", n), 0);
    }
    ck_assert_uint_eq (queue_len (queue), 6000);
    for (int n = 3000; n >= 1; n--)
        s_expect_pop (queue, -n, 1);
    for (int n = 1; n <= 3000; n++)
        s_expect_pop (queue, n, 0);
    s_expect_empty (queue);
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_growth_and_wrap)
{
    //  Sizes around the initial 16 slots and the 1024-slot shrink threshold;
    //  each round first offsets head so the ring wraps as it grows.
    static const int sizes [] = { 15, 16, 17, 33, 1023, 1024, 1025, 2049, 5000, 70000 };
    queue_t *queue = queue_new (false);
    int64_t next = 1, expect = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes [0]; s++) {
        for (int i = 0; i < 11; i++)
            s_push (queue, s_event ("w", next++), 0);
        for (int i = 0; i < 11; i++, expect++)
            s_expect_pop (queue, expect, 0);
        for (int i = 0; i < sizes [s]; i++, next++)
            s_push (queue, s_event ("w", next), (uint16_t) (next % 5));
        ck_assert_uint_eq (queue_len (queue), (size_t) sizes [s]);
        //  Drain half, refill, drain all: positions keep moving forward.
        for (int i = 0; i < sizes [s] / 2; i++, expect++)
            s_expect_pop (queue, expect, (uint16_t) (expect % 5));
        for (int i = 0; i < sizes [s] / 2; i++, next++)
            s_push (queue, s_event ("w", next), (uint16_t) (next % 5));
        ck_assert_uint_eq (queue_len (queue), (size_t) sizes [s]);
        while (expect < next) {
            s_expect_pop (queue, expect, (uint16_t) (expect % 5));
            expect++;
        }
        s_expect_empty (queue);
    }
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_shrink_after_drain)
{
    //  A burst far beyond 1024 drains, then the queue serves small loads
    //  and another burst; the memory of the burst is given back.
    bool measurable = s_heap_used () > 0;
    queue_t *queue = queue_new (false);
    for (int round = 0; round < 3; round++) {
        //  Freed events go to event.c's block free list; that is a fixed
        //  cache, not the queue's memory, so empty it around the measure.
        event_pool_release ();
        size_t base = s_heap_used ();
        for (int n = 1; n <= 100000; n++)
            s_push (queue, s_event_full ("b", n, 0, NULL), 0);
        for (int n = 1; n <= 100000; n++)
            s_expect_pop (queue, n, 0);
        s_expect_empty (queue);
        //  The ring of 128k slots (2 MB) is gone; allow some slack for
        //  allocator bookkeeping.
        if (measurable) {
            event_pool_release ();
            size_t after = s_heap_used ();
            ck_assert_msg (after < base + 64 * 1024,
                           "round %d: %zu bytes still held after draining", round, after - base);
        }
        for (int n = 1; n <= 20; n++)
            s_push (queue, s_event ("b", n), 0);
        for (int n = 1; n <= 20; n++)
            s_expect_pop (queue, n, 0);
        s_expect_empty (queue);
    }
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_shrink_with_conflation)
{
    //  After a large conflating queue drains and shrinks, the topic index
    //  is empty and replacement works on the fresh ring.
    queue_t *queue = queue_new (true);
    char topic [32];
    for (int n = 0; n < 3000; n++) {
        snprintf (topic, sizeof topic, "t.%d", n);
        s_push (queue, s_event (topic, n), 0);
    }
    for (int n = 0; n < 3000; n++)
        s_expect_pop (queue, n, 0);
    s_expect_empty (queue);
    s_push (queue, s_event ("t.5", 1), 0);
    s_push (queue, s_event ("t.6", 2), 0);
    event_t *replaced = NULL;
    ck_assert_int_eq (queue_push (queue, s_event ("t.5", 3), 0, &replaced), 0);
    ck_assert_ptr_nonnull (replaced);
    ck_assert_int_eq (replaced->ts_us, 1);
    event_unref (&replaced);
    s_expect_pop (queue, 2, 0);
    s_expect_pop (queue, 3, 0);
    s_expect_empty (queue);
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_bytes)
{
    queue_t *queue = queue_new (false);
    uint64_t sum = 0;
    event_t *held [50];
    for (int n = 0; n < 50; n++) {
        event_t *ev = s_event_full ("bytes.topic", n, (size_t) n * 13,
                                    n % 2 ? "{\"k\":\"v\"}" : NULL);
        held [n] = event_ref (ev);
        sum += event_bytes (ev);
        s_push (queue, ev, 0);
        ck_assert_uint_eq (queue_bytes (queue), sum);
    }
    //  Headers count; an empty headers frame does not.
    ck_assert_uint_eq (event_bytes (held [1]) - event_bytes (held [0]), 13 + 9);
    for (int n = 0; n < 50; n++) {
        qitem_t item;
        ck_assert (queue_pop (queue, &item));
        ck_assert_ptr_eq (item.event, held [n]);
        sum -= event_bytes (item.event);
        ck_assert_uint_eq (queue_bytes (queue), sum);
        event_unref (&item.event);
        //  push_front counts too.
        if (n == 10) {
            ck_assert_int_eq (queue_push_front (queue, event_ref (held [n]), 1), 0);
            ck_assert_uint_eq (queue_bytes (queue), sum + event_bytes (held [n]));
            ck_assert (queue_pop (queue, &item));
            ck_assert_ptr_eq (item.event, held [n]);
            event_unref (&item.event);
            ck_assert_uint_eq (queue_bytes (queue), sum);
        }
    }
    ck_assert_uint_eq (queue_bytes (queue), 0);
    for (int n = 0; n < 50; n++) {
        ck_assert_uint_eq (held [n]->refs, 1);
        event_unref (&held [n]);
    }
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_conflation)
{
    queue_t *queue = queue_new (true);
    event_t *a1 = s_event_full ("chat.a", 1, 100, NULL);
    event_t *b1 = s_event_full ("chat.b", 2, 200, NULL);
    event_t *a2 = s_event_full ("chat.a", 3, 300, NULL);
    event_ref (a1);
    s_push (queue, a1, 1);
    s_push (queue, b1, 0);
    event_t *replaced = NULL;
    ck_assert_int_eq (queue_push (queue, a2, 0, &replaced), 0);
    //  The old event comes back to the caller, with the queue's reference.
    ck_assert_ptr_eq (replaced, a1);
    ck_assert_uint_eq (a1->refs, 2);
    event_unref (&replaced);
    ck_assert_uint_eq (a1->refs, 1);
    event_unref (&a1);
    ck_assert_uint_eq (queue_len (queue), 2);
    ck_assert_uint_eq (queue_bytes (queue), event_bytes (b1) + event_bytes (a2));
    //  A moved to the back: A1, B1, A2 pops as B1, A2.
    s_expect_pop (queue, 2, 0);
    s_expect_pop (queue, 3, 0);
    s_expect_empty (queue);

    //  Different topics never replace each other; prefixes are different
    //  topics.
    s_push (queue, s_event ("chat", 10), 0);
    s_push (queue, s_event ("chat.a", 11), 0);
    s_push (queue, s_event ("chat.a.b", 12), 0);
    s_push (queue, s_event ("chat.ab", 13), 0);
    ck_assert_uint_eq (queue_len (queue), 4);

    //  Without a place to return it, the replaced event is released.
    event_t *old = event_ref (s_event ("chat.x", 14));
    s_push (queue, old, 0);
    ck_assert_int_eq (queue_push (queue, s_event ("chat.x", 15), 0, NULL), 0);
    ck_assert_uint_eq (old->refs, 1);
    event_unref (&old);
    ck_assert_uint_eq (queue_len (queue), 5);
    for (int n = 10; n <= 13; n++)
        s_expect_pop (queue, n, 0);
    s_expect_pop (queue, 15, 0);
    s_expect_empty (queue);

    //  A popped event whose send failed goes back to the front; a newer
    //  value pushed afterwards still replaces it and goes to the back.
    s_push (queue, s_event ("p.a", 20), 0);
    s_push (queue, s_event ("p.b", 21), 0);
    qitem_t item;
    ck_assert (queue_pop (queue, &item));
    ck_assert_int_eq (queue_push_front (queue, item.event, 2), 0);
    ck_assert_int_eq (queue_push (queue, s_event ("p.a", 22), 0, &replaced), 0);
    ck_assert_ptr_nonnull (replaced);
    ck_assert_int_eq (replaced->ts_us, 20);
    event_unref (&replaced);
    s_expect_pop (queue, 21, 0);
    s_expect_pop (queue, 22, 0);
    s_expect_empty (queue);

    //  push_front of a topic that already has a newer waiting value: the
    //  older one is superseded and released, the queue is unchanged.
    s_push (queue, s_event ("p.a", 30), 0);
    old = event_ref (s_event ("p.a", 29));
    ck_assert_int_eq (queue_push_front (queue, old, 1), 0);
    ck_assert_uint_eq (old->refs, 1);
    event_unref (&old);
    ck_assert_uint_eq (queue_len (queue), 1);
    s_expect_pop (queue, 30, 0);
    s_expect_empty (queue);
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_conflation_keeps_order_through_growth)
{
    //  1000 topics, then new values for the even ones: the ring grows and
    //  is rebuilt while the topic index must follow every move.
    queue_t *queue = queue_new (true);
    char topic [32];
    for (int n = 0; n < 1000; n++) {
        snprintf (topic, sizeof topic, "t.%d", n);
        s_push (queue, s_event (topic, n), 0);
    }
    for (int n = 0; n < 1000; n += 2) {
        snprintf (topic, sizeof topic, "t.%d", n);
        event_t *replaced = NULL;
        REQUIRE (queue_push (queue, s_event (topic, 1000 + n), 0, &replaced) == 0, "push");
        REQUIRE (replaced && replaced->ts_us == n, "t.%d: wrong replacement", n);
        event_unref (&replaced);
    }
    ck_assert_uint_eq (queue_len (queue), 1000);
    //  Again for the ones divisible by 4 (now a second generation).
    for (int n = 0; n < 1000; n += 4) {
        snprintf (topic, sizeof topic, "t.%d", n);
        event_t *replaced = NULL;
        REQUIRE (queue_push (queue, s_event (topic, 2000 + n), 0, &replaced) == 0, "push");
        REQUIRE (replaced && replaced->ts_us == 1000 + n, "t.%d: wrong replacement", n);
        event_unref (&replaced);
    }
    ck_assert_uint_eq (queue_len (queue), 1000);
    for (int n = 1; n < 1000; n += 2)
        s_expect_pop (queue, n, 0);
    for (int n = 2; n < 1000; n += 4)
        s_expect_pop (queue, 1000 + n, 0);
    for (int n = 0; n < 1000; n += 4)
        s_expect_pop (queue, 2000 + n, 0);
    s_expect_empty (queue);
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_hot_topic_compaction)
{
    //  One hot topic replaced 200000 times (with two quiet topics waiting
    //  throughout) must not grow the ring: holes are compacted away.
    bool measurable = s_heap_used () > 0;
    queue_t *queue = queue_new (true);
    s_push (queue, s_event ("quiet.1", -1), 0);
    size_t base = s_heap_used ();
    for (int n = 1; n <= 200000; n++) {
        event_t *replaced = NULL;
        REQUIRE (queue_push (queue, s_event ("hot", n), 0, &replaced) == 0, "push");
        REQUIRE (n == 1 ? replaced == NULL : replaced && replaced->ts_us == n - 1,
                 "push %d: wrong replacement", n);
        event_unref (&replaced);
        if (n == 100000)
            s_push (queue, s_event ("quiet.2", -2), 0);
        REQUIRE (queue_len (queue) == (n < 100000 ? 2u : 3u), "len %zu at %d",
                 queue_len (queue), n);
    }
    if (measurable) {
        //  A ring grown for 200000 pushes would hold 4 MB.
        size_t after = s_heap_used ();
        ck_assert_msg (after < base + 64 * 1024, "the ring grew by %zu bytes", after - base);
    }
    s_expect_pop (queue, -1, 0);
    s_expect_pop (queue, -2, 0);
    s_expect_pop (queue, 200000, 0);
    s_expect_empty (queue);

    //  Two hot topics alternating: every push makes a hole.
    for (int n = 1; n <= 10000; n++) {
        REQUIRE (queue_push (queue, s_event (n % 2 ? "odd" : "even", n), 0, NULL) == 0, "push");
        REQUIRE (queue_len (queue) == (n == 1 ? 1u : 2u), "len");
    }
    s_expect_pop (queue, 9999, 0);
    s_expect_pop (queue, 10000, 0);
    s_expect_empty (queue);
    queue_destroy (&queue);
}
END_TEST

START_TEST (test_destroy_drops_references)
{
    for (int conflate = 0; conflate < 2; conflate++) {
        queue_t *queue = queue_new (conflate);
        event_t *held [100];
        char topic [32];
        for (int n = 0; n < 100; n++) {
            snprintf (topic, sizeof topic, "d.%d", n % 40);
            held [n] = s_event (topic, n);
            event_ref (held [n]);
            event_t *replaced = NULL;
            ck_assert_int_eq (queue_push (queue, held [n], 0, &replaced), 0);
            event_unref (&replaced);
        }
        queue_push_front (queue, event_ref (held [0]), 1);
        for (int n = 0; n < 3; n++) {
            qitem_t item;
            ck_assert (queue_pop (queue, &item));
            event_unref (&item.event);
        }
        queue_destroy (&queue);
        //  Only the test's own references are left.
        for (int n = 0; n < 100; n++) {
            ck_assert_uint_eq (held [n]->refs, 1);
            event_unref (&held [n]);
        }
    }
}
END_TEST

/*  ---- random cross-check against a model ------------------------------ */

typedef struct {
    int64_t n;
    int topic;
    uint16_t attempt;
    size_t bytes;
} mitem_t;

#define MODEL_MAX 4096

typedef struct {
    mitem_t items [MODEL_MAX];
    size_t size;
} model_t;

static uint64_t s_seed;

static uint32_t
s_rand (uint32_t range)
{
    s_seed = s_seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t) ((s_seed >> 33) % range);
}

static int
s_model_find (model_t *m, int topic)
{
    for (size_t i = 0; i < m->size; i++)
        if (m->items [i].topic == topic)
            return (int) i;
    return -1;
}

static void
s_model_remove (model_t *m, size_t i)
{
    memmove (&m->items [i], &m->items [i + 1], (m->size - i - 1) * sizeof (mitem_t));
    m->size--;
}

START_TEST (test_random_against_model)
{
    for (int conflate = 0; conflate < 2; conflate++) {
        s_seed = 42 + (uint64_t) conflate;
        model_t *m = calloc (1, sizeof (model_t));
        queue_t *queue = queue_new (conflate);
        uint64_t bytes = 0;
        int64_t next = 1;
        char topic [16];
        for (int step = 0; step < 200000; step++) {
            uint32_t op = s_rand (100);
            //  Phases of growth and of draining, so the queue both grows
            //  well past 1024 and runs empty now and then.
            bool growing = (step / 20000) % 2 == 0;
            int t = (int) s_rand (conflate ? (step / 40000 + 1) * 300 : 8);
            snprintf (topic, sizeof topic, "r.%d", t);
            if (op < (growing ? 55u : 35u) && m->size < MODEL_MAX - 1) {
                event_t *ev = s_event (topic, next);
                uint16_t attempt = (uint16_t) s_rand (3);
                size_t evb = event_bytes (ev);
                event_t *replaced = NULL;
                REQUIRE (queue_push (queue, ev, attempt, &replaced) == 0, "push");
                int at = conflate ? s_model_find (m, t) : -1;
                if (at >= 0) {
                    REQUIRE (replaced && replaced->ts_us == m->items [at].n,
                             "step %d: expected replacement of %lld", step,
                             (long long) m->items [at].n);
                    bytes -= m->items [at].bytes;
                    s_model_remove (m, (size_t) at);
                }
                else
                    REQUIRE (replaced == NULL, "step %d: unexpected replacement", step);
                event_unref (&replaced);
                m->items [m->size++] = (mitem_t) { next, t, attempt, evb };
                bytes += evb;
                next++;
            }
            else
            if (op < 65 && m->size < MODEL_MAX - 1) {
                event_t *ev = s_event (topic, next);
                size_t evb = event_bytes (ev);
                REQUIRE (queue_push_front (queue, ev, 7) == 0, "push_front");
                if (!conflate || s_model_find (m, t) < 0) {
                    memmove (&m->items [1], &m->items [0], m->size * sizeof (mitem_t));
                    m->items [0] = (mitem_t) { next, t, 7, evb };
                    m->size++;
                    bytes += evb;
                }
                next++;
            }
            else {
                qitem_t item = { NULL, 0 };
                bool got = queue_pop (queue, &item);
                REQUIRE (got == (m->size > 0), "step %d: pop returned %d with %zu in model",
                         step, got, m->size);
                if (got) {
                    REQUIRE (item.event->ts_us == m->items [0].n
                          && item.attempt == m->items [0].attempt,
                             "step %d: popped %lld/%u, expected %lld/%u", step,
                             (long long) item.event->ts_us, item.attempt,
                             (long long) m->items [0].n, m->items [0].attempt);
                    bytes -= m->items [0].bytes;
                    s_model_remove (m, 0);
                    event_unref (&item.event);
                }
            }
            REQUIRE (queue_len (queue) == m->size, "step %d: len %zu, model %zu",
                     step, queue_len (queue), m->size);
            REQUIRE (queue_bytes (queue) == bytes, "step %d: bytes %llu, model %llu", step,
                     (unsigned long long) queue_bytes (queue), (unsigned long long) bytes);
        }
        queue_destroy (&queue);
        free (m);
    }
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("queue");
    TCase *tc = tcase_create ("fifo");
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_fifo);
    tcase_add_test (tc, test_same_topic_without_conflation);
    tcase_add_test (tc, test_push_front);
    tcase_add_test (tc, test_growth_and_wrap);
    tcase_add_test (tc, test_shrink_after_drain);
    tcase_add_test (tc, test_bytes);
    tcase_add_test (tc, test_destroy_drops_references);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("conflation");
    tcase_add_test (tc, test_conflation);
    tcase_add_test (tc, test_conflation_keeps_order_through_growth);
    tcase_add_test (tc, test_shrink_with_conflation);
    tcase_add_test (tc, test_hot_topic_compaction);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("model");
    tcase_set_timeout (tc, 60);         //  about 6 s under ASan
    tcase_add_test (tc, test_random_against_model);
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
