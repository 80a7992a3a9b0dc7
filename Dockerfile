# syntax=docker/dockerfile:1
# The signet image: `signet serve` (registry gate, admission webhook) and every other subcommand.
#   docker build -t signet .
#   docker run --rm -p 8443:8443 -v "$PWD/gate:/etc/signet/config:ro" signet
# Build stage: RUST_VERSION at least the workspace rust-version (root Cargo.toml); developed and
# tested with 1.95. Dependencies come from the committed Cargo.lock (--locked).
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p signet-cli \
 && install -D -m 0755 target/release/signet /out/signet

# Runtime: glibc and CA certificates only (no shell, no package manager), same Debian release as
# the build stage; uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/signet /usr/local/bin/signet
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/signet"]
CMD ["serve", "--config", "/etc/signet/config/gate.yaml", "--log-format", "json"]
