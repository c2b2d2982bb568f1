// Every host the stacks publish for, proven by running its emulators under emulation: the
// x86_64 host's qemu-ppc64le / qemu-s390x / qemu-aarch64 (registered with the register
// script) run the ppc64le, s390x and aarch64 hosts' emulators, extracted from the fixture
// RPMs, and those run a foreign busybox. binfmt_misc is snapshotted and restored.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { extractToDir } from '../../lib/extract.ts';
import { buildFixtureRpms, type FixtureHost } from '../fixtures/rpms.ts';
import { entriesMatching, guardBinfmt, hasBinfmtMisc, readEntries, removeEntry, runScript, SHELLS, tmpDir } from '../helpers/binfmt.ts';
import { debianPackage } from '../helpers/debian.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';

const probes = [isRoot, hasBinfmtMisc, hasCommand('rpmbuild'), hasCommand('apt-get'), hasCommand('dpkg-deb'), hasCommand('bash'), hasCommand('dash')];

/** e_machine and byte order of each host's own binaries. */
const HOST_ELF: Record<Exclude<FixtureHost, 'x86_64'>, { machine: number; le: boolean }> = {
  ppc64le: { machine: 21, le: true },
  s390x: { machine: 22, le: false },
  aarch64: { machine: 183, le: true },
};

const CASES = [
  { host: 'ppc64le', target: 'aarch64', busybox: 'arm64', prints: 'aarch64' },
  { host: 's390x', target: 'aarch64', busybox: 'arm64', prints: 'aarch64' },
  { host: 'aarch64', target: 'x86_64', busybox: 'amd64', prints: 'x86_64' },
] as const;

/** The emulators of one host's fixture RPMs, extracted into a folder of their own. */
async function hostEmulators(host: FixtureHost, dir: string): Promise<string> {
  const out = path.join(dir, host);
  const rpms = buildFixtureRpms({ host, layout: 'split', compression: 'zstd' });
  await extractToDir(rpms.map((f) => ({ buf: fs.readFileSync(f), label: f })), out);
  return out;
}

for (const c of CASES) {
  test(`the ${c.host} host's qemu-${c.target}-static runs the ${c.busybox} busybox (under the x86_64 host's qemu-${c.host})`, async (t) => {
    if (!requireSystem(t, ...probes)) return;
    guardBinfmt(t);
    for (const name of readEntries().keys()) if (name.startsWith('qemu-')) removeEntry(name);
    const dir = tmpDir(t);
    const x86 = await hostEmulators('x86_64', dir);
    const foreign = await hostEmulators(c.host, dir);
    const emulator = path.join(foreign, `qemu-${c.target}-static`);
    const busybox = path.join(debianPackage('busybox-static', c.busybox), 'bin', 'busybox');

    // It is the host's binary: its ELF header names the host's CPU.
    const head = fs.readFileSync(emulator).subarray(0, 20);
    const { machine, le } = HOST_ELF[c.host];
    assert.equal(le ? head.readUInt16LE(18) : head.readUInt16BE(18), machine, `${emulator} is a ${c.host} binary`);

    // Without an entry for the host's CPU, this kernel cannot run it.
    assert.deepEqual(entriesMatching(emulator), []);
    const before = spawnSync('bash', ['-c', '"$0" "$1" uname -m', emulator, busybox], { encoding: 'utf8' });
    assert.equal(before.status, 126, before.stderr);
    assert.match(before.stderr, /Exec format error/);

    // The x86_64 host's emulator for it, registered by the script from the extracted x86_64 RPMs.
    const r = runScript(SHELLS[0], ['-p', 'yes', '--targets', c.host, '--qemu-path', x86]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(entriesMatching(emulator), [`qemu-${c.host}`]);
    if (c.busybox === 'arm64') assert.deepEqual(entriesMatching(busybox), [], 'the busybox is run by the emulator, not by binfmt_misc');

    const started = Date.now();
    const u = spawnSync(emulator, [busybox, 'uname', '-m'], { encoding: 'utf8', timeout: 180_000 });
    t.diagnostic(`${c.host} qemu-${c.target} under x86_64 qemu-${c.host}: ${Date.now() - started} ms`);
    assert.equal(u.error, undefined, String(u.error));
    assert.equal(u.status, 0, u.stderr);
    assert.equal(u.stdout.trim(), c.prints);
  });
}
