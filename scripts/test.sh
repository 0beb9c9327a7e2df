#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then
# runs the format check, clippy, and every test (unit, integration, real
# AWS SDK clients).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

step "python venv for the botocore client test"
VENV=target/test-venv
if [ ! -f "$VENV/.installed" ] || ! cmp -s tests/requirements.txt "$VENV/.installed"; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$VENV/.installed"
fi
export CREDAGENT_TEST_PYTHON="$PWD/$VENV/bin/python"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
echo
awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) == "passed;") p += $i; if ($(i+1) == "failed;") f += $i } }
     END { printf "cargo: %d passed, %d failed\n", p, f }' "$log"
