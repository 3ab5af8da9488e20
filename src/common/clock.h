/*  clock.h — the two clocks busd uses.

    Wall time (µs since the epoch) stamps events, as the protocol's ts_us
    requires; monotonic time (ms) drives every timeout, so a clock jump can
    neither expire every session nor keep a dead one alive.                  */
#ifndef BUSP_CLOCK_H_INCLUDED
#define BUSP_CLOCK_H_INCLUDED

#include <stdint.h>

int64_t busp_wall_us (void);
int64_t busp_mono_ms (void);
int64_t busp_mono_us (void);
/*  Monotonic ms from the kernel's coarse clock (a few ms of resolution,
    several times cheaper to read): for "has about N ms passed" checks on
    paths that run once per event.                                          */
int64_t busp_mono_coarse_ms (void);

#endif
