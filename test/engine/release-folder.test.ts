// The release in a local folder (the dev stack's way) through the real engine's whole life
// cycle: preview, up, a no-change up, a rebuilt emulator, refresh, drift, destroy. After every
// step the test looks at the folder itself, not only at the state.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { sha256 } from '../../lib/digest.ts';
import type { Lock } from '../../lib/lock.ts';
import { changes, engineProject, hasEngine, parseJson, urnName, type EngineProject, type Step } from '../helpers/engine.ts';
import { fixtureLock } from '../helpers/program.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';
import { flipByte } from '../helpers/tamper.ts';

const ASSET = 'pulumi-nodejs:dynamic/polyarch:FolderAsset';

let lock: { file: string; cacheDir: string; lock: Lock };
let rebuilt: { file: string; cacheDir: string; lock: Lock };
before(async () => {
  lock = await fixtureLock(['x86_64', 'aarch64']);
  // The same build with one emulator rebuilt: qemu-riscv64-static differs, nothing else.
  rebuilt = await fixtureLock(['x86_64', 'aarch64'], undefined, { alter: 'riscv64' });
});

/** The release folder's files, checked with sha256sum against its own SHA256SUMS. */
function checkFolder(dir: string): string[] {
  const files = fs.readdirSync(dir).sort();
  assert.ok(files.includes('SHA256SUMS'), `${dir}: no SHA256SUMS`);
  const out = execFileSync('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir, encoding: 'utf8' });
  const listed = out.trim().split('\n').map((l) => l.replace(/: OK$/, ''));
  assert.deepEqual([...listed, 'SHA256SUMS'].sort(), files, 'the folder holds exactly what SHA256SUMS lists');
  return files;
}

async function outputs(p: EngineProject): Promise<Record<string, unknown>> {
  return parseJson((await p.ok(['stack', 'output', '--json'])).stdout);
}


test('a folder release: up, no-change up, a rebuilt emulator, refresh, drift and destroy, on the real engine', async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('sha256sum'))) return;
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-'));
  t.after(() => fs.rmSync(folder, { recursive: true, force: true }));
  // A cache of its own holding only both lockfiles' RPMs: the first evaluation extracts and compresses.
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-cache-'));
  t.after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
  for (const { lock: l, cacheDir: from } of [lock, rebuilt]) {
    for (const r of Object.values(l.hosts).flat()) fs.copyFileSync(path.join(from, `${r!.sha256}.rpm`), path.join(cacheDir, `${r!.sha256}.rpm`));
  }
  const p = await engineProject(t, 'folder', {
    config: { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': ['x86_64', 'aarch64'], 'polyarch:release': { folder } },
  });

  const first = (await p.ok(['preview', '--json'])).stdout;
  // The cold evaluation compresses, natively when the copy holds native/build as the checkout does.
  const compressor = fs.existsSync(path.join(p.dir, 'native/build/libdeflate.node')) ? 'native' : 'WebAssembly';
  assert.match(first, new RegExp(`release assets: \\d+ files; [1-9]\\d* tarballs compressed by ${compressor} libdeflate 1\\.26 `));
  const preview = parseJson<{ steps: Step[] }>(first);
  const planned = preview.steps.filter((s) => s.newState?.type === ASSET).map((s) => urnName(s.urn)).sort();
  assert.ok(planned.length > 20, `${planned.length} assets planned`);

  const up = await p.ok(['up', '--yes']);
  // Evaluation reports its work through the engine's log, so a long cold run is never silent.
  assert.match(up.stdout, /x86_64: \d+ emulators/);
  assert.match(up.stdout, /release assets: \d+ files; \d+ tarballs compressed/);
  const dir = path.join(folder, 'v9.2.4-1');
  const files = checkFolder(dir);
  assert.deepEqual(files.map((f) => `release-${f}`), planned);
  const digests = (await outputs(p)).releaseDigests as Record<string, string>;
  for (const f of files) assert.equal(digests[f], sha256(fs.readFileSync(path.join(dir, f))), `${f}: state and folder agree`);
  assert.equal(fs.statSync(path.join(dir, 'qemu-aarch64-static')).mode & 0o777, 0o755);

  // Nothing changed, so nothing may change.
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // One rebuilt emulator: its raw file, its tarballs, the SBOM and SHA256SUMS update in place; nothing else moves.
  await p.setConfig('polyarch:lockFile', rebuilt.file);
  const diff = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--diff', '--json'])).stdout);
  assert.deepEqual(changes(diff.steps), [
    'update release-SHA256SUMS',
    'update release-aarch64_qemu-riscv64-static.tar.gz',
    'update release-qemu-riscv64-static',
    'update release-qemu-riscv64-static.tar.gz',
    'update release-sbom.spdx.json',
    'update release-x86_64_qemu-riscv64-static.tar.gz',
  ].filter((c) => planned.includes(c.split(' ')[1]!)));
  const before = sha256(fs.readFileSync(path.join(dir, 'qemu-arm-static')));
  await p.ok(['up', '--yes']);
  checkFolder(dir);
  assert.match(fs.readFileSync(path.join(dir, 'qemu-riscv64-static')).subarray(-26).toString(), /rebuilt/);
  assert.equal(sha256(fs.readFileSync(path.join(dir, 'qemu-arm-static'))), before, 'an unchanged emulator is untouched');

  // After in-place updates, refresh reads the folder and finds what the state says.
  await p.ok(['refresh', '--yes', '--expect-no-changes']);

  // Drift: a file changed by hand shows on refresh, and the next up puts the release back.
  fs.appendFileSync(path.join(dir, 'qemu-arm-static'), 'tampered');
  fs.rmSync(path.join(dir, 'SHA256SUMS'));
  const drift = await p.pulumi(['refresh', '--yes', '--expect-no-changes']);
  assert.notEqual(drift.code, 0, 'refresh must see the changed and the missing file');
  await p.ok(['refresh', '--yes']);
  await p.ok(['up', '--yes']);
  checkFolder(dir);
  assert.equal(sha256(fs.readFileSync(path.join(dir, 'qemu-arm-static'))), before);
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // Destroy removes every file it wrote, and only those.
  fs.writeFileSync(path.join(dir, 'NOTES.txt'), 'a file of the user\n');
  await p.ok(['destroy', '--yes']);
  assert.deepEqual(fs.readdirSync(dir), ['NOTES.txt']);
  const state = parseJson<{ deployment: { resources?: unknown[] } }>((await p.ok(['stack', 'export'])).stdout);
  assert.deepEqual(state.deployment.resources ?? [], []);
});

test('a release folder that is a symlink, has a symlinked parent or is a file: up fails with one line naming it, and nothing is written anywhere', async (t) => {
  if (!requireSystem(t, isRoot, hasEngine)) return;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-links-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  // Stands in for /etc: a folder the links point at, whose listing must not change.
  const elsewhere = path.join(root, 'elsewhere');
  fs.mkdirSync(elsewhere);
  fs.writeFileSync(path.join(elsewhere, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.symlinkSync(elsewhere, path.join(root, 'linked'));
  fs.symlinkSync(elsewhere, path.join(root, 'via'));
  fs.writeFileSync(path.join(root, 'file'), 'a file of the user\n');
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-cache-'));
  t.after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
  for (const r of Object.values(lock.lock.hosts).flat()) fs.copyFileSync(path.join(lock.cacheDir, `${r!.sha256}.rpm`), path.join(cacheDir, `${r!.sha256}.rpm`));
  const p = await engineProject(t, 'folder-links', {
    config: { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': ['x86_64'], 'polyarch:release': { folder: path.join(root, 'linked') } },
  });
  const listing = () => execFileSync('find', [root, '-printf', '%p %y %s\\n'], { encoding: 'utf8' }).split('\n').sort().join('\n');
  const before = listing();
  const cases: [string, string][] = [
    [path.join(root, 'linked'), `${path.join(root, 'linked', 'v9.2.4-1')}: ${path.join(root, 'linked')} is a symlink to ${elsewhere}; give a path without symlinks as the output folder`],
    [path.join(root, 'via', 'release'), `${path.join(root, 'via', 'release', 'v9.2.4-1')}: ${path.join(root, 'via')} is a symlink to ${elsewhere}; give a path without symlinks as the output folder`],
    [path.join(root, 'file'), `${path.join(root, 'file', 'v9.2.4-1')}: ${path.join(root, 'file')} is not a folder`],
  ];
  for (const [folder, message] of cases) {
    await p.ok(['config', 'set', '--path', 'polyarch:release.folder', folder]);
    const up = await p.pulumi(['up', '--yes']);
    assert.notEqual(up.code, 0, `${folder}: up must fail`);
    const lines = (up.stdout + up.stderr).split('\n').filter((l) => l.includes(message));
    assert.ok(lines.length > 0, `${folder}: no line says ${JSON.stringify(message)}:\n${up.stdout}${up.stderr}`);
    // One line: no stack frames of the provider after it.
    assert.doesNotMatch(up.stdout + up.stderr, /^\s+at .+:\d+:\d+\)?$/m, `${folder}: a stack trace was printed`);
    assert.equal(listing(), before, `${folder}: something was written`);
  }
});

test('a byte flipped in each cache (RPM, emulator, tarball; same size and mtime) never reaches the release folder, on the real engine', async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('sha256sum'), hasCommand('touch'))) return;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-release-flip-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const cacheDir = path.join(root, 'cache');
  fs.mkdirSync(cacheDir);
  for (const r of Object.values(lock.lock.hosts).flat()) fs.copyFileSync(path.join(lock.cacheDir, `${r!.sha256}.rpm`), path.join(cacheDir, `${r!.sha256}.rpm`));
  const p = await engineProject(t, 'folder-flip', {
    config: { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': ['x86_64'], 'polyarch:release': { folder: path.join(root, 'first') } },
  });
  await p.ok(['up', '--yes']);
  const first = path.join(root, 'first', 'v9.2.4-1');
  checkFolder(first);
  const pinned = Object.fromEntries(fs.readdirSync(first).map((f) => [f, sha256(fs.readFileSync(path.join(first, f)))]));

  // One file of each cache, flipped where it lies: no release file may be a link to any of them.
  const [extraction] = fs.readdirSync(path.join(cacheDir, 'emulators')).filter((n) => !n.startsWith('.'));
  const emulator = path.join(cacheDir, 'emulators', extraction!, 'qemu-aarch64-static');
  const tarballs = path.join(cacheDir, 'assets', 'tarballs');
  const tarball = fs.readdirSync(tarballs).map((f) => path.join(tarballs, f)).find((f) => f.endsWith('.tar.gz') && sha256(fs.readFileSync(f)) === pinned['qemu-arm-static.tar.gz'])!;
  const rpm = path.join(cacheDir, `${lock.lock.hosts.x86_64!.find((r) => r.emulators.includes('aarch64'))!.sha256}.rpm`);
  const inodes = new Set([emulator, tarball, rpm].map((f) => fs.statSync(f).ino));
  for (const f of fs.readdirSync(first)) assert.ok(!inodes.has(fs.statSync(path.join(first, f)).ino), `${f} shares an inode with the cache`);
  flipByte(emulator);
  flipByte(tarball);
  // The published folder is untouched, and a no-change up finds nothing to do: evaluation made
  // the flipped entries again, the emulators from the pinned RPMs (it says so).
  const published = () => Object.fromEntries(fs.readdirSync(first).map((f) => [f, sha256(fs.readFileSync(path.join(first, f)))]));
  assert.deepEqual(published(), pinned);
  const same = await p.ok(['up', '--yes', '--expect-no-changes']);
  assert.match(same.stdout, /qemu-aarch64-static: not the file extracted \(its stamp changed/);

  // A new folder gets every file again, from the caches as evaluation left them: the pinned bytes.
  await p.ok(['config', 'set', '--path', 'polyarch:release.folder', path.join(root, 'second')]);
  await p.ok(['up', '--yes']);
  const second = path.join(root, 'second', 'v9.2.4-1');
  checkFolder(second);
  assert.deepEqual(Object.fromEntries(fs.readdirSync(second).map((f) => [f, sha256(fs.readFileSync(path.join(second, f)))])), pinned);

  // The RPM itself, with the extraction flipped again so it must be read: its digest is checked,
  // the pinned URL (koji is gone here) cannot give it again, and the up is refused naming it.
  flipByte(rpm);
  flipByte(emulator);
  const refused = await p.pulumi(['up', '--yes']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stdout + refused.stderr, /error: http:\/\/127\.0\.0\.1:\d+\/packages\/qemu\/9\.2\.4\/1\.fc42\/x86_64\/qemu-user-static-aarch64-9\.2\.4-1\.fc42\.x86_64\.rpm: /);
  // The release moved to the second folder; it is as it was.
  checkFolder(second);
  assert.deepEqual(Object.fromEntries(fs.readdirSync(second).map((f) => [f, sha256(fs.readFileSync(path.join(second, f)))])), pinned);
});
