/*  busd-plugin-driver.c — run a busd plugin without a broker, for plugin
    authors and tests (doc/plugins.md, "Testing a plugin").

    It loads the plugin with busd's own loader (the same dlopen flags, ABI
    checks and messages) and hands it busd's own host table, so the config
    accessors answer exactly as they will inside busd (a 1.5 is not an
    integer, a dotted key finds a nested value) and check_config is the
    one busd --check-config runs.  Then it feeds the plugin commands and
    prints what it answered, one line each, so a script can drive it step
    by step:

        busd-plugin-driver [-c CONFIG.json] [-n NAME] [-q] [--check] PLUGIN [COMMAND...]

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
#include "busd/plugin.h"
#include "entry.h"
#include "instance.h"
#include "loader.h"
#include "util.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/*  sysexits.h values: scripts can tell a bad plugin from a bad config.    */
#define EXIT_USAGE      64
#define EXIT_DATAERR    65
#define EXIT_NOINPUT    66
#define EXIT_UNAVAILABLE 69
#define EXIT_CONFIG     78

static int
s_publish_sink (const char *instance, const char *topic, const void *payload, size_t size,
                const char *headers_json, const char *msg_id)
{
    (void) payload;
    fprintf (stderr, "[%s] publish %s (%zu bytes, msg_id %s, headers %s)\n", instance, topic,
             size, msg_id && *msg_id ? msg_id : "-", headers_json ? headers_json : "-");
    return 0;
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

static uint64_t
s_number (const cJSON *cmd, const char *key, uint64_t dflt)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (cmd, key);
    return cJSON_IsNumber (item) && item->valuedouble >= 0 ? (uint64_t) item->valuedouble : dflt;
}

static int
s_command (plugin_instance_t *instance, const char *line, uint64_t *delivery_id)
{
    cJSON *cmd = cJSON_Parse (line);
    if (!cJSON_IsObject (cmd)) {
        fprintf (stderr, "busd-plugin-driver: not a JSON object: %s\n", line);
        cJSON_Delete (cmd);
        return -EINVAL;
    }
    int rc = 0;
    const cJSON *verb = cJSON_GetObjectItemCaseSensitive (cmd, "cmd");
    if (cJSON_IsString (verb)) {
        if (strcmp (verb->valuestring, "reload") == 0)
            printf ("RELOAD %d\n", plugin_instance_drive_reload (instance));
        else
        if (strcmp (verb->valuestring, "tick") == 0) {
            plugin_instance_drive_tick (instance);
            printf ("TICK\n");
        }
        else {
            fprintf (stderr, "busd-plugin-driver: unknown cmd \"%s\" (reload, tick)\n",
                     verb->valuestring);
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
        fprintf (stderr, "busd-plugin-driver: an event needs \"topic\": %s\n", line);
        cJSON_Delete (cmd);
        return -EINVAL;
    }
    unsigned char *bytes = NULL;
    size_t size = 0;
    if (cJSON_IsString (payload64)) {
        bytes = busp_base64_decode (payload64->valuestring, &size);
        if (!bytes) {
            fprintf (stderr, "busd-plugin-driver: \"payload_base64\" is not base64\n");
            cJSON_Delete (cmd);
            return -EINVAL;
        }
    }
    char *headers_text = headers ? cJSON_PrintUnformatted (headers) : NULL;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive (cmd, "ts_us");
    busd_plugin_event_t event = {
        .topic = topic->valuestring,
        .payload = bytes ? (const void *) bytes
                 : cJSON_IsString (payload) ? payload->valuestring : "",
        .size = bytes ? size : cJSON_IsString (payload) ? strlen (payload->valuestring) : 0,
        .msg_id = cJSON_IsString (msg_id) ? msg_id->valuestring : "",
        .headers_json = headers_text,
        .attempt = (uint16_t) s_number (cmd, "attempt", 1),
        .stream_seq = s_number (cmd, "stream_seq", 0),
        .ts_us = cJSON_IsNumber (ts) ? (int64_t) ts->valuedouble : s_now_us (),
        .delivery_id = s_number (cmd, "delivery_id", *delivery_id + 1)
    };
    *delivery_id = event.delivery_id;
    char reason [1024];
    uint32_t delay_ms = 0;
    busd_plugin_result_t result = plugin_instance_drive_event (instance, &event, reason,
                                                               sizeof reason, &delay_ms);
    switch (result) {
        case BUSD_PLUGIN_OK:
            printf ("OK\n");
            break;
        case BUSD_PLUGIN_RETRY:
            printf ("RETRY %" PRIu32 " ", delay_ms);
            s_print_reason (reason);
            putchar ('\n');
            break;
        case BUSD_PLUGIN_FAIL:
            printf ("FAIL ");
            s_print_reason (reason);
            putchar ('\n');
            break;
        case BUSD_PLUGIN_FATAL:
            printf ("FATAL ");
            s_print_reason (reason);
            putchar ('\n');
            break;
        default:
            printf ("INVALID %d\n", (int) result);
            rc = -EINVAL;
    }
    fflush (stdout);
    cJSON_free (headers_text);
    free (bytes);
    cJSON_Delete (cmd);
    return rc;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
"Usage: busd-plugin-driver [-c CONFIG.json] [-n NAME] [-q] [--check] PLUGIN [COMMAND...]\n"
"Run a busd plugin without a broker: load it as busd does, give it busd's own\n"
"host functions and CONFIG.json as its \"config\", then feed it commands.\n"
"PLUGIN is a file (a path with a '/') or the name of an installed plugin.\n\n"
"  -c, --config FILE   the plugin's \"config\" object (comments allowed)\n"
"  -n, --name NAME     the instance name (default: the plugin file's base name)\n"
"  -q, --quiet         no debug logs\n"
"      --check         only run the plugin's check_config, as busd --check-config\n"
"                      does: print CONFIG OK, or CONFIG <problem> per problem\n"
"  -h, --help          this help\n"
"  -V, --version       version and plugin ABI\n\n"
"Commands (JSON, from the arguments or one per line on stdin):\n"
"  {\"topic\":\"a.b\",\"payload\":\"text\"}  an event; also payload_base64, msg_id,\n"
"                                   headers, attempt, ts_us, delivery_id, stream_seq\n"
"  {\"cmd\":\"reload\"}  {\"cmd\":\"tick\"}\n"
"Answers on stdout: OK | RETRY <delay_ms> <reason> | FAIL <reason> |\n"
"FATAL <reason> | RELOAD <rc> | TICK; logs, publishes and metrics on stderr.\n\n"
"Exit status: 0 done, 1 a command was invalid, 2 init failed, 64 usage,\n"
"65 the config is not a JSON object, 66 it cannot be read, 69 the plugin\n"
"cannot be loaded, 78 --check found problems.\n");
}

/*  The instance name: -n, else the plugin file's base name without .so.    */
static void
s_default_name (const char *plugin, char *name, size_t size)
{
    const char *base = strrchr (plugin, '/');
    base = base ? base + 1 : plugin;
    size_t len = strlen (base);
    if (len > 3 && strcmp (base + len - 3, ".so") == 0)
        len -= 3;
    snprintf (name, size, "%.*s", (int) len, base);
}

int
main (int argc, char *argv [])
{
    static const struct option options [] = {
        { "config",  required_argument, NULL, 'c' },
        { "name",    required_argument, NULL, 'n' },
        { "quiet",   no_argument,       NULL, 'q' },
        { "check",   no_argument,       NULL, 'C' },
        { "help",    no_argument,       NULL, 'h' },
        { "version", no_argument,       NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *config_path = NULL, *name_arg = NULL;
    bool quiet = false, check = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "c:n:qhV", options, NULL)) != -1) {
        switch (opt) {
            case 'c': config_path = optarg; break;
            case 'n': name_arg = optarg; break;
            case 'q': quiet = true; break;
            case 'C': check = true; break;
            case 'h': s_usage (stdout); return 0;
            case 'V':
                printf ("busd-plugin-driver %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
                        BUSD_PLUGIN_ABI_MAJOR, BUSD_PLUGIN_ABI_MINOR);
                return 0;
            default:  s_usage (stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        s_usage (stderr);
        return EXIT_USAGE;
    }
    const char *plugin_arg = argv [optind++];
    plugin_log_set_level (quiet ? BUSD_LOG_INFO : BUSD_LOG_DEBUG);

    char *text = NULL;
    size_t text_size = 0;
    int rc = config_path ? busp_read_file (config_path, &text, &text_size) : 0;
    if (rc || (!config_path && !(text = strdup ("{}")))) {
        fprintf (stderr, "busd-plugin-driver: cannot read %s: %s\n",
                 config_path ? config_path : "config", strerror (rc ? -rc : ENOMEM));
        return EXIT_NOINPUT;
    }
    cJSON_Minify (text);        //  comments are allowed, as in busd.json
    cJSON *config = cJSON_Parse (text);
    free (text);
    if (!cJSON_IsObject (config)) {
        fprintf (stderr, "busd-plugin-driver: %s: not a JSON object\n", config_path);
        cJSON_Delete (config);
        return EXIT_DATAERR;
    }
    //  The entry busd would build for it: the same parse, the same path
    //  rules (a bare name is an installed plugin).
    char name [PLUGIN_NAME_MAX + 1];
    s_default_name (name_arg ? name_arg : plugin_arg, name, sizeof name);
    cJSON *item = cJSON_CreateObject ();
    cJSON_AddStringToObject (item, "name", name);
    cJSON_AddStringToObject (item, "path", plugin_arg);
    cJSON *patterns = cJSON_AddArrayToObject (item, "patterns");
    cJSON_AddItemToArray (patterns, cJSON_CreateString ("#"));
    cJSON_AddItemToObject (item, "config", config);
    char errors [4096] = "";
    plugin_entry_t *entry = NULL;
    rc = plugin_entry_parse (item, "busd-plugin-driver", NULL, BUSD_PLUGINDIR, 0, &entry,
                             errors, sizeof errors);
    cJSON_Delete (item);
    if (rc) {
        fputs (errors, stderr);
        return rc == -ENOMEM ? 1 : EXIT_USAGE;
    }
    char err [1024];
    plugin_module_t *module = plugin_module_load (entry->name, entry->path, "busd-plugin-driver",
                                                  false, err, sizeof err);
    if (!module) {
        fprintf (stderr, "busd-plugin-driver: %s\n", err);
        plugin_entry_destroy (&entry);
        return EXIT_UNAVAILABLE;
    }
    fprintf (stderr, "busd-plugin-driver: loaded %s %s (%s), plugin ABI %u.%u\n",
             module->desc.name, module->desc.version, module->desc.description,
             module->desc.abi_major, module->desc.abi_minor);
    int status = 0;
    if (check) {
        char problems [8192] = "";
        if (plugin_instance_check_config (module, entry, "CONFIG", problems, sizeof problems)) {
            //  "CONFIG: key 'config': problem" -> "CONFIG problem"
            for (char *line = strtok (problems, "\n"); line; line = strtok (NULL, "\n")) {
                const char *problem = strstr (line, "key 'config': ");
                printf ("CONFIG %s\n", problem ? problem + 14 : line);
            }
            status = EXIT_CONFIG;
        }
        else
            printf ("CONFIG OK%s\n", module->desc.check_config ? ""
                                     : " (the plugin has no check_config)");
        plugin_module_destroy (&module);
        plugin_entry_destroy (&entry);
        return status;
    }
    plugin_instance_t *instance = plugin_instance_new (module, entry, "inproc://busd-plugin-driver",
                                                       NULL, 1);
    if (!instance) {
        fprintf (stderr, "busd-plugin-driver: out of memory\n");
        plugin_module_destroy (&module);
        plugin_entry_destroy (&entry);
        return 1;
    }
    plugin_instance_set_publish_sink (instance, s_publish_sink);
    char reason [1024];
    rc = plugin_instance_drive_init (instance, reason, sizeof reason);
    if (rc) {
        printf ("INIT %d ", rc);
        s_print_reason (reason);
        putchar ('\n');
        fflush (stdout);
        status = 2;
    }
    else {
        uint64_t delivery_id = 0;
        if (optind < argc) {
            for (int i = optind; i < argc; i++)
                if (s_command (instance, argv [i], &delivery_id))
                    status = 1;
        }
        else {
            char *line = NULL;
            size_t cap = 0;
            ssize_t n;
            while ((n = getline (&line, &cap, stdin)) > 0) {
                while (n > 0 && (line [n - 1] == '\n' || line [n - 1] == '\r'))
                    line [--n] = 0;
                if (n > 0 && s_command (instance, line, &delivery_id))
                    status = 1;
            }
            free (line);
        }
        plugin_instance_drive_fini (instance);
        cJSON *metrics = cJSON_CreateObject ();
        plugin_instance_metrics (instance, metrics);
        const cJSON *metric;
        cJSON_ArrayForEach (metric, metrics)
            fprintf (stderr, "busd-plugin-driver: metric %s = %g\n", metric->string,
                     metric->valuedouble);
        cJSON_Delete (metrics);
    }
    plugin_instance_destroy (&instance);
    plugin_module_destroy (&module);
    plugin_entry_destroy (&entry);
    return status;
}
