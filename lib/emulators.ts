// The emulators a stack publishes for one host arch, extracted once and reused. Every
// component (release assets, images, build hosts) reads them from here, so the program
// computes concrete digests at evaluation time and previews show real diffs.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod/mini';
import { targetsFor, type HostArch } from './cpus.ts';
import { emulatorFile, nevra, type CheckedEmulator, type Extraction, type ManifestEntry, type OnEmulator, type RpmFacts } from './extract.ts';
import type { RetryOptions } from './fetch.ts';
import { extractLockedRpms, type Lock } from './lock.ts';
import { hashStamped, remember, stampOf } from './known-digests.ts';
import { makeStage, NoSpaceError, publishStage, removeStage, sweepStages, writeError, writeWhole } from './out-dir.ts';
import './schema.ts';
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
  /** Every RPM the emulators were extracted from (all the host's pins), for the SBOM. */
  rpms: RpmFacts[];
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
  /**
   * Told of each published emulator (one of `targets`) as extraction checks its bytes, when the
   * RPMs are extracted now: lib/assets.ts Tarballs.offer starts its tarball from those bytes.
   */
  onEmulator?: OnEmulator;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

const MANIFEST = 'manifest.json';
/** The facts of the RPMs extracted (RpmFacts), written before the manifest. */
const RPMS = 'rpms.json';

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

const RpmFactsSchema = z.strictObject({
  name: z.string().check(z.regex(/^[A-Za-z0-9._+-]+$/)),
  epoch: z.optional(z.int().check(z.minimum(0))),
  version: z.string().check(z.regex(/^[A-Za-z0-9._+~^]+$/)),
  release: z.string().check(z.regex(/^[A-Za-z0-9._+~^]+$/)),
  arch: z.string().check(z.regex(/^[A-Za-z0-9_]+$/)),
  license: z.optional(z.string().check(z.maxLength(65536))),
  buildTime: z.optional(z.int().check(z.minimum(0))),
  url: z.string().check(z.minLength(1)),
  sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
  size: z.int().check(z.positive()),
  // RPM files given by hand may hold none (a meta package); a lockfile pins none such.
  emulators: z.array(z.string().check(z.regex(/^[a-z0-9_]+$/))),
});

/**
 * The RPM facts recorded beside a manifest, when they are sound and account for it exactly:
 * every emulator named by the package that holds it, every package's emulators there, and (when
 * `digests` is given) exactly those RPMs. An extraction made before rpms.json existed has none.
 */
async function cachedRpms(dir: string, manifest: readonly ManifestEntry[], digests?: readonly string[]): Promise<RpmFacts[] | undefined> {
  const text = await fs.readFile(path.join(dir, RPMS), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let rpms: RpmFacts[];
  try {
    const r = z.array(RpmFactsSchema).safeParse(JSON.parse(text));
    if (!r.success) return undefined;
    rpms = r.data;
  } catch {
    return undefined; // damaged facts cost a fresh extraction, like a damaged manifest
  }
  const holder = new Map<string, string>();
  for (const r of rpms) for (const cpu of r.emulators) holder.set(cpu, nevra(r));
  const all = rpms.flatMap((r) => r.emulators);
  if (all.length !== holder.size || all.length !== manifest.length || !manifest.every((m) => holder.get(m.cpu) === m.rpm)) return undefined;
  if (digests && [...digests].sort().join(' ') !== rpms.map((r) => r.sha256).sort().join(' ')) return undefined;
  return rpms;
}

/**
 * The complete extraction in `dir` (its manifest and RPM facts), or undefined when it is
 * missing, damaged or made before RPM facts were recorded. A damaged emulator is named through
 * `say`, as the reason it is extracted again. `digests`: the sha256 of every RPM it must come from.
 */
export async function cachedExtraction(dir: string, say?: (message: string) => void, digests?: readonly string[]): Promise<Extraction | undefined> {
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
  const rpms = await cachedRpms(dir, manifest, digests);
  if (!rpms) {
    say?.(`${path.join(dir, RPMS)}: missing or not the RPMs of this extraction (a folder made by an older polyarch has none); extracting again from the pinned RPMs`);
    return undefined;
  }
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
  return { manifest, rpms };
}

/** Marks the extraction in `dir` complete: RPM facts, then the manifest last, so its presence means the folder is whole. */
export async function recordExtraction(dir: string, { manifest, rpms }: Extraction): Promise<void> {
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
  await writeWhole(path.join(dir, RPMS), JSON.stringify(rpms, null, 2));
  await writeWhole(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2));
}

/** Staging folders of extractOnce, beside the extraction folders. */
export const EMULATORS_STAGE_PREFIX = '.polyarch-emulators-';

/**
 * The extraction in `dir`, made by `extract` when there is none yet. `extract`
 * writes into a staging folder beside `dir` that is renamed to `dir` whole, manifest and all:
 * runs sharing a cache never see or remove each other's half-made folders, and the first to
 * finish wins while the others take its folder. A full disk is reported naming the cache folder.
 * `digests`: the sha256 of every RPM it comes from (see cachedExtraction).
 */
export async function extractOnce(dir: string, extract: (into: string) => Promise<Extraction>, digests?: readonly string[]): Promise<Extraction> {
  const ready = await cachedExtraction(dir, undefined, digests);
  if (ready) return ready;
  const parent = path.dirname(dir);
  await fs.mkdir(parent, { recursive: true }).catch((e: unknown) => {
    throw writeError(e, parent, path.basename(dir));
  });
  await sweepStages(parent, EMULATORS_STAGE_PREFIX);
  const stage = await makeStage(parent, EMULATORS_STAGE_PREFIX);
  try {
    let extraction: Extraction;
    try {
      extraction = await extract(stage);
      await recordExtraction(stage, extraction);
    } catch (e) {
      // The stage's own name means nothing to a user: name the cache folder instead (a full
      // disk while caching the RPMs already names the RPM cache).
      const inStage = e instanceof NoSpaceError && (e.folder === stage || e.folder.startsWith(`${stage}${path.sep}`));
      throw inStage ? new NoSpaceError(parent, path.join(path.basename(dir), path.relative(stage, e.folder), e.file)) : e;
    }
    // Another run may get there first: its folder is as good as ours (a damaged one, from a
    // run of an older version killed mid-way or edited by hand, is replaced).
    return await publishStage(stage, dir, extraction, () => cachedExtraction(dir, undefined, digests), 'extraction');
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
  const pins = lock.hosts[host] ?? [];
  const digests = pins.map((r) => r.sha256);
  // Emulator names, not CPU names: an alias such as i486 runs on qemu-i386.
  const wanted = new Set(targetsFor(host, o.targets).map((c) => c.emulator));
  const offer = o.onEmulator;
  let extraction = await cachedExtraction(dir, o.progress, digests);
  if (extraction) {
    o.progress?.(`${host}: ${extraction.manifest.length} emulators already extracted`);
  } else {
    const start = performance.now();
    o.progress?.(`${host}: fetching and extracting ${pins.length} RPMs (${mb(pins.reduce((n, r) => n + r.size, 0))}) ...`);
    const onEmulator = offer && ((e: CheckedEmulator) => (wanted.has(e.cpu) ? offer(e) : undefined));
    extraction = await extractOnce(dir, (into) => extractLockedRpms(lock, host, o.cacheDir, into, o.fetch, onEmulator), digests);
    o.progress?.(`${host}: ${extraction.manifest.length} emulators (${mb(extraction.manifest.reduce((n, m) => n + m.size, 0))}) extracted in ${seconds(start)}`);
  }
  const { manifest } = extraction;
  // The folder is keyed by the pins' names and digests, not their URLs: a lockfile that moved to
  // another koji mirror shares it, so each RPM's URL is taken from this lockfile.
  const url = new Map(pins.map((r) => [r.sha256, r.url]));
  const rpms = extraction.rpms.map((r) => ({ ...r, url: url.get(r.sha256) ?? r.url }));
  // Named targets are taken as given, so only 'all' leaves a family emulator out.
  const family = new Set(o.targets === 'all' ? targetsFor(host, 'all', { ignoreFamily: true }).map((c) => c.emulator).filter((e) => !wanted.has(e)) : []);
  return { host, dir, emulators: manifest.filter((m) => wanted.has(m.cpu)), ownFamily: manifest.filter((m) => family.has(m.cpu)), rpms };
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
 * `onEmulator`: told of each published emulator a cold extraction checks (PrepareOptions).
 */
export async function prepareStackEmulators(config: StackEmulatorConfig, lock: Lock, progress?: (message: string) => void, fetch?: RetryOptions, onEmulator?: OnEmulator): Promise<HostEmulators[]> {
  const missing = config.hosts.filter((h) => !lock.hosts[h]);
  if (missing.length > 0) throw new UserError(`${config.lockFile} pins no RPMs for host(s) ${missing.join(', ')}; run polyarch lock with --hosts ${config.hosts.join(',')}`);
  const targets = config.targets.includes('all') ? 'all' : config.targets;
  return Promise.all(config.hosts.map((host) => prepareEmulators(lock, host, { cacheDir: config.cacheDir, emulatorsDir: emulatorsCache(config.cacheDir), targets, progress, fetch, onEmulator })));
}
