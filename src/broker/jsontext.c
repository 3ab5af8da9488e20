/*  jsontext.c — UTF-8 for JSON the broker prints (see jsontext.h).         */
#include "jsontext.h"
#include "utf8.h"

#include <cJSON.h>
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
