// Build hosts in the program under mocks: one BinfmtHost per configured host, the check, the
// upload and the register command it declares, what they depend on, and that the SSH key stays secret.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { MockMonitor } from '@pulumi/pulumi/runtime/mocks.js';
import { generateRegisterScript } from '../../lib/register-script.ts';
import { fixtureLock, loadProgram, plainText, type Declared } from '../helpers/program.ts';

// The helper records inputs; record each resource's dependencies too (host independence).
const dependencies = new Map<string, string[]>();
type DepReq = { getName(): string; getDependenciesList(): string[] };
const proto = MockMonitor.prototype as unknown as { registerResource(req: DepReq, cb: unknown): Promise<void> };
const recorded = proto.registerResource;
proto.registerResource = function (this: unknown, req: DepReq, cb: unknown) {
  dependencies.set(req.getName(), req.getDependenciesList());
  return recorded.call(this, req, cb);
};

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-polyarch-test-secret-material\n-----END OPENSSH PRIVATE KEY-----\n';
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKr0r9XwvV1pQ0mqR8lI1dC0qhcS1b9vC1cbQ0i8x5Xb';
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

let lockFile = '';
let cacheDir = '';
before(async () => {
  ({ file: lockFile, cacheDir } = await fixtureLock(['x86_64', 'aarch64']));
});

function load(buildHosts: unknown[], extra: Record<string, string> = {}) {
  return loadProgram(
    { 'polyarch:lockFile': lockFile, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["x86_64","aarch64"]', 'polyarch:buildHosts': JSON.stringify(buildHosts), ...extra },
    { 'polyarch:sshPrivateKey': KEY },
  );
}

const of = (resources: Declared[], type: string, prefix: string) => resources.filter((r) => r.type === type && r.name.startsWith(`${prefix}-`));
const str = (v: unknown) => (typeof v === 'string' ? v : assert.fail(`expected a string, got ${JSON.stringify(v)}`));

const HOSTS = [
  { name: 'ci-amd', address: '10.0.0.1', user: 'root' },
  { name: 'ci-arm', address: 'arm.example.test', port: 2222, user: 'builder', sudo: true, persist: false, arch: 'aarch64', targets: ['x86_64', 'riscv64'], flags: 'OCF', hostKey: HOST_KEY, emulatorDir: '/opt/qemu' },
];

test('one BinfmtHost per build host: its check, one upload folder with its emulators and the script, then one register command', async () => {
  const { resources, outputs } = await load(HOSTS);
  const components = resources.filter((r) => r.type === 'polyarch:index:BinfmtHost');
  assert.deepEqual(components.map((c) => c.name).sort(), ['ci-amd', 'ci-arm']);
  const uploaded: Record<string, string[]> = {};

  for (const host of HOSTS) {
    const parent = `urn:pulumi:dev::qemu-user-static::polyarch:index:BinfmtHost::${host.name}`;
    const uploads = of(resources, 'command:remote:CopyToRemote', host.name);
    const commands = of(resources, 'command:remote:Command', host.name);
    const checks = of(resources, 'pulumi-nodejs:dynamic/polyarch:BinfmtCheck', host.name);
    assert.deepEqual([uploads.length, commands.length, checks.length], [1, 1, 1], 'one upload, one register command and one check per host');
    const [upload, register, check] = [uploads[0]!, commands[0]!, checks[0]!];
    assert.deepEqual([upload.name, register.name, check.name], [`${host.name}-upload`, `${host.name}-register`, `${host.name}-check`]);
    assert.equal(register.inputs.addPreviousOutputInEnv, false, 'no environment requests that sshd refuses');
    for (const r of [upload, register, check]) assert.equal(r.parent, parent, `${r.name} is a child of its host`);

    // The upload is one folder (one SSH connection), named by content; every file in it is the
    // one a trigger digest names, and the emulators are for the host's own arch.
    const triggers = register.inputs.triggers as string[];
    const folder = (upload.inputs.source as { path: string }).path;
    assert.match(path.basename(folder), /^\.polyarch-[0-9a-f]{16}$/);
    assert.equal(upload.inputs.remotePath, '.', 'the folder lands in the home folder under its own name');
    uploaded[host.name] = fs.readdirSync(folder).sort();
    for (const name of uploaded[host.name]!) {
      assert.ok(triggers.includes(`${name}=${sha256(fs.readFileSync(path.join(folder, name)))}`), `${name}: its digest is a trigger`);
    }
    assert.ok(triggers.includes(`register=${sha256(generateRegisterScript())}`));
    assert.ok(triggers.includes(`flags=${host.flags ?? 'F'}`));
    const elf = fs.readFileSync(path.join(folder, uploaded[host.name]![0]!)).readUInt16LE(18);
    assert.equal(elf, host.arch === 'aarch64' ? 183 : 62, 'an emulator built for the host');

    // Hosts are independent: the command waits for its own upload and check (the update string
    // counts the check's repairs), the upload for its own check.
    assert.deepEqual([...(dependencies.get(register.name) ?? [])].sort(), [
      `urn:pulumi:dev::qemu-user-static::polyarch:index:BinfmtHost$command:remote:CopyToRemote::${upload.name}`,
      `urn:pulumi:dev::qemu-user-static::polyarch:index:BinfmtHost$pulumi-nodejs:dynamic/polyarch:BinfmtCheck::${check.name}`,
    ]);
    assert.deepEqual(dependencies.get(upload.name), [`urn:pulumi:dev::qemu-user-static::polyarch:index:BinfmtHost$pulumi-nodejs:dynamic/polyarch:BinfmtCheck::${check.name}`]);
    assert.deepEqual(dependencies.get(check.name), []);

    const connection = register.inputs.connection as Record<string, unknown>;
    assert.equal(connection.host, host.address);
    assert.equal(connection.port, host.port ?? 22);
    assert.equal(connection.user, host.user);
    assert.equal(connection.hostKey, host.hostKey);
    assert.equal(connection.privateKey, KEY);
    // An unreachable host fails after 3 dials of at most 10 s each, not the plugin's 10 x 15 s.
    assert.deepEqual([connection.dialErrorLimit, connection.perDialTimeout], [3, 10]);
    assert.deepEqual(upload.inputs.connection, connection);
    for (const s of ['create', 'update', 'delete']) assert.equal(str(register.inputs[s]).startsWith(host.sudo ? 'sudo -n ' : 'sh -c '), true, `${s} runs ${host.sudo ? 'through sudo' : 'as the login user'}`);

    // The check reads the host back with what the stack config says, and no key.
    assert.deepEqual([check.inputs.host, check.inputs.address, check.inputs.port, check.inputs.user, check.inputs.sudo, check.inputs.hostKey], [host.name, host.address, host.port ?? 22, host.user, host.sudo ?? false, host.hostKey]);
    const expected = check.inputs.expected as { entries: { name: string }[]; files: { path: string }[]; confs: unknown[] };
    assert.deepEqual(expected.entries.map((e) => e.name), outputs.buildHosts && (outputs.buildHosts as Record<string, { entries: string[] }>)[host.name]!.entries);
    assert.equal(expected.files.length, uploaded[host.name]!.length);
    assert.equal(expected.confs.length, host.persist === false ? 0 : expected.entries.length);
  }

  assert.deepEqual(uploaded['ci-amd'], ['aarch64', 'aarch64_be', 'arm', 'armeb', 'ppc64le', 'riscv64', 's390x'].map((c) => `qemu-${c}-static`).concat('register'));
  assert.deepEqual(uploaded['ci-arm'], ['qemu-riscv64-static', 'qemu-x86_64-static', 'register']);

  const hosts = outputs.buildHosts as Record<string, { entries: string[]; folder: string }>;
  assert.deepEqual(hosts['ci-arm']?.entries, ['qemu-riscv64', 'qemu-x86_64']);
  assert.match(hosts['ci-arm']?.folder ?? '', /^\/opt\/qemu\/[0-9a-f]{16}$/);
  assert.match(hosts['ci-amd']?.folder ?? '', /^\/usr\/local\/lib\/polyarch\/[0-9a-f]{16}$/);
});

test('the SSH key is a secret on the wire of every resource, and in no plain input, command or output', async () => {
  const { resources, outputs } = await load(HOSTS);
  const needle = 'polyarch-test-secret-material';
  const remote = resources.filter((r) => r.type.startsWith('command:remote:'));
  assert.ok(remote.length > 0);
  for (const r of resources) assert.ok(!plainText(r.wire).includes(needle), `${r.name}: key in plain state`);
  for (const r of remote) {
    assert.equal(JSON.stringify(r.inputs).includes(needle), true, `${r.name} does get the key`);
    assert.equal(plainText(r.wire).includes('"connection":"[secret]"'), true, `${r.name}: connection is secret`);
    for (const s of ['create', 'update', 'delete']) assert.ok(!String(r.inputs[s] ?? '').includes(needle));
  }
  assert.ok(!JSON.stringify(outputs).includes(needle));
});

test('a flags change is a new registration (new triggers and folder) but the same uploads', async () => {
  const a = await load([HOSTS[0]]);
  const b = await load([{ ...HOSTS[0], flags: 'PF' }]);
  const reg = (r: Declared[]) => of(r, 'command:remote:Command', 'ci-amd')[0]!;
  const copies = (r: Declared[]) => of(r, 'command:remote:CopyToRemote', 'ci-amd').map((c) => c.inputs.source);
  assert.deepEqual(copies(a.resources), copies(b.resources));
  const ta = reg(a.resources).inputs.triggers as string[];
  const tb = reg(b.resources).inputs.triggers as string[];
  assert.deepEqual(tb.filter((t) => !ta.includes(t)).map((t) => t.split('=')[0]), ['folder', 'flags']);
  assert.ok(tb.includes('flags=PF'));
});

test('build host problems name the host', async () => {
  await assert.rejects(load([{ name: 'ci-s390', address: 'h', user: 'root', arch: 's390x' }]), /polyarch:buildHosts\.0\.arch: build host "ci-s390" is s390x, which is not among hosts \(x86_64, aarch64\)/);
  await assert.rejects(
    load([{ name: 'ci-x', address: 'h', user: 'root', targets: ['aarch64'] }], { 'polyarch:targets': '["arm"]' }),
    /build host "ci-x" targets aarch64, but the stack publishes no such emulator for x86_64 \(published: arm\)/,
  );
  await assert.rejects(load([{ name: 'ci-y', address: 'h', user: 'root', targets: ['i486', 'arm'] }]), /build host "ci-y" \(x86_64\) runs i486 natively/);
  await assert.rejects(load([{ name: 'ci-z', address: 'h', user: 'root', flags: 'OF' }]), /polyarch:buildHosts\.0\.flags: flag O comes with C/);
});
