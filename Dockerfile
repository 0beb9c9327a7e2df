# credagent: one static binary on distroless, non-root (UID 65532), no shell.
#
#   docker build -t credagent:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE=https://REPOSITORY-URL \
#     -t REGISTRY/credagent:0.1.0 --push .
#
# The build stage runs on the target platform (natively, or under QEMU with
# buildx), so `uname -m` names the musl target: x86_64 or aarch64. The release
# profile in Cargo.toml already asks for LTO, one codegen unit, strip and
# panic=abort. scripts/check-image-binaries.sh (run by scripts/test.sh) builds
# both targets with exactly these cargo flags and runs each binary as a
# sidecar, the aarch64 one under qemu-user.
#
# Base images are pinned by the digest of their multi-arch index; the tag
# beside each digest is for people. Refresh both together:
#   crane digest rust:1.95.0-slim-bookworm
#   crane digest gcr.io/distroless/static-debian12:nonroot
# (digests as published in 2026-08; the Rust version matches the toolchain
# the test suite runs, 1.95).
#
# Both are build arguments, for a build that cannot pull them (a mirror, an
# air-gapped registry, or scripts/check-runtime.sh, which builds this file with
# podman on local equivalents of the two): BUILDER_IMAGE must provide what
# rust:*-slim-bookworm does (apt-get, rustup, cargo, gcc), RUNTIME_IMAGE what
# distroless static:nonroot does (UID 65532 nonroot, CA certificates, no
# shell). The label base.name records the one used.
ARG BUILDER_IMAGE=rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab

FROM ${BUILDER_IMAGE} AS build

# musl-gcc compiles ring's C and assembly for the static musl target; the rest
# of the crate is pure Rust (rustls, no OpenSSL).
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$(uname -m)-unknown-linux-musl"

WORKDIR /build

# The product crate is built with --no-default-features: no `demo` feature, so
# neither `credagent demo` nor the test kit (the stand-in upstream, kubelet's
# writer, the JWT issuer) is in the image's binary. The test kit's manifest is
# copied only because the workspace names it; its sources are never built.
#
# Dependencies first, in a layer of their own that survives source edits: build
# the locked dependency graph against an empty crate, then drop the stub. Only
# the root manifest (the product and the workspace), the lock, the test kit's
# manifest and the product's src/ are in the context (.dockerignore);
# scripts/check-manifests.sh loads exactly this context with `cargo fetch
# --locked`.
COPY Cargo.toml Cargo.lock ./
COPY crates/testkit/Cargo.toml crates/testkit/
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked -p credagent --no-default-features \
       --target "$(uname -m)-unknown-linux-musl" \
    && rm -rf src

# The crate itself. `touch` makes cargo rebuild it even where the copied files
# carry older timestamps than the stub. The binary must run here (static, so
# no loader is needed) before it is handed to the runtime stage.
COPY src src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p credagent --no-default-features \
       --target "$(uname -m)-unknown-linux-musl" \
    && install -D -m 0755 "target/$(uname -m)-unknown-linux-musl/release/credagent" /out/credagent \
    && /out/credagent --version

FROM ${RUNTIME_IMAGE}

# The base named above: a global ARG is used in a stage once redeclared there.
ARG RUNTIME_IMAGE
# Set by the release build: the crate version, the commit, the repository URL.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=

LABEL org.opencontainers.image.title="credagent" \
      org.opencontainers.image.description="Kubernetes credential agent: exchanges projected service-account tokens for temporary S3 credentials and serves them in the ECS container-credentials format" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"

COPY --from=build /out/credagent /credagent

# distroless "nonroot". The node-mode DaemonSet overrides the user for its two
# containers; see docs/deploy.md ("Capabilities").
USER 65532:65532

# Admin listener (/metrics, /healthz, /readyz). The credentials listeners are
# 127.0.0.1:8181 (sidecar, loopback only) and 169.254.170.23:80 (node).
EXPOSE 9464

ENTRYPOINT ["/credagent"]
CMD ["--help"]
