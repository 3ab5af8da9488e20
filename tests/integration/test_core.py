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


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS, shared_broker=False))
