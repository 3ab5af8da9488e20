/*  arena.h — blocks for libbusd's outbox entries, without a malloc each.

    A client's unacknowledged publishes are freed almost exactly in the
    order they were made (cumulative PUBACKs take them from the front; only
    REJECTed ones leave early, at a session change).  So they are carved
    one after another out of large chunks, and each chunk counts the blocks
    still alive in it: when the last goes, the chunk is kept for reuse (one
    spare) or freed.  Allocation is a pointer bump, freeing a decrement; a
    long-lived block holds at most its own chunk.  Blocks too big for a
    chunk get a chunk of their own, so every block is freed the same way.

    Not thread-safe: the client's lock guards its arena like everything
    else of the client.                                                      */
#ifndef BUSD_LIB_ARENA_H_INCLUDED
#define BUSD_LIB_ARENA_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

/*  Bytes per chunk, and the largest block carved from a shared chunk.     */
#define ARENA_CHUNK_SIZE   (64 * 1024)
#define ARENA_BLOCK_MAX    (ARENA_CHUNK_SIZE / 4)

typedef struct arena_chunk arena_chunk_t;

typedef struct {
    arena_chunk_t *current;     /*  blocks are carved from here             */
    arena_chunk_t *spare;       /*  an empty chunk kept for the next one    */
    size_t chunks;              /*  chunks allocated now (statistics, tests) */
} arena_t;

void arena_init (arena_t *self);
/*  Free the spare and the current chunk.  Every block must have been freed
    before.                                                                 */
void arena_destroy (arena_t *self);

/*  A block of size bytes aligned to 16, or NULL when out of memory.        */
void *arena_alloc (arena_t *self, size_t size);
/*  Free a block from arena_alloc (NULL is ignored).                        */
void arena_free (arena_t *self, void *block);

#endif
