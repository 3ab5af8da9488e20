/*  subopts.c — typed SUB options (busd_sub_options_t) for libbusd.

    The protocol carries SUB options as a JSON object, and busd_subscribe
    takes that text; C callers also want the compiler to check a field
    name.  This file turns the struct into the same JSON and calls
    busd_subscribe, so there is one code path to the wire and nothing in
    client.c's state machine knows about the struct.                        */
#include "busd/client.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>

BUSD_EXPORT void
busd_sub_options_init (busd_sub_options_t *opts)
{
    if (!opts)
        return;
    *opts = (busd_sub_options_t) {
        .credit = -1, .queue_limit = -1, .ack_wait_ms = -1, .max_deliver = -1,
        .overflow = BUSD_OVERFLOW_DEFAULT
    };
}

static int
s_number (cJSON *json, const char *key, int64_t value)
{
    if (value < 0)
        return 0;
    if (value > UINT32_MAX)
        return -EINVAL;
    cJSON_DeleteItemFromObjectCaseSensitive (json, key);
    return cJSON_AddNumberToObject (json, key, (double) value) ? 0 : -ENOMEM;
}

static int
s_string (cJSON *json, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive (json, key);
    return cJSON_AddStringToObject (json, key, value) ? 0 : -ENOMEM;
}

BUSD_EXPORT int
busd_subscribe_opts (busd_client_t *self, const char *pattern, const busd_sub_options_t *opts,
                     busd_sub_id_t *sub_id, int timeout_ms)
{
    static const char *policies [] = {
        NULL, "block", "drop-oldest", "drop-new", "latest", "disconnect"
    };
    if (sub_id)
        *sub_id = 0;
    if (!self || !pattern || !sub_id)
        return -EINVAL;
    busd_sub_options_t defaults;
    busd_sub_options_init (&defaults);
    if (!opts)
        opts = &defaults;
    if ((int) opts->overflow < 0 || opts->overflow > BUSD_OVERFLOW_DISCONNECT)
        return -EINVAL;
    cJSON *json = opts->extra_json ? cJSON_Parse (opts->extra_json) : cJSON_CreateObject ();
    if (!cJSON_IsObject (json)) {
        cJSON_Delete (json);
        return opts->extra_json ? -EINVAL : -ENOMEM;
    }
    int rc = s_number (json, "credit", opts->credit);
    if (rc == 0 && opts->ack_explicit)
        rc = s_string (json, "ack", "explicit");
    if (rc == 0 && opts->group)
        rc = s_string (json, "group", opts->group);
    if (rc == 0 && opts->overflow != BUSD_OVERFLOW_DEFAULT)
        rc = s_string (json, "overflow", policies [opts->overflow]);
    if (rc == 0)
        rc = s_number (json, "queue_limit", opts->queue_limit);
    if (rc == 0)
        rc = s_number (json, "ack_wait_ms", opts->ack_wait_ms);
    if (rc == 0)
        rc = s_number (json, "max_deliver", opts->max_deliver);
    char *text = rc == 0 ? cJSON_PrintUnformatted (json) : NULL;
    cJSON_Delete (json);
    if (rc)
        return rc;
    if (!text)
        return -ENOMEM;
    int64_t id = busd_subscribe (self, pattern, text, timeout_ms);
    free (text);
    if (id < 0)
        return (int) id;
    *sub_id = (busd_sub_id_t) id;
    return 0;
}
