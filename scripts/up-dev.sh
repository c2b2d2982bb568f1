#!/usr/bin/env bash
# The main job on the embedded default stack: local file backend, no cloud account.
# The engine is a `pulumi` of the pinned release on PATH, or one built once from Go modules
# (scripts/engine.sh); the images build on the BuildKit builder scripts/buildkit.sh provides.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(bash scripts/engine.sh):$PATH"
export PATH
mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-dev}"
export PULUMI_SKIP_UPDATE_CHECK=true

docker info >/dev/null 2>&1 ||
  { echo "error: no Docker engine answers: start one (sudo systemctl start docker, or sudo dockerd &) and run this again" >&2; exit 1; }
bash scripts/buildkit.sh "$(sed -n 's/^ *polyarch:builder: *//p' Pulumi.dev.yaml)"

if [ ! -f qemu.lock.json ]; then
  # No lockfile yet: pin koji's newest Fedora build for the hosts every stack publishes.
  npx polyarch lock --latest --hosts x86_64,aarch64,ppc64le,s390x --out qemu.lock.json || {
    echo "error: could not pin a QEMU build from koji: commit or copy a qemu.lock.json, point at a mirror (npx polyarch lock --latest --koji URL --out qemu.lock.json), or try the fixture koji (npm run fixture-koji)" >&2
    exit 1
  }
fi
pulumi stack select dev --create --non-interactive
pulumi up --stack dev --yes "$@"
