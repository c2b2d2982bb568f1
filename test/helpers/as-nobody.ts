// The one way tests run a command as another user. Root passes every permission check, so a
// test that wants a write refused (a read-only output folder, a register file only root may
// write) runs the command as nobody. Nobody must still reach what it runs: this clone's
// bin/polyarch.js, dist/ and node_modules. The clone may sit inside a folder only root can
// enter (a mktemp -d folder, anywhere under /root), and the user's folders are not ours to open.
//
// So the command runs in a private mount namespace where the clone is bind-mounted on an empty
// world-readable folder (CLONE_VIEW), and nobody runs it from there. The mount is gone with the
// process; nothing outside changes, and nobody keeps no capability at all.
//
// Not a capability such as CAP_DAC_READ_SEARCH: access(2), behind Node's fs.existsSync, drops
// capabilities for a user who is not root, so node would take files it can read for missing
// (a fresh dist/ for stale, the native modules for absent) and run another program than users do.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Probe } from './system.ts';

export const NOBODY = 65534;
/** This clone, as the tests see it. */
export const CLONE = path.resolve(import.meta.dirname, '../..');

let view: string | undefined;
/** Where a command run by asNobody sees this clone: an empty 0755 folder here, the clone there. */
export function cloneView(): string {
  if (!view) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-clone-view-'));
    fs.chmodSync(dir, 0o755);
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    view = dir;
  }
  return view;
}

// Mounts the clone on its view, then enters cwd: a cwd set before the mount is the empty folder beneath.
const ENTER = 'mount --bind "$1" "$2" && cd "$3" && shift 3 && exec setpriv "$@"';

/**
 * `argv` run as nobody (no groups, no capabilities) from `cwd` (default /). Paths into this
 * clone must go through cloneView(): `path.join(cloneView(), 'bin/polyarch.js')`.
 * Run it with the spawn options' cwd left unset.
 */
export function asNobody(argv: readonly string[], cwd = '/'): [string, ...string[]] {
  const setpriv = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv];
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', ENTER, 'sh', CLONE, cloneView(), cwd, ...setpriv];
}

/**
 * The command `build(clone)` makes, run as nobody from `clone`/`cwd` when this process is root
 * (clone is then cloneView()), else as it is from this clone: a user who is not root already
 * meets the permissions the test is about. Spawn it with the returned cwd.
 */
export function unprivileged(build: (clone: string) => string[], cwd = '.'): { command: string; args: string[]; cwd?: string } {
  if (process.getuid?.() !== 0) {
    const [command, ...args] = build(CLONE);
    return { command: command!, args, cwd: path.resolve(CLONE, cwd) };
  }
  const [command, ...args] = asNobody(build(cloneView()), path.resolve(cloneView(), cwd));
  return { command, args };
}

let probed: string | undefined | null = null;
/** Root, with unshare, mount and setpriv that work here (a container may refuse mounts); checked once. */
export const canRunAsNobody: Probe = () => {
  if (probed === null) {
    if (process.getuid?.() !== 0) return (probed = 'needs root to run a command as nobody');
    const [cmd, ...args] = asNobody(['test', '-r', path.join(cloneView(), 'package.json')]);
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    probed = r.status === 0 ? undefined : `needs unshare, mount --bind and setpriv to run a command as nobody (${r.error?.message ?? (r.stderr.trim() || `exit ${r.status}`)})`;
  }
  return probed;
};
