#!/usr/bin/env python3
"""Overflow policies, GAPs, queue groups, explicit acks, redelivery and dead
letters, checked against a real busd with hand-built BUSP/1 frames."""
import json
import os
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


def drain(c, timeout_ms=300):
    """Everything that arrives until the socket is quiet (PINGs unanswered)."""
    return busp.drain(c, timeout_ms, answer_pings=False)


def nothing_more(c, timeout_ms=300):
    got = drain(c, timeout_ms)
    assert not got, "unexpected: %r" % got


def gap_total(msgs):
    return sum(d["dropped"] for d in msgs if d["cmd"] == busp.GAP)


def payloads(msgs):
    return [d["payload"] for d in msgs if d["cmd"] == busp.DELIVER]


@test
def drop_oldest_keeps_newest_and_reports_gap(b):
    s = session(b)
    subscribe(s, 1, "p.o", {"credit": 0, "overflow": "drop-oldest", "queue_limit": 5})
    p = session(b)
    publish_all(p, "p.o", [b"%d" % i for i in range(20)])
    s.send(busp.credit(1, 100))
    got = drain(s)
    assert got[0]["cmd"] == busp.GAP, got[0]
    assert gap_total(got) == 15
    assert payloads(got) == [b"%d" % i for i in range(15, 20)]


@test
def drop_new_keeps_oldest(b):
    s = session(b)
    subscribe(s, 1, "p.n", {"credit": 0, "overflow": "drop-new", "queue_limit": 5})
    p = session(b)
    publish_all(p, "p.n", [b"%d" % i for i in range(20)])
    s.send(busp.credit(1, 100))
    got = drain(s)
    assert gap_total(got) == 15
    assert payloads(got) == [b"%d" % i for i in range(5)]


@test
def queue_bytes_limit_drops_by_size(b):
    s = session(b)
    d = subscribe(s, 1, "p.bytes", {"credit": 0, "overflow": "drop-new",
                                    "queue_bytes": 4096})
    assert d["json"]["queue_bytes"] == 4096
    p = session(b)
    publish_all(p, "p.bytes", [b"%04d" % i + b"x" * 996 for i in range(10)])
    s.send(busp.credit(1, 100))
    got = drain(s)
    kept = payloads(got)
    assert 2 <= len(kept) <= 4, len(kept)
    assert gap_total(got) + len(kept) == 10
    assert kept == [b"%04d" % i + b"x" * 996 for i in range(len(kept))]


@test
def latest_conflates_per_topic(b):
    s = session(b)
    subscribe(s, 1, "typing.*", {"credit": 0, "overflow": "latest", "queue_limit": 2})
    p = session(b)
    for i in range(10):
        p.publish("typing.alice", b"a%d" % i)
        p.publish("typing.bob", b"b%d" % i)
    p.publish("typing.carol", b"c0")   # a third topic: the oldest waiting goes
    publish_all(p, "typing.bob", [b"b-last"])
    s.send(busp.credit(1, 100))
    got = drain(s)
    delivered = [(d["topic"], d["payload"]) for d in got if d["cmd"] == busp.DELIVER]
    assert delivered == [("typing.carol", b"c0"), ("typing.bob", b"b-last")], delivered
    assert gap_total(got) + len(delivered) == 22


@test
def disconnect_ends_subscription_with_429(b):
    s = session(b)
    subscribe(s, 1, "p.d", {"credit": 0, "overflow": "disconnect", "queue_limit": 3})
    p = session(b)
    publish_all(p, "p.d", [b"%d" % i for i in range(10)])   # never blocks
    got = drain(s)
    ends = [d for d in got if d["cmd"] == busp.SUBEND]
    assert len(ends) == 1 and ends[0]["code"] == 429 and ends[0]["sub_id"] == 1, got
    s.send(busp.credit(1, 1))
    d = s.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 404


@test
def group_delivers_each_event_once(b):
    members = [session(b, "m%d" % i) for i in range(3)]
    for m in members:
        subscribe(m, 1, "jobs.*", {"group": "workers", "credit": 1000})
    p = session(b)
    publish_all(p, "jobs.x", [b"%d" % i for i in range(300)])
    seen = []
    counts = []
    for m in members:
        got = payloads(drain(m))
        counts.append(len(got))
        seen += got
    assert sorted(seen, key=int) == [b"%d" % i for i in range(300)], counts
    assert all(c > 0 for c in counts), counts


@test
def group_conflicting_options_409(b):
    a = session(b)
    subscribe(a, 1, "g.c", {"group": "g1", "overflow": "drop-new"})
    c = session(b)
    c.send(busp.sub(1, "g.c"), json.dumps({"group": "g1", "overflow": "block"}))
    d = c.recv()
    assert d["cmd"] == busp.SUBEND and d["code"] == 409, d


@test
def group_member_leaving_hands_over_inflight(b):
    m1 = session(b, "m1")
    m2 = session(b, "m2")
    subscribe(m1, 1, "work", {"group": "g", "ack": "explicit", "credit": 100})
    subscribe(m2, 1, "work", {"group": "g", "ack": "explicit", "credit": 0})
    p = session(b)
    publish_all(p, "work", [b"%d" % i for i in range(10)])
    got1 = payloads(drain(m1))
    assert len(got1) == 10
    m1.send(busp.bye())          # leaves with 10 unacknowledged deliveries
    time.sleep(0.1)
    m2.send(busp.credit(1, 100))
    got2 = [d for d in drain(m2) if d["cmd"] == busp.DELIVER]
    assert sorted(d["payload"] for d in got2) == sorted(got1)
    assert all(d["attempt"] == 2 for d in got2), got2


@test
def explicit_ack_redelivers_after_ack_wait(b):
    s = session(b)
    subscribe(s, 1, "a.w", {"ack": "explicit", "ack_wait_ms": 200, "max_deliver": 3})
    p = session(b)
    publish_all(p, "a.w", [b"payload"], msg_id="m-42",
                headers=b'{"h":"v"}')
    d1 = s.expect(busp.DELIVER)
    t1 = time.time()
    d2 = s.expect(busp.DELIVER)
    assert time.time() - t1 >= 0.15
    assert d1["attempt"] == 1 and d2["attempt"] == 2
    assert d2["delivery_id"] == d1["delivery_id"] + 1
    s.send(busp.ack(1, d1["delivery_id"]))      # superseded: 404
    e = s.expect(busp.ERROR)
    assert e["code"] == 404
    d3 = s.expect(busp.DELIVER)
    assert d3["attempt"] == 3
    # third attempt not acknowledged either: dead letter, not a fourth try
    time.sleep(0.4)
    nothing_more(s)
    c = session(b)
    dl = c.ctl({"cmd": "dlq-list", "topic": "a.w"})["json"]["dead_letters"]
    assert len(dl) == 1, dl
    assert dl[0]["reason"] == "max_deliver 3 reached" and dl[0]["attempts"] == 3
    assert dl[0]["msg_id"] == "m-42" and dl[0]["size"] == 7
    assert dl[0]["subscription"] == "py/1"


@test
def ack_stops_redelivery(b):
    s = session(b)
    subscribe(s, 1, "a.s", {"ack": "explicit", "ack_wait_ms": 200})
    p = session(b)
    publish_all(p, "a.s", [b"x"])
    d = s.expect(busp.DELIVER)
    s.send(busp.ack(1, d["delivery_id"]))
    nothing_more(s, 500)
    s.send(busp.ack(1, d["delivery_id"]))       # twice: gone
    assert s.expect(busp.ERROR)["code"] == 404


@test
def nack_delay_is_honoured(b):
    s = session(b)
    subscribe(s, 1, "n.d", {"ack": "explicit"})
    p = session(b)
    publish_all(p, "n.d", [b"x"])
    d = s.expect(busp.DELIVER)
    t = time.time()
    s.send(busp.nack(1, d["delivery_id"], 0, 400))
    d2 = s.expect(busp.DELIVER)
    assert time.time() - t >= 0.39, time.time() - t
    assert d2["attempt"] == 2 and d2["payload"] == b"x"
    s.send(busp.ack(1, d2["delivery_id"]))


@test
def nack_dead_letter_with_headers_then_replay(b):
    watcher = session(b, "watcher")
    subscribe(watcher, 9, "$dlq.#")
    s = session(b, "worker")
    subscribe(s, 1, "orders.*", {"ack": "explicit"})
    p = session(b)
    publish_all(p, "orders.new", [b"poison"], msg_id="o-1", headers=b'{"k":"v"}')
    d = s.expect(busp.DELIVER)
    s.send(busp.nack(1, d["delivery_id"], 1, 0), b'{"reason":"cannot parse"}')
    dl = watcher.expect(busp.DELIVER)
    assert dl["topic"] == "$dlq.orders.new" and dl["payload"] == b"poison"
    assert dl["msg_id"] == "o-1"
    h = json.loads(dl["headers"])
    assert h["k"] == "v" and h["x-reason"] == "cannot parse"
    assert h["x-attempts"] == "1" and h["x-subscription"] == "worker/1"
    assert h["x-original-seq"] == "0"
    c = session(b)
    lst = c.ctl({"cmd": "dlq-list", "topic": "orders.#"})["json"]["dead_letters"]
    assert len(lst) == 1 and lst[0]["reason"] == "cannot parse"
    # a fresh subscriber gets the replayed event; the store empties
    fresh = session(b, "fresh")
    subscribe(fresh, 1, "orders.new")
    r = c.ctl({"cmd": "dlq-replay", "ids": [lst[0]["id"]]}, 2)
    assert r["code"] == 200 and r["json"]["replayed"] == 1
    got = fresh.expect(busp.DELIVER)
    assert got["payload"] == b"poison" and got["msg_id"] == "o-1"
    assert json.loads(got["headers"]) == {"k": "v"}
    assert c.ctl({"cmd": "dlq-list", "topic": "orders.#"}, 3)["json"]["dead_letters"] == []


@test
def dlq_ids_must_be_whole_numbers(b):
    # an id no dead letter can have is ERROR 400 in every dlq command, never
    # converted blindly: 1.5 is not dead letter 1, -1 and 1e300 are undefined
    s = session(b, "worker")
    subscribe(s, 1, "oor.x", {"ack": "explicit"})
    p = session(b)
    publish_all(p, "oor.x", [b"bad"])
    d = s.expect(busp.DELIVER)
    s.send(busp.nack(1, d["delivery_id"], 1, 0))
    c = session(b)
    deadline = time.time() + 30
    lst = []
    while not lst and time.time() < deadline:
        lst = c.ctl({"cmd": "dlq-list", "topic": "oor.x"})["json"]["dead_letters"]
        time.sleep(0 if lst else 0.05)
    assert lst, "no dead letter on oor.x"
    n = lst[0]["id"]
    for i, bad in enumerate([n + 0.5, -1, 1e300]):
        r = c.ctl({"cmd": "dlq-show", "id": bad}, 10 + i)
        assert r["code"] == 400, r
        r = c.ctl({"cmd": "dlq-purge", "ids": [bad]}, 20 + i)
        assert r["code"] == 400, r
        r = c.ctl({"cmd": "dlq-replay", "ids": [bad]}, 30 + i)
        assert r["code"] == 400, r
    assert c.ctl({"cmd": "dlq-show", "id": n}, 40)["code"] == 200
    assert c.ctl({"cmd": "dlq-purge", "ids": [n]}, 41)["code"] == 200


@test
def dedup_three_sends_one_delivery(b):
    s = session(b)
    subscribe(s, 1, "idem")
    p = session(b)
    publish_all(p, "idem", [b"x", b"x", b"x"], msg_id="dup-1")
    assert len(payloads(drain(s))) == 1
    st = p.ctl({"cmd": "stats"})["json"]
    assert st["duplicates"] >= 2


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS))
