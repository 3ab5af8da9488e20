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

from test_delivery import publish_all, session, subscribe  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


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
        assert d["cmd"] in (busp.GAP, busp.DELIVER, busp.PING, busp.ERROR), d


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


# ---------------------------------------------------------------- scale

def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@test
def hundred_thousand_idle_subscriptions():
    n = 100000
    b = busp.Broker()
    try:
        c = session(b, "many")
        c.sock.setsockopt(busp.zmq.RCVTIMEO, 120000)
        c.sock.setsockopt(busp.zmq.SNDHWM, 0)
        for i in range(n):
            c.send(busp.sub(i + 1, "idle.%d.x" % i))
        for i in range(n):
            c.expect(busp.SUBOK)
        assert stats(b)["subscriptions"] == n
        time.sleep(0.5)
        before = cpu_seconds(b.proc.pid)
        time.sleep(5)
        idle = cpu_seconds(b.proc.pid) - before
        print("# %d subscriptions: %.2f s CPU in 5 s idle" % (n, idle))
        assert idle < 0.5, "idle broker used %.2f s CPU in 5 s" % idle
        # the client leaves: ending them is one pass, not a stall
        before = cpu_seconds(b.proc.pid)
        c.send(busp.bye())
        c.close()
        wait_for(lambda: stats(b)["subscriptions"] == 0, timeout=120, what="subscriptions ended")
        spent = cpu_seconds(b.proc.pid) - before
        print("# ending them: %.2f s CPU" % spent)
        assert spent < 5, "ending %d subscriptions took %.2f s CPU" % (n, spent)
    finally:
        stop_clean(b)


# ---------------------------------------------------------------- memory

MiB = 1024 * 1024
RSS_BOUND = 320 * MiB       # generous: sanitizer builds carry shadow memory


def rss(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s for pid %d" % (field, pid))


def memory_broker(*extra):
    # Keep ASan's quarantine of freed memory small so RSS shows what busd
    # holds, not what the sanitizer keeps back (no effect without ASan).
    old = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (old + ":" if old else "") + "quarantine_size_mb=8"
    try:
        return busp.Broker("-s", "max_credit=1000", "-s", "queue_bytes=16777216",
                           "-s", "max_queued_bytes=67108864", *extra)
    finally:
        if old is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = old


class SlowClient(Client):
    """A client whose socket holds few messages, so a peer that does not
    read pushes back on the broker at once."""

    def __init__(self, endpoint):
        self.ctx = busp.zmq.Context.instance()
        self.sock = self.ctx.socket(busp.zmq.DEALER)
        self.sock.setsockopt(busp.zmq.LINGER, 0)
        self.sock.setsockopt(busp.zmq.RCVHWM, 4)
        self.sock.setsockopt(busp.zmq.RCVBUF, 65536)
        self.sock.setsockopt(busp.zmq.RCVTIMEO, 3000)
        self.sock.setsockopt(busp.zmq.SNDTIMEO, 3000)
        self.sock.connect(endpoint)
        self.seq = 0


def flood(b, topic, seconds, on_idle=None, size=64 * 1024):
    """Publish size-byte events as fast as publisher credit allows for
    `seconds`; return the largest broker RSS seen meanwhile."""
    p = Client(b.endpoint)
    credit = p.hello("flood")["pub_credit"]
    payload = b"x" * size
    poller = busp.zmq.Poller()
    poller.register(p.sock, busp.zmq.POLLIN)
    peak = rss(b.proc.pid)
    end = time.time() + seconds
    next_sample = 0
    while time.time() < end:
        while credit > 0 and time.time() < end:
            p.publish(topic, payload)
            credit -= 1
            if p.seq % 64 == 0:
                break
        for _ in range(1000):
            if not poller.poll(0 if credit else 50):
                break
            d = p.recv()
            if d["cmd"] == busp.PUBACK:
                credit += d["credit"]
            elif d["cmd"] == busp.PING:
                p.send(busp.struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))
        if on_idle:
            on_idle()
        if time.time() >= next_sample:
            peak = max(peak, rss(b.proc.pid))
            next_sample = time.time() + 0.2
    p.close()
    return max(peak, rss(b.proc.pid))


@test
def huge_credit_never_reading_stays_bounded():
    b = memory_broker()
    try:
        s = SlowClient(b.endpoint)
        s.hello("sleeper")
        s.send(busp.sub(1, "mem.r"), json.dumps({"credit": 4294967295}))
        d = s.expect(busp.SUBOK)
        assert d["json"]["credit"] == 1000, d     # capped at max_credit
        peak = flood(b, "mem.r", 10)
        st = stats(b)
        print("# never reading: peak RSS %d MiB, accepted %d" % (peak // MiB, st["accepted"]))
        assert peak < RSS_BOUND, "broker RSS reached %d MiB" % (peak // MiB)
        assert st["accepted"] > 0
    finally:
        stop_clean(b)


@test
def never_acking_stays_bounded():
    b = memory_broker()
    try:
        s = session(b, "noack")
        subscribe(s, 1, "mem.a", {"ack": "explicit", "ack_wait_ms": 600000, "credit": 100})
        s.sock.setsockopt(busp.zmq.RCVTIMEO, 0)
        got = [0]

        def read_and_grant():
            # reads everything and grants credit for it, never ACKs
            n = 0
            try:
                while True:
                    d = s.recv()
                    if d["cmd"] == busp.DELIVER:
                        n += 1
            except busp.zmq.Again:
                pass
            if n:
                s.send(busp.credit(1, n))
                got[0] += n
        peak = flood(b, "mem.a", 10, on_idle=read_and_grant)
        st = stats(b)
        print("# never acking: peak RSS %d MiB, %d delivered, %d in flight"
              % (peak // MiB, got[0], st["inflight"]))
        assert peak < RSS_BOUND, "broker RSS reached %d MiB" % (peak // MiB)
        assert got[0] > 0 and st["inflight"] == got[0]
        assert st["inflight"] * 64 * 1024 <= 16 * MiB + 64 * 1024, st
    finally:
        stop_clean(b)


@test
def granting_without_reading_ends_with_429():
    # A client that grants credit but never takes its DELIVERs off the
    # socket fills its ZeroMQ queue (sndhwm): it is ended with SUBEND 429
    # and a log line instead of the broker buffering for it.
    b = memory_broker("-s", "sndhwm=20")
    try:
        s = SlowClient(b.endpoint)
        s.hello("greedy")
        s.send(busp.sub(1, "mem.g"), json.dumps({"credit": 1000}))
        s.expect(busp.SUBOK)

        def grant():
            s.send(busp.credit(1, 1000))
        deadline = time.time() + 60
        while stats(b)["subscriptions_over_limit"] == 0 and time.time() < deadline:
            flood(b, "mem.g", 1, on_idle=grant, size=4096)
        assert stats(b)["subscriptions_over_limit"] == 1
        assert "ending subscription 1 of 'greedy'" in log_of(b)
        # SUBEND 429, or, when not even that fit in its queue, the session
        # is gone: its next command gets ERROR 401.
        s.sock.setsockopt(busp.zmq.RCVTIMEO, 2000)
        end = None
        try:
            while True:
                d = s.recv()
                if d["cmd"] == busp.SUBEND:
                    end = d
                    break
        except busp.zmq.Again:
            pass
        if end:
            assert end["code"] == 429 and end["sub_id"] == 1, end
        else:
            s.send(busp.ping(1))
            assert s.expect(busp.ERROR)["code"] == 401
            assert "SUBEND 429 refused" in log_of(b)
    finally:
        stop_clean(b)


def zmtp_dealer(port):
    """A raw TCP peer that completes the ZMTP 3.0 NULL handshake as a
    DEALER, so it can then send whatever frame header it likes."""
    import socket
    import struct
    sock = socket.create_connection(("127.0.0.1", port))
    greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
                + b"\x00" + b"\x00" * 31)
    sock.sendall(greeting)
    got = b""
    while len(got) < 64:
        chunk = sock.recv(64 - len(got))
        assert chunk, "broker closed during the greeting"
        got += chunk
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    sock.sendall(b"\x04" + bytes([len(body)]) + body)
    return sock


@test
def gigabyte_frame_is_refused():
    b = memory_broker()
    try:
        import struct
        before = rss(b.proc.pid)
        sock = zmtp_dealer(b.port)
        sock.settimeout(10)
        sock.sendall(b"\x02" + struct.pack(">Q", 1 << 30))     # one 1 GiB frame
        chunk = b"\x00" * (1 << 20)
        sent, dropped = 0, False
        try:
            while sent < (1 << 30):
                sock.sendall(chunk)
                sent += len(chunk)
        except (ConnectionResetError, BrokenPipeError, OSError):
            dropped = True
        sock.close()
        peak = rss(b.proc.pid, "VmHWM")
        print("# 1 GiB frame: sent %d MiB before the drop, RSS %d -> peak %d MiB"
              % (sent // MiB, before // MiB, peak // MiB))
        assert dropped, "the broker took a whole 1 GiB frame"
        assert peak - before < 256 * MiB, "broker RSS grew by %d MiB" % ((peak - before) // MiB)
        # and it still serves everyone else
        c = session(b, "after")
        c.close()
    finally:
        stop_clean(b)


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS, shared_broker=False))
