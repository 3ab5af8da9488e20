#!/bin/bash
# test_security.sh - busd-keygen, and the tools' credentials end to end:
# busd-pub and busd-sub over a CURVE listener (options and environment),
# busd-ctl over PLAIN, refused keys (exit 3), incomplete or unreadable
# credentials (exit 2), and --check-config naming a bad ACL line.
. "$(dirname "$0")/lib.sh"
KEYGEN="$BUSD_TOOLS/busd-keygen"
[ -x "$KEYGEN" ] || { echo "SKIP: $KEYGEN not built"; exit 77; }

# ---- busd-keygen
mkdir -p "$T/keys" "$T/clients"
expect_rc 0 "busd-keygen writes a key pair" "$KEYGEN" -d "$T/keys" server
[ -f "$T/keys/server.key" ] && [ -f "$T/keys/server.key_secret" ] || fail "both files written"
[ "$(stat -c %a "$T/keys/server.key_secret")" = 600 ] || fail "the secret file is 0600"
grep -q 'name = "server"' "$T/keys/server.key" || fail "the certificate carries its name"
grep -q secret-key "$T/keys/server.key" && fail "the public file holds no secret key"
[ "$(wc -c <"$T/out")" -eq 41 ] || fail "prints the 40-character public key"
ok "busd-keygen files, mode and name"
expect_rc 1 "busd-keygen refuses to overwrite" "$KEYGEN" -d "$T/keys" server
expect_rc 0 "busd-keygen --force overwrites" "$KEYGEN" -f -d "$T/keys" server
expect_rc 2 "busd-keygen without a name" "$KEYGEN" -d "$T/keys"
expect_rc 2 "busd-keygen with a path as name" "$KEYGEN" -d "$T/keys" ../evil
"$KEYGEN" -d "$T/keys" alice >/dev/null && "$KEYGEN" -d "$T/keys" mallory >/dev/null \
    || fail "client keys"
cp "$T/keys/alice.key" "$T/clients/"
echo "ops=let-me-in" >"$T/passwords"

# ---- a broker with a CURVE and a PLAIN listener beside loopback
CURVE_PORT=$(free_port)
PLAIN_PORT=$(free_port)
cat >"$T/busd.json" <<JSON
{
    "listeners": [
        { "bind": "tcp://127.0.0.1:$CURVE_PORT", "auth": "curve" },
        { "bind": "tcp://127.0.0.1:$PLAIN_PORT", "auth": "plain" }
    ],
    "curve_server_cert": "$T/keys/server.key_secret",
    "curve_clients_dir": "$T/clients",
    "plain_passwords": "$T/passwords"
}
JSON
expect_rc 0 "busd --check-config accepts the security settings" "$BUSD_BIN" --check-config -c "$T/busd.json"
start_busd -c "$T/busd.json"
CURVE="tcp://127.0.0.1:$CURVE_PORT"
PLAIN="tcp://127.0.0.1:$PLAIN_PORT"

"$SUB" -e "$CURVE" --curve-server-key "$T/keys/server.key" --curve-cert "$T/keys/alice.key_secret" \
    -C 1 -W 30 'secure.#' >"$T/sub.out" 2>"$T/sub.err" &
sub_pid=$!
# busd-sub has subscribed once the broker lists it.
i=0
until "$CTL" subscriptions 2>/dev/null | grep -q 'secure.#'; do
    i=$((i + 1)); [ $i -lt 300 ] || fail "busd-sub over CURVE did not subscribe"; sleep 0.1
done
SERVER_KEY=$(cat "$T/keys/server.key" | sed -n 's/.*public-key = "\(.*\)"/\1/p')
BUSD_CURVE_SERVER_KEY="$SERVER_KEY" BUSD_CURVE_CERT="$T/keys/alice.key_secret" \
    expect_rc 0 "busd-pub over CURVE with the key in the environment" \
    "$PUB" -e "$CURVE" -t secure.event -m "over curve"
wait "$sub_pid" || fail "busd-sub over CURVE exited with $?"
grep -q "secure.event over curve" "$T/sub.out" || fail "busd-sub got the event: $(cat "$T/sub.out")"
ok "an event from busd-pub to busd-sub over CURVE"

expect_rc 3 "an unknown client key is refused" \
    "$CTL" -e "$CURVE" --connect-timeout 1 --curve-server-key "$T/keys/server.key" \
    --curve-cert "$T/keys/mallory.key_secret" stats
expect_rc 3 "no key on a CURVE listener is refused" "$CTL" -e "$CURVE" --connect-timeout 1 stats
expect_rc 2 "a server key without a client certificate" \
    "$CTL" -e "$CURVE" --curve-server-key "$T/keys/server.key" stats
grep -q "credentials" "$T/err" || fail "the error explains the credentials"
expect_rc 2 "an unreadable certificate" \
    "$CTL" -e "$CURVE" --curve-server-key "$T/keys/server.key" --curve-cert "$T/nope" stats
expect_rc 2 "CURVE and PLAIN together" \
    "$CTL" -e "$CURVE" --curve-server-key "$T/keys/server.key" \
    --curve-cert "$T/keys/alice.key_secret" --plain-user ops --plain-password x stats

BUSD_PLAIN_PASSWORD=let-me-in expect_rc 0 "busd-ctl over PLAIN" \
    "$CTL" -e "$PLAIN" --plain-user ops clients
grep -qE ' ops +127\.0\.0\.1 ' "$T/out" || fail "the PLAIN user is the identity: $(cat "$T/out")"
expect_rc 3 "a wrong PLAIN password is refused" \
    "$CTL" -e "$PLAIN" --connect-timeout 1 --plain-user ops --plain-password wrong stats
stop_busd

# ---- --check-config names the ACL file and line
printf 'identity a\n    publish a..b\n' >"$T/acl"
printf '{"acl_file": "%s"}' "$T/acl" >"$T/bad.json"
expect_rc 2 "busd --check-config refuses a bad ACL" "$BUSD_BIN" --check-config -c "$T/bad.json"
grep -q "$T/acl:2: publish pattern 'a..b'" "$T/err" || fail "the error names file and line: $(cat "$T/err")"
ok "the ACL error names file and line"
echo "all security tool tests passed"
