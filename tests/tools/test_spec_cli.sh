#!/bin/bash
# test_spec_cli.sh - the command-line contract of issues 5 and 7 read line
# by line, for what test_pubsub, test_exitcodes, test_ctl, test_bench,
# test_firsthour and test_service leave open: every flag an issue names is
# in --help and in the man page, -h works on every tool, --json carries the
# keys issue 5 lists (payload in base64 when binary, ts), --ack explicit
# acknowledges what it printed, --group shares, --credit reaches the broker,
# busd-bench prints every percentile, and busd honours SIGINT like SIGTERM,
# flags over the file, and --log-level.
. "$(dirname "$0")/lib.sh"

BENCH="$BUSD_TOOLS/busd-bench"
DOC="$_top/doc"
[ -x "$BENCH" ] || { echo "SKIP: $BENCH not built"; exit 77; }

# ---- every tool: -h, --help, --version, -e in its help, a man page
for tool in "$PUB" "$SUB" "$CTL" "$BENCH"; do
    name=$(basename "$tool")
    expect_rc 0 "$name -h" "$tool" -h
    grep -q "^Usage: $name" "$T/out" || fail "$name -h prints the usage"
    grep -q -- "-e, --endpoint" "$T/out" || fail "$name -h lists -e/--endpoint"
    grep -q "BUSD_ENDPOINT" "$T/out" || fail "$name -h names BUSD_ENDPOINT"
    grep -q "tcp://127.0.0.1:7460" "$T/out" || fail "$name -h names the default endpoint"
    cp "$T/out" "$T/$name.help"
    expect_rc 0 "$name --version" "$tool" --version
    [ -f "$DOC/$name.1" ] || fail "doc/$name.1 exists"
done
ok "every tool has -h, --version, -e and a man page"

# in_help_and_man TOOL FLAG...: each flag appears in --help and the man page
# (groff writes a '-' in a flag as '\-').
in_help_and_man () {
    local name=$1 flag man
    shift
    for flag in "$@"; do
        grep -q -- "$flag\b" "$T/$name.help" || fail "$name --help lists $flag"
        man=$(printf '%s' "$flag" | sed 's/-/\\\\-/g')
        grep -q -- "$man" "$DOC/$name.1" || fail "$name.1 documents $flag"
    done
    ok "$name: $* in --help and the man page"
}
in_help_and_man busd-pub -m -f -s -l -n -t --topic-from-line --id --id-auto -H \
    --count --rate --confirm --timeout
in_help_and_man busd-sub -C -W --credit --ack --group --overflow --queue-limit \
    --durable --from -v --json --raw -F
in_help_and_man busd-bench --pub --sub --size --count --rate --overflow --latency --json
for c in stats clients subscriptions "dlq list" "dlq replay" reload --json; do
    grep -q -- "$c" "$T/busd-ctl.help" || fail "busd-ctl --help lists $c"
done
ok "busd-ctl --help lists stats, clients, subscriptions, dlq list/replay, reload, --json"
for conv in %t %p %i %T %a %j; do
    grep -q -- "$conv" "$T/busd-sub.help" || fail "busd-sub --help lists $conv"
done
ok "busd-sub -F documents %t %p %i %T %a %j"

start_busd

# ---- --json: the keys issue 5 names; binary payloads in base64
bg "$SUB" --json -C 2 -W 60 js.x >"$T/js.out" 2>"$T/js.err"
sub_pid=$BG_PID
wait_subs 1
"$PUB" -t js.x -m 'hello' --id j-1 -H k=v || fail "--json: text publish"
printf '\377\000\001binary' >"$T/bin"
"$PUB" -t js.x -f "$T/bin" || fail "--json: binary publish"
wait_rc "$sub_pid"
[ "$RC" -eq 0 ] || fail "busd-sub --json -C 2 exits 0 (got $RC)"
python3 - "$T/js.out" "$T/bin" <<'EOF' || fail "--json lines carry topic, payload, msg_id, ts, attempt, headers"
import base64, json, sys, time
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) == 2, lines
text, binary = (json.loads(l) for l in lines)
for e in (text, binary):
    for k in ("topic", "payload", "msg_id", "ts", "attempt", "headers"):
        assert k in e, (k, e)
    assert e["topic"] == "js.x" and e["attempt"] == 1, e
    assert isinstance(e["ts"], (int, float)) and abs(e["ts"] - time.time()) < 3600, e
    assert abs(e["ts"] * 1e6 - e["ts_us"]) < 2, e
assert text["payload"] == "hello" and text["payload_encoding"] == "utf-8", text
assert text["msg_id"] == "j-1" and text["headers"] == {"k": "v"}, text
assert binary["payload_encoding"] == "base64", binary
assert base64.b64decode(binary["payload"]) == open(sys.argv[2], "rb").read(), binary
EOF
ok "--json lines carry topic, payload (base64 when binary), msg_id, ts, attempt, headers"

# ---- --credit reaches the broker
bg "$SUB" --name credit-sub --credit 2 -W 60 cr.x >/dev/null 2>&1
sub_pid=$BG_PID
wait_subs 1
"$CTL" --json subscriptions >"$T/subs.json" || fail "busd-ctl subscriptions"
python3 - "$T/subs.json" <<'EOF' || fail "--credit 2 is the subscription's credit"
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["subscriptions"] if r["client"] == "credit-sub"]
assert len(rows) == 1 and rows[0]["credit"] == 2 and rows[0]["pattern"] == "cr.x", rows
EOF
ok "--credit 2 is the subscription's credit"
kill -TERM "$sub_pid"; wait_rc "$sub_pid"

# ---- --ack explicit: each printed event is acknowledged (no redelivery
# after --ack-wait, nothing discarded when the subscriber leaves)
before=$("$CTL" --json stats) || fail "stats"
bg "$SUB" --ack explicit --ack-wait 300 -C 3 -W 60 ak.x >"$T/ak.out" 2>&1
sub_pid=$BG_PID
wait_subs 1
"$PUB" -t ak.x -m e --count 3 --confirm || fail "publish for --ack explicit"
wait_rc "$sub_pid"
[ "$RC" -eq 0 ] || fail "busd-sub --ack explicit -C 3 exits 0 (got $RC)"
[ "$(wc -l <"$T/ak.out")" -eq 3 ] || { cat "$T/ak.out" >&2; fail "three events printed once each"; }
sleep 0.6        # past --ack-wait: an unacknowledged event would come back
after=$("$CTL" --json stats) || fail "stats"
python3 - "$before" "$after" <<'EOF' || fail "--ack explicit acknowledged all three"
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["acks"] - b["acks"] == 3, (b["acks"], a["acks"])
assert a["redelivered"] == b["redelivered"] and a["discarded_on_end"] == b["discarded_on_end"], (b, a)
assert a["inflight"] == 0, a
EOF
ok "--ack explicit acknowledges each printed event"

# ---- --group: two members share the events, each printed once
bg "$SUB" --group gx -W 8 gx.x >"$T/g1.out" 2>/dev/null
g1=$BG_PID
bg "$SUB" --group gx -W 8 gx.x >"$T/g2.out" 2>/dev/null
g2=$BG_PID
wait_subs 2
for i in $(seq 1 20); do echo "e$i"; done >"$T/g.in"
"$PUB" -t gx.x -l --confirm <"$T/g.in" || fail "publish to the group"
wait_rc "$g1"; wait_rc "$g2"
[ -s "$T/g1.out" ] && [ -s "$T/g2.out" ] || fail "both group members got events"
cat "$T/g1.out" "$T/g2.out" | sed 's/^gx.x //' | sort >"$T/g.got"
sort "$T/g.in" >"$T/g.want"
same "$T/g.got" "$T/g.want" "--group: every event to exactly one member"

# ---- SUBEND goes to stderr with its code and is counted (-v totals)
bg "$SUB" -v -W 60 --credit 0 --overflow disconnect --queue-limit 1 se.x >"$T/se.out" 2>"$T/se.err"
sub_pid=$BG_PID
wait_subs 1
"$PUB" -t se.x -m e --count 3 || fail "publish for SUBEND"
wait_rc "$sub_pid"
[ "$RC" -eq 4 ] || fail "busd-sub exits 4 when the broker ends its subscription (got $RC)"
[ ! -s "$T/se.out" ] || fail "nothing on stdout for a SUBEND"
grep -q "subscription 1 ended: 429" "$T/se.err" || { cat "$T/se.err" >&2; fail "SUBEND with its code on stderr"; }
grep -q "1 subscriptions ended" "$T/se.err" || { cat "$T/se.err" >&2; fail "-v totals count the SUBEND"; }
ok "SUBEND is printed to stderr with its code and counted"

# ---- SIGINT while the output is blocked (a reader that stopped reading):
# still a clean end, exit 0 and no error (issue 5 "handles SIGINT cleanly")
mkfifo "$T/blocked"
exec 3<>"$T/blocked"          # held open, never read
bg "$SUB" --name blocked-sub blk.x >"$T/blocked" 2>"$T/blk.err"
sub_pid=$BG_PID
wait_subs 1
head -c 1000 /dev/zero | tr '\0' x >"$T/kb"
"$PUB" -t blk.x -f "$T/kb" --count 300 >/dev/null || fail "publish to the blocked subscriber"
i=0
until [ "$(cat /proc/$sub_pid/wchan 2>/dev/null)" = pipe_write ]; do
    i=$((i + 1)); [ $i -lt 300 ] || break      # no wchan: the kill still tests EINTR or not
    sleep 0.1
done
kill -INT "$sub_pid"
wait_rc "$sub_pid"
exec 3>&-
[ "$RC" -eq 0 ] || { cat "$T/blk.err" >&2; fail "busd-sub blocked on output exits 0 on SIGINT (got $RC)"; }
grep -q "cannot write" "$T/blk.err" && { cat "$T/blk.err" >&2; fail "no write error for an interrupted write"; }
ok "SIGINT while the output is blocked: exit 0, no error"

# ---- issue 15: busd-pub -l and busd-sub batch by default (PUBB, DELIVERB);
# --no-batch keeps one frame per event
stat_of () {
    "$CTL" --json stats | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
seq 1 5000 >"$T/many"
for mode in batch no-batch; do
    flag=; [ "$mode" = no-batch ] && flag=--no-batch
    pubb0=$(stat_of pubb_in); deliverb0=$(stat_of deliverb_out)
    bg "$SUB" $flag -C 5000 -W 60 -F '%p' bt.x >"$T/bt.out" 2>/dev/null
    sub_pid=$BG_PID
    wait_subs 1
    "$PUB" $flag -t bt.x -l --confirm <"$T/many" || fail "$mode: busd-pub -l"
    wait_rc "$sub_pid"
    [ "$RC" -eq 0 ] || fail "$mode: busd-sub got 5000 events (exit $RC)"
    same "$T/bt.out" "$T/many" "$mode: 5000 lines arrive in order"
    pubb=$(( $(stat_of pubb_in) - pubb0 )); deliverb=$(( $(stat_of deliverb_out) - deliverb0 ))
    if [ "$mode" = batch ]; then
        [ "$pubb" -gt 0 ] && [ "$deliverb" -gt 0 ] \
            || fail "by default the tools batch (PUBB $pubb, DELIVERB $deliverb)"
    else
        [ "$pubb" -eq 0 ] && [ "$deliverb" -eq 0 ] \
            || fail "--no-batch sends no PUBB and gets no DELIVERB (PUBB $pubb, DELIVERB $deliverb)"
    fi
    ok "$mode: PUBB $pubb, DELIVERB $deliverb"
done

# ---- busd-bench: every percentile issue 5 names, as text and JSON
expect_rc 0 "busd-bench --latency" timeout 60 "$BENCH" --latency --count 100 --warmup 5
for p in p50 p90 p99 p99.9 max; do
    grep -Eq "^$p [0-9]+\.[0-9] us$" "$T/out" || { cat "$T/out" >&2; fail "--latency prints $p"; }
done
ok "--latency prints p50, p90, p99, p99.9 and max"
expect_rc 0 "busd-bench --latency --json" timeout 60 "$BENCH" --latency --count 100 --warmup 5 --json
python3 - "$T/out" <<'EOF' || fail "--latency --json has every percentile"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"):
    assert isinstance(d[k], (int, float)), (k, d)
assert d["p50_us"] <= d["p90_us"] <= d["p99_us"] <= d["p99_9_us"] <= d["max_us"], d
EOF
ok "--latency --json has every percentile, in order"
expect_rc 0 "busd-bench with --rate and --overflow" timeout 60 "$BENCH" --pub 2 --sub 2 \
    --count 300 --size 100 --rate 2000 --overflow drop-new --json
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["lost"] == 0, d' "$T/out" \
    || fail "--rate/--overflow run lost nothing: $(cat "$T/out")"
ok "busd-bench --rate --overflow: 2 publishers to 2 subscribers, nothing lost"
stop_busd

# ---- busd: flags override the configuration file
cat >"$T/busd.json" <<'JSON'
{ // a comment
  "queue_limit": 500, "pub_credit": 50 }
JSON
start_busd -c "$T/busd.json" --queue-limit 7
bg "$SUB" --name ql-sub -W 60 ql.x >/dev/null 2>&1
sub_pid=$BG_PID
wait_subs 1
"$CTL" --json subscriptions >"$T/subs.json" || fail "busd-ctl subscriptions"
"$CTL" --json clients >"$T/clients.json" || fail "busd-ctl clients"
python3 - "$T/subs.json" "$T/clients.json" <<'EOF' || fail "--queue-limit overrides the file, pub_credit comes from it"
import json, sys
subs = json.load(open(sys.argv[1]))["subscriptions"]
assert [r["queue_limit"] for r in subs if r["client"] == "ql-sub"] == [7], subs
clients = json.load(open(sys.argv[2]))["clients"]
assert {c["pub_credit"] for c in clients} == {50}, clients
EOF
ok "a flag overrides the file; what the flag leaves is read from the file"
kill -TERM "$sub_pid"; wait_rc "$sub_pid"

# ---- busd: SIGINT drains and exits 0 like SIGTERM, and says what was left
bg "$SUB" --credit 0 -W 60 left.x >/dev/null 2>&1
sub_pid=$BG_PID
wait_subs 1
"$PUB" -t left.x -m stuck --count 3 --confirm || fail "publish to the stuck subscriber"
kill -INT "$BUSD_PID"
wait_rc "$BUSD_PID" 60
BUSD_PID=
[ "$RC" -eq 0 ] || fail "busd exits 0 on SIGINT (got $RC)"
grep -q "stopping" "$BUSD_LOG" || fail "busd logs that it is stopping"
grep -Eq "\b3\b.*(left|undelivered)|(left|undelivered).*\b3\b" "$BUSD_LOG" \
    || { cat "$BUSD_LOG" >&2; fail "busd reports the 3 events left in the queue"; }
ok "SIGINT drains, reports the 3 events left, exits 0"
wait_rc "$sub_pid"

# ---- busd with no arguments: foreground on tcp://127.0.0.1:7460 (issue 2),
# saying where it listens; skipped when something else holds the port
if python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", 7460))
except OSError:
    sys.exit(1)' 2>/dev/null; then
    ( cd "$T" && exec "$BUSD_BIN" ) >"$T/noargs.log" 2>&1 &
    noargs_pid=$!
    _bg_pids="$_bg_pids $noargs_pid"
    i=0
    until grep -q "listening on" "$T/noargs.log" || ! kill -0 "$noargs_pid" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 300 ] || fail "busd with no arguments said nothing in 30 s"
        sleep 0.1
    done
    if grep -qi "in use" "$T/noargs.log"; then
        ok "SKIP busd with no arguments: port 7460 was taken meanwhile"
    else
        grep -q "listening on tcp://127.0.0.1:7460" "$T/noargs.log" \
            || { cat "$T/noargs.log" >&2; fail "busd with no arguments listens on tcp://127.0.0.1:7460"; }
        expect_rc 0 "busd-ctl with no -e and no BUSD_ENDPOINT reaches it" \
            env -u BUSD_ENDPOINT "$CTL" stats
        kill -TERM "$noargs_pid"
        wait_rc "$noargs_pid" 60
        [ "$RC" -eq 0 ] || fail "busd with no arguments stops with 0 on SIGTERM (got $RC)"
        ok "busd with no arguments runs in the foreground on tcp://127.0.0.1:7460"
    fi
else
    ok "SKIP busd with no arguments: port 7460 is in use"
fi

# ---- busd --check-config without -c checks the defaults and the flags
# (issue 7: "busd --check-config [-c FILE]")
expect_rc 0 "busd --check-config with no file" "$BUSD_BIN" --check-config
grep -q "configuration OK" "$T/out" "$T/err" || fail "--check-config says configuration OK"
expect_rc 2 "busd --check-config --queue-limit 0" "$BUSD_BIN" --check-config --queue-limit 0
grep -q "queue_limit" "$T/err" || fail "--check-config names the bad flag's setting"
ok "--check-config checks flags without a file"

# ---- busd: --log-level filters
start_busd --log-level warning
"$CTL" stats >/dev/null || fail "stats"
stop_busd
if grep -q "^I:" "$BUSD_LOG"; then
    cat "$BUSD_LOG" >&2; fail "--log-level warning hides info lines"
fi
ok "--log-level warning hides info lines"
start_busd --log-level debug
"$CTL" stats >/dev/null || fail "stats"
stop_busd
grep -q "^D:" "$BUSD_LOG" || { cat "$BUSD_LOG" >&2; fail "--log-level debug shows debug lines"; }
ok "--log-level debug shows debug lines"
expect_rc 2 "busd --log-level nonsense" "$BUSD_BIN" --log-level chatty -b "tcp://127.0.0.1:$(free_port)"
grep -q "chatty" "$T/err" || fail "the bad level is named"
ok "a bad --log-level is named"

exit 0
