// Stack config: defaults, and every problem reported at once on one line with valid values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStackConfig } from '../lib/config.ts';

const none = new Set<string>();

test('an empty stack gets the documented defaults', () => {
  const c = parseStackConfig({}, none);
  assert.deepEqual(
    { lockFile: c.lockFile, releaseNumber: c.releaseNumber, hosts: c.hosts, targets: c.targets, buildHosts: c.buildHosts },
    { lockFile: 'qemu.lock.json', releaseNumber: 1, hosts: ['x86_64'], targets: ['all'], buildHosts: [] },
  );
});

test('values arrive as Pulumi holds them: JSON text for arrays and objects', () => {
  const c = parseStackConfig({ hosts: '["x86_64","aarch64"]', targets: '["arm","riscv64"]', releaseNumber: '3', registry: '{"server":"localhost:5000","repository":"polyarch/qemu-user-static"}' }, none);
  assert.deepEqual(c.hosts, ['x86_64', 'aarch64']);
  assert.equal(c.releaseNumber, 3);
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
    assert.match(m, /polyarch:releaseNumber: /);
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
