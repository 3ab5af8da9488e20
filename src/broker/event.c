/*  event.c — reference-counted events (see event.h).                        */
#include "event.h"
#include <stdlib.h>
#include <string.h>

event_t *
event_new (const char *topic, size_t topic_len,
           const char *msg_id, size_t msg_id_len,
           zmq_msg_t *payload, zmq_msg_t *headers, int64_t ts_us)
{
    event_t *self = malloc (sizeof (event_t) + topic_len + msg_id_len + 2);
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
    zmq_msg_init (&self->payload);
    if (payload)
        zmq_msg_move (&self->payload, payload);
    self->has_headers = headers && zmq_msg_size (headers) > 0;
    zmq_msg_init (&self->headers);
    if (self->has_headers)
        zmq_msg_move (&self->headers, headers);
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
    zmq_msg_close (&self->payload);
    zmq_msg_close (&self->headers);
    free (self);
}

size_t
event_bytes (const event_t *self)
{
    return zmq_msg_size ((zmq_msg_t *) &self->payload)
         + (self->has_headers ? zmq_msg_size ((zmq_msg_t *) &self->headers) : 0)
         + self->topic_len + self->msg_id_len + sizeof (event_t);
}
