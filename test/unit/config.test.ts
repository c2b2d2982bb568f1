// Stack config: defaults, and every problem reported at once on one line with valid values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStackConfig } from '../../lib/config.ts';

const none = new Set<string>();

test('an empty stack gets the documented defaults', () => {
  const c = parseStackConfig({}, none);
  assert.deepEqual(
    { lockFile: c.lockFile, hosts: c.hosts, targets: c.targets, buildHosts: c.buildHosts },
    { lockFile: 'qemu.lock.json', hosts: ['x86_64'], targets: ['all'], buildHosts: [] },
  );
});

test('values arrive as Pulumi holds them: JSON text for arrays and objects', () => {
  const c = parseStackConfig({ hosts: '["x86_64","aarch64"]', targets: '["arm","riscv64"]', registry: '{"server":"localhost:5000","repository":"polyarch/qemu-user-static"}' }, none);
  assert.deepEqual(c.hosts, ['x86_64', 'aarch64']);
  assert.equal(c.registry?.push, false);
});

test('every problem at once, one line, naming keys and valid values', () => {
  const raw = {
    hosts: '["x86_64","arm64","x86_64"]',
    targets: '["aarch64","pdp11"]',
    releaseNumber: '"v1"',
    registry: '{"server":"docker.io","repository":"polyarch/qemu-user-static","push":true}',
    buildHosts: '[{"name":"ci-1","address":"10.0.0.1","user":"root"},{"name":"ci-1","address":"10.0.0.2","user":"root"}]',
    colour: '"blue"',
  };
  assert.throws(() => parseStackConfig(raw, none), (e: Error) => {
    const m = e.message;
    assert.ok(!m.includes('\n'));
    assert.match(m, /^invalid stack config: /);
    assert.match(m, /polyarch:hosts\.1: unknown host arch "arm64" \(valid: x86_64, aarch64, ppc64le, s390x\)/);
    assert.match(m, /polyarch:hosts\.2: duplicate host arch "x86_64"/);
    assert.match(m, /polyarch:targets\.1: unknown CPU "pdp11" \(valid: all, aarch64, /);
    assert.match(m, /polyarch:releaseNumber: the n of v<qemu>-<n> is now "releaseNumber" in the lockfile, the same for every stack; remove it from this stack's config/);
    assert.doesNotMatch(m, /unknown key\(s\) [^(]*releaseNumber/, 'said once, as moved');
    assert.match(m, /polyarch:buildHosts\.1: duplicate build host name "ci-1"/);
    assert.match(m, /unknown key\(s\) colour \(valid: lockFile, /);
    return true;
  });
});

test('a push registry without credentials is refused', () => {
  const registry = '{"server":"ghcr.io","repository":"polyarch/qemu-user-static","push":true,"username":"bot"}';
  assert.throws(() => parseStackConfig({ registry }, none), /polyarch:registry: pushes to ghcr\.io without credentials/);
  assert.equal(parseStackConfig({ registry }, new Set(['registryPassword'])).secrets.registryPassword, true);
});

test('a secret set as plain text is refused without echoing it', () => {
  assert.throws(() => parseStackConfig({ registryPassword: 'hunter2' }, none), (e: Error) => {
    assert.match(e.message, /polyarch:registryPassword: must be set with `pulumi config set --secret`/);
    assert.ok(!e.message.includes('hunter2'));
    return true;
  });
});

test('build hosts: arch, hostKey, flags and emulatorDir, with their defaults', () => {
  const key = new Set(['sshPrivateKey']);
  const host = (fields: Record<string, unknown>, hosts = '["x86_64","aarch64"]') =>
    parseStackConfig({ hosts, buildHosts: JSON.stringify([{ name: 'ci-1', address: '10.0.0.1', user: 'root', ...fields }]) }, key).buildHosts[0]!;
  const d = host({});
  assert.equal(d.arch, 'x86_64');
  assert.equal(d.flags, 'F');
  assert.equal(d.emulatorDir, '/usr/local/lib/polyarch');
  assert.equal(d.hostKey, undefined);
  const h = host({ arch: 'aarch64', flags: 'FCP', emulatorDir: '/opt/qemu-static', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKr0r9Xw' });
  assert.equal(h.arch, 'aarch64');
  assert.equal(h.flags, 'POCF', 'normalized to the kernel order, C brings O');
  assert.equal(h.emulatorDir, '/opt/qemu-static');
  assert.equal(h.hostKey, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKr0r9Xw');
  assert.equal(host({ flags: '' }).flags, '');

  assert.throws(() => host({ arch: 'aarch64' }, '["x86_64"]'), /polyarch:buildHosts\.0\.arch: build host "ci-1" is aarch64, which is not among hosts \(x86_64\)/);
  assert.throws(() => host({ arch: 'arm64' }), /polyarch:buildHosts\.0\.arch: unknown host arch "arm64"/);
  assert.throws(() => host({ flags: 'OF' }), /polyarch:buildHosts\.0\.flags: flag O comes with C/);
  assert.throws(() => host({ flags: 'FX' }), /polyarch:buildHosts\.0\.flags: unknown binfmt flag "X"/);
  for (const dir of ['relative/dir', '/usr/../etc', '/opt/qemu/', '/opt/with space', "/opt/it's", '/']) {
    assert.throws(() => host({ emulatorDir: dir }), /polyarch:buildHosts\.0\.emulatorDir: must be an absolute path/, dir);
  }
  assert.throws(() => host({ hostKey: '[10.0.0.1]:22 ssh-ed25519 AAAA' }), /polyarch:buildHosts\.0\.hostKey: must be a public key/);
  // The command plugin would offer only SHA-1 "ssh-rsa" for it (test/engine/hosts.test.ts shows the refusal).
  assert.throws(() => host({ hostKey: 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ' }), /polyarch:buildHosts\.0\.hostKey: is an ssh-rsa key, .*OpenSSH 8\.8\+ refuses: use the host's ed25519 or ECDSA key line \(ssh-keyscan -t ed25519 <host>\)$/);
});

// Image keys (issue 5): base image, OCI labels, the dev stack's local registry.
test('image keys: defaults, a base pinned by digest, label characters, one registry at a time', () => {
  const c = parseStackConfig({}, none);
  assert.match(c.baseImage, /^docker\.io\/library\/busybox:1\.36\.1@sha256:[0-9a-f]{64}$/);
  assert.equal(c.imageSource, 'https://github.com/polyarch/qemu-user-static');
  assert.equal(c.imageRevision, undefined);
  assert.equal(c.localRegistry, undefined);

  const ok = parseStackConfig({ baseImage: `localhost:5000/busybox@sha256:${'0'.repeat(64)}`, imageRevision: 'a1b2c3d', localRegistry: '{}' }, none);
  assert.equal(ok.imageRevision, 'a1b2c3d');
  assert.deepEqual(ok.localRegistry, { port: 5000 });

  assert.throws(
    () => parseStackConfig({ baseImage: 'busybox:latest', imageSource: 'ftp://x', imageRevision: 'a b', localRegistry: '{"port":70000}' }, none),
    /polyarch:baseImage: must be pinned by digest.*polyarch:imageSource: must be an http\(s\) URL.*polyarch:imageRevision: may only hold.*polyarch:localRegistry\.port: /,
  );
  const registry = '{"server":"ghcr.io","repository":"polyarch/qemu-user-static"}';
  assert.throws(() => parseStackConfig({ registry, localRegistry: '{"port":5000}' }, none), /polyarch:localRegistry: set either registry or localRegistry, not both/);
});

test('release: a local folder by default; a GitHub repository needs the githubToken secret', () => {
  assert.deepEqual(parseStackConfig({}, none).release, { folder: 'out/release' });
  assert.equal(parseStackConfig({}, none).secrets.githubToken, false);
  const github = '{"repository":"polyarch/qemu-user-static","apiUrl":"https://ghe.example.com/api/v3"}';
  assert.throws(() => parseStackConfig({ release: github }, none), /polyarch:release: publishing to polyarch\/qemu-user-static needs the secret polyarch:githubToken/);
  const c = parseStackConfig({ release: github }, new Set(['githubToken']));
  assert.deepEqual(c.release, { repository: 'polyarch/qemu-user-static', apiUrl: 'https://ghe.example.com/api/v3' });
  assert.equal(c.secrets.githubToken, true);
});

test('release: exactly one of repository and folder, an owner/name repository, apiUrl only for GitHub', () => {
  const bad: [string, RegExp][] = [
    ['{"repository":"polyarch/qemu-user-static","folder":"out"}', /polyarch:release: give either repository \(a GitHub release\) or folder \(a local folder\)/],
    ['{}', /polyarch:release: give either repository/],
    ['{"repository":"qemu-user-static"}', /polyarch:release\.repository: must be owner\/name/],
    ['{"folder":"out","apiUrl":"https://ghe.example.com/api/v3"}', /polyarch:release\.apiUrl: only applies to a GitHub release/],
    ['{"folder":"out","tag":"v1"}', /unknown key\(s\) tag/],
  ];
  for (const [release, message] of bad) assert.throws(() => parseStackConfig({ release }, new Set(['githubToken'])), message, release);
});

test('the GitHub token set as plain text is refused without echoing it', () => {
  assert.throws(() => parseStackConfig({ githubToken: 'ghp_plainplainplain' }, none), (e: Error) => {
    assert.match(e.message, /polyarch:githubToken: must be set with `pulumi config set --secret`/);
    assert.ok(!e.message.includes('ghp_plainplainplain'));
    return true;
  });
});

test('release: false publishes none; it is a stack of images only', () => {
  assert.equal(parseStackConfig({ release: 'false' }, none).release, false);
  assert.throws(() => parseStackConfig({ release: 'true' }, none), /polyarch:release: /);
});

test('builder: unset by default (the provider picks one), a buildx builder name when set', () => {
  assert.equal(parseStackConfig({}, none).builder, undefined);
  assert.equal(parseStackConfig({ builder: 'polyarch-ci' }, none).builder, 'polyarch-ci');
  assert.throws(() => parseStackConfig({ builder: 'no spaces; rm -rf /' }, none), /polyarch:builder: must be a buildx builder name/);
});

test('a local registry serves one host: a second would need indexes its plain HTTP cannot take', () => {
  assert.deepEqual(parseStackConfig({ localRegistry: '{}', hosts: '["aarch64"]' }, none).hosts, ['aarch64']);
  assert.throws(() => parseStackConfig({ localRegistry: '{}', hosts: '["x86_64","aarch64"]' }, none), /polyarch:localRegistry: serves one host .*hosts lists x86_64, aarch64/);
});

test('signing: none by default, keyless or key; key needs the secret key, and a key set for another mode is named', () => {
  assert.equal(parseStackConfig({}, none).signing, 'none', 'unsigned unless asked');
  assert.equal(parseStackConfig({ signing: 'keyless' }, none).signing, 'keyless');
  assert.equal(parseStackConfig({ signing: 'key' }, new Set(['signingKey', 'signingPassword'])).signing, 'key');
  assert.throws(() => parseStackConfig({ signing: 'key' }, none), /polyarch:signing: is key, which needs the secret polyarch:signingKey/);
  assert.throws(() => parseStackConfig({ signing: 'keyless' }, new Set(['signingKey'])), /polyarch:signing: is keyless, but the secret polyarch:signingKey or polyarch:signingPassword is set/);
  assert.throws(() => parseStackConfig({ signing: 'gpg' }, none), /polyarch:signing: .*"none".*"key".*"keyless"|polyarch:signing: Invalid option/);
  assert.throws(() => parseStackConfig({ signingKey: 'PEM' }, none), /polyarch:signingKey: must be set with `pulumi config set --secret`/);
});
