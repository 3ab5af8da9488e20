#!/usr/bin/env python3
"""Durable streams (issue 11; PROTOCOL §5, §6, §7), tried with the Python
client written from the protocol page: every `from`, every retention limit,
cursors, dead letters and the dedup window across restarts (SIGKILL, not a
clean stop), a full disk and an unwritable data_dir, CTL streams, and
dlq-replay to the origin group.  Each test starts its own busd with its own
data_dir (a temporary directory) and checks that it exits cleanly, so a
sanitizer report fails the test that caused it.  The crash test with many
kills is tests/integration/itest_durable.c."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import Client  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Durable:
    """A busd with a data_dir and streams, restartable on the same port."""

    def __init__(self, streams, data_dir=None, **settings):
        self.dir = tempfile.mkdtemp(prefix="test_durable_")
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        config = {"data_dir": self.data_dir, "streams": streams,
                  "heartbeat_ms": 500, "session_timeout_ms": 3000}
        config.update(settings)
        self.config = os.path.join(self.dir, "busd.json")
        self.write(config)
        self.port = None
        self.broker = None
        self.start()

    def write(self, config):
        with open(self.config, "w") as f:
            json.dump(config, f)

    def start(self):
        self.broker = busp.Broker("-c", self.config, port=self.port)
        self.port = self.broker.port
        self.endpoint = self.broker.endpoint

    def log(self):
        with open("busd-%d.log" % self.port, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def crash(self):
        """SIGKILL: nothing gets to run at exit."""
        self.broker.proc.send_signal(signal.SIGKILL)
        self.broker.proc.wait(timeout=30)
        self.broker.log.close()

    def restart(self):
        self.crash()
        self.start()

    def stop(self):
        rc = self.broker.stop()
        assert rc == 0, "busd exited with %d:\n%s" % (rc, self.log()[-3000:])
        shutil.rmtree(self.dir, ignore_errors=True)


def stream(name="pay", patterns=("pay.#",), **limits):
    s = {"name": name, "patterns": list(patterns), "sync": "always"}
    s.update(limits)
    return s


def session(d, name="py"):
    c = Client(d.endpoint, timeout=5000)
    c.hello(name)
    return c


def publish_all(c, topic, payloads, msg_ids=None):
    """Publish and wait for the PUBACK covering all of them."""
    last = 0
    for i, p in enumerate(payloads):
        last = c.publish(topic, p if isinstance(p, bytes) else p.encode(),
                         msg_id=msg_ids[i] if msg_ids else "")
    while True:
        d = c.expect(busp.PUBACK)
        if d["seq"] >= last:
            return


def durable_sub(c, sub_id, pattern, name, expect=busp.SUBOK, **options):
    opts = {"durable": name}
    opts.update(options)
    c.send(busp.sub(sub_id, pattern), json.dumps(opts))
    d = c.expect(expect)
    assert d["sub_id"] == sub_id
    return d


def expect(c, cmd, timeout=30):
    """Like Client.expect, but a broker that only PINGs cannot keep a test
    waiting for ever."""
    deadline = time.time() + timeout
    while True:
        d = c.recv()
        if d["cmd"] == busp.PING:
            c.send(busp.struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))
            assert time.time() < deadline, "only PINGs for %d s, expected 0x%02x" % (timeout, cmd)
            continue
        assert d["cmd"] == cmd, "expected 0x%02x, got %r" % (cmd, d)
        return d


def deliveries(c, n, ack_sub=None):
    got = []
    for _ in range(n):
        d = expect(c, busp.DELIVER)
        got.append(d)
        if ack_sub is not None:
            c.send(busp.ack(ack_sub, d["delivery_id"]))
    return got


def quiet(c, ms=300):
    c.sock.setsockopt(busp.zmq.RCVTIMEO, ms)
    try:
        d = c.recv()
        raise AssertionError("expected nothing, got %r" % d)
    except busp.zmq.Again:
        pass
    finally:
        c.sock.setsockopt(busp.zmq.RCVTIMEO, 5000)


def sync(c):
    """PING/PONG: everything sent before is handled (and, for a stream with
    sync always, stored)."""
    c.send(busp.ping(77))
    c.expect(busp.PONG)


def wait_for(fn, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# ------------------------------------------------------------------ replay

@test
def from_first_last_new_seq_time():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["a", "b", "c"])
        time.sleep(0.02)
        t_mid = time.time()
        time.sleep(0.02)
        publish_all(p, "pay.ok", ["d", "e"])
        s = session(d, "sub")
        # first: the oldest stored event, SUBOK says where it starts
        ok = durable_sub(s, 1, "pay.#", "f", **{"from": "first"})
        assert ok["json"]["stream_seq"] == 1, ok["json"]
        got = deliveries(s, 5, ack_sub=1)
        assert [g["payload"] for g in got] == [b"a", b"b", b"c", b"d", b"e"]
        assert [g["stream_seq"] for g in got] == [1, 2, 3, 4, 5]
        assert all(g["attempt"] == 1 for g in got)
        # last: the newest stored event, then new ones
        ok = durable_sub(s, 2, "pay.#", "l", **{"from": "last"})
        assert ok["json"]["stream_seq"] == 5
        assert deliveries(s, 1, ack_sub=2)[0]["payload"] == b"e"
        # new: only what is accepted after SUBOK
        ok = durable_sub(s, 3, "pay.#", "n", **{"from": "new"})
        assert ok["json"]["stream_seq"] == 6
        # seq N inclusive
        ok = durable_sub(s, 4, "pay.#", "s", **{"from": {"seq": 2}})
        assert ok["json"]["stream_seq"] == 2
        assert [g["payload"] for g in deliveries(s, 4, ack_sub=4)] == [b"b", b"c", b"d", b"e"]
        # time: the first event at or after T
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_mid)) + \
            (".%06dZ" % int((t_mid % 1) * 1e6))
        ok = durable_sub(s, 5, "pay.#", "t", **{"from": {"time": stamp}})
        assert [g["payload"] for g in deliveries(s, 2, ack_sub=5)] == [b"d", b"e"]
        quiet(s)
        publish_all(p, "pay.ok", ["f"])
        seen = {}
        for g in deliveries(s, 5):
            seen[g["sub_id"]] = g
            s.send(busp.ack(g["sub_id"], g["delivery_id"]))
        assert set(seen) == {1, 2, 3, 4, 5}
        assert all(g["payload"] == b"f" and g["stream_seq"] == 6 for g in seen.values())
        # from applies only when the cursor is created
        s.send(busp.unsub(1))
        s.expect(busp.SUBEND)
        ok = durable_sub(s, 6, "pay.#", "f", **{"from": "first"})
        assert ok["json"]["stream_seq"] == 7 and not ok["json"]["created"]
        quiet(s)
        # bad time
        durable_sub(s, 7, "pay.#", "bad", expect=busp.SUBEND, **{"from": {"time": "yesterday"}})
    finally:
        d.stop()


@test
def from_seq_removed_gives_gap_first():
    d = Durable([stream(max_events=3)])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["1", "2", "3", "4", "5"])
        s = session(d, "sub")
        ok = durable_sub(s, 1, "pay.#", "old", **{"from": {"seq": 1}})
        assert ok["json"]["stream_seq"] == 3, ok["json"]
        gap = s.expect(busp.GAP)
        assert gap["dropped"] == 2
        assert [g["payload"] for g in deliveries(s, 3, ack_sub=1)] == [b"3", b"4", b"5"]
    finally:
        d.stop()


@test
def sub_errors():
    d = Durable([stream(), stream("audit", ["audit.#"])])
    try:
        s = session(d, "a")
        e = durable_sub(s, 1, "other.#", "x", expect=busp.SUBEND)
        assert e["code"] == 404
        # a pattern wider than the stream is not covered
        e = durable_sub(s, 2, "#", "x", expect=busp.SUBEND)
        assert e["code"] == 404
        durable_sub(s, 3, "pay.eu.*", "held")
        t = session(d, "b")
        e = durable_sub(t, 1, "pay.eu.*", "held", expect=busp.SUBEND)
        assert e["code"] == 409, e
        durable_sub(s, 4, "pay.#", "grp", group="g1")
        e = durable_sub(t, 2, "pay.#", "grp", expect=busp.SUBEND)
        assert e["code"] == 409
        e = durable_sub(t, 3, "pay.#", "grp", group="g2", expect=busp.SUBEND)
        assert e["code"] == 409
        durable_sub(t, 4, "pay.#", "grp", group="g1")
        # durable implies explicit acks; SUBOK says so
        ok = durable_sub(t, 5, "audit.#", "a1", ack="none")
        assert ok["json"]["ack"] == "explicit" and ok["json"]["stream"] == "audit"
    finally:
        d.stop()


@test
def max_cursors_bounds_new_durable_names():
    # every new durable name is a cursor kept until the stream is deleted:
    # past max_cursors a new name gets SUBEND 429, a known one still works
    d = Durable([stream(max_cursors=2)])
    try:
        s = session(d, "a")
        durable_sub(s, 1, "pay.#", "one")
        durable_sub(s, 2, "pay.#", "two")
        e = durable_sub(s, 3, "pay.#", "three", expect=busp.SUBEND)
        assert e["code"] == 429 and "max_cursors" in e["reason"], e
        s.send(busp.unsub(1))
        assert expect(s, busp.SUBEND)["sub_id"] == 1
        durable_sub(s, 4, "pay.#", "one")
    finally:
        d.stop()


@test
def longest_topic_and_msg_id_are_stored():
    # a 255-byte topic with a 255-byte msg_id is a valid PUB: its dedup
    # entry must fit the store's key size, and a failed commit would
    # reject every PUB of the batch, other publishers' too
    d = Durable([stream()])
    try:
        p = session(d, "p")
        topic = "pay." + "t" * 251
        seq = p.publish(topic, b"long", msg_id="m" * 255)
        r = p.expect(busp.PUBACK)
        assert r["seq"] >= seq, r
        s = session(d, "s")
        durable_sub(s, 1, "pay.#", "reader", **{"from": "first"})
        got = deliveries(s, 1, ack_sub=1)
        assert got[0]["topic"] == topic and got[0]["msg_id"] == "m" * 255
    finally:
        d.stop()


@test
def live_subscription_sees_stream_seq():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["a", "b"])
        s = session(d, "sub")
        s.send(busp.sub(1, "pay.#"))
        ok = s.expect(busp.SUBOK)
        assert ok["json"]["stream_seq"] == 3, ok["json"]
        s.send(busp.sub(2, "chat.#"))
        assert s.expect(busp.SUBOK)["json"]["stream_seq"] == 0
        publish_all(p, "pay.ok", ["c"])
        m = s.expect(busp.DELIVER)
        assert m["stream_seq"] == 3 and m["payload"] == b"c"
        publish_all(p, "chat.hi", ["x"])
        assert s.expect(busp.DELIVER)["stream_seq"] == 0
    finally:
        d.stop()


@test
def pattern_filters_within_stream():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.eu.ok", ["eu1"])
        publish_all(p, "pay.us.ok", ["us1"])
        publish_all(p, "pay.eu.ok", ["eu2"])
        s = session(d, "sub")
        durable_sub(s, 1, "pay.eu.*", "eu", **{"from": "first"})
        got = deliveries(s, 2, ack_sub=1)
        assert [g["payload"] for g in got] == [b"eu1", b"eu2"]
        assert [g["stream_seq"] for g in got] == [1, 3]
        quiet(s)
    finally:
        d.stop()


@test
def behind_durable_subscriber_never_blocks_publishers():
    d = Durable([stream()], queue_limit=100)
    try:
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "slow", credit=0, queue_limit=100, **{"from": "first"})
        p = session(d, "pub")
        n = 20000
        for chunk in range(0, n, 500):
            publish_all(p, "pay.ok", ["e%d" % i for i in range(chunk, chunk + 500)])
        c = session(d, "ctl")
        st = c.ctl({"cmd": "stats"})["json"]
        assert st["throttled_publishers"] == 0 and st["rejected"] == 0, st
        # what waits in memory for it is a bounded window, not the backlog
        subs = c.ctl({"cmd": "subscriptions"})["json"]["subscriptions"]
        assert subs[0]["queued"] <= 1024, subs
        got = []
        for _ in range(0, n, 1000):
            s.send(busp.credit(1, 1000))
            got += deliveries(s, 1000, ack_sub=1)
        assert [g["payload"] for g in got[:3]] == [b"e0", b"e1", b"e2"]
        assert got[-1]["payload"] == b"e%d" % (n - 1)
        assert [g["stream_seq"] for g in got] == list(range(1, n + 1))
    finally:
        d.stop()


# ------------------------------------------------------------------ restarts

@test
def cursor_survives_crash_with_attempts():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["a", "b", "c", "d"])
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "crm", **{"from": "first"})
        got = deliveries(s, 4)
        s.send(busp.ack(1, got[0]["delivery_id"]))
        s.send(busp.ack(1, got[2]["delivery_id"]))
        sync(s)                 # the ACKs are stored once PONG is back
        d.restart()
        s = session(d, "sub")
        ok = durable_sub(s, 1, "pay.#", "crm", **{"from": "new"})
        assert ok["json"]["stream_seq"] == 2 and not ok["json"]["created"]
        got = deliveries(s, 2, ack_sub=1)
        assert [(g["payload"], g["attempt"]) for g in got] == [(b"b", 2), (b"d", 2)]
        sync(s)
        quiet(s)
        d.restart()
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "crm")
        quiet(s)
        info = session(d, "ctl").ctl({"cmd": "stream-info", "name": "pay"})["json"]
        crm = [c for c in info["cursors"] if c["name"] == "crm"][0]
        assert crm["lag"] == 0 and crm["floor"] == 5, crm
    finally:
        d.stop()


@test
def max_deliver_across_restarts_and_dlq_survives():
    d = Durable([stream()], max_deliver=2, ack_wait_ms=200)
    try:
        p = session(d, "pub")
        publish_all(p, "pay.bad", ["poison"], msg_ids=["m-poison"])
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "w", **{"from": "first"})
        first = deliveries(s, 1)[0]
        assert first["attempt"] == 1
        sync(s)
        d.restart()             # in flight at the crash: attempt 2 next
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "w", max_deliver=2, ack_wait_ms=200)
        again = deliveries(s, 1)[0]
        assert again["attempt"] == 2 and again["payload"] == b"poison"
        # no ACK: max_deliver 2 reached, dead-lettered
        c = session(d, "ctl")
        dl = wait_for(lambda: c.ctl({"cmd": "dlq-list"})["json"]["dead_letters"], "dead letter")
        assert dl[0]["subscription"] == "w" and dl[0]["msg_id"] == "m-poison", dl
        sync(c)
        d.restart()
        c = session(d, "ctl")
        dl = c.ctl({"cmd": "dlq-list"})["json"]["dead_letters"]
        assert len(dl) == 1 and dl[0]["reason"] == "max_deliver 2 reached", dl
        assert dl[0]["attempts"] == 2
        # and the cursor is past it: not delivered again
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "w")
        quiet(s)
        # replay it to its origin (the durable name), then forget it
        r = c.ctl({"cmd": "dlq-replay", "topic": "pay.#"})["json"]
        assert r["replayed"] == 1 and r["to_origin"] == 1, r
        g = deliveries(s, 1, ack_sub=1)[0]
        assert g["payload"] == b"poison"
        sync(s)
        d.restart()
        c = session(d, "ctl")
        assert c.ctl({"cmd": "dlq-list"})["json"]["dead_letters"] == []
    finally:
        d.stop()


@test
def dedup_window_survives_crash():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["once"], msg_ids=["k1"])
        d.restart()
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["twice"], msg_ids=["k1"])
        publish_all(p, "pay.ok", ["other"], msg_ids=["k2"])
        c = session(d, "ctl")
        st = c.ctl({"cmd": "stats"})["json"]
        assert st["duplicates"] == 1, st
        info = c.ctl({"cmd": "stream-info", "name": "pay"})["json"]
        assert info["events"] == 2, info
    finally:
        d.stop()


@test
def durable_group_is_a_work_queue_across_restarts():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", [str(i) for i in range(10)])
        w1 = session(d, "w1")
        durable_sub(w1, 1, "pay.#", "jobs", group="workers", credit=3, **{"from": "first"})
        got = deliveries(w1, 3, ack_sub=1)
        assert [g["payload"] for g in got] == [b"0", b"1", b"2"]
        sync(w1)
        w1.close()              # leaves with nothing in flight; 7 still wait
        d.restart()
        w2, w3 = session(d, "w2"), session(d, "w3")
        durable_sub(w2, 1, "pay.#", "jobs", group="workers", credit=100)
        durable_sub(w3, 1, "pay.#", "jobs", group="workers", credit=100)
        seen = []
        for w in (w2, w3):
            w.sock.setsockopt(busp.zmq.RCVTIMEO, 500)
        deadline = time.time() + 10
        while len(seen) < 7 and time.time() < deadline:
            for w in (w2, w3):
                try:
                    m = w.recv()
                except busp.zmq.Again:
                    continue
                if m["cmd"] == busp.DELIVER:
                    seen.append(int(m["payload"]))
                    w.send(busp.ack(1, m["delivery_id"]))
        assert sorted(seen) == list(range(3, 10)), seen
    finally:
        d.stop()


# ------------------------------------------------------------------ retention

def _retention(limit, count, expect_events, **extra):
    d = Durable([stream(**limit)], **extra)
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["x" * 100] * count)
        c = session(d, "ctl")
        info = wait_for(lambda: (lambda j: j if j["events"] == expect_events else None)(
            c.ctl({"cmd": "stream-info", "name": "pay"})["json"]), "retention")
        assert info["last_seq"] == count and info["first_seq"] == count - expect_events + 1
        return d, info
    except Exception:
        d.stop()
        raise


@test
def retention_max_events():
    d, info = _retention({"max_events": 10}, 25, 10)
    try:
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "r", **{"from": "first"})
        assert s.expect(busp.DELIVER)["stream_seq"] == 16
    finally:
        d.stop()


@test
def retention_max_bytes():
    d, info = _retention({"max_bytes": "1KiB"}, 30, 8)
    try:
        assert info["bytes"] <= 1024
    finally:
        d.stop()


@test
def retention_max_age_and_gap_for_a_cursor_behind():
    d = Durable([stream(max_age="1s")])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["old1", "old2"])
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "slow", credit=0, **{"from": "first"})
        c = session(d, "ctl")
        wait_for(lambda: c.ctl({"cmd": "stream-info", "name": "pay"})["json"]["events"] == 0,
                 "age retention")
        publish_all(p, "pay.ok", ["new"])
        s.send(busp.credit(1, 10))
        gap = s.expect(busp.GAP)
        assert gap["dropped"] == 2
        assert s.expect(busp.DELIVER)["payload"] == b"new"
    finally:
        d.stop()


# ------------------------------------------------------------------ CTL, reload

@test
def ctl_streams_purge_delete_and_reload():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["a", "b"])
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "crm", credit=0, **{"from": "first"})
        c = session(d, "ctl")
        st = c.ctl({"cmd": "streams"})["json"]["streams"]
        assert len(st) == 1 and st[0]["name"] == "pay" and st[0]["events"] == 2
        assert st[0]["sync"] == "always"
        assert st[0]["cursors"][0]["name"] == "crm" and st[0]["cursors"][0]["lag"] == 2
        assert c.ctl({"cmd": "stream-info", "name": "nope"})["code"] == 404
        assert c.ctl({"cmd": "stream-info"})["code"] == 400
        r = c.ctl({"cmd": "stream-purge", "name": "pay"})
        assert r["code"] == 200 and r["json"]["purged"] == 2
        info = c.ctl({"cmd": "stream-info", "name": "pay"})["json"]
        assert info["events"] == 0 and info["first_seq"] == 3
        # reload adds a stream and changes limits
        cfg = json.load(open(d.config))
        cfg["streams"] = [stream(max_events=5), stream("audit", ["audit.#"], sync="never")]
        d.write(cfg)
        r = c.ctl({"cmd": "reload"})
        assert r["code"] == 200, r
        names = [x["name"] for x in c.ctl({"cmd": "streams"})["json"]["streams"]]
        assert names == ["pay", "audit"], names
        assert c.ctl({"cmd": "stream-info", "name": "pay"})["json"]["max_events"] == 5
        publish_all(p, "audit.login", ["x"])
        assert c.ctl({"cmd": "stream-info", "name": "audit"})["json"]["events"] == 1
        # delete ends the durable subscriptions on it
        r = c.ctl({"cmd": "stream-delete", "name": "pay"})
        assert r["code"] == 200 and r["json"]["recreated"], r
        e = s.expect(busp.SUBEND)
        assert e["code"] == 404
        assert c.ctl({"cmd": "stream-info", "name": "pay"})["json"]["cursors"] == []
        # metrics-free stats keys
        st = c.ctl({"cmd": "stats"})["json"]
        assert st["streams"] == 2 and st["store_commits"] > 0
    finally:
        d.stop()


@test
def memory_only_says_so_and_refuses_durable():
    b = busp.Broker()
    try:
        c = Client(b.endpoint)
        c.hello()
        c.send(busp.sub(1, "pay.#"), json.dumps({"durable": "x"}))
        e = c.expect(busp.SUBEND)
        assert e["code"] == 404
        assert c.ctl({"cmd": "streams"})["json"]["streams"] == []
    finally:
        assert b.stop() == 0
    log = open("busd-%d.log" % b.port).read()
    assert "memory-only" in log, log


# ------------------------------------------------------------------ failures

@test
def unwritable_data_dir_rejects_503():
    tmp = tempfile.mkdtemp(prefix="test_durable_ro_")
    blocker = os.path.join(tmp, "not-a-dir")
    open(blocker, "w").close()
    d = Durable([stream()], data_dir=os.path.join(blocker, "data"))
    try:
        p = session(d, "pub")
        seq = p.publish("pay.ok", b"x")
        r = p.expect(busp.REJECT)
        assert r["seq"] == seq and r["code"] == 503, r
        assert "unavailable" in r["reason"] and blocker in r["reason"], r
        # other topics still work
        publish_all(p, "chat.hi", ["y"])
        assert "durable streams unavailable" in d.log()
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _can_mount():
    if os.geteuid() != 0:
        return False
    probe = tempfile.mkdtemp(prefix="test_durable_mnt_")
    ok = subprocess.call(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
                         stderr=subprocess.DEVNULL) == 0
    if ok:
        subprocess.call(["umount", probe])
    os.rmdir(probe)
    return ok


def _fill_until_rejected(d):
    """Publish 2 KB events one at a time until three are rejected; returns
    the indexes acknowledged and the rejections."""
    p = session(d, "pub")
    acked, rejected = [], []
    payload = b"z" * 2000
    for i in range(5000):
        seq = p.publish("pay.big", payload, msg_id="f%d" % i)
        # one at a time: the answer says exactly which were stored
        while True:
            m = p.recv()
            if m["cmd"] == busp.REJECT:
                rejected.append((m["seq"], m["code"], m["reason"]))
                continue
            if m["cmd"] == busp.PUBACK and m["seq"] >= seq:
                break
        if rejected and rejected[-1][0] == seq:
            if len(rejected) >= 3:
                break
        else:
            acked.append(i)
    return acked, rejected


def _check_full(d, acked, rejected, words):
    assert rejected, "the store never filled"
    assert all(code == 507 for _, code, _ in rejected), rejected
    assert words in rejected[0][2], rejected[0]
    log = d.log()
    assert "durable commit failed" in log and "507" in log, log[-2000:]
    c = session(d, "ctl")
    info = c.ctl({"cmd": "stream-info", "name": "pay"})["json"]
    assert info["events"] == len(acked), (info, len(acked))
    # nothing acknowledged is lost, across a crash too
    d.restart()
    s = session(d, "sub")
    durable_sub(s, 1, "pay.#", "check", credit=10000, **{"from": "first"})
    got = deliveries(s, len(acked))
    assert [g["msg_id"] for g in got] == ["f%d" % i for i in acked]
    quiet(s)


@test
def disk_full_rejects_507_and_keeps_what_was_acked():
    """A real full disk: a 1 MiB tmpfs (needs root to mount; skipped
    otherwise, and the next test covers the same path with a capped map)."""
    if not _can_mount():
        print("# skipped: cannot mount a small tmpfs here (needs root)")
        return
    mnt = tempfile.mkdtemp(prefix="test_durable_full_")
    assert subprocess.call(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]) == 0
    d = None
    try:
        d = Durable([stream()], data_dir=os.path.join(mnt, "data"), store_map_size=65536)
        acked, rejected = _fill_until_rejected(d)
        _check_full(d, acked, rejected, "no space")
    finally:
        if d:
            d.crash()
        subprocess.call(["umount", mnt])
        os.rmdir(mnt)
        if d:
            shutil.rmtree(d.dir, ignore_errors=True)


@test
def store_max_size_full_rejects_507():
    """The store's own ceiling (store_max_size) fills like a disk; runs
    anywhere, root or not."""
    d = Durable([stream()], store_map_size=65536, store_max_size=1048576)
    try:
        acked, rejected = _fill_until_rejected(d)
        _check_full(d, acked, rejected, "store_max_size")
    finally:
        d.stop()


@test
def repeat_of_a_refused_pub_in_its_batch_is_refused_too():
    """A PUB and its repeat (same topic and msg_id) in one batch, while the
    store is full: the commit fails, the original gets REJECT 507, and the
    repeat, which the dedup window calls a duplicate of it, must not be
    acknowledged either (it shares the original's fate)."""
    d = Durable([stream()], store_map_size=65536, store_max_size=1048576)
    try:
        _fill_until_rejected(d)
        p = session(d, "twice")
        for attempt in range(5):
            mid = "twice-%d" % attempt
            a = p.publish("pay.big", b"z" * 2000, msg_id=mid)
            b = p.publish("pay.big", b"z" * 2000, msg_id=mid)
            rejected = set()
            while not {a, b} <= rejected:
                m = p.recv()
                if m["cmd"] == busp.REJECT:
                    assert m["code"] == 507, m
                    rejected.add(m["seq"])
                elif m["cmd"] == busp.PUBACK and m["seq"] >= b:
                    break           # covers every seq not rejected before it
            assert {a, b} <= rejected, ("acknowledged although not stored", a, b, rejected)
    finally:
        d.stop()


# ------------------------------------------------------------------ dlq-replay to origin

@test
def dlq_replay_to_origin_group_only():
    d = Durable([stream()])
    try:
        p = session(d, "pub")
        g = session(d, "group-member")
        o = session(d, "other")
        g.send(busp.sub(1, "job.#"), json.dumps({"group": "mailers", "ack": "explicit"}))
        g.expect(busp.SUBOK)
        o.send(busp.sub(1, "job.#"), json.dumps({"ack": "explicit"}))
        o.expect(busp.SUBOK)
        publish_all(p, "job.mail", ["hello"])
        m = g.expect(busp.DELIVER)
        g.send(busp.nack(1, m["delivery_id"], 1, 0), json.dumps({"reason": "smtp down"}))
        m2 = o.expect(busp.DELIVER)
        o.send(busp.ack(1, m2["delivery_id"]))
        c = session(d, "ctl")
        dl = wait_for(lambda: c.ctl({"cmd": "dlq-list"})["json"]["dead_letters"], "dead letter")
        assert dl[0]["subscription"] == "mailers"
        r = c.ctl({"cmd": "dlq-replay", "ids": [dl[0]["id"]]})["json"]
        assert r == {"replayed": 1, "to_origin": 1, "to_topic": 0}, r
        again = g.expect(busp.DELIVER)
        assert again["payload"] == b"hello"
        quiet(o)                # the other subscriber handled it already
        assert c.ctl({"cmd": "dlq-replay", "ids": [999], "to": "sideways"})["code"] == 400
    finally:
        d.stop()


@test
def metrics_per_stream_and_cursor():
    import urllib.request
    port = busp.free_port()
    d = Durable([stream()], metrics_bind="127.0.0.1:%d" % port)
    try:
        p = session(d, "pub")
        publish_all(p, "pay.ok", ["a", "b", "c"])
        s = session(d, "sub")
        durable_sub(s, 1, "pay.#", "crm", credit=0, **{"from": "first"})

        def scrape():
            try:
                text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                              timeout=2).read().decode()
            except OSError:
                return None
            ok = ('busd_stream_events{stream="pay"} 3' in text
                  and 'busd_cursor_lag{stream="pay",cursor="crm"} 3' in text)
            return text if ok else None
        text = wait_for(scrape, "/metrics with the stream and the cursor")
        assert "busd_store_commits_total" in text
    finally:
        d.stop()


@test
def end_of_batch_feeds_only_what_changed():
    # 300 idle durable cursors (200 caught up on another stream, 100 with
    # no credit) beside one live subscriber: a batch feeds the channels that
    # changed (credit, ACK, a commit to the stream they wait on), so the
    # durable_feeds counter grows with the events handled, not with
    # events x cursors (which walking every durable channel per loop did).
    d = Durable([stream("a", ("fa.#",), sync="never"),
                 stream("b", ("fb.#",), sync="never")])
    try:
        idle = session(d, "idle")
        for i in range(200):
            durable_sub(idle, 1000 + i, "fb.x", "wait-%d" % i, credit=10)
        for i in range(100):
            durable_sub(idle, 2000 + i, "fa.idle", "nocredit-%d" % i, credit=0)
        live = session(d, "live")
        durable_sub(live, 1, "fa.live", "live", credit=1000)
        pub = session(d, "pub")
        publish_all(pub, "fa.idle", [b"backlog"])
        sync(idle)
        before = pub.ctl({"cmd": "stats"})["json"]["durable_feeds"]
        n = 300
        for i in range(n):
            publish_all(pub, "fa.live", [b"%d" % i])
            got = deliveries(live, 1, ack_sub=1)
            assert got[0]["payload"] == b"%d" % i, got
        sync(live)
        feeds = pub.ctl({"cmd": "stats"})["json"]["durable_feeds"] - before
        print("# %d durable feeds for %d events with 301 durable channels" % (feeds, n))
        assert feeds <= 10 * n, feeds
        # the waiters on stream b are woken by a commit to b ...
        publish_all(pub, "fb.x", [b"wake"])
        woken = 0
        for _ in range(200):
            m = expect(idle, busp.DELIVER)
            assert m["payload"] == b"wake" and 1000 <= m["sub_id"] < 1200, m
            woken += 1
        assert woken == 200
        # ... and a cursor with no credit by its CREDIT
        idle.send(busp.credit(2042, 1))
        m = expect(idle, busp.DELIVER)
        assert m["sub_id"] == 2042 and m["payload"] == b"backlog", m
    finally:
        d.stop()


if __name__ == "__main__":
    only = sys.argv[1:]         # names of tests to run (default: all)
    sys.exit(busp.run_tests([t for t in TESTS if not only or t.__name__ in only],
                            shared_broker=False))
