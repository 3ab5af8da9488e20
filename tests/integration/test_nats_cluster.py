#!/usr/bin/env python3
"""Two busd instances joined through a three-node NATS cluster with
JetStream by the nats plugin (plugins/nats, doc/scale-out.md).

Starts `nats-server -js` three times on free loopback ports (each with its
own store under a temporary directory, routed into one cluster) and busd A
and B, each with a `nats` plugin entry exporting and importing `core.#`
(core NATS) and `js.#` (the JetStream stream BUSD, three replicas).  Then:
events cross A->B and B->A in both modes with their headers and msg_ids and
never loop; messages taken from B's consumer behind its back are fetched
from the stream; killing the node that leads B's consumer, and then the
stream's leader node, while A publishes loses nothing busd A acknowledged;
a slow `overflow: block` subscriber on B throttles the
publisher on A with a bounded number of events in transit (and bounded
RSS); a restart of busd B resumes its durable consumer with nothing lost.
Every process is stopped by PID, also when a test fails."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import busp  # noqa: E402
from busp import Client, free_port  # noqa: E402

BUSD = os.environ.get("BUSD_BIN", "src/broker/busd")
TOP = os.environ.get("BUSD_TOP_BUILDDIR", ".")
PLUGIN = os.path.abspath(os.path.join(TOP, "plugins", "nats", ".libs", "nats.so"))
NATS = os.environ.get("NATS_SERVER") or shutil.which("nats-server") or "/usr/bin/nats-server"
TMP = tempfile.mkdtemp(prefix="busd-nats-")
PROCS = []          # every process started, stopped by PID at the end
STREAM_MAX_MSGS = 500
PUB_CREDIT = 100
QUEUE_LIMIT = 200
MAX_INFLIGHT = 64
# ASan keeps freed memory in quarantine; keep that small so RSS says
# something about what busd holds.
CHILD_ENV = dict(os.environ)
CHILD_ENV["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16").lstrip(":")


def log(text):
    print("# " + text)
    sys.stdout.flush()


def wait_until(fn, timeout=20.0, what="condition", every=0.05):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(every)


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop_pid(proc, sig=signal.SIGTERM, timeout=30):
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def nats_request(url, subject, payload=b"", timeout=10.0):
    """One request over the NATS text protocol (no client library needed):
    used for JetStream API calls such as a leader step-down."""
    host, port = url[len("nats://"):].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        f = sock.makefile("rb")
        f.readline()                                    # INFO
        inbox = "_INBOX.busdtest%d" % os.getpid()
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                     b"SUB %s 1\r\nPUB %s %s %d\r\n%s\r\n"
                     % (inbox.encode(), subject.encode(), inbox.encode(), len(payload), payload))
        while True:
            line = f.readline()
            if not line:
                raise AssertionError("NATS closed the connection during %s" % subject)
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise AssertionError("NATS said %r to %s" % (line.strip(), subject))
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                body = f.read(size + 2)[:size]
                return json.loads(body) if body else {}
    finally:
        sock.close()


def nats_steal(url, stream, consumer, count, timeout=10.0):
    """Pull up to count messages from another instance's durable consumer
    and acknowledge them, as a server that skips messages would: returns
    their stream subjects."""
    host, port = url[len("nats://"):].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout + 5)
    got = []
    try:
        f = sock.makefile("rb")
        f.readline()                                    # INFO
        inbox = "_INBOX.steal%d" % os.getpid()
        req = json.dumps({"batch": count, "expires": int(timeout * 1e9)}).encode()
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
                     b"SUB %s 1\r\nPUB $JS.API.CONSUMER.MSG.NEXT.%s.%s %s %d\r\n%s\r\n"
                     % (inbox.encode(), stream.encode(), consumer.encode(), inbox.encode(),
                        len(req), req))
        while len(got) < count:
            line = f.readline()
            if not line:
                break
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"HMSG") or line.startswith(b"MSG"):
                parts = line.split()
                size = int(parts[-1])
                f.read(size + 2)
                reply = parts[3].decode() if len(parts) >= (6 if parts[0] == b"HMSG" else 5) else None
                if reply and reply.startswith("$JS.ACK."):
                    sock.sendall(b"PUB %s 4\r\n+ACK\r\n" % reply.encode())
                    got.append(parts[1].decode())
                else:
                    break                               # a status: no more now
        sock.sendall(b"PING\r\n")
        while not f.readline().startswith(b"PONG"):
            pass
    finally:
        sock.close()
    return got


# ------------------------------------------------------------------ NATS
class Node:
    def __init__(self, index, cluster_ports):
        self.name = "n%d" % index
        self.port = free_port()
        self.http = free_port()
        self.cport = cluster_ports[index - 1]
        self.store = os.path.join(TMP, self.name)
        routes = ", ".join("nats-route://127.0.0.1:%d" % p for p in cluster_ports if p != self.cport)
        self.conf = os.path.join(TMP, self.name + ".conf")
        with open(self.conf, "w") as f:
            f.write("""server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: "%s" }
cluster { name: busdtest, listen: 127.0.0.1:%d, routes: [ %s ] }
""" % (self.name, self.port, self.http, self.store, self.cport, routes))
        self.url = "nats://127.0.0.1:%d" % self.port
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(TMP, self.name + ".log"), "ab")
        self.proc = subprocess.Popen([NATS, "-c", self.conf], stdout=self.log, stderr=self.log)
        PROCS.append(self.proc)

    def kill(self):
        stop_pid(self.proc, signal.SIGKILL)
        self.log.close()

    def jsz(self, query=""):
        with urllib.request.urlopen("http://127.0.0.1:%d/jsz%s" % (self.http, query),
                                    timeout=2) as r:
            return json.loads(r.read())

    def alive(self):
        return self.proc.poll() is None


class Cluster:
    def __init__(self):
        cports = [free_port() for _ in range(3)]
        self.nodes = [Node(i, cports) for i in (1, 2, 3)]
        wait_until(self.meta_leader, 30, "the JetStream meta leader", every=0.2)

    def urls(self):
        return [n.url for n in self.nodes]

    def any_jsz(self, query=""):
        for n in self.nodes:
            if n.alive():
                try:
                    return n.jsz(query)
                except Exception:
                    continue
        return {}

    def meta_leader(self):
        try:
            return all(n.jsz().get("meta_cluster", {}).get("leader") for n in self.nodes)
        except Exception:
            return False

    def stream(self, name="BUSD"):
        d = self.any_jsz("?accounts=true&streams=true&consumers=true")
        for acc in d.get("account_details", []):
            for s in acc.get("stream_detail", []) or []:
                if s.get("name") == name:
                    return s
        return None

    def stream_leader(self):
        s = self.stream()
        leader = s and s.get("cluster", {}).get("leader")
        return next((n for n in self.nodes if n.name == leader), None)

    def consumer_leader(self, name):
        s = self.stream()
        for c in (s or {}).get("consumer_detail", []) or []:
            if c.get("name") == name:
                leader = c.get("cluster", {}).get("leader")
                return next((n for n in self.nodes if n.name == leader), None)
        return None

    def led(self):
        """True when the stream and each of its consumers have a leader."""
        s = self.stream()
        if not s or not s.get("cluster", {}).get("leader"):
            return False
        return all(c.get("cluster", {}).get("leader") for c in s.get("consumer_detail", []) or [])

    def caught_up(self, node):
        """True once node (restarted) holds the stream up to the last
        message its leader holds."""
        leader = self.stream_leader()
        if not leader or not node.alive():
            return False
        def last(n):
            d = n.jsz("?accounts=true&streams=true")
            for acc in d.get("account_details", []):
                for st in acc.get("stream_detail", []) or []:
                    if st.get("name") == "BUSD":
                        return st.get("state", {}).get("last_seq")
            return None
        try:
            mine = last(node)
            return mine is not None and mine == last(leader)
        except Exception:
            return False

    def consumers(self):
        s = self.stream()
        return sorted(c["name"] for c in (s or {}).get("consumer_detail", []) or [])


# ------------------------------------------------------------------ busd
class Busd:
    def __init__(self, name, cluster, import_delay_ms=0, broker=None, plugin=None, config=None):
        self.name = name
        self.port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.conf = os.path.join(TMP, "busd-%s.json" % name)
        entry = {
            "name": "cluster", "path": PLUGIN, "patterns": ["core.#", "js.#"],
            "max_inflight": MAX_INFLIGHT, "ack_wait_ms": 120000,
            "config": {
                "servers": cluster.urls(), "prefix": "busd", "instance": name,
                "import": ["core.#", "js.#"], "import_delay_ms": import_delay_ms,
                "window": MAX_INFLIGHT, "ack_timeout_ms": 2000,
                "jetstream": {"stream": "BUSD", "patterns": ["js.#"], "replicas": 3,
                              "max_msgs": STREAM_MAX_MSGS}}}
        entry.update(plugin or {})
        for key, value in (config or {}).items():
            if isinstance(value, dict):
                entry["config"][key].update(value)
            else:
                entry["config"][key] = value
        conf = {"bind": self.endpoint, "log_level": "info", "pub_credit": PUB_CREDIT,
                "queue_limit": QUEUE_LIMIT, "plugins": [entry]}
        conf.update(broker or {})
        with open(self.conf, "w") as f:
            json.dump(conf, f, indent=2)
        self.start()

    def start(self):
        self.logpath = os.path.join(TMP, "busd-%s.log" % self.name)
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([BUSD, "-c", self.conf], stdout=self.log, stderr=self.log,
                                     env=CHILD_ENV)
        PROCS.append(self.proc)
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("busd %s exited:\n%s" % (self.name, self.text()))
            try:
                c = Client(self.endpoint, timeout=200)
                c.hello()
                c.close()
                return True
            except Exception:
                return False
        wait_until(up, 15, "busd %s to start" % self.name)
        wait_until(lambda: self.plugin()["state"] == "running", 15, "plugin on %s" % self.name)

    def stop(self):
        rc = stop_pid(self.proc)
        self.log.close()
        return rc

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

    def plugin(self):
        return self.ctl({"cmd": "plugins"})["plugins"][0]

    def metrics(self):
        return self.plugin().get("metrics", {})


class Sub:
    """A subscriber that reads in a thread and keeps every event."""

    def __init__(self, busd, pattern, options=None, delay=0.0):
        self.c = Client(busd.endpoint, timeout=200)
        self.c.hello("test-sub")
        self.opts = options or {"credit": 100000}
        self.c.send(busp.sub(1, pattern), json.dumps(self.opts))
        self.c.expect(busp.SUBOK)
        self.events = []
        self.delay = delay
        self.lock = threading.Lock()
        self.running = True
        self.other = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        manual = self.opts.get("credit", 0) < 1000
        while self.running:
            try:
                d = self.c.recv()
            except Exception:
                continue
            if d["cmd"] == busp.PING:
                self.c.send(busp.struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))
            elif d["cmd"] == busp.DELIVER:
                with self.lock:
                    self.events.append(d)
                if manual:
                    if self.delay:
                        time.sleep(self.delay)
                    self.c.send(busp.credit(1, 1))
            else:
                with self.lock:
                    self.other.append(d)    # GAP, SUBEND, ERROR: shown on failure

    def ids(self):
        with self.lock:
            return [e["msg_id"] for e in self.events]

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        self.c.send(busp.bye())
        self.c.close()


class Publisher:
    """Publishes (topic, msg_id) events honouring publisher credit (doc/protocol.md
    §5.2) and records which ones busd acknowledged with a PUBACK."""

    def __init__(self, busd):
        self.c = Client(busd.endpoint, timeout=100)
        self.credit = self.c.hello("test-pub")["pub_credit"]
        self.sent = {}          # pub_seq -> msg_id
        self.rejected = set()
        self.acked = []         # msg_ids, in order
        self.acked_seq = 0

    def pump(self, wait=True):
        try:
            d = self.c.recv()
        except Exception:
            return
        if d["cmd"] == busp.PING:
            self.c.send(busp.struct.pack(">BBQ", busp.SIG, busp.PONG, d["nonce"]))
        elif d["cmd"] == busp.REJECT:
            self.rejected.add(d["seq"])
        elif d["cmd"] == busp.PUBACK:
            for seq in range(self.acked_seq + 1, d["seq"] + 1):
                if seq not in self.rejected:
                    self.acked.append(self.sent[seq])
            self.acked_seq = max(self.acked_seq, d["seq"])
            self.credit += d["credit"]

    def publish(self, topic, msg_id, payload=b"x", headers=None):
        while self.credit == 0:
            self.pump()
        self.credit -= 1
        seq = self.c.publish(topic, payload, msg_id=msg_id,
                             headers=json.dumps(headers) if headers else None)
        self.sent[seq] = msg_id

    def finish(self, timeout=60):
        deadline = time.time() + timeout
        while self.acked_seq < self.c.seq and time.time() < deadline:
            self.pump()
        assert not self.rejected, "busd rejected %d events" % len(self.rejected)
        return self.acked

    def close(self):
        self.c.send(busp.bye())
        self.c.close()


# ------------------------------------------------------------------ tests
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def explain_stream(cluster, *instances):
    """On a failure: the stream's and each consumer's state as every live
    node sees it, to tell a ring overrun (first_seq past what is missing)
    from a stalled consumer (ack pending, nothing delivered) from an
    importer that stopped asking (num_pending > 0, nothing waiting)."""
    for n in cluster.nodes:
        if not n.alive():
            continue
        try:
            d = n.jsz("?accounts=true&streams=true&consumers=true")
        except Exception as e:
            log("%s: jsz failed: %s" % (n.name, e))
            continue
        for acc in d.get("account_details", []):
            for st in acc.get("stream_detail", []) or []:
                log("%s: stream %s state %s leader %s" % (n.name, st.get("name"),
                    json.dumps(st.get("state")), st.get("cluster", {}).get("leader")))
                for c in st.get("consumer_detail", []) or []:
                    log("%s:   consumer %s delivered %s ack_floor %s num_pending %s "
                        "num_ack_pending %s num_redelivered %s num_waiting %s leader %s"
                        % (n.name, c.get("name"), c.get("delivered"), c.get("ack_floor"),
                           c.get("num_pending"), c.get("num_ack_pending"),
                           c.get("num_redelivered"), c.get("num_waiting"),
                           c.get("cluster", {}).get("leader")))
    for busd in instances:
        for cmd in ("plugins", "subscriptions", "stats"):
            try:
                log("busd %s %s: %s" % (busd.name, cmd, json.dumps(busd.ctl({"cmd": cmd}))))
            except Exception as e:
                log("busd %s %s: %s" % (busd.name, cmd, e))


def all_acknowledged_reach_b(env, pa, sub_b, total):
    """Wait for A to acknowledge all total events and for each to reach
    sub_b on B; on a failure, print what the cluster and both busd say."""
    acked = pa.finish(120)
    pa.close()
    assert len(acked) == total, "busd A acknowledged %d of %d" % (len(acked), total)
    try:
        wait_ids(sub_b, acked, 120, "every event busd A acknowledged, on B")
    except AssertionError:
        explain_stream(env["cluster"], env["a"], env["b"])
        log("B's subscriber got %d events and %d other frames: %s"
            % (len(sub_b.ids()), len(sub_b.other), sub_b.other[:5]))
        missing = sorted(set(acked) - set(sub_b.ids()), key=lambda i: int(i.split("-")[1]))
        log("missing on B: %d, first %s, last %s" % (len(missing), missing[:3], missing[-3:]))
        raise
    return acked


def wait_ids(sub, expected, timeout, what):
    expected = set(expected)
    try:
        wait_until(lambda: expected <= set(sub.ids()), timeout, what)
    except AssertionError as e:
        raise AssertionError("%s (%d of %d arrived)"
                             % (e, len(expected & set(sub.ids())), len(expected)))


@test
def both_ways_in_both_modes_without_loops(env):
    a, b = env["a"], env["b"]
    sub_a = Sub(a, "#")
    sub_b = Sub(b, "#")
    try:
        pa, pb = Publisher(a), Publisher(b)
        for i in range(100):
            pa.publish("core.orders.created", "core-a-%d" % i, headers={"trace": "t%d" % i})
            pa.publish("js.payment.settled", "js-a-%d" % i, headers={"trace": "t%d" % i})
            pb.publish("core.orders.created", "core-b-%d" % i)
            pb.publish("js.payment", "js-b-%d" % i)
        pa.finish()
        pb.finish()
        pa.close()
        pb.close()
        from_a = ["core-a-%d" % i for i in range(100)] + ["js-a-%d" % i for i in range(100)]
        from_b = ["core-b-%d" % i for i in range(100)] + ["js-b-%d" % i for i in range(100)]
        wait_ids(sub_b, from_a, 30, "A's events on B")
        wait_ids(sub_a, from_b, 30, "B's events on A")
        # Nothing comes back round: after a quiet second each side saw each
        # event exactly once (its own locally, the other's imported once).
        time.sleep(1.5)
        for sub, name in ((sub_a, "A"), (sub_b, "B")):
            ids = sub.ids()
            assert sorted(ids) == sorted(from_a + from_b), \
                "%s saw %d events, expected %d (a loop or a duplicate)" % (name, len(ids), 400)
        ev = next(e for e in sub_b.events if e["msg_id"] == "js-a-7")
        headers = json.loads(ev["headers"])
        assert ev["topic"] == "js.payment.settled" and ev["payload"] == b"x", ev
        assert headers == {"trace": "t7", "busd-origin": "a"}, headers
        ev = next(e for e in sub_b.events if e["msg_id"] == "core-a-3")
        assert json.loads(ev["headers"]) == {"trace": "t3", "busd-origin": "a"}, ev
        ev = next(e for e in sub_a.events if e["msg_id"] == "js-b-0")
        assert ev["topic"] == "js.payment", ev      # '#' also carries the parent
        m = wait_until(lambda: (lambda m: m if m.get("exported_js", 0) >= 100 else None)(
            a.metrics()), 10, "A's metrics")
        # Each event crossed once: a JetStream message, which core
        # subscribers see too, is imported through the consumer only.
        assert m["exported_core"] == 100 and m["imported_core"] == 100, m
        assert m["imported_js"] == 100 and m["skipped_imported"] == 200, m
        assert m["nats_connected"] == 1 and m["js_ack_latency_us"] > 0, m
        log("A's plugin metrics: %s" % json.dumps(m, sort_keys=True))
    finally:
        sub_a.close()
        sub_b.close()


@test
def slow_block_subscriber_on_b_throttles_the_publisher_on_a(env):
    a, b, cluster = env["a"], env["b"], env["cluster"]
    # Credit 1, returned after 5 ms per event: about 200 events a second.
    slow = Sub(b, "js.slow.#", {"credit": 1, "overflow": "block", "queue_limit": 50},
               delay=0.005)
    pids = [a.proc.pid, b.proc.pid] + [n.proc.pid for n in cluster.nodes]
    rss0 = {pid: rss_kb(pid) for pid in pids}
    total = 2000
    # In transit between A's publisher and B's subscriber at most: A's
    # publisher credit, A's plugin queue and window, the stream's limit,
    # B's plugin publisher credit and B's subscription queue; plus slack.
    bound = PUB_CREDIT + QUEUE_LIMIT + MAX_INFLIGHT + STREAM_MAX_MSGS + PUB_CREDIT + 50 + 200
    state = {"max_transit": 0, "rss": dict(rss0), "done": False}

    def watch():
        while not state["done"]:
            transit = len(pa.acked) - len(set(slow.ids()))
            state["max_transit"] = max(state["max_transit"], transit)
            for pid in pids:
                state["rss"][pid] = max(state["rss"][pid], rss_kb(pid))
            time.sleep(0.05)

    pa = Publisher(a)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for i in range(total):
            pa.publish("js.slow.item", "slow-%d" % i)
        published_at = len(set(slow.ids()))
        acked = pa.finish(180)
        assert len(acked) == total, acked
        try:
            wait_ids(slow, acked, 120, "every event at the slow subscriber")
        except AssertionError:
            log("B: %s" % json.dumps(b.ctl({"cmd": "subscriptions"})))
            log("B: %s" % json.dumps(b.ctl({"cmd": "clients"})))
            log("B: %s" % json.dumps(b.metrics()))
            log("A: %s" % json.dumps(a.metrics()))
            log("stream: %s" % json.dumps(cluster.stream()))
            raise
        state["done"] = True
        watcher.join()
        got = slow.ids()
        log("publisher on A finished sending when B's slow subscriber had %d of %d; "
            "at most %d events in transit (bound %d); %d duplicates"
            % (published_at, total, state["max_transit"], bound, len(got) - len(set(got))))
        assert state["max_transit"] <= bound, state["max_transit"]
        # Without the bridge's credit A would take all 2000 at once.
        assert published_at >= total - bound, published_at
        growth = {pid: (state["rss"][pid] - rss0[pid]) // 1024 for pid in pids}
        log("RSS growth in MB (busd A, busd B, nats n1..n3): %s" % list(growth.values()))
        assert all(g < 150 for g in growth.values()), growth
        assert sorted(set(got)) == sorted(set(acked)), "lost events"
    finally:
        state["done"] = True
        slow.close()
        pa.close()


@test
def restarted_busd_resumes_its_durable_import(env):
    a, b = env["a"], env["b"]
    assert "b" in env["cluster"].consumers(), env["cluster"].consumers()
    assert b.stop() == 0
    log("busd B stopped; publishing 300 events on A")
    pa = Publisher(a)
    for i in range(300):
        pa.publish("js.restart.x", "rs-%d" % i)
    acked = pa.finish(60)
    pa.close()
    b.start()
    sub = Sub(b, "js.restart.#")       # before the import delay ends
    try:
        wait_ids(sub, acked, 60, "the events published while B was down")
        time.sleep(1)
        got = sub.ids()
        log("after the restart B delivered %d events, %d distinct (of %d)"
            % (len(got), len(set(got)), len(acked)))
        assert set(got) == set(acked), set(acked) - set(got)
    finally:
        sub.close()


@test
def messages_the_consumer_skips_are_fetched_from_the_stream(env):
    """nats-server 2.9.10 was seen moving a consumer past messages that
    never reached its importer (after the stream leader's node was
    killed).  Another client taking messages from B's durable consumer does
    the same thing on purpose: B must see the jump in stream sequence and
    fetch what it skipped from the stream."""
    a, b, cluster = env["a"], env["b"], env["cluster"]
    sub_b = Sub(b, "js.skip.#")
    try:
        pa = Publisher(a)
        pa.publish("js.skip.first", "sk-first")
        pa.finish(60)
        wait_ids(sub_b, ["sk-first"], 60, "the first event on B")
        before = b.metrics().get("js_repaired", 0)
        first = cluster.stream()["state"]["last_seq"]
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            # B's last pull request (20 ms) expires; what A exports now is
            # delivered to nobody yet, and the stop stays far below the
            # consumer's AckWait (nothing is redelivered meanwhile).
            time.sleep(0.3)
            for i in range(20):
                pa.publish("js.skip.x", "sk-%d" % i)
            acked = pa.finish(60)
            wait_until(lambda: cluster.stream()["state"]["last_seq"] >= first + 20, 20,
                       "A's 20 events in the stream")
            stolen = []
            deadline = time.time() + 30
            while len(stolen) < 5 and time.time() < deadline:
                stolen += nats_steal(cluster.nodes[0].url if cluster.nodes[0].alive()
                                     else cluster.nodes[1].url, "BUSD", "b", 5 - len(stolen), 2.0)
            log("took %d messages from B's consumer: %s" % (len(stolen), stolen))
            assert len(stolen) == 5, stolen
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        pa.close()
        try:
            wait_ids(sub_b, acked, 60, "every event A acknowledged, with the skipped ones, on B")
        except AssertionError:
            explain_stream(cluster, a, b)
            log("missing on B: %s" % sorted(set(acked) - set(sub_b.ids())))
            raise
        repaired = b.metrics().get("js_repaired", 0) - before
        log("B fetched %d skipped messages from the stream" % repaired)
        assert repaired == 5, repaired
        assert "skipped stream messages" in b.text()
    finally:
        sub_b.close()


@test
def killing_an_importers_consumer_leader_loses_nothing(env):
    """The node that leads B's durable consumer (and not the stream) dies
    while A exports at full speed: the stream keeps taking A's events while
    B's consumer elects a new leader, and the stream's consumer list leaves
    that consumer out meanwhile.  A must hold its exports until B's backlog
    is known again, or the ring (max_msgs) runs over what B has not taken."""
    a, b, cluster = env["a"], env["b"], env["cluster"]
    wait_until(cluster.led, 60, "leaders for the stream and its consumers")
    victim = wait_until(lambda: cluster.consumer_leader("b"), 20, "consumer b's leader")
    for _ in range(5):
        if cluster.stream_leader() is not victim:
            break
        other = next(n for n in cluster.nodes if n is not victim)
        reply = nats_request(other.url, "$JS.API.STREAM.LEADER.STEPDOWN.BUSD")
        log("stream leader step-down: %s" % reply)
        time.sleep(1)
        wait_until(cluster.stream_leader, 20, "a stream leader after the step-down")
        victim = wait_until(lambda: cluster.consumer_leader("b"), 20, "consumer b's leader")
    assert cluster.stream_leader() is not victim, "consumer b's leader also leads the stream"
    log("consumer b's leader is %s, the stream's %s" % (victim.name, cluster.stream_leader().name))
    sub_b = Sub(b, "js.#")
    try:
        pa = Publisher(a)
        total = 4 * STREAM_MAX_MSGS
        for i in range(total):
            pa.publish("js.importer.kill", "ik-%d" % i, payload=b"%d" % i)
            if i == STREAM_MAX_MSGS // 2:
                log("killing %s (pid %d)" % (victim.name, victim.proc.pid))
                victim.kill()
        all_acknowledged_reach_b(env, pa, sub_b, total)
        log("all %d acknowledged events reached B" % total)
    finally:
        sub_b.close()
        # Bring the node back: the next case kills another one, and the
        # stream keeps its quorum only with two of three.
        if not victim.alive():
            victim.start()
        wait_until(lambda: cluster.caught_up(victim), 90, "the restarted node to catch up")
        wait_until(cluster.led, 60, "leaders for the stream and its consumers")


@test
def killing_the_stream_leader_loses_nothing_acknowledged(env):
    a, b, cluster = env["a"], env["b"], env["cluster"]
    leader = wait_until(cluster.stream_leader, 20, "the stream leader")
    log("stream leader is %s" % leader.name)
    repaired_before = b.metrics().get("js_repaired", 0)
    sub_b = Sub(b, "js.#")
    try:
        pa = Publisher(a)
        total = 3000
        for i in range(total):
            pa.publish("js.leader.kill", "lk-%d" % i, payload=b"%d" % i)
            if i == 1000:
                pa.finish()
                log("killing %s (pid %d) after %d acknowledged events"
                    % (leader.name, leader.proc.pid, len(pa.acked)))
                leader.kill()
        all_acknowledged_reach_b(env, pa, sub_b, total)
        dups = len(sub_b.ids()) - len(set(sub_b.ids()))
        m = b.metrics()
        log("all %d acknowledged events reached B (%d duplicates, dropped by msg_id; "
            "B fetched %d stepped-over messages from the stream)"
            % (total, dups, m.get("js_repaired", 0) - repaired_before))
        assert m.get("js_lost", 0) == 0, m
        new_leader = wait_until(cluster.stream_leader, 30, "a new stream leader")
        log("new stream leader is %s" % new_leader.name)
    finally:
        # The killed node stays down: two of three keep the stream's quorum.
        sub_b.close()


@test
def unreachable_cluster_is_reported_while_busd_serves(env):
    conf = os.path.join(TMP, "busd-lonely.json")
    port = free_port()
    dead = free_port()
    with open(conf, "w") as f:
        json.dump({"bind": "tcp://127.0.0.1:%d" % port, "plugins": [{
            "name": "cluster", "path": PLUGIN, "patterns": ["x.#"],
            "config": {"servers": ["nats://127.0.0.1:%d" % dead], "instance": "lonely"}}]}, f)
    logpath = os.path.join(TMP, "busd-lonely.log")
    with open(logpath, "wb") as out:
        proc = subprocess.Popen([BUSD, "-c", conf], stdout=out, stderr=out, env=CHILD_ENV)
    PROCS.append(proc)
    try:
        def logged():
            with open(logpath, errors="replace") as f:
                return "cannot reach the NATS cluster" in f.read()
        wait_until(logged, 15, "the startup error")
        c = Client("tcp://127.0.0.1:%d" % port)
        c.hello()
        c.send(busp.sub(1, "local.#"), json.dumps({"credit": 10}))
        c.expect(busp.SUBOK)
        c.publish("local.one", b"still serving")
        d = c.expect(busp.DELIVER, skip=(busp.PING, busp.PUBACK))
        assert d["payload"] == b"still serving", d
        c.close()
        c = Client("tcp://127.0.0.1:%d" % port)
        c.hello("test-ctl")
        p = c.ctl({"cmd": "plugins"})["json"]["plugins"][0]
        assert p["state"] == "running" and p["metrics"]["nats_connected"] == 0, p
        c.close()
        with open(logpath, errors="replace") as f:
            text = f.read()
        line = next(l for l in text.splitlines() if "cannot reach the NATS cluster" in l)
        assert "nats://127.0.0.1:%d" % dead in line and "busd keeps serving locally" in line, line
    finally:
        assert stop_pid(proc) == 0


@test
def unmappable_import_is_refused_with_the_reason(env):
    conf = os.path.join(TMP, "busd-bad.json")
    port = free_port()
    with open(conf, "w") as f:
        json.dump({"bind": "tcp://127.0.0.1:%d" % port, "plugins": [{
            "name": "cluster", "path": PLUGIN, "patterns": ["x.#"],
            "config": {"servers": env["cluster"].urls(), "instance": "bad",
                       "import": ["ok.#", "a.>.b"]}}]}, f)
    # busd --check-config (and so `systemctl reload`) refuses it first.
    r = subprocess.run([BUSD, "--check-config", "-c", conf], capture_output=True, text=True,
                       env=CHILD_ENV, timeout=30)
    assert r.returncode == 2, r
    assert ("plugins[0] ('cluster'): key 'config': \"import\"[1]: pattern 'a.>.b' cannot map "
            "to a NATS subject: token '>' is NATS's full wildcard") in r.stderr + r.stdout, r
    logpath = os.path.join(TMP, "busd-bad.log")
    with open(logpath, "wb") as out:
        proc = subprocess.Popen([BUSD, "-c", conf], stdout=out, stderr=out, env=CHILD_ENV)
    PROCS.append(proc)
    try:
        c = wait_until(lambda: _connect("tcp://127.0.0.1:%d" % port), 15, "busd")
        def failed():
            d = c.ctl({"cmd": "plugins"})["json"]["plugins"][0]
            return d if d["state"] == "failed" else None
        p = wait_until(failed, 15, "the plugin to fail")
        assert "\"import\"[1]: pattern 'a.>.b' cannot map to a NATS subject" in p["error"], p
        assert "NATS's full wildcard" in p["error"], p
        c.close()
    finally:
        assert stop_pid(proc) == 0


def _connect(endpoint):
    try:
        c = Client(endpoint, timeout=500)
        c.hello("test")
        return c
    except Exception:
        return None


def main():
    # make check may stop the test with SIGTERM: clean up then too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if not os.path.exists(PLUGIN):
        print("FAIL - %s not built" % PLUGIN)
        return 1
    if not os.access(NATS, os.X_OK):
        print("FAIL - nats-server not found: install the Debian package 'nats-server'")
        return 1
    env = {}
    passed = failed = 0
    started = time.time()
    try:
        env["cluster"] = Cluster()
        log("three-node cluster up: %s" % ", ".join(env["cluster"].urls()))
        env["a"] = Busd("a", env["cluster"])
        env["b"] = Busd("b", env["cluster"], import_delay_ms=1500)
        wait_until(lambda: env["cluster"].consumers() == ["a", "b"], 30,
                   "both durable consumers")
        # jsz lists a consumer as soon as it is assigned; each plugin
        # creates its consumer with deliver-new, and what is published
        # before the creation returns is not for it.
        for name in ("a", "b"):
            wait_until(lambda: "created durable consumer '%s'" % name in env[name].text(), 30,
                       "busd %s's durable consumer" % name)
        only = os.environ.get("NATS_TESTS", "").split(",")
        for fn in TESTS:
            if only != [""] and fn.__name__ not in only:
                continue
            t0 = time.time()
            try:
                fn(env)
                print("ok - %s (%.1f s)" % (fn.__name__, time.time() - t0))
                passed += 1
            except Exception:
                import traceback
                print("FAIL - %s" % fn.__name__)
                traceback.print_exc(file=sys.stdout)
                failed += 1
            sys.stdout.flush()
        for name in ("a", "b"):
            rc = env[name].stop()
            if rc != 0:
                print("FAIL - busd %s exited with %d" % (name, rc))
                failed += 1
    except Exception:
        import traceback
        print("FAIL - setup")
        traceback.print_exc(file=sys.stdout)
        failed += 1
    finally:
        for proc in reversed(PROCS):
            stop_pid(proc, signal.SIGKILL if proc.args[0] == NATS else signal.SIGTERM, 10)
        if failed:
            for name in sorted(os.listdir(TMP)):
                if name.endswith(".log"):
                    with open(os.path.join(TMP, name), errors="replace") as f:
                        lines = f.read().splitlines()
                    print("--- %s (last 40 lines)" % name)
                    print("\n".join(lines[-40:]))
        else:
            resets = 0
            for name in os.listdir(TMP):
                if name.startswith("n") and name.endswith(".log"):
                    with open(os.path.join(TMP, name), errors="replace") as f:
                        resets += f.read().count("Resetting stream cluster state")
            log("nats-server logged %d stream cluster state resets" % resets)
            if os.environ.get("BUSD_KEEP_TMP"):
                log("logs kept in %s (BUSD_KEEP_TMP)" % TMP)
            else:
                shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed (%.0f s)" % (passed, failed, time.time() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
