/*  batcher.c — pending PUBB / ACKB records and the flusher (see batcher.h).

    Buffers grow by doubling and are handed to ZeroMQ as they are when a
    batch is sent (zmq_msg_init_data), so a record is written once, into
    the frame that carries it.                                              */
#include "batcher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *
s_flusher (void *arg)
{
    batcher_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        if (batcher_pending (self) && self->flush (self->arg) == 0)
            continue;
        /*  Nothing pending, or it cannot go now (no session): sleep until
            the next record or the end.                                    */
        self->waiting = true;
        pthread_cond_wait (&self->wake, &self->lock);
        self->waiting = false;  /*  (batcher_kick clears it when signalling) */
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

int
batcher_init (batcher_t *self, batcher_flush_fn *flush, void *arg)
{
    memset (self, 0, sizeof (*self));
    self->flush = flush;
    self->arg = arg;
    self->max_count = BUSP_BATCH_MAX;
    self->max_bytes = BATCHER_TARGET_BYTES;
    if (pthread_mutex_init (&self->lock, NULL))
        return -ENOMEM;
    if (pthread_cond_init (&self->wake, NULL)) {
        pthread_mutex_destroy (&self->lock);
        return -ENOMEM;
    }
    return 0;
}

void
batcher_stop (batcher_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->stop = true;
    pthread_cond_signal (&self->wake);
    bool started = self->started;
    self->started = false;
    pthread_mutex_unlock (&self->lock);
    if (started)
        pthread_join (self->thread, NULL);
}

void
batcher_destroy (batcher_t *self)
{
    batcher_stop (self);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
    free (self->pubs.buf);
    free (self->acks.buf);
    self->pubs.buf = self->acks.buf = NULL;
}

static int
s_reserve (batch_buf_t *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : (b->last_cap ? b->last_cap : 4096);
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *buf = realloc (b->buf, cap);
    if (!buf)
        return -ENOMEM;
    b->buf = buf;
    b->cap = cap;
    return 0;
}

int
batcher_add_pub (batcher_t *self, uint64_t seq, const busp_pub_rec_t *rec)
{
    batch_buf_t *b = &self->pubs;
    size_t size = busp_pub_rec_size (rec->topic.len, rec->msg_id.len, rec->headers_size,
                                     rec->payload_size);
    if (s_reserve (b, size))
        return -ENOMEM;
    if (b->count == 0)
        b->first_seq = seq;
    busp_pub_rec_put (b->buf + b->len, rec);
    b->len += size;
    b->count++;
    return b->count >= self->max_count || b->len >= self->max_bytes;
}

int
batcher_add_ack (batcher_t *self, uint32_t sub_id, uint64_t delivery_id)
{
    batch_buf_t *b = &self->acks;
    if (s_reserve (b, BUSP_ACK_REC_SIZE))
        return -ENOMEM;
    busp_ack_rec_put (b->buf + b->len, sub_id, delivery_id);
    b->len += BUSP_ACK_REC_SIZE;
    b->count++;
    return b->count >= self->max_count || b->len + BUSP_ACK_REC_SIZE > self->max_bytes;
}

int
batcher_kick (batcher_t *self)
{
    if (self->no_thread || self->stop)
        return 1;
    if (!self->started) {
        if (pthread_create (&self->thread, NULL, s_flusher, self)) {
            self->no_thread = true;
            return 1;
        }
        self->started = true;
        return 0;
    }
    if (self->waiting) {
        /*  One signal per wake-up: until the flusher runs, the records
            that follow need none (each would be a futex call).           */
        self->waiting = false;
        pthread_cond_signal (&self->wake);
    }
    return 0;
}

void
batcher_clear (batcher_t *self)
{
    self->pubs.count = 0;
    self->pubs.len = 0;
    self->acks.count = 0;
    self->acks.len = 0;
}

uint8_t *
batcher_take (batch_buf_t *b, size_t *len)
{
    uint8_t *buf = b->buf;
    *len = b->len;
    b->last_cap = b->cap;
    b->buf = NULL;
    b->len = b->cap = 0;
    b->count = 0;
    return buf;
}
