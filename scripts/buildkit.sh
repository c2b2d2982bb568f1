#!/usr/bin/env bash
# A BuildKit builder for the dev stack: `bash scripts/buildkit.sh [NAME]` makes sure the buildx
# builder NAME (default polyarch-dev) answers, else starts a buildkitd on this host and
# registers it as a buildx `remote` builder of that name.
#
# The last of up:dev's builders (lib/dev-builder.ts): for machines whose Docker cannot start
# the privileged container of a docker-container builder with --driver-opt network=host (some
# sandboxes: "unable to apply caps"). The builder must share the host's network to reach the dev
# registry on localhost:5000, and the docker-build provider cannot use the Docker engine's own
# BuildKit. buildkitd and buildx come from scripts/engine.sh (pinned Go modules) and must be on
# PATH; buildkitd needs root and runc.
set -euo pipefail
name="${1:-polyarch-dev}"
state="${POLYARCH_BUILDKIT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/polyarch/buildkit}"
socket="$state/buildkitd.sock"
say() { echo "buildkit: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

if buildx inspect "$name" --bootstrap >/dev/null 2>&1; then
  say "builder $name answers"
  exit 0
fi
command -v buildkitd >/dev/null || die "no buildkitd on PATH: scripts/engine.sh builds it where Go 1.26+ is installed; put its folder first on PATH (export PATH=\"\$(bash scripts/engine.sh):\$PATH\")"
command -v runc >/dev/null || die "buildkitd needs runc (Debian and Ubuntu: apt-get install runc)"
[ "$(id -u)" -eq 0 ] || die "buildkitd needs root: run this as root, or name a builder of your own that reaches localhost in polyarch:builder"

mkdir -p "$state"
# A daemon of an earlier run that is still alive is reused; a dead one (reboot, crash) leaves
# its socket and pid file behind, which are cleared before a new one starts.
running() { [ -f "$state/buildkitd.pid" ] && kill -0 "$(cat "$state/buildkitd.pid")" 2>/dev/null && [ -S "$socket" ]; }
if ! running; then
  rm -f "$socket" "$state/buildkitd.pid"
  cat >"$state/buildkitd.toml" <<EOF
root = "$state/root"
[grpc]
  address = ["unix://$socket"]
[worker.oci]
  enabled = true
  binary = "$(command -v runc)"
[worker.containerd]
  enabled = false
EOF
  say "starting buildkitd (log: $state/buildkitd.log)"
  nohup buildkitd --config "$state/buildkitd.toml" >"$state/buildkitd.log" 2>&1 &
  echo $! >"$state/buildkitd.pid"
  for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
  [ -S "$socket" ] || die "buildkitd did not start: $(tail -n 3 "$state/buildkitd.log" | tr '\n' ' ')"
fi
buildx rm "$name" >/dev/null 2>&1 || true
buildx create --name "$name" --driver remote "unix://$socket" >/dev/null
buildx inspect "$name" --bootstrap >/dev/null || die "the builder $name does not answer (buildkitd log: $state/buildkitd.log)"
say "builder $name is up (buildkitd on $socket; stop it with: kill \$(cat $state/buildkitd.pid))"
