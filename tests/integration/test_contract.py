#!/usr/bin/env python3
"""PROTOCOL.md §1-§8 read sentence by sentence, one check per rule that the
other Python suites (test_raw_protocol, test_delivery, test_batch,
test_durable) leave open.

Frames are built by hand with busp.py, so what is checked is the written
contract, not libbusd's reading of it.  Every wait polls with a timeout of
seconds, never a fixed sleep that the assertion depends on.
"""
import base64
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import (Broker, Client, session, next_msg, subscribe, sync,  # noqa: E402
                  until_acked, wait_for, error, stats)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def drain(c, timeout_ms=400):
    return busp.drain(c, timeout_ms)


def sub_row(c, client, rid=91):
    subs = c.ctl({"cmd": "subscriptions"}, rid)["json"]["subscriptions"]
    return [x for x in subs if x["client"] == client]


# ---------------------------------------------------------------- §1 framing

@test
def every_header_is_exactly_its_fields(b):
    """§1: a header with one byte more or fewer than its fields is 400."""
    c = session(b, "lengths")
    subscribe(c, 1, "len.x")
    good = [
        busp.hello("x"), busp.pub(1, "len.x"), busp.sub(2, "len.y"),
        busp.unsub(1), busp.credit(1, 1), busp.ack(1, 1),
        busp.nack(1, 1, 0, 0), busp.ping(1),
        struct.pack(">BBQ", busp.SIG, busp.PONG, 1), busp.bye(), busp.ctl(1),
    ]
    for h in good:
        for bad in (h + b"\0", h[:-1]):
            d = error(c, [bad])
            assert d["code"] == 400, (bad, d)
    # nothing of the above took effect: sub 1 still lives, pub_seq 1 is next
    c.publish("len.x", b"still")
    got = until_acked(c, 1)
    assert got[-1]["seq"] == 1 and got[-1]["credit"] == 1, got
    assert any(d["cmd"] == busp.DELIVER and d["payload"] == b"still"
               for d in got + drain(c, 300)), got


@test
def too_many_frames_per_command(b):
    """§1: frame 2 only where a command has a body, frame 3 only on PUB."""
    c = session(b, "frames")
    subscribe(c, 1, "fr.x", {"ack": "explicit"})
    cases = [
        [busp.hello("x"), b"{}", b"{}"],
        [busp.sub(2, "fr.y"), b"{}", b"{}"],
        [busp.unsub(1), b""],
        [busp.credit(1, 1), b""],
        [busp.ack(1, 1), b""],
        [busp.nack(1, 1, 0, 0), b"{}", b"{}"],
        [struct.pack(">BBQ", busp.SIG, busp.PONG, 1), b"x"],
        [busp.bye(), b""],
        [busp.ctl(1), b'{"cmd":"stats"}', b"{}"],
        [busp.pub(1, "fr.x"), b"p", b"{}", b""],
    ]
    for frames in cases:
        d = error(c, frames)
        assert d["code"] == 400, (frames, d)
    # the UNSUB, BYE and PUB above were ignored
    c.publish("fr.x", b"p")
    got = until_acked(c, 1)
    assert got[-1]["seq"] == 1, got


@test
def missing_body_is_empty_and_empty_headers_are_none(b):
    """§1: a missing frame 2 is an empty body; an empty frame 3 is no
    frame 3; headers are forwarded byte for byte."""
    s = session(b, "fsub")
    # SUB without frame 2: defaults
    subscribe(s, 1, "body.#")
    p = session(b, "fpub")
    p.seq = 1
    p.send(busp.pub(1, "body.none"))                       # no frame 2
    p.publish("body.empty", b"", headers=b"")              # empty frame 3
    hdr = b'{ "z" : "1",\t"a":"\\u00e9" }'
    p.publish("body.hdr", b"h", headers=hdr)
    got = until_acked(p, 3)
    assert [d["cmd"] for d in got if d["cmd"] == busp.REJECT] == [], got
    ds = [next_msg(s) for _ in range(3)]
    assert [d["topic"] for d in ds] == ["body.none", "body.empty", "body.hdr"], ds
    assert ds[0]["payload"] == b"" and ds[0]["headers"] == b""
    assert ds[1]["payload"] == b"" and ds[1]["headers"] == b""
    assert ds[2]["headers"] == hdr, ds[2]
    # HELLO and CTL without frame 2 are fine too (empty body)
    c = Client(b.endpoint)
    c.send(busp.hello("nobody"))
    assert next_msg(c)["cmd"] == busp.WELCOME
    c.send(busp.ctl(5))
    d = next_msg(c)
    assert d["cmd"] == busp.CTLREPLY and d["request_id"] == 5 and d["code"] == 400, d


@test
def malformed_without_session_is_400_not_401(b):
    """§3: a header that does not parse is 400 with or without a session."""
    c = Client(b.endpoint)
    for frames in ([b"\xb5\x99"], [busp.ping(1)[:-1]], [busp.sub(1, "a") + b"\0"]):
        d = error(c, frames)
        assert d["code"] == 400, (frames, d)
    d = error(c, [busp.unsub(1)])
    assert d["code"] == 401, d


@test
def max_headers_limits_frame_3(b):
    """§1: max_headers (WELCOME info) limits frame 3."""
    p = session(b, "mh")
    limit = p.welcome["json"]["max_headers"]
    big = b'{"k":"' + b"v" * (limit - 8) + b'"}'
    assert len(big) == limit - 8 + 8
    p.publish("mh.x", b"", headers=big)
    over = b'{"k":"' + b"v" * (limit - 7) + b'"}'
    p.publish("mh.x", b"", headers=over)
    got = until_acked(p, 2)
    rej = [d for d in got if d["cmd"] == busp.REJECT]
    assert [(r["seq"], r["code"]) for r in rej] == [(2, 413)], got


# ---------------------------------------------------------------- §2 topics

@test
def topic_and_pattern_validity(b):
    p = session(b, "topics")
    good = ["a", "x" * 255, "!~", "a.$b", "$"]      # "$" is a $ topic: 403
    bad = ["", ".a", "a.", "a..b", "a b", "a.*", "a.#", "a*",
           "\x7f", "caf\xe9"]
    for t in good + bad:
        p.seq += 1
        p.send(busp.pub(p.seq, t.encode("latin-1")), b"x")
    got = until_acked(p, p.seq)
    codes = {d["seq"]: d["code"] for d in got if d["cmd"] == busp.REJECT}
    assert codes == {5: 403, **{i + 6: 400 for i in range(len(bad))}}, codes
    s = session(b, "patterns")
    for i, pat in enumerate(["a*", "#.a", "a.#.b", "*a", "a.##", "", "a..b"]):
        subscribe(s, 10 + i, pat, expect=busp.SUBEND)
    for i, pat in enumerate(["*", "#", "*.*", "a.*.#", "x" * 255]):
        subscribe(s, 20 + i, pat)


@test
def hash_matches_zero_tokens_and_star_exactly_one(b):
    s = session(b, "hs")
    subscribe(s, 1, "user.#")
    subscribe(s, 2, "*.x")
    p = session(b)
    for t in ("user", "user.created.v2", "x", "a.x", "a.b.x", "users.x"):
        p.publish(t, t.encode())
    until_acked(p, p.seq)
    got = drain(s, 600)
    by = {}
    for d in got:
        by.setdefault(d["sub_id"], []).append(d["topic"])
    assert by == {1: ["user", "user.created.v2"], 2: ["a.x", "users.x"]}, by


@test
def dollar_topics(b):
    """§2: $-topic PUB is 403 but an invalid one is 400 first; a first token
    * or # never matches $ topics; $ patterns may be subscribed."""
    p = session(b, "dollar")
    for t in ("$sys.x", "$dlq.a.b", "$", "$sys..x", "$sys.*", "$sys.#"):
        p.publish(t, b"x")
    got = until_acked(p, 6)
    codes = [(d["seq"], d["code"]) for d in got if d["cmd"] == busp.REJECT]
    assert codes == [(1, 403), (2, 403), (3, 403), (4, 400), (5, 400), (6, 400)], codes
    wide = session(b, "wide")
    for i, pat in enumerate(["#", "*.#", "*.dl.x", "*.*.*"]):
        subscribe(wide, i + 1, pat)
    dl = session(b, "dlw")
    subscribe(dl, 1, "$dlq.#")
    subscribe(dl, 2, "$dlq.*.x")
    w = session(b, "worker")
    subscribe(w, 1, "dl.x", {"ack": "explicit"})
    p.publish("dl.x", b"poison")
    until_acked(p, p.seq)
    d = next_msg(w)
    w.send(busp.nack(1, d["delivery_id"], 1, 0))
    got = [next_msg(dl), next_msg(dl)]
    assert sorted(x["sub_id"] for x in got) == [1, 2], got
    assert all(x["topic"] == "$dlq.dl.x" for x in got), got
    # the wide patterns saw dl.x once each (from "#", "*.#", "*.dl.x"? no:
    # "*.dl.x" needs three tokens) and never the $dlq copy
    seen = [(x["sub_id"], x["topic"]) for x in drain(wide, 500)]
    assert sorted(seen) == [(1, "dl.x"), (2, "dl.x")], seen


# ---------------------------------------------------------------- §4 sessions

@test
def hello_version_other_than_1_is_400(b):
    for v in (0, 2, 0xFFFF):
        c = Client(b.endpoint)
        d = error(c, [busp.hello("v", version=v)])
        assert d["code"] == 400, (v, d)
        # no session was made
        d = error(c, [busp.ping(1)])
        assert d["code"] == 401, d
        c.close()
    # on a live session too, and the session survives it
    c = session(b, "live-v")
    subscribe(c, 1, "hv.x")
    assert error(c, [busp.hello("v", version=2)])["code"] == 400
    c.send(busp.unsub(1))
    d = next_msg(c)
    assert d["cmd"] == busp.SUBEND and d["code"] == 200, d


@test
def hello_on_live_session_starts_anew(b):
    """§4: HELLO on a live session ends the old one (as BYE would)."""
    c = session(b, "first")
    subscribe(c, 1, "re.x")
    c.publish("re.x", b"a")
    c.publish("re.x", b"b")
    until_acked(c, 2)
    drain(c, 200)
    c.send(busp.hello("second"))
    w = next_msg(c)
    assert w["cmd"] == busp.WELCOME, w
    # pub_seq starts at 1 again; the old subscription is gone
    c.seq = 0
    c.publish("re.x", b"c")
    got = until_acked(c, 1)
    assert got[-1]["seq"] == 1 and got[-1]["credit"] == 1, got
    assert not [d for d in got + drain(c, 300) if d["cmd"] == busp.DELIVER]
    assert error(c, [busp.unsub(1)])["code"] == 404
    # and sub_id 1 is free again
    subscribe(c, 1, "re.x")
    names = [x["name"] for x in c.ctl({"cmd": "clients"}, 3)["json"]["clients"]]
    assert "second" in names and "first" not in names, names


@test
def peer_pong_and_unsolicited_pong_are_fine(b):
    c = session(b, "pong")
    c.send(struct.pack(">BBQ", busp.SIG, busp.PONG, 0xDEADBEEF))
    for n in (0, 1, 2 ** 64 - 1):
        c.send(busp.ping(n))
        d = next_msg(c)
        assert d["cmd"] == busp.PONG and d["nonce"] == n, d


@test
def broker_ping_nonce_answered(b):
    """§4: the broker PINGs a silent session; our PONG with its nonce keeps
    the session alive past session_timeout."""
    b2 = Broker("--heartbeat", "200", "--session-timeout", "1500")
    try:
        c = Client(b2.endpoint, timeout=5000)
        c.hello("hb")
        deadline = time.time() + 4.0
        pings = 0
        while time.time() < deadline:
            c.sock.setsockopt(busp.zmq.RCVTIMEO, 500)
            try:
                d = c.recv()
            except busp.zmq.Again:
                continue
            assert d["cmd"] == busp.PING, d
            pings += 1
            c.send(struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))
        c.sock.setsockopt(busp.zmq.RCVTIMEO, 5000)
        assert pings >= 2, pings
        c.send(busp.ping(9))
        d = next_msg(c)
        assert d["cmd"] == busp.PONG and d["nonce"] == 9, d
    finally:
        b2.stop()


# ---------------------------------------------------------------- §5 publishing

@test
def pub_seq_repeat_is_400_and_ignored(b):
    s = session(b, "rs")
    subscribe(s, 1, "rep.x")
    p = session(b, "rp")
    p.publish("rep.x", b"1")
    until_acked(p, 1)
    d = error(p, [busp.pub(1, "rep.x"), b"again"])
    assert d["code"] == 400
    d = error(p, [busp.pub(0, "rep.x"), b"zero"])
    assert d["code"] == 400
    p.publish("rep.x", b"2")
    got = until_acked(p, 2)
    assert got[-1]["credit"] == 1, got
    ds = [next_msg(s)["payload"] for _ in range(2)]
    assert ds == [b"1", b"2"], ds
    assert not drain(s, 300)


@test
def reject_precedes_covering_puback_and_pubacks_never_decrease(b):
    p = session(b, "order")
    n = 200
    for i in range(n):
        t = "ord.x" if i % 7 else "$sys.no"
        p.publish(t, b"%d" % i)
    got = until_acked(p, n)
    last, credit, rejected = 0, 0, set()
    for d in got:
        if d["cmd"] == busp.PUBACK:
            assert d["seq"] >= last, got
            last = d["seq"]
            credit += d["credit"]
        elif d["cmd"] == busp.REJECT:
            assert d["seq"] > last, ("REJECT after a PUBACK covering it", d)
            rejected.add(d["seq"])
    assert rejected == {i + 1 for i in range(0, n, 7)}, rejected
    assert credit == n


@test
def matchless_pub_is_unrouted_and_dup_not_an_error(b):
    p = session(b, "unr")
    before = stats(p)
    p.publish("nobody.listens.here", b"x")
    p.publish("nobody.listens.here", b"x", msg_id="u-1")
    p.publish("nobody.listens.here", b"x", msg_id="u-1")
    got = until_acked(p, 3)
    assert not [d for d in got if d["cmd"] == busp.REJECT], got
    assert sum(d["credit"] for d in got if d["cmd"] == busp.PUBACK) == 3
    after = stats(p, 92)
    assert after["unrouted"] - before["unrouted"] == 2, (before, after)
    assert after["duplicates"] - before["duplicates"] == 1, (before, after)
    assert after["accepted"] - before["accepted"] == 2, (before, after)


@test
def rejected_pub_does_not_enter_dedup_window(b):
    s = session(b, "rds")
    subscribe(s, 1, "rd.x")
    p = session(b, "rdp")
    mp = p.welcome["max_payload"]
    p.publish("rd.x", b"x" * (mp + 1), msg_id="r-1")     # 413
    p.publish("rd.x", b"ok", msg_id="r-1")
    got = until_acked(p, 2)
    assert [(d["seq"], d["code"]) for d in got if d["cmd"] == busp.REJECT] == [(1, 413)]
    d = next_msg(s)
    assert d["payload"] == b"ok" and d["msg_id"] == "r-1", d


@test
def throttle_thresholds_are_exact(b):
    """§5: throttled when the queue length before the event is >= limit;
    lifted when it falls below half; the withheld credit in one PUBACK."""
    s = session(b, "tslow")
    subscribe(s, 1, "thr.x", {"credit": 0, "queue_limit": 4})
    other = session(b, "tother")
    subscribe(other, 1, "thr.free", {"credit": 0, "queue_limit": 100})
    p = session(b, "tfast")
    # four events: lengths before 0..3 < 4, each PUBACK returns its credit
    for i in range(4):
        p.publish("thr.x", b"%d" % i)
        a = until_acked(p, p.seq)[-1]
        assert a["credit"] == 1, (i, a)
    assert stats(p)["throttled_publishers"] == 0
    # fifth: length before is 4 = limit: accepted, throttled, credit 0
    p.publish("thr.x", b"4")
    got = until_acked(p, 5)
    assert not [d for d in got if d["cmd"] == busp.REJECT], got
    assert got[-1]["credit"] == 0, got
    # still throttled: PUBs to a free queue also come back with credit 0
    p.publish("thr.free", b"f")
    assert until_acked(p, 6)[-1]["credit"] == 0
    assert stats(p, 93)["throttled_publishers"] == 1
    # publishers that do not reach the full queue are not slowed
    q = session(b, "tinnocent")
    q.publish("thr.free", b"g")
    assert until_acked(q, 1)[-1]["credit"] == 1
    # queue 5 -> 2: 2 is not below half of 4: still throttled
    s.send(busp.credit(1, 3))
    for i in range(3):
        assert next_msg(s)["payload"] == b"%d" % i
    sync(s)
    assert not [d for d in drain(p, 300) if d["cmd"] == busp.PUBACK]
    assert stats(p, 94)["throttled_publishers"] == 1
    # queue 2 -> 1: below half: lifted, 2 withheld credits in one PUBACK
    s.send(busp.credit(1, 1))
    assert next_msg(s)["payload"] == b"3"
    a = next_msg(p)
    assert a["cmd"] == busp.PUBACK and a["seq"] == 6 and a["credit"] == 2, a
    assert not drain(p, 300)
    wait_for(lambda: stats(p, 95)["throttled_publishers"] == 0, "throttle lifted")
    p.publish("thr.free", b"h")
    assert until_acked(p, 7)[-1]["credit"] == 1


@test
def withheld_credit_returns_when_the_last_throttle_lifts(b):
    s1 = session(b, "tw1")
    subscribe(s1, 1, "tw.a", {"credit": 0, "queue_limit": 1})
    s2 = session(b, "tw2")
    subscribe(s2, 1, "tw.b", {"credit": 0, "queue_limit": 1})
    p = session(b, "twp")
    p.publish("tw.a", b"a0")
    assert until_acked(p, 1)[-1]["credit"] == 1
    p.publish("tw.a", b"a1")          # throttled by s1
    p.publish("tw.b", b"b0")          # not full, but the publisher is throttled
    p.publish("tw.b", b"b1")          # throttled by s2 too
    got = until_acked(p, 4)
    assert sum(d["credit"] for d in got if d["cmd"] == busp.PUBACK) == 0, got
    s1.send(busp.credit(1, 5))
    assert [next_msg(s1)["payload"] for _ in range(2)] == [b"a0", b"a1"]
    sync(s1)
    assert not drain(p, 400), "credit came back while s2 still throttles"
    s2.send(busp.credit(1, 5))
    assert [next_msg(s2)["payload"] for _ in range(2)] == [b"b0", b"b1"]
    a = next_msg(p)
    assert a["cmd"] == busp.PUBACK and a["seq"] == 4 and a["credit"] == 3, a
    assert not drain(p, 300)


@test
def throttle_lifts_when_subscription_ends(b):
    s = session(b, "tend")
    subscribe(s, 1, "the.x", {"credit": 0, "queue_limit": 1})
    p = session(b, "tendp")
    p.publish("the.x", b"0")
    assert until_acked(p, 1)[-1]["credit"] == 1
    p.publish("the.x", b"1")
    assert until_acked(p, 2)[-1]["credit"] == 0
    s.send(busp.unsub(1))
    d = next_msg(s)
    assert d["cmd"] == busp.SUBEND and d["code"] == 200 and d["reason"] == "unsubscribed", d
    a = next_msg(p)
    assert a["cmd"] == busp.PUBACK and a["seq"] == 2 and a["credit"] == 1, a


@test
def pub_without_credit_is_429_and_returns_nothing(b):
    b2 = Broker("--pub-credit", "2")
    try:
        s = session(b2, "ncs")
        subscribe(s, 1, "nc.x", {"credit": 0, "queue_limit": 1})
        p = session(b2, "ncp")
        assert p.welcome["pub_credit"] == 2
        p.publish("nc.x", b"0")       # queue 0 -> 1, credit back
        assert until_acked(p, 1)[-1]["credit"] == 1
        p.publish("nc.x", b"1")       # throttled: credit 0, holds 1
        p.publish("nc.x", b"2")       # throttled: credit 0, holds 0
        p.publish("nc.x", b"3")       # no credit: 429
        p.publish("nc.x", b"4")       # no credit: 429
        got = until_acked(p, 5)
        rej = [(d["seq"], d["code"]) for d in got if d["cmd"] == busp.REJECT]
        assert rej == [(4, 429), (5, 429)], got
        assert sum(d["credit"] for d in got if d["cmd"] == busp.PUBACK) == 0, got
        s.send(busp.credit(1, 10))
        ds = [next_msg(s)["payload"] for _ in range(3)]
        assert ds == [b"0", b"1", b"2"], ds
        # withheld: the two accepted-while-throttled PUBs, not the 429s
        a = next_msg(p)
        assert a["cmd"] == busp.PUBACK and a["credit"] == 2, a
        assert not drain(s, 300)
    finally:
        b2.stop()


# ---------------------------------------------------------------- §6 subscribing

@test
def sub_option_errors_name_the_key(b):
    c = session(b, "opts")
    cases = [
        ({"credit": -1}, "credit"), ({"credit": 2 ** 32}, "credit"),
        ({"credit": 1.5}, "credit"), ({"ack": "sometimes"}, "ack"),
        ({"ack": True}, "ack"), ({"overflow": 3}, "overflow"),
        ({"queue_limit": "10"}, "queue_limit"), ({"queue_limit": -5}, "queue_limit"),
        ({"ack_wait_ms": "1s"}, "ack_wait_ms"), ({"max_deliver": None}, "max_deliver"),
        ({"group": 7}, "group"), ({"durable": []}, "durable"),
        ({"from": "first"}, "from"), ({"on_end": "explode"}, "on_end"),
        ({"credit": 1, "colour": "red"}, "colour"),
    ]
    for i, (opts, key) in enumerate(cases):
        d = subscribe(c, 100 + i, "o.x", opts, expect=busp.SUBEND)
        assert d["code"] == 400 and key in d["reason"], (opts, d)
    for body in (b"[1]", b"not json", b'"credit"'):
        c.send(busp.sub(200, "o.x"), body)
        d = next_msg(c)
        assert d["cmd"] == busp.SUBEND and d["sub_id"] == 200 and d["code"] == 400, (body, d)
    # every failed sub_id is free
    subscribe(c, 100, "o.x", {"credit": 2 ** 32 - 1})
    sok = subscribe(c, 101, "o.y", {})
    assert sok["json"]["stream_seq"] == 0, sok


@test
def unsub_then_no_deliver(b):
    s = session(b, "us")
    subscribe(s, 3, "un.x")
    p = session(b, "up")
    for i in range(300):
        p.publish("un.x", b"%d" % i)
    s.send(busp.unsub(3))
    until_acked(p, 300)
    seen_end = False
    for d in drain(s, 800):
        if d["cmd"] == busp.SUBEND:
            assert d["sub_id"] == 3 and d["code"] == 200 and d["reason"] == "unsubscribed", d
            seen_end = True
        else:
            assert not seen_end and d["cmd"] == busp.DELIVER, d
    assert seen_end


@test
def delivery_ids_per_subscription_and_gap_spends_no_credit(b):
    s = session(b, "ids")
    subscribe(s, 1, "id.x", {"credit": 3, "overflow": "drop-oldest", "queue_limit": 2})
    subscribe(s, 2, "id.#")
    p = session(b)
    for i in range(3):
        p.publish("id.x", b"%d" % i)
    until_acked(p, 3)
    got = [next_msg(s) for _ in range(6)]
    ids = {1: [], 2: []}
    for d in got:
        ids[d["sub_id"]].append((d["delivery_id"], d["attempt"]))
    assert ids == {1: [(1, 1), (2, 1), (3, 1)], 2: [(1, 1), (2, 1), (3, 1)]}, ids
    # credit 0 now: 5 more, queue keeps the last 2; 3 dropped
    for i in range(3, 8):
        p.publish("id.x", b"%d" % i)
    until_acked(p, 8)
    drain(s, 300)
    s.send(busp.credit(1, 2))
    msgs = [next_msg(s) for _ in range(2)]
    gaps = []
    while msgs[0]["cmd"] == busp.GAP:
        gaps.append(msgs.pop(0)["dropped"])
        msgs.append(next_msg(s))
    assert sum(gaps) == 3, (gaps, msgs)
    assert [(d["delivery_id"], d["payload"]) for d in msgs] == [(4, b"6"), (5, b"7")], msgs
    # the GAP spent nothing: both events arrived with credit 2


@test
def gap_counts_sum_to_dropped_before_each_deliver(b):
    s = session(b, "gaps")
    subscribe(s, 1, "gp.x", {"credit": 0, "overflow": "drop-new", "queue_limit": 3})
    p = session(b)
    total_dropped = 0
    for rnd in range(3):
        for i in range(10):
            p.publish("gp.x", b"%d-%d" % (rnd, i))
        until_acked(p, p.seq)
        total_dropped += 7
        s.send(busp.credit(1, 3))
        gaps, ds = 0, []
        while len(ds) < 3:
            d = next_msg(s)
            if d["cmd"] == busp.GAP:
                assert not ds, "GAP after the first DELIVER of the round"
                gaps += d["dropped"]
            else:
                assert d["cmd"] == busp.DELIVER, d
                ds.append(d["payload"])
        assert gaps == 7 and ds == [b"%d-%d" % (rnd, i) for i in range(3)], (gaps, ds)
    row = sub_row(s, "gaps")[0]
    assert row["dropped"] == total_dropped, row


@test
def latest_replaces_per_topic_and_drops_oldest_topic(b):
    s = session(b, "lat")
    subscribe(s, 1, "lt.*", {"credit": 0, "overflow": "latest", "queue_limit": 2})
    p = session(b)
    p.publish("lt.a", b"a1")
    p.publish("lt.b", b"b1")
    p.publish("lt.a", b"a2")     # replaces a1 (dropped 1)
    p.publish("lt.c", b"c1")     # a third topic: the oldest waiting (b1) goes
    until_acked(p, 4)
    s.send(busp.credit(1, 10))
    got = drain(s, 600)
    gaps = sum(d["dropped"] for d in got if d["cmd"] == busp.GAP)
    ds = [(d["topic"], d["payload"]) for d in got if d["cmd"] == busp.DELIVER]
    assert gaps == 2, got
    assert sorted(ds) == [("lt.a", b"a2"), ("lt.c", b"c1")], ds
    # latest conflates below the limit too
    p.publish("lt.a", b"a3")
    p.publish("lt.a", b"a4")
    until_acked(p, 6)
    got = drain(s, 600)
    ds = [d["payload"] for d in got if d["cmd"] == busp.DELIVER]
    assert ds in ([b"a3", b"a4"], [b"a4"]), got   # a3 may leave at once
    assert sum(d["dropped"] for d in got if d["cmd"] == busp.GAP) == 2 - len(ds)


@test
def group_identity_is_group_and_pattern(b):
    a = session(b, "ga")
    subscribe(a, 1, "gi.*", {"group": "same"})
    c = session(b, "gc")
    subscribe(c, 1, "gi.#", {"group": "same", "queue_limit": 7})   # other group
    # same (group, pattern) with another queue_limit: 409
    d = session(b, "gd")
    r = subscribe(d, 1, "gi.*", {"group": "same", "queue_limit": 7}, expect=busp.SUBEND)
    assert r["code"] == 409, r
    r = subscribe(d, 2, "gi.#", {"group": "same"}, expect=busp.SUBEND)
    assert r["code"] == 409, r          # default queue_limit 10000 != 7
    # the same values join; per-member options may differ
    subscribe(d, 3, "gi.#", {"group": "same", "queue_limit": 7, "overflow": "block",
                             "credit": 5, "ack": "explicit"})
    p = session(b)
    for i in range(4):
        p.publish("gi.x", b"%d" % i)
    until_acked(p, 4)
    ga = [x["payload"] for x in drain(a, 500) if x["cmd"] == busp.DELIVER]
    gcd = [x["payload"] for x in drain(c, 300) + drain(d, 300) if x["cmd"] == busp.DELIVER]
    assert ga == [b"0", b"1", b"2", b"3"], ga
    assert sorted(gcd) == [b"0", b"1", b"2", b"3"], gcd


@test
def ack_and_nack_404s(b):
    c = session(b, "a404")
    subscribe(c, 1, "an.none")
    subscribe(c, 2, "an.exp", {"ack": "explicit"})
    p = session(b)
    p.publish("an.none", b"x")
    p.publish("an.exp", b"y")
    until_acked(p, 2)
    d1 = next_msg(c)
    d2 = next_msg(c)
    byid = {d1["sub_id"]: d1, d2["sub_id"]: d2}
    # ack none: ACK and NACK of a real delivery are 404
    assert error(c, [busp.ack(1, byid[1]["delivery_id"])])["code"] == 404
    assert error(c, [busp.nack(1, byid[1]["delivery_id"], 0, 0)])["code"] == 404
    # explicit: unknown delivery_id, unknown sub_id
    assert error(c, [busp.ack(2, 999)])["code"] == 404
    assert error(c, [busp.nack(2, 999, 1, 0)])["code"] == 404
    assert error(c, [busp.ack(77, 1)])["code"] == 404
    # the real one is still there
    c.send(busp.ack(2, byid[2]["delivery_id"]))
    assert sync(c) == []
    assert error(c, [busp.ack(2, byid[2]["delivery_id"])])["code"] == 404


@test
def nack_redeliver_then_max_deliver_dead_letters(b):
    s = session(b, "md")
    subscribe(s, 4, "mdl.x", {"ack": "explicit", "max_deliver": 2, "ack_wait_ms": 60000})
    p = session(b)
    p.publish("mdl.x", b"bad", msg_id="mx-1", headers=b'{"orig":"h"}')
    until_acked(p, 1)
    d = next_msg(s)
    assert d["attempt"] == 1 and d["delivery_id"] == 1
    s.send(busp.nack(4, 1, 0, 1))
    d2 = next_msg(s)
    assert d2["attempt"] == 2 and d2["delivery_id"] == 2, d2
    assert error(s, [busp.ack(4, 1)])["code"] == 404
    s.send(busp.nack(4, 2, 0, 1))     # max_deliver reached: dead letter
    assert sync(s) == []
    assert not [x for x in drain(s, 400) if x["cmd"] == busp.DELIVER]
    lst = wait_for(lambda: p.ctl({"cmd": "dlq-list", "topic": "mdl.#"}, 5)["json"]["dead_letters"],
                   "dead letter")
    assert len(lst) == 1, lst
    e = lst[0]
    for k in ("id", "topic", "reason", "attempts", "subscription", "ts_us", "msg_id", "size"):
        assert k in e, (k, e)
    # "topic" is the original topic (the dlq-list filter matches it too)
    assert e["topic"] == "mdl.x" and e["attempts"] == 2 and e["msg_id"] == "mx-1", e
    assert isinstance(e["ts_us"], int) and isinstance(e["id"], int), e
    assert e["subscription"] == "md/4" and e["size"] == 3, e
    assert e["reason"] == "max_deliver 2 reached", e
    show = p.ctl({"cmd": "dlq-show", "id": e["id"]}, 6)
    assert show["code"] == 200, show
    js = show["json"]
    assert base64.b64decode(js["payload"]) == b"bad", js
    # the dead letter's headers: the original ones plus the x- headers
    assert js["headers"] == {"orig": "h", "x-reason": "max_deliver 2 reached",
                             "x-attempts": "2", "x-subscription": "md/4",
                             "x-original-seq": "0"}, js


@test
def dlq_purge_replay_shapes(b):
    c = session(b, "dq")
    w = session(b, "dqw")
    subscribe(w, 1, "dq.*", {"ack": "explicit"})
    for i in range(3):
        c.publish("dq.t%d" % i, b"%d" % i)
    until_acked(c, 3)
    for _ in range(3):
        d = next_msg(w)
        w.send(busp.nack(1, d["delivery_id"], 1, 0), json.dumps({"reason": "r%d" % d["delivery_id"]}))
    lst = wait_for(lambda: (lambda l: l if len(l) == 3 else None)(
        c.ctl({"cmd": "dlq-list", "topic": "dq.*"}, 7)["json"]["dead_letters"]), "3 dead letters")
    assert sorted(x["reason"] for x in lst) == ["r1", "r2", "r3"], lst
    assert len(c.ctl({"cmd": "dlq-list", "topic": "dq.*", "limit": 1}, 8)["json"]["dead_letters"]) == 1
    r = c.ctl({"cmd": "dlq-purge", "ids": [lst[0]["id"]]}, 9)
    assert r["code"] == 200 and r["json"]["purged"] == 1, r
    r = c.ctl({"cmd": "dlq-replay", "topic": "dq.#", "to": "topic"}, 10)
    assert r["code"] == 200 and r["json"]["replayed"] == 2, r
    got = [next_msg(w) for _ in range(2)]
    kept = [x["topic"] for x in lst if x["id"] != lst[0]["id"]]
    assert sorted(x["topic"] for x in got) == sorted(kept), got
    r = c.ctl({"cmd": "dlq-purge", "topic": "dq.#"}, 11)
    assert r["code"] == 200 and r["json"]["purged"] == 0, r
    assert c.ctl({"cmd": "dlq-show", "id": 999999}, 12)["code"] == 404
    assert c.ctl({"cmd": "dlq-replay"}, 13)["code"] == 400


@test
def long_dead_letter_topic_retained_not_routed(b):
    watcher = session(b, "lw")
    subscribe(watcher, 1, "$dlq.#")
    w = session(b, "lwk")
    topic = "long." + "x" * 248                 # 253 bytes; $dlq. makes 258
    assert len(topic) == 253
    subscribe(w, 1, topic, {"ack": "explicit"})
    p = session(b)
    p.publish(topic, b"big")
    until_acked(p, 1)
    d = next_msg(w)
    w.send(busp.nack(1, d["delivery_id"], 1, 0))
    lst = wait_for(lambda: p.ctl({"cmd": "dlq-list", "topic": "long.#"}, 3)["json"]["dead_letters"],
                   "long dead letter")
    assert lst[0]["topic"] == topic and lst[0]["size"] == 3, lst
    assert not drain(watcher, 500)
    assert sync(w) == []


@test
def ctl_shapes(b):
    c = session(b, "ctlsh")
    for req in ({"cmd": "clients"}, {"cmd": "subscriptions"}, {"cmd": "streams"}):
        r = c.ctl(req, 20)
        assert r["code"] == 200 and isinstance(r["json"], dict), (req, r)
    for req in ({}, {"cmd": 5}, {"cmd": "STATS"}, [1]):
        c.send(busp.ctl(21), json.dumps(req))
        r = next_msg(c)
        assert r["cmd"] == busp.CTLREPLY and r["code"] == 400 and r["request_id"] == 21, (req, r)
    subscribe(c, 1, "cs.x", {"group": "gg"})
    row = sub_row(c, "ctlsh", 22)[0]
    for k in ("client", "pattern", "group", "credit", "queued", "inflight",
              "delivered", "dropped", "throttled_publishers"):
        assert k in row, (k, row)


@test
def resubscribed_sub_id_starts_delivery_ids_at_1(b):
    s = session(b, "resub")
    subscribe(s, 1, "rsb.x")
    p = session(b)
    p.publish("rsb.x", b"a")
    until_acked(p, 1)
    assert next_msg(s)["delivery_id"] == 1
    s.send(busp.unsub(1))
    d = next_msg(s)
    assert d["cmd"] == busp.SUBEND and d["code"] == 200 and d["reason"] == "unsubscribed", d
    subscribe(s, 1, "rsb.x")
    p.publish("rsb.x", b"b")
    until_acked(p, 2)
    d = next_msg(s)
    assert d["payload"] == b"b" and d["delivery_id"] == 1 and d["attempt"] == 1, d


@test
def ack_returns_no_credit(b):
    s = session(b, "anc")
    subscribe(s, 1, "anc.x", {"ack": "explicit", "credit": 1})
    p = session(b)
    p.publish("anc.x", b"1")
    p.publish("anc.x", b"2")
    until_acked(p, 2)
    d = next_msg(s)
    s.send(busp.ack(1, d["delivery_id"]))
    assert sync(s) == [], "ACK gave credit back"
    s.send(busp.credit(1, 1))
    assert next_msg(s)["payload"] == b"2"


@test
def redelivery_waits_at_front_and_needs_credit(b):
    s = session(b, "front")
    subscribe(s, 1, "fq.x", {"ack": "explicit", "credit": 1})
    p = session(b)
    p.publish("fq.x", b"e1")
    p.publish("fq.x", b"e2")
    until_acked(p, 2)
    d = next_msg(s)
    assert d["payload"] == b"e1", d
    s.send(busp.nack(1, d["delivery_id"], 0, 1))
    # no credit: nothing comes, not even the redelivery
    assert not [x for x in drain(s, 500) if x["cmd"] == busp.DELIVER]
    s.send(busp.credit(1, 1))
    d2 = next_msg(s)
    assert d2["payload"] == b"e1" and d2["attempt"] == 2 and d2["delivery_id"] == 2, d2
    assert not drain(s, 300)
    s.send(busp.credit(1, 1))
    d3 = next_msg(s)
    assert d3["payload"] == b"e2" and d3["attempt"] == 1 and d3["delivery_id"] == 3, d3


@test
def group_disconnect_ends_every_member_and_group_dead_letter_name(b):
    m = [session(b, "gd%d" % i) for i in range(2)]
    for c in m:
        subscribe(c, 5, "gdis.x", {"group": "gdis", "credit": 0,
                                   "overflow": "disconnect", "queue_limit": 1})
    p = session(b)
    for i in range(3):
        p.publish("gdis.x", b"%d" % i)
    until_acked(p, 3)
    for c in m:
        d = next_msg(c)
        assert d["cmd"] == busp.SUBEND and d["sub_id"] == 5 and d["code"] == 429, d
    w = session(b, "gdl")
    subscribe(w, 1, "gdl.x", {"group": "named-group", "ack": "explicit"})
    p.publish("gdl.x", b"x")
    until_acked(p, p.seq)
    d = next_msg(w)
    w.send(busp.nack(1, d["delivery_id"], 1, 0), b'{"reason":"nope"}')
    lst = wait_for(lambda: p.ctl({"cmd": "dlq-list", "topic": "gdl.x"}, 4)["json"]["dead_letters"],
                   "group dead letter")
    assert lst[0]["subscription"] == "named-group" and lst[0]["reason"] == "nope", lst


@test
def payload_of_exactly_max_payload_is_accepted(b):
    s = session(b, "mps")
    subscribe(s, 1, "mp.x")
    p = session(b, "mpp")
    mp = p.welcome["max_payload"]
    p.publish("mp.x", b"y" * mp)
    got = until_acked(p, 1)
    assert not [d for d in got if d["cmd"] == busp.REJECT], got
    assert len(next_msg(s)["payload"]) == mp


@test
def dead_letter_times_are_integers(b):
    """§7 lists ts_us among integers: it must stay one in the JSON text (a
    double printed with 15 digits would read back as a float)."""
    w = session(b, "dti")
    subscribe(w, 1, "dti.x", {"ack": "explicit", "credit": 100})
    p = session(b)
    n = 40
    for i in range(n):
        p.publish("dti.x", b"%d" % i)
    until_acked(p, n)
    for _ in range(n):
        d = next_msg(w)
        w.send(busp.nack(1, d["delivery_id"], 1, 0))
        time.sleep(0.001)         # spread the timestamps over many values
    lst = wait_for(lambda: (lambda l: l if len(l) == n else None)(
        p.ctl({"cmd": "dlq-list", "topic": "dti.x"}, 4)["json"]["dead_letters"]), "dead letters")
    assert all(isinstance(x["ts_us"], int) for x in lst), [x["ts_us"] for x in lst]
    one = p.ctl({"cmd": "dlq-show", "id": lst[0]["id"]}, 5)["json"]
    assert isinstance(one.get("ts_us", 0), int), one
    clients = p.ctl({"cmd": "clients"}, 6)["json"]["clients"]
    assert all(isinstance(c.get("connected_us", 0), int) for c in clients), clients
    assert p.ctl({"cmd": "dlq-purge", "topic": "dti.x"}, 7)["json"]["purged"] == n


@test
def sub_id_in_use_wins_over_other_sub_errors(b):
    """§3: a SUB naming a live sub_id is ERROR 409 even when it would fail
    otherwise; the live subscription is untouched."""
    c = session(b, "inuse")
    subscribe(c, 1, "iu.x")
    for frames in ([busp.sub(1, "a..b")], [busp.sub(1, "iu.y"), b'{"bogus":1}'],
                   [busp.sub(1, "iu.x"), b"not json"]):
        d = error(c, frames)
        assert d["code"] == 409, (frames, d)
    c.publish("iu.x", b"live")
    got = until_acked(c, 1) + drain(c, 300)
    assert [x["payload"] for x in got if x["cmd"] == busp.DELIVER] == [b"live"], got


@test
def group_gap_goes_with_the_next_deliver(b):
    m1 = session(b, "gg1")
    m2 = session(b, "gg2")
    for c in (m1, m2):
        subscribe(c, 1, "ggap.x", {"group": "gg", "credit": 0, "overflow": "drop-new",
                                   "queue_limit": 1})
    p = session(b)
    for i in range(3):
        p.publish("ggap.x", b"%d" % i)
    until_acked(p, 3)
    m2.send(busp.credit(1, 5))
    g = next_msg(m2)
    assert g["cmd"] == busp.GAP and g["dropped"] == 2, g
    d = next_msg(m2)
    assert d["cmd"] == busp.DELIVER and d["payload"] == b"0", d
    assert not drain(m1, 300)


@test
def hello_options_must_be_an_object(b):
    for body in (b"{}", b'{"some-future-option": true}'):
        c = Client(b.endpoint)
        c.send(busp.hello("ho"), body)
        assert next_msg(c)["cmd"] == busp.WELCOME, body
        c.close()
    c = Client(b.endpoint)
    for body in (b"not json", b"[]"):
        d = error(c, [busp.hello("ho"), body])
        assert d["code"] == 400, (body, d)
    assert "discarded_on_end" in stats(session(b, "ho2"))


@test
def redelivery_keeps_acceptance_time_and_stream_seq(b):
    """§6: ts_us is the broker's acceptance time, so a redelivery carries
    the first delivery's ts_us (and stream_seq)."""
    s = session(b, "tsr")
    subscribe(s, 1, "tsr.x", {"ack": "explicit"})
    p = session(b)
    p.publish("tsr.x", b"x")
    until_acked(p, 1)
    d1 = next_msg(s)
    time.sleep(0.01)
    s.send(busp.nack(1, d1["delivery_id"], 0, 1))
    d2 = next_msg(s)
    assert d2["attempt"] == 2 and d2["ts_us"] == d1["ts_us"], (d1, d2)
    assert d2["stream_seq"] == d1["stream_seq"] == 0
    s.send(busp.ack(1, d2["delivery_id"]))
    assert sync(s) == []


@test
def expiry_and_rehello_hand_group_inflight_over(b):
    """§4: on expiry (and on a HELLO that replaces a session, as BYE would)
    unacknowledged deliveries go to the group's other members; any message
    counts as a sign of life."""
    b2 = Broker("--heartbeat", "200", "--session-timeout", "1200")
    try:
        stay = session(b2, "stay")
        subscribe(stay, 1, "exp.x", {"group": "eg", "ack": "explicit", "credit": 0})
        gone = session(b2, "gone")
        subscribe(gone, 1, "exp.x", {"group": "eg", "ack": "explicit", "credit": 10})
        p = session(b2, "exp-pub")
        for i in range(3):
            p.publish("exp.x", b"%d" % i)
        until_acked(p, 3)
        got = [next_msg(gone) for _ in range(3)]
        assert [d["payload"] for d in got] == [b"0", b"1", b"2"], got
        stay.send(busp.credit(1, 10))
        # "gone" falls silent; "stay" never answers PINGs but sends PINGs
        # of its own, which count as signs of life
        deadline = time.time() + 20
        redelivered = []
        while len(redelivered) < 3 and time.time() < deadline:
            stay.send(busp.ping(1))
            for d in drain(stay, 300):
                if d["cmd"] == busp.DELIVER:
                    redelivered.append(d)
        assert sorted(d["payload"] for d in redelivered) == [b"0", b"1", b"2"], redelivered
        assert all(d["attempt"] == 2 for d in redelivered), redelivered
        for d in redelivered:
            stay.send(busp.ack(1, d["delivery_id"]))
        # the silent one was expired
        assert error(gone, [busp.unsub(1)])["code"] == 401
        # a HELLO that replaces a session hands its in-flight over too
        wait2 = session(b2, "wait2")
        subscribe(wait2, 1, "exp.y", {"group": "eg2", "ack": "explicit", "credit": 0})
        again = session(b2, "again")
        subscribe(again, 1, "exp.y", {"group": "eg2", "ack": "explicit", "credit": 10})
        p = session(b2, "exp-pub2")       # the first publisher fell silent too
        p.publish("exp.y", b"r")
        until_acked(p, p.seq)
        d = next_msg(again)
        assert d["payload"] == b"r" and d["attempt"] == 1, d
        again.send(busp.hello("again-2"))
        assert next_msg(again)["cmd"] == busp.WELCOME
        wait2.send(busp.credit(1, 1))
        r = next_msg(wait2)
        assert r["cmd"] == busp.DELIVER and r["payload"] == b"r" and r["attempt"] == 2, r
        stay.send(busp.ping(2))
    finally:
        b2.stop()


# ---------------------------------------------------------------- §8 features

@test
def features_only_when_both_listed(b):
    c = session(b, "feat", features=("nope", "error-context", "also-nope"))
    assert c.welcome["json"]["features"] == ["error-context"], c.welcome
    # error-context but not batch: PUBB is malformed (with context)
    d = error(c, [busp.pubb(1, 1), busp.pub_record("f.x")])
    assert d["code"] == 400 and d["context"]["cmd"] == "PUBB", d
    d = error(c, [busp.ackb(1), busp.ack_record(1, 1)])
    assert d["code"] == 400 and d["context"]["cmd"] == "ACKB", d
    # pub_seq 1 still unused
    c.publish("f.x", b"x")
    assert until_acked(c, 1)[-1]["seq"] == 1
    # known command with a bad header is named, with the fields it has
    cases = [
        ([busp.unsub(3) + b"\0"], {"cmd": "UNSUB"}),
        ([busp.credit(3, 1)[:-1]], {"cmd": "CREDIT"}),
        ([busp.ctl(4) + b"\0"], {"cmd": "CTL"}),
        ([busp.bye() + b"\0"], {"cmd": "BYE"}),
        ([b"\xb5\x02"], {"cmd": "WELCOME"}),
        ([b"\xb5\x00"], {"cmd": None}),
    ]
    for frames, ctx in cases:
        d = error(c, frames)
        assert d["code"] == 400 and d["context"]["cmd"] == ctx["cmd"], (frames, d)
    d = error(c, [busp.pub(5, "f.x")])
    assert d["context"] == {"cmd": "PUB", "pub_seq": 5}, d
    d = error(c, [busp.unsub(3)])
    assert d["code"] == 404 and d["context"] == {"cmd": "UNSUB", "sub_id": 3}, d
    # batch without error-context: ERRORs have no body
    n = session(b, "featb", features=("batch",))
    assert n.welcome["json"]["features"] == ["batch"]
    d = error(n, [busp.unsub(3)])
    assert len(d["frames"]) == 1, d


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS))
