// Build hosts for real: the program runs under mocks with build hosts that point at a private
// sshd on loopback, and the test then does what the command provider would do with what was
// declared — copy each CopyToRemote source (one folder per host) over SFTP (scp -r) to its remote path, and run the
// register command's exact create / update / delete strings over ssh with the declared
// connection — in the order Pulumi runs them. The "remote" is this machine, so the entries
// land in this kernel's binfmt_misc (snapshotted and restored, run under
// `flock /tmp/polyarch-binfmt.lock`) and each build host uses a test-owned emulator folder.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { before, test, type TestContext } from 'node:test';
import { registerLine } from '../../lib/binfmt.ts';
import { findCpu, type Cpu } from '../../lib/cpus.ts';
import { PERSIST_DIR } from '../../lib/build-host.ts';
import { guardBinfmt, guardPersistDir, hasBinfmtMisc, readEntries, registerRaw, removeEntry, tmpDir } from '../helpers/binfmt.ts';
import { debianPackage } from '../helpers/debian.ts';
import { fixtureLock, loadProgram, plainText, type Declared } from '../helpers/program.ts';
import { scp, ssh, sshdProbes, startSshd, type Connection, type RunResult, type Sshd } from '../helpers/sshd.ts';
import { hasCommand, requireSystem } from '../helpers/system.ts';

const needs = (t: TestContext) => requireSystem(t, ...sshdProbes, hasBinfmtMisc, hasCommand('apt-get'), hasCommand('dpkg-deb'));
const cpu = (name: string): Cpu => findCpu(name) ?? assert.fail(`no CPU ${name}`);

let lockFile = '';
let cacheDir = '';
before(async () => {
  if (process.getuid?.() !== 0) return;
  ({ file: lockFile, cacheDir } = await fixtureLock(['x86_64']));
});

interface Program {
  resources: Declared[];
  buildHosts: Record<string, { entries: string[]; folder: string }>;
}

async function program(buildHosts: object[], privateKey: string): Promise<Program> {
  const { resources, outputs } = await loadProgram(
    { 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["x86_64"]', 'polyarch:buildHosts': JSON.stringify(buildHosts) },
    { 'polyarch:sshPrivateKey': privateKey },
  );
  return { resources, buildHosts: outputs.buildHosts as Program['buildHosts'] };
}

/** Every ssh/scp output and error, to check the key never shows up in one. */
const transcript: string[] = [];

function connectionOf(r: Declared): Connection {
  const c = r.inputs.connection as { host: string; port: number; user: string; privateKey: string; hostKey?: string };
  return { host: c.host, port: c.port, user: c.user, privateKey: c.privateKey, ...(c.hostKey !== undefined && { hostKey: c.hostKey }) };
}

/** As the engine reports a failed step: the resource's type and name, then what went wrong. */
function failure(r: Declared, what: string, res: RunResult): Error {
  return new Error(`${r.type} (${r.name}): ${what} failed (exit ${res.code}): ${res.stderr.trim()}`);
}

function record(res: RunResult): RunResult {
  transcript.push(res.stdout, res.stderr);
  return res;
}

const copiesOf = (p: Program, host: string) => p.resources.filter((r) => r.type === 'command:remote:CopyToRemote' && r.parent?.endsWith(`::${host}`));
const commandOf = (p: Program, host: string) =>
  p.resources.find((r) => r.type === 'command:remote:Command' && r.parent?.endsWith(`::${host}`)) ?? assert.fail(`no register command for ${host}`);

/**
 * `pulumi up` for one host's copies: each copy whose source or remote path differs from the
 * previous program's (all of them when there is none) is copied; the others are left alone.
 */
function copy(p: Program, host: string, previous?: Program): void {
  for (const r of copiesOf(p, host)) {
    const before = previous && copiesOf(previous, host).find((o) => o.name === r.name);
    if (before && JSON.stringify(before.inputs.source) === JSON.stringify(r.inputs.source) && before.inputs.remotePath === r.inputs.remotePath) continue;
    const res = record(scp(connectionOf(r), (r.inputs.source as { path: string }).path, r.inputs.remotePath as string));
    // The plugin copies a folder into an existing remote folder under its own name, as scp -r does.
    if (res.code !== 0) throw failure(r, 'copy', res);
  }
}

/** Runs the register command's declared create, update or delete string over ssh. */
function run(p: Program, host: string, op: 'create' | 'update' | 'delete'): RunResult {
  const r = commandOf(p, host);
  const res = record(ssh(connectionOf(r), r.inputs[op] as string));
  if (res.code !== 0) throw failure(r, op, res);
  return res;
}

/** Removes uploads a test left in a user's home (a failed step leaves them behind). */
function guardUploads(t: TestContext, home: string): void {
  const ours = () => (fs.existsSync(home) ? fs.readdirSync(home).filter((f) => f.startsWith('.polyarch-')) : []);
  const before = new Set(ours());
  t.after(() => {
    for (const f of ours()) if (!before.has(f)) fs.rmSync(path.join(home, f), { force: true });
  });
}

/** The test's kernel state: binfmt_misc, /etc/binfmt.d and uploads are restored afterwards. */
async function setUp(t: TestContext): Promise<Sshd> {
  guardBinfmt(t);
  guardPersistDir(t);
  const sshd = await startSshd(t);
  guardUploads(t, sshd.root.home);
  guardUploads(t, sshd.sudoUser.home);
  return sshd;
}

// A harmless magic no real file starts with: an entry that is none of ours and must survive.
const UNRELATED = ':polyarch-test-unrelated:M::\\x00\\x50\\x4f\\x4c\\x59\\x41\\x52\\x43\\x48\\x00::/bin/false:';

/** binfmt_misc with none of `targets` registered, plus two entries that are not ours. */
function prepareKernel(targets: string[]): Map<string, string> {
  const drop = (name: string) => readEntries().has(name) && removeEntry(name);
  for (const c of targets) drop(`qemu-${c}`);
  drop('polyarch-test-unrelated');
  registerRaw(UNRELATED);
  // A qemu-* entry outside the targets: also not ours.
  drop('qemu-mips');
  registerRaw(registerLine(cpu('mips'), { path: '/nonexistent', flags: '' }));
  return readEntries();
}

function entry(name: string): string | undefined {
  return readEntries().get(name);
}

function interpreterOf(name: string): string | undefined {
  return /^interpreter (.*)$/m.exec(entry(name) ?? '')?.[1];
}

function flagsOf(name: string): string | undefined {
  return /^flags: ?(.*)$/m.exec(entry(name) ?? '')?.[1];
}

const busyboxArm64 = () => path.join(debianPackage('busybox-static', 'arm64'), 'bin', 'busybox');

function unameOf(binary: string): string {
  const r = spawnSync(binary, ['uname', '-m'], { encoding: 'utf8', timeout: 60_000 });
  return `${r.stdout.trim()}${r.error ? ` (${r.error.message})` : ''}${r.status ? ` exit ${r.status}: ${r.stderr}` : ''}`;
}

test('root: copy and create register the entries and foreign binaries run; a second create changes nothing; delete removes exactly those entries and their binfmt.d files', async (t) => {
  if (!needs(t)) return;
  const sshd = await setUp(t);
  const emulatorDir = tmpDir(t, 'polyarch-emulators-');
  const targets = ['aarch64', 'arm', 's390x'];
  const p = await program([{ name: 'loop-root', address: sshd.host, port: sshd.port, user: 'root', hostKey: sshd.hostKey, emulatorDir, targets }], sshd.privateKey);
  const { folder, entries } = p.buildHosts['loop-root']!;
  assert.deepEqual(entries, ['qemu-aarch64', 'qemu-arm', 'qemu-s390x']);
  const before = prepareKernel(targets);

  copy(p, 'loop-root');
  const uploads = copiesOf(p, 'loop-root').map((c) => path.join(sshd.root.home, path.basename((c.inputs.source as { path: string }).path)));
  assert.equal(uploads.length, 1, 'one upload folder');
  assert.ok(uploads.every((u) => fs.existsSync(u)), 'the copies landed in the home folder');
  const created = run(p, 'loop-root', 'create');
  assert.match(created.stdout, /registered qemu-aarch64: /);

  for (const c of targets) {
    assert.equal(interpreterOf(`qemu-${c}`), `${folder}/qemu-${c}-static`);
    assert.equal(flagsOf(`qemu-${c}`), 'F');
    // Persisted for systemd-binfmt: the same line as registered.
    assert.equal(fs.readFileSync(path.join(PERSIST_DIR, `qemu-${c}.conf`), 'utf8'), `${registerLine(cpu(c), { path: folder, flags: 'F' })}\n`);
    const installed = fs.statSync(path.join(folder, `qemu-${c}-static`));
    assert.equal(installed.uid, 0);
    assert.equal(installed.mode & 0o777, 0o755);
  }
  assert.equal(unameOf(busyboxArm64()), 'aarch64');
  assert.ok(uploads.every((u) => !fs.existsSync(u)), 'the uploads were consumed');

  // Running create again (the uploads are gone by now) leaves the kernel as it was.
  const registered = readEntries();
  const again = run(p, 'loop-root', 'create');
  assert.match(again.stdout, /unchanged qemu-aarch64/);
  assert.deepEqual(readEntries(), registered);
  // Each create is a claim (a forced replacement runs a second create before the old delete),
  // so the first delete gives one back and keeps the entries; the last one removes them.
  assert.match(run(p, 'loop-root', 'delete').stdout, /kept /);
  assert.deepEqual(readEntries(), registered);
  assert.equal(unameOf(busyboxArm64()), 'aarch64');

  const removed = run(p, 'loop-root', 'delete');
  assert.match(removed.stdout, /removed qemu-aarch64/);
  assert.deepEqual(readEntries(), before, 'exactly our entries are gone; the unrelated ones are as they were');
  for (const c of targets) assert.ok(!fs.existsSync(path.join(PERSIST_DIR, `qemu-${c}.conf`)));
  assert.ok(!fs.existsSync(emulatorDir), 'the emulator folder is gone (it was empty)');
  // Deleting what is gone is harmless.
  assert.match(run(p, 'loop-root', 'delete').stdout, /nothing to remove/);
});

test('sudo: a non-root user registers through passwordless sudo (no persistence); without sudo it is refused, naming the host', async (t) => {
  if (!needs(t)) return;
  const sshd = await setUp(t);
  const emulatorDir = tmpDir(t, 'polyarch-emulators-');
  const targets = ['aarch64', 'riscv64'];
  const host = { name: 'loop-sudo', address: sshd.host, port: sshd.port, user: sshd.sudoUser.name, sudo: true, persist: false, emulatorDir, targets };
  const p = await program([host], sshd.privateKey);
  const { folder } = p.buildHosts['loop-sudo']!;
  const before = prepareKernel(targets);
  const persisted = fs.readdirSync(PERSIST_DIR);

  copy(p, 'loop-sudo');
  assert.ok(copiesOf(p, 'loop-sudo').every((c) => fs.statSync(path.join(sshd.sudoUser.home, path.basename((c.inputs.source as { path: string }).path))).uid !== 0), 'uploaded as the user');
  run(p, 'loop-sudo', 'create');
  assert.equal(interpreterOf('qemu-aarch64'), `${folder}/qemu-aarch64-static`);
  assert.equal(interpreterOf('qemu-riscv64'), `${folder}/qemu-riscv64-static`);
  assert.equal(fs.statSync(path.join(folder, 'qemu-aarch64-static')).uid, 0, 'installed as root');
  assert.equal(unameOf(busyboxArm64()), 'aarch64');
  assert.deepEqual(fs.readdirSync(PERSIST_DIR), persisted, 'nothing persisted');

  // The same user without sudo: the command itself says what is wrong.
  const plain = await program([{ ...host, sudo: false }], sshd.privateKey);
  assert.throws(() => run(plain, 'loop-sudo', 'update'), /command:remote:Command \(loop-sudo-register\): update failed \(exit 1\): polyarch: build host loop-sudo: must run as root/);

  run(p, 'loop-sudo', 'delete');
  assert.deepEqual(readEntries(), before);
  assert.ok(!fs.existsSync(folder));
});

test('replacement in Pulumi’s order (new create, then the old delete) never leaves the host unregistered; update after a flags change changes /proc', async (t) => {
  if (!needs(t)) return;
  const sshd = await setUp(t);
  const emulatorDir = tmpDir(t, 'polyarch-emulators-');
  const base = { name: 'loop-root', address: sshd.host, port: sshd.port, user: 'root', emulatorDir };
  const a = await program([{ ...base, targets: ['aarch64', 'arm'], flags: 'F' }], sshd.privateKey);
  const b = await program([{ ...base, targets: ['aarch64', 'arm'], flags: 'OCF' }], sshd.privateKey);
  const c = await program([{ ...base, targets: ['aarch64', 's390x'], flags: 'OCF' }], sshd.privateKey);
  const folder = (p: Program) => p.buildHosts['loop-root']!.folder;
  const before = prepareKernel(['aarch64', 'arm', 's390x']);

  copy(a, 'loop-root');
  run(a, 'loop-root', 'create');
  assert.equal(flagsOf('qemu-aarch64'), 'F');

  // Flags change: a new registration; its copies are unchanged, so nothing is uploaded and
  // the emulators come from the old folder.
  copy(b, 'loop-root', a);
  run(b, 'loop-root', 'create');
  assert.equal(flagsOf('qemu-aarch64'), 'OCF');
  run(a, 'loop-root', 'delete');
  for (const cpuName of ['aarch64', 'arm']) {
    assert.equal(interpreterOf(`qemu-${cpuName}`), `${folder(b)}/qemu-${cpuName}-static`, `qemu-${cpuName} survives the old delete`);
    assert.equal(flagsOf(`qemu-${cpuName}`), 'OCF');
    assert.match(fs.readFileSync(path.join(PERSIST_DIR, `qemu-${cpuName}.conf`), 'utf8'), new RegExp(`:${folder(b)}/qemu-${cpuName}-static:OCF\\n$`));
  }
  assert.ok(!fs.existsSync(folder(a)) && fs.existsSync(folder(b)));
  assert.equal(unameOf(busyboxArm64()), 'aarch64');

  // Targets change (arm out, s390x in): s390x is uploaded; the old delete removes arm only.
  copy(c, 'loop-root', b);
  run(c, 'loop-root', 'create');
  run(b, 'loop-root', 'delete');
  assert.equal(entry('qemu-arm'), undefined);
  assert.ok(!fs.existsSync(path.join(PERSIST_DIR, 'qemu-arm.conf')));
  assert.equal(interpreterOf('qemu-aarch64'), `${folder(c)}/qemu-aarch64-static`);
  assert.equal(interpreterOf('qemu-s390x'), `${folder(c)}/qemu-s390x-static`);

  // `pulumi up --replace` with nothing changed: same strings, create then delete.
  const registered = readEntries();
  run(c, 'loop-root', 'create');
  run(c, 'loop-root', 'delete');
  assert.deepEqual(readEntries(), registered);
  assert.equal(unameOf(busyboxArm64()), 'aarch64');

  // The update string after a flags change re-registers with the new flags.
  const d = await program([{ ...base, targets: ['aarch64', 's390x'], flags: 'PF' }], sshd.privateKey);
  copy(d, 'loop-root', c);
  assert.match(run(d, 'loop-root', 'update').stdout, /replaced qemu-aarch64: .* \(flags PF\)/);
  assert.equal(flagsOf('qemu-aarch64'), 'PF');
  assert.equal(flagsOf('qemu-s390x'), 'PF');
  assert.equal(interpreterOf('qemu-aarch64'), `${folder(d)}/qemu-aarch64-static`);

  // Destroy: the delete of each registration removes what it still owns.
  run(d, 'loop-root', 'delete');
  run(c, 'loop-root', 'delete');
  assert.deepEqual(readEntries(), before);
  assert.ok(!fs.existsSync(emulatorDir));
  for (const cpuName of ['aarch64', 'arm', 's390x']) assert.ok(!fs.existsSync(path.join(PERSIST_DIR, `qemu-${cpuName}.conf`)));
});

test('unreachable hosts fail with their name and leave the others done; a wrong key or host key is refused; the key is in no plain state, output or log', async (t) => {
  if (!needs(t)) return;
  const sshd = await setUp(t);
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const targets = ['aarch64'];
  const good = { name: 'loop-good', address: sshd.host, port: sshd.port, user: 'root', emulatorDir: tmpDir(t, 'polyarch-emulators-'), targets };
  const hosts = [
    { name: 'loop-closed', address: sshd.host, port: closed, user: 'root', emulatorDir: tmpDir(t, 'polyarch-emulators-'), targets },
    good,
    { name: 'loop-stranger', address: sshd.host, port: sshd.port, user: 'root', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKr0r9XwvV1pQ0mqR8lI1dC0qhcS1b9vC1cbQ0i8x5Xb', emulatorDir: tmpDir(t, 'polyarch-emulators-'), targets },
  ];
  const p = await program(hosts, sshd.privateKey);
  prepareKernel(targets);

  // No host depends on another, so the engine runs each host's steps on its own.
  const outcome = new Map<string, string>();
  for (const h of hosts) {
    try {
      copy(p, h.name);
      run(p, h.name, 'create');
      outcome.set(h.name, 'done');
    } catch (e) {
      outcome.set(h.name, (e as Error).message);
    }
  }
  assert.equal(outcome.get('loop-good'), 'done');
  assert.equal(interpreterOf('qemu-aarch64'), `${p.buildHosts['loop-good']!.folder}/qemu-aarch64-static`);
  assert.match(outcome.get('loop-closed') ?? '', /^command:remote:CopyToRemote \(loop-closed-upload\): copy failed [^]*Connection refused/);
  assert.match(outcome.get('loop-stranger') ?? '', /^command:remote:CopyToRemote \(loop-stranger-upload\): copy failed [^]*Host key verification failed/);

  // A key the host does not accept.
  const wrong = await program([good], sshd.wrongKey);
  assert.throws(() => run(wrong, 'loop-good', 'update'), /^Error: command:remote:Command \(loop-good-register\): update failed \(exit 255\): .*Permission denied \(publickey\)/);
  run(p, 'loop-good', 'delete');

  // The key: secret on the wire of every resource, in no command string, output or log.
  const body = sshd.privateKey.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const needles = [body.slice(0, 40), body.slice(-40)];
  const wrongBody = sshd.wrongKey.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  needles.push(wrongBody.slice(0, 40));
  for (const r of [...p.resources, ...wrong.resources]) {
    const plain = plainText(r.wire);
    for (const n of needles) assert.ok(!plain.includes(n), `${r.name}: key in plain state`);
    for (const op of ['create', 'update', 'delete']) for (const n of needles) assert.ok(!String(r.inputs[op] ?? '').includes(n));
  }
  for (const n of needles) {
    assert.ok(!JSON.stringify(p.buildHosts).includes(n));
    assert.ok(!transcript.join('\n').includes(n), 'key in a command output');
    assert.ok(!sshd.log().includes(n), 'key in the sshd log');
  }
  assert.match(sshd.log(), /Accepted publickey for root/);
});
