#!/usr/bin/env bash
# Runs every Brine test: formatting, lints, the whole workspace's tests
# (conformance suites on real loopback sockets, doc tests).
# This is the README's test command, and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Tests write logs only on failure; keep them readable.
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest (not on this machine)"
  cargo install --locked cargo-nextest
fi

step "stock Salt 3007.8 venv (interop and cross-check tests)"
# Tests that compare with Salt find it at .venv; created from nothing on a fresh machine.
BRINE_SALT_PYTHON=$(scripts/salt-venv.sh | tail -n 1)
export BRINE_SALT_PYTHON

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo nextest run --workspace"
cargo nextest run --workspace --locked --no-fail-fast

step "doc tests"
cargo test --workspace --doc --locked
