/*  threads.c — test plugin: calls host functions from a thread of its own.

    plugin.h promises that host functions may be called from any thread
    between init and the return of fini.  init starts a thread that
    publishes "count" events on "topic" (config), logging and counting a
    metric for each, while the instance thread handles deliveries; fini
    joins it.  The integration test receives the events and reads the
    metric back.                                                             */
#include "busd/plugin.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    busd_plugin_instance_t *self;
    const busd_plugin_host_t *host;
    const char *topic;
    int64_t count;
    pthread_t thread;
} threads_t;

static void *
s_worker (void *arg)
{
    threads_t *t = arg;
    for (int64_t i = 0; i < t->count; i++) {
        char payload [32];
        int n = snprintf (payload, sizeof payload, "%lld", (long long) i);
        //  Generous timeout: credit comes back as the broker acknowledges.
        if (t->host->publish (t->self, t->topic, payload, (size_t) n, NULL, NULL, 30000) == 0)
            t->host->metric_add (t->self, "thread_published", 1);
        t->host->log (t->self, BUSD_LOG_DEBUG, "thread published %lld", (long long) i);
        (void) t->host->config_int (t->self, "count", 0);
    }
    t->host->log (t->self, BUSD_LOG_INFO, "worker thread done");
    return NULL;
}

static int
s_init (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state)
{
    threads_t *t = calloc (1, sizeof (threads_t));
    if (!t)
        return -ENOMEM;
    t->self = self;
    t->host = host;
    t->topic = host->config_string (self, "topic", "threads.out");
    t->count = host->config_int (self, "count", 100);
    if (pthread_create (&t->thread, NULL, s_worker, t)) {
        host->set_reason (self, "cannot start a thread");
        free (t);
        return -EAGAIN;
    }
    *state = t;
    return 0;
}

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    threads_t *t = state;
    t->host->metric_add (t->self, "handled", 1);
    return BUSD_PLUGIN_OK;
}

static void
s_fini (void *state)
{
    threads_t *t = state;
    pthread_join (t->thread, NULL);
    free (t);
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "threads", .version = "1.0.0", .description = "test: host calls from its own thread",
    .init = s_init, .on_event = s_on_event, .fini = s_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
