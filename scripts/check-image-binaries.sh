#!/usr/bin/env bash
# The image's binary for both platforms the Dockerfile promises (linux/amd64,
# linux/arm64), built exactly as the Dockerfile builds it (static musl,
# --no-default-features: no demo, no test kit), then checked and run:
# x86_64 natively, aarch64 under qemu-user. For each: a static ELF of the
# right machine, `--version`, `demo` and `stand-in` unknown subcommands, and
# a sidecar that fetches credentials from the test kit's stand-in and
# answers a credentials request with them.
#
#   scripts/check-image-binaries.sh
#
# Installs what it needs when missing: the rustup targets, musl-tools
# (musl-gcc, as in the Dockerfile), gcc-aarch64-linux-gnu (ring's C and
# assembly for aarch64, and the linker), qemu-user (qemu-aarch64), file, curl.
# Builds go to ${CREDAGENT_CACHE:-~/.cache/credagent}/image-target, shared by
# every checkout on this machine, so a fresh clone reuses the dependency
# builds. Ends with the line `image: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${CREDAGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/credagent}"
target_dir="$cache/image-target"
# The Dockerfile's build command, without its --target "$(uname -m)-unknown-linux-musl".
build_flags="--release --locked -p credagent --no-default-features"
access_key=CWAKIAIMAGESMOKE0001
started=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }
passed=0
failed=0
pass() { printf '  PASS  %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf '  FAIL  %s\n' "$*"; failed=$((failed + 1)); }

step "tools"
missing=()
for pair in musl-gcc:musl-tools aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu \
  qemu-aarch64:qemu-user file:file curl:curl python3:python3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for arch in x86_64 aarch64; do
  if ! rustup target list --installed | grep -qx "$arch-unknown-linux-musl"; then
    rustup target add "$arch-unknown-linux-musl"
  fi
done

step "the Dockerfile builds what this script builds"
# Both build steps (the dependency layer and the crate) use these flags and a
# target that follows the build platform: `uname -m` is x86_64 or aarch64
# under buildx, natively or in QEMU.
n=$(grep -c "cargo build $build_flags" Dockerfile || true)
t=$(grep -c -- '--target "$(uname -m)-unknown-linux-musl"' Dockerfile || true)
r=$(grep -c 'rustup target add "$(uname -m)-unknown-linux-musl"' Dockerfile || true)
if [ "$n" = 2 ] && [ "$t" = 2 ] && [ "$r" = 1 ]; then
  pass "Dockerfile: cargo build $build_flags --target \"\$(uname -m)-unknown-linux-musl\" (twice)"
else
  fail "Dockerfile: expected the build command twice and the rustup target once (found $n, $t, $r)"
fi

step "cargo build $build_flags, for x86_64 and aarch64 (into $target_dir)"
# One invocation for both targets: the same flags and artifacts as two
# Dockerfile builds, but the two single-threaded LTO links (about 90 s each on
# 2 cores) run at the same time. Cold: about 5 minutes on an idle 2-core VM.
build_started=$(date +%s)
CARGO_TARGET_DIR="$target_dir" \
  CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
  cargo build $build_flags --target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl
build_secs=$(($(date +%s) - build_started))

step "the test kit's stand-in (host build)"
cargo build --locked -p credagent-testkit --bin credagent-standin
standin_bin=target/debug/credagent-standin

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# until SECONDS COMMAND...: retries COMMAND every 0.1 s.
until_ok() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

STANDIN_SECRET_KEY="image-smoke-secret-key/0000000000000000" \
  "$standin_bin" --access-key "$access_key" --addr-file "$work/standin.addr" >"$work/standin.log" 2>&1 &
pids+=($!)
until_ok 20 test -s "$work/standin.addr" || { cat "$work/standin.log"; exit 1; }
standin_addr=$(cat "$work/standin.addr")
exchange_url="http://$standin_addr/v1/cwobject/temporary-credentials/oidc/standin-org"
mkdir -p "$work/tokens"
# A token from the stand-in's own issuer, written without a newline.
curl -sf -X POST "http://$standin_addr/_standin/token" -o "$work/tokens/oidc-token"

# check_binary ARCH MACHINE RUNNER...: RUNNER runs the binary (with qemu-aarch64 for aarch64).
check_binary() {
  local arch=$1 machine=$2
  shift 2
  local bin="$target_dir/$arch-unknown-linux-musl/release/credagent"
  step "$arch: $bin"
  if [ ! -x "$bin" ]; then
    fail "$arch: no binary"
    return
  fi
  local kind
  kind=$(file -b "$bin")
  if [[ "$kind" == *"$machine"* && "$kind" == *static* ]]; then
    pass "$arch: static ELF for $machine ($kind)"
  else
    fail "$arch: not a static $machine ELF: $kind"
  fi
  local version
  if version=$("$@" "$bin" --version 2>&1) && [[ "$version" == "credagent "* ]]; then
    pass "$arch: --version prints '$version'"
  else
    fail "$arch: --version: $version"
  fi
  local sub out code
  for sub in demo stand-in; do
    code=0
    out=$("$@" "$bin" "$sub" 2>&1) || code=$?
    if [ "$code" = 2 ] && [[ "$out" == *"unrecognized subcommand"* ]]; then
      pass "$arch: '$sub' is not in the image's binary (exit 2, unrecognized subcommand)"
    else
      fail "$arch: '$sub': exit $code: $out"
    fi
  done

  local listen admin log="$work/sidecar-$arch.log" auth="$work/auth-$arch"
  listen=$(free_port)
  admin=$(free_port)
  "$@" "$bin" --log-format text sidecar --exchange-url "$exchange_url" \
    --token-file "$work/tokens/oidc-token" --auth-token-file "$auth" \
    --listen "127.0.0.1:$listen" --admin-listen "127.0.0.1:$admin" >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  if until_ok 60 curl -sf "http://127.0.0.1:$admin/readyz"; then
    pass "$arch: sidecar ready (fetched credentials from the stand-in)"
  else
    fail "$arch: sidecar never ready: $(tail -n 5 "$log")"
  fi
  local body
  body=$(curl -sf -H "Authorization: $(cat "$auth" 2>/dev/null)" "http://127.0.0.1:$listen/v1/credentials" || true)
  if python3 -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(d.get("AccessKeyId") != sys.argv[2] or not d.get("Expiration"))' \
    "$body" "$access_key" 2>/dev/null; then
    pass "$arch: GET /v1/credentials answers 200 with AccessKeyId $access_key"
  else
    fail "$arch: GET /v1/credentials: '${body:0:200}'"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  code=0
  wait "$pid" || code=$?
  if [ "$code" = 0 ]; then
    pass "$arch: exits 0 on SIGTERM"
  else
    fail "$arch: exit status $code after SIGTERM: $(tail -n 5 "$log")"
  fi
}

check_binary x86_64 x86-64 env
check_binary aarch64 "ARM aarch64" qemu-aarch64

step "sizes"
for arch in x86_64 aarch64; do
  bin="$target_dir/$arch-unknown-linux-musl/release/credagent"
  [ -f "$bin" ] && printf '  %-8s %s bytes (%s MB)\n' "$arch" "$(stat -c %s "$bin")" \
    "$(awk -v b="$(stat -c %s "$bin")" 'BEGIN { printf "%.1f", b / 1e6 }')"
done
printf '  build %ds, whole script %ds\n' "$build_secs" "$(($(date +%s) - started))"

echo "image: $passed passed, $failed failed"
[ "$failed" = 0 ]
