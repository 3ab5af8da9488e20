/*  clock.c — wall and monotonic clocks (see clock.h).                       */
#include "clock.h"
#include <time.h>

int64_t
busp_wall_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
busp_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
busp_mono_coarse_ms (void)
{
    struct timespec ts;
    if (clock_gettime (CLOCK_MONOTONIC_COARSE, &ts))
        return busp_mono_ms ();
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
busp_mono_ms (void)
{
    return busp_mono_us () / 1000;
}
