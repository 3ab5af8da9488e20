/*  pending.c — test plugin for plugin ABI 1.2: on_event answers PENDING
    and a thread of the plugin's own answers each event "hold_ms" (default
    100) later with host->complete: FAIL ("pending says no") for topics
    ending in ".fail", else OK after publishing "pending.done" from that
    thread (publish_credit checked first, publish_flush before complete).
    Records "done TOPIC PENDING" with how many events were pending at once,
    so the test sees both the concurrency and its bound (max_inflight).     */
#include "testplugin.h"
#include <pthread.h>
#include <stdbool.h>

#define MAX_HELD 256

typedef struct {
    tp_state_t tp;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    struct { uint64_t delivery_id; char topic [256]; long long due_ms; } held [MAX_HELD];
    int count;
    long hold_ms;
} pending_t;

static void *
s_answerer (void *arg)
{
    pending_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        if (self->count == 0 || self->held [0].due_ms > tp_now_ms ()) {
            struct timespec until;
            clock_gettime (CLOCK_REALTIME, &until);
            until.tv_nsec += 5 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait (&self->cond, &self->lock, &until);
            continue;
        }
        uint64_t id = self->held [0].delivery_id;
        char topic [256];
        memcpy (topic, self->held [0].topic, sizeof topic);
        int pending = self->count;
        memmove (&self->held [0], &self->held [1], (size_t) (self->count - 1) * sizeof self->held [0]);
        self->count--;
        pthread_mutex_unlock (&self->lock);

        const busd_plugin_host_t *host = self->tp.host;
        size_t len = strlen (topic);
        if (len > 5 && strcmp (topic + len - 5, ".fail") == 0)
            host->complete (self->tp.self, id, BUSD_PLUGIN_FAIL, 0, "pending says no");
        else {
            while (host->publish_credit (self->tp.self) == 0)
                usleep (1000);
            int rc = host->publish (self->tp.self, "pending.done", topic, len, NULL, NULL, 0);
            if (rc == 0)
                rc = host->publish_flush (self->tp.self, 5000);
            host->complete (self->tp.self, id, rc == 0 ? BUSD_PLUGIN_OK : BUSD_PLUGIN_RETRY,
                            0, rc == 0 ? NULL : "follow-up not accepted");
        }
        tp_record (&self->tp, "done %s %d", topic, pending);
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

static int
s_init (busd_plugin_instance_t *instance, const busd_plugin_host_t *host, void **state)
{
    if (host->abi_minor < 2) {
        host->set_reason (instance, "needs plugin host ABI 1.2");
        return -ENOTSUP;
    }
    pending_t *self = calloc (1, sizeof *self);
    if (!self)
        return -ENOMEM;
    self->tp.self = instance;
    self->tp.host = host;
    self->tp.file = host->config_string (instance, "file", NULL);
    self->hold_ms = (long) host->config_int (instance, "hold_ms", 100);
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->cond, NULL);
    if (pthread_create (&self->thread, NULL, s_answerer, self)) {
        free (self);
        return -EAGAIN;
    }
    *state = self;
    return 0;
}

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    pending_t *self = state;
    pthread_mutex_lock (&self->lock);
    if (self->count == MAX_HELD) {
        pthread_mutex_unlock (&self->lock);
        return BUSD_PLUGIN_RETRY;
    }
    self->held [self->count].delivery_id = event->delivery_id;
    snprintf (self->held [self->count].topic, sizeof self->held [0].topic, "%s", event->topic);
    self->held [self->count].due_ms = tp_now_ms () + self->hold_ms;
    self->count++;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->lock);
    return BUSD_PLUGIN_PENDING;
}

static void
s_fini (void *state)
{
    pending_t *self = state;
    pthread_mutex_lock (&self->lock);
    self->stop = true;
    pthread_cond_signal (&self->cond);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    pthread_cond_destroy (&self->cond);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "pending", .version = "1.0.0", .description = "test: answers later (ABI 1.2)",
    .init = s_init, .on_event = s_on_event, .fini = s_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
