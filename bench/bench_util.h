/*  bench_util.h — the few clock and byte helpers every benchmark client
    shares (zmq_bench and, through bench_common.h, the clients for other
    brokers): the payload's big-endian u64 fields and the monotonic clock
    they carry must be read and written the same way by every one of them.
    Header-only (static inline) because each client is built alone.        */
#ifndef BENCH_UTIL_H_INCLUDED
#define BENCH_UTIL_H_INCLUDED

#include <errno.h>
#include <stdint.h>
#include <time.h>

static inline int64_t
bc_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void
bc_sleep_ms (int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
    while (nanosleep (&ts, &ts) != 0 && errno == EINTR)
        ;
}

static inline void
bc_put_u64 (unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p [i] = (unsigned char) (v & 0xFF);
        v >>= 8;
    }
}

static inline uint64_t
bc_get_u64 (const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p [i];
    return v;
}

static inline double
bc_rate (uint64_t n, int64_t ns)
{
    return ns > 0 ? (double) n * 1e9 / (double) ns : 0.0;
}

#endif
