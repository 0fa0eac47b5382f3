# Builds the hookline binary and the dashboard; used by docker-compose.yml.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-unknown-unknown \
 && cargo install --version 0.2.130 wasm-bindgen-cli \
 && bash -c 'source scripts/lib.sh && build_dashboard' \
 && cargo build --release -p hookline

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/hookline /usr/local/bin/hookline
COPY --from=build /src/frontend/dist /srv/dashboard
ENV HOOKLINE_DASHBOARD_DIR=/srv/dashboard
ENTRYPOINT ["hookline"]
CMD ["serve"]
