#!/usr/bin/env python3
"""Hostile input, table-driven: every client command truncated at every
byte, one byte too long, every str8 overrunning its frame, too many frames,
huge frames and declared sizes.  PROTOCOL §3: a message whose header does
not parse is answered ERROR 400 and otherwise ignored, with or without a
session; a PUB whose header parses is answered by PUBACK or REJECT.  After
every batch a well-behaved client on the same broker must still publish and
receive, and the hostile session itself must still work (no pub_seq was
consumed by what the broker ignored).  Frames are built by hand (busp.py).
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import Broker, Client  # noqa: E402

S = busp.SIG
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def s8(b):
    return busp.s8(b)


# name, valid header, offsets of its str8 length bytes, max frames (header
# included), a valid body for commands that take one.
COMMANDS = [
    ("HELLO", struct.pack(">BBH", S, busp.HELLO, 1) + s8("hostile"), [4], 2, b"{}"),
    ("PUB", struct.pack(">BBQ", S, busp.PUB, 1) + s8("bad.topic") + s8("id-1"), [10, 20], 4, b"x"),
    ("SUB", struct.pack(">BBI", S, busp.SUB, 77) + s8("bad.#"), [6], 2, b"{}"),
    ("UNSUB", struct.pack(">BBI", S, busp.UNSUB, 77), [], 1, None),
    ("CREDIT", struct.pack(">BBII", S, busp.CREDIT, 77, 5), [], 1, None),
    ("ACK", struct.pack(">BBIQ", S, busp.ACK, 77, 1), [], 1, None),
    ("NACK", struct.pack(">BBIQBI", S, busp.NACK, 77, 1, 1, 0), [], 2, b'{"reason":"x"}'),
    ("PING", struct.pack(">BBQ", S, busp.PING, 5), [], 1, None),
    ("PONG", struct.pack(">BBQ", S, busp.PONG, 5), [], 1, None),
    ("BYE", struct.pack(">BB", S, busp.BYE), [], 1, None),
    ("CTL", struct.pack(">BBI", S, busp.CTL, 9), [], 2, b'{"cmd":"stats"}'),
]


def cases():
    """(description, frames) for every malformed variant of every command."""
    for name, header, str8s, max_frames, body in COMMANDS:
        for cut in range(len(header)):
            yield "%s truncated to %d of %d bytes" % (name, cut, len(header)), [header[:cut]]
        yield "%s one byte too long" % name, [header + b"\x00"]
        yield "%s with 64 extra bytes" % name, [header + b"\xff" * 64]
        for off in str8s:
            remaining = len(header) - off - 1
            for declared in sorted({remaining + 1, 255}):
                h = bytearray(header)
                h[off] = declared
                yield "%s str8 at %d declares %d of %d" % (name, off, declared, remaining), [bytes(h)]
        extra = [header] + [body or b""] * (max_frames - 1) + [b"x"]
        yield "%s with %d frames (max %d)" % (name, len(extra), max_frames), extra
        yield "%s with 20 frames" % name, [header] + [b"y"] * 19
    yield "empty header frame", [b""]
    yield "bad signature", [b"\xb4\x01\x00\x01\x00"]
    yield "unknown command 0x7f", [bytes([S, 0x7F])]
    yield "broker-only command WELCOME", [struct.pack(">BBH", S, busp.WELCOME, 1) + s8("x") + b"\0" * 8]
    yield "1 MB header frame", [bytes([S, busp.PUB]) + b"\xff" * (1 << 20)]


def reject_of(c, seq):
    """The REJECT for pub_seq seq; PUBACKs (credit returns) are skipped."""
    while True:
        d = c.recv()
        if d["cmd"] == busp.PUBACK:
            continue
        if d["cmd"] == busp.PING:
            c.send(struct.pack(">BBQ", S, busp.PONG, d["nonce"]))
            continue
        assert d["cmd"] == busp.REJECT and d["seq"] == seq, d
        return d


def error_reason_is_utf8(d):
    raw = d["frames"][0]
    n = raw[4]
    raw[5:5 + n].decode("utf-8")  # strict: raises on invalid bytes


class Witness:
    """A well-behaved client: it subscribes, and checks that an event it
    publishes comes back."""

    def __init__(self, broker):
        self.sub = Client(broker.endpoint)
        self.sub.hello("witness-sub")
        self.sub.send(busp.sub(1, "witness.#"))
        assert self.sub.expect(busp.SUBOK)["sub_id"] == 1
        self.pub = Client(broker.endpoint)
        self.pub.hello("witness-pub")
        self.n = 0

    def check(self):
        self.n += 1
        seq = self.pub.publish("witness.ping", b"n%d" % self.n)
        assert self.pub.expect(busp.PUBACK)["seq"] == seq
        d = self.sub.expect(busp.DELIVER)
        assert d["payload"] == b"n%d" % self.n, d
        self.sub.send(busp.credit(1, 1))

    def close(self):
        self.sub.close()
        self.pub.close()


def run_table(broker, with_session):
    witness = Witness(broker)
    hostile = Client(broker.endpoint)
    if with_session:
        hostile.hello("hostile")
    count = 0
    for desc, frames in cases():
        hostile.send(*frames)
        d = hostile.expect(busp.ERROR)
        assert d["code"] == 400, "%s: %r" % (desc, d)
        error_reason_is_utf8(d)
        count += 1
        if count % 25 == 0:
            witness.check()
    witness.check()
    if with_session:
        # Nothing malformed consumed a pub_seq or ended the session.
        seq = hostile.publish("hostile.ok", b"still here")
        assert seq == 1
        assert hostile.expect(busp.PUBACK)["seq"] == 1
    else:
        hostile.send(busp.ping(1))
        assert hostile.expect(busp.ERROR)["code"] == 401
    hostile.close()
    witness.close()
    return count


@test
def malformed_with_session(b):
    n = run_table(b, True)
    assert n > 150, n


@test
def malformed_without_session(b):
    run_table(b, False)


@test
def huge_declared_and_actual_sizes(b):
    """Headers that parse: the broker answers with REJECT, SUBEND or
    CTLREPLY as the contract says, and keeps going."""
    witness = Witness(b)
    c = Client(b.endpoint)
    w = c.hello("big")
    max_payload = w["max_payload"]
    max_headers = w["json"]["max_headers"]
    seq = c.publish("big.payload", b"\0" * (max_payload + 1))
    d = reject_of(c, seq)
    assert d["seq"] == seq and d["code"] == 413, d
    seq = c.publish("big.headers", b"x", headers=b'{"a":"' + b"h" * max_headers + b'"}')
    d = reject_of(c, seq)
    assert d["seq"] == seq and d["code"] == 413, d
    # A headers frame that is not UTF-8, or not an object of strings.
    for bad in (b'{"a":"\xff"}', b'[1]', b'{"a":1}', b'{"a":"b"'):
        seq = c.publish("big.badheaders", b"x", headers=bad)
        d = reject_of(c, seq)
        assert d["seq"] == seq and d["code"] == 400, (bad, d)
    # SUB options that are not JSON, huge numbers, deep nesting.
    for sub_id, body in ((1, b"\xff" * 1000), (2, b'{"credit": 1e999}'),
                         (3, b"[" * 100000), (4, b'{"queue_limit": 18446744073709551616}')):
        c.send(busp.sub(sub_id, "big.#"), body)
        d = c.expect(busp.SUBEND, skip=(busp.PING, busp.PUBACK))
        assert d["sub_id"] == sub_id and d["code"] == 400, (body[:20], d)
    # CTL bodies that are not requests.
    for rid, body in ((1, b"\xff\xfe"), (2, b"{" * 100000), (3, b'{"cmd": 5}'),
                      (4, b"x" * (512 << 10)), (5, b'{"cmd":"dlq-list","limit":1e300}')):
        c.send(busp.ctl(rid), body)
        d = c.expect(busp.CTLREPLY)
        assert d["request_id"] == rid and d["code"] == 400, (rid, d)
    witness.check()
    # A frame far above max_payload: ZeroMQ drops that connection (the
    # broker's ZMQ_MAXMSGSIZE); nobody else notices.
    huge = Client(b.endpoint)
    huge.hello("huge")
    huge.send(busp.ctl(6), b"x" * (64 << 20))
    witness.check()
    huge.close()
    c.close()
    witness.close()


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS))
