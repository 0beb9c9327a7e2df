#!/usr/bin/env bash
# credagent benchmarks (BENCHMARKS.md): installs what it needs, builds, runs
# its sections, prints one table and writes target/bench/results.md.
#
#   bench/run.sh            full run: release build, ~15 minutes
#   bench/run.sh --smoke    tiny configuration on the debug build (what the
#                           test suite's cargo test already built), ~1-2 min;
#                           keeps the harness working, its figures mean little
#   bench/run.sh --only 1,3 [--smoke]   some sections only
#
# Ends with `bench: N passed, M failed` (sections that produced figures).
# Benchmarks are not tests: no figure fails the run, only a section that
# could not measure does.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; pass+=(--smoke) ;;
    --only) pass+=(--only "$2"); shift ;;
    *) echo "usage: bench/run.sh [--smoke] [--only 1,2,...]" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools: wrk, nginx, python3"
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "$smoke" = 0 ] && rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl \
   && ! command -v musl-gcc >/dev/null 2>&1; then
  missing+=(musl-tools)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"
# 10k connections per side in sections 2 and 5.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

musl=()
if [ "$smoke" = 1 ]; then
  step "build (debug: smoke)"
  cargo build --locked -p credagent --bin credagent --example benchtool
  cargo build --locked -p credagent-testkit --bin credagent-standin
  bin=target/debug/credagent
  tool=target/debug/examples/benchtool
else
  step "build (release)"
  # Separate invocations: building the example activates dev-dependency
  # features (tokio's test-util) that must not reach the measured binary.
  cargo build --locked --release -p credagent --bin credagent
  cargo build --locked --release -p credagent --example benchtool
  cargo build --locked --release -p credagent-testkit --bin credagent-standin
  bin=target/release/credagent
  tool=target/release/examples/benchtool
  if rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl \
     || rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1; then
    step "build (release, x86_64-unknown-linux-musl: the image's static binary)"
    # Exactly the Dockerfile's build: no demo, no test kit.
    if cargo build --locked --release --target x86_64-unknown-linux-musl -p credagent --no-default-features --bin credagent; then
      musl=(--musl-bin target/x86_64-unknown-linux-musl/release/credagent)
    else
      echo "bench: the musl build failed; section 6 reports the glibc binary only" >&2
    fi
  else
    echo "bench: no x86_64-unknown-linux-musl std; section 6 reports the glibc binary only" >&2
  fi
fi

# The full run gives everything it starts (servers, load generators, clients)
# a higher priority than background work on the machine (other builds): both
# sides of every comparison alike. BENCH_NICE=0 turns this off.
prio=()
if [ "$smoke" = 0 ] && [ "$(id -u)" = 0 ] && [ "${BENCH_NICE:--10}" != 0 ]; then
  prio=(nice -n "${BENCH_NICE:--10}")
fi

step "benchmarks"
exec ${prio[@]+"${prio[@]}"} python3 bench/bench.py --bin "$bin" --tool "$tool" "${musl[@]}" "${pass[@]}" \
  --out target/bench/results.md
