/*  event.h — one accepted event, shared by every queue that holds it.

    An event is created once per accepted PUB and reference-counted: fan-out
    to N subscriptions costs N pointer copies.  Topic and msg_id live in the
    same allocation, and so do payload and headers when together they fit
    EVENT_INLINE_MAX: a batched event then costs no malloc and no call into
    libzmq at all (it is copied into DELIVERB records anyway).  Bigger ones
    keep a zmq_msg_t that each DELIVER shares with zmq_msg_copy (libzmq
    refcounts large messages) instead of copying bytes.                      */
#ifndef BUSD_EVENT_H_INCLUDED
#define BUSD_EVENT_H_INCLUDED

#include <zmq.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

/*  Payload plus headers up to this size live in the event's own block.    */
#define EVENT_INLINE_MAX  256

typedef struct event {
    uint32_t refs;
    bool has_headers;
    bool is_inline;             /*  payload and headers in data []          */
    uint8_t topic_len;
    uint8_t msg_id_len;
    uint32_t payload_size;
    uint32_t headers_size;      /*  0 unless has_headers                    */
    uint32_t bytes;             /*  event_bytes, computed once              */
    const uint8_t *payload_data;    /*  wherever the bytes live             */
    const uint8_t *headers_data;    /*  NULL unless has_headers             */
    int64_t ts_us;              /*  broker's acceptance time                */
    uint64_t stream_seq;        /*  0: not in a durable stream              */
    /*  The frames a big event shares with every DELIVER; not initialised
        for an inline event (read payload_data / headers_data instead, and
        make a new event from one with event_new_copy).                     */
    zmq_msg_t payload_msg;
    zmq_msg_t headers_msg;
    char *topic;                /*  NUL-terminated, points into data        */
    char *msg_id;               /*  NUL-terminated ("" when none)           */
    /*  The DELIVER header, encoded once on first use (deliver_len 0 until
        then): every delivery of the event only patches sub_id, delivery_id,
        stream_seq and attempt in place (the broker thread owns the event,
        and zmq_send copies the bytes).                                      */
    uint8_t *deliver;
    uint16_t deliver_len;
    char data [];
} event_t;

/*  Create an event with refs = 1.  payload (and headers when not NULL) are
    moved into the event: the caller's messages are left empty.  Returns
    NULL on allocation failure (the caller's messages are then untouched). */
event_t *event_new (const char *topic, size_t topic_len,
                    const char *msg_id, size_t msg_id_len,
                    zmq_msg_t *payload, zmq_msg_t *headers, int64_t ts_us);

/*  The same from bytes, which are copied: into the event's own block when
    size + hsize <= EVENT_INLINE_MAX, else into fresh messages.  headers
    NULL or hsize 0: none.  NULL on allocation failure.                      */
event_t *event_new_copy (const char *topic, size_t topic_len,
                         const char *msg_id, size_t msg_id_len,
                         const void *payload, size_t size,
                         const void *headers, size_t hsize, int64_t ts_us);

static inline event_t *
event_ref (event_t *self)
{
    self->refs++;
    return self;
}

/*  Drop one reference; frees the event with the last; nulls *self_p.        */
void event_unref (event_t **self_p);

/*  Fill the per-delivery fields of ev->deliver; returns the header.         */
const uint8_t *event_deliver_header (event_t *self, uint32_t sub_id, uint64_t delivery_id,
                                     uint16_t attempt);

/*  Free the blocks kept for reuse (at exit, for leak checkers).             */
void event_pool_release (void);

/*  Bytes this event holds on behalf of queues (payload + headers + names),
    the unit of every byte limit.                                            */
static inline size_t
event_bytes (const event_t *self)
{
    return self->bytes;
}

#endif
