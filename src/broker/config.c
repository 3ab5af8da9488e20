/*  config.c — the settings table and its JSON loader (see config.h).       */
#include "config.h"
#include "util.h"
#include "topic.h"
#include "endpoint.h"
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_INT, T_DOUBLE, T_STR, T_BOOL, T_BINDS, T_PLUGINS, T_STREAMS } ktype_t;

typedef struct {
    const char *key;
    ktype_t type;
    size_t offset;
    double min, max;
    bool reloadable;
} keydef_t;

#define OFF(f) offsetof (config_t, f)
static const keydef_t s_keys [] = {
    { "bind",               T_BINDS,  OFF (binds),              0, 0, false },
    { "log_level",          T_STR,    OFF (log_level),          0, 0, true },
    { "syslog",             T_BOOL,   OFF (syslog),             0, 0, true },
    { "session_timeout_ms", T_INT,    OFF (session_timeout_ms), 100, 86400000, true },
    { "heartbeat_ms",       T_INT,    OFF (heartbeat_ms),       50, 86400000, true },
    { "pub_credit",         T_INT,    OFF (pub_credit),         1, 4294967295.0, true },
    { "max_payload",        T_INT,    OFF (max_payload),        0, 4294967295.0, true },
    { "max_headers",        T_INT,    OFF (max_headers),        0, 16777216, true },
    { "queue_limit",        T_INT,    OFF (queue_limit),        1, 4294967295.0, true },
    { "queue_bytes",        T_INT,    OFF (queue_bytes),        1024, 1e15, true },
    { "max_queued_bytes",   T_INT,    OFF (max_queued_bytes),   1024, 1e15, true },
    { "credit",             T_INT,    OFF (credit),             0, 4294967295.0, true },
    { "ack_wait_ms",        T_INT,    OFF (ack_wait_ms),        1, 86400000, true },
    { "max_deliver",        T_INT,    OFF (max_deliver),        1, 65535, true },
    { "dedup_window_ms",    T_INT,    OFF (dedup_window_ms),    0, 86400000, true },
    { "dedup_max",          T_INT,    OFF (dedup_max),          0, 100000000, true },
    { "dlq_max_count",      T_INT,    OFF (dlq_max_count),      0, 100000000, true },
    { "dlq_max_bytes",      T_INT,    OFF (dlq_max_bytes),      0, 1e15, true },
    { "backoff_initial_ms", T_INT,    OFF (backoff_initial_ms), 1, 86400000, true },
    { "backoff_max_ms",     T_INT,    OFF (backoff_max_ms),     1, 86400000, true },
    { "backoff_multiplier", T_DOUBLE, OFF (backoff_multiplier), 1, 100, true },
    { "backoff_jitter",     T_DOUBLE, OFF (backoff_jitter),     0, 1, true },
    { "drain_timeout_ms",   T_INT,    OFF (drain_timeout_ms),   0, 3600000, true },
    { "stats_interval_ms",  T_INT,    OFF (stats_interval_ms),  0, 86400000, true },
    { "metrics_bind",       T_STR,    OFF (metrics_bind),       0, 0, false },
    { "sndhwm",             T_INT,    OFF (sndhwm),             0, 100000000, false },
    { "plugins",            T_PLUGINS, OFF (plugins_json),      0, 0, true },
    { "data_dir",           T_STR,    OFF (data_dir),           0, 0, false },
    { "store_map_size",     T_INT,    OFF (store_map_size),     65536, 1099511627776.0, false },
    { "store_max_size",     T_INT,    OFF (store_max_size),     0, 1099511627776.0, true },
    { "streams",            T_STREAMS, OFF (streams_json),      0, 0, true },
    { "max_credit",         T_INT,    OFF (max_credit),         1, 4294967295.0, true },
    { "plugin_dir",         T_STR,    OFF (plugin_dir),         0, 0, true },
    { "auth",               T_STR,    OFF (auth),               0, 0, false },
    { "listeners",          T_PLUGINS, OFF (listeners_json),    0, 0, false },
    { "curve_server_cert",  T_STR,    OFF (curve_server_cert),  0, 0, false },
    { "curve_clients_dir",  T_STR,    OFF (curve_clients_dir),  0, 0, true },
    { "plain_passwords",    T_STR,    OFF (plain_passwords),    0, 0, true },
    { "acl_file",           T_STR,    OFF (acl_file),           0, 0, true },
    { "max_sessions",       T_INT,    OFF (max_sessions),       0, 100000000, true },
    { "max_sessions_per_identity", T_INT, OFF (max_sessions_per_identity), 0, 100000000, true },
    { "max_subs_per_session", T_INT,  OFF (max_subs_per_session), 0, 100000000, true },
    { "max_topic_depth",    T_INT,    OFF (max_topic_depth),    0, 128, true },
    { "ctl_rate",           T_INT,    OFF (ctl_rate),           0, 1000000, true },
    { "max_ctl_reply",      T_INT,    OFF (max_ctl_reply),      0, 1e12, true },
    { "max_subscriptions",  T_INT,    OFF (max_subscriptions),  0, 100000000, true },
    { "dedup_max_bytes",    T_INT,    OFF (dedup_max_bytes),    0, 1e15, true },
    { NULL, 0, 0, 0, 0, false }
};

config_t *
config_new (void)
{
    config_t *self = calloc (1, sizeof (config_t));
    if (!self)
        return NULL;
    self->log_level = strdup ("info");
    self->session_timeout_ms = 15000;
    self->heartbeat_ms = 5000;
    self->pub_credit = 1000;
    self->max_payload = 1048576;
    self->max_headers = 65536;
    self->queue_limit = 10000;
    self->queue_bytes = 64 * 1024 * 1024;
    self->max_queued_bytes = 1024LL * 1024 * 1024;
    self->credit = 1000;
    self->ack_wait_ms = 30000;
    self->max_deliver = 5;
    self->dedup_window_ms = 120000;
    self->dedup_max = 1000000;
    self->dlq_max_count = 10000;
    self->dlq_max_bytes = 64 * 1024 * 1024;
    self->backoff_initial_ms = 1000;
    self->backoff_max_ms = 60000;
    self->backoff_multiplier = 2.0;
    self->backoff_jitter = 0.2;
    self->drain_timeout_ms = 5000;
    self->stats_interval_ms = 0;
    self->sndhwm = 1000000;
    self->max_credit = 4294967295LL;
    self->plugin_dir = strdup (BUSD_PLUGINDIR);
    self->max_ctl_reply = 16 * 1024 * 1024;
    //  What one client (or a few) can make the broker hold, bounded by
    //  default (doc/security.md "Limits"): a session or subscription costs
    //  a few KiB, a dedup entry up to half a KiB.
    self->max_sessions = 10000;
    self->max_subs_per_session = 100000;
    self->max_subscriptions = 1000000;
    self->dedup_max_bytes = 64LL * 1024 * 1024;
    self->auth = strdup ("none");
    if (!self->log_level || !self->plugin_dir || !self->auth) {
        free (self->auth);
        free (self->plugin_dir);
        free (self->log_level);
        free (self);
        return NULL;
    }
    return self;
}

static void
s_clear_binds (config_t *self)
{
    for (int i = 0; i < self->bind_count; i++)
        free (self->binds [i]);
    self->bind_count = 0;
}

void
config_destroy (config_t **self_p)
{
    config_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    s_clear_binds (self);
    free (self->log_level);
    free (self->metrics_bind);
    free (self->file);
    free (self->plugins_json);
    free (self->data_dir);
    free (self->streams);
    free (self->streams_json);
    free (self->plugin_dir);
    free (self->auth);
    free (self->listeners_json);
    free (self->curve_server_cert);
    free (self->curve_clients_dir);
    free (self->plain_passwords);
    free (self->acl_file);
    free (self);
}

static size_t
s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > 64 || lb > 64)
        return 99;
    size_t d [65][65];
    for (size_t i = 0; i <= la; i++)
        d [i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d [0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a [i - 1] == b [j - 1] ? 0 : 1;
            size_t best = d [i - 1][j] + 1;
            if (d [i][j - 1] + 1 < best)
                best = d [i][j - 1] + 1;
            if (d [i - 1][j - 1] + cost < best)
                best = d [i - 1][j - 1] + cost;
            d [i][j] = best;
        }
    return d [la][lb];
}

const char *
config_closest_key (const char *key)
{
    const char *best = NULL;
    size_t best_d = 99;
    for (const keydef_t *k = s_keys; k->key; k++) {
        size_t d = s_distance (key, k->key);
        if (d < best_d) {
            best_d = d;
            best = k->key;
        }
    }
    //  Only suggest what is plausibly a typo.
    return best_d <= 3 || (best && strstr (best, key)) ? best : NULL;
}

static const keydef_t *
s_find (const char *key)
{
    for (const keydef_t *k = s_keys; k->key; k++)
        if (strcmp (k->key, key) == 0)
            return k;
    return NULL;
}

static int
s_set_str (char **field, const char *value)
{
    char *copy = strdup (value);
    if (!copy)
        return -ENOMEM;
    free (*field);
    *field = copy;
    return 0;
}

static int
s_check_level (const char *value)
{
    const char *levels [] = { "debug", "info", "notice", "warning", "error" };
    for (int i = 0; i < 5; i++)
        if (strcmp (levels [i], value) == 0)
            return 0;
    return -EINVAL;
}

/*  ---- durable streams ("streams", "data_dir") ------------------------- */

typedef struct { const char *unit; double factor; } unit_t;

/*  A JSON number (times number_factor; whole when `whole`) or a string
    "<number><unit>" from units, as a whole count in [0, max].  One reader
    for sizes and durations, so both keep the same bounds.                  */
static int
s_parse_units (const cJSON *item, double number_factor, bool whole, const unit_t *units,
               size_t unit_count, double max, int64_t *out)
{
    double v, factor = number_factor;
    if (cJSON_IsNumber (item)) {
        v = item->valuedouble;
        //  Range before the cast: converting a huge double is undefined.
        if (!(v >= 0 && v * factor <= max) || (whole && v != (double) (int64_t) v))
            return -EINVAL;
    }
    else
    if (cJSON_IsString (item)) {
        char *end;
        v = strtod (item->valuestring, &end);
        if (end == item->valuestring)
            return -EINVAL;
        while (*end == ' ')
            end++;
        size_t i = 0;
        while (i < unit_count && strcmp (end, units [i].unit) != 0)
            i++;
        if (i == unit_count)
            return -EINVAL;
        factor = units [i].factor;
    }
    else
        return -EINVAL;
    double total = v * factor;
    if (!(v >= 0 && total <= max))
        return -EINVAL;
    *out = (int64_t) total;
    return 0;
}

/*  Sizes: a whole number of bytes, or a string "<number><unit>" with B,
    KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024).       */
int
config_parse_size (const void *json_item, int64_t *out)
{
    static const unit_t units [] = {
        { "", 1 }, { "B", 1 }, { "KB", 1e3 }, { "MB", 1e6 }, { "GB", 1e9 }, { "TB", 1e12 },
        { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
        { "TiB", 1099511627776.0 }, { "k", 1e3 }, { "K", 1024.0 }, { "M", 1048576.0 },
        { "G", 1073741824.0 }
    };
    return s_parse_units (json_item, 1, true, units, sizeof units / sizeof units [0], 9e18, out);
}

/*  Durations: a number of seconds, or a string "<number><unit>" with ms,
    s, m, h, d or w.  At most 9e15 ms (some 285,000 years), so that the
    store can take it in microseconds without overflowing.                   */
int
config_parse_duration_ms (const void *json_item, int64_t *out)
{
    static const unit_t units [] = {
        { "ms", 1 }, { "s", 1e3 }, { "m", 60e3 }, { "min", 60e3 }, { "h", 3600e3 },
        { "d", 86400e3 }, { "w", 604800e3 }
    };
    return s_parse_units (json_item, 1e3, false, units, sizeof units / sizeof units [0], 9e15,
                          out);
}

/*  One stream object into sc; err names the field.                         */
static int
s_parse_stream (const cJSON *obj, stream_config_t *sc, char *err, size_t err_size)
{
    memset (sc, 0, sizeof *sc);
    sc->sync = STREAM_SYNC_ALWAYS;
    sc->sync_interval_ms = 1000;
    sc->max_cursors = 1000;
    if (!cJSON_IsObject (obj)) {
        snprintf (err, err_size, "must be an object like {\"name\": \"payments\", \"patterns\": [\"payment.#\"]}");
        return -EINVAL;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (obj, "name");
    if (!cJSON_IsString (name)) {
        snprintf (err, err_size, "'name' is required (a string)");
        return -EINVAL;
    }
    size_t len = strlen (name->valuestring);
    if (len == 0 || len > 64 || strspn (name->valuestring,
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len) {
        snprintf (err, err_size, "name '%.80s' must be 1..64 of A-Z a-z 0-9 _ -", name->valuestring);
        return -EINVAL;
    }
    memcpy (sc->name, name->valuestring, len + 1);
    const cJSON *item;
    cJSON_ArrayForEach (item, obj) {
        const char *key = item->string;
        if (strcmp (key, "name") == 0)
            continue;
        if (strcmp (key, "patterns") == 0) {
            if (!cJSON_IsArray (item) || cJSON_GetArraySize (item) < 1
            ||  cJSON_GetArraySize (item) > STREAM_MAX_PATTERNS) {
                snprintf (err, err_size, "stream '%s': 'patterns' must be an array of 1..%d patterns",
                          sc->name, STREAM_MAX_PATTERNS);
                return -EINVAL;
            }
            const cJSON *p;
            cJSON_ArrayForEach (p, item) {
                const char *why = NULL;
                if (!cJSON_IsString (p)
                ||  busp_pattern_check (p->valuestring, strlen (p->valuestring), &why)) {
                    snprintf (err, err_size, "stream '%s': pattern '%.100s' is not valid%s%s",
                              sc->name, cJSON_IsString (p) ? p->valuestring : "?",
                              why ? ": " : "", why ? why : "");
                    return -EINVAL;
                }
                snprintf (sc->patterns [sc->pattern_count++], 256, "%s", p->valuestring);
            }
        }
        else
        if (strcmp (key, "max_events") == 0) {
            if (!cJSON_IsNumber (item) || item->valuedouble < 0 || item->valuedouble > 9e18
            ||  item->valuedouble != (double) (int64_t) item->valuedouble) {
                snprintf (err, err_size, "stream '%s': 'max_events' must be a whole number >= 0 (0: no limit)",
                          sc->name);
                return -EINVAL;
            }
            sc->max_events = (int64_t) item->valuedouble;
        }
        else
        if (strcmp (key, "max_bytes") == 0) {
            if (config_parse_size (item, &sc->max_bytes)) {
                snprintf (err, err_size, "stream '%s': 'max_bytes' must be a size like \"10GiB\", \"500MB\" or a number of bytes",
                          sc->name);
                return -EINVAL;
            }
        }
        else
        if (strcmp (key, "max_age") == 0) {
            if (config_parse_duration_ms (item, &sc->max_age_ms)) {
                snprintf (err, err_size, "stream '%s': 'max_age' must be a duration like \"7d\", \"12h\", \"90s\" or a number of seconds",
                          sc->name);
                return -EINVAL;
            }
        }
        else
        if (strcmp (key, "sync") == 0) {
            const char *v = cJSON_IsString (item) ? item->valuestring : "";
            if (strcmp (v, "always") == 0)
                sc->sync = STREAM_SYNC_ALWAYS;
            else
            if (strcmp (v, "interval") == 0)
                sc->sync = STREAM_SYNC_INTERVAL;
            else
            if (strcmp (v, "never") == 0)
                sc->sync = STREAM_SYNC_NEVER;
            else {
                snprintf (err, err_size, "stream '%s': 'sync' must be one of always, interval, never",
                          sc->name);
                return -EINVAL;
            }
        }
        else
        if (strcmp (key, "sync_interval_ms") == 0) {
            if (!cJSON_IsNumber (item) || item->valuedouble < 1 || item->valuedouble > 3600000
            ||  item->valuedouble != (double) (int64_t) item->valuedouble) {
                snprintf (err, err_size, "stream '%s': 'sync_interval_ms' must be a whole number 1..3600000",
                          sc->name);
                return -EINVAL;
            }
            sc->sync_interval_ms = (int64_t) item->valuedouble;
        }
        else
        if (strcmp (key, "max_cursors") == 0) {
            //  Each new durable name is a cursor kept on disk until the
            //  stream is deleted: the client picks the names, so a bound.
            if (!cJSON_IsNumber (item) || item->valuedouble < 1 || item->valuedouble > 1000000
            ||  item->valuedouble != (double) (int64_t) item->valuedouble) {
                snprintf (err, err_size, "stream '%s': 'max_cursors' must be a whole number 1..1000000",
                          sc->name);
                return -EINVAL;
            }
            sc->max_cursors = (int64_t) item->valuedouble;
        }
        else {
            snprintf (err, err_size, "stream '%s': unknown key '%.60s' (known: name, patterns, max_events, max_bytes, max_age, sync, sync_interval_ms, max_cursors)",
                      sc->name, key);
            return -EINVAL;
        }
    }
    if (sc->pattern_count == 0) {
        snprintf (err, err_size, "stream '%s': 'patterns' is required (e.g. [\"payment.#\"])", sc->name);
        return -EINVAL;
    }
    return 0;
}

static int
s_apply_streams (config_t *self, const cJSON *item, char *err, size_t err_size)
{
    if (!cJSON_IsArray (item)) {
        snprintf (err, err_size, "must be an array of stream objects");
        return -EINVAL;
    }
    int count = cJSON_GetArraySize (item);
    stream_config_t *streams = calloc (count ? (size_t) count : 1, sizeof (stream_config_t));
    if (!streams)
        return -ENOMEM;
    int n = 0;
    const cJSON *obj;
    cJSON_ArrayForEach (obj, item) {
        char why [400];
        if (s_parse_stream (obj, &streams [n], why, sizeof why)) {
            snprintf (err, err_size, "entry %d: %.200s", n + 1, why);
            free (streams);
            return -EINVAL;
        }
        for (int i = 0; i < n; i++)
            if (strcmp (streams [i].name, streams [n].name) == 0) {
                snprintf (err, err_size, "entry %d: stream name '%s' is used twice", n + 1,
                          streams [n].name);
                free (streams);
                return -EINVAL;
            }
        n++;
    }
    char *text = cJSON_PrintUnformatted (item);
    if (!text) {
        free (streams);
        return -ENOMEM;
    }
    free (self->streams);
    free (self->streams_json);
    self->streams = streams;
    self->stream_count = n;
    self->streams_json = text;
    return 0;
}

/*  Apply one JSON value to the field of k.  err gets the reason.            */
static int
s_apply (config_t *self, const keydef_t *k, const cJSON *item, char *err, size_t err_size)
{
    void *field = (char *) self + k->offset;
    switch (k->type) {
        case T_INT:
        case T_DOUBLE: {
            if (!cJSON_IsNumber (item)) {
                snprintf (err, err_size, "must be a number");
                return -EINVAL;
            }
            double v = item->valuedouble;
            //  Range first: converting a double outside int64_t's range
            //  (1e300) to check that it is whole would be undefined.
            if (!(v >= k->min && v <= k->max)) {
                snprintf (err, err_size, "%g is out of range %.0f..%.0f", v, k->min, k->max);
                return -EINVAL;
            }
            if (k->type == T_INT && v != (double) (int64_t) v) {
                snprintf (err, err_size, "must be a whole number");
                return -EINVAL;
            }
            if (k->type == T_INT)
                *(int64_t *) field = (int64_t) v;
            else
                *(double *) field = v;
            return 0;
        }
        case T_BOOL:
            if (!cJSON_IsBool (item)) {
                snprintf (err, err_size, "must be true or false");
                return -EINVAL;
            }
            *(bool *) field = cJSON_IsTrue (item);
            return 0;
        case T_STR:
            if (cJSON_IsNull (item) && (strcmp (k->key, "metrics_bind") == 0
                                    ||  strcmp (k->key, "data_dir") == 0)) {
                free (*(char **) field);
                *(char **) field = NULL;
                return 0;
            }
            //  Security files may be switched off again with null.
            if (cJSON_IsNull (item) && k->reloadable && strcmp (k->key, "log_level") != 0) {
                free (*(char **) field);
                *(char **) field = NULL;
                return 0;
            }
            if (!cJSON_IsString (item)) {
                snprintf (err, err_size, "must be a string");
                return -EINVAL;
            }
            char bad_addr [160];
            if (strcmp (k->key, "metrics_bind") == 0
            &&  busp_hostport_check (item->valuestring, bad_addr, sizeof bad_addr)) {
                snprintf (err, err_size, "'%s': %s", item->valuestring, bad_addr);
                return -EINVAL;
            }
            if (strcmp (k->key, "plugin_dir") == 0 && !*item->valuestring) {
                snprintf (err, err_size, "must be a directory (relative: to the configuration "
                          "file's directory)");
                return -EINVAL;
            }
            if (strcmp (k->key, "log_level") == 0 && s_check_level (item->valuestring)) {
                snprintf (err, err_size, "'%s' is not one of debug, info, notice, warning, error",
                          item->valuestring);
                return -EINVAL;
            }
            return s_set_str ((char **) field, item->valuestring);
        case T_BINDS: {
            char why [160];
            if (cJSON_IsString (item)) {
                if (busp_endpoint_check (item->valuestring, true, why, sizeof why)) {
                    snprintf (err, err_size, "'%s': %s", item->valuestring, why);
                    return -EINVAL;
                }
                s_clear_binds (self);
                self->binds [0] = strdup (item->valuestring);
                self->bind_count = self->binds [0] ? 1 : 0;
                return self->bind_count ? 0 : -ENOMEM;
            }
            if (!cJSON_IsArray (item) || cJSON_GetArraySize (item) == 0
            ||  cJSON_GetArraySize (item) > CONFIG_MAX_BINDS) {
                snprintf (err, err_size, "must be an endpoint string or an array of 1..%d endpoints",
                          CONFIG_MAX_BINDS);
                return -EINVAL;
            }
            const cJSON *ep;
            cJSON_ArrayForEach (ep, item) {
                if (!cJSON_IsString (ep)) {
                    snprintf (err, err_size, "every entry must be an endpoint like tcp://127.0.0.1:7460");
                    return -EINVAL;
                }
                if (busp_endpoint_check (ep->valuestring, true, why, sizeof why)) {
                    snprintf (err, err_size, "'%s': %s", ep->valuestring, why);
                    return -EINVAL;
                }
            }
            s_clear_binds (self);
            cJSON_ArrayForEach (ep, item) {
                self->binds [self->bind_count] = strdup (ep->valuestring);
                if (!self->binds [self->bind_count])
                    return -ENOMEM;
                self->bind_count++;
            }
            return 0;
        }
        case T_PLUGINS: {
            if (!cJSON_IsArray (item)) {
                snprintf (err, err_size, "must be an array of %s objects",
                          strcmp (k->key, "listeners") == 0 ? "listener" : "plugin");
                return -EINVAL;
            }
            char *text = cJSON_PrintUnformatted (item);
            if (!text)
                return -ENOMEM;
            free (*(char **) field);
            *(char **) field = text;
            return 0;
        }
        case T_STREAMS:
            return s_apply_streams (self, item, err, err_size);
    }
    return -EINVAL;
}

/*  Replace line comments (//) and block comments outside strings with
    spaces, keeping the newlines, so the text parses as plain JSON at the
    same offsets.                                                            */
static void
s_blank_comments (char *text)
{
    char *p = text;
    while (*p) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p [1])
                    p++;
            if (*p)
                p++;
        }
        else
        if (p [0] == '/' && p [1] == '/') {
            while (*p && *p != '\n')
                *p++ = ' ';
        }
        else
        if (p [0] == '/' && p [1] == '*') {
            p [0] = p [1] = ' ';
            for (p += 2; *p && !(p [0] == '*' && p [1] == '/'); p++)
                if (*p != '\n')
                    *p = ' ';
            if (*p) {
                p [0] = p [1] = ' ';
                p += 2;
            }
        }
        else
            p++;
    }
}

/*  1-based line of position at in text.                                    */
static int
s_line_at (const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at; p++)
        if (*p == '\n')
            line++;
    return line;
}

/*  1-based line of the first occurrence of "key" in the text (comments
    blanked): good enough to point an operator at the right place.           */
static int
s_line_of (const char *text, const char *key)
{
    char quoted [300];
    snprintf (quoted, sizeof quoted, "\"%s\"", key);
    const char *at = strstr (text, quoted);
    return at ? s_line_at (text, at) : 0;
}

int
config_load_file (config_t *self, const char *path, char *errors, size_t errors_size)
{
    errors [0] = 0;
    char *text = NULL;
    size_t size = 0;
    int rc = busp_read_file (path, &text, &size);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        busp_appendf (errors, errors_size, "%s: cannot open: %s\n", path, strerror (-rc));
        return -EINVAL;
    }
    if (size == 0) {
        free (text);
        busp_appendf (errors, errors_size, "%s: the file is empty (expected a JSON object)\n",
                      path);
        return -EINVAL;
    }
    //  Operators expect to write // and block comments.  They are blanked
    //  rather than removed (cJSON_Minify would also squeeze out whitespace),
    //  so offsets in the parsed text are offsets in the file and line
    //  numbers come straight from it.
    s_blank_comments (text);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts (text, &end, 1);
    if (!root) {
        if (!end || end < text || end > text + size)
            end = text + size;
        //  cJSON may stop past the culprit (at the end of the text, or
        //  after whitespace): point at the last thing it read.
        const char *at = end;
        while (at > text && (*at == 0 || strchr (" \t\r\n", *at)))
            at--;
        int line = s_line_at (text, at);
        int near = (int) strcspn (at, "\r\n");
        if (near > 20)
            near = 20;
        if (*at && !strchr (" \t\r\n", *at))
            busp_appendf (errors, errors_size, "%s:%d: JSON syntax error near '%.*s'\n",
                          path, line, near, at);
        else
            busp_appendf (errors, errors_size, "%s:%d: JSON syntax error (the text ends early)\n",
                          path, line);
        free (text);
        return -EINVAL;
    }
    rc = 0;
    if (!cJSON_IsObject (root)) {
        busp_appendf (errors, errors_size, "%s: the top level must be a JSON object\n", path);
        rc = -EINVAL;
    }
    const cJSON *item;
    if (rc == 0)
    cJSON_ArrayForEach (item, root) {
        const keydef_t *k = s_find (item->string);
        int line = s_line_of (text, item->string);
        if (!k) {
            const char *hint = config_closest_key (item->string);
            busp_appendf (errors, errors_size, "%s:%d: unknown key '%s'%s%s%s\n", path, line,
                          item->string, hint ? " (did you mean '" : "", hint ? hint : "",
                          hint ? "'?)" : "");
            rc = -EINVAL;
            continue;
        }
        char err [256] = "";
        if (s_apply (self, k, item, err, sizeof err)) {
            busp_appendf (errors, errors_size, "%s:%d: key '%s': %s\n", path, line, k->key, err);
            rc = -EINVAL;
        }
    }
    cJSON_Delete (root);
    free (text);
    if (rc == 0) {
        free (self->file);
        self->file = strdup (path);
    }
    return rc;
}

int
config_set (config_t *self, const char *key, const char *value, char *err, size_t err_size)
{
    const keydef_t *k = s_find (key);
    if (!k) {
        snprintf (err, err_size, "unknown setting '%s'", key);
        return -EINVAL;
    }
    cJSON *item = NULL;
    if (k->type == T_INT || k->type == T_DOUBLE) {
        char *end;
        double v = strtod (value, &end);
        if (end == value || *end) {
            snprintf (err, err_size, "%s: '%s' is not a number", key, value);
            return -EINVAL;
        }
        item = cJSON_CreateNumber (v);
    }
    else
    if (k->type == T_BOOL) {
        bool yes = strcmp (value, "true") == 0 || strcmp (value, "1") == 0;
        if (!yes && strcmp (value, "false") != 0 && strcmp (value, "0") != 0) {
            snprintf (err, err_size, "%s: '%s' is not true or false", key, value);
            return -EINVAL;
        }
        item = cJSON_CreateBool (yes);
    }
    else
    if (k->type == T_BINDS) {
        //  Repeated --bind flags accumulate (the first replaces the default).
        if (self->bind_count >= CONFIG_MAX_BINDS) {
            snprintf (err, err_size, "at most %d endpoints", CONFIG_MAX_BINDS);
            return -EINVAL;
        }
        char why [160];
        if (busp_endpoint_check (value, true, why, sizeof why)) {
            snprintf (err, err_size, "bind: '%s': %s", value, why);
            return -EINVAL;
        }
        self->binds [self->bind_count] = strdup (value);
        if (!self->binds [self->bind_count])
            return -ENOMEM;
        self->bind_count++;
        return 0;
    }
    else
        item = cJSON_CreateString (value);
    if (!item)
        return -ENOMEM;
    char why [200] = "";
    int rc = s_apply (self, k, item, why, sizeof why);
    if (rc)
        snprintf (err, err_size, "%s: %s", key, why);
    cJSON_Delete (item);
    return rc;
}

int
config_validate (const config_t *self, char *errors, size_t errors_size)
{
    int rc = 0;
    const char *where = self->file ? self->file : "configuration";
    if (self->heartbeat_ms >= self->session_timeout_ms) {
        busp_appendf (errors, errors_size,
                      "%s: heartbeat_ms (%lld) must be smaller than session_timeout_ms (%lld)\n",
                      where, (long long) self->heartbeat_ms, (long long) self->session_timeout_ms);
        rc = -EINVAL;
    }
    if (self->backoff_initial_ms > self->backoff_max_ms) {
        busp_appendf (errors, errors_size,
                      "%s: backoff_initial_ms (%lld) must not exceed backoff_max_ms (%lld)\n",
                      where, (long long) self->backoff_initial_ms,
                      (long long) self->backoff_max_ms);
        rc = -EINVAL;
    }
    if (self->stream_count > 0 && !self->data_dir) {
        busp_appendf (errors, errors_size,
                      "%s: streams are configured but data_dir is not: set \"data_dir\" (e.g. /var/lib/busd)\n",
                      where);
        rc = -EINVAL;
    }
    return rc;
}

static int s_diff (const config_t *old, const config_t *cur, char *out, size_t size, bool all);

int
config_diff (const config_t *old, const config_t *cur, char *restart_needed, size_t size)
{
    return s_diff (old, cur, restart_needed, size, false);
}

int
config_changed_keys (const config_t *old, const config_t *cur, char *names, size_t size)
{
    return s_diff (old, cur, names, size, true);
}

/*  The keys that differ: all of them (all true), or those a reload cannot
    change, comma-separated into out; returns how many differ.              */
static int
s_diff (const config_t *old, const config_t *cur, char *out, size_t size, bool all)
{
    int changed = 0;
    char *restart_needed = out;
    restart_needed [0] = 0;
    for (const keydef_t *k = s_keys; k->key; k++) {
        const char *a = (const char *) old + k->offset;
        const char *b = (const char *) cur + k->offset;
        bool differs = false;
        switch (k->type) {
            case T_INT: differs = *(int64_t *) a != *(int64_t *) b; break;
            case T_DOUBLE: differs = *(double *) a != *(double *) b; break;
            case T_BOOL: differs = *(bool *) a != *(bool *) b; break;
            case T_STR:
            case T_STREAMS:
            case T_PLUGINS: {
                const char *sa = *(char **) a, *sb = *(char **) b;
                differs = (sa == NULL) != (sb == NULL) || (sa && strcmp (sa, sb));
                break;
            }
            case T_BINDS:
                differs = old->bind_count != cur->bind_count;
                for (int i = 0; !differs && i < old->bind_count; i++)
                    differs = strcmp (old->binds [i], cur->binds [i]) != 0;
                break;
        }
        if (differs) {
            changed++;
            if (all || !k->reloadable)
                busp_appendf (restart_needed, size, "%s%s", restart_needed [0] ? ", " : "", k->key);
        }
    }
    return changed;
}
