#!/usr/bin/env bash
# Runs one test again and again, to show a fix of an intermittent failure holds.
# Not part of CI: a soak, run by hand.
#
#   scripts/repeat-test.sh [-n RUNS] PACKAGE TEST_TARGET TEST_NAME
#   scripts/repeat-test.sh -n 30 squall-tests workers a_killed_worker_is_restarted_and_nothing_acknowledged_is_lost
#
# Builds once, then runs the test RUNS times (default 30), keeping the output of every failed
# run under target/repeat/; exits non-zero when any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=30
if [ "${1:-}" = "-n" ]; then
    runs=$2
    shift 2
fi
if [ $# -ne 3 ]; then
    echo "usage: $0 [-n RUNS] PACKAGE TEST_TARGET TEST_NAME" >&2
    exit 2
fi
package=$1 target=$2 name=$3

cargo test -p "$package" --test "$target" --no-run
out=target/repeat/$name
mkdir -p "$out"
failed=0
for run in $(seq 1 "$runs"); do
    started=$(date +%s)
    # A run counts as passed only when the filter matched the test and it passed.
    if cargo test -q -p "$package" --test "$target" -- --exact "$name" >"$out/run-$run.log" 2>&1 \
        && grep -q "test result: ok. 1 passed" "$out/run-$run.log"; then
        rm "$out/run-$run.log"
        verdict=passed
    else
        failed=$((failed + 1))
        verdict="FAILED (output in $out/run-$run.log)"
    fi
    echo "run $run/$runs: $verdict in $(( $(date +%s) - started )) s"
done
echo "$((runs - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
