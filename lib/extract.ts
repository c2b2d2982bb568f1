// Turns qemu-user-static RPMs into emulator binaries and their binfmt.d confs.
// Only two kinds of path are taken; everything else in the payload is ignored, and output
// names are built from validated CPU names, never from archive paths.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { reconcileConf } from './binfmt.ts';
import { readCpio } from './cpio.ts';
import { findCpu } from './cpus.ts';
import { remember, rememberMoved, stampFile } from './known-digests.ts';
import { makeStage, outputError, prepareOutDir, removeStage, sweepStages, writeError } from './out-dir.ts';
import { decompressPayload, readRpm, RpmError, type Rpm } from './rpm.ts';
import { onMain, waited } from './timeline.ts';
import { UserError } from './user-error.ts';

const EMULATOR_PATH = /^usr\/bin\/qemu-([a-z0-9_]+)-static$/;
const CONF_PATH = /^usr\/lib\/binfmt\.d\/qemu-([a-z0-9_]+?)(?:-static)?\.conf$/;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
/** Largest emulator we accept; real ones are 5-30 MB. */
export const MAX_EMULATOR_BYTES = 256 << 20;
const MAX_CONF_BYTES = 4096;

export const emulatorFile = (cpu: string) => `qemu-${cpu}-static`;
export const confFile = (cpu: string) => `binfmt.d/qemu-${cpu}-static.conf`;
/** Staging folders of extractToDir inside the output folder. */
export const EXTRACT_STAGE_PREFIX = '.polyarch-extract-';

const kind = (mode: number) =>
  ({ 0o120000: 'a symlink', 0o040000: 'a directory', 0o020000: 'a character device', 0o060000: 'a block device', 0o010000: 'a fifo', 0o140000: 'a socket' })[mode & S_IFMT] ?? `mode ${mode.toString(8)}`;

/** Archive or header path without a leading "./" or "/"; refuses traversal outright. */
function normalize(name: string, label: string): string {
  if (name.startsWith('/') && !name.startsWith('/usr/')) throw new RpmError(label, `absolute path outside /usr in payload: ${JSON.stringify(name)}`);
  const rel = name.replace(/^\.?\//, '');
  if (rel.split('/').some((s) => s === '..')) throw new RpmError(label, `path escapes the package root: ${JSON.stringify(name)}`);
  return rel;
}

/** The CPUs whose emulators a package holds, from its header alone (no payload work). */
export function emulatorsInHeader(rpm: Rpm, label: string): string[] {
  const cpus: string[] = [];
  for (const f of rpm.files) {
    const m = EMULATOR_PATH.exec(normalize(f.path, label));
    if (m?.[1]) cpus.push(m[1]);
  }
  return cpus.sort();
}

export interface Emulator {
  cpu: string;
  data: Buffer;
  sha256: string;
  /** The binfmt.d conf the package ships for this CPU, if any, byte for byte. */
  conf?: Buffer;
  /** Where that conf's magic, mask or offset differ from the CPU table (the conf wins). */
  confDifferences?: string[];
}

export interface ExtractedRpm {
  rpm: Rpm;
  emulators: Emulator[];
}

/**
 * Reads one RPM and returns its emulators, each checked against the header: regular file,
 * ELF, sane size, content digest equal to the header's. `expect`, when given (from the
 * lockfile), is the exact set of CPUs the package must hold. `parsed`: `buf` already read by
 * readRpm, so its digests are not checked twice.
 */
export async function extractRpm(buf: Buffer, label: string, expect?: readonly string[], parsed?: Rpm): Promise<ExtractedRpm> {
  const rpm = parsed ?? readRpm(buf, label);
  const listed = new Map(rpm.files.map((f) => [normalize(f.path, label), f]));
  const found = new Map<string, Emulator>();
  const confs = new Map<string, Buffer>();
  const cpio = await decompressPayload(rpm, label);

  for (const entry of readCpio(cpio, label)) {
    const rel = normalize(entry.name, label);
    const emu = EMULATOR_PATH.exec(rel);
    const conf = CONF_PATH.exec(rel);
    if (!emu && !conf) continue;
    if ((entry.mode & S_IFMT) !== S_IFREG) throw new RpmError(label, `${rel} is ${kind(entry.mode)}, not a regular file`);
    const header = listed.get(rel);
    if (!header) throw new RpmError(label, `${rel} is in the payload but not in the header`);
    if ((header.mode & S_IFMT) !== S_IFREG) throw new RpmError(label, `${rel} is ${kind(header.mode)} in the header, not a regular file`);
    // Hash once: Fedora's file digests are sha256, the same digest the manifest reports.
    const sha256 = onMain('hash', path.basename(rel), () => createHash('sha256').update(entry.data).digest('hex'));
    if (header.digest) {
      const got = rpm.fileDigestAlgo === 'sha256' ? sha256 : createHash(rpm.fileDigestAlgo).update(entry.data).digest('hex');
      if (got !== header.digest) throw new RpmError(label, `${rel}: ${rpm.fileDigestAlgo} mismatch: header says ${header.digest}, payload has ${got}`);
    }
    if (emu?.[1]) {
      const cpu = emu[1];
      if (entry.data.length === 0) throw new RpmError(label, `${rel} is empty`);
      if (entry.data.length > MAX_EMULATOR_BYTES) throw new RpmError(label, `${rel} is ${entry.data.length} bytes, over the ${MAX_EMULATOR_BYTES}-byte bound`);
      if (entry.data.readUInt32BE(0) !== 0x7f454c46) throw new RpmError(label, `${rel} is not an ELF executable`);
      if (found.has(cpu)) throw new RpmError(label, `${rel} appears twice`);
      found.set(cpu, { cpu, data: entry.data, sha256 });
    } else if (conf?.[1]) {
      if (entry.data.length > MAX_CONF_BYTES) throw new RpmError(label, `${rel} is over ${MAX_CONF_BYTES} bytes`);
      confs.set(conf[1], entry.data);
    }
  }

  const inHeader = emulatorsInHeader(rpm, label);
  const missing = inHeader.filter((cpu) => !found.has(cpu));
  if (missing.length > 0) throw new RpmError(label, `payload lacks ${missing.map(emulatorFile).join(', ')} listed in the header`);
  if (expect) {
    const lacking = expect.filter((cpu) => !found.has(cpu));
    if (lacking.length > 0) throw new RpmError(label, `lacks ${lacking.map(emulatorFile).join(', ')} that the lockfile pins`);
    const extra = [...found.keys()].filter((cpu) => !expect.includes(cpu));
    if (extra.length > 0) throw new RpmError(label, `holds ${extra.map(emulatorFile).join(', ')} that the lockfile does not pin`);
  }
  for (const [cpu, data] of confs) {
    const e = found.get(cpu);
    if (!e) continue;
    e.conf = data;
    const known = findCpu(cpu);
    if (!known) continue;
    try {
      const { differences } = reconcileConf(known, data.toString('utf8'));
      if (differences.length > 0) e.confDifferences = differences;
    } catch (err) {
      throw new RpmError(label, `usr/lib/binfmt.d conf for ${cpu}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { rpm, emulators: [...found.values()].sort((a, b) => a.cpu.localeCompare(b.cpu)) };
}

/** One line of the JSON manifest `polyarch extract` prints. */
export interface ManifestEntry {
  cpu: string;
  /** Path relative to the output folder. */
  file: string;
  size: number;
  sha256: string;
  /** binfmt.d conf shipped by the RPM, relative to the output folder. */
  conf?: string;
  /** The RPM it came from (name-version-release.arch). */
  rpm: string;
  /** The shipped conf's differences from the CPU table, when there are any. */
  confDifferences?: string[];
}

export interface ExtractInput {
  buf: Buffer;
  label: string;
  expect?: readonly string[];
}

/**
 * One RPM an extraction came from, as the SBOM reports it: where it was had (the lockfile's
 * url, or the file or URL given), its digest and size, and what its header says.
 */
export interface RpmFacts {
  /** Name, version, release and arch from the header. */
  name: string;
  /** Only when the header has an Epoch tag. */
  epoch?: number;
  version: string;
  release: string;
  arch: string;
  /** The header's License tag, verbatim. */
  license?: string;
  /** The header's BuildTime tag (seconds since 1970). */
  buildTime?: number;
  /** The koji URL the lockfile pins, or the file or URL the RPM was given as. */
  url: string;
  /** sha256 and size of the whole RPM file. */
  sha256: string;
  size: number;
  /** CPUs whose emulators it holds (checked against the lockfile's pin when there is one), sorted. */
  emulators: string[];
}

/** An RPM with what is known of it before it is read: its origin and digest. */
export interface SourcedInput extends ExtractInput {
  url: string;
  sha256: string;
}

/** What an extraction wrote, and the RPMs it wrote it from (sorted by name, then arch). */
export interface Extraction {
  manifest: ManifestEntry[];
  rpms: RpmFacts[];
}

/** `name-version-release.arch`, the form ManifestEntry.rpm names a package by. */
export const nevra = (r: Pick<Rpm, 'name' | 'version' | 'release' | 'arch'>) => `${r.name}-${r.version}-${r.release}.${r.arch}`;

/** RPMs decompressed at once, across every host extracting in this process: bounds memory. */
const extracting = pLimit(Math.max(1, Math.min(os.availableParallelism(), 8)));

/**
 * Extracts every input into `outDir`. All files are written into a staging folder inside
 * `outDir` first and renamed into place only when every input was good, so a bad RPM
 * leaves the folder as it was. RPMs are decompressed a few at a time (shared by every
 * extraction of the process) and their emulators written as soon as they are checked, so
 * memory holds a few payloads, not a whole host's. Each emulator file's digest is
 * remembered by its stamp (lib/known-digests.ts): the tarballs made from it next do not
 * hash it again.
 */
export async function extractToDir(inputs: readonly (ExtractInput | Promise<ExtractInput>)[], outDir: string): Promise<ManifestEntry[]> {
  return (await extractWithHeaders(inputs, outDir)).manifest;
}

/** An emulator's bytes as extraction checked them against its RPM's header digest. */
export type CheckedEmulator = Pick<Emulator, 'cpu' | 'sha256' | 'data'>;

/**
 * Told of each emulator as soon as its bytes are checked against its RPM's header, before they
 * are written: the tarballs are made from these very bytes (lib/assets.ts Tarballs). Extraction
 * goes on when the returned promise settles, so a slower consumer holds it back.
 */
export type OnEmulator = (e: CheckedEmulator) => Promise<void> | void;

/**
 * extractToDir, and the facts of every RPM extracted (RpmFacts): what the extraction cache
 * keeps beside the emulators for the SBOM, so a warm run reads no RPM. An input given as a
 * promise (a download under way) is extracted as soon as it is there, while the others come.
 */
export async function extractRpms(inputs: readonly (SourcedInput | Promise<SourcedInput>)[], outDir: string, onEmulator?: OnEmulator): Promise<Extraction> {
  const { manifest, headers, given } = await extractWithHeaders(inputs, outDir, onEmulator);
  const rpms = headers.map((h, i): RpmFacts => {
    const input = given[i] as SourcedInput;
    return { ...h, url: input.url, sha256: input.sha256, size: input.buf.length };
  });
  const key = (r: RpmFacts) => `${r.name}\0${r.arch}`;
  return { manifest, rpms: rpms.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)) };
}

/** An RpmFacts' header part. */
type HeaderFacts = Omit<RpmFacts, 'url' | 'sha256' | 'size'>;

function headerFacts(rpm: Rpm, cpus: string[]): HeaderFacts {
  const { name, epoch, version, release, arch, license, buildTime } = rpm;
  return { name, ...(epoch !== undefined && { epoch }), version, release, arch, ...(license !== undefined && { license }), ...(buildTime !== undefined && { buildTime }), emulators: cpus };
}

/** What extractWithHeaders knows of an RPM from its header. */
interface Checked {
  rpm: Rpm;
  nevra: string;
  arch: string;
  cpus: string[];
}

async function extractWithHeaders(
  inputs: readonly (ExtractInput | Promise<ExtractInput>)[],
  outDir: string,
  onEmulator?: OnEmulator,
): Promise<{ manifest: ManifestEntry[]; headers: HeaderFacts[]; given: ExtractInput[] }> {
  // Each RPM's header is read as soon as it is there (cheap, no payload work): a damaged
  // package, or one emulator in two packages, is refused before any of its payload is written.
  // Inputs given whole are all checked before anything is written, naming them in their given order.
  const checked: Checked[] = [];
  const given: ExtractInput[] = [];
  const seen = new Map<string, { nevra: string; arch: string; label: string; index: number }>();
  const check = (input: ExtractInput, index: number): Checked => {
    const rpm = onMain('check', path.basename(input.label), () => readRpm(input.buf, input.label));
    const h = { rpm, nevra: nevra(rpm), arch: rpm.arch, cpus: emulatorsInHeader(rpm, input.label) };
    for (const cpu of h.cpus) {
      const other = seen.get(cpu);
      if (other) {
        // Named in the order given, whichever came first.
        const [a, b] = other.index < index ? [other, { ...h, label: input.label }] : [{ ...h, label: input.label }, other];
        if (a.nevra === b.nevra) throw new UserError(`${a.nevra} is given twice (${a.label} and ${b.label})`);
        const advice = a.arch === b.arch ? "give one build's RPMs" : "extract one host's RPMs at a time";
        throw new UserError(`${emulatorFile(cpu)} is in both ${a.nevra} (${a.label}) and ${b.nevra} (${b.label}); ${advice}`);
      }
      seen.set(cpu, { nevra: h.nevra, arch: h.arch, label: input.label, index });
    }
    checked[index] = h;
    given[index] = input;
    return h;
  };
  for (const [i, input] of inputs.entries()) if (!(input instanceof Promise)) check(input, i);

  await prepareOutDir(outDir);
  await sweepStages(outDir, EXTRACT_STAGE_PREFIX);
  const stage = await makeStage(outDir, EXTRACT_STAGE_PREFIX);
  // The stage is private to this run: plain writes, published by rename. A full disk names the
  // output folder and the file, not the stage.
  const write = async (name: string, data: Buffer, mode: number) => {
    const file = path.join(stage, name);
    await waited('write', name, () => fs.writeFile(file, data, { mode })).catch((e: unknown) => {
      throw writeError(e, outDir, name);
    });
    return file;
  };
  const manifest: ManifestEntry[] = [];
  /** Each emulator's stamp in the stage, carried over its move into place. */
  const stamps = new Map<string, string | undefined>();
  let failure: { cause: unknown } | undefined;
  try {
    await fs.mkdir(path.join(stage, 'binfmt.d'));
    // After the first failure the queued inputs do nothing and the running ones are awaited, so
    // no writer is still busy in the stage while it is removed.
    await Promise.all(
      inputs.map(async (pending, i) => {
        let input: ExtractInput;
        try {
          input = await pending;
        } catch (e) {
          failure ??= { cause: e };
          return;
        }
        await extracting(async () => {
          if (failure) return;
          try {
            const { rpm, nevra } = checked[i] ?? check(input, i);
            const { emulators } = await extractRpm(input.buf, input.label, input.expect, rpm);
            for (const e of emulators) {
              if (failure) return;
              // Offered before the write, so compressing overlaps it; awaited after, which holds
              // this extraction back while the tarballs fall behind.
              const room = onEmulator?.(e);
              const file = await write(emulatorFile(e.cpu), e.data, 0o755);
              const stamp = await stampFile(file);
              remember(stamp, e.sha256);
              stamps.set(emulatorFile(e.cpu), stamp);
              if (e.conf !== undefined) await write(confFile(e.cpu), e.conf, 0o644);
              manifest.push({ cpu: e.cpu, file: emulatorFile(e.cpu), size: e.data.length, sha256: e.sha256, ...(e.conf !== undefined && { conf: confFile(e.cpu) }), rpm: nevra, ...(e.confDifferences && { confDifferences: e.confDifferences }) });
              await room;
            }
          } catch (e) {
            failure ??= { cause: e };
          }
        });
      }),
    );
    if (failure) throw failure.cause;
    if (manifest.some((m) => m.conf)) await fs.mkdir(path.join(outDir, 'binfmt.d'), { recursive: true });
    // A failed move (a folder in the way) names the output file, not the stage it came from.
    const move = (name: string) => fs.rename(path.join(stage, name), path.join(outDir, name)).catch((e: unknown) => { throw outputError(e, outDir, name); });
    for (const m of manifest) {
      await move(m.file);
      rememberMoved(stamps.get(m.file), await stampFile(path.join(outDir, m.file)));
      if (m.conf) await move(m.conf);
    }
  } finally {
    await removeStage(stage);
  }
  // Header facts only: the parsed packages hold their payloads, which need not outlive this.
  return { manifest: manifest.sort((a, b) => a.cpu.localeCompare(b.cpu)), headers: checked.map((h) => headerFacts(h.rpm, h.cpus)), given };
}
