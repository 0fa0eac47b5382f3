#!/usr/bin/env bash
# Runs every test: formatting, dependency licenses and bans, lints (host and wasm), unit tests, the
# black-box e2e suite on SQLite and on a throw-away PostgreSQL cluster (with schemathesis against
# the API contract), the dashboard in headless Chromium, and a short run of each fuzz target.
# Installs what a fresh Debian machine lacks first.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_cargo
ensure_postgres
ensure_chromium
ensure_moto
ensure_schemathesis
ensure_wasm_target
ensure_cargo_deny
ensure_cargo_fuzz

say "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path backend/fuzz/Cargo.toml -- --check

say "cargo deny check licenses bans"
cargo deny --log-level error check licenses bans

say "clippy (server side)"
cargo clippy --quiet --all-targets -- -D warnings

say "clippy (dashboard and wire types on wasm32)"
cargo clippy --quiet -p hookline-dashboard -p hookline-types --target wasm32-unknown-unknown -- -D warnings

say "building the binary under test"
cargo build --quiet -p hookline

build_dashboard

say "tests (unit, then e2e on SQLite and PostgreSQL)"
cargo test --no-fail-fast -- --color never

say "fuzzing (15 s per target: $FUZZ_TARGETS)"
fuzz 15
