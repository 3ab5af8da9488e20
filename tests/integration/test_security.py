#!/usr/bin/env python3
"""Security conformance (issue 12, PROTOCOL §4, §3, §7), frames by hand:

- the routing-id attack: nothing the broker reports is a routing id, and
  peers choosing ids in libzmq's generated space do not stop the broker;
- session takeover: a peer reconnecting with a dropped session's routing id
  reaches nothing of that session;
- CURVE and PLAIN: unknown keys, wrong passwords and unauthenticated
  clients are refused; a loopback listener without auth works beside them;
- the ACL allows and denies exactly as written (publish, subscribe, $dlq.#,
  groups, CTL), naming the rule, and a reload ends subscriptions it no
  longer allows with SUBEND 403;
- limits answer 429 and are counted;
- every reply is valid UTF-8 for hostile names, groups, reasons, commands.
Each test starts its own busd.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import zmq

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import Broker, Client  # noqa: E402

TESTS = []
TOOLS = os.environ.get("BUSD_TOOLS", "src/tools")


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
    raise AssertionError("timed out waiting for " + what)


class Peer(Client):
    """A Client with optional routing id and credentials."""

    def __init__(self, endpoint, routing_id=None, curve=None, plain=None, timeout=3000):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, timeout)
        self.sock.setsockopt(zmq.SNDTIMEO, timeout)
        if routing_id is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, routing_id)
        if curve:
            server_public, public, secret = curve
            self.sock.curve_serverkey = server_public
            self.sock.curve_publickey = public
            self.sock.curve_secretkey = secret
        if plain:
            self.sock.plain_username = plain[0].encode()
            self.sock.plain_password = plain[1].encode()
        self.sock.connect(endpoint)
        self.seq = 0

    def try_hello(self, name="py", wait_ms=1500):
        """WELCOME, or None when nothing came (refused by ZAP)."""
        self.sock.setsockopt(zmq.RCVTIMEO, wait_ms)
        self.send(busp.hello(name))
        try:
            d = self.expect(busp.WELCOME)
        except zmq.Again:
            return None
        finally:
            self.sock.setsockopt(zmq.RCVTIMEO, 3000)
        self.seq = 0
        return d



def next_of(c, cmd, skip=(busp.PUBACK,)):
    """The next message of kind cmd, skipping PINGs and PUBACKs."""
    return c.expect(cmd, skip=(busp.PING,) + tuple(skip))


def puback_of(c, seq):
    """Read PUBACKs until one covers seq."""
    while True:
        d = next_of(c, busp.PUBACK, skip=())
        if d["seq"] >= seq:
            return d


def strict_utf8(b):
    b.decode("utf-8")  # raises on invalid bytes
    return True


def check_frames_utf8(d):
    """Every str8 text field and JSON body of a broker message is UTF-8."""
    frames = d["frames"]
    h = frames[0]
    cmd = h[1]
    if cmd in (busp.ERROR,):
        strict_utf8(h[5:5 + h[4]])
    elif cmd in (busp.REJECT,):
        strict_utf8(h[13:13 + h[12]])
    elif cmd == busp.SUBEND:
        strict_utf8(h[9:9 + h[8]])
    if cmd in (busp.WELCOME, busp.SUBOK, busp.CTLREPLY, busp.ERROR) and len(frames) > 1:
        strict_utf8(frames[1])
    if cmd == busp.DELIVER and len(frames) > 2:
        strict_utf8(frames[2])


class Dir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="busd-sec.")

    def file(self, name, text):
        p = os.path.join(self.path, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def keygen(directory, name):
    out = subprocess.run([os.path.join(TOOLS, "busd-keygen"), "-d", directory, name],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def load_cert(path):
    keys = {}
    for line in open(path):
        line = line.strip()
        for k in ("public-key", "secret-key"):
            if line.startswith(k):
                keys[k] = line.split('"')[1].encode()
    return keys.get("public-key"), keys.get("secret-key")


# ------------------------------------------------------------------ routing ids

@test
def routing_id_attack_cannot_stop_the_broker():
    b = Broker()
    try:
        victim = Client(b.endpoint)
        victim.hello("victim")
        spy = Client(b.endpoint)
        spy.hello("spy")
        reply = spy.ctl({"cmd": "clients"})
        text = json.dumps(reply["json"])
        planted = []
        # The attack of the issue: read a routing id from CTL clients and
        # plant the ones libzmq will generate next.
        for c in reply["json"]["clients"]:
            for value in c.values():
                if isinstance(value, str) and len(value) == 10:
                    try:
                        raw = bytes.fromhex(value)
                    except ValueError:
                        continue
                    if raw[0] == 0:
                        n = struct.unpack(">I", raw[1:])[0]
                        planted += [b"\x00" + struct.pack(">I", (n + k) & 0xFFFFFFFF)
                                    for k in range(1, 20)]
        assert not planted, "CTL clients shows routing ids: %s" % text
        for c in reply["json"]["clients"]:
            assert c["id"].startswith("s"), c
            assert "peer" in c and "identity" in c, c
        # Guess anyway: libzmq's first ids from an unseeded or clock-seeded
        # rand(), and a spread of small values.
        guesses = [0x6B8B4567 + k for k in range(40)] + list(range(0, 40))
        attackers = []
        for g in guesses:
            a = Peer(b.endpoint, routing_id=b"\x00" + struct.pack(">I", g))
            a.send(busp.ping(1))
            attackers.append(a)
        # Ordinary clients keep arriving: each gets a generated id.
        for i in range(30):
            c = Client(b.endpoint)
            c.hello("late-%d" % i)
            c.close()
        assert b.proc.poll() is None, "busd died"
        # The attackers have no sessions.
        d = next_of(attackers[0], busp.ERROR)
        assert d["code"] == 401, d
        for a in attackers:
            a.close()
        victim.send(busp.ping(9))
        assert next_of(victim, busp.PONG)["nonce"] == 9
    finally:
        assert b.stop() == 0


@test
def session_takeover_fails():
    b = Broker()
    try:
        rid = os.urandom(12)
        victim = Peer(b.endpoint, routing_id=rid)
        victim.hello("victim")
        victim.send(busp.sub(1, "victim.#"))
        assert next_of(victim, busp.SUBOK)["sub_id"] == 1
        victim.close()          # gone without BYE
        pub = Client(b.endpoint)
        pub.hello("pub")
        # The attacker reconnects with the victim's routing id; libzmq
        # ignores it while the old connection is still attached, so retry.
        attacker = None
        for _ in range(100):
            a = Peer(b.endpoint, routing_id=rid, timeout=300)
            a.send(busp.credit(1, 100))
            try:
                d = a.recv()
                attacker = a
                break
            except zmq.Again:
                a.close()
        assert attacker, "attacker never reached the broker"
        # Its CREDIT for the victim's subscription finds no session.
        assert d["cmd"] == busp.ERROR and d["code"] == 401, d
        for sub_id, frames in ((1, [busp.ack(1, 1)]), (1, [busp.pub(1, "victim.x")])):
            attacker.send(*frames)
            d = next_of(attacker, busp.ERROR)
            assert d["code"] == 401, d
        # Events for the victim's subscription do not reach the attacker.
        for i in range(5):
            last = pub.publish("victim.event", b"secret %d" % i)
        puback_of(pub, last)
        attacker.sock.setsockopt(zmq.RCVTIMEO, 700)
        try:
            d = attacker.recv()
            assert d["cmd"] not in (busp.DELIVER, busp.GAP), "attacker got %r" % d
        except zmq.Again:
            pass
        # A HELLO gives it a new, empty session: sub 1 is unknown there.
        attacker.sock.setsockopt(zmq.RCVTIMEO, 3000)
        attacker.hello("attacker")
        attacker.send(busp.credit(1, 1))
        assert next_of(attacker, busp.ERROR)["code"] == 404
        subs = pub.ctl({"cmd": "subscriptions"})["json"]["subscriptions"]
        assert not any(s["pattern"] == "victim.#" for s in subs), subs
    finally:
        assert b.stop() == 0


# ------------------------------------------------------------------ CURVE, PLAIN

def curve_setup(d, extra=None):
    keys = os.path.join(d.path, "keys")
    clients = os.path.join(d.path, "clients")
    os.makedirs(keys)
    os.makedirs(clients)
    keygen(keys, "server")
    keygen(keys, "alice")
    keygen(keys, "mallory")
    shutil.copy(os.path.join(keys, "alice.key"), clients)
    port = busp.free_port()
    conf = {"listeners": [{"bind": "tcp://127.0.0.1:%d" % port, "auth": "curve"}],
            "curve_server_cert": os.path.join(keys, "server.key_secret"),
            "curve_clients_dir": clients}
    conf.update(extra or {})
    path = d.file("busd.json", json.dumps(conf))
    return path, "tcp://127.0.0.1:%d" % port, keys


@test
def curve_refuses_unknown_keys_and_plain_text():
    d = Dir()
    try:
        conf, curve_ep, keys = curve_setup(d)
        b = Broker("-c", conf)
        try:
            server_pub, _ = load_cert(os.path.join(keys, "server.key"))
            a_pub, a_sec = load_cert(os.path.join(keys, "alice.key_secret"))
            m_pub, m_sec = load_cert(os.path.join(keys, "mallory.key_secret"))
            alice = Peer(curve_ep, curve=(server_pub, a_pub, a_sec))
            assert alice.try_hello("alice") is not None, "alice refused"
            mallory = Peer(curve_ep, curve=(server_pub, m_pub, m_sec))
            assert mallory.try_hello("mallory") is None, "unknown key accepted"
            plain_text = Peer(curve_ep)
            assert plain_text.try_hello("nokey") is None, "NULL client on a curve listener"
            # The loopback listener without auth works beside it.
            local = Client(b.endpoint)
            local.hello("local")
            clients = local.ctl({"cmd": "clients"})["json"]["clients"]
            by_name = {c["name"]: c for c in clients}
            assert by_name["alice"]["identity"] == "alice", by_name
            assert by_name["alice"]["peer"] == "127.0.0.1", by_name
            assert by_name["local"]["identity"] == "anonymous", by_name
            stats = local.ctl({"cmd": "stats"})["json"]
            # (a NULL client fails the ZMTP greeting before ZAP is asked)
            assert stats["auth_refused"] >= 1, stats
            # libbusd and the tools: busd-ctl with and without the keys.
            ctl = os.path.join(TOOLS, "busd-ctl")
            ok = subprocess.run([ctl, "-e", curve_ep, "--connect-timeout", "10",
                                 "--curve-server-key", os.path.join(keys, "server.key"),
                                 "--curve-cert", os.path.join(keys, "alice.key_secret"), "stats"],
                                capture_output=True, text=True, timeout=60)
            assert ok.returncode == 0, ok.stderr
            bad = subprocess.run([ctl, "-e", curve_ep, "--connect-timeout", "1",
                                  "--curve-server-key", os.path.join(keys, "server.key"),
                                  "--curve-cert", os.path.join(keys, "mallory.key_secret"), "stats"],
                                 capture_output=True, text=True, timeout=60)
            assert bad.returncode == 3, (bad.returncode, bad.stderr)
            for c in (alice, mallory, plain_text, local):
                c.close()
        finally:
            assert b.stop() == 0
    finally:
        d.close()


@test
def plain_refuses_wrong_passwords():
    d = Dir()
    try:
        port = busp.free_port()
        ep = "tcp://127.0.0.1:%d" % port
        pw = d.file("passwords", "# users\nalice=s3cret\nbob=hunter2\n")
        conf = d.file("busd.json", json.dumps({
            "listeners": [{"bind": ep, "auth": "plain"}], "plain_passwords": pw}))
        b = Broker("-c", conf)
        try:
            assert Peer(ep, plain=("alice", "s3cret")).try_hello() is not None
            assert Peer(ep, plain=("alice", "wrong")).try_hello() is None
            assert Peer(ep, plain=("carol", "s3cret")).try_hello() is None
            assert Peer(ep).try_hello() is None
        finally:
            assert b.stop() == 0
    finally:
        d.close()


# ------------------------------------------------------------------ ACL

ACL_TEXT = """# test ACL
identity alice
    publish   user.#
    subscribe user.* public.#
    group     mailers
    ctl       read
identity admin
    publish   #
    subscribe # $dlq.# $sys.#
    group     *
    ctl       admin
identity anonymous
    subscribe public.#
"""


@test
def acl_allows_and_denies_as_written():
    d = Dir()
    try:
        port = busp.free_port()
        ep = "tcp://127.0.0.1:%d" % port
        pw = d.file("passwords", "alice=a\nadmin=b\n")
        acl = d.file("acl.conf", ACL_TEXT)
        conf = d.file("busd.json", json.dumps({
            "listeners": [{"bind": ep, "auth": "plain"}], "plain_passwords": pw,
            "acl_file": acl}))
        b = Broker("-c", conf)
        try:
            alice = Peer(ep, plain=("alice", "a"))
            assert alice.try_hello("alice")
            admin = Peer(ep, plain=("admin", "b"))
            assert admin.try_hello("admin")
            anon = Client(b.endpoint)
            anon.hello("anon")

            # publish
            seq = alice.publish("user.created", b"1")
            assert puback_of(alice, seq)["seq"] == seq
            seq = alice.publish("orders.created", b"2")
            d_ = next_of(alice, busp.REJECT)
            assert d_["seq"] == seq and d_["code"] == 403, d_
            assert "acl.conf:2" in d_["reason"] and "publish" in d_["reason"], d_
            seq = anon.publish("public.news", b"3")
            d_ = next_of(anon, busp.REJECT)
            assert d_["code"] == 403 and "anonymous" in d_["reason"], d_

            # subscribe, $dlq.#, groups
            def sub(c, sub_id, pattern, options=None):
                frames = [busp.sub(sub_id, pattern)]
                if options is not None:
                    frames.append(json.dumps(options))
                c.send(*frames)
                while True:
                    r = c.recv()
                    if r["cmd"] in (busp.SUBOK, busp.SUBEND) and r["sub_id"] == sub_id:
                        return r
            assert sub(alice, 1, "user.*")["cmd"] == busp.SUBOK
            r = sub(alice, 2, "user.#")
            assert r["cmd"] == busp.SUBEND and r["code"] == 403, r
            assert "subscribe" in r["reason"] and "acl.conf" in r["reason"], r
            r = sub(alice, 3, "$dlq.#")
            assert r["cmd"] == busp.SUBEND and r["code"] == 403, r
            r = sub(alice, 4, "#")
            assert r["cmd"] == busp.SUBEND and r["code"] == 403, r
            assert sub(admin, 1, "$dlq.#")["cmd"] == busp.SUBOK
            assert sub(admin, 2, "$sys.#")["cmd"] == busp.SUBOK
            assert sub(alice, 5, "user.*", {"group": "mailers"})["cmd"] == busp.SUBOK
            r = sub(alice, 6, "user.*", {"group": "billing"})
            assert r["cmd"] == busp.SUBEND and r["code"] == 403 and "group" in r["reason"], r
            assert sub(admin, 3, "user.*", {"group": "billing"})["cmd"] == busp.SUBOK
            assert sub(anon, 1, "public.#")["cmd"] == busp.SUBOK
            r = sub(anon, 2, "user.*")
            assert r["cmd"] == busp.SUBEND and r["code"] == 403, r

            # CTL: read-only vs admin
            assert alice.ctl({"cmd": "stats"})["code"] == 200
            assert alice.ctl({"cmd": "clients"}, 2)["code"] == 200
            r = alice.ctl({"cmd": "reload"}, 3)
            assert r["code"] == 403 and "ctl" in r["json"]["error"], r
            r = alice.ctl({"cmd": "dlq-list"}, 4)
            assert r["code"] == 403, r
            r = anon.ctl({"cmd": "stats"}, 5)
            assert r["code"] == 403, r
            assert admin.ctl({"cmd": "dlq-list"}, 6)["code"] == 200

            # Reload with a narrower ACL: alice's user.* subscriptions
            # (plain and in group mailers) end with SUBEND 403.
            with open(acl, "w") as f:
                f.write(ACL_TEXT.replace("subscribe user.* public.#", "subscribe user.created"))
            r = admin.ctl({"cmd": "reload"}, 7)
            assert r["code"] == 200, r
            ended = set()
            while len(ended) < 2:
                r = alice.recv()
                if r["cmd"] == busp.SUBEND:
                    assert r["code"] == 403 and "denied by ACL" in r["reason"], r
                    ended.add(r["sub_id"])
            assert ended == {1, 5}, ended
            assert sub(alice, 7, "user.created")["cmd"] == busp.SUBOK
            stats = admin.ctl({"cmd": "stats"}, 8)["json"]
            assert stats["acl_denied"] >= 10, stats
        finally:
            assert b.stop() == 0
    finally:
        d.close()


# ------------------------------------------------------------------ limits

@test
def limits_answer_429():
    d = Dir()
    try:
        conf = d.file("busd.json", json.dumps({
            "max_sessions_per_identity": 3, "max_subs_per_session": 2,
            "max_topic_depth": 3, "ctl_rate": 2}))
        b = Broker("-c", conf)
        try:
            c = Client(b.endpoint)
            c.hello("limits")

            # The broker's readiness probe disconnected: it does not count.
            others = []
            for i in range(2):
                o = Client(b.endpoint)
                o.hello("o%d" % i)
                others.append(o)
            extra = Client(b.endpoint)
            extra.send(busp.hello("one-too-many"))
            r = extra.recv()
            assert r["cmd"] == busp.ERROR and r["code"] == 429, r
            assert "max_sessions_per_identity" in r["reason"], r
            # subscriptions per session
            for sub_id in (1, 2):
                c.send(busp.sub(sub_id, "a.%d" % sub_id))
                assert next_of(c, busp.SUBOK)["sub_id"] == sub_id
            c.send(busp.sub(3, "a.3"))
            r = next_of(c, busp.SUBEND)
            assert r["code"] == 429 and "max_subs_per_session" in r["reason"], r
            # topic depth
            seq = c.publish("a.b.c.d", b"x")
            r = next_of(c, busp.REJECT)
            assert r["seq"] == seq and r["code"] == 429, r
            seq = c.publish("a.b.c", b"x")
            assert puback_of(c, seq)["seq"] == seq
            # CTL rate: a burst gets 429 once the bucket is empty
            codes = []
            for rid in range(10, 20):
                c.send(busp.ctl(rid), json.dumps({"cmd": "streams"}))
                codes.append(next_of(c, busp.CTLREPLY)["code"])
            assert 429 in codes, codes
            r = wait_for(lambda: (lambda x: x if x["code"] == 200 else None)(
                c.ctl({"cmd": "stats"}, 30)), what="CTL bucket to refill")
            assert r["json"]["over_limit"] >= 4, r["json"]
        finally:
            assert b.stop() == 0
        # CTL reply size
        conf = d.file("busd2.json", json.dumps({"max_ctl_reply": 300}))
        b = Broker("-c", conf)
        try:
            c = Client(b.endpoint)
            c.hello("big-reply")
            r = c.ctl({"cmd": "stats"})
            assert r["code"] == 429 and "max_ctl_reply" in r["json"]["error"], r
            assert c.ctl({"cmd": "streams"}, 2)["code"] == 200
        finally:
            assert b.stop() == 0
    finally:
        d.close()


# ------------------------------------------------------------------ UTF-8

@test
def every_reply_is_utf8_for_hostile_input():
    b = Broker()
    try:
        bad_name = b"\xff\xfe evil \xe2\x82" + "€".encode() * 80 + b"\xc3"
        h = Client(b.endpoint)
        h.send(struct.pack(">BBH", busp.SIG, busp.HELLO, 1) + busp.s8(bad_name[:255]))
        check_frames_utf8(h.expect(busp.WELCOME))
        watcher = Client(b.endpoint)
        watcher.hello("watcher")
        watcher.send(busp.sub(1, "$dlq.#"), json.dumps({"credit": 100}))
        next_of(watcher, busp.SUBOK)
        # A group name with invalid bytes, then one that conflicts.
        h.send(busp.sub(1, "h.#"), b'{"group": "g\xff\xfe\xe2\x82", "ack": "explicit", "max_deliver": 1}')
        check_frames_utf8(next_of(h, busp.SUBOK))
        h.send(busp.sub(2, "h.#"), b'{"group": "g\xff\xfe\xe2\x82", "overflow": "latest"}')
        r = next_of(h, busp.SUBEND)
        assert r["code"] == 409, r
        check_frames_utf8(r)
        # A NACK reason with invalid bytes becomes the dead letter's x-reason.
        seq = h.publish("h.x", b"payload")
        dl = next_of(h, busp.DELIVER)
        check_frames_utf8(dl)
        h.send(busp.nack(1, dl["delivery_id"], 1, 0), b'{"reason": "bad \xff\xc3 reason ' + "é".encode() * 200 + b'"}')
        dead = next_of(watcher, busp.DELIVER)
        check_frames_utf8(dead)
        headers = json.loads(dead["frames"][2])
        assert "bad" in headers["x-reason"], headers
        # Unknown CTL commands echoed, cut inside a character.
        for cmd in (b"\xe2\x82", "€".encode() * 100 + b"\xe2", b"\xff" * 300):
            h.send(busp.ctl(3), b'{"cmd": "' + cmd + b'"}')
            r = next_of(h, busp.CTLREPLY)
            assert r["code"] == 400, r
            check_frames_utf8(r)
        for req in ({"cmd": "clients"}, {"cmd": "subscriptions"}, {"cmd": "dlq-list"}):
            h.send(busp.ctl(4), json.dumps(req))
            r = next_of(h, busp.CTLREPLY)
            assert r["code"] == 200, r
            check_frames_utf8(r)
        # CTL number fields out of range.
        for req in ({"cmd": "dlq-list", "limit": -1}, {"cmd": "dlq-list", "limit": 1e300},
                    {"cmd": "dlq-list", "since_us": 1e300}, {"cmd": "dlq-replay", "ids": [-5]},
                    {"cmd": "dlq-replay", "ids": [1e300]}, {"cmd": "dlq-list", "limit": 1.5}):
            h.send(busp.ctl(5), json.dumps(req))
            r = next_of(h, busp.CTLREPLY)
            assert r["code"] == 400, (req, r)
        # An ERROR quoting hostile bytes (bad pub_seq) is UTF-8 too.
        h.send(busp.pub(99, "h.y", "\xff"))
        r = next_of(h, busp.ERROR)
        check_frames_utf8(r)
        assert b.proc.poll() is None
    finally:
        assert b.stop() == 0


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS, shared_broker=False))
