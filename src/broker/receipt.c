/*  receipt.c — read receipts: how the broker learns that a subscriber has
    read what it was sent, when the subscriber does not return credit.

    Every DELIVER handed to ZeroMQ counts against its subscription's
    queue_bytes until the broker knows the client took it off the socket;
    so a client that asks for events and never reads them holds at most
    queue_bytes in the broker.  Credit coming back is one way to know
    (sub_add_credit).  But PROTOCOL §6 lets a client grant up to 2^32-1
    credit once and never send CREDIT: such a client does read, and must
    not stall when queue_bytes is reached.  ZeroMQ keeps a connection's
    messages in order, and every client answers PING with PONG when it
    reads it, so a PONG proves the client has read everything sent before
    its PING.  When a session's unconfirmed DELIVERs pass a quarter of a
    subscription's queue_bytes, one PING goes out after them (at the end of
    the batch, behind the DELIVERB); its PONG releases, in each of the
    session's subscriptions, what was on the wire when it left.  One
    receipt per session is outstanding at a time; a client that does not
    read sends no PONG and stays held at queue_bytes.                        */
#include "broker.h"
#include "receipt.h"
#include "wire.h"

/*  The high bit tells a receipt's nonce from a heartbeat's.                 */
#define RECEIPT_NONCE_BIT (1ULL << 63)

void
receipt_want (session_t *session)
{
    if (session->receipt_nonce || session->receipt_listed || session->dead)
        return;
    if (ptrvec_push (&session->broker->receipt_sessions, session) == 0)
        session->receipt_listed = true;
}

void
receipt_send_due (broker_t *self)
{
    for (size_t i = 0; i < self->receipt_sessions.size; i++) {
        session_t *session = self->receipt_sessions.items [i];
        session->receipt_listed = false;
        if (session->dead || session->gone || session->receipt_nonce)
            continue;
        for (sub_t *sub = zhashx_first (session->subs); sub; sub = zhashx_next (session->subs))
            sub->receipt_mark = sub->wire_total;
        uint64_t nonce = RECEIPT_NONCE_BIT | ++self->nonce;
        busp_header_t ping = { .command = BUSP_PING, .nonce = nonce };
        if (wire_send (self, session, &ping, NULL, NULL) == 0) {
            session->receipt_nonce = nonce;
            self->stats.receipts_sent++;
        }
    }
    self->receipt_sessions.size = 0;
}

bool
receipt_pong (session_t *session, uint64_t nonce)
{
    if (!session->receipt_nonce || nonce != session->receipt_nonce)
        return false;
    session->receipt_nonce = 0;
    for (sub_t *sub = zhashx_first (session->subs); sub; sub = zhashx_next (session->subs)) {
        uint64_t released = sub->wire_total - sub->wire_len;
        if (sub->receipt_mark > released) {
            sub_wire_release (sub, sub->receipt_mark - released);
            if (sub->channel)
                channel_mark_dirty (sub->channel);
        }
    }
    return true;
}

void
receipt_forget (session_t *session)
{
    if (session->receipt_listed) {
        ptrvec_remove (&session->broker->receipt_sessions, session);
        session->receipt_listed = false;
    }
}
