#!/bin/bash
# bench/compare.sh - busd against a plain zmq_proxy relay, same shapes, one run.
#
# Builds what it needs (make), then for every shape starts a fresh broker
# (src/broker/busd) or a fresh relay (bench/zmq_proxy_relay) on free
# 127.0.0.1 ports, runs busd-bench or bench/zmq_bench against it, reads the
# broker's peak RSS (VmHWM) and CPU time from /proc, and stops it.  A fresh
# process per shape keeps each peak RSS about that shape alone.
#
# Shapes: 1 -> 1 and 1 -> 4 with SIZE-byte events, one-at-a-time round-trip
# latency, and a slowed subscriber (one of two subscribers sleeps SLOW_MS
# every SLOW_EVERY events).  The relay runs twice per throughput shape: with
# ZeroMQ's default high-water mark (1000: bounded memory, drops silently)
# and unbounded (hwm 0: no drops, unbounded memory), the two things busd's
# credit avoids choosing between.
#
# Every shape runs REPEAT times (busd and relay alternating, so a noisy
# neighbour hurts both alike); the table shows the median of each number
# (peak RSS: the largest).
#
# Usage: bench/compare.sh [--quick] [--no-build] [--out DIR]
# Environment: COUNT FANOUT_COUNT LAT_COUNT SLOW_COUNT SIZE SLOW_MS SLOW_EVERY
#              REPEAT (default 3), RUN_TIMEOUT (seconds per client run, 300)
# Build without sanitizers (./configure) for meaningful numbers.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

build=1
out=
COUNT=${COUNT:-1000000}
FANOUT_COUNT=${FANOUT_COUNT:-$COUNT}
LAT_COUNT=${LAT_COUNT:-10000}
SLOW_COUNT=${SLOW_COUNT:-200000}
SIZE=${SIZE:-100}
SLOW_MS=${SLOW_MS:-1}
SLOW_EVERY=${SLOW_EVERY:-100}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
REPEAT=${REPEAT:-3}
while [ $# -gt 0 ]; do
    case $1 in
        --quick)    COUNT=50000; FANOUT_COUNT=20000; LAT_COUNT=1000; SLOW_COUNT=20000
                    REPEAT=1 ;;
        --no-build) build=0 ;;
        --out)      shift; out=${1:?--out needs a directory} ;;
        -h|--help)  sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
        *)          echo "compare.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

BUSD=$top/src/broker/busd
BENCH=$top/src/tools/busd-bench
RELAY=$top/bench/zmq_proxy_relay
ZBENCH=$top/bench/zmq_bench

if [ "$build" = 1 ]; then
    if [ ! -f Makefile ]; then
        echo "compare.sh: no Makefile; run ./autogen.sh && ./configure first" >&2
        exit 1
    fi
    if grep -q '^SANITIZE_CFLAGS = .*-fsanitize' Makefile; then
        echo "compare.sh: warning: this tree is configured with sanitizers;" \
             "the numbers will not mean much" >&2
    fi
    make -j"$(nproc)" src/broker/busd src/tools/busd-bench bench/zmq_proxy_relay \
        bench/zmq_bench >/dev/null || { echo "compare.sh: build failed" >&2; exit 1; }
fi
for b in "$BUSD" "$BENCH" "$RELAY" "$ZBENCH"; do
    [ -x "$b" ] || { echo "compare.sh: $b is not built" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/busd-compare.XXXXXX") || exit 1
[ -n "$out" ] || out=$work
mkdir -p "$out" || exit 1
results=$out/results.jsonl
: >"$results"
server_pid=

cleanup () {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    [ "$out" = "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

unset BUSD_ENDPOINT

free_port () {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_port PORT: until something accepts TCP connections on it (5 s).
wait_port () {
    local i=0
    while [ $i -lt 100 ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# start_server KIND [HWM]: a fresh busd or relay; sets ENDPOINT (busd) or
# PUB_EP/SUB_EP (relay), and server_pid.
start_server () {
    local kind=$1 hwm=${2:-1000} port port2
    port=$(free_port) || return 1
    if [ "$kind" = busd ]; then
        ENDPOINT=tcp://127.0.0.1:$port
        "$BUSD" --bind "$ENDPOINT" --log-level warning >>"$work/busd.log" 2>&1 &
    else
        port2=$(free_port) || return 1
        PUB_EP=tcp://127.0.0.1:$port
        SUB_EP=tcp://127.0.0.1:$port2
        "$RELAY" --xsub "$PUB_EP" --xpub "$SUB_EP" --hwm "$hwm" >>"$work/relay.log" 2>&1 &
    fi
    server_pid=$!
    wait_port "$port" || { echo "compare.sh: $kind did not start" >&2; exit 1; }
    if [ "$kind" = relay ]; then
        wait_port "$port2" || { echo "compare.sh: relay did not start" >&2; exit 1; }
    fi
}

# stop_server: record peak RSS (kB) and CPU seconds in SRV_RSS / SRV_CPU.
stop_server () {
    SRV_RSS=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null)
    SRV_CPU=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' \
              "/proc/$server_pid/stat" 2>/dev/null)
    kill -TERM "$server_pid" 2>/dev/null
    local i=0
    while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
}

# record NAME SYSTEM JSONFILE RC: one line of results.jsonl.
record () {
    python3 - "$1" "$2" "$3" "$4" "${SRV_RSS:-0}" "${SRV_CPU:-0}" "$rep" "${CLI_CPU:-0}" \
        >>"$results" <<'EOF'
import json, sys
name, system, path, rc, rss, cpu, rep, cli = sys.argv[1:9]
try:
    data = json.load(open(path))
except Exception:
    data = {"error": open(path).read()[-500:]}
print(json.dumps({"shape": name, "system": system, "rc": int(rc), "rep": int(rep),
                  "rss_kb": int(rss or 0), "cpu_s": float(cpu or 0),
                  "client_cpu_s": float(cli or 0), "data": data}))
EOF
}

# run_busd NAME ARGS...: one busd-bench run against a fresh busd.
run_busd () {
    local name=$1
    shift
    start_server busd
    echo "== $name: busd-bench $*" >&2
    local rc
    TIMEFORMAT='%3U %3S'
    { time timeout "$RUN_TIMEOUT" "$BENCH" -e "$ENDPOINT" --json "$@" \
        >"$work/$name.busd.$rep.json" 2>"$work/$name.busd.$rep.err"; rc=$?; } 2>"$work/time"
    CLI_CPU=$(awk '{ print $1 + $2 }' "$work/time")
    stop_server
    [ -s "$work/$name.busd.$rep.err" ] && sed 's/^/   /' "$work/$name.busd.$rep.err" >&2
    record "$name" busd "$work/$name.busd.$rep.json" $rc
}

# run_relay NAME HWM ARGS...: one zmq_bench run against a fresh relay.
run_relay () {
    local name=$1 hwm=$2
    shift 2
    start_server relay "$hwm"
    echo "== $name: zmq_bench --hwm $hwm $*" >&2
    local rc
    TIMEFORMAT='%3U %3S'
    { time timeout "$RUN_TIMEOUT" "$ZBENCH" --pub-ep "$PUB_EP" --sub-ep "$SUB_EP" --hwm "$hwm" \
        --json "$@" >"$work/$name.relay$hwm.$rep.json" 2>"$work/$name.relay$hwm.$rep.err"; rc=$?; } \
        2>"$work/time"
    CLI_CPU=$(awk '{ print $1 + $2 }' "$work/time")
    stop_server
    [ -s "$work/$name.relay$hwm.$rep.err" ] && sed 's/^/   /' "$work/$name.relay$hwm.$rep.err" >&2
    record "$name" "relay-hwm$hwm" "$work/$name.relay$hwm.$rep.json" $rc
}

{
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
         "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
         "Linux $(uname -r), libzmq $(pkg-config --modversion libzmq 2>/dev/null || echo '?')"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "shapes: COUNT=$COUNT FANOUT_COUNT=$FANOUT_COUNT LAT_COUNT=$LAT_COUNT" \
         "SLOW_COUNT=$SLOW_COUNT SIZE=$SIZE SLOW_MS=$SLOW_MS SLOW_EVERY=$SLOW_EVERY REPEAT=$REPEAT"
} | tee "$out/machine.txt" >&2
echo "compare.sh: results in $results" >&2

# run_direct NAME ARGS...: zmq_bench --direct, PUB straight to SUB with no
# broker at all: the one-hop floor of the round trip on this machine.
run_direct () {
    local name=$1 port
    shift
    port=$(free_port) || exit 1
    echo "== $name: zmq_bench --direct $*" >&2
    SRV_RSS=0 SRV_CPU=0 CLI_CPU=0
    timeout "$RUN_TIMEOUT" "$ZBENCH" --direct --pub-ep "tcp://127.0.0.1:$port" --json "$@" \
        >"$work/$name.direct.$rep.json" 2>"$work/$name.direct.$rep.err"
    local rc=$?
    [ -s "$work/$name.direct.$rep.err" ] && sed 's/^/   /' "$work/$name.direct.$rep.err" >&2
    record "$name" direct "$work/$name.direct.$rep.json" $rc
}

SLOW="--slow-sub-ms $SLOW_MS --slow-every $SLOW_EVERY"
rep=1
while [ $rep -le "$REPEAT" ]; do
    echo "---- round $rep of $REPEAT" >&2
    run_busd  "1to1" --pub 1 --sub 1 --count "$COUNT" --size "$SIZE"
    run_relay "1to1" 1000 --sub 1 --count "$COUNT" --size "$SIZE"
    run_relay "1to1" 0    --sub 1 --count "$COUNT" --size "$SIZE"
    run_busd  "1to4" --pub 1 --sub 4 --count "$FANOUT_COUNT" --size "$SIZE"
    run_relay "1to4" 1000 --sub 4 --count "$FANOUT_COUNT" --size "$SIZE"
    run_relay "1to4" 0    --sub 4 --count "$FANOUT_COUNT" --size "$SIZE"
    run_busd  "latency" --latency --count "$LAT_COUNT" --size "$SIZE"
    run_relay "latency" 1000 --latency --count "$LAT_COUNT" --size "$SIZE"
    run_direct "latency" --latency --count "$LAT_COUNT" --size "$SIZE"
    # shellcheck disable=SC2086
    run_busd  "slow" --pub 1 --sub 2 --count "$SLOW_COUNT" --size "$SIZE" $SLOW
    # shellcheck disable=SC2086
    run_relay "slow" 1000 --sub 2 --count "$SLOW_COUNT" --size "$SIZE" $SLOW
    # shellcheck disable=SC2086
    run_relay "slow" 0    --sub 2 --count "$SLOW_COUNT" --size "$SIZE" $SLOW
    rep=$((rep + 1))
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt" >&2

python3 - "$results" "$COUNT" "$FANOUT_COUNT" "$LAT_COUNT" "$SLOW_COUNT" "$SIZE" \
          "$SLOW_MS" "$SLOW_EVERY" <<'EOF'
import json, sys
path, count, fanout, lat, slow, size, slow_ms, slow_every = sys.argv[1:9]
import statistics
rows = [json.loads(l) for l in open(path) if l.strip()]
res = {}
for r in rows:
    res.setdefault((r["shape"], r["system"]), []).append(r)
systems = ["busd", "relay-hwm1000", "relay-hwm0"]

def median(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    m = statistics.median(vals)
    return int(m) if all(isinstance(v, int) for v in vals) and m == int(m) else float(m)

def one(r, keys):
    if keys[0] in ("rss_kb", "cpu_s", "rc", "client_cpu_s"):
        return r[keys[0]]
    d = r["data"]
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d

def get(shape, system, *keys):
    runs = res.get((shape, system), [])
    if keys[0] == "rss_kb":
        vals = [r["rss_kb"] for r in runs if r["rss_kb"]]
        return max(vals) if vals else None
    return median([one(r, keys) for r in runs])

def per_sub(shape, system, key, which):
    out = []
    for r in res.get((shape, system), []):
        subs = one(r, ("sub", "per_subscriber")) or []
        vals = [s[key] for s in subs if s.get("slow", False) == which]
        if vals:
            out.append(sum(vals) // len(vals) if all(isinstance(v, int) for v in vals)
                       else sum(vals) / len(vals))
    return median(out)

def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}{unit}"
    if isinstance(v, float) and v < 10:
        return f"{v:.2f}{unit}"
    if isinstance(v, float):
        return f"{v:.1f}{unit}"
    return f"{v:,}{unit}"

def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"

table = []
def row(shape, label, fn, unit=""):
    vals = [fn(shape, s) for s in systems]
    table.append([shape, label] + [fmt(v, unit) for v in vals]
                 + [ratio(vals[0], vals[1]), ratio(vals[0], vals[2])])

thr = [("1to1", f"1->1, {int(count):,} x {size} B"),
       ("1to4", f"1->4, {int(fanout):,} x {size} B"),
       ("slow", f"1->2, one slowed {slow_ms} ms/{slow_every}, {int(slow):,} x {size} B")]
for shape, title in thr:
    row(title, "publish rate (msgs/s)", lambda sh, s, shape=shape: get(shape, s, "pub", "msgs_per_s"))
    row(title, "delivered, aggregate (msgs/s)", lambda sh, s, shape=shape: get(shape, s, "sub", "msgs_per_s"))
    row(title, "delivered per fast subscriber (msgs/s)",
        lambda sh, s, shape=shape: per_sub(shape, s, "msgs_per_s", False))
    if shape == "slow":
        row(title, "delivered to the slow subscriber (msgs/s)",
            lambda sh, s, shape=shape: per_sub(shape, s, "msgs_per_s", True))
        row(title, "lost by the slow subscriber",
            lambda sh, s, shape=shape: per_sub(shape, s, "lost", True))
        row(title, "lost by the fast subscriber",
            lambda sh, s, shape=shape: per_sub(shape, s, "lost", False))
    else:
        row(title, "events lost (all subscribers)", lambda sh, s, shape=shape: get(shape, s, "lost"))
    row(title, "broker peak RSS (MB)",
        lambda sh, s, shape=shape: (get(shape, s, "rss_kb") / 1024.0) if get(shape, s, "rss_kb") else None)
    row(title, "broker CPU (s)", lambda sh, s, shape=shape: get(shape, s, "cpu_s"))
    row(title, "broker CPU per delivered event (us)",
        lambda sh, s, shape=shape: median([r["cpu_s"] * 1e6 / one(r, ("sub", "msgs"))
                                          for r in res.get((shape, s), [])
                                          if one(r, ("sub", "msgs"))]))
    row(title, "client CPU per delivered event (us)",
        lambda sh, s, shape=shape: median([r["client_cpu_s"] * 1e6 / one(r, ("sub", "msgs"))
                                          for r in res.get((shape, s), [])
                                          if one(r, ("sub", "msgs"))]))
title = f"round trip, {int(lat):,} x {size} B, one at a time"
for key, label in [("p50_us", "p50 (us)"), ("p90_us", "p90 (us)"), ("p99_us", "p99 (us)"),
                   ("p99_9_us", "p99.9 (us)"), ("max_us", "max (us)")]:
    row(title, label, lambda sh, s, key=key: get("latency", s, key))

heads = ["shape", "metric", "busd", "relay hwm=1000", "relay hwm=0",
         "busd/relay1000", "busd/relay0"]
widths = [max(len(str(x[i])) for x in table + [heads]) for i in range(len(heads))]
def line(cells):
    return "| " + " | ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))) + " |"
print(line(heads))
print("|" + "|".join(("-" * (w + 2)) if i < 2 else ("-" * (w + 1) + ":")
                     for i, w in enumerate(widths)) + "|")
last = None
for r in table:
    cells = list(r)
    if cells[0] == last:
        cells[0] = ""
    else:
        last = cells[0]
    print(line(cells))
floor = [get("latency", "direct", k) for k in ("p50_us", "p99_us")]
if floor[0] is not None:
    print(f"\nFloor, PUB -> SUB direct (one hop, no broker): p50 {floor[0]:.1f} us,"
          f" p99 {floor[1]:.1f} us.")
print(f"\nMedians of {max(len(v) for v in res.values())} run(s) per cell; peak RSS is the largest.")
bad = [f"{r['shape']}/{r['system']}#{r['rep']} exit {r['rc']}" for r in rows if r["rc"] != 0]
if bad:
    print("\nNon-zero exits: " + ", ".join(bad))
EOF
