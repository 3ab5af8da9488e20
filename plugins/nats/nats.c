/*  nats.c — the nats plugin: busd instances joined through a NATS cluster
    with JetStream (doc/scale-out.md).

    Export: the plugin is an ordinary busd subscriber of its entry's
    patterns.  A topic under jetstream.patterns is published asynchronously
    to the JetStream stream with Nats-Msg-Id, and the busd event stays
    PENDING (plugin ABI 1.2) until the stream acknowledges it; at most
    `window` such events are in flight, and since each pending event holds
    one credit of the entry's max_inflight, a full window means busd sends
    the plugin nothing more and its queue throttles the local publishers.
    Other topics go over core NATS (at most once) and are ACKed at once.

    Import: one worker thread takes in from a durable pull consumer (named
    after the busd instance) and from core queue subscriptions, never more
    than the plugin's busd publisher credit allows, and acknowledges a
    JetStream message only after busd has accepted the event.  So a slow
    subscriber on this busd stops the fetching, this importer falls behind
    in the stream, and the exporters, which grant themselves a budget from
    the slowest importer's backlog (s_check_stream), hold their exports:
    their busd throttles its publishers in turn.

    Loops: every bridged message carries busd-origin (this instance's id);
    an imported event keeps it locally, so export skips it, and import
    skips messages this instance sent.

    Threads: the instance thread (on_event), the worker, and libnats's own
    threads (publish acks, connection events).  The export list and its
    window sit under one mutex; counters visible to busd go through
    host->metric_add, which is thread-safe.                                 */
#include <busd/plugin.h>
#include <nats/nats.h>
#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "plugin_common.h"
#include "subject.h"

#define IDLE_SLEEP_MS       2
#define FETCH_WAIT_MS       20
#define FLUSH_TIMEOUT_MS    5000
#define SETUP_RETRY_MAX_MS  5000
#define WINDOW_WAIT_MS      10000   /*  on_event waits this long for room   */
#define GAUGE_EVERY_MS      500
#define STREAM_CHECK_MS     100     /*  how often the stream's fill is read */
#define HIGH_WATER_PCT      80      /*  hold exports above this % of limits */
#define STREAM_ASK_WAIT_MS  1000    /*  a consumer missing from the list    */

/*  One JetStream export waiting for its publish ack.                        */
typedef struct export_s {
    uint64_t delivery_id;
    natsMsg *msg;               /*  ours while not in flight, else the lib's */
    bool in_flight;
    int attempts;
    int64_t sent_us;
    int64_t retry_at_ms;
    struct export_s *prev, *next;
} export_t;

typedef struct {
    busd_plugin_instance_t *self;
    const busd_plugin_host_t *host;

    /*  Configuration.                                                       */
    char **servers;
    int server_count;
    char prefix [128];
    char instance [NS_NAME_MAX];
    char **imports;
    int import_count;
    char **js_patterns;
    int js_count;
    char stream [NS_NAME_MAX];
    int64_t replicas, max_msgs, max_bytes, duplicate_window_ms;
    bool interest;
    int64_t window, batch, ack_timeout_ms, import_delay_ms, reconnect_max_ms;
    char (*stream_subjects) [NS_SUBJECT_MAX];
    int stream_subject_count;
    char (*import_subjects) [NS_SUBJECT_MAX];
    int import_subject_count;

    /*  NATS.                                                                */
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription **core_subs;   /*  import_subject_count of them        */
    natsSubscription *pull;         /*  the inbox our pull requests name    */
    char pull_inbox [128];
    char pull_subject [160];
    bool js_ready;                  /*  worker: stream and consumer exist   */
    atomic_bool core_ready;         /*  core_subs set up (by the worker)    */
    pthread_t core_worker;
    bool core_worker_started;
    int64_t setup_at_ms, setup_backoff_ms;
    atomic_bool connected;
    atomic_bool stop;
    atomic_bool stream_full;        /*  no budget left: exports wait        */
    atomic_llong budget;            /*  exports allowed until the next check */
    int64_t stream_check_at_ms;
    char **importers;               /*  every consumer seen on the stream   */
    int importer_count;
    char *silent_importer;          /*  logged as not answering (worker)    */
    uint64_t js_high;               /*  highest stream seq imported (worker) */
    atomic_llong reconnects;
    pthread_t worker;
    bool worker_started;
    int64_t started_ms;

    /*  Exports in flight or waiting to be sent again.                       */
    pthread_mutex_t lock;
    pthread_cond_t room;
    export_t *head, *tail;
    int64_t pending;
    uint64_t next_id;
    char nonce [17];
    double latency_us;              /*  moving average of publish acks      */
    bool closing;                   /*  fini: acks no longer touch the list */
    bool js_failing;                /*  logged that publishes fail          */
    bool closed;                    /*  libnats said the connection closed  */

    /*  Worker's view of gauges already reported.                            */
    long long reported_reconnects;
    int64_t reported_dropped;
    int reported_connected;
    double reported_latency;
    int64_t gauge_at_ms;
} nats_t;

/*  ------------------------------------------------------------------
    Small helpers                                                           */

static int64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

static void
s_free_list (char **list, int count)
{
    for (int i = 0; list && i < count; i++)
        free (list [i]);
    free (list);
}

/*  A config array of strings as a malloc'd list.  Absent: empty list.       */
static int
s_string_list (const cJSON *config, const char *key, char ***list_p, int *count_p,
               char *err, size_t err_size)
{
    *list_p = NULL;
    *count_p = 0;
    const cJSON *array = cJSON_GetObjectItemCaseSensitive (config, key);
    if (!array)
        return 0;
    if (!cJSON_IsArray (array)) {
        snprintf (err, err_size, "config: \"%s\" must be an array of strings", key);
        return -EINVAL;
    }
    int count = cJSON_GetArraySize (array);
    char **list = calloc ((size_t) count + 1, sizeof (char *));
    if (!list) {
        snprintf (err, err_size, "out of memory");
        return -ENOMEM;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach (item, array) {
        if (!cJSON_IsString (item) || !*item->valuestring) {
            snprintf (err, err_size, "config: \"%s\"[%d] must be a non-empty string", key, i);
            s_free_list (list, i);
            return -EINVAL;
        }
        if (!(list [i] = strdup (item->valuestring))) {
            snprintf (err, err_size, "out of memory");
            s_free_list (list, i);
            return -ENOMEM;
        }
        i++;
    }
    *list_p = list;
    *count_p = count;
    return 0;
}

/*  Map every pattern of list to subjects, appending to *subjects.           */
static int
s_map_patterns (nats_t *self, char **list, int count, const char *key,
                char (**subjects) [NS_SUBJECT_MAX], int *subject_count,
                char *err, size_t err_size)
{
    for (int i = 0; i < count; i++) {
        char out [2][NS_SUBJECT_MAX];
        int n;
        char why [300];
        if (ns_pattern_subjects (self->prefix, list [i], out, &n, why, sizeof why)) {
            snprintf (err, err_size, "config: \"%s\"[%d]: %s", key, i, why);
            return -EINVAL;
        }
        char (*grown) [NS_SUBJECT_MAX] = realloc (*subjects,
                                                  (size_t) (*subject_count + n) * NS_SUBJECT_MAX);
        if (!grown) {
            snprintf (err, err_size, "out of memory");
            return -ENOMEM;
        }
        *subjects = grown;
        for (int k = 0; k < n; k++) {
            bool dup = false;
            for (int j = 0; j < *subject_count; j++)
                dup |= strcmp ((*subjects) [j], out [k]) == 0;
            if (!dup)
                memcpy ((*subjects) [(*subject_count)++], out [k], NS_SUBJECT_MAX);
        }
    }
    return 0;
}

static bool
s_matches_any (char **patterns, int count, const char *topic)
{
    for (int i = 0; i < count; i++)
        if (ns_pattern_match (patterns [i], topic))
            return true;
    return false;
}

static void
s_metric (nats_t *self, const char *name, double value)
{
    self->host->metric_add (self->self, name, value);
}

/*  ------------------------------------------------------------------
    Configuration                                                           */

static const char *const s_known_keys [] = {
    "servers", "prefix", "instance", "import", "jetstream", "window", "import_batch",
    "import_delay_ms", "ack_timeout_ms", "reconnect_max_ms", NULL
};
static const char *const s_known_js_keys [] = {
    "stream", "patterns", "replicas", "max_msgs", "max_bytes", "retention",
    "duplicate_window_ms", NULL
};

static int
s_configure (nats_t *self, const char *config_json, char *err, size_t err_size)
{
    cJSON *config = NULL;
    int rc = pc_config_parse (config_json, s_known_keys, &config, err, err_size);
    if (rc)
        return rc;
    cJSON *js = NULL;
    rc = s_string_list (config, "servers", &self->servers, &self->server_count, err, err_size);
    if (rc == 0 && self->server_count == 0) {
        snprintf (err, err_size, "config: \"servers\" is required (an array like "
                  "[\"nats://127.0.0.1:4222\"])");
        rc = -EINVAL;
    }
    for (int i = 0; rc == 0 && i < self->server_count; i++)
        if (strncmp (self->servers [i], "nats://", 7) && strncmp (self->servers [i], "tls://", 6)) {
            snprintf (err, err_size, "config: \"servers\"[%d] '%s' is not a nats:// or tls:// "
                      "URL", i, self->servers [i]);
            rc = -EINVAL;
        }
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (config, "prefix");
    if (rc == 0 && item && !cJSON_IsString (item)) {
        snprintf (err, err_size, "config: \"prefix\" must be a string");
        rc = -EINVAL;
    }
    if (rc == 0) {
        snprintf (self->prefix, sizeof self->prefix, "%s", item ? item->valuestring : "busd");
        char why [300];
        if (ns_prefix_check (self->prefix, why, sizeof why)) {
            snprintf (err, err_size, "config: %s", why);
            rc = -EINVAL;
        }
    }
    item = cJSON_GetObjectItemCaseSensitive (config, "instance");
    if (rc == 0 && item) {
        if (!cJSON_IsString (item) || !ns_name_valid (item->valuestring)) {
            snprintf (err, err_size, "config: \"instance\" must be 1 to %d letters, digits, "
                      "'-' or '_' (it names the durable consumer)", NS_NAME_MAX - 1);
            rc = -EINVAL;
        }
        else
            snprintf (self->instance, sizeof self->instance, "%s", item->valuestring);
    }
    else if (rc == 0) {
        char host [256] = "busd";
        if (gethostname (host, sizeof host) != 0)
            snprintf (host, sizeof host, "busd");
        host [sizeof host - 1] = 0;
        ns_name_sanitize (host, self->instance, sizeof self->instance);
    }
    if (rc == 0)
        rc = s_string_list (config, "import", &self->imports, &self->import_count, err, err_size);
    if (rc == 0)
        rc = s_map_patterns (self, self->imports, self->import_count, "import",
                             &self->import_subjects, &self->import_subject_count, err, err_size);
    int64_t value;
    if (rc == 0 && (rc = pc_config_int (config, "window", 256, 1, 65536, &value, err, err_size)) == 0)
        self->window = value;
    if (rc == 0 && (rc = pc_config_int (config, "import_batch", 256, 1, 4096, &value, err,
                                        err_size)) == 0)
        self->batch = value;
    if (rc == 0 && (rc = pc_config_int (config, "import_delay_ms", 0, 0, 3600000, &value, err,
                                        err_size)) == 0)
        self->import_delay_ms = value;
    if (rc == 0 && (rc = pc_config_int (config, "ack_timeout_ms", 5000, 100, 600000, &value,
                                        err, err_size)) == 0)
        self->ack_timeout_ms = value;
    if (rc == 0 && (rc = pc_config_int (config, "reconnect_max_ms", 5000, 10, 600000, &value,
                                        err, err_size)) == 0)
        self->reconnect_max_ms = value;

    js = cJSON_DetachItemFromObjectCaseSensitive (config, "jetstream");
    if (rc == 0 && js) {
        char *text = cJSON_PrintUnformatted (js);
        cJSON *checked = NULL;
        rc = text ? pc_config_parse (text, s_known_js_keys, &checked, err, err_size) : -ENOMEM;
        free (text);
        if (rc == -EINVAL) {
            char inner [400];
            snprintf (inner, sizeof inner, "%.380s", err);
            snprintf (err, err_size, "jetstream: %s", inner);
        }
        cJSON_Delete (checked);
    }
    if (rc == 0 && js) {
        item = cJSON_GetObjectItemCaseSensitive (js, "stream");
        if (item && (!cJSON_IsString (item) || !ns_name_valid (item->valuestring))) {
            snprintf (err, err_size, "config: \"jetstream.stream\" must be 1 to %d letters, "
                      "digits, '-' or '_'", NS_NAME_MAX - 1);
            rc = -EINVAL;
        }
        else
            snprintf (self->stream, sizeof self->stream, "%s", item ? item->valuestring : "BUSD");
        if (rc == 0)
            rc = s_string_list (js, "patterns", &self->js_patterns, &self->js_count, err, err_size);
        if (rc == 0)
            rc = s_map_patterns (self, self->js_patterns, self->js_count, "jetstream.patterns",
                                 &self->stream_subjects, &self->stream_subject_count, err,
                                 err_size);
        if (rc == 0 && (rc = pc_config_int (js, "replicas", 1, 1, 5, &value, err, err_size)) == 0)
            self->replicas = value;
        if (rc == 0 && (rc = pc_config_int (js, "max_msgs", 1000000, 1, INT64_MAX, &value, err,
                                            err_size)) == 0)
            self->max_msgs = value;
        if (rc == 0 && (rc = pc_config_int (js, "max_bytes", 1073741824LL, 1024, INT64_MAX,
                                            &value, err, err_size)) == 0)
            self->max_bytes = value;
        if (rc == 0 && (rc = pc_config_int (js, "duplicate_window_ms", 120000, 100, 86400000,
                                            &value, err, err_size)) == 0)
            self->duplicate_window_ms = value;
        item = cJSON_GetObjectItemCaseSensitive (js, "retention");
        self->interest = false;
        if (rc == 0 && item) {
            if (cJSON_IsString (item) && strcmp (item->valuestring, "interest") == 0)
                self->interest = true;
            else if (cJSON_IsString (item) && strcmp (item->valuestring, "limits") == 0)
                self->interest = false;
            else {
                snprintf (err, err_size, "config: \"jetstream.retention\" must be \"interest\" "
                          "or \"limits\"");
                rc = -EINVAL;
            }
        }
    }
    cJSON_Delete (js);
    cJSON_Delete (config);
    return rc;
}

/*  ------------------------------------------------------------------
    Connection events (libnats threads)                                     */

static void
s_on_connected (natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    char url [256] = "";
    natsConnection_GetConnectedUrl (nc, url, sizeof url);
    atomic_store (&self->connected, true);
    self->host->log (self->self, BUSD_LOG_NOTICE, "connected to NATS at %s", url);
}

static void
s_on_disconnected (natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    if (atomic_load (&self->stop))
        return;
    atomic_store (&self->connected, false);
    self->host->log (self->self, BUSD_LOG_WARNING, "lost the connection to NATS; reconnecting "
                     "(exports wait in busd's queue meanwhile)");
}

static void
s_on_reconnected (natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    atomic_fetch_add (&self->reconnects, 1);
    s_on_connected (nc, closure);
}

/*  The last connection event: after it libnats calls none of ours.          */
static void
s_on_closed (natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    pthread_mutex_lock (&self->lock);
    self->closed = true;
    pthread_cond_broadcast (&self->room);
    pthread_mutex_unlock (&self->lock);
}

static void
s_on_error (natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    nats_t *self = closure;
    self->host->log (self->self, BUSD_LOG_WARNING, "NATS: %s", natsStatus_GetText (err));
}

/*  Exponential backoff with jitter once every server was tried.             */
static int64_t
s_reconnect_delay (natsConnection *nc, int attempts, void *closure)
{
    nats_t *self = closure;
    int64_t delay = 100;
    for (int i = 1; i < attempts && delay < self->reconnect_max_ms; i++)
        delay *= 2;
    if (delay > self->reconnect_max_ms)
        delay = self->reconnect_max_ms;
    return delay / 2 + rand () % (delay / 2 + 1);
}

/*  ------------------------------------------------------------------
    Export                                                                  */

static void
s_unlink (nats_t *self, export_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        self->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        self->tail = e->prev;
    self->pending--;
    pthread_cond_broadcast (&self->room);
}

/*  A failed JetStream publish is kept and sent again after a backoff:
    answering RETRY would make busd count attempts towards max_deliver and
    dead-letter events only because the cluster was briefly unavailable.    */
static void
s_retry_later (nats_t *self, export_t *e)
{
    int64_t delay = 50;
    for (int i = 1; i < e->attempts && delay < 2000; i++)
        delay *= 2;
    e->in_flight = false;
    e->retry_at_ms = pc_mono_ms () + (delay > 2000 ? 2000 : delay);
}

static void
s_on_puback (jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    nats_t *self = closure;
    pthread_mutex_lock (&self->lock);
    export_t *e = self->closing ? NULL : self->head;
    while (e && e->msg != msg)
        e = e->next;
    if (!e) {
        pthread_mutex_unlock (&self->lock);
        natsMsg_Destroy (msg);
        return;
    }
    if (pa) {
        if (self->js_failing) {
            self->js_failing = false;
            self->host->log (self->self, BUSD_LOG_NOTICE, "JetStream takes exports again");
        }
        int64_t took = s_now_us () - e->sent_us;
        double before = self->latency_us;
        self->latency_us = before ? before * 0.9 + (double) took * 0.1 : (double) took;
        s_unlink (self, e);
        pthread_mutex_unlock (&self->lock);
        self->host->complete (self->self, e->delivery_id, BUSD_PLUGIN_OK, 0, NULL);
        s_metric (self, "exported_js", 1);
        s_metric (self, pa->Duplicate ? "js_duplicates" : "js_stored", 1);
        s_metric (self, "js_inflight", -1);
        natsMsg_Destroy (msg);
        free (e);
        return;
    }
    //  A message the stream will never take is the event's fault: dead
    //  letter it with the server's reason.  Anything else is the cluster's
    //  (no leader, stream full, timeout): keep it and send it again.
    if (pae && pae->ErrCode == JSStreamMessageExceedsMaximumErr) {
        char reason [300];
        snprintf (reason, sizeof reason, "JetStream refused the message: %s",
                  pae->ErrText ? pae->ErrText : natsStatus_GetText (pae->Err));
        s_unlink (self, e);
        pthread_mutex_unlock (&self->lock);
        self->host->complete (self->self, e->delivery_id, BUSD_PLUGIN_FAIL, 0, reason);
        s_metric (self, "js_inflight", -1);
        natsMsg_Destroy (msg);
        free (e);
        return;
    }
    bool first = !self->js_failing;
    self->js_failing = true;
    s_retry_later (self, e);
    pthread_mutex_unlock (&self->lock);
    s_metric (self, "js_retries", 1);
    if (first)
        self->host->log (self->self, BUSD_LOG_INFO, "JetStream publish to '%s' failed (%s); "
                         "sending it (and what else fails) again with backoff until it is taken",
                         natsMsg_GetSubject (msg),
                         pae && pae->ErrText ? pae->ErrText
                         : natsStatus_GetText (pae ? pae->Err : NATS_ERR));
}

/*  Hand e's message to libnats; on failure keep it for a later try.  The
    caller has marked e in flight, so neither the worker nor an ack takes
    it meanwhile.                                                           */
static void
s_send_js (nats_t *self, export_t *e)
{
    jsPubOptions opts;
    jsPubOptions_Init (&opts);
    opts.MaxWait = self->ack_timeout_ms;
    natsMsg *msg = e->msg;
    pthread_mutex_lock (&self->lock);
    e->attempts++;
    e->sent_us = s_now_us ();
    pthread_mutex_unlock (&self->lock);
    natsStatus s = js_PublishMsgAsync (self->js, &msg, &opts);
    if (s != NATS_OK && msg) {
        //  Not taken: the ack handler will not see it.
        pthread_mutex_lock (&self->lock);
        s_retry_later (self, e);
        pthread_mutex_unlock (&self->lock);
        s_metric (self, "js_retries", 1);
    }
}

/*  Copy busd's headers onto msg; names NATS cannot carry are skipped.      */
static void
s_export_headers (nats_t *self, natsMsg *msg, const char *headers_json)
{
    if (!headers_json)
        return;
    cJSON *headers = cJSON_Parse (headers_json);
    const cJSON *item;
    cJSON_ArrayForEach (item, headers) {
        if (!cJSON_IsString (item) || strcmp (item->string, "busd-origin") == 0)
            continue;
        if (ns_header_valid (item->string, item->valuestring))
            natsMsgHeader_Set (msg, item->string, item->valuestring);
        else
            s_metric (self, "headers_skipped", 1);
    }
    cJSON_Delete (headers);
}

/*  True when an event came from the cluster (carries busd-origin).         */
static bool
s_is_imported (const char *headers_json)
{
    if (!headers_json || !strstr (headers_json, "busd-origin"))
        return false;
    cJSON *headers = cJSON_Parse (headers_json);
    bool imported = cJSON_IsString (cJSON_GetObjectItemCaseSensitive (headers, "busd-origin"));
    cJSON_Delete (headers);
    return imported;
}

/*  One unit of the export budget, or false when there is none.             */
static bool
s_take_budget (nats_t *self)
{
    long long budget = atomic_load (&self->budget);
    while (budget > 0)
        if (atomic_compare_exchange_weak (&self->budget, &budget, budget - 1))
            return true;
    return false;
}

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    nats_t *self = state;
    if (s_is_imported (event->headers_json)) {
        s_metric (self, "skipped_imported", 1);
        return BUSD_PLUGIN_OK;
    }
    char subject [NS_SUBJECT_MAX];
    char why [400];
    if (ns_topic_subject (self->prefix, event->topic, subject, sizeof subject, why, sizeof why)) {
        self->host->set_reason (self->self, "%s", why);
        return BUSD_PLUGIN_FAIL;
    }
    if (event->size > INT32_MAX) {
        self->host->set_reason (self->self, "payload of %zu bytes is too large for NATS",
                                event->size);
        return BUSD_PLUGIN_FAIL;
    }
    natsMsg *msg = NULL;
    if (natsMsg_Create (&msg, subject, NULL, event->payload, (int) event->size) != NATS_OK) {
        self->host->set_reason (self->self, "cannot build a NATS message: %s",
                                nats_GetLastError (NULL));
        self->host->set_retry_delay (self->self, 1000);
        return BUSD_PLUGIN_RETRY;
    }
    s_export_headers (self, msg, event->headers_json);
    natsMsgHeader_Set (msg, "busd-origin", self->instance);
    if (*event->msg_id)
        natsMsgHeader_Set (msg, "busd-msg-id", event->msg_id);

    bool jetstream = self->js && s_matches_any (self->js_patterns, self->js_count, event->topic);
    if (!jetstream) {
        natsStatus s = natsConnection_PublishMsg (self->nc, msg);
        natsMsg_Destroy (msg);
        if (s != NATS_OK) {
            self->host->set_reason (self->self, "NATS publish failed: %s", natsStatus_GetText (s));
            self->host->set_retry_delay (self->self, 500);
            return BUSD_PLUGIN_RETRY;
        }
        s_metric (self, "exported_core", 1);
        return BUSD_PLUGIN_OK;
    }

    //  Nats-Msg-Id: the busd msg_id, so a re-send after a crash anywhere
    //  is deduplicated by the stream; else one of our own.
    char id [300];
    if (*event->msg_id)
        snprintf (id, sizeof id, "%s", event->msg_id);
    else {
        pthread_mutex_lock (&self->lock);
        uint64_t n = ++self->next_id;
        pthread_mutex_unlock (&self->lock);
        snprintf (id, sizeof id, "%s-%s-%" PRIu64, self->instance, self->nonce, n);
    }
    natsMsgHeader_Set (msg, "Nats-Msg-Id", id);
    natsMsgHeader_Set (msg, "busd-js", "1");
    export_t *e = calloc (1, sizeof *e);
    if (!e) {
        natsMsg_Destroy (msg);
        self->host->set_reason (self->self, "out of memory");
        return BUSD_PLUGIN_RETRY;
    }
    e->delivery_id = event->delivery_id;
    e->msg = msg;
    e->in_flight = true;
    pthread_mutex_lock (&self->lock);
    //  The window: wait for room rather than take more than it holds.
    int64_t give_up = pc_mono_ms () + WINDOW_WAIT_MS;
    while (self->pending >= self->window && pc_mono_ms () < give_up) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait (&self->room, &self->lock, &until);
    }
    if (self->pending >= self->window) {
        pthread_mutex_unlock (&self->lock);
        natsMsg_Destroy (msg);
        free (e);
        self->host->set_reason (self->self, "JetStream export window (%" PRId64 ") still full "
                                "after %d ms", self->window, WINDOW_WAIT_MS);
        self->host->set_retry_delay (self->self, 1000);
        return BUSD_PLUGIN_RETRY;
    }
    e->prev = self->tail;
    if (self->tail)
        self->tail->next = e;
    else
        self->head = e;
    self->tail = e;
    self->pending++;
    //  A stream near its limits waits for the importers: the export stays
    //  in the window and the worker sends it once there is room again.
    bool hold = !s_take_budget (self);
    if (hold) {
        e->in_flight = false;
        e->retry_at_ms = 0;
    }
    pthread_mutex_unlock (&self->lock);
    s_metric (self, "js_inflight", 1);
    if (!hold)
        s_send_js (self, e);
    return BUSD_PLUGIN_PENDING;
}

/*  Worker: send again what failed, when its backoff has passed.            */
static void
s_resend_due (nats_t *self)
{
    while (true) {
        int64_t now = pc_mono_ms ();
        pthread_mutex_lock (&self->lock);
        export_t *e = self->head;
        while (e && (e->in_flight || e->retry_at_ms > now))
            e = e->next;
        //  Held exports (never sent) need budget; a failed send had it.
        if (e && atomic_load (&self->connected) && (e->attempts > 0 || s_take_budget (self)))
            e->in_flight = true;
        else
            e = NULL;
        pthread_mutex_unlock (&self->lock);
        if (!e)
            return;
        s_send_js (self, e);
    }
}

/*  ------------------------------------------------------------------
    Setup of stream, consumer and subscriptions (worker)                     */

static const char *
s_js_error (natsStatus s)
{
    const char *text = nats_GetLastError (NULL);
    return text && *text ? text : natsStatus_GetText (s);
}

static int
s_setup_stream (nats_t *self)
{
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetStreamInfo (&si, self->js, self->stream, NULL, &code);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy (si);
        return 0;
    }
    if (s != NATS_NOT_FOUND && code != JSStreamNotFoundErr) {
        self->host->log (self->self, BUSD_LOG_WARNING, "cannot look up JetStream stream '%s': "
                         "%s; retrying", self->stream, s_js_error (s));
        return -EAGAIN;
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init (&cfg);
    const char **subjects = calloc ((size_t) self->stream_subject_count, sizeof (char *));
    if (!subjects)
        return -ENOMEM;
    for (int i = 0; i < self->stream_subject_count; i++)
        subjects [i] = self->stream_subjects [i];
    cfg.Name = self->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = self->stream_subject_count;
    //  "limits" (the default) is a ring of max_msgs: an acknowledgement
    //  never removes a message, and exports hold before the slowest
    //  importer is a ring behind (s_check_stream).  "interest" removes what
    //  every importer took; nats-server 2.9 in a cluster was seen removing
    //  messages an importer had not been given yet, so it is not the
    //  default.
    cfg.Retention = self->interest ? js_InterestPolicy : js_LimitsPolicy;
    cfg.Discard = self->interest ? js_DiscardNew : js_DiscardOld;
    cfg.MaxMsgs = self->max_msgs;
    cfg.MaxBytes = self->max_bytes;
    cfg.Replicas = self->replicas;
    cfg.Storage = js_FileStorage;
    cfg.Duplicates = self->duplicate_window_ms * 1000000LL;
    s = js_AddStream (&si, self->js, &cfg, NULL, &code);
    free (subjects);
    if (s != NATS_OK) {
        self->host->log (self->self, BUSD_LOG_WARNING, "cannot create JetStream stream '%s' "
                         "(%" PRId64 " replicas): %s; retrying", self->stream, self->replicas,
                         s_js_error (s));
        return -EAGAIN;
    }
    jsStreamInfo_Destroy (si);
    self->host->log (self->self, BUSD_LOG_NOTICE, "created JetStream stream '%s' (%d subjects, "
                     "%" PRId64 " replicas, %s retention)", self->stream,
                     self->stream_subject_count, self->replicas,
                     self->interest ? "interest" : "limits");
    return 0;
}

static int
s_setup_consumer (nats_t *self)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetConsumerInfo (&ci, self->js, self->stream, self->instance, NULL, &code);
    if (s != NATS_OK) {
        if (s != NATS_NOT_FOUND && code != JSConsumerNotFoundErr) {
            self->host->log (self->self, BUSD_LOG_WARNING, "cannot look up consumer '%s': %s; "
                             "retrying", self->instance, s_js_error (s));
            return -EAGAIN;
        }
        jsConsumerConfig cc;
        jsConsumerConfig_Init (&cc);
        cc.Durable = self->instance;
        cc.AckPolicy = js_AckExplicit;
        //  From now on: a busd joining the cluster does not replay the
        //  ring; after that the durable consumer remembers its place.
        cc.DeliverPolicy = js_DeliverNew;
        cc.AckWait = (self->ack_timeout_ms * 6) * 1000000LL;
        cc.MaxAckPending = self->batch * 4;
        s = js_AddConsumer (&ci, self->js, self->stream, &cc, NULL, &code);
        if (s != NATS_OK) {
            self->host->log (self->self, BUSD_LOG_WARNING, "cannot create durable consumer "
                             "'%s' on '%s': %s; retrying", self->instance, self->stream,
                             s_js_error (s));
            return -EAGAIN;
        }
        self->host->log (self->self, BUSD_LOG_NOTICE, "created durable consumer '%s' on "
                         "stream '%s'", self->instance, self->stream);
    }
    //  Where the consumer was: a restarted busd notices a skip at once.
    if (ci && self->js_high == 0)
        self->js_high = ci->Delivered.Stream;
    jsConsumerInfo_Destroy (ci);
    //  Pull requests are sent by hand ($JS.API.CONSUMER.MSG.NEXT) to an
    //  inbox of our own: each asks for exactly the messages busd's credit
    //  allows, and libnats's own Fetch is not needed.
    natsInbox *inbox = NULL;
    s = natsInbox_Create (&inbox);
    if (s == NATS_OK) {
        snprintf (self->pull_inbox, sizeof self->pull_inbox, "%s", (const char *) inbox);
        natsInbox_Destroy (inbox);
        s = natsConnection_SubscribeSync (&self->pull, self->nc, self->pull_inbox);
    }
    if (s != NATS_OK) {
        self->host->log (self->self, BUSD_LOG_WARNING, "cannot subscribe for consumer '%s': "
                         "%s; retrying", self->instance, natsStatus_GetText (s));
        self->pull = NULL;
        return -EAGAIN;
    }
    natsSubscription_SetPendingLimits (self->pull, -1, -1);
    snprintf (self->pull_subject, sizeof self->pull_subject,
              "$JS.API.CONSUMER.MSG.NEXT.%s.%s", self->stream, self->instance);
    return 0;
}

static int
s_setup_core (nats_t *self)
{
    for (int i = 0; i < self->import_subject_count; i++) {
        if (self->core_subs [i])
            continue;
        natsStatus s = natsConnection_QueueSubscribeSync (&self->core_subs [i], self->nc,
                                                          self->import_subjects [i],
                                                          self->instance);
        if (s != NATS_OK) {
            self->host->log (self->self, BUSD_LOG_WARNING, "cannot subscribe to '%s': %s; "
                             "retrying", self->import_subjects [i], natsStatus_GetText (s));
            self->core_subs [i] = NULL;
            return -EAGAIN;
        }
        //  What waits here beyond busd's credit is bounded; beyond it core
        //  NATS drops (at most once), counted as core_dropped.
        natsSubscription_SetPendingLimits (self->core_subs [i], 65536, 64 * 1024 * 1024);
    }
    return 0;
}

static void
s_setup (nats_t *self)
{
    int64_t now = pc_mono_ms ();
    if (now < self->setup_at_ms)
        return;
    int rc = 0;
    if (!atomic_load (&self->core_ready) && self->import_subject_count)
        rc = s_setup_core (self);
    if (rc == 0)
        atomic_store (&self->core_ready, true);
    if (rc == 0 && !self->js_ready && self->js) {
        rc = s_setup_stream (self);
        if (rc == 0 && self->import_count)
            rc = s_setup_consumer (self);
        if (rc == 0)
            self->js_ready = true;
    }
    if (rc) {
        self->setup_backoff_ms = self->setup_backoff_ms ? self->setup_backoff_ms * 2 : 200;
        if (self->setup_backoff_ms > SETUP_RETRY_MAX_MS)
            self->setup_backoff_ms = SETUP_RETRY_MAX_MS;
        self->setup_at_ms = now + self->setup_backoff_ms;
    }
    else
        self->setup_backoff_ms = 0;
}

/*  Remember a consumer of the stream: once seen, its backlog counts until
    the stream says it was deleted.                                         */
static void
s_know_importer (nats_t *self, const char *name)
{
    for (int i = 0; i < self->importer_count; i++)
        if (strcmp (self->importers [i], name) == 0)
            return;
    char **grown = realloc (self->importers, (size_t) (self->importer_count + 1) * sizeof (char *));
    char *copy = strdup (name);
    if (!grown || !copy) {
        free (copy);
        if (grown)
            self->importers = grown;
        return;
    }
    self->importers = grown;
    self->importers [self->importer_count++] = copy;
}

static void
s_forget_importer (nats_t *self, int index)
{
    free (self->importers [index]);
    self->importers [index] = self->importers [--self->importer_count];
}

/*  How far behind a consumer is, asked of the consumer itself; -1 when it
    does not answer (no leader: it may be far behind and must be waited
    for), -2 when the stream says it no longer exists.                      */
static int64_t
s_ask_importer (nats_t *self, const char *name)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    jsOptions opts;
    jsOptions_Init (&opts);
    opts.Wait = STREAM_ASK_WAIT_MS;     /*  the worker also imports        */
    natsStatus s = js_GetConsumerInfo (&ci, self->js, self->stream, name, &opts, &code);
    if (s != NATS_OK)
        return code == JSConsumerNotFoundErr ? -2 : -1;
    int64_t behind = (int64_t) ci->NumPending + ci->NumAckPending;
    jsConsumerInfo_Destroy (ci);
    return behind;
}

/*  Read how far behind the slowest importer is.  Exports stop at
    HIGH_WATER_PCT of the stream's max_msgs (and, with interest retention,
    of max_bytes), well before a limits stream would overwrite what an
    importer has not taken or an interest stream would refuse messages.

    Each consumer's backlog is asked of that consumer (its leader answers
    $JS.API.CONSUMER.INFO), never read off the stream's consumer list: in
    a cluster, nats-server 2.9 answers the list from whichever node leads
    the stream, and a node that had been restarted reported its own stale
    replica state (500 pending where the consumer's leader had 0), which
    held every export forever.  The list only tells the names.  A consumer
    seen once counts until the stream says it was deleted; while it does
    not answer (its leader is being elected after a node was lost) its
    backlog is unknown, and exports hold rather than let the ring run over
    what it has not taken.                                                  */
static void
s_check_stream (nats_t *self)
{
    int64_t now = pc_mono_ms ();
    if (now < self->stream_check_at_ms)
        return;
    self->stream_check_at_ms = now + STREAM_CHECK_MS;
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    if (js_GetStreamInfo (&si, self->js, self->stream, NULL, &code) != NATS_OK)
        return;
    int64_t max_msgs = si->Config ? si->Config->MaxMsgs : 0;
    int64_t max_bytes = si->Config ? si->Config->MaxBytes : 0;
    bool interest = si->Config && si->Config->Retention == js_InterestPolicy;
    uint64_t bytes = si->State.Bytes;
    jsStreamInfo_Destroy (si);
    jsConsumerNamesList *names = NULL;
    if (js_ConsumerNames (&names, self->js, self->stream, NULL, &code) == NATS_OK) {
        for (int i = 0; i < names->Count; i++)
            if (names->List [i])
                s_know_importer (self, names->List [i]);
        jsConsumerNamesList_Destroy (names);
    }
    int64_t backlog = 0;
    const char *silent = NULL;
    char slowest [NS_NAME_MAX] = "";
    for (int k = self->importer_count - 1; k >= 0; k--) {
        int64_t behind = s_ask_importer (self, self->importers [k]);
        if (behind == -2) {
            self->host->log (self->self, BUSD_LOG_NOTICE, "stream '%s': consumer '%s' was "
                             "deleted; exports no longer wait for it", self->stream,
                             self->importers [k]);
            s_forget_importer (self, k);
        }
        else
        if (behind == -1)
            silent = self->importers [k];
        else
        if (behind > backlog) {
            backlog = behind;
            snprintf (slowest, sizeof slowest, "%s", self->importers [k]);
        }
    }
    if (silent && (!self->silent_importer || strcmp (self->silent_importer, silent) != 0)) {
        self->host->log (self->self, BUSD_LOG_INFO, "stream '%s': consumer '%s' does not "
                         "answer (its node may be down): exports wait until it does",
                         self->stream, silent);
        free (self->silent_importer);
        self->silent_importer = strdup (silent);
    }
    else
    if (!silent && self->silent_importer) {
        self->host->log (self->self, BUSD_LOG_INFO, "stream '%s': consumer '%s' answers "
                         "again", self->stream, self->silent_importer);
        free (self->silent_importer);
        self->silent_importer = NULL;
    }
    //  The budget: what may still go out before the slowest importer is
    //  HIGH_WATER_PCT of max_msgs behind, less what is on its way already.
    pthread_mutex_lock (&self->lock);
    int64_t in_flight = 0;
    for (export_t *e = self->head; e; e = e->next)
        in_flight += e->in_flight;
    pthread_mutex_unlock (&self->lock);
    int64_t budget = max_msgs > 0 ? max_msgs * HIGH_WATER_PCT / 100 - backlog - in_flight
                                  : INT64_MAX / 2;
    if (interest && max_bytes > 0 && (int64_t) bytes * 100 >= max_bytes * HIGH_WATER_PCT)
        budget = 0;
    if (silent && max_msgs > 0)
        budget = 0;
    atomic_store (&self->budget, budget);
    bool full = budget <= 0;
    if (full != atomic_load (&self->stream_full)) {
        atomic_store (&self->stream_full, full);
        self->host->log (self->self, full ? BUSD_LOG_INFO : BUSD_LOG_DEBUG,
                         full ? "stream '%s': consumer '%s' is %" PRId64 " messages behind: "
                                "exports wait for it"
                              : "stream '%s': importers caught up ('%s' %" PRId64 " behind): "
                                "exporting", self->stream, silent ? silent : slowest, backlog);
        if (full)
            s_metric (self, "js_held", 1);
    }
}

/*  ------------------------------------------------------------------
    Import (worker)                                                         */

/*  The headers of msg as a busd headers object; busd-origin stays so the
    local export knows the event came from the cluster.                     */
static char *
s_import_headers (natsMsg *msg)
{
    const char **keys = NULL;
    int count = 0;
    if (natsMsgHeader_Keys (msg, &keys, &count) != NATS_OK || count == 0)
        return NULL;
    cJSON *headers = cJSON_CreateObject ();
    for (int i = 0; headers && i < count; i++) {
        if (strcmp (keys [i], "Nats-Msg-Id") == 0 || strcmp (keys [i], "busd-msg-id") == 0
        ||  strcmp (keys [i], "busd-js") == 0)
            continue;
        const char *value = NULL;
        if (natsMsgHeader_Get (msg, keys [i], &value) == NATS_OK && value)
            cJSON_AddStringToObject (headers, keys [i], value);
    }
    free ((void *) keys);
    char *text = headers ? cJSON_PrintUnformatted (headers) : NULL;
    cJSON_Delete (headers);
    return text;
}

typedef enum { IMPORT_SKIP, IMPORT_SENT, IMPORT_FAILED } import_t;

/*  Publish one NATS message into busd, unless it is ours or not wanted.    */
static import_t
s_import_one (nats_t *self, natsMsg *msg, bool from_js)
{
    const char *origin = NULL;
    if (natsMsgHeader_Get (msg, "busd-origin", &origin) == NATS_OK && origin
    &&  strcmp (origin, self->instance) == 0) {
        s_metric (self, "skipped_own", 1);
        return IMPORT_SKIP;
    }
    const char *marker = NULL;
    //  A JetStream message also reaches core subscribers: with a durable
    //  consumer of our own (configured, if not yet set up) that one brings
    //  it, once, and at least once.
    if (!from_js && self->js && self->import_count
    &&  natsMsgHeader_Get (msg, "busd-js", &marker) == NATS_OK && marker)
        return IMPORT_SKIP;
    char topic [300];
    if (ns_subject_topic (self->prefix, natsMsg_GetSubject (msg), topic, sizeof topic)) {
        s_metric (self, "skipped_invalid", 1);
        return IMPORT_SKIP;
    }
    if (!s_matches_any (self->imports, self->import_count, topic))
        return IMPORT_SKIP;
    const char *msg_id = NULL;
    if (natsMsgHeader_Get (msg, "busd-msg-id", &msg_id) != NATS_OK || !msg_id)
        if (natsMsgHeader_Get (msg, "Nats-Msg-Id", &msg_id) != NATS_OK)
            msg_id = NULL;
    char *headers = s_import_headers (msg);
    //  No waiting: the caller checked the credit, and holding on here
    //  would only hold the stream's messages longer.
    int rc = self->host->publish (self->self, topic, natsMsg_GetData (msg),
                                  (size_t) natsMsg_GetDataLength (msg), headers, msg_id, 0);
    free (headers);
    if (rc)
        return IMPORT_FAILED;
    s_metric (self, from_js ? "imported_js" : "imported_core", 1);
    return IMPORT_SENT;
}

static int
s_import_core (nats_t *self, uint32_t credit)
{
    int done = 0;
    for (int i = 0; i < self->import_subject_count && credit > 0; i++) {
        natsSubscription *sub = self->core_subs [i];
        while (sub && credit > 0) {
            natsMsg *msg = NULL;
            if (natsSubscription_NextMsg (&msg, sub, 0) != NATS_OK)
                break;
            import_t fate = s_import_one (self, msg, false);
            if (fate == IMPORT_SENT) {
                credit--;
                done++;
            }
            else if (fate == IMPORT_FAILED)
                s_metric (self, "core_dropped", 1);     /*  at most once    */
            natsMsg_Destroy (msg);
        }
    }
    return done;
}

/*  True for the server's status messages on the pull inbox (404 no
    messages, 408 request expired, 409, 100 heartbeat): they carry no event
    and are never acknowledged.                                              */
static bool
s_is_status (natsMsg *msg, bool *ends_request)
{
    const char *status = NULL;
    const char *reply = natsMsg_GetReply (msg);
    if (reply && strncmp (reply, "$JS.ACK.", 8) == 0)
        return false;
    natsMsgHeader_Get (msg, "Status", &status);
    *ends_request = !status || strcmp (status, "100") != 0;
    return true;
}

static void
s_ack (nats_t *self, natsMsg *msg, bool ok)
{
    const char *reply = natsMsg_GetReply (msg);
    if (reply && *reply)
        natsConnection_PublishString (self->nc, reply, ok ? "+ACK" : "-NAK {\"delay\": 200000000}");
}

/*  The stream sequence of a message our consumer delivered, 0 if unknown.  */
static uint64_t
s_stream_seq (natsMsg *msg)
{
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData (&meta, msg) != NATS_OK || !meta)
        return 0;
    uint64_t seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy (meta);
    return seq;
}

/*  Our consumer skipped stream sequences (from, to): fetch them from the
    stream and publish them, in order, before what it did deliver.

    Every stream message is for every consumer (they have no filter), and
    a consumer delivers new messages in stream order, so a jump in the
    sequence means the consumer stepped over messages the stream still
    holds.  nats-server 2.9.10 was seen doing this when the stream's leader
    node was killed: the consumer's leader counted 32 messages delivered
    and acknowledged that never reached this importer, while the exports
    budget had kept them in the ring.  A repaired message may also be
    redelivered later (it was only lost in transit): busd's dedup window
    drops the second copy by msg_id.  Returns the number published, or -1
    when busd did not take one (the batch is then sent again).            */
static int
s_repair_gap (nats_t *self, uint64_t from, uint64_t to, int *lost)
{
    int sent = 0;
    if (to - from + 1 > (uint64_t) (self->max_msgs > 0 ? self->max_msgs : 1000000))
        from = to + 1 - (uint64_t) (self->max_msgs > 0 ? self->max_msgs : 1000000);
    for (uint64_t seq = from; seq <= to; seq++) {
        natsMsg *msg = NULL;
        jsErrCode code = 0;
        natsStatus s = js_GetMsg (&msg, self->js, self->stream, seq, NULL, &code);
        if (s != NATS_OK && (s == NATS_NOT_FOUND || code == JSNoMessageFoundErr)) {
            (*lost)++;
            continue;
        }
        if (s != NATS_OK)
            return -1;          /*  no answer now: the batch comes again    */
        import_t fate = s_import_one (self, msg, true);
        natsMsg_Destroy (msg);
        if (fate == IMPORT_FAILED)
            return -1;
        if (fate == IMPORT_SENT) {
            sent++;
            s_metric (self, "js_repaired", 1);
        }
    }
    return sent;
}

/*  Ask the consumer for at most credit messages, publish them, and
    acknowledge them to the stream only once busd has accepted every one.  */
static int
s_import_js (nats_t *self, uint32_t credit)
{
    int batch = credit < (uint32_t) self->batch ? (int) credit : (int) self->batch;
    char request [96];
    snprintf (request, sizeof request, "{\"batch\":%d,\"expires\":%lld}", batch,
              (long long) FETCH_WAIT_MS * 1000000LL);
    if (natsConnection_PublishRequestString (self->nc, self->pull_subject, self->pull_inbox,
                                             request) != NATS_OK)
        return 0;
    natsMsg **msgs = calloc ((size_t) batch, sizeof (natsMsg *));
    import_t *fate = calloc ((size_t) batch, sizeof (import_t));
    int count = 0;
    int64_t deadline = pc_mono_ms () + FETCH_WAIT_MS + 1000;
    while (msgs && fate && count < batch) {
        int64_t left = deadline - pc_mono_ms ();
        natsMsg *msg = NULL;
        if (left <= 0 || natsSubscription_NextMsg (&msg, self->pull, left) != NATS_OK)
            break;
        bool ends = false;
        if (s_is_status (msg, &ends)) {
            natsMsg_Destroy (msg);
            if (ends)
                break;
            continue;
        }
        msgs [count++] = msg;
    }
    int sent = 0, failed = 0, lost = 0;
    uint64_t high_before = self->js_high;
    for (int i = 0; i < count; i++) {
        uint64_t seq = s_stream_seq (msgs [i]);
        if (!failed && seq > self->js_high + 1 && self->js_high > 0) {
            int lost_here = 0;
            self->host->log (self->self, BUSD_LOG_WARNING, "stream '%s': consumer '%s' skipped "
                             "stream messages %" PRIu64 "..%" PRIu64 "; fetching them from the "
                             "stream", self->stream, self->instance, self->js_high + 1, seq - 1);
            int repaired = s_repair_gap (self, self->js_high + 1, seq - 1, &lost_here);
            if (repaired < 0)
                failed++;
            else
                sent += repaired;
            if (lost_here) {
                lost += lost_here;
                self->host->log (self->self, BUSD_LOG_ERROR, "stream '%s': %d of the skipped "
                                 "messages are no longer in the stream: lost for this busd",
                                 self->stream, lost_here);
                s_metric (self, "js_lost", lost_here);
            }
        }
        if (seq > self->js_high)
            self->js_high = seq;
        fate [i] = failed ? IMPORT_FAILED : s_import_one (self, msgs [i], true);
        sent += fate [i] == IMPORT_SENT;
        failed += fate [i] == IMPORT_FAILED;
    }
    int rc = sent ? self->host->publish_flush (self->self, FLUSH_TIMEOUT_MS) : 0;
    for (int i = 0; i < count; i++) {
        s_ack (self, msgs [i], fate [i] == IMPORT_SKIP || (fate [i] == IMPORT_SENT && rc == 0));
        natsMsg_Destroy (msgs [i]);
    }
    free (msgs);
    free (fate);
    if (rc || failed) {
        //  What was NAKed comes again; a repaired gap is repaired again.
        self->js_high = high_before;
        int again = failed + (rc ? sent : 0);
        self->host->log (self->self, BUSD_LOG_DEBUG, "busd did not take %d imported events "
                         "(%s); the stream sends them again", again,
                         rc ? "not acknowledged in time" : "no publisher credit");
        s_metric (self, "import_retries", again);
    }
    return count;
}

static void
s_report_gauges (nats_t *self)
{
    int64_t now = pc_mono_ms ();
    if (now < self->gauge_at_ms)
        return;
    self->gauge_at_ms = now + GAUGE_EVERY_MS;
    long long reconnects = atomic_load (&self->reconnects);
    if (reconnects != self->reported_reconnects) {
        s_metric (self, "nats_reconnects", (double) (reconnects - self->reported_reconnects));
        self->reported_reconnects = reconnects;
    }
    int connected = atomic_load (&self->connected) ? 1 : 0;
    if (connected != self->reported_connected) {
        s_metric (self, "nats_connected", connected - self->reported_connected);
        self->reported_connected = connected;
    }
    int64_t dropped = 0;
    for (int i = 0; i < self->import_subject_count; i++) {
        int64_t n = 0;
        if (self->core_subs [i] && natsSubscription_GetDropped (self->core_subs [i], &n) == NATS_OK)
            dropped += n;
    }
    if (dropped > self->reported_dropped) {
        s_metric (self, "core_dropped", (double) (dropped - self->reported_dropped));
        self->reported_dropped = dropped;
    }
    pthread_mutex_lock (&self->lock);
    double latency = self->latency_us;
    pthread_mutex_unlock (&self->lock);
    if (latency != self->reported_latency) {
        s_metric (self, "js_ack_latency_us", latency - self->reported_latency);
        self->reported_latency = latency;
    }
}

static void *
s_worker (void *arg)
{
    nats_t *self = arg;
    while (!atomic_load (&self->stop)) {
        s_report_gauges (self);
        if (!atomic_load (&self->connected)) {
            s_sleep_ms (50);
            continue;
        }
        s_setup (self);
        if (self->js && self->js_ready)
            s_check_stream (self);
        if (self->js)
            s_resend_due (self);
        if (pc_mono_ms () - self->started_ms < self->import_delay_ms) {
            s_sleep_ms (20);
            continue;
        }
        int done = 0;
        uint32_t credit = self->pull ? self->host->publish_credit (self->self) : 0;
        if (credit)
            done += s_import_js (self, credit);
        if (!done)
            s_sleep_ms (IDLE_SLEEP_MS);
    }
    return NULL;
}

/*  Core imports in a thread of their own, so a burst on core NATS is
    drained while the worker waits on JetStream requests (and the other way
    round).  Both publish through the instance's one publisher session.    */
static void *
s_core_worker (void *arg)
{
    nats_t *self = arg;
    while (!atomic_load (&self->stop)) {
        if (!atomic_load (&self->connected) || !atomic_load (&self->core_ready)
        ||  pc_mono_ms () - self->started_ms < self->import_delay_ms) {
            s_sleep_ms (20);
            continue;
        }
        uint32_t credit = self->host->publish_credit (self->self);
        int done = credit ? s_import_core (self, credit) : 0;
        if (!done)
            s_sleep_ms (IDLE_SLEEP_MS);
    }
    return NULL;
}

/*  ------------------------------------------------------------------
    Lifecycle                                                               */

static void s_fini (void *state);

static int
s_fail (nats_t *self, busd_plugin_instance_t *instance, const busd_plugin_host_t *host,
        const char *reason, int rc)
{
    host->set_reason (instance, "%s", reason);
    s_fini (self);
    return rc;
}

/*  A state with its locks, before any configuration.                       */
static nats_t *
s_new (busd_plugin_instance_t *instance, const busd_plugin_host_t *host)
{
    nats_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->self = instance;
    self->host = host;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->room, NULL);
    atomic_init (&self->connected, false);
    atomic_init (&self->stop, false);
    atomic_init (&self->reconnects, 0);
    atomic_init (&self->stream_full, false);
    atomic_init (&self->budget, 0);
    atomic_init (&self->core_ready, false);
    return self;
}

/*  busd --check-config: the configuration alone, nothing connected.  An
    import or jetstream pattern NATS cannot carry is refused here, with
    the reason, before busd runs it.                                        */
static int
s_check_config (busd_plugin_instance_t *instance, const busd_plugin_host_t *host)
{
    nats_t *self = s_new (instance, host);
    if (!self) {
        host->set_reason (instance, "out of memory");
        return -ENOMEM;
    }
    char err [600];
    int rc = s_configure (self, host->config_json (instance), err, sizeof err);
    if (rc)
        host->set_reason (instance, "%s", err);
    s_fini (self);
    return rc;
}

static int
s_init (busd_plugin_instance_t *instance, const busd_plugin_host_t *host, void **state_p)
{
    if (host->abi_minor < 2 || host->size < offsetof (busd_plugin_host_t, publish_flush)
                                            + sizeof host->publish_flush) {
        host->set_reason (instance, "needs plugin host ABI 1.2 (complete, publish_credit, "
                          "publish_flush); this host speaks %u.%u", (unsigned) host->abi_major,
                          (unsigned) host->abi_minor);
        return -ENOTSUP;
    }
    nats_t *self = s_new (instance, host);
    if (!self) {
        host->set_reason (instance, "out of memory");
        return -ENOMEM;
    }
    self->started_ms = pc_mono_ms ();
    snprintf (self->nonce, sizeof self->nonce, "%08x%08x", (unsigned) time (NULL),
              (unsigned) (s_now_us () ^ getpid ()));

    char err [600];
    int rc = s_configure (self, host->config_json (instance), err, sizeof err);
    if (rc)
        return s_fail (self, instance, host, err, rc);
    if (self->import_subject_count) {
        self->core_subs = calloc ((size_t) self->import_subject_count, sizeof (natsSubscription *));
        if (!self->core_subs)
            return s_fail (self, instance, host, "out of memory", -ENOMEM);
    }

    natsStatus s = natsOptions_Create (&self->opts);
    char name [NS_NAME_MAX + 8];
    snprintf (name, sizeof name, "busd-%s", self->instance);
    if (s == NATS_OK)
        s = natsOptions_SetServers (self->opts, (const char **) self->servers, self->server_count);
    if (s == NATS_OK)
        s = natsOptions_SetName (self->opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho (self->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect (self->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay (self->opts, s_reconnect_delay, self);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect (self->opts, true, s_on_connected, self);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB (self->opts, s_on_disconnected, self);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB (self->opts, s_on_reconnected, self);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler (self->opts, s_on_error, self);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB (self->opts, s_on_closed, self);
    if (s != NATS_OK) {
        snprintf (err, sizeof err, "cannot set up the NATS options: %s", natsStatus_GetText (s));
        return s_fail (self, instance, host, err, -EINVAL);
    }
    //  Shown from the start, so an unreachable cluster reads as 0.
    s_metric (self, "nats_connected", 0);
    s = natsConnection_Connect (&self->nc, self->opts);
    if (s == NATS_OK) {
        char url [256] = "";
        natsConnection_GetConnectedUrl (self->nc, url, sizeof url);
        atomic_store (&self->connected, true);
        host->log (instance, BUSD_LOG_NOTICE, "connected to NATS at %s as instance '%s'", url,
                   self->instance);
    }
    else if (s == NATS_NOT_YET_CONNECTED) {
        pc_buf_t list;
        pc_buf_init (&list);
        for (int i = 0; i < self->server_count; i++)
            pc_buf_appendf (&list, "%s%s", i ? ", " : "", self->servers [i]);
        host->log (instance, BUSD_LOG_ERROR, "cannot reach the NATS cluster (%s): no server "
                   "answered; retrying with backoff (up to %" PRId64 " ms). busd keeps serving "
                   "locally; events to export wait in busd's queue", list.data ? list.data : "",
                   self->reconnect_max_ms);
        pc_buf_free (&list);
    }
    else {
        snprintf (err, sizeof err, "cannot connect to NATS: %s", natsStatus_GetText (s));
        return s_fail (self, instance, host, err, -ECONNREFUSED);
    }
    if (self->js_count) {
        jsOptions jo;
        jsOptions_Init (&jo);
        jo.Wait = self->ack_timeout_ms;
        jo.PublishAsync.MaxPending = self->window;
        jo.PublishAsync.AckHandler = s_on_puback;
        jo.PublishAsync.AckHandlerClosure = self;
        s = natsConnection_JetStream (&self->js, self->nc, &jo);
        if (s != NATS_OK) {
            snprintf (err, sizeof err, "cannot set up JetStream: %s", natsStatus_GetText (s));
            return s_fail (self, instance, host, err, -EINVAL);
        }
    }
    sigset_t all, old;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    rc = pthread_create (&self->worker, NULL, s_worker, self);
    if (rc == 0) {
        self->worker_started = true;
        if (self->import_subject_count) {
            rc = pthread_create (&self->core_worker, NULL, s_core_worker, self);
            self->core_worker_started = rc == 0;
        }
    }
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf (err, sizeof err, "cannot start the import thread: %s", strerror (rc));
        return s_fail (self, instance, host, err, -rc);
    }
    host->log (instance, BUSD_LOG_INFO, "instance '%s', prefix '%s', %d import subject%s, "
               "%s%s, window %" PRId64, self->instance, self->prefix,
               self->import_subject_count, self->import_subject_count == 1 ? "" : "s",
               self->js ? "JetStream stream " : "no JetStream", self->js ? self->stream : "",
               self->window);
    *state_p = self;
    return 0;
}

static void
s_fini (void *state)
{
    nats_t *self = state;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    if (self->worker_started)
        pthread_join (self->worker, NULL);
    if (self->core_worker_started)
        pthread_join (self->core_worker, NULL);
    for (int i = 0; self->core_subs && i < self->import_subject_count; i++)
        natsSubscription_Destroy (self->core_subs [i]);
    free (self->core_subs);
    natsSubscription_Destroy (self->pull);
    pthread_mutex_lock (&self->lock);
    self->closing = true;
    pthread_mutex_unlock (&self->lock);
    if (self->nc) {
        natsConnection_Close (self->nc);
        //  Connection callbacks run on libnats's own thread, in order; the
        //  closed one is the last that may still reach this state.
        pthread_mutex_lock (&self->lock);
        int64_t give_up = pc_mono_ms () + 5000;
        while (!self->closed && pc_mono_ms () < give_up) {
            struct timespec until;
            clock_gettime (CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait (&self->room, &self->lock, &until);
        }
        pthread_mutex_unlock (&self->lock);
    }
    //  Exports still waiting: busd redelivers them (they were never ACKed).
    pthread_mutex_lock (&self->lock);
    export_t *e = self->head;
    while (e) {
        export_t *next = e->next;
        if (!e->in_flight)
            natsMsg_Destroy (e->msg);
        free (e);
        e = next;
    }
    self->head = self->tail = NULL;
    pthread_mutex_unlock (&self->lock);
    jsCtx_Destroy (self->js);
    natsConnection_Destroy (self->nc);
    natsOptions_Destroy (self->opts);
    s_free_list (self->servers, self->server_count);
    s_free_list (self->imports, self->import_count);
    s_free_list (self->js_patterns, self->js_count);
    free (self->stream_subjects);
    free (self->import_subjects);
    s_free_list (self->importers, self->importer_count);
    free (self->silent_importer);
    pthread_cond_destroy (&self->room);
    pthread_mutex_destroy (&self->lock);
    free (self);
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "nats",
    .version = "1.0.0",
    .description = "join busd instances through a NATS cluster with JetStream",
    .init = s_init,
    .on_event = s_on_event,
    .fini = s_fini,
    .check_config = s_check_config
};

BUSD_PLUGIN_DECLARE (s_plugin)
