/*  plugins.c — busd's plugin host (see plugins.h).

    A plugin_t is one configured entry: its module (a dlopen'd file, shared
    by reference when several entries or an old and a new generation use
    the same file) and its instance threads.  On reload a changed entry is
    replaced new-first: the new generation joins the queue group
    "plugin.<name>" before the old one stops taking credit and drains, so
    the group never empties and nothing queued for it is lost.  The old
    generation moves to a retiring list; a timer on the broker's loop joins
    its threads once they have finished (after fini), and only then is the
    module released and, when unused, dlclosed.                              */
#include "plugins.h"
#include "clock.h"
#include "entry.h"
#include "instance.h"
#include "loader.h"
#include "util.h"
#include <limits.h>
#include <errno.h>

#define REAP_MS             50
#define JOIN_TIMEOUT_MS     3000
#define HANDOFF_MIN_MS      1000

typedef struct {
    plugin_module_t *module;
    int refs;
} modref_t;

typedef struct {
    plugin_entry_t *entry;
    modref_t *mod;              /*  NULL: disabled, or the load failed      */
    plugin_instance_t **instances;
    int count;
    plugin_state_t state;       /*  when there are no instances             */
    char error [600];
    /*  Retiring, replaced: it leaves the group only once the new generation
        has joined (or this deadline passes), so the group never empties.   */
    bool handoff_pending;
    int64_t handoff_deadline;
} plugin_t;

struct plugins {
    broker_t *broker;
    void *zmq_context;
    bool bound;
    zlistx_t *active;           /*  plugin_t *, in configuration order      */
    zlistx_t *retiring;         /*  plugin_t *, draining                    */
    zlistx_t *modules;          /*  modref_t *                              */
    int timer_id;
    bool timer_set;
    bool draining;
};

/*  ------------------------------------------------------------------
    Logging: plugin lines go to busd's log, at busd's level                 */

static void
s_log_sink (int level, const char *line)
{
    switch (level) {
        case BUSD_LOG_DEBUG:   log_debug ("%s", line); break;
        case BUSD_LOG_INFO:    log_info ("%s", line); break;
        case BUSD_LOG_NOTICE:  log_notice ("%s", line); break;
        case BUSD_LOG_WARNING: log_warning ("%s", line); break;
        default:               log_error ("%s", line); break;
    }
}

/*  ------------------------------------------------------------------
    Modules                                                                 */

/*  The module for path: a loaded one when it is still the same file, else
    a new load (fresh when an older build of that path is still mapped).    */
static modref_t *
s_module_get (plugins_t *self, const char *name, const char *path, char *err, size_t size)
{
    bool stale = false;
    modref_t *mod = zlistx_first (self->modules);
    while (mod) {
        if (plugin_module_same_file (mod->module, path)) {
            mod->refs++;
            return mod;
        }
        if (streq (mod->module->path, path))
            stale = true;
        mod = zlistx_next (self->modules);
    }
    plugin_module_t *module = plugin_module_load (name, path, "busd", stale, err, size);
    if (!module)
        return NULL;
    mod = calloc (1, sizeof (modref_t));
    if (!mod || !zlistx_add_end (self->modules, mod)) {
        free (mod);
        plugin_module_destroy (&module);
        snprintf (err, size, "plugin '%s': out of memory", name);
        return NULL;
    }
    mod->module = module;
    mod->refs = 1;
    log_info ("plugin '%s': loaded %s (%s %s, plugin ABI %u.%u)%s", name, path,
              module->desc.name, module->desc.version, module->desc.abi_major,
              module->desc.abi_minor, stale ? " beside its previous build" : "");
    return mod;
}

static void
s_module_put (plugins_t *self, modref_t **mod_p)
{
    modref_t *mod = *mod_p;
    if (!mod)
        return;
    *mod_p = NULL;
    if (--mod->refs > 0)
        return;
    void *handle = zlistx_find (self->modules, mod);
    if (handle)
        zlistx_delete (self->modules, handle);
    log_debug ("unloading %s", mod->module->path);
    plugin_module_destroy (&mod->module);
    free (mod);
}

/*  ------------------------------------------------------------------
    Plugins                                                                 */

static int
s_bind (plugins_t *self, char *err, size_t size)
{
    if (self->bound)
        return 0;
    if (zmq_bind (self->broker->router, PLUGINS_ENDPOINT) && errno != EADDRINUSE) {
        snprintf (err, size, "cannot bind %s for plugins: %s", PLUGINS_ENDPOINT,
                  zmq_strerror (errno));
        return -EINVAL;
    }
    self->bound = true;
    log_debug ("plugins connect over %s", PLUGINS_ENDPOINT);
    return 0;
}

static void
s_plugin_free (plugins_t *self, plugin_t **plugin_p)
{
    plugin_t *plugin = *plugin_p;
    if (!plugin)
        return;
    *plugin_p = NULL;
    for (int i = 0; i < plugin->count; i++)
        plugin_instance_destroy (&plugin->instances [i]);
    free (plugin->instances);
    s_module_put (self, &plugin->mod);
    plugin_entry_destroy (&plugin->entry);
    free (plugin);
}

/*  A plugin for entry, started when it can be.  Never NULL but when out of
    memory: a plugin that cannot run is kept to be shown in stats.           */
static plugin_t *
s_plugin_new (plugins_t *self, const plugin_entry_t *entry)
{
    plugin_t *plugin = calloc (1, sizeof (plugin_t));
    if (!plugin)
        return NULL;
    plugin->entry = plugin_entry_dup (entry);
    if (!plugin->entry) {
        free (plugin);
        return NULL;
    }
    if (!entry->enabled) {
        plugin->state = PLUGIN_STATE_DISABLED;
        snprintf (plugin->error, sizeof plugin->error, "disabled in the configuration");
        log_notice ("plugin '%s': disabled in the configuration", entry->name);
        return plugin;
    }
    plugin->state = PLUGIN_STATE_FAILED;
    if (s_bind (self, plugin->error, sizeof plugin->error)) {
        log_error ("plugin '%s': %s", entry->name, plugin->error);
        return plugin;
    }
    plugin->mod = s_module_get (self, entry->name, entry->path, plugin->error,
                                sizeof plugin->error);
    if (!plugin->mod) {
        log_error ("%s", plugin->error);
        return plugin;
    }
    plugin->instances = calloc ((size_t) entry->instances, sizeof (plugin_instance_t *));
    if (!plugin->instances) {
        snprintf (plugin->error, sizeof plugin->error, "out of memory");
        return plugin;
    }
    for (int i = 0; i < entry->instances; i++) {
        plugin_instance_t *instance = plugin_instance_new (plugin->mod->module, entry,
                                                           PLUGINS_ENDPOINT, self->zmq_context,
                                                           i + 1);
        if (!instance) {
            snprintf (plugin->error, sizeof plugin->error, "out of memory");
            log_error ("plugin '%s': out of memory", entry->name);
            break;
        }
        plugin->instances [plugin->count++] = instance;
        plugin_instance_start (instance);
    }
    if (plugin->count == entry->instances)
        plugin->error [0] = 0;
    return plugin;
}

/*  Ask every instance to stop; the reaper finishes the job.                 */
static void
s_plugin_stop (plugins_t *self, plugin_t *plugin, plugin_stop_t how)
{
    int64_t drain = self->broker->config->drain_timeout_ms;
    if (how == PLUGIN_STOP_HANDOFF && drain < HANDOFF_MIN_MS)
        drain = HANDOFF_MIN_MS;
    //  At shutdown the broker stops reading at drain_timeout_ms: leave the
    //  instances time to UNSUB before that.
    if (how == PLUGIN_STOP_SHUTDOWN)
        drain = drain * 4 / 5;
    int64_t deadline = busp_mono_ms () + drain;
    for (int i = 0; i < plugin->count; i++)
        plugin_instance_stop (plugin->instances [i], how, deadline);
}

static bool
s_plugin_alive (plugin_t *plugin)
{
    for (int i = 0; i < plugin->count; i++)
        if (plugin_instance_alive (plugin->instances [i]))
            return true;
    return false;
}

/*  True when a session name is one of this plugin's instance clients
    ("plugin.<name>" or "plugin.<name>/<index>", instance.c).               */
static bool
s_instance_name (const char *session_name, const char *prefix)
{
    size_t len = strlen (prefix);
    if (strncmp (session_name, prefix, len) != 0)
        return false;
    const char *rest = session_name + len;
    if (*rest == 0)
        return true;
    if (*rest++ != '/' || !*rest)
        return false;
    for (; *rest; rest++)
        if (*rest < '0' || *rest > '9')
            return false;
    return true;
}

/*  A reload that reports success has switched generations: from here on
    (before the CTL reply) no event goes to an instance of the old one.
    Its subscriptions keep what they hold and finish it; the new instances
    cannot have a session yet (their HELLO waits for this broker thread),
    so every instance member of the plugin's group is of the old one.      */
static void
s_cut_old_generation (plugins_t *self, plugin_t *plugin)
{
    const plugin_entry_t *entry = plugin->entry;
    char prefix [PLUGIN_NAME_MAX + 16];
    snprintf (prefix, sizeof prefix, "plugin.%s", entry->name);
    for (size_t i = 0; i < entry->pattern_count; i++) {
        char key [600];
        snprintf (key, sizeof key, "%s\x1f%s", prefix, entry->patterns [i]);
        channel_t *channel = zhashx_lookup (self->broker->groups, key);
        if (!channel)
            continue;
        for (size_t m = 0; m < channel->members.size; m++) {
            sub_t *sub = channel->members.items [m];
            if (s_instance_name (sub->session->name, prefix))
                sub_retire (sub);
        }
    }
}

static void
s_retire (plugins_t *self, plugin_t *plugin, bool replaced)
{
    s_cut_old_generation (self, plugin);
    //  A replaced generation waits for its successor's SUBOKs before it
    //  drains and leaves (s_reap): were it to leave first, the group would
    //  end with it and take its queue along.
    if (replaced) {
        plugin->handoff_pending = true;
        int64_t wait = self->broker->config->drain_timeout_ms;
        plugin->handoff_deadline = busp_mono_ms () + (wait > HANDOFF_MIN_MS ? wait : HANDOFF_MIN_MS);
    }
    else
        s_plugin_stop (self, plugin, PLUGIN_STOP_HANDOFF);
    if (!zlistx_add_end (self->retiring, plugin)) {
        //  Out of memory: stop it here rather than lose track of it.
        for (int i = 0; i < plugin->count; i++)
            plugin_instance_join (plugin->instances [i], JOIN_TIMEOUT_MS);
        s_plugin_free (self, &plugin);
    }
}

static plugin_t *s_find (zlistx_t *list, const char *name);
static plugin_state_t s_plugin_state (plugin_t *plugin, char *error, size_t size);

/*  Join what has finished; a module is released with its last user.         */
static void
s_reap (plugins_t *self)
{
    plugin_t *plugin = zlistx_first (self->retiring);
    while (plugin) {
        if (plugin->handoff_pending) {
            plugin_t *next = s_find (self->active, plugin->entry->name);
            char error [600];
            if (!next || s_plugin_state (next, error, sizeof error) != PLUGIN_STATE_STARTING
            ||  busp_mono_ms () >= plugin->handoff_deadline) {
                plugin->handoff_pending = false;
                s_plugin_stop (self, plugin, PLUGIN_STOP_HANDOFF);
            }
            plugin = zlistx_next (self->retiring);
            continue;
        }
        if (!s_plugin_alive (plugin)) {
            for (int i = 0; i < plugin->count; i++)
                plugin_instance_join (plugin->instances [i], 0);
            log_info ("plugin '%s': previous generation stopped and released",
                      plugin->entry->name);
            zlistx_detach (self->retiring, zlistx_find (self->retiring, plugin));
            s_plugin_free (self, &plugin);
            plugin = zlistx_first (self->retiring);
            continue;
        }
        plugin = zlistx_next (self->retiring);
    }
}

static int
s_on_reap (zloop_t *loop, int timer_id, void *arg)
{
    s_reap ((plugins_t *) arg);
    return 0;
}

/*  ------------------------------------------------------------------
    Statistics                                                              */

static plugin_state_t
s_plugin_state (plugin_t *plugin, char *error, size_t size)
{
    if (plugin->count == 0) {
        snprintf (error, size, "%s", plugin->error);
        return plugin->state;
    }
    //  The best state any instance is in, and the first error any has.
    static const plugin_state_t order [] = {
        PLUGIN_STATE_RUNNING, PLUGIN_STATE_STARTING, PLUGIN_STATE_STOPPING,
        PLUGIN_STATE_FAILED, PLUGIN_STATE_DISABLED, PLUGIN_STATE_STOPPED
    };
    bool seen [PLUGIN_STATE_DISABLED + 1] = { false };
    error [0] = 0;
    for (int i = 0; i < plugin->count; i++) {
        char e [600];
        seen [plugin_instance_state (plugin->instances [i], e, sizeof e)] = true;
        if (!error [0] && e [0])
            snprintf (error, size, "%s", e);
    }
    if (!error [0] && plugin->error [0])
        snprintf (error, size, "%s", plugin->error);
    for (size_t i = 0; i < sizeof order / sizeof order [0]; i++)
        if (seen [order [i]])
            return order [i];
    return PLUGIN_STATE_STOPPED;
}

static cJSON *
s_plugin_json (plugin_t *plugin)
{
    cJSON *json = cJSON_CreateObject ();
    if (!json)
        return NULL;
    const plugin_module_t *module = plugin->mod ? plugin->mod->module : NULL;
    char error [600];
    plugin_state_t state = s_plugin_state (plugin, error, sizeof error);
    plugin_counters_t c = { 0 };
    int running = 0;
    cJSON *metrics = cJSON_CreateObject ();
    for (int i = 0; i < plugin->count; i++) {
        plugin_instance_counters (plugin->instances [i], &c);
        if (metrics)
            plugin_instance_metrics (plugin->instances [i], metrics);
        if (plugin_instance_state (plugin->instances [i], NULL, 0) == PLUGIN_STATE_RUNNING)
            running++;
    }
    cJSON_AddStringToObject (json, "name", plugin->entry->name);
    cJSON_AddStringToObject (json, "path", plugin->entry->path);
    cJSON_AddStringToObject (json, "version", module ? module->desc.version : "");
    cJSON_AddStringToObject (json, "description", module ? module->desc.description : "");
    cJSON_AddStringToObject (json, "state", plugin_state_name (state));
    cJSON_AddStringToObject (json, "error", error);
    cJSON *patterns = cJSON_AddArrayToObject (json, "patterns");
    for (size_t i = 0; patterns && i < plugin->entry->pattern_count; i++)
        cJSON_AddItemToArray (patterns, cJSON_CreateString (plugin->entry->patterns [i]));
    cJSON_AddNumberToObject (json, "instances", plugin->entry->instances);
    cJSON_AddNumberToObject (json, "running", running);
    cJSON_AddNumberToObject (json, "max_inflight", plugin->entry->max_inflight);
    cJSON_AddNumberToObject (json, "delivered", (double) c.delivered);
    cJSON_AddNumberToObject (json, "ok", (double) c.ok);
    cJSON_AddNumberToObject (json, "retried", (double) c.retried);
    cJSON_AddNumberToObject (json, "failed", (double) c.failed);
    cJSON_AddNumberToObject (json, "dead_lettered", (double) c.failed);
    cJSON_AddNumberToObject (json, "fatal", (double) c.fatal);
    cJSON_AddNumberToObject (json, "inflight", (double) c.inflight);
    cJSON_AddNumberToObject (json, "avg_handle_us",
                             c.handled ? (double) (c.handle_us / c.handled) : 0);
    if (metrics)
        cJSON_AddItemToObject (json, "metrics", metrics);
    return json;
}

/*  NULL when no plugin is configured, so a plain broker's stats reply has
    no "plugins" key at all.                                                 */
static cJSON *
s_stats (void *arg)
{
    plugins_t *self = arg;
    if (zlistx_size (self->active) == 0)
        return NULL;
    cJSON *list = cJSON_CreateArray ();
    if (!list)
        return NULL;
    plugin_t *plugin = zlistx_first (self->active);
    while (plugin) {
        cJSON *item = s_plugin_json (plugin);
        if (item)
            cJSON_AddItemToArray (list, item);
        plugin = zlistx_next (self->active);
    }
    return list;
}

/*  Prometheus label values: escape what the text format requires.          */
static void
s_label (char *out, size_t size, const char *value)
{
    size_t n = 0;
    for (const char *p = value; *p && n + 3 < size; p++) {
        if (*p == '"' || *p == '\\') {
            out [n++] = '\\';
            out [n++] = *p;
        }
        else
        if (*p == '\n') {
            out [n++] = '\\';
            out [n++] = 'n';
        }
        else
            out [n++] = *p;
    }
    out [n] = 0;
}

static void
s_metrics (void *arg, void (*add) (void *sbuf, const char *fmt, ...), void *sbuf)
{
    plugins_t *self = arg;
    if (zlistx_size (self->active) == 0)
        return;
    cJSON *list = s_stats (self);
    if (!list)
        return;
    //  Units as Prometheus wants them (promtool check metrics): seconds,
    //  not microseconds in the name.
    static const struct { const char *name, *type, *help, *key; double scale; } series [] = {
        { "plugin_delivered_total", "counter", "events handed to a plugin", "delivered", 1 },
        { "plugin_ok_total", "counter", "events a plugin handled (ACK)", "ok", 1 },
        { "plugin_retried_total", "counter", "events a plugin asked to retry", "retried", 1 },
        { "plugin_dead_lettered_total", "counter", "events a plugin failed (dead letter)", "failed", 1 },
        { "plugin_fatal_total", "counter", "FATAL results (instance disabled)", "fatal", 1 },
        { "plugin_inflight", "gauge", "events inside on_event now", "inflight", 1 },
        { "plugin_handle_seconds_avg", "gauge", "average on_event time in seconds", "avg_handle_us", 1e-6 },
        { "plugin_running_instances", "gauge", "instances running", "running", 1 }
    };
    for (size_t s = 0; s < sizeof series / sizeof series [0]; s++) {
        add (sbuf, "# HELP busd_%s %s\n# TYPE busd_%s %s\n", series [s].name, series [s].help,
             series [s].name, series [s].type);
        const cJSON *item;
        cJSON_ArrayForEach (item, list) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive (item, "name");
            const cJSON *value = cJSON_GetObjectItemCaseSensitive (item, series [s].key);
            add (sbuf, "busd_%s{plugin=\"%s\"} %.9g\n", series [s].name, name->valuestring,
                 (cJSON_IsNumber (value) ? value->valuedouble : 0.0) * series [s].scale);
        }
    }
    bool header = false;
    const cJSON *item;
    cJSON_ArrayForEach (item, list) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive (item, "name");
        const cJSON *metrics = cJSON_GetObjectItemCaseSensitive (item, "metrics");
        const cJSON *metric;
        cJSON_ArrayForEach (metric, metrics) {
            if (!header) {
                add (sbuf, "# HELP busd_plugin_metric counters a plugin keeps (metric_add)\n"
                           "# TYPE busd_plugin_metric gauge\n");
                header = true;
            }
            char label [200];
            s_label (label, sizeof label, metric->string);
            add (sbuf, "busd_plugin_metric{plugin=\"%s\",name=\"%s\"} %g\n", name->valuestring,
                 label, metric->valuedouble);
        }
    }
    cJSON_Delete (list);
}

/*  The broker's drain calls this until it returns false: the first call
    asks every instance to finish what is queued for it; the broker keeps
    answering their ACKs meanwhile.                                          */
static bool
s_drain (void *arg)
{
    plugins_t *self = arg;
    if (!self->draining) {
        self->draining = true;
        plugin_t *plugin = zlistx_first (self->active);
        while (plugin) {
            s_plugin_stop (self, plugin, PLUGIN_STOP_SHUTDOWN);
            plugin = zlistx_next (self->active);
        }
        plugin = zlistx_first (self->retiring);
        while (plugin) {
            s_plugin_stop (self, plugin, PLUGIN_STOP_SHUTDOWN);
            plugin = zlistx_next (self->retiring);
        }
    }
    plugin_t *plugin = zlistx_first (self->active);
    while (plugin) {
        if (s_plugin_alive (plugin))
            return true;
        plugin = zlistx_next (self->active);
    }
    plugin = zlistx_first (self->retiring);
    while (plugin) {
        if (s_plugin_alive (plugin))
            return true;
        plugin = zlistx_next (self->retiring);
    }
    return false;
}

/*  ------------------------------------------------------------------
    Configuration                                                           */

/*  --check-config: load every sound, enabled entry's module (so a file
    built for another ABI is found now, not after a reload) and let the
    plugin check its own "config" (ABI 1.1).  Entries are parsed one by one
    so that an error in one (a duplicate name, a bad key) does not hide
    what is wrong with the others; their own messages came from the list
    parse already.                                                           */
static int
s_check_modules (const config_t *config, char *errors, size_t size)
{
    cJSON *array = cJSON_Parse (config->plugins_json);
    char *base_dir = plugin_entry_base_dir (config->file);
    const char *where = config->file ? config->file : "configuration";
    int rc = 0, index = 0;
    const cJSON *item;
    cJSON_ArrayForEach (item, array) {
        char at [PATH_MAX + 64], scratch [2048] = "";
        snprintf (at, sizeof at, "%s: plugins[%d]", where, index++);
        plugin_entry_t *entry = NULL;
        if (!base_dir || plugin_entry_parse (item, at, base_dir, config->plugin_dir,
                                             PLUGIN_ENTRY_CHECK_FILE, &entry, scratch,
                                             sizeof scratch))
            continue;
        if (entry->enabled) {
            char label [PATH_MAX + PLUGIN_NAME_MAX + 80], err [1024];
            snprintf (label, sizeof label, "%s ('%s')", at, entry->name);
            plugin_module_t *module = plugin_module_load (entry->name, entry->path, "busd",
                                                          false, err, sizeof err);
            if (!module) {
                busp_appendf (errors, size, "%s: key 'path': %s\n", label, err);
                rc = -EINVAL;
            }
            else
            if (plugin_instance_check_config (module, entry, label, errors, size))
                rc = -EINVAL;
            plugin_module_destroy (&module);
        }
        plugin_entry_destroy (&entry);
    }
    free (base_dir);
    cJSON_Delete (array);
    return rc;
}

int
plugins_check_config (const config_t *config, bool check_files, char *errors, size_t size)
{
    plugin_entry_t **list = NULL;
    size_t count = 0;
    int rc = plugin_entry_list_parse (config->plugins_json, config->file, config->plugin_dir,
                                      check_files ? PLUGIN_ENTRY_CHECK_FILE : 0, &list, &count,
                                      errors, size);
    plugin_entry_list_free (&list, count);
    if (check_files && config->plugins_json)
        rc = s_check_modules (config, errors, size) || rc ? -EINVAL : 0;
    return rc;
}

static plugin_t *
s_find (zlistx_t *list, const char *name)
{
    plugin_t *plugin = zlistx_first (list);
    while (plugin) {
        if (streq (plugin->entry->name, name))
            return plugin;
        plugin = zlistx_next (list);
    }
    return NULL;
}

/*  Apply a configuration's plugin list to the running set.                  */
static void
s_apply (plugins_t *self, const config_t *config, bool initial)
{
    plugin_entry_t **list = NULL;
    size_t count = 0;
    char errors [4096] = "";
    if (plugin_entry_list_parse (config->plugins_json, config->file, config->plugin_dir, 0, &list,
                                 &count, errors, sizeof errors)) {
        //  s_load validated the same text; only memory can fail here.
        log_error ("plugins: configuration not applied:\n%s", errors);
        return;
    }
    zlistx_t *next = zlistx_new ();
    if (!next) {
        plugin_entry_list_free (&list, count);
        log_error ("plugins: out of memory; configuration not applied");
        return;
    }
    int added = 0, replaced = 0, removed = 0, kept = 0;
    for (size_t i = 0; i < count; i++) {
        plugin_entry_t *entry = list [i];
        plugin_t *old = s_find (self->active, entry->name);
        if (old) {
            char error [600];
            plugin_state_t state = s_plugin_state (old, error, sizeof error);
            bool same_file = !old->mod || plugin_module_same_file (old->mod->module, entry->path);
            bool healthy = state == PLUGIN_STATE_RUNNING || state == PLUGIN_STATE_STARTING
                        || (state == PLUGIN_STATE_DISABLED && !entry->enabled);
            if (plugin_entry_equal (old->entry, entry) && same_file && healthy) {
                for (int n = 0; n < old->count; n++)
                    plugin_instance_reload (old->instances [n]);
                zlistx_detach (self->active, zlistx_find (self->active, old));
                zlistx_add_end (next, old);
                kept++;
                continue;
            }
            log_notice ("plugin '%s': %s; replacing it", entry->name,
                        !plugin_entry_equal (old->entry, entry) ? "its entry changed"
                        : !same_file ? "its file changed" : "it was not running");
        }
        else
        if (!initial)
            log_notice ("plugin '%s': added", entry->name);
        //  New first, then the old one hands its group over (see top).
        plugin_t *plugin = s_plugin_new (self, entry);
        if (plugin)
            zlistx_add_end (next, plugin);
        if (old) {
            zlistx_detach (self->active, zlistx_find (self->active, old));
            s_retire (self, old, plugin != NULL);
            replaced++;
        }
        else
            added++;
    }
    //  What is left in the active list is no longer configured.
    plugin_t *old = zlistx_first (self->active);
    while (old) {
        log_notice ("plugin '%s': removed from the configuration; stopping it",
                    old->entry->name);
        zlistx_detach (self->active, zlistx_find (self->active, old));
        s_retire (self, old, false);
        removed++;
        old = zlistx_first (self->active);
    }
    zlistx_destroy (&self->active);
    self->active = next;
    plugin_entry_list_free (&list, count);
    if (initial) {
        if (count)
            log_notice ("plugins: %zu configured", count);
    }
    else
        log_notice ("plugins reloaded: %d added, %d replaced, %d removed, %d unchanged",
                    added, replaced, removed, kept);
}

/*  ------------------------------------------------------------------
    Lifecycle                                                               */

plugins_t *
plugins_new (broker_t *broker)
{
    plugins_t *self = calloc (1, sizeof (plugins_t));
    if (!self)
        return NULL;
    self->broker = broker;
    self->zmq_context = zsys_init ();
    self->active = zlistx_new ();
    self->retiring = zlistx_new ();
    self->modules = zlistx_new ();
    self->timer_id = zloop_timer (broker->loop, REAP_MS, 0, s_on_reap, self);
    self->timer_set = self->timer_id != -1;
    if (!self->zmq_context || !self->active || !self->retiring || !self->modules
    ||  !self->timer_set) {
        plugins_destroy (&self);
        return NULL;
    }
    plugin_log_set_sink (s_log_sink);
    broker->plugin_stats = s_stats;
    broker->plugin_metrics = s_metrics;
    broker->plugin_drain = s_drain;
    broker->plugin_metrics_arg = self;
    s_apply (self, broker->config, true);
    return self;
}

void
plugins_reload (plugins_t *self, const config_t *config)
{
    if (self && !self->draining)
        s_apply (self, config, false);
}

/*  Stop the plugins of list; false when a thread would not stop.           */
static bool
s_stop_all (plugins_t *self, zlistx_t *list)
{
    bool clean = true;
    plugin_t *plugin = zlistx_first (list);
    while (plugin) {
        //  The broker's loop has stopped: nobody would answer a drain.
        for (int i = 0; i < plugin->count; i++)
            plugin_instance_stop (plugin->instances [i], PLUGIN_STOP_NOW, 0);
        bool stuck = false;
        for (int i = 0; i < plugin->count; i++)
            if (plugin_instance_join (plugin->instances [i], JOIN_TIMEOUT_MS)) {
                log_error ("plugin '%s': an instance is stuck in on_event and did not stop "
                           "within %d ms; leaving it loaded", plugin->entry->name,
                           JOIN_TIMEOUT_MS);
                stuck = true;
            }
        zlistx_detach (list, zlistx_find (list, plugin));
        if (stuck)
            clean = false;      /*  leaked on purpose: its code still runs */
        else
            s_plugin_free (self, &plugin);
        plugin = zlistx_first (list);
    }
    return clean;
}

int
plugins_destroy (plugins_t **self_p)
{
    plugins_t *self = self_p ? *self_p : NULL;
    if (!self)
        return 0;
    *self_p = NULL;
    bool clean = true;
    if (self->active)
        clean = s_stop_all (self, self->active) && clean;
    if (self->retiring)
        clean = s_stop_all (self, self->retiring) && clean;
    if (self->timer_set)
        zloop_timer_end (self->broker->loop, self->timer_id);
    self->broker->plugin_stats = NULL;
    self->broker->plugin_metrics = NULL;
    self->broker->plugin_drain = NULL;
    self->broker->plugin_metrics_arg = NULL;
    zlistx_destroy (&self->active);
    zlistx_destroy (&self->retiring);
    if (clean) {
        //  Every module's users are gone; anything left is a refcount slip.
        modref_t *mod = zlistx_first (self->modules);
        while (mod) {
            plugin_module_destroy (&mod->module);
            free (mod);
            mod = zlistx_next (self->modules);
        }
    }
    zlistx_destroy (&self->modules);
    plugin_log_set_sink (NULL);
    free (self);
    return clean ? 0 : -EBUSY;
}
