/*  commands.c — one handler per client command.

    Each handler validates its message, answers errors with the code
    PROTOCOL §8 gives, and hands accepted work down: PUB to route.c, SUB to
    a new channel or group member, CREDIT/ACK/NACK to the subscription.
    Nothing is sent back up from below: PUBACKs are cumulative and go at
    the end of the batch (work.c).                                          */
#include "broker.h"
#include "topic.h"
#include "dedup.h"
#include "auth.h"
#include "utf8.h"
#include "durable.h"
#include "batch.h"
#include "receipt.h"
#include "headers.h"
#include <errno.h>

/*  Largest PUBB / DELIVERB body (WELCOME info batch_bytes).               */
static size_t
s_batch_bytes (broker_t *self)
{
    return (size_t) wire_batch_bytes (self->config);
}

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

/*  max_sessions and max_sessions_per_identity (0: no limit).              */
static bool
s_over_session_limits (broker_t *self, const char *identity, char *reason, size_t size)
{
    const config_t *c = self->config;
    if (!c->max_sessions && !c->max_sessions_per_identity)
        return false;
    //  Sessions whose connections closed wait only for expiry: not counted.
    //  The table's size bounds the count: a HELLO walks the sessions only
    //  when the table is at the limit (max_sessions is on by default).
    size_t total = 0;
    if (c->max_sessions && zhashx_size (self->sessions) >= (size_t) c->max_sessions)
        for (session_t *s = zhashx_first (self->sessions); s; s = zhashx_next (self->sessions))
            total += !s->dead && !s->disconnected;
    if (c->max_sessions && total >= (size_t) c->max_sessions) {
        snprintf (reason, size, "too many sessions: max_sessions is %lld",
                  (long long) c->max_sessions);
        return true;
    }
    if (c->max_sessions_per_identity) {
        size_t mine = 0;
        for (session_t *s = zhashx_first (self->sessions); s; s = zhashx_next (self->sessions))
            if (!s->dead && !s->disconnected && strcmp (s->identity, identity) == 0)
                mine++;
        if (mine >= (size_t) c->max_sessions_per_identity) {
            char safe [128];
            busp_utf8_sanitize (identity, strlen (identity), safe, sizeof safe, NULL);
            snprintf (reason, size, "too many sessions for identity '%s': max_sessions_per_identity is %lld",
                      safe, (long long) c->max_sessions_per_identity);
            return true;
        }
    }
    return false;
}

/*  Tokens of a topic or pattern.                                           */
static size_t
s_depth (const char *s, size_t len)
{
    size_t depth = 1;
    for (size_t i = 0; i < len; i++)
        depth += s [i] == '.';
    return depth;
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
        wire_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
        return;
    }
    //  PROTOCOL §8: the features the client lists and this broker knows.
    //  A client that lists none (no "features" key) sees WELCOME exactly
    //  as before features existed.
    bool asked = false, want_batch = false, want_errctx = false;
    if (nframes > 2 && zmq_msg_size (&frames [2]) > 0) {
        cJSON *opts = cJSON_ParseWithLength (zmq_msg_data (&frames [2]), zmq_msg_size (&frames [2]));
        const char *bad = NULL;
        if (!cJSON_IsObject (opts))
            bad = "HELLO options must be a JSON object";
        else {
            cJSON *features = cJSON_GetObjectItemCaseSensitive (opts, "features");
            if (features && !cJSON_IsArray (features))
                bad = "HELLO option 'features' must be an array of strings";
            else
            if (features) {
                asked = true;
                const cJSON *item;
                cJSON_ArrayForEach (item, features) {
                    if (!cJSON_IsString (item)) {
                        bad = "HELLO option 'features' must be an array of strings";
                        break;
                    }
                    if (strcmp (item->valuestring, "batch") == 0)
                        want_batch = true;
                    else
                    if (strcmp (item->valuestring, "error-context") == 0)
                        want_errctx = true;
                }
            }
        }
        cJSON_Delete (opts);
        if (bad) {
            self->stats.protocol_errors++;
            wire_send_error (self, session, rid, BUSP_E_MALFORMED, bad);
            return;
        }
    }
    if (self->draining) {
        wire_send_error (self, session, rid, BUSP_E_SHUTDOWN, "broker is shutting down");
        return;
    }
    if (session) {
        //  The old session's PUBs in this batch are still owed their
        //  PUBACK; the client reads everything before WELCOME as old.
        if (session->pub_dirty)
            session_puback (session);
        session_end (session, "new HELLO on a live session");
    }
    auth_conn_t conn;
    auth_conn (&frames [1], &conn);
    char reason [400];
    if (!conn.trusted && s_over_session_limits (self, conn.identity, reason, sizeof reason)) {
        broker_limit_log (self, conn.identity, reason);
        self->stats.over_limit++;
        wire_send_error (self, NULL, rid, BUSP_E_LIMIT, reason);
        return;
    }
    session = session_new (self, rid + 1, rid [0], h->name.data, h->name.len);
    if (!session) {
        wire_send_error (self, NULL, rid, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    snprintf (session->user_id, sizeof session->user_id, "%s", conn.user_id);
    busp_utf8_sanitize (conn.identity, strlen (conn.identity), session->identity,
                        sizeof session->identity, NULL);
    session->trusted = conn.trusted;
    session->fd = zmq_msg_get (&frames [1], ZMQ_SRCFD);
    session->ctl_tokens = (double) self->config->ctl_rate;
    session->ctl_refill_ms = self->now_ms;
    session->credit = (uint64_t) self->config->pub_credit;
    session->feat_batch = want_batch;
    session->feat_errctx = want_errctx;
    busp_header_t w = {
        .command = BUSP_WELCOME, .version = BUSP_VERSION,
        .name = busp_str (self->broker_id),
        .credit = (uint32_t) self->config->pub_credit,
        .max_payload = (uint32_t) self->config->max_payload
    };
    cJSON *info = s_welcome_info (self);
    if (asked) {
        cJSON *features = cJSON_AddArrayToObject (info, "features");
        if (want_batch)
            cJSON_AddItemToArray (features, cJSON_CreateString ("batch"));
        if (want_errctx)
            cJSON_AddItemToArray (features, cJSON_CreateString ("error-context"));
        cJSON_AddNumberToObject (info, "batch_max", BUSP_BATCH_MAX);
        cJSON_AddNumberToObject (info, "batch_bytes", (double) s_batch_bytes (self));
    }
    wire_send_json (self, session, &w, info);
    cJSON_Delete (info);
    //  For busd-ctl clients: where from (TCP only; ipc/inproc have none) and when.
    const char *peer = zmq_msg_gets (&frames [1], "Peer-Address");
    snprintf (session->peer, sizeof session->peer, "%s", peer ? peer : "");
    session->connected_us = self->now_wall_us;
    log_info ("client '%s' (%s) connected%s%s", session->name, session->id_hex,
              session->peer [0] ? " from " : "", session->peer);
}

static void
s_reject (broker_t *self, session_t *session, uint64_t seq, uint16_t code, const char *reason)
{
    busp_header_t r = { .command = BUSP_REJECT, .seq = seq, .code = code, .name = busp_str (reason) };
    self->stats.rejected++;
    session->rejected++;
    wire_send (self, session, &r, NULL, NULL);
    log_debug ("rejected PUB %llu from %s: %u %s", (unsigned long long) seq, session->name, code, reason);
}

/*  The part of PUB handling that is per event, shared by PUB and every
    record of a PUBB: credit, validation, dedup, routing.  payload_msg /
    headers_msg are the frames of a PUB (moved into the event); a PUBB
    record passes NULL and its bytes are copied into fresh messages only
    once the record is accepted.                                            */
static void
s_publish (broker_t *self, session_t *session, uint64_t seq, busp_str_t topic, busp_str_t msg_id,
           const void *payload, size_t size, zmq_msg_t *payload_msg,
           const void *headers, size_t hsize, zmq_msg_t *headers_msg)
{
    session->last_pub_seq = seq;
    if (!session->pub_dirty) {
        session->pub_dirty = true;
        ptrvec_push (&self->dirty_sessions, session);
    }
    if (session->credit == 0) {
        s_reject (self, session, seq, BUSP_E_LIMIT, "no publisher credit");
        return;
    }
    session->credit--;
    session->credit_owed++;
    if (self->draining) {
        s_reject (self, session, seq, BUSP_E_SHUTDOWN, "broker is shutting down");
        return;
    }
    if (topic.len == 0 || topic.len != session->good_topic_len
    ||  memcmp (topic.data, session->good_topic, topic.len) != 0) {
        const char *why = NULL;
        if (busp_topic_check (topic.data, topic.len, &why)) {
            char reason [160];
            snprintf (reason, sizeof reason, "invalid topic: %s", why);
            s_reject (self, session, seq, BUSP_E_MALFORMED, reason);
            return;
        }
        if (busp_topic_is_system (topic.data, topic.len)) {
            s_reject (self, session, seq, BUSP_E_FORBIDDEN,
                      "topics starting with '$' are reserved for the broker");
            return;
        }
        memcpy (session->good_topic, topic.data, topic.len);
        session->good_topic_len = topic.len;
    }
    if (self->config->max_topic_depth
    &&  s_depth (topic.data, topic.len) > (size_t) self->config->max_topic_depth) {
        char reason [96];
        snprintf (reason, sizeof reason, "topic deeper than max_topic_depth %lld",
                  (long long) self->config->max_topic_depth);
        broker_limit_log (self, session->name, reason);
        self->stats.over_limit++;
        s_reject (self, session, seq, BUSP_E_LIMIT, reason);
        return;
    }
    //  After the topic cache: a reload may change what the ACL allows.
    {
        char denied [512];
        if (!auth_may_publish (self, session, topic.data, topic.len, denied, sizeof denied)) {
            s_reject (self, session, seq, BUSP_E_FORBIDDEN, denied);
            return;
        }
    }
    if (size > (uint64_t) self->config->max_payload) {
        char reason [128];
        snprintf (reason, sizeof reason, "payload of %zu bytes exceeds max_payload %lld",
                  size, (long long) self->config->max_payload);
        s_reject (self, session, seq, BUSP_E_TOO_LARGE, reason);
        return;
    }
    if (hsize) {
        if (hsize > (uint64_t) self->config->max_headers) {
            char reason [128];
            snprintf (reason, sizeof reason, "headers of %zu bytes exceed max_headers %lld",
                      hsize, (long long) self->config->max_headers);
            s_reject (self, session, seq, BUSP_E_TOO_LARGE, reason);
            return;
        }
        const char *bad = NULL;
        if (busp_headers_check (headers, hsize, &bad)) {
            s_reject (self, session, seq, BUSP_E_MALFORMED, bad);
            return;
        }
    }
    if (msg_id.len && dedup_seen (self->dedup, topic.data, topic.len, msg_id.data, msg_id.len, self->now_ms)) {
        self->stats.duplicates++;
        if (self->durable && durable_hold_duplicate (self, session, seq, topic.data, topic.len,
                                                     msg_id.data, msg_id.len) < 0)
            s_reject (self, session, seq, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    //  A PUB's frames are moved into the event; a PUBB record's bytes are
    //  copied (into the event's own block when small).
    event_t *ev = payload_msg
        ? event_new (topic.data, topic.len, msg_id.data, msg_id.len,
                     payload_msg, hsize ? headers_msg : NULL, self->now_wall_us)
        : event_new_copy (topic.data, topic.len, msg_id.data, msg_id.len,
                          payload, size, headers, hsize, self->now_wall_us);
    if (!ev) {
        s_reject (self, session, seq, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    //  Durable hook (PUB and every PUBB record): an event a stream covers
    //  is appended now and routed after the end-of-batch commit
    //  (durable.c), which also decides between PUBACK and REJECT.
    int held = self->durable ? durable_hold (self, session, seq, ev) : 0;
    if (held > 1) {
        event_unref (&ev);
        s_reject (self, session, seq, (uint16_t) held, durable_reason (self));
        return;
    }
    self->stats.accepted++;
    self->stats.events_in_bytes += size;
    session->accepted++;
    if (msg_id.len)
        dedup_add (self->dedup, topic.data, topic.len, msg_id.data, msg_id.len, self->now_ms);
    if (!held && route_event (self, ev, session) == 0)
        self->stats.unrouted++;
    event_unref (&ev);
}

static bool
s_check_seq (broker_t *self, session_t *session, uint64_t seq)
{
    if (seq == session->last_pub_seq + 1)
        return true;
    char reason [128];
    snprintf (reason, sizeof reason, "pub_seq %llu out of order: expected %llu",
              (unsigned long long) seq, (unsigned long long) session->last_pub_seq + 1);
    self->stats.protocol_errors++;
    wire_send_error (self, session, NULL, BUSP_E_MALFORMED, reason);
    return false;
}

static void
s_handle_pub (broker_t *self, session_t *session, const busp_header_t *h,
              zmq_msg_t *frames, int nframes)
{
    if (!s_check_seq (self, session, h->seq))
        return;
    zmq_msg_t *payload = nframes > 2 ? &frames [2] : NULL;
    zmq_msg_t *headers = nframes > 3 && zmq_msg_size (&frames [3]) > 0 ? &frames [3] : NULL;
    s_publish (self, session, h->seq, h->topic, h->msg_id,
               payload ? zmq_msg_data (payload) : NULL, payload ? zmq_msg_size (payload) : 0,
               payload, headers ? zmq_msg_data (headers) : NULL,
               headers ? zmq_msg_size (headers) : 0, headers);
}

/*  A batch command from a session that did not negotiate the feature, or
    whose body breaks a whole-batch rule (why): ERROR 400 and no effect.   */
static bool
s_batch_ok (broker_t *self, session_t *session, const busp_header_t *h, const char *why)
{
    if (!session->feat_batch)
        why = "the batch feature was not negotiated in HELLO";
    if (!why)
        return true;
    char reason [160];
    snprintf (reason, sizeof reason, "malformed %s: %s", busp_command_name (h->command), why);
    self->stats.protocol_errors++;
    wire_send_error (self, session, NULL, BUSP_E_MALFORMED, reason);
    return false;
}

/*  PUBB: validated whole first (nothing happens to a malformed one), then
    each record is a PUB with pub_seq first_pub_seq + i, read in place.    */
static void
s_handle_pubb (broker_t *self, session_t *session, const busp_header_t *h,
               zmq_msg_t *frames, int nframes)
{
    //  The records of the PUBB being handled: read once, during the
    //  whole-batch check.  One broker thread, one PUBB at a time.
    static busp_pub_rec_t s_recs [BUSP_BATCH_MAX];
    const char *why = NULL;
    if (session->feat_batch)
        busp_pubb_parse (nframes > 2 ? zmq_msg_data (&frames [2]) : NULL,
                         nframes > 2 ? zmq_msg_size (&frames [2]) : 0, h->count,
                         BUSP_BATCH_MAX, s_batch_bytes (self), s_recs, &why);
    if (!s_batch_ok (self, session, h, why) || !s_check_seq (self, session, h->seq))
        return;
    self->stats.pubb_in++;
    for (uint16_t i = 0; i < h->count && !session->dead; i++) {
        const busp_pub_rec_t *rec = &s_recs [i];
        s_publish (self, session, h->seq + i, rec->topic, rec->msg_id, rec->payload,
                   rec->payload_size, NULL, rec->headers, rec->headers_size, NULL);
    }
}


static void
s_handle_sub (broker_t *self, session_t *session, const busp_header_t *h,
              zmq_msg_t *frames, int nframes)
{
    if (session_sub (session, h->sub_id)) {
        char reason [64];
        snprintf (reason, sizeof reason, "sub_id %u is already in use", h->sub_id);
        wire_send_error (self, session, NULL, BUSP_E_CONFLICT, reason);
        return;
    }
    const char *why = NULL;
    char pattern [256];
    busp_str_copy (h->topic, pattern);
    if (busp_pattern_check (h->topic.data, h->topic.len, &why)) {
        char reason [200];
        snprintf (reason, sizeof reason, "invalid pattern: %s", why);
        wire_send_subend (self, session, h->sub_id, BUSP_E_MALFORMED, reason);
        return;
    }
    subopts_t opts;
    char err [200];
    const void *body = nframes > 2 ? zmq_msg_data (&frames [2]) : NULL;
    size_t size = nframes > 2 ? zmq_msg_size (&frames [2]) : 0;
    if (subopts_parse (&opts, self->config, body, size, err, sizeof err)) {
        wire_send_subend (self, session, h->sub_id, BUSP_E_MALFORMED, err);
        return;
    }
    //  Group and durable names are shown to others (CTL, dead letters).
    if (opts.has_group && !busp_utf8_valid (opts.group, strlen (opts.group))) {
        char clean [sizeof opts.group];
        busp_utf8_sanitize (opts.group, strlen (opts.group), clean, sizeof clean, NULL);
        memcpy (opts.group, clean, sizeof clean);
    }
    if (self->config->max_topic_depth
    &&  s_depth (pattern, h->topic.len) > (size_t) self->config->max_topic_depth) {
        snprintf (err, sizeof err, "pattern deeper than max_topic_depth %lld",
                  (long long) self->config->max_topic_depth);
        broker_limit_log (self, session->name, err);
        self->stats.over_limit++;
        wire_send_subend (self, session, h->sub_id, BUSP_E_LIMIT, err);
        return;
    }
    if (self->config->max_subs_per_session && !session->trusted
    &&  zhashx_size (session->subs) >= (size_t) self->config->max_subs_per_session) {
        snprintf (err, sizeof err, "too many subscriptions: max_subs_per_session is %lld",
                  (long long) self->config->max_subs_per_session);
        broker_limit_log (self, session->name, err);
        self->stats.over_limit++;
        wire_send_subend (self, session, h->sub_id, BUSP_E_LIMIT, err);
        return;
    }
    if (self->config->max_subscriptions && !session->trusted
    &&  self->live_subs >= (uint64_t) self->config->max_subscriptions) {
        snprintf (err, sizeof err, "too many subscriptions in the broker: max_subscriptions "
                  "is %lld", (long long) self->config->max_subscriptions);
        broker_limit_log (self, session->name, err);
        self->stats.over_limit++;
        wire_send_subend (self, session, h->sub_id, BUSP_E_LIMIT, err);
        return;
    }
    {
        char denied [512];
        if (!auth_may_subscribe (self, session, pattern, opts.has_group ? opts.group : NULL,
                                 denied, sizeof denied)) {
            wire_send_subend (self, session, h->sub_id, BUSP_E_FORBIDDEN, denied);
            return;
        }
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
            wire_send_subend (self, session, h->sub_id, BUSP_E_CONFLICT, reason);
            return;
        }
    }
    if (opts.has_durable) {
        durable_subscribe (self, session, h->sub_id, pattern, &opts, body, size);
        return;
    }
    sub_t *sub = sub_new (session, h->sub_id, pattern);
    if (!sub) {
        wire_send_subend (self, session, h->sub_id, BUSP_E_INTERNAL, "out of memory");
        return;
    }
    sub->credit = opts.credit < (uint64_t) self->config->max_credit
                ? opts.credit : (uint64_t) self->config->max_credit;
    sub->ack_explicit = opts.ack_explicit;
    sub->ack_wait_ms = opts.ack_wait_ms;
    sub->max_deliver = opts.max_deliver;
    if (!channel) {
        channel = channel_new (self, pattern, opts.has_group ? opts.group : NULL, opts.policy,
                               opts.queue_limit, opts.queue_bytes);
        if (!channel || trie_insert (self->trie, pattern, strlen (pattern), channel)) {
            channel_free (&channel);
            sub_free (&sub);
            wire_send_subend (self, session, h->sub_id, BUSP_E_INTERNAL, "out of memory");
            return;
        }
        if (opts.has_group) {
            channel->key = strdup (key);
            zhashx_insert (self->groups, key, channel);
        }
        channel_register (channel);
    }
    zhashx_insert (session->subs, (void *) ((uintptr_t) h->sub_id + 1), sub);
    channel_add_member (channel, sub);
    //  A group dead-letters its leftovers when any member asked for it.
    if (opts.on_end_dead_letter)
        channel->on_end_dead_letter = true;

    busp_header_t ok = { .command = BUSP_SUBOK, .sub_id = h->sub_id };
    cJSON *info = cJSON_CreateObject ();
    //  Where a stream covers the pattern, its next event is the first this
    //  subscription sees (stream_seq in DELIVER); else 0.
    cJSON_AddNumberToObject (info, "stream_seq", (double) durable_next_seq (self, pattern));
    cJSON_AddStringToObject (info, "pattern", pattern);
    cJSON_AddNumberToObject (info, "credit", (double) sub->credit);
    cJSON_AddStringToObject (info, "ack", opts.ack_explicit ? "explicit" : "none");
    cJSON_AddStringToObject (info, "overflow", policy_name (channel->policy));
    cJSON_AddNumberToObject (info, "queue_limit", channel->queue_limit);
    cJSON_AddNumberToObject (info, "queue_bytes", (double) channel->queue_bytes_limit);
    if (opts.has_group) {
        cJSON_AddStringToObject (info, "group", opts.group);
        cJSON_AddNumberToObject (info, "members", (double) channel->members.size);
    }
    wire_send_json (self, session, &ok, info);
    cJSON_Delete (info);
    log_debug ("client %s subscribed %u to '%s'%s%s", session->name, h->sub_id, pattern,
               opts.has_group ? " in group " : "", opts.has_group ? opts.group : "");
    channel_mark_dirty (channel);
}

/*  The session's subscription h->sub_id, or NULL after answering 404.      */
static sub_t *
s_sub_or_404 (broker_t *self, session_t *session, const busp_header_t *h)
{
    sub_t *sub = session_sub (session, h->sub_id);
    if (!sub) {
        char reason [64];
        snprintf (reason, sizeof reason, "unknown subscription %u", h->sub_id);
        wire_send_error (self, session, NULL, BUSP_E_NOT_FOUND, reason);
    }
    return sub;
}

static void
s_handle_unsub (broker_t *self, session_t *session, const busp_header_t *h)
{
    sub_t *sub = s_sub_or_404 (self, session, h);
    if (!sub)
        return;
    zhashx_delete (session->subs, (void *) ((uintptr_t) h->sub_id + 1));
    //  Nothing is dropped silently, not even on the way out.
    channel_t *channel = sub->channel;
    if (channel->members.size == 1 && channel->pending_gap) {
        sub_send_gap (sub, channel->pending_gap);
        channel->pending_gap = 0;
    }
    channel_remove_member (channel, sub);
    wire_send_subend (self, session, h->sub_id, BUSP_OK, "unsubscribed");
    sub_free (&sub);
}

static void
s_handle_credit (broker_t *self, session_t *session, const busp_header_t *h)
{
    sub_t *sub = s_sub_or_404 (self, session, h);
    if (!sub)
        return;
    sub_add_credit (sub, h->credit, (uint64_t) self->config->max_credit);
    channel_mark_dirty (sub->channel);
}

static void
s_handle_ack (broker_t *self, session_t *session, const busp_header_t *h,
              zmq_msg_t *frames, int nframes)
{
    sub_t *sub = s_sub_or_404 (self, session, h);
    if (!sub)
        return;
    char reason [96];
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
            //  The reason becomes the dead letter's x-reason: valid UTF-8,
            //  shortened on a character boundary.
            if (cJSON_IsString (r))
                busp_utf8_sanitize (r->valuestring, strlen (r->valuestring), why, sizeof why, NULL);
            cJSON_Delete (body);
        }
        if (h->action > BUSP_NACK_DEADLETTER) {
            snprintf (reason, sizeof reason, "unknown NACK action %u", h->action);
            self->stats.protocol_errors++;
            wire_send_error (self, session, NULL, BUSP_E_MALFORMED, reason);
            return;
        }
        rc = sub_nack (sub, h->delivery_id, h->action, h->delay_ms, why [0] ? why : NULL);
        if (rc == 0)
            self->stats.nacks++;
    }
    if (rc) {
        snprintf (reason, sizeof reason, "unknown delivery %llu on subscription %u",
                  (unsigned long long) h->delivery_id, h->sub_id);
        wire_send_error (self, session, NULL, BUSP_E_NOT_FOUND, reason);
        return;
    }
    channel_mark_dirty (sub->channel);
}

/*  ACKB: validated whole, then each record is an ACK; an unknown pair gets
    its own ERROR 404 naming the record.                                    */
static void
s_handle_ackb (broker_t *self, session_t *session, const busp_header_t *h,
               zmq_msg_t *frames, int nframes)
{
    const char *why = NULL;
    if (session->feat_batch)
        busp_batch_check (h->command, nframes > 2 ? zmq_msg_data (&frames [2]) : NULL,
                          nframes > 2 ? zmq_msg_size (&frames [2]) : 0, h->count,
                          BUSP_BATCH_MAX, s_batch_bytes (self), &why);
    if (!s_batch_ok (self, session, h, why))
        return;
    self->stats.ackb_in++;
    busp_batch_iter_t it;
    busp_batch_iter_init (&it, zmq_msg_data (&frames [2]), zmq_msg_size (&frames [2]), h->count);
    busp_ack_rec_t rec;
    sub_t *sub = NULL;
    while (busp_ackb_next (&it, &rec, NULL) > 0) {
        if (!sub || sub->sub_id != rec.sub_id)
            sub = session_sub (session, rec.sub_id);
        if (sub && sub_ack (sub, rec.delivery_id) == 0) {
            self->stats.acks++;
            channel_mark_dirty (sub->channel);
            continue;
        }
        char reason [96], ctx [BUSP_ERRCTX_MAX];
        if (sub)
            snprintf (reason, sizeof reason, "unknown delivery %llu on subscription %u",
                      (unsigned long long) rec.delivery_id, rec.sub_id);
        else
            snprintf (reason, sizeof reason, "unknown subscription %u", rec.sub_id);
        snprintf (ctx, sizeof ctx, "{\"cmd\":\"ACKB\",\"sub_id\":%u,\"delivery_id\":%llu}",
                  rec.sub_id, (unsigned long long) rec.delivery_id);
        self->errctx = ctx;
        wire_send_error (self, session, NULL, BUSP_E_NOT_FOUND, reason);
        self->errctx = NULL;
        if (session->dead)
            break;
    }
}

static void s_dispatch (broker_t *self, zmq_msg_t *frames, int nframes, bool too_many);

void
commands_handle (broker_t *self, zmq_msg_t *frames, int nframes, bool too_many)
{
    //  The error context (PROTOCOL §8.1) names the message being handled.
    self->cur_header = nframes > 1 ? zmq_msg_data (&frames [1]) : NULL;
    self->cur_header_size = nframes > 1 ? zmq_msg_size (&frames [1]) : 0;
    s_dispatch (self, frames, nframes, too_many);
    self->cur_header = NULL;
    self->cur_header_size = 0;
}

static void
s_dispatch (broker_t *self, zmq_msg_t *frames, int nframes, bool too_many)
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
    if (session && nframes < 2)
        //  Without a header frame there is no metadata to check: answer the
        //  routing id, touch nothing of the session.
        session = NULL;
    if (session) {
        //  PROTOCOL §4: a session belongs to its connection.  Another
        //  connection using its routing id means that connection is gone;
        //  the newcomer reaches nothing of it.  (libzmq attaches metadata
        //  to the frames the peer sent, not to the routing-id frame.)
        const char *user_id = zmq_msg_gets (&frames [1], "User-Id");
        if (strcmp (user_id ? user_id : "", session->user_id) != 0) {
            log_notice ("client '%s' (%s): another connection uses its routing id; session ended",
                        session->name, session->id_hex);
            self->stats.sessions_replaced++;
            session_end (session, "its connection was replaced");
            session = NULL;
        }
        else
            session->last_seen_ms = self->now_ms;
    }

    if (nframes < 2) {
        self->stats.protocol_errors++;
        wire_send_error (self, session, rid, BUSP_E_MALFORMED, "empty message: no header frame");
        return;
    }
    busp_header_t h;
    const char *why = NULL;
    if (busp_decode (zmq_msg_data (&frames [1]), zmq_msg_size (&frames [1]), &h, &why)) {
        char reason [160];
        snprintf (reason, sizeof reason, "malformed header: %s", why ? why : "unparseable");
        self->stats.protocol_errors++;
        wire_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
        return;
    }
    int min_frames, max_frames;
    busp_frame_limits (h.command, &min_frames, &max_frames);
    if (too_many || nframes - 1 > max_frames) {
        char reason [96];
        snprintf (reason, sizeof reason, "too many frames for %s (at most %d)",
                  busp_command_name (h.command), max_frames);
        self->stats.protocol_errors++;
        wire_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
        return;
    }
    switch (h.command) {
        case BUSP_HELLO:
        case BUSP_PUB: case BUSP_SUB: case BUSP_UNSUB: case BUSP_CREDIT:
        case BUSP_ACK: case BUSP_NACK: case BUSP_PING: case BUSP_PONG:
        case BUSP_BYE: case BUSP_CTL: case BUSP_PUBB: case BUSP_ACKB:
            break;
        default: {
            char reason [96];
            snprintf (reason, sizeof reason, "%s is not a client command",
                      busp_command_name (h.command));
            self->stats.protocol_errors++;
            wire_send_error (self, session, rid, BUSP_E_MALFORMED, reason);
            return;
        }
    }
    //  Commands whose answer must not overtake the batch's stream commit
    //  (a PONG after an ACK says the ACK is stored; a HELLO PUBACKs the
    //  old session): commit first.  PUB, PUBB, CREDIT, ACK, ACKB and NACK
    //  batch up.
    if (self->durable && h.command != BUSP_PUB && h.command != BUSP_PUBB
    &&  h.command != BUSP_CREDIT && h.command != BUSP_ACK && h.command != BUSP_ACKB
    &&  h.command != BUSP_NACK && h.command != BUSP_PONG)
        durable_flush (self);
    if (h.command == BUSP_HELLO) {
        s_handle_hello (self, session, rid, &h, frames, nframes);
        return;
    }
    if (!session) {
        wire_send_error (self, NULL, rid, BUSP_E_NO_SESSION, "no session: send HELLO first");
        return;
    }
    switch (h.command) {
        case BUSP_PUB:
            s_handle_pub (self, session, &h, frames, nframes);
            break;
        case BUSP_PUBB:
            s_handle_pubb (self, session, &h, frames, nframes);
            break;
        case BUSP_ACKB:
            s_handle_ackb (self, session, &h, frames, nframes);
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
            wire_send (self, session, &pong, NULL, NULL);
            break;
        }
        case BUSP_PONG:
            session->ping_sent_ms = 0;
            receipt_pong (session, h.nonce);
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

