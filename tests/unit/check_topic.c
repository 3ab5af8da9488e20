/*  check_topic.c — unit tests for the topic and pattern grammar
    (src/common/topic.c, PROTOCOL §2).

    Table-driven: each row is a string and the verdict PROTOCOL §2 gives it,
    with a fragment of the expected reason, because the reason is what a
    user reads when busd-pub or the broker refuses a topic.                 */
#include "topic.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text;
    const char *why;                /*  NULL: valid; else part of reason    */
} row_t;

static void
s_check_rows (const row_t *rows, size_t n, bool pattern)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        size_t len = strlen (rows [i].text);
        int rc = pattern ? busp_pattern_check (rows [i].text, len, &why)
                         : busp_topic_check (rows [i].text, len, &why);
        if (!rows [i].why)
            ck_assert_msg (rc == 0, "%s '%s' rejected: %s",
                           pattern ? "pattern" : "topic", rows [i].text, why);
        else {
            ck_assert_msg (rc == -EINVAL, "%s '%s' accepted",
                           pattern ? "pattern" : "topic", rows [i].text);
            ck_assert_ptr_nonnull (why);
            ck_assert_msg (strstr (why, rows [i].why),
                           "'%s': reason \"%s\" lacks \"%s\"",
                           rows [i].text, why, rows [i].why);
        }
    }
}

/*  A string of len bytes made of one-byte tokens "a.a.a…", ending in a
    token (len odd) or in "aa" (len even).                                 */
static void
s_fill (char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf [i] = i % 2 ? '.' : 'a';
    if (len % 2 == 0 && len > 0)
        buf [len - 1] = 'a';
    buf [len] = '\0';
}

START_TEST (test_valid_topics)
{
    static const row_t rows [] = {
        { "user", NULL }, { "user.created", NULL }, { "chat.room42.typing", NULL },
        { "a", NULL }, { "!", NULL }, { "~", NULL }, { "a.b.c.d.e.f", NULL },
        { "$sys.stats", NULL }, { "$dlq.user.created", NULL }, { "$", NULL },
        { "user.$x", NULL }, { "A-Z_0-9:/@{}[]<>\"'`", NULL },
        { "a$b", NULL }, { "x.y.z!", NULL }
    };
    s_check_rows (rows, sizeof rows / sizeof rows [0], false);
}
END_TEST

START_TEST (test_invalid_topics)
{
    static const row_t rows [] = {
        { "", "empty topic" },
        { ".", "empty token" }, { ".a", "empty token (topic starts with '.')" },
        { "a.", "empty token (topic ends with '.')" },
        { "a..b", "empty token ('..' in topic)" },
        { "a b", "byte 0x20 not allowed in a topic" },
        { " a", "byte 0x20" }, { "a\t", "byte 0x09" },
        { "a\x7f", "byte 0x7F not allowed in a topic" },
        { "caf\xc3\xa9", "byte 0xC3" }, { "a\x01", "byte 0x01" },
        { "a.*", "'*' not allowed in a topic" },
        { "*", "'*' not allowed in a topic" },
        { "#", "'#' not allowed in a topic" },
        { "user.#", "'#' not allowed in a topic" },
        { "a*b", "'*' not allowed" }
    };
    s_check_rows (rows, sizeof rows / sizeof rows [0], false);
}
END_TEST

START_TEST (test_nul_byte)
{
    const char topic [] = { 'a', '\0', 'b' };
    const char *why = NULL;
    ck_assert_int_eq (busp_topic_check (topic, 3, &why), -EINVAL);
    ck_assert_str_eq (why, "byte 0x00 not allowed in a topic");
    ck_assert_int_eq (busp_pattern_check (topic, 3, &why), -EINVAL);
    ck_assert_str_eq (why, "byte 0x00 not allowed in a pattern");
    /*  The length is what counts, not a NUL: "a" of "a.b".                */
    ck_assert_int_eq (busp_topic_check ("a.b", 1, NULL), 0);
    ck_assert_int_eq (busp_topic_check ("a.b", 2, NULL), -EINVAL);
}
END_TEST

START_TEST (test_every_byte)
{
    /*  Each byte alone, as a one-byte topic and in the middle of a token. */
    for (int c = 0; c < 256; c++) {
        char one [1] = { (char) c };
        char mid [3] = { 'a', (char) c, 'b' };
        bool token_byte = c >= 0x21 && c <= 0x7E && c != '.' && c != '*' && c != '#';
        int want = token_byte ? 0 : -EINVAL;
        ck_assert_msg (busp_topic_check (one, 1, NULL) == want, "byte 0x%02X", c);
        ck_assert_msg (busp_topic_check (mid, 3, NULL) == (token_byte || c == '.' ? 0 : -EINVAL),
                       "a 0x%02X b", c);
        if (!token_byte && c != '.' && c != '*' && c != '#') {
            char expect [64];
            const char *why = NULL;
            snprintf (expect, sizeof expect, "byte 0x%02X not allowed in a topic", c);
            busp_topic_check (mid, 3, &why);
            ck_assert_str_eq (why, expect);
            snprintf (expect, sizeof expect, "byte 0x%02X not allowed in a pattern", c);
            busp_pattern_check (mid, 3, &why);
            ck_assert_str_eq (why, expect);
        }
    }
}
END_TEST

START_TEST (test_length_limits)
{
    char buf [300];
    const char *why = NULL;
    s_fill (buf, 255);
    ck_assert_int_eq (busp_topic_check (buf, 255, &why), 0);
    ck_assert_int_eq (busp_pattern_check (buf, 255, &why), 0);
    s_fill (buf, 256);
    ck_assert_int_eq (busp_topic_check (buf, 256, &why), -EINVAL);
    ck_assert_str_eq (why, "topic longer than 255 bytes");
    ck_assert_int_eq (busp_pattern_check (buf, 256, &why), -EINVAL);
    ck_assert_str_eq (why, "pattern longer than 255 bytes");
    /*  One 255-byte token.                                                */
    memset (buf, 'z', 256);
    ck_assert_int_eq (busp_topic_check (buf, 255, NULL), 0);
    ck_assert_int_eq (busp_topic_check (buf, 256, NULL), -EINVAL);
    /*  128 tokens: the deepest a topic can be.                            */
    s_fill (buf, 255);
    size_t dots = 0;
    for (size_t i = 0; i < 255; i++)
        dots += buf [i] == '.';
    ck_assert_uint_eq (dots, 127);
    ck_assert_int_eq (busp_topic_check (NULL, 0, &why), -EINVAL);
    ck_assert_str_eq (why, "empty topic");
    ck_assert_int_eq (busp_pattern_check (NULL, 0, &why), -EINVAL);
    ck_assert_str_eq (why, "empty pattern");
}
END_TEST

START_TEST (test_valid_patterns)
{
    static const row_t rows [] = {
        { "user", NULL }, { "user.created", NULL }, { "*", NULL }, { "#", NULL },
        { "user.*", NULL }, { "user.#", NULL }, { "*.created", NULL },
        { "*.*.*", NULL }, { "*.#", NULL }, { "a.*.b.#", NULL },
        { "$dlq.#", NULL }, { "$sys.stats", NULL }, { "$sys.*", NULL },
        { "chat.*.typing", NULL }
    };
    s_check_rows (rows, sizeof rows / sizeof rows [0], true);
}
END_TEST

START_TEST (test_invalid_patterns)
{
    static const row_t rows [] = {
        { "", "empty pattern" },
        { ".", "empty token" }, { ".a", "empty token (pattern starts with '.')" },
        { "a.", "empty token (pattern ends with '.')" },
        { "a..b", "empty token ('..' in pattern)" }, { "*..#", "empty token" },
        { "#.", "'#' must be the last token" },
        { "a*", "'*' and '#' must stand alone as a token" },
        { "*a", "must stand alone" }, { "a.b*c", "must stand alone" },
        { "**", "must stand alone" }, { "a#", "must stand alone" },
        { "#a", "must stand alone" }, { "##", "must stand alone" },
        { "*#", "must stand alone" }, { "user.#x", "must stand alone" },
        { "#.a", "'#' must be the last token" },
        { "a.#.b", "'#' must be the last token" },
        { "#.#", "'#' must be the last token" },
        { "#.*", "'#' must be the last token" },
        { "a b", "byte 0x20 not allowed in a pattern" },
        { "a.\x7f", "byte 0x7F" }
    };
    s_check_rows (rows, sizeof rows / sizeof rows [0], true);
}
END_TEST

START_TEST (test_why_optional)
{
    ck_assert_int_eq (busp_topic_check ("a..b", 4, NULL), -EINVAL);
    ck_assert_int_eq (busp_pattern_check ("#.a", 3, NULL), -EINVAL);
    ck_assert_int_eq (busp_topic_check ("a.b", 3, NULL), 0);
    /*  why is untouched on success.                                       */
    const char *why = "unchanged";
    ck_assert_int_eq (busp_topic_check ("a.b", 3, &why), 0);
    ck_assert_str_eq (why, "unchanged");
}
END_TEST

START_TEST (test_is_system)
{
    ck_assert (busp_topic_is_system ("$sys.stats", 10));
    ck_assert (busp_topic_is_system ("$dlq.user.created", 17));
    ck_assert (busp_topic_is_system ("$", 1));
    ck_assert (busp_topic_is_system ("$dlq.#", 6));
    ck_assert (!busp_topic_is_system ("sys.$stats", 10));
    ck_assert (!busp_topic_is_system ("a$", 2));
    ck_assert (!busp_topic_is_system ("", 0));
    ck_assert (!busp_topic_is_system ("#", 1));
}
END_TEST

typedef struct {
    const char *pattern;
    const char *topic;
    bool match;
} match_row_t;

START_TEST (test_match)
{
    static const match_row_t rows [] = {
        { "user.created", "user.created", true },
        { "user.created", "user.deleted", false },
        { "user.created", "user", false },
        { "user", "user.created", false },
        { "user.created", "user.createdx", false },
        { "user.created", "user.create", false },
        /*  '*' takes exactly one token.                                   */
        { "user.*", "user.created", true },
        { "user.*", "user", false },
        { "user.*", "user.created.v2", false },
        { "*", "user", true },
        { "*", "user.created", false },
        { "*.created", "user.created", true },
        { "*.*", "a.b", true },
        { "*.*", "a", false },
        { "a.*.c", "a.b.c", true },
        { "a.*.c", "a.b.d", false },
        { "a.*.c", "a.c", false },
        /*  '#' takes zero or more.                                        */
        { "user.#", "user", true },
        { "user.#", "user.created", true },
        { "user.#", "user.created.v2", true },
        { "user.#", "users", false },
        { "user.#", "order.created", false },
        { "#", "a", true },
        { "#", "a.b.c.d", true },
        { "*.#", "a", true },
        { "*.#", "a.b.c", true },
        { "a.*.#", "a", false },
        { "a.*.#", "a.b", true },
        { "a.*.#", "a.b.c.d", true },
        /*  '$' topics: hidden from a leading wildcard only.               */
        { "#", "$sys.stats", false },
        { "*", "$sys", false },
        { "*.stats", "$sys.stats", false },
        { "*.#", "$dlq.user.created", false },
        { "$sys.stats", "$sys.stats", true },
        { "$sys.*", "$sys.stats", true },
        { "$dlq.#", "$dlq.user.created", true },
        { "$dlq.#", "$dlq", true },
        { "$sys.#", "$dlq.x", false },
        { "user.*", "user.$x", true },
        { "user.#", "user.$x.y", true },
        { "#", "a$.b", true },
        /*  Literal tokens that contain each other.                       */
        { "ab.c", "a.bc", false },
        { "a.bc", "a.bc", true },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows [0]; i++) {
        const match_row_t *r = &rows [i];
        ck_assert_int_eq (busp_pattern_check (r->pattern, strlen (r->pattern), NULL), 0);
        ck_assert_int_eq (busp_topic_check (r->topic, strlen (r->topic), NULL), 0);
        bool got = busp_pattern_match (r->pattern, strlen (r->pattern),
                                       r->topic, strlen (r->topic));
        ck_assert_msg (got == r->match, "'%s' vs '%s': got %d", r->pattern, r->topic, got);
    }
}
END_TEST

START_TEST (test_match_by_length)
{
    /*  Lengths, not NULs, delimit: a prefix of a buffer is its own topic. */
    ck_assert (busp_pattern_match ("user.#", 6, "user.created", 4));
    ck_assert (!busp_pattern_match ("user.*", 6, "user.created", 4));
    ck_assert (busp_pattern_match ("user.created.x", 12, "user.created", 12));
    ck_assert (!busp_pattern_match ("", 0, "a", 1));
    ck_assert (!busp_pattern_match ("#", 1, "", 0));
}
END_TEST

START_TEST (test_match_deep)
{
    char topic [256], pattern [256];
    s_fill (topic, 255);            /*  128 tokens "a"                      */
    for (size_t i = 0; i < 255; i++)
        pattern [i] = i % 2 ? '.' : '*';
    pattern [255] = '\0';
    ck_assert_int_eq (busp_pattern_check (pattern, 255, NULL), 0);
    ck_assert (busp_pattern_match (pattern, 255, topic, 255));
    ck_assert (!busp_pattern_match (pattern, 253, topic, 255));
    ck_assert (busp_pattern_match ("a.#", 3, topic, 255));
    ck_assert (busp_pattern_match (topic, 255, topic, 255));
    /*  128 '*' tokens do not match 127 tokens.                            */
    ck_assert (!busp_pattern_match (pattern, 255, topic, 253));
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("topic");
    TCase *tc = tcase_create ("grammar");
    tcase_add_test (tc, test_valid_topics);
    tcase_add_test (tc, test_invalid_topics);
    tcase_add_test (tc, test_nul_byte);
    tcase_add_test (tc, test_every_byte);
    tcase_add_test (tc, test_length_limits);
    tcase_add_test (tc, test_valid_patterns);
    tcase_add_test (tc, test_invalid_patterns);
    tcase_add_test (tc, test_why_optional);
    tcase_add_test (tc, test_is_system);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("match");
    tcase_add_test (tc, test_match);
    tcase_add_test (tc, test_match_by_length);
    tcase_add_test (tc, test_match_deep);
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
