/*  blob.c — see blob.h.  SipHash-2-4 after Aumasson and Bernstein.          */
#include "blob.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t s_k0, s_k1;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void
s_init_key (void)
{
    uint64_t key [2] = { 0, 0 };
    FILE *file = fopen ("/dev/urandom", "rb");
    if (!file || fread (key, 1, sizeof key, file) != sizeof key) {
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        key [0] = (uint64_t) ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t) getpid ();
        key [1] = (uint64_t) ts.tv_sec * 0xC2B2AE3D27D4EB4Full ^ (uintptr_t) &key;
    }
    if (file)
        fclose (file);
    s_k0 = key [0];
    s_k1 = key [1];
}

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                    \
    do {                                                            \
        v0 += v1; v1 = ROTL (v1, 13); v1 ^= v0; v0 = ROTL (v0, 32); \
        v2 += v3; v3 = ROTL (v3, 16); v3 ^= v2;                     \
        v0 += v3; v3 = ROTL (v3, 21); v3 ^= v0;                     \
        v2 += v1; v1 = ROTL (v1, 17); v1 ^= v2; v2 = ROTL (v2, 32); \
    } while (0)

uint64_t
busp_siphash (const void *data, size_t len)
{
    pthread_once (&s_once, s_init_key);
    const uint8_t *in = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ s_k0;
    uint64_t v1 = 0x646f72616e646f6dull ^ s_k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ s_k0;
    uint64_t v3 = 0x7465646279746573ull ^ s_k1;
    uint64_t b = (uint64_t) len << 56;
    size_t whole = len - (len % 8);
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m;
        memcpy (&m, in + i, 8);         /*  little-endian hosts (x86, arm)  */
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t) in [whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

size_t
busp_blob_hash (const void *blob)
{
    const uint8_t *k = blob;
    return (size_t) busp_siphash (k + 1, k [0]);
}

int
busp_blob_compare (const void *a, const void *b)
{
    const uint8_t *ka = a, *kb = b;
    if (ka [0] != kb [0])
        return ka [0] < kb [0] ? -1 : 1;
    return memcmp (ka + 1, kb + 1, ka [0]);
}

void *
busp_blob_dup (const void *blob)
{
    const uint8_t *k = blob;
    uint8_t *copy = malloc (k [0] + 1u);
    if (copy)
        memcpy (copy, k, k [0] + 1u);
    return copy;
}

void
busp_blob_free (void **blob_p)
{
    free (*blob_p);
    *blob_p = NULL;
}

void
busp_blob_set (uint8_t *out, const void *data, size_t len)
{
    if (len > 255)
        len = 255;
    out [0] = (uint8_t) len;
    if (len)
        memcpy (out + 1, data, len);
}
