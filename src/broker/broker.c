/*  broker.c — the event loop: batches, timers, drain, lifecycle.

    The ROUTER is drained in batches: every readable wakeup receives up to
    BATCH_MAX messages without blocking, handles each (commands.c: routing
    PUBs and sending DELIVERs as it goes), and only then does the work of
    the batch (work.c): one cumulative PUBACK per publisher, pumps of the
    queues that changed, and whatever delivery deferred.  That keeps control
    traffic to a few messages per batch instead of one per event, and keeps
    control flowing one way (see state.h).                                   */
#include "broker.h"
#include "clock.h"
#include "blob.h"
#include "dedup.h"
#include "dlq.h"
#include "metrics.h"
#include "auth.h"
#include "durable.h"
#include "timers.h"
#include <errno.h>

#define BATCH_MAX       1024
#define TICK_MS         10
#define SESSION_SCAN_MS 100
#define STALL_MS        1000    /*  a scan this late means we did not run   */
#define SCAN_READ_BATCHES 64    /*  bound on reading before a scan          */

/*  ------------------------------------------------------------------
    Lifecycle                                                               */

broker_t *
broker_new (config_t *config)
{
    broker_t *self = calloc (1, sizeof (broker_t));
    if (!self)
        return NULL;
    self->config = config;
    self->sessions = zhashx_new ();
    self->groups = zhashx_new ();
    self->trie = trie_new ();
    self->loop = zloop_new ();
    self->bound = zlistx_new ();
    self->dedup = dedup_new (config->dedup_window_ms, (size_t) config->dedup_max);
    self->dlq = dlq_new ((size_t) config->dlq_max_count, (size_t) config->dlq_max_bytes);
    if (self->dedup)
        dedup_set_max_bytes (self->dedup, (size_t) config->dedup_max_bytes);
    if (!self->sessions || !self->groups || !self->trie || !self->loop || !self->bound
    ||  !self->dedup || !self->dlq) {
        broker_destroy (&self);
        return NULL;
    }
    //  Session index: keys are routing-id blobs (length first, blob.h).
    zhashx_set_key_hasher (self->sessions, busp_blob_hash);
    zhashx_set_key_comparator (self->sessions, busp_blob_compare);
    zhashx_set_key_duplicator (self->sessions, busp_blob_dup);
    zhashx_set_key_destructor (self->sessions, busp_blob_free);
    zlistx_set_destructor (self->bound, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator (self->bound, (zlistx_duplicator_fn *) strdup);
    broker_clock (self);
    self->started_ms = self->now_ms;
    if (durable_open (self)) {
        broker_destroy (&self);
        return NULL;
    }
    uint8_t rnd [8];
    FILE *urandom = fopen ("/dev/urandom", "rb");
    if (!urandom || fread (rnd, 1, sizeof rnd, urandom) != sizeof rnd) {
        uint64_t seed = (uint64_t) busp_wall_us () ^ ((uint64_t) getpid () << 32);
        memcpy (rnd, &seed, sizeof rnd);
    }
    if (urandom)
        fclose (urandom);
    snprintf (self->broker_id, sizeof self->broker_id, "busd-");
    for (int i = 0; i < 8; i++)
        snprintf (self->broker_id + 5 + i * 2, 3, "%02x", rnd [i]);
    return self;
}

void
broker_destroy (broker_t **self_p)
{
    broker_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (self->sessions) {
        //  Ending sessions ends their subscriptions and so every channel.
        session_t *session = zhashx_first (self->sessions);
        while (session) {
            session_end (session, "broker stopping");
            session = zhashx_first (self->sessions);
        }
        //  What they left is dead-lettered (on_end) into the store now,
        //  not dropped with the queue of work; this also frees them.
        work_end_batch (self);
    }
    //  Stream writes still queued (acks of the last batch) are committed.
    durable_flush (self);
    work_free (self);
    auth_stop (self);
    for (size_t i = 0; i < self->dead_sessions.size; i++) {
        session_t *session = self->dead_sessions.items [i];
        session_free (&session);
    }
    for (size_t i = 0; i < self->dead_channels.size; i++) {
        channel_t *channel = self->dead_channels.items [i];
        channel_free (&channel);
    }
    ptrvec_free (&self->dead_sessions);
    ptrvec_free (&self->dead_channels);
    ptrvec_free (&self->dirty_channels);
    ptrvec_free (&self->dirty_sessions);
    ptrvec_free (&self->receipt_sessions);
    ptrvec_free (&self->batch_sessions);
    ptrvec_free (&self->route_cache.channels);
    ptrvec_free (&self->all_channels);
    timers_free (self);
    zhashx_destroy (&self->sessions);
    zhashx_destroy (&self->groups);
    trie_destroy (&self->trie);
    durable_close (self);
    dedup_destroy (&self->dedup);
    dlq_destroy (&self->dlq);
    zloop_destroy (&self->loop);
    metrics_destroy (&self->metrics);
    if (self->router) {
        //  What was sent is owed to its peers: let ZeroMQ finish writing the
        //  last DELIVERs, PUBACKs and ERROR 503s (bounded by the drain
        //  deadline) instead of discarding them with the socket.
        int linger = (int) (self->config->drain_timeout_ms > 1000 ? self->config->drain_timeout_ms : 1000);
        zmq_setsockopt (self->router, ZMQ_LINGER, &linger, sizeof linger);
    }
    zsock_destroy (&self->router_sock);
    zlistx_destroy (&self->bound);
    free (self);
    event_pool_release ();
}

int
broker_bind (broker_t *self)
{
    //  The ZAP handler first: a handshake that finds none passes unchecked.
    int rc = auth_start (self);
    if (rc == 0)
        rc = wire_open (self);
    if (rc)
        return rc;
    if (self->config->metrics_bind) {
        self->metrics = metrics_new (self->config->metrics_bind);
        if (!self->metrics)
            return -EADDRINUSE;
        metrics_update (self->metrics, self);
    }
    return 0;
}

void
broker_clock (broker_t *self)
{
    self->now_ms = busp_mono_ms ();
    self->now_wall_us = busp_wall_us ();
}

static int
s_on_router (zloop_t *loop, zsock_t *sock, void *arg)
{
    broker_t *self = arg;
    broker_clock (self);
    //  auth.c: sessions whose connections closed are marked before anything
    //  in this batch could be sent to their routing ids.
    auth_poll_disconnects (self);
    zmq_msg_t frames [WIRE_MAX_FRAMES];
    for (int n = 0; n < BATCH_MAX; n++) {
        int nframes;
        bool too_many;
        int rc = wire_recv (self, frames, &nframes, &too_many);
        if (rc) {
            if (rc != -EAGAIN)
                log_error ("receive failed: %s", zmq_strerror (-rc));
            break;
        }
        commands_handle (self, frames, nframes, too_many);
        for (int i = 0; i < nframes; i++)
            zmq_msg_close (&frames [i]);
        self->stats.messages_in++;
    }
    self->stats.batches++;
    work_end_batch (self);
    return 0;
}

/*  ------------------------------------------------------------------
    Timers                                                                  */

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    broker_t *self = arg;
    //  Signals normally break zmq_poll with EINTR; this catches the rest
    //  (a flag set by CTL reload, a signal that landed between polls).
    if (self->stop_flag && (*self->stop_flag || *self->reload_flag) && !self->draining)
        return -1;
    broker_clock (self);
    int64_t now = self->now_ms;
    //  Only the channels whose deadline has come (timers.c).
    channel_t *channel;
    while ((channel = timers_pop_due (self, now)))
        if (!channel->dead)
            channel_tick (channel, now);
    dedup_expire (self->dedup, now);
    work_end_batch (self);
    return 0;
}

/*  PROTOCOL §4: messages waiting on the socket are read before sessions are
    expired, and time the broker itself did not run (SIGSTOP, a stall) is
    not a client's silence: clients whose heartbeats wait unread, or have
    not even reached the socket yet, are not expired for our pause.         */
static void
s_hear_before_expiring (broker_t *self)
{
    for (int i = 0; i < SCAN_READ_BATCHES; i++) {
        int events = 0;
        size_t size = sizeof events;
        if (zmq_getsockopt (self->router, ZMQ_EVENTS, &events, &size) || !(events & ZMQ_POLLIN))
            break;
        s_on_router (self->loop, self->router_sock, self);
    }
    broker_clock (self);
    int64_t gap = self->now_ms - self->last_scan_ms;
    self->last_scan_ms = self->now_ms;
    if (gap <= SESSION_SCAN_MS + STALL_MS)
        return;
    int64_t stall = gap - SESSION_SCAN_MS;
    log_notice ("the broker did not run for %lld ms: not counted as client silence",
                (long long) stall);
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        session->last_seen_ms += stall;
        if (session->last_seen_ms > self->now_ms)
            session->last_seen_ms = self->now_ms;
        if (session->ping_sent_ms)
            session->ping_sent_ms = self->now_ms;
        session = zhashx_next (self->sessions);
    }
}

static int
s_on_session_scan (zloop_t *loop, int timer_id, void *arg)
{
    broker_t *self = arg;
    s_hear_before_expiring (self);
    int64_t now = self->now_ms;
    ptrvec_t expired = { 0 };
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        int64_t silent = now - session->last_seen_ms;
        if (silent >= self->config->session_timeout_ms)
            ptrvec_add (&expired, session);
        else
        if (silent >= self->config->heartbeat_ms
        &&  (session->ping_sent_ms == 0 || now - session->ping_sent_ms >= self->config->heartbeat_ms)) {
            busp_header_t ping = { .command = BUSP_PING, .nonce = ++self->nonce };
            session->ping_sent_ms = now;
            wire_send (self, session, &ping, NULL, NULL);
        }
        session = zhashx_next (self->sessions);
    }
    for (size_t i = 0; i < expired.size; i++) {
        session = expired.items [i];
        if (session->dead)
            continue;
        log_info ("client '%s' (%s) expired after %lld ms of silence", session->name,
                  session->id_hex, (long long) (now - session->last_seen_ms));
        self->stats.sessions_expired++;
        session_end (session, "expired");
    }
    ptrvec_free (&expired);
    durable_tick (self);
    if (self->metrics && now - self->last_metrics_ms >= 1000) {
        metrics_update (self->metrics, self);
        self->last_metrics_ms = now;
    }
    if (self->config->stats_interval_ms > 0
    &&  now - self->last_sys_stats_ms >= self->config->stats_interval_ms) {
        route_sys_stats (self);
        self->last_sys_stats_ms = now;
    }
    work_end_batch (self);
    return 0;
}

int
broker_apply_config (broker_t *self, config_t *config)
{
    self->config = config;
    //  New connections get the new frame limit (max_payload may change).
    int64_t maxmsgsize = wire_max_msg_size (config);
    if (self->router)
        zmq_setsockopt (self->router, ZMQ_MAXMSGSIZE, &maxmsgsize, sizeof maxmsgsize);
    dedup_configure (self->dedup, config->dedup_window_ms, (size_t) config->dedup_max);
    dedup_set_max_bytes (self->dedup, (size_t) config->dedup_max_bytes);
    dlq_configure (self->dlq, (size_t) config->dlq_max_count, (size_t) config->dlq_max_bytes);
    durable_apply_config (self, config);
    return auth_reload (self, config);
}

/*  Stop: refuse new PUBs, deliver what subscribers have credit for until
    the queues are empty (or nobody has credit) or the deadline passes.     */
static void
s_drain (broker_t *self)
{
    self->draining = true;
    metrics_set_draining (self->metrics);
    int64_t deadline = busp_mono_ms () + self->config->drain_timeout_ms;
    while (busp_mono_ms () < deadline) {
        uint64_t waiting = 0;
        for (size_t i = 0; i < self->all_channels.size; i++) {
            channel_t *channel = self->all_channels.items [i];
            if (!channel->dead && channel_has_ready_member (channel))
                waiting += channel_waiting (channel);
        }
        //  plugins.c hook: plugin threads finish while we still read.
        bool plugins_busy = self->plugin_drain && self->plugin_drain (self->plugin_metrics_arg);
        if (waiting == 0 && !plugins_busy)
            break;
        //  Let clients send CREDIT and ACKs while we drain.
        zmq_pollitem_t item = { self->router, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 20) > 0)
            s_on_router (self->loop, self->router_sock, self);
        s_on_tick (self->loop, 0, self);
    }
    uint64_t left = 0;
    for (size_t i = 0; i < self->all_channels.size; i++) {
        channel_t *channel = self->all_channels.items [i];
        if (!channel->dead)
            left += channel_waiting (channel);
    }
    if (left)
        log_notice ("stopping with %llu queued events undelivered (no subscriber credit)",
                    (unsigned long long) left);
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        wire_send_error (self, session, NULL, BUSP_E_SHUTDOWN, "broker is shutting down");
        session = zhashx_next (self->sessions);
    }
}

int
broker_run (broker_t *self, volatile sig_atomic_t *stop_flag, volatile sig_atomic_t *reload_flag)
{
    self->stop_flag = stop_flag;
    self->reload_flag = reload_flag;
    if (!self->registered) {
        if (zloop_reader (self->loop, self->router_sock, s_on_router, self))
            return -EINVAL;
        zloop_reader_set_tolerant (self->loop, self->router_sock);
        if (zloop_timer (self->loop, TICK_MS, 0, s_on_tick, self) == -1
        ||  zloop_timer (self->loop, SESSION_SCAN_MS, 0, s_on_session_scan, self) == -1)
            return -ENOMEM;
        self->registered = true;
        self->last_scan_ms = busp_mono_ms ();
    }
    while (!*stop_flag) {
        zloop_start (self->loop);
        if (*reload_flag && !*stop_flag)
            return 1;           /*  main reloads and calls us again        */
    }
    log_notice ("stopping: draining queues (up to %lld ms)", (long long) self->config->drain_timeout_ms);
    s_drain (self);
    return 0;
}
