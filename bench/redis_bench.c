/*  redis_bench.c — busd-bench's shapes against redis-server PUBLISH /
    SUBSCRIBE, through hiredis (Debian libhiredis-dev).

    The publisher pipelines: up to --window PUBLISH commands are sent
    before their replies are read (the way Redis clients go fast, and the
    same window as busd-bench's publisher credit); the publish rate counts
    until the last reply.  A subscribed connection cannot publish, so every
    side that does both (the round trip) has two connections.  Redis has no
    flow control towards subscribers: one that falls behind is disconnected
    at the pubsub output buffer limit (32 MB by default), and the events it
    never got are counted as lost by the sequence numbers.

    Receiving with a timeout: hiredis's socket timeout leaves the context
    unusable once it fires, so a subscriber takes replies already parsed,
    then poll()s the socket and reads what is there.                        */
#include "bench_common.h"

#include <hiredis/hiredis.h>
#include <poll.h>

typedef struct {
    redisContext *pub;                  /*  PUBLISH                         */
    redisContext *sub;                  /*  SUBSCRIBEd                      */
    bc_role_t role;
    uint64_t window;
    uint64_t sent, replied, pending;
    char gone [128];
} rconn_t;

static void
s_close (void *conn)
{
    rconn_t *self = (rconn_t *) conn;
    if (self->pub)
        redisFree (self->pub);
    if (self->sub)
        redisFree (self->sub);
    free (self);
}

static redisContext *
s_connect (const bc_args_t *args)
{
    struct timeval tv = { .tv_sec = BC_SETUP_MS / 1000, .tv_usec = 0 };
    redisContext *c = redisConnectWithTimeout (args->host, args->port, tv);
    if (!c || c->err) {
        fprintf (stderr, "redis_bench: connect to %s:%d: %s\n", args->host, args->port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree (c);
        return NULL;
    }
    return c;
}

static void *
s_open (const bc_args_t *args, bc_role_t role, const char *sub_topic)
{
    rconn_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->role = role;
    self->window = role == BC_ROLE_PUB ? args->window : 1;
    if (role != BC_ROLE_SUB && !(self->pub = s_connect (args))) {
        s_close (self);
        return NULL;
    }
    if (sub_topic) {
        if (!(self->sub = s_connect (args))) {
            s_close (self);
            return NULL;
        }
        //  The reply to SUBSCRIBE is the server's confirmation.
        redisReply *reply = redisCommand (self->sub, "SUBSCRIBE %s", sub_topic);
        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
            fprintf (stderr, "redis_bench: SUBSCRIBE %s: %s\n", sub_topic,
                     reply ? "unexpected reply" : self->sub->errstr);
            if (reply)
                freeReplyObject (reply);
            s_close (self);
            return NULL;
        }
        freeReplyObject (reply);
    }
    return self;
}

/*  Read one PUBLISH reply (blocking; it is on its way).                    */
static int
s_read_reply (rconn_t *self)
{
    void *reply = NULL;
    if (redisGetReply (self->pub, &reply) != REDIS_OK || !reply) {
        fprintf (stderr, "redis_bench: PUBLISH reply: %s\n", self->pub->errstr);
        return -1;
    }
    int bad = ((redisReply *) reply)->type == REDIS_REPLY_ERROR;
    if (bad)
        fprintf (stderr, "redis_bench: PUBLISH: %s\n", ((redisReply *) reply)->str);
    freeReplyObject (reply);
    self->pending--;
    self->replied++;
    return bad ? -1 : 0;
}

static int
s_send (void *conn, const char *topic, const void *data, size_t size)
{
    rconn_t *self = (rconn_t *) conn;
    if (redisAppendCommand (self->pub, "PUBLISH %s %b", topic, data, size) != REDIS_OK) {
        fprintf (stderr, "redis_bench: PUBLISH: %s\n", self->pub->errstr);
        return -1;
    }
    self->sent++;
    self->pending++;
    if (self->role == BC_ROLE_RTT) {
        //  Out now; then take the previous command's reply, which is
        //  already here, while this one travels.
        int done = 0;
        while (!done)
            if (redisBufferWrite (self->pub, &done) != REDIS_OK) {
                fprintf (stderr, "redis_bench: write: %s\n", self->pub->errstr);
                return -1;
            }
        while (self->pending > 1)
            if (s_read_reply (self))
                return -1;
        return 0;
    }
    //  Pipelined: redisGetReply writes everything appended, then reads.
    if (self->pending >= self->window)
        while (self->pending > self->window / 2)
            if (s_read_reply (self))
                return -1;
    return 0;
}

static int
s_recv (void *conn, unsigned char *hdr, size_t *size, int timeout_ms)
{
    rconn_t *self = (rconn_t *) conn;
    redisContext *c = self->sub;
    void *reply = NULL;
    for (int round = 0; round < 2; round++) {
        if (redisGetReplyFromReader (c, &reply) != REDIS_OK) {
            snprintf (self->gone, sizeof self->gone, "%s", c->errstr);
            return -1;
        }
        if (reply)
            break;
        if (round == 1)
            return 0;
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int rc = poll (&pfd, 1, timeout_ms);
        if (rc == 0)
            return 0;
        if (rc < 0)
            return errno == EINTR ? 0 : -1;
        if (redisBufferRead (c) != REDIS_OK) {
            snprintf (self->gone, sizeof self->gone, "%s", c->errstr);
            return -1;
        }
    }
    redisReply *r = (redisReply *) reply;
    int got = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3
    &&  r->element [0]->type == REDIS_REPLY_STRING
    &&  strcmp (r->element [0]->str, "message") == 0
    &&  r->element [2]->type == REDIS_REPLY_STRING) {
        size_t len = r->element [2]->len;
        *size = len;
        memcpy (hdr, r->element [2]->str, len < BC_HDR_SIZE ? len : BC_HDR_SIZE);
        got = 1;
    }
    freeReplyObject (reply);
    return got;
}

static int
s_finish (void *conn, uint64_t *acked)
{
    rconn_t *self = (rconn_t *) conn;
    int rc = 0;
    while (self->pending > 0 && rc == 0)
        rc = s_read_reply (self);
    *acked = self->replied;
    return rc;
}

static const char *
s_gone_reason (void *conn)
{
    rconn_t *self = (rconn_t *) conn;
    return self->gone [0] ? self->gone : NULL;
}

int
main (int argc, char *argv [])
{
    static const bc_ops_t ops = {
        .name = "redis", .durable_label = NULL,
        .open = s_open, .send = s_send, .recv = s_recv, .finish = s_finish,
        .dropped = NULL, .gone_reason = s_gone_reason, .close = s_close
    };
    bc_args_t args;
    int rc = bc_main (argc, argv, &ops, 6379, &args);
    if (rc >= 0)
        return rc;
    return bc_run (&args, &ops);
}
