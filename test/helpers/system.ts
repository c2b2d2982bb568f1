// System tests need root, the real kernel and Debian packages. In CI they are required
// (POLYARCH_REQUIRE_SYSTEM=1, set by .ci/run): a missing prerequisite fails the test
// instead of skipping it. Elsewhere a missing prerequisite skips with the reason.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';

export const systemRequired = process.env.POLYARCH_REQUIRE_SYSTEM === '1';

/** Why the system cannot run `what`, or undefined when it can. */
export type Probe = () => string | undefined;

export const isRoot: Probe = () => (process.getuid?.() === 0 ? undefined : 'needs root');

export function hasCommand(name: string): Probe {
  return () => {
    try {
      execFileSync('sh', ['-c', `command -v "$0"`, name], { stdio: 'ignore' });
      return undefined;
    } catch {
      return `needs the ${name} command`;
    }
  };
}

/**
 * Returns true when every probe passes. Otherwise fails the test in CI, or skips it
 * elsewhere, and returns false so the caller can return early.
 */
export function requireSystem(t: TestContext, ...probes: Probe[]): boolean {
  const missing = probes.map((p) => p()).filter((m): m is string => m !== undefined);
  if (missing.length === 0) return true;
  const why = missing.join('; ');
  if (systemRequired) throw new Error(`system test prerequisites missing in CI: ${why}`);
  t.skip(why);
  return false;
}

/**
 * Stops a daemon a test started (and unref'd, so that a failed hook cannot hold the test
 * process open): SIGTERM, then SIGKILL if it is still there after `graceMs`.
 */
export async function stopDaemon(child: import('node:child_process').ChildProcess, graceMs = 20_000): Promise<void> {
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  if (gone()) return;
  child.kill('SIGTERM');
  for (let waited = 0; !gone() && waited < graceMs; waited += 100) await new Promise((r) => setTimeout(r, 100));
  if (!gone()) child.kill('SIGKILL');
}

/**
 * Whether this machine lets the test mount a small tmpfs (root, and a kernel and container
 * that allow mounts): the tests of a full disk need a folder that fills up for real.
 */
export const canMountTmpfs: Probe = () => {
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  const dir = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'needs to mount a tmpfs (mount -t tmpfs failed)';
  } finally {
    execFileSync('rmdir', [dir], { stdio: 'ignore' });
  }
};

/**
 * Runs `fn` with a tmpfs of `mb` megabytes mounted at a new folder under `parent`: a disk that
 * fills up, or is made read-only (`remount('ro')`), for real. Needs canMountTmpfs.
 */
export async function withTmpfs(parent: string, mb: number, fn: (dir: string, remount: (opts: string) => void) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(parent, 'tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir]);
  try {
    await fn(dir, (opts) => execFileSync('mount', ['-o', `remount,${opts}`, dir]));
  } finally {
    execFileSync('umount', [dir]);
    fs.rmdirSync(dir);
  }
}

/** Fills the file system holding `dir` with one file, `<dir>/filler`, until the kernel says ENOSPC. */
export function fillUp(dir: string): void {
  const fd = fs.openSync(path.join(dir, 'filler'), 'w');
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
}
