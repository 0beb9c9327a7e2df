#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then
# runs the format check, clippy, every test (unit, integration, real AWS SDK
# and data-loader clients), the image and the chart's Pods under podman with
# Prometheus, the manifest and Helm chart checks, the admission webhook's
# patches, a fuzz smoke run and a benchmark smoke run.
# Each part ends with a line "NAME: N passed, M failed"; the last line sums them.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
summary=$(mktemp)
log=$(mktemp)
trap 'rm -f "$summary" "$log"' EXIT
# Runs a part, showing its output, and keeps its closing "x: N passed, M failed" line.
part() {
  "$@" 2>&1 | tee "$log"
  grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 >> "$summary" || true
}

step "toolchain components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

step "tools the Rust tests run: tinyproxy, ip, unshare, curl, a venv with botocore"
# The tests install nothing (tests/it/tools.rs): this step does, and hands
# each tool's path over in CREDAGENT_TEST_<TOOL>. Run by a plain `cargo
# test`, a test whose tool or privilege (root, for namespaces) is missing is
# skipped, saying why; CREDAGENT_TEST_REQUIRE_ALL=1 makes that a failure, so
# that here every test runs.
tool_path() { PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" || true; }
packages=()
for tool in tinyproxy:tinyproxy ip:iproute2 unshare:util-linux curl:curl; do
  [ -n "$(tool_path "${tool%%:*}")" ] || packages+=("${tool#*:}")
done
if [ ${#packages[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
fi
for tool in tinyproxy ip unshare curl; do
  path=$(tool_path "$tool")
  [ -n "$path" ] || { echo "$tool is missing and could not be installed" >&2; exit 1; }
  export "CREDAGENT_TEST_${tool^^}=$path"
done
VENV=target/test-venv
REQ=tests/requirements.txt
if [ ! -f "$VENV/.installed" ] || ! cmp -s "$REQ" "$VENV/.installed"; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/.installed"
fi
export CREDAGENT_TEST_PYTHON="$PWD/$VENV/bin/python"
export CREDAGENT_TEST_REQUIRE_ALL=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo_tests() {
  # The test kit's stand-in runs as a process in a few tests (inside network
  # namespaces); cargo test builds only the agent's own binaries for them.
  cargo build --locked -p credagent-testkit --bin credagent-standin
  cargo test --workspace --locked --lib --bins --tests 2>&1 | tee "$log.cargo"
  awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) == "passed;") p += $i; if ($(i+1) == "failed;") f += $i } }
       END { printf "cargo: %d passed, %d failed\n", p, f }' "$log.cargo"
  rm -f "$log.cargo"
}
part cargo_tests

step "the image's binary for x86_64 and aarch64 (qemu-user): static, no test kit, serving credentials"
part ./scripts/check-image-binaries.sh

step "the image and the chart's Pods under podman, the alerts and the dashboard under Prometheus"
part ./scripts/check-runtime.sh

step "interoperability suite: real AWS SDK clients against credagent sidecar and s3s-fs"
part ./tests/interop/run.sh

step "admission webhook core: fixtures through jsonpatch, kubernetes-validate and --check-config"
part ./tests/webhook/run.sh

step "manifests: kustomize render, kubernetes-validate, monitoring, --check-config, lint"
part ./scripts/check-manifests.sh

step "helm chart: lint, render, kubernetes-validate, golden, schema, labels, --check-config, the helm test script"
part ./scripts/check-helm.sh

step "fuzz smoke: each target for 10 s"
part ./fuzz/run.sh 10

step "benchmark smoke: every section of bench/run.sh in a tiny configuration (its figures mean little)"
part ./bench/run.sh --smoke

step "summary"
cat "$summary"
awk '{ p += $2; f += $4 } END { printf "total: %d passed, %d failed\n", p, f }' "$summary"
