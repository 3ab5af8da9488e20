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
/*  ERROR to a session, or (session NULL) straight to a routing id blob.     */
void wire_send_error (broker_t *self, session_t *session, const uint8_t *rid,
                      uint16_t code, const char *reason);

#endif
