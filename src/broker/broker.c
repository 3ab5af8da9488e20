/*  broker.c — the event loop, the wire, and the dispatch of BUSP commands.

    The ROUTER is drained in batches: every readable wakeup receives up to
    BATCH_MAX messages without blocking, handles each (routing PUBs and
    sending DELIVERs as it goes), and only then sends one cumulative PUBACK
    per publisher and pumps the queues that changed.  That is what keeps
    control traffic to a few messages per batch instead of one per event.
    Frames are zmq_msg_t end to end: payloads are moved into the event and
    shared with every DELIVER, never copied.                                 */
#include "broker.h"
#include "topic.h"
#include "clock.h"
#include "blob.h"
#include "dedup.h"
#include "dlq.h"
#include "metrics.h"
#include <errno.h>

#define BATCH_MAX       1024
#define MAX_FRAMES      4       /*  routing id + header + body + headers    */
#define TICK_MS         10
#define SESSION_SCAN_MS 100

/*  ------------------------------------------------------------------
    Small helpers shared by the broker's files                              */

int
ptrvec_add (ptrvec_t *vec, void *item)
{
    if (ptrvec_contains (vec, item))
        return -EEXIST;
    return ptrvec_push (vec, item);
}

int
ptrvec_push (ptrvec_t *vec, void *item)
{
    if (vec->size == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 4;
        void **items = realloc (vec->items, cap * sizeof (void *));
        if (!items)
            return -ENOMEM;
        vec->items = items;
        vec->cap = cap;
    }
    vec->items [vec->size++] = item;
    return 0;
}

bool
ptrvec_remove (ptrvec_t *vec, void *item)
{
    for (size_t i = 0; i < vec->size; i++)
        if (vec->items [i] == item) {
            memmove (vec->items + i, vec->items + i + 1, (vec->size - i - 1) * sizeof (void *));
            vec->size--;
            return true;
        }
    return false;
}

bool
ptrvec_contains (const ptrvec_t *vec, const void *item)
{
    for (size_t i = 0; i < vec->size; i++)
        if (vec->items [i] == item)
            return true;
    return false;
}

void
ptrvec_free (ptrvec_t *vec)
{
    free (vec->items);
    vec->items = NULL;
    vec->size = vec->cap = 0;
}

const char *
policy_name (policy_t policy)
{
    switch (policy) {
        case POLICY_BLOCK: return "block";
        case POLICY_DROP_OLDEST: return "drop-oldest";
        case POLICY_DROP_NEW: return "drop-new";
        case POLICY_LATEST: return "latest";
        case POLICY_DISCONNECT: return "disconnect";
    }
    return "?";
}

/*  ------------------------------------------------------------------
    Lifecycle                                                               */

broker_t *
broker_new (config_t *config)
{
    broker_t *self = calloc (1, sizeof (broker_t));
    if (!self)
        return NULL;
    self->config = config;
    self->sessions = zhashx_new ();
    self->groups = zhashx_new ();
    self->trie = trie_new ();
    self->loop = zloop_new ();
    self->bound = zlistx_new ();
    self->dedup = dedup_new (config->dedup_window_ms, (size_t) config->dedup_max);
    self->dlq = dlq_new ((size_t) config->dlq_max_count, (size_t) config->dlq_max_bytes);
    if (!self->sessions || !self->groups || !self->trie || !self->loop || !self->bound
    ||  !self->dedup || !self->dlq) {
        broker_destroy (&self);
        return NULL;
    }
    //  Session index: keys are routing-id blobs (length first, blob.h).
    zhashx_set_key_hasher (self->sessions, busp_blob_hash);
    zhashx_set_key_comparator (self->sessions, busp_blob_compare);
    zhashx_set_key_duplicator (self->sessions, busp_blob_dup);
    zhashx_set_key_destructor (self->sessions, busp_blob_free);
    zlistx_set_destructor (self->bound, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (self->bound, (zlistx_duplicator_fn *) strdup);
    broker_clock (self);
    self->started_ms = self->now_ms;
    uint8_t rnd [8];
    FILE *urandom = fopen ("/dev/urandom", "rb");
    if (!urandom || fread (rnd, 1, sizeof rnd, urandom) != sizeof rnd) {
        uint64_t seed = (uint64_t) busp_wall_us () ^ ((uint64_t) getpid () << 32);
        memcpy (rnd, &seed, sizeof rnd);
    }
    if (urandom)
        fclose (urandom);
    snprintf (self->broker_id, sizeof self->broker_id, "busd-");
    for (int i = 0; i < 8; i++)
        snprintf (self->broker_id + 5 + i * 2, 3, "%02x", rnd [i]);
    return self;
}

void
broker_destroy (broker_t **self_p)
{
    broker_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (self->sessions) {
        //  Ending sessions ends their subscriptions and so every channel.
        session_t *session = zhashx_first (self->sessions);
        while (session) {
            session_end (session, "broker stopping");
            session = zhashx_first (self->sessions);
        }
    }
    for (size_t i = 0; i < self->dead_sessions.size; i++) {
        session_t *session = self->dead_sessions.items [i];
        session_free (&session);
    }
    for (size_t i = 0; i < self->dead_channels.size; i++) {
        channel_t *channel = self->dead_channels.items [i];
        channel_free (&channel);
    }
    ptrvec_free (&self->dead_sessions);
    ptrvec_free (&self->dead_channels);
    ptrvec_free (&self->dirty_channels);
    ptrvec_free (&self->dirty_sessions);
    ptrvec_free (&self->gone_sessions);
    ptrvec_free (&self->all_channels);
    zhashx_destroy (&self->sessions);
    zhashx_destroy (&self->groups);
    trie_destroy (&self->trie);
    dedup_destroy (&self->dedup);
    dlq_destroy (&self->dlq);
    zloop_destroy (&self->loop);
    metrics_destroy (&self->metrics);
    if (self->router) {
        //  What was sent is owed to its peers: let ZeroMQ finish writing the
        //  last DELIVERs, PUBACKs and ERROR 503s (bounded by the drain
        //  deadline) instead of discarding them with the socket.
        int linger = (int) (self->config->drain_timeout_ms > 1000 ? self->config->drain_timeout_ms : 1000);
        zmq_setsockopt (self->router, ZMQ_LINGER, &linger, sizeof linger);
    }
    zsock_destroy (&self->router_sock);
    zlistx_destroy (&self->bound);
    free (self);
    event_pool_release ();
}

int
broker_bind (broker_t *self)
{
    self->router_sock = zsock_new (ZMQ_ROUTER);
    if (!self->router_sock)
        return -ENOMEM;
    self->router = zsock_resolve (self->router_sock);
    int on = 1;
    int hwm = (int) self->config->sndhwm;
    int zero = 0;
    //  MANDATORY turns a send to a vanished peer into EHOSTUNREACH instead
    //  of a silent drop; credit keeps sends under the HWM so EAGAIN is a bug
    //  we count, and the event is kept, not lost.
    if (zmq_setsockopt (self->router, ZMQ_ROUTER_MANDATORY, &on, sizeof on)
    ||  zmq_setsockopt (self->router, ZMQ_SNDHWM, &hwm, sizeof hwm)
    ||  zmq_setsockopt (self->router, ZMQ_RCVHWM, &hwm, sizeof hwm)
    ||  zmq_setsockopt (self->router, ZMQ_LINGER, &zero, sizeof zero)) {
        log_error ("cannot configure the ROUTER socket: %s", zmq_strerror (errno));
        return -EINVAL;
    }
    for (int i = 0; i < self->config->bind_count; i++) {
        const char *endpoint = self->config->binds [i];
        if (zmq_bind (self->router, endpoint)) {
            log_error ("cannot bind %s: %s", endpoint, zmq_strerror (errno));
            return -EADDRINUSE;
        }
        char last [256];
        size_t size = sizeof last;
        if (zmq_getsockopt (self->router, ZMQ_LAST_ENDPOINT, last, &size))
            snprintf (last, sizeof last, "%s", endpoint);
        zlistx_add_end (self->bound, last);
        log_notice ("busd %s listening on %s", PACKAGE_VERSION, last);
    }
    if (self->config->metrics_bind) {
        self->metrics = metrics_new (self->config->metrics_bind);
        if (!self->metrics)
            return -EADDRINUSE;
        metrics_update (self->metrics, self);
    }
    return 0;
}

/*  ------------------------------------------------------------------
    Sending                                                                 */

int
broker_send (broker_t *self, session_t *session, const busp_header_t *h,
             zmq_msg_t *body, zmq_msg_t *extra)
{
    uint8_t buf [BUSP_HEADER_MAX];
    int len = busp_encode (h, buf, sizeof buf);
    assert (len > 0);
    return broker_send_raw (self, session, buf, (size_t) len, body, extra);
}

int
broker_send_raw (broker_t *self, session_t *session, const uint8_t *buf, size_t len,
                 zmq_msg_t *body, zmq_msg_t *extra)
{
    if (session->dead || session->gone)
        return -EHOSTUNREACH;
    if (zmq_send (self->router, session->rid + 1, session->rid [0], ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        int err = errno;
        self->stats.send_failures++;
        if (err == EHOSTUNREACH) {
            //  Ended at the end of the batch: callers may be iterating
            //  over the structures session_end changes.
            log_info ("client '%s' (%s) is gone", session->name, session->id_hex);
            session->gone = true;
            ptrvec_add (&self->gone_sessions, session);
            return -EHOSTUNREACH;
        }
        log_warning ("send %s to %s failed: %s", busp_command_name (buf [1]),
                     session->name, zmq_strerror (err));
        return -EAGAIN;
    }
    //  Past the routing frame the message is committed: later parts of a
    //  multipart message cannot fail on the HWM.
    bool more = body || extra;
    zmq_send (self->router, buf, (size_t) len, more ? ZMQ_SNDMORE : 0);
    if (more) {
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        if (body)
            zmq_msg_copy (&copy, body);
        zmq_msg_send (&copy, self->router, extra ? ZMQ_SNDMORE : 0);
        if (extra) {
            zmq_msg_init (&copy);
            zmq_msg_copy (&copy, extra);
            zmq_msg_send (&copy, self->router, 0);
        }
    }
    return 0;
}

int
broker_send_json (broker_t *self, session_t *session, const busp_header_t *h, cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    if (!text)
        return -ENOMEM;
    zmq_msg_t body;
    zmq_msg_init_size (&body, strlen (text));
    memcpy (zmq_msg_data (&body), text, strlen (text));
    free (text);
    int rc = broker_send (self, session, h, &body, NULL);
    zmq_msg_close (&body);
    return rc;
}

void
broker_send_error (broker_t *self, session_t *session, const uint8_t *rid,
                   uint16_t code, const char *reason)
{
    busp_header_t h = { .command = BUSP_ERROR, .code = code, .name = busp_str (reason) };
    if (session) {
        broker_send (self, session, &h, NULL, NULL);
        return;
    }
    //  No session: answer the routing id directly.
    uint8_t buf [BUSP_HEADER_MAX];
    int len = busp_encode (&h, buf, sizeof buf);
    assert (len > 0);
    if (zmq_send (self->router, rid + 1, rid [0], ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        self->stats.send_failures++;
        return;
    }
    zmq_send (self->router, buf, (size_t) len, 0);
}

/*  ------------------------------------------------------------------
    Routing                                                                 */

typedef struct {
    event_t *event;
    session_t *publisher;
    size_t reached;
} route_ctx_t;

static void
s_route_one (void *value, void *arg)
{
    route_ctx_t *ctx = arg;
    channel_t *channel = value;
    if (channel->dead)
        return;
    channel_offer (channel, ctx->event, ctx->publisher);
    ctx->reached++;
}

size_t
broker_route (broker_t *self, event_t *ev, session_t *publisher)
{
    route_ctx_t ctx = { ev, publisher, 0 };
    trie_match (self->trie, ev->topic, ev->topic_len, s_route_one, &ctx);
    return ctx.reached;
}

/*  ------------------------------------------------------------------
    Commands                                                                */

static cJSON *
s_welcome_info (broker_t *self)
{
    cJSON *info = cJSON_CreateObject ();
    cJSON_AddNumberToObject (info, "session_timeout_ms", (double) self->config->session_timeout_ms);
    cJSON_AddNumberToObject (info, "heartbeat_ms", (double) self->config->heartbeat_ms);
    cJSON_AddNumberToObject (info, "dedup_window_ms", (double) self->config->dedup_window_ms);
    cJSON_AddNumberToObject (info, "max_headers", (double) self->config->max_headers);
    cJSON_AddNumberToObject (info, "max_topic", 255);
    cJSON_AddStringToObject (info, "broker_version", PACKAGE_VERSION);
    return info;
}

static void
s_handle_hello (broker_t *self, session_t *session, const uint8_t *rid,
                const busp_header_t *h, zmq_msg_t *frames, int nframes)
{
    if (h->version != BUSP_VERSION) {
        char reason [96];
        snprintf (reason, sizeof reason, "unsupported protocol version %u (this broker speaks 1)",
                  h->version);
        self->stats.protocol_errors++;
        broker_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
        return;
    }
    if (nframes > 2 && zmq_msg_size (&frames [2]) > 0) {
        cJSON *opts = cJSON_ParseWithLength (zmq_msg_data (&frames [2]), zmq_msg_size (&frames [2]));
        bool ok = cJSON_IsObject (opts);
        cJSON_Delete (opts);
        if (!ok) {
            self->stats.protocol_errors++;
            broker_send_error (self, session, rid, BUSP_E_MALFORMED,
                               "HELLO options must be a JSON object");
            return;
        }
    }
    if (self->draining) {
        broker_send_error (self, session, rid, BUSP_E_SHUTDOWN, "broker is shutting down");
        return;
    }
    if (session) {
        //  The old session's PUBs in this batch are still owed their
        //  PUBACK; the client reads everything before WELCOME as old.
        if (session->pub_dirty)
            session_puback (session);
        session_end (session, "new HELLO on a live session");
    }
    session = session_new (self, rid + 1, rid [0], h->name.data, h->name.len);
    if (!session) {
        broker_send_error (self, NULL, rid, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    session->credit = (uint64_t) self->config->pub_credit;
    busp_header_t w = {
        .command = BUSP_WELCOME, .version = BUSP_VERSION,
        .name = busp_str (self->broker_id),
        .credit = (uint32_t) self->config->pub_credit,
        .max_payload = (uint32_t) self->config->max_payload
    };
    cJSON *info = s_welcome_info (self);
    broker_send_json (self, session, &w, info);
    cJSON_Delete (info);
    log_info ("client '%s' (%s) connected", session->name, session->id_hex);
}

static void
s_reject (broker_t *self, session_t *session, uint64_t seq, uint16_t code, const char *reason)
{
    busp_header_t r = { .command = BUSP_REJECT, .seq = seq, .code = code, .name = busp_str (reason) };
    self->stats.rejected++;
    session->rejected++;
    broker_send (self, session, &r, NULL, NULL);
    log_debug ("rejected PUB %llu from %s: %u %s", (unsigned long long) seq, session->name, code, reason);
}

/*  Headers must be a JSON object whose values are strings.                 */
static const char *
s_check_headers (const void *data, size_t size)
{
    cJSON *root = cJSON_ParseWithLength (data, size);
    const char *why = NULL;
    if (!cJSON_IsObject (root))
        why = "headers frame is not a JSON object";
    else {
        const cJSON *item;
        cJSON_ArrayForEach (item, root)
            if (!cJSON_IsString (item)) {
                why = "header values must be strings";
                break;
            }
    }
    cJSON_Delete (root);
    return why;
}

static void
s_handle_pub (broker_t *self, session_t *session, const busp_header_t *h,
              zmq_msg_t *frames, int nframes)
{
    if (h->seq != session->last_pub_seq + 1) {
        char reason [128];
        snprintf (reason, sizeof reason, "pub_seq %llu out of order: expected %llu",
                  (unsigned long long) h->seq, (unsigned long long) session->last_pub_seq + 1);
        self->stats.protocol_errors++;
        broker_send_error (self, session, NULL, BUSP_E_MALFORMED, reason);
        return;
    }
    session->last_pub_seq = h->seq;
    if (!session->pub_dirty) {
        session->pub_dirty = true;
        ptrvec_push (&self->dirty_sessions, session);
    }
    if (session->credit == 0) {
        s_reject (self, session, h->seq, BUSP_E_LIMIT, "no publisher credit");
        return;
    }
    session->credit--;
    session->credit_owed++;
    if (self->draining) {
        s_reject (self, session, h->seq, BUSP_E_SHUTDOWN, "broker is shutting down");
        return;
    }
    const char *why = NULL;
    if (busp_topic_check (h->topic.data, h->topic.len, &why)) {
        char reason [160];
        snprintf (reason, sizeof reason, "invalid topic: %s", why);
        s_reject (self, session, h->seq, BUSP_E_MALFORMED, reason);
        return;
    }
    if (busp_topic_is_system (h->topic.data, h->topic.len)) {
        s_reject (self, session, h->seq, BUSP_E_FORBIDDEN,
                  "topics starting with '$' are reserved for the broker");
        return;
    }
    zmq_msg_t *payload = nframes > 2 ? &frames [2] : NULL;
    size_t size = payload ? zmq_msg_size (payload) : 0;
    if (size > (uint64_t) self->config->max_payload) {
        char reason [128];
        snprintf (reason, sizeof reason, "payload of %zu bytes exceeds max_payload %lld",
                  size, (long long) self->config->max_payload);
        s_reject (self, session, h->seq, BUSP_E_TOO_LARGE, reason);
        return;
    }
    zmq_msg_t *headers = nframes > 3 && zmq_msg_size (&frames [3]) > 0 ? &frames [3] : NULL;
    if (headers) {
        size_t hsize = zmq_msg_size (headers);
        if (hsize > (uint64_t) self->config->max_headers) {
            char reason [128];
            snprintf (reason, sizeof reason, "headers of %zu bytes exceed max_headers %lld",
                      hsize, (long long) self->config->max_headers);
            s_reject (self, session, h->seq, BUSP_E_TOO_LARGE, reason);
            return;
        }
        const char *bad = s_check_headers (zmq_msg_data (headers), hsize);
        if (bad) {
            s_reject (self, session, h->seq, BUSP_E_MALFORMED, bad);
            return;
        }
    }
    if (h->msg_id.len && dedup_seen (self->dedup, h->msg_id.data, h->msg_id.len, self->now_ms)) {
        self->stats.duplicates++;
        return;
    }
    event_t *ev = event_new (h->topic.data, h->topic.len, h->msg_id.data, h->msg_id.len,
                             payload, headers, self->now_wall_us);
    if (!ev) {
        s_reject (self, session, h->seq, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    self->stats.accepted++;
    self->stats.events_in_bytes += size;
    session->accepted++;
    if (h->msg_id.len)
        dedup_add (self->dedup, h->msg_id.data, h->msg_id.len, self->now_ms);
    if (broker_route (self, ev, session) == 0)
        self->stats.unrouted++;
    event_unref (&ev);
}

static void
s_subend (broker_t *self, session_t *session, uint32_t sub_id, uint16_t code, const char *reason)
{
    busp_header_t e = { .command = BUSP_SUBEND, .sub_id = sub_id, .code = code,
                        .name = busp_str (reason) };
    broker_send (self, session, &e, NULL, NULL);
}

static void
s_handle_sub (broker_t *self, session_t *session, const busp_header_t *h,
              zmq_msg_t *frames, int nframes)
{
    if (session_sub (session, h->sub_id)) {
        char reason [64];
        snprintf (reason, sizeof reason, "sub_id %u is already in use", h->sub_id);
        broker_send_error (self, session, NULL, BUSP_E_CONFLICT, reason);
        return;
    }
    const char *why = NULL;
    char pattern [256];
    busp_str_copy (h->topic, pattern);
    if (busp_pattern_check (h->topic.data, h->topic.len, &why)) {
        char reason [200];
        snprintf (reason, sizeof reason, "invalid pattern: %s", why);
        s_subend (self, session, h->sub_id, BUSP_E_MALFORMED, reason);
        return;
    }
    subopts_t opts;
    char err [200];
    const void *body = nframes > 2 ? zmq_msg_data (&frames [2]) : NULL;
    size_t size = nframes > 2 ? zmq_msg_size (&frames [2]) : 0;
    if (subopts_parse (&opts, self->config, body, size, err, sizeof err)) {
        s_subend (self, session, h->sub_id, BUSP_E_MALFORMED, err);
        return;
    }
    channel_t *channel = NULL;
    char key [520];
    if (opts.has_group) {
        snprintf (key, sizeof key, "%s\x1f%s", opts.group, pattern);
        channel = zhashx_lookup (self->groups, key);
        if (channel && (channel->policy != opts.policy || channel->queue_limit != opts.queue_limit)) {
            char reason [200];
            snprintf (reason, sizeof reason,
                      "group '%.150s' exists with overflow %s and queue_limit %u", opts.group,
                      policy_name (channel->policy), channel->queue_limit);
            s_subend (self, session, h->sub_id, BUSP_E_CONFLICT, reason);
            return;
        }
    }
    if (opts.has_durable) {
        s_subend (self, session, h->sub_id, BUSP_E_NOT_FOUND,
                  "no durable stream covers the pattern");
        return;
    }
    sub_t *sub = sub_new (session, h->sub_id, pattern);
    if (!sub) {
        s_subend (self, session, h->sub_id, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    sub->credit = opts.credit;
    sub->ack_explicit = opts.ack_explicit;
    sub->ack_wait_ms = opts.ack_wait_ms;
    sub->max_deliver = opts.max_deliver;
    if (!channel) {
        channel = channel_new (self, pattern, opts.has_group ? opts.group : NULL, opts.policy,
                               opts.queue_limit, opts.queue_bytes);
        if (!channel || trie_insert (self->trie, pattern, strlen (pattern), channel)) {
            channel_free (&channel);
            sub_free (&sub);
            s_subend (self, session, h->sub_id, BUSP_E_INTERNAL, "out of memory");
            return;
        }
        if (opts.has_group) {
            channel->key = strdup (key);
            zhashx_insert (self->groups, key, channel);
        }
        ptrvec_add (&self->all_channels, channel);
    }
    zhashx_insert (session->subs, (void *) ((uintptr_t) h->sub_id + 1), sub);
    channel_add_member (channel, sub);

    busp_header_t ok = { .command = BUSP_SUBOK, .sub_id = h->sub_id };
    cJSON *info = cJSON_CreateObject ();
    cJSON_AddNumberToObject (info, "stream_seq", 0);
    cJSON_AddStringToObject (info, "pattern", pattern);
    cJSON_AddNumberToObject (info, "credit", opts.credit);
    cJSON_AddStringToObject (info, "ack", opts.ack_explicit ? "explicit" : "none");
    cJSON_AddStringToObject (info, "overflow", policy_name (channel->policy));
    cJSON_AddNumberToObject (info, "queue_limit", channel->queue_limit);
    cJSON_AddNumberToObject (info, "queue_bytes", (double) channel->queue_bytes_limit);
    if (opts.has_group) {
        cJSON_AddStringToObject (info, "group", opts.group);
        cJSON_AddNumberToObject (info, "members", (double) channel->members.size);
    }
    broker_send_json (self, session, &ok, info);
    cJSON_Delete (info);
    log_debug ("client %s subscribed %u to '%s'%s%s", session->name, h->sub_id, pattern,
               opts.has_group ? " in group " : "", opts.has_group ? opts.group : "");
    channel_mark_dirty (channel);
}

static void
s_handle_unsub (broker_t *self, session_t *session, const busp_header_t *h)
{
    sub_t *sub = session_sub (session, h->sub_id);
    if (!sub) {
        char reason [64];
        snprintf (reason, sizeof reason, "unknown subscription %u", h->sub_id);
        broker_send_error (self, session, NULL, BUSP_E_NOT_FOUND, reason);
        return;
    }
    zhashx_delete (session->subs, (void *) ((uintptr_t) h->sub_id + 1));
    //  Nothing is dropped silently, not even on the way out.
    channel_t *channel = sub->channel;
    if (channel->members.size == 1 && channel->pending_gap) {
        sub_send_gap (sub, channel->pending_gap);
        channel->pending_gap = 0;
    }
    channel_remove_member (channel, sub);
    s_subend (self, session, h->sub_id, BUSP_OK, "unsubscribed");
    sub_free (&sub);
}

static void
s_handle_credit (broker_t *self, session_t *session, const busp_header_t *h)
{
    sub_t *sub = session_sub (session, h->sub_id);
    if (!sub) {
        char reason [64];
        snprintf (reason, sizeof reason, "unknown subscription %u", h->sub_id);
        broker_send_error (self, session, NULL, BUSP_E_NOT_FOUND, reason);
        return;
    }
    //  Saturate: credit is a u32 on the wire and a client adding to a huge
    //  window must not wrap it.
    sub->credit += h->credit;
    if (sub->credit > UINT32_MAX)
        sub->credit = UINT32_MAX;
    channel_mark_dirty (sub->channel);
}

static void
s_handle_ack (broker_t *self, session_t *session, const busp_header_t *h,
              zmq_msg_t *frames, int nframes)
{
    sub_t *sub = session_sub (session, h->sub_id);
    char reason [96];
    if (!sub) {
        snprintf (reason, sizeof reason, "unknown subscription %u", h->sub_id);
        broker_send_error (self, session, NULL, BUSP_E_NOT_FOUND, reason);
        return;
    }
    int rc;
    if (h->command == BUSP_ACK) {
        rc = sub_ack (sub, h->delivery_id);
        if (rc == 0)
            self->stats.acks++;
    }
    else {
        char why [256] = "";
        if (nframes > 2 && zmq_msg_size (&frames [2]) > 0) {
            cJSON *body = cJSON_ParseWithLength (zmq_msg_data (&frames [2]), zmq_msg_size (&frames [2]));
            cJSON *r = cJSON_GetObjectItemCaseSensitive (body, "reason");
            if (cJSON_IsString (r))
                snprintf (why, sizeof why, "%s", r->valuestring);
            cJSON_Delete (body);
        }
        if (h->action > BUSP_NACK_DEADLETTER) {
            snprintf (reason, sizeof reason, "unknown NACK action %u", h->action);
            self->stats.protocol_errors++;
            broker_send_error (self, session, NULL, BUSP_E_MALFORMED, reason);
            return;
        }
        rc = sub_nack (sub, h->delivery_id, h->action, h->delay_ms, why [0] ? why : NULL);
        if (rc == 0)
            self->stats.nacks++;
    }
    if (rc) {
        snprintf (reason, sizeof reason, "unknown delivery %llu on subscription %u",
                  (unsigned long long) h->delivery_id, h->sub_id);
        broker_send_error (self, session, NULL, BUSP_E_NOT_FOUND, reason);
        return;
    }
    channel_mark_dirty (sub->channel);
}

static void
s_handle (broker_t *self, zmq_msg_t *frames, int nframes, bool too_many)
{
    size_t rid_size = zmq_msg_size (&frames [0]);
    if (rid_size == 0 || rid_size > 255)
        return;
    uint8_t rid [256];
    rid [0] = (uint8_t) rid_size;
    memcpy (rid + 1, zmq_msg_data (&frames [0]), rid_size);

    session_t *session = self->last_session;
    if (!session || session->dead || session->rid [0] != rid [0]
    ||  memcmp (session->rid + 1, rid + 1, rid_size) != 0) {
        session = zhashx_lookup (self->sessions, rid);
        if (session)
            self->last_session = session;
    }
    if (session)
        session->last_seen_ms = self->now_ms;

    if (nframes < 2) {
        self->stats.protocol_errors++;
        broker_send_error (self, session, rid, BUSP_E_MALFORMED, "empty message: no header frame");
        return;
    }
    busp_header_t h;
    const char *why = NULL;
    if (busp_decode (zmq_msg_data (&frames [1]), zmq_msg_size (&frames [1]), &h, &why)) {
        char reason [160];
        snprintf (reason, sizeof reason, "malformed header: %s", why ? why : "unparseable");
        self->stats.protocol_errors++;
        broker_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
        return;
    }
    int min_frames, max_frames;
    busp_frame_limits (h.command, &min_frames, &max_frames);
    if (too_many || nframes - 1 > max_frames) {
        char reason [96];
        snprintf (reason, sizeof reason, "too many frames for %s (at most %d)",
                  busp_command_name (h.command), max_frames);
        self->stats.protocol_errors++;
        broker_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
        return;
    }
    switch (h.command) {
        case BUSP_HELLO:
        case BUSP_PUB: case BUSP_SUB: case BUSP_UNSUB: case BUSP_CREDIT:
        case BUSP_ACK: case BUSP_NACK: case BUSP_PING: case BUSP_PONG:
        case BUSP_BYE: case BUSP_CTL:
            break;
        default: {
            char reason [96];
            snprintf (reason, sizeof reason, "%s is not a client command",
                      busp_command_name (h.command));
            self->stats.protocol_errors++;
            broker_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
            return;
        }
    }
    if (h.command == BUSP_HELLO) {
        s_handle_hello (self, session, rid, &h, frames, nframes);
        return;
    }
    if (!session) {
        broker_send_error (self, NULL, rid, BUSP_E_NO_SESSION, "no session: send HELLO first");
        return;
    }
    switch (h.command) {
        case BUSP_PUB:
            s_handle_pub (self, session, &h, frames, nframes);
            break;
        case BUSP_SUB:
            s_handle_sub (self, session, &h, frames, nframes);
            break;
        case BUSP_UNSUB:
            s_handle_unsub (self, session, &h);
            break;
        case BUSP_CREDIT:
            s_handle_credit (self, session, &h);
            break;
        case BUSP_ACK:
        case BUSP_NACK:
            s_handle_ack (self, session, &h, frames, nframes);
            break;
        case BUSP_PING: {
            busp_header_t pong = { .command = BUSP_PONG, .nonce = h.nonce };
            broker_send (self, session, &pong, NULL, NULL);
            break;
        }
        case BUSP_PONG:
            session->ping_sent_ms = 0;
            break;
        case BUSP_BYE:
            log_info ("client '%s' (%s) said BYE", session->name, session->id_hex);
            session_end (session, "BYE");
            break;
        case BUSP_CTL:
            ctl_handle (self, session, h.request_id,
                        nframes > 2 ? zmq_msg_data (&frames [2]) : NULL,
                        nframes > 2 ? zmq_msg_size (&frames [2]) : 0);
            break;
    }
}

/*  Work owed at the end of a batch: cumulative PUBACKs, queue pumps, and
    freeing what ended while pointers to it could still be live.            */
static void
s_end_batch (broker_t *self)
{
    for (size_t i = 0; i < self->gone_sessions.size; i++)
        session_end (self->gone_sessions.items [i], "peer gone");
    self->gone_sessions.size = 0;
    for (size_t i = 0; i < self->dirty_sessions.size; i++) {
        session_t *session = self->dirty_sessions.items [i];
        session->pub_dirty = false;
        if (!session->dead)
            session_puback (session);
    }
    self->dirty_sessions.size = 0;
    //  Pumping can mark more channels dirty (a member ending): loop by index.
    for (size_t i = 0; i < self->dirty_channels.size; i++) {
        channel_t *channel = self->dirty_channels.items [i];
        channel->dirty = false;
        if (!channel->dead)
            channel_pump (channel);
    }
    self->dirty_channels.size = 0;
    for (size_t i = 0; i < self->dead_channels.size; i++) {
        channel_t *channel = self->dead_channels.items [i];
        channel_free (&channel);
    }
    self->dead_channels.size = 0;
    for (size_t i = 0; i < self->dead_sessions.size; i++) {
        session_t *session = self->dead_sessions.items [i];
        if (self->last_session == session)
            self->last_session = NULL;
        session_free (&session);
    }
    self->dead_sessions.size = 0;
}

void
broker_clock (broker_t *self)
{
    self->now_ms = busp_mono_ms ();
    self->now_wall_us = busp_wall_us ();
}

static int
s_on_router (zloop_t *loop, zsock_t *sock, void *arg)
{
    broker_t *self = arg;
    broker_clock (self);
    zmq_msg_t frames [MAX_FRAMES];
    for (int n = 0; n < BATCH_MAX; n++) {
        zmq_msg_init (&frames [0]);
        if (zmq_msg_recv (&frames [0], self->router, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frames [0]);
            if (errno != EAGAIN && errno != EINTR)
                log_error ("receive failed: %s", zmq_strerror (errno));
            break;
        }
        int nframes = 1;
        bool too_many = false;
        bool more = zmq_msg_more (&frames [0]);
        while (more) {
            if (nframes < MAX_FRAMES) {
                zmq_msg_init (&frames [nframes]);
                zmq_msg_recv (&frames [nframes], self->router, 0);
                more = zmq_msg_more (&frames [nframes]);
                nframes++;
            }
            else {
                zmq_msg_t excess;
                zmq_msg_init (&excess);
                zmq_msg_recv (&excess, self->router, 0);
                more = zmq_msg_more (&excess);
                zmq_msg_close (&excess);
                too_many = true;
            }
        }
        s_handle (self, frames, nframes, too_many);
        for (int i = 0; i < nframes; i++)
            zmq_msg_close (&frames [i]);
        self->stats.messages_in++;
    }
    self->stats.batches++;
    s_end_batch (self);
    return 0;
}

/*  ------------------------------------------------------------------
    Timers                                                                  */

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    broker_t *self = arg;
    //  Signals normally break zmq_poll with EINTR; this catches the rest
    //  (a flag set by CTL reload, a signal that landed between polls).
    if (self->stop_flag && (*self->stop_flag || *self->reload_flag) && !self->draining)
        return -1;
    broker_clock (self);
    int64_t now = self->now_ms;
    for (size_t i = 0; i < self->all_channels.size; i++) {
        channel_t *channel = self->all_channels.items [i];
        if (!channel->dead)
            channel_tick (channel, now);
    }
    dedup_expire (self->dedup, now);
    s_end_batch (self);
    return 0;
}

/*  The broker's own statistics as an event on $sys.stats, so dashboards
    can subscribe instead of polling CTL.                                    */
static void
s_publish_sys_stats (broker_t *self)
{
    cJSON *stats = ctl_stats (self);
    char *text = cJSON_PrintUnformatted (stats);
    cJSON_Delete (stats);
    if (!text)
        return;
    zmq_msg_t payload;
    zmq_msg_init_size (&payload, strlen (text));
    memcpy (zmq_msg_data (&payload), text, strlen (text));
    free (text);
    event_t *ev = event_new ("$sys.stats", 10, "", 0, &payload, NULL, self->now_wall_us);
    zmq_msg_close (&payload);
    if (!ev)
        return;
    broker_route (self, ev, NULL);
    event_unref (&ev);
}

static int
s_on_session_scan (zloop_t *loop, int timer_id, void *arg)
{
    broker_t *self = arg;
    broker_clock (self);
    int64_t now = self->now_ms;
    ptrvec_t expired = { 0 };
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        int64_t silent = now - session->last_seen_ms;
        if (silent >= self->config->session_timeout_ms)
            ptrvec_add (&expired, session);
        else
        if (silent >= self->config->heartbeat_ms
        &&  (session->ping_sent_ms == 0 || now - session->ping_sent_ms >= self->config->heartbeat_ms)) {
            busp_header_t ping = { .command = BUSP_PING, .nonce = ++self->nonce };
            session->ping_sent_ms = now;
            broker_send (self, session, &ping, NULL, NULL);
        }
        session = zhashx_next (self->sessions);
    }
    for (size_t i = 0; i < expired.size; i++) {
        session = expired.items [i];
        if (session->dead)
            continue;
        log_info ("client '%s' (%s) expired after %lld ms of silence", session->name,
                  session->id_hex, (long long) (now - session->last_seen_ms));
        self->stats.sessions_expired++;
        session_end (session, "expired");
    }
    ptrvec_free (&expired);
    if (self->metrics && now - self->last_metrics_ms >= 1000) {
        metrics_update (self->metrics, self);
        self->last_metrics_ms = now;
    }
    if (self->config->stats_interval_ms > 0
    &&  now - self->last_sys_stats_ms >= self->config->stats_interval_ms) {
        s_publish_sys_stats (self);
        self->last_sys_stats_ms = now;
    }
    s_end_batch (self);
    return 0;
}

int
broker_apply_config (broker_t *self, config_t *config)
{
    self->config = config;
    dedup_configure (self->dedup, config->dedup_window_ms, (size_t) config->dedup_max);
    dlq_configure (self->dlq, (size_t) config->dlq_max_count, (size_t) config->dlq_max_bytes);
    return 0;
}

/*  Stop: refuse new PUBs, deliver what subscribers have credit for until
    the queues are empty (or nobody has credit) or the deadline passes.     */
static void
s_drain (broker_t *self)
{
    self->draining = true;
    metrics_set_draining (self->metrics);
    int64_t deadline = busp_mono_ms () + self->config->drain_timeout_ms;
    while (busp_mono_ms () < deadline) {
        uint64_t waiting = 0;
        for (size_t i = 0; i < self->all_channels.size; i++) {
            channel_t *channel = self->all_channels.items [i];
            if (!channel->dead && channel_has_ready_member (channel))
                waiting += channel_waiting (channel);
        }
        //  plugins.c hook: plugin threads finish while we still read.
        bool plugins_busy = self->plugin_drain && self->plugin_drain (self->plugin_metrics_arg);
        if (waiting == 0 && !plugins_busy)
            break;
        //  Let clients send CREDIT and ACKs while we drain.
        zmq_pollitem_t item = { self->router, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 20) > 0)
            s_on_router (self->loop, self->router_sock, self);
        s_on_tick (self->loop, 0, self);
    }
    uint64_t left = 0;
    for (size_t i = 0; i < self->all_channels.size; i++) {
        channel_t *channel = self->all_channels.items [i];
        if (!channel->dead)
            left += channel_waiting (channel);
    }
    if (left)
        log_notice ("stopping with %llu queued events undelivered (no subscriber credit)",
                    (unsigned long long) left);
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        broker_send_error (self, session, NULL, BUSP_E_SHUTDOWN, "broker is shutting down");
        session = zhashx_next (self->sessions);
    }
}

int
broker_run (broker_t *self, volatile sig_atomic_t *stop_flag, volatile sig_atomic_t *reload_flag)
{
    self->stop_flag = stop_flag;
    self->reload_flag = reload_flag;
    if (!self->registered) {
        if (zloop_reader (self->loop, self->router_sock, s_on_router, self))
            return -EINVAL;
        zloop_reader_set_tolerant (self->loop, self->router_sock);
        if (zloop_timer (self->loop, TICK_MS, 0, s_on_tick, self) == -1
        ||  zloop_timer (self->loop, SESSION_SCAN_MS, 0, s_on_session_scan, self) == -1)
            return -ENOMEM;
        self->registered = true;
    }
    while (!*stop_flag) {
        zloop_start (self->loop);
        if (*reload_flag && !*stop_flag)
            return 1;           /*  main reloads and calls us again        */
    }
    log_notice ("stopping: draining queues (up to %lld ms)", (long long) self->config->drain_timeout_ms);
    s_drain (self);
    return 0;
}
