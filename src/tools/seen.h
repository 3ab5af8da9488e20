/*  seen.h — one event, one line, however many of busd-sub's patterns match.

    The broker delivers an event once per matching subscription, each with
    its own sub_id and delivery_id, so `busd-sub -t 'a.#' -t 'a.b'` would
    print an event on a.b twice.  No field names "the event" across
    subscriptions, but together topic, msg_id, headers, payload and the
    broker's acceptance time (ts_us) do; and one event reaches each
    subscription at most once (first attempts).  So a fingerprint that
    arrives on a subscription that has not had it yet is a copy, while the
    same fingerprint again on the same subscription is a new, identical
    event (two equal PUBs in one broker batch share ts_us).  A window of
    recent fingerprints bounds memory; a copy delayed past it prints again. */
#ifndef BUSD_TOOL_SEEN_H_INCLUDED
#define BUSD_TOOL_SEEN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct seen seen_t;

seen_t *seen_new (size_t window);
void seen_destroy (seen_t **self_p);

uint64_t seen_fingerprint (const char *topic, const char *msg_id, const char *headers,
                           const void *payload, size_t size, int64_t ts_us);

/*  True when the event was already seen on another subscription (index
    0..63 among the process's subscriptions); else remembers it.            */
bool seen_duplicate (seen_t *self, uint64_t fingerprint, unsigned sub_index);

#endif
