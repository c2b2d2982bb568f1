// Output folders named by the user (`--out`), and the staging folders written inside them so
// that a run's files appear whole or not at all.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * Makes sure `dir` is a real folder, creating it when missing. A symlink is refused rather
 * than followed: writes meant for one folder must not land silently somewhere else.
 */
export async function prepareOutDir(dir: string): Promise<void> {
  const st = await fs.lstat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new Error(`${dir}: ${e.message}`);
  });
  if (st?.isSymbolicLink()) {
    const target = await fs.readlink(dir).catch(() => '?');
    throw new Error(`${dir} is a symlink to ${target}; give the folder itself as the output folder`);
  }
  if (st && !st.isDirectory()) throw new Error(`${dir} exists and is not a folder`);
  if (!st) {
    await fs.mkdir(dir, { recursive: true }).catch((e: Error) => {
      throw new Error(`${dir}: cannot create the output folder: ${e.message}`);
    });
  }
}

/** Inside a staging folder: who made it. Asset and emulator names never start with a dot. */
const OWNER = '.owner';
/** A staging folder this old is stale whoever made it (see isStale). */
export const STALE_STAGE_MS = 24 * 3600_000;

interface Owner {
  host: string;
  pid: number;
}

/** Creates `<dir>/<prefix><random>` and records this process as its owner. */
export async function makeStage(dir: string, prefix: string): Promise<string> {
  const stage = path.join(dir, `${prefix}${randomBytes(6).toString('hex')}`);
  await fs.mkdir(stage);
  const owner: Owner = { host: os.hostname(), pid: process.pid };
  await fs.writeFile(path.join(stage, OWNER), `${JSON.stringify(owner)}\n`);
  return stage;
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
 * A staging folder is stale when its owner file names this host and a pid that is gone
 * (the run was killed: remove it at once), or when it is older than a day. The pid check
 * cannot see runs on other hosts or in other pid namespaces sharing the folder (a container
 * with the output folder mounted), so for those only age counts: a live run fills and empties
 * its stage within minutes. Age also covers a dead run's pid reused by another process.
 */
async function isStale(stage: string, now: number): Promise<boolean> {
  const st = await fs.lstat(stage).catch(() => undefined);
  if (!st?.isDirectory()) return false;
  if (now - st.mtimeMs > STALE_STAGE_MS) return true;
  const owner = await fs.readFile(path.join(stage, OWNER), 'utf8').then((t) => JSON.parse(t) as Partial<Owner>, () => undefined);
  if (owner?.host !== os.hostname() || !Number.isSafeInteger(owner.pid) || (owner.pid as number) <= 0) return false;
  return owner.pid !== process.pid && !alive(owner.pid as number);
}

/** Removes the stale `<prefix>*` staging folders that killed runs left in `dir`; returns their paths. */
export async function sweepStages(dir: string, prefix: string, now = Date.now()): Promise<string[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(prefix))) {
    const stage = path.join(dir, name);
    if (!(await isStale(stage, now))) continue;
    // Best effort: a leftover that cannot be removed is no reason to fail this run.
    if (await fs.rm(stage, { recursive: true, force: true }).then(() => true, () => false)) removed.push(stage);
  }
  return removed;
}
