/*  state.h — the routing state of busd: the structs every broker file shares.

    One thread owns everything declared here (the Redis model): sessions,
    subscriptions, channels and the routing trie are plain structs with
    direct pointers between them and no locks.

      session ──< sub >── channel ──< trie entry (pattern)
      (a client)   (SUB)   (a queue: one sub, or a queue group's members)

    A channel owns the queue and the overflow policy; a sub owns its credit,
    delivery ids and in-flight deliveries.  A plain subscription is a channel
    with one member, so groups cost nothing extra in the common path.

    Layout of src/broker: control flows one way,
        commands → route → trie → channel → sub → wire
    and anything that would flow back up (dead letters, redeliveries, lifted
    throttles, sessions that ended) is queued in work.c and done at the end
    of the batch or timer run, when no caller holds a pointer into the state.

      state.h     these structs (and ptrvec.c, their small helper)
      broker.c    the loop: batches off the ROUTER, timers, drain, lifecycle
      wire.c      the ROUTER socket: options, receiving a message, sending
                  BUSP messages (DELIVER, control); the only file that
                  touches the socket.  Batched frames (PUBB decode, DELIVERB
                  building) belong here.
      commands.c  one handler per client command (HELLO, PUB, SUB, CREDIT,
                  ACK ...): validation, admission, answers.  Authentication
                  and ACL checks (who may HELLO, publish, subscribe) go here,
                  before anything is routed.
      route.c     an accepted event to every matching channel via the trie;
                  dead letters ($dlq.<topic>); $sys.stats.  A durable stream
                  commit belongs here, before the event is offered (the
                  PUBACK is sent at the end of the batch, after the commit).
      work.c      the end-of-batch queue and the end of a batch: pending
                  work, cumulative PUBACKs, queue pumps, freeing what ended.
      channel.c   a queue with an overflow policy and its members
      sub.c       one subscription: credit, deliveries, in-flight, ACK/NACK
      session.c   one client: its subscriptions and publisher credit
      timers.c    channels by next deadline: the timer run costs what is due
      counters.h  every counter once: stats_t, CTL stats and /metrics
      ctl.c, metrics.c, subopts.c, dedup.c, dlq.c, queue.c, trie.c ...
                  leaves: they read the state or are used by the above.    */
#ifndef BUSD_STATE_H_INCLUDED
#define BUSD_STATE_H_INCLUDED

#include <czmq.h>
#include <cJSON.h>
#include "busp.h"
#include "event.h"
#include "queue.h"
#include "trie.h"
#include "config.h"
#include "counters.h"

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
bool ptrvec_remove (ptrvec_t *vec, void *item);
bool ptrvec_contains (const ptrvec_t *vec, const void *item);
void ptrvec_free (ptrvec_t *vec);

/*  Work found in the middle of a batch that must not run there (work.c).  */
typedef enum {
    WORK_DEAD_LETTER,           /*  event -> $dlq.<topic> and the store     */
    WORK_REDELIVER,             /*  event back into channel                 */
    WORK_UNTHROTTLE,            /*  channel lifts the throttles it holds    */
    WORK_SESSION_GONE,          /*  transport says the peer left            */
    WORK_SUB_OVER_LIMIT,        /*  end a subscription with SUBEND 429      */
    WORK_CHANNEL_OVERFLOW       /*  overflow disconnect: end every member   */
} work_kind_t;

typedef struct {
    work_kind_t kind;
    event_t *event;             /*  owned reference                         */
    channel_t *channel;
    session_t *session;
    uint32_t sub_id;
    uint16_t attempts;
    int64_t not_before_ms;
    char *reason;               /*  dead letters: x-reason, x-subscription  */
    char *subscription;
} work_item_t;

typedef struct {
    work_item_t *items;
    size_t size, cap;
} work_t;

/*  route.c's memory of the last topic routed.                              */
typedef struct {
    char topic [256];
    uint8_t topic_len;
    bool valid;
    bool busy;                  /*  in use by route_event (no re-entry)     */
    unsigned long long generation;
    ptrvec_t channels;          /*  channel_t * it matched, in trie order   */
} route_cache_t;

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
    /*  Memory this subscription holds outside its queue (sub.c): events in
        flight awaiting ACK, and DELIVERs handed to ZeroMQ that the client
        has not yet returned credit for (a ring of their sizes, oldest
        first).  Both count against the channel's queue_bytes.               */
    uint64_t inflight_bytes;
    uint64_t wire_bytes;
    uint32_t *wire_sizes;
    size_t wire_head, wire_len, wire_cap;
    uint64_t wire_total;        /*  DELIVERs ever pushed into the ring      */
    uint64_t receipt_mark;      /*  wire_total when the receipt PING left   */
    bool over_limit;            /*  ended with SUBEND 429 at end of batch   */
    bool retired;               /*  an old plugin generation: no more credit */
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
    bool on_end_dead_letter;    /*  leftovers dead-lettered, not discarded  */
    uint64_t left_behind;       /*  events left when the channel ended      */
    char name [300];            /*  x-subscription: group, or client/sub_id */
    uint64_t dropped;
    uint64_t delivered;
    bool dirty;                 /*  in the broker's pump list               */
    bool dead;                  /*  ended; freed after the current batch    */
    bool overflowed;            /*  overflow disconnect hit: ends at the end
                                    of the batch, takes nothing until then  */
    struct dchan *durable;      /*  fed from a stream cursor (durable.c)    */
    size_t all_slot;            /*  index in broker->all_channels + 1, or 0 */
    size_t timer_slot;          /*  index in broker->timers + 1, or 0       */
    int64_t timer_due;          /*  when channel_tick must run (timers.c)   */
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
    bool durable_held;          /*  has PUBs waiting for a commit (durable.c) */
    bool send_refused;          /*  a send hit the HWM (wire.c sets it)     */
    bool receipt_listed;        /*  in broker->receipt_sessions (receipt.c) */
    uint64_t receipt_nonce;     /*  the read-receipt PING awaiting its PONG */
    zhashx_t *subs;             /*  sub_id (as uint32 key) -> sub_t *       */
    uint64_t accepted;
    uint64_t rejected;
    uint64_t delivered;
    char peer [64];             /*  transport address at HELLO ("" if none)  */
    int64_t connected_us;       /*  wall clock at HELLO                     */
    /*  PROTOCOL §8: features both sides listed in HELLO.                    */
    bool feat_batch;
    bool feat_errctx;
    /*  DELIVERB being built (wire.c): records ready this loop iteration,
        sent at the end of the batch or before anything else this session
        is sent, so the session's order is the order of the sends.          */
    bool ob_listed;             /*  in broker->batch_sessions               */
    uint16_t ob_count;
    uint8_t *ob_buf;
    size_t ob_len, ob_cap;
    size_t ob_last_cap;         /*  the next buffer starts this large       */
    /*  The last topic this session published that passed the checks:
        publishers mostly repeat one topic, and a compare is cheaper than
        the grammar check.                                                  */
    uint8_t good_topic_len;
    char good_topic [255];
    /*  Security (auth.c): who this is and which connection it belongs to.
        id_hex holds the broker-assigned session id, never the routing id.  */
    char user_id [64];          /*  ZAP User-Id of its connection           */
    char identity [256];        /*  ACL identity                            */
    bool trusted;               /*  in-process (inproc://): plugins         */
    int fd;                     /*  its connection's socket (ZMQ_SRCFD)     */
    bool disconnected;          /*  that connection closed: send nothing    */
    double ctl_tokens;          /*  ctl_rate bucket                         */
    int64_t ctl_refill_ms;
    struct hostrep *hostrep;    /*  CTL plugin-host report (hosted.c)       */
};

#define POLICY_COUNT 5

/*  Counters since start, generated from counters.h; dropped_by_policy is
    kept broker-wide (not summed from live subscriptions) so /metrics never
    goes down when a subscription ends.                                      */
typedef struct {
#define BUSD_STATS_FIELD(field, key, metric, help) uint64_t field;
    BUSD_COUNTERS (BUSD_STATS_FIELD)
#undef BUSD_STATS_FIELD
    uint64_t dropped_by_policy [POLICY_COUNT];
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
    ptrvec_t receipt_sessions;  /*  sessions owed a read-receipt PING       */
    ptrvec_t dead_channels;
    ptrvec_t dead_sessions;
    work_t work;                /*  end-of-batch work (work.c)              */
    ptrvec_t batch_sessions;    /*  sessions with a DELIVERB being built    */
    /*  route.c: the channels the last routed topic matched, exact while
        the trie's generation is unchanged (publishers repeat topics, and
        tokenising and walking the trie was a tenth of the broker's work). */
    route_cache_t route_cache;
    /*  The header frame of the command being handled, for the error
        context of PROTOCOL §8.1 (NULL outside a command); errctx, when
        set, replaces it (an ACKB names the record that failed).             */
    const uint8_t *cur_header;
    size_t cur_header_size;
    const char *errctx;
    ptrvec_t all_channels;      /*  live channels (channel->all_slot)       */
    ptrvec_t timers;            /*  channels by next deadline (timers.c)    */
    dedup_t *dedup;
    dlq_t *dlq;
    struct durable *durable;    /*  durable streams; NULL: memory-only      */
    stats_t stats;
    uint64_t queued_bytes;      /*  across every queue: the broker-wide cap */
    uint64_t inflight_bytes;    /*  across every sub: counts against it too */
    uint64_t nonce;
    /*  Clocks read once per batch or timer run: per-event clock reads cost
        more than the routing itself, and within a batch they would differ
        by microseconds.                                                    */
    int64_t now_ms;
    int64_t now_wall_us;
    int64_t started_ms;
    int64_t last_scan_ms;       /*  session scan: detects a broker stall    */
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
    struct auth *auth;          /*  ZAP handler, credentials, ACL (auth.c)  */
    uint64_t session_serial;    /*  broker-assigned session ids             */
    uint64_t live_subs;         /*  sub_t alive: max_subscriptions          */
    int64_t limit_logged_ms;    /*  last abuse-limit log line (limits.c)    */
    uint64_t limit_quiet;       /*  refusals not logged since               */
};

#endif
