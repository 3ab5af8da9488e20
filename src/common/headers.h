/*  headers.h — strict validation of a PUB's headers frame (PROTOCOL §1).

    A headers frame must be exactly one JSON object whose values are
    strings, in valid UTF-8, with nothing after it but JSON whitespace.
    The broker checks every headers frame of every event, so this is a
    single forward scan with no allocation, not a parse into a tree: it
    only has to say yes or no (and where), never build anything.           */
#ifndef BUSP_HEADERS_H_INCLUDED
#define BUSP_HEADERS_H_INCLUDED

#include <stddef.h>

/*  Returns 0 when (data, size) is a valid headers object, else -EINVAL
    with *why (if not NULL) pointing at a static sentence.                  */
int busp_headers_check (const void *data, size_t size, const char **why);

#endif
