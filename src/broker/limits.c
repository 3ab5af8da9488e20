/*  limits.c — the log side of the abuse limits (doc/security.md "Limits").

    Every refusal is answered (429) and counted (over_limit); the log gets
    the first one and then one line per interval with how many followed,
    because the client that hits a limit in a loop would otherwise make the
    broker write a line per request: the log would be the next resource one
    client could exhaust.                                                    */
#include "broker.h"

#define LIMIT_LOG_MS 10000

void
broker_limit_log (broker_t *self, const char *who, const char *what)
{
    if (self->limit_logged_ms && self->now_ms - self->limit_logged_ms < LIMIT_LOG_MS) {
        self->limit_quiet++;
        return;
    }
    if (self->limit_quiet)
        log_warning ("refused by a limit: '%s': %s (and %llu more refusals in the last %d s)",
                     who, what, (unsigned long long) self->limit_quiet, LIMIT_LOG_MS / 1000);
    else
        log_warning ("refused by a limit: '%s': %s", who, what);
    self->limit_quiet = 0;
    self->limit_logged_ms = self->now_ms ? self->now_ms : 1;
}
