/*  check_jsontext.c — unit tests for src/broker/jsontext.c: the sanitizer
    that makes every JSON string the broker prints valid UTF-8.              */
#include "jsontext.h"
#include "utf8.h"

#include <check.h>
#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    Suite *suite = suite_create ("jsontext");
    TCase *tc = tcase_create ("jsontext");
    tcase_add_test (tc, test_json_sanitize);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
