#!/bin/bash
# test_pubsub.sh - busd-pub to busd-sub round trips through a real broker:
# every input mode (-m -f -s -l -n), every output mode (default, -v, --json,
# --raw, -F), binary payloads byte for byte, 100 kB lines, topics from
# lines, headers, idempotency keys.
. "$(dirname "$0")/lib.sh"

start_busd

# subscribe OUT N ARGS...: busd-sub ARGS in the background writing to OUT;
# returns once the broker counts N subscriptions.  -W bounds every
# subscriber so a lost event fails the test instead of hanging it.
subscribe () {
    local out=$1 n=$2
    shift 2
    bg "$SUB" -W 60 "$@" >"$out" 2>"$out.err"
    SUB_PID=$BG_PID
    wait_subs "$n"
}

# finish WHAT: the subscriber must exit 0 (it got its -C events).
finish () {
    wait_rc "$SUB_PID" 90
    if [ "$RC" -ne 0 ]; then
        cat "$T/sub.out.err" >&2 2>/dev/null
        fail "$1: busd-sub exited $RC"
    fi
}

# ---- -m, default output
subscribe "$T/sub.out" 1 -C 1 t.message
"$PUB" -t t.message -m "hello world" || fail "-m: busd-pub failed"
finish "-m"
printf 't.message hello world\n' >"$T/want"
same "$T/sub.out" "$T/want" "-m to default output"

# ---- -f with all 256 byte values and random bytes, --raw, cmp
python3 -c 'import os, sys
sys.stdout.buffer.write(bytes(range(256)) + os.urandom(65536) + bytes(range(255, -1, -1)))' \
    >"$T/binary" || fail "cannot make the binary file"
subscribe "$T/sub.out" 1 -C 1 --raw t.binary
"$PUB" -t t.binary -f "$T/binary" || fail "-f: busd-pub failed"
finish "-f binary"
same "$T/sub.out" "$T/binary" "-f binary file to --raw, byte for byte"

# ---- -s: all of stdin as one event, newlines kept
printf 'first line\nsecond line\n\nlast, no newline' >"$T/stdin"
subscribe "$T/sub.out" 1 -C 1 --raw t.stdin
"$PUB" -t t.stdin -s <"$T/stdin" || fail "-s: busd-pub failed"
finish "-s"
same "$T/sub.out" "$T/stdin" "-s stdin as one event"

# ---- -f - reads stdin too
subscribe "$T/sub.out" 1 -C 1 --raw t.stdin
"$PUB" -t t.stdin -f - <"$T/binary" || fail "-f -: busd-pub failed"
finish "-f -"
same "$T/sub.out" "$T/binary" "-f - reads stdin, binary-safe"

# ---- -l: one event per line, only the newline stripped, empty lines kept
printf 'one\ntwo with  spaces \n\nfour\r\nfive' >"$T/lines"
subscribe "$T/sub.out" 1 -C 5 -F '<%p>' t.lines
"$PUB" -t t.lines -l <"$T/lines" || fail "-l: busd-pub failed"
finish "-l"
printf '<one>\n<two with  spaces >\n<>\n<four\r>\n<five>\n' >"$T/want"
same "$T/sub.out" "$T/want" "-l one event per line"

# ---- -l with 100 kB lines
python3 -c 'import sys
for c in "abc":
    sys.stdout.write(c * 100000 + "\n")' >"$T/long"
subscribe "$T/sub.out" 1 -C 3 -F '%p' t.long
"$PUB" -t t.long -l <"$T/long" || fail "-l long lines: busd-pub failed"
finish "-l long lines"
same "$T/sub.out" "$T/long" "-l 100 kB lines arrive intact"

# ---- -n: empty payload
subscribe "$T/sub.out" 1 -C 1 -F '[%p] %l' t.null
"$PUB" -t t.null -n || fail "-n: busd-pub failed"
finish "-n"
printf '[] 0\n' >"$T/want"
same "$T/sub.out" "$T/want" "-n empty payload"

# ---- --topic-from-line, two patterns
printf 'a.one\tpayload one\nb.two\tpayload\ttwo\n' >"$T/tfl"
subscribe "$T/sub.out" 2 -C 2 'a.#' -t 'b.*'
"$PUB" -l --topic-from-line <"$T/tfl" || fail "--topic-from-line: busd-pub failed"
finish "--topic-from-line"
sort "$T/sub.out" >"$T/sorted"
printf 'a.one payload one\nb.two payload\ttwo\n' >"$T/want"
same "$T/sorted" "$T/want" "--topic-from-line splits at the first TAB"

# ---- -v: delivery metadata
subscribe "$T/sub.out" 1 -C 1 -v t.verbose
"$PUB" -t t.verbose -m "meta" --id v-1 -H k=v || fail "-v: busd-pub failed"
finish "-v"
grep -Eq '^\[sub_id=[0-9]+ delivery_id=1 attempt=1 stream_seq=0 ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z msg_id=v-1 headers=\{"k":"v"\}\] t\.verbose meta$' "$T/sub.out" \
    || { cat "$T/sub.out" >&2; fail "-v line has the delivery metadata"; }
ok "-v line has the delivery metadata"
grep -q 'busd-sub: 1 events' "$T/sub.out.err" || fail "-v prints totals at exit"
ok "-v prints totals to stderr at exit"

# ---- --json with headers and msg_id
subscribe "$T/sub.out" 1 -C 1 --json t.json
"$PUB" -t t.json -m 'text "quoted" é' --id json-1 -H app=tests -H trace=abc=def -H app=override \
    || fail "--json: busd-pub failed"
finish "--json"
python3 - "$T/sub.out" <<'EOF' || fail "--json object has the expected fields"
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) == 1, lines
e = json.loads(lines[0])
assert e["topic"] == "t.json", e
assert e["payload"] == 'text "quoted" é', e
assert "payload_base64" not in e and e["payload_encoding"] == "utf-8", e
assert e["msg_id"] == "json-1", e
assert e["headers"] == {"app": "override", "trace": "abc=def"}, e
assert e["attempt"] == 1 and e["delivery_id"] == 1 and e["stream_seq"] == 0, e
assert isinstance(e["ts_us"], int) and e["ts_us"] > 1600000000000000, e
EOF
ok "--json object with payload, msg_id and -H headers"

# ---- --json with a binary payload: base64 in payload (and payload_base64)
subscribe "$T/sub.out" 1 -C 1 --json t.json
"$PUB" -t t.json -f "$T/binary" || fail "--json binary: busd-pub failed"
finish "--json binary"
python3 - "$T/sub.out" "$T/binary" <<'EOF' || fail "--json binary payload as payload_base64"
import base64, json, sys
e = json.loads(open(sys.argv[1], "rb").read())
want = open(sys.argv[2], "rb").read()
assert e["payload_encoding"] == "base64", e.keys()
assert base64.b64decode(e["payload"]) == want
assert base64.b64decode(e["payload_base64"]) == want
assert e["headers"] == {} and e["msg_id"] == ""
EOF
ok "--json binary payload as payload_base64"

# ---- -F with every conversion and escapes
subscribe "$T/sub.out" 1 -C 1 -F 'T=%t\tP=%p I=%i A=%a D=%d L=%l H=%h %%\\' t.format
"$PUB" -t t.format -m "fmt" --id f-1 -H x=y || fail "-F: busd-pub failed"
finish "-F"
printf 'T=t.format\tP=fmt I=f-1 A=1 D=1 L=3 H={"x":"y"} %%\\\n' >"$T/want"
same "$T/sub.out" "$T/want" "-F conversions and escapes"

# ---- -F %j equals the --json line; %T is a number
subscribe "$T/sub.out" 1 -C 1 -F '%T %j' t.format
"$PUB" -t t.format -m "j" || fail "-F %j: busd-pub failed"
finish "-F %j"
python3 - "$T/sub.out" <<'EOF' || fail "-F %T %j"
import json, sys
ts, obj = open(sys.argv[1]).read().rstrip("\n").split(" ", 1)
e = json.loads(obj)
assert int(ts) == e["ts_us"] and e["payload"] == "j", (ts, e)
EOF
ok "-F %T and %j"

# ---- --id dedup: three publishes with one id, then a marker
subscribe "$T/sub.out" 1 -C 2 t.dedup
for i in 1 2 3; do
    "$PUB" -t t.dedup -m "copy $i" --id same-key || fail "--id: busd-pub $i failed"
done
"$PUB" -t t.dedup -m "marker" || fail "--id: marker publish failed"
finish "--id dedup"
printf 't.dedup copy 1\nt.dedup marker\n' >"$T/want"
same "$T/sub.out" "$T/want" "--id published 3 times arrives once"

# ---- --count with --id: the repeats are duplicates too
subscribe "$T/sub.out" 1 -C 2 t.dedup
"$PUB" -t t.dedup -m "counted" --count 3 --id count-key || fail "--count --id failed"
"$PUB" -t t.dedup -m "marker" || fail "--count --id: marker publish failed"
finish "--count --id"
printf 't.dedup counted\nt.dedup marker\n' >"$T/want"
same "$T/sub.out" "$T/want" "--count 3 with one --id arrives once"

# ---- --id-auto: distinct UUID v4 per event; --rate paces
subscribe "$T/sub.out" 1 -C 5 -F '%i' t.auto
start=$(date +%s%N)
"$PUB" -t t.auto -m "auto" --count 5 --id-auto --rate 50 || fail "--id-auto: busd-pub failed"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
finish "--id-auto"
[ "$(sort -u "$T/sub.out" | wc -l)" -eq 5 ] || fail "--id-auto gives 5 distinct ids"
grep -Evq '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "$T/sub.out" \
    && { cat "$T/sub.out" >&2; fail "--id-auto ids are UUID v4"; }
ok "--id-auto: 5 distinct UUID v4 ids"
[ "$elapsed_ms" -ge 70 ] || fail "--rate 50 paces 5 events over >= 80 ms (took $elapsed_ms ms)"
ok "--rate paces events ($elapsed_ms ms for 5 at 50/s)"

# ---- GAP: a stopped subscriber with credit 1 and a one-event drop-new
# queue gets e1, queues e2, loses e3..e5; the gap goes to stderr.
subscribe "$T/sub.out" 1 -v -C 2 --credit 1 --overflow drop-new --queue-limit 1 t.gap
kill -STOP "$SUB_PID"
for i in 1 2 3 4 5; do
    "$PUB" -t t.gap -m "e$i" || { kill -CONT "$SUB_PID"; fail "GAP: publish $i failed"; }
done
kill -CONT "$SUB_PID"
finish "GAP"
sed 's/^\[[^]]*\] //' "$T/sub.out" >"$T/got"
printf 't.gap e1\nt.gap e2\n' >"$T/want"
same "$T/got" "$T/want" "events around a gap"
grep -q '^busd-sub: gap: 3 events dropped on sub 1$' "$T/sub.out.err" \
    || { cat "$T/sub.out.err" >&2; fail "the gap is reported on stderr"; }
grep -q '1 gaps (3 events dropped)' "$T/sub.out.err" || fail "-v totals count the gap"
ok "the gap is reported on stderr and counted"

# ---- --confirm on a normal topic exits 0
expect_rc 0 "--confirm with all events accepted" "$PUB" -t t.confirm -m ok --confirm --count 10

exit 0
