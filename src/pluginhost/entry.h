/*  entry.h — one plugin entry of a configuration, parsed and checked.

    busd.json's "plugins" array and busd-plugin-host's --config file hold the
    same objects, so one parser serves both and an operator sees the same
    messages from `busd --check-config`, a SIGHUP and busd-plugin-host.  An
    entry is a plain value: it owns copies of everything, so the config it
    came from may be freed, and two entries compare by their canonical JSON
    (what a reload uses to decide whether a plugin changed).                 */
#ifndef BUSD_PLUGIN_ENTRY_H_INCLUDED
#define BUSD_PLUGIN_ENTRY_H_INCLUDED

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLUGIN_NAME_MAX         64
#define PLUGIN_PATTERNS_MAX     32
#define PLUGIN_INSTANCES_MAX    64

typedef struct {
    char *name;
    char *path;                 /*  resolved: absolute, or as the OS finds it */
    char **patterns;
    size_t pattern_count;
    char *config_json;          /*  the "config" object as text ("{}")      */
    int instances;
    uint32_t max_inflight;
    uint32_t ack_wait_ms;
    uint32_t max_deliver;
    bool enabled;
    char *canonical;            /*  the whole entry, for change detection    */
} plugin_entry_t;

/*  Flags for plugin_entry_parse.                                            */
#define PLUGIN_ENTRY_CHECK_FILE  1  /*  stat the resolved path              */
#define PLUGIN_ENTRY_HOST_KEYS   2  /*  also accept busd-plugin-host's keys
                                        ("endpoint")                        */

/*  Parse one entry.  where names it in messages ("busd.json: plugins[2]");
    base_dir resolves relative paths (NULL: the current directory);
    plugindir resolves bare names (NAME -> plugindir/NAME.so).  Every
    problem is appended to errors as one line naming where, the plugin and
    the key.  Returns 0 and sets *entry_p, or -EINVAL.                       */
int plugin_entry_parse (const cJSON *item, const char *where, const char *base_dir,
                        const char *plugindir, unsigned flags, plugin_entry_t **entry_p,
                        char *errors, size_t errors_size);

/*  Parse a whole "plugins" array (JSON text): each entry as above, plus
    unique names.  file is the configuration file (for messages and
    relative paths; NULL when none).  On success *list_p holds count
    entries (NULL when count is 0); free with plugin_entry_list_free.        */
int plugin_entry_list_parse (const char *json_text, const char *file, const char *plugindir,
                             unsigned flags, plugin_entry_t ***list_p, size_t *count_p,
                             char *errors, size_t errors_size);
void plugin_entry_list_free (plugin_entry_t ***list_p, size_t count);

plugin_entry_t *plugin_entry_dup (const plugin_entry_t *self);
void plugin_entry_destroy (plugin_entry_t **self_p);
bool plugin_entry_equal (const plugin_entry_t *a, const plugin_entry_t *b);

/*  The directory holding file, made absolute (for relative plugin paths);
    a malloc'd string, or NULL when it cannot be found.                      */
char *plugin_entry_base_dir (const char *file);

#endif
