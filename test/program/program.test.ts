// The Pulumi program under mocks: it validates config once at start, extracts the locked
// emulators for each host, and publishes those among the stack's targets.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { fixtureLock, loadProgram } from '../helpers/program.ts';

let lockFile = '';
let cacheDir = '';
before(async () => {
  ({ file: lockFile, cacheDir } = await fixtureLock(['x86_64', 'aarch64']));
});

test('two hosts: release name and the emulators each host publishes', async () => {
  const { outputs } = await loadProgram({ 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["x86_64","aarch64"]' });
  assert.equal(outputs.release, 'v9.2.4-1');
  // Each host leaves out its own family: x86_64 skips i386 and x86_64; aarch64 skips aarch64 and arm.
  assert.deepEqual(outputs.emulators, {
    x86_64: ['aarch64', 'aarch64_be', 'arm', 'armeb', 'ppc64le', 'riscv64', 's390x'],
    aarch64: ['aarch64_be', 'armeb', 'i386', 'ppc64le', 'riscv64', 's390x', 'x86_64'],
  });
});

test('named targets resolve aliases to their emulator: i486 runs on qemu-i386', async () => {
  const { outputs } = await loadProgram({ 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["aarch64"]', 'polyarch:targets': '["i486","x86_64"]' });
  assert.deepEqual(outputs.emulators, { aarch64: ['i386', 'x86_64'] });
});

test('bad config stops the program before anything is declared', async () => {
  await assert.rejects(loadProgram({ 'polyarch:hosts': '["sparc"]' }), /invalid stack config: polyarch:hosts\.0: unknown host arch "sparc"/);
});

test('a host the lockfile does not pin is named', async () => {
  await assert.rejects(loadProgram({ 'polyarch:lockFile': lockFile, 'polyarch:hosts': '["s390x"]' }), /pins no RPMs for host\(s\) s390x/);
});
