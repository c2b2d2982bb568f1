// Nothing in a release that the lockfile does not pin: a byte flipped in any cache (RPMs,
// extracted emulators, tarballs), at the same size and with the mtime put back, never reaches
// `polyarch assets`. The flipped entry is made again from the pinned RPM, fetched again when
// the RPM itself was hit, or the run is refused when it cannot be.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createLock, writeLock } from '../../lib/lock.ts';
import { kojiTree, startKoji } from '../fixtures/koji.ts';
import { buildFixtureRpms, SPLIT_BUILD } from '../fixtures/rpms.ts';
import { hasCommand, requireSystem } from '../helpers/system.ts';
import { flipByte } from '../helpers/tamper.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `polyarch …`, asynchronous: the loopback koji answers from this process. */
function polyarch(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/polyarch.js'), ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

/** Every file of a folder with its bytes' digest. */
const contents = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, sha256(fs.readFileSync(path.join(dir, f)))]));

test('polyarch assets --lock: a byte flipped in the tarball, emulator or RPM cache (same size and mtime) never reaches the release', async (t) => {
  if (!requireSystem(t, hasCommand('sha256sum'), hasCommand('touch'))) return;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-provenance-'));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  const koji = await startKoji(kojiTree(buildFixtureRpms({ host: 'x86_64', layout: 'split', compression: 'zstd' }), SPLIT_BUILD, 'x86_64', path.join(work, 'koji')));
  let served = true;
  t.after(() => (served ? koji.close() : undefined));
  const cache = path.join(work, 'cache');
  const lock = await createLock({ ...SPLIT_BUILD, hosts: ['x86_64'], koji: koji.url, cacheDir: cache });
  const lockFile = path.join(work, 'qemu.lock.json');
  await writeLock(lockFile, lock);
  const run = (out: string) => polyarch(['assets', '--lock', lockFile, '--out', path.join(work, out), '--cache', cache]);

  const first = await run('first');
  assert.equal(first.status, 0, first.stderr);
  const pinned = contents(path.join(work, 'first'));
  const [extraction] = fs.readdirSync(path.join(cache, 'emulators')).filter((n) => !n.startsWith('.'));
  const emulator = path.join(cache, 'emulators', extraction!, 'qemu-aarch64-static');
  const aarch64 = lock.hosts.x86_64!.find((r) => r.emulators.includes('aarch64'))!;
  const rpm = path.join(cache, `${aarch64.sha256}.rpm`);
  /** A run that must give the very release the lockfile pins. */
  const same = async (out: string) => {
    const r = await run(out);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, first.stdout, `${out}: the same listing`);
    assert.deepEqual(contents(path.join(work, out)), pinned, `${out}: the same bytes`);
    execFileSync('sha256sum', ['--quiet', '--strict', '-c', 'SHA256SUMS'], { cwd: path.join(work, out) });
  };

  // Tarballs: the flipped one is compressed again from its emulator.
  const tarballs = path.join(cache, 'assets', 'tarballs');
  const tarball = fs.readdirSync(tarballs).filter((f) => f.endsWith('.tar.gz')).map((f) => path.join(tarballs, f)).find((f) => sha256(fs.readFileSync(f)) === pinned['qemu-aarch64-static.tar.gz'])!;
  flipByte(tarball);
  await same('tarball');
  assert.equal(sha256(fs.readFileSync(tarball)), pinned['qemu-aarch64-static.tar.gz'], 'the cache entry was made again');

  // Emulators: the extraction is made again from the (verified) RPMs.
  flipByte(emulator);
  await same('emulator');
  assert.equal(sha256(fs.readFileSync(emulator)), pinned['qemu-aarch64-static']);

  // RPMs: read only to extract, so the emulator is flipped too; the RPM's digest is checked on
  // read and it is fetched again from the URL the lockfile pins.
  flipByte(rpm);
  flipByte(emulator);
  await same('rpm');
  assert.equal(sha256(fs.readFileSync(rpm)), aarch64.sha256, 'the RPM was fetched again');

  // And when it cannot be fetched again, the run is refused: one line, nothing written.
  flipByte(rpm);
  flipByte(emulator);
  await koji.close();
  served = false;
  const refused = await run('refused');
  assert.equal(refused.status, 1);
  // After the retry notices, one error line naming the pinned URL.
  const lines = refused.stderr.trimEnd().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('error:')).length, 1, refused.stderr);
  assert.ok(lines.at(-1)!.startsWith(`error: ${aarch64.url}: `), refused.stderr);
  assert.ok(!fs.existsSync(path.join(work, 'refused')) || fs.readdirSync(path.join(work, 'refused')).length === 0, 'nothing written');
});
