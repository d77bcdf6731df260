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

step "ZooKeeper (the control-plane tests run a real server)"
./scripts/zookeeper.sh install

step "format"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
cargo test --workspace

step "ring tests in release"
cargo test -p squall-ringbuf --release

step "loom model checks"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p squall-ringbuf --release --test loom

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "all green"
