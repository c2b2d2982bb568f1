// The emulators a stack publishes for one host arch, extracted once and reused. Every
// component (release assets, images, build hosts) reads them from here, so the program
// computes concrete digests at evaluation time and previews show real diffs.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { targetsFor, type HostArch } from './cpus.ts';
import { emulatorFile, type ManifestEntry } from './extract.ts';
import type { RetryOptions } from './fetch.ts';
import { extractLocked, type Lock } from './lock.ts';
import { hashStamped, remember, stampOf } from './known-digests.ts';
import { makeStage, NoSpaceError, publishStage, removeStage, sweepStages, writeError, writeWhole } from './out-dir.ts';
import { UserError } from './user-error.ts';

/** One host's extracted emulators, limited to the stack's targets. */
/** Where extracted emulators are kept: a folder of the RPM cache. */
export const emulatorsCache = (cacheDir: string) => path.join(cacheDir, 'emulators');

export interface HostEmulators {
  host: HostArch;
  /** Folder holding `qemu-<cpu>-static` files (and `binfmt.d/`). */
  dir: string;
  /** One entry per published emulator, sorted by cpu. */
  emulators: ManifestEntry[];
  /**
   * Emulators of the host's own family that targets 'all' leaves out (x86_64's qemu-i386):
   * not published, but build hosts with ignoreFamily register them.
   */
  ownFamily?: ManifestEntry[];
}

export interface PrepareOptions {
  /** RPM cache, keyed by sha256. */
  cacheDir: string;
  /** Where extracted emulators are kept, one folder per host and lockfile entry set. */
  emulatorsDir: string;
  /** 'all' or target CPU names (aliases resolve to their emulator). */
  targets: 'all' | readonly string[];
  /** Told what is being done, so a cold run of minutes is never silent (the program logs it). */
  progress?: (message: string) => void;
  /** How RPMs are downloaded (timeouts, progress of each download). */
  fetch?: RetryOptions;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

const MANIFEST = 'manifest.json';

/** Folder name for one host's pinned RPMs: a change to any pin is a new folder. */
export function extractionKey(lock: Lock, host: HostArch): string {
  const pins = (lock.hosts[host] ?? []).map((r) => `${r.sha256} ${r.name}`).sort().join('\n');
  return `${host}-${createHash('sha256').update(pins).digest('hex').slice(0, 16)}`;
}

/** Each emulator file's stamp (lib/known-digests.ts) when its bytes were hashed: name -> stamp. */
const STAMPS = 'stamps.json';

async function readStamps(dir: string): Promise<Record<string, unknown>> {
  const text = await fs.readFile(path.join(dir, STAMPS), 'utf8').catch(() => '{}');
  try {
    const stamps = JSON.parse(text) as unknown;
    return stamps && typeof stamps === 'object' ? (stamps as Record<string, unknown>) : {};
  } catch {
    return {}; // damaged stamps cost a fresh extraction, nothing more
  }
}

/**
 * The manifest of a complete extraction in `dir`, or undefined when it is missing or damaged.
 * A damaged emulator is named through `say`, as the reason it is extracted again.
 */
export async function cachedManifest(dir: string, say?: (message: string) => void): Promise<ManifestEntry[] | undefined> {
  const text = await fs.readFile(path.join(dir, MANIFEST), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let manifest: ManifestEntry[];
  try {
    manifest = JSON.parse(text) as ManifestEntry[];
  } catch {
    return undefined; // a damaged manifest means a fresh extraction, not a failed program
  }
  // Entries name their files as extraction does, so a damaged one reaches no other path.
  const sound = (m: ManifestEntry) => typeof m === 'object' && m !== null && /^[a-z0-9_]+$/.test(m.cpu) && m.file === emulatorFile(m.cpu) && Number.isSafeInteger(m.size) && /^[0-9a-f]{64}$/.test(m.sha256);
  if (!Array.isArray(manifest) || !manifest.every(sound)) return undefined;
  // A file is trusted only by the stamp it had when extraction hashed it, which any write
  // changes (a same-size one with its mtime put back too: the stamp holds the ctime). A file
  // whose stamp changed is not hashed and accepted: the manifest's digest is worth no more than
  // the cache it sits in, so its bytes come again from the RPMs the lockfile pins.
  const stamps = await readStamps(dir);
  for (const m of manifest) {
    const file = path.join(dir, m.file);
    const st = await fs.lstat(file, { bigint: true }).catch(() => undefined);
    if (!st || st.size !== BigInt(m.size)) {
      say?.(`${file}: ${st ? `${st.size} bytes` : 'missing'}, extracted as ${m.size} bytes; extracting again`);
      return undefined;
    }
    // A recorded stamp names the very inode that was hashed, so it needs no type check.
    const stamp = stampOf(st);
    if (stamps[m.file] !== stamp) {
      say?.(`${file}: not the file extracted (its stamp changed: written, linked or replaced since); extracting again from the pinned RPMs`);
      return undefined;
    }
    remember(stamp, m.sha256);
  }
  return manifest;
}

/** Marks the extraction in `dir` complete; written last, so its presence means the folder is whole. */
export async function recordManifest(dir: string, manifest: readonly ManifestEntry[]): Promise<void> {
  // Stamps first, of bytes checked against the manifest (extraction already hashed them, so this
  // is a look-up): what later runs trust instead of hashing.
  const stamps: Record<string, string> = {};
  for (const m of manifest) {
    const file = path.join(dir, m.file);
    const got = await hashStamped(file);
    if (got.sha256 !== m.sha256) throw new Error(`${file}: sha256 ${got.sha256}, the manifest says ${m.sha256}`);
    stamps[m.file] = got.stamp;
  }
  await writeWhole(path.join(dir, STAMPS), JSON.stringify(stamps));
  await writeWhole(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2));
}

/** Staging folders of extractOnce, beside the extraction folders. */
export const EMULATORS_STAGE_PREFIX = '.polyarch-emulators-';

/**
 * The manifest of the extraction in `dir`, made by `extract` when there is none yet. `extract`
 * writes into a staging folder beside `dir` that is renamed to `dir` whole, manifest and all:
 * runs sharing a cache never see or remove each other's half-made folders, and the first to
 * finish wins while the others take its folder. A full disk is reported naming the cache folder.
 */
export async function extractOnce(dir: string, extract: (into: string) => Promise<ManifestEntry[]>): Promise<ManifestEntry[]> {
  const ready = await cachedManifest(dir);
  if (ready) return ready;
  const parent = path.dirname(dir);
  await fs.mkdir(parent, { recursive: true }).catch((e: unknown) => {
    throw writeError(e, parent, path.basename(dir));
  });
  await sweepStages(parent, EMULATORS_STAGE_PREFIX);
  const stage = await makeStage(parent, EMULATORS_STAGE_PREFIX);
  try {
    let manifest: ManifestEntry[];
    try {
      manifest = await extract(stage);
      await recordManifest(stage, manifest);
    } catch (e) {
      // The stage's own name means nothing to a user: name the cache folder instead (a full
      // disk while caching the RPMs already names the RPM cache).
      const inStage = e instanceof NoSpaceError && (e.folder === stage || e.folder.startsWith(`${stage}${path.sep}`));
      throw inStage ? new NoSpaceError(parent, path.join(path.basename(dir), path.relative(stage, e.folder), e.file)) : e;
    }
    // Another run may get there first: its folder is as good as ours (a damaged one, from a
    // run of an older version killed mid-way or edited by hand, is replaced).
    return await publishStage(stage, dir, manifest, () => cachedManifest(dir), 'extraction');
  } finally {
    await removeStage(stage);
  }
}

/**
 * Extracts (or reuses) the emulators the lockfile pins for `host`, and returns those among
 * the stack's targets that the host's RPMs hold.
 */
export async function prepareEmulators(lock: Lock, host: HostArch, o: PrepareOptions): Promise<HostEmulators> {
  const dir = path.resolve(o.emulatorsDir, extractionKey(lock, host));
  let manifest = await cachedManifest(dir, o.progress);
  const rpms = lock.hosts[host] ?? [];
  if (manifest) {
    o.progress?.(`${host}: ${manifest.length} emulators already extracted`);
  } else {
    const start = performance.now();
    o.progress?.(`${host}: fetching and extracting ${rpms.length} RPMs (${mb(rpms.reduce((n, r) => n + r.size, 0))}) ...`);
    manifest = await extractOnce(dir, (into) => extractLocked(lock, host, o.cacheDir, into, o.fetch));
    o.progress?.(`${host}: ${manifest.length} emulators (${mb(manifest.reduce((n, m) => n + m.size, 0))}) extracted in ${seconds(start)}`);
  }
  // Emulator names, not CPU names: an alias such as i486 runs on qemu-i386.
  const wanted = new Set(targetsFor(host, o.targets).map((c) => c.emulator));
  // Named targets are taken as given, so only 'all' leaves a family emulator out.
  const family = new Set(o.targets === 'all' ? targetsFor(host, 'all', { ignoreFamily: true }).map((c) => c.emulator).filter((e) => !wanted.has(e)) : []);
  return { host, dir, emulators: manifest.filter((m) => wanted.has(m.cpu)), ownFamily: manifest.filter((m) => family.has(m.cpu)) };
}

/** What preparing a stack's emulators needs from its config (a subset of StackConfig). */
export interface StackEmulatorConfig {
  lockFile: string;
  hosts: readonly HostArch[];
  targets: readonly string[];
  cacheDir: string;
}

/**
 * Every host's emulators for one stack, as the program and the CLI both compute them:
 * each host must be pinned by the lockfile; extractions live under `<cacheDir>/emulators`.
 */
export async function prepareStackEmulators(config: StackEmulatorConfig, lock: Lock, progress?: (message: string) => void, fetch?: RetryOptions): Promise<HostEmulators[]> {
  const missing = config.hosts.filter((h) => !lock.hosts[h]);
  if (missing.length > 0) throw new UserError(`${config.lockFile} pins no RPMs for host(s) ${missing.join(', ')}; run polyarch lock with --hosts ${config.hosts.join(',')}`);
  const targets = config.targets.includes('all') ? 'all' : config.targets;
  return Promise.all(config.hosts.map((host) => prepareEmulators(lock, host, { cacheDir: config.cacheDir, emulatorsDir: emulatorsCache(config.cacheDir), targets, progress, fetch })));
}
