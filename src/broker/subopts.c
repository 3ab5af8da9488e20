/*  subopts.c — SUB options (PROTOCOL §6): parse, check, default.

    Strict on purpose: an unknown key, a wrong type or a value out of range
    fails the SUB naming the key, because a silently ignored typo in
    "overflow" would turn backpressure into data loss.                       */
#include "broker.h"

static bool
s_uint (const cJSON *item, double min, double max, uint64_t *out)
{
    if (!cJSON_IsNumber (item))
        return false;
    double v = item->valuedouble;
    //  Range first: converting a negative or huge double to uint64_t to
    //  check that it is whole would be undefined.
    if (!(v >= min && v <= max) || v != (double) (uint64_t) v)
        return false;
    *out = (uint64_t) v;
    return true;
}

static int
s_fail (char *err, size_t size, const char *fmt, const char *key)
{
    snprintf (err, size, fmt, key);
    return -EINVAL;
}

int
subopts_parse (subopts_t *opts, const config_t *config, const void *json, size_t size,
               char *err, size_t err_size)
{
    memset (opts, 0, sizeof *opts);
    opts->credit = (uint32_t) config->credit;
    opts->policy = POLICY_BLOCK;
    opts->queue_limit = (uint32_t) config->queue_limit;
    opts->queue_bytes = (uint64_t) config->queue_bytes;
    opts->ack_wait_ms = (uint32_t) config->ack_wait_ms;
    opts->max_deliver = (uint32_t) config->max_deliver;
    if (!json || size == 0)
        return 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts (json, size, &end, false);
    //  Nothing but whitespace may follow the object.
    if (root && end)
        while (end < (const char *) json + size && strchr (" \t\r\n", *end) && *end)
            end++;
    if (!cJSON_IsObject (root) || !end || end != (const char *) json + size) {
        cJSON_Delete (root);
        snprintf (err, err_size, "options must be a JSON object");
        return -EINVAL;
    }
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach (item, root) {
        const char *key = item->string;
        uint64_t v;
        if (streq (key, "credit")) {
            if (!s_uint (item, 0, 4294967295.0, &v)) {
                rc = s_fail (err, err_size, "option '%s' must be an integer 0..4294967295", key);
                break;
            }
            opts->credit = (uint32_t) v;
        }
        else
        if (streq (key, "ack")) {
            if (cJSON_IsString (item) && streq (item->valuestring, "none"))
                opts->ack_explicit = false;
            else
            if (cJSON_IsString (item) && streq (item->valuestring, "explicit"))
                opts->ack_explicit = true;
            else {
                rc = s_fail (err, err_size, "option '%s' must be \"none\" or \"explicit\"", key);
                break;
            }
        }
        else
        if (streq (key, "overflow")) {
            static const char *names [] = { "block", "drop-oldest", "drop-new", "latest", "disconnect" };
            int found = -1;
            for (int i = 0; i < 5 && cJSON_IsString (item); i++)
                if (streq (item->valuestring, names [i]))
                    found = i;
            if (found < 0) {
                rc = s_fail (err, err_size, "option '%s' must be one of block, drop-oldest, "
                             "drop-new, latest, disconnect", key);
                break;
            }
            opts->policy = (policy_t) found;
        }
        else
        if (streq (key, "queue_limit")) {
            if (!s_uint (item, 1, 4294967295.0, &v)) {
                rc = s_fail (err, err_size, "option '%s' must be an integer 1..4294967295", key);
                break;
            }
            opts->queue_limit = (uint32_t) v;
        }
        else
        if (streq (key, "queue_bytes")) {
            //  busd extension: the per-subscription byte limit (default
            //  from the broker's queue_bytes setting).
            if (!s_uint (item, 1024, 1e15, &v)) {
                rc = s_fail (err, err_size, "option '%s' must be an integer 1024..10^15", key);
                break;
            }
            opts->queue_bytes = v;
        }
        else
        if (streq (key, "ack_wait_ms")) {
            if (!s_uint (item, 1, 4294967295.0, &v)) {
                rc = s_fail (err, err_size, "option '%s' must be an integer 1..4294967295", key);
                break;
            }
            opts->ack_wait_ms = (uint32_t) v;
        }
        else
        if (streq (key, "max_deliver")) {
            if (!s_uint (item, 1, 65535, &v)) {
                rc = s_fail (err, err_size, "option '%s' must be an integer 1..65535", key);
                break;
            }
            opts->max_deliver = (uint32_t) v;
        }
        else
        if (streq (key, "group") || streq (key, "durable")) {
            if (!cJSON_IsString (item) || strlen (item->valuestring) == 0
            ||  strlen (item->valuestring) > 255) {
                rc = s_fail (err, err_size, "option '%s' must be a string of 1..255 bytes", key);
                break;
            }
            if (streq (key, "group")) {
                snprintf (opts->group, sizeof opts->group, "%s", item->valuestring);
                opts->has_group = true;
            }
            else {
                snprintf (opts->durable, sizeof opts->durable, "%s", item->valuestring);
                opts->has_durable = true;
            }
        }
        else
        if (streq (key, "from")) {
            bool ok = false;
            if (cJSON_IsString (item))
                ok = streq (item->valuestring, "new") || streq (item->valuestring, "first")
                  || streq (item->valuestring, "last");
            else
            if (cJSON_IsObject (item) && cJSON_GetArraySize (item) == 1) {
                const cJSON *seq = cJSON_GetObjectItemCaseSensitive (item, "seq");
                const cJSON *time = cJSON_GetObjectItemCaseSensitive (item, "time");
                ok = (seq && s_uint (seq, 0, 1.8e19, &v)) || cJSON_IsString (time);
            }
            if (!ok) {
                rc = s_fail (err, err_size, "option '%s' must be \"new\", \"first\", \"last\", "
                             "{\"seq\": N} or {\"time\": \"RFC 3339\"}", key);
                break;
            }
            opts->has_from = true;
        }
        else
        if (streq (key, "on_end")) {
            //  PROTOCOL §4: what the subscription leaves when it ends.
            if (cJSON_IsString (item) && streq (item->valuestring, "discard"))
                opts->on_end_dead_letter = false;
            else
            if (cJSON_IsString (item) && streq (item->valuestring, "dead-letter"))
                opts->on_end_dead_letter = true;
            else {
                rc = s_fail (err, err_size, "option '%s' must be \"discard\" or \"dead-letter\"", key);
                break;
            }
        }
        else {
            rc = s_fail (err, err_size, "unknown option '%s'", key);
            break;
        }
    }
    cJSON_Delete (root);
    if (rc == 0 && opts->has_from && !opts->has_durable)
        rc = s_fail (err, err_size, "option '%s' needs 'durable'", "from");
    return rc;
}
