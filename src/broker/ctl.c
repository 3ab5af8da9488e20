/*  ctl.c — CTL requests: statistics, listings, dead letters, reload.

    Every reply is built with cJSON from the live state; nothing here is on
    the hot path, so clarity beats speed.                                    */
#include "broker.h"
#include <inttypes.h>
#include "clock.h"
#include "dedup.h"
#include "dlq.h"
#include "durable.h"
#include "topic.h"
#include "auth.h"
#include "utf8.h"
#include "hosted.h"

extern volatile sig_atomic_t busd_reload_requested;

static void
s_reply (broker_t *self, session_t *session, uint32_t request_id, uint16_t code, cJSON *json)
{
    busp_header_t r = { .command = BUSP_CTLREPLY, .request_id = request_id, .code = code };
    //  max_ctl_reply: a listing of a huge broker is refused, not built
    //  into one unbounded frame.
    if (self->config->max_ctl_reply && !session->trusted) {
        char *text = cJSON_PrintUnformatted (json);
        size_t size = text ? strlen (text) : 0;
        free (text);
        if (size > (size_t) self->config->max_ctl_reply) {
            cJSON_Delete (json);
            char msg [160];
            snprintf (msg, sizeof msg, "reply of %zu bytes exceeds max_ctl_reply %lld", size,
                      (long long) self->config->max_ctl_reply);
            broker_limit_log (self, session->name, msg);
            self->stats.over_limit++;
            json = cJSON_CreateObject ();
            cJSON_AddStringToObject (json, "error", msg);
            r.code = BUSP_E_LIMIT;
        }
    }
    wire_send_json (self, session, &r, json);
    cJSON_Delete (json);
}

/*  A whole number in min..max: checked before any conversion, since
    converting an out-of-range double to an integer is undefined.           */
static bool
s_whole (const cJSON *item, double min, double max)
{
    return cJSON_IsNumber (item) && item->valuedouble >= min && item->valuedouble <= max
        && item->valuedouble == (double) (int64_t) item->valuedouble;
}

/*  ctl_rate: a token bucket per session, refilled continuously.            */
static bool
s_rate_ok (broker_t *self, session_t *session)
{
    double rate = (double) self->config->ctl_rate;
    if (rate <= 0 || session->trusted)
        return true;
    double elapsed = (double) (self->now_ms - session->ctl_refill_ms) / 1000.0;
    session->ctl_refill_ms = self->now_ms;
    session->ctl_tokens += elapsed * rate;
    if (session->ctl_tokens > rate)
        session->ctl_tokens = rate;
    if (session->ctl_tokens < 1.0)
        return false;
    session->ctl_tokens -= 1.0;
    return true;
}

static void
s_error (broker_t *self, session_t *session, uint32_t request_id, uint16_t code, const char *msg)
{
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "error", msg);
    s_reply (self, session, request_id, code, json);
}

static void
s_totals (broker_t *self, uint64_t *subs, uint64_t *queued, uint64_t *inflight)
{
    *subs = *queued = *inflight = 0;
    for (size_t i = 0; i < self->all_channels.size; i++) {
        channel_t *channel = self->all_channels.items [i];
        *subs += channel->members.size;
        *queued += channel_waiting (channel);
        for (size_t m = 0; m < channel->members.size; m++)
            *inflight += sub_inflight (channel->members.items [m]);
    }
}

cJSON *
ctl_stats (broker_t *self)
{
    uint64_t subs, queued, inflight;
    s_totals (self, &subs, &queued, &inflight);
    cJSON *json = cJSON_CreateObject ();
    const stats_t *s = &self->stats;
#define ADD(name, value) cJSON_AddNumberToObject (json, name, (double) (value))
    ADD ("sessions", zhashx_size (self->sessions));
    ADD ("subscriptions", subs);
    ADD ("queued", queued);
    ADD ("queued_bytes", self->queued_bytes);
    ADD ("inflight", inflight);
    ADD ("throttled_publishers", self->throttled_sessions);
#define BUSD_CTL_COUNTER(field, key, metric, help) ADD (key, s->field);
    BUSD_COUNTERS (BUSD_CTL_COUNTER)
#undef BUSD_CTL_COUNTER
    ADD ("dedup_entries", dedup_size (self->dedup));
    ADD ("dedup_bytes", dedup_bytes (self->dedup));
    ADD ("dlq_entries", dlq_size (self->dlq));
    ADD ("dlq_bytes", dlq_bytes (self->dlq));
    ADD ("dlq_evicted", dlq_evicted (self->dlq));
    ADD ("uptime_s", (busp_mono_ms () - self->started_ms) / 1000);
#undef ADD
    durable_stats (self, json);
    if (self->plugin_stats) {
        cJSON *plugins = self->plugin_stats (self->plugin_metrics_arg);
        if (plugins)
            cJSON_AddItemToObject (json, "plugins", plugins);
    }
    return json;
}

/*  A µs time as an exact JSON integer: cJSON_AddNumber's 15 digits turn
    one that ends in 0 into 1.79610277302191e+15, a float to JSON readers.  */
static void
s_add_int (cJSON *object, const char *name, int64_t value)
{
    char text [24];
    snprintf (text, sizeof text, "%" PRId64, value);
    cJSON_AddRawToObject (object, name, text);
}

/*  Listings are built as cJSON trees, which cost about ten times the text
    they print to: the reply's budget (max_ctl_reply) is spent while
    building, so a listing of a huge broker stops early instead of holding
    a tree ten times the limit (100,000 subscriptions took 300 MiB and
    seconds of the loop for every request).  Each entry is estimated
    generously from its strings plus a fixed part for its numbers and keys. */
#define CTL_ENTRY_FIXED 400

static bool
s_over_budget (uint64_t *budget, size_t cost)
{
    if (*budget == UINT64_MAX)
        return false;
    if (cost > *budget)
        return true;
    *budget -= cost;
    return false;
}

static uint64_t
s_budget (broker_t *self, session_t *session)
{
    return self->config->max_ctl_reply && !session->trusted
         ? (uint64_t) self->config->max_ctl_reply : UINT64_MAX;
}

static cJSON *
s_clients (broker_t *self, uint64_t budget)
{
    cJSON *list = cJSON_CreateArray ();
    int64_t now = busp_mono_ms ();
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        if (s_over_budget (&budget, CTL_ENTRY_FIXED + strlen (session->name)
                                    + strlen (session->identity) + strlen (session->peer))) {
            cJSON_Delete (list);
            return NULL;
        }
        cJSON *c = cJSON_CreateObject ();
        cJSON_AddStringToObject (c, "id", session->id_hex);
        cJSON_AddStringToObject (c, "name", session->name);
        cJSON_AddStringToObject (c, "identity", session->identity);
        cJSON_AddNumberToObject (c, "age_s", (double) ((now - session->created_ms) / 1000));
        cJSON_AddNumberToObject (c, "idle_ms", (double) (now - session->last_seen_ms));
        cJSON_AddNumberToObject (c, "pub_seq", (double) session->last_pub_seq);
        cJSON_AddNumberToObject (c, "pub_credit", (double) session->credit);
        cJSON_AddBoolToObject (c, "throttled", session->throttled_by.size > 0);
        cJSON_AddNumberToObject (c, "subscriptions", (double) zhashx_size (session->subs));
        cJSON_AddNumberToObject (c, "accepted", (double) session->accepted);
        cJSON_AddNumberToObject (c, "rejected", (double) session->rejected);
        cJSON_AddNumberToObject (c, "delivered", (double) session->delivered);
        cJSON_AddStringToObject (c, "peer", session->peer);
        s_add_int (c, "connected_us", (int64_t) session->connected_us);
        cJSON_AddItemToArray (list, c);
        session = zhashx_next (self->sessions);
    }
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddItemToObject (json, "clients", list);
    return json;
}

static cJSON *
s_subscriptions (broker_t *self, uint64_t budget)
{
    cJSON *list = cJSON_CreateArray ();
    for (size_t i = 0; i < self->all_channels.size; i++) {
        channel_t *channel = self->all_channels.items [i];
        size_t throttled = 0;
        for (size_t t = 0; t < channel->throttled.size; t++)
            throttled += strlen (((session_t *) channel->throttled.items [t])->name) + 4;
        for (size_t m = 0; m < channel->members.size; m++) {
            sub_t *sub = channel->members.items [m];
            if (s_over_budget (&budget, CTL_ENTRY_FIXED + strlen (sub->session->name)
                               + strlen (sub->pattern) + throttled
                               + (channel->group ? strlen (channel->group) : 0))) {
                cJSON_Delete (list);
                return NULL;
            }
            cJSON *s = cJSON_CreateObject ();
            cJSON_AddStringToObject (s, "client", sub->session->name);
            cJSON_AddStringToObject (s, "client_id", sub->session->id_hex);
            cJSON_AddNumberToObject (s, "sub_id", sub->sub_id);
            cJSON_AddStringToObject (s, "pattern", sub->pattern);
            if (channel->group)
                cJSON_AddStringToObject (s, "group", channel->group);
            else
                cJSON_AddNullToObject (s, "group");
            cJSON_AddStringToObject (s, "policy", policy_name (channel->policy));
            cJSON_AddStringToObject (s, "ack", sub->ack_explicit ? "explicit" : "none");
            cJSON_AddNumberToObject (s, "queue_limit", channel->queue_limit);
            cJSON_AddNumberToObject (s, "credit", (double) sub->credit);
            cJSON_AddNumberToObject (s, "queued", (double) (queue_len (channel->queue)
                                     + queue_len (channel->redeliveries)));
            cJSON_AddNumberToObject (s, "queued_bytes", (double) (queue_bytes (channel->queue)
                                     + queue_bytes (channel->redeliveries)));
            cJSON_AddNumberToObject (s, "inflight", (double) sub_inflight (sub));
            cJSON_AddNumberToObject (s, "delivered", (double) sub->delivered);
            cJSON_AddNumberToObject (s, "acked", (double) sub->acked);
            cJSON_AddNumberToObject (s, "redelivered", (double) sub->redelivered);
            cJSON_AddNumberToObject (s, "dead_lettered", (double) sub->dead_lettered);
            cJSON_AddNumberToObject (s, "dropped", (double) channel->dropped);
            cJSON *names = cJSON_CreateArray ();
            for (size_t t = 0; t < channel->throttled.size; t++) {
                session_t *p = channel->throttled.items [t];
                cJSON_AddItemToArray (names, cJSON_CreateString (p->name));
            }
            cJSON_AddItemToObject (s, "throttled_publishers", names);
            cJSON_AddItemToArray (list, s);
        }
    }
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddItemToObject (json, "subscriptions", list);
    return json;
}

/*  The subscription a dead letter came from, when it can take it back: a
    queue group or a durable name (x-subscription) that exists now and whose
    pattern matches the original topic.                                      */
static channel_t *
s_origin (broker_t *self, const dlq_entry_t *entry)
{
    const event_t *orig = entry->original;
    for (size_t i = 0; i < self->all_channels.size; i++) {
        channel_t *channel = self->all_channels.items [i];
        if (channel->dead || channel->members.size == 0)
            continue;
        const char *name = channel->durable ? durable_channel_name (channel) : channel->group;
        if (name && streq (name, entry->subscription)
        &&  busp_pattern_match (channel->pattern, strlen (channel->pattern), orig->topic,
                                orig->topic_len))
            return channel;
    }
    return NULL;
}

/*  Replay a dead letter: back to the subscription it came from (to_origin,
    PROTOCOL §7) when that still exists, else republished to its original
    topic, as published.  *went_origin says which.                           */
static bool
s_replay_one (broker_t *self, uint64_t id, bool to_origin, bool *went_origin)
{
    *went_origin = false;
    dlq_entry_t *entry = dlq_find (self->dlq, id);
    if (!entry)
        return false;
    event_t *orig = entry->original;
    event_t *ev = event_new_copy (orig->topic, orig->topic_len, orig->msg_id, orig->msg_id_len,
                                  orig->payload_data, orig->payload_size,
                                  orig->headers_data, orig->headers_size, self->now_wall_us);
    if (!ev)
        return false;
    channel_t *origin = to_origin ? s_origin (self, entry) : NULL;
    if (origin) {
        //  Only that subscription sees it again: the others handled it.
        ev->stream_seq = orig->stream_seq;
        channel_redeliver (origin, ev, 0, 0);
        *went_origin = true;
    }
    else {
        self->stats.accepted++;
        if (route_event (self, ev, NULL) == 0)
            self->stats.unrouted++;
        event_unref (&ev);
    }
    dlq_remove (self->dlq, id);
    return true;
}

static void
s_dlq_replay (broker_t *self, session_t *session, uint32_t request_id, cJSON *req)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive (req, "ids");
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive (req, "topic");
    if ((ids != NULL) == (topic != NULL)) {
        s_error (self, session, request_id, BUSP_E_MALFORMED,
                 "dlq-replay needs exactly one of \"ids\" (array) or \"topic\" (pattern)");
        return;
    }
    const cJSON *to = cJSON_GetObjectItemCaseSensitive (req, "to");
    if (to && !(cJSON_IsString (to) && (streq (to->valuestring, "origin")
                                        || streq (to->valuestring, "topic")))) {
        s_error (self, session, request_id, BUSP_E_MALFORMED,
                 "\"to\" must be \"origin\" (the default) or \"topic\"");
        return;
    }
    bool to_origin = !to || streq (to->valuestring, "origin");
    uint64_t replayed = 0, to_sub = 0;
    cJSON *missing = NULL;
    bool went;
    if (ids) {
        if (!cJSON_IsArray (ids)) {
            s_error (self, session, request_id, BUSP_E_MALFORMED, "\"ids\" must be an array of numbers");
            return;
        }
        const cJSON *id;
        cJSON_ArrayForEach (id, ids) {
            if (!s_whole (id, 0, 9007199254740992.0)) {
                s_error (self, session, request_id, BUSP_E_MALFORMED, "\"ids\" must be an array of numbers");
                return;
            }
        }
        cJSON_ArrayForEach (id, ids)
            if (s_replay_one (self, (uint64_t) id->valuedouble, to_origin, &went)) {
                replayed++;
                to_sub += went;
            }
            else
            if (!dlq_find (self->dlq, (uint64_t) id->valuedouble)) {
                //  Named in the reply: "replayed 0" alone hides a typo.
                if (!missing)
                    missing = cJSON_CreateArray ();
                cJSON_AddItemToArray (missing, cJSON_CreateNumber (id->valuedouble));
            }
    }
    else {
        if (!cJSON_IsString (topic)
        ||  busp_pattern_check (topic->valuestring, strlen (topic->valuestring), NULL)) {
            s_error (self, session, request_id, BUSP_E_MALFORMED, "\"topic\" must be a valid pattern");
            return;
        }
        size_t max = dlq_size (self->dlq);
        uint64_t *list = calloc (max + 1, sizeof (uint64_t));
        if (!list) {
            s_error (self, session, request_id, BUSP_E_INTERNAL, "out of memory");
            return;
        }
        size_t n = dlq_match (self->dlq, topic->valuestring, list, max);
        for (size_t i = 0; i < n; i++)
            if (s_replay_one (self, list [i], to_origin, &went)) {
                replayed++;
                to_sub += went;
            }
        free (list);
    }
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddNumberToObject (json, "replayed", (double) replayed);
    cJSON_AddNumberToObject (json, "to_origin", (double) to_sub);
    cJSON_AddNumberToObject (json, "to_topic", (double) (replayed - to_sub));
    if (missing)
        cJSON_AddItemToObject (json, "missing", missing);
    s_reply (self, session, request_id, BUSP_OK, json);
}

/*  dlq-show (PROTOCOL §7): one dead letter with headers and payload.       */
static void
s_dlq_show (broker_t *self, session_t *session, uint32_t request_id, cJSON *req)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (req, "id");
    if (!s_whole (id, 0, 9007199254740992.0)) {
        s_error (self, session, request_id, BUSP_E_MALFORMED, "dlq-show needs \"id\" (number)");
        return;
    }
    dlq_entry_t *entry = dlq_find (self->dlq, (uint64_t) id->valuedouble);
    if (!entry) {
        char reason [96];
        snprintf (reason, sizeof reason, "no dead letter with id %.0f", id->valuedouble);
        s_error (self, session, request_id, 404, reason);
        return;
    }
    cJSON *json = dlq_entry_json (entry);
    if (!json)
        s_error (self, session, request_id, BUSP_E_INTERNAL, "out of memory");
    else
        s_reply (self, session, request_id, BUSP_OK, json);
}

/*  dlq-purge (PROTOCOL §7): forget dead letters by id or topic pattern.    */
static void
s_dlq_purge (broker_t *self, session_t *session, uint32_t request_id, cJSON *req)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive (req, "ids");
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive (req, "topic");
    bool ids_ok = cJSON_IsArray (ids);
    const cJSON *id;
    cJSON_ArrayForEach (id, ids)
        ids_ok = ids_ok && s_whole (id, 0, 9007199254740992.0);
    if ((ids != NULL) == (topic != NULL) || (ids && !ids_ok)
    ||  (topic && (!cJSON_IsString (topic)
                   || busp_pattern_check (topic->valuestring, strlen (topic->valuestring), NULL)))) {
        s_error (self, session, request_id, BUSP_E_MALFORMED,
                 "dlq-purge needs exactly one of \"ids\" (array of numbers) or \"topic\" (pattern)");
        return;
    }
    uint64_t purged = 0;
    cJSON *missing = NULL;
    if (ids) {
        cJSON_ArrayForEach (id, ids) {
            if (dlq_find (self->dlq, (uint64_t) id->valuedouble)) {
                dlq_remove (self->dlq, (uint64_t) id->valuedouble);
                purged++;
            }
            else {
                if (!missing)
                    missing = cJSON_CreateArray ();
                cJSON_AddItemToArray (missing, cJSON_CreateNumber (id->valuedouble));
            }
        }
    }
    else {
        size_t max = dlq_size (self->dlq);
        uint64_t *list = calloc (max + 1, sizeof (uint64_t));
        if (!list) {
            s_error (self, session, request_id, BUSP_E_INTERNAL, "out of memory");
            return;
        }
        size_t n = dlq_match (self->dlq, topic->valuestring, list, max);
        for (size_t i = 0; i < n; i++)
            dlq_remove (self->dlq, list [i]);
        purged = n;
        free (list);
    }
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddNumberToObject (json, "purged", (double) purged);
    if (missing)
        cJSON_AddItemToObject (json, "missing", missing);
    s_reply (self, session, request_id, BUSP_OK, json);
}

/*  A listing, or 429 when it ran out of budget while being built.          */
static void
s_listing (broker_t *self, session_t *session, uint32_t request_id, cJSON *json)
{
    if (json) {
        s_reply (self, session, request_id, BUSP_OK, json);
        return;
    }
    char msg [160];
    snprintf (msg, sizeof msg, "reply would exceed max_ctl_reply %lld bytes",
              (long long) self->config->max_ctl_reply);
    broker_limit_log (self, session->name, msg);
    self->stats.over_limit++;
    s_error (self, session, request_id, BUSP_E_LIMIT, msg);
}

void
ctl_handle (broker_t *self, session_t *session, uint32_t request_id, const void *body, size_t size)
{
    cJSON *req = body && size ? cJSON_ParseWithLength (body, size) : NULL;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive (req, "cmd");
    if (!cJSON_IsObject (req) || !cJSON_IsString (cmd)) {
        s_error (self, session, request_id, BUSP_E_MALFORMED,
                 "CTL body must be a JSON object with a string \"cmd\"");
        cJSON_Delete (req);
        return;
    }
    const char *name = cmd->valuestring;
    if (!s_rate_ok (self, session)) {
        char msg [96];
        snprintf (msg, sizeof msg, "more than ctl_rate %lld CTL requests per second",
                  (long long) self->config->ctl_rate);
        broker_limit_log (self, session->name, msg);
        self->stats.over_limit++;
        s_error (self, session, request_id, BUSP_E_LIMIT, msg);
        cJSON_Delete (req);
        return;
    }
    char why [512];
    if (!auth_may_ctl (self, session, name, why, sizeof why)) {
        s_error (self, session, request_id, BUSP_E_FORBIDDEN, why);
        cJSON_Delete (req);
        return;
    }
    if (streq (name, "stats"))
        s_reply (self, session, request_id, BUSP_OK, ctl_stats (self));
    else
    if (streq (name, "clients"))
        s_listing (self, session, request_id, s_clients (self, s_budget (self, session)));
    else
    if (streq (name, "subscriptions"))
        s_listing (self, session, request_id,
                   s_subscriptions (self, s_budget (self, session)));
    else
    if (streq (name, "streams") || streq (name, "stream-info") || streq (name, "stream-purge")
    ||  streq (name, "stream-delete")) {
        cJSON *json = NULL;
        char err [600] = "";
        int code = durable_ctl (self, name, req, &json, err, sizeof err);
        if (json)
            s_reply (self, session, request_id, (uint16_t) code, json);
        else
            s_error (self, session, request_id, (uint16_t) code, err);
    }
    else
    if (streq (name, "dlq-list")) {
        const cJSON *topic = cJSON_GetObjectItemCaseSensitive (req, "topic");
        const cJSON *limit = cJSON_GetObjectItemCaseSensitive (req, "limit");
        const cJSON *subscription = cJSON_GetObjectItemCaseSensitive (req, "subscription");
        const cJSON *since = cJSON_GetObjectItemCaseSensitive (req, "since_us");
        if ((topic && (!cJSON_IsString (topic)
                       || busp_pattern_check (topic->valuestring, strlen (topic->valuestring), NULL)))
        ||  (limit && !s_whole (limit, 0, 1e9))
        ||  (subscription && !cJSON_IsString (subscription))
        ||  (since && !s_whole (since, -9.2e18, 9.2e18))) {
            s_error (self, session, request_id, BUSP_E_MALFORMED,
                     "dlq-list takes \"topic\" (pattern), \"limit\" (number), "
                     "\"subscription\" (string), \"since_us\" (number)");
        }
        else {
            cJSON *json = cJSON_CreateObject ();
            cJSON_AddItemToObject (json, "dead_letters",
                dlq_list (self->dlq, topic ? topic->valuestring : NULL,
                          subscription ? subscription->valuestring : NULL,
                          since ? (int64_t) since->valuedouble : 0,
                          limit ? (size_t) limit->valuedouble : 0));
            s_reply (self, session, request_id, BUSP_OK, json);
        }
    }
    else
    if (streq (name, "dlq-replay"))
        s_dlq_replay (self, session, request_id, req);
    else
    if (streq (name, "dlq-show"))
        s_dlq_show (self, session, request_id, req);
    else
    if (streq (name, "dlq-purge"))
        s_dlq_purge (self, session, request_id, req);
    else
    if (streq (name, "plugins")) {
        //  Filled by the plugin host (plugins.c) through its hook.
        cJSON *json = cJSON_CreateObject ();
        cJSON *list = self->plugin_stats ? self->plugin_stats (self->plugin_metrics_arg) : NULL;
        if (!list)
            list = cJSON_CreateArray ();
        if (list)
            hosted_list (self, list);
        cJSON_AddItemToObject (json, "plugins", list ? list : cJSON_CreateArray ());
        s_reply (self, session, request_id, BUSP_OK, json);
    }
    else
    if (streq (name, "plugin-host")) {
        //  busd-plugin-host's keeper reporting its restarts (hosted.c).
        char err [200] = "";
        int code = hosted_report (self, session, req, err, sizeof err);
        if (code == BUSP_OK)
            s_reply (self, session, request_id, BUSP_OK, cJSON_CreateObject ());
        else
            s_error (self, session, request_id, (uint16_t) code, err);
    }
    else
    if (streq (name, "reload")) {
        if (!self->reload_fn) {
            busd_reload_requested = 1;
            s_reply (self, session, request_id, BUSP_OK, cJSON_CreateObject ());
        }
        else {
            char msg [8192] = "";
            if (self->reload_fn (msg, sizeof msg) == 0) {
                cJSON *json = cJSON_CreateObject ();
                cJSON_AddBoolToObject (json, "reloaded", true);
                if (msg [0])
                    cJSON_AddStringToObject (json, "restart_needed", msg);
                s_reply (self, session, request_id, BUSP_OK, json);
            }
            else
                s_error (self, session, request_id, BUSP_E_MALFORMED, msg);
        }
    }
    else {
        //  Echo the command shortened on a character boundary, invalid
        //  bytes replaced: the reply must be UTF-8.
        char safe [201], msg [300];
        busp_utf8_sanitize (name, strlen (name), safe, sizeof safe, NULL);
        snprintf (msg, sizeof msg, "unknown cmd '%s'", safe);
        s_error (self, session, request_id, BUSP_E_MALFORMED, msg);
    }
    cJSON_Delete (req);
}
