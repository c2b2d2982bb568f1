// The images through the real engine and the real docker-build plugin: BuildKit is a
// buildkitd of the test's own (built from Go modules by scripts/engine.sh) registered as a
// buildx `remote` builder, the registry is Debian's docker-registry with htpasswd on TLS
// (test/helpers/registry.ts says why TLS). Two hosts, so per-host images, multi-platform
// images and indexes all get pushed; then the registry itself is read with skopeo.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { before, test } from 'node:test';
import { changes, engineProject, hasEngine, parseJson, type Step } from '../helpers/engine.ts';
import { platforms, startImageWorld } from '../helpers/image-world.ts';
import { fixtureLock } from '../helpers/program.ts';
import { hasCommand, isRoot, requireSystem } from '../helpers/system.ts';

let lock: { file: string; cacheDir: string };
let rebuilt: { file: string; cacheDir: string };
before(async () => {
  lock = await fixtureLock(['x86_64', 'aarch64']);
  rebuilt = await fixtureLock(['x86_64', 'aarch64'], undefined, { alter: 'riscv64' });
});

test('images on the real engine: built with BuildKit, pushed with indexes, no-change, a rebuilt emulator rebuilds exactly its images, a wrong password', { timeout: 20 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasEngine, hasCommand('skopeo'), hasCommand('runc'), hasCommand('htpasswd'), hasCommand('openssl'), hasCommand('docker-registry'))) return;
  const world = await startImageWorld(t);
  const { registry, repo } = world;
  const p = await engineProject(t, 'images', world.stack({
    'polyarch:lockFile': lock.file,
    'polyarch:cacheDir': lock.cacheDir,
    'polyarch:hosts': ['x86_64', 'aarch64'],
    'polyarch:targets': ['aarch64', 'riscv64', 'x86_64'],
    'polyarch:release': false,
  }));

  await p.ok(['up', '--yes']);
  const tags = (parseJson<{ imageTags: string[] }>((await p.ok(['stack', 'output', '--json'])).stdout)).imageTags;
  assert.deepEqual(world.tags(), tags.map((tag) => tag.slice(repo.length + 1)).sort(), 'the registry holds exactly the planned tags');
  const raw = (tag: string) => world.skopeo('inspect', '--raw', `docker://${repo}:${tag}`);
  assert.deepEqual(platforms(raw('latest')), ['linux/amd64', 'linux/arm64'], ':latest has one platform per host');
  assert.deepEqual(platforms(raw('register')), ['linux/amd64', 'linux/arm64']);
  // Each :<target> lists exactly the hosts that have a <host>-<target> image; a target only one
  // host publishes is no index but that host's image itself (one manifest, its architecture).
  const short = tags.map((tag) => tag.slice(repo.length + 1));
  const PLATFORM: Record<string, string> = { x86_64: 'linux/amd64', aarch64: 'linux/arm64' };
  for (const target of ['aarch64', 'riscv64', 'x86_64']) {
    const hosts = Object.keys(PLATFORM).filter((h) => short.includes(`${h}-${target}`));
    assert.ok(hosts.length > 0, target);
    if (hosts.length > 1) {
      assert.deepEqual(platforms(raw(target)), hosts.map((h) => PLATFORM[h]).sort(), `:${target}`);
      continue;
    }
    const one = JSON.parse(world.skopeo('inspect', `docker://${repo}:${target}`)) as { Os: string; Architecture: string };
    assert.equal(platforms(raw(target)), undefined, `:${target} is a single manifest`);
    assert.equal(`${one.Os}/${one.Architecture}`, PLATFORM[hosts[0]!], `:${target}`);
    assert.equal(raw(target), raw(`${hosts[0]}-${target}`), `:${target} is the ${hosts[0]} image`);
  }
  assert.deepEqual(platforms(raw('riscv64')), ['linux/amd64', 'linux/arm64'], ':riscv64 indexes both hosts');
  assert.equal(raw('riscv64-9.2.4-1'), raw('riscv64'), 'the versioned index is the rolling one');
  // A per-host image is FROM scratch with the one emulator, byte for byte the extracted one.
  const layers = JSON.parse(world.skopeo('inspect', `docker://${repo}:aarch64-riscv64`)) as { Architecture: string; Layers: string[] };
  assert.equal(layers.Architecture, 'arm64');
  assert.equal(layers.Layers.length, 1);

  const digests = () => Object.fromEntries(tags.map((tag) => tag.slice(repo.length + 1)).map((tag) => [tag, world.skopeo('inspect', '--format', '{{.Digest}}', `docker://${repo}:${tag}`).trim()]));
  const before = digests();
  await p.ok(['up', '--yes', '--expect-no-changes']);

  // One rebuilt emulator: exactly the images that hold it build again, and their indexes.
  await p.setConfig('polyarch:lockFile', rebuilt.file);
  const diff = parseJson<{ steps: Step[] }>((await p.ok(['preview', '--diff', '--json'])).stdout);
  assert.deepEqual(changes(diff.steps), [
    'update images-aarch64-riscv64',
    'update images-emulators',
    'update images-riscv64',
    'update images-riscv64-9.2.4-1',
    'update images-x86_64-riscv64',
  ].sort());
  await p.ok(['up', '--yes']);
  const after = digests();
  for (const tag of Object.keys(before)) {
    const moved = /riscv64|^latest$|^9\.2\.4-1$/.test(tag);
    assert.equal(after[tag] !== before[tag], moved, `${tag}: ${moved ? 'rebuilt' : 'untouched'}`);
  }

  // A wrong password: the push fails, the error names the registry, the password shows nowhere.
  const wrong = 'not-the-registry-password-8271';
  await p.setConfig('polyarch:registryPassword', wrong, true);
  await p.setConfig('polyarch:lockFile', lock.file);
  const refused = await p.pulumi(['up', '--yes']);
  assert.notEqual(refused.code, 0);
  const out = refused.stdout + refused.stderr;
  assert.match(out, new RegExp(`${registry.address.replace(/[.]/g, '\\.')}.*(401|[Uu]nauthorized|authoriz)`));
  for (const secret of [wrong, registry.password]) assert.ok(!p.transcript.join('\n').includes(secret), 'a password in the output');
  const state = spawnSync('pulumi', ['stack', 'export', '--stack', 'images'], { cwd: p.dir, env: p.env, encoding: 'utf8' }).stdout;
  for (const secret of [wrong, registry.password]) assert.ok(!state.includes(secret), 'a password in the state');
});
