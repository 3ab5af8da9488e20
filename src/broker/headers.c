/*  headers.c — validation of the PUB headers frame (see headers.h).        */
#include "headers.h"
#include "utf8.h"

#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static char *
s_clean (const char *s)
{
    size_t len = strlen (s);
    //  Each bad byte may grow to three.
    char *out = malloc (len * 3 + 1);
    if (out)
        busp_utf8_sanitize (s, len, out, len * 3 + 1, NULL);
    return out;
}

void
json_utf8_sanitize (cJSON *json)
{
    for (cJSON *item = json; item; item = item->next) {
        if (item->string && !busp_utf8_valid (item->string, strlen (item->string))) {
            char *clean = s_clean (item->string);
            if (clean && !(item->type & cJSON_StringIsConst)) {
                cJSON_free (item->string);
                item->string = clean;
            }
            else
                free (clean);
        }
        if (cJSON_IsString (item) && item->valuestring
        &&  !busp_utf8_valid (item->valuestring, strlen (item->valuestring))) {
            char *clean = s_clean (item->valuestring);
            if (clean) {
                cJSON_free (item->valuestring);
                item->valuestring = clean;
            }
        }
        if (item->child)
            json_utf8_sanitize (item->child);
    }
}

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
