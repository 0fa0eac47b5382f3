# syntax=docker/dockerfile:1
# The hookline binary and the dashboard in a small Debian image that runs as a non-root user.
# Dependencies and build output stay in BuildKit cache mounts between builds, so a change to
# Hookline's sources rebuilds only Hookline's crates.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The wasm toolchain first: it depends only on the lockfile's wasm-bindgen version.
COPY Cargo.lock ./
COPY scripts ./scripts
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    bash -c 'source scripts/lib.sh && ensure_wasm_target && ensure_wasm_bindgen'
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bash -c 'source scripts/lib.sh && build_dashboard' \
 && cargo build --release --locked -p hookline \
 && cp target/release/hookline /usr/local/bin/hookline

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin hookline \
 && mkdir -p /data \
 && chown hookline:hookline /data
COPY --from=build /usr/local/bin/hookline /usr/local/bin/hookline
COPY --from=build /src/frontend/dist /srv/dashboard
# Inside a container the API listens on every interface (the port is what gets published);
# /metrics then needs HOOKLINE_METRICS_TOKEN.
ENV HOOKLINE_LISTEN=0.0.0.0:8080 \
    HOOKLINE_DATA_DIR=/data \
    HOOKLINE_DASHBOARD_DIR=/srv/dashboard
USER hookline
WORKDIR /data
VOLUME ["/data"]
# 8080: API and dashboard; 9090: a worker's health and metrics (HOOKLINE_WORKER_LISTEN).
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["hookline", "healthcheck"]
ENTRYPOINT ["hookline"]
CMD ["serve"]
