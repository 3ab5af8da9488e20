/*  itest_relay.c — the core relay, end to end: libbusd clients against a
    real busd (tests/support/testbroker).

    Each test starts its own broker with the options it needs, so tests can
    run in any order and a broker bug shows up in the test that provokes
    it.  What the library would refuse locally (invalid topics, oversize
    payloads) goes through a raw DEALER speaking BUSP/1 with the shared
    codec, because the point is to check the broker's answer.  Waits are
    bounded everywhere: a broker that does not answer fails a test, never
    hangs it.                                                               */
#include "busd/client.h"
#include "busp.h"
#include "testclient.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define WAIT_MS      5000       /*  for things that must happen             */
#define QUIET_MS     300        /*  for things that must not                */

/*  ------------------------------------------------------------------------
    Helpers                                                                 */

static uint32_t
s_subscribe (busd_client_t *client, const char *pattern, const char *options)
{
    int64_t sub = busd_subscribe (client, pattern, options, WAIT_MS);
    const char *reason = "";
    if (sub < 0)
        busd_client_last_error (client, &reason);
    ck_assert_msg (sub > 0, "subscribe %s: %s (%s)", pattern, busd_strerror ((int) sub), reason);
    return (uint32_t) sub;
}

/*  The next message, which must be a DELIVER.                              */
static busd_msg_t *
s_deliver (busd_client_t *client, int timeout_ms)
{
    busd_msg_t *msg = NULL;
    int rc = busd_receive (client, &msg, timeout_ms);
    ck_assert_msg (rc == 0, "receive: %s", busd_strerror (rc));
    ck_assert_msg (busd_msg_kind (msg) == BUSD_MSG_DELIVER,
                   "expected DELIVER, got kind %d (code %u %s)", busd_msg_kind (msg),
                   busd_msg_code (msg), busd_msg_reason (msg));
    return msg;
}

/*  Nothing (more) arrives within QUIET_MS.                                 */
static void
s_assert_quiet (busd_client_t *client)
{
    busd_msg_t *msg = NULL;
    int rc = busd_receive (client, &msg, QUIET_MS);
    ck_assert_msg (rc == -ETIMEDOUT, "expected nothing, got rc %d kind %d topic %s",
                   rc, msg ? busd_msg_kind (msg) : 0, msg ? busd_msg_topic (msg) : "");
}

static void
s_publish (busd_client_t *client, const char *topic, const char *text)
{
    int rc = busd_publish (client, topic, text, strlen (text), NULL, WAIT_MS);
    ck_assert_msg (rc == 0, "publish %s: %s", topic, busd_strerror (rc));
}

static void
s_flush (busd_client_t *client)
{
    int rc = busd_flush (client, WAIT_MS);
    ck_assert_msg (rc == 0, "flush: %s", busd_strerror (rc));
}

/*  A payload that says which event it is.                                  */
static void
s_publish_seq (busd_client_t *client, const char *topic, uint64_t seq, int timeout_ms)
{
    char text [32];
    snprintf (text, sizeof (text), "%llu", (unsigned long long) seq);
    int rc = busd_publish (client, topic, text, strlen (text), NULL, timeout_ms);
    ck_assert_msg (rc == 0, "publish %s #%llu: %s", topic, (unsigned long long) seq,
                   busd_strerror (rc));
}

static uint64_t
s_payload_seq (const busd_msg_t *msg)
{
    char text [32];
    size_t size = busd_msg_size (msg);
    ck_assert_uint_lt (size, sizeof (text));
    memcpy (text, busd_msg_payload (msg), size);
    text [size] = '\0';
    return strtoull (text, NULL, 10);
}

static void
s_stop (testbroker_t **broker_p)
{
    int code = testbroker_stop (*broker_p);
    ck_assert_msg (code == 0, "busd exited with %d on SIGTERM", code);
    testbroker_destroy (broker_p);
}

/*  ------------------------------------------------------------------------
    Raw BUSP/1 peer                                                         */

typedef struct {
    void *ctx;
    void *sock;
    uint8_t frame [BUSP_HEADER_MAX];    /*  the last header received        */
    busp_header_t h;                    /*  views into frame                */
} raw_t;

static void
s_raw_send (raw_t *raw, const busp_header_t *h, const void *body, size_t size, bool has_body)
{
    uint8_t buf [BUSP_HEADER_MAX];
    int len = busp_encode (h, buf, sizeof (buf));
    ck_assert_int_gt (len, 0);
    ck_assert_int_eq (zmq_send (raw->sock, buf, (size_t) len, has_body ? ZMQ_SNDMORE : 0), len);
    if (has_body)
        ck_assert_int_eq (zmq_send (raw->sock, body, size, 0), (int) size);
}

/*  Receive one message; its header lands in raw->h.  Returns the number of
    frames, or 0 on timeout.                                                */
static int
s_raw_recv (raw_t *raw)
{
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    if (zmq_msg_recv (&frame, raw->sock, 0) < 0) {
        ck_assert_int_eq (errno, EAGAIN);
        zmq_msg_close (&frame);
        return 0;
    }
    size_t size = zmq_msg_size (&frame);
    ck_assert_uint_le (size, sizeof (raw->frame));
    memcpy (raw->frame, zmq_msg_data (&frame), size);
    int frames = 1;
    while (zmq_msg_more (&frame)) {
        zmq_msg_close (&frame);
        zmq_msg_init (&frame);
        ck_assert_int_ge (zmq_msg_recv (&frame, raw->sock, 0), 0);
        frames++;
    }
    zmq_msg_close (&frame);
    const char *why = "";
    ck_assert_msg (busp_decode (raw->frame, size, &raw->h, &why) == 0, "bad header: %s", why);
    return frames;
}

static void
s_raw_open (raw_t *raw, testbroker_t *broker)
{
    memset (raw, 0, sizeof (*raw));
    raw->ctx = zmq_ctx_new ();
    ck_assert_ptr_nonnull (raw->ctx);
    raw->sock = zmq_socket (raw->ctx, ZMQ_DEALER);
    ck_assert_ptr_nonnull (raw->sock);
    int linger = 0, timeout = WAIT_MS;
    zmq_setsockopt (raw->sock, ZMQ_LINGER, &linger, sizeof (linger));
    zmq_setsockopt (raw->sock, ZMQ_RCVTIMEO, &timeout, sizeof (timeout));
    ck_assert_int_eq (zmq_connect (raw->sock, testbroker_endpoint (broker)), 0);
    busp_header_t hello = { .command = BUSP_HELLO, .version = 1, .name = busp_str ("raw") };
    s_raw_send (raw, &hello, NULL, 0, false);
    ck_assert_int_gt (s_raw_recv (raw), 0);
    ck_assert_int_eq (raw->h.command, BUSP_WELCOME);
}

static void
s_raw_close (raw_t *raw)
{
    zmq_close (raw->sock);
    zmq_ctx_term (raw->ctx);
}

/*  ------------------------------------------------------------------------
    No broker                                                               */

START_TEST (test_no_broker)
{
    /*  A port a broker just left: nothing listens there now.               */
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    char endpoint [64];
    snprintf (endpoint, sizeof (endpoint), "%s", testbroker_endpoint (broker));
    s_stop (&broker);
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = endpoint;
    opts.connect_timeout_ms = 300;
    int err = 0;
    busd_client_t *client = busd_client_new (&opts, &err);
    ck_assert_ptr_null (client);
    ck_assert_int_eq (err, -ETIMEDOUT);
    opts.endpoint = "nonsense://x";
    client = busd_client_new (&opts, &err);
    ck_assert_ptr_null (client);
    ck_assert_int_lt (err, 0);
}
END_TEST

/*  ------------------------------------------------------------------------
    pub -> sub                                                              */

START_TEST (test_pub_sub)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    ck_assert_uint_gt (busd_client_max_payload (pub), 0);
    ck_assert_uint_gt (busd_client_pub_window (pub), 0);
    ck_assert_uint_eq (busd_client_pub_credit (pub), busd_client_pub_window (pub));
    ck_assert_ptr_nonnull (strstr (busd_client_welcome_info (pub), "heartbeat_ms"));

    uint32_t id = s_subscribe (sub, "user.*", NULL);
    ck_assert_uint_eq (id, 1);
    ck_assert_ptr_nonnull (busd_subscription_info (sub, id));

    busd_pub_options_t opts = { .msg_id = "m-1", .headers_json = "{\"k\":\"v\"}" };
    int64_t before = 0;
    {
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        before = (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    ck_assert_int_eq (busd_publish (pub, "user.created", "hello", 5, &opts, WAIT_MS), 0);
    ck_assert_int_eq (busd_publish (pub, "user.deleted", "", 0, NULL, WAIT_MS), 0);
    s_publish (pub, "order.created", "not for user.*");
    s_flush (pub);
    ck_assert_uint_eq (busd_client_accepted (pub), 3);
    ck_assert_uint_eq (busd_client_unacked (pub), 0);

    busd_msg_t *msg = s_deliver (sub, WAIT_MS);
    ck_assert_uint_eq (busd_msg_sub_id (msg), id);
    ck_assert_str_eq (busd_msg_topic (msg), "user.created");
    ck_assert_uint_eq (busd_msg_size (msg), 5);
    ck_assert_mem_eq (busd_msg_payload (msg), "hello", 5);
    ck_assert_str_eq (busd_msg_msg_id (msg), "m-1");
    ck_assert_ptr_nonnull (busd_msg_headers (msg));
    ck_assert_str_eq (busd_msg_headers (msg), "{\"k\":\"v\"}");
    ck_assert_uint_eq (busd_msg_delivery_id (msg), 1);
    ck_assert_uint_eq (busd_msg_attempt (msg), 1);
    ck_assert_uint_eq (busd_msg_stream_seq (msg), 0);
    ck_assert_int_ge (busd_msg_ts_us (msg), before - 1000000);
    busd_msg_destroy (&msg);
    ck_assert_ptr_null (msg);

    msg = s_deliver (sub, WAIT_MS);
    ck_assert_str_eq (busd_msg_topic (msg), "user.deleted");
    ck_assert_uint_eq (busd_msg_size (msg), 0);
    ck_assert_str_eq (busd_msg_msg_id (msg), "");
    ck_assert_ptr_null (busd_msg_headers (msg));
    ck_assert_uint_eq (busd_msg_delivery_id (msg), 2);
    busd_msg_destroy (&msg);
    s_assert_quiet (sub);

    /*  After UNSUB nothing more arrives for the subscription.             */
    ck_assert_int_eq (busd_unsubscribe (sub, id, WAIT_MS), 0);
    ck_assert_ptr_null (busd_subscription_info (sub, id));
    s_publish (pub, "user.created", "after unsub");
    s_flush (pub);
    s_assert_quiet (sub);
    ck_assert_int_eq (busd_unsubscribe (sub, id, WAIT_MS), -ENOENT);

    /*  A refused SUB: SUBEND's code and reason come back.                  */
    ck_assert_int_eq (busd_subscribe (sub, "user.*", "{\"bogus\": 1}", WAIT_MS), BUSD_ESUBEND);
    const char *reason = NULL;
    ck_assert_uint_eq (busd_client_last_error (sub, &reason), 400);
    ck_assert_msg (strstr (reason, "bogus"), "SUBEND reason does not name the key: %s", reason);

    /*  Control: stats counts what just happened.                           */
    char *reply = NULL;
    int code = busd_ctl (pub, "{\"cmd\":\"stats\"}", &reply, WAIT_MS);
    ck_assert_int_eq (code, 200);
    ck_assert_ptr_nonnull (reply);
    ck_assert_msg (strstr (reply, "\"accepted\""), "stats reply: %s", reply);
    ck_assert_msg (strstr (reply, "\"delivered\""), "stats reply: %s", reply);
    free (reply);
    code = busd_ctl (pub, "{\"cmd\":\"no-such-command\"}", &reply, WAIT_MS);
    ck_assert_int_eq (code, 400);
    free (reply);

    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    ck_assert_ptr_null (sub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    Wildcards                                                               */

START_TEST (test_wildcards)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);

    static const struct {
        const char *pattern;
        int expected;
    } cases [] = {
        { "user.*",          1 },   /*  user.created                        */
        { "user.#",          3 },   /*  user, user.created, user.created.v2 */
        { "#",               4 },   /*  all but $sys.x                       */
        { "*.created",       2 },   /*  user.created, order.created         */
        { "user.created.#",  2 },   /*  # matching zero tokens, and one     */
        { "*.*.v2",          1 },
        { "user",            1 },
        { "order.*.x",       0 },
        { "$sys.#",          0 },   /*  a PUB to $sys.x is refused          */
    };
    enum { NCASES = sizeof (cases) / sizeof (cases [0]) };
    uint32_t ids [NCASES];
    int got [NCASES] = { 0 };
    int total = 0;
    for (int i = 0; i < NCASES; i++) {
        ids [i] = s_subscribe (sub, cases [i].pattern, NULL);
        total += cases [i].expected;
    }
    s_publish (pub, "user", "1");
    s_publish (pub, "user.created", "2");
    s_publish (pub, "user.created.v2", "3");
    s_publish (pub, "order.created", "4");
    s_publish (pub, "$sys.x", "5");
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), BUSD_EREJECTED);

    for (int n = 0; n < total; n++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        for (int i = 0; i < NCASES; i++)
            if (ids [i] == busd_msg_sub_id (msg))
                got [i]++;
        busd_msg_destroy (&msg);
    }
    s_assert_quiet (sub);
    for (int i = 0; i < NCASES; i++)
        ck_assert_msg (got [i] == cases [i].expected, "pattern %s: %d events, expected %d",
                       cases [i].pattern, got [i], cases [i].expected);

    /*  Patterns are checked locally: '*' and '#' are whole tokens only.   */
    ck_assert_int_eq (busd_subscribe (sub, "user.cre*", NULL, WAIT_MS), -EINVAL);
    ck_assert_int_eq (busd_subscribe (sub, "#.user", NULL, WAIT_MS), -EINVAL);

    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    Fan-out                                                                 */

START_TEST (test_fanout)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    enum { NSUBS = 4, NEVENTS = 500 };
    busd_client_t *subs [NSUBS];
    for (int i = 0; i < NSUBS; i++) {
        subs [i] = testclient_new (broker, "fan", WAIT_MS);
        s_subscribe (subs [i], i % 2 ? "chat.#" : "chat.*.typing", "{\"credit\": 50}");
    }
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    for (uint64_t n = 1; n <= NEVENTS; n++)
        s_publish_seq (pub, "chat.room42.typing", n, WAIT_MS);
    s_flush (pub);
    for (int i = 0; i < NSUBS; i++) {
        for (uint64_t n = 1; n <= NEVENTS; n++) {
            busd_msg_t *msg = s_deliver (subs [i], WAIT_MS);
            ck_assert_uint_eq (s_payload_seq (msg), n);
            ck_assert_uint_eq (busd_msg_delivery_id (msg), n);
            busd_msg_destroy (&msg);
        }
        s_assert_quiet (subs [i]);
        busd_client_destroy (&subs [i]);
    }
    busd_client_destroy (&pub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    One client publishing to itself: deliveries that arrive while it waits
    for publisher credit are queued, never dropped                          */

START_TEST (test_self_loop)
{
    testbroker_t *broker = testbroker_start ("--pub-credit", "8", NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *client = testclient_new (broker, "loop", WAIT_MS);
    uint32_t id = s_subscribe (client, "loop.#", "{\"credit\": 10000}");
    enum { NEVENTS = 5000 };
    for (uint64_t n = 1; n <= NEVENTS; n++)
        s_publish_seq (client, "loop.event", n, WAIT_MS);
    s_flush (client);
    for (uint64_t n = 1; n <= NEVENTS; n++) {
        busd_msg_t *msg = s_deliver (client, WAIT_MS);
        ck_assert_uint_eq (busd_msg_sub_id (msg), id);
        ck_assert_uint_eq (s_payload_seq (msg), n);
        busd_msg_destroy (&msg);
    }
    s_assert_quiet (client);
    busd_client_destroy (&client);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    Subscriber credit                                                       */

START_TEST (test_sub_credit)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);

    /*  Initial credit 3, no automatic top-up: exactly 3 arrive.            */
    uint32_t id = s_subscribe (sub, "job.*", "{\"credit\": 3}");
    ck_assert_int_eq (busd_subscription_set_auto_credit (sub, id, false), 0);
    for (uint64_t n = 1; n <= 20; n++)
        s_publish_seq (pub, "job.run", n, WAIT_MS);
    s_flush (pub);
    uint64_t next = 1;
    for (; next <= 3; next++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        ck_assert_uint_eq (s_payload_seq (msg), next);
        busd_msg_destroy (&msg);
    }
    s_assert_quiet (sub);

    /*  Grant 5 by hand: exactly 5 more, in order.                          */
    ck_assert_int_eq (busd_credit (sub, id, 5), 0);
    for (; next <= 8; next++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        ck_assert_uint_eq (s_payload_seq (msg), next);
        busd_msg_destroy (&msg);
    }
    s_assert_quiet (sub);

    /*  Credit 0 at SUB: nothing until granted.                             */
    uint32_t id2 = s_subscribe (sub, "task.*", "{\"credit\": 0}");
    for (uint64_t n = 1; n <= 10; n++)
        s_publish_seq (pub, "task.run", n, WAIT_MS);
    s_flush (pub);
    s_assert_quiet (sub);
    ck_assert_int_eq (busd_credit (sub, id2, 4), 0);
    for (uint64_t n = 1; n <= 4; n++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        ck_assert_uint_eq (busd_msg_sub_id (msg), id2);
        ck_assert_uint_eq (s_payload_seq (msg), n);
        busd_msg_destroy (&msg);
    }
    s_assert_quiet (sub);

    /*  Back to automatic top-up on the first one: the remaining 12 flow
        through a window of 3 as they are received.                        */
    ck_assert_int_eq (busd_subscription_set_auto_credit (sub, id, true), 0);
    ck_assert_int_eq (busd_credit (sub, id, 1), 0);
    for (; next <= 20; next++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        ck_assert_uint_eq (busd_msg_sub_id (msg), id);
        ck_assert_uint_eq (s_payload_seq (msg), next);
        busd_msg_destroy (&msg);
    }
    s_assert_quiet (sub);
    ck_assert_int_eq (busd_credit (sub, 999, 1), -ENOENT);

    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    Publisher credit and PUBACK                                             */

START_TEST (test_pub_credit)
{
    testbroker_t *broker = testbroker_start ("--pub-credit", "10", NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    ck_assert_uint_eq (busd_client_pub_window (pub), 10);
    ck_assert_uint_eq (busd_client_pub_credit (pub), 10);

    /*  Credit comes back with PUBACKs: far more than the window goes out. */
    for (uint64_t n = 1; n <= 200; n++)
        s_publish_seq (pub, "nobody.listens", n, WAIT_MS);
    s_flush (pub);
    ck_assert_uint_eq (busd_client_accepted (pub), 200);
    ck_assert_uint_eq (busd_client_unacked (pub), 0);
    ck_assert_uint_eq (busd_client_pub_credit (pub), 10);

    /*  A subscriber that grants nothing, with a tiny blocking queue,
        throttles the publisher: its credit runs out and stays out.        */
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    uint32_t id = s_subscribe (sub, "slow.#",
                               "{\"credit\": 0, \"queue_limit\": 4, \"overflow\": \"block\"}");
    int sent = 0, rc = 0;
    while (sent < 100) {
        char text [16];
        snprintf (text, sizeof (text), "%d", sent + 1);
        rc = busd_publish (pub, "slow.event", text, strlen (text), NULL, 0);
        if (rc != 0)
            break;
        sent++;
        /*  Let PUBACKs in so credit the broker does return is used.       */
        busd_client_poll (pub, 10);
    }
    ck_assert_msg (rc == BUSD_ENOCREDIT, "publish: %s after %d", busd_strerror (rc), sent);
    ck_assert_int_ge (sent, 5);
    ck_assert_int_le (sent, 4 + 10 + 10);
    ck_assert_uint_eq (busd_client_pub_credit (pub), 0);
    ck_assert_int_eq (busd_publish (pub, "slow.event", "x", 1, NULL, QUIET_MS), BUSD_ENOCREDIT);
    /*  Throttled is not unacknowledged: every PUB was processed.          */
    s_flush (pub);
    ck_assert_uint_eq (busd_client_accepted (pub), 200 + (uint64_t) sent);

    /*  The subscriber drains the queue below half its limit: the withheld
        credit comes back in one PUBACK.                                   */
    ck_assert_int_eq (busd_credit (sub, id, (uint32_t) sent), 0);
    for (int n = 1; n <= sent; n++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        ck_assert_uint_eq (s_payload_seq (msg), (uint64_t) n);
        busd_msg_destroy (&msg);
    }
    rc = busd_publish (pub, "slow.event", "1", 1, NULL, WAIT_MS);
    ck_assert_msg (rc == 0, "publish after throttle lifted: %s", busd_strerror (rc));
    s_flush (pub);
    busd_client_poll (pub, 100);
    ck_assert_uint_eq (busd_client_pub_credit (pub), 10);

    busd_client_destroy (&sub);
    busd_client_destroy (&pub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    REJECT                                                                  */

typedef struct {
    int count;
    uint16_t code;
    char topic [256];
    char reason [256];
} rejects_t;

static void
s_on_reject (void *arg, uint64_t pub_seq, const char *topic, uint16_t code, const char *reason)
{
    rejects_t *rejects = arg;
    rejects->count++;
    rejects->code = code;
    snprintf (rejects->topic, sizeof (rejects->topic), "%s", topic);
    snprintf (rejects->reason, sizeof (rejects->reason), "%s", reason);
}

START_TEST (test_reject)
{
    testbroker_t *broker = testbroker_start ("--max-payload", "1024", NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    ck_assert_uint_eq (busd_client_max_payload (pub), 1024);
    rejects_t rejects = { 0 };
    busd_client_set_reject_handler (pub, s_on_reject, &rejects);

    /*  The library refuses what it can check itself.                       */
    static char big [2048];
    ck_assert_int_eq (busd_publish (pub, "a..b", "x", 1, NULL, 0), -EINVAL);
    ck_assert_int_eq (busd_publish (pub, "a.*", "x", 1, NULL, 0), -EINVAL);
    ck_assert_int_eq (busd_publish (pub, "ok", big, sizeof (big), NULL, 0), -EMSGSIZE);
    ck_assert_int_eq (busd_publish (pub, "ok", big, 1024, NULL, 0), 0);

    /*  $-topics are the broker's: 403.                                     */
    s_publish (pub, "$sys.stats", "{}");
    s_publish (pub, "fine", "ok");
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), BUSD_EREJECTED);
    ck_assert_int_eq (rejects.count, 1);
    ck_assert_uint_eq (rejects.code, 403);
    ck_assert_str_eq (rejects.topic, "$sys.stats");
    ck_assert_uint_eq (busd_client_rejected (pub), 1);
    ck_assert_uint_eq (busd_client_accepted (pub), 2);
    const char *reason = NULL;
    ck_assert_uint_eq (busd_client_last_error (pub, &reason), 403);
    ck_assert_ptr_nonnull (reason);
    /*  The flush that reported it cleared it.                              */
    s_flush (pub);

    /*  What the library would not send, a raw peer does.                   */
    raw_t raw;
    s_raw_open (&raw, broker);
    busp_header_t pubh = { .command = BUSP_PUB, .seq = 1, .topic = busp_str ("a..b") };
    s_raw_send (&raw, &pubh, "x", 1, true);
    pubh.seq = 2;
    pubh.topic = busp_str ("$dlq.x");
    s_raw_send (&raw, &pubh, "x", 1, true);
    pubh.seq = 3;
    pubh.topic = busp_str ("big");
    s_raw_send (&raw, &pubh, big, 1025, true);
    pubh.seq = 4;
    pubh.topic = busp_str ("*");
    s_raw_send (&raw, &pubh, "x", 1, true);
    pubh.seq = 5;
    pubh.topic = busp_str ("good.one");
    s_raw_send (&raw, &pubh, big, 1024, true);

    uint16_t codes [6] = { 0 };
    uint64_t acked = 0, credit = 0;
    while (acked < 5) {
        int frames = s_raw_recv (&raw);
        ck_assert_msg (frames > 0, "no PUBACK for seq 5 (acked %llu)", (unsigned long long) acked);
        if (raw.h.command == BUSP_REJECT) {
            ck_assert_uint_ge (raw.h.seq, 1);
            ck_assert_uint_le (raw.h.seq, 5);
            ck_assert_msg (raw.h.seq > acked, "REJECT %llu after PUBACK %llu covering it",
                           (unsigned long long) raw.h.seq, (unsigned long long) acked);
            codes [raw.h.seq] = raw.h.code;
        }
        else if (raw.h.command == BUSP_PUBACK) {
            ck_assert_uint_ge (raw.h.seq, acked);
            acked = raw.h.seq;
            credit += raw.h.credit;
        }
        else
            ck_abort_msg ("unexpected %s", busp_command_name (raw.h.command));
    }
    ck_assert_uint_eq (codes [1], 400);
    ck_assert_uint_eq (codes [2], 403);
    ck_assert_uint_eq (codes [3], 413);
    ck_assert_uint_eq (codes [4], 400);
    ck_assert_uint_eq (codes [5], 0);
    ck_assert_uint_eq (credit, 5);      /*  rejected PUBs return credit too  */
    s_raw_close (&raw);

    busd_client_destroy (&pub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    Broker restart                                                          */

/*  Poll until the client has said HELLO again and its subscription is
    live in the new session.                                                */
static void
s_await_recovery (busd_client_t *client, uint32_t sub_id, uint64_t reconnects)
{
    for (int i = 0; i < 200; i++) {
        if (busd_client_reconnects (client) >= reconnects
        &&  (!sub_id || busd_subscription_info (client, sub_id)))
            return;
        int rc = busd_client_poll (client, 50);
        ck_assert_msg (rc == 0, "poll: %s", busd_strerror (rc));
    }
    ck_abort_msg ("client did not recover (reconnects %llu)",
                  (unsigned long long) busd_client_reconnects (client));
}

START_TEST (test_broker_restart)
{
    /*  Short heartbeats so an idle client notices the new broker quickly.  */
    testbroker_t *broker = testbroker_start ("--heartbeat", "100", "--session-timeout", "2000",
                                             NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    uint32_t id = s_subscribe (sub, "order.#", "{\"credit\": 100}");
    for (uint64_t n = 1; n <= 5; n++)
        s_publish_seq (pub, "order.placed", n, WAIT_MS);
    s_flush (pub);
    for (uint64_t n = 1; n <= 5; n++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        ck_assert_uint_eq (s_payload_seq (msg), n);
        busd_msg_destroy (&msg);
    }

    /*  Crash.  Publishes made while the broker is down stay unacked.      */
    ck_assert_int_eq (testbroker_kill (broker), 0);
    for (uint64_t n = 6; n <= 10; n++)
        s_publish_seq (pub, "order.placed", n, 0);
    ck_assert_int_eq (busd_flush (pub, 200), -ETIMEDOUT);
    ck_assert_uint_eq (busd_client_unacked (pub), 5);

    /*  Same port, new broker: the subscriber says HELLO and re-subscribes
        under the same sub_id; then the publisher's unacked events are sent
        again and arrive.                                                   */
    ck_assert_int_eq (testbroker_restart (broker), 0);
    s_await_recovery (sub, id, 1);
    s_flush (pub);
    ck_assert_uint_eq (busd_client_reconnects (pub), 1);
    ck_assert_uint_eq (busd_client_unacked (pub), 0);
    for (uint64_t n = 6; n <= 10; n++) {
        busd_msg_t *msg = s_deliver (sub, WAIT_MS);
        ck_assert_uint_eq (busd_msg_sub_id (msg), id);
        ck_assert_uint_eq (s_payload_seq (msg), n);
        busd_msg_destroy (&msg);
    }
    s_assert_quiet (sub);

    /*  Clean shutdown (ERROR 503): calls time out while the broker is away
        instead of hanging, and both clients recover when it is back.       */
    ck_assert_int_eq (testbroker_stop (broker), 0);
    busd_client_poll (pub, 100);
    ck_assert_int_eq (busd_publish (pub, "order.placed", "x", 1, NULL, 200), BUSD_ENOCREDIT);
    busd_msg_t *msg = NULL;
    ck_assert_int_eq (busd_receive (sub, &msg, 200), -ETIMEDOUT);
    ck_assert_int_eq (testbroker_restart (broker), 0);
    s_await_recovery (sub, id, 2);
    s_publish_seq (pub, "order.placed", 11, WAIT_MS);
    s_flush (pub);
    ck_assert_uint_eq (busd_client_reconnects (pub), 2);
    msg = s_deliver (sub, WAIT_MS);
    ck_assert_uint_eq (s_payload_seq (msg), 11);
    busd_msg_destroy (&msg);

    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    Explicit acknowledgement and automatic credit                           */

START_TEST (test_explicit_ack)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    /*  Window 2: credit comes back one ACK at a time.                      */
    uint32_t id = s_subscribe (sub, "mail.*", "{\"credit\": 2, \"ack\": \"explicit\"}");
    for (uint64_t n = 1; n <= 4; n++)
        s_publish_seq (pub, "mail.send", n, WAIT_MS);
    s_flush (pub);
    busd_msg_t *first = s_deliver (sub, WAIT_MS);
    busd_msg_t *second = s_deliver (sub, WAIT_MS);
    ck_assert_uint_eq (s_payload_seq (first), 1);
    ck_assert_uint_eq (s_payload_seq (second), 2);
    s_assert_quiet (sub);           /*  receiving alone earns no credit     */

    ck_assert_int_eq (busd_ack (sub, first), 0);
    busd_msg_destroy (&first);
    busd_msg_t *third = s_deliver (sub, WAIT_MS);
    ck_assert_uint_eq (s_payload_seq (third), 3);
    s_assert_quiet (sub);

    /*  NACK for redelivery after 10 ms: its credit lets event 4 through
        first; the redelivery then waits for the next credit (ACK of 3) and
        comes back with attempt 2 under a new delivery_id.                 */
    uint64_t delivery_id = busd_msg_delivery_id (second);
    ck_assert_int_eq (busd_nack (sub, second, BUSD_NACK_RETRY, 10, "try again"), 0);
    busd_msg_destroy (&second);
    busd_msg_t *fourth = s_deliver (sub, WAIT_MS);
    ck_assert_uint_eq (s_payload_seq (fourth), 4);
    s_assert_quiet (sub);
    ck_assert_int_eq (busd_ack (sub, third), 0);
    busd_msg_destroy (&third);
    busd_msg_t *again = s_deliver (sub, WAIT_MS);
    ck_assert_uint_eq (s_payload_seq (again), 2);
    ck_assert_uint_eq (busd_msg_attempt (again), 2);
    ck_assert_uint_gt (busd_msg_delivery_id (again), delivery_id);
    ck_assert_int_eq (busd_ack (sub, again), 0);
    ck_assert_int_eq (busd_ack (sub, fourth), 0);
    busd_msg_destroy (&again);
    busd_msg_destroy (&fourth);
    s_assert_quiet (sub);

    char *reply = NULL;
    ck_assert_int_eq (busd_ctl (sub, "{\"cmd\":\"stats\"}", &reply, WAIT_MS), 200);
    ck_assert_msg (strstr (reply, "\"inflight\":0") || strstr (reply, "\"inflight\": 0"),
                   "deliveries still in flight after ACK: %s", reply);
    free (reply);
    ck_assert_int_eq (busd_unsubscribe (sub, id, WAIT_MS), 0);
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    Session expiry: a client that went quiet gets 401 and starts again      */

START_TEST (test_session_expiry)
{
    testbroker_t *broker = testbroker_start ("--heartbeat", "100", "--session-timeout", "400",
                                             NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    uint32_t id = s_subscribe (sub, "tick", NULL);
    /*  Neither client calls the library for longer than the timeout.       */
    struct timespec nap = { 1, 0 };
    nanosleep (&nap, NULL);
    s_await_recovery (sub, id, 1);
    s_publish_seq (pub, "tick", 1, WAIT_MS);
    s_flush (pub);
    ck_assert_uint_eq (busd_client_reconnects (pub), 1);
    busd_msg_t *msg = s_deliver (sub, WAIT_MS);
    ck_assert_uint_eq (busd_msg_sub_id (msg), id);
    ck_assert_uint_eq (s_payload_seq (msg), 1);
    busd_msg_destroy (&msg);
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    A silent broker (stopped, not dead): the client gives up on the session
    after session_timeout_ms and starts a new one when the broker answers   */

START_TEST (test_silent_broker)
{
    testbroker_t *broker = testbroker_start ("--heartbeat", "100", "--session-timeout", "500",
                                             NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = testclient_new (broker, "sub", WAIT_MS);
    busd_client_t *pub = testclient_new (broker, "pub", WAIT_MS);
    uint32_t id = s_subscribe (sub, "quiet.*", NULL);
    ck_assert_int_eq (kill (testbroker_pid (broker), SIGSTOP), 0);
    ck_assert_int_eq (busd_publish (pub, "quiet.x", "1", 1, NULL, 0), 0);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq (busd_client_poll (sub, 50), 0);
    /*  The publisher has heard nothing for longer than the session timeout
        too: it is waiting for a WELCOME now, with no credit.              */
    ck_assert_int_eq (busd_flush (pub, 300), -ETIMEDOUT);
    ck_assert_int_eq (busd_publish (pub, "quiet.y", "2", 1, NULL, 0), BUSD_ENOCREDIT);
    ck_assert_int_eq (kill (testbroker_pid (broker), SIGCONT), 0);
    s_await_recovery (sub, id, 1);
    s_flush (pub);
    ck_assert_uint_ge (busd_client_reconnects (pub), 1);
    busd_msg_t *msg = s_deliver (sub, WAIT_MS);
    ck_assert_str_eq (busd_msg_topic (msg), "quiet.x");
    busd_msg_destroy (&msg);
    s_assert_quiet (sub);
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    s_stop (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    One million events                                                      */

#define MILLION      1000000
#define PAYLOAD_SIZE 100

typedef struct {
    testbroker_t *broker;
    bool no_batch;
    int rc;
} publisher_t;

static void *
s_publisher (void *arg)
{
    publisher_t *self = arg;
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = testbroker_endpoint (self->broker);
    opts.client_name = "million-pub";
    opts.no_batch = self->no_batch;
    busd_client_t *pub = busd_client_new (&opts, &self->rc);
    if (!pub)
        return NULL;
    if (busd_client_batching (pub) == self->no_batch)
        self->rc = -EPROTO;
    uint8_t payload [PAYLOAD_SIZE];
    memset (payload, 'x', sizeof (payload));
    for (uint64_t n = 1; n <= MILLION && self->rc == 0; n++) {
        memcpy (payload, &n, sizeof (n));
        self->rc = busd_publish (pub, "bench.event", payload, sizeof (payload), NULL, 30000);
    }
    if (self->rc == 0)
        self->rc = busd_flush (pub, 30000);
    busd_client_destroy (&pub);
    return NULL;
}

/*  Loop index 0: both clients batch (PUBB / DELIVERB); 1: --no-batch.     */
START_TEST (test_million)
{
    bool no_batch = _i == 1;
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = testbroker_endpoint (broker);
    opts.client_name = "million-sub";
    opts.no_batch = no_batch;
    int err = 0;
    busd_client_t *sub = busd_client_new (&opts, &err);
    ck_assert_msg (sub, "subscriber: %s", busd_strerror (err));
    ck_assert (busd_client_batching (sub) == !no_batch);
    uint32_t id = s_subscribe (sub, "bench.*", "{\"credit\": 10000}");

    publisher_t publisher = { broker, no_batch, 0 };
    pthread_t thread;
    ck_assert_int_eq (pthread_create (&thread, NULL, s_publisher, &publisher), 0);
    uint64_t expected = 1;
    while (expected <= MILLION) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (sub, &msg, 30000);
        if (rc)
            break;
        if (busd_msg_kind (msg) != BUSD_MSG_DELIVER || busd_msg_sub_id (msg) != id
        ||  busd_msg_size (msg) != PAYLOAD_SIZE) {
            busd_msg_destroy (&msg);
            break;
        }
        uint64_t n;
        memcpy (&n, busd_msg_payload (msg), sizeof (n));
        busd_msg_destroy (&msg);
        if (n != expected)
            break;
        expected++;
    }
    pthread_join (thread, NULL);
    ck_assert_msg (publisher.rc == 0, "publisher: %s", busd_strerror (publisher.rc));
    ck_assert_msg (expected == MILLION + 1, "event %llu missing or out of order",
                   (unsigned long long) expected);
    s_assert_quiet (sub);

    busd_client_destroy (&sub);
    s_stop (&broker);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("relay");
    TCase *tc = tcase_create ("core");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_no_broker);
    tcase_add_test (tc, test_pub_sub);
    tcase_add_test (tc, test_wildcards);
    tcase_add_test (tc, test_fanout);
    tcase_add_test (tc, test_self_loop);
    tcase_add_test (tc, test_sub_credit);
    tcase_add_test (tc, test_pub_credit);
    tcase_add_test (tc, test_reject);
    tcase_add_test (tc, test_broker_restart);
    tcase_add_test (tc, test_explicit_ack);
    tcase_add_test (tc, test_session_expiry);
    tcase_add_test (tc, test_silent_broker);
    suite_add_tcase (suite, tc);
    TCase *big = tcase_create ("million");
    tcase_set_timeout (big, 120);
    tcase_add_loop_test (big, test_million, 0, 2);
    suite_add_tcase (suite, big);
    return suite;
}

int
main (void)
{
    SRunner *runner = srunner_create (s_suite ());
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
