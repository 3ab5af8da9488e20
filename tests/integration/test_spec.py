#!/usr/bin/env python3
"""A second, independent reading of PROTOCOL.md: the statements a client
author relies on that test_contract, test_raw_protocol, test_batch,
test_delivery and test_durable leave unproven — defaults that only show
after many events (credit 1000, queue_limit 10000, max_deliver 5), the
configured values in WELCOME, the dedup window's end, round-robin in
groups, a member leaving by UNSUB, a NACK that dead-letters at once, the
shape of CTL rows, and a client that keeps its socket across a broker
restart.

Frames are built by hand with busp.py.  Every wait polls with a timeout of
seconds; nothing asserts how fast busd is.
"""
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import (Broker, Client, next_msg, subscribe, sync, until_acked,  # noqa: E402
                  credit_of, delivers, wait_for, error, stats)


def session(broker, name="spec", features=None, endpoint=None):
    return busp.session(broker, name, features, endpoint, timeout=1000)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def drain(c, timeout_ms=400):
    return busp.drain(c, timeout_ms)


def dead_letters(c, pattern, rid=91):
    r = c.ctl({"cmd": "dlq-list", "topic": pattern}, rid)
    assert r["code"] == 200, r
    return r["json"]["dead_letters"]


# ---------------------------------------------------------------- §6 defaults

@test
def default_sub_credit_is_1000(b):
    """§6: SUB without options has credit 1000: exactly 1000 DELIVERs, then
    none until CREDIT."""
    s = session(b, "dcred")
    subscribe(s, 1, "dcr.x")
    p = session(b, "dcred-p")
    n = 1005
    for i in range(n):
        p.publish("dcr.x", b"%d" % i)
    until_acked(p, n)
    got = [next_msg(s) for _ in range(1000)]
    assert [d["payload"] for d in got] == [b"%d" % i for i in range(1000)]
    assert [d["delivery_id"] for d in got] == list(range(1, 1001))
    assert not delivers(sync(s) + drain(s, 400)), "DELIVER beyond the default credit"
    s.send(busp.credit(1, 2))
    got = [next_msg(s) for _ in range(2)]
    assert [d["payload"] for d in got] == [b"1000", b"1001"], got
    assert not delivers(drain(s, 300))


@test
def default_queue_limit_is_10000(b):
    """§5/§6: a block queue (default) throttles its publisher when its
    length before the event is at or above 10000 (the default limit)."""
    s = session(b, "dql")
    subscribe(s, 1, "dql.x", {"credit": 0})
    p = session(b, "dql-p")
    got = []
    for i in range(10000):
        p.publish("dql.x", b"")
        if p.seq % 500 == 0:            # stay inside the 1000-credit window
            got += until_acked(p, p.seq)
    assert credit_of(got) == 10000, credit_of(got)
    assert not [d for d in got if d["cmd"] == busp.REJECT]
    assert stats(p)["throttled_publishers"] == 0
    p.publish("dql.x", b"")             # length before: 10000 = the limit
    a = until_acked(p, p.seq)
    assert credit_of(a) == 0 and not [d for d in a if d["cmd"] == busp.REJECT], a
    assert stats(p, 92)["throttled_publishers"] == 1
    s.send(busp.unsub(1))               # the throttle lifts with the queue
    d = next_msg(p)
    assert d["cmd"] == busp.PUBACK and d["credit"] == 1, d


@test
def default_max_deliver_is_5(b):
    """§6: without max_deliver, the fifth unacknowledged attempt is the
    last: the event then goes to the dead-letter topic."""
    s = session(b, "dmd")
    subscribe(s, 1, "dmd.x", {"ack": "explicit"})
    p = session(b, "dmd-p")
    p.publish("dmd.x", b"poison")
    until_acked(p, 1)
    for attempt in range(1, 6):
        d = next_msg(s)
        assert d["cmd"] == busp.DELIVER and d["attempt"] == attempt, d
        assert d["delivery_id"] == attempt, d
        s.send(busp.nack(1, d["delivery_id"], 0, 1))
    lst = wait_for(lambda: dead_letters(p, "dmd.x"), "the dead letter")
    assert len(lst) == 1, lst
    assert lst[0]["attempts"] == 5 and lst[0]["reason"] == "max_deliver 5 reached", lst
    assert not delivers(drain(s, 400)), "a sixth attempt"


@test
def nack_zero_delay_uses_backoff_and_redelivers(b):
    """§6: NACK action 0 with delay_ms 0 redelivers after the broker's
    backoff, exponential in the attempt (attempt + 1, new delivery_id)."""
    s = session(b, "nbo")
    subscribe(s, 1, "nbo.x", {"ack": "explicit"})
    p = session(b, "nbo-p")
    p.publish("nbo.x", b"again")
    until_acked(p, 1)
    d1 = next_msg(s)
    t1 = time.time()
    s.send(busp.nack(1, d1["delivery_id"], 0, 0))
    d2 = next_msg(s)
    gap1 = time.time() - t1
    assert d2["cmd"] == busp.DELIVER and d2["payload"] == b"again", d2
    assert d2["attempt"] == 2 and d2["delivery_id"] == d1["delivery_id"] + 1, d2
    assert error(s, [busp.ack(1, d1["delivery_id"])])["code"] == 404
    # doc/protocol.md §6.8 (busd's defaults): after attempt a the delay is
    # 1000 ms x 2^(a-1), +-20 % jitter: at least 0.8 s, then at least 1.6 s
    # (only lower bounds: a loaded machine makes gaps longer, never shorter)
    t2 = time.time()
    s.send(busp.nack(1, d2["delivery_id"], 0, 0))
    d3 = next_msg(s)
    gap2 = time.time() - t2
    assert d3["attempt"] == 3 and d3["delivery_id"] == d2["delivery_id"] + 1, d3
    assert gap1 >= 0.75 and gap2 >= 1.5, (gap1, gap2)
    s.send(busp.ack(1, d3["delivery_id"]))
    assert sync(s) == []


@test
def nack_dead_letter_ignores_delay(b):
    """§6: NACK action 1 dead-letters at once; delay_ms is ignored."""
    s = session(b, "ndl")
    subscribe(s, 1, "ndl.x", {"ack": "explicit"})
    p = session(b, "ndl-p")
    p.publish("ndl.x", b"x")
    until_acked(p, 1)
    d = next_msg(s)
    s.send(busp.nack(1, d["delivery_id"], 1, 3600 * 1000),
           json.dumps({"reason": "cannot parse"}))
    lst = wait_for(lambda: dead_letters(p, "ndl.x"), "the dead letter", timeout=20)
    assert lst[0]["reason"] == "cannot parse" and lst[0]["attempts"] == 1, lst
    assert lst[0]["subscription"] == "ndl/1", lst
    # the delivery is finished: ACK of it is 404, nothing comes again
    assert error(s, [busp.ack(1, d["delivery_id"])])["code"] == 404
    assert not delivers(drain(s, 300))


@test
def nack_body_that_is_not_a_reason_still_takes_effect(b):
    """§6 leaves open what a NACK body other than {"reason": "..."} does;
    doc/protocol.md §6.8 (busd): the NACK takes effect and the dead letter
    gets the default reason (failing the NACK would leave the delivery
    hanging until ack_wait_ms)."""
    s = session(b, "nbody")
    subscribe(s, 1, "nbody.x", {"ack": "explicit", "ack_wait_ms": 600000})
    p = session(b, "nbody-p")
    bodies = [b"not json", b'{"reason": 5}', b"[]", b'{"reason": "kept", "extra": 1}']
    for i in range(len(bodies)):
        p.publish("nbody.x", b"%d" % i)
    until_acked(p, len(bodies))
    ds = [next_msg(s) for _ in bodies]
    for d, body in zip(ds, bodies):
        s.send(busp.nack(1, d["delivery_id"], 1, 0), body)
    assert sync(s) == [], "a NACK body was answered with an ERROR"
    lst = wait_for(lambda: (lambda l: l if len(l) == 4 else None)(dead_letters(p, "nbody.x")),
                   "four dead letters")
    assert sorted(x["reason"] for x in lst) == \
        sorted(["dead-lettered by subscriber"] * 3 + ["kept"]), lst
    for d in ds:
        assert error(s, [busp.ack(1, d["delivery_id"])])["code"] == 404


@test
def deliveries_awaiting_ack_are_not_queued(b):
    """§5: deliveries awaiting ACK are not in the queue, so they never
    throttle a publisher however many there are."""
    s = session(b, "infl")
    subscribe(s, 1, "infl.x", {"ack": "explicit", "credit": 100, "queue_limit": 2})
    p = session(b, "infl-p")
    for i in range(20):
        p.publish("infl.x", b"%d" % i)
    got = until_acked(p, 20)
    assert credit_of(got) == 20, got
    ds = [next_msg(s) for _ in range(20)]
    assert [d["payload"] for d in ds] == [b"%d" % i for i in range(20)]
    row = [r for r in p.ctl({"cmd": "subscriptions"}, 3)["json"]["subscriptions"]
           if r["client"] == "infl"][0]
    assert row["inflight"] == 20 and row["queued"] == 0, row
    assert row["throttled_publishers"] == [], row
    p.publish("infl.x", b"more")
    assert credit_of(until_acked(p, 21)) == 1


@test
def disconnect_frees_the_sub_id(b):
    """§6: overflow disconnect ends the subscription with SUBEND 429; the
    sub_id is then free again and the publisher was never slowed."""
    s = session(b, "dsc")
    subscribe(s, 4, "dsc.x", {"credit": 0, "overflow": "disconnect", "queue_limit": 2})
    p = session(b, "dsc-p")
    for i in range(5):
        p.publish("dsc.x", b"%d" % i)
    got = until_acked(p, 5)
    assert credit_of(got) == 5 and not [d for d in got if d["cmd"] == busp.REJECT], got
    end = [d for d in drain(s, 600) if d["cmd"] == busp.SUBEND]
    assert len(end) == 1 and end[0]["sub_id"] == 4 and end[0]["code"] == 429, end
    assert error(s, [busp.credit(4, 1)])["code"] == 404
    subscribe(s, 4, "dsc.x")
    p.publish("dsc.x", b"after")
    until_acked(p, 6)
    d = next_msg(s)
    assert d["cmd"] == busp.DELIVER and d["payload"] == b"after" and d["delivery_id"] == 1, d


@test
def credit_up_to_2_32_is_in_force(b):
    """§6: SUB credit may be anything up to 2^32-1; busd's max_credit cap is
    off by default (doc/protocol.md §6.3), so SUBOK and CTL show the credit
    asked for, and CREDIT adds to it."""
    c = session(b, "cap")
    ok = subscribe(c, 1, "cap.x", {"credit": 2 ** 32 - 1})
    assert ok["json"]["credit"] == 2 ** 32 - 1, ok
    ok = subscribe(c, 2, "cap.y", {"credit": 9999})
    assert ok["json"]["credit"] == 9999, ok
    c.send(busp.credit(2, 100001))
    assert sync(c) == []
    rows = [r for r in c.ctl({"cmd": "subscriptions"}, 3)["json"]["subscriptions"]
            if r["client"] == "cap"]
    assert sorted(r["credit"] for r in rows) == [110000, 2 ** 32 - 1], rows


@test
def huge_credit_never_returned_keeps_flowing_while_the_client_reads(b):
    """§6: a client may grant 2^32-1 credit once and never send CREDIT.
    What the broker has sent and does not know to be read counts against
    queue_bytes; the client's PONGs to the broker's PINGs say what it read
    (doc/protocol.md §6.3), so a reader that answers PINGs gets every
    event, far beyond queue_bytes, without a single CREDIT."""
    c = session(b, "reader")
    subscribe(c, 1, "rd.x", {"credit": 2 ** 32 - 1, "queue_bytes": 65536})
    p = session(b, "rd-p")
    total, size = 3000, 1000               # ~3 MB through a 64 KiB window
    credit = p.welcome["pub_credit"]
    sent = got = 0
    deadline = time.time() + 120
    while got < total:
        assert time.time() < deadline, "only %d of %d delivered" % (got, total)
        while sent < total and credit > 0:
            p.publish("rd.x", b"r" * size)
            sent += 1
            credit -= 1
        credit += credit_of(drain(p, 5))
        # The subscriber only reads: drain answers the broker's PINGs.
        for d in drain(c, 50):
            if d["cmd"] == busp.DELIVER:
                assert d["payload"] == b"r" * size
                got += 1
    assert got == total
    stats = c.ctl({"cmd": "stats"}, 9)["json"]
    assert stats["receipts_sent"] > 0, stats


# ---------------------------------------------------------------- §6 groups

@test
def group_round_robin_skips_members_without_credit(b):
    """§6: each event goes to the next member in round-robin order that
    has credit; a member without credit gets nothing."""
    ms = [session(b, "rr%d" % i) for i in range(3)]
    for m in ms:
        subscribe(m, 1, "rr.x", {"group": "rr"})
    p = session(b, "rr-p")
    for i in range(30):
        p.publish("rr.x", b"%d" % i)
    until_acked(p, 30)
    per = [[d["payload"] for d in delivers(drain(m, 500))] for m in ms]
    assert sorted(len(x) for x in per) == [10, 10, 10], per
    assert sorted(sum(per, [])) == sorted(b"%d" % i for i in range(30)), per
    # a member with no credit left is skipped, the others share the rest
    zero = session(b, "rr-zero")
    subscribe(zero, 1, "rr.x", {"group": "rr", "credit": 0})
    for i in range(30, 40):
        p.publish("rr.x", b"%d" % i)
    until_acked(p, 40)
    per = [[d["payload"] for d in delivers(drain(m, 500))] for m in ms]
    assert sorted(len(x) for x in per) == [3, 3, 4], per
    assert not drain(zero, 300)


@test
def group_nack_goes_back_to_the_group(b):
    """§6: a NACKed delivery returns to the group's queue and goes to the
    member that has credit (attempt 2)."""
    a = session(b, "gn-a")
    subscribe(a, 1, "gn.x", {"group": "gn", "ack": "explicit", "credit": 1})
    c = session(b, "gn-c")
    subscribe(c, 1, "gn.x", {"group": "gn", "ack": "explicit", "credit": 0})
    p = session(b, "gn-p")
    p.publish("gn.x", b"job")
    until_acked(p, 1)
    d = next_msg(a)
    assert d["payload"] == b"job" and d["attempt"] == 1, d
    c.send(busp.credit(1, 5))
    assert sync(c) == []                # nothing waits for c yet
    a.send(busp.nack(1, d["delivery_id"], 0, 1))
    r = next_msg(c)
    assert r["cmd"] == busp.DELIVER and r["payload"] == b"job" and r["attempt"] == 2, r
    c.send(busp.ack(1, r["delivery_id"]))
    assert sync(c) == [] and not drain(a, 300)


@test
def group_member_unsub_hands_inflight_over(b):
    """§6: a member leaving by UNSUB returns its unacknowledged deliveries
    to the group's queue; its SUBEND is 200 and nothing follows it."""
    a = session(b, "gu-a")
    subscribe(a, 2, "gu.x", {"group": "gu", "ack": "explicit", "credit": 10})
    c = session(b, "gu-c")
    subscribe(c, 2, "gu.x", {"group": "gu", "ack": "explicit", "credit": 0})
    p = session(b, "gu-p")
    for i in range(4):
        p.publish("gu.x", b"%d" % i)
    until_acked(p, 4)
    got = [next_msg(a) for _ in range(4)]
    a.send(busp.ack(2, got[0]["delivery_id"]))
    a.send(busp.unsub(2))
    end = next_msg(a)
    assert end["cmd"] == busp.SUBEND and end["code"] == 200, end
    assert not drain(a, 300)
    c.send(busp.credit(2, 10))
    r = [next_msg(c) for _ in range(3)]
    assert sorted(x["payload"] for x in r) == [b"1", b"2", b"3"], r
    assert all(x["attempt"] == 2 for x in r), r
    assert not drain(c, 300)


# ---------------------------------------------------------------- §4 sessions

@test
def every_command_but_hello_needs_a_session(b):
    """§4: any command other than HELLO from a peer without a session gets
    ERROR 401 (PONG, BYE and the batch commands too)."""
    c = Client(b.endpoint, timeout=10000)
    for frames in ([struct.pack(">BBQ", busp.SIG, busp.PONG, 1)], [busp.bye()],
                   [busp.unsub(1)], [busp.credit(1, 1)], [busp.ack(1, 1)],
                   [busp.nack(1, 1, 0, 0)], [busp.ctl(3)]):
        d = error(c, frames)
        assert d["code"] == 401, (frames, d)


@test
def one_session_per_connection(b):
    """§4: two connections with the same client_name are two sessions;
    BYE of one leaves the other alone."""
    a = session(b, "twin")
    c = session(b, "twin")
    subscribe(a, 1, "tw.x")
    subscribe(c, 1, "tw.x")
    a.send(busp.bye())
    p = session(b, "tw-p")
    p.publish("tw.x", b"x")
    until_acked(p, 1)
    d = next_msg(c)
    assert d["cmd"] == busp.DELIVER and d["payload"] == b"x", d
    assert error(a, [busp.ping(1)])["code"] == 401


@test
def rehello_negotiates_features_afresh(b):
    """§4/§8: a HELLO on a live session starts a new one, and features are
    those of the new HELLO: without them ERRORs have no body again and
    PUBB is malformed."""
    c = session(b, "refeat", features=("error-context", "batch"))
    assert error(c, [busp.unsub(5)])["context"] == {"cmd": "UNSUB", "sub_id": 5}
    c.send(busp.hello("refeat-2"))
    w = next_msg(c)
    assert w["cmd"] == busp.WELCOME and "features" not in w["json"], w
    d = error(c, [busp.unsub(5)])
    assert d["code"] == 404 and len(d["frames"]) == 1, d
    d = error(c, [busp.pubb(1, 1), busp.pub_record("rf.x")])
    assert d["code"] == 400, d
    c.seq = 0
    c.publish("rf.x", b"x")
    assert until_acked(c, 1)[-1]["seq"] == 1


@test
def one_session_two_subscriptions_one_pattern(b):
    """§6: every subscription is its own: two sub_ids on one pattern get a
    copy each; two members of one group in one session share one copy."""
    c = session(b, "twice")
    for sub_id, opts in ((1, None), (2, None), (3, {"group": "tw"}), (4, {"group": "tw"})):
        subscribe(c, sub_id, "twice.x", opts)
    p = session(b, "twice-p")
    p.publish("twice.x", b"e")
    until_acked(p, 1)
    got = sorted(d["sub_id"] for d in delivers(drain(c, 500)))
    assert got[:2] == [1, 2] and len(got) == 3 and got[2] in (3, 4), got


@test
def client_keeps_its_socket_across_a_broker_restart(b):
    """§4: after a restart the broker knows no session: the next command
    gets 401; HELLO on the same socket starts a session with pub_seq 1 and
    no subscriptions, and the client restores them."""
    b2 = Broker()
    port = b2.port
    c = session(b2, "survivor")
    subscribe(c, 3, "rs.x")
    c.publish("rs.x", b"before")
    got = until_acked(c, 1)
    assert [d["payload"] for d in delivers(got + drain(c, 300))] == [b"before"], got
    other = session(b2, "bystander", features=("error-context",))
    assert b2.stop() == 0
    for cl in (c, other):
        d = next_msg(cl)
        assert d["cmd"] == busp.ERROR and d["code"] == 503, d
    # §8.1 names the message that caused an ERROR; doc/protocol.md §10.2
    # (busd): one that answers no message carries {"cmd": null}
    assert d["context"] == {"cmd": None}, d
    b3 = Broker(port=port)
    try:
        c.send(busp.ping(1))            # queued by ZeroMQ until it reconnects
        d = next_msg(c, timeout=30)
        assert d["cmd"] == busp.ERROR and d["code"] == 401, d
        c.send(busp.hello("survivor"))
        assert next_msg(c)["cmd"] == busp.WELCOME
        c.seq = 0
        assert error(c, [busp.unsub(3)])["code"] == 404
        subscribe(c, 3, "rs.x")
        c.publish("rs.x", b"after")
        got = until_acked(c, 1)
        assert got[-1]["seq"] == 1 and got[-1]["credit"] == 1, got
        assert [d["payload"] for d in delivers(got + drain(c, 300))] == [b"after"]
    finally:
        assert b3.stop() == 0


@test
def configured_values_are_announced_and_honoured(b):
    """§4/§5: WELCOME carries the broker's configured session_timeout_ms,
    heartbeat_ms, dedup_window_ms, pub_credit and max_payload, and the
    broker keeps to them: max_payload + 1 is 413, and a msg_id seen more
    than dedup_window_ms ago is routed again."""
    b2 = Broker("--session-timeout", "9000", "--heartbeat", "3000",
                "--pub-credit", "7", "--max-payload", "5000",
                "-s", "dedup_window_ms=4000")
    try:
        s = session(b2, "cfg-s")
        info = s.welcome["json"]
        assert (info["session_timeout_ms"], info["heartbeat_ms"], info["dedup_window_ms"]) \
            == (9000, 3000, 4000), info
        assert s.welcome["pub_credit"] == 7 and s.welcome["max_payload"] == 5000, s.welcome
        subscribe(s, 1, "cfg.x")
        p = session(b2, "cfg-p")
        t0 = time.time()                 # at or before the acceptance
        p.publish("cfg.x", b"y" * 5000, msg_id="once")
        p.publish("cfg.x", b"y" * 5001)
        p.publish("cfg.x", b"y" * 5000, msg_id="once")
        got = until_acked(p, 3)
        assert [(d["seq"], d["code"]) for d in got if d["cmd"] == busp.REJECT] == [(2, 413)], got
        assert len(delivers(drain(s, 300))) == 1
        # after the window the same (topic, msg_id) is a new event
        routed = []
        deadline = time.time() + 30
        while not routed and time.time() < deadline:
            time.sleep(0.5)
            p.publish("cfg.x", b"z", msg_id="once")
            until_acked(p, p.seq)
            routed = delivers(drain(s, 200))
        assert routed and routed[0]["payload"] == b"z", "msg_id never left the window"
        assert time.time() - t0 >= 3.9, "msg_id left the window early"
    finally:
        assert b2.stop() == 0


@test
def ipc_transport_and_several_binds(b):
    """§1: any ZeroMQ transport works; --bind is repeatable and one broker
    serves both endpoints as one bus."""
    path = "/tmp/busd-spec-%d.sock" % os.getpid()
    b2 = Broker("--bind", "ipc://" + path)
    try:
        s = session(b2, "ipc-s", endpoint="ipc://" + path)
        subscribe(s, 1, "ipc.x")
        p = session(b2, "tcp-p")
        p.publish("ipc.x", b"across")
        until_acked(p, 1)
        d = next_msg(s)
        assert d["cmd"] == busp.DELIVER and d["payload"] == b"across", d
    finally:
        assert b2.stop() == 0


@test
def sys_stats_is_the_stats_object_and_only_dollar_patterns_see_it(b):
    """§2/§7 and doc/protocol.md §2.3: $sys.stats carries the CTL stats
    object (every counter §7 names, integers), msg_id empty, no headers,
    stream_seq 0; $sys.* and $sys.# match it, *.stats and # never do."""
    b2 = Broker("--stats-interval", "200")
    try:
        c = session(b2, "sys")
        # Stats events may arrive for the first subscriptions before the
        # later SUBOKs: read both as they come.
        for i, pat in enumerate(["$sys.stats", "$sys.*", "$sys.#", "*.stats", "#", "*.*"]):
            c.send(busp.sub(i + 1, pat))
        subok, seen = set(), {}
        deadline = time.time() + 30
        while (len(seen) < 3 or len(subok) < 6) and time.time() < deadline:
            d = next_msg(c)
            if d["cmd"] == busp.SUBOK:
                subok.add(d["sub_id"])
                continue
            assert d["cmd"] == busp.DELIVER, d
            seen.setdefault(d["sub_id"], d)
        assert subok == {1, 2, 3, 4, 5, 6}, subok
        assert sorted(seen) == [1, 2, 3], sorted(seen)
        until = time.time() + 1.0          # a few more rounds: never 4, 5 or 6
        while time.time() < until:
            d = next_msg(c)
            assert d["cmd"] == busp.DELIVER and d["sub_id"] in (1, 2, 3), d
        d = seen[1]
        assert d["topic"] == "$sys.stats" and d["msg_id"] == "" and d["stream_seq"] == 0, d
        assert d["headers"] == b"", d
        body = json.loads(d["payload"])
        for k in ("sessions", "subscriptions", "accepted", "rejected", "duplicates",
                  "unrouted", "delivered", "redelivered", "dropped", "queued", "inflight",
                  "dead_lettered", "throttled_publishers", "protocol_errors", "uptime_s"):
            assert isinstance(body[k], int) and not isinstance(body[k], bool), (k, body)
        assert body["subscriptions"] >= 1 and body["sessions"] >= 1, body
        c.send(busp.ctl(9), json.dumps({"cmd": "stats"}))
        while True:                           # stats events keep coming meanwhile
            r = next_msg(c)
            if r["cmd"] == busp.CTLREPLY:
                break
        assert sorted(body) == sorted(r["json"]), (sorted(body), sorted(r["json"]))
    finally:
        assert b2.stop() == 0


# ---------------------------------------------------------------- §7 control

@test
def ctl_rows_have_the_named_fields_with_types(b):
    """§7: subscriptions rows carry client, pattern, group, policy, credit,
    queued, inflight, delivered, dropped and throttled publishers; stats
    counts sessions and subscriptions."""
    c = session(b, "rows")
    before = stats(c)
    subscribe(c, 1, "rows.a", {"credit": 3, "overflow": "drop-new", "queue_limit": 1})
    subscribe(c, 2, "rows.b", {"group": "rg", "ack": "explicit", "credit": 0})
    after = stats(c, 93)
    assert after["subscriptions"] - before["subscriptions"] == 2, (before, after)
    p = session(b, "rows-p")
    for t in ("rows.a",) * 5 + ("rows.b",) * 2:
        p.publish(t, b"e")
    until_acked(p, 7)
    assert len(delivers(drain(c, 400))) == 3
    r1, r2 = _row(p, "rows", 1), _row(p, "rows", 2)
    assert r1["pattern"] == "rows.a" and r1["group"] is None and r1["policy"] == "drop-new", r1
    assert r1["credit"] == 0 and r1["queued"] == 1 and r1["dropped"] == 1, r1
    assert r1["inflight"] == 0 and r1["throttled_publishers"] == [], r1
    assert r2["group"] == "rg" and r2["policy"] == "block" and r2["queued"] == 2, r2
    for r in (r1, r2):
        for k in ("credit", "queued", "inflight", "delivered", "dropped"):
            assert isinstance(r[k], int) and not isinstance(r[k], bool), (k, r)
    cl = [x for x in p.ctl({"cmd": "clients"}, 4)["json"]["clients"] if x["name"] == "rows"]
    assert len(cl) == 1, cl


def _row(c, client, sub_id):
    subs = c.ctl({"cmd": "subscriptions"}, 5)["json"]["subscriptions"]
    rows = [r for r in subs if r["client"] == client and r.get("sub_id", sub_id) == sub_id]
    assert rows, subs
    return rows[0]


@test
def error_context_names_the_ctl_request(b):
    """§8.1: an ERROR caused by a CTL names its request_id."""
    c = session(b, "ectx", features=("error-context",))
    d = error(c, [busp.ctl(44), b'{"cmd":"stats"}', b"{}"])
    assert d["code"] == 400 and d["context"] == {"cmd": "CTL", "request_id": 44}, d
    c.send(busp.ctl(45), b'{"cmd":"stats"}')
    r = next_msg(c)
    assert r["cmd"] == busp.CTLREPLY and r["request_id"] == 45 and r["code"] == 200, r


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS))
