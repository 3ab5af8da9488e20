/*  fuzz_batch.c — libFuzzer target for the batch decoder (PROTOCOL §8.2,
    src/common/batch.c): PUBB, DELIVERB and ACKB bodies.

    Input: one byte choosing the command, two bytes of count (big-endian),
    then the body.  Whatever the bytes, the whole-batch check and the
    iterators stay inside the body; a body the check accepts is read as
    exactly count records which, written back with the encoders, give the
    very same bytes; busp_pubb_parse agrees with the check.                  */
#include "batch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static busp_pub_rec_t s_recs [BUSP_BATCH_MAX];

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    static const uint8_t commands [3] = { 0x11, 0x28, 0x29 };   //  PUBB DELIVERB ACKB
    uint8_t command = commands [data [0] % 3];
    uint16_t count = (uint16_t) (data [1] << 8 | data [2]);
    size_t body_size = size - 3;
    uint8_t *body = malloc (body_size ? body_size : 1);
    uint8_t *again = malloc (body_size ? body_size : 1);
    if (!body || !again)
        goto done;
    memcpy (body, data + 3, body_size);
    const char *why = NULL;
    int rc = busp_batch_check (command, body, body_size, count, BUSP_BATCH_MAX, 1 << 20, &why);
    if (rc != 0 && !why)
        abort ();
    if (command == 0x11) {
        const char *why2 = NULL;
        int rc2 = busp_pubb_parse (body, body_size, count, BUSP_BATCH_MAX, 1 << 20, s_recs, &why2);
        if ((rc == 0) != (rc2 == 0))
            abort ();
    }
    if (rc != 0)
        goto done;
    busp_batch_iter_t it;
    busp_batch_iter_init (&it, body, body_size, count);
    uint8_t *at = again;
    int records = 0;
    while (true) {
        int n;
        if (command == 0x11) {
            busp_pub_rec_t rec;
            n = busp_pubb_next (&it, &rec, &why);
            if (n == 1)
                at = busp_pub_rec_put (at, &rec);
        }
        else
        if (command == 0x28) {
            busp_deliver_rec_t rec;
            n = busp_deliverb_next (&it, &rec, &why);
            if (n == 1)
                at = busp_deliver_rec_put (at, &rec);
        }
        else {
            busp_ack_rec_t rec;
            n = busp_ackb_next (&it, &rec, &why);
            if (n == 1)
                at = busp_ack_rec_put (at, rec.sub_id, rec.delivery_id);
        }
        if (n < 0)
            abort ();           //  the check accepted what the iterator refuses
        if (n == 0)
            break;
        records++;
        if ((size_t) (at - again) > body_size)
            abort ();
    }
    if (records != count || (size_t) (at - again) != body_size
    ||  memcmp (again, body, body_size) != 0)
        abort ();
done:
    free (body);
    free (again);
    return 0;
}
