/*  queue.h — the events of one subscription (or group) waiting for credit.

    A ring of event pointers indexed by absolute position, so the common case
    (push at the back, pop at the front) is two array stores and no malloc.
    The `latest` policy needs "replace the waiting event of this topic and
    move it to the back": the old slot becomes a hole (NULL) and a topic ->
    position hash finds it; holes are compacted away once they outnumber
    the live entries, so a hot topic cannot grow the ring.                   */
#ifndef BUSD_QUEUE_H_INCLUDED
#define BUSD_QUEUE_H_INCLUDED

#include "event.h"

typedef struct queue queue_t;

typedef struct {
    event_t *event;
    uint16_t attempt;           /*  deliveries already made (0: fresh)      */
} qitem_t;

/*  In the header only so that queue_len and queue_bytes, asked several
    times per event on the hot path, inline; the fields are queue.c's.      */
struct queue {
    qitem_t *ring;
    size_t cap;                 /*  power of two                            */
    uint64_t head;              /*  absolute position of the oldest slot    */
    uint64_t tail;              /*  absolute position after the newest      */
    size_t live;                /*  non-hole entries                        */
    uint64_t bytes;
    struct _zhashx_t *by_topic; /*  conflation: topic -> position + 1       */
};

/*  conflate: keep at most one waiting event per topic (policy `latest`).    */
queue_t *queue_new (bool conflate);
/*  Frees the queue and drops its references.                                */
void queue_destroy (queue_t **self_p);

/*  Append; the queue takes over the caller's reference.  With conflation an
    event of the same topic already waiting is removed and returned in
    *replaced (the caller owns that reference), else *replaced is NULL.
    Returns 0 or -ENOMEM (then nothing changed and the caller keeps ev).     */
int queue_push (queue_t *self, event_t *ev, uint16_t attempt, event_t **replaced);

/*  Put an item back at the front (a send that could not be made).           */
int queue_push_front (queue_t *self, event_t *ev, uint16_t attempt);

/*  Take the oldest item; returns false when empty.                          */
bool queue_pop (queue_t *self, qitem_t *item);

static inline size_t
queue_len (const queue_t *self)
{
    return self->live;
}

static inline uint64_t
queue_bytes (const queue_t *self)
{
    return self->bytes;
}

#endif
