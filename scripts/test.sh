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

# apt_install WHAT PACKAGE...: installs Debian packages when apt-get and
# root (or passwordless sudo) are at hand; says so and goes on otherwise.
apt_install() {
  local what=$1; shift
  local as_root
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "missing, and no root or sudo to install $*: $what"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing, and no apt-get to install $*: $what"
    return 0
  fi
  echo "installing $* with apt-get"
  local apt_log
  apt_log=$(mktemp)
  if ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
         "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    echo "could not install $*" >&2
  fi
  rm -f "$apt_log"
}

step "OpenSSL headers (brine-protocol's RSA is libcrypto's)"
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl; then
  echo "present"
else
  apt_install "the build fails" libssl-dev pkg-config
fi

step "chromium and chromedriver (the web UI browser test)"
# minion/tests/webui.rs drives headless chromium; under CI it fails without it.
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "present"
else
  apt_install "the browser test skips (fails under CI)" chromium chromium-driver
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo nextest run --workspace"
cargo nextest run --workspace --locked --no-fail-fast

step "doc tests"
cargo test --workspace --doc --locked
