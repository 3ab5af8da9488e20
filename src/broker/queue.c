/*  queue.c — ring queue of events with optional per-topic conflation.       */
#include "queue.h"
#include <czmq.h>
#include <errno.h>

#define QUEUE_MIN_CAP  16
/*  Positions start high so push_front never wraps below zero.               */
#define QUEUE_ORIGIN   ((uint64_t) 1 << 40)

queue_t *
queue_new (bool conflate)
{
    queue_t *self = calloc (1, sizeof (queue_t));
    if (!self)
        return NULL;
    self->cap = QUEUE_MIN_CAP;
    self->ring = calloc (self->cap, sizeof (qitem_t));
    self->head = self->tail = QUEUE_ORIGIN;
    if (conflate)
        self->by_topic = zhashx_new ();
    if (!self->ring || (conflate && !self->by_topic)) {
        free (self->ring);
        zhashx_destroy (&self->by_topic);
        free (self);
        return NULL;
    }
    return self;
}

void
queue_destroy (queue_t **self_p)
{
    queue_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    qitem_t item;
    while (queue_pop (self, &item))
        event_unref (&item.event);
    zhashx_destroy (&self->by_topic);
    free (self->ring);
    free (self);
}

static inline qitem_t *
s_slot (queue_t *self, uint64_t pos)
{
    return &self->ring [pos & (self->cap - 1)];
}

/*  Rebuild the ring at a new capacity, squeezing out holes, and re-point
    the topic hash at the new positions.                                     */
static int
s_rebuild (queue_t *self, size_t new_cap)
{
    qitem_t *ring = calloc (new_cap, sizeof (qitem_t));
    if (!ring)
        return -ENOMEM;
    uint64_t pos = self->head;
    for (uint64_t p = self->head; p != self->tail; p++) {
        qitem_t *item = s_slot (self, p);
        if (!item->event)
            continue;
        ring [pos & (new_cap - 1)] = *item;
        if (self->by_topic)
            zhashx_update (self->by_topic, item->event->topic,
                           (void *) (uintptr_t) (pos + 1));
        pos++;
    }
    free (self->ring);
    self->ring = ring;
    self->cap = new_cap;
    self->tail = pos;
    return 0;
}

static int
s_make_room (queue_t *self)
{
    size_t used = (size_t) (self->tail - self->head);
    if (used < self->cap)
        return 0;
    //  Mostly holes: compact in place-size instead of growing.
    if (self->live * 2 < used)
        return s_rebuild (self, self->cap);
    return s_rebuild (self, self->cap * 2);
}

int
queue_push (queue_t *self, event_t *ev, uint16_t attempt, event_t **replaced)
{
    if (replaced)
        *replaced = NULL;
    if (s_make_room (self))
        return -ENOMEM;
    if (self->by_topic) {
        uintptr_t old = (uintptr_t) zhashx_lookup (self->by_topic, ev->topic);
        if (old) {
            qitem_t *item = s_slot (self, old - 1);
            assert (item->event);
            self->bytes -= event_bytes (item->event);
            self->live--;
            if (replaced)
                *replaced = item->event;
            else
                event_unref (&item->event);
            item->event = NULL;
        }
        zhashx_update (self->by_topic, ev->topic, (void *) (uintptr_t) (self->tail + 1));
    }
    qitem_t *slot = s_slot (self, self->tail++);
    slot->event = ev;
    slot->attempt = attempt;
    self->live++;
    self->bytes += event_bytes (ev);
    return 0;
}

int
queue_push_front (queue_t *self, event_t *ev, uint16_t attempt)
{
    if (s_make_room (self))
        return -ENOMEM;
    if (self->by_topic) {
        uintptr_t old = (uintptr_t) zhashx_lookup (self->by_topic, ev->topic);
        if (old) {
            //  A newer value of this topic already waits: the old one is
            //  superseded, exactly as if it had arrived first.
            event_unref (&ev);
            return 0;
        }
        zhashx_update (self->by_topic, ev->topic, (void *) (uintptr_t) (self->head));
    }
    qitem_t *slot = s_slot (self, --self->head);
    slot->event = ev;
    slot->attempt = attempt;
    self->live++;
    self->bytes += event_bytes (ev);
    return 0;
}

bool
queue_pop (queue_t *self, qitem_t *item)
{
    while (self->head != self->tail) {
        qitem_t *slot = s_slot (self, self->head++);
        if (!slot->event)
            continue;
        *item = *slot;
        slot->event = NULL;
        self->live--;
        self->bytes -= event_bytes (item->event);
        if (self->by_topic)
            zhashx_delete (self->by_topic, item->event->topic);
        if (self->live == 0 && self->cap > 1024) {
            //  Give back the memory of a burst once it has drained.
            qitem_t *small = calloc (QUEUE_MIN_CAP, sizeof (qitem_t));
            if (small) {
                free (self->ring);
                self->ring = small;
                self->cap = QUEUE_MIN_CAP;
                self->head = self->tail = QUEUE_ORIGIN;
            }
        }
        return true;
    }
    return false;
}


