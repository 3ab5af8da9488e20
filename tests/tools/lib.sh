# lib.sh - shell helpers shared by the command-line tool tests.
#
# Each test script sources this file, calls start_busd, and gets its own
# broker on a free port, so the scripts can run in parallel (make -j check)
# and never touch a broker the user is running.  Everything started here is
# stopped by the EXIT trap, including when a check fails half-way.
#
# Environment (set by Makefile.am's AM_TESTS_ENVIRONMENT; derived from the
# script's location when run by hand):
#   BUSD_BIN    the broker binary
#   BUSD_TOOLS  the directory holding busd-pub, busd-sub and busd-ctl

set -u

_top=$(cd "$(dirname "$0")/../.." && pwd)
BUSD_BIN=${BUSD_BIN:-$_top/src/broker/busd}
BUSD_TOOLS=${BUSD_TOOLS:-$_top/src/tools}
PUB="$BUSD_TOOLS/busd-pub"
SUB="$BUSD_TOOLS/busd-sub"
CTL="$BUSD_TOOLS/busd-ctl"
TEST_NAME=$(basename "$0" .sh)

for _bin in "$BUSD_BIN" "$PUB" "$SUB" "$CTL"; do
    if [ ! -x "$_bin" ]; then
        echo "SKIP: $_bin not built"
        exit 77        # automake's "skipped"
    fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/busd-$TEST_NAME.XXXXXX") || exit 99
BUSD_PID=
BUSD_LOG="$T/busd.log"
_bg_pids=

# Tools must never reach a broker outside the test by accident.
unset BUSD_ENDPOINT

ok () {
    echo "ok - $*"
}

# fail MESSAGE: say which check failed, show the broker's log, stop.
fail () {
    echo "not ok - $*"
    echo "FAIL ($TEST_NAME): $*" >&2
    if [ -s "$BUSD_LOG" ]; then
        echo "---- last lines of the broker log:" >&2
        tail -n 30 "$BUSD_LOG" >&2
    fi
    exit 1
}

_cleanup () {
    for _p in $_bg_pids; do
        kill -CONT "$_p" 2>/dev/null
        kill -TERM "$_p" 2>/dev/null
    done
    if [ -n "$BUSD_PID" ]; then
        kill -CONT "$BUSD_PID" 2>/dev/null
        stop_busd
    fi
    rm -rf "$T"
}
trap _cleanup EXIT
trap 'exit 1' INT TERM

free_port () {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# start_busd [ARGS...]: a broker on a free port; sets BUSD_PORT and
# BUSD_ENDPOINT (exported, so every tool uses it without -e).
start_busd () {
    BUSD_PORT=$(free_port) || fail "no free port"
    BUSD_ENDPOINT="tcp://127.0.0.1:$BUSD_PORT"
    export BUSD_ENDPOINT
    "$BUSD_BIN" --bind "$BUSD_ENDPOINT" "$@" >"$BUSD_LOG" 2>&1 &
    BUSD_PID=$!
    local i=0
    while [ $i -lt 300 ]; do
        if "$CTL" --connect-timeout 0.5 --timeout 1 stats >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$BUSD_PID" 2>/dev/null || fail "busd exited at start-up"
        sleep 0.1
        i=$((i + 1))
    done
    fail "busd did not answer busd-ctl stats within 30 s"
}

stop_busd () {
    [ -n "$BUSD_PID" ] || return 0
    kill -TERM "$BUSD_PID" 2>/dev/null
    local i=0
    while kill -0 "$BUSD_PID" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$BUSD_PID" 2>/dev/null
    wait "$BUSD_PID" 2>/dev/null
    BUSD_PID=
}

# bg CMD...: run CMD in the background, remembered for cleanup; sets BG_PID.
# The explicit <&0 keeps a redirected stdin: without it a non-interactive
# shell gives background jobs /dev/null.
bg () {
    "$@" <&0 &
    BG_PID=$!
    _bg_pids="$_bg_pids $BG_PID"
}

# wait_rc PID [SECONDS]: wait for a background job and set RC to its exit
# status; a job still running after SECONDS (default 90) is a failure.
wait_rc () {
    local pid=$1 limit=${2:-90} i=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ $i -ge $((limit * 10)) ]; then
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            fail "process $pid still running after $limit s"
        fi
        sleep 0.1
        i=$((i + 1))
    done
    wait "$pid"
    RC=$?
}

# busd_stat NAME: one counter from busd-ctl stats.
busd_stat () {
    "$CTL" stats | awk -v k="$1" '$1 == k { print $2 }'
}

# wait_subs N: until the broker counts at least N subscriptions, so that a
# publish that follows is routed to a subscriber started in the background.
wait_subs () {
    local i=0 n
    while [ $i -lt 300 ]; do
        n=$(busd_stat subscriptions)
        [ -n "$n" ] && [ "$n" -ge "$1" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    fail "the broker did not reach $1 subscriptions within 30 s (has ${n:-none})"
}

# wait_stat NAME VALUE: until a counter reaches VALUE (at most 30 s).
wait_stat () {
    local i=0 n
    while [ $i -lt 300 ]; do
        n=$(busd_stat "$1")
        [ -n "$n" ] && [ "$n" -ge "$2" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    fail "counter $1 did not reach $2 within 30 s (is ${n:-missing})"
}

# expect_rc WANT DESCRIPTION CMD...: run CMD (stdout and stderr to $T/out
# and $T/err) and check its exit status.
expect_rc () {
    local want=$1 what=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "---- stderr of: $*" >&2
        cat "$T/err" >&2
        fail "$what: exit status $got, expected $want"
    fi
    ok "$what (exit $want)"
}

# same FILE1 FILE2 DESCRIPTION: byte-for-byte equality.
same () {
    if ! cmp -s "$1" "$2"; then
        echo "---- expected ($2):" >&2; head -c 600 "$2" | od -c | head -n 12 >&2
        echo "---- got ($1):" >&2; head -c 600 "$1" | od -c | head -n 12 >&2
        fail "$3: output differs"
    fi
    ok "$3"
}
