/*  backoff.h — the broker's redelivery delay after a NACK without delay.

    Exponential (initial * multiplier^(attempt-1)), capped, with symmetric
    jitter so that a crowd of failing consumers does not retry in step.     */
#ifndef BUSD_BACKOFF_H_INCLUDED
#define BUSD_BACKOFF_H_INCLUDED

#include <stdint.h>

typedef struct {
    int64_t initial_ms;
    int64_t max_ms;
    double multiplier;
    double jitter;              /*  0..1: ± this fraction of the delay      */
} backoff_t;

/*  Delay before redelivery after `attempt` deliveries (attempt >= 1).
    random01 is a number in [0, 1) supplied by the caller (tests pin it).    */
int64_t backoff_delay_ms (const backoff_t *policy, uint32_t attempt, double random01);

#endif
