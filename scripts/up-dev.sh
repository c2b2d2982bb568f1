#!/usr/bin/env bash
# The main job on the embedded default stack: local file backend, no cloud account.
# The engine is a `pulumi` of the pinned release on PATH, or one built once from Go modules
# (scripts/engine.sh); the images build on the BuildKit builder scripts/dev-builder.ts provides.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(bash scripts/engine.sh):$PATH"
export PATH
mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-dev}"
export PULUMI_SKIP_UPDATE_CHECK=true

# The builder polyarch:builder names: used when it answers, else made on the host's network
# (docker-container), else a root buildkitd (lib/dev-builder.ts says which and why).
node --import tsx scripts/dev-builder.ts .

if [ ! -f qemu.lock.json ]; then
  # No lockfile yet: pin koji's newest Fedora build for the hosts every stack publishes.
  npx polyarch lock --latest --hosts x86_64,aarch64,ppc64le,s390x --out qemu.lock.json || {
    echo "error: could not pin a QEMU build from koji: commit or copy a qemu.lock.json, point at a mirror (npx polyarch lock --latest --koji URL --out qemu.lock.json), or try the fixture koji (npm run fixture-koji)" >&2
    exit 1
  }
fi
pulumi stack select dev --create --non-interactive
pulumi up --stack dev --yes "$@"
