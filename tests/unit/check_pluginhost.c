/*  check_pluginhost.c — unit tests for the plugin runtime's pure parts
    (src/pluginhost): entry parsing and its messages, the config getters
    behind the host table, custom metrics, and the loader's ABI checks
    against the test plugins (tests/plugins/.libs, built by make check).

    Nothing here needs a broker: an instance that is never started is a
    plain value whose host functions can be called directly.                 */
#include "entry.h"
#include "instance.h"
#include "loader.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plugin_entry_t *
s_parse (const char *json, unsigned flags, char *errors, size_t size)
{
    cJSON *item = cJSON_Parse (json);
    ck_assert_ptr_nonnull (item);
    plugin_entry_t *entry = NULL;
    errors [0] = 0;
    plugin_entry_parse (item, "test.json: plugins[0]", "/etc/busd", "/usr/lib/busd/plugins",
                        flags, &entry, errors, size);
    cJSON_Delete (item);
    return entry;
}

START_TEST (test_entry_defaults_and_paths)
{
    char errors [2048];
    plugin_entry_t *entry = s_parse ("{\"name\": \"mailer\", \"patterns\": [\"user.*\"]}", 0,
                                     errors, sizeof errors);
    ck_assert_msg (entry != NULL, "%s", errors);
    ck_assert_str_eq (entry->path, "/usr/lib/busd/plugins/mailer.so");
    ck_assert_int_eq (entry->instances, 1);
    ck_assert_int_eq (entry->max_inflight, 16);
    ck_assert_int_eq (entry->ack_wait_ms, 30000);
    ck_assert_int_eq (entry->max_deliver, 5);
    ck_assert (entry->enabled);
    ck_assert_str_eq (entry->config_json, "{}");
    ck_assert_int_eq (entry->pattern_count, 1);
    ck_assert_str_eq (entry->patterns [0], "user.*");

    plugin_entry_t *copy = plugin_entry_dup (entry);
    ck_assert (plugin_entry_equal (entry, copy));
    plugin_entry_destroy (&copy);
    ck_assert_ptr_null (copy);

    plugin_entry_t *other = s_parse ("{\"name\": \"mailer\", \"path\": \"./lib/m.so\", "
                                     "\"patterns\": [\"user.*\"], \"instances\": 3, "
                                     "\"config\": {\"a\": 1}}", 0, errors, sizeof errors);
    ck_assert_msg (other != NULL, "%s", errors);
    ck_assert_str_eq (other->path, "/etc/busd/lib/m.so");
    ck_assert_int_eq (other->instances, 3);
    ck_assert_str_eq (other->config_json, "{\"a\":1}");
    ck_assert (!plugin_entry_equal (entry, other));
    plugin_entry_destroy (&other);

    other = s_parse ("{\"name\": \"x\", \"path\": \"/opt/x.so\", \"patterns\": [\"a\"]}", 0,
                     errors, sizeof errors);
    ck_assert_str_eq (other->path, "/opt/x.so");
    plugin_entry_destroy (&other);
    other = s_parse ("{\"name\": \"x\", \"path\": \"file.so\", \"patterns\": [\"a\"]}", 0,
                     errors, sizeof errors);
    ck_assert_str_eq (other->path, "/usr/lib/busd/plugins/file.so");
    plugin_entry_destroy (&other);
    plugin_entry_destroy (&entry);
}
END_TEST

START_TEST (test_entry_errors)
{
    static const struct { const char *json, *expect; } cases [] = {
        { "[]", "test.json: plugins[0]: must be an object" },
        { "{\"patterns\": [\"a\"]}", "key 'name' is required" },
        { "{\"name\": \"a b\", \"patterns\": [\"a\"]}", "key 'name': must be a string" },
        { "{\"name\": \"m\"}", "('m'): key 'patterns' is required" },
        { "{\"name\": \"m\", \"patterns\": []}", "('m'): key 'patterns': must be an array" },
        { "{\"name\": \"m\", \"patterns\": [\"a.*b\"]}", "'a.*b' is not a valid pattern" },
        { "{\"name\": \"m\", \"patterns\": [7]}", "key 'patterns' [0]: must be a string" },
        { "{\"name\": \"m\", \"patterns\": [\"a\"], \"max_deliver\": 0}", "('m'): key 'max_deliver': 0 is out of range" },
        { "{\"name\": \"m\", \"patterns\": [\"a\"], \"ack_wait_ms\": 1.5}", "key 'ack_wait_ms': must be a whole number" },
        { "{\"name\": \"m\", \"patterns\": [\"a\"], \"path\": \"\"}", "key 'path': must be a non-empty string" },
        { "{\"name\": \"m\", \"patterns\": [\"a\"], \"endpoint\": \"tcp://x:1\"}", "unknown key 'endpoint'" },
        { "{\"name\": \"m\", \"patterns\": [\"a\"], \"path\": \"/nonexistent/m.so\"}",
          "('m'): key 'path': cannot load /nonexistent/m.so: No such file or directory" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char errors [2048];
        plugin_entry_t *entry = s_parse (cases [i].json, PLUGIN_ENTRY_CHECK_FILE, errors,
                                         sizeof errors);
        ck_assert_msg (entry == NULL, "case %zu parsed", i);
        ck_assert_msg (strstr (errors, cases [i].expect), "case %zu: '%s' not in '%s'", i,
                       cases [i].expect, errors);
    }
    //  busd-plugin-host's own key.
    char errors [2048];
    plugin_entry_t *entry = s_parse ("{\"name\": \"m\", \"patterns\": [\"a\"], "
                                     "\"endpoint\": \"tcp://127.0.0.1:1\"}",
                                     PLUGIN_ENTRY_HOST_KEYS, errors, sizeof errors);
    ck_assert_msg (entry != NULL, "%s", errors);
    plugin_entry_destroy (&entry);
}
END_TEST

START_TEST (test_entry_list)
{
    char errors [2048] = "";
    plugin_entry_t **list = NULL;
    size_t count = 0;
    int rc = plugin_entry_list_parse ("[{\"name\": \"a\", \"patterns\": [\"x\"]}, "
                                      "{\"name\": \"a\", \"patterns\": [\"y\"]}]",
                                      NULL, "/p", 0, &list, &count, errors, sizeof errors);
    ck_assert_int_ne (rc, 0);
    ck_assert_ptr_nonnull (strstr (errors, "another plugin is already called 'a'"));
    errors [0] = 0;
    rc = plugin_entry_list_parse ("[{\"name\": \"a\", \"patterns\": [\"x\"]}, "
                                  "{\"name\": \"b\", \"patterns\": [\"y\"], \"enabled\": false}]",
                                  NULL, "/p", 0, &list, &count, errors, sizeof errors);
    ck_assert_msg (rc == 0, "%s", errors);
    ck_assert_int_eq (count, 2);
    ck_assert (!list [1]->enabled);
    plugin_entry_list_free (&list, count);
    ck_assert_ptr_null (list);
    rc = plugin_entry_list_parse (NULL, NULL, "/p", 0, &list, &count, errors, sizeof errors);
    ck_assert_int_eq (rc, 0);
    ck_assert_int_eq (count, 0);
}
END_TEST

START_TEST (test_host_functions)
{
    char errors [2048];
    plugin_entry_t *entry = s_parse ("{\"name\": \"m\", \"patterns\": [\"a\"], \"config\": "
                                     "{\"smtp\": {\"host\": \"mx\", \"port\": 25, \"tls\": true},"
                                     " \"ratio\": 0.5, \"flat.key\": \"yes\", \"big\": 1e30}}", 0,
                                     errors, sizeof errors);
    ck_assert_msg (entry != NULL, "%s", errors);
    plugin_instance_t *self = plugin_instance_new (NULL, entry, "inproc://nowhere", NULL, 1);
    ck_assert_ptr_nonnull (self);
    const busd_plugin_host_t *host = plugin_host_table ();
    ck_assert_int_eq (host->size, sizeof (busd_plugin_host_t));
    ck_assert_int_eq (host->abi_major, BUSD_PLUGIN_ABI_MAJOR);
    ck_assert_str_eq (host->config_string (self, "smtp.host", "d"), "mx");
    ck_assert_str_eq (host->config_string (self, "flat.key", "d"), "yes");
    ck_assert_str_eq (host->config_string (self, "smtp.port", "d"), "d");   //  wrong type
    ck_assert_str_eq (host->config_string (self, "smtp.nope", "d"), "d");
    ck_assert_ptr_null (host->config_string (self, "missing", NULL));
    ck_assert_int_eq (host->config_int (self, "smtp.port", 7), 25);
    ck_assert_int_eq (host->config_int (self, "ratio", 7), 7);             //  not whole
    ck_assert_int_eq (host->config_int (self, "big", 7), 7);               //  does not fit
    ck_assert (host->config_double (self, "ratio", 0) == 0.5);
    ck_assert (host->config_bool (self, "smtp.tls", false));
    ck_assert (host->config_bool (self, "smtp.host", false) == false);
    ck_assert_ptr_nonnull (strstr (host->config_json (self), "\"smtp\""));
    ck_assert_str_eq (host->instance_name (self), "m");

    host->metric_add (self, "sent", 2);
    host->metric_add (self, "sent", 3);
    host->metric_add (self, "bounced", 1);
    cJSON *metrics = cJSON_CreateObject ();
    plugin_instance_metrics (self, metrics);
    plugin_instance_metrics (self, metrics);                               //  sums
    ck_assert (cJSON_GetObjectItem (metrics, "sent")->valuedouble == 10);
    ck_assert (cJSON_GetObjectItem (metrics, "bounced")->valuedouble == 2);
    cJSON_Delete (metrics);

    char error [128];
    ck_assert_int_eq (plugin_instance_state (self, error, sizeof error), PLUGIN_STATE_STARTING);
    ck_assert_str_eq (plugin_state_name (PLUGIN_STATE_DISABLED), "disabled");
    ck_assert (!plugin_instance_alive (self));
    ck_assert_int_eq (plugin_instance_join (self, 0), 0);
    plugin_instance_destroy (&self);
    ck_assert_ptr_null (self);
    plugin_entry_destroy (&entry);
}
END_TEST

static char *
s_plugin_path (const char *name)
{
    const char *top = getenv ("BUSD_TOP_BUILDDIR");
    char *path = NULL;
    if (asprintf (&path, "%s/tests/plugins/.libs/%s.so", top ? top : ".", name) < 0)
        return NULL;
    return path;
}

START_TEST (test_loader)
{
    char err [1024];
    char *path = s_plugin_path ("ok");
    plugin_module_t *module = plugin_module_load ("counter", path, "busd", false, err, sizeof err);
    ck_assert_msg (module != NULL, "%s", err);
    ck_assert_str_eq (module->desc.name, "ok");
    ck_assert_str_eq (module->desc.version, "1.0.0");
    ck_assert_ptr_nonnull (module->desc.on_event);
    ck_assert (plugin_module_same_file (module, path));
    //  Loaded again beside itself through /proc/self/fd.
    plugin_module_t *fresh = plugin_module_load ("counter", path, "busd", true, err, sizeof err);
    ck_assert_msg (fresh != NULL, "%s", err);
    plugin_module_destroy (&fresh);
    plugin_module_destroy (&module);
    ck_assert_ptr_null (module);
    free (path);

    path = s_plugin_path ("abi-mismatch");
    module = plugin_module_load ("future", path, "busd", false, err, sizeof err);
    ck_assert_ptr_null (module);
    char speaks [80];
    snprintf (speaks, sizeof speaks, "built for plugin ABI 99.0, this busd speaks %d.%d",
              BUSD_PLUGIN_ABI_MAJOR, BUSD_PLUGIN_ABI_MINOR);
    ck_assert_msg (strstr (err, "plugin 'future': ") && strstr (err, path)
                   && strstr (err, speaks), "%s", err);
    free (path);

    //  A plugin built for ABI 1.0 (no check_config) still loads; its
    //  shorter descriptor reads as "no check", which passes.
    path = s_plugin_path ("abi10");
    module = plugin_module_load ("old", path, "busd", false, err, sizeof err);
    ck_assert_msg (module != NULL, "%s", err);
    ck_assert_uint_eq (module->desc.abi_minor, 0);
    ck_assert_ptr_null (module->desc.check_config);
    plugin_entry_t *old_entry = NULL;
    char entry_errors [512] = "";
    cJSON *item = cJSON_Parse ("{\"name\": \"old\", \"patterns\": [\"a\"]}");
    ck_assert_int_eq (plugin_entry_parse (item, "test", NULL, "/nowhere", 0, &old_entry,
                                          entry_errors, sizeof entry_errors), 0);
    cJSON_Delete (item);
    char problems [256] = "";
    ck_assert_int_eq (plugin_instance_check_config (module, old_entry, "old", problems,
                                                    sizeof problems), 0);
    ck_assert_str_eq (problems, "");
    plugin_entry_destroy (&old_entry);
    plugin_module_destroy (&module);
    free (path);

    module = plugin_module_load ("mailer", "/nonexistent/x.so", "busd", false, err, sizeof err);
    ck_assert_ptr_null (module);
    ck_assert_msg (strstr (err, "plugin 'mailer': cannot load /nonexistent/x.so"), "%s", err);

    //  A shared object that is not a plugin (libc has no entry point).
    module = plugin_module_load ("libc", "/lib/x86_64-linux-gnu/libc.so.6", "busd", false,
                                 err, sizeof err);
    if (!module)
        ck_assert_msg (strstr (err, "not a busd plugin") || strstr (err, "cannot load"), "%s", err);
    plugin_module_destroy (&module);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("pluginhost");
    TCase *tc = tcase_create ("pluginhost");
    tcase_add_test (tc, test_entry_defaults_and_paths);
    tcase_add_test (tc, test_entry_errors);
    tcase_add_test (tc, test_entry_list);
    tcase_add_test (tc, test_host_functions);
    tcase_add_test (tc, test_loader);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    SRunner *runner = srunner_create (s_suite ());
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
