#!/bin/sh
# install-deps.sh - install the Debian packages busd needs
# (dist/debian-packages.txt): as root directly, as anyone else through sudo.
# A root shell in a fresh container has no sudo, a developer's shell has no
# root: the README's first command must work in both.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
    as_root=
elif command -v sudo >/dev/null 2>&1; then
    as_root=sudo
else
    echo "install-deps.sh: not root and no sudo: run it as root" >&2
    exit 1
fi
pkgs=$(cat dist/debian-packages.txt)
# The Node.js client's tests need node and npm; a machine that already has
# them (NodeSource's node 20, say) keeps its own, else Debian's are used.
command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
$as_root apt-get update
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs
# The Node.js client's one dependency (zeromq), from the npm registry.
(cd clients/node && npm ci --no-audit --no-fund)
