/*  batch.c — PUBB / DELIVERB / ACKB records (see batch.h, PROTOCOL §8.2).

    Every read is bounds-checked against the end of the body before it is
    made, and 32-bit sizes are compared against what is left rather than
    added to a pointer, so a hostile size can neither wrap nor overrun.     */
#include "batch.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <string.h>

static const char *const s_overrun  = "a record overruns the batch body";
static const char *const s_leftover = "bytes left in the batch body after its last record";
static const char *const s_short    = "the batch body ends before its last record";

void
busp_batch_iter_init (busp_batch_iter_t *it, const void *body, size_t size, uint16_t count)
{
    assert (it);
    it->p = body;
    it->end = it->p + (body ? size : 0);
    it->left = count;
}

/*  Big-endian loads and stores through memcpy and a byte swap: one
    instruction each where the byte loops cost a visible share per record. */
static inline uint64_t
s_get (const uint8_t *p, int bytes)
{
    if (bytes == 8) {
        uint64_t v;
        memcpy (&v, p, 8);
        return be64toh (v);
    }
    if (bytes == 4) {
        uint32_t v;
        memcpy (&v, p, 4);
        return be32toh (v);
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p [i];
    return v;
}

/*  Common start and end of every record read.                               */
static inline int
s_begin (busp_batch_iter_t *it, const char **why)
{
    if (it->left == 0) {
        if (it->p != it->end) {
            if (why)
                *why = s_leftover;
            return -EPROTO;
        }
        return 0;
    }
    if (it->p == it->end) {
        if (why)
            *why = s_short;
        return -EPROTO;
    }
    return 1;
}

/*  str8 at the cursor.                                                     */
static inline bool
s_str8 (busp_batch_iter_t *it, busp_str_t *s)
{
    if (it->p >= it->end)
        return false;
    size_t len = *it->p;
    if ((size_t) (it->end - it->p) - 1 < len)
        return false;
    s->len = (uint8_t) len;
    s->data = len ? (const char *) it->p + 1 : NULL;
    it->p += 1 + len;
    return true;
}

/*  u32 size followed by that many bytes.                                   */
static inline bool
s_sized (busp_batch_iter_t *it, const uint8_t **data, uint32_t *size)
{
    if ((size_t) (it->end - it->p) < 4)
        return false;
    uint32_t n = (uint32_t) s_get (it->p, 4);
    it->p += 4;
    if ((size_t) (it->end - it->p) < n)
        return false;
    *size = n;
    *data = n ? it->p : NULL;
    it->p += n;
    return true;
}

/*  A record that runs past the body: the rest of the batch is unreadable. */
static int
s_overran (busp_batch_iter_t *it, const char **why)
{
    if (why)
        *why = s_overrun;
    it->p = it->end;
    it->left = 0;
    return -EPROTO;
}

/*  The tail PUBB and DELIVERB records share: topic, msg_id, headers,
    payload; then the record is done.                                      */
static inline int
s_event_tail (busp_batch_iter_t *it, busp_str_t *topic, busp_str_t *msg_id,
              const uint8_t **headers, uint32_t *headers_size,
              const uint8_t **payload, uint32_t *payload_size, const char **why)
{
    if (!s_str8 (it, topic) || !s_str8 (it, msg_id) || !s_sized (it, headers, headers_size)
    ||  !s_sized (it, payload, payload_size))
        return s_overran (it, why);
    it->left--;
    return 1;
}

int
busp_pubb_next (busp_batch_iter_t *it, busp_pub_rec_t *rec, const char **why)
{
    int rc = s_begin (it, why);
    if (rc <= 0)
        return rc;
    return s_event_tail (it, &rec->topic, &rec->msg_id, &rec->headers, &rec->headers_size,
                         &rec->payload, &rec->payload_size, why);
}

int
busp_deliverb_next (busp_batch_iter_t *it, busp_deliver_rec_t *rec, const char **why)
{
    int rc = s_begin (it, why);
    if (rc <= 0)
        return rc;
    if ((size_t) (it->end - it->p) < 30)
        return s_overran (it, why);
    rec->sub_id = (uint32_t) s_get (it->p, 4);
    rec->delivery_id = s_get (it->p + 4, 8);
    rec->stream_seq = s_get (it->p + 12, 8);
    rec->ts_us = (int64_t) s_get (it->p + 20, 8);
    rec->attempt = (uint16_t) s_get (it->p + 28, 2);
    it->p += 30;
    return s_event_tail (it, &rec->topic, &rec->msg_id, &rec->headers, &rec->headers_size,
                         &rec->payload, &rec->payload_size, why);
}

int
busp_ackb_next (busp_batch_iter_t *it, busp_ack_rec_t *rec, const char **why)
{
    int rc = s_begin (it, why);
    if (rc <= 0)
        return rc;
    if ((size_t) (it->end - it->p) < BUSP_ACK_REC_SIZE)
        return s_overran (it, why);
    rec->sub_id = (uint32_t) s_get (it->p, 4);
    rec->delivery_id = s_get (it->p + 4, 8);
    it->p += BUSP_ACK_REC_SIZE;
    it->left--;
    return 1;
}

static int
s_bounds (size_t size, uint16_t count, uint32_t max_count, size_t max_bytes, const char **why)
{
    if (count == 0) {
        *why = "batch count is 0";
        return -EPROTO;
    }
    if (count > max_count) {
        *why = "batch count exceeds batch_max";
        return -EPROTO;
    }
    if (size > max_bytes) {
        *why = "batch body exceeds batch_bytes";
        return -EPROTO;
    }
    return 0;
}

int
busp_pubb_parse (const void *body, size_t size, uint16_t count, uint32_t max_count,
                 size_t max_bytes, busp_pub_rec_t *recs, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (s_bounds (size, count, max_count, max_bytes, why))
        return -EPROTO;
    busp_batch_iter_t it;
    busp_batch_iter_init (&it, body, size, count);
    int rc;
    size_t n = 0;
    while ((rc = busp_pubb_next (&it, &recs [n], why)) > 0)
        n++;
    return rc < 0 ? -EPROTO : 0;
}

int
busp_batch_check (uint8_t command, const void *body, size_t size, uint16_t count,
                  uint32_t max_count, size_t max_bytes, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (s_bounds (size, count, max_count, max_bytes, why))
        return -EPROTO;
    busp_batch_iter_t it;
    busp_batch_iter_init (&it, body, size, count);
    int rc;
    switch (command) {
        case BUSP_PUBB: {
            busp_pub_rec_t rec;
            while ((rc = busp_pubb_next (&it, &rec, why)) > 0)
                ;
            break;
        }
        case BUSP_DELIVERB: {
            busp_deliver_rec_t rec;
            while ((rc = busp_deliverb_next (&it, &rec, why)) > 0)
                ;
            break;
        }
        case BUSP_ACKB:
            //  Fixed-size records: the size says it all.
            if (size != (size_t) count * BUSP_ACK_REC_SIZE) {
                *why = size < (size_t) count * BUSP_ACK_REC_SIZE ? s_short : s_leftover;
                return -EPROTO;
            }
            return 0;
        default:
            *why = "not a batch command";
            return -EPROTO;
    }
    return rc < 0 ? -EPROTO : 0;
}

static inline uint8_t *
s_put (uint8_t *at, uint64_t v, int bytes)
{
    if (bytes == 8) {
        uint64_t be = htobe64 (v);
        memcpy (at, &be, 8);
        return at + 8;
    }
    if (bytes == 4) {
        uint32_t be = htobe32 ((uint32_t) v);
        memcpy (at, &be, 4);
        return at + 4;
    }
    for (int i = bytes - 1; i >= 0; i--) {
        at [i] = (uint8_t) v;
        v >>= 8;
    }
    return at + bytes;
}

static inline uint8_t *
s_put_str8 (uint8_t *at, busp_str_t s)
{
    *at++ = s.len;
    if (s.len)
        memcpy (at, s.data, s.len);
    return at + s.len;
}

static inline uint8_t *
s_put_sized (uint8_t *at, const uint8_t *data, uint32_t size)
{
    at = s_put (at, size, 4);
    if (size)
        memcpy (at, data, size);
    return at + size;
}

uint8_t *
busp_pub_rec_put (uint8_t *at, const busp_pub_rec_t *rec)
{
    at = s_put_str8 (at, rec->topic);
    at = s_put_str8 (at, rec->msg_id);
    at = s_put_sized (at, rec->headers, rec->headers_size);
    return s_put_sized (at, rec->payload, rec->payload_size);
}

uint8_t *
busp_deliver_rec_put (uint8_t *at, const busp_deliver_rec_t *rec)
{
    at = s_put (at, rec->sub_id, 4);
    at = s_put (at, rec->delivery_id, 8);
    at = s_put (at, rec->stream_seq, 8);
    at = s_put (at, (uint64_t) rec->ts_us, 8);
    at = s_put (at, rec->attempt, 2);
    at = s_put_str8 (at, rec->topic);
    at = s_put_str8 (at, rec->msg_id);
    at = s_put_sized (at, rec->headers, rec->headers_size);
    return s_put_sized (at, rec->payload, rec->payload_size);
}

uint8_t *
busp_ack_rec_put (uint8_t *at, uint32_t sub_id, uint64_t delivery_id)
{
    at = s_put (at, sub_id, 4);
    return s_put (at, delivery_id, 8);
}
