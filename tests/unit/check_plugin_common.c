/*  check_plugin_common.c — unit tests for the helpers the shipped plugins
    share (plugins/common): UTF-8 validation at every boundary RFC 3629
    draws, JSON string escaping (checked by the bytes it produces), base64
    against RFC 4648's test vectors, the sanitizer that turns untrusted
    output into one printable line, the stderr tail ring across wrap-around,
    Retry-After in both of its forms, and the config checks with the exact
    messages an operator reads.                                             */
#include "plugin_common.h"

#include <cJSON.h>
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define VALID(lit) pc_utf8_valid (lit, sizeof (lit) - 1)

START_TEST (test_utf8)
{
    ck_assert (pc_utf8_valid ("", 0));
    ck_assert (VALID ("plain ascii"));
    ck_assert (VALID ("a\0b"));                     //  NUL is a character
    ck_assert (VALID ("caf\xc3\xa9"));              //  é
    ck_assert (VALID ("\xe2\x82\xac"));             //  €
    ck_assert (VALID ("\xf0\x9f\x98\x80"));         //  U+1F600
    ck_assert (VALID ("\xc2\x80"));                 //  U+0080, lowest 2-byte
    ck_assert (VALID ("\xe0\xa0\x80"));             //  U+0800, lowest 3-byte
    ck_assert (VALID ("\xed\x9f\xbf"));             //  U+D7FF, below surrogates
    ck_assert (VALID ("\xee\x80\x80"));             //  U+E000, above them
    ck_assert (VALID ("\xf0\x90\x80\x80"));         //  U+10000
    ck_assert (VALID ("\xf4\x8f\xbf\xbf"));         //  U+10FFFF, the last

    ck_assert (!VALID ("\x80"));                    //  lone continuation
    ck_assert (!VALID ("\xbf"));
    ck_assert (!VALID ("\xc0\xaf"));                //  overlong '/'
    ck_assert (!VALID ("\xc1\xbf"));
    ck_assert (!VALID ("\xe0\x9f\xbf"));            //  overlong 3-byte
    ck_assert (!VALID ("\xf0\x8f\xbf\xbf"));        //  overlong 4-byte
    ck_assert (!VALID ("\xed\xa0\x80"));            //  U+D800 surrogate
    ck_assert (!VALID ("\xed\xbf\xbf"));            //  U+DFFF surrogate
    ck_assert (!VALID ("\xf4\x90\x80\x80"));        //  U+110000
    ck_assert (!VALID ("\xf5\x80\x80\x80"));
    ck_assert (!VALID ("\xff"));
    ck_assert (!VALID ("\xfe"));
    ck_assert (!VALID ("\xc3"));                    //  truncated at the end
    ck_assert (!VALID ("\xe2\x82"));
    ck_assert (!VALID ("\xf0\x9f\x98"));
    ck_assert (!VALID ("\xe2\x28\xa1"));            //  bad second byte
    ck_assert (!VALID ("\xf0\x9f\x28\x80"));        //  bad third byte
    ck_assert (!VALID ("ok then \xc3\x28"));
    //  Valid text followed by a byte cut off by the length.
    ck_assert (!pc_utf8_valid ("\xe2\x82\xac", 2));
}
END_TEST

static char *
s_json (const void *text, size_t len)
{
    pc_buf_t buf;
    pc_buf_init (&buf);
    ck_assert_int_eq (pc_json_append_string (&buf, text, len), 0);
    return buf.data;
}

#define JSON_IS(lit, expect) do {                       \
    char *got_ = s_json (lit, sizeof (lit) - 1);        \
    ck_assert_str_eq (got_, expect);                    \
    free (got_);                                        \
} while (0)

START_TEST (test_json_escape)
{
    JSON_IS ("", "\"\"");
    JSON_IS ("hello", "\"hello\"");
    JSON_IS ("say \"hi\"", "\"say \\\"hi\\\"\"");
    JSON_IS ("back\\slash", "\"back\\\\slash\"");
    JSON_IS ("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    JSON_IS ("\x01\x1f", "\"\\u0001\\u001f\"");
    JSON_IS ("a\0b", "\"a\\u0000b\"");
    JSON_IS ("/ and \x7f", "\"/ and \x7f\"");       //  neither needs escaping
    JSON_IS ("caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    //  Malformed bytes cannot appear in JSON text: each becomes U+FFFD.
    JSON_IS ("a\xff" "b", "\"a\\ufffdb\"");
    JSON_IS ("\xc3", "\"\\ufffd\"");
    JSON_IS ("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");

    //  Appends to what is there; the result is NUL-terminated.
    pc_buf_t buf;
    pc_buf_init (&buf);
    ck_assert_int_eq (pc_buf_append_str (&buf, "{\"k\":"), 0);
    ck_assert_int_eq (pc_json_append_string (&buf, "v", 1), 0);
    ck_assert_int_eq (pc_buf_appendf (&buf, ",\"n\":%d}", 42), 0);
    ck_assert_str_eq (buf.data, "{\"k\":\"v\",\"n\":42}");
    ck_assert_uint_eq (buf.len, strlen (buf.data));
    pc_buf_reset (&buf);
    ck_assert_uint_eq (buf.len, 0);
    ck_assert_str_eq (buf.data, "");

    //  Large input grows the buffer correctly.
    size_t big = 100000;
    char *text = malloc (big);
    ck_assert_ptr_nonnull (text);
    memset (text, '"', big);
    ck_assert_int_eq (pc_json_append_string (&buf, text, big), 0);
    ck_assert_uint_eq (buf.len, big * 2 + 2);
    ck_assert_uint_eq (strlen (buf.data), buf.len);
    free (text);
    pc_buf_free (&buf);
    ck_assert_ptr_null (buf.data);
}
END_TEST

static char *
s_b64 (const char *text, size_t len)
{
    pc_buf_t buf;
    pc_buf_init (&buf);
    ck_assert_int_eq (pc_base64_append (&buf, text, len), 0);
    if (!buf.data)
        return strdup ("");
    return buf.data;
}

START_TEST (test_base64)
{
    //  RFC 4648 §10.
    static const char *vectors [][2] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" }
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors [0]; i++) {
        char *got = s_b64 (vectors [i][0], strlen (vectors [i][0]));
        ck_assert_str_eq (got, vectors [i][1]);
        free (got);
    }
    //  Every byte value, and the alphabet's last two characters.
    char *got = s_b64 ("\x00\xff\xfe\xfb\xef\xbe", 6);
    ck_assert_str_eq (got, "AP/+++++");
    free (got);
}
END_TEST

static char *
s_clean (const char *text, size_t len, size_t dst_size)
{
    char *dst = malloc (dst_size);
    ck_assert_ptr_nonnull (dst);
    size_t n = pc_text_sanitize (dst, dst_size, text, len);
    ck_assert_uint_eq (n, strlen (dst));
    return dst;
}

#define CLEAN_IS(lit, size, expect) do {                \
    char *got_ = s_clean (lit, sizeof (lit) - 1, size); \
    ck_assert_str_eq (got_, expect);                    \
    free (got_);                                        \
} while (0)

START_TEST (test_sanitize)
{
    CLEAN_IS ("", 16, "");
    CLEAN_IS ("all fine", 16, "all fine");
    CLEAN_IS ("  line one\nline two\r\n\n", 64, "line one line two");
    CLEAN_IS ("tab\there\x1b[31mred", 64, "tab here [31mred");
    CLEAN_IS ("bad \xff byte", 64, "bad ? byte");
    CLEAN_IS ("caf\xc3\xa9", 64, "caf\xc3\xa9");
    //  Truncation keeps the terminator and never splits a character.
    CLEAN_IS ("abcdef", 4, "abc");
    CLEAN_IS ("ab\xc3\xa9", 4, "ab");
    CLEAN_IS ("ab\xc3\xa9", 5, "ab\xc3\xa9");
    CLEAN_IS ("x", 1, "");
}
END_TEST

START_TEST (test_tail)
{
    pc_tail_t tail;
    char text [PC_TAIL_SIZE + 8];
    pc_tail_reset (&tail);
    pc_tail_text (&tail, text, sizeof text);
    ck_assert_str_eq (text, "");

    pc_tail_write (&tail, "error: ", 7);
    pc_tail_write (&tail, "disk full\n", 10);
    pc_tail_text (&tail, text, sizeof text);
    ck_assert_str_eq (text, "error: disk full");

    //  Many small writes wrap the ring: only the last PC_TAIL_SIZE bytes stay.
    pc_tail_reset (&tail);
    char expect [PC_TAIL_SIZE + 1];
    for (int i = 0; i < 1000; i++) {
        char c = (char) ('a' + i % 26);
        pc_tail_write (&tail, &c, 1);
    }
    for (int i = 0; i < PC_TAIL_SIZE; i++)
        expect [i] = (char) ('a' + (1000 - PC_TAIL_SIZE + i) % 26);
    expect [PC_TAIL_SIZE] = 0;
    ck_assert_uint_eq (tail.total, 1000);
    pc_tail_text (&tail, text, sizeof text);
    ck_assert_int_eq (strncmp (text, "...", 3), 0);
    ck_assert_str_eq (text + 3, expect);

    //  One write larger than the ring keeps its own end.
    pc_tail_reset (&tail);
    char big [1000];
    memset (big, 'x', sizeof big);
    memcpy (big + sizeof big - 4, "last", 4);
    pc_tail_write (&tail, "start", 5);
    pc_tail_write (&tail, big, sizeof big);
    pc_tail_text (&tail, text, sizeof text);
    ck_assert_uint_eq (strlen (text), 3 + PC_TAIL_SIZE);
    ck_assert_str_eq (text + strlen (text) - 4, "last");

    //  A multi-byte character cut at the ring's start is dropped, not
    //  shown as garbage.
    pc_tail_reset (&tail);
    pc_tail_write (&tail, "\xe2\x82\xac", 3);
    for (int i = 0; i < PC_TAIL_SIZE - 2; i++)
        pc_tail_write (&tail, "z", 1);
    pc_tail_text (&tail, text, sizeof text);
    ck_assert_int_eq (strncmp (text, "...z", 4), 0);
    ck_assert (pc_utf8_valid (text, strlen (text)));

    //  A small destination truncates safely.
    pc_tail_reset (&tail);
    pc_tail_write (&tail, "0123456789", 10);
    char small [5];
    pc_tail_text (&tail, small, sizeof small);
    ck_assert_str_eq (small, "0123");
}
END_TEST

START_TEST (test_retry_after)
{
    uint32_t delay = 12345;
    ck_assert_int_eq (pc_retry_after_parse ("2", 0, 3600000, &delay), 0);
    ck_assert_uint_eq (delay, 2000);
    ck_assert_int_eq (pc_retry_after_parse (" 120 \r\n", 0, 3600000, &delay), 0);
    ck_assert_uint_eq (delay, 120000);
    ck_assert_int_eq (pc_retry_after_parse ("0", 0, 3600000, &delay), 0);
    ck_assert_uint_eq (delay, 0);
    //  Capped, and huge numbers neither overflow nor wrap.
    ck_assert_int_eq (pc_retry_after_parse ("86400", 0, 60000, &delay), 0);
    ck_assert_uint_eq (delay, 60000);
    ck_assert_int_eq (pc_retry_after_parse ("99999999999999999999999", 0, 60000, &delay), 0);
    ck_assert_uint_eq (delay, 60000);
    ck_assert_int_eq (pc_retry_after_parse ("4294968", 0, UINT32_MAX, &delay), 0);
    ck_assert_uint_eq (delay, UINT32_MAX);

    //  IMF-fixdate: 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
    const char *date = "Sun, 06 Nov 1994 08:49:37 GMT";
    ck_assert_int_eq (pc_retry_after_parse (date, 784111777 - 30, 3600000, &delay), 0);
    ck_assert_uint_eq (delay, 30000);
    ck_assert_int_eq (pc_retry_after_parse (date, 784111777 + 30, 3600000, &delay), 0);
    ck_assert_uint_eq (delay, 0);           //  already past

    delay = 7;
    ck_assert_int_eq (pc_retry_after_parse ("", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse ("soon", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse ("-5", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse ("1.5", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse ("12abc", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse ("Sun, 06 Foo 1994 08:49:37 GMT", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse ("Sun, 06 Nov 1994 08:49:37 CET", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse ("Sun, 06 Nov 1994 08:49:37 GMT junk", 0, 1000, &delay), -EINVAL);
    ck_assert_int_eq (pc_retry_after_parse (NULL, 0, 1000, &delay), -EINVAL);
    ck_assert_uint_eq (delay, 7);           //  untouched on error
}
END_TEST

START_TEST (test_config_parse)
{
    static const char *known [] = { "url", "timeout_ms", NULL };
    char err [256] = "";
    cJSON *config = (cJSON *) 1;

    //  NULL and an empty object both parse; only known keys pass.
    ck_assert_int_eq (pc_config_parse (NULL, known, &config, err, sizeof err), 0);
    ck_assert (cJSON_IsObject (config));
    ck_assert_int_eq (cJSON_GetArraySize (config), 0);
    cJSON_Delete (config);
    ck_assert_int_eq (pc_config_parse ("{\"url\": \"x\", \"timeout_ms\": 5}", known,
                                       &config, err, sizeof err), 0);
    ck_assert_str_eq (cJSON_GetObjectItemCaseSensitive (config, "url")->valuestring, "x");
    cJSON_Delete (config);

    config = (cJSON *) 1;
    ck_assert_int_eq (pc_config_parse ("[1, 2]", known, &config, err, sizeof err), -EINVAL);
    ck_assert_ptr_null (config);
    ck_assert_str_eq (err, "config is not a JSON object");
    ck_assert_int_eq (pc_config_parse ("{oops", known, &config, err, sizeof err), -EINVAL);
    ck_assert_str_eq (err, "config is not a JSON object");

    //  A misspelt key names itself and every key there is.
    config = (cJSON *) 1;
    ck_assert_int_eq (pc_config_parse ("{\"url\": \"x\", \"timeout\": 5}", known,
                                       &config, err, sizeof err), -EINVAL);
    ck_assert_ptr_null (config);
    ck_assert_str_eq (err, "config: unknown key \"timeout\" (known: url, timeout_ms)");

    //  A short buffer truncates the message, never overruns it.
    char small [24];
    memset (small, 'x', sizeof small);
    ck_assert_int_eq (pc_config_parse ("{\"nope\": 1}", known, &config, small, 20), -EINVAL);
    ck_assert_str_eq (small, "config: unknown key");
    ck_assert_int_eq (small [20], 'x');
}
END_TEST

START_TEST (test_config_int)
{
    char err [256] = "";
    cJSON *config = cJSON_Parse ("{\"a\": 250, \"b\": 2.5, \"c\": \"7\", \"d\": -1, "
                                 "\"e\": 1e12}");
    ck_assert_ptr_nonnull (config);
    int64_t value = 0;
    ck_assert_int_eq (pc_config_int (config, "a", 9, 0, 1000, &value, err, sizeof err), 0);
    ck_assert_int_eq (value, 250);
    ck_assert_int_eq (pc_config_int (config, "absent", 9, 0, 1000, &value, err, sizeof err), 0);
    ck_assert_int_eq (value, 9);
    //  Bounds are inclusive.
    ck_assert_int_eq (pc_config_int (config, "a", 0, 250, 250, &value, err, sizeof err), 0);
    ck_assert_int_eq (pc_config_int (config, "e", 0, 0, 1000000000000, &value, err, sizeof err), 0);
    ck_assert_int_eq (value, 1000000000000);

    value = 42;
    ck_assert_int_eq (pc_config_int (config, "a", 0, 251, 1000, &value, err, sizeof err), -EINVAL);
    ck_assert_str_eq (err, "config: \"a\" must be an integer from 251 to 1000");
    ck_assert_int_eq (pc_config_int (config, "b", 0, 0, 10, &value, err, sizeof err), -EINVAL);
    ck_assert_str_eq (err, "config: \"b\" must be an integer from 0 to 10");
    ck_assert_int_eq (pc_config_int (config, "c", 0, 0, 10, &value, err, sizeof err), -EINVAL);
    ck_assert_int_eq (pc_config_int (config, "d", 0, 0, 10, &value, err, sizeof err), -EINVAL);
    ck_assert_int_eq (value, 42);           //  untouched on error
    cJSON_Delete (config);
}
END_TEST

static void
s_collect (void *arg, const char *problem)
{
    char *all = arg;
    strcat (all, problem);
    strcat (all, "\n");
}

START_TEST (test_config_strip_unknown)
{
    static const char *known [] = { "url", "timeout_ms", NULL };
    char all [2048] = "";
    char *cleaned = NULL;
    ck_assert_int_eq (pc_config_strip_unknown ("{\"ur\": 1, \"url\": \"x\", \"tmo\": 2}", known,
                                               s_collect, all, &cleaned), 2);
    ck_assert_msg (strstr (all, "unknown key \"ur\" (known: url, timeout_ms)")
                   && strstr (all, "unknown key \"tmo\""), "%s", all);
    ck_assert_str_eq (cleaned, "{\"url\":\"x\"}");
    free (cleaned);
    all [0] = 0;
    ck_assert_int_eq (pc_config_strip_unknown (NULL, known, s_collect, all, &cleaned), 0);
    ck_assert_str_eq (cleaned, "{}");
    free (cleaned);
    ck_assert_int_eq (pc_config_strip_unknown ("[1]", known, s_collect, all, &cleaned), -EINVAL);
    ck_assert_ptr_null (cleaned);
    ck_assert_ptr_nonnull (strstr (all, "not a JSON object"));
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("plugin_common");
    TCase *tc = tcase_create ("helpers");
    tcase_add_test (tc, test_utf8);
    tcase_add_test (tc, test_json_escape);
    tcase_add_test (tc, test_base64);
    tcase_add_test (tc, test_sanitize);
    tcase_add_test (tc, test_tail);
    tcase_add_test (tc, test_retry_after);
    tcase_add_test (tc, test_config_parse);
    tcase_add_test (tc, test_config_strip_unknown);
    tcase_add_test (tc, test_config_int);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
