/*  headers.c — validation of the PUB headers frame (see headers.h).        */
#include "headers.h"
#include "utf8.h"

#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>

int
headers_check (const void *data, size_t size, const char **why)
{
    const char *bad = NULL;
    //  cJSON copies bytes inside strings without checking them, so the
    //  encoding is checked first: subscribers get the frame byte for byte.
    if (!busp_utf8_valid (data, size))
        bad = "headers frame is not valid UTF-8";
    cJSON *root = bad ? NULL : cJSON_ParseWithLength (data, size);
    if (!bad && !cJSON_IsObject (root))
        bad = "headers frame is not a JSON object";
    else
    if (!bad) {
        const cJSON *item;
        cJSON_ArrayForEach (item, root)
            if (!cJSON_IsString (item)) {
                bad = "header values must be strings";
                break;
            }
    }
    cJSON_Delete (root);
    if (bad && why)
        *why = bad;
    return bad ? -EINVAL : 0;
}
