/*  sub.c — one subscription: its credit, its deliveries, its acks.

    In-flight deliveries (ack: explicit) sit in a ring in delivery_id order.
    Because ack_wait is fixed per subscription that is also deadline order,
    so the timeout scan only looks at the front, and an ACK finds its entry
    by binary search over the ids; acknowledged entries become holes that
    are trimmed from the front.                                              */
#include "broker.h"
#include "clock.h"
#include "backoff.h"
#include "dlq.h"
#include "durable.h"
#include "timers.h"
#include "receipt.h"

sub_t *
sub_new (session_t *session, uint32_t sub_id, const char *pattern)
{
    sub_t *self = calloc (1, sizeof (sub_t));
    if (!self)
        return NULL;
    self->session = session;
    self->sub_id = sub_id;
    self->pattern = strdup (pattern);
    if (!self->pattern) {
        free (self);
        return NULL;
    }
    session->broker->live_subs++;
    return self;
}

static inline inflight_t *
s_at (sub_t *self, size_t i)
{
    return &self->inflight [(self->inflight_head + i) % self->inflight_cap];
}

void
sub_free (sub_t **self_p)
{
    sub_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    broker_t *broker = self->session->broker;
    for (size_t i = 0; i < self->inflight_len; i++)
        event_unref (&s_at (self, i)->event);
    broker->inflight_bytes -= self->inflight_bytes;
    broker->live_subs--;
    free (self->inflight);
    free (self->wire_sizes);
    free (self->pattern);
    free (self);
}

size_t
sub_inflight (const sub_t *self)
{
    return self->inflight_live;
}

void
sub_describe (const sub_t *self, char *buf, size_t size)
{
    if (self->channel && self->channel->durable)
        snprintf (buf, size, "%s", durable_channel_name (self->channel));
    else
    if (self->channel && self->channel->group)
        snprintf (buf, size, "%s", self->channel->group);
    else
        snprintf (buf, size, "%s/%u", self->session->name, self->sub_id);
}

static int
s_inflight_push (sub_t *self, uint64_t id, event_t *ev, uint16_t attempt, int64_t deadline)
{
    if (self->inflight_len == self->inflight_cap) {
        size_t cap = self->inflight_cap ? self->inflight_cap * 2 : 64;
        inflight_t *ring = malloc (cap * sizeof (inflight_t));
        if (!ring)
            return -ENOMEM;
        for (size_t i = 0; i < self->inflight_len; i++)
            ring [i] = *s_at (self, i);
        free (self->inflight);
        self->inflight = ring;
        self->inflight_cap = cap;
        self->inflight_head = 0;
    }
    inflight_t *slot = s_at (self, self->inflight_len++);
    slot->delivery_id = id;
    slot->event = ev;
    slot->attempt = attempt;
    slot->deadline_ms = deadline;
    self->inflight_live++;
    return 0;
}

static void
s_trim (sub_t *self)
{
    while (self->inflight_len && !s_at (self, 0)->event) {
        self->inflight_head = (self->inflight_head + 1) % self->inflight_cap;
        self->inflight_len--;
    }
}

static inflight_t *
s_find (sub_t *self, uint64_t delivery_id)
{
    size_t lo = 0, hi = self->inflight_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        inflight_t *slot = s_at (self, mid);
        if (slot->delivery_id == delivery_id)
            return slot->event ? slot : NULL;
        if (slot->delivery_id < delivery_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/*  A DELIVER handed to ZeroMQ: its size waits in the ring until the client
    returns the credit it spent (it has taken the event off the socket).    */
static int
s_wire_push (sub_t *self, uint32_t size)
{
    if (self->wire_len == self->wire_cap) {
        size_t cap = self->wire_cap ? self->wire_cap * 2 : 16;
        uint32_t *ring = malloc (cap * sizeof (uint32_t));
        if (!ring)
            return -ENOMEM;
        for (size_t i = 0; i < self->wire_len; i++)
            ring [i] = self->wire_sizes [(self->wire_head + i) & (self->wire_cap - 1)];
        free (self->wire_sizes);
        self->wire_sizes = ring;
        self->wire_cap = cap;
        self->wire_head = 0;
    }
    //  wire_cap is a power of two: a mask, not a division, per event.
    self->wire_sizes [(self->wire_head + self->wire_len++) & (self->wire_cap - 1)] = size;
    self->wire_bytes += size;
    self->wire_total++;
    return 0;
}

void
sub_wire_release (sub_t *self, uint64_t count)
{
    for (uint64_t i = 0; i < count && self->wire_len; i++) {
        self->wire_bytes -= self->wire_sizes [self->wire_head];
        self->wire_head = (self->wire_head + 1) & (self->wire_cap - 1);
        self->wire_len--;
    }
}

void
sub_retire (sub_t *self)
{
    self->credit = 0;
    self->retired = true;
}

void
sub_add_credit (sub_t *self, uint32_t credit, uint64_t max_credit)
{
    sub_wire_release (self, credit);
    //  An operator's cap (max_credit); memory is bounded by queue_bytes,
    //  against which every DELIVER not yet known to be read counts.
    if (self->retired)
        return;
    self->credit += credit;
    if (self->credit > max_credit)
        self->credit = max_credit;
}

int
sub_deliver (sub_t *self, event_t *ev, uint16_t attempt)
{
    broker_t *broker = self->session->broker;
    uint64_t delivery_id = self->next_delivery_id + 1;
    int rc = wire_deliver (broker, self->session, ev, self->sub_id, delivery_id,
                           (uint16_t) (attempt + 1));
    if (rc == -EAGAIN)
        //  The peer's ZeroMQ queue is full although it has credit: it
        //  grants credit it does not read.  End it rather than grow.
        work_sub_over_limit (broker, self, "send queue full: the client does not read what it asks for");
    if (rc)
        return rc;
    uint32_t size = (uint32_t) event_bytes (ev);
    if (s_wire_push (self, size))
        log_error ("out of memory accounting delivery of '%s'", self->pattern);
    if (self->channel && self->wire_bytes >= self->channel->queue_bytes_limit / RECEIPT_FRACTION)
        receipt_want (self->session);
    self->next_delivery_id++;
    self->credit--;
    self->delivered++;
    self->session->delivered++;
    broker->stats.delivered++;
    if (attempt)
        broker->stats.redelivered++;
    if (self->channel && self->channel->durable)
        durable_delivered (self->channel, ev, (uint16_t) (attempt + 1));
    if (self->ack_explicit) {
        int64_t deadline = broker->now_ms + self->ack_wait_ms;
        if (s_inflight_push (self, delivery_id, event_ref (ev), (uint16_t) (attempt + 1), deadline)) {
            log_error ("out of memory tracking delivery %llu of '%s'",
                       (unsigned long long) delivery_id, self->pattern);
            event_unref (&ev);
        }
        else {
            self->inflight_bytes += size;
            broker->inflight_bytes += size;
            timers_arm (broker, self->channel, deadline);
        }
    }
    return 0;
}

void
sub_unsent (sub_t *self, uint64_t delivery_id, uint16_t attempt)
{
    //  Counters stay as they are (they only ever grow, counters.h); the
    //  attempt is what the client and the dead-letter rule see.
    inflight_t *slot = s_find (self, delivery_id);
    if (slot && slot->attempt == attempt)
        slot->attempt = (uint16_t) (attempt - 1);
}

int
sub_send_gap (sub_t *self, uint64_t dropped)
{
    busp_header_t g = { .command = BUSP_GAP, .sub_id = self->sub_id, .dropped = dropped };
    int rc = wire_send (self->session->broker, self->session, &g, NULL, NULL);
    if (rc == 0) {
        self->gaps_sent++;
        self->session->broker->stats.gaps++;
    }
    return rc;
}

void
sub_send_subend (sub_t *self, uint16_t code, const char *reason)
{
    wire_send_subend (self->session->broker, self->session, self->sub_id, code, reason);
}

/*  Take the event out of an in-flight slot, leaving a hole.                 */
static event_t *
s_take (sub_t *self, inflight_t *slot)
{
    event_t *ev = slot->event;
    slot->event = NULL;
    self->inflight_live--;
    uint64_t size = event_bytes (ev);
    self->inflight_bytes -= size;
    self->session->broker->inflight_bytes -= size;
    return ev;
}

int
sub_ack (sub_t *self, uint64_t delivery_id)
{
    inflight_t *slot = s_find (self, delivery_id);
    if (!slot)
        return -ENOENT;
    event_t *ev = s_take (self, slot);
    if (self->channel && self->channel->durable)
        durable_acked (self->channel, ev);
    event_unref (&ev);
    self->acked++;
    s_trim (self);
    return 0;
}

static void
s_give_up (sub_t *self, event_t *ev, uint16_t attempts, const char *reason)
{
    char name [300];
    sub_describe (self, name, sizeof name);
    self->dead_lettered++;
    //  Dead-lettered is done with, for a cursor too.
    if (self->channel && self->channel->durable)
        durable_acked (self->channel, ev);
    work_dead_letter (self->session->broker, ev, reason, attempts, name);
    event_unref (&ev);
}

/*  Redeliver or, past max_deliver, dead-letter.                             */
static void
s_retry (sub_t *self, event_t *ev, uint16_t attempts, int64_t delay_ms)
{
    if (attempts >= self->max_deliver) {
        char reason [64];
        snprintf (reason, sizeof reason, "max_deliver %u reached", self->max_deliver);
        s_give_up (self, ev, attempts, reason);
        return;
    }
    self->redelivered++;
    work_redeliver (self->session->broker, self->channel, ev, attempts,
                    self->session->broker->now_ms + delay_ms);
}

int
sub_nack (sub_t *self, uint64_t delivery_id, uint8_t action, uint32_t delay_ms,
          const char *reason)
{
    inflight_t *slot = s_find (self, delivery_id);
    if (!slot)
        return -ENOENT;
    uint16_t attempts = slot->attempt;
    event_t *ev = s_take (self, slot);
    s_trim (self);
    if (action == BUSP_NACK_DEADLETTER) {
        s_give_up (self, ev, attempts, reason ? reason : "dead-lettered by subscriber");
        return 0;
    }
    int64_t delay = delay_ms;
    if (delay == 0) {
        const config_t *config = self->session->broker->config;
        backoff_t policy = { config->backoff_initial_ms, config->backoff_max_ms,
                             config->backoff_multiplier, config->backoff_jitter };
        delay = backoff_delay_ms (&policy, attempts, (double) random () / ((double) RAND_MAX + 1));
    }
    s_retry (self, ev, attempts, delay);
    return 0;
}

void
sub_check_timeouts (sub_t *self, int64_t now_ms)
{
    while (self->inflight_len) {
        inflight_t *slot = s_at (self, 0);
        if (slot->event && slot->deadline_ms > now_ms)
            break;
        if (slot->event) {
            uint16_t attempts = slot->attempt;
            event_t *ev = s_take (self, slot);
            s_retry (self, ev, attempts, 0);
        }
        self->inflight_head = (self->inflight_head + 1) % self->inflight_cap;
        self->inflight_len--;
    }
}

int64_t
sub_next_deadline (const sub_t *self)
{
    for (size_t i = 0; i < self->inflight_len; i++) {
        const inflight_t *slot = &self->inflight [(self->inflight_head + i) % self->inflight_cap];
        if (slot->event)
            return slot->deadline_ms;
    }
    return -1;
}

void
sub_drain_inflight (sub_t *self, sub_inflight_fn *fn, void *arg)
{
    for (size_t i = 0; i < self->inflight_len; i++) {
        inflight_t *slot = s_at (self, i);
        if (slot->event)
            fn (s_take (self, slot), slot->attempt, arg);
    }
    self->inflight_len = 0;
    self->inflight_head = 0;
}
