/*  check_headers.c — unit tests for src/broker/headers.c: the PUB headers
    frame rule (a UTF-8 JSON object of string values) and the sanitizer that
    makes every JSON string the broker prints valid UTF-8.                   */
#include "headers.h"
#include "utf8.h"

#include <check.h>
#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int
s_check (const char *text, const char **why)
{
    *why = NULL;
    return headers_check (text, strlen (text), why);
}

START_TEST (test_headers_check)
{
    const char *why;
    ck_assert_int_eq (s_check ("{}", &why), 0);
    ck_assert_int_eq (s_check ("{\"a\": \"b\", \"x-caf\xC3\xA9\": \"\xE2\x82\xAC\"}", &why), 0);
    ck_assert_int_eq (s_check ("{\"a\": \"\xFF\"}", &why), -EINVAL);
    ck_assert_str_eq (why, "headers frame is not valid UTF-8");
    ck_assert_int_eq (s_check ("{\"a\": \"\xED\xA0\x80\"}", &why), -EINVAL);   //  surrogate
    ck_assert_int_eq (s_check ("[1]", &why), -EINVAL);
    ck_assert_str_eq (why, "headers frame is not a JSON object");
    ck_assert_int_eq (s_check ("{\"a\": 1}", &why), -EINVAL);
    ck_assert_str_eq (why, "header values must be strings");
    ck_assert_int_eq (s_check ("{\"a\": \"b\"", &why), -EINVAL);
    ck_assert_int_eq (headers_check ("", 0, &why), -EINVAL);
    //  why may be NULL
    ck_assert_int_eq (headers_check ("[]", 2, NULL), -EINVAL);
}
END_TEST

START_TEST (test_json_sanitize)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "name", "evil \xFF\xFE name \xE2\x82");
    cJSON *list = cJSON_AddArrayToObject (root, "list");
    cJSON *item = cJSON_CreateObject ();
    cJSON_AddStringToObject (item, "k\xC3", "fine \xE2\x82\xAC");
    cJSON_AddItemToArray (list, item);
    cJSON_AddNumberToObject (root, "n", 5);
    json_utf8_sanitize (root);
    char *text = cJSON_PrintUnformatted (root);
    ck_assert (busp_utf8_valid (text, strlen (text)));
    ck_assert_ptr_nonnull (strstr (text, "evil " BUSP_UTF8_REPLACEMENT BUSP_UTF8_REPLACEMENT " name "));
    ck_assert_ptr_nonnull (strstr (text, "fine \xE2\x82\xAC"));
    ck_assert_ptr_nonnull (strstr (text, "\"n\":5"));
    free (text);
    cJSON_Delete (root);
    //  NULL and valid trees are left alone.
    json_utf8_sanitize (NULL);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("headers");
    TCase *tc = tcase_create ("headers");
    tcase_add_test (tc, test_headers_check);
    tcase_add_test (tc, test_json_sanitize);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
