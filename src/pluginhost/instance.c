/*  instance.c — the plugin instance thread and the host functions (see
    instance.h).

    The client is touched under client_lock only for the length of one
    library call, never while the plugin runs: a plugin may publish from its
    own threads (the ABI promises thread-safe host functions) and then waits
    at most one short receive (RECV_SLICE_MS) for the lock.  Counters and
    state sit under a second mutex so that readers (CTL, /metrics) never
    queue behind a blocking receive.                                         */
#include "instance.h"
#include "busd/client.h"
#include "clock.h"
#include "util.h"
#include "logfmt.h"
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECV_SLICE_MS       100     /*  how often the thread looks at flags */
#define STOP_SLICE_MS       20
#define SHUTDOWN_IDLE_MS    100     /*  no delivery this long: queue empty  */
#define CONNECT_TIMEOUT_MS  5000
#define SUBSCRIBE_TIMEOUT_MS 5000
#define UNSUB_TIMEOUT_MS    1000
#define FLUSH_TIMEOUT_MS    5000
#define CONFLICT_RETRY_MS   30000   /*  a group member with other options
                                        (the instance being replaced) may
                                        still hold the group this long      */
#define RESUBSCRIBE_MS      1000
#define PENDING_SLICE_MS    1       /*  receive slice while events are pending */
#define METRIC_NAME_MAX     64

typedef struct {
    char name [METRIC_NAME_MAX];
    double value;
} metric_t;

/*  An event the plugin answered PENDING for (ABI 1.1): the delivery stays
    here, owned by the instance thread, until host->complete answers it.    */
typedef struct {
    uint64_t delivery_id;
    busd_msg_t *msg;
    int64_t start_us;
} pending_t;

/*  An answer from host->complete, queued under the instance's lock because
    it may come from any of the plugin's threads.                           */
typedef struct {
    uint64_t delivery_id;
    int result;
    uint32_t delay_ms;
    char *reason;               /*  NULL when none                          */
} completion_t;

typedef struct {
    char *pattern;
    uint32_t sub_id;            /*  0: not subscribed                       */
    int64_t retry_ms;           /*  when to subscribe again after a SUBEND   */
} isub_t;

struct busd_plugin_instance {
    plugin_module_t *module;
    char *name;
    char tag [PLUGIN_NAME_MAX + 48];    /*  "plugin 'x'" or "plugin 'x' [2/3]" */
    char client_name [PLUGIN_NAME_MAX + 32];
    char *endpoint;
    void *zmq_context;
    isub_t *subs;
    size_t sub_count;
    char *sub_options;
    cJSON *config;
    char *config_json;
    uint32_t tick_ms;

    /*  Owned by the instance thread.                                        */
    void *state;
    bool initialized;
    bool broker_gone;
    bool published;             /*  on_event published: flush before ACK   */
    int64_t next_tick_ms;
    pending_t *pending;
    size_t pending_count, pending_cap;

    pthread_mutex_t client_lock;
    busd_client_t *client;
    /*  The session for publishes from the plugin's own threads (created on
        the first one), so they never wait for the instance thread's
        receive, and their credit is theirs alone.                          */
    pthread_mutex_t pub_lock;
    busd_client_t *pub_client;

    pthread_t thread;
    bool started;
    atomic_int stop_how;
    atomic_llong stop_deadline;
    atomic_bool reload;
    atomic_bool exited;

    pthread_mutex_t lock;       /*  everything below                        */
    plugin_state_t state_code;
    char error [512];
    plugin_counters_t counters;
    metric_t *metrics;
    size_t metric_count, metric_cap;
    char reason [512];          /*  set_reason for the current event        */
    bool reason_set;
    uint32_t retry_delay_ms;
    completion_t *done;         /*  host->complete answers not yet sent    */
    size_t done_count, done_cap;
    bool config_error;          /*  init returned -EINVAL                   */

    plugin_publish_fn *publish_sink;    /*  busd-plugin-driver: no client */

    /*  Set only while check_config runs: each set_reason is one problem.    */
    char *check_errors;
    size_t check_size;
    const char *check_where;
    int check_problems;
};

/*  ------------------------------------------------------------------
    Logging                                                                 */

static plugin_log_fn *s_sink = NULL;
static atomic_int s_level = BUSD_LOG_INFO;

void
plugin_log_set_sink (plugin_log_fn *sink)
{
    s_sink = sink;
}

void
plugin_log_set_level (int level)
{
    s_level = level;
}

const char *
plugin_log_stamp (int level, char *stamp, size_t size)
{
    static const char *names [] = { "D", "I", "N", "W", "E" };
    busp_log_stamp (stamp, size);
    return names [level < 0 ? 0 : level > 4 ? 4 : level];
}

static void
s_default_sink (int level, const char *line)
{
    char stamp [32];
    const char *letter = plugin_log_stamp (level, stamp, sizeof stamp);
    fprintf (stderr, "%s: %s %s\n", letter, stamp, line);
    fflush (stderr);
}

static void
s_vlog (int level, const char *format, va_list args)
{
    if (level < s_level && !s_sink)
        return;
    char line [2048];
    vsnprintf (line, sizeof line, format, args);
    busp_log_one_line (line, sizeof line);
    (s_sink ? s_sink : s_default_sink) (level, line);
}

void
plugin_log (int level, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_vlog (level, format, args);
    va_end (args);
}

const char *
plugin_state_name (plugin_state_t state)
{
    switch (state) {
        case PLUGIN_STATE_STARTING: return "starting";
        case PLUGIN_STATE_RUNNING:  return "running";
        case PLUGIN_STATE_STOPPING: return "stopping";
        case PLUGIN_STATE_STOPPED:  return "stopped";
        case PLUGIN_STATE_FAILED:   return "failed";
        case PLUGIN_STATE_DISABLED: return "disabled";
    }
    return "unknown";
}

/*  ------------------------------------------------------------------
    Host functions                                                          */

static void
s_host_log (busd_plugin_instance_t *self, int level, const char *format, ...)
{
    char text [1800];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    plugin_log (level, "%s: %s", self ? self->tag : "plugin", text);
}

/*  A key is looked up as written first, then as a dotted path, so a plugin
    may use either {"smtp": {"host": ...}} or {"smtp.host": ...}.            */
static const cJSON *
s_lookup (const busd_plugin_instance_t *self, const char *key)
{
    if (!self || !key || !self->config)
        return NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (self->config, key);
    if (item || !strchr (key, '.'))
        return item;
    char path [512];
    if (strlen (key) >= sizeof path)
        return NULL;
    strcpy (path, key);
    item = self->config;
    char *saveptr = NULL;
    for (char *token = strtok_r (path, ".", &saveptr); token && item;
         token = strtok_r (NULL, ".", &saveptr))
        item = cJSON_IsObject (item) ? cJSON_GetObjectItemCaseSensitive (item, token) : NULL;
    return item;
}

static const char *
s_host_config_string (busd_plugin_instance_t *self, const char *key, const char *default_value)
{
    const cJSON *item = s_lookup (self, key);
    return cJSON_IsString (item) ? item->valuestring : default_value;
}

static int64_t
s_host_config_int (busd_plugin_instance_t *self, const char *key, int64_t default_value)
{
    const cJSON *item = s_lookup (self, key);
    if (!cJSON_IsNumber (item))
        return default_value;
    double v = item->valuedouble;
    //  Only whole numbers that fit: 1.5 or 1e30 are "another type".
    if (!(v >= -9.2e18 && v <= 9.2e18) || v != (double) (int64_t) v)
        return default_value;
    return (int64_t) v;
}

static double
s_host_config_double (busd_plugin_instance_t *self, const char *key, double default_value)
{
    const cJSON *item = s_lookup (self, key);
    return cJSON_IsNumber (item) ? item->valuedouble : default_value;
}

static bool
s_host_config_bool (busd_plugin_instance_t *self, const char *key, bool default_value)
{
    const cJSON *item = s_lookup (self, key);
    return cJSON_IsBool (item) ? cJSON_IsTrue (item) : default_value;
}

static const char *
s_host_config_json (busd_plugin_instance_t *self)
{
    return self && self->config_json ? self->config_json : "{}";
}

/*  The instance whose thread this is (NULL in other threads).              */
static __thread busd_plugin_instance_t *s_current = NULL;

static bool
s_on_instance_thread (busd_plugin_instance_t *self)
{
    return s_current == self;
}

/*  The publisher session, connected on first use; call under pub_lock.    */
static busd_client_t *
s_pub_client (busd_plugin_instance_t *self, int *err)
{
    if (self->pub_client)
        return self->pub_client;
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    char name [sizeof self->client_name + 8];
    snprintf (name, sizeof name, "%s.pub", self->client_name);
    opts.endpoint = self->endpoint;
    opts.client_name = name;
    opts.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    opts.reconnect = true;
    opts.zmq_context = self->zmq_context;
    self->pub_client = busd_client_new (&opts, err);
    return self->pub_client;
}

static int
s_host_publish_other (busd_plugin_instance_t *self, const char *topic, const void *payload,
                      size_t size, const busd_pub_options_t *opts, int timeout_ms)
{
    int rc = -ENOTCONN;
    pthread_mutex_lock (&self->pub_lock);
    busd_client_t *client = s_pub_client (self, &rc);
    if (client)
        rc = busd_publish (client, topic, payload, size, opts, timeout_ms);
    pthread_mutex_unlock (&self->pub_lock);
    if (rc && rc != BUSD_ENOCREDIT)
        plugin_log (BUSD_LOG_WARNING, "%s: publish to '%s' failed: %s", self->tag, topic,
                    busd_strerror (rc));
    return rc;
}

static int
s_host_publish (busd_plugin_instance_t *self, const char *topic, const void *payload,
                size_t size, const char *headers_json, const char *msg_id, int timeout_ms)
{
    if (!self || !topic || (size && !payload))
        return -EINVAL;
    if (self->publish_sink)
        return self->publish_sink (self->name, topic, payload, size, headers_json, msg_id);
    busd_pub_options_t opts = { .msg_id = msg_id, .headers_json = headers_json };
    if (!s_on_instance_thread (self))
        return s_host_publish_other (self, topic, payload, size, &opts, timeout_ms);
    pthread_mutex_lock (&self->client_lock);
    int rc = self->client
           ? busd_publish (self->client, topic, payload, size, &opts, timeout_ms)
           : -ENOTCONN;
    if (rc == 0)
        self->published = true;
    pthread_mutex_unlock (&self->client_lock);
    if (rc)
        plugin_log (BUSD_LOG_WARNING, "%s: publish to '%s' failed: %s", self->tag, topic,
                    busd_strerror (rc));
    return rc;
}

static void
s_host_set_reason (busd_plugin_instance_t *self, const char *format, ...)
{
    if (!self || !format)
        return;
    char text [sizeof self->reason];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    pthread_mutex_lock (&self->lock);
    if (self->check_errors) {
        //  The key is named by the prefix already.
        const char *problem = strncmp (text, "config: ", 8) == 0 ? text + 8 : text;
        busp_appendf (self->check_errors, self->check_size, "%s: key 'config': %s\n",
                      self->check_where, problem);
        self->check_problems++;
        pthread_mutex_unlock (&self->lock);
        return;
    }
    memcpy (self->reason, text, sizeof text);
    self->reason_set = true;
    pthread_mutex_unlock (&self->lock);
}

static void
s_host_set_retry_delay (busd_plugin_instance_t *self, uint32_t delay_ms)
{
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    self->retry_delay_ms = delay_ms;
    pthread_mutex_unlock (&self->lock);
}

static void
s_host_metric_add (busd_plugin_instance_t *self, const char *name, double value)
{
    if (!self || !name || !*name)
        return;
    pthread_mutex_lock (&self->lock);
    size_t i;
    for (i = 0; i < self->metric_count; i++)
        if (strncmp (self->metrics [i].name, name, METRIC_NAME_MAX - 1) == 0)
            break;
    if (i == self->metric_count) {
        if (self->metric_count == self->metric_cap) {
            size_t cap = self->metric_cap ? self->metric_cap * 2 : 8;
            metric_t *grown = realloc (self->metrics, cap * sizeof (metric_t));
            if (!grown) {
                pthread_mutex_unlock (&self->lock);
                return;
            }
            self->metrics = grown;
            self->metric_cap = cap;
        }
        snprintf (self->metrics [i].name, METRIC_NAME_MAX, "%s", name);
        self->metrics [i].value = 0;
        self->metric_count++;
    }
    self->metrics [i].value += value;
    pthread_mutex_unlock (&self->lock);
}

static const char *
s_host_instance_name (busd_plugin_instance_t *self)
{
    return self ? self->name : "";
}

static int
s_host_complete (busd_plugin_instance_t *self, uint64_t delivery_id,
                 busd_plugin_result_t result, uint32_t retry_delay_ms, const char *reason)
{
    if (!self || (result != BUSD_PLUGIN_OK && result != BUSD_PLUGIN_RETRY
                  && result != BUSD_PLUGIN_FAIL))
        return -EINVAL;
    char *copy = NULL;
    if (reason && !(copy = strdup (reason)))
        return -ENOMEM;
    pthread_mutex_lock (&self->lock);
    if (self->done_count == self->done_cap) {
        size_t cap = self->done_cap ? self->done_cap * 2 : 64;
        completion_t *grown = realloc (self->done, cap * sizeof (completion_t));
        if (!grown) {
            pthread_mutex_unlock (&self->lock);
            free (copy);
            return -ENOMEM;
        }
        self->done = grown;
        self->done_cap = cap;
    }
    self->done [self->done_count++] = (completion_t) {
        .delivery_id = delivery_id, .result = (int) result,
        .delay_ms = retry_delay_ms, .reason = copy
    };
    pthread_mutex_unlock (&self->lock);
    return 0;
}

static uint32_t
s_host_publish_credit (busd_plugin_instance_t *self)
{
    if (!self)
        return 0;
    if (self->publish_sink)
        return 1000;            /*  busd-plugin-driver: the sink never waits */
    if (!s_on_instance_thread (self)) {
        //  Reading what arrived (PUBACKs with credit, PINGs) first keeps
        //  the count current and the session alive.
        int err = 0;
        pthread_mutex_lock (&self->pub_lock);
        busd_client_t *client = s_pub_client (self, &err);
        uint32_t credit = 0;
        if (client && busd_client_poll (client, 0) == 0)
            credit = busd_client_pub_credit (client);
        pthread_mutex_unlock (&self->pub_lock);
        return credit;
    }
    pthread_mutex_lock (&self->client_lock);
    uint32_t credit = self->client ? busd_client_pub_credit (self->client) : 0;
    pthread_mutex_unlock (&self->client_lock);
    return credit;
}

static int
s_host_publish_flush (busd_plugin_instance_t *self, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    if (self->publish_sink)
        return 0;
    if (!s_on_instance_thread (self)) {
        pthread_mutex_lock (&self->pub_lock);
        int rc = self->pub_client ? busd_flush (self->pub_client, timeout_ms) : 0;
        pthread_mutex_unlock (&self->pub_lock);
        return rc;
    }
    pthread_mutex_lock (&self->client_lock);
    int rc = self->client ? busd_flush (self->client, timeout_ms) : -ENOTCONN;
    pthread_mutex_unlock (&self->client_lock);
    return rc;
}

static const busd_plugin_host_t s_host = {
    .size = sizeof (busd_plugin_host_t),
    .abi_major = BUSD_PLUGIN_ABI_MAJOR,
    .abi_minor = BUSD_PLUGIN_ABI_MINOR,
    .log = s_host_log,
    .config_string = s_host_config_string,
    .config_int = s_host_config_int,
    .config_double = s_host_config_double,
    .config_bool = s_host_config_bool,
    .config_json = s_host_config_json,
    .publish = s_host_publish,
    .set_reason = s_host_set_reason,
    .set_retry_delay = s_host_set_retry_delay,
    .metric_add = s_host_metric_add,
    .instance_name = s_host_instance_name,
    .complete = s_host_complete,
    .publish_credit = s_host_publish_credit,
    .publish_flush = s_host_publish_flush
};

const busd_plugin_host_t *
plugin_host_table (void)
{
    return &s_host;
}

/*  ------------------------------------------------------------------
    Lifecycle                                                               */

plugin_instance_t *
plugin_instance_new (plugin_module_t *module, const plugin_entry_t *entry,
                     const char *endpoint, void *zmq_context, int index)
{
    plugin_instance_t *self = calloc (1, sizeof (plugin_instance_t));
    if (!self)
        return NULL;
    self->module = module;
    self->zmq_context = zmq_context;
    self->tick_ms = module ? module->desc.tick_ms : 0;
    self->name = strdup (entry->name);
    self->endpoint = strdup (endpoint);
    self->config_json = strdup (entry->config_json);
    self->config = cJSON_Parse (entry->config_json);
    self->subs = calloc (entry->pattern_count, sizeof (isub_t));
    self->sub_count = entry->pattern_count;
    pthread_mutex_init (&self->client_lock, NULL);
    pthread_mutex_init (&self->pub_lock, NULL);
    pthread_mutex_init (&self->lock, NULL);
    atomic_init (&self->stop_how, PLUGIN_STOP_NONE);
    atomic_init (&self->stop_deadline, 0);
    atomic_init (&self->reload, false);
    atomic_init (&self->exited, false);
    if (entry->instances > 1) {
        snprintf (self->tag, sizeof self->tag, "plugin '%s' [%d/%d]", entry->name, index,
                  entry->instances);
        snprintf (self->client_name, sizeof self->client_name, "plugin.%s/%d", entry->name, index);
    }
    else {
        snprintf (self->tag, sizeof self->tag, "plugin '%s'", entry->name);
        snprintf (self->client_name, sizeof self->client_name, "plugin.%s", entry->name);
    }
    //  Explicit acks in the plugin's own queue group: instances share the
    //  work, and a replacement (reload, restarted busd-plugin-host) takes
    //  over what its predecessor left unacknowledged while the group lives.
    cJSON *opts = cJSON_CreateObject ();
    if (opts) {
        cJSON_AddStringToObject (opts, "ack", "explicit");
        cJSON_AddNumberToObject (opts, "credit", entry->max_inflight);
        cJSON_AddNumberToObject (opts, "ack_wait_ms", entry->ack_wait_ms);
        cJSON_AddNumberToObject (opts, "max_deliver", entry->max_deliver);
        char group [PLUGIN_NAME_MAX + 16];
        snprintf (group, sizeof group, "plugin.%s", entry->name);
        cJSON_AddStringToObject (opts, "group", group);
        //  When the group's last member goes (a crash, a stop) what it
        //  leaves is dead-lettered, never discarded (PROTOCOL §4).
        cJSON_AddStringToObject (opts, "on_end", "dead-letter");
        self->sub_options = cJSON_PrintUnformatted (opts);
        cJSON_Delete (opts);
    }
    bool ok = self->name && self->endpoint && self->config_json && self->config
           && self->subs && self->sub_options;
    for (size_t i = 0; ok && i < self->sub_count; i++)
        ok = (self->subs [i].pattern = strdup (entry->patterns [i])) != NULL;
    if (!ok) {
        plugin_instance_destroy (&self);
        return NULL;
    }
    return self;
}

void
plugin_instance_destroy (plugin_instance_t **self_p)
{
    plugin_instance_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    assert (!self->started || atomic_load (&self->exited));
    if (self->started)
        pthread_join (self->thread, NULL);
    busd_client_destroy (&self->client);
    busd_client_destroy (&self->pub_client);
    for (size_t i = 0; i < self->pending_count; i++)
        busd_msg_destroy (&self->pending [i].msg);
    free (self->pending);
    for (size_t i = 0; i < self->done_count; i++)
        free (self->done [i].reason);
    free (self->done);
    for (size_t i = 0; self->subs && i < self->sub_count; i++)
        free (self->subs [i].pattern);
    free (self->subs);
    free (self->sub_options);
    cJSON_Delete (self->config);
    free (self->config_json);
    free (self->endpoint);
    free (self->name);
    free (self->metrics);
    pthread_mutex_destroy (&self->client_lock);
    pthread_mutex_destroy (&self->pub_lock);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

/*  Copy, cutting what does not fit (messages, not data).                    */
static void
s_copy (char *dst, size_t size, const char *src)
{
    size_t len = strlen (src);
    if (len >= size)
        len = size - 1;
    memcpy (dst, src, len);
    dst [len] = 0;
}

static void
s_set_state (plugin_instance_t *self, plugin_state_t state, const char *error)
{
    pthread_mutex_lock (&self->lock);
    self->state_code = state;
    if (error)
        s_copy (self->error, sizeof self->error, error);
    pthread_mutex_unlock (&self->lock);
}

static plugin_stop_t
s_stop_how (plugin_instance_t *self)
{
    return (plugin_stop_t) atomic_load (&self->stop_how);
}

/*  Sleep up to ms, waking early when a stop is requested.                   */
static void
s_nap (plugin_instance_t *self, int ms)
{
    int64_t until = busp_mono_ms () + ms;
    while (s_stop_how (self) == PLUGIN_STOP_NONE && busp_mono_ms () < until) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep (&ts, NULL);
    }
}

static int
s_connect (plugin_instance_t *self)
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = self->endpoint;
    opts.client_name = self->client_name;
    opts.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    opts.reconnect = true;
    opts.zmq_context = self->zmq_context;
    if (!self->zmq_context) {
        //  Out of process (busd-plugin-host): credentials as for the tools
        //  (doc/security.md).  In the broker, inproc:// needs none.
        opts.curve_server_key = getenv ("BUSD_CURVE_SERVER_KEY");
        opts.curve_cert = getenv ("BUSD_CURVE_CERT");
        opts.plain_user = getenv ("BUSD_PLAIN_USER");
        opts.plain_password = getenv ("BUSD_PLAIN_PASSWORD");
    }
    bool warned = false;
    int backoff = 100;
    while (s_stop_how (self) == PLUGIN_STOP_NONE) {
        int err = 0;
        busd_client_t *client = busd_client_new (&opts, &err);
        if (client) {
            pthread_mutex_lock (&self->client_lock);
            self->client = client;
            pthread_mutex_unlock (&self->client_lock);
            if (warned)
                plugin_log (BUSD_LOG_NOTICE, "%s: connected to %s", self->tag, self->endpoint);
            return 0;
        }
        if (!warned)
            plugin_log (BUSD_LOG_WARNING, "%s: cannot connect to %s: %s; retrying", self->tag,
                        self->endpoint, busd_strerror (err));
        warned = true;
        s_nap (self, backoff);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
    return -ECANCELED;
}

static int
s_init (plugin_instance_t *self)
{
    if (!self->module->desc.init) {
        self->initialized = true;
        return 0;
    }
    pthread_mutex_lock (&self->lock);
    self->reason_set = false;
    self->reason [0] = 0;
    pthread_mutex_unlock (&self->lock);
    int rc = self->module->desc.init (self, &s_host, &self->state);
    if (rc >= 0) {
        self->initialized = true;
        return 0;
    }
    char error [600];
    pthread_mutex_lock (&self->lock);
    self->config_error = rc == -EINVAL;
    if (self->reason_set)
        snprintf (error, sizeof error, "init failed: %s", self->reason);
    else
        snprintf (error, sizeof error, "init failed (returned %d) without a reason", rc);
    pthread_mutex_unlock (&self->lock);
    plugin_log (BUSD_LOG_ERROR, "%s: %s; instance not started", self->tag, error);
    s_set_state (self, PLUGIN_STATE_FAILED, error);
    return -EINVAL;
}

/*  Subscribe one pattern.  0, or a negative code with *code / reason set.  */
static int
s_subscribe (plugin_instance_t *self, isub_t *sub, uint16_t *code, char *reason, size_t size)
{
    pthread_mutex_lock (&self->client_lock);
    int64_t id = busd_subscribe (self->client, sub->pattern, self->sub_options,
                                 SUBSCRIBE_TIMEOUT_MS);
    const char *why = "";
    *code = 0;
    if (id < 0)
        *code = busd_client_last_error (self->client, &why);
    pthread_mutex_unlock (&self->client_lock);
    if (id < 0) {
        snprintf (reason, size, "%s", why && *why ? why : busd_strerror ((int) id));
        return (int) id;
    }
    sub->sub_id = (uint32_t) id;
    return 0;
}

static int
s_subscribe_all (plugin_instance_t *self)
{
    int64_t give_up = busp_mono_ms () + CONFLICT_RETRY_MS;
    for (size_t i = 0; i < self->sub_count; i++) {
        isub_t *sub = &self->subs [i];
        while (true) {
            uint16_t code;
            char reason [256];
            int rc = s_subscribe (self, sub, &code, reason, sizeof reason);
            if (rc == 0)
                break;
            if (code == 409 && busp_mono_ms () < give_up
            &&  s_stop_how (self) == PLUGIN_STOP_NONE) {
                s_nap (self, 500);
                continue;
            }
            char error [600];
            snprintf (error, sizeof error, "cannot subscribe to '%s': %s%s", sub->pattern,
                      reason, code == 409 ? " (another member of the group uses other queue "
                      "options)" : "");
            if (s_stop_how (self) != PLUGIN_STOP_NONE)
                return -ECANCELED;
            plugin_log (BUSD_LOG_ERROR, "%s: %s", self->tag, error);
            s_set_state (self, PLUGIN_STATE_FAILED, error);
            return rc;
        }
    }
    return 0;
}

static void
s_tick (plugin_instance_t *self)
{
    if (!self->tick_ms || !self->module->desc.on_tick)
        return;
    int64_t now = busp_mono_ms ();
    if (now < self->next_tick_ms)
        return;
    self->module->desc.on_tick (self->state);
    self->next_tick_ms = busp_mono_ms () + self->tick_ms;
}

static int s_answer (plugin_instance_t *self, busd_msg_t *msg, int result, const char *reason,
                     bool reason_set, uint32_t delay, int64_t took);

static int
s_pending_add (plugin_instance_t *self, busd_msg_t *msg, uint64_t delivery_id, int64_t start_us)
{
    if (self->pending_count == self->pending_cap) {
        size_t cap = self->pending_cap ? self->pending_cap * 2 : 16;
        pending_t *grown = realloc (self->pending, cap * sizeof (pending_t));
        if (!grown)
            return -ENOMEM;
        self->pending = grown;
        self->pending_cap = cap;
    }
    self->pending [self->pending_count++] = (pending_t) {
        .delivery_id = delivery_id, .msg = msg, .start_us = start_us
    };
    return 0;
}

/*  s_handle's answers besides true (stop) and false (go on).                */
#define PENDING_KEPT 2

/*  Hand one delivery to the plugin and answer the broker for it.  Returns
    true when the instance must stop (FATAL), PENDING_KEPT when the plugin
    keeps the delivery (msg now belongs to the pending table).              */
static int
s_handle (plugin_instance_t *self, busd_msg_t *msg)
{
    busd_plugin_event_t ev = {
        .topic = busd_msg_topic (msg),
        .payload = busd_msg_payload (msg),
        .size = busd_msg_size (msg),
        .msg_id = busd_msg_msg_id (msg),
        .headers_json = busd_msg_headers (msg),
        .attempt = busd_msg_attempt (msg),
        .stream_seq = busd_msg_stream_seq (msg),
        .ts_us = busd_msg_ts_us (msg),
        .delivery_id = busd_msg_delivery_id (msg)
    };
    pthread_mutex_lock (&self->lock);
    self->counters.delivered++;
    self->counters.inflight++;
    self->reason_set = false;
    self->reason [0] = 0;
    self->retry_delay_ms = 0;
    pthread_mutex_unlock (&self->lock);
    self->published = false;

    int64_t start = busp_mono_us ();
    int result = (int) self->module->desc.on_event (self->state, &ev);
    int64_t took = busp_mono_us () - start;

    pthread_mutex_lock (&self->lock);
    char reason [sizeof self->reason];
    memcpy (reason, self->reason, sizeof reason);
    bool reason_set = self->reason_set;
    uint32_t delay = self->retry_delay_ms;
    pthread_mutex_unlock (&self->lock);
    if (result == BUSD_PLUGIN_PENDING) {
        //  Answered later by host->complete; the delivery waits here.
        if (s_pending_add (self, msg, ev.delivery_id, start) == 0)
            return PENDING_KEPT;
        snprintf (reason, sizeof reason, "out of memory keeping a pending event");
        reason_set = true;
        result = BUSD_PLUGIN_RETRY;
    }
    if (result < BUSD_PLUGIN_OK || result > BUSD_PLUGIN_FATAL) {
        snprintf (reason, sizeof reason, "on_event returned %d, which is not a "
                  "busd_plugin_result_t", result);
        reason_set = true;
        plugin_log (BUSD_LOG_ERROR, "%s: %s; dead-lettering the event", self->tag, reason);
        result = BUSD_PLUGIN_FAIL;
    }

    return s_answer (self, msg, result, reason, reason_set, delay, took);
}

/*  Turn a result into ACK or NACK and count it.  Returns true when the
    instance must stop (FATAL).                                              */
static int
s_answer (plugin_instance_t *self, busd_msg_t *msg, int result, const char *reason,
          bool reason_set, uint32_t delay, int64_t took)
{
    const char *topic = busd_msg_topic (msg);
    uint64_t delivery_id = busd_msg_delivery_id (msg);
    unsigned attempt = busd_msg_attempt (msg);
    pthread_mutex_lock (&self->client_lock);
    //  A follow-up the plugin published is accepted before the event that
    //  caused it is acknowledged: a crash in between repeats, never loses.
    if (self->published) {
        int frc = busd_flush (self->client, FLUSH_TIMEOUT_MS);
        if (frc)
            plugin_log (BUSD_LOG_WARNING, "%s: events published while handling '%s' were not "
                        "all accepted: %s", self->tag, topic, busd_strerror (frc));
    }
    int rc;
    const char *verb;
    switch (result) {
        case BUSD_PLUGIN_OK:
            rc = busd_ack (self->client, msg);
            verb = "ACK";
            break;
        case BUSD_PLUGIN_RETRY:
            rc = busd_nack (self->client, msg, BUSD_NACK_RETRY, delay,
                            reason_set ? reason : NULL);
            verb = "NACK (retry)";
            break;
        case BUSD_PLUGIN_FAIL: {
            char fallback [PLUGIN_NAME_MAX + 64];
            snprintf (fallback, sizeof fallback, "plugin '%s' failed the event", self->name);
            rc = busd_nack (self->client, msg, BUSD_NACK_DEADLETTER, 0,
                            reason_set && *reason ? reason : fallback);
            verb = "NACK (dead letter)";
            break;
        }
        default:
            rc = busd_nack (self->client, msg, BUSD_NACK_RETRY, 0, reason_set ? reason : NULL);
            verb = "NACK (retry)";
            break;
    }
    pthread_mutex_unlock (&self->client_lock);
    if (rc)
        plugin_log (BUSD_LOG_WARNING, "%s: %s of delivery %llu on '%s' failed: %s", self->tag,
                    verb, (unsigned long long) delivery_id, topic, busd_strerror (rc));

    pthread_mutex_lock (&self->lock);
    self->counters.inflight--;
    self->counters.handled++;
    self->counters.handle_us += (uint64_t) (took > 0 ? took : 0);
    switch (result) {
        case BUSD_PLUGIN_OK:    self->counters.ok++; break;
        case BUSD_PLUGIN_RETRY: self->counters.retried++; break;
        case BUSD_PLUGIN_FAIL:  self->counters.failed++; break;
        default:                self->counters.fatal++; break;
    }
    if (result == BUSD_PLUGIN_FATAL) {
        self->state_code = PLUGIN_STATE_DISABLED;
        snprintf (self->error, sizeof self->error, "on_event returned FATAL: %s",
                  reason_set && *reason ? reason : "no reason given");
    }
    pthread_mutex_unlock (&self->lock);
    if (result == BUSD_PLUGIN_FATAL) {
        plugin_log (BUSD_LOG_ERROR, "%s: on_event returned FATAL on '%s' (%s); the event will "
                    "be retried and this instance is disabled until the next reload", self->tag,
                    topic, reason_set && *reason ? reason : "no reason given");
        return true;
    }
    plugin_log (BUSD_LOG_DEBUG, "%s: '%s' attempt %u: %s%s%s", self->tag, topic, attempt,
                verb, reason_set ? ": " : "", reason_set ? reason : "");
    return false;
}

/*  Send the answers host->complete queued for pending events.  Returns
    true when the instance must stop (never, today: complete refuses FATAL). */
static bool
s_complete_pending (plugin_instance_t *self)
{
    pthread_mutex_lock (&self->lock);
    completion_t *done = self->done;
    size_t count = self->done_count;
    self->done = NULL;
    self->done_count = self->done_cap = 0;
    pthread_mutex_unlock (&self->lock);
    bool fatal = false;
    for (size_t i = 0; i < count; i++) {
        size_t at;
        for (at = 0; at < self->pending_count; at++)
            if (self->pending [at].delivery_id == done [i].delivery_id)
                break;
        if (at == self->pending_count) {
            plugin_log (BUSD_LOG_WARNING, "%s: complete() for delivery %llu, which is not "
                        "pending; ignored", self->tag, (unsigned long long) done [i].delivery_id);
            free (done [i].reason);
            continue;
        }
        pending_t entry = self->pending [at];
        memmove (&self->pending [at], &self->pending [at + 1],
                 (self->pending_count - at - 1) * sizeof (pending_t));
        self->pending_count--;
        self->published = false;
        fatal |= s_answer (self, entry.msg, done [i].result,
                           done [i].reason ? done [i].reason : "", done [i].reason != NULL,
                           done [i].delay_ms, busp_mono_us () - entry.start_us) == 1;
        busd_msg_destroy (&entry.msg);
        free (done [i].reason);
    }
    free (done);
    return fatal;
}

static isub_t *
s_sub_by_id (plugin_instance_t *self, uint32_t sub_id)
{
    for (size_t i = 0; i < self->sub_count; i++)
        if (self->subs [i].sub_id == sub_id)
            return &self->subs [i];
    return NULL;
}

static void
s_loop (plugin_instance_t *self)
{
    bool stopping = false;
    int64_t last_event_ms = busp_mono_ms ();
    self->next_tick_ms = busp_mono_ms () + self->tick_ms;
    while (true) {
        plugin_stop_t how = s_stop_how (self);
        int64_t now = busp_mono_ms ();
        if (how == PLUGIN_STOP_NOW)
            break;
        if (how != PLUGIN_STOP_NONE) {
            if (!stopping) {
                stopping = true;
                last_event_ms = now;
                s_set_state (self, PLUGIN_STATE_STOPPING, NULL);
                //  No more credit: the broker gives the group's further
                //  events to the other members (the replacement).
                if (how == PLUGIN_STOP_HANDOFF) {
                    pthread_mutex_lock (&self->client_lock);
                    for (size_t i = 0; i < self->sub_count; i++)
                        if (self->subs [i].sub_id)
                            busd_subscription_set_auto_credit (self->client,
                                                               self->subs [i].sub_id, false);
                    pthread_mutex_unlock (&self->client_lock);
                }
            }
            int64_t deadline = atomic_load (&self->stop_deadline);
            if (deadline && now >= deadline)
                break;
        }
        if (atomic_exchange (&self->reload, false) && self->module->desc.reload) {
            int rc = self->module->desc.reload (self->state);
            plugin_log (rc < 0 ? BUSD_LOG_WARNING : BUSD_LOG_INFO, "%s: reload %s (%d)",
                        self->tag, rc < 0 ? "failed" : "done", rc);
        }
        //  Subscriptions the broker ended: try again now and then.
        for (size_t i = 0; !stopping && i < self->sub_count; i++) {
            isub_t *sub = &self->subs [i];
            if (sub->sub_id == 0 && now >= sub->retry_ms) {
                uint16_t code;
                char reason [256];
                if (s_subscribe (self, sub, &code, reason, sizeof reason) == 0)
                    plugin_log (BUSD_LOG_NOTICE, "%s: subscribed to '%s' again", self->tag,
                                sub->pattern);
                else
                    sub->retry_ms = busp_mono_ms () + RESUBSCRIBE_MS;
            }
        }
        //  Handing off, only what already arrived is handled: the first
        //  empty receive ends the drain, so the old generation takes as
        //  little as possible of what the new one should see.
        int timeout = !stopping ? RECV_SLICE_MS
                    : how == PLUGIN_STOP_HANDOFF ? 0 : STOP_SLICE_MS;
        //  Answers to pending events come from the plugin's threads while
        //  this one waits on the socket: look for them often.
        if (s_complete_pending (self))
            break;
        if (self->pending_count && timeout > PENDING_SLICE_MS)
            timeout = PENDING_SLICE_MS;
        if (self->tick_ms && self->module->desc.on_tick) {
            int64_t until = self->next_tick_ms - now;
            if (until < timeout)
                timeout = until > 0 ? (int) until : 0;
        }
        busd_msg_t *msg = NULL;
        pthread_mutex_lock (&self->client_lock);
        int rc = busd_receive (self->client, &msg, timeout);
        pthread_mutex_unlock (&self->client_lock);
        if (rc == -ETIMEDOUT || rc == -EAGAIN) {
            if (stopping && self->pending_count == 0
            &&  (how == PLUGIN_STOP_HANDOFF
                 || busp_mono_ms () - last_event_ms >= SHUTDOWN_IDLE_MS))
                break;
            s_tick (self);
            continue;
        }
        if (rc < 0) {
            //  The library recovers from broker restarts by itself; what
            //  reaches us is final for this client: start a new one.
            if (stopping) {
                self->broker_gone = true;
                break;
            }
            plugin_log (BUSD_LOG_WARNING, "%s: connection lost (%s); reconnecting", self->tag,
                        busd_strerror (rc));
            pthread_mutex_lock (&self->client_lock);
            busd_client_t *client = self->client;
            self->client = NULL;
            pthread_mutex_unlock (&self->client_lock);
            busd_client_destroy (&client);
            //  The broker redelivers what this session left unanswered.
            for (size_t i = 0; i < self->pending_count; i++)
                busd_msg_destroy (&self->pending [i].msg);
            pthread_mutex_lock (&self->lock);
            self->counters.inflight -= self->pending_count;
            pthread_mutex_unlock (&self->lock);
            self->pending_count = 0;
            for (size_t i = 0; i < self->sub_count; i++) {
                self->subs [i].sub_id = 0;
                self->subs [i].retry_ms = 0;
            }
            s_nap (self, 200);
            if (s_connect (self))
                break;          /*  asked to stop meanwhile                */
            continue;           /*  the top of the loop subscribes again   */
        }
        bool fatal = false;
        switch (busd_msg_kind (msg)) {
            case BUSD_MSG_DELIVER: {
                int handled = s_handle (self, msg);
                if (handled == PENDING_KEPT)
                    msg = NULL;         /*  the pending table owns it now   */
                fatal = handled == 1;
                last_event_ms = busp_mono_ms ();
                break;
            }
            case BUSD_MSG_GAP:
                plugin_log (BUSD_LOG_WARNING, "%s: the broker dropped %llu events before the "
                            "next one", self->tag, (unsigned long long) busd_msg_dropped (msg));
                break;
            case BUSD_MSG_SUBEND: {
                isub_t *sub = s_sub_by_id (self, busd_msg_sub_id (msg));
                if (sub) {
                    plugin_log (BUSD_LOG_WARNING, "%s: the broker ended the subscription to "
                                "'%s' (%u %s); subscribing again", self->tag, sub->pattern,
                                busd_msg_code (msg), busd_msg_reason (msg));
                    sub->sub_id = 0;
                    sub->retry_ms = busp_mono_ms () + RESUBSCRIBE_MS;
                }
                break;
            }
        }
        busd_msg_destroy (&msg);
        if (fatal || s_complete_pending (self))
            break;
        s_tick (self);
    }
}

static void
s_finish (plugin_instance_t *self)
{
    if (self->client && !self->broker_gone && s_stop_how (self) != PLUGIN_STOP_NOW) {
        //  UNSUB waits for SUBEND, and the broker handles one session's
        //  messages in order: every ACK sent before is then processed.
        for (size_t i = 0; i < self->sub_count; i++) {
            if (!self->subs [i].sub_id)
                continue;
            pthread_mutex_lock (&self->client_lock);
            int rc = busd_unsubscribe (self->client, self->subs [i].sub_id, UNSUB_TIMEOUT_MS);
            pthread_mutex_unlock (&self->client_lock);
            if (rc && rc != BUSD_ESHUTDOWN)
                plugin_log (BUSD_LOG_DEBUG, "%s: unsubscribe '%s': %s", self->tag,
                            self->subs [i].pattern, busd_strerror (rc));
            self->subs [i].sub_id = 0;
        }
    }
    if (self->initialized) {
        self->module->desc.fini (self->state);
        self->state = NULL;
        self->initialized = false;
    }
}

static void *
s_thread (void *arg)
{
    plugin_instance_t *self = arg;
    s_current = self;
    char thread_name [16];
    snprintf (thread_name, sizeof thread_name, "plug:%s", self->name);
    pthread_setname_np (pthread_self (), thread_name);
    if (s_connect (self) == 0 && s_init (self) == 0) {
        if (s_subscribe_all (self) == 0) {
            s_set_state (self, PLUGIN_STATE_RUNNING, NULL);
            plugin_log (BUSD_LOG_INFO, "%s: running (%s %s), %zu pattern%s, group plugin.%s",
                        self->tag, self->module->desc.name, self->module->desc.version,
                        self->sub_count, self->sub_count == 1 ? "" : "s", self->name);
            s_loop (self);
        }
        s_finish (self);
    }
    pthread_mutex_lock (&self->client_lock);
    busd_client_t *client = self->client;
    self->client = NULL;
    pthread_mutex_unlock (&self->client_lock);
    busd_client_destroy (&client);
    //  After fini no plugin thread publishes any more.
    pthread_mutex_lock (&self->pub_lock);
    if (self->pub_client)
        busd_flush (self->pub_client, FLUSH_TIMEOUT_MS);
    busd_client_destroy (&self->pub_client);
    pthread_mutex_unlock (&self->pub_lock);
    pthread_mutex_lock (&self->lock);
    if (self->state_code != PLUGIN_STATE_FAILED && self->state_code != PLUGIN_STATE_DISABLED)
        self->state_code = PLUGIN_STATE_STOPPED;
    pthread_mutex_unlock (&self->lock);
    atomic_store (&self->exited, true);
    return NULL;
}

int
plugin_instance_start (plugin_instance_t *self)
{
    assert (!self->started);
    //  The thread starts with every signal blocked: SIGTERM and SIGHUP are
    //  the main thread's to handle, never a plugin's.
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    int rc = pthread_create (&self->thread, NULL, s_thread, self);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc) {
        char error [128];
        snprintf (error, sizeof error, "cannot start a thread: %s", strerror (rc));
        s_set_state (self, PLUGIN_STATE_FAILED, error);
        plugin_log (BUSD_LOG_ERROR, "%s: %s", self->tag, error);
        return -rc;
    }
    self->started = true;
    return 0;
}

void
plugin_instance_stop (plugin_instance_t *self, plugin_stop_t how, int64_t deadline_ms)
{
    if (!self)
        return;
    int current = atomic_load (&self->stop_how);
    while ((int) how > current
       &&  !atomic_compare_exchange_weak (&self->stop_how, &current, (int) how))
        ;
    int64_t old = atomic_load (&self->stop_deadline);
    if (deadline_ms && (old == 0 || deadline_ms < old))
        atomic_store (&self->stop_deadline, deadline_ms);
}

void
plugin_instance_reload (plugin_instance_t *self)
{
    if (self)
        atomic_store (&self->reload, true);
}

bool
plugin_instance_alive (plugin_instance_t *self)
{
    return self && self->started && !atomic_load (&self->exited);
}

int
plugin_instance_join (plugin_instance_t *self, int timeout_ms)
{
    if (!self || !self->started)
        return 0;
    int64_t until = busp_mono_ms () + timeout_ms;
    while (!atomic_load (&self->exited)) {
        if (busp_mono_ms () >= until)
            return -ETIMEDOUT;
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep (&ts, NULL);
    }
    pthread_join (self->thread, NULL);
    self->started = false;
    return 0;
}

plugin_state_t
plugin_instance_state (plugin_instance_t *self, char *error, size_t size)
{
    pthread_mutex_lock (&self->lock);
    plugin_state_t state = self->state_code;
    if (error && size)
        snprintf (error, size, "%s", self->error);
    pthread_mutex_unlock (&self->lock);
    return state;
}

void
plugin_instance_counters (plugin_instance_t *self, plugin_counters_t *sum)
{
    pthread_mutex_lock (&self->lock);
    sum->delivered += self->counters.delivered;
    sum->ok += self->counters.ok;
    sum->retried += self->counters.retried;
    sum->failed += self->counters.failed;
    sum->fatal += self->counters.fatal;
    sum->inflight += self->counters.inflight;
    sum->handled += self->counters.handled;
    sum->handle_us += self->counters.handle_us;
    pthread_mutex_unlock (&self->lock);
}

void
plugin_instance_metrics (plugin_instance_t *self, cJSON *object)
{
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < self->metric_count; i++) {
        cJSON *item = cJSON_GetObjectItemCaseSensitive (object, self->metrics [i].name);
        if (cJSON_IsNumber (item))
            cJSON_SetNumberValue (item, item->valuedouble + self->metrics [i].value);
        else
            cJSON_AddNumberToObject (object, self->metrics [i].name, self->metrics [i].value);
    }
    pthread_mutex_unlock (&self->lock);
}

/*  ------------------------------------------------------------------
    Configuration check (ABI 1.1)                                           */

int
plugin_instance_check_config (plugin_module_t *module, const plugin_entry_t *entry,
                              const char *where, char *errors, size_t size)
{
    if (!module || !module->desc.check_config)
        return 0;
    //  A stand-in instance: the real host functions read the real config,
    //  but it has no thread and no client (publish says -ENOTCONN).
    plugin_instance_t *self = plugin_instance_new (module, entry, "inproc://busd-check", NULL, 1);
    if (!self)
        return -ENOMEM;
    self->check_errors = errors;
    self->check_size = size;
    self->check_where = where;
    int rc = module->desc.check_config (self, &s_host);
    pthread_mutex_lock (&self->lock);
    int problems = self->check_problems;
    self->check_errors = NULL;
    pthread_mutex_unlock (&self->lock);
    if (rc < 0 && problems == 0)
        busp_appendf (errors, size, "%s: key 'config': rejected by the plugin (check_config "
                      "returned %d without a reason)\n", where, rc);
    plugin_instance_destroy (&self);
    return rc < 0 || problems ? -EINVAL : 0;
}

bool
plugin_instance_config_error (plugin_instance_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool yes = self->config_error;
    pthread_mutex_unlock (&self->lock);
    return yes;
}

/*  ------------------------------------------------------------------
    Driving an instance by hand (busd-plugin-driver)                        */

void
plugin_instance_set_publish_sink (plugin_instance_t *self, plugin_publish_fn *sink)
{
    self->publish_sink = sink;
}

static void
s_take_reason (plugin_instance_t *self, char *reason, size_t size, uint32_t *delay_ms)
{
    pthread_mutex_lock (&self->lock);
    if (reason)
        s_copy (reason, size, self->reason_set ? self->reason : "");
    if (delay_ms)
        *delay_ms = self->retry_delay_ms;
    self->reason_set = false;
    self->reason [0] = 0;
    self->retry_delay_ms = 0;
    pthread_mutex_unlock (&self->lock);
}

int
plugin_instance_drive_init (plugin_instance_t *self, char *reason, size_t size)
{
    s_take_reason (self, NULL, 0, NULL);
    int rc = self->module->desc.init ? self->module->desc.init (self, &s_host, &self->state) : 0;
    s_take_reason (self, reason, size, NULL);
    self->initialized = rc >= 0;
    return rc < 0 ? rc : 0;
}

busd_plugin_result_t
plugin_instance_drive_event (plugin_instance_t *self, const busd_plugin_event_t *event,
                             char *reason, size_t size, uint32_t *delay_ms)
{
    s_take_reason (self, NULL, 0, NULL);
    busd_plugin_result_t result = self->module->desc.on_event (self->state, event);
    s_take_reason (self, reason, size, delay_ms);
    //  ABI 1.2: the driver waits for the plugin's complete() (30 s at most),
    //  so its output stays one answer per event.
    int64_t give_up = busp_mono_ms () + 30000;
    while (result == BUSD_PLUGIN_PENDING) {
        pthread_mutex_lock (&self->lock);
        for (size_t i = 0; i < self->done_count; i++) {
            if (self->done [i].delivery_id != event->delivery_id)
                continue;
            result = (busd_plugin_result_t) self->done [i].result;
            snprintf (reason, size, "%s", self->done [i].reason ? self->done [i].reason : "");
            if (delay_ms)
                *delay_ms = self->done [i].delay_ms;
            free (self->done [i].reason);
            self->done [i] = self->done [--self->done_count];
            break;
        }
        pthread_mutex_unlock (&self->lock);
        if (result != BUSD_PLUGIN_PENDING)
            break;
        if (busp_mono_ms () >= give_up) {
            snprintf (reason, size, "no complete() within 30 s of PENDING");
            return BUSD_PLUGIN_RETRY;
        }
        struct timespec ts = { 0, 1000000L };
        nanosleep (&ts, NULL);
    }
    return result;
}

int
plugin_instance_drive_reload (plugin_instance_t *self)
{
    return self->module->desc.reload ? self->module->desc.reload (self->state) : 0;
}

void
plugin_instance_drive_tick (plugin_instance_t *self)
{
    if (self->module->desc.on_tick)
        self->module->desc.on_tick (self->state);
}

void
plugin_instance_drive_fini (plugin_instance_t *self)
{
    if (self->initialized)
        self->module->desc.fini (self->state);
    self->initialized = false;
    self->state = NULL;
}
