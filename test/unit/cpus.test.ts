import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CPUS, HOST_ARCHES, cpuNames, entryPlatform, findCpu, hostCpu, hostFamily, runsNatively, targetsFor } from '../../lib/cpus.ts';

// Every CPU of QEMU user mode today, as the issue lists them.
const QEMU_USER_CPUS = [
  'aarch64', 'aarch64_be', 'alpha', 'arm', 'armeb', 'hexagon', 'hppa', 'i386', 'loongarch64', 'm68k',
  'microblaze', 'microblazeel', 'mips', 'mipsel', 'mips64', 'mips64el', 'mipsn32', 'mipsn32el', 'or1k',
  'ppc', 'ppc64', 'ppc64le', 'riscv32', 'riscv64', 's390x', 'sh4', 'sh4eb', 'sparc', 'sparc32plus',
  'sparc64', 'x86_64', 'xtensa', 'xtensaeb',
];

test('the table has every QEMU user-mode CPU, once', () => {
  for (const name of QEMU_USER_CPUS) assert.ok(findCpu(name)?.name === name, `missing ${name}`);
  assert.equal(new Set(cpuNames()).size, CPUS.length);
  assert.deepEqual(cpuNames(), CPUS.map((c) => c.name));
});

test('names and aliases are unique and resolve to their CPU', () => {
  const seen = new Map<string, string>();
  for (const cpu of CPUS) {
    for (const key of [cpu.name, ...cpu.aliases]) {
      assert.ok(!seen.has(key), `"${key}" used by ${seen.get(key)} and ${cpu.name}`);
      seen.set(key, cpu.name);
      assert.equal(findCpu(key), cpu);
    }
  }
  assert.equal(findCpu('nope'), undefined);
  assert.equal(findCpu('AARCH64'), undefined);
});

test('aliases as QEMU and the distributions spell them', () => {
  const cases: Record<string, string> = {
    arm64: 'aarch64', amd64: 'x86_64', i686: 'i386', i586: 'i386', armhf: 'arm', armel: 'arm', armv7l: 'arm',
    ppc64el: 'ppc64le', mips64le: 'mips64el', mipsle: 'mipsel', loong64: 'loongarch64', powerpc: 'ppc',
  };
  for (const [alias, name] of Object.entries(cases)) assert.equal(findCpu(alias)?.name, name, alias);
  // i486 binaries have their own e_machine (EM_486); QEMU registers them for qemu-i386.
  const i486 = findCpu('i486');
  assert.equal(i486?.emulator, 'i386');
  assert.equal(i486?.family, 'i386');
  for (const cpu of CPUS) if (cpu.name !== 'i486') assert.equal(cpu.emulator, cpu.name);
});

test('magic and mask are well-formed ELF header patterns', () => {
  for (const cpu of CPUS) {
    assert.match(cpu.magic, /^(?:[0-9a-f]{2})+$/, cpu.name);
    assert.match(cpu.mask, /^(?:[0-9a-f]{2})+$/, cpu.name);
    assert.equal(cpu.magic.length, cpu.mask.length, `${cpu.name}: magic and mask lengths`);
    assert.equal(cpu.offset, 0);
    assert.ok(cpu.magic.length / 2 <= 256);
    assert.ok(cpu.magic.startsWith('7f454c46'), `${cpu.name}: ELF magic`);
    assert.ok(cpu.mask.startsWith('ffffffff'), `${cpu.name}: mask keeps the ELF magic`);
    const m = Buffer.from(cpu.magic, 'hex');
    // Class and data bytes must agree with e_machine's byte order.
    const data = m[5];
    assert.ok(data === 1 || data === 2, `${cpu.name}: EI_DATA`);
    assert.equal(data === 1 ? m[16] : m[17], 2, `${cpu.name}: e_type ET_EXEC in the right byte order`);
  }
});

/** An ELF header of `cpu`'s kind, as a toolchain would write it (bits outside the mask random). */
function headerFor(cpu: (typeof CPUS)[number], seed: number): Buffer {
  const h = Buffer.alloc(64);
  let x = seed;
  for (let i = 0; i < h.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    h[i] = x >>> 24;
  }
  const m = Buffer.from(cpu.magic, 'hex');
  const k = Buffer.from(cpu.mask, 'hex');
  m.forEach((b, i) => (h[i] = ((h[i] as number) & ~(k[i] as number)) | (b & (k[i] as number))));
  return h;
}

const matches = (cpu: (typeof CPUS)[number], h: Buffer) => {
  const m = Buffer.from(cpu.magic, 'hex');
  const k = Buffer.from(cpu.mask, 'hex');
  // The kernel's test: no bit under the mask differs.
  return m.every((b, i) => (((h[cpu.offset + i] as number) ^ b) & (k[i] as number)) === 0);
};

test('no two CPUs claim the same binary', () => {
  for (const cpu of CPUS) {
    for (let seed = 1; seed <= 50; seed++) {
      const h = headerFor(cpu, seed);
      const claimants = CPUS.filter((c) => matches(c, h)).map((c) => c.name);
      assert.deepEqual(claimants, [cpu.name], `a ${cpu.name} header is claimed by ${claimants.join(', ')}`);
    }
  }
});

test('Docker platforms are unique and well-formed', () => {
  const platforms = CPUS.flatMap((c) => (c.platform ? [c.platform] : []));
  assert.equal(new Set(platforms).size, platforms.length);
  for (const p of platforms) assert.match(p, /^linux\/[a-z0-9]+(?:\/v\d)?$/);
  const expected: Record<string, string> = {
    aarch64: 'linux/arm64', arm: 'linux/arm/v7', i386: 'linux/386', x86_64: 'linux/amd64', ppc64le: 'linux/ppc64le',
    s390x: 'linux/s390x', riscv64: 'linux/riscv64', mips64el: 'linux/mips64le', loongarch64: 'linux/loong64',
  };
  for (const [name, platform] of Object.entries(expected)) assert.equal(findCpu(name)?.platform, platform, name);
});

test('entryPlatform: the platform of a qemu-<cpu> entry, by name or alias, else null', () => {
  assert.equal(entryPlatform('qemu-aarch64'), 'linux/arm64');
  assert.equal(entryPlatform('qemu-arm64'), 'linux/arm64');
  assert.equal(entryPlatform('qemu-arm'), 'linux/arm/v7');
  // A CPU without an OCI platform, an entry of no table CPU, a name without the prefix.
  for (const name of ['qemu-alpha', 'qemu-polyarch-x', 'aarch64', 'qemu-', '']) assert.equal(entryPlatform(name), null, name);
});

test('hostFamily maps uname -m spellings', () => {
  const cases: Record<string, string> = {
    x86_64: 'i386', i686: 'i386', aarch64: 'arm', armv7l: 'arm', armv8l: 'arm', armv5tel: 'arm', aarch64_be: 'armeb',
    armv7b: 'armeb', ppc64le: 'ppcle', ppc64: 'ppc', s390x: 's390x', mips64: 'mips', mips: 'mips', riscv64: 'riscv', riscv32: 'riscv',
    sparc64: 'sparc', loongarch64: 'loongarch', parisc64: 'hppa', sh4: 'sh4', m68k: 'm68k', alpha: 'alpha',
  };
  for (const [machine, family] of Object.entries(cases)) assert.equal(hostFamily(machine), family, machine);
});

test('targetsFor leaves out the host family (and retired CPUs) by default', () => {
  for (const host of HOST_ARCHES) {
    const family = hostFamily(host);
    const names = targetsFor(host).map((c) => c.name);
    assert.deepEqual(targetsFor(host, 'all'), targetsFor(host));
    assert.ok(!names.includes(host === 'x86_64' ? 'x86_64' : host), `${host} registers itself`);
    for (const cpu of CPUS) {
      assert.equal(names.includes(cpu.name), cpu.family !== family && cpu.removedIn === undefined, `${host}: ${cpu.name}`);
    }
  }
  const x86 = targetsFor('x86_64').map((c) => c.name);
  for (const n of ['i386', 'i486', 'x86_64', 'cris']) assert.ok(!x86.includes(n), n);
  for (const n of ['aarch64', 'arm', 'ppc64le', 's390x', 'riscv64', 'hexagon', 'loongarch64']) assert.ok(x86.includes(n), n);
  // ppc64le hosts still need the big-endian ppc CPUs.
  assert.ok(targetsFor('ppc64le').some((c) => c.name === 'ppc64'));
  assert.ok(!targetsFor('aarch64').some((c) => c.name === 'arm'));
});

test('targetsFor with a list: exactly those, aliases resolved, table order, unknown names refused', () => {
  assert.deepEqual(targetsFor('x86_64', ['s390x', 'arm64', 'aarch64', 'x86_64']).map((c) => c.name), ['aarch64', 's390x', 'x86_64']);
  assert.deepEqual(targetsFor('x86_64', ['cris']).map((c) => c.name), ['cris']);
  assert.throws(() => targetsFor('x86_64', ['aarch64', 'pdp11']), { message: /^unknown CPU "pdp11" \(valid: aarch64, aarch64_be, .*xtensaeb\)$/ });
  assert.throws(() => targetsFor('vax' as 'x86_64'), { message: /^unknown host arch "vax" \(valid: x86_64, aarch64, ppc64le, s390x\)$/ });
});

test('riscv32 and riscv64 are one family, as in QEMU: a riscv64 host skips both unless ignoreFamily', () => {
  assert.equal(findCpu('riscv32')?.family, findCpu('riscv64')?.family);
  const r32 = findCpu('riscv32')!;
  const r64 = findCpu('riscv64')!;
  assert.equal(runsNatively('riscv64', r32), true);
  assert.equal(runsNatively('riscv64', r64), true);
  assert.equal(runsNatively('riscv64', r32, true), false);
  assert.equal(runsNatively('riscv64', r64, true), true);
});

test('hostCpu: uname -m spellings to the table CPU, as QEMU normalizes them', () => {
  const cases: Record<string, string | undefined> = {
    x86_64: 'x86_64', amd64: 'x86_64', i686: 'i386', i386: 'i386', i486: 'i486', aarch64: 'aarch64', arm64: 'aarch64',
    armv7l: 'arm', armv8l: 'arm', armv4tl: 'arm', armv7b: 'armeb', ppc64le: 'ppc64le', ppc64el: 'ppc64le', powerpc: 'ppc',
    s390x: 's390x', riscv64: 'riscv64', mips64: 'mips64', parisc64: undefined, vax: undefined,
  };
  for (const [machine, cpu] of Object.entries(cases)) assert.equal(hostCpu(machine)?.name, cpu, machine);
});

test('targetsFor with ignoreFamily: the family is registered but for the host’s own CPU (and what its emulator runs)', () => {
  const names = (host: (typeof HOST_ARCHES)[number]) => targetsFor(host, 'all', { ignoreFamily: true }).map((c) => c.name);
  const x86 = names('x86_64');
  for (const n of ['i386', 'i486']) assert.ok(x86.includes(n), n);
  assert.ok(!x86.includes('x86_64'));
  const arm = names('aarch64');
  assert.ok(arm.includes('arm') && !arm.includes('aarch64'));
  // ppc64le's family is ppc64le alone: nothing changes there.
  assert.deepEqual(names('ppc64le'), targetsFor('ppc64le').map((c) => c.name));
  for (const host of HOST_ARCHES) {
    assert.deepEqual(targetsFor(host, 'all', { ignoreFamily: false }), targetsFor(host));
    const own = hostCpu(host)!;
    assert.ok(!names(host).some((n) => findCpu(n)!.emulator === own.emulator), host);
  }
});
