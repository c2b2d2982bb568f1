// Output folders named by the user (`--out`), the staging folders written inside them and
// the temp files written beside cache entries, so that a run's files appear whole or not at
// all: also when the disk fills up (one error naming the folder), when the run is stopped by a
// signal (removeUnfinishedSync), or killed outright (the next run sweeps what it left).
import { createHash, randomBytes } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from './user-error.ts';

/**
 * Checks the path to an output folder without creating anything, and says whether the folder
 * exists. Every component is looked at with lstat, from the root down: a symlink anywhere (the
 * folder or a parent) is refused rather than followed, and so is a file where a folder must be,
 * so that writes meant for one folder never land silently somewhere else. The working folder
 * is a physical path (getcwd), so only links the given path itself names are refused.
 */
export async function checkOutDir(dir: string): Promise<boolean> {
  const full = path.resolve(dir);
  const { root } = path.parse(full);
  // A relative folder's components are named as relative paths too, as the user gave them.
  const shown = (p: string) => (path.isAbsolute(dir) ? p : path.relative(process.cwd(), p) || '.');
  let at = root;
  for (const part of full.slice(root.length).split(path.sep).filter(Boolean)) {
    at = path.join(at, part);
    const st = await fs.lstat(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw new Error(`${dir}: ${e.message}`);
    });
    if (!st) return false;
    const last = at === full;
    if (st.isSymbolicLink()) {
      const target = await fs.readlink(at).catch(() => '?');
      throw new Error(last ? `${dir} is a symlink to ${target}; give the folder itself as the output folder` : `${dir}: ${shown(at)} is a symlink to ${target}; give a path without symlinks as the output folder`);
    }
    if (!st.isDirectory()) throw new Error(last ? `${dir} exists and is not a folder` : `${dir}: ${shown(at)} is not a folder`);
  }
  return true;
}

/** Makes sure `dir` is a real folder (see checkOutDir), creating it when missing. */
export async function prepareOutDir(dir: string): Promise<void> {
  if (await checkOutDir(dir)) return;
  await fs.mkdir(dir, { recursive: true }).catch((e: Error) => {
    throw new Error(`${dir}: cannot create the output folder: ${e.message}`);
  });
}

/**
 * Staging folders and temp files name their host (a hash of its name) and process, so that a
 * later run can tell a killed run's leftovers from a live run's writes.
 */
const HOST_TAG = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
/**
 * This process's pid namespace (the inode of /proc/self/ns/pid), named beside the host: two
 * containers can share a hostname (--uts=host, or the same name set by hand) and a folder but
 * not their pids, so a pid is only worth checking in our own namespace. 'none' where there are
 * no pid namespaces (not Linux); 'unknown' where Linux does not show ours (no /proc), which
 * matches nothing.
 */
const PID_NS = (() => {
  try {
    return /^pid:\[(\d+)\]$/.exec(fsSync.readlinkSync('/proc/self/ns/pid'))?.[1] ?? 'unknown';
  } catch {
    return process.platform === 'linux' ? 'unknown' : 'none';
  }
})();
/** A staging folder's owner, after its prefix: `<host>-<pid>-ns<pid namespace>-` (earlier versions: no namespace). */
const OWNER_NAME = /^([0-9a-f]{8})-(\d+)-(?:ns(\w+)-)?/;
/** The owner as staging folders of earlier versions recorded it, in a file inside. */
const OWNER = '.owner';
/** A staging folder this old is stale whoever made it (see isStale). */
export const STALE_STAGE_MS = 24 * 3600_000;

interface Owner {
  host: string;
  pid: number;
}

/**
 * Staging folders and temp files this process has made and not yet finished with: what a
 * signal handler removes before the process exits.
 */
const unfinished = new Set<string>();

/**
 * prepareOutDir, saying whether it made the folder. A folder it made counts as unfinished (a
 * signal removes it) until keepOutDir; dropOutDir removes it again, while empty.
 */
export async function makeOutDir(dir: string): Promise<boolean> {
  if (await checkOutDir(dir)) return false;
  unfinished.add(dir);
  await prepareOutDir(dir);
  return true;
}

/** A folder makeOutDir made now holds the run's output: it stays. */
export const keepOutDir = (dir: string): void => void unfinished.delete(dir);

/** Removes a folder makeOutDir made, when nothing is in it: a failed run leaves no empty output folder. */
export async function dropOutDir(dir: string): Promise<void> {
  unfinished.delete(dir);
  await fs.rmdir(dir).catch(() => {});
}

/**
 * Removes every staging folder and temp file this process has not finished with; returns how
 * many. Synchronous, for a signal handler: no other JavaScript runs in between. Paths are
 * registered before they are created, so whatever exists is removed, and a file the thread
 * pool adds inside a stage meanwhile is caught by the retries (ENOTEMPTY). A creation of the
 * stage or temp itself that the pool finishes after this removal is not: the next run's sweep
 * removes it (at once from this host and pid namespace, else once a day old).
 */
export function removeUnfinishedSync(): number {
  let removed = 0;
  for (const p of unfinished) {
    try {
      fsSync.rmSync(p, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
      removed++;
    } catch {
      // Left for the next run's sweep.
    }
  }
  unfinished.clear();
  return removed;
}

/** A write that ran out of disk space, named by the folder the user knows and the file. */
export class NoSpaceError extends UserError {
  constructor(readonly folder: string, readonly file: string) {
    super(`no space left in ${folder} while writing ${file}`);
    this.name = 'NoSpaceError';
  }
}

/**
 * The error to report for a failed write of `file` into `folder`: a full disk (or quota) names
 * them, since Node's ENOSPC names neither ("ENOSPC: no space left on device, write").
 */
export function writeError(e: unknown, folder: string, file: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? new NoSpaceError(folder, file) : e;
}

/**
 * A write that failed for another reason (a read-only folder, permissions, a folder in the
 * way), named by the file being written: Node's message names the temp file instead.
 */
export class WriteError extends UserError {
  constructor(readonly file: string, readonly reason: string, readonly code: string | undefined) {
    super(`${file}: cannot write (${reason})`);
    this.name = 'WriteError';
  }
}

/**
 * A failed write into `folder` as the user should see it: a full disk names `folder` and
 * `file`; any other failure names `target` (the output file or folder the user gave, default
 * `file` in `folder`), since Node's message names the temp or staging path the user never sees.
 */
export function outputError(e: unknown, folder: string, file: string, target = path.join(folder, file)): unknown {
  const named = writeError(e, folder, file);
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  // "EROFS: read-only file system, open '<temp>'" keeps its first part; the target replaces the temp.
  return named === e && e instanceof Error && code ? new WriteError(target, e.message.replace(/, \w+ '.*$/s, ''), code) : named;
}

/**
 * Creates `<dir>/<prefix><host>-<pid>-ns<pid namespace>-<random>`. The owner is in the name,
 * not in a file inside: a run killed right after the mkdir leaves a folder the next run can
 * still judge.
 */
export async function makeStage(dir: string, prefix: string): Promise<string> {
  const stage = path.join(dir, `${prefix}${HOST_TAG}-${process.pid}-ns${PID_NS}-${randomBytes(6).toString('hex')}`);
  unfinished.add(stage);
  try {
    await fs.mkdir(stage);
  } catch (e) {
    unfinished.delete(stage);
    throw outputError(e, dir, 'a staging folder', dir);
  }
  return stage;
}

/**
 * Renames a finished staging folder to `dir`, whole, and returns `ours`. When another run made
 * `dir` first, `theirs()` reads its result: as good as ours. A folder there that `theirs()`
 * finds damaged is moved aside in one step (no reader sees it half-removed; the aside name
 * starts with the stage's, so a sweep finds it after a kill), removed, and replaced once.
 */
export async function publishStage<T>(stage: string, dir: string, ours: T, theirs: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.rename(stage, dir);
      return ours;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Anything else (a read-only folder, a file in the way) names `dir`, not the stage.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw outputError(e, path.dirname(dir), path.basename(dir));
    }
    const found = await theirs();
    if (found !== undefined) return found;
    if (attempt > 0) throw new Error(`${dir}: cannot replace a damaged ${what}; remove the folder and run again`);
    const aside = `${stage}-old-${randomBytes(3).toString('hex')}`;
    await fs.rename(dir, aside).catch(() => {});
    await fs.rm(aside, { recursive: true, force: true });
  }
}

/**
 * Copies `src` to `dest`, a new file in a staging folder, in the kernel (copy_file_range, or a
 * reflink where the file system has them). EXCL because `dest` is new: without it libuv
 * truncates the new file first (deps/uv/src/unix/fs.c, uv__fs_copyfile), and ext4 takes a
 * truncate to 0 as a file being replaced (fs/ext4/inode.c, ext4_truncate: auto_da_alloc), so
 * each close started writing the file out on the thread that copied it (a warm one-host `assets`
 * run took 0.34 to 0.66 s with that, 0.26 to 0.29 s without).
 */
export async function copyNew(src: string, dest: string): Promise<void> {
  await fs.copyFile(src, dest, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
}

/** Removes a staging folder (when it is still there) and forgets it. */
export async function removeStage(stage: string): Promise<void> {
  await fs.rm(stage, { recursive: true, force: true });
  unfinished.delete(stage);
}

/**
 * Temp files beside cache entries: `.<name>.polyarch-tmp-<host>-<pid>-ns<pid namespace>-<random>`
 * (earlier versions: no namespace).
 */
const TEMP_RE = /\.polyarch-tmp-([0-9a-f]{8})-(\d+)-(?:ns(\w+)-)?[0-9a-f]+$/;

/**
 * Writes `data` to `file` whole or not at all: a temp file beside it, then rename. Renames
 * are atomic, so concurrent runs writing one cache entry each leave one whole copy. A full
 * disk is reported naming `folder` (default: the file's own folder).
 */
export async function writeWhole(file: string, data: Buffer | string, o: { mode?: number; folder?: string } = {}): Promise<void> {
  const mode = o.mode ?? 0o644;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.polyarch-tmp-${HOST_TAG}-${process.pid}-ns${PID_NS}-${randomBytes(4).toString('hex')}`);
  unfinished.add(tmp);
  try {
    await fs.writeFile(tmp, data, { mode });
    // writeFile's mode passes through the umask; published files get exactly `mode`.
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, file);
  } catch (e) {
    throw outputError(e, o.folder ?? path.dirname(file), path.basename(file), file);
  } finally {
    await fs.rm(tmp, { force: true });
    unfinished.delete(tmp);
  }
}

/**
 * Removes the temp files of killed runs from `dir`: those of a gone process on this host and
 * in this pid namespace, and any older than a day. Best effort; returns their paths.
 */
export async function sweepTemps(dir: string, now = Date.now()): Promise<string[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m) continue;
    const file = path.join(dir, name);
    const st = await fs.lstat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    const stale = now - st.mtimeMs > STALE_STAGE_MS || deadRun(m[1]!, Number(m[2]), m[3]);
    if (stale && (await fs.rm(file, { force: true }).then(() => true, () => false))) removed.push(file);
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A staging folder is stale when its name (or, for earlier versions' folders, the owner file
 * inside) names this host, this pid namespace and a pid that is gone (the run was killed:
 * remove it at once), or when it is older than a day. The pid check cannot see runs on other
 * hosts or in other pid namespaces sharing the folder (a container with the output folder
 * mounted, even one with our hostname), so for those only age counts: a live run fills and
 * empties its stage within minutes. Age also covers a dead run's pid reused by another process.
 */
async function isStale(stage: string, prefix: string, now: number): Promise<boolean> {
  const st = await fs.lstat(stage).catch(() => undefined);
  if (!st?.isDirectory()) return false;
  if (now - st.mtimeMs > STALE_STAGE_MS) return true;
  const named = OWNER_NAME.exec(path.basename(stage).slice(prefix.length));
  if (named) return deadRun(named[1]!, Number(named[2]), named[3]);
  const owner = await fs.readFile(path.join(stage, OWNER), 'utf8').then((t) => JSON.parse(t) as Partial<Owner>, () => undefined);
  if (owner?.host !== os.hostname() || !Number.isSafeInteger(owner.pid)) return false;
  return deadRun(HOST_TAG, owner.pid as number, undefined);
}

/**
 * Whether a run on host `hostTag` in pid namespace `ns` with `pid` is known to be gone: only a
 * pid on this host and in this namespace can be checked. Names of earlier versions carry no
 * namespace (undefined) and are judged by host alone, as those versions did.
 */
function deadRun(hostTag: string, pid: number, ns: string | undefined): boolean {
  const ours = hostTag === HOST_TAG && (ns === undefined || (ns === PID_NS && PID_NS !== 'unknown'));
  return ours && pid > 0 && pid !== process.pid && !alive(pid);
}

/** Removes the stale `<prefix>*` staging folders that killed runs left in `dir`; returns their paths. */
export async function sweepStages(dir: string, prefix: string, now = Date.now()): Promise<string[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(prefix))) {
    const stage = path.join(dir, name);
    if (!(await isStale(stage, prefix, now))) continue;
    // Best effort: a leftover that cannot be removed is no reason to fail this run.
    if (await fs.rm(stage, { recursive: true, force: true }).then(() => true, () => false)) removed.push(stage);
  }
  return removed;
}
