#!/usr/bin/env python3
"""Subscriber plugins against real busd processes: results mapped to ACK,
retry with delay and dead letters; credit throttling of a slow plugin;
load failures (init, ABI, missing file) that leave busd running; config
errors; SIGHUP adding, replacing and removing plugins; FATAL disabling an
instance; and busd-plugin-host restarting a crashed plugin whose event is
then redelivered.  The plugins are tests/plugins/*.c, built by make check."""
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
from busp import Client, free_port  # noqa: E402

BUSD = os.environ.get("BUSD_BIN", "src/broker/busd")
TOP = os.environ.get("BUSD_TOP_BUILDDIR", ".")
TOOLS = os.environ.get("BUSD_TOOLS", os.path.join(TOP, "src", "tools"))
HOST = os.path.join(TOOLS, "busd-plugin-host")
PLUGDIR = os.path.join(TOP, "tests", "plugins", ".libs")
TESTS = []
TMP = tempfile.mkdtemp(prefix="busd-plugins-")


def test(fn):
    TESTS.append(fn)
    return fn


def so(name):
    return os.path.abspath(os.path.join(PLUGDIR, name + ".so"))


def tmp(name):
    return os.path.join(TMP, name)


def write(name, text):
    with open(tmp(name), "w") as f:
        f.write(text)
    return tmp(name)


def lines(name):
    try:
        with open(tmp(name)) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_until(fn, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


class Busd:
    """A real busd with a config file listing plugins; its log in TMP."""

    def __init__(self, plugins, name="busd", **settings):
        self.port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.name = name
        self.settings = dict(settings)
        self.conf = self.write_config(plugins)
        self.logpath = tmp("%s-%d.log" % (name, self.port))
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen([BUSD, "-c", self.conf], stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while True:
            try:
                c = Client(self.endpoint, timeout=200)
                c.hello()
                c.close()
                break
            except Exception:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("busd did not start:\n" + self.text())
                time.sleep(0.05)

    def write_config(self, plugins):
        conf = {"bind": self.endpoint, "log_level": "debug", "plugins": plugins}
        conf.update(self.settings)
        return write("%s-%d.json" % (self.name, self.port), json.dumps(conf, indent=2))

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def ctl(self, request):
        c = Client(self.endpoint)
        try:
            c.hello("test-ctl")
            d = c.ctl(request)
            assert d["code"] == 200, d
            return d["json"]
        finally:
            c.close()

    def plugins(self):
        return {p["name"]: p for p in self.ctl({"cmd": "plugins"})["plugins"]}

    def wait_plugin(self, name, state="running", timeout=10):
        def check():
            p = self.plugins().get(name)
            return p if p and p["state"] == state else None
        return wait_until(check, timeout, "plugin '%s' to be %s" % (name, state))

    def publish(self, topic, payloads, headers=None):
        c = Client(self.endpoint)
        try:
            c.hello("test-pub")
            last = 0
            for p in payloads:
                last = c.publish(topic, p if isinstance(p, bytes) else p.encode(),
                                 headers=headers)
            while True:
                d = c.recv()
                if d["cmd"] == busp.PUBACK and d["seq"] >= last:
                    return
                assert d["cmd"] in (busp.PUBACK, busp.PING), d
        finally:
            c.close()

    def reload(self, plugins):
        self.write_config(plugins)
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.log.close()
        return rc


def subscriber(endpoint, pattern, options=None, name="test-sub"):
    c = Client(endpoint)
    c.hello(name)
    c.send(busp.sub(1, pattern), json.dumps(options or {"credit": 100000}))
    c.expect(busp.SUBOK)
    return c


def entry(name, plugin, patterns, **kw):
    e = {"name": name, "path": so(plugin), "patterns": patterns}
    e.update(kw)
    return e


@test
def ok_plugin_acks_every_event_and_publishes():
    b = Busd([entry("counter", "ok", ["orders.*"],
                    config={"file": tmp("ok.txt"), "forward_to": "audit.copy"})])
    try:
        p = b.wait_plugin("counter")
        assert p["version"] == "1.0.0" and p["path"] == so("ok"), p
        audit = subscriber(b.endpoint, "audit.copy")
        b.publish("orders.created", ["order-%d" % i for i in range(20)])
        wait_until(lambda: len(lines("ok.txt")) == 20, what="20 events handled")
        assert lines("ok.txt")[0] == "orders.created 1 order-0", lines("ok.txt")[0]
        got = sorted(audit.expect(busp.DELIVER)["payload"] for _ in range(20))
        assert got == sorted(b"order-%d" % i for i in range(20)), got
        audit.close()
        p = wait_until(lambda: b.plugins()["counter"]["ok"] == 20 and b.plugins()["counter"])
        assert p["delivered"] == 20 and p["retried"] == 0 and p["failed"] == 0, p
        assert p["metrics"] == {"events": 20} and p["inflight"] == 0, p
        assert p["state"] == "running" and p["error"] == "", p
        stats = b.ctl({"cmd": "stats"})
        assert stats["plugins"][0]["name"] == "counter", stats
        subs = b.ctl({"cmd": "subscriptions"})["subscriptions"]
        mine = [s for s in subs if s["group"] == "plugin.counter"]
        assert mine and mine[0]["ack"] == "explicit" and mine[0]["pattern"] == "orders.*", subs
    finally:
        assert b.stop() == 0


@test
def retry_then_ok_honours_the_delay():
    b = Busd([entry("retrier", "retry-then-ok", ["retry.me"], config={"file": tmp("retry.txt")})])
    try:
        b.wait_plugin("retrier")
        b.publish("retry.me", ["x"])
        rows = wait_until(lambda: len(lines("retry.txt")) >= 3 and lines("retry.txt"),
                          what="three attempts")
        time.sleep(0.3)
        rows = lines("retry.txt")
        assert len(rows) == 3, rows
        attempts = [int(r.split()[1]) for r in rows]
        times = [int(r.split()[3]) for r in rows]
        assert attempts == [1, 2, 3], rows
        assert times[1] - times[0] >= 100 and times[2] - times[1] >= 100, times
        p = b.plugins()["retrier"]
        assert p["retried"] == 2 and p["ok"] == 1 and p["delivered"] == 3, p
        assert b.ctl({"cmd": "dlq-list"})["dead_letters"] == []
    finally:
        assert b.stop() == 0


@test
def pending_events_are_answered_later_within_max_inflight():
    # ABI 1.2: PENDING, complete() from the plugin's thread, publish_credit
    # and publish_flush from it too.
    b = Busd([entry("later", "pending", ["pend.*"], max_inflight=4,
                    config={"file": tmp("pending.txt"), "hold_ms": 100})])
    try:
        b.wait_plugin("later")
        done = subscriber(b.endpoint, "pending.done")
        dlq = subscriber(b.endpoint, "$dlq.#")
        b.publish("pend.x", ["e%d" % i for i in range(20)])
        b.publish("pend.fail", ["no"])
        rows = wait_until(lambda: len(lines("pending.txt")) == 21 and lines("pending.txt"),
                          what="21 answers")
        held = [int(r.split()[2]) for r in rows]
        assert max(held) <= 4 and max(held) >= 2, held     # a window, bounded
        got = [done.expect(busp.DELIVER)["payload"] for _ in range(20)]
        assert got == [b"pend.x"] * 20, got
        d = dlq.expect(busp.DELIVER)
        assert d["topic"] == "$dlq.pend.fail", d
        assert json.loads(d["headers"])["x-reason"] == "pending says no", d
        p = wait_until(lambda: b.plugins()["later"]["ok"] == 20 and b.plugins()["later"])
        assert p["failed"] == 1 and p["inflight"] == 0 and p["delivered"] == 21, p
        done.close()
        dlq.close()
    finally:
        assert b.stop() == 0


@test
def always_fail_dead_letters_once_with_the_reason():
    b = Busd([entry("failer", "always-fail", ["signup.*"], config={"file": tmp("fail.txt")})])
    try:
        b.wait_plugin("failer")
        dlq = subscriber(b.endpoint, "$dlq.#")
        b.publish("signup.new", ["alice"])
        d = dlq.expect(busp.DELIVER)
        headers = json.loads(d["headers"])
        assert d["topic"] == "$dlq.signup.new" and d["payload"] == b"alice", d
        assert headers["x-reason"] == "always fails", headers
        assert headers["x-subscription"] == "plugin.failer", headers
        dlq.close()
        time.sleep(0.5)
        letters = b.ctl({"cmd": "dlq-list"})["dead_letters"]
        assert len(letters) == 1, letters
        assert letters[0]["reason"] == "always fails", letters
        assert letters[0]["subscription"] == "plugin.failer", letters
        assert letters[0]["attempts"] == 1, letters
        assert lines("fail.txt") == ["fail signup.new 1"], lines("fail.txt")
        p = b.plugins()["failer"]
        assert p["failed"] == 1 and p["dead_lettered"] == 1 and p["ok"] == 0, p
    finally:
        assert b.stop() == 0


@test
def slow_plugin_is_throttled_by_credit_only():
    b = Busd([entry("sloth", "slow", ["slow.*"], max_inflight=4,
                    config={"sleep_ms": 100, "file": tmp("slow.txt")})])
    try:
        b.wait_plugin("sloth")
        fast = subscriber(b.endpoint, "fast.x")
        b.publish("slow.job", ["s%d" % i for i in range(40)])
        start = time.time()
        b.publish("fast.x", ["f%d" % i for i in range(500)])
        for _ in range(500):
            fast.expect(busp.DELIVER)
        took = time.time() - start
        assert took < 3, "the fast subscriber took %.2f s" % took
        t0 = time.time()
        subs = b.ctl({"cmd": "subscriptions"})["subscriptions"]
        assert time.time() - t0 < 0.5, "CTL took %.2f s" % (time.time() - t0)
        sloth = [s for s in subs if s["group"] == "plugin.sloth"][0]
        assert sloth["inflight"] <= 4, sloth
        assert sloth["queued"] > 0, sloth
        done = len(lines("slow.txt"))
        assert done < 40, "the slow plugin should still be busy (%d done)" % done
        fast.close()
        wait_until(lambda: len(lines("slow.txt")) == 40, 15, "the slow plugin to finish")
        p = b.plugins()["sloth"]
        assert p["ok"] == 40 and p["avg_handle_us"] >= 100000, p
    finally:
        assert b.stop() == 0


@test
def init_failure_and_abi_mismatch_leave_busd_running():
    b = Busd([entry("mailer", "init-fails", ["user.created"]),
              entry("future", "abi-mismatch", ["user.created"]),
              entry("counter", "ok", ["user.*"], config={"file": tmp("ok2.txt")})])
    try:
        b.wait_plugin("counter")
        mailer = b.wait_plugin("mailer", "failed")
        assert "missing api_key" in mailer["error"], mailer
        future = b.plugins()["future"]
        assert future["state"] == "failed", future
        assert "built for plugin ABI 99.0, this busd speaks 1." in future["error"], future
        assert so("abi-mismatch") in future["error"], future
        log = b.text()
        assert "plugin 'mailer': init failed: missing api_key" in log, log
        assert so("abi-mismatch") + ": built for plugin ABI 99.0, this busd speaks 1." in log, log
        b.publish("user.created", ["bob"])
        wait_until(lambda: lines("ok2.txt") == ["user.created 1 bob"], what="the ok plugin")
        # the operator's view: busd-ctl plugins shows states and the reason
        tools = os.environ.get("BUSD_TOOLS", "src/tools")
        r = subprocess.run([os.path.join(tools, "busd-ctl"), "-e", b.endpoint, "plugins"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:] if line.strip()}
        assert r.stdout.startswith("NAME"), r.stdout
        assert "running" in rows["counter"] and "failed" in rows["mailer"], r.stdout
        assert "missing api_key" in rows["mailer"], r.stdout
    finally:
        assert b.stop() == 0


@test
def missing_plugin_file():
    missing = tmp("nowhere/mailer.so")
    plugins = [entry("mailer", "ok", ["user.created"]),
               entry("counter", "ok", ["user.*"], config={"file": tmp("ok3.txt")})]
    plugins[0]["path"] = missing
    path = write("missing.json", json.dumps({"plugins": plugins}))
    r = subprocess.run([BUSD, "--check-config", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0, r
    assert missing in r.stderr and "mailer" in r.stderr, r.stderr
    b = Busd(plugins)
    try:
        b.wait_plugin("counter")
        mailer = b.wait_plugin("mailer", "failed")
        assert missing in mailer["error"] and "cannot load" in mailer["error"], mailer
        assert "plugin 'mailer': cannot load %s" % missing in b.text()
        b.publish("user.created", ["carol"])
        wait_until(lambda: lines("ok3.txt") == ["user.created 1 carol"], what="the ok plugin")
    finally:
        assert b.stop() == 0


@test
def config_errors_name_the_plugin_and_key():
    cases = [
        ([{"path": so("ok"), "patterns": ["a"]}], "key 'name' is required"),
        ([entry("a", "ok", ["a"]), entry("a", "ok", ["b"])], "another plugin is already called 'a'"),
        ([entry("a", "ok", "a.b")], "('a'): key 'patterns'"),
        ([entry("a", "ok", ["a..b"])], "'a..b' is not a valid pattern"),
        ([entry("a", "ok", ["a"], patern=["x"])], "('a'): unknown key 'patern'"),
        ([entry("a", "ok", ["a"], max_inflight=0)], "('a'): key 'max_inflight'"),
        ([entry("a", "ok", ["a"], config=[1])], "('a'): key 'config': must be an object"),
        ([entry("a", "ok", ["a"], instances="two")], "('a'): key 'instances': must be a number"),
        ([entry("a", "ok", ["a"], enabled="yes")], "('a'): key 'enabled'"),
        (["mailer"], "plugins[0]: must be an object"),
    ]
    for plugins, expected in cases:
        path = write("bad.json", json.dumps({"plugins": plugins}))
        r = subprocess.run([BUSD, "--check-config", "-c", path], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0 and expected in r.stderr and "bad.json" in r.stderr, \
            (expected, r.stderr)
    # a bare name resolves in the plugin directory; relative paths in the
    # config file's directory
    os.makedirs(tmp("conf/sub"), exist_ok=True)
    path = write("conf/rel.json", json.dumps({"plugins": [
        {"name": "rel", "path": "sub/rel.so", "patterns": ["a"]},
        {"name": "installed-nowhere", "patterns": ["a"]}]}))
    r = subprocess.run([BUSD, "--check-config", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert tmp("conf/sub/rel.so") in r.stderr, r.stderr
    assert "/plugins/installed-nowhere.so" in r.stderr, r.stderr
    # a disabled plugin's file is not needed; a good config passes
    path = write("good.json", json.dumps({"plugins": [
        entry("a", "ok", ["a"]), {"name": "off", "path": "/nope.so", "patterns": ["a"],
                                  "enabled": False}]}))
    r = subprocess.run([BUSD, "--check-config", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr


@test
def sighup_adds_replaces_and_removes_plugins():
    a = entry("alpha", "ok", ["alpha.*"], config={"file": tmp("alpha1.txt")})
    b = Busd([a])
    try:
        b.wait_plugin("alpha")
        beta = entry("beta", "ok", ["beta.*"], config={"file": tmp("beta.txt")})
        b.reload([a, beta])
        b.wait_plugin("beta")
        b.publish("beta.one", ["b1"])
        b.publish("alpha.one", ["a1"])
        wait_until(lambda: lines("beta.txt") == ["beta.one 1 b1"], what="beta to handle")
        wait_until(lambda: lines("alpha1.txt") == ["alpha.one 1 a1"], what="alpha to handle")
        log = b.text()
        assert "plugin 'beta': added" in log, log
        assert "1 added, 0 replaced, 0 removed, 1 unchanged" in log, log
        # alpha's entry changes (another file), beta goes away
        a2 = entry("alpha", "ok", ["alpha.*"], config={"file": tmp("alpha2.txt")})
        b.reload([a2])
        wait_until(lambda: "0 added, 1 replaced, 1 removed, 0 unchanged" in b.text(),
                   what="the reload")
        wait_until(lambda: set(b.plugins()) == {"alpha"}, what="beta to go")
        b.wait_plugin("alpha")
        # the old generation finishes what the broker already sent it, then
        # leaves the group to the new one
        wait_until(lambda: b.text().count("previous generation stopped and released") == 2,
                   what="old generations to be released")
        b.publish("alpha.two", ["a2"])
        wait_until(lambda: lines("alpha2.txt") == ["alpha.two 1 a2"], what="the new alpha")
        assert lines("alpha1.txt") == ["alpha.one 1 a1"], lines("alpha1.txt")
        b.publish("beta.two", ["b2"])
        time.sleep(0.3)
        assert lines("beta.txt") == ["beta.one 1 b1"], lines("beta.txt")
        subs = b.ctl({"cmd": "subscriptions"})["subscriptions"]
        assert [s["group"] for s in subs] == ["plugin.alpha"], subs
    finally:
        assert b.stop() == 0


@test
def reload_reply_means_the_old_generation_gets_nothing_more():
    # A stream of events; in the middle a CTL reload replaces the plugin
    # (another output file).  Whatever is published after the reply must
    # reach the new generation only; nothing is lost either way.
    gen1 = entry("switch", "ok", ["sw.*"], config={"file": tmp("sw1.txt")},
                 max_inflight=64)
    b = Busd([gen1])
    try:
        b.wait_plugin("switch")
        c = Client(b.endpoint)
        c.hello("stream")
        n = 0
        for _ in range(300):
            n += 1
            c.publish("sw.x", b"%d" % n)
        b.write_config([entry("switch", "ok", ["sw.*"], config={"file": tmp("sw2.txt")},
                              max_inflight=64)])
        c.send(busp.ctl(77), json.dumps({"cmd": "reload"}))
        while True:
            d = c.recv()
            if d["cmd"] == busp.CTLREPLY:
                assert d["code"] == 200, d
                break
        before_reply = n
        for _ in range(300):
            n += 1
            c.publish("sw.x", b"%d" % n)

        def everything():
            got = [int(ln.split()[-1]) for f in ("sw1.txt", "sw2.txt") for ln in lines(f)]
            return got if len(set(got)) >= n else None
        wait_until(everything, 30, "all %d events handled" % n)
        old = [int(ln.split()[-1]) for ln in lines("sw1.txt")]
        late = [x for x in old if x > before_reply]
        assert not late, "the old generation got %d events published after the reply: %r" \
            % (len(late), late[:10])
        c.close()
    finally:
        assert b.stop() == 0


@test
def fatal_disables_the_instance_until_reload():
    plugins = [entry("doomed", "fatal", ["db.*"], config={"file": tmp("fatal.txt")})]
    b = Busd(plugins)
    try:
        b.wait_plugin("doomed")
        b.publish("db.write", ["w"])
        p = b.wait_plugin("doomed", "disabled")
        assert "database schema is gone" in p["error"], p
        assert p["fatal"] == 1 and p["running"] == 0, p
        assert lines("fatal.txt") == ["fatal db.write 1"], lines("fatal.txt")
        assert b.ctl({"cmd": "subscriptions"})["subscriptions"] == []
        assert "disabled until the next reload" in b.text()
        # a reload (same configuration) starts it again
        b.reload(plugins)
        b.wait_plugin("doomed")
    finally:
        assert b.stop() == 0


def start_crash_host(b, name, pattern, out, log, ack_wait_ms):
    """busd-plugin-host running the crash plugin as `name` against b, once
    its group is subscribed."""
    conf = write(name + ".json", json.dumps({
        "name": name, "patterns": [pattern], "ack_wait_ms": ack_wait_ms,
        "config": {"file": tmp(out)}}))
    hostlog = open(tmp(log), "wb")
    host = subprocess.Popen([HOST, so("crash"), "--config", conf, "-e", b.endpoint],
                            stdout=hostlog, stderr=hostlog)
    wait_until(lambda: any(s["group"] == "plugin." + name
                           for s in b.ctl({"cmd": "subscriptions"})["subscriptions"]),
               what="the plugin host to subscribe")
    return host


@test
def plugin_host_crash_while_events_keep_arriving_loses_nothing():
    # The crash plugin aborts on every first attempt, so the child keeps
    # dying while a publisher keeps going: each event must end up handled
    # (attempt >= 2, after a restart) or dead-lettered (the group's last
    # member gone with it: on_end dead-letter), never discarded.
    b = Busd([], name="crashbroker")
    host = None
    try:
        host = start_crash_host(b, "crashy2", "work.*", "crash2.txt", "host2.log", 300)
        sent = ["ev-%d" % i for i in range(12)]
        pub = Client(b.endpoint)
        pub.hello("steady")
        for ev in sent:                 # msg_id = payload: dead letters name it
            pub.publish("work.item", ev.encode(), msg_id=ev)
            time.sleep(0.15)

        def settled():
            handled = {ln.split()[-1] for ln in lines("crash2.txt") if ln.startswith("ok ")}
            dead = b.ctl({"cmd": "dlq-list", "topic": "work.#", "limit": 1000})["dead_letters"]
            missing = set(sent) - handled - {d["msg_id"] for d in dead}
            return (handled, dead) if not missing else None
        handled, dead = wait_until(settled, 60, "every event handled or dead-lettered")
        pub.close()
        st = b.ctl({"cmd": "stats"})
        assert st["discarded_on_end"] == 0, st
        assert all(d["subscription"] == "plugin.crashy2" for d in dead), dead
        print("# %d handled after a restart, %d dead-lettered" % (len(handled), len(dead)))
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=30)
        host = None
    finally:
        if host:
            host.kill()
            host.wait()
        assert b.stop() == 0


@test
def plugin_host_restarts_a_crashed_plugin_and_gets_the_event_again():
    b = Busd([], name="hostbroker")
    host = None
    try:
        host = start_crash_host(b, "crashy", "jobs.*", "crash.txt", "host.log", 500)
        b.publish("jobs.build", ["job-1"])
        wait_until(lambda: "ok jobs.build 2 job-1" in lines("crash.txt"), 15,
                   "the restarted child to handle attempt 2")
        assert lines("crash.txt") == ["crash jobs.build 1", "ok jobs.build 2 job-1"], \
            lines("crash.txt")
        with open(tmp("host.log")) as f:
            text = f.read()
        assert "killed by signal 6" in text and "restarting in" in text, text
        assert b.proc.poll() is None
        assert b.ctl({"cmd": "stats"})["dead_lettered"] == 0
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=20) == 0
        host = None
    finally:
        if host:
            host.kill()
            host.wait()
        assert b.stop() == 0


@test
def plugin_host_keeper_and_child_killed_while_events_keep_arriving():
    # SIGKILL the keeper, then the plugin child, while a publisher keeps
    # going: busd-plugin-host restarts each (busd-ctl plugins shows both
    # counts) and every event is handled at least once (counted by msg_id),
    # none discarded, busd up throughout.
    import re
    import threading
    b = Busd([], name="keeperbroker")
    host = None
    try:
        conf = write("held.json", json.dumps({
            "name": "held", "patterns": ["task.*"], "ack_wait_ms": 1000,
            "config": {"file": tmp("held.txt")}}))
        hostlog = open(tmp("held-host.log"), "wb")
        host = subprocess.Popen([HOST, so("ok"), "--config", conf, "-e", b.endpoint],
                                stdout=hostlog, stderr=hostlog)

        def report():
            p = b.plugins().get("held")
            return p if p and p.get("hosted") and p["pid"] > 0 else None
        first = wait_until(report, 30, "the host to report to busd")
        assert first["restarts"] == 0 and first["keeper_restarts"] == 0, first
        sent = ["t-%d" % i for i in range(400)]
        published = []

        def publisher():
            pub = Client(b.endpoint, timeout=10000)
            pub.hello("steady")
            last = 0
            for ev in sent:
                last = pub.publish("task.run", ev.encode(), msg_id=ev)
                published.append(ev)
                time.sleep(0.02)
            while True:
                d = pub.recv()
                if d["cmd"] == busp.PUBACK and d["seq"] >= last:
                    break
            pub.close()
        t = threading.Thread(target=publisher)
        t.start()

        def handled():
            return {ln.split()[-1] for ln in lines("held.txt") if ln.startswith("task.run ")}
        wait_until(lambda: len(handled()) >= 20, 30, "the first events handled")
        with open(tmp("held-host.log")) as f:
            keeper = int(re.findall(r"started the keeper of plugin 'held' in process (\d+)",
                                    f.read())[0])
        os.kill(keeper, signal.SIGKILL)
        after_keeper = wait_until(lambda: (report() or {}).get("keeper_restarts") == 1
                                  and report(), 30, "the keeper restarted and reporting")
        assert after_keeper["restarts"] == 0, after_keeper
        wait_until(lambda: len(handled()) >= len(published) - 5 and len(published) >= 150, 60,
                   "events handled after the keeper's restart")
        os.kill(after_keeper["pid"], signal.SIGKILL)
        after_child = wait_until(lambda: (report() or {}).get("restarts") == 1 and report(),
                                 30, "the plugin child restarted")
        assert after_child["pid"] != after_keeper["pid"], after_child
        assert after_child["keeper_restarts"] == 1, after_child
        t.join(120)
        assert not t.is_alive()
        wait_until(lambda: set(sent) <= handled(), 60, "every event handled")
        assert b.proc.poll() is None
        st = b.ctl({"cmd": "stats"})
        assert st["discarded_on_end"] == 0, st
        dead = b.ctl({"cmd": "dlq-list", "topic": "task.#", "limit": 1000})["dead_letters"]
        assert dead == [], dead
        n = len(lines("held.txt"))
        print("# %d events, %d handlings (at least once), keeper and child restarted once each"
              % (len(sent), n))
        with open(tmp("held-host.log")) as f:
            text = f.read()
        assert re.search(r"the keeper of plugin 'held' \(process %d, .*\) was killed by signal 9"
                         r".*; restarting it in \d+ ms \(keeper restart 1\)" % keeper, text), text
        assert "was killed by signal 9 (Killed); restarting in" in text, text
        assert "plugin host 'held'" in b.text() and "1 keeper restart" in b.text()
        # busd noticed the keeper's connection go, and said what holds the group
        assert re.search(r"plugin host 'held' \(process \d+\): its keeper "
                         r"'plugin.held/keeper' \(s\d+\) disconnected", b.text()), b.text()
        tools = os.environ.get("BUSD_TOOLS", "src/tools")
        r = subprocess.run([os.path.join(tools, "busd-ctl"), "-e", b.endpoint, "plugins"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        head = r.stdout.splitlines()[0].split()
        row = [ln.split() for ln in r.stdout.splitlines()[1:] if ln.startswith("held ")][0]
        assert row[head.index("RESTARTS")] == "1", r.stdout
        assert row[head.index("KEEPER_RESTARTS")] == "1", r.stdout
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=30) == 0
        host = None
    finally:
        if host:
            host.kill()
            host.wait()
        assert b.stop() == 0


@test
def plugin_host_children_end_with_a_killed_host():
    # The supervisor SIGKILLed: its plugin child and keeper must not run on
    # unsupervised (each gets SIGTERM when its parent dies).
    import re
    b = Busd([], name="orphanbroker")
    host = None
    try:
        conf = write("orphan.json", json.dumps({
            "name": "orphan", "patterns": ["orph.*"], "config": {"file": tmp("orphan.txt")}}))
        hostlog = open(tmp("orphan-host.log"), "wb")
        host = subprocess.Popen([HOST, so("ok"), "--config", conf, "-e", b.endpoint],
                                stdout=hostlog, stderr=hostlog)
        rep = wait_until(lambda: (b.plugins().get("orphan") or {}).get("pid"), 30,
                         "the host to report")
        with open(tmp("orphan-host.log")) as f:
            keeper = int(re.findall(r"started the keeper of plugin 'orphan' in process (\d+)",
                                    f.read())[0])
        host.kill()
        host.wait()
        host = None

        def ended(pid):
            try:
                with open("/proc/%d/status" % pid) as f:
                    return any(ln.startswith("State:") and "Z" in ln.split()[1] for ln in f)
            except FileNotFoundError:
                return True
        wait_until(lambda: ended(rep) and ended(keeper), 30, "the children to end")
    finally:
        if host:
            host.kill()
            host.wait()
        assert b.stop() == 0


@test
def plugin_host_command_line():
    r = subprocess.run([HOST, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--max-restarts" in r.stdout, r
    r = subprocess.run([HOST, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "plugin ABI 1." in r.stdout, r
    r = subprocess.run([HOST, "--bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r
    r = subprocess.run([HOST, tmp("none.so"), "-p", "a"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 78 and tmp("none.so") in r.stderr, r
    r = subprocess.run([HOST, so("abi-mismatch"), "--patterns", "a", "b", "-e",
                        "tcp://127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 78, r
    assert "built for plugin ABI 99.0, this busd-plugin-host speaks 1." in r.stderr, r.stderr
    r = subprocess.run([HOST, so("ok")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 78 and "key 'patterns' is required" in r.stderr, r.stderr


if __name__ == "__main__":
    only = sys.argv[1:]         # names of tests to run (default: all)
    rc = busp.run_tests([t for t in TESTS if not only or t.__name__ in only],
                        shared_broker=False)
    if rc == 0:
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print("logs and configurations kept in %s" % TMP)
    sys.exit(rc)
