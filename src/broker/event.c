/*  event.c — reference-counted events (see event.h).

    Events with short names (nearly all) come from a small free list of
    fixed-size blocks that also hold a small payload: at hundreds of
    thousands of events a second malloc and free were a visible share of the
    broker's time.  The list is only touched by the broker thread, which
    owns every event.                                                        */
#include "event.h"
#include "busp.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_NAMES   128       /*  topic + msg_id + 2 NULs that fit        */
/*  Trailing storage: the names, then the DELIVER header template
    (32 fixed bytes + two str8), then an inline payload and headers.        */
#define TAIL(names)   (2 * (names) + 32)
#define BLOCK_SIZE    (sizeof (event_t) + TAIL (SMALL_NAMES) + EVENT_INLINE_MAX)
#define FREE_MAX      4096      /*  blocks kept for reuse (~3 MB)           */

typedef union block {
    union block *next;
    event_t event;
} block_t;

static block_t *s_free;
static size_t s_free_count;

/*  Events with short names all get a block of one size (whatever their
    payload: a big one is not inline), so every such block can be reused.  */
static event_t *
s_alloc (size_t names, size_t inline_bytes)
{
    if (names <= SMALL_NAMES) {
        if (s_free) {
            block_t *block = s_free;
            s_free = block->next;
            s_free_count--;
            return &block->event;
        }
        return malloc (BLOCK_SIZE);
    }
    return malloc (sizeof (event_t) + TAIL (names) + inline_bytes);
}

static void
s_release (event_t *self)
{
    size_t names = (size_t) self->topic_len + self->msg_id_len + 2;
    if (names <= SMALL_NAMES && s_free_count < FREE_MAX) {
        block_t *block = (block_t *) self;
        block->next = s_free;
        s_free = block;
        s_free_count++;
    }
    else
        free (self);
}

void
event_pool_release (void)
{
    while (s_free) {
        block_t *block = s_free;
        s_free = block->next;
        free (block);
    }
    s_free_count = 0;
}

/*  A block with the names filled in; payload and headers are the caller's. */
static event_t *
s_new (const char *topic, size_t topic_len, const char *msg_id, size_t msg_id_len,
       size_t inline_bytes, int64_t ts_us)
{
    assert (topic_len <= 255 && msg_id_len <= 255 && inline_bytes <= EVENT_INLINE_MAX);
    size_t names = topic_len + msg_id_len + 2;
    event_t *self = s_alloc (names, inline_bytes);
    if (!self)
        return NULL;
    self->refs = 1;
    self->ts_us = ts_us;
    self->stream_seq = 0;
    self->topic_len = (uint8_t) topic_len;
    self->msg_id_len = (uint8_t) msg_id_len;
    self->topic = self->data;
    memcpy (self->topic, topic, topic_len);
    self->topic [topic_len] = 0;
    self->msg_id = self->data + topic_len + 1;
    if (msg_id_len)
        memcpy (self->msg_id, msg_id, msg_id_len);
    self->msg_id [msg_id_len] = 0;
    //  The DELIVER header is encoded on first use: events that only travel
    //  as DELIVERB records never need it.
    self->deliver = (uint8_t *) self->msg_id + msg_id_len + 1;
    self->deliver_len = 0;
    return self;
}

static void
s_finish (event_t *self)
{
    self->bytes = (uint32_t) (self->payload_size + self->headers_size + self->topic_len
                              + self->msg_id_len + sizeof (event_t));
}

event_t *
event_new (const char *topic, size_t topic_len,
           const char *msg_id, size_t msg_id_len,
           zmq_msg_t *payload, zmq_msg_t *headers, int64_t ts_us)
{
    event_t *self = s_new (topic, topic_len, msg_id, msg_id_len, 0, ts_us);
    if (!self)
        return NULL;
    self->is_inline = false;
    zmq_msg_init (&self->payload_msg);
    if (payload)
        zmq_msg_move (&self->payload_msg, payload);
    self->payload_data = zmq_msg_data (&self->payload_msg);
    self->payload_size = (uint32_t) zmq_msg_size (&self->payload_msg);
    self->has_headers = headers && zmq_msg_size (headers) > 0;
    zmq_msg_init (&self->headers_msg);
    self->headers_data = NULL;
    self->headers_size = 0;
    if (self->has_headers) {
        zmq_msg_move (&self->headers_msg, headers);
        self->headers_data = zmq_msg_data (&self->headers_msg);
        self->headers_size = (uint32_t) zmq_msg_size (&self->headers_msg);
    }
    s_finish (self);
    return self;
}

event_t *
event_new_copy (const char *topic, size_t topic_len,
                const char *msg_id, size_t msg_id_len,
                const void *payload, size_t size,
                const void *headers, size_t hsize, int64_t ts_us)
{
    if (!headers)
        hsize = 0;
    if (size + hsize > EVENT_INLINE_MAX) {
        zmq_msg_t pmsg, hmsg;
        if (zmq_msg_init_size (&pmsg, size))
            return NULL;
        if (size)
            memcpy (zmq_msg_data (&pmsg), payload, size);
        if (zmq_msg_init_size (&hmsg, hsize)) {
            zmq_msg_close (&pmsg);
            return NULL;
        }
        if (hsize)
            memcpy (zmq_msg_data (&hmsg), headers, hsize);
        event_t *self = event_new (topic, topic_len, msg_id, msg_id_len, &pmsg,
                                   hsize ? &hmsg : NULL, ts_us);
        zmq_msg_close (&pmsg);
        zmq_msg_close (&hmsg);
        return self;
    }
    event_t *self = s_new (topic, topic_len, msg_id, msg_id_len, size + hsize, ts_us);
    if (!self)
        return NULL;
    self->is_inline = true;
    uint8_t *at = (uint8_t *) self->data + TAIL (topic_len + msg_id_len + 2);
    if (size)
        memcpy (at, payload, size);
    self->payload_data = at;
    self->payload_size = (uint32_t) size;
    self->has_headers = hsize > 0;
    self->headers_size = (uint32_t) hsize;
    self->headers_data = NULL;
    if (hsize) {
        memcpy (at + size, headers, hsize);
        self->headers_data = at + size;
    }
    s_finish (self);
    return self;
}

void
event_unref (event_t **self_p)
{
    event_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (--self->refs > 0)
        return;
    if (!self->is_inline) {
        zmq_msg_close (&self->payload_msg);
        zmq_msg_close (&self->headers_msg);
    }
    s_release (self);
}

static inline void
s_put (uint8_t *at, uint64_t value, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        at [i] = (uint8_t) value;
        value >>= 8;
    }
}

const uint8_t *
event_deliver_header (event_t *self, uint32_t sub_id, uint64_t delivery_id, uint16_t attempt)
{
    if (self->deliver_len == 0) {
        //  DELIVER: sig, cmd, sub_id(4), delivery_id(8), stream_seq(8),
        //  ts(8), attempt(2), str8 topic, str8 msg_id (PROTOCOL §3).
        busp_header_t d = {
            .command = BUSP_DELIVER, .ts_us = self->ts_us,
            .topic = busp_strn (self->topic, self->topic_len),
            .msg_id = busp_strn (self->msg_id, self->msg_id_len)
        };
        int len = busp_encode (&d, self->deliver, 32 + 2 + (size_t) self->topic_len
                                                  + self->msg_id_len);
        assert (len > 0);
        self->deliver_len = (uint16_t) len;
    }
    s_put (self->deliver + 2, sub_id, 4);
    s_put (self->deliver + 6, delivery_id, 8);
    s_put (self->deliver + 14, self->stream_seq, 8);
    s_put (self->deliver + 30, attempt, 2);
    return self->deliver;
}
