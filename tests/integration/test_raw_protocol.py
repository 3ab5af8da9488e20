#!/usr/bin/env python3
"""Conformance tests of busd against BUSP/1, with frames built by hand.

Every check talks to a real busd over TCP through busp.py (a client written
from doc/protocol.md, not libbusd) and asserts on what comes back.
"""
import json
import struct
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
import busp  # noqa: E402
from busp import Broker, Client  # noqa: E402

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
    return c.recv()


@test
def welcome_fields(b):
    c = Client(b.endpoint)
    w = c.hello("conformance")
    assert w["version"] == 1
    assert w["broker_id"].startswith("busd-")
    assert w["pub_credit"] == 1000 and w["max_payload"] == 1048576
    for key in ("session_timeout_ms", "heartbeat_ms", "dedup_window_ms", "max_headers"):
        assert key in w["json"], key
    assert w["json"]["session_timeout_ms"] == 15000
    assert w["json"]["heartbeat_ms"] == 5000
    assert w["json"]["dedup_window_ms"] == 120000


@test
def no_session_is_401(b):
    c = Client(b.endpoint)
    for frames in ([busp.pub(1, "a.b"), b"x"], [busp.sub(1, "a")], [busp.ping(7)],
                   [busp.ctl(1), b'{"cmd":"stats"}']):
        c.send(*frames)
        d = c.recv()
        assert d["cmd"] == busp.ERROR and d["code"] == 401, d


@test
def bad_version_is_400(b):
    c = Client(b.endpoint)
    c.send(busp.hello("v2", version=2))
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 400, d


@test
def malformed_headers_get_400_and_service_continues(b):
    c = session(b)
    bad = [
        [b"\xb4\x30" + b"\0" * 8],                      # bad signature
        [b"\xb5\x99"],                                  # unknown command
        [b"\xb5\x30\0\0"],                              # PING too short
        [busp.ping(1) + b"\0"],                         # trailing byte
        [struct.pack(">BBQ", 0xB5, 0x10, 1) + b"\x09ab"],  # str8 overrun
        [b""],                                          # empty header
        [busp.ping(1), b"extra"],                       # too many frames
        [busp.pub(1, "a.b"), b"p", b"{}", b"four"],    # PUB with 4 frames
        [struct.pack(">BBQI", 0xB5, busp.PUBACK, 1, 1)],  # broker-only command
    ]
    for frames in bad:
        c.send(*frames)
        d = c.recv()
        assert d["cmd"] == busp.ERROR and d["code"] == 400, (frames, d)
    # the session is intact: pub_seq 1 was not consumed by the bad PUB
    r = subscribe(c, 1, "a.b")
    assert r["cmd"] == busp.SUBOK
    c.publish("a.b", b"after")
    got = [c.recv() for _ in range(2)]
    cmds = sorted(d["cmd"] for d in got)
    assert cmds == sorted([busp.DELIVER, busp.PUBACK]), got
    st = c.ctl({"cmd": "stats"})["json"]
    assert st["protocol_errors"] >= len(bad)


@test
def pub_sub_roundtrip_with_headers(b):
    s = session(b, "sub")
    assert subscribe(s, 7, "user.*")["cmd"] == busp.SUBOK
    p = session(b, "pub")
    p.publish("user.created", b"\x00\x01binary\xff", msg_id="m-1",
              headers=b'{"trace":"abc"}')
    a = p.expect(busp.PUBACK)
    assert a["seq"] == 1 and a["credit"] == 1
    d = s.expect(busp.DELIVER)
    assert d["sub_id"] == 7 and d["delivery_id"] == 1 and d["attempt"] == 1
    assert d["topic"] == "user.created" and d["msg_id"] == "m-1"
    assert d["payload"] == b"\x00\x01binary\xff"
    assert d["headers"] == b'{"trace":"abc"}'
    assert d["stream_seq"] == 0
    assert abs(d["ts_us"] / 1e6 - time.time()) < 60


@test
def wildcards(b):
    s = session(b)
    assert subscribe(s, 1, "chat.#")["cmd"] == busp.SUBOK
    assert subscribe(s, 2, "chat.*.typing")["cmd"] == busp.SUBOK
    assert subscribe(s, 3, "#")["cmd"] == busp.SUBOK
    p = session(b)
    for t in ("chat", "chat.room1.typing", "chat.room1.msg.edit", "other"):
        p.publish(t, t.encode())
    p.expect(busp.PUBACK)
    got = {}
    for _ in range(2 + 1 + 4):       # chat.#: 3, *.typing: 1, #: 4  -> 8
        d = s.expect(busp.DELIVER)
        got.setdefault(d["sub_id"], []).append(d["topic"])
    d = s.expect(busp.DELIVER)
    got.setdefault(d["sub_id"], []).append(d["topic"])
    assert got[1] == ["chat", "chat.room1.typing", "chat.room1.msg.edit"], got
    assert got[2] == ["chat.room1.typing"], got
    assert got[3] == ["chat", "chat.room1.typing", "chat.room1.msg.edit", "other"], got


def collect_until_acked(c, seq):
    """Read until a PUBACK covers seq; return (rejects, credit returned)."""
    rejects, credit = [], 0
    while True:
        d = c.recv()
        if d["cmd"] == busp.REJECT:
            rejects.append(d)
        elif d["cmd"] == busp.PUBACK:
            credit += d["credit"]
            if d["seq"] >= seq:
                return rejects, credit
        elif d["cmd"] == busp.PING:
            c.send(struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))


@test
def rejects(b):
    c = session(b)
    c.publish("bad..topic", b"x")
    c.publish("$sys.x", b"x")
    c.publish("ok.topic", b"x" * (1048576 + 1))
    c.publish("ok.topic", b"x", headers=b'{"a":1}')
    c.publish("ok.topic", b"x", headers=b'[1]')
    rejects, credit = collect_until_acked(c, 5)
    assert [(r["seq"], r["code"]) for r in rejects] == [
        (1, 400), (2, 403), (3, 413), (4, 400), (5, 400)], rejects
    # every processed PUB returns its credit
    assert credit == 5, credit


@test
def pub_seq_gap_is_400_and_ignored(b):
    c = session(b)
    c.send(busp.pub(2, "a.b"), b"x")
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 400
    c.send(busp.pub(1, "a.b"), b"x")
    a = c.expect(busp.PUBACK)
    assert a["seq"] == 1 and a["credit"] == 1


@test
def throttle_withholds_credit_then_429(b):
    b2 = Broker("--pub-credit", "4")
    try:
        s = Client(b2.endpoint)
        s.hello("slow")
        assert subscribe(s, 1, "t.x", {"credit": 0, "queue_limit": 2})["cmd"] == busp.SUBOK
        c = Client(b2.endpoint)
        w = c.hello("fast")
        assert w["pub_credit"] == 4
        # the queue fills, the publisher is throttled: PUBACKs carry 0 credit,
        # so after its window it has no credit and PUBs get REJECT 429
        n = 12
        for i in range(n):
            c.publish("t.x", b"%d" % i)
        rejects, credit = collect_until_acked(c, n)
        assert rejects and all(r["code"] == 429 for r in rejects), rejects
        accepted = n - len(rejects)
        st = c.ctl({"cmd": "stats"})["json"]
        assert st["throttled_publishers"] == 1, st
        assert st["accepted"] == accepted, (st, accepted)
        subs = c.ctl({"cmd": "subscriptions"}, 2)["json"]["subscriptions"]
        assert subs[0]["throttled_publishers"] == ["fast"], subs
        # the subscriber drains: the throttle lifts and the credit withheld
        # comes back in one PUBACK; every accepted event arrives in order
        s.send(busp.credit(1, 100))
        got = [s.expect(busp.DELIVER)["payload"] for _ in range(accepted)]
        assert got == sorted(got, key=int), got
        a = c.expect(busp.PUBACK)
        assert credit + a["credit"] == accepted, (credit, a)
    finally:
        b2.stop()


@test
def subscriber_credit_is_exact(b):
    s = session(b)
    assert subscribe(s, 1, "c.t", {"credit": 3})["cmd"] == busp.SUBOK
    p = session(b)
    for i in range(10):
        p.publish("c.t", b"%d" % i)
    p.expect(busp.PUBACK)
    got = [s.expect(busp.DELIVER)["payload"] for _ in range(3)]
    assert got == [b"0", b"1", b"2"]
    s.sock.setsockopt(busp.zmq.RCVTIMEO, 300)
    try:
        extra = s.recv()
        raise AssertionError("delivered without credit: %r" % extra)
    except busp.zmq.Again:
        pass
    s.sock.setsockopt(busp.zmq.RCVTIMEO, 3000)
    s.send(busp.credit(1, 7))
    got = [s.expect(busp.DELIVER)["payload"] for _ in range(7)]
    assert got == [b"%d" % i for i in range(3, 10)]


@test
def sub_errors(b):
    c = session(b)
    assert subscribe(c, 1, "a.b")["cmd"] == busp.SUBOK
    c.send(busp.sub(1, "a.c"))
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 409, d
    d = subscribe(c, 2, "a.#.b")
    assert d["cmd"] == busp.SUBEND and d["sub_id"] == 2 and d["code"] == 400
    d = subscribe(c, 3, "a", {"bogus": 1})
    assert d["cmd"] == busp.SUBEND and d["code"] == 400 and "bogus" in d["reason"]
    d = subscribe(c, 4, "a", {"credit": "many"})
    assert d["cmd"] == busp.SUBEND and d["code"] == 400 and "credit" in d["reason"]
    d = subscribe(c, 5, "a", {"overflow": "explode"})
    assert d["cmd"] == busp.SUBEND and d["code"] == 400 and "overflow" in d["reason"]
    c.send(busp.unsub(99))
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 404
    c.send(busp.credit(99, 1))
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 404
    c.send(busp.ack(1, 1))      # ack: none subscription
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 404
    c.send(busp.unsub(1))
    d = c.recv()
    assert d["cmd"] == busp.SUBEND and d["sub_id"] == 1 and d["code"] == 200


@test
def system_topics_and_patterns(b):
    c = session(b)
    assert subscribe(c, 1, "#")["cmd"] == busp.SUBOK
    assert subscribe(c, 2, "$dlq.#")["cmd"] == busp.SUBOK
    st = c.ctl({"cmd": "stats"})
    assert st["code"] == 200


@test
def ping_pong_both_ways(b):
    c = session(b)
    c.send(busp.ping(0x1122334455667788))
    d = c.expect(busp.PONG)
    assert d["nonce"] == 0x1122334455667788


@test
def broker_pings_and_expires_silent_sessions(b):
    b2 = Broker("--heartbeat", "200", "--session-timeout", "700")
    try:
        c = Client(b2.endpoint)
        c.hello()
        d = c.recv()
        assert d["cmd"] == busp.PING
        time.sleep(1.0)
        c.send(busp.sub(1, "a"))
        d = c.recv()
        while d["cmd"] == busp.PING:
            d = c.recv()
        assert d["cmd"] == busp.ERROR and d["code"] == 401, d
    finally:
        b2.stop()


@test
def ctl_requests(b):
    c = session(b, "ctl-client")
    st = c.ctl({"cmd": "stats"})
    assert st["code"] == 200
    for key in ("sessions", "subscriptions", "accepted", "rejected", "duplicates",
                "unrouted", "delivered", "redelivered", "dropped", "queued", "inflight",
                "dead_lettered", "throttled_publishers", "protocol_errors", "uptime_s"):
        assert isinstance(st["json"][key], int), key
    cl = c.ctl({"cmd": "clients"}, 2)["json"]["clients"]
    assert any(x["name"] == "ctl-client" for x in cl)
    assert c.ctl({"cmd": "nope"}, 3)["code"] == 400
    c.send(busp.ctl(4), b"not json")
    d = c.expect(busp.CTLREPLY)
    assert d["code"] == 400 and d["request_id"] == 4
    assert c.ctl({"cmd": "dlq-list"}, 5)["json"] == {"dead_letters": []}


@test
def dedup_by_msg_id(b):
    s = session(b)
    assert subscribe(s, 1, "d.x")["cmd"] == busp.SUBOK
    p = session(b)
    for _ in range(3):
        p.publish("d.x", b"once", msg_id="same-id")
    p2 = session(b)
    p2.publish("d.x", b"once", msg_id="same-id")
    credit = 0
    while credit < 3:
        a = p.expect(busp.PUBACK)
        credit += a["credit"]
    assert p2.expect(busp.PUBACK)["seq"] == 1
    assert s.expect(busp.DELIVER)["payload"] == b"once"
    s.sock.setsockopt(busp.zmq.RCVTIMEO, 300)
    try:
        raise AssertionError("duplicate delivered: %r" % s.recv())
    except busp.zmq.Again:
        pass


@test
def dedup_key_includes_topic(b):
    # PROTOCOL §5: the idempotency key is (topic, msg_id): the same msg_id
    # on another topic is another event and is routed.
    s = session(b)
    assert subscribe(s, 1, "k.*")["cmd"] == busp.SUBOK
    p = session(b)
    p.publish("k.a", b"first", msg_id="shared-id")
    p.publish("k.b", b"second", msg_id="shared-id")
    p.publish("k.a", b"again", msg_id="shared-id")
    got = [s.expect(busp.DELIVER) for _ in range(2)]
    assert [(d["topic"], d["payload"]) for d in got] == [("k.a", b"first"), ("k.b", b"second")], got
    s.sock.setsockopt(busp.zmq.RCVTIMEO, 300)
    try:
        raise AssertionError("duplicate delivered: %r" % s.recv())
    except busp.zmq.Again:
        pass


@test
def bye_ends_session(b):
    c = session(b)
    c.send(busp.bye())
    time.sleep(0.1)
    c.send(busp.ping(1))
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 401


@test
def fanout_shares_to_all(b):
    subs = [session(b, "s%d" % i) for i in range(4)]
    for i, s in enumerate(subs):
        assert subscribe(s, 1, "fan.out")["cmd"] == busp.SUBOK
    p = session(b)
    for i in range(50):
        p.publish("fan.out", b"e%d" % i)
    for s in subs:
        got = [s.expect(busp.DELIVER)["payload"] for _ in range(50)]
        assert got == [b"e%d" % i for i in range(50)]


@test
def shutdown_sends_503(b):
    b2 = Broker()
    c = Client(b2.endpoint)
    c.hello()
    rc = b2.stop()
    d = c.recv()
    assert d["cmd"] == busp.ERROR and d["code"] == 503, d
    assert rc == 0, rc


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS))
