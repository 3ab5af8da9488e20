/*  check_config.c — unit tests for busd's settings (src/broker/config.c).

    What an operator sees is the point here: errors must name the file, the
    line and the key, suggest the key that was meant, and say what is
    wrong; comments must be allowed; a reload must know which changes need
    a restart.  Each test writes its JSON to a temporary file, loads it and
    checks the values or the error text (by substring, so wording can
    improve without breaking the tests, while the facts cannot go).          */
#include "config.h"
#include <cJSON.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_path [256];
static char s_errors [4096];

/*  Write text to a fresh temporary file, remembered in s_path.             */
static const char *
s_write (const char *text)
{
    const char *dir = getenv ("TMPDIR");
    snprintf (s_path, sizeof s_path, "%s/check_config_XXXXXX.json", dir && *dir ? dir : "/tmp");
    int fd = mkstemps (s_path, 5);
    ck_assert_int_ge (fd, 0);
    size_t len = strlen (text);
    ck_assert_int_eq (write (fd, text, len), (ssize_t) len);
    close (fd);
    return s_path;
}

/*  Load text over config; returns config_load_file's result and leaves the
    messages in s_errors.                                                   */
static int
s_load (config_t *config, const char *text)
{
    const char *path = s_write (text);
    memset (s_errors, 'x', sizeof s_errors);
    int rc = config_load_file (config, path, s_errors, sizeof s_errors);
    ck_assert_ptr_nonnull (memchr (s_errors, 0, sizeof s_errors));
    unlink (path);
    return rc;
}

/*  s_errors holds "<path>:<line>: " followed (somewhere on that line) by
    each of the given fragments.                                            */
static void
s_expect_error (int line, const char *fragment1, const char *fragment2)
{
    char where [300];
    snprintf (where, sizeof where, "%s:%d: ", s_path, line);
    const char *at = strstr (s_errors, where);
    ck_assert_msg (at != NULL, "no error at %s in:\n%s", where, s_errors);
    const char *eol = strchr (at, '\n');
    ck_assert_msg (eol != NULL, "error line not terminated: %s", at);
    char text [1024];
    snprintf (text, sizeof text, "%.*s", (int) (eol - at), at);
    ck_assert_msg (strstr (text, fragment1), "'%s' not in: %s", fragment1, text);
    if (fragment2)
        ck_assert_msg (strstr (text, fragment2), "'%s' not in: %s", fragment2, text);
}

static int
s_lines (const char *text)
{
    int lines = 0;
    for (; *text; text++)
        lines += *text == '\n';
    return lines;
}

START_TEST (test_defaults)
{
    config_t *config = config_new ();
    ck_assert_ptr_nonnull (config);
    ck_assert_int_eq (config->bind_count, 0);   //  main.c supplies the default
    ck_assert_str_eq (config->log_level, "info");
    ck_assert (!config->syslog);
    ck_assert_int_eq (config->session_timeout_ms, 15000);
    ck_assert_int_eq (config->heartbeat_ms, 5000);
    ck_assert_int_eq (config->pub_credit, 1000);
    ck_assert_int_eq (config->credit, 1000);
    ck_assert_int_eq (config->queue_limit, 10000);
    ck_assert_int_eq (config->ack_wait_ms, 30000);
    ck_assert_int_eq (config->max_deliver, 5);
    ck_assert_int_eq (config->dedup_window_ms, 120000);
    ck_assert_int_gt (config->max_payload, 0);
    ck_assert_int_gt (config->max_headers, 0);
    ck_assert_int_gt (config->dedup_max, 0);
    ck_assert_int_gt (config->dlq_max_count, 0);
    ck_assert_int_gt (config->dlq_max_bytes, 0);
    ck_assert_int_ge (config->backoff_max_ms, config->backoff_initial_ms);
    ck_assert_double_ge (config->backoff_multiplier, 1.0);
    ck_assert (config->backoff_jitter >= 0 && config->backoff_jitter <= 1);
    ck_assert_int_eq (config->stats_interval_ms, 0);
    ck_assert_ptr_null (config->metrics_bind);
    ck_assert_ptr_null (config->file);
    ck_assert_ptr_null (config->plugins_json);
    //  The defaults are consistent.
    s_errors [0] = 0;
    ck_assert_int_eq (config_validate (config, s_errors, sizeof s_errors), 0);
    ck_assert_str_eq (s_errors, "");
    config_destroy (&config);
    ck_assert_ptr_null (config);
    config_destroy (&config);
}
END_TEST

START_TEST (test_load_with_comments)
{
    config_t *config = config_new ();
    int rc = s_load (config,
        "// busd test configuration\n"
        "{\n"
        "  /* endpoints: a string value may hold // and /* */ \n"
        "  \"bind\": \"tcp://127.0.0.1:7461\",   // the first\n"
        "  \"log_level\": \"debug\",\n"
        "  \"syslog\": true,\n"
        "  /* a block comment\n"
        "     over several lines, with \"pub_credit\": 1 inside */\n"
        "  \"pub_credit\": 250,\n"
        "  \"backoff_multiplier\": 1.5, \"backoff_jitter\": 0,\n"
        "  \"metrics_bind\": \"127.0.0.1:9460\",\n"
        "  \"plugins\": [ { \"name\": \"log\", \"path\": \"/x//y\" } ]\n"
        "}\n"
        "// trailing comment\n");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_str_eq (s_errors, "");
    ck_assert_int_eq (config->bind_count, 1);
    ck_assert_str_eq (config->binds [0], "tcp://127.0.0.1:7461");
    ck_assert_str_eq (config->log_level, "debug");
    ck_assert (config->syslog);
    ck_assert_int_eq (config->pub_credit, 250);
    ck_assert_double_eq (config->backoff_multiplier, 1.5);
    ck_assert_double_eq (config->backoff_jitter, 0);
    ck_assert_str_eq (config->metrics_bind, "127.0.0.1:9460");
    ck_assert_ptr_nonnull (config->plugins_json);
    ck_assert_ptr_nonnull (strstr (config->plugins_json, "\"/x//y\""));
    ck_assert_str_eq (config->file, s_path);
    //  Untouched keys keep their values.
    ck_assert_int_eq (config->credit, 1000);

    //  A second file changes only what it names; null turns metrics off.
    rc = s_load (config, "{ \"credit\": 7, \"metrics_bind\": null }");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_int_eq (config->credit, 7);
    ck_assert_int_eq (config->pub_credit, 250);
    ck_assert_ptr_null (config->metrics_bind);
    ck_assert_str_eq (config->file, s_path);
    //  An empty object is a valid configuration.
    ck_assert_int_eq (s_load (config, "{}\n"), 0);
    config_destroy (&config);
}
END_TEST

START_TEST (test_unknown_key)
{
    config_t *config = config_new ();
    int rc = s_load (config,
        "{\n"
        "  \"pub_credit\": 10,\n"
        "  // \"sesion_timeout_ms\" in a comment does not count\n"
        "  \"sesion_timeout_ms\": 20000,\n"
        "  \"heartbeat\": 100,\n"
        "  \"completely_unrelated_thing\": 1\n"
        "}\n");
    ck_assert_int_eq (rc, -EINVAL);
    s_expect_error (4, "'sesion_timeout_ms'", "'session_timeout_ms'");
    s_expect_error (5, "'heartbeat'", "'heartbeat_ms'");
    s_expect_error (6, "'completely_unrelated_thing'", NULL);
    ck_assert_int_eq (s_lines (s_errors), 3);
    //  No suggestion for something far from every key.
    const char *line6 = strstr (s_errors, "completely_unrelated_thing");
    ck_assert_ptr_null (strstr (line6, "did you mean"));
    ck_assert_int_eq (config->session_timeout_ms, 15000);
    //  A failed load does not claim the file.
    ck_assert_ptr_null (config->file);

    ck_assert_str_eq (config_closest_key ("sesion_timeout_ms"), "session_timeout_ms");
    ck_assert_str_eq (config_closest_key ("queue_limt"), "queue_limit");
    ck_assert_str_eq (config_closest_key ("heartbeat"), "heartbeat_ms");
    ck_assert_str_eq (config_closest_key ("bnid"), "bind");
    ck_assert_ptr_null (config_closest_key ("completely_unrelated_thing"));
    ck_assert_ptr_null (config_closest_key (
        "a_key_name_that_is_much_longer_than_sixty_four_characters_in_total_length"));
    config_destroy (&config);
}
END_TEST

START_TEST (test_wrong_types)
{
    config_t *config = config_new ();
    int rc = s_load (config,
        "{\n"
        "  \"pub_credit\": \"x\",\n"
        "  \"syslog\": 1,\n"
        "  \"log_level\": 5,\n"
        "  \"backoff_jitter\": \"0.1\",\n"
        "  \"metrics_bind\": 9460,\n"
        "  \"plugins\": {},\n"
        "  \"max_deliver\": 2.5,\n"
        "  \"log_level\": \"loud\",\n"
        "  \"credit\": null,\n"
        "  \"queue_limit\": [1]\n"
        "}\n");
    ck_assert_int_eq (rc, -EINVAL);
    s_expect_error (2, "'pub_credit'", "number");
    s_expect_error (3, "'syslog'", "true or false");
    s_expect_error (4, "'log_level'", "string");
    s_expect_error (5, "'backoff_jitter'", "number");
    s_expect_error (6, "'metrics_bind'", "string");
    s_expect_error (7, "'plugins'", "array");
    s_expect_error (8, "'max_deliver'", "whole");
    //  A repeated key is reported at its first line, but the reason is the
    //  second value's.
    ck_assert_ptr_nonnull (strstr (s_errors, "'loud' is not one of debug"));
    s_expect_error (10, "'credit'", "number");
    s_expect_error (11, "'queue_limit'", "number");
    ck_assert_int_eq (s_lines (s_errors), 10);
    //  Nothing wrong was applied.
    ck_assert_int_eq (config->pub_credit, 1000);
    ck_assert_str_eq (config->log_level, "info");
    ck_assert_int_eq (config->max_deliver, 5);
    ck_assert_ptr_null (config->metrics_bind);
    ck_assert_ptr_null (config->plugins_json);
    ck_assert_ptr_null (config->file);
    config_destroy (&config);
}
END_TEST

START_TEST (test_out_of_range)
{
    config_t *config = config_new ();
    int rc = s_load (config,
        "{\n"
        "  \"pub_credit\": 0,\n"
        "  \"max_deliver\": 70000,\n"
        "  \"backoff_jitter\": 1.5,\n"
        "  \"session_timeout_ms\": 50,\n"
        "  \"dedup_window_ms\": -1,\n"
        "  \"backoff_multiplier\": 0.5,\n"
        "  \"queue_bytes\": 1e300,\n"
        "  \"credit\": 4294967296\n"
        "}\n");
    ck_assert_int_eq (rc, -EINVAL);
    s_expect_error (2, "'pub_credit'", "range");
    s_expect_error (3, "'max_deliver'", "70000");
    s_expect_error (4, "'backoff_jitter'", "range");
    s_expect_error (5, "'session_timeout_ms'", "range");
    s_expect_error (6, "'dedup_window_ms'", "range");
    s_expect_error (7, "'backoff_multiplier'", "range");
    s_expect_error (8, "'queue_bytes'", NULL);
    s_expect_error (9, "'credit'", "range");
    ck_assert_int_eq (s_lines (s_errors), 8);
    ck_assert_int_eq (config->pub_credit, 1000);
    ck_assert_int_eq (config->max_deliver, 5);

    //  The edges of each range are accepted.
    rc = s_load (config,
        "{ \"pub_credit\": 1, \"max_deliver\": 65535, \"backoff_jitter\": 1,\n"
        "  \"dedup_window_ms\": 0, \"credit\": 4294967295, \"backoff_multiplier\": 1,\n"
        "  \"max_payload\": 0, \"stats_interval_ms\": 0, \"sndhwm\": 0 }\n");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_int_eq (config->pub_credit, 1);
    ck_assert_int_eq (config->max_deliver, 65535);
    ck_assert_double_eq (config->backoff_jitter, 1);
    ck_assert_int_eq (config->dedup_window_ms, 0);
    ck_assert_int_eq (config->credit, 4294967295LL);
    config_destroy (&config);
}
END_TEST

START_TEST (test_syntax_error)
{
    config_t *config = config_new ();
    //  A missing comma: the line of the key after it.
    int rc = s_load (config,
        "{\n"
        "  // comment\n"
        "  \"pub_credit\": 10\n"
        "  \"credit\": 5\n"
        "}\n");
    ck_assert_int_eq (rc, -EINVAL);
    s_expect_error (4, "syntax", NULL);
    ck_assert_int_eq (s_lines (s_errors), 1);
    ck_assert_int_eq (config->pub_credit, 1000);

    //  A trailing comma (not JSON), after a multi-line block comment.
    rc = s_load (config,
        "{\n"
        "  /* one\n"
        "     two */\n"
        "  \"pub_credit\": 10,\n"
        "  \"credit\": 5,\n"
        "}\n");
    ck_assert_int_eq (rc, -EINVAL);
    s_expect_error (6, "syntax", NULL);

    //  A bad literal.
    rc = s_load (config, "{\n\n\n  \"syslog\": tru\n}\n");
    ck_assert_int_eq (rc, -EINVAL);
    s_expect_error (4, "syntax", "tru");

    //  The file ends early: the last line is named.
    rc = s_load (config, "{\n  \"pub_credit\": 10,\n  \"credit\": [1,\n\n");
    ck_assert_int_eq (rc, -EINVAL);
    ck_assert_msg (strstr (s_errors, "syntax"), "%s", s_errors);
    ck_assert_msg (strstr (s_errors, ":3: "), "%s", s_errors);

    //  An unterminated block comment hides the rest.
    rc = s_load (config, "{ \"pub_credit\": 10 /* never closed }\n");
    ck_assert_int_eq (rc, -EINVAL);
    ck_assert_msg (strstr (s_errors, "syntax"), "%s", s_errors);

    //  Something after the object.
    rc = s_load (config, "{ \"pub_credit\": 10 }\n{}\n");
    ck_assert_int_eq (rc, -EINVAL);
    s_expect_error (2, "syntax", NULL);

    //  Not an object at all.
    rc = s_load (config, "[ \"pub_credit\", 10 ]\n");
    ck_assert_int_eq (rc, -EINVAL);
    ck_assert_msg (strstr (s_errors, s_path) && strstr (s_errors, "object"), "%s", s_errors);

    //  An empty file, and one of only whitespace and comments.
    rc = s_load (config, "");
    ck_assert_int_eq (rc, -EINVAL);
    ck_assert_msg (strstr (s_errors, s_path) && strstr (s_errors, "empty"), "%s", s_errors);
    rc = s_load (config, "  // nothing here\n\n");
    ck_assert_int_eq (rc, -EINVAL);
    ck_assert_msg (strstr (s_errors, s_path), "%s", s_errors);

    //  A file that does not exist.
    memset (s_errors, 0, sizeof s_errors);
    rc = config_load_file (config, "/nonexistent/busd.json", s_errors, sizeof s_errors);
    ck_assert_int_eq (rc, -EINVAL);
    ck_assert_msg (strstr (s_errors, "/nonexistent/busd.json"), "%s", s_errors);
    ck_assert_int_eq (config->pub_credit, 1000);
    ck_assert_ptr_null (config->file);
    config_destroy (&config);
}
END_TEST

START_TEST (test_small_error_buffer)
{
    //  Messages are cut to the buffer and stay terminated.
    config_t *config = config_new ();
    const char *path = s_write ("{ \"nope\": 1, \"pub_credit\": \"x\", \"credit\": -5 }");
    char small [24];
    memset (small, 'x', sizeof small);
    ck_assert_int_eq (config_load_file (config, path, small, sizeof small), -EINVAL);
    ck_assert_ptr_nonnull (memchr (small, 0, sizeof small));
    unlink (path);
    config_destroy (&config);
}
END_TEST

START_TEST (test_bind)
{
    config_t *config = config_new ();
    int rc = s_load (config, "{ \"bind\": \"ipc:///tmp/busd.sock\" }");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_int_eq (config->bind_count, 1);
    ck_assert_str_eq (config->binds [0], "ipc:///tmp/busd.sock");

    rc = s_load (config, "{ \"bind\": [\"tcp://127.0.0.1:7460\", \"tcp://[::1]:7460\",\n"
                         "            \"inproc://busd\"] }");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_int_eq (config->bind_count, 3);
    ck_assert_str_eq (config->binds [0], "tcp://127.0.0.1:7460");
    ck_assert_str_eq (config->binds [1], "tcp://[::1]:7460");
    ck_assert_str_eq (config->binds [2], "inproc://busd");

    //  Back to one (the others are freed: valgrind).
    rc = s_load (config, "{ \"bind\": \"tcp://*:7470\" }");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_int_eq (config->bind_count, 1);
    ck_assert_str_eq (config->binds [0], "tcp://*:7470");

    //  Bad forms leave the endpoints as they were.
    static const char *bad [] = {
        "{ \"bind\": [] }",
        "{ \"bind\": 7460 }",
        "{ \"bind\": [\"tcp://127.0.0.1:1\", 7460] }",
        "{ \"bind\": [\"127.0.0.1:7460\"] }",
        "{ \"bind\": \"127.0.0.1:7460\" }",
        "{ \"bind\": [\"inproc://a1\",\"inproc://a2\",\"inproc://a3\",\"inproc://a4\",\"inproc://a5\",\"inproc://a6\",\"inproc://a7\","
        "\"inproc://a8\",\"inproc://a9\",\"inproc://a10\",\"inproc://a11\",\"inproc://a12\",\"inproc://a13\",\"inproc://a14\",\"inproc://a15\","
        "\"inproc://a16\",\"inproc://a17\"] }",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        rc = s_load (config, bad [i]);
        ck_assert_msg (rc == -EINVAL, "accepted %s", bad [i]);
        s_expect_error (1, "'bind'", NULL);
        ck_assert_int_eq (config->bind_count, 1);
        ck_assert_str_eq (config->binds [0], "tcp://*:7470");
    }
    //  Exactly CONFIG_MAX_BINDS is fine.
    rc = s_load (config, "{ \"bind\": [\"inproc://a1\",\"inproc://a2\",\"inproc://a3\",\"inproc://a4\",\"inproc://a5\",\"inproc://a6\","
                         "\"inproc://a7\",\"inproc://a8\",\"inproc://a9\",\"inproc://a10\",\"inproc://a11\",\"inproc://a12\",\"inproc://a13\","
                         "\"inproc://a14\",\"inproc://a15\",\"inproc://a16\"] }");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_int_eq (config->bind_count, CONFIG_MAX_BINDS);
    ck_assert_str_eq (config->binds [15], "inproc://a16");
    config_destroy (&config);
}
END_TEST

/*  ZeroMQ wraps port 99999 to some other port and calls a missing scheme
    "Invalid argument": the configuration refuses both, naming the value.  */
START_TEST (test_endpoints)
{
    config_t *config = config_new ();
    static const struct { const char *json, *fragment; } bad [] = {
        { "{ \"bind\": \"tcp://127.0.0.1:99999\" }", "99999" },
        { "{ \"bind\": [\"tcp://127.0.0.1:7460\", \"tcp://127.0.0.1:70000\"] }", "70000" },
        { "{ \"bind\": \"tcp://127.0.0.1\" }", "port" },
        { "{ \"bind\": \"tcp://127.0.0.1:http\" }", "http" },
        { "{ \"bind\": \"tcp://:7460\" }", "host" },
        { "{ \"bind\": \"udp://127.0.0.1:7460\" }", "udp" },
        { "{ \"bind\": \"127.0.0.1:7460\" }", "tcp://127.0.0.1:7460" },
        { "{ \"bind\": \"ipc://\" }", "ipc://" },
        { "{ \"metrics_bind\": \"127.0.0.1:99999\" }", "99999" },
        { "{ \"metrics_bind\": \"localhost:9460\" }", "IPv4" },
        { "{ \"metrics_bind\": \"http://127.0.0.1:9460\" }", "scheme" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        ck_assert_msg (s_load (config, bad [i].json) == -EINVAL, "accepted %s", bad [i].json);
        ck_assert_msg (strstr (s_errors, bad [i].fragment), "'%s' not in: %s", bad [i].fragment,
                       s_errors);
    }
    ck_assert_int_eq (s_load (config, "{ \"bind\": [\"tcp://*:*\", \"tcp://[::1]:65535\", "
                                      "\"tcp://localhost:1\", \"tcp://127.0.0.1:0\"], "
                                      "\"metrics_bind\": \":9460\" }"), 0);
    char err [256];
    ck_assert_int_eq (config_set (config, "bind", "tcp://127.0.0.1:99999", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "tcp://127.0.0.1:99999") && strstr (err, "65535"), "%s", err);
    ck_assert_int_eq (config_set (config, "metrics_bind", "0.0.0.0:0", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "0.0.0.0:0"), "%s", err);
    config_destroy (&config);
}
END_TEST

START_TEST (test_set)
{
    config_t *config = config_new ();
    char err [256];
    ck_assert_int_eq (config_set (config, "pub_credit", "500", err, sizeof err), 0);
    ck_assert_int_eq (config->pub_credit, 500);
    ck_assert_int_eq (config_set (config, "backoff_jitter", "0.05", err, sizeof err), 0);
    ck_assert_double_eq_tol (config->backoff_jitter, 0.05, 1e-12);
    ck_assert_int_eq (config_set (config, "log_level", "warning", err, sizeof err), 0);
    ck_assert_str_eq (config->log_level, "warning");
    ck_assert_int_eq (config_set (config, "metrics_bind", "0.0.0.0:9100", err, sizeof err), 0);
    ck_assert_str_eq (config->metrics_bind, "0.0.0.0:9100");
    ck_assert_int_eq (config_set (config, "syslog", "true", err, sizeof err), 0);
    ck_assert (config->syslog);
    ck_assert_int_eq (config_set (config, "syslog", "false", err, sizeof err), 0);
    ck_assert (!config->syslog);
    ck_assert_int_eq (config_set (config, "syslog", "1", err, sizeof err), 0);
    ck_assert (config->syslog);
    ck_assert_int_eq (config_set (config, "syslog", "0", err, sizeof err), 0);
    ck_assert (!config->syslog);

    //  Errors name the key and leave the value alone.
    err [0] = 0;
    ck_assert_int_eq (config_set (config, "pub_credit", "abc", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "pub_credit") && strstr (err, "abc"), "%s", err);
    ck_assert_int_eq (config_set (config, "pub_credit", "12x", err, sizeof err), -EINVAL);
    ck_assert_int_eq (config_set (config, "pub_credit", "", err, sizeof err), -EINVAL);
    ck_assert_int_eq (config_set (config, "pub_credit", "0", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "pub_credit") && strstr (err, "range"), "%s", err);
    ck_assert_int_eq (config_set (config, "max_deliver", "1.5", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "max_deliver"), "%s", err);
    ck_assert_int_eq (config->pub_credit, 500);
    ck_assert_int_eq (config_set (config, "log_level", "chatty", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "log_level") && strstr (err, "chatty"), "%s", err);
    ck_assert_str_eq (config->log_level, "warning");
    ck_assert_int_eq (config_set (config, "syslog", "maybe", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "syslog"), "%s", err);
    ck_assert (!config->syslog);
    ck_assert_int_eq (config_set (config, "nonsense", "1", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "nonsense"), "%s", err);

    //  --bind accumulates, checks the form, and stops at the maximum.
    ck_assert_int_eq (config_set (config, "bind", "tcp://127.0.0.1:1", err, sizeof err), 0);
    ck_assert_int_eq (config_set (config, "bind", "ipc:///tmp/x", err, sizeof err), 0);
    ck_assert_int_eq (config->bind_count, 2);
    ck_assert_str_eq (config->binds [1], "ipc:///tmp/x");
    ck_assert_int_eq (config_set (config, "bind", "localhost:1", err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "localhost:1"), "%s", err);
    for (int i = 2; i < CONFIG_MAX_BINDS; i++)
        ck_assert_int_eq (config_set (config, "bind", "inproc://b", err, sizeof err), 0);
    ck_assert_int_eq (config_set (config, "bind", "inproc://b", err, sizeof err), -EINVAL);
    ck_assert_int_eq (config->bind_count, CONFIG_MAX_BINDS);
    config_destroy (&config);
}
END_TEST

START_TEST (test_validate)
{
    config_t *config = config_new ();
    char err [512] = "";
    config->heartbeat_ms = 15000;       //  equal to session_timeout_ms
    ck_assert_int_eq (config_validate (config, err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "heartbeat_ms") && strstr (err, "session_timeout_ms"), "%s", err);
    err [0] = 0;
    config->heartbeat_ms = 20000;
    ck_assert_int_eq (config_validate (config, err, sizeof err), -EINVAL);
    err [0] = 0;
    config->heartbeat_ms = 14999;
    ck_assert_int_eq (config_validate (config, err, sizeof err), 0);
    ck_assert_str_eq (err, "");

    config->backoff_initial_ms = 70000;
    ck_assert_int_eq (config_validate (config, err, sizeof err), -EINVAL);
    ck_assert_msg (strstr (err, "backoff_initial_ms") && strstr (err, "backoff_max_ms"), "%s", err);
    //  Both problems at once: both reported, and the file is named.
    err [0] = 0;
    int rc = s_load (config, "{ \"heartbeat_ms\": 16000 }");
    ck_assert_msg (rc == 0, "%s", s_errors);
    ck_assert_int_eq (config_validate (config, err, sizeof err), -EINVAL);
    ck_assert_int_eq (s_lines (err), 2);
    ck_assert_msg (strstr (err, s_path), "%s", err);
    config_destroy (&config);
}
END_TEST

START_TEST (test_diff)
{
    config_t *old = config_new ();
    config_t *cur = config_new ();
    char restart [256] = "junk";
    ck_assert_int_eq (config_diff (old, cur, restart, sizeof restart), 0);
    ck_assert_str_eq (restart, "");

    //  Reloadable changes: counted, no restart.
    cur->pub_credit = 5;
    cur->backoff_jitter = 0.5;
    free (cur->log_level);
    cur->log_level = strdup ("debug");
    cur->plugins_json = strdup ("[]");
    ck_assert_int_eq (config_diff (old, cur, restart, sizeof restart), 4);
    ck_assert_str_eq (restart, "");

    //  Endpoints, the metrics endpoint and sndhwm need a restart.
    ck_assert_int_eq (config_set (cur, "bind", "tcp://127.0.0.1:9", restart, sizeof restart), 0);
    cur->metrics_bind = strdup ("127.0.0.1:9460");
    cur->sndhwm = 10;
    ck_assert_int_eq (config_diff (old, cur, restart, sizeof restart), 7);
    ck_assert_msg (strstr (restart, "bind") && strstr (restart, "metrics_bind")
                && strstr (restart, "sndhwm"), "%s", restart);
    ck_assert_ptr_null (strstr (restart, "pub_credit"));
    ck_assert_ptr_null (strstr (restart, "log_level"));

    //  Same endpoints in both: no difference; a different one: a difference.
    ck_assert_int_eq (config_set (old, "bind", "tcp://127.0.0.1:9", restart, sizeof restart), 0);
    old->metrics_bind = strdup ("127.0.0.1:9460");
    old->sndhwm = 10;
    ck_assert_int_eq (config_diff (old, cur, restart, sizeof restart), 4);
    ck_assert_str_eq (restart, "");
    free (cur->binds [0]);
    cur->binds [0] = strdup ("tcp://127.0.0.1:10");
    ck_assert_int_eq (config_diff (old, cur, restart, sizeof restart), 5);
    ck_assert_str_eq (restart, "bind");
    //  The reload log line names every key that changed.
    char names [512];
    ck_assert_int_eq (config_changed_keys (old, cur, names, sizeof names), 5);
    ck_assert_msg (strstr (names, "bind") && strstr (names, "pub_credit")
                   && strstr (names, "log_level") && strstr (names, "plugins"), "%s", names);
    ck_assert_int_eq (config_changed_keys (old, old, names, sizeof names), 0);
    ck_assert_str_eq (names, "");
    config_destroy (&old);
    config_destroy (&cur);
}
END_TEST

/*  ---- durable streams ("data_dir", "streams") --------------------------- */

START_TEST (test_streams)
{
    config_t *config = config_new ();
    ck_assert_ptr_null (config->data_dir);
    ck_assert_int_eq (config->stream_count, 0);
    ck_assert_int_eq (s_load (config,
        "{\n"
        "  \"data_dir\": \"/var/lib/busd\",\n"
        "  \"streams\": [{ \"name\": \"payments\", \"patterns\": [\"payment.#\"],\n"
        "    \"max_events\": 10000000, \"max_bytes\": \"10GiB\", \"max_age\": \"7d\",\n"
        "    \"sync\": \"always\" },\n"
        "    { \"name\": \"audit-log_2\", \"patterns\": [\"audit.*\", \"user.created\"],\n"
        "      \"max_bytes\": 5000, \"max_age\": 90, \"sync\": \"interval\",\n"
        "      \"sync_interval_ms\": 250, \"max_cursors\": 3 },\n"
        "    { \"name\": \"n\", \"patterns\": [\"#\"], \"sync\": \"never\",\n"
        "      \"max_bytes\": \"1.5MB\", \"max_age\": \"250ms\" }]\n"
        "}\n"), 0);
    ck_assert_str_eq (config->data_dir, "/var/lib/busd");
    ck_assert_int_eq (config->stream_count, 3);
    const stream_config_t *p = &config->streams [0];
    ck_assert_str_eq (p->name, "payments");
    ck_assert_int_eq (p->pattern_count, 1);
    ck_assert_str_eq (p->patterns [0], "payment.#");
    ck_assert_int_eq (p->max_events, 10000000);
    ck_assert_int_eq (p->max_bytes, 10LL * 1024 * 1024 * 1024);
    ck_assert_int_eq (p->max_age_ms, 7LL * 86400 * 1000);
    ck_assert_int_eq (p->sync, STREAM_SYNC_ALWAYS);
    const stream_config_t *a = &config->streams [1];
    ck_assert_str_eq (a->name, "audit-log_2");
    ck_assert_int_eq (a->pattern_count, 2);
    ck_assert_str_eq (a->patterns [1], "user.created");
    ck_assert_int_eq (a->max_events, 0);
    ck_assert_int_eq (a->max_bytes, 5000);
    ck_assert_int_eq (a->max_age_ms, 90000);
    ck_assert_int_eq (a->sync, STREAM_SYNC_INTERVAL);
    ck_assert_int_eq (a->sync_interval_ms, 250);
    ck_assert_int_eq (a->max_cursors, 3);
    ck_assert_int_eq (p->max_cursors, 1000);
    const stream_config_t *n = &config->streams [2];
    ck_assert_int_eq (n->sync, STREAM_SYNC_NEVER);
    ck_assert_int_eq (n->max_bytes, 1500000);
    ck_assert_int_eq (n->max_age_ms, 250);
    ck_assert_int_eq (n->sync_interval_ms, 1000);
    s_errors [0] = 0;
    ck_assert_int_eq (config_validate (config, s_errors, sizeof s_errors), 0);
    //  A reload may change streams, not data_dir.
    config_t *cur = config_new ();
    ck_assert_int_eq (s_load (cur,
        "{ \"data_dir\": \"/srv/busd\",\n"
        "  \"streams\": [{ \"name\": \"payments\", \"patterns\": [\"payment.#\"] }] }\n"), 0);
    char restart [256];
    ck_assert_int_eq (config_diff (config, cur, restart, sizeof restart), 2);
    ck_assert_str_eq (restart, "data_dir");
    config_destroy (&cur);
    config_destroy (&config);
}
END_TEST

START_TEST (test_streams_errors)
{
    struct { const char *json; const char *f1, *f2; } cases [] = {
        { "{\"streams\": {}}", "streams", "array" },
        { "{\"streams\": [3]}", "entry 1", "object" },
        { "{\"streams\": [{\"patterns\": [\"a\"]}]}", "entry 1", "'name' is required" },
        { "{\"streams\": [{\"name\": \"a b\", \"patterns\": [\"a\"]}]}", "name 'a b'", "A-Z" },
        { "{\"streams\": [{\"name\": \"s\"}]}", "stream 's'", "'patterns' is required" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": []}]}", "stream 's'", "patterns" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a.#.b\"]}]}", "pattern 'a.#.b'", "not valid" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"], \"max_bytes\": \"10XB\"}]}", "max_bytes", "10GiB" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"], \"max_age\": \"7y\"}]}", "max_age", "7d" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"], \"max_events\": -1}]}", "max_events", ">= 0" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"], \"sync\": \"sometimes\"}]}", "'sync'", "always, interval, never" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"], \"sync_interval_ms\": 0}]}", "sync_interval_ms", "1..3600000" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"], \"max_cursors\": 0}]}", "max_cursors", "1..1000000" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"], \"maxevents\": 1}]}", "unknown key 'maxevents'", "max_events" },
        { "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"]}, {\"name\": \"s\", \"patterns\": [\"b\"]}]}", "entry 2", "used twice" },
        { "{\"data_dir\": 5}", "data_dir", "string" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        config_t *config = config_new ();
        ck_assert_int_eq (s_load (config, cases [i].json), -EINVAL);
        s_expect_error (1, cases [i].f1, cases [i].f2);
        config_destroy (&config);
    }
    //  Streams without a data_dir cannot work: validate says what to set.
    config_t *config = config_new ();
    ck_assert_int_eq (s_load (config, "{\"streams\": [{\"name\": \"s\", \"patterns\": [\"a\"]}]}"), 0);
    s_errors [0] = 0;
    ck_assert_int_eq (config_validate (config, s_errors, sizeof s_errors), -EINVAL);
    ck_assert_ptr_nonnull (strstr (s_errors, "data_dir"));
    config_destroy (&config);
}
END_TEST

START_TEST (test_sizes_and_durations)
{
    struct { const char *json; int64_t bytes; int ok; } sizes [] = {
        { "0", 0, 1 }, { "1048576", 1048576, 1 }, { "\"10GiB\"", 10737418240LL, 1 },
        { "\"512MB\"", 512000000, 1 }, { "\"4KiB\"", 4096, 1 }, { "\"100B\"", 100, 1 },
        { "\"2TiB\"", 2199023255552LL, 1 }, { "\"1.5\"", 1, 1 }, { "-1", 0, 0 },
        { "\"ten\"", 0, 0 }, { "\"5 GiB\"", 5368709120LL, 1 }, { "true", 0, 0 }, { "1e300", 0, 0 }
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes [0]; i++) {
        cJSON *item = cJSON_Parse (sizes [i].json);
        int64_t v = -1;
        int rc = config_parse_size (item, &v);
        ck_assert_msg ((rc == 0) == sizes [i].ok, "size %s", sizes [i].json);
        if (sizes [i].ok)
            ck_assert_msg (v == sizes [i].bytes, "size %s: %lld", sizes [i].json, (long long) v);
        cJSON_Delete (item);
    }
    struct { const char *json; int64_t ms; int ok; } durations [] = {
        { "60", 60000, 1 }, { "\"7d\"", 604800000, 1 }, { "\"12h\"", 43200000, 1 },
        { "\"30m\"", 1800000, 1 }, { "\"90s\"", 90000, 1 }, { "\"250ms\"", 250, 1 },
        { "\"2w\"", 1209600000, 1 }, { "\"1y\"", 0, 0 }, { "-5", 0, 0 }, { "\"\"", 0, 0 },
        //  max_age is taken in microseconds by the store: 9e15 ms at most,
        //  as a number of seconds too.
        { "9000000000000", 9000000000000000LL, 1 }, { "9000000000001", 0, 0 },
        { "9000000000000000", 0, 0 }, { "\"9000000000001s\"", 0, 0 }
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations [0]; i++) {
        cJSON *item = cJSON_Parse (durations [i].json);
        int64_t v = -1;
        int rc = config_parse_duration_ms (item, &v);
        ck_assert_msg ((rc == 0) == durations [i].ok, "duration %s", durations [i].json);
        if (durations [i].ok)
            ck_assert_msg (v == durations [i].ms, "duration %s: %lld", durations [i].json,
                           (long long) v);
        cJSON_Delete (item);
    }
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("config");
    TCase *tc = tcase_create ("load");
    tcase_add_test (tc, test_defaults);
    tcase_add_test (tc, test_load_with_comments);
    tcase_add_test (tc, test_unknown_key);
    tcase_add_test (tc, test_wrong_types);
    tcase_add_test (tc, test_out_of_range);
    tcase_add_test (tc, test_syntax_error);
    tcase_add_test (tc, test_small_error_buffer);
    tcase_add_test (tc, test_bind);
    tcase_add_test (tc, test_endpoints);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("set");
    tcase_add_test (tc, test_set);
    tcase_add_test (tc, test_validate);
    tcase_add_test (tc, test_diff);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("streams");
    tcase_add_test (tc, test_streams);
    tcase_add_test (tc, test_streams_errors);
    tcase_add_test (tc, test_sizes_and_durations);
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
