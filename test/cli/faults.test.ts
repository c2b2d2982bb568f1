// Faults a run meets in the field, through the real CLI: two runs at once on one cache, a
// full disk (a real tmpfs) under the output folder or the cache, and runs stopped by SIGTERM,
// SIGINT or SIGKILL. Each must end with correct bytes or one error line, and leave nothing
// half-written: no partial file, no staging folder, no cache entry a later run would trust.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { kojiTree, startKoji, type KojiServer } from '../fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../fixtures/rpms.ts';
import { canMountTmpfs, requireSystem } from '../helpers/system.ts';

const CLI = path.resolve(import.meta.dirname, '../../bin/polyarch.js');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let work = '';
let koji: KojiServer;
let lockFile = '';
let lockText = '';
/** Pinned RPM digests: the only .rpm names a cache may hold. */
let pins = new Set<string>();
/** What one undisturbed run writes (x86_64 host only, to keep the many runs short): relative path -> sha256. */
let refAssets: Record<string, string> = {};
let refExtract: Record<string, string> = {};
/** A cache that holds every x86_64 RPM, extraction and tarball. */
let refCache = '';

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts the CLI (async: the fixture koji answers from this process) with TMPDIR pointing at
 * `tmpdir`, so a test can see that nothing was left there.
 */
function start(args: string[], tmpdir = path.join(work, 'tmp')): { child: ChildProcess; done: Promise<Run> } {
  fs.mkdirSync(tmpdir, { recursive: true });
  const child = spawn(process.execPath, [CLI, ...args], { cwd: work, env: { ...process.env, TMPDIR: tmpdir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve) => child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr })));
  return { child, done };
}
const polyarch = (args: string[], tmpdir?: string) => start(args, tmpdir).done;
/** `polyarch assets` for the x86_64 host of the lockfile, into `out` through `cache`. */
const assetsArgs = (cache: string, out: string, lock = lockFile) => ['assets', '--lock', lock, '--hosts', 'x86_64', '--cache', cache, '--out', out];
const extractArgs = (cache: string, out: string) => ['extract', '--lock', lockFile, '--host', 'x86_64', '--cache', cache, '--out', out];

/** Every file under `dir` (hidden ones too, so a leftover shows): relative path -> sha256. */
function digests(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    out[path.relative(dir, file)] = sha256(fs.readFileSync(file));
  }
  return out;
}

/**
 * What is wrong with a cache folder: a file whose digest differs from its name or metadata, an
 * RPM no pin names, an extraction whose files differ from its manifest, or anything else
 * (temp files, staging folders). Empty when every entry is whole and trustworthy.
 */
function cacheProblems(cache: string): string[] {
  const problems: string[] = [];
  const list = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);
  for (const name of list(cache)) {
    const file = path.join(cache, name);
    if (name === 'assets' || name === 'emulators') continue;
    const m = /^([0-9a-f]{64})\.rpm$/.exec(name);
    if (!m) problems.push(`unexpected ${file}`);
    else if (!pins.has(m[1]!)) problems.push(`unpinned ${file}`);
    else if (sha256(fs.readFileSync(file)) !== m[1]) problems.push(`digest differs: ${file}`);
  }
  for (const name of list(path.join(cache, 'emulators'))) {
    const dir = path.join(cache, 'emulators', name);
    if (!/^(x86_64|aarch64)-[0-9a-f]{16}$/.test(name)) {
      problems.push(`unexpected ${dir}`);
      continue;
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { file: string; sha256: string; conf?: string }[];
    const expected = new Set(['manifest.json', 'stamps.json', 'rpms.json', '.owner', 'binfmt.d', ...manifest.flatMap((e) => [e.file, ...(e.conf ? [e.conf] : [])])]);
    // The facts of the RPMs extracted (for the SBOM): pinned ones only.
    const rpms = JSON.parse(fs.readFileSync(path.join(dir, 'rpms.json'), 'utf8')) as { sha256: string }[];
    for (const r of rpms) if (!pins.has(r.sha256)) problems.push(`facts of an unpinned RPM: ${dir}/rpms.json`);
    // The stamps the extraction hashed its files with: only files of the manifest.
    const stamped = Object.keys(JSON.parse(fs.readFileSync(path.join(dir, 'stamps.json'), 'utf8')) as object);
    for (const f of stamped) if (!manifest.some((e) => e.file === f || e.conf === f)) problems.push(`stamp of no file: ${dir}/${f}`);
    for (const e of manifest) if (sha256(fs.readFileSync(path.join(dir, e.file))) !== e.sha256) problems.push(`digest differs: ${dir}/${e.file}`);
    for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) if (!expected.has(f)) problems.push(`unexpected ${dir}/${f}`);
  }
  const tarballs = path.join(cache, 'assets', 'tarballs');
  for (const name of list(tarballs)) {
    const m = /^([0-9a-f]{64})\.(tar\.gz|json)$/.exec(name);
    if (!m) problems.push(`unexpected ${tarballs}/${name}`);
    else if (m[2] === 'json') {
      const meta = JSON.parse(fs.readFileSync(path.join(tarballs, name), 'utf8')) as { sha256: string };
      if (sha256(fs.readFileSync(path.join(tarballs, `${m[1]}.tar.gz`))) !== meta.sha256) problems.push(`digest differs: ${tarballs}/${m[1]}.tar.gz`);
    }
  }
  const sums = path.join(cache, 'assets', 'sums');
  for (const name of list(sums)) {
    const m = /^([0-9a-f]{64})\.txt$/.exec(name);
    if (!m || sha256(fs.readFileSync(path.join(sums, name))) !== m[1]) problems.push(`bad ${sums}/${name}`);
  }
  const sboms = path.join(cache, 'assets', 'sbom');
  for (const name of list(sboms)) {
    const m = /^([0-9a-f]{64})\.spdx\.json$/.exec(name);
    if (!m || sha256(fs.readFileSync(path.join(sboms, name))) !== m[1]) problems.push(`bad ${sboms}/${name}`);
  }
  return problems;
}

/** Staging folders and temp files anywhere under `dir`. */
const leftovers = (dir: string): string[] =>
  fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /(^|\/)\.polyarch-|\.polyarch-tmp-/.test(f)) : [];

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-faults-'));
  const root = kojiTree(buildFixtureRpms({ host: 'x86_64', layout: 'split', compression: 'zstd' }), SPLIT_BUILD, 'x86_64', path.join(work, 'koji'));
  kojiTree(buildFixtureRpms({ host: 'aarch64', layout: 'split', compression: 'zstd' }), SPLIT_BUILD, 'aarch64', root);
  koji = await startKoji(root);
  lockFile = path.join(work, 'qemu.lock.json');
  const lock = await polyarch(['lock', '--qemu', SPLIT_BUILD.version, '--release', SPLIT_BUILD.release, '--hosts', 'x86_64,aarch64', '--koji', koji.url, '--out', lockFile, '--cache', path.join(work, 'lock-cache')]);
  assert.equal(lock.status, 0, lock.stderr);
  lockText = fs.readFileSync(lockFile, 'utf8');
  pins = new Set(Object.values((JSON.parse(lockText) as { hosts: Record<string, { sha256: string }[]> }).hosts).flat().map((r) => r.sha256));
  // One undisturbed run of each, on a cache of its own: the bytes every other run must match.
  refCache = path.join(work, 'ref-cache');
  const assets = await polyarch(assetsArgs(refCache, path.join(work, 'ref-assets')));
  assert.equal(assets.status, 0, assets.stderr);
  refAssets = digests(path.join(work, 'ref-assets'));
  const extract = await polyarch(extractArgs(refCache, path.join(work, 'ref-extract')));
  assert.equal(extract.status, 0, extract.stderr);
  refExtract = digests(path.join(work, 'ref-extract'));
  assert.ok(Object.keys(refAssets).length > 20 && Object.keys(refExtract).length > 10, `${Object.keys(refAssets).length} assets, ${Object.keys(refExtract).length} extracted files`);
});

after(async () => {
  await koji?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

/** Polls until `found()` names something or the child exits; returns what was found. */
async function waitFor(child: ChildProcess, found: () => string | undefined, timeoutMs = 60_000): Promise<string | undefined> {
  const t0 = Date.now();
  while (child.exitCode === null && child.signalCode === null && Date.now() - t0 < timeoutMs) {
    const hit = found();
    if (hit) return hit;
    await sleep(1);
  }
  return undefined;
}

/** The first entry under `dir` (to depth 2) whose name starts with `prefix`. */
function findEntry(dir: string, prefix: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const n of names) {
    if (n.startsWith(prefix)) return path.join(dir, n);
    try {
      const inner = fs.readdirSync(path.join(dir, n)).find((m) => m.startsWith(prefix));
      if (inner) return path.join(dir, n, inner);
    } catch {
      // a file, or gone meanwhile
    }
  }
  return undefined;
}

describe('two runs at once on one cache', () => {
  test('assets: a second run starts while the first is mid-extraction on a cold cache; both right, cache whole', async () => {
    // The second run is started first, blocked reading its lockfile from a FIFO, so it is past
    // Node's startup; the lockfile is fed to it the moment the first run's extraction writes,
    // at several delays: the second run then looks at the cache while the first fills it.
    for (const [round, delay] of [0, 0, 50, 150, 300].entries()) {
      const dir = path.join(work, `race-${round}`);
      fs.mkdirSync(dir);
      const cache = path.join(dir, 'cache');
      const fifo = path.join(dir, 'lock.fifo');
      execFileSync('mkfifo', [fifo]);
      const b = start(assetsArgs(cache, path.join(dir, 'b'), fifo));
      const a = start(assetsArgs(cache, path.join(dir, 'a')));
      const seen = await waitFor(a.child, () => findEntry(path.join(cache, 'emulators'), '.polyarch-'));
      await sleep(delay);
      fs.writeFileSync(fifo, lockText);
      const [ra, rb] = await Promise.all([a.done, b.done]);
      assert.ok(seen, `round ${round}: the first run's extraction was seen under way`);
      assert.equal(ra.status, 0, `round ${round} first: ${ra.stderr}`);
      assert.equal(rb.status, 0, `round ${round} second: ${rb.stderr}`);
      assert.deepEqual(digests(path.join(dir, 'a')), refAssets);
      assert.deepEqual(digests(path.join(dir, 'b')), refAssets);
      assert.deepEqual(cacheProblems(cache), []);
      assert.deepEqual(leftovers(cache), []);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('assets and extract: pairs started together or a moment apart on a cold cache; both right, cache whole', async () => {
    for (const [round, stagger] of [0, 0, 150].entries()) {
      const dir = path.join(work, `pair-${round}`);
      const cache = path.join(dir, 'cache');
      const runs = [
        start(assetsArgs(cache, path.join(dir, 'a1'))),
        start(extractArgs(cache, path.join(dir, 'x1'))),
        await sleep(stagger).then(() => start(assetsArgs(cache, path.join(dir, 'a2')))),
        start(extractArgs(cache, path.join(dir, 'x2'))),
      ];
      const results = await Promise.all(runs.map((r) => r.done));
      for (const r of results) assert.equal(r.status, 0, `round ${round}: ${r.stderr}`);
      for (const out of ['a1', 'a2']) assert.deepEqual(digests(path.join(dir, out)), refAssets, out);
      for (const out of ['x1', 'x2']) assert.deepEqual(digests(path.join(dir, out)), refExtract, out);
      assert.deepEqual(cacheProblems(cache), []);
      assert.deepEqual(leftovers(cache), []);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Runs `fn` with a fresh tmpfs of `mb` megabytes mounted at a new folder: a disk that fills up
 * for real. `grow` remounts it larger (a full disk the user then cleared).
 */
async function withTmpfs(mb: number, fn: (dir: string, grow: () => void) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(work, 'tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir]);
  try {
    await fn(dir, () => execFileSync('mount', ['-o', 'remount,size=512m', dir]));
  } finally {
    execFileSync('umount', [dir]);
    fs.rmdirSync(dir);
  }
}

/** One `error: no space left in <folder> while writing <file>` line; returns the file. */
function noSpace(r: Run, folder: string): string {
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  const m = /^error: no space left in (.+) while writing (\S+)\n$/.exec(r.stderr);
  assert.ok(m, `one no-space line: ${JSON.stringify(r.stderr)}`);
  assert.equal(m[1], folder);
  return m[2]!;
}

describe('a full disk', () => {
  test('assets and extract into a full output folder: one line naming it, the folder as it was, nothing in TMPDIR', async (t) => {
    if (!requireSystem(t, canMountTmpfs)) return;
    for (const [args, ref] of [
      [(out: string) => assetsArgs(refCache, out), refAssets],
      [(out: string) => extractArgs(refCache, out), refExtract],
    ] as const) {
      await withTmpfs(8, async (out) => {
        fs.writeFileSync(path.join(out, 'sentinel'), 'kept as it was');
        const tmpdir = fs.mkdtempSync(path.join(work, 'tmpdir-'));
        const file = noSpace(await polyarch(args(out), tmpdir), out);
        assert.ok(file in ref, `${file} is one of the files being written`);
        assert.deepEqual(fs.readdirSync(out), ['sentinel'], 'no partial file, no staging folder');
        assert.equal(fs.readFileSync(path.join(out, 'sentinel'), 'utf8'), 'kept as it was');
        // tsx keeps its transform cache there (tsx-<uid>); nothing of polyarch may stay.
        assert.deepEqual(fs.readdirSync(tmpdir).filter((f) => !/^tsx-\d+$/.test(f)), []);
      });
    }
    assert.deepEqual(cacheProblems(refCache), []);
    assert.deepEqual(leftovers(refCache), []);
  });

  test('a full cache while fetching, extracting or compressing: one line naming it, no entry a later run trusts, and a run with space is right', async (t) => {
    if (!requireSystem(t, canMountTmpfs)) return;
    // The x86_64 cache takes about 24 MB of RPMs, 99 MB of emulators and 18 MB of tarballs.
    // One pipeline writes them: an RPM is extracted while others download, and a tarball made
    // while others are extracted, so each size runs out in one of two folders, whichever write
    // comes first.
    const rpms: [string, RegExp] = ['', /^[0-9a-f]{64}\.rpm$/];
    const emulators: [string, RegExp] = ['/emulators', /^x86_64-[0-9a-f]{16}\/(qemu-[a-z0-9_]+-static|binfmt\.d\/qemu-[a-z0-9_]+-static\.conf|manifest\.json|rpms\.json|stamps\.json)$/];
    const tarballs: [string, RegExp] = ['/assets/tarballs', /^[0-9a-f]{64}\.(tar\.gz|json)$/];
    const phases: [number, [string, RegExp][]][] = [
      [12, [rpms, emulators]],
      [70, [emulators, tarballs]],
      [130, [emulators, tarballs]],
    ];
    for (const [mb, allowed] of phases) {
      await withTmpfs(mb, async (dir, grow) => {
        const cache = path.join(dir, 'cache');
        const out = path.join(work, `full-cache-${mb}`);
        const r = await polyarch(assetsArgs(cache, out));
        const named = /^error: no space left in (.+) while writing \S+\n$/.exec(r.stderr)?.[1] ?? '';
        const [folder, file] = allowed.find(([f]) => `${cache}${f}` === named) ?? allowed[0]!;
        assert.match(noSpace(r, `${cache}${folder}`), file, `${mb} MB`);
        assert.deepEqual(cacheProblems(cache), [], `${mb} MB`);
        assert.deepEqual(leftovers(cache), [], `${mb} MB`);
        assert.equal(fs.existsSync(out), false, 'no output folder');
        grow();
        const again = await polyarch(assetsArgs(cache, out));
        assert.equal(again.status, 0, again.stderr);
        assert.deepEqual(digests(out), refAssets);
        assert.deepEqual(cacheProblems(cache), []);
      });
    }
    await withTmpfs(12, async (dir, grow) => {
      const cache = path.join(dir, 'cache');
      const out = path.join(work, 'full-cache-extract');
      assert.match(noSpace(await polyarch(extractArgs(cache, out)), cache), /^[0-9a-f]{64}\.rpm$/);
      assert.deepEqual(cacheProblems(cache), []);
      assert.deepEqual(leftovers(cache), []);
      grow();
      const again = await polyarch(extractArgs(cache, out));
      assert.equal(again.status, 0, again.stderr);
      assert.deepEqual(digests(out), refExtract);
    });
  });
});

/**
 * Starts the CLI and sends `signal` the moment `where()` finds its staging folder. A run that
 * finishes before it is seen, or moves its files into place between the sighting and the signal
 * (it exits 0, or says it was stopped with nothing unfinished left and no stage there), is tried
 * again (after `reset`); five misses fail the test.
 */
async function interrupted(args: string[], where: () => string | undefined, signal: NodeJS.Signals, reset: () => void): Promise<{ r: Run; seen: string }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    reset();
    const run = start(args);
    const seen = await waitFor(run.child, where);
    if (seen) {
      run.child.kill(signal);
      const r = await run.done;
      const finished = r.status === 0 || (r.stderr === `error: stopped by ${signal}\n` && !fs.existsSync(seen));
      if (!finished) return { r, seen };
      continue;
    }
    await run.done;
  }
  assert.fail(`never caught ${args[0]} with its staging folder in place`);
}

describe('runs stopped by a signal', () => {
  test('SIGTERM and SIGINT while writing assets or extracting: staging removed, one line, exit 143 or 130, the folder as it was', async () => {
    for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
      for (const [cmd, args] of [['assets', assetsArgs], ['extract', extractArgs]] as const) {
        const out = path.join(work, `stopped-${cmd}-${signal}`);
        const reset = () => {
          fs.rmSync(out, { recursive: true, force: true });
          fs.mkdirSync(out);
          fs.writeFileSync(path.join(out, 'sentinel'), 'kept');
        };
        const { r, seen } = await interrupted(args(refCache, out), () => findEntry(out, `.polyarch-${cmd}-`), signal, reset);
        assert.equal(r.status, code, `${cmd} ${signal}: ${r.stderr}`);
        assert.equal(r.stderr, `error: stopped by ${signal}; unfinished files removed\n`);
        assert.equal(fs.existsSync(seen), false, `${seen} removed`);
        assert.deepEqual(fs.readdirSync(out), ['sentinel'], `${cmd} ${signal}: the folder as it was`);
      }
    }
    assert.deepEqual(cacheProblems(refCache), []);
    assert.deepEqual(leftovers(refCache), []);
  });

  test('SIGTERM while extracting into a cold cache: the cache stage removed, nothing half-made kept', async () => {
    const cache = path.join(work, 'stopped-cold-cache');
    const out = path.join(work, 'stopped-cold-out');
    const { r } = await interrupted(assetsArgs(cache, out), () => findEntry(path.join(cache, 'emulators'), '.polyarch-emulators-'), 'SIGTERM', () => fs.rmSync(cache, { recursive: true, force: true }));
    assert.equal(r.status, 143, r.stderr);
    assert.equal(r.stderr, 'error: stopped by SIGTERM; unfinished files removed\n');
    assert.deepEqual(leftovers(cache), []);
    assert.deepEqual(cacheProblems(cache), []);
    assert.equal(fs.existsSync(out), false);
  });

  test('SIGKILL leaves its staging folder; the next run removes it and writes the right bytes', async () => {
    for (const [cmd, args, ref] of [['assets', assetsArgs, refAssets], ['extract', extractArgs, refExtract]] as const) {
      const out = path.join(work, `killed-${cmd}`);
      const { r, seen } = await interrupted(args(refCache, out), () => findEntry(out, `.polyarch-${cmd}-`), 'SIGKILL', () => fs.rmSync(out, { recursive: true, force: true }));
      assert.equal(r.signal, 'SIGKILL');
      assert.ok(fs.existsSync(seen), `${seen} left behind by the killed run`);
      const again = await polyarch(args(refCache, out));
      assert.equal(again.status, 0, again.stderr);
      assert.deepEqual(digests(out), ref, `${cmd}: the right files and no staging folder`);
    }
    // Killed mid-extraction into a cold cache: the next run sweeps the cache's stage too.
    const cache = path.join(work, 'killed-cold-cache');
    const out = path.join(work, 'killed-cold-out');
    const { seen } = await interrupted(assetsArgs(cache, out), () => findEntry(path.join(cache, 'emulators'), '.polyarch-emulators-'), 'SIGKILL', () => fs.rmSync(cache, { recursive: true, force: true }));
    assert.ok(fs.existsSync(seen), `${seen} left behind by the killed run`);
    const again = await polyarch(assetsArgs(cache, out));
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(digests(out), refAssets);
    assert.deepEqual(leftovers(cache), []);
    assert.deepEqual(cacheProblems(cache), []);
  });
});
