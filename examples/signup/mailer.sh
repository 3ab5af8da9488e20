#!/bin/sh
# mailer.sh - stands in for the welcome-mail sender in the signup example.
#
# busd's exec plugin runs it once per user.created event: the payload on
# stdin, the event's fields in BUSD_* variables.  Like a real SMTP relay
# that greylists, it refuses every message the first time (exit 75,
# EX_TEMPFAIL: busd retries after a backoff) and accepts it the second
# time.  It is idempotent on BUSD_MSG_ID, as every subscriber must be: a
# redelivery or a dead-letter replay can bring the same event again.
set -eu

state=${MAILER_STATE:?MAILER_STATE must name the state directory}
mkdir -p "$state"
# The msg_id names files: keep it to safe characters.
id=$(printf '%s' "${BUSD_MSG_ID:-}" | tr -c 'A-Za-z0-9._-' '_')
[ -n "$id" ] || { echo "no msg_id: cannot send exactly once" >&2; exit 65; }
payload=$(cat)
log () { printf '%s attempt %s: %s\n' "$BUSD_MSG_ID" "$BUSD_ATTEMPT" "$*" >> "$state/mailer.log"; }

if [ -e "$state/sent-$id" ]; then
    log "already sent, nothing to do"
    exit 0
fi
if [ ! -e "$state/greylisted-$id" ]; then
    : > "$state/greylisted-$id"
    log "greylisted, exit 75"
    echo "421 mail.example.com: greylisted, try again later" >&2
    exit 75
fi
email=$(printf '%s' "$payload" | sed -n 's/.*"email" *: *"\([^"]*\)".*/\1/p')
if [ -z "$email" ]; then
    echo "payload has no \"email\": $payload" >&2
    exit 65        # EX_DATAERR: no retry will fix it, dead-letter it
fi
printf 'welcome mail to %s (msg_id %s, attempt %s)\n' "$email" "$BUSD_MSG_ID" "$BUSD_ATTEMPT" \
    >> "$state/outbox.log"
log "sent to $email"
: > "$state/sent-$id"
