/*  entry.c — parsing and checking plugin entries (see entry.h).

    Checks are table-free on purpose: there are few keys, each with its own
    rule, and the messages read better written out one by one.  Every check
    runs even after a failure so one --check-config shows every problem.   */
#include "entry.h"
#include "topic.h"
#include "util.h"
#include "endpoint.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
plugin_entry_destroy (plugin_entry_t **self_p)
{
    plugin_entry_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    free (self->name);
    free (self->path);
    for (size_t i = 0; i < self->pattern_count; i++)
        free (self->patterns [i]);
    free (self->patterns);
    free (self->config_json);
    free (self->canonical);
    free (self);
}

static bool
s_name_ok (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len > PLUGIN_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
              || *p == '_' || *p == '-' || *p == '.'))
            return false;
    return true;
}

/*  A whole number in min..max; false (and a message in why) otherwise.      */
static bool
s_int (const cJSON *item, double min, double max, int64_t *value, char *why, size_t why_size)
{
    if (!cJSON_IsNumber (item)) {
        snprintf (why, why_size, "must be a number");
        return false;
    }
    double v = item->valuedouble;
    if (!(v >= min && v <= max)) {
        snprintf (why, why_size, "%g is out of range %.0f..%.0f", v, min, max);
        return false;
    }
    if (v != (double) (int64_t) v) {
        snprintf (why, why_size, "must be a whole number");
        return false;
    }
    *value = (int64_t) v;
    return true;
}

char *
plugin_entry_base_dir (const char *file)
{
    char dir [PATH_MAX];
    if (!file) {
        if (!getcwd (dir, sizeof dir))
            return NULL;
        return strdup (dir);
    }
    snprintf (dir, sizeof dir, "%s", file);
    char *slash = strrchr (dir, '/');
    if (slash == dir)
        dir [1] = 0;
    else
    if (slash)
        *slash = 0;
    else
        snprintf (dir, sizeof dir, ".");
    char resolved [PATH_MAX];
    if (!realpath (dir, resolved))
        return NULL;
    return strdup (resolved);
}

/*  Absolute paths stay; a path with a slash is relative to the config
    file's directory; a bare name is an installed plugin.                    */
static char *
s_resolve (const char *given, const char *base_dir, const char *plugindir)
{
    char *path = NULL;
    size_t len = strlen (given);
    int rc;
    if (given [0] == '/')
        rc = asprintf (&path, "%s", given);
    else
    if (strchr (given, '/')) {
        while (given [0] == '.' && given [1] == '/')
            given += 2;
        char cwd [PATH_MAX];
        if (!base_dir && !getcwd (cwd, sizeof cwd))
            strcpy (cwd, ".");
        rc = asprintf (&path, "%s/%s", base_dir ? base_dir : cwd, given);
    }
    else
        rc = asprintf (&path, "%s/%s%s", plugindir ? plugindir : ".", given,
                       len > 3 && strcmp (given + len - 3, ".so") == 0 ? "" : ".so");
    return rc < 0 ? NULL : path;
}

static bool
s_known_key (const char *key, unsigned flags)
{
    static const char *keys [] = { "name", "path", "patterns", "config", "instances",
                                   "max_inflight", "ack_wait_ms", "max_deliver", "enabled",
                                   NULL };
    for (int i = 0; keys [i]; i++)
        if (strcmp (keys [i], key) == 0)
            return true;
    return (flags & PLUGIN_ENTRY_HOST_KEYS) && strcmp (key, "endpoint") == 0;
}

static char *
s_canonical (const plugin_entry_t *self)
{
    cJSON *json = cJSON_CreateObject ();
    if (!json)
        return NULL;
    cJSON *patterns = cJSON_AddArrayToObject (json, "patterns");
    cJSON *config = cJSON_Parse (self->config_json);
    cJSON_AddStringToObject (json, "name", self->name);
    cJSON_AddStringToObject (json, "path", self->path);
    for (size_t i = 0; patterns && i < self->pattern_count; i++)
        cJSON_AddItemToArray (patterns, cJSON_CreateString (self->patterns [i]));
    if (config)
        cJSON_AddItemToObject (json, "config", config);
    cJSON_AddNumberToObject (json, "instances", self->instances);
    cJSON_AddNumberToObject (json, "max_inflight", self->max_inflight);
    cJSON_AddNumberToObject (json, "ack_wait_ms", self->ack_wait_ms);
    cJSON_AddNumberToObject (json, "max_deliver", self->max_deliver);
    cJSON_AddBoolToObject (json, "enabled", self->enabled);
    char *text = cJSON_PrintUnformatted (json);
    cJSON_Delete (json);
    return text;
}

int
plugin_entry_parse (const cJSON *item, const char *where, const char *base_dir,
                    const char *plugindir, unsigned flags, plugin_entry_t **entry_p,
                    char *errors, size_t errors_size)
{
    *entry_p = NULL;
    if (!cJSON_IsObject (item)) {
        busp_appendf (errors, errors_size, "%s: must be an object like {\"name\": \"mailer\", "
                      "\"path\": \"mailer\", \"patterns\": [\"user.created\"]}\n", where);
        return -EINVAL;
    }
    plugin_entry_t *self = calloc (1, sizeof (plugin_entry_t));
    if (!self)
        return -ENOMEM;
    self->instances = 1;
    self->max_inflight = 16;
    self->ack_wait_ms = 30000;
    self->max_deliver = 5;
    self->enabled = true;
    int rc = 0;
    char label [PLUGIN_NAME_MAX + 300];

    const cJSON *name = cJSON_GetObjectItemCaseSensitive (item, "name");
    if (cJSON_IsString (name) && s_name_ok (name->valuestring)) {
        self->name = strdup (name->valuestring);
        snprintf (label, sizeof label, "%s ('%s')", where, name->valuestring);
    }
    else {
        snprintf (label, sizeof label, "%s", where);
        if (!name)
            busp_appendf (errors, errors_size,
                          "%s: key 'name' is required (a unique name like \"mailer\")\n", where);
        else
            busp_appendf (errors, errors_size, "%s: key 'name': must be a string of 1..%d letters, "
                          "digits, '_', '-' or '.'\n", where, PLUGIN_NAME_MAX);
        rc = -EINVAL;
    }

    const cJSON *key;
    cJSON_ArrayForEach (key, item)
        if (!s_known_key (key->string, flags)) {
            busp_appendf (errors, errors_size, "%s: unknown key '%s' (plugin keys: name, path, "
                          "patterns, config, instances, max_inflight, ack_wait_ms, max_deliver, "
                          "enabled)\n", label, key->string);
            rc = -EINVAL;
        }

    const cJSON *path = cJSON_GetObjectItemCaseSensitive (item, "path");
    if (path && (!cJSON_IsString (path) || !*path->valuestring)) {
        busp_appendf (errors, errors_size, "%s: key 'path': must be a non-empty string (a file, "
                      "or the name of an installed plugin)\n", label);
        rc = -EINVAL;
    }
    else
    if (path || self->name)
        self->path = s_resolve (path ? path->valuestring : self->name, base_dir, plugindir);

    const cJSON *patterns = cJSON_GetObjectItemCaseSensitive (item, "patterns");
    if (!patterns) {
        busp_appendf (errors, errors_size, "%s: key 'patterns' is required (an array like "
                      "[\"user.created\", \"order.*\"])\n", label);
        rc = -EINVAL;
    }
    else
    if (!cJSON_IsArray (patterns) || cJSON_GetArraySize (patterns) == 0
    ||  cJSON_GetArraySize (patterns) > PLUGIN_PATTERNS_MAX) {
        busp_appendf (errors, errors_size,
                      "%s: key 'patterns': must be an array of 1..%d patterns\n",
                      label, PLUGIN_PATTERNS_MAX);
        rc = -EINVAL;
    }
    else {
        self->patterns = calloc ((size_t) cJSON_GetArraySize (patterns), sizeof (char *));
        if (!self->patterns) {
            plugin_entry_destroy (&self);
            return -ENOMEM;
        }
        const cJSON *p;
        int index = 0;
        char hint [400];
        cJSON_ArrayForEach (p, patterns) {
            const char *why = "must be a string";
            if (!cJSON_IsString (p)
            ||  busp_pattern_check (p->valuestring, strlen (p->valuestring), &why)) {
                busp_appendf (errors, errors_size, "%s: key 'patterns' [%d]: %s%s%s%s\n",
                              label, index, cJSON_IsString (p) ? "'" : "",
                              cJSON_IsString (p) ? p->valuestring : "",
                              cJSON_IsString (p) ? "' is not a valid pattern: " : "", why);
                rc = -EINVAL;
            }
            else
            if (busp_pattern_foreign_wildcard (p->valuestring, hint, sizeof hint)) {
                busp_appendf (errors, errors_size, "%s: key 'patterns' [%d]: '%s': %s\n",
                              label, index, p->valuestring, hint);
                rc = -EINVAL;
            }
            else
                self->patterns [self->pattern_count++] = strdup (p->valuestring);
            index++;
        }
    }

    const cJSON *config = cJSON_GetObjectItemCaseSensitive (item, "config");
    if (config && !cJSON_IsObject (config)) {
        busp_appendf (errors, errors_size, "%s: key 'config': must be an object (the plugin's own "
                      "settings)\n", label);
        rc = -EINVAL;
    }
    else
        self->config_json = config ? cJSON_PrintUnformatted (config) : strdup ("{}");

    struct { const char *key; double min, max; int64_t value; } ints [] = {
        { "instances", 1, PLUGIN_INSTANCES_MAX, 1 },
        { "max_inflight", 1, 1000000, 16 },
        { "ack_wait_ms", 1, 86400000, 30000 },
        { "max_deliver", 1, 65535, 5 }
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints [0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (item, ints [i].key);
        char why [128];
        if (v && !s_int (v, ints [i].min, ints [i].max, &ints [i].value, why, sizeof why)) {
            busp_appendf (errors, errors_size, "%s: key '%s': %s\n", label, ints [i].key, why);
            rc = -EINVAL;
        }
    }
    self->instances = (int) ints [0].value;
    self->max_inflight = (uint32_t) ints [1].value;
    self->ack_wait_ms = (uint32_t) ints [2].value;
    self->max_deliver = (uint32_t) ints [3].value;

    const cJSON *enabled = cJSON_GetObjectItemCaseSensitive (item, "enabled");
    if (enabled && !cJSON_IsBool (enabled)) {
        busp_appendf (errors, errors_size, "%s: key 'enabled': must be true or false\n", label);
        rc = -EINVAL;
    }
    else
    if (enabled)
        self->enabled = cJSON_IsTrue (enabled);

    const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive (item, "endpoint");
    if (endpoint && (!cJSON_IsString (endpoint) || !strstr (endpoint->valuestring, "://"))) {
        busp_appendf (errors, errors_size, "%s: key 'endpoint': must be an endpoint like "
                      "tcp://127.0.0.1:7460\n", label);
        rc = -EINVAL;
    }

    //  The file is checked last and only when everything else is sound, so
    //  the message about it is not lost among consequences of other errors.
    if (rc == 0 && (flags & PLUGIN_ENTRY_CHECK_FILE) && self->enabled && self->path) {
        struct stat st;
        if (stat (self->path, &st)) {
            busp_appendf (errors, errors_size, "%s: key 'path': cannot load %s: %s\n", label,
                          self->path, strerror (errno));
            rc = -EINVAL;
        }
        else
        if (!S_ISREG (st.st_mode)) {
            busp_appendf (errors, errors_size, "%s: key 'path': %s is not a regular file\n", label,
                          self->path);
            rc = -EINVAL;
        }
        else
        if (access (self->path, R_OK)) {
            busp_appendf (errors, errors_size, "%s: key 'path': cannot read %s: %s\n", label,
                          self->path, strerror (errno));
            rc = -EINVAL;
        }
    }
    if (rc == 0) {
        self->canonical = s_canonical (self);
        if (!self->name || !self->path || !self->config_json || !self->canonical)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < self->pattern_count; i++)
            if (!self->patterns [i])
                rc = -ENOMEM;
    }
    if (rc) {
        plugin_entry_destroy (&self);
        return rc;
    }
    *entry_p = self;
    return 0;
}

int
plugin_entry_list_parse (const char *json_text, const char *file, const char *plugindir,
                         unsigned flags, plugin_entry_t ***list_p, size_t *count_p,
                         char *errors, size_t errors_size)
{
    *list_p = NULL;
    *count_p = 0;
    const char *where = file ? file : "configuration";
    if (!json_text)
        return 0;
    cJSON *array = cJSON_Parse (json_text);
    if (!cJSON_IsArray (array)) {
        cJSON_Delete (array);
        busp_appendf (errors, errors_size,
                      "%s: key 'plugins': must be an array of plugin objects\n", where);
        return -EINVAL;
    }
    size_t size = (size_t) cJSON_GetArraySize (array);
    plugin_entry_t **list = size ? calloc (size, sizeof (plugin_entry_t *)) : NULL;
    char *base_dir = plugin_entry_base_dir (file);
    if ((size && !list) || !base_dir) {
        if (!base_dir)
            busp_appendf (errors, errors_size, "%s: cannot resolve the directory of the "
                          "configuration file: %s\n", where, strerror (errno));
        free (list);
        free (base_dir);
        cJSON_Delete (array);
        return base_dir ? -ENOMEM : -EINVAL;
    }
    int rc = 0;
    size_t count = 0;
    const cJSON *item;
    int index = 0;
    cJSON_ArrayForEach (item, array) {
        char at [PATH_MAX + 64];
        snprintf (at, sizeof at, "%s: plugins[%d]", where, index++);
        plugin_entry_t *entry = NULL;
        int erc = plugin_entry_parse (item, at, base_dir, plugindir, flags, &entry, errors,
                                      errors_size);
        //  Names are compared in the JSON, so that a duplicate is reported
        //  whatever else is wrong with either entry.
        const cJSON *name = cJSON_GetObjectItemCaseSensitive (item, "name");
        const cJSON *earlier;
        cJSON_ArrayForEach (earlier, array) {
            if (earlier == item)
                break;
            const cJSON *other = cJSON_GetObjectItemCaseSensitive (earlier, "name");
            if (cJSON_IsString (name) && cJSON_IsString (other)
            &&  strcmp (name->valuestring, other->valuestring) == 0) {
                busp_appendf (errors, errors_size, "%s ('%s'): key 'name': another plugin is "
                              "already called '%s' (names must be unique)\n", at,
                              name->valuestring, name->valuestring);
                erc = -EINVAL;
                break;
            }
        }
        if (erc) {
            rc = erc;
            plugin_entry_destroy (&entry);
            continue;
        }
        list [count++] = entry;
    }
    free (base_dir);
    cJSON_Delete (array);
    if (rc) {
        plugin_entry_list_free (&list, count);
        return rc;
    }
    *list_p = list;
    *count_p = count;
    return 0;
}

void
plugin_entry_list_free (plugin_entry_t ***list_p, size_t count)
{
    plugin_entry_t **list = *list_p;
    if (!list)
        return;
    *list_p = NULL;
    for (size_t i = 0; i < count; i++)
        plugin_entry_destroy (&list [i]);
    free (list);
}

plugin_entry_t *
plugin_entry_dup (const plugin_entry_t *self)
{
    plugin_entry_t *copy = calloc (1, sizeof (plugin_entry_t));
    if (!copy)
        return NULL;
    *copy = *self;
    copy->name = strdup (self->name);
    copy->path = strdup (self->path);
    copy->config_json = strdup (self->config_json);
    copy->canonical = strdup (self->canonical);
    copy->patterns = calloc (self->pattern_count ? self->pattern_count : 1, sizeof (char *));
    copy->pattern_count = 0;
    bool ok = copy->name && copy->path && copy->config_json && copy->canonical && copy->patterns;
    for (size_t i = 0; ok && i < self->pattern_count; i++) {
        copy->patterns [i] = strdup (self->patterns [i]);
        ok = copy->patterns [i] != NULL;
        copy->pattern_count = i + 1;
    }
    if (!ok)
        plugin_entry_destroy (&copy);
    return copy;
}

bool
plugin_entry_equal (const plugin_entry_t *a, const plugin_entry_t *b)
{
    return a && b && strcmp (a->canonical, b->canonical) == 0;
}
