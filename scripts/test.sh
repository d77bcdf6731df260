#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then format, lints,
# tests (debug and release), the loom model checks and the docs.
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

step "tests"
cargo test --workspace

step "ring tests in release"
cargo test -p squall-ringbuf --profile ci-release

step "loom model checks"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p squall-ringbuf --profile ci-release --test loom
cargo test -p squall-net --features loom --lib loom_models

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "fuzz targets (SQUALL_FUZZ_SECONDS=${SQUALL_FUZZ_SECONDS:-8} s each)"
# Every cargo-fuzz target is built, then run from its seeds (fuzz/seeds/<target>) for a
# bounded time; any crash fails the suite. The corpus grown here stays in fuzz/target.
# The targets build without optimisation (with debug assertions, so overflows are found
# too): that takes a third of an optimised build's time, which a few seconds of fuzzing
# per target would never win back.
fuzz_started=$SECONDS
fuzz_seconds="${SQUALL_FUZZ_SECONDS:-8}"
cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cargo +nightly fuzz build --dev
for target in $(cargo +nightly fuzz list); do
    corpus="fuzz/target/corpus/$target"
    log="fuzz/target/$target.log"
    mkdir -p "$corpus" "fuzz/seeds/$target"
    if ! cargo +nightly fuzz run --dev "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E -A12 'panicked|ERROR|SUMMARY' "$log" | head -60
        echo "fuzz target $target failed: the input is in fuzz/artifacts/$target, the log in $log"
        exit 1
    fi
    echo "$target: $(grep -E '^stat::number_of_executed_units' "$log")"
done
echo "fuzz targets took $((SECONDS - fuzz_started)) s"

step "all green"
