#!/usr/bin/env bash
# SPDX's own validator, `pyspdxtools` from the spdx-tools package, for checking the release's
# SBOM: installed once into a Python venv outside the repository,
# ${XDG_CACHE_HOME:-~/.cache}/polyarch/spdx-tools-<version>, from the exact versions and hashes in
# scripts/spdx-tools.requirements.txt.
#
#   export PATH="$(bash scripts/spdx-tools.sh):$PATH"
#   pyspdxtools -i sbom.spdx.json     # exit 0: valid; exit 1: the problems, on stderr
#
# Prints the folder holding `pyspdxtools` (and nothing else, so it can go first on PATH) on
# stdout; progress goes to stderr. Needs Python 3.11 or newer with its venv module (Debian:
# python3-venv), and the package index the first time. The venv is made again when the
# requirements file or the Python it was made with changes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
reqs="$root/scripts/spdx-tools.requirements.txt"
say() { echo "spdx-tools: $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

version="$(sed -n 's/^spdx-tools==\([^ \\]*\).*/\1/p' "$reqs")"
[ -n "$version" ] || die "$reqs does not pin spdx-tools==<version>"
python="${POLYARCH_PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "no $python: spdx-tools needs Python 3.11 or newer with its venv module (Debian: apt-get install python3-venv)"
found="$("$python" -c 'import sys; print(sys.executable, "%d.%d.%d" % sys.version_info[:3])')" || die "$python does not run"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "spdx-tools $version is pinned for Python 3.11 or newer, $python is ${found##* }"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/polyarch"
dir="$cache/spdx-tools-$version"
stamp="$(sha256sum <"$reqs" | cut -c1-16) $found"
mkdir -p "$cache"

# One maker at a time: a venv holds its own absolute path, so it is made where it stays, and
# the stamp, written last, says it is whole.
exec 9>"$cache/.spdx-tools.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ "$(cat "$dir/.complete" 2>/dev/null)" != "$stamp" ]; then
  start=$SECONDS
  say "installing spdx-tools $version into $dir (first time only) ..."
  rm -rf "$dir"
  "$python" -m venv "$dir/venv" >&2 || die "$python -m venv failed (Debian: apt-get install python3-venv)"
  "$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --require-hashes -r "$reqs" >&2 ||
    die "installing spdx-tools $version failed (see above)"
  mkdir "$dir/bin"
  ln -s ../venv/bin/pyspdxtools "$dir/bin/pyspdxtools"
  "$dir/bin/pyspdxtools" --help >/dev/null || die "the installed pyspdxtools does not run"
  echo "$stamp" >"$dir/.complete"
  say "installed spdx-tools $version in $((SECONDS - start)) s"
fi
echo "$dir/bin"
