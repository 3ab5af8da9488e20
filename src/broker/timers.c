/*  timers.c — the channels' deadlines as a binary min-heap (see timers.h).

    Each channel stores its heap position (timer_slot, 0 when absent) so a
    deadline moves up or down in O(log n) and a channel that ends leaves
    the heap at once instead of leaving a stale entry to a freed struct.   */
#include "timers.h"
#include <errno.h>

static void
s_place (broker_t *self, size_t i, channel_t *channel)
{
    self->timers.items [i] = channel;
    channel->timer_slot = i + 1;
}

static void
s_up (broker_t *self, size_t i)
{
    channel_t *channel = self->timers.items [i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        channel_t *p = self->timers.items [parent];
        if (p->timer_due <= channel->timer_due)
            break;
        s_place (self, i, p);
        i = parent;
    }
    s_place (self, i, channel);
}

static void
s_down (broker_t *self, size_t i)
{
    size_t n = self->timers.size;
    channel_t *channel = self->timers.items [i];
    while (true) {
        size_t kid = 2 * i + 1;
        if (kid >= n)
            break;
        channel_t *k = self->timers.items [kid];
        if (kid + 1 < n) {
            channel_t *k2 = self->timers.items [kid + 1];
            if (k2->timer_due < k->timer_due) {
                kid++;
                k = k2;
            }
        }
        if (channel->timer_due <= k->timer_due)
            break;
        s_place (self, i, k);
        i = kid;
    }
    s_place (self, i, channel);
}

static void
s_remove (broker_t *self, channel_t *channel)
{
    size_t i = channel->timer_slot - 1;
    channel->timer_slot = 0;
    channel_t *last = self->timers.items [--self->timers.size];
    if (last == channel)
        return;
    s_place (self, i, last);
    s_down (self, i);
    s_up (self, last->timer_slot - 1);
}

int
timers_set (broker_t *self, channel_t *channel, int64_t due_ms)
{
    if (due_ms < 0) {
        if (channel->timer_slot)
            s_remove (self, channel);
        return 0;
    }
    if (channel->timer_slot) {
        int64_t old = channel->timer_due;
        channel->timer_due = due_ms;
        if (due_ms < old)
            s_up (self, channel->timer_slot - 1);
        else
            s_down (self, channel->timer_slot - 1);
        return 0;
    }
    int rc = ptrvec_push (&self->timers, channel);
    if (rc)
        return rc;
    channel->timer_due = due_ms;
    s_place (self, self->timers.size - 1, channel);
    s_up (self, self->timers.size - 1);
    return 0;
}

int
timers_arm (broker_t *self, channel_t *channel, int64_t due_ms)
{
    if (channel->timer_slot && channel->timer_due <= due_ms)
        return 0;
    return timers_set (self, channel, due_ms);
}

channel_t *
timers_pop_due (broker_t *self, int64_t now_ms)
{
    if (self->timers.size == 0)
        return NULL;
    channel_t *first = self->timers.items [0];
    if (first->timer_due > now_ms)
        return NULL;
    s_remove (self, first);
    return first;
}

void
timers_free (broker_t *self)
{
    for (size_t i = 0; i < self->timers.size; i++)
        ((channel_t *) self->timers.items [i])->timer_slot = 0;
    ptrvec_free (&self->timers);
}
