/*  fakewire.c — the wire.c test double (see fakewire.h).  It keeps wire.c's
    contract: a failed send sends nothing, and -EHOSTUNREACH queues the end
    of the session the way the real wire does (work_session_gone).           */
#include "fakewire.h"
#include <errno.h>

fakewire_sent_t fakewire_sent [FAKEWIRE_MAX];
size_t fakewire_count;
int fakewire_fail_code;
int fakewire_fail_count;

void
fakewire_reset (void)
{
    fakewire_count = 0;
    fakewire_fail_code = 0;
    fakewire_fail_count = 0;
}

size_t
fakewire_count_of (uint8_t command)
{
    size_t n = 0;
    for (size_t i = 0; i < fakewire_count; i++)
        if (fakewire_sent [i].h.command == command)
            n++;
    return n;
}

const fakewire_sent_t *
fakewire_nth (uint8_t command, size_t nth)
{
    for (size_t i = 0; i < fakewire_count; i++)
        if (fakewire_sent [i].h.command == command && nth-- == 0)
            return &fakewire_sent [i];
    return NULL;
}

int
wire_open (broker_t *self)
{
    (void) self;
    return 0;
}

int
wire_recv (broker_t *self, zmq_msg_t *frames, int *nframes, bool *too_many)
{
    (void) self; (void) frames; (void) nframes; (void) too_many;
    return -EAGAIN;
}

int
wire_send_raw (broker_t *self, session_t *session, const uint8_t *header, size_t len,
               zmq_msg_t *body, zmq_msg_t *extra)
{
    (void) extra;
    if (session->dead || session->gone)
        return -EHOSTUNREACH;
    if (fakewire_fail_count > 0) {
        fakewire_fail_count--;
        if (fakewire_fail_code == -EHOSTUNREACH)
            work_session_gone (self, session);
        else
            session->send_refused = true;
        return fakewire_fail_code;
    }
    if (fakewire_count < FAKEWIRE_MAX) {
        fakewire_sent_t *sent = &fakewire_sent [fakewire_count++];
        const char *why = NULL;
        if (busp_decode (header, len, &sent->h, &why))
            sent->h.command = 0;
        sent->session = session;
        sent->payload_size = body ? zmq_msg_size (body) : 0;
    }
    return 0;
}

int
wire_send (broker_t *self, session_t *session, const busp_header_t *h,
           zmq_msg_t *body, zmq_msg_t *extra)
{
    uint8_t buf [BUSP_HEADER_MAX];
    int len = busp_encode (h, buf, sizeof buf);
    if (len < 0)
        return len;
    return wire_send_raw (self, session, buf, (size_t) len, body, extra);
}

int
wire_send_subend (broker_t *self, session_t *session, uint32_t sub_id, uint16_t code,
                  const char *reason)
{
    busp_header_t e = { .command = BUSP_SUBEND, .sub_id = sub_id, .code = code,
                        .name = busp_str (reason) };
    return wire_send (self, session, &e, NULL, NULL);
}

int
wire_send_json (broker_t *self, session_t *session, const busp_header_t *h, cJSON *json)
{
    (void) json;
    return wire_send (self, session, h, NULL, NULL);
}

void
wire_send_error (broker_t *self, session_t *session, const uint8_t *rid,
                 uint16_t code, const char *reason)
{
    (void) rid;
    busp_header_t h = { .command = BUSP_ERROR, .code = code, .name = busp_str (reason) };
    if (session)
        wire_send (self, session, &h, NULL, NULL);
}

/*  Batching (PROTOCOL §8.2): the double records every delivery as a plain
    DELIVER, as wire.c does for a session without the feature, so tests see
    one record per event; there is never a DELIVERB being built.            */
int
wire_deliver (broker_t *self, session_t *session, event_t *ev, uint32_t sub_id,
              uint64_t delivery_id, uint16_t attempt)
{
    const uint8_t *header = event_deliver_header (ev, sub_id, delivery_id, attempt);
    if (!ev->is_inline)
        return wire_send_raw (self, session, header, ev->deliver_len, &ev->payload_msg,
                              ev->has_headers ? &ev->headers_msg : NULL);
    //  An inline event's bytes are not a message: record copies of them.
    zmq_msg_t payload, headers;
    zmq_msg_init_size (&payload, ev->payload_size);
    memcpy (zmq_msg_data (&payload), ev->payload_data, ev->payload_size);
    zmq_msg_init_size (&headers, ev->headers_size);
    if (ev->headers_size)
        memcpy (zmq_msg_data (&headers), ev->headers_data, ev->headers_size);
    int rc = wire_send_raw (self, session, header, ev->deliver_len, &payload,
                            ev->has_headers ? &headers : NULL);
    zmq_msg_close (&payload);
    zmq_msg_close (&headers);
    return rc;
}

int
wire_flush_batch (broker_t *self, session_t *session)
{
    (void) self;
    (void) session;
    return 0;
}

void
wire_flush_batches (broker_t *self)
{
    (void) self;
}

void
wire_drop_batch (broker_t *self, session_t *session)
{
    (void) self;
    (void) session;
}
