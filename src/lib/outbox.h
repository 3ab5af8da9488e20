/*  outbox.h — the publishes a client has not yet seen acknowledged.

    PUBACK is cumulative and pub_seq grows by one per PUB, so the
    unacknowledged publishes form a FIFO in pub_seq order: a ring of
    pointers, popped from the front by PUBACK and indexed by
    (pub_seq - first pub_seq) for REJECT.  After a broker restart the whole
    ring is sent again under fresh pub_seqs, which is why every entry keeps
    its topic, msg_id, headers and a reference to its payload.  Entries come
    from the outbox's arena (arena.h), as they leave nearly in the order
    they came: no malloc per publish.                                       */
#ifndef BUSD_LIB_OUTBOX_H_INCLUDED
#define BUSD_LIB_OUTBOX_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include "arena.h"

typedef struct {
    zmq_msg_t payload;          /*  shares the bytes with the frame sent    */
    const uint8_t *inline_payload;  /*  batched publishes: the payload in
                                        this block (NULL: use payload)      */
    size_t inline_size;
    uint64_t seq;               /*  pub_seq in this session; 0 = not sent   */
    bool rejected;
    uint8_t topic_len;
    uint8_t msg_id_len;
    const char *msg_id;         /*  into topic[]                            */
    const char *headers;        /*  into topic[], or NULL                   */
    size_t headers_len;
    char topic [];              /*  topic\0 msg_id\0 [headers\0]            */
} outbox_entry_t;

typedef struct {
    outbox_entry_t **ring;
    size_t cap;                 /*  a power of two, or 0                    */
    size_t head;
    size_t count;               /*  entries in the ring                     */
    size_t nsent;               /*  the first nsent were sent this session  */
    arena_t arena;              /*  where the entries live                  */
} outbox_t;

void outbox_init (outbox_t *self);
/*  Free every entry (payload references included).                         */
void outbox_clear (outbox_t *self);

/*  A new entry of this outbox holding copies of the strings and an empty
    payload, not in the ring yet; NULL when out of memory.                  */
outbox_entry_t *
    outbox_entry_new (outbox_t *self, const char *topic, size_t topic_len,
                      const char *msg_id, size_t msg_id_len,
                      const char *headers, size_t headers_len);
/*  The same with the payload copied into the entry's own block (one
    allocation per publish; for events that travel as PUBB records).        */
outbox_entry_t *
    outbox_entry_new_inline (outbox_t *self, const char *topic, size_t topic_len,
                             const char *msg_id, size_t msg_id_len,
                             const char *headers, size_t headers_len,
                             const void *payload, size_t size);
void outbox_entry_destroy (outbox_t *self, outbox_entry_t **entry_p);

/*  The payload bytes of an entry, wherever they live.                      */
static inline const void *
outbox_entry_data (outbox_entry_t *entry)
{
    return entry->inline_payload ? entry->inline_payload : zmq_msg_data (&entry->payload);
}

static inline size_t
outbox_entry_size (outbox_entry_t *entry)
{
    return entry->inline_payload ? entry->inline_size : zmq_msg_size (&entry->payload);
}

/*  Append an entry (the outbox takes it).  Returns 0 or -ENOMEM.           */
int outbox_push (outbox_t *self, outbox_entry_t *entry);

/*  The i-th entry from the front.                                          */
static inline outbox_entry_t *
outbox_at (outbox_t *self, size_t i)
{
    return self->ring [(self->head + i) & (self->cap - 1)];
}

/*  Drop the sent entries with seq <= n; returns how many of them had not
    been rejected (i.e. were accepted).                                     */
uint64_t outbox_ack (outbox_t *self, uint64_t n);

/*  The sent entry with this seq, or NULL.                                  */
outbox_entry_t *outbox_find (outbox_t *self, uint64_t seq);

/*  A session ended: free rejected entries and mark the rest unsent, keeping
    their order, so they go out again under the next session's pub_seqs.    */
void outbox_reset (outbox_t *self);

#endif
