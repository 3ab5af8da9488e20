/*  batch.h — the records inside PUBB, DELIVERB and ACKB bodies
    (PROTOCOL §8.2, feature "batch").

    A batch is one frame holding `count` records back to back.  Records are
    read through an iterator that hands out views into the caller's frame
    (topic, msg_id, headers and payload point into the body; nothing is
    copied or allocated), because the broker reads a million of them a
    second and keeps only the bytes it routes.  The whole-batch check runs
    the same iterator once without looking at the records, so "count 0",
    "too many", "records do not fill the body" and "a size overruns" are
    decided in one place before anything takes effect.  Writers are plain
    put-at-cursor functions with a size function each: callers size their
    buffer first and then write without checks.                             */
#ifndef BUSP_BATCH_H_INCLUDED
#define BUSP_BATCH_H_INCLUDED

#include "busp.h"

/*  Limits announced in WELCOME info (PROTOCOL §8.2: batch_max >= 64,
    batch_bytes >= max_payload + 1024).                                     */
#define BUSP_BATCH_MAX       1024
#define BUSP_BATCH_SLACK     65536   /*  batch_bytes = max_payload + this   */

typedef struct {
    busp_str_t topic;
    busp_str_t msg_id;
    const uint8_t *headers;     /*  NULL when headers_size is 0             */
    uint32_t headers_size;
    const uint8_t *payload;
    uint32_t payload_size;
} busp_pub_rec_t;

typedef struct {
    uint32_t sub_id;
    uint64_t delivery_id;
    uint64_t stream_seq;
    int64_t  ts_us;
    uint16_t attempt;
    busp_str_t topic;
    busp_str_t msg_id;
    const uint8_t *headers;
    uint32_t headers_size;
    const uint8_t *payload;
    uint32_t payload_size;
} busp_deliver_rec_t;

typedef struct {
    uint32_t sub_id;
    uint64_t delivery_id;
} busp_ack_rec_t;

#define BUSP_ACK_REC_SIZE    12
/*  DELIVER record without its strings, headers and payload.                */
#define BUSP_DELIVER_REC_FIXED (4 + 8 + 8 + 8 + 2 + 1 + 1 + 4 + 4)
#define BUSP_PUB_REC_FIXED     (1 + 1 + 4 + 4)

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t left;              /*  records still to read                   */
} busp_batch_iter_t;

void busp_batch_iter_init (busp_batch_iter_t *it, const void *body, size_t size,
                           uint16_t count);

/*  Read the next record.  Return 1 with *rec filled, 0 after the last of
    `count` records when they filled the body exactly, or -EPROTO (with
    *why, if not NULL, saying what was wrong) when a record overruns the
    body or bytes are left over.                                            */
int busp_pubb_next (busp_batch_iter_t *it, busp_pub_rec_t *rec, const char **why);
int busp_deliverb_next (busp_batch_iter_t *it, busp_deliver_rec_t *rec, const char **why);
int busp_ackb_next (busp_batch_iter_t *it, busp_ack_rec_t *rec, const char **why);

/*  The whole-batch rules of §8.2 for a PUBB, DELIVERB or ACKB body:
    count in 1..max_count, size at most max_bytes, exactly count records
    filling the body.  Returns 0 or -EPROTO with *why set.                  */
int busp_batch_check (uint8_t command, const void *body, size_t size, uint16_t count,
                      uint32_t max_count, size_t max_bytes, const char **why);

/*  busp_batch_check for a PUBB that also keeps the records: on success
    recs [0 .. count-1] hold them (recs has room for max_count), so the
    body is read once.  Returns 0 or -EPROTO with *why set.                  */
int busp_pubb_parse (const void *body, size_t size, uint16_t count, uint32_t max_count,
                     size_t max_bytes, busp_pub_rec_t *recs, const char **why);

/*  Encoded sizes, and writers that return the cursor past the record.     */
static inline size_t
busp_pub_rec_size (size_t topic_len, size_t msg_id_len, size_t headers_size,
                   size_t payload_size)
{
    return BUSP_PUB_REC_FIXED + topic_len + msg_id_len + headers_size + payload_size;
}
uint8_t *busp_pub_rec_put (uint8_t *at, const busp_pub_rec_t *rec);

static inline size_t
busp_deliver_rec_size (size_t topic_len, size_t msg_id_len, size_t headers_size,
                       size_t payload_size)
{
    return BUSP_DELIVER_REC_FIXED + topic_len + msg_id_len + headers_size + payload_size;
}
uint8_t *busp_deliver_rec_put (uint8_t *at, const busp_deliver_rec_t *rec);

uint8_t *busp_ack_rec_put (uint8_t *at, uint32_t sub_id, uint64_t delivery_id);

#endif
