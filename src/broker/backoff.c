/*  backoff.c — see backoff.h.                                               */
#include "backoff.h"

int64_t
backoff_delay_ms (const backoff_t *policy, uint32_t attempt, double random01)
{
    double delay = (double) policy->initial_ms;
    for (uint32_t i = 1; i < attempt && delay < (double) policy->max_ms; i++)
        delay *= policy->multiplier;
    if (delay > (double) policy->max_ms)
        delay = (double) policy->max_ms;
    delay += delay * policy->jitter * (2.0 * random01 - 1.0);
    if (delay > (double) policy->max_ms)
        delay = (double) policy->max_ms;
    if (delay < 1)
        delay = 1;
    return (int64_t) delay;
}
