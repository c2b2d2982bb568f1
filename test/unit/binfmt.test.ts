import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BinfmtError,
  MAX_REGISTER_LENGTH,
  cpuEntry,
  formatLine,
  normalizeFlags,
  parseLine,
  parseProcEntry,
  reconcileConf,
  registerLine,
} from '../../lib/binfmt.ts';
import { CPUS, findCpu } from '../../lib/cpus.ts';
import { QEMU_BINFMT } from '../fixtures/qemu-binfmt.ts';
import { accepts, linuxHeaders, patternOf } from '../helpers/elf.ts';

const aarch64 = findCpu('aarch64')!;
const AARCH64_LINE =
  ':qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:' +
  '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:F';

test('registerLine: the DESIGN.md format with defaults /usr/bin, -static, F', () => {
  assert.equal(registerLine(aarch64), AARCH64_LINE);
  assert.equal(
    registerLine(aarch64, { path: '/opt/q/', suffix: '', flags: 'CFP' }),
    AARCH64_LINE.replace('/usr/bin/qemu-aarch64-static:F', '/opt/q/qemu-aarch64:POCF'),
  );
  assert.ok(registerLine(findCpu('i486')!).endsWith(':/usr/bin/qemu-i386-static:F'));
  assert.ok(registerLine(aarch64, { path: '/' }).includes(':/qemu-aarch64-static:'));
  assert.throws(() => registerLine(aarch64, { suffix: '/x' }), /suffix "\/x" contains "\/"/);
  assert.throws(() => registerLine(aarch64, { path: 'usr/bin' }), /must be an absolute path/);
  assert.throws(() => registerLine(aarch64, { path: '/usr/my bin' }), /must be an absolute path without spaces/);
  assert.throws(() => registerLine(aarch64, { flags: 'FX' }), /^BinfmtError: unknown binfmt flag "X" \(valid: P, O, C, F\)$/);
});

test('flags: validated, deduplicated, C implies O, in the kernel order', () => {
  assert.equal(normalizeFlags(''), '');
  assert.equal(normalizeFlags('F'), 'F');
  assert.equal(normalizeFlags('C'), 'OC');
  assert.equal(normalizeFlags('FCP'), 'POCF');
  assert.equal(normalizeFlags('OPF'), 'POF');
  assert.equal(normalizeFlags('FFF'), 'F');
  assert.throws(() => normalizeFlags('f'), /unknown binfmt flag "f"/);
});

test('every CPU round-trips through format and parse, with every flag combination', () => {
  const combos = ['', 'P', 'O', 'C', 'F', 'PF', 'OCF', 'POCF'];
  for (const cpu of CPUS) {
    for (const flags of combos) {
      const line = registerLine(cpu, { flags });
      const entry = parseLine(line);
      assert.deepEqual(entry, cpuEntry(cpu, { flags }));
      assert.equal(formatLine(entry), line);
      assert.equal(parseLine(`${line}\n`).name, `qemu-${cpu.name}`);
    }
  }
});

test('parseLine reads conf files as QEMU and the distributions write them', () => {
  // Literal characters in the magic, upper-case hex, explicit offset, any delimiter.
  const e = parseLine(':qemu-hexagon:M:0:\\x7fELF\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xA4\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/hexagon-binfmt-P:OPF');
  assert.equal(e.magic, findCpu('hexagon')!.magic);
  assert.equal(e.mask, findCpu('hexagon')!.mask);
  assert.equal(e.offset, 0);
  assert.equal(e.flags, 'POF');
  const d = parseLine('|qemu-x|M|3|\\x01\\x02||/bin/q|');
  assert.deepEqual([d.offset, d.magic, d.mask, d.flags], [3, '0102', '', '']);
  assert.equal(formatLine(d), ':qemu-x:M:3:\\x01\\x02::/bin/q:');
  const ext = parseLine(':jar:E::jar::/usr/bin/jexec:');
  assert.deepEqual([ext.type, ext.extension, ext.magic], ['E', 'jar', '']);
  assert.equal(formatLine(ext), ':jar:E::jar::/usr/bin/jexec:');
});

test('parseProcEntry: /proc/sys/fs/binfmt_misc/<name> back into the same structure', () => {
  const text = [
    'enabled',
    'interpreter /usr/bin/qemu-aarch64-static',
    'flags: OCF',
    'offset 0',
    `magic ${aarch64.magic}`,
    `mask ${aarch64.mask}`,
    '',
  ].join('\n');
  const e = parseProcEntry('qemu-aarch64', text);
  assert.equal(e.enabled, true);
  assert.equal(formatLine(e), registerLine(aarch64, { flags: 'CF' }));
  const bare = parseProcEntry('x', 'disabled\ninterpreter /bin/x\nflags: \noffset 248\nmagic 7f454c4601020304\n');
  assert.deepEqual([bare.enabled, bare.flags, bare.offset, bare.mask], [false, '', 248, '']);
  const ext = parseProcEntry('ab', 'enabled\ninterpreter /bin/x\nflags: \nextension .ab\n');
  assert.equal(formatLine(ext), ':ab:E::ab::/bin/x:');
  assert.throws(() => parseProcEntry('x', 'enabled\ninterpreter /bin/x\nflags: F\nweird 1\nmagic 00\n'), /^BinfmtError: binfmt_misc entry "x": unexpected line "weird 1"$/);
  assert.throws(() => parseProcEntry('x', 'enabled\nflags: F\nmagic 00\n'), /entry "x" is incomplete/);
});

test('reconcileConf: the conf wins, differences from the table are reported', () => {
  const same = reconcileConf(aarch64, `${AARCH64_LINE}\n`);
  assert.deepEqual(same.differences, []);
  assert.equal(same.line, AARCH64_LINE);
  assert.equal(same.cpu.mask, aarch64.mask);

  // A conf that keeps the OS ABI to 0-3 (as Debian's do) and reads ppc64le's whole e_machine.
  const ppc = findCpu('ppc64le')!;
  const other = `:qemu-ppc64le:M::${'\\x' + ppc.magic.match(/../g)!.join('\\x')}:${'\\x' + 'fffffffffffffffcfffffffffffffffffeffffff'.match(/../g)!.join('\\x')}:/usr/bin/qemu-ppc64le-static:F`;
  const r = reconcileConf(ppc, other);
  assert.deepEqual(r.differences, ['qemu-ppc64le: mask differs at byte 7: table 00, conf fc; byte 19: table 00, conf ff']);
  assert.equal(r.line, other);
  assert.equal(r.cpu.mask, 'fffffffffffffffcfffffffffffffffffeffffff');
  assert.equal(r.cpu.name, 'ppc64le');
  assert.equal(registerLine(r.cpu), other);

  // A longer magic.
  const mips = findCpu('mips64')!;
  const longer = registerLine({ ...mips, magic: mips.magic + '00', mask: mips.mask + '00' });
  assert.match(reconcileConf(mips, longer).differences.join('\n'), /^qemu-mips64: magic: table has 20 bytes \(7f45.*\), conf 21 bytes/m);

  assert.throws(() => reconcileConf(aarch64, registerLine(findCpu('arm')!)), /registers "qemu-arm", expected "qemu-aarch64"/);
  assert.throws(() => reconcileConf(aarch64, ':qemu-aarch64:M::zz'), BinfmtError);
});

test('reconcileConf: a row that overrides the conf keeps its bytes, and says why (microblaze)', () => {
  const microblaze = findCpu('microblaze')!;
  assert.deepEqual(CPUS.filter((c) => c.overridesConf !== undefined).map((c) => c.name), ['microblaze']);
  // The conf a Fedora RPM ships: QEMU's own line, Fedora's path and flag F.
  const conf = QEMU_BINFMT.find((r) => r.cpu === 'microblaze')!.line.replace(/:\/usr\/local\/bin\/(qemu-microblaze):$/, ':/usr/bin/$1-static:F');
  const r = reconcileConf(microblaze, `${conf}\n`);
  assert.deepEqual(r.differences, [
    'qemu-microblaze: magic differs at byte 16: table 00, conf 02; byte 17: table 02, conf 00',
    'qemu-microblaze: mask differs at byte 16: table ff, conf fe; byte 17: table fe, conf ff',
    `qemu-microblaze: the table's line is registered, not the conf's: ${microblaze.overridesConf}`,
  ]);
  assert.equal(r.cpu, microblaze);
  assert.equal(r.line, registerLine(microblaze));
  // Every real microblaze header (OS ABI 0/3, ET_EXEC/ET_DYN; ABI version 0, as every
  // non-MIPS line asks): the conf's bytes accept none, the line registered accepts them all.
  const headers = linuxHeaders(microblaze.magic).filter(({ header }) => header[8] === 0);
  assert.equal(headers.length, 4);
  for (const { header, what } of headers) {
    assert.equal(accepts(patternOf(conf), header), false, what);
    assert.equal(accepts(patternOf(r.line), header), true, what);
  }
  // A conf equal to the table has nothing to override.
  assert.deepEqual(reconcileConf(microblaze, registerLine(microblaze)).differences, []);
});

// Lines the kernel would refuse, each with the message that must explain why.
const BAD_LINES: [string, RegExp][] = [
  ['', /too short/],
  [':', /too short/],
  ['qemu-x:M::\\x7f::/bin/q:', /must start with a delimiter/],
  [':qemu-x:M::\\x7f::/bin/q', /has 6 fields, expected 7/],
  [':qemu-x:M::\\x7f::/bin/q:F:', /has 8 fields, expected 7/],
  [':::M::\\x7f::/bin/q:', /has 8 fields/],
  ['::M::\\x7f::/bin/q:', /entry name is empty/],
  [':.:M::\\x7f::/bin/q:', /name "\." is reserved/],
  [':..:M::\\x7f::/bin/q:', /name "\.\." is reserved/],
  [':register:M::\\x7f::/bin/q:', /name "register" is reserved/],
  [':status:M::\\x7f::/bin/q:', /name "status" is reserved/],
  [':a/b:M::\\x7f::/bin/q:', /name "a\/b" contains "\/"/],
  [`:${'n'.repeat(256)}:M::\\x7f::/bin/q:`, /name is 256 characters long \(at most 255\)/],
  [':a b:M::\\x7f::/bin/q:', /contains a space, control/],
  [':a\tb:M::\\x7f::/bin/q:', /contains a space, control/],
  [':x:Q::\\x7f::/bin/q:', /type "Q" must be M \(magic\) or E \(extension\)/],
  [':x:M:-1:\\x7f::/bin/q:', /offset "-1" is not a non-negative decimal number/],
  [':x:M:0x10:\\x7f::/bin/q:', /offset "0x10" is not a non-negative decimal number/],
  [':x:M:9999999:\\x7f::/bin/q:', /offset 9999999 is too large/],
  [':x:M:250:\\x01\\x02\\x03\\x04\\x05\\x06\\x07::/bin/q:', /offset 250 \+ magic 7 bytes exceeds the 256 bytes/],
  [':x:M::::/bin/q:', /magic is empty/],
  [':x:M::\\x7f\\x45:\\xff:/bin/q:', /magic and mask differ in length \(2 and 1 bytes\)/],
  [':x:M::\\x7f:\\xff\\xff:/bin/q:', /magic and mask differ in length \(1 and 2 bytes\)/],
  [':x:M::\\x7:\\xff:/bin/q:', /bad escape in binfmt magic at character 1/],
  [':x:M::\\q:\\xff:/bin/q:', /bad escape in binfmt magic/],
  [':x:M::\\x7f:\\xgg:/bin/q:', /bad escape in binfmt mask/],
  [':x:M::a b:\\xff\\xff\\xff:/bin/q:', /magic contains a raw space/],
  [':x:M::\\x7f:\\xff::', /interpreter is empty/],
  [':x:M::\\x7f:\\xff:bin/q:', /must be an absolute path/],
  [':x:M::\\x7f:\\xff:/bin/q q:', /must be an absolute path without spaces/],
  [':x:M::\\x7f:\\xff:/bin/q:X', /unknown binfmt flag "X"/],
  [':x:M::\\x7f:\\xff:/bin/q:f', /unknown binfmt flag "f"/],
  [':x:M::\\x7f:\\xff:/bin/q: F', /unknown binfmt flag " "/],
  [':x:E:3:jar::/bin/q:', /extension \(E\) entry takes no offset/],
  [':x:E::jar:\\xff:/bin/q:', /extension \(E\) entry takes no mask/],
  [':x:E::::/bin/q:', /extension is empty/],
  [':x:E::a/b::/bin/q:', /extension "a\/b" contains/],
  [`:x:M::\\x7f:\\xff:/${'p'.repeat(MAX_REGISTER_LENGTH)}:`, /is \d+ bytes with its newline \(the kernel accepts at most 1920\)/],
];

test('bad lines are refused with a one-line message saying why', () => {
  for (const [line, why] of BAD_LINES) {
    assert.throws(
      () => parseLine(line),
      (e: unknown) => {
        assert.ok(e instanceof BinfmtError, `${JSON.stringify(line)}: ${String(e)}`);
        assert.match(e.message, why, JSON.stringify(line));
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      },
    );
  }
});

test('fuzz: mutated lines either parse into something that formats back, or fail with a BinfmtError', () => {
  let x = 42;
  const rand = (n: number) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const alphabet = [':', '\\', 'x', 'X', 'f', 'F', '0', '9', '/', ' ', '\t', '\n', 'C', 'M', 'E', '.', '\u00e9', '\0', '-'];
  const seeds = CPUS.map((c) => registerLine(c, { flags: 'POCF' }));
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    let line = seeds[rand(seeds.length)]!;
    const edits = 1 + rand(4);
    for (let j = 0; j < edits; j++) {
      const at = rand(line.length + 1);
      const op = rand(3);
      if (op === 0) line = line.slice(0, at) + line.slice(at + 1);
      else if (op === 1) line = line.slice(0, at) + alphabet[rand(alphabet.length)]! + line.slice(at);
      else line = line.slice(0, at) + line.slice(at, at + 1 + rand(40)).repeat(2) + line.slice(at + 1 + rand(40));
    }
    let entry;
    try {
      entry = parseLine(line);
    } catch (e) {
      assert.ok(e instanceof BinfmtError, `${JSON.stringify(line)} threw ${String(e)}`);
      assert.ok(e.message.length > 0 && !e.message.includes('\n'));
      refused++;
      continue;
    }
    // Whatever is accepted must be something the kernel accepts: it formats and re-parses identically.
    const again = formatLine(entry);
    assert.deepEqual(parseLine(again), entry);
    assert.ok(Buffer.byteLength(again) < MAX_REGISTER_LENGTH);
  }
  assert.ok(refused > 1000, `only ${refused} of 5000 mutations refused`);
});
