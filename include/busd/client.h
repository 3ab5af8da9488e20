/*  busd/client.h — libbusd, the busd client library.

    A busd_client_t is one BUSP/1 session over one ZeroMQ DEALER socket.  It
    hides the protocol's bookkeeping: the HELLO handshake, publisher credit
    and cumulative PUBACKs, subscriber credit top-up, heartbeats, and
    recovery from a broker restart (HELLO again, re-subscribe, re-send
    publishes that were never acknowledged, with their msg_id).

    Threading: a client is NOT thread-safe.  Use one client per thread, or
    serialise every call on a client with your own lock.  Distinct clients
    share nothing and may be used from different threads at once.

    Errors: functions return 0 (or a documented non-negative value) on
    success and a negative code on failure: -errno values (-ETIMEDOUT,
    -EINVAL, -ENOMEM, -ECONNREFUSED ...) or the BUSD_E* codes below.
    busd_strerror() turns any of them into text.                            */
#ifndef BUSD_CLIENT_H_INCLUDED
#define BUSD_CLIENT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BUSD_BUILDING_LIB)
#   define BUSD_EXPORT __attribute__ ((visibility ("default")))
#else
#   define BUSD_EXPORT
#endif

#define BUSD_VERSION_MAJOR 0
#define BUSD_VERSION_MINOR 1
#define BUSD_VERSION_PATCH 0
#define BUSD_DEFAULT_ENDPOINT "tcp://127.0.0.1:7460"

/*  Library-specific error codes (all negative, below the errno range).     */
#define BUSD_ENOCREDIT   (-1001)   /*  no publisher credit (throttled)      */
#define BUSD_EREJECTED   (-1002)   /*  a publish was rejected by the broker */
#define BUSD_ESUBEND     (-1003)   /*  subscription refused or ended        */
#define BUSD_EPROTOCOL   (-1004)   /*  broker answered ERROR / bad frame    */
#define BUSD_ESHUTDOWN   (-1005)   /*  broker is shutting down (503)        */
#define BUSD_ECLOSED     (-1006)   /*  client closed                        */

typedef struct busd_client busd_client_t;
typedef struct busd_msg busd_msg_t;

/*  ---------------------------------------------------------------------
    Connecting                                                              */

typedef struct {
    const char *endpoint;           /*  default BUSD_ENDPOINT env, then
                                        BUSD_DEFAULT_ENDPOINT              */
    const char *client_name;        /*  default "busd-client"              */
    int connect_timeout_ms;         /*  wait for WELCOME; 0 = 5000          */
    bool reconnect;                 /*  recover from broker restarts
                                        (default true via busd_client_new) */
    void *zmq_context;              /*  ZeroMQ context for the socket; NULL =
                                        the client's own.  inproc:// needs
                                        the broker's context.              */
    bool no_batch;                  /*  true: one frame per publish and ack
                                        even when the broker offers the
                                        "batch" feature (default false:
                                        batch transparently, see
                                        doc/protocol.md §8)                */
    /*  Authentication (doc/security.md); NULL = not used.  CURVE needs both
        the broker's public key (40 Z85 characters, or the path of its
        public certificate) and this client's czmq certificate (the
        _secret file, or the public one with the _secret file beside it).
        PLAIN needs a user and a password.  busd_client_new fails with
        -EINVAL for an incomplete or mixed set, -ENOENT for a missing file. */
    const char *curve_server_key;
    const char *curve_cert;
    const char *plain_user;
    const char *plain_password;
} busd_client_options_t;

/*  Initialise options with defaults (reconnect = true).                    */
BUSD_EXPORT void busd_client_options_init (busd_client_options_t *opts);

/*  Connect and say HELLO; returns NULL on failure with *err (if not NULL)
    set to the negative code (-ETIMEDOUT when no WELCOME came).  opts may be
    NULL for all defaults.                                                  */
BUSD_EXPORT busd_client_t *busd_client_new (const busd_client_options_t *opts, int *err);

/*  Say BYE, close the socket, free everything, set *self_p to NULL.        */
BUSD_EXPORT void busd_client_destroy (busd_client_t **self_p);

/*  The WELCOME values of the current session.                             */
BUSD_EXPORT uint32_t busd_client_max_payload (busd_client_t *self);
BUSD_EXPORT uint32_t busd_client_pub_window (busd_client_t *self);
BUSD_EXPORT const char *busd_client_broker_id (busd_client_t *self);
/*  WELCOME info JSON text of the current session (owned by the client).    */
BUSD_EXPORT const char *busd_client_welcome_info (busd_client_t *self);
/*  True when the current session batches (PROTOCOL §8.2 "batch" in force). */
BUSD_EXPORT bool busd_client_batching (busd_client_t *self);
/*  How many times the client has had to say HELLO again (broker restart).  */
BUSD_EXPORT uint64_t busd_client_reconnects (busd_client_t *self);

/*  ---------------------------------------------------------------------
    Publishing                                                              */

typedef struct {
    const char *msg_id;             /*  idempotency key, NULL or "" = none  */
    const char *headers_json;       /*  JSON object of string values, or NULL */
} busd_pub_options_t;

/*  Called for every REJECT the broker sends (from inside any library call
    that reads the socket).  topic and reason are valid during the call.
    The handler must not call back into the same client.                    */
typedef void (busd_reject_fn) (void *arg, uint64_t pub_seq, const char *topic,
                               uint16_t code, const char *reason);
BUSD_EXPORT void busd_client_set_reject_handler (busd_client_t *self,
                                                 busd_reject_fn *fn, void *arg);

/*  Publish one event.  Waits up to timeout_ms for publisher credit
    (-1 forever, 0 not at all); returns 0 once the PUB is sent (not yet
    acknowledged: see busd_flush), BUSD_ENOCREDIT when the timeout passed
    without credit, -EINVAL for a bad topic (checked locally), -EMSGSIZE for
    a payload above max_payload.  opts may be NULL.                          */
BUSD_EXPORT int busd_publish (busd_client_t *self, const char *topic,
                              const void *payload, size_t size,
                              const busd_pub_options_t *opts, int timeout_ms);

/*  busd_publish, and on success *pub_seq (if not NULL) is the pub_seq the
    PUB went out under: the number a reject handler receives for it.  After
    a reconnect the library re-sends unacknowledged events under fresh
    pub_seqs (same msg_id), so match those by msg_id.  *pub_seq is 0 on
    failure.                                                                */
BUSD_EXPORT int busd_publish_seq (busd_client_t *self, const char *topic,
                                  const void *payload, size_t size,
                                  const busd_pub_options_t *opts, int timeout_ms,
                                  uint64_t *pub_seq);

/*  Wait until every publish sent so far is acknowledged or rejected.
    Returns 0 when all were accepted, BUSD_EREJECTED when any was rejected
    since the last flush, -ETIMEDOUT.                                       */
BUSD_EXPORT int busd_flush (busd_client_t *self, int timeout_ms);

/*  Publisher credit the client holds right now, and publishes not yet
    acknowledged.                                                            */
BUSD_EXPORT uint32_t busd_client_pub_credit (busd_client_t *self);
BUSD_EXPORT uint64_t busd_client_unacked (busd_client_t *self);
/*  Counters since the client was created.                                  */
BUSD_EXPORT uint64_t busd_client_accepted (busd_client_t *self);
BUSD_EXPORT uint64_t busd_client_rejected (busd_client_t *self);

/*  ---------------------------------------------------------------------
    Subscribing                                                             */

/*  A subscription's id: what busd_subscribe returns (when positive) and
    every per-subscription call takes (busd_msg_sub_id reports it).          */
typedef uint32_t busd_sub_id_t;

/*  Subscribe to a pattern with SUB options as a JSON object text (NULL for
    the defaults; see doc/protocol.md §6).  Waits for SUBOK up to timeout_ms.
    Returns the sub_id (1..UINT32_MAX: store it in a busd_sub_id_t), or a
    negative code; on BUSD_ESUBEND the broker's code and reason are
    available from busd_client_last_error().  A pattern token "+" or ">"
    (MQTT's and NATS' wildcards, literal tokens in busd) is refused with
    -EINVAL and a hint ("did you mean 'user.*'?") in busd_client_last_error. */
BUSD_EXPORT int64_t busd_subscribe (busd_client_t *self, const char *pattern,
                                    const char *options_json, int timeout_ms);

/*  Typed SUB options (doc/protocol.md §6), beside the JSON text form.
    busd_sub_options_init sets "the broker's default" everywhere.            */
typedef enum {
    BUSD_OVERFLOW_DEFAULT = 0, BUSD_OVERFLOW_BLOCK, BUSD_OVERFLOW_DROP_OLDEST,
    BUSD_OVERFLOW_DROP_NEW, BUSD_OVERFLOW_LATEST, BUSD_OVERFLOW_DISCONNECT
} busd_overflow_t;

typedef struct {
    int64_t credit;                 /*  initial credit; -1 = default         */
    bool ack_explicit;              /*  "ack": "explicit"                    */
    const char *group;              /*  queue group, or NULL                 */
    busd_overflow_t overflow;
    int64_t queue_limit;            /*  events; -1 = default                 */
    int64_t ack_wait_ms;            /*  -1 = default                         */
    int64_t max_deliver;            /*  -1 = default                         */
    const char *extra_json;         /*  more options as a JSON object text,
                                        merged in (NULL: none)               */
} busd_sub_options_t;

BUSD_EXPORT void busd_sub_options_init (busd_sub_options_t *opts);

/*  busd_subscribe with typed options (NULL: defaults); on success returns 0
    and sets *sub_id.  -EINVAL for options that cannot be expressed (a bad
    overflow value, extra_json not an object).                               */
BUSD_EXPORT int busd_subscribe_opts (busd_client_t *self, const char *pattern,
                                     const busd_sub_options_t *opts, busd_sub_id_t *sub_id,
                                     int timeout_ms);

/*  UNSUB and wait for SUBEND 200.  Deliveries already received and not yet
    taken by busd_receive for this sub_id are discarded.                    */
BUSD_EXPORT int busd_unsubscribe (busd_client_t *self, busd_sub_id_t sub_id, int timeout_ms);

/*  SUBOK info JSON of a live subscription (owned by the client), or NULL.   */
BUSD_EXPORT const char *busd_subscription_info (busd_client_t *self, uint32_t sub_id);

/*  Code and reason of the last ERROR, SUBEND failure or CTLREPLY error.     */
BUSD_EXPORT uint16_t busd_client_last_error (busd_client_t *self, const char **reason);

typedef enum {
    BUSD_MSG_DELIVER = 1,           /*  an event                             */
    BUSD_MSG_GAP     = 2,           /*  events dropped before the next one   */
    BUSD_MSG_SUBEND  = 3            /*  the broker ended a subscription      */
} busd_msg_kind_t;

/*  Wait up to timeout_ms (-1 forever) for the next delivery, GAP or SUBEND
    on any subscription.  Returns 0 and a message the caller must destroy,
    -ETIMEDOUT, or another negative code.  Receiving a DELIVER on an
    `ack: none` subscription returns one credit (sent in batches).          */
BUSD_EXPORT int busd_receive (busd_client_t *self, busd_msg_t **msg_p, int timeout_ms);

BUSD_EXPORT busd_msg_kind_t busd_msg_kind (const busd_msg_t *m);
BUSD_EXPORT uint32_t busd_msg_sub_id (const busd_msg_t *m);
BUSD_EXPORT const char *busd_msg_topic (const busd_msg_t *m);     /* NUL-terminated */
BUSD_EXPORT const void *busd_msg_payload (const busd_msg_t *m);
BUSD_EXPORT size_t busd_msg_size (const busd_msg_t *m);
BUSD_EXPORT const char *busd_msg_msg_id (const busd_msg_t *m);    /* "" when none */
/*  Headers frame as received (JSON text, NUL-terminated) or NULL.           */
BUSD_EXPORT const char *busd_msg_headers (const busd_msg_t *m);
BUSD_EXPORT uint64_t busd_msg_delivery_id (const busd_msg_t *m);
BUSD_EXPORT uint64_t busd_msg_stream_seq (const busd_msg_t *m);
BUSD_EXPORT int64_t busd_msg_ts_us (const busd_msg_t *m);
BUSD_EXPORT uint16_t busd_msg_attempt (const busd_msg_t *m);
/*  GAP: events dropped.  SUBEND: 0.                                        */
BUSD_EXPORT uint64_t busd_msg_dropped (const busd_msg_t *m);
/*  SUBEND: code and reason ("" otherwise).                                 */
BUSD_EXPORT uint16_t busd_msg_code (const busd_msg_t *m);
BUSD_EXPORT const char *busd_msg_reason (const busd_msg_t *m);
BUSD_EXPORT void busd_msg_destroy (busd_msg_t **self_p);

/*  Acknowledge a delivery of an `ack: explicit` subscription; returns one
    credit to the broker (in batches).                                      */
BUSD_EXPORT int busd_ack (busd_client_t *self, const busd_msg_t *m);
/*  NACK: action BUSD_NACK_RETRY (redeliver after delay_ms, 0 = broker's
    backoff) or BUSD_NACK_DEADLETTER; reason may be NULL.                    */
#define BUSD_NACK_RETRY      0
#define BUSD_NACK_DEADLETTER 1
BUSD_EXPORT int busd_nack (busd_client_t *self, const busd_msg_t *m,
                           int action, uint32_t delay_ms, const char *reason);

/*  Grant extra credit to a subscription by hand (normally automatic).      */
BUSD_EXPORT int busd_credit (busd_client_t *self, uint32_t sub_id, uint32_t credit);

/*  Turn automatic credit top-up off (manual) or on for one subscription.   */
BUSD_EXPORT int busd_subscription_set_auto_credit (busd_client_t *self, uint32_t sub_id,
                                                   bool enabled);

/*  ---------------------------------------------------------------------
    Control                                                                  */

/*  Send a CTL request (JSON text) and wait for the CTLREPLY.  Returns the
    reply's code (200 ...) and sets *reply_p to a malloc'd JSON text the
    caller frees; or a negative code.                                       */
BUSD_EXPORT int busd_ctl (busd_client_t *self, const char *request_json,
                          char **reply_p, int timeout_ms);

/*  ---------------------------------------------------------------------
    Utilities                                                               */

BUSD_EXPORT const char *busd_strerror (int code);
BUSD_EXPORT const char *busd_version (void);

/*  Process any pending traffic (PUBACKs, PINGs, heartbeats, reconnect);
    when none is pending, wait up to timeout_ms (0: not at all) for some.
    Returns 0 (also when nothing came) or a negative code.  An otherwise
    idle client should call it now and then so its session stays alive.   */
BUSD_EXPORT int busd_client_poll (busd_client_t *self, int timeout_ms);

/*  The client's socket file descriptor (ZMQ_FD) for integration in an
    external poll loop; readable edge-triggered as ZeroMQ documents.  It
    changes when the client replaces its socket after a silent broker, so
    fetch it again after each library call.  Asking for it turns off the
    background flusher of batched publishes and acks (they are then sent
    before each call returns), so nothing but the application's own calls
    touches the socket.                                                     */
BUSD_EXPORT int busd_client_fd (busd_client_t *self);

#ifdef __cplusplus
}
#endif
#endif
