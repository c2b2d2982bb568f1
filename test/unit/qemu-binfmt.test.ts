// The CPU table held to QEMU's own register lines (test/fixtures/qemu-binfmt.ts, taken from
// QEMU's scripts/qemu-binfmt-conf.sh): every Linux binary QEMU's line hands to an emulator,
// ours hands to the same one, and no line of ours claims another CPU's binaries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { registerLine } from '../../lib/binfmt.ts';
import { CPUS, findCpu, type Cpu } from '../../lib/cpus.ts';
import { QEMU_BINFMT } from '../fixtures/qemu-binfmt.ts';
import { accepts, elfHeader, ET_EXEC, linuxHeaders, patternOf } from '../helpers/elf.ts';

const cpu = (name: string): Cpu => findCpu(name) ?? assert.fail(`the table has no ${name}`);
const claimants = (h: Buffer) => CPUS.filter((c) => accepts(c, h)).map((c) => c.name);

test('the table knows every CPU of QEMU’s script, with QEMU’s emulator and family', () => {
  assert.equal(QEMU_BINFMT.length, 34);
  for (const row of QEMU_BINFMT) {
    const c = cpu(row.cpu);
    assert.equal(c.family, row.family, `${row.cpu}: family`);
    assert.ok(row.line.endsWith(`:/usr/local/bin/qemu-${c.emulator}:`), `${row.cpu}: emulator qemu-${c.emulator}`);
  }
  // Only cris, which QEMU dropped, is ours alone.
  assert.deepEqual(CPUS.map((c) => c.name).filter((n) => !QEMU_BINFMT.some((r) => r.cpu === n)), ['cris']);
});

test('every Linux header QEMU’s line accepts, ours accepts, and no other line of ours does', () => {
  let checked = 0;
  for (const row of QEMU_BINFMT) {
    const qemu = patternOf(row.line);
    for (const { header, what } of linuxHeaders(qemu.magic)) {
      if (!accepts(qemu, header)) continue;
      assert.deepEqual(claimants(header), [row.cpu], `${row.cpu} (${what}) is claimed by`);
      checked++;
    }
  }
  // QEMU's lines require ABI version 0 but for MIPS (6 CPUs) and loongarch64: 26 CPUs x 2 OS
  // ABIs x 2 types, plus 7 x 2 x 4 ABI versions x 2; microblaze's line accepts none.
  assert.equal(checked, 26 * 4 + 7 * 16);
});

test('the rows equal QEMU’s byte for byte, but microblaze', () => {
  for (const row of QEMU_BINFMT) {
    const qemu = patternOf(row.line);
    const ours = cpu(row.cpu);
    const same = ours.offset === qemu.offset && ours.magic === qemu.magic && ours.mask === qemu.mask;
    assert.equal(same, row.cpu !== 'microblaze', `${row.cpu}: ${registerLine(ours)}\n vs ${row.line}`);
  }
});

test('microblaze: QEMU’s line matches no real binary (e_type in the wrong byte order); ours matches them', () => {
  const qemu = patternOf(QEMU_BINFMT.find((r) => r.cpu === 'microblaze')!.line);
  const real = linuxHeaders(cpu('microblaze').magic);
  for (const { header, what } of real) {
    assert.ok([ET_EXEC, 3].includes(header.readUInt16BE(16)), 'e_type is big-endian');
    assert.equal(accepts(qemu, header), false, `QEMU's microblaze line accepts ${what}`);
    assert.deepEqual(claimants(header), header[8] === 0 ? ['microblaze'] : [], what);
  }
  // Nor any other CPU's binary.
  for (const c of CPUS) for (const { header } of linuxHeaders(c.magic)) assert.equal(accepts(qemu, header), false, c.name);
});

test('cris (no QEMU line): its headers are claimed by its own row only', () => {
  for (const { header, what } of linuxHeaders(cpu('cris').magic)) assert.deepEqual(claimants(header), header[8] === 0 ? ['cris'] : [], what);
});

test('MIPS: ABI versions 2 and 3 are accepted (QEMU commit 77d119dd); o32 and n32 are told apart by EF_MIPS_ABI2', () => {
  for (const name of ['mips', 'mipsel', 'mipsn32', 'mipsn32el', 'mips64', 'mips64el']) {
    for (const abi of [2, 3]) assert.deepEqual(claimants(elfHeader(cpu(name).magic, 0, abi, ET_EXEC)), [name], `${name} ABI ${abi}`);
  }
  const o32 = elfHeader(cpu('mipsel').magic, 0, 0, ET_EXEC);
  const n32 = Buffer.from(o32);
  n32[36] = (n32[36] as number) | 0x20;
  assert.deepEqual(claimants(o32), ['mipsel']);
  assert.deepEqual(claimants(n32), ['mipsn32el']);
});
