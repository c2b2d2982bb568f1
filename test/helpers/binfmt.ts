// The kernel's binfmt_misc is global state: tests snapshot it before they touch it and put
// it back afterwards (t.after runs even when the test fails), removing what they added and
// re-registering what they removed or changed.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { formatLine, parseProcEntry, type ProcEntry } from '../../lib/binfmt.ts';
import { PERSIST_DIR } from '../../lib/build-host.ts';
import { generateRegisterScript } from '../../lib/register-script.ts';
import type { Probe } from './system.ts';

export const BINFMT = '/proc/sys/fs/binfmt_misc';
const CONTROL = new Set(['register', 'status']);

export const hasBinfmtMisc: Probe = () =>
  fs.readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t').includes('binfmt_misc'))
    ? undefined
    : 'needs a kernel with binfmt_misc';

export function ensureMounted(): void {
  if (fs.existsSync(path.join(BINFMT, 'register'))) return;
  execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT]);
}

/** name -> entry text, for every entry currently registered. */
export function readEntries(): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of fs.readdirSync(BINFMT)) {
    if (CONTROL.has(name)) continue;
    try {
      out.set(name, fs.readFileSync(path.join(BINFMT, name), 'utf8'));
    } catch {
      // removed while we looked
    }
  }
  return out;
}

export function removeEntry(name: string): void {
  try {
    fs.writeFileSync(path.join(BINFMT, name), '-1\n');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export function registerRaw(line: string): void {
  fs.writeFileSync(path.join(BINFMT, 'register'), `${line}\n`);
}

export function restoreEntries(before: Map<string, string>): void {
  const problems: string[] = [];
  for (const [name, text] of readEntries()) {
    if (before.get(name) !== text) removeEntry(name);
  }
  const now = readEntries();
  for (const [name, text] of before) {
    if (now.has(name)) continue;
    try {
      const e: ProcEntry = parseProcEntry(name, text);
      registerRaw(formatLine(e));
      if (!e.enabled) fs.writeFileSync(path.join(BINFMT, name), '0\n');
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new Error(`could not restore binfmt_misc entries: ${problems.join('; ')}`);
}

/** Mounts binfmt_misc if needed and restores every entry as it is now when the test ends. */
export function guardBinfmt(t: TestContext): void {
  ensureMounted();
  const before = readEntries();
  t.after(() => restoreEntries(before));
}

/** Entries (enabled or not) whose magic matches the start of `file`. */
export function entriesMatching(file: string): string[] {
  const head = Buffer.alloc(256);
  const fd = fs.openSync(file, 'r');
  const n = fs.readSync(fd, head, 0, 256, 0);
  fs.closeSync(fd);
  const out: string[] = [];
  for (const [name, text] of readEntries()) {
    let e: ProcEntry;
    try {
      e = parseProcEntry(name, text);
    } catch {
      continue;
    }
    if (e.type !== 'M') continue;
    const magic = Buffer.from(e.magic, 'hex');
    const mask = e.mask === '' ? Buffer.alloc(magic.length, 0xff) : Buffer.from(e.mask, 'hex');
    if (e.offset + magic.length > n) continue;
    if (magic.every((b, i) => ((head[e.offset + i] as number) & (mask[i] as number)) === (b & (mask[i] as number)))) out.push(name);
  }
  return out;
}

export const SHELLS = [
  { name: 'dash', argv: ['dash'] },
  { name: 'busybox ash', argv: ['busybox', 'sh'] },
] as const;
export type Shell = (typeof SHELLS)[number];

let scriptPath: string | undefined;
/** The generated register script, written once per process to a temp file. */
export function registerScript(): string {
  if (!scriptPath) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-register-'));
    fs.chmodSync(dir, 0o755); // readable by the unprivileged user of the no-root test
    scriptPath = path.join(dir, 'register');
    fs.writeFileSync(scriptPath, generateRegisterScript(), { mode: 0o755 });
  }
  return scriptPath;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runScript(shell: Shell, args: readonly string[], env: NodeJS.ProcessEnv = process.env): RunResult {
  const [cmd, ...pre] = shell.argv;
  const r = spawnSync(cmd, [...pre, registerScript(), ...args], { encoding: 'utf8', env, timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function tmpDir(t: TestContext, prefix = 'polyarch-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Puts /etc/binfmt.d's qemu-*.conf files back as they were when the test ends. */
export function guardPersistDir(t: TestContext): void {
  const list = () => (fs.existsSync(PERSIST_DIR) ? fs.readdirSync(PERSIST_DIR).filter((f) => /^qemu-.*\.conf$/.test(f)) : []);
  const before = new Map(list().map((f) => [f, fs.readFileSync(path.join(PERSIST_DIR, f))]));
  t.after(() => {
    for (const f of list()) if (!before.has(f)) fs.rmSync(path.join(PERSIST_DIR, f));
    for (const [f, data] of before) fs.writeFileSync(path.join(PERSIST_DIR, f), data);
  });
}
