#!/usr/bin/env bash
# The Pulumi engine this project runs on: the `pulumi` CLI with Pulumi's own Node.js language
# host and the dynamic-provider host beside it, in one folder that goes first on PATH, and the
# docker-build and command provider plugins, installed into the plugin cache of $PULUMI_HOME
# (~/.pulumi). Beside them, BuildKit's `buildkitd` and the `buildx` CLI at the releases the
# docker-build plugin is built against, for machines without a BuildKit builder of their own,
# and Sigstore's `cosign`, which signs the release's checksums, SBOM and images.
#
#   export PATH="$(bash scripts/engine.sh):$PATH"
#
# Prints that folder on stdout (progress goes to stderr). A `pulumi` on PATH at or newer than
# @pulumi/pulumi in package-lock.json (GitHub runners, users who installed Pulumi) is used as
# is: it has its language host and fetches its plugins itself (BuildKit's tools and cosign are
# still built when Go is there; without Go, cosign must come from elsewhere, e.g. the
# sigstore/cosign-installer action in a workflow). Otherwise every part is built
# with Go, once, into a cache outside the repository ($POLYARCH_ENGINE_CACHE, default
# ~/.cache/polyarch/engine), one folder per part keyed by that part's own inputs, so changing
# one pin rebuilds one part:
#   pulumi                  engine/go.mod (Go modules)
#   pulumi-language-nodejs  Pulumi's own sources at that release, from $POLYARCH_UPSTREAM
#   command plugin          pulumi-command's sources at @pulumi/command's release, from there too
#   docker-build plugin     engine/docker-build/go.mod
#   buildkitd, buildx       engine/buildkit/go.mod
#   cosign                  engine/cosign/go.mod
# The module proxy refuses the language host's and the command plugin's modules, so their
# unmodified upstream sources are read from $POLYARCH_UPSTREAM (default ../shared/upstream
# beside the checkout). Without them, they come from the official distribution instead: the
# language host beside a `pulumi` on PATH, the command plugin by `pulumi plugin install`.
# POLYARCH_BUILD_ENGINE=1 builds even when a pulumi is on PATH (the tests do).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
engine="$root/engine"
upstream="${POLYARCH_UPSTREAM:-$root/../shared/upstream}"
say() { echo "engine: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

pin() { sed -n "s#^[[:space:]]*$1 \(v[0-9][^ ]*\).*#\1#p" "$2" | head -1; }
cli_version="$(pin github.com/pulumi/pulumi/pkg/v3 "$engine/go.mod")"
docker_build_version="$(pin github.com/pulumi/pulumi-docker-build "$engine/docker-build/go.mod")"
cosign_version="$(pin github.com/sigstore/cosign/v2 "$engine/cosign/go.mod")"
if [ -z "$cli_version" ] || [ -z "$docker_build_version" ] || [ -z "$cosign_version" ]; then die "engine/go.mod, engine/docker-build/go.mod or engine/cosign/go.mod lost its pinned version"; fi

# The engine may be newer than the SDK the program uses, never older; each plugin must be the
# release its npm SDK expects.
lock_version() { node -p 'require(process.argv[1]).packages["node_modules/" + process.argv[2]].version' "$root/package-lock.json" "$1"; }
sdk_version="$(lock_version @pulumi/pulumi)"
docker_build_sdk="$(lock_version @pulumi/docker-build)"
command_version="v$(lock_version @pulumi/command)"
at_least() { [ "$(printf '%s\n%s\n' "${1#v}" "${2#v}" | sort -V | head -1)" = "${2#v}" ]; }
at_least "$cli_version" "$sdk_version" || die "engine/go.mod pins pulumi ${cli_version}, older than @pulumi/pulumi ${sdk_version} in package-lock.json"
[ "v$docker_build_sdk" = "$docker_build_version" ] || die "engine/docker-build/go.mod pins ${docker_build_version}, package-lock.json has @pulumi/docker-build ${docker_build_sdk}"

cache="${POLYARCH_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polyarch/engine}"
mkdir -p "$cache"

# A pulumi on PATH at or newer than the SDK is used as is; only BuildKit's tools and cosign are
# built then, and the folder printed holds them and a link to that pulumi.
path_pulumi=""
if [ -z "${POLYARCH_BUILD_ENGINE:-}" ] && command -v pulumi >/dev/null 2>&1; then
  found="$(pulumi version 2>/dev/null || true)"
  if [[ "$found" =~ ^v?[0-9]+\.[0-9]+\.[0-9]+ ]] && at_least "$found" "$sdk_version"; then
    path_pulumi="$(command -v pulumi)"
    say "using $path_pulumi ($found)"
  else
    say "not using $(command -v pulumi) (${found:-no version}): @pulumi/pulumi $sdk_version needs that release or a newer one"
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -n "$path_pulumi" ]; then
    say "no Go: buildkitd and buildx not built (the dev stack then needs a builder of its own, see scripts/buildkit.sh)"
    say "no Go: cosign $cosign_version not built (signing a stack then needs cosign on PATH, e.g. from the sigstore/cosign-installer action)"
    dirname "$path_pulumi"
    exit 0
  fi
  die "no pulumi $sdk_version or newer on PATH and no Go to build it: install Pulumi, or Go 1.26+ and run this again"
fi
go_env="$(go env GOVERSION GOOS GOARCH)"

# Digest of files and folders (their relative paths and bytes) and the Go toolchain: a part's key.
key_of() {
  local f
  {
    for f in "$@"; do
      if [ -d "$f" ]; then (cd "$f" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); else sha256sum <"$f"; fi
    done
    echo "$go_env"
  } | sha256sum | cut -c1-16
}

# part NAME KEY BUILDER: the cached folder of one part, built by BUILDER into a scratch folder
# (its one argument) and renamed into place whole, so a killed build leaves nothing half-made.
part() {
  local dir="$cache/$1-$2" work start=$SECONDS
  if [ ! -f "$dir/.complete" ]; then
    work="$(mktemp -d "$cache/.build-XXXXXX")" && chmod 755 "$work"
    # shellcheck disable=SC2064 # the folder is fixed now
    trap "rm -rf '$work'" EXIT
    say "building $1 (first time only, minutes) ..."
    "$3" "$work" || die "building $1 failed (see above)"
    touch "$work/.complete"
    rm -rf "$dir"
    mv "$work" "$dir"
    trap - EXIT
    say "built $1 in $((SECONDS - start)) s"
  fi
  touch "$dir"
  echo "$dir"
}

gobuild() { # output, module folder, package, ldflags
  (cd "$2" && GOFLAGS="${GOFLAGS_EXTRA:--mod=readonly} -buildvcs=false" go build -trimpath -ldflags "$4" -o "$1" "$3")
}
build_cli() {
  gobuild "$1/pulumi" "$engine" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version"
}
# Pulumi's own language host: its go.mod points pkg/v3 and sdk/v3 at the monorepo's folders,
# so a scratch copy points them at the same release from the module proxy instead.
build_language_host() {
  cp -r "$language_src" "$1/src" && chmod -R u+w "$1/src"
  (cd "$1/src" && go mod edit -dropreplace=github.com/pulumi/pulumi/pkg/v3 -dropreplace=github.com/pulumi/pulumi/sdk/v3 \
    "-require=github.com/pulumi/pulumi/pkg/v3@$cli_version" "-require=github.com/pulumi/pulumi/sdk/v3@$cli_version") &&
    GOFLAGS_EXTRA=-mod=mod gobuild "$1/pulumi-language-nodejs" "$1/src" . "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version" &&
    rm -rf "$1/src"
}
build_command() {
  cp -r "$command_src" "$1/src" && chmod -R u+w "$1/src" &&
    gobuild "$1/pulumi-resource-command" "$1/src/provider" ./cmd/pulumi-resource-command \
      "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=${command_version#v}" &&
    rm -rf "$1/src"
}
build_docker_build() {
  gobuild "$1/pulumi-resource-docker-build" "$engine/docker-build" github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build \
    "-X github.com/pulumi/pulumi-docker-build/provider.Version=${docker_build_version#v}"
}
build_buildkit() {
  gobuild "$1/buildkitd" "$engine/buildkit" github.com/moby/buildkit/cmd/buildkitd "" &&
    gobuild "$1/buildx" "$engine/buildkit" github.com/docker/buildx/cmd/buildx ""
}
# cosign reports the version its release builds stamp in; a module build would say "devel".
build_cosign() {
  gobuild "$1/cosign" "$engine/cosign" github.com/sigstore/cosign/v2/cmd/cosign "-X sigs.k8s.io/release-utils/version.gitVersion=$cosign_version"
}

buildkit="$(part buildkit "$(key_of "$engine/buildkit/go.mod" "$engine/buildkit/go.sum")" build_buildkit)"
cosign="$(part "cosign-$cosign_version" "$(key_of "$engine/cosign/go.mod" "$engine/cosign/go.sum")" build_cosign)"
links=("$buildkit/buildkitd" "$buildkit/buildx" "$cosign/cosign")
if [ -n "$path_pulumi" ]; then
  links+=("$path_pulumi")
else
  cli="$(part "pulumi-$cli_version" "$(key_of "$engine/go.mod" "$engine/go.sum")" build_cli)"
  links+=("$cli/pulumi")
  language_src="$upstream/pulumi-language-nodejs-$cli_version"
  official=""
  ! command -v pulumi >/dev/null 2>&1 || official="$(dirname "$(readlink -f "$(command -v pulumi)")")/pulumi-language-nodejs"
  if [ -d "$language_src" ]; then
    links+=("$(part "language-nodejs-$cli_version" "$(key_of "$language_src")" build_language_host)/pulumi-language-nodejs")
  elif [ -n "$official" ] && [ -x "$official" ] && [ "$("$official" -version 2>/dev/null || true)" = "$cli_version" ]; then
    links+=("$official")
  else
    die "Pulumi's Node.js language host ${cli_version} is not served by the Go module proxy: put its sources in $language_src (see shared/upstream/README.md), or put Pulumi ${cli_version} on PATH"
  fi
  docker_build="$(part "docker-build-$docker_build_version" "$(key_of "$engine/docker-build")" build_docker_build)"
  command_src="$upstream/pulumi-command-$command_version"
  command_plugin=""
  [ ! -d "$command_src" ] || command_plugin="$(part "command-$command_version" "$(key_of "$command_src")" build_command)/pulumi-resource-command"
fi

# The folder printed: every part and the dynamic-provider host, named by what they come from.
# Parts are hard links, not symlinks: the CLI looks for its plugins beside its real path and
# warns on every run about one it finds on PATH instead. A pulumi from PATH is a symlink, so it
# finds its own language host next to its real path.
bin="$cache/bin-$(printf '%s\n' hardlinks "${links[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$bin/.complete" ]; then
  work="$(mktemp -d "$cache/.bin-XXXXXX")" && chmod 755 "$work"
  for l in "${links[@]}"; do
    if [ "$l" = "$path_pulumi" ]; then ln -s "$l" "$work/"; else ln "$l" "$work/" 2>/dev/null || cp -p "$l" "$work/"; fi
  done
  # The dynamic-provider host: as in Pulumi's distribution, @pulumi/pulumi's own
  # cmd/dynamic-provider run by node from the project folder, where the engine starts it.
  printf '%s\n' '#!/bin/sh' 'exec node ./node_modules/@pulumi/pulumi/cmd/dynamic-provider "$@"' >"$work/pulumi-resource-pulumi-nodejs"
  chmod 755 "$work/pulumi-resource-pulumi-nodejs"
  touch "$work/.complete"
  rm -rf "$bin"
  mv "$work" "$bin"
fi
touch "$bin"

# Plugins go where the engine looks for them at their version (a plugin on PATH would be found
# too, but the engine warns about it on every run); a rebuilt one replaces the installed one.
install_plugin() { # name, version, built binary or "" to download it
  local home="${PULUMI_HOME:-$HOME/.pulumi}"
  local installed="$home/plugins/resource-$1-$2/pulumi-resource-$1"
  if [ -n "$3" ]; then
    cmp -s "$3" "$installed" && return 0
    say "installing the $1 plugin $2 into $home"
    "$bin/pulumi" plugin install resource "$1" "$2" --file "$3" --reinstall >&2 || die "could not install the $1 plugin into $home"
  elif [ ! -x "$installed" ]; then
    say "no sources for the $1 plugin here: downloading $2 with pulumi plugin install"
    "$bin/pulumi" plugin install resource "$1" "$2" >&2 ||
      die "the $1 plugin $2 is neither built here (no $command_src) nor downloadable"
  fi
}
if [ -z "$path_pulumi" ]; then
  install_plugin docker-build "$docker_build_version" "$docker_build/pulumi-resource-docker-build"
  install_plugin command "$command_version" "$command_plugin"
fi

# Parts and folders no run has used for two weeks go (a part is up to a few hundred MB).
find "$cache" -mindepth 1 -maxdepth 1 -mtime +14 -exec rm -rf {} + 2>/dev/null || true
echo "$bin"
