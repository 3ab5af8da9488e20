/*  work.c — the end-of-batch work queue and the end of a batch.

    Dead letters, redeliveries, lifted throttles and peers that left are
    found deep inside delivery (a NACK, an ack timeout, a send that failed,
    a queue that drained).  Doing them there re-enters routing while the
    caller still holds the subscription or channel that may end, so they are
    queued here and done after the batch, in the order they were found.
    Work done here may queue more work; the loop runs until the queue is
    empty.                                                                   */
#include "broker.h"
#include "durable.h"
#include "receipt.h"
#include <errno.h>

static int
s_push (broker_t *self, const work_item_t *item)
{
    work_t *work = &self->work;
    if (work->size == work->cap) {
        size_t cap = work->cap ? work->cap * 2 : 16;
        work_item_t *items = realloc (work->items, cap * sizeof (work_item_t));
        if (!items)
            return -ENOMEM;
        work->items = items;
        work->cap = cap;
    }
    work->items [work->size++] = *item;
    return 0;
}

/*  Lift every throttle the channel holds; each publisher that is now free
    gets its withheld credit back in a PUBACK (session_unthrottle).         */
static void
s_lift (channel_t *channel)
{
    while (channel->throttled.size)
        session_unthrottle (channel->throttled.items [0], channel);
}

static void
s_item_free (work_item_t *item)
{
    event_unref (&item->event);
    free (item->reason);
    free (item->subscription);
    item->reason = item->subscription = NULL;
}

void
work_dead_letter (broker_t *self, event_t *ev, const char *reason,
                  uint16_t attempts, const char *subscription)
{
    work_item_t item = {
        .kind = WORK_DEAD_LETTER, .event = event_ref (ev), .attempts = attempts,
        .reason = strdup (reason), .subscription = strdup (subscription)
    };
    if (!item.reason || !item.subscription || s_push (self, &item)) {
        //  Never silently: the event is still counted and logged as lost.
        log_error ("out of memory queueing a dead letter of '%s' from %s: event lost",
                   ev->topic, subscription);
        self->stats.dropped++;
        s_item_free (&item);
    }
}

void
work_redeliver (broker_t *self, channel_t *channel, event_t *ev,
                uint16_t attempts, int64_t not_before_ms)
{
    work_item_t item = {
        .kind = WORK_REDELIVER, .event = ev, .channel = channel, .attempts = attempts,
        .not_before_ms = not_before_ms
    };
    if (s_push (self, &item)) {
        log_error ("out of memory queueing a redelivery on '%s': event lost", channel->pattern);
        self->stats.dropped++;
        s_item_free (&item);
    }
}

void
work_unthrottle (broker_t *self, channel_t *channel)
{
    work_item_t item = { .kind = WORK_UNTHROTTLE, .channel = channel };
    if (s_push (self, &item)) {
        //  Lifting now is safe enough when memory is gone: better a deep
        //  call than a publisher throttled for ever.
        s_lift (channel);
    }
}

void
work_sub_over_limit (broker_t *self, sub_t *sub, const char *reason)
{
    if (sub->over_limit)
        return;
    sub->over_limit = true;
    //  By session and sub_id: the subscription may end otherwise before
    //  the batch does.
    work_item_t item = { .kind = WORK_SUB_OVER_LIMIT, .session = sub->session,
                         .sub_id = sub->sub_id, .reason = strdup (reason) };
    if (!item.reason || s_push (self, &item)) {
        log_error ("out of memory queueing the end of subscription %u of '%s'",
                   sub->sub_id, sub->session->name);
        s_item_free (&item);
    }
}

void
work_channel_overflow (broker_t *self, channel_t *channel, const char *reason)
{
    work_item_t item = { .kind = WORK_CHANNEL_OVERFLOW, .channel = channel,
                         .reason = strdup (reason) };
    if (!item.reason || s_push (self, &item)) {
        //  Ending it here is what the queue avoids; without memory for the
        //  queue it is still better than a channel that never ends.
        log_error ("out of memory queueing the end of subscription '%s'", channel->pattern);
        s_item_free (&item);
        channel_end_all (channel, BUSP_E_LIMIT, "overflow: disconnect");
    }
}

void
work_session_gone (broker_t *self, session_t *session)
{
    if (session->gone)
        return;
    session->gone = true;
    work_item_t item = { .kind = WORK_SESSION_GONE, .session = session };
    if (s_push (self, &item))
        log_error ("out of memory queueing the end of session '%s'", session->name);
}

static void
s_run (broker_t *self, work_item_t *item)
{
    switch (item->kind) {
        case WORK_DEAD_LETTER:
            route_dead_letter (self, item->event, item->reason, item->attempts,
                               item->subscription);
            break;
        case WORK_REDELIVER:
            //  The subscription ended since: the event is left behind with it.
            if (item->channel->dead) {
                channel_leave (item->channel, item->event, item->attempts);
                channel_report_left (item->channel);
            }
            else
                channel_redeliver (item->channel, item->event, item->attempts,
                                   item->not_before_ms);
            item->event = NULL;
            break;
        case WORK_UNTHROTTLE:
            s_lift (item->channel);
            break;
        case WORK_CHANNEL_OVERFLOW:
            //  Its last member may have left meanwhile: the channel is dead
            //  then, and only what was left since needs its log line.
            if (item->channel->dead)
                channel_report_left (item->channel);
            else
                channel_end_all (item->channel, BUSP_E_LIMIT, item->reason);
            break;
        case WORK_SESSION_GONE:
            session_end (item->session, "peer gone");
            break;
        case WORK_SUB_OVER_LIMIT: {
            sub_t *sub = item->session->dead ? NULL : session_sub (item->session, item->sub_id);
            if (!sub || !sub->over_limit)
                break;
            log_warning ("ending subscription %u of '%s' (%s) on '%s': %s", sub->sub_id,
                         item->session->name, item->session->id_hex, sub->pattern, item->reason);
            self->stats.subs_over_limit++;
            session_t *session = item->session;
            session->send_refused = false;
            channel_end_member (sub->channel, sub, BUSP_E_LIMIT, item->reason);
            //  Not even the SUBEND fits in its queue: a peer that does not
            //  read loses its session rather than making the broker wait.
            if (session->send_refused && !session->dead) {
                log_warning ("ending session of '%s' (%s): not reading its socket (SUBEND 429 refused)",
                             session->name, session->id_hex);
                session_end (session, "not reading its socket");
            }
            break;
        }
    }
    s_item_free (item);
}

void
work_end_batch (broker_t *self)
{
    //  Each step may find more work (a dead letter overflowing a queue, a
    //  pump lifting a throttle, a send to a peer that left): repeat until
    //  nothing is left.  Dead channels and sessions stay allocated until
    //  then, so queued work may still name them.
    while (true) {
        //  Commit the batch's stream writes before any PUBACK (durable.c):
        //  what is acknowledged is stored.  Then top up durable queues.
        if (self->durable)
            durable_end_batch (self);
        if (!(self->work.size || self->dirty_sessions.size || self->dirty_channels.size))
            break;
        for (size_t i = 0; i < self->work.size; i++) {
            work_item_t item = self->work.items [i];
            s_run (self, &item);
        }
        self->work.size = 0;
        for (size_t i = 0; i < self->dirty_sessions.size; i++) {
            session_t *session = self->dirty_sessions.items [i];
            session->pub_dirty = false;
            if (!session->dead)
                session_puback (session);
        }
        self->dirty_sessions.size = 0;
        for (size_t i = 0; i < self->dirty_channels.size; i++) {
            channel_t *channel = self->dirty_channels.items [i];
            channel->dirty = false;
            if (!channel->dead)
                channel_pump (channel);
        }
        self->dirty_channels.size = 0;
        //  Everything this iteration made ready leaves now, one DELIVERB
        //  per session: batching never waits for more (PROTOCOL §8.2).  A
        //  peer found gone here is more work for the loop.
        wire_flush_batches (self);
        receipt_send_due (self);
    }
    for (size_t i = 0; i < self->dead_channels.size; i++) {
        channel_t *channel = self->dead_channels.items [i];
        channel_free (&channel);
    }
    self->dead_channels.size = 0;
    for (size_t i = 0; i < self->dead_sessions.size; i++) {
        session_t *session = self->dead_sessions.items [i];
        if (self->last_session == session)
            self->last_session = NULL;
        session_free (&session);
    }
    self->dead_sessions.size = 0;
}

void
work_free (broker_t *self)
{
    for (size_t i = 0; i < self->work.size; i++)
        s_item_free (&self->work.items [i]);
    free (self->work.items);
    self->work.items = NULL;
    self->work.size = self->work.cap = 0;
}
