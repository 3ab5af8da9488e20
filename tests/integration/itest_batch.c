/*  itest_batch.c — libbusd's transparent batching (PROTOCOL §8.2), end to
    end: libbusd clients against a real busd, and against a fake broker
    that does not offer the feature (an older busd).

    What matters to an application is that nothing changes but the speed:
    a publish followed by a pause still leaves at once (no linger timer),
    DELIVERBs come out of busd_receive one event at a time with every field
    of a DELIVER, acks coalesce into ACKBs and still all count, and a broker
    without the feature sees plain PUBs and ACKs.  The broker's counters
    (CTL stats pubb_in, deliverb_out, ackb_in) show which path was taken.  */
#include "busd/client.h"
#include "busp.h"
#include "testclient.h"

#include <cjson/cJSON.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define WAIT_MS      5000

static busd_client_t *
s_client (const char *endpoint, const char *name, bool no_batch)
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = endpoint;
    opts.client_name = name;
    opts.no_batch = no_batch;
    int err = 0;
    busd_client_t *client = busd_client_new (&opts, &err);
    ck_assert_msg (client, "connect %s: %s", name, busd_strerror (err));
    return client;
}

/*  One counter of CTL stats.                                               */
static double
s_stat (busd_client_t *client, const char *key)
{
    char *reply = NULL;
    ck_assert_int_eq (busd_ctl (client, "{\"cmd\":\"stats\"}", &reply, WAIT_MS), 200);
    cJSON *json = cJSON_Parse (reply);
    free (reply);
    cJSON *item = cJSON_GetObjectItemCaseSensitive (json, key);
    ck_assert_msg (cJSON_IsNumber (item), "stats lacks %s", key);
    double value = item->valuedouble;
    cJSON_Delete (json);
    return value;
}

START_TEST (test_pause_leaves_at_once)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = s_client (testbroker_endpoint (broker), "pause-sub", false);
    busd_client_t *pub = s_client (testbroker_endpoint (broker), "pause-pub", false);
    ck_assert (busd_client_batching (pub) && busd_client_batching (sub));
    ck_assert_int_gt (busd_subscribe (sub, "pause.#", NULL, WAIT_MS), 0);
    for (int round = 0; round < 3; round++) {
        char text [16];
        snprintf (text, sizeof text, "alone-%d", round);
        /*  One publish, then the publisher makes no call at all: the event
            must still reach the subscriber.                                */
        ck_assert_int_eq (busd_publish (pub, "pause.x", text, strlen (text), NULL, WAIT_MS), 0);
        busd_msg_t *msg = NULL;
        ck_assert_int_eq (busd_receive (sub, &msg, WAIT_MS), 0);
        ck_assert_int_eq (busd_msg_kind (msg), BUSD_MSG_DELIVER);
        ck_assert_uint_eq (busd_msg_size (msg), strlen (text));
        ck_assert_mem_eq (busd_msg_payload (msg), text, strlen (text));
        busd_msg_destroy (&msg);
    }
    /*  A burst, then no call at all: the tail of the burst sits in a
        pending PUBB that only the flusher can send — and it must.        */
    enum { BURST = 500 };
    for (int i = 0; i < BURST; i++) {
        char text [16];
        snprintf (text, sizeof text, "%d", i);
        ck_assert_int_eq (busd_publish (pub, "pause.burst", text, strlen (text), NULL, WAIT_MS), 0);
    }
    for (int i = 0; i < BURST; i++) {
        busd_msg_t *msg = NULL;
        ck_assert_int_eq (busd_receive (sub, &msg, WAIT_MS), 0);
        char text [16];
        snprintf (text, sizeof text, "%d", i);
        ck_assert_uint_eq (busd_msg_size (msg), strlen (text));
        ck_assert_mem_eq (busd_msg_payload (msg), text, strlen (text));
        busd_msg_destroy (&msg);
    }
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), 0);
    ck_assert (s_stat (pub, "pubb_in") >= 1);
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

START_TEST (test_deliverb_through_the_api)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = s_client (testbroker_endpoint (broker), "api-sub", false);
    busd_client_t *pub = s_client (testbroker_endpoint (broker), "api-pub", false);
    int64_t id = busd_subscribe (sub, "api.#", "{\"credit\": 5000, \"ack\": \"explicit\"}", WAIT_MS);
    ck_assert_int_gt (id, 0);
    enum { N = 2000 };
    for (int i = 0; i < N; i++) {
        char text [32], msg_id [32];
        snprintf (text, sizeof text, "event-%d", i);
        snprintf (msg_id, sizeof msg_id, "id-%d", i);
        busd_pub_options_t opts = { msg_id, i % 2 ? "{\"n\":\"odd\"}" : NULL };
        /*  Every tenth event is big: it travels as a plain DELIVER among
            the records and must keep its place.                           */
        if (i % 10 == 9) {
            static char big [20000];
            memset (big, 'b', sizeof big);
            memcpy (big, text, strlen (text) + 1);
            ck_assert_int_eq (busd_publish (pub, "api.big", big, sizeof big, &opts, WAIT_MS), 0);
        }
        else
            ck_assert_int_eq (busd_publish (pub, "api.small", text, strlen (text), &opts,
                                            WAIT_MS), 0);
    }
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), 0);
    for (int i = 0; i < N; i++) {
        busd_msg_t *msg = NULL;
        ck_assert_int_eq (busd_receive (sub, &msg, WAIT_MS), 0);
        ck_assert_int_eq (busd_msg_kind (msg), BUSD_MSG_DELIVER);
        char text [32], msg_id [32];
        snprintf (text, sizeof text, "event-%d", i);
        snprintf (msg_id, sizeof msg_id, "id-%d", i);
        ck_assert_uint_eq (busd_msg_sub_id (msg), (uint32_t) id);
        ck_assert_uint_eq (busd_msg_delivery_id (msg), (uint64_t) i + 1);
        ck_assert_uint_eq (busd_msg_attempt (msg), 1);
        ck_assert_str_eq (busd_msg_topic (msg), i % 10 == 9 ? "api.big" : "api.small");
        ck_assert_str_eq (busd_msg_msg_id (msg), msg_id);
        ck_assert_uint_eq (busd_msg_size (msg), i % 10 == 9 ? 20000 : strlen (text));
        ck_assert_mem_eq (busd_msg_payload (msg), text, strlen (text));
        if (i % 2)
            ck_assert_str_eq (busd_msg_headers (msg), "{\"n\":\"odd\"}");
        else
            ck_assert_ptr_null (busd_msg_headers (msg));
        ck_assert_int_gt (busd_msg_ts_us (msg), 0);
        ck_assert_int_eq (busd_ack (sub, msg), 0);
        busd_msg_destroy (&msg);
    }
    /*  The acks went as ACKBs, and every one of them counted.             */
    ck_assert (s_stat (sub, "ackb_in") >= 1);
    ck_assert (s_stat (sub, "deliverb_out") >= 1);
    ck_assert (s_stat (sub, "pubb_in") >= 1);
    ck_assert_int_eq ((int) s_stat (sub, "acks"), N);
    ck_assert_int_eq ((int) s_stat (sub, "inflight"), 0);
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

START_TEST (test_no_batch_option)
{
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    busd_client_t *sub = s_client (testbroker_endpoint (broker), "nb-sub", true);
    busd_client_t *pub = s_client (testbroker_endpoint (broker), "nb-pub", true);
    ck_assert (!busd_client_batching (pub) && !busd_client_batching (sub));
    ck_assert_int_gt (busd_subscribe (sub, "nb.#", "{\"ack\": \"explicit\"}", WAIT_MS), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq (busd_publish (pub, "nb.x", "x", 1, NULL, WAIT_MS), 0);
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), 0);
    for (int i = 0; i < 100; i++) {
        busd_msg_t *msg = NULL;
        ck_assert_int_eq (busd_receive (sub, &msg, WAIT_MS), 0);
        ck_assert_int_eq (busd_ack (sub, msg), 0);
        busd_msg_destroy (&msg);
    }
    ck_assert_int_eq ((int) s_stat (sub, "acks"), 100);
    ck_assert_int_eq ((int) s_stat (sub, "pubb_in"), 0);
    ck_assert_int_eq ((int) s_stat (sub, "deliverb_out"), 0);
    ck_assert_int_eq ((int) s_stat (sub, "ackb_in"), 0);
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    A broker without the feature: a ROUTER that speaks §1-§7 only and
    records the commands it was sent.                                       */

typedef struct {
    void *ctx;
    char endpoint [64];
    int pubs, pubbs, acks, ackbs;
    bool hello_had_features;
    volatile bool stop;
} fake_t;

static void
s_fake_send (void *sock, zmq_msg_t *rid, const busp_header_t *h, const char *body)
{
    uint8_t buf [BUSP_HEADER_MAX];
    int len = busp_encode (h, buf, sizeof buf);
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, rid);
    zmq_msg_send (&copy, sock, ZMQ_SNDMORE);
    zmq_send (sock, buf, (size_t) len, body ? ZMQ_SNDMORE : 0);
    if (body)
        zmq_send (sock, body, strlen (body), 0);
}

static void *
s_fake_broker (void *arg)
{
    fake_t *self = arg;
    void *sock = zmq_socket (self->ctx, ZMQ_ROUTER);
    int timeout = 50;
    zmq_setsockopt (sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_bind (sock, "tcp://127.0.0.1:*");
    size_t size = sizeof self->endpoint;
    zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, self->endpoint, &size);
    uint64_t delivery = 0;
    while (!self->stop) {
        zmq_msg_t frames [4];
        int n = 0;
        zmq_msg_init (&frames [0]);
        if (zmq_msg_recv (&frames [0], sock, 0) < 0) {
            zmq_msg_close (&frames [0]);
            continue;
        }
        n = 1;
        while (zmq_msg_more (&frames [n - 1]) && n < 4) {
            zmq_msg_init (&frames [n]);
            zmq_msg_recv (&frames [n], sock, 0);
            n++;
        }
        busp_header_t h;
        if (n >= 2 && busp_decode (zmq_msg_data (&frames [1]), zmq_msg_size (&frames [1]), &h, NULL) == 0) {
            switch (h.command) {
                case BUSP_HELLO: {
                    self->hello_had_features = n > 2 && strstr (zmq_msg_data (&frames [2]), "features");
                    busp_header_t w = { .command = BUSP_WELCOME, .version = 1,
                                        .name = busp_str ("old-broker"), .credit = 1000,
                                        .max_payload = 1048576 };
                    s_fake_send (sock, &frames [0], &w,
                                 "{\"session_timeout_ms\":15000,\"heartbeat_ms\":5000,"
                                 "\"dedup_window_ms\":120000,\"max_headers\":65536}");
                    break;
                }
                case BUSP_PUB: {
                    self->pubs++;
                    busp_header_t a = { .command = BUSP_PUBACK, .seq = h.seq, .credit = 1 };
                    s_fake_send (sock, &frames [0], &a, NULL);
                    break;
                }
                case BUSP_SUB: {
                    busp_header_t ok = { .command = BUSP_SUBOK, .sub_id = h.sub_id };
                    s_fake_send (sock, &frames [0], &ok, "{\"stream_seq\":0}");
                    for (int i = 0; i < 3; i++) {
                        busp_header_t d = { .command = BUSP_DELIVER, .sub_id = h.sub_id,
                                            .delivery_id = ++delivery, .attempt = 1,
                                            .topic = busp_str ("old.x") };
                        s_fake_send (sock, &frames [0], &d, "payload");
                    }
                    break;
                }
                case BUSP_ACK:
                    self->acks++;
                    break;
                case BUSP_PUBB:
                    self->pubbs++;
                    break;
                case BUSP_ACKB:
                    self->ackbs++;
                    break;
                case BUSP_PING: {
                    busp_header_t p = { .command = BUSP_PONG, .nonce = h.nonce };
                    s_fake_send (sock, &frames [0], &p, NULL);
                    break;
                }
                default:
                    break;
            }
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close (&frames [i]);
    }
    zmq_close (sock);
    return NULL;
}

START_TEST (test_old_broker)
{
    fake_t fake = { .ctx = zmq_ctx_new () };
    pthread_t thread;
    ck_assert_int_eq (pthread_create (&thread, NULL, s_fake_broker, &fake), 0);
    for (int i = 0; i < 100 && !fake.endpoint [0]; i++)
        usleep (10000);
    ck_assert (fake.endpoint [0]);
    busd_client_t *client = s_client (fake.endpoint, "new-client", false);
    ck_assert (fake.hello_had_features);
    ck_assert (!busd_client_batching (client));
    int64_t id = busd_subscribe (client, "old.#", "{\"ack\":\"explicit\"}", WAIT_MS);
    ck_assert_int_gt (id, 0);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq (busd_publish (client, "old.x", "x", 1, NULL, WAIT_MS), 0);
    ck_assert_int_eq (busd_flush (client, WAIT_MS), 0);
    for (int i = 0; i < 3; i++) {
        busd_msg_t *msg = NULL;
        ck_assert_int_eq (busd_receive (client, &msg, WAIT_MS), 0);
        ck_assert_int_eq (busd_ack (client, msg), 0);
        busd_msg_destroy (&msg);
    }
    busd_client_poll (client, 100);
    busd_client_destroy (&client);
    fake.stop = true;
    pthread_join (thread, NULL);
    zmq_ctx_term (fake.ctx);
    ck_assert_int_eq (fake.pubs, 50);
    ck_assert_int_eq (fake.acks, 3);
    ck_assert_int_eq (fake.pubbs + fake.ackbs, 0);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("batch");
    TCase *tc = tcase_create ("libbusd");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_pause_leaves_at_once);
    tcase_add_test (tc, test_deliverb_through_the_api);
    tcase_add_test (tc, test_no_batch_option);
    tcase_add_test (tc, test_old_broker);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
