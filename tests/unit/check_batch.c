/*  check_batch.c — unit tests for the batch records (src/common/batch.c),
    strict headers validation (src/common/headers.c) and error-context
    bodies (busp_error_context), PROTOCOL §1 and §8.

    The wire layout is pinned by hand-written bytes from §8.2; every
    malformed batch form the broker must answer with ERROR 400 as a whole
    is produced here: count 0, count above batch_max, a body above
    batch_bytes, records that stop short of the body or leave bytes over,
    and str8 / u32 sizes that overrun.                                     */
#include "busp.h"
#include "batch.h"
#include "headers.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*  Two PUB records by hand: ("a.b", "", no headers, "hi"),
    ("c", "id", {"k":"v"}, "").                                           */
static const uint8_t s_pubb [] = {
    0x03, 'a', '.', 'b',  0x00,  0, 0, 0, 0,  0, 0, 0, 2, 'h', 'i',
    0x01, 'c',  0x02, 'i', 'd',  0, 0, 0, 9, '{', '"', 'k', '"', ':', '"', 'v', '"', '}',
    0, 0, 0, 0
};

START_TEST (test_pubb_layout)
{
    busp_batch_iter_t it;
    busp_pub_rec_t rec;
    busp_batch_iter_init (&it, s_pubb, sizeof s_pubb, 2);
    ck_assert_int_eq (busp_pubb_next (&it, &rec, NULL), 1);
    ck_assert_uint_eq (rec.topic.len, 3);
    ck_assert_mem_eq (rec.topic.data, "a.b", 3);
    ck_assert_uint_eq (rec.msg_id.len, 0);
    ck_assert_uint_eq (rec.headers_size, 0);
    ck_assert_ptr_null (rec.headers);
    ck_assert_uint_eq (rec.payload_size, 2);
    ck_assert_mem_eq (rec.payload, "hi", 2);
    /*  Views into the body, never copies.                                 */
    ck_assert_ptr_eq (rec.payload, s_pubb + 13);
    ck_assert_int_eq (busp_pubb_next (&it, &rec, NULL), 1);
    ck_assert_mem_eq (rec.msg_id.data, "id", 2);
    ck_assert_uint_eq (rec.headers_size, 9);
    ck_assert_mem_eq (rec.headers, "{\"k\":\"v\"}", 9);
    ck_assert_uint_eq (rec.payload_size, 0);
    ck_assert_int_eq (busp_pubb_next (&it, &rec, NULL), 0);
    ck_assert_int_eq (busp_batch_check (BUSP_PUBB, s_pubb, sizeof s_pubb, 2, 64, 4096, NULL), 0);

    /*  And the writer produces exactly these bytes.                       */
    uint8_t buf [sizeof s_pubb];
    busp_pub_rec_t a = { busp_str ("a.b"), busp_str (""), NULL, 0, (const uint8_t *) "hi", 2 };
    busp_pub_rec_t b = { busp_str ("c"), busp_str ("id"), (const uint8_t *) "{\"k\":\"v\"}", 9,
                         NULL, 0 };
    ck_assert_uint_eq (busp_pub_rec_size (3, 0, 0, 2) + busp_pub_rec_size (1, 2, 9, 0),
                       sizeof s_pubb);
    uint8_t *at = busp_pub_rec_put (buf, &a);
    at = busp_pub_rec_put (at, &b);
    ck_assert_ptr_eq (at, buf + sizeof buf);
    ck_assert_mem_eq (buf, s_pubb, sizeof s_pubb);
}
END_TEST

START_TEST (test_pubb_parse)
{
    busp_pub_rec_t recs [64];
    ck_assert_int_eq (busp_pubb_parse (s_pubb, sizeof s_pubb, 2, 64, 4096, recs, NULL), 0);
    ck_assert_mem_eq (recs [0].topic.data, "a.b", 3);
    ck_assert_mem_eq (recs [0].payload, "hi", 2);
    ck_assert_mem_eq (recs [1].msg_id.data, "id", 2);
    ck_assert_uint_eq (recs [1].headers_size, 9);
    /*  The same rules as busp_batch_check, every truncation included.     */
    const char *why = NULL;
    ck_assert_int_eq (busp_pubb_parse (s_pubb, sizeof s_pubb, 0, 64, 4096, recs, &why), -EPROTO);
    ck_assert_int_eq (busp_pubb_parse (s_pubb, sizeof s_pubb, 65, 64, 4096, recs, &why), -EPROTO);
    ck_assert_int_eq (busp_pubb_parse (s_pubb, sizeof s_pubb, 2, 64, 10, recs, &why), -EPROTO);
    ck_assert_int_eq (busp_pubb_parse (s_pubb, sizeof s_pubb, 3, 64, 4096, recs, &why), -EPROTO);
    ck_assert_int_eq (busp_pubb_parse (s_pubb, sizeof s_pubb, 1, 64, 4096, recs, &why), -EPROTO);
    for (size_t n = 0; n < sizeof s_pubb; n++)
        ck_assert_int_eq (busp_pubb_parse (s_pubb, n, 2, 64, 4096, recs, NULL), -EPROTO);
}
END_TEST

START_TEST (test_pubb_header)
{
    static const uint8_t hdr [] = { 0xB5, 0x11, 0, 0, 0, 0, 0, 0, 0, 7, 0x00, 0x02 };
    busp_header_t h;
    ck_assert_int_eq (busp_decode (hdr, sizeof hdr, &h, NULL), 0);
    ck_assert_uint_eq (h.command, BUSP_PUBB);
    ck_assert_uint_eq (h.seq, 7);
    ck_assert_uint_eq (h.count, 2);
    static const uint8_t deliverb [] = { 0xB5, 0x28, 0x01, 0x00 };
    ck_assert_int_eq (busp_decode (deliverb, sizeof deliverb, &h, NULL), 0);
    ck_assert_uint_eq (h.count, 256);
    static const uint8_t ackb [] = { 0xB5, 0x29, 0x00, 0x03 };
    ck_assert_int_eq (busp_decode (ackb, sizeof ackb, &h, NULL), 0);
    ck_assert_uint_eq (h.command, BUSP_ACKB);
    ck_assert_uint_eq (h.count, 3);
    ck_assert_int_eq (busp_decode (ackb, 3, &h, NULL), -EPROTO);
}
END_TEST

START_TEST (test_deliverb_roundtrip)
{
    busp_deliver_rec_t in [3] = {
        { 7, 1, 0, 1700000000000000LL, 1, busp_str ("user.created"), busp_str (""),
          NULL, 0, (const uint8_t *) "{\"id\":1}", 8 },
        { 7, 2, 99, -5, 65535, busp_str ("x"), busp_str ("m-1"),
          (const uint8_t *) "{}", 2, NULL, 0 },
        { 0xFFFFFFFF, UINT64_MAX, UINT64_MAX, INT64_MIN, 3, busp_str ("y"), busp_str (""),
          NULL, 0, (const uint8_t *) "z", 1 }
    };
    uint8_t buf [512];
    uint8_t *at = buf;
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        total += busp_deliver_rec_size (in [i].topic.len, in [i].msg_id.len,
                                        in [i].headers_size, in [i].payload_size);
        at = busp_deliver_rec_put (at, &in [i]);
    }
    ck_assert_uint_eq ((size_t) (at - buf), total);
    /*  First record's fixed part by hand: sub_id, delivery_id, stream_seq. */
    static const uint8_t head [] = { 0, 0, 0, 7,  0, 0, 0, 0, 0, 0, 0, 1,  0, 0, 0, 0, 0, 0, 0, 0 };
    ck_assert_mem_eq (buf, head, sizeof head);
    ck_assert_int_eq (busp_batch_check (BUSP_DELIVERB, buf, total, 3, 64, 4096, NULL), 0);
    busp_batch_iter_t it;
    busp_batch_iter_init (&it, buf, total, 3);
    for (int i = 0; i < 3; i++) {
        busp_deliver_rec_t out;
        ck_assert_int_eq (busp_deliverb_next (&it, &out, NULL), 1);
        ck_assert_uint_eq (out.sub_id, in [i].sub_id);
        ck_assert_uint_eq (out.delivery_id, in [i].delivery_id);
        ck_assert_uint_eq (out.stream_seq, in [i].stream_seq);
        ck_assert_int_eq (out.ts_us, in [i].ts_us);
        ck_assert_uint_eq (out.attempt, in [i].attempt);
        ck_assert_uint_eq (out.topic.len, in [i].topic.len);
        ck_assert_mem_eq (out.topic.data, in [i].topic.data, out.topic.len);
        ck_assert_uint_eq (out.msg_id.len, in [i].msg_id.len);
        ck_assert_uint_eq (out.headers_size, in [i].headers_size);
        ck_assert_uint_eq (out.payload_size, in [i].payload_size);
        if (out.payload_size)
            ck_assert_mem_eq (out.payload, in [i].payload, out.payload_size);
    }
    busp_deliver_rec_t out;
    ck_assert_int_eq (busp_deliverb_next (&it, &out, NULL), 0);
}
END_TEST

START_TEST (test_ackb)
{
    uint8_t buf [3 * BUSP_ACK_REC_SIZE];
    uint8_t *at = busp_ack_rec_put (buf, 1, 2);
    at = busp_ack_rec_put (at, 0x01020304, 0x0506070809101112ULL);
    at = busp_ack_rec_put (at, 9, 10);
    ck_assert_ptr_eq (at, buf + sizeof buf);
    static const uint8_t first [] = { 0, 0, 0, 1,  0, 0, 0, 0, 0, 0, 0, 2 };
    ck_assert_mem_eq (buf, first, sizeof first);
    ck_assert_int_eq (busp_batch_check (BUSP_ACKB, buf, sizeof buf, 3, 64, 4096, NULL), 0);
    busp_batch_iter_t it;
    busp_ack_rec_t rec;
    busp_batch_iter_init (&it, buf, sizeof buf, 3);
    ck_assert_int_eq (busp_ackb_next (&it, &rec, NULL), 1);
    ck_assert_int_eq (busp_ackb_next (&it, &rec, NULL), 1);
    ck_assert_uint_eq (rec.sub_id, 0x01020304);
    ck_assert_uint_eq (rec.delivery_id, 0x0506070809101112ULL);
    ck_assert_int_eq (busp_ackb_next (&it, &rec, NULL), 1);
    ck_assert_int_eq (busp_ackb_next (&it, &rec, NULL), 0);
    const char *why = NULL;
    ck_assert_int_eq (busp_batch_check (BUSP_ACKB, buf, sizeof buf, 2, 64, 4096, &why), -EPROTO);
    ck_assert_ptr_nonnull (why);
    ck_assert_int_eq (busp_batch_check (BUSP_ACKB, buf, sizeof buf, 4, 64, 4096, &why), -EPROTO);
    ck_assert_int_eq (busp_batch_check (BUSP_ACKB, buf, sizeof buf - 1, 3, 64, 4096, &why), -EPROTO);
    ck_assert_int_eq (busp_batch_check (BUSP_ACKB, NULL, 0, 0, 64, 4096, &why), -EPROTO);
}
END_TEST

static void
s_assert_bad (uint8_t cmd, const void *body, size_t size, uint16_t count, const char *part)
{
    const char *why = NULL;
    ck_assert_int_eq (busp_batch_check (cmd, body, size, count, 64, 4096, &why), -EPROTO);
    ck_assert_ptr_nonnull (why);
    ck_assert_msg (strstr (why, part), "why \"%s\" lacks \"%s\"", why, part);
}

START_TEST (test_malformed_batches)
{
    /*  count 0, count above batch_max, body above batch_bytes.           */
    s_assert_bad (BUSP_PUBB, s_pubb, sizeof s_pubb, 0, "count is 0");
    s_assert_bad (BUSP_PUBB, s_pubb, sizeof s_pubb, 65, "batch_max");
    const char *why;
    ck_assert_int_eq (busp_batch_check (BUSP_PUBB, s_pubb, sizeof s_pubb, 2, 64,
                                        sizeof s_pubb - 1, &why), -EPROTO);
    ck_assert_ptr_nonnull (strstr (why, "batch_bytes"));
    /*  Fewer records in the body than counted; more than counted.         */
    s_assert_bad (BUSP_PUBB, s_pubb, sizeof s_pubb, 3, "ends before");
    s_assert_bad (BUSP_PUBB, s_pubb, sizeof s_pubb, 1, "left");
    /*  Every truncation of the body is malformed for count 2.             */
    for (size_t n = 0; n < sizeof s_pubb; n++) {
        ck_assert_int_eq (busp_batch_check (BUSP_PUBB, s_pubb, n, 2, 64, 4096, NULL), -EPROTO);
        ck_assert_int_eq (busp_batch_check (BUSP_PUBB, s_pubb, n, 1, 64, 4096, NULL),
                          n == 15 ? 0 : -EPROTO);
    }
    /*  One trailing byte.                                                 */
    uint8_t longer [sizeof s_pubb + 1];
    memcpy (longer, s_pubb, sizeof s_pubb);
    longer [sizeof s_pubb] = 0;
    s_assert_bad (BUSP_PUBB, longer, sizeof longer, 2, "left");
    /*  A str8 that overruns the body; a u32 size that overruns it, huge
        sizes included (no wrap-around).                                   */
    uint8_t bad [sizeof s_pubb];
    memcpy (bad, s_pubb, sizeof bad);
    bad [0] = 0xFF;
    s_assert_bad (BUSP_PUBB, bad, sizeof bad, 2, "overruns");
    static const uint32_t sizes [] = { 3, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFF0 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes [0]; i++) {
        memcpy (bad, s_pubb, sizeof bad);
        bad [9] = (uint8_t) (sizes [i] >> 24);
        bad [10] = (uint8_t) (sizes [i] >> 16);
        bad [11] = (uint8_t) (sizes [i] >> 8);
        bad [12] = (uint8_t) sizes [i];
        ck_assert_int_eq (busp_batch_check (BUSP_PUBB, bad, sizeof bad, 2, 64, 4096, NULL), -EPROTO);
        memcpy (bad, s_pubb, sizeof bad);
        bad [5] = 0xFF;     /*  headers_size of the first record          */
        ck_assert_int_eq (busp_batch_check (BUSP_PUBB, bad, sizeof bad, 2, 64, 4096, NULL), -EPROTO);
    }
    /*  Empty body with a count.                                           */
    s_assert_bad (BUSP_PUBB, NULL, 0, 1, "ends before");
    s_assert_bad (BUSP_DELIVERB, s_pubb, 10, 1, "overruns");
    s_assert_bad (BUSP_PUB, s_pubb, sizeof s_pubb, 2, "not a batch");
}
END_TEST

/*  ------------------------------------------------------------------------ */

static void
s_headers_ok (const char *text)
{
    const char *why = NULL;
    ck_assert_msg (busp_headers_check (text, strlen (text), &why) == 0,
                   "rejected %s: %s", text, why ? why : "");
}

static void
s_headers_bad (const void *data, size_t size)
{
    const char *why = NULL;
    ck_assert_msg (busp_headers_check (data, size, &why) == -EINVAL, "accepted %.*s",
                   (int) size, (const char *) data);
    ck_assert_ptr_nonnull (why);
}

#define BAD(literal) s_headers_bad (literal, sizeof (literal) - 1)

START_TEST (test_headers_valid)
{
    s_headers_ok ("{}");
    s_headers_ok (" {\t}\r\n");
    s_headers_ok ("{\"a\":\"b\"}");
    s_headers_ok ("{ \"a\" : \"b\" , \"c\" : \"\" }");
    s_headers_ok ("{\"x-reason\":\"max_deliver 5 reached\",\"x-attempts\":\"5\"}");
    s_headers_ok ("{\"e\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00\"}");
    s_headers_ok ("{\"caf\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}");
    s_headers_ok ("{\"a\":\"1\",\"a\":\"2\"}");
}
END_TEST

START_TEST (test_headers_invalid)
{
    BAD ("");
    BAD (" ");
    BAD ("{\"a\":\"b\"}xyz");
    BAD ("{\"a\":\"b\"}{}");
    BAD ("{\"a\":\"b\"} x");
    BAD ("[]");
    BAD ("\"a\"");
    BAD ("null");
    BAD ("{");
    BAD ("{\"a\"}");
    BAD ("{\"a\":}");
    BAD ("{\"a\":1}");
    BAD ("{\"a\":true}");
    BAD ("{\"a\":null}");
    BAD ("{\"a\":{}}");
    BAD ("{\"a\":[\"b\"]}");
    BAD ("{\"a\":\"b\",}");
    BAD ("{,}");
    BAD ("{a:\"b\"}");
    BAD ("{'a':'b'}");
    BAD ("{\"a\":\"b\" \"c\":\"d\"}");
    BAD ("{\"a\":\"b");
    BAD ("{\"a\":\"\\x\"}");
    BAD ("{\"a\":\"\\u12\"}");
    BAD ("{\"a\":\"\\ud83d\"}");
    BAD ("{\"a\":\"\\ude00\"}");
    BAD ("{\"a\":\"tab\there\"}");
    /*  Invalid UTF-8: stray continuation, overlong, surrogate, > U+10FFFF,
        truncated sequence, 0xFF.                                          */
    BAD ("{\"a\":\"\x80\"}");
    BAD ("{\"a\":\"\xc0\xaf\"}");
    BAD ("{\"a\":\"\xe0\x80\xaf\"}");
    BAD ("{\"a\":\"\xed\xa0\x80\"}");
    BAD ("{\"a\":\"\xf4\x90\x80\x80\"}");
    BAD ("{\"a\":\"\xe2\x82\"}");
    BAD ("{\"\xff\":\"b\"}");
    static const char nul [] = { '{', '"', 'a', '"', ':', '"', 0, '"', '}' };
    s_headers_bad (nul, sizeof nul);
    s_headers_bad (NULL, 0);
}
END_TEST

/*  ------------------------------------------------------------------------ */

static void
s_ctx (const uint8_t *frame, size_t size, const char *expect)
{
    char buf [BUSP_ERRCTX_MAX];
    int n = busp_error_context (frame, size, buf, sizeof buf);
    ck_assert_int_eq (n, (int) strlen (expect));
    ck_assert_str_eq (buf, expect);
}

START_TEST (test_error_context)
{
    static const uint8_t sub [] = { 0xB5, 0x20, 0, 0, 0, 7, 0x01, 'a' };
    s_ctx (sub, sizeof sub, "{\"cmd\":\"SUB\",\"sub_id\":7}");
    /*  A known command whose header did not parse is still named, with
        the fields it is long enough to hold.                              */
    static const uint8_t sub_bad [] = { 0xB5, 0x20, 0, 0, 0, 7, 0x09, 'a' };
    s_ctx (sub_bad, sizeof sub_bad, "{\"cmd\":\"SUB\",\"sub_id\":7}");
    static const uint8_t sub_short [] = { 0xB5, 0x20, 0, 0 };
    s_ctx (sub_short, sizeof sub_short, "{\"cmd\":\"SUB\"}");
    static const uint8_t ack [] = { 0xB5, 0x23, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x01, 0x00 };
    s_ctx (ack, sizeof ack, "{\"cmd\":\"ACK\",\"sub_id\":2,\"delivery_id\":256}");
    static const uint8_t nack [] = { 0xB5, 0x24, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0 };
    s_ctx (nack, sizeof nack, "{\"cmd\":\"NACK\",\"sub_id\":2,\"delivery_id\":5}");
    static const uint8_t pub [] = { 0xB5, 0x10, 0, 0, 0, 0, 0, 0, 0, 9, 0x01, 'a', 0x00 };
    s_ctx (pub, sizeof pub, "{\"cmd\":\"PUB\",\"pub_seq\":9}");
    static const uint8_t pubb [] = { 0xB5, 0x11, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0 };
    s_ctx (pubb, sizeof pubb, "{\"cmd\":\"PUBB\",\"pub_seq\":3}");
    static const uint8_t ctl [] = { 0xB5, 0x40, 0, 0, 0x01, 0x00 };
    s_ctx (ctl, sizeof ctl, "{\"cmd\":\"CTL\",\"request_id\":256}");
    static const uint8_t credit [] = { 0xB5, 0x22, 0, 0, 0, 4, 0, 0, 0, 1 };
    s_ctx (credit, sizeof credit, "{\"cmd\":\"CREDIT\",\"sub_id\":4}");
    static const uint8_t ping [] = { 0xB5, 0x30, 0, 0, 0, 0, 0, 0, 0, 1 };
    s_ctx (ping, sizeof ping, "{\"cmd\":\"PING\"}");
    static const uint8_t ackb [] = { 0xB5, 0x29, 0, 1 };
    s_ctx (ackb, sizeof ackb, "{\"cmd\":\"ACKB\"}");
    /*  Unknown command, bad signature, too short: cmd null.               */
    static const uint8_t unknown [] = { 0xB5, 0x77, 1, 2, 3, 4 };
    s_ctx (unknown, sizeof unknown, "{\"cmd\":null}");
    static const uint8_t badsig [] = { 0xB4, 0x20, 0, 0, 0, 7 };
    s_ctx (badsig, sizeof badsig, "{\"cmd\":null}");
    s_ctx (badsig, 1, "{\"cmd\":null}");
    s_ctx (NULL, 0, "{\"cmd\":null}");
    /*  The largest context fits BUSP_ERRCTX_MAX.                          */
    static const uint8_t big [] = { 0xB5, 0x23, 0xFF, 0xFF, 0xFF, 0xFF,
                                    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    s_ctx (big, sizeof big, "{\"cmd\":\"ACK\",\"sub_id\":4294967295,\"delivery_id\":18446744073709551615}");
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("batch");
    TCase *tc = tcase_create ("records");
    tcase_add_test (tc, test_pubb_layout);
    tcase_add_test (tc, test_pubb_header);
    tcase_add_test (tc, test_pubb_parse);
    tcase_add_test (tc, test_deliverb_roundtrip);
    tcase_add_test (tc, test_ackb);
    tcase_add_test (tc, test_malformed_batches);
    suite_add_tcase (suite, tc);
    tc = tcase_create ("headers");
    tcase_add_test (tc, test_headers_valid);
    tcase_add_test (tc, test_headers_invalid);
    suite_add_tcase (suite, tc);
    tc = tcase_create ("errctx");
    tcase_add_test (tc, test_error_context);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
