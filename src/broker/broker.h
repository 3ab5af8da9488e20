/*  broker.h — the routing state of busd and the types that make it up.

    One thread owns everything declared here (the Redis model): sessions,
    subscriptions, channels and the routing trie are plain structs with
    direct pointers between them and no locks.  The pieces live in their own
    files (session.c, channel.c, ctl.c ...) but share these definitions
    because they are one data structure seen from different sides.

      session ──< sub >── channel ──< trie entry (pattern)
      (a client)   (SUB)   (a queue: one sub, or a queue group's members)

    A channel owns the queue and the overflow policy; a sub owns its credit,
    delivery ids and in-flight deliveries.  A plain subscription is a channel
    with one member, so groups cost nothing extra in the common path.        */
#ifndef BUSD_BROKER_H_INCLUDED
#define BUSD_BROKER_H_INCLUDED

#include <czmq.h>
#include <cJSON.h>
#include "busp.h"
#include "event.h"
#include "queue.h"
#include "trie.h"
#include "config.h"

typedef struct broker broker_t;
typedef struct session session_t;
typedef struct sub sub_t;
typedef struct channel channel_t;
typedef struct dedup dedup_t;
typedef struct dlq dlq_t;

typedef enum {
    POLICY_BLOCK = 0, POLICY_DROP_OLDEST, POLICY_DROP_NEW, POLICY_LATEST,
    POLICY_DISCONNECT
} policy_t;

const char *policy_name (policy_t policy);

/*  A small growable array of pointers; the sets it holds (members of a
    group, publishers throttled by a queue) are short and iterated whole.   */
typedef struct {
    void **items;
    size_t size;
    size_t cap;
} ptrvec_t;

int ptrvec_add (ptrvec_t *vec, void *item);      /*  0, -EEXIST, -ENOMEM   */
/*  Append without the membership check (caller keeps a flag instead).      */
int ptrvec_push (ptrvec_t *vec, void *item);
/*  Refresh the broker's batch clocks.                                      */
void broker_clock (broker_t *self);
bool ptrvec_remove (ptrvec_t *vec, void *item);
bool ptrvec_contains (const ptrvec_t *vec, const void *item);
void ptrvec_free (ptrvec_t *vec);

/*  One delivery awaiting ACK (ack: explicit).                              */
typedef struct {
    uint64_t delivery_id;
    event_t *event;             /*  NULL once acknowledged (a hole)         */
    uint16_t attempt;
    int64_t deadline_ms;        /*  monotonic                               */
} inflight_t;

struct sub {
    session_t *session;
    channel_t *channel;
    uint32_t sub_id;
    char *pattern;
    uint64_t credit;
    bool ack_explicit;
    uint32_t ack_wait_ms;
    uint32_t max_deliver;
    uint64_t next_delivery_id;
    /*  In-flight deliveries in delivery_id order, which is also deadline
        order since ack_wait is fixed per subscription: the oldest is at the
        front for the timeout scan and ACKs binary-search by id.             */
    inflight_t *inflight;
    size_t inflight_head, inflight_len, inflight_cap, inflight_live;
    uint64_t delivered;
    uint64_t acked;
    uint64_t redelivered;
    uint64_t dead_lettered;
    uint64_t gaps_sent;
    bool send_stalled;          /*  last send hit the HWM; retry on tick    */
};

struct channel {
    broker_t *broker;
    char *pattern;
    char *group;                /*  NULL for a plain subscription           */
    char *key;                  /*  group index key                         */
    policy_t policy;
    uint32_t queue_limit;
    uint64_t queue_bytes_limit;
    queue_t *queue;             /*  fresh events waiting for credit         */
    queue_t *redeliveries;      /*  redeliveries: served before the queue   */
    zlistx_t *delayed;          /*  NACKed with a delay, sorted by due time */
    ptrvec_t members;           /*  sub_t *                                 */
    size_t rr;                  /*  round-robin cursor into members         */
    ptrvec_t throttled;         /*  session_t * throttled by this queue     */
    uint64_t pending_gap;       /*  dropped since the last DELIVER          */
    uint64_t dropped;
    uint64_t delivered;
    bool dirty;                 /*  in the broker's pump list               */
    bool dead;                  /*  ended; freed after the current batch    */
};

struct session {
    broker_t *broker;
    uint8_t rid [256];          /*  rid [0] = length, then the routing id   */
    char name [256];
    char id_hex [80];
    int64_t created_ms;
    int64_t last_seen_ms;
    int64_t ping_sent_ms;       /*  0: no PING outstanding                  */
    uint64_t last_pub_seq;      /*  last PUB processed                      */
    uint64_t acked_pub_seq;     /*  last PUBACKed                           */
    uint64_t credit;            /*  publisher credit the client holds       */
    uint64_t credit_owed;       /*  processed PUBs whose credit is not back */
    ptrvec_t throttled_by;      /*  channel_t * throttling this session     */
    bool pub_dirty;             /*  owes a PUBACK at the end of the batch   */
    bool dead;                  /*  ended; freed after the current batch    */
    bool gone;                  /*  transport says the peer left            */
    zhashx_t *subs;             /*  sub_id (as uint32 key) -> sub_t *       */
    uint64_t accepted;
    uint64_t rejected;
    uint64_t delivered;
};

typedef struct {
    uint64_t accepted, rejected, duplicates, unrouted, delivered, redelivered,
             dropped, dead_lettered, protocol_errors, send_failures, gaps,
             events_in_bytes, sessions_opened, sessions_expired,
             acks, nacks, throttle_events, batches, messages_in;
} stats_t;

struct broker {
    config_t *config;
    zloop_t *loop;
    zsock_t *router_sock;
    void *router;               /*  the raw libzmq socket of router_sock    */
    char broker_id [32];
    zhashx_t *sessions;         /*  routing id blob -> session_t *          */
    session_t *last_session;    /*  lookup cache: bursts come from one peer */
    zhashx_t *groups;           /*  "group\x1fpattern" -> channel_t *        */
    trie_t *trie;
    ptrvec_t dirty_channels;
    ptrvec_t dirty_sessions;
    ptrvec_t dead_channels;
    ptrvec_t dead_sessions;
    ptrvec_t gone_sessions;
    ptrvec_t all_channels;
    dedup_t *dedup;
    dlq_t *dlq;
    stats_t stats;
    uint64_t queued_bytes;      /*  across every queue: the broker-wide cap */
    uint64_t nonce;
    /*  Clocks read once per batch or timer run: per-event clock reads cost
        more than the routing itself, and within a batch they would differ
        by microseconds.                                                    */
    int64_t now_ms;
    int64_t now_wall_us;
    int64_t started_ms;
    bool draining;
    bool registered;            /*  loop handlers installed             */
    volatile sig_atomic_t *stop_flag;
    volatile sig_atomic_t *reload_flag;
    uint64_t throttled_sessions;
    zlistx_t *bound;            /*  endpoints actually bound (strings)      */
    struct metrics *metrics;    /*  /metrics snapshot, NULL when off        */
    int64_t last_metrics_ms;
    int64_t last_sys_stats_ms;
    /*  The plugin host adds its own lines to /metrics and CTL stats.        */
    void (*plugin_metrics) (void *arg, void (*add) (void *sbuf, const char *fmt, ...), void *sbuf);
    cJSON *(*plugin_stats) (void *arg);
    /*  plugins.c: called repeatedly by the final drain; the first call asks
        plugin threads to finish, and it returns true while any still runs
        (they need the broker to take their last ACKs).                      */
    bool (*plugin_drain) (void *arg);
    void *plugin_metrics_arg;
    /*  main.c's reload (CTL reload answers with its result).  On success
        msg holds the keys that need a restart ("" when none), on failure
        the errors.                                                          */
    int (*reload_fn) (char *msg, size_t size);
};

/*  ---- broker.c: lifecycle and wire I/O -------------------------------- */
broker_t *broker_new (config_t *config);
void broker_destroy (broker_t **self_p);
int broker_bind (broker_t *self);
/*  Run until a signal flag asks to stop (see main.c).                       */
int broker_run (broker_t *self, volatile sig_atomic_t *stop_flag,
                volatile sig_atomic_t *reload_flag);
int broker_apply_config (broker_t *self, config_t *config);

/*  Send a BUSP message to a session: header, then up to two body frames
    (NULL to omit).  Body frames are copied (zmq_msg_copy) not consumed.
    Returns 0, -EAGAIN (HWM reached: nothing was sent) or -EHOSTUNREACH (the
    peer is gone; the session is marked dead).                               */
int broker_send (broker_t *self, session_t *session, const busp_header_t *h,
                 zmq_msg_t *body, zmq_msg_t *extra);
/*  The same with a header already encoded.                                 */
int broker_send_raw (broker_t *self, session_t *session, const uint8_t *header, size_t len,
                     zmq_msg_t *body, zmq_msg_t *extra);
int broker_send_json (broker_t *self, session_t *session, const busp_header_t *h,
                      cJSON *json);
void broker_send_error (broker_t *self, session_t *session, const uint8_t *rid,
                        uint16_t code, const char *reason);

/*  Route an accepted event to every matching channel.  publisher may be
    NULL (dead letters, replays).  Returns the number of channels reached.  */
size_t broker_route (broker_t *self, event_t *ev, session_t *publisher);

/*  ---- session.c ----------------------------------------------------- */
session_t *session_new (broker_t *broker, const uint8_t *rid, size_t rid_len,
                        const char *name, size_t name_len);
/*  End a session: its subscriptions end, throttles it holds lift.  The
    struct is freed after the current batch (pointers may still be held).   */
void session_end (session_t *self, const char *why);
void session_free (session_t **self_p);
sub_t *session_sub (session_t *self, uint32_t sub_id);
/*  Add throttle / lift: keep both sides of the relation in step.           */
void session_throttle (session_t *self, channel_t *channel);
void session_unthrottle (session_t *self, channel_t *channel);
/*  Send the PUBACK this session is owed (end of a batch, throttle lifted). */
void session_puback (session_t *self);

/*  ---- channel.c ----------------------------------------------------- */
channel_t *channel_new (broker_t *broker, const char *pattern, const char *group,
                        policy_t policy, uint32_t queue_limit, uint64_t queue_bytes_limit);
/*  Offer a fresh event: deliver now if a member has credit and nothing
    waits, else queue it under the overflow policy.                          */
void channel_offer (channel_t *self, event_t *ev, session_t *publisher);
/*  Queue a redelivery (never refused by a limit).                          */
void channel_redeliver (channel_t *self, event_t *ev, uint16_t attempt, int64_t not_before_ms);
/*  Deliver while members have credit and events wait.                      */
void channel_pump (channel_t *self);
void channel_add_member (channel_t *self, sub_t *sub);
/*  Remove a member; its in-flight deliveries go back to the group's queue
    (or are dropped for a plain subscription).  Ends the channel with its
    last member.                                                             */
void channel_remove_member (channel_t *self, sub_t *sub);
/*  End every member with SUBEND code/reason (overflow: disconnect).        */
void channel_end_all (channel_t *self, uint16_t code, const char *reason);
void channel_free (channel_t **self_p);
/*  Timer work: due NACK delays, ack timeouts, stalled sends.               */
void channel_tick (channel_t *self, int64_t now_ms);
void channel_mark_dirty (channel_t *self);
/*  Events waiting in the channel: queue, redeliveries and delayed NACKs.   */
size_t channel_waiting (const channel_t *self);
/*  True when a member could take a delivery now.                           */
bool channel_has_ready_member (const channel_t *self);

/*  ---- sub.c -------------------------------------------------------- */
sub_t *sub_new (session_t *session, uint32_t sub_id, const char *pattern);
void sub_free (sub_t **self_p);
/*  Send one DELIVER (spends credit, records in-flight for explicit acks).
    Returns 0, or -EAGAIN when the send could not be made (the caller keeps
    the event), -EHOSTUNREACH when the peer is gone.                         */
int sub_deliver (sub_t *self, event_t *ev, uint16_t attempt);
int sub_send_gap (sub_t *self, uint64_t dropped);
void sub_send_subend (sub_t *self, uint16_t code, const char *reason);
/*  ACK / NACK by delivery id: 0 or -ENOENT.                                 */
int sub_ack (sub_t *self, uint64_t delivery_id);
int sub_nack (sub_t *self, uint64_t delivery_id, uint8_t action, uint32_t delay_ms,
              const char *reason);
/*  Move every in-flight delivery out (for redelivery or drop).             */
typedef void (sub_inflight_fn) (event_t *ev, uint16_t attempt, void *arg);
void sub_drain_inflight (sub_t *self, sub_inflight_fn *fn, void *arg);
/*  Expire deliveries whose ack_wait has passed.                             */
void sub_check_timeouts (sub_t *self, int64_t now_ms);
size_t sub_inflight (const sub_t *self);
/*  The x-subscription name used on dead letters.                            */
void sub_describe (const sub_t *self, char *buf, size_t size);

/*  ---- subopts.c ----------------------------------------------------- */
typedef struct {
    uint32_t credit;
    bool ack_explicit;
    policy_t policy;
    uint32_t queue_limit;
    uint64_t queue_bytes;
    uint32_t ack_wait_ms;
    uint32_t max_deliver;
    char group [256];
    char durable [256];
    bool has_group, has_durable, has_from;
} subopts_t;
/*  Parse SUB options JSON (NULL/empty: defaults from config).  Returns 0 or
    -EINVAL with a message naming the key in err.                            */
int subopts_parse (subopts_t *opts, const config_t *config, const void *json, size_t size,
                   char *err, size_t err_size);

/*  ---- ctl.c -------------------------------------------------------- */
void ctl_handle (broker_t *self, session_t *session, uint32_t request_id,
                 const void *body, size_t size);
cJSON *ctl_stats (broker_t *self);

/*  ---- deadletter (in sub.c / dlq.c) ---------------------------------- */
void broker_dead_letter (broker_t *self, event_t *ev, const char *reason,
                         uint16_t attempts, const char *subscription);

/*  ---- logging ------------------------------------------------------ */
#include "log.h"

#endif
