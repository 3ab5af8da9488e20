/*  busd/plugin.h — the busd plugin ABI, version 1.2.

    A plugin is a shared object that busd (or busd-plugin-host) loads with
    dlopen (RTLD_NOW | RTLD_LOCAL).  Each configured instance runs in its own
    thread as an ordinary busd subscriber with explicit acks, so credit,
    retries, backoff, max_deliver and dead letters work exactly as for any
    network subscriber: the plugin only says what happened to each event.

    Stability promise: the ABI major changes only when an existing field or
    function changes meaning or position; everything new is appended at the
    end of a struct and bumps the minor.  Both structs start with their size
    and ABI version, so each side reads only what the other provides.  busd
    refuses a plugin built for another major, or for a newer minor than it
    knows, naming the file and both versions.

    No czmq, libzmq or cJSON type crosses this boundary: plugins may use any
    library (or none).  Build with -fvisibility=hidden and export only the
    entry point (BUSD_PLUGIN_DECLARE does that).

    Threading: init, on_event, on_tick, reload and fini of one instance are
    always called from that instance's thread, never concurrently.  Different
    instances (even of the same plugin) run in different threads: keep state
    in the instance's state pointer, not in globals.  Host functions may be
    called from any thread, the instance's own or threads the plugin starts,
    from the moment init is called until fini returns, also concurrently
    (each takes the locks it needs); set_reason and set_retry_delay
    describe "the current event" and only mean something from on_event
    (set_reason also from init and check_config).  This paragraph is the
    one statement of that rule; doc/plugins.md refers to it.

    Memory: everything the host passes (event fields, config strings) stays
    valid until the callback returns (config strings: until fini).  Copy
    what you keep.                                                         */
#ifndef BUSD_PLUGIN_H_INCLUDED
#define BUSD_PLUGIN_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BUSD_PLUGIN_ABI_MAJOR 1
#define BUSD_PLUGIN_ABI_MINOR 2
/*  The one symbol a plugin exports.                                         */
#define BUSD_PLUGIN_ENTRY_SYMBOL "busd_plugin_entry"

/*  What on_event says happened.                                             */
typedef enum {
    BUSD_PLUGIN_OK    = 0,      /*  done: ACK                               */
    BUSD_PLUGIN_RETRY = 1,      /*  try again later: NACK with the delay set
                                    by host->set_retry_delay (0 = broker's
                                    exponential backoff)                   */
    BUSD_PLUGIN_FAIL  = 2,      /*  never going to work: dead letter, with
                                    the reason set by host->set_reason      */
    BUSD_PLUGIN_FATAL = 3,      /*  this instance cannot go on: the event is
                                    retried, the instance is disabled and
                                    reported in stats                       */
    BUSD_PLUGIN_PENDING = 4     /*  ABI 1.2: not answered yet; the plugin
                                    answers later with host->complete
                                    (event->delivery_id).  Meanwhile the
                                    event holds one credit of max_inflight,
                                    so a plugin with max_inflight events
                                    pending gets no more: a bounded window
                                    that throttles local publishers.        */
} busd_plugin_result_t;

/*  Log levels for host->log.                                                */
enum {
    BUSD_LOG_DEBUG = 0, BUSD_LOG_INFO = 1, BUSD_LOG_NOTICE = 2,
    BUSD_LOG_WARNING = 3, BUSD_LOG_ERROR = 4
};

/*  The host's handle for one plugin instance (opaque).                      */
typedef struct busd_plugin_instance busd_plugin_instance_t;

/*  A read-only view of one delivery, valid until on_event returns.          */
typedef struct {
    const char *topic;          /*  NUL-terminated                          */
    const void *payload;
    size_t size;
    const char *msg_id;         /*  "" when none                            */
    const char *headers_json;   /*  JSON object text, or NULL               */
    uint16_t attempt;           /*  1 on first delivery                     */
    uint64_t stream_seq;        /*  0 when not from a durable stream        */
    int64_t ts_us;              /*  broker's acceptance time, µs since epoch */
    uint64_t delivery_id;
} busd_plugin_event_t;

/*  Functions the host offers (see "Threading" above).                       */
typedef struct {
    uint32_t size;              /*  sizeof (busd_plugin_host_t) of the host  */
    uint16_t abi_major;
    uint16_t abi_minor;
    /*  Log a line, tagged with the instance name.                           */
    void (*log) (busd_plugin_instance_t *self, int level, const char *format, ...)
        __attribute__ ((format (printf, 3, 4)));
    /*  Configuration of this instance (the "config" object of its entry in
        busd.json).  Keys may be dotted paths ("smtp.host").  Return the
        default when the key is missing or has another type.                 */
    const char *(*config_string) (busd_plugin_instance_t *self, const char *key,
                                  const char *default_value);
    int64_t (*config_int) (busd_plugin_instance_t *self, const char *key, int64_t default_value);
    double (*config_double) (busd_plugin_instance_t *self, const char *key, double default_value);
    bool (*config_bool) (busd_plugin_instance_t *self, const char *key, bool default_value);
    /*  The whole config object as JSON text ("{}" when none).               */
    const char *(*config_json) (busd_plugin_instance_t *self);
    /*  Publish a follow-up event (e.g. spam.detected).  headers_json and
        msg_id may be NULL.  Blocks for publisher credit up to timeout_ms.
        Returns 0 or a negative code (the event was not sent).  From a
        thread the plugin started it goes through a second session of the
        instance (opened on first use), so it never waits for the instance
        thread (since ABI 1.2).                                              */
    int (*publish) (busd_plugin_instance_t *self, const char *topic,
                    const void *payload, size_t size, const char *headers_json,
                    const char *msg_id, int timeout_ms);
    /*  Why the current event failed (FAIL / RETRY / FATAL): becomes the
        dead letter's x-reason.                                              */
    void (*set_reason) (busd_plugin_instance_t *self, const char *format, ...)
        __attribute__ ((format (printf, 2, 3)));
    /*  Delay before the current event is retried (RETRY).                   */
    void (*set_retry_delay) (busd_plugin_instance_t *self, uint32_t delay_ms);
    /*  Add value to a named counter of this instance (CTL stats, /metrics). */
    void (*metric_add) (busd_plugin_instance_t *self, const char *name, double value);
    /*  The configured instance name.                                        */
    const char *(*instance_name) (busd_plugin_instance_t *self);

    /*  ABI 1.2 (check host->abi_minor >= 2 before using these).             */
    /*  Answer an event on_event returned BUSD_PLUGIN_PENDING for, from any
        thread: result OK, RETRY (retry_delay_ms as set_retry_delay) or FAIL
        (reason as set_reason; may be NULL).  Returns 0 when queued for the
        instance thread, -EINVAL for another result.  Never call it after
        fini has returned.                                                   */
    int (*complete) (busd_plugin_instance_t *self, uint64_t delivery_id,
                     busd_plugin_result_t result, uint32_t retry_delay_ms,
                     const char *reason);
    /*  Publisher credit the calling thread's session holds now (the
        instance's own on its thread; on the plugin's threads the second
        session their publishes go through): how many publish calls would be
        sent without waiting.  A plugin that feeds busd from elsewhere takes
        in only that many, so busd's credit reaches its source.             */
    uint32_t (*publish_credit) (busd_plugin_instance_t *self);
    /*  Wait up to timeout_ms until every event the calling thread's session
        published so far is acknowledged by the broker: 0 when all were accepted, a negative
        code when one was rejected or the time ran out.  For plugins that
        must confirm to their source only what busd has taken.               */
    int (*publish_flush) (busd_plugin_instance_t *self, int timeout_ms);
} busd_plugin_host_t;

/*  What a plugin provides.                                                  */
typedef struct {
    uint32_t size;              /*  sizeof (busd_plugin_t) of the plugin     */
    uint16_t abi_major;         /*  BUSD_PLUGIN_ABI_MAJOR it was built for   */
    uint16_t abi_minor;
    const char *name;
    const char *version;
    const char *description;
    /*  Set up an instance; store what you need in *state.  Return 0, or a
        negative code after host->set_reason explains why (the instance is
        then reported as failed and not started).  Return -EINVAL for a
        configuration error (restarting cannot help: busd-plugin-host then
        exits 78, EX_CONFIG), anything else for a transient failure.          */
    int (*init) (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state);
    /*  Handle one event.  Required.                                         */
    busd_plugin_result_t (*on_event) (void *state, const busd_plugin_event_t *event);
    /*  Optional: called about every tick_ms while idle or between events.   */
    void (*on_tick) (void *state);
    /*  Optional: configuration reloaded (SIGHUP); reopen files etc.         */
    int (*reload) (void *state);
    /*  Release everything.  Required.                                       */
    void (*fini) (void *state);
    uint32_t tick_ms;           /*  0: on_tick never called                  */
    /*  ABI 1.1.  Optional: check the instance's "config" without starting
        anything.  busd --check-config (and so `systemctl reload`),
        busd-plugin-host and busd-plugin-driver call it before init; self
        then has a configuration and a name but no connection (publish
        fails).  Read the config with host->config_*; call host->set_reason
        once for each problem (each call is one reported line, naming the
        key); return 0 when the configuration is usable, else a negative
        code.  A plugin built for ABI 1.0 simply has no check.              */
    int (*check_config) (busd_plugin_instance_t *self, const busd_plugin_host_t *host);
} busd_plugin_t;

/*  The entry point: receives the host's table (check its version if you
    need newer host functions) and returns the plugin's descriptor.         */
typedef const busd_plugin_t *(busd_plugin_entry_fn) (const busd_plugin_host_t *host);

#define BUSD_PLUGIN_EXPORT __attribute__ ((visibility ("default")))

/*  Declare the entry point for a static descriptor.                         */
#define BUSD_PLUGIN_DECLARE(descriptor)                                          \
    BUSD_PLUGIN_EXPORT const busd_plugin_t *busd_plugin_entry (const busd_plugin_host_t *host); \
    BUSD_PLUGIN_EXPORT const busd_plugin_t *                                    \
    busd_plugin_entry (const busd_plugin_host_t *host)                          \
    {                                                                           \
        (void) host;                                                            \
        return &(descriptor);                                                   \
    }

/*  Fill the header fields of a descriptor.                                  */
#define BUSD_PLUGIN_HEADER \
    .size = sizeof (busd_plugin_t), .abi_major = BUSD_PLUGIN_ABI_MAJOR, \
    .abi_minor = BUSD_PLUGIN_ABI_MINOR

#ifdef __cplusplus
}
#endif
#endif
