#!/usr/bin/env python3
"""What operators and plugin authors tripped over in their first hour with
busd (issue 16), against real busd processes: --check-config reports every
error in one run (plugins' own check_config included); one rule for
relative paths (the configuration file's directory) and plugin_dir; ISO
8601 one-line logs and a reload that names what changed; /healthz (200
serving, 503 draining) beside /metrics, every metric with HELP and TYPE
(promtool check metrics); the systemd watchdog ping; a metrics port in use
named in busd's own words; host functions called from a plugin's own
thread; busd-plugin-host exiting 78 on configuration errors."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import Client, free_port  # noqa: E402

BUSD = os.environ.get("BUSD_BIN", "src/broker/busd")
TOP = os.path.abspath(os.environ.get("BUSD_TOP_BUILDDIR", "."))
TOOLS = os.environ.get("BUSD_TOOLS", os.path.join(TOP, "src", "tools"))
HOST = os.path.join(TOOLS, "busd-plugin-host")
TESTPLUGINS = os.path.join(TOP, "tests", "plugins", ".libs")
FILEPLUGIN_DIR = os.path.join(TOP, "plugins", "file", ".libs")
TMP = tempfile.mkdtemp(prefix="busd-firsthour-")
TESTS = []
ISO = re.compile(r"^[DINWE]: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


def test(fn):
    TESTS.append(fn)
    return fn


def tmp(*parts):
    return os.path.join(TMP, *parts)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_until(fn, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def check_config(path, *extra, cwd=None):
    r = subprocess.run([BUSD, "--check-config", "-c", path] + list(extra), capture_output=True,
                       text=True, timeout=60, cwd=cwd)
    return r.returncode, r.stdout + r.stderr


class Busd:
    """busd -c CONFIG, run from another directory; log in a file."""

    def __init__(self, conf, *args, cwd=None, env=None, port=None):
        self.port = port
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.logpath = conf + ".log"
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen([BUSD, "-c", conf] + list(args), stdout=self.log,
                                     stderr=self.log, cwd=cwd or TMP, env=env)
        def up():
            try:
                c = Client(self.endpoint, timeout=200)
                c.hello()
                c.close()
                return True
            except Exception:
                assert self.proc.poll() is None, "busd exited:\n" + self.text()
                return False
        wait_until(up, 20, "busd to answer HELLO")

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

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.log.close()
        return rc


def publish(endpoint, topic, payloads):
    c = Client(endpoint)
    try:
        c.hello("test-pub")
        last = 0
        for p in payloads:
            last = c.publish(topic, p.encode())
        while True:
            d = c.recv()
            if d["cmd"] == busp.PUBACK and d["seq"] >= last:
                return
    finally:
        c.close()


def http(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---------------------------------------------------------------- --check-config


@test
def check_config_reports_every_error_in_one_run():
    rel_dir = os.path.relpath(FILEPLUGIN_DIR, tmp("cc"))
    conf = write(tmp("cc", "busd.json"), json.dumps({
        "queue_limt": 5,                                     # top-level typo
        "bind": "tcp://127.0.0.1:99999",                     # port out of range
        "plugin_dir": rel_dir,
        "plugins": [
            {"name": "audit", "path": "file", "patterns": ["a.#"],
             "config": {"pth": "audit.jsonl"}},              # the plugin's own typo
            {"name": "audit", "path": "missing.so", "patterns": ["b"]},   # dup + missing
            {"name": "mqtt", "path": "file", "patterns": ["user.+"],
             "config": {"path": "x.jsonl"}},                 # MQTT wildcard
        ]}, indent=2))
    rc, out = check_config(conf, cwd="/")
    assert rc == 2, (rc, out)
    for needle in ["unknown key 'queue_limt'", "99999", "unknown key \"pth\"",
                   "\"path\" is required", "another plugin is already called 'audit'",
                   "missing.so", "did you mean 'user.*'"]:
        assert needle in out, (needle, out)
    assert "plugins[0] ('audit'): key 'config'" in out, out
    # A sound configuration passes, the file plugin's own check included.
    conf = write(tmp("cc", "good.json"), json.dumps({
        "plugin_dir": rel_dir,
        "plugins": [{"name": "audit", "path": "file", "patterns": ["a.#"],
                     "config": {"path": "audit.jsonl"}}]}))
    rc, out = check_config(conf, cwd="/")
    assert rc == 0 and "configuration OK" in out, (rc, out)


# ---------------------------------------------------------------- paths


@test
def relative_paths_follow_the_configuration_file():
    # busd runs from TMP; the configuration lives in TMP/conf.  plugin_dir
    # and the file plugin's own "path" are both relative to TMP/conf.
    port = free_port()
    conf_dir = tmp("conf")
    conf = write(os.path.join(conf_dir, "busd.json"), json.dumps({
        "bind": "tcp://127.0.0.1:%d" % port,
        "plugin_dir": os.path.relpath(FILEPLUGIN_DIR, conf_dir),
        "plugins": [{"name": "audit", "path": "file", "patterns": ["audit.#"],
                     "config": {"path": "out/audit.jsonl", "fsync": "always"}}]}))
    os.makedirs(os.path.join(conf_dir, "out"), exist_ok=True)
    b = Busd(conf, cwd=TMP, port=port)
    try:
        wait_until(lambda: any(p["state"] == "running" for p in b.ctl({"cmd": "plugins"})["plugins"]),
                   what="the file plugin to run")
        publish(b.endpoint, "audit.x", ["hello"])
        target = os.path.join(conf_dir, "out", "audit.jsonl")
        wait_until(lambda: os.path.exists(target) and "hello" in open(target).read(),
                   what="the event in conf/out/audit.jsonl")
        assert not os.path.exists(tmp("out", "audit.jsonl"))
    finally:
        assert b.stop() == 0


# ---------------------------------------------------------------- logs


@test
def logs_are_iso_one_line_and_a_reload_names_what_changed():
    port = free_port()
    conf = tmp("logs", "busd.json")
    write(conf, json.dumps({"bind": "tcp://127.0.0.1:%d" % port, "credit": 100}))
    b = Busd(conf, port=port)
    try:
        first = b.text().splitlines()[0]
        assert ISO.match(first), first
        write(conf, json.dumps({"bind": "tcp://127.0.0.1:%d" % port, "credit": 50,
                                "pub_credit": 10}))
        b.proc.send_signal(signal.SIGHUP)
        line = wait_until(lambda: [l for l in b.text().splitlines()
                                   if "configuration reloaded" in l], what="the reload line")[0]
        assert "2 settings changed: pub_credit, credit" in line, line
        write(conf, '{ "credit": "many",\n  "queue_limt": 1 }')
        b.proc.send_signal(signal.SIGHUP)
        failed = wait_until(lambda: [l for l in b.text().splitlines() if "reload failed" in l],
                            what="the failed reload line")
        assert len(failed) == 1 and "'credit'" in failed[0] and "queue_limt" in failed[0], failed
        # Every line of the log is one stamped event.
        assert all(ISO.match(l) for l in b.text().splitlines()), b.text()
    finally:
        assert b.stop() == 0


# ---------------------------------------------------------------- health and metrics


@test
def healthz_metrics_and_promtool():
    port, mport = free_port(), free_port()
    conf = write(tmp("metrics", "busd.json"), json.dumps({
        "bind": "tcp://127.0.0.1:%d" % port, "metrics_bind": "127.0.0.1:%d" % mport,
        "drain_timeout_ms": 20000,
        "plugins": [{"name": "slow", "path": os.path.join(TESTPLUGINS, "slow.so"),
                     "patterns": ["slow.#"], "max_inflight": 1,
                     "config": {"sleep_ms": 300}}]}))
    b = Busd(conf, port=port)
    try:
        status, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(
            http("http://127.0.0.1:%d/healthz" % mport)), what="/healthz")
        assert body.strip() == "serving", body
        publish(b.endpoint, "slow.x", ["e%d" % i for i in range(10)])
        time.sleep(1.2)     # /metrics is rendered once a second
        status, text = http("http://127.0.0.1:%d/metrics" % mport)
        assert status == 200
        families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
        samples = set(re.findall(r"^(busd_[a-z_]+)", text, re.M))
        assert samples <= families and families == helps, (samples - families, families ^ helps)
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"], input=text,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        # Draining (the slow plugin still works through its events): 503.
        b.proc.send_signal(signal.SIGTERM)
        status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(
            http("http://127.0.0.1:%d/healthz" % mport)), 15, "/healthz 503")
        assert body.strip() == "draining", body
    finally:
        assert b.stop() == 0


@test
def metrics_port_in_use_is_named():
    mport = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", mport))
    holder.listen(1)
    try:
        r = subprocess.run([BUSD, "-b", "tcp://127.0.0.1:%d" % free_port(), "--metrics",
                            "127.0.0.1:%d" % mport], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, r
        assert "metrics_bind 127.0.0.1:%d" % mport in r.stderr and "in use" in r.stderr, r.stderr
        assert "Failed to bind" not in r.stderr, r.stderr
    finally:
        holder.close()


@test
def watchdog_pings_from_the_loop():
    path = tmp("notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(10)
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="300000")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([BUSD, "--bind", "tcp://127.0.0.1:%d" % port], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        got = []
        while sum("WATCHDOG=1" in m for m in got) < 3:
            got.append(srv.recv(4096).decode())
        assert any("READY=1" in m for m in got), got
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        srv.close()


# ---------------------------------------------------------------- plugins


@test
def host_functions_from_a_plugins_own_thread():
    port = free_port()
    conf = write(tmp("threads", "busd.json"), json.dumps({
        "bind": "tcp://127.0.0.1:%d" % port,
        "plugins": [{"name": "threads", "path": os.path.join(TESTPLUGINS, "threads.so"),
                     "patterns": ["threads.in"], "config": {"topic": "threads.out",
                                                            "count": 300}}]}))
    # The subscriber must exist before the worker publishes: start busd
    # with the plugin disabled, subscribe, then enable it by reload.
    cfg = json.load(open(conf))
    cfg["plugins"][0]["enabled"] = False
    write(conf, json.dumps(cfg))
    b = Busd(conf, port=port)
    try:
        c = Client(b.endpoint, timeout=10000)
        c.hello("threads-sub")
        c.send(busp.sub(1, "threads.out"), json.dumps({"credit": 100000}))
        c.expect(busp.SUBOK)
        cfg["plugins"][0]["enabled"] = True
        write(conf, json.dumps(cfg))
        b.proc.send_signal(signal.SIGHUP)
        got = sorted(int(c.expect(busp.DELIVER)["payload"]) for _ in range(300))
        assert got == list(range(300)), got[:10]
        p = wait_until(lambda: [p for p in b.ctl({"cmd": "plugins"})["plugins"]
                                if p.get("metrics", {}).get("thread_published") == 300],
                       what="the metric from the thread")
        assert p
        c.close()
    finally:
        assert b.stop() == 0


@test
def plugin_host_config_errors_exit_78():
    # The plugin's own check (file: no "path") fails before any connection.
    entry = write(tmp("host", "file.json"), json.dumps({
        "name": "audit", "patterns": ["a.#"], "config": {"pth": "x"}}))
    r = subprocess.run([HOST, os.path.join(FILEPLUGIN_DIR, "file.so"), "--config", entry,
                        "-e", "127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78 and "unknown key \"pth\"" in r.stderr, r
    # init returning -EINVAL (a configuration error) is not restarted forever.
    port = free_port()
    conf = write(tmp("host", "busd.json"), json.dumps({"bind": "tcp://127.0.0.1:%d" % port}))
    b = Busd(conf, port=port)
    try:
        entry = write(tmp("host", "initfails.json"), json.dumps({
            "name": "mailer", "patterns": ["user.created"]}))
        r = subprocess.run([HOST, os.path.join(TESTPLUGINS, "init-fails.so"), "--config", entry,
                            "-e", b.endpoint], capture_output=True, text=True, timeout=120)
        assert r.returncode == 78, r
        assert "missing api_key" in r.stderr and "not restarting" in r.stderr, r.stderr
        assert "restarting in" not in r.stderr, r.stderr
    finally:
        assert b.stop() == 0


def main():
    failed = 0
    for fn in TESTS:
        try:
            fn()
            print("ok - %s" % fn.__name__)
        except Exception:
            failed += 1
            print("FAIL - %s" % fn.__name__)
            import traceback
            traceback.print_exc(file=sys.stdout)
    if failed == 0:
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print("kept %s" % TMP)
    print("%d passed, %d failed" % (len(TESTS) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
