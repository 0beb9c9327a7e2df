#!/usr/bin/env bash
# The admission webhook's core against its fixtures, judged by independent tools (jsonpatch,
# kubernetes-validate --strict, the credagent binary's own --check-config):
#
#   tests/webhook/run.sh
#
# Installs tests/webhook/requirements.txt into a venv cached in
# ${CREDAGENT_CACHE:-~/.cache/credagent}/webhook/venv (reinstalled when the file changes),
# builds the credagent binary and the `admission` example (a test tool that prints the
# AdmissionReview response for one request), then runs check_patches.py, which prints one line
# per check and ends with `webhook: N passed, M failed` (exit 1 on any failure).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
HERE=tests/webhook
CACHE=${CREDAGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/credagent}/webhook
VENV=$CACHE/venv

if [ ! -f "$VENV/.installed" ] || ! cmp -s "$HERE/requirements.txt" "$VENV/.installed"; then
  echo "--> webhook: installing $HERE/requirements.txt into $VENV"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  if ! python3 -m venv "$VENV"; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$VENV/.installed"
fi

echo "--> webhook: cargo build (credagent, examples/admission)"
cargo build --locked --quiet -p credagent --bin credagent --example admission

exec "$VENV/bin/python" "$HERE/check_patches.py" \
  --admission target/debug/examples/admission --credagent target/debug/credagent
