/*  client.c — libbusd: one BUSP/1 session over one DEALER socket.

    Everything hangs off one loop, s_pump: receive what the socket holds,
    act on it (queue deliveries, count PUBACKs, answer PINGs, notice a lost
    session), run the heartbeat timers, and only then block in zmq_poll.
    Every call that waits (for credit, SUBOK, CTLREPLY, a flush, the next
    delivery) is that loop plus a condition, so no wait can starve another:
    deliveries that arrive while a publisher waits for credit are queued,
    never dropped, and a broker restart noticed during any call is repaired
    by the same code.

    Recovery keeps the application's view stable: sub_ids, patterns and
    options survive a new session (the SUBs are replayed), and publishes not
    yet acknowledged are sent again under fresh pub_seqs from the outbox.
    A session number ("epoch") tags each delivery so that ACKs and credit
    for deliveries of an ended session are never sent to the new one,
    whose delivery_ids restart at 1 and would be mistaken for others.

    The hot paths (busd_publish with credit, busd_receive with a queued
    delivery) make no system call of their own: the socket is drained only
    when the call would otherwise wait, or every PUB_DRAIN_EVERY publishes
    (or PUB_DRAIN_MS) so PUBACKs and PINGs are not left waiting behind a
    busy publisher, nor a slow one left unanswered until its session
    expires.

    Batching (PROTOCOL §8.2, batcher.c): with the broker's "batch" feature
    publishes and acks become records of a pending PUBB / ACKB, sent when
    full, before anything else the client sends or waits for, or by the
    flusher thread as soon as it runs; DELIVERBs are split into messages
    one per record, so the application sees the same API either way.  The
    flusher shares the socket, hence the lock taken by every entry point
    below (the BUSD_EXPORT functions are thin locked wrappers).           */
#include "busd/client.h"
#include "busp.h"
#include "batch.h"
#include "batcher.h"
#include "topic.h"
#include "clock.h"
#include "msg.h"
#include "outbox.h"
#include "security.h"
#include "endpoint.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define DEFAULT_CONNECT_TIMEOUT_MS  5000
#define DEFAULT_SESSION_TIMEOUT_MS  15000
#define DEFAULT_HEARTBEAT_MS        5000
#define DEFAULT_DEDUP_WINDOW_MS     120000
#define DEFAULT_SUB_CREDIT          1000
#define LINGER_MS                   500     /*  long enough for BYE to leave */
#define RECONNECT_IVL_MS            100
#define PUB_DRAIN_EVERY             64
#define PUB_DRAIN_MS                10
#define DRAIN_MAX                   4096    /*  per pump, so timers still run */
#ifndef BURST_US                            /*  (-D for profiling under
                                                valgrind, ~50x slower)      */
#define BURST_US                    20      /*  publishes closer than this
                                                are a burst: they batch     */
#endif
#define INLINE_MAX                  4096    /*  batched payloads kept in the
                                                outbox entry's own block     */

typedef enum {
    ST_HELLO,                   /*  HELLO sent, waiting for WELCOME         */
    ST_READY,                   /*  session live                            */
    ST_AWAY,                    /*  broker said 503; waiting for it to return */
    ST_DEAD                     /*  unrecoverable; every call returns fatal */
} state_t;

typedef enum {
    SUB_PENDING,                /*  SUB sent (or to be sent), no SUBOK yet  */
    SUB_LIVE,
    SUB_ENDING,                 /*  UNSUB sent, waiting for SUBEND          */
    SUB_FAILED                  /*  refused while busd_subscribe waits      */
} sub_state_t;

typedef struct sub_s {
    struct sub_s *next;
    uint32_t id;
    sub_state_t state;
    bool sent;                  /*  SUB sent in the current session         */
    bool auto_credit;
    bool explicit_ack;
    bool failed_by_error;       /*  FAILED by ERROR (409) rather than SUBEND */
    uint32_t window;            /*  the "credit" option                     */
    uint32_t consumed;          /*  credit earned back, not yet sent        */
    uint16_t end_code;
    char *pattern;
    char *options;              /*  NULL: no options frame                  */
    char *info;                 /*  SUBOK info                              */
    char end_reason [256];
} sub_t;

struct busd_client {
    /*  First: the lock every entry point takes, and the pending batches.  */
    batcher_t batcher;
    bool want_batch;            /*  ask for "batch" in HELLO                */
    bool batch;                 /*  "batch" in force for this session       */
    void *ctx;
    bool own_ctx;
    /*  The last topic that passed the grammar check: publishers mostly
        repeat one topic, and a compare is cheaper than the check.           */
    char valid_topic [256];
    size_t valid_topic_len;
    void *sock;
    char *endpoint;
    busd_security_t security;       /*  CURVE / PLAIN (security.c)           */
    char client_name [256];
    bool reconnect;

    state_t state;
    bool recovering;            /*  the outstanding HELLO replaces a session */
    int fatal;
    int64_t hello_ms;
    /*  After ERROR 503: HELLO again this often (ms, growing to
        HELLO_RETRY_MAX_MS) until a broker answers; 0 otherwise.            */
    int64_t hello_retry_ms;
    int64_t heard_ms;
    int64_t ping_ms;
    int64_t drain_ms;           /*  last time the socket was drained       */
    uint64_t ping_nonce;
    uint32_t epoch;
    uint64_t reconnects;

    /*  WELCOME                                                             */
    char broker_id [256];
    char *welcome_info;
    uint32_t pub_window;
    uint32_t max_payload;
    uint32_t max_headers;
    int64_t session_timeout_ms;
    int64_t heartbeat_ms;
    int64_t dedup_window_ms;

    /*  Publishing                                                          */
    outbox_t outbox;
    uint64_t next_seq;
    uint32_t credit;
    uint64_t accepted;
    uint64_t rejected;
    bool rejected_since_flush;
    unsigned pubs_since_drain;
    int64_t last_pub_us;        /*  monotonic time of the last publish      */
    busd_reject_fn *reject_fn;
    void *reject_arg;

    /*  Subscribing                                                         */
    sub_t *subs;
    sub_t *sub_cache;           /*  last looked up: deliveries come in runs */
    sub_t *wait_sub;            /*  the SUB busd_subscribe is waiting on    */
    uint32_t next_sub_id;
    busd_msg_t *fifo_head;
    busd_msg_t *fifo_tail;

    /*  Control                                                             */
    uint32_t next_request_id;
    uint32_t ctl_id;            /*  0: no CTL outstanding                   */
    char *ctl_request;
    bool ctl_done;
    int ctl_code;
    char *ctl_reply;

    uint16_t last_code;
    char last_reason [256];
};

/*  ------------------------------------------------------------------------
    Small helpers                                                           */

static int64_t
s_deadline (int timeout_ms)
{
    return timeout_ms < 0 ? -1 : busp_mono_ms () + timeout_ms;
}

/*  A frame as a NUL-terminated heap string (NULL when out of memory).     */
static char *
s_frame_text (zmq_msg_t *frame)
{
    size_t size = zmq_msg_size (frame);
    char *text = malloc (size + 1);
    if (text) {
        if (size)
            memcpy (text, zmq_msg_data (frame), size);
        text [size] = '\0';
    }
    return text;
}

static void
s_set_error (busd_client_t *self, uint16_t code, const char *reason, size_t len)
{
    self->last_code = code;
    if (len >= sizeof (self->last_reason))
        len = sizeof (self->last_reason) - 1;
    if (len)
        memcpy (self->last_reason, reason, len);
    self->last_reason [len] = '\0';
}

/*  ------------------------------------------------------------------------
    Sending.  SNDHWM is 0 and the socket queues while disconnected, so a
    send only fails on a closed socket or context; ZMQ_DONTWAIT makes sure
    such a failure can never turn into a hang.                              */

static void
s_free_buf (void *data, void *hint)
{
    (void) hint;
    free (data);
}

/*  One batch frame pair: header, then the buffer handed to ZeroMQ.        */
static int
s_send_batch (busd_client_t *self, const uint8_t *header, size_t len, batch_buf_t *b)
{
    if (zmq_send (self->sock, header, len, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
        return -errno;
    size_t size;
    uint8_t *buf = batcher_take (b, &size);
    zmq_msg_t body;
    if (zmq_msg_init_data (&body, buf, size, s_free_buf, NULL)) {
        free (buf);
        return -ENOMEM;
    }
    if (zmq_msg_send (&body, self->sock, ZMQ_DONTWAIT) < 0) {
        int err = errno;
        zmq_msg_close (&body);
        return -err;
    }
    self->batcher.batches_sent++;
    return 0;
}

/*  The batcher's flush (batcher.h): send the pending PUBB and ACKB.  The
    lock is held, by the flusher thread or by the application's.          */
static int
s_flush_pending (void *arg)
{
    busd_client_t *self = arg;
    batcher_t *b = &self->batcher;
    if (!batcher_pending (b))
        return 0;
    if (self->state != ST_READY || !self->sock)
        return 1;               /*  kept: s_session_lost decides their fate */
    if (b->pubs.count) {
        busp_header_t h = { .command = BUSP_PUBB, .seq = b->pubs.first_seq,
                            .count = b->pubs.count };
        uint8_t header [BUSP_HEADER_MAX];
        int len = busp_encode (&h, header, sizeof (header));
        int rc = len < 0 ? len : s_send_batch (self, header, (size_t) len, &b->pubs);
        if (rc)
            return rc;
    }
    if (b->acks.count) {
        busp_header_t h = { .command = BUSP_ACKB, .count = b->acks.count };
        uint8_t header [BUSP_HEADER_MAX];
        int len = busp_encode (&h, header, sizeof (header));
        int rc = len < 0 ? len : s_send_batch (self, header, (size_t) len, &b->acks);
        if (rc)
            return rc;
    }
    return 0;
}

/*  Records were added: they leave now (no flusher) or as soon as the
    flusher runs; a full batch leaves at once.                              */
static int
s_batch_added (busd_client_t *self, int full)
{
    if (full < 0)
        return full;
    if (full || batcher_kick (&self->batcher))
        return s_flush_pending (self) < 0 ? -EIO : 0;
    return 0;
}

static int
s_send_header (busd_client_t *self, const busp_header_t *h, bool more)
{
    /*  Whatever is batched was made first, so it goes first.              */
    if (batcher_pending (&self->batcher)) {
        int rc = s_flush_pending (self);
        if (rc < 0)
            return rc;
    }
    uint8_t buf [BUSP_HEADER_MAX];
    int len = busp_encode (h, buf, sizeof (buf));
    if (len < 0)
        return len;
    if (zmq_send (self->sock, buf, (size_t) len, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0)
        return -errno;
    return 0;
}

/*  A command with an optional JSON body (NULL: no body frame).             */
static int
s_send_command (busd_client_t *self, const busp_header_t *h, const char *body)
{
    int rc = s_send_header (self, h, body != NULL);
    if (rc == 0 && body
    &&  zmq_send (self->sock, body, strlen (body), ZMQ_DONTWAIT) < 0)
        rc = -errno;
    return rc;
}

static int
s_send_hello (busd_client_t *self)
{
    busp_header_t h = { .command = BUSP_HELLO, .version = BUSP_VERSION,
                        .name = busp_str (self->client_name) };
    self->state = ST_HELLO;
    self->hello_ms = busp_mono_ms ();
    /*  A broker without the features ignores the option (PROTOCOL §8).   */
    return s_send_command (self, &h, self->want_batch
                           ? "{\"features\":[\"batch\",\"error-context\"]}"
                           : "{\"features\":[\"error-context\"]}");
}

static int
s_send_pub (busd_client_t *self, outbox_entry_t *entry)
{
    busp_header_t h = { .command = BUSP_PUB, .seq = entry->seq,
                        .topic = busp_strn (entry->topic, entry->topic_len),
                        .msg_id = busp_strn (entry->msg_id, entry->msg_id_len) };
    int rc = s_send_header (self, &h, true);
    if (rc)
        return rc;
    /*  Send a reference, keep the entry's: a re-send after a broker restart
        needs the bytes again.                                              */
    int more = entry->headers ? ZMQ_SNDMORE : 0;
    if (entry->inline_payload) {
        if (zmq_send (self->sock, entry->inline_payload, entry->inline_size,
                      ZMQ_DONTWAIT | more) < 0)
            return -errno;
    }
    else {
        zmq_msg_t payload;
        zmq_msg_init (&payload);
        if (zmq_msg_copy (&payload, &entry->payload) < 0
        ||  zmq_msg_send (&payload, self->sock, ZMQ_DONTWAIT | more) < 0) {
            rc = -errno;
            zmq_msg_close (&payload);
            return rc;
        }
    }
    if (entry->headers
    &&  zmq_send (self->sock, entry->headers, entry->headers_len, ZMQ_DONTWAIT) < 0)
        return -errno;
    return 0;
}

/*  A PUB record for the pending PUBB; big events go as a plain PUB (their
    payload frame is shared, not copied), after what is pending.  Returns
    as s_send_pub.                                                          */
static int
s_batch_pub (busd_client_t *self, outbox_entry_t *entry)
{
    size_t size = outbox_entry_size (entry);
    busp_pub_rec_t rec = {
        /*  The entry's lengths are already str8-sized (outbox.c).         */
        .topic = { entry->topic, entry->topic_len },
        .msg_id = { entry->msg_id_len ? entry->msg_id : NULL, entry->msg_id_len },
        .headers = (const uint8_t *) entry->headers,
        .headers_size = entry->headers ? (uint32_t) entry->headers_len : 0,
        .payload = outbox_entry_data (entry), .payload_size = (uint32_t) size
    };
    size_t rec_size = busp_pub_rec_size (rec.topic.len, rec.msg_id.len, rec.headers_size, size);
    batcher_t *b = &self->batcher;
    if (rec_size > b->max_bytes)
        return s_send_pub (self, entry);    /*  s_send_header flushes first */
    /*  Not in a burst (the previous publish was a while ago) and nothing
        gathered: the event goes straight out from this thread, sparing the
        flusher's wake-up on the latency path.  In a burst it joins the
        pending PUBB.  Either way nothing waits for anything.              */
    int64_t now = busp_mono_us ();
    bool burst = now - self->last_pub_us < BURST_US;
    self->last_pub_us = now;
    if (!burst && !batcher_pending (b))
        return s_send_pub (self, entry);
    if (b->pubs.count && b->pubs.len + rec_size > b->max_bytes) {
        int rc = s_flush_pending (self);
        if (rc < 0)
            return rc;
    }
    return s_batch_added (self, batcher_add_pub (&self->batcher, entry->seq, &rec));
}

/*  Send the first unsent outbox entry under the next pub_seq.              */
static int
s_send_next_pub (busd_client_t *self)
{
    assert (self->credit > 0 && self->outbox.nsent < self->outbox.count);
    outbox_entry_t *entry = outbox_at (&self->outbox, self->outbox.nsent);
    entry->seq = self->next_seq;
    int rc = self->batch ? s_batch_pub (self, entry) : s_send_pub (self, entry);
    if (rc) {
        entry->seq = 0;
        return rc;
    }
    self->next_seq++;
    self->credit--;
    self->outbox.nsent++;
    return 0;
}

/*  Publishes held back by a new session go out as credit allows.           */
static int
s_send_backlog (busd_client_t *self)
{
    while (self->state == ST_READY && self->credit > 0
    &&     self->outbox.nsent < self->outbox.count) {
        int rc = s_send_next_pub (self);
        if (rc)
            return rc;
    }
    return 0;
}

static int
s_send_sub (busd_client_t *self, sub_t *sub)
{
    busp_header_t h = { .command = BUSP_SUB, .sub_id = sub->id,
                        .topic = busp_str (sub->pattern) };
    int rc = s_send_command (self, &h, sub->options);
    if (rc == 0)
        sub->sent = true;
    return rc;
}

static int
s_send_credit (busd_client_t *self, uint32_t sub_id, uint32_t credit)
{
    busp_header_t h = { .command = BUSP_CREDIT, .sub_id = sub_id, .credit = credit };
    return s_send_header (self, &h, false);
}

static int
s_send_ctl (busd_client_t *self)
{
    busp_header_t h = { .command = BUSP_CTL, .request_id = self->ctl_id };
    return s_send_command (self, &h, self->ctl_request);
}

/*  The application is done with one delivery of sub: earn back its credit,
    and grant it in one CREDIT per half window rather than one per event.  */
static int
s_consumed (busd_client_t *self, sub_t *sub)
{
    if (!sub->auto_credit || sub->window == 0 || self->state != ST_READY || !sub->sent)
        return 0;
    uint32_t batch = sub->window / 2 ? sub->window / 2 : 1;
    if (++sub->consumed < batch)
        return 0;
    uint32_t credit = sub->consumed;
    sub->consumed = 0;
    return s_send_credit (self, sub->id, credit);
}

/*  ------------------------------------------------------------------------
    Subscriptions and the receive FIFO                                      */

static sub_t *
s_sub_find (busd_client_t *self, uint32_t id)
{
    if (self->sub_cache && self->sub_cache->id == id)
        return self->sub_cache;
    for (sub_t *sub = self->subs; sub; sub = sub->next)
        if (sub->id == id)
            return self->sub_cache = sub;
    return NULL;
}

static void
s_sub_free (sub_t *sub)
{
    free (sub->pattern);
    free (sub->options);
    free (sub->info);
    free (sub);
}

static void
s_sub_remove (busd_client_t *self, sub_t *sub)
{
    for (sub_t **at = &self->subs; *at; at = &(*at)->next)
        if (*at == sub) {
            *at = sub->next;
            break;
        }
    if (self->sub_cache == sub)
        self->sub_cache = NULL;
    if (self->wait_sub == sub)
        self->wait_sub = NULL;
    s_sub_free (sub);
}

static void
s_fifo_push (busd_client_t *self, busd_msg_t *msg)
{
    msg->next = NULL;
    if (self->fifo_tail)
        self->fifo_tail->next = msg;
    else
        self->fifo_head = msg;
    self->fifo_tail = msg;
}

static void
s_fifo_discard (busd_client_t *self, uint32_t sub_id)
{
    busd_msg_t **at = &self->fifo_head;
    self->fifo_tail = NULL;
    while (*at) {
        busd_msg_t *msg = *at;
        if (msg->sub_id == sub_id) {
            *at = msg->next;
            busd_msg_destroy (&msg);
        }
        else {
            self->fifo_tail = msg;
            at = &msg->next;
        }
    }
}

/*  Tell the application that the broker ended a subscription.              */
static int
s_queue_subend (busd_client_t *self, uint32_t sub_id, uint16_t code,
                const char *reason, size_t reason_len)
{
    busd_msg_t *msg = busd_msg_new (BUSD_MSG_SUBEND, sub_id, NULL, 0, NULL, 0,
                                    reason, reason_len, NULL, 0);
    if (!msg)
        return -ENOMEM;
    msg->code = code;
    msg->epoch = self->epoch;
    s_fifo_push (self, msg);
    return 0;
}

/*  Read the credit window and ack mode out of SUB options.  Options the
    broker will refuse are left for it to refuse with a reason naming the
    key, so the application sees one kind of error whatever went wrong.    */
static void
s_sub_parse_options (sub_t *sub)
{
    sub->window = DEFAULT_SUB_CREDIT;
    sub->explicit_ack = false;
    if (!sub->options)
        return;
    cJSON *json = cJSON_Parse (sub->options);
    if (!json)
        return;
    cJSON *credit = cJSON_GetObjectItemCaseSensitive (json, "credit");
    if (cJSON_IsNumber (credit) && credit->valuedouble >= 0
    &&  credit->valuedouble <= 4294967295.0)
        sub->window = (uint32_t) credit->valuedouble;
    cJSON *ack = cJSON_GetObjectItemCaseSensitive (json, "ack");
    if (cJSON_IsString (ack) && strcmp (ack->valuestring, "explicit") == 0)
        sub->explicit_ack = true;
    cJSON_Delete (json);
}

/*  ------------------------------------------------------------------------
    Session changes                                                         */

static int
s_socket_open (busd_client_t *self)
{
    if (self->sock) {
        int zero = 0;
        zmq_setsockopt (self->sock, ZMQ_LINGER, &zero, sizeof (zero));
        zmq_close (self->sock);
        self->sock = NULL;
    }
    self->sock = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->sock)
        return -errno;
    int linger = LINGER_MS, hwm = 0, ivl = RECONNECT_IVL_MS;
    if (zmq_setsockopt (self->sock, ZMQ_LINGER, &linger, sizeof (linger))
    ||  zmq_setsockopt (self->sock, ZMQ_SNDHWM, &hwm, sizeof (hwm))
    ||  zmq_setsockopt (self->sock, ZMQ_RCVHWM, &hwm, sizeof (hwm))
    ||  zmq_setsockopt (self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof (ivl)))
        return -errno;
    int rc = busd_security_apply (&self->security, self->sock);
    if (rc)
        return rc;
    if (zmq_connect (self->sock, self->endpoint))
        return -errno;
    return 0;
}

static int
s_die (busd_client_t *self, int fatal)
{
    self->state = ST_DEAD;
    self->fatal = fatal;
    self->credit = 0;
    return fatal;
}

/*  The session is gone (ERROR 401, or a silent broker).  Keep what the
    application built — subscriptions, unacknowledged publishes — and say
    HELLO again; the WELCOME handler replays the rest.  A silent broker
    gets a fresh socket: whatever the old one still queues (an earlier
    HELLO among it) must not reach the broker and start a second session.  */
static int
s_session_lost (busd_client_t *self, bool fresh_socket)
{
    if (!self->reconnect)
        return s_die (self, -ECONNRESET);
    self->recovering = true;
    self->credit = 0;
    /*  Records of the old session: its pub_seqs and delivery ids mean
        nothing to the next (the outbox sends the publishes again).         */
    batcher_clear (&self->batcher);
    outbox_reset (&self->outbox);
    sub_t *sub = self->subs;
    while (sub) {
        sub_t *next = sub->next;
        sub->sent = false;
        sub->consumed = 0;
        if (sub->state == SUB_ENDING)
            s_sub_remove (self, sub);
        sub = next;
    }
    int rc = fresh_socket ? s_socket_open (self) : 0;
    if (rc == 0)
        rc = s_send_hello (self);
    if (rc)
        return s_die (self, rc);
    return 0;
}

static int
s_on_welcome (busd_client_t *self, const busp_header_t *h, zmq_msg_t *body)
{
    if (self->state != ST_HELLO)
        return 0;               /*  not ours to act on: we sent one HELLO   */
    char *info = body ? s_frame_text (body) : strdup ("{}");
    if (!info)
        return -ENOMEM;
    free (self->welcome_info);
    self->welcome_info = info;
    busp_str_copy (h->name, self->broker_id);
    self->pub_window = h->credit;
    self->credit = h->credit;
    self->max_payload = h->max_payload;
    self->session_timeout_ms = DEFAULT_SESSION_TIMEOUT_MS;
    self->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    self->dedup_window_ms = DEFAULT_DEDUP_WINDOW_MS;
    self->max_headers = 0;
    cJSON *json = cJSON_Parse (info);
    if (json) {
        cJSON *item = cJSON_GetObjectItemCaseSensitive (json, "session_timeout_ms");
        if (cJSON_IsNumber (item) && item->valuedouble >= 0)
            self->session_timeout_ms = (int64_t) item->valuedouble;
        item = cJSON_GetObjectItemCaseSensitive (json, "heartbeat_ms");
        if (cJSON_IsNumber (item) && item->valuedouble >= 0)
            self->heartbeat_ms = (int64_t) item->valuedouble;
        item = cJSON_GetObjectItemCaseSensitive (json, "dedup_window_ms");
        if (cJSON_IsNumber (item) && item->valuedouble >= 0)
            self->dedup_window_ms = (int64_t) item->valuedouble;
        item = cJSON_GetObjectItemCaseSensitive (json, "max_headers");
        if (cJSON_IsNumber (item) && item->valuedouble >= 0
        &&  item->valuedouble <= 4294967295.0)
            self->max_headers = (uint32_t) item->valuedouble;
        /*  PROTOCOL §8: batch is in force when both sides listed it.      */
        self->batch = false;
        cJSON *features = cJSON_GetObjectItemCaseSensitive (json, "features");
        cJSON *feature;
        cJSON_ArrayForEach (feature, features)
            if (self->want_batch && cJSON_IsString (feature)
            &&  strcmp (feature->valuestring, "batch") == 0)
                self->batch = true;
        item = cJSON_GetObjectItemCaseSensitive (json, "batch_bytes");
        self->batcher.max_bytes = BATCHER_TARGET_BYTES;
        if (cJSON_IsNumber (item) && item->valuedouble >= 64
        &&  item->valuedouble < BATCHER_TARGET_BYTES)
            self->batcher.max_bytes = (size_t) item->valuedouble;
        if (self->batch && !cJSON_IsNumber (item))
            self->batch = false;        /*  no limit given: do not guess    */
        item = cJSON_GetObjectItemCaseSensitive (json, "batch_max");
        self->batcher.max_count = 64;
        if (cJSON_IsNumber (item) && item->valuedouble >= 1)
            self->batcher.max_count = item->valuedouble > BUSP_BATCH_MAX
                                    ? BUSP_BATCH_MAX : (uint16_t) item->valuedouble;
        cJSON_Delete (json);
    }
    else
        self->batch = false;
    batcher_clear (&self->batcher);
    self->state = ST_READY;
    self->hello_retry_ms = 0;
    self->epoch++;
    self->next_seq = 1;
    self->ping_ms = 0;
    if (self->recovering) {
        self->recovering = false;
        self->reconnects++;
    }
    /*  Replay, in the order the application made them: subscriptions,
        the outstanding CTL, then the publishes credit allows.             */
    for (sub_t *sub = self->subs; sub; sub = sub->next) {
        if (sub->state != SUB_PENDING && sub->state != SUB_LIVE)
            continue;
        sub->state = SUB_PENDING;
        int rc = s_send_sub (self, sub);
        if (rc)
            return rc;
    }
    if (self->ctl_id && !self->ctl_done) {
        int rc = s_send_ctl (self);
        if (rc)
            return rc;
    }
    return s_send_backlog (self);
}

#define HELLO_RETRY_MIN_MS  50
#define HELLO_RETRY_MAX_MS  400

/*  The SUB an ERROR answers, from its error context (PROTOCOL §8.1), or
    NULL when the ERROR names something else or has no context.            */
static sub_t *s_sub_find (busd_client_t *self, uint32_t id);
static sub_t *
s_error_sub (busd_client_t *self, zmq_msg_t *body, bool *has_context)
{
    *has_context = false;
    if (!body || zmq_msg_size (body) == 0)
        return NULL;
    cJSON *ctx = cJSON_ParseWithLength (zmq_msg_data (body), zmq_msg_size (body));
    sub_t *sub = NULL;
    if (cJSON_IsObject (ctx)) {
        *has_context = true;
        cJSON *cmd = cJSON_GetObjectItemCaseSensitive (ctx, "cmd");
        cJSON *id = cJSON_GetObjectItemCaseSensitive (ctx, "sub_id");
        if (cJSON_IsString (cmd) && strcmp (cmd->valuestring, "SUB") == 0
        &&  cJSON_IsNumber (id) && id->valuedouble >= 0 && id->valuedouble <= 4294967295.0)
            sub = s_sub_find (self, (uint32_t) id->valuedouble);
    }
    cJSON_Delete (ctx);
    return sub;
}

static int
s_on_error (busd_client_t *self, const busp_header_t *h, zmq_msg_t *body)
{
    if (h->code == BUSP_E_NO_SESSION) {
        /*  While our HELLO is outstanding, 401s answer what we sent before
            it: the HELLO itself is still on its way.                      */
        if (self->state == ST_HELLO || self->state == ST_DEAD)
            return 0;
        s_set_error (self, h->code, h->name.data, h->name.len);
        return s_session_lost (self, false);
    }
    s_set_error (self, h->code, h->name.data, h->name.len);
    if (self->state == ST_DEAD)
        return 0;
    if (self->state == ST_HELLO && !self->recovering)
        return s_die (self, h->code == BUSP_E_SHUTDOWN ? BUSD_ESHUTDOWN : BUSD_EPROTOCOL);
    if (h->code == BUSP_E_SHUTDOWN) {
        if (!self->reconnect)
            return s_die (self, BUSD_ESHUTDOWN);
        /*  PROTOCOL §4: say HELLO again at once, and keep trying with a
            short backoff (s_timers) while the broker is down or still
            stopping; each try on a fresh socket, so an earlier HELLO cannot
            start a second session.  Everything the application built is
            kept and replayed on WELCOME; no credit meanwhile.             */
        bool first = self->state != ST_HELLO;
        self->hello_retry_ms = first ? HELLO_RETRY_MIN_MS : self->hello_retry_ms;
        if (!first) {
            self->hello_ms = busp_mono_ms ();
            return 0;           /*  a HELLO refused: retry when the timer says */
        }
        return s_session_lost (self, true);
    }
    /*  With the error context the ERROR names its SUB.  Without it (an
        older broker), a 409 or 400 while a SUB is unanswered is that SUB's
        answer (a sub_id in use, PROTOCOL §3).                              */
    bool has_context;
    sub_t *named = s_error_sub (self, body, &has_context);
    sub_t *sub = has_context ? named : self->wait_sub;
    if ((h->code == BUSP_E_CONFLICT || h->code == BUSP_E_MALFORMED)
    &&  sub && sub->state == SUB_PENDING && sub->sent) {
        sub->state = SUB_FAILED;
        sub->failed_by_error = true;
        sub->end_code = h->code;
        busp_str_copy (h->name, sub->end_reason);
    }
    return 0;
}

/*  ------------------------------------------------------------------------
    Incoming messages                                                       */

/*  DELIVERB: one message per record, in order, exactly as if each had
    come as a DELIVER (PROTOCOL §8.2).  A body that does not parse is not
    BUSP: nothing to answer a broker with, so it is dropped whole.  One
    pass: the messages are built while the body is checked, and join the
    receive FIFO only once the whole body has parsed.                       */
static void
s_msg_list_free (busd_msg_t *msg)
{
    while (msg) {
        busd_msg_t *next = msg->next;
        busd_msg_destroy (&msg);
        msg = next;
    }
}

static int
s_on_deliverb (busd_client_t *self, const busp_header_t *h, zmq_msg_t *body)
{
    const void *data = body ? zmq_msg_data (body) : NULL;
    size_t size = body ? zmq_msg_size (body) : 0;
    if (h->count == 0)
        return 0;
    busp_batch_iter_t it;
    busp_batch_iter_init (&it, data, size, h->count);
    busp_deliver_rec_t rec;
    busd_msg_slab_t *slab = busd_msg_slab_new (h->count, size);
    if (!slab)
        return -ENOMEM;
    busd_msg_t *first = NULL, *last = NULL;
    int rc;
    while ((rc = busp_deliverb_next (&it, &rec, NULL)) > 0) {
        sub_t *sub = s_sub_find (self, rec.sub_id);
        if (!sub || sub->state == SUB_ENDING || sub->state == SUB_FAILED)
            continue;
        busd_msg_t *msg = busd_msg_new_inline (slab, rec.sub_id, rec.topic.data, rec.topic.len,
                                               rec.msg_id.data, rec.msg_id.len,
                                               (const char *) rec.headers, rec.headers_size,
                                               rec.payload, rec.payload_size);
        if (!msg) {
            rc = -ENOMEM;
            break;
        }
        msg->epoch = self->epoch;
        msg->delivery_id = rec.delivery_id;
        msg->stream_seq = rec.stream_seq;
        msg->ts_us = rec.ts_us;
        msg->attempt = rec.attempt;
        if (last)
            last->next = msg;
        else
            first = msg;
        last = msg;
    }
    busd_msg_slab_release (slab);       /*  the messages hold it now        */
    if (rc < 0) {
        s_msg_list_free (first);
        return rc == -ENOMEM ? rc : 0;
    }
    if (first) {
        if (self->fifo_tail)
            self->fifo_tail->next = first;
        else
            self->fifo_head = first;
        self->fifo_tail = last;
    }
    return 0;
}

static int
s_on_deliver (busd_client_t *self, const busp_header_t *h, zmq_msg_t *frames, int nframes)
{
    sub_t *sub = s_sub_find (self, h->sub_id);
    if (!sub || sub->state == SUB_ENDING || sub->state == SUB_FAILED)
        return 0;               /*  unsubscribed: nothing may follow SUBEND */
    const char *headers = NULL;
    size_t headers_len = 0;
    if (nframes == 3 && zmq_msg_size (&frames [2]) > 0) {
        headers = zmq_msg_data (&frames [2]);
        headers_len = zmq_msg_size (&frames [2]);
    }
    busd_msg_t *msg = busd_msg_new (BUSD_MSG_DELIVER, h->sub_id,
                                    h->topic.data, h->topic.len,
                                    h->msg_id.data, h->msg_id.len, NULL, 0,
                                    headers, headers_len);
    if (!msg)
        return -ENOMEM;
    msg->epoch = self->epoch;
    msg->delivery_id = h->delivery_id;
    msg->stream_seq = h->stream_seq;
    msg->ts_us = h->ts_us;
    msg->attempt = h->attempt;
    if (nframes >= 2)
        zmq_msg_move (&msg->payload, &frames [1]);
    s_fifo_push (self, msg);
    return 0;
}

static int
s_on_gap (busd_client_t *self, const busp_header_t *h)
{
    sub_t *sub = s_sub_find (self, h->sub_id);
    if (!sub || sub->state == SUB_ENDING || sub->state == SUB_FAILED)
        return 0;
    busd_msg_t *msg = busd_msg_new (BUSD_MSG_GAP, h->sub_id, NULL, 0, NULL, 0,
                                    NULL, 0, NULL, 0);
    if (!msg)
        return -ENOMEM;
    msg->epoch = self->epoch;
    msg->dropped = h->dropped;
    s_fifo_push (self, msg);
    return 0;
}

static int
s_on_subend (busd_client_t *self, const busp_header_t *h)
{
    sub_t *sub = s_sub_find (self, h->sub_id);
    if (!sub)
        return 0;
    switch (sub->state) {
        case SUB_ENDING:
            s_sub_remove (self, sub);
            return 0;
        case SUB_FAILED:
            return 0;
        case SUB_PENDING:
            if (self->wait_sub == sub) {
                sub->state = SUB_FAILED;
                sub->end_code = h->code;
                busp_str_copy (h->name, sub->end_reason);
                return 0;
            }
            /*  A replayed SUB refused by the new session: the application
                learns it the way it learns of any ended subscription.     */
            /*  fall through */
        case SUB_LIVE:
        default: {
            s_set_error (self, h->code, h->name.data, h->name.len);
            int rc = s_queue_subend (self, sub->id, h->code, h->name.data, h->name.len);
            s_sub_remove (self, sub);
            return rc;
        }
    }
}

static int
s_on_subok (busd_client_t *self, const busp_header_t *h, zmq_msg_t *body)
{
    sub_t *sub = s_sub_find (self, h->sub_id);
    if (!sub || sub->state != SUB_PENDING)
        return 0;
    char *info = body ? s_frame_text (body) : strdup ("{}");
    if (!info)
        return -ENOMEM;
    free (sub->info);
    sub->info = info;
    sub->state = SUB_LIVE;
    /*  The broker may cap credit (max_credit): top up by the window it
        granted, or a window above the cap would wait for ever.            */
    cJSON *json = cJSON_Parse (info);
    cJSON *credit = cJSON_GetObjectItemCaseSensitive (json, "credit");
    if (cJSON_IsNumber (credit) && credit->valuedouble >= 1
    &&  credit->valuedouble < (double) sub->window)
        sub->window = (uint32_t) credit->valuedouble;
    cJSON_Delete (json);
    return 0;
}

static int
s_on_puback (busd_client_t *self, const busp_header_t *h)
{
    if (self->state != ST_READY && self->state != ST_AWAY)
        return 0;               /*  acknowledges a session we left          */
    self->accepted += outbox_ack (&self->outbox, h->seq);
    if (self->state != ST_READY)
        return 0;
    uint64_t credit = (uint64_t) self->credit + h->credit;
    self->credit = credit > UINT32_MAX ? UINT32_MAX : (uint32_t) credit;
    return s_send_backlog (self);
}

static int
s_on_reject (busd_client_t *self, const busp_header_t *h)
{
    if (self->state != ST_READY && self->state != ST_AWAY)
        return 0;
    outbox_entry_t *entry = outbox_find (&self->outbox, h->seq);
    if (!entry || entry->rejected)
        return 0;
    entry->rejected = true;
    self->rejected++;
    self->rejected_since_flush = true;
    s_set_error (self, h->code, h->name.data, h->name.len);
    if (self->reject_fn) {
        char reason [256];
        busp_str_copy (h->name, reason);
        self->reject_fn (self->reject_arg, h->seq, entry->topic, h->code, reason);
    }
    return 0;
}

static int
s_on_ctlreply (busd_client_t *self, const busp_header_t *h, zmq_msg_t *body)
{
    if (!self->ctl_id || h->request_id != self->ctl_id || self->ctl_done)
        return 0;               /*  answers a CTL we stopped waiting for    */
    char *reply = body ? s_frame_text (body) : strdup ("{}");
    if (!reply)
        return -ENOMEM;
    free (self->ctl_reply);
    self->ctl_reply = reply;
    self->ctl_code = h->code;
    self->ctl_done = true;
    if (h->code != BUSP_OK) {
        const char *reason = reply;
        cJSON *json = cJSON_Parse (reply);
        cJSON *error = json ? cJSON_GetObjectItemCaseSensitive (json, "error") : NULL;
        if (cJSON_IsString (error))
            reason = error->valuestring;
        s_set_error (self, h->code, reason, strlen (reason));
        cJSON_Delete (json);
    }
    return 0;
}

static int
s_dispatch (busd_client_t *self, zmq_msg_t *frames, int nframes)
{
    busp_header_t h;
    if (busp_decode (zmq_msg_data (&frames [0]), zmq_msg_size (&frames [0]), &h, NULL))
        return 0;               /*  not BUSP: nothing to answer a broker with */
    int max_frames;
    if (busp_frame_limits (h.command, NULL, &max_frames) || nframes > max_frames)
        return 0;
    zmq_msg_t *body = nframes >= 2 ? &frames [1] : NULL;
    switch (h.command) {
        case BUSP_DELIVER:  return s_on_deliver (self, &h, frames, nframes);
        case BUSP_PUBACK:   return s_on_puback (self, &h);
        case BUSP_REJECT:   return s_on_reject (self, &h);
        case BUSP_GAP:      return s_on_gap (self, &h);
        case BUSP_SUBOK:    return s_on_subok (self, &h, body);
        case BUSP_SUBEND:   return s_on_subend (self, &h);
        case BUSP_WELCOME:  return s_on_welcome (self, &h, body);
        case BUSP_ERROR:    return s_on_error (self, &h, body);
        case BUSP_DELIVERB: return s_on_deliverb (self, &h, body);
        case BUSP_CTLREPLY: return s_on_ctlreply (self, &h, body);
        case BUSP_PING: {
            busp_header_t pong = { .command = BUSP_PONG, .nonce = h.nonce };
            return self->state == ST_DEAD ? 0 : s_send_header (self, &pong, false);
        }
        default:
            return 0;           /*  PONG: its arrival was the point         */
    }
}

/*  Receive and handle one message without waiting.  Returns 1 when one was
    handled, 0 when the socket had none, or a negative code.              */
static int
s_recv_one (busd_client_t *self)
{
    zmq_msg_t frames [3];
    zmq_msg_init (&frames [0]);
    if (zmq_msg_recv (&frames [0], self->sock, ZMQ_DONTWAIT) < 0) {
        int err = errno;
        zmq_msg_close (&frames [0]);
        return err == EAGAIN ? 0 : -err;
    }
    int nframes = 1;
    bool too_many = false;
    int rc = 0;
    bool more = zmq_msg_more (&frames [0]);
    while (more) {
        /*  The rest of a multipart message is always there at once.       */
        zmq_msg_t spare, *frame = nframes < 3 ? &frames [nframes] : &spare;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->sock, 0) < 0) {
            rc = -errno;
            zmq_msg_close (frame);
            break;
        }
        more = zmq_msg_more (frame);
        if (frame == &spare) {
            too_many = true;
            zmq_msg_close (frame);
        }
        else
            nframes++;
    }
    if (rc == 0 && !too_many)
        rc = s_dispatch (self, frames, nframes);
    for (int i = 0; i < nframes; i++)
        zmq_msg_close (&frames [i]);
    return rc < 0 ? rc : 1;
}

/*  Handle everything the socket holds (up to DRAIN_MAX messages).  Returns
    how many messages were handled, or a negative code.                     */
static int
s_drain (busd_client_t *self)
{
    int handled = 0;
    while (handled < DRAIN_MAX) {
        int rc = s_recv_one (self);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        handled++;
    }
    self->drain_ms = busp_mono_ms ();
    if (handled)
        self->heard_ms = self->drain_ms;
    return handled;
}

/*  When the next heartbeat timer falls due, or -1 for none.                */
static int64_t
s_next_timer (busd_client_t *self)
{
    if (self->state == ST_HELLO && self->hello_retry_ms)
        return self->hello_ms + self->hello_retry_ms;
    if (self->state == ST_HELLO)
        return self->recovering && self->session_timeout_ms > 0
             ? self->hello_ms + self->session_timeout_ms : -1;
    if (self->state != ST_READY && self->state != ST_AWAY)
        return -1;
    int64_t due = -1;
    if (self->session_timeout_ms > 0)
        due = self->heard_ms + self->session_timeout_ms;
    if (self->heartbeat_ms > 0) {
        int64_t since = self->heard_ms > self->ping_ms ? self->heard_ms : self->ping_ms;
        int64_t ping = since + self->heartbeat_ms;
        if (due < 0 || ping < due)
            due = ping;
    }
    return due;
}

/*  PING a quiet broker; give up on a silent one.  Returns 1 when the
    session changed, 0, or a negative code.                                 */
static int
s_timers (busd_client_t *self, int64_t now)
{
    if (self->state == ST_HELLO && self->hello_retry_ms) {
        if (now - self->hello_ms < self->hello_retry_ms)
            return 0;
        self->hello_retry_ms = self->hello_retry_ms * 2 > HELLO_RETRY_MAX_MS
                             ? HELLO_RETRY_MAX_MS : self->hello_retry_ms * 2;
        int rc = s_session_lost (self, true);
        return rc < 0 ? rc : 1;
    }
    if (self->state == ST_HELLO) {
        if (!self->recovering || self->session_timeout_ms <= 0
        ||  now - self->hello_ms < self->session_timeout_ms)
            return 0;
        /*  The HELLO went unanswered; maybe it went down with a dying
            connection.  Try again on a fresh socket.                      */
        int rc = s_session_lost (self, true);
        return rc < 0 ? rc : 1;
    }
    if (self->state != ST_READY && self->state != ST_AWAY)
        return 0;
    if (self->session_timeout_ms > 0 && now - self->heard_ms >= self->session_timeout_ms) {
        int rc = s_session_lost (self, true);
        return rc < 0 ? rc : 1;
    }
    if (self->heartbeat_ms > 0 && now - self->heard_ms >= self->heartbeat_ms
    &&  now - self->ping_ms >= self->heartbeat_ms) {
        busp_header_t ping = { .command = BUSP_PING, .nonce = ++self->ping_nonce };
        self->ping_ms = now;
        int rc = s_send_header (self, &ping, false);
        if (rc)
            return rc;
    }
    return 0;
}

/*  The loop every waiting call runs: handle what has arrived, run the
    timers, and if nothing happened wait for traffic, a timer or the
    deadline (-1: none).  Returns 0 when the caller should look at its
    condition again, -ETIMEDOUT once the deadline has passed, -EINTR when a
    signal interrupted the wait, or another negative code.                  */
static int
s_pump (busd_client_t *self, int64_t deadline)
{
    if (self->fatal)
        return self->fatal;
    /*  Before waiting, everything batched leaves: nothing may wait on us. */
    if (batcher_pending (&self->batcher) && s_flush_pending (self) < 0)
        return -EIO;
    int rc = s_drain (self);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    int64_t now = busp_mono_ms ();
    rc = s_timers (self, now);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (deadline >= 0 && now >= deadline)
        return -ETIMEDOUT;

    int64_t due = s_next_timer (self);
    if (deadline >= 0 && (due < 0 || deadline < due))
        due = deadline;
    long wait = -1;
    if (due >= 0)
        wait = due > now ? (long) (due - now) : 0;
    zmq_pollitem_t item = { self->sock, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, wait) < 0)
        return -errno;
    rc = s_drain (self);
    return rc < 0 ? rc : 0;
}

/*  ------------------------------------------------------------------------
    Connecting                                                              */

BUSD_EXPORT void
busd_client_options_init (busd_client_options_t *opts)
{
    if (!opts)
        return;
    memset (opts, 0, sizeof (*opts));
    opts->reconnect = true;
}

static void
s_client_free (busd_client_t *self)
{
    batcher_destroy (&self->batcher);
    if (self->sock)
        zmq_close (self->sock);
    if (self->own_ctx && self->ctx) {
        while (zmq_ctx_term (self->ctx) < 0 && errno == EINTR)
            ;
    }
    outbox_clear (&self->outbox);
    busd_security_clear (&self->security);
    while (self->subs)
        s_sub_remove (self, self->subs);
    while (self->fifo_head) {
        busd_msg_t *msg = self->fifo_head;
        self->fifo_head = msg->next;
        busd_msg_destroy (&msg);
    }
    free (self->endpoint);
    free (self->welcome_info);
    free (self->ctl_request);
    free (self->ctl_reply);
    free (self);
}

BUSD_EXPORT busd_client_t *
busd_client_new (const busd_client_options_t *opts, int *err)
{
    busd_client_options_t defaults;
    if (!opts) {
        busd_client_options_init (&defaults);
        opts = &defaults;
    }
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;

    const char *endpoint = opts->endpoint;
    if (!endpoint || !*endpoint)
        endpoint = getenv ("BUSD_ENDPOINT");
    if (!endpoint || !*endpoint)
        endpoint = BUSD_DEFAULT_ENDPOINT;
    const char *name = opts->client_name && *opts->client_name
                     ? opts->client_name : "busd-client";
    if (strlen (name) > 255) {
        *err = -EINVAL;
        return NULL;
    }

    busd_client_t *self = calloc (1, sizeof (*self));
    if (!self) {
        *err = -ENOMEM;
        return NULL;
    }
    if (batcher_init (&self->batcher, s_flush_pending, self)) {
        free (self);
        *err = -ENOMEM;
        return NULL;
    }
    self->want_batch = !opts->no_batch;
    outbox_init (&self->outbox);
    snprintf (self->client_name, sizeof (self->client_name), "%s", name);
    self->reconnect = opts->reconnect;
    self->session_timeout_ms = DEFAULT_SESSION_TIMEOUT_MS;
    self->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    self->dedup_window_ms = DEFAULT_DEDUP_WINDOW_MS;
    self->next_sub_id = 1;
    self->next_request_id = 1;
    self->endpoint = strdup (endpoint);
    if (!self->endpoint) {
        *err = -ENOMEM;
        s_client_free (self);
        return NULL;
    }
    int sec = busd_security_init (&self->security, opts);
    if (sec) {
        *err = sec;
        s_client_free (self);
        return NULL;
    }
    self->ctx = opts->zmq_context;
    if (!self->ctx) {
        self->ctx = zmq_ctx_new ();
        self->own_ctx = true;
        if (!self->ctx) {
            *err = -errno;
            s_client_free (self);
            return NULL;
        }
    }
    int rc = s_socket_open (self);
    if (rc == 0)
        rc = s_send_hello (self);
    int timeout = opts->connect_timeout_ms ? opts->connect_timeout_ms
                                           : DEFAULT_CONNECT_TIMEOUT_MS;
    int64_t deadline = s_deadline (timeout);
    while (rc == 0 && self->state == ST_HELLO)
        rc = s_pump (self, deadline);
    if (rc == 0 && self->state != ST_READY)
        rc = self->fatal ? self->fatal : BUSD_EPROTOCOL;
    if (rc) {
        int zero = 0;
        if (self->sock)
            zmq_setsockopt (self->sock, ZMQ_LINGER, &zero, sizeof (zero));
        *err = rc;
        s_client_free (self);
        return NULL;
    }
    self->heard_ms = busp_mono_ms ();
    return self;
}

BUSD_EXPORT void
busd_client_destroy (busd_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    busd_client_t *self = *self_p;
    /*  From here on this thread alone uses the socket; what is batched
        goes out ahead of the BYE (s_send_header sends it first).           */
    batcher_stop (&self->batcher);
    if (self->sock) {
        if (self->state == ST_READY) {
            busp_header_t bye = { .command = BUSP_BYE };
            s_send_header (self, &bye, false);
        }
        else {
            /*  No session to end: nothing queued is worth waiting for.    */
            int zero = 0;
            zmq_setsockopt (self->sock, ZMQ_LINGER, &zero, sizeof (zero));
        }
    }
    s_client_free (self);
    *self_p = NULL;
}

BUSD_EXPORT uint32_t
busd_client_max_payload (busd_client_t *self)
{
    return self ? self->max_payload : 0;
}

BUSD_EXPORT uint32_t
busd_client_pub_window (busd_client_t *self)
{
    return self ? self->pub_window : 0;
}

BUSD_EXPORT const char *
busd_client_broker_id (busd_client_t *self)
{
    return self ? self->broker_id : "";
}

BUSD_EXPORT const char *
busd_client_welcome_info (busd_client_t *self)
{
    return self && self->welcome_info ? self->welcome_info : "{}";
}

BUSD_EXPORT bool
busd_client_batching (busd_client_t *self)
{
    return self && self->batch;
}

BUSD_EXPORT uint64_t
busd_client_reconnects (busd_client_t *self)
{
    return self ? self->reconnects : 0;
}

static int
s_api_client_poll (busd_client_t *self, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    if (self->fatal)
        return self->fatal;
    int rc = s_drain (self);
    if (rc < 0)
        return rc;
    if (rc == 0)
        rc = s_pump (self, s_deadline (timeout_ms));
    else
        rc = s_timers (self, busp_mono_ms ());
    return rc == -ETIMEDOUT || rc > 0 ? 0 : rc;
}

BUSD_EXPORT int
busd_client_poll (busd_client_t *self, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_client_poll (self, timeout_ms);
    batcher_unlock (&self->batcher);
    return rc;
}

static int
s_api_client_fd (busd_client_t *self)
{
    if (!self || !self->sock)
        return -EINVAL;
    /*  An outside poll loop on the fd must see every edge: from now on
        only the application's own calls touch the socket.                 */
    self->batcher.no_thread = true;
    if (batcher_pending (&self->batcher) && s_flush_pending (self) < 0)
        return -EIO;
    int fd;
    size_t size = sizeof (fd);
    if (zmq_getsockopt (self->sock, ZMQ_FD, &fd, &size) < 0)
        return -errno;
    return fd;
}

BUSD_EXPORT int
busd_client_fd (busd_client_t *self)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_client_fd (self);
    batcher_unlock (&self->batcher);
    return rc;
}

/*  ------------------------------------------------------------------------
    Publishing                                                              */

static void
s_api_client_set_reject_handler (busd_client_t *self, busd_reject_fn *fn, void *arg)
{
    if (!self)
        return;
    self->reject_fn = fn;
    self->reject_arg = arg;
}

BUSD_EXPORT void
busd_client_set_reject_handler (busd_client_t *self, busd_reject_fn *fn, void *arg)
{
    if (!self)
        return;
    batcher_lock (&self->batcher);
    s_api_client_set_reject_handler (self, fn, arg);
    batcher_unlock (&self->batcher);
}

/*  A new PUB may go out now: session live, credit in hand, and nothing
    replayed from an earlier session still waiting ahead of it.             */
static inline bool
s_can_publish (busd_client_t *self)
{
    return self->state == ST_READY && self->credit > 0
        && self->outbox.nsent == self->outbox.count;
}

static int
s_api_publish_seq (busd_client_t *self, const char *topic,
                   const void *payload, size_t size,
                   const busd_pub_options_t *opts, int timeout_ms, uint64_t *pub_seq)
{
    if (!self || !topic || (size && !payload))
        return -EINVAL;
    size_t topic_len = strlen (topic);
    if (topic_len == 0 || topic_len != self->valid_topic_len
    ||  memcmp (topic, self->valid_topic, topic_len) != 0) {
        if (busp_topic_check (topic, topic_len, NULL))
            return -EINVAL;
        memcpy (self->valid_topic, topic, topic_len);
        self->valid_topic_len = topic_len;
    }
    const char *msg_id = opts && opts->msg_id ? opts->msg_id : "";
    size_t msg_id_len = strlen (msg_id);
    if (msg_id_len > 255)
        return -EINVAL;
    const char *headers = opts ? opts->headers_json : NULL;
    size_t headers_len = headers ? strlen (headers) : 0;
    if (headers_len == 0)
        headers = NULL;         /*  an empty headers frame means none       */
    if (size > self->max_payload)
        return -EMSGSIZE;
    if (headers && self->max_headers && headers_len > self->max_headers)
        return -EMSGSIZE;
    if (self->fatal)
        return self->fatal;

    if (!s_can_publish (self) || ++self->pubs_since_drain >= PUB_DRAIN_EVERY
    ||  busp_mono_coarse_ms () - self->drain_ms >= PUB_DRAIN_MS) {
        self->pubs_since_drain = 0;
        int rc = s_drain (self);
        if (rc >= 0)
            rc = s_timers (self, busp_mono_ms ());
        if (rc < 0)
            return rc;
    }
    if (!s_can_publish (self)) {
        int64_t deadline = s_deadline (timeout_ms);
        while (!s_can_publish (self)) {
            int rc = s_pump (self, deadline);
            if (rc == -ETIMEDOUT)
                return BUSD_ENOCREDIT;
            if (rc < 0)
                return rc;
        }
    }
    /*  A batched event's bytes are copied into its PUBB record anyway:
        keep them in the entry's own block (from the outbox's arena).     */
    if (self->batch && size <= INLINE_MAX) {
        outbox_entry_t *entry = outbox_entry_new_inline (&self->outbox, topic, topic_len,
                                                         msg_id, msg_id_len, headers,
                                                         headers_len, payload, size);
        if (!entry)
            return -ENOMEM;
        if (outbox_push (&self->outbox, entry)) {
            outbox_entry_destroy (&self->outbox, &entry);
            return -ENOMEM;
        }
        int rc = s_send_next_pub (self);
        if (rc) {
            self->outbox.count--;
            outbox_entry_destroy (&self->outbox, &entry);
        }
        else
        if (pub_seq)
            *pub_seq = entry->seq;
        return rc;
    }
    outbox_entry_t *entry = outbox_entry_new (&self->outbox, topic, topic_len,
                                              msg_id, msg_id_len, headers, headers_len);
    if (!entry)
        return -ENOMEM;
    if (zmq_msg_init_size (&entry->payload, size)) {
        zmq_msg_init (&entry->payload);
        outbox_entry_destroy (&self->outbox, &entry);
        return -ENOMEM;
    }
    if (size)
        memcpy (zmq_msg_data (&entry->payload), payload, size);
    if (outbox_push (&self->outbox, entry)) {
        outbox_entry_destroy (&self->outbox, &entry);
        return -ENOMEM;
    }
    int rc = s_send_next_pub (self);
    if (rc) {
        /*  Nothing reached the socket (only a closed socket fails a send):
            take the entry back so the caller's error is the whole story.  */
        self->outbox.count--;
        outbox_entry_destroy (&self->outbox, &entry);
    }
    else
    if (pub_seq)
        *pub_seq = entry->seq;
    return rc;
}

BUSD_EXPORT int
busd_publish_seq (busd_client_t *self, const char *topic,
                  const void *payload, size_t size,
                  const busd_pub_options_t *opts, int timeout_ms, uint64_t *pub_seq)
{
    if (pub_seq)
        *pub_seq = 0;
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_publish_seq (self, topic, payload, size, opts, timeout_ms, pub_seq);
    batcher_unlock (&self->batcher);
    return rc;
}

BUSD_EXPORT int
busd_publish (busd_client_t *self, const char *topic,
              const void *payload, size_t size,
              const busd_pub_options_t *opts, int timeout_ms)
{
    return busd_publish_seq (self, topic, payload, size, opts, timeout_ms, NULL);
}

static int
s_api_flush (busd_client_t *self, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    int64_t deadline = s_deadline (timeout_ms);
    while (self->outbox.count > 0) {
        int rc = s_pump (self, deadline);
        if (rc < 0)
            return rc;
    }
    if (self->rejected_since_flush) {
        self->rejected_since_flush = false;
        return BUSD_EREJECTED;
    }
    return 0;
}

BUSD_EXPORT int
busd_flush (busd_client_t *self, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_flush (self, timeout_ms);
    batcher_unlock (&self->batcher);
    return rc;
}

BUSD_EXPORT uint32_t
busd_client_pub_credit (busd_client_t *self)
{
    return self ? self->credit : 0;
}

BUSD_EXPORT uint64_t
busd_client_unacked (busd_client_t *self)
{
    return self ? self->outbox.count : 0;
}

BUSD_EXPORT uint64_t
busd_client_accepted (busd_client_t *self)
{
    return self ? self->accepted : 0;
}

BUSD_EXPORT uint64_t
busd_client_rejected (busd_client_t *self)
{
    return self ? self->rejected : 0;
}

/*  ------------------------------------------------------------------------
    Subscribing                                                             */

static int64_t
s_api_subscribe (busd_client_t *self, const char *pattern, const char *options_json,
                int timeout_ms)
{
    if (!self || !pattern || busp_pattern_check (pattern, strlen (pattern), NULL))
        return -EINVAL;
    /*  MQTT's '+' and NATS' '>' would be literal tokens that match nothing
        anyone publishes: refused, with the hint in busd_client_last_error. */
    char hint [400];
    if (busp_pattern_foreign_wildcard (pattern, hint, sizeof hint)) {
        s_set_error (self, 400, hint, strlen (hint));
        return -EINVAL;
    }
    if (self->fatal)
        return self->fatal;
    sub_t *sub = calloc (1, sizeof (*sub));
    if (!sub)
        return -ENOMEM;
    sub->pattern = strdup (pattern);
    sub->options = options_json && *options_json ? strdup (options_json) : NULL;
    if (!sub->pattern || (options_json && *options_json && !sub->options)) {
        s_sub_free (sub);
        return -ENOMEM;
    }
    sub->id = self->next_sub_id++;
    if (self->next_sub_id == 0)
        self->next_sub_id = 1;
    sub->state = SUB_PENDING;
    sub->auto_credit = true;
    s_sub_parse_options (sub);
    sub->next = self->subs;
    self->subs = sub;

    int rc = 0;
    if (self->state == ST_READY)
        rc = s_send_sub (self, sub);
    /*  Not in a session: the WELCOME that starts the next one sends it.   */
    self->wait_sub = sub;
    int64_t deadline = s_deadline (timeout_ms);
    while (rc == 0 && sub->state == SUB_PENDING)
        rc = s_pump (self, deadline);
    self->wait_sub = NULL;

    if (sub->state == SUB_LIVE)
        return sub->id;
    if (sub->state == SUB_FAILED) {
        s_set_error (self, sub->end_code, sub->end_reason, strlen (sub->end_reason));
        bool by_error = sub->failed_by_error;
        s_sub_remove (self, sub);
        return by_error ? BUSD_EPROTOCOL : BUSD_ESUBEND;
    }
    /*  Gave up waiting.  A SUB already sent may still succeed: end it, so
        the broker does not keep a subscription nobody reads.              */
    if (sub->sent && self->state == ST_READY) {
        busp_header_t h = { .command = BUSP_UNSUB, .sub_id = sub->id };
        sub->state = SUB_ENDING;
        s_send_header (self, &h, false);
    }
    else
        s_sub_remove (self, sub);
    return rc;
}

BUSD_EXPORT int64_t
busd_subscribe (busd_client_t *self, const char *pattern, const char *options_json,
                int timeout_ms)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int64_t rc = s_api_subscribe (self, pattern, options_json, timeout_ms);
    batcher_unlock (&self->batcher);
    return rc;
}

static int
s_api_unsubscribe (busd_client_t *self, busd_sub_id_t sub_id, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    sub_t *sub = s_sub_find (self, sub_id);
    if (!sub)
        return -ENOENT;
    s_fifo_discard (self, sub_id);
    if (self->state != ST_READY || !sub->sent) {
        /*  The broker holds no subscription for it (or is going away).    */
        s_sub_remove (self, sub);
        return 0;
    }
    if (sub->state != SUB_ENDING) {
        busp_header_t h = { .command = BUSP_UNSUB, .sub_id = sub_id };
        int rc = s_send_header (self, &h, false);
        if (rc)
            return rc;
        sub->state = SUB_ENDING;
    }
    int64_t deadline = s_deadline (timeout_ms);
    while (s_sub_find (self, sub_id)) {
        int rc = s_pump (self, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

BUSD_EXPORT int
busd_unsubscribe (busd_client_t *self, busd_sub_id_t sub_id, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_unsubscribe (self, sub_id, timeout_ms);
    batcher_unlock (&self->batcher);
    return rc;
}

BUSD_EXPORT const char *
busd_subscription_info (busd_client_t *self, uint32_t sub_id)
{
    if (!self)
        return NULL;
    sub_t *sub = s_sub_find (self, sub_id);
    return sub && sub->state == SUB_LIVE ? sub->info : NULL;
}

BUSD_EXPORT uint16_t
busd_client_last_error (busd_client_t *self, const char **reason)
{
    if (reason)
        *reason = self ? self->last_reason : "";
    return self ? self->last_code : 0;
}

static int
s_api_receive (busd_client_t *self, busd_msg_t **msg_p, int timeout_ms)
{
    if (!self || !msg_p)
        return -EINVAL;
    *msg_p = NULL;
    if (!self->fifo_head && !self->fatal) {
        int rc = s_drain (self);
        if (rc < 0)
            return rc;
        if (!self->fifo_head) {
            int64_t deadline = s_deadline (timeout_ms);
            while (!self->fifo_head) {
                rc = s_pump (self, deadline);
                if (rc < 0)
                    return rc;
            }
        }
    }
    busd_msg_t *msg = self->fifo_head;
    if (!msg)
        return self->fatal;
    self->fifo_head = msg->next;
    if (!self->fifo_head)
        self->fifo_tail = NULL;
    msg->next = NULL;
    *msg_p = msg;
    if (msg->kind == BUSD_MSG_DELIVER && msg->epoch == self->epoch) {
        sub_t *sub = s_sub_find (self, msg->sub_id);
        /*  The message is the caller's whatever happens to the CREDIT; a
            failed send shows up on the next call that needs the socket.   */
        if (sub && !sub->explicit_ack)
            s_consumed (self, sub);
    }
    return 0;
}

BUSD_EXPORT int
busd_receive (busd_client_t *self, busd_msg_t **msg_p, int timeout_ms)
{
    if (msg_p)
        *msg_p = NULL;
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_receive (self, msg_p, timeout_ms);
    batcher_unlock (&self->batcher);
    return rc;
}

/*  ACK and NACK only make sense in the session that made the delivery: a
    later session numbers its deliveries from 1 again.  For an older one
    the broker has already given up on the delivery, so there is nothing
    to acknowledge and the call succeeds without sending anything.        */
static int
s_settle (busd_client_t *self, const busd_msg_t *m, const busp_header_t *h, const char *body)
{
    if (self->fatal)
        return self->fatal;
    sub_t *sub = s_sub_find (self, m->sub_id);
    if (!sub || sub->state == SUB_ENDING)
        return -ENOENT;
    if (m->epoch != self->epoch || (self->state != ST_READY && self->state != ST_AWAY))
        return 0;
    int rc;
    if (self->batch && h->command == BUSP_ACK)
        rc = s_batch_added (self, batcher_add_ack (&self->batcher, h->sub_id, h->delivery_id));
    else
        rc = s_send_command (self, h, body);
    if (rc == 0 && sub->explicit_ack)
        rc = s_consumed (self, sub);
    return rc;
}

static int
s_api_ack (busd_client_t *self, const busd_msg_t *m)
{
    if (!self || !m || m->kind != BUSD_MSG_DELIVER)
        return -EINVAL;
    busp_header_t h = { .command = BUSP_ACK, .sub_id = m->sub_id,
                        .delivery_id = m->delivery_id };
    return s_settle (self, m, &h, NULL);
}

BUSD_EXPORT int
busd_ack (busd_client_t *self, const busd_msg_t *m)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_ack (self, m);
    batcher_unlock (&self->batcher);
    return rc;
}

static int
s_api_nack (busd_client_t *self, const busd_msg_t *m,
           int action, uint32_t delay_ms, const char *reason)
{
    if (!self || !m || m->kind != BUSD_MSG_DELIVER
    ||  (action != BUSD_NACK_RETRY && action != BUSD_NACK_DEADLETTER))
        return -EINVAL;
    busp_header_t h = { .command = BUSP_NACK, .sub_id = m->sub_id,
                        .delivery_id = m->delivery_id, .action = (uint8_t) action,
                        .delay_ms = delay_ms };
    char *body = NULL;
    if (reason) {
        cJSON *json = cJSON_CreateObject ();
        if (!json || !cJSON_AddStringToObject (json, "reason", reason)
        ||  !(body = cJSON_PrintUnformatted (json))) {
            cJSON_Delete (json);
            return -ENOMEM;
        }
        cJSON_Delete (json);
    }
    int rc = s_settle (self, m, &h, body);
    cJSON_free (body);
    return rc;
}

BUSD_EXPORT int
busd_nack (busd_client_t *self, const busd_msg_t *m,
           int action, uint32_t delay_ms, const char *reason)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_nack (self, m, action, delay_ms, reason);
    batcher_unlock (&self->batcher);
    return rc;
}

static int
s_api_credit (busd_client_t *self, uint32_t sub_id, uint32_t credit)
{
    if (!self)
        return -EINVAL;
    if (self->fatal)
        return self->fatal;
    sub_t *sub = s_sub_find (self, sub_id);
    if (!sub || sub->state == SUB_ENDING)
        return -ENOENT;
    /*  A SUB not yet (re)sent starts with its window when it is.          */
    if (self->state != ST_READY || !sub->sent || credit == 0)
        return 0;
    return s_send_credit (self, sub_id, credit);
}

BUSD_EXPORT int
busd_credit (busd_client_t *self, uint32_t sub_id, uint32_t credit)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_credit (self, sub_id, credit);
    batcher_unlock (&self->batcher);
    return rc;
}

static int
s_api_subscription_set_auto_credit (busd_client_t *self, uint32_t sub_id, bool enabled)
{
    if (!self)
        return -EINVAL;
    sub_t *sub = s_sub_find (self, sub_id);
    if (!sub)
        return -ENOENT;
    sub->auto_credit = enabled;
    return 0;
}

BUSD_EXPORT int
busd_subscription_set_auto_credit (busd_client_t *self, uint32_t sub_id, bool enabled)
{
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_subscription_set_auto_credit (self, sub_id, enabled);
    batcher_unlock (&self->batcher);
    return rc;
}

/*  ------------------------------------------------------------------------
    Control                                                                 */

static int
s_api_ctl (busd_client_t *self, const char *request_json, char **reply_p, int timeout_ms)
{
    if (reply_p)
        *reply_p = NULL;
    if (!self || !request_json)
        return -EINVAL;
    if (self->fatal)
        return self->fatal;
    free (self->ctl_request);
    free (self->ctl_reply);
    self->ctl_reply = NULL;
    self->ctl_request = strdup (request_json);
    if (!self->ctl_request)
        return -ENOMEM;
    self->ctl_id = self->next_request_id++;
    if (self->next_request_id == 0)
        self->next_request_id = 1;
    self->ctl_done = false;

    int rc = 0;
    if (self->state == ST_READY)
        rc = s_send_ctl (self);
    /*  Otherwise the next WELCOME sends it.                               */
    int64_t deadline = s_deadline (timeout_ms);
    while (rc == 0 && !self->ctl_done)
        rc = s_pump (self, deadline);
    if (rc == 0) {
        rc = self->ctl_code;
        if (reply_p) {
            *reply_p = self->ctl_reply;
            self->ctl_reply = NULL;
        }
    }
    self->ctl_id = 0;
    free (self->ctl_request);
    self->ctl_request = NULL;
    free (self->ctl_reply);
    self->ctl_reply = NULL;
    return rc;
}

BUSD_EXPORT int
busd_ctl (busd_client_t *self, const char *request_json, char **reply_p, int timeout_ms)
{
    if (reply_p)
        *reply_p = NULL;
    if (!self)
        return -EINVAL;
    batcher_lock (&self->batcher);
    int rc = s_api_ctl (self, request_json, reply_p, timeout_ms);
    batcher_unlock (&self->batcher);
    return rc;
}

/*  ------------------------------------------------------------------------
    Utilities                                                               */

BUSD_EXPORT const char *
busd_strerror (int code)
{
    switch (code) {
        case 0:               return "success";
        case BUSD_ENOCREDIT:  return "no publisher credit (the broker is throttling)";
        case BUSD_EREJECTED:  return "a publish was rejected by the broker";
        case BUSD_ESUBEND:    return "subscription refused or ended by the broker";
        case BUSD_EPROTOCOL:  return "the broker answered with an error";
        case BUSD_ESHUTDOWN:  return "the broker is shutting down";
        case BUSD_ECLOSED:    return "client closed";
        case -ETIMEDOUT:      return "timed out (is busd running and reachable?)";
        case -ECONNRESET:     return "session with the broker lost";
        default:
            if (code < 0 && code > -4096)
                return strerror (-code);
            return "unknown error";
    }
}

#define S_STR(x) #x
#define S_XSTR(x) S_STR (x)

BUSD_EXPORT const char *
busd_version (void)
{
    return S_XSTR (BUSD_VERSION_MAJOR) "." S_XSTR (BUSD_VERSION_MINOR) "."
           S_XSTR (BUSD_VERSION_PATCH);
}
