#!/usr/bin/env bash
# Runs the Dockerfile's runtime stage without a Docker engine: a fresh Debian bookworm root made
# with debootstrap (what debian:bookworm-slim is), the stage's RUN steps inside it, the release
# binary and the built dashboard copied in, then the image's ENTRYPOINT/CMD (`hookline serve`) as
# its non-root user with its ENV, probed by its HEALTHCHECK (`hookline healthcheck`) and over
# HTTP from outside. Needs root and debootstrap (apt-get install debootstrap).
#
#   scripts/check-container.sh [ROOT_DIR]     (default /tmp/hookline-container-root)
#
# The build stage's commands (ensure_wasm_target, ensure_wasm_bindgen, build_dashboard,
# cargo build --release --locked -p hookline) are the ones run.sh and test.sh run on this kind
# of machine (Debian bookworm, Rust 1.95: the rust:1.95-bookworm image); this script builds with
# them on the host first.

source "$(dirname "$0")/lib.sh"

is_root || die "run as root (debootstrap and chroot need it)"
ensure_debian_packages "command -v debootstrap" debootstrap
target="${1:-/tmp/hookline-container-root}"

say "building the dashboard and the release binary (the Dockerfile's build stage)"
build_dashboard
cargo build --quiet --release --locked -p hookline

if [ ! -x "$target/usr/bin/apt-get" ]; then
  say "debootstrap bookworm into $target"
  rm -rf "$target"
  debootstrap --variant=minbase bookworm "$target" http://deb.debian.org/debian >/dev/null
fi
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  for mount in proc dev; do umount "$target/$mount" || say "could not unmount $target/$mount"; done
}
trap cleanup EXIT
mount -t proc proc "$target/proc"
mount --bind /dev "$target/dev"
cp /etc/resolv.conf "$target/etc/resolv.conf"

say "the runtime stage's RUN steps"
chroot "$target" /bin/sh -ec '
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
  rm -rf /var/lib/apt/lists/*
  id hookline >/dev/null 2>&1 || useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin hookline
  mkdir -p /data
  chown hookline:hookline /data'
install -m 0755 "${CARGO_TARGET_DIR:-$ROOT/target}/release/hookline" "$target/usr/local/bin/hookline"
rm -rf "$target/srv/dashboard" && mkdir -p "$target/srv" && cp -r "$ROOT/frontend/dist" "$target/srv/dashboard"
rm -rf "$target/data/"*

# The image's ENV, USER, WORKDIR and CMD.
env_of_image=(HOOKLINE_LISTEN=0.0.0.0:8080 HOOKLINE_DATA_DIR=/data HOOKLINE_DASHBOARD_DIR=/srv/dashboard)
if curl -fsS -o /dev/null http://127.0.0.1:8080/healthz 2>/dev/null; then die "something else already answers on port 8080"; fi
say "hookline serve as the hookline user"
chroot --userspec=hookline:hookline "$target" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin \
  "${env_of_image[@]}" /bin/sh -c 'cd /data && exec hookline serve' >"$target/serve.log" 2>&1 &
# chroot, env and sh each exec the next: this pid ends up being hookline's.
server_pid=$!

healthy=0
for _ in $(seq 1 60); do
  if chroot --userspec=hookline:hookline "$target" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin \
       "${env_of_image[@]}" hookline healthcheck 2>/dev/null; then healthy=1; break; fi
  sleep 0.5
done
[ "$healthy" = 1 ] || { cat "$target/serve.log"; die "the HEALTHCHECK never passed"; }
say "HEALTHCHECK passed"
curl -fsS http://127.0.0.1:8080/healthz >/dev/null || die "the API is not reachable from outside the root"
curl -fsS http://127.0.0.1:8080/ | grep -q "<html" || die "the dashboard is not served"
owner="$(chroot "$target" stat -c %U /data/hookline.db)"
[ "$owner" = hookline ] || die "the database belongs to $owner, not hookline"
mode="$(chroot "$target" stat -c %a /data/master.key)"
[ "$mode" = 600 ] || die "master.key has mode $mode"
pid_user="$(ps -o uid= -p "$server_pid" | tr -d ' ')"
pid_command="$(ps -o args= -p "$server_pid")"
[ "$pid_user" = 10001 ] || die "hookline runs as uid $pid_user, not hookline's 10001"
say "$pid_command runs as uid $pid_user (hookline) on 0.0.0.0:8080; /data holds: $(ls "$target/data" | tr '\n' ' ')"
say "container runtime check passed"
