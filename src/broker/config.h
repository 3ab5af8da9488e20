/*  config.h — busd's settings: defaults, the JSON file, command-line flags.

    Every setting is one row of a table (config.c) that gives its key, type,
    range, default and whether a reload can change it, so the parser, the
    error messages ("did you mean ..."), --check-config and the reload diff
    all read the same truth.                                                 */
#ifndef BUSD_CONFIG_H_INCLUDED
#define BUSD_CONFIG_H_INCLUDED

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX_BINDS 16
#define BUSD_DEFAULT_ENDPOINT_BROKER "tcp://127.0.0.1:7460"

/*  Durable streams ("streams" in busd.json; see store.h).                  */
#define STREAM_MAX_PATTERNS 16
typedef enum { STREAM_SYNC_ALWAYS = 0, STREAM_SYNC_INTERVAL, STREAM_SYNC_NEVER } stream_sync_t;
typedef struct {
    char name [65];             /*  [A-Za-z0-9_-], 1..64                    */
    char patterns [STREAM_MAX_PATTERNS][256];
    int pattern_count;
    int64_t max_events;         /*  0: no limit                             */
    int64_t max_bytes;          /*  0: no limit                             */
    int64_t max_age_ms;         /*  0: no limit                             */
    stream_sync_t sync;
    int64_t sync_interval_ms;
    int64_t max_cursors;        /*  durable names a client may create       */
} stream_config_t;

typedef struct {
    char *binds [CONFIG_MAX_BINDS];
    int bind_count;
    char *log_level;            /*  debug, info, notice, warning, error     */
    bool syslog;
    int64_t session_timeout_ms;
    int64_t heartbeat_ms;
    int64_t pub_credit;
    int64_t max_payload;
    int64_t max_headers;
    int64_t queue_limit;        /*  default SUB queue_limit (events)        */
    int64_t queue_bytes;        /*  per-queue byte limit                    */
    int64_t max_queued_bytes;   /*  broker-wide cap on queued bytes         */
    int64_t credit;             /*  default SUB credit                      */
    int64_t ack_wait_ms;
    int64_t max_deliver;
    int64_t dedup_window_ms;
    int64_t dedup_max;
    int64_t dlq_max_count;
    int64_t dlq_max_bytes;
    int64_t backoff_initial_ms;
    int64_t backoff_max_ms;
    double backoff_multiplier;
    double backoff_jitter;
    int64_t drain_timeout_ms;
    int64_t stats_interval_ms;  /*  $sys.stats period; 0 = off              */
    char *metrics_bind;         /*  "127.0.0.1:9460" or NULL = off          */
    int64_t sndhwm;
    int64_t max_credit;         /*  cap on a subscription's credit          */
    char *file;                 /*  where it came from, for messages        */
    char *plugins_json;         /*  the "plugins" array, kept as JSON text  */
    /*  Durable streams: no data_dir means memory-only.                     */
    char *data_dir;
    int64_t store_map_size;     /*  first LMDB map size (it grows)          */
    int64_t store_max_size;     /*  the most it grows to; 0 = no cap        */
    stream_config_t *streams;
    int stream_count;
    char *streams_json;         /*  as loaded, to tell a reload what changed */
    char *plugin_dir;           /*  where bare plugin names are found        */
    /*  Security (auth.c, acl.c, doc/security.md).                          */
    char *auth;                 /*  mechanism of the "bind" endpoints       */
    char *listeners_json;       /*  [{"bind": EP, "auth": MECH}] as text     */
    char *curve_server_cert;    /*  czmq certificate with the secret key    */
    char *curve_clients_dir;    /*  allowed client public certificates      */
    char *plain_passwords;      /*  user=password lines                     */
    char *acl_file;             /*  NULL: no ACL, everything allowed        */
    int64_t max_sessions;       /*  limits: 0 = unlimited                   */
    int64_t max_sessions_per_identity;
    int64_t max_subs_per_session;
    int64_t max_topic_depth;
    int64_t ctl_rate;           /*  CTL requests per second per session     */
    int64_t max_ctl_reply;      /*  bytes of one CTLREPLY body              */
    int64_t max_subscriptions;  /*  live subscriptions in the broker        */
    int64_t dedup_max_bytes;    /*  what the dedup window may cost          */
} config_t;

/*  Defaults.                                                               */
config_t *config_new (void);
void config_destroy (config_t **self_p);

/*  Load a JSON file (comments allowed) over the current values.  Every
    problem is appended to errors (one line each, naming file and key);
    returns 0 when there was none, else -EINVAL.                            */
int config_load_file (config_t *self, const char *path, char *errors, size_t errors_size);

/*  Set one key from text (command-line flags reuse the table).             */
int config_set (config_t *self, const char *key, const char *value, char *err, size_t err_size);

/*  Cross-field checks (heartbeat < session timeout ...).                    */
int config_validate (const config_t *self, char *errors, size_t errors_size);

/*  Log what differs between two configurations; returns how many keys
    differ and names those a reload cannot change in restart_needed.         */
int config_diff (const config_t *old, const config_t *cur, char *restart_needed, size_t size);

/*  Parse a size ("10GiB", "512MB", 1048576) or a duration ("7d", "90s",
    "250ms"; a plain number is seconds) as the streams block accepts them.  */
int config_parse_size (const void *json_item, int64_t *out);
int config_parse_duration_ms (const void *json_item, int64_t *out);
/*  Every key that differs, comma-separated into names (for the reload log
    line); returns how many differ.                                          */
int config_changed_keys (const config_t *old, const config_t *cur, char *names, size_t size);

/*  Closest key name for a misspelled one (or NULL).                         */
const char *config_closest_key (const char *key);

#endif
