/*  nats_bench.c — busd-bench's shapes against nats-server, through libnats
    (the NATS C client, Debian libnats-dev).

    Core NATS: publishes are buffered by libnats and flushed by its own
    flusher thread, subscribers read with natsSubscription_NextMsg; the
    client's default pending limits stay as they are (65,536 messages per
    subscription), so a subscriber that falls behind becomes a "slow
    consumer" and libnats drops events (counted exactly by the sequence
    numbers, and as client_dropped).  The publish rate counts until a
    PING/PONG after the last publish, i.e. until the server has read them.
    The round trip uses SendAsap so that a single publish is not left
    waiting for the flusher.

    --durable: JetStream.  The publisher creates a stream BENCH over
    "bench.>" with file storage and one replica, publishes with
    js_PublishAsync (at most --window unacknowledged, as busd-bench's
    publisher credit) and counts the acks; the subscribers read the subject
    live, as busd's subscribers read a topic a stream covers.               */
#include "bench_common.h"

#include <nats/nats.h>

typedef struct {
    natsConnection *nc;
    natsSubscription *sub;
    jsCtx *js;
    atomic_uint_fast64_t acked;
    atomic_uint_fast64_t failed;
    atomic_int reported;
    uint64_t sent;
    bool durable;
    const char *gone;
} nconn_t;

static void
s_on_ack (jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void) js;
    nconn_t *self = (nconn_t *) closure;
    if (pa && !pae)
        atomic_fetch_add (&self->acked, 1);
    else {
        atomic_fetch_add (&self->failed, 1);
        if (!atomic_exchange (&self->reported, 1))
            fprintf (stderr, "nats_bench: JetStream publish failed: %s (%d %s)\n",
                     pae ? natsStatus_GetText (pae->Err) : "no ack",
                     pae ? (int) pae->ErrCode : 0, pae && pae->ErrText ? pae->ErrText : "");
    }
    natsMsg_Destroy (msg);
}

static void
s_close (void *conn)
{
    nconn_t *self = (nconn_t *) conn;
    if (self->sub)
        natsSubscription_Destroy (self->sub);
    if (self->js)
        jsCtx_Destroy (self->js);
    if (self->nc)
        natsConnection_Destroy (self->nc);
    free (self);
}

static int
s_fail (nconn_t *self, const char *what, natsStatus s)
{
    fprintf (stderr, "nats_bench: %s: %s (%s)\n", what, natsStatus_GetText (s),
             nats_GetLastError (NULL) ? nats_GetLastError (NULL) : "");
    s_close (self);
    return -1;
}

static int
s_add_stream (jsCtx *js)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init (&cfg);
    const char *subjects [] = { "bench.>" };
    cfg.Name = "BENCH";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = 1;
    jsStreamInfo *info = NULL;
    jsErrCode code = 0;
    natsStatus s = js_AddStream (&info, js, &cfg, NULL, &code);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy (info);
        return 0;
    }
    fprintf (stderr, "nats_bench: creating the JetStream stream: %s (error code %d; is "
             "nats-server running with -js?)\n", natsStatus_GetText (s), (int) code);
    return -1;
}

static void *
s_open (const bc_args_t *args, bc_role_t role, const char *sub_topic)
{
    nconn_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->durable = args->durable && role == BC_ROLE_PUB;
    natsOptions *opts = NULL;
    char url [300];
    snprintf (url, sizeof url, "nats://%s:%d", args->host, args->port);
    natsStatus s = natsOptions_Create (&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL (opts, url);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout (opts, BC_SETUP_MS);
    //  No reconnect: a connection the server closed is a result to report.
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect (opts, false);
    if (s == NATS_OK && role == BC_ROLE_RTT)
        s = natsOptions_SetSendAsap (opts, true);
    if (s == NATS_OK)
        s = natsConnection_Connect (&self->nc, opts);
    natsOptions_Destroy (opts);
    if (s != NATS_OK) {
        s_fail (self, url, s);
        return NULL;
    }
    if (sub_topic) {
        s = natsConnection_SubscribeSync (&self->sub, self->nc, sub_topic);
        //  A PING/PONG after SUB: the server has the subscription.
        if (s == NATS_OK)
            s = natsConnection_FlushTimeout (self->nc, BC_SETUP_MS);
        if (s != NATS_OK) {
            s_fail (self, "subscribe", s);
            return NULL;
        }
    }
    if (self->durable) {
        jsOptions jo;
        jsOptions_Init (&jo);
        jo.PublishAsync.MaxPending = (int64_t) args->window;
        jo.PublishAsync.AckHandler = s_on_ack;
        jo.PublishAsync.AckHandlerClosure = self;
        s = natsConnection_JetStream (&self->js, self->nc, &jo);
        if (s != NATS_OK) {
            s_fail (self, "JetStream context", s);
            return NULL;
        }
        if (s_add_stream (self->js)) {
            s_close (self);
            return NULL;
        }
    }
    return self;
}

static int
s_send (void *conn, const char *topic, const void *data, size_t size)
{
    nconn_t *self = (nconn_t *) conn;
    natsStatus s;
    if (self->durable)
        //  Blocks (StallWait, then NATS_TIMEOUT) while --window are in flight.
        while ((s = js_PublishAsync (self->js, topic, data, (int) size, NULL)) == NATS_TIMEOUT)
            ;
    else
        s = natsConnection_Publish (self->nc, topic, data, (int) size);
    if (s != NATS_OK) {
        fprintf (stderr, "nats_bench: publish: %s\n", natsStatus_GetText (s));
        return -1;
    }
    self->sent++;
    return 0;
}

static int
s_recv (void *conn, unsigned char *hdr, size_t *size, int timeout_ms)
{
    nconn_t *self = (nconn_t *) conn;
    natsMsg *msg = NULL;
    natsStatus s = natsSubscription_NextMsg (&msg, self->sub, timeout_ms);
    if (s == NATS_TIMEOUT || s == NATS_SLOW_CONSUMER)
        return 0;               //  slow consumer: reported once, then more
    if (s != NATS_OK) {
        self->gone = natsStatus_GetText (s);
        return -1;
    }
    int len = natsMsg_GetDataLength (msg);
    *size = (size_t) len;
    memcpy (hdr, natsMsg_GetData (msg), len < BC_HDR_SIZE ? (size_t) len : BC_HDR_SIZE);
    natsMsg_Destroy (msg);
    return 1;
}

static int
s_finish (void *conn, uint64_t *acked)
{
    nconn_t *self = (nconn_t *) conn;
    natsStatus s;
    if (self->durable) {
        jsPubOptions po;
        jsPubOptions_Init (&po);
        po.MaxWait = 120000;
        s = js_PublishAsyncComplete (self->js, &po);
        *acked = atomic_load (&self->acked);
    }
    else {
        //  The PONG comes after the server has read every earlier PUB.
        s = natsConnection_FlushTimeout (self->nc, 120000);
        *acked = self->sent;
    }
    if (s != NATS_OK) {
        fprintf (stderr, "nats_bench: waiting for the server: %s\n", natsStatus_GetText (s));
        return -1;
    }
    return atomic_load (&self->failed) ? -1 : 0;
}

static uint64_t
s_dropped (void *conn)
{
    nconn_t *self = (nconn_t *) conn;
    int64_t n = 0;
    if (self->sub && natsSubscription_GetDropped (self->sub, &n) == NATS_OK && n > 0)
        return (uint64_t) n;
    return 0;
}

static const char *
s_gone_reason (void *conn)
{
    return ((nconn_t *) conn)->gone;
}

int
main (int argc, char *argv [])
{
    static const bc_ops_t ops = {
        .name = "nats",
        .durable_label = "JetStream: stream BENCH (bench.>), file storage, R1; "
                         "js_PublishAsync with acks",
        .open = s_open, .send = s_send, .recv = s_recv, .finish = s_finish,
        .dropped = s_dropped, .gone_reason = s_gone_reason, .close = s_close
    };
    bc_args_t args;
    int rc = bc_main (argc, argv, &ops, 4222, &args);
    if (rc >= 0)
        return rc;
    natsStatus s = nats_Open (-1);
    if (s != NATS_OK) {
        fprintf (stderr, "nats_bench: nats_Open: %s\n", natsStatus_GetText (s));
        return 1;
    }
    rc = bc_run (&args, &ops);
    nats_CloseAndWait (5000);
    return rc;
}
