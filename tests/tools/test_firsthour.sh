#!/bin/bash
# test_firsthour.sh - what scripters tripped over in their first hour with
# the tools (issue 16): endpoints without a scheme or with a bad port, one
# line per event across patterns, MQTT/NATS wildcards, repeated -m, one
# rule for bad -l lines, --confirm --timeout under throttling, options
# that need --ack explicit, the dead-letter commands, busd-ctl clients.
. "$(dirname "$0")/lib.sh"

# ---- endpoints, before any broker runs
expect_rc 2 "-e with port 99999" "$PUB" -e tcp://127.0.0.1:99999 -t a.b -m x
grep -q "99999" "$T/err" && grep -q "65535" "$T/err" || fail "the error names the port and the range"
BUSD_ENDPOINT=udp://127.0.0.1:7460 expect_rc 2 "a bad \$BUSD_ENDPOINT" "$CTL" stats
grep -q 'BUSD_ENDPOINT' "$T/err" || fail "the error says the endpoint came from \$BUSD_ENDPOINT"
port=$(free_port)
expect_rc 2 "busd -b with port 99999" "$BUSD_BIN" -b tcp://127.0.0.1:99999
grep -q "tcp://127.0.0.1:99999" "$T/err" || fail "busd names the endpoint"
cat >"$T/bad.json" <<JSON
{ "bind": "tcp://127.0.0.1:99999", "metrics_bind": "127.0.0.1:0" }
JSON
expect_rc 2 "busd --check-config with port 99999" "$BUSD_BIN" --check-config -c "$T/bad.json"
grep -q "99999" "$T/err" && grep -q "127.0.0.1:0" "$T/err" \
    || fail "--check-config names both bad addresses"
ok "--check-config names both bad addresses"
expect_rc 2 "busd -u nosuchuser is refused before binding" \
    "$BUSD_BIN" -b "tcp://127.0.0.1:$port" -u no-such-user-xyz
grep -q "no-such-user-xyz" "$T/err" || fail "-u names the user"

start_busd --set queue_limit=5

# ---- -e HOST:PORT means tcp://
expect_rc 0 "-e 127.0.0.1:PORT (no scheme)" "$CTL" -e "127.0.0.1:$BUSD_PORT" stats

# ---- patterns: MQTT/NATS wildcards refused with a hint
expect_rc 2 "busd-sub 'user.+'" "$SUB" 'user.+'
grep -q "user\.\*" "$T/err" || fail "the hint for 'user.+' is 'user.*'"
expect_rc 2 "busd-sub 'user.>'" "$SUB" -t 'user.>'
grep -q "user\.#" "$T/err" || fail "the hint for 'user.>' is 'user.#'"
ok "foreign wildcards get a hint"

# ---- options that only make sense with explicit acks
expect_rc 2 "--max-deliver without --ack explicit" "$SUB" --max-deliver 3 a.b
grep -q -- "--ack explicit" "$T/err" || fail "the error says what is missing"
expect_rc 2 "--ack-wait without --ack explicit" "$SUB" --ack-wait 100 a.b

# ---- one event, one line, however many patterns match
bg "$SUB" -t 'ov.#' -t 'ov.b' -t 'ov.*' -W 30 >"$T/ov.out"
sub_pid=$BG_PID
wait_subs 3
"$PUB" -t ov.b -m same -m same || fail "publishing two equal events failed"
"$PUB" -t ov.c -m other || fail "publishing ov.c failed"
i=0
until [ "$(wc -l <"$T/ov.out")" -ge 3 ]; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "busd-sub did not print 3 lines: $(cat "$T/ov.out")"
    sleep 0.1
done
sleep 0.5     # a duplicate, if any, would have arrived by now
kill -TERM "$sub_pid"; wait_rc "$sub_pid"
printf 'ov.b same\nov.b same\nov.c other\n' >"$T/want"
sort "$T/ov.out" >"$T/got"
same "$T/got" "$T/want" "three patterns, each event printed once (equal events kept)"

# ---- busd-pub -m a -m b publishes both, in order
bg "$SUB" -C 2 -W 30 mm.x >"$T/mm.out"
sub_pid=$BG_PID
wait_subs 1
expect_rc 0 "busd-pub -m a -m b" "$PUB" -t mm.x -m a -m b
wait_rc "$sub_pid"
printf 'mm.x a\nmm.x b\n' >"$T/want"
same "$T/mm.out" "$T/want" "-m a -m b publishes a, then b"

# ---- -l: bad lines (oversize or bad topic) are skipped, reported, exit 4
stop_busd
start_busd --max-payload 10
bg "$SUB" -C 3 -W 30 'ln.#' >"$T/ln.out"
sub_pid=$BG_PID
wait_subs 1
printf 'short\nthis line is far too long\nok\n' | expect_rc 4 "-l with an oversize line" "$PUB" -t ln.a -l
grep -q "line 2" "$T/err" || fail "the oversize line is named"
printf 'ln.b\tp\nbad..topic\tp\n' | expect_rc 4 "--topic-from-line with a bad topic" \
    "$PUB" -l --topic-from-line
grep -q "line 2" "$T/err" || fail "the bad topic line is named"
wait_rc "$sub_pid"
printf 'ln.a short\nln.a ok\nln.b p\n' >"$T/want"
sort "$T/ln.out" >"$T/got"; sort "$T/want" >"$T/want.s"
same "$T/got" "$T/want.s" "the good lines are published, the bad ones skipped"

# ---- --confirm --timeout bounds the run when the publisher is throttled
stop_busd
start_busd --set queue_limit=2 --pub-credit 2
bg "$SUB" --credit 0 -W 60 th.x >/dev/null
sub_pid=$BG_PID
wait_subs 1
bg "$PUB" -t th.x -m x --count 50 --confirm --timeout 1
pub_pid=$BG_PID
wait_rc "$pub_pid" 60
[ "$RC" -eq 5 ] || fail "a throttled busd-pub --confirm --timeout 1 exits 5 (got $RC)"
ok "--confirm --timeout ends a throttled run with 5"
kill -TERM "$sub_pid"; wait_rc "$sub_pid"

# ---- dead letters: list shows a preview, show, purge, replay of a missing id
bg "$SUB" -W 60 --ack explicit --ack-wait 200 --max-deliver 1 dl.x >/dev/null 2>&1
dead_pid=$BG_PID
wait_subs 1
kill -STOP "$dead_pid"
"$PUB" -t dl.x -m '{"user":42}' -H k=v --confirm || fail "publish for the DLQ failed"
"$PUB" -t dl.y -m 'second' --confirm || fail "publish dl.y failed"
wait_stat dead_lettered 1
kill -CONT "$dead_pid"; kill -TERM "$dead_pid"; wait_rc "$dead_pid"
expect_rc 0 "dlq list" "$CTL" dlq list
grep -q "PREVIEW" "$T/out" && grep -q '{"user":42}' "$T/out" || { cat "$T/out" >&2; fail "dlq list previews the payload"; }
ok "dlq list previews the payload"
id=$("$CTL" --json dlq list | python3 -c 'import json,sys; print(json.load(sys.stdin)["dead_letters"][0]["id"])')
expect_rc 0 "dlq show $id" "$CTL" dlq show "$id"
grep -q '^payload: {"user":42}$' "$T/out" && grep -q '^headers: .*"k":"v"' "$T/out" \
    && grep -q '^topic: dl.x$' "$T/out" || { cat "$T/out" >&2; fail "dlq show prints fields, headers and payload"; }
ok "dlq show prints fields, headers and payload"
expect_rc 1 "dlq show of a missing id" "$CTL" dlq show 99999
grep -q "99999" "$T/err" || fail "dlq show names the missing id"
expect_rc 1 "dlq replay --id 99999" "$CTL" dlq replay --id 99999
grep -q "no dead letter with id 99999" "$T/err" || fail "dlq replay names the missing id"
expect_rc 0 "dlq purge --id $id" "$CTL" dlq purge --id "$id"
grep -q "purged 1" "$T/out" || fail "dlq purge says how many"
[ "$("$CTL" --json dlq list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["dead_letters"]))')" -eq 0 ] \
    || fail "the purged dead letter is gone"
ok "dlq purge forgets it"

# ---- busd-ctl clients: peer address and connection time
bg "$SUB" --name peer-sub -W 60 pe.x >/dev/null
peer_pid=$BG_PID
wait_subs 1
expect_rc 0 "busd-ctl clients" "$CTL" clients
head -n 1 "$T/out" | grep -q "PEER" && head -n 1 "$T/out" | grep -q "CONNECTED" \
    || fail "clients has PEER and CONNECTED columns"
grep "peer-sub" "$T/out" | grep -q "127.0.0.1" || { cat "$T/out" >&2; fail "the peer address is shown"; }
grep "peer-sub" "$T/out" | grep -qE "20[0-9]{2}-[0-9]{2}-[0-9]{2}T" || fail "the connection time is shown"
ok "busd-ctl clients shows peer address and connection time"
kill -TERM "$peer_pid"; wait_rc "$peer_pid"
exit 0
