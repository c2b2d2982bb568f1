#!/bin/sh
# The baseline bench/assets.bench.ts holds `polyarch assets` to: one host's release assets made
# the way a skilled engineer would in shell on the same cores, from RPMs already on disk (so it
# is not charged the download). Two jobs at a time in each step:
#   1. per RPM: sha256sum (the pin check), then rpm2cpio | cpio into one tree;
#   2. per emulator: a raw copy, `tar | libdeflate-gzip -6` (native libdeflate, Debian's
#      libdeflate-tools), and the host-prefixed tarball as a hard link of the unprefixed one;
#   3. sha256sum over every file into SHA256SUMS.
# Usage: native-pipeline.sh OUT HOST EMULATORS RPM...
#   OUT: a new folder (OUT.tree is made beside it); HOST: its prefix (x86_64); EMULATORS: space-separated CPU names to publish.
set -eu
out=$1 host=$2 emulators=$3
shift 3
jobs=${BENCH_JOBS:-2}
# The unpacked RPMs beside the output, left for the caller to remove.
tree=$out.tree
mkdir -p "$out" "$tree"

printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh -c 'sha256sum "$1" >/dev/null && rpm2cpio "$1" | (cd "$0" && cpio -idm --quiet)' "$tree" {}

# Largest first, so the last job to start is a short one.
cd "$tree/usr/bin"
for cpu in $emulators; do echo "qemu-$cpu-static"; done | xargs ls -S | xargs -P "$jobs" -I{} sh -c '
  cp "$1" "$0/$1" &&
  tar -cf - --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0755 "$1" | libdeflate-gzip -6 > "$0/$1.tar.gz" &&
  ln "$0/$1.tar.gz" "$0/$2_$1.tar.gz"' "$out" {} "$host"

cd "$out"
sha256sum -- * > "$tree/SHA256SUMS" && mv "$tree/SHA256SUMS" SHA256SUMS
