#!/bin/bash
# test_durable_tools.sh - the command-line side of durable streams:
# busd-sub --durable/--from resumes a named cursor across a broker restart,
# busd-ctl streams / stream info / stream purge / stream delete.
. "$(dirname "$0")/lib.sh"

cat >"$T/busd.json" <<JSON
{ "data_dir": "$T/data",
  "streams": [{ "name": "orders", "patterns": ["order.#"], "max_events": 1000,
                "max_bytes": "10MiB", "max_age": "7d", "sync": "always" }] }
JSON
start_busd -c "$T/busd.json"

printf 'one\ntwo\nthree\n' >"$T/lines"
expect_rc 0 "busd-pub three events" sh -c '"$1" --confirm -l -t order.created <"$2"' sh "$PUB" "$T/lines"
expect_rc 0 "busd-sub --durable --from first -C 2" \
    "$SUB" --durable audit --from first -C 2 -W 30 -F '%S %p' order.#
[ "$(cat "$T/out")" = "$(printf '1 one\n2 two')" ] || { cat "$T/out" >&2; fail "first two events with their stream_seq"; }
ok "a new cursor from first gets events 1 and 2"

# A restart in between: the cursor resumes after the last acknowledged.
stop_busd
start_busd -c "$T/busd.json"
expect_rc 0 "busd-sub --durable resumes" "$SUB" --durable audit -C 1 -W 30 -F '%S %p' order.#
[ "$(cat "$T/out")" = "3 three" ] || { cat "$T/out" >&2; fail "resume after a restart"; }
ok "the cursor resumes after a restart"

expect_rc 0 "busd-sub --from 2" "$SUB" --durable replay --from 2 -C 2 -W 30 -F '%p' order.#
[ "$(cat "$T/out")" = "$(printf 'two\nthree')" ] || { cat "$T/out" >&2; fail "--from SEQ"; }
ok "--from SEQ starts at that sequence"

expect_rc 2 "--from without --durable" "$SUB" --from first order.#
grep -q "needs --durable" "$T/err" || fail "--from without --durable names the problem"
expect_rc 2 "--from nonsense" "$SUB" --durable x --from yesterday order.#
expect_rc 2 "--durable --ack none" "$SUB" --durable x --ack none order.#
ok "usage errors for --durable and --from"

expect_rc 0 "busd-ctl streams" "$CTL" streams
grep -q "^STREAM" "$T/out" || fail "streams has a header row"
grep -q "^orders .* 3 .* always" "$T/out" || { cat "$T/out" >&2; fail "streams shows orders with 3 events"; }
grep -q "^orders *audit .* 0 " "$T/out" || { cat "$T/out" >&2; fail "streams shows the audit cursor"; }
ok "busd-ctl streams lists the stream and its cursors"

expect_rc 0 "busd-ctl stream info" "$CTL" --json stream info orders
python3 - "$T/out" <<'PY' || fail "stream info JSON"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["name"] == "orders" and s["events"] == 3 and s["max_events"] == 1000, s
assert s["max_bytes"] == 10 * 1024 * 1024 and s["max_age_ms"] == 7 * 86400000, s
assert sorted(c["name"] for c in s["cursors"]) == ["audit", "replay"], s
PY
ok "stream info has limits and cursors"

expect_rc 1 "stream info unknown" "$CTL" stream info nope
grep -q "404" "$T/err" || fail "unknown stream is 404"
expect_rc 2 "stream without a name" "$CTL" stream info
expect_rc 0 "stream purge" "$CTL" stream purge orders
grep -q "3 events removed" "$T/out" || { cat "$T/out" >&2; fail "purge says how many"; }
expect_rc 0 "stream delete" "$CTL" stream delete orders
grep -q "recreated empty" "$T/out" || { cat "$T/out" >&2; fail "delete of a configured stream"; }
ok "stream purge and delete"
