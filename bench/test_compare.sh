#!/bin/bash
# bench/test_compare.sh - proves the comparison harness, not the numbers:
# runs `bench/compare.sh --quick` (about a minute) and checks that every
# broker that is installed ran every shape it belongs to and exited 0, that
# each subscriber's loss count adds up exactly (received - duplicates + lost
# = events published), that busd lost nothing, that every round trip has
# percentiles, and that the tables (with the busd/NATS, busd/Redis and
# busd/relay ratios, the durable shape or its clear "SKIPPED", and the
# targets) were printed.
#
# Not part of `make check`: it needs nats-server, redis-server and mosquitto
# with their client libraries, and takes a minute of a shared machine.
# Usage: bench/test_compare.sh [compare.sh options, e.g. --no-build]
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/busd-test-compare.XXXXXX") || exit 99
trap 'rm -rf "$out"' EXIT

if ! "$top/bench/compare.sh" --quick "$@" --out "$out" >"$out/stdout" 2>"$out/stderr"; then
    echo "not ok - compare.sh --quick failed:" >&2
    tail -n 30 "$out/stderr" >&2
    exit 1
fi
echo "ok - compare.sh --quick ran ($(sed -n 's/.*run took //p' "$out/machine.txt"))"

have () { command -v "$1" >/dev/null 2>&1 && pkg-config --exists "$2" && echo 1 || echo 0; }
python3 - "$out" "$(have nats-server libnats)" "$(have redis-server hiredis)" \
          "$(have mosquitto libmosquitto)" <<'EOF'
import json, sys
out, nats, redis, mqtt = sys.argv[1], *(a == "1" for a in sys.argv[2:5])
rows = [json.loads(l) for l in open(f"{out}/results.jsonl") if l.strip()]
got = {(r["shape"], r["system"]): r for r in rows}
failed = []
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
    if not cond:
        failed.append(what)

live = ["busd", "relay-hwm1000", "relay-hwm0"] + (["nats"] if nats else []) \
       + (["redis"] if redis else [])
want = [(s, sy) for s in ("1to1", "1to4", "slow") for sy in live]
want += [("rtt", sy) for sy in ["busd", "relay-hwm0"] + (["nats"] if nats else [])
         + (["redis"] if redis else []) + (["mosquitto"] if mqtt else [])]
want += [("latency", "busd"), ("latency", "relay-hwm0"), ("latency", "direct")]
want += ([("durable", "jetstream")] if nats else []) \
        + ([("durable", "mosquitto-qos1")] if mqtt else [])
for key in want:
    r = got.get(key)
    check(r is not None and r["rc"] == 0 and "error" not in r["data"],
          f"{key[0]} / {key[1]} ran and exited 0"
          + ("" if r is None else f" (exit {r['rc']}, {str(r['data'])[:200]})"
             if r["rc"] or "error" in r["data"] else ""))

for (shape, system), r in sorted(got.items()):
    d = r["data"]
    if "sub" in d:
        count = d["count"]
        for i, s in enumerate(d["sub"]["per_subscriber"]):
            check(s["msgs"] - s["duplicates"] + s["lost"] == count,
                  f"{shape} / {system}: subscriber {i + 1} accounts for all {count} events "
                  f"(received {s['msgs']}, duplicates {s['duplicates']}, lost {s['lost']})")
        if system.startswith("busd"):
            check(d["lost"] == 0, f"{shape} / {system}: busd lost nothing")
    if shape in ("rtt", "latency"):
        check(d.get("p50_us", 0) > 0 and d.get("p99_us", 0) >= d.get("p50_us", 0),
              f"{shape} / {system}: p50 and p99")

table = open(f"{out}/table.md").read()
for text in ("busd/NATS", "busd/Redis", "busd/relay0", "round trip (ping-pong", "Targets"):
    check(text in table, f"the table shows '{text}'")
durable_busd = any(s.startswith("busd-") for (sh, s) in got if sh == "durable")
check(durable_busd or "busd: SKIPPED" in table,
      "durable: busd measured, or the table says it was skipped")
sys.exit(1 if failed else 0)
EOF
