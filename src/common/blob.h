/*  blob.h — length-prefixed byte strings as hash keys (zhashx callbacks).

    Routing ids and msg_ids are binary and come from clients, so they are
    stored as [len][bytes] and hashed with SipHash-2-4 under a key drawn at
    start-up: a client cannot craft ids that all land in one bucket and turn
    every lookup into a list walk.                                           */
#ifndef BUSP_BLOB_H_INCLUDED
#define BUSP_BLOB_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

/*  blob [0] is the length of the bytes that follow.                         */
size_t busp_blob_hash (const void *blob);
int busp_blob_compare (const void *a, const void *b);
/*  A malloc'd copy, or NULL.                                                */
void *busp_blob_dup (const void *blob);
void busp_blob_free (void **blob_p);
/*  Write [len][bytes] into out (at least len + 1 bytes; len <= 255).        */
void busp_blob_set (uint8_t *out, const void *data, size_t len);

/*  SipHash-2-4 of data under the process's random key.                      */
uint64_t busp_siphash (const void *data, size_t len);

#endif
