#!/bin/bash
# test_exitcodes.sh - the exit codes scripts rely on, the same for every
# tool: 0 success, 1 runtime error, 2 usage, 3 cannot connect, 4 rejected or
# refused, 5 timeout.
. "$(dirname "$0")/lib.sh"

# ---- 3: nothing listens on the port (checked before any broker runs)
closed=$(free_port)
expect_rc 3 "busd-pub against a closed port" \
    "$PUB" -e "tcp://127.0.0.1:$closed" --connect-timeout 0.5 -t a.b -m x
grep -q "cannot connect" "$T/err" || fail "busd-pub says it cannot connect"
expect_rc 3 "busd-sub against a closed port" \
    "$SUB" -e "tcp://127.0.0.1:$closed" --connect-timeout 0.5 a.b
expect_rc 3 "busd-ctl against a closed port" \
    "$CTL" -e "tcp://127.0.0.1:$closed" --connect-timeout 0.5 stats
BUSD_ENDPOINT="tcp://127.0.0.1:$closed" expect_rc 3 "BUSD_ENDPOINT is used" \
    "$CTL" --connect-timeout 0.5 stats
grep -q "127.0.0.1:$closed" "$T/err" || fail "the error names the endpoint from BUSD_ENDPOINT"
ok "the error names the endpoint"

# ---- 2: usage errors, all caught before connecting
expect_rc 2 "busd-pub without a topic" "$PUB" -m x
expect_rc 2 "busd-pub without a message" "$PUB" -t a.b
expect_rc 2 "busd-pub with two message sources" "$PUB" -t a.b -m x -n
expect_rc 2 "busd-pub with an empty token" "$PUB" -t 'a..b' -m x
grep -q "invalid topic" "$T/err" || fail "busd-pub names the invalid topic"
ok "busd-pub explains the invalid topic"
expect_rc 2 "busd-pub with a wildcard topic" "$PUB" -t 'a.*' -m x
expect_rc 2 "busd-pub with a 256-byte topic" "$PUB" -t "$(printf 'x%.0s' $(seq 256))" -m x
expect_rc 2 "busd-pub --count not a number" "$PUB" -t a.b -m x --count many
expect_rc 2 "busd-pub --count 0" "$PUB" -t a.b -m x --count 0
expect_rc 2 "busd-pub --rate negative" "$PUB" -t a.b -m x --rate -3
expect_rc 2 "busd-pub -H without =" "$PUB" -t a.b -m x -H novalue
expect_rc 2 "busd-pub --id with --id-auto" "$PUB" -t a.b -m x --id a --id-auto
expect_rc 2 "busd-pub --topic-from-line without -l" "$PUB" -m x --topic-from-line
expect_rc 2 "busd-pub unknown option" "$PUB" -t a.b -m x --no-such-option
expect_rc 2 "busd-pub extra argument" "$PUB" -t a.b -m x stray
expect_rc 2 "busd-sub without a pattern" "$SUB" -C 1
expect_rc 2 "busd-sub with '#' not last" "$SUB" 'a.#.b'
expect_rc 2 "busd-sub with a bad overflow policy" "$SUB" --overflow sometimes a.b
expect_rc 2 "busd-sub with a bad --ack" "$SUB" --ack maybe a.b
expect_rc 2 "busd-sub with an unknown -F conversion" "$SUB" -F '%z' a.b
expect_rc 2 "busd-sub with --json and --raw" "$SUB" --json --raw a.b
expect_rc 2 "busd-sub -W 0" "$SUB" -W 0 a.b
expect_rc 2 "busd-ctl without a command" "$CTL"
expect_rc 2 "busd-ctl unknown command" "$CTL" frobnicate
expect_rc 2 "busd-ctl raw with bad JSON" "$CTL" raw '{"cmd":'
expect_rc 2 "busd-ctl dlq replay without ids or topic" "$CTL" dlq replay
expect_rc 2 "busd-ctl --limit outside dlq list" "$CTL" --limit 3 stats

# ---- 0: --help and --version
for tool in "$PUB" "$SUB" "$CTL"; do
    name=$(basename "$tool")
    expect_rc 0 "$name --help" "$tool" --help
    grep -q "Exit status" "$T/out" || fail "$name --help documents the exit status"
    expect_rc 0 "$name --version" "$tool" --version
    grep -q "^$name (busd) " "$T/out" || fail "$name --version names the tool"
done
ok "--help documents exit codes, --version names the tool"

start_busd

# ---- 0: -C count
bg "$SUB" -C 2 -W 60 x.count >/dev/null
pid=$BG_PID
wait_subs 1
"$PUB" -t x.count -m one --count 2 || fail "publish for -C failed"
wait_rc "$pid"
[ "$RC" -eq 0 ] || fail "busd-sub -C 2 exits 0 after 2 events (got $RC)"
ok "busd-sub -C 2 exits 0 after 2 events"

# ---- 5: -W idle timeout
start=$(date +%s%N)
expect_rc 5 "busd-sub -W 0.5 with no events" "$SUB" -W 0.5 x.idle
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed_ms" -lt 10000 ] || fail "-W 0.5 took $elapsed_ms ms"
ok "-W 0.5 gave up after $elapsed_ms ms"

# ---- 4: --confirm on a broker topic, naming 403
expect_rc 4 "busd-pub --confirm to \$sys.x" "$PUB" -t '$sys.x' -m nope --confirm
grep -q '403' "$T/err" || { cat "$T/err" >&2; fail "the rejection names code 403"; }
grep -q 'sys.x' "$T/err" || fail "the rejection names the topic"
ok "the rejection names the topic and code 403"
expect_rc 0 "busd-pub without --confirm to \$sys.x still exits 0" "$PUB" -t '$sys.x' -m nope
grep -q '403' "$T/err" || fail "without --confirm the rejection is still reported"
ok "without --confirm the rejection is still reported"
expect_rc 4 "busd-pub --confirm -q still exits 4" "$PUB" -q -t '$sys.x' -m nope --confirm
[ ! -s "$T/err" ] || fail "-q keeps stderr quiet"
ok "-q keeps stderr quiet"

# ---- 4: a --topic-from-line line with a bad topic is skipped (one rule for bad -l lines)
printf 'good.topic\tp\nno tab here\nbad..topic\tp\n' >"$T/lines"
expect_rc 4 "busd-pub --topic-from-line with bad lines" "$PUB" -l --topic-from-line <"$T/lines"
grep -q "line 2" "$T/err" && grep -q "line 3" "$T/err" || fail "bad lines are named by number"
ok "bad lines are named by number"

# ---- 4: a refused subscription (queue group with other options: 409)
bg "$SUB" -W 60 --group g1 --queue-limit 10 x.group
pid=$BG_PID
wait_subs 1
expect_rc 4 "busd-sub joining a group with other options" \
    "$SUB" -W 60 --group g1 --queue-limit 20 x.group
grep -q "409" "$T/err" || { cat "$T/err" >&2; fail "the refusal names code 409"; }
ok "the refusal names the broker's code 409"

# ---- 0: SIGTERM / SIGINT end busd-sub cleanly and unsubscribe it
kill -TERM "$pid"
wait_rc "$pid"
[ "$RC" -eq 0 ] || fail "busd-sub exits 0 on SIGTERM (got $RC)"
ok "busd-sub exits 0 on SIGTERM"
bg "$SUB" x.int
pid=$BG_PID
wait_subs 1
kill -INT "$pid"
wait_rc "$pid"
[ "$RC" -eq 0 ] || fail "busd-sub exits 0 on SIGINT (got $RC)"
ok "busd-sub exits 0 on SIGINT"
[ "$(busd_stat subscriptions)" = 0 ] || fail "busd-sub unsubscribed before exiting"
ok "busd-sub unsubscribed before exiting"

# ---- 4: the broker ends the only subscription (overflow disconnect)
bg "$SUB" -W 60 --credit 0 --overflow disconnect --queue-limit 1 x.disc
pid=$BG_PID
wait_subs 1
"$PUB" -t x.disc -m e --count 3 || fail "publish for overflow disconnect failed"
wait_rc "$pid"
[ "$RC" -eq 4 ] || fail "busd-sub exits 4 when its subscription ends (got $RC)"
ok "busd-sub exits 4 when the broker ends its subscription"

# ---- 5: --confirm with a broker that stops answering after WELCOME
# Read-write open of the FIFO does not block; busd-pub must not inherit
# fd 3, or it would never see end of file.
mkfifo "$T/fifo"
exec 3<>"$T/fifo"
bg "$PUB" --name stalled-pub -l -t x.stall --confirm --timeout 1 <"$T/fifo" 3>&-
pid=$BG_PID
i=0
until "$CTL" clients | grep -q stalled-pub; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "busd-pub did not connect"
    sleep 0.1
done
kill -STOP "$BUSD_PID"
echo "never acknowledged" >&3
exec 3>&-
wait_rc "$pid"
kill -CONT "$BUSD_PID"
[ "$RC" -eq 5 ] || fail "busd-pub --confirm exits 5 without acknowledgement (got $RC)"
ok "busd-pub --confirm exits 5 when not acknowledged in time"

# ---- 1: a broker error reply
expect_rc 1 "busd-ctl raw with an unknown command" "$CTL" raw '{"cmd":"no-such-cmd"}'
grep -q '400' "$T/err" || { cat "$T/err" >&2; fail "the error names code 400"; }
ok "busd-ctl prints the broker's code"

exit 0
