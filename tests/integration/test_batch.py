#!/usr/bin/env python3
"""Conformance tests for PROTOCOL §8 (features negotiated in HELLO: `batch`
with PUBB / DELIVERB / ACKB, and `error-context`), with frames built by hand
through busp.py, against a real busd.

Every malformed batch form must be ERROR 400 as a whole with no effect (no
pub_seq consumed, no credit spent, nothing routed); good and bad records in
one PUBB are answered record by record; credit and GAP rules hold per
record; DELIVERs and DELIVERB records keep one order; and a session that
lists no features sees exactly the protocol of §1-§7.
"""
import json
import struct
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
import busp  # noqa: E402
from busp import Broker, Client  # noqa: E402

TESTS = []
MAX_PAYLOAD = 1048576


def test(fn):
    TESTS.append(fn)
    return fn


def session(broker, name="py", features=("batch", "error-context")):
    c = Client(broker.endpoint)
    if features is None:
        c.send(busp.hello(name))
    else:
        c.send(busp.hello(name), json.dumps({"features": list(features)}))
    c.seq = 0
    c.welcome = c.expect(busp.WELCOME)
    return c


def subscribe(c, sub_id, pattern, options=None):
    frames = [busp.sub(sub_id, pattern)]
    if options is not None:
        frames.append(json.dumps(options))
    c.send(*frames)
    d = c.expect(busp.SUBOK)
    assert d["sub_id"] == sub_id
    return d


def send_pubb(c, records, first=None):
    """Send a PUBB of records (bytes each); returns the first pub_seq."""
    first = c.seq + 1 if first is None else first
    c.send(busp.pubb(first, len(records)), b"".join(records))
    c.seq = first + len(records) - 1
    return first


def until_acked(c, seq):
    """Read until a PUBACK covers seq: (rejects, credit returned, others)."""
    rejects, credit, others = [], 0, []
    while True:
        d = c.recv()
        if d["cmd"] == busp.REJECT:
            rejects.append(d)
        elif d["cmd"] == busp.PUBACK:
            credit += d["credit"]
            if d["seq"] >= seq:
                return rejects, credit, others
        elif d["cmd"] == busp.PING:
            c.send(struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))
        else:
            others.append(d)


def deliveries(c, n):
    """Read until n deliveries arrived (DELIVER or DELIVERB records), with
    GAPs in their place; returns (events in order, raw messages)."""
    events, raw = [], []
    while sum(1 for e in events if e["cmd"] == busp.DELIVER) < n:
        d = c.expect_any()
        raw.append(d)
        if d["cmd"] == busp.DELIVERB:
            events.extend(d["records"])
        elif d["cmd"] in (busp.DELIVER, busp.GAP):
            events.append(d)
        else:
            raise AssertionError("unexpected %r" % d)
    return events, raw


def _expect_any(self):
    while True:
        d = self.recv()
        if d["cmd"] == busp.PING:
            self.send(struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))
            continue
        return d


Client.expect_any = _expect_any


def silent(c, ms=300):
    """Nothing arrives for ms (the broker answered everything before)."""
    c.sock.setsockopt(busp.zmq.RCVTIMEO, ms)
    try:
        d = c.recv()
        raise AssertionError("unexpected %r" % d)
    except busp.zmq.Again:
        pass
    finally:
        c.sock.setsockopt(busp.zmq.RCVTIMEO, 3000)


def sync(c):
    """A PING round trip: everything sent before it was handled."""
    c.send(busp.ping(4242))
    d = c.expect(busp.PONG)
    assert d["nonce"] == 4242


def inflight(c, client, request_id):
    subs = c.ctl({"cmd": "subscriptions"}, request_id)["json"]["subscriptions"]
    return [x["inflight"] for x in subs if x["client"] == client]


def stats(c, request_id=77):
    return c.ctl({"cmd": "stats"}, request_id)["json"]


@test
def welcome_negotiates_features(b):
    c = session(b, features=("batch", "no-such-feature", "error-context"))
    info = c.welcome["json"]
    assert sorted(info["features"]) == ["batch", "error-context"], info
    assert info["batch_max"] >= 64, info
    assert info["batch_bytes"] >= c.welcome["max_payload"] + 1024, info
    only = session(b, features=("error-context",))
    assert only.welcome["json"]["features"] == ["error-context"]
    none = session(b, features=())
    assert none.welcome["json"]["features"] == []
    # HELLO without the key: WELCOME as before features existed
    old = session(b, features=None)
    for key in ("features", "batch_max", "batch_bytes"):
        assert key not in old.welcome["json"], old.welcome["json"]
    # a features value that is not an array of strings is malformed
    bad = Client(b.endpoint)
    for opts in ({"features": "batch"}, {"features": [1]}):
        bad.send(busp.hello("bad"), json.dumps(opts))
        d = bad.expect(busp.ERROR)
        assert d["code"] == 400, d


@test
def malformed_batches_are_400_with_no_effect(b):
    s = session(b, "watch")
    subscribe(s, 1, "mb.#")
    c = session(b, "mal")
    max_count = c.welcome["json"]["batch_max"]
    max_bytes = c.welcome["json"]["batch_bytes"]
    good = busp.pub_record("mb.x", b"payload")
    before = stats(c, 1)
    bad = [
        ("count 0", [busp.pubb(1, 0), good]),
        ("count 0, no body", [busp.pubb(1, 0)]),
        ("count above batch_max", [busp.pubb(1, max_count + 1), good * (max_count + 1)]),
        ("fewer records than count", [busp.pubb(1, 3), good * 2]),
        ("more records than count", [busp.pubb(1, 1), good * 2]),
        ("a trailing byte", [busp.pubb(1, 1), good + b"\0"]),
        ("a missing byte", [busp.pubb(1, 1), good[:-1]]),
        ("no body", [busp.pubb(1, 1)]),
        ("topic str8 overruns", [busp.pubb(1, 1), b"\xff" + good[1:]]),
        ("headers size overruns", [busp.pubb(1, 1),
                                   busp.s8("mb.x") + busp.s8("") + struct.pack(">I", 0xFFFFFFFF)
                                   + struct.pack(">I", 1) + b"x"]),
        ("payload size overruns", [busp.pubb(1, 1),
                                   busp.s8("mb.x") + busp.s8("") + struct.pack(">I", 0)
                                   + struct.pack(">I", 2) + b"x"]),
        ("body above batch_bytes", [busp.pubb(1, 1),
                                    busp.pub_record("mb.x", b"x" * (max_bytes + 1))]),
        ("first_pub_seq not next", [busp.pubb(2, 1), good]),
        ("first_pub_seq 0", [busp.pubb(0, 1), good]),
        ("a third frame", [busp.pubb(1, 1), good, b"{}"]),
        ("header too short", [busp.pubb(1, 1)[:-1], good]),
        ("header too long", [busp.pubb(1, 1) + b"\0", good]),
    ]
    for what, frames in bad:
        c.send(*frames)
        d = c.expect_any()
        assert d["cmd"] == busp.ERROR and d["code"] == 400, (what, d)
        assert d["context"]["cmd"] == "PUBB", (what, d)
        if len(frames[0]) >= 10:
            assert d["context"]["pub_seq"] == struct.unpack_from(">Q", frames[0], 2)[0], (what, d)
    sync(c)
    after = stats(c, 2)
    for key in ("accepted", "rejected", "duplicates", "unrouted"):
        assert after[key] == before[key], (key, before, after)
    assert after["protocol_errors"] >= before["protocol_errors"] + len(bad)
    silent(s)
    # nothing consumed: pub_seq 1 is still next and the whole window is there
    first = send_pubb(c, [busp.pub_record("mb.ok", b"%d" % i) for i in range(c.welcome["pub_credit"])])
    assert first == 1
    rejects, credit, _ = until_acked(c, c.welcome["pub_credit"])
    assert rejects == [] and credit == c.welcome["pub_credit"], (rejects, credit)
    events, _ = deliveries(s, c.welcome["pub_credit"])
    assert [e["payload"] for e in events] == [b"%d" % i for i in range(c.welcome["pub_credit"])]


@test
def batch_commands_need_the_feature(b):
    for features in (None, (), ("error-context",)):
        c = session(b, "nofeat", features=features)
        c.send(busp.pubb(1, 1), busp.pub_record("nf.x", b"x"))
        d = c.expect(busp.ERROR)
        assert d["code"] == 400, d
        c.send(busp.ackb(1), busp.ack_record(1, 1))
        d = c.expect(busp.ERROR)
        assert d["code"] == 400, d
        # pub_seq 1 was not consumed
        c.publish("nf.x", b"x")
        a = c.expect(busp.PUBACK)
        assert a["seq"] == 1 and a["credit"] == 1, a


@test
def mixed_records_answered_one_by_one(b):
    s = session(b, "mixsub")
    subscribe(s, 5, "mix.#")
    c = session(b, "mixpub")
    records = [
        busp.pub_record("mix.a", b"first"),                          # 1 ok
        busp.pub_record("mix..bad", b"x"),                           # 2 400 topic
        busp.pub_record("$sys.x", b"x"),                             # 3 403
        busp.pub_record("mix.big", b"x" * (MAX_PAYLOAD + 1)),        # 4 413
        busp.pub_record("mix.h", b"x", headers=b'{"a":"b"}xyz'),     # 5 400 headers
        busp.pub_record("mix.h", b"x", headers=b'{"a":"\xff"}'),     # 6 400 UTF-8
        busp.pub_record("mix.h", b"x", headers=b'{"a":1}'),          # 7 400 value
        busp.pub_record("mix.b", b"last", msg_id="m-7",
                        headers=b'{"trace":"t1"}'),                 # 8 ok
        busp.pub_record("mix.b", b"again", msg_id="m-7"),            # 9 duplicate
    ]
    send_pubb(c, records)
    rejects, credit, _ = until_acked(c, 9)
    assert [(r["seq"], r["code"]) for r in rejects] == [
        (2, 400), (3, 403), (4, 413), (5, 400), (6, 400), (7, 400)], rejects
    assert credit == 9, credit
    events, _ = deliveries(s, 2)
    assert [(e["topic"], e["payload"]) for e in events] == [
        ("mix.a", b"first"), ("mix.b", b"last")], events
    assert events[1]["headers"] == b'{"trace":"t1"}' and events[1]["msg_id"] == "m-7"
    assert [e["delivery_id"] for e in events] == [1, 2]
    silent(s)


@test
def publisher_credit_per_record(b):
    b2 = Broker("--pub-credit", "4")
    try:
        c = session(b2, "cred")
        assert c.welcome["pub_credit"] == 4
        send_pubb(c, [busp.pub_record("cr.x", b"%d" % i) for i in range(6)])
        rejects, credit, _ = until_acked(c, 6)
        assert [(r["seq"], r["code"]) for r in rejects] == [(5, 429), (6, 429)], rejects
        assert credit == 4, credit
    finally:
        b2.stop()


@test
def subscriber_credit_and_gap_per_record(b):
    s = session(b, "gapsub")
    subscribe(s, 2, "gp.x", {"credit": 3, "overflow": "drop-new", "queue_limit": 2})
    c = session(b, "gappub")
    send_pubb(c, [busp.pub_record("gp.x", b"%d" % i) for i in range(10)])
    until_acked(c, 10)
    events, raw = deliveries(s, 3)
    assert [e["payload"] for e in events] == [b"0", b"1", b"2"], events
    # three records that found credit together travel together
    assert raw[0]["cmd"] == busp.DELIVERB and raw[0]["count"] == 3, raw
    silent(s)
    s.send(busp.credit(2, 10))
    events, raw = deliveries(s, 2)
    # the GAP (5 dropped by drop-new) precedes the records after it
    assert events[0]["cmd"] == busp.GAP and events[0]["dropped"] == 5, events
    assert [e["payload"] for e in events[1:]] == [b"3", b"4"], events
    assert [e["delivery_id"] for e in events[1:]] == [4, 5]
    silent(s)


@test
def records_of_two_subscriptions_spend_their_own_credit(b):
    s = session(b, "twosubs")
    subscribe(s, 1, "two.x", {"credit": 2})
    subscribe(s, 2, "two.#", {"credit": 5})
    c = session(b, "twopub")
    send_pubb(c, [busp.pub_record("two.x", b"%d" % i) for i in range(4)])
    until_acked(c, 4)
    events, raw = deliveries(s, 6)
    by_sub = {}
    for e in events:
        by_sub.setdefault(e["sub_id"], []).append((e["delivery_id"], e["payload"]))
    assert by_sub[1] == [(1, b"0"), (2, b"1")], by_sub
    assert by_sub[2] == [(i + 1, b"%d" % i) for i in range(4)], by_sub
    # ready together: one DELIVERB carries the records of both subscriptions
    assert raw[0]["cmd"] == busp.DELIVERB and {r["sub_id"] for r in raw[0]["records"]} == {1, 2}, raw
    silent(s)
    s.send(busp.credit(1, 5))
    events, _ = deliveries(s, 2)
    assert [(e["sub_id"], e["delivery_id"], e["payload"]) for e in events] == [
        (1, 3, b"2"), (1, 4, b"3")], events


@test
def order_across_deliver_and_deliverb(b):
    s = session(b, "ordsub")
    subscribe(s, 3, "ord.#")
    c = session(b, "ordpub")
    sizes = [10, 20000, 10, 10, 300000, 10, 9000, 10]
    records = [busp.pub_record("ord.x", bytes([65 + i]) * n) for i, n in enumerate(sizes)]
    send_pubb(c, records)
    until_acked(c, len(records))
    events, raw = deliveries(s, len(records))
    assert [len(e["payload"]) for e in events] == sizes
    assert [e["payload"][:1] for e in events] == [bytes([65 + i]) for i in range(len(sizes))]
    assert [e["delivery_id"] for e in events] == list(range(1, len(sizes) + 1))
    kinds = {d["cmd"] for d in raw}
    assert kinds == {busp.DELIVER, busp.DELIVERB}, raw
    # and the same subscriber fed by plain PUBs keeps one order too
    p = session(b, "ordplain", features=None)
    for i in range(20):
        p.publish("ord.y", b"%d" % i)
    until_acked(p, 20)
    events, _ = deliveries(s, 20)
    assert [e["payload"] for e in events] == [b"%d" % i for i in range(20)]


@test
def ready_records_share_one_deliverb(b):
    s = session(b, "bigsub")
    subscribe(s, 4, "rd.x")
    c = session(b, "bigpub")
    send_pubb(c, [busp.pub_record("rd.x", b"e%d" % i) for i in range(200)])
    until_acked(c, 200)
    events, raw = deliveries(s, 200)
    assert [e["payload"] for e in events] == [b"e%d" % i for i in range(200)]
    assert len(raw) == 1 and raw[0]["count"] == 200, [d.get("count") for d in raw]
    # an event alone leaves at once, without waiting for more
    c.send(busp.pub(201, "rd.x"), b"alone")
    c.seq = 201
    events, raw = deliveries(s, 1)
    assert events[0]["payload"] == b"alone"


@test
def ackb_acks_record_by_record(b):
    s = session(b, "acker")
    subscribe(s, 1, "ak.x", {"ack": "explicit"})
    c = session(b, "akpub")
    send_pubb(c, [busp.pub_record("ak.x", b"%d" % i) for i in range(4)])
    until_acked(c, 4)
    events, _ = deliveries(s, 4)
    assert [e["delivery_id"] for e in events] == [1, 2, 3, 4]
    # malformed ACKBs: no effect
    for frames in ([busp.ackb(0)], [busp.ackb(0), b""], [busp.ackb(2), busp.ack_record(1, 1)],
                   [busp.ackb(1), busp.ack_record(1, 1) + b"\0"],
                   [busp.ackb(1)], [busp.ackb(1), busp.ack_record(1, 1)[:-1]]):
        s.send(*frames)
        d = s.expect(busp.ERROR)
        assert d["code"] == 400 and d["context"] == {"cmd": "ACKB"}, (frames, d)
    assert inflight(s, "acker", 5) == [4]
    s.send(busp.ackb(5), busp.ack_record(1, 1) + busp.ack_record(1, 2) + busp.ack_record(1, 99)
           + busp.ack_record(7, 3) + busp.ack_record(1, 3))
    errors = [s.expect(busp.ERROR) for _ in range(2)]
    assert [e["code"] for e in errors] == [404, 404], errors
    assert errors[0]["context"] == {"cmd": "ACKB", "sub_id": 1, "delivery_id": 99}, errors
    assert errors[1]["context"] == {"cmd": "ACKB", "sub_id": 7, "delivery_id": 3}, errors
    assert inflight(s, "acker", 6) == [1]
    # acknowledged is gone: ACK of it is 404, the last one still acks
    s.send(busp.ack(1, 2))
    d = s.expect(busp.ERROR)
    assert d["code"] == 404 and d["context"] == {"cmd": "ACK", "sub_id": 1, "delivery_id": 2}, d
    s.send(busp.ack(1, 4))
    sync(s)
    assert inflight(s, "acker", 7) == [0]


@test
def error_context_names_the_message(b):
    c = session(b, "ctx", features=("error-context",))
    subscribe(c, 7, "ctx.x")
    cases = [
        ([busp.sub(7, "ctx.y")], 409, {"cmd": "SUB", "sub_id": 7}),
        ([busp.unsub(9)], 404, {"cmd": "UNSUB", "sub_id": 9}),
        ([busp.credit(9, 1)], 404, {"cmd": "CREDIT", "sub_id": 9}),
        ([busp.ack(7, 5)], 404, {"cmd": "ACK", "sub_id": 7, "delivery_id": 5}),
        ([busp.nack(8, 6, 0, 0)], 404, {"cmd": "NACK", "sub_id": 8, "delivery_id": 6}),
        ([busp.nack(7, 6, 9, 0)], 400, {"cmd": "NACK", "sub_id": 7, "delivery_id": 6}),
        ([busp.pub(5, "ctx.x"), b"x"], 400, {"cmd": "PUB", "pub_seq": 5}),
        ([b"\xb5\x99\x00"], 400, {"cmd": None}),
        ([b"\xb4\x30" + b"\0" * 8], 400, {"cmd": None}),
        ([b""], 400, {"cmd": None}),
        ([b"\xb5\x30\x00\x00"], 400, {"cmd": "PING"}),
        ([busp.sub(11, "x")[:-1]], 400, {"cmd": "SUB", "sub_id": 11}),
        ([busp.ping(1), b"extra"], 400, {"cmd": "PING"}),
        ([struct.pack(">BBQI", busp.SIG, busp.PUBACK, 1, 1)], 400, {"cmd": "PUBACK"}),
        ([busp.pubb(1, 1), busp.pub_record("ctx.x")], 400, {"cmd": "PUBB", "pub_seq": 1}),
        ([busp.hello("v9", version=9)], 400, {"cmd": "HELLO"}),
    ]
    for frames, code, ctx in cases:
        c.send(*frames)
        d = c.expect(busp.ERROR)
        assert d["code"] == code and d["context"] == ctx, (frames, d)
    # the session lives on
    c.send(busp.pub(1, "ctx.x"), b"ok")
    got = sorted(c.expect_any()["cmd"] for _ in range(2))
    assert got == sorted([busp.PUBACK, busp.DELIVER]), got


@test
def session_without_features_sees_no_change(b):
    old = session(b, "old", features=None)
    subscribe(old, 1, "nc.#")
    p = session(b, "batcher")
    send_pubb(p, [busp.pub_record("nc.x", b"%d" % i, headers=b'{"k":"v"}') for i in range(50)])
    until_acked(p, 50)
    for i in range(50):
        d = old.expect(busp.DELIVER)
        assert d["payload"] == b"%d" % i and d["headers"] == b'{"k":"v"}', d
        assert len(d["frames"]) == 3
    # ERRORs carry no body
    old.send(busp.unsub(99))
    d = old.expect(busp.ERROR)
    assert d["code"] == 404 and len(d["frames"]) == 1, d
    old.send(b"\xb5\x99")
    d = old.expect(busp.ERROR)
    assert d["code"] == 400 and len(d["frames"]) == 1, d


@test
def headers_must_be_one_object_of_strings(b):
    s = session(b, "hsub", features=None)
    subscribe(s, 1, "hd.x")
    c = session(b, "hpub", features=None)
    bad = [b'{"a":"b"}xyz', b'{"a":"b"}{}', b'{"a":"\xc3"}', b'{"\xed\xa0\x80":"x"}',
           b'{"a":"b",}', b'{"a":"\\q"}', b'["a"]', b'{"a":{"b":"c"}}']
    for h in bad:
        c.publish("hd.x", b"x", headers=h)
    good = b' { "a" : "caf\xc3\xa9", "b" : "\\u00e9\\n" } '
    c.publish("hd.x", b"ok", headers=good)
    rejects, credit, _ = until_acked(c, len(bad) + 1)
    assert [(r["seq"], r["code"]) for r in rejects] == [(i + 1, 400) for i in range(len(bad))], rejects
    d = s.expect(busp.DELIVER)
    assert d["payload"] == b"ok" and d["headers"] == good, d


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS))
