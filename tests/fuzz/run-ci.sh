#!/bin/sh
# Run every libFuzzer target (tests/fuzz/fuzz_*) for a bounded time and fail
# on any crash, leak, timeout or sanitizer report.
#
#   BUSD_FUZZ_SECONDS   seconds per target (default 60)
#   BUSD_FUZZ_JOBS      targets run at once (default: number of CPUs)
#   BUSD_FUZZ_TARGETS   space-separated subset, e.g. "busp acl"
#
# Each target starts from its seed corpus in tests/fuzz/corpus/NAME (the
# regression inputs live there too) and writes what it finds to a scratch
# directory, so the tree is never modified.  A crash leaves its input in the
# scratch directory and is printed: copy it into corpus/NAME to keep it as a
# regression input.  Skips (exit 0, with a message) only when no clang that
# links libFuzzer is installed.
set -u
cd "$(dirname "$0")/../.."
seconds=${BUSD_FUZZ_SECONDS:-60}
jobs=${BUSD_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
targets=${BUSD_FUZZ_TARGETS:-"busp batch topic subopts headers config acl utf8"}

if ! grep -q '^FUZZ_ENABLED = yes' Makefile 2>/dev/null; then
    if command -v clang >/dev/null 2>&1; then
        echo "fuzz: configure did not enable the fuzz targets although clang exists; see config.log" >&2
        exit 1
    fi
    echo "fuzz: SKIPPED: clang with libFuzzer is not installed (apt-get install clang)"
    exit 0
fi
make --no-print-directory fuzz >/dev/null || { echo "fuzz: make fuzz failed" >&2; exit 1; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/busd-fuzz.XXXXXX")
echo "fuzz: ${seconds}s per target, $jobs at a time; scratch: $scratch"
run_one () {
    t=$1
    mkdir -p "$scratch/$t/corpus" "$scratch/$t/crash"
    # -timeout: one input taking 10 s is a hang worth failing on.
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$scratch/$t/crash/" \
        "$scratch/$t/corpus" "tests/fuzz/corpus/$t" >"$scratch/$t/log" 2>&1
    echo $? >"$scratch/$t/rc"
}
running=0
for t in $targets; do
    [ -x "tests/fuzz/fuzz_$t" ] || { echo "fuzz: no target tests/fuzz/fuzz_$t" >&2; exit 1; }
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

failed=0
for t in $targets; do
    rc=$(cat "$scratch/$t/rc" 2>/dev/null || echo 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t/log")
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t: clean (${runs:-?} runs)"
    else
        failed=$((failed + 1))
        echo "fuzz: $t: FAILED (exit $rc); inputs: $(ls "$scratch/$t/crash" 2>/dev/null | tr '\n' ' ')"
        grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$scratch/$t/log" | head -n 30
        echo "    copy the input into tests/fuzz/corpus/$t/ as a regression input once fixed"
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: $failed target(s) failed; logs in $scratch"
    exit 1
fi
rm -rf "$scratch"
echo "fuzz: all targets clean"
