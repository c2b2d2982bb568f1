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

/** Folder names an index lists (hrefs ending in `/`), without the parent link. */
function subfolders(html: string): string[] {
  const names = new Set<string>();
  for (const m of html.matchAll(/href\s*=\s*"([^"?#]*)\/"/gi)) {
    const name = decodeURIComponent(m[1] ?? '').split('/').pop() ?? '';
    if (name && name !== '..' && name !== '.') names.add(name);
  }
  return [...names];
}

const numbers = (s: string) => s.split('.').map(Number);
function compareNumbers(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** A finished Fedora build: `<n>.fc<NN>` with an optional `.<m>` rebuild suffix; no rc, eln or el builds. */
export const STABLE_RELEASE_RE = /^(\d+)\.fc(\d+)(?:\.(\d+))?$/;

/** Newest first: the Fedora number decides, then the build number, then a rebuild suffix. */
export function compareReleases(a: string, b: string): number {
  const key = (r: string) => {
    const [, n, fc, rebuild] = STABLE_RELEASE_RE.exec(r) ?? [];
    return [Number(fc), Number(n), Number(rebuild ?? 0)];
  };
  return compareNumbers(key(b), key(a));
}

/** Newest first: QEMU versions compared number by number (10.0.0 after 9.2.4). */
export const compareVersions = (a: string, b: string) => compareNumbers(numbers(b), numbers(a));

export interface Build {
  version: string;
  release: string;
}

/**
 * The newest finished qemu build in koji that has qemu-user-static RPMs for every one of
 * `hosts`. Versions are tried newest first; within a version, stable Fedora releases newest
 * first. `fetch` reads one directory index.
 */
export async function newestBuild(koji: string, hosts: readonly string[], fetch: (url: string) => Promise<string>): Promise<Build> {
  const root = `${koji.replace(/\/+$/, '')}/packages/qemu/`;
  const versions = subfolders(await fetch(root)).filter((v) => VERSION_RE.test(v)).sort(compareVersions);
  for (const version of versions) {
    const releases = subfolders(await fetch(`${root}${version}/`)).filter((r) => STABLE_RELEASE_RE.test(r)).sort(compareReleases);
    for (const release of releases) {
      const listings = await Promise.all(hosts.map(async (h) => {
        const dir = buildDirUrl(koji, version, release, h);
        // A host koji never built for is a 404; anything else is a real failure.
        const html = await fetch(dir).catch((e: unknown) => {
          if ((e as { status?: number }).status === 404) return '';
          throw e;
        });
        return selectRpms(html, dir, version, release, h).length > 0;
      }));
      if (listings.every(Boolean)) return { version, release };
    }
  }
  throw new Error(`${root}: no finished Fedora build of qemu has qemu-user-static RPMs for ${hosts.join(', ')}`);
}
