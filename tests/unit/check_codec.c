/*  check_codec.c — unit tests for the BUSP/1 header codec (src/common/busp.c).

    Round trips alone would pass a codec that is wrong symmetrically, so the
    wire layout is also pinned by hand-written byte strings taken from
    PROTOCOL §3: an independent client is written from that page, not from
    busp.c.  Every malformed shape the broker must answer with ERROR 400 is
    derived mechanically from a valid frame of every command (each shorter
    length, one trailing byte, a wrong signature), so a command added to
    the table is covered without new test code.                             */
#include "busp.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char s_long [256];           /*  255 'x', for maximal str8 fields    */

/*  One valid header of every command, fields set to distinctive values.   */
static busp_header_t s_samples [23];
static const size_t s_nsamples = sizeof (s_samples) / sizeof (s_samples [0]);

static void
s_init_samples (void)
{
    memset (s_long, 'x', 255);
    s_long [255] = '\0';
    busp_header_t *h = s_samples;
    *h++ = (busp_header_t) { .command = BUSP_HELLO, .version = 1,
                             .name = busp_str ("billing-7") };
    *h++ = (busp_header_t) { .command = BUSP_WELCOME, .version = 1,
                             .name = busp_str ("busd@host"), .credit = 1000,
                             .max_payload = 1048576 };
    *h++ = (busp_header_t) { .command = BUSP_PUB, .seq = 0x0102030405060708ULL,
                             .topic = busp_str ("user.created"),
                             .msg_id = busp_str ("id-42") };
    *h++ = (busp_header_t) { .command = BUSP_PUBACK, .seq = UINT64_MAX,
                             .credit = UINT32_MAX };
    *h++ = (busp_header_t) { .command = BUSP_REJECT, .seq = 7, .code = 403,
                             .name = busp_str ("system topic") };
    *h++ = (busp_header_t) { .command = BUSP_SUB, .sub_id = 0xDEADBEEF,
                             .topic = busp_str ("chat.#") };
    *h++ = (busp_header_t) { .command = BUSP_UNSUB, .sub_id = 3 };
    *h++ = (busp_header_t) { .command = BUSP_CREDIT, .sub_id = 4, .credit = 500 };
    *h++ = (busp_header_t) { .command = BUSP_ACK, .sub_id = 5,
                             .delivery_id = 0x1122334455667788ULL };
    *h++ = (busp_header_t) { .command = BUSP_NACK, .sub_id = 6, .delivery_id = 9,
                             .action = BUSP_NACK_DEADLETTER, .delay_ms = 2500 };
    *h++ = (busp_header_t) { .command = BUSP_SUBOK, .sub_id = 7 };
    *h++ = (busp_header_t) { .command = BUSP_DELIVER, .sub_id = 8,
                             .delivery_id = 10, .stream_seq = 11,
                             .ts_us = -1234567890123LL, .attempt = 65535,
                             .topic = busp_str (s_long),
                             .msg_id = busp_str (s_long) };
    *h++ = (busp_header_t) { .command = BUSP_GAP, .sub_id = 9, .dropped = 12345 };
    *h++ = (busp_header_t) { .command = BUSP_SUBEND, .sub_id = 10, .code = 200,
                             .name = busp_str ("unsubscribed") };
    *h++ = (busp_header_t) { .command = BUSP_PING, .nonce = 0xA5A5A5A5A5A5A5A5ULL };
    *h++ = (busp_header_t) { .command = BUSP_PONG, .nonce = 1 };
    *h++ = (busp_header_t) { .command = BUSP_ERROR, .code = 401,
                             .name = busp_str ("no session") };
    *h++ = (busp_header_t) { .command = BUSP_BYE };
    *h++ = (busp_header_t) { .command = BUSP_CTL, .request_id = 77 };
    *h++ = (busp_header_t) { .command = BUSP_CTLREPLY, .request_id = 78,
                             .code = 404 };
    *h++ = (busp_header_t) { .command = BUSP_PUBB, .seq = 0x1020304050607080ULL,
                             .count = 64 };
    *h++ = (busp_header_t) { .command = BUSP_DELIVERB, .count = 1024 };
    *h++ = (busp_header_t) { .command = BUSP_ACKB, .count = 65535 };
    /*  Outside a test: Check's asserts cannot report from here.           */
    if ((size_t) (h - s_samples) != s_nsamples)
        abort ();
}

static void
s_assert_str_same (busp_str_t a, busp_str_t b)
{
    ck_assert_uint_eq (a.len, b.len);
    if (a.len)
        ck_assert_mem_eq (a.data, b.data, a.len);
}

/*  Every field equal: the ones the command carries survive the round trip,
    and the ones it does not are zero on both sides.                       */
static void
s_assert_same (const busp_header_t *a, const busp_header_t *b)
{
    ck_assert_uint_eq (a->command, b->command);
    ck_assert_uint_eq (a->version, b->version);
    ck_assert_uint_eq (a->code, b->code);
    ck_assert_uint_eq (a->attempt, b->attempt);
    ck_assert_uint_eq (a->count, b->count);
    ck_assert_uint_eq (a->action, b->action);
    ck_assert_uint_eq (a->sub_id, b->sub_id);
    ck_assert_uint_eq (a->credit, b->credit);
    ck_assert_uint_eq (a->max_payload, b->max_payload);
    ck_assert_uint_eq (a->delay_ms, b->delay_ms);
    ck_assert_uint_eq (a->request_id, b->request_id);
    ck_assert_uint_eq (a->seq, b->seq);
    ck_assert_uint_eq (a->delivery_id, b->delivery_id);
    ck_assert_uint_eq (a->stream_seq, b->stream_seq);
    ck_assert_uint_eq (a->dropped, b->dropped);
    ck_assert_uint_eq (a->nonce, b->nonce);
    ck_assert_int_eq (a->ts_us, b->ts_us);
    s_assert_str_same (a->name, b->name);
    s_assert_str_same (a->topic, b->topic);
    s_assert_str_same (a->msg_id, b->msg_id);
}

/*  Encode sample i into buf and return its length.                         */
static size_t
s_encode_sample (size_t i, uint8_t *buf)
{
    int n = busp_encode (&s_samples [i], buf, BUSP_HEADER_MAX);
    ck_assert_int_ge (n, 2);
    return (size_t) n;
}

static void
s_assert_rejected (const uint8_t *buf, size_t size, const char *why_part)
{
    busp_header_t h;
    const char *why = NULL;
    ck_assert_int_eq (busp_decode (buf, size, &h, &why), -EPROTO);
    ck_assert_ptr_nonnull (why);
    ck_assert_msg (strstr (why, why_part), "why \"%s\" lacks \"%s\"", why, why_part);
}

/*  ------------------------------------------------------------------------ */

START_TEST (test_roundtrip)
{
    uint8_t buf [BUSP_HEADER_MAX];
    size_t n = s_encode_sample ((size_t) _i, buf);
    ck_assert_uint_eq (buf [0], BUSP_SIGNATURE);
    ck_assert_uint_eq (buf [1], s_samples [_i].command);
    busp_header_t h;
    memset (&h, 0xAB, sizeof h);
    const char *why = NULL;
    ck_assert_int_eq (busp_decode (buf, n, &h, &why), 0);
    s_assert_same (&s_samples [_i], &h);
}
END_TEST

START_TEST (test_roundtrip_empty_strings)
{
    /*  Zero-length str8 fields and zero numbers are legal everywhere.     */
    busp_header_t in = { .command = s_samples [_i].command };
    uint8_t buf [BUSP_HEADER_MAX];
    int n = busp_encode (&in, buf, sizeof buf);
    ck_assert_int_ge (n, 2);
    busp_header_t out;
    ck_assert_int_eq (busp_decode (buf, (size_t) n, &out, NULL), 0);
    s_assert_same (&in, &out);
}
END_TEST

START_TEST (test_encode_ignores_other_fields)
{
    /*  Fields the command does not carry must not reach the wire.  Every
        field a sample carries is non-zero, so filling its zero fields
        with junk touches only fields the command does not carry.          */
    const busp_header_t *sample = &s_samples [_i];
    busp_header_t in = *sample;
#define JUNK(field) if (!in.field) in.field = 9
    JUNK (version); JUNK (code); JUNK (attempt); JUNK (action);
    JUNK (sub_id); JUNK (credit); JUNK (max_payload); JUNK (delay_ms);
    JUNK (request_id); JUNK (seq); JUNK (delivery_id); JUNK (stream_seq);
    JUNK (dropped); JUNK (nonce); JUNK (ts_us);
#undef JUNK
    if (!in.name.len) in.name = busp_str ("n");
    if (!in.topic.len) in.topic = busp_str ("t");
    if (!in.msg_id.len) in.msg_id = busp_str ("m");

    uint8_t a [BUSP_HEADER_MAX], b [BUSP_HEADER_MAX];
    int na = busp_encode (sample, a, sizeof a);
    int nb = busp_encode (&in, b, sizeof b);
    ck_assert_int_ge (na, 2);
    ck_assert_int_eq (na, nb);
    ck_assert_mem_eq (a, b, (size_t) na);
}
END_TEST

START_TEST (test_every_shorter_length_rejected)
{
    uint8_t buf [BUSP_HEADER_MAX];
    size_t n = s_encode_sample ((size_t) _i, buf);
    for (size_t len = 2; len < n; len++) {
        busp_header_t h;
        const char *why = NULL;
        ck_assert_msg (busp_decode (buf, len, &h, &why) == -EPROTO,
                       "%s accepted at %zu of %zu bytes",
                       busp_command_name (buf [1]), len, n);
        ck_assert_ptr_nonnull (why);
    }
    s_assert_rejected (buf, 1, "shorter than 2 bytes");
    s_assert_rejected (buf, 0, "shorter than 2 bytes");
}
END_TEST

START_TEST (test_trailing_byte_rejected)
{
    uint8_t buf [BUSP_HEADER_MAX + 1];
    size_t n = s_encode_sample ((size_t) _i, buf);
    buf [n] = 0;
    s_assert_rejected (buf, n + 1, "trailing bytes");
}
END_TEST

START_TEST (test_bad_signature_rejected)
{
    uint8_t buf [BUSP_HEADER_MAX];
    size_t n = s_encode_sample ((size_t) _i, buf);
    static const uint8_t wrong [] = { 0x00, 0xB4, 0xB6, 0xFF, 0x5B };
    for (size_t k = 0; k < sizeof wrong; k++) {
        buf [0] = wrong [k];
        s_assert_rejected (buf, n, "signature");
    }
}
END_TEST

START_TEST (test_unknown_commands_rejected)
{
    size_t known = 0;
    for (int cmd = 0; cmd < 256; cmd++) {
        int lo, hi;
        bool is_known = busp_frame_limits ((uint8_t) cmd, &lo, &hi) == 0;
        /*  A plausible body so only the command byte is wrong.            */
        uint8_t buf [16] = { BUSP_SIGNATURE, (uint8_t) cmd };
        for (size_t len = 2; len <= sizeof buf; len++) {
            busp_header_t h;
            const char *why = NULL;
            int rc = busp_decode (buf, len, &h, &why);
            if (!is_known) {
                ck_assert_int_eq (rc, -EPROTO);
                ck_assert_str_eq (why, "unknown command");
            }
        }
        if (is_known) {
            known++;
            ck_assert_str_ne (busp_command_name ((uint8_t) cmd), "UNKNOWN");
        }
        else {
            ck_assert_str_eq (busp_command_name ((uint8_t) cmd), "UNKNOWN");
            busp_header_t h = { .command = (uint8_t) cmd };
            uint8_t out [BUSP_HEADER_MAX];
            ck_assert_int_eq (busp_encode (&h, out, sizeof out), -EINVAL);
        }
    }
    ck_assert_uint_eq (known, s_nsamples);
}
END_TEST

START_TEST (test_empty_frame_rejected)
{
    busp_header_t h;
    const char *why = NULL;
    ck_assert_int_eq (busp_decode (NULL, 0, &h, &why), -EPROTO);
    ck_assert_ptr_nonnull (why);
    const uint8_t one [] = { BUSP_SIGNATURE };
    ck_assert_int_eq (busp_decode (one, 1, &h, NULL), -EPROTO);
    const uint8_t sig_only [] = { BUSP_SIGNATURE, BUSP_BYE };
    ck_assert_int_eq (busp_decode (sig_only, 2, &h, NULL), 0);
    ck_assert_uint_eq (h.command, BUSP_BYE);
}
END_TEST

START_TEST (test_str8_overrun_rejected)
{
    /*  HELLO version 1, client_name claiming 5 bytes with 4 present.       */
    const uint8_t hello [] = { 0xB5, 0x01, 0x00, 0x01, 0x05, 'a', 'b', 'c', 'd' };
    s_assert_rejected (hello, sizeof hello, "overruns");
    /*  The same, claiming 255.                                            */
    const uint8_t hello255 [] = { 0xB5, 0x01, 0x00, 0x01, 0xFF, 'a' };
    s_assert_rejected (hello255, sizeof hello255, "overruns");
    /*  PUB whose msg_id overruns by one byte.                             */
    const uint8_t pub [] = { 0xB5, 0x10, 0, 0, 0, 0, 0, 0, 0, 1,
                             0x01, 'a', 0x03, 'x', 'y' };
    s_assert_rejected (pub, sizeof pub, "overruns");
    /*  PUB whose topic swallows the msg_id's length byte.                 */
    const uint8_t pub2 [] = { 0xB5, 0x10, 0, 0, 0, 0, 0, 0, 0, 1,
                              0x02, 'a', 0x00 };
    s_assert_rejected (pub2, sizeof pub2, "shorter");
    /*  ERROR whose reason overruns.                                       */
    const uint8_t err [] = { 0xB5, 0x3E, 0x01, 0x90, 0x02, 'x' };
    s_assert_rejected (err, sizeof err, "overruns");
    /*  Every str8 of every sample made one byte longer than the frame.    */
    for (size_t i = 0; i < s_nsamples; i++) {
        const busp_header_t *s = &s_samples [i];
        if (s->command == BUSP_HELLO || s->command == BUSP_REJECT
        ||  s->command == BUSP_SUBEND || s->command == BUSP_ERROR
        ||  s->command == BUSP_SUB) {
            /*  Their only str8 is last: bump its length byte.             */
            uint8_t buf [BUSP_HEADER_MAX];
            size_t n = s_encode_sample (i, buf);
            size_t at = n - 1 - (s->command == BUSP_SUB ? s->topic.len : s->name.len);
            ck_assert_uint_lt (buf [at], 255);
            buf [at]++;
            s_assert_rejected (buf, n, "overruns");
        }
    }
}
END_TEST

START_TEST (test_wire_layout)
{
    /*  Hand-written frames from PROTOCOL §3: big-endian, str8, no padding. */
    static const uint8_t hello [] = { 0xB5, 0x01, 0x00, 0x01, 0x03, 'c', 'l', 'i' };
    static const uint8_t puback [] = { 0xB5, 0x12, 1, 2, 3, 4, 5, 6, 7, 8,
                                       0x0A, 0x0B, 0x0C, 0x0D };
    static const uint8_t nack [] = { 0xB5, 0x24, 0x00, 0x00, 0x01, 0x02,
                                     0, 0, 0, 0, 0, 0, 0x03, 0x04,
                                     0x01, 0x00, 0x00, 0x27, 0x10 };
    static const uint8_t deliver [] = { 0xB5, 0x26, 0, 0, 0, 1,
                                        0, 0, 0, 0, 0, 0, 0, 2,
                                        0, 0, 0, 0, 0, 0, 0, 3,
                                        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
                                        0x00, 0x02,
                                        0x03, 'a', '.', 'b', 0x00 };
    static const uint8_t welcome [] = { 0xB5, 0x02, 0x00, 0x01, 0x01, 'B',
                                        0x00, 0x00, 0x03, 0xE8,
                                        0x00, 0x10, 0x00, 0x00 };
    static const uint8_t bye [] = { 0xB5, 0x3F };
    busp_header_t h;
    uint8_t buf [BUSP_HEADER_MAX];

    ck_assert_int_eq (busp_decode (hello, sizeof hello, &h, NULL), 0);
    ck_assert_uint_eq (h.command, BUSP_HELLO);
    ck_assert_uint_eq (h.version, 1);
    ck_assert_uint_eq (h.name.len, 3);
    ck_assert_mem_eq (h.name.data, "cli", 3);
    ck_assert_int_eq (busp_encode (&h, buf, sizeof buf), sizeof hello);
    ck_assert_mem_eq (buf, hello, sizeof hello);

    ck_assert_int_eq (busp_decode (puback, sizeof puback, &h, NULL), 0);
    ck_assert_uint_eq (h.seq, 0x0102030405060708ULL);
    ck_assert_uint_eq (h.credit, 0x0A0B0C0D);
    ck_assert_int_eq (busp_encode (&h, buf, sizeof buf), sizeof puback);
    ck_assert_mem_eq (buf, puback, sizeof puback);

    ck_assert_int_eq (busp_decode (nack, sizeof nack, &h, NULL), 0);
    ck_assert_uint_eq (h.sub_id, 0x102);
    ck_assert_uint_eq (h.delivery_id, 0x304);
    ck_assert_uint_eq (h.action, BUSP_NACK_DEADLETTER);
    ck_assert_uint_eq (h.delay_ms, 10000);
    ck_assert_int_eq (busp_encode (&h, buf, sizeof buf), sizeof nack);
    ck_assert_mem_eq (buf, nack, sizeof nack);

    ck_assert_int_eq (busp_decode (deliver, sizeof deliver, &h, NULL), 0);
    ck_assert_uint_eq (h.sub_id, 1);
    ck_assert_uint_eq (h.delivery_id, 2);
    ck_assert_uint_eq (h.stream_seq, 3);
    ck_assert_int_eq (h.ts_us, -2);
    ck_assert_uint_eq (h.attempt, 2);
    ck_assert_uint_eq (h.topic.len, 3);
    ck_assert_mem_eq (h.topic.data, "a.b", 3);
    ck_assert_uint_eq (h.msg_id.len, 0);
    ck_assert_int_eq (busp_encode (&h, buf, sizeof buf), sizeof deliver);
    ck_assert_mem_eq (buf, deliver, sizeof deliver);

    ck_assert_int_eq (busp_decode (welcome, sizeof welcome, &h, NULL), 0);
    ck_assert_uint_eq (h.credit, 1000);
    ck_assert_uint_eq (h.max_payload, 1048576);
    ck_assert_int_eq (busp_encode (&h, buf, sizeof buf), sizeof welcome);
    ck_assert_mem_eq (buf, welcome, sizeof welcome);

    ck_assert_int_eq (busp_decode (bye, sizeof bye, &h, NULL), 0);
    ck_assert_uint_eq (h.command, BUSP_BYE);
    ck_assert_int_eq (busp_encode (&h, buf, sizeof buf), 2);
}
END_TEST

START_TEST (test_decode_leaves_version_and_topic_alone)
{
    /*  Version policy and topic grammar belong to the session and topic
        layers; the codec must pass both through.                          */
    static const uint8_t hello [] = { 0xB5, 0x01, 0x00, 0x07, 0x00 };
    static const uint8_t pub [] = { 0xB5, 0x10, 0, 0, 0, 0, 0, 0, 0, 1,
                                    0x03, '.', ' ', '#', 0x00 };
    busp_header_t h;
    ck_assert_int_eq (busp_decode (hello, sizeof hello, &h, NULL), 0);
    ck_assert_uint_eq (h.version, 7);
    ck_assert_int_eq (busp_decode (pub, sizeof pub, &h, NULL), 0);
    ck_assert_uint_eq (h.topic.len, 3);
}
END_TEST

START_TEST (test_encode_capacity)
{
    uint8_t buf [BUSP_HEADER_MAX];
    for (size_t i = 0; i < s_nsamples; i++) {
        size_t n = s_encode_sample (i, buf);
        for (size_t cap = 0; cap < n; cap++) {
            uint8_t small [BUSP_HEADER_MAX + 1];
            memset (small, 0xEE, sizeof small);
            ck_assert_int_eq (busp_encode (&s_samples [i], small, cap), -ENOSPC);
            /*  Nothing written past cap.                                  */
            for (size_t k = cap; k < sizeof small; k++)
                ck_assert_uint_eq (small [k], 0xEE);
        }
        ck_assert_int_eq (busp_encode (&s_samples [i], buf, n), (int) n);
    }
}
END_TEST

START_TEST (test_header_max)
{
    /*  DELIVER with both strings at 255 bytes is the largest header.     */
    busp_header_t h = { .command = BUSP_DELIVER, .topic = busp_str (s_long),
                        .msg_id = busp_str (s_long) };
    uint8_t buf [BUSP_HEADER_MAX];
    ck_assert_int_eq (busp_encode (&h, buf, sizeof buf), BUSP_HEADER_MAX);
    h.command = BUSP_WELCOME;
    h.name = busp_str (s_long);
    ck_assert_int_lt (busp_encode (&h, buf, sizeof buf), BUSP_HEADER_MAX);
}
END_TEST

START_TEST (test_fixed_lengths)
{
    /*  Header length of each command with empty strings, from §3.         */
    static const struct { uint8_t cmd; int len; } expect [] = {
        { BUSP_HELLO, 2 + 2 + 1 },          { BUSP_WELCOME, 2 + 2 + 1 + 4 + 4 },
        { BUSP_PUB, 2 + 8 + 1 + 1 },        { BUSP_PUBACK, 2 + 8 + 4 },
        { BUSP_REJECT, 2 + 8 + 2 + 1 },     { BUSP_SUB, 2 + 4 + 1 },
        { BUSP_UNSUB, 2 + 4 },              { BUSP_CREDIT, 2 + 4 + 4 },
        { BUSP_ACK, 2 + 4 + 8 },            { BUSP_NACK, 2 + 4 + 8 + 1 + 4 },
        { BUSP_SUBOK, 2 + 4 },
        { BUSP_DELIVER, 2 + 4 + 8 + 8 + 8 + 2 + 1 + 1 },
        { BUSP_GAP, 2 + 4 + 8 },            { BUSP_SUBEND, 2 + 4 + 2 + 1 },
        { BUSP_PING, 2 + 8 },               { BUSP_PONG, 2 + 8 },
        { BUSP_ERROR, 2 + 2 + 1 },          { BUSP_BYE, 2 },
        { BUSP_CTL, 2 + 4 },                { BUSP_CTLREPLY, 2 + 4 + 2 },
        { BUSP_PUBB, 2 + 8 + 2 },           { BUSP_DELIVERB, 2 + 2 },
        { BUSP_ACKB, 2 + 2 }
    };
    ck_assert_uint_eq (sizeof expect / sizeof expect [0], s_nsamples);
    for (size_t i = 0; i < sizeof expect / sizeof expect [0]; i++) {
        busp_header_t h = { .command = expect [i].cmd };
        uint8_t buf [BUSP_HEADER_MAX];
        ck_assert_msg (busp_encode (&h, buf, sizeof buf) == expect [i].len,
                       "%s length", busp_command_name (expect [i].cmd));
    }
}
END_TEST

START_TEST (test_frame_limits)
{
    static const struct { uint8_t cmd; int lo, hi; } expect [] = {
        { BUSP_HELLO, 1, 2 },   { BUSP_WELCOME, 1, 2 }, { BUSP_PUB, 1, 3 },
        { BUSP_PUBACK, 1, 1 },  { BUSP_REJECT, 1, 1 },  { BUSP_SUB, 1, 2 },
        { BUSP_UNSUB, 1, 1 },   { BUSP_CREDIT, 1, 1 },  { BUSP_ACK, 1, 1 },
        { BUSP_NACK, 1, 2 },    { BUSP_SUBOK, 1, 2 },   { BUSP_DELIVER, 1, 3 },
        { BUSP_GAP, 1, 1 },     { BUSP_SUBEND, 1, 1 },  { BUSP_PING, 1, 1 },
        { BUSP_PONG, 1, 1 },    { BUSP_ERROR, 1, 2 },   { BUSP_BYE, 1, 1 },
        { BUSP_CTL, 1, 2 },     { BUSP_CTLREPLY, 1, 2 },
        { BUSP_PUBB, 1, 2 },    { BUSP_DELIVERB, 1, 2 }, { BUSP_ACKB, 1, 2 }
    };
    ck_assert_uint_eq (sizeof expect / sizeof expect [0], s_nsamples);
    for (size_t i = 0; i < sizeof expect / sizeof expect [0]; i++) {
        int lo = -1, hi = -1;
        ck_assert_int_eq (busp_frame_limits (expect [i].cmd, &lo, &hi), 0);
        ck_assert_msg (lo == expect [i].lo && hi == expect [i].hi,
                       "%s: %d..%d", busp_command_name (expect [i].cmd), lo, hi);
    }
    int lo = 42, hi = 42;
    ck_assert_int_eq (busp_frame_limits (0x00, &lo, &hi), -EINVAL);
    ck_assert_int_eq (busp_frame_limits (0xFF, &lo, &hi), -EINVAL);
    ck_assert_int_eq (busp_frame_limits (0x14, &lo, &hi), -EINVAL);
    ck_assert_int_eq (lo, 42);
    ck_assert_int_eq (hi, 42);
    ck_assert_int_eq (busp_frame_limits (BUSP_PUB, NULL, NULL), 0);
}
END_TEST

START_TEST (test_command_names)
{
    ck_assert_str_eq (busp_command_name (BUSP_PUB), "PUB");
    ck_assert_str_eq (busp_command_name (BUSP_CTLREPLY), "CTLREPLY");
    ck_assert_str_eq (busp_command_name (BUSP_SUBEND), "SUBEND");
    ck_assert_str_eq (busp_command_name (0x99), "UNKNOWN");
}
END_TEST

START_TEST (test_str_helpers)
{
    busp_str_t s = busp_str ("abc");
    ck_assert_uint_eq (s.len, 3);
    ck_assert_mem_eq (s.data, "abc", 3);
    s = busp_str ("");
    ck_assert_uint_eq (s.len, 0);
    s = busp_str (NULL);
    ck_assert_uint_eq (s.len, 0);
    ck_assert_ptr_null (s.data);

    char big [400];
    memset (big, 'q', sizeof big - 1);
    big [sizeof big - 1] = '\0';
    s = busp_str (big);
    ck_assert_uint_eq (s.len, 255);
    s = busp_strn (big, 256);
    ck_assert_uint_eq (s.len, 255);
    s = busp_strn (big, 255);
    ck_assert_uint_eq (s.len, 255);
    s = busp_strn ("a.b.c", 3);
    ck_assert_uint_eq (s.len, 3);

    char out [256];
    busp_str_copy (busp_strn ("a.b.c", 3), out);
    ck_assert_str_eq (out, "a.b");
    busp_str_copy (busp_str (NULL), out);
    ck_assert_str_eq (out, "");
    busp_str_copy (busp_str (big), out);
    ck_assert_uint_eq (strlen (out), 255);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("codec");
    TCase *tc = tcase_create ("roundtrip");
    tcase_add_loop_test (tc, test_roundtrip, 0, (int) s_nsamples);
    tcase_add_loop_test (tc, test_roundtrip_empty_strings, 0, (int) s_nsamples);
    tcase_add_loop_test (tc, test_encode_ignores_other_fields, 0, (int) s_nsamples);
    tcase_add_test (tc, test_wire_layout);
    tcase_add_test (tc, test_fixed_lengths);
    tcase_add_test (tc, test_header_max);
    tcase_add_test (tc, test_encode_capacity);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("malformed");
    tcase_add_loop_test (tc, test_every_shorter_length_rejected, 0, (int) s_nsamples);
    tcase_add_loop_test (tc, test_trailing_byte_rejected, 0, (int) s_nsamples);
    tcase_add_loop_test (tc, test_bad_signature_rejected, 0, (int) s_nsamples);
    tcase_add_test (tc, test_unknown_commands_rejected);
    tcase_add_test (tc, test_empty_frame_rejected);
    tcase_add_test (tc, test_str8_overrun_rejected);
    tcase_add_test (tc, test_decode_leaves_version_and_topic_alone);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("helpers");
    tcase_add_test (tc, test_frame_limits);
    tcase_add_test (tc, test_command_names);
    tcase_add_test (tc, test_str_helpers);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    s_init_samples ();
    SRunner *runner = srunner_create (s_suite ());
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
