/*  broker.h — what the broker's files call in each other.

    The structs are in state.h (with the layout of src/broker); the wire,
    routing, command and end-of-batch APIs in wire.h, route.h, commands.h
    and work.h.  This header gathers them for the files of the core.        */
#ifndef BUSD_BROKER_H_INCLUDED
#define BUSD_BROKER_H_INCLUDED

#include "state.h"
#include "wire.h"
#include "route.h"
#include "commands.h"
#include "work.h"

/*  ---- broker.c: lifecycle and the loop ----------------------------------- */
broker_t *broker_new (config_t *config);
void broker_destroy (broker_t **self_p);
int broker_bind (broker_t *self);
/*  Run until a signal flag asks to stop (see main.c).                       */
int broker_run (broker_t *self, volatile sig_atomic_t *stop_flag,
                volatile sig_atomic_t *reload_flag);
int broker_apply_config (broker_t *self, config_t *config);
/*  Refresh the broker's batch clocks.                                      */
void broker_clock (broker_t *self);


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
/*  Queue an event read from a durable stream (no overflow policy: the
    feeder bounds the queue), `attempt` deliveries already made.            */
void channel_feed (channel_t *self, event_t *ev, uint16_t attempt);
void channel_add_member (channel_t *self, sub_t *sub);
/*  Remove a member; its in-flight deliveries go back to the group's queue
    (or are dropped for a plain subscription).  Ends the channel with its
    last member.                                                             */
void channel_remove_member (channel_t *self, sub_t *sub);
/*  An event the channel's subscription leaves behind as it ends: dead-
    lettered or discarded and counted (PROTOCOL §4); takes the reference.
    channel_report_left logs how many, once.                                 */
void channel_leave (channel_t *self, event_t *ev, uint16_t attempts);
void channel_report_left (channel_t *self);
/*  End one member with SUBEND code/reason (its channel with it when it is
    the last).                                                               */
void channel_end_member (channel_t *self, sub_t *sub, uint16_t code, const char *reason);
/*  End every member with SUBEND code/reason (overflow: disconnect).        */
void channel_end_all (channel_t *self, uint16_t code, const char *reason);
void channel_free (channel_t **self_p);
/*  Add to broker->all_channels (removal is O(1), on end or free).           */
int channel_register (channel_t *self);
/*  Timer work: due NACK delays, ack timeouts, stalled sends; then sets the
    channel's next deadline (timers.c).  Called only when it is due.         */
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
/*  A delivery built into a DELIVERB that never left (the peer is gone):
    take back its attempt when it is in flight.                             */
void sub_unsent (sub_t *self, uint64_t delivery_id, uint16_t attempt);
int sub_send_gap (sub_t *self, uint64_t dropped);
/*  CREDIT from the client: that many DELIVERs were taken off the socket;
    credit grows, capped at max_credit.                                      */
void sub_add_credit (sub_t *self, uint32_t credit, uint64_t max_credit);
/*  The oldest count DELIVERs of the ring were read by the client (credit
    came back for them, or a read receipt covers them): they no longer
    count against queue_bytes.                                              */
void sub_wire_release (sub_t *self, uint64_t count);
/*  No more deliveries, whatever credit it grants later (a plugin instance
    of a generation a reload replaced): it finishes what it holds.          */
void sub_retire (sub_t *self);
void sub_send_subend (sub_t *self, uint16_t code, const char *reason);
/*  ACK / NACK by delivery id: 0 or -ENOENT.                                 */
int sub_ack (sub_t *self, uint64_t delivery_id);
int sub_nack (sub_t *self, uint64_t delivery_id, uint8_t action, uint32_t delay_ms,
              const char *reason);
/*  Move every in-flight delivery out (for redelivery or drop).             */
typedef void (sub_inflight_fn) (event_t *ev, uint16_t attempt, void *arg);
void sub_drain_inflight (sub_t *self, sub_inflight_fn *fn, void *arg);
/*  The deadline of the oldest delivery awaiting ACK, or -1.                */
int64_t sub_next_deadline (const sub_t *self);
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
    bool on_end_dead_letter;    /*  "on_end": "dead-letter"                 */
} subopts_t;
/*  Parse SUB options JSON (NULL/empty: defaults from config).  Returns 0 or
    -EINVAL with a message naming the key in err.                            */
int subopts_parse (subopts_t *opts, const config_t *config, const void *json, size_t size,
                   char *err, size_t err_size);

/*  ---- ctl.c -------------------------------------------------------- */
void ctl_handle (broker_t *self, session_t *session, uint32_t request_id,
                 const void *body, size_t size);
cJSON *ctl_stats (broker_t *self);

/*  ---- logging ------------------------------------------------------ */
#include "log.h"

/*  ---- limits.c ----------------------------------------------------- */
/*  Log a refusal by an abuse limit (429): the first one, then at most one
    line per LIMIT_LOG_MS with the count refused meanwhile, so a flood of
    refused requests cannot flood the log too.  who: client name or
    identity; what: the reason sent to the client.                          */
void broker_limit_log (broker_t *self, const char *who, const char *what);

#endif
