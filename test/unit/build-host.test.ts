// lib/build-host: what a build host gets (files, upload paths, registration key, triggers)
// and the shell strings (quoting, POSIX syntax, shellcheck, behaviour that needs no kernel).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { compareObservation, observeCommand, observeScript, planBuildHost, registerFlags, shellQuote, stageUpload, withRepair, writeRegisterScript, type BuildHost, type BuildHostPlan } from '../../lib/build-host.ts';
import { parseStackConfig } from '../../lib/config.ts';
import { prepareStackEmulators, type HostEmulators } from '../../lib/emulators.ts';
import { generateRegisterScript } from '../../lib/register-script.ts';
import { canMountTmpfs, fillUp, hasCommand, isRoot, requireSystem, withTmpfs } from '../helpers/system.ts';
import { fixtureLock } from '../helpers/program.ts';
import { asNobody, canRunAsNobody } from '../helpers/as-nobody.ts';
import { flipByte } from '../helpers/tamper.ts';

const digest = (s: string) => createHash('sha256').update(s).digest('hex');
const SCRIPT = { path: '/cache/scripts/register-0123456789abcdef', sha256: digest('script') };

function emulators(host: HostEmulators['host'], cpus: string[]): HostEmulators {
  return { host, dir: `/cache/emulators/${host}`, emulators: cpus.map((cpu) => ({ cpu, file: `qemu-${cpu}-static`, size: 1, sha256: digest(`${host}/${cpu}`), rpm: 'qemu-user-static-x' })), rpms: [] };
}
const HOSTS = [emulators('x86_64', ['aarch64', 'arm', 'i386', 's390x']), emulators('aarch64', ['i386', 'x86_64', 'riscv64'])];

function buildHost(fields: Record<string, unknown> = {}): BuildHost {
  const raw = { buildHosts: JSON.stringify([{ name: 'ci-1', address: '10.0.0.1', user: 'root', ...fields }]), hosts: '["x86_64","aarch64"]' };
  return parseStackConfig(raw, new Set(['sshPrivateKey'])).buildHosts[0]!;
}
const plan = (fields: Record<string, unknown> = {}, hosts = HOSTS) => planBuildHost(buildHost(fields), hosts, SCRIPT);

/** The script inside a plan's (non-sudo) command string: what `sh -c` gets. */
function innerScript(command: string): string {
  assert.ok(command.startsWith('sh -c '));
  const r = spawnSync('sh', ['-c', command.replace(/^sh -c /, 'printf %s ')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('shellQuote: any string comes back unchanged through sh', () => {
  for (const s of ["it's", '$(id) `id` $HOME ${x}', 'a\nb\tc\\d', "''", '', '-n', '*', '"quoted"', "'; rm -rf / #"]) {
    const r = spawnSync('sh', ['-c', `printf %s ${shellQuote(s)}`], { encoding: 'utf8' });
    assert.equal(r.stdout, s);
  }
});

test('registerFlags: binfmt flags as the register script’s options', () => {
  assert.deepEqual(registerFlags('F'), ['--persistent', 'yes', '--credential', 'no', '--preserve-argv0', 'no']);
  assert.deepEqual(registerFlags('POCF'), ['--persistent', 'yes', '--credential', 'yes', '--preserve-argv0', 'yes']);
  assert.deepEqual(registerFlags(''), ['--persistent', 'no', '--credential', 'no', '--preserve-argv0', 'no']);
});

test('by default a build host gets every emulator published for its own arch, plus the script', () => {
  const amd = plan();
  assert.deepEqual(amd.targets, ['aarch64', 'arm', 's390x']);
  assert.deepEqual(amd.entries, ['qemu-aarch64', 'qemu-arm', 'qemu-s390x']);
  assert.deepEqual(amd.files.map((f) => f.name), ['qemu-aarch64-static', 'qemu-arm-static', 'qemu-s390x-static', 'register']);
  const first = amd.files[0]!;
  assert.equal(first.local, '/cache/emulators/x86_64/qemu-aarch64-static');
  assert.equal(first.sha256, digest('x86_64/aarch64'));
  // One upload folder straight in the home folder, named by its content.
  assert.match(amd.upload, /^\.polyarch-[0-9a-f]{16}$/);
  assert.deepEqual(amd.files.map((f) => f.remote), amd.files.map((f) => `${amd.upload}/${f.name}`));
  assert.equal(plan({ flags: 'OCF', persist: false }).upload, amd.upload, 'flags and persistence upload nothing new');
  assert.notEqual(plan({ targets: ['aarch64'] }).upload, amd.upload);
  assert.equal(amd.folder, `/usr/local/lib/polyarch/${amd.key}`);

  const arm = plan({ arch: 'aarch64' });
  assert.deepEqual(arm.targets, ['i386', 'i486', 'riscv64', 'x86_64']);
  assert.equal(arm.files[0]!.local, '/cache/emulators/aarch64/qemu-i386-static');
});

test('named targets: i486 registers qemu-i486 with the i386 emulator', () => {
  const p = plan({ arch: 'aarch64', targets: ['x86_64', 'i486'] });
  assert.deepEqual(p.targets, ['i486', 'x86_64']);
  assert.deepEqual(p.entries, ['qemu-i486', 'qemu-x86_64']);
  assert.deepEqual(p.files.map((f) => f.name), ['qemu-i386-static', 'qemu-x86_64-static', 'register']);
  assert.match(p.delete, /qemu-i486:qemu-i386-static/);
});

test('ignoreFamily: the host family is registered but for the host’s own CPU, and the script is told so', () => {
  const p = plan({ ignoreFamily: true });
  // i486 comes with i386: its entry runs the i386 emulator.
  assert.deepEqual(p.targets, ['aarch64', 'arm', 'i386', 'i486', 's390x']);
  assert.deepEqual(p.entries, ['qemu-aarch64', 'qemu-arm', 'qemu-i386', 'qemu-i486', 'qemu-s390x']);
  assert.match(innerScript(p.create), /^options='--persistent yes --credential no --preserve-argv0 no --ignore-family yes --persist-dir \/etc\/binfmt\.d'$/m);
  assert.doesNotMatch(innerScript(plan().create), /ignore-family/);
  assert.notEqual(p.key, plan().key);
  assert.equal(plan({ ignoreFamily: false }).key, plan().key, 'the default keeps existing keys');
  // Named targets: i386 is allowed on x86_64 with ignoreFamily, x86_64 itself never is.
  assert.deepEqual(plan({ ignoreFamily: true, targets: ['i386'] }).targets, ['i386']);
  assert.throws(() => plan({ targets: ['i386'] }), /runs i386 natively/);
  assert.throws(() => plan({ ignoreFamily: true, targets: ['x86_64', 'i386'] }), /runs x86_64 natively/);
  assert.deepEqual(registerFlags('F', true).slice(-2), ['--ignore-family', 'yes']);
});

test('ignoreFamily over the real preparation: an x86_64 host gets qemu-i386 installed and registered by its create command; without it, not', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-family-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const { lock, cacheDir } = await fixtureLock(['x86_64']);
  // The stack's default targets, extracted as the program does: no emulator named by hand.
  const [x86] = await prepareStackEmulators({ lockFile: 'qemu.lock.json', hosts: ['x86_64'], targets: ['all'], cacheDir }, lock);
  assert.ok(!x86!.emulators.some((e) => e.cpu === 'i386'), 'the release and images still leave the host family out');
  // A stand-in register script records how it was called, so the create command runs without a kernel.
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'id'), '#!/bin/sh\necho 0\n', { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'uname'), '#!/bin/sh\necho x86_64\n', { mode: 0o755 });
  const log = path.join(root, 'register.log');
  const recorder = `#!/bin/sh\nprintf '%s\\n' "$*" >>${shellQuote(log)}\n`;
  fs.writeFileSync(path.join(root, 'register'), recorder);
  const script = { path: path.join(root, 'register'), sha256: digest(recorder) };

  const run = (ignoreFamily: boolean) => {
    const home = fs.mkdtempSync(path.join(root, 'home-'));
    const p = planBuildHost(buildHost({ ignoreFamily, emulatorDir: path.join(home, 'polyarch') }), [x86!], script);
    fs.mkdirSync(path.join(home, p.upload));
    for (const f of p.files) fs.copyFileSync(f.local, path.join(home, f.remote));
    fs.rmSync(log, { force: true });
    const r = spawnSync('sh', ['-c', p.create], { encoding: 'utf8', env: { PATH: `${bin}:${process.env.PATH}`, HOME: home } });
    assert.equal(r.status, 0, r.stderr);
    const installed = fs.readdirSync(p.folder).filter((n) => n.startsWith('qemu-'));
    return { installed, folder: p.folder, called: fs.readFileSync(log, 'utf8') };
  };
  const withFamily = run(true);
  assert.ok(withFamily.installed.includes('qemu-i386-static'), withFamily.installed.join(' '));
  const source = path.join(x86!.dir, 'qemu-i386-static');
  assert.ok(fs.readFileSync(path.join(withFamily.folder, 'qemu-i386-static')).equals(fs.readFileSync(source)), 'the extracted bytes were installed');
  assert.match(withFamily.called, /--targets (\S+,)?i386,i486,/);
  assert.match(withFamily.called, /--ignore-family yes/);
  assert.ok(!withFamily.installed.includes('qemu-x86_64-static'), 'the host’s own CPU stays native');

  const without = run(false);
  assert.ok(!without.installed.includes('qemu-i386-static'), without.installed.join(' '));
  assert.doesNotMatch(without.called, /i386|i486|ignore-family/);
  assert.deepEqual(without.installed, withFamily.installed.filter((n) => n !== 'qemu-i386-static'));
});

test('targets the stack does not publish, or that the host runs natively, are refused naming the host', () => {
  assert.throws(() => plan({ targets: ['riscv64'] }), /build host "ci-1" targets riscv64, but the stack publishes no such emulator for x86_64 \(published: aarch64, arm, i386, s390x\)/);
  assert.throws(() => plan({ targets: ['x86_64', 'aarch64'] }), /build host "ci-1" \(x86_64\) runs x86_64 natively/);
  assert.throws(() => plan({}, [HOSTS[1]!]), /build host "ci-1" is x86_64, but no emulators were extracted for x86_64/);
});

test('the registration key covers what lands on the host; the triggers add the address', () => {
  const base = plan();
  const keyOf = (p: BuildHostPlan) => p.key;
  assert.equal(keyOf(plan()), base.key, 'stable');
  for (const change of [{ flags: 'OCF' }, { persist: false }, { targets: ['aarch64'] }]) assert.notEqual(keyOf(plan(change)), base.key, JSON.stringify(change));
  const rebuilt = { ...HOSTS[0]!, emulators: HOSTS[0]!.emulators.map((e, i) => (i === 0 ? { ...e, sha256: digest('rebuilt') } : e)) };
  assert.notEqual(planBuildHost(buildHost(), [rebuilt], SCRIPT).key, base.key, 'an emulator digest');
  assert.notEqual(planBuildHost(buildHost(), HOSTS, { ...SCRIPT, sha256: digest('other script') }).key, base.key, 'the script digest');
  // How the host is reached is not part of what it holds.
  for (const change of [{ user: 'ci', sudo: true }, { port: 2222 }, { hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA' }]) assert.equal(keyOf(plan(change)), base.key, JSON.stringify(change));
  assert.notEqual(plan({ emulatorDir: '/opt/q' }).folder, base.folder);

  assert.deepEqual(base.triggers.slice(0, 6), ['address=10.0.0.1:22', 'arch=x86_64', `folder=${base.folder}`, 'flags=F', 'persist=true', 'targets=aarch64,arm,s390x']);
  assert.deepEqual(base.triggers.slice(6), base.files.map((f) => `${f.name}=${f.sha256}`));
  assert.ok(plan({ port: 2222 }).triggers.includes('address=10.0.0.1:2222'));
});

test('the command strings: valid POSIX sh (dash -n), the inner scripts pass shellcheck, sudo wraps them', (t) => {
  if (!requireSystem(t, hasCommand('dash'), hasCommand('shellcheck'))) return;
  for (const fields of [{}, { user: 'ci', sudo: true, persist: false, flags: 'POCF', emulatorDir: '/opt/qemu' }]) {
    const p = plan(fields);
    for (const op of ['create', 'update', 'delete'] as const) {
      const r = spawnSync('dash', ['-n', '-c', p[op]], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${op}: ${r.stderr}`);
    }
  }
  const p = plan({ persist: true, flags: 'OCF' });
  for (const op of ['create', 'delete'] as const) {
    const r = spawnSync('shellcheck', ['-s', 'sh', '-'], { input: innerScript(p[op]), encoding: 'utf8' });
    assert.equal(r.status, 0, `${op}: ${r.stdout}`);
  }
  const create = innerScript(p.create);
  assert.match(create, /^options='--persistent yes --credential yes --preserve-argv0 no --persist-dir \/etc\/binfmt\.d'$/m);
  assert.match(create, /^targets='aarch64,arm,s390x'$/m);
  assert.match(create, /^mode=create$/m);
  assert.match(innerScript(p.update), /^mode=update$/m);
  assert.doesNotMatch(innerScript(plan({ persist: false }).create), /persist-dir/);

  const sudo = plan({ user: 'ci', sudo: true });
  for (const op of ['create', 'update', 'delete'] as const) assert.match(sudo[op], /^sudo -n true 2>\/dev\/null \|\| \{ echo 'polyarch: build host ci-1: user ci cannot run sudo without a password \(sudo -n\)' >&2; exit 1; \}; sudo -n sh -c '/);
});

test('run as a user who is not root, every string stops before touching anything and names the host', (t) => {
  if (!requireSystem(t, isRoot, canRunAsNobody)) return;
  const p = plan();
  for (const op of ['create', 'update', 'delete'] as const) {
    const [cmd, ...argv] = asNobody(['sh', '-c', p[op]]);
    const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/nonexistent' } });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'polyarch: build host ci-1: must run as root: log in as root, or set sudo: true for a user with passwordless sudo\n');
    assert.equal(r.stdout, '');
  }
});

test('delete of a registration that is not there drops its leftover uploads and says so', (t) => {
  if (!requireSystem(t, isRoot)) return;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-home-'));
  t.after(() => fs.rmSync(home, { recursive: true, force: true }));
  const p = plan({ emulatorDir: path.join(home, 'emulators') });
  fs.mkdirSync(path.join(home, p.upload));
  for (const f of p.files) fs.writeFileSync(path.join(home, f.remote), 'leftover');
  fs.writeFileSync(path.join(home, '.polyarch-unrelated'), 'not ours');
  const r = spawnSync('sh', ['-c', p.delete], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `polyarch: ci-1: nothing to remove: ${p.folder} does not exist\n`);
  assert.deepEqual(fs.readdirSync(home), ['.polyarch-unrelated']);
});

test('writeRegisterScript: the generated script, once per content, named by its digest', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-scripts-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const a = await writeRegisterScript(dir);
  const text = generateRegisterScript();
  assert.equal(a.sha256, digest(text));
  assert.equal(a.path, path.join(dir, `register-${a.sha256.slice(0, 16)}`));
  assert.equal(fs.readFileSync(a.path, 'utf8'), text);
  assert.equal(fs.statSync(a.path).mode & 0o777, 0o755);
  // A damaged copy is rewritten; a good one is reused.
  fs.writeFileSync(a.path, 'damaged');
  assert.deepEqual(await writeRegisterScript(dir), a);
  assert.equal(fs.readFileSync(a.path, 'utf8'), text);
  assert.deepEqual(fs.readdirSync(dir), [path.basename(a.path)]);
});

test('writeRegisterScript into a full or read-only folder: one line naming the script, no temp file; a killed run\'s temp is swept', async (t) => {
  if (!requireSystem(t, canMountTmpfs)) return;
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-scripts-'));
  t.after(() => fs.rmSync(parent, { recursive: true, force: true }));
  const name = `register-${digest(generateRegisterScript()).slice(0, 16)}`;
  const hostTag = digest(os.hostname()).slice(0, 8);
  await withTmpfs(parent, 1, async (dir, remount) => {
    // Empty temps (no page to free): one of a gone run, swept; one of a live run, kept.
    const gone = path.join(dir, `.${name}.polyarch-tmp-${hostTag}-${spawnSync('true').pid}-0123abcd`);
    const live = path.join(dir, `.${name}.polyarch-tmp-${hostTag}-${process.pid}-4567cdef`);
    fs.writeFileSync(gone, '');
    fs.writeFileSync(live, '');
    fillUp(dir);
    await assert.rejects(writeRegisterScript(dir), (e: Error) => {
      assert.equal(e.message, `no space left in ${dir} while writing ${name}`);
      return true;
    });
    assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(live), 'filler'], 'no temp of this run, the gone run\'s swept');
    fs.rmSync(path.join(dir, 'filler'));

    remount('ro');
    await assert.rejects(writeRegisterScript(dir), { message: `${path.join(dir, name)}: cannot write (EROFS: read-only file system)` });
    remount('rw');
    const ok = await writeRegisterScript(dir);
    assert.equal(fs.readFileSync(ok.path, 'utf8'), generateRegisterScript());
    assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(live), name]);
  });
});

// Drift: what BinfmtCheck reads back on refresh, compared with what the plan registered.
test('observeScript and compareObservation: an intact host has no drift; each lost or changed piece is named', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-observe-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const p = plan({ targets: ['aarch64', 'arm'], emulatorDir: path.join(root, 'lib') });
  const { expected } = p;
  assert.deepEqual(expected.entries.map((e) => e.name), ['qemu-aarch64', 'qemu-arm']);
  assert.deepEqual(expected.files.map((f) => f.path), p.files.map((f) => `${p.folder}/${f.name}`));
  assert.deepEqual(expected.confs.map((c) => c.path), ['/etc/binfmt.d/qemu-aarch64.conf', '/etc/binfmt.d/qemu-arm.conf']);
  assert.deepEqual(plan({ targets: ['aarch64'], persist: false }).expected.confs, [], 'no binfmt.d files without persistence');

  // What the kernel shows for an entry made from the planned line.
  const proc = (line: string, enabled = 'enabled') => {
    const [, , , , magic, mask, interpreter, flags] = line.split(':');
    const hex = (x: string) => x.replace(/\\x/g, '');
    return `${enabled}\ninterpreter ${interpreter}\nflags: ${flags}\noffset 0\nmagic ${hex(magic!)}\nmask ${hex(mask!)}\n`;
  };
  const answer = (o: { entry?: (name: string, line: string) => string; files?: (f: { path: string; sha256: string }) => string; conf?: (text: string) => string; end?: boolean } = {}) =>
    [
      ...expected.entries.map((e) => `@entry ${e.name}\n${(o.entry ?? ((_n, l) => proc(l)))(e.name, e.line)}`),
      `@files\n${expected.files.map((f) => (o.files ?? ((x) => `${x.sha256}  ${x.path}\n`))(f)).join('')}`,
      ...expected.confs.map((c) => `@conf ${c.path}\n${(o.conf ?? ((x) => x))(c.text)}`),
      o.end === false ? '' : '@polyarch-end\n',
    ].join('');
  assert.deepEqual(compareObservation(expected, answer()), { problems: [], files: false });

  // A reboot without persistence: no entries, files still there.
  assert.deepEqual(compareObservation(expected, answer({ entry: () => '' })), { problems: ['qemu-aarch64 is not registered', 'qemu-arm is not registered'], files: false });
  const one = compareObservation(expected, answer({ entry: (n, l) => (n === 'qemu-arm' ? proc(l, 'disabled') : proc(l.replace(/:F$/, ':OCF'))) }));
  assert.match(one.problems[0]!, /^qemu-aarch64 is not the planned entry \(now :qemu-aarch64:M::.*:OCF\)$/);
  assert.equal(one.problems[1], 'qemu-arm is disabled');
  assert.match(compareObservation(expected, answer({ entry: (_n, l) => proc(l.replace(p.folder, '/usr/bin')) })).problems[0]!, /^qemu-aarch64 is not the planned entry \(now .*:\/usr\/bin\/qemu-aarch64-static:F\)$/);
  // A reinstall: the emulator folder is gone too, so the uploads are needed again.
  const gone = compareObservation(expected, answer({ entry: () => '', files: () => '', conf: () => '' }));
  assert.equal(gone.files, true);
  assert.ok(gone.problems.includes(`${p.folder}/qemu-arm-static is missing`));
  assert.ok(gone.problems.includes('/etc/binfmt.d/qemu-arm.conf is missing'));
  const changed = compareObservation(expected, answer({ files: (f) => `${f.path.endsWith('register') ? '0'.repeat(64) : f.sha256}  ${f.path}\n` }));
  assert.deepEqual(changed, { problems: [`${p.folder}/register has other bytes`], files: true });
  assert.deepEqual(compareObservation(expected, answer({ conf: (x) => x.replace(':F', ':') })).problems, ['/etc/binfmt.d/qemu-aarch64.conf differs', '/etc/binfmt.d/qemu-arm.conf differs']);
  // An answer cut short is an error, never "intact".
  assert.throws(() => compareObservation(expected, answer({ end: false })), /the host's answer is incomplete/);

  // The script itself, run by sh on this machine: its files are found by digest, its absent
  // entries reported as such, and it only reads.
  fs.mkdirSync(p.folder, { recursive: true });
  for (const f of p.files) fs.writeFileSync(path.join(p.folder, f.name), 'x');
  const r = spawnSync('sh', ['-c', observeScript({ ...expected, entries: [{ name: 'qemu-polyarch-test-none', line: expected.entries[0]!.line }], confs: [] })], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const seen = compareObservation({ ...expected, entries: [{ name: 'qemu-polyarch-test-none', line: expected.entries[0]!.line }], confs: [] }, r.stdout);
  assert.equal(seen.problems[0], 'qemu-polyarch-test-none is not registered');
  assert.equal(seen.problems.filter((x) => x.endsWith('has other bytes')).length, p.files.length);
  const dash = spawnSync('dash', ['-n', '-c', observeScript(expected)], { encoding: 'utf8' });
  assert.equal(dash.status, 0, dash.stderr);
  // A sudo host reads through sudo (the folder's parents may be closed to its user); the string is the same script.
  assert.equal(observeCommand(expected, false), `sh -c ${shellQuote(observeScript(expected))}`);
  assert.equal(observeCommand(expected, true), `sudo -n sh -c ${shellQuote(observeScript(expected))}`);
});

test('withRepair: the update string changes with each repair, and runs the same', () => {
  const p = plan();
  assert.equal(withRepair(p.update, 0), p.update);
  assert.notEqual(withRepair(p.update, 1), withRepair(p.update, 2));
  assert.equal(innerScript(withRepair(p.update, 3).split('\n').slice(1).join('\n')), innerScript(p.update));
  assert.match(withRepair(p.update, 3), /^# polyarch repair 3\n/);
});

test('stageUpload: the upload folder holds checked copies of exactly the plan\'s files, never links into the cache; a second call reuses it, a changed byte is replaced', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-upload-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const src = path.join(root, 'src');
  fs.mkdirSync(src);
  const cpus = ['aarch64', 'arm'];
  const host = { ...emulators('x86_64', cpus), dir: src };
  // Real digests: each copy is checked against the plan.
  host.emulators = host.emulators.map((e) => ({ ...e, sha256: digest(e.cpu) }));
  for (const e of host.emulators) fs.writeFileSync(path.join(src, e.file), e.cpu);
  fs.writeFileSync(path.join(src, 'register'), '#!/bin/sh\n');
  const p = planBuildHost(buildHost(), [host], { path: path.join(src, 'register'), sha256: digest('#!/bin/sh\n') });
  const dir = await stageUpload(p, path.join(root, 'uploads'));
  assert.equal(dir, path.join(root, 'uploads', p.upload));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['qemu-aarch64-static', 'qemu-arm-static', 'register']);
  assert.notEqual(fs.statSync(path.join(dir, 'qemu-arm-static')).ino, fs.statSync(path.join(src, 'qemu-arm-static')).ino, 'a copy, not a hard link');
  assert.equal(fs.readFileSync(path.join(dir, 'qemu-arm-static'), 'utf8'), 'arm');
  assert.deepEqual(fs.readdirSync(path.join(root, 'uploads')), [p.upload], 'no stage left behind');
  assert.equal(await stageUpload(p, path.join(root, 'uploads')), dir);

  // A byte changed in the staged folder (same size, mtime put back) is replaced from the source.
  const staged = path.join(dir, 'qemu-arm-static');
  flipByte(staged, 2);
  assert.equal(await stageUpload(p, path.join(root, 'uploads')), dir);
  assert.equal(fs.readFileSync(staged, 'utf8'), 'arm');

  // A source that no longer holds the plan's bytes is refused, naming it; nothing is staged.
  fs.rmSync(path.join(root, 'uploads'), { recursive: true });
  flipByte(path.join(src, 'qemu-arm-static'), 2);
  await assert.rejects(stageUpload(p, path.join(root, 'uploads')), { message: `${path.join(src, 'qemu-arm-static')}: sha256 ${createHash('sha256').update(Buffer.from('ar\x92', 'latin1')).digest('hex')}, expected ${digest('arm')} (changed since it was extracted); run again` });
  assert.deepEqual(fs.readdirSync(path.join(root, 'uploads')), []);
});
