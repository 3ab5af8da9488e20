/*  msg.c — busd_msg_t: one delivery, GAP or SUBEND handed to the application.

    A message is a single allocation: the fixed fields and every string the
    application may ask for (topic, msg_id, reason, headers) live in one
    block, NUL-terminated so the accessors can return them as C strings.
    The payload of a DELIVER stays the zmq_msg_t that came off the socket,
    so the bytes are never copied between the wire and the application; a
    DELIVERB record's payload must be copied out of the shared frame anyway
    and goes into the same block, so it costs no second allocation; and the
    messages of one DELIVERB share one block (a slab, reference-counted and
    freed with its last message), so a batch costs one allocation, not one
    per event.                                                              */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

/*  Copy a view into the text block and return where it landed.             */
static const char *
s_put (char **cursor, const char *s, size_t len)
{
    char *at = *cursor;
    if (len)
        memcpy (at, s, len);
    at [len] = '\0';
    *cursor = at + len + 1;
    return at;
}

#define SLAB_ALIGN 16
#define SLAB_HEAD  ((sizeof (busd_msg_slab_t) + SLAB_ALIGN - 1) & ~(size_t) (SLAB_ALIGN - 1))

static inline size_t
s_round (size_t size)
{
    return (size + SLAB_ALIGN - 1) & ~(size_t) (SLAB_ALIGN - 1);
}

busd_msg_slab_t *
busd_msg_slab_new (size_t count, size_t body_size)
{
    //  Each record's strings, headers and payload come out of the body;
    //  a message adds its struct, four NULs and alignment.
    size_t cap = body_size + count * s_round (sizeof (busd_msg_t) + 4 + SLAB_ALIGN);
    busd_msg_slab_t *slab = malloc (SLAB_HEAD + cap);
    if (!slab)
        return NULL;
    slab->refs = 1;
    slab->used = 0;
    slab->cap = cap;
    return slab;
}

void
busd_msg_slab_release (busd_msg_slab_t *slab)
{
    if (slab && __atomic_sub_fetch (&slab->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free (slab);
}

static busd_msg_t *
s_new (busd_msg_slab_t *slab, busd_msg_kind_t kind, uint32_t sub_id,
       const char *topic, size_t topic_len,
       const char *msg_id, size_t msg_id_len,
       const char *reason, size_t reason_len,
       const char *headers, size_t headers_len,
       const void *payload, size_t size, bool inline_payload)
{
    size_t text = topic_len + msg_id_len + reason_len + 3
                + (headers ? headers_len + 1 : 0);
    size_t total = sizeof (busd_msg_t) + text + (inline_payload ? size : 0);
    busd_msg_t *self;
    if (slab) {
        total = s_round (total);
        if (slab->used + total > slab->cap)
            return NULL;        /*  sized by busd_msg_slab_new: cannot happen */
        self = (busd_msg_t *) ((uint8_t *) slab + SLAB_HEAD + slab->used);
        slab->used += total;
        __atomic_add_fetch (&slab->refs, 1, __ATOMIC_RELAXED);
    }
    else {
        self = malloc (total);
        if (!self)
            return NULL;
    }
    self->slab = slab;
    self->next = NULL;
    self->inline_payload = NULL;
    self->inline_size = 0;
    //  An inline message's payload message is never used: not set up.
    if (!inline_payload)
        zmq_msg_init (&self->payload);
    else {
        uint8_t *at = (uint8_t *) self->text + text;
        if (size)
            memcpy (at, payload, size);
        self->inline_payload = at;
        self->inline_size = size;
    }
    self->kind = kind;
    self->sub_id = sub_id;
    self->epoch = 0;
    self->attempt = 0;
    self->code = 0;
    self->delivery_id = 0;
    self->stream_seq = 0;
    self->dropped = 0;
    self->ts_us = 0;
    char *cursor = self->text;
    s_put (&cursor, topic, topic_len);
    self->msg_id = s_put (&cursor, msg_id, msg_id_len);
    self->reason = s_put (&cursor, reason, reason_len);
    self->headers = headers ? s_put (&cursor, headers, headers_len) : NULL;
    return self;
}

busd_msg_t *
busd_msg_new (busd_msg_kind_t kind, uint32_t sub_id,
              const char *topic, size_t topic_len,
              const char *msg_id, size_t msg_id_len,
              const char *reason, size_t reason_len,
              const char *headers, size_t headers_len)
{
    return s_new (NULL, kind, sub_id, topic, topic_len, msg_id, msg_id_len, reason, reason_len,
                  headers, headers_len, NULL, 0, false);
}

busd_msg_t *
busd_msg_new_inline (busd_msg_slab_t *slab, uint32_t sub_id,
                     const char *topic, size_t topic_len,
                     const char *msg_id, size_t msg_id_len,
                     const char *headers, size_t headers_len,
                     const void *payload, size_t size)
{
    return s_new (slab, BUSD_MSG_DELIVER, sub_id, topic, topic_len, msg_id, msg_id_len, NULL, 0,
                  headers, headers_len, payload, size, true);
}

BUSD_EXPORT void
busd_msg_destroy (busd_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    busd_msg_t *self = *self_p;
    if (!self->inline_payload)
        zmq_msg_close (&self->payload);
    if (self->slab)
        busd_msg_slab_release (self->slab);
    else
        free (self);
    *self_p = NULL;
}

BUSD_EXPORT busd_msg_kind_t
busd_msg_kind (const busd_msg_t *m)
{
    return m ? m->kind : 0;
}

BUSD_EXPORT uint32_t
busd_msg_sub_id (const busd_msg_t *m)
{
    return m ? m->sub_id : 0;
}

BUSD_EXPORT const char *
busd_msg_topic (const busd_msg_t *m)
{
    return m ? m->text : "";
}

/*  zmq_msg_data takes a non-const message although it only reads it.      */
BUSD_EXPORT const void *
busd_msg_payload (const busd_msg_t *m)
{
    if (m && m->inline_payload)
        return m->inline_payload;
    return m ? zmq_msg_data ((zmq_msg_t *) &m->payload) : NULL;
}

BUSD_EXPORT size_t
busd_msg_size (const busd_msg_t *m)
{
    if (m && m->inline_payload)
        return m->inline_size;
    return m ? zmq_msg_size (&m->payload) : 0;
}

BUSD_EXPORT const char *
busd_msg_msg_id (const busd_msg_t *m)
{
    return m ? m->msg_id : "";
}

BUSD_EXPORT const char *
busd_msg_headers (const busd_msg_t *m)
{
    return m ? m->headers : NULL;
}

BUSD_EXPORT uint64_t
busd_msg_delivery_id (const busd_msg_t *m)
{
    return m ? m->delivery_id : 0;
}

BUSD_EXPORT uint64_t
busd_msg_stream_seq (const busd_msg_t *m)
{
    return m ? m->stream_seq : 0;
}

BUSD_EXPORT int64_t
busd_msg_ts_us (const busd_msg_t *m)
{
    return m ? m->ts_us : 0;
}

BUSD_EXPORT uint16_t
busd_msg_attempt (const busd_msg_t *m)
{
    return m ? m->attempt : 0;
}

BUSD_EXPORT uint64_t
busd_msg_dropped (const busd_msg_t *m)
{
    return m ? m->dropped : 0;
}

BUSD_EXPORT uint16_t
busd_msg_code (const busd_msg_t *m)
{
    return m ? m->code : 0;
}

BUSD_EXPORT const char *
busd_msg_reason (const busd_msg_t *m)
{
    return m ? m->reason : "";
}
