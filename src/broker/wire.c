/*  wire.c — the ROUTER socket: its options, receiving, sending.

    The only file that touches the socket.  A PUB's frames are zmq_msg_t
    end to end: its payload is moved into the event on the way in and shared
    with every DELIVER on the way out (zmq_msg_copy is a reference, not a
    copy).  A small PUBB record's payload lives in the event's own block
    (event.h) and goes out by copy, into a DELIVERB or a DELIVER frame.  A
    peer that has vanished is not ended here: callers may be iterating over
    what session_end changes, so it is queued (work_session_gone).          */
#include "broker.h"
#include "auth.h"
#include "jsontext.h"
#include "utf8.h"
#include "batch.h"
#include <errno.h>

int
wire_open (broker_t *self)
{
    auth_seed_routing_ids ();
    self->router_sock = zsock_new (ZMQ_ROUTER);
    if (!self->router_sock)
        return -ENOMEM;
    self->router = zsock_resolve (self->router_sock);
    int on = 1;
    int hwm = (int) self->config->sndhwm;
    int rcvhwm = WIRE_RCVHWM;
    int zero = 0;
    //  No frame may be larger than the largest one BUSP allows (payload,
    //  headers or header frame) plus headroom: ZeroMQ drops a peer that
    //  announces more instead of buffering it whole before we could say 413.
    int64_t maxmsgsize = wire_max_msg_size (self->config);
    //  MANDATORY turns a send to a vanished peer into EHOSTUNREACH instead
    //  of a silent drop; queue_bytes (what is sent and not known to be
    //  read, receipt.c) keeps sends under the HWM, so EAGAIN means a peer
    //  that does not read what it asked for (sub.c ends it).  The receive HWM bounds what one peer can queue
    //  in the broker: past it ZeroMQ stops reading that peer's connection.
    if (zmq_setsockopt (self->router, ZMQ_ROUTER_MANDATORY, &on, sizeof on)
    ||  zmq_setsockopt (self->router, ZMQ_SNDHWM, &hwm, sizeof hwm)
    ||  zmq_setsockopt (self->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm)
    ||  zmq_setsockopt (self->router, ZMQ_MAXMSGSIZE, &maxmsgsize, sizeof maxmsgsize)
    ||  zmq_setsockopt (self->router, ZMQ_LINGER, &zero, sizeof zero)) {
        log_error ("cannot configure the ROUTER socket: %s", zmq_strerror (errno));
        return -EINVAL;
    }
    //  auth.c: each listener with its own mechanism, all through ZAP.
    return auth_bind_listeners (self);
}

int
wire_recv (broker_t *self, zmq_msg_t *frames, int *nframes_p, bool *too_many_p)
{
    zmq_msg_init (&frames [0]);
    if (zmq_msg_recv (&frames [0], self->router, ZMQ_DONTWAIT) == -1) {
        int err = errno;
        zmq_msg_close (&frames [0]);
        return err == EAGAIN || err == EINTR ? -EAGAIN : -err;
    }
    int nframes = 1;
    bool too_many = false;
    bool more = zmq_msg_more (&frames [0]);
    while (more) {
        if (nframes < WIRE_MAX_FRAMES) {
            zmq_msg_init (&frames [nframes]);
            zmq_msg_recv (&frames [nframes], self->router, 0);
            more = zmq_msg_more (&frames [nframes]);
            nframes++;
        }
        else {
            zmq_msg_t excess;
            zmq_msg_init (&excess);
            zmq_msg_recv (&excess, self->router, 0);
            more = zmq_msg_more (&excess);
            zmq_msg_close (&excess);
            too_many = true;
        }
    }
    *nframes_p = nframes;
    *too_many_p = too_many;
    return 0;
}

int
wire_send (broker_t *self, session_t *session, const busp_header_t *h,
             zmq_msg_t *body, zmq_msg_t *extra)
{
    uint8_t buf [BUSP_HEADER_MAX];
    //  Reasons quote what peers sent: valid UTF-8 on the wire, shortened on
    //  a character boundary (busp_str would cut at 255 bytes).
    busp_header_t clean;
    char name [256];
    if (h->name.len && !busp_utf8_valid (h->name.data, h->name.len)) {
        clean = *h;
        size_t n = busp_utf8_sanitize (h->name.data, h->name.len, name, sizeof name, NULL);
        clean.name = busp_strn (name, n);
        h = &clean;
    }
    int len = busp_encode (h, buf, sizeof buf);
    assert (len > 0);
    return wire_send_raw (self, session, buf, (size_t) len, body, extra);
}

/*  The routing-id frame: the one part of a message that can fail.          */
static int
s_send_rid (broker_t *self, session_t *session, uint8_t command)
{
    if (session->disconnected) {
        //  auth.c saw its connection close: another peer may hold its
        //  routing id by now.
        log_info ("client '%s' (%s) is gone", session->name, session->id_hex);
        work_session_gone (self, session);
        return -EHOSTUNREACH;
    }
    if (zmq_send (self->router, session->rid + 1, session->rid [0], ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        int err = errno;
        self->stats.send_failures++;
        if (err == EHOSTUNREACH) {
            log_info ("client '%s' (%s) is gone", session->name, session->id_hex);
            work_session_gone (self, session);
            return -EHOSTUNREACH;
        }
        //  Once per session: a peer that does not read would otherwise
        //  get a log line for every message it makes the broker answer.
        if (!session->send_refused)
            log_warning ("send %s to %s failed: %s (further refusals are only counted in "
                         "send_failures)", busp_command_name (command), session->name,
                         zmq_strerror (err));
        session->send_refused = true;
        return -EAGAIN;
    }
    return 0;
}

static void
s_free_buf (void *data, void *hint)
{
    (void) hint;
    free (data);
}

int
wire_flush_batch (broker_t *self, session_t *session)
{
    if (session->ob_count == 0)
        return 0;
    if (session->dead || session->gone)
        return -EHOSTUNREACH;
    int rc = s_send_rid (self, session, BUSP_DELIVERB);
    if (rc)
        return rc;
    uint8_t header [4] = { BUSP_SIGNATURE, BUSP_DELIVERB,
                           (uint8_t) (session->ob_count >> 8), (uint8_t) session->ob_count };
    zmq_send (self->router, header, sizeof header, ZMQ_SNDMORE);
    //  The buffer goes to ZeroMQ as it is: no copy of the records.
    zmq_msg_t body;
    if (zmq_msg_init_data (&body, session->ob_buf, session->ob_len, s_free_buf, NULL) == 0) {
        session->ob_buf = NULL;
        session->ob_last_cap = session->ob_cap;
    }
    else {
        zmq_msg_init_size (&body, session->ob_len);
        memcpy (zmq_msg_data (&body), session->ob_buf, session->ob_len);
    }
    zmq_msg_send (&body, self->router, 0);
    session->ob_count = 0;
    session->ob_len = 0;
    session->ob_cap = session->ob_buf ? session->ob_cap : 0;
    self->stats.deliverb_out++;
    return 0;
}

void
wire_flush_batches (broker_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->batch_sessions.size; i++) {
        session_t *session = self->batch_sessions.items [i];
        int rc = wire_flush_batch (self, session);
        if (rc == -EAGAIN && session->ob_count)
            //  HWM: the records wait for the next run (the tick retries).
            self->batch_sessions.items [kept++] = session;
        else
            //  Sent, or the peer is gone: then the records stay for
            //  session_end, which takes back what never left.
            session->ob_listed = false;
    }
    self->batch_sessions.size = kept;
}

void
wire_drop_batch (broker_t *self, session_t *session)
{
    if (session->ob_listed) {
        ptrvec_remove (&self->batch_sessions, session);
        session->ob_listed = false;
    }
    free (session->ob_buf);
    session->ob_buf = NULL;
    session->ob_count = 0;
    session->ob_len = session->ob_cap = 0;
}

/*  The start of every message to a session: nothing to a session that is
    gone; the DELIVERB records already built go first (the session's order
    is the order in which things were sent to it); then the routing frame.
    Past it the message is committed: later parts of a multipart message
    cannot fail on the HWM.                                                 */
static int
s_send_begin (broker_t *self, session_t *session, uint8_t command)
{
    if (session->dead || session->gone)
        return -EHOSTUNREACH;
    if (session->ob_count) {
        int rc = wire_flush_batch (self, session);
        if (rc)
            return rc;
    }
    return s_send_rid (self, session, command);
}

/*  A DELIVER of an inline event: its bytes live in the event's block,
    which may be reused before libzmq's I/O thread sends them, so they go
    by copy (zmq_send) instead of as shared messages.                       */
static int
s_send_copied (broker_t *self, session_t *session, const uint8_t *header, size_t len,
               const event_t *ev)
{
    int rc = s_send_begin (self, session, header [1]);
    if (rc)
        return rc;
    zmq_send (self->router, header, len, ZMQ_SNDMORE);
    zmq_send (self->router, ev->payload_size ? ev->payload_data : (const uint8_t *) "",
              ev->payload_size, ev->has_headers ? ZMQ_SNDMORE : 0);
    if (ev->has_headers)
        zmq_send (self->router, ev->headers_data, ev->headers_size, 0);
    return 0;
}

int
wire_deliver (broker_t *self, session_t *session, event_t *ev, uint32_t sub_id,
              uint64_t delivery_id, uint16_t attempt)
{
    size_t payload_size = ev->payload_size;
    size_t headers_size = ev->headers_size;
    if (!session->feat_batch || payload_size + headers_size > WIRE_BATCH_COPY_MAX) {
        const uint8_t *header = event_deliver_header (ev, sub_id, delivery_id, attempt);
        if (ev->is_inline)
            return s_send_copied (self, session, header, ev->deliver_len, ev);
        return wire_send_raw (self, session, header, ev->deliver_len, &ev->payload_msg,
                              ev->has_headers ? &ev->headers_msg : NULL);
    }
    if (session->dead || session->gone)
        return -EHOSTUNREACH;
    size_t size = busp_deliver_rec_size (ev->topic_len, ev->msg_id_len, headers_size, payload_size);
    if (session->ob_count == BUSP_BATCH_MAX
    ||  (session->ob_count && session->ob_len + size > WIRE_BATCH_TARGET)) {
        int rc = wire_flush_batch (self, session);
        if (rc)
            return rc;
    }
    if (session->ob_len + size > session->ob_cap) {
        size_t cap = session->ob_cap ? session->ob_cap
                   : session->ob_last_cap ? session->ob_last_cap : 4096;
        while (cap < session->ob_len + size)
            cap *= 2;
        uint8_t *buf = realloc (session->ob_buf, cap);
        if (!buf)
            return -EAGAIN;         /*  kept by the caller, tried again     */
        session->ob_buf = buf;
        session->ob_cap = cap;
    }
    busp_deliver_rec_t rec = {
        .sub_id = sub_id, .delivery_id = delivery_id, .stream_seq = ev->stream_seq,
        .ts_us = ev->ts_us, .attempt = attempt,
        .topic = { ev->topic, ev->topic_len }, .msg_id = { ev->msg_id, ev->msg_id_len },
        .headers = ev->headers_data, .headers_size = (uint32_t) headers_size,
        .payload = ev->payload_data, .payload_size = (uint32_t) payload_size
    };
    busp_deliver_rec_put (session->ob_buf + session->ob_len, &rec);
    session->ob_len += size;
    session->ob_count++;
    if (!session->ob_listed) {
        session->ob_listed = true;
        ptrvec_push (&self->batch_sessions, session);
    }
    return 0;
}

int
wire_send_raw (broker_t *self, session_t *session, const uint8_t *buf, size_t len,
                 zmq_msg_t *body, zmq_msg_t *extra)
{
    int rc = s_send_begin (self, session, buf [1]);
    if (rc)
        return rc;
    bool more = body || extra;
    zmq_send (self->router, buf, (size_t) len, more ? ZMQ_SNDMORE : 0);
    if (more) {
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        if (body)
            zmq_msg_copy (&copy, body);
        zmq_msg_send (&copy, self->router, extra ? ZMQ_SNDMORE : 0);
        if (extra) {
            zmq_msg_init (&copy);
            zmq_msg_copy (&copy, extra);
            zmq_msg_send (&copy, self->router, 0);
        }
    }
    return 0;
}

int
wire_send_json (broker_t *self, session_t *session, const busp_header_t *h, cJSON *json)
{
    json_utf8_sanitize (json);
    char *text = cJSON_PrintUnformatted (json);
    if (!text)
        return -ENOMEM;
    size_t len = strlen (text);
    zmq_msg_t body;
    if (zmq_msg_init_size (&body, len)) {
        free (text);
        return -ENOMEM;
    }
    memcpy (zmq_msg_data (&body), text, len);
    free (text);
    int rc = wire_send (self, session, h, &body, NULL);
    zmq_msg_close (&body);
    return rc;
}

int
wire_send_subend (broker_t *self, session_t *session, uint32_t sub_id, uint16_t code,
                  const char *reason)
{
    busp_header_t e = { .command = BUSP_SUBEND, .sub_id = sub_id, .code = code,
                        .name = busp_str (reason) };
    return wire_send (self, session, &e, NULL, NULL);
}

void
wire_send_error (broker_t *self, session_t *session, const uint8_t *rid,
                   uint16_t code, const char *reason)
{
    busp_header_t h = { .command = BUSP_ERROR, .code = code, .name = busp_str (reason) };
    if (session && session->feat_errctx && !session->dead) {
        char ctx [BUSP_ERRCTX_MAX];
        const char *text = self->errctx;
        if (!text) {
            busp_error_context (self->cur_header, self->cur_header_size, ctx, sizeof ctx);
            text = ctx;
        }
        zmq_msg_t body;
        zmq_msg_init_size (&body, strlen (text));
        memcpy (zmq_msg_data (&body), text, strlen (text));
        wire_send (self, session, &h, &body, NULL);
        zmq_msg_close (&body);
        return;
    }
    if (session) {
        wire_send (self, session, &h, NULL, NULL);
        return;
    }
    //  No session: answer the routing id directly.
    uint8_t buf [BUSP_HEADER_MAX];
    int len = busp_encode (&h, buf, sizeof buf);
    assert (len > 0);
    if (zmq_send (self->router, rid + 1, rid [0], ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        self->stats.send_failures++;
        return;
    }
    zmq_send (self->router, buf, (size_t) len, 0);
}

