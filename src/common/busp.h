/*  busp.h — the BUSP/1 header-frame codec shared by broker and clients.

    One struct holds every field any command carries; decode fills the fields
    of the command it found, encode writes exactly the fields of the command
    set in `command`.  Strings are (pointer, length) views into the frame so
    decoding never allocates: the broker decodes millions of headers a second
    and keeps none of them.  Nothing here touches sockets.                   */
#ifndef BUSP_H_INCLUDED
#define BUSP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define BUSP_SIGNATURE   0xB5
#define BUSP_VERSION     1
/*  Largest header any command can have (DELIVER: 2+4+8+8+8+2+1+255+1+255). */
#define BUSP_HEADER_MAX  544

enum {
    BUSP_HELLO    = 0x01,
    BUSP_WELCOME  = 0x02,
    BUSP_PUB      = 0x10,
    BUSP_PUBB     = 0x11,       /*  feature "batch" (PROTOCOL §8.2)         */
    BUSP_PUBACK   = 0x12,
    BUSP_REJECT   = 0x13,
    BUSP_SUB      = 0x20,
    BUSP_UNSUB    = 0x21,
    BUSP_CREDIT   = 0x22,
    BUSP_ACK      = 0x23,
    BUSP_NACK     = 0x24,
    BUSP_SUBOK    = 0x25,
    BUSP_DELIVER  = 0x26,
    BUSP_GAP      = 0x27,
    BUSP_DELIVERB = 0x28,       /*  feature "batch"                         */
    BUSP_ACKB     = 0x29,       /*  feature "batch"                         */
    BUSP_SUBEND   = 0x2F,
    BUSP_PING     = 0x30,
    BUSP_PONG     = 0x31,
    BUSP_ERROR    = 0x3E,
    BUSP_BYE      = 0x3F,
    BUSP_CTL      = 0x40,
    BUSP_CTLREPLY = 0x41
};

/*  Status codes carried by REJECT, SUBEND, ERROR and CTLREPLY.              */
enum {
    BUSP_OK              = 200,
    BUSP_E_MALFORMED     = 400,
    BUSP_E_NO_SESSION    = 401,
    BUSP_E_FORBIDDEN     = 403,
    BUSP_E_NOT_FOUND     = 404,
    BUSP_E_CONFLICT      = 409,
    BUSP_E_TOO_LARGE     = 413,
    BUSP_E_LIMIT         = 429,
    BUSP_E_INTERNAL      = 500,
    BUSP_E_SHUTDOWN      = 503
};

/*  NACK actions.                                                           */
enum { BUSP_NACK_REDELIVER = 0, BUSP_NACK_DEADLETTER = 1 };

typedef struct {
    const char *data;           /*  not NUL-terminated; NULL only when len 0 */
    uint8_t len;
} busp_str_t;

typedef struct {
    uint8_t  command;
    uint16_t version;           /*  HELLO, WELCOME                          */
    uint16_t code;              /*  REJECT, SUBEND, ERROR, CTLREPLY         */
    uint16_t attempt;           /*  DELIVER                                 */
    uint16_t count;             /*  PUBB, DELIVERB, ACKB: records in body   */
    uint8_t  action;            /*  NACK                                    */
    uint32_t sub_id;            /*  SUB UNSUB CREDIT ACK NACK SUBOK DELIVER
                                    GAP SUBEND                              */
    uint32_t credit;            /*  CREDIT, PUBACK, WELCOME (pub_credit)    */
    uint32_t max_payload;       /*  WELCOME                                 */
    uint32_t delay_ms;          /*  NACK                                    */
    uint32_t request_id;        /*  CTL, CTLREPLY                           */
    uint64_t seq;               /*  PUB, PUBACK, REJECT (pub_seq), PUBB
                                    (first_pub_seq)                         */
    uint64_t delivery_id;       /*  ACK, NACK, DELIVER                      */
    uint64_t stream_seq;        /*  DELIVER                                 */
    uint64_t dropped;           /*  GAP                                     */
    uint64_t nonce;             /*  PING, PONG                              */
    int64_t  ts_us;             /*  DELIVER                                 */
    busp_str_t name;            /*  HELLO client_name, WELCOME broker_id,
                                    REJECT / SUBEND / ERROR reason          */
    busp_str_t topic;           /*  PUB topic, SUB pattern, DELIVER topic   */
    busp_str_t msg_id;          /*  PUB, DELIVER                            */
} busp_header_t;

/*  Decode one header frame.  Returns 0, or -EPROTO when the frame is not a
    well-formed header of a known command (bad signature, unknown command,
    too short, too long, a str8 overrunning the frame).  On error *why, if
    not NULL, points at a static sentence saying what was wrong.            */
int busp_decode (const void *data, size_t size, busp_header_t *h, const char **why);

/*  Encode h into buf (cap bytes; BUSP_HEADER_MAX always suffices).  Returns
    the frame length, or -EINVAL for an unknown command, -ENOSPC when cap is
    too small.                                                              */
int busp_encode (const busp_header_t *h, uint8_t *buf, size_t cap);

/*  Smallest and largest number of frames (header included) a command may
    have on the wire.  Returns 0, or -EINVAL for an unknown command.        */
int busp_frame_limits (uint8_t command, int *min_frames, int *max_frames);

/*  The error-context body of PROTOCOL §8.1 for an ERROR answering the
    header frame (data, size): {"cmd": NAME|null, ...} with sub_id,
    delivery_id, pub_seq (PUBB: first_pub_seq) and request_id where the
    command has them and the frame is long enough to hold them.  They sit
    at fixed offsets right after the command byte, so they are read even
    from a header that failed to decode.  Writes a NUL-terminated JSON
    text into buf (BUSP_ERRCTX_MAX bytes suffice) and returns its length. */
#define BUSP_ERRCTX_MAX 128
int busp_error_context (const void *data, size_t size, char *buf, size_t cap);

/*  Human name of a command ("PUB"), or "UNKNOWN".                          */
const char *busp_command_name (uint8_t command);

/*  A str8 view of a C string, truncated to 255 bytes.                      */
busp_str_t busp_str (const char *s);

/*  A str8 view of (data, len); len is truncated to 255.                    */
busp_str_t busp_strn (const char *data, size_t len);

/*  Copy a str8 into a NUL-terminated buffer of at least 256 bytes.         */
void busp_str_copy (busp_str_t s, char *buf);

#endif
