// Build contexts (a Dockerfile plus the files it copies) for every image of a plan.
//
// Each context is content-addressed: its folder is `<image>-<digest>`, where the digest
// covers every file's path, mode and sha256. An unchanged image therefore keeps its folder
// (and the builder's context hash), so Pulumi sees no diff and does not rebuild it; a changed
// one gets a new folder. Folders are written into a staging folder beside them and renamed
// into place whole, so a folder that exists is complete; runs sharing the folder never remove
// each other's (the first to finish wins). Nothing here depends on the machine: paths are kept
// as given (relative stays relative), modes are set explicitly, and no timestamps are used.
import fs from 'node:fs/promises';
import path from 'node:path';
import { reconcileConf } from './binfmt.ts';
import { CPUS, hostFamily, type Cpu, type HostArch } from './cpus.ts';
import type { HostEmulators } from './emulators.ts';
import type { ManifestEntry } from './extract.ts';
import { platformArch, type ImagePlan, type PlannedImage } from './image-plan.ts';
import { copyNew, makeStage, prepareOutDir, publishStage, removeStage, sweepStages, writeError } from './out-dir.ts';
import { generateRegisterScript } from './register-script.ts';
import { sha256 } from './digest.ts';
import { hashStamped, stampFile } from './known-digests.ts';
import { LABEL_REVISION, LABEL_SOURCE, PINNED_IMAGE } from './image-refs.ts';
import { UserError } from './user-error.ts';

/** The OCI labels every image carries. */
export interface ImageLabels {
  /** org.opencontainers.image.source: where the program that built the image lives. */
  source: string;
  /** org.opencontainers.image.version: `<qemu>-<n>`. */
  version: string;
  /** org.opencontainers.image.revision. */
  revision: string;
}

/**
 * The labels for a stack: its source and revision settings, or by default the QEMU build the
 * emulators come from as the revision (so images change only when their content does).
 */
export function imageLabels(c: { imageSource: string; imageRevision?: string | undefined }, qemu: { version: string; release: string }, version: string): ImageLabels {
  return { source: c.imageSource, version, revision: c.imageRevision ?? `${qemu.version}-${qemu.release}` };
}

export interface ContextOptions {
  /** Parent folder of the context folders. */
  outDir: string;
  /** Base of `:latest` and `:register`, pinned by digest; must list every host's platform. */
  baseImage: string;
  labels: ImageLabels;
}

/** A written build context. */
export interface BuildContext {
  /** The context folder: `<outDir>/<image>-<digest16>`. */
  dir: string;
  /** `<dir>/Dockerfile` */
  dockerfile: string;
  /** sha256 over the context's listing (path, mode and sha256 of every file). */
  digest: string;
}

/** One file of a context: written from `data` or copied from `from`. */
interface ContextFile {
  path: string;
  mode: 0o644 | 0o755;
  sha256: string;
  size: number;
  data?: string;
  from?: string;
}

const text = (p: string, mode: ContextFile['mode'], data: string): ContextFile => ({ path: p, mode, data, sha256: sha256(data), size: Buffer.byteLength(data) });
const emulatorFile = (p: string, hostDir: string, m: ManifestEntry): ContextFile => ({ path: p, mode: 0o755, from: path.join(hostDir, m.file), sha256: m.sha256, size: m.size });

function labelLines(l: ImageLabels): string {
  // JSON.stringify keeps a hostile value on one line in the message.
  if (!LABEL_SOURCE.test(l.source)) throw new Error(`image source label ${JSON.stringify(l.source)} must be an http(s) URL`);
  if (!LABEL_REVISION.test(l.revision)) throw new Error(`image revision label ${JSON.stringify(l.revision)} may only hold letters, digits and . _ + -`);
  if (!LABEL_REVISION.test(l.version)) throw new Error(`image version label ${JSON.stringify(l.version)} may only hold letters, digits and . _ + -`);
  return [
    `LABEL org.opencontainers.image.source="${l.source}" \\`,
    `      org.opencontainers.image.version="${l.version}" \\`,
    `      org.opencontainers.image.revision="${l.revision}"`,
  ].join('\n');
}

/**
 * The CPUs a host's `:latest` image registers: every CPU outside the host's family whose
 * emulator the image ships, with the magic and mask of the RPM's own binfmt.d conf where
 * there is one (QEMU adjusts them between versions), but the table's for a row that
 * overrides the conf (`overridesConf`: microblaze, whose QEMU line matches nothing).
 */
export async function shippedCpus(h: HostEmulators): Promise<Cpu[]> {
  const byEmulator = new Map(h.emulators.map((m) => [m.cpu, m]));
  const family = hostFamily(h.host);
  const out: Cpu[] = [];
  for (const cpu of CPUS) {
    const m = byEmulator.get(cpu.emulator);
    if (!m || cpu.family === family) continue;
    if (m.conf && m.cpu === cpu.name) out.push(reconcileConf(cpu, await fs.readFile(path.join(h.dir, m.conf), 'utf8')).cpu);
    else out.push(cpu);
  }
  return out;
}

function hostOf(hosts: readonly HostEmulators[], host: HostArch): HostEmulators {
  const h = hosts.find((x) => x.host === host);
  if (!h) throw new Error(`no emulators were prepared for host ${host}`);
  return h;
}

/** The files of one image's context, Dockerfile included. */
async function contextFiles(image: PlannedImage, hosts: readonly HostEmulators[], o: ContextOptions): Promise<ContextFile[]> {
  const labels = labelLines(o.labels);
  if (image.kind === 'emulator') {
    const h = hostOf(hosts, image.hosts[0] as HostArch);
    const m = h.emulators.find((e) => e.cpu === image.target);
    if (!m) throw new Error(`host ${h.host} has no emulator for ${image.target}`);
    const file = `qemu-${m.cpu}-static`;
    const dockerfile = ['# One emulator, nothing else: for COPY --from=<image> in other builds.', 'FROM scratch', `COPY ${file} /usr/bin/${file}`, labels, ''].join('\n');
    return [text('Dockerfile', 0o644, dockerfile), emulatorFile(file, h.dir, m)];
  }
  if (!PINNED_IMAGE.test(o.baseImage)) throw new Error(`base image ${JSON.stringify(o.baseImage)} must be pinned by digest (name@sha256:<64 hex>)`);
  if (image.kind === 'register') {
    const dockerfile = ['# busybox and /register: registers emulators that are installed on the host.', `FROM ${o.baseImage}`, 'COPY register /register', labels, 'ENTRYPOINT ["/register"]', ''].join('\n');
    return [text('Dockerfile', 0o644, dockerfile), text('register', 0o755, generateRegisterScript())];
  }
  // `emulators`: one folder of files per platform, picked by the builder's TARGETARCH.
  const files: ContextFile[] = [];
  for (const [i, host] of image.hosts.entries()) {
    const h = hostOf(hosts, host);
    const arch = platformArch(image.platforms[i] as string);
    const cpus = await shippedCpus(h);
    if (cpus.length === 0) throw new UserError(`host ${host}: the :latest image would register nothing (it ships only emulators of the host's own family)`);
    files.push(text(`register/${arch}`, 0o755, generateRegisterScript({ cpus })));
    for (const m of h.emulators) files.push(emulatorFile(`emulators/${arch}/qemu-${m.cpu}-static`, h.dir, m));
  }
  const dockerfile = [
    '# busybox, the emulators for the target platform (a host arch) and /register as the entrypoint.',
    `FROM ${o.baseImage}`,
    'ARG TARGETARCH',
    'COPY emulators/${TARGETARCH}/ /usr/bin/',
    'COPY register/${TARGETARCH} /register',
    labels,
    'ENTRYPOINT ["/register"]',
    '',
  ].join('\n');
  return [text('Dockerfile', 0o644, dockerfile), ...files];
}

function listingDigest(files: readonly ContextFile[]): string {
  const listing = [...files].sort((a, b) => (a.path < b.path ? -1 : 1)).map((f) => `${f.mode.toString(8)} ${f.sha256} ${f.path}\n`);
  return sha256(listing.join(''));
}

async function isComplete(dir: string, files: readonly ContextFile[]): Promise<boolean> {
  for (const f of files) {
    const file = path.join(dir, f.path);
    const st = await fs.stat(file).catch(() => undefined);
    if (!st?.isFile() || st.size !== f.size || (st.mode & 0o777) !== f.mode) return false;
    // An emulator is a copy, hashed unless this process knows it by its stamp: its digest comes
    // from the extraction, so bytes that hash to it are the ones the pinned RPM holds.
    if (f.from !== undefined && (await hashStamped(file)).sha256 !== f.sha256) return false;
  }
  return true;
}

/**
 * Emulators are copied from the extraction folder, never hard-linked: a context (a `contexts
 * --out` folder, or one the builder reads) must not share an inode with the cache, where a
 * write to either would reach the other and change the extraction's stamp.
 */
async function place(f: ContextFile, dest: string): Promise<void> {
  if (f.data !== undefined) {
    await fs.writeFile(dest, f.data);
  } else {
    const src = f.from as string;
    // Same size is not the same bytes: trusted by the stamp it was hashed with, else hashed now.
    const got = await hashStamped(src);
    if (got.sha256 !== f.sha256 || got.size !== f.size) throw new Error(`${src} changed since extraction: sha256 ${got.sha256} (${got.size} bytes), extracted as ${f.sha256} (${f.size} bytes); remove the folder and run again`);
    // A kernel copy (a reflink where the file system has them); any write to the source
    // meanwhile changes its stamp, so an unchanged stamp means the checked bytes were copied.
    await copyNew(src, dest);
    if ((await stampFile(src)) !== got.stamp) throw new Error(`${src}: changed while it was copied into a build context; run again`);
  }
  await fs.chmod(dest, f.mode);
}

/** Staging folders of writeContext, beside the context folders; they name their host and pid. */
export const CONTEXT_STAGE_PREFIX = '.polyarch-context-';

async function writeContext(name: string, files: readonly ContextFile[], outDir: string): Promise<BuildContext> {
  const digest = listingDigest(files);
  const dir = path.join(outDir, `${name}-${digest.slice(0, 16)}`);
  const result = { dir, dockerfile: path.join(dir, 'Dockerfile'), digest };
  if (await isComplete(dir, files)) return result;
  // Registered for removal when the CLI is stopped by a signal; a killed run's is swept later.
  const stage = await makeStage(outDir, CONTEXT_STAGE_PREFIX);
  try {
    for (const f of files) {
      const dest = path.join(stage, f.path);
      try {
        await fs.mkdir(path.dirname(dest), { recursive: true });
        await place(f, dest);
      } catch (e) {
        // Named as the user will look for it: the context folder, not the stage.
        throw writeError(e, outDir, path.join(path.basename(dir), f.path));
      }
    }
    // Another writer of the same content may get there first: theirs is as good as ours.
    return await publishStage(stage, dir, result, async () => ((await isComplete(dir, files)) ? result : undefined), 'build context');
  } finally {
    await removeStage(stage);
  }
}

/**
 * Writes (or reuses) the build context of every image in the plan and returns them by
 * image name. `hosts` are the prepared emulators of every host in the plan.
 */
export async function writeContexts(plan: ImagePlan, hosts: readonly HostEmulators[], o: ContextOptions): Promise<Record<string, BuildContext>> {
  await prepareOutDir(o.outDir);
  // Stages of runs that were killed (this host, pid gone) or are a day old.
  await sweepStages(o.outDir, CONTEXT_STAGE_PREFIX);
  const out: Record<string, BuildContext> = {};
  for (const image of plan.images) out[image.name] = await writeContext(image.name, await contextFiles(image, hosts, o), o.outDir);
  return out;
}
