// `polyarch assets`: the release assets (raw emulators, reproducible tarballs, the SBOM,
// SHA256SUMS) into a folder, from a lockfile or from one host's RPM files; a JSON listing on stdout.
// Errors are thrown as one-line Errors; the caller prints `error: <message>` and exits 1.
import path from 'node:path';
import type { Command } from 'commander';
import { buildAssets, ReleaseFolder, Tarballs, type Asset } from '../../lib/assets.ts';
import { HOST_ARCHES, parseHostArch, targetsFor, type HostArch } from '../../lib/cpus.ts';
import { emulatorsCache, extractOnce, prepareEmulators, type HostEmulators } from '../../lib/emulators.ts';
import { sha256 } from '../../lib/digest.ts';
import { extractRpms, type CheckedEmulator, type RpmFacts } from '../../lib/extract.ts';
import { DEFAULT_CACHE_DIR, readRpmSource, RpmCache, type RetryOptions } from '../../lib/fetch.ts';
import { readLock, releaseTag } from '../../lib/lock.ts';
import { addFetchOptions, fetchOptions, type FetchFlags } from './fetch-options.ts';
import { printJson } from './output.ts';

export interface AssetsOptions extends FetchFlags {
  out: string;
  lock?: string;
  hosts?: string;
  host?: string;
  cache: string;
}

/** What the command prints for each asset. */
export const listing = (assets: readonly Asset[]) => assets.map(({ name, kind, host, target, size, sha256 }) => ({ name, kind, host, target, size, sha256 }));

/**
 * Each host's emulators, extracted concurrently, and the lockfile's release tag. A cold
 * extraction offers each emulator's bytes to `tarballs` as it checks them.
 */
async function fromLock(o: AssetsOptions & { lock: string }, fetching: RetryOptions, tarballs: Tarballs): Promise<{ tag: string; hosts: Promise<HostEmulators>[] }> {
  const lock = await readLock(o.lock);
  const pinned = HOST_ARCHES.filter((h) => lock.hosts[h]);
  const hosts = o.hosts ? [...new Set(o.hosts.split(',').map((h) => parseHostArch(h.trim())))] : pinned;
  const missing = hosts.filter((h) => !lock.hosts[h]);
  if (missing.length > 0) throw new Error(`${o.lock} pins no RPMs for host(s) ${missing.join(', ')} (it has: ${pinned.join(', ')})`);
  const onEmulator = (e: CheckedEmulator) => tarballs.offer(e);
  return { tag: releaseTag(lock), hosts: hosts.map((h) => prepareEmulators(lock, h, { cacheDir: o.cache, emulatorsDir: emulatorsCache(o.cache), targets: 'all', fetch: fetching, onEmulator })) };
}

/**
 * One host's emulators from RPM files or URLs, extracted into the cache under a key of the
 * RPMs' digests (as lockfile extractions are) and reused from there: no temp folder outside
 * the cache for a killed run to leave behind.
 */
async function fromRpms(host: HostArch, rpms: readonly string[], cacheDir: string, fetching: RetryOptions): Promise<HostEmulators> {
  const cache = new RpmCache(cacheDir);
  const inputs = await Promise.all(
    rpms.map(async (r) => {
      const buf = await readRpmSource(r, cache, fetching);
      return { label: r, url: r, buf, sha256: sha256(buf) };
    }),
  );
  const digests = inputs.map((i) => i.sha256);
  const key = sha256([...digests].sort().join('\n')).slice(0, 16);
  const dir = path.resolve(emulatorsCache(cacheDir), `${host}-files-${key}`);
  const { manifest, rpms: facts } = await extractOnce(dir, async (into) => {
    const extracted = await extractRpms(inputs, into);
    const foreign = extracted.manifest.find((m) => !m.rpm.endsWith(`.${host}`));
    if (foreign) throw new Error(`${foreign.rpm} is not built for host ${host}; give one host's RPMs with --host`);
    return extracted;
  }, digests);
  const wanted = new Set(targetsFor(host, 'all').map((c) => c.emulator));
  // The folder is keyed by the RPMs' digests: the same bytes given by another path or URL share it.
  const given = new Map(inputs.map((i) => [i.sha256, i.url]));
  return { host, dir, emulators: manifest.filter((m) => wanted.has(m.cpu)), rpms: facts.map((r) => ({ ...r, url: given.get(r.sha256) ?? r.url })) };
}

/**
 * The release tag of RPM files given without a lockfile: v<version>-1, the number a lockfile
 * pinning this QEMU version anew gets (lib/lock.ts nextReleaseNumber). One QEMU version only.
 */
function filesReleaseTag(h: HostEmulators): string {
  const builds = [...new Set(h.rpms.map((r) => `${r.version}-${r.release}`))].sort();
  if (builds.length !== 1) throw new Error(`the RPMs are of several QEMU builds (${builds.join(', ')}); give one build's RPMs`);
  const [r] = h.rpms as [RpmFacts];
  return releaseTag({ qemu: { version: r.version, release: r.release }, releaseNumber: 1 });
}

/** Builds and writes the assets; returns them as listed on stdout. */
export async function runAssets(rpms: readonly string[], o: AssetsOptions): Promise<Asset[]> {
  if (o.lock && rpms.length > 0) throw new Error('give either --lock FILE or --host H with RPM files, not both');
  if (o.lock && o.host) throw new Error('--host goes with RPM files; with --lock, choose hosts with --hosts');
  if (!o.lock && o.hosts) throw new Error('--hosts goes with --lock');
  if (!o.lock && (!o.host || rpms.length === 0)) throw new Error('no input: give --lock FILE, or --host H and RPM files');
  const fetching = fetchOptions(o);
  const cacheDir = path.join(o.cache, 'assets');
  const tarballs = new Tarballs(cacheDir);
  let tag: string;
  let hosts: (HostEmulators | Promise<HostEmulators>)[];
  if (o.lock) ({ tag, hosts } = await fromLock({ ...o, lock: o.lock }, fetching, tarballs));
  else {
    const host = await fromRpms(parseHostArch(o.host!), rpms, o.cache, fetching);
    [tag, hosts] = [filesReleaseTag(host), [host]];
  }
  // Each file is copied into the output folder as soon as it is ready, while the rest is made.
  const folder = new ReleaseFolder(o.out);
  let assets: Asset[];
  try {
    ({ assets } = await buildAssets(hosts, { cacheDir, releaseTag: tag, tarballs, onAsset: (a) => folder.put(a) }));
  } catch (e) {
    // The build's own error is the one to report; the folder is put back as it was.
    await folder.abandon(e).catch(() => {});
    throw e;
  }
  await folder.finish(assets);
  return assets;
}

export function assetsCommand(program: Command): void {
  addFetchOptions(program
    .command('assets')
    .description('write the release assets (emulators, reproducible tarballs, SBOM, SHA256SUMS) into a folder; print a JSON listing')
    .argument('[rpms...]', 'RPM files or http(s) URLs of one host arch (with --host)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--lock <file>', 'build from the RPMs this lockfile pins (fetched and verified)')
    .option('--hosts <list>', `with --lock: comma-separated host arches (default: every host the lockfile pins; ${HOST_ARCHES.join(', ')})`)
    .option('--host <arch>', 'with RPM files: the host arch they are built for')
    .option('--cache <dir>', 'RPM cache, keyed by sha256; extracted emulators and tarballs are kept inside it', DEFAULT_CACHE_DIR))
    .action(async (rpms: string[], o: AssetsOptions) => {
      printJson(listing(await runAssets(rpms, o)));
    });
}
