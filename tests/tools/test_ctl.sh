#!/bin/bash
# test_ctl.sh - busd-ctl against a broker in a known state: counters after
# a known traffic, clients and subscriptions tables, --json output, dead
# letters listed and replayed.
. "$(dirname "$0")/lib.sh"

start_busd

# json_ok WHAT: $T/out must be one valid JSON document.
json_ok () {
    python3 -m json.tool "$T/out" >/dev/null || { cat "$T/out" >&2; fail "$1: --json output parses"; }
    ok "$1: --json output parses"
}

# ---- a subscriber waiting for 5 events
bg "$SUB" --name ctl-sub -C 5 -W 60 ctl.test >/dev/null
sub_pid=$BG_PID
wait_subs 1

expect_rc 0 "busd-ctl subscriptions" "$CTL" subscriptions
head -n 1 "$T/out" | grep -q "PATTERN" || fail "subscriptions has a header row"
grep -q "ctl-sub .*ctl\.test" "$T/out" || { cat "$T/out" >&2; fail "subscriptions shows client and pattern"; }
ok "subscriptions shows the client and the pattern"
# Aligned columns: PATTERN starts at the same offset on every line.
awk 'NR == 1 { col = index($0, "PATTERN") } NR > 1 { if (index($0, "ctl.test") != col) exit 1 }' "$T/out" \
    || { cat "$T/out" >&2; fail "subscriptions columns are aligned"; }
ok "subscriptions columns are aligned"

expect_rc 0 "busd-ctl --json subscriptions" "$CTL" --json subscriptions
json_ok "subscriptions"
python3 - "$T/out" <<'EOF' || fail "subscriptions JSON names the pattern and client"
import json, sys
subs = json.load(open(sys.argv[1]))["subscriptions"]
assert len(subs) == 1, subs
assert subs[0]["pattern"] == "ctl.test" and subs[0]["client"] == "ctl-sub", subs
EOF
ok "subscriptions JSON names the pattern and client"

expect_rc 0 "busd-ctl clients" "$CTL" clients
head -n 1 "$T/out" | grep -q "NAME" || fail "clients has a header row"
grep -q "ctl-sub" "$T/out" || { cat "$T/out" >&2; fail "clients lists the subscriber"; }
grep -q "busd-ctl" "$T/out" || fail "clients lists busd-ctl itself"
ok "clients lists the subscriber and busd-ctl"
expect_rc 0 "busd-ctl --json clients" "$CTL" --json clients
json_ok "clients"

# ---- 5 events published and delivered
"$PUB" -t ctl.test -m event --count 5 --confirm || fail "publishing 5 events failed"
wait_rc "$sub_pid"
[ "$RC" -eq 0 ] || fail "the subscriber got its 5 events (exit $RC)"
ok "the subscriber got its 5 events"

expect_rc 0 "busd-ctl stats" "$CTL" stats
grep -Eq '^accepted 5$' "$T/out" || { cat "$T/out" >&2; fail "stats: accepted 5"; }
ok "stats: accepted 5"
grep -Eq '^delivered 5$' "$T/out" || { cat "$T/out" >&2; fail "stats: delivered 5"; }
ok "stats: delivered 5"
grep -Eq '^subscriptions 0$' "$T/out" || fail "stats: subscriptions 0 after the subscriber left"
ok "stats: subscriptions 0 after the subscriber left"
# 'key value' lines, every value an integer
awk 'NF != 2 || $2 !~ /^-?[0-9]+$/ { exit 1 }' "$T/out" || fail "stats prints 'key integer' lines"
ok "stats prints 'key integer' lines"

expect_rc 0 "busd-ctl --json stats" "$CTL" --json stats
json_ok "stats"
python3 - "$T/out" <<'EOF' || fail "stats JSON counters"
import json, sys
s = json.load(open(sys.argv[1]))
for key in ("sessions", "subscriptions", "accepted", "rejected", "duplicates", "unrouted",
            "delivered", "redelivered", "dropped", "queued", "inflight", "dead_lettered",
            "throttled_publishers", "protocol_errors", "uptime_s"):
    assert isinstance(s[key], int), key
assert s["accepted"] == 5 and s["delivered"] == 5, s
EOF
ok "stats JSON has every counter; accepted = delivered = 5"
# The text output keeps the broker's order of keys.
python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))))' "$T/out" >"$T/keys.json"
"$CTL" stats | awk '{ print $1 }' >"$T/keys.text"
same "$T/keys.text" "$T/keys.json" "stats lines keep the broker's order"

expect_rc 0 "busd-ctl raw stats" "$CTL" raw '{"cmd":"stats"}'
json_ok "raw"

# ---- dead letters: a subscriber that cannot acknowledge (stopped)
bg "$SUB" -W 60 --ack explicit --ack-wait 200 --max-deliver 1 dlq.test >/dev/null 2>&1
dead_pid=$BG_PID
wait_subs 1
kill -STOP "$dead_pid"
"$PUB" -t dlq.test -m "doomed" --id doomed-1 --confirm || fail "publish for the DLQ failed"
wait_stat dead_lettered 1
kill -CONT "$dead_pid"
kill -TERM "$dead_pid"
wait_rc "$dead_pid"

expect_rc 0 "busd-ctl dlq list" "$CTL" dlq list
head -n 1 "$T/out" | grep -q "REASON" || fail "dlq list has a header row"
grep -q "dlq\.test" "$T/out" || { cat "$T/out" >&2; fail "dlq list shows the dead letter"; }
ok "dlq list shows the dead letter"
expect_rc 0 "busd-ctl --json dlq list --topic" "$CTL" --json dlq list --topic 'dlq.#' --limit 10
json_ok "dlq list"
dead_id=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))["dead_letters"]
assert len(d) == 1 and d[0]["topic"] == "dlq.test" and d[0]["msg_id"] == "doomed-1", d
print(d[0]["id"])' "$T/out") || fail "dlq list JSON describes the dead letter"
ok "dlq list JSON describes the dead letter (id $dead_id)"
expect_rc 0 "busd-ctl dlq list --topic not matching" "$CTL" --json dlq list --topic 'other.#'
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["dead_letters"] == []' "$T/out" \
    || fail "dlq list --topic filters"
ok "dlq list --topic filters"

bg "$SUB" -C 1 -W 60 dlq.test >/dev/null
sub_pid=$BG_PID
wait_subs 1
expect_rc 0 "busd-ctl dlq replay --id" "$CTL" dlq replay --id "$dead_id"
grep -q "^replayed 1$" "$T/out" || { cat "$T/out" >&2; fail "dlq replay says replayed 1"; }
ok "dlq replay says replayed 1"
wait_rc "$sub_pid"
[ "$RC" -eq 0 ] || fail "the replayed event reached a subscriber (exit $RC)"
ok "the replayed event reached a subscriber"
expect_rc 0 "busd-ctl --json dlq list after replay" "$CTL" --json dlq list
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["dead_letters"] == []' "$T/out" \
    || fail "the replayed dead letter left the store"
ok "the replayed dead letter left the store"

expect_rc 0 "busd-ctl --json dlq replay --topic" "$CTL" --json dlq replay --topic 'dlq.#'
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["replayed"] == 0' "$T/out" \
    || fail "replaying an empty store replays 0"
ok "replaying an empty store replays 0"

# ---- reload
expect_rc 0 "busd-ctl reload" "$CTL" reload
grep -q "^reloaded$" "$T/out" || fail "reload says reloaded"
ok "reload says reloaded"

exit 0
