/*  batcher.h — libbusd's transparent batching (PROTOCOL §8.2).

    Publishes and acks are appended to a pending PUBB / ACKB instead of
    going out one frame each.  Who sends them is the point of this file:
    the application's thread sends a batch itself when it is full, and
    before anything else it sends or waits for; otherwise a small flusher
    thread, woken when the first record lands in an empty batch, sends
    whatever has gathered by the time it runs.  So an application that
    publishes faster than the flusher can send gets batches of many events,
    and one that publishes once and pauses has its event sent at once: the
    batch never waits for more (no linger timer).  (client.c sends a publish
    that is not part of a burst directly, without the flusher's wake-up.)

    The flusher and the application share the client's socket, so one
    mutex (owned here) guards the whole client: every libbusd entry point
    takes it, the flusher sends only while holding it.  The flusher thread
    starts with the first record and is never started for a client that
    only subscribes without acks.                                           */
#ifndef BUSD_LIB_BATCHER_H_INCLUDED
#define BUSD_LIB_BATCHER_H_INCLUDED

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "batch.h"

/*  A batch is sent once it holds this many bytes (or batch_max records).  */
#define BATCHER_TARGET_BYTES  65536

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    uint16_t count;
    uint64_t first_seq;         /*  PUBB: pub_seq of the first record       */
    size_t last_cap;            /*  size of the last buffer handed over: the
                                    next one starts there, not at 4 KiB     */
} batch_buf_t;

/*  Send what is pending.  Called with the lock held, from the flusher or
    the application.  Returns 0 when nothing is left pending, 1 when the
    pending records cannot go now (no live session: they wait), or a
    negative code.                                                          */
typedef int (batcher_flush_fn) (void *arg);

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool started;               /*  flusher thread running                  */
    bool stop;
    bool waiting;               /*  flusher asleep on `wake`                */
    bool no_thread;             /*  never start one (sends happen inline)   */
    batcher_flush_fn *flush;
    void *arg;
    batch_buf_t pubs;
    batch_buf_t acks;
    uint16_t max_count;         /*  WELCOME batch_max                       */
    size_t max_bytes;           /*  body limit: min (batch_bytes, target)   */
    uint64_t batches_sent;      /*  statistics                              */
} batcher_t;

int batcher_init (batcher_t *self, batcher_flush_fn *flush, void *arg);
/*  Stop and join the flusher (call without the lock); records added later
    are sent by the caller (batcher_kick returns 1).                        */
void batcher_stop (batcher_t *self);
/*  batcher_stop, then free the lock and the buffers.                       */
void batcher_destroy (batcher_t *self);

static inline void
batcher_lock (batcher_t *self)
{
    pthread_mutex_lock (&self->lock);
}

static inline void
batcher_unlock (batcher_t *self)
{
    pthread_mutex_unlock (&self->lock);
}

/*  Append one PUB record with pub_seq seq (seq must follow the pending
    ones).  Returns 1 when the batch is now full and should be sent, 0, or
    -ENOMEM.                                                                */
int batcher_add_pub (batcher_t *self, uint64_t seq, const busp_pub_rec_t *rec);
/*  Append one ACK record; 1 when full, 0, or -ENOMEM.                      */
int batcher_add_ack (batcher_t *self, uint32_t sub_id, uint64_t delivery_id);

static inline bool
batcher_pending (const batcher_t *self)
{
    return self->pubs.count || self->acks.count;
}

/*  Records are pending: make sure they leave soon (start the flusher, or
    wake it).  Call with the lock held.  Without a thread (no_thread, or it
    cannot start) the caller must send them itself: returns 1 then.        */
int batcher_kick (batcher_t *self);

/*  Discard what is pending (a session ended: its pub_seqs and delivery ids
    mean nothing to the next one).                                          */
void batcher_clear (batcher_t *self);

/*  Hand the buffer of b over (for zmq_msg_init_data): the batch is empty
    afterwards with no buffer.  Free the returned pointer with free().      */
uint8_t *batcher_take (batch_buf_t *b, size_t *len);

#endif
