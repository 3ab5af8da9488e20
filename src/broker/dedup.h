/*  dedup.h — the idempotency window over (topic, msg_id) (PROTOCOL §5).

    A hash for "seen?" plus a FIFO in arrival order for expiry: entries
    expire in the order they were added, so expiry pops from the front and
    never scans.  The size cap evicts the oldest first, like expiry would.  */
#ifndef BUSD_DEDUP_H_INCLUDED
#define BUSD_DEDUP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct dedup dedup_t;

dedup_t *dedup_new (int64_t window_ms, size_t max_entries);
void dedup_destroy (dedup_t **self_p);
void dedup_configure (dedup_t *self, int64_t window_ms, size_t max_entries);
/*  True when msg_id was added less than window_ms before now.               */
bool dedup_seen (dedup_t *self, const char *topic, size_t topic_len, const char *msg_id,
                 size_t len, int64_t now_ms);
/*  Remember msg_id as accepted at now_ms.  0 or -ENOMEM.                    */
int dedup_add (dedup_t *self, const char *topic, size_t topic_len, const char *msg_id,
               size_t len, int64_t now_ms);
/*  Forget msg_id at once (its PUB was rejected after all: a durable stream
    could not store it).                                                     */
void dedup_remove (dedup_t *self, const char *topic, size_t topic_len, const char *msg_id,
                   size_t len);
/*  Forget entries older than the window.                                    */
void dedup_expire (dedup_t *self, int64_t now_ms);
size_t dedup_size (dedup_t *self);
uint64_t dedup_evicted (dedup_t *self);
/*  Cap what the window's entries cost in bytes (0: no cap); past it the
    oldest entries go first, counted as evicted like those over max_entries. */
void dedup_set_max_bytes (dedup_t *self, size_t max_bytes);
size_t dedup_bytes (dedup_t *self);

#endif
