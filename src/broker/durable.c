/*  durable.c — durable streams in the broker (see durable.h).

    Why events a stream covers are routed only after the commit: a live
    subscriber must never see an event that is then REJECTed (its publisher
    would send it again), and a PUBACK must never cover one that is not
    stored.  Holding them to the end of the batch costs one loop iteration
    of latency and makes the group commit natural.  Once a session has an
    event held in a batch, its later events in that batch wait too, so each
    subscription still sees one publisher's events in pub_seq order.

    Why durable channels read from the store rather than being offered
    events by the trie: their backlog is the stream itself.  A channel holds
    at most FEED_HIGH waiting events; when it falls below FEED_LOW and a
    member has credit, the next ones are read from the cursor's read
    position (skipping those acknowledged and those the pattern does not
    match).  A subscriber that is behind therefore never throttles
    publishers, and broker memory per durable channel is bounded.

    Why a feed list: feeding is needed only where something changed (a
    CREDIT, ACK or new member marks the channel dirty; a commit appends to
    the stream a caught-up channel waits on), so durable_end_batch walks the
    channels listed since the last batch, and a commit wakes only the
    channels waiting on the streams it appended to.  With thousands of idle
    cursors a batch costs what it feeds, not what exists.                   */
#include "durable.h"
#include "store.h"
#include "dedup.h"
#include "dlq.h"
#include "topic.h"
#include "clock.h"
#include <errno.h>
#include <time.h>

#define FEED_LOW    256
#define FEED_HIGH   1024
#define INITIAL_MAP (64ULL * 1024 * 1024)

typedef struct {
    session_t *session;
    uint64_t pub_seq;
    event_t *event;
    bool stored;                /*  appended to a stream (else: order only) */
    bool duplicate;             /*  a repeat of a stored one: shares its fate */
} held_t;

typedef struct dchan {
    channel_t *channel;
    store_stream_t *stream;
    store_cursor_t *cursor;
    uint64_t read_pos;          /*  next seq to read from the store         */
    bool listed;                /*  in durable->feed                        */
    bool waiting;               /*  in its stream slot's waiters            */
    char name [256];
} dchan_t;

/*  Per stream: the channels that read everything and wait for more.        */
typedef struct {
    store_stream_t *stream;
    ptrvec_t waiters;           /*  dchan_t *                               */
    bool appended;              /*  this batch appended to it               */
} slot_t;

struct durable {
    broker_t *broker;
    store_t *store;             /*  NULL: configured but unavailable        */
    char unavailable [512];     /*  why, for REJECT 503 and logs            */
    held_t *held;
    size_t held_count, held_cap;
    ptrvec_t held_sessions;     /*  session_t * with durable_held set       */
    ptrvec_t channels;          /*  dchan_t * of live durable channels      */
    ptrvec_t feed;              /*  dchan_t * to feed at the end of the batch */
    slot_t *slots;
    size_t slot_count, slot_cap;
    uint64_t feeds;             /*  channels fed (or tried): CTL stats      */
    bool slot_lost;             /*  no memory for a slot: wake every channel */
    char reason [300];
    uint64_t rejected;          /*  PUBs rejected because a commit failed   */
    int64_t last_tick_ms;
};

/*  ---- streams --------------------------------------------------------- */

/*  Whether every topic matching `pattern` also matches `cover`: token by
    token, `#` in cover takes the rest, `*` in cover takes any one token
    (but not a `#` of the pattern), a literal takes only itself.             */
static bool
s_covers (const char *cover, const char *pattern)
{
    while (true) {
        const char *cend = strchr (cover, '.'), *pend = strchr (pattern, '.');
        size_t clen = cend ? (size_t) (cend - cover) : strlen (cover);
        size_t plen = pend ? (size_t) (pend - pattern) : strlen (pattern);
        if (clen == 1 && cover [0] == '#')
            return true;
        if (plen == 1 && pattern [0] == '#')
            return false;
        if (!(clen == 1 && cover [0] == '*')
        &&  (clen != plen || memcmp (cover, pattern, clen) != 0
             || (plen == 1 && pattern [0] == '*')))
            return false;
        if (!cend || !pend) {
            //  Both must end together ("a.#" also covers "a" itself).
            if (!cend && !pend)
                return true;
            return cend && strcmp (cend + 1, "#") == 0;
        }
        cover = cend + 1;
        pattern = pend + 1;
    }
}

static bool
s_stream_matches (const stream_config_t *sc, const char *topic, size_t len)
{
    for (int i = 0; i < sc->pattern_count; i++)
        if (busp_pattern_match (sc->patterns [i], strlen (sc->patterns [i]), topic, len))
            return true;
    return false;
}

/*  The configured stream covering a SUB pattern, or NULL.                  */
static store_stream_t *
s_stream_for_pattern (durable_t *self, const char *pattern)
{
    for (size_t i = 0; ; i++) {
        store_stream_t *stream = store_stream_at (self->store, i);
        if (!stream)
            return NULL;
        const stream_config_t *sc = store_stream_config (stream);
        for (int p = 0; p < sc->pattern_count; p++)
            if (s_covers (sc->patterns [p], pattern))
                return stream;
    }
}

static bool
s_configured (const config_t *config, const char *name)
{
    for (int i = 0; i < config->stream_count; i++)
        if (strcmp (config->streams [i].name, name) == 0)
            return true;
    return false;
}

static void
s_open_streams (durable_t *self, const config_t *config)
{
    for (int i = 0; i < config->stream_count; i++) {
        const stream_config_t *sc = &config->streams [i];
        bool existed = store_stream_find (self->store, sc->name) != NULL;
        store_stream_t *stream;
        int rc = store_stream_open (self->store, sc, &stream);
        if (rc) {
            log_error ("stream '%s': cannot open: %s", sc->name, store_last_error (self->store));
            continue;
        }
        size_t cursors = 0;
        while (store_cursor_at (stream, cursors))
            cursors++;
        if (!existed)
            log_notice ("stream '%s' (%s%s, sync %s): %llu events, seq %llu..%llu, %zu cursor%s",
                        sc->name, sc->patterns [0], sc->pattern_count > 1 ? " ..." : "",
                        store_sync_name (sc->sync),
                        (unsigned long long) store_stream_events (stream),
                        (unsigned long long) store_stream_first (stream),
                        (unsigned long long) store_stream_last (stream),
                        cursors, cursors == 1 ? "" : "s");
    }
}

/*  ---- dedup and dead letters back from the store ------------------------ */

static void
s_dedup_load_one (const char *topic, size_t topic_len, const char *msg_id, size_t msg_id_len,
                  int64_t ts_ms, void *arg)
{
    broker_t *broker = arg;
    //  The window is kept on the monotonic clock; move the wall-clock
    //  acceptance time onto it.
    int64_t age = broker->now_wall_us / 1000 - ts_ms;
    dedup_add (broker->dedup, topic, topic_len, msg_id, msg_id_len,
               broker->now_ms - (age > 0 ? age : 0));
}

static void
s_dlq_load_one (const store_dlq_t *entry, void *arg)
{
    broker_t *broker = arg;
    const store_event_t *se = &entry->event;
    zmq_msg_t payload, headers;
    zmq_msg_init_size (&payload, se->payload_len);
    if (se->payload_len)
        memcpy (zmq_msg_data (&payload), se->payload, se->payload_len);
    zmq_msg_init_size (&headers, se->headers_len);
    if (se->headers_len)
        memcpy (zmq_msg_data (&headers), se->headers, se->headers_len);
    event_t *ev = event_new (se->topic, se->topic_len, se->msg_id, se->msg_id_len, &payload,
                             se->headers_len ? &headers : NULL, se->ts_us);
    zmq_msg_close (&payload);
    zmq_msg_close (&headers);
    if (!ev)
        return;
    ev->stream_seq = entry->original_seq;
    dlq_restore (broker->dlq, entry->id, ev, entry->reason, entry->attempts,
                 entry->subscription, entry->ts_us);
    event_unref (&ev);
}

static void s_dlq_on_add (uint64_t id, void *arg);
static void s_dlq_on_remove (uint64_t id, void *arg);

int
durable_open (broker_t *self)
{
    const config_t *config = self->config;
    if (!config->data_dir) {
        log_notice ("no data_dir: running memory-only (events, cursors, dead letters and the "
                    "dedup window do not survive a restart; set \"data_dir\" and \"streams\" "
                    "in busd.json for durable streams)");
        return 0;
    }
    durable_t *d = calloc (1, sizeof (durable_t));
    if (!d)
        return -ENOMEM;
    d->broker = self;
    self->durable = d;
    int rc = 0;
    d->store = store_open (config->data_dir,
                           config->store_map_size ? (uint64_t) config->store_map_size : INITIAL_MAP,
                           d->unavailable, sizeof d->unavailable, &rc);
    if (!d->store) {
        log_error ("durable streams unavailable: %s; PUBs to stream topics are rejected (503) "
                   "until the directory is usable and busd restarts", d->unavailable);
        return 0;
    }
    store_set_dedup_window (d->store, config->dedup_window_ms);
    store_set_max_size (d->store, (uint64_t) config->store_max_size);
    s_open_streams (d, config);
    broker_clock (self);
    rc = store_dedup_load (d->store, self->now_wall_us / 1000 - config->dedup_window_ms,
                           s_dedup_load_one, self);
    if (rc)
        log_error ("data_dir %s: cannot read the dedup window: %s", config->data_dir,
                   strerror (-rc));
    rc = store_dlq_load (d->store, s_dlq_load_one, self);
    if (rc)
        log_error ("data_dir %s: cannot read dead letters: %s", config->data_dir, strerror (-rc));
    dlq_set_listener (self->dlq, s_dlq_on_add, s_dlq_on_remove, self);
    //  Limits lowered since the last run: evict now, and forget in the store.
    dlq_configure (self->dlq, (size_t) config->dlq_max_count, (size_t) config->dlq_max_bytes);
    log_notice ("data_dir %s: %d stream%s, %zu dead letter%s, %zu dedup entr%s restored",
                config->data_dir, config->stream_count, config->stream_count == 1 ? "" : "s",
                dlq_size (self->dlq), dlq_size (self->dlq) == 1 ? "" : "s",
                dedup_size (self->dedup), dedup_size (self->dedup) == 1 ? "y" : "ies");
    return 0;
}

void
durable_close (broker_t *self)
{
    durable_t *d = self->durable;
    if (!d)
        return;
    if (d->store) {
        durable_flush (self);
        dlq_set_listener (self->dlq, NULL, NULL, NULL);
        store_destroy (&d->store);
    }
    for (size_t i = 0; i < d->held_count; i++)
        event_unref (&d->held [i].event);
    free (d->held);
    ptrvec_free (&d->held_sessions);
    //  Channels are gone by now (sessions ended first); free what is left.
    for (size_t i = 0; i < d->channels.size; i++) {
        dchan_t *dc = d->channels.items [i];
        dc->channel->durable = NULL;
        free (dc);
    }
    ptrvec_free (&d->channels);
    ptrvec_free (&d->feed);
    for (size_t i = 0; i < d->slot_count; i++)
        ptrvec_free (&d->slots [i].waiters);
    free (d->slots);
    free (d);
    self->durable = NULL;
}

void
durable_apply_config (broker_t *self, const config_t *config)
{
    durable_t *d = self->durable;
    if (!d || !d->store)
        return;
    store_set_dedup_window (d->store, config->dedup_window_ms);
    store_set_max_size (d->store, (uint64_t) config->store_max_size);
    s_open_streams (d, config);
    for (size_t i = 0; ; i++) {
        store_stream_t *stream = store_stream_at (d->store, i);
        if (!stream)
            break;
        if (!s_configured (config, store_stream_name (stream)))
            log_warning ("stream '%s' is no longer configured: its data is kept and it still "
                         "stores events until busd restarts; `busd-ctl stream delete %s` "
                         "removes it", store_stream_name (stream), store_stream_name (stream));
    }
}

/*  ---- the PUB path -------------------------------------------------------- */

const char *
durable_reason (broker_t *self)
{
    return self->durable ? self->durable->reason : "";
}

static int
s_held_push (durable_t *self, session_t *session, uint64_t pub_seq, event_t *ev, bool stored)
{
    if (self->held_count == self->held_cap) {
        size_t cap = self->held_cap ? self->held_cap * 2 : 1024;
        held_t *held = realloc (self->held, cap * sizeof (held_t));
        if (!held)
            return -ENOMEM;
        self->held = held;
        self->held_cap = cap;
    }
    self->held [self->held_count++] = (held_t) { session, pub_seq, event_ref (ev), stored, false };
    if (!session->durable_held) {
        session->durable_held = true;
        ptrvec_push (&self->held_sessions, session);
    }
    return 0;
}

int
durable_hold_duplicate (broker_t *self, session_t *session, uint64_t pub_seq,
                        const char *topic, size_t topic_len, const char *msg_id, size_t msg_id_len)
{
    durable_t *d = self->durable;
    if (!d)
        return 0;
    //  Only a repeat of an event stored in this very batch is at stake:
    //  anything older is committed, and its repeat is a plain duplicate.
    for (size_t i = 0; i < d->held_count; i++) {
        held_t *h = &d->held [i];
        const event_t *ev = h->event;
        if (!h->stored || ev->topic_len != topic_len || ev->msg_id_len != msg_id_len
        ||  memcmp (ev->topic, topic, topic_len) || memcmp (ev->msg_id, msg_id, msg_id_len))
            continue;
        if (s_held_push (d, session, pub_seq, h->event, false))
            return -ENOMEM;
        d->held [d->held_count - 1].duplicate = true;
        return 1;
    }
    return 0;
}

/*  The stream's slot, created on first use; NULL when out of memory.       */
static slot_t *
s_slot (durable_t *self, store_stream_t *stream)
{
    for (size_t i = 0; i < self->slot_count; i++)
        if (self->slots [i].stream == stream)
            return &self->slots [i];
    if (self->slot_count == self->slot_cap) {
        size_t cap = self->slot_cap ? self->slot_cap * 2 : 8;
        slot_t *slots = realloc (self->slots, cap * sizeof (slot_t));
        if (!slots)
            return NULL;
        self->slots = slots;
        self->slot_cap = cap;
    }
    slot_t *slot = &self->slots [self->slot_count++];
    *slot = (slot_t) { .stream = stream };
    return slot;
}

/*  A stream that goes away takes its slot along (its waiters have gone
    with its channels), so a new stream at the same address starts clean.  */
static void
s_slot_drop (durable_t *self, store_stream_t *stream)
{
    for (size_t i = 0; i < self->slot_count; i++)
        if (self->slots [i].stream == stream) {
            ptrvec_free (&self->slots [i].waiters);
            self->slots [i] = self->slots [--self->slot_count];
            return;
        }
}

static void
s_want_feed (durable_t *self, dchan_t *dc)
{
    if (!dc->listed && ptrvec_push (&self->feed, dc) == 0)
        dc->listed = true;
}

/*  Forget dc in the feed list and its stream's waiters (it is going).      */
static void
s_unlist (durable_t *self, dchan_t *dc)
{
    if (dc->listed)
        ptrvec_remove (&self->feed, dc);
    dc->listed = false;
    if (dc->waiting) {
        slot_t *slot = s_slot (self, dc->stream);
        if (slot)
            ptrvec_remove (&slot->waiters, dc);
    }
    dc->waiting = false;
}

void
durable_want_feed (channel_t *channel)
{
    durable_t *d = channel->broker->durable;
    if (d && channel->durable)
        s_want_feed (d, channel->durable);
}

int
durable_hold (broker_t *self, session_t *session, uint64_t pub_seq, event_t *ev)
{
    durable_t *d = self->durable;
    const config_t *config = self->config;
    if (!d->store) {
        for (int i = 0; i < config->stream_count; i++)
            if (s_stream_matches (&config->streams [i], ev->topic, ev->topic_len)) {
                snprintf (d->reason, sizeof d->reason, "durable store unavailable: %.250s",
                          d->unavailable);
                return BUSP_E_SHUTDOWN;
            }
        return 0;
    }
    uint64_t first_seq = 0;
    for (size_t i = 0; ; i++) {
        store_stream_t *stream = store_stream_at (d->store, i);
        if (!stream)
            break;
        if (!s_stream_matches (store_stream_config (stream), ev->topic, ev->topic_len))
            continue;
        const void *headers = ev->headers_data;
        size_t headers_len = ev->headers_size;
        uint64_t seq = store_append (d->store, stream, ev->ts_us, ev->topic, ev->topic_len,
                                     ev->msg_id, ev->msg_id_len, headers, headers_len,
                                     ev->payload_data, ev->payload_size);
        if (seq == 0) {
            snprintf (d->reason, sizeof d->reason, "out of memory queueing for stream '%s'",
                      store_stream_name (stream));
            return BUSP_E_INTERNAL;
        }
        if (!first_seq)
            first_seq = seq;
        slot_t *slot = s_slot (d, stream);
        if (slot)
            slot->appended = true;
        else
            d->slot_lost = true;
    }
    if (!first_seq && store_stream_at (d->store, (size_t) config->stream_count - 1) == NULL
    &&  config->stream_count > 0) {
        //  A configured stream that could not be opened covers it: refuse
        //  rather than acknowledge what would not be stored.
        for (int i = 0; i < config->stream_count; i++)
            if (!store_stream_find (d->store, config->streams [i].name)
            &&  s_stream_matches (&config->streams [i], ev->topic, ev->topic_len)) {
                snprintf (d->reason, sizeof d->reason, "stream '%s' is not open: %.200s",
                          config->streams [i].name, store_last_error (d->store));
                return BUSP_E_SHUTDOWN;
            }
    }
    if (!first_seq) {
        //  Not stored, but behind a held event of the same publisher: it
        //  waits too, to keep the publisher's order.
        if (!session->durable_held)
            return 0;
        if (s_held_push (d, session, pub_seq, ev, false)) {
            snprintf (d->reason, sizeof d->reason, "out of memory");
            return BUSP_E_INTERNAL;
        }
        return 1;
    }
    ev->stream_seq = first_seq;
    if (ev->msg_id_len)
        store_dedup_add (d->store, ev->topic, ev->topic_len, ev->msg_id, ev->msg_id_len,
                         self->now_wall_us / 1000);
    if (s_held_push (d, session, pub_seq, ev, true)) {
        snprintf (d->reason, sizeof d->reason, "out of memory");
        return BUSP_E_INTERNAL;
    }
    return 1;
}

static void
s_reject (broker_t *self, session_t *session, uint64_t pub_seq, uint16_t code,
          const char *reason)
{
    self->stats.rejected++;
    session->rejected++;
    if (session->dead)
        return;
    busp_header_t r = { .command = BUSP_REJECT, .seq = pub_seq, .code = code,
                        .name = busp_str (reason) };
    wire_send (self, session, &r, NULL, NULL);
}

void
durable_flush (broker_t *self)
{
    durable_t *d = self->durable;
    if (!d || !d->store)
        return;
    if (!store_pending (d->store) && d->held_count == 0)
        return;
    int rc = store_commit (d->store);
    uint16_t code = rc ? store_reject_code (rc) : 0;
    char reason [300];
    if (rc) {
        snprintf (reason, sizeof reason, "not stored: %.250s", store_last_error (d->store));
        size_t stored = 0;
        for (size_t i = 0; i < d->held_count; i++)
            stored += d->held [i].stored;
        log_error ("durable commit failed: %s; %zu PUB%s rejected with %u", store_last_error (d->store),
                   stored, stored == 1 ? "" : "s", code);
    }
    //  Drain the list before routing: routing may end subscriptions, never
    //  hold more events, but keep the loop simple and re-entrancy-proof.
    held_t *held = d->held;
    size_t count = d->held_count;
    d->held = NULL;
    d->held_count = d->held_cap = 0;
    for (size_t i = 0; i < count; i++) {
        held_t *h = &held [i];
        if (rc && h->stored) {
            self->stats.accepted--;
            h->session->accepted--;
            d->rejected++;
            if (h->event->msg_id_len)
                dedup_remove (self->dedup, h->event->topic, h->event->topic_len, h->event->msg_id, h->event->msg_id_len);
            s_reject (self, h->session, h->pub_seq, code, reason);
        }
        else
        if (h->duplicate) {
            //  A repeat of an event stored in this batch: acknowledged as
            //  a duplicate if that one was stored, refused with it if not.
            if (rc) {
                self->stats.duplicates--;
                d->rejected++;
                s_reject (self, h->session, h->pub_seq, code, reason);
            }
        }
        else
        if (route_event (self, h->event, h->session) == 0)
            self->stats.unrouted++;
        event_unref (&h->event);
    }
    free (held);
    for (size_t i = 0; i < d->held_sessions.size; i++) {
        session_t *session = d->held_sessions.items [i];
        session->durable_held = false;
    }
    d->held_sessions.size = 0;
    //  New events are readable now: wake the channels waiting on the
    //  streams this batch appended to (the others are woken by what they
    //  wait for: credit, an ACK, a member).
    if (d->slot_lost) {
        d->slot_lost = false;
        for (size_t i = 0; i < d->channels.size; i++)
            s_want_feed (d, d->channels.items [i]);
    }
    for (size_t i = 0; i < d->slot_count; i++) {
        slot_t *slot = &d->slots [i];
        if (!slot->appended)
            continue;
        slot->appended = false;
        for (size_t k = 0; k < slot->waiters.size; k++) {
            dchan_t *dc = slot->waiters.items [k];
            dc->waiting = false;
            if (!dc->channel->dead)
                channel_mark_dirty (dc->channel);
        }
        slot->waiters.size = 0;
    }
}

/*  ---- durable channels ------------------------------------------------------ */

typedef struct {
    durable_t *durable;
    dchan_t *dc;
    size_t fed;
} feed_ctx_t;

static int
s_feed_one (const store_event_t *se, void *arg)
{
    feed_ctx_t *ctx = arg;
    dchan_t *dc = ctx->dc;
    dc->read_pos = se->seq + 1;
    if (store_cursor_acked (dc->cursor, se->seq))
        return 0;
    const char *pattern = dc->channel->pattern;
    if (!busp_pattern_match (pattern, strlen (pattern), se->topic, se->topic_len))
        return 0;
    zmq_msg_t payload, headers;
    if (zmq_msg_init_size (&payload, se->payload_len))
        return 1;
    if (se->payload_len)
        memcpy (zmq_msg_data (&payload), se->payload, se->payload_len);
    zmq_msg_init_size (&headers, se->headers_len);
    if (se->headers_len)
        memcpy (zmq_msg_data (&headers), se->headers, se->headers_len);
    event_t *ev = event_new (se->topic, se->topic_len, se->msg_id, se->msg_id_len, &payload,
                             se->headers_len ? &headers : NULL, se->ts_us);
    zmq_msg_close (&payload);
    zmq_msg_close (&headers);
    if (!ev) {
        dc->read_pos = se->seq;         /*  read it again next time         */
        return 1;
    }
    ev->stream_seq = se->seq;
    channel_feed (dc->channel, ev, store_cursor_attempts (dc->cursor, se->seq));
    ctx->fed++;
    return 0;
}

/*  Top the channel's window up from the store; true when it fed any.       */
static bool
s_feed (durable_t *self, dchan_t *dc)
{
    channel_t *channel = dc->channel;
    if (channel->dead || !channel_has_ready_member (channel))
        return false;
    size_t waiting = queue_len (channel->queue);
    if (waiting >= FEED_LOW)
        return false;
    uint64_t first = store_stream_first (dc->stream);
    if (dc->read_pos < first) {
        //  Retention removed events this cursor had not read: GAP.
        uint64_t lost = first - dc->read_pos
                      - store_cursor_acked_between (dc->cursor, dc->read_pos, first);
        if (lost) {
            channel->pending_gap += lost;
            channel->dropped += lost;
            self->broker->stats.dropped += lost;
            log_notice ("durable '%s' on stream '%s': %llu unread events were removed by "
                        "retention (GAP)", dc->name, store_stream_name (dc->stream),
                        (unsigned long long) lost);
        }
        store_cursor_skip_to (self->store, dc->cursor, first);
        dc->read_pos = first;
    }
    if (dc->read_pos > store_stream_last (dc->stream)) {
        //  Read everything: wait for the next commit to this stream.
        slot_t *slot = dc->waiting ? NULL : s_slot (self, dc->stream);
        if (slot && ptrvec_push (&slot->waiters, dc) == 0)
            dc->waiting = true;
        return false;
    }
    feed_ctx_t ctx = { self, dc, 0 };
    //  Read at most the window; events other patterns match are skipped,
    //  so a sparse pattern may need a few rounds (bounded per round).
    int rc = store_read (self->store, dc->stream, dc->read_pos, FEED_HIGH - waiting,
                         s_feed_one, &ctx);
    if (rc < 0)
        log_error ("durable '%s': reading stream '%s' failed: %s", dc->name,
                   store_stream_name (dc->stream), strerror (-rc));
    if (ctx.fed)
        channel_mark_dirty (channel);
    return ctx.fed > 0 || (rc > 0 && dc->read_pos <= store_stream_last (dc->stream));
}

void
durable_end_batch (broker_t *self)
{
    durable_t *d = self->durable;
    if (!d || !d->store)
        return;
    durable_flush (self);
    //  Feeding marks channels dirty, which lists them again: take the list
    //  as it is now, the next call (the end-of-batch loop runs until
    //  nothing is left) feeds what this one listed.
    ptrvec_t feed = d->feed;
    d->feed = (ptrvec_t) { 0 };
    for (size_t i = 0; i < feed.size; i++) {
        dchan_t *dc = feed.items [i];
        dc->listed = false;
    }
    for (size_t i = 0; i < feed.size; i++) {
        dchan_t *dc = feed.items [i];
        d->feeds++;
        //  Skipped-only rounds (other topics) continue, a few at a time;
        //  one that still has more to read stays listed.
        bool more = false;
        for (int round = 0; round < 4 && (more = s_feed (d, dc)); round++)
            if (queue_len (dc->channel->queue) > 0)
                break;
        if (more && queue_len (dc->channel->queue) == 0)
            s_want_feed (d, dc);
    }
    ptrvec_free (&feed);
}

void
durable_tick (broker_t *self)
{
    durable_t *d = self->durable;
    if (!d || !d->store)
        return;
    int rc = store_tick (d->store, self->now_ms, self->now_wall_us);
    if (rc)
        log_error ("durable store: %s", store_last_error (d->store));
    //  Retention may have removed what a cursor had not read: its channel
    //  reports the GAP on the next feed.
    //  Also a safety net at the tick's pace: a channel behind its stream
    //  with a member ready (room freed elsewhere under max_queued_bytes
    //  marks nothing) is fed again.
    for (size_t i = 0; i < d->channels.size; i++) {
        dchan_t *dc = d->channels.items [i];
        if (dc->channel->dead)
            continue;
        if (dc->read_pos < store_stream_first (dc->stream)
        ||  (!dc->listed && dc->read_pos <= store_stream_last (dc->stream)
             && queue_len (dc->channel->queue) < FEED_LOW
             && channel_has_ready_member (dc->channel)))
            channel_mark_dirty (dc->channel);
    }
}

void
durable_delivered (channel_t *channel, const event_t *ev, uint16_t attempt)
{
    dchan_t *dc = channel->durable;
    durable_t *d = channel->broker->durable;
    if (dc && d && d->store && ev->stream_seq)
        store_cursor_delivered (d->store, dc->cursor, ev->stream_seq, attempt);
}

void
durable_acked (channel_t *channel, const event_t *ev)
{
    dchan_t *dc = channel->durable;
    durable_t *d = channel->broker->durable;
    if (dc && d && d->store && ev->stream_seq)
        store_cursor_ack (d->store, dc->cursor, ev->stream_seq);
}

const char *
durable_channel_name (const channel_t *channel)
{
    const dchan_t *dc = channel->durable;
    return dc ? dc->name : NULL;
}

void
durable_channel_free (channel_t *channel)
{
    dchan_t *dc = channel->durable;
    durable_t *d = channel->broker->durable;
    if (!dc)
        return;
    if (d) {
        ptrvec_remove (&d->channels, dc);
        s_unlist (d, dc);
    }
    channel->durable = NULL;
    free (dc);
}

uint64_t
durable_next_seq (broker_t *self, const char *pattern)
{
    durable_t *d = self->durable;
    if (!d || !d->store)
        return 0;
    store_stream_t *stream = s_stream_for_pattern (d, pattern);
    return stream ? store_stream_next (stream) : 0;
}

/*  ---- SUB with "durable" ------------------------------------------------- */


/*  RFC 3339 ("2026-12-01T04:00:00Z", fractions and offsets allowed) to µs
    since the epoch; -1 when it does not parse.                              */
static int64_t
s_rfc3339_us (const char *text)
{
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    const char *p = strptime (text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime (text, "%Y-%m-%d %H:%M:%S", &tm);
    if (!p)
        return -1;
    int64_t us = 0;
    if (*p == '.') {
        int64_t scale = 100000;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            us += (*p - '0') * scale;
            scale /= 10;
        }
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int hh, mm;
        if (sscanf (p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -1;
        offset_s = sign * (hh * 3600 + mm * 60);
        p += 6;
    }
    else
        return -1;
    if (*p)
        return -1;
    time_t t = timegm (&tm);
    return ((int64_t) t - offset_s) * 1000000 + us;
}

/*  The `from` option of the SUB body (validated by subopts already).       */
static int
s_parse_from (const void *body, size_t size, store_from_t *from, int64_t *value)
{
    *from = STORE_FROM_NEW;
    *value = 0;
    if (!body || !size)
        return 0;
    cJSON *root = cJSON_ParseWithLength (body, size);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (root, "from");
    int rc = 0;
    if (cJSON_IsString (item)) {
        if (streq (item->valuestring, "first"))
            *from = STORE_FROM_FIRST;
        else
        if (streq (item->valuestring, "last"))
            *from = STORE_FROM_LAST;
    }
    else
    if (cJSON_IsObject (item)) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive (item, "seq");
        const cJSON *time = cJSON_GetObjectItemCaseSensitive (item, "time");
        if (cJSON_IsNumber (seq)) {
            *from = STORE_FROM_SEQ;
            //  subopts allows any u64; beyond int64 is past every stream.
            *value = seq->valuedouble < 9e18 ? (int64_t) seq->valuedouble : INT64_MAX;
        }
        else
        if (cJSON_IsString (time)) {
            *from = STORE_FROM_TIME;
            *value = s_rfc3339_us (time->valuestring);
            if (*value < 0)
                rc = -EINVAL;
        }
    }
    cJSON_Delete (root);
    return rc;
}

void
durable_subscribe (broker_t *self, session_t *session, uint32_t sub_id, const char *pattern,
                   const subopts_t *opts, const void *body, size_t size)
{
    durable_t *d = self->durable;
    char reason [400];
    if (!d) {
        wire_send_subend (self, session, sub_id, BUSP_E_NOT_FOUND,
                  "no durable stream covers the pattern (the broker has no data_dir)");
        return;
    }
    if (!d->store) {
        snprintf (reason, sizeof reason, "durable store unavailable: %.300s", d->unavailable);
        wire_send_subend (self, session, sub_id, BUSP_E_SHUTDOWN, reason);
        return;
    }
    store_stream_t *stream = s_stream_for_pattern (d, pattern);
    if (!stream) {
        snprintf (reason, sizeof reason, "no durable stream covers the pattern '%.200s'", pattern);
        wire_send_subend (self, session, sub_id, BUSP_E_NOT_FOUND, reason);
        return;
    }
    store_from_t from;
    int64_t value;
    if (s_parse_from (body, size, &from, &value)) {
        wire_send_subend (self, session, sub_id, BUSP_E_MALFORMED,
                  "option 'from': time must be RFC 3339 like \"2026-12-01T04:00:00Z\"");
        return;
    }
    const char *group = opts->has_group ? opts->group : "";
    store_cursor_t *cursor = store_cursor_find (stream, opts->durable);
    if (cursor && strcmp (store_cursor_group (cursor), group) != 0) {
        if (*store_cursor_group (cursor))
            snprintf (reason, sizeof reason, "durable '%.100s' is the cursor of group '%.100s'",
                      opts->durable, store_cursor_group (cursor));
        else
            snprintf (reason, sizeof reason, "durable '%.100s' is not a group's cursor (no 'group')",
                      opts->durable);
        wire_send_subend (self, session, sub_id, BUSP_E_CONFLICT, reason);
        return;
    }
    char key [600];
    snprintf (key, sizeof key, "\x1d%s\x1d%s", store_stream_name (stream), opts->durable);
    channel_t *channel = zhashx_lookup (self->groups, key);
    if (channel && !opts->has_group) {
        snprintf (reason, sizeof reason, "durable name '%.200s' is held by another subscription",
                  opts->durable);
        wire_send_subend (self, session, sub_id, BUSP_E_CONFLICT, reason);
        return;
    }
    bool created = false;
    if (!cursor
    &&  store_cursor_count (stream) >= (size_t) store_stream_config (stream)->max_cursors) {
        snprintf (reason, sizeof reason, "stream '%s' has max_cursors %lld durable cursors: "
                  "reuse a durable name, or raise max_cursors",
                  store_stream_name (stream), (long long) store_stream_config (stream)->max_cursors);
        wire_send_subend (self, session, sub_id, BUSP_E_LIMIT, reason);
        return;
    }
    if (!cursor) {
        uint64_t start = from == STORE_FROM_SEQ
                       ? (value > 0 ? (uint64_t) value : 1)
                       : store_resolve_from (d->store, stream, from, value);
        int rc = store_cursor_open (d->store, stream, opts->durable, group, start, &cursor,
                                    &created);
        if (rc) {
            wire_send_subend (self, session, sub_id, BUSP_E_INTERNAL, "out of memory");
            return;
        }
    }
    sub_t *sub = sub_new (session, sub_id, pattern);
    if (!sub) {
        wire_send_subend (self, session, sub_id, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    sub->credit = opts->credit < (uint64_t) self->config->max_credit
                ? opts->credit : (uint64_t) self->config->max_credit;
    sub->ack_explicit = true;           //  a durable subscription implies it
    sub->ack_wait_ms = opts->ack_wait_ms;
    sub->max_deliver = opts->max_deliver;
    if (!channel) {
        dchan_t *dc = calloc (1, sizeof (dchan_t));
        channel = dc ? channel_new (self, pattern, opts->has_group ? opts->group : NULL,
                                    POLICY_BLOCK, opts->queue_limit, opts->queue_bytes)
                     : NULL;
        if (channel)
            channel->key = strdup (key);
        if (!channel || !channel->key || ptrvec_push (&d->channels, dc)) {
            free (dc);
            if (channel)
                channel->durable = NULL;
            channel_free (&channel);
            sub_free (&sub);
            wire_send_subend (self, session, sub_id, BUSP_E_INTERNAL, "out of memory");
            return;
        }
        dc->channel = channel;
        dc->stream = stream;
        dc->cursor = cursor;
        dc->read_pos = store_cursor_floor (cursor);
        snprintf (dc->name, sizeof dc->name, "%s", opts->durable);
        channel->durable = dc;
        zhashx_insert (self->groups, key, channel);
        channel_register (channel);
    }
    zhashx_insert (session->subs, (void *) ((uintptr_t) sub_id + 1), sub);
    channel_add_member (channel, sub);

    uint64_t floor = store_cursor_floor (cursor), first = store_stream_first (stream);
    uint64_t seen = floor > first ? floor : first;
    busp_header_t ok = { .command = BUSP_SUBOK, .sub_id = sub_id };
    cJSON *info = cJSON_CreateObject ();
    cJSON_AddNumberToObject (info, "stream_seq", (double) seen);
    cJSON_AddStringToObject (info, "pattern", pattern);
    cJSON_AddNumberToObject (info, "credit", (double) sub->credit);
    cJSON_AddStringToObject (info, "ack", "explicit");
    cJSON_AddStringToObject (info, "overflow", policy_name (channel->policy));
    cJSON_AddNumberToObject (info, "queue_limit", channel->queue_limit);
    cJSON_AddStringToObject (info, "stream", store_stream_name (stream));
    cJSON_AddStringToObject (info, "durable", opts->durable);
    cJSON_AddBoolToObject (info, "created", created);
    cJSON_AddNumberToObject (info, "lag", (double) store_cursor_lag (cursor));
    if (opts->has_group) {
        cJSON_AddStringToObject (info, "group", opts->group);
        cJSON_AddNumberToObject (info, "members", (double) channel->members.size);
    }
    wire_send_json (self, session, &ok, info);
    cJSON_Delete (info);
    log_debug ("client %s: durable '%s' on stream '%s' from seq %llu%s", session->name,
               opts->durable, store_stream_name (stream), (unsigned long long) seen,
               created ? " (new cursor)" : "");
    channel_mark_dirty (channel);
}

/*  ---- dead letters ----------------------------------------------------- */

static void
s_dlq_on_add (uint64_t id, void *arg)
{
    durable_dlq_added (arg, id);
}

static void
s_dlq_on_remove (uint64_t id, void *arg)
{
    durable_dlq_removed (arg, id);
}

void
durable_dlq_added (broker_t *self, uint64_t id)
{
    durable_t *d = self->durable;
    if (!d || !d->store)
        return;
    dlq_entry_t *entry = dlq_find (self->dlq, id);
    if (!entry)
        return;
    const event_t *ev = entry->original;
    store_dlq_t rec = {
        .id = id, .ts_us = entry->ts_us, .attempts = entry->attempts,
        .original_seq = entry->original_seq, .reason = entry->reason,
        .subscription = entry->subscription,
        .event = {
            .ts_us = ev->ts_us, .topic = ev->topic, .topic_len = ev->topic_len,
            .msg_id = ev->msg_id, .msg_id_len = ev->msg_id_len,
            .headers = ev->headers_data,
            .headers_len = ev->headers_size,
            .payload = ev->payload_data,
            .payload_len = ev->payload_size
        }
    };
    if (store_dlq_put (d->store, &rec))
        log_error ("dead letter %llu: cannot queue it for the store (out of memory)",
                   (unsigned long long) id);
}

void
durable_dlq_removed (broker_t *self, uint64_t id)
{
    durable_t *d = self->durable;
    if (d && d->store && store_dlq_del (d->store, id))
        log_error ("dead letter %llu: cannot queue its removal (out of memory)",
                   (unsigned long long) id);
}

/*  ---- CTL and metrics ------------------------------------------------- */

static cJSON *
s_stream_json (durable_t *d, store_stream_t *stream)
{
    const stream_config_t *sc = store_stream_config (stream);
    cJSON *s = cJSON_CreateObject ();
    cJSON_AddStringToObject (s, "name", sc->name);
    cJSON *patterns = cJSON_AddArrayToObject (s, "patterns");
    for (int i = 0; i < sc->pattern_count; i++)
        cJSON_AddItemToArray (patterns, cJSON_CreateString (sc->patterns [i]));
    cJSON_AddNumberToObject (s, "events", (double) store_stream_events (stream));
    cJSON_AddNumberToObject (s, "bytes", (double) store_stream_bytes (stream));
    cJSON_AddNumberToObject (s, "first_seq", (double) store_stream_first (stream));
    cJSON_AddNumberToObject (s, "last_seq", (double) store_stream_last (stream));
    cJSON_AddNumberToObject (s, "expired", (double) store_stream_expired (stream));
    cJSON_AddStringToObject (s, "sync", store_sync_name (sc->sync));
    if (sc->sync == STREAM_SYNC_INTERVAL)
        cJSON_AddNumberToObject (s, "sync_interval_ms", (double) sc->sync_interval_ms);
    cJSON_AddNumberToObject (s, "max_events", (double) sc->max_events);
    cJSON_AddNumberToObject (s, "max_bytes", (double) sc->max_bytes);
    cJSON_AddNumberToObject (s, "max_age_ms", (double) sc->max_age_ms);
    cJSON_AddBoolToObject (s, "configured", s_configured (d->broker->config, sc->name));
    cJSON *cursors = cJSON_AddArrayToObject (s, "cursors");
    for (size_t i = 0; ; i++) {
        store_cursor_t *cursor = store_cursor_at (stream, i);
        if (!cursor)
            break;
        cJSON *c = cJSON_CreateObject ();
        cJSON_AddStringToObject (c, "name", store_cursor_name (cursor));
        if (*store_cursor_group (cursor))
            cJSON_AddStringToObject (c, "group", store_cursor_group (cursor));
        else
            cJSON_AddNullToObject (c, "group");
        cJSON_AddNumberToObject (c, "floor", (double) store_cursor_floor (cursor));
        cJSON_AddNumberToObject (c, "lag", (double) store_cursor_lag (cursor));
        cJSON_AddNumberToObject (c, "pending", (double) store_cursor_pending (cursor));
        cJSON_AddNumberToObject (c, "acked_above_floor", (double) store_cursor_acked_above (cursor));
        size_t members = 0;
        for (size_t k = 0; k < d->channels.size; k++) {
            dchan_t *dc = d->channels.items [k];
            if (dc->cursor == cursor)
                members = dc->channel->members.size;
        }
        cJSON_AddNumberToObject (c, "members", (double) members);
        cJSON_AddItemToArray (cursors, c);
    }
    return s;
}

/*  End the live durable channels of a stream (before purge or delete).    */
static void
s_end_channels (durable_t *d, store_stream_t *stream, uint16_t code, const char *why)
{
    size_t i = 0;
    while (i < d->channels.size) {
        dchan_t *dc = d->channels.items [i];
        if (dc->stream == stream && !dc->channel->dead) {
            channel_end_all (dc->channel, code, why);
            //  The channel is dead now and freed at the end of the batch:
            //  make sure nothing reads its cursor in the meantime.
            ptrvec_remove (&d->channels, dc);
            s_unlist (d, dc);
            dc->channel->durable = NULL;
            free (dc);
            continue;
        }
        i++;
    }
}

int
durable_ctl (broker_t *self, const char *cmd, const cJSON *req, cJSON **reply, char *err,
             size_t err_size)
{
    durable_t *d = self->durable;
    *reply = NULL;
    if (streq (cmd, "streams")) {
        cJSON *json = cJSON_CreateObject ();
        cJSON *list = cJSON_AddArrayToObject (json, "streams");
        if (d && d->store)
            for (size_t i = 0; ; i++) {
                store_stream_t *stream = store_stream_at (d->store, i);
                if (!stream)
                    break;
                cJSON_AddItemToArray (list, s_stream_json (d, stream));
            }
        cJSON_AddStringToObject (json, "data_dir", self->config->data_dir ? self->config->data_dir : "");
        if (d && !d->store)
            cJSON_AddStringToObject (json, "error", d->unavailable);
        *reply = json;
        return BUSP_OK;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (req, "name");
    if (!cJSON_IsString (name)) {
        snprintf (err, err_size, "%s needs \"name\" (a stream name)", cmd);
        return BUSP_E_MALFORMED;
    }
    if (!d || !d->store) {
        snprintf (err, err_size, "%s", d ? d->unavailable : "the broker has no data_dir: no streams");
        return d ? BUSP_E_SHUTDOWN : BUSP_E_NOT_FOUND;
    }
    store_stream_t *stream = store_stream_find (d->store, name->valuestring);
    if (streq (cmd, "stream-info")) {
        if (!stream) {
            snprintf (err, err_size, "unknown stream '%.200s'", name->valuestring);
            return BUSP_E_NOT_FOUND;
        }
        *reply = s_stream_json (d, stream);
        return BUSP_OK;
    }
    if (streq (cmd, "stream-purge")) {
        if (!stream) {
            snprintf (err, err_size, "unknown stream '%.200s'", name->valuestring);
            return BUSP_E_NOT_FOUND;
        }
        durable_flush (self);
        uint64_t events = store_stream_events (stream);
        int rc = store_stream_purge (d->store, stream);
        if (rc) {
            snprintf (err, err_size, "purge failed: %s", store_last_error (d->store));
            return store_reject_code (rc) == 507 ? BUSP_E_INTERNAL : BUSP_E_SHUTDOWN;
        }
        log_notice ("stream '%s' purged (%llu events removed)", name->valuestring,
                    (unsigned long long) events);
        cJSON *json = cJSON_CreateObject ();
        cJSON_AddNumberToObject (json, "purged", (double) events);
        *reply = json;
        return BUSP_OK;
    }
    if (streq (cmd, "stream-delete")) {
        durable_flush (self);
        uint64_t events = stream ? store_stream_events (stream) : 0;
        int rc;
        if (stream) {
            s_end_channels (d, stream, BUSP_E_NOT_FOUND, "stream deleted");
            s_slot_drop (d, stream);
            rc = store_stream_delete (d->store, &stream);
        }
        else
            rc = store_stream_delete_name (d->store, name->valuestring);
        if (rc == -ENOENT) {
            snprintf (err, err_size, "unknown stream '%.200s'", name->valuestring);
            return BUSP_E_NOT_FOUND;
        }
        if (rc) {
            snprintf (err, err_size, "delete failed: %s", store_last_error (d->store));
            return BUSP_E_INTERNAL;
        }
        log_notice ("stream '%s' deleted (%llu events, its cursors)", name->valuestring,
                    (unsigned long long) events);
        //  Still configured: it starts again, empty.
        bool recreated = s_configured (self->config, name->valuestring);
        if (recreated)
            s_open_streams (d, self->config);
        cJSON *json = cJSON_CreateObject ();
        cJSON_AddNumberToObject (json, "deleted", (double) events);
        cJSON_AddBoolToObject (json, "recreated", recreated);
        *reply = json;
        return BUSP_OK;
    }
    snprintf (err, err_size, "unknown cmd '%.200s'", cmd);
    return BUSP_E_MALFORMED;
}

void
durable_metrics (broker_t *self, void (*add) (void *sbuf, const char *fmt, ...), void *sbuf)
{
    durable_t *d = self->durable;
    if (!d || !d->store)
        return;
    static const struct {
        const char *name, *type, *help;
        uint64_t (*value) (const store_stream_t *stream);
    } per_stream [] = {
        { "busd_stream_events", "gauge", "events stored in a durable stream", store_stream_events },
        { "busd_stream_bytes", "gauge", "bytes stored in a durable stream", store_stream_bytes },
        { "busd_stream_last_seq", "gauge", "the newest sequence in a durable stream",
          store_stream_last },
        { "busd_stream_expired_total", "counter", "events removed by retention",
          store_stream_expired }
    };
    for (size_t m = 0; m < sizeof per_stream / sizeof per_stream [0]; m++) {
        add (sbuf, "# HELP %s %s\n# TYPE %s %s\n", per_stream [m].name, per_stream [m].help,
             per_stream [m].name, per_stream [m].type);
        for (size_t i = 0; ; i++) {
            store_stream_t *s = store_stream_at (d->store, i);
            if (!s)
                break;
            add (sbuf, "%s{stream=\"%s\"} %llu\n", per_stream [m].name, store_stream_name (s),
                 (unsigned long long) per_stream [m].value (s));
        }
    }
    add (sbuf, "# HELP busd_cursor_lag events of the stream a durable cursor has not acknowledged\n"
               "# TYPE busd_cursor_lag gauge\n");
    for (size_t i = 0; ; i++) {
        store_stream_t *s = store_stream_at (d->store, i);
        if (!s)
            break;
        for (size_t c = 0; ; c++) {
            store_cursor_t *cursor = store_cursor_at (s, c);
            if (!cursor)
                break;
            add (sbuf, "busd_cursor_lag{stream=\"%s\",cursor=\"%s\"} %llu\n", store_stream_name (s),
                 store_cursor_name (cursor), (unsigned long long) store_cursor_lag (cursor));
        }
    }
    add (sbuf, "# HELP busd_store_commits_total durable store transactions committed\n"
               "# TYPE busd_store_commits_total counter\nbusd_store_commits_total %llu\n"
               "# HELP busd_store_syncs_total durable store fsyncs\n"
               "# TYPE busd_store_syncs_total counter\nbusd_store_syncs_total %llu\n"
               "# HELP busd_store_commit_failures_total commits that failed (PUBs rejected)\n"
               "# TYPE busd_store_commit_failures_total counter\nbusd_store_commit_failures_total %llu\n",
         (unsigned long long) store_commits (d->store), (unsigned long long) store_syncs (d->store),
         (unsigned long long) store_commit_failures (d->store));
}

static size_t
s_stream_count (durable_t *d)
{
    size_t n = 0;
    while (store_stream_at (d->store, n))
        n++;
    return n;
}

void
durable_stats (broker_t *self, cJSON *json)
{
    //  Integers only (busd-ctl stats prints "key integer" lines), and only
    //  when there is a store: memory-only stats stay as they were.
    durable_t *d = self->durable;
    if (!d || !d->store)
        return;
    cJSON_AddNumberToObject (json, "streams", (double) s_stream_count (d));
    cJSON_AddNumberToObject (json, "store_commits", (double) store_commits (d->store));
    cJSON_AddNumberToObject (json, "store_syncs", (double) store_syncs (d->store));
    cJSON_AddNumberToObject (json, "store_commit_failures", (double) store_commit_failures (d->store));
    cJSON_AddNumberToObject (json, "store_rejected", (double) d->rejected);
    cJSON_AddNumberToObject (json, "store_map_size", (double) store_map_size (d->store));
    cJSON_AddNumberToObject (json, "durable_feeds", (double) d->feeds);
}
