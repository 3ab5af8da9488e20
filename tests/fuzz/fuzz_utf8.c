/*  fuzz_utf8.c — libFuzzer target for the UTF-8 sanitizer.

    For any bytes and any room (the first input byte picks it), the output
    is valid UTF-8, fits, and keeps valid input byte for byte; a prefix of
    valid text never ends inside a character.                                */
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cap = (size_t) data [0] + 1;
    const char *in = (const char *) data + 1;
    size_t len = size - 1;
    char *copy = malloc (len ? len : 1);
    char *out = malloc (cap);
    if (!copy || !out)
        goto done;
    memcpy (copy, in, len);
    bool cut;
    size_t n = busp_utf8_sanitize (copy, len, out, cap, &cut);
    if (n >= cap || out [n] != 0 || !busp_utf8_valid (out, n))
        abort ();
    bool valid = busp_utf8_valid (copy, len);
    if (valid && !cut && (n != len || memcmp (out, copy, len) != 0))
        abort ();
    if (valid) {
        size_t p = busp_utf8_prefix (copy, len, cap - 1);
        if (p > cap - 1 || p > len || !busp_utf8_valid (copy, p))
            abort ();
    }
done:
    free (copy);
    free (out);
    return 0;
}
