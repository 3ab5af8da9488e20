/*  dlq.c — see dlq.h.                                                       */
#include "dlq.h"
#include "topic.h"
#include <czmq.h>
#include <inttypes.h>

struct dlq {
    zlistx_t *entries;          /*  dlq_entry_t *, oldest first             */
    size_t max_count;
    size_t max_bytes;
    size_t bytes;
    uint64_t next_id;
    uint64_t evicted;
    void (*on_add) (uint64_t id, void *arg);
    void (*on_remove) (uint64_t id, void *arg);
    void *listener_arg;
};

/*  cJSON prints a double with 15 significant digits, so a µs timestamp
    ending in 0 came out as 1.79610277302191e+15, which JSON readers take
    for a float; written raw, it stays an exact integer.                   */
static void
s_add_int (cJSON *object, const char *name, int64_t value)
{
    char text [24];
    snprintf (text, sizeof text, "%" PRId64, value);
    cJSON_AddRawToObject (object, name, text);
}

static void
s_entry_destroy (void **item_p)
{
    dlq_entry_t *entry = *item_p;
    if (entry) {
        event_unref (&entry->original);
        free (entry);
    }
    *item_p = NULL;
}

dlq_t *
dlq_new (size_t max_count, size_t max_bytes)
{
    dlq_t *self = calloc (1, sizeof (dlq_t));
    if (!self)
        return NULL;
    self->entries = zlistx_new ();
    if (!self->entries) {
        free (self);
        return NULL;
    }
    zlistx_set_destructor (self->entries, s_entry_destroy);
    self->max_count = max_count;
    self->max_bytes = max_bytes;
    self->next_id = 1;
    return self;
}

void
dlq_destroy (dlq_t **self_p)
{
    dlq_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    zlistx_destroy (&self->entries);
    free (self);
}

static void
s_evict (dlq_t *self)
{
    while (zlistx_size (self->entries) > self->max_count || self->bytes > self->max_bytes) {
        dlq_entry_t *oldest = zlistx_first (self->entries);
        if (!oldest)
            break;
        self->bytes -= event_bytes (oldest->original);
        if (self->on_remove)
            self->on_remove (oldest->id, self->listener_arg);
        zlistx_delete (self->entries, zlistx_cursor (self->entries));
        self->evicted++;
    }
}

void
dlq_configure (dlq_t *self, size_t max_count, size_t max_bytes)
{
    self->max_count = max_count;
    self->max_bytes = max_bytes;
    s_evict (self);
}

/*  A new entry at the end of the list (dlq_add and dlq_restore).          */
static dlq_entry_t *
s_append (dlq_t *self, uint64_t id, event_t *original, const char *reason,
          uint16_t attempts, const char *subscription, int64_t ts_us)
{
    dlq_entry_t *entry = calloc (1, sizeof (dlq_entry_t));
    if (!entry)
        return NULL;
    entry->id = id;
    entry->original = event_ref (original);
    snprintf (entry->reason, sizeof entry->reason, "%s", reason);
    entry->attempts = attempts;
    snprintf (entry->subscription, sizeof entry->subscription, "%s", subscription);
    entry->ts_us = ts_us;
    entry->original_seq = original->stream_seq;
    zlistx_add_end (self->entries, entry);
    self->bytes += event_bytes (original);
    return entry;
}

uint64_t
dlq_add (dlq_t *self, event_t *original, const char *reason, uint16_t attempts,
         const char *subscription, int64_t ts_us)
{
    if (!s_append (self, self->next_id, original, reason, attempts, subscription, ts_us))
        return 0;
    uint64_t id = self->next_id++;
    if (self->on_add)
        self->on_add (id, self->listener_arg);
    s_evict (self);
    return id;
}

void
dlq_restore (dlq_t *self, uint64_t id, event_t *original, const char *reason,
             uint16_t attempts, const char *subscription, int64_t ts_us)
{
    if (s_append (self, id, original, reason, attempts, subscription, ts_us)
    &&  id >= self->next_id)
        self->next_id = id + 1;
}

void
dlq_set_listener (dlq_t *self, void (*on_add) (uint64_t id, void *arg),
                  void (*on_remove) (uint64_t id, void *arg), void *arg)
{
    self->on_add = on_add;
    self->on_remove = on_remove;
    self->listener_arg = arg;
}

static bool
s_matches (const dlq_entry_t *entry, const char *pattern)
{
    if (!pattern)
        return true;
    const event_t *ev = entry->original;
    //  Accept patterns over the original topic and over the $dlq. topic.
    if (busp_pattern_match (pattern, strlen (pattern), ev->topic, ev->topic_len))
        return true;
    char dlq_topic [300];
    int len = snprintf (dlq_topic, sizeof dlq_topic, "$dlq.%s", ev->topic);
    return busp_pattern_match (pattern, strlen (pattern), dlq_topic, (size_t) len);
}

/*  The start of the payload as printable text, for busd-ctl dlq list: what
    was this event?  Bytes outside printable ASCII become '.'.              */
#define PREVIEW_BYTES 48
static void
s_add_preview (cJSON *item, const dlq_entry_t *entry)
{
    const unsigned char *data = entry->original->payload_data;
    size_t size = entry->original->payload_size;
    char text [PREVIEW_BYTES + 4];
    size_t n = size < PREVIEW_BYTES ? size : PREVIEW_BYTES;
    for (size_t i = 0; i < n; i++)
        text [i] = data [i] >= 0x20 && data [i] < 0x7F ? (char) data [i] : '.';
    snprintf (text + n, sizeof text - n, "%s", size > n ? "..." : "");
    cJSON_AddStringToObject (item, "preview", text);
}

cJSON *
dlq_list (dlq_t *self, const char *pattern, const char *subscription,
          int64_t since_us, size_t limit)
{
    cJSON *array = cJSON_CreateArray ();
    size_t count = 0;
    dlq_entry_t *entry = zlistx_first (self->entries);
    while (entry && (limit == 0 || count < limit)) {
        if (s_matches (entry, pattern) && entry->ts_us >= since_us
        &&  (!subscription || strcmp (subscription, entry->subscription) == 0)) {
            cJSON *item = cJSON_CreateObject ();
            cJSON_AddNumberToObject (item, "id", (double) entry->id);
            cJSON_AddStringToObject (item, "topic", entry->original->topic);
            cJSON_AddStringToObject (item, "reason", entry->reason);
            cJSON_AddNumberToObject (item, "attempts", entry->attempts);
            cJSON_AddStringToObject (item, "subscription", entry->subscription);
            s_add_int (item, "ts_us", entry->ts_us);
            cJSON_AddStringToObject (item, "msg_id", entry->original->msg_id);
            cJSON_AddNumberToObject (item, "size",
                                     (double) entry->original->payload_size);
            s_add_preview (item, entry);
            cJSON_AddItemToArray (array, item);
            count++;
        }
        entry = zlistx_next (self->entries);
    }
    return array;
}

dlq_entry_t *
dlq_find (dlq_t *self, uint64_t id)
{
    dlq_entry_t *entry = zlistx_first (self->entries);
    while (entry) {
        if (entry->id == id)
            return entry;
        entry = zlistx_next (self->entries);
    }
    return NULL;
}

size_t
dlq_match (dlq_t *self, const char *pattern, uint64_t *ids, size_t max)
{
    size_t count = 0;
    dlq_entry_t *entry = zlistx_first (self->entries);
    while (entry && count < max) {
        if (s_matches (entry, pattern))
            ids [count++] = entry->id;
        entry = zlistx_next (self->entries);
    }
    return count;
}

void
dlq_remove (dlq_t *self, uint64_t id)
{
    dlq_entry_t *entry = dlq_find (self, id);
    if (!entry)
        return;
    self->bytes -= event_bytes (entry->original);
    if (self->on_remove)
        self->on_remove (id, self->listener_arg);
    zlistx_delete (self->entries, zlistx_cursor (self->entries));
}

size_t
dlq_size (dlq_t *self)
{
    return zlistx_size (self->entries);
}

size_t
dlq_bytes (dlq_t *self)
{
    return self->bytes;
}

uint64_t
dlq_evicted (dlq_t *self)
{
    return self->evicted;
}

cJSON *
dlq_headers (const event_t *original, const char *reason, uint16_t attempts,
             const char *subscription)
{
    cJSON *headers = NULL;
    if (original->has_headers)
        headers = cJSON_ParseWithLength ((const char *) original->headers_data,
                                         original->headers_size);
    if (!cJSON_IsObject (headers)) {
        cJSON_Delete (headers);
        headers = cJSON_CreateObject ();
        if (!headers)
            return NULL;
    }
    char number [32];
    cJSON_DeleteItemFromObjectCaseSensitive (headers, "x-reason");
    cJSON_AddStringToObject (headers, "x-reason", reason);
    snprintf (number, sizeof number, "%u", attempts);
    cJSON_DeleteItemFromObjectCaseSensitive (headers, "x-attempts");
    cJSON_AddStringToObject (headers, "x-attempts", number);
    cJSON_DeleteItemFromObjectCaseSensitive (headers, "x-subscription");
    cJSON_AddStringToObject (headers, "x-subscription", subscription);
    snprintf (number, sizeof number, "%llu", (unsigned long long) original->stream_seq);
    cJSON_DeleteItemFromObjectCaseSensitive (headers, "x-original-seq");
    cJSON_AddStringToObject (headers, "x-original-seq", number);
    return headers;
}

cJSON *
dlq_entry_json (const dlq_entry_t *entry)
{
    cJSON *item = cJSON_CreateObject ();
    if (!item)
        return NULL;
    event_t *orig = entry->original;
    cJSON_AddNumberToObject (item, "id", (double) entry->id);
    cJSON_AddStringToObject (item, "topic", orig->topic);
    cJSON_AddStringToObject (item, "reason", entry->reason);
    cJSON_AddNumberToObject (item, "attempts", entry->attempts);
    cJSON_AddStringToObject (item, "subscription", entry->subscription);
    s_add_int (item, "ts_us", entry->ts_us);
    cJSON_AddStringToObject (item, "msg_id", orig->msg_id);
    size_t size = orig->payload_size;
    cJSON_AddNumberToObject (item, "size", (double) size);
    cJSON *headers = dlq_headers (orig, entry->reason, entry->attempts, entry->subscription);
    if (!headers) {
        cJSON_Delete (item);
        return NULL;
    }
    cJSON_AddItemToObject (item, "headers", headers);
    //  Base64 (PROTOCOL §7): the payload is bytes, not necessarily text.
    zarmour_t *armour = zarmour_new ();
    char *encoded = NULL;
    if (armour) {
        zarmour_set_mode (armour, ZARMOUR_MODE_BASE64_STD);
        zarmour_set_line_breaks (armour, false);
        encoded = zarmour_encode (armour, orig->payload_data, size);
        zarmour_destroy (&armour);
    }
    if (!encoded) {
        cJSON_Delete (item);
        return NULL;
    }
    cJSON_AddStringToObject (item, "payload", encoded);
    zstr_free (&encoded);
    return item;
}
