/*  arena.c — chunked FIFO allocation for outbox entries (see arena.h).

    Each block is preceded by a 16-byte header naming its chunk, so a free
    needs no search.  The current chunk, once all its blocks are gone, is
    simply rewound: a publisher whose PUBACKs keep up reuses one chunk
    forever.                                                                 */
#include "arena.h"

#include <stdbool.h>
#include <stdlib.h>

#define ALIGN       16
#define ROUND(n)    (((n) + ALIGN - 1) & ~(size_t) (ALIGN - 1))

struct arena_chunk {
    size_t live;                /*  blocks not yet freed                    */
    size_t used;                /*  bytes carved so far                     */
    size_t cap;
    bool own;                   /*  one big block: freed with it            */
};

typedef union {
    arena_chunk_t *chunk;
    uint8_t pad [ALIGN];
} block_head_t;

#define CHUNK_HEAD  ROUND (sizeof (arena_chunk_t))

static inline uint8_t *
s_base (arena_chunk_t *chunk)
{
    return (uint8_t *) chunk + CHUNK_HEAD;
}

static arena_chunk_t *
s_chunk_new (arena_t *self, size_t cap, bool own)
{
    arena_chunk_t *chunk = malloc (CHUNK_HEAD + cap);
    if (!chunk)
        return NULL;
    chunk->live = 0;
    chunk->used = 0;
    chunk->cap = cap;
    chunk->own = own;
    self->chunks++;
    return chunk;
}

static void
s_chunk_free (arena_t *self, arena_chunk_t *chunk)
{
    free (chunk);
    self->chunks--;
}

void
arena_init (arena_t *self)
{
    self->current = NULL;
    self->spare = NULL;
    self->chunks = 0;
}

void
arena_destroy (arena_t *self)
{
    if (self->current && self->current->live == 0)
        s_chunk_free (self, self->current);
    if (self->spare)
        s_chunk_free (self, self->spare);
    self->current = self->spare = NULL;
}

void *
arena_alloc (arena_t *self, size_t size)
{
    size_t need = sizeof (block_head_t) + ROUND (size);
    arena_chunk_t *chunk;
    if (need > ARENA_BLOCK_MAX) {
        chunk = s_chunk_new (self, need, true);
        if (!chunk)
            return NULL;
    }
    else {
        chunk = self->current;
        if (!chunk || chunk->used + need > chunk->cap) {
            //  The full chunk stays with its live blocks; the last of them
            //  to go frees it (arena_free).
            if (self->spare) {
                chunk = self->spare;
                self->spare = NULL;
            }
            else {
                chunk = s_chunk_new (self, ARENA_CHUNK_SIZE, false);
                if (!chunk)
                    return NULL;
            }
            if (self->current && self->current->live == 0)
                s_chunk_free (self, self->current);
            self->current = chunk;
        }
    }
    block_head_t *head = (block_head_t *) (s_base (chunk) + chunk->used);
    head->chunk = chunk;
    chunk->used += need;
    chunk->live++;
    return head + 1;
}

void
arena_free (arena_t *self, void *block)
{
    if (!block)
        return;
    arena_chunk_t *chunk = ((block_head_t *) block - 1)->chunk;
    if (--chunk->live > 0)
        return;
    if (chunk == self->current)
        chunk->used = 0;        /*  rewind: the whole chunk is free again   */
    else
    if (!chunk->own && !self->spare) {
        chunk->used = 0;
        self->spare = chunk;
    }
    else
        s_chunk_free (self, chunk);
}
