// A stack's emulators are extracted once per set of pins and reused; a damaged cache is
// extracted again, never trusted and never fatal.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, test } from 'node:test';
import { extractionKey, prepareEmulators, prepareStackEmulators } from '../lib/emulators.ts';
import type { Lock } from '../lib/lock.ts';
import { fixtureLock } from './helpers/program.ts';

let lock: Lock;
let cacheDir = '';
before(async () => {
  ({ lock, cacheDir } = await fixtureLock(['x86_64']));
});

test('extracted once, reused, and extracted again when the cache was damaged', async () => {
  const emulatorsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-emu-'));
  const o = { cacheDir, emulatorsDir, targets: 'all' as const };
  const first = await prepareEmulators(lock, 'x86_64', o);
  assert.equal(first.dir, path.join(emulatorsDir, extractionKey(lock, 'x86_64')));
  const arm = path.join(first.dir, 'qemu-arm-static');
  const inode = fs.statSync(arm).ino;
  assert.deepEqual(await prepareEmulators(lock, 'x86_64', o), first);
  assert.equal(fs.statSync(arm).ino, inode, 'the second run reused the files');

  fs.writeFileSync(path.join(first.dir, 'manifest.json'), '{"truncated');
  assert.deepEqual((await prepareEmulators(lock, 'x86_64', o)).emulators, first.emulators);
  fs.truncateSync(arm, 10);
  const again = await prepareEmulators(lock, 'x86_64', o);
  assert.equal(fs.statSync(arm).size, again.emulators.find((e) => e.cpu === 'arm')!.size, 'a cut-short emulator was extracted again');
});

test('a host the lockfile does not pin is named, with the command that fixes it', async () => {
  await assert.rejects(prepareStackEmulators({ lockFile: 'qemu.lock.json', hosts: ['s390x'], targets: ['all'], cacheDir }, lock), {
    message: 'qemu.lock.json pins no RPMs for host(s) s390x; run polyarch lock with --hosts s390x',
  });
});

test('progress: a cold host says what it fetches and how long extraction took; a warm one says it reused', async () => {
  const emulatorsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-emu-'));
  const said: string[] = [];
  const o = { cacheDir, emulatorsDir, targets: 'all' as const, progress: (m: string) => said.push(m) };
  await prepareEmulators(lock, 'x86_64', o);
  const rpms = lock.hosts.x86_64!.length;
  assert.match(said[0]!, new RegExp(`^x86_64: fetching and extracting ${rpms} RPMs \\(\\d+\\.\\d MB\\) \\.\\.\\.$`));
  const extracted = /^x86_64: (\d+) emulators \(\d+\.\d MB\) extracted in \d+\.\d s$/.exec(said[1]!);
  assert.ok(extracted, said[1]);
  said.length = 0;
  await prepareEmulators(lock, 'x86_64', o);
  assert.deepEqual(said, [`x86_64: ${extracted[1]} emulators already extracted`]);
});
