#!/bin/sh
# The README's first command installs packages through dist/install-deps.sh:
# as root it must not call sudo (a fresh container has none), as a user it
# must.  apt-get, sudo and id are replaced by recorders on PATH.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
src=${BUSD_TOP_SRCDIR:-$top}
T=$(mktemp -d "${TMPDIR:-/tmp}/busd-install-deps.XXXXXX") || exit 99
trap 'rm -rf "$T"' EXIT
fail () { echo "not ok - $*"; exit 1; }
mkdir "$T/bin"
cat > "$T/bin/apt-get" <<'SH'
#!/bin/sh
echo "apt-get $*" >> "$RECORD"
SH
cat > "$T/bin/npm" <<'SH'
#!/bin/sh
echo "npm $*" >> "$RECORD"
SH
cat > "$T/bin/sudo" <<'SH'
#!/bin/sh
echo "sudo" >> "$RECORD"
exec "$@"
SH
cat > "$T/bin/id" <<'SH'
#!/bin/sh
echo "$FAKE_UID"
SH
chmod +x "$T/bin/"*
export RECORD="$T/record"

# Root: no sudo anywhere.
: > "$RECORD"
FAKE_UID=0 PATH="$T/bin:$PATH" "$src/dist/install-deps.sh" || fail "as root: exit $?"
grep -q '^sudo' "$RECORD" && fail "as root it called sudo"
grep -q '^apt-get update' "$RECORD" || fail "as root: no apt-get update"
grep -q '^apt-get install -y .*libczmq-dev' "$RECORD" || fail "as root: no apt-get install of the list"
grep -q '^npm ci' "$RECORD" || fail "as root: no npm ci for the Node.js client"
echo "ok - as root: apt-get without sudo, npm ci for the Node.js client"

# A user: through sudo.
: > "$RECORD"
FAKE_UID=1000 PATH="$T/bin:$PATH" "$src/dist/install-deps.sh" || fail "as a user: exit $?"
[ "$(grep -c '^sudo' "$RECORD")" -eq 2 ] || fail "as a user: expected two sudo calls: $(cat "$RECORD")"
echo "ok - as a user: apt-get through sudo"

# The README's first command is this script.
sed -n '/^```sh/{n;p;q}' "$src/README.md" | grep -q '^dist/install-deps.sh &&' \
    || fail "README's first command does not start with dist/install-deps.sh"
echo "ok - README's first command uses it"
