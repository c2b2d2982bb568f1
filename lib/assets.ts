// The release assets: for every host H and target T, `qemu-T-static.tar.gz` as
// `H_qemu-T-static.tar.gz`, plus the raw `qemu-T-static` and the unprefixed tarball for the
// x86_64 host (the names existing download URLs point at), plus the SBOM `sbom.spdx.json`
// (lib/sbom.ts) and `SHA256SUMS` over every file.
// Tarballs are built once per emulator digest and kept in a cache keyed by that digest and the
// tarball recipe, so a second run with the same lockfile compresses nothing. The cache also
// keeps each tarball's and emulator's SHA1, which the SBOM needs, so a warm run reads no file.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import PQueue from 'p-queue';
import type { HostArch } from './cpus.ts';
import { deflateBackend, deflateWorkers, LIBDEFLATE_RELEASE } from './deflate-pool.ts';
import type { HostEmulators } from './emulators.ts';
import { emulatorFile, type CheckedEmulator } from './extract.ts';
import { copyNew, dropOutDir, keepOutDir, makeOutDir, makeStage, outputError, removeStage, sweepStages, sweepTemps, writeError, writeWhole } from './out-dir.ts';
import { reproducibleTarball, TARBALL_RECIPE } from './tarball.ts';
import { sha256 } from './digest.ts';
import { digestOf, hashStamped, remember, stampFile, stampOf } from './known-digests.ts';
import { SBOM_FILE, spdxSbom, type SbomFile, type SbomHost } from './sbom.ts';
import { onMain, waited } from './timeline.ts';

export { SBOM_FILE };

/** The host whose assets also go by unprefixed names. */
export const UNPREFIXED_HOST: HostArch = 'x86_64';
export const SUMS_FILE = 'SHA256SUMS';

export type AssetKind = 'emulator' | 'tarball' | 'checksums' | 'sbom';

/** One file of the release. */
export interface Asset {
  /** Name on the release, e.g. `aarch64_qemu-x86_64-static.tar.gz`. */
  name: string;
  kind: AssetKind;
  /** Host arch the emulator runs on (not set for SHA256SUMS and the SBOM). */
  host?: HostArch;
  /** Target CPU the emulator runs programs for (not set for SHA256SUMS and the SBOM). */
  target?: string;
  /** Absolute path of the bytes: the extracted emulator, or a file in the asset cache. */
  file: string;
  size: number;
  sha256: string;
  contentType: string;
}

export interface BuiltAssets {
  /** Every asset, sorted by name (byte order), the SBOM and SHA256SUMS included. */
  assets: Asset[];
  /** Tarballs compressed by this run. */
  compressed: number;
  /** Tarballs taken from the cache. */
  reused: number;
}

export interface BuildOptions {
  /** Asset cache: tarballs keyed by emulator digest and recipe, and SHA256SUMS and SBOM files. */
  cacheDir: string;
  /** The release tag the assets are published under (e.g. v9.2.4-1, lib/lock.ts releaseTag): the SBOM names it. */
  releaseTag: string;
  /** Told how the tarballs went (compressed or reused, bytes, time); the program logs it. */
  progress?: (message: string) => void;
  /**
   * The run's tarballs, when extraction offers them the emulators' bytes as it checks them
   * (PrepareOptions.onEmulator); they must be kept in this cacheDir. Default: a new one.
   */
  tarballs?: Tarballs;
  /**
   * Told of each asset as soon as its bytes are ready (the raw emulators at once, a tarball when
   * it is made), before the SBOM and SHA256SUMS: ReleaseFolder.put starts copying it.
   */
  onAsset?: (a: Asset) => void;
}

export const tarballName = (target: string) => `${emulatorFile(target)}.tar.gz`;
export const hostTarballName = (host: HostArch, target: string) => `${host}_${tarballName(target)}`;

const CONTENT_TYPE: Record<AssetKind, string> = { emulator: 'application/octet-stream', tarball: 'application/gzip', checksums: 'text/plain', sbom: 'application/spdx+json' };
const sha1 = (data: Buffer | string) => createHash('sha1').update(data).digest('hex');
const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** `sha256sum` format: one `<hex>  <name>` line per asset, sorted by name. */
export function sha256sums(assets: readonly Pick<Asset, 'name' | 'sha256'>[]): string {
  return [...assets].sort(byName).map((a) => `${a.sha256}  ${a.name}\n`).join('');
}

interface TarballJob {
  key: string;
  entry: string;
  /** The extracted emulator, when the bytes are to be read from disk (not offered in memory). */
  source?: string;
  size: number;
  sha256: string;
}

interface CachedTarball {
  file: string;
  size: number;
  sha256: string;
  /** The tarball's SHA1 and its emulator's, for the SBOM (SPDX wants a SHA1 of every file). */
  sha1: string;
  emulatorSha1: string;
}

/** The metadata beside a cached tarball; written last, so its presence means the tarball is complete. */
const writeMeta = (dir: string, job: TarballJob, t: CachedTarball, stamp: string | undefined) =>
  writeWhole(path.join(dir, `${job.key}.json`), `${JSON.stringify({ entry: job.entry, emulatorSha256: job.sha256, emulatorSha1: t.emulatorSha1, recipe: TARBALL_RECIPE, size: t.size, sha256: t.sha256, sha1: t.sha1, stamp })}\n`);

/**
 * The cache entry for one tarball, trusted only while it is the very file the run that made it
 * wrote and hashed: its stamp (which holds the ctime, so a same-size write with its mtime put
 * back still shows) must be the one recorded. Anything else is a miss, and the tarball is made
 * again from the emulator, whose digest is in its key. An entry made before the SHA1s were kept
 * gets them once, from its bytes and its emulator's.
 */
async function cachedTarball(dir: string, job: TarballJob): Promise<CachedTarball | undefined> {
  const file = path.join(dir, `${job.key}.tar.gz`);
  type Meta = { size: number; sha256: string; sha1?: unknown; emulatorSha1?: unknown; stamp?: unknown };
  const meta = await fs.readFile(path.join(dir, `${job.key}.json`), 'utf8').then((t) => JSON.parse(t) as Meta, () => undefined);
  if (!meta || typeof meta.size !== 'number' || !/^[0-9a-f]{64}$/.test(meta.sha256) || typeof meta.stamp !== 'string') return undefined;
  if ((await stampFile(file)) !== meta.stamp) return undefined;
  remember(meta.stamp, meta.sha256);
  const hex40 = (x: unknown): x is string => typeof x === 'string' && /^[0-9a-f]{40}$/.test(x);
  if (hex40(meta.sha1) && hex40(meta.emulatorSha1)) return { file, size: meta.size, sha256: meta.sha256, sha1: meta.sha1, emulatorSha1: meta.emulatorSha1 };
  const { data, stamp } = await readStamped(file);
  if (stamp !== meta.stamp) return undefined;
  const out = { file, size: meta.size, sha256: meta.sha256, sha1: sha1(data), emulatorSha1: sha1(await emulatorBytes(job)) };
  await writeMeta(dir, job, out, stamp);
  return out;
}

/** The whole file, and its stamp as read (one open file: the stamp describes these bytes). */
async function readStamped(file: string): Promise<{ data: Buffer; stamp: string }> {
  const fh = await fs.open(file, 'r');
  try {
    const stamp = stampOf(await fh.stat({ bigint: true }));
    return { data: await fh.readFile(), stamp };
  } finally {
    await fh.close();
  }
}

/** The emulator's bytes, checked against the digest the tarball's key names. */
async function emulatorBytes(job: TarballJob): Promise<Buffer> {
  if (!job.source) throw new Error(`${job.entry} (sha256 ${job.sha256}): no extracted file to make its tarball from`);
  const { data, stamp: source } = await readStamped(job.source);
  // The key names the emulator's digest: bytes that do not match it must never enter the cache.
  // An emulator this process extracted or found as extracted (by its stamp) is not hashed again.
  const got = digestOf(source) === job.sha256 && data.length === job.size ? job.sha256 : sha256(data);
  if (data.length !== job.size || got !== job.sha256) throw new Error(`${job.source}: sha256 ${got} (${data.length} bytes), the manifest says ${job.sha256} (${job.size} bytes); remove the folder to extract again`);
  remember(source, got);
  return data;
}

/** `data`: the emulator's bytes as extraction checked them; without them they are read from the job's source. */
async function compressTarball(dir: string, job: TarballJob, data?: Buffer): Promise<CachedTarball> {
  const bytes = data ?? (await waited('read', job.entry, () => emulatorBytes(job)));
  const { bytes: tarball, entrySha1 } = await reproducibleTarball(job.entry, bytes);
  const out = onMain('hash', `${job.entry}.tar.gz`, () => ({ file: path.join(dir, `${job.key}.tar.gz`), size: tarball.length, sha256: sha256(tarball), sha1: sha1(tarball), emulatorSha1: entrySha1 }));
  await waited('write', `${job.entry}.tar.gz`, () => writeWhole(out.file, tarball));
  const stamp = await stampFile(out.file);
  remember(stamp, out.sha256);
  // Metadata last: its presence means the tarball beside it is complete.
  await writeMeta(dir, job, out, stamp);
  return out;
}

/**
 * `text` as a file of `dir` named by its digest, written only when the folder does not hold
 * those bytes already. Compared byte for byte (it is small): a same-size change is replaced, and
 * the stamp of the bytes as compared lets writeAssets copy them without hashing.
 */
async function contentFile(dir: string, suffix: string, text: string): Promise<{ file: string; size: number; sha256: string }> {
  const digest = sha256(text);
  const file = path.join(dir, `${digest}${suffix}`);
  const cached = await readStamped(file).catch(() => undefined);
  if (cached?.data.toString('utf8') === text) remember(cached.stamp, digest);
  else {
    await writeWhole(file, text);
    remember(await stampFile(file), digest);
  }
  return { file, size: Buffer.byteLength(text), sha256: digest };
}

/** The tarball cache key of an emulator: its entry name, its digest and the recipe. */
const tarballJob = (cpu: string, emulatorSha256: string, size: number, source?: string): TarballJob => {
  const entry = emulatorFile(cpu);
  return { key: sha256(`${TARBALL_RECIPE}\n${entry}\n${emulatorSha256}`), entry, size, sha256: emulatorSha256, ...(source !== undefined && { source }) };
};

/** Offered bytes waiting for a worker, past which offer holds extraction back: bounds memory. */
const QUEUE_BYTES = 256 << 20;

/**
 * One run's tarballs: the cache folder and the compressions under way in it. Extraction offers
 * each emulator's bytes as soon as it has checked them, so compressing starts with the first
 * RPM and no emulator is read back from disk; buildAssets then takes the tarballs made or under
 * way, and makes any other from the extracted file. Jobs wait largest first, so the last to
 * finish is a small one and no core idles at the end; one more than the workers run at once, so
 * a tarball is framed while the others compress.
 */
export class Tarballs {
  readonly dir: string;
  /** Tarballs compressed by this run, the bytes of emulators they held, and those taken from the cache. */
  compressed = 0;
  compressedBytes = 0;
  reused = 0;
  private readonly jobs = new Map<string, Promise<CachedTarball>>();
  private readonly queue = new PQueue({ concurrency: deflateWorkers() + 1 });
  private ready: Promise<void> | undefined;
  private waiting = 0;
  private room: (() => void)[] = [];

  /**
   * @param cacheDir the asset cache (its `tarballs` folder holds them)
   * @param queueBytes offered bytes that may wait for a worker before offer holds extraction back
   */
  constructor(
    cacheDir: string,
    private readonly queueBytes = QUEUE_BYTES,
  ) {
    this.dir = path.join(path.resolve(cacheDir), 'tarballs');
  }

  /** The folder made and swept of temp files a killed run left, once. */
  private prepare(): Promise<void> {
    return (this.ready ??= cacheFolder(this.dir));
  }

  /**
   * Starts the tarball of an emulator whose checked bytes are at hand (unless the cache has it or
   * it is under way). Resolves once fewer than queueBytes of offered bytes wait for a worker.
   */
  offer(e: CheckedEmulator): Promise<void> {
    const job = tarballJob(e.cpu, e.sha256, e.data.length);
    if (this.jobs.has(job.key)) return Promise.resolve();
    this.waiting += job.size;
    void this.start(job, e.data);
    return this.waiting < this.queueBytes ? Promise.resolve() : new Promise((resolve) => this.room.push(resolve));
  }

  /** The tarball of an extracted emulator: offered earlier, cached, or made now from `source`. */
  get(cpu: string, emulatorSha256: string, size: number, source: string): Promise<CachedTarball> {
    const job = tarballJob(cpu, emulatorSha256, size, source);
    return this.jobs.get(job.key) ?? this.start(job);
  }

  private start(job: TarballJob, data?: Buffer): Promise<CachedTarball> {
    const made = this.queue.add(
      async () => {
        try {
          await this.prepare();
          const hit = await cachedTarball(this.dir, job);
          if (hit) {
            this.reused++;
            return hit;
          }
          const t = await compressTarball(this.dir, job, data);
          this.compressed++;
          this.compressedBytes += job.size;
          return t;
        } finally {
          if (data) this.taken(job.size);
        }
      },
      { priority: job.size },
    );
    // Awaited by buildAssets; this only keeps a failure seen while another host is still extracting.
    made.catch(() => {});
    this.jobs.set(job.key, made);
    return made;
  }

  /** Offered bytes compressed (or given up): let held extractions go on while there is room. */
  private taken(size: number): void {
    this.waiting -= size;
    while (this.waiting < this.queueBytes && this.room.length > 0) this.room.shift()!();
  }
}

/** `dir` made (a failure names its parent and it) and swept of temp files a killed run left. */
async function cacheFolder(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true }).catch((e: unknown) => {
    throw writeError(e, path.dirname(dir), path.basename(dir));
  });
  await sweepTemps(dir);
}

/**
 * Builds (or takes from the cache) every asset of the given hosts' emulators, the SBOM of them
 * all, and SHA256SUMS over them and the SBOM. Tarballs are compressed in parallel, one per core;
 * a host given as a promise (still extracting) has its tarballs start as soon as its emulators
 * are there.
 */
export async function buildAssets(hosts: readonly (HostEmulators | PromiseLike<HostEmulators>)[], o: BuildOptions): Promise<BuiltAssets> {
  const cacheDir = path.resolve(o.cacheDir);
  const tarballs = o.tarballs ?? new Tarballs(cacheDir);
  if (tarballs.dir !== path.join(cacheDir, 'tarballs')) throw new Error(`the tarballs given are kept in ${tarballs.dir}, not in the asset cache ${cacheDir}`);
  const sumsDir = path.join(cacheDir, 'sums');
  const sbomDir = path.join(cacheDir, 'sbom');
  for (const dir of [sumsDir, sbomDir]) await cacheFolder(dir);
  const start = performance.now();

  // Each planned asset's bytes: a tarball being built, or the extracted emulator itself (its
  // SHA1 kept with its tarball's).
  const perHost = await Promise.all(
    hosts.map(async (pending) => {
      const h = await pending;
      const emulators = h.emulators.map((e) => {
        const source = path.resolve(h.dir, e.file);
        return { e, source, tarball: tarballs.get(e.cpu, e.sha256, e.size, source) };
      });
      return { h, emulators };
    }),
  );
  const planned = perHost.flatMap(({ h, emulators }) =>
    emulators.flatMap(({ e, source, tarball }) => {
      const common = { host: h.host, target: e.cpu };
      // The raw emulator is ready now; only its SHA1 (for the SBOM) waits for its tarball.
      const raw = { bytes: Promise.resolve({ file: source, size: e.size, sha256: e.sha256 }), sha1: tarball.then((t) => t.emulatorSha1) };
      const packed = { bytes: tarball, sha1: tarball.then((t) => t.sha1) };
      return [
        ...(h.host === UNPREFIXED_HOST
          ? [
              { name: emulatorFile(e.cpu), kind: 'emulator' as const, contentType: CONTENT_TYPE.emulator, ...common, ...raw },
              { name: tarballName(e.cpu), kind: 'tarball' as const, contentType: CONTENT_TYPE.tarball, ...common, ...packed },
            ]
          : []),
        { name: hostTarballName(h.host, e.cpu), kind: 'tarball' as const, contentType: CONTENT_TYPE.tarball, ...common, ...packed },
      ];
    }),
  );
  // A failure is awaited below; this only keeps one seen while another host is still extracting.
  for (const p of planned) p.sha1.catch(() => {});
  const seen = new Set<string>();
  for (const p of planned) {
    if (seen.has(p.name) || p.name === SUMS_FILE || p.name === SBOM_FILE) throw new Error(`two release assets are named ${p.name}; give each host arch once`);
    seen.add(p.name);
  }

  // Each asset as soon as its bytes are ready, for a writer to start copying it.
  const ready = (p: (typeof planned)[number]) => p.bytes.then(({ file, size, sha256 }): Asset => ({ name: p.name, kind: p.kind, contentType: p.contentType, host: p.host, target: p.target, file, size, sha256 }));
  const built = await Promise.all(
    planned.map(async (p) => {
      const asset = await ready(p);
      o.onAsset?.(asset);
      return { p, asset, sha1: await p.sha1 };
    }),
  );
  const assets: Asset[] = built.map((b) => b.asset);

  // The SBOM: every file above, each host's emulators and the RPMs they came from.
  const files: SbomFile[] = built.map(({ p, asset: a, sha1: digest }) => ({ name: p.name, kind: p.kind, host: p.host, target: p.target, sha256: a.sha256, sha1: digest }));
  const sbomHosts: SbomHost[] = await Promise.all(
    perHost.map(async ({ h, emulators }) => ({
      host: h.host,
      rpms: h.rpms,
      emulators: await Promise.all(emulators.map(async ({ e, tarball: t }) => ({ cpu: e.cpu, sha256: e.sha256, sha1: (await t).emulatorSha1, rpm: e.rpm }))),
    })),
  );
  const sbom = await contentFile(sbomDir, '.spdx.json', spdxSbom({ releaseTag: o.releaseTag, hosts: sbomHosts, files }));
  assets.push({ name: SBOM_FILE, kind: 'sbom', contentType: CONTENT_TYPE.sbom, ...sbom });

  const sums = await contentFile(sumsDir, '.txt', sha256sums(assets));
  assets.push({ name: SUMS_FILE, kind: 'checksums', contentType: CONTENT_TYPE.checksums, ...sums });
  const { compressed, compressedBytes, reused } = tarballs;
  const secs = ((performance.now() - start) / 1000).toFixed(1);
  const by = compressed === 0 ? '' : deflateBackend().kind === 'native' ? ` by native libdeflate ${LIBDEFLATE_RELEASE}` : ` by WebAssembly libdeflate ${LIBDEFLATE_RELEASE} (${deflateBackend().reason})`;
  o.progress?.(`release assets: ${assets.length} files; ${compressed} tarballs compressed${by} (${(compressedBytes / 1e6).toFixed(1)} MB of emulators) and ${reused} reused from the cache in ${secs} s`);
  return { assets: assets.sort(byName), compressed, reused };
}

/**
 * Copies `src` to `dest` whole or not at all, and only if its bytes hash to `sha256`: a
 * cache file that changed since it was planned is refused, not published. A full disk is
 * reported naming `folder` (default: dest's own).
 */
export async function copyVerified(src: string, sha: string, dest: string, mode = 0o644, folder?: string): Promise<void> {
  const data = await fs.readFile(src);
  const got = sha256(data);
  if (got !== sha) throw new Error(`${src}: sha256 is ${got}, expected ${sha} (the file changed since the assets were built; remove it and run again)`);
  await writeWhole(dest, data, { mode, folder });
}

/** File mode an asset gets on disk: emulators are executable. */
export const assetMode = (a: Pick<Asset, 'kind'>) => (a.kind === 'emulator' ? 0o755 : 0o644);

/** Staging folders of writeAssets inside the output folder. */
export const ASSETS_STAGE_PREFIX = '.polyarch-assets-';

/** Whether `file` is a regular file with the asset's mode and bytes (hashed unless its stamp is known). */
async function holds(file: string, a: Asset): Promise<boolean> {
  const st = await fs.lstat(file).catch(() => undefined);
  if (!st?.isFile() || (st.mode & 0o777) !== assetMode(a) || st.size !== a.size) return false;
  return (await hashStamped(file)).sha256 === a.sha256;
}

/**
 * Puts asset `a` at `dest`, a new file in this run's stage, as a copy of its own: an output
 * never shares an inode with a cache file, so a later write to the one (a `cp` onto a release
 * file) cannot reach the other, nor the other outputs made from it. A source whose stamp says
 * it holds the asset's bytes (hashed by this process, or recorded by the run that cached it) is
 * copied by the kernel (copyNew) without being read or hashed here; its stamp is taken again
 * after the copy, since any write meanwhile changes it. Any other source is read, hashed and
 * written (copyVerified).
 */
async function publish(a: Asset, dest: string, folder: string): Promise<'copied' | 'hashed'> {
  const before = await stampFile(a.file);
  if (digestOf(before) === a.sha256) {
    await copyNew(a.file, dest).catch((e: unknown) => {
      throw outputError(e, folder, a.name);
    });
    await fs.chmod(dest, assetMode(a));
    if ((await stampFile(a.file)) === before) return 'copied';
    await fs.rm(dest, { force: true });
  }
  await copyVerified(a.file, a.sha256, dest, assetMode(a), folder);
  return 'hashed';
}

/** What writing a release folder did: files copied by the kernel, read and hashed to be copied, and kept. */
export interface WriteCounts {
  copied: number;
  hashed: number;
  kept: number;
}

/**
 * A release folder being written, all or nothing: files are staged in a folder inside `outDir`
 * and moved into place only when every one was copied and checked (finish). A file the folder
 * already holds (same mode and bytes) is left alone. Stale staging folders that killed runs left
 * there are removed first. An asset can be put as soon as its bytes are ready (buildAssets'
 * onAsset), so copying overlaps the tarballs and the SBOM still being made.
 */
export class ReleaseFolder {
  private readonly counts: WriteCounts = { copied: 0, hashed: 0, kept: 0 };
  private readonly staged: string[] = [];
  private readonly copies = new Map<string, { sha256: string; done: Promise<void> }>();
  private readonly limit = pLimit(4);
  private failure: { cause: unknown } | undefined;
  /** The stage, made with the first put: a run that fails before any asset is ready leaves no folder. */
  private staging: Promise<string> | undefined;
  /** Whether this run made the output folder (then a failure removes it again). */
  private made = false;

  /** @param outDir the release folder; made, and a killed run's stages swept from it, when the first asset is put */
  constructor(readonly outDir: string) {}

  private stage(): Promise<string> {
    return (this.staging ??= (async () => {
      this.made = await makeOutDir(this.outDir);
      await sweepStages(this.outDir, ASSETS_STAGE_PREFIX);
      return makeStage(this.outDir, ASSETS_STAGE_PREFIX);
    })());
  }

  /** Starts copying `a` into the stage (once per name); a failure is reported by finish. */
  put(a: Asset): void {
    const earlier = this.copies.get(a.name);
    if (earlier) {
      if (earlier.sha256 !== a.sha256) this.failure ??= { cause: new Error(`${a.name} was given twice, with sha256 ${earlier.sha256} and ${a.sha256}`) };
      return;
    }
    // After the first failure the queued copies do nothing and the running ones are awaited:
    // a writer still busy in the stage while it is removed would keep files there, and the
    // removal's ENOTEMPTY would hide the real cause.
    const done = this.limit(async () => {
      if (this.failure) return;
      try {
        const stage = await this.stage();
        if (await holds(path.join(this.outDir, a.name), a)) {
          this.counts.kept++;
          return;
        }
        // A full disk names the output folder, not the staging folder inside it.
        this.counts[await waited('copy', a.name, () => publish(a, path.join(stage, a.name), this.outDir))]++;
        this.staged.push(a.name);
      } catch (e) {
        this.failure ??= { cause: e };
      }
    });
    this.copies.set(a.name, { sha256: a.sha256, done });
  }

  /** Puts every asset not put yet, and moves them all into place, or none; the stage is removed either way. */
  async finish(assets: readonly Asset[]): Promise<WriteCounts> {
    for (const a of assets) this.put(a);
    await Promise.all([...this.copies.values()].map((p) => p.done));
    const extra = [...this.copies.keys()].filter((name) => !assets.some((a) => a.name === name));
    if (extra.length > 0) this.failure ??= { cause: new Error(`${extra.join(', ')}: put in the release folder but not among its assets`) };
    try {
      const stage = await this.stage();
      // A failed move (a folder in the way) names the output file, not the stage it came from.
      if (!this.failure) for (const name of this.staged) await fs.rename(path.join(stage, name), path.join(this.outDir, name)).catch((e: unknown) => { throw outputError(e, this.outDir, name); });
      if (!this.failure) keepOutDir(this.outDir);
    } catch (e) {
      this.failure ??= { cause: e };
    }
    await this.abandon();
    return this.counts;
  }

  /**
   * Waits for the copies under way and removes the stage, and the folder if this run made it: the
   * folder is left as it was. Throws the first failure (or `cause`, what made the caller give up).
   */
  async abandon(cause?: unknown): Promise<void> {
    if (cause !== undefined) this.failure ??= { cause };
    await Promise.all([...this.copies.values()].map((p) => p.done));
    try {
      const stage = await this.staging?.catch(() => undefined);
      if (stage) await removeStage(stage);
      if (this.made && this.failure) await dropOutDir(this.outDir);
    } catch (e) {
      if (!this.failure) throw e;
    }
    if (this.failure) throw this.failure.cause;
  }
}

/**
 * Writes every asset into `outDir`, all or nothing (ReleaseFolder). Returns how many files were
 * copied by the kernel from a source known by its stamp, read and hashed to be copied, and kept.
 */
export async function writeAssets(assets: readonly Asset[], outDir: string): Promise<WriteCounts> {
  return new ReleaseFolder(outDir).finish(assets);
}
