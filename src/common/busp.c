/*  busp.c — the BUSP/1 header-frame codec (see busp.h, PROTOCOL §1 and §3).

    Decode runs once per message the broker receives, so it is written as a
    bounds-checked cursor over the frame with one switch on the command and
    no allocation: every string comes back as a view into the caller's frame.
    A header must hold exactly its command's fields, so "too short", "str8
    overruns" and "trailing bytes" are all checked here, once, rather than by
    each consumer.  Encode mirrors decode field for field so the two cannot
    drift apart without the round-trip tests noticing.                       */
#include "busp.h"
#include "utf8.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/*  One row per known command; a NULL name marks an unknown command.  The
    frame counts come from PROTOCOL §3: a body frame where the command has
    one (optional on the wire, since a missing body means empty), and a
    headers frame on PUB and DELIVER only.                                  */
typedef struct {
    const char *name;
    uint8_t min_frames;
    uint8_t max_frames;
} command_info_t;

static const command_info_t s_commands [256] = {
    [BUSP_HELLO]    = { "HELLO",    1, 2 },
    [BUSP_WELCOME]  = { "WELCOME",  1, 2 },
    [BUSP_PUB]      = { "PUB",      1, 3 },
    [BUSP_PUBB]     = { "PUBB",     1, 2 },
    [BUSP_PUBACK]   = { "PUBACK",   1, 1 },
    [BUSP_REJECT]   = { "REJECT",   1, 1 },
    [BUSP_SUB]      = { "SUB",      1, 2 },
    [BUSP_UNSUB]    = { "UNSUB",    1, 1 },
    [BUSP_CREDIT]   = { "CREDIT",   1, 1 },
    [BUSP_ACK]      = { "ACK",      1, 1 },
    [BUSP_NACK]     = { "NACK",     1, 2 },
    [BUSP_SUBOK]    = { "SUBOK",    1, 2 },
    [BUSP_DELIVER]  = { "DELIVER",  1, 3 },
    [BUSP_GAP]      = { "GAP",      1, 1 },
    [BUSP_DELIVERB] = { "DELIVERB", 1, 2 },
    [BUSP_ACKB]     = { "ACKB",     1, 2 },
    [BUSP_SUBEND]   = { "SUBEND",   1, 1 },
    [BUSP_PING]     = { "PING",     1, 1 },
    [BUSP_PONG]     = { "PONG",     1, 1 },
    [BUSP_ERROR]    = { "ERROR",    1, 2 },  /*  body: error context (§8.1) */
    [BUSP_BYE]      = { "BYE",      1, 1 },
    [BUSP_CTL]      = { "CTL",      1, 2 },
    [BUSP_CTLREPLY] = { "CTLREPLY", 1, 2 }
};

static const char *const s_too_short = "header shorter than its command's fields";
static const char *const s_overrun   = "str8 field overruns the header frame";

/*  ------------------------------------------------------------------------
    Decoding cursor.  The first failure is remembered in `why` and turns
    every later read into a no-op, so a command's decoder is a plain list
    of reads with one check at the end.                                     */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    const char *why;
} reader_t;

static inline bool
r_need (reader_t *r, size_t n)
{
    if (r->why)
        return false;
    if ((size_t) (r->end - r->p) < n) {
        r->why = s_too_short;
        return false;
    }
    return true;
}

static inline uint8_t
r_u8 (reader_t *r)
{
    if (!r_need (r, 1))
        return 0;
    return *r->p++;
}

static inline uint16_t
r_u16 (reader_t *r)
{
    if (!r_need (r, 2))
        return 0;
    uint16_t v = (uint16_t) ((uint16_t) r->p [0] << 8 | r->p [1]);
    r->p += 2;
    return v;
}

static inline uint32_t
r_u32 (reader_t *r)
{
    if (!r_need (r, 4))
        return 0;
    uint32_t v = (uint32_t) r->p [0] << 24 | (uint32_t) r->p [1] << 16
               | (uint32_t) r->p [2] << 8  | (uint32_t) r->p [3];
    r->p += 4;
    return v;
}

static inline uint64_t
r_u64 (reader_t *r)
{
    if (!r_need (r, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | r->p [i];
    r->p += 8;
    return v;
}

static inline busp_str_t
r_str8 (reader_t *r)
{
    busp_str_t s = { NULL, 0 };
    if (!r_need (r, 1))
        return s;
    uint8_t len = *r->p++;
    if ((size_t) (r->end - r->p) < len) {
        r->why = s_overrun;
        return s;
    }
    s.data = (const char *) r->p;
    s.len = len;
    r->p += len;
    return s;
}

int
busp_decode (const void *data, size_t size, busp_header_t *h, const char **why)
{
    assert (h);
    const char *dummy;
    if (!why)
        why = &dummy;

    if (size < 2 || !data) {
        *why = "header frame shorter than 2 bytes";
        return -EPROTO;
    }
    const uint8_t *bytes = data;
    if (bytes [0] != BUSP_SIGNATURE) {
        *why = "bad signature (expected 0xB5)";
        return -EPROTO;
    }
    reader_t r = { bytes + 2, bytes + size, NULL };
    *h = (busp_header_t) { .command = bytes [1] };

    switch (h->command) {
        case BUSP_HELLO:
            h->version = r_u16 (&r);
            h->name = r_str8 (&r);
            break;
        case BUSP_WELCOME:
            h->version = r_u16 (&r);
            h->name = r_str8 (&r);
            h->credit = r_u32 (&r);
            h->max_payload = r_u32 (&r);
            break;
        case BUSP_PUB:
            h->seq = r_u64 (&r);
            h->topic = r_str8 (&r);
            h->msg_id = r_str8 (&r);
            break;
        case BUSP_PUBB:
            h->seq = r_u64 (&r);
            h->count = r_u16 (&r);
            break;
        case BUSP_DELIVERB:
        case BUSP_ACKB:
            h->count = r_u16 (&r);
            break;
        case BUSP_PUBACK:
            h->seq = r_u64 (&r);
            h->credit = r_u32 (&r);
            break;
        case BUSP_REJECT:
            h->seq = r_u64 (&r);
            h->code = r_u16 (&r);
            h->name = r_str8 (&r);
            break;
        case BUSP_SUB:
            h->sub_id = r_u32 (&r);
            h->topic = r_str8 (&r);
            break;
        case BUSP_UNSUB:
        case BUSP_SUBOK:
            h->sub_id = r_u32 (&r);
            break;
        case BUSP_CREDIT:
            h->sub_id = r_u32 (&r);
            h->credit = r_u32 (&r);
            break;
        case BUSP_ACK:
            h->sub_id = r_u32 (&r);
            h->delivery_id = r_u64 (&r);
            break;
        case BUSP_NACK:
            h->sub_id = r_u32 (&r);
            h->delivery_id = r_u64 (&r);
            h->action = r_u8 (&r);
            h->delay_ms = r_u32 (&r);
            break;
        case BUSP_DELIVER:
            h->sub_id = r_u32 (&r);
            h->delivery_id = r_u64 (&r);
            h->stream_seq = r_u64 (&r);
            h->ts_us = (int64_t) r_u64 (&r);
            h->attempt = r_u16 (&r);
            h->topic = r_str8 (&r);
            h->msg_id = r_str8 (&r);
            break;
        case BUSP_GAP:
            h->sub_id = r_u32 (&r);
            h->dropped = r_u64 (&r);
            break;
        case BUSP_SUBEND:
            h->sub_id = r_u32 (&r);
            h->code = r_u16 (&r);
            h->name = r_str8 (&r);
            break;
        case BUSP_ERROR:
            h->code = r_u16 (&r);
            h->name = r_str8 (&r);
            break;
        case BUSP_CTL:
            h->request_id = r_u32 (&r);
            break;
        case BUSP_CTLREPLY:
            h->request_id = r_u32 (&r);
            h->code = r_u16 (&r);
            break;
        case BUSP_PING:
        case BUSP_PONG:
            h->nonce = r_u64 (&r);
            break;
        case BUSP_BYE:
            break;
        default:
            *why = "unknown command";
            return -EPROTO;
    }
    if (r.why) {
        *why = r.why;
        return -EPROTO;
    }
    if (r.p != r.end) {
        *why = "trailing bytes after the command's fields";
        return -EPROTO;
    }
    return 0;
}

/*  ------------------------------------------------------------------------
    Encoding cursor.  Running out of room is remembered rather than checked
    after every field, and nothing is written past cap.                     */

typedef struct {
    uint8_t *p;
    uint8_t *end;
    bool full;
} writer_t;

static inline uint8_t *
w_take (writer_t *w, size_t n)
{
    if (w->full || (size_t) (w->end - w->p) < n) {
        w->full = true;
        return NULL;
    }
    uint8_t *at = w->p;
    w->p += n;
    return at;
}

static inline void
w_u8 (writer_t *w, uint8_t v)
{
    uint8_t *at = w_take (w, 1);
    if (at)
        at [0] = v;
}

static inline void
w_u16 (writer_t *w, uint16_t v)
{
    uint8_t *at = w_take (w, 2);
    if (at) {
        at [0] = (uint8_t) (v >> 8);
        at [1] = (uint8_t) v;
    }
}

static inline void
w_u32 (writer_t *w, uint32_t v)
{
    uint8_t *at = w_take (w, 4);
    if (at) {
        at [0] = (uint8_t) (v >> 24);
        at [1] = (uint8_t) (v >> 16);
        at [2] = (uint8_t) (v >> 8);
        at [3] = (uint8_t) v;
    }
}

static inline void
w_u64 (writer_t *w, uint64_t v)
{
    uint8_t *at = w_take (w, 8);
    if (at)
        for (int i = 7; i >= 0; i--) {
            at [i] = (uint8_t) v;
            v >>= 8;
        }
}

static inline void
w_str8 (writer_t *w, busp_str_t s)
{
    assert (s.data || s.len == 0);
    uint8_t *at = w_take (w, 1 + (size_t) s.len);
    if (at) {
        at [0] = s.len;
        if (s.len)
            memcpy (at + 1, s.data, s.len);
    }
}

int
busp_encode (const busp_header_t *h, uint8_t *buf, size_t cap)
{
    assert (h);
    assert (buf || cap == 0);
    if (!s_commands [h->command].name)
        return -EINVAL;

    writer_t w = { buf, buf + cap, false };
    w_u8 (&w, BUSP_SIGNATURE);
    w_u8 (&w, h->command);

    switch (h->command) {
        case BUSP_HELLO:
            w_u16 (&w, h->version);
            w_str8 (&w, h->name);
            break;
        case BUSP_WELCOME:
            w_u16 (&w, h->version);
            w_str8 (&w, h->name);
            w_u32 (&w, h->credit);
            w_u32 (&w, h->max_payload);
            break;
        case BUSP_PUB:
            w_u64 (&w, h->seq);
            w_str8 (&w, h->topic);
            w_str8 (&w, h->msg_id);
            break;
        case BUSP_PUBB:
            w_u64 (&w, h->seq);
            w_u16 (&w, h->count);
            break;
        case BUSP_DELIVERB:
        case BUSP_ACKB:
            w_u16 (&w, h->count);
            break;
        case BUSP_PUBACK:
            w_u64 (&w, h->seq);
            w_u32 (&w, h->credit);
            break;
        case BUSP_REJECT:
            w_u64 (&w, h->seq);
            w_u16 (&w, h->code);
            w_str8 (&w, h->name);
            break;
        case BUSP_SUB:
            w_u32 (&w, h->sub_id);
            w_str8 (&w, h->topic);
            break;
        case BUSP_UNSUB:
        case BUSP_SUBOK:
            w_u32 (&w, h->sub_id);
            break;
        case BUSP_CREDIT:
            w_u32 (&w, h->sub_id);
            w_u32 (&w, h->credit);
            break;
        case BUSP_ACK:
            w_u32 (&w, h->sub_id);
            w_u64 (&w, h->delivery_id);
            break;
        case BUSP_NACK:
            w_u32 (&w, h->sub_id);
            w_u64 (&w, h->delivery_id);
            w_u8 (&w, h->action);
            w_u32 (&w, h->delay_ms);
            break;
        case BUSP_DELIVER:
            w_u32 (&w, h->sub_id);
            w_u64 (&w, h->delivery_id);
            w_u64 (&w, h->stream_seq);
            w_u64 (&w, (uint64_t) h->ts_us);
            w_u16 (&w, h->attempt);
            w_str8 (&w, h->topic);
            w_str8 (&w, h->msg_id);
            break;
        case BUSP_GAP:
            w_u32 (&w, h->sub_id);
            w_u64 (&w, h->dropped);
            break;
        case BUSP_SUBEND:
            w_u32 (&w, h->sub_id);
            w_u16 (&w, h->code);
            w_str8 (&w, h->name);
            break;
        case BUSP_ERROR:
            w_u16 (&w, h->code);
            w_str8 (&w, h->name);
            break;
        case BUSP_CTL:
            w_u32 (&w, h->request_id);
            break;
        case BUSP_CTLREPLY:
            w_u32 (&w, h->request_id);
            w_u16 (&w, h->code);
            break;
        case BUSP_PING:
        case BUSP_PONG:
            w_u64 (&w, h->nonce);
            break;
        case BUSP_BYE:
            break;
        default:
            /*  s_commands and this switch list the same commands.         */
            assert (false);
            return -EINVAL;
    }
    if (w.full)
        return -ENOSPC;
    assert (w.p - buf <= BUSP_HEADER_MAX);
    return (int) (w.p - buf);
}

int
busp_frame_limits (uint8_t command, int *min_frames, int *max_frames)
{
    const command_info_t *info = &s_commands [command];
    if (!info->name)
        return -EINVAL;
    if (min_frames)
        *min_frames = info->min_frames;
    if (max_frames)
        *max_frames = info->max_frames;
    return 0;
}

static uint64_t
s_be (const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p [i];
    return v;
}

int
busp_error_context (const void *data, size_t size, char *buf, size_t cap)
{
    assert (buf && cap >= BUSP_ERRCTX_MAX);
    const uint8_t *b = data;
    if (!data || size < 2 || b [0] != BUSP_SIGNATURE || !s_commands [b [1]].name)
        return snprintf (buf, cap, "{\"cmd\":null}");
    /*  Field offsets from PROTOCOL §3 and §8: all follow the command byte. */
    bool sub = false, delivery = false, seq = false, request = false;
    switch (b [1]) {
        case BUSP_SUB: case BUSP_UNSUB: case BUSP_CREDIT:
            sub = true;
            break;
        case BUSP_ACK: case BUSP_NACK:
            sub = delivery = true;
            break;
        case BUSP_PUB: case BUSP_PUBB:
            seq = true;
            break;
        case BUSP_CTL:
            request = true;
            break;
        default:
            break;
    }
    int len = snprintf (buf, cap, "{\"cmd\":\"%s\"", s_commands [b [1]].name);
    if (sub && size >= 6)
        len += snprintf (buf + len, cap - (size_t) len, ",\"sub_id\":%u",
                         (unsigned) s_be (b + 2, 4));
    if (delivery && size >= 14)
        len += snprintf (buf + len, cap - (size_t) len, ",\"delivery_id\":%llu",
                         (unsigned long long) s_be (b + 6, 8));
    if (seq && size >= 10)
        len += snprintf (buf + len, cap - (size_t) len, ",\"pub_seq\":%llu",
                         (unsigned long long) s_be (b + 2, 8));
    if (request && size >= 6)
        len += snprintf (buf + len, cap - (size_t) len, ",\"request_id\":%u",
                         (unsigned) s_be (b + 2, 4));
    len += snprintf (buf + len, cap - (size_t) len, "}");
    return len;
}

const char *
busp_command_name (uint8_t command)
{
    const char *name = s_commands [command].name;
    return name ? name : "UNKNOWN";
}

busp_str_t
busp_str (const char *s)
{
    if (!s)
        return (busp_str_t) { NULL, 0 };
    //  C strings are text (reasons, names): a cut at 255 bytes must not
    //  fall inside a UTF-8 character.
    size_t len = strlen (s);
    return busp_strn (s, busp_utf8_prefix (s, len, 255));
}

busp_str_t
busp_strn (const char *data, size_t len)
{
    assert (data || len == 0);
    if (len > 255)
        len = 255;
    return (busp_str_t) { len ? data : NULL, (uint8_t) len };
}

void
busp_str_copy (busp_str_t s, char *buf)
{
    assert (buf);
    assert (s.data || s.len == 0);
    if (s.len)
        memcpy (buf, s.data, s.len);
    buf [s.len] = '\0';
}
