/*  topic.c — topic and pattern grammar of BUSP/1 (see topic.h, PROTOCOL §2).

    Topics and patterns share one checker that walks the bytes once, token
    by token, so the two grammars cannot disagree about what a token is.
    Every rejection names the exact rule that failed: the sentence ends up
    in REJECT / SUBEND reasons and in the tools' error messages, where
    "invalid topic" alone would leave the user guessing.  The strings are
    static (one per offending byte value, built by the preprocessor) so
    callers may keep them without copying and no call allocates.

    busp_pattern_match is the reference matcher: the broker routes with its
    trie, and the trie's tests cross-check it against this function.        */
#include "topic.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#define BAD_BYTE(what, hi, lo) "byte 0x" hi lo " not allowed in a " what
#define BAD_ROW(what, hi) \
    BAD_BYTE (what, hi, "0"), BAD_BYTE (what, hi, "1"), BAD_BYTE (what, hi, "2"), \
    BAD_BYTE (what, hi, "3"), BAD_BYTE (what, hi, "4"), BAD_BYTE (what, hi, "5"), \
    BAD_BYTE (what, hi, "6"), BAD_BYTE (what, hi, "7"), BAD_BYTE (what, hi, "8"), \
    BAD_BYTE (what, hi, "9"), BAD_BYTE (what, hi, "A"), BAD_BYTE (what, hi, "B"), \
    BAD_BYTE (what, hi, "C"), BAD_BYTE (what, hi, "D"), BAD_BYTE (what, hi, "E"), \
    BAD_BYTE (what, hi, "F")
#define BAD_TABLE(what) { \
    BAD_ROW (what, "0"), BAD_ROW (what, "1"), BAD_ROW (what, "2"), BAD_ROW (what, "3"), \
    BAD_ROW (what, "4"), BAD_ROW (what, "5"), BAD_ROW (what, "6"), BAD_ROW (what, "7"), \
    BAD_ROW (what, "8"), BAD_ROW (what, "9"), BAD_ROW (what, "A"), BAD_ROW (what, "B"), \
    BAD_ROW (what, "C"), BAD_ROW (what, "D"), BAD_ROW (what, "E"), BAD_ROW (what, "F") }

static const char *const s_bad_topic_byte [256] = BAD_TABLE ("topic");
static const char *const s_bad_pattern_byte [256] = BAD_TABLE ("pattern");

/*  Where the empty token is tells the user which dot to remove.           */
static const char *
s_empty_token_why (bool at_start, bool at_end, bool is_pattern)
{
    if (at_start)
        return is_pattern ? "empty token (pattern starts with '.')"
                          : "empty token (topic starts with '.')";
    if (at_end)
        return is_pattern ? "empty token (pattern ends with '.')"
                          : "empty token (topic ends with '.')";
    return is_pattern ? "empty token ('..' in pattern)"
                      : "empty token ('..' in topic)";
}

/*  Validate (s, len) as a topic, or as a pattern when is_pattern.          */
static int
s_check (const char *s, size_t len, bool is_pattern, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (len == 0) {
        *why = is_pattern ? "empty pattern" : "empty topic";
        return -EINVAL;
    }
    assert (s);
    if (len > BUSP_TOPIC_MAX) {
        *why = is_pattern ? "pattern longer than 255 bytes"
                          : "topic longer than 255 bytes";
        return -EINVAL;
    }
    const char *const *bad_byte = is_pattern ? s_bad_pattern_byte : s_bad_topic_byte;
    size_t start = 0;               /*  first byte of the current token     */
    bool wild = false;              /*  current token holds '*' or '#'      */
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s [i] == '.') {
            size_t tlen = i - start;
            if (tlen == 0) {
                *why = s_empty_token_why (start == 0, i == len, is_pattern);
                return -EINVAL;
            }
            if (wild) {
                if (tlen != 1) {
                    *why = "'*' and '#' must stand alone as a token";
                    return -EINVAL;
                }
                if (s [start] == '#' && i != len) {
                    *why = "'#' must be the last token";
                    return -EINVAL;
                }
            }
            start = i + 1;
            wild = false;
            continue;
        }
        uint8_t c = (uint8_t) s [i];
        if (c < 0x21 || c > 0x7E) {
            *why = bad_byte [c];
            return -EINVAL;
        }
        if (c == '*' || c == '#') {
            if (!is_pattern) {
                *why = c == '*' ? "'*' not allowed in a topic (only in patterns)"
                                : "'#' not allowed in a topic (only in patterns)";
                return -EINVAL;
            }
            wild = true;
        }
    }
    return 0;
}

int
busp_topic_check (const char *topic, size_t len, const char **why)
{
    return s_check (topic, len, false, why);
}

int
busp_pattern_check (const char *pattern, size_t len, const char **why)
{
    return s_check (pattern, len, true, why);
}

bool
busp_topic_is_system (const char *topic, size_t len)
{
    return len > 0 && topic [0] == '$';
}

/*  Length of the token starting at s [at], s being len bytes long.         */
static size_t
s_token_len (const char *s, size_t len, size_t at)
{
    const char *dot = memchr (s + at, '.', len - at);
    return dot ? (size_t) (dot - (s + at)) : len - at;
}

bool
busp_pattern_match (const char *pattern, size_t plen,
                    const char *topic, size_t tlen)
{
    if (plen == 0 || tlen == 0)
        return false;
    assert (pattern && topic);

    size_t p = 0, t = 0;            /*  start of the current tokens         */
    size_t pt = s_token_len (pattern, plen, 0);
    bool first_wild = pt == 1 && (pattern [0] == '*' || pattern [0] == '#');
    if (first_wild && busp_topic_is_system (topic, tlen))
        return false;

    while (p < plen) {
        pt = s_token_len (pattern, plen, p);
        if (pt == 1 && pattern [p] == '#')
            return true;            /*  '#' is last, and takes what is left */
        if (t >= tlen)
            return false;           /*  pattern has tokens the topic lacks  */
        size_t tt = s_token_len (topic, tlen, t);
        if (!(pt == 1 && pattern [p] == '*')
        &&  (pt != tt || memcmp (pattern + p, topic + t, pt) != 0))
            return false;
        p += pt + 1;
        t += tt + 1;
    }
    return t >= tlen;               /*  both ran out together               */
}
