#!/bin/bash
# bench/compare.sh - busd against NATS, Redis, a plain zmq_proxy relay and,
# for durable publishing, NATS JetStream and Mosquitto: same shapes, one run.
#
# Builds what it needs (make for busd, busd-bench, the relay and zmq_bench;
# cc + pkg-config for bench/nats_bench, redis_bench and mqtt_bench, whose
# client libraries are optional), then for every run starts a fresh server
# on free 127.0.0.1 ports, runs that broker's client against it, reads the
# server's peak RSS (VmHWM) and CPU time from /proc, and stops it.  A fresh
# process per run keeps each peak RSS about that run alone.
#
# Brokers and clients (each broker driven by its own C client library):
#   busd         src/broker/busd, src/tools/busd-bench (libbusd)
#   NATS         nats-server, bench/nats_bench (libnats)
#   Redis        redis-server PUBLISH/SUBSCRIBE, bench/redis_bench (hiredis)
#   relay        bench/zmq_proxy_relay (zmq_proxy XSUB/XPUB), bench/zmq_bench;
#                with ZeroMQ's default HWM 1000 (bounded, drops silently) and
#                with HWM 0 (no drops, unbounded memory)
#   Mosquitto    mosquitto, bench/mqtt_bench (libmosquitto): round trip (QoS 0)
#                and durable (QoS 1)
#   JetStream    nats-server -js, bench/nats_bench --durable: stream over
#                bench.>, file storage, one replica, async publish with acks
#
# Shapes (SIZE-byte events; every event carries a sequence number, so every
# client counts lost, duplicated and reordered events exactly):
#   1to1     1 publisher -> 1 subscriber, COUNT events
#   1to4     1 publisher -> 4 subscribers, FANOUT_COUNT events (aggregate
#            deliveries per second)
#   slow     1 publisher -> 2 subscribers, one sleeps SLOW_MS every SLOW_EVERY
#            events, SLOW_COUNT events: loss, throttling, broker RSS
#   rtt      round trip as a ping-pong: A publishes, B receives and publishes
#            a reply, A receives it (two broker traversals), LAT_COUNT times
#   latency  one way, publish -> deliver (one traversal; busd and the relay,
#            and the direct PUB->SUB floor), LAT_COUNT times
#   durable  1 -> 1, DURABLE_COUNT events, publisher acknowledged only once
#            stored: busd with a stream per sync policy (always, interval,
#            never; skipped with a message when this busd has no streams),
#            JetStream R1 file storage, Mosquitto QoS 1
#
# The brokers are interleaved: each of REPEAT rounds runs every broker once
# per shape, so a noisy neighbour hurts all of them alike.  The tables show
# the median of each number over the rounds (peak RSS: the largest) and the
# ratios busd/NATS, busd/Redis and busd/relay (unbounded), then the issue's
# targets with "met" or "NOT met".
#
# Usage: bench/compare.sh [--quick] [--no-build] [--only SHAPE,...] [--out DIR]
#   --quick      small counts, one round (about 2 minutes): proves the harness
#   --no-build   do not run make (the bench clients are still compiled)
#   --only LIST  comma-separated shapes from: 1to1 1to4 slow rtt latency durable
#   --out DIR    keep results.jsonl, table.md, machine.txt and logs in DIR
# Environment: COUNT FANOUT_COUNT LAT_COUNT SLOW_COUNT DURABLE_COUNT SIZE
#              SLOW_MS SLOW_EVERY REPEAT (default 3) RUN_TIMEOUT (s per run,
#              300) DATA_DIR (where the durable stores go; default: a
#              temporary directory under $TMPDIR or /tmp; give one on the disk
#              you mean to measure), BUSD and BUSD_BENCH (the broker and
#              bench binaries; default: this tree's), BUSD_BENCH_ARGS (extra
#              busd-bench options for every busd run, e.g. --no-batch)
# Build without sanitizers (./configure) for meaningful numbers.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

build=1
out=
only=
COUNT=${COUNT:-1000000}
FANOUT_COUNT=${FANOUT_COUNT:-$COUNT}
LAT_COUNT=${LAT_COUNT:-10000}
SLOW_COUNT=${SLOW_COUNT:-200000}
DURABLE_COUNT=${DURABLE_COUNT:-200000}
SIZE=${SIZE:-100}
SLOW_MS=${SLOW_MS:-1}
SLOW_EVERY=${SLOW_EVERY:-100}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
REPEAT=${REPEAT:-3}
while [ $# -gt 0 ]; do
    case $1 in
        --quick)    COUNT=50000; FANOUT_COUNT=20000; LAT_COUNT=1000; SLOW_COUNT=20000
                    DURABLE_COUNT=20000; REPEAT=1 ;;
        --no-build) build=0 ;;
        --only)     shift; only=${1:?--only needs a list of shapes} ;;
        --out)      shift; out=${1:?--out needs a directory} ;;
        -h|--help)  sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
        *)          echo "compare.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
for s in ${only//,/ }; do
    case $s in
        1to1|1to4|slow|rtt|latency|durable) ;;
        *) echo "compare.sh: --only: unknown shape '$s'" \
                "(1to1, 1to4, slow, rtt, latency, durable)" >&2; exit 2 ;;
    esac
done

BUSD=${BUSD:-$top/src/broker/busd}
BENCH=${BUSD_BENCH:-$top/src/tools/busd-bench}
RELAY=$top/bench/zmq_proxy_relay
ZBENCH=$top/bench/zmq_bench

if [ "$build" = 1 ]; then
    if [ ! -f Makefile ]; then
        echo "compare.sh: no Makefile; run ./autogen.sh && ./configure first" >&2
        exit 1
    fi
    make -j"$(nproc)" src/broker/busd src/tools/busd-bench bench/zmq_proxy_relay \
        bench/zmq_bench >/dev/null || { echo "compare.sh: build failed" >&2; exit 1; }
fi
if [ -f Makefile ] && grep -q '^SANITIZE_CFLAGS = .*-fsanitize' Makefile; then
    echo "compare.sh: warning: this tree is configured with sanitizers;" \
         "the numbers will not mean much" >&2
fi
for b in "$BUSD" "$BENCH" "$RELAY" "$ZBENCH"; do
    [ -x "$b" ] || { echo "compare.sh: $b is not built" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/busd-compare.XXXXXX") || exit 1
[ -n "$out" ] || out=$work
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
data=${DATA_DIR:-$work/data}
mkdir -p "$data" || exit 1
results=$out/results.jsonl
: >"$results"
server_pid=

cleanup () {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$data"/run.* 2>/dev/null
    [ "$out" = "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

unset BUSD_ENDPOINT

# ---------------------------------------------------------------- clients
# build_client NAME PKG: cc + pkg-config into $work/bin; 1 when the library
# or the compiler is missing (the broker is then skipped, said once).
mkdir -p "$work/bin"
build_client () {
    local name=$1 pkg=$2
    if ! pkg-config --exists "$pkg" 2>/dev/null; then
        echo "compare.sh: $pkg not found by pkg-config; skipping $name" \
             "(Debian: see dist/debian-packages.txt)" >&2
        return 1
    fi
    # shellcheck disable=SC2046
    ${CC:-cc} -std=gnu11 -O2 -g -Wall -Wextra -Werror $(pkg-config --cflags "$pkg") \
        -o "$work/bin/$name" "bench/$name.c" $(pkg-config --libs "$pkg") -pthread \
        || { echo "compare.sh: building bench/$name.c failed; skipping it" >&2; return 1; }
}
have () {
    command -v "$1" >/dev/null 2>&1 \
        || { echo "compare.sh: $1 not installed; skipping it" >&2; return 1; }
}
HAVE_NATS=0; HAVE_REDIS=0; HAVE_MQTT=0; HAVE_STREAMS=0
have nats-server && build_client nats_bench libnats && HAVE_NATS=1
have redis-server && build_client redis_bench hiredis && HAVE_REDIS=1
have mosquitto && build_client mqtt_bench libmosquitto && HAVE_MQTT=1

# Does this busd have durable streams?  Its configuration check rejects
# keys it does not know, so a stream configuration passes only where
# streams exist.
busd_config () {   # busd_config FILE POLICY DIR
    cat >"$1" <<EOF
{
  "data_dir": "$3",
  "streams": [ { "name": "bench", "patterns": ["bench.#"], "sync": "$2" } ]
}
EOF
}
mkdir -p "$data/run.check"
busd_config "$work/check.json" always "$data/run.check"
if "$BUSD" --check-config -c "$work/check.json" >"$work/check.out" 2>&1; then
    HAVE_STREAMS=1
else
    STREAMS_WHY=$(head -c 300 "$work/check.out" | tr '\n' ' ')
    echo "compare.sh: this busd has no durable streams (busd --check-config with" \
         "\"data_dir\" and \"streams\" said: $STREAMS_WHY); skipping busd in the" \
         "durable shape" >&2
fi
rm -rf "$data/run.check"

want () {   # want SHAPE: is it selected by --only?
    [ -z "$only" ] && return 0
    case ",$only," in *",$1,"*) return 0 ;; esac
    return 1
}

# ---------------------------------------------------------------- servers
free_port () {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_port PORT: until something accepts TCP connections on it (10 s).
wait_port () {
    local i=0
    while [ $i -lt 200 ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# start_server KIND [ARG]: a fresh server; sets PORT (and PORT2 for the
# relay) and server_pid.  KIND: busd, busd-stream (ARG: sync policy),
# relay (ARG: hwm), nats, jetstream, redis, mosquitto.
start_server () {
    local kind=$1 arg=${2:-} dir
    PORT=$(free_port) || exit 1
    dir=$data/run.$kind.$rep.$RANDOM
    case $kind in
        busd)
            "$BUSD" --bind "tcp://127.0.0.1:$PORT" --log-level warning >>"$work/busd.log" 2>&1 & ;;
        busd-stream)
            mkdir -p "$dir" || exit 1
            busd_config "$work/busd-$arg.json" "$arg" "$dir"
            "$BUSD" -c "$work/busd-$arg.json" --bind "tcp://127.0.0.1:$PORT" \
                --log-level warning >>"$work/busd.log" 2>&1 & ;;
        relay)
            PORT2=$(free_port) || exit 1
            "$RELAY" --xsub "tcp://127.0.0.1:$PORT" --xpub "tcp://127.0.0.1:$PORT2" \
                --hwm "$arg" >>"$work/relay.log" 2>&1 & ;;
        nats)
            nats-server -a 127.0.0.1 -p "$PORT" >>"$work/nats.log" 2>&1 & ;;
        jetstream)
            mkdir -p "$dir" || exit 1
            nats-server -a 127.0.0.1 -p "$PORT" -js -sd "$dir" >>"$work/nats.log" 2>&1 & ;;
        redis)
            redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
                --protected-mode no --daemonize no --dir "$work" --loglevel warning \
                >>"$work/redis.log" 2>&1 & ;;
        mosquitto)
            # max_inflight_messages as busd's subscriber credit; no queue
            # limit, so QoS 1 loses nothing (its memory is then unbounded).
            mkdir -p "$dir" || exit 1
            cat >"$work/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/
max_inflight_messages 1000
max_queued_messages 0
EOF
            mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 & ;;
    esac
    server_pid=$!
    SERVER_DIR=$dir
    wait_port "$PORT" || { echo "compare.sh: $kind did not start (see $work/*.log)" >&2; exit 1; }
    if [ "$kind" = relay ]; then
        wait_port "$PORT2" || { echo "compare.sh: relay did not start" >&2; exit 1; }
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
    rm -rf "$SERVER_DIR"
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

# run SHAPE SYSTEM KIND KARG CLIENT ARGS...: start a server of KIND, run
# CLIENT against it (the client's endpoint options are substituted for
# @EP@), record, stop.
run () {
    local shape=$1 system=$2 kind=$3 karg=$4 client=$5
    shift 5
    start_server "$kind" "$karg"
    local -a ep
    # shellcheck disable=SC2206
    case $kind in
        busd|busd-stream) ep=(-e "tcp://127.0.0.1:$PORT" ${BUSD_BENCH_ARGS:-}) ;;
        relay)            ep=(--pub-ep "tcp://127.0.0.1:$PORT" --sub-ep "tcp://127.0.0.1:$PORT2") ;;
        *)                ep=(--port "$PORT") ;;
    esac
    local base=$work/$shape.$system.$rep rc
    local extra=
    case $kind in busd|busd-stream) extra=${BUSD_BENCH_ARGS:+$BUSD_BENCH_ARGS } ;; esac
    echo "== $shape / $system: $(basename "$client") $extra$*" >&2
    TIMEFORMAT='%3U %3S'
    { time timeout "$RUN_TIMEOUT" "$client" "${ep[@]}" --json "$@" \
        >"$base.json" 2>"$base.err"; rc=$?; } 2>"$work/time"
    CLI_CPU=$(awk '{ print $1 + $2 }' "$work/time")
    stop_server
    [ -s "$base.err" ] && sed 's/^/   /' "$base.err" | head -20 >&2
    record "$shape" "$system" "$base.json" $rc
}

# run_direct: zmq_bench --direct, PUB straight to SUB with no broker at
# all: the one-hop floor of the one-way latency on this machine.
run_direct () {
    local port base=$work/latency.direct.$rep
    port=$(free_port) || exit 1
    echo "== latency / direct: zmq_bench --direct $*" >&2
    SRV_RSS=0 SRV_CPU=0 CLI_CPU=0
    timeout "$RUN_TIMEOUT" "$ZBENCH" --direct --pub-ep "tcp://127.0.0.1:$port" --json "$@" \
        >"$base.json" 2>"$base.err"
    local rc=$?
    [ -s "$base.err" ] && sed 's/^/   /' "$base.err" >&2
    record latency direct "$base.json" $rc
}

{
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
         "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
         "Linux $(uname -r)"
    echo "software: busd $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?')," \
         "libzmq $(pkg-config --modversion libzmq 2>/dev/null || echo '?')," \
         "nats-server $(nats-server --version 2>/dev/null | sed 's/.*v//' || echo '-')" \
         "(libnats $(pkg-config --modversion libnats 2>/dev/null || echo '-'))," \
         "redis $(redis-server --version 2>/dev/null | sed 's/.* v=\([^ ]*\).*/\1/' || echo '-')" \
         "(hiredis $(pkg-config --modversion hiredis 2>/dev/null || echo '-'))," \
         "mosquitto $(pkg-config --modversion libmosquitto 2>/dev/null || echo '-')"
    echo "durable stores in $data: $(df -PT "$data" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "shapes: COUNT=$COUNT FANOUT_COUNT=$FANOUT_COUNT LAT_COUNT=$LAT_COUNT" \
         "SLOW_COUNT=$SLOW_COUNT DURABLE_COUNT=$DURABLE_COUNT SIZE=$SIZE SLOW_MS=$SLOW_MS" \
         "SLOW_EVERY=$SLOW_EVERY REPEAT=$REPEAT${only:+ only=$only}" \
         "${BUSD_BENCH_ARGS:+BUSD_BENCH_ARGS=$BUSD_BENCH_ARGS}"
} | tee "$out/machine.txt" >&2
echo "compare.sh: results in $results" >&2

t0=$(date +%s)
N="--count"
S="--size $SIZE"
SLOW="--slow-sub-ms $SLOW_MS --slow-every $SLOW_EVERY"
rep=1
while [ "$rep" -le "$REPEAT" ]; do
    echo "---- round $rep of $REPEAT" >&2
    # shellcheck disable=SC2086
    if want 1to1; then
        run 1to1 busd          busd  ""   "$BENCH"  --pub 1 --sub 1 $N "$COUNT" $S
        [ $HAVE_NATS = 1 ]  && run 1to1 nats  nats  "" "$work/bin/nats_bench"  --sub 1 $N "$COUNT" $S
        [ $HAVE_REDIS = 1 ] && run 1to1 redis redis "" "$work/bin/redis_bench" --sub 1 $N "$COUNT" $S
        run 1to1 relay-hwm1000 relay 1000 "$ZBENCH" --hwm 1000 --sub 1 $N "$COUNT" $S
        run 1to1 relay-hwm0    relay 0    "$ZBENCH" --hwm 0    --sub 1 $N "$COUNT" $S
    fi
    # shellcheck disable=SC2086
    if want 1to4; then
        run 1to4 busd          busd  ""   "$BENCH"  --pub 1 --sub 4 $N "$FANOUT_COUNT" $S
        [ $HAVE_NATS = 1 ]  && run 1to4 nats  nats  "" "$work/bin/nats_bench"  --sub 4 $N "$FANOUT_COUNT" $S
        [ $HAVE_REDIS = 1 ] && run 1to4 redis redis "" "$work/bin/redis_bench" --sub 4 $N "$FANOUT_COUNT" $S
        run 1to4 relay-hwm1000 relay 1000 "$ZBENCH" --hwm 1000 --sub 4 $N "$FANOUT_COUNT" $S
        run 1to4 relay-hwm0    relay 0    "$ZBENCH" --hwm 0    --sub 4 $N "$FANOUT_COUNT" $S
    fi
    # shellcheck disable=SC2086
    if want slow; then
        run slow busd          busd  ""   "$BENCH"  --pub 1 --sub 2 $N "$SLOW_COUNT" $S $SLOW
        [ $HAVE_NATS = 1 ]  && run slow nats  nats  "" "$work/bin/nats_bench"  --sub 2 $N "$SLOW_COUNT" $S $SLOW
        [ $HAVE_REDIS = 1 ] && run slow redis redis "" "$work/bin/redis_bench" --sub 2 $N "$SLOW_COUNT" $S $SLOW
        run slow relay-hwm1000 relay 1000 "$ZBENCH" --hwm 1000 --sub 2 $N "$SLOW_COUNT" $S $SLOW
        run slow relay-hwm0    relay 0    "$ZBENCH" --hwm 0    --sub 2 $N "$SLOW_COUNT" $S $SLOW
    fi
    # shellcheck disable=SC2086
    if want rtt; then
        run rtt busd      busd  ""  "$BENCH"  --rtt $N "$LAT_COUNT" $S
        [ $HAVE_NATS = 1 ]  && run rtt nats      nats      "" "$work/bin/nats_bench"  --rtt $N "$LAT_COUNT" $S
        [ $HAVE_REDIS = 1 ] && run rtt redis     redis     "" "$work/bin/redis_bench" --rtt $N "$LAT_COUNT" $S
        [ $HAVE_MQTT = 1 ]  && run rtt mosquitto mosquitto "" "$work/bin/mqtt_bench"  --rtt $N "$LAT_COUNT" $S
        run rtt relay-hwm0 relay 0 "$ZBENCH" --hwm 0 --rtt $N "$LAT_COUNT" $S
    fi
    # shellcheck disable=SC2086
    if want latency; then
        run latency busd       busd  ""  "$BENCH"  --latency $N "$LAT_COUNT" $S
        run latency relay-hwm0 relay 0   "$ZBENCH" --hwm 0 --latency $N "$LAT_COUNT" $S
        run_direct --latency $N "$LAT_COUNT" $S
    fi
    # shellcheck disable=SC2086
    if want durable; then
        if [ $HAVE_STREAMS = 1 ]; then
            for policy in always interval never; do
                run durable "busd-$policy" busd-stream "$policy" "$BENCH" \
                    --pub 1 --sub 1 $N "$DURABLE_COUNT" $S
            done
        fi
        [ $HAVE_NATS = 1 ] && run durable jetstream jetstream "" "$work/bin/nats_bench" \
            --durable --sub 1 $N "$DURABLE_COUNT" $S
        [ $HAVE_MQTT = 1 ] && run durable mosquitto-qos1 mosquitto "" "$work/bin/mqtt_bench" \
            --durable --sub 1 $N "$DURABLE_COUNT" $S
    fi
    rep=$((rep + 1))
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); run took $(( $(date +%s) - t0 )) s" \
    | tee -a "$out/machine.txt" >&2
if [ $HAVE_STREAMS = 0 ] && want durable; then
    echo "durable: busd skipped, no stream support in this build ($STREAMS_WHY)" >>"$out/machine.txt"
fi

python3 - "$results" "$COUNT" "$FANOUT_COUNT" "$LAT_COUNT" "$SLOW_COUNT" "$SIZE" \
          "$SLOW_MS" "$SLOW_EVERY" "$DURABLE_COUNT" "$HAVE_STREAMS" <<'EOF' | tee "$out/table.md"
import json, statistics, sys
(path, count, fanout, lat, slow, size, slow_ms, slow_every, durable,
 have_streams) = sys.argv[1:11]
rows = [json.loads(l) for l in open(path) if l.strip()]
res = {}
for r in rows:
    res.setdefault((r["shape"], r["system"]), []).append(r)

def median(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    m = statistics.median(vals)
    return int(m) if all(isinstance(v, int) for v in vals) and m == int(m) else float(m)

def one(r, keys):
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
        return max(vals) / 1024.0 if vals else None
    if keys[0] in ("cpu_s", "client_cpu_s"):
        return median([r[keys[0]] for r in runs])
    return median([one(r, keys) for r in runs])

def per_event(shape, system, key):
    return median([r[key] * 1e6 / one(r, ("sub", "msgs")) for r in res.get((shape, system), [])
                   if one(r, ("sub", "msgs"))])

def per_sub(shape, system, key, which):
    out = []
    for r in res.get((shape, system), []):
        subs = one(r, ("sub", "per_subscriber")) or []
        vals = [s[key] for s in subs if s.get("slow", False) == which]
        if vals:
            out.append(sum(vals) // len(vals) if all(isinstance(v, int) for v in vals)
                       else sum(vals) / len(vals))
    return median(out)

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    if isinstance(v, float) and v < 10:
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:.1f}"
    return f"{v:,}"

def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"

def table(heads, body):
    widths = [max(len(str(x[i])) for x in body + [heads]) for i in range(len(heads))]
    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(line(heads))
    print("|" + "|".join(("-" * (w + 2)) if i < 2 else ("-" * (w + 1) + ":")
                         for i, w in enumerate(widths)) + "|")
    last = None
    for r in body:
        cells = list(r)
        if cells[0] == last:
            cells[0] = ""
        else:
            last = cells[0]
        print(line(cells))
    print()

# ---- live shapes: busd against NATS, Redis, Mosquitto (round trip) and the relay
systems = ["busd", "nats", "redis", "mosquitto", "relay-hwm1000", "relay-hwm0"]
heads = ["shape", "metric", "busd", "NATS", "Redis", "Mosquitto", "relay hwm=1000",
         "relay hwm=0", "busd/NATS", "busd/Redis", "busd/relay0"]
body = []
def row(shape, label, fn, ratios=True):
    vals = [fn(shape, s) for s in systems]
    if all(v is None for v in vals):
        return
    body.append([shape, label] + [fmt(v) for v in vals]
                + ([ratio(vals[0], vals[1]), ratio(vals[0], vals[2]), ratio(vals[0], vals[5])]
                   if ratios else ["", "", ""]))

titles = {"1to1": f"1->1, {int(count):,} x {size} B",
          "1to4": f"1->4, {int(fanout):,} x {size} B",
          "slow": f"1->2, one slowed {slow_ms} ms/{slow_every}, {int(slow):,} x {size} B",
          "rtt": f"round trip (ping-pong, 2 traversals), {int(lat):,} x {size} B",
          "latency": f"one way (publish -> deliver), {int(lat):,} x {size} B"}
for shape in ("1to1", "1to4", "slow"):
    t = titles[shape]
    row(t, "publish rate, until the broker has all (msgs/s)",
        lambda sh, s, shape=shape: get(shape, s, "pub", "msgs_per_s"))
    row(t, "**delivered, aggregate (msgs/s)**",
        lambda sh, s, shape=shape: get(shape, s, "sub", "msgs_per_s"))
    if shape == "slow":
        row(t, "delivered to the fast subscriber (msgs/s)",
            lambda sh, s, shape=shape: per_sub(shape, s, "msgs_per_s", False))
        row(t, "delivered to the slow subscriber (msgs/s)",
            lambda sh, s, shape=shape: per_sub(shape, s, "msgs_per_s", True))
        row(t, "**lost by the slow subscriber**",
            lambda sh, s, shape=shape: per_sub(shape, s, "lost", True), False)
        row(t, "**lost by the fast subscriber**",
            lambda sh, s, shape=shape: per_sub(shape, s, "lost", False), False)
    else:
        row(t, "**events lost (all subscribers)**",
            lambda sh, s, shape=shape: get(shape, s, "lost"), False)
    row(t, "broker peak RSS (MB)", lambda sh, s, shape=shape: get(shape, s, "rss_kb"))
    row(t, "broker CPU per delivered event (us)",
        lambda sh, s, shape=shape: per_event(shape, s, "cpu_s"))
    row(t, "client CPU per delivered event (us)",
        lambda sh, s, shape=shape: per_event(shape, s, "client_cpu_s"))
for shape in ("rtt", "latency"):
    t = titles[shape]
    for key, label in [("p50_us", "p50 (us)"), ("p90_us", "p90 (us)"), ("p99_us", "p99 (us)"),
                       ("p99_9_us", "p99.9 (us)"), ("max_us", "max (us)")]:
        row(t, label, lambda sh, s, key=key, shape=shape: get(shape, s, key))
if body:
    print("Live events: busd with its defaults (overflow block, queue_limit 10000,")
    print("credits 1000); each other broker with its own C client and defaults.\n")
    table(heads, body)
floor = [get("latency", "direct", k) for k in ("p50_us", "p99_us")]
if floor[0] is not None:
    print(f"One-way floor, PUB -> SUB direct (one hop, no broker): p50 {floor[0]:.1f} us,"
          f" p99 {floor[1]:.1f} us.\n")

# ---- durable
dsys = ["busd-always", "busd-interval", "busd-never", "jetstream", "mosquitto-qos1"]
dheads = ["shape", "metric", "busd sync=always", "busd sync=interval", "busd sync=never",
          "JetStream R1 file", "Mosquitto QoS 1", "busd always/JetStream"]
dbody = []
def drow(label, fn, ratios=True):
    vals = [fn(s) for s in dsys]
    if all(v is None for v in vals):
        return
    dbody.append([f"durable 1->1, {int(durable):,} x {size} B", label] + [fmt(v) for v in vals]
                 + [ratio(vals[0], vals[3]) if ratios else ""])
drow("**publish rate, acknowledged (msgs/s)**", lambda s: get("durable", s, "pub", "msgs_per_s"))
drow("delivered (msgs/s)", lambda s: get("durable", s, "sub", "msgs_per_s"))
drow("**events lost**", lambda s: get("durable", s, "lost"), False)
drow("broker peak RSS (MB)", lambda s: get("durable", s, "rss_kb"))
drow("broker CPU per event (us)", lambda s: per_event("durable", s, "cpu_s"))
if dbody:
    print("Durable publishing: acknowledged only once stored under the broker's policy.")
    if have_streams != "1":
        print("busd: SKIPPED, this build has no durable streams (busd --check-config rejected")
        print('"data_dir"/"streams"); its columns are empty.')
    print()
    table(dheads, dbody)

# ---- targets
def verdict(ok):
    return "-" if ok is None else ("met" if ok else "NOT met")
t = []
def target(name, a, b, want, unit=""):
    ok = None if a is None or b is None else want(a, b)
    t.append([name, f"{fmt(a)}{unit} vs {fmt(b)}{unit}", ratio(a, b), verdict(ok)])
target("1->1 delivered: busd >= 1.2 x NATS", get("1to1", "busd", "sub", "msgs_per_s"),
       get("1to1", "nats", "sub", "msgs_per_s"), lambda a, b: a >= 1.2 * b)
target("1->4 delivered: busd >= 1.0 x relay hwm=0", get("1to4", "busd", "sub", "msgs_per_s"),
       get("1to4", "relay-hwm0", "sub", "msgs_per_s"), lambda a, b: a >= b)
target("round trip p50: busd <= Redis", get("rtt", "busd", "p50_us"),
       get("rtt", "redis", "p50_us"), lambda a, b: a <= b, " us")
target("round trip p99: busd <= Redis", get("rtt", "busd", "p99_us"),
       get("rtt", "redis", "p99_us"), lambda a, b: a <= b, " us")
lost = [get(s, "busd", "lost") for s in ("1to1", "1to4", "slow")]
lost = None if all(v is None for v in lost) else sum(v or 0 for v in lost)
t.append(["busd: 0 lost in 1->1, 1->4, slowed", fmt(lost), "", verdict(None if lost is None
                                                                       else lost == 0)])
target("durable always: busd >= 200,000 msgs/s", get("durable", "busd-always", "pub", "msgs_per_s"),
       200000.0, lambda a, b: a >= b)
target("durable always: busd > JetStream R1", get("durable", "busd-always", "pub", "msgs_per_s"),
       get("durable", "jetstream", "pub", "msgs_per_s"), lambda a, b: a > b)
print("Targets (issues 15 and 11), medians of this run:\n")
table(["target", "busd vs other", "ratio", "verdict"], t)

print(f"Medians of {max(len(v) for v in res.values()) if res else 0} round(s) per cell;"
      " peak RSS is the largest.")
bad = [f"{r['shape']}/{r['system']}#{r['rep']} exit {r['rc']}" for r in rows if r["rc"] != 0]
if bad:
    print("Non-zero exits: " + ", ".join(bad))
EOF
