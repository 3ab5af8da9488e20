/*  headers.h — the PUB headers frame (PROTOCOL §1): a UTF-8 JSON object
    whose values are strings.

    Its own file so that the rule has one definition the broker applies and
    a fuzzer can drive without a socket.                                    */
#ifndef BUSD_HEADERS_H_INCLUDED
#define BUSD_HEADERS_H_INCLUDED

#include <stddef.h>

/*  0 when (data, size) is a valid headers frame; otherwise -EINVAL and *why
    (if not NULL) a static sentence saying what is wrong.                    */
int headers_check (const void *data, size_t size, const char **why);

/*  Make every key and string value in a JSON tree valid UTF-8 (invalid
    bytes become U+FFFD) before the broker prints it for a peer: cJSON
    copies string bytes as they came.                                        */
struct cJSON;
void json_utf8_sanitize (struct cJSON *json);

#endif
