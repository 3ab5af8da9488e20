/*  channel.c — a queue with an overflow policy and one or more members.

    A plain subscription and a queue group are the same thing here: a
    channel whose members share one queue.  Fresh events go straight to a
    member with credit when nothing waits (the fast path: no queueing at
    all); otherwise they wait in `queue` under the overflow policy, behind
    `redeliveries`, which no limit refuses.  Throttles are recorded on both
    sides (channel->throttled, session->throttled_by) so either end can
    lift them in time proportional to the few queues involved.               */
#include "broker.h"
#include "clock.h"
#include "durable.h"
#include "timers.h"

#define STALL_RETRY_MS  10      /*  a send refused by the HWM: try again    */

typedef struct {
    channel_t *channel;
    event_t *event;
    uint16_t attempt;
    int64_t due_ms;
} delayed_t;

static int
s_delayed_compare (const void *a, const void *b)
{
    const delayed_t *da = a, *db = b;
    return da->due_ms < db->due_ms ? -1 : (da->due_ms > db->due_ms ? 1 : 0);
}

/*  A delayed event still counts against max_queued_bytes: the client picks
    delay_ms, and an event it NACKs for a day must not leave the cap.  The
    destructor hands the bytes back for whatever is still in the list.      */
static void
s_delayed_destroy (void **item_p)
{
    delayed_t *d = *item_p;
    if (d) {
        if (d->event)
            d->channel->broker->queued_bytes -= event_bytes (d->event);
        event_unref (&d->event);
        free (d);
    }
    *item_p = NULL;
}

/*  The event out of a delayed entry, its bytes no longer counted there.   */
static event_t *
s_delayed_take (delayed_t *d)
{
    event_t *ev = d->event;
    d->event = NULL;
    d->channel->broker->queued_bytes -= event_bytes (ev);
    return ev;
}

channel_t *
channel_new (broker_t *broker, const char *pattern, const char *group,
             policy_t policy, uint32_t queue_limit, uint64_t queue_bytes_limit)
{
    channel_t *self = calloc (1, sizeof (channel_t));
    if (!self)
        return NULL;
    self->broker = broker;
    self->pattern = strdup (pattern);
    self->group = group ? strdup (group) : NULL;
    self->policy = policy;
    self->queue_limit = queue_limit;
    self->queue_bytes_limit = queue_bytes_limit;
    self->queue = queue_new (policy == POLICY_LATEST);
    self->redeliveries = queue_new (false);
    self->delayed = zlistx_new ();
    if (!self->pattern || (group && !self->group) || !self->queue || !self->redeliveries
    ||  !self->delayed) {
        channel_free (&self);
        return NULL;
    }
    zlistx_set_comparator (self->delayed, s_delayed_compare);
    zlistx_set_destructor (self->delayed, s_delayed_destroy);
    return self;
}

/*  broker->all_channels with O(1) removal: ending 100,000 subscriptions
    must not cost 100,000 scans of the list.                                 */
int
channel_register (channel_t *self)
{
    ptrvec_t *all = &self->broker->all_channels;
    int rc = ptrvec_push (all, self);
    if (rc == 0)
        self->all_slot = all->size;
    return rc;
}

static void
s_unregister (channel_t *self)
{
    if (!self->all_slot)
        return;
    ptrvec_t *all = &self->broker->all_channels;
    size_t i = self->all_slot - 1;
    channel_t *last = all->items [--all->size];
    all->items [i] = last;
    last->all_slot = i + 1;
    self->all_slot = 0;
}

void
channel_free (channel_t **self_p)
{
    channel_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (self->broker) {
        s_unregister (self);
        timers_set (self->broker, self, -1);
    }
    if (self->durable)
        durable_channel_free (self);
    else
    if (self->broker && self->pattern)
        trie_remove (self->broker->trie, self->pattern, strlen (self->pattern), self);
    if (self->queue)
        self->broker->queued_bytes -= queue_bytes (self->queue);
    if (self->redeliveries)
        self->broker->queued_bytes -= queue_bytes (self->redeliveries);
    queue_destroy (&self->queue);
    queue_destroy (&self->redeliveries);
    zlistx_destroy (&self->delayed);
    ptrvec_free (&self->members);
    ptrvec_free (&self->throttled);
    free (self->pattern);
    free (self->group);
    free (self->key);
    free (self);
}

void
channel_mark_dirty (channel_t *self)
{
    if (!self->dirty && !self->dead) {
        self->dirty = true;
        ptrvec_push (&self->broker->dirty_channels, self);
    }
    if (self->durable && !self->dead)
        durable_want_feed (self);
}

size_t
channel_waiting (const channel_t *self)
{
    return queue_len (self->queue) + queue_len (self->redeliveries)
         + zlistx_size (self->delayed);
}

static void
s_release_throttles (channel_t *self)
{
    if (self->throttled.size)
        work_unthrottle (self->broker, self);
}

/*  One event a subscription leaves behind when it ends (PROTOCOL §4):
    dead-lettered with "on_end": "dead-letter", else discarded and counted.
    Never silently: channel_report_left logs the count.                     */
void
channel_leave (channel_t *self, event_t *ev, uint16_t attempts)
{
    broker_t *broker = self->broker;
    if (self->durable) {
        //  Still in its stream, unacknowledged: the cursor's next reader
        //  gets it again.  Nothing is left behind.
        event_unref (&ev);
        return;
    }
    if (self->on_end_dead_letter)
        work_dead_letter (broker, ev, "subscription ended", attempts, self->name);
    else
        broker->stats.discarded_on_end++;
    self->left_behind++;
    event_unref (&ev);
}

void
channel_report_left (channel_t *self)
{
    if (self->left_behind == 0)
        return;
    log_notice ("subscription '%s' on '%s' ended: %llu events %s", self->name, self->pattern,
                (unsigned long long) self->left_behind,
                self->on_end_dead_letter ? "dead-lettered (on_end: dead-letter)" : "discarded");
    self->left_behind = 0;
}

static bool s_pop (channel_t *self, queue_t *queue, qitem_t *item);

/*  Everything still waiting leaves with the channel.                        */
static void
s_leave_waiting (channel_t *self)
{
    qitem_t item;
    while (s_pop (self, self->redeliveries, &item))
        channel_leave (self, item.event, item.attempt);
    while (s_pop (self, self->queue, &item))
        channel_leave (self, item.event, item.attempt);
    delayed_t *d = zlistx_first (self->delayed);
    while (d) {
        channel_leave (self, s_delayed_take (d), d->attempt);
        d = zlistx_next (self->delayed);
    }
    zlistx_purge (self->delayed);
}

/*  A channel whose last member left, or that overflowed with `disconnect`:
    out of every index now, freed at the end of the batch.                   */
static void
s_kill (channel_t *self)
{
    if (self->dead)
        return;
    self->dead = true;
    broker_t *broker = self->broker;
    s_leave_waiting (self);
    if (self->key)
        zhashx_delete (broker->groups, self->key);
    s_unregister (self);
    timers_set (broker, self, -1);
    s_release_throttles (self);
    ptrvec_push (&broker->dead_channels, self);
}

/*  Ready: credit, a live peer, and room.  What a member holds outside the
    queue (in flight, on the wire) counts against queue_bytes, and in-flight
    events against max_queued_bytes too, so neither a client that never
    reads nor one that never ACKs makes the broker grow.                     */
static bool
s_member_ready (const sub_t *sub)
{
    if (sub->credit == 0 || sub->send_stalled || sub->over_limit
    ||  sub->session->dead || sub->session->gone)
        return false;
    const channel_t *channel = sub->channel;
    if (sub->wire_bytes + sub->inflight_bytes >= channel->queue_bytes_limit)
        return false;
    const broker_t *broker = channel->broker;
    if (sub->ack_explicit
    &&  broker->queued_bytes + broker->inflight_bytes >= (uint64_t) broker->config->max_queued_bytes)
        return false;
    return true;
}

bool
channel_has_ready_member (const channel_t *self)
{
    for (size_t i = 0; i < self->members.size; i++)
        if (s_member_ready (self->members.items [i]))
            return true;
    return false;
}

/*  Next member in round-robin order that has credit, or NULL.               */
static sub_t *
s_next_member (channel_t *self)
{
    size_t n = self->members.size;
    if (n == 1) {
        sub_t *only = self->members.items [0];
        return s_member_ready (only) ? only : NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t idx = (self->rr + i) % n;
        sub_t *sub = self->members.items [idx];
        if (s_member_ready (sub)) {
            self->rr = (idx + 1) % n;
            return sub;
        }
    }
    return NULL;
}

static void
s_stalled (channel_t *self, sub_t *sub)
{
    sub->send_stalled = true;
    timers_arm (self->broker, self, self->broker->now_ms + STALL_RETRY_MS);
}

/*  GAP (if anything was dropped) then DELIVER.  0, -EAGAIN, -EHOSTUNREACH.  */
static int
s_deliver (channel_t *self, sub_t *sub, event_t *ev, uint16_t attempt)
{
    if (self->pending_gap) {
        int rc = sub_send_gap (sub, self->pending_gap);
        if (rc) {
            if (rc == -EAGAIN)
                s_stalled (self, sub);
            return rc;
        }
        self->pending_gap = 0;
    }
    int rc = sub_deliver (sub, ev, attempt);
    if (rc == 0)
        self->delivered++;
    else
    if (rc == -EAGAIN)
        s_stalled (self, sub);
    return rc;
}

static int
s_push (channel_t *self, queue_t *queue, event_t *ev, uint16_t attempt, event_t **replaced)
{
    uint64_t before = queue_bytes (queue);
    int rc = queue_push (queue, ev, attempt, replaced);
    self->broker->queued_bytes += queue_bytes (queue) - before;
    return rc;
}

static bool
s_pop (channel_t *self, queue_t *queue, qitem_t *item)
{
    uint64_t before = queue_bytes (queue);
    bool found = queue_pop (queue, item);
    self->broker->queued_bytes -= before - queue_bytes (queue);
    return found;
}

static void
s_drop (channel_t *self, event_t **ev_p)
{
    self->dropped++;
    self->pending_gap++;
    self->broker->stats.dropped++;
    self->broker->stats.dropped_by_policy [self->policy]++;
    event_unref (ev_p);
}

static bool
s_full (channel_t *self)
{
    const config_t *config = self->broker->config;
    return queue_len (self->queue) >= self->queue_limit
        || queue_bytes (self->queue) >= self->queue_bytes_limit
        || self->broker->queued_bytes + self->broker->inflight_bytes
           >= (uint64_t) config->max_queued_bytes;
}

void
channel_offer (channel_t *self, event_t *ev, session_t *publisher)
{
    if (self->overflowed) {
        //  Ending (overflow disconnect): left behind with what it holds.
        channel_leave (self, event_ref (ev), 0);
        return;
    }
    if (queue_len (self->queue) == 0 && queue_len (self->redeliveries) == 0) {
        sub_t *sub = s_next_member (self);
        if (sub && s_deliver (self, sub, ev, 0) == 0)
            return;
    }
    event_t *replaced = NULL;
    switch (self->policy) {
        case POLICY_BLOCK:
            if (s_full (self) && publisher)
                session_throttle (publisher, self);
            break;
        case POLICY_DROP_OLDEST:
            if (s_full (self)) {
                qitem_t oldest;
                if (s_pop (self, self->queue, &oldest))
                    s_drop (self, &oldest.event);
            }
            break;
        case POLICY_DROP_NEW:
            if (s_full (self)) {
                event_t *mine = event_ref (ev);
                s_drop (self, &mine);
                return;
            }
            break;
        case POLICY_LATEST:
            break;
        case POLICY_DISCONNECT:
            if (s_full (self)) {
                //  Ended at the end of the batch (work.c), not here: routing
                //  may still iterate the channels this event matched.
                char reason [96];
                snprintf (reason, sizeof reason, "queue_limit %u reached (overflow: disconnect)",
                          self->queue_limit);
                self->overflowed = true;
                work_channel_overflow (self->broker, self, reason);
                channel_leave (self, event_ref (ev), 0);
                return;
            }
            break;
    }
    event_t *mine = event_ref (ev);
    if (s_push (self, self->queue, mine, 0, &replaced)) {
        //  Out of memory: the event is lost for this queue; say so.
        s_drop (self, &mine);
        log_error ("out of memory queueing for '%s': event dropped and reported as GAP",
                   self->pattern);
        return;
    }
    if (replaced)
        s_drop (self, &replaced);
    if (self->policy == POLICY_LATEST) {
        while (queue_len (self->queue) > self->queue_limit) {
            qitem_t oldest;
            if (!s_pop (self, self->queue, &oldest))
                break;
            s_drop (self, &oldest.event);
        }
    }
}

void
channel_feed (channel_t *self, event_t *ev, uint16_t attempt)
{
    if (s_push (self, self->queue, ev, attempt, NULL)) {
        log_error ("out of memory queueing for durable '%s'", self->pattern);
        event_unref (&ev);
        return;
    }
    channel_mark_dirty (self);
}

void
channel_redeliver (channel_t *self, event_t *ev, uint16_t attempt, int64_t not_before_ms)
{
    if (not_before_ms > self->broker->now_ms) {
        delayed_t *d = malloc (sizeof (delayed_t));
        if (d) {
            d->channel = self;
            d->event = ev;
            d->attempt = attempt;
            d->due_ms = not_before_ms;
            self->broker->queued_bytes += event_bytes (ev);
            zlistx_insert (self->delayed, d, false);
            timers_arm (self->broker, self, not_before_ms);
            return;
        }
    }
    if (s_push (self, self->redeliveries, ev, attempt, NULL)) {
        log_error ("out of memory queueing a redelivery for '%s'", self->pattern);
        s_drop (self, &ev);
        return;
    }
    channel_mark_dirty (self);
}

static void
s_check_release (channel_t *self)
{
    if (self->throttled.size == 0)
        return;
    uint32_t half = (self->queue_limit + 1) / 2;
    if (queue_len (self->queue) < half && queue_bytes (self->queue) < self->queue_bytes_limit / 2)
        s_release_throttles (self);
}

void
channel_pump (channel_t *self)
{
    while (!self->dead && !self->overflowed) {
        queue_t *source = queue_len (self->redeliveries) ? self->redeliveries : self->queue;
        if (queue_len (source) == 0)
            break;
        sub_t *sub = s_next_member (self);
        if (!sub)
            break;
        qitem_t item;
        if (!s_pop (self, source, &item))
            break;
        int rc = s_deliver (self, sub, item.event, item.attempt);
        if (rc == 0)
            event_unref (&item.event);
        else {
            //  Kept, not lost: back to the front; another member (or the
            //  same one after the tick) gets it.
            uint64_t before = queue_bytes (source);
            queue_push_front (source, item.event, item.attempt);
            self->broker->queued_bytes += queue_bytes (source) - before;
        }
    }
    if (!self->dead)
        s_check_release (self);
}

void
channel_add_member (channel_t *self, sub_t *sub)
{
    ptrvec_add (&self->members, sub);
    sub->channel = self;
    if (!self->name [0])
        sub_describe (sub, self->name, sizeof self->name);
}

typedef struct {
    channel_t *channel;
    bool keep;
} handback_t;

static void
s_hand_back (event_t *ev, uint16_t attempt, void *arg)
{
    handback_t *hb = arg;
    //  Counted as redelivered when it is sent again (sub_deliver).
    if (hb->keep)
        channel_redeliver (hb->channel, ev, attempt, 0);
    else
        channel_leave (hb->channel, ev, attempt);
}

void
channel_remove_member (channel_t *self, sub_t *sub)
{
    ptrvec_remove (&self->members, sub);
    if (self->rr >= self->members.size)
        self->rr = 0;
    //  A group keeps what the leaver had in flight; the last member (or a
    //  plain subscription) leaves it behind with the queue.
    handback_t hb = { self, self->members.size > 0 && !self->dead };
    sub_drain_inflight (sub, s_hand_back, &hb);
    sub->channel = NULL;
    if (self->members.size == 0) {
        s_kill (self);
        channel_report_left (self);
    }
    else
        channel_mark_dirty (self);
}

void
channel_end_member (channel_t *self, sub_t *sub, uint16_t code, const char *reason)
{
    if (self->members.size <= 1) {
        channel_end_all (self, code, reason);
        return;
    }
    session_t *session = sub->session;
    sub_send_subend (sub, code, reason);
    zhashx_delete (session->subs, (void *) ((uintptr_t) sub->sub_id + 1));
    channel_remove_member (self, sub);
    sub_free (&sub);
}

void
channel_end_all (channel_t *self, uint16_t code, const char *reason)
{
    log_notice ("ending subscription '%s'%s%s: %s", self->pattern,
                self->group ? " of group " : "", self->group ? self->group : "", reason);
    //  No GAP before the SUBEND: GAP reports drops before a next DELIVER
    //  (PROTOCOL §6), and what the queue held is discarded on end, counted
    //  and logged (§4), so SUBEND is the member's next message.
    s_kill (self);
    while (self->members.size) {
        sub_t *sub = self->members.items [0];
        session_t *session = sub->session;
        sub_send_subend (sub, code, reason);
        zhashx_delete (session->subs, (void *) ((uintptr_t) sub->sub_id + 1));
        channel_remove_member (self, sub);
        sub_free (&sub);
    }
    channel_report_left (self);
}

void
channel_tick (channel_t *self, int64_t now_ms)
{
    bool work = false;
    delayed_t *d = zlistx_first (self->delayed);
    while (d && d->due_ms <= now_ms) {
        event_t *ev = s_delayed_take (d);
        uint16_t attempt = d->attempt;
        zlistx_delete (self->delayed, zlistx_cursor (self->delayed));
        if (s_push (self, self->redeliveries, ev, attempt, NULL))
            s_drop (self, &ev);
        work = true;
        d = zlistx_first (self->delayed);
    }
    int64_t next = d ? d->due_ms : -1;
    for (size_t i = 0; i < self->members.size && !self->dead; i++) {
        sub_t *sub = self->members.items [i];
        if (sub->send_stalled) {
            sub->send_stalled = false;
            work = true;
        }
        if (sub->inflight_live)
            sub_check_timeouts (sub, now_ms);
        int64_t due = sub_next_deadline (sub);
        if (due >= 0 && (next < 0 || due < next))
            next = due;
    }
    if (!self->dead)
        timers_set (self->broker, self, next);
    if (work || queue_len (self->redeliveries))
        channel_mark_dirty (self);
}
