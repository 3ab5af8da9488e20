#!/bin/bash
# run.sh - the signup example with services written in Node.js (README.md).
#
# Starts busd, two mailer instances, the CRM and analytics (each a Node.js
# process using clients/node), publishes five sign-ups, and shows: the
# mailer's greylisting retried (attempt 2), a sign-up without an email
# dead-lettered by the mailer, Zoë dead-lettered by the CRM's ASCII bug,
# the other services unaffected; then "deploys the fix" and replays the
# CRM's dead letter. Exits non-zero when any of that does
# not happen, so it doubles as a test (clients/node/test/example.test.js).
#
# Uses the busd of the build tree it sits in (or $BUSD_BIN), else the
# installed one. Port: $SIGNUP_PORT (default 7472); state: $SIGNUP_STATE
# (default /tmp/busd-signup-node).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
PORT=${SIGNUP_PORT:-7472}
export BUSD_ENDPOINT=tcp://127.0.0.1:$PORT
export SIGNUP_STATE=${SIGNUP_STATE:-/tmp/busd-signup-node}
BUSD=${BUSD_BIN:-$top/src/broker/busd}
[ -x "$BUSD" ] || BUSD=$(command -v busd) || { echo "run.sh: busd is neither built here nor installed" >&2; exit 1; }
[ -d "$top/clients/node/node_modules" ] || (cd "$top/clients/node" && npm ci --no-audit --no-fund)

say () { printf '\n==> %s\n' "$*"; }

pids=()
cleanup () {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for () {
    local limit=$1 what=$2
    shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $end ]; then
            echo "run.sh: gave up waiting for $what after ${limit}s" >&2
            tail -n 20 "$SIGNUP_STATE"/*.log >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}
lines () { [ -f "$1" ] && [ "$(grep -c -- "${3:-}" "$1")" -ge "$2" ]; }

rm -rf "$SIGNUP_STATE"
mkdir -p "$SIGNUP_STATE"

say "Starting busd on $BUSD_ENDPOINT (retries after 0.5 s, 1 s, 2 s...)"
"$BUSD" --bind "$BUSD_ENDPOINT" -s backoff_initial_ms=500 -s backoff_max_ms=5000 >"$SIGNUP_STATE/busd.log" 2>&1 &
pids+=($!)

say "Starting the services: mailer x2 (group mailer), crm, analytics"
start () { # start LOG SCRIPT [ARGS...]
    local log=$1; shift
    node "$here/$1" "${@:2}" >"$SIGNUP_STATE/$log.log" 2>&1 &
    pids+=($!)
}
start mailer-1 mailer.js 1
start mailer-2 mailer.js 2
start crm crm.js
start analytics analytics.js
for s in mailer-1 mailer-2 crm analytics; do
    wait_for 30 "$s to subscribe" lines "$SIGNUP_STATE/$s.log" 1 ready
done

say "Five people sign up"
node "$here/signup.js"

say "The mailer was greylisted on the first attempt: busd retried"
wait_for 30 "four welcome mails" lines "$SIGNUP_STATE/outbox.log" 4
wait_for 30 "four CRM contacts" lines "$SIGNUP_STATE/contacts.jsonl" 4
wait_for 30 "five analytics lines" lines "$SIGNUP_STATE/analytics.jsonl" 5
cat "$SIGNUP_STATE"/mailer-*.log | grep -v ready | sort | sed 's/^/    /'
echo "    outbox:"
sed 's/^/      /' "$SIGNUP_STATE/outbox.log"
grep -q "attempt 2" "$SIGNUP_STATE/outbox.log" || { echo "run.sh: no mail went out on attempt 2" >&2; exit 1; }

say "Dead letters: Mallory has no email (mailer), Zoë's name hit the CRM's bug"
dlq_count () { [ "$(node "$here/dlq.js" list | grep -c signup-)" -ge "$1" ]; }
wait_for 30 "two dead letters" dlq_count 2
node "$here/dlq.js" list | sed 's/^/    /'
node "$here/dlq.js" list | grep -q "signup-4.*crm.*ASCII" || { echo "run.sh: Zoë is not in the DLQ" >&2; exit 1; }
node "$here/dlq.js" list | grep -q "signup-5.*mailer.*email" || { echo "run.sh: Mallory is not in the DLQ" >&2; exit 1; }

say "Deploying the fix: the CRM restarts accepting any name; replay its dead letter"
kill -TERM "${pids[3]}"
wait "${pids[3]}" 2>/dev/null || true
CRM_FIXED=1 start crm-fixed crm.js
wait_for 30 "the fixed CRM" lines "$SIGNUP_STATE/crm-fixed.log" 1 ready
node "$here/dlq.js" replay crm | sed 's/^/    /'
wait_for 30 "Zoë in the CRM" grep -q "Zoë" "$SIGNUP_STATE/contacts.jsonl"
grep "Zoë" "$SIGNUP_STATE/contacts.jsonl" | sed 's/^/    /'
echo "    dead letters left:"
node "$here/dlq.js" list | sed 's/^/      /'
# A broker that replays to the origin subscription gives the event to the
# CRM's group alone; one that republishes to the topic gives it to every
# subscriber again, and they cope because they are idempotent on msg_id.
if [ "$(grep -c signup-4 "$SIGNUP_STATE/analytics.jsonl")" -eq 1 ]; then
    echo "    the replay went to the CRM alone"
else
    echo "    the replay went to every subscriber of user.created: the mailer had"
    echo "    sent Zoë's mail already, analytics has a second line with her msg_id"
fi

say "Done. Everything is in $SIGNUP_STATE"
