/*  metrics.h — Prometheus text exposition on /metrics (libmicrohttpd).

    The HTTP server runs in libmicrohttpd's own thread, but the routing
    state belongs to the broker thread alone.  So the broker thread renders
    the exposition text on a timer into a mutex-guarded snapshot, and the
    HTTP thread only ever copies that string: no lock on the hot path, and
    a scrape is at most one render interval old.                            */
#ifndef BUSD_METRICS_H_INCLUDED
#define BUSD_METRICS_H_INCLUDED

typedef struct metrics metrics_t;
typedef struct broker broker_t;

/*  Listen on "HOST:PORT" (or ":PORT" / "PORT" for 127.0.0.1).  Returns NULL
    and logs why on failure (busy port, bad address, no libmicrohttpd).     */
metrics_t *metrics_new (const char *address);
void metrics_destroy (metrics_t **self_p);
/*  From now on /healthz answers 503 "draining" (any thread; NULL is fine). */
void metrics_set_draining (metrics_t *self);
/*  Render the broker's current state into the snapshot.                    */
void metrics_update (metrics_t *self, broker_t *broker);

#endif
