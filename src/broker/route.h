/*  route.h — an accepted event to the channels whose patterns match it.    */
#ifndef BUSD_ROUTE_H_INCLUDED
#define BUSD_ROUTE_H_INCLUDED

#include "state.h"

/*  Offer an accepted event to every matching channel.  publisher may be
    NULL (dead letters, replays).  Returns the number of channels reached.  */
size_t route_event (broker_t *self, event_t *ev, session_t *publisher);

/*  Store a dead letter (dlq.c) and route it as $dlq.<topic> with the x-
    headers of PROTOCOL §6.  Called from the end of the batch (work.c), never
    from inside a delivery: routing may end the subscription that gave up.  */
void route_dead_letter (broker_t *self, event_t *ev, const char *reason,
                        uint16_t attempts, const char *subscription);

/*  The broker's own statistics as an event on $sys.stats.                  */
void route_sys_stats (broker_t *self);

#endif
