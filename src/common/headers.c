/*  headers.c — strict headers-object validation (see headers.h).

    The grammar is the subset of RFC 8259 a headers frame may use:
        ws { ws [ string ws : ws string ws ( , ws string ws : ws string ws )* ] } ws
    Strings are checked for escapes (\uXXXX surrogates must pair), control
    characters and UTF-8 validity (no overlong forms, no surrogates, nothing
    above U+10FFFF) in the same pass.                                       */
#include "headers.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    const char *why;
} scan_t;

static inline void
s_ws (scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static inline bool
s_fail (scan_t *s, const char *why)
{
    s->why = why;
    return false;
}

static int
s_hex4 (const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p [i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else
        if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
        if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/*  One multi-byte UTF-8 sequence starting at s->p (lead byte >= 0x80).     */
static bool
s_utf8 (scan_t *s)
{
    const uint8_t *p = s->p;
    size_t left = (size_t) (s->end - p);
    uint8_t c = p [0];
    size_t n;
    uint32_t min, cp;
    if (c >= 0xC2 && c <= 0xDF)      { n = 2; min = 0x80;    cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; min = 0x800;   cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; min = 0x10000; cp = c & 0x07; }
    else
        return s_fail (s, "headers are not valid UTF-8");
    if (left < n)
        return s_fail (s, "headers are not valid UTF-8");
    for (size_t i = 1; i < n; i++) {
        if ((p [i] & 0xC0) != 0x80)
            return s_fail (s, "headers are not valid UTF-8");
        cp = cp << 6 | (p [i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return s_fail (s, "headers are not valid UTF-8");
    s->p += n;
    return true;
}

/*  A JSON string at s->p (which must be '"').                              */
static bool
s_string (scan_t *s)
{
    if (s->p >= s->end || *s->p != '"')
        return s_fail (s, "headers: expected a string");
    s->p++;
    while (s->p < s->end) {
        uint8_t c = *s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c < 0x20)
            return s_fail (s, "headers: control character in a string");
        if (c == '\\') {
            if (s->end - s->p < 2)
                break;
            uint8_t e = s->p [1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n'
            ||  e == 'r' || e == 't') {
                s->p += 2;
                continue;
            }
            if (e != 'u')
                return s_fail (s, "headers: bad escape in a string");
            if (s->end - s->p < 6)
                break;
            int u = s_hex4 (s->p + 2);
            if (u < 0)
                return s_fail (s, "headers: bad \\u escape in a string");
            s->p += 6;
            if (u >= 0xDC00 && u <= 0xDFFF)
                return s_fail (s, "headers: unpaired surrogate escape");
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (s->end - s->p < 6 || s->p [0] != '\\' || s->p [1] != 'u')
                    return s_fail (s, "headers: unpaired surrogate escape");
                int low = s_hex4 (s->p + 2);
                if (low < 0xDC00 || low > 0xDFFF)
                    return s_fail (s, "headers: unpaired surrogate escape");
                s->p += 6;
            }
            continue;
        }
        if (c < 0x80) {
            s->p++;
            continue;
        }
        if (!s_utf8 (s))
            return false;
    }
    return s_fail (s, "headers: unterminated string");
}

int
busp_headers_check (const void *data, size_t size, const char **why)
{
    scan_t s = { data, (const uint8_t *) data + (data ? size : 0), NULL };
    bool ok = false;
    s_ws (&s);
    if (s.p >= s.end || *s.p != '{')
        s_fail (&s, "headers frame is not a JSON object");
    else {
        s.p++;
        s_ws (&s);
        if (s.p < s.end && *s.p == '}') {
            s.p++;
            ok = true;
        }
        else
        while (true) {
            if (!s_string (&s))
                break;
            s_ws (&s);
            if (s.p >= s.end || *s.p != ':') {
                s_fail (&s, "headers: expected ':' after a key");
                break;
            }
            s.p++;
            s_ws (&s);
            if (s.p < s.end && *s.p != '"') {
                s_fail (&s, "header values must be strings");
                break;
            }
            if (!s_string (&s))
                break;
            s_ws (&s);
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                s_ws (&s);
                continue;
            }
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                ok = true;
            }
            else
                s_fail (&s, "headers: expected ',' or '}'");
            break;
        }
    }
    if (ok) {
        s_ws (&s);
        if (s.p != s.end) {
            ok = false;
            s_fail (&s, "headers frame has bytes after the JSON object");
        }
    }
    if (ok)
        return 0;
    if (why)
        *why = s.why ? s.why : "headers frame is not a JSON object";
    return -EINVAL;
}
