/*  work.h — work that must wait for the end of the batch.

    Delivery code (channel.c, sub.c, wire.c) runs deep inside a call chain
    that started at a command or a timer; anything that would re-enter
    routing or end what the chain still holds is queued here instead and
    done by work_end_batch, when nothing holds a pointer into the state.    */
#ifndef BUSD_WORK_H_INCLUDED
#define BUSD_WORK_H_INCLUDED

#include "state.h"

/*  Dead-letter ev (a reference is taken).                                  */
void work_dead_letter (broker_t *self, event_t *ev, const char *reason,
                       uint16_t attempts, const char *subscription);
/*  Put ev back into channel for attempt `attempts + 1`, not before
    not_before_ms (takes over the caller's reference).                       */
void work_redeliver (broker_t *self, channel_t *channel, event_t *ev,
                     uint16_t attempts, int64_t not_before_ms);
/*  Lift every throttle channel holds (its queue drained below half).       */
void work_unthrottle (broker_t *self, channel_t *channel);
/*  The subscription is over a memory limit: end it with SUBEND 429 and a
    log line (once, however often this is called in a batch).                */
void work_sub_over_limit (broker_t *self, sub_t *sub, const char *reason);
/*  overflow: disconnect hit while routing: end every member of channel
    with SUBEND 429 (channel->overflowed is set; it takes nothing more).    */
void work_channel_overflow (broker_t *self, channel_t *channel, const char *reason);
/*  The peer left: end its session.                                          */
void work_session_gone (broker_t *self, session_t *session);
/*  End of a batch or timer run: queued work, cumulative PUBACKs, queue
    pumps, and freeing what ended while pointers to it could still be live. */
void work_end_batch (broker_t *self);
/*  Release what is still queued (broker shutdown).                          */
void work_free (broker_t *self);

#endif
