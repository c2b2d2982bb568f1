#!/usr/bin/env bash
# The main job on the embedded default stack: local file backend, no cloud account.
# The Pulumi CLI comes from the `pulumi` npm devDependency (it fetches itself on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-dev}"
if [ ! -f qemu.lock.json ]; then
  # No lockfile yet: pin koji's newest Fedora build for the hosts every stack publishes.
  npx polyarch lock --latest --hosts x86_64,aarch64,ppc64le,s390x --out qemu.lock.json
fi
npx pulumi stack select dev --create
npx pulumi up --stack dev --yes "$@"
