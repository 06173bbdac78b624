# The passwordsafe-operator image: the release binary on a distroless base, as user 65532 (nonroot).
#
#   docker build -t ghcr.io/passwordsafe-operator/passwordsafe-operator:0.1.0 .
#
# Runtime base: gcr.io/distroless/cc-debian12 (glibc, libgcc, CA certificates, no shell, no package manager)
# rather than a static musl binary on distroless/static: the builder below is Debian 12 too, so the binary links
# against the same glibc it runs with, and no musl cross toolchain is needed for ring's C and assembly parts or
# for jemalloc (the operator's allocator, built from C by the tikv-jemalloc-sys crate with the builder's gcc and
# make). The CA certificates are the system roots the Password Safe client trusts by default.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo.lock covers both members, and --locked refuses to build if it is out of date.
COPY . .
# Cache mounts keep the crate registry and the target directory between builds (BuildKit); the binary is
# copied out of the cached target directory. Debug info of the standard library is stripped; symbol names stay
# for panic backtraces.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --release --locked -p passwordsafe-operator --bin passwordsafe-operator \
 && install -D -m 0755 target/release/passwordsafe-operator /out/passwordsafe-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="passwordsafe-operator" \
      org.opencontainers.image.description="Keeps Kubernetes Secrets in sync with BeyondTrust Password Safe" \
      org.opencontainers.image.source="https://github.com/passwordsafe-operator/passwordsafe-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/passwordsafe-operator /passwordsafe-operator
# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd (the chart sets the same IDs).
USER 65532:65532
# Metrics (/metrics) and health (/healthz, /readyz).
EXPOSE 8080 8081
ENTRYPOINT ["/passwordsafe-operator"]
CMD ["run"]
