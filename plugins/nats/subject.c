/*  subject.c — topic/pattern to NATS subject mapping (see subject.h).
    Works token by token on copies, never in place, and names the token
    that cannot map so the operator can fix busd.json from the message.    */
#include "subject.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

/*  Check one busd token (is_pattern: '*' alone, '#' alone when last) and
    that NATS reads it the same way.                                         */
static int
s_token_check (const char *token, size_t len, bool is_pattern, bool last,
               char *why, size_t why_size)
{
    if (len == 0) {
        snprintf (why, why_size, "empty token");
        return -EINVAL;
    }
    if (len == 1 && token [0] == '>') {
        snprintf (why, why_size, "token '>' is NATS's full wildcard and cannot be carried");
        return -EINVAL;
    }
    if (is_pattern && len == 1 && (token [0] == '*' || token [0] == '#')) {
        if (token [0] == '#' && !last) {
            snprintf (why, why_size, "'#' must be the last token");
            return -EINVAL;
        }
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) token [i];
        if (c < 0x21 || c > 0x7E) {
            snprintf (why, why_size, "byte 0x%02X is not allowed in a topic", c);
            return -EINVAL;
        }
        if (c == '*' || c == '#') {
            snprintf (why, why_size, "'%c' must stand alone as a token%s", c,
                      is_pattern ? "" : " (and only in patterns)");
            return -EINVAL;
        }
    }
    return 0;
}

/*  Walk text's tokens, checking each.                                       */
static int
s_check (const char *text, bool is_pattern, char *why, size_t why_size)
{
    size_t len = strlen (text);
    if (len == 0 || len > 255) {
        snprintf (why, why_size, len ? "longer than 255 bytes" : "empty");
        return -EINVAL;
    }
    const char *token = text;
    while (true) {
        const char *dot = strchr (token, '.');
        size_t tlen = dot ? (size_t) (dot - token) : strlen (token);
        int rc = s_token_check (token, tlen, is_pattern, dot == NULL, why, why_size);
        if (rc)
            return rc;
        if (!dot)
            return 0;
        token = dot + 1;
    }
}

int
ns_prefix_check (const char *prefix, char *why, size_t why_size)
{
    if (!prefix || !*prefix) {
        snprintf (why, why_size, "prefix is empty");
        return -EINVAL;
    }
    char inner [200];
    if (s_check (prefix, false, inner, sizeof inner)) {
        snprintf (why, why_size, "prefix '%s': %s", prefix, inner);
        return -EINVAL;
    }
    if (strchr (prefix, '>')) {
        snprintf (why, why_size, "prefix '%s': '>' is not allowed", prefix);
        return -EINVAL;
    }
    return 0;
}

int
ns_topic_subject (const char *prefix, const char *topic, char *out, size_t size,
                  char *why, size_t why_size)
{
    char inner [200];
    if (s_check (topic, false, inner, sizeof inner)) {
        snprintf (why, why_size, "topic '%s' cannot map to a NATS subject: %s", topic, inner);
        return -EINVAL;
    }
    if ((size_t) snprintf (out, size, "%s.%s", prefix, topic) >= size) {
        snprintf (why, why_size, "topic '%s' is too long for a subject", topic);
        return -ENAMETOOLONG;
    }
    return 0;
}

int
ns_pattern_subjects (const char *prefix, const char *pattern,
                     char out [2][NS_SUBJECT_MAX], int *count, char *why, size_t why_size)
{
    char inner [200];
    *count = 0;
    if (s_check (pattern, true, inner, sizeof inner)) {
        snprintf (why, why_size, "pattern '%s' cannot map to a NATS subject: %s", pattern, inner);
        return -EINVAL;
    }
    size_t len = strlen (pattern);
    bool tail_hash = pattern [len - 1] == '#';
    if (!tail_hash) {
        snprintf (out [0], NS_SUBJECT_MAX, "%s.%s", prefix, pattern);
        *count = 1;
        return 0;
    }
    //  "a.b.#": "prefix.a.b.>" and the parent "prefix.a.b"; "#": "prefix.>".
    snprintf (out [0], NS_SUBJECT_MAX, "%s.%.*s>", prefix, (int) (len - 1), pattern);
    *count = 1;
    if (len > 1) {
        snprintf (out [1], NS_SUBJECT_MAX, "%s.%.*s", prefix, (int) (len - 2), pattern);
        *count = 2;
    }
    return 0;
}

int
ns_subject_topic (const char *prefix, const char *subject, char *out, size_t size)
{
    size_t plen = strlen (prefix);
    if (strncmp (subject, prefix, plen) != 0 || subject [plen] != '.')
        return -EINVAL;
    const char *topic = subject + plen + 1;
    char why [200];
    if (s_check (topic, false, why, sizeof why) || strlen (topic) >= size)
        return -EINVAL;
    strcpy (out, topic);
    return 0;
}

bool
ns_pattern_match (const char *pattern, const char *topic)
{
    if (topic [0] == '$' && (pattern [0] == '*' || pattern [0] == '#')
    &&  (pattern [1] == '.' || pattern [1] == 0))
        return false;
    const char *p = pattern, *t = topic;
    while (true) {
        const char *pdot = strchr (p, '.');
        size_t plen = pdot ? (size_t) (pdot - p) : strlen (p);
        if (plen == 1 && p [0] == '#')
            return true;            /*  last token: matches the rest        */
        const char *tdot = strchr (t, '.');
        size_t tlen = tdot ? (size_t) (tdot - t) : strlen (t);
        if (!(plen == 1 && p [0] == '*') && (plen != tlen || memcmp (p, t, plen) != 0))
            return false;
        if (!pdot || !tdot) {
            //  Both must end here, or the pattern go on with just ".#".
            if (!pdot && !tdot)
                return true;
            return !tdot && pdot && strcmp (pdot, ".#") == 0;
        }
        p = pdot + 1;
        t = tdot + 1;
    }
}

bool
ns_name_valid (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    if (len == 0 || len >= NS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_'))
            return false;
    }
    return true;
}

void
ns_name_sanitize (const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (; text [n] && n + 1 < size && n + 1 < NS_NAME_MAX; n++) {
        char c = text [n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || c == '-' || c == '_';
        out [n] = ok ? c : '_';
    }
    out [n] = 0;
}

bool
ns_header_valid (const char *key, const char *value)
{
    if (!key || !*key || !value)
        return false;
    for (const char *k = key; *k; k++)
        if (*k < 0x21 || *k > 0x7E || *k == ':')
            return false;
    return strpbrk (value, "\r\n") == NULL;
}
