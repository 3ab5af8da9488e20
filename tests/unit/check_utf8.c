/*  check_utf8.c — unit tests for src/common/utf8.c: strict validation
    (overlongs, surrogates, code points above U+10FFFF, truncated
    sequences), replacement of invalid bytes, and length limits that never
    cut a character in half.                                                 */
#include "utf8.h"

#include <check.h>
#include <string.h>

START_TEST (test_valid)
{
    ck_assert (busp_utf8_valid ("", 0));
    ck_assert (busp_utf8_valid ("plain ascii", 11));
    ck_assert (busp_utf8_valid ("caf\xC3\xA9", 5));                 //  é
    ck_assert (busp_utf8_valid ("\xE2\x82\xAC", 3));                //  €
    ck_assert (busp_utf8_valid ("\xF0\x9F\x98\x80", 4));            //  U+1F600
    ck_assert (busp_utf8_valid ("\xF4\x8F\xBF\xBF", 4));            //  U+10FFFF
    ck_assert (busp_utf8_valid ("\xEF\xBF\xBD", 3));                //  U+FFFD
    ck_assert (busp_utf8_valid ("a\0b", 3));                        //  NUL is a character

    ck_assert (!busp_utf8_valid ("\x80", 1));                       //  lone continuation
    ck_assert (!busp_utf8_valid ("\xC3", 1));                       //  truncated
    ck_assert (!busp_utf8_valid ("\xE2\x82", 2));                   //  truncated
    ck_assert (!busp_utf8_valid ("\xC0\xAF", 2));                   //  overlong '/'
    ck_assert (!busp_utf8_valid ("\xC1\xBF", 2));                   //  overlong
    ck_assert (!busp_utf8_valid ("\xE0\x80\xAF", 3));               //  overlong
    ck_assert (!busp_utf8_valid ("\xF0\x80\x80\xAF", 4));           //  overlong
    ck_assert (!busp_utf8_valid ("\xED\xA0\x80", 3));               //  surrogate D800
    ck_assert (!busp_utf8_valid ("\xF4\x90\x80\x80", 4));           //  U+110000
    ck_assert (!busp_utf8_valid ("\xF5\x80\x80\x80", 4));
    ck_assert (!busp_utf8_valid ("\xFF", 1));
    ck_assert (!busp_utf8_valid ("\xE2\x28\xA1", 3));               //  bad continuation
    ck_assert (!busp_utf8_valid ("ok\xC3", 3));
}
END_TEST

START_TEST (test_char_len)
{
    ck_assert_uint_eq (busp_utf8_char_len ("a", 1), 1);
    ck_assert_uint_eq (busp_utf8_char_len ("\xC3\xA9x", 3), 2);
    ck_assert_uint_eq (busp_utf8_char_len ("\xE2\x82\xAC", 3), 3);
    ck_assert_uint_eq (busp_utf8_char_len ("\xF0\x9F\x98\x80", 4), 4);
    //  The length bound is respected: a sequence past it is not read.
    ck_assert_uint_eq (busp_utf8_char_len ("\xF0\x9F\x98\x80", 3), 0);
    ck_assert_uint_eq (busp_utf8_char_len ("", 0), 0);
}
END_TEST

START_TEST (test_sanitize)
{
    char out [64];
    bool cut = true;
    //  Valid text comes through byte for byte.
    ck_assert_uint_eq (busp_utf8_sanitize ("caf\xC3\xA9", 5, out, sizeof out, &cut), 5);
    ck_assert_str_eq (out, "caf\xC3\xA9");
    ck_assert (!cut);

    //  Every invalid byte becomes one U+FFFD; the valid bytes around stay.
    size_t n = busp_utf8_sanitize ("a\xFF" "b\xC3", 4, out, sizeof out, &cut);
    ck_assert_str_eq (out, "a" BUSP_UTF8_REPLACEMENT "b" BUSP_UTF8_REPLACEMENT);
    ck_assert_uint_eq (n, 8);
    ck_assert (busp_utf8_valid (out, n));
    ck_assert (!cut);

    //  An overlong encoding is two invalid bytes, not one character.
    n = busp_utf8_sanitize ("\xC0\xAF", 2, out, sizeof out, NULL);
    ck_assert_str_eq (out, BUSP_UTF8_REPLACEMENT BUSP_UTF8_REPLACEMENT);

    //  Room for 4 bytes: "ab" + "é" fits (4), the euro sign (3 more) does
    //  not, and is left out whole.
    n = busp_utf8_sanitize ("ab\xC3\xA9\xE2\x82\xAC", 7, out, 5, &cut);
    ck_assert_uint_eq (n, 4);
    ck_assert_str_eq (out, "ab\xC3\xA9");
    ck_assert (cut);
    //  A replacement that does not fit is left out too.
    n = busp_utf8_sanitize ("abc\xFF", 4, out, 6, &cut);
    ck_assert_uint_eq (n, 3);
    ck_assert (cut);

    //  cap 1: just the NUL.
    n = busp_utf8_sanitize ("abc", 3, out, 1, &cut);
    ck_assert_uint_eq (n, 0);
    ck_assert_str_eq (out, "");
    ck_assert (cut);
}
END_TEST

/*  Whatever bytes go in, what comes out is valid and within the limit.     */
START_TEST (test_sanitize_all_bytes)
{
    char in [256], out [256];
    for (int i = 0; i < 256; i++)
        in [i] = (char) i;
    for (size_t cap = 1; cap <= sizeof out; cap++) {
        size_t n = busp_utf8_sanitize (in, sizeof in, out, cap, NULL);
        ck_assert_uint_lt (n, cap);
        ck_assert (busp_utf8_valid (out, n));
        ck_assert_int_eq (out [n], 0);
    }
}
END_TEST

START_TEST (test_prefix)
{
    const char *s = "ab\xE2\x82\xAC" "cd";     //  a b € c d (7 bytes)
    ck_assert_uint_eq (busp_utf8_prefix (s, 7, 100), 7);
    ck_assert_uint_eq (busp_utf8_prefix (s, 7, 7), 7);
    ck_assert_uint_eq (busp_utf8_prefix (s, 7, 5), 5);
    //  A limit inside the euro sign drops it whole.
    ck_assert_uint_eq (busp_utf8_prefix (s, 7, 4), 2);
    ck_assert_uint_eq (busp_utf8_prefix (s, 7, 3), 2);
    ck_assert_uint_eq (busp_utf8_prefix (s, 7, 2), 2);
    ck_assert_uint_eq (busp_utf8_prefix (s, 7, 0), 0);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("utf8");
    TCase *tc = tcase_create ("utf8");
    tcase_add_test (tc, test_valid);
    tcase_add_test (tc, test_char_len);
    tcase_add_test (tc, test_sanitize);
    tcase_add_test (tc, test_sanitize_all_bytes);
    tcase_add_test (tc, test_prefix);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
