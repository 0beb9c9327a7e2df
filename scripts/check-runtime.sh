#!/usr/bin/env bash
# Runs credagent as the cluster will: the image built by a real container engine from the
# repository's own Dockerfile, the chart's Pods run by it, the alerts and the dashboard checked by
# Prometheus's own tools. tests/runtime/README.md says what is reproduced, every substitution made
# for what no local runtime can honour, and what is not reproduced.
#
#   scripts/check-runtime.sh
#
# 1. image: the Dockerfile built by podman (4.3, runc) with BUILDER_IMAGE and RUNTIME_IMAGE set to
#    local equivalents of rust:1.95.0-slim-bookworm (a Debian bookworm root filesystem from
#    mmdebstrap with the host's Rust toolchain and crates mounted in) and of distroless
#    static-debian12:nonroot (passwd/group with 65532 nonroot, Debian's CA bundle, nothing else);
#    its config checked (user, entrypoint, labels, no shell, size).
# 2. monitoring: `promtool check rules` on the chart's rendered PrometheusRule; `promtool test
#    rules` of tests/monitoring/alerts.test.yaml on it, and by mutation that those tests make every
#    alert fire and stay silent (tests/monitoring/coverage.py).
# 3. pods: tests/runtime/driver.py, in a network namespace this script owns (the "node"): the
#    webhook, three injected workload Pods (native sidecar; credential_process; node mode), the
#    node agent, under `podman kube play`; a real Prometheus scraping them.
#
# What podman 4.3 does not do as kubelet does, found here and made up for in tests/runtime/pods.py
# (README.md has each substitution and why): it ignores restartPolicy on init containers (a native
# sidecar would block the Pod's start), runAsNonRoot (it runs UID 0 anyway) and
# terminationGracePeriodSeconds; it turns probes into a curl healthcheck inside the container, run
# by systemd timers; it makes an emptyDir a volume shared by name across Pods and owned by one
# container's user; it publishes every containerPort on the host; it refuses annotation values over
# 63 characters; it has no projected token volumes and wants podman secrets for Secrets; its build
# cache ignores build-argument values in LABEL. It honours runAsUser/runAsGroup, capabilities,
# readOnlyRootFilesystem, allowPrivilegeEscalation, hostNetwork, envFrom ConfigMaps, hostPath and
# resource limits, and applies its default seccomp profile (RuntimeDefault): the driver checks each
# in the kernel's view of the container's PID 1.
#
# Installs what it needs: podman, runc, catatonit, netavark, iptables, mmdebstrap, prometheus (its
# server and promtool), openssl from Debian; helm (scripts/install-helm.sh); the venv of
# tests/runtime/requirements.txt and the apps' SDK (app-requirements.txt); s3s-fs as tests/interop
# installs it. Caches under ${CREDAGENT_CACHE:-~/.cache/credagent}/runtime: the bookworm root
# filesystem (a tarball), the venv, the SDK, and podman's image store (the base images and the build
# stage's layers). The Dockerfile's build mounts scripts/check-image-binaries.sh's target directory
# (same flags, same toolchain; run before this by scripts/test.sh) through an overlay as its
# target/, so its dependency builds are reused and nothing is written back. Everything else lives in
# a directory of this run (under the cache's runs/), removed at the end with every Pod, container,
# mount and the namespace it made, also on failure; a killed run's are removed by the next run.
#
# Ends with `runtime: N passed, M failed`; exits 1 if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

cache="${CREDAGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/credagent}"
rcache="$cache/runtime"
mkdir -p "$rcache"
started=$(date +%s)
run_id="r$$"
# The store this script keeps under the cache, and the namespaces of its runs, are named after it.
store_id=$(printf '%s' "$rcache" | sha256sum | cut -c1-12)
netns="credagent-rt-${store_id:0:6}-$run_id"

step() { printf '\n==> %s\n' "$*"; }
passed=0
failed=0
pass() { printf '  PASS  %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf '  FAIL  %s\n' "$*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...: PASS if COMMAND succeeds, else FAIL with its output
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then pass "$what"; else fail "$what"; printf '%s\n' "$out" | tail -n 30 | sed 's/^/        /'; fi
}
elapsed() { echo "$(($(date +%s) - $1))s"; }

# ---------------------------------------------------------------------------------------- tools
step "tools"
# netavark named: podman's network stack could otherwise be the CNI plugins (an alternative of the
# same virtual package); no recommends: prometheus would bring node-exporter along.
missing=()
for pkg in podman runc catatonit netavark iptables mmdebstrap prometheus openssl iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "  installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
printf '  %s, runc %s, %s\n' "$(podman --version)" "$(runc --version | head -n 1 | awk '{print $3}')" \
  "$(promtool --version 2>&1 | head -n 1 | awk '{print $1, $3}')"
HELM_DIR=$(scripts/install-helm.sh)
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
# The image's build reads crates from the host's registry, offline: fetch what the lock names.
cargo fetch --locked -q

VENV="$rcache/venv"
REQ=tests/runtime/requirements.txt
if [ ! -f "$VENV/.installed" ] || ! cmp -s "$REQ" "$VENV/.installed"; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/.installed"
fi
# The apps' SDK, pure Python, for the app image's own interpreter (not this host's).
SITE="$rcache/app-site"
APP_REQ=tests/runtime/app-requirements.txt
if [ ! -f "$SITE/.installed" ] || ! cmp -s "$APP_REQ" "$SITE/.installed"; then
  rm -rf "$SITE"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-compile --only-binary=:all: \
    --target "$SITE" -r "$APP_REQ"
  cp "$APP_REQ" "$SITE/.installed"
fi

cargo build --locked -q -p credagent-testkit --bin credagent-standin
STANDIN=$ROOT/target/debug/credagent-standin
# s3s-fs exactly as tests/interop/run.sh installs it, in the same place: one build per machine. In
# the background (its own process group), beside the base images and the image's build, which
# mostly wait on the network, on dpkg or on one single-threaded link.
S3S_VERSION=$(sed -n 's/^S3S_VERSION=//p' tests/interop/run.sh)
S3S="$cache/interop/s3s"
s3s_pid=
driver_pid=
if ! [ -x "$S3S/bin/s3s-fs" ] || ! grep -qs "\"s3s-fs $S3S_VERSION " "$S3S/.crates.toml"; then
  echo "  s3s-fs $S3S_VERSION: cargo install in the background (about 2 minutes)"
  mkdir -p "$cache/interop"
  setsid cargo install "s3s-fs@$S3S_VERSION" --features binary --locked --root "$S3S" \
    >"$rcache/s3s-install.log" 2>&1 &
  s3s_pid=$!
fi

# ---------------------------------------------------------------------------------------- podman
# One run at a time per cache: runs share the root filesystem, podman's store and the image's tag.
exec 9>"$rcache/lock"
if ! flock -n 9; then
  echo "  waiting for another check-runtime.sh using $rcache"
  flock 9
fi
# Root podman with runc and cgroupfs, without default ulimits (../shared/TESTING.md: crun refuses
# this machine's hybrid cgroups; the default RLIMIT_NOFILE cannot be set). Its image store is
# cached; its run state is keyed by the store's path, as podman requires; the bridge network's
# configuration is its own.
# This run's files (podman's configuration, the Pods' volumes, logs) under the locked cache, where a
# killed run's are found and removed by the next.
mkdir -p "$rcache/runs"
run_dir=$(mktemp -d "$rcache/runs/$run_id.XXXX")
state="/run/credagent-runtime-$store_id"
mkdir -p "$state/networks"
export CONTAINERS_CONF="$run_dir/containers.conf" CONTAINERS_STORAGE_CONF="$run_dir/storage.conf"
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
tmp_dir = "$state/libpod"
[network]
network_config_dir = "$state/networks"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$rcache/podman"
runroot = "$state/storage"
EOF

# Ends what runs in a node's namespace (this script's: the stand-in, s3s-fs, Prometheus, conmon and
# the containers of hostNetwork Pods) by its ids, then removes the namespace.
remove_netns() {
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  sleep 0.5
  for pid in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$1"
}
cleanup() {
  local code=$?
  set +e
  [ -n "$s3s_pid" ] && kill -- "-$s3s_pid" 2>/dev/null
  if [ -n "$driver_pid" ] && kill -TERM "$driver_pid" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.5; done
  fi
  # Every Pod of this run (the driver removes its own; this is for an interrupted run).
  for pod in $(podman pod ps --format '{{.Name}}' 2>/dev/null | grep -- "-$run_id\$"); do
    podman pod rm -f -t 0 "$pod" >/dev/null 2>&1
  done
  podman rm -f -t 0 "credagent-rt-nosh-$run_id" >/dev/null 2>&1
  if ip netns list | grep -qw -- "$netns"; then
    remove_netns "$netns"
  fi
  for m in $(findmnt -rn -o TARGET | grep -- "^$run_dir/" | sort -r); do umount "$m"; done
  # Unlocks for every process that inherited the descriptor too.
  flock -u 9 2>/dev/null
  mkdir -p "$rcache/last-run" && rm -rf "$rcache/last-run/"*
  cp -r "$run_dir/pods/logs" "$run_dir/build.log" "$rcache/last-run/" 2>/dev/null
  rm -rf "$run_dir"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# What a run on this store left when it could not clean up (killed): its Pods and containers, and
# its node's namespace with what still runs in it. The store is this script's own, and locked.
podman pod rm -a -f -t 0 >/dev/null 2>&1 || true
podman rm -a -f -t 0 >/dev/null 2>&1 || true
for old in $(ip netns list | awk '{print $1}' | grep -- "^credagent-rt-${store_id:0:6}-"); do
  remove_netns "$old" || true
done
for old in "$rcache"/runs/*; do
  [ "$old" = "$run_dir" ] && continue
  for m in $(findmnt -rn -o TARGET | grep -- "^$old/" | sort -r); do umount "$m" || true; done
  rm -rf "$old"
done

# ---------------------------------------------------------------------------------------- bases
step "base images: a Debian bookworm root filesystem (mmdebstrap), cached"
# One root filesystem for both: the builder (the Dockerfile's build stage needs apt-get, gcc,
# musl-tools; rustup and cargo are the host's, mounted in) and the workload Pods' app image
# (python3, running botocore). Its CA bundle is also the runtime base's.
packages="gcc,libc6-dev,musl-tools,ca-certificates,python3"
key=$(printf 'bookworm minbase %s' "$packages" | sha256sum | cut -c1-12)
rootfs="$rcache/bookworm-$key.tar"
if [ ! -f "$rootfs" ]; then
  t=$(date +%s)
  mmdebstrap --quiet --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$rootfs.partial.tar" >/dev/null
  mv "$rootfs.partial.tar" "$rootfs"
  echo "  made $rootfs in $(elapsed "$t")"
fi
BUILDER_IMAGE="localhost/credagent-runtime/bookworm:$key"
APP_IMAGE=$BUILDER_IMAGE
RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
if ! podman image exists "$BUILDER_IMAGE"; then
  # rust:*-slim-bookworm's layout: rustup and cargo on PATH (here the host's, at the same paths,
  # so that the mounted target directory's dependency builds stay fresh), offline.
  podman import -q \
    --change "ENV PATH=$CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV RUSTUP_HOME=$RUSTUP_HOME" --change "ENV CARGO_HOME=$CARGO_HOME" \
    --change "ENV CARGO_NET_OFFLINE=true" "$rootfs" "$BUILDER_IMAGE" >/dev/null
fi
RUNTIME_IMAGE="localhost/credagent-runtime/static-debian12:nonroot-$key"
if ! podman image exists "$RUNTIME_IMAGE"; then
  # distroless static-debian12:nonroot, as far as credagent can tell: the users (65532 nonroot),
  # the CA bundle, /tmp, the home directory; no shell, no libc, no package manager.
  base="$run_dir/static"
  mkdir -p "$base/etc/ssl/certs" "$base/tmp" "$base/home/nonroot" "$base/root"
  tar -xOf "$rootfs" ./etc/ssl/certs/ca-certificates.crt >"$base/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$base/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$base/etc/group"
  chmod 1777 "$base/tmp"
  chmod 0700 "$base/root" "$base/home/nonroot"
  chown 65532:65532 "$base/home/nonroot"
  tar --numeric-owner --sort=name --mtime=@0 -C "$base" -cf "$run_dir/static.tar" .
  podman import -q --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' "$run_dir/static.tar" "$RUNTIME_IMAGE" >/dev/null
fi
pass "base images $BUILDER_IMAGE, $RUNTIME_IMAGE"

# ---------------------------------------------------------------------------------------- image
step "podman build of the Dockerfile"
IMAGE=localhost/credagent:runtime-test
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
image_target="$cache/image-target"
mkdir -p "$image_target"
t=$(date +%s)
build=(podman build --layers
  # The build stage's apt-get update reaches the Debian mirror, as it would under docker.
  --network host
  # The host's toolchain and crates where the builder image expects them (read-only, or through an
  # overlay whose writes are dropped), and check-image-binaries.sh's target directory as target/.
  -v "$RUSTUP_HOME:$RUSTUP_HOME:ro" -v "$CARGO_HOME:$CARGO_HOME:O" -v "$image_target:/build/target:O"
  --build-arg "BUILDER_IMAGE=$BUILDER_IMAGE" --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE"
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision"
  --build-arg "SOURCE=https://example.invalid/credagent")
# The build stage first, tagged, so that its layers are kept for the next run; an older build's
# layers are no longer tagged and are pruned, and so are the last image's own (the runtime stage):
# podman 4.3's layer cache ignores build-argument values in LABEL, so a cached runtime stage keeps
# the VERSION and REVISION of the build that made it. That stage is a few seconds' work.
if "${build[@]}" --target build -t localhost/credagent-runtime/build-stage . >"$run_dir/build.log" 2>&1 \
  && { podman rmi -f "$IMAGE" >/dev/null 2>&1; podman image prune -f >/dev/null 2>&1; true; } \
  && "${build[@]}" -t "$IMAGE" . >>"$run_dir/build.log" 2>&1; then
  pass "podman build -t $IMAGE . ($(elapsed "$t"))"
else
  fail "podman build ($(elapsed "$t"))"
  tail -n 40 "$run_dir/build.log" | sed 's/^/        /'
  echo "runtime: $passed passed, $failed failed"
  exit 1
fi

podman image inspect "$IMAGE" >"$run_dir/image.json"
image_checks() {
  "$VENV/bin/python" - "$run_dir/image.json" "$version" "$revision" "$RUNTIME_IMAGE" <<'EOF'
import json, sys
img = json.load(open(sys.argv[1]))[0]
version, revision, base = sys.argv[2:5]
c = img["Config"]
labels = c.get("Labels") or {}
want = {"org.opencontainers.image.title": "credagent", "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.version": version, "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": "https://example.invalid/credagent",
        "org.opencontainers.image.base.name": base}
checks = [
    (c.get("User") == "65532:65532", f"user {c.get('User')}"),
    (c.get("Entrypoint") == ["/credagent"] and c.get("Cmd") == ["--help"],
     f"entrypoint {c.get('Entrypoint')}, cmd {c.get('Cmd')}"),
    (list(c.get("ExposedPorts") or {}) == ["9464/tcp"], f"exposes {list(c.get('ExposedPorts') or {})}"),
    (all(labels.get(k) == v for k, v in want.items()) and labels.get("org.opencontainers.image.description"),
     "labels " + ", ".join(f"{k.rsplit('.', 1)[1]}={labels.get(k)!r}" for k in want)),
    (len(img["RootFS"]["Layers"]) == 2, f"{len(img['RootFS']['Layers'])} layers (the base and the binary)"),
    (img["Size"] < 10_000_000, f"{img['Size']:,} bytes ({img['Size'] / 1e6:.2f} MB), under 10 MB"),
]
for ok, what in checks:
    print(f"  {'PASS' if ok else 'FAIL'}  image config: {what}")
EOF
}
image_out=$(image_checks)
printf '%s\n' "$image_out"
passed=$((passed + $(grep -c '^  PASS' <<<"$image_out" || true)))
failed=$((failed + $(grep -c '^  FAIL' <<<"$image_out" || true)))
image_size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Size"])' "$run_dir/image.json")

# The files of the image: the base's and /credagent, nothing executable but it.
podman create --name "credagent-rt-nosh-$run_id" "$IMAGE" >/dev/null
podman export "credagent-rt-nosh-$run_id" | tar -tv >"$run_dir/files.txt"
podman rm -f "credagent-rt-nosh-$run_id" >/dev/null
execs=$(awk '$1 ~ /^-..x/ { print $NF }' "$run_dir/files.txt" | tr '\n' ' ')
if [ "$execs" = "credagent " ] && ! grep -qE ' (bin|usr/bin|sbin)/' "$run_dir/files.txt"; then
  pass "image files: $(grep -c . "$run_dir/files.txt") entries, the only executable is /credagent (no shell, no bin/)"
else
  fail "image files: executables '$execs'"
  sed 's/^/        /' "$run_dir/files.txt" | head -n 40
fi
nosh=$(podman run --rm --entrypoint /bin/sh "$IMAGE" -c true 2>&1 || true)
if grep -qi 'no such file or directory' <<<"$nosh"; then
  pass "podman run --entrypoint /bin/sh: no shell to run"
else
  fail "podman run --entrypoint /bin/sh: $nosh"
fi
v=$(podman run --rm --read-only --cap-drop ALL "$IMAGE" --version 2>&1 || true)
if [ "$v" = "credagent $version" ]; then
  pass "podman run --read-only --cap-drop ALL: --version prints '$v' (UID 65532 from the image)"
else
  fail "podman run --read-only --cap-drop ALL --version: $v"
fi
demo=$(podman run --rm "$IMAGE" demo 2>&1 || true)
if grep -q "unrecognized subcommand" <<<"$demo"; then
  pass "the image's binary has no demo/test kit ('demo': unrecognized subcommand)"
else
  fail "'demo' in the image: $demo"
fi

# ---------------------------------------------------------------------------------------- monitoring
step "monitoring: promtool on the chart's rendered PrometheusRule"
mon="$run_dir/monitoring"
mkdir -p "$mon"
HELM_CACHE_HOME="$mon/helm" HELM_CONFIG_HOME="$mon/helm" HELM_DATA_HOME="$mon/helm" \
  "$HELM_DIR/helm" template credagent charts/credagent --namespace credagent-system --kube-version 1.33.0 \
  --set monitoring.enabled=true --set image.repository=example.invalid/credagent \
  --set upstream.orgId=example --show-only templates/monitoring-prometheusrule.yaml >"$mon/prometheusrule.yaml"
if "$VENV/bin/python" -c '
import sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"), sort_keys=False)
sys.exit(0 if rule["spec"] == yaml.safe_load(open(sys.argv[3])) else 1)' \
  "$mon/prometheusrule.yaml" "$mon/rules.yaml" charts/credagent/files/prometheusrule-spec.yaml; then
  pass "the rendered PrometheusRule's spec is charts/credagent/files/prometheusrule-spec.yaml (the tests' rule file)"
else
  fail "the rendered PrometheusRule's spec differs from charts/credagent/files/prometheusrule-spec.yaml"
fi
check "promtool check rules --lint-fatal (the rendered spec)" promtool check rules --lint-fatal "$mon/rules.yaml"
cov=$("$VENV/bin/python" tests/monitoring/coverage.py promtool "$mon/rules.yaml" tests/monitoring/alerts.test.yaml || true)
printf '%s\n' "$cov"
passed=$((passed + $(grep -c '^  PASS' <<<"$cov" || true)))
failed=$((failed + $(grep -c '^  FAIL' <<<"$cov" || true)))

# ---------------------------------------------------------------------------------------- pods
if [ -n "$s3s_pid" ]; then
  step "s3s-fs $S3S_VERSION: waiting for the background install"
  if ! wait "$s3s_pid"; then
    tail -n 20 "$rcache/s3s-install.log"
    fail "cargo install s3s-fs $S3S_VERSION (log: $rcache/s3s-install.log)"
    echo "runtime: $passed passed, $failed failed"
    exit 1
  fi
  s3s_pid=
fi
step "pods: the chart's Pods under podman kube play, in the node's network namespace $netns"
ip netns add "$netns"
ip netns exec "$netns" ip link set lo up
network=credagent-runtime
if ! podman network exists "$network"; then
  podman network create --disable-dns --subnet 10.231.0.0/24 --gateway 10.231.0.1 "$network" >/dev/null
fi
t=$(date +%s)
# nsenter moves only the network namespace: podman, conmon and every hostNetwork Pod are on the
# "node", the other Pods on a podman bridge inside it. In the background, so that a signal to this
# script is acted on at once (cleanup stops the driver, which removes its Pods).
nsenter --net="/run/netns/$netns" "$VENV/bin/python" -u tests/runtime/driver.py \
  --helm "$HELM_DIR/helm" --image "$IMAGE" --app-image "$APP_IMAGE" --standin "$STANDIN" \
  --s3s-fs "$S3S/bin/s3s-fs" --prometheus /usr/bin/prometheus --app-site "$SITE" --work "$run_dir/pods" \
  --run-id "$run_id" --network "$network" --swap "$ROOT/crates/testkit/kubelet-swap.sh" \
  >"$run_dir/driver.out" 2>&1 &
driver_pid=$!
tail -n +1 -f --pid="$driver_pid" "$run_dir/driver.out" &
tail_pid=$!
wait "$driver_pid" || true
wait "$tail_pid" || true
driver_pid=
passed=$((passed + $(grep -c '^  PASS' "$run_dir/driver.out" || true)))
failed=$((failed + $(grep -c '^  FAIL' "$run_dir/driver.out" || true)))
grep -q '^pods: ' "$run_dir/driver.out" || fail "the driver did not finish"
echo "  pods $(elapsed "$t")"

step "summary"
printf '  image %s bytes; logs of this run: %s\n' "$image_size" "$rcache/last-run"
printf '  whole script %s\n' "$(elapsed "$started")"
echo "runtime: $passed passed, $failed failed"
[ "$failed" = 0 ]
