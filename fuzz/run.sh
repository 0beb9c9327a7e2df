#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each for SECONDS_PER_TARGET (default
# 10) seconds, one after the other. Exits non-zero if any target finds a crash.
#
#   fuzz/run.sh            # smoke run, as in scripts/test.sh
#   fuzz/run.sh 300        # a longer run
#   FUZZ_TARGETS="router" fuzz/run.sh 60
#
# Stable Rust is enough: cargo-fuzz's nightly flags are enabled with
# RUSTC_BOOTSTRAP=1. cargo-fuzz is installed once into target/fuzz-tools.
# Builds go to target/fuzz-target, the growing corpora to target/fuzz-corpus
# (the committed seeds in fuzz/corpus/<target> are read, never written), logs
# to target/fuzz-logs, and crash inputs to fuzz/artifacts/<target>/.
#
# Environment: FUZZ_TARGETS (space-separated subset), FUZZ_SANITIZER
# (address, the default, or none: about twice the executions per second).
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$fuzz_dir/.." && pwd)
secs=${1:-10}
case "$secs" in
'' | *[!0-9]*)
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
  ;;
esac

cache="${CREDAGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/credagent}"
# cargo-fuzz and the fuzz build live in a cache shared by every checkout on this
# machine, so a fresh clone (as CI makes) does not rebuild them from scratch.
tools="$cache/fuzz-tools"
target_dir="$cache/fuzz-target"
work="$root/target/fuzz-corpus"
logs="$root/target/fuzz-logs"
sanitizer=${FUZZ_SANITIZER:-address}
read -r -a targets <<<"${FUZZ_TARGETS:-exchange_response jwt_claims config router admission}"

export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1

# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq g++
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz into $tools"
  cargo install cargo-fuzz --locked --root "$tools"
fi

host=$(rustc -vV | sed -n 's/^host: //p')
echo "==> cargo fuzz build (release, debug assertions, sanitizer: $sanitizer)"
started=$SECONDS
# One target at a time: FUZZ_TARGETS builds only what it names.
for t in "${targets[@]}"; do
  (cd "$fuzz_dir" && cargo fuzz build --release --debug-assertions --sanitizer "$sanitizer" \
    --target "$host" --target-dir "$target_dir" "$t")
done
echo "build: $((SECONDS - started))s"
bin_dir="$target_dir/$host/release"

# Inputs longer than libFuzzer's default 4 KiB where the limits under test are
# larger: 16 KiB tokens, request heads past the 16 KiB limit.
max_len() {
  case "$1" in
  jwt_claims) echo 20000 ;;
  router) echo 40000 ;;
  admission) echo 65536 ;;
  *) echo 8192 ;;
  esac
}

stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

passed=0
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "$logs" "$fuzz_dir/artifacts/$t"
  log="$logs/$t.log"
  echo "==> $t: ${secs}s"
  dict=()
  [ -f "$fuzz_dir/dict/$t.dict" ] && dict=("-dict=$fuzz_dir/dict/$t.dict")
  set +e
  "$bin_dir/$t" \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=20 \
    -max_len="$(max_len "$t")" "${dict[@]}" -print_final_stats=1 \
    -artifact_prefix="$fuzz_dir/artifacts/$t/" \
    "$work/$t" "$fuzz_dir/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(stat number_of_executed_units "$log")
  rate=$(stat average_exec_per_sec "$log")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1 || true)
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "$t: ok, ${execs:-?} execs (${rate:-?}/s), ${cov:-no coverage line}"
  else
    failed=$((failed + 1))
    echo "$t: FAILED (exit $rc), log $log"
    grep -E -A 40 '==[0-9]+==|panicked at|ERROR: libFuzzer' "$log" | head -n 60 || tail -n 40 "$log"
    grep -E 'Test unit written to' "$log" || true
  fi
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
