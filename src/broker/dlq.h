/*  dlq.h — the dead-letter store behind dlq-list and dlq-replay.

    Dead letters are kept whether or not anyone subscribes to `$dlq.#`, in
    arrival order, bounded by count and bytes (the oldest are evicted and
    counted).  Each entry keeps the original event (topic, payload, msg_id,
    headers as published) for replay, and the why: reason, attempts, the
    subscription that gave up.                                               */
#ifndef BUSD_DLQ_H_INCLUDED
#define BUSD_DLQ_H_INCLUDED

#include "event.h"
#include <cJSON.h>

typedef struct dlq dlq_t;

typedef struct {
    uint64_t id;
    event_t *original;          /*  as published (owned reference)          */
    char reason [256];
    uint16_t attempts;
    char subscription [300];
    int64_t ts_us;              /*  when it was dead-lettered               */
    uint64_t original_seq;
} dlq_entry_t;

dlq_t *dlq_new (size_t max_count, size_t max_bytes);
void dlq_destroy (dlq_t **self_p);
void dlq_configure (dlq_t *self, size_t max_count, size_t max_bytes);
/*  Keep a dead letter (takes a new reference on original).  Returns its id. */
uint64_t dlq_add (dlq_t *self, event_t *original, const char *reason, uint16_t attempts,
                  const char *subscription, int64_t ts_us);
/*  JSON array of entries whose original topic matches pattern (NULL: all),
    whose subscription equals `subscription` (NULL: any) and whose time is
    >= since_us, at most limit (0: no limit).                                */
cJSON *dlq_list (dlq_t *self, const char *pattern, const char *subscription,
                 int64_t since_us, size_t limit);
/*  Find an entry by id (NULL when absent).                                  */
dlq_entry_t *dlq_find (dlq_t *self, uint64_t id);
/*  Ids of entries matching a pattern, in order, into a caller array.        */
size_t dlq_match (dlq_t *self, const char *pattern, uint64_t *ids, size_t max);
/*  Remove an entry (after its replay was accepted).                         */
void dlq_remove (dlq_t *self, uint64_t id);
/*  Keep a dead letter read back from the store under its own id (no
    listener call).                                                          */
void dlq_restore (dlq_t *self, uint64_t id, event_t *original, const char *reason,
                  uint16_t attempts, const char *subscription, int64_t ts_us);
/*  Persistence backend (durable.c): told of every entry added and removed
    (replayed, purged or evicted), NULL to stop.                            */
void dlq_set_listener (dlq_t *self, void (*on_add) (uint64_t id, void *arg),
                       void (*on_remove) (uint64_t id, void *arg), void *arg);
/*  One entry for dlq-show: the dlq-list fields plus "headers" (object) and
    "payload" (base64).  NULL when out of memory.                            */
cJSON *dlq_entry_json (const dlq_entry_t *entry);
size_t dlq_size (dlq_t *self);
size_t dlq_bytes (dlq_t *self);
uint64_t dlq_evicted (dlq_t *self);

#endif
