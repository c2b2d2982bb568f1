// The release notes: what the release holds (hosts, targets), how to download and check a
// file, and every checksum. The GitHub release's body; kept apart from the files themselves.
import { hostTarballName, SBOM_FILE, sha256sums, SUMS_FILE, UNPREFIXED_HOST, type Asset } from './assets.ts';
import type { HostEmulators } from './emulators.ts';

export interface NotesInput {
  /** Release tag, e.g. v9.2.4-1. */
  tag: string;
  qemu: { version: string; release: string };
  hosts: readonly HostEmulators[];
  assets: readonly Asset[];
  /** Where the release's files download from (`<this>/<asset name>`), for the usage section; a placeholder when unset. */
  downloadBase?: string;
}

/** The release body: what it holds (hosts, targets), how to use it, and its checksums. */
export function releaseNotes(n: NotesInput): string {
  const base = n.downloadBase ?? '<release>';
  const example = n.hosts.find((h) => h.host === UNPREFIXED_HOST)?.emulators[0]?.cpu ?? n.hosts[0]?.emulators[0]?.cpu ?? 'aarch64';
  const sums = n.assets.filter((a) => a.kind !== 'checksums');
  return [
    `QEMU ${n.qemu.version} user-mode static emulators, from Fedora's qemu-user-static ${n.qemu.version}-${n.qemu.release}.`,
    '',
    '| host | targets |',
    '| --- | --- |',
    ...n.hosts.map((h) => `| ${h.host} | ${h.emulators.map((e) => e.cpu).join(', ')} |`),
    '',
    '## Usage',
    '',
    `\`<host>_qemu-<target>-static.tar.gz\` holds one file, \`qemu-<target>-static\`, for a \`<host>\` machine. The ${UNPREFIXED_HOST} host's files also go by the unprefixed names \`qemu-<target>-static\` and \`qemu-<target>-static.tar.gz\`.`,
    ...(n.assets.some((a) => a.kind === 'sbom') ? ['', `\`${SBOM_FILE}\` is the release's SBOM (SPDX 2.3): which Fedora RPM each emulator came from, and every file's checksums.`] : []),
    '',
    '```sh',
    `curl -fsSLO ${base}/${hostTarballName(UNPREFIXED_HOST, example)}`,
    `curl -fsSLO ${base}/${SUMS_FILE}`,
    `sha256sum -c --ignore-missing ${SUMS_FILE}`,
    `sudo tar -xzf ${hostTarballName(UNPREFIXED_HOST, example)} -C /usr/bin`,
    '```',
    '',
    `## ${SUMS_FILE}`,
    '',
    '```',
    sha256sums(sums).trimEnd(),
    '```',
    '',
  ].join('\n');
}
