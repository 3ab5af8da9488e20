#!/bin/sh
# libbusd.pc: an application compiling against libbusd gets the include
# directory and nothing else.  client.h includes no ZeroMQ header, and
# pkgconf reads Requires.private even for --cflags, which pulled libzmq's
# dependencies' flags (krb5, pgm, libxml2) into every application; the
# private libraries belong in Libs.private, for static links only.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUSD_TOP_BUILDDIR:-$top}
pc="$build/src/lib/libbusd.pc"
fail () { echo "not ok - $*"; exit 1; }
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: no pkg-config"; exit 77; }
[ -f "$pc" ] || fail "$pc was not generated"
export PKG_CONFIG_PATH="$build/src/lib"
cflags=$(pkg-config --cflags libbusd) || fail "pkg-config --cflags libbusd failed"
includedir=$(pkg-config --variable=includedir libbusd)
# (pkg-config drops -I/usr/include, a system directory: then it is empty.)
case "$(echo $cflags)" in
    "-I$includedir"|"") ;;
    *) fail "--cflags is '$cflags', expected only -I$includedir" ;;
esac
echo "ok - --cflags is only -I$includedir"
[ -z "$(pkg-config --print-requires-private libbusd)" ] || fail "libbusd.pc has Requires.private"
echo "ok - no Requires.private"
pkg-config --libs libbusd | grep -q -- '-lzmq' && fail "--libs (shared) pulls -lzmq"
static=$(pkg-config --libs --static libbusd)
echo "$static" | grep -q -- '-lzmq' && echo "$static" | grep -q -- '-lcjson' \
    || fail "--libs --static lacks -lzmq -lcjson: $static"
echo "ok - static links get -lzmq -lcjson"
# The public headers need nothing beyond that include directory.
cc=${CC:-cc}
printf '#include <busd/client.h>\n#include <busd/plugin.h>\nint main (void) { return 0; }\n' \
    >"${TMPDIR:-/tmp}/busd-pc-$$.c"
$cc -std=gnu11 -Wall -Werror -I"${BUSD_TOP_SRCDIR:-$top}/include" -fsyntax-only \
    "${TMPDIR:-/tmp}/busd-pc-$$.c" || { rm -f "${TMPDIR:-/tmp}/busd-pc-$$.c"; fail "the headers need more flags"; }
rm -f "${TMPDIR:-/tmp}/busd-pc-$$.c"
echo "ok - client.h and plugin.h compile with the include directory alone"
