// Build hosts on the real engine, with the real command plugin and Pulumi's own language host:
// two private loopback sshds (one logged into as root, one as a user with sudo) stand for two
// build hosts. Both are this machine, so their entries land in this kernel's binfmt_misc
// (snapshotted and restored; disjoint targets keep the two apart) and every check looks at the
// world itself: /proc entries, the emulator folders and their digests, /etc/binfmt.d, the SSH
// users' homes, and a foreign busybox running.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, test, type TestContext } from 'node:test';
import YAML from 'yaml';
import { registerLine } from '../../lib/binfmt.ts';
import { PERSIST_DIR } from '../../lib/build-host.ts';
import { findCpu } from '../../lib/cpus.ts';
import { sha256 } from '../../lib/digest.ts';
import { prepareStackEmulators } from '../../lib/emulators.ts';
import type { Lock } from '../../lib/lock.ts';
import { guardBinfmt, guardPersistDir, hasBinfmtMisc, readEntries, registerRaw, removeEntry, tmpDir } from '../helpers/binfmt.ts';
import { debianPackage } from '../helpers/debian.ts';
import { changes, engineProject, hasEngine, parseJson, type EngineProject, type Step } from '../helpers/engine.ts';
import { fixtureLock } from '../helpers/program.ts';
import { sshdProbes, startSshd } from '../helpers/sshd.ts';
import { hasCommand, requireSystem } from '../helpers/system.ts';

const needs = (t: TestContext) => requireSystem(t, ...sshdProbes, hasEngine, hasBinfmtMisc, hasCommand('apt-get'), hasCommand('dpkg-deb'));

let lock: { file: string; cacheDir: string; lock: Lock };
/** The extracted emulators' digests, by file name: what each host's folder must hold. */
let digests: Map<string, string>;
before(async () => {
  if (process.getuid?.() !== 0) return;
  lock = await fixtureLock(['x86_64']);
  const [x86] = await prepareStackEmulators({ lockFile: lock.file, hosts: ['x86_64'], targets: ['all'], cacheDir: lock.cacheDir }, lock.lock);
  digests = new Map(x86!.emulators.map((e) => [e.file, e.sha256]));
});

interface HostConfig {
  name: string;
  address: string;
  port: number;
  user: string;
  sudo?: boolean;
  persist?: boolean;
  hostKey?: string;
  targets: string[];
  flags?: string;
  emulatorDir: string;
}

/** A stack with these build hosts and the key as secret config. */
async function hostStack(t: TestContext, hosts: HostConfig[], privateKey: string): Promise<EngineProject> {
  return engineProject(t, 'hosts', {
    config: { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': lock.cacheDir, 'polyarch:hosts': ['x86_64'], 'polyarch:buildHosts': hosts },
    secrets: { 'polyarch:sshPrivateKey': privateKey },
  });
}

/** Rewrites the stack's build hosts in its Pulumi.<stack>.yaml, keeping the encrypted key. */
function setHosts(p: EngineProject, hosts: HostConfig[]): void {
  const file = path.join(p.dir, `Pulumi.${p.stack}.yaml`);
  const doc = YAML.parse(fs.readFileSync(file, 'utf8')) as { config: Record<string, unknown> };
  doc.config['polyarch:buildHosts'] = hosts;
  fs.writeFileSync(file, YAML.stringify(doc));
}

type Hosts = Record<string, { entries: string[]; folder: string }>;
async function buildHosts(p: EngineProject): Promise<Hosts> {
  return parseJson<{ buildHosts: Hosts }>((await p.ok(['stack', 'output', '--json'])).stdout).buildHosts;
}

const entryField = (name: string, field: 'interpreter' | 'flags') => new RegExp(`^${field === 'flags' ? 'flags: ?' : 'interpreter '}(.*)$`, 'm').exec(readEntries().get(name) ?? '')?.[1];

/** One host as the kernel and its file system show it: exactly the planned entries, files and binfmt.d lines. */
function checkHost(h: HostConfig, folder: string): void {
  const flags = h.flags ?? 'F';
  for (const cpu of h.targets) {
    const file = `qemu-${cpu}-static`;
    assert.equal(entryField(`qemu-${cpu}`, 'interpreter'), `${folder}/${file}`, `${h.name}: qemu-${cpu} is registered from its folder`);
    assert.equal(entryField(`qemu-${cpu}`, 'flags'), flags, `${h.name}: qemu-${cpu} has flags ${flags}`);
    const installed = path.join(folder, file);
    assert.equal(sha256(fs.readFileSync(installed)), digests.get(file), `${h.name}: ${file} is the extracted emulator`);
    const st = fs.statSync(installed);
    assert.deepEqual([st.uid, st.mode & 0o777], [0, 0o755], `${installed}: root's, 0755`);
    const conf = path.join(PERSIST_DIR, `qemu-${cpu}.conf`);
    if (h.persist === false) assert.ok(!fs.existsSync(conf), `${h.name}: no ${conf} without persistence`);
    else assert.equal(fs.readFileSync(conf, 'utf8'), `${registerLine(findCpu(cpu)!, { path: folder, flags })}\n`);
  }
  assert.deepEqual(fs.readdirSync(folder).filter((f) => f.startsWith('qemu-')).sort(), h.targets.map((c) => `qemu-${c}-static`).sort(), `${folder} holds exactly the targets`);
}

/** `uname -m` of a foreign busybox, run through binfmt_misc. */
function foreignUname(arch: string): string {
  const r = spawnSync(path.join(debianPackage('busybox-static', arch), 'bin', 'busybox'), ['uname', '-m'], { encoding: 'utf8', timeout: 60_000 });
  return `${r.stdout.trim()}${r.error ? ` (${r.error.message})` : ''}`;
}

/** No upload folder left in an SSH user's home: the register command consumed it. */
function noUploads(home: string): void {
  assert.deepEqual(fs.readdirSync(home).filter((f) => f.startsWith('.polyarch-')), [], `${home}: uploads left behind`);
}

// A harmless magic no real file starts with: an entry that is none of ours and must survive.
const UNRELATED = ':polyarch-test-unrelated:M::\\x00\\x50\\x4f\\x4c\\x59\\x41\\x52\\x43\\x48\\x00::/bin/false:';

/** Steps of a `--json` preview that change a resource, as `<op> <name>`. */
async function planned(p: EngineProject, args: string[] = []): Promise<string[]> {
  return changes(parseJson<{ steps: Step[] }>((await p.ok(['preview', '--json', ...args])).stdout).steps).filter((c) => !c.startsWith('refresh '));
}

test('two build hosts on the engine: up, no-change up and refresh, one host changed at a time, drift repaired, a forced replacement, destroy; the key stays secret', { timeout: 30 * 60_000 }, async (t) => {
  if (!needs(t)) return;
  guardBinfmt(t);
  guardPersistDir(t);
  // An RSA client key: the plugin signs with rsa-sha2 for it, which OpenSSH accepts.
  const a = await startSshd(t, { clientKeyType: 'rsa' });
  const b = await startSshd(t, { sameClientKeyAs: a });
  const work = tmpDir(t, 'polyarch-hosts-');
  const hostA: HostConfig = { name: 'build-a', address: a.host, port: a.port, user: 'root', hostKey: a.hostKey, targets: ['aarch64', 'arm'], emulatorDir: path.join(work, 'a/lib/polyarch') };
  const hostB: HostConfig = { name: 'build-b', address: b.host, port: b.port, user: b.sudoUser.name, sudo: true, persist: false, hostKey: b.hostKey, targets: ['s390x', 'ppc64le'], emulatorDir: path.join(work, 'b/lib/polyarch') };
  for (const cpu of [...hostA.targets, ...hostB.targets, 'polyarch-test-unrelated']) if (readEntries().has(`qemu-${cpu}`)) removeEntry(`qemu-${cpu}`);
  if (readEntries().has('polyarch-test-unrelated')) removeEntry('polyarch-test-unrelated');
  registerRaw(UNRELATED);
  const untouched = new Map([...readEntries()].filter(([n]) => ![...hostA.targets, ...hostB.targets].some((c) => n === `qemu-${c}`)));
  const p = await hostStack(t, [hostA, hostB], a.privateKey);
  const homes = [a.root.home, b.sudoUser.home];

  // 1. up: exactly the planned entries, the extracted emulators, binfmt.d files where persist is
  // on, and foreign binaries run. The engine's debug log goes into the transcript (secret scan).
  const first = await planned(p);
  assert.deepEqual(first.filter((c) => c.includes(' build-')), ['a', 'b'].flatMap((h) => ['', '-check', '-register', '-upload'].map((r) => `create build-${h}${r}`)));
  await p.ok(['up', '--yes', '-v=6', '--logtostderr', '--logflow']);
  let folders = await buildHosts(p);
  checkHost(hostA, folders['build-a']!.folder);
  checkHost(hostB, folders['build-b']!.folder);
  assert.equal(foreignUname('arm64'), 'aarch64');
  assert.equal(foreignUname('s390x'), 's390x');
  homes.forEach(noUploads);

  // 2. Nothing changed: neither up nor a refresh (which reads both hosts back) changes anything.
  await p.ok(['up', '--yes', '--expect-no-changes']);
  await p.ok(['refresh', '--yes', '--expect-no-changes']);

  // 3. One host's targets change: that host only; the removed target's entry, file and binfmt.d file go.
  const oldA = folders['build-a']!.folder;
  hostA.targets = ['aarch64'];
  setHosts(p, [hostA, hostB]);
  const targetsChange = await planned(p);
  assert.ok(targetsChange.length > 0 && targetsChange.every((c) => / build-a(-|$)/.test(c)), `only build-a changes: ${targetsChange.join(', ')}`);
  await p.ok(['up', '--yes']);
  folders = await buildHosts(p);
  checkHost(hostA, folders['build-a']!.folder);
  assert.equal(readEntries().get('qemu-arm'), undefined, 'the removed target is unregistered');
  assert.ok(!fs.existsSync(path.join(PERSIST_DIR, 'qemu-arm.conf')));
  assert.ok(!fs.existsSync(oldA), 'the old registration folder is gone');
  checkHost(hostB, folders['build-b']!.folder);

  // The other host's flags change: that host only.
  hostB.flags = 'OCF';
  setHosts(p, [hostA, hostB]);
  const flagsChange = await planned(p);
  assert.ok(flagsChange.length > 0 && flagsChange.every((c) => / build-b(-|$)/.test(c)), `only build-b changes: ${flagsChange.join(', ')}`);
  await p.ok(['up', '--yes']);
  folders = await buildHosts(p);
  checkHost(hostB, folders['build-b']!.folder);
  checkHost(hostA, folders['build-a']!.folder);
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // 4. Drift: host A reinstalled (entries, emulator folder and binfmt.d files gone). A plain
  // preview cannot know; preview --refresh reads the host back and plans the repair of A only,
  // with the files uploaded again; refresh records it and up repairs it.
  removeEntry('qemu-aarch64');
  fs.rmSync(path.dirname(folders['build-a']!.folder), { recursive: true });
  fs.rmSync(path.join(PERSIST_DIR, 'qemu-aarch64.conf'));
  assert.deepEqual(await planned(p), [], 'without a refresh the engine cannot see the drift');
  assert.deepEqual(await planned(p, ['--refresh']), ['replace build-a-upload', 'update build-a-register']);
  await p.ok(['refresh', '--yes']);
  // The state now says what the refresh found on A (and nothing about B).
  const drift = (name: string) =>
    p.ok(['stack', 'export']).then((r) => parseJson<{ deployment: { resources: { urn: string; outputs?: { drift?: string; repairs?: number } }[] } }>(r.stdout).deployment.resources.find((x) => x.urn.endsWith(`::${name}`))!.outputs!);
  const seen = await drift('build-a-check');
  assert.equal(seen.repairs, 1);
  assert.match(seen.drift!, new RegExp(`^qemu-aarch64 is not registered; ${folders['build-a']!.folder}/qemu-aarch64-static is missing; .*; /etc/binfmt\\.d/qemu-aarch64\\.conf is missing$`));
  assert.deepEqual(await drift('build-b-check').then((o) => [o.repairs, o.drift]), [0, '']);
  await p.ok(['up', '--yes']);
  checkHost(hostA, folders['build-a']!.folder);
  assert.equal(foreignUname('arm64'), 'aarch64');
  homes.forEach(noUploads);
  await p.ok(['up', '--yes', '--expect-no-changes']);
  await p.ok(['refresh', '--yes', '--expect-no-changes']);

  // Host B rebooted without persistence: its entries are gone, its files are not, so it is
  // re-registered without an upload.
  for (const cpu of hostB.targets) removeEntry(`qemu-${cpu}`);
  await p.ok(['refresh', '--yes']);
  assert.deepEqual(await planned(p), ['update build-b-register']);
  await p.ok(['up', '--yes']);
  checkHost(hostB, folders['build-b']!.folder);
  assert.equal(foreignUname('s390x'), 's390x');
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // 5. A forced replacement of a registration (create the new, then delete the old) keeps it.
  const state = parseJson<{ deployment: { resources: { urn: string; type: string }[] } }>((await p.ok(['stack', 'export'])).stdout);
  const registerA = state.deployment.resources.find((r) => r.urn.endsWith('::build-a-register'))!.urn;
  await p.ok(['up', '--yes', '--replace', registerA]);
  checkHost(hostA, folders['build-a']!.folder);
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // 6. destroy removes every entry, file and folder the stack made, and nothing else.
  await p.ok(['destroy', '--yes']);
  assert.deepEqual(readEntries(), untouched, 'exactly our entries are gone; the others are as they were');
  for (const cpu of ['aarch64', 'arm', 's390x', 'ppc64le']) assert.ok(!fs.existsSync(path.join(PERSIST_DIR, `qemu-${cpu}.conf`)));
  assert.ok(!fs.existsSync(hostA.emulatorDir) && !fs.existsSync(hostB.emulatorDir), 'the emulator folders are gone');
  homes.forEach(noUploads);
  const after = parseJson<{ deployment: { resources?: unknown[] } }>((await p.ok(['stack', 'export'])).stdout);
  assert.deepEqual(after.deployment.resources ?? [], []);

  // 7. The key: in no plain state (every export and the history), output or engine log.
  const body = a.privateKey.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const needles = [body.slice(0, 40), body.slice(200, 240), body.slice(-40)];
  const texts = [...p.transcript, state, (await p.ok(['stack', 'history', '--json'])).stdout].map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
  assert.ok(p.transcript.join('\n').length > 10_000, 'the engine log was captured');
  for (const n of needles) for (const text of texts) assert.ok(!text.includes(n), 'the SSH key in plain text');
  assert.match(JSON.stringify(state), /"ciphertext"/, 'the state holds secrets, encrypted');
  assert.match(a.log() + b.log(), /Accepted publickey for root .* RSA SHA256:/);
  // The official language host and plugins are found beside the CLI, not on PATH with a warning each run.
  assert.doesNotMatch(p.transcript.join('\n'), /using pulumi-\S+ from \$PATH/);
});

test('an unreachable host: up and destroy fail within a bounded time with one line naming it; dropped from the stack as the README says', { timeout: 15 * 60_000 }, async (t) => {
  if (!needs(t)) return;
  guardBinfmt(t);
  guardPersistDir(t);
  const c = await startSshd(t);
  const work = tmpDir(t, 'polyarch-hosts-');
  const host: HostConfig = { name: 'build-gone', address: c.host, port: c.port, user: 'root', hostKey: c.hostKey, persist: false, targets: ['riscv64'], emulatorDir: path.join(work, 'lib') };
  if (readEntries().has('qemu-riscv64')) removeEntry('qemu-riscv64');
  const p = await hostStack(t, [host], c.privateKey);
  await p.ok(['up', '--yes']);
  assert.ok(readEntries().has('qemu-riscv64'));

  // The host goes away (its sshd stops: connection refused, as for a host that is down).
  c.stop();
  const timed = async (args: string[]) => {
    const started = Date.now();
    const r = await p.pulumi(args);
    return { ...r, seconds: (Date.now() - started) / 1000 };
  };
  const refresh = await timed(['refresh', '--yes']);
  assert.notEqual(refresh.code, 0);
  assert.match(refresh.stdout + refresh.stderr, /build host "build-gone" \(root@127\.0\.0\.1:\d+\): .*Connection refused/);
  const destroy = await timed(['destroy', '--yes']);
  t.diagnostic(`refresh failed in ${refresh.seconds.toFixed(1)} s, destroy in ${destroy.seconds.toFixed(1)} s`);
  assert.notEqual(destroy.code, 0);
  assert.match(destroy.stdout, /command:remote:Command \(build-gone-register\):\s+error: .*after 3 failed attempts: dial tcp 127\.0\.0\.1:\d+: connect: connection refused/);
  // Three dials: bounded by 3 x 10 s plus the engine's own start, never the plugin's 10 x 15 s.
  assert.ok(destroy.seconds < 90, `destroy took ${destroy.seconds} s`);

  // The README's way out: take the host out of the stack's state, then out of its config.
  const state = parseJson<{ deployment: { resources: { urn: string; type: string }[] } }>((await p.ok(['stack', 'export'])).stdout);
  const component = state.deployment.resources.find((r) => r.type === 'polyarch:index:BinfmtHost')!.urn;
  await p.ok(['state', 'delete', component, '--target-dependents', '--yes']);
  setHosts(p, []);
  await p.ok(['up', '--yes', '--expect-no-changes']);
  await p.ok(['destroy', '--yes']);
});

test('RSA host keys: the command plugin offers only SHA-1 ssh-rsa, which OpenSSH refuses; the stack config says so in one line', { timeout: 10 * 60_000 }, async (t) => {
  if (!needs(t)) return;
  const r = await startSshd(t, { hostKeyType: 'rsa' });
  assert.match(r.hostKey, /^ssh-rsa /);

  // The plugin alone, in a program of its own: with the RSA host key it cannot agree on a host
  // key algorithm with this OpenSSH; without a host key (not checked) the same server answers.
  const program = (hostKey: string | undefined) => ({
    'Pulumi.yaml': 'name: rsa-host-key\nruntime: nodejs\n',
    'package.json': '{"name":"rsa-host-key","main":"index.js"}\n',
    'index.js': [
      "const pulumi = require('@pulumi/pulumi');",
      "const command = require('@pulumi/command');",
      'const config = new pulumi.Config();',
      `new command.remote.Command('probe', { create: 'echo reached', connection: { host: '${r.host}', port: ${r.port}, user: 'root', privateKey: config.requireSecret('key'), dialErrorLimit: 1${hostKey ? `, hostKey: '${hostKey}'` : ''} } });`,
      '',
    ].join('\n'),
  });
  const rsa = await engineProject(t, 'rsa', { program: program(r.hostKey), secrets: { 'rsa-host-key:key': r.privateKey } });
  const refused = await rsa.pulumi(['up', '--yes']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stdout, /no common algorithm for host key; we offered: \[ssh-rsa\], peer offered: \[[^\]]*rsa-sha2-512[^\]]*\]/);
  const open = await engineProject(t, 'open', { program: program(undefined), secrets: { 'rsa-host-key:key': r.privateKey } });
  await open.ok(['up', '--yes']);

  // This project's stack refuses the ssh-rsa key line at once, naming the key and the way out.
  const p = await hostStack(t, [{ name: 'build-rsa', address: r.host, port: r.port, user: 'root', hostKey: r.hostKey, targets: ['aarch64'], emulatorDir: '/usr/local/lib/polyarch' }], r.privateKey);
  const preview = await p.pulumi(['preview']);
  assert.notEqual(preview.code, 0);
  assert.match(preview.stdout + preview.stderr, /polyarch:buildHosts\.0\.hostKey: is an ssh-rsa key, .* use the host's ed25519 or ECDSA key line \(ssh-keyscan -t ed25519 <host>\)/);
});
