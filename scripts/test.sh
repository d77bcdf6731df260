#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then format, lints,
# tests (debug and release), the loom model checks, the docs and a short fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

step "pystorm (the multi-lang tests run real pystorm components)"
python3 -c 'import pystorm' 2>/dev/null || python3 -m pip install --quiet 'pystorm>=3.1.4,<4'

step "Chromium (the web UI tests load pages in a real headless browser)"
if ! command -v chromium >/dev/null 2>&1; then
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

step "ZooKeeper (the control-plane tests run a real server)"
./scripts/zookeeper.sh install

step "PostgreSQL and Redis (the connector tests run real servers)"
./scripts/postgres.sh install
./scripts/redis.sh install

step "format"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "build the tests"
cargo test --workspace --no-run

# The tests spend most of their time waiting for processes and servers, so the loom models
# and the fuzz targets, which build into target directories of their own, build meanwhile:
# at the lowest priority, so that they take only the time the tests leave idle.
# The fuzz targets build without optimisation (with debug assertions, so overflows are
# found too): that takes a third of an optimised build's time, which a few seconds of
# fuzzing per target would never win back.
background_log=target/background-builds.log
nice -n 19 bash -c '
    set -e
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
        cargo test -p squall-ringbuf --profile ci-release --test loom --no-run
    cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
    cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
    cargo +nightly fuzz build --dev
' >"$background_log" 2>&1 &
background_builds=$!
trap 'kill "$background_builds" 2>/dev/null || true' EXIT
finish_background_builds() {
    if ! wait "$background_builds"; then
        cat "$background_log"
        echo "building the loom models or the fuzz targets failed (log above)"
        exit 1
    fi
}

step "tests"
cargo test --workspace

step "ring tests in release"
cargo test -p squall-ringbuf --profile ci-release

step "loom model checks"
finish_background_builds
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p squall-ringbuf --profile ci-release --test loom
cargo test -p squall-net --features loom --lib loom_models

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "fuzz targets (SQUALL_FUZZ_SECONDS=${SQUALL_FUZZ_SECONDS:-8} s each, two at a time)"
# Every cargo-fuzz target (built beside the tests, above) runs from its seeds
# (fuzz/seeds/<target>) for a bounded time; any crash fails the suite. The corpus grown here
# stays in fuzz/target. Each run takes one core, so two run at once.
fuzz_started=$SECONDS
fuzz_seconds="${SQUALL_FUZZ_SECONDS:-8}"
fuzz_one() {
    local target=$1
    local corpus="fuzz/target/corpus/$target"
    local log="fuzz/target/$target.log"
    mkdir -p "$corpus" "fuzz/seeds/$target"
    if ! cargo +nightly fuzz run --dev "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E -A12 'panicked|ERROR|SUMMARY' "$log" | head -60 || true
        echo "fuzz target $target failed: the input is in fuzz/artifacts/$target, the log in $log"
        return 1
    fi
    echo "$target: $(grep -E '^stat::number_of_executed_units' "$log")"
}
fuzz_failed=0
running=()
for target in $(cargo +nightly fuzz list); do
    fuzz_one "$target" &
    running+=("$!")
    if ((${#running[@]} == 2)); then
        wait "${running[0]}" || fuzz_failed=1
        running=("${running[@]:1}")
    fi
done
for pid in "${running[@]}"; do
    wait "$pid" || fuzz_failed=1
done
((fuzz_failed == 0)) || exit 1
echo "fuzz targets took $((SECONDS - fuzz_started)) s"

step "all green"
