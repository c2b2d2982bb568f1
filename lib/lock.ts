// qemu.lock.json: the exact Fedora RPMs (url, size, sha256, emulators) of one QEMU build,
// per host arch, and the release number n of the tag v<qemu>-<n> they publish under. A pull
// request that bumps QEMU changes this file and nothing else.
import fs from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import * as z from 'zod/mini';
import { HOST_ARCHES, type HostArch } from './cpus.ts';
import { emulatorsInHeader, extractRpms, type Extraction, type ManifestEntry, type OnEmulator } from './extract.ts';
import { fetchText, RpmCache, type RetryOptions } from './fetch.ts';
import { buildDirUrl, DEFAULT_KOJI, RELEASE_RE, selectRpms, VERSION_RE } from './koji.ts';
import { NoSpaceError, WriteError, writeWhole } from './out-dir.ts';
import { readRpm } from './rpm.ts';
import './schema.ts';
import { UserError } from './user-error.ts';
import { waited } from './timeline.ts';

const sha256Hex = z.string().check(z.regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex sha256'));
const cpuName = z.string().check(z.regex(/^[a-z0-9_]+$/, 'must be a CPU name'));

const LockedRpm = z.strictObject({
  name: z.string().check(z.regex(/^qemu-user-static(-[a-z0-9_]+)?$/, 'must be a qemu-user-static package name')),
  url: z.url({ protocol: /^https?$/ }),
  size: z.int().check(z.positive()),
  sha256: sha256Hex,
  emulators: z.array(cpuName).check(z.minLength(1, 'a locked RPM must hold at least one emulator')),
});

type Pins = Partial<Record<HostArch, readonly z.infer<typeof LockedRpm>[]>>;

/**
 * The first place where a lockfile pins something twice: one RPM (url or digest) under one or
 * two hosts, one package name with two files under a host, or one emulator in two packages
 * of a host. Extraction would otherwise find the clash only as two RPMs holding one emulator.
 */
export function duplicatePin(hosts: Pins): { path: (string | number)[]; message: string } | undefined {
  const rpms = new Map<string, { host: HostArch; rpm: LockedRpm }>();
  for (const host of HOST_ARCHES) {
    const names = new Map<string, LockedRpm>();
    const emulators = new Map<string, LockedRpm>();
    for (const [i, rpm] of (hosts[host] ?? []).entries()) {
      const path = [host, i];
      const first = rpms.get(rpm.url) ?? rpms.get(rpm.sha256);
      if (first) {
        const where = first.host === host ? ` under host ${host}` : `, under hosts ${first.host} and ${host}`;
        const why = first.host === host ? '' : '; an RPM is built for one host';
        return { path, message: `the lockfile lists the same RPM twice${where}: ${rpm.name} (${rpm.url})${why}` };
      }
      rpms.set(rpm.url, { host, rpm }).set(rpm.sha256, { host, rpm });
      const named = names.get(rpm.name);
      if (named) return { path, message: `the lockfile lists ${rpm.name} twice under host ${host}: ${named.url} and ${rpm.url}` };
      names.set(rpm.name, rpm);
      for (const cpu of rpm.emulators) {
        const holder = emulators.get(cpu);
        if (holder) return { path, message: `the lockfile pins qemu-${cpu}-static in both ${holder.name} and ${rpm.name} under host ${host}` };
        emulators.set(cpu, rpm);
      }
    }
  }
  return undefined;
}

export const LockSchema = z.strictObject({
  qemu: z.strictObject({
    version: z.string().check(z.regex(VERSION_RE, 'malformed QEMU version (expected like 9.2.4)')),
    release: z.string().check(z.regex(RELEASE_RE, 'malformed Fedora release (expected like 1.fc42)')),
  }),
  /**
   * The n of release v<qemu>-<n> (and of the images' <qemu>-<n> tags): 1 for a new QEMU
   * version, raised by `polyarch lock` when the same version is pinned again with other RPMs
   * (a Fedora rebuild), because a published release's files never change. Raised by hand
   * for any other change to published files. Absent in lockfiles written before it: 1.
   */
  releaseNumber: z._default(z.int().check(z.minimum(1), z.maximum(9999)), 1),
  koji: z.url({ protocol: /^https?$/ }),
  hosts: z.partialRecord(z.enum(HOST_ARCHES), z.array(LockedRpm).check(z.minLength(1))).check(
    z.refine((h) => Object.keys(h).length > 0, 'at least one host arch'),
    z.superRefine((h, ctx) => {
      const dup = duplicatePin(h);
      if (dup) ctx.addIssue({ code: 'custom', path: dup.path, message: dup.message });
    }),
  ),
});

export type Lock = z.infer<typeof LockSchema>;

/** The version a lockfile publishes, `<qemu>-<n>` (e.g. 9.2.4-1): the images' version tags. */
export const releaseVersion = (lock: Pick<Lock, 'qemu' | 'releaseNumber'>) => `${lock.qemu.version}-${lock.releaseNumber}`;

/** The GitHub release tag a lockfile publishes, `v<qemu>-<n>` (e.g. v9.2.4-1). */
export const releaseTag = (lock: Pick<Lock, 'qemu' | 'releaseNumber'>) => `v${releaseVersion(lock)}`;

/** What a release's files derive from: the Fedora build and every pinned RPM digest, per host. */
const pinned = (l: Pick<Lock, 'qemu' | 'hosts'>) =>
  JSON.stringify([l.qemu, Object.entries(l.hosts).sort(([a], [b]) => (a < b ? -1 : 1)).map(([h, rpms]) => [h, rpms.map((r) => r.sha256).sort()])]);

/**
 * The release number for newly pinned RPMs, given the lockfile they replace: the same number
 * for the same pins (a re-run, or only the koji mirror changed), the next one for other pins
 * of the same QEMU version, 1 for a new version.
 */
export function nextReleaseNumber(previous: Lock | undefined, next: Pick<Lock, 'qemu' | 'hosts'>): number {
  if (!previous || previous.qemu.version !== next.qemu.version) return 1;
  return pinned(previous) === pinned(next) ? previous.releaseNumber : previous.releaseNumber + 1;
}
export type LockedRpm = z.infer<typeof LockedRpm>;

/** Zod issues as one line: `path: problem; path: problem`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

export async function readLock(file: string): Promise<Lock> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const parsed = LockSchema.safeParse(raw);
  if (!parsed.success) throw new UserError(`${file}: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}

/** The lockfile at `file` that a new one will replace, or undefined when there is none yet. */
export async function readPreviousLock(file: string): Promise<Lock | undefined> {
  try {
    await fs.access(file);
  } catch {
    return undefined;
  }
  return readLock(file);
}

/** A write error about `file`: the code and reason, without the temp file's path Node appends. */
function cannotWrite(file: string, e: unknown): Error {
  const reason = e instanceof WriteError ? e.reason : e instanceof Error ? e.message.replace(/, \w+ '.*$/s, '') : String(e);
  return new Error(`${file}: cannot write the lockfile (${reason})`);
}

/** Fails now, naming the lockfile, when its folder cannot be written (before minutes of downloads). */
export async function checkLockWritable(file: string): Promise<void> {
  await fs.access(path.dirname(file), fs.constants.W_OK).catch((e: unknown) => {
    throw cannotWrite(file, e);
  });
}

/** Writes the lockfile whole or not at all (temp file, then rename). A missing releaseNumber reads back as 1. */
export async function writeLock(file: string, lock: z.input<typeof LockSchema>): Promise<void> {
  await writeWhole(file, `${JSON.stringify(lock, null, 2)}\n`).catch((e: unknown) => {
    throw e instanceof NoSpaceError ? e : cannotWrite(file, e);
  });
}

export interface LockOptions extends RetryOptions {
  version: string;
  release: string;
  hosts: readonly HostArch[];
  koji?: string;
  cacheDir: string;
  /** Parallel downloads. */
  concurrency?: number;
  /** The lockfile this one replaces, which numbers the release (nextReleaseNumber). */
  previous?: Lock;
}

/**
 * Reads koji's directory index for each host arch, downloads every qemu-user-static RPM of
 * the build into the cache, checks each one (headers, digests, name, version, arch) and
 * records what it holds.
 */
export async function createLock(o: LockOptions): Promise<Lock> {
  const koji = (o.koji ?? DEFAULT_KOJI).replace(/\/+$/, '');
  const cache = new RpmCache(o.cacheDir);
  const limit = pLimit(o.concurrency ?? 4);
  const hosts: Lock['hosts'] = {};
  for (const host of o.hosts) {
    const dir = buildDirUrl(koji, o.version, o.release, host);
    const listed = selectRpms(await fetchText(dir, o), dir, o.version, o.release, host);
    if (listed.length === 0) throw new Error(`${dir}: no qemu-user-static RPMs for ${o.version}-${o.release} on ${host}`);
    hosts[host] = await Promise.all(
      listed.map((k) =>
        limit(async () => {
          const { buf, sha256 } = await cache.get(k.url, undefined, o);
          const rpm = readRpm(buf, k.url);
          const want = { name: k.name, version: o.version, release: o.release, arch: host };
          const got = { name: rpm.name, version: rpm.version, release: rpm.release, arch: rpm.arch };
          if (JSON.stringify(want) !== JSON.stringify(got)) {
            throw new Error(`${k.url}: package is ${got.name}-${got.version}-${got.release}.${got.arch}, its file name says ${want.name}-${want.version}-${want.release}.${want.arch}`);
          }
          const emulators = emulatorsInHeader(rpm, k.url);
          if (emulators.length === 0) throw new Error(`${k.url}: holds no qemu-*-static emulator`);
          return { name: k.name, url: k.url, size: buf.length, sha256, emulators };
        }),
      ),
    );
  }
  const qemu = { version: o.version, release: o.release };
  return { qemu, releaseNumber: nextReleaseNumber(o.previous, { qemu, hosts }), koji, hosts };
}

/**
 * Fetches (or reads from the cache) every RPM the lockfile pins for `host` and extracts
 * them into `outDir`. Each RPM must match its pinned digest and hold exactly its pinned emulators.
 */
export async function extractLocked(lock: Lock, host: HostArch, cacheDir: string, outDir: string, opts: RetryOptions = {}): Promise<ManifestEntry[]> {
  return (await extractLockedRpms(lock, host, cacheDir, outDir, opts)).manifest;
}

/**
 * extractLocked, and each pinned RPM's facts (its pin's url, sha256 and size, and its header's)
 * for the SBOM. Each RPM is extracted as soon as it is downloaded, the largest first, so the
 * most work is under way soonest; `onEmulator` is told of each emulator as it is checked.
 */
export async function extractLockedRpms(lock: Lock, host: HostArch, cacheDir: string, outDir: string, opts: RetryOptions = {}, onEmulator?: OnEmulator): Promise<Extraction> {
  const rpms = lock.hosts[host];
  if (!rpms) throw new UserError(`the lockfile pins no RPMs for host ${host} (it has: ${Object.keys(lock.hosts).join(', ')})`);
  // A lock built in code has not been through the schema.
  const dup = duplicatePin(lock.hosts);
  if (dup) throw new UserError(dup.message);
  const cache = new RpmCache(cacheDir);
  const limit = pLimit(4);
  // The first RPM that cannot be had fails the host: the other downloads stop with it, else the
  // program (and the error it reports) waits for each of them to use up its retries.
  const failed = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, failed.signal]) : failed.signal;
  // Started largest first (p-limit runs them in the order they are queued); given in pin order.
  const downloads = new Map(
    [...rpms]
      .sort((a, b) => b.size - a.size)
      .map((r) => [
        r,
        limit(async () => {
          signal.throwIfAborted();
          const { buf } = await waited('fetch', r.name, () => cache.get(r.url, { sha256: r.sha256, size: r.size }, { ...opts, signal }));
          return { buf, label: r.url, expect: r.emulators, url: r.url, sha256: r.sha256 };
        }),
      ]),
  );
  const inputs = rpms.map((r) => downloads.get(r)!);
  for (const d of inputs) d.catch((e: unknown) => failed.abort(e));
  try {
    return await extractRpms(inputs, outDir, onEmulator);
  } catch (e) {
    // An extraction that failed stops the downloads still under way.
    failed.abort(e);
    throw e;
  }
}
