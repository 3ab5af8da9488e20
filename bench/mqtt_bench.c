/*  mqtt_bench.c — busd-bench's shapes against an MQTT broker (Mosquitto),
    through libmosquitto (Debian libmosquitto-dev), MQTT 3.1.1.

    Without --durable everything is QoS 0.  With --durable publisher and
    subscribers use QoS 1: the publisher keeps at most --window PUBLISHes
    unacknowledged (as busd-bench's publisher credit) and the publish rate
    counts until the last PUBACK.  What a Mosquitto PUBACK promises is worth
    saying next to the numbers: the message is in the broker's memory, not
    on disk (persistence writes a snapshot every autosave_interval).

    Each connection is driven by its own thread with mosquitto_loop(), no
    extra network thread per client: received messages land in a small
    FIFO from the message callback and recv() takes them from there.       */
#include "bench_common.h"

#include <mosquitto.h>
#include <unistd.h>

typedef struct {
    unsigned char hdr [BC_HDR_SIZE];
    size_t size;
} item_t;

typedef struct {
    struct mosquitto *mosq;
    int qos;
    uint64_t window;
    uint64_t sent, acked;
    bool connected, subscribed, gone;
    int connack;
    item_t *fifo;
    size_t cap, head, count;
    char reason [128];
} mconn_t;

static atomic_int s_client_seq;

static void
s_on_connect (struct mosquitto *mosq, void *obj, int rc)
{
    (void) mosq;
    mconn_t *self = (mconn_t *) obj;
    self->connected = rc == 0;
    self->connack = rc;
}

static void
s_on_disconnect (struct mosquitto *mosq, void *obj, int rc)
{
    (void) mosq;
    mconn_t *self = (mconn_t *) obj;
    self->gone = true;
    snprintf (self->reason, sizeof self->reason, "disconnected: %s",
              mosquitto_strerror (rc));
}

static void
s_on_subscribe (struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
    (void) mosq;
    (void) mid;
    mconn_t *self = (mconn_t *) obj;
    self->subscribed = n > 0 && granted [0] != 0x80;
}

static void
s_on_publish (struct mosquitto *mosq, void *obj, int mid)
{
    (void) mosq;
    (void) mid;
    ((mconn_t *) obj)->acked++;
}

static void
s_on_message (struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    (void) mosq;
    mconn_t *self = (mconn_t *) obj;
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        item_t *fifo = malloc (cap * sizeof *fifo);
        if (!fifo) {
            fprintf (stderr, "mqtt_bench: out of memory\n");
            exit (1);
        }
        for (size_t i = 0; i < self->count; i++)
            fifo [i] = self->fifo [(self->head + i) % self->cap];
        free (self->fifo);
        self->fifo = fifo;
        self->cap = cap;
        self->head = 0;
    }
    item_t *item = &self->fifo [(self->head + self->count) % self->cap];
    size_t len = (size_t) msg->payloadlen;
    item->size = len;
    memcpy (item->hdr, msg->payload, len < BC_HDR_SIZE ? len : BC_HDR_SIZE);
    self->count++;
}

static void
s_close (void *conn)
{
    mconn_t *self = (mconn_t *) conn;
    if (self->mosq) {
        if (self->connected && !self->gone)
            mosquitto_disconnect (self->mosq);
        mosquitto_destroy (self->mosq);
    }
    free (self->fifo);
    free (self);
}

/*  Run the client until *flag is true, the connection is gone, or the
    setup time is over.                                                     */
static int
s_wait_for (mconn_t *self, bool *flag, const char *what)
{
    int64_t until = bc_now_ns () + (int64_t) BC_SETUP_MS * 1000000;
    while (!*flag && !self->gone && bc_now_ns () < until) {
        int rc = mosquitto_loop (self->mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf (stderr, "mqtt_bench: %s: %s\n", what, mosquitto_strerror (rc));
            return -1;
        }
    }
    if (!*flag)
        fprintf (stderr, "mqtt_bench: %s: no answer (%s)\n", what,
                 self->connack ? mosquitto_connack_string (self->connack) : "timeout");
    return *flag ? 0 : -1;
}

static void *
s_open (const bc_args_t *args, bc_role_t role, const char *sub_topic)
{
    mconn_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->qos = args->durable ? 1 : 0;
    self->window = role == BC_ROLE_PUB ? args->window : 1;
    char id [64];
    snprintf (id, sizeof id, "mqtt-bench-%d-%d", (int) getpid (),
              atomic_fetch_add (&s_client_seq, 1));
    self->mosq = mosquitto_new (id, true, self);
    if (!self->mosq) {
        fprintf (stderr, "mqtt_bench: mosquitto_new: %s\n", strerror (errno));
        s_close (self);
        return NULL;
    }
    mosquitto_int_option (self->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option (self->mosq, MOSQ_OPT_SEND_MAXIMUM,
                          (int) (args->window < 65535 ? args->window : 65535));
    mosquitto_connect_callback_set (self->mosq, s_on_connect);
    mosquitto_disconnect_callback_set (self->mosq, s_on_disconnect);
    mosquitto_subscribe_callback_set (self->mosq, s_on_subscribe);
    mosquitto_publish_callback_set (self->mosq, s_on_publish);
    mosquitto_message_callback_set (self->mosq, s_on_message);
    int rc = mosquitto_connect (self->mosq, args->host, args->port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf (stderr, "mqtt_bench: connect to %s:%d: %s\n", args->host, args->port,
                 rc == MOSQ_ERR_ERRNO ? strerror (errno) : mosquitto_strerror (rc));
        s_close (self);
        return NULL;
    }
    if (s_wait_for (self, &self->connected, "CONNACK")) {
        s_close (self);
        return NULL;
    }
    if (sub_topic) {
        rc = mosquitto_subscribe (self->mosq, NULL, sub_topic, self->qos);
        if (rc != MOSQ_ERR_SUCCESS || s_wait_for (self, &self->subscribed, "SUBACK")) {
            if (rc != MOSQ_ERR_SUCCESS)
                fprintf (stderr, "mqtt_bench: subscribe: %s\n", mosquitto_strerror (rc));
            s_close (self);
            return NULL;
        }
    }
    return self;
}

static int
s_loop (mconn_t *self, int timeout_ms)
{
    int rc = mosquitto_loop (self->mosq, timeout_ms, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (!self->gone)
            snprintf (self->reason, sizeof self->reason, "%s", mosquitto_strerror (rc));
        self->gone = true;
        return -1;
    }
    return 0;
}

static int
s_send (void *conn, const char *topic, const void *data, size_t size)
{
    mconn_t *self = (mconn_t *) conn;
    //  QoS 1: no more than the window unacknowledged.
    while (self->qos > 0 && self->sent - self->acked >= self->window)
        if (s_loop (self, 100)) {
            fprintf (stderr, "mqtt_bench: waiting for PUBACKs: %s\n", self->reason);
            return -1;
        }
    int rc = mosquitto_publish (self->mosq, NULL, topic, (int) size, data, self->qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf (stderr, "mqtt_bench: publish: %s\n", mosquitto_strerror (rc));
        return -1;
    }
    self->sent++;
    //  Now and then take in acks and finish partial writes.
    if (self->sent % 64 == 0 && s_loop (self, 0)) {
        fprintf (stderr, "mqtt_bench: %s\n", self->reason);
        return -1;
    }
    return 0;
}

static int
s_recv (void *conn, unsigned char *hdr, size_t *size, int timeout_ms)
{
    mconn_t *self = (mconn_t *) conn;
    if (self->count == 0 && !self->gone)
        s_loop (self, timeout_ms);
    if (self->count == 0)
        return self->gone ? -1 : 0;
    item_t *item = &self->fifo [self->head];
    memcpy (hdr, item->hdr, BC_HDR_SIZE);
    *size = item->size;
    self->head = (self->head + 1) % self->cap;
    self->count--;
    return 1;
}

static int
s_finish (void *conn, uint64_t *acked)
{
    mconn_t *self = (mconn_t *) conn;
    //  QoS 1: until the last PUBACK; QoS 0: until everything is written.
    int64_t progress = bc_now_ns ();
    uint64_t last = self->acked;
    while (!self->gone && (self->qos > 0 ? self->acked < self->sent
                                         : mosquitto_want_write (self->mosq))) {
        if (s_loop (self, 100))
            break;
        if (self->acked != last) {
            last = self->acked;
            progress = bc_now_ns ();
        }
        else
        if (bc_now_ns () - progress > (int64_t) 60 * 1000000000) {
            fprintf (stderr, "mqtt_bench: %" PRIu64 " PUBACKs missing after 60 s\n",
                     self->sent - self->acked);
            break;
        }
    }
    *acked = self->qos > 0 ? self->acked : self->sent;
    return *acked == self->sent ? 0 : -1;
}

static const char *
s_gone_reason (void *conn)
{
    mconn_t *self = (mconn_t *) conn;
    return self->reason [0] ? self->reason : NULL;
}

int
main (int argc, char *argv [])
{
    static const bc_ops_t ops = {
        .name = "mqtt",
        .durable_label = "QoS 1 for the publisher (PUBACK) and the subscribers",
        .open = s_open, .send = s_send, .recv = s_recv, .finish = s_finish,
        .dropped = NULL, .gone_reason = s_gone_reason, .close = s_close
    };
    bc_args_t args;
    int rc = bc_main (argc, argv, &ops, 1883, &args);
    if (rc >= 0)
        return rc;
    mosquitto_lib_init ();
    rc = bc_run (&args, &ops);
    mosquitto_lib_cleanup ();
    return rc;
}
