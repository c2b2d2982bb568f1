// lib/binfmt-status: binfmt_misc's qemu-* entries as data, read from a folder shaped like
// /proc/sys/fs/binfmt_misc (the kernel's own state is the system test's: test/system/status.test.ts).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BinfmtStatus, nativeCpus, readBinfmtStatus } from '../../lib/binfmt-status.ts';
import { formatStatus } from '../../bin/commands/binfmt.ts';

const AARCH64 = { magic: '7f454c460201010000000000000000000200b700', mask: 'ffffffffffffff00fffffffffffffffffeffffff' };

function fakeBinfmt(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-status-'));
  fs.writeFileSync(path.join(dir, 'register'), '');
  fs.writeFileSync(path.join(dir, 'status'), 'enabled\n');
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

test('entries by name in byte order, every field, odd ones under other; other entries and control files left out', (t) => {
  const dir = fakeBinfmt({
    'qemu-s390x': 'disabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: \noffset 0\nmagic 7f454c46\nmask ffffffff\n',
    'qemu-aarch64_be': `enabled\ninterpreter /opt/q"x/qemu-aarch64_be\nflags: POCF\noffset 12\nmagic ${AARCH64.magic}\n`,
    'qemu-aarch64': `enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic ${AARCH64.magic}\nmask ${AARCH64.mask}\n`,
    'qemu-ext': 'enabled\ninterpreter /bin/x\nflags: \nextension .qx\n',
    // Named by an alias (arm64 for aarch64), and by no table CPU.
    'qemu-arm64': `enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic ${AARCH64.magic}\nmask ${AARCH64.mask}\n`,
    'qemu-polyarch-x': `enabled\ninterpreter /usr/bin/qemu-x\nflags: \noffset 0\nmagic ${AARCH64.magic}\n`,
    'qemu-garbled': 'enabled\nsomething else\n',
    'python3.11': 'enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n',
  });
  t.after(() => fs.rmSync(dir, { recursive: true }));
  const s = readBinfmtStatus(dir, 'x86_64');
  assert.deepEqual(s, {
    machine: 'x86_64',
    family: 'i386',
    native: ['i386', 'i486', 'x86_64'],
    entries: [
      { name: 'qemu-aarch64', enabled: true, interpreter: '/usr/bin/qemu-aarch64-static', flags: 'F', offset: 0, ...AARCH64, platform: 'linux/arm64' },
      // aarch64_be has no OCI platform.
      { name: 'qemu-aarch64_be', enabled: true, interpreter: '/opt/q"x/qemu-aarch64_be', flags: 'POCF', offset: 12, magic: AARCH64.magic, mask: '', platform: null },
      { name: 'qemu-arm64', enabled: true, interpreter: '/usr/bin/qemu-aarch64-static', flags: 'F', offset: 0, ...AARCH64, platform: 'linux/arm64' },
      { name: 'qemu-polyarch-x', enabled: true, interpreter: '/usr/bin/qemu-x', flags: '', offset: 0, magic: AARCH64.magic, mask: '', platform: null },
      { name: 'qemu-s390x', enabled: false, interpreter: '/usr/bin/qemu-s390x-static', flags: '', offset: 0, magic: '7f454c46', mask: 'ffffffff', platform: 'linux/s390x' },
    ],
    other: ['qemu-ext', 'qemu-garbled'],
  });
  assert.deepEqual(BinfmtStatus.parse(JSON.parse(JSON.stringify(s))), s, 'round-trips through JSON and the schema');
  // The documented fields in their documented order, platform added last: readers by position keep working.
  for (const e of s.entries) assert.deepEqual(Object.keys(e), ['name', 'enabled', 'interpreter', 'flags', 'offset', 'magic', 'mask', 'platform']);
  // What a CI step that read tonistiigi/binfmt's platform list takes from it (README: jq over entries).
  assert.deepEqual([...new Set(s.entries.filter((e) => e.enabled && e.platform).map((e) => e.platform))], ['linux/arm64']);
  assert.equal(
    formatStatus(s),
    [
      'qemu-aarch64 enabled F /usr/bin/qemu-aarch64-static',
      'qemu-aarch64_be enabled POCF /opt/q"x/qemu-aarch64_be',
      'qemu-arm64 enabled F /usr/bin/qemu-aarch64-static',
      'qemu-polyarch-x enabled - /usr/bin/qemu-x',
      'qemu-s390x disabled - /usr/bin/qemu-s390x-static',
      'qemu-ext unreadable',
      'qemu-garbled unreadable',
      'native (x86_64, i386 family): i386 i486 x86_64',
      '',
    ].join('\n'),
  );
});

test('native CPUs follow the family; a machine the table does not know runs none of them', (t) => {
  assert.deepEqual(nativeCpus('aarch64'), ['aarch64', 'arm']);
  assert.deepEqual(nativeCpus('riscv64'), ['riscv32', 'riscv64']);
  assert.deepEqual(nativeCpus('ppc64le'), ['ppc64le']);
  assert.deepEqual(nativeCpus('mips64'), ['mips', 'mipsel', 'mipsn32', 'mipsn32el', 'mips64', 'mips64el']);
  assert.deepEqual(nativeCpus('vax'), []);
  const dir = fakeBinfmt({});
  t.after(() => fs.rmSync(dir, { recursive: true }));
  assert.deepEqual(readBinfmtStatus(dir, 'vax'), { machine: 'vax', family: 'vax', native: [], entries: [], other: [] });
  assert.match(formatStatus(readBinfmtStatus(dir, 'vax')), /^native \(vax, vax family\): none in the table\n$/);
});

test('not mounted: a one-line error naming the folder', () => {
  assert.throws(() => readBinfmtStatus('/nonexistent/binfmt_misc'), /^Error: binfmt_misc is not mounted at \/nonexistent\/binfmt_misc$/);
});

test('the schema refuses what the shape does not allow', () => {
  const ok = { machine: 'x86_64', family: 'i386', native: [], entries: [], other: [] };
  assert.doesNotThrow(() => BinfmtStatus.parse(ok));
  const entry = { name: 'qemu-x', enabled: true, interpreter: '/x', flags: 'F', offset: 0, magic: '7f', mask: '', platform: null };
  assert.doesNotThrow(() => BinfmtStatus.parse({ ...ok, entries: [entry] }));
  assert.doesNotThrow(() => BinfmtStatus.parse({ ...ok, entries: [{ ...entry, platform: 'linux/arm64' }] }));
  for (const bad of [{ flags: 'FP' }, { magic: '7F' }, { offset: -1 }, { extra: 1 }, { platform: undefined }, { platform: 1 }]) {
    assert.throws(() => BinfmtStatus.parse({ ...ok, entries: [{ ...entry, ...bad }] }), JSON.stringify(bad));
  }
});
