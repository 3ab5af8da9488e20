/*  msg.h — libbusd's private view of busd_msg_t (see msg.c).

    The client builds messages as they come off the socket and links them
    into its receive FIFO through `next`, so a queued delivery costs one
    allocation and no list node.  Only client.c and msg.c see this layout;
    applications go through the accessors in busd/client.h.                 */
#ifndef BUSD_LIB_MSG_H_INCLUDED
#define BUSD_LIB_MSG_H_INCLUDED

#include <zmq.h>
#include "busd/client.h"

struct busd_msg {
    busd_msg_t *next;           /*  receive FIFO link                       */
    zmq_msg_t payload;          /*  DELIVER frame 2, taken without copying  */
    const uint8_t *inline_payload;  /*  DELIVERB record's payload copied into
                                        this block (NULL: use payload)      */
    size_t inline_size;
    busd_msg_kind_t kind;
    uint32_t sub_id;
    uint32_t epoch;             /*  session the delivery came from          */
    uint16_t attempt;
    uint16_t code;
    uint64_t delivery_id;
    uint64_t stream_seq;
    uint64_t dropped;
    int64_t ts_us;
    const char *msg_id;         /*  into text                               */
    const char *headers;        /*  into text, or NULL                      */
    const char *reason;         /*  into text                               */
    char text [];               /*  topic\0 msg_id\0 reason\0 [headers\0]   */
};

/*  Allocate a message whose strings are copied from the given views (any
    may be NULL with length 0; headers NULL means "no headers frame").  The
    payload starts empty.  Returns NULL when out of memory.                 */
busd_msg_t *
    busd_msg_new (busd_msg_kind_t kind, uint32_t sub_id,
                  const char *topic, size_t topic_len,
                  const char *msg_id, size_t msg_id_len,
                  const char *reason, size_t reason_len,
                  const char *headers, size_t headers_len);

/*  A DELIVER message with its payload copied into the same block: a
    DELIVERB record costs one allocation, not two.                          */
busd_msg_t *
    busd_msg_new_inline (uint32_t sub_id, const char *topic, size_t topic_len,
                         const char *msg_id, size_t msg_id_len,
                         const char *headers, size_t headers_len,
                         const void *payload, size_t size);

#endif
