/*  session.c — one client connection's state, from HELLO to BYE or expiry.

    Ending a session is immediate for routing (it leaves the index, its
    subscriptions leave their channels, throttles it holds or suffers lift)
    but its memory is freed only at the end of the batch, because the batch
    may still hold a pointer to it (a DELIVER loop, the lookup cache).      */
#include "broker.h"
#include "clock.h"
#include "utf8.h"
#include "batch.h"
#include "hosted.h"
#include "receipt.h"

static size_t
s_u32_hash (const void *key)
{
    return (size_t) (uintptr_t) key * 2654435761u;
}

static int
s_u32_compare (const void *a, const void *b)
{
    return a == b ? 0 : ((uintptr_t) a < (uintptr_t) b ? -1 : 1);
}

session_t *
session_new (broker_t *broker, const uint8_t *rid, size_t rid_len,
             const char *name, size_t name_len)
{
    session_t *self = calloc (1, sizeof (session_t));
    if (!self)
        return NULL;
    self->broker = broker;
    self->rid [0] = (uint8_t) rid_len;
    memcpy (self->rid + 1, rid, rid_len);
    //  Names go back out in CTL replies and dead-letter headers: valid
    //  UTF-8 (invalid bytes replaced, never cut in a character), printable.
    busp_utf8_sanitize (name, name_len, self->name, sizeof self->name, NULL);
    for (size_t i = 0; self->name [i]; i++)
        if ((unsigned char) self->name [i] < 0x20 || (unsigned char) self->name [i] == 0x7F)
            self->name [i] = '?';
    //  The session id everything reports: the routing id is what a peer
    //  would need to impersonate this one, so it is never shown.
    snprintf (self->id_hex, sizeof self->id_hex, "s%llu",
              (unsigned long long) ++broker->session_serial);
    self->created_ms = self->last_seen_ms = broker->now_ms;
    self->subs = zhashx_new ();
    if (!self->subs) {
        free (self);
        return NULL;
    }
    zhashx_set_key_hasher (self->subs, s_u32_hash);
    zhashx_set_key_comparator (self->subs, s_u32_compare);
    zhashx_set_key_duplicator (self->subs, NULL);
    zhashx_set_key_destructor (self->subs, NULL);
    if (zhashx_insert (broker->sessions, self->rid, self)) {
        zhashx_destroy (&self->subs);
        free (self);
        return NULL;
    }
    broker->stats.sessions_opened++;
    return self;
}

sub_t *
session_sub (session_t *self, uint32_t sub_id)
{
    return zhashx_lookup (self->subs, (void *) ((uintptr_t) sub_id + 1));
}

/*  Records of a DELIVERB that could not be sent (the peer left): they were
    never delivered, so they do not count as attempts — an explicit-ack
    delivery handed back to its group goes out again with the same attempt
    number, as a DELIVER that failed to send would have.                    */
static void
s_unsent (session_t *self)
{
    busp_batch_iter_t it;
    busp_deliver_rec_t rec;
    busp_batch_iter_init (&it, self->ob_buf, self->ob_len, self->ob_count);
    while (busp_deliverb_next (&it, &rec, NULL) > 0) {
        sub_t *sub = session_sub (self, rec.sub_id);
        if (sub)
            sub_unsent (sub, rec.delivery_id, rec.attempt);
    }
    self->ob_count = 0;
    self->ob_len = 0;
}

void
session_end (session_t *self, const char *why)
{
    if (self->dead)
        return;
    broker_t *broker = self->broker;
    //  Records built for it this iteration were delivered (credit spent,
    //  counted): they leave before the session does.
    if (self->ob_count && !self->gone)
        wire_flush_batch (broker, self);
    if (self->ob_count)
        s_unsent (self);
    self->dead = true;
    zhashx_delete (broker->sessions, self->rid);
    if (broker->last_session == self)
        broker->last_session = NULL;
    //  Its subscriptions end: in-flight deliveries go back to their groups.
    sub_t *sub = zhashx_first (self->subs);
    while (sub) {
        channel_remove_member (sub->channel, sub);
        sub_free (&sub);
        sub = zhashx_next (self->subs);
    }
    zhashx_purge (self->subs);
    //  Throttles on this publisher die with it.
    if (self->throttled_by.size)
        broker->throttled_sessions--;
    while (self->throttled_by.size) {
        channel_t *channel = self->throttled_by.items [0];
        ptrvec_remove (&channel->throttled, self);
        ptrvec_remove (&self->throttled_by, channel);
    }
    ptrvec_add (&broker->dead_sessions, self);
    log_debug ("session '%s' (%s) ended: %s", self->name, self->id_hex, why);
}

void
session_free (session_t **self_p)
{
    session_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    wire_drop_batch (self->broker, self);
    receipt_forget (self);
    hosted_forget (self);
    zhashx_destroy (&self->subs);
    ptrvec_free (&self->throttled_by);
    free (self);
}

void
session_throttle (session_t *self, channel_t *channel)
{
    if (ptrvec_add (&channel->throttled, self) == 0) {
        ptrvec_add (&self->throttled_by, channel);
        if (self->throttled_by.size == 1) {
            self->broker->throttled_sessions++;
            self->broker->stats.throttle_events++;
            log_debug ("publisher '%s' throttled by queue '%s'", self->name, channel->pattern);
        }
    }
}

void
session_unthrottle (session_t *self, channel_t *channel)
{
    ptrvec_remove (&channel->throttled, self);
    if (!ptrvec_remove (&self->throttled_by, channel))
        return;
    if (self->throttled_by.size == 0) {
        self->broker->throttled_sessions--;
        log_debug ("publisher '%s' released", self->name);
        //  The withheld credit comes back in one PUBACK, now.
        if (!self->dead)
            session_puback (self);
    }
}

void
session_puback (session_t *self)
{
    bool throttled = self->throttled_by.size > 0;
    uint64_t give = throttled ? 0 : self->credit_owed;
    if (self->last_pub_seq == self->acked_pub_seq && give == 0)
        return;
    //  Credit travels as u32: a (theoretical) larger debt goes in pieces.
    while (true) {
        uint32_t chunk = give > UINT32_MAX ? UINT32_MAX : (uint32_t) give;
        busp_header_t ack = { .command = BUSP_PUBACK, .seq = self->last_pub_seq, .credit = chunk };
        if (wire_send (self->broker, self, &ack, NULL, NULL))
            return;
        self->acked_pub_seq = self->last_pub_seq;
        self->credit += chunk;
        self->credit_owed -= chunk;
        give -= chunk;
        if (give == 0)
            break;
    }
}
