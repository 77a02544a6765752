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

step "stock Salt 3006.9 venv (a request-protocol-v2 minion for the interop test)"
BRINE_SALT3006_PYTHON=$(SALT_VERSION=3006.9 scripts/salt-venv.sh "$PWD/.venv3006" | tail -n 1)
export BRINE_SALT3006_PYTHON

step "chromium and chromedriver (the web UI browser test)"
# minion/tests/webui.rs drives headless chromium; under CI it fails without it.
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "present"
else
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    as_root=(false)
  fi
  if command -v apt-get >/dev/null 2>&1 && [ "${as_root[0]:-}" != false ]; then
    echo "installing chromium and chromium-driver with apt-get"
    apt_log=$(mktemp)
    if ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >"$apt_log" 2>&1; then
      cat "$apt_log" >&2
      echo "could not install chromium and chromium-driver" >&2
    fi
    rm -f "$apt_log"
  else
    echo "missing, and no apt-get with root or sudo to install it: the browser test skips (fails under CI)"
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo nextest run --workspace"
cargo nextest run --workspace --locked --no-fail-fast

step "doc tests"
cargo test --workspace --doc --locked
