// The register script and the CPU table against the real kernel's binfmt_misc, with Debian's
// qemu-user-static emulators and Debian's foreign busybox-static builds as the binaries.
// binfmt_misc is global: every test snapshots it first and restores it afterwards, even when
// it fails (guardBinfmt -> t.after). Nothing here registers an entry that could claim this
// host's own binaries.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { binfmtConf } from '../../bin/commands/binfmt.ts';
import { formatLine, parseLine, parseProcEntry, registerLine } from '../../lib/binfmt.ts';
import { CPUS, findCpu, hostFamily, type Cpu } from '../../lib/cpus.ts';
import { REGISTER_EXIT_CODES as EXIT } from '../../lib/register-script.ts';
import {
  BINFMT,
  SHELLS,
  entriesMatching,
  guardBinfmt,
  hasBinfmtMisc,
  readEntries,
  registerRaw,
  registerScript,
  removeEntry,
  runScript,
  tmpDir,
  type Shell,
} from '../helpers/binfmt.ts';
import { debianPackage } from '../helpers/debian.ts';
import { accepts, elfHeader, linuxHeaders, patternOf } from '../helpers/elf.ts';
import { hasCommand, isRoot, requireSystem, type Probe } from '../helpers/system.ts';
import { asNobody, canRunAsNobody } from '../helpers/as-nobody.ts';

const hasFile =
  (file: string): Probe =>
  () =>
    fs.existsSync(file) ? undefined : `needs ${file}`;

const DEBIAN_QEMU = hasFile('/usr/bin/qemu-aarch64-static');
const kernel = (t: TestContext, ...more: Probe[]) =>
  requireSystem(t, isRoot, hasBinfmtMisc, hasCommand('dash'), hasCommand('busybox'), DEBIAN_QEMU, ...more);

const cpu = (name: string): Cpu => findCpu(name) ?? assert.fail(`no CPU ${name}`);
const HOST_FAMILY = hostFamily(os.machine());

// Debian architecture -> the CPU entry that must claim its busybox, and what `uname -m` says under QEMU.
const FOREIGN: Record<string, { cpu: string; machine: string }> = {
  arm64: { cpu: 'aarch64', machine: 'aarch64' },
  armhf: { cpu: 'arm', machine: 'armv7l' },
  armel: { cpu: 'arm', machine: 'armv7l' },
  ppc64el: { cpu: 'ppc64le', machine: 'ppc64le' },
  s390x: { cpu: 's390x', machine: 's390x' },
  mips64el: { cpu: 'mips64el', machine: 'mips64' },
  mipsel: { cpu: 'mipsel', machine: 'mips' },
};

const busybox = (arch: string): string => path.join(debianPackage('busybox-static', arch), 'bin', 'busybox');

function exec(file: string, args: string[]) {
  return spawnSync(file, args, { encoding: 'utf8', timeout: 60_000 });
}

/** The entry text for name, parsed and formatted back into a register line. */
function lineOf(name: string): string {
  return formatLine(parseProcEntry(name, fs.readFileSync(path.join(BINFMT, name), 'utf8')));
}

/** Removes every qemu-* entry (the guard puts them back afterwards). */
function clearQemuEntries(): void {
  for (const name of readEntries().keys()) if (name.startsWith('qemu-')) removeEntry(name);
}

function qemuEntries(): string[] {
  return [...readEntries().keys()].filter((n) => n.startsWith('qemu-')).sort();
}

function ok(r: { code: number; stdout: string; stderr: string }, code: number = EXIT.ok): void {
  assert.equal(r.code, code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

// A harmless magic no real file starts with, for entries that must survive --reset and --uninstall.
const INERT = (name: string) => `:${name}:M::\\x00\\x50\\x4f\\x4c\\x59\\x41\\x52\\x43\\x48\\x00::/bin/false:`;

test('every Linux binary Debian’s binfmt.d confs hand to an emulator, the table hands to the same one', (t) => {
  if (!requireSystem(t, hasCommand('apt-get'), hasCommand('dpkg-deb'), hasFile('/usr/lib/binfmt.d/qemu-aarch64.conf'))) return;
  // The amd64 package leaves out the x86 family; the arm64 one has it (and leaves out arm).
  const dirs = ['/usr/lib/binfmt.d', path.join(debianPackage('qemu-user-static', 'arm64'), 'usr/lib/binfmt.d')];
  const checked = new Set<string>();
  let mipsOnlyOurs = 0;
  for (const dir of dirs) {
    for (const file of fs.readdirSync(dir).filter((f) => /^qemu-.*\.conf$/.test(f))) {
      const line = fs.readFileSync(path.join(dir, file), 'utf8').trim();
      const name = parseLine(line).name.replace(/^qemu-/, '');
      const entry = findCpu(name);
      assert.ok(entry && entry.name === name, `Debian ships ${name}, the table does not`);
      const debian = patternOf(line);
      assert.ok(accepts(debian, elfHeader(debian.magic, 0, 0, 2)), `${file}: a plain executable`);
      for (const { header, what } of linuxHeaders(debian.magic)) {
        const claimed = CPUS.filter((c) => accepts(c, header)).map((c) => c.name);
        if (accepts(debian, header)) assert.deepEqual(claimed, [name], `${dir}/${file}: ${what}`);
        else if (name.startsWith('mips') && header[8]! >= 2) {
          // Debian keeps MIPS to ABI versions 0-1 (mask fe at byte 8); QEMU and the table do not.
          assert.deepEqual(claimed, [name], `${file}: ${what}`);
          mipsOnlyOurs++;
        }
      }
      checked.add(name);
    }
  }
  for (const name of ['aarch64', 'arm', 'i386', 'x86_64', 'mips', 'mipsn32el', 'ppc64le', 's390x', 'riscv64', 'loongarch64', 'hexagon']) {
    assert.ok(checked.has(name), `Debian conf for ${name} not checked`);
  }
  assert.ok(checked.size >= 31, `only ${checked.size} CPUs checked`);
  assert.ok(mipsOnlyOurs >= 6 * 8, `${mipsOnlyOurs} MIPS headers only the table accepts`);
});

test('seed experiment: with no entry, a foreign binary fails with exec format error', (t) => {
  if (!kernel(t, hasCommand('apt-get'), hasCommand('dpkg-deb'), hasCommand('bash'))) return;
  guardBinfmt(t);
  const bin = busybox('arm64');
  for (const name of entriesMatching(bin)) removeEntry(name);
  // Through bash, which reports execve's error; node and dash would retry the file as a script.
  const r = spawnSync('bash', ['-c', '"$0" true', bin], { encoding: 'utf8' });
  assert.equal(r.status, 126, r.stderr);
  assert.match(r.stderr, /Exec format error/);
});

test('seed experiment: with F, a missing emulator is refused by the kernel at registration', (t) => {
  if (!kernel(t)) return;
  guardBinfmt(t);
  clearQemuEntries();
  const empty = tmpDir(t);
  assert.throws(() => registerRaw(registerLine(cpu('aarch64'), { path: empty })), { code: 'ENOENT' });
  assert.deepEqual(qemuEntries(), []);
  // Without F the same line is accepted.
  registerRaw(registerLine(cpu('aarch64'), { path: empty, flags: '' }));
  assert.deepEqual(qemuEntries(), ['qemu-aarch64']);
});

test('MIPS: a busybox whose header says ABI version 3 runs once registered; Debian’s mask (fe at byte 8) refuses it', (t) => {
  if (!kernel(t, hasCommand('apt-get'), hasCommand('dpkg-deb'), hasCommand('bash'), hasFile('/usr/bin/qemu-mipsel-static'), hasFile('/usr/lib/binfmt.d/qemu-mipsel.conf'))) return;
  guardBinfmt(t);
  clearQemuEntries();
  // Named busybox, so it takes its first argument as the applet.
  const bin = path.join(tmpDir(t), 'busybox');
  const elf = fs.readFileSync(busybox('mipsel'));
  assert.equal(elf[8], 0, 'Debian’s build says ABI version 0');
  elf[8] = 3; // EI_ABIVERSION, as newer MIPS toolchains write it
  fs.writeFileSync(bin, elf, { mode: 0o755 });
  for (const name of entriesMatching(bin)) removeEntry(name);

  // Debian's line, pointed at the same emulator: the kernel finds no entry for the file.
  const debian = parseLine(fs.readFileSync('/usr/lib/binfmt.d/qemu-mipsel.conf', 'utf8').trim());
  registerRaw(formatLine({ ...debian, interpreter: '/usr/bin/qemu-mipsel-static', flags: 'F' }));
  assert.deepEqual(entriesMatching(bin), []);
  const refused = spawnSync('bash', ['-c', '"$0" uname -m', bin], { encoding: 'utf8' });
  assert.equal(refused.status, 126, refused.stderr);
  assert.match(refused.stderr, /Exec format error/);

  // The table's line (QEMU's): registered by the script, it claims the file and QEMU runs it.
  const r = runScript(SHELLS[0], ['-p', 'yes', '--targets', 'mipsel']);
  ok(r);
  assert.match(r.stdout, /^replaced qemu-mipsel: /m);
  assert.deepEqual(entriesMatching(bin), ['qemu-mipsel']);
  const u = exec(bin, ['uname', '-m']);
  assert.equal(u.error, undefined, String(u.error));
  assert.equal(u.stdout.trim(), 'mips', u.stderr);
});

for (const shell of SHELLS) {
  const sh = shell.name;
  const run = (args: string[], env?: NodeJS.ProcessEnv) => runScript(shell as Shell, args, env);
  const needs = (t: TestContext, ...more: Probe[]) => kernel(t, hasCommand(shell.argv[0]), ...more);

  test(`${sh}: -p yes registers every target with Debian’s emulators; /proc reads back as the generated lines; foreign busybox runs`, (t) => {
    if (!needs(t, hasCommand('apt-get'), hasCommand('dpkg-deb'))) return;
    guardBinfmt(t);
    clearQemuEntries();
    const r = run(['-p', 'yes', '--qemu-path', '/usr/bin']);
    ok(r);
    const expected = CPUS.filter(
      (c) => c.removedIn === undefined && c.family !== HOST_FAMILY && fs.existsSync(`/usr/bin/qemu-${c.emulator}-static`),
    );
    assert.ok(expected.length >= 30, `only ${expected.length} Debian emulators`);
    assert.deepEqual(qemuEntries(), expected.map((c) => `qemu-${c.name}`).sort());
    for (const c of expected) {
      assert.equal(lineOf(`qemu-${c.name}`), registerLine(c), c.name);
      assert.ok(r.stdout.includes(`registered qemu-${c.name}: /usr/bin/qemu-${c.emulator}-static (flags F)\n`), c.name);
    }
    for (const [arch, { cpu: name, machine }] of Object.entries(FOREIGN)) {
      const bin = busybox(arch);
      assert.deepEqual(entriesMatching(bin), [`qemu-${name}`], `${arch} busybox is claimed by`);
      const u = exec(bin, ['uname', '-m']);
      assert.equal(u.error, undefined, `${arch}: ${String(u.error)}`);
      assert.equal(u.stdout.trim(), machine, `${arch}: ${u.stderr}`);
    }
  });

  test(`${sh}: the host’s own family is skipped (uname -m)`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    const x86 = run(['-p', 'yes', '--targets', 'x86_64,i386,i486']);
    ok(x86);
    if (HOST_FAMILY === 'i386') {
      assert.match(x86.stdout, /^skipped qemu-x86_64: this machine runs x86_64 natively \(i386 family\)$/m);
      assert.match(x86.stdout, /^skipped qemu-i486: /m);
      assert.deepEqual(qemuEntries(), []);
    }
    // Pretend to be a MIPS machine (HOST_ARCH overrides uname -m, as in QEMU's own script):
    // every mips* CPU is skipped, s390x is not.
    const mips = run(['-p', 'yes', '--targets', 'mips,mipsel,mipsn32,mips64el,s390x'], { ...process.env, HOST_ARCH: 'mips64' });
    ok(mips);
    assert.match(mips.stdout, /^skipped qemu-mipsel: this machine runs mipsel natively \(mips family\)$/m);
    assert.deepEqual(qemuEntries(), ['qemu-s390x']);

    // riscv32 and riscv64 are one family, as in QEMU; --ignore-family yes skips only the
    // machine's own CPU, as QEMU's option does.
    clearQemuEntries();
    const riscv = { ...process.env, HOST_ARCH: 'riscv64' };
    const family = run(['-p', 'yes', '--targets', 'riscv32,riscv64'], riscv);
    ok(family);
    assert.match(family.stdout, /^skipped qemu-riscv32: this machine runs riscv32 natively \(riscv family\)$/m);
    assert.deepEqual(qemuEntries(), []);
    const ignore = run(['-p', 'yes', '--ignore-family', 'yes', '--targets', 'riscv32,riscv64'], riscv);
    ok(ignore);
    assert.match(ignore.stdout, /^skipped qemu-riscv64: this machine runs riscv64 natively \(riscv family\)$/m);
    assert.deepEqual(qemuEntries(), ['qemu-riscv32']);
    clearQemuEntries();
    const amd = run(['-p', 'yes', '-i', 'yes'], { ...process.env, HOST_ARCH: 'amd64' });
    ok(amd);
    const entries = qemuEntries();
    for (const n of ['qemu-i386', 'qemu-i486', 'qemu-aarch64']) assert.ok(entries.includes(n), n);
    assert.ok(!entries.includes('qemu-x86_64'));
    assert.equal(lineOf('qemu-i486'), registerLine(cpu('i486')));
    ok(run(['-i', 'maybe']), EXIT.usage);
  });

  test(`${sh}: seed experiments through the script: empty flags + missing emulator fails at run time; F holds the emulator open`, (t) => {
    if (!needs(t, hasCommand('apt-get'), hasCommand('dpkg-deb'))) return;
    guardBinfmt(t);
    const bin = busybox('arm64');
    for (const name of entriesMatching(bin)) removeEntry(name);
    clearQemuEntries();
    const dir = tmpDir(t);
    const emulator = path.join(dir, 'qemu-aarch64-static');

    // No F: the kernel takes the entry and only looks for the emulator when a binary runs.
    ok(run(['--targets', 'aarch64', '--qemu-path', dir]));
    assert.equal(lineOf('qemu-aarch64'), registerLine(cpu('aarch64'), { path: dir, flags: '' }));
    assert.equal((exec(bin, ['true']).error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
    fs.copyFileSync('/usr/bin/qemu-aarch64-static', emulator);
    fs.chmodSync(emulator, 0o755);
    assert.equal(exec(bin, ['uname', '-m']).stdout.trim(), 'aarch64');

    // F: the kernel opens the emulator at registration and keeps it; removing the file changes nothing.
    const withF = run(['-p', 'yes', '--targets', 'aarch64', '--qemu-path', dir]);
    ok(withF);
    assert.match(withF.stdout, /^replaced qemu-aarch64: .* \(flags F\)$/m);
    fs.rmSync(emulator);
    const u = exec(bin, ['uname', '-m']);
    assert.equal(u.stdout.trim(), 'aarch64', String(u.error));

    // And without F again, the removed emulator is missed at run time.
    ok(run(['-p', 'no', '--targets', 'aarch64', '--qemu-path', dir]));
    assert.equal((exec(bin, ['true']).error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
  });

  test(`${sh}: F with a missing emulator: skipped by default, refused and explained when asked for, old entry kept`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    const empty = tmpDir(t);
    const all = run(['-p', 'yes', '--qemu-path', empty]);
    ok(all);
    assert.match(all.stdout, new RegExp(`^skipped qemu-aarch64: no emulator at ${empty}/qemu-aarch64-static$`, 'm'));
    assert.deepEqual(qemuEntries(), []);

    const asked = run(['-p', 'yes', '--targets', 'aarch64', '--qemu-path', empty]);
    ok(asked, EXIT.refused);
    assert.equal(
      asked.stderr,
      `register: error: qemu-aarch64: the kernel refused flag F: fix-binary opens the emulator when registering, and ${empty}/qemu-aarch64-static does not exist\n`,
    );
    assert.deepEqual(qemuEntries(), [], 'the probe entry was removed');

    const notFile = tmpDir(t);
    fs.mkdirSync(path.join(notFile, 'qemu-arm-static'));
    const dirAsEmulator = run(['-p', 'yes', '--targets', 'arm', '--qemu-path', notFile]);
    ok(dirAsEmulator, EXIT.refused);
    assert.match(dirAsEmulator.stderr, /refused flag F: .* is not an executable file/);

    // A failed replacement puts the previous entry back.
    ok(run(['-p', 'yes', '--targets', 'aarch64']));
    const before = lineOf('qemu-aarch64');
    const replace = run(['-p', 'yes', '--targets', 'aarch64', '--qemu-path', empty]);
    ok(replace, EXIT.refused);
    assert.match(replace.stderr, /kept the previous qemu-aarch64 entry/);
    assert.equal(lineOf('qemu-aarch64'), before);
  });

  test(`${sh}: idempotent: equal entries left alone, a changed flag replaces, never "File exists"`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    const targets = ['aarch64', 'arm', 's390x'];
    const args = ['-p', 'yes', '--targets', targets.join(',')];
    ok(run(args));
    const first = readEntries();
    const again = run(args);
    ok(again);
    assert.equal(again.stdout, targets.map((n) => `unchanged qemu-${n}\n`).join(''));
    assert.deepEqual(readEntries(), first);

    const changed = run([...args, '-g', 'yes']);
    ok(changed);
    assert.equal(changed.stdout, targets.map((n) => `replaced qemu-${n}: /usr/bin/qemu-${n}-static (flags PF)\n`).join(''));
    for (const n of targets) assert.equal(lineOf(`qemu-${n}`), registerLine(cpu(n), { flags: 'PF' }));

    const credential = run(['--persistent=yes', '--credential=yes', '--preserve-argv0=yes', '--targets', 'aarch64']);
    ok(credential);
    assert.equal(lineOf('qemu-aarch64'), registerLine(cpu('aarch64'), { flags: 'POCF' }));

    // A disabled entry is not "equal": it is replaced by an enabled one.
    fs.writeFileSync(path.join(BINFMT, 'qemu-arm'), '0\n');
    const enable = run(['-p', 'yes', '-g', 'yes', '--targets', 'arm']);
    ok(enable);
    assert.match(enable.stdout, /^replaced qemu-arm:/m);
    assert.match(fs.readFileSync(path.join(BINFMT, 'qemu-arm'), 'utf8'), /^enabled$/m);
    for (const r of [again, changed, credential, enable]) assert.doesNotMatch(r.stderr, /exists/i);
  });

  test(`${sh}: --reset removes every qemu-* entry and nothing else, then registers`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    ok(run(['-p', 'yes', '--targets', 'aarch64,arm,s390x']));
    registerRaw(INERT('polyarch-test-keep'));
    registerRaw(INERT('qemu-polyarch-test'));
    const r = run(['--reset', '-p', 'yes', '--targets', 'riscv64']);
    ok(r);
    for (const n of ['qemu-aarch64', 'qemu-arm', 'qemu-s390x', 'qemu-polyarch-test']) assert.match(r.stdout, new RegExp(`^removed ${n}$`, 'm'));
    assert.deepEqual(qemuEntries(), ['qemu-riscv64']);
    assert.ok(readEntries().has('polyarch-test-keep'));
    // multiarch's spelling, --reset anywhere on the line.
    ok(run(['-p', 'yes', '--targets', 'ppc64le', '--reset']));
    assert.deepEqual(qemuEntries(), ['qemu-ppc64le']);
  });

  test(`${sh}: --uninstall removes a subset, or every table CPU, and nothing else`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    registerRaw(INERT('polyarch-test-keep'));
    ok(run(['-p', 'yes', '--targets', 'aarch64,arm,s390x,ppc64le']));
    const some = run(['--uninstall', 'armhf,s390x']);
    ok(some);
    assert.equal(some.stdout, 'removed qemu-arm\nremoved qemu-s390x\n');
    assert.deepEqual(qemuEntries(), ['qemu-aarch64', 'qemu-ppc64le']);
    const nothing = run(['--uninstall=arm']);
    ok(nothing);
    assert.equal(nothing.stdout, '');
    ok(run(['--uninstall']));
    assert.deepEqual(qemuEntries(), []);
    assert.ok(readEntries().has('polyarch-test-keep'));
  });

  test(`${sh}: --list shows name, state, flags and emulator of every qemu-* entry`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    ok(run(['-p', 'yes', '--targets', 'aarch64,s390x']));
    ok(run(['-c', 'yes', '--targets', 'arm']));
    fs.writeFileSync(path.join(BINFMT, 'qemu-s390x'), '0\n');
    const before = readEntries();
    const r = run(['--list']);
    ok(r);
    assert.equal(
      r.stdout,
      [
        'qemu-aarch64 enabled F /usr/bin/qemu-aarch64-static',
        'qemu-arm enabled OC /usr/bin/qemu-arm-static',
        'qemu-s390x disabled F /usr/bin/qemu-s390x-static',
        '',
      ].join('\n'),
    );
    assert.deepEqual(readEntries(), before, '--list changes nothing');
    ok(run(['-g', 'yes', '--targets', 'aarch64']));
    assert.match(run(['--list']).stdout, /^qemu-aarch64 enabled P \/usr\/bin\/qemu-aarch64-static$/m);
    clearQemuEntries();
    ok(run(['--targets', 'hppa']));
    assert.equal(run(['--list']).stdout, 'qemu-hppa enabled - /usr/bin/qemu-hppa-static\n');
  });

  test(`${sh}: --persist-dir writes binfmt.d files equal to the conf lines, and --uninstall removes them`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    const dir = path.join(tmpDir(t), 'binfmt.d');
    const targets = 'aarch64,arm,riscv64';
    ok(run(['-p', 'yes', '-c', 'yes', '--targets', targets, '--persist-dir', dir]));
    const conf = binfmtConf({ host: 'x86_64', targets, flags: 'CF', path: '/usr/bin', suffix: '-static' }).split('\n').filter(Boolean);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['qemu-aarch64.conf', 'qemu-arm.conf', 'qemu-riscv64.conf']);
    for (const line of conf) {
      const name = parseLine(line).name;
      assert.equal(fs.readFileSync(path.join(dir, `${name}.conf`), 'utf8'), `${line}\n`);
      assert.equal(lineOf(name), line);
    }
    // Unchanged entries are persisted too.
    const again = path.join(tmpDir(t), 'again');
    ok(run(['-p', 'yes', '-c', 'yes', '--targets', 'arm', '--persist-dir', again]));
    assert.equal(fs.readFileSync(path.join(again, 'qemu-arm.conf'), 'utf8'), `${registerLine(cpu('arm'), { flags: 'OCF' })}\n`);
    // Skipped emulators leave no file.
    const none = path.join(tmpDir(t), 'none');
    ok(run(['-p', 'yes', '--qemu-path', tmpDir(t), '--persist-dir', none]));
    assert.deepEqual(fs.readdirSync(none), []);

    ok(run(['--uninstall', 'arm', '--persist-dir', dir]));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['qemu-aarch64.conf', 'qemu-riscv64.conf']);
    assert.deepEqual(qemuEntries(), ['qemu-aarch64', 'qemu-riscv64']);
  });

  test(`${sh}: --install-dir copies the emulators; /proc and the --persist-dir files name the copies; a rerun changes nothing; --uninstall removes them`, (t) => {
    if (!needs(t, hasCommand('apt-get'), hasCommand('dpkg-deb'))) return;
    guardBinfmt(t);
    clearQemuEntries();
    const bin = busybox('arm64');
    for (const name of entriesMatching(bin)) removeEntry(name);
    const targets = ['aarch64', 'arm', 's390x'];
    const src = tmpDir(t);
    for (const n of targets) fs.copyFileSync(`/usr/bin/qemu-${n}-static`, path.join(src, `qemu-${n}-static`));
    for (const n of targets) fs.chmodSync(path.join(src, `qemu-${n}-static`), 0o755);
    const root = tmpDir(t);
    const inst = path.join(root, 'lib/qemu-static');
    const persist = path.join(root, 'binfmt.d');
    const copy = (n: string) => path.join(inst, `qemu-${n}-static`);
    const args = ['-p', 'yes', '--targets', targets.join(','), '--qemu-path', src, '--install-dir', `${inst}//`, '--persist-dir', persist];

    const first = run(args);
    ok(first);
    assert.equal(first.stdout, targets.map((n) => `installed ${copy(n)}\nregistered qemu-${n}: ${copy(n)} (flags F)\n`).join(''));
    assert.deepEqual(fs.readdirSync(inst).sort(), targets.map((n) => `qemu-${n}-static`), 'the copies and nothing else (no temporary files)');
    for (const n of targets) {
      assert.equal(fs.statSync(copy(n)).mode & 0o7777, 0o755, n);
      assert.ok(fs.readFileSync(copy(n)).equals(fs.readFileSync(`/usr/bin/qemu-${n}-static`)), `${n}: the same bytes`);
      const line = registerLine(cpu(n), { path: inst });
      assert.equal(lineOf(`qemu-${n}`), line, `${n} in /proc`);
      assert.equal(fs.readFileSync(path.join(persist, `qemu-${n}.conf`), 'utf8'), `${line}\n`, `${n} in the persist dir`);
    }

    // Again: the same bytes are left alone (same inode, same mtime), the entries too.
    const stamp = (n: string) => {
      const st = fs.statSync(copy(n));
      return `${st.ino} ${st.mtimeMs}`;
    };
    const stamps = targets.map(stamp);
    const entries = readEntries();
    const again = run(args);
    ok(again);
    assert.equal(again.stdout, targets.map((n) => `unchanged qemu-${n}\n`).join(''));
    assert.deepEqual(targets.map(stamp), stamps);
    assert.deepEqual(readEntries(), entries);

    // A copy that differs, or lost its x bit, is replaced whole, and its entry with it (with
    // flag F the kernel holds the file it opened, so the entry must open the new one).
    fs.rmSync(copy('s390x'));
    fs.writeFileSync(copy('s390x'), 'not an emulator\n', { mode: 0o755 });
    fs.chmodSync(copy('arm'), 0o644);
    const repaired = run(args);
    ok(repaired);
    assert.equal(
      repaired.stdout,
      [
        'unchanged qemu-aarch64',
        `installed ${copy('arm')}`,
        `replaced qemu-arm: ${copy('arm')} (flags F)`,
        `installed ${copy('s390x')}`,
        `replaced qemu-s390x: ${copy('s390x')} (flags F)`,
        '',
      ].join('\n'),
    );
    for (const n of ['arm', 's390x']) {
      assert.ok(fs.readFileSync(copy(n)).equals(fs.readFileSync(`/usr/bin/qemu-${n}-static`)), n);
      assert.equal(fs.statSync(copy(n)).mode & 0o7777, 0o755, n);
    }
    assert.equal(fs.readdirSync(inst).length, 3);

    // Without F the kernel opens the interpreter at each exec: the foreign busybox runs from
    // the copy, with the source folder gone.
    ok(run(['-p', 'no', '--targets', 'aarch64', '--qemu-path', src, '--install-dir', inst, '--persist-dir', persist]));
    fs.rmSync(src, { recursive: true });
    assert.deepEqual(entriesMatching(bin), ['qemu-aarch64']);
    assert.equal(lineOf('qemu-aarch64'), registerLine(cpu('aarch64'), { path: inst, flags: '' }));
    const u = exec(bin, ['uname', '-m']);
    assert.equal(u.stdout.trim(), 'aarch64', `${String(u.error)} ${u.stderr}`);

    // --uninstall: the entries, their files and their copies; files it did not make stay.
    fs.writeFileSync(path.join(inst, 'qemu-arm-static.bak'), 'mine\n');
    fs.writeFileSync(path.join(inst, 'README'), 'mine\n');
    const some = run(['--uninstall', 'armhf,aarch64', '--install-dir', inst, '--persist-dir', persist]);
    ok(some);
    assert.equal(some.stdout, `removed qemu-arm\nremoved qemu-aarch64\nremoved ${copy('arm')}\nremoved ${copy('aarch64')}\n`);
    assert.deepEqual(fs.readdirSync(inst).sort(), ['README', 'qemu-arm-static.bak', 'qemu-s390x-static']);
    assert.deepEqual(fs.readdirSync(persist), ['qemu-s390x.conf']);
    assert.deepEqual(qemuEntries(), ['qemu-s390x']);
    const all = run(['--uninstall', '--install-dir', inst, '--persist-dir', persist]);
    ok(all);
    assert.equal(all.stdout, `removed qemu-s390x\nremoved ${copy('s390x')}\n`);
    assert.deepEqual(fs.readdirSync(inst).sort(), ['README', 'qemu-arm-static.bak']);
    assert.deepEqual(fs.readdirSync(persist), []);
    assert.deepEqual(qemuEntries(), []);
  });

  test(`${sh}: --install-dir: a copy still in use is kept; a shared emulator goes once; what cannot be installed is exit 5 and no entry`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    clearQemuEntries();
    const root = tmpDir(t);
    const inst = path.join(root, 'inst');
    const copy = (n: string) => path.join(inst, `qemu-${n}-static`);

    // Another entry (an inert magic) runs the aarch64 copy: uninstalling aarch64 keeps the file.
    ok(run(['-p', 'yes', '--targets', 'aarch64', '--install-dir', inst]));
    registerRaw(`:polyarch-test-user:M::\\x00\\x50\\x4f\\x4c\\x59\\x41\\x52\\x43\\x48\\x00::${copy('aarch64')}:`);
    const kept = run(['--uninstall', 'aarch64', '--install-dir', inst]);
    ok(kept);
    assert.equal(kept.stdout, `removed qemu-aarch64\nkept ${copy('aarch64')}: polyarch-test-user still uses it\n`);
    assert.ok(fs.existsSync(copy('aarch64')));
    removeEntry('polyarch-test-user');
    ok(run(['--uninstall', 'aarch64', '--install-dir', inst]));
    assert.deepEqual(fs.readdirSync(inst), []);

    // i386 and i486 run one emulator, qemu-i386-static: one file, kept or removed once (their
    // own entries are not needed for that, and would claim this host's i386 binaries).
    fs.writeFileSync(copy('i386'), 'stand-in\n', { mode: 0o755 });
    registerRaw(`:polyarch-test-user:M::\\x00\\x50\\x4f\\x4c\\x59\\x41\\x52\\x43\\x48\\x00::${copy('i386')}:`);
    const sharedKept = run(['--uninstall', 'i386,i486', '--install-dir', inst]);
    ok(sharedKept);
    assert.equal(sharedKept.stdout, `kept ${copy('i386')}: polyarch-test-user still uses it\n`);
    removeEntry('polyarch-test-user');
    const shared = run(['--uninstall', 'i386,i486', '--install-dir', inst]);
    ok(shared);
    assert.equal(shared.stdout, `removed ${copy('i386')}\n`);

    // Nothing to copy: a default target is skipped (with or without F), a named one is an error.
    const empty = tmpDir(t);
    for (const p of ['yes', 'no']) {
      const skipped = run(['-p', p, '--qemu-path', empty, '--install-dir', inst]);
      ok(skipped);
      assert.match(skipped.stdout, new RegExp(`^skipped qemu-aarch64: no emulator at ${empty}/qemu-aarch64-static$`, 'm'));
      assert.deepEqual(qemuEntries(), []);
    }
    const missing = run(['-p', 'yes', '--targets', 'aarch64,s390x', '--qemu-path', empty, '--install-dir', inst]);
    ok(missing, EXIT.install);
    assert.equal(
      missing.stderr,
      [
        `register: error: qemu-aarch64: cannot install ${copy('aarch64')}: no emulator at ${empty}/qemu-aarch64-static`,
        `register: error: qemu-s390x: cannot install ${copy('s390x')}: no emulator at ${empty}/qemu-s390x-static`,
        '',
      ].join('\n'),
    );
    assert.deepEqual(qemuEntries(), []);
    assert.deepEqual(fs.readdirSync(inst), []);

    // A folder where the copy goes: exit 5, and the entry registered before stays as it was.
    ok(run(['-p', 'yes', '--targets', 'arm']));
    const before = lineOf('qemu-arm');
    fs.mkdirSync(copy('arm'));
    const blocked = run(['-p', 'yes', '--targets', 'arm,s390x', '--install-dir', inst]);
    ok(blocked, EXIT.install);
    assert.equal(blocked.stderr, `register: error: qemu-arm: cannot copy /usr/bin/qemu-arm-static to ${copy('arm')}\n`);
    assert.match(blocked.stdout, new RegExp(`^registered qemu-s390x: ${copy('s390x')} \\(flags F\\)$`, 'm'));
    assert.equal(lineOf('qemu-arm'), before);
    assert.deepEqual(fs.readdirSync(inst).sort(), ['qemu-arm-static', 'qemu-s390x-static']);
    assert.ok(fs.statSync(copy('arm')).isDirectory());

    // An install dir that cannot be made: exit 5 before anything is registered.
    clearQemuEntries();
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, '');
    const cannot = run(['-p', 'yes', '--targets', 'aarch64', '--install-dir', `${file}/qemu`]);
    ok(cannot, EXIT.install);
    assert.equal(cannot.stderr, `register: error: cannot create ${file}/qemu\n`);
    assert.deepEqual(qemuEntries(), []);
  });

  test(`${sh}: a bad --install-dir is a usage error before anything is touched`, (t) => {
    if (!needs(t)) return;
    guardBinfmt(t);
    const root = tmpDir(t);
    const marker = path.join(root, 'pwned');
    const before = readEntries();
    const cases: [string[], string][] = [
      [['--install-dir', 'usr/local/lib/qemu'], '--install-dir must be an absolute path'],
      [['--install-dir='], '--install-dir must be an absolute path'],
      [['--uninstall', '--install-dir', './qemu'], '--install-dir must be an absolute path'],
      [['--install-dir', `${root}/qemu static`], `--install-dir "${root}/qemu static" must be non-empty and use only letters, digits and . _ / + -`],
      [['--install-dir', `${root}/$(touch ${marker})`], `--install-dir "${root}/$(touch ${marker})" must be non-empty and use only letters, digits and . _ / + -`],
      [['--install-dir', `${root}/a:b`], `--install-dir "${root}/a:b" must be non-empty and use only letters, digits and . _ / + -`],
      [['--install-dir', `/${'q'.repeat(600)}`], '--install-dir is longer than 512 characters'],
      [['--install-dir', `${root}/../etc`], '--install-dir must not contain . or .. components'],
      [['--install-dir', `${root}/./qemu`], '--install-dir must not contain . or .. components'],
      [['--install-dir', `${root}/..`], '--install-dir must not contain . or .. components'],
      [['--install-dir', '//'], '--install-dir must not be /'],
      [['-p', 'yes', '--install-dir'], '--install-dir needs a value'],
    ];
    for (const [args, message] of cases) {
      const r = run(['--targets', 'aarch64', ...args]);
      assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, `register: error: ${message}\nregister: try: register --help\n`, args.join(' '));
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(fs.readdirSync(root), [], 'nothing made, nothing run');
    assert.deepEqual(readEntries(), before);
  });

  test(`${sh}: mounts binfmt_misc when missing, says plainly when the kernel has none, exits 2 without root`, (t) => {
    if (!needs(t, hasCommand('unshare'), canRunAsNobody, hasCommand('mount'))) return;
    guardBinfmt(t);
    const script = registerScript();
    // A private mount namespace, so unmounting there leaves this machine's mount alone.
    const inNamespace = (setup: string, args: string[]) =>
      spawnSync('unshare', ['-m', '--', 'sh', '-c', `${setup} && exec "$@"`, 'sh', ...shell.argv, script, ...args], { encoding: 'utf8' });
    const mounted = inNamespace(`umount ${BINFMT}`, ['--list']);
    assert.equal(mounted.status, EXIT.ok, mounted.stderr);
    assert.match(mounted.stdout, new RegExp(`^mounted binfmt_misc on ${BINFMT}$`, 'm'));

    const fake = path.join(tmpDir(t), 'filesystems');
    fs.writeFileSync(fake, fs.readFileSync('/proc/filesystems', 'utf8').split('\n').filter((l) => !l.includes('binfmt_misc')).join('\n'));
    const none = inNamespace(`umount ${BINFMT} && mount --bind ${fake} /proc/filesystems`, ['-p', 'yes']);
    assert.equal(none.status, EXIT.noBinfmt, none.stderr);
    assert.match(none.stderr, /^register: error: this kernel has no binfmt_misc support \(it is not in \/proc\/filesystems\)/);

    const [cmd, ...argv] = asNobody([...shell.argv, script]);
    const user = spawnSync(cmd, [...argv, '-p', 'yes'], { encoding: 'utf8' });
    assert.equal(user.status, EXIT.noBinfmt, user.stderr);
    assert.match(user.stderr, /register is not writable \(this needs root; in a container, run it with --privileged\)/);
    // Listing needs no write access.
    const list = spawnSync(cmd, [...argv, '--list'], { encoding: 'utf8' });
    assert.equal(list.status, EXIT.ok, list.stderr);
  });
}
