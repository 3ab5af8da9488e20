/*  outbox.c — unacknowledged publishes in pub_seq order (see outbox.h).

    The ring holds pointers rather than entries because an entry embeds a
    zmq_msg_t, which must not be moved with memcpy; growing or compacting
    the ring then only moves pointers.  One arena block per publish carries
    the entry and its strings (and a batched payload) together.             */
#include "outbox.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
outbox_init (outbox_t *self)
{
    memset (self, 0, sizeof (*self));
    arena_init (&self->arena);
}

void
outbox_clear (outbox_t *self)
{
    for (size_t i = 0; i < self->count; i++) {
        outbox_entry_t *entry = outbox_at (self, i);
        outbox_entry_destroy (self, &entry);
    }
    free (self->ring);
    arena_destroy (&self->arena);
    memset (self, 0, sizeof (*self));
    arena_init (&self->arena);
}

static outbox_entry_t *
s_entry_new (outbox_t *outbox, const char *topic, size_t topic_len,
             const char *msg_id, size_t msg_id_len,
             const char *headers, size_t headers_len,
             const void *payload, size_t size, bool inline_payload)
{
    assert (topic_len <= 255 && msg_id_len <= 255);
    size_t text = topic_len + 1 + msg_id_len + 1 + (headers ? headers_len + 1 : 0);
    outbox_entry_t *self = arena_alloc (&outbox->arena, sizeof (outbox_entry_t) + text
                                        + (inline_payload ? size : 0));
    if (!self)
        return NULL;
    //  An inline entry's payload message is never used: not even set up.
    self->inline_payload = NULL;
    self->inline_size = 0;
    if (!inline_payload)
        zmq_msg_init (&self->payload);
    else {
        uint8_t *at = (uint8_t *) self->topic + text;
        if (size)
            memcpy (at, payload, size);
        self->inline_payload = at;
        self->inline_size = size;
    }
    self->seq = 0;
    self->rejected = false;
    self->topic_len = (uint8_t) topic_len;
    self->msg_id_len = (uint8_t) msg_id_len;
    char *cursor = self->topic;
    memcpy (cursor, topic, topic_len);
    cursor [topic_len] = '\0';
    cursor += topic_len + 1;
    if (msg_id_len)
        memcpy (cursor, msg_id, msg_id_len);
    cursor [msg_id_len] = '\0';
    self->msg_id = cursor;
    cursor += msg_id_len + 1;
    self->headers = NULL;
    self->headers_len = 0;
    if (headers) {
        if (headers_len)
            memcpy (cursor, headers, headers_len);
        cursor [headers_len] = '\0';
        self->headers = cursor;
        self->headers_len = headers_len;
    }
    return self;
}

outbox_entry_t *
outbox_entry_new (outbox_t *self, const char *topic, size_t topic_len,
                  const char *msg_id, size_t msg_id_len,
                  const char *headers, size_t headers_len)
{
    return s_entry_new (self, topic, topic_len, msg_id, msg_id_len, headers, headers_len,
                        NULL, 0, false);
}

outbox_entry_t *
outbox_entry_new_inline (outbox_t *self, const char *topic, size_t topic_len,
                         const char *msg_id, size_t msg_id_len,
                         const char *headers, size_t headers_len,
                         const void *payload, size_t size)
{
    return s_entry_new (self, topic, topic_len, msg_id, msg_id_len, headers, headers_len,
                        payload, size, true);
}

void
outbox_entry_destroy (outbox_t *self, outbox_entry_t **entry_p)
{
    if (!entry_p || !*entry_p)
        return;
    outbox_entry_t *entry = *entry_p;
    if (!entry->inline_payload)
        zmq_msg_close (&entry->payload);
    arena_free (&self->arena, entry);
    *entry_p = NULL;
}

/*  Double the ring, unrolling it so the front lands at index 0.            */
static int
s_grow (outbox_t *self)
{
    size_t cap = self->cap ? self->cap * 2 : 256;
    outbox_entry_t **ring = malloc (cap * sizeof (*ring));
    if (!ring)
        return -ENOMEM;
    for (size_t i = 0; i < self->count; i++)
        ring [i] = outbox_at (self, i);
    free (self->ring);
    self->ring = ring;
    self->cap = cap;
    self->head = 0;
    return 0;
}

int
outbox_push (outbox_t *self, outbox_entry_t *entry)
{
    if (self->count == self->cap) {
        int rc = s_grow (self);
        if (rc)
            return rc;
    }
    self->ring [(self->head + self->count) & (self->cap - 1)] = entry;
    self->count++;
    return 0;
}

uint64_t
outbox_ack (outbox_t *self, uint64_t n)
{
    uint64_t accepted = 0;
    while (self->nsent > 0) {
        outbox_entry_t *entry = self->ring [self->head];
        if (entry->seq > n)
            break;
        if (!entry->rejected)
            accepted++;
        outbox_entry_destroy (self, &entry);
        self->head = (self->head + 1) & (self->cap - 1);
        self->count--;
        self->nsent--;
    }
    return accepted;
}

outbox_entry_t *
outbox_find (outbox_t *self, uint64_t seq)
{
    if (self->nsent == 0)
        return NULL;
    uint64_t first = outbox_at (self, 0)->seq;
    if (seq < first || seq - first >= self->nsent)
        return NULL;
    outbox_entry_t *entry = outbox_at (self, (size_t) (seq - first));
    assert (entry->seq == seq);
    return entry;
}

void
outbox_reset (outbox_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->count; i++) {
        outbox_entry_t *entry = outbox_at (self, i);
        if (entry->rejected) {
            outbox_entry_destroy (self, &entry);
            continue;
        }
        entry->seq = 0;
        self->ring [(self->head + kept) & (self->cap - 1)] = entry;
        kept++;
    }
    self->count = kept;
    self->nsent = 0;
}
