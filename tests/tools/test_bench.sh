#!/bin/bash
# test_bench.sh - busd-bench smoke test against a real broker: a tiny
# fan-out run (1 publisher -> 2 subscribers) must exit 0 and report no loss
# in its --json output, and a short --latency run must print p50.
. "$(dirname "$0")/lib.sh"

BENCH="$BUSD_TOOLS/busd-bench"
if [ ! -x "$BENCH" ]; then
    echo "SKIP: $BENCH not built"
    exit 77
fi

start_busd

# json_get KEY FILE: a top-level number or boolean from the JSON output.
json_get () {
    python3 -c 'import json, sys
print(json.load(open(sys.argv[2]))[sys.argv[1]])' "$1" "$2"
}

# ---- throughput, 1 -> 2, JSON
expect_rc 0 "1 publisher -> 2 subscribers, 2000 events" \
    timeout 60 "$BENCH" --pub 1 --sub 2 --count 2000 --size 64 --json --idle-timeout 10
cp "$T/out" "$T/fanout.json"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$T/fanout.json" \
    || fail "--json output is not JSON: $(cat "$T/fanout.json")"
[ "$(json_get lost "$T/fanout.json")" = 0 ] || fail "events lost: $(cat "$T/fanout.json")"
[ "$(json_get duplicates "$T/fanout.json")" = 0 ] || fail "duplicates reported"
[ "$(json_get out_of_order "$T/fanout.json")" = 0 ] || fail "reordering reported"
n=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(sum(s["msgs"] for s in d["sub"]["per_subscriber"]))' "$T/fanout.json")
[ "$n" = 4000 ] || fail "subscribers received $n events, expected 4000"
ok "--json reports 0 lost and 4000 deliveries"

# ---- throughput, text output, 2 publishers, slowed subscriber under block
expect_rc 0 "2 publishers, slowed subscriber, block" \
    timeout 60 "$BENCH" --pub 2 --sub 2 --count 500 --size 16 --slow-sub-ms 1 \
        --slow-every 100 --queue-limit 50 --credit 20
grep -q '^Lost 0, duplicates 0, out-of-order 0' "$T/out" \
    || fail "text summary: $(cat "$T/out")"
ok "text summary says nothing was lost"

# ---- many clients connecting at once, each from its own thread: they
# share no endpoint buffer (a shared one made a good tcp:// endpoint fail
# now and then with "no transport", exit 2).
for i in 1 2 3 4 5 6 7 8; do
    expect_rc 0 "4 publishers and 4 subscribers connecting at once (run $i)" \
        timeout 60 "$BENCH" --pub 4 --sub 4 --count 50 --size 16 --idle-timeout 10
done

# ---- latency
expect_rc 0 "--latency --count 200" timeout 60 "$BENCH" --latency --count 200 --warmup 10
grep -Eq '^p50 [0-9]+\.[0-9] us$' "$T/out" || fail "no p50 line: $(cat "$T/out")"
grep -Eq '^p99 [0-9]+\.[0-9] us$' "$T/out" || fail "no p99 line: $(cat "$T/out")"
ok "--latency prints p50 and p99"

# ---- round trip as a ping-pong: every event crosses the broker twice (A's
# publish and B's reply), so the broker accepts 2 x (count + warmup) PUBs.
accepted () {
    "$CTL" stats --json \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["accepted"])'
}
before=$(accepted) || fail "busd-ctl stats failed"
expect_rc 0 "--rtt --count 50 --warmup 5" \
    timeout 60 "$BENCH" --rtt --count 50 --warmup 5 --size 100 --json
cp "$T/out" "$T/rtt.json"
[ "$(json_get mode "$T/rtt.json")" = rtt ] || fail "--rtt mode: $(cat "$T/rtt.json")"
[ "$(json_get count "$T/rtt.json")" = 50 ] || fail "--rtt count: $(cat "$T/rtt.json")"
[ "$(json_get lost "$T/rtt.json")" = 0 ] || fail "--rtt lost: $(cat "$T/rtt.json")"
after=$(accepted) || fail "busd-ctl stats failed"
[ $((after - before)) = 110 ] \
    || fail "--rtt: the broker accepted $((after - before)) PUBs, expected 110 (two per event)"
ok "--rtt: 50 ping-pongs, two broker traversals each"
expect_rc 0 "--rtt text output" timeout 60 "$BENCH" --rtt --count 20 --warmup 0
grep -q 'ping-pong' "$T/out" || fail "--rtt text does not say ping-pong: $(cat "$T/out")"
grep -Eq '^p99 [0-9]+\.[0-9] us$' "$T/out" || fail "--rtt: no p99 line: $(cat "$T/out")"
ok "--rtt text output names the shape and prints p99"
expect_rc 2 "--rtt with --slow-sub-ms" "$BENCH" --rtt --slow-sub-ms 1

# ---- usage and connect errors
expect_rc 2 "--size below the 16-byte header" "$BENCH" --size 8
expect_rc 3 "no broker on the endpoint" \
    "$BENCH" -e "tcp://127.0.0.1:$(free_port)" --connect-timeout 0.3 --count 10
exit 0
