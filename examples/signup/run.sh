#!/bin/bash
# run.sh - the signup example end to end (see README.md).
#
# Starts a stand-in CRM (crm_server.py, with its ASCII-only bug) and busd
# with busd.json: user.created goes to three plugins - analytics (file),
# the welcome mail (exec: mailer.sh) and the CRM (webhook).  Publishes
# three signups, shows the mailer's first refusal being retried, publishes
# one the CRM rejects (dead letter), lists the dead-letter queue, "deploys
# the fix" (restarts the CRM without the bug) and replays the dead letter.
#
# Uses the binaries and plugins of the build tree it sits in when there is
# one (or of $BUSD_BUILDDIR), else the installed busd, busd-pub and busd-ctl.
# Everything it writes goes to /tmp/busd-signup; it uses ports 7471 (busd)
# and 8471 (CRM).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=${BUSD_BUILDDIR:-$here/../..}
STATE=/tmp/busd-signup
EP=tcp://127.0.0.1:7471
PY=/usr/bin/python3
export BUSD_ENDPOINT=$EP

if [ -x "$top/src/broker/busd" ]; then
    top=$(cd "$top" && pwd)
    BUSD=$top/src/broker/busd
    PUB=$top/src/tools/busd-pub
    CTL=$top/src/tools/busd-ctl
    intree=$top
else
    BUSD=$(command -v busd) || { echo "run.sh: busd is neither built here nor installed" >&2; exit 1; }
    PUB=$(command -v busd-pub)
    CTL=$(command -v busd-ctl)
    intree=
fi

if [ -t 1 ]; then
    say () { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
    say () { printf '\n==> %s\n' "$*"; }
fi

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for () {
    local limit=$1 what=$2
    shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $end ]; then
            echo "run.sh: gave up waiting for $what after ${limit}s" >&2
            echo "---- busd log:" >&2; tail -n 30 "$STATE/busd.log" >&2
            echo "---- CRM log:" >&2; tail -n 10 "$STATE/crm.log" >&2
            exit 1
        fi
        sleep 0.2
    done
}

lines_at_least () { [ -f "$1" ] && [ "$(grep -c "${3:-}" "$1")" -ge "$2" ]; }

port_free () {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

for port in 7471 8471; do
    port_free $port || { echo "run.sh: port $port is in use; stop what uses it first" >&2; exit 1; }
done

BUSD_PID=
CRM_PID=
cleanup () {
    local pid
    for pid in $BUSD_PID $CRM_PID; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

rm -rf "$STATE"
mkdir -p "$STATE"

# This run's configuration: busd.json with mailer.sh made absolute and, in a
# build tree, the plugins taken from the tree instead of the install
# directory.  (busd accepts comments in its configuration; json.loads does
# not, so they are dropped outside strings first.)
"$PY" - "$here/busd.json" "$STATE/busd.json" "$here" "$intree" <<'PY'
import json, os, sys
src, dst, here, tree = sys.argv[1:5]
text, out, i, in_str = open(src).read(), [], 0, False
while i < len(text):
    c = text[i]
    if in_str:
        out.append(c)
        if c == "\\":
            out.append(text[i + 1]); i += 1
        elif c == '"':
            in_str = False
    elif c == '"':
        in_str = True; out.append(c)
    elif text.startswith("//", i):
        i = text.find("\n", i) - 1 if "\n" in text[i:] else len(text)
    elif text.startswith("/*", i):
        i = text.index("*/", i) + 1
    else:
        out.append(c)
    i += 1
config = json.loads("".join(out))
for p in config["plugins"]:
    if tree and "/" not in p["path"]:
        p["path"] = os.path.join(tree, "plugins", p["path"], ".libs", p["path"] + ".so")
    cmd = p["config"].get("command")
    if isinstance(cmd, list) and cmd[0].startswith("./"):
        cmd[0] = os.path.join(here, cmd[0][2:])
json.dump(config, open(dst, "w"), indent=4)
PY

say "Starting the CRM stand-in (with its bug: non-ASCII names are refused)"
"$PY" -u "$here/crm_server.py" --ascii-only >"$STATE/crm.log" 2>&1 &
CRM_PID=$!
wait_for 10 "the CRM to listen" grep -q listening "$STATE/crm.log"
cat "$STATE/crm.log"

say "Starting busd with three plugins: analytics (file), mailer (exec), crm (webhook)"
"$BUSD" -c "$STATE/busd.json" >"$STATE/busd.log" 2>&1 &
BUSD_PID=$!
# Each instance says "running" once it has subscribed (mailer has two).
wait_for 15 "the plugins to start" lines_at_least "$STATE/busd.log" 4 ": running ("
grep -E "plugins: |: running \(" "$STATE/busd.log" | sed 's/^/    /'

say "Three people sign up"
n=0
for user in '{"name": "Alice", "email": "alice@example.com"}' \
            '{"name": "Bob", "email": "bob@example.com"}' \
            '{"name": "Carol", "email": "carol@example.com"}'; do
    n=$((n + 1))
    echo "    busd-pub -t user.created --id signup-$n -H source=web -m '$user'"
    "$PUB" -t user.created --id "signup-$n" -H source=web -m "$user"
done

say "The mailer was greylisted on the first attempt (exit 75): busd retries"
wait_for 20 "three welcome mails" lines_at_least "$STATE/mailer/outbox.log" 3
wait_for 10 "three CRM contacts" lines_at_least "$STATE/crm.log" 3 "stored contact"
echo "    mailer log:"
sed 's/^/      /' "$STATE/mailer/mailer.log"
echo "    mailer outbox:"
sed 's/^/      /' "$STATE/mailer/outbox.log"
echo "    CRM:"
grep "stored contact" "$STATE/crm.log" | sed 's/^/      /'
wait_for 10 "three analytics lines" lines_at_least "$STATE/analytics.jsonl" 3
echo "    analytics ($STATE/analytics.jsonl):"
sed 's/^/      /' "$STATE/analytics.jsonl"

say "Zoë signs up; the CRM's bug rejects her with 400, a final answer"
echo "    busd-pub -t user.created --id signup-4 -m '{\"name\": \"Zoë\", ...}'"
"$PUB" -t user.created --id signup-4 -H source=app -m '{"name": "Zoë", "email": "zoe@example.com"}'
dlq_has () { "$CTL" dlq list --topic 'user.#' | grep -q "$1"; }
wait_for 15 "the dead letter" dlq_has signup-4
grep "signup-4" "$STATE/crm.log" | sed 's/^/    CRM log: /'

say "busd-ctl dlq list: the event is parked with the CRM's reason"
"$CTL" dlq list --topic 'user.#' | sed 's/^/    /'
wait_for 20 "Zoë's welcome mail" lines_at_least "$STATE/mailer/outbox.log" 4
echo "    (the other subscribers were not affected: Zoë got her welcome mail)"
tail -n 1 "$STATE/mailer/outbox.log" | sed 's/^/      /'

say "Deploying the fix: restart the CRM without the ASCII-only bug"
kill -TERM "$CRM_PID"
wait "$CRM_PID" 2>/dev/null || true
"$PY" -u "$here/crm_server.py" >>"$STATE/crm.log" 2>&1 &
CRM_PID=$!
wait_for 10 "the fixed CRM" lines_at_least "$STATE/crm.log" 2 listening

say "busd-ctl dlq replay --topic 'user.#'"
"$CTL" dlq replay --topic 'user.#' | sed 's/^/    /'
wait_for 15 "Zoë in the CRM" grep -q "stored contact Zoë" "$STATE/crm.log"
grep "Zoë" "$STATE/crm.log" | tail -n 1 | sed 's/^/    CRM log: /'
echo "    The replay went to every subscriber of user.created; the mailer and the"
echo "    CRM are idempotent on msg_id, so nobody got a second welcome mail:"
wait_for 10 "the mailer to see the replay" grep -q "already sent" "$STATE/mailer/mailer.log"
grep "already sent" "$STATE/mailer/mailer.log" | sed 's/^/      mailer log: /'
echo "      outbox: $(wc -l < "$STATE/mailer/outbox.log") mails for 4 signups"
echo "    dead letters left: $("$CTL" dlq list --topic 'user.#' | grep -c signup || true)"

say "Plugin counters (busd-ctl --json stats)"
"$CTL" --json stats | "$PY" -c '
import json, sys
print("    %-10s %9s %4s %7s %12s  %s" % ("PLUGIN", "DELIVERED", "OK", "RETRIED", "DEAD_LETTERS", "METRICS"))
for p in json.load(sys.stdin).get("plugins", []):
    print("    %-10s %9d %4d %7d %12d  %s" % (p["name"], p["delivered"], p["ok"], p["retried"],
          p["dead_lettered"], " ".join("%s=%g" % kv for kv in p.get("metrics", {}).items())))
'

say "Done.  Everything is in $STATE (busd.log, crm.log, analytics.jsonl, mailer/)"
