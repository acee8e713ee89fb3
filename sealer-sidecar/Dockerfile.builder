# syntax=docker/dockerfile:1
#
# The sealer image built inside a Rust image, for machines with registry access and
# BuildKit (it pulls rust:1.95-bookworm and distroless, and uses RUN --mount). Not tested
# here: the tested path is sealer-sidecar/Dockerfile (FROM scratch, a static binary built
# beforehand), which needs no registry.
#
#   docker build -f sealer-sidecar/Dockerfile.builder -t ghcr.io/ingress-audit/sealer:0.1.0 .
#
# Built from the workspace root (the sealer depends on the auditlog crate). The runtime base
# is distroless "cc" (glibc and CA certificates, nothing else) rather than "static": the
# binary links glibc dynamically, as `cargo build` makes it. The default command expects a
# config file at /etc/sealer/sealer.toml (envoy-config/istio/ shows the mounts).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sealer-sidecar \
    && install -m 0755 target/release/sealer /sealer

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sealer /usr/local/bin/sealer
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sealer"]
CMD ["serve", "--config", "/etc/sealer/sealer.toml"]
