/*  check_util.c — unit tests for src/common/util.c: reading a file whole
    (empty, binary with NUL bytes, larger than one read, missing, a
    directory), appending to a bounded error buffer up to and past its end,
    and the signal helper's promise of no SA_RESTART.                       */
#include "util.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir [] = "/tmp/check_util.XXXXXX";

static void
s_setup (void)
{
    ck_assert_ptr_nonnull (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    char command [64];
    snprintf (command, sizeof command, "rm -rf %s", s_dir);
    ck_assert_int_eq (system (command), 0);
    strcpy (s_dir, "/tmp/check_util.XXXXXX");
}

//  Write size bytes to a file in the test directory; returns its path.
static const char *
s_write (const char *name, const void *data, size_t size)
{
    static char path [128];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    FILE *file = fopen (path, "wb");
    ck_assert_ptr_nonnull (file);
    ck_assert_uint_eq (fwrite (data, 1, size, file), size);
    ck_assert_int_eq (fclose (file), 0);
    return path;
}

START_TEST (test_read_file)
{
    char *text = NULL;
    size_t size = 99;

    //  Text comes back NUL-terminated, ready to parse in place.
    ck_assert_int_eq (busp_read_file (s_write ("a.json", "{\"a\": 1}\n", 9), &text, &size), 0);
    ck_assert_uint_eq (size, 9);
    ck_assert_str_eq (text, "{\"a\": 1}\n");
    free (text);

    //  An empty file is text of length 0, not an error: callers word that.
    text = NULL;
    ck_assert_int_eq (busp_read_file (s_write ("empty", "", 0), &text, &size), 0);
    ck_assert_uint_eq (size, 0);
    ck_assert_ptr_nonnull (text);
    ck_assert_int_eq (text [0], 0);
    free (text);

    //  Binary-safe, and larger than one 4 KiB chunk.
    size_t big_size = 3 * 4096 + 17;
    unsigned char *big = malloc (big_size);
    ck_assert_ptr_nonnull (big);
    for (size_t i = 0; i < big_size; i++)
        big [i] = (unsigned char) (i * 7);
    ck_assert_int_eq (busp_read_file (s_write ("big", big, big_size), &text, &size), 0);
    ck_assert_uint_eq (size, big_size);
    ck_assert_int_eq (memcmp (text, big, big_size), 0);
    ck_assert_int_eq (text [big_size], 0);
    free (text);
    free (big);

    //  Failures leave the outputs alone.
    char path [128];
    snprintf (path, sizeof path, "%s/missing", s_dir);
    char untouched [] = "untouched";
    text = untouched;
    size = 5;
    ck_assert_int_eq (busp_read_file (path, &text, &size), -ENOENT);
    ck_assert_str_eq (text, "untouched");
    ck_assert_uint_eq (size, 5);
    //  fopen opens a directory; the read then fails, and says so.
    ck_assert_int_eq (busp_read_file (s_dir, &text, &size), -EISDIR);
    ck_assert_str_eq (text, "untouched");
}
END_TEST

START_TEST (test_appendf)
{
    char buf [16] = "";
    busp_appendf (buf, sizeof buf, "%s", "abc");
    ck_assert_str_eq (buf, "abc");
    busp_appendf (buf, sizeof buf, "-%d", 42);
    ck_assert_str_eq (buf, "abc-42");
    //  What does not fit is cut, and the text stays terminated.
    busp_appendf (buf, sizeof buf, "%s", "0123456789");
    ck_assert_str_eq (buf, "abc-42012345678");
    ck_assert_uint_eq (strlen (buf), sizeof buf - 1);
    //  A full buffer is left as it is.
    busp_appendf (buf, sizeof buf, "more");
    ck_assert_str_eq (buf, "abc-42012345678");

    char tiny [1] = "";
    busp_appendf (tiny, sizeof tiny, "x");
    ck_assert_int_eq (tiny [0], 0);
}
END_TEST

static volatile sig_atomic_t s_caught [3];

static void
s_handler (int sig)
{
    s_caught [sig == SIGTERM ? 0 : sig == SIGINT ? 1 : 2] = sig;
}

START_TEST (test_base64_decode)
{
    size_t size = 99;
    unsigned char *out = busp_base64_decode ("aGVsbG8=", &size);
    ck_assert_ptr_nonnull (out);
    ck_assert_uint_eq (size, 5);
    ck_assert_int_eq (memcmp (out, "hello", 5), 0);
    free (out);
    out = busp_base64_decode ("AP8", &size);          /*  padding optional */
    ck_assert_ptr_nonnull (out);
    ck_assert_uint_eq (size, 2);
    ck_assert_uint_eq (out [0], 0x00);
    ck_assert_uint_eq (out [1], 0xff);
    free (out);
    out = busp_base64_decode ("", &size);
    ck_assert_ptr_nonnull (out);
    ck_assert_uint_eq (size, 0);
    free (out);
    ck_assert_ptr_null (busp_base64_decode ("no spaces", &size));
    ck_assert_ptr_null (busp_base64_decode ("a-b_", &size));   /*  not base64url */
}
END_TEST

START_TEST (test_catch_signals)
{
    ck_assert_int_eq (busp_catch_signals (s_handler), 0);
    int signals [] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++) {
        struct sigaction sa;
        ck_assert_int_eq (sigaction (signals [i], NULL, &sa), 0);
        ck_assert_ptr_eq ((void *) sa.sa_handler, (void *) s_handler);
        ck_assert_int_eq (sa.sa_flags & SA_RESTART, 0);
        ck_assert_int_eq (raise (signals [i]), 0);
        ck_assert_int_eq (s_caught [i], signals [i]);
        signal (signals [i], SIG_DFL);
    }
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("util");
    TCase *tc = tcase_create ("util");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_read_file);
    tcase_add_test (tc, test_appendf);
    tcase_add_test (tc, test_base64_decode);
    tcase_add_test (tc, test_catch_signals);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
