// The Pulumi program under mocks: it validates config once at start and wires the lockfile.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { writeLock, type Lock } from '../lib/lock.ts';

pulumi.runtime.setMocks(
  { newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: (a) => a.inputs },
  'qemu-user-static', 'dev', true,
);

const lock: Lock = {
  qemu: { version: '9.2.4', release: '1.fc42' },
  koji: 'http://127.0.0.1:1',
  hosts: {
    x86_64: [{ name: 'qemu-user-static-arm', url: 'http://127.0.0.1:1/a.rpm', size: 10, sha256: 'a'.repeat(64), emulators: ['arm', 'armeb'] }],
    aarch64: [{ name: 'qemu-user-static-x86', url: 'http://127.0.0.1:1/b.rpm', size: 10, sha256: 'b'.repeat(64), emulators: ['i386', 'x86_64'] }],
  },
};
let n = 0;
/** Loads a fresh copy of index.ts with this stack config. */
async function program(config: Record<string, string>) {
  pulumi.runtime.setAllConfig(config);
  return import(`../index.ts?case=${n++}`);
}

test('dev-like stack: release name and the emulators each host publishes', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-prog-')), 'qemu.lock.json');
  await writeLock(file, lock);
  const p = await program({ 'polyarch:lockFile': file, 'polyarch:hosts': '["x86_64","aarch64"]' });
  assert.equal(p.release, 'v9.2.4-1');
  assert.deepEqual(p.emulators, { x86_64: ['arm', 'armeb'], aarch64: ['i386', 'x86_64'] });
  // Named targets resolve aliases to their emulator: i486 runs on qemu-i386.
  const named = await program({ 'polyarch:lockFile': file, 'polyarch:hosts': '["aarch64"]', 'polyarch:targets': '["i486","x86_64"]' });
  assert.deepEqual(named.emulators, { aarch64: ['i386', 'x86_64'] });
});

test('bad config stops the program before anything is declared', async () => {
  await assert.rejects(program({ 'polyarch:hosts': '["sparc"]' }), /invalid stack config: polyarch:hosts\.0: unknown host arch "sparc"/);
});

test('a host the lockfile does not pin is named', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-prog-')), 'qemu.lock.json');
  await writeLock(file, lock);
  await assert.rejects(program({ 'polyarch:lockFile': file, 'polyarch:hosts': '["s390x"]' }), /pins no RPMs for host\(s\) s390x/);
});
