#!/usr/bin/env bash
# .ci/run as the workflows run it: as root in a fresh, privileged Debian bookworm container, on
# a clean clone of this repository's main branch. The image needs no container registry: a
# minimal root is made with debootstrap from the Debian archive this machine's apt sources
# name (read when the script runs), then `podman import`ed; later runs reuse it.
#
#   sudo bash scripts/ci-in-container.sh                 # install, typecheck, lint, npm test
#   sudo POLYARCH_CI_STOP_BEFORE_TESTS=1 bash scripts/ci-in-container.sh   # all but npm test
#
# Go, Node and Rust come from this machine, mounted read-only: the Go that `go` on PATH (or
# /usr/local/go) is, this machine's Node 20 with its npm and headers, and the Rust toolchain
# whose cargo fetches the native modules' C sources. (The workflows get the same from
# actions/setup-go, actions/setup-node and actions-rust-lang/setup-rust-toolchain; Debian 12's
# own nodejs is 18, older than package.json allows.) The engine cache (~/.cache/polyarch/engine) and npm's cache are
# mounted read-write, so the engine is not rebuilt when its pins are unchanged.
#
# Environment: POLYARCH_CI_BRANCH (default main); POLYARCH_CI_REBUILD=1 makes a new image;
# POLYARCH_CI_DIR (default ~/.cache/polyarch/ci-container) holds the podman configuration and
# storage, and the container's /tmp and /var/lib/docker (emptied before each run: the tests'
# podman and dockerd mount overlays there, which podman's own overlay root cannot hold).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "ci-in-container: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: debootstrap and podman run --privileged need it"
command -v podman >/dev/null || die "podman is missing: apt-get install podman runc"

dir="${POLYARCH_CI_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/polyarch/ci-container}"
image=localhost/polyarch-ci:bookworm
branch="${POLYARCH_CI_BRANCH:-main}"
suite=bookworm

# podman with configuration and storage of its own: runc and cgroupfs (crun fails on these
# machines' cgroups), and nothing lands in the machine's own container storage.
mkdir -p "$dir"
cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
EOF
cat >"$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf"

# The first archive URI this machine's apt sources give for the suite, in either format:
# one-line (`deb [options] URI suite components`) or deb822 stanzas (`URIs:`, `Suites:`).
archive() {
  shopt -s nullglob
  local lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list) stanzas=(/etc/apt/sources.list.d/*.sources)
  {
    for f in "${lists[@]}"; do
      [ -f "$f" ] || continue
      sed -n -E "s/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+${suite}[[:space:]].*/\2/p" "$f"
    done
    [ ${#stanzas[@]} -eq 0 ] || awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; deb = 0; has = 0; on = 1
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^#/) continue
          if (line ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line); split(line, u, /[ \t]+/); uri = u[1] }
          else if (line ~ /^Types:/) { deb = (line " ") ~ /[ \t]deb[ \t]/ }
          else if (line ~ /^Suites:/) { has = (line " ") ~ ("[ \t]" suite "[ \t]") }
          else if (line ~ /^Enabled:[ \t]*no/) on = 0
        }
        if (uri != "" && deb && has && on) print uri
      }' "${stanzas[@]}"
  } | head -1
}

if [ -n "${POLYARCH_CI_REBUILD:-}" ] || ! podman image exists "$image"; then
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  mirror="$(archive)"
  [ -n "$mirror" ] || die "no apt source for $suite in /etc/apt/sources.list or /etc/apt/sources.list.d: the image is made from this machine's Debian archive"
  root="$dir/root"
  rm -rf "$root"
  start=$SECONDS
  say "debootstrap $suite from $mirror into $root (a few minutes; log: $dir/debootstrap.log) ..."
  # git for the clean clone, ca-certificates for npm's registry; .ci/run installs the rest.
  debootstrap --variant=minbase --include=git,ca-certificates "$suite" "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
    die "debootstrap failed: see the end of $dir/debootstrap.log"
  rm -f "$root"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
  rm -rf "$root"
  say "image $image made in $((SECONDS - start)) s"
fi

# Go and Node from this machine.
go_root="$( (command -v go >/dev/null && go env GOROOT) || echo /usr/local/go)"
[ -x "$go_root/bin/go" ] || die "no Go here (go on PATH or /usr/local/go): the engine is built with it"
for tool in node npm; do command -v "$tool" >/dev/null || die "no $tool on PATH: install Node 20.19 or later with npm"; done
node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
[ -f "$npm_dir/bin/npm-cli.js" ] || die "npm is not laid out as expected: no $npm_dir/bin/npm-cli.js"
# Node's headers beside it, and a Rust toolchain whose cargo fetches libdeflate's source: npm ci
# builds the native compressor with them (scripts/native.mjs), as on the workflow's runners.
node_headers="$(dirname "$(dirname "$node_bin")")/include/node"
[ -f "$node_headers/node_api.h" ] || die "no Node headers in $node_headers: the native compressor is built against them"
command -v cargo >/dev/null || export PATH="$PATH:$HOME/.cargo/bin"
rust_root="$( (command -v rustc >/dev/null && rustc --print sysroot) || true)"
[ -x "$rust_root/bin/cargo" ] || die "no Rust toolchain with cargo here (rustup's or Debian's): npm ci fetches libdeflate's source with it"
# cargo inside trusts the CAs this machine trusts: a TLS-inspecting proxy's CA is in this
# machine's bundle, not in the image's, and npm's cache is mounted but cargo's is not.
host_ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
[ -f "$host_ca" ] || die "no CA bundle at $host_ca: cargo inside needs one (set SSL_CERT_FILE)"
engine_cache="${POLYARCH_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polyarch/engine}"
npm_cache="$(npm config get cache)"
mkdir -p "$engine_cache" "$npm_cache"

# A fresh /tmp and /var/lib/docker for every run, on this machine's own file system.
rm -rf "$dir/tmp" "$dir/docker"
mkdir -p "$dir/tmp" "$dir/docker"
chmod 1777 "$dir/tmp"

# Run inside: a clean clone of the branch, then .ci/run, timed. (Expanded inside, not here.)
# shellcheck disable=SC2016
inside='
ln -s ../lib/node_modules/npm/bin/npm-cli.js /opt/node/bin/npm
ln -s ../lib/node_modules/npm/bin/npx-cli.js /opt/node/bin/npx
export PATH="/opt/node/bin:/usr/local/go/bin:/opt/rust/bin:$PATH"
# Where GitHub checks out in container jobs: outside /root (0700), since tests run parts as nobody.
git clone --quiet --no-local --branch "$POLYARCH_CI_BRANCH" /src /__w/qemu-user-static/qemu-user-static
cd /__w/qemu-user-static/qemu-user-static
echo "ci-in-container: $(git log -1 --format="%h %s"), node $(node --version), $(go version)" >&2
start=$(date +%s)
rc=0
bash .ci/run || rc=$?
echo "ci-in-container: .ci/run exited $rc after $(( $(date +%s) - start )) s" >&2
exit $rc
'
say "running .ci/run on a clean clone of $branch in a fresh privileged container ..."
# Host network: the container installs from the same archive and registry this machine uses
# (the tests' own services listen on loopback, so run this when no other tests do).
podman run --rm --privileged --network host --hostname polyarch-ci \
  -v "$repo:/src:ro" \
  -v "$go_root:/usr/local/go:ro" \
  -v "$node_bin:/opt/node/bin/node:ro" \
  -v "$npm_dir:/opt/node/lib/node_modules/npm:ro" \
  -v "$node_headers:/opt/node/include/node:ro" \
  -v "$rust_root:/opt/rust:ro" \
  -v "$host_ca:/opt/host-ca.crt:ro" -e CARGO_HTTP_CAINFO=/opt/host-ca.crt \
  -v "$engine_cache:/root/.cache/polyarch/engine" \
  -v "$npm_cache:/root/.npm" \
  -v "$dir/tmp:/tmp" \
  -v "$dir/docker:/var/lib/docker" \
  -e POLYARCH_CI_BRANCH="$branch" \
  -e POLYARCH_CI_STOP_BEFORE_TESTS="${POLYARCH_CI_STOP_BEFORE_TESTS:-}" \
  "$image" bash -euo pipefail -c "$inside"
