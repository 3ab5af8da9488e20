#!/usr/bin/env python3
"""The broker core of issue 10, tried as a user and as a hostile client:
re-entrant dead letters, memory ceilings, what a subscription leaves when it
ends, stalls, restarts and scale.  Every test starts its own busd (most of
them need particular settings) and checks that it exits cleanly, so a
sanitizer report (use after free, leak) fails the test that caused it."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import Client  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def session(broker, name="py"):
    c = Client(broker.endpoint)
    c.hello(name)
    return c


def subscribe(c, sub_id, pattern, options=None):
    frames = [busp.sub(sub_id, pattern)]
    if options is not None:
        frames.append(json.dumps(options))
    c.send(*frames)
    d = c.expect(busp.SUBOK)
    assert d["sub_id"] == sub_id
    return d


def publish_all(p, topic, payloads, **kw):
    for x in payloads:
        p.publish(topic, x, **kw)
    while True:
        d = p.recv()
        if d["cmd"] == busp.PUBACK and d["seq"] >= p.seq:
            return
        assert d["cmd"] in (busp.PUBACK, busp.PING), d


def wait_for(cond, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def expect_subend(c, sub_id):
    """The SUBEND for sub_id (GAPs saying what went with the queue and
    further DELIVERs may come first)."""
    while True:
        d = c.recv()
        if d["cmd"] == busp.SUBEND and d["sub_id"] == sub_id:
            return d
        assert d["cmd"] in (busp.GAP, busp.DELIVER, busp.PING), d


def stats(b):
    c = session(b, "stats")
    st = c.ctl({"cmd": "stats"})["json"]
    c.close()
    return st


def stop_clean(b):
    rc = b.stop()
    assert rc == 0, "busd exited with %d (see busd-%d.log)" % (rc, b.port)


def dlq_feeder(b, topic, count):
    """A worker that dead-letters `count` events published on topic, so
    $dlq.<topic> carries them."""
    w = session(b, "worker")
    subscribe(w, 1, topic, {"ack": "explicit"})
    p = session(b, "feeder")
    publish_all(p, topic, [b"e%d" % i for i in range(count)])
    for _ in range(count):
        d = w.expect(busp.DELIVER)
        w.send(busp.nack(1, d["delivery_id"], 1, 0))
    return w, p


@test
def nack_dead_letter_into_own_full_queue():
    # The subscriber of $dlq.# dead-letters what it receives; the dead
    # letter of the dead letter lands in its own full queue, whose overflow
    # policy ends it: the NACK handler must not touch it afterwards.
    b = busp.Broker()
    try:
        s = session(b, "dlqwatch")
        subscribe(s, 7, "$dlq.#", {"ack": "explicit", "credit": 1, "queue_limit": 1,
                                   "overflow": "disconnect"})
        dlq_feeder(b, "re.x", 2)
        d = s.expect(busp.DELIVER)
        assert d["topic"] == "$dlq.re.x"
        wait_for(lambda: stats(b)["queued"] >= 1, what="second dead letter queued")
        s.send(busp.nack(7, d["delivery_id"], 1, 0))
        end = expect_subend(s, 7)
        assert end["code"] == 429, end
        st = stats(b)
        assert st["dead_lettered"] == 3, st
    finally:
        stop_clean(b)


@test
def ack_timeout_dead_letter_into_own_full_queue():
    # The same shape from the timer: an ack timeout past max_deliver
    # dead-letters into the expiring subscription's own full queue.
    b = busp.Broker()
    try:
        s = session(b, "dlqwatch")
        subscribe(s, 7, "$dlq.#", {"ack": "explicit", "credit": 1, "queue_limit": 1,
                                   "overflow": "disconnect", "ack_wait_ms": 300,
                                   "max_deliver": 1})
        dlq_feeder(b, "re.t", 2)
        d = s.expect(busp.DELIVER)
        assert d["topic"] == "$dlq.re.t"
        end = expect_subend(s, 7)
        assert end["code"] == 429, end
        assert stats(b)["dead_lettered"] == 3
    finally:
        stop_clean(b)


def metric(port, name):
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


@test
def counters_one_table_and_never_decrease():
    mport = busp.free_port()
    b = busp.Broker("--metrics", "127.0.0.1:%d" % mport)
    try:
        s = session(b, "dropper")
        subscribe(s, 1, "c.d", {"credit": 0, "overflow": "drop-new", "queue_limit": 1})
        p = session(b, "pub")
        publish_all(p, "c.d", [b"x"] * 5)
        st = stats(b)
        for key in ("sessions", "subscriptions", "accepted", "rejected", "duplicates",
                    "unrouted", "delivered", "redelivered", "dropped", "queued",
                    "inflight", "dead_lettered", "throttled_publishers",
                    "protocol_errors", "uptime_s", "discarded_on_end"):
            assert isinstance(st[key], int), key
        assert st["dropped"] == 4, st
        name = 'busd_events_dropped_total{policy="drop-new"}'
        wait_for(lambda: metric(mport, name) == 4, what="metrics to show 4 drops")
        s.send(busp.unsub(1))
        expect_subend(s, 1)
        wait_for(lambda: stats(b)["subscriptions"] == 0, what="subscription gone")
        time.sleep(1.5)                 # /metrics is refreshed every second
        assert metric(mport, name) == 4, "a Prometheus counter went down"
        assert metric(mport, "busd_events_accepted_total") == 5
        assert metric(mport, "busd_events_discarded_on_end_total") is not None
    finally:
        stop_clean(b)


def log_of(b):
    b.log.flush()
    with open("busd-%d.log" % b.port, "rb") as f:
        return f.read().decode("utf-8", "replace")


@test
def on_end_discard_counts_and_logs():
    b = busp.Broker()
    try:
        s = session(b, "leaver")
        subscribe(s, 3, "oe.d", {"ack": "explicit", "credit": 1})
        p = session(b, "pub")
        publish_all(p, "oe.d", [b"a", b"b", b"c"])
        s.expect(busp.DELIVER)          # one in flight, two queued
        s.send(busp.bye())
        wait_for(lambda: stats(b)["discarded_on_end"] == 3, what="3 discarded on end")
        wait_for(lambda: "leaver/3" in log_of(b) and "3 events discarded" in log_of(b),
                 what="the log line naming the subscription and the count")
        # a group leaves nothing while a member remains, then its last does
        g1, g2 = session(b, "g1"), session(b, "g2")
        for g in (g1, g2):
            subscribe(g, 1, "oe.g", {"group": "workers", "ack": "explicit", "credit": 1})
        publish_all(p, "oe.g", [b"x", b"y"])
        g1.expect(busp.DELIVER)
        g2.expect(busp.DELIVER)
        g1.send(busp.bye())
        g2.send(busp.credit(1, 1))
        g2.expect(busp.DELIVER)         # g1's delivery handed over
        assert stats(b)["discarded_on_end"] == 3
        g2.send(busp.bye())
        wait_for(lambda: stats(b)["discarded_on_end"] == 5, what="group leftovers counted")
        assert "'workers'" in log_of(b)
    finally:
        stop_clean(b)


@test
def on_end_dead_letter():
    b = busp.Broker()
    try:
        s = session(b, "careful")
        subscribe(s, 4, "oe.l", {"ack": "explicit", "credit": 1, "on_end": "dead-letter"})
        p = session(b, "pub")
        publish_all(p, "oe.l", [b"1", b"2", b"3"])
        s.expect(busp.DELIVER)
        s.send(busp.bye())
        c = session(b, "ctl")

        def three():
            dl = c.ctl({"cmd": "dlq-list", "topic": "oe.l"})["json"]["dead_letters"]
            return dl if len(dl) == 3 else None
        dl = wait_for(three, what="3 dead letters")
        assert all(d["reason"] == "subscription ended" for d in dl), dl
        assert all(d["subscription"] == "careful/4" for d in dl), dl
        st = stats(b)
        assert st["discarded_on_end"] == 0 and st["dead_lettered"] == 3, st
        # a bad value is refused naming the key
        s2 = session(b)
        s2.send(busp.sub(1, "oe.x"), json.dumps({"on_end": "keep"}))
        e = s2.expect(busp.SUBEND)
        assert e["code"] == 400 and "on_end" in e["reason"], e
    finally:
        stop_clean(b)


@test
def paused_broker_expires_nobody():
    # Stopped (SIGSTOP) for longer than session_timeout_ms while clients
    # keep sending heartbeats: after SIGCONT nobody is expired.
    b = busp.Broker("--session-timeout", "1000", "--heartbeat", "300")
    try:
        clients = [session(b, "c%d" % i) for i in range(3)]
        subscribe(clients[0], 1, "pause.x")
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            for n in range(25):                     # 2.5 s of heartbeats
                for c in clients:
                    c.send(busp.ping(n + 1))
                time.sleep(0.1)
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        for c in clients:
            c.send(busp.ping(1000))
        time.sleep(0.5)
        st = stats(b)
        assert st["sessions_expired"] == 0, st
        # the sessions are the same ones: no ERROR 401, and the sub delivers
        p = session(b, "pub")
        publish_all(p, "pause.x", [b"after"])
        while True:
            d = clients[0].recv()
            assert d["cmd"] in (busp.PONG, busp.PING, busp.DELIVER), d
            if d["cmd"] == busp.DELIVER:
                assert d["payload"] == b"after"
                break
        assert "expired" not in log_of(b)
    finally:
        stop_clean(b)


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS, shared_broker=False))
