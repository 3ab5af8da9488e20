#!/bin/sh
# Build busd with AddressSanitizer + UBSan and run the whole test suite:
# Check unit tests, integration tests against a real busd, tool tests.
# Usage: tests/run-all.sh   (from anywhere; builds in the source tree)
set -u
cd "$(dirname "$0")/.."
./autogen.sh >/dev/null 2>&1 || { echo "autogen.sh failed"; exit 1; }
./configure --enable-sanitizers --quiet || { echo "configure failed"; exit 1; }
make -j"$(nproc)" >/dev/null || { make; echo "build failed"; exit 1; }
make -j"$(nproc)" check
rc=$?
# libFuzzer targets for their CI budget (BUSD_FUZZ_SECONDS each, default 60).
tests/fuzz/run-ci.sh || rc=1
# Summarise automake's per-test results as one plain line.
pass=$(grep -h '^:test-result: PASS' $(find tests -name '*.trs') 2>/dev/null | wc -l)
fail=$(grep -hE '^:test-result: (FAIL|ERROR|XPASS)' $(find tests -name '*.trs') 2>/dev/null | wc -l)
skip=$(grep -h '^:test-result: SKIP' $(find tests -name '*.trs') 2>/dev/null | wc -l)
if [ "$rc" -ne 0 ]; then
    for f in $(grep -lE '^:test-result: (FAIL|ERROR)' $(find tests -name '*.trs')); do
        echo "==== ${f%.trs}.log"; tail -n 60 "${f%.trs}.log"
    done
fi
echo "tests: $pass passed, $fail failed, $skip skipped"
exit $rc
