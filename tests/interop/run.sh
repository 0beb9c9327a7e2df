#!/usr/bin/env bash
# credagent interoperability suite: real, unmodified AWS clients (boto3, AWS CLI v1, AWS SDK for
# JavaScript v3, aws-sdk-rust, aws-sdk-go-v2) and the S3 clients of data workloads (pyarrow, polars,
# s3torchconnectorclient) against `credagent sidecar`, and through them real S3 requests against
# s3s-fs, which verifies SigV4/SigV2 signatures.
#
#   tests/interop/run.sh [driver options, e.g. --phases pass-a,negative]
#
# Installs what it needs, idempotently, cached in ${CREDAGENT_CACHE:-~/.cache/credagent}/interop/:
#   s3s/          s3s-fs (cargo install, pinned)        venv/  boto3 + awscli (requirements.txt)
#   js/           npm ci of js/package-lock.json         rust-target/  the Rust client's build
#   venv-data/    pyarrow, polars, s3torchconnectorclient (python/requirements-data.txt)
#   go/           the aws-sdk-go-v2 client's binary and Go build cache (Debian's Go and SDK, apt)
# and writes to target/interop/:
#   run/          the last run's logs (stand-in, sidecars, s3s-fs, proxy record)
#   results.md    the results table (also printed)       results.json  every check and detail
# A client that cannot be installed or built fails the suite. See tests/interop/README.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
HERE=tests/interop
# Results and logs of this run live in the checkout; the slow installs (s3s-fs,
# the venv, node_modules, the Rust client's build) in a cache shared by every
# checkout on this machine, so a fresh clone (as CI makes) reuses them.
OUT=$ROOT/target/interop
CACHE=${CREDAGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/credagent}/interop
S3S_VERSION=0.14.1
mkdir -p "$CACHE" "$OUT"

step() { printf '\n--> interop: %s (%ss)\n' "$*" "$SECONDS"; }

for tool in python3 node npm cargo sh sha256sum; do
  command -v "$tool" >/dev/null || { echo "interop: $tool is required but not installed" >&2; exit 1; }
done

WORK=$OUT/run
DRIVER=
S3S_PID=
cleanup() {
  # A background s3s-fs install runs in its own process group (setsid): end all of it.
  if [ -n "$S3S_PID" ]; then kill -TERM -- "-$S3S_PID" 2>/dev/null || kill -TERM "$S3S_PID" 2>/dev/null || true; fi
  # The driver stops everything it started; this catches what is left if it was killed.
  if [ -n "$DRIVER" ] && kill -0 "$DRIVER" 2>/dev/null; then
    kill -TERM "$DRIVER" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DRIVER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DRIVER" 2>/dev/null || true
  fi
  # The pid file survives only if the driver did not finish its own clean-up; end those of its
  # processes that still run (checked by command line, so a reused pid is left alone).
  if [ -f "$WORK/pids" ]; then
    while read -r pid; do
      # Each was started as the leader of its own process group: end the group.
      if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$ROOT/"; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      fi
    done < "$WORK/pids"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

step "credagent and the test kit's stand-in"
cargo build --locked -p credagent -p credagent-testkit --bins
CREDAGENT=$ROOT/target/debug/credagent
STANDIN=$ROOT/target/debug/credagent-standin

# s3s-fs builds in the background while the venv, npm and the Rust client are set up: on 2 cores
# the two cargo builds overlap each other's serial stretches (build scripts, linking).
S3S=$CACHE/s3s
if [ -x "$S3S/bin/s3s-fs" ] && grep -qs "\"s3s-fs $S3S_VERSION " "$S3S/.crates.toml"; then
  step "s3s-fs $S3S_VERSION: cached ($("$S3S/bin/s3s-fs" --version))"
else
  step "s3s-fs $S3S_VERSION: cargo install in the background (log: target/interop/s3s-install.log)"
  setsid cargo install "s3s-fs@$S3S_VERSION" --features binary --locked --root "$S3S" \
    > "$CACHE/s3s-install.log" 2>&1 &
  S3S_PID=$!
fi

step "python venv: boto3, AWS CLI v1"
VENV=$CACHE/venv
REQ=$HERE/python/requirements.txt
if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$VENV/.installed"; then
  echo "cached: $(cd "$VENV" && bin/pip freeze 2>/dev/null | grep -E '^(boto3|botocore|awscli)==' | tr '\n' ' ')"
else
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  "$VENV/bin/pip" check
  cp "$REQ" "$VENV/.installed"
fi

step "python venv-data: pyarrow, polars, s3torchconnectorclient"
# A venv of its own: with boto3 importable, polars resolves credentials through boto3; the driver
# runs polars both ways (this venv alone, and with the boto3 venv on PYTHONPATH).
DATA_VENV=$CACHE/venv-data
DATA_REQ=$HERE/python/requirements-data.txt
if [ -x "$DATA_VENV/bin/python" ] && cmp -s "$DATA_REQ" "$DATA_VENV/.installed"; then
  echo "cached: $(cd "$DATA_VENV" && bin/pip freeze 2>/dev/null | tr '\n' ' ')"
else
  rm -rf "$DATA_VENV"
  started=$SECONDS
  python3 -m venv "$DATA_VENV"
  "$DATA_VENV/bin/pip" install -q --disable-pip-version-check -r "$DATA_REQ"
  "$DATA_VENV/bin/pip" check
  cp "$DATA_REQ" "$DATA_VENV/.installed"
  echo "installed in $((SECONDS - started))s ($(du -sh "$DATA_VENV" | cut -f1))"
fi

step "npm: AWS SDK for JavaScript v3"
JS=$CACHE/js
JS_STAMP=$(cat "$HERE/js/package.json" "$HERE/js/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -d "$JS/node_modules/@aws-sdk/client-s3" ] && [ "$(cat "$JS/.installed" 2>/dev/null)" = "$JS_STAMP" ]; then
  echo "cached: @aws-sdk/client-s3 $(node -p "require('$JS/node_modules/@aws-sdk/client-s3/package.json').version")"
else
  rm -rf "$JS"
  mkdir -p "$JS"
  cp "$HERE/js/package.json" "$HERE/js/package-lock.json" "$JS/"
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$JS_STAMP" > "$JS/.installed"
fi

step "aws-sdk-rust client"
(cd "$HERE/rust" && CARGO_TARGET_DIR="$CACHE/rust-target" cargo build --locked)
RUST_CLIENT=$CACHE/rust-target/debug/credagent-interop-rust

step "aws-sdk-go-v2 client (Debian's Go and SDK; GOPATH mode, no module proxy)"
GO_SDK=/usr/share/gocode/src/github.com/aws/aws-sdk-go-v2
if ! command -v go >/dev/null || [ ! -d "$GO_SDK/service/s3" ]; then
  apt-get update -qq && apt-get install -y -qq golang-go golang-github-aws-aws-sdk-go-v2-dev
fi
GO_DIR=$CACHE/go
GO_CLIENT=$GO_DIR/credagent-interop-go
# Rebuilt when the source, the Go toolchain or the SDK package changes.
GO_STAMP=$( { cat "$HERE/go/src/credagent-interop-go/main.go"; go version;
  dpkg-query -W -f '${Version}' golang-github-aws-aws-sdk-go-v2-dev golang-github-aws-smithy-go-dev 2>/dev/null; } | sha256sum | cut -d' ' -f1)
if [ -x "$GO_CLIENT" ] && [ "$(cat "$GO_DIR/.installed" 2>/dev/null)" = "$GO_STAMP" ]; then
  echo "cached: $GO_CLIENT ($(go version | cut -d' ' -f3), aws-sdk-go-v2 $(dpkg-query -W -f '${Version}' golang-github-aws-aws-sdk-go-v2-dev))"
else
  mkdir -p "$GO_DIR"
  # GOPATH mode: imports resolve under $HERE/go/src and then Debian's /usr/share/gocode/src.
  # GOCACHE in the cache dir; GOENV=off so no user go env file is read; nothing is downloaded.
  (cd "$HERE/go" && GO111MODULE=off GOPATH="$ROOT/$HERE/go:/usr/share/gocode" GOCACHE="$GO_DIR/build-cache" \
     GOENV=off GOFLAGS= GOPROXY=off go build -o "$GO_CLIENT.tmp" credagent-interop-go)
  mv "$GO_CLIENT.tmp" "$GO_CLIENT"
  echo "$GO_STAMP" > "$GO_DIR/.installed"
fi

if [ -n "$S3S_PID" ]; then
  step "s3s-fs $S3S_VERSION: waiting for the background install"
  if ! wait "$S3S_PID"; then
    S3S_PID=
    tail -40 "$CACHE/s3s-install.log" >&2
    echo "interop: installing s3s-fs $S3S_VERSION failed (full log: $CACHE/s3s-install.log)" >&2
    exit 1
  fi
  S3S_PID=
  tail -2 "$CACHE/s3s-install.log"
fi

step "run"
python3 "$HERE/driver.py" \
  --credagent "$CREDAGENT" --standin "$STANDIN" --s3s-fs "$S3S/bin/s3s-fs" --venv "$VENV" \
  --js-modules "$JS/node_modules" --rust-client "$RUST_CLIENT" \
  --data-venv "$DATA_VENV" --go-client "$GO_CLIENT" \
  --kubelet-swap crates/testkit/kubelet-swap.sh --work "$WORK" \
  --results "$OUT/results.md" --results-json "$OUT/results.json" "$@" &
DRIVER=$!
status=0
wait "$DRIVER" || status=$?
DRIVER=
echo "interop: total wall time ${SECONDS}s"
exit "$status"
