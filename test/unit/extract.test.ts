// RPM reading and extraction on real rpmbuild output, compared with rpm2cpio | cpio,
// and every hostile or broken input refused with a one-line error and nothing written.
import assert from 'node:assert/strict';
import { execFileSync, execSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { readCpio } from '../../lib/cpio.ts';
import { emulatorsInHeader, extractRpm, extractToDir } from '../../lib/extract.ts';
import { decompressPayload, readRpm, type Rpm } from '../../lib/rpm.ts';
import { cpioOf, renameEntry, reseal, setEntryMode } from '../fixtures/hostile.ts';
import { buildFixtureRpms, SPLIT_SUBPACKAGES, type FixtureHost } from '../fixtures/rpms.ts';
import { HOST_ELF, hostElfBytes } from '../helpers/elf.ts';

let split: string[];
let single: string[];
let aarch64Split: string[];
/** The split build for every host the stacks publish for. */
let byHost: Record<FixtureHost, string[]>;
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-extract-'));
const byName = (files: string[], name: string) => {
  const f = files.find((x) => path.basename(x).startsWith(`${name}-9.`) || path.basename(x).startsWith(`${name}-5.`));
  assert.ok(f, `fixture ${name}`);
  return f;
};
/** Every file below dir, relative, sorted. */
const listFiles = (dir: string): string[] =>
  fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();

before(() => {
  split = buildFixtureRpms({ host: 'x86_64', layout: 'split', compression: 'zstd' });
  aarch64Split = buildFixtureRpms({ host: 'aarch64', layout: 'split', compression: 'zstd' });
  byHost = {
    x86_64: split,
    aarch64: aarch64Split,
    ppc64le: buildFixtureRpms({ host: 'ppc64le', layout: 'split', compression: 'zstd' }),
    s390x: buildFixtureRpms({ host: 's390x', layout: 'split', compression: 'zstd' }),
  };
  single = buildFixtureRpms({ host: 'x86_64', layout: 'single', compression: 'xz' });
});

describe('reading real RPMs', () => {
  test('split subpackage with several CPUs: header, emulators, payload', async () => {
    const file = byName(split, 'qemu-user-static-arm');
    const rpm = readRpm(fs.readFileSync(file), file);
    assert.equal(rpm.name, 'qemu-user-static-arm');
    assert.equal(rpm.version, '9.2.4');
    assert.equal(rpm.release, '1.fc42');
    assert.equal(rpm.arch, 'x86_64');
    assert.equal(rpm.compressor, 'zstd');
    assert.deepEqual(emulatorsInHeader(rpm, file), ['arm', 'armeb']);
    const cpio = await decompressPayload(rpm, file);
    assert.equal(cpio.length, rpm.payloadSize);
    assert.deepEqual([...readCpio(cpio, file)].filter((e) => e.data.length > 0).map((e) => e.name).sort(), [
      './usr/bin/qemu-arm-static', './usr/bin/qemu-armeb-static',
      './usr/lib/binfmt.d/qemu-arm-static.conf', './usr/lib/binfmt.d/qemu-armeb-static.conf',
    ]);
  });

  test('old single RPM with an xz payload', async () => {
    const rpm = readRpm(fs.readFileSync(single[0]!), single[0]!);
    assert.equal(rpm.compressor, 'xz');
    assert.deepEqual(emulatorsInHeader(rpm, 'x'), ['aarch64', 'arm', 's390x']);
  });

  // The names alone would pass with any host's binaries in the RPM: the header bytes say
  // which machine each emulator runs on, and it must be the RPM's host, not its target.
  for (const host of ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const) {
    test(`${host} host build: every emulator is an ELF for ${host} (class, byte order, e_machine)`, async () => {
      const cpus: string[] = [];
      for (const file of byHost[host].filter((f) => !/-debuginfo-|qemu-user-static-9\./.test(path.basename(f)))) {
        const { rpm, emulators } = await extractRpm(fs.readFileSync(file), file);
        assert.equal(rpm.arch, host, file);
        for (const e of emulators) {
          assert.equal(hostElfBytes(e.data), HOST_ELF[host], `${host} qemu-${e.cpu}-static`);
          cpus.push(e.cpu);
        }
      }
      assert.deepEqual(cpus.sort(), Object.values(SPLIT_SUBPACKAGES).flat().sort());
    });
  }

  for (const layout of ['split', 'single'] as const) {
    test(`extraction equals rpm2cpio | cpio -idm byte for byte (${layout})`, async () => {
      const rpms = layout === 'split' ? split : single;
      const ours = tmp();
      const manifest = await extractToDir(rpms.map((f) => ({ buf: fs.readFileSync(f), label: f })), ours);
      const theirs = tmp();
      for (const f of rpms) execSync(`rpm2cpio '${f}' | cpio -idm --quiet`, { cwd: theirs });
      for (const m of manifest) {
        const ref = fs.readFileSync(path.join(theirs, 'usr/bin', m.file));
        assert.ok(fs.readFileSync(path.join(ours, m.file)).equals(ref), `${m.file} differs from rpm2cpio`);
        assert.equal(m.size, ref.length);
        assert.equal(fs.statSync(path.join(ours, m.file)).mode & 0o777, 0o755);
        // The fixtures' confs are QEMU's own lines (as Fedora's), which the CPU table matches exactly.
        assert.equal(m.confDifferences, undefined, `${m.cpu}: ${m.confDifferences}`);
        if (m.conf) {
          const refConf = fs.readFileSync(path.join(theirs, 'usr/lib/binfmt.d', path.basename(m.conf)));
          assert.ok(fs.readFileSync(path.join(ours, m.conf)).equals(refConf), `${m.conf} differs`);
        }
      }
      const theirEmulators = fs.readdirSync(path.join(theirs, 'usr/bin')).sort();
      assert.deepEqual(manifest.map((m) => m.file).sort(), theirEmulators);
      assert.deepEqual(listFiles(ours), [...manifest.map((m) => m.file), ...manifest.flatMap((m) => (m.conf ? [m.conf] : []))].sort());
    });
  }
});

describe('hostile and broken RPMs are refused, and nothing is written', () => {
  const ARM = './usr/bin/qemu-arm-static';
  let arm: Buffer;
  let armLabel: string;
  before(() => {
    armLabel = byName(split, 'qemu-user-static-arm');
    arm = fs.readFileSync(armLabel);
  });

  /** Extracts `buf` into a fresh folder holding one sentinel file; asserts the error and an untouched folder. */
  async function refused(buf: Buffer, pattern: RegExp, expect?: string[]) {
    const out = tmp();
    fs.writeFileSync(path.join(out, 'sentinel'), 'keep');
    await assert.rejects(extractToDir([{ buf, label: 'evil.rpm', expect }], out), (e: Error) => {
      assert.match(e.message, /^evil\.rpm: /);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
    assert.deepEqual(fs.readdirSync(out), ['sentinel']);
  }

  test('truncated file', () => refused(arm.subarray(0, arm.length - 1000), /truncated|mismatch/));
  test('truncated inside the header', () => refused(arm.subarray(0, 400), /truncated/));
  test('not an RPM at all', () => refused(Buffer.from('<html>404</html>'.padEnd(200)), /bad lead magic/));
  test('empty file', () => refused(Buffer.alloc(0), /truncated lead/));
  test('wrong header magic', () => {
    const b = Buffer.from(arm);
    b.writeUInt32BE(0xdeadbeef, 96);
    return refused(b, /signature header: bad magic/);
  });
  test('implausible header entry count', () => {
    const b = Buffer.from(arm);
    b.writeUInt32BE(0x7fffffff, 96 + 8);
    return refused(b, /implausible entry count/);
  });
  test('main header byte flipped: its sha256 no longer matches', () => {
    const b = Buffer.from(arm);
    // Change one letter of the package's summary, a string in the main header's data store.
    const at = b.indexOf('QEMU user-mode emulators for arm');
    assert.ok(at > 0);
    b[at] = 'X'.charCodeAt(0);
    return refused(b, /header sha256 mismatch: expected [0-9a-f]{64}, got [0-9a-f]{64}/);
  });
  test('payload byte flipped: payload digest no longer matches', () => {
    const b = Buffer.from(arm);
    b[b.length - 5000] = b[b.length - 5000]! ^ 0xff;
    return refused(b, /payload sha256 mismatch/);
  });
  test('path traversal with ".." (digests resealed)', () =>
    refused(reseal(arm, renameEntry(cpioOf(arm), ARM, `../../../../../../tmp/${'x'.repeat(8)}`.slice(0, ARM.length))), /escapes the package root/));
  test('absolute path outside /usr (digests resealed)', () =>
    refused(reseal(arm, renameEntry(cpioOf(arm), ARM, `/etc/${'x'.repeat(40)}`.slice(0, ARM.length))), /absolute path outside \/usr/));
  test('a symlink where an emulator should be', () =>
    refused(reseal(arm, setEntryMode(cpioOf(arm), ARM, 0o120777)), /qemu-arm-static is a symlink, not a regular file/));
  test('a character device where an emulator should be', () =>
    refused(reseal(arm, setEntryMode(cpioOf(arm), ARM, 0o020644)), /qemu-arm-static is a character device/));
  test('emulator content differs from the header digest', () => {
    const cpio = cpioOf(arm);
    const at = cpio.indexOf(Buffer.from(`${ARM}\0`)) + ARM.length + 1 + 4000;
    const evil = Buffer.from(cpio);
    evil[at] = evil[at]! ^ 0xff;
    return refused(reseal(arm, evil), /usr\/bin\/qemu-arm(eb)?-static: sha256 mismatch: header says/);
  });
  test('garbage cpio payload', () => {
    const cpio = Buffer.from(cpioOf(arm));
    cpio.write('999999', 0, 'latin1');
    return refused(reseal(arm, cpio), /cpio: bad magic "999999"/);
  });
  test('a locked RPM that lacks an emulator it should hold', () =>
    refused(arm, /lacks qemu-aarch64-static that the lockfile pins/, ['aarch64', 'arm', 'armeb']));
  test('a locked RPM that holds an emulator the lockfile does not pin', () =>
    refused(arm, /holds qemu-armeb-static that the lockfile does not pin/, ['arm']));
  test('a good RPM next to a bad one: nothing is written', async () => {
    const out = tmp();
    const good = byName(split, 'qemu-user-static-s390x');
    await assert.rejects(extractToDir([{ buf: fs.readFileSync(good), label: good }, { buf: arm.subarray(0, 300), label: 'evil.rpm' }], out), /evil\.rpm/);
    assert.deepEqual(fs.readdirSync(out), []);
  });
  test('one RPM given twice, or two RPMs carrying the same emulator', async () => {
    const out = tmp();
    await assert.rejects(extractToDir([{ buf: arm, label: 'a.rpm' }, { buf: arm, label: 'b.rpm' }], out), { message: 'qemu-user-static-arm-9.2.4-1.fc42.x86_64 is given twice (a.rpm and b.rpm)' });
    const armHost = byName(aarch64Split, 'qemu-user-static-arm');
    await assert.rejects(extractToDir([{ buf: arm, label: 'a.rpm' }, { buf: fs.readFileSync(armHost), label: 'b.rpm' }], out), {
      message: 'qemu-arm-static is in both qemu-user-static-arm-9.2.4-1.fc42.x86_64 (a.rpm) and qemu-user-static-arm-9.2.4-1.fc42.aarch64 (b.rpm); extract one host\'s RPMs at a time',
    });
    assert.deepEqual(fs.readdirSync(out), []);
  });
});

describe('polyarch extract --out', () => {
  const cli = path.resolve(import.meta.dirname, '../../bin/polyarch.js');
  test('a symlinked or non-folder output is refused with one line naming it, and nothing is written', () => {
    const dir = tmp();
    const real = path.join(dir, 'real');
    fs.mkdirSync(real);
    fs.symlinkSync(real, path.join(dir, 'link'));
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    const rpm = byName(split, 'qemu-user-static-s390x');
    for (const [out, message] of [
      ['link', `error: link is a symlink to ${real}; give the folder itself as the output folder\n`],
      [path.join(dir, 'link'), `error: ${path.join(dir, 'link')} is a symlink to ${real}; give the folder itself as the output folder\n`],
      ['file', 'error: file exists and is not a folder\n'],
    ]) {
      const r = spawnSync(process.execPath, [cli, 'extract', '--out', out!, '--cache', path.join(dir, 'cache'), rpm], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stderr, message);
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(fs.readdirSync(real), []);
    assert.ok(fs.lstatSync(path.join(dir, 'link')).isSymbolicLink());
  });
});

describe('decompression bombs stop at the bound', () => {
  const zeros = Buffer.alloc(8 << 20);
  const fake = (compressor: Rpm['compressor'], payload: Buffer, payloadSize?: number): Rpm => ({
    name: 'bomb', version: '1', release: '1', arch: 'x86_64', compressor, payloadSize, files: [], fileDigestAlgo: 'sha256', payload,
  });
  const cases: [Rpm['compressor'], Buffer][] = [
    ['zstd', execFileSync('zstd', ['-q', '-19', '-c'], { input: zeros })],
    ['xz', execFileSync('xz', ['-c'], { input: zeros })],
    ['gzip', gzipSync(zeros)],
  ];
  for (const [compressor, payload] of cases) {
    test(`${compressor}: declared 1 MiB, inflates to 8 MiB`, async () => {
      await assert.rejects(decompressPayload(fake(compressor, payload, 1 << 20), 'bomb.rpm'), /^RpmError: bomb\.rpm: .*(past 1048576 bytes|corrupt zstd)/);
    });
    test(`${compressor}: declared size honest`, async () => {
      assert.equal((await decompressPayload(fake(compressor, payload, zeros.length), 'ok.rpm')).length, zeros.length);
    });
  }
  test('zstd without a declared size streams under the global bound', async () => {
    assert.equal((await decompressPayload(fake('zstd', cases[0]![1]), 'ok.rpm')).length, zeros.length);
  });
});

/** A repeatable pseudo-random sequence in [0, 1), so a fuzz failure reproduces. */
function seeded(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

describe('cpio reader, fuzzed', () => {
  test('random corruption never escapes as anything but a CpioError', async () => {
    const file = byName(split, 'qemu-user-static-s390x');
    const cpio = await decompressPayload(readRpm(fs.readFileSync(file), file), file);
    const head = cpio.subarray(0, 4096);
    const rand = seeded(42);
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(head);
      for (let k = 0; k < 4; k++) b[Math.floor(rand() * 400)] = Math.floor(rand() * 256);
      try {
        for (const e of readCpio(b, 'fuzz')) assert.ok(e.data.length <= b.length);
      } catch (e) {
        assert.equal((e as Error).name, 'CpioError', (e as Error).stack);
      }
    }
  });
  test('RPM reader: random header corruption is always an RpmError', () => {
    const file = byName(split, 'qemu-user-static-s390x');
    const rpm = fs.readFileSync(file);
    const rand = seeded(7);
    for (let i = 0; i < 500; i++) {
      const b = Buffer.from(rpm.subarray(0, 64 << 10));
      for (let k = 0; k < 3; k++) b[96 + Math.floor(rand() * 4000)] = Math.floor(rand() * 256);
      assert.throws(() => readRpm(b, 'fuzz'), (e: Error) => e.name === 'RpmError');
    }
  });
});
