// Fedora koji's package tree: <koji>/packages/qemu/<ver>/<rel>/<hostarch>/<file>.rpm,
// one HTML directory index per folder.

/** Fedora's public koji package root (URLs in the lockfile point under it). */
export const DEFAULT_KOJI = 'https://kojipkgs.fedoraproject.org';

/** QEMU versions as Fedora spells them: 9.2.4, 10.0.0. */
export const VERSION_RE = /^\d+\.\d+\.\d+$/;
/** Fedora releases: 1.fc42, 0.1.rc1.fc43, 3.fc36.1. No slashes, so safe inside a URL path. */
export const RELEASE_RE = /^\d+(\.[A-Za-z0-9_+~]+)*$/;

export function buildDirUrl(koji: string, version: string, release: string, host: string): string {
  if (!VERSION_RE.test(version)) throw new Error(`malformed QEMU version "${version}" (expected like 9.2.4)`);
  if (!RELEASE_RE.test(release)) throw new Error(`malformed Fedora release "${release}" (expected like 1.fc42)`);
  return `${koji.replace(/\/+$/, '')}/packages/qemu/${version}/${release}/${host}/`;
}

export interface KojiRpm {
  /** Package name, e.g. qemu-user-static-aarch64. */
  name: string;
  /** File name in the folder. */
  file: string;
  url: string;
}

/**
 * The qemu-user-static RPMs a directory index lists for one build and host arch.
 * Debuginfo/debugsource packages are left out, and so is the empty `qemu-user-static`
 * meta package whenever the build is split into subpackages (Fedora 36 and later);
 * in older builds that one RPM is the whole set.
 */
export function selectRpms(html: string, dirUrl: string, version: string, release: string, host: string): KojiRpm[] {
  const suffix = `-${version}-${release}.${host}.rpm`;
  const files = new Set<string>();
  for (const m of html.matchAll(/href\s*=\s*"([^"]*)"/gi)) {
    const href = decodeURIComponent((m[1] ?? '').split(/[?#]/)[0] ?? '');
    const file = href.slice(href.lastIndexOf('/') + 1);
    if (file.endsWith(suffix) && /^qemu-user-static(-[a-z0-9_]+)?$/.test(file.slice(0, -suffix.length))) files.add(file);
  }
  const rpms = [...files]
    .map((file) => ({ name: file.slice(0, -suffix.length), file, url: new URL(file, dirUrl).href }))
    .filter((r) => !/-debug(info|source)$/.test(r.name));
  const split = rpms.some((r) => r.name !== 'qemu-user-static');
  return rpms.filter((r) => !split || r.name !== 'qemu-user-static').sort((a, b) => a.name.localeCompare(b.name));
}
