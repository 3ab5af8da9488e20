/*  utf8.c — strict UTF-8 checks and the sanitizer (see utf8.h).            */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t
busp_utf8_char_len (const char *s, size_t len)
{
    if (len == 0)
        return 0;
    const uint8_t *p = (const uint8_t *) s;
    uint8_t c = p [0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;   //  allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else
    if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;              //  overlong
        else
        if (c == 0xED)
            hi = 0x9F;              //  surrogates
    }
    else
    if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;              //  overlong
        else
        if (c == 0xF4)
            hi = 0x8F;              //  above U+10FFFF
    }
    else
        return 0;                   //  continuation byte, C0, C1, F5..FF
    if (len < n)
        return 0;
    if (p [1] < lo || p [1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p [i] & 0xC0) != 0x80)
            return 0;
    return n;
}

bool
busp_utf8_valid (const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        //  ASCII runs are the common case: no decoding for them.
        if ((uint8_t) s [i] < 0x80) {
            i++;
            continue;
        }
        size_t n = busp_utf8_char_len (s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t
busp_utf8_sanitize (const char *in, size_t len, char *out, size_t cap, bool *truncated)
{
    size_t used = 0;
    bool cut = false;
    if (cap == 0) {
        if (truncated)
            *truncated = len > 0;
        return 0;
    }
    size_t room = cap - 1;
    size_t i = 0;
    while (i < len) {
        size_t n = busp_utf8_char_len (in + i, len - i);
        const char *src = in + i;
        size_t out_n = n;
        if (n == 0) {
            src = BUSP_UTF8_REPLACEMENT;
            out_n = 3;
            n = 1;
        }
        if (used + out_n > room) {
            cut = true;
            break;
        }
        memcpy (out + used, src, out_n);
        used += out_n;
        i += n;
    }
    out [used] = 0;
    if (truncated)
        *truncated = cut;
    return used;
}

size_t
busp_utf8_prefix (const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t end = max;
    //  Step back over continuation bytes to the start of the character the
    //  limit falls in; that character is left out whole.
    while (end > 0 && ((uint8_t) s [end] & 0xC0) == 0x80)
        end--;
    return end;
}
