/*  msg.h — libbusd's private view of busd_msg_t (see msg.c).

    The client builds messages as they come off the socket and links them
    into its receive FIFO through `next`, so a queued delivery costs one
    allocation and no list node.  Only client.c and msg.c see this layout;
    applications go through the accessors in busd/client.h.                 */
#ifndef BUSD_LIB_MSG_H_INCLUDED
#define BUSD_LIB_MSG_H_INCLUDED

#include <zmq.h>
#include "busd/client.h"

/*  The block that holds the messages of one DELIVERB (msg.c): freed when
    the last of them is destroyed.                                          */
typedef struct {
    uint32_t refs;              /*  atomic: messages may die in any thread  */
    size_t used, cap;
} busd_msg_slab_t;

struct busd_msg {
    busd_msg_t *next;           /*  receive FIFO link                       */
    busd_msg_slab_t *slab;      /*  NULL: allocated on its own              */
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

/*  A DELIVER message with its payload copied into the same block.  With
    slab not NULL it is carved out of the slab (which must have room: see
    busd_msg_slab_new); else it is allocated on its own.                   */
busd_msg_t *
    busd_msg_new_inline (busd_msg_slab_t *slab, uint32_t sub_id,
                         const char *topic, size_t topic_len,
                         const char *msg_id, size_t msg_id_len,
                         const char *headers, size_t headers_len,
                         const void *payload, size_t size);

/*  A block for the messages of one DELIVERB of `count` records whose body
    is `body_size` bytes: enough for every record's message, whatever the
    split of the body between strings, headers and payloads.  The caller
    drops its reference with busd_msg_slab_release once it has carved the
    messages (each message holds one).  NULL when out of memory.            */
busd_msg_slab_t *busd_msg_slab_new (size_t count, size_t body_size);
void busd_msg_slab_release (busd_msg_slab_t *slab);

#endif
