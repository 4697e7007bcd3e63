# syntax=docker/dockerfile:1
#
# The vault's image: the `evault` binary alone, on a distroless base, run
# as an unprivileged user. Every role and every command is the same
# binary: `evault up`, `evault serve <role>`, `evault migrate`, and the
# client commands.
#
#   docker build -t evault .
#
# Needs BuildKit (the default builder since Docker 23) for the cache
# mounts. Nothing beyond the Rust toolchain is needed: protoc comes from
# the protoc-bin-vendored crate, and the web UI is embedded from the
# committed web/dist (no Node.js).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches speed up rebuilds; the binary is copied
# out of the cache mount, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p evault \
 && install -D -m 0755 target/release/evault /out/usr/local/bin/evault \
 && install -d -m 0750 /out/var/lib/evault

# glibc and libgcc from Debian 12, as the builder links against, plus CA
# certificates (for a JWKS URL over HTTPS); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/evault /usr/local/bin/evault
# A data directory the unprivileged user owns, for `evault up` and
# `evault token` (mount a volume here to keep it).
COPY --from=build --chown=65532:65532 /out/var/lib/evault /var/lib/evault
ENV EVAULT_DATA_DIR=/var/lib/evault
WORKDIR /var/lib/evault
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
# The defaults listen on 127.0.0.1: in a container set EVAULT_LISTEN (and
# EVAULT_HEALTH_LISTEN) to 0.0.0.0:PORT. Gateway or `up`, ingest, tree,
# signer; then the plaintext gRPC health port.
EXPOSE 7400 7401 7402 7403 8081
ENTRYPOINT ["/usr/local/bin/evault"]
CMD ["up"]
