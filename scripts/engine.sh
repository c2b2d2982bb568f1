#!/usr/bin/env bash
# The Pulumi engine this project runs on: the `pulumi` CLI with the Node.js language host and
# the dynamic-provider host beside it, in one folder that goes first on PATH, and the
# docker-build provider plugin, installed into the plugin cache of $PULUMI_HOME (~/.pulumi).
# Beside them, BuildKit's `buildkitd` and the `buildx` CLI at the releases the docker-build
# plugin is built against, for machines without a BuildKit builder of their own.
#
#   export PATH="$(bash scripts/engine.sh):$PATH"
#
# Prints that folder on stdout (progress goes to stderr). When a `pulumi` of the pinned
# release is already on PATH (GitHub runners, users who installed Pulumi), it is used as is
# and nothing is built: that engine fetches its plugins itself. Otherwise everything is built
# with Go from the modules pinned in engine/go.mod and engine/docker-build/go.mod, once, into
# a cache outside the repository keyed by those pins ($POLYARCH_ENGINE_CACHE, default
# ~/.cache/polyarch/engine). POLYARCH_BUILD_ENGINE=1 builds even when a pulumi is on PATH.
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
lock_version() { node -p 'require(process.argv[1]).packages["node_modules/" + process.argv[2]].version' "$root/package-lock.json" "$1"; }
sdk_version="$(lock_version @pulumi/pulumi)"
sdk_docker_build="$(lock_version @pulumi/docker-build)"
older="$(printf '%s\n%s\n' "${cli_version#v}" "$sdk_version" | sort -V | head -1)"
[ "$older" = "$sdk_version" ] || die "engine/go.mod pins pulumi ${cli_version}, older than @pulumi/pulumi ${sdk_version} in package-lock.json"
[ "v$sdk_docker_build" = "$docker_build_version" ] || die "engine/docker-build/go.mod pins ${docker_build_version}, package-lock.json has @pulumi/docker-build ${sdk_docker_build}"

# A pulumi of the pinned release on PATH is used as is (it fetches its plugins itself); only
# BuildKit's tools are built then, and the folder printed holds them and a link to that pulumi.
path_pulumi=""
if [ -z "${POLYARCH_BUILD_ENGINE:-}" ] && command -v pulumi >/dev/null 2>&1; then
  found="$(pulumi version 2>/dev/null || true)"
  if [ "$found" = "$cli_version" ]; then
    path_pulumi="$(command -v pulumi)"
    say "using $path_pulumi ($found)"
  else
    [ -z "$found" ] || say "not using $(command -v pulumi) ($found): this project pins $cli_version"
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -n "$path_pulumi" ]; then
    say "no Go: buildkitd and buildx not built (the dev stack then needs a builder of its own, see scripts/buildkit.sh)"
    dirname "$path_pulumi"
    exit 0
  fi
  die "no pulumi $cli_version on PATH and no Go to build it: install Pulumi $cli_version, or Go 1.26+ and run this again"
fi
inputs=("$0" "$engine"/buildkit/go.mod "$engine"/buildkit/go.sum)
[ -n "$path_pulumi" ] || inputs+=("$engine"/go.mod "$engine"/go.sum "$engine"/pulumi-language-nodejs/*.go \
  "$engine"/docker-build/go.mod "$engine"/docker-build/go.sum)
key="$({ cat "${inputs[@]}"; [ -n "$path_pulumi" ] || find "$engine/docker-build/schema-only" -type f -print0 | sort -z | xargs -0 cat; go env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-16)"
cache="${POLYARCH_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polyarch/engine}"
if [ -n "$path_pulumi" ]; then
  dir="$cache/buildkit-$key"
else
  dir="$cache/pulumi-${cli_version}-docker-build-${docker_build_version}-$key"
fi
bin="$dir/bin"
plugin="$dir/plugins/pulumi-resource-docker-build"

# The plugin goes where the engine looks for docker-build at that version (a plugin on PATH
# would be found too, but the engine warns about it on every run); a rebuilt one replaces it.
install_plugin() {
  [ -z "$path_pulumi" ] || return 0
  local home="${PULUMI_HOME:-$HOME/.pulumi}"
  cmp -s "$plugin" "$home/plugins/resource-docker-build-${docker_build_version}/pulumi-resource-docker-build" && return 0
  say "installing the docker-build plugin into $home"
  "$bin/pulumi" plugin install resource docker-build "$docker_build_version" --file "$plugin" --reinstall >&2 ||
    die "could not install the docker-build plugin into $home"
}
# The folder printed: with a pulumi from PATH, a link to it beside BuildKit's tools (that
# pulumi finds its own language hosts next to its real path).
finish() {
  # Builds of other pins that no run has used for two weeks go (each is about 500 MB).
  touch "$dir"
  find "$cache" -mindepth 1 -maxdepth 1 -type d \( -name 'pulumi-v*' -o -name 'buildkit-*' \) -mtime +14 \
    -exec rm -rf {} + 2>/dev/null || true
  [ -z "$path_pulumi" ] || ln -sf "$path_pulumi" "$bin/pulumi"
  install_plugin
  echo "$bin"
  exit 0
}

complete() {
  [ -x "$bin/buildkitd" ] && [ -x "$bin/buildx" ] || return 1
  [ -n "$path_pulumi" ] || { [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-language-nodejs" ] && [ -x "$plugin" ]; }
}
if complete; then
  say "cached: $dir"
  finish
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/plugins"
export GOFLAGS=-mod=readonly
build() { # output path under the build folder, module folder, package, ldflags
  local start=$SECONDS name
  name="$(basename "$1")"
  say "building $name (first time only, minutes) ..."
  (cd "$2" && go build -trimpath -ldflags "$4" -o "$work/$1" "$3") || die "building $name failed (see above)"
  say "built $name in $((SECONDS - start)) s"
}
if [ -z "$path_pulumi" ]; then
  build bin/pulumi "$engine" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version"
  build bin/pulumi-language-nodejs "$engine" ./pulumi-language-nodejs "-X main.version=${cli_version#v}"
  build plugins/pulumi-resource-docker-build "$engine/docker-build" \
    github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build \
    "-X github.com/pulumi/pulumi-docker-build/provider.Version=${docker_build_version#v}"
fi

build bin/buildkitd "$engine/buildkit" github.com/moby/buildkit/cmd/buildkitd ""
build bin/buildx "$engine/buildkit" github.com/docker/buildx/cmd/buildx ""

# The dynamic-provider host: as in Pulumi's distribution, @pulumi/pulumi's own
# cmd/dynamic-provider run by node from the project folder, where the engine starts it.
printf '%s\n' '#!/bin/sh' 'exec node ./node_modules/@pulumi/pulumi/cmd/dynamic-provider "$@"' \
  >"$work/bin/pulumi-resource-pulumi-nodejs"
chmod 755 "$work/bin/pulumi-resource-pulumi-nodejs"

rm -rf "$dir"
mv "$work" "$dir"
trap - EXIT
say "ready: $dir"
finish
