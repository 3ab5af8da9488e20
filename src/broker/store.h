/*  store.h — durable streams on LMDB: events, cursors, dedup, dead letters.

    One LMDB environment in data_dir holds everything that must survive a
    crash, so that an event, the cursor acknowledgement that consumed it
    and the dedup entry that guards it commit together or not at all:

      e:<stream>   u64 BE seq -> event record (appended with MDB_APPEND)
      meta         "s:<stream>" -> last assigned seq, bytes held
      cursors      "<stream>\0<name>" -> floor (every seq below is acked),
                   the group name of a durable group
      cstate       "<stream>\0<name>\0" + u64 BE seq -> acked flag, attempts
                   (only for seqs at or above the floor that were delivered)
      dedup        i64 BE ts_ms + topic len + topic + msg_id -> (), oldest
                   first; past LMDB's 511-byte keys the key ends in the head
                   of msg_id and its hash, and the value holds the rest
      dlq          u64 BE id -> dead-letter record

    Writes are not made when asked for: they are queued (store_append,
    store_cursor_ack ...) and store_commit applies the whole queue in one
    write transaction at the end of a loop iteration (group commit).  A
    queue kept in memory is what makes MDB_MAP_FULL recoverable: the
    transaction is aborted, the map grown and the same queue applied again.
    When a commit fails for good, the queued appends are forgotten (their
    seqs are reused) and the caller REJECTs the PUBs they came from.

    The store belongs to the broker thread; nothing here locks.              */
#ifndef BUSD_STORE_H_INCLUDED
#define BUSD_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

typedef struct store store_t;
typedef struct store_stream store_stream_t;
typedef struct store_cursor store_cursor_t;

/*  Open (creating when needed) the environment in dir.  initial_map is the
    first map size in bytes (0: 64 MiB); it grows as the data does.  On
    failure returns NULL, err says why naming the directory and *rc_p (when
    not NULL) holds the negative errno.                                      */
store_t *store_open (const char *dir, uint64_t initial_map, char *err, size_t err_size,
                     int *rc_p);
/*  Commits nothing that is still queued: call store_commit first.          */
void store_destroy (store_t **self_p);

/*  The REJECT code for a failed commit: 507 when the disk (or the map's
    ceiling) is full, 503 for anything else that makes the store unusable.  */
uint16_t store_reject_code (int rc);
/*  The last failure as text ("" after a successful commit).                */
const char *store_last_error (const store_t *self);
const char *store_dir (const store_t *self);
uint64_t store_map_size (const store_t *self);
/*  The most the map may grow to (0: 1 TiB); beyond it a commit fails with
    -ENOSPC, so an operator can cap the disk the store takes.                */
void store_set_max_size (store_t *self, uint64_t bytes);

/*  ---- streams ------------------------------------------------------- */
/*  Open a stream by its configuration (created when new; an existing one
    keeps its events and takes the new limits and sync policy).              */
int store_stream_open (store_t *self, const stream_config_t *config,
                       store_stream_t **stream_p);
store_stream_t *store_stream_find (store_t *self, const char *name);
/*  Streams in the order they were opened; NULL past the end.               */
store_stream_t *store_stream_at (store_t *self, size_t index);
const char *store_stream_name (const store_stream_t *stream);
const stream_config_t *store_stream_config (const store_stream_t *stream);
/*  Committed range: first is last + 1 when the stream is empty.             */
uint64_t store_stream_first (const store_stream_t *stream);
uint64_t store_stream_last (const store_stream_t *stream);
/*  The seq the next append gets (counts queued appends).                    */
uint64_t store_stream_next (const store_stream_t *stream);
uint64_t store_stream_events (const store_stream_t *stream);
uint64_t store_stream_bytes (const store_stream_t *stream);
/*  Events removed by retention since start (for metrics).                   */
uint64_t store_stream_expired (const store_stream_t *stream);
/*  Remove every event now (seqs are not reused).  Commits the queue first. */
int store_stream_purge (store_t *self, store_stream_t *stream);
/*  Remove the stream, its events and its cursors.  Commits the queue
    first; *stream_p is nulled.                                              */
int store_stream_delete (store_t *self, store_stream_t **stream_p);
/*  Names of streams stored in the environment, opened or not, for a
    "stream delete" of one no longer configured.  Calls fn per name.         */
int store_stream_names (store_t *self, void (*fn) (const char *name, void *arg), void *arg);
/*  Delete a stream by name that is stored but not opened.                   */
int store_stream_delete_name (store_t *self, const char *name);

/*  ---- appends and commits ------------------------------------------ */
/*  Queue an event; returns its seq (> 0), or 0 when out of memory.          */
uint64_t store_append (store_t *self, store_stream_t *stream, int64_t ts_us,
                       const char *topic, size_t topic_len,
                       const char *msg_id, size_t msg_id_len,
                       const void *headers, size_t headers_len,
                       const void *payload, size_t payload_len);
/*  True when writes are queued.                                             */
bool store_pending (const store_t *self);
/*  True when the queue holds writes that must be synced before their
    effects are told to anyone (a stream with sync: always).                 */
bool store_pending_sync (const store_t *self);
/*  Apply the queue in one transaction, sync per the streams' policies and
    apply retention (bounded work).  0, or a negative errno (-ENOSPC for a
    full disk or map ceiling); either way the queue is empty afterwards.     */
int store_commit (store_t *self);
/*  Timer work, bounded per call: interval syncs, retention by age, dedup
    expiry.  now_wall_us is the wall clock that stamps events.              */
int store_tick (store_t *self, int64_t now_ms, int64_t now_wall_us);
/*  Commits, syncs and retention deletions since start.                     */
uint64_t store_commits (const store_t *self);
uint64_t store_syncs (const store_t *self);
uint64_t store_commit_failures (const store_t *self);
/*  Most events a commit or tick removes per stream for retention.          */
void store_set_retention_budget (store_t *self, size_t events);

/*  ---- reading ------------------------------------------------------- */
typedef struct {
    uint64_t seq;
    int64_t ts_us;
    const char *topic;
    size_t topic_len;
    const char *msg_id;
    size_t msg_id_len;
    const void *headers;        /*  NULL when none                          */
    size_t headers_len;
    const void *payload;
    size_t payload_len;
} store_event_t;

/*  Called per event; the pointers are valid during the call only.  Return
    0 to go on, anything else to stop after this event.                      */
typedef int (store_read_fn) (const store_event_t *event, void *arg);
/*  Read committed events with seq >= from, at most max_events.  Returns how
    many were passed to fn, or a negative errno.                             */
int store_read (store_t *self, store_stream_t *stream, uint64_t from, size_t max_events,
                store_read_fn *fn, void *arg);

typedef enum {
    STORE_FROM_NEW = 0, STORE_FROM_FIRST, STORE_FROM_LAST, STORE_FROM_SEQ, STORE_FROM_TIME
} store_from_t;
/*  The first seq a new cursor starts at: `value` is the seq for
    STORE_FROM_SEQ and µs since the epoch for STORE_FROM_TIME.  A seq below
    the first stored one resolves to it (the caller reports the GAP).        */
uint64_t store_resolve_from (store_t *self, store_stream_t *stream, store_from_t from,
                             int64_t value);

/*  ---- cursors ------------------------------------------------------- */
/*  Find or create the cursor (stream, name).  A new one starts at start
    (every seq below counts as acknowledged) and remembers group (NULL or ""
    for none).  *created says which happened.                                 */
int store_cursor_open (store_t *self, store_stream_t *stream, const char *name,
                       const char *group, uint64_t start, store_cursor_t **cursor_p,
                       bool *created);
store_cursor_t *store_cursor_find (store_stream_t *stream, const char *name);
/*  Cursors of a stream; NULL past the end.                                  */
store_cursor_t *store_cursor_at (store_stream_t *stream, size_t index);
size_t store_cursor_count (store_stream_t *stream);
const char *store_cursor_name (const store_cursor_t *cursor);
const char *store_cursor_group (const store_cursor_t *cursor);   /*  "" for none */
store_stream_t *store_cursor_stream (const store_cursor_t *cursor);
/*  Every seq below the floor is acknowledged (or was never to be read).    */
uint64_t store_cursor_floor (const store_cursor_t *cursor);
bool store_cursor_acked (const store_cursor_t *cursor, uint64_t seq);
/*  Deliveries made of seq so far (0: never delivered).                      */
uint16_t store_cursor_attempts (const store_cursor_t *cursor, uint64_t seq);
/*  Record a delivery of seq as attempt number `attempt` (queued).           */
int store_cursor_delivered (store_t *self, store_cursor_t *cursor, uint64_t seq,
                            uint16_t attempt);
/*  Record seq as acknowledged (queued): 0, or -ENOENT for a seq below the
    floor (already acknowledged).  Dead-lettering an event is an ack too.    */
int store_cursor_ack (store_t *self, store_cursor_t *cursor, uint64_t seq);
/*  Move the floor up to seq (retention removed what was below).            */
int store_cursor_skip_to (store_t *self, store_cursor_t *cursor, uint64_t seq);
/*  How many seqs in [from, to) are acknowledged (below the floor: all).     */
uint64_t store_cursor_acked_between (const store_cursor_t *cursor, uint64_t from, uint64_t to);
/*  Events stored at or above the floor that are not acknowledged.           */
uint64_t store_cursor_lag (const store_cursor_t *cursor);
/*  Acknowledged seqs above the floor, and delivered but unacknowledged.     */
size_t store_cursor_acked_above (const store_cursor_t *cursor);
size_t store_cursor_pending (const store_cursor_t *cursor);
/*  Remove the cursor and its state (queued); *cursor_p is nulled.          */
int store_cursor_delete (store_t *self, store_cursor_t **cursor_p);

/*  ---- dedup window -------------------------------------------------- */
/*  Remember (topic, msg_id) accepted at ts_ms (queued; commits with the
    event it guards).                                                        */
int store_dedup_add (store_t *self, const char *topic, size_t topic_len,
                     const char *msg_id, size_t msg_id_len, int64_t ts_ms);
/*  Entries younger than the window are kept; tick expires the rest.        */
void store_set_dedup_window (store_t *self, int64_t window_ms);
/*  Pass the entries with ts_ms >= since_ms to fn, oldest first.             */
int store_dedup_load (store_t *self, int64_t since_ms,
                      void (*fn) (const char *topic, size_t topic_len,
                                  const char *msg_id, size_t msg_id_len,
                                  int64_t ts_ms, void *arg),
                      void *arg);
size_t store_dedup_size (store_t *self);

/*  ---- dead letters -------------------------------------------------- */
typedef struct {
    uint64_t id;
    int64_t ts_us;              /*  when it was dead-lettered               */
    uint16_t attempts;
    uint64_t original_seq;
    const char *reason;
    const char *subscription;
    store_event_t event;        /*  the original (seq unused)               */
} store_dlq_t;

int store_dlq_put (store_t *self, const store_dlq_t *entry);
int store_dlq_del (store_t *self, uint64_t id);
/*  Every stored dead letter, in id order (pointers valid during the call). */
int store_dlq_load (store_t *self, void (*fn) (const store_dlq_t *entry, void *arg),
                    void *arg);

/*  ---- parsing helpers (config and CTL) --------------------------- */
const char *store_sync_name (stream_sync_t sync);

#endif
