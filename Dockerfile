# syntax=docker/dockerfile:1
# forge-otel-sidecar: a small, non-root image with the static-ish binary and
# a default config driven by environment variables (config/container.yaml).
#
# Multi-arch (the build stage runs per platform, emulated where needed):
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     -t REGISTRY/forge-otel-sidecar:TAG --push .

FROM rust:1.89-slim-bookworm AS build
WORKDIR /src
# Dependencies first, with stub sources, so this layer stays cached until
# Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
# Make sure the real sources are newer than the stub build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && mkdir -p /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="forge-otel-sidecar" \
      org.opencontainers.image.description="Atlassian Forge app logs to OpenTelemetry (OTLP), at least once"
COPY --from=build /src/target/release/forge-otel-sidecar /usr/local/bin/forge-otel-sidecar
COPY config/container.yaml /etc/forge-otel-sidecar/config.yaml
COPY --from=build --chown=65532:65532 /out/state /var/lib/forge-otel-sidecar
ENV FORGE_OTEL_CONFIG=/etc/forge-otel-sidecar/config.yaml \
    FORGE_OTEL_HEALTH_ADDR=127.0.0.1:9464
VOLUME ["/var/lib/forge-otel-sidecar"]
EXPOSE 9464
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/forge-otel-sidecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/forge-otel-sidecar"]
CMD ["run"]
