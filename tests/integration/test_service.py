#!/usr/bin/env python3
"""Running busd as a service: --check-config, signals, reload, --daemon,
sd_notify READY, /metrics and $sys.stats, against real busd processes."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import Broker, Client, free_port  # noqa: E402

BUSD = os.environ.get("BUSD_BIN", "src/broker/busd")
TESTS = []
TMP = tempfile.mkdtemp(prefix="busd-service-")


def test(fn):
    TESTS.append(fn)
    return fn


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def check_config(path):
    r = subprocess.run([BUSD, "--check-config", "-c", path], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout + r.stderr


def session(endpoint, name="py"):
    c = Client(endpoint)
    c.hello(name)
    return c


@test
def check_config_valid():
    path = write("ok.json", """{
  // comments are allowed
  "bind": ["tcp://127.0.0.1:7461"],
  "log_level": "info",
  /* block comments too */
  "queue_limit": 500
}""")
    rc, out = check_config(path)
    assert rc == 0 and "configuration OK" in out, (rc, out)


@test
def check_config_syntax_error():
    path = write("syntax.json", '{\n  "queue_limit": 5,\n  "pub_credit" 7\n}\n')
    rc, out = check_config(path)
    assert rc != 0 and "syntax.json:3" in out and "syntax" in out, (rc, out)


@test
def check_config_unknown_key_suggests():
    path = write("unknown.json", '{\n  "sesion_timeout_ms": 1000\n}\n')
    rc, out = check_config(path)
    assert rc != 0, out
    assert "unknown.json:2" in out and "sesion_timeout_ms" in out, out
    assert "session_timeout_ms" in out, out


@test
def check_config_bad_type():
    path = write("type.json", '{ "pub_credit": "lots" }')
    rc, out = check_config(path)
    assert rc != 0 and "pub_credit" in out and "number" in out, (rc, out)


@test
def check_config_missing_file():
    rc, out = check_config(os.path.join(TMP, "nope.json"))
    assert rc != 0 and "nope.json" in out and "cannot open" in out, (rc, out)


@test
def sigterm_mid_stream_delivers_everything_acked():
    b = Broker()
    s = session(b.endpoint, "sub")
    s.send(busp.sub(1, "stream.x"), json.dumps({"credit": 100000}))
    s.expect(busp.SUBOK)
    p = session(b.endpoint, "pub")
    acked = 0
    for i in range(3000):
        try:
            p.publish("stream.x", b"%d" % i)
        except busp.zmq.Again:
            break               # the broker is gone: nothing more goes out
        if i == 1500:
            b.proc.send_signal(signal.SIGTERM)
    # the publisher sends without waiting for credit, so some PUBs may be
    # refused (429 when a batch outruns its window, 503 once stopping):
    # those must not arrive, every other acknowledged one must, in order
    rejected = set()
    p.sock.setsockopt(busp.zmq.RCVTIMEO, 2000)
    try:
        while True:
            d = p.recv()
            if d["cmd"] == busp.PUBACK:
                acked = d["seq"]
            elif d["cmd"] == busp.REJECT:
                assert d["code"] in (429, 503), d
                rejected.add(d["seq"])
            elif d["cmd"] == busp.ERROR:
                assert d["code"] == 503
                break
    except busp.zmq.Again:
        pass
    rc = b.proc.wait(timeout=30)
    b.log.close()
    assert rc == 0, rc
    got = []
    s.sock.setsockopt(busp.zmq.RCVTIMEO, 500)
    try:
        while True:
            d = s.recv()
            if d["cmd"] == busp.DELIVER:
                got.append(int(d["payload"]))
    except busp.zmq.Again:
        pass
    assert acked >= 100, acked
    expected = [i for i in range(acked) if i + 1 not in rejected]
    assert got[:len(expected)] == expected, (len(got), acked, len(rejected))
    # anything beyond was accepted too (its PUBACK may not have reached us)
    assert all(i + 1 not in rejected for i in got), "a rejected PUB was delivered"
    assert got == sorted(set(got)), "duplicates or disorder"


@test
def sighup_reload_changes_limits():
    port = free_port()
    path = write("reload.json", '{ "bind": "tcp://127.0.0.1:%d", "queue_limit": 10 }' % port)
    log = open(os.path.join(TMP, "reload.log"), "wb")
    proc = subprocess.Popen([BUSD, "-c", path], stdout=log, stderr=log)
    try:
        ep = "tcp://127.0.0.1:%d" % port
        deadline = time.time() + 10
        while True:
            try:
                c = Client(ep, timeout=200)
                c.hello()
                break
            except Exception:
                assert time.time() < deadline
                time.sleep(0.05)
        c.sock.setsockopt(busp.zmq.RCVTIMEO, 3000)
        c.send(busp.sub(1, "a"))
        assert c.expect(busp.SUBOK)["json"]["queue_limit"] == 10
        write("reload.json", '{ "bind": "tcp://127.0.0.1:%d", "queue_limit": 77 }' % port)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        c.send(busp.sub(2, "b"))
        assert c.expect(busp.SUBOK)["json"]["queue_limit"] == 77
        # a broken file on reload keeps the running configuration
        write("reload.json", '{ "queue_limit": "x" }')
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        c.send(busp.sub(3, "c"))
        assert c.expect(busp.SUBOK)["json"]["queue_limit"] == 77
        # CTL reload answers with the outcome: the error names file and key
        r = c.ctl({"cmd": "reload"}, 11)
        assert r["code"] == 400 and "queue_limit" in r["json"]["error"], r
        assert "reload.json" in r["json"]["error"], r
        write("reload.json", '{ "bind": "tcp://127.0.0.1:%d", "queue_limit": 55 }' % port)
        r = c.ctl({"cmd": "reload"}, 12)
        assert r["code"] == 200 and r["json"]["reloaded"] is True, r
        c.send(busp.sub(4, "d"))
        assert c.expect(busp.SUBOK)["json"]["queue_limit"] == 55
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log.close()
    text = open(os.path.join(TMP, "reload.log")).read()
    assert "reloaded" in text and "queue_limit" in text, text


@test
def daemon_with_pidfile():
    port = free_port()
    pidfile = os.path.join(TMP, "busd.pid")
    r = subprocess.run([BUSD, "--daemon", "--pidfile", pidfile, "--bind",
                        "tcp://127.0.0.1:%d" % port], timeout=30)
    assert r.returncode == 0
    pid = int(open(pidfile).read())
    try:
        os.kill(pid, 0)
        c = Client("tcp://127.0.0.1:%d" % port)
        c.hello()
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    else:
        raise AssertionError("daemon did not stop")
    assert not os.path.exists(pidfile)
    # a daemon that cannot bind says so through its exit status
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    r = subprocess.run([BUSD, "--daemon", "--bind", "tcp://127.0.0.1:%d" % taken], timeout=30)
    blocker.close()
    assert r.returncode != 0


@test
def user_drops_privileges():
    import pwd
    if os.geteuid() != 0:
        print("# skipped: --user needs root")
        return
    nobody = pwd.getpwnam("nobody")
    b = Broker("--user", "nobody")
    try:
        status = open("/proc/%d/status" % b.proc.pid).read()
        uid_line = [l for l in status.splitlines() if l.startswith("Uid:")][0]
        assert all(int(x) == nobody.pw_uid for x in uid_line.split()[1:]), uid_line
        c = Client(b.endpoint)
        c.hello()               # still serving after the switch
    finally:
        assert b.stop() == 0
    r = subprocess.run([BUSD, "--bind", "tcp://127.0.0.1:%d" % free_port(), "--user",
                        "no-such-user-xyz"], capture_output=True, text=True, timeout=30)
    # Refused as a configuration error, before anything is bound.
    assert r.returncode == 2 and "no-such-user-xyz" in r.stderr, (r.returncode, r.stderr)


@test
def notify_ready():
    path = os.path.join(TMP, "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(10)
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=path)
    proc = subprocess.Popen([BUSD, "--bind", "tcp://127.0.0.1:%d" % port], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        msg = srv.recv(4096).decode()
        assert "READY=1" in msg, msg
        # ready means bound: a client connects at once
        c = Client("tcp://127.0.0.1:%d" % port)
        c.hello()
        proc.send_signal(signal.SIGHUP)
        msgs = [srv.recv(4096).decode() for _ in range(2)]
        assert "RELOADING=1" in msgs[0] and "READY=1" in msgs[1], msgs
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in srv.recv(4096).decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        srv.close()


@test
def metrics_endpoint():
    mport = free_port()
    b = Broker("--metrics", "127.0.0.1:%d" % mport)
    try:
        s = session(b.endpoint)
        s.send(busp.sub(1, "m.x"))
        s.expect(busp.SUBOK)
        p = session(b.endpoint)
        for i in range(5):
            p.publish("m.x", b"x")
        p.expect(busp.PUBACK)
        time.sleep(1.3)
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5).read().decode()
        values = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
        assert values["busd_events_accepted_total"] >= 5, values
        assert values["busd_sessions"] >= 2
        assert values["busd_subscriptions"] >= 1
        assert 'busd_events_dropped_total{policy="block"}' in values
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/other" % mport, timeout=5)
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        assert b.stop() == 0


@test
def sys_stats_event():
    b = Broker("--stats-interval", "200")
    try:
        s = session(b.endpoint)
        s.send(busp.sub(1, "$sys.stats"))
        s.expect(busp.SUBOK)
        d = s.expect(busp.DELIVER)
        assert d["topic"] == "$sys.stats"
        stats = json.loads(d["payload"])
        assert stats["sessions"] >= 1 and "accepted" in stats
        # '#' does not match $ topics
        s.send(busp.sub(2, "#"))
        s.expect(busp.SUBOK)
        for _ in range(3):
            assert s.expect(busp.DELIVER)["sub_id"] == 1
    finally:
        assert b.stop() == 0


@test
def bad_flags_and_help():
    r = subprocess.run([BUSD, "--no-such-flag"], capture_output=True, timeout=30)
    assert r.returncode == 2
    r = subprocess.run([BUSD, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--bind" in r.stdout
    r = subprocess.run([BUSD, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "busd" in r.stdout
    r = subprocess.run([BUSD, "--pub-credit", "zero"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "pub_credit" in r.stderr, r.stderr


if __name__ == "__main__":
    sys.exit(busp.run_tests(TESTS, shared_broker=False))
