/*  check_arena.c — unit tests for libbusd's outbox arena (src/lib/arena.c)
    and the outbox on top of it (src/lib/outbox.c).

    The arena carves blocks from 64 KiB chunks and frees a chunk with its
    last block, so the interesting cases are the order of frees: strict
    FIFO (the PUBACK path) must run forever in two chunks at most; frees
    out of order (REJECTed entries dropped at a session change) must still
    give every chunk back; a block bigger than a chunk's share gets its own;
    blocks never overlap and are 16-byte aligned.  The outbox tests drive
    the same through outbox_ack / outbox_reset / outbox_find, with payloads
    inline and as messages, and check the bytes of what is left.            */
#include "arena.h"
#include "outbox.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg (__VA_ARGS__); } while (0)

START_TEST (test_fifo_steady)
{
    //  Allocate ahead, free from the front: the PUBACK pattern, for long
    //  enough to cross many chunks.  At most the current chunk, the one
    //  being drained and a spare exist at any time.
    arena_t arena;
    arena_init (&arena);
    enum { WINDOW = 1000, TOTAL = 200000 };
    static uint8_t *ring [WINDOW];
    static size_t sizes [WINDOW];
    size_t head = 0, count = 0, max_chunks = 0;
    for (size_t n = 0; n < TOTAL; n++) {
        if (count == WINDOW) {
            uint8_t *block = ring [head];
            for (size_t i = 0; i < sizes [head]; i++)
                REQUIRE (block [i] == (uint8_t) (sizes [head] + i), "block %zu corrupted", n);
            arena_free (&arena, block);
            head = (head + 1) % WINDOW;
            count--;
        }
        size_t size = 1 + (n * 131) % 400;
        uint8_t *block = arena_alloc (&arena, size);
        REQUIRE (block != NULL, "arena_alloc");
        REQUIRE (((uintptr_t) block & 15) == 0, "alignment");
        for (size_t i = 0; i < size; i++)
            block [i] = (uint8_t) (size + i);
        size_t at = (head + count) % WINDOW;
        ring [at] = block;
        sizes [at] = size;
        count++;
        if (arena.chunks > max_chunks)
            max_chunks = arena.chunks;
    }
    //  A window of 1000 blocks up to 416 bytes spans at most 8 chunks.
    ck_assert_uint_le (max_chunks, 10);
    while (count) {
        arena_free (&arena, ring [head]);
        head = (head + 1) % WINDOW;
        count--;
    }
    //  Everything freed: the current chunk (rewound) and at most a spare.
    ck_assert_uint_le (arena.chunks, 2);
    arena_destroy (&arena);
    ck_assert_uint_eq (arena.chunks, 0);
}
END_TEST

START_TEST (test_rewind_in_place)
{
    //  Alloc one, free one, forever: one chunk, never a second.
    arena_t arena;
    arena_init (&arena);
    for (int n = 0; n < 100000; n++) {
        void *block = arena_alloc (&arena, 300);
        REQUIRE (block != NULL, "arena_alloc");
        memset (block, n, 300);
        arena_free (&arena, block);
        REQUIRE (arena.chunks == 1, "chunks %zu", arena.chunks);
    }
    arena_destroy (&arena);
    ck_assert_uint_eq (arena.chunks, 0);
}
END_TEST

START_TEST (test_any_order)
{
    //  Random frees: no block overlaps another, and when all are gone so
    //  are all but two chunks.
    arena_t arena;
    arena_init (&arena);
    enum { N = 5000 };
    static uint8_t *blocks [N];
    static size_t sizes [N];
    srand (7);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            sizes [i] = 1 + (size_t) rand () % 2000;
            blocks [i] = arena_alloc (&arena, sizes [i]);
            REQUIRE (blocks [i] != NULL, "arena_alloc");
            memset (blocks [i], i & 0xFF, sizes [i]);
        }
        for (int i = N - 1; i > 0; i--) {
            int j = rand () % (i + 1);
            uint8_t *b = blocks [i]; blocks [i] = blocks [j]; blocks [j] = b;
            size_t s = sizes [i]; sizes [i] = sizes [j]; sizes [j] = s;
        }
        for (int i = 0; i < N; i++) {
            uint8_t first = blocks [i][0];
            for (size_t k = 0; k < sizes [i]; k++)
                REQUIRE (blocks [i][k] == first, "overlap in block %d", i);
            arena_free (&arena, blocks [i]);
        }
        ck_assert_uint_le (arena.chunks, 2);
    }
    arena_destroy (&arena);
    ck_assert_uint_eq (arena.chunks, 0);
}
END_TEST

START_TEST (test_big_blocks)
{
    //  Blocks over ARENA_BLOCK_MAX get a chunk each, freed with them; the
    //  small ones around them are unaffected.
    arena_t arena;
    arena_init (&arena);
    uint8_t *small = arena_alloc (&arena, 100);
    ck_assert_ptr_nonnull (small);
    memset (small, 0x11, 100);
    ck_assert_uint_eq (arena.chunks, 1);
    uint8_t *big = arena_alloc (&arena, ARENA_BLOCK_MAX + 1);
    ck_assert_ptr_nonnull (big);
    memset (big, 0x22, ARENA_BLOCK_MAX + 1);
    uint8_t *huge = arena_alloc (&arena, 3 * ARENA_CHUNK_SIZE);
    ck_assert_ptr_nonnull (huge);
    memset (huge, 0x33, 3 * ARENA_CHUNK_SIZE);
    ck_assert_uint_eq (arena.chunks, 3);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq (small [i], 0x11);
    arena_free (&arena, big);
    arena_free (&arena, huge);
    ck_assert_uint_eq (arena.chunks, 1);
    arena_free (&arena, small);
    arena_free (&arena, NULL);
    arena_destroy (&arena);
    ck_assert_uint_eq (arena.chunks, 0);
}
END_TEST

/*  ------------------------------------------------------------------------
    The outbox on the arena                                                 */

static outbox_entry_t *
s_entry (outbox_t *outbox, int n, bool as_message)
{
    char topic [32], payload [64];
    snprintf (topic, sizeof topic, "t.%d", n);
    int size = snprintf (payload, sizeof payload, "payload-%d", n);
    outbox_entry_t *entry;
    if (as_message) {
        entry = outbox_entry_new (outbox, topic, strlen (topic), "", 0,
                                  n % 3 ? NULL : "{\"h\":\"v\"}", 9);
        REQUIRE (entry != NULL, "outbox_entry_new");
        REQUIRE (zmq_msg_init_size (&entry->payload, (size_t) size) == 0, "init_size");
        memcpy (zmq_msg_data (&entry->payload), payload, (size_t) size);
    }
    else {
        entry = outbox_entry_new_inline (outbox, topic, strlen (topic), "id", 2,
                                         n % 3 ? NULL : "{\"h\":\"v\"}", 9, payload,
                                         (size_t) size);
        REQUIRE (entry != NULL, "outbox_entry_new_inline");
    }
    REQUIRE (outbox_push (outbox, entry) == 0, "outbox_push");
    return entry;
}

static void
s_expect (outbox_entry_t *entry, int n)
{
    char topic [32], payload [64];
    snprintf (topic, sizeof topic, "t.%d", n);
    int size = snprintf (payload, sizeof payload, "payload-%d", n);
    REQUIRE (strcmp (entry->topic, topic) == 0, "topic %s, expected %s", entry->topic, topic);
    REQUIRE (outbox_entry_size (entry) == (size_t) size, "size of %d", n);
    REQUIRE (memcmp (outbox_entry_data (entry), payload, (size_t) size) == 0, "payload of %d", n);
    if (n % 3 == 0)
        REQUIRE (entry->headers && strcmp (entry->headers, "{\"h\":\"v\"}") == 0, "headers");
    else
        REQUIRE (entry->headers == NULL, "no headers");
}

START_TEST (test_outbox_ack_and_reset)
{
    outbox_t outbox;
    outbox_init (&outbox);
    //  Publish 10,000 (every 7th as a message), sending them under seqs;
    //  PUBACKs take them from the front in steps.
    uint64_t seq = 1;
    int first = 0, next = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 1000; i++, next++) {
            outbox_entry_t *entry = s_entry (&outbox, next, next % 7 == 0);
            entry->seq = seq++;
            outbox.nsent++;
        }
        uint64_t upto = outbox_at (&outbox, 0)->seq + 699;
        ck_assert_uint_eq (outbox_ack (&outbox, upto), 700);
        first += 700;
        for (size_t i = 0; i < outbox.count; i++)
            s_expect (outbox_at (&outbox, i), first + (int) i);
    }
    ck_assert_uint_eq (outbox.count, 3000);
    //  A session ends with some REJECTed in the middle: they go, the rest
    //  keep their order and are unsent again.
    for (size_t i = 0; i < outbox.count; i += 5)
        outbox_at (&outbox, i)->rejected = true;
    outbox_reset (&outbox);
    ck_assert_uint_eq (outbox.count, 2400);
    ck_assert_uint_eq (outbox.nsent, 0);
    int expect = first, kept = 0;
    for (size_t i = 0; i < 3000; i++, expect++) {
        if (i % 5 == 0)
            continue;
        outbox_entry_t *entry = outbox_at (&outbox, (size_t) kept++);
        s_expect (entry, expect);
        ck_assert_uint_eq (entry->seq, 0);
    }
    //  Re-sent under fresh seqs and found by them.
    for (size_t i = 0; i < outbox.count; i++) {
        outbox_at (&outbox, i)->seq = 50000 + i;
        outbox.nsent++;
    }
    ck_assert_ptr_eq (outbox_find (&outbox, 50010), outbox_at (&outbox, 10));
    ck_assert_ptr_null (outbox_find (&outbox, 50000 + 2400));
    ck_assert_uint_eq (outbox_ack (&outbox, 50000 + 2399), 2400);
    ck_assert_uint_eq (outbox.count, 0);
    ck_assert_uint_le (outbox.arena.chunks, 2);
    //  Leftovers are freed by outbox_clear (ASan/valgrind see no leak).
    for (int i = 0; i < 500; i++)
        s_entry (&outbox, i, i % 2);
    outbox_clear (&outbox);
    ck_assert_uint_eq (outbox.arena.chunks, 0);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("arena");
    TCase *tc = tcase_create ("arena");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_fifo_steady);
    tcase_add_test (tc, test_rewind_in_place);
    tcase_add_test (tc, test_any_order);
    tcase_add_test (tc, test_big_blocks);
    tcase_add_test (tc, test_outbox_ack_and_reset);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
