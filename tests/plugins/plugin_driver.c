/*  plugin_driver.c — run a busd plugin without a broker, for tests and for
    plugin authors (doc/plugins.md, "Testing a plugin").

    A minimal host: dlopen the plugin exactly as busd does (RTLD_NOW |
    RTLD_LOCAL), check its descriptor the same way, hand it a host table
    whose config comes from a JSON file, then feed it commands and print
    what it answered, one line each, so a script can drive it step by step:

        plugin_driver [-c CONFIG.json] [-n NAME] [-q] PLUGIN.so [COMMAND...]

    Commands are JSON objects, from the arguments or else one per line on
    stdin:
        {"topic": "user.created", "payload": "text", "msg_id": "m1",
         "headers": {"k": "v"}, "attempt": 1, "ts_us": 0, "delivery_id": 7,
         "stream_seq": 0}               an event ("payload_base64" for bytes)
        {"cmd": "reload"}               call reload: prints RELOAD <rc>
        {"cmd": "tick"}                 call on_tick: prints TICK
    Event answers: OK | RETRY <delay_ms> <reason> | FAIL <reason> |
    FATAL <reason>.  A failed init prints INIT <rc> <reason> and exits 2.
    Logs, publishes and metrics go to stderr; stdout holds only answers.   */
#include <busd/plugin.h>

#include <cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define MAX_METRICS 32

struct busd_plugin_instance {
    const char *name;
    cJSON *config;
    char *config_text;
    bool quiet;                 //  debug logs off
    pthread_mutex_t lock;       //  host functions are thread-safe
    char reason [1024];
    uint32_t retry_delay_ms;
    struct { char name [64]; double value; } metrics [MAX_METRICS];
    int metric_count;
};

static void
s_log (busd_plugin_instance_t *self, int level, const char *format, ...)
{
    static const char *names [] = { "debug", "info", "notice", "warning", "error" };
    if (self->quiet && level < BUSD_LOG_INFO)
        return;
    char line [2048];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    fprintf (stderr, "[%s] %s: %s\n", self->name,
             level >= 0 && level <= BUSD_LOG_ERROR ? names [level] : "?", line);
}

//  The item at a dotted path ("smtp.host"), or NULL.
static const cJSON *
s_config_item (busd_plugin_instance_t *self, const char *key)
{
    const cJSON *item = self->config;
    char path [256];
    if (!key || strlen (key) >= sizeof path)
        return NULL;
    strcpy (path, key);
    char *save = NULL;
    for (char *part = strtok_r (path, ".", &save); part && item; part = strtok_r (NULL, ".", &save))
        item = cJSON_GetObjectItemCaseSensitive (item, part);
    return item;
}

static const char *
s_config_string (busd_plugin_instance_t *self, const char *key, const char *default_value)
{
    const cJSON *item = s_config_item (self, key);
    return cJSON_IsString (item) ? item->valuestring : default_value;
}

static int64_t
s_config_int (busd_plugin_instance_t *self, const char *key, int64_t default_value)
{
    const cJSON *item = s_config_item (self, key);
    return cJSON_IsNumber (item) ? (int64_t) item->valuedouble : default_value;
}

static double
s_config_double (busd_plugin_instance_t *self, const char *key, double default_value)
{
    const cJSON *item = s_config_item (self, key);
    return cJSON_IsNumber (item) ? item->valuedouble : default_value;
}

static bool
s_config_bool (busd_plugin_instance_t *self, const char *key, bool default_value)
{
    const cJSON *item = s_config_item (self, key);
    return cJSON_IsBool (item) ? cJSON_IsTrue (item) : default_value;
}

static const char *
s_config_json (busd_plugin_instance_t *self)
{
    return self->config_text;
}

static int
s_publish (busd_plugin_instance_t *self, const char *topic, const void *payload, size_t size,
           const char *headers_json, const char *msg_id, int timeout_ms)
{
    (void) payload;
    (void) timeout_ms;
    fprintf (stderr, "[%s] publish %s (%zu bytes, msg_id %s, headers %s)\n", self->name,
             topic, size, msg_id ? msg_id : "-", headers_json ? headers_json : "-");
    return 0;
}

static void
s_set_reason (busd_plugin_instance_t *self, const char *format, ...)
{
    pthread_mutex_lock (&self->lock);
    va_list args;
    va_start (args, format);
    vsnprintf (self->reason, sizeof self->reason, format, args);
    va_end (args);
    pthread_mutex_unlock (&self->lock);
}

static void
s_set_retry_delay (busd_plugin_instance_t *self, uint32_t delay_ms)
{
    pthread_mutex_lock (&self->lock);
    self->retry_delay_ms = delay_ms;
    pthread_mutex_unlock (&self->lock);
}

static void
s_metric_add (busd_plugin_instance_t *self, const char *name, double value)
{
    pthread_mutex_lock (&self->lock);
    int i = 0;
    while (i < self->metric_count && strcmp (self->metrics [i].name, name) != 0)
        i++;
    if (i == self->metric_count && i < MAX_METRICS) {
        snprintf (self->metrics [i].name, sizeof self->metrics [i].name, "%s", name);
        self->metrics [i].value = 0;
        self->metric_count++;
    }
    if (i < self->metric_count)
        self->metrics [i].value += value;
    pthread_mutex_unlock (&self->lock);
}

static const char *
s_instance_name (busd_plugin_instance_t *self)
{
    return self->name;
}

/*  The driver answers one event at a time, so it offers the 1.0 table:
    plugins that need the 1.1 functions (complete, publish_credit,
    publish_flush) see abi_minor 0 and say so from init.                   */
static const busd_plugin_host_t s_host = {
    .size = offsetof (busd_plugin_host_t, complete),
    .abi_major = BUSD_PLUGIN_ABI_MAJOR,
    .abi_minor = 0,
    .log = s_log,
    .config_string = s_config_string,
    .config_int = s_config_int,
    .config_double = s_config_double,
    .config_bool = s_config_bool,
    .config_json = s_config_json,
    .publish = s_publish,
    .set_reason = s_set_reason,
    .set_retry_delay = s_set_retry_delay,
    .metric_add = s_metric_add,
    .instance_name = s_instance_name
};

static char *
s_read_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream (&text, &size);
    char buf [4096];
    size_t n;
    while (mem && (n = fread (buf, 1, sizeof buf, file)) > 0)
        fwrite (buf, 1, n, mem);
    bool bad = ferror (file) != 0;
    fclose (file);
    if (!mem || fclose (mem) || bad) {
        free (text);
        return NULL;
    }
    return text;
}

static int
s_b64_value (int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

//  Decode base64 (padding optional) into a new buffer; NULL when invalid.
static unsigned char *
s_b64_decode (const char *text, size_t *size)
{
    size_t len = strlen (text);
    unsigned char *out = malloc (len / 4 * 3 + 3);
    if (!out)
        return NULL;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len && text [i] != '='; i++) {
        int v = s_b64_value ((unsigned char) text [i]);
        if (v < 0) {
            free (out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out [n++] = (unsigned char) (acc >> bits);
        }
    }
    *size = n;
    return out;
}

static int64_t
s_now_us (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}

//  Print a reason on one line, whatever it contains.
static void
s_print_reason (const char *reason)
{
    for (const char *p = reason; *p; p++)
        putchar (*p == '\n' || *p == '\r' ? ' ' : *p);
}

static int
s_command (const busd_plugin_t *plugin, void *state, busd_plugin_instance_t *self,
           const char *line, uint64_t *delivery_id)
{
    cJSON *cmd = cJSON_Parse (line);
    if (!cJSON_IsObject (cmd)) {
        fprintf (stderr, "plugin_driver: not a JSON object: %s\n", line);
        cJSON_Delete (cmd);
        return -EINVAL;
    }
    int rc = 0;
    const cJSON *verb = cJSON_GetObjectItemCaseSensitive (cmd, "cmd");
    if (cJSON_IsString (verb)) {
        if (strcmp (verb->valuestring, "reload") == 0)
            printf ("RELOAD %d\n", plugin->reload ? plugin->reload (state) : 0);
        else
        if (strcmp (verb->valuestring, "tick") == 0) {
            if (plugin->on_tick)
                plugin->on_tick (state);
            printf ("TICK\n");
        }
        else {
            fprintf (stderr, "plugin_driver: unknown cmd \"%s\" (reload, tick)\n", verb->valuestring);
            rc = -EINVAL;
        }
        fflush (stdout);
        cJSON_Delete (cmd);
        return rc;
    }
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive (cmd, "topic");
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive (cmd, "payload");
    const cJSON *payload64 = cJSON_GetObjectItemCaseSensitive (cmd, "payload_base64");
    const cJSON *msg_id = cJSON_GetObjectItemCaseSensitive (cmd, "msg_id");
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive (cmd, "headers");
    if (!cJSON_IsString (topic)) {
        fprintf (stderr, "plugin_driver: an event needs \"topic\": %s\n", line);
        cJSON_Delete (cmd);
        return -EINVAL;
    }
    unsigned char *bytes = NULL;
    size_t size = 0;
    if (cJSON_IsString (payload64)) {
        bytes = s_b64_decode (payload64->valuestring, &size);
        if (!bytes) {
            fprintf (stderr, "plugin_driver: \"payload_base64\" is not base64\n");
            cJSON_Delete (cmd);
            return -EINVAL;
        }
    }
    char *headers_text = headers ? cJSON_PrintUnformatted (headers) : NULL;
    const cJSON *item;
    busd_plugin_event_t event = {
        .topic = topic->valuestring,
        .payload = bytes ? (const void *) bytes
                 : cJSON_IsString (payload) ? payload->valuestring : "",
        .size = bytes ? size : cJSON_IsString (payload) ? strlen (payload->valuestring) : 0,
        .msg_id = cJSON_IsString (msg_id) ? msg_id->valuestring : "",
        .headers_json = headers_text,
        .attempt = (item = cJSON_GetObjectItemCaseSensitive (cmd, "attempt")) && cJSON_IsNumber (item)
                 ? (uint16_t) item->valueint : 1,
        .stream_seq = (item = cJSON_GetObjectItemCaseSensitive (cmd, "stream_seq")) && cJSON_IsNumber (item)
                    ? (uint64_t) item->valuedouble : 0,
        .ts_us = (item = cJSON_GetObjectItemCaseSensitive (cmd, "ts_us")) && cJSON_IsNumber (item)
               ? (int64_t) item->valuedouble : s_now_us (),
        .delivery_id = (item = cJSON_GetObjectItemCaseSensitive (cmd, "delivery_id")) && cJSON_IsNumber (item)
                     ? (uint64_t) item->valuedouble : ++*delivery_id
    };
    pthread_mutex_lock (&self->lock);
    self->reason [0] = 0;
    self->retry_delay_ms = 0;
    pthread_mutex_unlock (&self->lock);
    busd_plugin_result_t result = plugin->on_event (state, &event);
    pthread_mutex_lock (&self->lock);
    switch (result) {
        case BUSD_PLUGIN_OK:
            printf ("OK\n");
            break;
        case BUSD_PLUGIN_RETRY:
            printf ("RETRY %" PRIu32 " ", self->retry_delay_ms);
            s_print_reason (self->reason);
            putchar ('\n');
            break;
        case BUSD_PLUGIN_FAIL:
            printf ("FAIL ");
            s_print_reason (self->reason);
            putchar ('\n');
            break;
        case BUSD_PLUGIN_FATAL:
            printf ("FATAL ");
            s_print_reason (self->reason);
            putchar ('\n');
            break;
        default:
            printf ("INVALID %d\n", (int) result);
            rc = -EINVAL;
    }
    pthread_mutex_unlock (&self->lock);
    fflush (stdout);
    cJSON_free (headers_text);
    free (bytes);
    cJSON_Delete (cmd);
    return rc;
}

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: plugin_driver [-c CONFIG.json] [-n NAME] [-q] PLUGIN.so [COMMAND...]\n"
                  "Commands (JSON, from the arguments or one per line on stdin):\n"
                  "  {\"topic\":\"a.b\",\"payload\":\"text\"}  an event; also payload_base64, msg_id,\n"
                  "                                   headers, attempt, ts_us, delivery_id, stream_seq\n"
                  "  {\"cmd\":\"reload\"}  {\"cmd\":\"tick\"}\n");
}

int
main (int argc, char *argv [])
{
    static const struct option options [] = {
        { "config", required_argument, NULL, 'c' },
        { "name",   required_argument, NULL, 'n' },
        { "quiet",  no_argument,       NULL, 'q' },
        { "help",   no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    struct busd_plugin_instance instance = { .name = "test" };
    pthread_mutex_init (&instance.lock, NULL);
    const char *config_path = NULL;
    int opt;
    while ((opt = getopt_long (argc, argv, "c:n:qh", options, NULL)) != -1) {
        switch (opt) {
            case 'c': config_path = optarg; break;
            case 'n': instance.name = optarg; break;
            case 'q': instance.quiet = true; break;
            case 'h': s_usage (stdout); return 0;
            default:  s_usage (stderr); return 64;
        }
    }
    if (optind >= argc) {
        s_usage (stderr);
        return 64;
    }
    const char *plugin_path = argv [optind++];

    char *text = config_path ? s_read_file (config_path) : strdup ("{}");
    if (!text) {
        fprintf (stderr, "plugin_driver: cannot read %s: %s\n", config_path, strerror (errno));
        return 66;
    }
    cJSON_Minify (text);        //  comments are allowed, as in busd.json
    instance.config = cJSON_Parse (text);
    free (text);
    if (!cJSON_IsObject (instance.config)) {
        fprintf (stderr, "plugin_driver: %s: not a JSON object\n", config_path);
        return 65;
    }
    instance.config_text = cJSON_PrintUnformatted (instance.config);

    void *dl = dlopen (plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf (stderr, "plugin_driver: dlopen %s: %s\n", plugin_path, dlerror ());
        return 69;
    }
    busd_plugin_entry_fn *entry;
    *(void **) &entry = dlsym (dl, BUSD_PLUGIN_ENTRY_SYMBOL);
    const busd_plugin_t *plugin = entry ? entry (&s_host) : NULL;
    if (!plugin) {
        fprintf (stderr, "plugin_driver: %s: no %s, or it returned NULL\n", plugin_path,
                 BUSD_PLUGIN_ENTRY_SYMBOL);
        return 69;
    }
    if (plugin->abi_major != BUSD_PLUGIN_ABI_MAJOR || plugin->abi_minor > BUSD_PLUGIN_ABI_MINOR
    ||  plugin->size < sizeof (busd_plugin_t) || !plugin->init || !plugin->on_event
    ||  !plugin->fini) {
        fprintf (stderr, "plugin_driver: %s: built for ABI %u.%u (this host: %d.%d), "
                 "size %u, or without init/on_event/fini\n", plugin_path, plugin->abi_major,
                 plugin->abi_minor, BUSD_PLUGIN_ABI_MAJOR, BUSD_PLUGIN_ABI_MINOR, plugin->size);
        return 69;
    }
    fprintf (stderr, "plugin_driver: loaded %s %s (%s)\n", plugin->name ? plugin->name : "?",
             plugin->version ? plugin->version : "?", plugin->description ? plugin->description : "");

    void *state = NULL;
    int rc = plugin->init (&instance, &s_host, &state);
    if (rc) {
        printf ("INIT %d ", rc);
        s_print_reason (instance.reason);
        putchar ('\n');
        fflush (stdout);
        dlclose (dl);
        cJSON_Delete (instance.config);
        cJSON_free (instance.config_text);
        return 2;
    }
    int status = 0;
    uint64_t delivery_id = 0;
    if (optind < argc) {
        for (int i = optind; i < argc; i++)
            if (s_command (plugin, state, &instance, argv [i], &delivery_id))
                status = 1;
    }
    else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline (&line, &cap, stdin)) > 0) {
            while (n > 0 && (line [n - 1] == '\n' || line [n - 1] == '\r'))
                line [--n] = 0;
            if (n > 0 && s_command (plugin, state, &instance, line, &delivery_id))
                status = 1;
        }
        free (line);
    }
    plugin->fini (state);
    for (int i = 0; i < instance.metric_count; i++)
        fprintf (stderr, "plugin_driver: metric %s = %g\n", instance.metrics [i].name,
                 instance.metrics [i].value);
    dlclose (dl);
    cJSON_Delete (instance.config);
    cJSON_free (instance.config_text);
    pthread_mutex_destroy (&instance.lock);
    return status;
}
