#!/bin/sh
# run.sh - the Node.js client's tests (clients/node/test/*.test.js), run
# with `node --test` against this tree's busd and tools.
#
# Installs the client's one dependency (zeromq, pinned by
# package-lock.json) with `npm ci` when node_modules is missing. When the
# source tree cannot be written (make distcheck), the package is copied to
# a scratch directory first.  Skipped (exit 77) only when there is no
# `node`; a missing npm, a failed install or a failed test is a failure.
#
# Environment (set by Makefile.am's AM_TESTS_ENVIRONMENT; derived from the
# script's location when run by hand): BUSD_BIN, BUSD_TOOLS, BUSD_TOP_SRCDIR.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
src=${BUSD_TOP_SRCDIR:-$top}
BUSD_BIN=${BUSD_BIN:-$top/src/broker/busd}
BUSD_TOOLS=${BUSD_TOOLS:-$top/src/tools}
export BUSD_BIN BUSD_TOOLS

if ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node is not installed"
    exit 77
fi
if [ ! -x "$BUSD_BIN" ]; then
    echo "SKIP: $BUSD_BIN not built"
    exit 77
fi

pkg="$src/clients/node"
scratch=
cleanup () { [ -n "$scratch" ] && rm -rf "$scratch"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

if [ ! -d "$pkg/node_modules" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "FAIL: npm is needed to install the client's dependencies (npm ci in $pkg)" >&2
        exit 1
    fi
    if [ ! -w "$pkg" ]; then
        scratch=$(mktemp -d "${TMPDIR:-/tmp}/busd-node.XXXXXX") || exit 99
        cp -R "$pkg/." "$scratch/" || exit 99
        chmod -R u+w "$scratch"
        pkg=$scratch
    fi
    echo "npm ci in $pkg"
    (cd "$pkg" && npm ci --no-audit --no-fund) || { echo "FAIL: npm ci failed in $pkg" >&2; exit 1; }
fi

echo "node $(node --version); busd $BUSD_BIN"
cd "$pkg" || exit 99
node --test
