#!/usr/bin/env bash
# The Pulumi engine this project runs on: the `pulumi` CLI, the Node.js language host, the
# dynamic-provider host and the docker-build provider plugin, in one folder that goes first
# on PATH (Pulumi uses plugins found on PATH before its plugin cache).
#
#   export PATH="$(bash scripts/engine.sh):$PATH"
#
# Prints that folder on stdout (progress goes to stderr). When a `pulumi` of the pinned
# release is already on PATH (GitHub runners, users who installed Pulumi), it is used as is
# and nothing is built. Otherwise everything is built with Go from the modules pinned in
# engine/go.mod and engine/docker-build/go.mod, once, into a cache outside the repository
# keyed by those pins ($POLYARCH_ENGINE_CACHE, default ~/.cache/polyarch/engine).
# POLYARCH_BUILD_ENGINE=1 builds even when a pulumi is on PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
engine="$root/engine"
say() { echo "engine: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

pin() { sed -n "s#^[[:space:]]*$1 \(v[0-9][^ ]*\).*#\1#p" "$2" | head -1; }
cli_version="$(pin github.com/pulumi/pulumi/pkg/v3 "$engine/go.mod")"
docker_build_version="$(pin github.com/pulumi/pulumi-docker-build "$engine/docker-build/go.mod")"
[ -n "$cli_version" ] && [ -n "$docker_build_version" ] || die "engine/go.mod or engine/docker-build/go.mod lost its pinned version"

# The engine may be newer than the SDK the program uses, never older; the docker-build plugin
# must be the release the npm SDK expects.
sdk_version="$(node -p 'require(process.argv[1]).packages["node_modules/@pulumi/pulumi"].version' "$root/package-lock.json")"
sdk_docker_build="$(node -p 'require(process.argv[1]).packages["node_modules/@pulumi/docker-build"].version' "$root/package-lock.json")"
older="$(printf '%s\n%s\n' "${cli_version#v}" "$sdk_version" | sort -V | head -1)"
[ "$older" = "$sdk_version" ] || die "engine/go.mod pins pulumi ${cli_version}, older than @pulumi/pulumi ${sdk_version} in package-lock.json"
[ "v$sdk_docker_build" = "$docker_build_version" ] || die "engine/docker-build/go.mod pins ${docker_build_version}, package-lock.json has @pulumi/docker-build ${sdk_docker_build}"

if [ -z "${POLYARCH_BUILD_ENGINE:-}" ] && command -v pulumi >/dev/null 2>&1; then
  found="$(pulumi version 2>/dev/null || true)"
  if [ "$found" = "$cli_version" ]; then
    say "using $(command -v pulumi) ($found)"
    dirname "$(command -v pulumi)"
    exit 0
  fi
  [ -z "$found" ] || say "ignoring $(command -v pulumi) ($found): this project pins $cli_version"
fi

command -v go >/dev/null 2>&1 || die "no pulumi $cli_version on PATH and no Go to build it: install Pulumi $cli_version, or Go 1.26+ (then run this again)"
key="$(cat "$0" "$engine"/go.mod "$engine"/go.sum "$engine"/pulumi-language-nodejs/*.go \
  "$engine"/docker-build/go.mod "$engine"/docker-build/go.sum $(find "$engine/docker-build/schema-only" -type f | sort) \
  <(go env GOVERSION GOOS GOARCH) | sha256sum | cut -c1-16)"
cache="${POLYARCH_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polyarch/engine}"
bin="$cache/pulumi-${cli_version}-docker-build-${docker_build_version}-$key"
if [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-resource-docker-build" ] && [ -x "$bin/pulumi-language-nodejs" ]; then
  say "cached: $bin"
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=readonly
build() { # name, module dir, package, ldflags
  local start=$SECONDS
  say "building $1 (first time only, a few minutes) ..."
  (cd "$2" && go build -trimpath -ldflags "$4" -o "$work/$1" "$3") || die "building $1 failed (see above)"
  say "built $1 in $((SECONDS - start)) s"
}
build pulumi "$engine" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
  "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version"
build pulumi-language-nodejs "$engine" ./pulumi-language-nodejs "-X main.version=${cli_version#v}"
build pulumi-resource-docker-build "$engine/docker-build" github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build \
  "-X github.com/pulumi/pulumi-docker-build/provider.Version=${docker_build_version#v}"

# The dynamic-provider host: as in Pulumi's distribution, @pulumi/pulumi's own
# cmd/dynamic-provider run by node from the project folder (the engine starts it there).
cat > "$work/pulumi-resource-pulumi-nodejs" <<'EOF'
#!/bin/sh
exec node ./node_modules/@pulumi/pulumi/cmd/dynamic-provider "$@"
EOF
chmod 755 "$work/pulumi-resource-pulumi-nodejs"

rm -rf "$bin"
mv "$work" "$bin"
trap - EXIT
say "ready: $bin"
echo "$bin"
