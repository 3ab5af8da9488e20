/*  route.c — an accepted event to every channel whose pattern matches.

    The step between commands and channels: commands admit an event, route
    offers it through the trie, channels queue or deliver it.  Dead letters
    and $sys.stats enter here too, as events without a publisher.  Nothing
    in channel.c or sub.c calls back up into this file: they queue their
    dead letters (work.c), which come here at the end of the batch.          */
#include "broker.h"
#include "clock.h"
#include "dlq.h"

typedef struct {
    event_t *event;
    session_t *publisher;
    size_t reached;
} route_ctx_t;

static void
s_route_one (void *value, void *arg)
{
    route_ctx_t *ctx = arg;
    channel_t *channel = value;
    if (channel->dead)
        return;
    channel_offer (channel, ctx->event, ctx->publisher);
    ctx->reached++;
}

typedef struct {
    ptrvec_t *channels;
    bool failed;
} collect_t;

static void
s_collect (void *value, void *arg)
{
    collect_t *collect = arg;
    if (!collect->failed && ptrvec_push (collect->channels, value))
        collect->failed = true;
}

size_t
route_event (broker_t *self, event_t *ev, session_t *publisher)
{
    route_ctx_t ctx = { ev, publisher, 0 };
    route_cache_t *cache = &self->route_cache;
    unsigned long long generation = trie_generation (self->trie);
    if (cache->busy) {
        //  Routing from inside routing (not done today): no cache.
        trie_match (self->trie, ev->topic, ev->topic_len, s_route_one, &ctx);
        return ctx.reached;
    }
    if (!cache->valid || cache->generation != generation || cache->topic_len != ev->topic_len
    ||  memcmp (cache->topic, ev->topic, ev->topic_len) != 0) {
        cache->valid = false;
        cache->channels.size = 0;
        collect_t collect = { &cache->channels, false };
        trie_match (self->trie, ev->topic, ev->topic_len, s_collect, &collect);
        if (collect.failed) {
            //  Out of memory collecting: route straight from the trie.
            trie_match (self->trie, ev->topic, ev->topic_len, s_route_one, &ctx);
            return ctx.reached;
        }
        memcpy (cache->topic, ev->topic, ev->topic_len);
        cache->topic_len = ev->topic_len;
        cache->generation = generation;
        cache->valid = true;
    }
    cache->busy = true;
    for (size_t i = 0; i < cache->channels.size; i++)
        s_route_one (cache->channels.items [i], &ctx);
    cache->busy = false;
    return ctx.reached;
}


/*  The broker's own statistics as an event on $sys.stats, so dashboards
    can subscribe instead of polling CTL.                                    */
void
route_sys_stats (broker_t *self)
{
    cJSON *stats = ctl_stats (self);
    char *text = cJSON_PrintUnformatted (stats);
    cJSON_Delete (stats);
    if (!text)
        return;
    zmq_msg_t payload;
    zmq_msg_init_size (&payload, strlen (text));
    memcpy (zmq_msg_data (&payload), text, strlen (text));
    free (text);
    event_t *ev = event_new ("$sys.stats", 10, "", 0, &payload, NULL, self->now_wall_us);
    zmq_msg_close (&payload);
    if (!ev)
        return;
    route_event (self, ev, NULL);
    event_unref (&ev);
}

void
route_dead_letter (broker_t *self, event_t *ev, const char *reason,
                    uint16_t attempts, const char *subscription)
{
    self->stats.dead_lettered++;
    int64_t now = busp_wall_us ();
    dlq_add (self->dlq, ev, reason, attempts, subscription, now);
    log_info ("dead letter on '%s' from %s: %s (after %u attempts)", ev->topic, subscription,
              reason, attempts);

    char topic [300];
    int topic_len = snprintf (topic, sizeof topic, "$dlq.%s", ev->topic);
    if (topic_len > 255)
        return;                 /*  retained, not routable (PROTOCOL §6)    */
    cJSON *headers = dlq_headers (ev, reason, attempts, subscription);
    if (!headers)
        return;
    char *text = cJSON_PrintUnformatted (headers);
    cJSON_Delete (headers);
    if (!text)
        return;
    event_t *dead = event_new_copy (topic, (size_t) topic_len, ev->msg_id, ev->msg_id_len,
                                    ev->payload_data, ev->payload_size, text, strlen (text), now);
    free (text);
    if (!dead)
        return;
    route_event (self, dead, NULL);
    event_unref (&dead);
}
