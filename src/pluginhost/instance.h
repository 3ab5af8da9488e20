/*  instance.h — one running plugin instance: its thread, its busd client,
    the host functions it calls, and its statistics.

    An instance is an ordinary busd subscriber that happens to live in a
    thread: it connects its own libbusd client (over inproc:// inside busd,
    tcp:// or ipc:// in busd-plugin-host), subscribes each pattern with
    explicit acks in the queue group "plugin.<name>", and turns what
    on_event returns into ACK or NACK.  Retries, backoff, max_deliver and
    dead letters therefore stay in the broker, and credit (max_inflight) is
    the only thing that slows a plugin down: a slow plugin never stalls the
    broker or another plugin.

    Everything but the statistics belongs to the instance's thread.  The
    controlling thread only asks (stop, reload) through atomic flags and
    reads counters and state under a mutex, so CTL and /metrics never wait
    for a plugin.                                                            */
#ifndef BUSD_PLUGIN_INSTANCE_H_INCLUDED
#define BUSD_PLUGIN_INSTANCE_H_INCLUDED

#include "busd/plugin.h"
#include "entry.h"
#include "loader.h"
#include <cJSON.h>

typedef busd_plugin_instance_t plugin_instance_t;

typedef enum {
    PLUGIN_STATE_STARTING = 0,  /*  connecting, init, subscribing           */
    PLUGIN_STATE_RUNNING,
    PLUGIN_STATE_STOPPING,      /*  draining after a stop request           */
    PLUGIN_STATE_STOPPED,
    PLUGIN_STATE_FAILED,        /*  load, init or subscribe failed          */
    PLUGIN_STATE_DISABLED       /*  FATAL from on_event, or enabled: false  */
} plugin_state_t;

const char *plugin_state_name (plugin_state_t state);

typedef enum {
    PLUGIN_STOP_NONE = 0,
    /*  Replaced or removed on reload: stop granting credit (the broker
        sends the group's further events to the other members), finish what
        arrived, UNSUB, fini.                                                */
    PLUGIN_STOP_HANDOFF,
    /*  The broker is draining: keep taking what is queued until nothing
        comes or the deadline passes, then UNSUB and fini.                   */
    PLUGIN_STOP_SHUTDOWN,
    /*  The broker no longer answers: no drain, no UNSUB; fini and go.       */
    PLUGIN_STOP_NOW
} plugin_stop_t;

typedef struct {
    uint64_t delivered, ok, retried, failed, fatal;
    uint64_t inflight;          /*  inside on_event right now               */
    uint64_t handled;           /*  on_event calls that returned            */
    uint64_t handle_us;         /*  their total time                        */
} plugin_counters_t;

/*  A new instance of module for entry (copied).  endpoint is the broker;
    zmq_context the context its socket lives in (NULL: its own; inproc
    needs the broker's).  index counts from 1 among the entry's instances.
    The module must outlive the instance.                                   */
plugin_instance_t *plugin_instance_new (plugin_module_t *module, const plugin_entry_t *entry,
                                        const char *endpoint, void *zmq_context, int index);
/*  Start the thread; 0 or a negative code.                                  */
int plugin_instance_start (plugin_instance_t *self);
/*  Ask the thread to stop (how; deadline on the monotonic ms clock, 0 for
    none).  Returns at once; a stronger request overrides a weaker one.     */
void plugin_instance_stop (plugin_instance_t *self, plugin_stop_t how, int64_t deadline_ms);
/*  Ask the thread to call the plugin's reload between events.              */
void plugin_instance_reload (plugin_instance_t *self);
/*  True while the thread has not finished.                                  */
bool plugin_instance_alive (plugin_instance_t *self);
/*  Wait for the thread to end: 0, or -ETIMEDOUT (it is still inside the
    plugin: do not unload the module).                                       */
int plugin_instance_join (plugin_instance_t *self, int timeout_ms);
/*  Free a joined (or never started) instance.                              */
void plugin_instance_destroy (plugin_instance_t **self_p);

/*  State and the reason for failed/disabled (error may be NULL).            */
plugin_state_t plugin_instance_state (plugin_instance_t *self, char *error, size_t size);
/*  Add this instance's counters to *sum.                                    */
void plugin_instance_counters (plugin_instance_t *self, plugin_counters_t *sum);
/*  Add this instance's custom metrics (metric_add) into a JSON object of
    name -> number, summing names that are already there.                    */
void plugin_instance_metrics (plugin_instance_t *self, cJSON *object);

/*  Run module's check_config (ABI 1.1; a plugin without one passes) on
    entry's "config" with a stand-in instance: no thread, no connection.
    Each problem the plugin reports (host->set_reason) is appended to errors
    as one line "<where>: key 'config': <problem>".  0, -EINVAL or -ENOMEM.  */
int plugin_instance_check_config (plugin_module_t *module, const plugin_entry_t *entry,
                                  const char *where, char *errors, size_t size);

/*  True when init failed with -EINVAL: a configuration error that a
    restart cannot fix (busd-plugin-host exits 78).                          */
bool plugin_instance_config_error (plugin_instance_t *self);

/*  Driving an instance by hand, without a thread or a broker, through the
    real host table (busd-plugin-driver).  The instance must never be
    started.  Each call returns what the plugin returned, with the reason
    (set_reason) and retry delay it set during that call.  A publish goes to
    sink (the plugin's name first) instead of a broker.                      */
typedef int (plugin_publish_fn) (const char *instance, const char *topic, const void *payload,
                                 size_t size, const char *headers_json, const char *msg_id);
void plugin_instance_set_publish_sink (plugin_instance_t *self, plugin_publish_fn *sink);
int plugin_instance_drive_init (plugin_instance_t *self, char *reason, size_t size);
busd_plugin_result_t plugin_instance_drive_event (plugin_instance_t *self,
                                                  const busd_plugin_event_t *event,
                                                  char *reason, size_t size, uint32_t *delay_ms);
int plugin_instance_drive_reload (plugin_instance_t *self);
void plugin_instance_drive_tick (plugin_instance_t *self);
void plugin_instance_drive_fini (plugin_instance_t *self);

/*  The host function table handed to plugins.                               */
const busd_plugin_host_t *plugin_host_table (void);

/*  Logging.  busd routes plugin lines into its own log; busd-plugin-host
    keeps the default sink (stderr).  level is BUSD_LOG_*.                   */
typedef void (plugin_log_fn) (int level, const char *line);
void plugin_log_set_sink (plugin_log_fn *sink);
void plugin_log_set_level (int level);
void plugin_log (int level, const char *format, ...) __attribute__ ((format (printf, 2, 3)));
/*  For sinks that write to stderr: the level's letter (D, I, N, W or E)
    and, in stamp, the local time in ISO 8601 with milliseconds and zone.  */
const char *plugin_log_stamp (int level, char *stamp, size_t size);

#endif
