// The tag scheme: which images, platforms and tags for any hosts and targets; the registry a
// stack publishes to; stack files as the CLI reads them; `polyarch plan`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { HOST_ARCHES } from '../../lib/cpus.ts';
import { hostPlatform, imageTarget, planImages, platformArch, type ImagePlan } from '../../lib/image-plan.ts';
import { readStackConfig } from '../../lib/stack-file.ts';
import { fixtureLock } from '../helpers/program.ts';

const R = 'localhost:5000/polyarch/qemu-user-static';
const target = { server: 'localhost:5000', repository: 'polyarch/qemu-user-static', push: true };

test('every host arch has its platform from the CPU table', () => {
  assert.deepEqual(HOST_ARCHES.map(hostPlatform), ['linux/amd64', 'linux/arm64', 'linux/ppc64le', 'linux/s390x']);
  assert.equal(platformArch('linux/ppc64le'), 'ppc64le');
});

test('two hosts: images, platforms, tags and indexes, exactly', () => {
  const plan = planImages({ ...target, version: '9.2.4-1', hosts: [{ host: 'x86_64', targets: ['aarch64', 's390x'] }, { host: 'aarch64', targets: ['s390x', 'x86_64'] }] });
  const both = ['linux/amd64', 'linux/arm64'];
  assert.deepEqual(plan, {
    server: 'localhost:5000',
    repository: R,
    version: '9.2.4-1',
    push: true,
    images: [
      { name: 'emulators', kind: 'emulators', platforms: both, hosts: ['x86_64', 'aarch64'], tags: [`${R}:latest`, `${R}:9.2.4-1`] },
      { name: 'register', kind: 'register', platforms: both, hosts: ['x86_64', 'aarch64'], tags: [`${R}:register`] },
      { name: 'x86_64-aarch64', kind: 'emulator', platforms: ['linux/amd64'], hosts: ['x86_64'], target: 'aarch64', tags: [`${R}:x86_64-aarch64`, `${R}:x86_64-aarch64-9.2.4-1`, `${R}:aarch64`, `${R}:aarch64-9.2.4-1`] },
      { name: 'x86_64-s390x', kind: 'emulator', platforms: ['linux/amd64'], hosts: ['x86_64'], target: 's390x', tags: [`${R}:x86_64-s390x`, `${R}:x86_64-s390x-9.2.4-1`] },
      { name: 'aarch64-s390x', kind: 'emulator', platforms: ['linux/arm64'], hosts: ['aarch64'], target: 's390x', tags: [`${R}:aarch64-s390x`, `${R}:aarch64-s390x-9.2.4-1`] },
      { name: 'aarch64-x86_64', kind: 'emulator', platforms: ['linux/arm64'], hosts: ['aarch64'], target: 'x86_64', tags: [`${R}:aarch64-x86_64`, `${R}:aarch64-x86_64-9.2.4-1`, `${R}:x86_64`, `${R}:x86_64-9.2.4-1`] },
    ],
    // Only s390x has two sources; aarch64 and x86_64 are tags on their one image above.
    indexes: [
      { name: 's390x', tag: `${R}:s390x`, target: 's390x', sources: ['x86_64-s390x', 'aarch64-s390x'], platforms: both },
      { name: 's390x-9.2.4-1', tag: `${R}:s390x-9.2.4-1`, target: 's390x', sources: ['x86_64-s390x', 'aarch64-s390x'], platforms: both },
    ],
  } satisfies ImagePlan);
});

/** Every tag of the plan, images' and indexes', in plan order. */
const allTags = (plan: ImagePlan) => [...plan.images.flatMap((i) => i.tags), ...plan.indexes.map((i) => i.tag)];

test('one host publishes every target alone: no index, and each target\'s four tags on its one image', () => {
  const targets = ['aarch64', 'arm', 'riscv64', 's390x'];
  const plan = planImages({ ...target, version: '9.2.4-1', hosts: [{ host: 'x86_64', targets }] });
  assert.deepEqual(plan.indexes, []);
  for (const t of targets) {
    const image = plan.images.find((i) => i.name === `x86_64-${t}`)!;
    assert.deepEqual(image.tags, [`${R}:x86_64-${t}`, `${R}:x86_64-${t}-9.2.4-1`, `${R}:${t}`, `${R}:${t}-9.2.4-1`]);
    assert.deepEqual(image.platforms, ['linux/amd64']);
  }
  const tags = allTags(plan);
  assert.equal(tags.length, 2 + 1 + 4 * targets.length);
  assert.equal(new Set(tags).size, tags.length);
});

test('two hosts: an index only for the targets both publish; the others are tags on their one image', () => {
  const plan = planImages({ ...target, version: '9.2.4-1', hosts: [{ host: 'x86_64', targets: ['aarch64', 'arm', 'riscv64'] }, { host: 'aarch64', targets: ['riscv64', 'x86_64'] }] });
  assert.deepEqual(plan.indexes.map((i) => i.name), ['riscv64', 'riscv64-9.2.4-1']);
  for (const ix of plan.indexes) assert.deepEqual(ix.sources, ['x86_64-riscv64', 'aarch64-riscv64']);
  const tagsOf = (name: string) => plan.images.find((i) => i.name === name)!.tags.map((t) => t.slice(R.length + 1));
  assert.deepEqual(tagsOf('x86_64-aarch64'), ['x86_64-aarch64', 'x86_64-aarch64-9.2.4-1', 'aarch64', 'aarch64-9.2.4-1']);
  assert.deepEqual(tagsOf('x86_64-arm'), ['x86_64-arm', 'x86_64-arm-9.2.4-1', 'arm', 'arm-9.2.4-1']);
  assert.deepEqual(tagsOf('aarch64-x86_64'), ['aarch64-x86_64', 'aarch64-x86_64-9.2.4-1', 'x86_64', 'x86_64-9.2.4-1']);
  // A shared target's images keep only their own tags: :riscv64 is the index's.
  assert.deepEqual(tagsOf('x86_64-riscv64'), ['x86_64-riscv64', 'x86_64-riscv64-9.2.4-1']);
  assert.deepEqual(tagsOf('aarch64-riscv64'), ['aarch64-riscv64', 'aarch64-riscv64-9.2.4-1']);
  const tags = allTags(plan);
  assert.equal(new Set(tags).size, tags.length);
  // Every target is reachable as :T and :T-<version>, exactly once.
  for (const t of ['aarch64', 'arm', 'riscv64', 'x86_64']) for (const tag of [t, `${t}-9.2.4-1`]) assert.equal(tags.filter((x) => x === `${R}:${tag}`).length, 1, tag);
});

test('four hosts: every tag is unique and every index spans the hosts that publish its target', () => {
  const targets = ['aarch64', 'arm', 'ppc64le', 's390x', 'x86_64', 'riscv64'];
  const plan = planImages({ ...target, version: '10.0.2-3', hosts: HOST_ARCHES.map((host) => ({ host, targets: targets.filter((t) => t !== host) })) });
  const tags = allTags(plan);
  assert.equal(new Set(tags).size, tags.length);
  assert.deepEqual(plan.images[0]?.platforms, ['linux/amd64', 'linux/arm64', 'linux/ppc64le', 'linux/s390x']);
  const riscv = plan.indexes.find((i) => i.name === 'riscv64-10.0.2-3');
  assert.deepEqual(riscv?.platforms, ['linux/amd64', 'linux/arm64', 'linux/ppc64le', 'linux/s390x']);
  assert.deepEqual(plan.indexes.find((i) => i.name === 's390x')?.sources, ['x86_64-s390x', 'aarch64-s390x', 'ppc64le-s390x']);
  // Each index's platforms are those of its sources, one per host.
  for (const ix of plan.indexes) {
    assert.deepEqual(ix.platforms, ix.sources.flatMap((s) => plan.images.find((i) => i.name === s)!.platforms));
    assert.equal(new Set(ix.platforms).size, ix.platforms.length);
  }
});

test('bad input is refused with the thing named', () => {
  const one = [{ host: 'x86_64' as const, targets: ['aarch64'] }];
  assert.throws(() => planImages({ ...target, version: 'v9.2.4-1', hosts: one }), /image version "v9\.2\.4-1" is not <qemu>-<n>/);
  assert.throws(() => planImages({ ...target, version: '9.2.4', hosts: one }), /is not <qemu>-<n>/);
  assert.throws(() => planImages({ ...target, version: '9.2.4-1', hosts: [] }), /at least one host/);
  assert.throws(() => planImages({ ...target, version: '9.2.4-1', hosts: [...one, ...one] }), /host x86_64 is listed twice/);
  assert.throws(() => planImages({ ...target, version: '9.2.4-1', hosts: [{ host: 'x86_64', targets: [] }] }), /host x86_64 publishes no emulators/);
  assert.throws(() => planImages({ ...target, version: '9.2.4-1', hosts: [{ host: 'x86_64', targets: ['pdp11'] }] }), /unknown target "pdp11"/);
});

test('the registry a stack publishes to: its registry, else the dev stack\'s local one, else none', () => {
  assert.deepEqual(imageTarget({ registry: { server: 'ghcr.io', repository: 'o/q', username: 'u', push: true } }), { server: 'ghcr.io', repository: 'o/q', username: 'u', push: true });
  assert.deepEqual(imageTarget({ registry: { server: 'quay.io', repository: 'o/q', push: false } }), { server: 'quay.io', repository: 'o/q', push: false });
  assert.deepEqual(imageTarget({ localRegistry: { port: 5123 } }), { server: 'localhost:5123', repository: 'polyarch/qemu-user-static', push: true });
  assert.equal(imageTarget({}), undefined);
});

function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-stack-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

test('stack files: Pulumi.yaml defaults, then Pulumi.<stack>.yaml; secure values only count as set', () => {
  const projectYaml = fs.readFileSync(path.resolve(import.meta.dirname, '../../Pulumi.yaml'), 'utf8');
  const dir = project({
    'Pulumi.yaml': projectYaml,
    'Pulumi.ghcr.yaml': [
      'config:',
      '  polyarch:hosts: [x86_64, aarch64]',
      '  polyarch:registry:',
      '    server: ghcr.io',
      '    repository: polyarch/qemu-user-static',
      '    username: bot',
      '    push: true',
      '  polyarch:registryPassword:',
      '    secure: AAABAHkqhuYuzCGs1ewp',
      '  aws:region: us-east-1',
      '',
    ].join('\n'),
    'Pulumi.plain.yaml': 'config:\n  polyarch:registryPassword: hunter2-not-secret\n',
    'Pulumi.bad.yaml': 'config:\n  polyarch:hosts: [sparc]\n  polyarch:baseImage: busybox:latest\n',
  });
  const defaults = readStackConfig(dir);
  assert.deepEqual(defaults.hosts, ['x86_64']);
  assert.equal(defaults.lockFile, 'qemu.lock.json');
  assert.match(defaults.baseImage, /@sha256:[0-9a-f]{64}$/);

  const ghcr = readStackConfig(dir, 'ghcr');
  assert.deepEqual(ghcr.hosts, ['x86_64', 'aarch64']);
  assert.deepEqual(ghcr.registry, { server: 'ghcr.io', repository: 'polyarch/qemu-user-static', username: 'bot', push: true });
  assert.equal(ghcr.secrets.registryPassword, true);

  assert.throws(() => readStackConfig(dir, 'plain'), (e: Error) => /polyarch:registryPassword: must be set with `pulumi config set --secret`/.test(e.message) && !e.message.includes('hunter2'));
  assert.throws(() => readStackConfig(dir, 'bad'), /polyarch:hosts\.0: unknown host arch "sparc".*polyarch:baseImage: must be pinned by digest/);
  assert.throws(() => readStackConfig(dir, 'nope'), /stack "nope" has no Pulumi\.nope\.yaml/);
  assert.throws(() => readStackConfig(dir, '../etc'), /bad stack name/);
  fs.writeFileSync(path.join(dir, 'Pulumi.broken.yaml'), 'config: [1, 2\n');
  assert.throws(() => readStackConfig(dir, 'broken'), /Pulumi\.broken\.yaml: /);
  fs.rmSync(dir, { recursive: true });
});

const CLI = path.resolve(import.meta.dirname, '../../bin/polyarch.js');
const cli = (cwd: string, args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8' });

test('polyarch plan --stack prints the plan over the stack\'s lockfile; errors are one line', async () => {
  const { file, cacheDir } = await fixtureLock(HOST_ARCHES);
  const dir = project({
    'Pulumi.yaml': 'name: t\nruntime: nodejs\n',
    'Pulumi.ci.yaml': `config:\n  polyarch:lockFile: ${file}\n  polyarch:cacheDir: ${cacheDir}\n  polyarch:hosts: [aarch64]\n  polyarch:targets: [x86_64, s390x]\n  polyarch:localRegistry: {port: 5555}\n`,
    'Pulumi.noreg.yaml': `config:\n  polyarch:lockFile: ${file}\n  polyarch:cacheDir: ${cacheDir}\n`,
    'Pulumi.four.yaml': `config:\n  polyarch:lockFile: ${file}\n  polyarch:cacheDir: ${cacheDir}\n  polyarch:hosts: [x86_64, aarch64, ppc64le, s390x]\n`,
  });
  const r = cli(dir, ['plan', '--stack', 'ci']);
  assert.equal(r.status, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as ImagePlan;
  assert.equal(plan.repository, 'localhost:5555/polyarch/qemu-user-static');
  assert.deepEqual(plan.images.map((i) => i.name), ['emulators', 'register', 'aarch64-s390x', 'aarch64-x86_64']);
  // One host: no index; :s390x is a tag on the one image.
  assert.deepEqual(plan.indexes, []);
  assert.deepEqual(plan.images.find((i) => i.name === 'aarch64-s390x')?.tags.map((t) => t.slice(plan.repository.length + 1)), ['aarch64-s390x', 'aarch64-s390x-9.2.4-1', 's390x', 's390x-9.2.4-1']);

  // No registry: the plan shows where images would go by default, and that nothing is pushed.
  const noreg = JSON.parse(cli(dir, ['plan', '--stack', 'noreg']).stdout) as ImagePlan;
  assert.equal(noreg.repository, 'docker.io/polyarch/qemu-user-static');
  assert.equal(noreg.push, false);

  // Every host the lockfile pins, each publishing what its RPMs hold outside its own family.
  const four = cli(dir, ['plan', '--stack', 'four']);
  assert.equal(four.status, 0, four.stderr);
  const all = JSON.parse(four.stdout) as ImagePlan;
  const published = (h: string) => all.images.filter((i) => i.kind === 'emulator' && i.hosts[0] === h).map((i) => i.target);
  assert.deepEqual(published('ppc64le'), ['aarch64', 'aarch64_be', 'arm', 'armeb', 'i386', 'riscv64', 's390x', 'x86_64']);
  assert.deepEqual(published('s390x'), ['aarch64', 'aarch64_be', 'arm', 'armeb', 'i386', 'ppc64le', 'riscv64', 'x86_64']);
  assert.deepEqual(all.images.find((i) => i.name === 'emulators')!.platforms, ['linux/amd64', 'linux/arm64', 'linux/ppc64le', 'linux/s390x']);
  const sources = (name: string) => all.indexes.find((i) => i.name === name)?.sources;
  assert.deepEqual(sources('ppc64le'), ['x86_64-ppc64le', 'aarch64-ppc64le', 's390x-ppc64le']);
  assert.deepEqual(sources('s390x'), ['x86_64-s390x', 'aarch64-s390x', 'ppc64le-s390x']);
  assert.deepEqual(sources('x86_64'), ['aarch64-x86_64', 'ppc64le-x86_64', 's390x-x86_64']);
  assert.deepEqual(all.indexes.find((i) => i.name === 'riscv64')?.platforms, ['linux/amd64', 'linux/arm64', 'linux/ppc64le', 'linux/s390x']);

  const bad = cli(dir, ['plan', '--stack', 'missing']);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, `error: stack "missing" has no Pulumi.missing.yaml in ${dir}\n`);
  assert.equal(bad.stdout, '');
  fs.rmSync(dir, { recursive: true });
});
