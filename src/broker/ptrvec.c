/*  ptrvec.c — the small pointer sets of state.h, and policy names.

    Members of a group, publishers throttled by a queue, the batch's dirty
    lists: short sets iterated whole, where a growable array beats a hash.  */
#include "state.h"
#include <errno.h>

int
ptrvec_add (ptrvec_t *vec, void *item)
{
    if (ptrvec_contains (vec, item))
        return -EEXIST;
    return ptrvec_push (vec, item);
}

int
ptrvec_push (ptrvec_t *vec, void *item)
{
    if (vec->size == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 4;
        void **items = realloc (vec->items, cap * sizeof (void *));
        if (!items)
            return -ENOMEM;
        vec->items = items;
        vec->cap = cap;
    }
    vec->items [vec->size++] = item;
    return 0;
}

bool
ptrvec_remove (ptrvec_t *vec, void *item)
{
    for (size_t i = 0; i < vec->size; i++)
        if (vec->items [i] == item) {
            memmove (vec->items + i, vec->items + i + 1, (vec->size - i - 1) * sizeof (void *));
            vec->size--;
            return true;
        }
    return false;
}

bool
ptrvec_contains (const ptrvec_t *vec, const void *item)
{
    for (size_t i = 0; i < vec->size; i++)
        if (vec->items [i] == item)
            return true;
    return false;
}

void
ptrvec_free (ptrvec_t *vec)
{
    free (vec->items);
    vec->items = NULL;
    vec->size = vec->cap = 0;
}

const char *
policy_name (policy_t policy)
{
    switch (policy) {
        case POLICY_BLOCK: return "block";
        case POLICY_DROP_OLDEST: return "drop-oldest";
        case POLICY_DROP_NEW: return "drop-new";
        case POLICY_LATEST: return "latest";
        case POLICY_DISCONNECT: return "disconnect";
    }
    return "?";
}

