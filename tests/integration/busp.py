"""busp.py — a BUSP/1 client written from doc/protocol.md alone, in Python.

It builds every frame by hand with struct, so the tests that use it check
the broker against the written contract, not against libbusd's reading of
it.  Also used to start a real busd on a free port for those tests.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import time

import zmq

SIG = 0xB5
HELLO, WELCOME, PUB, PUBACK, REJECT = 0x01, 0x02, 0x10, 0x12, 0x13
SUB, UNSUB, CREDIT, ACK, NACK, SUBOK = 0x20, 0x21, 0x22, 0x23, 0x24, 0x25
DELIVER, GAP, SUBEND, PING, PONG, ERROR, BYE, CTL, CTLREPLY = (
    0x26, 0x27, 0x2F, 0x30, 0x31, 0x3E, 0x3F, 0x40, 0x41)
PUBB, DELIVERB, ACKB = 0x11, 0x28, 0x29          # feature "batch" (§8.2)


def s8(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("B", len(b)) + b


def hello(name="py", version=1):
    return struct.pack(">BBH", SIG, HELLO, version) + s8(name)


def pub(seq, topic, msg_id=""):
    return struct.pack(">BBQ", SIG, PUB, seq) + s8(topic) + s8(msg_id)


def sub(sub_id, pattern):
    return struct.pack(">BBI", SIG, SUB, sub_id) + s8(pattern)


def unsub(sub_id):
    return struct.pack(">BBI", SIG, UNSUB, sub_id)


def credit(sub_id, n):
    return struct.pack(">BBII", SIG, CREDIT, sub_id, n)


def ack(sub_id, delivery_id):
    return struct.pack(">BBIQ", SIG, ACK, sub_id, delivery_id)


def nack(sub_id, delivery_id, action, delay_ms):
    return struct.pack(">BBIQBI", SIG, NACK, sub_id, delivery_id, action, delay_ms)


def ping(nonce):
    return struct.pack(">BBQ", SIG, PING, nonce)


def ctl(request_id):
    return struct.pack(">BBI", SIG, CTL, request_id)


def bye():
    return struct.pack(">BB", SIG, BYE)


def _str(buf, off):
    n = buf[off]
    return buf[off + 1:off + 1 + n].decode("utf-8", "replace"), off + 1 + n


def parse(frames):
    """Decode a broker->client message into a dict (header fields + body)."""
    h = frames[0]
    assert h[0] == SIG, "bad signature from broker"
    cmd = h[1]
    d = {"cmd": cmd, "frames": frames}
    if cmd == WELCOME:
        d["version"], = struct.unpack_from(">H", h, 2)
        d["broker_id"], off = _str(h, 4)
        d["pub_credit"], d["max_payload"] = struct.unpack_from(">II", h, off)
        assert off + 8 == len(h)
    elif cmd == PUBACK:
        d["seq"], d["credit"] = struct.unpack_from(">QI", h, 2)
        assert len(h) == 14
    elif cmd == REJECT:
        d["seq"], d["code"] = struct.unpack_from(">QH", h, 2)
        d["reason"], off = _str(h, 12)
        assert off == len(h)
    elif cmd == SUBOK:
        d["sub_id"], = struct.unpack_from(">I", h, 2)
        assert len(h) == 6
    elif cmd == DELIVER:
        (d["sub_id"], d["delivery_id"], d["stream_seq"], d["ts_us"],
         d["attempt"]) = struct.unpack_from(">IQQqH", h, 2)
        d["topic"], off = _str(h, 32)
        d["msg_id"], off = _str(h, off)
        assert off == len(h)
        d["payload"] = frames[1] if len(frames) > 1 else b""
        d["headers"] = frames[2] if len(frames) > 2 else b""
    elif cmd == GAP:
        d["sub_id"], d["dropped"] = struct.unpack_from(">IQ", h, 2)
        assert len(h) == 14
    elif cmd == SUBEND:
        d["sub_id"], d["code"] = struct.unpack_from(">IH", h, 2)
        d["reason"], off = _str(h, 8)
        assert off == len(h)
    elif cmd == ERROR:
        d["code"], = struct.unpack_from(">H", h, 2)
        d["reason"], off = _str(h, 4)
        assert off == len(h)
        if len(frames) > 1:                 # error context (§8.1)
            import json
            d["context"] = json.loads(frames[1])
    elif cmd == DELIVERB:
        d["count"], = struct.unpack_from(">H", h, 2)
        assert len(h) == 4
        d["records"] = deliver_records(frames[1] if len(frames) > 1 else b"", d["count"])
    elif cmd in (PING, PONG):
        d["nonce"], = struct.unpack_from(">Q", h, 2)
        assert len(h) == 10
    elif cmd == CTLREPLY:
        d["request_id"], d["code"] = struct.unpack_from(">IH", h, 2)
        assert len(h) == 8
    else:
        raise AssertionError("unknown command 0x%02x from broker" % cmd)
    if cmd in (WELCOME, SUBOK, CTLREPLY) and len(frames) > 1 and frames[1]:
        import json
        d["json"] = json.loads(frames[1])
    return d


def pub_record(topic, payload=b"", msg_id="", headers=b""):
    """One PUB record of a PUBB body (PROTOCOL §8.2)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return (s8(topic) + s8(msg_id) + struct.pack(">I", len(headers)) + headers
            + struct.pack(">I", len(payload)) + payload)


def pubb(first_seq, count):
    return struct.pack(">BBQH", SIG, PUBB, first_seq, count)


def ackb(count):
    return struct.pack(">BBH", SIG, ACKB, count)


def ack_record(sub_id, delivery_id):
    return struct.pack(">IQ", sub_id, delivery_id)


def deliver_records(body, count):
    """Split a DELIVERB body into DELIVER-like dicts; the records must
    fill the body exactly."""
    out, off = [], 0
    for _ in range(count):
        r = {"cmd": DELIVER}
        (r["sub_id"], r["delivery_id"], r["stream_seq"], r["ts_us"],
         r["attempt"]) = struct.unpack_from(">IQQqH", body, off)
        r["topic"], off = _str(body, off + 30)
        r["msg_id"], off = _str(body, off)
        n, = struct.unpack_from(">I", body, off)
        r["headers"] = bytes(body[off + 4:off + 4 + n])
        off += 4 + n
        n, = struct.unpack_from(">I", body, off)
        r["payload"] = bytes(body[off + 4:off + 4 + n])
        off += 4 + n
        assert off <= len(body), "DELIVER record overruns the body"
        out.append(r)
    assert off == len(body), "DELIVERB records do not fill the body"
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def drain(c, quiet_ms=400, answer_pings=True):
    """Everything but PINGs that arrives until nothing else has come for
    quiet_ms.  PINGs (answered unless answer_pings is false) do not count
    as activity: a broker PINGing every heartbeat_ms < quiet_ms would
    otherwise keep the drain going forever."""
    out = []
    before = c.sock.getsockopt(zmq.RCVTIMEO)
    quiet_until = time.time() + quiet_ms / 1000.0
    try:
        while True:
            left = int((quiet_until - time.time()) * 1000)
            if left <= 0:
                break
            c.sock.setsockopt(zmq.RCVTIMEO, left)
            try:
                d = c.recv()
            except zmq.Again:
                break
            if d["cmd"] == PING:
                if answer_pings:
                    c.send(struct.pack(">BBQ", SIG, PONG, d["nonce"]))
                continue
            out.append(d)
            quiet_until = time.time() + quiet_ms / 1000.0
    finally:
        c.sock.setsockopt(zmq.RCVTIMEO, before)
    return out


# ------------------------------------------------------------ raw sessions
# Helpers for tests that speak BUSP/1 frame by frame (test_contract.py,
# test_spec.py): one copy, so both suites read the broker the same way.

def session(broker, name="py", features=None, endpoint=None, timeout=5000):
    """A session after HELLO/WELCOME; c.welcome holds the WELCOME."""
    c = Client(endpoint or broker.endpoint, timeout=timeout)
    if features is None:
        c.send(hello(name))
    else:
        c.send(hello(name), json.dumps({"features": list(features)}))
    c.seq = 0
    c.welcome = c.expect(WELCOME)
    return c


def next_msg(c, timeout=20.0):
    """The next message that is not a broker PING (answered); an
    AssertionError after timeout seconds (the broker's PINGs alone would
    keep a plain receive timeout from ever firing)."""
    deadline = time.time() + timeout
    while True:
        try:
            d = c.recv()
        except zmq.Again:
            if time.time() > deadline:
                raise AssertionError("nothing from the broker in %.0f s" % timeout)
            continue
        if d["cmd"] == PING:
            c.send(struct.pack(">BBQ", SIG, PONG, d["nonce"]))
            if time.time() > deadline:
                raise AssertionError("only PINGs from the broker for %.0f s" % timeout)
            continue
        return d


def subscribe(c, sub_id, pattern, options=None, expect=SUBOK):
    frames = [sub(sub_id, pattern)]
    if options is not None:
        frames.append(json.dumps(options))
    c.send(*frames)
    d = next_msg(c)
    assert d["cmd"] == expect and d.get("sub_id") == sub_id, (pattern, options, d)
    return d


def sync(c, nonce=4242):
    """A PING round trip: everything sent before it was handled.  Returns
    what arrived before the PONG."""
    c.send(ping(nonce))
    before = []
    while True:
        d = next_msg(c)
        if d["cmd"] == PONG and d["nonce"] == nonce:
            return before
        before.append(d)


def until_acked(c, seq):
    """Every message up to the PUBACK that covers seq, in arrival order."""
    out = []
    while True:
        d = next_msg(c)
        out.append(d)
        if d["cmd"] == PUBACK and d["seq"] >= seq:
            return out


def credit_of(msgs):
    return sum(d["credit"] for d in msgs if d["cmd"] == PUBACK)


def delivers(msgs):
    return [d for d in msgs if d["cmd"] == DELIVER]


def wait_for(fn, what, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def error(c, frames):
    """Send frames; the next message must be ERROR, which is returned."""
    c.send(*frames)
    d = next_msg(c)
    assert d["cmd"] == ERROR, (frames, d)
    return d


def stats(c, rid=90):
    return c.ctl({"cmd": "stats"}, rid)["json"]


class Broker:
    """A real busd process on a free port."""

    def __init__(self, *args, port=None):
        self.port = port or free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        binary = os.environ.get("BUSD_BIN", "src/broker/busd")
        self.log = open("busd-%d.log" % self.port, "wb")
        self.proc = subprocess.Popen([binary, "--bind", self.endpoint] + list(args),
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = Client(self.endpoint, timeout=200)
                c.hello()
                c.close()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("busd did not start on %s" % self.endpoint)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.log.close()
        return rc


class Client:
    def __init__(self, endpoint, timeout=3000):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, timeout)
        self.sock.setsockopt(zmq.SNDTIMEO, timeout)
        self.sock.connect(endpoint)
        self.seq = 0

    def send(self, *frames):
        self.sock.send_multipart([f if isinstance(f, bytes) else f.encode() for f in frames])

    def recv(self):
        return parse(self.sock.recv_multipart())

    def expect(self, cmd, skip=(PING,)):
        while True:
            d = self.recv()
            if d["cmd"] == PING and PING in skip:
                self.send(struct.pack(">BBQ", SIG, PONG, d["nonce"]))
                continue
            if d["cmd"] in skip and d["cmd"] != cmd:
                continue
            assert d["cmd"] == cmd, "expected 0x%02x, got %r" % (cmd, d)
            return d

    def hello(self, name="py"):
        self.send(hello(name))
        self.seq = 0
        return self.expect(WELCOME)

    def publish(self, topic, payload=b"", msg_id="", headers=None):
        self.seq += 1
        frames = [pub(self.seq, topic, msg_id), payload]
        if headers is not None:
            frames.append(headers)
        self.send(*frames)
        return self.seq

    def ctl(self, request, request_id=1):
        import json
        self.send(ctl(request_id), json.dumps(request))
        d = self.expect(CTLREPLY)
        assert d["request_id"] == request_id
        return d

    def close(self):
        self.sock.close()


def run_tests(tests, shared_broker=True):
    """Run test functions in order, print `ok - name` / `FAIL - name` lines
    and the closing `N passed, M failed`; return the process exit code.
    With shared_broker each test gets one busd started for the whole run
    (its clean exit is checked too), else tests take no argument."""
    import sys
    import traceback
    broker = Broker() if shared_broker else None
    passed = failed = 0
    for fn in tests:
        try:
            fn(broker) if shared_broker else fn()
            print("ok - %s" % fn.__name__)
            passed += 1
        except Exception:
            print("FAIL - %s" % fn.__name__)
            traceback.print_exc(file=sys.stdout)
            failed += 1
        sys.stdout.flush()
    if broker:
        rc = broker.stop()
        if rc != 0:
            print("FAIL - busd exited with %d" % rc)
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
