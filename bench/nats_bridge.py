#!/usr/bin/env python3
"""Bridged throughput: events published on busd A reach a subscriber on
busd B through a three-node NATS cluster (the nats plugin,
doc/scale-out.md), once over core NATS and once through the JetStream
stream (three replicas).  Reuses the cluster and busd harness of
tests/integration/test_nats_cluster.py; every process is stopped by PID.

    BUSD_TOP_BUILDDIR=. python3 bench/nats_bridge.py [--core N] [--js N] [--size BYTES]

Build without sanitizers (./configure) for meaningful numbers.  Prints one
line per mode: events, seconds from the first publish to the last event
received on B, events per second, and what B received."""
import argparse
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.setdefault("BUSD_TOP_BUILDDIR", os.path.dirname(HERE))
os.environ.setdefault("BUSD_BIN", os.path.join(TOP, "src", "broker", "busd"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import test_nats_cluster as t  # noqa: E402

TOOLS = os.path.join(TOP, "src", "tools")


def measure(a, b, topic, count, size):
    out = open(os.path.join(t.TMP, "bench-sub.out"), "wb")
    sub = subprocess.Popen([os.path.join(TOOLS, "busd-sub"), "-e", b.endpoint, "-t", topic,
                            "-C", str(count), "-W", "10", "-F", "%t"],
                           stdout=out, stderr=subprocess.DEVNULL)
    t.PROCS.append(sub)
    t.wait_until(lambda: any(s.get("pattern") == topic
                             for s in b.ctl({"cmd": "subscriptions"})["subscriptions"]),
                 10, "the benchmark subscriber")
    start = time.time()
    pub = subprocess.run([os.path.join(TOOLS, "busd-pub"), "-e", a.endpoint, "-t",
                          topic.replace("#", "x"), "-m", "p" * size, "--count", str(count),
                          "--timeout", "120", "-q"], check=True)
    sub.wait(timeout=300)
    out.close()
    received = sum(1 for _ in open(os.path.join(t.TMP, "bench-sub.out"), "rb"))
    # busd-sub stops after -W 10 s of silence when events are missing.
    elapsed = time.time() - start - (10 if received < count else 0)
    return received, elapsed, pub.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--core", type=int, default=100000)
    ap.add_argument("--js", type=int, default=50000)
    ap.add_argument("--size", type=int, default=100)
    args = ap.parse_args()
    rc = 0
    try:
        cluster = t.Cluster()
        broker = {"pub_credit": 1000, "queue_limit": 10000}
        plugin = {"max_inflight": 512}
        config = {"window": 512, "ack_timeout_ms": 5000,
                  "jetstream": {"max_msgs": 1000000}}
        a = t.Busd("a", cluster, broker=broker, plugin=plugin, config=config)
        b = t.Busd("b", cluster, broker=broker, plugin=plugin, config=config)
        t.wait_until(lambda: cluster.consumers() == ["a", "b"], 30, "both consumers")
        print("mode   events  seconds  events/s  received  (payload %d B, stream R3)" % args.size)
        for mode, topic, n in (("core", "core.bench.#", args.core), ("js", "js.bench.#", args.js)):
            received, elapsed, _ = measure(a, b, topic, n, args.size)
            print("%-5s %7d %8.2f %9.0f  %8d" % (mode, n, elapsed, received / elapsed, received))
            sys.stdout.flush()
        print("A: %s" % a.metrics())
        print("B: %s" % b.metrics())
        a.stop()
        b.stop()
    except Exception:
        import traceback
        traceback.print_exc()
        rc = 1
    finally:
        for proc in reversed(t.PROCS):
            t.stop_pid(proc, signal.SIGKILL if proc.args[0] == t.NATS else signal.SIGTERM, 10)
    return rc


if __name__ == "__main__":
    sys.exit(main())
