/*  check_store.c — unit tests for the durable store (src/broker/store.c).

    Each test works in a fresh directory and most of them close and reopen
    the environment, because surviving a restart is the point: events,
    stream ranges, cursors (floor, acknowledged seqs above it, attempts),
    the dedup window and dead letters must all come back as they were
    committed, and nothing that was only queued.  Map growth runs with a
    tiny first map; a full disk runs on a small tmpfs when this process may
    mount one (root), and is skipped with a message otherwise.              */
#include "store.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir [256];
static char s_err [512];

static void
s_rm_rf (const char *dir)
{
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq (system (cmd), 0);
}

static void
s_setup (void)
{
    const char *tmp = getenv ("TMPDIR");
    snprintf (s_dir, sizeof s_dir, "%s/check_store_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    s_rm_rf (s_dir);
}

static store_t *
s_open (uint64_t map)
{
    int rc = 0;
    store_t *store = store_open (s_dir, map, s_err, sizeof s_err, &rc);
    ck_assert_msg (store != NULL, "store_open: %s", s_err);
    ck_assert_int_eq (rc, 0);
    return store;
}

static stream_config_t
s_config (const char *name)
{
    stream_config_t sc;
    memset (&sc, 0, sizeof sc);
    snprintf (sc.name, sizeof sc.name, "%s", name);
    snprintf (sc.patterns [0], sizeof sc.patterns [0], "%s.#", name);
    sc.pattern_count = 1;
    sc.sync = STREAM_SYNC_ALWAYS;
    sc.sync_interval_ms = 1000;
    return sc;
}

static store_stream_t *
s_stream (store_t *store, const stream_config_t *sc)
{
    store_stream_t *stream = NULL;
    ck_assert_int_eq (store_stream_open (store, sc, &stream), 0);
    ck_assert_ptr_nonnull (stream);
    return stream;
}

static uint64_t
s_append (store_t *store, store_stream_t *stream, int64_t ts, const char *payload)
{
    char msg_id [32];
    snprintf (msg_id, sizeof msg_id, "id-%s", payload);
    uint64_t seq = store_append (store, stream, ts, "pay.ok", 6, msg_id, strlen (msg_id),
                                 NULL, 0, payload, strlen (payload));
    ck_assert_uint_gt (seq, 0);
    return seq;
}

/*  Collected events from store_read.                                       */
typedef struct {
    uint64_t seqs [4096];
    char payloads [4096][32];
    size_t count;
    size_t stop_after;
} got_t;

static int
s_collect (const store_event_t *ev, void *arg)
{
    got_t *got = arg;
    if (got->count < 4096) {
        got->seqs [got->count] = ev->seq;
        size_t len = ev->payload_len < 31 ? ev->payload_len : 31;
        memcpy (got->payloads [got->count], ev->payload, len);
        got->payloads [got->count][len] = 0;
    }
    got->count++;
    return got->stop_after && got->count >= got->stop_after;
}

START_TEST (test_append_read_roundtrip)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    ck_assert_uint_eq (store_stream_first (stream), 1);
    ck_assert_uint_eq (store_stream_last (stream), 0);
    ck_assert_uint_eq (store_stream_events (stream), 0);
    const char *headers = "{\"k\":\"v\"}";
    uint64_t seq = store_append (store, stream, 1234567, "pay.ok", 6, "m1", 2,
                                 headers, strlen (headers), "hello", 5);
    ck_assert_uint_eq (seq, 1);
    ck_assert_uint_eq (s_append (store, stream, 1234568, "b"), 2);
    ck_assert (store_pending (store));
    ck_assert (store_pending_sync (store));
    //  Queued is not stored.
    got_t *got = calloc (1, sizeof (got_t));
    ck_assert_int_eq (store_read (store, stream, 1, 100, s_collect, got), 0);
    ck_assert_uint_eq (store_stream_next (stream), 3);
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert (!store_pending (store));
    ck_assert_uint_eq (store_stream_last (stream), 2);
    ck_assert_uint_eq (store_stream_events (stream), 2);
    ck_assert_uint_gt (store_stream_bytes (stream), 0);
    ck_assert_uint_eq (store_syncs (store), 1);

    got->count = 0;
    ck_assert_int_eq (store_read (store, stream, 1, 100, s_collect, got), 2);
    ck_assert_uint_eq (got->seqs [0], 1);
    ck_assert_str_eq (got->payloads [0], "hello");
    ck_assert_str_eq (got->payloads [1], "b");
    free (got);
    store_destroy (&store);
    ck_assert_ptr_null (store);
}
END_TEST

/*  Every field of the first event read.                                    */
static int
s_check_fields (const store_event_t *ev, void *arg)
{
    int *checked = arg;
    ck_assert_uint_eq (ev->seq, 1);
    ck_assert_int_eq (ev->ts_us, 1234567);
    ck_assert_int_eq ((int) ev->topic_len, 6);
    ck_assert (memcmp (ev->topic, "pay.ok", 6) == 0);
    ck_assert_int_eq ((int) ev->msg_id_len, 2);
    ck_assert (memcmp (ev->msg_id, "m1", 2) == 0);
    ck_assert_ptr_nonnull (ev->headers);
    ck_assert_int_eq ((int) ev->headers_len, 9);
    ck_assert (memcmp (ev->headers, "{\"k\":\"v\"}", 9) == 0);
    ck_assert_int_eq ((int) ev->payload_len, 5);
    ck_assert (memcmp (ev->payload, "hello", 5) == 0);
    (*checked)++;
    return 1;
}

START_TEST (test_reopen_keeps_events)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    const char *headers = "{\"k\":\"v\"}";
    store_append (store, stream, 1234567, "pay.ok", 6, "m1", 2, headers, 9, "hello", 5);
    for (int i = 0; i < 99; i++)
        s_append (store, stream, 1234568 + i, "x");
    ck_assert_int_eq (store_commit (store), 0);
    uint64_t bytes = store_stream_bytes (stream);
    //  Queued but never committed: gone after the "crash".
    s_append (store, stream, 9999999, "lost");
    store_destroy (&store);

    store = s_open (0);
    stream = s_stream (store, &sc);
    ck_assert_uint_eq (store_stream_first (stream), 1);
    ck_assert_uint_eq (store_stream_last (stream), 100);
    ck_assert_uint_eq (store_stream_next (stream), 101);
    ck_assert_uint_eq (store_stream_bytes (stream), bytes);
    int checked = 0;
    ck_assert_int_eq (store_read (store, stream, 1, 10, s_check_fields, &checked), 1);
    ck_assert_int_eq (checked, 1);
    ck_assert_uint_eq (s_append (store, stream, 2000000, "next"), 101);
    ck_assert_int_eq (store_commit (store), 0);
    store_destroy (&store);
}
END_TEST

START_TEST (test_read_bounded_and_from)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    for (int i = 1; i <= 50; i++) {
        char p [16];
        snprintf (p, sizeof p, "%d", i);
        s_append (store, stream, i, p);
    }
    ck_assert_int_eq (store_commit (store), 0);
    got_t *got = calloc (1, sizeof (got_t));
    ck_assert_int_eq (store_read (store, stream, 10, 5, s_collect, got), 5);
    ck_assert_uint_eq (got->seqs [0], 10);
    ck_assert_uint_eq (got->seqs [4], 14);
    got->count = 0;
    got->stop_after = 3;
    ck_assert_int_eq (store_read (store, stream, 48, 100, s_collect, got), 3);
    got->count = 0;
    got->stop_after = 0;
    ck_assert_int_eq (store_read (store, stream, 51, 100, s_collect, got), 0);
    free (got);
    store_destroy (&store);
}
END_TEST

START_TEST (test_resolve_from)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    //  Empty stream: everything starts at the next seq.
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_FIRST, 0), 1);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_LAST, 0), 1);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_NEW, 0), 1);
    for (int i = 1; i <= 100; i++)
        s_append (store, stream, 1000 * i, "e");
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_FIRST, 0), 1);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_LAST, 0), 100);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_NEW, 0), 101);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_SEQ, 42), 42);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_SEQ, 500), 500);
    //  Time: the first event at or after T.
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_TIME, 0), 1);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_TIME, 1000), 1);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_TIME, 1001), 2);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_TIME, 50000), 50);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_TIME, 99999), 100);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_TIME, 100001), 101);
    //  New counts appends still queued.
    s_append (store, stream, 200000, "q");
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_NEW, 0), 102);
    ck_assert_int_eq (store_commit (store), 0);
    //  A seq below the first stored resolves to the first.
    sc.max_events = 10;
    ck_assert_int_eq (store_stream_open (store, &sc, &stream), 0);
    s_append (store, stream, 300000, "r");
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_stream_first (stream), 93);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_SEQ, 5), 93);
    ck_assert_uint_eq (store_resolve_from (store, stream, STORE_FROM_FIRST, 0), 93);
    store_destroy (&store);
}
END_TEST

START_TEST (test_retention_max_events)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    sc.max_events = 10;
    store_stream_t *stream = s_stream (store, &sc);
    for (int i = 0; i < 25; i++)
        s_append (store, stream, i, "e");
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_stream_events (stream), 10);
    ck_assert_uint_eq (store_stream_first (stream), 16);
    ck_assert_uint_eq (store_stream_last (stream), 25);
    ck_assert_uint_eq (store_stream_expired (stream), 15);
    got_t *got = calloc (1, sizeof (got_t));
    ck_assert_int_eq (store_read (store, stream, 1, 100, s_collect, got), 10);
    ck_assert_uint_eq (got->seqs [0], 16);
    free (got);
    store_destroy (&store);
    //  The range survives the restart.
    store = s_open (0);
    stream = s_stream (store, &sc);
    ck_assert_uint_eq (store_stream_first (stream), 16);
    ck_assert_uint_eq (store_stream_events (stream), 10);
    store_destroy (&store);
}
END_TEST

START_TEST (test_retention_bounded_per_call)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    for (int i = 0; i < 1000; i++)
        s_append (store, stream, i, "e");
    ck_assert_int_eq (store_commit (store), 0);
    //  Lowering the limit does not remove 990 events in one go.
    sc.max_events = 10;
    ck_assert_int_eq (store_stream_open (store, &sc, &stream), 0);
    store_set_retention_budget (store, 100);
    ck_assert_int_eq (store_tick (store, 0, 0), 0);
    ck_assert_uint_eq (store_stream_events (stream), 900);
    int calls = 1;
    while (store_stream_events (stream) > 10) {
        ck_assert_int_eq (store_tick (store, 0, 0), 0);
        calls++;
        ck_assert_int_le (calls, 20);
    }
    ck_assert_int_eq (calls, 10);
    ck_assert_uint_eq (store_stream_first (stream), 991);
    store_destroy (&store);
}
END_TEST

START_TEST (test_retention_max_bytes)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    char payload [1001];
    memset (payload, 'b', 1000);
    payload [1000] = 0;
    s_append (store, stream, 1, payload);
    ck_assert_int_eq (store_commit (store), 0);
    uint64_t one = store_stream_bytes (stream);
    sc.max_bytes = (int64_t) (one * 5);
    ck_assert_int_eq (store_stream_open (store, &sc, &stream), 0);
    for (int i = 0; i < 20; i++)
        s_append (store, stream, 2 + i, payload);
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_stream_events (stream), 5);
    ck_assert_uint_eq (store_stream_bytes (stream), one * 5);
    ck_assert_uint_eq (store_stream_last (stream), 21);
    store_destroy (&store);
}
END_TEST

START_TEST (test_retention_max_age)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    sc.max_age_ms = 60000;
    store_stream_t *stream = s_stream (store, &sc);
    int64_t now_us = 1000000000000LL;
    for (int i = 0; i < 10; i++)                //  2 minutes old
        s_append (store, stream, now_us - 120000000LL + i, "old");
    for (int i = 0; i < 5; i++)                 //  fresh
        s_append (store, stream, now_us - 1000 + i, "new");
    ck_assert_int_eq (store_commit (store), 0);
    //  Age is applied by the tick (it needs the wall clock).
    ck_assert_uint_eq (store_stream_events (stream), 15);
    ck_assert_int_eq (store_tick (store, 0, now_us), 0);
    ck_assert_uint_eq (store_stream_events (stream), 5);
    ck_assert_uint_eq (store_stream_first (stream), 11);
    //  Nothing left to do: the tick stays cheap.
    uint64_t commits = store_commits (store);
    ck_assert_int_eq (store_tick (store, 0, now_us), 0);
    ck_assert_uint_eq (store_commits (store), commits);
    store_destroy (&store);
}
END_TEST

START_TEST (test_map_growth)
{
    //  64 KiB first map: ~4 MB of events make it grow several times, within
    //  one commit and across commits, and nothing is lost.
    store_t *store = s_open (65536);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    char payload [1001];
    memset (payload, 'm', 1000);
    payload [1000] = 0;
    for (int i = 0; i < 2000; i++)
        s_append (store, stream, i, payload);
    ck_assert_int_eq (store_commit (store), 0);
    for (int batch = 0; batch < 20; batch++) {
        for (int i = 0; i < 100; i++)
            s_append (store, stream, i, payload);
        ck_assert_int_eq (store_commit (store), 0);
    }
    ck_assert_uint_gt (store_map_size (store), 4 * 1000 * 1000);
    ck_assert_uint_eq (store_stream_events (stream), 4000);
    uint64_t map = store_map_size (store);
    store_destroy (&store);
    store = s_open (65536);
    //  LMDB keeps at least what the file uses.
    ck_assert_uint_gt (map, 4 * 1000 * 1000);
    ck_assert_uint_ge (store_map_size (store), 4 * 1000 * 1000);
    stream = s_stream (store, &sc);
    ck_assert_uint_eq (store_stream_events (stream), 4000);
    got_t *got = calloc (1, sizeof (got_t));
    ck_assert_int_eq (store_read (store, stream, 3990, 100, s_collect, got), 11);
    free (got);
    store_destroy (&store);
}
END_TEST

START_TEST (test_map_ceiling)
{
    //  A capped map fills like a disk: -ENOSPC (507), the commit's appends
    //  forgotten, everything committed before intact.
    store_t *store = s_open (65536);
    store_set_max_size (store, 512 * 1024);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    char payload [1001];
    memset (payload, 'c', 1000);
    payload [1000] = 0;
    uint64_t committed = 0;
    int rc = 0;
    for (int batch = 0; batch < 1000 && rc == 0; batch++) {
        for (int i = 0; i < 10; i++)
            s_append (store, stream, i, payload);
        rc = store_commit (store);
        if (rc == 0)
            committed += 10;
    }
    ck_assert_int_eq (rc, -ENOSPC);
    ck_assert_uint_eq (store_reject_code (rc), 507);
    ck_assert_ptr_nonnull (strstr (store_last_error (store), "store_max_size"));
    ck_assert_uint_le (store_map_size (store), 512 * 1024);
    ck_assert_uint_gt (committed, 100);
    ck_assert_uint_eq (store_stream_events (stream), committed);
    ck_assert_uint_eq (store_stream_next (stream), committed + 1);
    ck_assert_uint_eq (store_commit_failures (store), 1);
    //  Retention makes room again: commits succeed.
    sc.max_events = 10;
    ck_assert_int_eq (store_stream_open (store, &sc, &stream), 0);
    store_set_retention_budget (store, 100000);
    ck_assert_int_eq (store_tick (store, 0, 0), 0);
    ck_assert_uint_eq (store_stream_events (stream), 10);
    s_append (store, stream, 1, payload);
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_stream_last (stream), committed + 1);
    store_destroy (&store);
}
END_TEST

START_TEST (test_cursor_acks_and_floor)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    for (int i = 0; i < 10; i++)
        s_append (store, stream, i, "e");
    ck_assert_int_eq (store_commit (store), 0);
    store_cursor_t *cursor = NULL;
    bool created = false;
    ck_assert_int_eq (store_cursor_open (store, stream, "crm", NULL, 1, &cursor, &created), 0);
    ck_assert (created);
    ck_assert_str_eq (store_cursor_name (cursor), "crm");
    ck_assert_str_eq (store_cursor_group (cursor), "");
    ck_assert_uint_eq (store_cursor_floor (cursor), 1);
    ck_assert_uint_eq (store_cursor_lag (cursor), 10);
    for (uint64_t s = 1; s <= 5; s++)
        ck_assert_int_eq (store_cursor_delivered (store, cursor, s, 1), 0);
    ck_assert_uint_eq (store_cursor_pending (cursor), 5);
    //  In order: the floor moves.
    ck_assert_int_eq (store_cursor_ack (store, cursor, 1), 0);
    ck_assert_int_eq (store_cursor_ack (store, cursor, 2), 0);
    ck_assert_uint_eq (store_cursor_floor (cursor), 3);
    //  Out of order: kept above the floor.
    ck_assert_int_eq (store_cursor_ack (store, cursor, 5), 0);
    ck_assert_uint_eq (store_cursor_floor (cursor), 3);
    ck_assert (store_cursor_acked (cursor, 5));
    ck_assert (!store_cursor_acked (cursor, 4));
    ck_assert (store_cursor_acked (cursor, 2));
    ck_assert_uint_eq (store_cursor_acked_above (cursor), 1);
    ck_assert_uint_eq (store_cursor_lag (cursor), 7);
    //  Twice, or below the floor: -ENOENT.
    ck_assert_int_eq (store_cursor_ack (store, cursor, 5), -ENOENT);
    ck_assert_int_eq (store_cursor_ack (store, cursor, 1), -ENOENT);
    //  A redelivery counts the attempt.
    ck_assert_int_eq (store_cursor_delivered (store, cursor, 3, 2), 0);
    ck_assert_uint_eq (store_cursor_attempts (cursor, 3), 2);
    ck_assert_uint_eq (store_cursor_attempts (cursor, 4), 1);
    ck_assert_uint_eq (store_cursor_attempts (cursor, 9), 0);
    ck_assert_int_eq (store_commit (store), 0);
    store_destroy (&store);

    //  After the restart: floor, acked-above and attempts are back.
    store = s_open (0);
    stream = s_stream (store, &sc);
    cursor = store_cursor_find (stream, "crm");
    ck_assert_ptr_nonnull (cursor);
    ck_assert_uint_eq (store_cursor_floor (cursor), 3);
    ck_assert (store_cursor_acked (cursor, 5));
    ck_assert (!store_cursor_acked (cursor, 3));
    ck_assert_uint_eq (store_cursor_attempts (cursor, 3), 2);
    ck_assert_uint_eq (store_cursor_attempts (cursor, 4), 1);
    ck_assert_uint_eq (store_cursor_pending (cursor), 2);
    ck_assert_uint_eq (store_cursor_lag (cursor), 7);
    ck_assert_int_eq (store_cursor_open (store, stream, "crm", NULL, 99, &cursor, &created), 0);
    ck_assert (!created);
    ck_assert_uint_eq (store_cursor_floor (cursor), 3);
    //  Closing the hole moves the floor past the acked 5.
    ck_assert_int_eq (store_cursor_ack (store, cursor, 3), 0);
    ck_assert_int_eq (store_cursor_ack (store, cursor, 4), 0);
    ck_assert_uint_eq (store_cursor_floor (cursor), 6);
    ck_assert_uint_eq (store_cursor_acked_above (cursor), 0);
    ck_assert_int_eq (store_commit (store), 0);
    store_destroy (&store);

    store = s_open (0);
    stream = s_stream (store, &sc);
    cursor = store_cursor_find (stream, "crm");
    ck_assert_uint_eq (store_cursor_floor (cursor), 6);
    ck_assert_uint_eq (store_cursor_pending (cursor), 0);
    ck_assert_uint_eq (store_cursor_lag (cursor), 5);
    store_destroy (&store);
}
END_TEST

START_TEST (test_cursor_uncommitted_acks_lost)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    for (int i = 0; i < 3; i++)
        s_append (store, stream, i, "e");
    store_cursor_t *cursor;
    ck_assert_int_eq (store_cursor_open (store, stream, "w", "workers", 1, &cursor, NULL), 0);
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_int_eq (store_cursor_ack (store, cursor, 1), 0);
    store_destroy (&store);         //  crash before the commit
    store = s_open (0);
    stream = s_stream (store, &sc);
    cursor = store_cursor_find (stream, "w");
    ck_assert_ptr_nonnull (cursor);
    ck_assert_str_eq (store_cursor_group (cursor), "workers");
    ck_assert_uint_eq (store_cursor_floor (cursor), 1);
    store_destroy (&store);
}
END_TEST

START_TEST (test_cursor_skip_and_delete)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    for (int i = 0; i < 20; i++)
        s_append (store, stream, i, "e");
    store_cursor_t *a, *b;
    ck_assert_int_eq (store_cursor_open (store, stream, "a", NULL, 1, &a, NULL), 0);
    ck_assert_int_eq (store_cursor_open (store, stream, "b", NULL, 21, &b, NULL), 0);
    ck_assert_int_eq (store_cursor_ack (store, a, 12), 0);
    ck_assert_int_eq (store_cursor_ack (store, a, 3), 0);
    ck_assert_int_eq (store_cursor_skip_to (store, a, 10), 0);
    ck_assert_uint_eq (store_cursor_floor (a), 10);
    ck_assert (store_cursor_acked (a, 12));
    ck_assert_uint_eq (store_cursor_acked_above (a), 1);
    //  Counting acknowledged seqs in a range (for GAP after retention).
    ck_assert_uint_eq (store_cursor_acked_between (a, 1, 10), 9);
    ck_assert_uint_eq (store_cursor_acked_between (a, 5, 15), 6);
    ck_assert_uint_eq (store_cursor_acked_between (a, 11, 13), 1);
    ck_assert_uint_eq (store_cursor_acked_between (a, 13, 13), 0);
    ck_assert_uint_eq (store_cursor_lag (b), 0);
    ck_assert_ptr_eq (store_cursor_at (stream, 0), a);
    ck_assert_ptr_eq (store_cursor_at (stream, 1), b);
    ck_assert_ptr_null (store_cursor_at (stream, 2));
    ck_assert_int_eq (store_cursor_delete (store, &a), 0);
    ck_assert_ptr_null (a);
    ck_assert_int_eq (store_commit (store), 0);
    store_destroy (&store);
    store = s_open (0);
    stream = s_stream (store, &sc);
    ck_assert_ptr_null (store_cursor_find (stream, "a"));
    ck_assert_ptr_nonnull (store_cursor_find (stream, "b"));
    ck_assert_uint_eq (store_cursor_floor (store_cursor_find (stream, "b")), 21);
    store_destroy (&store);
}
END_TEST

/*  Cursor names that are prefixes of each other keep their own state.      */
START_TEST (test_cursor_prefix_names)
{
    store_t *store = s_open (0);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    stream_config_t sc2 = s_config ("pay2");
    store_stream_t *stream2 = s_stream (store, &sc2);
    for (int i = 0; i < 5; i++) {
        s_append (store, stream, i, "e");
        s_append (store, stream2, i, "e");
    }
    store_cursor_t *a, *ab, *other;
    ck_assert_int_eq (store_cursor_open (store, stream, "a", NULL, 1, &a, NULL), 0);
    ck_assert_int_eq (store_cursor_open (store, stream, "ab", NULL, 1, &ab, NULL), 0);
    ck_assert_int_eq (store_cursor_open (store, stream2, "a", NULL, 1, &other, NULL), 0);
    ck_assert_int_eq (store_cursor_ack (store, a, 3), 0);
    ck_assert_int_eq (store_cursor_ack (store, ab, 4), 0);
    ck_assert_int_eq (store_cursor_ack (store, other, 1), 0);
    ck_assert_int_eq (store_commit (store), 0);
    store_destroy (&store);
    store = s_open (0);
    stream = s_stream (store, &sc);
    stream2 = s_stream (store, &sc2);
    a = store_cursor_find (stream, "a");
    ab = store_cursor_find (stream, "ab");
    other = store_cursor_find (stream2, "a");
    ck_assert (store_cursor_acked (a, 3) && !store_cursor_acked (a, 4));
    ck_assert (store_cursor_acked (ab, 4) && !store_cursor_acked (ab, 3));
    ck_assert_uint_eq (store_cursor_floor (other), 2);
    ck_assert_uint_eq (store_cursor_floor (a), 1);
    store_destroy (&store);
}
END_TEST

typedef struct {
    char keys [16][64];
    int64_t ts [16];
    int count;
} dedup_got_t;

static void
s_dedup_collect (const char *topic, size_t tlen, const char *msg_id, size_t mlen, int64_t ts,
                 void *arg)
{
    dedup_got_t *got = arg;
    if (got->count < 16) {
        snprintf (got->keys [got->count], 64, "%.*s/%.*s", (int) tlen, topic, (int) mlen, msg_id);
        got->ts [got->count] = ts;
    }
    got->count++;
}

START_TEST (test_dedup_persists_and_expires)
{
    store_t *store = s_open (0);
    store_set_dedup_window (store, 120000);
    ck_assert_int_eq (store_dedup_add (store, "pay.ok", 6, "m1", 2, 1000000), 0);
    ck_assert_int_eq (store_dedup_add (store, "pay.ok", 6, "m2", 2, 1100000), 0);
    ck_assert_int_eq (store_dedup_add (store, "pay.no", 6, "m1", 2, 1200000), 0);
    ck_assert_int_eq (store_commit (store), 0);
    store_destroy (&store);
    store = s_open (0);
    store_set_dedup_window (store, 120000);
    dedup_got_t got = { .count = 0 };
    ck_assert_int_eq (store_dedup_load (store, 0, s_dedup_collect, &got), 0);
    ck_assert_int_eq (got.count, 3);
    ck_assert_str_eq (got.keys [0], "pay.ok/m1");
    ck_assert_int_eq (got.ts [0], 1000000);
    ck_assert_str_eq (got.keys [2], "pay.no/m1");
    got.count = 0;
    ck_assert_int_eq (store_dedup_load (store, 1100000, s_dedup_collect, &got), 0);
    ck_assert_int_eq (got.count, 2);
    //  Expiry: at 1,230,000 ms the first two are older than 120 s.
    ck_assert_int_eq (store_tick (store, 0, 1230000LL * 1000), 0);
    ck_assert_uint_eq (store_dedup_size (store), 1);
    store_destroy (&store);
}
END_TEST

typedef struct {
    char topic [256], msg_id [256];
    int count;
} dedup_long_t;

static void
s_dedup_long (const char *topic, size_t tlen, const char *msg_id, size_t mlen, int64_t ts,
              void *arg)
{
    (void) ts;
    dedup_long_t *got = arg;
    snprintf (got->topic, sizeof got->topic, "%.*s", (int) tlen, topic);
    snprintf (got->msg_id, sizeof got->msg_id, "%.*s", (int) mlen, msg_id);
    got->count++;
}

/*  The longest topic with the longest msg_id (a valid PUB) is more than
    LMDB's 511-byte key: it still commits, and comes back whole.            */
START_TEST (test_dedup_longest_key)
{
    char topic [256], msg_id [256], other [256];
    memset (topic, 't', 255);
    topic [255] = 0;
    memset (msg_id, 'm', 255);
    msg_id [255] = 0;
    memcpy (other, msg_id, sizeof other);
    other [254] = 'x';                  /*  differs only in its last byte   */
    store_t *store = s_open (0);
    store_set_dedup_window (store, 120000);
    ck_assert_int_eq (store_dedup_add (store, topic, 255, msg_id, 255, 1000000), 0);
    ck_assert_int_eq (store_dedup_add (store, topic, 255, other, 255, 1000000), 0);
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_dedup_size (store), 2);
    dedup_long_t got = { .count = 0 };
    ck_assert_int_eq (store_dedup_load (store, 0, s_dedup_long, &got), 0);
    ck_assert_int_eq (got.count, 2);
    ck_assert_str_eq (got.topic, topic);
    ck_assert (strcmp (got.msg_id, msg_id) == 0 || strcmp (got.msg_id, other) == 0);
    store_destroy (&store);
}
END_TEST

typedef struct {
    uint64_t ids [8];
    char reasons [8][64];
    char subs [8][64];
    char payloads [8][64];
    uint16_t attempts [8];
    uint64_t orig [8];
    int count;
} dlq_got_t;

static void
s_dlq_collect (const store_dlq_t *entry, void *arg)
{
    dlq_got_t *got = arg;
    int i = got->count++;
    if (i >= 8)
        return;
    got->ids [i] = entry->id;
    snprintf (got->reasons [i], 64, "%s", entry->reason);
    snprintf (got->subs [i], 64, "%s", entry->subscription);
    snprintf (got->payloads [i], 64, "%.*s", (int) entry->event.payload_len,
              (const char *) entry->event.payload);
    got->attempts [i] = entry->attempts;
    got->orig [i] = entry->original_seq;
    ck_assert_int_eq ((int) entry->event.topic_len, 6);
    ck_assert (memcmp (entry->event.topic, "pay.ok", 6) == 0);
}

START_TEST (test_dlq_persists)
{
    store_t *store = s_open (0);
    store_dlq_t entry = {
        .id = 7, .ts_us = 55, .attempts = 5, .original_seq = 42,
        .reason = "max_deliver 5 reached", .subscription = "crm",
        .event = { .ts_us = 44, .topic = "pay.ok", .topic_len = 6, .msg_id = "m1",
                   .msg_id_len = 2, .headers = "{}", .headers_len = 2,
                   .payload = "payload", .payload_len = 7 }
    };
    ck_assert_int_eq (store_dlq_put (store, &entry), 0);
    entry.id = 8;
    entry.reason = "nacked";
    ck_assert_int_eq (store_dlq_put (store, &entry), 0);
    entry.id = 9;
    ck_assert_int_eq (store_dlq_put (store, &entry), 0);
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_int_eq (store_dlq_del (store, 8), 0);
    ck_assert_int_eq (store_commit (store), 0);
    store_destroy (&store);
    store = s_open (0);
    dlq_got_t got;
    memset (&got, 0, sizeof got);
    ck_assert_int_eq (store_dlq_load (store, s_dlq_collect, &got), 0);
    ck_assert_int_eq (got.count, 2);
    ck_assert_uint_eq (got.ids [0], 7);
    ck_assert_uint_eq (got.ids [1], 9);
    ck_assert_str_eq (got.reasons [0], "max_deliver 5 reached");
    ck_assert_str_eq (got.subs [0], "crm");
    ck_assert_str_eq (got.payloads [0], "payload");
    ck_assert_uint_eq (got.attempts [0], 5);
    ck_assert_uint_eq (got.orig [0], 42);
    store_destroy (&store);
}
END_TEST

static void
s_count_name (const char *name, void *arg)
{
    char *names = arg;
    strcat (names, name);
    strcat (names, ",");
}

START_TEST (test_purge_and_delete)
{
    store_t *store = s_open (0);
    stream_config_t a = s_config ("alpha"), b = s_config ("beta");
    store_stream_t *sa = s_stream (store, &a), *sb = s_stream (store, &b);
    for (int i = 0; i < 10; i++) {
        s_append (store, sa, i, "a");
        s_append (store, sb, i, "b");
    }
    store_cursor_t *cursor;
    ck_assert_int_eq (store_cursor_open (store, sb, "c", NULL, 1, &cursor, NULL), 0);
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_int_eq (store_stream_purge (store, sa), 0);
    ck_assert_uint_eq (store_stream_events (sa), 0);
    ck_assert_uint_eq (store_stream_bytes (sa), 0);
    //  Seqs are not reused after a purge.
    ck_assert_uint_eq (s_append (store, sa, 11, "a"), 11);
    ck_assert_int_eq (store_commit (store), 0);
    char names [256] = "";
    ck_assert_int_eq (store_stream_names (store, s_count_name, names), 0);
    ck_assert_str_eq (names, "alpha,beta,");
    ck_assert_int_eq (store_stream_delete (store, &sb), 0);
    ck_assert_ptr_null (sb);
    ck_assert_ptr_null (store_stream_find (store, "beta"));
    store_destroy (&store);

    store = s_open (0);
    names [0] = 0;
    ck_assert_int_eq (store_stream_names (store, s_count_name, names), 0);
    ck_assert_str_eq (names, "alpha,");
    sa = s_stream (store, &a);
    ck_assert_uint_eq (store_stream_first (sa), 11);
    ck_assert_uint_eq (store_stream_events (sa), 1);
    //  A recreated beta starts empty, without the old cursor.
    sb = s_stream (store, &b);
    ck_assert_uint_eq (store_stream_events (sb), 0);
    ck_assert_ptr_null (store_cursor_find (sb, "c"));
    store_destroy (&store);
    //  Delete by name, not opened.
    store = s_open (0);
    ck_assert_int_eq (store_stream_delete_name (store, "alpha"), 0);
    ck_assert_int_eq (store_stream_delete_name (store, "nope"), -ENOENT);
    names [0] = 0;
    ck_assert_int_eq (store_stream_names (store, s_count_name, names), 0);
    ck_assert_str_eq (names, "beta,");
    store_destroy (&store);
}
END_TEST

START_TEST (test_sync_policies)
{
    store_t *store = s_open (0);
    stream_config_t a = s_config ("always"), i = s_config ("interval"), n = s_config ("never");
    i.sync = STREAM_SYNC_INTERVAL;
    i.sync_interval_ms = 1;
    n.sync = STREAM_SYNC_NEVER;
    store_stream_t *sa = s_stream (store, &a), *si = s_stream (store, &i), *sn = s_stream (store, &n);
    s_append (store, sn, 1, "n");
    ck_assert (!store_pending_sync (store));
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_syncs (store), 0);
    s_append (store, si, 1, "i");
    ck_assert (!store_pending_sync (store));
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_syncs (store), 0);
    usleep (5000);
    ck_assert_int_eq (store_tick (store, 0, 0), 0);
    ck_assert_uint_eq (store_syncs (store), 1);
    s_append (store, sa, 1, "a");
    ck_assert (store_pending_sync (store));
    ck_assert_int_eq (store_commit (store), 0);
    ck_assert_uint_eq (store_syncs (store), 2);
    ck_assert_uint_eq (store_commits (store), 3);
    ck_assert_str_eq (store_sync_name (STREAM_SYNC_INTERVAL), "interval");
    store_destroy (&store);
}
END_TEST

START_TEST (test_open_errors)
{
    //  A data_dir that is a file: a clear error naming it, 503.
    char path [300];
    snprintf (path, sizeof path, "%s/file", s_dir);
    FILE *f = fopen (path, "w");
    ck_assert_ptr_nonnull (f);
    fclose (f);
    int rc = 0;
    store_t *store = store_open (path, 0, s_err, sizeof s_err, &rc);
    ck_assert_ptr_null (store);
    ck_assert_int_lt (rc, 0);
    ck_assert_ptr_nonnull (strstr (s_err, path));
    ck_assert_uint_eq (store_reject_code (rc), 503);
    ck_assert_uint_eq (store_reject_code (-ENOSPC), 507);
    ck_assert_uint_eq (store_reject_code (-EIO), 503);
    //  A directory below a file cannot be created.
    snprintf (path, sizeof path, "%s/file/sub", s_dir);
    store = store_open (path, 0, s_err, sizeof s_err, &rc);
    ck_assert_ptr_null (store);
    ck_assert_ptr_nonnull (strstr (s_err, "cannot create"));
}
END_TEST

START_TEST (test_disk_full)
{
    char mnt [300];
    snprintf (mnt, sizeof mnt, "%s/small", s_dir);
    ck_assert_int_eq (mkdir (mnt, 0700), 0);
    if (mount ("tmpfs", mnt, "tmpfs", 0, "size=512k")) {
        fprintf (stderr, "check_store: disk-full test skipped (cannot mount a tmpfs: %s)\n",
                 strerror (errno));
        return;
    }
    int rc = 0;
    store_t *store = store_open (mnt, 65536, s_err, sizeof s_err, &rc);
    ck_assert_msg (store != NULL, "%s", s_err);
    stream_config_t sc = s_config ("pay");
    store_stream_t *stream = s_stream (store, &sc);
    char payload [1001];
    memset (payload, 'f', 1000);
    payload [1000] = 0;
    uint64_t committed = 0;
    for (int batch = 0; batch < 1000; batch++) {
        for (int i = 0; i < 10; i++)
            s_append (store, stream, i, payload);
        rc = store_commit (store);
        if (rc)
            break;
        committed += 10;
    }
    ck_assert_int_lt (rc, 0);
    ck_assert_msg (store_reject_code (rc) == 507, "rc %d: %s", rc, store_last_error (store));
    ck_assert_ptr_nonnull (strstr (store_last_error (store), mnt));
    ck_assert_uint_gt (committed, 0);
    ck_assert_uint_eq (store_stream_events (stream), committed);
    ck_assert_uint_eq (store_stream_next (stream), committed + 1);
    store_destroy (&store);
    //  What was committed is all there after a restart.
    store = store_open (mnt, 65536, s_err, sizeof s_err, &rc);
    ck_assert_msg (store != NULL, "%s", s_err);
    stream = s_stream (store, &sc);
    ck_assert_uint_eq (store_stream_events (stream), committed);
    got_t *got = calloc (1, sizeof (got_t));
    ck_assert_int_eq (store_read (store, stream, 1, 4096, s_collect, got), (int) committed);
    free (got);
    store_destroy (&store);
    ck_assert_int_eq (umount (mnt), 0);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("store");
    TCase *tc = tcase_create ("store");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_append_read_roundtrip);
    tcase_add_test (tc, test_reopen_keeps_events);
    tcase_add_test (tc, test_read_bounded_and_from);
    tcase_add_test (tc, test_resolve_from);
    tcase_add_test (tc, test_retention_max_events);
    tcase_add_test (tc, test_retention_bounded_per_call);
    tcase_add_test (tc, test_retention_max_bytes);
    tcase_add_test (tc, test_retention_max_age);
    tcase_add_test (tc, test_map_growth);
    tcase_add_test (tc, test_map_ceiling);
    tcase_add_test (tc, test_cursor_acks_and_floor);
    tcase_add_test (tc, test_cursor_uncommitted_acks_lost);
    tcase_add_test (tc, test_cursor_skip_and_delete);
    tcase_add_test (tc, test_cursor_prefix_names);
    tcase_add_test (tc, test_dedup_persists_and_expires);
    tcase_add_test (tc, test_dedup_longest_key);
    tcase_add_test (tc, test_dlq_persists);
    tcase_add_test (tc, test_purge_and_delete);
    tcase_add_test (tc, test_sync_policies);
    tcase_add_test (tc, test_open_errors);
    tcase_add_test (tc, test_disk_full);
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
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
