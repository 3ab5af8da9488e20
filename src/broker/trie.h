/*  trie.h — the broker's routing index: subscription patterns in a token
    trie, so routing one event costs in proportion to its topic's depth
    (and the wildcards along the way), not to the number of subscriptions.

    Values are opaque (the broker stores its subscriptions) and not owned.
    Patterns must already have passed busp_pattern_check; topics given to
    trie_match must have passed busp_topic_check.                           */
#ifndef BUSD_TRIE_H_INCLUDED
#define BUSD_TRIE_H_INCLUDED

#include <stddef.h>

typedef struct trie trie_t;

/*  A new, empty trie, or NULL when out of memory.                          */
trie_t *trie_new (void);

/*  Free the trie and NULL *self_p; the values are not touched.             */
void trie_destroy (trie_t **self_p);

/*  Store value under pattern.  Returns 0, -EEXIST when this value is
    already under this pattern, or -ENOMEM (the trie is then unchanged).    */
int trie_insert (trie_t *self, const char *pattern, size_t len, void *value);

/*  Remove value from under pattern, freeing nodes left empty.  Returns 0
    or -ENOENT.                                                             */
int trie_remove (trie_t *self, const char *pattern, size_t len, void *value);

typedef void (trie_visit_fn) (void *value, void *arg);

/*  Call fn (value, arg) once for every (pattern, value) entry whose pattern
    matches topic, and return how many calls were made.  Values under one
    pattern are visited in insertion order.  fn may be NULL to only count;
    it must not modify the trie.  Never allocates.                          */
size_t trie_match (trie_t *self, const char *topic, size_t len,
                   trie_visit_fn *fn, void *arg);

/*  Number of (pattern, value) entries stored.                              */
size_t trie_size (trie_t *self);

/*  A number that changes with every successful insert or remove: a match
    result remembered with it stays exact while it is unchanged.            */
unsigned long long trie_generation (const trie_t *self);

#endif
