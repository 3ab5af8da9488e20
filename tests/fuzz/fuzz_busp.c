/*  fuzz_busp.c — libFuzzer target for the BUSP/1 header decoder.

    Whatever the bytes, busp_decode must not read past them; and what it
    accepts must encode back to the very same bytes (the decoder accepts
    exactly the fields of a command, no more, no fewer), which catches a
    decoder that skips or misreads a field.                                  */
#include "busp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  A copy of exactly size bytes, so ASan sees any read past the frame.
    uint8_t *frame = malloc (size ? size : 1);
    if (!frame)
        return 0;
    memcpy (frame, data, size);
    busp_header_t h;
    const char *why = NULL;
    if (busp_decode (frame, size, &h, &why) == 0) {
        int min_frames, max_frames;
        if (busp_frame_limits (h.command, &min_frames, &max_frames) != 0
        ||  min_frames < 1 || max_frames < min_frames)
            abort ();
        uint8_t buf [BUSP_HEADER_MAX];
        int n = busp_encode (&h, buf, sizeof buf);
        if (n < 0 || (size_t) n != size || memcmp (buf, frame, size) != 0)
            abort ();
        if (strcmp (busp_command_name (h.command), "UNKNOWN") == 0)
            abort ();
    }
    else
    if (!why)
        abort ();               //  every refusal says why
    free (frame);
    return 0;
}
