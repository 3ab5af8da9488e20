/*  timers.h — when each channel next needs the clock.

    A binary min-heap of channels keyed by their next deadline (a delayed
    NACK falling due, the oldest delivery's ack_wait, a send to retry), one
    slot per channel kept in the channel itself, so the timer run costs what
    is due, not what exists: 100,000 idle subscriptions cost nothing.      */
#ifndef BUSD_TIMERS_H_INCLUDED
#define BUSD_TIMERS_H_INCLUDED

#include "state.h"

/*  Make sure channel is looked at no later than due_ms (an earlier
    deadline already set stands).  0 or -ENOMEM.                            */
int timers_arm (broker_t *self, channel_t *channel, int64_t due_ms);
/*  Set the channel's deadline to exactly due_ms, or remove it (due_ms < 0). */
int timers_set (broker_t *self, channel_t *channel, int64_t due_ms);
/*  The channel with the earliest deadline at or before now_ms, taken out
    of the heap; NULL when none is due.                                      */
channel_t *timers_pop_due (broker_t *self, int64_t now_ms);
void timers_free (broker_t *self);

#endif
