#!/usr/bin/python3
"""The plugins shipped in plugins/ against real things, without a broker:
src/tools/busd-plugin-driver loads each .so as busd does and prints what
on_event answered.  file.so writes real files (and follows a rename plus
reload like logrotate), exec.so runs real commands (exit codes, stderr
tails, timeouts that kill the whole process group, no leaked descriptors
or zombies), webhook.so posts to a real HTTP server started here."""
import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOP = os.environ.get("BUSD_TOP_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DRIVER = os.path.join(os.environ.get("BUSD_TOOLS", os.path.join(TOP, "src", "tools")),
                      "busd-plugin-driver")
TMP = tempfile.mkdtemp(prefix="busd-plugins-")
TESTS = []


def plugin(name):
    for path in (os.path.join(TOP, "plugins", name, ".libs", name + ".so"),
                 os.path.join(TOP, "plugins", name, name + ".so")):
        if os.path.exists(path):
            return path
    raise FileNotFoundError("plugins/%s/%s.so is not built" % (name, name))


def test(fn):
    TESTS.append(fn)
    return fn


def write_config(name, config):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def driver_env():
    env = dict(os.environ)
    # libcurl would send 127.0.0.1 through a proxy from the environment.
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    return env


def run(name, config, *commands, timeout=60):
    """One driver run over the given commands: (answer lines, stderr)."""
    # Commands go through stdin: a 4 MiB payload does not fit in argv.
    args = [DRIVER, "-c", write_config(name + ".json", config), plugin(name)]
    r = subprocess.run(args, input="".join(json.dumps(c) + "\n" for c in commands),
                       capture_output=True, text=True, timeout=timeout, env=driver_env())
    lines = r.stdout.splitlines()
    assert r.returncode in (0, 2), (r.returncode, r.stdout, r.stderr)
    return lines, r.stderr


class Driver:
    """A driver kept running, fed one command at a time."""

    def __init__(self, name, config):
        self.proc = subprocess.Popen(
            [DRIVER, "-c", write_config(name + ".json", config), plugin(name)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(
                os.path.join(TMP, name + ".stderr"), "ab"), env=driver_env())

    def send(self, command, timeout=30):
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "no answer to %r within %ss" % (command, timeout)
        line = self.proc.stdout.readline().decode().rstrip("\n")
        assert line, "driver exited (see %s)" % TMP
        return line

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        assert rc == 0, rc


# ---------------------------------------------------------------- file


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n"), data[-50:]
    return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]


@test
def file_writes_json_lines():
    path = os.path.join(TMP, "events.jsonl")
    text = 'héllo "quoted" \\ back\nslash\ttab \u2603 \x01'
    binary = bytes(range(256))
    lines, err = run("file", {"path": path, "fsync": "always"},
                     {"topic": "user.created", "payload": text, "msg_id": "m-1",
                      "headers": {"source": "web", "trace": "a\"b"}, "attempt": 2,
                      "ts_us": 1700000000123456, "delivery_id": 9},
                     {"topic": "blob.put", "payload_base64": base64.b64encode(binary).decode()},
                     {"topic": "empty.one", "payload": ""},
                     {"topic": "seq.x", "payload": "{\"json\": true}", "stream_seq": 42})
    assert lines == ["OK"] * 4, (lines, err)
    events = read_lines(path)
    assert len(events) == 4, events
    first = events[0]
    assert first == {"topic": "user.created", "msg_id": "m-1", "ts_us": 1700000000123456,
                     "attempt": 2, "headers": {"source": "web", "trace": "a\"b"},
                     "payload": text}, first
    second = events[1]
    assert "payload" not in second and base64.b64decode(second["payload_base64"]) == binary, second
    assert second["msg_id"] == "" and second["headers"] == {} and second["attempt"] == 1, second
    assert events[2]["payload"] == "", events[2]
    # A JSON payload is kept as text, not merged into the line.
    assert events[3]["payload"] == "{\"json\": true}" and events[3]["stream_seq"] == 42, events[3]


@test
def file_appends_to_existing():
    path = os.path.join(TMP, "append.jsonl")
    with open(path, "w") as f:
        f.write('{"old": true}\n')
    lines, _ = run("file", {"path": path, "fsync": "never"}, {"topic": "a", "payload": "x"})
    assert lines == ["OK"], lines
    events = read_lines(path)
    assert events[0] == {"old": True} and events[1]["topic"] == "a", events


@test
def file_rotation_by_rename_and_reload():
    path = os.path.join(TMP, "rotate.jsonl")
    d = Driver("file", {"path": path})
    try:
        assert d.send({"topic": "r", "payload": "1"}) == "OK"
        os.rename(path, path + ".1")        # logrotate: rename...
        assert d.send({"topic": "r", "payload": "2"}) == "OK"   # still the open file
        assert not os.path.exists(path)
        assert d.send({"cmd": "reload"}) == "RELOAD 0"          # ...then SIGHUP
        assert os.path.exists(path)
        assert d.send({"topic": "r", "payload": "3"}) == "OK"
        assert d.send({"topic": "r", "payload": "4"}) == "OK"
        assert d.send({"cmd": "tick"}) == "TICK"
    finally:
        d.close()
    assert [e["payload"] for e in read_lines(path + ".1")] == ["1", "2"]
    assert [e["payload"] for e in read_lines(path)] == ["3", "4"]


@test
def file_reload_failure_keeps_old_file():
    sub = os.path.join(TMP, "sub")
    os.mkdir(sub)
    path = os.path.join(sub, "keep.jsonl")
    d = Driver("file", {"path": path})
    try:
        assert d.send({"topic": "k", "payload": "1"}) == "OK"
        os.rename(path, os.path.join(TMP, "keep.moved"))
        os.chmod(sub, 0o500)                 # the new file cannot be created
        if os.access(sub, os.W_OK):          # root ignores permissions
            os.chmod(sub, 0o700)
            shutil.rmtree(sub)
            os.mkdir(sub)
            os.rmdir(sub)                    # a missing directory fails for root too
        answer = d.send({"cmd": "reload"})
        assert answer.startswith("RELOAD -"), answer
        assert d.send({"topic": "k", "payload": "2"}) == "OK"
    finally:
        d.close()
        if os.path.isdir(sub):
            os.chmod(sub, 0o700)
    assert [e["payload"] for e in read_lines(os.path.join(TMP, "keep.moved"))] == ["1", "2"]
    log = open(os.path.join(TMP, "file.stderr")).read()
    assert "reload: cannot open" in log and "still appending" in log, log


@test
def file_write_error_is_retry():
    lines, _ = run("file", {"path": "/dev/full"}, {"topic": "t", "payload": "x"})
    assert len(lines) == 1 and lines[0].startswith("RETRY 0 file: write to /dev/full failed: "), lines
    assert "No space left" in lines[0], lines


@test
def file_config_errors():
    lines, _ = run("file", {})
    assert lines and lines[0].startswith("INIT -22 ") and '"path" is required' in lines[0], lines
    lines, _ = run("file", {"path": os.path.join(TMP, "x.jsonl"), "fsync": "sometimes"})
    assert lines and '"fsync" is "sometimes"' in lines[0], lines
    lines, _ = run("file", {"path": os.path.join(TMP, "no", "such", "dir.jsonl")})
    assert lines and "cannot open" in lines[0] and "No such file" in lines[0], lines


# ---------------------------------------------------------------- exec


@test
def exec_exit_codes():
    script = os.path.join(TMP, "exit.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\necho "about to exit $CODE" >&2\nexit "$CODE"\n')
    os.chmod(script, 0o755)
    for code, expect in ((0, "OK"), (75, "RETRY 0 exit 75: about to exit 75"),
                         (3, "FAIL exit 3: about to exit 3")):
        lines, err = run("exec", {"command": [script], "env": {"CODE": code}}, {"topic": "t"})
        assert lines == [expect], (code, lines, err)


@test
def exec_stderr_tail_in_reason():
    # 100 kB of stderr: the reason carries only its last ~200 bytes.
    cmd = "i=0; while [ $i -lt 2000 ]; do echo 'noise noise noise noise noise' >&2; " \
          "i=$((i+1)); done; echo 'the real problem: disk full' >&2; exit 3"
    lines, _ = run("exec", {"command": cmd}, {"topic": "t"})
    assert len(lines) == 1 and lines[0].startswith("FAIL exit 3: ..."), lines
    assert lines[0].endswith("the real problem: disk full"), lines
    assert len(lines[0]) < 260, len(lines[0])


@test
def exec_environment_and_stdin():
    out = os.path.join(TMP, "exec-env")
    os.mkdir(out)
    cmd = 'cat > "$OUT/stdin.bin"; env > "$OUT/env.txt"'
    payload = bytes(range(256)) * 4096          # 1 MiB: more than a pipe holds
    lines, err = run("exec", {"command": cmd, "env": {"OUT": out, "EXTRA": "yes", "NUM": 7}},
                     {"topic": "user.created", "payload_base64": base64.b64encode(payload).decode(),
                      "msg_id": "abc-1", "headers": {"k": "v"}, "attempt": 3,
                      "delivery_id": 77, "ts_us": 123, "stream_seq": 5})
    assert lines == ["OK"], (lines, err)
    with open(os.path.join(out, "stdin.bin"), "rb") as f:
        assert f.read() == payload
    env = dict(line.split("=", 1) for line in open(os.path.join(out, "env.txt")).read().splitlines()
               if "=" in line)
    assert env["BUSD_TOPIC"] == "user.created", env
    assert env["BUSD_MSG_ID"] == "abc-1" and env["BUSD_ATTEMPT"] == "3", env
    assert env["BUSD_DELIVERY_ID"] == "77" and env["BUSD_TS_US"] == "123", env
    assert env["BUSD_STREAM_SEQ"] == "5" and env["BUSD_INSTANCE"] == "exec", env
    assert json.loads(env["BUSD_HEADERS"]) == {"k": "v"}, env
    assert env["EXTRA"] == "yes" and env["NUM"] == "7", env
    assert "PATH" in env, env                   # inherited


@test
def exec_argv_form_is_not_shell():
    out = os.path.join(TMP, "argv.txt")
    lines, _ = run("exec", {"command": ["/usr/bin/env", "python3", "-c",
                                        "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                                        out, "$NOT_EXPANDED; `nor this`"]},
                   {"topic": "t"})
    assert lines == ["OK"], lines
    assert open(out).read() == "$NOT_EXPANDED; `nor this`"


@test
def exec_child_ignoring_stdin():
    # The child exits without reading 4 MiB of payload: the write gets EPIPE,
    # which must neither kill the host (SIGPIPE) nor change the answer.
    payload = base64.b64encode(b"x" * (4 << 20)).decode()
    lines, err = run("exec", {"command": ["true"]}, {"topic": "t", "payload_base64": payload},
                     {"topic": "t", "payload_base64": payload})
    assert lines == ["OK", "OK"], (lines, err)


@test
def exec_killed_by_signal():
    lines, _ = run("exec", {"command": "echo dying >&2; kill -KILL $$"}, {"topic": "t"})
    assert lines == ["FAIL killed by signal 9 (Killed): dying"], lines


@test
def exec_timeout_kills_process_group():
    pidfile = os.path.join(TMP, "bg.pid")
    # The shell starts a background sleep in the same process group; the
    # timeout must take it down too.
    cmd = "sleep 30 & echo $! > %s; echo started >&2; wait" % pidfile
    start = time.monotonic()
    # 1 s leaves the shell time to start even on a loaded machine.
    lines, err = run("exec", {"command": cmd, "timeout_ms": 1000}, {"topic": "t"})
    elapsed = time.monotonic() - start
    assert lines == ["RETRY 0 timed out after 1000 ms: started"], (lines, err)
    assert elapsed < 5, elapsed
    bg = int(open(pidfile).read())
    for _ in range(50):
        if not os.path.exists("/proc/%d" % bg) or \
                open("/proc/%d/stat" % bg).read().split(")")[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(bg, signal.SIGKILL)
        raise AssertionError("background child %d survived the timeout" % bg)


@test
def exec_timeout_sleep():
    start = time.monotonic()
    lines, _ = run("exec", {"command": ["sleep", "10"], "timeout_ms": 200}, {"topic": "t"})
    assert lines == ["RETRY 0 timed out after 200 ms"], lines
    assert time.monotonic() - start < 5


@test
def exec_timeout_sigkill_after_grace():
    start = time.monotonic()
    lines, _ = run("exec", {"command": "trap '' TERM; sleep 10 & wait; sleep 10",
                            "timeout_ms": 200, "kill_grace_ms": 300}, {"topic": "t"})
    assert lines == ["RETRY 0 timed out after 200 ms"], lines
    assert time.monotonic() - start < 5


@test
def exec_no_fd_or_zombie_leak():
    d = Driver("exec", {"command": "cat > /dev/null; echo out; echo err >&2"})
    try:
        pid = d.proc.pid
        assert d.send({"topic": "t", "payload": "warm"}) == "OK"
        fds_before = len(os.listdir("/proc/%d/fd" % pid))
        for i in range(40):
            assert d.send({"topic": "t", "payload": "x" * i}) == "OK"
        fds_after = len(os.listdir("/proc/%d/fd" % pid))
        assert fds_after == fds_before, (fds_before, fds_after)
        children = []
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                children += f.read().split()
        assert children == [], children
    finally:
        d.close()


@test
def exec_inherits_no_descriptors():
    out = os.path.join(TMP, "fds.txt")
    lines, _ = run("exec", {"command": "ls /proc/self/fd > %s" % out}, {"topic": "t"})
    assert lines == ["OK"], lines
    fds = sorted(int(x) for x in open(out).read().split())
    # 0-2 plus the one ls opened to read the directory.
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4, fds


@test
def exec_config_errors():
    lines, _ = run("exec", {})
    assert lines and lines[0].startswith("INIT -22") and '"command" is required' in lines[0], lines
    lines, _ = run("exec", {"command": ["no-such-program-anywhere"]})
    assert lines and "not found in PATH" in lines[0], lines
    lines, _ = run("exec", {"command": "true", "max_concurrency": 4})
    assert lines and '"instances": 4' in lines[0], lines
    lines, _ = run("exec", {"command": "true", "timout_ms": 5})
    assert lines and 'unknown key "timout_ms"' in lines[0], lines
    lines, _ = run("exec", {"command": "true", "timeout_ms": "soon"})
    assert lines and '"timeout_ms" must be an integer' in lines[0], lines


# ---------------------------------------------------------------- webhook


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, as real servers do
    requests = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.requests.append({"path": self.path, "headers": dict(self.headers),
                                  "body": body, "peer": self.client_address})
        if self.path == "/slow":
            time.sleep(2)
        status, extra, reply = {
            "/ok": (200, {}, b""),
            "/created": (201, {}, b"{}"),
            "/busy": (503, {"Retry-After": "2"}, b"maintenance"),
            "/throttle": (429, {}, b"slow down"),
            "/bad": (400, {}, b'{"error": "invalid email"}\n' + b"x" * 1000),
            "/moved": (301, {"Location": "/ok"}, b""),
            "/slow": (200, {}, b""),
        }.get(self.path, (404, {}, b"no such path"))
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True    # /slow: the client gave up first


def start_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


@test
def webhook_status_codes():
    server, base = start_server()
    try:
        Recorder.requests = []
        payload = bytes(range(256))
        lines, err = run("webhook", {"url": base + "/ok"},
                         {"topic": "user.created", "payload_base64": base64.b64encode(payload).decode(),
                          "msg_id": "u-42", "attempt": 2, "headers": {"source": "web"}})
        assert lines == ["OK"], (lines, err)
        req = Recorder.requests[0]
        h = {k.lower(): v for k, v in req["headers"].items()}
        assert req["body"] == payload, req
        assert h["x-busd-topic"] == "user.created" and h["x-busd-msg-id"] == "u-42", h
        assert h["x-busd-attempt"] == "2" and h["x-busd-header-source"] == "web", h
        assert h["content-type"] == "application/octet-stream", h
        assert "expect" not in h, h

        lines, _ = run("webhook", {"url": base + "/created"}, {"topic": "t", "payload": "x"})
        assert lines == ["OK"], lines
        lines, _ = run("webhook", {"url": base + "/busy"}, {"topic": "t", "payload": "x"})
        assert lines == ["RETRY 2000 HTTP 503: maintenance"], lines
        lines, _ = run("webhook", {"url": base + "/throttle"}, {"topic": "t", "payload": "x"})
        assert lines == ["RETRY 0 HTTP 429: slow down"], lines
        lines, _ = run("webhook", {"url": base + "/bad"}, {"topic": "t", "payload": "x"})
        assert len(lines) == 1 and lines[0].startswith('FAIL HTTP 400: {"error": "invalid email"} xxx'), lines
        assert len(lines[0]) < 240, lines        # the first 200 bytes of the body only
        lines, _ = run("webhook", {"url": base + "/moved"}, {"topic": "t"})
        assert len(lines) == 1 and lines[0].startswith("FAIL HTTP 301 (redirects are not followed"), lines
        lines, _ = run("webhook", {"url": base + "/nowhere"}, {"topic": "t"})
        assert lines == ["FAIL HTTP 404: no such path"], lines
    finally:
        server.shutdown()


@test
def webhook_config_headers_and_keepalive():
    server, base = start_server()
    try:
        Recorder.requests = []
        lines, err = run("webhook", {"url": base + "/ok", "content_type": "application/json",
                                     "headers": {"Authorization": "Bearer s3cret"},
                                     "forward_headers": False},
                         *[{"topic": "k.%d" % i, "payload": "{}", "headers": {"a": "b"}}
                           for i in range(5)])
        assert lines == ["OK"] * 5, (lines, err)
        assert len(Recorder.requests) == 5
        for req in Recorder.requests:
            h = {k.lower(): v for k, v in req["headers"].items()}
            assert h["authorization"] == "Bearer s3cret" and h["content-type"] == "application/json", h
            assert "x-busd-header-a" not in h and "x-busd-msg-id" not in h, h
        # One connection for all five: the handle is reused.
        assert len({r["peer"] for r in Recorder.requests}) == 1, [r["peer"] for r in Recorder.requests]
    finally:
        server.shutdown()


@test
def webhook_header_injection_is_neutralised():
    server, base = start_server()
    try:
        Recorder.requests = []
        lines, _ = run("webhook", {"url": base + "/ok"},
                       {"topic": "t", "headers": {"evil\r\nX-Injected": "v\r\nX-Also: 1"}})
        assert lines == ["OK"], lines
        h = {k.lower(): v for k, v in Recorder.requests[0]["headers"].items()}
        assert "x-injected" not in h and "x-also" not in h, h
    finally:
        server.shutdown()


@test
def webhook_timeout_and_refused():
    server, base = start_server()
    try:
        start = time.monotonic()
        lines, _ = run("webhook", {"url": base + "/slow", "timeout_ms": 300}, {"topic": "t"})
        assert lines == ["RETRY 0 POST %s/slow timed out after 300 ms" % base], lines
        assert time.monotonic() - start < 2
    finally:
        server.shutdown()
        server.server_close()
    lines, _ = run("webhook", {"url": base + "/ok"}, {"topic": "t"})
    assert len(lines) == 1 and lines[0].startswith("RETRY 0 POST ") and "onnect" in lines[0], lines


@test
def webhook_config_errors():
    lines, _ = run("webhook", {})
    assert lines and '"url" is required' in lines[0], lines
    lines, _ = run("webhook", {"url": "ftp://example.com/x"})
    assert lines and "must start with http:// or https://" in lines[0], lines
    lines, _ = run("webhook", {"url": "http://x", "headers": {"Bad Name": "v"}})
    assert lines and "valid header name" in lines[0], lines


# ---------------------------------------------------------------- example


@test
def example_counts():
    lines, err = run("example", {"report_every": 2}, *[{"topic": "e"}] * 5)
    assert lines == ["OK"] * 5, lines
    assert err.count("events so far") == 2 and "stopping after 5 events" in err, err
    lines, _ = run("example", {"report_every": 0})
    assert lines and '"report_every" is 0' in lines[0], lines


# ---------------------------------------------------------------- check_config


def check(name, config):
    """busd-plugin-driver --check: (exit status, CONFIG lines)."""
    r = subprocess.run([DRIVER, "--check", "-c", write_config(name + "-check.json", config),
                        plugin(name)], capture_output=True, text=True, timeout=60,
                       env=driver_env())
    return r.returncode, r.stdout.splitlines()


@test
def shipped_plugins_check_their_config():
    # What busd --check-config runs (plugin ABI 1.1): every shipped plugin
    # says what is wrong before anything starts, and accepts a good config.
    good = {
        "file": {"path": os.path.join(TMP, "ok.jsonl")},
        "exec": {"command": ["/bin/true"]},
        "webhook": {"url": "http://127.0.0.1:9/x"},
        "example": {"report_every": 3},
    }
    for name, config in good.items():
        rc, lines = check(name, config)
        assert rc == 0 and lines == ["CONFIG OK"], (name, rc, lines)
    rc, lines = check("file", {"pth": "typo.jsonl"})
    assert rc == 78 and any('unknown key "pth"' in l for l in lines) \
        and any('"path" is required' in l for l in lines), lines
    rc, lines = check("file", {"path": "/nonexistent-dir/x.jsonl"})
    assert rc == 78 and "cannot be created" in lines[0], lines
    rc, lines = check("exec", {"command": "/bin/true", "timeout": 5})
    assert rc == 78 and 'unknown key "timeout"' in lines[0], lines
    # Every unknown key, and then the first problem with the rest.
    rc, lines = check("exec", {"timeout": 5, "envv": {}})
    assert rc == 78 and len(lines) == 3 and 'unknown key "timeout"' in lines[0] \
        and 'unknown key "envv"' in lines[1] and '"command" is required' in lines[2], lines
    rc, lines = check("file", {"pth": "x", "fsnc": "always", "path": "/tmp/x.jsonl"})
    assert rc == 78 and len(lines) == 2, lines
    rc, lines = check("webhook", {"url": "ftp://example.com/x"})
    assert rc == 78 and "http://" in lines[0], lines
    # The real host's accessors: 1.5 is not an integer (the old test driver
    # truncated it to 1 and the plugin accepted it).
    rc, lines = check("example", {"report_every": 1.5})
    assert rc == 78 and "whole number" in lines[0], lines


@test
def driver_uses_the_real_loader_and_accessors():
    lines, err = run("example", {"report_every": 1.5}, {"topic": "e"})
    # config_int answers the default (1000) for 1.5, as inside busd.
    assert lines == ["OK"], lines
    r = subprocess.run([DRIVER, os.path.join(TMP, "missing.so")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 69 and "missing.so" in r.stderr, r
    r = subprocess.run([DRIVER, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "plugin ABI 1." in r.stdout, r


def main():
    if not os.path.exists(DRIVER):
        print("SKIP: %s not built" % DRIVER)
        return 77
    failed = 0
    for fn in TESTS:
        try:
            fn()
            print("ok - %s" % fn.__name__)
        except Exception:
            failed += 1
            print("not ok - %s" % fn.__name__)
            traceback.print_exc(file=sys.stdout)
    if failed == 0:
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print("kept %s for inspection" % TMP)
    print("%d/%d passed" % (len(TESTS) - failed, len(TESTS)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
