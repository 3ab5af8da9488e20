/*  seen.c — recent event fingerprints across subscriptions (see seen.h). */
#include "seen.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t fingerprint;
    uint64_t subs;              /*  bit per subscription that delivered it  */
} mark_t;

struct seen {
    mark_t *ring;
    size_t window;
    size_t next;                /*  where the next mark goes                */
    size_t used;
};

seen_t *
seen_new (size_t window)
{
    seen_t *self = calloc (1, sizeof (seen_t));
    if (!self)
        return NULL;
    self->window = window ? window : 1;
    self->ring = calloc (self->window, sizeof (mark_t));
    if (!self->ring) {
        free (self);
        return NULL;
    }
    return self;
}

void
seen_destroy (seen_t **self_p)
{
    seen_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    free (self->ring);
    free (self);
}

static uint64_t
s_fnv (uint64_t hash, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        hash ^= p [i];
        hash *= 1099511628211ULL;
    }
    //  A separator, so ("ab", "c") and ("a", "bc") differ.
    hash ^= 0xff;
    return hash * 1099511628211ULL;
}

uint64_t
seen_fingerprint (const char *topic, const char *msg_id, const char *headers,
                  const void *payload, size_t size, int64_t ts_us)
{
    uint64_t hash = 14695981039346656037ULL;
    hash = s_fnv (hash, &ts_us, sizeof ts_us);
    hash = s_fnv (hash, topic ? topic : "", topic ? strlen (topic) : 0);
    hash = s_fnv (hash, msg_id ? msg_id : "", msg_id ? strlen (msg_id) : 0);
    hash = s_fnv (hash, headers ? headers : "", headers ? strlen (headers) : 0);
    return s_fnv (hash, payload, size);
}

bool
seen_duplicate (seen_t *self, uint64_t fingerprint, unsigned sub_index)
{
    uint64_t bit = 1ULL << (sub_index % 64);
    //  Newest first: a copy usually follows its original closely.
    for (size_t n = 0; n < self->used; n++) {
        mark_t *mark = &self->ring [(self->next + self->window - 1 - n) % self->window];
        if (mark->fingerprint == fingerprint && !(mark->subs & bit)) {
            mark->subs |= bit;
            return true;
        }
    }
    self->ring [self->next] = (mark_t) { fingerprint, bit };
    self->next = (self->next + 1) % self->window;
    if (self->used < self->window)
        self->used++;
    return false;
}
