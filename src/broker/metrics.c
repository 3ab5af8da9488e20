/*  metrics.c — see metrics.h.                                               */
#include "broker.h"
#include "metrics.h"
#include "clock.h"
#include "dlq.h"
#include "dedup.h"
#include "durable.h"
#include <pthread.h>
#include <arpa/inet.h>
#include <stdatomic.h>
#include <sys/socket.h>
#ifdef HAVE_MHD
#   include <microhttpd.h>
#endif

struct metrics {
#ifdef HAVE_MHD
    struct MHD_Daemon *daemon;
#endif
    pthread_mutex_t lock;
    char *text;
    atomic_bool draining;       /*  /healthz answers 503 once set           */
    char address [128];         /*  metrics_bind, for libmicrohttpd's lines */
};

#ifdef HAVE_MHD
static enum MHD_Result
s_answer (void *cls, struct MHD_Connection *connection, const char *url,
          const char *method, const char *version, const char *upload_data,
          size_t *upload_data_size, void **con_cls)
{
    metrics_t *self = cls;
    struct MHD_Response *response;
    unsigned int status = MHD_HTTP_OK;
    if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
        static const char msg [] = "method not allowed\n";
        response = MHD_create_response_from_buffer (sizeof msg - 1, (void *) msg,
                                                    MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    }
    else
    if (strcmp (url, "/healthz") == 0) {
        //  For load balancers and watchdogs: 200 while serving, 503 from
        //  the moment a stop begins draining (take it out of rotation).
        static const char ok [] = "serving\n", draining [] = "draining\n";
        bool is_draining = atomic_load (&self->draining);
        response = MHD_create_response_from_buffer (is_draining ? sizeof draining - 1 : sizeof ok - 1,
                                                    (void *) (is_draining ? draining : ok),
                                                    MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header (response, "Content-Type", "text/plain");
        status = is_draining ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK;
    }
    else
    if (strcmp (url, "/metrics") != 0) {
        static const char msg [] = "not found: busd serves /metrics and /healthz\n";
        response = MHD_create_response_from_buffer (sizeof msg - 1, (void *) msg,
                                                    MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    }
    else {
        pthread_mutex_lock (&self->lock);
        char *copy = strdup (self->text ? self->text : "");
        pthread_mutex_unlock (&self->lock);
        if (!copy)
            return MHD_NO;
        response = MHD_create_response_from_buffer (strlen (copy), copy, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header (response, "Content-Type", "text/plain; version=0.0.4");
    }
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}
#endif

#ifdef HAVE_MHD
/*  libmicrohttpd's own messages, as one busd line naming the address.       */
static void
s_mhd_log (void *arg, const char *format, va_list args)
{
    char text [512];
    vsnprintf (text, sizeof text, format, args);
    log_warning ("metrics_bind %s: %s", (const char *) arg, text);
}
#endif

metrics_t *
metrics_new (const char *address)
{
#ifdef HAVE_MHD
    char host [128] = "127.0.0.1";
    const char *colon = strrchr (address, ':');
    const char *port_text = colon ? colon + 1 : address;
    if (colon && colon != address) {
        size_t len = (size_t) (colon - address);
        if (len >= sizeof host) {
            log_error ("metrics_bind '%s': host too long", address);
            return NULL;
        }
        memcpy (host, address, len);
        host [len] = 0;
    }
    char *end;
    long port = strtol (port_text, &end, 10);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    if (*end || port <= 0 || port > 65535 || inet_pton (AF_INET, host, &addr.sin_addr) != 1) {
        log_error ("metrics_bind '%s' is not HOST:PORT with an IPv4 host (e.g. 127.0.0.1:9460)",
                   address);
        return NULL;
    }
    //  The listening socket is ours: libmicrohttpd would only say "Failed
    //  to bind to port 0" (it never saw the port), while bind's errno names
    //  the real trouble next to the address the operator configured.
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)
    ||  bind (fd, (struct sockaddr *) &addr, sizeof addr) || listen (fd, 16)) {
        log_error ("metrics_bind %s: cannot serve /metrics: %s", address, strerror (errno));
        if (fd >= 0)
            close (fd);
        return NULL;
    }
    metrics_t *self = calloc (1, sizeof (metrics_t));
    if (!self) {
        close (fd);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    atomic_init (&self->draining, false);
    snprintf (self->address, sizeof self->address, "%s", address);
    self->daemon = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                     0, NULL, NULL, s_answer, self,
                                     MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, (void *) self->address,
                                     MHD_OPTION_LISTEN_SOCKET, fd,
                                     MHD_OPTION_CONNECTION_LIMIT, 16u,
                                     MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                     MHD_OPTION_END);
    if (!self->daemon) {
        log_error ("metrics_bind %s: cannot start the HTTP server", address);
        close (fd);
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    log_notice ("serving Prometheus metrics on http://%s:%ld/metrics (health: /healthz)", host, port);
    return self;
#else
    log_error ("metrics_bind is set but busd was built without libmicrohttpd");
    return NULL;
#endif
}

void
metrics_set_draining (metrics_t *self)
{
    if (self)
        atomic_store (&self->draining, true);
}

void
metrics_destroy (metrics_t **self_p)
{
    metrics_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
#ifdef HAVE_MHD
    MHD_stop_daemon (self->daemon);
#endif
    pthread_mutex_destroy (&self->lock);
    free (self->text);
    free (self);
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static void
s_add (void *arg, const char *fmt, ...)
{
    sbuf_t *s = arg;
    va_list args;
    va_start (args, fmt);
    int n = vsnprintf (NULL, 0, fmt, args);
    va_end (args);
    if (n < 0)
        return;
    if (s->len + (size_t) n + 1 > s->cap) {
        size_t cap = (s->cap + (size_t) n + 1) * 2;
        char *grown = realloc (s->buf, cap);
        if (!grown)
            return;
        s->buf = grown;
        s->cap = cap;
    }
    va_start (args, fmt);
    vsnprintf (s->buf + s->len, s->cap - s->len, fmt, args);
    va_end (args);
    s->len += (size_t) n;
}

static void
s_metric (sbuf_t *s, const char *name, const char *type, const char *help, double value)
{
    s_add (s, "# HELP busd_%s %s\n# TYPE busd_%s %s\nbusd_%s %.0f\n",
           name, help, name, type, name, value);
}

void
metrics_update (metrics_t *self, broker_t *broker)
{
    const stats_t *st = &broker->stats;
    sbuf_t s = { 0 };
#define BUSD_METRIC_COUNTER(field, key, metric, help) \
    if (metric [0]) \
        s_metric (&s, metric, "counter", help, (double) st->field);
    BUSD_COUNTERS (BUSD_METRIC_COUNTER)
#undef BUSD_METRIC_COUNTER
    s_metric (&s, "sessions", "gauge", "live sessions", (double) zhashx_size (broker->sessions));
    s_metric (&s, "throttled_publishers", "gauge", "publishers currently throttled", (double) broker->throttled_sessions);
    s_metric (&s, "queued_bytes", "gauge", "bytes waiting in subscription queues", (double) broker->queued_bytes);
    s_metric (&s, "dead_letters_stored", "gauge", "dead letters kept for dlq-list/replay", (double) dlq_size (broker->dlq));
    s_metric (&s, "dedup_entries", "gauge", "msg_ids in the dedup window", (double) dedup_size (broker->dedup));
    s_metric (&s, "uptime_seconds", "gauge", "seconds since start", (double) ((busp_mono_ms () - broker->started_ms) / 1000));

    //  Queue depth per policy is a gauge summed over live channels; drops
    //  per policy are counted broker-wide, so the counter never goes down.
    double queued [POLICY_COUNT] = { 0 };
    size_t subscriptions = 0;
    for (size_t i = 0; i < broker->all_channels.size; i++) {
        channel_t *channel = broker->all_channels.items [i];
        queued [channel->policy] += (double) channel_waiting (channel);
        subscriptions += channel->members.size;
    }
    s_metric (&s, "subscriptions", "gauge", "live subscriptions", (double) subscriptions);
    s_add (&s, "# HELP busd_events_dropped_total events dropped by overflow policy\n"
               "# TYPE busd_events_dropped_total counter\n");
    for (int p = 0; p < POLICY_COUNT; p++)
        s_add (&s, "busd_events_dropped_total{policy=\"%s\"} %.0f\n", policy_name ((policy_t) p),
               (double) st->dropped_by_policy [p]);
    s_add (&s, "# HELP busd_events_queued events waiting for subscriber credit\n"
               "# TYPE busd_events_queued gauge\n");
    for (int p = 0; p < POLICY_COUNT; p++)
        s_add (&s, "busd_events_queued{policy=\"%s\"} %.0f\n", policy_name ((policy_t) p), queued [p]);
    durable_metrics (broker, s_add, &s);
    if (broker->plugin_metrics)
        broker->plugin_metrics (broker->plugin_metrics_arg, s_add, &s);
    if (!s.buf)
        return;
    pthread_mutex_lock (&self->lock);
    free (self->text);
    self->text = s.buf;
    pthread_mutex_unlock (&self->lock);
}
