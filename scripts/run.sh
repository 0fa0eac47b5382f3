#!/usr/bin/env bash
# Starts the whole platform in one process (API + workers + dashboard) with the embedded default:
# SQLite and local files under ./data, listening on 127.0.0.1:8080. Builds what is missing first.
# Extra arguments go to `hookline` (e.g. `./scripts/run.sh tenant create --name Acme --email a@b.c`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_cargo
build_dashboard
say "building hookline (release)"
cargo build --quiet --release -p hookline
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/hookline" "${@:-serve}"
