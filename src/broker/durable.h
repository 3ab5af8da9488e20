/*  durable.h — durable streams in the broker: the glue between the routing
    state (state.h) and the LMDB store (store.h).

    It owns three things the store does not know about:
      - PUBs held for the end-of-batch commit: an event a stream covers is
        appended to the store, routed only after its commit, and answered by
        PUBACK (committed) or REJECT 507/503 (not stored), so nothing is
        acknowledged that is not stored;
      - durable channels: a channel fed from a named cursor instead of the
        trie, a bounded window at a time, so a subscriber that falls behind
        costs store reads, never publisher backpressure or broker memory;
      - persistence of the dedup window and of dead letters.
    Without data_dir the broker runs memory-only and none of this exists
    (broker->durable is NULL).                                               */
#ifndef BUSD_DURABLE_H_INCLUDED
#define BUSD_DURABLE_H_INCLUDED

#include "state.h"
#include "broker.h"

typedef struct durable durable_t;

/*  Open the store in config->data_dir and the configured streams, and load
    the dedup window and dead letters back.  Memory-only (no data_dir) is 0
    with broker->durable NULL.  A store that cannot be opened is logged and
    left unavailable: PUBs its streams cover are REJECTed 503.               */
int durable_open (broker_t *self);
void durable_close (broker_t *self);
/*  Reload: new streams open, existing ones take their new limits.          */
void durable_apply_config (broker_t *self, const config_t *config);

/*  An accepted PUB's event (dedup already checked and added).  Returns 0
    when no stream covers it (route it now), 1 when it is held for the
    commit, or a REJECT code (503) with durable_reason giving why.           */
int durable_hold (broker_t *self, session_t *session, uint64_t pub_seq, event_t *ev);
/*  A PUB the dedup window calls a duplicate: when its original was stored
    in this batch and awaits the commit, the repeat is held too (1) and
    shares the original's fate: PUBACKed if the commit succeeds, REJECTed
    with it if not, so a failed commit never acknowledges the repeat.  0 when
    there is nothing to wait for; -ENOMEM.                                  */
int durable_hold_duplicate (broker_t *self, session_t *session, uint64_t pub_seq,
                            const char *topic, size_t topic_len, const char *msg_id,
                            size_t msg_id_len);
const char *durable_reason (broker_t *self);
/*  Commit now and route or reject what was held (before a command whose
    answer must not overtake the commit: PING after ACK, HELLO ...).        */
void durable_flush (broker_t *self);
/*  End of batch: flush, then refill durable channels whose queue runs low.
    Marks the channels it fed dirty.                                         */
void durable_end_batch (broker_t *self);
/*  The durable channel may feed again (channel_mark_dirty calls it): its
    member got credit, ACKed, joined, or the channel fed and pumped.        */
void durable_want_feed (channel_t *channel);
/*  Timer work: retention by age, dedup expiry, interval syncs.             */
void durable_tick (broker_t *self);

/*  SUB with "durable": answers SUBOK or SUBEND itself.                      */
void durable_subscribe (broker_t *self, session_t *session, uint32_t sub_id,
                        const char *pattern, const subopts_t *opts,
                        const void *body, size_t size);

/*  SUBOK stream_seq of a live (not durable) subscription: the seq the next
    event of the stream covering the pattern gets, 0 when none covers it.   */
uint64_t durable_next_seq (broker_t *self, const char *pattern);

/*  Hooks from sub.c / channel.c for channels with channel->durable set.    */
void durable_delivered (channel_t *channel, const event_t *ev, uint16_t attempt);
void durable_acked (channel_t *channel, const event_t *ev);
const char *durable_channel_name (const channel_t *channel);
void durable_channel_free (channel_t *channel);

/*  Dead letters: persist an added one / forget a removed one (dlq.c).      */
void durable_dlq_added (broker_t *self, uint64_t id);
void durable_dlq_removed (broker_t *self, uint64_t id);

/*  CTL: streams, stream-info, stream-purge, stream-delete.  Returns the
    CTLREPLY code and sets *reply (or a message in err).                     */
int durable_ctl (broker_t *self, const char *cmd, const cJSON *req, cJSON **reply,
                 char *err, size_t err_size);
/*  /metrics lines per stream and cursor.                                    */
void durable_metrics (broker_t *self, void (*add) (void *sbuf, const char *fmt, ...), void *sbuf);
/*  CTL stats keys.                                                          */
void durable_stats (broker_t *self, cJSON *json);

#endif
