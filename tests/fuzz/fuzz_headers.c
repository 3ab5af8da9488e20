/*  fuzz_headers.c — libFuzzer target for the PUB headers frame check
    (src/common/headers.c).

    Accepted frames are forwarded to subscribers byte for byte, so what the
    check accepts must be valid UTF-8 and parse as a JSON object of strings
    with a second, independent look.                                         */
#include "headers.h"
#include "utf8.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *frame = malloc (size ? size : 1);
    if (!frame)
        return 0;
    memcpy (frame, data, size);
    const char *why = NULL;
    if (busp_headers_check (frame, size, &why) == 0) {
        if (!busp_utf8_valid (frame, size))
            abort ();
        cJSON *root = cJSON_ParseWithLength (frame, size);
        if (!cJSON_IsObject (root))
            abort ();
        cJSON_Delete (root);
    }
    else
    if (!why)
        abort ();
    free (frame);
    return 0;
}
