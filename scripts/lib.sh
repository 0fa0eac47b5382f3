# Shared set-up steps for run.sh and test.sh. Each step checks first and only installs what is
# missing; where it cannot install (not root, not Debian), it stops and says what to install.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }
is_debian() { [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

APT_UPDATED=0
# ensure_debian_packages CHECK_COMMAND PACKAGE...: runs CHECK_COMMAND; when it fails, installs the
# packages with apt-get (as root on Debian) or explains how.
ensure_debian_packages() {
  local check="$1"; shift
  if eval "$check" >/dev/null 2>&1; then return 0; fi
  if is_root && is_debian; then
    say "installing $* (apt-get)"
    if [ "$APT_UPDATED" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
      APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    eval "$check" >/dev/null 2>&1 || die "installed $* but the check '$check' still fails"
  elif is_debian; then
    die "missing $*: run 'sudo apt-get install -y $*' (or run this script as root), then try again"
  else
    die "missing $*: install them with your system's package manager (e.g. 'brew install $*' on macOS), then try again"
  fi
}

ensure_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust 1.95 or later from https://rustup.rs, then try again"
}

# PostgreSQL server binaries for the throw-away test cluster (initdb, pg_ctl, postgres, createdb).
have_pg_binaries() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/createdb" ] && return 0
  done
  return 1
}

ensure_postgres() {
  ensure_debian_packages have_pg_binaries postgresql
  # The test cluster runs as the postgres user when we are root; runuser comes with util-linux.
  if is_root; then ensure_debian_packages "command -v runuser" util-linux; fi
}

# Headless Chromium and its ChromeDriver, for the dashboard's browser tests (e2e/tests/dashboard.rs).
ensure_chromium() {
  ensure_debian_packages "[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]" chromium chromium-driver
}

# moto's S3 server (PyPI), the S3-compatible object store the claim-check tests start on loopback
# (e2e/src/s3.rs).
MOTO_VERSION=5.2.1
ensure_moto() {
  python3 -c 'import moto.server, flask_cors' >/dev/null 2>&1 && return 0
  ensure_debian_packages "command -v python3 && python3 -m pip --version" python3 python3-pip
  say "installing moto[server]==$MOTO_VERSION (pip)"
  # Debian's own python3 refuses pip installs outside a venv unless told otherwise (PEP 668).
  python3 -m pip install --quiet "moto[server]==$MOTO_VERSION" >/dev/null 2>&1 ||
    python3 -m pip install --quiet --break-system-packages "moto[server]==$MOTO_VERSION" ||
    die "could not install moto: run 'python3 -m pip install \"moto[server]==$MOTO_VERSION\"', then try again"
  python3 -c 'import moto.server, flask_cors' >/dev/null 2>&1 || die "installed moto but 'import moto.server' still fails"
}

# ensure_cargo_tool CRATE VERSION: the cargo subcommand CRATE at exactly VERSION, installed with
# `cargo install --locked` when it is missing or another version.
ensure_cargo_tool() {
  local crate="$1" version="$2"
  if command -v "$crate" >/dev/null 2>&1 && [ "$("$crate" --version | awk '{print $2}')" = "$version" ]; then
    return 0
  fi
  say "installing $crate $version (cargo install, a few minutes, once)"
  cargo install --quiet --locked --version "$version" "$crate"
}

# schemathesis (PyPI), the API contract fuzzer e2e/tests/contract.rs runs against the served
# OpenAPI document. It lives in its own virtualenv (its dependencies would clash with moto's), kept
# outside the clone so a clean clone reuses it; HOOKLINE_SCHEMATHESIS tells the test where it is.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  local venv="${HOOKLINE_TOOLS_DIR:-$HOME/.cache/hookline}/schemathesis-$SCHEMATHESIS_VERSION"
  export HOOKLINE_SCHEMATHESIS="$venv/bin/schemathesis"
  if [ -x "$HOOKLINE_SCHEMATHESIS" ] && "$HOOKLINE_SCHEMATHESIS" --version >/dev/null 2>&1; then return 0; fi
  ensure_debian_packages "python3 -m venv --help" python3-venv
  say "installing schemathesis==$SCHEMATHESIS_VERSION (pip, in $venv)"
  rm -rf "$venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" ||
    die "could not install schemathesis: run 'python3 -m venv $venv && $venv/bin/pip install schemathesis==$SCHEMATHESIS_VERSION', then try again"
}

# cargo-fuzz runs the libFuzzer targets of backend/fuzz (their own workspace). The targets are
# built with the machine's stable toolchain: RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz
# passes, and `-s none` leaves out the sanitizer (the fuzzed code is safe Rust; libFuzzer's
# coverage instrumentation is what finds the inputs).
CARGO_FUZZ_VERSION=0.13.2
ensure_cargo_fuzz() { ensure_cargo_tool cargo-fuzz "$CARGO_FUZZ_VERSION"; }

# fuzz SECONDS: runs every fuzz target for SECONDS each; a crash, a panic or a run over
# libFuzzer's -timeout fails it and leaves the input under backend/fuzz/artifacts/.
FUZZ_TARGETS="verify_signatures event_type_filter json_schema request_bodies content_filters"
fuzz() {
  local seconds="$1" target
  local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"
  mkdir -p "$target_dir"
  for target in $FUZZ_TARGETS; do
    local log="$target_dir/$target.log"
    if ! RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir backend/fuzz --sanitizer none --target-dir "$target_dir" "$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
      tail -40 "$log" >&2
      die "fuzz target $target failed (the input is under backend/fuzz/artifacts/$target/)"
    fi
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec)" "$log" | sed "s/^/$target: /" >&2
  done
}

# cargo-deny checks the dependency graph's licenses and bans (deny.toml).
CARGO_DENY_VERSION=0.20.2
ensure_cargo_deny() { ensure_cargo_tool cargo-deny "$CARGO_DENY_VERSION"; }

ensure_wasm_target() {
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then return 0; fi
  command -v rustup >/dev/null 2>&1 || die "the wasm32-unknown-unknown target is missing and rustup is not installed: install rustup, then 'rustup target add wasm32-unknown-unknown'"
  say "adding the wasm32-unknown-unknown target (rustup)"
  rustup target add wasm32-unknown-unknown >/dev/null
}

# The wasm-bindgen CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_wasm_bindgen() {
  local want; want="$(wasm_bindgen_version)"
  [ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
  if command -v wasm-bindgen >/dev/null 2>&1 && [ "$(wasm-bindgen --version | awk '{print $2}')" = "$want" ]; then
    return 0
  fi
  say "installing wasm-bindgen-cli $want (cargo install, a few minutes, once)"
  # Not --locked: the CLI's own lockfile pins a webpki-roots release the registry may lack.
  cargo install --quiet --version "$want" wasm-bindgen-cli
}

# Builds the dashboard into frontend/dist when its sources changed (cargo decides what is stale;
# wasm-bindgen runs only when the .wasm is newer than its output).
build_dashboard() {
  ensure_wasm_target
  ensure_wasm_bindgen
  say "building the dashboard (wasm)"
  cargo build --quiet -p hookline-dashboard --target wasm32-unknown-unknown --profile wasm-release
  local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
  local wasm="$target_dir/wasm32-unknown-unknown/wasm-release/hookline_dashboard.wasm"
  local dist="$ROOT/frontend/dist"
  mkdir -p "$dist/pkg"
  if [ ! -f "$dist/pkg/hookline_dashboard_bg.wasm" ] || [ "$wasm" -nt "$dist/pkg/hookline_dashboard_bg.wasm" ]; then
    wasm-bindgen --target web --no-typescript --out-dir "$dist/pkg" "$wasm"
  fi
  cp "$ROOT"/frontend/static/* "$dist/"
}
