/*  dedup.c — see dedup.h.                                                   */
#include "dedup.h"
#include "blob.h"
#include <czmq.h>
#include <errno.h>
#include <string.h>

/*  The key is the pair (topic, msg_id) of PROTOCOL §5: a client allowed to
    publish only on its own topics cannot suppress another's events by
    guessing their msg_ids.  Laid out as [u16 length][topic][0x00][msg_id]:
    topics never hold 0x00, so the pair is unambiguous.                      */
#define KEY_MAX (2 + 255 + 1 + 255)

/*  Sized to its key: a window of short ids costs little, and the byte cap
    (dedup_set_max_bytes) bounds one of long ones (a client choosing 255-byte
    topics and msg_ids).  ENTRY_OVERHEAD stands for the index and FIFO nodes
    each entry also has.                                                     */
typedef struct {
    int64_t added_ms;
    uint8_t key [];
} entry_t;

#define ENTRY_OVERHEAD 64

static size_t
s_key_set (uint8_t *key, const char *topic, size_t topic_len, const char *msg_id, size_t len)
{
    if (topic_len > 255)
        topic_len = 255;
    if (len > 255)
        len = 255;
    size_t n = topic_len + 1 + len;
    key [0] = (uint8_t) (n >> 8);
    key [1] = (uint8_t) n;
    memcpy (key + 2, topic, topic_len);
    key [2 + topic_len] = 0;
    memcpy (key + 3 + topic_len, msg_id, len);
    return n;
}

static size_t
s_key_len (const uint8_t *key)
{
    return ((size_t) key [0] << 8) | key [1];
}

static size_t
s_key_hash (const void *key)
{
    return (size_t) busp_siphash ((const uint8_t *) key + 2, s_key_len (key));
}

static int
s_key_compare (const void *a, const void *b)
{
    size_t la = s_key_len (a), lb = s_key_len (b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return memcmp ((const uint8_t *) a + 2, (const uint8_t *) b + 2, la);
}

struct dedup {
    int64_t window_ms;
    size_t max_entries;
    zhashx_t *index;            /*  key blob -> entry_t * (not owned)       */
    zlistx_t *fifo;             /*  entry_t *, oldest first (owns)          */
    uint64_t evicted;
    size_t bytes;               /*  what the entries cost (s_cost)          */
    size_t max_bytes;           /*  0: no byte cap                          */
};

static size_t
s_cost (const entry_t *entry)
{
    return sizeof (entry_t) + 2 + s_key_len (entry->key) + ENTRY_OVERHEAD;
}

static void
s_entry_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

dedup_t *
dedup_new (int64_t window_ms, size_t max_entries)
{
    dedup_t *self = calloc (1, sizeof (dedup_t));
    if (!self)
        return NULL;
    self->window_ms = window_ms;
    self->max_entries = max_entries;
    self->index = zhashx_new ();
    self->fifo = zlistx_new ();
    if (!self->index || !self->fifo) {
        dedup_destroy (&self);
        return NULL;
    }
    //  Keys point into the entries, which the FIFO owns.
    zhashx_set_key_hasher (self->index, s_key_hash);
    zhashx_set_key_comparator (self->index, s_key_compare);
    zhashx_set_key_duplicator (self->index, NULL);
    zhashx_set_key_destructor (self->index, NULL);
    zlistx_set_destructor (self->fifo, s_entry_free);
    return self;
}

void
dedup_destroy (dedup_t **self_p)
{
    dedup_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    zhashx_destroy (&self->index);
    zlistx_destroy (&self->fifo);
    free (self);
}

void
dedup_configure (dedup_t *self, int64_t window_ms, size_t max_entries)
{
    self->window_ms = window_ms;
    self->max_entries = max_entries;
}

bool
dedup_seen (dedup_t *self, const char *topic, size_t topic_len, const char *msg_id, size_t len,
            int64_t now_ms)
{
    uint8_t key [KEY_MAX];
    s_key_set (key, topic, topic_len, msg_id, len);
    entry_t *entry = zhashx_lookup (self->index, key);
    return entry && now_ms - entry->added_ms < self->window_ms;
}

static void
s_pop_oldest (dedup_t *self)
{
    entry_t *oldest = zlistx_first (self->fifo);
    if (!oldest)
        return;
    //  The index may hold a newer entry for the same key (re-added after
    //  expiry); only remove it when it is this one.
    if (zhashx_lookup (self->index, oldest->key) == oldest)
        zhashx_delete (self->index, oldest->key);
    self->bytes -= s_cost (oldest);
    zlistx_delete (self->fifo, zlistx_cursor (self->fifo));
}

int
dedup_add (dedup_t *self, const char *topic, size_t topic_len, const char *msg_id, size_t len,
           int64_t now_ms)
{
    if (self->window_ms <= 0 || self->max_entries == 0)
        return 0;
    uint8_t key [KEY_MAX];
    size_t n = s_key_set (key, topic, topic_len, msg_id, len);
    entry_t *entry = malloc (sizeof (entry_t) + 2 + n);
    if (!entry)
        return -ENOMEM;
    memcpy (entry->key, key, 2 + n);
    entry->added_ms = now_ms;
    if (!zlistx_add_end (self->fifo, entry)) {
        free (entry);
        return -ENOMEM;
    }
    //  Delete then insert: the index keeps the key pointer of the entry it
    //  was first given, and an older entry's key dies with that entry.
    zhashx_delete (self->index, entry->key);
    zhashx_insert (self->index, entry->key, entry);
    self->bytes += s_cost (entry);
    while (zlistx_size (self->fifo) > self->max_entries
       ||  (self->max_bytes && self->bytes > self->max_bytes && zlistx_size (self->fifo) > 1)) {
        s_pop_oldest (self);
        self->evicted++;
    }
    return 0;
}

void
dedup_remove (dedup_t *self, const char *topic, size_t topic_len, const char *msg_id, size_t len)
{
    //  The FIFO entry stays until it expires; s_pop_oldest only drops the
    //  index entry when it is still that entry's.
    uint8_t key [KEY_MAX];
    s_key_set (key, topic, topic_len, msg_id, len);
    zhashx_delete (self->index, key);
}

void
dedup_expire (dedup_t *self, int64_t now_ms)
{
    entry_t *oldest = zlistx_first (self->fifo);
    while (oldest && now_ms - oldest->added_ms >= self->window_ms) {
        s_pop_oldest (self);
        oldest = zlistx_first (self->fifo);
    }
}

size_t
dedup_size (dedup_t *self)
{
    return zlistx_size (self->fifo);
}

uint64_t
dedup_evicted (dedup_t *self)
{
    return self->evicted;
}

void
dedup_set_max_bytes (dedup_t *self, size_t max_bytes)
{
    self->max_bytes = max_bytes;
    while (self->max_bytes && self->bytes > self->max_bytes && zlistx_size (self->fifo) > 0) {
        s_pop_oldest (self);
        self->evicted++;
    }
}

size_t
dedup_bytes (dedup_t *self)
{
    return self->bytes;
}
