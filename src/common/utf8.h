/*  utf8.h — make bytes a peer sent safe to send back as UTF-8 text.

    Client names, group names, NACK reasons and unknown CTL commands end up
    in replies, logs and dead-letter headers.  PROTOCOL says every string the
    broker sends is UTF-8, so each of them passes through here first:
    invalid bytes become U+FFFD and a length limit (str8: 255) is met by
    dropping whole characters, never by cutting one in half.  Strict
    decoding (no overlong forms, no surrogates, nothing above U+10FFFF),
    because a lenient check would pass bytes strict consumers reject.       */
#ifndef BUSP_UTF8_H_INCLUDED
#define BUSP_UTF8_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

/*  The replacement character U+FFFD, UTF-8 encoded (3 bytes).              */
#define BUSP_UTF8_REPLACEMENT "\xEF\xBF\xBD"

/*  Length of the valid UTF-8 sequence starting at s (1..4), or 0 when the
    bytes at s (at most len of them) do not start one.                      */
size_t busp_utf8_char_len (const char *s, size_t len);

/*  True when (s, len) is entirely valid UTF-8.                             */
bool busp_utf8_valid (const char *s, size_t len);

/*  Copy (in, len) into out as valid UTF-8: each byte that does not begin a
    valid sequence is replaced by U+FFFD.  At most cap - 1 bytes are
    written, ending on a character boundary, then a NUL (cap >= 1).  Returns
    the bytes written (without the NUL).  *truncated, if not NULL, says
    whether anything was left out for lack of room.                          */
size_t busp_utf8_sanitize (const char *in, size_t len, char *out, size_t cap,
                           bool *truncated);

/*  Longest prefix of the valid UTF-8 text (s, len) that is at most max
    bytes and ends on a character boundary.                                 */
size_t busp_utf8_prefix (const char *s, size_t len, size_t max);

#endif
