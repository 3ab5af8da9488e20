/*  wire.h — the ROUTER socket: the only way the broker's state reaches a peer.

    Everything that sends goes through these functions, so a unit test can
    link a fake wire (tests/support/fakewire.c) instead of wire.c and see
    exactly what a channel or subscription sent.                             */
#ifndef BUSD_WIRE_H_INCLUDED
#define BUSD_WIRE_H_INCLUDED

#include "state.h"

#define WIRE_MAX_FRAMES 4       /*  routing id + header + body + headers    */
#define WIRE_RCVHWM     1000    /*  messages one peer may have waiting      */
#define WIRE_FRAME_HEADROOM 65536   /*  over max_payload: 413, not a drop   */

#include "batch.h"

/*  Largest PUBB / DELIVERB body: WELCOME info batch_bytes (PROTOCOL §8.2
    asks for at least max_payload + 1024).                                  */
static inline int64_t
wire_batch_bytes (const config_t *config)
{
    return config->max_payload + BUSP_BATCH_SLACK;
}

/*  ZMQ_MAXMSGSIZE: the largest frame BUSP allows here (a payload, a
    headers frame or a batch body) plus headroom, so that a frame a little
    too large is answered (REJECT 413, ERROR 400) rather than dropped.      */
static inline int64_t
wire_max_msg_size (const config_t *config)
{
    int64_t largest = wire_batch_bytes (config);
    if (config->max_headers > largest)
        largest = config->max_headers;
    return largest + WIRE_FRAME_HEADROOM;
}

/*  Create, configure and bind the ROUTER (config->binds).  0 or -errno.     */
int wire_open (broker_t *self);

/*  Receive one message without blocking into frames [WIRE_MAX_FRAMES]
    (each initialised here; the caller closes the first *nframes).  Frames
    past the limit are read and discarded and *too_many set.  Returns 0,
    -EAGAIN when nothing waits, or another -errno.                           */
int wire_recv (broker_t *self, zmq_msg_t *frames, int *nframes, bool *too_many);

/*  Send a BUSP message to a session: header, then up to two body frames
    (NULL to omit).  Body frames are copied (zmq_msg_copy) not consumed.
    Returns 0, -EAGAIN (HWM reached: nothing was sent) or -EHOSTUNREACH (the
    peer is gone; the session ends at the end of the batch).                 */
int wire_send (broker_t *self, session_t *session, const busp_header_t *h,
               zmq_msg_t *body, zmq_msg_t *extra);
/*  The same with a header already encoded.                                 */
int wire_send_raw (broker_t *self, session_t *session, const uint8_t *header, size_t len,
                   zmq_msg_t *body, zmq_msg_t *extra);
int wire_send_json (broker_t *self, session_t *session, const busp_header_t *h,
                    cJSON *json);
/*  SUBEND (sub_id, code, reason): every way a subscription ends.            */
int wire_send_subend (broker_t *self, session_t *session, uint32_t sub_id, uint16_t code,
                      const char *reason);
/*  Deliver ev to a session as delivery (sub_id, delivery_id, attempt): a
    record appended to the session's DELIVERB when the session has the
    batch feature and the event is small, else one DELIVER sharing the
    payload.  Returns as wire_send (0 means sent or appended).              */
int wire_deliver (broker_t *self, session_t *session, event_t *ev, uint32_t sub_id,
                  uint64_t delivery_id, uint16_t attempt);
/*  Send the DELIVERB being built for a session (0 when none).  As
    wire_send; on -EAGAIN the records stay and are sent later.              */
int wire_flush_batch (broker_t *self, session_t *session);
/*  End of a loop iteration: send every session's DELIVERB.                 */
void wire_flush_batches (broker_t *self);
/*  Forget a session's batch (the session is being freed).                  */
void wire_drop_batch (broker_t *self, session_t *session);

/*  Largest event (payload + headers) copied into a DELIVERB; bigger ones
    go as a DELIVER whose payload frame is shared, not copied.              */
#ifndef WIRE_BATCH_COPY_MAX         /*  overridable to measure it again    */
#define WIRE_BATCH_COPY_MAX   8192
#endif
/*  A DELIVERB is sent once it would grow past this many bytes.             */
#define WIRE_BATCH_TARGET     65536

/*  ERROR to a session, or (session NULL) straight to a routing id blob.
    A session with the error-context feature gets the body of PROTOCOL
    §8.1, naming the command being handled (broker->cur_header).            */
void wire_send_error (broker_t *self, session_t *session, const uint8_t *rid,
                      uint16_t code, const char *reason);

#endif
